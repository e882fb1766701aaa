/*
 * test_wf_str.c - string slices, UTF-8 validation against a table of well-formed and ill-formed
 * sequences, the label ordering of wf_str_cmp, and the stability of wf_hash64 (its values end
 * up on disk and in series ids, so a change must be noticed by a test, not by a user).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <ctype.h>
#include <string.h>

#include "wf_str.h"

typedef struct {
    const char *bytes;
    size_t len;
    bool valid;
    const char *what;
} utf8_case_t;

#define U8(s, ok, what)                                                                            \
    {                                                                                              \
        (s), sizeof(s) - 1, (ok), (what)                                                           \
    }

static const utf8_case_t utf8_cases[] = {
    U8("", true, "empty"),
    U8("hello, world", true, "ASCII"),
    U8("\x00", true, "NUL is ASCII"),
    U8("\x7f", true, "DEL"),
    U8("\xc2\x80", true, "U+0080, smallest 2-byte"),
    U8("\xc3\xa9t\xc3\xa9", true, "2-byte e-acute"),
    U8("\xdf\xbf", true, "U+07FF, largest 2-byte"),
    U8("\xe0\xa0\x80", true, "U+0800, smallest 3-byte"),
    U8("\xe2\x82\xac", true, "3-byte euro sign"),
    U8("\xed\x9f\xbf", true, "U+D7FF, just below the surrogates"),
    U8("\xee\x80\x80", true, "U+E000, just above the surrogates"),
    U8("\xef\xbf\xbf", true, "U+FFFF"),
    U8("\xf0\x90\x80\x80", true, "U+10000, smallest 4-byte"),
    U8("\xf0\x9f\x98\x80", true, "4-byte emoji"),
    U8("\xf4\x8f\xbf\xbf", true, "U+10FFFF, largest code point"),
    U8("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z", true, "mixed widths"),

    U8("\xc0\x80", false, "overlong NUL, 2 bytes"),
    U8("\xc1\xbf", false, "overlong U+007F, 2 bytes"),
    U8("\xe0\x80\x80", false, "overlong NUL, 3 bytes"),
    U8("\xe0\x9f\xbf", false, "overlong U+07FF, 3 bytes"),
    U8("\xf0\x80\x80\x80", false, "overlong NUL, 4 bytes"),
    U8("\xf0\x8f\xbf\xbf", false, "overlong U+FFFF, 4 bytes"),
    U8("\xed\xa0\x80", false, "U+D800, first high surrogate"),
    U8("\xed\xaf\xbf", false, "U+DBFF"),
    U8("\xed\xb0\x80", false, "U+DC00, first low surrogate"),
    U8("\xed\xbf\xbf", false, "U+DFFF, last surrogate"),
    U8("\xed\xa0\x80\xed\xb0\x80", false, "CESU-8 surrogate pair"),
    U8("\xf4\x90\x80\x80", false, "U+110000, above the range"),
    U8("\xf5\x80\x80\x80", false, "lead byte F5"),
    U8("\xf7\xbf\xbf\xbf", false, "lead byte F7"),
    U8("\xf8\x88\x80\x80\x80", false, "5-byte form"),
    U8("\xfc\x84\x80\x80\x80\x80", false, "6-byte form"),
    U8("\xfe", false, "byte FE"),
    U8("\xff", false, "byte FF"),
    U8("\xc3", false, "truncated 2-byte"),
    U8("\xe2\x82", false, "truncated 3-byte"),
    U8("\xe2", false, "3-byte lead alone"),
    U8("\xf0\x9f\x98", false, "truncated 4-byte"),
    U8("abc\xf0\x9f", false, "truncated 4-byte at the end of ASCII"),
    U8("\xc3x", false, "2-byte lead followed by ASCII"),
    U8("\xe2\x82x", false, "3-byte sequence interrupted by ASCII"),
    U8("\xf0\x9f\x98\xc3\xa9", false, "4-byte sequence interrupted by a lead byte"),
    U8("\x80", false, "lone continuation byte"),
    U8("\xbf", false, "lone last continuation byte"),
    U8("a\x80z", false, "continuation byte between ASCII"),
    U8("\xc3\xa9\xa9", false, "extra continuation byte after a 2-byte sequence"),
    U8("\xe2\x82\xac\x80", false, "extra continuation byte after a 3-byte sequence"),
};

static void test_utf8_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(utf8_cases) / sizeof(utf8_cases[0]); i++) {
        const utf8_case_t *c = &utf8_cases[i];
        bool got = wf_utf8_valid(c->bytes, c->len);
        if (got != c->valid) {
            fail_msg("case %zu (%s): got %d want %d", i, c->what, got, c->valid);
        }
    }
}

static void test_utf8_length_is_respected(void **state)
{
    (void)state;
    /* The validator looks at exactly n bytes: a valid prefix of an invalid string is valid,
     * and a sequence cut by n is not. */
    assert_true(wf_utf8_valid("ab\xff", 2));
    assert_false(wf_utf8_valid("ab\xff", 3));
    assert_false(wf_utf8_valid("\xe2\x82\xac", 2));
    assert_true(wf_utf8_valid("\xe2\x82\xac", 3));
    assert_true(wf_utf8_valid(NULL, 0));

    /* Every code point from U+0000 to U+10FFFF, encoded by hand, is accepted except the
     * surrogates. */
    for (uint32_t cp = 0; cp <= 0x10ffff; cp++) {
        unsigned char b[4];
        size_t n;
        if (cp < 0x80) {
            b[0] = (unsigned char)cp;
            n = 1;
        } else if (cp < 0x800) {
            b[0] = (unsigned char)(0xc0 | (cp >> 6));
            b[1] = (unsigned char)(0x80 | (cp & 0x3f));
            n = 2;
        } else if (cp < 0x10000) {
            b[0] = (unsigned char)(0xe0 | (cp >> 12));
            b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
            b[2] = (unsigned char)(0x80 | (cp & 0x3f));
            n = 3;
        } else {
            b[0] = (unsigned char)(0xf0 | (cp >> 18));
            b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
            b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
            b[3] = (unsigned char)(0x80 | (cp & 0x3f));
            n = 4;
        }
        bool want = !(cp >= 0xd800 && cp <= 0xdfff);
        if (wf_utf8_valid((const char *)b, n) != want) {
            fail_msg("U+%04X: got %d want %d", (unsigned)cp, !want, want);
        }
    }
}

static int sign(int x)
{
    return x < 0 ? -1 : x > 0 ? 1 : 0;
}

static void test_str_basics(void **state)
{
    (void)state;
    wf_str_t a = wf_str("abc");
    assert_int_equal(a.len, 3);
    wf_str_t n = wf_str(NULL);
    assert_int_equal(n.len, 0);
    wf_str_t lit = WF_STR_LIT("abc");
    assert_int_equal(lit.len, 3);
    assert_true(wf_str_eq(a, lit));
    assert_true(wf_str_eq_c(a, "abc"));
    assert_false(wf_str_eq_c(a, "ab"));
    assert_false(wf_str_eq_c(a, "abd"));
    assert_true(wf_str_eq(n, WF_STR_LIT("")));
    /* Slices are not NUL-terminated: only len bytes count. */
    wf_str_t pre = {"abcdef", 3};
    assert_true(wf_str_eq(pre, a));
}

static void test_str_cmp_order(void **state)
{
    (void)state;
    /* Sorted in the order Prometheus sorts label names and values: bytewise, shorter prefix
     * first, bytes compared unsigned. */
    static const char *const sorted[] = {
        "", "A", "Z", "_", "a", "a\x01", "aa", "ab", "b", "\x7f", "\xc3\xa9", "\xff",
    };
    size_t n = sizeof(sorted) / sizeof(sorted[0]);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++) {
            int want = i < j ? -1 : i > j ? 1 : 0;
            int got = sign(wf_str_cmp(wf_str(sorted[i]), wf_str(sorted[j])));
            if (got != want) {
                fail_msg("cmp(\"%s\", \"%s\") = %d, want %d", sorted[i], sorted[j], got, want);
            }
        }
    }
    /* Embedded NUL bytes are data, not terminators. */
    wf_str_t x = {"a\0b", 3}, y = {"a\0c", 3}, z = {"a", 1};
    assert_int_equal(sign(wf_str_cmp(x, y)), -1);
    assert_int_equal(sign(wf_str_cmp(z, x)), -1);
    assert_int_equal(sign(wf_str_cmp(x, x)), 0);
    wf_str_t e1 = {NULL, 0}, e2 = {"", 0};
    assert_int_equal(wf_str_cmp(e1, e2), 0);
}

static void test_hash64_known_values(void **state)
{
    (void)state;
    /* Pinned outputs. These values are stored (the span store's bloom filters); if this test
     * fails the hash changed and existing data would be misread. */
    assert_true(wf_hash64("", 0, 0) == 0x3746bebafaf2c92bULL);
    assert_true(wf_hash64(NULL, 0, 0) == 0x3746bebafaf2c92bULL); /* the empty slice {NULL, 0} */
    assert_true(wf_hash64("weft", 4, 0) == 0xd8e4d26a335d19a1ULL);
    assert_true(wf_hash64("weft", 4, 1) == 0x8ffc27bfc4fd5e2dULL);
    assert_true(wf_hash64("__name__=\"up\"", 13, 0) == 0x318eeb9067cc3595ULL);
    /* 70 bytes: the four-lane loop, the word loop and the tail. */
    assert_true(wf_hash64("01234567890123456789012345678901234567890123456789012345678901234567"
                          "89",
                          70, 7) == 0x552aa3d281a5ee54ULL);
}

static void test_hash64_properties(void **state)
{
    (void)state;
    const char *s = "job=\"api\",instance=\"10.0.0.1:9090\"";
    size_t n = strlen(s);
    uint64_t h = wf_hash64(s, n, 0);
    /* Deterministic, and independent of the buffer the bytes sit in. */
    char copy[64];
    memcpy(copy, s, n);
    assert_true(wf_hash64(copy, n, 0) == h);
    /* Seeds give different hashes. */
    assert_true(wf_hash64(s, n, 1) != h);
    assert_true(wf_hash64(s, n, 2) != wf_hash64(s, n, 1));
    assert_true(wf_hash64(s, n, UINT64_MAX) != h);
    /* Length matters: a prefix, and a trailing NUL, hash differently. */
    assert_true(wf_hash64(s, n - 1, 0) != h);
    assert_true(wf_hash64("a\0", 2, 0) != wf_hash64("a", 1, 0));
    /* Flipping any single bit of the input changes the hash. */
    for (size_t i = 0; i < n; i++) {
        for (int bit = 0; bit < 8; bit++) {
            copy[i] = (char)(s[i] ^ (1 << bit));
            assert_true(wf_hash64(copy, n, 0) != h);
            copy[i] = s[i];
        }
    }
    /* The finaliser spreads short keys into the high bits: the top byte of the hashes of
     * 256 one-byte keys takes many values, not a handful. */
    int seen[256] = {0};
    int distinct = 0;
    for (int c = 0; c < 256; c++) {
        unsigned char b = (unsigned char)c;
        unsigned top = (unsigned)(wf_hash64(&b, 1, 0) >> 56);
        if (!seen[top]++) {
            distinct++;
        }
    }
    assert_true(distinct > 128);
}

static void test_hex_digit(void **state)
{
    (void)state;
    static const char digits[] = "0123456789abcdef";
    for (int c = -1; c < 256; c++) {
        const char *at = c > 0 ? strchr(digits, tolower(c)) : NULL;
        int want = at != NULL ? (int)(at - digits) : -1;
        assert_int_equal(wf_hex_digit(c), want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hex_digit),
        cmocka_unit_test(test_utf8_table),
        cmocka_unit_test(test_utf8_length_is_respected),
        cmocka_unit_test(test_str_basics),
        cmocka_unit_test(test_str_cmp_order),
        cmocka_unit_test(test_hash64_known_values),
        cmocka_unit_test(test_hash64_properties),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
