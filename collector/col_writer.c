/*
 * col_writer.c - the write queue between ingest paths and the store's writer thread.
 *
 * Submitters link a job into a FIFO under one mutex and sleep on a per-queue condition
 * variable until their job is marked done. The writer thread (col_writer_run) takes every
 * waiting job at once and packs them into as few store batches as the batch limits allow, so
 * that many concurrent requests share one SQLite commit (group commit): the commit is most of
 * a small request's cost.
 *
 * Shedding (see col_writer.h) is decided under the same mutex: a submitter checks the budget
 * before linking its job, and waits with a deadline; when the deadline passes and its job is
 * still in the list (the writer takes the whole list at once, clearing each job's queued flag),
 * it unlinks the job itself. Once taken, a job is waited for without a deadline.
 *
 * Span jobs are grouped too: consecutive span jobs of the list run inside one span group
 * (st_spans_group_begin .. commit, st_span.h), so that their appends share one commit. An
 * append refused for its own spans leaves the group as it was, so each job keeps its own
 * answer; when the group itself fails, every job of it runs again alone.
 */
#include "col_writer.h"

#include "st_span.h"
#include "wf_alloc.h"
#include "wf_err.h"
#include "wf_log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

struct col_writer {
    st_store_t *store;
    pthread_mutex_t mu;
    pthread_cond_t work; /* the writer waits for jobs */
    pthread_cond_t done; /* submitters wait for their job */
    col_write_t *head, *tail;
    size_t queued_jobs, queued_bytes; /* of the list head..tail */
    size_t max_queue_bytes;
    int64_t max_wait_ms; /* < 0: no limit */
    bool closed;
    bool wake;
    /* Group limits: a quarter of the store's, so that a group never hits the store's limit
     * because of estimates that are only upper bounds of one job each. */
    size_t group_samples;
    size_t group_bytes;
    col_writer_stats_t stats; /* under mu */
    col_writer_tap_t tap;     /* set before the queue runs; stage == NULL: none */
};

void col_write_reject(col_write_t *w, int err, const st_label_t *labels, size_t nlabels)
{
    if (w->rejected++ != 0) {
        return;
    }
    w->first_reject = err;
    int n = snprintf(w->reject_msg, sizeof(w->reject_msg), "%s", st_strerror(err));
    if (labels == NULL || n < 0 || (size_t)n >= sizeof(w->reject_msg)) {
        return;
    }
    size_t off = (size_t)n;
    off += (size_t)snprintf(w->reject_msg + off, sizeof(w->reject_msg) - off, " for series {");
    for (size_t i = 0; i < nlabels && off < sizeof(w->reject_msg); i++) {
        off += (size_t)snprintf(w->reject_msg + off, sizeof(w->reject_msg) - off, "%s%.*s=\"%.*s\"",
                                i ? ", " : "", (int)labels[i].name.len, labels[i].name.p,
                                (int)labels[i].value.len, labels[i].value.p);
    }
    if (off < sizeof(w->reject_msg)) {
        snprintf(w->reject_msg + off, sizeof(w->reject_msg) - off, "}");
    }
}

const char *col_writer_strerror(int code)
{
    if (code == COL_E_BUSY) {
        return "the collector is overloaded (write queue full or too slow)";
    }
    return st_strerror(code);
}

unsigned col_writer_http_status(int rc)
{
    switch (rc) {
    case COL_E_BUSY:
    case ST_E_CLOSED:
        return 503;
    case ST_E_BATCH_LIMIT:
        return 413;
    default:
        return 500;
    }
}

void col_resp_write_failed(col_resp_t *resp, int rc)
{
    switch (rc) {
    case COL_E_BUSY:
        col_resp_retry_later(resp, 503, "%s: retry later", col_writer_strerror(rc));
        break;
    case ST_E_CLOSED:
        col_resp_retry_later(resp, 503, "the store is closed (shutting down): retry later");
        break;
    case ST_E_BATCH_LIMIT:
        col_resp_text(resp, 413, "request too large for one store batch: %s", st_strerror(rc));
        break;
    default:
        col_resp_text(resp, 500, "store write failed: %s", col_writer_strerror(rc));
        break;
    }
}

int col_writer_new(st_store_t *s, col_writer_t **out)
{
    return col_writer_new_opts(s, NULL, out);
}

int col_writer_new_opts(st_store_t *s, const col_writer_options_t *o, col_writer_t **out)
{
    col_writer_t *wr = wf_calloc(1, sizeof(*wr));
    wr->store = s;
    wr->max_queue_bytes = COL_WRITER_DEFAULT_QUEUE_BYTES;
    wr->max_wait_ms = COL_WRITER_DEFAULT_MAX_WAIT_MS;
    if (o != NULL && o->max_queue_bytes != 0) {
        wr->max_queue_bytes = o->max_queue_bytes;
    }
    if (o != NULL && o->max_wait_ms != 0) {
        wr->max_wait_ms = o->max_wait_ms;
    }
    pthread_mutex_init(&wr->mu, NULL);
    /* Both waits have deadlines on the monotonic clock: a wall clock step must neither shed
     * every waiting job nor keep one waiting forever. */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&wr->work, &ca);
    pthread_cond_init(&wr->done, &ca);
    pthread_condattr_destroy(&ca);
    st_options_t def;
    st_options_default(&def);
    wr->group_samples = def.max_batch_samples / 4;
    wr->group_bytes = def.max_batch_bytes / 4;
    *out = wr;
    return 0;
}

/* Mark one job done with status, under the lock (the caller wakes the submitters). */
static void finish_job(col_writer_t *wr, col_write_t *w, int status)
{
    w->status = status;
    wr->stats.jobs++;
    if (status != 0) {
        wr->stats.jobs_failed++;
    } else {
        wr->stats.samples_accepted += w->accepted;
        wr->stats.samples_rejected += w->rejected;
    }
    w->next = NULL;
    w->done = true;
}

/* Mark every job in the list done with status, under the lock. */
static void finish_list(col_writer_t *wr, col_write_t *list, int status)
{
    for (col_write_t *w = list; w != NULL;) {
        col_write_t *next = w->next;
        finish_job(wr, w, status);
        w = next;
    }
    pthread_cond_broadcast(&wr->done);
}

/* Take every waiting job out of the list (they are the writer's now), under the lock. */
static col_write_t *take_list(col_writer_t *wr)
{
    col_write_t *jobs = wr->head;
    for (col_write_t *w = jobs; w != NULL; w = w->next) {
        w->queued = false;
    }
    wr->head = wr->tail = NULL;
    wr->queued_jobs = 0;
    wr->queued_bytes = 0;
    return jobs;
}

/* Unlink w, still waiting, from the list, under the lock. */
static void unlink_job(col_writer_t *wr, col_write_t *w)
{
    col_write_t *prev = NULL;
    for (col_write_t *x = wr->head; x != w; x = x->next) {
        WF_ASSERT(x != NULL);
        prev = x;
    }
    if (prev != NULL) {
        prev->next = w->next;
    } else {
        wr->head = w->next;
    }
    if (wr->tail == w) {
        wr->tail = prev;
    }
    w->next = NULL;
    w->queued = false;
    wr->queued_jobs--;
    wr->queued_bytes -= w->est_bytes;
}

/* now + ms on the monotonic clock. */
static struct timespec deadline_after(int64_t ms)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += (time_t)(ms / 1000);
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

void col_writer_free(col_writer_t *wr)
{
    if (wr == NULL) {
        return;
    }
    pthread_mutex_lock(&wr->mu);
    wr->closed = true;
    col_write_t *pending = take_list(wr);
    finish_list(wr, pending, ST_E_CLOSED);
    pthread_mutex_unlock(&wr->mu);
    /* Submitters that were waiting have been woken with ST_E_CLOSED; the caller guarantees no
     * new submissions race with the free (the HTTP server and scraper are stopped first). */
    pthread_cond_destroy(&wr->work);
    pthread_cond_destroy(&wr->done);
    pthread_mutex_destroy(&wr->mu);
    wf_free(wr);
}

int col_writer_submit(col_writer_t *wr, col_write_t *w)
{
    w->status = 0;
    w->accepted = 0;
    w->rejected = 0;
    w->first_reject = 0;
    w->reject_msg[0] = '\0';
    w->next = NULL;
    w->done = false;
    w->queued = false;
    struct timespec until = deadline_after(wr->max_wait_ms > 0 ? wr->max_wait_ms : 0);
    pthread_mutex_lock(&wr->mu);
    if (wr->closed) {
        pthread_mutex_unlock(&wr->mu);
        w->status = ST_E_CLOSED;
        return w->status;
    }
    if (wr->head != NULL && (w->est_bytes > wr->max_queue_bytes ||
                             wr->queued_bytes > wr->max_queue_bytes - w->est_bytes)) {
        wr->stats.shed_queue_full++;
        size_t queued = wr->queued_bytes;
        pthread_mutex_unlock(&wr->mu);
        WF_LOG_RL(WF_WARN, 1, "collector", "write queue full: request shed",
                  "queued_bytes=%zu job_bytes=%zu limit=%zu", queued, w->est_bytes,
                  wr->max_queue_bytes);
        w->status = COL_E_BUSY;
        return w->status;
    }
    if (wr->tail != NULL) {
        wr->tail->next = w;
    } else {
        wr->head = w;
    }
    wr->tail = w;
    w->queued = true;
    wr->queued_jobs++;
    wr->queued_bytes += w->est_bytes;
    pthread_cond_signal(&wr->work);
    bool shed = false;
    while (!w->done) {
        if (!w->queued || wr->max_wait_ms < 0) {
            pthread_cond_wait(&wr->done, &wr->mu);
            continue;
        }
        if (pthread_cond_timedwait(&wr->done, &wr->mu, &until) == ETIMEDOUT && !w->done &&
            w->queued) {
            unlink_job(wr, w);
            wr->stats.shed_queue_wait++;
            w->status = COL_E_BUSY;
            w->done = true;
            shed = true;
        }
    }
    pthread_mutex_unlock(&wr->mu);
    if (shed) {
        WF_LOG_RL(WF_WARN, 1, "collector", "write queue too slow: request shed", "max_wait_ms=%lld",
                  (long long)wr->max_wait_ms);
    }
    return w->status;
}

void col_writer_stats(col_writer_t *wr, col_writer_stats_t *out)
{
    pthread_mutex_lock(&wr->mu);
    *out = wr->stats;
    out->queued_jobs = wr->queued_jobs;
    out->queued_bytes = wr->queued_bytes;
    pthread_mutex_unlock(&wr->mu);
}

void col_writer_set_tap(col_writer_t *wr, const col_writer_tap_t *tap)
{
    WF_ASSERT(tap == NULL || (tap->stage != NULL && tap->publish != NULL));
    if (tap != NULL) {
        wr->tap = *tap;
    } else {
        memset(&wr->tap, 0, sizeof(wr->tap));
    }
}

void col_writer_wake(col_writer_t *wr)
{
    pthread_mutex_lock(&wr->mu);
    wr->wake = true;
    pthread_cond_signal(&wr->work);
    pthread_mutex_unlock(&wr->mu);
}

/* Run one group of jobs as one batch. Returns the batch's status. Writer thread, unlocked. */
static int run_group(col_writer_t *wr, col_write_t *group)
{
    st_batch_t *b = NULL;
    pthread_mutex_lock(&wr->mu);
    wr->stats.batches++;
    pthread_mutex_unlock(&wr->mu);
    int rc = st_batch_begin(wr->store, &b);
    if (rc != 0) {
        return rc;
    }
    for (col_write_t *w = group; w != NULL; w = w->next) {
        rc = w->fill(w, b);
        if (rc != 0) {
            st_batch_abort(b);
            return rc;
        }
    }
    if (wr->tap.stage == NULL) {
        return st_batch_commit(b);
    }
    wr->tap.stage(wr->tap.arg, b);
    rc = st_batch_commit(b);
    wr->tap.publish(wr->tap.arg, rc == 0);
    return rc;
}

static void count_batch(col_writer_t *wr)
{
    pthread_mutex_lock(&wr->mu);
    wr->stats.batches++;
    pthread_mutex_unlock(&wr->mu);
}

/* Run one span job alone (its append commits by itself) and finish it. Writer thread. */
static void run_span_job(col_writer_t *wr, col_write_t *w)
{
    w->next = NULL;
    w->accepted = w->rejected = 0;
    w->first_reject = 0;
    w->reject_msg[0] = '\0';
    count_batch(wr);
    int rc = w->spans(w, wr->store);
    pthread_mutex_lock(&wr->mu);
    finish_list(wr, w, rc);
    pthread_mutex_unlock(&wr->mu);
}

/* Run a list of span jobs in one span group; returns how many jobs ran. Writer thread. */
static int run_span_group(col_writer_t *wr, col_write_t *group)
{
    int ran = 0;
    if (group->next == NULL) {
        run_span_job(wr, group);
        return 1;
    }
    count_batch(wr);
    int rc = st_spans_group_begin(wr->store);
    if (rc == 0) {
        /* Each job's own answer waits in its status until the group's fate is known. */
        for (col_write_t *w = group; w != NULL; w = w->next) {
            w->status = w->spans(w, wr->store);
        }
        rc = st_spans_group_commit(wr->store);
    }
    if (rc != 0) {
        WF_LOG_RL(WF_WARN, 1, "collector", "span group failed: retrying its jobs one by one",
                  "err=\"%s\"", st_strerror(rc));
        for (col_write_t *w = group; w != NULL;) {
            col_write_t *next = w->next;
            run_span_job(wr, w);
            ran++;
            w = next;
        }
        return ran;
    }
    pthread_mutex_lock(&wr->mu);
    for (col_write_t *w = group; w != NULL;) {
        col_write_t *next = w->next;
        finish_job(wr, w, w->status);
        ran++;
        w = next;
    }
    pthread_cond_broadcast(&wr->done);
    pthread_mutex_unlock(&wr->mu);
    return ran;
}

int col_writer_run(col_writer_t *wr, int timeout_ms)
{
    pthread_mutex_lock(&wr->mu);
    if (wr->head == NULL && !wr->wake && timeout_ms > 0) {
        struct timespec until = deadline_after(timeout_ms);
        while (wr->head == NULL && !wr->wake) {
            if (pthread_cond_timedwait(&wr->work, &wr->mu, &until) == ETIMEDOUT) {
                break;
            }
        }
    }
    wr->wake = false;
    col_write_t *jobs = take_list(wr);
    pthread_mutex_unlock(&wr->mu);

    int ran = 0;
    while (jobs != NULL) {
        if (jobs->spans != NULL) {
            col_write_t *group = jobs, *last = jobs;
            size_t n = 1, bytes = jobs->est_bytes;
            jobs = jobs->next;
            while (jobs != NULL && jobs->spans != NULL && n < COL_WRITER_SPAN_GROUP_JOBS &&
                   bytes + jobs->est_bytes <= wr->group_bytes) {
                n++;
                bytes += jobs->est_bytes;
                last = jobs;
                jobs = jobs->next;
            }
            last->next = NULL;
            ran += run_span_group(wr, group);
            continue;
        }
        /* Cut a group: at least one job, then more while the estimates fit. */
        col_write_t *group = jobs, *last = jobs;
        size_t samples = jobs->est_samples, bytes = jobs->est_bytes;
        jobs = jobs->next;
        while (jobs != NULL && jobs->spans == NULL &&
               samples + jobs->est_samples <= wr->group_samples &&
               bytes + jobs->est_bytes <= wr->group_bytes) {
            samples += jobs->est_samples;
            bytes += jobs->est_bytes;
            last = jobs;
            jobs = jobs->next;
        }
        last->next = NULL;
        int rc = run_group(wr, group);
        if (rc != 0 && group->next != NULL) {
            /* One job may have broken the group (a fill error, or a limit the estimates
             * missed): run each job alone so that the others still get written. */
            for (col_write_t *w = group; w != NULL;) {
                col_write_t *next = w->next;
                w->next = NULL;
                w->accepted = w->rejected = 0;
                w->first_reject = 0;
                w->reject_msg[0] = '\0';
                int one = run_group(wr, w);
                pthread_mutex_lock(&wr->mu);
                finish_list(wr, w, one);
                pthread_mutex_unlock(&wr->mu);
                ran++;
                w = next;
            }
            continue;
        }
        if (rc != 0) {
            WF_LOG_RL(WF_WARN, 1, "collector", "write failed", "err=\"%s\"", st_strerror(rc));
        }
        for (col_write_t *w = group; w != NULL; w = w->next) {
            ran++;
        }
        pthread_mutex_lock(&wr->mu);
        finish_list(wr, group, rc);
        pthread_mutex_unlock(&wr->mu);
    }
    return ran;
}

struct col_writer_thread {
    col_writer_t *wr;
    pthread_t th;
    atomic_bool stop;
};

static void *writer_thread_main(void *arg)
{
    col_writer_thread_t *t = arg;
    while (!atomic_load(&t->stop)) {
        col_writer_run(t->wr, 50);
    }
    col_writer_run(t->wr, 0); /* jobs that arrived with the stop request */
    return NULL;
}

int col_writer_thread_start(col_writer_t *wr, col_writer_thread_t **out)
{
    col_writer_thread_t *t = wf_calloc(1, sizeof(*t));
    t->wr = wr;
    atomic_store(&t->stop, false);
    int rc = pthread_create(&t->th, NULL, writer_thread_main, t);
    if (rc != 0) {
        wf_free(t);
        *out = NULL;
        return -rc;
    }
    *out = t;
    return 0;
}

void col_writer_thread_stop(col_writer_thread_t *t)
{
    if (t == NULL) {
        return;
    }
    atomic_store(&t->stop, true);
    col_writer_wake(t->wr);
    pthread_join(t->th, NULL);
    wf_free(t);
}
