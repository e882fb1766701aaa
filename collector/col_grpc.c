/*
 * col_grpc.c - unary gRPC over cleartext HTTP/2 with libnghttp2 on a libuv loop (col_grpc.h).
 *
 * Ownership: a connection (conn_t) holds its open streams; a stream whose handler runs on the
 * thread pool ("working") is also referenced by that work, so it is freed by whichever of the
 * two ends last (the stream's close or the work's completion), and it holds a reference on its
 * connection for as long. Everything but the handler itself runs on the loop thread.
 */
#include "col_grpc.h"

#include "col_http.h"
#include "wf_alloc.h"
#include "wf_err.h"
#include "wf_log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define MAX_ROUTES 8
#define MAX_LISTENERS 4
#define READ_PAUSE_BYTES ((size_t)4 << 20) /* reading stops while this much output waits */
#define STREAM_WINDOW ((int32_t)1 << 20)   /* per stream: a large message in few round trips */
#define CONN_WINDOW ((int32_t)16 << 20)
#define STOP_GRACE_MS 5000  /* at stop, how long open calls may take to finish */
#define CLOSE_GRACE_MS 5000 /* how long a closing connection may take to flush its output */
#define MAX_WORKING 1024    /* calls queued or running at once, all connections */

typedef struct {
    char path[128];
    col_grpc_handler_cb cb;
    void *arg;
    _Atomic unsigned long by_code[COL_GRPC_NCODES];
} route_t;

typedef struct col_grpc_conn conn_t;

typedef struct stream {
    conn_t *conn;
    struct stream *prev, *next; /* the connection's open streams */
    int32_t id;
    char path[128];
    bool path_too_long;
    bool post;
    bool grpc_type;
    char encoding[16]; /* "" = identity */
    char *authorization;
    size_t header_bytes;
    wf_buf_t body;           /* request bytes as received; counted in g->buffered */
    bool answered;           /* a reply was submitted (or is being made) */
    bool reset_after_answer; /* the client still sends: RST_STREAM once the answer is out */
    uint64_t started_ms;     /* when its headers began (loop time; 0 on a fed connection) */
    bool working;            /* the handler runs on the thread pool */
    bool closed;             /* the stream (or its connection) ended while working */
    route_t *route;
    col_grpc_reply_t reply;
    size_t sent; /* bytes of prefix + reply body given to nghttp2 */
    uint8_t prefix[5];
    uv_work_t work;
} stream_t;

struct col_grpc_conn {
    col_grpc_t *g;
    conn_t *prev, *next;
    nghttp2_session *sess;
    uv_tcp_t tcp;
    bool has_tcp;
    void (*out)(void *ctx, const uint8_t *data, size_t len); /* a fed connection's output */
    void *out_ctx;
    char peer[64];
    stream_t *streams;
    unsigned nworking;
    int refs; /* the connection itself, plus one per working stream */
    bool closing;
    bool in_recv; /* inside nghttp2_session_mem_recv: no sending from callbacks */
    bool reading;
    size_t write_pending;
    uint64_t last_active_ms;
    uint64_t closing_since_ms; /* on g->closing: when its shutdown began */
};

struct col_grpc {
    col_grpc_options_t opt;
    route_t routes[MAX_ROUTES];
    size_t nroutes;
    _Atomic unsigned long other_by_code[COL_GRPC_NCODES]; /* calls that matched no route */
    nghttp2_session_callbacks *cbs;
    uv_loop_t loop;
    uv_tcp_t listeners[MAX_LISTENERS];
    size_t nlisteners;
    uv_async_t stop_async;
    uv_timer_t timer;
    uv_thread_t thread;
    bool started;
    bool joined;
    bool stopping;       /* loop thread */
    bool handles_closed; /* loop thread */
    uint64_t stop_deadline_ms;
    conn_t *conns;
    conn_t *closing;         /* connections flushing their last output before they close */
    _Atomic unsigned nconns; /* every connection until its handle is closed */
    size_t buffered;         /* loop thread */
    unsigned nworking;       /* calls queued or running on the thread pool (loop thread) */
    /* Every read lands here: nghttp2 takes what it keeps before on_read returns, so one buffer
     * serves all connections (an idle connection costs no read buffer). */
    char rbuf[65536];
};

typedef struct {
    uv_write_t req;
    conn_t *c;
    uint8_t *data;
    size_t len;
} write_t;

static void conn_close(conn_t *c);
static void flush(conn_t *c);
static void read_start(conn_t *c);
static void maybe_finish(col_grpc_t *g);

/* ---- streams -------------------------------------------------------------------------------- */

static void body_release(col_grpc_t *g, stream_t *s)
{
    g->buffered -= s->body.len;
    wf_buf_free(&s->body);
}

static void stream_free(stream_t *s)
{
    body_release(s->conn->g, s);
    wf_buf_free(&s->reply.body);
    wf_free(s->authorization);
    wf_free(s);
}

static void stream_unlink(stream_t *s)
{
    conn_t *c = s->conn;
    if (s->prev != NULL) {
        s->prev->next = s->next;
    } else if (c->streams == s) {
        c->streams = s->next;
    }
    if (s->next != NULL) {
        s->next->prev = s->prev;
    }
    s->prev = s->next = NULL;
}

static void count(col_grpc_t *g, const route_t *r, col_grpc_code_t code)
{
    _Atomic unsigned long *by = r != NULL ? ((route_t *)r)->by_code : g->other_by_code;
    atomic_fetch_add(&by[code < COL_GRPC_NCODES ? code : 2], 1);
}

/* grpc-message: percent-encoding of every byte outside 0x20..0x7e and of '%' itself. */
static void pct_encode(const char *in, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p != '\0' && o + 4 < cap; p++) {
        if (*p < 0x20 || *p > 0x7e || *p == '%') {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        } else {
            out[o++] = (char)*p;
        }
    }
    out[o] = '\0';
}

static nghttp2_nv nv(const char *name, const char *value)
{
    return (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value),
                        NGHTTP2_NV_FLAG_NONE};
}

/* The trailers-only answer of a failed call. */
static void submit_error(stream_t *s, col_grpc_code_t code, const char *message)
{
    char status[8], msg[3 * sizeof(s->reply.message) + 1];
    snprintf(status, sizeof(status), "%d", (int)code);
    pct_encode(message, msg, sizeof(msg));
    nghttp2_nv h[5] = {nv(":status", "200"), nv("content-type", "application/grpc"),
                       nv("grpc-status", status), nv("grpc-message", msg),
                       nv("grpc-accept-encoding", "identity,gzip")};
    nghttp2_submit_response(s->conn->sess, s->id, h, 5, NULL);
}

/* After an early answer: a client still sending is told to stop (RST_STREAM NO_ERROR, as RFC
 * 9113 8.1 allows once the response is complete). */
static void stop_reading(stream_t *s)
{
    /* Not now: nghttp2 would drop the answer queued before the reset (on_frame_send). */
    s->reset_after_answer = true;
}

/* Refuse a call before its request has ended: answer, stop reading it (RST_STREAM NO_ERROR, as
 * RFC 9113 8.1 allows once the response is complete) and drop what it sent. */
static void refuse_early(stream_t *s, col_grpc_code_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void refuse_early(stream_t *s, col_grpc_code_t code, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    s->answered = true;
    count(s->conn->g, s->route, code);
    body_release(s->conn->g, s);
    submit_error(s, code, msg);
    stop_reading(s);
}

/* An answer that is not gRPC at all (a plain HTTP/2 request): the status alone. */
static void refuse_http(stream_t *s, const char *status)
{
    s->answered = true;
    count(s->conn->g, NULL, COL_GRPC_INVALID_ARGUMENT);
    body_release(s->conn->g, s);
    nghttp2_nv h[1] = {nv(":status", status)};
    nghttp2_submit_response(s->conn->sess, s->id, h, 1, NULL);
    stop_reading(s);
}

static ssize_t read_reply(nghttp2_session *sess, int32_t id, uint8_t *buf, size_t length,
                          uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    (void)ud;
    stream_t *s = src->ptr;
    size_t total = sizeof(s->prefix) + s->reply.body.len;
    size_t n = 0;
    while (n < length && s->sent < total) {
        size_t take;
        if (s->sent < sizeof(s->prefix)) {
            take = sizeof(s->prefix) - s->sent;
            take = take < length - n ? take : length - n;
            memcpy(buf + n, s->prefix + s->sent, take);
        } else {
            size_t off = s->sent - sizeof(s->prefix);
            take = s->reply.body.len - off;
            take = take < length - n ? take : length - n;
            memcpy(buf + n, s->reply.body.data + off, take);
        }
        n += take;
        s->sent += take;
    }
    if (s->sent == total) {
        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        nghttp2_nv t[1] = {nv("grpc-status", "0")};
        if (nghttp2_submit_trailer(sess, id, t, 1) != 0) {
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
    }
    return (ssize_t)n;
}

static void submit_reply(stream_t *s)
{
    if (s->reply.code != COL_GRPC_OK) {
        submit_error(s, s->reply.code, s->reply.message);
        return;
    }
    size_t len = s->reply.body.len;
    s->prefix[0] = 0;
    s->prefix[1] = (uint8_t)(len >> 24);
    s->prefix[2] = (uint8_t)(len >> 16);
    s->prefix[3] = (uint8_t)(len >> 8);
    s->prefix[4] = (uint8_t)len;
    s->sent = 0;
    nghttp2_nv h[3] = {nv(":status", "200"), nv("content-type", "application/grpc"),
                       nv("grpc-accept-encoding", "identity,gzip")};
    nghttp2_data_provider dp = {.source.ptr = s, .read_callback = read_reply};
    nghttp2_submit_response(s->conn->sess, s->id, h, 3, &dp);
}

static void reply_error(col_grpc_reply_t *r, col_grpc_code_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void reply_error(col_grpc_reply_t *r, col_grpc_code_t code, const char *fmt, ...)
{
    r->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof(r->message), fmt, ap);
    va_end(ap);
}

/* The call itself, on the thread pool (or inline for a fed connection): only the stream's own
 * data is touched here. */
static void work_cb(uv_work_t *w)
{
    stream_t *s = w->data;
    col_grpc_t *g = s->conn->g;
    col_grpc_reply_t *r = &s->reply;
    char why[256] = "";
    bool later = false;
    if (g->opt.auth != NULL &&
        !g->opt.auth(g->opt.auth_arg, s->conn->peer, s->authorization, why, sizeof(why), &later)) {
        /* A locked-out client is told to come back (HTTP: 429), which exporters retry. */
        reply_error(r, later ? COL_GRPC_UNAVAILABLE : COL_GRPC_UNAUTHENTICATED, "%s",
                    why[0] ? why : "unauthenticated");
        return;
    }
    const uint8_t *b = s->body.data;
    size_t n = s->body.len;
    if (n < 5) {
        reply_error(r, COL_GRPC_INTERNAL, "grpc: no request message (%zu bytes)", n);
        return;
    }
    uint32_t len = (uint32_t)b[1] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 8 | b[4];
    if (b[0] > 1) {
        reply_error(r, COL_GRPC_INTERNAL, "grpc: invalid compressed flag %u", b[0]);
        return;
    }
    if ((uint64_t)len + 5 > n) {
        reply_error(r, COL_GRPC_INTERNAL, "grpc: request message truncated (%u bytes announced)",
                    len);
        return;
    }
    if ((uint64_t)len + 5 < n) {
        reply_error(r, COL_GRPC_INTERNAL, "grpc: more than one request message for a unary method");
        return;
    }
    if (b[0] == 0) {
        s->route->cb(s->route->arg, b + 5, len, r);
        return;
    }
    if (strcmp(s->encoding, "gzip") != 0) {
        reply_error(r, COL_GRPC_INTERNAL,
                    "grpc: compressed flag set with identity or empty encoding");
        return;
    }
    wf_buf_t plain = WF_BUF_INIT;
    int rc = col_http_inflate(b + 5, len, 15 + 16, g->opt.max_message, &plain);
    if (rc == WF_E_LIMIT) {
        reply_error(r, COL_GRPC_RESOURCE_EXHAUSTED,
                    "grpc: received message after decompression larger than max (%zu)",
                    g->opt.max_message);
    } else if (rc != 0) {
        reply_error(r, COL_GRPC_INTERNAL, "grpc: failed to decompress the message (gzip)");
    } else {
        s->route->cb(s->route->arg, plain.data != NULL ? plain.data : (const uint8_t *)"",
                     plain.len, r);
    }
    wf_buf_free(&plain);
}

static void conn_unref(conn_t *c)
{
    if (--c->refs == 0) {
        wf_free(c);
    }
}

static void after_work(uv_work_t *w, int status)
{
    stream_t *s = w->data;
    conn_t *c = s->conn;
    col_grpc_t *g = c->g;
    if (status == UV_ECANCELED) {
        /* The client reset the stream (or the connection went) before the call started. */
        reply_error(&s->reply, COL_GRPC_CANCELLED, "canceled before it ran");
    }
    s->working = false;
    c->nworking--;
    g->nworking--;
    body_release(g, s);
    count(g, s->route, s->reply.code);
    if (s->closed || c->closing) {
        stream_free(s);
    } else {
        submit_reply(s);
        if (!c->in_recv) {
            flush(c); /* else feed() sends it once nghttp2 returns */
        }
    }
    conn_unref(c);
    if (g->stopping) {
        maybe_finish(g);
    }
}

static void dispatch(stream_t *s)
{
    conn_t *c = s->conn;
    col_grpc_t *g = c->g;
    /* Calls a client has reset still run unless cancelled in time, and nghttp2 stops counting
     * them as streams: these caps keep a reset flood from queueing work without bound. */
    if (c->nworking >= g->opt.max_streams || g->nworking >= MAX_WORKING) {
        refuse_early(s, COL_GRPC_UNAVAILABLE, "too many calls in progress; retry later");
        return;
    }
    s->answered = s->working = true;
    s->work.data = s;
    c->nworking++;
    g->nworking++;
    c->refs++;
    if (!c->has_tcp) {
        work_cb(&s->work);
        after_work(&s->work, 0);
        return;
    }
    int rc = uv_queue_work(&g->loop, &s->work, work_cb, after_work);
    if (rc != 0) {
        s->working = false;
        c->nworking--;
        g->nworking--;
        c->refs--; /* the connection itself still holds one */
        refuse_early(s, COL_GRPC_UNAVAILABLE, "cannot run the call: %s", uv_strerror(rc));
    }
}

/* A working stream whose stream or connection ended: the call is cancelled if it has not
 * started (after_work then frees the stream), else its answer is dropped. */
static void abandon(stream_t *s)
{
    s->closed = true;
    if (s->conn->has_tcp) {
        uv_cancel((uv_req_t *)&s->work);
    }
}

/* ---- nghttp2 callbacks -------------------------------------------------------------------- */

static int on_begin_headers(nghttp2_session *sess, const nghttp2_frame *frame, void *ud)
{
    conn_t *c = ud;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
        return 0;
    }
    stream_t *s = wf_calloc(1, sizeof(*s));
    s->conn = c;
    s->id = frame->hd.stream_id;
    s->started_ms = c->has_tcp ? uv_now(&c->g->loop) : 0;
    s->next = c->streams;
    if (c->streams != NULL) {
        c->streams->prev = s;
    }
    c->streams = s;
    nghttp2_session_set_stream_user_data(sess, s->id, s);
    return 0;
}

static bool name_is(const uint8_t *name, size_t len, const char *want)
{
    return len == strlen(want) && memcmp(name, want, len) == 0;
}

static int on_header(nghttp2_session *sess, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
    (void)flags;
    (void)ud;
    stream_t *s = nghttp2_session_get_stream_user_data(sess, frame->hd.stream_id);
    if (s == NULL || frame->hd.type != NGHTTP2_HEADERS) {
        return 0;
    }
    s->header_bytes += namelen + valuelen + 32; /* RFC 9113's accounting */
    if (s->header_bytes > COL_GRPC_MAX_HEADER_BYTES) {
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* the stream is reset */
    }
    if (frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
        return 0; /* a client's trailers carry nothing a unary call needs */
    }
    if (name_is(name, namelen, ":method")) {
        s->post = valuelen == 4 && memcmp(value, "POST", 4) == 0;
    } else if (name_is(name, namelen, ":path")) {
        s->path_too_long = valuelen >= sizeof(s->path);
        if (!s->path_too_long) {
            memcpy(s->path, value, valuelen);
            s->path[valuelen] = '\0';
        }
    } else if (name_is(name, namelen, "content-type")) {
        const char *ct = "application/grpc";
        size_t n = strlen(ct);
        s->grpc_type = valuelen >= n && strncasecmp((const char *)value, ct, n) == 0 &&
                       (valuelen == n || value[n] == '+' || value[n] == ';');
    } else if (name_is(name, namelen, "grpc-encoding")) {
        if (valuelen < sizeof(s->encoding)) {
            memcpy(s->encoding, value, valuelen);
            s->encoding[valuelen] = '\0';
        } else {
            snprintf(s->encoding, sizeof(s->encoding), "(too long)");
        }
        if (strcmp(s->encoding, "identity") == 0) {
            s->encoding[0] = '\0';
        }
    } else if (name_is(name, namelen, "authorization") && s->authorization == NULL) {
        s->authorization = wf_malloc(valuelen + 1);
        memcpy(s->authorization, value, valuelen);
        s->authorization[valuelen] = '\0';
    }
    return 0;
}

static route_t *find_route(col_grpc_t *g, const char *path)
{
    for (size_t i = 0; i < g->nroutes; i++) {
        if (strcmp(g->routes[i].path, path) == 0) {
            return &g->routes[i];
        }
    }
    return NULL;
}

/* The request's headers are in: refuse what cannot be a call of ours. */
static void check_head(stream_t *s)
{
    col_grpc_t *g = s->conn->g;
    if (!s->post) {
        refuse_http(s, "405");
        return;
    }
    if (!s->grpc_type) {
        refuse_http(s, "415");
        return;
    }
    s->route = s->path_too_long ? NULL : find_route(g, s->path);
    if (s->route == NULL) {
        refuse_early(s, COL_GRPC_UNIMPLEMENTED, "unknown method %s",
                     s->path_too_long ? "(path too long)" : s->path);
        return;
    }
    if (s->encoding[0] != '\0' && strcmp(s->encoding, "gzip") != 0) {
        refuse_early(s, COL_GRPC_UNIMPLEMENTED,
                     "grpc: decompressor is not installed for grpc-encoding \"%s\"", s->encoding);
        return;
    }
    /* A call without credentials where they are needed is refused before its body is held
     * (asking costs nothing then); credentials are checked on the thread pool, a password
     * hash being slow. */
    char why[256] = "";
    bool later = false;
    if (g->opt.auth != NULL && s->authorization == NULL &&
        !g->opt.auth(g->opt.auth_arg, s->conn->peer, NULL, why, sizeof(why), &later)) {
        refuse_early(s, COL_GRPC_UNAUTHENTICATED, "%s", why[0] ? why : "unauthenticated");
    }
}

static int on_frame_recv(nghttp2_session *sess, const nghttp2_frame *frame, void *ud)
{
    conn_t *c = ud;
    c->last_active_ms = c->has_tcp ? uv_now(&c->g->loop) : 0;
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) {
        return 0;
    }
    stream_t *s = nghttp2_session_get_stream_user_data(sess, frame->hd.stream_id);
    if (s == NULL) {
        return 0;
    }
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
        check_head(s);
    }
    if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && !s->answered) {
        dispatch(s);
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *sess, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *ud)
{
    (void)flags;
    (void)ud;
    stream_t *s = nghttp2_session_get_stream_user_data(sess, id);
    if (s == NULL || s->answered) {
        return 0; /* refused already: dropped (flow control is still given back) */
    }
    col_grpc_t *g = s->conn->g;
    size_t max = g->opt.max_message;
    if (s->body.len + len > max + 5) {
        refuse_early(s, COL_GRPC_RESOURCE_EXHAUSTED,
                     "grpc: received message larger than max (%zu vs. %zu)", s->body.len + len - 5,
                     max);
        return 0;
    }
    if (g->buffered + len > g->opt.max_buffered) {
        refuse_early(s, COL_GRPC_UNAVAILABLE,
                     "server busy: too many request bytes held; retry later");
        return 0;
    }
    wf_buf_append(&s->body, data, len);
    g->buffered += len;
    if (s->body.len >= 5) {
        const uint8_t *b = s->body.data;
        size_t announced = (size_t)b[1] << 24 | (size_t)b[2] << 16 | (size_t)b[3] << 8 | b[4];
        if (announced > max) {
            refuse_early(s, COL_GRPC_RESOURCE_EXHAUSTED,
                         "grpc: received message larger than max (%zu vs. %zu)", announced, max);
        }
    }
    return 0;
}

/* An early answer has gone out: now reset the stream if the client is still sending. */
static int on_frame_send(nghttp2_session *sess, const nghttp2_frame *frame, void *ud)
{
    (void)ud;
    if (frame->hd.type != NGHTTP2_HEADERS || !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        return 0;
    }
    stream_t *s = nghttp2_session_get_stream_user_data(sess, frame->hd.stream_id);
    if (s != NULL && s->reset_after_answer &&
        nghttp2_session_get_stream_remote_close(sess, s->id) == 0) {
        nghttp2_submit_rst_stream(sess, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_NO_ERROR);
    }
    return 0;
}

static int on_stream_close(nghttp2_session *sess, int32_t id, uint32_t error_code, void *ud)
{
    (void)error_code;
    (void)ud;
    stream_t *s = nghttp2_session_get_stream_user_data(sess, id);
    if (s == NULL) {
        return 0;
    }
    stream_unlink(s);
    if (s->working) {
        abandon(s);
    } else {
        stream_free(s);
    }
    return 0;
}

/* ---- connections -------------------------------------------------------------------------- */

static conn_t *conn_new(col_grpc_t *g)
{
    conn_t *c = wf_calloc(1, sizeof(*c));
    c->g = g;
    c->refs = 1;
    nghttp2_option *opt;
    nghttp2_option_new(&opt);
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
    if (nghttp2_session_server_new2(&c->sess, g->cbs, c, opt) != 0) {
        abort(); /* only NGHTTP2_ERR_NOMEM: out of memory, as wf_malloc */
    }
    nghttp2_option_del(opt);
    nghttp2_settings_entry iv[3] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, g->opt.max_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, (uint32_t)STREAM_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, COL_GRPC_MAX_HEADER_BYTES}};
    nghttp2_submit_settings(c->sess, NGHTTP2_FLAG_NONE, iv, 3);
    nghttp2_session_set_local_window_size(c->sess, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW);
    atomic_fetch_add(&g->nconns, 1);
    return c;
}

static void on_write(uv_write_t *req, int status)
{
    write_t *w = (write_t *)req;
    conn_t *c = w->c;
    c->write_pending -= w->len;
    wf_free(w->data);
    wf_free(w);
    if (status < 0) {
        conn_close(c);
    } else if (!c->closing && !c->reading && c->write_pending < READ_PAUSE_BYTES / 4) {
        read_start(c);
    }
    conn_unref(c);
}

/* Hand nghttp2's pending output to the socket (or the test's callback); close the connection
 * once neither side has anything more to say. */
static void flush(conn_t *c)
{
    if (c->sess == NULL) {
        return;
    }
    wf_buf_t out = WF_BUF_INIT;
    for (;;) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(c->sess, &data);
        if (n < 0) {
            wf_buf_free(&out);
            conn_close(c);
            return;
        }
        if (n == 0) {
            break;
        }
        wf_buf_append(&out, data, (size_t)n);
    }
    if (out.len > 0) {
        if (!c->has_tcp) {
            c->out(c->out_ctx, out.data, out.len);
            wf_buf_free(&out);
        } else {
            write_t *w = wf_calloc(1, sizeof(*w));
            w->c = c;
            w->data = wf_buf_detach(&out, &w->len);
            uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)w->len);
            c->write_pending += w->len;
            c->refs++;
            if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
                c->write_pending -= w->len;
                wf_free(w->data);
                wf_free(w);
                conn_unref(c);
                conn_close(c);
                return;
            }
            if (c->write_pending > READ_PAUSE_BYTES && c->reading) {
                uv_read_stop((uv_stream_t *)&c->tcp);
                c->reading = false;
            }
        }
    }
    if (!nghttp2_session_want_read(c->sess) && !nghttp2_session_want_write(c->sess)) {
        conn_close(c);
    }
}

static void on_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    atomic_fetch_sub(&c->g->nconns, 1);
    conn_unref(c);
}

static void closing_unlink(conn_t *c)
{
    col_grpc_t *g = c->g;
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else if (g->closing == c) {
        g->closing = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    c->prev = c->next = NULL;
}

/* Close the handle of a closing connection now (pending writes are cancelled). */
static void close_handle(conn_t *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp)) {
        closing_unlink(c);
        uv_close((uv_handle_t *)&c->tcp, on_closed);
    }
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status; /* also UV_ECANCELED when close_handle came first */
    conn_t *c = req->data;
    wf_free(req);
    close_handle(c);
}

/* Closing connections whose output is still not out after CLOSE_GRACE_MS (a peer that does not
 * read): closed at once, so that neither memory nor a stop waits on such a peer. */
static void reap_closing(col_grpc_t *g, bool all)
{
    uint64_t now = uv_now(&g->loop);
    for (conn_t *c = g->closing, *next; c != NULL; c = next) {
        next = c->next;
        if (all || now - c->closing_since_ms >= CLOSE_GRACE_MS) {
            close_handle(c);
        }
    }
}

static void conn_close(conn_t *c)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    col_grpc_t *g = c->g;
    if (c->has_tcp) {
        if (c->prev != NULL) {
            c->prev->next = c->next;
        } else {
            g->conns = c->next;
        }
        if (c->next != NULL) {
            c->next->prev = c->prev;
        }
        c->prev = c->next = NULL;
    } else {
        atomic_fetch_sub(&g->nconns, 1); /* a fed connection has no handle to close */
    }
    while (c->streams != NULL) {
        stream_t *s = c->streams;
        stream_unlink(s);
        if (s->working) {
            abandon(s);
        } else {
            stream_free(s);
        }
    }
    nghttp2_session_del(c->sess);
    c->sess = NULL;
    if (!c->has_tcp) {
        return; /* col__grpc_conn_free drops the last reference */
    }
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
    /* On g->closing until the handle closes: after the last output is out (uv_shutdown), or
     * by reap_closing when it is not out within CLOSE_GRACE_MS. */
    c->closing_since_ms = uv_now(&g->loop);
    c->next = g->closing;
    if (g->closing != NULL) {
        g->closing->prev = c;
    }
    g->closing = c;
    uv_shutdown_t *sd = wf_calloc(1, sizeof(*sd));
    sd->data = c;
    if (c->write_pending == 0 || uv_shutdown(sd, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        wf_free(sd);
        close_handle(c);
    }
}

/* Feed received bytes to nghttp2, then send what it has to say. */
static int feed(conn_t *c, const uint8_t *data, size_t len)
{
    if (c->sess == NULL) {
        return -1;
    }
    c->in_recv = true;
    ssize_t rv = nghttp2_session_mem_recv(c->sess, data, len);
    c->in_recv = false;
    if (rv < 0) {
        WF_LOG_RL(WF_INFO, 1, "grpc", "connection closed", "peer=%s err=\"%s\"", c->peer,
                  nghttp2_strerror((int)rv));
        conn_close(c);
        return -1;
    }
    flush(c);
    return c->closing ? -1 : 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    conn_t *c = h->data;
    *buf = uv_buf_init(c->g->rbuf, sizeof(c->g->rbuf));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *c = st->data;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    if (nread > 0) {
        c->last_active_ms = uv_now(&c->g->loop);
        c->refs++; /* feed may close the connection */
        feed(c, (const uint8_t *)buf->base, (size_t)nread);
        conn_unref(c);
    }
}

static void read_start(conn_t *c)
{
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) {
        c->reading = true;
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    col_grpc_t *g = server->data;
    if (status < 0 || g->stopping) {
        return;
    }
    conn_t *c = conn_new(g);
    c->has_tcp = true;
    uv_tcp_init(&g->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 ||
        atomic_load(&g->nconns) > g->opt.max_conns) {
        nghttp2_session_del(c->sess);
        c->sess = NULL;
        c->closing = true;
        uv_close((uv_handle_t *)&c->tcp, on_closed); /* on_closed counts it out */
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0 && ss.ss_family == AF_INET) {
        uv_ip4_name((struct sockaddr_in *)&ss, c->peer, sizeof(c->peer));
    }
    c->last_active_ms = uv_now(&g->loop);
    c->next = g->conns;
    if (g->conns != NULL) {
        g->conns->prev = c;
    }
    g->conns = c;
    read_start(c);
    flush(c); /* our SETTINGS */
}

/* ---- the loop ----------------------------------------------------------------------------- */

/* At stop: close what has nothing in flight (everything once the grace period is over); when
 * no connection is left, close the loop's own handles so that it ends. */
static void maybe_finish(col_grpc_t *g)
{
    bool force = uv_now(&g->loop) >= g->stop_deadline_ms;
    for (conn_t *c = g->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (force || (c->streams == NULL && c->nworking == 0 && c->write_pending == 0)) {
            conn_close(c);
        }
    }
    if (force) {
        reap_closing(g, true);
    }
    if (g->conns == NULL && g->closing == NULL && !g->handles_closed) {
        g->handles_closed = true;
        uv_close((uv_handle_t *)&g->stop_async, NULL);
        uv_close((uv_handle_t *)&g->timer, NULL);
    }
}

static void on_stop(uv_async_t *a)
{
    col_grpc_t *g = a->data;
    if (g->stopping) {
        return;
    }
    g->stopping = true;
    g->stop_deadline_ms = uv_now(&g->loop) + STOP_GRACE_MS;
    for (size_t i = 0; i < g->nlisteners; i++) {
        uv_close((uv_handle_t *)&g->listeners[i], NULL);
    }
    for (conn_t *c = g->conns; c != NULL; c = c->next) {
        nghttp2_submit_goaway(c->sess, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(c->sess), NGHTTP2_NO_ERROR,
                              NULL, 0);
    }
    for (conn_t *c = g->conns, *next; c != NULL; c = next) {
        next = c->next;
        flush(c);
    }
    maybe_finish(g);
}

/* Once a second: connections idle too long get a GOAWAY; at stop, the grace period. */
static void on_timer(uv_timer_t *t)
{
    col_grpc_t *g = t->data;
    reap_closing(g, false);
    if (g->stopping) {
        maybe_finish(g);
        return;
    }
    uint64_t now = uv_now(&g->loop);
    for (conn_t *c = g->conns, *next; c != NULL; c = next) {
        next = c->next;
        /* A call not finished in time holds memory and a stream slot: a request still coming
         * is answered DEADLINE_EXCEEDED and reset; an answer the client's flow-control window
         * holds back (a client that does not read) is reset (CANCEL). */
        bool expired = false;
        for (stream_t *st = c->streams; st != NULL; st = st->next) {
            if (st->working || now - st->started_ms < (uint64_t)g->opt.stream_timeout_ms) {
                continue;
            }
            if (!st->answered) {
                refuse_early(st, COL_GRPC_DEADLINE_EXCEEDED, "request not complete within %lld ms",
                             (long long)g->opt.stream_timeout_ms);
            } else {
                nghttp2_submit_rst_stream(c->sess, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
            }
            expired = true;
        }
        if (expired) {
            flush(c);
            continue;
        }
        if (c->streams == NULL && c->nworking == 0 &&
            now - c->last_active_ms >= (uint64_t)g->opt.idle_ms) {
            nghttp2_session_terminate_session(c->sess, NGHTTP2_NO_ERROR);
            flush(c);
        }
    }
}

static void loop_main(void *arg)
{
    col_grpc_t *g = arg;
    uv_run(&g->loop, UV_RUN_DEFAULT);
}

int col_grpc_new(const col_grpc_options_t *o, col_grpc_t **out)
{
    col_grpc_t *g = wf_calloc(1, sizeof(*g));
    g->opt = *o;
    if (g->opt.max_message == 0) {
        g->opt.max_message = COL_GRPC_DEFAULT_MAX_MESSAGE;
    }
    if (g->opt.max_buffered == 0) {
        g->opt.max_buffered = COL_GRPC_DEFAULT_MAX_BUFFERED;
    }
    if (g->opt.max_conns == 0) {
        g->opt.max_conns = 1024;
    }
    if (g->opt.max_streams == 0) {
        g->opt.max_streams = 100;
    }
    if (g->opt.idle_ms <= 0) {
        g->opt.idle_ms = 5 * 60 * 1000;
    }
    if (g->opt.stream_timeout_ms <= 0) {
        g->opt.stream_timeout_ms = 60 * 1000;
    }
    if (nghttp2_session_callbacks_new(&g->cbs) != 0 || uv_loop_init(&g->loop) != 0) {
        if (g->cbs != NULL) {
            nghttp2_session_callbacks_del(g->cbs);
        }
        wf_free(g);
        return WF_E_INTERNAL;
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(g->cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(g->cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(g->cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(g->cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(g->cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(g->cbs, on_frame_send);
    uv_async_init(&g->loop, &g->stop_async, on_stop);
    g->stop_async.data = g;
    uv_timer_init(&g->loop, &g->timer);
    g->timer.data = g;
    *out = g;
    return 0;
}

int col_grpc_route(col_grpc_t *g, const char *path, col_grpc_handler_cb cb, void *arg)
{
    if (g->nroutes == MAX_ROUTES || strlen(path) >= sizeof(g->routes[0].path)) {
        return WF_E_LIMIT;
    }
    route_t *r = &g->routes[g->nroutes++];
    snprintf(r->path, sizeof(r->path), "%s", path);
    r->cb = cb;
    r->arg = arg;
    return 0;
}

int col_grpc_listen(col_grpc_t *g, const char *addr_s)
{
    struct sockaddr_in addr;
    if (col_http_parse_addr(addr_s, &addr) != 0) {
        return WF_E_INVAL;
    }
    if (g->nlisteners == MAX_LISTENERS || g->started) {
        return WF_E_LIMIT;
    }
    uv_tcp_t *l = &g->listeners[g->nlisteners];
    uv_tcp_init(&g->loop, l);
    l->data = g;
    int rc = uv_tcp_bind(l, (const struct sockaddr *)&addr, 0);
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)l, 128, on_connection);
    }
    if (rc != 0) {
        uv_close((uv_handle_t *)l, NULL);
        uv_run(&g->loop, UV_RUN_NOWAIT);
        return rc; /* libuv's errors are negative errno values */
    }
    g->nlisteners++;
    return 0;
}

int col_grpc_start(col_grpc_t *g)
{
    uv_timer_start(&g->timer, on_timer, 1000, 1000);
    int rc = uv_thread_create(&g->thread, loop_main, g);
    if (rc != 0) {
        return rc;
    }
    g->started = true;
    return 0;
}

void col_grpc_stop(col_grpc_t *g)
{
    if (!g->started || g->joined) {
        return;
    }
    uv_async_send(&g->stop_async);
    uv_thread_join(&g->thread);
    g->joined = true;
}

void col_grpc_free(col_grpc_t *g)
{
    if (g == NULL) {
        return;
    }
    col_grpc_stop(g);
    if (!g->started) {
        /* The loop never ran: close its handles here. */
        for (size_t i = 0; i < g->nlisteners; i++) {
            uv_close((uv_handle_t *)&g->listeners[i], NULL);
        }
        uv_close((uv_handle_t *)&g->stop_async, NULL);
        uv_close((uv_handle_t *)&g->timer, NULL);
        uv_run(&g->loop, UV_RUN_DEFAULT);
    }
    uv_loop_close(&g->loop);
    nghttp2_session_callbacks_del(g->cbs);
    wf_free(g);
}

static const char *code_name(int code)
{
    static const char *const names[COL_GRPC_NCODES] = {
        "OK",       "Canceled",       "Unknown",          "InvalidArgument",   "DeadlineExceeded",
        "NotFound", "AlreadyExists",  "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
        "Aborted",  "OutOfRange",     "Unimplemented",    "Internal",          "Unavailable",
        "DataLoss", "Unauthenticated"};
    return names[code];
}

void col_grpc_write_metrics(col_grpc_t *g, wf_buf_t *out)
{
    wf_buf_puts(out, "# HELP weft_grpc_requests_total gRPC calls answered, by method and status "
                     "code (method \"other\": calls no method of the server matched).\n"
                     "# TYPE weft_grpc_requests_total counter\n");
    for (size_t i = 0; i <= g->nroutes; i++) {
        _Atomic unsigned long *by = i < g->nroutes ? g->routes[i].by_code : g->other_by_code;
        const char *method = i < g->nroutes ? g->routes[i].path + 1 : "other";
        for (int c = 0; c < COL_GRPC_NCODES; c++) {
            unsigned long n = atomic_load(&by[c]);
            if (n != 0 || (c == 0 && i < g->nroutes)) {
                wf_buf_printf(out, "weft_grpc_requests_total{code=\"%s\",method=\"%s\"} %lu\n",
                              code_name(c), method, n);
            }
        }
    }
    wf_buf_printf(out,
                  "# HELP weft_grpc_connections Open gRPC (HTTP/2) connections.\n"
                  "# TYPE weft_grpc_connections gauge\nweft_grpc_connections %u\n",
                  atomic_load(&g->nconns));
}

/* ---- connections without a socket (tests, fuzzing) ------------------------------------------ */

col_grpc_conn_t *col__grpc_conn_new(col_grpc_t *g,
                                    void (*out)(void *ctx, const uint8_t *data, size_t len),
                                    void *ctx)
{
    conn_t *c = conn_new(g);
    c->out = out;
    c->out_ctx = ctx;
    snprintf(c->peer, sizeof(c->peer), "test");
    flush(c);
    return c;
}

int col__grpc_conn_feed(col_grpc_conn_t *c, const uint8_t *data, size_t len)
{
    return feed(c, data, len);
}

void col__grpc_conn_free(col_grpc_conn_t *c)
{
    conn_close(c);
    conn_unref(c);
}

size_t col__grpc_buffered(const col_grpc_t *g)
{
    return g->buffered;
}
