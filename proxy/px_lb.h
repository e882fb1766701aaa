/*
 * px_lb.h - endpoint choice for outbound clusters: the DestinationRule's load balancer
 * (LEAST_REQUEST, ROUND_ROBIN, RANDOM with endpoint weights; consistent hash on a ring;
 * PASSTHROUGH), circuit breakers (the pools' shared px_pool_limits_t, concurrent retries) and
 * outlier detection (consecutive 5xx / gateway errors, ejection with backoff).
 *
 * Two kinds of state. px_lb_shared_t holds what every worker shares for one snapshot: per
 * cluster the hash ring (built once, immutable), the endpoints' cumulative weights, the
 * circuit-breaker counters and the outlier state of each endpoint (relaxed atomics; ejection
 * uses compare-and-swap so two workers never eject one endpoint twice). It is created and freed
 * with each snapshot by px_lb_shared_new and reference-counted like it (px_lb_shared_ref /
 * px_lb_shared_unref): the proxy holds one for its current snapshot, each worker generation
 * one for the snapshot it runs on. The per-worker part (round-robin
 * position, requests in flight per endpoint) lives in px_ob_cluster_t and is passed in.
 *
 * Time is explicit (now_ms, monotonic milliseconds) so the outlier state machine can be driven
 * by a fake clock. Un-ejection is lazy: an endpoint is healthy again as soon as its ejection
 * time is over, checked when it is looked at (choice, scrape), rather than at Envoy's next
 * interval tick; the interval paces the decay of the ejection multiplier.
 */
#ifndef PX_LB_H
#define PX_LB_H

#include "px_http1.h"
#include "px_snapshot.h"
#include "px_trace.h"
#include "px_upstream.h"
#include "wf_buf.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Envoy's default cap on one ejection (max_ejection_time), 300 s. */
#define PX_LB_MAX_EJECTION_MS 300000
/* Envoy's bound on a ring's size (maximum_ring_size), 8M entries. */
#define PX_LB_MAX_RING 8388608
/* Bytes of a generated hash cookie value plus NUL. */
#define PX_LB_COOKIE_LEN 17

/* Outlier state of one endpoint, shared by every worker. */
typedef struct {
    _Atomic uint32_t c5xx; /* consecutive 5xx (local failures included) */
    _Atomic uint32_t cgw;  /* consecutive gateway errors (502, 503, 504, local failures) */
    _Atomic int64_t ejected_until_ms; /* 0: not ejected */
    _Atomic uint32_t multiplier;      /* Envoy's ejection multiplier (times ejected, decayed) */
    _Atomic int64_t back_ms;          /* when the last ejection ended (multiplier decay) */
} px_lb_host_t;

typedef struct {
    uint64_t hash;
    uint32_t ep;
} px_lb_ring_entry_t;

/* One cluster's shared state. */
typedef struct {
    const px_cluster_t *cluster;
    uint64_t *cum_weight; /* cum_weight[i] = sum of weights of endpoints 0..i */
    uint64_t total_weight;
    bool weighted;            /* some endpoint weights differ */
    px_lb_ring_entry_t *ring; /* CONSISTENT_HASH: sorted by hash */
    uint32_t ring_size;
    px_lb_host_t *hosts;     /* per endpoint */
    px_pool_limits_t limits; /* connection pool circuit breakers, for every worker's pools */
    _Atomic uint32_t retries_active;
    _Atomic uint64_t retry_overflow;
    _Atomic uint32_t ejections_active;
    _Atomic uint64_t ejections_total;
    _Atomic uint64_t ejections_5xx;
    _Atomic uint64_t ejections_gateway;
} px_lb_cluster_t;

typedef struct px_lb_shared {
    _Atomic uint32_t refs;
    px_lb_cluster_t *clusters; /* parallel to the snapshot's clusters */
    uint32_t n_clusters;
} px_lb_shared_t;

/* Build the shared state of snapshot s (which must outlive it), with one reference. Never
 * fails (aborts on OOM). */
px_lb_shared_t *px_lb_shared_new(const px_snapshot_t *s);
/*
 * Carry what a new snapshot's shared state sh should remember from prev, the one it replaces:
 * for each cluster of the same name, the outlier state (consecutive errors, ejection, its
 * multiplier) of each endpoint at the same address and port, and the ejection counters — so a
 * swap neither forgives an ejected endpoint nor resets the counts. Call before sh is in use.
 */
void px_lb_shared_carry(px_lb_shared_t *sh, const px_lb_shared_t *prev);

/* One more reference (each worker generation holds one); returns sh. Any thread. */
px_lb_shared_t *px_lb_shared_ref(px_lb_shared_t *sh);
/* Drop one reference; the last frees it. NULL is a no-op. Any thread. */
void px_lb_shared_unref(px_lb_shared_t *sh);

/* A request's hash key for a consistent-hash cluster. */
typedef struct {
    bool set; /* the request has a key (else the choice falls back to a random one) */
    uint64_t hash;
    bool set_cookie; /* the cookie was generated: send it back (px_lb_set_cookie) */
    char cookie[PX_LB_COOKIE_LEN];
} px_lb_key_t;

/*
 * Compute the hash key of a request for lb (a no-op unless lb is CONSISTENT_HASH): the first
 * value of the header, the cookie's value, the client address, or the first value of the query
 * parameter. A missing cookie with a TTL is generated (random, 16 hex digits) and the request
 * hashed on it, as Envoy does; without a TTL a missing key leaves key->set false.
 */
void px_lb_request_key(const px_lb_t *lb, const px_http1_head_t *h, wf_str_t query,
                       const char *client_ip, px_rng_t *rng, px_lb_key_t *key);

/* Format the Set-Cookie value for a generated cookie into out (NUL-terminated), as Envoy
 * writes it: `name="value"; Max-Age=S; Path=P; HttpOnly`. Returns its length, 0 when there is
 * nothing to set or it does not fit. */
size_t px_lb_set_cookie(const px_lb_t *lb, const px_lb_key_t *key, char *out, size_t cap);

/* The endpoint on the ring for hash h, skipping ejected ones, or -1. */
int px_lb_ring_lookup(px_lb_cluster_t *lc, uint64_t h, int64_t now_ms);

/*
 * Choose an endpoint of lc's cluster for one attempt, skipping ejected endpoints. rr and active
 * are the worker's round-robin position and requests in flight per endpoint. key may be NULL.
 * Returns the endpoint index, or -1 when none is healthy (Envoy's UH: Istio disables panic
 * mode). PASSTHROUGH clusters are not chosen here (px_lb_passthrough_addr).
 */
int px_lb_choose(px_lb_cluster_t *lc, uint64_t *rr, const uint32_t *active, px_rng_t *rng,
                 const px_lb_key_t *key, int64_t now_ms);

/* PASSTHROUGH: the address to connect to from the request's authority ("ip:port", "[v6]:port"
 * or "ip", which takes port def). Returns 0, or WF_E_INVAL when it is not an IP literal. */
int px_lb_passthrough_addr(wf_str_t authority, uint32_t def, struct sockaddr_storage *ss);

/* What became of an attempt on an endpoint, for outlier detection. */
typedef enum {
    PX_LB_RESPONSE = 0,    /* a response head with its status */
    PX_LB_CONNECT_FAILURE, /* counted as 503 */
    PX_LB_RESET,           /* reset before the response head: counted as 503 */
    PX_LB_TIMEOUT,         /* connect or request timeout: counted as 504 */
} px_lb_result_t;

/* Record an attempt's outcome (status: the response status, for PX_LB_RESPONSE). A success
 * resets the endpoint's counters; reaching a threshold ejects it within max_ejection_percent.
 * Returns true when this call ejected it. No-op when the cluster has no outlier detection. */
bool px_lb_outcome(px_lb_cluster_t *lc, uint32_t ep, px_lb_result_t r, int status, int64_t now_ms);

/* Whether endpoint ep is ejected at now_ms (un-ejects it when its time is over). */
bool px_lb_ejected(px_lb_cluster_t *lc, uint32_t ep, int64_t now_ms);

/* max_retries: admit one more concurrent retry on lc (false, counted as retry overflow, when
 * max_retries are in progress); every admitted retry is released once. */
bool px_lb_retry_admit(px_lb_cluster_t *lc);
void px_lb_retry_release(px_lb_cluster_t *lc);

/* ---------------------------------------------------------------------------------------- */
/* The worker side: a choice turned into a pool (px_worker.h defines these two). */

typedef struct px_worker px_worker_t;
typedef struct px_ob_cluster px_ob_cluster_t;

/* Distinct destinations a worker keeps pools for in one PASSTHROUGH cluster. */
#define PX_LB_PASSTHROUGH_POOLS 64

#define PX_LB_E_UH (-1)   /* no healthy endpoint: 503 UH */
#define PX_LB_E_ADDR (-2) /* PASSTHROUGH: the authority is not an IP literal (no DNS here) */
#define PX_LB_E_FULL (-3) /* PASSTHROUGH: every pool slot is busy with other destinations */

typedef struct {
    px_pool_t *pool;
    const px_endpoint_t *ep; /* NULL for PASSTHROUGH */
    uint32_t *active;        /* the endpoint's in-flight count on this worker, NULL for none */
    char host[96];           /* "address:port" for telemetry */
} px_lb_pick_t;

/*
 * Choose the endpoint for one attempt of a request on worker w's cluster state oc and give its
 * pool (set up on first use). authority: the request's, for PASSTHROUGH. Returns 0 or one of
 * PX_LB_E_*. The caller counts the request in *out->active while it is in flight there.
 */
int px_lb_pick(px_worker_t *w, px_ob_cluster_t *oc, const px_lb_key_t *key, wf_str_t authority,
               int64_t now_ms, px_lb_pick_t *out);
/* Close the pools of oc (the worker is ending); free what oc holds. */
void px_lb_ob_close(px_ob_cluster_t *oc);
void px_lb_ob_free(px_ob_cluster_t *oc);

/* Append the shared per-cluster counters in Prometheus text format (circuit breakers and
 * outlier detection, cluster_name labels). */
void px_lb_render(px_lb_shared_t *sh, int64_t now_ms, wf_buf_t *out);

#endif
