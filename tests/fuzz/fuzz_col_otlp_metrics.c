/*
 * fuzz_col_otlp_metrics.c - the OTLP metrics decoder and its translation to Prometheus
 * series, without the store. The first input byte picks the encoding (odd: OTLP JSON, even:
 * protobuf). Checked beyond "no crash": a decoded set is consistent (every series inside the
 * label and sample arrays, a __name__ that is a valid metric name, labels that pass the
 * store's validation), and a refusal always comes with a message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "col_otlp_metrics.h"
#include "wf_arena.h"

static void check(int ok)
{
    if (!ok) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    wf_arena_t arena;
    wf_arena_init(&arena, 4096, 64 << 20);
    col_sset_t set;
    memset(&set, 0, sizeof(set));
    col_otlp_stats_t st;
    char err[512];
    int rc = col_otlp_metrics_decode(data + 1, size - 1, data[0] & 1, &arena, &set, &st, err,
                                     sizeof(err));
    if (rc != 0) {
        check(err[0] != '\0');
    } else {
        for (size_t i = 0; i < set.nseries; i++) {
            const col_sset_series_t *se = &set.series[i];
            check(se->nsamples == 1 && se->nlabels > 0);
            check(se->label_off + se->nlabels <= set.nlabels);
            check(se->sample_off + se->nsamples <= set.nsamples);
            const st_label_t *l = set.labels + se->label_off;
            check(wf_str_eq_c(l[0].name, "__name__") && col_metric_name_valid(l[0].value));
            char why[256];
            check(col_sset_check_labels(l, se->nlabels, why, sizeof(why)) == 0);
        }
        for (size_t i = 0; i < set.nmeta; i++) {
            check(col_metric_name_valid(set.meta[i].family));
        }
    }
    col_sset_free(&set);
    wf_arena_free(&arena);
    return 0;
}
