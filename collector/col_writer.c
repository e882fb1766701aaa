/*
 * col_writer.c - the write queue between ingest paths and the store's writer thread.
 *
 * Submitters link a job into a FIFO under one mutex and sleep on a per-queue condition
 * variable until their job is marked done. The writer thread (col_writer_run) takes every
 * waiting job at once and packs them into as few store batches as the batch limits allow, so
 * that many concurrent requests share one SQLite commit (group commit): the commit is most of
 * a small request's cost.
 */
#include "col_writer.h"

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
    bool closed;
    bool wake;
    /* Group limits: a quarter of the store's, so that a group never hits the store's limit
     * because of estimates that are only upper bounds of one job each. */
    size_t group_samples;
    size_t group_bytes;
    col_writer_stats_t stats; /* under mu */
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

int col_writer_new(st_store_t *s, col_writer_t **out)
{
    col_writer_t *wr = wf_calloc(1, sizeof(*wr));
    wr->store = s;
    pthread_mutex_init(&wr->mu, NULL);
    pthread_cond_init(&wr->work, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_destroy(&wr->work);
    pthread_cond_init(&wr->work, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&wr->done, NULL);
    st_options_t def;
    st_options_default(&def);
    wr->group_samples = def.max_batch_samples / 4;
    wr->group_bytes = def.max_batch_bytes / 4;
    *out = wr;
    return 0;
}

/* Mark every job in the list done with status, under the lock. */
static void finish_list(col_writer_t *wr, col_write_t *list, int status)
{
    for (col_write_t *w = list; w != NULL;) {
        col_write_t *next = w->next;
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
        w = next;
    }
    pthread_cond_broadcast(&wr->done);
}

void col_writer_free(col_writer_t *wr)
{
    if (wr == NULL) {
        return;
    }
    pthread_mutex_lock(&wr->mu);
    wr->closed = true;
    col_write_t *pending = wr->head;
    wr->head = wr->tail = NULL;
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
    pthread_mutex_lock(&wr->mu);
    if (wr->closed) {
        pthread_mutex_unlock(&wr->mu);
        w->status = ST_E_CLOSED;
        return w->status;
    }
    if (wr->tail != NULL) {
        wr->tail->next = w;
    } else {
        wr->head = w;
    }
    wr->tail = w;
    pthread_cond_signal(&wr->work);
    while (!w->done) {
        pthread_cond_wait(&wr->done, &wr->mu);
    }
    pthread_mutex_unlock(&wr->mu);
    return w->status;
}

void col_writer_stats(col_writer_t *wr, col_writer_stats_t *out)
{
    pthread_mutex_lock(&wr->mu);
    *out = wr->stats;
    pthread_mutex_unlock(&wr->mu);
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
    return st_batch_commit(b);
}

int col_writer_run(col_writer_t *wr, int timeout_ms)
{
    pthread_mutex_lock(&wr->mu);
    if (wr->head == NULL && !wr->wake && timeout_ms > 0) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += timeout_ms / 1000;
        until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (wr->head == NULL && !wr->wake) {
            if (pthread_cond_timedwait(&wr->work, &wr->mu, &until) == ETIMEDOUT) {
                break;
            }
        }
    }
    wr->wake = false;
    col_write_t *jobs = wr->head;
    wr->head = wr->tail = NULL;
    pthread_mutex_unlock(&wr->mu);

    int ran = 0;
    while (jobs != NULL) {
        if (jobs->spans != NULL) {
            col_write_t *w = jobs;
            jobs = jobs->next;
            w->next = NULL;
            int one = w->spans(w, wr->store);
            pthread_mutex_lock(&wr->mu);
            finish_list(wr, w, one);
            pthread_mutex_unlock(&wr->mu);
            ran++;
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
