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
 */
#ifndef PX_UPSTREAM_H
#define PX_UPSTREAM_H

#include "px_transport.h"
#include "wf_buf.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct px_upconn px_upconn_t;
typedef struct px_pool px_pool_t;

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

enum { PX_UP_CONNECTING = 1, PX_UP_BUSY, PX_UP_IDLE, PX_UP_CLOSING };

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

struct px_pool {
    uv_loop_t *loop;
    struct sockaddr_storage addr;
    uint64_t connect_timeout_ms;
    uint64_t idle_timeout_ms;
    px_upconn_t *idle; /* most recently released first */
    uint32_t n_idle;
    uint32_t n_open;
    bool closed;
    /* Counters of the owner (relaxed atomics, may be NULL). */
    _Atomic uint64_t *cx_total;
    _Atomic uint64_t *cx_active;
    _Atomic uint64_t *cx_connect_fail;
};

/* Set up pool p for addr (copied). Counters may be NULL. Never fails. */
void px_pool_init(px_pool_t *p, uv_loop_t *loop, const struct sockaddr *addr,
                  uint64_t connect_timeout_ms, uint64_t idle_timeout_ms);
/*
 * A connection for one request, owned by the caller until px_pool_release. *reused is set when
 * it is a pooled, connected one (usable at once); otherwise it is connecting and h->connected
 * or h->failed follows. Returns 0 or a negative uv error (socket could not even be created).
 */
int px_pool_acquire(px_pool_t *p, const px_up_handler_t *h, void *arg, px_upconn_t **out,
                    bool *reused);
/* Give u back: kept idle when reusable (and the pool is open), closed otherwise. */
void px_pool_release(px_upconn_t *u, bool reusable);
/* Close the idle connections and refuse to keep more. Busy ones close on release. */
void px_pool_close(px_pool_t *p);

int px_up_write(px_upconn_t *u, const uv_buf_t *bufs, unsigned n);
size_t px_up_queued(const px_upconn_t *u);
void px_up_read_stop(px_upconn_t *u);
void px_up_read_start(px_upconn_t *u);

#endif
