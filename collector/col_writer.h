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
 * Threads: col_writer_submit may be called from any thread (HTTP workers, the scraper) except
 * the writer thread itself; it blocks until the job's data is durable or has failed.
 */
#ifndef COL_WRITER_H
#define COL_WRITER_H

#include "st_store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
 * spans with st_spans_append (which commits by itself) and returns its result. Span jobs run
 * one by one, between metric groups.
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
};

/* Count one refused sample (err from st_batch_add*) of series labels (may be NULL) for
 * the job's results; the first one's message is kept. */
void col_write_reject(col_write_t *w, int err, const st_label_t *labels, size_t nlabels);

typedef struct col_writer col_writer_t;

int col_writer_new(st_store_t *s, col_writer_t **out);
/* Stop the queue: jobs submitted afterwards fail with ST_E_CLOSED; waiting ones complete. */
void col_writer_free(col_writer_t *wr);

/* Submit a job and wait until it is durable or failed. Returns w->status. */
int col_writer_submit(col_writer_t *wr, col_write_t *w);

/*
 * The writer thread's loop body: wait up to timeout_ms for jobs, run those waiting as one or
 * more batches, return how many jobs ran. The collector's main thread calls it in its loop,
 * between housekeeping (flush, retention), which therefore never races a write.
 */
int col_writer_run(col_writer_t *wr, int timeout_ms);

typedef struct {
    uint64_t jobs;             /* jobs completed (durable or failed) */
    uint64_t jobs_failed;      /* of which failed */
    uint64_t batches;          /* store batches committed or attempted */
    uint64_t samples_accepted; /* samples made durable */
    uint64_t samples_rejected; /* samples refused one by one */
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
