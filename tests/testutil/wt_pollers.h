/*
 * wt_pollers.h - a load client for `weft control`: thousands of simulated proxies holding the
 * snapshot long-poll (docs/snapshot.md "Delivery") from one thread, and batches of API requests
 * (registrations, heartbeats, applies) over a few keep-alive connections.
 *
 * Everything is raw HTTP/1.1 over non-blocking sockets on one epoll loop: a poller is one proxy
 * id with one connection, sending GET /v1/snapshot?proxy=ID&version=N; on 200 it takes the
 * document's top-level "version" (found by a streaming scan, so a body is never held unless the
 * caller asks for it) and polls again with it, on 304 it polls again at once. Answers may come
 * with a Content-Length, chunked, or delimited by the close. A connection the server closes is
 * opened again; a failure (refused, reset, an unexpected status) is retried after 100 ms,
 * doubling to 2 s, as the real proxy backs off.
 *
 * Threads: wt_pollers_start runs the pollers on their own thread, so the caller can apply a
 * change (with the real CLI, or wt_http_batch) while the pollers keep reading and each answer is
 * timed when it arrives. The other wt_pollers_* functions are called from the caller's thread;
 * on_doc runs on the pollers' thread. wt_http_batch runs on the caller's thread.
 */
#ifndef WT_POLLERS_H
#define WT_POLLERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Raise RLIMIT_NOFILE to its hard limit; returns the soft limit now in force. */
long wt_raise_nofile(void);

/* One request of a batch. method, path and body are borrowed; status and answer are outputs. */
typedef struct {
    const char *method;
    const char *path;
    const char *body; /* NULL: no body */
    int status;       /* the answer's status, -1 when none came (connection failures) */
    char *answer;     /* the answer's body when the batch keeps them (wf_free it), else NULL */
} wt_req_t;

/*
 * Send the n requests to 127.0.0.1:port over `conns` keep-alive connections (each one request
 * at a time), with "Authorization: Bearer <token>" when token is not NULL, bodies as
 * application/json. A request whose connection fails is sent again (three attempts). With
 * keep_answers each reqs[i].answer receives the body. Returns 0 when every request got an
 * answer (whatever its status) within timeout_ms, else -1.
 */
int wt_http_batch(int port, const char *token, wt_req_t *reqs, size_t n, int conns, int timeout_ms,
                  bool keep_answers);

/*
 * Called on the pollers' thread for every 200 with the poller's index, the document's version
 * (-1 when it has none) and, for the pollers opts.keep_every selects, the body (NUL-terminated,
 * valid during the call); body is NULL otherwise.
 */
typedef void (*wt_pollers_doc_cb)(void *user, size_t idx, int64_t version, const char *body,
                                  size_t len);

typedef struct {
    int port;          /* the control plane on 127.0.0.1 */
    const char *token; /* bearer token (bootstrap); NULL: none */
    const char *query; /* appended to every poll's query string (e.g. "&wait_ms=2000"); NULL */
    size_t keep_every; /* pass on_doc the bodies of pollers 0, k, 2k, ... (0: none) */
    wt_pollers_doc_cb on_doc;
    void *user;
    int max_connecting; /* connections being opened at once; 0 = 64 */
    bool gzip;          /* polls send Accept-Encoding: gzip, as `weft proxy` does */
} wt_pollers_opts_t;

/* Figures over the pollers' life (wt_pollers_stats). */
typedef struct {
    uint64_t docs;         /* 200 answers */
    uint64_t not_modified; /* 304 answers */
    uint64_t bad_status;   /* any other status (last one in last_bad_status) */
    int last_bad_status;
    uint64_t conn_errors; /* refused, reset, closed mid-answer, malformed answers */
    uint64_t connects;    /* connections opened (successfully) */
    uint64_t body_bytes;  /* bytes of 200 bodies (as sent: compressed when gzip) */
    uint64_t wire_bytes;  /* every byte read, heads included */
    size_t waiting;       /* pollers with a poll sent and no answer yet (held by the server) */
    size_t reached;       /* pollers holding a version >= the target */
    int64_t min_version;  /* lowest version held by a poller (0 = none yet) */
    int64_t max_version;  /* highest */
} wt_pollers_stats_t;

typedef struct wt_pollers wt_pollers_t;

/*
 * Start n pollers for the proxy ids ids[0..n) (copied), each from version 0, on a new thread.
 * Returns 0, or -1 (nothing left behind) when the thread or epoll cannot be created.
 */
int wt_pollers_start(const wt_pollers_opts_t *o, const char *const *ids, size_t n,
                     wt_pollers_t **out);
/* Stop the thread, close every connection and free everything. NULL is a no-op. */
void wt_pollers_stop(wt_pollers_t *p);

/*
 * Set the target version: from now on each poller records the monotonic time (wf_mono_ns) at
 * which it first holds a version >= v; a poller already holding one records the present.
 */
void wt_pollers_target(wt_pollers_t *p, int64_t v);
/*
 * The same for the pollers i with which[i] only (a change that only some proxies see: the
 * others get no new document); the rest count as reached, with no time.
 */
void wt_pollers_target_some(wt_pollers_t *p, int64_t v, const bool *which);
/*
 * Wait until every poller holds a version >= the target or timeout_ms passes; returns how many
 * do.
 */
size_t wt_pollers_wait(wt_pollers_t *p, int timeout_ms);
/* Wait until `want` pollers have a poll held by the server (or timeout_ms); returns how many. */
size_t wt_pollers_wait_waiting(wt_pollers_t *p, size_t want, int timeout_ms);
/*
 * Wait until every poller holds a version and no document has arrived for quiet_ms (longer
 * than the control plane's debounce: no build is pending), or timeout_ms. Returns the highest
 * version held, or -1 on timeout. (Pollers may hold different versions: a proxy whose
 * document a build does not change gets none.)
 */
int64_t wt_pollers_settle(wt_pollers_t *p, int quiet_ms, int timeout_ms);
/* Poller i's version (0 = none yet) and the time it reached the target (-1: not yet). */
int64_t wt_pollers_version(wt_pollers_t *p, size_t i);
int64_t wt_pollers_reached_ns(wt_pollers_t *p, size_t i);
void wt_pollers_stats(wt_pollers_t *p, wt_pollers_stats_t *s);

/*
 * The synthetic mesh of the push test and benchmark: services svc-0000, svc-0001, ... in
 * namespace "default", each with workloads v1 and v2 (port 9080), a DestinationRule with
 * subsets v1 and v2, and a VirtualService splitting its traffic between them.
 */
/* The registry id of service svc's workload version ver (1 or 2): "svc-0007-v2.default". */
char *wt_mesh_id(int svc, int ver);
/* The POST /v1/register body of that workload (address 10.x.y.z unique per workload). */
char *wt_mesh_register_body(int svc, int ver);
/* The DestinationRule and the VirtualService (weights w1 to v1, w2 to v2), as JSON. */
char *wt_mesh_dr(int svc);
char *wt_mesh_vs(int svc, int w1, int w2);
/* A Sidecar for service svc's workloads (of nsvc services) whose egress is the k services
 * after it (svc+1 .. svc+k, wrapping), as a service calling a few others declares. */
char *wt_mesh_sidecar(int svc, int nsvc, int k);
/*
 * In a snapshot document: the sum of the weights of every route destination with subset "v2",
 * and the number of such destinations (*n). Returns the sum, or -1 when doc is not JSON.
 */
long wt_mesh_v2_weights(const char *doc, size_t len, long *n);

#endif
