/*
 * col_rw_sender.h - the Prometheus remote_write 1.0 sender: forwards every sample the
 * collector stores to an external Prometheus-compatible store (Prometheus with
 * --web.enable-remote-write-receiver, VictoriaMetrics, Mimir, Thanos receive, ...).
 *
 * It is a tap on the write queue (col_writer_tap_t): whatever an ingest path writes (scrapes,
 * remote_write, OTLP, text import), the writer thread copies the batch's samples, once
 * committed, into this module's queue: 24 bytes per sample, the labels of each series encoded
 * once (sorted by name) in a cache keyed by the store's series reference. The network is only
 * touched by the sender's own thread, so a slow or dead remote store never delays ingest.
 * Memory: 24 bytes per queued sample, plus the encoded labels of the series they belong to.
 *
 * The queue holds at most `queue` samples. When a new batch does not fit, the OLDEST queued
 * samples are dropped (reason "queue_full"): after an outage the remote store receives the
 * most recent data, which is what dashboards and alerts look at, and the samples of a series
 * still arrive in time order. The sample batch in flight is not in the queue and is never
 * dropped for room.
 *
 * The sender thread posts a WriteRequest when `batch` samples are waiting, or when the oldest
 * waiting sample has waited `flush_ms`. A request is a snappy block (not the framed format)
 * with Content-Encoding: snappy, Content-Type: application/x-protobuf,
 * X-Prometheus-Remote-Write-Version: 0.1.0 and User-Agent: weft/<version>. As the remote
 * write specification asks: 2xx is sent; 5xx, 429 and transport errors are retried with an
 * exponential backoff (min_backoff_ms doubling up to max_backoff_ms, Prometheus's 30 ms and
 * 5 s) until they succeed; any other answer drops the request's samples (reason "rejected"),
 * as retrying a refused request can only be refused again.
 *
 * Stopping (col_rw_sender_stop) keeps sending for at most drain_ms; what is left then is
 * dropped (reason "shutdown"), including a request in flight, which is aborted (libcurl looks
 * at the deadline at least once a second, so a stop takes at most drain_ms + 1 s).
 *
 * Threads: stage/publish (through the tap) on the writer thread; col_rw_sender_write_metrics
 * and col_rw_sender_stats from any thread; new/stop/free from the owner (the main thread).
 */
#ifndef COL_RW_SENDER_H
#define COL_RW_SENDER_H

#include "col_writer.h"
#include "st_store.h"
#include "wf_buf.h"

#include <stddef.h>
#include <stdint.h>

#define COL_RW_SENDER_DEFAULT_BATCH 2000
/* A request of more samples would be refused by receivers anyway (VictoriaMetrics' default
 * request limit is 32 MB; a sample with Istio's labels is about 1 KB). */
#define COL_RW_SENDER_MAX_BATCH 1000000
#define COL_RW_SENDER_DEFAULT_QUEUE 100000
#define COL_RW_SENDER_DEFAULT_FLUSH_MS 1000
#define COL_RW_SENDER_DEFAULT_TIMEOUT_MS 30000
#define COL_RW_SENDER_DEFAULT_MIN_BACKOFF_MS 30
#define COL_RW_SENDER_DEFAULT_MAX_BACKOFF_MS 5000

typedef struct {
    const char *url;          /* http:// or https:// URL of the receiver (copied) */
    const char *bearer_token; /* Authorization: Bearer ...; NULL or "": none (copied, wiped) */
    size_t batch;             /* samples per request at most; 0: the default */
    size_t queue;             /* samples waiting at most; 0: the default */
    int64_t flush_ms;         /* longest wait of a sample before it is sent; 0: the default */
    int64_t timeout_ms;       /* of one request; 0: the default */
    int64_t min_backoff_ms;   /* first retry's wait; 0: the default */
    int64_t max_backoff_ms;   /* cap of the doubling; 0: the default */
} col_rw_sender_options_t;

typedef struct col_rw_sender col_rw_sender_t;

/* Check the options and start the sender thread. 0; WF_E_INVAL (bad URL or sizes, err says
 * which); or -errno when the thread cannot start. */
int col_rw_sender_new(const col_rw_sender_options_t *o, col_rw_sender_t **out, char *err,
                      size_t errlen);

/* The tap to install on the write queue (col_writer_set_tap). */
void col_rw_sender_tap(col_rw_sender_t *s, col_writer_tap_t *out);

/*
 * Send what is queued for at most drain_ms (0: not at all), then drop the rest and stop the
 * thread. The tap must no longer be used (the write queue has stopped running). Idempotent.
 */
void col_rw_sender_stop(col_rw_sender_t *s, int64_t drain_ms);

/* Stop (without draining, if not stopped yet) and free. NULL is a no-op. */
void col_rw_sender_free(col_rw_sender_t *s);

typedef struct {
    uint64_t samples_sent;
    uint64_t dropped_queue_full;
    uint64_t dropped_rejected;
    uint64_t dropped_shutdown;
    uint64_t pending;         /* queued + in flight */
    uint64_t retries;         /* attempts after a retryable failure */
    uint64_t requests;        /* attempts, whatever their answer */
    uint64_t requests_failed; /* attempts without an HTTP answer (connection, timeout) */
    uint64_t bytes_sent;      /* compressed bodies of successful requests */
    uint64_t series_cached;   /* series whose labels are held (as of the last batch queued) */
} col_rw_sender_stats_t;

/* A consistent copy of the counters (any thread). */
void col_rw_sender_stats(col_rw_sender_t *s, col_rw_sender_stats_t *out);

/* Append the weft_remote_write_* families in the Prometheus text format (any thread). NULL
 * writes nothing. */
void col_rw_sender_write_metrics(col_rw_sender_t *s, wf_buf_t *out);

/* ---- the encoder, exposed for tests --------------------------------------------------------- */

/*
 * Append one WriteRequest.timeseries entry (field 1: tag, length, TimeSeries) holding labels
 * and one sample to out. Labels are written sorted by name (the store's are already; others
 * are sorted on a copy); labels with an empty value are left out, as they mean "absent".
 */
void col_rw_encode_series(wf_buf_t *out, const st_label_t *labels, size_t n, int64_t ts_ms,
                          double v);

#endif
