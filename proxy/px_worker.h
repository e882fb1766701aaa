/*
 * px_worker.h - the proxy's worker threads and what they share: the process context
 * (px_proxy_t: configuration, snapshot, workers), one worker per thread (px_worker_t: a libuv
 * loop, its own SO_REUSEPORT listeners, its own upstream pool and counters), and the single
 * place where a finished request is reported (px_request_done).
 *
 * Threads: each worker's loop, connections, pool and rng belong to its thread. The counters
 * are per-worker atomics written by that thread only (relaxed adds, no lock on the request
 * path) and summed by the admin thread at scrape time. px_worker_stop may be called from any
 * thread: it wakes the worker through a uv_async_t.
 */
#ifndef PX_WORKER_H
#define PX_WORKER_H

#include "px_creds.h"
#include "px_lb.h"
#include "px_metrics.h"
#include "px_otlp.h"
#include "px_snapshot.h"
#include "px_tls.h"
#include "px_trace.h"
#include "px_upstream.h"
#include "wf_str.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/* The command line, parsed (px_main.c owns the strings). */
typedef struct {
    char *service;
    char *version;
    char *namespace;
    int64_t app_port;
    char *inbound;
    char *outbound;
    char *admin;
    char *config;
    int64_t concurrency;
    int64_t connect_timeout_ms;
    int64_t upstream_idle_ms;
    int64_t drain_ms;
    int64_t idle_timeout_ms;    /* downstream connection with no request in progress */
    int64_t headers_timeout_ms; /* from the first byte of a request head to its end */
    int64_t tcp_report_ms;      /* TCP port bytes into istio_tcp_* this often (0 = at close) */
    char *log_level;
    char *control;              /* the control plane's URL (px_control.h); NULL = none */
    char *bootstrap_token_file; /* the control plane's token for proxies: with it, the proxy
                                 * also registers its workload */
    char *mode;                 /* "sidecar" or "gateway" */
    char *gateway_bind;         /* the address gateway servers listen on */
    char *collector;            /* OTLP/HTTP base URL for spans; NULL: the snapshot's, if any */
    char *sampling;             /* percent of new traces, as text (wf_flags has no float type) */
    int64_t trace_flush_ms;     /* a span batch waits at most this long */
    int64_t trace_batch;        /* spans per batch at most */
    int64_t trace_queue;        /* spans queued per worker at most; more are dropped */
    char *access_log;           /* path or "-" (stdout); NULL: the snapshot's setting */
    char *labels;               /* "k=v,k2=v2": more workload labels to register with */
    char *service_account;      /* registered service account; NULL: the snapshot's, else
                                 * "default" */
    char *cert_chain;           /* workload certificate files (Istio's /etc/certs); NULL: none */
    char *private_key;
    char *root_cert;
} px_config_t;

/* One finished request, as telemetry (metrics, spans, access log) needs it. Every slice is
 * borrowed for the duration of the px_request_done call. */
typedef struct {
    bool inbound;          /* the inbound listener (reporter=destination) or outbound (source) */
    int64_t start_wall_ns; /* when the request head was complete (wall clock, Unix ns) */
    int64_t duration_ns;   /* head complete -> last response byte queued, or the failure */
    wf_str_t method;
    wf_str_t authority; /* Host, or the absolute-form target's authority */
    wf_str_t path;      /* the request-target as received (origin-form path and query) */
    wf_str_t request_id;
    int minor_version;         /* HTTP/1.<minor> of the request */
    int status;                /* response status sent downstream; 0 when none was sent */
    uint64_t bytes_in;         /* request body bytes received (content, after de-chunking) */
    uint64_t bytes_out;        /* response body bytes sent (content, after de-chunking) */
    uint32_t flags;            /* px_rflag_t bits (px_metrics.h); px_rflags_format prints them */
    wf_str_t upstream_cluster; /* "inbound|9080||", "" when none was chosen */
    wf_str_t upstream_host;    /* "127.0.0.1:9080", "" when none was chosen */
    wf_str_t downstream_ip;    /* the client's address */
    wf_str_t peer;             /* inbound: the caller's PX_PEER_HEADER value, "" when absent */
    const px_endpoint_t *upstream_endpoint; /* outbound: the endpoint chosen, NULL when none */
    wf_str_t upstream_service;   /* outbound: the chosen cluster's host, else (a fault abort) the
                                    route's first destination host; "" when none */
    const px_trace_ctx_t *trace; /* this hop's trace context, NULL when none */
    wf_str_t user_agent;         /* "" when absent */
    wf_str_t upstream_peer; /* outbound: the answering proxy's PX_PEER_HEADER, "" when absent */
    bool mtls; /* inbound: the downstream connection, outbound: the upstream one was mTLS */
    wf_str_t peer_principal; /* the SPIFFE URI that connection's peer proved, "" when none */
} px_request_info_t;

#define PX_RBUF_CACHE 16

/* Per-worker counters; each is written by its worker's thread only. */
typedef struct {
    _Atomic uint64_t downstream_cx_total;
    _Atomic uint64_t downstream_cx_active;
    _Atomic uint64_t requests_total[6]; /* [0] no response sent, [1..5] 1xx..5xx */
    _Atomic uint64_t upstream_cx_total;
    _Atomic uint64_t upstream_cx_active;
    _Atomic uint64_t upstream_cx_connect_fail;
    _Atomic uint64_t upstream_rq_reused; /* requests sent on a pooled keep-alive connection */
    _Atomic uint64_t mirror_rq_done;     /* mirrored copies whose response came whole */
    _Atomic uint64_t mirror_rq_failed;   /* ... that failed or timed out (px_mirror.h) */
    _Atomic uint64_t mirror_rq_skipped;  /* requests not mirrored: body not there with the head */
    _Atomic uint64_t authz_allowed;      /* requests AuthorizationPolicy let in (px_authz.h) */
    _Atomic uint64_t authz_denied;       /* ... and those it answered 403 */
} px_counters_t;

typedef struct px_proxy px_proxy_t;
typedef struct px_conn px_conn_t;
typedef struct px_worker px_worker_t;
typedef struct px_tcp px_tcp_t;

/* A listener of a gateway server (snapshot gateway.servers[]). */
typedef struct {
    uv_tcp_t tcp;
    px_worker_t *w;
    uint32_t port;
    bool open;
} px_listener_t;
typedef struct px_mirror px_mirror_t;

/* One worker's counters for one outbound cluster, by name: shared by the generations that
 * have the cluster, so they run on across snapshot swaps (as Envoy keeps a cluster's stats
 * while it exists) and count the requests still finishing on an older generation. */
typedef struct {
    _Atomic uint64_t cx_total; /* over the cluster's endpoints */
    _Atomic uint64_t cx_active;
    _Atomic uint64_t cx_connect_fail;
    _Atomic uint64_t rq_total;
    uint32_t refs; /* generations using it; worker thread only */
} px_cluster_stats_t;

/* One worker's state for one outbound cluster of the snapshot. */
typedef struct px_ob_cluster {
    const px_cluster_t *cluster;
    px_lb_cluster_t *lb; /* the state every worker shares (px->lb) */
    uint64_t rr;         /* ROUND_ROBIN position */
    uint32_t *active;    /* per endpoint: this worker's requests in flight there */
    px_pool_t *pools;    /* per endpoint, set up on first use */
    bool *pool_ready;
    px_cluster_stats_t *st; /* shared with other generations that have this cluster */
    px_pool_t **pt_pools;   /* PASSTHROUGH: one per destination address, up to a bound */
    uint32_t n_pt_pools;
} px_ob_cluster_t;

/*
 * One worker's view of one config snapshot: the snapshot (one reference) and the worker's
 * state for each of its clusters (pools, balancer positions, counters). A request, a retry
 * and a mirror use the generation current when the request began, to its end: a new
 * snapshot makes a new generation, and the old one is freed (its pools closed) when its last
 * user is done. Belongs to the worker's thread; the admin thread reads the current one's
 * counters under px->snap_mu.
 */
typedef struct px_gen px_gen_t;
struct px_gen {
    px_snapshot_t *snap;
    px_lb_shared_t *lb;  /* snap's shared balancing state (one reference) */
    px_ob_cluster_t *ob; /* snap->n_clusters entries */
    uint32_t users;      /* requests and mirrors on it, +1 while it is the worker's current one */
    px_gen_t *next;      /* retired generations waiting for their users */
};

struct px_worker {
    px_proxy_t *px;
    int id;
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t stop_async;
    uv_timer_t drain_timer;
    uv_tcp_t inbound;
    bool inbound_open;
    uv_tcp_t outbound;
    bool outbound_open;
    uint32_t outbound_port;
    px_listener_t *gw; /* gateway mode: one per gateway server */
    uint32_t n_gw;
    px_gen_t *gen;           /* current generation; NULL while there is no snapshot */
    px_gen_t *retired;       /* older generations still in use */
    uv_async_t config_async; /* a new snapshot was installed (px_proxy_install) */
    px_pool_t app_pool;      /* inbound: the local app */
    px_conn_t *conns;        /* every open downstream connection */
    px_mirror_t *mirrors;    /* mirrored requests in flight */
    px_tcp_t *tcp;           /* inbound TCP ports (px_tcp.h); NULL when there are none */
    uint32_t n_conns;
    bool draining;
    bool stopped;
    px_rng_t rng; /* request ids, load balancing and fault draws */
    /* Read buffers of connections gone idle, for the next request's first read: an idle
     * keep-alive connection holds none, yet a busy worker does not malloc and free 64 KiB
     * (and have the pages trimmed and faulted back) per request. */
    wf_buf_t rbuf_cache[PX_RBUF_CACHE];
    uint32_t n_rbuf_cache;
    px_metrics_shard_t *metrics; /* this worker's shard of px->metrics */
    /* To the span exporter; NULL while none runs. Set once by the main thread (an exporter
     * can start with the first snapshot naming a collector), read by this worker: atomic. */
    _Atomic(px_span_queue_t *) spans;
    px_counters_t ctr;
    int start_rc; /* listener setup result, read by the main thread after start */
    uv_sem_t started;
};

/* The process context: made in px_main and read by every thread; while workers run only the
 * snapshot fields change, under snap_mu (px_proxy_install). */
struct px_proxy {
    px_config_t cfg;
    struct sockaddr_storage inbound_addr;
    struct sockaddr_storage outbound_addr;
    bool inbound_on;  /* --inbound is not "off" (always on for a gateway) */
    bool outbound_on; /* --outbound is not "off" */
    struct sockaddr_storage app_addr;
    bool gateway;                         /* --mode gateway: gateway servers, no app */
    struct sockaddr_storage gateway_addr; /* --gateway-bind, port 0 */
    char app_host[64];                    /* "127.0.0.1:9080" */
    char inbound_cluster[64];             /* "inbound|9080||" */
    uv_mutex_t snap_mu;      /* guards snapshot, snapshot_json, nack* and workers' gen */
    px_snapshot_t *snapshot; /* the current one; NULL before the first */
    px_lb_shared_t *lb;      /* its load-balancing state shared by workers (one reference) */
    char *snapshot_json;     /* its document as received, for /config_dump */
    px_snapshot_t *identity; /* the first snapshot, kept: self's strings point into it */
    bool gateway_open;       /* a gateway's server ports are open (their set is fixed) */
    char nack[512];          /* why the last refused snapshot was refused, "" when none */
    uint64_t nack_version;   /* its version */
    _Atomic uint64_t config_accepted;
    _Atomic uint64_t config_rejected;
    px_worker_t *workers;
    int n_workers;
    px_metrics_t *metrics;   /* Istio metrics, one shard per worker */
    px_workload_t self;      /* this proxy's workload (snapshot identity, else the flags) */
    wf_str_t self_service;   /* the service this sidecar serves (destination_service inbound) */
    wf_buf_t self_peer;      /* PX_PEER_HEADER value sent on outbound requests */
    char self_identity[320]; /* self.principal from the flags: the identity the CA issues */
    _Atomic bool ready;
    _Atomic bool draining;
    double sampling_pct;              /* percent of new traces sampled (px_trace_start) */
    struct px_export *exporter;       /* NULL when spans are not exported; main thread only */
    uv_async_t *export_async;         /* main loop: a snapshot was installed (may start it) */
    px_span_queue_t **span_queues;    /* one per worker while the exporter runs */
    struct px_access_log *access_log; /* NULL: off */
    char node_id[320];                /* Istio's node id, for spans */
    px_trace_node_t trace_node;       /* what every span of this proxy shares */
    px_creds_t *creds;                /* workload certificate and trust bundle (px_creds.h) */
    px_tls_ctx_t *tls;                /* mTLS contexts over creds, shared by workers */

    /* The mesh CA's side of creds (px_cert.h). */
    uv_mutex_t bundle_mu;                  /* orders trust bundle installs */
    _Atomic uint64_t trust_bundle_version; /* of the bundle in creds; 0: none from the CA */
    _Atomic uint64_t cert_renew_ok;        /* certificates obtained from the CA */
    _Atomic uint64_t cert_renew_error;     /* CSR attempts that failed */
    _Atomic bool cert_expected; /* the CA is asked for one: not ready until it is installed */
};

/* Start worker w (zeroed except px, id, metrics and spans) on its own thread with its listeners
 * bound. Returns 0 once it listens, or the negative uv error of the bind (then the thread has
 * ended). */
int px_worker_start(px_worker_t *w);
/* Ask w to drain: close listeners, let requests in flight finish within cfg.drain_ms, then end
 * its loop. Any thread. */
void px_worker_stop(px_worker_t *w);
/* Wait for w's thread to end and free what it holds. */
void px_worker_join(px_worker_t *w);

/* Bind and listen on addr with SO_REUSEPORT, accepting with cb (tcp->data is the caller's).
 * 0 or a negative uv error (then tcp is closing). Worker thread. */
int px__worker_listen(uv_loop_t *loop, uv_tcp_t *tcp, const struct sockaddr *addr,
                      uv_connection_cb cb);

/* A downstream connection closed: the worker may end once draining and none remain. */
void px__worker_conn_gone(px_worker_t *w);

/*
 * The one place a finished request (answered, refused or abandoned) is reported, on the
 * worker's thread, once per request, after the last response byte was queued. It counts
 * requests by status class and records the Istio metrics in the worker's shard (reporter
 * destination inbound, source outbound), the span of a sampled request (px_tracing_record) and
 * the access log line.
 */
void px_request_done(px_worker_t *w, const px_request_info_t *info);

/*
 * Make s (with one reference, which this takes; json: its document, taken too, may be NULL) the
 * proxy's snapshot, or refuse it: a snapshot for another identity or mode than the running
 * proxy's, or not newer than the current one, is refused with a reason in err (the NACK), and
 * the current one keeps serving. Workers switch at their next loop turn; requests in flight
 * finish on the generation they started with. Any thread. Returns 0 or WF_E_INVAL.
 */
int px_proxy_install(px_proxy_t *px, px_snapshot_t *s, char *json, char *err, size_t errlen);

/* Record a refused snapshot (one that px_proxy_install refused, or that did not even parse:
 * version 0 when it is unknown): the reason is kept for the control plane and counted. Any
 * thread. */
void px_proxy_nack(px_proxy_t *px, uint64_t version, const char *why);

/* The worker's current generation with one more user (NULL when there is no snapshot), and
 * the release of a user. Worker thread only. */
px_gen_t *px_gen_acquire(px_worker_t *w);
void px_gen_release(px_worker_t *w, px_gen_t *g);

/* A read buffer from w's cache into the empty b (left empty when the cache is), and b's
 * memory back to the cache (or freed when the cache is full or b is large). Worker thread. */
void px_worker_rbuf_get(px_worker_t *w, wf_buf_t *b);
void px_worker_rbuf_put(px_worker_t *w, wf_buf_t *b);

/* Next value of the worker's generator (px_rng_t, xoshiro256**). */
uint64_t px_worker_rand(px_worker_t *w);

#endif
