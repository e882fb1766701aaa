/*
 * fuzz_st_chunk.c - fuzz target of the sample chunk codec: decodes arbitrary bytes as a chunk
 * (head or sealed form), or, when the input starts with SPLIT_MAGIC, as the split form: a
 * u16le length, that many bytes of timestamp column, the rest a values-only chunk. The
 * iterator must never read out of bounds, loop, or crash; when the input decodes completely,
 * st_chunk_seal and st_chunk_seal_split must accept the samples and their output must decode
 * to the very same samples (timestamps and value bits).
 */
#include "st_chunk.h"
#include "wf_alloc.h"
#include "wf_err.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SPLIT_MAGIC 0xa5

static void check(int cond)
{
    if (!cond) {
        abort();
    }
}

/* The split form of chunk data/size decodes to exactly ts/vb[0, n). */
static void check_split(const uint8_t *data, size_t size, const int64_t *ts, const uint64_t *vb,
                        size_t n)
{
    wf_buf_t t = WF_BUF_INIT, v = WF_BUF_INIT;
    int rc = st_chunk_seal_split(data, size, &t, &v);
    if (n == 0) {
        check(rc == WF_E_CORRUPT && t.len == 0 && v.len == 0);
        return;
    }
    check(rc == 0);
    st_chunk_iter_t it;
    check(st_chunk_iter_init_split(&it, t.data, t.len, v.data, v.len) == 0);
    check(st_chunk_iter_count(&it) == n);
    int64_t tt;
    double d;
    for (size_t i = 0; i < n; i++) {
        uint64_t b;
        check(st_chunk_iter_next(&it, &tt, &d) == 1);
        memcpy(&b, &d, 8);
        check(tt == ts[i] && b == vb[i]);
    }
    check(st_chunk_iter_next(&it, &tt, &d) == 0);
    st_chunk_iter_free(&it);
    wf_buf_free(&t);
    wf_buf_free(&v);
}

/* Input in the split form: decode; when it decodes completely, re-encode the samples and check
 * that both sealed forms give them back. */
static int split_input(const uint8_t *data, size_t size)
{
    if (size < 3) {
        return 0;
    }
    size_t tl = (size_t)data[1] | (size_t)data[2] << 8;
    if (tl > size - 3) {
        return 0;
    }
    st_chunk_iter_t it;
    if (st_chunk_iter_init_split(&it, data + 3, tl, data + 3 + tl, size - 3 - tl) < 0) {
        return 0;
    }
    uint32_t count = st_chunk_iter_count(&it);
    check(count > 0);
    int64_t *ts = wf_malloc(sizeof(int64_t) * count);
    uint64_t *vb = wf_malloc(sizeof(uint64_t) * count);
    size_t n = 0;
    int rc;
    int64_t t;
    double v;
    while ((rc = st_chunk_iter_next(&it, &t, &v)) == 1) {
        check(n < count);
        check(n == 0 || t > ts[n - 1]);
        ts[n] = t;
        memcpy(&vb[n], &v, 8);
        n++;
    }
    st_chunk_iter_free(&it);
    if (rc == 0) {
        check(n == count);
        st_chunk_enc_t e;
        st_chunk_enc_init(&e);
        for (size_t i = 0; i < n; i++) {
            memcpy(&v, &vb[i], 8);
            check(st_chunk_enc_append(&e, ts[i], v) == 0);
        }
        size_t len;
        const uint8_t *b = st_chunk_enc_bytes(&e, &len);
        check_split(b, len, ts, vb, n);
        st_chunk_enc_free(&e);
    } else {
        check(rc == WF_E_CORRUPT);
    }
    wf_free(ts);
    wf_free(vb);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    st_chunk_iter_t it;
    if (size > 0 && data[0] == SPLIT_MAGIC) {
        return split_input(data, size);
    }
    if (st_chunk_iter_init(&it, data, size) < 0) {
        return 0;
    }
    uint32_t count = st_chunk_iter_count(&it);
    int64_t *ts = wf_malloc(sizeof(int64_t) * ((size_t)count + 1));
    uint64_t *vb = wf_malloc(sizeof(uint64_t) * ((size_t)count + 1));
    size_t n = 0;
    int rc;
    int64_t t;
    double v;
    while ((rc = st_chunk_iter_next(&it, &t, &v)) == 1) {
        check(n < count);
        if (n > 0) {
            check(t > ts[n - 1]);
        }
        ts[n] = t;
        memcpy(&vb[n], &v, 8);
        n++;
    }
    st_chunk_iter_free(&it);
    if (rc < 0) {
        check(rc == WF_E_CORRUPT);
        goto out;
    }
    check(n == count);

    wf_buf_t sealed = WF_BUF_INIT;
    check(st_chunk_seal(data, size, &sealed) == 0);
    check(st_chunk_iter_init(&it, sealed.data, sealed.len) == 0);
    check(st_chunk_iter_count(&it) == count);
    for (size_t i = 0; i < n; i++) {
        uint64_t b;
        check(st_chunk_iter_next(&it, &t, &v) == 1);
        memcpy(&b, &v, 8);
        check(t == ts[i] && b == vb[i]);
    }
    check(st_chunk_iter_next(&it, &t, &v) == 0);
    st_chunk_iter_free(&it);
    wf_buf_free(&sealed);
    check_split(data, size, ts, vb, n);
out:
    wf_free(ts);
    wf_free(vb);
    return 0;
}
