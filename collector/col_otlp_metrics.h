/*
 * col_otlp_metrics.h - OTLP/HTTP metrics receiver (POST /v1/metrics): an
 * ExportMetricsServiceRequest in protobuf (application/x-protobuf) or OTLP JSON
 * (application/json) becomes Prometheus series, named as the OpenTelemetry "Prometheus and
 * OpenMetrics Compatibility" specification says, and is written through the write queue.
 * The HTTP layer has already removed gzip and chunking.
 *
 * Translation (docs/compatibility.md repeats it for users):
 *   names   invalid characters become `_`, runs of `_` collapse, leading/trailing `_` go, a
 *           leading digit gets a `_` prefix; the unit is appended as a suffix (UCUM to
 *           Prometheus words: ms -> milliseconds, By -> bytes, s -> seconds, `x/s` ->
 *           `x_per_second`, `{annotations}` dropped, `1` -> `_ratio` on gauges only) unless
 *           the name already holds it;
 *   Gauge                      -> gauge;
 *   Sum monotonic cumulative   -> counter, `_total` appended;
 *   Sum non-monotonic cumulative -> gauge;
 *   Sum or Histogram with delta (or unspecified) temporality -> dropped and counted, as the
 *           Prometheus exporter does (a delta is not a Prometheus series);
 *   Histogram cumulative       -> `_bucket{le=...}` (cumulative counts, `+Inf` = count),
 *                                 `_sum` (when present), `_count`;
 *   Summary                    -> `{quantile=...}` series, `_sum`, `_count`;
 *   ExponentialHistogram       -> dropped and counted (Prometheus 2.42 has no native
 *                                 histograms to put them in);
 *   a point flagged "no recorded value" -> Prometheus's staleness marker.
 * Labels: data point attributes, names sanitized (invalid characters -> `_`, a leading digit
 * gets `key_`, a single leading `_` gets `key`); attributes that collide after sanitizing are
 * joined with `;` in the order of their original keys. Values: strings as they are, booleans
 * `true`/`false`, integers in decimal, doubles as Prometheus prints floats, bytes in base64,
 * arrays and maps as JSON. `job` = `service.namespace/service.name` (or `service.name`),
 * `instance` = `service.instance.id`; the other resource attributes go to one `target_info`
 * gauge (value 1) per resource and are not copied onto every series. Instrumentation scope
 * name and version are not added as labels (Prometheus's own OTLP receiver default).
 * Metadata (type, description as help, unit) is recorded per metric family.
 *
 * Answers: 200 with an ExportMetricsServiceResponse in the request's encoding (empty, or
 * partial_success with the count of data points dropped or samples the store refused and
 * the first reason); 400 with a google.rpc.Status (code 3) for malformed input; 413 above
 * the sample-set limits; 503 when the store failed (OTLP clients retry 503).
 *
 * Threads: as col_remote_write.h.
 */
#ifndef COL_OTLP_METRICS_H
#define COL_OTLP_METRICS_H

#include "col_http.h"
#include "col_remote_write.h"
#include "wf_arena.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* POST /v1/metrics. writer is the collector's col_writer_t. */
void col_otlp_metrics_handler(void *writer, col_req_t *req, col_resp_t *resp);
/* The handler's body with the request's Content-Type given (NULL: protobuf), for callers
 * without a libmicrohttpd connection (tests). Other types than protobuf and JSON get 415. */
void col_otlp_metrics_serve(col_writer_t *wr, const char *content_type, col_req_t *req,
                            col_resp_t *resp);

typedef struct {
    size_t points;      /* data points translated into samples */
    size_t dropped;     /* data points dropped (delta, exponential histogram, malformed) */
    char drop_msg[256]; /* why the first one was dropped */
} col_otlp_stats_t;

/*
 * Decode and translate a request body (json: OTLP JSON, else protobuf) into set. Strings the
 * set borrows live in arena or in body. 0; WF_E_INVAL with err for malformed input;
 * WF_E_LIMIT beyond the set's limits. Exposed for tests and fuzzing.
 */
int col_otlp_metrics_decode(const uint8_t *body, size_t len, bool json, wf_arena_t *arena,
                            col_sset_t *set, col_otlp_stats_t *st, char *err, size_t errlen);

/* The Prometheus metric name of an OTLP metric (see above), into out (NUL-terminated).
 * kind: 'g' gauge, 'c' counter, 'h' histogram, 's' summary. Returns its length, 0 when the
 * name sanitizes to nothing. */
size_t col_otlp_metric_name(wf_str_t name, wf_str_t unit, char kind, char *out, size_t cap);
/* A sanitized label name into out; returns its length (0: the key is empty). */
size_t col_otlp_label_name(wf_str_t key, char *out, size_t cap);

#endif
