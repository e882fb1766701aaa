/*
 * col_graph.c - GET /api/graph: the mesh's service graph in Kiali's JSON.
 *
 * How it works: a handful of PromQL instant queries (the ones Kiali's graph code runs, see
 * docs/graph.md) are evaluated through the engine at queryTime. Each result series carries
 * the source and destination labels of a slice of traffic; the series is mapped to a source
 * node and a destination node for the requested graph type, and its value is added to the
 * edge between them (keyed by protocol, as Kiali separates HTTP and TCP edges). The request
 * and TCP queries create nodes and edges; the later ones (mTLS, response time, throughput)
 * only annotate edges that carry traffic, so no node appears without traffic.
 *
 * Which telemetry counts: an edge from a sidecar is taken from the source proxy's report
 * (reporter="source"), an edge from outside the mesh (source_workload="unknown") from the
 * destination proxy's, so no request is counted twice. mTLS comes from the destination side
 * only, because only it knows what the handshake proved (connection_security_policy).
 *
 * Namespaces go into the queries, so they are restricted to Kubernetes namespace names (DNS
 * labels: [a-z0-9-], at most 63 bytes), which also keeps them free of PromQL and regex syntax.
 */
#include "col_graph.h"

#include "col_api.h"
#include "wf_alloc.h"
#include "wf_arena.h"
#include "wf_buf.h"
#include "wf_clock.h"
#include "wf_err.h"
#include "wf_str.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_MAX_LEN 63
#define DEFAULT_DURATION_S 600
#define MAX_DURATION_S (365LL * 86400)
#define MAX_QUERY_TIME_S 100000000000LL /* year 5138: anything later is a typo */

typedef enum { GT_WORKLOAD, GT_APP, GT_VERSIONED_APP, GT_SERVICE } graph_type_t;

static const char *const graph_type_names[] = {"workload", "app", "versionedApp", "service"};

/* The labels each graph type groups by: what its nodes are made of, plus the destination
 * service for requests that reached no workload (they become service nodes). */
static const char *group_labels(graph_type_t gt)
{
    switch (gt) {
    case GT_WORKLOAD:
        return "source_workload_namespace,source_workload,source_canonical_service,"
               "source_canonical_revision,destination_service_namespace,"
               "destination_service_name,destination_workload_namespace,destination_workload,"
               "destination_canonical_service,destination_canonical_revision";
    case GT_APP:
        return "source_workload_namespace,source_canonical_service,"
               "destination_service_namespace,destination_service_name,"
               "destination_workload_namespace,destination_canonical_service";
    case GT_VERSIONED_APP:
        return "source_workload_namespace,source_canonical_service,source_canonical_revision,"
               "destination_service_namespace,destination_service_name,"
               "destination_workload_namespace,destination_canonical_service,"
               "destination_canonical_revision";
    case GT_SERVICE:
        break;
    }
    return "source_workload_namespace,source_canonical_service,destination_service_namespace,"
           "destination_service_name";
}

typedef enum { RT_AVG, RT_Q50, RT_Q95, RT_Q99 } rt_kind_t;

typedef struct {
    wf_str_t code;
    wf_str_t flags;
    double rate;
} gr_resp_t;

typedef struct {
    wf_str_t key; /* identity: type, namespace, workload, app, version, service */
    uint64_t h;
    char id[17];
    const char *type; /* workload | app | service | unknown | box */
    wf_str_t ns, workload, app, version, service;
    size_t parent; /* box node index + 1, 0 for none */
    double http_in, in4xx, in5xx, http_out, tcp_in, tcp_out;
    bool has_in;
} gr_node_t;

typedef struct {
    size_t src, dst;
    int proto; /* 0 http, 1 tcp */
    uint64_t h;
    char id[17];
    double http, err, tcp, mtls, sec_total, rt, rt_sum, rt_count, bytes;
    bool has_rt;
    gr_resp_t *resp;
    size_t nresp, cresp;
} gr_edge_t;

/* An open-addressing index of node or edge positions + 1 by hash. */
typedef struct {
    size_t *slot;
    size_t cap; /* power of two */
} gr_index_t;

typedef struct {
    graph_type_t gt;
    wf_arena_t arena;
    gr_node_t *nodes;
    size_t nnodes, cnodes;
    gr_edge_t *edges;
    size_t nedges, cedges;
    gr_index_t node_ix, edge_ix;
} graph_t;

typedef enum {
    Q_HTTP,
    Q_TCP,
    Q_MTLS,
    Q_TCP_MTLS,
    Q_RT_QUANTILE,
    Q_RT_SUM,
    Q_RT_COUNT,
    Q_BYTES
} query_kind_t;

/* ---- parameters ---------------------------------------------------------------------------- */

static bool ns_valid(const char *s, size_t n)
{
    if (n == 0 || n > NS_MAX_LEN || s[0] == '-' || s[n - 1] == '-') {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
            return false;
        }
    }
    return true;
}

/* The namespaces as a regex alternation "a|b|c" into out; 0 or a message in err. */
static int parse_namespaces(const char *v, wf_buf_t *out, const char **err)
{
    if (v == NULL || *v == '\0') {
        *err = "no namespaces given";
        return WF_E_INVAL;
    }
    if (strlen(v) > (size_t)COL_GRAPH_MAX_NAMESPACES * (NS_MAX_LEN + 1)) {
        *err = "namespaces list too long";
        return WF_E_INVAL;
    }
    size_t count = 0;
    const char *p = v;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (!ns_valid(p, n)) {
            *err = "not a namespace name (lowercase letters, digits and '-', at most 63)";
            return WF_E_INVAL;
        }
        if (++count > COL_GRAPH_MAX_NAMESPACES) {
            *err = "more than 100 namespaces";
            return WF_E_INVAL;
        }
        if (out->len > 0) {
            wf_buf_putc(out, '|');
        }
        wf_buf_append(out, p, n);
        if (comma == NULL) {
            break;
        }
        p = comma + 1;
    }
    return 0;
}

static int parse_graph_type(const char *v, graph_type_t *gt)
{
    if (v == NULL) {
        *gt = GT_WORKLOAD;
        return 0;
    }
    for (size_t i = 0; i < sizeof(graph_type_names) / sizeof(graph_type_names[0]); i++) {
        if (strcmp(v, graph_type_names[i]) == 0) {
            *gt = (graph_type_t)i;
            return 0;
        }
    }
    return WF_E_INVAL;
}

static int parse_query_time(const char *v, int64_t *out_s)
{
    if (v == NULL) {
        *out_s = wf_wall_ms() / 1000;
        return 0;
    }
    if (*v < '0' || *v > '9') {
        return WF_E_INVAL;
    }
    char *end;
    errno = 0;
    long long s = strtoll(v, &end, 10);
    if (errno != 0 || *end != '\0' || s > MAX_QUERY_TIME_S) {
        return WF_E_INVAL;
    }
    *out_s = s;
    return 0;
}

static int parse_response_time(const char *v, rt_kind_t *rt)
{
    static const char *const names[] = {"avg", "50", "95", "99"};
    if (v == NULL) {
        *rt = RT_Q95;
        return 0;
    }
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(v, names[i]) == 0) {
            *rt = (rt_kind_t)i;
            return 0;
        }
    }
    return WF_E_INVAL;
}

/* ---- the graph ----------------------------------------------------------------------------- */

static void ix_free(gr_index_t *ix)
{
    wf_free(ix->slot);
    ix->slot = NULL;
    ix->cap = 0;
}

/* The slot holding key (slots hold a position + 1, 0 is free) or the free slot where it
 * belongs; eq compares the entry at a position with key. */
static size_t *ix_find(gr_index_t *ix, uint64_t h,
                       bool (*eq)(const graph_t *, size_t, const void *), const graph_t *g,
                       const void *key)
{
    size_t mask = ix->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        if (ix->slot[i] == 0 || eq(g, ix->slot[i] - 1, key)) {
            return &ix->slot[i];
        }
    }
}

/* Make room for one more entry (the index stays at most half full). */
static void ix_grow(gr_index_t *ix, size_t used, const uint64_t *hashes, size_t stride)
{
    if ((used + 1) * 2 <= ix->cap) {
        return;
    }
    size_t cap = ix->cap ? ix->cap * 2 : 64;
    size_t *slot = wf_calloc(cap, sizeof(*slot));
    for (size_t k = 0; k < used; k++) {
        uint64_t h = *(const uint64_t *)(const void *)((const char *)hashes + k * stride);
        size_t i = (size_t)h & (cap - 1);
        while (slot[i] != 0) {
            i = (i + 1) & (cap - 1);
        }
        slot[i] = k + 1;
    }
    wf_free(ix->slot);
    ix->slot = slot;
    ix->cap = cap;
}

static bool node_eq(const graph_t *g, size_t pos, const void *key)
{
    return wf_str_eq(g->nodes[pos].key, *(const wf_str_t *)key);
}

typedef struct {
    size_t src, dst;
    int proto;
} edge_key_t;

static bool edge_eq(const graph_t *g, size_t pos, const void *key)
{
    const edge_key_t *k = key;
    const gr_edge_t *e = &g->edges[pos];
    return e->src == k->src && e->dst == k->dst && e->proto == k->proto;
}

static wf_str_t dup_str(graph_t *g, wf_str_t s)
{
    return (wf_str_t){wf_arena_strndup(&g->arena, s.p, s.len), s.len};
}

/* One field of a node's identity key: length-prefixed, so no value can imitate a boundary. */
static void key_put(wf_buf_t *key, wf_str_t v)
{
    wf_buf_printf(key, "%zu:", v.len);
    wf_buf_append(key, v.p, v.len);
}

/* The node of this identity; created when create, else SIZE_MAX when absent. */
static size_t node_get(graph_t *g, const char *type, wf_str_t ns, wf_str_t workload, wf_str_t app,
                       wf_str_t version, wf_str_t service, bool create)
{
    wf_buf_t key = WF_BUF_INIT;
    key_put(&key, wf_str(type));
    key_put(&key, ns);
    key_put(&key, workload);
    key_put(&key, app);
    key_put(&key, version);
    key_put(&key, service);
    wf_str_t k = {(const char *)key.data, key.len};
    uint64_t h = wf_hash64(key.data, key.len, 0);
    size_t pos = SIZE_MAX;
    if (g->node_ix.cap == 0) {
        if (!create) {
            goto done;
        }
        ix_grow(&g->node_ix, 0, NULL, sizeof(gr_node_t));
    }
    size_t *slot = ix_find(&g->node_ix, h, node_eq, g, &k);
    if (*slot != 0) {
        pos = *slot - 1;
        goto done;
    }
    if (!create) {
        goto done;
    }
    if (g->nnodes == g->cnodes) {
        g->cnodes = g->cnodes ? g->cnodes * 2 : 16;
        g->nodes = wf_realloc(g->nodes, g->cnodes * sizeof(*g->nodes));
    }
    pos = g->nnodes++;
    gr_node_t *n = &g->nodes[pos];
    memset(n, 0, sizeof(*n));
    n->key = dup_str(g, k);
    n->h = h;
    snprintf(n->id, sizeof(n->id), "%016" PRIx64, h);
    n->type = type;
    n->ns = dup_str(g, ns);
    n->workload = dup_str(g, workload);
    n->app = dup_str(g, app);
    n->version = dup_str(g, version);
    n->service = dup_str(g, service);
    *slot = pos + 1;
    ix_grow(&g->node_ix, g->nnodes, &g->nodes[0].h, sizeof(gr_node_t));
done:
    wf_buf_free(&key);
    return pos;
}

static size_t edge_get(graph_t *g, size_t src, size_t dst, int proto, bool create)
{
    edge_key_t k = {src, dst, proto};
    uint64_t hk[2] = {g->nodes[src].h, g->nodes[dst].h * 31 + (uint64_t)proto};
    uint64_t h = wf_hash64(hk, sizeof(hk), 0);
    if (g->edge_ix.cap == 0) {
        if (!create) {
            return SIZE_MAX;
        }
        ix_grow(&g->edge_ix, 0, NULL, sizeof(gr_edge_t));
    }
    size_t *slot = ix_find(&g->edge_ix, h, edge_eq, g, &k);
    if (*slot != 0) {
        return *slot - 1;
    }
    if (!create) {
        return SIZE_MAX;
    }
    if (g->nedges == g->cedges) {
        g->cedges = g->cedges ? g->cedges * 2 : 16;
        g->edges = wf_realloc(g->edges, g->cedges * sizeof(*g->edges));
    }
    size_t pos = g->nedges++;
    gr_edge_t *e = &g->edges[pos];
    memset(e, 0, sizeof(*e));
    e->src = src;
    e->dst = dst;
    e->proto = proto;
    e->h = h;
    snprintf(e->id, sizeof(e->id), "%016" PRIx64, h);
    *slot = pos + 1;
    ix_grow(&g->edge_ix, g->nedges, &g->edges[0].h, sizeof(gr_edge_t));
    return pos;
}

static void graph_free(graph_t *g)
{
    for (size_t i = 0; i < g->nedges; i++) {
        wf_free(g->edges[i].resp);
    }
    wf_free(g->edges);
    wf_free(g->nodes);
    ix_free(&g->node_ix);
    ix_free(&g->edge_ix);
    wf_arena_free(&g->arena);
}

/* ---- mapping series to nodes --------------------------------------------------------------- */

/* A label of a result series; empty when absent. */
static wf_str_t label(const pql_series_t *s, const char *name)
{
    for (size_t i = 0; i < s->nlabels; i++) {
        if (wf_str_eq_c(s->labels[i].name, name)) {
            return s->labels[i].value;
        }
    }
    return (wf_str_t){"", 0};
}

/* Source (dst false) or destination node of a series; SIZE_MAX when absent and !create. */
static size_t series_node(graph_t *g, const pql_series_t *s, bool dst, bool create)
{
    const wf_str_t none = {"", 0};
    wf_str_t ns = label(s, dst ? "destination_workload_namespace" : "source_workload_namespace");
    wf_str_t wl = label(s, dst ? "destination_workload" : "source_workload");
    wf_str_t app = label(s, dst ? "destination_canonical_service" : "source_canonical_service");
    wf_str_t ver = label(s, dst ? "destination_canonical_revision" : "source_canonical_revision");
    /* Graph types that do not group by the workload tell an unknown peer by its canonical
     * service, which is "unknown" exactly when the workload is. */
    bool unknown = wf_str_eq_c(g->gt == GT_WORKLOAD ? wl : app, "unknown");
    if (dst) {
        if (unknown || g->gt == GT_SERVICE) {
            return node_get(g, "service", label(s, "destination_service_namespace"), none, none,
                            none, label(s, "destination_service_name"), create);
        }
    } else if (unknown) {
        return node_get(g, "unknown", wf_str("unknown"), none, none, none, none, create);
    }
    switch (g->gt) {
    case GT_WORKLOAD:
        return node_get(g, "workload", ns, wl, app, ver, none, create);
    case GT_APP:
        return node_get(g, "app", ns, none, app, none, none, create);
    case GT_VERSIONED_APP: {
        size_t n = node_get(g, "app", ns, none, app, ver, none, create);
        if (n != SIZE_MAX && g->nodes[n].parent == 0) {
            size_t box = node_get(g, "box", ns, none, app, none, none, true);
            g->nodes[n].parent = box + 1;
        }
        return n;
    }
    case GT_SERVICE:
        return node_get(g, "service", ns, none, none, none, app, create);
    }
    return SIZE_MAX;
}

static void add_response(gr_edge_t *e, wf_str_t code, wf_str_t flags, double v, graph_t *g)
{
    for (size_t i = 0; i < e->nresp; i++) {
        if (wf_str_eq(e->resp[i].code, code) && wf_str_eq(e->resp[i].flags, flags)) {
            e->resp[i].rate += v;
            return;
        }
    }
    if (e->nresp == e->cresp) {
        e->cresp = e->cresp ? e->cresp * 2 : 4;
        e->resp = wf_realloc(e->resp, e->cresp * sizeof(*e->resp));
    }
    e->resp[e->nresp++] = (gr_resp_t){dup_str(g, code), dup_str(g, flags), v};
}

static void add_series(graph_t *g, query_kind_t kind, const pql_series_t *s)
{
    double v = s->n > 0 ? s->v[0] : NAN;
    if (!(v > 0) || isinf(v)) {
        return; /* idle, NaN (no requests in a quantile's window) or nonsense */
    }
    bool create = kind == Q_HTTP || kind == Q_TCP;
    size_t src = series_node(g, s, false, create);
    size_t dst = src == SIZE_MAX ? SIZE_MAX : series_node(g, s, true, create);
    if (dst == SIZE_MAX) {
        return;
    }
    size_t ei = edge_get(g, src, dst, kind == Q_TCP || kind == Q_TCP_MTLS ? 1 : 0, create);
    if (ei == SIZE_MAX) {
        return;
    }
    gr_edge_t *e = &g->edges[ei];
    gr_node_t *ns = &g->nodes[src], *nd = &g->nodes[dst];
    wf_str_t code, flags;
    switch (kind) {
    case Q_HTTP:
        code = label(s, "response_code");
        flags = label(s, "response_flags");
        e->http += v;
        ns->http_out += v;
        nd->http_in += v;
        nd->has_in = true;
        if (code.len == 3 && code.p[0] == '4') {
            nd->in4xx += v;
            e->err += v;
        } else if (code.len == 3 && code.p[0] == '5') {
            nd->in5xx += v;
            e->err += v;
        } else if (wf_str_eq_c(code, "0")) {
            e->err += v; /* no response at all */
        }
        add_response(e, code.len ? code : wf_str("-"), flags.len ? flags : wf_str("-"), v, g);
        break;
    case Q_TCP:
        e->tcp += v;
        ns->tcp_out += v;
        nd->tcp_in += v;
        nd->has_in = true;
        break;
    case Q_MTLS:
    case Q_TCP_MTLS:
        e->sec_total += v;
        if (wf_str_eq_c(label(s, "connection_security_policy"), "mutual_tls")) {
            e->mtls += v;
        }
        break;
    case Q_RT_QUANTILE:
        /* Several series map to one edge only when a workload serves several services; the
         * slowest is reported rather than an average quantiles do not have. */
        e->rt = e->has_rt && e->rt > v ? e->rt : v;
        e->has_rt = true;
        break;
    case Q_RT_SUM:
        e->rt_sum += v;
        break;
    case Q_RT_COUNT:
        e->rt_count += v;
        break;
    case Q_BYTES:
        e->bytes += v;
        break;
    }
}

/* ---- queries ------------------------------------------------------------------------------- */

/* The traffic of metric that concerns the namespaces: what their sidecars sent, what sidecars
 * sent to them, and what reached them from outside the mesh. `or` drops the series the first
 * two selections share. */
static void selection(wf_buf_t *q, const char *metric, const char *nsre, long long dur_s)
{
    wf_buf_printf(q,
                  "rate(%s{reporter=\"source\",source_workload_namespace=~\"%s\"}[%llds]) or "
                  "rate(%s{reporter=\"source\",destination_service_namespace=~\"%s\"}[%llds]) or "
                  "rate(%s{reporter=\"destination\",source_workload=\"unknown\","
                  "destination_service_namespace=~\"%s\"}[%llds])",
                  metric, nsre, dur_s, metric, nsre, dur_s, metric, nsre, dur_s);
}

static void build_query(wf_buf_t *q, query_kind_t kind, graph_type_t gt, rt_kind_t rtk,
                        const char *nsre, long long dur_s)
{
    const char *g = group_labels(gt);
    switch (kind) {
    case Q_HTTP:
        wf_buf_printf(q, "sum by (%s,response_code,response_flags) (", g);
        selection(q, "istio_requests_total", nsre, dur_s);
        break;
    case Q_TCP:
        wf_buf_printf(q, "sum by (%s) (", g);
        selection(q, "istio_tcp_sent_bytes_total", nsre, dur_s);
        break;
    case Q_MTLS:
    case Q_TCP_MTLS: {
        const char *m = kind == Q_MTLS ? "istio_requests_total" : "istio_tcp_sent_bytes_total";
        wf_buf_printf(q,
                      "sum by (%s,connection_security_policy) ("
                      "rate(%s{reporter=\"destination\",destination_service_namespace=~\"%s\"}"
                      "[%llds]) or "
                      "rate(%s{reporter=\"destination\",source_workload_namespace=~\"%s\"}"
                      "[%llds])",
                      g, m, nsre, dur_s, m, nsre, dur_s);
        break;
    }
    case Q_RT_QUANTILE:
        wf_buf_printf(q, "histogram_quantile(%s, sum by (le,%s) (",
                      rtk == RT_Q50   ? "0.5"
                      : rtk == RT_Q99 ? "0.99"
                                      : "0.95",
                      g);
        selection(q, "istio_request_duration_milliseconds_bucket", nsre, dur_s);
        wf_buf_putc(q, ')');
        break;
    case Q_RT_SUM:
    case Q_RT_COUNT:
        wf_buf_printf(q, "sum by (%s) (", g);
        selection(q,
                  kind == Q_RT_SUM ? "istio_request_duration_milliseconds_sum"
                                   : "istio_request_duration_milliseconds_count",
                  nsre, dur_s);
        break;
    case Q_BYTES:
        wf_buf_printf(q, "sum by (%s) (", g);
        selection(q, "istio_response_bytes_sum", nsre, dur_s);
        break;
    }
    wf_buf_putc(q, ')');
}

/* Run one query into g; 0, or an error answered on resp. */
static int run_query(pql_engine_t *eng, graph_t *g, query_kind_t kind, rt_kind_t rtk,
                     const char *nsre, long long dur_s, int64_t t_ms, col_resp_t *resp)
{
    wf_buf_t q = WF_BUF_INIT;
    pql_tree_t *tree = NULL;
    pql_result_t *res = NULL;
    pql_parse_error_t perr;
    pql_error_t err;
    int rc = 0;
    build_query(&q, kind, g->gt, rtk, nsre, dur_s);
    if (pql_parse(wf_buf_cstr(&q), q.len, &tree, &perr) != 0) {
        /* The queries are built from validated parts; a parse failure is a bug. */
        col_resp_api_error(resp, 500, "internal", "graph query does not parse");
        rc = WF_E_INVAL;
        goto out;
    }
    memset(&err, 0, sizeof(err));
    if (pql_eval_instant(eng, tree, t_ms, 0, &res, &err) != 0) {
        switch (err.type) {
        case PQL_ERR_TIMEOUT:
            col_resp_api_error(resp, 503, "timeout", "%s", err.msg);
            break;
        case PQL_ERR_CANCELED:
            col_resp_api_error(resp, 503, "canceled", "%s", err.msg);
            break;
        case PQL_ERR_EXECUTION:
            col_resp_api_error(resp, 422, "execution", "%s", err.msg);
            break;
        default:
            col_resp_api_error(resp, 500, "internal", "%s", err.msg);
            break;
        }
        rc = WF_E_INVAL;
        goto out;
    }
    if (res->type == PQL_TYPE_VECTOR) {
        for (size_t i = 0; i < res->nseries; i++) {
            add_series(g, kind, &res->series[i]);
        }
    }
out:
    pql_result_free(res);
    pql_tree_free(tree);
    wf_buf_free(&q);
    return rc;
}

/* ---- output -------------------------------------------------------------------------------- */

/* As Kiali's rateToString: min_prec decimals, more for rates under 1 so that they do not show
 * as zero (0.001 -> "0.001"). */
static void put_rate(wf_buf_t *out, double v, int min_prec)
{
    int prec = min_prec;
    if (v > 0 && v < 1) {
        int need = (int)ceil(fabs(log10(v)));
        if (need > prec) {
            prec = need;
        }
    }
    if (prec > 17) {
        prec = 17;
    }
    wf_buf_printf(out, "\"%.*f\"", prec, v);
}

static void put_field(wf_buf_t *out, const char *name, wf_str_t v)
{
    if (v.len > 0) {
        wf_buf_printf(out, ",\"%s\":", name);
        col_json_str(out, v.p, v.len);
    }
}

static void put_rate_field(wf_buf_t *out, bool *first, const char *name, double v, int prec)
{
    if (v > 0) {
        wf_buf_printf(out, "%s\"%s\":", *first ? "" : ",", name);
        put_rate(out, v, prec);
        *first = false;
    }
}

static const char *health(const gr_node_t *n)
{
    if (!(n->http_in > 0)) {
        return "NA";
    }
    double e5 = n->in5xx / n->http_in * 100, e4 = n->in4xx / n->http_in * 100;
    if (e5 >= 10 || e4 >= 20) {
        return "Failure";
    }
    if (e5 > 0 || e4 >= 10) {
        return "Degraded";
    }
    return "Healthy";
}

/* The node's badges under the control plane's view mv (none when NULL). */
static void put_badges(wf_buf_t *out, const gr_node_t *n, const col_mesh_view_t *mv)
{
    if (mv == NULL) {
        return;
    }
    col_mesh_node_t mn = {.type = n->type,
                          .ns = n->ns,
                          .workload = n->workload,
                          .app = n->app,
                          .version = n->version,
                          .service = n->service};
    col_mesh_badges_t b;
    col_mesh_badges(mv, &mn, &b);
    col_mesh_badges_json(&b, out);
}

static void put_node(wf_buf_t *out, const graph_t *g, const gr_node_t *n, const col_mesh_view_t *mv)
{
    bool box = strcmp(n->type, "box") == 0;
    wf_buf_printf(out, "{\"data\":{\"id\":\"%s\",\"nodeType\":\"%s\"", n->id, n->type);
    if (n->parent != 0) {
        wf_buf_printf(out, ",\"parent\":\"%s\"", g->nodes[n->parent - 1].id);
    }
    put_field(out, "namespace", n->ns);
    put_field(out, "workload", n->workload);
    put_field(out, "app", n->app);
    put_field(out, "version", n->version);
    put_field(out, "service", n->service);
    put_badges(out, n, mv);
    if (box) {
        wf_buf_puts(out, ",\"isBox\":\"app\"}}");
        return;
    }
    if (!n->has_in) {
        wf_buf_puts(out, ",\"isRoot\":true");
    }
    wf_buf_puts(out, ",\"traffic\":[");
    bool any = false;
    if (n->http_in > 0 || n->http_out > 0) {
        bool first = true;
        wf_buf_puts(out, "{\"protocol\":\"http\",\"rates\":{");
        put_rate_field(out, &first, "httpIn", n->http_in, 2);
        put_rate_field(out, &first, "httpIn4xx", n->in4xx, 2);
        put_rate_field(out, &first, "httpIn5xx", n->in5xx, 2);
        put_rate_field(out, &first, "httpOut", n->http_out, 2);
        wf_buf_puts(out, "}}");
        any = true;
    }
    if (n->tcp_in > 0 || n->tcp_out > 0) {
        bool first = true;
        wf_buf_printf(out, "%s{\"protocol\":\"tcp\",\"rates\":{", any ? "," : "");
        put_rate_field(out, &first, "tcpIn", n->tcp_in, 2);
        put_rate_field(out, &first, "tcpOut", n->tcp_out, 2);
        wf_buf_puts(out, "}}");
    }
    wf_buf_printf(out, "],\"health\":\"%s\"}}", health(n));
}

static int resp_cmp(const void *a, const void *b)
{
    const gr_resp_t *x = a, *y = b;
    int c = wf_str_cmp(x->code, y->code);
    return c != 0 ? c : wf_str_cmp(x->flags, y->flags);
}

static void put_edge(wf_buf_t *out, const graph_t *g, gr_edge_t *e, rt_kind_t rtk)
{
    wf_buf_printf(out, "{\"data\":{\"id\":\"%s\",\"source\":\"%s\",\"target\":\"%s\"", e->id,
                  g->nodes[e->src].id, g->nodes[e->dst].id);
    if (e->proto == 1) {
        wf_buf_puts(out, ",\"traffic\":{\"protocol\":\"tcp\",\"rates\":{\"tcp\":");
        put_rate(out, e->tcp, 2);
        wf_buf_puts(out, "}}");
        if (e->sec_total > 0) {
            wf_buf_puts(out, ",\"isMTLS\":");
            put_rate(out, e->mtls / e->sec_total * 100, 1);
        }
        wf_buf_puts(out, "}}");
        return;
    }
    /* HTTP edges exist only because requests were counted on them. */
    WF_ASSERT(e->http > 0);
    double out_total = g->nodes[e->src].http_out;
    wf_buf_puts(out, ",\"traffic\":{\"protocol\":\"http\",\"rates\":{\"http\":");
    put_rate(out, e->http, 2);
    wf_buf_puts(out, ",\"httpPercentReq\":");
    put_rate(out, out_total > 0 ? e->http / out_total * 100 : 0, 1);
    if (e->err > 0) {
        wf_buf_puts(out, ",\"httpPercentErr\":");
        put_rate(out, e->err / e->http * 100, 1);
    }
    wf_buf_puts(out, "},\"responses\":{");
    qsort(e->resp, e->nresp, sizeof(*e->resp), resp_cmp);
    for (size_t i = 0; i < e->nresp; i++) {
        bool same_code = i > 0 && wf_str_eq(e->resp[i - 1].code, e->resp[i].code);
        if (!same_code) {
            if (i > 0) {
                wf_buf_puts(out, "}},");
            }
            col_json_str(out, e->resp[i].code.p, e->resp[i].code.len);
            wf_buf_puts(out, ":{\"flags\":{");
        } else {
            wf_buf_putc(out, ',');
        }
        col_json_str(out, e->resp[i].flags.p, e->resp[i].flags.len);
        wf_buf_putc(out, ':');
        put_rate(out, e->resp[i].rate / e->http * 100, 1);
    }
    wf_buf_puts(out, e->nresp > 0 ? "}}}}" : "}}");
    double rt = NAN;
    if (rtk == RT_AVG) {
        rt = e->rt_count > 0 ? e->rt_sum / e->rt_count : NAN;
    } else if (e->has_rt) {
        rt = e->rt;
    }
    if (isfinite(rt)) {
        wf_buf_puts(out, ",\"responseTime\":\"");
        col_fmt_float(out, round(rt * 1000) / 1000);
        wf_buf_putc(out, '"');
    }
    if (e->sec_total > 0) {
        wf_buf_puts(out, ",\"isMTLS\":");
        put_rate(out, e->mtls / e->sec_total * 100, 1);
    }
    if (e->bytes > 0) {
        wf_buf_puts(out, ",\"throughput\":\"");
        col_fmt_float(out, round(e->bytes * 1000) / 1000);
        wf_buf_putc(out, '"');
    }
    wf_buf_puts(out, "}}");
}

typedef struct {
    const char *id;
    size_t pos;
} order_t;

static int order_cmp(const void *a, const void *b)
{
    return strcmp(((const order_t *)a)->id, ((const order_t *)b)->id);
}

/* ---- the handler --------------------------------------------------------------------------- */

/* The graph from eng, with badges when mesh is not NULL. */
static void graph_answer(pql_engine_t *eng, col_mesh_t *mesh, col_req_t *req, col_resp_t *resp)
{
    graph_t g;
    col_mesh_view_t *mv = NULL;
    char mesh_err[512] = "";
    memset(&g, 0, sizeof(g));
    wf_arena_init(&g.arena, 16384, 0);
    wf_buf_t nsre = WF_BUF_INIT;
    order_t *order = NULL;
    const char *msg = NULL;
    int64_t dur_ms = (int64_t)DEFAULT_DURATION_S * 1000, qt_s = 0;
    rt_kind_t rtk;

    if (parse_namespaces(col_req_param(req, "namespaces"), &nsre, &msg) != 0) {
        col_resp_api_error(resp, 400, "bad_data", "invalid parameter \"namespaces\": %s", msg);
        goto out;
    }
    if (parse_graph_type(col_req_param(req, "graphType"), &g.gt) != 0) {
        col_resp_api_error(resp, 400, "bad_data",
                           "invalid parameter \"graphType\": not one of workload, app, "
                           "versionedApp, service");
        goto out;
    }
    const char *d = col_req_param(req, "duration");
    if (d != NULL &&
        (col_parse_duration(d, &dur_ms) != 0 || dur_ms < 1000 || dur_ms > MAX_DURATION_S * 1000)) {
        col_resp_api_error(resp, 400, "bad_data",
                           "invalid parameter \"duration\": not a duration from 1s to 365d");
        goto out;
    }
    if (parse_query_time(col_req_param(req, "queryTime"), &qt_s) != 0) {
        col_resp_api_error(resp, 400, "bad_data",
                           "invalid parameter \"queryTime\": not Unix seconds");
        goto out;
    }
    if (parse_response_time(col_req_param(req, "responseTime"), &rtk) != 0) {
        col_resp_api_error(resp, 400, "bad_data",
                           "invalid parameter \"responseTime\": not one of avg, 50, 95, 99");
        goto out;
    }

    long long dur_s = (long long)(dur_ms / 1000);
    const char *re = wf_buf_cstr(&nsre);
    static const query_kind_t kinds[] = {Q_HTTP, Q_TCP, Q_MTLS, Q_TCP_MTLS, Q_RT_QUANTILE, Q_BYTES};
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        query_kind_t k = kinds[i];
        if (k == Q_RT_QUANTILE && rtk == RT_AVG) {
            if (run_query(eng, &g, Q_RT_SUM, rtk, re, dur_s, qt_s * 1000, resp) != 0 ||
                run_query(eng, &g, Q_RT_COUNT, rtk, re, dur_s, qt_s * 1000, resp) != 0) {
                goto out;
            }
            continue;
        }
        if (run_query(eng, &g, k, rtk, re, dur_s, qt_s * 1000, resp) != 0) {
            goto out;
        }
    }

    if (mesh != NULL && col_mesh_get(mesh, &mv, mesh_err, sizeof(mesh_err)) != 0) {
        mv = NULL;
    }
    wf_buf_t *o = &resp->body;
    wf_buf_printf(o, "{\"timestamp\":%lld,\"duration\":%lld,\"graphType\":\"%s\",", (long long)qt_s,
                  dur_s, graph_type_names[g.gt]);
    if (mesh != NULL && mv == NULL) {
        wf_buf_puts(o, "\"badgesError\":");
        col_json_str(o, mesh_err, strlen(mesh_err));
        wf_buf_putc(o, ',');
    }
    wf_buf_puts(o, "\"elements\":");
    size_t nmax = g.nnodes > g.nedges ? g.nnodes : g.nedges;
    order = wf_malloc((nmax ? nmax : 1) * sizeof(*order));
    for (size_t i = 0; i < g.nnodes; i++) {
        order[i] = (order_t){g.nodes[i].id, i};
    }
    qsort(order, g.nnodes, sizeof(*order), order_cmp);
    wf_buf_puts(o, "{\"nodes\":[");
    for (size_t i = 0; i < g.nnodes; i++) {
        if (i > 0) {
            wf_buf_putc(o, ',');
        }
        put_node(o, &g, &g.nodes[order[i].pos], mv);
    }
    for (size_t i = 0; i < g.nedges; i++) {
        order[i] = (order_t){g.edges[i].id, i};
    }
    qsort(order, g.nedges, sizeof(*order), order_cmp);
    wf_buf_puts(o, "],\"edges\":[");
    for (size_t i = 0; i < g.nedges; i++) {
        if (i > 0) {
            wf_buf_putc(o, ',');
        }
        put_edge(o, &g, &g.edges[order[i].pos], rtk);
    }
    wf_buf_puts(o, "]}}");
    resp->status = 200;
    resp->content_type = "application/json";
out:
    col_mesh_view_release(mv);
    wf_free(order);
    wf_buf_free(&nsre);
    graph_free(&g);
}

void col_graph_handler(void *arg, col_req_t *req, col_resp_t *resp)
{
    graph_answer(arg, NULL, req, resp);
}

void col_graph_badged_handler(void *arg, col_req_t *req, col_resp_t *resp)
{
    const col_graph_ctx_t *c = arg;
    graph_answer(c->engine, c->mesh, req, resp);
}
