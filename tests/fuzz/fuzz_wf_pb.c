/*
 * fuzz_wf_pb.c - walks arbitrary bytes as a protobuf message with the wire reader (wf_pb.h),
 * descending into every length-delimited field as if it were a nested message and reading it
 * as packed varints, fixed32s and fixed64s too, as decoders of unknown schemas do. Checked
 * beyond "no crash": every field and slice lies inside the input, field numbers and wire
 * types are valid ones, the reader only moves forward, an error names a reason and an offset
 * inside the input, and the element counts agree with the iterations.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "wf_pb.h"

static const uint8_t *in_lo, *in_hi;

static void check(int ok)
{
    if (!ok) {
        abort();
    }
}

static void rep(wf_pb_rd_t *r, const wf_pb_field_t *f, wf_pb_wire_t elem)
{
    wf_pb_rep_t it;
    if (wf_pb_rep_init(r, f, elem, &it) != 0) {
        check(r->err != NULL);
        return;
    }
    size_t count = wf_pb_rep_count(&it), n = 0;
    uint64_t v;
    int rc;
    while ((rc = wf_pb_rep_next(&it, &v)) > 0) {
        n++;
    }
    check(rc == 0 || rc == -EBADMSG);
    /* A clean iteration yields exactly the counted elements; a broken one no more. */
    check(rc == 0 ? n == count : n <= count);
}

static void walk(wf_pb_rd_t *r, int depth)
{
    wf_pb_field_t f;
    int rc;
    const uint8_t *prev = r->p;
    while ((rc = wf_pb_next(r, &f)) > 0) {
        check(r->p > prev && r->p <= r->end);
        prev = r->p;
        check(f.num >= 1 && f.num <= WF_PB_MAX_FIELD);
        check(f.wire == WF_PB_VARINT || f.wire == WF_PB_I64 || f.wire == WF_PB_LEN ||
              f.wire == WF_PB_I32);
        check(in_lo + f.off < in_hi);
        if (f.wire != WF_PB_LEN) {
            continue;
        }
        check(f.len == 0 || (f.p >= in_lo && f.p + f.len <= in_hi));
        wf_str_t s;
        check(wf_pb_bytes(r, &f, &s) == 0 && s.len == f.len);
        volatile uint8_t sink = 0;
        for (size_t i = 0; i < s.len; i++) {
            sink ^= (uint8_t)s.p[i]; /* ASan checks the slice is readable */
        }
        (void)sink;
        rep(r, &f, WF_PB_VARINT);
        rep(r, &f, WF_PB_I64);
        rep(r, &f, WF_PB_I32);
        if (depth < 16) {
            wf_pb_rd_t sub;
            check(wf_pb_sub(r, &f, &sub) == 0);
            walk(&sub, depth + 1);
        }
    }
    check(rc == 0 || rc == -EBADMSG);
    if (rc < 0) {
        check(r->err != NULL && in_lo + r->err_off < in_hi && r->p == prev);
    } else {
        check(r->p == r->end);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    in_lo = data;
    in_hi = data + size;
    wf_pb_rd_t r;
    wf_pb_init(&r, data, size);
    walk(&r, 0);
    return 0;
}
