/*
 * col_mesh.h - the collector's link to the control plane: what `weft control` knows about the
 * mesh (Istio resources with their validation messages, registered workloads, proxy sync
 * state), read over its admin API and served to the UI as /api/mesh/..., and the graph badges
 * (Kiali's hasVS, hasCB, hasFaultInjection, ...) derived from it.
 *
 * A view (col_mesh_view_t) is one consistent read of the control plane: immutable, shared by
 * reference between the HTTP threads that use it. col_mesh_t keeps the last view for a short
 * time (--control-cache) and lets one thread at a time refresh it, so however many UI users
 * refresh at once, the control plane sees one read per period: the others are answered from
 * the previous view meanwhile, or wait for the refresh when there is none. A failed read is
 * kept too, for a shorter time, so that a control plane that is down is not asked again by
 * every request; a refresh is bounded by one timeout for all its requests.
 *
 * Threads: every function may be called from any thread, except col_mesh_free.
 */
#ifndef COL_MESH_H
#define COL_MESH_H

#include "col_http.h"
#include "wf_buf.h"
#include "wf_str.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct col_mesh col_mesh_t;
typedef struct col_mesh_view col_mesh_view_t;

typedef struct {
    const char *url;    /* base URL of `weft control`, e.g. http://127.0.0.1:15010 (copied) */
    const char *token;  /* admin token sent as a bearer token, NULL for none (copied) */
    int64_t cache_ms;   /* how long a read is reused; default 5000 */
    int64_t timeout_ms; /* one refresh (all its requests); default 3000 */
} col_mesh_options_t;

/* A new client; nothing is read until a view is asked for. 0, or WF_E_INVAL for a URL that is
 * not http:// or https://. */
int col_mesh_new(const col_mesh_options_t *o, col_mesh_t **out);
/* NULL is a no-op. No view may be in use by another thread. */
void col_mesh_free(col_mesh_t *m);

/*
 * The current view (a new reference: col_mesh_view_release it), read from the control plane
 * when the cached one is older than cache_ms. 0, or -EIO when the control plane could not be
 * read: *out is NULL and err holds a sentence saying what failed.
 */
int col_mesh_get(col_mesh_t *m, col_mesh_view_t **out, char *err, size_t errlen);
void col_mesh_view_release(col_mesh_view_t *v);

/* The control plane's answers a view is made of, as JSON texts (NULL: absent, empty). */
typedef struct {
    const char *const *lists; /* Kubernetes lists {"items": [...]}, one per resource kind */
    size_t nlists;
    const char *analyze;   /* GET /v1/analyze: {"messages": [...]} */
    const char *workloads; /* GET /v1/workloads: {"items": [...]} */
    const char *proxies;   /* GET /v1/proxy-status: {"proxies": [...]} */
} col_mesh_src_t;

/* Build a view from the control plane's answers (what col_mesh_get does after reading them;
 * tests and the fuzz target call it directly). 0, or WF_E_INVAL with err saying which text is
 * not what the control plane answers. */
int col_mesh_view_new(const col_mesh_src_t *src, col_mesh_view_t **out, char *err, size_t errlen);

/* A graph node as /api/graph has it: type is workload, app, service, box or unknown; an app
 * node of a versionedApp graph has a version. Slices are borrowed. */
typedef struct {
    const char *type;
    wf_str_t ns, workload, app, version, service;
} col_mesh_node_t;

#define COL_MESH_MAX_HOSTNAMES 8

/* The badges of one node, with Kiali's meaning (docs/graph.md "Badges"). */
typedef struct {
    bool vs;         /* a VirtualService routes the node's service (hostnames: its hosts) */
    bool cb;         /* a DestinationRule sets connectionPool or outlierDetection */
    bool fault;      /* an HTTP route injects faults */
    bool shifting;   /* a route splits traffic over more than one weighted destination */
    bool timeout;    /* an HTTP route sets a request timeout */
    bool mirroring;  /* an HTTP route mirrors traffic */
    bool missing_sc; /* a registered workload of the node runs without a sidecar */
    const char *hostnames[COL_MESH_MAX_HOSTNAMES]; /* borrowed from the view */
    size_t nhostnames;
} col_mesh_badges_t;

/* The badges of node n under view v (every field false when none applies). */
void col_mesh_badges(const col_mesh_view_t *v, const col_mesh_node_t *n, col_mesh_badges_t *out);
/* Append the badges that are set as JSON members, each preceded by a comma
 * (,"hasVS":{"hostnames":[...]},"hasCB":true,...), as Kiali's node data carries them. */
void col_mesh_badges_json(const col_mesh_badges_t *b, wf_buf_t *out);

/* A JSON object (text of len bytes) as block YAML, Kubernetes' layout: what
 * /api/mesh/config/<kind>/<ns>/<name> shows. Strings that YAML would read as something else are
 * double-quoted, so the YAML reads back as the same object. 0, or WF_E_INVAL when the text is
 * not a JSON object. */
int col_mesh_yaml(const char *json, size_t len, wf_buf_t *out);

/*
 * Serve GET /api/mesh/services, /api/mesh/workloads, /api/mesh/config and
 * /api/mesh/config/<kind>/<namespace>/<name> from m (borrowed, outlives the server). With m
 * NULL (no --control) they answer 404 with a JSON error saying how to connect one; when the
 * control plane cannot be read, 502 with what failed.
 */
int col_mesh_register(col_http_t *h, col_mesh_t *m);

#endif
