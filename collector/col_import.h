/*
 * col_import.h - POST /api/v1/import/prometheus: samples in the Prometheus text format,
 * VictoriaMetrics's import endpoint, handy for curl and tests.
 *
 * The body is exposition lines (text format 0.0.4; OpenMetrics when the Content-Type says
 * application/openmetrics-text) with optional timestamps in ms. Query parameters, as
 * VictoriaMetrics: `timestamp` (ms) is the time of lines without one (default: the time the
 * request arrived); `extra_label=name=value` (repeatable) adds or replaces a label on every
 * sample. HELP/TYPE lines are recorded as metric metadata.
 *
 * The whole body is parsed and validated first: a syntax error answers 400 "line N: ..." and
 * writes nothing. The samples then go to the store as one write job; 204 once durable. Samples
 * the store refuses one by one (out of order, too old, ...) do not stop the others; the answer
 * is then 400 naming how many were refused and the first reason, as Prometheus's remote-write
 * receiver does.
 *
 * Threads: the handler runs on HTTP worker threads and blocks on the writer queue.
 */
#ifndef COL_IMPORT_H
#define COL_IMPORT_H

#include "col_http.h"

/* The handler; arg is the col_writer_t. Route it with a body limit (e.g. 64 MiB). */
void col_import_handler(void *writer, col_req_t *req, col_resp_t *resp);

#endif
