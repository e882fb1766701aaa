/*
 * wt_h2c.h - a small HTTP/2 client (cleartext, prior knowledge) over libnghttp2, for tests of
 * weft's gRPC server: one call at a time on a connection, with every header and body shape a
 * test needs to send (wrong methods and content types, encodings, credentials, bodies that do
 * not end), and the answer's HTTP status, gRPC status and message, and body.
 */
#ifndef WT_H2C_H
#define WT_H2C_H

#include "wf_buf.h"

#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int fd;
    nghttp2_session *s;
    bool conn_closed;
    /* the call in progress */
    int32_t id;
    bool done;
    int http_status;
    int grpc_status; /* -1: none */
    char grpc_message[512];
    char accept_encoding[64];
    wf_buf_t body;
    const uint8_t *req;
    size_t req_len, req_off;
    bool end_stream;
} wt_h2c_t;

typedef struct {
    const char *method;       /* default POST */
    const char *content_type; /* default application/grpc */
    const char *encoding;     /* grpc-encoding, NULL: none */
    const char *authorization;
    bool keep_open; /* do not end the request after the body */
} wt_h2c_opts_t;

/* Connect to 127.0.0.1:port and queue the client preface. 0, or -1 (nothing to free). */
int wt_h2c_open(wt_h2c_t *c, int port);
void wt_h2c_free(wt_h2c_t *c);
/*
 * One call of path with body (the whole HTTP/2 request body, gRPC prefix included); waits until
 * the stream is closed, the connection ends (c->conn_closed) or 10 s pass. The answer is in
 * c->http_status, grpc_status (-1: none), grpc_message, accept_encoding and body. 0 when the
 * call completed, else -1.
 */
int wt_h2c_call_raw(wt_h2c_t *c, const char *path, const uint8_t *body, size_t len,
                    const wt_h2c_opts_t *o);
/* The same with msg framed as one gRPC message with compressed flag flag. */
int wt_h2c_call(wt_h2c_t *c, const char *path, uint8_t flag, const void *msg, size_t len,
                const wt_h2c_opts_t *o);
/* The 5-byte gRPC prefix (flag, big-endian length) and msg, appended to out. */
void wt_grpc_frame(wf_buf_t *out, uint8_t flag, const void *msg, size_t len);

#endif
