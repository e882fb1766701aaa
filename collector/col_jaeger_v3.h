/*
 * col_jaeger_v3.h - Jaeger's api_v3 over HTTP (the grpc-gateway JSON form that newer Jaeger UIs
 * and Grafana call), answered from the span store.
 *
 * Routes (GET): /api/v3/services -> {"services":[...]}; /api/v3/operations?service=&span_kind=
 * -> {"operations":[{"name":..,"spanKind":..}]}; /api/v3/traces/{traceID} and /api/v3/traces
 * (search, query.* parameters; durations in Go's syntax, "1.5ms", "2m3s", as Jaeger parses them)
 * -> {"result":{"resourceSpans":[...]}} in OTLP JSON, traces adjusted as Jaeger's query service
 * does (col_trace_adjust.h). Errors use the gateway's shape
 * {"error":{"httpCode":N,"message":".."}}: 400 for bad parameters, 404 when no trace matches
 * (as Jaeger, also for an empty search), 500 for store failures.
 *
 * Threads: handlers run on the HTTP worker threads and only read the store.
 */
#ifndef COL_JAEGER_V3_H
#define COL_JAEGER_V3_H

#include "col_http.h"
#include "st_span.h"

/* Add the api_v3 routes to h (before col_http_listen); store is borrowed and must outlive h. */
void col_jaeger_v3_register(col_http_t *h, st_store_t *store);

#endif
