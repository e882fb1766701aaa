/*
 * wt_h2c.c - a small HTTP/2 client over libnghttp2 for the gRPC tests (wt_h2c.h).
 */
#include "wt_h2c.h"

#include "wf_clock.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static ssize_t c_send(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *ud)
{
    (void)s;
    (void)flags;
    wt_h2c_t *c = ud;
    ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
    return n < 0 ? NGHTTP2_ERR_CALLBACK_FAILURE : n;
}

static int c_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                    const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
    (void)s;
    (void)flags;
    wt_h2c_t *c = ud;
    if (f->hd.stream_id != c->id) {
        return 0;
    }
    char v[512];
    snprintf(v, sizeof(v), "%.*s", (int)vl, (const char *)value);
    if (nl == 7 && memcmp(name, ":status", 7) == 0) {
        c->http_status = atoi(v);
    } else if (nl == 11 && memcmp(name, "grpc-status", 11) == 0) {
        c->grpc_status = atoi(v);
    } else if (nl == 12 && memcmp(name, "grpc-message", 12) == 0) {
        snprintf(c->grpc_message, sizeof(c->grpc_message), "%s", v);
    } else if (nl == 20 && memcmp(name, "grpc-accept-encoding", 20) == 0) {
        snprintf(c->accept_encoding, sizeof(c->accept_encoding), "%.63s", v);
    }
    return 0;
}

static int c_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                  void *ud)
{
    (void)s;
    (void)flags;
    wt_h2c_t *c = ud;
    if (id == c->id) {
        wf_buf_append(&c->body, data, len);
    }
    return 0;
}

static int c_close(nghttp2_session *s, int32_t id, uint32_t err, void *ud)
{
    (void)s;
    (void)err;
    wt_h2c_t *c = ud;
    if (id == c->id) {
        c->done = true;
    }
    return 0;
}

static ssize_t c_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
                      nghttp2_data_source *src, void *ud)
{
    (void)s;
    (void)id;
    (void)src;
    wt_h2c_t *c = ud;
    size_t n = c->req_len - c->req_off;
    n = n < length ? n : length;
    if (n > 0) {
        memcpy(buf, c->req + c->req_off, n);
    }
    c->req_off += n;
    if (c->req_off == c->req_len) {
        if (!c->end_stream) {
            return n > 0 ? (ssize_t)n : NGHTTP2_ERR_DEFERRED; /* keep the request open */
        }
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    }
    return (ssize_t)n;
}

int wt_h2c_open(wt_h2c_t *c, int port)
{
    memset(c, 0, sizeof(*c));
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        if (c->fd >= 0) {
            close(c->fd);
        }
        return -1;
    }
    nghttp2_session_callbacks *cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_send_callback(cb, c_send);
    nghttp2_session_callbacks_set_on_header_callback(cb, c_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, c_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, c_close);
    nghttp2_session_client_new(&c->s, cb, c);
    nghttp2_session_callbacks_del(cb);
    nghttp2_submit_settings(c->s, NGHTTP2_FLAG_NONE, NULL, 0);
    return 0;
}

void wt_h2c_free(wt_h2c_t *c)
{
    nghttp2_session_del(c->s);
    close(c->fd);
    wf_buf_free(&c->body);
}

/* Send what is pending and read until the call is done, the connection ends or 10 s pass. */
static void run(wt_h2c_t *c)
{
    for (int64_t deadline = wf_mono_ns() / 1000000 + 10000;
         !c->done && wf_mono_ns() / 1000000 < deadline;) {
        if (nghttp2_session_send(c->s) != 0) {
            c->conn_closed = true;
            return;
        }
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0) {
            continue;
        }
        uint8_t buf[65536];
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
        if (n <= 0 || nghttp2_session_mem_recv(c->s, buf, (size_t)n) < 0) {
            c->conn_closed = true;
            return;
        }
    }
}

/* One call of path on c with body (the whole HTTP/2 request body, prefix included). */
int wt_h2c_call_raw(wt_h2c_t *c, const char *path, const uint8_t *body, size_t len,
                    const wt_h2c_opts_t *o)
{
    c->done = false;
    c->http_status = 0;
    c->grpc_status = -1;
    c->grpc_message[0] = c->accept_encoding[0] = '\0';
    wf_buf_reset(&c->body);
    c->req = body;
    c->req_len = len;
    c->req_off = 0;
    c->end_stream = !o->keep_open;
    nghttp2_nv h[8];
    size_t n = 0;
#define NV(k, v)                                                                                   \
    h[n++] =                                                                                       \
        (nghttp2_nv){(uint8_t *)(k), (uint8_t *)(v), strlen(k), strlen(v), NGHTTP2_NV_FLAG_NONE}
    NV(":method", o->method != NULL ? o->method : "POST");
    NV(":scheme", "http");
    NV(":authority", "127.0.0.1");
    NV(":path", path);
    NV("content-type", o->content_type != NULL ? o->content_type : "application/grpc");
    NV("te", "trailers");
    if (o->encoding != NULL) {
        NV("grpc-encoding", o->encoding);
    }
    if (o->authorization != NULL) {
        NV("authorization", o->authorization);
    }
#undef NV
    nghttp2_data_provider dp = {.read_callback = c_read};
    c->id = nghttp2_submit_request(c->s, NULL, h, n, &dp, NULL);
    if (c->id <= 0) {
        return -1;
    }
    run(c);
    return c->done ? 0 : -1;
}

/* The 5-byte gRPC prefix and msg into out. */
void wt_grpc_frame(wf_buf_t *out, uint8_t flag, const void *msg, size_t len)
{
    uint8_t p[5] = {flag, (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                    (uint8_t)len};
    wf_buf_append(out, p, 5);
    wf_buf_append(out, msg, len);
}

int wt_h2c_call(wt_h2c_t *c, const char *path, uint8_t flag, const void *msg, size_t len,
                const wt_h2c_opts_t *o)
{
    wf_buf_t b = WF_BUF_INIT;
    wt_grpc_frame(&b, flag, msg, len);
    int rc = wt_h2c_call_raw(c, path, b.data, b.len, o);
    wf_buf_free(&b);
    return rc;
}
