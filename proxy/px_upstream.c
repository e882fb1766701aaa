/*
 * px_upstream.c - upstream connections and the keep-alive pool (see px_upstream.h).
 *
 * Each connection owns two libuv handles (the TCP transport and a timer); it is freed when both
 * close callbacks have run. Idle connections keep reading so that a server's close (or stray
 * bytes) is seen at once and the connection leaves the pool before anyone reuses it.
 */
#include "px_upstream.h"

#include "wf_alloc.h"
#include "wf_log.h"

#include <string.h>

#define PX_UP_READ_CHUNK 65536

static void up_close(px_upconn_t *u);
static void pool_serve(px_pool_t *p);

static void idle_unlink(px_upconn_t *u)
{
    px_pool_t *p = u->pool;
    if (u->prev != NULL) {
        u->prev->next = u->next;
    } else {
        p->idle = u->next;
    }
    if (u->next != NULL) {
        u->next->prev = u->prev;
    }
    u->prev = u->next = NULL;
    p->n_idle--;
}

static void up_handle_closed(px_upconn_t *u)
{
    if (--u->open_handles == 0) {
        px_pool_t *p = u->pool;
        if (p != NULL) {
            if (u->prev != NULL) {
                u->prev->next = u->next;
            } else {
                p->closing = u->next;
            }
            if (u->next != NULL) {
                u->next->prev = u->prev;
            }
        }
        wf_buf_free(&u->rbuf);
        wf_free(u);
        if (p != NULL && p->wait_head != NULL) {
            /* Its slot under max_connections is free now. */
            pool_serve(p);
        }
    }
}

/* Keep the connection's newest session ticket for the pool's next connection. */
static void keep_session(px_upconn_t *u)
{
    px_pool_t *p = u->pool;
    if (p == NULL || p->closed || u->tp.tls == NULL) {
        return;
    }
    SSL_SESSION *s = px_transport_tls_session(&u->tp);
    if (s != NULL) {
        SSL_SESSION_free(p->tls_session);
        p->tls_session = s;
    }
}

static void tp_closed(px_transport_t *t)
{
    up_handle_closed(t->owner);
}

static void timer_closed(uv_handle_t *h)
{
    up_handle_closed(h->data);
}

static void tp_alloc(px_transport_t *t, size_t suggested, uv_buf_t *buf)
{
    px_upconn_t *u = t->owner;
    if (u->rpos == u->rbuf.len) {
        u->rpos = 0;
        u->rbuf.len = 0;
    }
    char *p = (char *)wf_buf_reserve(&u->rbuf, PX_UP_READ_CHUNK);
    *buf = uv_buf_init(p, PX_UP_READ_CHUNK);
}

static void tp_read(px_transport_t *t, ssize_t nread, const uv_buf_t *buf)
{
    px_upconn_t *u = t->owner;
    if (u->state == PX_UP_HANDOFF) {
        /* Closed (or spoke) before its new user had it: like a failed connect for that one. */
        u->h->failed(u->arg, u, nread < 0 ? (int)nread : UV_ECONNRESET, true);
        up_close(u);
        return;
    }
    if (nread < 0) {
        if (u->state == PX_UP_BUSY) {
            u->h->failed(u->arg, u, (int)nread, false);
        }
        up_close(u);
        return;
    }
    u->rbuf.len += (size_t)nread;
    if (u->state != PX_UP_BUSY) {
        /* Bytes on an idle connection answer no request: the connection is unusable. */
        up_close(u);
        return;
    }
    u->h->data(u->arg, u);
}

static void tp_written(px_transport_t *t, int status)
{
    px_upconn_t *u = t->owner;
    if (u->state == PX_UP_BUSY && u->h->written != NULL) {
        u->h->written(u->arg, u);
    }
}

static void tp_connect(px_transport_t *t, int status)
{
    px_upconn_t *u = t->owner;
    if (u->state != PX_UP_CONNECTING) {
        return;
    }
    uv_timer_stop(&u->timer);
    if (status != 0) {
        if (u->pool->cx_connect_fail != NULL) {
            atomic_fetch_add_explicit(u->pool->cx_connect_fail, 1, memory_order_relaxed);
        }
        u->h->failed(u->arg, u, status, true);
        up_close(u);
        return;
    }
    u->state = PX_UP_BUSY;
    if (px_transport_read_start(&u->tp) != 0) {
        u->h->failed(u->arg, u, UV_ECONNRESET, true);
        up_close(u);
        return;
    }
    u->h->connected(u->arg, u);
}

static const px_transport_cbs_t up_cbs = {
    .on_alloc = tp_alloc,
    .on_read = tp_read,
    .on_written = tp_written,
    .on_connect = tp_connect,
    .on_closed = tp_closed,
};

static void timer_cb(uv_timer_t *tm)
{
    px_upconn_t *u = tm->data;
    if (u->state == PX_UP_CONNECTING) {
        if (u->pool->cx_connect_fail != NULL) {
            atomic_fetch_add_explicit(u->pool->cx_connect_fail, 1, memory_order_relaxed);
        }
        u->h->failed(u->arg, u, UV_ETIMEDOUT, true);
        up_close(u);
    } else if (u->state == PX_UP_IDLE) {
        up_close(u);
    } else if (u->state == PX_UP_HANDOFF) {
        u->state = PX_UP_BUSY;
        u->h->connected(u->arg, u);
    }
}

static void up_close(px_upconn_t *u)
{
    if (u->state == PX_UP_CLOSING) {
        return;
    }
    if (u->state == PX_UP_IDLE) {
        idle_unlink(u);
    }
    keep_session(u);
    u->state = PX_UP_CLOSING;
    u->pool->n_open--;
    if (u->pool->lim != NULL) {
        atomic_fetch_sub_explicit(&u->pool->lim->cx_open, 1, memory_order_relaxed);
    }
    if (u->pool->cx_active != NULL) {
        atomic_fetch_sub_explicit(u->pool->cx_active, 1, memory_order_relaxed);
    }
    if (u->pool->closed) {
        /* A closed pool may be freed before the close callbacks run; it has no waiters to
         * serve with the freed slot anyway. */
        u->pool = NULL;
    } else {
        /* Until its callbacks run: px_pool_close lets go of it too (the pool may be retired
         * with its generation in the meantime). */
        u->prev = NULL;
        u->next = u->pool->closing;
        if (u->next != NULL) {
            u->next->prev = u;
        }
        u->pool->closing = u;
    }
    uv_timer_stop(&u->timer);
    uv_close((uv_handle_t *)&u->timer, timer_closed);
    px_transport_close(&u->tp);
}

void px_pool_init(px_pool_t *p, uv_loop_t *loop, const struct sockaddr *addr,
                  uint64_t connect_timeout_ms, uint64_t idle_timeout_ms)
{
    memset(p, 0, sizeof(*p));
    p->loop = loop;
    memcpy(&p->addr, addr,
           addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    p->connect_timeout_ms = connect_timeout_ms;
    p->idle_timeout_ms = idle_timeout_ms;
}

void px_pool_set_tls(px_pool_t *p, const px_pool_tls_t *tls)
{
    p->tls = *tls;
    if (p->tls.alpn == NULL) {
        p->tls.alpn = PX_TLS_ALPN_HTTP;
    }
    if (p->tls.ctx == NULL) {
        p->tls.mode = PX_POOL_PLAIN;
    }
}

/* Make u's transport a TLS client when the pool's mode says so. 0, or WF_E_NOTFOUND when
 * mTLS is required and the proxy has no certificate. */
static int conn_tls(px_pool_t *p, px_upconn_t *u)
{
    if (p->tls.mode == PX_POOL_PLAIN ||
        (p->tls.mode == PX_POOL_MTLS_AUTO && !px_tls_ctx_ready(p->tls.ctx))) {
        return 0;
    }
    return px_transport_tls_connect(&u->tp, p->tls.ctx, p->tls.alpn, p->tls.expect, p->tls.n_expect,
                                    p->tls_session);
}

/* Open a new connection for (h, arg), its max_connections slot already taken (may_open).
 * Returns 0 or a negative uv error. */
static int open_conn(px_pool_t *p, const px_up_handler_t *h, void *arg, px_upconn_t **out)
{
    px_upconn_t *u = wf_calloc(1, sizeof(*u));
    int rc = px_transport_init(p->loop, &u->tp, &up_cbs, u);
    if (rc != 0) {
        wf_free(u);
        if (p->lim != NULL) {
            atomic_fetch_sub_explicit(&p->lim->cx_open, 1, memory_order_relaxed);
        }
        return rc;
    }
    uv_timer_init(p->loop, &u->timer);
    u->timer.data = u;
    u->open_handles = 2;
    u->pool = p;
    u->h = h;
    u->arg = arg;
    u->state = PX_UP_CONNECTING;
    u->requests = 1;
    p->n_open++;
    if (p->cx_total != NULL) {
        atomic_fetch_add_explicit(p->cx_total, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(p->cx_active, 1, memory_order_relaxed);
    }
    rc = conn_tls(p, u);
    if (rc != 0) {
        rc = UV_EPROTO; /* ISTIO_MUTUAL without a certificate: no connection can be had */
    } else {
        rc = px_transport_connect(&u->tp, (const struct sockaddr *)&p->addr);
    }
    if (rc != 0) {
        /* Report it like a refused connect, asynchronously through the same path. */
        if (p->cx_connect_fail != NULL) {
            atomic_fetch_add_explicit(p->cx_connect_fail, 1, memory_order_relaxed);
        }
        u->state = PX_UP_BUSY; /* so up_close does not look for it in the idle list */
        up_close(u);
        return rc;
    }
    if (p->connect_timeout_ms > 0) {
        /* libuv times from the loop's cached clock, read before this turn's callbacks: on a
         * busy loop that is milliseconds old and the timeout would fire early. Once per new
         * connection, a clock read is cheap. */
        uv_update_time(p->loop);
        uv_timer_start(&u->timer, timer_cb, p->connect_timeout_ms, 0);
    }
    *out = u;
    return 0;
}

/* Whether a new connection may be opened now; when it may, its slot under max_connections is
 * taken (open_conn's connection gives it back when it closes). Refusals count as Envoy's
 * cx_overflow. */
static bool may_open(px_pool_t *p)
{
    px_pool_limits_t *l = p->lim;
    if (l == NULL) {
        return true;
    }
    uint32_t cur = atomic_load_explicit(&l->cx_open, memory_order_relaxed);
    do {
        if (cur >= l->max_connections) {
            atomic_fetch_add_explicit(&l->cx_overflow, 1, memory_order_relaxed);
            if (p->n_open > 0) {
                return false;
            }
            /* Other pools of the cluster hold every slot: one connection of this pool's own
             * keeps its waiters from waiting for a release that would never come. */
            atomic_fetch_add_explicit(&l->cx_open, 1, memory_order_relaxed);
            return true;
        }
    } while (!atomic_compare_exchange_weak_explicit(&l->cx_open, &cur, cur + 1,
                                                    memory_order_relaxed, memory_order_relaxed));
    return true;
}

static px_pool_wait_t *wait_pop(px_pool_t *p)
{
    px_pool_wait_t *wt = p->wait_head;
    if (wt == NULL) {
        return NULL;
    }
    p->wait_head = wt->next;
    if (p->wait_head != NULL) {
        p->wait_head->prev = NULL;
    } else {
        p->wait_tail = NULL;
    }
    wt->next = wt->prev = NULL;
    wt->pool = NULL;
    atomic_fetch_sub_explicit(&p->lim->pending, 1, memory_order_relaxed);
    return wt;
}

/* Give connected connection u (not idle-listed) to waiter wt: its handler runs on the next
 * timer tick, outside the stack of whoever released u. */
static void hand_off(px_upconn_t *u, px_pool_wait_t *wt)
{
    u->h = wt->h;
    u->arg = wt->arg;
    u->requests++;
    u->state = PX_UP_HANDOFF;
    *wt->out = u;
    uv_timer_stop(&u->timer);
    uv_timer_start(&u->timer, timer_cb, 0, 0);
}

/* Serve waiters while connections may be had for them. */
static void pool_serve(px_pool_t *p)
{
    while (p->wait_head != NULL && !p->closed) {
        if (p->idle != NULL) {
            px_upconn_t *u = p->idle;
            idle_unlink(u);
            hand_off(u, wait_pop(p));
            continue;
        }
        if (!may_open(p)) {
            return;
        }
        px_pool_wait_t *wt = wait_pop(p);
        px_upconn_t *u = NULL;
        int rc = open_conn(p, wt->h, wt->arg, &u);
        if (rc != 0) {
            wt->h->failed(wt->arg, NULL, rc, true);
            continue;
        }
        *wt->out = u;
    }
}

int px_pool_acquire(px_pool_t *p, const px_up_handler_t *h, void *arg, px_pool_wait_t *wait,
                    px_upconn_t **out, bool *reused)
{
    *out = NULL;
    *reused = false;
    if (p->idle != NULL) {
        px_upconn_t *u = p->idle;
        idle_unlink(u);
        uv_timer_stop(&u->timer);
        u->state = PX_UP_BUSY;
        u->h = h;
        u->arg = arg;
        u->requests++;
        *out = u;
        *reused = true;
        return 0;
    }
    if (may_open(p)) {
        return open_conn(p, h, arg, out);
    }
    px_pool_limits_t *l = p->lim;
    if (wait == NULL ||
        atomic_fetch_add_explicit(&l->pending, 1, memory_order_relaxed) >= l->max_pending) {
        if (wait != NULL) {
            atomic_fetch_sub_explicit(&l->pending, 1, memory_order_relaxed);
        }
        atomic_fetch_add_explicit(&l->pending_overflow, 1, memory_order_relaxed);
        return PX_POOL_OVERFLOW;
    }
    wait->h = h;
    wait->arg = arg;
    wait->out = out;
    wait->pool = p;
    wait->next = NULL;
    wait->prev = p->wait_tail;
    if (p->wait_tail != NULL) {
        p->wait_tail->next = wait;
    } else {
        p->wait_head = wait;
    }
    p->wait_tail = wait;
    return PX_POOL_QUEUED;
}

void px_pool_cancel(px_pool_wait_t *wait)
{
    px_pool_t *p = wait->pool;
    if (p == NULL) {
        return;
    }
    if (wait->prev != NULL) {
        wait->prev->next = wait->next;
    } else {
        p->wait_head = wait->next;
    }
    if (wait->next != NULL) {
        wait->next->prev = wait->prev;
    } else {
        p->wait_tail = wait->prev;
    }
    wait->next = wait->prev = NULL;
    wait->pool = NULL;
    atomic_fetch_sub_explicit(&p->lim->pending, 1, memory_order_relaxed);
}

void px_pool_release(px_upconn_t *u, bool reusable)
{
    px_pool_t *p = u->pool;
    if (u->state != PX_UP_BUSY) {
        up_close(u);
        return;
    }
    if (!reusable || p->closed || u->rpos != u->rbuf.len || px_up_queued(u) != 0 ||
        (p->lim != NULL && p->lim->max_requests_per_connection > 0 &&
         u->requests >= p->lim->max_requests_per_connection)) {
        up_close(u);
        return;
    }
    keep_session(u);
    u->rpos = 0;
    wf_buf_free(&u->rbuf); /* an idle connection holds no read buffer */
    u->h = NULL;
    u->arg = NULL;
    u->state = PX_UP_IDLE;
    if (px_transport_read_start(&u->tp) != 0) {
        u->state = PX_UP_BUSY;
        up_close(u);
        return;
    }
    u->next = p->idle;
    u->prev = NULL;
    if (p->idle != NULL) {
        p->idle->prev = u;
    }
    p->idle = u;
    p->n_idle++;
    if (p->wait_head != NULL) {
        idle_unlink(u);
        hand_off(u, wait_pop(p));
        return;
    }
    if (p->idle_timeout_ms > 0) {
        uv_timer_start(&u->timer, timer_cb, p->idle_timeout_ms, 0);
    }
}

void px_pool_close(px_pool_t *p)
{
    p->closed = true;
    for (px_upconn_t *u = p->closing, *next; u != NULL; u = next) {
        next = u->next;
        u->pool = NULL;
        u->prev = u->next = NULL;
    }
    p->closing = NULL;
    while (p->idle != NULL) {
        up_close(p->idle);
    }
    SSL_SESSION_free(p->tls_session);
    p->tls_session = NULL;
    px_pool_wait_t *wt;
    while ((wt = wait_pop(p)) != NULL) {
        wt->h->failed(wt->arg, NULL, UV_ECANCELED, true);
    }
}

int px_up_write(px_upconn_t *u, const uv_buf_t *bufs, unsigned n)
{
    return px_transport_write(&u->tp, bufs, n);
}

size_t px_up_queued(const px_upconn_t *u)
{
    return px_transport_queued(&u->tp);
}

void px_up_read_stop(px_upconn_t *u)
{
    px_transport_read_stop(&u->tp);
}

void px_up_read_start(px_upconn_t *u)
{
    if (px_transport_read_start(&u->tp) != 0) {
        WF_LOG(WF_DEBUG, "proxy", "upstream read_start failed");
    }
}
