/*
 * px_trace.h - trace context propagation and span records for the proxy (issue #5, design.md
 * §3 "Spans"): W3C Trace Context and B3 header parsing and formatting, the sampling decision,
 * x-request-id generation, the span record a worker fills per hop side, and a bounded
 * single-producer / single-consumer queue that carries finished spans to the exporter thread.
 * The OTLP encoding of a batch is in px_otlp.h.
 *
 * Formats (parsers are strict where the specifications are, lenient where they say so):
 * - `traceparent` (W3C Trace Context Level 1): version 00 is exactly 55 characters, lowercase
 *   hex, non-zero trace and parent ids; version ff is invalid; a higher version is parsed by the
 *   version 00 layout and may carry more fields after a `-` (forward compatibility, §3.2.4).
 * - `tracestate`: up to 32 comma-separated `key=value` members with the spec's key and value
 *   grammars and no duplicate keys; empty members are skipped. Passed through normalised; when
 *   longer than PX_TRACESTATE_MAX, members over 128 characters go first, then members from the
 *   end (§3.3.1.5). An invalid header is dropped, never repaired.
 * - B3 multi (`X-B3-TraceId` 16 or 32 hex, `X-B3-SpanId`, `X-B3-ParentSpanId`, `X-B3-Sampled`
 *   `1|0|true|false`, `X-B3-Flags: 1` = debug) and single `b3`
 *   (`{trace}-{span}[-{1|0|d}[-{parent}]]`, or a bare `1`, `0`, `d`). B3 hex accepts either
 *   case, as Envoy and Zipkin's libraries do.
 * Extraction precedence: a valid traceparent, else a valid b3, else valid X-B3-* ids. A header
 *   that carries only a sampling decision (`b3: 0`, `X-B3-Sampled: 1` alone) starts a new trace
 *   with that decision.
 *
 * Threads: everything here is pure or per-worker except px_span_queue_t, which is safe for one
 * producer thread and one consumer thread at the same time.
 */
#ifndef PX_TRACE_H
#define PX_TRACE_H

#include "px_http1.h"
#include "wf_str.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest tracestate passed on (the spec's minimum that vendors must propagate). */
#define PX_TRACESTATE_MAX 512
/* `00-` + 32 + `-` + 16 + `-` + 2. */
#define PX_TRACEPARENT_LEN 55
/* Envoy truncates the http.url tag to 256 characters; so do we. */
#define PX_SPAN_URL_MAX 256
/* Longest value kept for the other span strings (authority, user agent, flags...). */
#define PX_SPAN_STR_MAX 1024

/* A per-thread pseudo-random generator (xoshiro256**). Not for keys: ids and sampling only. */
typedef struct {
    uint64_t s[4];
} px_rng_t;

/* Seed from getrandom(2). Returns 0 or -errno (the generator is then seeded from the clock and
 * the address of r, still usable). */
int px_rng_init(px_rng_t *r);
/* Deterministic seed, for tests. */
void px_rng_seed(px_rng_t *r, uint64_t seed);
uint64_t px_rng_next(px_rng_t *r);

/* Write a random UUID version 4 in its 36-character text form plus NUL into out. */
void px_request_id(px_rng_t *r, char out[37]);

typedef struct {
    uint8_t version;
    uint8_t trace_id[16];
    uint8_t parent_id[8];
    uint8_t flags; /* bit 0: sampled */
} px_traceparent_t;

/* Parse a traceparent value. Returns 0 or WF_E_INVAL. */
int px_traceparent_parse(const char *p, size_t len, px_traceparent_t *out);
/* Write the version 00 form (55 characters plus NUL) of trace id, span id and sampled flag. */
void px_traceparent_format(const uint8_t trace_id[16], const uint8_t span_id[8], bool sampled,
                           char out[PX_TRACEPARENT_LEN + 1]);

/*
 * Validate and normalise a tracestate value (members joined by "," without blanks, truncated
 * as described above) into out (PX_TRACESTATE_MAX + 1 bytes, NUL-terminated); *out_len gets
 * its length. Returns 0, or WF_E_INVAL (out is then empty) for an invalid header.
 */
int px_tracestate_normalize(const char *p, size_t len, char out[PX_TRACESTATE_MAX + 1],
                            size_t *out_len);

typedef enum {
    PX_SAMPLE_DEFER = 0, /* no decision received: the proxy decides */
    PX_SAMPLE_DROP,
    PX_SAMPLE_ACCEPT,
    PX_SAMPLE_DEBUG, /* B3 debug: sampled, and downstream should not drop it */
} px_sampling_t;

typedef enum {
    PX_TRACE_SRC_NONE = 0,
    PX_TRACE_SRC_TRACEPARENT,
    PX_TRACE_SRC_B3_SINGLE,
    PX_TRACE_SRC_B3_MULTI,
} px_trace_src_t;

/* What a request brought. */
typedef struct {
    px_trace_src_t source;
    bool has_ids;     /* trace_id and parent_id are set */
    bool trace_id_64; /* B3 64-bit trace id: the first 8 bytes of trace_id are zero */
    uint8_t trace_id[16];
    uint8_t parent_id[8]; /* the caller's span id: our span's parent */
    px_sampling_t sampling;
    char tracestate[PX_TRACESTATE_MAX + 1]; /* normalised; only with a valid traceparent */
    size_t tracestate_len;
    /* The request had a `b3` field, whichever field gave the context: the caller (or a proxy
     * before us, which answers in kind) speaks B3 single, so the next hop gets it too. */
    bool b3_field;
} px_trace_in_t;

/* Parse a single `b3` value into in (source, ids, sampling). Returns 0 or WF_E_INVAL. */
int px_b3_single_parse(const char *p, size_t len, px_trace_in_t *in);

/*
 * Extract the trace context from a request's fields (names compared case-insensitively; the
 * first occurrence of each counts, except tracestate whose lines are joined with ","). Never
 * fails: with nothing valid, in->source is PX_TRACE_SRC_NONE and in->sampling may still carry a
 * decision from a bare B3 sampling header.
 */
void px_trace_extract(const px_http1_header_t *h, size_t n, px_trace_in_t *in);

/* True for the fields px_trace_inject writes (and b3 / X-B3-Flags): the data path removes them
 * from a forwarded request before adding the new ones. */
bool px_trace_is_header(wf_str_t name);

/* The context of this proxy's span, which the outgoing request carries. */
typedef struct {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t parent_id[8]; /* zero: root */
    bool trace_id_64;
    bool sampled;
    bool debug;
    bool b3_single; /* the request came with `b3` (px_trace_in_t.b3_field): answer in kind */
    char tracestate[PX_TRACESTATE_MAX + 1];
    size_t tracestate_len;
} px_trace_ctx_t;

/*
 * Start this hop's span: keep the received trace id (or draw a new one), draw a span id, take
 * the received span id as parent, and decide sampling: an upstream decision is honoured, else
 * the span is sampled with probability sampling_pct / 100 (0..100; out of range is clamped).
 */
void px_trace_start(const px_trace_in_t *in, double sampling_pct, px_rng_t *rng,
                    px_trace_ctx_t *ctx);

/* Fields to add to the outgoing request. Names and values point into storage. */
#define PX_TRACE_MAX_OUT 7
typedef struct {
    px_http1_header_t h[PX_TRACE_MAX_OUT];
    size_t n;
    char storage[PX_TRACESTATE_MAX + 256];
} px_trace_out_t;

/* Fill out with traceparent (+ tracestate), X-B3-TraceId, X-B3-SpanId, X-B3-ParentSpanId
 * (when not a root), X-B3-Sampled or X-B3-Flags: 1 (debug), and `b3` when the request came
 * with it. */
void px_trace_inject(const px_trace_ctx_t *ctx, px_trace_out_t *out);

/* Span kinds, numbered as OTLP numbers them. */
typedef enum {
    PX_SPAN_SERVER = 2, /* destination side: inbound */
    PX_SPAN_CLIENT = 3, /* source side: outbound */
} px_span_kind_t;

/* The request facts a worker hands to px_span_new; strings are borrowed for the call. */
typedef struct {
    const px_trace_ctx_t *ctx;
    px_span_kind_t kind;
    wf_str_t name; /* px_span_name's form */
    int64_t start_ns, end_ns;
    wf_str_t method;
    wf_str_t url;      /* scheme://authority/path?query; truncated to PX_SPAN_URL_MAX */
    wf_str_t protocol; /* "HTTP/1.1" */
    uint32_t status;   /* HTTP status; 0: no response */
    wf_str_t upstream_cluster;
    wf_str_t response_flags; /* "-" or Envoy's codes */
    wf_str_t request_id;
    wf_str_t peer_address; /* the other side's IP */
    wf_str_t user_agent;
    wf_str_t downstream_cluster; /* x-envoy-downstream-service-cluster, "" if absent */
    uint64_t request_size, response_size;
} px_span_in_t;

/* A finished span: one allocation, strings inside it. Owned by whoever holds the pointer. */
typedef struct px_span {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t parent_id[8];
    uint8_t flags; /* W3C flags: 1 = sampled */
    px_span_kind_t kind;
    int64_t start_ns, end_ns;
    uint32_t status;
    bool error; /* 5xx or no response */
    uint64_t request_size, response_size;
    wf_str_t name, method, url, protocol, upstream_cluster, response_flags, request_id,
        peer_address, user_agent, downstream_cluster, tracestate;
} px_span_t;

/* Copy in into a new span record (strings truncated to their maxima). Never NULL. */
px_span_t *px_span_new(const px_span_in_t *in);
void px_span_free(px_span_t *s);

/*
 * Istio's span name: `<host>:<port>` followed by the route's path match, or by a slash and a
 * star when the route matches any path (route_path ""), e.g. for host
 * reviews.default.svc.cluster.local and port 9080 the name ends in `:9080/` and `*`. Written
 * NUL-terminated into out (truncated to cap - 1); returns the untruncated length.
 */
size_t px_span_name(char *out, size_t cap, wf_str_t host, uint32_t port, wf_str_t route_path);

/* A bounded ring of finished spans from one worker (producer) to the exporter (consumer). */
typedef struct px_span_queue px_span_queue_t;

/* capacity is rounded up to a power of two (at least 2). Never NULL. */
px_span_queue_t *px_span_queue_new(size_t capacity);
/* Free the queue and every span still in it. NULL is a no-op. */
void px_span_queue_free(px_span_queue_t *q);
/* Producer: enqueue s (ownership passes to the queue), or free it and count a drop when full.
 * Returns true when queued. Never blocks. */
bool px_span_queue_push(px_span_queue_t *q, px_span_t *s);
/* Consumer: move up to max spans into out (the caller owns them). Returns how many. */
size_t px_span_queue_pop(px_span_queue_t *q, px_span_t **out, size_t max);
/* Spans dropped because the queue was full (any thread). */
uint64_t px_span_queue_dropped(const px_span_queue_t *q);

#endif
