/*
 * fuzz_col_grpc.c - the gRPC server's connection (col_grpc.c) fed arbitrary bytes after the
 * HTTP/2 client preface: nghttp2's frames, the streams' headers, gRPC framing and gzip, early
 * refusals. It must never read out of bounds, leak, or keep request bytes once the connection
 * is gone; a call that reaches the handler carries at most the message limit.
 */
#include "col_grpc.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MESSAGE 65536

static void check(int ok)
{
    if (!ok) {
        abort();
    }
}

static void out(void *ctx, const uint8_t *data, size_t len)
{
    (void)ctx;
    check(data != NULL && len > 0);
}

/* Answers by the message's first byte: OK echoing a little of it, or an error. */
static void handler(void *arg, const uint8_t *msg, size_t len, col_grpc_reply_t *reply)
{
    (void)arg;
    check(len <= MAX_MESSAGE);
    if (len > 0 && (msg[0] & 1)) {
        reply->code = COL_GRPC_INVALID_ARGUMENT;
        memcpy(reply->message, "odd\x01%\xff", 7);
        return;
    }
    wf_buf_append(&reply->body, msg, len < 64 ? len : 64);
}

static bool auth(void *arg, const char *peer, const char *authorization, char *why, size_t cap,
                 bool *later)
{
    (void)arg;
    *later = authorization != NULL && authorization[0] == 'y';
    (void)peer;
    (void)why;
    (void)cap;
    return authorization == NULL || (authorization[0] != 'x' && authorization[0] != 'y');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static col_grpc_t *g;
    if (g == NULL) {
        col_grpc_options_t o = {.max_message = MAX_MESSAGE,
                                .max_buffered = 4 * MAX_MESSAGE,
                                .max_streams = 8,
                                .auth = auth};
        check(col_grpc_new(&o, &g) == 0);
        check(col_grpc_route(g, "/t.S/M", handler, NULL) == 0);
    }
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    col_grpc_conn_t *c = col__grpc_conn_new(g, out, NULL);
    if (col__grpc_conn_feed(c, (const uint8_t *)preface, sizeof(preface) - 1) == 0) {
        /* In two pieces, so that frames also arrive split. */
        size_t half = size / 2;
        if (col__grpc_conn_feed(c, data, half) == 0) {
            col__grpc_conn_feed(c, data + half, size - half);
        }
    }
    col__grpc_conn_free(c);
    check(col__grpc_buffered(g) == 0);
    return 0;
}
