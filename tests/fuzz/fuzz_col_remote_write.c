/*
 * fuzz_col_remote_write.c - the remote_write decode path without the store: snappy block
 * decompression (with a small limit) and the WriteRequest decoder with its validation. The
 * first input byte picks the form: odd means the rest is a snappy body, as it arrives over
 * HTTP; even means the rest is the protobuf itself, so the fuzzer reaches the decoder without
 * having to learn snappy. The second bit picks the message: set, remote write 2.0's Request (its
 * symbol table, refs, per-series metadata); clear, 1.0's WriteRequest. Checked beyond "no crash": a
 * decoded set is internally consistent (every series within the label and sample arrays, at least
 * one sample each), every label slice lies inside the decoded bytes, every accepted series passes
 * the label validation again, and a refusal always comes with a message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "col_remote_write.h"
#include "wf_alloc.h"

static void check(int ok)
{
    if (!ok) {
        abort();
    }
}

static void check_slice(wf_str_t s, const uint8_t *lo, size_t n)
{
    check(s.len == 0 || ((const uint8_t *)s.p >= lo && (const uint8_t *)s.p + s.len <= lo + n));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    const uint8_t *pb = data + 1;
    size_t pb_len = size - 1;
    uint8_t *plain = NULL;
    char err[512];
    err[0] = '\0';
    if (data[0] & 1) {
        int rc = col_rw_uncompress(data + 1, size - 1, 1 << 20, &plain, &pb_len, err, sizeof(err));
        if (rc != 0) {
            check(err[0] != '\0');
            return 0;
        }
        pb = plain;
    }
    col_sset_t set;
    memset(&set, 0, sizeof(set));
    size_t histograms = 0;
    int rc = data[0] & 2 ? col_rw2_decode(pb, pb_len, &set, &histograms, err, sizeof(err))
                         : col_rw_decode(pb, pb_len, &set, err, sizeof(err));
    if (rc != 0) {
        check(err[0] != '\0');
    } else {
        size_t samples = 0;
        for (size_t i = 0; i < set.nseries; i++) {
            const col_sset_series_t *se = &set.series[i];
            check(se->nsamples > 0 && se->nlabels > 0);
            check(se->label_off + se->nlabels <= set.nlabels);
            check(se->sample_off + se->nsamples <= set.nsamples);
            samples += se->nsamples;
            for (size_t j = 0; j < se->nlabels; j++) {
                check_slice(set.labels[se->label_off + j].name, pb, pb_len);
                check_slice(set.labels[se->label_off + j].value, pb, pb_len);
            }
            char why[256];
            check(col_sset_check_labels(set.labels + se->label_off, se->nlabels, why,
                                        sizeof(why)) == 0);
        }
        check(samples == set.nsamples);
        for (size_t i = 0; i < set.nmeta; i++) {
            check(col_metric_name_valid(set.meta[i].family));
            check_slice(set.meta[i].family, pb, pb_len);
            check(set.meta[i].type <= ST_METRIC_STATESET);
        }
    }
    col_sset_free(&set);
    wf_free(plain);
    return 0;
}
