/*
 * test_store_retention.c - retention by time frees data and the disk space it used.
 *
 * A fake clock (st_options_t.now_ms) drives a constant load through many simulated days:
 * NSERIES series, one sample every STEP_MS, metrics_retention_ms = 1 day, a flush and a
 * retention run every simulated hour, as the collector's writer does. After every day the size
 * of the data directory is recorded. Then:
 *   - a select over the range that retention dropped returns no series;
 *   - the last 12 hours are intact: every series, every sample, exact values;
 *   - a new sample older than the retention cut-off is refused with ST_E_TOO_OLD;
 *   - the directory stops growing: its size after day LATE_DAY is at most SIZE_FACTOR times its
 *     size after day EARLY_DAY, although LATE_DAY has seen far more data. This is a disk-space
 *     property, not a timing one.
 * The store is closed and reopened half-way, so the property also holds across restarts.
 */
#include "st_store.h"
#include "wf_alloc.h"
#include "wf_err.h"
#include "wf_log.h"
#include "wt_util.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h> /* cmocka needs these before its header */
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#define NSERIES 500
#define STEP_MS 15000
#define DAY_MS (86400LL * 1000)
#define HOUR_MS (3600LL * 1000)
#define DAYS 8
#define EARLY_DAY 3
#define LATE_DAY 8
#define REOPEN_DAY 5
#define SIZE_FACTOR 1.3
/* 2023-11-15 00:00:00 UTC: a fixed start, so runs are identical. */
#define START_MS 1700006400000LL

typedef struct {
    char *dir;
    int64_t now;
    st_store_t *s;
    st_label_t labels[NSERIES][3];
    char names[NSERIES][16];
} ret_ctx_t;

static int64_t fake_now(void *arg)
{
    return *(const int64_t *)arg;
}

/* The value of series j at ts: counters for most series, decimals for every fifth (gauges). */
static double value_at(int j, int64_t ts)
{
    int64_t i = (ts - START_MS) / STEP_MS;
    if (j % 5 == 0) {
        return floor(1000.0 * sin((double)i / 97.0 + j)) / 8.0;
    }
    return (double)(i * (1 + j % 7) + j);
}

static void open_store(ret_ctx_t *c)
{
    st_options_t o;
    st_options_default(&o);
    o.dir = c->dir;
    o.metrics_retention_ms = DAY_MS;
    o.now_ms = fake_now;
    o.now_arg = &c->now;
    int rc = st_store_open(&o, &c->s);
    if (rc != 0) {
        fprintf(stderr, "st_store_open: %s\n", st_strerror(rc));
    }
    assert_int_equal(rc, 0);
}

static size_t select_count(ret_ctx_t *c, int64_t mint, int64_t maxt, st_series_set_t **out)
{
    st_matcher_t *m = NULL;
    assert_int_equal(st_matcher_new(ST_MATCH_EQ, WF_STR_LIT("__name__"),
                                    WF_STR_LIT("retention_test"), &m, NULL, 0),
                     0);
    st_series_set_t *set = NULL;
    int rc = st_select(c->s, (const st_matcher_t *const *)&m, 1, mint, maxt, &set);
    st_matcher_free(m);
    if (rc != 0) {
        fprintf(stderr, "st_select: %s\n", st_strerror(rc));
    }
    assert_int_equal(rc, 0);
    size_t n = st_series_set_len(set);
    if (out != NULL) {
        *out = set;
    } else {
        st_series_set_free(set);
    }
    return n;
}

static int series_index(const st_series_set_t *set, size_t i)
{
    size_t nl = 0;
    const st_label_t *l = st_series_set_labels(set, i, &nl);
    for (size_t x = 0; x < nl; x++) {
        if (wf_str_eq_c(l[x].name, "series") && l[x].value.len > 0 && l[x].value.len < 8) {
            char num[8];
            memcpy(num, l[x].value.p, l[x].value.len);
            num[l[x].value.len] = '\0';
            return atoi(num);
        }
    }
    return -1;
}

static void test_retention_reuses_space(void **state)
{
    ret_ctx_t *c = wf_calloc(1, sizeof(*c));
    c->dir = wt_tmpdir("retention");
    for (int j = 0; j < NSERIES; j++) {
        snprintf(c->names[j], sizeof(c->names[j]), "%d", j);
        c->labels[j][0] = (st_label_t){WF_STR_LIT("__name__"), WF_STR_LIT("retention_test")};
        c->labels[j][1] = (st_label_t){WF_STR_LIT("instance"), WF_STR_LIT("10.0.0.1:15020")};
        c->labels[j][2] = (st_label_t){WF_STR_LIT("series"), wf_str(c->names[j])};
    }
    c->now = START_MS;
    open_store(c);
    int64_t sizes[DAYS + 1] = {0};
    int64_t ts = START_MS;
    for (int day = 1; day <= DAYS; day++) {
        int64_t day_end = START_MS + day * DAY_MS;
        int64_t next_hour = ts - (ts - START_MS) % HOUR_MS + HOUR_MS;
        for (; ts < day_end; ts += STEP_MS) {
            c->now = ts + 1000;
            st_batch_t *b = NULL;
            assert_int_equal(st_batch_begin(c->s, &b), 0);
            for (int j = 0; j < NSERIES; j++) {
                int rc = st_batch_add(b, c->labels[j], 3, ts, value_at(j, ts));
                if (rc != 0) {
                    fprintf(stderr, "day %d ts %" PRId64 " series %d: %s\n", day, ts, j,
                            st_strerror(rc));
                    st_batch_abort(b);
                    fail();
                }
            }
            assert_int_equal(st_batch_commit(b), 0);
            if (ts + STEP_MS >= next_hour) {
                assert_int_equal(st_store_flush(c->s), 0);
                assert_int_equal(st_store_retention_run(c->s), 0);
                next_hour += HOUR_MS;
            }
        }
        assert_int_equal(st_store_flush(c->s), 0);
        assert_int_equal(st_store_retention_run(c->s), 0);
        sizes[day] = wt_du_bytes(c->dir);
        printf("day %d: data directory %" PRId64 " bytes\n", day, sizes[day]);
        fflush(stdout);
        if (day == REOPEN_DAY) {
            st_store_close(c->s);
            c->s = NULL;
            open_store(c);
        }
    }
    int64_t now = c->now;

    /* Everything older than the cut-off (now - 1 day) is gone; leave a day of slack for stores
     * that drop whole chunks or blocks only once all their samples have expired. */
    size_t old = select_count(c, START_MS, now - 2 * DAY_MS, NULL);
    if (old != 0) {
        fprintf(stderr, "%zu series still have samples older than 2 days (retention: 1 day)\n",
                old);
    }
    assert_int_equal(old, 0);

    /* The last 12 hours are all there, exactly. */
    int64_t from = now - 12 * HOUR_MS;
    st_series_set_t *set = NULL;
    size_t n = select_count(c, from, now, &set);
    assert_int_equal(n, NSERIES);
    int64_t first = from + (STEP_MS - (from - START_MS) % STEP_MS) % STEP_MS;
    size_t want = (size_t)((ts - STEP_MS - first) / STEP_MS + 1);
    for (size_t i = 0; i < n; i++) {
        int j = series_index(set, i);
        assert_true(j >= 0 && j < NSERIES);
        const int64_t *sts = NULL;
        const double *sv = NULL;
        size_t ns = 0;
        assert_int_equal(st_series_set_samples(set, i, &sts, &sv, &ns), 0);
        if (ns != want) {
            fprintf(stderr, "series %d: %zu samples in the last 12 h, want %zu\n", j, ns, want);
        }
        assert_int_equal(ns, want);
        for (size_t x = 0; x < ns; x++) {
            int64_t t = first + (int64_t)x * STEP_MS;
            double v = value_at(j, t);
            if (sts[x] != t || memcmp(&sv[x], &v, sizeof(v)) != 0) {
                fprintf(stderr,
                        "series %d sample %zu: (%" PRId64 ", %.17g) want (%" PRId64 ", %.17g)\n", j,
                        x, sts[x], sv[x], t, v);
                fail();
            }
        }
    }
    st_series_set_free(set);

    /* A sample from before the cut-off is refused, for a new series as for an old one. */
    st_batch_t *b = NULL;
    assert_int_equal(st_batch_begin(c->s, &b), 0);
    st_label_t fresh[2] = {{WF_STR_LIT("__name__"), WF_STR_LIT("retention_test")},
                           {WF_STR_LIT("series"), WF_STR_LIT("new")}};
    assert_int_equal(st_batch_add(b, fresh, 2, now - 2 * DAY_MS, 1.0), ST_E_TOO_OLD);
    st_batch_abort(b);

    /* The disk space stopped growing although the store has taken in ever more samples. */
    printf("size after day %d: %" PRId64 " bytes, after day %d: %" PRId64 " bytes (%.2fx, "
           "limit %.1fx)\n",
           EARLY_DAY, sizes[EARLY_DAY], LATE_DAY, sizes[LATE_DAY],
           (double)sizes[LATE_DAY] / (double)sizes[EARLY_DAY], SIZE_FACTOR);
    assert_true(sizes[EARLY_DAY] > 0);
    assert_true((double)sizes[LATE_DAY] <= SIZE_FACTOR * (double)sizes[EARLY_DAY]);

    st_store_close(c->s);
    wt_rm_rf(c->dir);
    wf_free(c->dir);
    wf_free(c);
}

int main(void)
{
    wf_log_set_level(WF_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retention_reuses_space),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
