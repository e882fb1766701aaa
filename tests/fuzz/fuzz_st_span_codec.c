/*
 * fuzz_st_span_codec.c - the span decoders on arbitrary bytes: they must return 0 or
 * WF_E_CORRUPT, never crash, hang or read out of bounds.
 *
 * The first byte chooses the decoder: even = log record, odd = block. Because both formats are
 * zstd-compressed, raw fuzz bytes rarely get past decompression; so for byte values >= 0x80 the
 * rest of the input is compressed first and the decoder sees a valid frame around arbitrary
 * content, which reaches the record parsers. Every decoded span is then walked whole.
 */
#include "st_span_codec.h"

#include "wf_err.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

static size_t walk_attrs(const st_attr_t *a, size_t n)
{
    size_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        sum += a[i].key.len + (size_t)a[i].value.type;
        if (a[i].value.type == ST_VAL_STRING || a[i].value.type == ST_VAL_BYTES) {
            sum += a[i].value.u.s.len ? (uint8_t)a[i].value.u.s.p[a[i].value.u.s.len - 1] : 0;
        }
    }
    return sum;
}

static size_t walk(const st_span_t *sp)
{
    size_t sum = sp->name.len + sp->service.len + walk_attrs(sp->attrs, sp->n_attrs) +
                 walk_attrs(sp->resource_attrs, sp->n_resource_attrs);
    for (size_t i = 0; i < sp->n_events; i++) {
        sum += walk_attrs(sp->events[i].attrs, sp->events[i].n_attrs);
    }
    for (size_t i = 0; i < sp->n_links; i++) {
        sum += walk_attrs(sp->links[i].attrs, sp->links[i].n_attrs);
    }
    return sum;
}

static volatile size_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 20)) {
        return 0;
    }
    uint8_t mode = data[0];
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    uint8_t *framed = NULL;
    if (mode >= 0x80) {
        /* log records carry a version byte before the frame */
        size_t off = (mode & 1) ? 0 : 1;
        size_t bound = ZSTD_compressBound(n) + 1;
        framed = malloc(bound);
        if (framed == NULL) {
            return 0;
        }
        framed[0] = 1;
        size_t zn = ZSTD_compress(framed + off, bound - off, p, n, 1);
        if (ZSTD_isError(zn)) {
            free(framed);
            return 0;
        }
        p = framed;
        n = zn + off;
    }
    wf_arena_t a;
    wf_arena_init(&a, 1 << 16, 0);
    if ((mode & 1) == 0) {
        st_span_t *spans = NULL;
        size_t count = 0;
        int rc = st__span_log_decode(p, n, &a, &spans, &count);
        if (rc == 0) {
            for (size_t i = 0; i < count; i++) {
                sink += walk(&spans[i]);
            }
        } else if (rc != WF_E_CORRUPT) {
            abort();
        }
    } else {
        st__span_block_t b;
        int rc = st__span_block_open(&b, p, n, &a);
        if (rc == 0) {
            for (size_t t = 0; t < b.n_traces; t++) {
                st_span_t *out = wf_arena_alloc(&a, b.traces[t].n_spans * sizeof(*out));
                rc = st__span_block_decode_trace(&b, t, &a, out);
                if (rc == 0) {
                    for (size_t k = 0; k < b.traces[t].n_spans; k++) {
                        sink += walk(&out[k]);
                    }
                } else if (rc != WF_E_CORRUPT) {
                    abort();
                }
            }
        } else if (rc != WF_E_CORRUPT) {
            abort();
        }
    }
    wf_arena_free(&a);
    free(framed);
    return 0;
}
