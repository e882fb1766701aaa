/*
 * px_admin.c - the admin listener (see px_admin.h). A request is read into a small buffer
 * (its head at most 16 KiB; bodies are ignored), parsed with the proxy's own HTTP/1.1 parser,
 * answered in one write, and the connection shut down.
 */
#include "px_admin.h"

#include "px_access_log.h"
#include "px_cert.h"
#include "px_creds.h"

#include "px_http1.h"
#include "px_tracing.h"
#include "px_transport.h"
#include "wf_alloc.h"
#include "wf_clock.h"
#include "wf_log.h"

#include <string.h>

#define PX_ADMIN_MAX_HEAD 16384
#define PX_ADMIN_HEADERS 64

typedef struct {
    px_transport_t tp;
    px_admin_t *a;
    wf_buf_t in;
    wf_buf_t out;
    bool answered;
    bool quit;
} px_admin_conn_t;

static uint64_t sum(const px_proxy_t *px, size_t field_off)
{
    uint64_t v = 0;
    for (int i = 0; i < px->n_workers; i++) {
        const char *base = (const char *)&px->workers[i].ctr;
        v += atomic_load_explicit((_Atomic uint64_t *)(base + field_off), memory_order_relaxed);
    }
    return v;
}

#define SUM(px, field) sum((px), offsetof(px_counters_t, field))

/* Worker wi's state for cluster i of the proxy's current snapshot, or NULL when that worker
 * has not switched to a snapshot with this cluster yet. Under px->snap_mu. */
static const px_ob_cluster_t *worker_cluster(const px_proxy_t *px, int wi, uint32_t i)
{
    const px_gen_t *g = px->workers[wi].gen;
    const px_snapshot_t *s = px->snapshot;
    if (g == NULL) {
        return NULL;
    }
    if (g->snap == s) {
        return &g->ob[i];
    }
    const px_cluster_t *c = px_snapshot_cluster(g->snap, s->clusters[i].name);
    return c != NULL ? &g->ob[c - g->snap->clusters] : NULL;
}

void px_admin_stats(const px_proxy_t *px, wf_buf_t *out)
{
    wf_buf_printf(out,
                  "# HELP weft_proxy_downstream_cx_total Downstream connections accepted.\n"
                  "# TYPE weft_proxy_downstream_cx_total counter\n"
                  "weft_proxy_downstream_cx_total %llu\n"
                  "# HELP weft_proxy_downstream_cx_active Downstream connections open.\n"
                  "# TYPE weft_proxy_downstream_cx_active gauge\n"
                  "weft_proxy_downstream_cx_active %llu\n",
                  (unsigned long long)SUM(px, downstream_cx_total),
                  (unsigned long long)SUM(px, downstream_cx_active));
    wf_buf_puts(out, "# HELP weft_proxy_requests_total Requests finished, by the class of the "
                     "status sent downstream (none: no response was sent).\n"
                     "# TYPE weft_proxy_requests_total counter\n");
    static const char *const cls[6] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
    for (int c = 0; c < 6; c++) {
        wf_buf_printf(out, "weft_proxy_requests_total{response_code_class=\"%s\"} %llu\n", cls[c],
                      (unsigned long long)sum(px, offsetof(px_counters_t, requests_total) +
                                                      (size_t)c * sizeof(_Atomic uint64_t)));
    }
    static const struct {
        const char *name, *type, *help;
        size_t in_off;  /* in px_counters_t */
        size_t out_off; /* in px_cluster_stats_t */
    } up[] = {
        {"weft_proxy_upstream_cx_total", "counter", "Upstream connections opened.",
         offsetof(px_counters_t, upstream_cx_total), offsetof(px_cluster_stats_t, cx_total)},
        {"weft_proxy_upstream_cx_active", "gauge", "Upstream connections open.",
         offsetof(px_counters_t, upstream_cx_active), offsetof(px_cluster_stats_t, cx_active)},
        {"weft_proxy_upstream_cx_connect_fail_total", "counter",
         "Upstream connection attempts that failed or timed out.",
         offsetof(px_counters_t, upstream_cx_connect_fail),
         offsetof(px_cluster_stats_t, cx_connect_fail)},
    };
    uv_mutex_lock((uv_mutex_t *)&px->snap_mu);
    const px_snapshot_t *snap = px->snapshot;
    for (size_t m = 0; m < sizeof(up) / sizeof(up[0]); m++) {
        wf_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s{cluster_name=\"%s\"} %llu\n", up[m].name,
                      up[m].help, up[m].name, up[m].type, up[m].name, px->inbound_cluster,
                      (unsigned long long)sum(px, up[m].in_off));
        for (uint32_t i = 0; snap != NULL && i < snap->n_clusters; i++) {
            uint64_t v = 0;
            for (int wi = 0; wi < px->n_workers; wi++) {
                const px_ob_cluster_t *oc = worker_cluster(px, wi, i);
                const char *base = oc != NULL ? (const char *)oc->st : NULL;
                if (base != NULL) {
                    v += atomic_load_explicit((_Atomic uint64_t *)(base + up[m].out_off),
                                              memory_order_relaxed);
                }
            }
            wf_buf_printf(out, "%s{cluster_name=\"%s\"} %llu\n", up[m].name,
                          snap->clusters[i].name.p, (unsigned long long)v);
        }
    }
    wf_buf_printf(out,
                  "# HELP weft_proxy_upstream_rq_reused_total Requests sent on a pooled "
                  "keep-alive connection.\n"
                  "# TYPE weft_proxy_upstream_rq_reused_total counter\n"
                  "weft_proxy_upstream_rq_reused_total %llu\n",
                  (unsigned long long)SUM(px, upstream_rq_reused));
    wf_buf_printf(out,
                  "# HELP weft_proxy_mirror_rq_total Mirrored request copies, by outcome "
                  "(skipped: the body had not arrived with the head).\n"
                  "# TYPE weft_proxy_mirror_rq_total counter\n"
                  "weft_proxy_mirror_rq_total{result=\"done\"} %llu\n"
                  "weft_proxy_mirror_rq_total{result=\"failed\"} %llu\n"
                  "weft_proxy_mirror_rq_total{result=\"skipped\"} %llu\n",
                  (unsigned long long)SUM(px, mirror_rq_done),
                  (unsigned long long)SUM(px, mirror_rq_failed),
                  (unsigned long long)SUM(px, mirror_rq_skipped));
    wf_buf_printf(out,
                  "# HELP weft_proxy_authz_allowed_total Inbound requests allowed by the "
                  "workload's authorization policies (counted only when it has some).\n"
                  "# TYPE weft_proxy_authz_allowed_total counter\n"
                  "weft_proxy_authz_allowed_total %llu\n"
                  "# HELP weft_proxy_authz_denied_total Inbound requests denied (403) by the "
                  "workload's authorization policies.\n"
                  "# TYPE weft_proxy_authz_denied_total counter\n"
                  "weft_proxy_authz_denied_total %llu\n",
                  (unsigned long long)SUM(px, authz_allowed),
                  (unsigned long long)SUM(px, authz_denied));
    if (snap != NULL) {
        wf_buf_puts(out, "# HELP weft_proxy_upstream_rq_total Outbound requests finished, by "
                         "the cluster chosen.\n# TYPE weft_proxy_upstream_rq_total counter\n");
        for (uint32_t i = 0; i < snap->n_clusters; i++) {
            uint64_t v = 0;
            for (int wi = 0; wi < px->n_workers; wi++) {
                const px_ob_cluster_t *oc = worker_cluster(px, wi, i);
                if (oc != NULL) {
                    v += atomic_load_explicit(&oc->st->rq_total, memory_order_relaxed);
                }
            }
            wf_buf_printf(out, "weft_proxy_upstream_rq_total{cluster_name=\"%s\"} %llu\n",
                          snap->clusters[i].name.p, (unsigned long long)v);
        }
    }
    wf_buf_printf(out,
                  "# HELP weft_proxy_config_version Version of the config snapshot in use (0: "
                  "none).\n"
                  "# TYPE weft_proxy_config_version gauge\n"
                  "weft_proxy_config_version %llu\n",
                  (unsigned long long)(snap != NULL ? snap->version : 0));
    wf_buf_printf(out,
                  "# HELP weft_proxy_config_updates_total Config snapshots received, by whether "
                  "they were applied (ACK) or refused (NACK, the last good one kept serving).\n"
                  "# TYPE weft_proxy_config_updates_total counter\n"
                  "weft_proxy_config_updates_total{result=\"accepted\"} %llu\n"
                  "weft_proxy_config_updates_total{result=\"rejected\"} %llu\n",
                  (unsigned long long)atomic_load(&px->config_accepted),
                  (unsigned long long)atomic_load(&px->config_rejected));
    if (px->lb != NULL) {
        px_lb_render(px->lb, wf_mono_ns() / 1000000, out);
    }
    uv_mutex_unlock((uv_mutex_t *)&px->snap_mu);
    if (px->metrics != NULL) {
        px_metrics_render(px->metrics, out); /* istio_* families only: no name is shared */
    }
    px_tracing_stats(px, out);
    px_access_log_stats(px->access_log, out);
    px_tls_ctx_metrics(px->tls, out);
    px_cert_stats(px, wf_wall_ms(), out);
}

static void clusters(const px_proxy_t *px, wf_buf_t *out)
{
    const char *n = px->inbound_cluster;
    const char *h = px->app_host;
    wf_buf_printf(out, "%s::%s::cx_active::%llu\n", n, h,
                  (unsigned long long)SUM(px, upstream_cx_active));
    wf_buf_printf(out, "%s::%s::cx_total::%llu\n", n, h,
                  (unsigned long long)SUM(px, upstream_cx_total));
    wf_buf_printf(out, "%s::%s::cx_connect_fail::%llu\n", n, h,
                  (unsigned long long)SUM(px, upstream_cx_connect_fail));
    wf_buf_printf(out, "%s::%s::health_flags::healthy\n", n, h);
    uv_mutex_lock((uv_mutex_t *)&px->snap_mu);
    const px_snapshot_t *s = px->snapshot;
    for (uint32_t i = 0; s != NULL && i < s->n_clusters; i++) {
        const px_cluster_t *c = &s->clusters[i];
        for (uint32_t e = 0; e < c->n_endpoints; e++) {
            const px_endpoint_t *ep = &c->endpoints[e];
            /* Envoy's flag for an endpoint outlier detection has ejected. */
            bool out_now =
                px->lb != NULL && px_lb_ejected(&px->lb->clusters[i], e, wf_mono_ns() / 1000000);
            wf_buf_printf(out, "%s::%s:%u::health_flags::%s\n", c->name.p, ep->address.p, ep->port,
                          out_now ? "/failed_outlier_check" : "healthy");
            wf_buf_printf(out, "%s::%s:%u::weight::%u\n", c->name.p, ep->address.p, ep->port,
                          ep->weight);
        }
    }
    uv_mutex_unlock((uv_mutex_t *)&px->snap_mu);
}

/* Fed by a control plane that has not sent the first snapshot yet (Envoy's INITIALIZING). */
/* Whether the proxy still waits for its first snapshot (a gateway: for its server ports), or
 * for its first workload certificate from the CA: until then it would send plaintext where
 * auto mTLS should be used, so it is not ready (as Envoy waits for its SDS secrets). */
static bool awaiting_config(px_proxy_t *px)
{
    uv_mutex_lock(&px->snap_mu);
    bool none = px->snapshot == NULL || (px->gateway && !px->gateway_open);
    uv_mutex_unlock(&px->snap_mu);
    if (!none && atomic_load(&px->cert_expected)) {
        px_creds_snap_t *s = px_creds_acquire(px->creds);
        none = s->leaf == NULL;
        px_creds_release(s);
    }
    return px->cfg.control != NULL && none;
}

static void respond(px_admin_conn_t *ac, int status, const char *reason, const char *ctype,
                    const void *body, size_t len)
{
    wf_buf_printf(&ac->out,
                  "HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %zu\r\n"
                  "connection: close\r\n\r\n",
                  status, reason, ctype, len);
    wf_buf_append(&ac->out, body, len);
}

static void handle(px_admin_conn_t *ac, const px_http1_head_t *h)
{
    px_proxy_t *px = ac->a->px;
    wf_str_t path = h->path;
    for (size_t i = 0; i < path.len; i++) {
        if (path.p[i] == '?') {
            path.len = i;
            break;
        }
    }
    bool get = h->method == PX_HTTP1_M_GET || h->method == PX_HTTP1_M_HEAD;
    const char *text = "text/plain; charset=UTF-8";
    if (wf_str_eq_c(path, "/ready") && get) {
        if (atomic_load(&px->draining)) {
            respond(ac, 503, "Service Unavailable", text, "DRAINING\n", 9);
        } else if (atomic_load(&px->ready) && awaiting_config(px)) {
            respond(ac, 503, "Service Unavailable", text, "INITIALIZING\n", 13);
        } else if (atomic_load(&px->ready) && px_cert_expired(px, wf_wall_ms())) {
            respond(ac, 503, "Service Unavailable", text, "CERTIFICATE_EXPIRED\n", 20);
        } else if (atomic_load(&px->ready)) {
            respond(ac, 200, "OK", text, "LIVE\n", 5);
        } else {
            respond(ac, 503, "Service Unavailable", text, "PRE_INITIALIZING\n", 17);
        }
    } else if (wf_str_eq_c(path, "/quitquitquit")) {
        if (h->method != PX_HTTP1_M_POST) {
            respond(ac, 405, "Method Not Allowed", text, "This endpoint requires POST.\n", 29);
        } else {
            respond(ac, 200, "OK", text, "OK\n", 3);
            ac->quit = true;
        }
    } else if (wf_str_eq_c(path, "/config_dump") && get) {
        uv_mutex_lock(&px->snap_mu);
        const char *j = px->snapshot_json != NULL ? px->snapshot_json : "{}\n";
        respond(ac, 200, "OK", "application/json", j, strlen(j));
        uv_mutex_unlock(&px->snap_mu);
    } else if (wf_str_eq_c(path, "/clusters") && get) {
        wf_buf_t b = WF_BUF_INIT;
        clusters(px, &b);
        respond(ac, 200, "OK", text, b.data, b.len);
        wf_buf_free(&b);
    } else if (wf_str_eq_c(path, "/certs") && get) {
        wf_buf_t b = WF_BUF_INIT;
        px_cert_dump(px, wf_wall_ms(), &b);
        respond(ac, 200, "OK", "application/json", b.data, b.len);
        wf_buf_free(&b);
    } else if (wf_str_eq_c(path, "/stats/prometheus") && get) {
        wf_buf_t b = WF_BUF_INIT;
        px_admin_stats(px, &b);
        respond(ac, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
        wf_buf_free(&b);
    } else {
        respond(ac, 404, "Not Found", text, "invalid path\n", 13);
    }
}

static void ac_alloc(px_transport_t *t, size_t suggested, uv_buf_t *buf)
{
    px_admin_conn_t *ac = t->owner;
    char *p = (char *)wf_buf_reserve(&ac->in, 4096);
    *buf = uv_buf_init(p, 4096);
}

static void ac_answer(px_admin_conn_t *ac)
{
    ac->answered = true;
    uv_buf_t b = uv_buf_init((char *)ac->out.data, (unsigned)ac->out.len);
    px_transport_write(&ac->tp, &b, 1);
    px_transport_shutdown(&ac->tp);
}

static void ac_read(px_transport_t *t, ssize_t nread, const uv_buf_t *buf)
{
    px_admin_conn_t *ac = t->owner;
    if (nread < 0) {
        px_transport_close(&ac->tp);
        return;
    }
    ac->in.len += (size_t)nread;
    if (ac->answered) {
        ac->in.len = 0;
        return;
    }
    px_http1_limits_t lim;
    px_http1_limits_init(&lim);
    lim.max_head = PX_ADMIN_MAX_HEAD;
    px_http1_header_t hdrs[PX_ADMIN_HEADERS];
    px_http1_head_t h;
    px_http1_error_t err;
    int n = px_http1_parse_request((const char *)ac->in.data, ac->in.len, &lim, hdrs,
                                   PX_ADMIN_HEADERS, &h, &err);
    if (n == PX_HTTP1_INCOMPLETE) {
        return;
    }
    if (n < 0) {
        respond(ac, err.status, "Bad Request", "text/plain", err.reason, strlen(err.reason));
    } else {
        handle(ac, &h);
    }
    ac_answer(ac);
}

static void ac_closed(px_transport_t *t)
{
    px_admin_conn_t *ac = t->owner;
    px_admin_t *a = ac->a;
    bool quit = ac->quit;
    wf_buf_free(&ac->in);
    wf_buf_free(&ac->out);
    wf_free(ac);
    a->n_conns--;
    if (quit && a->quit_cb != NULL) {
        a->quit_cb(a->quit_arg);
    }
}

static const px_transport_cbs_t admin_cbs = {
    .on_alloc = ac_alloc,
    .on_read = ac_read,
    .on_written = NULL,
    .on_connect = NULL,
    .on_closed = ac_closed,
};

static void on_admin_conn(uv_stream_t *server, int status)
{
    px_admin_t *a = server->data;
    if (status < 0) {
        return;
    }
    px_admin_conn_t *ac = wf_calloc(1, sizeof(*ac));
    ac->a = a;
    if (px_transport_init(a->loop, &ac->tp, &admin_cbs, ac) != 0) {
        wf_free(ac);
        return;
    }
    a->n_conns++;
    if (px_transport_accept(server, &ac->tp) != 0 || px_transport_read_start(&ac->tp) != 0) {
        px_transport_close(&ac->tp);
    }
}

int px_admin_start(px_admin_t *a, px_proxy_t *px, uv_loop_t *loop, const struct sockaddr *addr)
{
    a->px = px;
    a->loop = loop;
    int rc = uv_tcp_init(loop, &a->listener);
    if (rc != 0) {
        return rc;
    }
    a->listener.data = a;
    a->open = true;
    rc = uv_tcp_bind(&a->listener, addr, 0);
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)&a->listener, 128, on_admin_conn);
    }
    if (rc != 0) {
        px_admin_close(a);
    }
    return rc;
}

void px_admin_close(px_admin_t *a)
{
    if (a->open) {
        uv_close((uv_handle_t *)&a->listener, NULL);
        a->open = false;
    }
}
