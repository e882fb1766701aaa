/*
 * test_st_metrics.c - the metrics half of the store through its public API: write/read round
 * trips across head, sealed chunks, flush, reopen and crash replay; matchers; label APIs;
 * metadata; every write-path error with the store intact afterwards; retention; concurrent
 * readers. Also prints (never asserts) the append rate of a 1M-sample load.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "st_store.h"
#include "wf_alloc.h"
#include "wf_clock.h"
#include "wf_err.h"
#include "wt_util.h"

#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define STR_(x) #x
#define WF_STRINGIFY(x) STR_(x)
#define T0 1700000000000LL /* a fixed "now" for the fake clock */
#define MIN_MS (60LL * 1000)
#define HOUR_MS (3600LL * 1000)

typedef struct {
    char *dir;
    int64_t now;
    st_options_t o;
    st_store_t *s;
} fx_t;

static int64_t fake_now(void *arg)
{
    return *(int64_t *)arg;
}

static void fx_open(fx_t *f)
{
    assert_int_equal(st_store_open(&f->o, &f->s), 0);
}

static int setup(void **state)
{
    fx_t *f = wf_calloc(1, sizeof(*f));
    f->dir = wt_tmpdir("st_metrics");
    f->now = T0;
    st_options_default(&f->o);
    f->o.dir = f->dir;
    f->o.now_ms = fake_now;
    f->o.now_arg = &f->now;
    fx_open(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    st_store_close(f->s);
    wt_rm_rf(f->dir);
    wf_free(f->dir);
    wf_free(f);
    return 0;
}

static void reopen(fx_t *f)
{
    st_store_close(f->s);
    f->s = NULL;
    fx_open(f);
}

#define L(n, v) ((st_label_t){WF_STR_LIT(n), WF_STR_LIT(v)})

/* Add one sample to a fresh batch and commit it; returns st_batch_add's result. */
static int add1(st_store_t *s, const st_label_t *l, size_t n, int64_t ts, double v)
{
    st_batch_t *b = NULL;
    assert_int_equal(st_batch_begin(s, &b), 0);
    int rc = st_batch_add(b, l, n, ts, v);
    assert_int_equal(st_batch_commit(b), 0);
    return rc;
}

static st_matcher_t *mk(st_match_type_t t, const char *name, const char *value)
{
    st_matcher_t *m = NULL;
    char err[128];
    assert_int_equal(st_matcher_new(t, wf_str(name), wf_str(value), &m, err, sizeof(err)), 0);
    return m;
}

/* Number of series selected by one or two matchers over all time. */
static size_t count_sel(st_store_t *s, st_matcher_t *a, st_matcher_t *b)
{
    const st_matcher_t *ms[2] = {a, b};
    st_series_set_t *set = NULL;
    assert_int_equal(st_select(s, ms, b ? 2 : 1, 0, INT64_MAX, &set), 0);
    size_t n = st_series_set_len(set);
    st_series_set_free(set);
    return n;
}

/* Samples of the single series {__name__=name} in [mint, maxt]; copies into ts/v. */
static size_t samples_of(st_store_t *s, const char *name, int64_t mint, int64_t maxt, int64_t *ts,
                         double *v, size_t cap)
{
    st_matcher_t *m = mk(ST_MATCH_EQ, "__name__", name);
    const st_matcher_t *ms[1] = {m};
    st_series_set_t *set = NULL;
    assert_int_equal(st_select(s, ms, 1, mint, maxt, &set), 0);
    size_t n = 0;
    if (st_series_set_len(set) == 1) {
        const int64_t *t;
        const double *vv;
        assert_int_equal(st_series_set_samples(set, 0, &t, &vv, &n), 0);
        assert_true(n <= cap);
        memcpy(ts, t, n * sizeof(*t));
        memcpy(v, vv, n * sizeof(*vv));
    } else {
        assert_int_equal(st_series_set_len(set), 0);
    }
    st_series_set_free(set);
    st_matcher_free(m);
    return n;
}

static void test_round_trip_head(void **state)
{
    fx_t *f = *state;
    st_batch_t *b = NULL;
    assert_int_equal(st_batch_begin(f->s, &b), 0);
    /* Unsorted input and an empty-valued label, which is dropped. */
    st_label_t a[] = {L("job", "api"), L("__name__", "up"), L("zone", "")};
    st_label_t c[] = {L("__name__", "up"), L("job", "db")};
    for (int i = 0; i < 10; i++) {
        assert_int_equal(st_batch_add(b, a, 3, T0 - 100000 + i * 1000, i), 0);
        assert_int_equal(st_batch_add(b, c, 2, T0 - 100000 + i * 1000, 100 + i * 0.5), 0);
    }
    assert_int_equal(st_batch_commit(b), 0);

    st_matcher_t *m = mk(ST_MATCH_EQ, "__name__", "up");
    const st_matcher_t *ms[1] = {m};
    st_series_set_t *set = NULL;
    assert_int_equal(st_select(f->s, ms, 1, 0, INT64_MAX, &set), 0);
    assert_int_equal(st_series_set_len(set), 2);
    size_t nl;
    const st_label_t *l0 = st_series_set_labels(set, 0, &nl);
    assert_int_equal(nl, 2);
    assert_true(wf_str_eq_c(l0[0].name, "__name__"));
    assert_true(wf_str_eq_c(l0[1].name, "job"));
    assert_true(wf_str_eq_c(l0[1].value, "api"));
    const st_label_t *l1 = st_series_set_labels(set, 1, &nl);
    assert_true(wf_str_eq_c(l1[1].value, "db"));
    const int64_t *ts;
    const double *v;
    size_t n;
    assert_int_equal(st_series_set_samples(set, 1, &ts, &v, &n), 0);
    assert_int_equal(n, 10);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(ts[i], T0 - 100000 + (int64_t)i * 1000);
        assert_true(v[i] == 100 + (double)i * 0.5);
    }
    st_series_set_free(set);

    /* A time range cuts the samples and drops series with none inside. */
    assert_int_equal(st_select(f->s, ms, 1, T0 - 95000, T0 - 93000, &set), 0);
    assert_int_equal(st_series_set_len(set), 2);
    assert_int_equal(st_series_set_samples(set, 0, &ts, &v, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(ts[0], T0 - 95000);
    assert_true(v[2] == 7);
    st_series_set_free(set);
    assert_int_equal(st_select(f->s, ms, 1, T0, T0 + 1000, &set), 0);
    assert_int_equal(st_series_set_len(set), 0);
    st_series_set_free(set);
    st_matcher_free(m);

    st_stats_t st;
    st_store_stats(f->s, &st);
    assert_int_equal(st.series, 2);
    assert_int_equal(st.head_samples, 20);
    assert_int_equal(st.samples_total, 20);
}

/* 2000 samples per series at 15 s cross four chunk cuts; read back across every state. */
static void write_long(st_store_t *s, const char *name, int64_t start, int from, int to)
{
    st_label_t l[] = {{WF_STR_LIT("__name__"), wf_str(name)}, L("instance", "a:1")};
    st_batch_t *b = NULL;
    assert_int_equal(st_batch_begin(s, &b), 0);
    for (int i = from; i < to; i++) {
        double v = (i % 7 == 0) ? i * 1.25 : (double)i;
        assert_int_equal(st_batch_add(b, l, 2, start + i * 15000LL, v), 0);
    }
    assert_int_equal(st_batch_commit(b), 0);
}

static void check_long(st_store_t *s, const char *name, int64_t start, int count)
{
    static int64_t ts[4096];
    static double v[4096];
    size_t n = samples_of(s, name, 0, INT64_MAX, ts, v, 4096);
    assert_int_equal(n, count);
    for (int i = 0; i < count; i++) {
        assert_int_equal(ts[i], start + i * 15000LL);
        double want = (i % 7 == 0) ? i * 1.25 : (double)i;
        assert_true(v[i] == want);
    }
    if (count < 500) {
        return;
    }
    /* A window in the middle of a sealed chunk. */
    n = samples_of(s, name, start + 100 * 15000LL, start + 110 * 15000LL, ts, v, 4096);
    assert_int_equal(n, 11);
    assert_int_equal(ts[0], start + 100 * 15000LL);
}

static void test_sealed_flush_reopen(void **state)
{
    fx_t *f = *state;
    int64_t start = T0 - 10 * HOUR_MS;
    write_long(f->s, "m1", start, 0, 1000);
    check_long(f->s, "m1", start, 1000); /* head with pending sealed chunks */
    assert_int_equal(st_store_flush(f->s), 0);
    st_stats_t st;
    st_store_stats(f->s, &st);
    assert_true(st.sealed_chunks >= 2);
    check_long(f->s, "m1", start, 1000); /* sealed chunks from the table + head */
    write_long(f->s, "m1", start, 1000, 2000);
    reopen(f);
    check_long(f->s, "m1", start, 2000);
    /* The newest sample survived reopen for the order check. */
    st_label_t l[] = {L("__name__", "m1"), L("instance", "a:1")};
    assert_int_equal(add1(f->s, l, 2, start + 1999 * 15000LL, 1999), 0);
    assert_int_equal(add1(f->s, l, 2, start + 1998 * 15000LL, 1), ST_E_OUT_OF_ORDER);
    check_long(f->s, "m1", start, 2000);
}

/* Write in a child that exits without closing (no flush): reopen must replay the log. */
static void test_crash_replay(void **state)
{
    fx_t *f = *state;
    int64_t start = T0 - 10 * HOUR_MS;
    write_long(f->s, "m2", start, 0, 700);
    assert_int_equal(st_store_flush(f->s), 0);
    st_store_close(f->s);
    f->s = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        st_store_t *s = NULL;
        if (st_store_open(&f->o, &s) != 0) {
            _exit(2);
        }
        write_long(s, "m2", start, 700, 1500);
        write_long(s, "m3", start, 0, 30);
        _exit(0); /* no flush, no close: like kill -9 after the commits */
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    fx_open(f);
    check_long(f->s, "m2", start, 1500);
    check_long(f->s, "m3", start, 30);
    st_stats_t st;
    st_store_stats(f->s, &st);
    assert_int_equal(st.series, 2);
    /* Replaying twice (reopen again without any write) changes nothing. */
    reopen(f);
    check_long(f->s, "m2", start, 1500);
}

static void test_special_values(void **state)
{
    fx_t *f = *state;
    uint64_t stale_bits = 0x7ff0000000000002ULL, nan2 = 0xfff8000000000123ULL;
    double stale, n2;
    memcpy(&stale, &stale_bits, 8);
    memcpy(&n2, &nan2, 8);
    double vals[] = {1, NAN, INFINITY, -INFINITY, stale, -0.0, n2, 1e308, 4503599627370497.0};
    size_t nv = sizeof(vals) / sizeof(vals[0]);
    st_label_t l[] = {L("__name__", "special")};
    st_batch_t *b = NULL;
    assert_int_equal(st_batch_begin(f->s, &b), 0);
    for (size_t i = 0; i < nv; i++) {
        assert_int_equal(st_batch_add(b, l, 1, T0 - 1000 + (int64_t)i, vals[i]), 0);
    }
    assert_int_equal(st_batch_commit(b), 0);
    for (int round = 0; round < 3; round++) {
        int64_t ts[16];
        double v[16];
        assert_int_equal(samples_of(f->s, "special", 0, INT64_MAX, ts, v, 16), nv);
        for (size_t i = 0; i < nv; i++) {
            assert_memory_equal(&v[i], &vals[i], 8);
        }
        if (round == 0) {
            assert_int_equal(st_store_flush(f->s), 0);
        } else {
            reopen(f);
        }
    }
}

/* Random doubles compress badly: chunks are cut by size, and every bit still round-trips. */
static void test_incompressible_values(void **state)
{
    fx_t *f = *state;
    enum { N = 3000 };
    static int64_t ts[N];
    static double v[N], got_v[N];
    static int64_t got_ts[N];
    uint64_t rs = 7;
    st_label_t l[] = {L("__name__", "noise")};
    st_batch_t *b = NULL;
    assert_int_equal(st_batch_begin(f->s, &b), 0);
    for (int i = 0; i < N; i++) {
        uint64_t bits = wt_rand(&rs);
        memcpy(&v[i], &bits, 8);
        ts[i] = T0 - 10 * HOUR_MS + i * 1000LL + (int64_t)(bits % 3);
        assert_int_equal(st_batch_add(b, l, 1, ts[i], v[i]), 0);
    }
    assert_int_equal(st_batch_commit(b), 0);
    assert_int_equal(st_store_flush(f->s), 0);
    st_stats_t st;
    st_store_stats(f->s, &st);
    /* ~9 bytes per sample: far more chunks than the 480-sample rule alone would cut (6). */
    assert_true(st.sealed_chunks >= 20);
    for (int round = 0; round < 2; round++) {
        assert_int_equal(samples_of(f->s, "noise", 0, INT64_MAX, got_ts, got_v, N), N);
        assert_memory_equal(got_ts, ts, sizeof(ts));
        assert_memory_equal(got_v, v, sizeof(v));
        reopen(f);
    }
}

/* Many small commits: the writer flushes by itself, so the log stays bounded. */
static void test_auto_flush(void **state)
{
    fx_t *f = *state;
    enum { N = 9000 };
    st_label_t l[] = {L("__name__", "small")};
    int64_t start = T0 - 10 * HOUR_MS;
    for (int i = 0; i < N; i++) {
        assert_int_equal(add1(f->s, l, 1, start + i * 1000LL, i), 0);
    }
    char path[512];
    snprintf(path, sizeof(path), "%s/weft.db", f->dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM log", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t records = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    assert_true(records > 0);
    assert_true(records < N);
    st_stats_t stats;
    st_store_stats(f->s, &stats);
    assert_int_equal(stats.samples_total, N);
    assert_true(stats.sealed_chunks > 0);
    reopen(f);
    static int64_t ts[N];
    static double v[N];
    assert_int_equal(samples_of(f->s, "small", 0, INT64_MAX, ts, v, N), N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(ts[i], start + i * 1000LL);
        assert_true(v[i] == i);
    }
    st_store_stats(f->s, &stats);
    assert_int_equal(stats.samples_total, 0); /* replay is not an append */
}

static void test_write_errors(void **state)
{
    fx_t *f = *state;
    st_label_t good[] = {L("__name__", "ok"), L("a", "1")};
    assert_int_equal(add1(f->s, good, 2, T0 - 5000, 5), 0);

    st_batch_t *b = NULL;
    assert_int_equal(st_batch_begin(f->s, &b), 0);
    st_label_t bad_utf8[] = {L("__name__", "x"), {WF_STR_LIT("a"), {"\xff\xfe", 2}}};
    assert_int_equal(st_batch_add(b, bad_utf8, 2, T0, 1), ST_E_LABEL_VALUE);
    st_label_t bad_name[] = {L("__name__", "x"), L("1a", "v")};
    assert_int_equal(st_batch_add(b, bad_name, 2, T0, 1), ST_E_LABEL_NAME);
    st_label_t bad_name2[] = {L("__name__", "x"), L("a-b", "v")};
    assert_int_equal(st_batch_add(b, bad_name2, 2, T0, 1), ST_E_LABEL_NAME);
    st_label_t empty_name[] = {L("__name__", "x"), L("", "v")};
    assert_int_equal(st_batch_add(b, empty_name, 2, T0, 1), ST_E_LABEL_NAME);
    st_label_t dup[] = {L("a", "1"), L("__name__", "x"), L("a", "2")};
    assert_int_equal(st_batch_add(b, dup, 3, T0, 1), ST_E_LABEL_DUP);
    st_label_t none[] = {L("a", ""), L("b", "")};
    assert_int_equal(st_batch_add(b, none, 2, T0, 1), ST_E_NO_LABELS);
    assert_int_equal(st_batch_add(b, NULL, 0, T0, 1), ST_E_NO_LABELS);
    st_label_t many[65];
    char names[65][8];
    for (int i = 0; i < 65; i++) {
        snprintf(names[i], sizeof(names[i]), "l%d", i);
        many[i] = (st_label_t){wf_str(names[i]), WF_STR_LIT("v")};
    }
    assert_int_equal(st_batch_add(b, many, 65, T0, 1), ST_E_LABEL_LIMIT);
    assert_int_equal(st_batch_add(b, many, 64, T0 - 1, 1), 0); /* exactly the limit */
    char *longv = wf_malloc(16385);
    memset(longv, 'x', 16385);
    st_label_t lv[] = {L("__name__", "x"), {WF_STR_LIT("a"), {longv, 16385}}};
    assert_int_equal(st_batch_add(b, lv, 2, T0, 1), ST_E_LABEL_LIMIT);
    lv[1].value.len = 16384;
    assert_int_equal(st_batch_add(b, lv, 2, T0, 1), 0);
    wf_free(longv);
    /* Time rules. */
    assert_int_equal(st_batch_add(b, good, 2, -1, 1), ST_E_TIMESTAMP);
    assert_int_equal(st_batch_add(b, good, 2, T0 - 6000, 1), ST_E_OUT_OF_ORDER);
    assert_int_equal(st_batch_add(b, good, 2, T0 - 5000, 6), ST_E_DUPLICATE);
    assert_int_equal(st_batch_add(b, good, 2, T0 - 5000, 5), 0); /* idempotent resend */
    assert_int_equal(st_batch_add(b, good, 2, T0 - 15LL * 86400 * 1000 - 1, 1), ST_E_TOO_OLD);
    assert_int_equal(st_batch_add(b, good, 2, T0 + 10 * MIN_MS + 1, 1), ST_E_TOO_NEW);
    assert_int_equal(st_batch_add(b, good, 2, T0 + 10 * MIN_MS, 7), 0);
    /* Within the batch: earlier samples of the same series count. */
    assert_int_equal(st_batch_add(b, good, 2, T0, 1), ST_E_OUT_OF_ORDER);
    assert_int_equal(st_batch_add(b, good, 2, T0 + 10 * MIN_MS, 8), ST_E_DUPLICATE);
    assert_int_equal(st_batch_add(b, good, 2, T0 + 10 * MIN_MS, 7), 0);
    assert_int_equal(st_batch_commit(b), 0);

    /* Nothing bad was stored, the good data is intact and not duplicated. */
    int64_t ts[8];
    double v[8];
    assert_int_equal(samples_of(f->s, "ok", 0, INT64_MAX, ts, v, 8), 2);
    assert_int_equal(ts[0], T0 - 5000);
    assert_true(v[0] == 5);
    assert_int_equal(ts[1], T0 + 10 * MIN_MS);
    assert_true(v[1] == 7);
    st_matcher_t *mx = mk(ST_MATCH_EQ, "__name__", "x");
    assert_int_equal(count_sel(f->s, mx, NULL), 1); /* only the 16384-byte value one */
    st_matcher_free(mx);
    st_stats_t st;
    st_store_stats(f->s, &st);
    assert_int_equal(st.series, 3);

    /* Batch limit. */
    f->o.max_batch_samples = 3;
    reopen(f);
    assert_int_equal(st_batch_begin(f->s, &b), 0);
    st_label_t l2[] = {L("__name__", "lim")};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(st_batch_add(b, l2, 1, T0 - 100 + i, i), 0);
    }
    assert_int_equal(st_batch_add(b, l2, 1, T0, 9), ST_E_BATCH_LIMIT);
    assert_int_equal(st_batch_commit(b), 0);
    assert_int_equal(samples_of(f->s, "lim", 0, INT64_MAX, ts, v, 8), 3);

    /* An aborted batch leaves nothing, including its new series. */
    assert_int_equal(st_batch_begin(f->s, &b), 0);
    st_label_t l3[] = {L("__name__", "aborted")};
    assert_int_equal(st_batch_add(b, l3, 1, T0, 1), 0);
    st_batch_abort(b);
    assert_int_equal(samples_of(f->s, "aborted", 0, INT64_MAX, ts, v, 8), 0);
    st_store_stats(f->s, &st);
    assert_int_equal(st.series, 4);
    reopen(f);
    assert_int_equal(samples_of(f->s, "ok", 0, INT64_MAX, ts, v, 8), 2);
    assert_int_equal(samples_of(f->s, "lim", 0, INT64_MAX, ts, v, 8), 3);
}

static void seed_matcher_data(st_store_t *s)
{
    st_batch_t *b = NULL;
    assert_int_equal(st_batch_begin(s, &b), 0);
    st_label_t s1[] = {L("__name__", "req"), L("code", "200"), L("method", "GET")};
    st_label_t s2[] = {L("__name__", "req"), L("code", "500"), L("method", "POST")};
    st_label_t s3[] = {L("__name__", "req"), L("code", "404")};
    st_label_t s4[] = {L("__name__", "reqbar"), L("code", "2000"), L("method", "GET")};
    assert_int_equal(st_batch_add(b, s1, 3, T0 - 1000, 1), 0);
    assert_int_equal(st_batch_add(b, s2, 3, T0 - 1000, 2), 0);
    assert_int_equal(st_batch_add(b, s3, 2, T0 - 1000, 3), 0);
    assert_int_equal(st_batch_add(b, s4, 3, T0 - 1000, 4), 0);
    assert_int_equal(st_batch_commit(b), 0);
}

static void test_matchers(void **state)
{
    fx_t *f = *state;
    seed_matcher_data(f->s);
    st_matcher_t *req = mk(ST_MATCH_EQ, "__name__", "req");
    struct {
        st_match_type_t t;
        const char *name, *value;
        size_t want; /* together with {__name__="req"} */
    } cases[] = {
        {ST_MATCH_EQ, "code", "200", 1},
        {ST_MATCH_NE, "code", "200", 2},
        {ST_MATCH_RE, "code", "2..", 1},
        {ST_MATCH_RE, "code", "2", 0},       /* anchored: "2" does not match "200" */
        {ST_MATCH_RE, "code", "\\d+", 3},    /* \d works (PCRE2, not POSIX) */
        {ST_MATCH_RE, "code", "\\d{2}", 0},  /* and is anchored at the end */
        {ST_MATCH_RE, "code", "200|404", 2}, /* literal alternation */
        {ST_MATCH_RE, "code", "20(0|1)|5.*", 2},
        {ST_MATCH_NRE, "code", "4..|5..", 1},
        {ST_MATCH_EQ, "method", "", 1},     /* missing label matches "" */
        {ST_MATCH_NE, "method", "", 2},     /* label present */
        {ST_MATCH_RE, "method", "GET|", 2}, /* GET or missing */
        {ST_MATCH_NRE, "method", "GET", 2}, /* POST and missing */
        {ST_MATCH_RE, "method", ".*", 3},
        {ST_MATCH_RE, "method", ".+", 2},
        {ST_MATCH_EQ, "nosuch", "", 3},
        {ST_MATCH_NE, "nosuch", "x", 3},
        {ST_MATCH_EQ, "nosuch", "x", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        st_matcher_t *m = mk(cases[i].t, cases[i].name, cases[i].value);
        size_t got = count_sel(f->s, req, m);
        if (got != cases[i].want) {
            print_error("case %zu (%s %d %s): got %zu want %zu\n", i, cases[i].name, cases[i].t,
                        cases[i].value, got, cases[i].want);
        }
        assert_int_equal(got, cases[i].want);
        st_matcher_free(m);
    }
    /* Name anchoring: =~"req" does not select "reqbar". */
    st_matcher_t *m = mk(ST_MATCH_RE, "__name__", "req");
    assert_int_equal(count_sel(f->s, m, NULL), 3);
    st_matcher_free(m);
    m = mk(ST_MATCH_RE, "__name__", "req.*");
    assert_int_equal(count_sel(f->s, m, NULL), 4);
    st_matcher_free(m);
    /* A pattern that would escape a naive ^(?:...)$ wrapper is refused, not reinterpreted. */
    m = NULL;
    assert_int_equal(
        st_matcher_new(ST_MATCH_RE, WF_STR_LIT("code"), WF_STR_LIT("2)|(5"), &m, NULL, 0),
        ST_E_REGEX);

    /* Selectors matching the empty string everywhere are refused. */
    const st_matcher_t *ms[2];
    st_series_set_t *set = NULL;
    st_matcher_t *e1 = mk(ST_MATCH_RE, "code", ".*");
    st_matcher_t *e2 = mk(ST_MATCH_NE, "code", "200");
    ms[0] = e1;
    ms[1] = e2;
    assert_int_equal(st_select(f->s, ms, 2, 0, INT64_MAX, &set), WF_E_INVAL);
    assert_null(set);
    assert_int_equal(st_select(f->s, ms, 0, 0, INT64_MAX, &set), WF_E_INVAL);
    st_matcher_free(e1);
    st_matcher_free(e2);

    /* st_matcher_matches itself. */
    m = mk(ST_MATCH_RE, "a", "foo");
    assert_true(st_matcher_matches(m, WF_STR_LIT("foo")));
    assert_false(st_matcher_matches(m, WF_STR_LIT("foobar")));
    assert_false(st_matcher_matches(m, WF_STR_LIT("xfoo")));
    st_matcher_free(m);
    m = mk(ST_MATCH_RE, "a", "a.c");
    assert_true(st_matcher_matches(m, WF_STR_LIT("a\nc")));
    assert_false(st_matcher_matches(m, WF_STR_LIT("abc\n")));
    st_matcher_free(m);
    m = mk(ST_MATCH_NRE, "a", "\\d+");
    assert_false(st_matcher_matches(m, WF_STR_LIT("123")));
    assert_true(st_matcher_matches(m, WF_STR_LIT("12a")));
    st_matcher_free(m);

    char err[128] = "";
    st_matcher_t *bad = NULL;
    assert_int_equal(st_matcher_new(ST_MATCH_RE, WF_STR_LIT("a"), WF_STR_LIT("(unclosed"), &bad,
                                    err, sizeof(err)),
                     ST_E_REGEX);
    assert_null(bad);
    assert_true(strlen(err) > 0);
    st_matcher_free(req);
}

static int has(const st_strlist_t *l, const char *s)
{
    for (size_t i = 0; i < st_strlist_len(l); i++) {
        if (wf_str_eq_c(st_strlist_get(l, i), s)) {
            return 1;
        }
    }
    return 0;
}

static void test_label_names_values(void **state)
{
    fx_t *f = *state;
    seed_matcher_data(f->s);
    st_label_t old[] = {L("__name__", "old"), L("legacy", "yes")};
    assert_int_equal(add1(f->s, old, 2, T0 - 5 * HOUR_MS, 1), 0);

    st_strlist_t *l = NULL;
    assert_int_equal(st_label_names(f->s, NULL, 0, 0, INT64_MAX, &l), 0);
    assert_int_equal(st_strlist_len(l), 4);
    assert_true(wf_str_eq_c(st_strlist_get(l, 0), "__name__"));
    assert_true(wf_str_eq_c(st_strlist_get(l, 1), "code"));
    assert_true(wf_str_eq_c(st_strlist_get(l, 2), "legacy"));
    assert_true(wf_str_eq_c(st_strlist_get(l, 3), "method"));
    st_strlist_free(l);
    /* Time range excludes the old series. */
    assert_int_equal(st_label_names(f->s, NULL, 0, T0 - HOUR_MS, INT64_MAX, &l), 0);
    assert_int_equal(st_strlist_len(l), 3);
    assert_false(has(l, "legacy"));
    st_strlist_free(l);
    st_matcher_t *m = mk(ST_MATCH_EQ, "code", "404");
    const st_matcher_t *ms[1] = {m};
    assert_int_equal(st_label_names(f->s, ms, 1, 0, INT64_MAX, &l), 0);
    assert_int_equal(st_strlist_len(l), 2);
    assert_false(has(l, "method"));
    st_strlist_free(l);

    assert_int_equal(st_label_values(f->s, WF_STR_LIT("code"), NULL, 0, 0, INT64_MAX, &l), 0);
    assert_int_equal(st_strlist_len(l), 4);
    assert_true(wf_str_eq_c(st_strlist_get(l, 0), "200"));
    assert_true(wf_str_eq_c(st_strlist_get(l, 1), "2000"));
    assert_true(wf_str_eq_c(st_strlist_get(l, 3), "500"));
    st_strlist_free(l);
    st_matcher_free(m);
    m = mk(ST_MATCH_EQ, "__name__", "req");
    ms[0] = m;
    assert_int_equal(st_label_values(f->s, WF_STR_LIT("code"), ms, 1, 0, INT64_MAX, &l), 0);
    assert_int_equal(st_strlist_len(l), 3);
    assert_false(has(l, "2000"));
    st_strlist_free(l);
    assert_int_equal(st_label_values(f->s, WF_STR_LIT("method"), ms, 1, 0, INT64_MAX, &l), 0);
    assert_int_equal(st_strlist_len(l), 2);
    st_strlist_free(l);
    st_matcher_free(m);
    assert_int_equal(
        st_label_values(f->s, WF_STR_LIT("__name__"), NULL, 0, 0, T0 - 4 * HOUR_MS, &l), 0);
    assert_int_equal(st_strlist_len(l), 1);
    assert_true(has(l, "old"));
    st_strlist_free(l);
    assert_int_equal(st_label_values(f->s, WF_STR_LIT("nosuch"), NULL, 0, 0, INT64_MAX, &l), 0);
    assert_int_equal(st_strlist_len(l), 0);
    st_strlist_free(l);
}

static void test_metadata(void **state)
{
    fx_t *f = *state;
    st_batch_t *b = NULL;
    assert_int_equal(st_batch_begin(f->s, &b), 0);
    assert_int_equal(st_batch_set_metadata(b, WF_STR_LIT("http_requests_total"), ST_METRIC_COUNTER,
                                           WF_STR_LIT("Requests."), WF_STR_LIT("")),
                     0);
    assert_int_equal(st_batch_set_metadata(b, WF_STR_LIT("bad name"), ST_METRIC_GAUGE,
                                           WF_STR_LIT(""), WF_STR_LIT("")),
                     ST_E_METADATA);
    assert_int_equal(st_batch_set_metadata(b, WF_STR_LIT("x"), (st_metric_type_t)99, WF_STR_LIT(""),
                                           WF_STR_LIT("")),
                     ST_E_METADATA);
    assert_int_equal(st_batch_set_metadata(b, WF_STR_LIT("x"), ST_METRIC_GAUGE,
                                           (wf_str_t){"\xc0", 1}, WF_STR_LIT("")),
                     ST_E_METADATA);
    assert_int_equal(st_batch_commit(b), 0);
    st_metadata_t md;
    assert_int_equal(st_metadata_get(f->s, WF_STR_LIT("http_requests_total"), &md), 0);
    assert_int_equal(md.type, ST_METRIC_COUNTER);
    assert_string_equal(md.help, "Requests.");
    assert_string_equal(md.unit, "");
    wf_free(md.help);
    wf_free(md.unit);
    assert_int_equal(st_metadata_get(f->s, WF_STR_LIT("nope"), &md), WF_E_NOTFOUND);
    /* Last write wins, also within one batch, and survives reopen. */
    assert_int_equal(st_batch_begin(f->s, &b), 0);
    assert_int_equal(st_batch_set_metadata(b, WF_STR_LIT("http_requests_total"), ST_METRIC_GAUGE,
                                           WF_STR_LIT("first"), WF_STR_LIT("")),
                     0);
    assert_int_equal(st_batch_set_metadata(b, WF_STR_LIT("http_requests_total"), ST_METRIC_GAUGE,
                                           WF_STR_LIT("second"), WF_STR_LIT("seconds")),
                     0);
    assert_int_equal(st_batch_commit(b), 0);
    reopen(f);
    assert_int_equal(st_metadata_get(f->s, WF_STR_LIT("http_requests_total"), &md), 0);
    assert_int_equal(md.type, ST_METRIC_GAUGE);
    assert_string_equal(md.help, "second");
    assert_string_equal(md.unit, "seconds");
    wf_free(md.help);
    wf_free(md.unit);
}

static void test_retention(void **state)
{
    fx_t *f = *state;
    f->o.metrics_retention_ms = 6 * HOUR_MS;
    reopen(f);
    int64_t start = T0 - 5 * HOUR_MS;
    /* "keep" has samples every 15 s for 5 h (several sealed chunks), "gone" only early ones. */
    st_label_t keep[] = {L("__name__", "keep")};
    st_label_t gone[] = {L("__name__", "gone")};
    st_batch_t *b = NULL;
    assert_int_equal(st_batch_begin(f->s, &b), 0);
    for (int64_t t = start; t <= T0; t += 15000) {
        assert_int_equal(st_batch_add(b, keep, 1, t, (double)(t / 1000)), 0);
    }
    for (int i = 0; i < 100; i++) {
        assert_int_equal(st_batch_add(b, gone, 1, start + i * 1000, i), 0);
    }
    assert_int_equal(st_batch_commit(b), 0);
    assert_int_equal(st_store_flush(f->s), 0);
    st_stats_t st0;
    st_store_stats(f->s, &st0);
    assert_int_equal(st0.series, 2);

    /* Move time on by 3 h: the cutoff is now start + 2 h. */
    f->now = T0 + 3 * HOUR_MS;
    assert_int_equal(st_store_retention_run(f->s), 0);
    st_stats_t st1;
    st_store_stats(f->s, &st1);
    assert_int_equal(st1.series, 1);
    assert_true(st1.sealed_chunks < st0.sealed_chunks);
    static int64_t ts[2048];
    static double v[2048];
    size_t n = samples_of(f->s, "keep", 0, INT64_MAX, ts, v, 2048);
    /* Whole chunks ending before the cutoff are gone; nothing after the cutoff is lost. */
    int64_t cutoff = f->now - 6 * HOUR_MS;
    assert_true(ts[0] > start);
    assert_true(ts[0] <= cutoff);
    assert_int_equal(ts[n - 1], T0);
    for (size_t i = 1; i < n; i++) {
        assert_int_equal(ts[i] - ts[i - 1], 15000);
    }
    assert_int_equal(samples_of(f->s, "gone", 0, INT64_MAX, ts, v, 2048), 0);
    st_strlist_t *l = NULL;
    assert_int_equal(st_label_values(f->s, WF_STR_LIT("__name__"), NULL, 0, 0, INT64_MAX, &l), 0);
    assert_int_equal(st_strlist_len(l), 1);
    st_strlist_free(l);
    /* Deleted for good: a reopen does not bring it back; the label set can be used again. */
    reopen(f);
    st_store_stats(f->s, &st1);
    assert_int_equal(st1.series, 1);
    assert_int_equal(add1(f->s, gone, 1, f->now - 1000, 1), 0);
    assert_int_equal(samples_of(f->s, "gone", 0, INT64_MAX, ts, v, 2048), 1);
    /* Everything expires. */
    f->now = T0 + 30 * HOUR_MS;
    assert_int_equal(st_store_retention_run(f->s), 0);
    st_store_stats(f->s, &st1);
    assert_int_equal(st1.series, 0);
    assert_int_equal(st1.sealed_chunks, 0);
    assert_int_equal(st1.head_samples, 0);
}

/* ---- shared timestamp columns ---------------------------------------------------------- */

#define TS_NA 12        /* series of target "a": one scrape timestamp for all */
#define TS_NB 3         /* series of target "b": their own jitter */
#define TS_SCRAPES 2400 /* 10 h of 15 s scrapes */

static int64_t scrape_ts(int target, int64_t start, int k)
{
    int64_t jitter = target == 0 ? (k * 7919) % 7 - 3 : (k * 104729) % 5 - 1;
    return start + k * 15000LL + jitter;
}

static double scrape_v(int j, int k)
{
    switch (j % 4) {
    case 0:
        return (double)j; /* constant */
    case 1:
        return (double)(k / 10 + j); /* counter with steps */
    case 2:
        return (k % 50) * 0.25 + j; /* floats (cheap enough that no chunk is cut by size) */
    default:
        return k % 97 == 0 ? 1.0 / 3 : 5.0; /* mostly constant */
    }
}

static void scrape_labels(int target, int j, st_label_t l[3], char *buf)
{
    snprintf(buf, 16, "s%d", j);
    l[0] = L("__name__", "tscol");
    l[1] = (st_label_t){WF_STR_LIT("instance"), target == 0 ? wf_str("a") : wf_str("b")};
    l[2] = (st_label_t){WF_STR_LIT("s"), wf_str(buf)};
}

/* Scrapes [from, to) of both targets, one batch per target and scrape (as the scraper does). */
static void scrape_write(st_store_t *s, int64_t start, int from, int to)
{
    for (int k = from; k < to; k++) {
        for (int target = 0; target < 2; target++) {
            st_batch_t *b = NULL;
            assert_int_equal(st_batch_begin(s, &b), 0);
            for (int j = 0; j < (target == 0 ? TS_NA : TS_NB); j++) {
                st_label_t l[3];
                char buf[16];
                scrape_labels(target, j, l, buf);
                assert_int_equal(st_batch_add(b, l, 3, scrape_ts(target, start, k), scrape_v(j, k)),
                                 0);
            }
            assert_int_equal(st_batch_commit(b), 0);
        }
    }
}

/* Every series holds exactly scrapes [from, to) (bit-exact values). */
static void scrape_check(st_store_t *s, int64_t start, int from, int to)
{
    st_matcher_t *m = mk(ST_MATCH_EQ, "__name__", "tscol");
    const st_matcher_t *ms[1] = {m};
    st_series_set_t *set = NULL;
    assert_int_equal(st_select(s, ms, 1, 0, INT64_MAX, &set), 0);
    assert_int_equal(st_series_set_len(set), TS_NA + TS_NB);
    for (size_t i = 0; i < st_series_set_len(set); i++) {
        size_t nl;
        const st_label_t *l = st_series_set_labels(set, i, &nl);
        assert_int_equal(nl, 3);
        int target = l[1].value.p[0] == 'a' ? 0 : 1;
        int j = atoi(l[2].value.p + 1);
        const int64_t *ts;
        const double *v;
        size_t n;
        assert_int_equal(st_series_set_samples(set, i, &ts, &v, &n), 0);
        assert_int_equal(n, to - from);
        for (size_t x = 0; x < n; x++) {
            int k = from + (int)x;
            assert_int_equal(ts[x], scrape_ts(target, start, k));
            double want = scrape_v(j, k);
            assert_memory_equal(&v[x], &want, sizeof(double));
        }
    }
    st_series_set_free(set);
    st_matcher_free(m);
}

static int64_t db_int(const char *dir, const char *sql)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/weft.db", dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t out = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

static void test_shared_ts_columns(void **state)
{
    fx_t *f = *state;
    f->o.metrics_retention_ms = 12 * HOUR_MS;
    reopen(f);
    int64_t start = T0 - 10 * HOUR_MS;
    scrape_write(f->s, start, 0, TS_SCRAPES / 2);
    scrape_check(f->s, start, 0, TS_SCRAPES / 2); /* head and pending chunks */
    assert_int_equal(st_store_flush(f->s), 0);
    scrape_check(f->s, start, 0, TS_SCRAPES / 2); /* table and head */
    scrape_write(f->s, start, TS_SCRAPES / 2, TS_SCRAPES);
    reopen(f); /* replay of the log: more chunks cut and flushed */
    scrape_check(f->s, start, 0, TS_SCRAPES);
    st_store_close(f->s);
    f->s = NULL;

    /* every sealed chunk has a timestamp column, and no chunk crosses a 2 h window */
    int64_t chunks = db_int(f->dir, "SELECT count(*) FROM chunks");
    assert_true(chunks >= 5 * (TS_NA + TS_NB));
    assert_int_equal(db_int(f->dir, "SELECT count(*) FROM chunks WHERE ts_id IS NULL"), 0);
    assert_int_equal(db_int(f->dir, "SELECT count(*) FROM chunks WHERE mint / 7200000 !="
                                    " maxt / 7200000"),
                     0);
    /* the series of one target share one column per chunk: a has TS_NA chunks per column, b
     * TS_NB, and no column mixes the two targets */
    int64_t per = chunks / (TS_NA + TS_NB);
    assert_int_equal(per * (TS_NA + TS_NB), chunks);
    assert_int_equal(db_int(f->dir, "SELECT count(*) FROM ts_columns"), 2 * per);
    assert_int_equal(db_int(f->dir, "SELECT count(*) FROM (SELECT ts_id, count(*) AS n FROM chunks"
                                    " GROUP BY ts_id) WHERE n = " WF_STRINGIFY(TS_NA)),
                     per);
    assert_int_equal(db_int(f->dir, "SELECT count(*) FROM (SELECT ts_id, count(*) AS n FROM chunks"
                                    " GROUP BY ts_id) WHERE n = " WF_STRINGIFY(TS_NB)),
                     per);
    /* a column has the maxt of each chunk that references it */
    assert_int_equal(db_int(f->dir, "SELECT count(*) FROM chunks c JOIN ts_columns t"
                                    " ON t.id = c.ts_id WHERE t.maxt != c.maxt"),
                     0);

    /* retention deletes the columns of the chunks it deletes, and only those */
    fx_open(f);
    f->now = T0 + 6 * HOUR_MS; /* cutoff T0 - 6 h */
    assert_int_equal(st_store_retention_run(f->s), 0);
    st_store_close(f->s);
    f->s = NULL;
    int64_t cutoff = T0 - 6 * HOUR_MS;
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM ts_columns WHERE maxt < %lld",
             (long long)cutoff);
    assert_int_equal(db_int(f->dir, sql), 0);
    int64_t left = db_int(f->dir, "SELECT count(*) FROM ts_columns");
    assert_true(left > 0 && left < 2 * per);
    assert_int_equal(db_int(f->dir, "SELECT count(*) FROM chunks c LEFT JOIN ts_columns t"
                                    " ON t.id = c.ts_id WHERE t.id IS NULL"),
                     0);
    fx_open(f);
    /* what is left reads back exactly: a suffix of the scrapes, through the last one */
    st_matcher_t *m = mk(ST_MATCH_EQ, "instance", "a");
    const st_matcher_t *ms[1] = {m};
    st_series_set_t *set = NULL;
    assert_int_equal(st_select(f->s, ms, 1, 0, INT64_MAX, &set), 0);
    assert_int_equal(st_series_set_len(set), TS_NA);
    const int64_t *ts;
    const double *v;
    size_t n;
    assert_int_equal(st_series_set_samples(set, 0, &ts, &v, &n), 0);
    assert_true(n > 0 && n < TS_SCRAPES);
    assert_true(ts[0] <= cutoff + 2 * HOUR_MS);
    int first = TS_SCRAPES - (int)n;
    for (size_t x = 0; x < n; x++) {
        assert_int_equal(ts[x], scrape_ts(0, start, first + (int)x));
    }
    st_series_set_free(set);
    st_matcher_free(m);
    (void)v;
}

typedef struct {
    st_store_t *s;
    volatile int *stop;
    int errors;
    size_t max_seen;
} reader_t;

static void *reader_main(void *arg)
{
    reader_t *r = arg;
    st_matcher_t *m = NULL;
    assert_int_equal(
        st_matcher_new(ST_MATCH_RE, WF_STR_LIT("__name__"), WF_STR_LIT("c.*"), &m, NULL, 0), 0);
    const st_matcher_t *ms[1] = {m};
    while (!__atomic_load_n(r->stop, __ATOMIC_ACQUIRE)) {
        st_series_set_t *set = NULL;
        if (st_select(r->s, ms, 1, 0, INT64_MAX, &set) != 0) {
            r->errors++;
            continue;
        }
        for (size_t i = 0; i < st_series_set_len(set); i++) {
            const int64_t *ts;
            const double *v;
            size_t n;
            if (st_series_set_samples(set, i, &ts, &v, &n) != 0) {
                r->errors++;
                continue;
            }
            for (size_t j = 0; j < n; j++) {
                /* Each sample's value is its index: a gap or a duplicate shows here. */
                if (v[j] != (double)j || (j > 0 && ts[j] <= ts[j - 1])) {
                    r->errors++;
                    break;
                }
            }
            if (n > r->max_seen) {
                r->max_seen = n;
            }
        }
        st_series_set_free(set);
        st_strlist_t *l = NULL;
        if (st_label_values(r->s, WF_STR_LIT("__name__"), NULL, 0, 0, INT64_MAX, &l) != 0) {
            r->errors++;
        }
        st_strlist_free(l);
    }
    st_matcher_free(m);
    return NULL;
}

static void test_series_refs(void **state)
{
    fx_t *f = *state;
    f->o.metrics_retention_ms = 6 * HOUR_MS;
    reopen(f);
    st_label_t a[] = {L("__name__", "ref_a"), L("job", "x")};
    st_label_t c[] = {L("job", "x"), L("__name__", "ref_c")}; /* unsorted input */
    st_ref_t ra = 0, rc = 0, again = 0;
    st_batch_t *b = NULL;
    assert_int_equal(st_batch_begin(f->s, &b), 0);
    assert_int_equal(st_batch_add_get_ref(b, a, 2, T0 - HOUR_MS, 1, &ra), 0);
    assert_int_equal(st_batch_add_get_ref(b, c, 2, T0 - HOUR_MS, 10, &rc), 0);
    assert_true(ra != rc);
    /* Not committed yet: the reference does not name a series. */
    assert_int_equal(st_batch_add_ref(b, ra, T0 - HOUR_MS + 1000, 2), ST_E_UNKNOWN_REF);
    assert_int_equal(st_batch_commit(b), 0);

    assert_int_equal(st_batch_begin(f->s, &b), 0);
    for (int i = 1; i <= 100; i++) {
        assert_int_equal(st_batch_add_ref(b, ra, T0 - HOUR_MS + i * 15000, 1 + i), 0);
        assert_int_equal(st_batch_add_ref(b, rc, T0 - HOUR_MS + i * 15000, 10 + i), 0);
    }
    /* Every check of st_batch_add applies to references too. */
    assert_int_equal(st_batch_add_ref(b, ra, T0 - HOUR_MS, 0), ST_E_OUT_OF_ORDER);
    assert_int_equal(st_batch_add_ref(b, ra, T0 - HOUR_MS + 100 * 15000, 0), ST_E_DUPLICATE);
    assert_int_equal(st_batch_add_ref(b, ra, T0 - HOUR_MS + 100 * 15000, 101), 0);
    assert_int_equal(st_batch_add_ref(b, ra, T0 + HOUR_MS, 0), ST_E_TOO_NEW);
    assert_int_equal(st_batch_add_ref(b, 987654321, T0, 0), ST_E_UNKNOWN_REF);
    /* The labels of a referenced series give back the same reference. */
    assert_int_equal(st_batch_add_get_ref(b, a, 2, T0 - HOUR_MS + 101 * 15000, 102, &again), 0);
    assert_true(again == ra);
    assert_int_equal(st_batch_commit(b), 0);

    static int64_t ts[256];
    static double v[256];
    size_t n = samples_of(f->s, "ref_a", 0, INT64_MAX, ts, v, 256);
    assert_int_equal(n, 102);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(ts[i], T0 - HOUR_MS + (int64_t)i * 15000);
        assert_true(v[i] == (double)(1 + i));
    }
    n = samples_of(f->s, "ref_c", 0, INT64_MAX, ts, v, 256);
    assert_int_equal(n, 101);
    assert_true(v[100] == 110);

    /* Retention deletes the series: its reference stops naming anything and is not reused. */
    f->now = T0 + 6 * HOUR_MS;
    assert_int_equal(st_store_retention_run(f->s), 0);
    st_stats_t st;
    st_store_stats(f->s, &st);
    assert_int_equal(st.series, 0);
    st_ref_t fresh = 0;
    assert_int_equal(st_batch_begin(f->s, &b), 0);
    assert_int_equal(st_batch_add_ref(b, ra, f->now, 1), ST_E_UNKNOWN_REF);
    assert_int_equal(st_batch_add_get_ref(b, a, 2, f->now, 1, &fresh), 0);
    assert_true(fresh != ra && fresh != rc);
    assert_int_equal(st_batch_commit(b), 0);
    assert_string_equal(st_strerror(ST_E_UNKNOWN_REF), "series reference names no series");
}

/* New series within every per-label limit can still make a batch too large: refused per sample. */
static void test_batch_bytes_limit(void **state)
{
    fx_t *f = *state;
    f->o.max_batch_bytes = 64 << 10;
    reopen(f);
    static char big[16000];
    memset(big, 'v', sizeof(big));
    st_batch_t *b = NULL;
    assert_int_equal(st_batch_begin(f->s, &b), 0);
    size_t added = 0;
    int rc = 0;
    for (int i = 0; i < 10 && rc == 0; i++) {
        char id[16];
        snprintf(id, sizeof(id), "%d", i);
        st_label_t l[] = {L("__name__", "wide"),
                          {WF_STR_LIT("big"), {big, sizeof(big)}},
                          {WF_STR_LIT("i"), wf_str(id)}};
        rc = st_batch_add(b, l, 3, T0 - MIN_MS, i);
        added += rc == 0;
    }
    assert_int_equal(rc, ST_E_BATCH_LIMIT);
    assert_int_equal(added, 4); /* 4 x ~16.1 KB fit in 64 KiB, the fifth does not */
    /* Metadata counts against the same budget. */
    static char help[60000];
    memset(help, 'h', sizeof(help));
    assert_int_equal(st_batch_set_metadata(b, WF_STR_LIT("wide"), ST_METRIC_GAUGE,
                                           (wf_str_t){help, sizeof(help)}, WF_STR_LIT("")),
                     ST_E_BATCH_LIMIT);
    assert_int_equal(st_batch_commit(b), 0);
    reopen(f);
    st_matcher_t *m = mk(ST_MATCH_EQ, "__name__", "wide");
    assert_int_equal(count_sel(f->s, m, NULL), 4);
    st_matcher_free(m);
}

static void test_concurrent_readers(void **state)
{
    fx_t *f = *state;
    volatile int stop = 0;
    reader_t r[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        r[i] = (reader_t){f->s, &stop, 0, 0};
        assert_int_equal(pthread_create(&th[i], NULL, reader_main, &r[i]), 0);
    }
    char names[20][8];
    for (int i = 0; i < 20; i++) {
        snprintf(names[i], sizeof(names[i]), "c%d", i);
    }
    int64_t start = T0 - 10 * HOUR_MS;
    for (int round = 0; round < 60; round++) {
        st_batch_t *b = NULL;
        assert_int_equal(st_batch_begin(f->s, &b), 0);
        for (int k = 0; k < 20; k++) {
            for (int i = 0; i < 20; i++) {
                int j = round * 20 + k;
                st_label_t l[] = {{WF_STR_LIT("__name__"), wf_str(names[i])}};
                assert_int_equal(st_batch_add(b, l, 1, start + j * 15000LL, (double)j), 0);
            }
        }
        assert_int_equal(st_batch_commit(b), 0);
        if (round % 10 == 9) {
            assert_int_equal(st_store_flush(f->s), 0);
        }
    }
    __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(r[i].errors, 0);
    }
    int64_t ts[2048];
    double v[2048];
    assert_int_equal(samples_of(f->s, "c7", 0, INT64_MAX, ts, v, 2048), 1200);
}

static void test_append_rate(void **state)
{
    fx_t *f = *state;
    /* 10,000 series with Istio-like labels, 100 samples each, 100,000 samples per batch. */
    enum { NS = 10000, PER = 100 };
    char(*vals)[32] = wf_malloc(NS * sizeof(*vals));
    for (int i = 0; i < NS; i++) {
        snprintf(vals[i], sizeof(vals[i]), "workload-%d", i);
    }
    int64_t start = T0 - 5 * HOUR_MS;
    int64_t t0 = wf_mono_ns();
    for (int j = 0; j < PER; j += 10) {
        st_batch_t *b = NULL;
        assert_int_equal(st_batch_begin(f->s, &b), 0);
        for (int k = j; k < j + 10; k++) {
            for (int i = 0; i < NS; i++) {
                st_label_t l[] = {
                    L("__name__", "istio_requests_total"),
                    L("connection_security_policy", "mutual_tls"),
                    L("destination_app", "reviews"),
                    L("destination_service", "reviews.default.svc.cluster.local"),
                    {WF_STR_LIT("destination_workload"), wf_str(vals[i])},
                    L("reporter", "destination"),
                    L("request_protocol", "http"),
                    L("response_code", "200"),
                    L("source_app", "productpage"),
                    L("source_workload", "productpage-v1"),
                };
                assert_int_equal(st_batch_add(b, l, 10, start + k * 15000LL, (double)(k * 3)), 0);
            }
        }
        assert_int_equal(st_batch_commit(b), 0);
    }
    double secs = (double)(wf_mono_ns() - t0) / 1e9;
    assert_int_equal(st_store_flush(f->s), 0);
    st_stats_t st;
    st_store_stats(f->s, &st);
    assert_int_equal(st.series, NS);
    assert_int_equal(st.samples_total, (uint64_t)NS * PER);
    printf("# append: %d samples in %.3f s = %.0f samples/s (10 labels, 100k/batch)\n", NS * PER,
           secs, NS * PER / secs);
    wf_free(vals);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sealed_flush_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_replay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_special_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_incompressible_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auto_flush, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_matchers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_label_names_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metadata, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_ts_columns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_series_refs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_bytes_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_readers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_rate, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
