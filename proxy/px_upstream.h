/*
 * px_upstream.h - upstream connections and their keep-alive pool.
 *
 * A pool holds the connections of one worker to one upstream address. px_pool_acquire hands
 * out an idle connection (most recently used first, so the others age out) or starts a new one;
 * the user gets events through a px_up_handler_t until it gives the connection back with
 * px_pool_release, saying whether it may carry another request. A connection is never reused
 * after a framing error, a close-delimited response, leftover bytes, or an error: the caller
 * decides reusability; the pool also drops idle connections the server closes and those idle
 * longer than the idle timeout. Connect attempts time out after connect_timeout_ms.
 *
 * Received bytes stay in u->rbuf[u->rpos..len) until the user advances u->rpos; the pool
 * compacts the buffer between reads. One pool and its connections belong to one loop thread.
 *
 * mTLS (px_tls.h): a pool given px_pool_set_tls opens TLS connections to its address (the
 * mesh's auto mTLS decides per connection: TLS when the proxy has a certificate); such a
 * connection reports connected only after a verified handshake, and a failed handshake is a
 * failed connect. The pool keeps the last session ticket one of its connections received and
 * offers it to the next connection it opens (TLS 1.3 resumption).
 *
 * Circuit breaking (Envoy's cluster circuit breakers): pools of one cluster share a
 * px_pool_limits_t (atomics, shared by every worker). When no idle connection is there and
 * max_connections are open cluster-wide, a request waits in its pool's FIFO (a px_pool_wait_t
 * the caller owns) while fewer than max_pending requests wait cluster-wide, else acquire
 * answers PX_POOL_OVERFLOW. As Envoy does, a pool holding no connection at all may always open
 * one, so a waiting request always has a connection of its own pool that will free up. A
 * waiter gets a connection when one of its pool is released reusable (handed over on the
 * connection's next timer tick) or closes (a new one is opened for it).
 */
#ifndef PX_UPSTREAM_H
#define PX_UPSTREAM_H

#include "px_tls.h"
#include "px_transport.h"
#include "wf_buf.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct px_upconn px_upconn_t;
typedef struct px_pool px_pool_t;

/* acquire's answers besides 0 and uv errors. */
#define PX_POOL_QUEUED 1           /* waiting: h->connected (with *wait->out set) or h->failed */
#define PX_POOL_OVERFLOW (-0x7F01) /* the pending queue is full: Envoy's UO */

/* Limits shared by the pools of one cluster, every worker (relaxed atomics). */
typedef struct {
    uint32_t max_connections;
    uint32_t max_pending;
    uint32_t max_requests_per_connection; /* 0 = unlimited */
    _Atomic uint32_t cx_open;             /* connections open in every pool sharing these */
    _Atomic uint32_t pending;             /* requests waiting in every pool sharing these */
    _Atomic uint64_t cx_overflow;      /* a connection was wanted but max_connections were open */
    _Atomic uint64_t pending_overflow; /* a request refused because max_pending were waiting */
} px_pool_limits_t;

/* How a pool's connections are protected. */
typedef enum {
    PX_POOL_PLAIN = 0,
    PX_POOL_MTLS_AUTO, /* mTLS when the proxy has a certificate, else plaintext */
    PX_POOL_MTLS,      /* mTLS or no connection (ISTIO_MUTUAL) */
} px_pool_tls_mode_t;

typedef struct {
    px_pool_tls_mode_t mode;
    px_tls_ctx_t *ctx;      /* the proxy's contexts; NULL means PLAIN */
    const char *alpn;       /* PX_TLS_ALPN_HTTP by default */
    const wf_str_t *expect; /* identities the server may have (borrowed for the pool's life) */
    uint32_t n_expect;
} px_pool_tls_t;

typedef struct {
    /* A new connection is up (a pooled one is handed out ready: no call). */
    void (*connected)(void *arg, px_upconn_t *u);
    /* Connect failure or timeout (connecting true), or EOF / error on a busy connection. The
     * pool closes u right after: the user must forget it. err is a uv error, UV_ETIMEDOUT for
     * the connect timeout. */
    void (*failed)(void *arg, px_upconn_t *u, int err, bool connecting);
    /* New bytes in u->rbuf after u->rpos. */
    void (*data)(void *arg, px_upconn_t *u);
    /* A queued write completed: the write queue may be below the user's threshold. */
    void (*written)(void *arg, px_upconn_t *u);
} px_up_handler_t;

/* HANDOFF: an idle connection given to a waiting request, connected on the next timer tick. */
enum { PX_UP_CONNECTING = 1, PX_UP_BUSY, PX_UP_IDLE, PX_UP_CLOSING, PX_UP_HANDOFF };

struct px_upconn {
    px_transport_t tp;
    uv_timer_t timer; /* connect timeout, then idle timeout */
    px_pool_t *pool;
    int state;
    int open_handles;
    wf_buf_t rbuf;
    size_t rpos;
    uint64_t requests; /* requests this connection carried */
    const px_up_handler_t *h;
    void *arg;
    px_upconn_t *prev, *next; /* idle list */
};

/* A request waiting for a connection; owned by the caller, linked into the pool while queued. */
typedef struct px_pool_wait {
    const px_up_handler_t *h;
    void *arg;
    px_upconn_t **out; /* set to the connection when one is assigned, before any callback */
    px_pool_t *pool;   /* non-NULL while queued */
    struct px_pool_wait *prev, *next;
} px_pool_wait_t;

struct px_pool {
    uv_loop_t *loop;
    struct sockaddr_storage addr;
    uint64_t connect_timeout_ms;
    uint64_t idle_timeout_ms;
    px_upconn_t *idle; /* most recently released first */
    /* Connections closed while the pool was open whose close callbacks have not all run (linked
     * through prev/next like idle): px_pool_close detaches them, since the pool may be freed
     * before those callbacks. */
    px_upconn_t *closing;
    uint32_t n_idle;
    uint32_t n_open;
    bool closed;
    px_pool_limits_t *lim;     /* NULL: unlimited */
    px_pool_wait_t *wait_head; /* FIFO of waiting requests */
    px_pool_wait_t *wait_tail;
    /* Counters of the owner (relaxed atomics, may be NULL). */
    _Atomic uint64_t *cx_total;
    _Atomic uint64_t *cx_active;
    _Atomic uint64_t *cx_connect_fail;
    px_pool_tls_t tls;
    SSL_SESSION *tls_session; /* the last ticket received, offered by the next connection */
};

/* Set up pool p for addr (copied). Counters may be NULL. Never fails. */
void px_pool_init(px_pool_t *p, uv_loop_t *loop, const struct sockaddr *addr,
                  uint64_t connect_timeout_ms, uint64_t idle_timeout_ms);
/* Protect the pool's connections opened from now on with tls (copied; see px_pool_tls_t). */
void px_pool_set_tls(px_pool_t *p, const px_pool_tls_t *tls);

/*
 * A connection for one request, owned by the caller until px_pool_release. *reused is set when
 * it is a pooled, connected one (usable at once); otherwise it is connecting and h->connected
 * or h->failed follows. Returns 0 or a negative uv error (socket could not even be created).
 * With limits: when no connection may be opened now, wait (may be NULL: no waiting) is queued
 * and PX_POOL_QUEUED returned (*out stays NULL until a connection is assigned), or
 * PX_POOL_OVERFLOW when max_pending requests already wait.
 */
int px_pool_acquire(px_pool_t *p, const px_up_handler_t *h, void *arg, px_pool_wait_t *wait,
                    px_upconn_t **out, bool *reused);
/* Take a queued wait out of its pool's FIFO (no callback follows). No-op when not queued. */
void px_pool_cancel(px_pool_wait_t *wait);
/* Give u back: kept idle when reusable (and the pool is open), closed otherwise. */
void px_pool_release(px_upconn_t *u, bool reusable);
/* Close the idle connections and refuse to keep more. Busy ones close on release. Waiting
 * requests get h->failed(UV_ECANCELED, connecting). */
void px_pool_close(px_pool_t *p);

int px_up_write(px_upconn_t *u, const uv_buf_t *bufs, unsigned n);
size_t px_up_queued(const px_upconn_t *u);
void px_up_read_stop(px_upconn_t *u);
void px_up_read_start(px_upconn_t *u);

#endif
