/*
 * px_export.h - the proxy's span exporter: one thread that drains every worker's span queue
 * (px_span_queue_t), batches the spans and POSTs each batch as OTLP/HTTP protobuf
 * (px_otlp_encode) to the collector's /v1/traces with libcurl, off the request path.
 *
 * Batching follows the OpenTelemetry BatchSpanProcessor: a batch is sent when it holds
 * batch_max spans, or when its oldest span has waited flush_ms. A batch that fails (connect
 * error, timeout, non-2xx answer) is dropped and counted, never retried: a collector that is
 * down must not turn into a retry storm or unbounded memory. Spans that do not fit in a
 * worker's queue are dropped by the queue itself (px_span_queue_push) and counted there.
 *
 * Threads: px_export_start / px_export_stop on the main thread; the counters may be read from
 * any thread (px_export_stats, on the admin thread).
 */
#ifndef PX_EXPORT_H
#define PX_EXPORT_H

#include "px_otlp.h"
#include "px_trace.h"
#include "wf_buf.h"

#include <stddef.h>
#include <stdint.h>

/* Defaults (OpenTelemetry SDK's BatchSpanProcessor: 512 spans per batch, a 2048-span queue;
 * the flush interval is shorter than its 5 s so traces show up quickly, as Envoy's 5-span /
 * 5 s OpenTelemetry flush does under light load). */
#define PX_EXPORT_BATCH_MAX 512
#define PX_EXPORT_QUEUE 2048
#define PX_EXPORT_FLUSH_MS 1000
#define PX_EXPORT_TIMEOUT_MS 5000

typedef struct px_export px_export_t;

typedef struct {
    const char *url;                /* the full OTLP/HTTP traces endpoint (px_export_url) */
    int64_t flush_ms;               /* > 0 */
    size_t batch_max;               /* > 0 */
    int64_t timeout_ms;             /* per POST, connect included */
    px_trace_node_t node;           /* borrowed: must outlive the exporter */
    px_span_queue_t *const *queues; /* one per worker, borrowed */
    size_t n_queues;
} px_export_cfg_t;

/*
 * The traces endpoint for a collector URL: a URL whose path already ends in /v1/traces is
 * taken as is; otherwise /v1/traces is appended to it (one trailing slash dropped first), so
 * `http://127.0.0.1:20001` gives `http://127.0.0.1:20001/v1/traces`. Only http:// and
 * https:// URLs are accepted. Returns 0, WF_E_INVAL, or WF_E_LIMIT when out is too small.
 */
int px_export_url(const char *base, char *out, size_t cap);

/* Start the exporter thread. Returns 0 or a negative code (nothing is then running). */
int px_export_start(px_export_t **out, const px_export_cfg_t *cfg);

/*
 * Stop: call once the workers have ended (nothing pushes any more). Whatever is still queued
 * is sent within drain_ms (each POST's timeout is cut to what is left), the rest is dropped
 * and counted; then the thread ends and everything is freed. NULL is a no-op. The queues are
 * the caller's to free afterwards.
 */
void px_export_stop(px_export_t *e, int64_t drain_ms);

typedef struct {
    uint64_t spans_sent;   /* in a batch the collector answered 2xx */
    uint64_t spans_failed; /* in a batch that failed, or left over at shutdown */
    uint64_t batches_sent;
    uint64_t batches_failed;
} px_export_counters_t;

/* The counters so far (any thread). e may be NULL: all zero. */
void px_export_counters(const px_export_t *e, px_export_counters_t *out);

#endif
