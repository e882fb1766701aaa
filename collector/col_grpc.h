/*
 * col_grpc.h - a server for unary gRPC calls over cleartext HTTP/2 (h2c with prior knowledge:
 * how gRPC clients reach an "insecure" endpoint), for OTLP/gRPC (col_otlp_grpc.c). libnghttp2
 * does the framing, HPACK and flow control; one thread runs a libuv loop with the listeners and
 * the connections; handlers run on libuv's thread pool, so a handler that waits (an ingest waits
 * until the write queue has made its data durable) never holds up another connection.
 *
 * A call is one request message (a 5-byte prefix: compressed flag, big-endian length; then the
 * message, gzip-compressed when the flag is set and grpc-encoding is gzip) answered by one
 * response message and the trailers grpc-status 0, or by a trailers-only answer with an error
 * status and grpc-message (percent-encoded, as the gRPC spec says).
 *
 * What is refused, and how (the gRPC status codes, as grpc-go answers the same cases):
 *   - a method no route has: UNIMPLEMENTED;
 *   - a method other than POST: HTTP 405; a content-type not application/grpc[+proto]: HTTP 415
 *     (no gRPC status: not a gRPC call);
 *   - grpc-encoding other than identity or gzip: UNIMPLEMENTED, with grpc-accept-encoding;
 *   - a request message above max_message bytes, before or after gzip: RESOURCE_EXHAUSTED,
 *     answered as soon as the prefix or the data says so (the stream is then reset: nothing
 *     more is read into memory);
 *   - no message, more than one, a length that does not match the data, a compressed flag
 *     without gzip, corrupt gzip: INTERNAL (grpc-go: "protocol violation");
 *   - more request bytes held at once than max_buffered across all connections: UNAVAILABLE
 *     (clients retry it);
 *   - credentials the auth callback refuses: UNAUTHENTICATED (none at all: refused from the
 *     headers; others checked on the thread pool, before the handler); a locked-out client:
 *     UNAVAILABLE;
 *   - a request not complete within stream_timeout_ms: DEADLINE_EXCEEDED, and the stream reset
 *     (as is, RST_STREAM CANCEL, an answer the client's flow-control window still holds back);
 *   - a call while max_streams calls of the connection (or 1024 in all) are queued or running:
 *     UNAVAILABLE (a reset stream's call is cancelled if it has not started);
 *   - headers above 16 KiB: the stream is reset; a protocol error: GOAWAY, and the connection
 *     closes; more than max_conns connections: the new one is closed at once.
 * A connection with no open stream for idle_ms gets a GOAWAY and is closed; one whose last
 * output is not taken within 5 s of closing (a peer that does not read) is closed regardless.
 *
 * Threads: new/route/listen/start/stop/free from the owner (one thread); write_metrics from any
 * thread. The col__grpc_conn_* functions run a connection without a socket or a loop thread
 * (handlers run inline): for tests and fuzzing only.
 */
#ifndef COL_GRPC_H
#define COL_GRPC_H

#include "wf_buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The gRPC status codes this server answers with (grpc/doc/statuscodes.md). */
typedef enum {
    COL_GRPC_OK = 0,
    COL_GRPC_CANCELLED = 1,
    COL_GRPC_INVALID_ARGUMENT = 3,
    COL_GRPC_DEADLINE_EXCEEDED = 4,
    COL_GRPC_RESOURCE_EXHAUSTED = 8,
    COL_GRPC_UNIMPLEMENTED = 12,
    COL_GRPC_INTERNAL = 13,
    COL_GRPC_UNAVAILABLE = 14,
    COL_GRPC_UNAUTHENTICATED = 16,
} col_grpc_code_t;

#define COL_GRPC_NCODES 17

typedef struct {
    col_grpc_code_t code;
    char message[256]; /* grpc-message when code is not OK */
    wf_buf_t body;     /* the response message when OK (protobuf; may be empty) */
} col_grpc_reply_t;

/* A handler: msg[0..len) is the request message (inflated). reply comes zeroed (code OK). */
typedef void (*col_grpc_handler_cb)(void *arg, const uint8_t *msg, size_t len,
                                    col_grpc_reply_t *reply);

/* Whether a call may proceed: peer is the client's address, authorization the value of its
 * authorization metadata (NULL when absent; such a call is asked about before its body is
 * read, so that answer must be cheap). false: UNAUTHENTICATED with why, or UNAVAILABLE (which
 * clients retry) when *retry_later is set (a client locked out for a while). */
typedef bool (*col_grpc_auth_cb)(void *arg, const char *peer, const char *authorization, char *why,
                                 size_t whycap, bool *retry_later);

#define COL_GRPC_DEFAULT_MAX_MESSAGE ((size_t)32 << 20)
#define COL_GRPC_DEFAULT_MAX_BUFFERED ((size_t)512 << 20)
#define COL_GRPC_MAX_HEADER_BYTES 16384

typedef struct {
    size_t max_message;        /* bytes of one request message, before and after gzip; 0: default */
    size_t max_buffered;       /* request bytes held at once, all connections; 0: default */
    unsigned max_conns;        /* connections at once; 0: 1024 */
    unsigned max_streams;      /* concurrent streams a client may open per connection; 0: 100 */
    int64_t idle_ms;           /* a connection without streams this long is closed; 0: 5 minutes */
    int64_t stream_timeout_ms; /* a request not complete this long: DEADLINE_EXCEEDED; 0: 60 s */
    col_grpc_auth_cb auth;     /* NULL: every call may proceed */
    void *auth_arg;
} col_grpc_options_t;

typedef struct col_grpc col_grpc_t;

/* A server with no routes and no listener yet. 0 or WF_E_INTERNAL (libuv could not start). */
int col_grpc_new(const col_grpc_options_t *o, col_grpc_t **out);
/* Serve path ("/package.Service/Method") with cb. Before col_grpc_start. 0 or WF_E_LIMIT. */
int col_grpc_route(col_grpc_t *g, const char *path, col_grpc_handler_cb cb, void *arg);
/* Listen on "ipv4:port". Before col_grpc_start. 0, WF_E_INVAL (a bad address) or -errno. */
int col_grpc_listen(col_grpc_t *g, const char *addr);
/* Start the loop thread. 0 or -errno. */
int col_grpc_start(col_grpc_t *g);
/* Stop accepting, send every connection a GOAWAY, let the calls in flight finish (their
 * handlers may wait for the caller's own thread: see col_main's stop_while_draining) and close
 * everything; then the thread ends. Idempotent. */
void col_grpc_stop(col_grpc_t *g);
/* Stop (if running) and free. */
void col_grpc_free(col_grpc_t *g);
/* weft_grpc_requests_total{code,method} and weft_grpc_connections, in the text format. */
void col_grpc_write_metrics(col_grpc_t *g, wf_buf_t *out);

/* Tests and fuzzing: a connection fed by hand; what it sends goes to out(ctx, data, len). */
typedef struct col_grpc_conn col_grpc_conn_t;
col_grpc_conn_t *col__grpc_conn_new(col_grpc_t *g,
                                    void (*out)(void *ctx, const uint8_t *data, size_t len),
                                    void *ctx);
/* Feed bytes received; 0, or -1 when the connection is over (a protocol error, a GOAWAY). */
int col__grpc_conn_feed(col_grpc_conn_t *c, const uint8_t *data, size_t len);
void col__grpc_conn_free(col_grpc_conn_t *c);
/* Request bytes g holds now (0 once every connection is gone). */
size_t col__grpc_buffered(const col_grpc_t *g);

#endif
