/*
 * px_tcp.c - inbound TCP ports, CONNECT targets and TCP metrics (see px_tcp.h).
 *
 * A TCP connection owns three handles (the downstream and upstream transports and a connect
 * timer) and is freed when all three have closed. Connections count in the worker's open
 * connections, so a draining worker waits for them as it waits for HTTP ones.
 */
#include "px_tcp.h"

#include "px_authz.h"
#include "px_tunnel.h"
#include "wf_alloc.h"
#include "wf_log.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>

typedef struct px_tcp_port px_tcp_port_t;
typedef struct px_tcp_conn px_tcp_conn_t;

struct px_tcp_port {
    px_tcp_t *owner;
    uv_tcp_t listener;
    bool open;
    struct sockaddr_storage app; /* app_address:target_port */
};

struct px_tcp_conn {
    px_transport_t down;
    px_transport_t up;
    uv_timer_t timer; /* connect timeout */
    int open_handles;
    px_tcp_t *owner;
    const px_tcp_port_t *port;
    px_tcp_conn_t *prev, *next;
    px_tunnel_t *tunnel;
    uint64_t rep_sent, rep_received; /* bytes already recorded */
    bool open_pending;               /* connected; istio_tcp_connections_opened not recorded */
    bool connected;
    bool closing;
};

struct px_tcp {
    px_worker_t *w;
    px_tcp_port_t *ports;
    uint32_t n_ports;
    px_tcp_conn_t *conns;
    uv_timer_t report; /* cfg.tcp_report_ms: the open connections' bytes so far */
    bool report_open;
};

/* ---------------------------------------------------------------------------------------- */
/* CONNECT targets and checks */

int px_tcp_connect_target(const px_snapshot_t *snap, wf_str_t a, px_connect_target_t *out)
{
    memset(out, 0, sizeof(*out));
    out->cluster = -1;
    size_t colon = a.len;
    while (colon > 0 && a.p[colon - 1] != ':') {
        colon--;
    }
    if (colon < 2 || colon == a.len || a.len - colon > 5) {
        return PX_TCP_EAUTHORITY;
    }
    uint32_t port = 0;
    for (size_t i = colon; i < a.len; i++) {
        if (a.p[i] < '0' || a.p[i] > '9') {
            return PX_TCP_EAUTHORITY;
        }
        port = port * 10 + (uint32_t)(a.p[i] - '0');
    }
    if (port == 0 || port > 65535) {
        return PX_TCP_EAUTHORITY;
    }
    wf_str_t host = {a.p, colon - 1};
    /* A short name means the service in the proxy's namespace, as in the snapshot. */
    char fqdn[256];
    wf_str_t want = host;
    if (snap != NULL && memchr(host.p, '.', host.len) == NULL && host.p[0] != '[') {
        int l = snprintf(fqdn, sizeof(fqdn), "%.*s.%.*s.svc.cluster.local", (int)host.len, host.p,
                         (int)snap->proxy.namespace.len, snap->proxy.namespace.p);
        if (l > 0 && (size_t)l < sizeof(fqdn)) {
            want = (wf_str_t){fqdn, (size_t)l};
        }
    }
    for (uint32_t i = 0; snap != NULL && i < snap->n_clusters; i++) {
        const px_cluster_t *cl = &snap->clusters[i];
        if (cl->port == port && cl->subset.len == 0 && cl->host.len == want.len &&
            strncasecmp(cl->host.p, want.p, want.len) == 0) {
            out->cluster = (int)i;
            return 0;
        }
    }
    char ip[64];
    bool v6 = host.len >= 2 && host.p[0] == '[' && host.p[host.len - 1] == ']';
    if (v6) {
        host.p++;
        host.len -= 2;
    }
    if (host.len == 0 || host.len >= sizeof(ip)) {
        return PX_TCP_ENOTARGET;
    }
    memcpy(ip, host.p, host.len);
    ip[host.len] = '\0';
    int rc = v6 ? uv_ip6_addr(ip, (int)port, (struct sockaddr_in6 *)&out->addr)
                : uv_ip4_addr(ip, (int)port, (struct sockaddr_in *)&out->addr);
    if (rc != 0) {
        memset(&out->addr, 0, sizeof(out->addr));
        return PX_TCP_ENOTARGET;
    }
    return 0;
}

static uint32_t sa_port(const struct sockaddr *sa)
{
    return sa->sa_family == AF_INET6 ? ntohs(((const struct sockaddr_in6 *)sa)->sin6_port)
                                     : ntohs(((const struct sockaddr_in *)sa)->sin_port);
}

/* The listener's IP as text ("" for none). */
static void sa_ip(const struct sockaddr *sa, char *out, size_t cap)
{
    out[0] = '\0';
    if (sa->sa_family == AF_INET6) {
        uv_ip6_name((const struct sockaddr_in6 *)sa, out, cap);
    } else if (sa->sa_family == AF_INET) {
        uv_ip4_name((const struct sockaddr_in *)sa, out, cap);
    }
}

static bool is_tcp(const px_inbound_port_t *p)
{
    return p->protocol.len == 3 && strncasecmp(p->protocol.p, "TCP", 3) == 0;
}

bool px_tcp_ports_equal(const px_inbound_t *a, const px_inbound_t *b)
{
    uint32_t na = 0, nb = 0;
    for (uint32_t i = 0; i < a->n_ports; i++) {
        na += is_tcp(&a->ports[i]);
    }
    for (uint32_t i = 0; i < b->n_ports; i++) {
        nb += is_tcp(&b->ports[i]);
    }
    if (na != nb || !wf_str_eq(a->app_address, b->app_address)) {
        return na == 0 && nb == 0;
    }
    for (uint32_t i = 0, j = 0; i < a->n_ports; i++) {
        if (!is_tcp(&a->ports[i])) {
            continue;
        }
        while (!is_tcp(&b->ports[j])) {
            j++;
        }
        if (a->ports[i].port != b->ports[j].port ||
            a->ports[i].target_port != b->ports[j].target_port) {
            return false;
        }
        j++;
    }
    return true;
}

int px_tcp_check(const px_snapshot_t *snap, const struct sockaddr *inbound,
                 const struct sockaddr *outbound, char *err, size_t cap)
{
    if (snap == NULL) {
        return 0;
    }
    char lip[64], app[64];
    sa_ip(inbound, lip, sizeof(lip));
    snprintf(app, sizeof(app), "%.*s", (int)snap->inbound.app_address.len,
             snap->inbound.app_address.p);
    bool any = strcmp(lip, "0.0.0.0") == 0 || strcmp(lip, "::") == 0 ||
               strcmp(app, "0.0.0.0") == 0 || strcmp(app, "::") == 0;
    bool same_addr = any || strcmp(lip, app) == 0;
    for (uint32_t i = 0; i < snap->inbound.n_ports; i++) {
        const px_inbound_port_t *p = &snap->inbound.ports[i];
        if (!is_tcp(p)) {
            continue;
        }
        if (p->port == sa_port(inbound) || (outbound != NULL && p->port == sa_port(outbound))) {
            snprintf(err, cap, "TCP port %u is a listener port of the proxy", p->port);
            return PX_TCP_EPORTS;
        }
        if (same_addr && p->port == p->target_port) {
            snprintf(err, cap,
                     "TCP port %u proxies to itself: target_port equals port on the listener "
                     "address %s",
                     p->port, app);
            return PX_TCP_EPORTS;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Metrics */

void px_tcp_record(px_worker_t *w, bool inbound, const px_cluster_t *cluster,
                   const px_endpoint_t *ep, const char *peer_id, uint32_t flags, uint64_t sent,
                   uint64_t received, unsigned opened, unsigned closed)
{
    const px_proxy_t *px = w->px;
    px_workload_t peer, self;
    px_labels_in_t in;
    memset(&in, 0, sizeof(in));
    in.protocol = WF_STR_LIT("tcp");
    in.grpc_status = -1;
    in.flags = flags;
    if (inbound) {
        /* TCP carries no peer metadata: the source is unknown but for the identity an mTLS
         * handshake proved; the local identity counts only over mTLS (as for HTTP). */
        in.reporter = PX_REPORTER_DESTINATION;
        in.security = peer_id != NULL ? PX_SEC_MUTUAL_TLS : PX_SEC_NONE;
        self = px->self;
        if (peer_id == NULL) {
            self.principal = WF_STR_LIT("");
        } else {
            memset(&peer, 0, sizeof(peer));
            peer.principal = wf_str(peer_id);
            in.source = &peer;
        }
        in.destination = &self;
        in.dest_service = px->self_service;
        in.dest_service_ns = px->self.namespace;
    } else {
        in.reporter = PX_REPORTER_SOURCE;
        in.security = PX_SEC_UNKNOWN;
        in.source = &px->self;
        in.dest_service = cluster != NULL ? cluster->host : WF_STR_LIT("PassthroughCluster");
        if (cluster != NULL && ep != NULL) {
            wf_str_t svc = cluster->host;
            const char *dot = memchr(svc.p, '.', svc.len);
            if (dot != NULL) {
                svc.len = (size_t)(dot - svc.p);
            }
            px_workload_from_endpoint(&peer, ep, svc);
            in.destination = &peer;
        }
        if (peer_id != NULL) {
            if (in.destination == NULL) {
                memset(&peer, 0, sizeof(peer));
                in.destination = &peer;
            }
            peer.principal = wf_str(peer_id);
        }
    }
    px_labels_t l;
    px_labels_build(&l, &in);
    px_metrics_record_tcp(w->metrics, &l, sent, received, opened, closed);
}

/* ---------------------------------------------------------------------------------------- */
/* Inbound TCP connections */

static void conn_close(px_tcp_conn_t *c);

static void handle_closed(px_tcp_conn_t *c)
{
    if (--c->open_handles > 0) {
        return;
    }
    px_worker_t *w = c->owner->w;
    wf_free(c);
    px__worker_conn_gone(w);
}

static void tp_closed(px_transport_t *t)
{
    handle_closed(t->owner);
}

static void timer_closed(uv_handle_t *h)
{
    handle_closed(h->data);
}

/* The downstream is not read before the tunnel runs (its bytes wait in the kernel) and the
 * upstream only connects: these two never run, they complete the callback table. */
static void tp_alloc(px_transport_t *t, size_t suggested, uv_buf_t *buf)
{
    (void)t;
    (void)suggested;
    static char sink[1];
    *buf = uv_buf_init(sink, sizeof(sink));
}

static void tp_read(px_transport_t *t, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    (void)nread;
    conn_close(t->owner);
}

/* Record the bytes of c not recorded yet (closed: and the close), and its opening if that is
 * still pending (see tp_connect). */
static void conn_report(px_tcp_conn_t *c, const px_tunnel_stats_t *st, unsigned closed)
{
    uint64_t sent = st->up_to_down - c->rep_sent, received = st->down_to_up - c->rep_received;
    unsigned opened = c->open_pending ? 1 : 0;
    if (sent == 0 && received == 0 && closed == 0 && opened == 0) {
        return;
    }
    c->open_pending = false;
    c->rep_sent = st->up_to_down;
    c->rep_received = st->down_to_up;
    px_tcp_record(c->owner->w, true, NULL, NULL, c->down.peer_identity, 0, sent, received, opened,
                  closed);
}

static void report_timer_cb(uv_timer_t *tm)
{
    px_tcp_t *t = tm->data;
    for (px_tcp_conn_t *c = t->conns; c != NULL; c = c->next) {
        if (c->tunnel != NULL) {
            px_tunnel_stats_t st;
            px_tunnel_stats(c->tunnel, &st);
            conn_report(c, &st, 0);
        }
    }
}

static void tunnel_done(void *arg, const px_tunnel_stats_t *st)
{
    px_tcp_conn_t *c = arg;
    c->tunnel = NULL;
    conn_report(c, st, 1);
    if (st->end == PX_TUNNEL_RESET) {
        WF_LOG(WF_DEBUG, "proxy", "tcp connection reset", "side=%s err=%s",
               st->down_err ? "downstream" : "upstream", uv_strerror(st->err));
    }
    conn_close(c);
}

static bool tcp_authorized(px_worker_t *w, px_tcp_conn_t *c, const px_tcp_port_t *p);

static bool tcp_admit(void *arg)
{
    px_tcp_conn_t *c = arg;
    if (c->open_pending) {
        /* The client's first bytes: a TLS handshake is done, its identity labels the opening. */
        c->open_pending = false;
        px_tcp_record(c->owner->w, true, NULL, NULL, c->down.peer_identity, 0, 0, 0, 1, 0);
    }
    return tcp_authorized(c->owner->w, c, c->port);
}

static void tp_connect(px_transport_t *t, int status)
{
    px_tcp_conn_t *c = t->owner;
    px_worker_t *w = c->owner->w;
    uv_timer_stop(&c->timer);
    if (status != 0) {
        atomic_fetch_add_explicit(&w->ctr.upstream_cx_connect_fail, 1, memory_order_relaxed);
        px_tcp_record(w, true, NULL, NULL, c->down.peer_identity, PX_RF_UF, 0, 0, 1, 1);
        conn_close(c);
        return;
    }
    c->connected = true;
    atomic_fetch_add_explicit(&w->ctr.upstream_cx_total, 1, memory_order_relaxed);
    /* The opening is recorded on the client's first bytes (or with the close): over mTLS the
     * handshake has proved the peer's identity by then, and every series of the connection
     * carries the same labels. */
    c->open_pending = true;
    px_tunnel_opts_t o = {
        .idle_ms = (uint64_t)w->px->cfg.idle_timeout_ms,
        .done = tunnel_done,
        .arg = c,
        .admit = tcp_admit,
    };
    c->tunnel = px_tunnel_start(&w->loop, &c->down, &c->up, &o);
}

static const px_transport_cbs_t cbs = {
    .on_alloc = tp_alloc,
    .on_read = tp_read,
    .on_written = NULL,
    .on_connect = tp_connect,
    .on_closed = tp_closed,
};

static void connect_timer_cb(uv_timer_t *tm)
{
    tp_connect(&((px_tcp_conn_t *)tm->data)->up, UV_ETIMEDOUT);
}

static void conn_close(px_tcp_conn_t *c)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    if (c->tunnel != NULL) {
        px_tunnel_stats_t st;
        px_tunnel_stats(c->tunnel, &st);
        px_tunnel_free(c->tunnel);
        c->tunnel = NULL;
        conn_report(c, &st, 1);
    }
    px_tcp_t *t = c->owner;
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        t->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    atomic_fetch_sub_explicit(&t->w->ctr.downstream_cx_active, 1, memory_order_relaxed);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, timer_closed);
    px_transport_close(&c->down);
    px_transport_close(&c->up);
}

/* AuthorizationPolicy on the first bytes from the client, as Envoy's RBAC network filter does:
 * over mTLS the handshake is done by then, so principals and namespaces are known; a denied
 * connection is closed before a byte reaches the app. Rules are read with Istio's TCP
 * semantics (px_authz.h). */
static bool tcp_authorized(px_worker_t *w, px_tcp_conn_t *c, const px_tcp_port_t *p)
{
    const px_authz_set_t *set = w->gen != NULL ? &w->gen->snap->inbound.authz : NULL;
    if (set == NULL || set->n_policies == 0) {
        return true;
    }
    char peer[64], local[64] = "";
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    px_transport_peer_ip(&c->down, peer, sizeof(peer));
    if (uv_tcp_getsockname(&c->down.tcp, (struct sockaddr *)&ss, &len) == 0) {
        sa_ip((const struct sockaddr *)&ss, local, sizeof(local));
    }
    px_authz_req_t r = {
        .principal = c->down.peer_identity,
        .source_ip = wf_str(peer),
        .dest_ip = wf_str(local),
        .dest_port = sa_port((const struct sockaddr *)&p->app),
        .tcp = true,
    };
    px_authz_result_t res;
    px_authz_check(set, &r, &res);
    atomic_fetch_add_explicit(res.allowed ? &w->ctr.authz_allowed : &w->ctr.authz_denied, 1,
                              memory_order_relaxed);
    if (!res.allowed) {
        WF_LOG_RL(WF_DEBUG, 10, "proxy", "tcp connection denied by authorization policy",
                  "policy=%s peer=%s", res.policy != NULL ? res.policy->name.p : "(none matched)",
                  peer);
    }
    return res.allowed;
}

static void on_accept(uv_stream_t *server, int status)
{
    px_tcp_port_t *p = server->data;
    px_tcp_t *t = p->owner;
    px_worker_t *w = t->w;
    if (status < 0) {
        WF_LOG_RL(WF_WARN, 10, "proxy", "tcp accept error", "err=%s", uv_strerror(status));
        return;
    }
    px_tcp_conn_t *c = wf_calloc(1, sizeof(*c));
    c->owner = t;
    c->port = p;
    if (px_transport_init(&w->loop, &c->down, &cbs, c) != 0) {
        wf_free(c);
        return;
    }
    px_transport_init(&w->loop, &c->up, &cbs, c);
    uv_timer_init(&w->loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 3;
    c->next = t->conns;
    if (t->conns != NULL) {
        t->conns->prev = c;
    }
    t->conns = c;
    w->n_conns++;
    atomic_fetch_add_explicit(&w->ctr.downstream_cx_total, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&w->ctr.downstream_cx_active, 1, memory_order_relaxed);
    int rc = px_transport_accept(server, &c->down);
    if (rc == 0 && w->px->tls != NULL) {
        /* PeerAuthentication as on the HTTP inbound listener; the tunnel's first read sniffs. */
        struct sockaddr_storage ss;
        int len = sizeof(ss);
        uint32_t port = 0;
        if (uv_tcp_getsockname((uv_tcp_t *)server, (struct sockaddr *)&ss, &len) == 0) {
            port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                  : ((struct sockaddr_in *)&ss)->sin_port);
        }
        px_transport_tls_accept(
            &c->down, w->px->tls,
            px_tls_port_mode(w->gen != NULL ? &w->gen->snap->inbound : NULL, port));
    }
    if (rc == 0) {
        rc = px_transport_connect(&c->up, (const struct sockaddr *)&p->app);
    }
    if (rc != 0) {
        WF_LOG_RL(WF_WARN, 10, "proxy", "tcp connection failed", "err=%s", uv_strerror(rc));
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, connect_timer_cb, (uint64_t)w->px->cfg.connect_timeout_ms, 0);
}

int px_tcp_start(px_worker_t *w, const px_inbound_port_t *ports, uint32_t n, wf_str_t app_address,
                 px_tcp_t **out)
{
    *out = NULL;
    uint32_t n_tcp = 0;
    for (uint32_t i = 0; i < n; i++) {
        n_tcp += is_tcp(&ports[i]);
    }
    if (n_tcp == 0) {
        return 0;
    }
    px_tcp_t *t = wf_calloc(1, sizeof(*t));
    t->w = w;
    t->ports = wf_calloc(n_tcp, sizeof(*t->ports));
    char app[64];
    snprintf(app, sizeof(app), "%.*s", (int)app_address.len, app_address.p);
    int rc = 0;
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        if (!is_tcp(&ports[i])) {
            continue;
        }
        px_tcp_port_t *p = &t->ports[t->n_ports++];
        p->owner = t;
        if (uv_ip4_addr(app, (int)ports[i].target_port, (struct sockaddr_in *)&p->app) != 0 &&
            uv_ip6_addr(app, (int)ports[i].target_port, (struct sockaddr_in6 *)&p->app) != 0) {
            rc = UV_EINVAL;
            break;
        }
        struct sockaddr_storage la = w->px->inbound_addr;
        if (la.ss_family == AF_INET6) {
            ((struct sockaddr_in6 *)&la)->sin6_port = htons((uint16_t)ports[i].port);
        } else {
            ((struct sockaddr_in *)&la)->sin_port = htons((uint16_t)ports[i].port);
        }
        rc = px__worker_listen(&w->loop, &p->listener, (const struct sockaddr *)&la, on_accept);
        p->listener.data = p;
        p->open = rc == 0;
        if (rc != 0) {
            WF_LOG(WF_ERROR, "proxy", "tcp port listener failed", "port=%u err=%s", ports[i].port,
                   uv_strerror(rc));
        }
    }
    if (rc != 0) {
        px_tcp_stop_listening(t);
        *out = t; /* freed by the caller after its loop ran the close callbacks */
        return rc;
    }
    uint64_t every = (uint64_t)w->px->cfg.tcp_report_ms;
    if (every > 0) {
        uv_timer_init(&w->loop, &t->report);
        t->report.data = t;
        t->report_open = true;
        uv_timer_start(&t->report, report_timer_cb, every, every);
        uv_unref((uv_handle_t *)&t->report); /* it never keeps the worker's loop alive */
    }
    *out = t;
    return 0;
}

void px_tcp_stop_listening(px_tcp_t *t)
{
    if (t != NULL && t->report_open) {
        /* Connections still open when draining ends are recorded at their close. */
        uv_close((uv_handle_t *)&t->report, NULL);
        t->report_open = false;
    }
    for (uint32_t i = 0; t != NULL && i < t->n_ports; i++) {
        if (t->ports[i].open) {
            uv_close((uv_handle_t *)&t->ports[i].listener, NULL);
            t->ports[i].open = false;
        }
    }
}

void px_tcp_close_all(px_tcp_t *t)
{
    while (t != NULL && t->conns != NULL) {
        conn_close(t->conns);
    }
}

void px_tcp_free(px_tcp_t *t)
{
    if (t == NULL) {
        return;
    }
    /* Connections left here had their handles closed by the worker's final walk. */
    while (t->conns != NULL) {
        px_tcp_conn_t *c = t->conns;
        t->conns = c->next;
        wf_free(c);
    }
    wf_free(t->ports);
    wf_free(t);
}
