/*
 * test_col_writer.c - the write queue over a real store: many concurrent submitters share
 * commits and every sample arrives; refusals are counted per job with a message; a job that
 * breaks its group does not take the other jobs down; an idle queue returns after its timeout.
 * Load shedding: a job the writer does not take within max_wait fails with COL_E_BUSY and
 * leaves the queue; a job over the queue's budget fails at once; a job the writer took is never
 * cut short, however long it runs; failures map to HTTP answers with Retry-After.
 * Span jobs waiting together share one commit, and each keeps its own answer (a job's invalid
 * spans fail that job only).
 */
#include "col_writer.h"
#include "st_span.h"
#include "wf_alloc.h"
#include "wf_err.h"
#include "wt_util.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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

/* ---- load shedding ------------------------------------------------------------------------- */

/* A store and a queue with small shedding limits, and no thread running the queue. */
typedef struct {
    char *dir;
    st_store_t *store;
    col_writer_t *wr;
} shed_fix_t;

static void shed_open(shed_fix_t *f, size_t max_queue_bytes, int64_t max_wait_ms)
{
    memset(f, 0, sizeof(*f));
    f->dir = wt_tmpdir("colwriter-shed");
    st_options_t o;
    st_options_default(&o);
    o.dir = f->dir;
    o.metrics_retention_ms = 0;
    assert_int_equal(st_store_open(&o, &f->store), 0);
    col_writer_options_t wo = {.max_queue_bytes = max_queue_bytes, .max_wait_ms = max_wait_ms};
    assert_int_equal(col_writer_new_opts(f->store, &wo, &f->wr), 0);
}

static void shed_close(shed_fix_t *f)
{
    col_writer_free(f->wr);
    st_store_close(f->store);
    wt_rm_rf(f->dir);
    wf_free(f->dir);
}

typedef struct {
    col_writer_t *wr;
    job_t job;
    size_t est_bytes;
    int status;
    size_t accepted;
} shed_async_t;

static void *shed_submit(void *arg)
{
    shed_async_t *a = arg;
    col_write_t w;
    memset(&w, 0, sizeof(w));
    w.fill = fill;
    w.arg = &a->job;
    w.est_samples = (size_t)a->job.n;
    w.est_bytes = a->est_bytes;
    a->status = col_writer_submit(a->wr, &w);
    a->accepted = w.accepted;
    return NULL;
}

/* Wait (without a bound on time: the test's own timeout is the bound) until n jobs wait. */
static void wait_queued(col_writer_t *wr, uint64_t n)
{
    for (;;) {
        col_writer_stats_t st;
        col_writer_stats(wr, &st);
        if (st.queued_jobs == n) {
            return;
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

static void test_shed_wait_deadline(void **state)
{
    /* Nobody runs the queue: every job can only reach its deadline and be shed. */
    shed_fix_t f;
    shed_open(&f, 0, 50);
    enum { N = 3 };
    shed_async_t a[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        a[i] = (shed_async_t){
            .wr = f.wr, .job = {.series = 300 + i, .t0 = base_ms, .n = 5}, .est_bytes = 100};
        assert_int_equal(pthread_create(&th[i], NULL, shed_submit, &a[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(a[i].status, COL_E_BUSY);
        assert_int_equal(a[i].accepted, 0);
    }
    col_writer_stats_t st;
    col_writer_stats(f.wr, &st);
    assert_int_equal(st.shed_queue_wait, N);
    assert_int_equal(st.shed_queue_full, 0);
    assert_int_equal(st.queued_jobs, 0);
    assert_int_equal(st.queued_bytes, 0);
    assert_int_equal(st.jobs, 0);
    /* The list is intact after the unlinks: nothing left to run, and a new job runs. */
    assert_int_equal(col_writer_run(f.wr, 0), 0);
    col_writer_thread_t *t = NULL;
    assert_int_equal(col_writer_thread_start(f.wr, &t), 0);
    shed_async_t ok = {.wr = f.wr, .job = {.series = 310, .t0 = base_ms, .n = 5}, .est_bytes = 100};
    shed_submit(&ok);
    col_writer_thread_stop(t);
    assert_int_equal(ok.status, 0);
    assert_int_equal(ok.accepted, 5);
    assert_int_equal(count_samples(f.store, "s300"), 0);
    assert_int_equal(count_samples(f.store, "s310"), 5);
    shed_close(&f);
}

static void test_shed_queue_full(void **state)
{
    /* Budget 1000 bytes; a long wait, so that only the budget can refuse. */
    shed_fix_t f;
    shed_open(&f, 1000, 600000);
    shed_async_t first = {
        .wr = f.wr, .job = {.series = 400, .t0 = base_ms, .n = 7}, .est_bytes = 600};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, shed_submit, &first), 0);
    wait_queued(f.wr, 1);

    /* 600 + 600 > 1000: refused at once, on this thread, while nobody runs the queue. */
    shed_async_t second = {
        .wr = f.wr, .job = {.series = 401, .t0 = base_ms, .n = 7}, .est_bytes = 600};
    shed_submit(&second);
    assert_int_equal(second.status, COL_E_BUSY);
    col_writer_stats_t st;
    col_writer_stats(f.wr, &st);
    assert_int_equal(st.shed_queue_full, 1);
    assert_int_equal(st.shed_queue_wait, 0);
    assert_int_equal(st.queued_jobs, 1);
    assert_int_equal(st.queued_bytes, 600);

    /* The waiting job is not harmed: run the queue here and it is durable. */
    assert_int_equal(col_writer_run(f.wr, 0), 1);
    pthread_join(th, NULL);
    assert_int_equal(first.status, 0);
    assert_int_equal(first.accepted, 7);
    assert_int_equal(count_samples(f.store, "s400"), 7);
    assert_int_equal(count_samples(f.store, "s401"), 0);

    /* A job above the whole budget is admitted when it is alone: it could never fit else. */
    col_writer_thread_t *t = NULL;
    assert_int_equal(col_writer_thread_start(f.wr, &t), 0);
    shed_async_t big = {
        .wr = f.wr, .job = {.series = 402, .t0 = base_ms, .n = 9}, .est_bytes = 5000};
    shed_submit(&big);
    col_writer_thread_stop(t);
    assert_int_equal(big.status, 0);
    assert_int_equal(count_samples(f.store, "s402"), 9);
    shed_close(&f);
}

/* A fill that runs until its job's deadline is well past. */
typedef struct {
    job_t job;
    struct timespec until;
} slow_job_t;

static int slow_fill(col_write_t *w, st_batch_t *b)
{
    slow_job_t *s = w->arg;
    for (;;) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > s->until.tv_sec ||
            (now.tv_sec == s->until.tv_sec && now.tv_nsec >= s->until.tv_nsec)) {
            break;
        }
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    col_write_t inner = *w;
    inner.arg = &s->job;
    int rc = fill(&inner, b);
    w->accepted = inner.accepted;
    w->rejected = inner.rejected;
    return rc;
}

static void test_shed_running_job_not_cut(void **state)
{
    shed_fix_t f;
    shed_open(&f, 0, 50);
    col_writer_thread_t *t = NULL;
    assert_int_equal(col_writer_thread_start(f.wr, &t), 0);
    slow_job_t s = {.job = {.series = 500, .t0 = base_ms, .n = 11}};
    /* The fill runs until 4 deadlines have passed since before the submit. */
    clock_gettime(CLOCK_MONOTONIC, &s.until);
    s.until.tv_nsec += 200000000L;
    if (s.until.tv_nsec >= 1000000000L) {
        s.until.tv_sec++;
        s.until.tv_nsec -= 1000000000L;
    }
    col_write_t w;
    memset(&w, 0, sizeof(w));
    w.fill = slow_fill;
    w.arg = &s;
    w.est_samples = 11;
    w.est_bytes = 100;
    assert_int_equal(col_writer_submit(f.wr, &w), 0);
    col_writer_thread_stop(t);
    assert_int_equal(w.accepted, 11);
    assert_int_equal(count_samples(f.store, "s500"), 11);
    col_writer_stats_t st;
    col_writer_stats(f.wr, &st);
    assert_int_equal(st.shed_queue_wait, 0);
    shed_close(&f);
}

/* ---- span jobs ------------------------------------------------------------------------------- */

typedef struct {
    col_writer_t *wr;
    st_span_t spans[2];
    size_t bad_index;
    int status;
} span_async_t;

static int spans_cb(col_write_t *w, st_store_t *s)
{
    span_async_t *a = w->arg;
    return st_spans_append(s, a->spans, 2, &a->bad_index);
}

static void *span_submit(void *arg)
{
    span_async_t *a = arg;
    col_write_t w;
    memset(&w, 0, sizeof(w));
    w.spans = spans_cb;
    w.arg = a;
    a->status = col_writer_submit(a->wr, &w);
    return NULL;
}

static void mk_span(st_span_t *sp, uint8_t trace, uint8_t span, int64_t start_ns)
{
    memset(sp, 0, sizeof(*sp));
    sp->trace_id[15] = trace;
    sp->span_id[7] = span;
    sp->service = WF_STR_LIT("svc");
    sp->name = WF_STR_LIT("op");
    sp->kind = ST_SPAN_KIND_SERVER;
    sp->start_ns = start_ns;
    sp->end_ns = start_ns + 1000;
}

static size_t trace_spans(st_store_t *s, uint8_t trace)
{
    uint8_t tid[16] = {0};
    tid[15] = trace;
    st_span_list_t *l = NULL;
    int rc = st_trace_get(s, tid, &l);
    if (rc == WF_E_NOTFOUND) {
        return 0;
    }
    assert_int_equal(rc, 0);
    size_t n = l->n;
    st_span_list_free(l);
    return n;
}

static void test_span_jobs_grouped(void **state)
{
    /* Nobody runs the queue until the jobs wait together; then one run takes them all. */
    shed_fix_t f;
    shed_open(&f, 0, -1);
    enum { N = 4 };
    span_async_t a[N];
    pthread_t th[N];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t t0 = (int64_t)now.tv_sec * 1000000000 - 60000000000LL;
    for (int i = 0; i < N; i++) {
        memset(&a[i], 0, sizeof(a[i]));
        a[i].wr = f.wr;
        mk_span(&a[i].spans[0], (uint8_t)(i + 1), 1, t0 + i);
        mk_span(&a[i].spans[1], (uint8_t)(i + 1), 2, t0 + i);
    }
    /* Job 2's second span ends before it starts: only job 2 may fail. */
    a[2].spans[1].end_ns = a[2].spans[1].start_ns - 1;
    for (int i = 0; i < N; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, span_submit, &a[i]), 0);
        wait_queued(f.wr, (uint64_t)i + 1);
    }
    assert_int_equal(col_writer_run(f.wr, 0), N);
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
    }
    col_writer_stats_t st;
    col_writer_stats(f.wr, &st);
    assert_int_equal(st.batches, 1); /* one commit for the four jobs */
    assert_int_equal(st.jobs, N);
    assert_int_equal(st.jobs_failed, 1);
    for (int i = 0; i < N; i++) {
        if (i == 2) {
            assert_int_equal(a[i].status, ST_E_SPAN_INVALID);
            assert_int_equal(a[i].bad_index, 1);
            assert_int_equal(trace_spans(f.store, (uint8_t)(i + 1)), 0);
        } else {
            assert_int_equal(a[i].status, 0);
            assert_int_equal(trace_spans(f.store, (uint8_t)(i + 1)), 2);
        }
    }
    st_stats_t ss;
    st_store_stats(f.store, &ss);
    assert_int_equal(ss.spans_total, 6);
    /* Durable: a reopened store holds them (through its log or its blocks). */
    st_store_close(f.store);
    st_options_t o;
    st_options_default(&o);
    o.dir = f.dir;
    o.metrics_retention_ms = 0;
    assert_int_equal(st_store_open(&o, &f.store), 0);
    assert_int_equal(trace_spans(f.store, 1), 2);
    assert_int_equal(trace_spans(f.store, 4), 2);
    assert_int_equal(trace_spans(f.store, 3), 0);
    shed_close(&f);
}

/* A span job alone, and span jobs between sample jobs, still run in list order. */
static void test_span_job_alone(void **state)
{
    shed_fix_t f;
    shed_open(&f, 0, -1);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t t0 = (int64_t)now.tv_sec * 1000000000 - 60000000000LL;
    span_async_t a;
    memset(&a, 0, sizeof(a));
    a.wr = f.wr;
    mk_span(&a.spans[0], 9, 1, t0);
    mk_span(&a.spans[1], 9, 2, t0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, span_submit, &a), 0);
    wait_queued(f.wr, 1);
    shed_async_t m = {.wr = f.wr, .job = {.series = 500, .t0 = base_ms, .n = 3}, .est_bytes = 100};
    pthread_t th2;
    assert_int_equal(pthread_create(&th2, NULL, shed_submit, &m), 0);
    wait_queued(f.wr, 2);
    assert_int_equal(col_writer_run(f.wr, 0), 2);
    pthread_join(th, NULL);
    pthread_join(th2, NULL);
    assert_int_equal(a.status, 0);
    assert_int_equal(m.status, 0);
    col_writer_stats_t st;
    col_writer_stats(f.wr, &st);
    assert_int_equal(st.batches, 2);
    assert_int_equal(trace_spans(f.store, 9), 2);
    assert_int_equal(count_samples(f.store, "s500"), 3);
    shed_close(&f);
}

static void test_write_failed_answers(void **state)
{
    assert_int_equal(col_writer_http_status(COL_E_BUSY), 503);
    assert_int_equal(col_writer_http_status(ST_E_CLOSED), 503);
    assert_int_equal(col_writer_http_status(ST_E_BATCH_LIMIT), 413);
    assert_int_equal(col_writer_http_status(-EIO), 500);
    /* COL_E_BUSY is none of the store's codes: its name is the collector's own. */
    assert_non_null(strstr(col_writer_strerror(COL_E_BUSY), "overloaded"));

    col_resp_t r;
    memset(&r, 0, sizeof(r));
    r.retry_after_s = 7;
    col_resp_write_failed(&r, COL_E_BUSY);
    assert_int_equal(r.status, 503);
    assert_int_equal(r.nheaders, 1);
    assert_string_equal(r.headers[0][0], "Retry-After");
    assert_string_equal(r.headers[0][1], "7");
    wf_buf_putc(&r.body, 0);
    assert_non_null(strstr((const char *)r.body.data, "retry later"));
    wf_free(r.headers[0][0]);
    wf_free(r.headers[0][1]);
    wf_buf_free(&r.body);

    /* A response made by hand has the default Retry-After. */
    memset(&r, 0, sizeof(r));
    col_resp_write_failed(&r, ST_E_CLOSED);
    assert_int_equal(r.status, 503);
    assert_int_equal(r.nheaders, 1);
    assert_string_equal(r.headers[0][1], "1");
    wf_free(r.headers[0][0]);
    wf_free(r.headers[0][1]);
    wf_buf_free(&r.body);

    memset(&r, 0, sizeof(r));
    col_resp_write_failed(&r, -EIO);
    assert_int_equal(r.status, 500);
    assert_int_equal(r.nheaders, 0);
    wf_buf_free(&r.body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_concurrent_submitters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejects_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failing_job_isolated, setup, teardown),
        cmocka_unit_test(test_idle_run),
        cmocka_unit_test(test_shed_wait_deadline),
        cmocka_unit_test(test_shed_queue_full),
        cmocka_unit_test(test_shed_running_job_not_cut),
        cmocka_unit_test(test_write_failed_answers),
        cmocka_unit_test(test_span_jobs_grouped),
        cmocka_unit_test(test_span_job_alone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
