/*
 * px_mirror.c - mirrored requests (see px_mirror.h).
 */
#include "px_mirror.h"

#include "px_http1.h"
#include "px_worker.h"
#include "wf_alloc.h"

#include <string.h>

#define MIRROR_MAX_HEADERS 100

struct px_mirror {
    px_worker_t *w;
    px_gen_t *gen; /* holds one use of it: pool lives there */
    px_mirror_t *prev, *next;
    px_upconn_t *up;
    uv_timer_t timer;
    wf_buf_t out; /* the request, until the connection is up */
    px_http1_body_t body;
    bool head_done;
    bool keep_alive; /* the response allows another request on the connection */
    bool connected;
    bool held;         /* the original request still feeds it (px_mirror_release not yet) */
    bool request_done; /* every request byte was passed */
    bool ended;
    bool timer_closed; /* the last handle is closed: free once released */
};

static void unlink_mirror(px_mirror_t *m)
{
    px_worker_t *w = m->w;
    if (m->prev != NULL) {
        m->prev->next = m->next;
    } else {
        w->mirrors = m->next;
    }
    if (m->next != NULL) {
        m->next->prev = m->prev;
    }
}

static void mirror_free(px_mirror_t *m)
{
    wf_buf_free(&m->out);
    wf_free(m);
}

static void timer_closed(uv_handle_t *h)
{
    px_mirror_t *m = h->data;
    m->timer_closed = true;
    if (!m->held) {
        mirror_free(m);
    }
}

/* The mirror is over (ok: its whole response came): give its connection back, kept only
 * after a whole response that allows reuse. */
static void mirror_end(px_mirror_t *m, bool ok)
{
    if (m->ended) {
        return;
    }
    m->ended = true;
    atomic_fetch_add_explicit(ok ? &m->w->ctr.mirror_rq_done : &m->w->ctr.mirror_rq_failed, 1,
                              memory_order_relaxed);
    if (m->up != NULL) {
        px_pool_release(m->up, ok && m->keep_alive && m->request_done);
        m->up = NULL;
    }
    unlink_mirror(m);
    px_gen_release(m->w, m->gen);
    m->gen = NULL;
    uv_timer_stop(&m->timer);
    uv_close((uv_handle_t *)&m->timer, timer_closed);
}

static void m_connected(void *arg, px_upconn_t *u)
{
    px_mirror_t *m = arg;
    m->connected = true;
    uv_buf_t b = uv_buf_init((char *)m->out.data, (unsigned)m->out.len);
    px_up_write(u, &b, 1);
    wf_buf_free(&m->out);
}

static void m_failed(void *arg, px_upconn_t *u, int err, bool connecting)
{
    px_mirror_t *m = arg;
    (void)u;
    (void)connecting;
    m->up = NULL; /* the pool closes it */
    /* A response delimited by the server's close ends here, whole. */
    mirror_end(m, m->head_done && err == UV_EOF && px_http1_body_eof(&m->body) == 0);
}

/* Read the response and drop it; the connection is reusable once it is read whole. */
static void m_data(void *arg, px_upconn_t *u)
{
    px_mirror_t *m = arg;
    while (!m->head_done) {
        px_http1_header_t hdrs[MIRROR_MAX_HEADERS];
        px_http1_head_t h;
        px_http1_error_t err;
        int n = px_http1_parse_response((const char *)u->rbuf.data + u->rpos, u->rbuf.len - u->rpos,
                                        PX_HTTP1_M_OTHER, NULL, hdrs, MIRROR_MAX_HEADERS, &h, &err);
        if (n == PX_HTTP1_INCOMPLETE) {
            return;
        }
        if (n < 0 || h.body == PX_HTTP1_BODY_TUNNEL) {
            mirror_end(m, false);
            return;
        }
        u->rpos += (size_t)n;
        if (h.status < 200) {
            continue;
        }
        px_http1_body_init(&m->body, &h, NULL);
        m->keep_alive = (h.flags & PX_HTTP1_F_KEEP_ALIVE) != 0;
        m->head_done = true;
    }
    while (!px_http1_body_done(&m->body)) {
        size_t used = 0;
        wf_str_t data = {NULL, 0};
        if (px_http1_body_feed(&m->body, (const char *)u->rbuf.data + u->rpos,
                               u->rbuf.len - u->rpos, &used, &data) < 0) {
            mirror_end(m, false);
            return;
        }
        u->rpos += used;
        if (used == 0 && data.len == 0) {
            return;
        }
    }
    mirror_end(m, true);
}

static const px_up_handler_t mirror_handler = {
    .connected = m_connected,
    .failed = m_failed,
    .data = m_data,
    .written = NULL,
};

static void timer_cb(uv_timer_t *t)
{
    mirror_end(t->data, false);
}

void px_mirror_authority(wf_str_t a, wf_buf_t *out)
{
    size_t host_len = a.len;
    for (size_t i = a.len; i > 0; i--) {
        if (a.p[i - 1] == ':') {
            host_len = i - 1;
            break;
        }
        if (a.p[i - 1] < '0' || a.p[i - 1] > '9') {
            break;
        }
    }
    wf_buf_append(out, a.p, host_len);
    wf_buf_puts(out, "-shadow");
    wf_buf_append(out, a.p + host_len, a.len - host_len);
}

px_mirror_t *px_mirror_send(px_worker_t *w, px_gen_t *gen, px_pool_t *pool, const void *head,
                            size_t head_len, uint64_t timeout_ms)
{
    px_mirror_t *m = wf_calloc(1, sizeof(*m));
    m->w = w;
    m->held = true;
    m->gen = gen;
    gen->users++;
    uv_timer_init(&w->loop, &m->timer);
    m->timer.data = m;
    m->next = w->mirrors;
    if (w->mirrors != NULL) {
        w->mirrors->prev = m;
    }
    w->mirrors = m;
    wf_buf_append(&m->out, head, head_len);
    uv_timer_start(&m->timer, timer_cb, timeout_ms, 0);
    bool reused = false;
    /* No waiting for a connection: a copy that would queue is dropped (counted failed). */
    if (px_pool_acquire(pool, &mirror_handler, m, NULL, &m->up, &reused) != 0) {
        m->up = NULL;
        mirror_end(m, false);
        return m;
    }
    if (reused) {
        m_connected(m, m->up);
    }
    return m;
}

void px_mirror_body(px_mirror_t *m, const uv_buf_t *bufs, unsigned n)
{
    if (m->ended) {
        return;
    }
    if (m->connected) {
        px_up_write(m->up, bufs, n);
    } else {
        for (unsigned i = 0; i < n; i++) {
            wf_buf_append(&m->out, bufs[i].base, bufs[i].len);
        }
    }
    if (m->out.len + (m->connected ? px_up_queued(m->up) : 0) > PX_MIRROR_MAX_QUEUED) {
        mirror_end(m, false); /* too far behind the real request */
    }
}

void px_mirror_release(px_mirror_t *m, bool complete)
{
    m->held = false;
    m->request_done = complete;
    if (!complete && !m->ended) {
        mirror_end(m, false);
    }
    if (m->timer_closed) {
        mirror_free(m);
    }
}

void px_mirror_abort_all(px_worker_t *w)
{
    while (w->mirrors != NULL) {
        mirror_end(w->mirrors, false);
    }
}
