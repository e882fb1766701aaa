/*
 * fuzz_st_chunk.c - fuzz target of the sample chunk codec: decodes arbitrary bytes as a chunk
 * (head or sealed form). The iterator must never read out of bounds, loop, or crash; when the
 * input decodes completely, st_chunk_seal must accept it and its output must decode to the
 * very same samples (timestamps and value bits).
 */
#include "st_chunk.h"
#include "wf_alloc.h"
#include "wf_err.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check(int cond)
{
    if (!cond) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    st_chunk_iter_t it;
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
out:
    wf_free(ts);
    wf_free(vb);
    return 0;
}
