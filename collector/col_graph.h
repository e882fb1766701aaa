/*
 * col_graph.h - the service graph of the mesh (GET /api/graph), answered in Kiali's graph JSON
 * (cytoscape elements) so that a Kiali-style UI can draw weft's mesh from weft's own store.
 *
 * The graph is computed from the stored Istio metrics the proxies emit, with the PromQL Kiali
 * uses (rates of istio_requests_total, istio_tcp_sent_bytes_total, the request duration
 * histogram, response bytes), evaluated in-process at one query time over one duration.
 * docs/graph.md describes the parameters, the JSON and how every number is computed.
 *
 * Threads: the handler runs on the HTTP worker threads and only reads the store through the
 * engine, so any number of graph requests may run at once.
 */
#ifndef COL_GRAPH_H
#define COL_GRAPH_H

#include "col_http.h"
#include "col_mesh.h"
#include "pql.h"

/* Longest accepted namespaces list and namespace count (400 beyond). */
#define COL_GRAPH_MAX_NAMESPACES 100

/*
 * GET /api/graph: arg is the pql_engine_t * to query (borrowed, outlives the server).
 * Parameters: namespaces (comma list, required), graphType (workload|app|versionedApp|
 * service, default workload), duration (Prometheus duration or seconds, default 10m),
 * queryTime (Unix seconds, default now), responseTime (avg|50|95|99, default 95).
 * Bad parameters are 400 with Prometheus's JSON error envelope (errorType bad_data); query
 * failures are 422/503/500 as the Prometheus API answers them.
 */
void col_graph_handler(void *arg, col_req_t *req, col_resp_t *resp);

typedef struct {
    pql_engine_t *engine; /* borrowed */
    col_mesh_t *mesh;     /* borrowed; NULL: no control plane, no badges */
} col_graph_ctx_t;

/*
 * GET /api/graph with Kiali's badges (hasVS, hasCB, hasFaultInjection, hasTrafficShifting,
 * hasRequestTimeout, hasMirroring, hasMissingSC) on the nodes, from the control plane's
 * configuration: arg is a col_graph_ctx_t * (borrowed, outlives the server). When the control
 * plane cannot be read, the graph is answered without badges and "badgesError" says why.
 */
void col_graph_badged_handler(void *arg, col_req_t *req, col_resp_t *resp);

#endif
