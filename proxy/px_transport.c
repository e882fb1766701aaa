/*
 * px_transport.c - TCP transport over libuv (see px_transport.h); a TLS connection hands its
 * reads, writes and close to px_tls.c, which comes back here for the socket.
 *
 * Writes first try the socket directly (uv_try_write), which for small responses means no copy
 * and no callback; only what remains is copied into one block with its uv_write_t in front.
 */
#include "px_transport.h"

#include "px_tls.h"
#include "wf_alloc.h"

#include <string.h>

typedef struct {
    uv_write_t req;
    size_t len;
    char data[];
} px_wreq_t;

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    px_transport_t *t = h->data;
    if (t->tls != NULL) {
        px__tls_alloc(t, suggested, buf);
        return;
    }
    t->cbs->on_alloc(t, suggested, buf);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    px_transport_t *t = s->data;
    if (nread == 0 || t->closing) {
        return;
    }
    if (t->tls != NULL) {
        px__tls_read(t, nread, buf);
        return;
    }
    t->cbs->on_read(t, nread, buf);
}

void px__transport_handle_closed(px_transport_t *t)
{
    if (--t->open_handles > 0) {
        return;
    }
    px__tls_free(t);
    wf_free(t->peer_identity);
    t->peer_identity = NULL;
    t->cbs->on_closed(t);
}

static void close_cb(uv_handle_t *h)
{
    px__transport_handle_closed(h->data);
}

static void connect_cb(uv_connect_t *req, int status)
{
    px_transport_t *t = req->handle->data;
    if (t->closing) {
        return;
    }
    if (t->tls != NULL) {
        px__tls_connected(t, status);
        return;
    }
    t->cbs->on_connect(t, status);
}

static void write_cb(uv_write_t *req, int status)
{
    px_wreq_t *w = (px_wreq_t *)req;
    px_transport_t *t = req->handle->data;
    t->queued -= w->len;
    wf_free(w);
    if (!t->closing && t->cbs->on_written != NULL) {
        t->cbs->on_written(t, status);
    }
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status;
}

int px_transport_init(uv_loop_t *loop, px_transport_t *t, const px_transport_cbs_t *cbs,
                      void *owner)
{
    memset(t, 0, sizeof(*t));
    t->cbs = cbs;
    t->owner = owner;
    int rc = uv_tcp_init(loop, &t->tcp);
    t->tcp.data = t;
    t->open_handles = 1;
    return rc;
}

int px_transport_accept(uv_stream_t *server, px_transport_t *t)
{
    int rc = uv_accept(server, (uv_stream_t *)&t->tcp);
    if (rc == 0) {
        uv_tcp_nodelay(&t->tcp, 1);
    }
    return rc;
}

int px_transport_connect(px_transport_t *t, const struct sockaddr *addr)
{
    int rc = uv_tcp_connect(&t->connect_req, &t->tcp, addr, connect_cb);
    if (rc == 0) {
        uv_tcp_nodelay(&t->tcp, 1);
    }
    return rc;
}

void px__transport_sock_read(px_transport_t *t, bool on)
{
    if (t->closing || on == t->sock_reading) {
        return;
    }
    if (on) {
        if (uv_read_start((uv_stream_t *)&t->tcp, alloc_cb, read_cb) != 0) {
            return;
        }
    } else {
        uv_read_stop((uv_stream_t *)&t->tcp);
    }
    t->sock_reading = on;
}

int px_transport_read_start(px_transport_t *t)
{
    if (t->reading || t->closing) {
        return 0;
    }
    if (t->tls != NULL) {
        t->reading = true;
        px__tls_read_update(t);
        return 0;
    }
    int rc = uv_read_start((uv_stream_t *)&t->tcp, alloc_cb, read_cb);
    if (rc == 0) {
        t->reading = true;
        t->sock_reading = true;
    }
    return rc;
}

void px_transport_read_stop(px_transport_t *t)
{
    if (!t->reading || t->closing) {
        t->reading = false;
        return;
    }
    t->reading = false;
    if (t->tls != NULL) {
        px__tls_read_update(t);
        return;
    }
    uv_read_stop((uv_stream_t *)&t->tcp);
    t->sock_reading = false;
}

int px_transport_write(px_transport_t *t, const uv_buf_t *bufs, unsigned nbufs)
{
    if (t->closing) {
        return UV_ECANCELED;
    }
    if (t->tls != NULL) {
        return px__tls_write(t, bufs, nbufs);
    }
    return px__transport_raw_write(t, bufs, nbufs);
}

int px__transport_raw_write(px_transport_t *t, const uv_buf_t *bufs, unsigned nbufs)
{
    size_t total = 0;
    for (unsigned i = 0; i < nbufs; i++) {
        total += bufs[i].len;
    }
    if (total == 0) {
        return 0;
    }
    size_t done = 0;
    if (t->queued == 0) {
        int n = uv_try_write((uv_stream_t *)&t->tcp, bufs, nbufs);
        if (n < 0 && n != UV_EAGAIN) {
            return n;
        }
        done = n > 0 ? (size_t)n : 0;
        if (done == total) {
            return 0;
        }
    }
    px_wreq_t *w = wf_malloc(sizeof(*w) + (total - done));
    w->len = total - done;
    size_t off = 0, skip = done;
    for (unsigned i = 0; i < nbufs; i++) {
        size_t l = bufs[i].len;
        if (skip >= l) {
            skip -= l;
            continue;
        }
        memcpy(w->data + off, bufs[i].base + skip, l - skip);
        off += l - skip;
        skip = 0;
    }
    uv_buf_t b = uv_buf_init(w->data, (unsigned)w->len);
    int rc = uv_write(&w->req, (uv_stream_t *)&t->tcp, &b, 1, write_cb);
    if (rc != 0) {
        wf_free(w);
        return rc;
    }
    t->queued += w->len;
    return 0;
}

size_t px_transport_queued(const px_transport_t *t)
{
    return t->queued + (t->tls != NULL ? px__tls_queued(t) : 0);
}

void px_transport_shutdown(px_transport_t *t)
{
    if (t->closing) {
        return;
    }
    if (t->tls != NULL) {
        px__tls_shutdown(t); /* close_notify goes out before the FIN */
    }
    if (uv_shutdown(&t->shutdown_req, (uv_stream_t *)&t->tcp, shutdown_cb) != 0) {
        px_transport_close(t);
    }
}

void px_transport_close(px_transport_t *t)
{
    if (t->closing) {
        return;
    }
    if (t->tls != NULL) {
        px__tls_close(t);
    }
    t->closing = true;
    uv_close((uv_handle_t *)&t->tcp, close_cb);
}

void px_transport_peer_ip(px_transport_t *t, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    out[0] = '\0';
    if (uv_tcp_getpeername(&t->tcp, (struct sockaddr *)&ss, &len) != 0) {
        return;
    }
    if (ss.ss_family == AF_INET) {
        uv_ip4_name((struct sockaddr_in *)&ss, out, cap);
    } else if (ss.ss_family == AF_INET6) {
        uv_ip6_name((struct sockaddr_in6 *)&ss, out, cap);
    }
}
