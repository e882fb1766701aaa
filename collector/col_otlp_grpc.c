/*
 * col_otlp_grpc.c - OTLP/gRPC's Export methods over the OTLP/HTTP protobuf handlers
 * (col_otlp_grpc.h).
 */
#include "col_otlp_grpc.h"

#include "col_http.h"
#include "col_otlp_metrics.h"
#include "col_otlp_traces.h"

#include "wf_pb.h"

#include <stdio.h>
#include <string.h>

typedef void (*serve_fn)(col_writer_t *wr, const char *content_type, col_req_t *req,
                         col_resp_t *resp);

/* The message of an OTLP/HTTP error answer: a google.rpc.Status's message (field 2) when the
 * answer is protobuf, else its one line of text. */
static void error_message(const col_resp_t *resp, char *out, size_t cap)
{
    const uint8_t *p = resp->body.data != NULL ? resp->body.data : (const uint8_t *)"";
    size_t n = resp->body.len;
    if (resp->content_type != NULL && strcmp(resp->content_type, "application/x-protobuf") == 0) {
        wf_pb_rd_t r;
        wf_pb_field_t f;
        wf_pb_init(&r, p, n);
        n = 0;
        while (wf_pb_next(&r, &f) == 1) {
            if (f.num == 2 && f.wire == WF_PB_LEN) {
                p = f.p;
                n = f.len;
            }
        }
    }
    while (n > 0 && p[n - 1] == '\n') {
        n--;
    }
    snprintf(out, cap, "%.*s", (int)n, (const char *)p);
}

/* Run an OTLP/HTTP handler on the message and turn its answer into a gRPC one. */
static void export(serve_fn serve, col_writer_t *wr, const uint8_t *msg, size_t len,
                   col_grpc_reply_t *reply)
{
    col_req_t req = {.method = "POST", .body = msg, .body_len = len};
    col_resp_t resp = {.status = 200};
    serve(wr, "application/x-protobuf", &req, &resp);
    if (resp.status == 200) {
        reply->code = COL_GRPC_OK;
        wf_buf_append(&reply->body, resp.body.data, resp.body.len);
    } else {
        reply->code = resp.status == 400                         ? COL_GRPC_INVALID_ARGUMENT
                      : resp.status == 413                       ? COL_GRPC_RESOURCE_EXHAUSTED
                      : resp.status == 503 || resp.status == 429 ? COL_GRPC_UNAVAILABLE
                                                                 : COL_GRPC_INTERNAL;
        error_message(&resp, reply->message, sizeof(reply->message));
    }
    col_resp_free(&resp);
}

static void traces(void *arg, const uint8_t *msg, size_t len, col_grpc_reply_t *reply)
{
    export(col_otlp_traces_serve, arg, msg, len, reply);
}

static void metrics(void *arg, const uint8_t *msg, size_t len, col_grpc_reply_t *reply)
{
    export(col_otlp_metrics_serve, arg, msg, len, reply);
}

int col_otlp_grpc_register(col_grpc_t *g, col_writer_t *wr)
{
    int rc = col_grpc_route(g, COL_OTLP_GRPC_TRACES, traces, wr);
    return rc != 0 ? rc : col_grpc_route(g, COL_OTLP_GRPC_METRICS, metrics, wr);
}
