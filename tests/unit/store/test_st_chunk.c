/*
 * test_st_chunk.c - unit tests of the sample chunk codec (store/st_chunk.c): bit-exact round
 * trips of many value and timestamp shapes, head chunks read while being appended, seal
 * equality, refusal of out-of-order and unencodable timestamps, refusal of corrupt input, and
 * the compression figures (printed; only the integer counter's bound is asserted).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "st_chunk.h"
#include "st_store.h"
#include "wf_alloc.h"
#include "wf_err.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

typedef struct {
    int64_t *ts;
    double *v;
    size_t n;
} series_t;

static uint64_t rng_state = 0x243f6a8885a308d3ULL;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int64_t rnd_range(int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
}

static uint64_t bits_of(double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    return u;
}

static double dbl_of(uint64_t u)
{
    double d;
    memcpy(&d, &u, 8);
    return d;
}

static series_t series_new(size_t n)
{
    series_t s = {wf_calloc(n ? n : 1, sizeof(int64_t)), wf_calloc(n ? n : 1, sizeof(double)), n};
    return s;
}

static void series_free(series_t *s)
{
    wf_free(s->ts);
    wf_free(s->v);
}

/* Fill timestamps: start, then interval +- jitter (strictly increasing). */
static void fill_ts(series_t *s, int64_t start, int64_t interval, int64_t jitter)
{
    for (size_t i = 0; i < s->n; i++) {
        s->ts[i] = start + (int64_t)i * interval + (jitter ? rnd_range(-jitter, jitter) : 0);
    }
}

/* Decode data and check it holds exactly s (bit-exact values). */
static void check_decodes(const uint8_t *data, size_t len, const series_t *s, size_t n)
{
    st_chunk_iter_t it;
    assert_int_equal(st_chunk_iter_init(&it, data, len), 0);
    assert_int_equal(st_chunk_iter_count(&it), n);
    for (size_t i = 0; i < n; i++) {
        int64_t ts = 0;
        double v = 0;
        assert_int_equal(st_chunk_iter_next(&it, &ts, &v), 1);
        assert_int_equal(ts, s->ts[i]);
        assert_int_equal(bits_of(v), bits_of(s->v[i]));
    }
    int64_t ts;
    double v;
    assert_int_equal(st_chunk_iter_next(&it, &ts, &v), 0);
    assert_int_equal(st_chunk_iter_next(&it, &ts, &v), 0);
    st_chunk_iter_free(&it);
}

/* Encode s, check the head decodes, seal it, check the sealed form decodes. Returns the sealed
 * size. */
static size_t round_trip(const series_t *s)
{
    st_chunk_enc_t e;
    st_chunk_enc_init(&e);
    for (size_t i = 0; i < s->n; i++) {
        assert_int_equal(st_chunk_enc_append(&e, s->ts[i], s->v[i]), 0);
    }
    assert_int_equal(e.count, s->n);
    if (s->n > 0) {
        assert_int_equal(e.mint, s->ts[0]);
        assert_int_equal(e.maxt, s->ts[s->n - 1]);
        assert_int_equal(bits_of(e.last_value), bits_of(s->v[s->n - 1]));
    }
    size_t len;
    const uint8_t *b = st_chunk_enc_bytes(&e, &len);
    check_decodes(b, len, s, s->n);

    wf_buf_t sealed = WF_BUF_INIT;
    assert_int_equal(st_chunk_seal(b, len, &sealed), 0);
    check_decodes(sealed.data, sealed.len, s, s->n);
    /* sealing a sealed chunk is stable in content */
    wf_buf_t twice = WF_BUF_INIT;
    assert_int_equal(st_chunk_seal(sealed.data, sealed.len, &twice), 0);
    check_decodes(twice.data, twice.len, s, s->n);
    size_t out = sealed.len;
    assert_true(sealed.len <= len || sealed.len <= 18);
    wf_buf_free(&twice);
    wf_buf_free(&sealed);
    st_chunk_enc_free(&e);
    return out;
}

static void test_empty(void **state)
{
    (void)state;
    st_chunk_enc_t e;
    st_chunk_enc_init(&e);
    size_t len;
    const uint8_t *b = st_chunk_enc_bytes(&e, &len);
    series_t s = series_new(0);
    check_decodes(b, len, &s, 0);
    round_trip(&s);
    series_free(&s);
    st_chunk_enc_free(&e);
}

static void test_one_sample(void **state)
{
    (void)state;
    const double vals[] = {0.0,
                           -0.0,
                           1.0,
                           -1.0,
                           0.5,
                           NAN,
                           INFINITY,
                           -INFINITY,
                           1e300,
                           4e15,
                           9007199254740991.0,
                           -9007199254740991.0,
                           9007199254740992.0};
    const int64_t tss[] = {0, 1, -1, INT64_MAX, INT64_MIN, 1700000000000};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        for (size_t j = 0; j < sizeof(tss) / sizeof(tss[0]); j++) {
            series_t s = series_new(1);
            s.ts[0] = tss[j];
            s.v[0] = vals[i];
            round_trip(&s);
            series_free(&s);
        }
    }
}

static void test_constant(void **state)
{
    (void)state;
    const double vals[] = {0.0, 42.0, 3.25, -0.0, NAN};
    for (size_t k = 0; k < sizeof(vals) / sizeof(vals[0]); k++) {
        series_t s = series_new(480);
        fill_ts(&s, 1700000000000, 15000, 0);
        for (size_t i = 0; i < s.n; i++) {
            s.v[i] = vals[k];
        }
        size_t sz = round_trip(&s);
        /* exact interval and constant value: 2 bits a sample plus the header */
        assert_true(sz < 14 + 8 + 8 + 480 * 2 / 8 + 4);
        series_free(&s);
    }
}

static void test_counter_jitter(void **state)
{
    (void)state;
    series_t s = series_new(480);
    fill_ts(&s, 1700000000000, 15000, 10);
    double c = 1000;
    for (size_t i = 0; i < s.n; i++) {
        c += (double)rnd_range(0, 30);
        s.v[i] = c;
    }
    round_trip(&s);
    series_free(&s);
}

static void test_random_floats(void **state)
{
    (void)state;
    series_t s = series_new(1000);
    fill_ts(&s, 1000, 1000, 499);
    for (size_t i = 0; i < s.n; i++) {
        /* any bit pattern at all: random NaNs, denormals, infinities included */
        s.v[i] = dbl_of(rnd());
    }
    round_trip(&s);
    for (size_t i = 0; i < s.n; i++) {
        s.v[i] = (double)rnd_range(-1000000, 1000000) / 1024.0;
    }
    round_trip(&s);
    series_free(&s);
}

static void test_special_values(void **state)
{
    (void)state;
    const uint64_t pats[] = {
        0x7ff0000000000002ULL,                        /* Prometheus staleness marker */
        0x7ff8000000000000ULL,                        /* quiet NaN */
        0xfff8000000000001ULL,                        /* negative NaN with payload */
        0x7ff0000000000001ULL,                        /* signalling NaN */
        0x8000000000000000ULL,                        /* -0.0 */
        0x0000000000000000ULL, 0x7ff0000000000000ULL, /* +Inf */
        0xfff0000000000000ULL,                        /* -Inf */
        0x0000000000000001ULL,                        /* smallest denormal */
        0x800fffffffffffffULL,                        /* negative denormal */
        0x4340000000000000ULL,                        /* 2^53: not integer mode */
        0x433fffffffffffffULL,                        /* 2^53 - 1 */
        0xc33fffffffffffffULL,                        /* -(2^53 - 1) */
    };
    size_t np = sizeof(pats) / sizeof(pats[0]);
    /* every ordered pair, starting in integer and in float mode */
    for (size_t a = 0; a < np; a++) {
        for (size_t b = 0; b < np; b++) {
            series_t s = series_new(6);
            fill_ts(&s, -5000, 1000, 0);
            s.v[0] = 7.0;
            s.v[1] = dbl_of(pats[a]);
            s.v[2] = dbl_of(pats[b]);
            s.v[3] = 8.0;
            s.v[4] = dbl_of(pats[a]);
            s.v[5] = dbl_of(pats[a]);
            round_trip(&s);
            s.v[0] = dbl_of(pats[b]);
            round_trip(&s);
            series_free(&s);
        }
    }
}

static void test_int_to_float_switch(void **state)
{
    (void)state;
    series_t s = series_new(300);
    fill_ts(&s, 1700000000000, 15000, 5);
    for (size_t i = 0; i < s.n; i++) {
        s.v[i] = i < 150 ? (double)(i * 3) : (double)i * 0.1;
    }
    round_trip(&s);
    /* staleness marker in the middle of a counter */
    for (size_t i = 0; i < s.n; i++) {
        s.v[i] = i == 200 ? dbl_of(0x7ff0000000000002ULL) : (double)i;
    }
    round_trip(&s);
    /* huge integer jumps: the widest integer buckets */
    for (size_t i = 0; i < s.n; i++) {
        s.v[i] = (double)((i % 2) ? (1LL << 53) - 1 - (int64_t)i : -(1LL << 53) + 1 + (int64_t)i);
    }
    round_trip(&s);
    series_free(&s);
}

static void test_timestamps(void **state)
{
    (void)state;
    series_t s = series_new(64);
    /* negative dods, gaps of days, irregular steps */
    int64_t t = -3 * 86400000LL;
    for (size_t i = 0; i < s.n; i++) {
        int64_t steps[] = {1, 15000, 14990, 86400000LL * 3, 2, 1LL << 40, 7};
        t += steps[rnd() % 7];
        s.ts[i] = t;
        s.v[i] = (double)i;
    }
    round_trip(&s);
    /* near the limits */
    s.n = 4;
    s.ts[0] = INT64_MIN;
    s.ts[1] = -1;
    s.ts[2] = INT64_MAX - 1;
    s.ts[3] = INT64_MAX;
    round_trip(&s);
    s.ts[0] = INT64_MIN + 1;
    s.ts[1] = 0;
    s.ts[2] = INT64_MAX - 10;
    s.ts[3] = INT64_MAX;
    round_trip(&s);
    series_free(&s);

    /* a delta wider than int64 (the whole range in one step) is still exact */
    series_t x = series_new(3);
    x.ts[0] = INT64_MIN;
    x.ts[1] = INT64_MAX - 1;
    x.ts[2] = INT64_MAX;
    x.v[0] = 1.0;
    x.v[1] = 2.0;
    x.v[2] = -3.0;
    round_trip(&x);
    x.n = 2;
    x.ts[1] = INT64_MAX;
    round_trip(&x);
    series_free(&x);
}

static void test_out_of_order(void **state)
{
    (void)state;
    st_chunk_enc_t e;
    st_chunk_enc_init(&e);
    assert_int_equal(st_chunk_enc_append(&e, 1000, 1.0), 0);
    assert_int_equal(st_chunk_enc_append(&e, 2000, 2.0), 0);
    assert_int_equal(st_chunk_enc_append(&e, 2000, 2.0), ST_E_OUT_OF_ORDER);
    assert_int_equal(st_chunk_enc_append(&e, 1999, 3.0), ST_E_OUT_OF_ORDER);
    assert_int_equal(st_chunk_enc_append(&e, INT64_MIN, 3.0), ST_E_OUT_OF_ORDER);
    assert_int_equal(st_chunk_enc_append(&e, 2001, 3.5), 0);
    assert_int_equal(e.count, 3);
    assert_int_equal(e.maxt, 2001);
    series_t s = series_new(3);
    s.ts[0] = 1000;
    s.ts[1] = 2000;
    s.ts[2] = 2001;
    s.v[0] = 1.0;
    s.v[1] = 2.0;
    s.v[2] = 3.5;
    size_t len;
    const uint8_t *b = st_chunk_enc_bytes(&e, &len);
    check_decodes(b, len, &s, 3);
    series_free(&s);
    st_chunk_enc_free(&e);
}

static void test_head_while_appending(void **state)
{
    (void)state;
    series_t s = series_new(400);
    fill_ts(&s, 1700000000000, 15000, 7);
    for (size_t i = 0; i < s.n; i++) {
        s.v[i] = i < 100 ? (double)(i * i) : (i < 300 ? (double)i / 3.0 : dbl_of(rnd()));
    }
    st_chunk_enc_t e;
    st_chunk_enc_init(&e);
    for (size_t i = 0; i < s.n; i++) {
        assert_int_equal(st_chunk_enc_append(&e, s.ts[i], s.v[i]), 0);
        size_t len;
        const uint8_t *b = st_chunk_enc_bytes(&e, &len);
        check_decodes(b, len, &s, i + 1);
        /* a copy taken now stays valid whatever comes later */
        if (i == 150) {
            wf_buf_t snap = WF_BUF_INIT;
            wf_buf_append(&snap, b, len);
            for (size_t j = i + 1; j < s.n; j++) {
                assert_int_equal(st_chunk_enc_append(&e, s.ts[j], s.v[j]), 0);
            }
            check_decodes(snap.data, snap.len, &s, i + 1);
            wf_buf_free(&snap);
            break;
        }
    }
    st_chunk_enc_free(&e);
    series_free(&s);
}

static void test_10k(void **state)
{
    (void)state;
    series_t s = series_new(10000);
    fill_ts(&s, 1700000000000, 15000, 10);
    double g = 0.5;
    for (size_t i = 0; i < s.n; i++) {
        g += (double)rnd_range(-100, 100) / 1000.0;
        s.v[i] = i % 1000 == 999 ? dbl_of(0x7ff0000000000002ULL) : g;
    }
    round_trip(&s);
    for (size_t i = 0; i < s.n; i++) {
        s.v[i] = (double)(i * 7 + (size_t)rnd_range(0, 3));
    }
    round_trip(&s);
    series_free(&s);
}

/* Build a valid 200-sample chunk (int then float) for the corruption tests. */
static void make_chunk(wf_buf_t *out, int sealed, series_t *s)
{
    *s = series_new(200);
    fill_ts(s, 1700000000000, 15000, 5);
    for (size_t i = 0; i < s->n; i++) {
        s->v[i] = i < 120 ? (double)(i * 11) : (double)i * 1.37;
    }
    st_chunk_enc_t e;
    st_chunk_enc_init(&e);
    for (size_t i = 0; i < s->n; i++) {
        assert_int_equal(st_chunk_enc_append(&e, s->ts[i], s->v[i]), 0);
    }
    size_t len;
    const uint8_t *b = st_chunk_enc_bytes(&e, &len);
    if (sealed) {
        assert_int_equal(st_chunk_seal(b, len, out), 0);
    } else {
        wf_buf_append(out, b, len);
    }
    st_chunk_enc_free(&e);
}

/* Decode to the end; returns the number of samples or the error. Asserts termination. */
static int decode_all(const uint8_t *data, size_t len)
{
    st_chunk_iter_t it;
    int rc = st_chunk_iter_init(&it, data, len);
    if (rc < 0) {
        return rc;
    }
    int64_t ts;
    double v;
    uint32_t n = 0;
    while ((rc = st_chunk_iter_next(&it, &ts, &v)) == 1) {
        n++;
        assert_true(n <= st_chunk_iter_count(&it));
    }
    if (rc < 0) {
        /* stays failed */
        assert_int_equal(st_chunk_iter_next(&it, &ts, &v), WF_E_CORRUPT);
    }
    st_chunk_iter_free(&it);
    return rc < 0 ? rc : (int)n;
}

static void test_corrupt_truncation(void **state)
{
    (void)state;
    for (int sealed = 0; sealed < 2; sealed++) {
        wf_buf_t b = WF_BUF_INIT;
        series_t s;
        make_chunk(&b, sealed, &s);
        assert_int_equal(decode_all(b.data, b.len), 200);
        for (size_t l = 0; l < b.len; l++) {
            /* an exact-size copy so that ASan sees any read past the end */
            uint8_t *c = wf_malloc(l ? l : 1);
            memcpy(c, b.data, l);
            int rc = decode_all(c, l);
            /* the padding of the last byte may be dropped only when it holds no sample */
            assert_int_equal(rc, WF_E_CORRUPT);
            wf_buf_t o = WF_BUF_INIT;
            assert_int_equal(st_chunk_seal(c, l, &o), WF_E_CORRUPT);
            wf_buf_free(&o);
            wf_free(c);
        }
        wf_buf_free(&b);
        series_free(&s);
    }
}

static void test_corrupt_count_and_flips(void **state)
{
    (void)state;
    wf_buf_t b = WF_BUF_INIT;
    series_t s;
    make_chunk(&b, 0, &s);
    /* a count larger than the samples present */
    uint8_t *c = wf_malloc(b.len);
    memcpy(c, b.data, b.len);
    uint32_t counts[] = {201, 300, 0xffffffffu, 1u << 20};
    for (size_t k = 0; k < 4; k++) {
        for (int i = 0; i < 4; i++) {
            c[2 + i] = (uint8_t)(counts[k] >> (8 * i));
        }
        assert_int_equal(decode_all(c, b.len), WF_E_CORRUPT);
    }
    /* a smaller count leaves bits unread: the chunk is damaged */
    c[2] = 17;
    c[3] = c[4] = c[5] = 0;
    assert_int_equal(decode_all(c, b.len), WF_E_CORRUPT);
    c[2] = 199;
    assert_int_equal(decode_all(c, b.len), WF_E_CORRUPT);
    /* a padding count that does not match the stream */
    memcpy(c, b.data, b.len);
    c[1] ^= 0x02;
    assert_int_equal(decode_all(c, b.len), WF_E_CORRUPT);
    /* bad form and mode bytes */
    memcpy(c, b.data, b.len);
    c[0] = 2;
    assert_int_equal(decode_all(c, b.len), WF_E_CORRUPT);
    c[0] = 0;
    c[1] = 0x30; /* predictor 3 does not exist */
    assert_int_equal(decode_all(c, b.len), WF_E_CORRUPT);
    wf_free(c);

    /* every single-bit flip: decodes to something or fails cleanly; when it decodes, the seal
     * of it decodes to the same samples */
    for (int sealed = 0; sealed < 2; sealed++) {
        wf_buf_t src = WF_BUF_INIT;
        series_t s2;
        make_chunk(&src, sealed, &s2);
        size_t corrupt = 0;
        for (size_t bit = 0; bit < src.len * 8; bit++) {
            c = wf_malloc(src.len);
            memcpy(c, src.data, src.len);
            c[bit / 8] ^= (uint8_t)(0x80 >> (bit % 8));
            int rc = decode_all(c, src.len);
            if (rc < 0) {
                assert_int_equal(rc, WF_E_CORRUPT);
                corrupt++;
            } else {
                wf_buf_t o = WF_BUF_INIT;
                assert_int_equal(st_chunk_seal(c, src.len, &o), 0);
                assert_int_equal(decode_all(o.data, o.len), rc);
                wf_buf_free(&o);
            }
            wf_free(c);
        }
        assert_true(corrupt > 0);
        wf_buf_free(&src);
        series_free(&s2);
    }
    wf_buf_free(&b);
    series_free(&s);
}

/* A repeating float pattern: the bit codes cannot see it, zstd can; the sealed form must be
 * the compressed one, read back exactly, and fail cleanly when damaged. */
static void test_zstd_form(void **state)
{
    (void)state;
    series_t s = series_new(200);
    fill_ts(&s, 0, 15000, 0);
    for (size_t i = 0; i < s.n; i++) {
        s.v[i] = (double)(i % 4) * 1.1 + 0.123456789;
    }
    st_chunk_enc_t e;
    st_chunk_enc_init(&e);
    for (size_t i = 0; i < s.n; i++) {
        assert_int_equal(st_chunk_enc_append(&e, s.ts[i], s.v[i]), 0);
    }
    size_t len;
    const uint8_t *b = st_chunk_enc_bytes(&e, &len);
    wf_buf_t o = WF_BUF_INIT;
    assert_int_equal(st_chunk_seal(b, len, &o), 0);
    assert_int_equal(o.data[0], 1);
    assert_true(o.len < len / 2);
    check_decodes(o.data, o.len, &s, s.n);
    for (size_t l = 0; l < o.len; l++) {
        uint8_t *c = wf_malloc(l ? l : 1);
        memcpy(c, o.data, l);
        assert_int_equal(decode_all(c, l), WF_E_CORRUPT);
        wf_free(c);
    }
    for (size_t bit = 0; bit < o.len * 8; bit++) {
        uint8_t *c = wf_malloc(o.len);
        memcpy(c, o.data, o.len);
        c[bit / 8] ^= (uint8_t)(0x80 >> (bit % 8));
        int rc = decode_all(c, o.len);
        assert_true(rc == WF_E_CORRUPT || rc >= 0);
        wf_free(c);
    }
    wf_buf_free(&o);
    st_chunk_enc_free(&e);
    series_free(&s);
}

/* Encode s into a head chunk and seal it into the split form (ts column, values chunk). */
static void split_of(const series_t *s, wf_buf_t *ts, wf_buf_t *vals)
{
    st_chunk_enc_t e;
    st_chunk_enc_init(&e);
    for (size_t i = 0; i < s->n; i++) {
        assert_int_equal(st_chunk_enc_append(&e, s->ts[i], s->v[i]), 0);
    }
    size_t len;
    const uint8_t *b = st_chunk_enc_bytes(&e, &len);
    assert_int_equal(st_chunk_seal_split(b, len, ts, vals), 0);
    /* the split form is never larger than the sealed single form plus the repeated header */
    wf_buf_t one = WF_BUF_INIT;
    assert_int_equal(st_chunk_seal(b, len, &one), 0);
    assert_true(ts->len + vals->len <= one.len + 14 + 6);
    wf_buf_free(&one);
    st_chunk_enc_free(&e);
}

static void check_split(const wf_buf_t *ts, const wf_buf_t *vals, const series_t *s)
{
    st_chunk_iter_t it;
    assert_int_equal(st_chunk_iter_init_split(&it, ts->data, ts->len, vals->data, vals->len), 0);
    assert_int_equal(st_chunk_iter_count(&it), s->n);
    for (size_t i = 0; i < s->n; i++) {
        int64_t t = 0;
        double v = 0;
        assert_int_equal(st_chunk_iter_next(&it, &t, &v), 1);
        assert_int_equal(t, s->ts[i]);
        assert_int_equal(bits_of(v), bits_of(s->v[i]));
    }
    int64_t t;
    double v;
    assert_int_equal(st_chunk_iter_next(&it, &t, &v), 0);
    st_chunk_iter_free(&it);
    /* neither part is a chunk on its own */
    assert_int_equal(st_chunk_iter_init(&it, ts->data, ts->len), WF_E_CORRUPT);
    assert_int_equal(st_chunk_iter_init(&it, vals->data, vals->len), WF_E_CORRUPT);
}

static void test_split_round_trip(void **state)
{
    (void)state;
    const size_t sizes[] = {1, 2, 3, 120, 480};
    for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
        size_t n = sizes[si];
        for (int kind = 0; kind < 7; kind++) {
            series_t s = series_new(n);
            fill_ts(&s, 1700000000000, 15000, 3);
            for (size_t i = 0; i < n; i++) {
                switch (kind) {
                case 0: /* constant integer (a counter at rest, an unhit bucket) */
                    s.v[i] = 42;
                    break;
                case 1: /* constant non-integer bits: the staleness NaN */
                    s.v[i] = dbl_of(0x7ff0000000000002ULL);
                    break;
                case 2: /* a counter with occasional increments */
                    s.v[i] = (double)(1000 + (i / 37) * 3);
                    break;
                case 3:
                    s.v[i] = dbl_of(rnd());
                    break;
                case 4: /* integers, then a float */
                    s.v[i] = i < n / 2 ? (double)(i * 7) : (double)i + 0.5;
                    break;
                case 5: /* a repeating float pattern: the zstd values form */
                    s.v[i] = (double)(i % 4) * 1.1 + 0.123456789;
                    break;
                default: /* constant but for one -0.0: not constant bits */
                    s.v[i] = i == n - 1 && n > 1 ? -0.0 : 0.0;
                    break;
                }
            }
            wf_buf_t ts = WF_BUF_INIT, vals = WF_BUF_INIT;
            split_of(&s, &ts, &vals);
            check_split(&ts, &vals, &s);
            if (kind <= 1) {
                /* constant: the first value only, whatever the count */
                assert_true(vals.len <= 6 + 8);
            }
            if (kind == 5 && n == 480) {
                assert_int_equal(vals.data[0], 3); /* FORM_VALS_ZSTD */
            }
            wf_buf_free(&ts);
            wf_buf_free(&vals);
            series_free(&s);
        }
    }
}

/* Series with the same timestamps get byte-identical timestamp columns, whatever their values;
 * a different timestamp gives a different column. */
static void test_split_shared_ts(void **state)
{
    (void)state;
    series_t a = series_new(480), b = series_new(480);
    fill_ts(&a, 1700000000000, 15000, 3);
    memcpy(b.ts, a.ts, 480 * sizeof(int64_t));
    for (size_t i = 0; i < 480; i++) {
        a.v[i] = (double)i * 3;
        b.v[i] = (double)i * 0.25;
    }
    wf_buf_t ta = WF_BUF_INIT, va = WF_BUF_INIT, tb = WF_BUF_INIT, vb = WF_BUF_INIT;
    split_of(&a, &ta, &va);
    split_of(&b, &tb, &vb);
    assert_int_equal(ta.len, tb.len);
    assert_memory_equal(ta.data, tb.data, ta.len);
    /* b's values read with a's (equal) column */
    check_split(&ta, &vb, &b);
    b.ts[200] += 1;
    wf_buf_reset(&tb);
    wf_buf_reset(&vb);
    split_of(&b, &tb, &vb);
    assert_true(ta.len != tb.len || memcmp(ta.data, tb.data, ta.len) != 0);
    check_split(&tb, &vb, &b);
    /* a column of another count does not go with these values */
    series_t c = series_new(479);
    memcpy(c.ts, a.ts, 479 * sizeof(int64_t));
    memcpy(c.v, a.v, 479 * sizeof(double));
    wf_buf_t tc = WF_BUF_INIT, vc = WF_BUF_INIT;
    split_of(&c, &tc, &vc);
    st_chunk_iter_t it;
    assert_int_equal(st_chunk_iter_init_split(&it, tc.data, tc.len, va.data, va.len), WF_E_CORRUPT);
    assert_int_equal(st_chunk_iter_init_split(&it, ta.data, ta.len, vc.data, vc.len), WF_E_CORRUPT);
    wf_buf_free(&ta);
    wf_buf_free(&va);
    wf_buf_free(&tb);
    wf_buf_free(&vb);
    wf_buf_free(&tc);
    wf_buf_free(&vc);
    series_free(&a);
    series_free(&b);
    series_free(&c);
}

/* Decode a split pair to the end: samples or the error; every later call fails the same. */
static int decode_split(const uint8_t *t, size_t tl, const uint8_t *v, size_t vl)
{
    st_chunk_iter_t it;
    int rc = st_chunk_iter_init_split(&it, t, tl, v, vl);
    if (rc < 0) {
        return rc;
    }
    int64_t ts;
    double d;
    uint32_t n = 0;
    while ((rc = st_chunk_iter_next(&it, &ts, &d)) == 1) {
        n++;
        assert_true(n <= st_chunk_iter_count(&it));
    }
    if (rc < 0) {
        assert_int_equal(st_chunk_iter_next(&it, &ts, &d), WF_E_CORRUPT);
    }
    st_chunk_iter_free(&it);
    return rc < 0 ? rc : (int)n;
}

static void test_split_corrupt(void **state)
{
    (void)state;
    for (int kind = 0; kind < 3; kind++) {
        series_t s = series_new(200);
        fill_ts(&s, 1700000000000, 15000, 5);
        for (size_t i = 0; i < s.n; i++) {
            s.v[i] = kind == 0   ? (double)(i * 11)
                     : kind == 1 ? 7.0
                                 : (double)(i % 4) * 1.1 + 0.123456789;
        }
        wf_buf_t t = WF_BUF_INIT, v = WF_BUF_INIT;
        split_of(&s, &t, &v);
        assert_int_equal(decode_split(t.data, t.len, v.data, v.len), 200);
        /* truncating either part is always detected (exact-size copies for ASan) */
        for (size_t l = 0; l < t.len; l++) {
            uint8_t *c = wf_malloc(l ? l : 1);
            memcpy(c, t.data, l);
            assert_int_equal(decode_split(c, l, v.data, v.len), WF_E_CORRUPT);
            wf_free(c);
        }
        for (size_t l = 0; l < v.len; l++) {
            uint8_t *c = wf_malloc(l ? l : 1);
            memcpy(c, v.data, l);
            assert_int_equal(decode_split(t.data, t.len, c, l), WF_E_CORRUPT);
            wf_free(c);
        }
        /* flipped bits never crash or read out of bounds; a flip in a form byte is refused */
        for (int part = 0; part < 2; part++) {
            const wf_buf_t *src = part ? &v : &t;
            for (size_t bit = 0; bit < src->len * 8; bit++) {
                uint8_t *c = wf_malloc(src->len);
                memcpy(c, src->data, src->len);
                c[bit / 8] ^= (uint8_t)(0x80 >> (bit % 8));
                int rc = part ? decode_split(t.data, t.len, c, src->len)
                              : decode_split(c, src->len, v.data, v.len);
                assert_true(rc == WF_E_CORRUPT || rc >= 0);
                if (bit < 8 || (bit >= 16 && bit < 48)) {
                    /* the form byte and the count */
                    assert_int_equal(rc, WF_E_CORRUPT);
                }
                wf_free(c);
            }
        }
        /* the parts swapped, or a whole chunk in place of a part */
        assert_int_equal(decode_split(v.data, v.len, t.data, t.len), WF_E_CORRUPT);
        wf_buf_t whole = WF_BUF_INIT;
        series_t ws;
        make_chunk(&whole, 1, &ws);
        series_free(&ws);
        assert_int_equal(decode_split(t.data, t.len, whole.data, whole.len), WF_E_CORRUPT);
        assert_int_equal(decode_split(whole.data, whole.len, v.data, v.len), WF_E_CORRUPT);
        wf_buf_free(&whole);
        wf_buf_free(&t);
        wf_buf_free(&v);
        series_free(&s);
    }
    /* an empty chunk has no split form */
    st_chunk_enc_t e;
    st_chunk_enc_init(&e);
    size_t len;
    const uint8_t *b = st_chunk_enc_bytes(&e, &len);
    wf_buf_t t = WF_BUF_INIT, v = WF_BUF_INIT;
    assert_int_equal(st_chunk_seal_split(b, len, &t, &v), WF_E_CORRUPT);
    assert_int_equal(t.len + v.len, 0);
    st_chunk_enc_free(&e);
}

static void test_garbage(void **state)
{
    (void)state;
    uint8_t g[256];
    for (int round = 0; round < 20000; round++) {
        size_t n = (size_t)rnd_range(0, sizeof(g));
        for (size_t i = 0; i < n; i++) {
            g[i] = (uint8_t)rnd();
        }
        if (n >= 2) {
            g[0] &= 1;
            g[1] &= 1;
        }
        uint8_t *c = wf_malloc(n ? n : 1);
        memcpy(c, g, n);
        int rc = decode_all(c, n);
        assert_true(rc >= 0 || rc == WF_E_CORRUPT);
        wf_free(c);
    }
}

/* ---- figures ------------------------------------------------------------------------------ */

static double sealed_bps(const series_t *s, size_t *head_len)
{
    st_chunk_enc_t e;
    st_chunk_enc_init(&e);
    for (size_t i = 0; i < s->n; i++) {
        assert_int_equal(st_chunk_enc_append(&e, s->ts[i], s->v[i]), 0);
    }
    size_t len;
    const uint8_t *b = st_chunk_enc_bytes(&e, &len);
    wf_buf_t o = WF_BUF_INIT;
    assert_int_equal(st_chunk_seal(b, len, &o), 0);
    check_decodes(o.data, o.len, s, s->n);
    double bps = (double)o.len / (double)s->n;
    *head_len = len;
    wf_buf_free(&o);
    st_chunk_enc_free(&e);
    return bps;
}

static void test_figures(void **state)
{
    (void)state;
    series_t s = series_new(480);
    size_t head;

    fill_ts(&s, 1700000000000, 15000, 5);
    double c = 0;
    for (size_t i = 0; i < s.n; i++) {
        c += (double)rnd_range(0, 30);
        s.v[i] = c;
    }
    double a = sealed_bps(&s, &head);
    printf("figure (a) istio counter 15s+-5ms, +0..30/step: %.3f bytes/sample sealed "
           "(head %.3f)\n",
           a, (double)head / 480.0);
    assert_true(a < 2.0);

    fill_ts(&s, 1700000000000, 15000, 5);
    for (size_t i = 0; i < s.n; i++) {
        s.v[i] = 1234.0;
    }
    double b = sealed_bps(&s, &head);
    printf("figure (b) constant histogram bucket 15s+-5ms: %.3f bytes/sample sealed (head %.3f)\n",
           b, (double)head / 480.0);
    assert_true(b < a);

    fill_ts(&s, 1700000000000, 15000, 5);
    double g = 0.25;
    for (size_t i = 0; i < s.n; i++) {
        g += (double)rnd_range(-1000, 1000) / 10000.0;
        s.v[i] = g;
    }
    double f = sealed_bps(&s, &head);
    printf("figure (c) float gauge 15s+-5ms: %.3f bytes/sample sealed (head %.3f)\n", f,
           (double)head / 480.0);

    fill_ts(&s, 1700000000000, 15000, 10);
    c = 0;
    for (size_t i = 0; i < s.n; i++) {
        c += (double)rnd_range(0, 30);
        s.v[i] = c;
    }
    printf("figure (a') counter at 15s+-10ms: %.3f bytes/sample\n", sealed_bps(&s, &head));
    fill_ts(&s, 1700000000000, 15000, 0);
    printf("figure (a'') counter at exact 15s: %.3f bytes/sample\n", sealed_bps(&s, &head));
    series_free(&s);

    /* speed, printed only */
    enum { N = 120, ROUNDS = 5000 };
    series_t p = series_new(N);
    fill_ts(&p, 1700000000000, 15000, 5);
    c = 0;
    for (size_t i = 0; i < N; i++) {
        c += (double)rnd_range(0, 30);
        p.v[i] = c;
    }
    for (int kind = 0; kind < 2; kind++) {
        if (kind == 1) {
            for (size_t i = 0; i < N; i++) {
                p.v[i] = (double)rnd_range(0, 1000000) / 1000.0;
            }
        }
        struct timespec t0, t1, t2;
        st_chunk_enc_t e;
        st_chunk_enc_init(&e);
        uint64_t sink = 0;
        double enc_ns = 0, it_ns = 0;
        for (int r = 0; r < ROUNDS; r++) {
            st_chunk_enc_free(&e);
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
            for (size_t i = 0; i < N; i++) {
                st_chunk_enc_append(&e, p.ts[i], p.v[i]);
            }
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
            size_t len;
            const uint8_t *hb = st_chunk_enc_bytes(&e, &len);
            st_chunk_iter_t it;
            st_chunk_iter_init(&it, hb, len);
            int64_t ts;
            double v;
            while (st_chunk_iter_next(&it, &ts, &v) == 1) {
                sink += (uint64_t)ts + bits_of(v);
            }
            st_chunk_iter_free(&it);
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t2);
            enc_ns += (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
            it_ns += (double)(t2.tv_sec - t1.tv_sec) * 1e9 + (double)(t2.tv_nsec - t1.tv_nsec);
        }
        st_chunk_enc_free(&e);
        printf("speed (%s, %d-sample chunks, includes buffer growth, thread CPU time): append %.1f "
               "ns/sample, "
               "iterate %.1f ns/sample (sink %llu)\n",
               kind ? "float" : "int counter", N, enc_ns / (N * ROUNDS), it_ns / (N * ROUNDS),
               (unsigned long long)(sink & 1));
    }
    series_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_one_sample),
        cmocka_unit_test(test_constant),
        cmocka_unit_test(test_counter_jitter),
        cmocka_unit_test(test_random_floats),
        cmocka_unit_test(test_special_values),
        cmocka_unit_test(test_int_to_float_switch),
        cmocka_unit_test(test_timestamps),
        cmocka_unit_test(test_out_of_order),
        cmocka_unit_test(test_head_while_appending),
        cmocka_unit_test(test_10k),
        cmocka_unit_test(test_corrupt_truncation),
        cmocka_unit_test(test_corrupt_count_and_flips),
        cmocka_unit_test(test_zstd_form),
        cmocka_unit_test(test_split_round_trip),
        cmocka_unit_test(test_split_shared_ts),
        cmocka_unit_test(test_split_corrupt),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_figures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
