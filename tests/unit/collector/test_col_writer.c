/*
 * test_col_writer.c - the write queue over a real store: many concurrent submitters share
 * commits and every sample arrives; refusals are counted per job with a message; a job that
 * breaks its group does not take the other jobs down; an idle queue returns after its timeout.
 */
#include "col_writer.h"
#include "wf_alloc.h"
#include "wf_err.h"
#include "wt_util.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

typedef struct {
    int series;    /* which series this job writes */
    int64_t t0;    /* first timestamp */
    int n;         /* samples */
    int fail_with; /* fill returns this (0 = succeed) */
} job_t;

static int fill(col_write_t *w, st_batch_t *b)
{
    const job_t *j = w->arg;
    if (j->fail_with != 0) {
        return j->fail_with;
    }
    char v[32];
    snprintf(v, sizeof(v), "s%d", j->series);
    st_label_t l[2] = {{WF_STR_LIT("__name__"), WF_STR_LIT("m")}, {WF_STR_LIT("id"), wf_str(v)}};
    for (int i = 0; i < j->n; i++) {
        int rc = st_batch_add(b, l, 2, j->t0 + i * 1000, i);
        if (rc == 0) {
            w->accepted++;
        } else {
            col_write_reject(w, rc, l, 2);
        }
    }
    return 0;
}

typedef struct {
    st_store_t *store;
    col_writer_t *wr;
    col_writer_thread_t *th;
    char *dir;
} fix_t;

static int64_t base_ms;

static int setup(void **state)
{
    fix_t *f = wf_calloc(1, sizeof(*f));
    f->dir = wt_tmpdir("colwriter");
    st_options_t o;
    st_options_default(&o);
    o.dir = f->dir;
    o.metrics_retention_ms = 0;
    assert_int_equal(st_store_open(&o, &f->store), 0);
    assert_int_equal(col_writer_new(f->store, &f->wr), 0);
    assert_int_equal(col_writer_thread_start(f->wr, &f->th), 0);
    base_ms = 1700000000000;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fix_t *f = *state;
    col_writer_thread_stop(f->th);
    col_writer_free(f->wr);
    st_store_close(f->store);
    wt_rm_rf(f->dir);
    wf_free(f->dir);
    wf_free(f);
    return 0;
}

static size_t count_samples(st_store_t *s, const char *id)
{
    st_matcher_t *m = NULL;
    assert_int_equal(st_matcher_new(ST_MATCH_EQ, WF_STR_LIT("id"), wf_str(id), &m, NULL, 0), 0);
    const st_matcher_t *mm[1] = {m};
    st_series_set_t *set = NULL;
    assert_int_equal(st_select(s, mm, 1, 0, INT64_MAX, &set), 0);
    size_t total = 0;
    for (size_t i = 0; i < st_series_set_len(set); i++) {
        const int64_t *ts;
        const double *v;
        size_t n;
        assert_int_equal(st_series_set_samples(set, i, &ts, &v, &n), 0);
        total += n;
    }
    st_series_set_free(set);
    st_matcher_free(m);
    return total;
}

typedef struct {
    fix_t *f;
    int idx;
} submitter_arg_t;

enum { SUBMITTERS = 8, JOBS_PER = 40, SAMPLES_PER = 50 };

static void *submitter(void *arg)
{
    submitter_arg_t *a = arg;
    for (int k = 0; k < JOBS_PER; k++) {
        job_t j = {
            .series = a->idx, .t0 = base_ms + (int64_t)k * SAMPLES_PER * 1000, .n = SAMPLES_PER};
        col_write_t w;
        memset(&w, 0, sizeof(w));
        w.fill = fill;
        w.arg = &j;
        w.est_samples = SAMPLES_PER;
        w.est_bytes = SAMPLES_PER * 16 + 64;
        if (col_writer_submit(a->f->wr, &w) != 0 || w.accepted != SAMPLES_PER || w.rejected != 0) {
            return (void *)1;
        }
    }
    return NULL;
}

static void test_concurrent_submitters(void **state)
{
    fix_t *f = *state;
    pthread_t th[SUBMITTERS];
    submitter_arg_t args[SUBMITTERS];
    for (int i = 0; i < SUBMITTERS; i++) {
        args[i] = (submitter_arg_t){f, i};
        assert_int_equal(pthread_create(&th[i], NULL, submitter, &args[i]), 0);
    }
    for (int i = 0; i < SUBMITTERS; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        assert_null(ret);
    }
    for (int i = 0; i < SUBMITTERS; i++) {
        char id[16];
        snprintf(id, sizeof(id), "s%d", i);
        assert_int_equal(count_samples(f->store, id), JOBS_PER * SAMPLES_PER);
    }
}

static void test_rejects_counted(void **state)
{
    fix_t *f = *state;
    job_t j = {.series = 100, .t0 = base_ms + 100000, .n = 10};
    col_write_t w;
    memset(&w, 0, sizeof(w));
    w.fill = fill;
    w.arg = &j;
    assert_int_equal(col_writer_submit(f->wr, &w), 0);
    assert_int_equal(w.accepted, 10);
    /* The same job again, shifted back: the first 5 are older than the newest sample. */
    j.t0 = base_ms + 100000 + 5 * 1000 - 5 * 1000 * 2;
    memset(&w, 0, sizeof(w));
    w.fill = fill;
    w.arg = &j;
    assert_int_equal(col_writer_submit(f->wr, &w), 0);
    assert_true(w.rejected > 0);
    assert_int_equal(w.accepted + w.rejected, 10);
    assert_int_equal(w.first_reject, ST_E_OUT_OF_ORDER);
    assert_non_null(strstr(w.reject_msg, "id=\"s100\""));
}

typedef struct {
    fix_t *f;
    job_t job;
    int status;
    size_t accepted;
} async_t;

static void *submit_async(void *arg)
{
    async_t *a = arg;
    col_write_t w;
    memset(&w, 0, sizeof(w));
    w.fill = fill;
    w.arg = &a->job;
    w.est_samples = (size_t)a->job.n;
    a->status = col_writer_submit(a->f->wr, &w);
    a->accepted = w.accepted;
    return NULL;
}

static void test_failing_job_isolated(void **state)
{
    fix_t *f = *state;
    /* Run several jobs at once, one failing; the others must be durable. */
    enum { N = 6 };
    async_t a[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        a[i] = (async_t){.f = f, .job = {.series = 200 + i, .t0 = base_ms, .n = 20}};
        if (i == 2) {
            a[i].job.fail_with = WF_E_INTERNAL;
        }
        pthread_create(&th[i], NULL, submit_async, &a[i]);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
    }
    for (int i = 0; i < N; i++) {
        char id[16];
        snprintf(id, sizeof(id), "s%d", 200 + i);
        if (i == 2) {
            assert_int_equal(a[i].status, WF_E_INTERNAL);
            assert_int_equal(count_samples(f->store, id), 0);
        } else {
            assert_int_equal(a[i].status, 0);
            assert_int_equal(a[i].accepted, 20);
            assert_int_equal(count_samples(f->store, id), 20);
        }
    }
}

static void test_idle_run(void **state)
{
    char *dir = wt_tmpdir("colwriter2");
    st_options_t o;
    st_options_default(&o);
    o.dir = dir;
    st_store_t *s = NULL;
    assert_int_equal(st_store_open(&o, &s), 0);
    col_writer_t *wr = NULL;
    col_writer_new(s, &wr);
    /* Nothing waiting: run returns 0 after its timeout. */
    assert_int_equal(col_writer_run(wr, 1), 0);
    col_writer_free(wr);
    st_store_close(s);
    wt_rm_rf(dir);
    wf_free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_concurrent_submitters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejects_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failing_job_isolated, setup, teardown),
        cmocka_unit_test(test_idle_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
