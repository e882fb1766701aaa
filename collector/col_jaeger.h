/*
 * col_jaeger.h - the Jaeger v1 HTTP query API (what the Jaeger UI and Grafana's Jaeger data
 * source call), answered from the span store.
 *
 * Routes (GET): /api/services, /api/services/{service}/operations, /api/operations,
 * /api/traces (search), /api/traces/{traceID}, /api/dependencies. Answers use Jaeger's
 * envelope {"data":...,"total":N,"limit":0,"offset":0,"errors":null}; traces are Jaeger's UI
 * model, with OTLP-only fields turned into tags as Jaeger's OTLP translator does (span.kind,
 * otel.status_code, otel.status_description, error, otel.scope.name, otel.scope.version,
 * w3c.tracestate; events become logs, links FOLLOWS_FROM references), after the adjustments
 * Jaeger's query service makes (col_trace_adjust.h). Every tag the JSON shows can be searched
 * with tag= / tags=: attributes, process (resource) tags, log fields and the derived tags above.
 * Bad parameters are 400 and an unknown trace is 404, both in the envelope with
 * "errors":[{"code":..,"msg":..}].
 *
 * Threads: handlers run on the HTTP worker threads and only read the store.
 */
#ifndef COL_JAEGER_H
#define COL_JAEGER_H

#include "col_http.h"
#include "st_span.h"

#include <stddef.h>
#include <stdint.h>

/* Add the Jaeger query routes to h (before col_http_listen); store is borrowed and must
 * outlive h. */
void col_jaeger_register(col_http_t *h, st_store_t *store);

/* Shared with the api_v3 module (col_jaeger_v3.c). */
/* Jaeger's TraceIDFromString: 1 to 32 hex digits, right-aligned into 128 bits. 0 or
 * WF_E_INVAL. */
int col__jaeger_parse_trace_id(const char *s, uint8_t id[16]);
/* "internal", "server", "client", "producer", "consumer"; "" for unspecified. */
const char *col__jaeger_kind_name(st_span_kind_t k);
/* The kind of such a name, or -1. */
int col__jaeger_kind_from_name(const char *s);
/* Go's time.ParseDuration ("1.5ms", "2m3s", "-1h") into nanoseconds: 0, or WF_E_INVAL with
 * Go's error message in errmsg. */
int col__jaeger_parse_go_duration(const char *s, int64_t *out, char *errmsg, size_t errlen);

#endif
