/*
 * px_worker.c - worker threads: one libuv loop each, with its own SO_REUSEPORT inbound
 * listener (the kernel spreads new connections over the workers), its own upstream pool and
 * counters. Stopping: the admin thread wakes each worker (uv_async_t); the worker closes its
 * listener, closes idle connections, lets busy ones finish their response, and after
 * cfg.drain_ms closes whatever is left; then every handle is closed and the loop ends.
 */
#include "px_worker.h"

#include "px_conn.h"
#include "px_tcp.h"
#include "wf_alloc.h"
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
    px_workload_t peer;
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
        in.destination = &px->self;
        in.dest_service = px->self_service;
        in.dest_service_ns = px->self.namespace;
        if (info->peer.len > 0 && px_peer_parse(info->peer.p, info->peer.len, &peer, peer_store,
                                                sizeof(peer_store)) == 0) {
            in.source = &peer;
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
    px_conn_accept(w, server, server == (uv_stream_t *)&w->outbound);
}

static void close_walk_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

/* Everything in flight is over: close the worker's own handles so its loop ends. */
static void worker_finish(px_worker_t *w)
{
    if (w->stopped) {
        return;
    }
    w->stopped = true;
    px_pool_close(&w->app_pool);
    const px_snapshot_t *snap = w->px->snapshot;
    for (uint32_t i = 0; w->ob != NULL && i < snap->n_clusters; i++) {
        for (uint32_t e = 0; e < snap->clusters[i].n_endpoints; e++) {
            if (w->ob[i].pool_ready[e]) {
                px_pool_close(&w->ob[i].pools[e]);
            }
        }
    }
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

/* Per-cluster state for outbound routing: sized once, the snapshot does not change. */
static void ob_init(px_worker_t *w)
{
    const px_snapshot_t *snap = w->px->snapshot;
    if (snap == NULL) {
        return;
    }
    w->ob = wf_calloc(snap->n_clusters ? snap->n_clusters : 1, sizeof(*w->ob));
    for (uint32_t i = 0; i < snap->n_clusters; i++) {
        px_ob_cluster_t *oc = &w->ob[i];
        uint32_t n = snap->clusters[i].n_endpoints ? snap->clusters[i].n_endpoints : 1;
        oc->cluster = &snap->clusters[i];
        oc->active = wf_calloc(n, sizeof(*oc->active));
        oc->pools = wf_calloc(n, sizeof(*oc->pools));
        oc->pool_ready = wf_calloc(n, sizeof(*oc->pool_ready));
    }
}

static void ob_free(px_worker_t *w)
{
    const px_snapshot_t *snap = w->px->snapshot;
    for (uint32_t i = 0; w->ob != NULL && i < snap->n_clusters; i++) {
        wf_free(w->ob[i].active);
        wf_free(w->ob[i].pools);
        wf_free(w->ob[i].pool_ready);
    }
    wf_free(w->ob);
    w->ob = NULL;
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
    ob_init(w);
    rc = px__worker_listen(&w->loop, &w->inbound, (const struct sockaddr *)&w->px->inbound_addr,
                           on_inbound);
    w->inbound.data = w;
    w->inbound_open = rc == 0;
    if (rc == 0 && w->px->outbound_on) {
        const struct sockaddr *oa = (const struct sockaddr *)&w->px->outbound_addr;
        rc = px__worker_listen(&w->loop, &w->outbound, oa, on_inbound);
        w->outbound.data = w;
        w->outbound_open = rc == 0;
        w->outbound_port = ntohs(((const struct sockaddr_in *)oa)->sin_port);
        if (rc != 0) {
            uv_close((uv_handle_t *)&w->inbound, NULL);
            w->inbound_open = false;
        }
    }
    const px_snapshot_t *snap = w->px->snapshot;
    if (rc == 0 && snap != NULL) {
        rc = px_tcp_start(w, snap->inbound.ports, snap->inbound.n_ports, snap->inbound.app_address,
                          &w->tcp);
        if (rc != 0) {
            uv_close((uv_handle_t *)&w->inbound, NULL);
            w->inbound_open = false;
            if (w->outbound_open) {
                uv_close((uv_handle_t *)&w->outbound, NULL);
                w->outbound_open = false;
            }
        }
    }
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
        ob_free(w);
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
    ob_free(w);
}
