/*
 * col_http.h - the collector's HTTP server: libmicrohttpd underneath, a route table on top.
 *
 * Handlers see a whole request: method, path, parameters (query string and, for form POSTs,
 * the body), headers, and the body already collected within the route's size limit and
 * decoded from Content-Encoding gzip/deflate (chunked bodies without Content-Length too).
 * They fill a response; the server compresses it with gzip when the client accepts it and it
 * is worth it, and keeps the connection alive.
 *
 * Limits: a body above the route's max_body (or whose decoding would exceed it) is answered
 * 413 before the handler runs; malformed gzip is 400. Both with a text message.
 *
 * Memory budget: the bodies being received and held across all connections share one
 * budget, max_body_bytes. A request whose body would take it over is read and dropped and
 * answered 503 with Retry-After (the server sheds load; the client comes back later); a body
 * larger than the whole budget can never be taken and is 413. A Content-Length is reserved
 * when the headers arrive, a chunked body as its chunks do; once decoded (gzip), the body
 * counts at its decoded size; the reservation is released when the request's memory is.
 *
 * Threads: handlers run on libmicrohttpd's worker threads, many at once; one request's memory
 * (its arena, its body) is released after its response is sent.
 */
#ifndef COL_HTTP_H
#define COL_HTTP_H

#include "wf_arena.h"
#include "wf_buf.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *name;
    const char *value;
} col_param_t;

typedef struct col_req {
    const char *method;  /* "GET", "POST", "HEAD", ... */
    const char *path;    /* URL path, percent-decoded, without the query string */
    const uint8_t *body; /* decoded body (NUL-terminated for convenience), len body_len */
    size_t body_len;
    wf_arena_t *arena;   /* per-request memory, freed after the response */
    col_param_t *params; /* query string, then form body parameters, in order */
    size_t nparams;
    void *conn_; /* private: struct MHD_Connection */
} col_req_t;

/* First value of parameter name, or NULL. */
const char *col_req_param(const col_req_t *r, const char *name);
/* Every value of name (e.g. match[]) into out[0..max); returns how many exist (may be > max). */
size_t col_req_param_all(const col_req_t *r, const char *name, const char **out, size_t max);
/* Request header (case-insensitive name), or NULL. */
const char *col_req_header(const col_req_t *r, const char *name);

#define COL_RESP_MAX_HEADERS 8

typedef struct {
    unsigned status;          /* default 200 */
    const char *content_type; /* static string; default "application/json" */
    wf_buf_t body;
    char *headers[COL_RESP_MAX_HEADERS][2]; /* owned copies */
    size_t nheaders;
    bool no_compress; /* body is already compressed (e.g. a snappy payload) */
    /* seconds for Retry-After, set by the server from its options before the handler runs;
     * 0 (a response made by hand, in tests) means COL_RETRY_AFTER_DEFAULT_S */
    unsigned retry_after_s;
} col_resp_t;

#define COL_RETRY_AFTER_DEFAULT_S 1

/* Free what a response holds (its body and header copies); resp can be reused after. */
void col_resp_free(col_resp_t *resp);
/* Add a response header (both strings copied). */
void col_resp_header(col_resp_t *resp, const char *name, const char *value);
/* A text/plain body with status (ingest endpoints answer errors like this, as Prometheus). */
void col_resp_text(col_resp_t *resp, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/*
 * Tell the client to come back later: status (503 when the server sheds load or is shutting
 * down; 429 for a client over its quota), a Retry-After header of resp->retry_after_s seconds
 * (COL_RETRY_AFTER_DEFAULT_S when 0) and a text/plain message. OTLP and Prometheus's
 * remote_write clients retry 503 and honour Retry-After.
 */
void col_resp_retry_later(col_resp_t *resp, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Only the Retry-After header (as col_resp_retry_later), for a handler that answers in its own
 * body format. */
void col_resp_retry_after(col_resp_t *resp);
/* Prometheus's JSON error envelope:
 * {"status":"error","errorType":"<type>","error":"<message>"} with status. */
void col_resp_api_error(col_resp_t *resp, unsigned status, const char *error_type, const char *fmt,
                        ...) __attribute__((format(printf, 4, 5)));

typedef void (*col_handler_cb)(void *arg, col_req_t *req, col_resp_t *resp);

typedef struct col_http col_http_t;

#define COL_HTTP_DEFAULT_BODY_BYTES ((size_t)512 << 20)

typedef struct {
    unsigned threads;        /* worker threads, default 4 */
    unsigned conn_limit;     /* default 1024 */
    unsigned conn_timeout_s; /* idle keep-alive timeout, default 60 */
    size_t max_body_bytes;   /* request bodies held at once, all connections; default above */
    unsigned retry_after_s;  /* Retry-After of 503 answers; default COL_RETRY_AFTER_DEFAULT_S */
} col_http_options_t;

int col_http_new(const col_http_options_t *o, col_http_t **out);

/*
 * Route requests for path (exact, or every path starting with it when prefix) with one of
 * methods (a space-separated list like "GET POST"; HEAD is served as GET without a body) to
 * cb. max_body is the largest body accepted, after decoding (0: no body allowed). Routes are
 * added before col_http_listen; the longest matching route wins.
 */
int col_http_route(col_http_t *h, const char *methods, const char *path, bool prefix,
                   size_t max_body, col_handler_cb cb, void *arg);

/*
 * The authentication hook: when set, cb runs once a request's headers are in and its route and
 * method are known, before its body is read or its handler runs. route_path is the matched
 * route's registered path; req carries method, path and headers (no parameters, no body, no
 * arena). cb returns true to let the request through, or false after filling resp with the
 * answer (401, 403, 429, ...). Set before col_http_listen; cb runs on many threads at once.
 */
typedef bool (*col_auth_hook_cb)(void *arg, const char *route_path, col_req_t *req,
                                 col_resp_t *resp);
void col_http_set_auth(col_http_t *h, col_auth_hook_cb cb, void *arg);
/* The client's address as text ("127.0.0.1", "::1") into buf; "" when unknown. */
void col_req_client_addr(const col_req_t *r, char *buf, size_t len);

/* Start serving on "ipv4:port" (may be called more than once for several ports). errno-style
 * negative code on failure. */
int col_http_listen(col_http_t *h, const char *addr);

/* Append the server's own metrics in the Prometheus text format:
 * weft_http_requests_total{handler="<route path>",code="2xx"} per route and status class. */
void col_http_write_metrics(col_http_t *h, wf_buf_t *out);

typedef struct {
    uint64_t shed_memory; /* requests answered 503: their body would exceed max_body_bytes */
    uint64_t body_bytes;  /* request body bytes reserved now */
} col_http_stats_t;

/* The server's load-shedding figures (any thread). */
void col_http_stats(col_http_t *h, col_http_stats_t *out);

/* Stop accepting, finish in-flight requests, free everything. NULL is a no-op. */
void col_http_free(col_http_t *h);

/* Parse "ipv4:port" ("localhost" allowed) into addr. 0 or WF_E_INVAL. */
int col_http_parse_addr(const char *s, struct sockaddr_in *addr);
/* Inflate in (gzip or zlib/deflate, by zlib's windowBits) into out, at most limit bytes. 0;
 * WF_E_LIMIT beyond limit; WF_E_INVAL for a corrupt or truncated stream. */
int col_http_inflate(const uint8_t *in, size_t len, int window_bits, size_t limit, wf_buf_t *out);

/* JSON string escaping (RFC 8259, \u00XX for control characters; invalid UTF-8 bytes become
 * U+FFFD) appended to out, with the quotes. */
void col_json_str(wf_buf_t *out, const char *s, size_t len);
/* A float as Prometheus writes sample values: strconv.FormatFloat(v, 'f', -1, 64), and
 * "NaN", "+Inf", "-Inf" (without quotes; callers add them). */
void col_fmt_float(wf_buf_t *out, double v);

#endif
