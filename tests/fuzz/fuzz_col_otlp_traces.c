/*
 * fuzz_col_otlp_traces.c - the OTLP trace decoder (protobuf and JSON; the first byte's low bit
 * picks JSON) without a store: it must never read out of bounds, and every span it accepts
 * must satisfy the decoder's promises (non-zero ids, valid UTF-8 strings, sane counts).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "col_otlp_traces.h"
#include "wf_arena.h"
#include "wf_str.h"

static void check(int ok)
{
    if (!ok) {
        abort();
    }
}

static int nonzero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != 0) {
            return 1;
        }
    }
    return 0;
}

static void check_attrs(const st_attr_t *a, size_t n)
{
    check(n == 0 || a != NULL);
    for (size_t i = 0; i < n; i++) {
        check(wf_utf8_valid(a[i].key.p, a[i].key.len));
        if (a[i].value.type == ST_VAL_STRING) {
            check(wf_utf8_valid(a[i].value.u.s.p, a[i].value.u.s.len));
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    wf_arena_t arena;
    wf_arena_init(&arena, 4096, 64 << 20);
    st_span_t *spans = NULL;
    size_t n = 0;
    char err[512];
    int rc = col_otlp_traces_decode(data + 1, size - 1, data[0] & 1, 1000, &arena, &spans, &n, err,
                                    sizeof(err));
    if (rc != 0) {
        check(err[0] != '\0' && n == 0);
    } else {
        check(n <= 1000);
        for (size_t i = 0; i < n; i++) {
            const st_span_t *s = &spans[i];
            check(nonzero(s->trace_id, 16) && nonzero(s->span_id, 8));
            check(s->start_ns >= 0 && s->end_ns >= 0);
            check(s->kind <= ST_SPAN_KIND_CONSUMER && s->status_code <= ST_STATUS_ERROR);
            check(wf_utf8_valid(s->name.p, s->name.len));
            check(wf_utf8_valid(s->service.p, s->service.len));
            check_attrs(s->attrs, s->n_attrs);
            check_attrs(s->resource_attrs, s->n_resource_attrs);
            for (size_t k = 0; k < s->n_events; k++) {
                check_attrs(s->events[k].attrs, s->events[k].n_attrs);
            }
            for (size_t k = 0; k < s->n_links; k++) {
                check(s->links != NULL);
                check_attrs(s->links[k].attrs, s->links[k].n_attrs);
            }
        }
    }
    wf_arena_free(&arena);
    return 0;
}
