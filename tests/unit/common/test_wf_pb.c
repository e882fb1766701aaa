/*
 * test_wf_pb.c - the zero-copy protobuf wire reader (wf_pb.h): every wire type and scalar
 * view, skipping of unknown fields, nested messages, packed and unpacked repeated fields, and
 * each refusal (truncation, overlong varints, lengths past the end, groups, bad wire types and
 * field numbers) with its message and offset. Inputs are built with the test-side writer
 * (wt_rw.h) or spelled out byte by byte where the writer cannot produce them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "wf_buf.h"
#include "wf_pb.h"
#include "wt_rw.h"

/* Read one field from data and expect success. */
static wf_pb_field_t one_field(wf_pb_rd_t *r, const void *data, size_t len)
{
    wf_pb_init(r, data, len);
    wf_pb_field_t f;
    assert_int_equal(wf_pb_next(r, &f), 1);
    return f;
}

static void test_scalars(void **state)
{
    (void)state;
    wf_buf_t b = WF_BUF_INIT;
    wt_pb_varint(&b, 1, 0);
    wt_pb_varint(&b, 2, 300);
    wt_pb_varint(&b, 3, UINT64_MAX);
    wt_pb_varint(&b, 4, (uint64_t)(int64_t)-2); /* int32 -2: sign-extended, 10 bytes */
    wt_pb_varint(&b, 5, wf_zigzag_enc(-3));
    wt_pb_fixed64(&b, 6, 0x0102030405060708ULL);
    wt_pb_double(&b, 7, -1.5);
    wt_pb_fixed32(&b, 8, 0xfffffffeU);
    float fl = 0.25f;
    uint32_t flbits;
    memcpy(&flbits, &fl, 4);
    wt_pb_fixed32(&b, 9, flbits);
    wt_pb_str(&b, 10, "hello");
    wt_pb_varint(&b, WF_PB_MAX_FIELD, 1);
    wt_pb_varint(&b, 12, 0x1ffffffffULL); /* uint32 keeps the low 32 bits */

    wf_pb_rd_t r;
    wf_pb_init(&r, b.data, b.len);
    wf_pb_field_t f;
    uint64_t u64;
    int64_t i64;
    int32_t i32;
    uint32_t u32;
    double d;
    float x;
    bool bo;
    wf_str_t s;

    assert_int_equal(wf_pb_next(&r, &f), 1);
    assert_int_equal(f.num, 1);
    assert_int_equal(f.wire, WF_PB_VARINT);
    assert_int_equal(f.off, 0);
    assert_int_equal(wf_pb_bool(&r, &f, &bo), 0);
    assert_false(bo);

    assert_int_equal(wf_pb_next(&r, &f), 1);
    assert_int_equal(f.off, 2);
    assert_int_equal(wf_pb_uint64(&r, &f, &u64), 0);
    assert_int_equal(u64, 300);

    assert_int_equal(wf_pb_next(&r, &f), 1);
    assert_int_equal(wf_pb_uint64(&r, &f, &u64), 0);
    assert_true(u64 == UINT64_MAX);
    assert_int_equal(wf_pb_int64(&r, &f, &i64), 0);
    assert_int_equal(i64, -1);

    assert_int_equal(wf_pb_next(&r, &f), 1);
    assert_int_equal(f.num, 4);
    assert_int_equal(wf_pb_int32(&r, &f, &i32), 0);
    assert_int_equal(i32, -2);
    assert_int_equal(wf_pb_int64(&r, &f, &i64), 0);
    assert_int_equal(i64, -2);

    assert_int_equal(wf_pb_next(&r, &f), 1);
    assert_int_equal(wf_pb_sint64(&r, &f, &i64), 0);
    assert_int_equal(i64, -3);
    assert_int_equal(wf_pb_sint32(&r, &f, &i32), 0);
    assert_int_equal(i32, -3);

    assert_int_equal(wf_pb_next(&r, &f), 1);
    assert_int_equal(f.wire, WF_PB_I64);
    assert_int_equal(wf_pb_fixed64(&r, &f, &u64), 0);
    assert_true(u64 == 0x0102030405060708ULL);
    assert_int_equal(wf_pb_sfixed64(&r, &f, &i64), 0);
    assert_true(i64 == 0x0102030405060708LL);

    assert_int_equal(wf_pb_next(&r, &f), 1);
    assert_int_equal(wf_pb_double(&r, &f, &d), 0);
    assert_true(d == -1.5);

    assert_int_equal(wf_pb_next(&r, &f), 1);
    assert_int_equal(f.wire, WF_PB_I32);
    assert_int_equal(wf_pb_fixed32(&r, &f, &u32), 0);
    assert_int_equal(u32, 0xfffffffeU);
    assert_int_equal(wf_pb_sfixed32(&r, &f, &i32), 0);
    assert_int_equal(i32, -2);

    assert_int_equal(wf_pb_next(&r, &f), 1);
    assert_int_equal(wf_pb_float(&r, &f, &x), 0);
    assert_true(x == 0.25f);

    assert_int_equal(wf_pb_next(&r, &f), 1);
    assert_int_equal(f.wire, WF_PB_LEN);
    assert_int_equal(wf_pb_bytes(&r, &f, &s), 0);
    assert_true(wf_str_eq_c(s, "hello"));
    /* Zero-copy: the slice points into the input. */
    assert_true((const uint8_t *)s.p > b.data && (const uint8_t *)s.p < b.data + b.len);

    assert_int_equal(wf_pb_next(&r, &f), 1);
    assert_int_equal(f.num, WF_PB_MAX_FIELD);

    assert_int_equal(wf_pb_next(&r, &f), 1);
    assert_int_equal(wf_pb_uint32(&r, &f, &u32), 0);
    assert_int_equal(u32, 0xffffffffU);

    assert_int_equal(wf_pb_next(&r, &f), 0);
    assert_true(wf_pb_done(&r));
    assert_int_equal(wf_pb_next(&r, &f), 0); /* stays at the end */
    assert_null(r.err);
    wf_buf_free(&b);
}

static void test_empty(void **state)
{
    (void)state;
    wf_pb_rd_t r;
    wf_pb_field_t f;
    wf_pb_init(&r, NULL, 0);
    assert_int_equal(wf_pb_next(&r, &f), 0);
    /* An empty string field is a zero-length slice. */
    const uint8_t msg[] = {0x0a, 0x00};
    f = one_field(&r, msg, sizeof(msg));
    wf_str_t s = {"x", 1};
    assert_int_equal(wf_pb_bytes(&r, &f, &s), 0);
    assert_int_equal(s.len, 0);
    wf_pb_rd_t sub;
    assert_int_equal(wf_pb_sub(&r, &f, &sub), 0);
    assert_int_equal(wf_pb_next(&sub, &f), 0);
}

/* Unknown fields of every wire type between the known ones are skipped whole. */
static void test_skip_unknown(void **state)
{
    (void)state;
    wf_buf_t b = WF_BUF_INIT, inner = WF_BUF_INIT;
    wt_pb_varint(&inner, 1, 7);
    wt_pb_str(&b, 99, "unknown bytes");
    wt_pb_varint(&b, 1, 42);
    wt_pb_fixed64(&b, 100, 123);
    wt_pb_fixed32(&b, 101, 456);
    wt_pb_bytes(&b, 102, inner.data, inner.len);
    wt_pb_varint(&b, 103, UINT64_MAX);
    wt_pb_str(&b, 2, "known");

    wf_pb_rd_t r;
    wf_pb_field_t f;
    wf_pb_init(&r, b.data, b.len);
    uint64_t v = 0;
    wf_str_t s = {NULL, 0};
    int rc, seen = 0;
    while ((rc = wf_pb_next(&r, &f)) > 0) {
        seen++;
        if (f.num == 1) {
            assert_int_equal(wf_pb_uint64(&r, &f, &v), 0);
        } else if (f.num == 2) {
            assert_int_equal(wf_pb_bytes(&r, &f, &s), 0);
        }
    }
    assert_int_equal(rc, 0);
    assert_int_equal(seen, 7);
    assert_int_equal(v, 42);
    assert_true(wf_str_eq_c(s, "known"));
    wf_buf_free(&b);
    wf_buf_free(&inner);
}

static void test_nested(void **state)
{
    (void)state;
    wf_buf_t b = WF_BUF_INIT, mid = WF_BUF_INIT, leaf = WF_BUF_INIT;
    wt_pb_str(&leaf, 1, "deep");
    wt_pb_varint(&mid, 1, 5);
    wt_pb_bytes(&mid, 2, leaf.data, leaf.len);
    wt_pb_varint(&b, 1, 1);
    wt_pb_bytes(&b, 3, mid.data, mid.len);
    wt_pb_varint(&b, 4, 9);

    wf_pb_rd_t r, m, l;
    wf_pb_field_t f;
    wf_pb_init(&r, b.data, b.len);
    assert_int_equal(wf_pb_next(&r, &f), 1);
    assert_int_equal(wf_pb_next(&r, &f), 1);
    assert_int_equal(f.num, 3);
    assert_int_equal(wf_pb_sub(&r, &f, &m), 0);
    assert_int_equal(wf_pb_next(&m, &f), 1);
    assert_int_equal(f.u, 5);
    assert_int_equal(wf_pb_next(&m, &f), 1);
    assert_int_equal(wf_pb_sub(&m, &f, &l), 0);
    assert_int_equal(wf_pb_next(&l, &f), 1);
    wf_str_t s;
    assert_int_equal(wf_pb_bytes(&l, &f, &s), 0);
    assert_true(wf_str_eq_c(s, "deep"));
    assert_int_equal(wf_pb_next(&l, &f), 0);
    assert_int_equal(wf_pb_next(&m, &f), 0);
    /* The outer reader resumes after the nested message. */
    assert_int_equal(wf_pb_next(&r, &f), 1);
    assert_int_equal(f.num, 4);
    assert_int_equal(f.u, 9);
    assert_int_equal(wf_pb_next(&r, &f), 0);
    wf_buf_free(&b);
    wf_buf_free(&mid);
    wf_buf_free(&leaf);
}

/* A nested message cannot read past its own slice even when the parent has more bytes, and
 * its errors carry offsets from the start of the outermost message. */
static void test_nested_bounds(void **state)
{
    (void)state;
    /* field 1 LEN 2 { tag(1,LEN) len 5 } then 5 more bytes in the parent */
    const uint8_t msg[] = {0x0a, 0x02, 0x0a, 0x05, 'a', 'b', 'c', 'd', 'e'};
    wf_pb_rd_t r, sub;
    wf_pb_field_t f = one_field(&r, msg, 4);
    assert_int_equal(wf_pb_sub(&r, &f, &sub), 0);
    assert_int_equal(wf_pb_next(&sub, &f), -EBADMSG);
    assert_string_equal(sub.err, "length past the end of the message");
    assert_int_equal(sub.err_off, 2);
    /* The reader stays at the bad field. */
    assert_ptr_equal(sub.p, msg + 2);
}

typedef struct {
    const char *name;
    uint8_t bytes[16];
    size_t len;
    const char *err;
    size_t off;
} bad_case_t;

static void test_malformed(void **state)
{
    (void)state;
    static const bad_case_t cases[] = {
        {"truncated tag", {0x80}, 1, "truncated field tag", 0},
        {"tag of 11 bytes",
         {0x88, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01},
         11,
         "field tag is not a valid varint",
         0},
        {"field number 0", {0x00, 0x01}, 2, "field number 0", 0},
        {"field number 2^29",
         {0x80, 0x80, 0x80, 0x80, 0x10, 0x00},
         6,
         "field number out of range",
         0},
        {"truncated varint", {0x08, 0x96}, 2, "truncated varint", 0},
        {"varint without end", {0x08, 0xff, 0xff}, 3, "truncated varint", 0},
        {"varint over 64 bits",
         {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02},
         11,
         "varint longer than 64 bits",
         0},
        {"varint of 11 bytes",
         {0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00},
         12,
         "varint longer than 64 bits",
         0},
        {"truncated fixed64", {0x09, 1, 2, 3, 4, 5, 6, 7}, 8, "truncated fixed64", 0},
        {"truncated fixed32", {0x0d, 1, 2, 3}, 4, "truncated fixed32", 0},
        {"truncated length", {0x0a, 0x80}, 2, "truncated length", 0},
        {"length past end", {0x0a, 0x03, 'a', 'b'}, 4, "length past the end of the message", 0},
        {"huge length",
         {0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 'a'},
         11,
         "length past the end of the message",
         0},
        {"start group", {0x0b, 0x0c}, 2, "deprecated group wire type", 0},
        {"end group", {0x0c}, 1, "deprecated group wire type", 0},
        {"wire type 6", {0x0e, 0x00}, 2, "invalid wire type", 0},
        {"wire type 7", {0x0f, 0x00}, 2, "invalid wire type", 0},
        {"after a good field",
         {0x08, 0x01, 0x12, 0x05, 'x'},
         5,
         "length past the end of the message",
         2},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const bad_case_t *c = &cases[i];
        wf_pb_rd_t r;
        wf_pb_field_t f;
        wf_pb_init(&r, c->bytes, c->len);
        int rc;
        while ((rc = wf_pb_next(&r, &f)) > 0) {
        }
        if (rc != -EBADMSG || r.err == NULL || strcmp(r.err, c->err) != 0 || r.err_off != c->off) {
            fail_msg("%s: rc %d err %s off %zu", c->name, rc, r.err ? r.err : "(none)", r.err_off);
        }
        /* Errors are sticky in the sense that the reader does not move past the bad field. */
        assert_int_equal(wf_pb_next(&r, &f), -EBADMSG);
    }
}

/* Each typed view refuses a field of another wire type, with the field's offset. */
static void test_wrong_wire_type(void **state)
{
    (void)state;
    wf_buf_t b = WF_BUF_INIT;
    wt_pb_varint(&b, 1, 1);
    wt_pb_str(&b, 2, "s");
    wt_pb_fixed64(&b, 3, 1);
    wt_pb_fixed32(&b, 4, 1);
    wf_pb_rd_t r, sub;
    wf_pb_field_t fv, fl, f64, f32;
    wf_pb_init(&r, b.data, b.len);
    assert_int_equal(wf_pb_next(&r, &fv), 1);
    assert_int_equal(wf_pb_next(&r, &fl), 1);
    assert_int_equal(wf_pb_next(&r, &f64), 1);
    assert_int_equal(wf_pb_next(&r, &f32), 1);
    uint64_t u;
    int64_t i;
    uint32_t u32;
    int32_t i32;
    double d;
    float x;
    bool bo;
    wf_str_t s;
    assert_int_equal(wf_pb_bytes(&r, &fv, &s), -EBADMSG);
    assert_string_equal(r.err, "wrong wire type for field");
    assert_int_equal(r.err_off, 0);
    assert_int_equal(wf_pb_sub(&r, &f64, &sub), -EBADMSG);
    assert_int_equal(r.err_off, fl.off + 3);
    assert_int_equal(wf_pb_uint64(&r, &fl, &u), -EBADMSG);
    assert_int_equal(r.err_off, 2);
    assert_int_equal(wf_pb_int64(&r, &f64, &i), -EBADMSG);
    assert_int_equal(wf_pb_uint32(&r, &f32, &u32), -EBADMSG);
    assert_int_equal(wf_pb_int32(&r, &fl, &i32), -EBADMSG);
    assert_int_equal(wf_pb_bool(&r, &f64, &bo), -EBADMSG);
    assert_int_equal(wf_pb_sint64(&r, &f32, &i), -EBADMSG);
    assert_int_equal(wf_pb_sint32(&r, &fl, &i32), -EBADMSG);
    assert_int_equal(wf_pb_double(&r, &fv, &d), -EBADMSG);
    assert_int_equal(wf_pb_double(&r, &f32, &d), -EBADMSG);
    assert_int_equal(wf_pb_fixed64(&r, &fl, &u), -EBADMSG);
    assert_int_equal(wf_pb_sfixed64(&r, &fv, &i), -EBADMSG);
    assert_int_equal(wf_pb_float(&r, &f64, &x), -EBADMSG);
    assert_int_equal(wf_pb_fixed32(&r, &fv, &u32), -EBADMSG);
    assert_int_equal(wf_pb_sfixed32(&r, &fl, &i32), -EBADMSG);
    /* The right views still work on the same fields. */
    assert_int_equal(wf_pb_double(&r, &f64, &d), 0);
    assert_int_equal(wf_pb_fixed32(&r, &f32, &u32), 0);
    assert_int_equal(u32, 1);
    wf_buf_free(&b);
}

static size_t collect(wf_pb_rd_t *r, const wf_pb_field_t *f, wf_pb_wire_t elem, uint64_t *out,
                      size_t max, int *rc)
{
    wf_pb_rep_t it;
    *rc = wf_pb_rep_init(r, f, elem, &it);
    if (*rc != 0) {
        return 0;
    }
    size_t n = 0;
    uint64_t v;
    while ((*rc = wf_pb_rep_next(&it, &v)) > 0) {
        assert_true(n < max);
        out[n++] = v;
    }
    return n;
}

static void test_repeated(void **state)
{
    (void)state;
    wf_buf_t b = WF_BUF_INIT, packed = WF_BUF_INIT;
    /* packed varints 1, 300, 2^63 */
    wf_buf_put_uvarint(&packed, 1);
    wf_buf_put_uvarint(&packed, 300);
    wf_buf_put_uvarint(&packed, 1ULL << 63);
    wt_pb_bytes(&b, 1, packed.data, packed.len);
    /* unpacked: one element per field */
    wt_pb_varint(&b, 1, 77);
    /* packed doubles */
    wf_buf_reset(&packed);
    double ds[] = {0.5, -2.0, INFINITY};
    for (int i = 0; i < 3; i++) {
        uint64_t u;
        memcpy(&u, &ds[i], 8);
        wf_buf_put_u64le(&packed, u);
    }
    wt_pb_bytes(&b, 2, packed.data, packed.len);
    wt_pb_double(&b, 2, 4.0);
    /* packed fixed32 */
    wf_buf_reset(&packed);
    wf_buf_put_u32le(&packed, 10);
    wf_buf_put_u32le(&packed, 20);
    wt_pb_bytes(&b, 3, packed.data, packed.len);
    /* empty packed */
    wt_pb_bytes(&b, 4, NULL, 0);

    wf_pb_rd_t r;
    wf_pb_field_t f;
    wf_pb_init(&r, b.data, b.len);
    uint64_t out[8];
    int rc;
    wf_pb_rep_t it;

    assert_int_equal(wf_pb_next(&r, &f), 1);
    assert_int_equal(wf_pb_rep_init(&r, &f, WF_PB_VARINT, &it), 0);
    assert_int_equal(wf_pb_rep_count(&it), 3);
    assert_int_equal(collect(&r, &f, WF_PB_VARINT, out, 8, &rc), 3);
    assert_int_equal(rc, 0);
    assert_true(out[0] == 1 && out[1] == 300 && out[2] == 1ULL << 63);

    assert_int_equal(wf_pb_next(&r, &f), 1);
    assert_int_equal(wf_pb_rep_init(&r, &f, WF_PB_VARINT, &it), 0);
    assert_int_equal(wf_pb_rep_count(&it), 1);
    assert_int_equal(collect(&r, &f, WF_PB_VARINT, out, 8, &rc), 1);
    assert_int_equal(out[0], 77);

    assert_int_equal(wf_pb_next(&r, &f), 1);
    assert_int_equal(wf_pb_rep_init(&r, &f, WF_PB_I64, &it), 0);
    assert_int_equal(wf_pb_rep_count(&it), 3);
    assert_int_equal(collect(&r, &f, WF_PB_I64, out, 8, &rc), 3);
    assert_true(wf_pb_bits_double(out[0]) == 0.5);
    assert_true(wf_pb_bits_double(out[1]) == -2.0);
    assert_true(isinf(wf_pb_bits_double(out[2])));

    assert_int_equal(wf_pb_next(&r, &f), 1);
    assert_int_equal(collect(&r, &f, WF_PB_I64, out, 8, &rc), 1);
    assert_true(wf_pb_bits_double(out[0]) == 4.0);

    assert_int_equal(wf_pb_next(&r, &f), 1);
    assert_int_equal(wf_pb_rep_init(&r, &f, WF_PB_I32, &it), 0);
    assert_int_equal(wf_pb_rep_count(&it), 2);
    assert_int_equal(collect(&r, &f, WF_PB_I32, out, 8, &rc), 2);
    assert_true(out[0] == 10 && out[1] == 20);

    assert_int_equal(wf_pb_next(&r, &f), 1);
    assert_int_equal(wf_pb_rep_init(&r, &f, WF_PB_I64, &it), 0);
    assert_int_equal(wf_pb_rep_count(&it), 0);
    assert_int_equal(collect(&r, &f, WF_PB_I64, out, 8, &rc), 0);
    assert_int_equal(rc, 0);

    /* A fixed64 field used where fixed32 elements are expected is a wire type error. */
    wf_pb_init(&r, b.data, b.len);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(wf_pb_next(&r, &f), 1);
    }
    assert_int_equal(f.wire, WF_PB_I64);
    assert_int_equal(wf_pb_rep_init(&r, &f, WF_PB_I32, &it), -EBADMSG);
    assert_string_equal(r.err, "wrong wire type for field");
    wf_buf_free(&b);
    wf_buf_free(&packed);
}

static void test_repeated_malformed(void **state)
{
    (void)state;
    wf_pb_rd_t r;
    wf_pb_field_t f;
    wf_pb_rep_t it;
    uint64_t v;
    /* 7 bytes cannot be packed fixed64s */
    const uint8_t partial[] = {0x0a, 0x07, 1, 2, 3, 4, 5, 6, 7};
    f = one_field(&r, partial, sizeof(partial));
    assert_int_equal(wf_pb_rep_init(&r, &f, WF_PB_I64, &it), -EBADMSG);
    assert_string_equal(r.err, "packed fixed-width field with a partial element");
    assert_int_equal(r.err_off, 2);
    /* 6 bytes cannot be packed fixed32s */
    const uint8_t partial32[] = {0x0a, 0x06, 1, 2, 3, 4, 5, 6};
    f = one_field(&r, partial32, sizeof(partial32));
    assert_int_equal(wf_pb_rep_init(&r, &f, WF_PB_I32, &it), -EBADMSG);
    /* a packed varint cut short: the first element is fine, the second is not */
    const uint8_t cut[] = {0x0a, 0x03, 0x05, 0x96, 0x81};
    f = one_field(&r, cut, sizeof(cut));
    assert_int_equal(wf_pb_rep_init(&r, &f, WF_PB_VARINT, &it), 0);
    assert_int_equal(wf_pb_rep_count(&it), 1);
    assert_int_equal(wf_pb_rep_next(&it, &v), 1);
    assert_int_equal(v, 5);
    assert_int_equal(wf_pb_rep_next(&it, &v), -EBADMSG);
    assert_string_equal(r.err, "truncated packed varint");
    assert_int_equal(r.err_off, 3);
    /* an overlong packed varint */
    const uint8_t over[] = {0x0a, 0x0b, 0xff, 0xff, 0xff, 0xff, 0xff,
                            0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    f = one_field(&r, over, sizeof(over));
    assert_int_equal(wf_pb_rep_init(&r, &f, WF_PB_VARINT, &it), 0);
    assert_int_equal(wf_pb_rep_next(&it, &v), -EBADMSG);
    assert_string_equal(r.err, "packed varint longer than 64 bits");
}

/* Non-minimal varints are valid protobuf (encoders may pad), and decode to their value. */
static void test_nonminimal_varint(void **state)
{
    (void)state;
    const uint8_t msg[] = {0x88, 0x80, 0x00, 0x85, 0x80, 0x80, 0x00};
    wf_pb_rd_t r;
    wf_pb_field_t f = one_field(&r, msg, sizeof(msg));
    assert_int_equal(f.num, 1);
    assert_int_equal(f.wire, WF_PB_VARINT);
    assert_int_equal(f.u, 5);
    assert_true(wf_pb_done(&r));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_skip_unknown),
        cmocka_unit_test(test_nested),
        cmocka_unit_test(test_nested_bounds),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_wrong_wire_type),
        cmocka_unit_test(test_repeated),
        cmocka_unit_test(test_repeated_malformed),
        cmocka_unit_test(test_nonminimal_varint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
