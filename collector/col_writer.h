/*
 * col_writer.h - the collector's write queue: every ingest path (remote_write, OTLP, text
 * import, scrape) hands its samples to the one thread that writes the store, and waits until
 * they are durable.
 *
 * The writer thread is the store's writer (st_store.h). It takes the jobs waiting in the queue
 * together, opens one st_batch, lets each job add its samples (group commit: many requests,
 * one SQLite transaction), commits, and wakes every job with the result. A job whose samples
 * alone exceed the store's batch limits runs alone and gets ST_E_BATCH_LIMIT.
 *
 * Load shedding: a queue that grows faster than the store commits would hold every request's
 * memory and keep its client waiting past its own timeout (the client then retries a request
 * whose data may be written anyway). So the queue has a budget, the sum of the est_bytes of the
 * jobs waiting, and a maximum wait: a job that would exceed the budget is refused at once, and
 * a job the writer has not taken within the maximum wait is taken out of the queue; both fail
 * with COL_E_BUSY, which the HTTP handlers answer with 503 and Retry-After. A job the writer has
 * taken always runs to its end, however long it takes: its data may already be durable.
 *
 * Threads: col_writer_submit may be called from any thread (HTTP workers, the scraper) except
 * the writer thread itself; it blocks until the job's data is durable or has failed.
 */
#ifndef COL_WRITER_H
#define COL_WRITER_H

#include "col_http.h"
#include "st_store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The collector's own error codes (wf_err.h gives it -1200..-1299). */
enum {
    COL_E_BUSY = -1200, /* the write queue is over its budget or the job waited too long */
};

/* A static description of code: COL_E_* here, else st_strerror's. Never NULL. */
const char *col_writer_strerror(int code);

typedef struct col_write col_write_t;

/*
 * Called on the writer thread with an open batch: add this job's samples (st_batch_add,
 * st_batch_add_ref, st_batch_set_metadata). Per-sample refusals (out of order, bad labels, ...)
 * are not fatal: report them with col_write_reject and go on. Return 0, or a negative code to
 * fail the whole job; the batch then also fails for the other jobs grouped with it, so return
 * an error only when the batch itself is broken (ST_E_CLOSED, ST_E_BATCH_LIMIT, -EIO).
 * The job's own data (arg) is borrowed: the submitting thread waits meanwhile.
 * fill may run more than once for one job (when its group failed, each job is retried alone
 * in a new batch): it must add the same samples each time and must not assume that series
 * references it obtained in a failed run exist.
 */
typedef int (*col_write_fill_cb)(col_write_t *w, st_batch_t *b);

/*
 * A span job (OTLP traces, Zipkin): called on the writer thread with the store; it appends its
 * spans with st_spans_append and returns its result. Consecutive span jobs in the queue share
 * one commit (up to COL_WRITER_SPAN_GROUP_JOBS of them; est_bytes, if set, also bounds the group
 * as for samples): their appends run inside one span group (st_internal.h), and each job gets
 * its own append's answer once the group has committed. When the group as a whole fails (a
 * database error), each job's callback runs again alone, so it must append the same spans each
 * time. Between metric groups.
 */
typedef int (*col_write_spans_cb)(col_write_t *w, st_store_t *s);

struct col_write {
    /* set by the submitter: fill for samples, or spans for spans (exactly one of them) */
    col_write_fill_cb fill;
    col_write_spans_cb spans;
    void *arg;
    size_t est_samples; /* an upper bound of the samples fill will add, for grouping */
    size_t est_bytes;   /* and of their bytes (labels + 16 per sample) */
    /* results, valid after col_writer_submit returns */
    int status;           /* 0 durable; else the batch's or fill's error */
    size_t accepted;      /* samples fill added successfully */
    size_t rejected;      /* samples refused one by one */
    int first_reject;     /* ST_E_* of the first refusal */
    char reject_msg[256]; /* "out of order sample ... for series {...}" (the first one) */
    /* private to the queue */
    col_write_t *next;
    bool done;
    bool queued; /* in the waiting list (not yet taken by the writer) */
};

/* Count one refused sample (err from st_batch_add*) of series labels (may be NULL) for
 * the job's results; the first one's message is kept. */
void col_write_reject(col_write_t *w, int err, const st_label_t *labels, size_t nlabels);

typedef struct col_writer col_writer_t;

/* Most span jobs sharing one commit: bounds the transaction and the head copies it holds. */
#define COL_WRITER_SPAN_GROUP_JOBS 64

#define COL_WRITER_DEFAULT_QUEUE_BYTES ((size_t)256 << 20)
/* Below the OpenTelemetry SDKs' 10 s export timeout (Prometheus's remote_timeout is 30 s),
 * so that the client reads our 503 rather than giving up on its own. */
#define COL_WRITER_DEFAULT_MAX_WAIT_MS 5000

typedef struct {
    size_t max_queue_bytes; /* budget of the waiting jobs' est_bytes; 0: the default */
    int64_t max_wait_ms;    /* longest wait before the writer takes a job; 0: the default,
                               negative: no limit */
} col_writer_options_t;

/*
 * A tap sees every batch of samples the queue commits, whichever ingest path they came from
 * (the remote_write sender, col_rw_sender.h). stage runs on the writer thread with the batch
 * filled, just before its commit (st_batch_each walks it); publish runs right after the
 * commit with its result, and drops what stage kept when the commit failed (the jobs are then
 * retried alone, each batch staged again). Both run between ingest and its answer: they must
 * only copy, never wait on anything slow.
 */
typedef struct {
    void (*stage)(void *arg, st_batch_t *b);
    void (*publish)(void *arg, bool committed);
    void *arg;
} col_writer_tap_t;

/* Install tap (copied; NULL removes it), before the queue runs. */
void col_writer_set_tap(col_writer_t *wr, const col_writer_tap_t *tap);

/* The queue with default options (col_writer_new_opts with NULL). */
int col_writer_new(st_store_t *s, col_writer_t **out);
/* The queue over store s; o may be NULL (defaults). Returns 0. */
int col_writer_new_opts(st_store_t *s, const col_writer_options_t *o, col_writer_t **out);
/* Stop the queue: jobs submitted afterwards fail with ST_E_CLOSED; waiting ones complete. */
void col_writer_free(col_writer_t *wr);

/*
 * Submit a job and wait until it is durable or failed. Returns w->status: 0, the batch's or
 * fill's error, ST_E_CLOSED after col_writer_free, or COL_E_BUSY when the job was shed: at
 * once because the waiting jobs' est_bytes plus its own exceed max_queue_bytes (a job alone in
 * the queue is always admitted, so that a large one can still be written), or after
 * max_wait_ms without the writer taking it. A shed job's fill or spans was never called.
 */
int col_writer_submit(col_writer_t *wr, col_write_t *w);

/* The HTTP status that answers a failed submit (rc != 0): 503 for COL_E_BUSY and ST_E_CLOSED
 * (the client should come back later), 413 for ST_E_BATCH_LIMIT, 500 otherwise. */
unsigned col_writer_http_status(int rc);

/*
 * Answer a failed submit (rc != 0) in text/plain with col_writer_http_status(rc); the 503
 * answers carry Retry-After (col_resp_retry_later). For handlers whose protocol has its own
 * error body (OTLP's Status), use col_writer_http_status and col_resp_retry_after instead.
 */
void col_resp_write_failed(col_resp_t *resp, int rc);

/*
 * The writer thread's loop body: wait up to timeout_ms for jobs, run those waiting as one or
 * more batches, return how many jobs ran. The collector's main thread calls it in its loop,
 * between housekeeping (flush, retention), which therefore never races a write.
 */
int col_writer_run(col_writer_t *wr, int timeout_ms);

typedef struct {
    uint64_t jobs;             /* jobs completed (durable or failed) */
    uint64_t jobs_failed;      /* of which failed */
    uint64_t batches;          /* store batches and span groups committed or attempted (one
                                  commit each; a lone span job counts as one) */
    uint64_t samples_accepted; /* samples made durable */
    uint64_t samples_rejected; /* samples refused one by one */
    uint64_t shed_queue_full;  /* jobs refused at once: the queue was over its budget */
    uint64_t shed_queue_wait;  /* jobs taken out after waiting max_wait_ms */
    uint64_t queued_jobs;      /* jobs waiting now */
    uint64_t queued_bytes;     /* and their est_bytes */
} col_writer_stats_t;

/* A consistent copy of the queue's counters (any thread). */
void col_writer_stats(col_writer_t *wr, col_writer_stats_t *out);

/*
 * Run the queue on a thread of its own (col_writer_run in a loop) until
 * col_writer_thread_stop: for tests, and for serving the queue while the main thread is busy
 * stopping the parts that submit to it. Only one thread may run the queue at a time.
 */
typedef struct col_writer_thread col_writer_thread_t;

int col_writer_thread_start(col_writer_t *wr, col_writer_thread_t **out);
/* Finish the jobs waiting now, stop the thread and free it. NULL is a no-op. */
void col_writer_thread_stop(col_writer_thread_t *t);

/* Ask a waiting col_writer_run to return now (from a signal-safe context use a flag). */
void col_writer_wake(col_writer_t *wr);

#endif
