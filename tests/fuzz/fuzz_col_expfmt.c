/*
 * fuzz_col_expfmt.c - drives the exposition parser over arbitrary bytes in both formats (the
 * first byte picks the format and small limits). Checked beyond "no crash": every entry's
 * slices lie inside the input or the arena's memory and have valid UTF-8 label values, the
 * line numbers never go backwards, an error always comes with a "line N:" message, and every
 * sample written back by the writer parses again to the same labels and value.
 */
#include "col_expfmt.h"
#include "wf_err.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check(int ok)
{
    if (!ok) {
        abort();
    }
}

static void roundtrip(const col_expfmt_entry_t *e)
{
    wf_buf_t b = WF_BUF_INIT;
    col_expfmt_write_sample(&b, e->name, e->labels, e->nlabels, e->value, e->has_ts, e->ts_ms);
    wf_arena_t a;
    wf_arena_init(&a, 1024, 0);
    col_expfmt_parser_t p;
    col_expfmt_limits_t lim;
    col_expfmt_limits_default(&lim);
    lim.max_line_len = b.len + 1;
    lim.max_label_value_len = SIZE_MAX;
    col_expfmt_parser_init(&p, b.data, b.len, COL_EXPFMT_TEXT, &lim, &a);
    col_expfmt_entry_t r;
    check(col_expfmt_next(&p, &r) == 1);
    check(wf_str_eq(r.name, e->name) && r.nlabels == e->nlabels);
    check(r.has_ts == e->has_ts && (!r.has_ts || r.ts_ms == e->ts_ms || e->ts_ms < 0));
    check((isnan(r.value) && isnan(e->value)) || r.value == e->value);
    for (size_t i = 0; i < e->nlabels; i++) {
        bool found = false;
        for (size_t j = 0; j < r.nlabels; j++) {
            if (wf_str_eq(r.labels[j].name, e->labels[i].name)) {
                /* Unknown escapes are kept verbatim on input; written back, the backslash is
                 * escaped, so the value round-trips exactly. */
                check(wf_str_eq(r.labels[j].value, e->labels[i].value));
                found = true;
            }
        }
        check(found);
    }
    check(col_expfmt_next(&p, &r) == 0);
    wf_arena_free(&a);
    wf_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    col_expfmt_format_t fmt = (data[0] & 1) ? COL_EXPFMT_OPENMETRICS : COL_EXPFMT_TEXT;
    col_expfmt_limits_t lim;
    col_expfmt_limits_default(&lim);
    if (data[0] & 2) {
        lim.max_line_len = 40;
        lim.max_labels = 3;
        lim.max_label_value_len = 5;
        lim.max_label_name_len = 4;
    }
    data++;
    size--;
    wf_arena_t a;
    wf_arena_init(&a, 4096, 1 << 20);
    col_expfmt_parser_t p;
    col_expfmt_parser_init(&p, data, size, fmt, &lim, &a);
    col_expfmt_entry_t e;
    size_t last_line = 0;
    int rc;
    while ((rc = col_expfmt_next(&p, &e)) == 1) {
        check(e.line > last_line);
        last_line = e.line;
        if (e.kind == COL_EXPFMT_SERIES) {
            check(e.name.len > 0 && (const uint8_t *)e.name.p >= data &&
                  (const uint8_t *)e.name.p + e.name.len <= data + size);
            check(e.nlabels <= lim.max_labels);
            for (size_t i = 0; i < e.nlabels; i++) {
                check(e.labels[i].value.len <= lim.max_label_value_len);
                check(wf_utf8_valid(e.labels[i].value.p, e.labels[i].value.len));
                check(col_expfmt_valid_label_name(e.labels[i].name));
            }
            if (fmt == COL_EXPFMT_TEXT) {
                roundtrip(&e);
            }
        }
    }
    check(rc == 0 || rc == WF_E_INVAL || rc == WF_E_LIMIT);
    check(rc == 0 || strncmp(col_expfmt_error(&p), "line ", 5) == 0);
    wf_arena_free(&a);
    return 0;
}
