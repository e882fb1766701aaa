/*
 * px_main.c - `weft proxy`: parses the flags, loads the optional config snapshot, starts the
 * worker threads (each binds its own SO_REUSEPORT listeners), and runs the admin listener and
 * the signal handlers on the main thread's loop.
 *
 * Stopping (SIGTERM, SIGINT, POST /quitquitquit): the main loop ends, every worker is told to
 * drain (listeners close at once, requests in flight get --drain-time to finish), the main
 * thread joins them, closes the admin side and returns 0.
 */
#include "px_main.h"

#include "px_access_log.h"
#include "px_admin.h"
#include "px_cert.h"
#include "px_control.h"
#include "px_export.h"
#include "px_tcp.h"
#include "px_worker.h"

#include "wf_alloc.h"
#include "wf_err.h"
#include "wf_flags.h"
#include "wf_log.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const wf_flag_t px_flags[] = {
    {"service", WF_FLAG_STR, NULL, offsetof(px_config_t, service),
     "name of the service this sidecar serves (required)"},
    {"version", WF_FLAG_STR, "unknown", offsetof(px_config_t, version),
     "version of the workload (the version label)"},
    {"namespace", WF_FLAG_STR, "default", offsetof(px_config_t, namespace),
     "namespace of the workload"},
    {"app-port", WF_FLAG_INT, "0", offsetof(px_config_t, app_port),
     "port the local app listens on, on 127.0.0.1 (required)"},
    {"inbound", WF_FLAG_STR, "127.0.0.1:15006", offsetof(px_config_t, inbound),
     "address:port peers send requests for the app to (off = no inbound listener: a sidecar of "
     "a program that only calls others; no --app-port then, and it registers no port)"},
    {"outbound", WF_FLAG_STR, "127.0.0.1:15001", offsetof(px_config_t, outbound),
     "address:port the app sends its outgoing requests to: an HTTP forward proxy (http_proxy=) "
     "routed by the --config snapshot (off = no outbound listener)"},
    {"admin", WF_FLAG_STR, "127.0.0.1:15000", offsetof(px_config_t, admin),
     "address:port of the admin listener (/ready, /stats/prometheus, ...)"},
    {"config", WF_FLAG_STR, NULL, offsetof(px_config_t, config),
     "config snapshot file (JSON, docs/snapshot.md)"},
    {"concurrency", WF_FLAG_INT, "2", offsetof(px_config_t, concurrency),
     "worker threads, each with its own event loop and listeners"},
    {"connect-timeout", WF_FLAG_DURATION, "10s", offsetof(px_config_t, connect_timeout_ms),
     "longest wait for an upstream connection to be established"},
    {"upstream-idle-timeout", WF_FLAG_DURATION, "60s", offsetof(px_config_t, upstream_idle_ms),
     "pooled keep-alive upstream connections idle this long are closed"},
    {"idle-timeout", WF_FLAG_DURATION, "1h", offsetof(px_config_t, idle_timeout_ms),
     "a client connection without a request in progress, or a tunnel (Upgrade, CONNECT, TCP "
     "port) with no byte either way, is closed after this long (0 = never)"},
    {"tcp-report-interval", WF_FLAG_DURATION, "15s", offsetof(px_config_t, tcp_report_ms),
     "open TCP port connections add their bytes to istio_tcp_* this often (0 = at close only)"},
    {"request-headers-timeout", WF_FLAG_DURATION, "60s", offsetof(px_config_t, headers_timeout_ms),
     "a request head not complete this long after its first byte is answered 408 and the "
     "connection closed (slowloris; 0 = no limit)"},
    {"drain-time", WF_FLAG_DURATION, "5s", offsetof(px_config_t, drain_ms),
     "on stop, how long requests in flight may take to finish"},
    {"log-level", WF_FLAG_STR, "info", offsetof(px_config_t, log_level),
     "error, warn, info or debug"},
    {"control", WF_FLAG_STR, NULL, offsetof(px_config_t, control),
     "control plane URL (http://HOST:PORT): config snapshots by long-poll, ACK/NACK "
     "(docs/snapshot.md); with --config, the file is the first snapshot"},
    {"bootstrap-token-file", WF_FLAG_STR, NULL, offsetof(px_config_t, bootstrap_token_file),
     "file holding the control plane's bootstrap token (its DATA_DIR/bootstrap-token): sent "
     "with the registration, heartbeats and snapshot polls"},
    {"mode", WF_FLAG_STR, "sidecar", offsetof(px_config_t, mode),
     "sidecar (inbound and outbound listeners beside an app) or gateway (one listener per "
     "gateway server of the snapshot, routed by the virtual hosts bound to its port; no app)"},
    {"gateway-bind", WF_FLAG_STR, "0.0.0.0", offsetof(px_config_t, gateway_bind),
     "gateway mode: the address the gateway servers' ports are opened on"},
    {"collector", WF_FLAG_STR, NULL, offsetof(px_config_t, collector),
     "collector URL spans are sent to by OTLP/HTTP protobuf (http://HOST:PORT, /v1/traces is "
     "added); default: telemetry.collector_url of the first snapshot that sets it, else no span "
     "export"},
    {"sampling", WF_FLAG_STR, "1", offsetof(px_config_t, sampling),
     "percent of new traces sampled (0..100) when no snapshot sets telemetry.sampling; an "
     "incoming sampling decision always wins"},
    {"trace-flush-ms", WF_FLAG_INT, "1000", offsetof(px_config_t, trace_flush_ms),
     "longest time, in milliseconds, a finished span waits before its batch is sent"},
    {"trace-batch", WF_FLAG_INT, "512", offsetof(px_config_t, trace_batch),
     "spans per OTLP request at most"},
    {"access-log", WF_FLAG_STR, NULL, offsetof(px_config_t, access_log),
     "write one logfmt line per request to this file (- = standard output, off = none); "
     "default: standard output when the snapshot sets telemetry.access_log, else none"},
    {"trace-queue", WF_FLAG_INT, "2048", offsetof(px_config_t, trace_queue),
     "spans waiting for export per worker at most; more are dropped and counted"},
    {"labels", WF_FLAG_STR, NULL, offsetof(px_config_t, labels),
     "more labels of the workload, registered with the control plane: k=v,k2=v2 (e.g. "
     "istio=ingressgateway for a gateway that bookinfo's Gateway selects); app and version "
     "come from --service and --version"},
    {"service-account", WF_FLAG_STR, NULL, offsetof(px_config_t, service_account),
     "service account registered with the control plane (the SPIFFE identity's sa); default: "
     "the --config snapshot's, else \"default\""},
    {"cert-chain", WF_FLAG_STR, NULL, offsetof(px_config_t, cert_chain),
     "PEM file with this workload's certificate (a spiffe:// URI SAN) then its intermediates, "
     "for mTLS between sidecars (Istio's /etc/certs/cert-chain.pem); with --private-key; "
     "re-read on SIGHUP"},
    {"private-key", WF_FLAG_STR, NULL, offsetof(px_config_t, private_key),
     "PEM file with the --cert-chain certificate's private key"},
    {"root-cert", WF_FLAG_STR, NULL, offsetof(px_config_t, root_cert),
     "PEM file with the mesh's trust bundle: the roots peers' certificates must chain to"},
    {NULL, 0, NULL, 0, NULL},
};

/* "ip:port" or "[ipv6]:port" into *ss. */
static int parse_addr(const char *s, struct sockaddr_storage *ss)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s || (size_t)(colon - s) >= sizeof(host)) {
        return WF_E_INVAL;
    }
    char *end = NULL;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port < 0 || port > 65535 || end == colon + 1) {
        return WF_E_INVAL;
    }
    size_t hl = (size_t)(colon - s);
    memcpy(host, s, hl);
    host[hl] = '\0';
    memset(ss, 0, sizeof(*ss));
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        return uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)ss) == 0 ? 0 : WF_E_INVAL;
    }
    return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0 ? 0 : WF_E_INVAL;
}

typedef struct {
    px_proxy_t px;
    px_admin_t admin;
    uv_loop_t loop;
    uv_signal_t sigterm, sigint, sighup;
    px_control_t *control;
    px_cert_t *cert;         /* the workload certificate from the mesh CA; NULL when not used */
    int started;             /* workers started */
    int status;              /* px_main's exit status */
    uv_timer_t first_wait;   /* a gateway fed by --control: waiting for its first snapshot */
    uv_async_t export_async; /* a snapshot was installed: it may name the span collector */
} px_main_ctx_t;

static void request_stop(px_main_ctx_t *m)
{
    if (atomic_exchange(&m->px.draining, true)) {
        return;
    }
    WF_LOG(WF_INFO, "proxy", "stopping", "drain_time_ms=%lld", (long long)m->px.cfg.drain_ms);
    uv_stop(&m->loop);
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)signum;
    request_stop(s->data);
}

/*
 * Read and parse the --config file and install it (px_proxy_install). Returns 0, or an error
 * with its message in err: the file cannot be read or parsed, or the proxy refuses it.
 */
static int load_snapshot(px_proxy_t *px, char *err, size_t errlen)
{
    px_snapshot_t *s = NULL;
    char *json = NULL;
    int rc = px_snapshot_load(px->cfg.config, NULL, &s, &json, err, errlen);
    if (rc != 0) {
        if (rc != WF_E_INVAL && rc != WF_E_LIMIT) {
            snprintf(err, errlen, "%s", wf_strerror(rc));
        }
        px_proxy_nack(px, 0, err);
        return rc;
    }
    px_snapshot_ref(s);
    rc = px_proxy_install(px, s, json, err, errlen);
    if (rc == 0 && s->security.trust_bundle_version > 0) {
        (void)px_cert_apply_bundle(px, s->security.trust_bundle.p, s->security.trust_bundle.len,
                                   s->security.trust_bundle_version, err, errlen);
    }
    px_snapshot_unref(s);
    return rc;
}

/* The --cert-chain, --private-key and --root-cert files into px->creds (those given). 0 or an
 * error with its message in err. */
static int load_cert_files(px_proxy_t *px, char *err, size_t errcap)
{
    const px_config_t *cfg = &px->cfg;
    if ((cfg->cert_chain == NULL) != (cfg->private_key == NULL)) {
        snprintf(err, errcap, "--cert-chain and --private-key go together");
        return WF_E_INVAL;
    }
    if (cfg->cert_chain == NULL && cfg->root_cert == NULL) {
        return 0;
    }
    return px_creds_load_files(px->creds, cfg->cert_chain, cfg->private_key, cfg->root_cert, err,
                               errcap);
}

/* SIGHUP: read the certificate files and the --config file again and switch to them, or keep
 * what is in use. */
static void on_reload(uv_signal_t *s, int signum)
{
    (void)signum;
    px_main_ctx_t *m = s->data;
    px_proxy_t *px = &m->px;
    if (px->cfg.cert_chain != NULL || px->cfg.root_cert != NULL) {
        char cerr[300];
        if (load_cert_files(px, cerr, sizeof(cerr)) != 0) {
            WF_LOG(WF_WARN, "proxy", "certificate files refused, the current ones stay",
                   "err=\"%s\"", cerr);
        } else {
            WF_LOG(WF_INFO, "proxy", "certificate files reloaded", "generation=%llu",
                   (unsigned long long)px_creds_generation(px->creds));
        }
    }
    if (px->cfg.config == NULL) {
        if (px->cfg.cert_chain == NULL && px->cfg.root_cert == NULL) {
            WF_LOG(WF_WARN, "proxy", "SIGHUP ignored: no --config file to reload");
        }
        return;
    }
    char err[600];
    if (load_snapshot(px, err, sizeof(err)) != 0) {
        WF_LOG(WF_WARN, "proxy", "config refused, the current one keeps serving",
               "file=%s err=\"%s\"", px->cfg.config, err);
        return;
    }
    uv_mutex_lock(&px->snap_mu);
    unsigned long long version = px->snapshot->version;
    uv_mutex_unlock(&px->snap_mu);
    WF_LOG(WF_INFO, "proxy", "config reloaded", "file=%s version=%llu", px->cfg.config, version);
}

static void on_quit(void *arg)
{
    request_stop(arg);
}

static void close_admin_walk(uv_handle_t *h, void *arg)
{
    px_main_ctx_t *m = arg;
    if (uv_is_closing(h)) {
        return;
    }
    if (h->type == UV_TCP && h != (uv_handle_t *)&m->admin.listener) {
        px_transport_close(h->data); /* an admin connection: its owner frees itself */
    } else {
        uv_close(h, NULL);
    }
}

/* The first line of path, without surrounding whitespace, as a new string (1 KiB at most). */
static int read_token(const char *path, char **out)
{
    size_t len;
    char *text = NULL;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return -errno;
    }
    char line[1024];
    if (fgets(line, sizeof(line), f) != NULL) {
        char *p = line;
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        len = strcspn(p, " \t\r\n");
        text = len > 0 ? wf_strndup(p, len) : NULL;
    }
    fclose(f);
    *out = text;
    return text != NULL ? 0 : WF_E_INVAL;
}

/*
 * Parse --labels "k=v,k2=v2" into obj (when not NULL): 0, or WF_E_INVAL for an entry without
 * a name or "=". The control plane checks names and values as Kubernetes labels.
 */
static int add_flag_labels(json_t *obj, const char *spec)
{
    for (const char *p = spec; p != NULL && *p != '\0';) {
        const char *end = strchr(p, ',');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        if (eq == NULL || eq == p) {
            return WF_E_INVAL;
        }
        if (obj != NULL) {
            char key[256];
            snprintf(key, sizeof(key), "%.*s", (int)(eq - p), p);
            json_object_set_new(obj, key, json_stringn(eq + 1, n - (size_t)(eq - p) - 1));
        }
        p = end != NULL ? end + 1 : p + n;
    }
    return 0;
}

/* The workload this proxy fronts, as the control plane's POST /v1/register takes it: where
 * peers reach it (the inbound listener), its admin port (for metrics discovery), its identity
 * and labels. A new string (free with free()). */
static char *registration_json(const px_proxy_t *px, const struct sockaddr_storage *admin)
{
    const px_workload_t *w = &px->self;
    char ip[64] = "127.0.0.1";
    int port = 0;
    if (px->inbound_addr.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&px->inbound_addr;
        uv_ip6_name(a, ip, sizeof(ip));
        port = ntohs(a->sin6_port);
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&px->inbound_addr;
        uv_ip4_name(a, ip, sizeof(ip));
        port = ntohs(a->sin_port);
    }
    int admin_port = ntohs(((const struct sockaddr_in *)admin)->sin_port);
    const char *sa = px->cfg.service_account != NULL ? px->cfg.service_account
                     : px->identity != NULL && px->identity->proxy.service_account.len > 0
                         ? px->identity->proxy.service_account.p
                         : "default";
    json_t *labels = json_object();
    add_flag_labels(labels, px->cfg.labels);
    json_object_set_new(labels, "app", json_stringn(w->app.p, w->app.len));
    if (w->version.len > 0) {
        json_object_set_new(labels, "version", json_stringn(w->version.p, w->version.len));
    }
    /* Without an inbound listener peers cannot reach it: no port, no endpoint of its service. */
    json_t *ports = px->inbound_on ? json_pack("[i]", port) : json_array();
    json_t *j = json_pack("{s:s%, s:s%, s:s%, s:s, s:o, s:i, s:s, s:o, s:s}", "service",
                          px->self_service.p, px->self_service.len, "namespace", w->namespace.p,
                          w->namespace.len, "version", w->version.p, w->version.len, "address", ip,
                          "ports", ports, "adminPort", admin_port, "serviceAccount", sa, "labels",
                          labels, "mode", px->gateway ? "gateway" : "sidecar");
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return text;
}

/* This proxy's workload: the snapshot's identity when it names a service, else the flags. */
static void self_init(px_proxy_t *px)
{
    const px_config_t *cfg = &px->cfg;
    if (px->identity != NULL && px->identity->proxy.service.len > 0) {
        px_workload_from_proxy(&px->self, &px->identity->proxy);
        px->self_service = px->identity->proxy.service;
    } else {
        wf_str_t none = WF_STR_LIT("");
        /* The identity the registry gives these flags, which the CA puts in the certificate. */
        snprintf(px->self_identity, sizeof(px->self_identity), "spiffe://cluster.local/ns/%s/sa/%s",
                 cfg->namespace, cfg->service_account != NULL ? cfg->service_account : "default");
        px_workload_build(&px->self, NULL, 0, wf_str(cfg->service), wf_str(cfg->version), none,
                          wf_str(cfg->namespace), wf_str(px->self_identity), none);
        px->self_service = wf_str(cfg->service);
    }
    px_peer_format(&px->self, &px->self_peer);
}

/* Sampling and span export settings: the snapshot's sampling percentage, else --sampling; the
 * --collector URL, else the snapshot's. Returns 0, or 2 (usage error, message printed). */
static int tracing_init(px_proxy_t *px)
{
    const px_config_t *cfg = &px->cfg;
    char *end = NULL;
    double pct = strtod(cfg->sampling, &end);
    if (end == cfg->sampling || *end != '\0' || !(pct >= 0 && pct <= 100)) {
        fprintf(stderr, "weft proxy: --sampling takes a percentage 0..100\n");
        return 2;
    }
    px->sampling_pct = px->snapshot != NULL ? px->snapshot->telemetry.sampling : pct;
    if (cfg->trace_flush_ms <= 0 || cfg->trace_batch <= 0 || cfg->trace_batch > 65536 ||
        cfg->trace_queue <= 0 || cfg->trace_queue > (1 << 20)) {
        fprintf(stderr, "weft proxy: --trace-flush-ms, --trace-batch (..65536) and "
                        "--trace-queue (..1048576) must be positive\n");
        return 2;
    }
    char ip[64] = "127.0.0.1";
    const char *colon = strrchr(cfg->inbound, ':');
    if (colon != NULL && (size_t)(colon - cfg->inbound) < sizeof(ip)) {
        snprintf(ip, sizeof(ip), "%.*s", (int)(colon - cfg->inbound), cfg->inbound);
    }
    snprintf(px->node_id, sizeof(px->node_id), "sidecar~%s~%.*s.%.*s~%.*s.svc.cluster.local", ip,
             (int)px->self.workload.len, px->self.workload.p, (int)px->self.namespace.len,
             px->self.namespace.p, (int)px->self.namespace.len, px->self.namespace.p);
    px->trace_node.node_id = wf_str(px->node_id);
    px->trace_node.canonical_service = px->self.canonical_service;
    px->trace_node.canonical_revision = px->self.canonical_revision;
    px->trace_node.namespace = px->self.namespace;
    px->trace_node.mesh_id = WF_STR_LIT("");
    return 0;
}

/*
 * Start the span exporter when a collector is configured: --collector, else the current
 * snapshot's telemetry.collector_url. Main thread only; workers may already run (a sidecar
 * under --control learns the URL from its first snapshot): each worker's queue pointer is
 * published only once its queue exists and the exporter drains it. Returns 0 (also when there
 * is no collector, or the exporter already runs), 2 for a bad URL (message printed), 1.
 */
static int export_start(px_proxy_t *px)
{
    if (px->exporter != NULL) {
        return 0;
    }
    char base[2048] = "";
    if (px->cfg.collector != NULL) {
        snprintf(base, sizeof(base), "%s", px->cfg.collector);
    } else {
        uv_mutex_lock(&px->snap_mu);
        if (px->snapshot != NULL && px->snapshot->telemetry.collector_url.len > 0) {
            snprintf(base, sizeof(base), "%.*s", (int)px->snapshot->telemetry.collector_url.len,
                     px->snapshot->telemetry.collector_url.p);
        }
        uv_mutex_unlock(&px->snap_mu);
    }
    if (base[0] == '\0') {
        return 0;
    }
    char url[2048];
    if (px_export_url(base, url, sizeof(url)) != 0) {
        fprintf(stderr, "weft proxy: collector URL %s: want http://HOST:PORT[/PATH]\n", base);
        return 2;
    }
    px_span_queue_t **queues = wf_calloc((size_t)px->n_workers, sizeof(*queues));
    for (int i = 0; i < px->n_workers; i++) {
        queues[i] = px_span_queue_new((size_t)px->cfg.trace_queue);
    }
    px->span_queues = queues;
    px_export_cfg_t ec = {
        .url = url,
        .flush_ms = px->cfg.trace_flush_ms,
        .batch_max = (size_t)px->cfg.trace_batch,
        .timeout_ms = PX_EXPORT_TIMEOUT_MS,
        .node = px->trace_node,
        .queues = queues,
        .n_queues = (size_t)px->n_workers,
    };
    if (px_export_start(&px->exporter, &ec) != 0) {
        fprintf(stderr, "weft proxy: cannot start the span exporter\n");
        for (int i = 0; i < px->n_workers; i++) {
            px_span_queue_free(queues[i]);
        }
        wf_free(queues);
        px->span_queues = NULL;
        return 1;
    }
    for (int i = 0; i < px->n_workers; i++) {
        atomic_store_explicit(&px->workers[i].spans, queues[i], memory_order_release);
    }
    WF_LOG(WF_INFO, "proxy", "exporting spans", "url=%s sampling_pct=%g", url, px->sampling_pct);
    return 0;
}

static void export_stop(px_proxy_t *px)
{
    px_export_stop(px->exporter, px->cfg.drain_ms);
    px->exporter = NULL;
    for (int i = 0; px->span_queues != NULL && i < px->n_workers; i++) {
        atomic_store_explicit(&px->workers[i].spans, NULL, memory_order_relaxed);
        px_span_queue_free(px->span_queues[i]);
    }
    wf_free(px->span_queues);
    px->span_queues = NULL;
}

/* A snapshot was installed: when no --collector was given and no exporter runs yet, the
 * snapshot's telemetry.collector_url starts one. A later change of that URL takes a restart. */
static void on_export_async(uv_async_t *a)
{
    px_main_ctx_t *m = a->data;
    if (export_start(&m->px) != 0) {
        WF_LOG(WF_WARN, "proxy", "spans not exported: the snapshot's collector_url is unusable");
    }
}

/* Start the workers (their listeners open); 0, or an error already reported. */
static int start_workers(px_main_ctx_t *m)
{
    px_proxy_t *px = &m->px;
    for (int i = 0; i < px->n_workers; i++) {
        px->workers[i].px = px;
        px->workers[i].id = i;
        px->workers[i].metrics = px_metrics_shard(px->metrics, (unsigned)i);
        int rc = px_worker_start(&px->workers[i]);
        if (rc != 0) {
            fprintf(stderr, "weft proxy: %s listener: %s\n", px->gateway ? "gateway" : "inbound",
                    uv_strerror(rc));
            return rc;
        }
        m->started++;
    }
    return 0;
}

/*
 * A gateway started with --control and no --config opens its servers' ports only once the
 * control plane has sent its first snapshot (which names them); /ready says INITIALIZING
 * meanwhile. Polled on the main loop: the control thread installs the snapshot.
 */
static void on_first_wait(uv_timer_t *t)
{
    px_main_ctx_t *m = t->data;
    uv_mutex_lock(&m->px.snap_mu);
    /* A snapshot without servers (no Gateway selects this workload yet) leaves nothing to
     * open: keep waiting, and take the server set of the first snapshot that has one. */
    bool have = m->px.snapshot != NULL && m->px.snapshot->gateway.n_servers > 0;
    unsigned long long version = have ? m->px.snapshot->version : 0;
    m->px.gateway_open = have;
    uv_mutex_unlock(&m->px.snap_mu);
    if (!have) {
        return;
    }
    uv_timer_stop(t);
    if (start_workers(m) != 0) {
        m->status = 1;
        request_stop(m);
        return;
    }
    WF_LOG(WF_INFO, "proxy", "gateway servers open", "snapshot_version=%llu", version);
}

int px_main(int argc, char **argv)
{
    px_main_ctx_t *m = wf_calloc(1, sizeof(*m));
    px_proxy_t *px = &m->px;
    uv_mutex_init(&px->snap_mu);
    uv_mutex_init(&px->bundle_mu);
    px->creds = px_creds_create();
    px->tls = px_tls_ctx_create(px->creds);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char err[600];
    int status = 1;
    bool loop_ok = false;
    int rc = wf_flags_parse(px_flags, &px->cfg, argc, argv, NULL, err, sizeof(err));
    if (rc == 1) {
        printf("Usage: weft proxy --service NAME --app-port PORT [flags]\n\nThe sidecar proxy: "
               "forwards peers' requests to the local app and reports what it saw.\n\n"
               "Flags:\n");
        wf_flags_print_help(px_flags, stdout);
        status = 0;
        goto out;
    }
    if (rc != 0) {
        fprintf(stderr, "weft proxy: %s\n", err);
        status = 2;
        goto out;
    }
    wf_log_level_t level;
    if (wf_log_parse_level(px->cfg.log_level, &level) != 0) {
        fprintf(stderr, "weft proxy: invalid --log-level %s\n", px->cfg.log_level);
        status = 2;
        goto out;
    }
    wf_log_set_level(level);
    px_config_t *cfg = &px->cfg;
    struct sockaddr_storage admin_addr;
    if (strcmp(cfg->mode, "sidecar") != 0 && strcmp(cfg->mode, "gateway") != 0) {
        fprintf(stderr, "weft proxy: --mode is sidecar or gateway\n");
        status = 2;
        goto out;
    }
    px->gateway = strcmp(cfg->mode, "gateway") == 0;
    if (add_flag_labels(NULL, cfg->labels) != 0) {
        fprintf(stderr, "weft proxy: --labels takes name=value[,name=value...]\n");
        status = 2;
        goto out;
    }
    px->inbound_on = strcmp(cfg->inbound, "off") != 0;
    if (!px->inbound_on && (px->gateway || strcmp(cfg->outbound, "off") == 0)) {
        fprintf(stderr, "weft proxy: --inbound off is for a sidecar with an --outbound listener\n");
        status = 2;
        goto out;
    }
    if (cfg->service == NULL || cfg->service[0] == '\0' || cfg->app_port < 0 ||
        cfg->app_port > 65535 || (!px->gateway && px->inbound_on && cfg->app_port == 0)) {
        fprintf(stderr, "weft proxy: --service and --app-port (1..65535) are required (a gateway, "
                        "or a sidecar with --inbound off, has no app port)\n");
        status = 2;
        goto out;
    }
    if (cfg->concurrency < 1 || cfg->concurrency > 256 || cfg->drain_ms < 0 ||
        cfg->connect_timeout_ms <= 0 || cfg->upstream_idle_ms < 0 || cfg->idle_timeout_ms < 0 ||
        cfg->headers_timeout_ms < 0 || cfg->tcp_report_ms < 0) {
        fprintf(stderr, "weft proxy: --concurrency must be 1..256 and the durations >= 0\n");
        status = 2;
        goto out;
    }
    if (parse_addr(px->inbound_on ? cfg->inbound : "127.0.0.1:0", &px->inbound_addr) != 0 ||
        parse_addr(cfg->admin, &admin_addr) != 0) {
        fprintf(stderr, "weft proxy: --inbound (or off) and --admin take ADDRESS:PORT\n");
        status = 2;
        goto out;
    }
    px->outbound_on = strcmp(cfg->outbound, "off") != 0;
    if (px->outbound_on && parse_addr(cfg->outbound, &px->outbound_addr) != 0) {
        fprintf(stderr, "weft proxy: --outbound takes ADDRESS:PORT or off\n");
        status = 2;
        goto out;
    }
    uv_ip4_addr("127.0.0.1", (int)cfg->app_port, (struct sockaddr_in *)&px->app_addr);
    snprintf(px->app_host, sizeof(px->app_host), "127.0.0.1:%d", (int)cfg->app_port);
    snprintf(px->inbound_cluster, sizeof(px->inbound_cluster), "inbound|%d||", (int)cfg->app_port);
    if (load_cert_files(px, err, sizeof(err)) != 0) {
        fprintf(stderr, "weft proxy: certificate files: %s\n", err);
        status = 2;
        goto out;
    }
    if (cfg->config != NULL && load_snapshot(px, err, sizeof(err)) != 0) {
        fprintf(stderr, "weft proxy: --config %s: %s\n", cfg->config, err);
        status = 2;
        goto out;
    }
    if (px->gateway) {
        struct sockaddr_storage *ga = &px->gateway_addr;
        memset(ga, 0, sizeof(*ga));
        if (uv_ip4_addr(cfg->gateway_bind, 0, (struct sockaddr_in *)ga) != 0 &&
            uv_ip6_addr(cfg->gateway_bind, 0, (struct sockaddr_in6 *)ga) != 0) {
            fprintf(stderr, "weft proxy: --gateway-bind takes an IP address\n");
            status = 2;
            goto out;
        }
        if (px->snapshot == NULL && cfg->control == NULL) {
            fprintf(stderr, "weft proxy: --mode gateway needs a --config snapshot whose "
                            "proxy.mode is gateway, or --control\n");
            status = 2;
            goto out;
        }
    }
    char tcp_err[256];
    if (px_tcp_check(px->snapshot, (const struct sockaddr *)&px->inbound_addr,
                     px->outbound_on ? (const struct sockaddr *)&px->outbound_addr : NULL, tcp_err,
                     sizeof(tcp_err)) != 0) {
        fprintf(stderr, "weft proxy: snapshot %s refused: %s\n", cfg->config, tcp_err);
        status = 2;
        goto out;
    }

    self_init(px);
    rc = tracing_init(px);
    if (rc != 0) {
        status = rc;
        goto out;
    }

    if (uv_loop_init(&m->loop) != 0) {
        goto out;
    }
    loop_ok = true;
    px->n_workers = (int)cfg->concurrency;
    px->workers = wf_calloc((size_t)px->n_workers, sizeof(px_worker_t));
    px->metrics = px_metrics_new((unsigned)px->n_workers);
    rc = export_start(px);
    if (rc != 0) {
        status = rc;
        goto out;
    }
    const char *alog = cfg->access_log;
    if (alog == NULL && px->snapshot != NULL && px->snapshot->telemetry.access_log) {
        alog = "-";
    }
    if (alog != NULL && strcmp(alog, "off") != 0) {
        rc = px_access_log_open(&px->access_log, alog, px->n_workers);
        if (rc != 0) {
            fprintf(stderr, "weft proxy: --access-log %s: %s\n", alog, wf_strerror(rc));
            goto out;
        }
    }
    bool defer = px->gateway && px->snapshot == NULL;
    px->gateway_open = px->gateway && !defer;
    if (!defer && start_workers(m) != 0) {
        goto out;
    }
    uv_timer_init(&m->loop, &m->first_wait);
    m->first_wait.data = m;
    if (cfg->control != NULL && cfg->collector == NULL) {
        uv_async_init(&m->loop, &m->export_async, on_export_async);
        m->export_async.data = m;
        uv_mutex_lock(&px->snap_mu);
        px->export_async = &m->export_async;
        uv_mutex_unlock(&px->snap_mu);
    }
    if (defer) {
        uv_timer_start(&m->first_wait, on_first_wait, 20, 20);
    }
    m->admin.quit_cb = on_quit;
    m->admin.quit_arg = m;
    rc = px_admin_start(&m->admin, px, &m->loop, (const struct sockaddr *)&admin_addr);
    if (rc != 0) {
        fprintf(stderr, "weft proxy: admin listener %s: %s\n", cfg->admin, uv_strerror(rc));
        goto out;
    }
    if (cfg->control != NULL) {
        char id[600];
        if (px->identity != NULL) {
            snprintf(id, sizeof(id), "%.*s", (int)px->identity->proxy.id.len,
                     px->identity->proxy.id.p);
        } else {
            snprintf(id, sizeof(id), "%.*s.%.*s", (int)px->self.workload.len, px->self.workload.p,
                     (int)px->self.namespace.len, px->self.namespace.p);
        }
        char *token = NULL, *reg = NULL;
        if (cfg->bootstrap_token_file != NULL &&
            read_token(cfg->bootstrap_token_file, &token) != 0) {
            fprintf(stderr, "weft proxy: --bootstrap-token-file %s: cannot read a token\n",
                    cfg->bootstrap_token_file);
            goto out;
        }
        if (token != NULL) {
            reg = registration_json(px, &admin_addr); /* registering takes the token */
        }
        m->control = px_control_start(px, cfg->control, id, token, reg);
        free(reg);
        if (m->control == NULL) {
            wf_free(token);
            goto out;
        }
        /* Certificate files, when given, were loaded before: the CA is not asked then. */
        px_creds_snap_t *cs = px_creds_acquire(px->creds);
        bool have_cert = cs->leaf != NULL;
        px_creds_release(cs);
        char ident[PX_CERT_MAX_ID];
        const char *sa = cfg->service_account != NULL ? cfg->service_account
                         : px->identity != NULL && px->identity->proxy.service_account.len > 0
                             ? px->identity->proxy.service_account.p
                             : "default";
        char ns[256];
        snprintf(ns, sizeof(ns), "%.*s", (int)px->self.namespace.len, px->self.namespace.p);
        if (token != NULL && !have_cert) {
            if (px_cert_identity(ns, sa, ident, sizeof(ident)) == 0) {
                m->cert = px_cert_start(px, m->control, cfg->control, token, ident);
                atomic_store(&px->cert_expected, m->cert != NULL);
            } else {
                WF_LOG(WF_WARN, "proxy", "no workload certificate: not a SPIFFE identity",
                       "namespace=%s service_account=%s", ns, sa);
            }
        }
        wf_free(token);
    }
    uv_signal_init(&m->loop, &m->sigterm);
    uv_signal_init(&m->loop, &m->sigint);
    m->sigterm.data = m->sigint.data = m;
    uv_signal_start(&m->sigterm, on_signal, SIGTERM);
    uv_signal_start(&m->sigint, on_signal, SIGINT);
    uv_signal_init(&m->loop, &m->sighup);
    m->sighup.data = m;
    uv_signal_start(&m->sighup, on_reload, SIGHUP);
    atomic_store(&px->ready, true);
    uv_mutex_lock(&px->snap_mu);
    unsigned long long version = px->snapshot != NULL ? px->snapshot->version : 0;
    uv_mutex_unlock(&px->snap_mu);
    WF_LOG(WF_INFO, "proxy", "ready",
           "service=%s inbound=%s outbound=%s app=%s admin=%s workers=%d snapshot_version=%llu",
           cfg->service, cfg->inbound, cfg->outbound, px->app_host, cfg->admin, px->n_workers,
           version);
    m->status = 0;
    uv_run(&m->loop, UV_RUN_DEFAULT);
    status = m->status;

out:
    px_cert_stop(m->cert);       /* before the control client whose registration it reads */
    px_control_stop(m->control); /* no snapshot arrives while workers stop */
    for (int i = 0; i < m->started; i++) {
        px_worker_stop(&px->workers[i]);
    }
    for (int i = 0; i < m->started; i++) {
        px_worker_join(&px->workers[i]);
    }
    export_stop(px); /* after the workers: nothing pushes spans any more */
    px_access_log_close(px->access_log);
    if (loop_ok) {
        px_admin_close(&m->admin);
        uv_walk(&m->loop, close_admin_walk, m);
        uv_run(&m->loop, UV_RUN_DEFAULT);
        uv_loop_close(&m->loop);
    }
    if (status == 0 && m->started > 0) {
        WF_LOG(WF_INFO, "proxy", "stopped");
    }
    wf_free(px->workers);
    px_metrics_free(px->metrics);
    wf_buf_free(&px->self_peer);
    px_lb_shared_unref(px->lb);
    px_snapshot_unref(px->snapshot);
    px_snapshot_unref(px->identity);
    wf_free(px->snapshot_json);
    px_tls_ctx_destroy(px->tls);
    px_creds_destroy(px->creds);
    uv_mutex_destroy(&px->bundle_mu);
    uv_mutex_destroy(&px->snap_mu);
    curl_global_cleanup();
    wf_flags_free(px_flags, &px->cfg);
    wf_free(m);
    return status;
}
