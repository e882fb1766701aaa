/*
 * px_metrics.h - Istio's standard metrics for the proxy (design.md §3 "Proxy metrics"), kept
 * in per-worker shards without locks and merged at scrape time into Prometheus text format
 * 0.0.4, plus a small registry for the proxy's own counters and gauges.
 *
 * Metrics: istio_requests_total (counter), istio_request_duration_milliseconds,
 * istio_request_bytes, istio_response_bytes (histograms, Envoy's default buckets 0.5 ...
 * 3600000), with the 25 HTTP labels of px_ml_t; istio_tcp_sent_bytes_total,
 * istio_tcp_received_bytes_total, istio_tcp_connections_opened_total,
 * istio_tcp_connections_closed_total with the same labels minus response_code and
 * grpc_response_status (Istio's 23 TCP labels).
 *
 * Threads: a px_metrics_shard_t is written by exactly one worker thread (record calls). A
 * scrape (px_metrics_render) may run on any thread at the same time: each shard publishes new
 * label sets with a release store of an append-only list, and every counter is a C11 atomic
 * written by its one owner with a relaxed load + store (a plain add on x86-64 and aarch64; no
 * lock prefix) and read with relaxed loads, so a scrape sees whole values, never torn ones. A
 * scrape is not a snapshot across counters: a histogram read during a request may miss that
 * request in one bucket and see it in another, which Prometheus tolerates; _count is the sum
 * of the buckets as read, so _count always equals the +Inf bucket. Label sets are never
 * removed while the px_metrics_t lives (Envoy does the same; the set is bounded by the mesh).
 * px_own_* (the proxy's own metrics) may be updated from any thread; registering takes a
 * mutex and is meant for start-up.
 */
#ifndef PX_METRICS_H
#define PX_METRICS_H

#include "px_snapshot.h"
#include "wf_buf.h"
#include "wf_str.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The HTTP label set, in design.md's order. */
typedef enum {
    PX_ML_REPORTER,
    PX_ML_SOURCE_WORKLOAD,
    PX_ML_SOURCE_CANONICAL_SERVICE,
    PX_ML_SOURCE_CANONICAL_REVISION,
    PX_ML_SOURCE_WORKLOAD_NAMESPACE,
    PX_ML_SOURCE_PRINCIPAL,
    PX_ML_SOURCE_APP,
    PX_ML_SOURCE_VERSION,
    PX_ML_SOURCE_CLUSTER,
    PX_ML_DESTINATION_WORKLOAD,
    PX_ML_DESTINATION_WORKLOAD_NAMESPACE,
    PX_ML_DESTINATION_PRINCIPAL,
    PX_ML_DESTINATION_APP,
    PX_ML_DESTINATION_VERSION,
    PX_ML_DESTINATION_SERVICE,
    PX_ML_DESTINATION_CANONICAL_SERVICE,
    PX_ML_DESTINATION_CANONICAL_REVISION,
    PX_ML_DESTINATION_SERVICE_NAME,
    PX_ML_DESTINATION_SERVICE_NAMESPACE,
    PX_ML_DESTINATION_CLUSTER,
    PX_ML_REQUEST_PROTOCOL,
    PX_ML_RESPONSE_CODE,        /* HTTP only */
    PX_ML_GRPC_RESPONSE_STATUS, /* HTTP only */
    PX_ML_RESPONSE_FLAGS,
    PX_ML_CONNECTION_SECURITY_POLICY,
    PX_ML_COUNT
} px_ml_t;

/* The label's name ("reporter", ...). */
const char *px_ml_name(px_ml_t l);

/* Envoy's response flags, rendered comma-joined in this order by their short codes. */
typedef enum {
    PX_RF_LH = 1u << 0,    /* failed local health check */
    PX_RF_UH = 1u << 1,    /* no healthy upstream */
    PX_RF_UT = 1u << 2,    /* upstream request timeout */
    PX_RF_LR = 1u << 3,    /* local reset */
    PX_RF_UR = 1u << 4,    /* upstream remote reset */
    PX_RF_UF = 1u << 5,    /* upstream connection failure */
    PX_RF_UC = 1u << 6,    /* upstream connection termination */
    PX_RF_UO = 1u << 7,    /* upstream overflow (circuit breaking) */
    PX_RF_NR = 1u << 8,    /* no route */
    PX_RF_DI = 1u << 9,    /* delay injected */
    PX_RF_FI = 1u << 10,   /* fault (abort) injected */
    PX_RF_RL = 1u << 11,   /* rate limited */
    PX_RF_UAEX = 1u << 12, /* unauthorized (external authorization) */
    PX_RF_DC = 1u << 13,   /* downstream connection termination */
    PX_RF_URX = 1u << 14,  /* upstream retry limit exceeded */
    PX_RF_SI = 1u << 15,   /* stream idle timeout */
    PX_RF_IH = 1u << 16,   /* invalid request headers */
    PX_RF_DPE = 1u << 17,  /* downstream protocol error */
    PX_RF_UPE = 1u << 18,  /* upstream protocol error */
    PX_RF_NC = 1u << 19,   /* no cluster */
    PX_RF_COUNT_ = 20
} px_rflag_t;

/* Write "-" (no flag) or the comma-joined codes, NUL-terminated; returns the length. out must
 * hold PX_RFLAGS_MAX bytes. */
#define PX_RFLAGS_MAX 80
size_t px_rflags_format(uint32_t flags, char out[PX_RFLAGS_MAX]);

/* One side of a request, as metrics and spans name it. Strings are borrowed ("" = unknown),
 * except workload_buf, which px_workload_* fill when they compose `<service>-<version>`. */
typedef struct {
    wf_str_t workload;
    wf_str_t namespace;
    wf_str_t principal; /* SPIFFE URI */
    wf_str_t app;
    wf_str_t version;
    wf_str_t canonical_service;
    wf_str_t canonical_revision;
    wf_str_t cluster;
    char workload_buf[256];
} px_workload_t;

/*
 * From labels (Istio's rules): canonical service = label service.istio.io/canonical-name, else
 * app (or app.kubernetes.io/name), else service; canonical revision =
 * service.istio.io/canonical-revision, else version (or app.kubernetes.io/version), else
 * `latest`; app = the app label, else service; version = the version label, else version;
 * workload = workload if not "", else `<service>-<version>`, else service. Any argument may
 * be empty. Strings are borrowed from the arguments (or point into w->workload_buf).
 */
void px_workload_build(px_workload_t *w, const px_label_t *labels, uint32_t n_labels,
                       wf_str_t service, wf_str_t version, wf_str_t workload, wf_str_t ns,
                       wf_str_t principal, wf_str_t cluster);
/* This proxy's own workload from the snapshot's identity. */
void px_workload_from_proxy(px_workload_t *w, const px_proxy_info_t *pi);
/* A peer endpoint of a cluster whose service name (first DNS label of the host) is service. */
void px_workload_from_endpoint(px_workload_t *w, const px_endpoint_t *ep, wf_str_t service);

/*
 * Peer metadata exchange (Istio does the same with x-envoy-peer-metadata): the source proxy
 * adds PX_PEER_HEADER with its workload to the request, the destination proxy adds its own to
 * the response, so each side can label the other. The value is `key=value` pairs joined by
 * `;` with keys wl (workload), ns, app, ver, cs (canonical service), cr (canonical revision),
 * cl (cluster); values percent-encode every byte outside [A-Za-z0-9._~:/@+-]. Unknown keys
 * are ignored; a key twice, a bad escape or a pair without `=` make the value invalid.
 * The principal is never sent: it comes from the peer's certificate. The header is only as
 * trustworthy as the connection: a proxy removes any PX_PEER_HEADER the app sent before adding
 * its own, and a destination without mTLS knows the values are the caller's word.
 */
#define PX_PEER_HEADER "x-weft-peer"
#define PX_PEER_MAX 1024 /* longest value parsed */

/* Append w's header value to out. */
void px_peer_format(const px_workload_t *w, wf_buf_t *out);
/* Parse a header value into w (principal empty); w's strings point into store, which needs
 * len bytes. Returns 0, WF_E_INVAL, or WF_E_LIMIT when len > PX_PEER_MAX or > cap. */
int px_peer_parse(const char *p, size_t len, px_workload_t *w, char *store, size_t cap);

typedef enum {
    PX_REPORTER_SOURCE = 0,
    PX_REPORTER_DESTINATION,
} px_reporter_t;

typedef enum {
    PX_SEC_UNKNOWN = 0, /* always on the source side */
    PX_SEC_MUTUAL_TLS,
    PX_SEC_NONE,
} px_security_t;

/* The facts of one request (or TCP connection) that label it. Borrowed for the call. */
typedef struct {
    px_reporter_t reporter;
    const px_workload_t *source;      /* NULL: every source_* label is `unknown` */
    const px_workload_t *destination; /* NULL: every destination workload label is `unknown` */
    wf_str_t dest_service;    /* service name or FQDN (`reviews`, `reviews.bookinfo.svc...`) */
    wf_str_t dest_service_ns; /* "" = from the FQDN's second label, else `unknown` */
    wf_str_t protocol;        /* "http", "grpc" or "tcp" */
    uint32_t response_code;   /* 0: no response */
    int grpc_status;          /* -1: not gRPC (label value "") */
    uint32_t flags;           /* px_rflag_t bits */
    px_security_t security;
} px_labels_in_t;

/* A full label set: values borrowed from the px_labels_in_t's strings or held in scratch. */
typedef struct {
    wf_str_t v[PX_ML_COUNT];
    char scratch[512];
} px_labels_t;

/* Fill l from in (`unknown` for what is missing; destination_service becomes the FQDN
 * `<svc>.<ns>.svc.cluster.local`; connection_security_policy `unknown` for reporter=source). */
void px_labels_build(px_labels_t *l, const px_labels_in_t *in);

typedef struct px_metrics px_metrics_t;
typedef struct px_metrics_shard px_metrics_shard_t;

/* A registry with n_shards shards (one per worker; at least 1). Never NULL. */
px_metrics_t *px_metrics_new(unsigned n_shards);
/* Free everything. No record or render call may be running. NULL is a no-op. */
void px_metrics_free(px_metrics_t *m);
unsigned px_metrics_shards(const px_metrics_t *m);
px_metrics_shard_t *px_metrics_shard(px_metrics_t *m, unsigned i);

/* Record one HTTP request: istio_requests_total += 1 and one observation in each histogram.
 * Owner thread of the shard only. The first request of a label set copies it (one
 * allocation); later ones cost one hash lookup and the increments. */
void px_metrics_record_http(px_metrics_shard_t *s, const px_labels_t *l, double duration_ms,
                            uint64_t request_bytes, uint64_t response_bytes);
/* Record TCP traffic of one connection: bytes sent (to the downstream) and received, and
 * opened/closed connection events (0 or 1 each). response_code and grpc_response_status of l
 * are ignored. Owner thread only. */
void px_metrics_record_tcp(px_metrics_shard_t *s, const px_labels_t *l, uint64_t sent_bytes,
                           uint64_t received_bytes, unsigned opened, unsigned closed);
/* Distinct label sets in this shard (owner thread). */
size_t px_metrics_shard_series(const px_metrics_shard_t *s);

/* The proxy's own metrics: counters and gauges with fixed labels. */
typedef enum {
    PX_MT_COUNTER,
    PX_MT_GAUGE,
} px_mtype_t;

typedef struct px_own_metric px_own_metric_t;

/*
 * Register a series: name (a valid metric name; counters should end in _total), help, type,
 * labels as text `k="v",k2="v2"` (already escaped) or NULL. The same name registered again
 * with other labels joins the family (help and type of the first). Returns the handle, valid
 * until px_metrics_free; WF_ASSERTs a malformed name or a type conflict.
 */
px_own_metric_t *px_metrics_own(px_metrics_t *m, const char *name, const char *help,
                                px_mtype_t type, const char *labels);
void px_own_add(px_own_metric_t *c, int64_t delta);
void px_own_set(px_own_metric_t *c, int64_t value);
int64_t px_own_get(const px_own_metric_t *c);

/*
 * Scrape: merge the shards by label set and append the exposition text (format 0.0.4: # HELP
 * and # TYPE per family, families by name, series sorted by their label text, labels in name
 * order with `le` last, values escaped) to out. Families without series are left out. Any
 * thread; concurrent scrapes are serialised internally.
 */
void px_metrics_render(px_metrics_t *m, wf_buf_t *out);

#endif
