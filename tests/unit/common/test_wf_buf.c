/*
 * test_wf_buf.c - growable buffers, printf into buffers, varint/zigzag encodings and the
 * bounds-checked reader (wf_buf.h). The reader is the first thing untrusted bytes meet, so the
 * refusals (truncated input, overlong varints) are tested as carefully as the happy path.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "wf_alloc.h"
#include "wt_util.h"
#include "wf_buf.h"

/* Under ASan an impossible allocation must return NULL as libc's does, so that the OOM path
 * (log and abort) is what the death test below sees in the sanitizer build too. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}

static void test_init_empty(void **state)
{
    (void)state;
    wf_buf_t b = WF_BUF_INIT;
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    /* An empty append does not allocate. */
    wf_buf_append(&b, "x", 0);
    assert_null(b.data);
    assert_string_equal(wf_buf_cstr(&b), "");
    assert_int_equal(b.len, 0);
    wf_buf_free(&b);
    assert_null(b.data);
    wf_buf_free(&b); /* freeing twice is harmless: the buffer is reset */
}

static void test_growth_keeps_content(void **state)
{
    (void)state;
    wf_buf_t b;
    wf_buf_init(&b);
    /* 100000 bytes, one at a time and in chunks, cross many doublings. */
    for (unsigned i = 0; i < 50000; i++) {
        wf_buf_putc(&b, (uint8_t)(i * 7));
    }
    uint8_t chunk[1000];
    for (unsigned i = 0; i < sizeof(chunk); i++) {
        chunk[i] = (uint8_t)(i ^ 0x5a);
    }
    for (int k = 0; k < 50; k++) {
        wf_buf_append(&b, chunk, sizeof(chunk));
    }
    assert_int_equal(b.len, 100000);
    assert_true(b.cap >= b.len);
    for (unsigned i = 0; i < 50000; i++) {
        assert_int_equal(b.data[i], (uint8_t)(i * 7));
    }
    for (int k = 0; k < 50; k++) {
        assert_memory_equal(b.data + 50000 + (size_t)k * sizeof(chunk), chunk, sizeof(chunk));
    }
    /* reserve returns the end and guarantees room without changing len. */
    size_t len = b.len;
    uint8_t *p = wf_buf_reserve(&b, 1 << 20);
    assert_ptr_equal(p, b.data + len);
    assert_true(b.cap - b.len >= (1u << 20));
    assert_int_equal(b.len, len);
    memset(p, 0xee, 1 << 20); /* ASan catches a short reservation */

    wf_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_non_null(b.data);
    wf_buf_puts(&b, "hello");
    wf_buf_puts(&b, ", world");
    assert_string_equal(wf_buf_cstr(&b), "hello, world");
    assert_int_equal(b.len, 12); /* the NUL of cstr is not counted */
    wf_buf_free(&b);
}

static void test_printf(void **state)
{
    (void)state;
    wf_buf_t b = WF_BUF_INIT;
    wf_buf_printf(&b, "%s=%d", "a", 42);
    wf_buf_printf(&b, "%s", "");
    wf_buf_printf(&b, " %llu", (unsigned long long)UINT64_MAX);
    assert_string_equal(wf_buf_cstr(&b), "a=42 18446744073709551615");

    /* Outputs of 127, 128 and 129 bytes sit on the first-try boundary of vprintf. */
    for (size_t n = 120; n < 140; n++) {
        char want[200];
        memset(want, 'a' + (int)(n % 26), n);
        want[n] = '\0';
        wf_buf_reset(&b);
        wf_buf_puts(&b, "<");
        wf_buf_printf(&b, "%s", want);
        wf_buf_puts(&b, ">");
        assert_int_equal(b.len, n + 2);
        assert_int_equal(b.data[0], '<');
        assert_memory_equal(b.data + 1, want, n);
        assert_int_equal(b.data[n + 1], '>');
    }

    /* A long string (well beyond any first guess) after existing content. */
    size_t big = 100000;
    char *s = wf_malloc(big + 1);
    for (size_t i = 0; i < big; i++) {
        s[i] = (char)('0' + i % 10);
    }
    s[big] = '\0';
    wf_buf_reset(&b);
    wf_buf_puts(&b, "head:");
    wf_buf_printf(&b, "%s|%d|%s", s, -7, s);
    assert_int_equal(b.len, 5 + big + 4 + big);
    assert_memory_equal(b.data, "head:", 5);
    assert_memory_equal(b.data + 5, s, big);
    assert_memory_equal(b.data + 5 + big, "|-7|", 4);
    assert_memory_equal(b.data + 5 + big + 4, s, big);
    wf_free(s);
    wf_buf_free(&b);
}

static void test_detach(void **state)
{
    (void)state;
    wf_buf_t b = WF_BUF_INIT;
    size_t len = 99;
    assert_null(wf_buf_detach(&b, &len));
    assert_int_equal(len, 0);
    wf_buf_puts(&b, "abc");
    uint8_t *p = wf_buf_detach(&b, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(p, "abc", 3);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    wf_free(p);
}

/* Encode v, check the exact bytes, and read them back. */
static void check_uvarint(uint64_t v, const uint8_t *want, size_t wantlen)
{
    uint8_t raw[10];
    size_t n = wf_uvarint_put(raw, v);
    assert_int_equal(n, wantlen);
    assert_memory_equal(raw, want, wantlen);

    wf_buf_t b = WF_BUF_INIT;
    wf_buf_putc(&b, 0xaa);
    wf_buf_put_uvarint(&b, v);
    wf_buf_putc(&b, 0xbb);
    assert_int_equal(b.len, wantlen + 2);
    assert_memory_equal(b.data + 1, want, wantlen);

    wf_rd_t r;
    wf_rd_init(&r, b.data, b.len);
    uint8_t c;
    uint64_t got = ~v;
    assert_int_equal(wf_rd_u8(&r, &c), 0);
    assert_int_equal(c, 0xaa);
    assert_int_equal(wf_rd_uvarint(&r, &got), 0);
    assert_true(got == v);
    assert_int_equal(wf_rd_u8(&r, &c), 0);
    assert_int_equal(c, 0xbb);
    assert_int_equal(wf_rd_left(&r), 0);

    /* Every strict prefix of the encoding is refused. */
    for (size_t cut = 0; cut < wantlen; cut++) {
        wf_rd_init(&r, want, cut);
        got = 12345;
        assert_int_equal(wf_rd_uvarint(&r, &got), -EBADMSG);
        assert_int_equal(got, 12345);
    }
    wf_buf_free(&b);
}

static void test_uvarint_boundaries(void **state)
{
    (void)state;
    check_uvarint(0, (const uint8_t[]){0x00}, 1);
    check_uvarint(1, (const uint8_t[]){0x01}, 1);
    check_uvarint(127, (const uint8_t[]){0x7f}, 1);
    check_uvarint(128, (const uint8_t[]){0x80, 0x01}, 2);
    check_uvarint(300, (const uint8_t[]){0xac, 0x02}, 2);
    check_uvarint(16383, (const uint8_t[]){0xff, 0x7f}, 2);
    check_uvarint(16384, (const uint8_t[]){0x80, 0x80, 0x01}, 3);
    check_uvarint(UINT32_MAX, (const uint8_t[]){0xff, 0xff, 0xff, 0xff, 0x0f}, 5);
    check_uvarint((uint64_t)INT64_MAX,
                  (const uint8_t[]){0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, 9);
    check_uvarint(1ULL << 63,
                  (const uint8_t[]){0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01},
                  10);
    check_uvarint(UINT64_MAX,
                  (const uint8_t[]){0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
                  10);
}

static void test_uvarint_all_widths(void **state)
{
    (void)state;
    /* 2^k - 1 and 2^k for every k: each width change of the encoding. */
    wf_buf_t b = WF_BUF_INIT;
    for (unsigned k = 0; k < 64; k++) {
        uint64_t lo = (1ULL << k) - 1, hi = 1ULL << k;
        wf_buf_put_uvarint(&b, lo);
        wf_buf_put_uvarint(&b, hi);
    }
    wf_rd_t r;
    wf_rd_init(&r, b.data, b.len);
    for (unsigned k = 0; k < 64; k++) {
        uint64_t v;
        assert_int_equal(wf_rd_uvarint(&r, &v), 0);
        assert_true(v == (1ULL << k) - 1);
        assert_int_equal(wf_rd_uvarint(&r, &v), 0);
        assert_true(v == 1ULL << k);
    }
    assert_int_equal(wf_rd_left(&r), 0);
    wf_buf_free(&b);
}

static void test_zigzag(void **state)
{
    (void)state;
    /* The protobuf sint64 mapping, exactly. */
    assert_true(wf_zigzag_enc(0) == 0);
    assert_true(wf_zigzag_enc(-1) == 1);
    assert_true(wf_zigzag_enc(1) == 2);
    assert_true(wf_zigzag_enc(-2) == 3);
    assert_true(wf_zigzag_enc(63) == 126);
    assert_true(wf_zigzag_enc(-64) == 127);
    assert_true(wf_zigzag_enc(64) == 128);
    assert_true(wf_zigzag_enc(INT64_MAX) == UINT64_MAX - 1);
    assert_true(wf_zigzag_enc(INT64_MIN) == UINT64_MAX);

    static const int64_t vals[] = {
        0,   1,    -1,        63,        -64,       64,        -65,           127,
        128, -128, INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN, INT64_MIN + 1, INT64_MAX - 1};
    wf_buf_t b = WF_BUF_INIT;
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        assert_true(wf_zigzag_dec(wf_zigzag_enc(vals[i])) == vals[i]);
        wf_buf_put_svarint(&b, vals[i]);
    }
    wf_rd_t r;
    wf_rd_init(&r, b.data, b.len);
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        int64_t v;
        assert_int_equal(wf_rd_svarint(&r, &v), 0);
        assert_true(v == vals[i]);
    }
    assert_int_equal(wf_rd_left(&r), 0);
    int64_t v = 77;
    assert_int_equal(wf_rd_svarint(&r, &v), -EBADMSG);
    assert_int_equal(v, 77);

    /* -64 and 63 still take one byte, -65 and 64 take two. */
    uint8_t raw[10];
    assert_int_equal(wf_uvarint_put(raw, wf_zigzag_enc(-64)), 1);
    assert_int_equal(wf_uvarint_put(raw, wf_zigzag_enc(63)), 1);
    assert_int_equal(wf_uvarint_put(raw, wf_zigzag_enc(-65)), 2);
    assert_int_equal(wf_uvarint_put(raw, wf_zigzag_enc(64)), 2);
    assert_int_equal(wf_uvarint_put(raw, wf_zigzag_enc(INT64_MIN)), 10);
    wf_buf_free(&b);
}

static void test_uvarint_malformed(void **state)
{
    (void)state;
    wf_rd_t r;
    uint64_t v = 5;

    /* Empty input. */
    wf_rd_init(&r, "", 0);
    assert_int_equal(wf_rd_uvarint(&r, &v), -EBADMSG);
    assert_int_equal(v, 5);

    /* Ten continuation bytes and an 11th byte: longer than any 64-bit value. */
    static const uint8_t eleven[11] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                                       0x80, 0x80, 0x80, 0x80, 0x01};
    wf_rd_init(&r, eleven, sizeof(eleven));
    assert_int_equal(wf_rd_uvarint(&r, &v), -EBADMSG);
    assert_int_equal(v, 5);

    /* A 10th byte above 1 would carry bits past bit 63. */
    for (unsigned last = 0x02; last <= 0xff; last++) {
        uint8_t ten[10] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, (uint8_t)last};
        wf_rd_init(&r, ten, sizeof(ten));
        assert_int_equal(wf_rd_uvarint(&r, &v), -EBADMSG);
        assert_int_equal(v, 5);
    }
    /* ... while 0 and 1 are fine (0 is non-minimal, protobuf accepts it). */
    static const uint8_t ten0[10] = {0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
    wf_rd_init(&r, ten0, sizeof(ten0));
    assert_int_equal(wf_rd_uvarint(&r, &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(wf_rd_left(&r), 0);

    /* A non-minimal two-byte zero decodes to zero and consumes both bytes. */
    static const uint8_t nonmin[] = {0x80, 0x00, 0x07};
    wf_rd_init(&r, nonmin, sizeof(nonmin));
    assert_int_equal(wf_rd_uvarint(&r, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(wf_rd_left(&r), 1);

    /* Truncated svarint refuses like uvarint. */
    int64_t s = 9;
    static const uint8_t cut[] = {0xff, 0xff};
    wf_rd_init(&r, cut, sizeof(cut));
    assert_int_equal(wf_rd_svarint(&r, &s), -EBADMSG);
    assert_int_equal(s, 9);
}

static void test_fixed_le(void **state)
{
    (void)state;
    wf_buf_t b = WF_BUF_INIT;
    wf_buf_put_u32le(&b, 0x01020304u);
    wf_buf_put_u64le(&b, 0x0102030405060708ULL);
    wf_buf_put_u32le(&b, UINT32_MAX);
    wf_buf_put_u64le(&b, 0);
    static const uint8_t want[] = {0x04, 0x03, 0x02, 0x01, 0x08, 0x07, 0x06, 0x05,
                                   0x04, 0x03, 0x02, 0x01, 0xff, 0xff, 0xff, 0xff,
                                   0,    0,    0,    0,    0,    0,    0,    0};
    assert_int_equal(b.len, sizeof(want));
    assert_memory_equal(b.data, want, sizeof(want));

    wf_rd_t r;
    wf_rd_init(&r, b.data, b.len);
    uint32_t a32;
    uint64_t a64;
    assert_int_equal(wf_rd_u32le(&r, &a32), 0);
    assert_int_equal(a32, 0x01020304u);
    assert_int_equal(wf_rd_u64le(&r, &a64), 0);
    assert_true(a64 == 0x0102030405060708ULL);
    assert_int_equal(wf_rd_u32le(&r, &a32), 0);
    assert_int_equal(a32, UINT32_MAX);
    assert_int_equal(wf_rd_u64le(&r, &a64), 0);
    assert_true(a64 == 0);
    assert_int_equal(wf_rd_left(&r), 0);

    /* 3 bytes are not a u32, 7 are not a u64; the reader does not move on refusal. */
    for (size_t n = 0; n < 4; n++) {
        wf_rd_init(&r, want, n);
        a32 = 42;
        assert_int_equal(wf_rd_u32le(&r, &a32), -EBADMSG);
        assert_int_equal(a32, 42);
        assert_int_equal(wf_rd_left(&r), n);
    }
    for (size_t n = 0; n < 8; n++) {
        wf_rd_init(&r, want, n);
        a64 = 42;
        assert_int_equal(wf_rd_u64le(&r, &a64), -EBADMSG);
        assert_true(a64 == 42);
        assert_int_equal(wf_rd_left(&r), n);
    }
    wf_buf_free(&b);
}

static void test_rd_bytes_u8(void **state)
{
    (void)state;
    static const uint8_t in[] = {'a', 'b', 'c', 'd', 'e'};
    wf_rd_t r;
    wf_rd_init(&r, in, sizeof(in));
    const uint8_t *p = NULL;
    assert_int_equal(wf_rd_bytes(&r, 0, &p), 0);
    assert_ptr_equal(p, in);
    assert_int_equal(wf_rd_bytes(&r, 2, &p), 0);
    assert_ptr_equal(p, in); /* borrowed, not copied */
    assert_int_equal(wf_rd_left(&r), 3);
    /* Asking for more than is left, including a size that would wrap a pointer. */
    p = NULL;
    assert_int_equal(wf_rd_bytes(&r, 4, &p), -EBADMSG);
    assert_int_equal(wf_rd_bytes(&r, SIZE_MAX, &p), -EBADMSG);
    assert_null(p);
    assert_int_equal(wf_rd_left(&r), 3);
    uint8_t c;
    assert_int_equal(wf_rd_u8(&r, &c), 0);
    assert_int_equal(c, 'c');
    assert_int_equal(wf_rd_bytes(&r, 2, &p), 0);
    assert_ptr_equal(p, in + 3);
    assert_int_equal(wf_rd_left(&r), 0);
    c = 1;
    assert_int_equal(wf_rd_u8(&r, &c), -EBADMSG);
    assert_int_equal(c, 1);
}

static void reserve_wrapping(void)
{
    wf_buf_t b = WF_BUF_INIT;
    wf_buf_puts(&b, "abc");
    /* len + n wraps to 2: this must stop the program, not hand back a 64-byte buffer. */
    wf_buf_reserve(&b, SIZE_MAX);
    wf_buf_free(&b);
}

static void reserve_all(void)
{
    wf_buf_t b = WF_BUF_INIT;
    wf_buf_reserve(&b, SIZE_MAX); /* representable, impossible: the OOM abort */
    wf_buf_free(&b);
}

static void test_reserve_absurd(void **state)
{
    (void)state;
    assert_true(wt_aborts(reserve_wrapping));
    assert_true(wt_aborts(reserve_all));
}

/* RFC 4648 §10 test vectors, and hex. */
static void test_hex_base64(void **state)
{
    static const char *const in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const b64[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                      "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    static const char *const hex[] = {"",         "66",         "666f",        "666f6f",
                                      "666f6f62", "666f6f6261", "666f6f626172"};
    for (size_t i = 0; i < 7; i++) {
        wf_buf_t b = WF_BUF_INIT;
        wf_buf_put_base64(&b, (const uint8_t *)in[i], strlen(in[i]));
        assert_int_equal(b.len, strlen(b64[i]));
        assert_memory_equal(b.data ? (const char *)b.data : "", b64[i], b.len);
        wf_buf_reset(&b);
        wf_buf_put_hex(&b, (const uint8_t *)in[i], strlen(in[i]));
        assert_int_equal(b.len, strlen(hex[i]));
        assert_memory_equal(b.data ? (const char *)b.data : "", hex[i], b.len);
        wf_buf_free(&b);
    }
    wf_buf_t b = WF_BUF_INIT;
    const uint8_t bin[] = {0x00, 0xff, 0x10, 0xab};
    wf_buf_put_hex(&b, bin, 4);
    assert_memory_equal(b.data, "00ff10ab", 8);
    wf_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_empty),
        cmocka_unit_test(test_hex_base64),
        cmocka_unit_test(test_growth_keeps_content),
        cmocka_unit_test(test_printf),
        cmocka_unit_test(test_detach),
        cmocka_unit_test(test_uvarint_boundaries),
        cmocka_unit_test(test_uvarint_all_widths),
        cmocka_unit_test(test_zigzag),
        cmocka_unit_test(test_uvarint_malformed),
        cmocka_unit_test(test_fixed_le),
        cmocka_unit_test(test_rd_bytes_u8),
        cmocka_unit_test(test_reserve_absurd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
