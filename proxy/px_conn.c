/*
 * px_conn.c - downstream HTTP/1.1 connections (see px_conn.h).
 *
 * Buffers: each connection reads into its own wf_buf_t (rbuf); the head parser runs over the
 * unconsumed part and the forwarded head is re-serialised at once, so no slice into rbuf
 * outlives the call that parsed it and rbuf may be compacted or grown before every read. Body
 * bytes are sliced by the framer and written on (px_transport_write copies only what the
 * socket does not take at once), so a body is never held whole: at most about PX_HWM bytes
 * of it wait in a write queue, and a read stops while the other side's queue is above that.
 *
 * Request life: C_HEAD (parsing) -> C_REQUEST (upstream acquired, request body streamed,
 * response head parsed and re-serialised, response body streamed) -> back to C_HEAD for the
 * next request, or C_LINGER (sending side shut down, reads discarded for a short while so the
 * peer reads our last answer rather than a reset) and closed.
 */
#include "px_conn.h"

#include "px_authz.h"
#include "px_http1.h"
#include "px_mirror.h"
#include "px_route.h"
#include "px_tracing.h"
#include "px_tcp.h"
#include "px_tunnel.h"
#include "wf_alloc.h"
#include "wf_clock.h"
#include "wf_log.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define PX_MAX_HEADERS 100
#define PX_READ_CHUNK 65536
#define PX_HWM (256 * 1024) /* stop reading the other side while a write queue is above this */
#define PX_LINGER_MS 2000
/* Request body bytes kept for a retry (Envoy's default per-connection buffer limit): a request
 * whose body outgrows it is not retried once body bytes have been sent. */
#define PX_REPLAY_MAX (1024 * 1024)
#define PX_MAX_EXTRA 24 /* added header fields without a heap array */
/* How long a mirrored copy may take when its route sets no timeout. */
#define PX_MIRROR_TIMEOUT_MS 10000

enum { C_HEAD = 0, C_REQUEST, C_LINGER, C_TUNNEL };
/* What conn->timer runs: the idle / headers / linger timeouts of the connection, or in C_REQUEST
 * the fault delay, a try's timeout, or the backoff before the next try. */
enum { T_NONE = 0, T_IDLE, T_HEADERS, T_LINGER, T_RETRY, T_DELAY, T_TRY };

struct px_conn {
    px_transport_t tp;
    uv_timer_t timer;    /* see T_*; one of them at a time */
    int timer_kind;      /* T_* */
    uv_timer_t rq_timer; /* the route's timeout, from the end of the request on */
    bool rq_timer_on;
    int open_handles;
    px_worker_t *w;
    px_conn_t *prev, *next;
    int state;
    bool closing;
    bool in_process; /* inside conn_process: finish_request must not re-enter it */
    char peer_ip[64];
    bool outbound;       /* the app's own requests (or a gateway's), routed with the snapshot */
    uint32_t route_port; /* a gateway server's port; 0 = the request authority's port */
    wf_buf_t rbuf;
    size_t rpos;
    px_http1_header_t hdrs[PX_MAX_HEADERS];
    wf_buf_t scratch; /* serialised heads, header values built for forwarding */

    /* The request in flight. */
    wf_buf_t meta; /* method, authority, target, request id, peer metadata, CORS origin */
    size_t m_method, m_auth, m_path, m_rid, m_peer;
    size_t m_origin_off, m_origin; /* an allowed CORS origin (cors_request), 0 = none */
    px_http1_method_t method;
    int minor;
    bool req_keep_alive;
    px_http1_body_t qbody;
    bool q_chunked; /* re-chunk the body towards the upstream */
    bool q_done;
    /* What each try sends: the serialised head, then (while replay_body) the framed body bytes
     * sent so far, so that a retry repeats them on a new connection. */
    wf_buf_t replay;
    bool replay_body; /* the route retries after bytes were sent: keep body bytes */
    bool replay_lost; /* body bytes were sent and not kept: no more tries */
    wf_buf_t rw;      /* a rewritten request-target */
    px_pool_t *pool;  /* where the request goes */
    const char *up_cluster;
    char up_host[96];
    px_gen_t *gen;               /* the snapshot generation the request runs on (px_worker.h) */
    px_mirror_t *mirror;         /* a mirrored copy still fed with the request body */
    px_pool_t *mirror_pool;      /* a copy to start with the first try: its pool ... */
    wf_buf_t mirror_head;        /* ... and its head */
    px_ob_cluster_t *oc;         /* outbound: the chosen cluster's worker state */
    const px_route_t *route;     /* outbound: the route (retries, timeouts, headers, CORS) */
    const px_route_dest_t *dest; /* outbound: the destination picked (its header ops) */
    uint32_t retries;            /* retries done for this request */
    uint64_t delay_ms;           /* fault delay before the first try */
    uint32_t abort_status;       /* fault abort (after the delay when there is one) */
    uint32_t *active_slot;       /* outbound: the chosen endpoint's in-flight count */
    const px_endpoint_t *up_ep;  /* outbound: the endpoint chosen last (telemetry) */
    px_upconn_t *up;
    bool up_ready;
    bool up_used;     /* an upstream was chosen (telemetry) */
    bool up_reusable; /* the response's framing allows reuse */
    bool s_head_done;
    bool s_head_pending; /* the response head waits in scratch to go out with body bytes */
    px_http1_body_t sbody;
    bool s_chunked;
    bool s_done;
    bool close_after;
    int status;
    uint64_t bytes_in, bytes_out;
    int64_t start_wall_ns, start_mono_ns;
    uint32_t rflags; /* px_rflag_t bits */
    bool reported;   /* px_request_done was called for this request */

    /* Load balancing (px_lb.h). */
    px_lb_key_t lbkey;    /* outbound: the consistent-hash key */
    px_pool_wait_t pwait; /* queued for a connection (circuit breaker pending) */
    bool retry_held;      /* holds one of the cluster's max_retries */
    bool traced;          /* trace holds this request's context */
    px_trace_ctx_t trace;
    size_t m_ua;                 /* the user agent, after the peer metadata in meta */
    size_t m_rpeer_off, m_rpeer; /* outbound: the response's peer metadata */
    bool upgrade;                /* the request asked for an Upgrade (forwarded with it) */
    /* C_TUNNEL: after a 101 or an answered CONNECT (px_tunnel.h) */
    px_tunnel_t *tunnel;
    px_pool_t *own_pool;    /* a passthrough CONNECT's own address */
    bool up_mtls;           /* the request's upstream connection is mTLS ... */
    char up_principal[256]; /* ... and its server proved this identity (telemetry) */
    /* Authorization (px_authz.h): the address the connection came to, looked up once, and the
     * request path as normalized for the policies when that changed it. */
    char local_ip[64];
    bool local_ip_set;
    wf_buf_t npath;
};

static void conn_process(px_conn_t *c);
static void conn_close(px_conn_t *c);
static void conn_update_reading(px_conn_t *c);
static void finish_request(px_conn_t *c);
static void conn_arm_timer(px_conn_t *c);
static void local_reply(px_conn_t *c, int status, const char *body, unsigned flags, bool close);

static const char *reason_phrase(int status)
{
    static const struct {
        int status;
        const char *reason;
    } table[] = {
        {100, "Continue"},
        {200, "OK"},
        {301, "Moved Permanently"},
        {302, "Found"},
        {303, "See Other"},
        {307, "Temporary Redirect"},
        {308, "Permanent Redirect"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {408, "Request Timeout"},
        {413, "Payload Too Large"},
        {414, "URI Too Long"},
        {429, "Too Many Requests"},
        {431, "Request Header Fields Too Large"},
        {500, "Internal Server Error"},
        {501, "Not Implemented"},
        {502, "Bad Gateway"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
        {505, "HTTP Version Not Supported"},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (table[i].status == status) {
            return table[i].reason;
        }
    }
    return "Unknown";
}

static size_t unconsumed(const px_conn_t *c)
{
    return c->rbuf.len - c->rpos;
}

static void down_write(px_conn_t *c, const uv_buf_t *bufs, unsigned n)
{
    if (px_transport_write(&c->tp, bufs, n) != 0) {
        /* The read side reports the broken connection; nothing more can be sent. */
        c->close_after = true;
    }
}

/* Body bytes towards the upstream (u) or the client (u NULL), re-chunked when chunked. A
 * response head still pending goes in the same write (one syscall for a small response). */
/* data as framed on the wire (a chunk when chunked) into b[0..3); line holds the chunk size
 * line. Returns the number of buffers. */
static unsigned frame_chunk(uv_buf_t *b, char line[24], bool chunked, wf_str_t data)
{
    unsigned n = 0;
    if (chunked) {
        int l = snprintf(line, 24, "%zx\r\n", data.len);
        b[n++] = uv_buf_init(line, (unsigned)l);
    }
    b[n++] = uv_buf_init((char *)data.p, (unsigned)data.len);
    if (chunked) {
        b[n++] = uv_buf_init("\r\n", 2);
    }
    return n;
}

static void write_chunk(px_conn_t *c, px_upconn_t *u, bool chunked, wf_str_t data)
{
    char line[24];
    uv_buf_t b[4];
    unsigned n = 0;
    if (u == NULL && c->s_head_pending) {
        b[n++] = uv_buf_init((char *)c->scratch.data, (unsigned)c->scratch.len);
        c->s_head_pending = false;
    }
    n += frame_chunk(b + n, line, chunked, data);
    if (u != NULL) {
        px_up_write(u, b, n);
    } else {
        down_write(c, b, n);
    }
}

static wf_str_t meta_slice(const px_conn_t *c, size_t off, size_t len)
{
    return (wf_str_t){len ? (const char *)c->meta.data + off : "", len};
}

/* Report the request once. Called before its last bytes are handed to the client, so that
 * whoever has read a whole response also sees it counted. */
static void report(px_conn_t *c)
{
    if (c->reported) {
        return;
    }
    c->reported = true;
    px_worker_t *w = c->w;
    px_request_info_t info;
    memset(&info, 0, sizeof(info));
    info.inbound = !c->outbound;
    info.start_wall_ns = c->start_wall_ns;
    info.duration_ns = wf_mono_ns() - c->start_mono_ns;
    size_t off = 0;
    info.method = meta_slice(c, off, c->m_method);
    off += c->m_method;
    info.authority = meta_slice(c, off, c->m_auth);
    off += c->m_auth;
    info.path = meta_slice(c, off, c->m_path);
    off += c->m_path;
    info.request_id = meta_slice(c, off, c->m_rid);
    off += c->m_rid;
    info.peer = meta_slice(c, off, c->m_peer);
    off += c->m_peer;
    info.user_agent = meta_slice(c, off, c->m_ua);
    off += c->m_ua;
    info.upstream_peer = meta_slice(c, c->m_rpeer_off, c->m_rpeer);
    info.trace = c->traced ? &c->trace : NULL;
    info.minor_version = c->minor;
    info.status = c->status;
    info.bytes_in = c->bytes_in;
    info.bytes_out = c->bytes_out;
    info.flags = c->rflags;
    info.upstream_cluster = wf_str(c->up_cluster != NULL ? c->up_cluster : "");
    info.upstream_host = wf_str(c->up_used ? c->up_host : "");
    info.upstream_endpoint = c->up_ep;
    /* A request answered before the router picked a cluster (a fault abort) still went to the
     * route's service: Istio reports it as destination_service, the workload unknown. */
    info.upstream_service =
        c->oc != NULL ? c->oc->cluster->host
        : c->route != NULL && c->route->action == PX_ACTION_ROUTE && c->route->n_route > 0
            ? c->route->route[0].dest.host
            : wf_str("");
    if (c->active_slot != NULL) {
        (*c->active_slot)--;
        c->active_slot = NULL;
    }
    if (c->oc != NULL) {
        atomic_fetch_add_explicit(&c->oc->st->rq_total, 1, memory_order_relaxed);
        if (c->retry_held) {
            px_lb_retry_release(c->oc->lb);
            c->retry_held = false;
        }
    }
    info.downstream_ip = wf_str(c->peer_ip);
    if (c->outbound) {
        info.mtls = c->up_mtls;
        info.peer_principal = wf_str(c->up_principal);
    } else {
        info.mtls = px_transport_is_tls(&c->tp);
        info.peer_principal = wf_str(c->tp.peer_identity != NULL ? c->tp.peer_identity : "");
    }
    px_request_done(w, &info);
}

/* The request will pass no more bytes to its mirrored copy (complete: all of them were). */
static void mirror_done(px_conn_t *c, bool complete)
{
    if (c->mirror != NULL) {
        px_mirror_release(c->mirror, complete);
        c->mirror = NULL;
    }
}

static void reset_request(px_conn_t *c)
{
    mirror_done(c, false);
    c->mirror_pool = NULL;
    wf_buf_reset(&c->mirror_head);
    px_gen_release(c->w, c->gen); /* after the upstream connection went back to its pool */
    c->gen = NULL;
    c->up_mtls = false;
    c->up_principal[0] = '\0';
    wf_buf_reset(&c->meta);
    wf_buf_reset(&c->replay);
    c->replay_body = c->replay_lost = false;
    wf_buf_reset(&c->rw);
    wf_buf_reset(&c->npath);
    c->pool = NULL;
    c->up_cluster = NULL;
    c->up_host[0] = '\0';
    c->oc = NULL;
    c->route = NULL;
    c->dest = NULL;
    c->retries = 0;
    c->delay_ms = 0;
    c->abort_status = 0;
    if (c->rq_timer_on) {
        uv_timer_stop(&c->rq_timer);
        c->rq_timer_on = false;
    }
    if (c->timer_kind >= T_RETRY) {
        uv_timer_stop(&c->timer);
        c->timer_kind = T_NONE;
    }
    c->active_slot = NULL;
    c->up_ep = NULL;
    c->m_method = c->m_auth = c->m_path = c->m_rid = c->m_peer = c->m_ua = c->m_rpeer = 0;
    c->m_origin = c->m_origin_off = c->m_rpeer_off = 0;
    c->traced = false;
    c->method = PX_HTTP1_M_OTHER;
    c->minor = 1;
    c->req_keep_alive = false;
    c->q_chunked = c->q_done = false;
    c->up = NULL;
    c->up_ready = c->up_used = c->up_reusable = false;
    c->s_head_done = c->s_chunked = c->s_done = c->s_head_pending = false;
    c->close_after = false;
    c->status = 0;
    c->bytes_in = c->bytes_out = 0;
    c->rflags = 0;
    c->reported = false;
    c->lbkey.set = c->lbkey.set_cookie = false;
    c->retry_held = false;
    c->upgrade = false;
}

static void linger_timer_cb(uv_timer_t *t)
{
    conn_close(t->data);
}

/* Stop sending once queued bytes are out; discard what the peer still sends. */
static void conn_linger(px_conn_t *c)
{
    c->state = C_LINGER;
    px_transport_shutdown(&c->tp);
    c->timer_kind = T_LINGER;
    uv_timer_start(&c->timer, linger_timer_cb, PX_LINGER_MS, 0);
    conn_update_reading(c);
}

/* The request ended (answered, refused or abandoned): report it and go on with the next. */
static void finish_request(px_conn_t *c)
{
    if (c->up != NULL) {
        px_pool_release(c->up, c->up_reusable && c->q_done && c->s_done);
        c->up = NULL;
    }
    if (!c->q_done || c->w->draining) {
        /* Unread request body: the next request's first byte cannot be found. */
        c->close_after = true;
    }
    report(c);
    bool close_after = c->close_after;
    reset_request(c);
    if (close_after) {
        conn_linger(c);
        return;
    }
    c->state = C_HEAD;
    if (!c->in_process) {
        conn_process(c);
    }
}

/* Answer the request from the proxy itself (an error, a refusal, a direct response or a
 * redirect) and end it. extra: header lines ("Name: v\r\n") to add, or "". */
static void local_reply_ex(px_conn_t *c, int status, const char *body, unsigned flags, bool close,
                           const char *extra)
{
    px_pool_cancel(&c->pwait);
    if (c->up != NULL) {
        px_pool_release(c->up, false);
        c->up = NULL;
    }
    if (close || !c->req_keep_alive || c->w->draining || !c->q_done) {
        c->close_after = true;
    }
    size_t blen = strlen(body);
    wf_buf_reset(&c->scratch);
    wf_buf_printf(&c->scratch,
                  "HTTP/1.1 %d %s\r\ncontent-length: %zu\r\ncontent-type: text/plain\r\n"
                  "server: weft\r\n%s%s\r\n",
                  status, reason_phrase(status), blen, extra,
                  c->close_after ? "connection: close\r\n" : "");
    if (c->method != PX_HTTP1_M_HEAD) {
        wf_buf_append(&c->scratch, body, blen);
        c->bytes_out = blen;
    }
    c->status = status;
    c->rflags |= flags;
    c->s_done = true;
    report(c);
    uv_buf_t b = uv_buf_init((char *)c->scratch.data, (unsigned)c->scratch.len);
    down_write(c, &b, 1);
    finish_request(c);
}

static void local_reply(px_conn_t *c, int status, const char *body, unsigned flags, bool close)
{
    local_reply_ex(c, status, body, flags, close, "");
}

static void start_upstream(px_conn_t *c);
static bool choose_endpoint(px_conn_t *c);

static void retry_timer_cb(uv_timer_t *t)
{
    px_conn_t *c = t->data;
    c->timer_kind = T_NONE;
    if (c->state == C_REQUEST && choose_endpoint(c)) {
        start_upstream(c);
    }
}

/*
 * Whether the route's retry policy takes another try for a failure of one of the kinds in
 * `on` (PX_RETRY_* bits): a retry is left, the request can be sent again whole (its body
 * bytes sent so far were kept), and the cluster's retry budget admits it.
 */
static bool retry_allowed(px_conn_t *c, uint32_t on)
{
    const px_route_t *r = c->route;
    if (r == NULL || (r->retries.retry_on & on) == 0 || c->retries >= r->retries.attempts ||
        c->replay_lost) {
        return false;
    }
    /* The cluster's max_retries circuit breaker: a request retrying holds one slot until it
     * ends; none free = no retry (counted as retry overflow). */
    if (c->oc != NULL && !c->retry_held) {
        if (!px_lb_retry_admit(c->oc->lb)) {
            return false;
        }
        c->retry_held = true;
    }
    return true;
}

/*
 * Give up the current try (its connection is closed: a half-sent request or an unread
 * response cannot be reused) and schedule the next one on a newly picked endpoint after
 * Envoy's backoff: 25 ms base, doubling per retry up to 250 ms, fully jittered.
 */
static void schedule_retry(px_conn_t *c)
{
    if (c->up != NULL) {
        px_pool_release(c->up, false);
        c->up = NULL;
    }
    c->up_ready = false;
    c->retries++;
    if (c->active_slot != NULL) {
        (*c->active_slot)--;
        c->active_slot = NULL;
    }
    uint64_t cap = (uint64_t)25 << (c->retries - 1 < 3 ? c->retries - 1 : 3);
    cap = cap > 250 ? 250 : cap;
    uint64_t delay = 1 + px_worker_rand(c->w) % cap;
    uv_timer_stop(&c->timer);
    c->timer_kind = T_RETRY;
    uv_timer_start(&c->timer, retry_timer_cb, delay, 0);
}

/* Retry conditions under which a failure without any response (connect failure, reset,
 * timeout) is retried, as Envoy's `5xx` and `gateway-error` include them. */
#define RETRY_ON_NO_RESPONSE (PX_RETRY_5XX | PX_RETRY_GATEWAY_ERROR | PX_RETRY_RESET)

static void conn_upstream_error(px_conn_t *c, int err, bool connecting)
{
    c->up_ready = false;
    if (!c->s_head_done && c->up_ep != NULL && err != UV_ECANCELED) {
        px_lb_outcome(c->oc->lb, (uint32_t)(c->up_ep - c->oc->cluster->endpoints),
                      err == UV_ETIMEDOUT ? PX_LB_TIMEOUT
                                          : (connecting ? PX_LB_CONNECT_FAILURE : PX_LB_RESET),
                      0, wf_mono_ns() / 1000000);
    }
    if (!c->s_head_done) {
        const char *body;
        unsigned flags;
        uint32_t on = RETRY_ON_NO_RESPONSE;
        if (connecting) {
            on |= PX_RETRY_CONNECT_FAILURE | PX_RETRY_RESET_BEFORE_REQUEST;
        }
        if (retry_allowed(c, on)) {
            schedule_retry(c);
            return;
        }
        if (connecting && c->retries > 0) {
            flags = PX_RF_UF | PX_RF_URX;
            body = "upstream connect error or disconnect/reset before headers. retried and the "
                   "latest reset reason: connection failure";
        } else if (connecting) {
            flags = PX_RF_UF;
            body = err == UV_ETIMEDOUT ? "upstream connect error or disconnect/reset before "
                                         "headers. reset reason: connection timeout"
                                       : "upstream connect error or disconnect/reset before "
                                         "headers. reset reason: connection failure";
        } else if (c->retries > 0) {
            flags = PX_RF_UC | PX_RF_URX;
            body = "upstream connect error or disconnect/reset before headers. retried and the "
                   "latest reset reason: connection termination";
        } else {
            flags = PX_RF_UC;
            body = "upstream connect error or disconnect/reset before headers. reset reason: "
                   "connection termination";
        }
        local_reply(c, 503, body, flags, false);
        return;
    }
    if (err == UV_EOF && px_http1_body_eof(&c->sbody) == 0) {
        /* A response delimited by the server's close: complete. */
        c->s_done = true;
        c->close_after = true;
        finish_request(c);
        return;
    }
    /* Cut mid-body: the client must see a truncated message, so close without more bytes. */
    c->rflags |= PX_RF_UC;
    report(c);
    conn_close(c);
}

/* A try took longer than the route's per-try timeout before its response head came. */
static void try_timer_cb(uv_timer_t *t)
{
    px_conn_t *c = t->data;
    c->timer_kind = T_NONE;
    if (c->state != C_REQUEST || c->s_head_done) {
        return;
    }
    if (c->up_ep != NULL) {
        px_lb_outcome(c->oc->lb, (uint32_t)(c->up_ep - c->oc->cluster->endpoints), PX_LB_TIMEOUT, 0,
                      wf_mono_ns() / 1000000);
    }
    if (retry_allowed(c, RETRY_ON_NO_RESPONSE)) {
        schedule_retry(c);
        return;
    }
    local_reply(c, 504, "upstream request timeout", PX_RF_UT, false);
}

/* The route's timeout ran out: 504 before the response head, a cut response after it. */
static void rq_timer_cb(uv_timer_t *t)
{
    px_conn_t *c = t->data;
    c->rq_timer_on = false;
    if (c->state != C_REQUEST) {
        return;
    }
    if (!c->s_head_done) {
        if (c->timer_kind >= T_RETRY) {
            uv_timer_stop(&c->timer);
            c->timer_kind = T_NONE;
        }
        local_reply(c, 504, "upstream request timeout", PX_RF_UT, false);
        return;
    }
    c->rflags |= PX_RF_UT;
    report(c);
    conn_close(c);
}

/*
 * Once the whole request is in (Envoy starts both then): the route's timeout, once per
 * request, and the per-try timeout of the try in progress.
 */
static void arm_timeouts(px_conn_t *c)
{
    const px_route_t *r = c->route;
    if (r == NULL || !c->q_done || c->s_head_done) {
        return;
    }
    if (r->timeout_ms > 0 && !c->rq_timer_on) {
        c->rq_timer_on = true;
        uv_timer_start(&c->rq_timer, rq_timer_cb, r->timeout_ms, 0);
    }
    if (r->retries.per_try_timeout_ms > 0 && c->up != NULL && c->timer_kind != T_TRY) {
        uv_timer_stop(&c->timer);
        c->timer_kind = T_TRY;
        uv_timer_start(&c->timer, try_timer_cb, r->retries.per_try_timeout_ms, 0);
    }
}

static void up_connected(void *arg, px_upconn_t *u);
static void up_failed(void *arg, px_upconn_t *u, int err, bool connecting);
static void up_data(void *arg, px_upconn_t *u);
static void up_written(void *arg, px_upconn_t *u);

static const px_up_handler_t up_handler = {
    .connected = up_connected,
    .failed = up_failed,
    .data = up_data,
    .written = up_written,
};

/* Body bytes just sent to the upstream, as framed: kept in replay while the route may retry
 * after them, within PX_REPLAY_MAX; otherwise no later try can repeat the request. */
static void keep_for_replay(px_conn_t *c, bool chunked, wf_str_t data)
{
    if (c->replay_lost) {
        return;
    }
    if (!c->replay_body || c->replay.len + data.len + 24 > PX_REPLAY_MAX) {
        c->replay_lost = true;
        wf_buf_free(&c->replay);
        return;
    }
    if (chunked) {
        wf_buf_printf(&c->replay, "%zx\r\n", data.len);
    }
    wf_buf_append(&c->replay, data.p, data.len);
    if (chunked) {
        wf_buf_puts(&c->replay, "\r\n");
    }
}

/* Stream request body bytes buffered in rbuf to the upstream. */
static void pump_request_body(px_conn_t *c)
{
    while (c->up != NULL && c->up_ready && !c->q_done && c->rpos < c->rbuf.len) {
        size_t used = 0;
        wf_str_t data = {NULL, 0};
        int rc = px_http1_body_feed(&c->qbody, (const char *)c->rbuf.data + c->rpos, unconsumed(c),
                                    &used, &data);
        if (rc < 0) {
            c->q_done = true; /* nothing more will be read as this request */
            c->close_after = true;
            if (!c->s_head_done) {
                local_reply(c, c->qbody.err.status, c->qbody.err.reason, PX_RF_DPE, true);
            } else {
                c->rflags |= PX_RF_DPE;
                report(c);
                conn_close(c);
            }
            return;
        }
        c->rpos += used;
        if (data.len > 0) {
            c->bytes_in += data.len;
            write_chunk(c, c->up, c->q_chunked, data);
            keep_for_replay(c, c->q_chunked, data);
            if (c->mirror != NULL) {
                char line[24];
                uv_buf_t b[3];
                px_mirror_body(c->mirror, b, frame_chunk(b, line, c->q_chunked, data));
            }
        }
        if (px_http1_body_done(&c->qbody)) {
            c->q_done = true;
            if (c->q_chunked) {
                uv_buf_t b = uv_buf_init("0\r\n\r\n", 5);
                px_up_write(c->up, &b, 1);
                keep_for_replay(c, false, wf_str("0\r\n\r\n"));
                if (c->mirror != NULL) {
                    px_mirror_body(c->mirror, &b, 1);
                }
            }
            mirror_done(c, true);
            arm_timeouts(c);
        }
        if (used == 0 && data.len == 0) {
            break;
        }
    }
}

/* The tunnel ended (or the connection closes under it): the request is reported with the
 * tunnel's bytes. bytes_in: request body plus every byte the client sent through the tunnel;
 * bytes_out: every byte the upstream sent through it (the 101 or 200 head is not counted). */
static void tunnel_report(px_conn_t *c, const px_tunnel_stats_t *st)
{
    c->bytes_in += st->down_to_up;
    c->bytes_out += st->up_to_down;
    if (st->end == PX_TUNNEL_RESET) {
        c->rflags |= st->down_err ? PX_RF_DC : PX_RF_UC;
    }
    if (c->method == PX_HTTP1_M_CONNECT) {
        px_tcp_record(c->w, false, c->oc != NULL ? c->oc->cluster : NULL, c->up_ep,
                      c->up_mtls ? c->up_principal : NULL, 0, st->up_to_down, st->down_to_up, 0, 1);
    }
    report(c);
}

static void tunnel_done(void *arg, const px_tunnel_stats_t *st)
{
    px_conn_t *c = arg;
    c->tunnel = NULL;
    tunnel_report(c, st);
    conn_close(c);
}

/* Switch the connection to a byte tunnel with c->up: head (the 101 or 200) goes to the client
 * first, then what either side sent past its last head, then everything else. */
static void conn_tunnel(px_conn_t *c, const char *head, size_t len)
{
    px_upconn_t *u = c->up;
    c->state = C_TUNNEL;
    if (c->rq_timer_on) {
        uv_timer_stop(&c->rq_timer); /* route and try timeouts end with the HTTP exchange */
        c->rq_timer_on = false;
    }
    if (c->timer_kind >= T_RETRY) {
        uv_timer_stop(&c->timer);
        c->timer_kind = T_NONE;
    }
    c->s_head_done = c->s_done = true;
    uv_buf_t b = uv_buf_init((char *)head, (unsigned)len);
    down_write(c, &b, 1);
    px_tunnel_opts_t o = {
        .to_up = {unconsumed(c) ? (const char *)c->rbuf.data + c->rpos : "", unconsumed(c)},
        .to_down = {u->rbuf.len > u->rpos ? (const char *)u->rbuf.data + u->rpos : "",
                    u->rbuf.len - u->rpos},
        .idle_ms = (uint64_t)c->w->px->cfg.idle_timeout_ms,
        .done = tunnel_done,
        .arg = c,
    };
    c->tunnel = px_tunnel_start(&c->w->loop, &c->tp, &u->tp, &o);
    c->rpos = c->rbuf.len;
    u->rpos = u->rbuf.len;
    if (c->method == PX_HTTP1_M_CONNECT) {
        px_tcp_record(c->w, false, c->oc != NULL ? c->oc->cluster : NULL, c->up_ep,
                      c->up_mtls ? c->up_principal : NULL, 0, 0, 0, 1, 0);
    }
}

/* The upstream switched protocols: forward its 101 (with Upgrade) and tunnel. */
static void upgrade_response(px_conn_t *c, const px_http1_head_t *h)
{
    px_http1_ser_opts_t o;
    memset(&o, 0, sizeof(o));
    o.upgrade = true;
    c->status = 101;
    wf_buf_reset(&c->scratch);
    px_http1_serialize_response(h, &o, &c->scratch);
    conn_tunnel(c, (const char *)c->scratch.data, c->scratch.len);
}

/* Where an outbound CONNECT goes: the cluster for its host:port by the cluster's balancer, or
 * an IP literal directly. Returns false when it was answered (400, 404 NR, 503 UH). */
static bool connect_route(px_conn_t *c, const px_http1_head_t *h)
{
    px_worker_t *w = c->w;
    px_connect_target_t t;
    c->close_after = true; /* a refused tunnel's bytes are not HTTP */
    int rc = px_tcp_connect_target(c->gen != NULL ? c->gen->snap : NULL, h->authority, &t);
    if (rc == PX_TCP_EAUTHORITY) {
        local_reply(c, 400, "CONNECT needs host:port with a port in 1..65535", PX_RF_DPE, true);
        return false;
    }
    if (rc != 0) {
        local_reply(c, 404, "no cluster for the CONNECT target", PX_RF_NR, true);
        return false;
    }
    if (t.cluster >= 0) {
        c->oc = &c->gen->ob[t.cluster];
        c->up_cluster = c->oc->cluster->name.p;
        return choose_endpoint(c);
    }
    c->own_pool = wf_malloc(sizeof(*c->own_pool));
    px_pool_init(c->own_pool, &w->loop, (const struct sockaddr *)&t.addr,
                 (uint64_t)w->px->cfg.connect_timeout_ms, 0);
    c->pool = c->own_pool;
    c->up_cluster = "PassthroughCluster";
    snprintf(c->up_host, sizeof(c->up_host), "%.*s", (int)h->authority.len, h->authority.p);
    return true;
}

/* The connection of this try is up: send the head and the body bytes earlier tries sent,
 * then go on with the rest of the body (a CONNECT: answer it and tunnel). */
static void send_head_upstream(px_conn_t *c)
{
    if (c->method == PX_HTTP1_M_CONNECT) {
        static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
        c->status = 200;
        conn_tunnel(c, ok, sizeof(ok) - 1);
        return;
    }
    /* Kept now: the connection goes back to its pool before the request is reported. */
    const char *id = c->up->tp.peer_identity;
    c->up_mtls = id != NULL;
    snprintf(c->up_principal, sizeof(c->up_principal), "%s", id != NULL ? id : "");
    uv_buf_t b = uv_buf_init((char *)c->replay.data, (unsigned)c->replay.len);
    px_up_write(c->up, &b, 1);
    if (c->replay_lost) {
        wf_buf_free(&c->replay); /* head only; no try will need it again */
    }
    pump_request_body(c);
}

/* What the serialiser drops from a forwarded head besides hop-by-hop fields: the route's and
 * the destination's header operations (`remove`, and the names `set` replaces). */
typedef struct {
    bool request; /* a request head: the proxy's own fields are replaced too */
    bool drop_expect;
    const px_hdr_ops_t *ops[2];
} keep_ctx_t;

static bool name_is(wf_str_t a, wf_str_t b)
{
    return a.len == b.len && strncasecmp(a.p, b.p, a.len) == 0;
}

/* True when ops removes or replaces the field named n. */
static bool ops_drop(const px_hdr_ops_t *ops, wf_str_t n)
{
    if (ops == NULL) {
        return false;
    }
    for (uint32_t i = 0; i < ops->n_remove; i++) {
        if (name_is(ops->remove[i], n)) {
            return true;
        }
    }
    for (uint32_t i = 0; i < ops->n_set; i++) {
        if (name_is(ops->set[i].key, n)) {
            return true;
        }
    }
    return false;
}

/* Fields ops adds (`set`, then `add`) appended to extra[*n..cap); a `set` of a name the more
 * general ops `over` also sets is left to it (Envoy applies the route's last). */
static void ops_extra(const px_hdr_ops_t *ops, const px_hdr_ops_t *over, px_http1_header_t *extra,
                      size_t *n, size_t cap)
{
    if (ops == NULL) {
        return;
    }
    for (uint32_t i = 0; i < ops->n_set && *n < cap; i++) {
        bool shadowed = false;
        for (uint32_t j = 0; over != NULL && j < over->n_set; j++) {
            shadowed = shadowed || name_is(over->set[j].key, ops->set[i].key);
        }
        if (!shadowed) {
            extra[(*n)++] = (px_http1_header_t){ops->set[i].key, ops->set[i].value};
        }
    }
    for (uint32_t i = 0; i < ops->n_add && *n < cap; i++) {
        extra[(*n)++] = (px_http1_header_t){ops->add[i].key, ops->add[i].value};
    }
}

static size_t ops_count(const px_hdr_ops_t *ops)
{
    return ops == NULL ? 0 : (size_t)ops->n_set + ops->n_add;
}

static bool keep_field(void *arg, const px_http1_header_t *h)
{
    keep_ctx_t *k = arg;
    wf_str_t n = h->name;
    if (ops_drop(k->ops[0], n) || ops_drop(k->ops[1], n)) {
        return false;
    }
    if (!k->request) {
        /* Responses: a peer header is the destination proxy's (read by the source side
         * before this) or the app's own: neither reaches the client. */
        return !(n.len == sizeof(PX_PEER_HEADER) - 1 &&
                 strncasecmp(n.p, PX_PEER_HEADER, n.len) == 0);
    }
    if ((n.len == 15 && strncasecmp(n.p, "x-forwarded-for", 15) == 0) ||
        (n.len == 17 && strncasecmp(n.p, "x-forwarded-proto", 17) == 0)) {
        return false;
    }
    if (k->drop_expect && n.len == 6 && strncasecmp(n.p, "expect", 6) == 0) {
        return false;
    }
    /* Peer metadata is the proxies' own: never the app's word outbound, never shown to the app
     * inbound (the inbound side has read it already). */
    if (n.len == sizeof(PX_PEER_HEADER) - 1 && strncasecmp(n.p, PX_PEER_HEADER, n.len) == 0) {
        return false;
    }
    /* Trace context: replaced by this hop's (px_tracing_begin), never duplicated. */
    if (px_trace_is_header(n)) {
        return false;
    }
    return true;
}

static const px_http1_header_t *find_header(const px_http1_head_t *h, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < h->num_headers; i++) {
        if (h->headers[i].name.len == nl && strncasecmp(h->headers[i].name.p, name, nl) == 0) {
            return &h->headers[i];
        }
    }
    return NULL;
}

/* Pick the endpoint of c->oc's cluster and its pool for this attempt (px_lb_pick). Returns
 * false when there is none (answered 503 UH, or 503 for an unusable PASSTHROUGH address). */
static bool choose_endpoint(px_conn_t *c)
{
    px_ob_cluster_t *oc = c->oc;
    px_lb_pick_t pk;
    int rc = px_lb_pick(c->w, oc, &c->lbkey, meta_slice(c, c->m_method, c->m_auth),
                        wf_mono_ns() / 1000000, &pk);
    if (rc == PX_LB_E_ADDR) {
        local_reply(c, 503, "passthrough destination is not an IP address", PX_RF_UH, false);
        return false;
    }
    if (rc != 0) {
        local_reply(c, 503, "no healthy upstream", PX_RF_UH, false);
        return false;
    }
    snprintf(c->up_host, sizeof(c->up_host), "%s", pk.host);
    c->pool = pk.pool;
    c->active_slot = pk.active;
    if (c->active_slot != NULL) {
        (*c->active_slot)++;
    }
    c->up_ep = pk.ep;
    return true;
}

/*
 * CORS as Envoy's filter does it for route r: a preflight (OPTIONS with
 * Access-Control-Request-Method) from an allowed origin is answered here and not forwarded;
 * any other request from an allowed origin is forwarded and its response gets the allow
 * headers (the origin is kept in meta for it). Requests from other origins pass untouched.
 * Returns true when the request was answered.
 */
static bool cors_request(px_conn_t *c, const px_http1_head_t *h, const px_route_t *r)
{
    if (!r->has_cors) {
        return false;
    }
    const px_http1_header_t *o = find_header(h, "origin");
    if (o == NULL || o->value.len == 0) {
        return false;
    }
    const px_cors_t *cp = &r->cors;
    bool allowed = false;
    for (uint32_t i = 0; i < cp->n_allow_origins && !allowed; i++) {
        allowed = px_strmatch_eval(c->gen->snap, &cp->allow_origins[i], o->value, false, NULL) == 1;
    }
    if (!allowed) {
        return false;
    }
    if (h->method == PX_HTTP1_M_OPTIONS &&
        find_header(h, "access-control-request-method") != NULL) {
        wf_buf_t ex = WF_BUF_INIT;
        wf_buf_printf(&ex, "access-control-allow-origin: %.*s\r\n", (int)o->value.len, o->value.p);
        if (cp->allow_credentials == 1) {
            wf_buf_puts(&ex, "access-control-allow-credentials: true\r\n");
        }
        if (cp->allow_methods.len > 0) {
            wf_buf_printf(&ex, "access-control-allow-methods: %.*s\r\n", (int)cp->allow_methods.len,
                          cp->allow_methods.p);
        }
        if (cp->allow_headers.len > 0) {
            wf_buf_printf(&ex, "access-control-allow-headers: %.*s\r\n", (int)cp->allow_headers.len,
                          cp->allow_headers.p);
        }
        if (cp->max_age_ms > 0) {
            wf_buf_printf(&ex, "access-control-max-age: %llu\r\n",
                          (unsigned long long)(cp->max_age_ms / 1000));
        }
        wf_buf_append(&ex, "", 1);
        local_reply_ex(c, 200, "", 0, false, (const char *)ex.data);
        wf_buf_free(&ex);
        return true;
    }
    c->m_origin_off = c->meta.len;
    wf_buf_append(&c->meta, o->value.p, o->value.len);
    c->m_origin = o->value.len;
    return false;
}

/*
 * Route an outbound request with the snapshot: pick the virtual host, route, destination and
 * endpoint, and the rewritten target and authority (into *fwd and *host). Returns false when
 * the request was answered locally (no route, direct response, redirect, fault abort, no
 * cluster or no endpoint).
 */
static bool route_outbound(px_conn_t *c, const px_http1_head_t *h, px_http1_head_t *fwd,
                           wf_str_t *host)
{
    px_worker_t *w = c->w;
    const px_snapshot_t *snap = c->gen != NULL ? c->gen->snap : NULL;
    if (snap == NULL) {
        local_reply(c, 404, "", PX_RF_NR, false);
        return false;
    }
    uint32_t port = c->route_port != 0 ? c->route_port : px_http1_authority_port(h->host, 80);
    const px_vhost_t *vh = px_route_select_vhost(snap, h->host, port);
    px_route_hdr_t rh[PX_MAX_HEADERS];
    for (size_t i = 0; i < h->num_headers; i++) {
        rh[i].name = h->headers[i].name;
        rh[i].value = h->headers[i].value;
    }
    wf_str_t path = h->path, query = {"", 0};
    for (size_t i = 0; i < path.len; i++) {
        if (path.p[i] == '?') {
            query = (wf_str_t){path.p + i + 1, path.len - i - 1};
            path.len = i;
            break;
        }
    }
    px_route_req_t rq = {
        .method = h->method_str,
        .scheme = wf_str("http"),
        .authority = h->host,
        .path = path,
        .query = query,
        .headers = rh,
        .n_headers = h->num_headers,
        .source_labels = snap->proxy.labels,
        .n_source_labels = snap->proxy.n_labels,
        .port = port,
        .md = NULL,
    };
    const px_match_t *matched = NULL;
    const px_route_t *r = vh != NULL ? px_route_match(vh, &rq, &matched) : NULL;
    if (r == NULL) {
        local_reply(c, 404, "", PX_RF_NR, false);
        return false;
    }
    c->route = r;
    /* Istio's filter order: CORS, then fault injection, then the router. */
    if (cors_request(c, h, r)) {
        return false;
    }
    px_fault_decision_t fd;
    px_route_fault_decide(r, px_worker_rand(w), px_worker_rand(w), &fd);
    if (fd.delay_ms > 0) {
        c->delay_ms = fd.delay_ms;
        c->rflags |= PX_RF_DI;
    }
    if (fd.abort_status != 0) {
        if (fd.delay_ms == 0) {
            local_reply(c, (int)fd.abort_status, "fault filter abort", PX_RF_FI, false);
            return false;
        }
        c->abort_status = fd.abort_status; /* answered when the delay is over */
        return true;
    }
    if (r->action == PX_ACTION_DIRECT_RESPONSE) {
        local_reply(c, (int)r->direct_response.status, r->direct_response.body.p, 0, false);
        return false;
    }
    if (r->action == PX_ACTION_REDIRECT) {
        char loc[8192 + 16];
        size_t len = 0;
        memcpy(loc, "location: ", 10);
        if (px_route_redirect_location(r, &rq, loc + 10, sizeof(loc) - 12, &len) != 0) {
            local_reply(c, 500, "redirect location too long", 0, false);
            return false;
        }
        memcpy(loc + 10 + len, "\r\n", 3);
        local_reply_ex(c, (int)r->redirect.code, "", 0, false, loc);
        return false;
    }
    const px_route_dest_t *d = px_route_pick_destination(r, px_worker_rand(w));
    c->dest = d;
    c->up_cluster = d->dest.cluster_name.p;
    if (d->dest.cluster == NULL) {
        local_reply(c, 503, "no cluster", PX_RF_NC, false);
        return false;
    }
    c->oc = &c->gen->ob[d->dest.cluster - snap->clusters];
    c->replay_body = r->retries.attempts > 0 &&
                     (r->retries.retry_on & (RETRY_ON_NO_RESPONSE | PX_RETRY_RETRIABLE_4XX |
                                             PX_RETRY_RETRIABLE_STATUS_CODES)) != 0;
    px_lb_request_key(&c->oc->cluster->lb, h, query, c->peer_ip, &w->rng, &c->lbkey);
    if (!choose_endpoint(c)) {
        return false;
    }
    if (r->has_rewrite) {
        char np[8192];
        size_t nl = 0;
        if (r->rewrite.uri.len > 0) {
            if (px_route_rewrite_path(r, matched, path, np, sizeof(np), &nl) != 0) {
                local_reply(c, 414, "rewritten path too long", 0, false);
                return false;
            }
            wf_buf_append(&c->rw, np, nl);
            if (h->path.len > path.len) {
                wf_buf_append(&c->rw, h->path.p + path.len, h->path.len - path.len);
            }
            fwd->form = PX_HTTP1_FORM_ORIGIN;
            fwd->target = (wf_str_t){(const char *)c->rw.data, c->rw.len};
        }
        *host = px_route_rewrite_authority(r, h->host);
    }
    return true;
}

/*
 * Start a copy of the request to the route's mirror cluster (px_mirror.h), with the same head
 * as the forwarded one but a `-shadow` authority; its body follows as pump_request_body sends
 * the real one. Upgrade requests are not mirrored (a copy cannot share the tunnel).
 */
static void mirror_request(px_conn_t *c, const px_http1_head_t *h, const px_http1_head_t *fwd,
                           const px_http1_ser_opts_t *o)
{
    px_worker_t *w = c->w;
    const px_dest_t *md = &c->route->mirror;
    if (c->upgrade) {
        atomic_fetch_add_explicit(&w->ctr.mirror_rq_skipped, 1, memory_order_relaxed);
        return;
    }
    if (md->cluster == NULL) {
        atomic_fetch_add_explicit(&w->ctr.mirror_rq_failed, 1, memory_order_relaxed);
        return;
    }
    px_ob_cluster_t *moc = &c->gen->ob[md->cluster - c->gen->snap->clusters];
    px_lb_pick_t pk;
    if (px_lb_pick(w, moc, NULL, h->host, wf_mono_ns() / 1000000, &pk) != 0) {
        atomic_fetch_add_explicit(&w->ctr.mirror_rq_failed, 1, memory_order_relaxed);
        return;
    }
    wf_buf_t auth = WF_BUF_INIT;
    px_mirror_authority(o->host.len > 0 ? o->host : h->host, &auth);
    px_http1_ser_opts_t mo = *o;
    mo.host = (wf_str_t){(const char *)auth.data, auth.len};
    wf_buf_reset(&c->mirror_head);
    px_http1_serialize_request(fwd, &mo, &c->mirror_head);
    c->mirror_pool = pk.pool; /* sent with the first try (start_mirror), after any fault delay */
    wf_buf_free(&auth);
}

/* The first try starts: so does the mirrored copy, if the route asked for one. */
static void start_mirror(px_conn_t *c)
{
    if (c->mirror_pool == NULL) {
        return;
    }
    uint64_t timeout = c->route->timeout_ms > 0 ? c->route->timeout_ms : PX_MIRROR_TIMEOUT_MS;
    c->mirror = px_mirror_send(c->w, c->gen, c->mirror_pool, c->mirror_head.data,
                               c->mirror_head.len, timeout);
    c->mirror_pool = NULL;
    if (c->q_done) {
        mirror_done(c, true); /* no body */
    }
}

static void delay_timer_cb(uv_timer_t *t)
{
    px_conn_t *c = t->data;
    c->timer_kind = T_NONE;
    if (c->state != C_REQUEST) {
        return;
    }
    if (c->abort_status != 0) {
        local_reply(c, (int)c->abort_status, "fault filter abort", PX_RF_FI, false);
        return;
    }
    start_upstream(c);
}

/* The fault's delay: the request waits (its body stays unread) before going on. */
static void start_delay(px_conn_t *c)
{
    uv_timer_stop(&c->timer);
    c->timer_kind = T_DELAY;
    uv_timer_start(&c->timer, delay_timer_cb, c->delay_ms, 0);
}

/*
 * AuthorizationPolicy for requests that enter the workload: the sidecar's inbound listener and
 * a gateway's server ports (not the app's own outbound calls). Returns false when the request
 * was denied and answered with Envoy's 403 `RBAC: access denied`; nothing of it is forwarded.
 * Policies see the path normalized as Istio's default (BASE) does; when that changes it, the
 * request goes on with the normalized path (c->npath): a sidecar forwards it to the app and a
 * gateway routes and forwards it, so that what was checked is what is served.
 */
static bool authorize(px_conn_t *c, const px_http1_head_t *h)
{
    if ((c->outbound && c->route_port == 0) || c->gen == NULL) {
        return true;
    }
    const px_authz_set_t *set = &c->gen->snap->inbound.authz;
    if (set->n_policies == 0) {
        return true;
    }
    px_worker_t *w = c->w;
    if (!c->local_ip_set) {
        struct sockaddr_storage ss;
        int len = sizeof(ss);
        c->local_ip[0] = '\0';
        if (uv_tcp_getsockname(&c->tp.tcp, (struct sockaddr *)&ss, &len) == 0) {
            if (ss.ss_family == AF_INET) {
                uv_ip4_name((struct sockaddr_in *)&ss, c->local_ip, sizeof(c->local_ip));
            } else if (ss.ss_family == AF_INET6) {
                uv_ip6_name((struct sockaddr_in6 *)&ss, c->local_ip, sizeof(c->local_ip));
            }
        }
        c->local_ip_set = true;
    }
    px_authz_req_t r = {
        .principal = c->tp.peer_identity,
        .source_ip = wf_str(c->peer_ip),
        .dest_ip = wf_str(c->local_ip),
        /* Istio's destination port: the app's port, or the gateway server's. */
        .dest_port = c->outbound ? c->route_port : (uint32_t)w->px->cfg.app_port,
        .method = h->method_str,
        .host = h->host,
        .headers = h->headers,
        .n_headers = h->num_headers,
    };
    wf_str_t path = h->path.len > 0 ? h->path : h->target;
    char norm[8192];
    if (path.len > sizeof(norm)) {
        /* Above the parser's default request-target limit; refused rather than unchecked. */
        local_reply(c, 414, "request-target too long", 0, false);
        return false;
    }
    r.path = (wf_str_t){norm, px_authz_normalize_path(path, norm)};
    if (!wf_str_eq(r.path, path)) {
        wf_buf_append(&c->npath, r.path.p, r.path.len);
    }
    px_authz_result_t res;
    px_authz_check(set, &r, &res);
    if (res.allowed) {
        atomic_fetch_add_explicit(&w->ctr.authz_allowed, 1, memory_order_relaxed);
        return true;
    }
    atomic_fetch_add_explicit(&w->ctr.authz_denied, 1, memory_order_relaxed);
    WF_LOG_RL(WF_DEBUG, 10, "proxy", "request denied by authorization policy", "policy=%s peer=%s",
              res.policy != NULL ? res.policy->name.p : "(no ALLOW policy matched)", c->peer_ip);
    /* Envoy has no response flag for RBAC denials (its details say rbac_access_denied). */
    local_reply(c, 403, "RBAC: access denied", 0, false);
    return false;
}

/* A request head was parsed (its bytes are consumed but still in rbuf): forward it. */
static void start_request(px_conn_t *c, const px_http1_head_t *h)
{
    px_worker_t *w = c->w;
    c->state = C_REQUEST;
    c->gen = px_gen_acquire(w);
    c->start_wall_ns = wf_wall_ns();
    c->start_mono_ns = wf_mono_ns();
    c->method = h->method;
    c->minor = h->minor_version;
    c->req_keep_alive = (h->flags & PX_HTTP1_F_KEEP_ALIVE) != 0;
    char rid[37];
    const px_http1_header_t *rid_h = find_header(h, "x-request-id");
    wf_str_t rid_v = rid_h != NULL ? rid_h->value : (wf_str_t){rid, 0};
    if (rid_h == NULL) {
        px_request_id(&w->rng, rid);
        rid_v.len = 36;
    }
    wf_buf_append(&c->meta, h->method_str.p, h->method_str.len);
    wf_buf_append(&c->meta, h->host.p, h->host.len);
    wf_buf_append(&c->meta, h->target.p, h->target.len);
    wf_buf_append(&c->meta, rid_v.p, rid_v.len);
    c->m_method = h->method_str.len;
    c->m_auth = h->host.len;
    c->m_path = h->target.len;
    c->m_rid = rid_v.len;
    const px_http1_header_t *peer_h = c->outbound ? NULL : find_header(h, PX_PEER_HEADER);
    if (peer_h != NULL) {
        wf_buf_append(&c->meta, peer_h->value.p, peer_h->value.len);
        c->m_peer = peer_h->value.len;
    }
    const px_http1_header_t *ua_h = find_header(h, "user-agent");
    if (ua_h != NULL) {
        wf_buf_append(&c->meta, ua_h->value.p, ua_h->value.len);
        c->m_ua = ua_h->value.len;
    }
    px_trace_out_t tout;
    px_tracing_begin(w, c->gen, h, &c->trace, &tout);
    c->traced = true;
    px_http1_body_init(&c->qbody, h, NULL);
    c->q_done = px_http1_body_done(&c->qbody);
    if (!authorize(c, h)) {
        return;
    }
    px_http1_head_t normalized;
    if (c->npath.len > 0) {
        normalized = *h;
        normalized.form = PX_HTTP1_FORM_ORIGIN;
        normalized.target = normalized.path = (wf_str_t){(const char *)c->npath.data, c->npath.len};
        h = &normalized;
    }

    if (h->flags & PX_HTTP1_F_CONNECT) {
        c->q_done = true;
        if (!c->outbound) {
            local_reply(c, 501, "CONNECT is not supported on this listener", PX_RF_NR, true);
        } else if (connect_route(c, h)) {
            start_upstream(c);
        }
        return;
    }
    c->upgrade = (h->flags & PX_HTTP1_F_UPGRADE) != 0;
    px_http1_head_t fwd = *h;
    wf_str_t host = {"", 0};
    if (c->outbound) {
        if (!route_outbound(c, h, &fwd, &host)) {
            return;
        }
        if (c->abort_status != 0) {
            start_delay(c); /* a delayed abort: nothing goes upstream */
            return;
        }
    } else {
        c->pool = &w->app_pool;
        c->up_cluster = w->px->inbound_cluster;
        snprintf(c->up_host, sizeof(c->up_host), "%s", w->px->app_host);
    }

    /* X-Forwarded-For: the client's address appended to what came in (Envoy's default). */
    wf_buf_reset(&c->scratch);
    const px_http1_header_t *xff = find_header(h, "x-forwarded-for");
    if (xff != NULL && xff->value.len > 0) {
        wf_buf_append(&c->scratch, xff->value.p, xff->value.len);
        wf_buf_puts(&c->scratch, ", ");
    }
    wf_buf_puts(&c->scratch, c->peer_ip);
    const px_hdr_ops_t *rops = c->route != NULL ? &c->route->headers.request : NULL;
    const px_hdr_ops_t *dops = c->dest != NULL ? &c->dest->headers.request : NULL;
    size_t cap = 4 + PX_TRACE_MAX_OUT + ops_count(rops) + ops_count(dops);
    px_http1_header_t extra_local[PX_MAX_EXTRA];
    px_http1_header_t *extra = cap <= PX_MAX_EXTRA ? extra_local : wf_malloc(cap * sizeof(*extra));
    size_t n_extra = 0;
    extra[n_extra++] = (px_http1_header_t){wf_str("X-Forwarded-For"),
                                           {(const char *)c->scratch.data, c->scratch.len}};
    extra[n_extra++] = (px_http1_header_t){wf_str("X-Forwarded-Proto"), wf_str("http")};
    if (rid_h == NULL) {
        extra[n_extra++] = (px_http1_header_t){wf_str("x-request-id"), rid_v};
    }
    if (c->outbound) {
        const wf_buf_t *pv = &w->px->self_peer;
        extra[n_extra++] =
            (px_http1_header_t){wf_str(PX_PEER_HEADER), {(const char *)pv->data, pv->len}};
    }
    for (size_t i = 0; i < tout.n; i++) {
        extra[n_extra++] = tout.h[i];
    }
    ops_extra(dops, rops, extra, &n_extra, cap);
    ops_extra(rops, NULL, extra, &n_extra, cap);
    keep_ctx_t kc = {
        .request = true,
        .drop_expect = (h->flags & PX_HTTP1_F_EXPECT_CONTINUE) != 0,
        .ops = {rops, dops},
    };
    px_http1_ser_opts_t o;
    memset(&o, 0, sizeof(o));
    o.host = host;
    o.keep_cb = keep_field;
    o.keep_arg = &kc;
    o.extra = extra;
    o.num_extra = n_extra;
    o.upgrade = c->upgrade;
    if (h->body == PX_HTTP1_BODY_LENGTH) {
        o.framing = PX_HTTP1_FRAME_LENGTH;
        o.content_length = h->content_length;
    } else if (h->body == PX_HTTP1_BODY_CHUNKED) {
        o.framing = PX_HTTP1_FRAME_CHUNKED;
        c->q_chunked = true;
    }
    wf_buf_reset(&c->replay);
    px_http1_serialize_request(&fwd, &o, &c->replay);
    if (c->route != NULL && c->route->has_mirror &&
        px_route_mirror_decide(c->route, px_worker_rand(w))) {
        mirror_request(c, h, &fwd, &o);
    }
    if (extra != extra_local) {
        wf_free(extra);
    }

    if (kc.drop_expect && !c->q_done) {
        /* The proxy answers the expectation itself (as Envoy does) and streams the body. */
        uv_buf_t b = uv_buf_init("HTTP/1.1 100 Continue\r\n\r\n", 25);
        down_write(c, &b, 1);
    }

    if (c->delay_ms > 0) {
        start_delay(c);
        return;
    }
    start_upstream(c);
}

/* Get a connection from c->pool and send the request on it (now, or once connected). */
static void start_upstream(px_conn_t *c)
{
    start_mirror(c);
    bool reused = false;
    c->up_used = true;
    int rc = px_pool_acquire(c->pool, &up_handler, c, &c->pwait, &c->up, &reused);
    if (rc == PX_POOL_QUEUED) {
        return; /* up_connected or up_failed follows once a connection is free */
    }
    if (rc == PX_POOL_OVERFLOW) {
        local_reply(c, 503,
                    "upstream connect error or disconnect/reset before headers. reset reason: "
                    "overflow",
                    PX_RF_UO, false);
        return;
    }
    if (rc != 0) {
        c->up = NULL;
        conn_upstream_error(c, rc, true);
        return;
    }
    if (reused) {
        atomic_fetch_add_explicit(&c->w->ctr.upstream_rq_reused, 1, memory_order_relaxed);
        c->up_ready = true;
        send_head_upstream(c);
    }
    if (c->up != NULL) {
        arm_timeouts(c);
    }
}

static void head_timer_cb(uv_timer_t *t)
{
    px_conn_t *c = t->data;
    c->timer_kind = T_NONE;
    if (c->state != C_HEAD) {
        return;
    }
    if (unconsumed(c) == 0) {
        conn_close(c); /* idle keep-alive connection */
        return;
    }
    /* A head that does not end: slowloris, or a client that stalled. */
    c->start_wall_ns = wf_wall_ns();
    c->start_mono_ns = wf_mono_ns();
    c->rpos = c->rbuf.len;
    local_reply(c, 408, "request header timeout", PX_RF_DPE, true);
}

/* In C_HEAD, run the idle timer while no byte of a request is there, then the headers timer
 * from the first byte on (not restarted by later bytes, so trickling does not extend it). */
static void conn_arm_timer(px_conn_t *c)
{
    const px_config_t *cfg = &c->w->px->cfg;
    if (c->state != C_HEAD) {
        if (c->timer_kind == T_IDLE || c->timer_kind == T_HEADERS) {
            uv_timer_stop(&c->timer);
            c->timer_kind = T_NONE;
        }
        return;
    }
    int want = unconsumed(c) == 0 ? T_IDLE : T_HEADERS;
    if (want == T_IDLE && c->rbuf.cap > 0) {
        /* Between requests nothing is buffered: an idle keep-alive connection holds no read
         * buffer (the next read allocates one). */
        px_worker_rbuf_put(c->w, &c->rbuf);
        c->rpos = 0;
    }
    if (c->timer_kind == want) {
        return;
    }
    uv_timer_stop(&c->timer);
    c->timer_kind = T_NONE;
    int64_t ms = want == T_IDLE ? cfg->idle_timeout_ms : cfg->headers_timeout_ms;
    if (ms > 0) {
        c->timer_kind = want;
        uv_timer_start(&c->timer, head_timer_cb, (uint64_t)ms, 0);
    }
}

/* Parse and run requests from rbuf until one is in flight or the bytes run out. */
static void conn_process(px_conn_t *c)
{
    c->in_process = true;
    while (!c->closing) {
        if (c->state == C_HEAD) {
            if (unconsumed(c) == 0) {
                break;
            }
            px_http1_head_t head;
            px_http1_error_t err;
            int n = px_http1_parse_request((const char *)c->rbuf.data + c->rpos, unconsumed(c),
                                           NULL, c->hdrs, PX_MAX_HEADERS, &head, &err);
            if (n == PX_HTTP1_INCOMPLETE) {
                break;
            }
            if (n < 0) {
                c->start_wall_ns = wf_wall_ns();
                c->start_mono_ns = wf_mono_ns();
                c->q_done = false; /* the rest of the bytes cannot be trusted */
                c->rpos = c->rbuf.len;
                local_reply(c, err.status, err.reason, PX_RF_DPE, true);
                continue;
            }
            c->rpos += (size_t)n;
            start_request(c, &head);
            continue;
        }
        if (c->state == C_REQUEST) {
            pump_request_body(c);
        }
        break;
    }
    c->in_process = false;
    if (!c->closing) {
        conn_arm_timer(c);
        conn_update_reading(c);
    }
}

static void conn_update_reading(px_conn_t *c)
{
    if (c->closing || c->state == C_TUNNEL) {
        return;
    }
    bool want = true;
    if (c->state == C_REQUEST) {
        if (unconsumed(c) >= PX_HWM) {
            want = false;
        } else if (c->up != NULL && c->up_ready && !c->q_done && px_up_queued(c->up) >= PX_HWM) {
            want = false;
        }
    }
    if (want) {
        px_transport_read_start(&c->tp);
    } else {
        px_transport_read_stop(&c->tp);
    }
    if (c->up != NULL && c->up_ready) {
        if (px_transport_queued(&c->tp) >= PX_HWM) {
            px_up_read_stop(c->up);
        } else {
            px_up_read_start(c->up);
        }
    }
}

static void up_connected(void *arg, px_upconn_t *u)
{
    px_conn_t *c = arg;
    c->up = u; /* a request that waited for a connection learns it here */
    c->up_ready = true;
    send_head_upstream(c);
    if (c->up == u) {
        conn_update_reading(c);
    }
}

static void up_failed(void *arg, px_upconn_t *u, int err, bool connecting)
{
    px_conn_t *c = arg;
    c->up = NULL; /* the pool closes it */
    conn_upstream_error(c, err, connecting);
}

static void up_written(void *arg, px_upconn_t *u)
{
    conn_update_reading(arg);
}

/* Frame the response head towards the client. Returns false when the request has ended. */
static bool response_head(px_conn_t *c, px_upconn_t *u)
{
    for (;;) {
        px_http1_head_t h;
        px_http1_error_t err;
        int n = px_http1_parse_response((const char *)u->rbuf.data + u->rpos, u->rbuf.len - u->rpos,
                                        c->method, NULL, c->hdrs, PX_MAX_HEADERS, &h, &err);
        if (n == PX_HTTP1_INCOMPLETE) {
            return true;
        }
        if (n > 0 && h.status == 101 && c->upgrade && c->q_done && h.upgrade.len > 0) {
            u->rpos += (size_t)n;
            upgrade_response(c, &h);
            return false;
        }
        if (n < 0 || h.body == PX_HTTP1_BODY_TUNNEL) {
            local_reply(c, 502,
                        "upstream connect error or disconnect/reset before headers. reset "
                        "reason: protocol error",
                        PX_RF_UPE, false);
            return false;
        }
        if (h.status < 200 && h.status != 101) {
            u->rpos += (size_t)n; /* interim response: not forwarded */
            continue;
        }
        if (c->timer_kind == T_TRY) {
            uv_timer_stop(&c->timer);
            c->timer_kind = T_NONE;
        }
        if (c->up_ep != NULL) {
            px_lb_outcome(c->oc->lb, (uint32_t)(c->up_ep - c->oc->cluster->endpoints),
                          PX_LB_RESPONSE, h.status, wf_mono_ns() / 1000000);
        }
        const px_route_t *r = c->route;
        if (r != NULL && px_route_retry_on_status(&r->retries, (unsigned)h.status)) {
            if (retry_allowed(c, ~0u)) {
                schedule_retry(c); /* this response is dropped with its connection */
                return true;
            }
            if (r->retries.attempts > 0 && c->retries >= r->retries.attempts) {
                c->rflags |= PX_RF_URX; /* retriable, but the retries ran out */
            }
        }
        px_http1_ser_opts_t o;
        memset(&o, 0, sizeof(o));
        const px_hdr_ops_t *rops = r != NULL ? &r->headers.response : NULL;
        const px_hdr_ops_t *dops = c->dest != NULL ? &c->dest->headers.response : NULL;
        size_t cap = 5 + ops_count(rops) + ops_count(dops);
        px_http1_header_t extra_local[PX_MAX_EXTRA];
        px_http1_header_t *extra =
            cap <= PX_MAX_EXTRA ? extra_local : wf_malloc(cap * sizeof(*extra));
        size_t n_extra = 0;
        ops_extra(dops, rops, extra, &n_extra, cap);
        ops_extra(rops, NULL, extra, &n_extra, cap);
        if (c->m_origin > 0) {
            /* An allowed CORS origin (cors_request). */
            extra[n_extra++] = (px_http1_header_t){wf_str("access-control-allow-origin"),
                                                   meta_slice(c, c->m_origin_off, c->m_origin)};
            if (r->cors.allow_credentials == 1) {
                extra[n_extra++] =
                    (px_http1_header_t){wf_str("access-control-allow-credentials"), wf_str("true")};
            }
            if (r->cors.expose_headers.len > 0) {
                extra[n_extra++] = (px_http1_header_t){wf_str("access-control-expose-headers"),
                                                       r->cors.expose_headers};
            }
        }
        char cookie[640];
        size_t cookie_len =
            c->oc != NULL ? px_lb_set_cookie(&c->oc->cluster->lb, &c->lbkey, cookie, sizeof(cookie))
                          : 0;
        if (cookie_len > 0) {
            /* A consistent-hash cookie the balancer generated for this client. */
            extra[n_extra++] = (px_http1_header_t){wf_str("set-cookie"), {cookie, cookie_len}};
        }
        keep_ctx_t kc = {.ops = {rops, dops}};
        o.keep_cb = keep_field;
        o.keep_arg = &kc;
        o.extra = extra;
        o.num_extra = n_extra;
        if (h.body == PX_HTTP1_BODY_LENGTH) {
            o.framing = PX_HTTP1_FRAME_LENGTH;
            o.content_length = h.content_length;
        } else if (h.body == PX_HTTP1_BODY_CHUNKED) {
            if (c->minor >= 1) {
                o.framing = PX_HTTP1_FRAME_CHUNKED;
                c->s_chunked = true;
            } else {
                c->close_after = true; /* an HTTP/1.0 client reads until close */
            }
        } else if (h.body == PX_HTTP1_BODY_EOF) {
            c->close_after = true;
        } else if (c->method == PX_HTTP1_M_HEAD || h.status == 304) {
            /* No content, but the length of the one a GET would have had is kept. */
            const px_http1_header_t *cl = find_header(&h, "content-length");
            if (cl != NULL) {
                uint64_t v = 0;
                for (size_t i = 0; i < cl->value.len; i++) {
                    v = v * 10 + (uint64_t)(cl->value.p[i] - '0');
                }
                o.framing = PX_HTTP1_FRAME_LENGTH;
                o.content_length = v;
            }
        }
        if (!c->req_keep_alive || c->w->draining || !c->q_done) {
            c->close_after = true;
        }
        o.connection_close = c->close_after;
        /* Peer metadata exchange: the destination side says who answered; the source side
         * reads it (for its telemetry) and keeps it from its app. */
        if (!c->outbound) {
            const wf_buf_t *pv = &c->w->px->self_peer;
            extra[n_extra++] =
                (px_http1_header_t){wf_str(PX_PEER_HEADER), {(const char *)pv->data, pv->len}};
        } else if (c->m_rpeer == 0) {
            const px_http1_header_t *rp = find_header(&h, PX_PEER_HEADER);
            if (rp != NULL) {
                c->m_rpeer_off = c->meta.len;
                wf_buf_append(&c->meta, rp->value.p, rp->value.len);
                c->m_rpeer = rp->value.len;
            }
        }
        c->up_reusable = (h.flags & PX_HTTP1_F_KEEP_ALIVE) && h.body != PX_HTTP1_BODY_EOF;
        c->status = h.status;
        o.num_extra = n_extra;
        px_http1_body_init(&c->sbody, &h, NULL);
        wf_buf_reset(&c->scratch);
        px_http1_serialize_response(&h, &o, &c->scratch);
        if (extra != extra_local) {
            wf_free(extra);
        }
        u->rpos += (size_t)n;
        c->s_head_done = true;
        if (px_http1_body_done(&c->sbody)) {
            c->s_done = true;
            report(c);
        }
        c->s_head_pending = true; /* written with the first body bytes, or by flush_head */
        return true;
    }
}

/* Send the response head if it is still waiting for body bytes. */
static void flush_head(px_conn_t *c)
{
    if (c->s_head_pending) {
        c->s_head_pending = false;
        uv_buf_t b = uv_buf_init((char *)c->scratch.data, (unsigned)c->scratch.len);
        down_write(c, &b, 1);
    }
}

static void up_data(void *arg, px_upconn_t *u)
{
    px_conn_t *c = arg;
    if (!c->s_head_done) {
        if (!response_head(c, u) || !c->s_head_done) {
            return;
        }
        if (c->s_done) {
            flush_head(c);
            finish_request(c); /* a response without content */
            return;
        }
    }
    while (!c->s_done) {
        size_t used = 0;
        wf_str_t data = {NULL, 0};
        int rc = px_http1_body_feed(&c->sbody, (const char *)u->rbuf.data + u->rpos,
                                    u->rbuf.len - u->rpos, &used, &data);
        if (rc < 0) {
            c->rflags |= PX_RF_UPE;
            report(c);
            conn_close(c);
            return;
        }
        u->rpos += used;
        c->bytes_out += data.len;
        bool done = px_http1_body_done(&c->sbody);
        if (done) {
            c->s_done = true;
            report(c);
        }
        if (data.len > 0) {
            write_chunk(c, NULL, c->s_chunked, data);
        }
        if (done) {
            flush_head(c);
            if (c->s_chunked) {
                uv_buf_t b = uv_buf_init("0\r\n\r\n", 5);
                down_write(c, &b, 1);
            }
            finish_request(c);
            return;
        }
        if (used == 0 && data.len == 0) {
            break;
        }
    }
    flush_head(c); /* the body is slower than its head: the client gets the head now */
    conn_update_reading(c);
}

static void tp_alloc(px_transport_t *t, size_t suggested, uv_buf_t *buf)
{
    px_conn_t *c = t->owner;
    if (c->rpos == c->rbuf.len) {
        c->rpos = 0;
        c->rbuf.len = 0;
    } else if (c->rpos > 0) {
        /* No slice into rbuf survives between reads, so the bytes may move. */
        memmove(c->rbuf.data, c->rbuf.data + c->rpos, unconsumed(c));
        c->rbuf.len -= c->rpos;
        c->rpos = 0;
    }
    if (c->rbuf.cap == 0) {
        px_worker_rbuf_get(c->w, &c->rbuf);
    }
    char *p = (char *)wf_buf_reserve(&c->rbuf, PX_READ_CHUNK);
    *buf = uv_buf_init(p, PX_READ_CHUNK);
}

static void tp_read(px_transport_t *t, ssize_t nread, const uv_buf_t *buf)
{
    px_conn_t *c = t->owner;
    if (nread < 0) {
        if (c->state == C_REQUEST) {
            /* The client left before its answer was complete. */
            c->rflags |= PX_RF_DC;
            report(c);
        }
        conn_close(c);
        return;
    }
    c->rbuf.len += (size_t)nread;
    if (c->state == C_LINGER) {
        c->rpos = c->rbuf.len;
        return;
    }
    conn_process(c);
}

static void tp_written(px_transport_t *t, int status)
{
    px_conn_t *c = t->owner;
    if (c->state == C_REQUEST) {
        conn_update_reading(c);
    }
}

static void conn_handle_closed(px_conn_t *c)
{
    if (--c->open_handles > 0) {
        return;
    }
    px_worker_t *w = c->w;
    px_worker_rbuf_put(w, &c->rbuf);
    wf_buf_free(&c->scratch);
    wf_buf_free(&c->meta);
    wf_buf_free(&c->replay);
    wf_buf_free(&c->mirror_head);
    wf_buf_free(&c->rw);
    wf_buf_free(&c->npath);
    wf_free(c->own_pool);
    wf_free(c);
    px__worker_conn_gone(w);
}

static void tp_closed(px_transport_t *t)
{
    conn_handle_closed(t->owner);
}

static void timer_closed(uv_handle_t *h)
{
    conn_handle_closed(h->data);
}

static const px_transport_cbs_t down_cbs = {
    .on_alloc = tp_alloc,
    .on_read = tp_read,
    .on_written = tp_written,
    .on_connect = NULL,
    .on_closed = tp_closed,
};

static void conn_close(px_conn_t *c)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    mirror_done(c, false);
    px_pool_cancel(&c->pwait);
    if (c->tunnel != NULL) {
        px_tunnel_stats_t st;
        px_tunnel_stats(c->tunnel, &st);
        px_tunnel_free(c->tunnel);
        c->tunnel = NULL;
        tunnel_report(c, &st);
    }
    if (c->own_pool != NULL) {
        /* Closed first: its connection then lets go of it, as it is freed before the
         * connection's close callbacks run. */
        px_pool_close(c->own_pool);
    }
    if (c->up != NULL) {
        px_pool_release(c->up, false);
        c->up = NULL;
    }
    if (c->active_slot != NULL) {
        (*c->active_slot)--;
        c->active_slot = NULL;
    }
    px_gen_release(c->w, c->gen);
    c->gen = NULL;
    px_worker_t *w = c->w;
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        w->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    atomic_fetch_sub_explicit(&w->ctr.downstream_cx_active, 1, memory_order_relaxed);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, timer_closed);
    uv_timer_stop(&c->rq_timer);
    uv_close((uv_handle_t *)&c->rq_timer, timer_closed);
    px_transport_close(&c->tp);
}

void px_conn_accept(px_worker_t *w, uv_stream_t *server, bool outbound, uint32_t route_port)
{
    px_conn_t *c = wf_calloc(1, sizeof(*c));
    c->w = w;
    c->outbound = outbound;
    c->route_port = route_port;
    if (px_transport_init(&w->loop, &c->tp, &down_cbs, c) != 0) {
        wf_free(c);
        return;
    }
    uv_timer_init(&w->loop, &c->timer);
    c->timer.data = c;
    uv_timer_init(&w->loop, &c->rq_timer);
    c->rq_timer.data = c;
    c->open_handles = 3;
    c->next = w->conns;
    if (w->conns != NULL) {
        w->conns->prev = c;
    }
    w->conns = c;
    w->n_conns++;
    atomic_fetch_add_explicit(&w->ctr.downstream_cx_total, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&w->ctr.downstream_cx_active, 1, memory_order_relaxed);
    reset_request(c);
    int rc = px_transport_accept(server, &c->tp);
    if (rc != 0) {
        WF_LOG_RL(WF_WARN, 10, "proxy", "accept failed", "err=%s", uv_strerror(rc));
        conn_close(c);
        return;
    }
    px_transport_peer_ip(&c->tp, c->peer_ip, sizeof(c->peer_ip));
    if (!outbound && w->px->tls != NULL) {
        /* The sidecar's inbound listener: PeerAuthentication decides what the first bytes
         * may be (px_tls.h); a refused connection ends in tp_read before any byte is read. */
        px_transport_tls_accept(&c->tp, w->px->tls,
                                px_tls_inbound_mode(w->gen != NULL ? &w->gen->snap->inbound : NULL,
                                                    (uint32_t)w->px->cfg.app_port));
    }
    conn_arm_timer(c);
    conn_update_reading(c);
}

void px_conn_drain_all(px_worker_t *w)
{
    px_conn_t *c = w->conns;
    while (c != NULL) {
        px_conn_t *next = c->next;
        if (c->state == C_HEAD && unconsumed(c) == 0) {
            conn_close(c);
        }
        c = next;
    }
}

void px_conn_close_all(px_worker_t *w)
{
    while (w->conns != NULL) {
        conn_close(w->conns);
    }
}
