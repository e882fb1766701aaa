/*
 * fuzz_wf_rd.c - drives the bounds-checked reader (wf_rd_*) over arbitrary bytes. The first
 * byte of each step picks the getter (and, for wf_rd_bytes, the length), so the fuzzer explores
 * every interleaving of reads over truncated and malformed input. Checked beyond "no crash":
 * a getter consumes nothing on refusal except a varint (which may have consumed its prefix),
 * never moves past the end, and every value read back re-encodes to the bytes it came from.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wf_buf.h"

static void check(int ok)
{
    if (!ok) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wf_rd_t r;
    wf_rd_init(&r, data, size);
    uint8_t op;
    while (wf_rd_u8(&r, &op) == 0) {
        const uint8_t *before = r.p;
        size_t left = wf_rd_left(&r);
        int rc;
        switch (op % 6) {
        case 0: {
            uint64_t v;
            rc = wf_rd_uvarint(&r, &v);
            if (rc == 0) {
                /* Canonical encodings round-trip exactly; non-minimal ones decode to a value
                 * whose canonical form is shorter. */
                uint8_t enc[10];
                size_t n = wf_uvarint_put(enc, v);
                size_t used = (size_t)(r.p - before);
                check(used >= 1 && used <= 10 && n <= used);
                if (n == used) {
                    check(memcmp(enc, before, n) == 0);
                }
            }
            break;
        }
        case 1: {
            int64_t v;
            rc = wf_rd_svarint(&r, &v);
            if (rc == 0) {
                check(wf_zigzag_dec(wf_zigzag_enc(v)) == v);
            }
            break;
        }
        case 2: {
            uint32_t v;
            rc = wf_rd_u32le(&r, &v);
            check(rc == 0 ? left >= 4 && r.p == before + 4 : left < 4 && r.p == before);
            if (rc == 0) {
                wf_buf_t b = WF_BUF_INIT;
                wf_buf_put_u32le(&b, v);
                check(memcmp(b.data, before, 4) == 0);
                wf_buf_free(&b);
            }
            break;
        }
        case 3: {
            uint64_t v;
            rc = wf_rd_u64le(&r, &v);
            check(rc == 0 ? left >= 8 && r.p == before + 8 : left < 8 && r.p == before);
            if (rc == 0) {
                wf_buf_t b = WF_BUF_INIT;
                wf_buf_put_u64le(&b, v);
                check(memcmp(b.data, before, 8) == 0);
                wf_buf_free(&b);
            }
            break;
        }
        case 4: {
            /* A length read from the input itself, as every length-prefixed format does. */
            uint64_t n;
            rc = wf_rd_uvarint(&r, &n);
            if (rc == 0) {
                const uint8_t *mark = r.p;
                size_t avail = wf_rd_left(&r);
                const uint8_t *out = NULL;
                rc = wf_rd_bytes(&r, (size_t)n, &out);
                if (rc == 0) {
                    check(n <= avail && out == mark && r.p == mark + n);
                    volatile uint8_t sink = 0;
                    for (size_t i = 0; i < n; i++) {
                        sink ^= out[i]; /* ASan checks these reads are inside the input */
                    }
                    (void)sink;
                } else {
                    check(n > avail && r.p == mark);
                }
            }
            break;
        }
        default: {
            const uint8_t *out = NULL;
            size_t n = op >> 3;
            rc = wf_rd_bytes(&r, n, &out);
            check(rc == 0 ? out == before && r.p == before + n : r.p == before && n > left);
            break;
        }
        }
        check(rc == 0 || rc == -EBADMSG);
        check(r.p >= before && r.p <= r.end);
        if (rc != 0) {
            break;
        }
    }
    check(r.p <= r.end);
    return 0;
}
