/*
 * col_zipkin.h - Zipkin API v2 in the collector: span ingest (POST /api/v2/spans, a JSON array
 * of Zipkin v2 spans) and the query API the Zipkin UI and tools read (services, span names,
 * remote services, trace search, one trace, dependency links).
 *
 * Mapping to the span model (st_span.h), as the OpenTelemetry Zipkin exporter and receiver do:
 * localEndpoint.serviceName is the service; localEndpoint ipv4/ipv6/port become the resource
 * attributes net.host.ip, net.host.ipv6, net.host.port; remoteEndpoint becomes the span
 * attributes peer.service, net.peer.ip, net.peer.ipv6, net.peer.port; annotations are events
 * (the value is the event name); tags are string attributes; debug and shared are kept as the
 * boolean attributes zipkin.debug and zipkin.shared so they read back. A 64-bit trace id is
 * stored as 16 bytes whose first 8 are zero and read back as 16 hex digits. Reading maps back
 * the same way; attributes of spans that came in through OTLP are printed as text tags.
 *
 * Threads: handlers run on HTTP worker threads; ingest waits on the write queue until durable.
 */
#ifndef COL_ZIPKIN_H
#define COL_ZIPKIN_H

#include "col_http.h"
#include "col_writer.h"
#include "st_span.h"

/* Largest POST /api/v2/spans body (after decoding). */
#define COL_ZIPKIN_MAX_BODY (16u << 20)

/*
 * POST /api/v2/spans (arg: col_writer_t *). 202 with an empty body once every span is durable;
 * 400 (text) for malformed JSON, bad or zero ids, missing traceId/id/timestamp, bad values and
 * spans the store refuses; 413 when a span or the batch exceeds the store's limits; 503 when
 * the store cannot write.
 */
void col_zipkin_spans_handler(void *writer, col_req_t *req, col_resp_t *resp);

/* The query handlers (arg: st_store_t *), answering Zipkin API v2 JSON, names as stored (the
 * registered routes follow col_zipkin_options_t.lowercase_names). Zipkin lowercases the names
 * in queries: serviceName and spanName match a stored name that differs only in ASCII case
 * when there is exactly one such name. */
void col_zipkin_services_handler(void *store, col_req_t *req, col_resp_t *resp);
void col_zipkin_span_names_handler(void *store, col_req_t *req, col_resp_t *resp);
void col_zipkin_remote_services_handler(void *store, col_req_t *req, col_resp_t *resp);
void col_zipkin_traces_handler(void *store, col_req_t *req, col_resp_t *resp);
/* GET /api/v2/trace/{id}: 400 for a malformed id, 404 when no span has it. */
void col_zipkin_trace_handler(void *store, col_req_t *req, col_resp_t *resp);
/* GET /api/v2/traceMany?traceIds=a,b: the traces of the list that exist (in its order, each
 * once); 400 for a malformed id, fewer than two unique ids, or more than 1000. */
void col_zipkin_trace_many_handler(void *store, col_req_t *req, col_resp_t *resp);
void col_zipkin_dependencies_handler(void *store, col_req_t *req, col_resp_t *resp);

/*
 * Decode a POST /api/v2/spans body into spans allocated in arena (strings copied there too).
 * 0, WF_E_INVAL (malformed; err says which span and why) or WF_E_LIMIT (arena limit).
 */
int col_zipkin_decode(const uint8_t *body, size_t len, wf_arena_t *arena, st_span_t **out,
                      size_t *n_out, char *err, size_t errlen);

/* Append one span as Zipkin v2 JSON (the form the query endpoints answer). */
void col_zipkin_span_json(wf_buf_t *out, const st_span_t *sp);

typedef struct col_zipkin col_zipkin_t;

/* Traces read (newest first) to collect one key's values for autocompleteValues: the store
 * has no index of tag values, so older values may be missing. */
#define COL_ZIPKIN_AUTOCOMPLETE_SCAN 1000

typedef struct {
    /* Tag keys the UI may autocomplete, comma-separated (Zipkin's AUTOCOMPLETE_KEYS, e.g.
     * "environment,http.method"); NULL or "" for none. Copied by the register call. */
    const char *autocomplete_keys;
    /* Show span and service names lowercased, as Zipkin's own server does (it lowercases them
     * when it reads spans); false shows them as stored. Queries match either way. */
    bool lowercase_names;
} col_zipkin_options_t;

/*
 * GET /api/v2/autocompleteKeys (arg: col_zipkin_t *): the configured keys, sorted, [] when
 * none. GET /api/v2/autocompleteValues?key= (arg: col_zipkin_t *): the distinct values (as
 * tag text) the key has on spans in the store, sorted; [] for a key not configured; 400 when
 * key is missing.
 */
void col_zipkin_autocomplete_keys_handler(void *z, col_req_t *req, col_resp_t *resp);
void col_zipkin_autocomplete_values_handler(void *z, col_req_t *req, col_resp_t *resp);

/*
 * Add every Zipkin route to h (before col_http_listen): /api/v2/spans (POST ingest with a
 * COL_ZIPKIN_MAX_BODY limit, GET span names: one path, so one route with both methods),
 * /api/v2/services, /api/v2/remoteServices, /api/v2/traces, /api/v2/trace/{id},
 * /api/v2/dependencies, /api/v2/autocompleteKeys, /api/v2/autocompleteValues. Returns the
 * routes' shared context, which the caller frees with col_zipkin_free after col_http_free
 * (writer and store are borrowed). o may be NULL (no autocomplete keys).
 */
col_zipkin_t *col_zipkin_register_opts(col_http_t *h, col_writer_t *writer, st_store_t *store,
                                       const col_zipkin_options_t *o);

/* col_zipkin_register_opts without options. */
col_zipkin_t *col_zipkin_register(col_http_t *h, col_writer_t *writer, st_store_t *store);

/* NULL is a no-op. */
void col_zipkin_free(col_zipkin_t *z);

#endif
