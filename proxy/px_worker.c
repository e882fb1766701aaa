/*
 * px_worker.c - worker threads: one libuv loop each, with its own SO_REUSEPORT inbound
 * listener (the kernel spreads new connections over the workers), its own upstream pool and
 * counters. Stopping: the admin thread wakes each worker (uv_async_t); the worker closes its
 * listener, closes idle connections, lets busy ones finish their response, and after
 * cfg.drain_ms closes whatever is left; then every handle is closed and the loop ends.
 */
#include "px_worker.h"

#include "px_access_log.h"
#include "px_conn.h"
#include "px_mirror.h"
#include "px_tracing.h"
#include "px_tcp.h"
#include "wf_alloc.h"
#include "wf_err.h"
#include "wf_log.h"

#include <errno.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>

/* The Istio metrics of one request, in the worker's shard. Inbound the proxy is the
 * destination and the caller is whoever its PX_PEER_HEADER says (unknown without one or with
 * a malformed one); outbound the proxy is the source and the destination is the endpoint
 * chosen (unknown when the request never got one: no route, no cluster, local replies). */
static void record_metrics(px_worker_t *w, const px_request_info_t *info)
{
    const px_proxy_t *px = w->px;
    px_workload_t peer, self;
    char peer_store[PX_PEER_MAX];
    px_labels_in_t in;
    memset(&in, 0, sizeof(in));
    in.protocol = WF_STR_LIT("http");
    in.response_code = info->status > 0 ? (uint32_t)info->status : 0;
    in.grpc_status = -1;
    in.flags = info->flags;
    if (info->inbound) {
        in.reporter = PX_REPORTER_DESTINATION;
        in.security = PX_SEC_NONE;
        /* Istio's destination_principal is the local certificate's identity: unknown unless
         * the connection was mTLS. */
        self = px->self;
        if (!info->mtls) {
            self.principal = WF_STR_LIT("");
        }
        in.destination = &self;
        in.dest_service = px->self_service;
        in.dest_service_ns = px->self.namespace;
        if (info->peer.len > 0 && px_peer_parse(info->peer.p, info->peer.len, &peer, peer_store,
                                                sizeof(peer_store)) == 0) {
            in.source = &peer;
        }
        if (info->mtls) {
            /* The header is trusted over mTLS; the principal is what the handshake proved. */
            in.security = PX_SEC_MUTUAL_TLS;
            if (in.source == NULL) {
                memset(&peer, 0, sizeof(peer));
                in.source = &peer;
            }
            peer.principal = info->peer_principal;
        }
    } else {
        in.reporter = PX_REPORTER_SOURCE;
        in.security = PX_SEC_UNKNOWN;
        in.source = &px->self;
        in.dest_service = info->upstream_service;
        if (info->upstream_endpoint != NULL) {
            wf_str_t svc = info->upstream_service;
            const char *dot = svc.len > 0 ? memchr(svc.p, '.', svc.len) : NULL;
            if (dot != NULL) {
                svc.len = (size_t)(dot - svc.p);
            }
            px_workload_from_endpoint(&peer, info->upstream_endpoint, svc);
            in.destination = &peer;
        }
        /* An endpoint the snapshot knows no labels of: the answering proxy said who it is. */
        const px_endpoint_t *ep = info->upstream_endpoint;
        if (ep != NULL && ep->n_labels == 0 && ep->workload.len == 0 &&
            info->upstream_peer.len > 0 &&
            px_peer_parse(info->upstream_peer.p, info->upstream_peer.len, &peer, peer_store,
                          sizeof(peer_store)) == 0) {
            in.destination = &peer;
        }
        if (info->mtls) {
            if (in.destination == NULL) {
                memset(&peer, 0, sizeof(peer));
                in.destination = &peer;
            }
            peer.principal = info->peer_principal;
        }
    }
    px_labels_t l;
    px_labels_build(&l, &in);
    px_metrics_record_http(w->metrics, &l, (double)info->duration_ns / 1e6, info->bytes_in,
                           info->bytes_out);
}

void px_request_done(px_worker_t *w, const px_request_info_t *info)
{
    int cls = info->status >= 100 && info->status < 600 ? info->status / 100 : 0;
    atomic_fetch_add_explicit(&w->ctr.requests_total[cls], 1, memory_order_relaxed);
    record_metrics(w, info);
    px_tracing_record(w, info);
    if (w->px->access_log != NULL) {
        px_access_log_record(w->px->access_log, w->id, info);
    }
    if (wf_log_enabled(WF_DEBUG)) {
        char fl[PX_RFLAGS_MAX];
        WF_LOG(WF_DEBUG, "proxy", "request",
               "method=%.*s authority=%.*s path=%.*s status=%d flags=%s bytes_in=%llu "
               "bytes_out=%llu duration_us=%lld request_id=%.*s",
               (int)info->method.len, info->method.p, (int)info->authority.len, info->authority.p,
               (int)info->path.len, info->path.p, info->status,
               (px_rflags_format(info->flags, fl), fl), (unsigned long long)info->bytes_in,
               (unsigned long long)info->bytes_out, (long long)(info->duration_ns / 1000),
               (int)info->request_id.len, info->request_id.p);
    }
}

#define RBUF_CACHE_MAX_CAP (128 * 1024)

void px_worker_rbuf_get(px_worker_t *w, wf_buf_t *b)
{
    if (b->cap == 0 && w->n_rbuf_cache > 0) {
        *b = w->rbuf_cache[--w->n_rbuf_cache];
    }
}

void px_worker_rbuf_put(px_worker_t *w, wf_buf_t *b)
{
    if (b->cap > 0 && b->cap <= RBUF_CACHE_MAX_CAP && w->n_rbuf_cache < PX_RBUF_CACHE &&
        !w->stopped) {
        b->len = 0;
        w->rbuf_cache[w->n_rbuf_cache++] = *b;
        *b = (wf_buf_t)WF_BUF_INIT;
        return;
    }
    wf_buf_free(b);
}

uint64_t px_worker_rand(px_worker_t *w)
{
    return px_rng_next(&w->rng);
}

static void on_inbound(uv_stream_t *server, int status)
{
    px_worker_t *w = server->data;
    if (status < 0) {
        WF_LOG_RL(WF_WARN, 10, "proxy", "accept error", "err=%s", uv_strerror(status));
        return;
    }
    px_conn_accept(w, server, server == (uv_stream_t *)&w->outbound, 0);
}

static void on_gateway(uv_stream_t *server, int status)
{
    px_listener_t *l = server->data;
    if (status < 0) {
        WF_LOG_RL(WF_WARN, 10, "proxy", "accept error", "err=%s", uv_strerror(status));
        return;
    }
    px_conn_accept(l->w, server, true, l->port);
}

static void close_walk_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

static void gen_free_all(px_worker_t *w);

/* Everything in flight is over: close the worker's own handles so its loop ends. */
static void worker_finish(px_worker_t *w)
{
    if (w->stopped) {
        return;
    }
    w->stopped = true;
    px_mirror_abort_all(w);
    px_pool_close(&w->app_pool);
    while (w->n_rbuf_cache > 0) {
        wf_buf_free(&w->rbuf_cache[--w->n_rbuf_cache]);
    }
    gen_free_all(w);
    uv_mutex_lock(&w->px->snap_mu); /* px_proxy_install sends to it no more */
    w->config_async.data = NULL;
    uv_mutex_unlock(&w->px->snap_mu);
    uv_close((uv_handle_t *)&w->config_async, NULL);
    uv_timer_stop(&w->drain_timer);
    uv_close((uv_handle_t *)&w->drain_timer, NULL);
    uv_close((uv_handle_t *)&w->stop_async, NULL);
}

void px__worker_conn_gone(px_worker_t *w)
{
    w->n_conns--;
    if (w->draining && w->n_conns == 0) {
        worker_finish(w);
    }
}

static void drain_timer_cb(uv_timer_t *t)
{
    px_worker_t *w = t->data;
    WF_LOG(WF_INFO, "proxy", "drain period over", "worker=%d open_connections=%u", w->id,
           w->n_conns);
    px_conn_close_all(w);
    px_tcp_close_all(w->tcp);
    if (w->n_conns == 0) {
        worker_finish(w);
    }
}

static void close_gateway(px_worker_t *w)
{
    for (uint32_t i = 0; i < w->n_gw; i++) {
        if (w->gw[i].open) {
            uv_close((uv_handle_t *)&w->gw[i].tcp, NULL);
            w->gw[i].open = false;
        }
    }
}

static void stop_async_cb(uv_async_t *a)
{
    px_worker_t *w = a->data;
    if (w->draining) {
        return;
    }
    w->draining = true;
    if (w->inbound_open) {
        uv_close((uv_handle_t *)&w->inbound, NULL);
        w->inbound_open = false;
    }
    if (w->outbound_open) {
        uv_close((uv_handle_t *)&w->outbound, NULL);
        w->outbound_open = false;
    }
    close_gateway(w);
    px_tcp_stop_listening(w->tcp);
    px_conn_drain_all(w);
    if (w->n_conns == 0) {
        worker_finish(w);
        return;
    }
    uv_timer_start(&w->drain_timer, drain_timer_cb, (uint64_t)w->px->cfg.drain_ms, 0);
}

/* SO_REUSEPORT is set before bind (libuv 1.44 has no flag for it). */
int px__worker_listen(uv_loop_t *loop, uv_tcp_t *tcp, const struct sockaddr *addr,
                      uv_connection_cb cb)
{
    int rc = uv_tcp_init_ex(loop, tcp, addr->sa_family);
    if (rc != 0) {
        return rc;
    }
    uv_os_fd_t fd;
    int one = 1;
    rc = uv_fileno((uv_handle_t *)tcp, &fd);
    if (rc == 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
        rc = -errno;
    }
    if (rc == 0) {
        rc = uv_tcp_bind(tcp, addr, 0);
    }
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)tcp, 511, cb);
    }
    if (rc != 0) {
        uv_close((uv_handle_t *)tcp, NULL);
    }
    return rc;
}

/* A generation for snap and its shared balancing state lb (whose references it takes), with
 * one user: the worker. Clusters that were in old share their counters with it. */
static px_gen_t *gen_new(px_snapshot_t *snap, px_lb_shared_t *lb, const px_gen_t *old)
{
    px_gen_t *g = wf_calloc(1, sizeof(*g));
    g->snap = snap;
    g->lb = lb;
    g->users = 1;
    g->ob = wf_calloc(snap->n_clusters ? snap->n_clusters : 1, sizeof(*g->ob));
    for (uint32_t i = 0; i < snap->n_clusters; i++) {
        px_ob_cluster_t *oc = &g->ob[i];
        uint32_t n = snap->clusters[i].n_endpoints ? snap->clusters[i].n_endpoints : 1;
        oc->cluster = &snap->clusters[i];
        oc->lb = &lb->clusters[i];
        oc->active = wf_calloc(n, sizeof(*oc->active));
        oc->pools = wf_calloc(n, sizeof(*oc->pools));
        oc->pool_ready = wf_calloc(n, sizeof(*oc->pool_ready));
        const px_cluster_t *was =
            old != NULL ? px_snapshot_cluster(old->snap, snap->clusters[i].name) : NULL;
        oc->st = was != NULL ? old->ob[was - old->snap->clusters].st
                             : wf_calloc(1, sizeof(px_cluster_stats_t));
        oc->st->refs++;
    }
    return g;
}

/* Free a generation nobody uses: its idle pooled connections close (no busy ones remain). */
static void gen_free(px_gen_t *g)
{
    const px_snapshot_t *snap = g->snap;
    for (uint32_t i = 0; i < snap->n_clusters; i++) {
        px_lb_ob_close(&g->ob[i]);
        px_lb_ob_free(&g->ob[i]);
        wf_free(g->ob[i].active);
        wf_free(g->ob[i].pools);
        wf_free(g->ob[i].pool_ready);
        if (--g->ob[i].st->refs == 0) {
            wf_free(g->ob[i].st);
        }
    }
    wf_free(g->ob);
    px_lb_shared_unref(g->lb);
    px_snapshot_unref(g->snap);
    wf_free(g);
}

px_gen_t *px_gen_acquire(px_worker_t *w)
{
    if (w->gen != NULL) {
        w->gen->users++;
    }
    return w->gen;
}

void px_gen_release(px_worker_t *w, px_gen_t *g)
{
    if (g == NULL || --g->users > 0) {
        return;
    }
    for (px_gen_t **pp = &w->retired; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == g) {
            *pp = g->next;
            break;
        }
    }
    gen_free(g);
}

/* Switch to the proxy's current snapshot when it is not this worker's already. */
static void gen_update(px_worker_t *w)
{
    px_proxy_t *px = w->px;
    uv_mutex_lock(&px->snap_mu);
    px_snapshot_t *s = px->snapshot;
    if (s == NULL || (w->gen != NULL && w->gen->snap == s)) {
        uv_mutex_unlock(&px->snap_mu);
        return;
    }
    px_gen_t *old = w->gen;
    w->gen = gen_new(px_snapshot_ref(s), px_lb_shared_ref(px->lb), old);
    uv_mutex_unlock(&px->snap_mu);
    if (old != NULL) {
        old->next = w->retired;
        w->retired = old;
        px_gen_release(w, old);
    }
}

static void config_async_cb(uv_async_t *a)
{
    px_worker_t *w = a->data;
    if (!w->stopped) {
        gen_update(w);
    }
}

/* The worker's generations at its end: nothing uses them any more. */
static void gen_free_all(px_worker_t *w)
{
    while (w->retired != NULL) {
        px_gen_t *g = w->retired;
        w->retired = g->next;
        gen_free(g);
    }
    if (w->gen != NULL) {
        uv_mutex_lock(&w->px->snap_mu);
        px_gen_t *g = w->gen;
        w->gen = NULL;
        uv_mutex_unlock(&w->px->snap_mu);
        gen_free(g);
    }
}

static bool gateway_servers_equal(const px_gateway_t *a, const px_gateway_t *b)
{
    if (a->n_servers != b->n_servers) {
        return false;
    }
    for (uint32_t i = 0; i < a->n_servers; i++) {
        if (a->servers[i].port != b->servers[i].port) {
            return false;
        }
    }
    return true;
}

static void nack_locked(px_proxy_t *px, uint64_t version, const char *why)
{
    snprintf(px->nack, sizeof(px->nack), "%s", why);
    px->nack_version = version;
    atomic_fetch_add_explicit(&px->config_rejected, 1, memory_order_relaxed);
}

void px_proxy_nack(px_proxy_t *px, uint64_t version, const char *why)
{
    uv_mutex_lock(&px->snap_mu);
    nack_locked(px, version, why);
    uv_mutex_unlock(&px->snap_mu);
}

/* TLS origination to external services (SIMPLE, MUTUAL with file certificates) is not built:
 * a cluster asking for it would silently go out in plaintext, so the snapshot is refused. */
static const char *tls_unsupported(const px_snapshot_t *s, char *buf, size_t cap)
{
    for (uint32_t i = 0; i < s->n_clusters; i++) {
        const px_cluster_t *c = &s->clusters[i];
        if (c->tls.mode == PX_TLS_SIMPLE || c->tls.mode == PX_TLS_MUTUAL) {
            snprintf(buf, cap, "cluster %.*s: tls mode %s (TLS origination) is not supported",
                     (int)c->name.len, c->name.p, px_tls_mode_name(c->tls.mode));
            return buf;
        }
    }
    return NULL;
}

int px_proxy_install(px_proxy_t *px, px_snapshot_t *s, char *json, char *err, size_t errlen)
{
    const px_proxy_info_t *pi = &s->proxy;
    const char *why = NULL;
    char tls_why[300];
    uv_mutex_lock(&px->snap_mu);
    const px_proxy_info_t *now = px->identity != NULL ? &px->identity->proxy : NULL;
    if (now != NULL &&
        (!wf_str_eq(now->service, pi->service) || !wf_str_eq(now->namespace, pi->namespace) ||
         !wf_str_eq(now->version, pi->version) || !wf_str_eq(now->workload, pi->workload) ||
         now->mode != pi->mode)) {
        why = "proxy identity (service, namespace, version, workload, mode) differs from the "
              "running proxy's: it takes a restart";
    } else if ((pi->mode == PX_MODE_GATEWAY) != px->gateway) {
        why = px->gateway ? "not a gateway's snapshot (proxy.mode is sidecar)"
                          : "a gateway's snapshot (proxy.mode gateway): run with --mode gateway";
    } else if (px->snapshot != NULL && s->version <= px->snapshot->version) {
        why = "version is not newer than the one in use";
    } else if (px->gateway && px->gateway_open && px->snapshot != NULL &&
               !gateway_servers_equal(&px->snapshot->gateway, &s->gateway)) {
        why = "gateway servers (ports) changed: it takes a restart";
    } else if (px->snapshot != NULL && !px_tcp_ports_equal(&px->snapshot->inbound, &s->inbound)) {
        why = "inbound TCP ports changed: it takes a restart";
    } else {
        why = tls_unsupported(s, tls_why, sizeof(tls_why));
    }
    if (why != NULL) {
        snprintf(err, errlen, "version %llu refused: %s", (unsigned long long)s->version, why);
        nack_locked(px, s->version, err);
        uv_mutex_unlock(&px->snap_mu);
        px_snapshot_unref(s);
        wf_free(json);
        return WF_E_INVAL;
    }
    px_snapshot_t *old = px->snapshot;
    px_lb_shared_t *old_lb = px->lb;
    char *old_json = px->snapshot_json;
    px->snapshot = s;
    px->lb = px_lb_shared_new(s);
    px_lb_shared_carry(px->lb, old_lb);
    px->snapshot_json = json;
    if (px->identity == NULL) {
        px->identity = px_snapshot_ref(s);
    }
    px->nack[0] = '\0';
    if (px->export_async != NULL) {
        uv_async_send(px->export_async);
    }
    for (int i = 0; i < px->n_workers; i++) {
        if (px->workers[i].config_async.data != NULL) {
            uv_async_send(&px->workers[i].config_async);
        }
    }
    uv_mutex_unlock(&px->snap_mu);
    atomic_fetch_add_explicit(&px->config_accepted, 1, memory_order_relaxed);
    px_lb_shared_unref(old_lb);
    px_snapshot_unref(old);
    wf_free(old_json);
    return 0;
}

/* A sidecar's listeners: inbound, outbound unless it is off, and the snapshot's TCP ports. */
static int open_sidecar(px_worker_t *w)
{
    int rc = 0;
    if (w->px->inbound_on) {
        rc = px__worker_listen(&w->loop, &w->inbound, (const struct sockaddr *)&w->px->inbound_addr,
                               on_inbound);
        w->inbound.data = w;
        w->inbound_open = rc == 0;
    }
    if (rc == 0 && w->px->outbound_on) {
        const struct sockaddr *oa = (const struct sockaddr *)&w->px->outbound_addr;
        rc = px__worker_listen(&w->loop, &w->outbound, oa, on_inbound);
        w->outbound.data = w;
        w->outbound_open = rc == 0;
        w->outbound_port = ntohs(((const struct sockaddr_in *)oa)->sin_port);
        if (rc != 0 && w->inbound_open) {
            uv_close((uv_handle_t *)&w->inbound, NULL);
            w->inbound_open = false;
        }
    }
    const px_snapshot_t *snap = w->gen != NULL ? w->gen->snap : NULL;
    if (rc == 0 && snap != NULL && w->px->inbound_on) {
        rc = px_tcp_start(w, snap->inbound.ports, snap->inbound.n_ports, snap->inbound.app_address,
                          &w->tcp);
        if (rc != 0) {
            if (w->inbound_open) {
                uv_close((uv_handle_t *)&w->inbound, NULL);
                w->inbound_open = false;
            }
            if (w->outbound_open) {
                uv_close((uv_handle_t *)&w->outbound, NULL);
                w->outbound_open = false;
            }
        }
    }
    return rc;
}

/* A gateway's listeners: one per gateway server of the snapshot, on --gateway-bind. */
static int open_gateway(px_worker_t *w)
{
    const px_gateway_t *g = &w->gen->snap->gateway;
    w->gw = wf_calloc(g->n_servers ? g->n_servers : 1, sizeof(*w->gw));
    w->n_gw = g->n_servers;
    for (uint32_t i = 0; i < g->n_servers; i++) {
        px_listener_t *l = &w->gw[i];
        struct sockaddr_storage a = w->px->gateway_addr;
        if (a.ss_family == AF_INET6) {
            ((struct sockaddr_in6 *)&a)->sin6_port = htons((uint16_t)g->servers[i].port);
        } else {
            ((struct sockaddr_in *)&a)->sin_port = htons((uint16_t)g->servers[i].port);
        }
        l->w = w;
        l->port = g->servers[i].port;
        int rc = px__worker_listen(&w->loop, &l->tcp, (const struct sockaddr *)&a, on_gateway);
        if (rc != 0) {
            WF_LOG(WF_ERROR, "proxy", "gateway listener failed", "server=%.*s port=%u err=%s",
                   (int)g->servers[i].name.len, g->servers[i].name.p, l->port, uv_strerror(rc));
            close_gateway(w);
            return rc;
        }
        l->tcp.data = l;
        l->open = true;
    }
    return 0;
}

static void worker_thread(void *arg)
{
    px_worker_t *w = arg;
    const px_config_t *cfg = &w->px->cfg;
    int rc = uv_loop_init(&w->loop);
    if (rc != 0) {
        w->start_rc = rc;
        uv_sem_post(&w->started);
        return;
    }
    px_rng_init(&w->rng); /* falls back to a clock seed by itself */
    px_pool_init(&w->app_pool, &w->loop, (const struct sockaddr *)&w->px->app_addr,
                 (uint64_t)cfg->connect_timeout_ms, (uint64_t)cfg->upstream_idle_ms);
    w->app_pool.cx_total = &w->ctr.upstream_cx_total;
    w->app_pool.cx_active = &w->ctr.upstream_cx_active;
    w->app_pool.cx_connect_fail = &w->ctr.upstream_cx_connect_fail;
    uv_async_init(&w->loop, &w->stop_async, stop_async_cb);
    w->stop_async.data = w;
    uv_timer_init(&w->loop, &w->drain_timer);
    w->drain_timer.data = w;
    uv_async_init(&w->loop, &w->config_async, config_async_cb);
    /* Under snap_mu: px_proxy_install (the control thread) sends to the workers whose handle
     * is ready, and a gateway's workers may start while it runs. */
    uv_mutex_lock(&w->px->snap_mu);
    w->config_async.data = w;
    uv_mutex_unlock(&w->px->snap_mu);
    gen_update(w);
    rc = w->px->gateway ? open_gateway(w) : open_sidecar(w);
    w->start_rc = rc;
    if (rc != 0) {
        worker_finish(w);
        uv_run(&w->loop, UV_RUN_DEFAULT);
        uv_loop_close(&w->loop);
        px_tcp_free(w->tcp);
        w->tcp = NULL;
        uv_sem_post(&w->started);
        return;
    }
    uv_sem_post(&w->started);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    /* Anything still open (should be nothing) is closed so the loop can be freed. */
    uv_walk(&w->loop, close_walk_cb, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    px_tcp_free(w->tcp);
    w->tcp = NULL;
    if (uv_loop_close(&w->loop) != 0) {
        WF_LOG(WF_WARN, "proxy", "worker loop not empty at exit", "worker=%d", w->id);
    }
}

int px_worker_start(px_worker_t *w)
{
    int rc = uv_sem_init(&w->started, 0);
    if (rc != 0) {
        return rc;
    }
    rc = uv_thread_create(&w->thread, worker_thread, w);
    if (rc != 0) {
        uv_sem_destroy(&w->started);
        return rc;
    }
    uv_sem_wait(&w->started);
    uv_sem_destroy(&w->started);
    if (w->start_rc != 0) {
        uv_thread_join(&w->thread);
        wf_free(w->gw);
        w->gw = NULL;
        return w->start_rc;
    }
    return 0;
}

void px_worker_stop(px_worker_t *w)
{
    uv_async_send(&w->stop_async);
}

void px_worker_join(px_worker_t *w)
{
    uv_thread_join(&w->thread);
    wf_free(w->gw);
    w->gw = NULL;
}
