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

#include "px_metrics.h"
#include "px_snapshot.h"
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
    wf_str_t upstream_service;              /* outbound: the chosen cluster's host, "" when none */
} px_request_info_t;

/* Per-worker counters; each is written by its worker's thread only. */
typedef struct {
    _Atomic uint64_t downstream_cx_total;
    _Atomic uint64_t downstream_cx_active;
    _Atomic uint64_t requests_total[6]; /* [0] no response sent, [1..5] 1xx..5xx */
    _Atomic uint64_t upstream_cx_total;
    _Atomic uint64_t upstream_cx_active;
    _Atomic uint64_t upstream_cx_connect_fail;
    _Atomic uint64_t upstream_rq_reused; /* requests sent on a pooled keep-alive connection */
} px_counters_t;

typedef struct px_proxy px_proxy_t;
typedef struct px_conn px_conn_t;
typedef struct px_tcp px_tcp_t;

/* One worker's state for one outbound cluster of the snapshot. */
typedef struct {
    const px_cluster_t *cluster;
    uint64_t rr;      /* ROUND_ROBIN position */
    uint32_t *active; /* per endpoint: this worker's requests in flight there */
    px_pool_t *pools; /* per endpoint, set up on first use */
    bool *pool_ready;
    _Atomic uint64_t cx_total; /* over the cluster's endpoints */
    _Atomic uint64_t cx_active;
    _Atomic uint64_t cx_connect_fail;
    _Atomic uint64_t rq_total;
} px_ob_cluster_t;

typedef struct px_worker {
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
    px_ob_cluster_t *ob; /* snapshot->n_clusters entries; NULL without a snapshot */
    px_pool_t app_pool;  /* inbound: the local app */
    px_conn_t *conns;    /* every open downstream connection */
    px_tcp_t *tcp;       /* inbound TCP ports (px_tcp.h); NULL when there are none */
    uint32_t n_conns;
    bool draining;
    bool stopped;
    px_rng_t rng;                /* request ids, load balancing and fault draws */
    px_metrics_shard_t *metrics; /* this worker's shard of px->metrics */
    px_counters_t ctr;
    int start_rc; /* listener setup result, read by the main thread after start */
    uv_sem_t started;
} px_worker_t;

/* The process context: made in px_main, read by every thread, changed by none while workers
 * run. */
struct px_proxy {
    px_config_t cfg;
    struct sockaddr_storage inbound_addr;
    struct sockaddr_storage outbound_addr;
    bool outbound_on; /* --outbound is not "off" */
    struct sockaddr_storage app_addr;
    char app_host[64];        /* "127.0.0.1:9080" */
    char inbound_cluster[64]; /* "inbound|9080||" */
    px_snapshot_t *snapshot;  /* NULL without --config */
    char *snapshot_json;      /* the file as read, for /config_dump */
    px_worker_t *workers;
    int n_workers;
    px_metrics_t *metrics; /* Istio metrics, one shard per worker */
    px_workload_t self;    /* this proxy's workload (snapshot identity, else the flags) */
    wf_str_t self_service; /* the service this sidecar serves (destination_service inbound) */
    wf_buf_t self_peer;    /* PX_PEER_HEADER value sent on outbound requests */
    _Atomic bool ready;
    _Atomic bool draining;
};

/* Start worker w (zeroed except px, id and metrics) on its own thread with its listeners bound.
 * Returns 0 once it listens, or the negative uv error of the bind (then the thread has ended). */
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
 * destination inbound, source outbound); the spans module hooks in here.
 */
void px_request_done(px_worker_t *w, const px_request_info_t *info);

/* Next value of the worker's generator (px_rng_t, xoshiro256**). */
uint64_t px_worker_rand(px_worker_t *w);

#endif
