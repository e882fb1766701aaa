/*
 * fuzz_col_trace_adjust.c - Jaeger's trace adjusters (col_trace_adjust.h) and the value
 * renderers (col_spanval.h) over any spans the OTLP decoder accepts (first byte's low bit picks
 * JSON). Checked beyond "no crash": no server span keeps an id a client span has, span and event
 * attributes come out sorted by key and events by name, no link has a zero trace id, no span is
 * added, and every rendered value (JSON, Jaeger tag, OTLP AnyValue) is valid JSON.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "col_otlp_traces.h"
#include "col_spanval.h"
#include "col_trace_adjust.h"
#include "wf_arena.h"
#include "wf_buf.h"

static void check(int ok)
{
    if (!ok) {
        abort();
    }
}

static void check_json(wf_buf_t *b)
{
    json_error_t je;
    json_t *j = json_loadb((const char *)b->data, b->len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    check(j != NULL);
    json_decref(j);
    wf_buf_reset(b);
}

static void check_attrs(const st_attr_t *a, size_t n, int sorted, wf_buf_t *b)
{
    int nul_key = 0; /* jansson cannot read an object key holding \u0000 */
    for (size_t i = 0; i < n; i++) {
        nul_key |= memchr(a[i].key.p, 0, a[i].key.len) != NULL;
        check(!sorted || i == 0 || wf_str_cmp(a[i - 1].key, a[i].key) <= 0);
        col_spanval_json(b, &a[i].value);
        check_json(b);
        col_spanval_jaeger(b, &a[i].value);
        check_json(b);
        col_spanval_otlp(b, &a[i].value);
        check_json(b);
    }
    if (!nul_key) {
        col_spanval_kvlist_json(b, a, n);
        check_json(b);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    st_span_list_t l;
    memset(&l, 0, sizeof(l));
    wf_arena_init(&l.arena, 4096, 64 << 20);
    char err[512];
    if (col_otlp_traces_decode(data + 1, size - 1, data[0] & 1, 1000, &l.arena, &l.spans, &l.n, err,
                               sizeof(err)) != 0) {
        wf_arena_free(&l.arena);
        return 0;
    }
    size_t before = l.n;
    col_trace_adjust(&l);
    check(l.n <= before);
    wf_buf_t b = WF_BUF_INIT;
    for (size_t i = 0; i < l.n; i++) {
        const st_span_t *s = &l.spans[i];
        for (size_t j = 0; s->kind == ST_SPAN_KIND_SERVER && j < l.n; j++) {
            check(l.spans[j].kind != ST_SPAN_KIND_CLIENT ||
                  memcmp(l.spans[j].span_id, s->span_id, 8) != 0);
        }
        check_attrs(s->attrs, s->n_attrs, 1, &b);
        check_attrs(s->resource_attrs, s->n_resource_attrs, 0, &b);
        for (size_t k = 0; k < s->n_events; k++) {
            check(k == 0 || wf_str_cmp(s->events[k - 1].name, s->events[k].name) <= 0);
            check_attrs(s->events[k].attrs, s->events[k].n_attrs, 1, &b);
        }
        for (size_t k = 0; k < s->n_links; k++) {
            static const uint8_t zero[16];
            check(memcmp(s->links[k].trace_id, zero, 16) != 0);
        }
    }
    wf_buf_free(&b);
    wf_arena_free(&l.arena);
    return 0;
}
