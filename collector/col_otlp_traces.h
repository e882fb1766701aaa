/*
 * col_otlp_traces.h - OTLP/HTTP trace receiver (POST /v1/traces): an ExportTraceServiceRequest
 * in protobuf (application/x-protobuf, the default) or OTLP JSON (application/json) becomes
 * st_span_t records (store/st_span.h) appended through the write queue. The HTTP layer has
 * already removed gzip and chunking.
 *
 * Mapping: service = the resource attribute service.name (string values only; otherwise the
 * store's "unknown_service"); every resource attribute is kept on each span of the resource;
 * the instrumentation scope gives scope_name / scope_version (scope attributes are not kept).
 * Attribute values map one to one (string, bool, int, double, bytes, arrays of them); a
 * kvlist_value has no counterpart in the span model and is stored as a string holding its JSON
 * rendering ({"k":v,...}, bytes as base64, nested kvlists as JSON strings; col_spanval.h).
 *
 * Strictness: ids must have their exact sizes (trace 16 bytes, span 8, parent 0 or 8; JSON:
 * 32 / 16 hex digits, parent "" or 16) and trace and span ids must not be all zero; strings
 * must be valid UTF-8; protobuf fields of a known number with the wrong wire type, truncated
 * input, times above 2^63-1 and span kinds or status codes the schema does not define are
 * malformed. Any of these rejects the whole request (400): OTLP clients do not retry 400, so a
 * partial write would never be completed anyway.
 *
 * Answers: 200 with an empty ExportTraceServiceResponse in the request's encoding (no body for
 * protobuf, `{}` for JSON); 400 text for malformed input or spans the store refuses (bad times,
 * too large); 413 text beyond COL_OTLP_TRACES_MAX_SPANS spans or the store's batch limits;
 * 415 for other content types; 503 text with Retry-After: 1 when the store is closed or failed.
 *
 * Threads: the handler runs on HTTP worker threads and blocks in col_writer_submit until the
 * spans are durable.
 */
#ifndef COL_OTLP_TRACES_H
#define COL_OTLP_TRACES_H

#include "col_http.h"
#include "col_writer.h"
#include "st_span.h"
#include "wf_arena.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Spans per request above which the request is refused with 413 (the store's default
 * max_batch_spans, so a request never splits into several store batches). */
#define COL_OTLP_TRACES_MAX_SPANS 200000

/* POST /v1/traces. writer is the collector's col_writer_t. */
void col_otlp_traces_handler(void *writer, col_req_t *req, col_resp_t *resp);

/* The handler's body with the request's Content-Type given (NULL: protobuf), for callers
 * without a libmicrohttpd connection (tests). */
void col_otlp_traces_serve(col_writer_t *wr, const char *content_type, col_req_t *req,
                           col_resp_t *resp);

/*
 * Decode a request body (json: OTLP JSON, else protobuf) into *spans / *n, allocated in arena;
 * protobuf strings are borrowed from body, JSON strings copied into arena. At most max_spans
 * spans. Returns 0; WF_E_INVAL with err set for malformed input; WF_E_LIMIT beyond max_spans
 * or the arena's limit. Exposed for tests and fuzzing.
 */
int col_otlp_traces_decode(const uint8_t *body, size_t len, bool json, size_t max_spans,
                           wf_arena_t *arena, st_span_t **spans, size_t *n, char *err,
                           size_t errlen);

#endif
