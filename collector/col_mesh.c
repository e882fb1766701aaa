/*
 * col_mesh.c - the control-plane client behind /api/mesh/... and the graph badges.
 *
 * One refresh reads every resource list of the admin API (all namespaces), /v1/analyze,
 * /v1/workloads and /v1/proxy-status, one request after the other on one keep-alive connection,
 * and turns them into an immutable view. Requests are answered from that view; nothing here
 * writes to the control plane. The view keeps the control plane's JSON as jansson parsed it and
 * is only ever read after it is built, so threads share it without locks (jansson's reference
 * counts are not touched: a view has its own).
 *
 * Badges follow Kiali's graph appenders (istio_details.go, sidecars_check.go): VirtualService
 * badges on service-level nodes (service nodes, app nodes, app boxes), circuit breakers on
 * those and, subset by subset, on version-level nodes (workloads, versioned apps), a missing
 * sidecar on workload-level nodes whose registered workloads are out of the mesh. Kiali reads
 * the resources of the node's namespace; weft matches hosts by their fully qualified name in
 * every namespace, as its snapshot compiler routes, and leaves out VirtualServices bound to
 * gateways only, which do not route mesh traffic.
 */
#include "col_mesh.h"

#include "wf_alloc.h"
#include "wf_clock.h"
#include "wf_err.h"
#include "wf_log.h"

#include <curl/curl.h>
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_CACHE_MS 5000
#define DEFAULT_TIMEOUT_MS 3000
/* A failed read is kept this long at most: long enough to spare a control plane that is down
 * from every UI request, short enough that its return shows at the next refresh. */
#define ERROR_CACHE_MS 2000
/* The largest answer read from the control plane (its own list limit is far below). */
#define MAX_ANSWER_BYTES ((size_t)256 << 20)
#define FQDN_MAX 512
/* The longest key written as an implicit (simple) key: YAML allows 1024 characters. */
#define YAML_SIMPLE_KEY_MAX 1000

#define NOT_CONNECTED                                                                              \
    "the collector is not connected to a control plane: start it with --control URL"

/* One host of a VirtualService (each of spec.hosts) or a DestinationRule (spec.host). */
typedef struct {
    char *pattern;    /* written out by host_fqdn (owned by the view) */
    const char *host; /* as the resource wrote it (borrowed from the view's JSON) */
    uint32_t res;     /* index in resources */
    uint32_t pos;     /* index among the resource's hosts */
} host_ref_t;

/* What the badges need of one resource, worked out once per view. */
typedef struct {
    bool vs;                                  /* a VirtualService routing mesh traffic */
    bool dr;                                  /* a DestinationRule */
    bool fault, timeout, mirroring, shifting; /* VirtualService routes */
    bool cb;                                  /* DestinationRule: top-level or port-level */
} res_info_t;

typedef struct {
    const json_t *m;
    size_t i; /* position in /v1/analyze's order, kept within one resource */
} msg_ref_t;

/*
 * Indexes make every lookup a binary search, so a request costs O(n log n) in the size of the
 * mesh whatever it asks (thousands of services, each matched against thousands of resources,
 * would otherwise be quadratic).
 */
struct col_mesh_view {
    atomic_int refs;
    json_t *resources; /* every stored object, sorted by namespace, kind, name */
    json_t *messages;  /* /v1/analyze messages */
    json_t *workloads; /* /v1/workloads items */
    json_t *proxies;   /* /v1/proxy-status proxies */
    res_info_t *info;  /* per resource */
    host_ref_t *hosts; /* exact hosts sorted by pattern (case-insensitive), then wildcards */
    size_t nhosts, nexact;
    const json_t **wl_by_id;  /* workloads by id */
    const json_t **wl_by_svc; /* workloads by namespace, service, id */
    size_t nwl;
    const json_t **px_by_id; /* proxies by id */
    size_t npx;
    msg_ref_t *msgs; /* messages by namespace, kind, name, then their order */
    size_t nmsg;
};

struct col_mesh {
    char *base;
    CURL *curl; /* used by the refreshing thread only (one at a time: `fetching`) */
    struct curl_slist *headers;
    int64_t cache_ms;
    int64_t timeout_ms; /* a whole refresh, all its requests together */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool fetching;
    uint64_t generation; /* +1 at every refresh, so waiters know theirs is done */
    bool have;           /* a refresh happened: view or err is its result */
    int64_t until_ms;    /* the result is reused until then (monotonic clock) */
    col_mesh_view_t *view;
    char err[512];
};

/* The kinds read, each a list of every namespace. */
static const char *const list_paths[] = {
    "/apis/networking.istio.io/v1/virtualservices",
    "/apis/networking.istio.io/v1/destinationrules",
    "/apis/networking.istio.io/v1/gateways",
    "/apis/networking.istio.io/v1/serviceentries",
    "/apis/networking.istio.io/v1/sidecars",
    "/apis/security.istio.io/v1/peerauthentications",
    "/apis/security.istio.io/v1/authorizationpolicies",
};
#define NLISTS (sizeof(list_paths) / sizeof(list_paths[0]))

/* ---- small JSON helpers -------------------------------------------------------------------- */

/* The string member key of o, or "" (absent, not a string, o not an object). */
static const char *jstr(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : "";
}

static const char *meta_str(const json_t *res, const char *key)
{
    return jstr(json_object_get(res, "metadata"), key);
}

static bool slice_eq(wf_str_t a, const char *b)
{
    return wf_str_eq_c(a, b);
}

/* ---- hosts --------------------------------------------------------------------------------- */

/* A resource's host written out as Kiali and Istio read it: a short name is in the resource's
 * namespace, `name.ns` and `name.ns.svc` are cluster services, anything else (an FQDN, a
 * wildcard) stays as written. */
static void host_fqdn(const char *host, const char *res_ns, char *buf, size_t n)
{
    size_t len = strlen(host);
    const char *dot = strchr(host, '.');
    if (strchr(host, '*') != NULL) {
        snprintf(buf, n, "%s", host);
    } else if (dot == NULL) {
        snprintf(buf, n, "%s.%s.svc.cluster.local", host, res_ns);
    } else if (strchr(dot + 1, '.') == NULL) {
        snprintf(buf, n, "%s.svc.cluster.local", host);
    } else if (len > 4 && strcmp(host + len - 4, ".svc") == 0) {
        snprintf(buf, n, "%s.cluster.local", host);
    } else {
        snprintf(buf, n, "%s", host);
    }
}

/* Whether the wildcard pattern ("*" or "*.suffix") covers the service's FQDN. */
static bool wildcard_covers(const char *pattern, const char *fqdn)
{
    if (strcmp(pattern, "*") == 0) {
        return true;
    }
    if (pattern[0] == '*' && pattern[1] == '.') {
        size_t ps = strlen(pattern + 1), fs = strlen(fqdn);
        return fs > ps && strcasecmp(fqdn + fs - ps, pattern + 1) == 0;
    }
    return false;
}

/* ---- registry ------------------------------------------------------------------------------ */

static bool workload_in_mesh(const json_t *w)
{
    const char *mode = jstr(json_object_get(w, "labels"), "security.istio.io/tlsMode");
    return strcmp(mode, "disabled") != 0;
}

/* The workload name the proxies report: <service>-<version>, or <service> without a version. */
static void workload_name(const json_t *w, char *buf, size_t n)
{
    const char *ver = jstr(w, "version");
    snprintf(buf, n, ver[0] ? "%s-%s" : "%s", jstr(w, "service"), ver);
}

/* ---- views --------------------------------------------------------------------------------- */

static int res_cmp(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    int c = strcmp(meta_str(x, "namespace"), meta_str(y, "namespace"));
    if (c == 0) {
        c = strcmp(jstr(x, "kind"), jstr(y, "kind"));
    }
    return c != 0 ? c : strcmp(meta_str(x, "name"), meta_str(y, "name"));
}

static int id_cmp(const void *a, const void *b)
{
    return strcmp(jstr(*(json_t *const *)a, "id"), jstr(*(json_t *const *)b, "id"));
}

static int svc_cmp(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    int c = strcmp(jstr(x, "namespace"), jstr(y, "namespace"));
    if (c == 0) {
        c = strcmp(jstr(x, "service"), jstr(y, "service"));
    }
    return c != 0 ? c : strcmp(jstr(x, "id"), jstr(y, "id"));
}

static int msg_key_cmp(const json_t *m, const char *ns, const char *kind, const char *name)
{
    int c = strcmp(jstr(m, "namespace"), ns);
    if (c == 0) {
        c = strcmp(jstr(m, "kind"), kind);
    }
    return c != 0 ? c : strcmp(jstr(m, "name"), name);
}

static int msg_cmp(const void *a, const void *b)
{
    const msg_ref_t *x = a, *y = b;
    int c = msg_key_cmp(x->m, jstr(y->m, "namespace"), jstr(y->m, "kind"), jstr(y->m, "name"));
    return c != 0 ? c : (x->i > y->i) - (x->i < y->i);
}

static int host_cmp(const void *a, const void *b)
{
    const host_ref_t *x = a, *y = b;
    bool wx = strchr(x->pattern, '*') != NULL, wy = strchr(y->pattern, '*') != NULL;
    if (wx != wy) {
        return wx ? 1 : -1;
    }
    return wx ? 0 : strcasecmp(x->pattern, y->pattern);
}

/* Parse text and take its array member key (objects only kept); NULL text is an empty array. */
static int load_array(const char *text, const char *key, const char *what, json_t **out, char *err,
                      size_t errlen)
{
    *out = json_array();
    if (text == NULL) {
        return 0;
    }
    json_error_t je;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    json_t *arr = json_object_get(root, key);
    if (!json_is_array(arr)) {
        snprintf(err, errlen, "%s: %s", what,
                 root == NULL ? je.text : "not an object with an array member");
        json_decref(root);
        return WF_E_INVAL;
    }
    size_t i;
    json_t *item;
    json_array_foreach(arr, i, item)
    {
        if (json_is_object(item)) {
            json_array_append(*out, item);
        }
    }
    json_decref(root);
    return 0;
}

static bool policy_has_cb(const json_t *tp)
{
    if (!json_is_object(tp)) {
        return false;
    }
    if (json_object_get(tp, "connectionPool") != NULL ||
        json_object_get(tp, "outlierDetection") != NULL) {
        return true;
    }
    size_t i;
    json_t *pl;
    json_array_foreach(json_object_get(tp, "portLevelSettings"), i, pl)
    {
        if (json_object_get(pl, "connectionPool") != NULL ||
            json_object_get(pl, "outlierDetection") != NULL) {
            return true;
        }
    }
    return false;
}

/* A route list (of an http, tcp or tls route) with more than one destination that gets
 * traffic: weight absent (Istio shares it out) or above zero. */
static bool route_shifts(const json_t *route)
{
    size_t i, weighted = 0;
    json_t *d;
    json_array_foreach(route, i, d)
    {
        json_t *w = json_object_get(d, "weight");
        if (w == NULL || json_number_value(w) > 0) {
            weighted++;
        }
    }
    return weighted > 1;
}

/* A VirtualService that routes mesh traffic: no gateways, or "mesh" among them. */
static bool vs_for_mesh(const json_t *spec)
{
    json_t *gws = json_object_get(spec, "gateways");
    if (json_array_size(gws) == 0) {
        return true;
    }
    size_t i;
    json_t *g;
    json_array_foreach(gws, i, g)
    {
        if (json_is_string(g) && strcmp(json_string_value(g), "mesh") == 0) {
            return true;
        }
    }
    return false;
}

static void add_host(col_mesh_view_t *v, size_t *cap, const char *host, const char *ns, size_t res,
                     size_t pos)
{
    char pat[FQDN_MAX];
    host_fqdn(host, ns, pat, sizeof(pat));
    if (v->nhosts == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        v->hosts = wf_realloc(v->hosts, *cap * sizeof(*v->hosts));
    }
    size_t n = strlen(pat);
    char *copy = wf_malloc(n + 1);
    memcpy(copy, pat, n + 1);
    v->hosts[v->nhosts++] =
        (host_ref_t){.pattern = copy, .host = host, .res = (uint32_t)res, .pos = (uint32_t)pos};
}

/* What one resource contributes to the badges, and its hosts. */
static void index_resource(col_mesh_view_t *v, size_t r, size_t *cap)
{
    const json_t *res = json_array_get(v->resources, r);
    const json_t *spec = json_object_get(res, "spec");
    const char *kind = jstr(res, "kind"), *ns = meta_str(res, "namespace");
    res_info_t *info = &v->info[r];
    if (strcmp(kind, "DestinationRule") == 0) {
        const char *host = json_string_value(json_object_get(spec, "host"));
        if (host != NULL) {
            info->dr = true;
            info->cb = policy_has_cb(json_object_get(spec, "trafficPolicy"));
            add_host(v, cap, host, ns, r, 0);
        }
        return;
    }
    if (strcmp(kind, "VirtualService") != 0 || !vs_for_mesh(spec)) {
        return;
    }
    info->vs = true;
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(spec, "http"), i, x)
    {
        info->fault |= json_object_get(x, "fault") != NULL;
        info->timeout |= json_object_get(x, "timeout") != NULL;
        info->mirroring |=
            json_object_get(x, "mirror") != NULL || json_array_size(json_object_get(x, "mirrors"));
        info->shifting |= route_shifts(json_object_get(x, "route"));
    }
    static const char *const other[] = {"tcp", "tls"};
    for (size_t k = 0; k < 2; k++) {
        json_array_foreach(json_object_get(spec, other[k]), i, x)
        {
            info->shifting |= route_shifts(json_object_get(x, "route"));
        }
    }
    json_array_foreach(json_object_get(spec, "hosts"), i, x)
    {
        if (json_is_string(x)) {
            add_host(v, cap, json_string_value(x), ns, r, i);
        }
    }
}

/* The objects of arr in a new array sorted by cmp (*n its length). */
static const json_t **sorted_refs(const json_t *arr, int (*cmp)(const void *, const void *),
                                  size_t *n)
{
    *n = json_array_size(arr);
    const json_t **out = wf_malloc((*n ? *n : 1) * sizeof(*out));
    for (size_t i = 0; i < *n; i++) {
        out[i] = json_array_get(arr, i);
    }
    qsort(out, *n, sizeof(*out), cmp);
    return out;
}

int col_mesh_view_new(const col_mesh_src_t *src, col_mesh_view_t **out, char *err, size_t errlen)
{
    col_mesh_view_t *v = wf_calloc(1, sizeof(*v));
    atomic_init(&v->refs, 1);
    int rc = 0;
    v->resources = json_array();
    for (size_t i = 0; i < src->nlists; i++) {
        json_t *items = NULL;
        rc = load_array(src->lists[i], "items", "resource list", &items, err, errlen);
        if (rc != 0) {
            json_decref(items);
            goto fail;
        }
        json_array_extend(v->resources, items);
        json_decref(items);
    }
    if ((rc = load_array(src->analyze, "messages", "/v1/analyze", &v->messages, err, errlen)) !=
            0 ||
        (rc = load_array(src->workloads, "items", "/v1/workloads", &v->workloads, err, errlen)) !=
            0 ||
        (rc = load_array(src->proxies, "proxies", "/v1/proxy-status", &v->proxies, err, errlen)) !=
            0) {
        goto fail;
    }
    size_t n;
    const json_t **sorted = sorted_refs(v->resources, res_cmp, &n);
    json_t *ordered = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append(ordered, (json_t *)sorted[i]);
    }
    wf_free(sorted);
    json_decref(v->resources);
    v->resources = ordered;

    v->info = wf_calloc(n ? n : 1, sizeof(*v->info));
    size_t cap = 0;
    for (size_t i = 0; i < n; i++) {
        index_resource(v, i, &cap);
    }
    if (v->nhosts > 0) {
        qsort(v->hosts, v->nhosts, sizeof(*v->hosts), host_cmp);
    }
    while (v->nexact < v->nhosts && strchr(v->hosts[v->nexact].pattern, '*') == NULL) {
        v->nexact++;
    }
    v->wl_by_id = sorted_refs(v->workloads, id_cmp, &v->nwl);
    v->wl_by_svc = sorted_refs(v->workloads, svc_cmp, &v->nwl);
    v->px_by_id = sorted_refs(v->proxies, id_cmp, &v->npx);
    v->nmsg = json_array_size(v->messages);
    v->msgs = wf_malloc((v->nmsg ? v->nmsg : 1) * sizeof(*v->msgs));
    for (size_t i = 0; i < v->nmsg; i++) {
        v->msgs[i] = (msg_ref_t){json_array_get(v->messages, i), i};
    }
    qsort(v->msgs, v->nmsg, sizeof(*v->msgs), msg_cmp);
    *out = v;
    return 0;
fail:
    col_mesh_view_release(v);
    *out = NULL;
    return rc;
}

void col_mesh_view_release(col_mesh_view_t *v)
{
    if (v == NULL || atomic_fetch_sub(&v->refs, 1) != 1) {
        return;
    }
    for (size_t i = 0; i < v->nhosts; i++) {
        wf_free(v->hosts[i].pattern);
    }
    wf_free(v->hosts);
    wf_free(v->info);
    wf_free(v->wl_by_id);
    wf_free(v->wl_by_svc);
    wf_free(v->px_by_id);
    wf_free(v->msgs);
    json_decref(v->resources);
    json_decref(v->messages);
    json_decref(v->workloads);
    json_decref(v->proxies);
    wf_free(v);
}

/* ---- lookups ------------------------------------------------------------------------------- */

/* The element of refs[0..n) (sorted by id) whose id is id, or NULL. */
static const json_t *find_id(const json_t *const *refs, size_t n, const char *id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(jstr(refs[mid], "id"), id);
        if (c == 0) {
            return refs[mid];
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

/* Compare the (namespace, service) of workload w with (ns, svc). */
static int wl_svc_key_cmp(const json_t *w, wf_str_t ns, wf_str_t svc)
{
    int c = wf_str_cmp(wf_str(jstr(w, "namespace")), ns);
    return c != 0 ? c : wf_str_cmp(wf_str(jstr(w, "service")), svc);
}

/* [*lo, *hi) of wl_by_svc: the workloads of service svc in namespace ns. */
static void wl_range(const col_mesh_view_t *v, wf_str_t ns, wf_str_t svc, size_t *lo, size_t *hi)
{
    size_t a = 0, b = v->nwl;
    while (a < b) {
        size_t mid = a + (b - a) / 2;
        if (wl_svc_key_cmp(v->wl_by_svc[mid], ns, svc) < 0) {
            a = mid + 1;
        } else {
            b = mid;
        }
    }
    size_t e = a;
    while (e < v->nwl && wl_svc_key_cmp(v->wl_by_svc[e], ns, svc) == 0) {
        e++;
    }
    *lo = a;
    *hi = e;
}

/* The registry entry of a workload node, or NULL: its id is <workload>.<namespace>. */
static const json_t *node_workload(const col_mesh_view_t *v, const col_mesh_node_t *n)
{
    char id[FQDN_MAX];
    snprintf(id, sizeof(id), "%.*s.%.*s", (int)n->workload.len, n->workload.p, (int)n->ns.len,
             n->ns.p);
    return find_id(v->wl_by_id, v->nwl, id);
}

/* Whether w (of the node's service) is of the node's version, when the node has one. */
static bool version_of(const json_t *w, wf_str_t version)
{
    return version.len == 0 || slice_eq(version, jstr(w, "canonicalRevision")) ||
           slice_eq(version, jstr(w, "version"));
}

static int match_cmp(const void *a, const void *b)
{
    const host_ref_t *x = *(host_ref_t *const *)a, *y = *(host_ref_t *const *)b;
    if (x->res != y->res) {
        return x->res < y->res ? -1 : 1;
    }
    return (x->pos > y->pos) - (x->pos < y->pos);
}

/* Every host that covers fqdn, in resource order (namespace, kind, name), then host order.
 * *out is wf_malloc'ed. */
static size_t hosts_covering(const col_mesh_view_t *v, const char *fqdn, const host_ref_t ***out)
{
    size_t lo = 0, hi = v->nexact;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcasecmp(v->hosts[mid].pattern, fqdn) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    size_t end = lo;
    while (end < v->nexact && strcasecmp(v->hosts[end].pattern, fqdn) == 0) {
        end++;
    }
    size_t n = 0, cap = (end - lo) + (v->nhosts - v->nexact);
    const host_ref_t **m = wf_malloc((cap ? cap : 1) * sizeof(*m));
    for (size_t i = lo; i < end; i++) {
        m[n++] = &v->hosts[i];
    }
    for (size_t i = v->nexact; i < v->nhosts; i++) {
        if (wildcard_covers(v->hosts[i].pattern, fqdn)) {
            m[n++] = &v->hosts[i];
        }
    }
    qsort(m, n, sizeof(*m), match_cmp);
    *out = m;
    return n;
}

/* ---- badges -------------------------------------------------------------------------------- */

/* Whether a subset's labels select node n: version and app from the node, any other label
 * from the node's registered workloads (one of them carrying it is enough). */
static bool subset_selects(const col_mesh_view_t *v, const json_t *labels, const col_mesh_node_t *n,
                           wf_str_t svc)
{
    const char *k;
    json_t *val;
    json_object_foreach((json_t *)labels, k, val)
    {
        const char *want = json_string_value(val);
        if (want == NULL) {
            return false;
        }
        if (strcmp(k, "version") == 0) {
            if (!slice_eq(n->version, want)) {
                return false;
            }
            continue;
        }
        if (strcmp(k, "app") == 0 && slice_eq(svc, want)) {
            continue;
        }
        bool found = false;
        if (strcmp(n->type, "workload") == 0) {
            const json_t *w = node_workload(v, n);
            found = w != NULL && strcmp(jstr(json_object_get(w, "labels"), k), want) == 0;
        } else {
            size_t lo, hi;
            wl_range(v, n->ns, svc, &lo, &hi);
            for (size_t i = lo; i < hi && !found; i++) {
                const json_t *w = v->wl_by_svc[i];
                found = version_of(w, n->version) &&
                        strcmp(jstr(json_object_get(w, "labels"), k), want) == 0;
            }
        }
        if (!found) {
            return false;
        }
    }
    return true;
}

static bool dr_subsets_cb(const col_mesh_view_t *v, const json_t *res, const col_mesh_node_t *n,
                          wf_str_t svc, bool versioned)
{
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(json_object_get(res, "spec"), "subsets"), i, s)
    {
        if (policy_has_cb(json_object_get(s, "trafficPolicy")) &&
            (!versioned || subset_selects(v, json_object_get(s, "labels"), n, svc))) {
            return true;
        }
    }
    return false;
}

static void add_hostname(col_mesh_badges_t *b, const char *host)
{
    for (size_t i = 0; i < b->nhostnames; i++) {
        if (strcmp(b->hostnames[i], host) == 0) {
            return;
        }
    }
    if (b->nhostnames < COL_MESH_MAX_HOSTNAMES) {
        b->hostnames[b->nhostnames++] = host;
    }
}

void col_mesh_badges(const col_mesh_view_t *v, const col_mesh_node_t *n, col_mesh_badges_t *out)
{
    memset(out, 0, sizeof(*out));
    if (v == NULL || n->type == NULL || n->ns.len == 0 || n->ns.len > 253) {
        return;
    }
    bool service = strcmp(n->type, "service") == 0;
    bool box = strcmp(n->type, "box") == 0;
    bool app = strcmp(n->type, "app") == 0;
    bool workload = strcmp(n->type, "workload") == 0;
    if (!service && !box && !app && !workload) {
        return;
    }
    wf_str_t svc = service || n->app.len == 0 ? n->service : n->app;
    if (svc.len == 0 || svc.len > 253) {
        return;
    }
    bool versioned = workload || (app && n->version.len > 0);
    char fqdn[FQDN_MAX];
    snprintf(fqdn, sizeof(fqdn), "%.*s.%.*s.svc.cluster.local", (int)svc.len, svc.p, (int)n->ns.len,
             n->ns.p);
    const host_ref_t **m = NULL;
    size_t nm = hosts_covering(v, fqdn, &m);
    for (size_t i = 0; i < nm; i++) {
        const res_info_t *info = &v->info[m[i]->res];
        if (info->vs && !versioned) {
            out->vs = true;
            add_hostname(out, m[i]->host);
            out->fault |= info->fault;
            out->timeout |= info->timeout;
            out->mirroring |= info->mirroring;
            out->shifting |= info->shifting;
        } else if (info->dr && !out->cb) {
            out->cb = info->cb ||
                      dr_subsets_cb(v, json_array_get(v->resources, m[i]->res), n, svc, versioned);
        }
    }
    wf_free(m);
    if (service) {
        return;
    }
    if (workload) {
        const json_t *w = node_workload(v, n);
        out->missing_sc = w != NULL && !workload_in_mesh(w);
        return;
    }
    size_t lo, hi;
    wl_range(v, n->ns, svc, &lo, &hi);
    for (size_t i = lo; i < hi && !out->missing_sc; i++) {
        const json_t *w = v->wl_by_svc[i];
        out->missing_sc = version_of(w, n->version) && !workload_in_mesh(w);
    }
}

void col_mesh_badges_json(const col_mesh_badges_t *b, wf_buf_t *out)
{
    if (b->vs) {
        wf_buf_puts(out, ",\"hasVS\":{\"hostnames\":[");
        for (size_t i = 0; i < b->nhostnames; i++) {
            if (i > 0) {
                wf_buf_putc(out, ',');
            }
            col_json_str(out, b->hostnames[i], strlen(b->hostnames[i]));
        }
        wf_buf_puts(out, "]}");
    }
    const struct {
        bool on;
        const char *name;
    } flags[] = {{b->cb, "hasCB"},
                 {b->fault, "hasFaultInjection"},
                 {b->shifting, "hasTrafficShifting"},
                 {b->timeout, "hasRequestTimeout"},
                 {b->mirroring, "hasMirroring"},
                 {b->missing_sc, "hasMissingSC"}};
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
        if (flags[i].on) {
            wf_buf_printf(out, ",\"%s\":true", flags[i].name);
        }
    }
}

/* ---- YAML ---------------------------------------------------------------------------------- */

/* Whether a string can be written as a plain YAML scalar that reads back as the same string
 * (YAML 1.1 readers included: no yes/no/on/off, nothing number- or date-like). */
static bool yaml_plain(const char *s)
{
    static const char *const words[] = {"true", "false", "yes", "no",  "on",
                                        "off",  "y",     "n",   "null"};
    size_t n = strlen(s);
    if (n > 1 && n <= 32 && isdigit((unsigned char)s[0]) && strchr("smh", s[n - 1]) != NULL &&
        strspn(s, "0123456789.smhnu") == n) {
        /* a Go duration (3s, 250ms, 1h30m): no YAML number or date ends in s, m or h */
        return true;
    }
    if (n == 0 || n > 256 || !(isalpha((unsigned char)s[0]) || s[0] == '/')) {
        return false;
    }
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        if (strcasecmp(s, words[i]) == 0) {
            return false;
        }
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '/') {
            continue;
        }
        if (c == ':' && i + 1 < n && s[i + 1] != ' ') {
            continue;
        }
        return false;
    }
    return true;
}

/* A double-quoted scalar. YAML allows only printable characters in a document and folds its
 * line breaks, so besides JSON's escapes, DEL, the C1 controls (U+0080..U+009F, NEL among
 * them), the line and paragraph separators U+2028/U+2029 and U+FFFE/U+FFFF are escaped; s is
 * valid UTF-8 (jansson checked it). */
static void yaml_quoted(wf_buf_t *out, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    wf_buf_putc(out, '"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            wf_buf_putc(out, '\\');
            wf_buf_putc(out, c);
        } else if (c == '\n') {
            wf_buf_puts(out, "\\n");
        } else if (c == '\t') {
            wf_buf_puts(out, "\\t");
        } else if (c < 0x20 || c == 0x7f) {
            wf_buf_printf(out, "\\u%04x", c);
        } else if (c == 0xc2 && i + 1 < len && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f) {
            wf_buf_printf(out, "\\u%04x", p[++i]);
        } else if (c == 0xe2 && i + 2 < len && p[i + 1] == 0x80 &&
                   (p[i + 2] == 0xa8 || p[i + 2] == 0xa9)) {
            wf_buf_printf(out, "\\u%04x", 0x2000u | (p[i + 2] - 0x80u));
            i += 2;
        } else if (c == 0xef && i + 2 < len && p[i + 1] == 0xbf && p[i + 2] >= 0xbe) {
            wf_buf_printf(out, "\\u%04X", 0xff00u | (p[i + 2] + 0x40u));
            i += 2;
        } else {
            wf_buf_putc(out, c);
        }
    }
    wf_buf_putc(out, '"');
}

static void yaml_string(wf_buf_t *out, const char *s, size_t len)
{
    if (strlen(s) == len && yaml_plain(s)) {
        wf_buf_append(out, s, len);
    } else {
        yaml_quoted(out, s, len);
    }
}

static void yaml_scalar(wf_buf_t *out, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        yaml_string(out, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        wf_buf_printf(out, "%lld", (long long)json_integer_value(v));
        break;
    case JSON_REAL:
        col_fmt_float(out, json_real_value(v));
        break;
    case JSON_TRUE:
        wf_buf_puts(out, "true");
        break;
    case JSON_FALSE:
        wf_buf_puts(out, "false");
        break;
    case JSON_OBJECT:
        wf_buf_puts(out, "{}");
        break;
    case JSON_ARRAY:
        wf_buf_puts(out, "[]");
        break;
    case JSON_NULL:
        wf_buf_puts(out, "null");
        break;
    }
}

static void yaml_pad(wf_buf_t *out, int indent)
{
    for (int i = 0; i < indent; i++) {
        wf_buf_putc(out, ' ');
    }
}

static void yaml_map(wf_buf_t *out, const json_t *o, int indent, bool first_inline);

static void yaml_seq(wf_buf_t *out, const json_t *a, int indent)
{
    size_t i;
    json_t *item;
    json_array_foreach(a, i, item)
    {
        yaml_pad(out, indent);
        wf_buf_puts(out, "- ");
        if (json_is_object(item) && json_object_size(item) > 0) {
            yaml_map(out, item, indent + 2, true);
        } else if (json_is_array(item) && json_array_size(item) > 0) {
            /* a sequence of sequences (none in Istio's schema): JSON is YAML's flow form */
            char *flow = json_dumps(item, JSON_COMPACT | JSON_ENCODE_ANY);
            wf_buf_puts(out, flow != NULL ? flow : "[]");
            free(flow);
            wf_buf_putc(out, '\n');
        } else {
            yaml_scalar(out, item);
            wf_buf_putc(out, '\n');
        }
    }
}

/* Kubernetes' layout: mappings indented by two, sequence items at their key's indentation. */
static void yaml_map(wf_buf_t *out, const json_t *o, int indent, bool first_inline)
{
    const char *k;
    json_t *v;
    bool first = true;
    json_object_foreach((json_t *)o, k, v)
    {
        if (!(first && first_inline)) {
            yaml_pad(out, indent);
        }
        first = false;
        size_t at = out->len;
        yaml_string(out, k, strlen(k));
        if (out->len - at > YAML_SIMPLE_KEY_MAX) {
            /* YAML limits implicit keys to 1024 characters: longer ones are explicit ("? k") */
            wf_buf_t key = WF_BUF_INIT;
            wf_buf_append(&key, out->data + at, out->len - at);
            out->len = at;
            wf_buf_puts(out, "? ");
            wf_buf_append(out, key.data, key.len);
            wf_buf_putc(out, '\n');
            yaml_pad(out, indent);
            wf_buf_free(&key);
        }
        wf_buf_putc(out, ':');
        if (json_is_object(v) && json_object_size(v) > 0) {
            wf_buf_putc(out, '\n');
            yaml_map(out, v, indent + 2, false);
        } else if (json_is_array(v) && json_array_size(v) > 0) {
            wf_buf_putc(out, '\n');
            yaml_seq(out, v, indent);
        } else {
            wf_buf_putc(out, ' ');
            yaml_scalar(out, v);
            wf_buf_putc(out, '\n');
        }
    }
}

int col_mesh_yaml(const char *json, size_t len, wf_buf_t *out)
{
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return WF_E_INVAL;
    }
    if (json_object_size(root) == 0) {
        wf_buf_puts(out, "{}\n");
    } else {
        yaml_map(out, root, 0, false);
    }
    json_decref(root);
    return 0;
}

/* ---- the client ---------------------------------------------------------------------------- */

int col_mesh_new(const col_mesh_options_t *o, col_mesh_t **out)
{
    *out = NULL;
    if (o->url == NULL ||
        (strncmp(o->url, "http://", 7) != 0 && strncmp(o->url, "https://", 8) != 0)) {
        return WF_E_INVAL;
    }
    col_mesh_t *m = wf_calloc(1, sizeof(*m));
    size_t n = strlen(o->url);
    while (n > 0 && o->url[n - 1] == '/') {
        n--;
    }
    m->base = wf_malloc(n + 1);
    memcpy(m->base, o->url, n);
    m->base[n] = '\0';
    m->cache_ms = o->cache_ms > 0 ? o->cache_ms : DEFAULT_CACHE_MS;
    int64_t timeout = o->timeout_ms > 0 ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    m->curl = curl_easy_init();
    WF_ASSERT(m->curl != NULL);
    m->headers = curl_slist_append(NULL, "Accept: application/json");
    if (o->token != NULL && o->token[0] != '\0') {
        wf_buf_t h = WF_BUF_INIT;
        wf_buf_printf(&h, "Authorization: Bearer %s", o->token);
        m->headers = curl_slist_append(m->headers, wf_buf_cstr(&h));
        explicit_bzero(h.data, h.len);
        wf_buf_free(&h);
    }
    curl_easy_setopt(m->curl, CURLOPT_HTTPHEADER, m->headers);
    curl_easy_setopt(m->curl, CURLOPT_NOSIGNAL, 1L);
    m->timeout_ms = timeout;
    curl_easy_setopt(m->curl, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(m->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(m->curl, CURLOPT_USERAGENT, "weft-collector");
    *out = m;
    return 0;
}

void col_mesh_free(col_mesh_t *m)
{
    if (m == NULL) {
        return;
    }
    col_mesh_view_release(m->view);
    curl_easy_cleanup(m->curl);
    curl_slist_free_all(m->headers);
    curl_global_cleanup();
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->mu);
    wf_free(m->base);
    wf_free(m);
}

static size_t write_cb(char *p, size_t size, size_t nmemb, void *arg)
{
    wf_buf_t *b = arg;
    size_t n = size * nmemb;
    if (b->len + n > MAX_ANSWER_BYTES) {
        return 0;
    }
    wf_buf_append(b, p, n);
    return n;
}

/* GET base+path into body (NUL-terminated) before deadline_ms (monotonic). 0, or -EIO with err
 * naming what failed. */
static int fetch_one(col_mesh_t *m, const char *path, int64_t deadline_ms, wf_buf_t *body,
                     char *err, size_t errlen)
{
    int64_t left = deadline_ms - wf_mono_ns() / 1000000;
    if (left <= 0) {
        snprintf(err, errlen, "the control plane at %s did not answer within %lld ms", m->base,
                 (long long)m->timeout_ms);
        return -EIO;
    }
    curl_easy_setopt(m->curl, CURLOPT_TIMEOUT_MS, (long)left);
    curl_easy_setopt(m->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)left);
    char url[2048];
    snprintf(url, sizeof(url), "%s%s", m->base, path);
    wf_buf_reset(body);
    curl_easy_setopt(m->curl, CURLOPT_URL, url);
    curl_easy_setopt(m->curl, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(m->curl, CURLOPT_WRITEDATA, body);
    CURLcode cc = curl_easy_perform(m->curl);
    if (cc != CURLE_OK) {
        snprintf(err, errlen, "the control plane at %s did not answer: %s", m->base,
                 curl_easy_strerror(cc));
        return -EIO;
    }
    long status = 0;
    curl_easy_getinfo(m->curl, CURLINFO_RESPONSE_CODE, &status);
    const char *text = wf_buf_cstr(body);
    if (status != 200) {
        json_t *j = json_loads(text, 0, NULL);
        const char *msg = jstr(j, "message");
        if (msg[0] == '\0') {
            msg = jstr(j, "error");
        }
        snprintf(err, errlen, "the control plane at %s answered %ld to %s%s%s%s", m->base, status,
                 path, msg[0] ? ": " : "", msg,
                 status == 401 ? " (give the collector its admin token: --control-token-file)"
                               : "");
        json_decref(j);
        return -EIO;
    }
    return 0;
}

/* One refresh: every answer, then one view. */
static col_mesh_view_t *fetch_view(col_mesh_t *m, char *err, size_t errlen)
{
    wf_buf_t bodies[NLISTS + 3];
    const char *texts[NLISTS + 3];
    static const char *const more[] = {"/v1/analyze", "/v1/workloads", "/v1/proxy-status"};
    col_mesh_view_t *v = NULL;
    size_t got = 0;
    int64_t deadline = wf_mono_ns() / 1000000 + m->timeout_ms;
    for (size_t i = 0; i < NLISTS + 3; i++) {
        wf_buf_init(&bodies[i]);
    }
    for (; got < NLISTS + 3; got++) {
        const char *path = got < NLISTS ? list_paths[got] : more[got - NLISTS];
        if (fetch_one(m, path, deadline, &bodies[got], err, errlen) != 0) {
            goto out;
        }
        texts[got] = wf_buf_cstr(&bodies[got]);
    }
    col_mesh_src_t src = {.lists = texts,
                          .nlists = NLISTS,
                          .analyze = texts[NLISTS],
                          .workloads = texts[NLISTS + 1],
                          .proxies = texts[NLISTS + 2]};
    char perr[256];
    if (col_mesh_view_new(&src, &v, perr, sizeof(perr)) != 0) {
        snprintf(err, errlen, "the control plane at %s answered what the collector cannot read: %s",
                 m->base, perr);
    }
out:
    for (size_t i = 0; i < NLISTS + 3; i++) {
        wf_buf_free(&bodies[i]);
    }
    return v;
}

static int64_t mono_ms(void)
{
    return wf_mono_ns() / 1000000;
}

int col_mesh_get(col_mesh_t *m, col_mesh_view_t **out, char *err, size_t errlen)
{
    pthread_mutex_lock(&m->mu);
    uint64_t start_gen = m->generation;
    while (!(m->have && mono_ms() < m->until_ms) && m->generation == start_gen) {
        if (m->fetching) {
            if (m->view != NULL) {
                /* the last good view serves while it is refreshed: no HTTP thread waits on a
                 * slow control plane but the one refreshing */
                break;
            }
            pthread_cond_wait(&m->cv, &m->mu);
            continue;
        }
        m->fetching = true;
        pthread_mutex_unlock(&m->mu);
        char ferr[sizeof(m->err)] = "";
        col_mesh_view_t *v = fetch_view(m, ferr, sizeof(ferr));
        if (v == NULL) {
            WF_LOG_RL(WF_WARN, 1, "collector", "control plane not read", "err=\"%s\"", ferr);
        }
        pthread_mutex_lock(&m->mu);
        col_mesh_view_release(m->view);
        m->view = v;
        snprintf(m->err, sizeof(m->err), "%s", ferr);
        m->have = true;
        m->until_ms =
            mono_ms() + (v != NULL ? m->cache_ms
                                   : (m->cache_ms < ERROR_CACHE_MS ? m->cache_ms : ERROR_CACHE_MS));
        m->generation++;
        m->fetching = false;
        pthread_cond_broadcast(&m->cv);
    }
    int rc = 0;
    if (m->view != NULL) {
        atomic_fetch_add(&m->view->refs, 1);
        *out = m->view;
    } else {
        snprintf(err, errlen, "%s", m->err);
        *out = NULL;
        rc = -EIO;
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

/* ---- /api/mesh/... -------------------------------------------------------------------------- */

static void json_error(col_resp_t *resp, unsigned status, const char *msg)
{
    resp->status = status;
    resp->content_type = "application/json";
    wf_buf_reset(&resp->body);
    wf_buf_puts(&resp->body, "{\"error\":");
    col_json_str(&resp->body, msg, strlen(msg));
    wf_buf_putc(&resp->body, '}');
}

/* The view for a handler, or NULL with the error answered. */
static col_mesh_view_t *handler_view(col_mesh_t *m, col_resp_t *resp)
{
    if (m == NULL) {
        json_error(resp, 404, NOT_CONNECTED);
        return NULL;
    }
    col_mesh_view_t *v = NULL;
    char err[512];
    if (col_mesh_get(m, &v, err, sizeof(err)) != 0) {
        json_error(resp, 502, err);
        return NULL;
    }
    return v;
}

static void put_str_member(wf_buf_t *o, const char *name, const char *v, bool comma)
{
    wf_buf_printf(o, "%s\"%s\":", comma ? "," : "", name);
    col_json_str(o, v, strlen(v));
}

/* A JSON value as it came (compact). */
static void put_raw(wf_buf_t *o, const json_t *v)
{
    char *s = v != NULL ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    wf_buf_puts(o, s != NULL ? s : "null");
    free(s);
}

/* The names (namespace/name) of the resources of kind with a host covering fqdn, as a JSON
 * array; a resource is named once however many of its hosts cover it. */
static void put_matching(wf_buf_t *o, const col_mesh_view_t *v, const host_ref_t **m, size_t nm,
                         bool vs)
{
    size_t n = 0;
    wf_buf_putc(o, '[');
    for (size_t i = 0; i < nm; i++) {
        const res_info_t *info = &v->info[m[i]->res];
        if ((vs ? !info->vs : !info->dr) || (i > 0 && m[i - 1]->res == m[i]->res)) {
            continue;
        }
        const json_t *res = json_array_get(v->resources, m[i]->res);
        wf_buf_t name = WF_BUF_INIT;
        wf_buf_printf(&name, "%s/%s", meta_str(res, "namespace"), meta_str(res, "name"));
        if (n++ > 0) {
            wf_buf_putc(o, ',');
        }
        col_json_str(o, (const char *)name.data, name.len);
        wf_buf_free(&name);
    }
    wf_buf_putc(o, ']');
}

/* One service: the workloads wl_by_svc[lo, hi) share its namespace and name. */
static void put_service(wf_buf_t *o, const col_mesh_view_t *v, size_t lo, size_t hi)
{
    const char *ns = jstr(v->wl_by_svc[lo], "namespace"), *svc = jstr(v->wl_by_svc[lo], "service");
    char fqdn[FQDN_MAX];
    snprintf(fqdn, sizeof(fqdn), "%s.%s.svc.cluster.local", svc, ns);
    wf_buf_putc(o, '{');
    put_str_member(o, "name", svc, false);
    put_str_member(o, "namespace", ns, true);
    put_str_member(o, "host", fqdn, true);
    wf_buf_puts(o, ",\"versions\":[");
    /* versions in order of first appearance among the workloads (sorted by id) */
    size_t nout = 0, nv = 0;
    for (size_t i = lo; i < hi; i++) {
        const char *ver = jstr(v->wl_by_svc[i], "canonicalRevision");
        bool dup = false;
        for (size_t k = lo; k < i && !dup; k++) {
            dup = strcmp(jstr(v->wl_by_svc[k], "canonicalRevision"), ver) == 0;
        }
        nout += !workload_in_mesh(v->wl_by_svc[i]);
        if (!dup) {
            if (nv++ > 0) {
                wf_buf_putc(o, ',');
            }
            col_json_str(o, ver, strlen(ver));
        }
    }
    wf_buf_printf(o, "],\"workloads\":%zu,\"inMesh\":%s,\"virtualServices\":", hi - lo,
                  nout == 0 ? "true" : "false");
    const host_ref_t **m = NULL;
    size_t nm = hosts_covering(v, fqdn, &m);
    put_matching(o, v, m, nm, true);
    wf_buf_puts(o, ",\"destinationRules\":");
    put_matching(o, v, m, nm, false);
    wf_free(m);
    col_mesh_node_t node = {.type = "service", .ns = wf_str(ns), .service = wf_str(svc)};
    col_mesh_badges_t b;
    col_mesh_badges(v, &node, &b);
    wf_buf_t bj = WF_BUF_INIT;
    col_mesh_badges_json(&b, &bj);
    wf_buf_puts(o, ",\"badges\":{");
    if (bj.len > 1) {
        wf_buf_append(o, bj.data + 1, bj.len - 1);
    }
    wf_buf_puts(o, "}}");
    wf_buf_free(&bj);
}

static void h_services(void *arg, col_req_t *req, col_resp_t *resp)
{
    (void)req;
    col_mesh_view_t *v = handler_view(arg, resp);
    if (v == NULL) {
        return;
    }
    wf_buf_t *o = &resp->body;
    wf_buf_puts(o, "{\"services\":[");
    for (size_t lo = 0, hi; lo < v->nwl; lo = hi) {
        const json_t *w = v->wl_by_svc[lo];
        hi = lo + 1;
        while (hi < v->nwl && wl_svc_key_cmp(v->wl_by_svc[hi], wf_str(jstr(w, "namespace")),
                                             wf_str(jstr(w, "service"))) == 0) {
            hi++;
        }
        if (lo > 0) {
            wf_buf_putc(o, ',');
        }
        put_service(o, v, lo, hi);
    }
    wf_buf_puts(o, "]}");
    resp->status = 200;
    resp->content_type = "application/json";
    col_mesh_view_release(v);
}

static void put_proxy(wf_buf_t *o, const json_t *p)
{
    if (p == NULL) {
        wf_buf_puts(o, ",\"proxy\":null");
        return;
    }
    wf_buf_puts(o, ",\"proxy\":{");
    put_str_member(o, "state", jstr(p, "state"), false);
    put_str_member(o, "reason", jstr(p, "reason"), true);
    wf_buf_puts(o, ",\"acked\":");
    put_raw(o, json_object_get(p, "version"));
    wf_buf_puts(o, ",\"sent\":");
    put_raw(o, json_object_get(p, "sent"));
    wf_buf_puts(o, ",\"lastPollMs\":");
    put_raw(o, json_object_get(p, "lastPollMs"));
    wf_buf_puts(o, "}");
}

static void h_workloads(void *arg, col_req_t *req, col_resp_t *resp)
{
    (void)req;
    col_mesh_view_t *v = handler_view(arg, resp);
    if (v == NULL) {
        return;
    }
    wf_buf_t *o = &resp->body;
    wf_buf_puts(o, "{\"workloads\":[");
    size_t n = 0;
    for (size_t i = 0; i < v->nwl; i++) {
        const json_t *w = v->wl_by_id[i];
        char name[FQDN_MAX];
        workload_name(w, name, sizeof(name));
        wf_buf_puts(o, n++ > 0 ? ",{" : "{");
        put_str_member(o, "id", jstr(w, "id"), false);
        put_str_member(o, "name", name, true);
        put_str_member(o, "namespace", jstr(w, "namespace"), true);
        put_str_member(o, "app", jstr(w, "canonicalService"), true);
        put_str_member(o, "version", jstr(w, "canonicalRevision"), true);
        put_str_member(o, "service", jstr(w, "service"), true);
        put_str_member(o, "address", jstr(w, "address"), true);
        put_str_member(o, "identity", jstr(w, "identity"), true);
        put_str_member(o, "mode", jstr(w, "mode"), true);
        wf_buf_puts(o, ",\"registered\":true,\"leaseRemainingMs\":");
        put_raw(o, json_object_get(w, "leaseRemainingMs"));
        wf_buf_printf(o, ",\"inMesh\":%s,\"labels\":", workload_in_mesh(w) ? "true" : "false");
        put_raw(o, json_object_get(w, "labels"));
        put_proxy(o, find_id(v->px_by_id, v->npx, jstr(w, "id")));
        wf_buf_putc(o, '}');
    }
    /* Proxies that poll without a live registration (NOT_REGISTERED): shown, not hidden. */
    for (size_t i = 0; i < v->npx; i++) {
        const json_t *p = v->px_by_id[i];
        const char *id = jstr(p, "id");
        if (find_id(v->wl_by_id, v->nwl, id) != NULL) {
            continue;
        }
        wf_buf_puts(o, n++ > 0 ? ",{" : "{");
        put_str_member(o, "id", id, false);
        put_str_member(o, "name", id, true);
        put_str_member(o, "namespace", jstr(p, "namespace"), true);
        put_str_member(o, "service", jstr(p, "service"), true);
        wf_buf_puts(o, ",\"registered\":false,\"inMesh\":true");
        put_proxy(o, p);
        wf_buf_putc(o, '}');
    }
    wf_buf_puts(o, "]}");
    resp->status = 200;
    resp->content_type = "application/json";
    col_mesh_view_release(v);
}

static int level_rank(const char *level)
{
    return strcmp(level, "error") == 0 ? 3 : strcmp(level, "warning") == 0 ? 2 : 1;
}

/* ,"validation":"valid|info|warning|error","messages":[...] of one resource. */
static void put_messages(wf_buf_t *o, const col_mesh_view_t *v, const json_t *res)
{
    const char *ns = meta_str(res, "namespace"), *kind = jstr(res, "kind"),
               *name = meta_str(res, "name");
    size_t lo = 0, hi = v->nmsg;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (msg_key_cmp(v->msgs[mid].m, ns, kind, name) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    int worst = 0;
    wf_buf_t list = WF_BUF_INIT;
    for (size_t i = lo; i < v->nmsg && msg_key_cmp(v->msgs[i].m, ns, kind, name) == 0; i++) {
        const json_t *m = v->msgs[i].m;
        const char *level = jstr(m, "level");
        worst = level_rank(level) > worst ? level_rank(level) : worst;
        wf_buf_puts(&list, i > lo ? ",{" : "{");
        put_str_member(&list, "level", level, false);
        put_str_member(&list, "code", jstr(m, "code"), true);
        put_str_member(&list, "path", jstr(m, "path"), true);
        put_str_member(&list, "message", jstr(m, "message"), true);
        wf_buf_putc(&list, '}');
    }
    static const char *const names[] = {"valid", "info", "warning", "error"};
    wf_buf_printf(o, ",\"validation\":\"%s\",\"messages\":[", names[worst]);
    if (list.len > 0) {
        wf_buf_append(o, list.data, list.len);
    }
    wf_buf_putc(o, ']');
    wf_buf_free(&list);
}

static void put_resource_head(wf_buf_t *o, const json_t *res)
{
    put_str_member(o, "kind", jstr(res, "kind"), false);
    put_str_member(o, "apiVersion", jstr(res, "apiVersion"), true);
    put_str_member(o, "namespace", meta_str(res, "namespace"), true);
    put_str_member(o, "name", meta_str(res, "name"), true);
    put_str_member(o, "resourceVersion", meta_str(res, "resourceVersion"), true);
    put_str_member(o, "creationTimestamp", meta_str(res, "creationTimestamp"), true);
}

static void h_config(void *arg, col_req_t *req, col_resp_t *resp)
{
    (void)req;
    col_mesh_view_t *v = handler_view(arg, resp);
    if (v == NULL) {
        return;
    }
    wf_buf_t *o = &resp->body;
    wf_buf_puts(o, "{\"resources\":[");
    size_t i;
    json_t *res;
    json_array_foreach(v->resources, i, res)
    {
        wf_buf_puts(o, i > 0 ? ",{" : "{");
        put_resource_head(o, res);
        put_messages(o, v, res);
        wf_buf_putc(o, '}');
    }
    wf_buf_puts(o, "]}");
    resp->status = 200;
    resp->content_type = "application/json";
    col_mesh_view_release(v);
}

/* Whether the path's kind names kind: its name or its plural, in any case. */
static bool kind_matches(const char *want, size_t len, const char *kind)
{
    size_t kl = strlen(kind);
    if (len == kl && strncasecmp(want, kind, len) == 0) {
        return true;
    }
    char plural[64];
    if (kl == 0 || kl + 3 > sizeof(plural)) {
        return false;
    }
    if (kind[kl - 1] == 'y') {
        snprintf(plural, sizeof(plural), "%.*sies", (int)(kl - 1), kind);
    } else {
        snprintf(plural, sizeof(plural), "%ss", kind);
    }
    return len == strlen(plural) && strncasecmp(want, plural, len) == 0;
}

static void h_config_one(void *arg, col_req_t *req, col_resp_t *resp)
{
    static const char prefix[] = "/api/mesh/config/";
    const char *rest = req->path + strlen(prefix);
    const char *s1 = strchr(rest, '/');
    const char *s2 = s1 != NULL ? strchr(s1 + 1, '/') : NULL;
    if (strncmp(req->path, prefix, strlen(prefix)) != 0 || s1 == NULL || s2 == NULL ||
        strchr(s2 + 1, '/') != NULL || s1 == rest || s2 == s1 + 1 || s2[1] == '\0') {
        json_error(resp, 404, "not found: use /api/mesh/config/<kind>/<namespace>/<name>");
        return;
    }
    col_mesh_view_t *v = handler_view(arg, resp);
    if (v == NULL) {
        return;
    }
    size_t i;
    json_t *res, *found = NULL;
    size_t nslen = (size_t)(s2 - s1 - 1);
    json_array_foreach(v->resources, i, res)
    {
        const char *ns = meta_str(res, "namespace");
        if (kind_matches(rest, (size_t)(s1 - rest), jstr(res, "kind")) && strlen(ns) == nslen &&
            strncmp(ns, s1 + 1, nslen) == 0 && strcmp(meta_str(res, "name"), s2 + 1) == 0) {
            found = res;
            break;
        }
    }
    if (found == NULL) {
        wf_buf_t msg = WF_BUF_INIT;
        wf_buf_printf(&msg, "the control plane has no %.*s %.*s/%s", (int)(s1 - rest), rest,
                      (int)nslen, s1 + 1, s2 + 1);
        json_error(resp, 404, wf_buf_cstr(&msg));
        wf_buf_free(&msg);
        col_mesh_view_release(v);
        return;
    }
    wf_buf_t yaml = WF_BUF_INIT;
    yaml_map(&yaml, found, 0, false);
    wf_buf_t *o = &resp->body;
    wf_buf_putc(o, '{');
    put_resource_head(o, found);
    put_messages(o, v, found);
    wf_buf_puts(o, ",\"yaml\":");
    col_json_str(o, (const char *)yaml.data, yaml.len);
    wf_buf_putc(o, '}');
    wf_buf_free(&yaml);
    resp->status = 200;
    resp->content_type = "application/json";
    col_mesh_view_release(v);
}

int col_mesh_register(col_http_t *h, col_mesh_t *m)
{
    int rc = col_http_route(h, "GET", "/api/mesh/services", false, 0, h_services, m);
    if (rc == 0) {
        rc = col_http_route(h, "GET", "/api/mesh/workloads", false, 0, h_workloads, m);
    }
    if (rc == 0) {
        rc = col_http_route(h, "GET", "/api/mesh/config", false, 0, h_config, m);
    }
    if (rc == 0) {
        rc = col_http_route(h, "GET", "/api/mesh/config/", true, 0, h_config_one, m);
    }
    return rc;
}
