/*
 * fuzz_col_zipkin.c - the Zipkin v2 JSON span decoder and the JSON writer of the query API,
 * without the store. Checked beyond "no crash": an accepted span has non-zero ids and ends no
 * earlier than it starts, a refusal comes with a message, and writing the decoded spans and
 * decoding that again is a fixed point (the second writing is byte for byte the first), so the
 * query API never answers a span it could not take back.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "col_zipkin.h"
#include "wf_alloc.h"
#include "wf_buf.h"

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

static void write_all(wf_buf_t *b, const st_span_t *spans, size_t n)
{
    wf_buf_putc(b, '[');
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            wf_buf_putc(b, ',');
        }
        col_zipkin_span_json(b, &spans[i]);
    }
    wf_buf_putc(b, ']');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wf_arena_t arena;
    wf_arena_init(&arena, 4096, 64u << 20);
    st_span_t *spans = NULL;
    size_t n = 0;
    char err[300];
    err[0] = '\0';
    int rc = col_zipkin_decode(data, size, &arena, &spans, &n, err, sizeof(err));
    if (rc != 0) {
        check(err[0] != '\0');
        wf_arena_free(&arena);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        check(nonzero(spans[i].trace_id, 16) && nonzero(spans[i].span_id, 8));
        check(spans[i].start_ns >= 0 && spans[i].end_ns >= spans[i].start_ns);
    }
    wf_buf_t first = WF_BUF_INIT;
    write_all(&first, spans, n);
    st_span_t *again = NULL;
    size_t n2 = 0;
    rc = col_zipkin_decode(first.data, first.len, &arena, &again, &n2, err, sizeof(err));
    check(rc == 0 && n2 == n);
    wf_buf_t second = WF_BUF_INIT;
    write_all(&second, again, n2);
    check(first.len == second.len && memcmp(first.data, second.data, first.len) == 0);
    wf_buf_free(&first);
    wf_buf_free(&second);
    wf_arena_free(&arena);
    return 0;
}
