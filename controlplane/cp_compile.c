/*
 * cp_compile.c - the snapshot compiler (cp_compile.h): Istio's resources and the registered
 * workloads of one cp_config_t into the per-proxy document of docs/snapshot.md.
 *
 * A proxy's document has a per-proxy head (proxy, telemetry, inbound, and for a gateway its
 * servers and routes) and a shared outbound part (virtual_hosts and clusters). The outbound part
 * depends only on the proxy's namespace (short domains, exportTo, DestinationRule lookup order,
 * sourceNamespace) and on the Sidecar resource scoping it, so it is compiled once per such group,
 * kept as JSON text and spliced into each document.
 *
 * Compressed delivery (cp_compile_proxy_gz) keeps that economy: a group's shared suffix (its
 * virtual_hosts, clusters and the closing brace) is raw-deflated once, to a stream ending in a
 * final block; a proxy's gzip member is its own prefix deflated and flushed to a byte boundary
 * (no back-references out of it are needed), followed by the group's deflate bytes as they are,
 * with a trailer whose CRC is crc32_combine'd from the two parts' (zlib's gzjoin technique).
 *
 * What the schema cannot express is left out, counted (cp_compile_skipped) and logged once per
 * kind; the compiler never writes a field the proxy's strict parser refuses. Where leaving a
 * field out would weaken security (a MUTUAL cluster without its certificate files), the cluster
 * is left out instead, so routes to it fail closed (503 NC).
 */
#include "cp_compile.h"

#include "wf_alloc.h"
#include "wf_buf.h"
#include "wf_err.h"
#include "wf_log.h"
#include "wf_str.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#define ROOT_NS "istio-system"
#define MESH_GATEWAY "mesh"
#define DEFAULT_RETRY_ON "connect-failure,refused-stream,unavailable,cancelled"
#define MAX_LOGGED_KINDS 64
#define POOL_UNLIMITED 4294967295LL
/* What joins a document's virtual_hosts and its clusters. */
#define CLUSTERS_KEY ",\"clusters\":"
/* zlib's default level: on bench_cp_compile's documents it already gives ~30x (a group's part,
 * 3.8 MB, deflated in ~15 ms of CPU); the per-proxy heads are small either way. */
#define CP_COMPILE_GZ_LEVEL 6

/* One service: a Kubernetes service made of registered workloads, or one host of a
 * ServiceEntry. */
typedef struct {
    char *host; /* FQDN, or the ServiceEntry host as written */
    char *ns;   /* the service's namespace (the ServiceEntry's for those) */
    char *name; /* Kubernetes service name; NULL for a ServiceEntry host */
    int64_t *ports;
    size_t nports;
    const cp_resource_t *se;   /* NULL for a registry service */
    const cp_workload_t **wls; /* a registry service's workloads, in id order */
    size_t nwls;
} svc_t;

/* Rule hosts (FQDNs) to rule indexes: exact hosts sorted by (host, index), wildcards in index
 * order, so a lookup visits only the rules that can match and in the order the scans did. */
typedef struct {
    const char *host;
    uint32_t idx;
} host_ref_t;

typedef struct {
    host_ref_t *exact, *wild;
    size_t nexact, nwild;
} host_index_t;

/* The cached outbound part of one (namespace, Sidecar) group. */
typedef struct {
    char *ns;
    const cp_resource_t *sidecar;
    char *vhosts;   /* JSON array text */
    char *clusters; /* JSON array text */
    size_t vhosts_len, clusters_len;
    uint64_t hash; /* of vhosts and clusters: a proxy's content hash starts from it */
    /* The raw deflate of the shared suffix (vhosts ,"clusters": clusters }), ended with a final
     * block, its CRC-32 and length; NULL until a gzip document of the group is first asked for.
     * Set once under the compiler's lock, then never changed. */
    unsigned char *gz;
    size_t gz_len;
    uint32_t sfx_crc;
    size_t sfx_len;
} group_t;

struct cp_compiled {
    const cp_config_t *cfg;
    cp_compile_opts_t opts;
    char *collector_url;
    char *trust_bundle;
    svc_t *svcs; /* sorted by host */
    size_t nsvcs;
    char **dr_hosts;  /* per DestinationRule of cfg: its host as an FQDN */
    char ***vs_hosts; /* per VirtualService of cfg: its hosts as FQDNs */
    host_index_t dr_ix, vs_ix;
    pthread_mutex_t mu; /* guards everything below */
    group_t **groups;   /* by pointer: handed out while the array grows */
    size_t ngroups;
    uint64_t skipped;
    uint64_t gz_groups; /* shared suffixes deflated (cp_compile_gz_groups) */
    const char *logged[MAX_LOGGED_KINDS];
    size_t nlogged;
};

/* One compilation: for whom, and what was left out. */
typedef struct {
    cp_compiled_t *c;
    const char *ns;               /* the proxy's namespace */
    const cp_resource_t *sidecar; /* the Sidecar scoping it, or NULL */
    uint64_t skipped;
} ctx_t;

/* ---- small helpers ---- */

static char *str_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *str_fmt(const char *fmt, ...)
{
    wf_buf_t b;
    wf_buf_init(&b);
    va_list ap;
    va_start(ap, fmt);
    wf_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    wf_buf_putc(&b, '\0');
    size_t len;
    return (char *)wf_buf_detach(&b, &len);
}

static json_t *jstr(wf_str_t s)
{
    json_t *j = json_stringn(s.p != NULL ? s.p : "", s.len);
    /* cp_yaml hands out valid UTF-8; an empty string keeps the document well-formed anyway. */
    return j != NULL ? j : json_string("");
}

static void set(json_t *o, const char *key, json_t *v)
{
    json_object_set_new(o, key, v);
}

/* Something the schema cannot carry: counted, and logged the first time per kind. */
static void skip(ctx_t *x, const cp_resource_t *r, const char *what)
{
    x->skipped++;
    cp_compiled_t *c = x->c;
    bool first = true;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->nlogged; i++) {
        if (c->logged[i] == what) {
            first = false;
        }
    }
    if (first && c->nlogged < MAX_LOGGED_KINDS) {
        c->logged[c->nlogged++] = what;
    }
    pthread_mutex_unlock(&c->mu);
    if (first) {
        WF_LOG(WF_WARN, "control", "left out of snapshots (not expressible in schema 1)",
               "what=\"%s\" kind=%s namespace=%.*s name=%.*s", what,
               r != NULL ? cp_kind_name(r->kind) : "", r ? (int)r->meta.namespace_.len : 0,
               r ? r->meta.namespace_.p : "", r ? (int)r->meta.name.len : 0,
               r ? r->meta.name.p : "");
    }
}

/* Istio resolves a host without a dot relative to the resource's namespace. */
static char *fqdn(wf_str_t h, wf_str_t ns)
{
    if (h.len == 0 || memchr(h.p, '.', h.len) != NULL || h.p[0] == '*') {
        return wf_strndup(h.p != NULL ? h.p : "", h.len);
    }
    return str_fmt("%.*s.%.*s.svc.cluster.local", (int)h.len, h.p, (int)ns.len, ns.p);
}

/* How well pattern (an FQDN or `*`/`*.suffix`) covers host: -1 = not at all, larger = more
 * specific (exact beats every wildcard, a longer suffix beats a shorter one). */
static long host_score(const char *pattern, const char *host)
{
    if (strcmp(pattern, host) == 0) {
        return 1L << 20;
    }
    if (pattern[0] != '*') {
        return -1;
    }
    size_t pl = strlen(pattern) - 1, hl = strlen(host);
    if (pl == 0) {
        return 0;
    }
    if (hl > pl && strcmp(host + hl - pl, pattern + 1) == 0) {
        return (long)pl;
    }
    return -1;
}

/* exportTo: empty or `*` = every namespace, `.` = the resource's own. */
static bool exported(const cp_strs_t *to, wf_str_t res_ns, const char *ns)
{
    if (to->n == 0) {
        return true;
    }
    for (uint32_t i = 0; i < to->n; i++) {
        wf_str_t e = to->items[i];
        if (wf_str_eq_c(e, "*") || wf_str_eq_c(e, ns) ||
            (wf_str_eq_c(e, ".") && wf_str_eq_c(res_ns, ns))) {
            return true;
        }
    }
    return false;
}

/* A workload's label, with Istio's app/version fallbacks to the registered service and
 * version (a proxy that sent no labels still selects by subset). */
static const char *wl_label(const cp_workload_t *w, const char *key)
{
    const char *v = cp_workload_label(w, key);
    if (v != NULL) {
        return v;
    }
    if (strcmp(key, "app") == 0) {
        return w->service;
    }
    if (strcmp(key, "version") == 0 && w->version != NULL && w->version[0] != '\0') {
        return w->version;
    }
    return NULL;
}

static bool wl_selected(const cp_labels_t *sel, const cp_workload_t *w)
{
    for (uint32_t i = 0; i < sel->n; i++) {
        char *key = wf_strndup(sel->items[i].key.p, sel->items[i].key.len);
        const char *v = wl_label(w, key);
        wf_free(key);
        if (v == NULL || !wf_str_eq_c(sel->items[i].value, v)) {
            return false;
        }
    }
    return true;
}

static bool labels_selected(const cp_labels_t *sel, const cp_labels_t *have)
{
    for (uint32_t i = 0; i < sel->n; i++) {
        bool found = false;
        for (uint32_t j = 0; j < have->n && !found; j++) {
            found = wf_str_eq(sel->items[i].key, have->items[j].key) &&
                    wf_str_eq(sel->items[i].value, have->items[j].value);
        }
        if (!found) {
            return false;
        }
    }
    return true;
}

static int key_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The workload's labels (with app and version filled in as above), keys sorted. */
static json_t *wl_labels_json(const cp_workload_t *w)
{
    const char **keys = wf_calloc(w->nlabels + 2, sizeof(*keys));
    size_t n = 0;
    for (size_t i = 0; i < w->nlabels; i++) {
        keys[n++] = w->labels[i].name;
    }
    if (cp_workload_label(w, "app") == NULL) {
        keys[n++] = "app";
    }
    if (cp_workload_label(w, "version") == NULL && wl_label(w, "version") != NULL) {
        keys[n++] = "version";
    }
    qsort(keys, n, sizeof(*keys), key_cmp);
    json_t *o = json_object();
    for (size_t i = 0; i < n; i++) {
        set(o, keys[i], json_string(wl_label(w, keys[i])));
    }
    wf_free(keys);
    return o;
}

static json_t *labels_json(const cp_labels_t *l)
{
    json_t *o = json_object();
    for (uint32_t i = 0; i < l->n; i++) {
        char *k = wf_strndup(l->items[i].key.p, l->items[i].key.len);
        set(o, k, jstr(l->items[i].value));
        wf_free(k);
    }
    return o;
}

static char *wl_workload_name(const cp_workload_t *w)
{
    if (w->version != NULL && w->version[0] != '\0') {
        return str_fmt("%s-%s", w->service, w->version);
    }
    return wf_strdup(w->service);
}

static char *wl_identity(const cp_workload_t *w)
{
    char buf[512];
    int n = cp_spiffe_id(w, buf, sizeof(buf));
    if (n < 0 || (size_t)n >= sizeof(buf)) {
        char *big = wf_malloc((size_t)(n > 0 ? n : 0) + 1);
        cp_spiffe_id(w, big, (size_t)n + 1);
        return big;
    }
    return wf_strdup(buf);
}

static bool wl_has_port(const cp_workload_t *w, int64_t port)
{
    for (size_t i = 0; i < w->nports; i++) {
        if (w->ports[i] == port) {
            return true;
        }
    }
    return false;
}

/* A domain the proxy takes (Envoy's rule): non-empty, at most one `*`, first or last. */
static bool domain_ok(const char *d)
{
    size_t n = strlen(d);
    const char *star = strchr(d, '*');
    if (n == 0 || star == NULL) {
        return n > 0;
    }
    return strchr(star + 1, '*') == NULL && (star == d || star == d + n - 1);
}

/* ---- services ---- */

static int svc_cmp(const void *a, const void *b)
{
    const svc_t *x = a, *y = b;
    int d = strcmp(x->host, y->host);
    return d != 0 ? d : strcmp(x->ns, y->ns);
}

static void svc_add_port(svc_t *s, int64_t port)
{
    for (size_t i = 0; i < s->nports; i++) {
        if (s->ports[i] == port) {
            return;
        }
    }
    size_t at = s->nports;
    s->ports = wf_realloc(s->ports, (at + 1) * sizeof(*s->ports));
    while (at > 0 && s->ports[at - 1] > port) {
        s->ports[at] = s->ports[at - 1];
        at--;
    }
    s->ports[at] = port;
    s->nports++;
}

static svc_t *svc_push(cp_compiled_t *c)
{
    c->svcs = wf_realloc(c->svcs, (c->nsvcs + 1) * sizeof(*c->svcs));
    svc_t *s = &c->svcs[c->nsvcs++];
    memset(s, 0, sizeof(*s));
    return s;
}

static const svc_t *svc_find(const svc_t *svcs, size_t n, const char *host);

/* Registry services (one per service and namespace), then every ServiceEntry host; a host
 * claimed twice keeps its first claimant (registry first, then namespace/name order), since
 * the proxy refuses two virtual hosts with one domain. */
static void build_services(ctx_t *x)
{
    cp_compiled_t *c = x->c;
    const cp_config_t *cfg = c->cfg;
    for (size_t i = 0; i < cfg->nworkloads; i++) {
        const cp_workload_t *w = &cfg->workloads[i];
        svc_t *s = svc_push(c);
        s->host = str_fmt("%s.%s.svc.cluster.local", w->service, w->ns);
        s->ns = wf_strdup(w->ns);
        s->name = wf_strdup(w->service);
        for (size_t p = 0; p < w->nports; p++) {
            svc_add_port(s, w->ports[p]);
        }
    }
    /* One entry per host: merge the workloads' ports (sorting is stable enough here, as
     * entries of one host differ only in their ports). */
    if (c->nsvcs > 1) {
        qsort(c->svcs, c->nsvcs, sizeof(*c->svcs), svc_cmp);
    }
    size_t out = 0;
    for (size_t i = 0; i < c->nsvcs; i++) {
        if (out > 0 && strcmp(c->svcs[out - 1].host, c->svcs[i].host) == 0) {
            for (size_t p = 0; p < c->svcs[i].nports; p++) {
                svc_add_port(&c->svcs[out - 1], c->svcs[i].ports[p]);
            }
            wf_free(c->svcs[i].host);
            wf_free(c->svcs[i].ns);
            wf_free(c->svcs[i].name);
            wf_free(c->svcs[i].ports);
            continue;
        }
        c->svcs[out++] = c->svcs[i];
    }
    c->nsvcs = out;
    size_t nreg = out;
    for (size_t i = 0; i < cfg->n[CP_KIND_SERVICE_ENTRY]; i++) {
        const cp_resource_t *r = cfg->res[CP_KIND_SERVICE_ENTRY][i];
        const cp_service_entry_t *se = r->spec.se;
        for (uint32_t h = 0; h < se->hosts.n; h++) {
            char *host = fqdn(se->hosts.items[h], r->meta.namespace_);
            if (!domain_ok(host)) {
                skip(x, r, "ServiceEntry host the proxy cannot match (wildcard inside)");
                wf_free(host);
                continue;
            }
            /* the registry's part is sorted; the ServiceEntries' part is searched in full */
            bool taken = svc_find(c->svcs, nreg, host) != NULL;
            for (size_t j = nreg; j < c->nsvcs && !taken; j++) {
                taken = strcmp(c->svcs[j].host, host) == 0;
            }
            if (taken) {
                wf_free(host);
                continue;
            }
            svc_t *s = svc_push(c);
            s->host = host;
            s->ns = wf_strndup(r->meta.namespace_.p, r->meta.namespace_.len);
            s->se = r;
            for (uint32_t p = 0; p < se->n_ports; p++) {
                svc_add_port(s, se->ports[p].number);
            }
        }
    }
    if (c->nsvcs > 1) {
        qsort(c->svcs, c->nsvcs, sizeof(*c->svcs), svc_cmp);
    }
    for (size_t i = 0; i < cfg->nworkloads; i++) {
        const cp_workload_t *w = &cfg->workloads[i];
        char *host = str_fmt("%s.%s.svc.cluster.local", w->service, w->ns);
        svc_t *s = (svc_t *)svc_find(c->svcs, c->nsvcs, host);
        wf_free(host);
        WF_ASSERT(s != NULL && s->se == NULL);
        s->wls = wf_realloc(s->wls, (s->nwls + 1) * sizeof(*s->wls));
        s->wls[s->nwls++] = w;
    }
}

/* Binary search of svcs[0..n), sorted by host. */
static const svc_t *svc_find(const svc_t *svcs, size_t n, const char *host)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int d = strcmp(svcs[mid].host, host);
        if (d == 0) {
            return &svcs[mid];
        }
        if (d < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

static const cp_port_t *se_port(const svc_t *s, int64_t port)
{
    const cp_service_entry_t *se = s->se->spec.se;
    for (uint32_t i = 0; i < se->n_ports; i++) {
        if (se->ports[i].number == port) {
            return &se->ports[i];
        }
    }
    return NULL;
}

/* HTTP virtual hosts only for ports that carry HTTP: every registry port (the registry has
 * no protocol), ServiceEntry ports declared HTTP, HTTP2, GRPC, GRPC-Web or without protocol. */
static bool port_is_http(const svc_t *s, int64_t port)
{
    if (s->se == NULL) {
        return true;
    }
    const cp_port_t *p = se_port(s, port);
    if (p == NULL || p->protocol.len == 0) {
        return p != NULL;
    }
    static const char *const http[] = {"HTTP", "HTTP2", "GRPC", "GRPC-WEB"};
    for (size_t i = 0; i < sizeof(http) / sizeof(http[0]); i++) {
        if (p->protocol.len == strlen(http[i]) &&
            strncasecmp(p->protocol.p, http[i], p->protocol.len) == 0) {
            return true;
        }
    }
    return false;
}

/* Sidecar egress hosts: `ns/host`, ns `*`, `.` (the proxy's namespace) or a name, `~` none;
 * host `*`, `*.suffix` or an FQDN. An egress entry with a port imports its hosts on that port
 * only; port 0 asks whether any entry imports the service (its clusters). */
static bool sidecar_allows(const ctx_t *x, const svc_t *s, int64_t port)
{
    if (x->sidecar == NULL) {
        return true;
    }
    const cp_sidecar_t *sc = x->sidecar->spec.sidecar;
    for (uint32_t e = 0; e < sc->n_egress; e++) {
        if (port != 0 && sc->egress[e].port != NULL && sc->egress[e].port->number != port) {
            continue;
        }
        for (uint32_t h = 0; h < sc->egress[e].hosts.n; h++) {
            wf_str_t v = sc->egress[e].hosts.items[h];
            const char *slash = memchr(v.p, '/', v.len);
            if (slash == NULL) {
                continue;
            }
            wf_str_t ns = {v.p, (size_t)(slash - v.p)};
            char *host = wf_strndup(slash + 1, v.len - ns.len - 1);
            bool ns_ok = wf_str_eq_c(ns, "*") || wf_str_eq_c(ns, s->ns) ||
                         (wf_str_eq_c(ns, ".") && strcmp(x->ns, s->ns) == 0);
            bool ok = ns_ok && host_score(host, s->host) >= 0;
            wf_free(host);
            if (ok) {
                return true;
            }
        }
    }
    return false;
}

static bool svc_visible(const ctx_t *x, const svc_t *s)
{
    if (s->se != NULL && !exported(&s->se->spec.se->export_to, s->se->meta.namespace_, x->ns)) {
        return false;
    }
    return sidecar_allows(x, s, 0);
}

/* ---- rule host indexes ---- */

static int ref_cmp(const void *a, const void *b)
{
    const host_ref_t *x = a, *y = b;
    int d = strcmp(x->host, y->host);
    return d != 0 ? d : (x->idx > y->idx) - (x->idx < y->idx);
}

static void ix_add(host_index_t *ix, const char *host, uint32_t idx)
{
    bool wild = host[0] == '*';
    host_ref_t **v = wild ? &ix->wild : &ix->exact;
    size_t *n = wild ? &ix->nwild : &ix->nexact;
    *v = wf_realloc(*v, (*n + 1) * sizeof(**v));
    (*v)[(*n)++] = (host_ref_t){host, idx};
}

static void ix_sort(host_index_t *ix)
{
    if (ix->nexact > 1) {
        qsort(ix->exact, ix->nexact, sizeof(*ix->exact), ref_cmp);
    }
}

/* The exact entries for host: *lo and the count. */
static size_t ix_range(const host_index_t *ix, const char *host, size_t *lo)
{
    size_t a = 0, b = ix->nexact;
    while (a < b) {
        size_t mid = a + (b - a) / 2;
        if (strcmp(ix->exact[mid].host, host) < 0) {
            a = mid + 1;
        } else {
            b = mid;
        }
    }
    size_t end = a;
    while (end < ix->nexact && strcmp(ix->exact[end].host, host) == 0) {
        end++;
    }
    *lo = a;
    return end - a;
}

/* The k-th candidate: the n exact entries from lo, then every wildcard. */
static size_t ix_at(const host_index_t *ix, size_t lo, size_t n, size_t k)
{
    return k < n ? ix->exact[lo + k].idx : ix->wild[k - n].idx;
}

/* ---- DestinationRule lookup and traffic policy ---- */

/* Most specific host match among the DestinationRules of the proxy's namespace, then the
 * service's, then the root namespace (Istio's order); rules with a workloadSelector are not
 * applied (counted): they would split the shared outbound part per workload. */
static const cp_resource_t *dr_for(ctx_t *x, const svc_t *s)
{
    const cp_config_t *cfg = x->c->cfg;
    const char *scopes[3] = {x->ns, s->ns, ROOT_NS};
    for (int sc = 0; sc < 3; sc++) {
        const cp_resource_t *best = NULL;
        long best_score = -1;
        size_t lo, n = ix_range(&x->c->dr_ix, s->host, &lo);
        for (size_t k = 0; k < n + x->c->dr_ix.nwild; k++) {
            size_t i = ix_at(&x->c->dr_ix, lo, n, k);
            const cp_resource_t *r = cfg->res[CP_KIND_DESTINATION_RULE][i];
            const cp_destination_rule_t *dr = r->spec.dr;
            if (!wf_str_eq_c(r->meta.namespace_, scopes[sc]) ||
                !exported(&dr->export_to, r->meta.namespace_, x->ns)) {
                continue;
            }
            long score = host_score(x->c->dr_hosts[i], s->host);
            if (score > best_score) {
                if (dr->workload_selector.n > 0) {
                    skip(x, r, "DestinationRule workloadSelector");
                    continue;
                }
                best = r;
                best_score = score;
            }
        }
        if (best != NULL) {
            return best;
        }
    }
    return NULL;
}

typedef struct {
    const cp_load_balancer_t *lb;
    const cp_conn_pool_t *pool;
    const cp_outlier_t *od;
    const cp_client_tls_t *tls;
} policy_t;

/* Istio's merge: whole top-level fields replace, port-level settings over the policy's own. */
static void policy_apply(policy_t *p, const cp_traffic_policy_t *tp, int64_t port)
{
    if (tp == NULL) {
        return;
    }
    p->lb = tp->load_balancer ? tp->load_balancer : p->lb;
    p->pool = tp->connection_pool ? tp->connection_pool : p->pool;
    p->od = tp->outlier_detection ? tp->outlier_detection : p->od;
    p->tls = tp->tls ? tp->tls : p->tls;
    for (uint32_t i = 0; i < tp->n_port_level_settings; i++) {
        const cp_port_policy_t *pp = &tp->port_level_settings[i];
        if (pp->port != port) {
            continue;
        }
        p->lb = pp->load_balancer ? pp->load_balancer : p->lb;
        p->pool = pp->connection_pool ? pp->connection_pool : p->pool;
        p->od = pp->outlier_detection ? pp->outlier_detection : p->od;
        p->tls = pp->tls ? pp->tls : p->tls;
    }
}

static json_t *lb_json(ctx_t *x, const cp_resource_t *r, const cp_load_balancer_t *lb)
{
    json_t *o = json_object();
    if (lb != NULL && lb->warmup_duration_ms > 0) {
        skip(x, r, "loadBalancer.warmupDurationSecs");
    }
    if (lb != NULL && lb->consistent_hash != NULL) {
        const cp_consistent_hash_t *h = lb->consistent_hash;
        json_t *ch = json_object();
        if (h->http_header_name.len > 0) {
            set(ch, "http_header_name", jstr(h->http_header_name));
        } else if (h->http_cookie != NULL) {
            json_t *ck = json_object();
            set(ck, "name", jstr(h->http_cookie->name));
            if (h->http_cookie->path.len > 0) {
                set(ck, "path", jstr(h->http_cookie->path));
            }
            if (h->http_cookie->ttl_ms > 0) {
                set(ck, "ttl_ms", json_integer(h->http_cookie->ttl_ms));
            }
            set(ch, "http_cookie", ck);
        } else if (h->use_source_ip == 1) {
            set(ch, "use_source_ip", json_true());
        } else if (h->http_query_parameter_name.len > 0) {
            set(ch, "http_query_parameter_name", jstr(h->http_query_parameter_name));
        } else {
            json_decref(ch);
            skip(x, r, "loadBalancer.consistentHash without a hash key");
            set(o, "simple", json_string("LEAST_REQUEST"));
            return o;
        }
        int64_t ring = h->minimum_ring_size;
        set(ch, "minimum_ring_size", json_integer(ring > 0 && ring <= 8388608 ? ring : 1024));
        set(o, "consistent_hash", ch);
        return o;
    }
    /* Istio maps LEAST_CONN and UNSPECIFIED to Envoy's least request. */
    const char *simple = "LEAST_REQUEST";
    if (lb != NULL && lb->simple == CP_LB_RANDOM) {
        simple = "RANDOM";
    } else if (lb != NULL && lb->simple == CP_LB_ROUND_ROBIN) {
        simple = "ROUND_ROBIN";
    } else if (lb != NULL && lb->simple == CP_LB_PASSTHROUGH) {
        simple = "PASSTHROUGH";
    }
    set(o, "simple", json_string(simple));
    return o;
}

static int64_t pos_or(int64_t v, int64_t def)
{
    return v > 0 && v <= POOL_UNLIMITED ? v : def;
}

static json_t *pool_json(ctx_t *x, const cp_resource_t *r, const cp_conn_pool_t *p)
{
    const cp_tcp_pool_t *t = p ? p->tcp : NULL;
    const cp_http_pool_t *h = p ? p->http : NULL;
    json_t *o = json_object(), *tcp = json_object(), *http = json_object();
    set(tcp, "max_connections", json_integer(pos_or(t ? t->max_connections : 0, POOL_UNLIMITED)));
    set(tcp, "connect_timeout_ms", json_integer(pos_or(t ? t->connect_timeout_ms : 0, 10000)));
    if (t != NULL && (t->max_connection_duration_ms > 0 || t->idle_timeout_ms > 0)) {
        skip(x, r, "connectionPool.tcp maxConnectionDuration/idleTimeout");
    }
    set(http, "http1_max_pending_requests",
        json_integer(pos_or(h ? h->http1_max_pending_requests : 0, POOL_UNLIMITED)));
    set(http, "max_requests_per_connection",
        json_integer(pos_or(h ? h->max_requests_per_connection : 0, 0)));
    set(http, "idle_timeout_ms", json_integer(pos_or(h ? h->idle_timeout_ms : 0, 3600000)));
    int64_t retries = h != NULL && h->max_retries >= 0 && h->max_retries <= POOL_UNLIMITED
                          ? h->max_retries
                          : POOL_UNLIMITED;
    set(http, "max_retries", json_integer(retries));
    if (h != NULL && (h->http2_max_requests > 0 || h->max_concurrent_streams > 0 ||
                      h->h2_upgrade_policy != CP_H2_UNSET || h->use_client_protocol == 1)) {
        skip(x, r, "connectionPool.http HTTP/2 settings");
    }
    set(o, "tcp", tcp);
    set(o, "http", http);
    return o;
}

static json_t *outlier_json(ctx_t *x, const cp_resource_t *r, const cp_outlier_t *od)
{
    json_t *o = json_object();
    int64_t c5 = od->consecutive_5xx_errors >= 0 ? od->consecutive_5xx_errors : 5;
    /* Istio maps the deprecated consecutiveErrors to gateway errors. */
    int64_t gw = od->consecutive_gateway_errors >= 0 ? od->consecutive_gateway_errors
                 : od->consecutive_errors >= 0       ? od->consecutive_errors
                                                     : 0;
    set(o, "consecutive_5xx_errors", json_integer(c5 <= POOL_UNLIMITED ? c5 : POOL_UNLIMITED));
    set(o, "consecutive_gateway_errors", json_integer(gw <= POOL_UNLIMITED ? gw : POOL_UNLIMITED));
    set(o, "interval_ms", json_integer(od->interval_ms > 0 ? od->interval_ms : 10000));
    set(o, "base_ejection_time_ms",
        json_integer(od->base_ejection_time_ms > 0 ? od->base_ejection_time_ms : 30000));
    int64_t mep = od->max_ejection_percent;
    set(o, "max_ejection_percent", json_integer(mep >= 0 && mep <= 100 ? mep : 10));
    if (od->min_health_percent > 0 || od->consecutive_local_origin_failures > 0 ||
        od->split_external_local_origin_errors == 1) {
        skip(x, r, "outlierDetection minHealthPercent/local origin errors");
    }
    return o;
}

static void add_strs(json_t *o, const char *key, const cp_strs_t *s)
{
    json_t *a = json_array();
    for (uint32_t i = 0; i < s->n; i++) {
        json_array_append_new(a, jstr(s->items[i]));
    }
    set(o, key, a);
}

/* The cluster's tls, or NULL when it cannot be expressed without weakening it. */
static json_t *tls_json(ctx_t *x, const cp_resource_t *r, const cp_client_tls_t *t,
                        const char *cluster_sni, json_t *endpoints)
{
    json_t *o = json_object();
    if (t == NULL) {
        /* No tls in the DestinationRule: no key, which the proxy reads as auto mTLS (mTLS to
         * in-mesh endpoints once it has a certificate), as Istio does. */
        return o;
    }
    int mode = t->mode;
    static const char *const names[] = {"DISABLE", "DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"};
    if (mode == CP_TLS_SIMPLE || mode == CP_TLS_MUTUAL) {
        /* The proxy cannot originate TLS yet: it would refuse the whole snapshot, and sending
         * plaintext where the rule asks for TLS is no option; without the cluster its requests
         * are answered 503 and the rest of the configuration applies. */
        skip(x, r, "tls SIMPLE/MUTUAL: TLS origination is not supported (cluster left out)");
        json_decref(o);
        return NULL;
    }
    set(o, "mode", json_string(names[mode]));
    if (mode == CP_TLS_DISABLE || mode == CP_TLS_UNSET) {
        return o;
    }
    if (t->credential_name.len > 0 || t->ca_crl.len > 0 || t->insecure_skip_verify == 1) {
        skip(x, r, "tls credentialName/caCrl/insecureSkipVerify");
    }
    if (t->sni.len > 0) {
        set(o, "sni", jstr(t->sni));
    } else if (mode == CP_TLS_ISTIO_MUTUAL) {
        set(o, "sni", json_string(cluster_sni));
    }
    if (t->subject_alt_names.n > 0) {
        add_strs(o, "subject_alt_names", &t->subject_alt_names);
    } else if (mode == CP_TLS_ISTIO_MUTUAL) {
        /* Istio expects the endpoints' identities: each distinct one, in order. */
        json_t *sans = json_array();
        size_t i;
        json_t *e;
        json_array_foreach(endpoints, i, e)
        {
            json_t *id = json_object_get(e, "identity");
            bool dup = id == NULL;
            for (size_t j = 0; j < json_array_size(sans) && !dup; j++) {
                dup = json_equal(json_array_get(sans, j), id);
            }
            if (!dup) {
                json_array_append(sans, id);
            }
        }
        set(o, "subject_alt_names", sans);
    }
    if (mode == CP_TLS_MUTUAL || mode == CP_TLS_SIMPLE) {
        if (t->client_certificate.len > 0) {
            set(o, "client_certificate", jstr(t->client_certificate));
        }
        if (t->private_key.len > 0) {
            set(o, "private_key", jstr(t->private_key));
        }
        if (t->ca_certificates.len > 0) {
            set(o, "ca_certificates", jstr(t->ca_certificates));
        }
    }
    return o;
}

/* ---- endpoints ---- */

static json_t *wl_endpoint(const cp_workload_t *w, int64_t port)
{
    json_t *e = json_object();
    set(e, "address", json_string(w->address));
    set(e, "port", json_integer(port));
    set(e, "labels", wl_labels_json(w));
    char *name = wl_workload_name(w);
    set(e, "workload", json_string(name));
    wf_free(name);
    set(e, "namespace", json_string(w->ns));
    set(e, "weight", json_integer(1));
    /* A registration is a sidecar's, so its endpoints take mTLS and peer telemetry, unless it
     * says it has none with Istio's label (as a WorkloadEntry without a sidecar does). */
    const char *tls_mode = cp_workload_label(w, "security.istio.io/tlsMode");
    set(e, "in_mesh", json_boolean(tls_mode == NULL || strcmp(tls_mode, "disabled") != 0));
    char *id = wl_identity(w);
    set(e, "identity", json_string(id));
    wf_free(id);
    return e;
}

static json_t *endpoints_json(ctx_t *x, const svc_t *s, int64_t port, const cp_labels_t *sel)
{
    const cp_config_t *cfg = x->c->cfg;
    json_t *a = json_array();
    if (s->se == NULL) {
        for (size_t i = 0; i < s->nwls; i++) {
            const cp_workload_t *w = s->wls[i];
            if (wl_has_port(w, port) && (sel == NULL || wl_selected(sel, w))) {
                json_array_append_new(a, wl_endpoint(w, port));
            }
        }
        return a;
    }
    const cp_resource_t *r = s->se;
    const cp_service_entry_t *se = r->spec.se;
    const cp_port_t *sp = se_port(s, port);
    bool in_mesh = se->location == CP_LOC_MESH_INTERNAL;
    int64_t target = sp != NULL && sp->target_port > 0 ? sp->target_port : port;
    if (se->workload_selector.n > 0) {
        for (size_t i = 0; i < cfg->nworkloads; i++) {
            const cp_workload_t *w = &cfg->workloads[i];
            if (wf_str_eq_c(r->meta.namespace_, w->ns) && wl_selected(&se->workload_selector, w) &&
                (sel == NULL || wl_selected(sel, w))) {
                json_array_append_new(a, wl_endpoint(w, target));
            }
        }
        return a;
    }
    for (uint32_t i = 0; i < se->n_endpoints; i++) {
        const cp_workload_entry_t *we = &se->endpoints[i];
        if (sel != NULL && !labels_selected(sel, &we->labels)) {
            continue;
        }
        if (we->address.len == 0 ||
            (we->address.len > 7 && memcmp(we->address.p, "unix://", 7) == 0)) {
            skip(x, r, "ServiceEntry endpoint without an IP or host address");
            continue;
        }
        int64_t p = target;
        for (uint32_t k = 0; sp != NULL && k < we->n_ports; k++) {
            if (wf_str_eq(we->ports[k].key, sp->name)) {
                p = we->ports[k].port;
            }
        }
        json_t *e = json_object();
        set(e, "address", jstr(we->address));
        set(e, "port", json_integer(p));
        set(e, "labels", labels_json(&we->labels));
        set(e, "namespace", jstr(r->meta.namespace_));
        set(e, "weight", json_integer(we->weight > 0 && we->weight <= 131072 ? we->weight : 1));
        set(e, "in_mesh", json_boolean(in_mesh));
        if (in_mesh && we->service_account.len > 0) {
            set(e, "identity",
                json_sprintf("spiffe://cluster.local/ns/%.*s/sa/%.*s", (int)r->meta.namespace_.len,
                             r->meta.namespace_.p, (int)we->service_account.len,
                             we->service_account.p));
        }
        json_array_append_new(a, e);
    }
    if (se->n_endpoints == 0 && sel == NULL && s->host[0] != '*' &&
        (se->resolution == CP_RES_DNS || se->resolution == CP_RES_DNS_ROUND_ROBIN)) {
        /* DNS resolution without endpoints: the proxy resolves the host itself. */
        json_t *e = json_object();
        set(e, "address", json_string(s->host));
        set(e, "port", json_integer(target));
        set(e, "labels", json_object());
        set(e, "namespace", json_string(s->ns));
        set(e, "weight", json_integer(1));
        set(e, "in_mesh", json_boolean(in_mesh));
        json_array_append_new(a, e);
    }
    return a;
}

/* ---- clusters ---- */

static void cluster_add(ctx_t *x, json_t *out, const svc_t *s, int64_t port,
                        const cp_resource_t *dr, const cp_subset_t *sub)
{
    const char *subset = "";
    char *subset_buf = NULL;
    if (sub != NULL) {
        subset = subset_buf = wf_strndup(sub->name.p, sub->name.len);
    }
    policy_t pol = {0};
    if (dr != NULL) {
        policy_apply(&pol, dr->spec.dr->traffic_policy, port);
    }
    if (sub != NULL) {
        policy_apply(&pol, sub->traffic_policy, port);
    }
    json_t *endpoints = endpoints_json(x, s, port, sub != NULL ? &sub->labels : NULL);
    char *sni = str_fmt("outbound_.%lld_.%s_.%s", (long long)port, subset, s->host);
    json_t *tls = tls_json(x, dr, pol.tls, sni, endpoints);
    wf_free(sni);
    if (tls == NULL) {
        json_decref(endpoints);
        wf_free(subset_buf);
        return;
    }
    json_t *c = json_object();
    set(c, "name", json_sprintf("outbound|%lld|%s|%s", (long long)port, subset, s->host));
    set(c, "host", json_string(s->host));
    set(c, "port", json_integer(port));
    set(c, "subset", json_string(subset));
    set(c, "load_balancer", lb_json(x, dr, pol.lb));
    set(c, "connection_pool", pool_json(x, dr, pol.pool));
    if (pol.od != NULL) {
        set(c, "outlier_detection", outlier_json(x, dr, pol.od));
    }
    if (json_object_size(tls) > 0) {
        set(c, "tls", tls);
    } else {
        json_decref(tls);
    }
    set(c, "endpoints", endpoints);
    json_array_append_new(out, c);
    wf_free(subset_buf);
}

static void clusters_for(ctx_t *x, json_t *out, const svc_t *s)
{
    const cp_resource_t *dr = dr_for(x, s);
    for (size_t p = 0; p < s->nports; p++) {
        cluster_add(x, out, s, s->ports[p], dr, NULL);
        for (uint32_t i = 0; dr != NULL && i < dr->spec.dr->n_subsets; i++) {
            const cp_subset_t *sub = &dr->spec.dr->subsets[i];
            bool dup = false;
            for (uint32_t j = 0; j < i && !dup; j++) {
                dup = wf_str_eq(dr->spec.dr->subsets[j].name, sub->name);
            }
            if (sub->name.len == 0) {
                /* it would be the default cluster's name */
                skip(x, dr, "DestinationRule subset without a name");
            } else if (!dup) {
                cluster_add(x, out, s, s->ports[p], dr, sub);
            }
        }
    }
}

/* ---- routes ---- */

static json_t *strmatch_json(const cp_strmatch_t *m)
{
    json_t *o = json_object();
    if (m->exact.p != NULL) {
        set(o, "exact", jstr(m->exact));
    } else if (m->prefix.p != NULL) {
        set(o, "prefix", jstr(m->prefix));
    } else if (m->regex.p != NULL) {
        set(o, "regex", jstr(m->regex));
    }
    return o;
}

static json_t *match_map_json(const cp_match_map_t *m)
{
    json_t *o = json_object();
    for (uint32_t i = 0; i < m->n; i++) {
        char *k = wf_strndup(m->items[i].key.p, m->items[i].key.len);
        set(o, k, strmatch_json(&m->items[i].match));
        wf_free(k);
    }
    return o;
}

/* gateways lists name the gateway as `ns/name` or `name` relative to the resource's ns. */
static bool gateway_listed(const cp_strs_t *gws, wf_str_t res_ns, const char *ctx_gw)
{
    for (uint32_t i = 0; i < gws->n; i++) {
        wf_str_t g = gws->items[i];
        if (wf_str_eq_c(g, ctx_gw)) {
            return true;
        }
        if (memchr(g.p, '/', g.len) == NULL && !wf_str_eq_c(g, MESH_GATEWAY)) {
            char *full = str_fmt("%.*s/%.*s", (int)res_ns.len, res_ns.p, (int)g.len, g.p);
            bool eq = strcmp(full, ctx_gw) == 0;
            wf_free(full);
            if (eq) {
                return true;
            }
        }
    }
    return false;
}

/* One match entry, or NULL when it can never hold for this proxy (or cannot be expressed:
 * leaving a condition out would widen the route). */
static json_t *match_json(ctx_t *x, const cp_resource_t *r, const cp_http_match_t *m,
                          const char *ctx_gw)
{
    if (m->gateways.n > 0 && !gateway_listed(&m->gateways, r->meta.namespace_, ctx_gw)) {
        return NULL;
    }
    if (m->source_namespace.len > 0 && !wf_str_eq_c(m->source_namespace, x->ns)) {
        return NULL;
    }
    for (uint32_t i = 0; i < m->query_params.n; i++) {
        if (m->query_params.items[i].match.prefix.p != NULL) {
            skip(x, r, "queryParams prefix match (match entry left out)");
            return NULL;
        }
    }
    json_t *o = json_object();
    if (m->name.len > 0) {
        set(o, "name", jstr(m->name));
    }
    if (m->uri != NULL) {
        set(o, "uri", strmatch_json(m->uri));
    }
    if (m->scheme != NULL) {
        set(o, "scheme", strmatch_json(m->scheme));
    }
    if (m->method != NULL) {
        set(o, "method", strmatch_json(m->method));
    }
    if (m->authority != NULL) {
        set(o, "authority", strmatch_json(m->authority));
    }
    if (m->headers.n > 0) {
        set(o, "headers", match_map_json(&m->headers));
    }
    if (m->without_headers.n > 0) {
        set(o, "without_headers", match_map_json(&m->without_headers));
    }
    if (m->query_params.n > 0) {
        set(o, "query_params", match_map_json(&m->query_params));
    }
    if (m->source_labels.n > 0) {
        set(o, "source_labels", labels_json(&m->source_labels));
    }
    if (m->ignore_uri_case == 1) {
        set(o, "ignore_uri_case", json_true());
    }
    if (m->port > 0) {
        set(o, "port", json_integer(m->port));
    }
    return o;
}

/* destination {host, subset, port, cluster}: the port written, else the service's only
 * port, else the virtual host's. */
static json_t *dest_json(ctx_t *x, const cp_resource_t *r, const cp_destination_t *d,
                         int64_t vh_port)
{
    char *host = fqdn(d->host, r->meta.namespace_);
    int64_t port = d->port > 0 ? d->port : 0;
    if (port == 0) {
        const svc_t *s = svc_find(x->c->svcs, x->c->nsvcs, host);
        port = s != NULL && s->nports == 1 ? s->ports[0] : vh_port;
    }
    json_t *o = json_object();
    set(o, "host", json_string(host));
    set(o, "subset", jstr(d->subset));
    set(o, "port", json_integer(port));
    set(o, "cluster",
        json_sprintf("outbound|%lld|%.*s|%s", (long long)port, (int)d->subset.len,
                     d->subset.p != NULL ? d->subset.p : "", host));
    wf_free(host);
    return o;
}

static json_t *hdr_ops_json(const cp_hdr_ops_t *h)
{
    json_t *o = json_object();
    if (h->set.n > 0) {
        set(o, "set", labels_json(&h->set));
    }
    if (h->add.n > 0) {
        set(o, "add", labels_json(&h->add));
    }
    if (h->remove.n > 0) {
        add_strs(o, "remove", &h->remove);
    }
    return o;
}

static json_t *headers_json(const cp_headers_t *h)
{
    json_t *o = json_object();
    if (h->request != NULL) {
        set(o, "request", hdr_ops_json(h->request));
    }
    if (h->response != NULL) {
        set(o, "response", hdr_ops_json(h->response));
    }
    return o;
}

/* Envoy's retry conditions the proxy knows; Istio passes others through to Envoy. */
static bool retry_cond_known(const char *t)
{
    static const char *const known[] = {"5xx",
                                        "gateway-error",
                                        "reset",
                                        "connect-failure",
                                        "envoy-ratelimited",
                                        "retriable-4xx",
                                        "refused-stream",
                                        "retriable-status-codes",
                                        "reset-before-request",
                                        "cancelled",
                                        "deadline-exceeded",
                                        "internal",
                                        "resource-exhausted",
                                        "unavailable"};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (strcmp(t, known[i]) == 0) {
            return true;
        }
    }
    size_t n = strlen(t);
    if (n == 3 && t[0] >= '1' && t[0] <= '5' && t[1] >= '0' && t[1] <= '9' && t[2] >= '0' &&
        t[2] <= '9') {
        return true;
    }
    return false;
}

static json_t *retries_json(ctx_t *x, const cp_resource_t *r, const cp_retries_t *rt)
{
    json_t *o = json_object();
    if (rt == NULL) {
        set(o, "attempts", json_integer(2));
        set(o, "per_try_timeout_ms", json_integer(0));
        set(o, "retry_on", json_string(DEFAULT_RETRY_ON));
        return o;
    }
    int64_t att = rt->attempts;
    set(o, "attempts", json_integer(att >= 0 && att <= 1000 ? att : att > 1000 ? 1000 : 0));
    set(o, "per_try_timeout_ms",
        json_integer(rt->per_try_timeout_ms > 0 ? rt->per_try_timeout_ms : 0));
    if (rt->retry_remote_localities == 1) {
        skip(x, r, "retries.retryRemoteLocalities");
    }
    if (rt->retry_on.len == 0) {
        set(o, "retry_on", json_string(DEFAULT_RETRY_ON));
        return o;
    }
    wf_buf_t b;
    wf_buf_init(&b);
    size_t codes = 0;
    const char *p = rt->retry_on.p, *end = p + rt->retry_on.len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *te = comma != NULL ? comma : end;
        while (p < te && *p == ' ') {
            p++;
        }
        size_t tl = (size_t)(te - p);
        while (tl > 0 && p[tl - 1] == ' ') {
            tl--;
        }
        char tok[64];
        if (tl > 0 && tl < sizeof(tok)) {
            memcpy(tok, p, tl);
            tok[tl] = '\0';
            bool is_code = tl == 3 && tok[0] >= '0' && tok[0] <= '9';
            if (retry_cond_known(tok) && (!is_code || ++codes <= 16)) {
                wf_buf_printf(&b, "%s%s", b.len > 0 ? "," : "", tok);
            } else {
                skip(x, r, "retries.retryOn condition this proxy does not know");
            }
        }
        p = comma != NULL ? comma + 1 : end;
    }
    wf_buf_putc(&b, '\0');
    set(o, "retry_on", json_string(b.len > 1 ? (const char *)b.data : DEFAULT_RETRY_ON));
    wf_buf_free(&b);
    return o;
}

static json_t *fault_json(ctx_t *x, const cp_resource_t *r, const cp_fault_t *f)
{
    json_t *o = json_object();
    if (f->delay != NULL && f->delay->fixed_delay_ms >= 0) {
        json_t *d = json_object();
        double pct = f->delay->percentage >= 0 ? f->delay->percentage
                     : f->delay->percent >= 0  ? (double)f->delay->percent
                                               : 0.0;
        set(d, "fixed_delay_ms", json_integer(f->delay->fixed_delay_ms));
        set(d, "percentage", json_real(pct));
        set(o, "delay", d);
    } else if (f->delay != NULL) {
        skip(x, r, "fault.delay without fixedDelay");
    }
    if (f->abort != NULL && f->abort->http_status >= 200 && f->abort->http_status <= 599) {
        json_t *a = json_object();
        set(a, "http_status", json_integer(f->abort->http_status));
        set(a, "percentage", json_real(f->abort->percentage >= 0 ? f->abort->percentage : 0.0));
        set(o, "abort", a);
    } else if (f->abort != NULL) {
        skip(x, r, "fault.abort grpcStatus/http2Error");
    }
    if (json_object_size(o) == 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *cors_json(ctx_t *x, const cp_resource_t *r, const cp_cors_t *c)
{
    json_t *o = json_object();
    json_t *origins = json_array();
    for (uint32_t i = 0; i < c->n_allow_origins; i++) {
        json_array_append_new(origins, strmatch_json(&c->allow_origins[i]));
    }
    set(o, "allow_origins", origins);
    add_strs(o, "allow_methods", &c->allow_methods);
    add_strs(o, "allow_headers", &c->allow_headers);
    add_strs(o, "expose_headers", &c->expose_headers);
    if (c->max_age_ms > 0) {
        set(o, "max_age_ms", json_integer(c->max_age_ms));
    }
    if (c->allow_credentials == 0 || c->allow_credentials == 1) {
        set(o, "allow_credentials", json_boolean(c->allow_credentials == 1));
    }
    if (c->unmatched_preflights != CP_PREFLIGHT_UNSET) {
        skip(x, r, "corsPolicy.unmatchedPreflights");
    }
    return o;
}

/* One HTTPRoute, or NULL when it does not apply to this proxy or cannot be expressed. */
static json_t *route_json(ctx_t *x, const cp_resource_t *r, const cp_http_route_t *hr,
                          const char *ctx_gw, int64_t vh_port)
{
    if (hr->delegate != NULL) {
        skip(x, r, "http.delegate (route left out)");
        return NULL;
    }
    if (hr->n_route == 0 && hr->redirect == NULL && hr->direct_response == NULL) {
        return NULL;
    }
    json_t *o = json_object();
    set(o, "name", jstr(hr->name));
    if (hr->n_match > 0) {
        json_t *ms = json_array();
        for (uint32_t i = 0; i < hr->n_match; i++) {
            json_t *m = match_json(x, r, &hr->match[i], ctx_gw);
            if (m != NULL) {
                json_array_append_new(ms, m);
            }
        }
        if (json_array_size(ms) == 0) {
            json_decref(ms);
            json_decref(o);
            return NULL;
        }
        set(o, "match", ms);
    }
    if (hr->redirect != NULL) {
        const cp_redirect_t *rd = hr->redirect;
        if (rd->uri.len > 0 && rd->uri.p[0] != '/') {
            skip(x, r, "redirect.uri not starting with / (route left out)");
            json_decref(o);
            return NULL;
        }
        json_t *d = json_object();
        if (rd->uri.len > 0) {
            set(d, "uri", jstr(rd->uri));
        }
        if (rd->authority.len > 0) {
            set(d, "authority", jstr(rd->authority));
        }
        if (rd->scheme.len > 0) {
            set(d, "scheme", jstr(rd->scheme));
        }
        if (rd->port > 0) {
            set(d, "port", json_integer(rd->port));
        } else if (rd->derive_port == CP_DERIVE_FROM_PROTOCOL_DEFAULT) {
            set(d, "derive_port", json_string("FROM_PROTOCOL_DEFAULT"));
        } else if (rd->derive_port == CP_DERIVE_FROM_REQUEST_PORT) {
            set(d, "derive_port", json_string("FROM_REQUEST_PORT"));
        }
        int64_t code = rd->redirect_code;
        set(d, "redirect_code", json_integer(code >= 300 && code <= 399 ? code : 301));
        set(o, "redirect", d);
    } else if (hr->direct_response != NULL) {
        const cp_direct_response_t *dr = hr->direct_response;
        json_t *d = json_object();
        set(d, "status", json_integer(dr->status));
        if (dr->body != NULL && dr->body->string.p != NULL) {
            set(d, "body", jstr(dr->body->string));
        } else if (dr->body != NULL) {
            skip(x, r, "directResponse.body.bytes (body left out)");
        }
        set(o, "direct_response", d);
    } else {
        json_t *dests = json_array();
        int64_t total = 0;
        for (uint32_t i = 0; i < hr->n_route; i++) {
            const cp_route_dest_t *rd = &hr->route[i];
            json_t *d = json_object();
            set(d, "destination", dest_json(x, r, rd->destination, vh_port));
            int64_t w = rd->weight >= 0 ? rd->weight : hr->n_route == 1 ? 100 : 0;
            total += w;
            set(d, "weight", json_integer(w));
            if (rd->headers != NULL) {
                set(d, "headers", headers_json(rd->headers));
            }
            json_array_append_new(dests, d);
        }
        set(o, "route", dests);
        if (total <= 0) {
            skip(x, r, "route with a total weight of 0 (route left out)");
            json_decref(o);
            return NULL;
        }
    }
    if (hr->rewrite != NULL && hr->redirect == NULL) {
        json_t *rw = json_object();
        if (hr->rewrite->uri.p != NULL) {
            set(rw, "uri", jstr(hr->rewrite->uri));
        }
        if (hr->rewrite->authority.len > 0) {
            set(rw, "authority", jstr(hr->rewrite->authority));
        }
        if (hr->rewrite->uri_regex_rewrite != NULL) {
            skip(x, r, "rewrite.uriRegexRewrite");
        }
        set(o, "rewrite", rw);
    }
    set(o, "timeout_ms", json_integer(hr->timeout_ms > 0 ? hr->timeout_ms : 0));
    set(o, "retries", retries_json(x, r, hr->retries));
    if (hr->fault != NULL) {
        json_t *f = fault_json(x, r, hr->fault);
        if (f != NULL) {
            set(o, "fault", f);
        }
    }
    const cp_destination_t *mirror = hr->mirror;
    double mirror_pct = hr->mirror_percentage;
    if (mirror == NULL && hr->n_mirrors > 0) {
        mirror = hr->mirrors[0].destination;
        mirror_pct = hr->mirrors[0].percentage;
    }
    if (hr->n_mirrors > (hr->mirror == NULL ? 1u : 0u)) {
        skip(x, r, "http.mirrors beyond the first");
    }
    if (mirror != NULL) {
        set(o, "mirror", dest_json(x, r, mirror, vh_port));
        set(o, "mirror_percentage", json_real(mirror_pct >= 0 ? mirror_pct : 100.0));
    }
    if (hr->cors_policy != NULL) {
        set(o, "cors_policy", cors_json(x, r, hr->cors_policy));
    }
    if (hr->headers != NULL) {
        set(o, "headers", headers_json(hr->headers));
    }
    return o;
}

/* Appends the routes of vs that apply in the gateway context ctx_gw to out. */
static void vs_routes(ctx_t *x, json_t *out, const cp_resource_t *vs, const char *ctx_gw,
                      int64_t vh_port)
{
    const cp_virtual_service_t *v = vs->spec.vs;
    if (v->n_tcp > 0 || v->n_tls > 0) {
        skip(x, vs, "VirtualService tcp/tls routes");
    }
    for (uint32_t i = 0; i < v->n_http; i++) {
        json_t *rt = route_json(x, vs, &v->http[i], ctx_gw, vh_port);
        if (rt != NULL) {
            json_array_append_new(out, rt);
        }
    }
}

/* Does vs apply to sidecars (gateways absent, or listing `mesh`)? */
static bool vs_for_mesh(const cp_virtual_service_t *v)
{
    if (v->gateways.n == 0) {
        return true;
    }
    for (uint32_t i = 0; i < v->gateways.n; i++) {
        if (wf_str_eq_c(v->gateways.items[i], MESH_GATEWAY)) {
            return true;
        }
    }
    return false;
}

/* The VirtualService a sidecar of x->ns uses for host: the most specific host match among
 * those exported to it; on a tie the first in namespace/name order (Istio: the oldest). */
static const cp_resource_t *vs_for(ctx_t *x, const char *host)
{
    const cp_config_t *cfg = x->c->cfg;
    const cp_resource_t *best = NULL;
    long best_score = -1;
    size_t lo, n = ix_range(&x->c->vs_ix, host, &lo);
    for (size_t k = 0; k < n + x->c->vs_ix.nwild; k++) {
        const host_ref_t *ref = k < n ? &x->c->vs_ix.exact[lo + k] : &x->c->vs_ix.wild[k - n];
        const cp_resource_t *r = cfg->res[CP_KIND_VIRTUAL_SERVICE][ref->idx];
        const cp_virtual_service_t *v = r->spec.vs;
        if (!vs_for_mesh(v) || !exported(&v->export_to, r->meta.namespace_, x->ns)) {
            continue;
        }
        long score = host_score(ref->host, host);
        if (score > best_score) {
            best = r;
            best_score = score;
        }
    }
    return best;
}

/* ---- virtual hosts ---- */

/* A set of "port|domain" keys (open addressing), so no domain is claimed twice on one port:
 * the proxy refuses that, as Envoy does. */
typedef struct {
    char **keys;
    uint64_t *hashes;
    size_t n, cap;
} domset_t;

static bool domset_add(domset_t *d, int64_t port, const char *dom)
{
    if (2 * (d->n + 1) > d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 64;
        char **keys = wf_calloc(cap, sizeof(*keys));
        uint64_t *hashes = wf_calloc(cap, sizeof(*hashes));
        for (size_t i = 0; i < d->cap; i++) {
            if (d->keys[i] != NULL) {
                size_t j = d->hashes[i] & (cap - 1);
                while (keys[j] != NULL) {
                    j = (j + 1) & (cap - 1);
                }
                keys[j] = d->keys[i];
                hashes[j] = d->hashes[i];
            }
        }
        wf_free(d->keys);
        wf_free(d->hashes);
        d->keys = keys;
        d->hashes = hashes;
        d->cap = cap;
    }
    char *k = str_fmt("%lld|%s", (long long)port, dom);
    for (char *p = k; *p != '\0'; p++) {
        *p = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
    }
    uint64_t h = wf_hash64(k, strlen(k), 0);
    size_t j = h & (d->cap - 1);
    while (d->keys[j] != NULL) {
        if (d->hashes[j] == h && strcmp(d->keys[j], k) == 0) {
            wf_free(k);
            return false;
        }
        j = (j + 1) & (d->cap - 1);
    }
    d->keys[j] = k;
    d->hashes[j] = h;
    d->n++;
    return true;
}

static void domset_free(domset_t *d)
{
    for (size_t i = 0; i < d->cap; i++) {
        wf_free(d->keys[i]);
    }
    wf_free(d->keys);
    wf_free(d->hashes);
}

static void add_domain(domset_t *ds, json_t *doms, int64_t port, const char *name, bool with_port)
{
    if (domset_add(ds, port, name)) {
        json_array_append_new(doms, json_string(name));
    }
    if (with_port && strchr(name, '*') == NULL) {
        char *p = str_fmt("%s:%lld", name, (long long)port);
        if (domset_add(ds, port, p)) {
            json_array_append_new(doms, json_string(p));
        }
        wf_free(p);
    }
}

/* Istio's domains of a service host seen from namespace ns (docs/snapshot.md "Domains"). */
static json_t *sidecar_domains(ctx_t *x, domset_t *ds, const svc_t *s, int64_t port)
{
    json_t *doms = json_array();
    add_domain(ds, doms, port, s->host, true);
    if (s->se == NULL) {
        if (strcmp(s->ns, x->ns) == 0) {
            add_domain(ds, doms, port, s->name, true);
        }
        char *a = str_fmt("%s.%s", s->name, s->ns);
        add_domain(ds, doms, port, a, true);
        wf_free(a);
        a = str_fmt("%s.%s.svc", s->name, s->ns);
        add_domain(ds, doms, port, a, true);
        wf_free(a);
    }
    return doms;
}

static void sidecar_vhosts(ctx_t *x, json_t *out, domset_t *ds, const svc_t *s)
{
    const cp_resource_t *vs = vs_for(x, s->host);
    for (size_t p = 0; p < s->nports; p++) {
        int64_t port = s->ports[p];
        if (!port_is_http(s, port) || !sidecar_allows(x, s, port)) {
            continue;
        }
        json_t *doms = sidecar_domains(x, ds, s, port);
        if (json_array_size(doms) == 0) {
            json_decref(doms);
            continue;
        }
        json_t *vh = json_object();
        set(vh, "name", json_sprintf("%s:%lld", s->host, (long long)port));
        set(vh, "host", json_string(s->host));
        set(vh, "port", json_integer(port));
        set(vh, "domains", doms);
        if (vs != NULL) {
            json_t *routes = json_array();
            vs_routes(x, routes, vs, MESH_GATEWAY, port);
            set(vh, "routes", routes);
        }
        json_array_append_new(out, vh);
    }
}

/* The shared outbound part of x's group, as two JSON texts. */
static void compile_outbound(ctx_t *x, char **vhosts, char **clusters)
{
    json_t *vh = json_array(), *cl = json_array();
    domset_t ds = {0};
    for (size_t i = 0; i < x->c->nsvcs; i++) {
        const svc_t *s = &x->c->svcs[i];
        if (!svc_visible(x, s)) {
            continue;
        }
        sidecar_vhosts(x, vh, &ds, s);
        clusters_for(x, cl, s);
    }
    domset_free(&ds);
    *vhosts = json_dumps(vh, JSON_COMPACT);
    *clusters = json_dumps(cl, JSON_COMPACT);
    json_decref(vh);
    json_decref(cl);
}

/* The cached (or newly compiled) outbound texts of a group; they live as long as c. */
static group_t *group_find(cp_compiled_t *c, const char *ns, const cp_resource_t *sidecar)
{
    for (size_t i = 0; i < c->ngroups; i++) {
        if (c->groups[i]->sidecar == sidecar && strcmp(c->groups[i]->ns, ns) == 0) {
            return c->groups[i];
        }
    }
    return NULL;
}

static group_t *group_get(cp_compiled_t *c, const char *ns, const cp_resource_t *sidecar)
{
    pthread_mutex_lock(&c->mu);
    group_t *g = group_find(c, ns, sidecar);
    pthread_mutex_unlock(&c->mu);
    if (g != NULL) {
        return g;
    }
    /* Compiled outside the lock: two threads may both compile a new group; the loser's copy is
     * dropped, and the result is the same either way. */
    ctx_t x = {.c = c, .ns = ns, .sidecar = sidecar};
    char *vh = NULL, *cl = NULL;
    compile_outbound(&x, &vh, &cl);
    pthread_mutex_lock(&c->mu);
    c->skipped += x.skipped;
    g = group_find(c, ns, sidecar);
    if (g != NULL) {
        pthread_mutex_unlock(&c->mu);
        free(vh);
        free(cl);
        return g;
    }
    group_t *ng = wf_calloc(1, sizeof(*ng));
    ng->ns = wf_strdup(ns);
    ng->sidecar = sidecar;
    ng->vhosts = vh;
    ng->clusters = cl;
    ng->vhosts_len = strlen(vh);
    ng->clusters_len = strlen(cl);
    ng->hash = wf_hash64(cl, ng->clusters_len, wf_hash64(vh, ng->vhosts_len, 0));
    c->groups = wf_realloc(c->groups, (c->ngroups + 1) * sizeof(*c->groups));
    c->groups[c->ngroups++] = ng;
    pthread_mutex_unlock(&c->mu);
    return ng;
}

/* ---- per-proxy parts ---- */

/* The Sidecar scoping w: one selecting it in its namespace, else its namespace's default, else
 * the root namespace's default (Istio's order). Gateways are not scoped by Sidecars. */
static const cp_resource_t *sidecar_for(const cp_config_t *cfg, const cp_workload_t *w)
{
    if (w->gateway) {
        return NULL;
    }
    const cp_resource_t *ns_default = NULL, *root_default = NULL;
    for (size_t i = 0; i < cfg->n[CP_KIND_SIDECAR]; i++) {
        const cp_resource_t *r = cfg->res[CP_KIND_SIDECAR][i];
        const cp_sidecar_t *sc = r->spec.sidecar;
        if (wf_str_eq_c(r->meta.namespace_, w->ns)) {
            if (sc->workload_selector.n > 0 && wl_selected(&sc->workload_selector, w)) {
                return r;
            }
            if (sc->workload_selector.n == 0 && ns_default == NULL) {
                ns_default = r;
            }
        } else if (wf_str_eq_c(r->meta.namespace_, ROOT_NS) && sc->workload_selector.n == 0 &&
                   root_default == NULL) {
            root_default = r;
        }
    }
    return ns_default != NULL ? ns_default : root_default;
}

static const char *mtls_name(int mode)
{
    switch (mode) {
    case CP_MTLS_DISABLE:
        return "DISABLE";
    case CP_MTLS_PERMISSIVE:
        return "PERMISSIVE";
    case CP_MTLS_STRICT:
        return "STRICT";
    default:
        return "UNSET";
    }
}

/* PeerAuthentication for w: the mesh-wide policy (root namespace, no selector), overridden by
 * its namespace's, overridden by one selecting it; an UNSET mode inherits. Port-level modes
 * come from the selecting policy only (Istio requires a selector for them). */
static int peer_auth(const cp_config_t *cfg, const cp_workload_t *w,
                     const cp_peer_authentication_t **selecting)
{
    const cp_peer_authentication_t *mesh = NULL, *ns = NULL, *wl = NULL;
    for (size_t i = 0; i < cfg->n[CP_KIND_PEER_AUTHENTICATION]; i++) {
        const cp_resource_t *r = cfg->res[CP_KIND_PEER_AUTHENTICATION][i];
        const cp_peer_authentication_t *pa = r->spec.pa;
        bool in_ns = wf_str_eq_c(r->meta.namespace_, w->ns);
        if (pa->selector.n == 0) {
            if (in_ns && ns == NULL) {
                ns = pa;
            }
            if (wf_str_eq_c(r->meta.namespace_, ROOT_NS) && mesh == NULL) {
                mesh = pa;
            }
        } else if (in_ns && wl == NULL && wl_selected(&pa->selector, w)) {
            wl = pa;
        }
    }
    int mode = CP_MTLS_PERMISSIVE;
    const cp_peer_authentication_t *chain[3] = {mesh, ns, wl};
    for (int i = 0; i < 3; i++) {
        if (chain[i] != NULL && chain[i]->mtls_mode != CP_MTLS_UNSET) {
            mode = chain[i]->mtls_mode;
        }
    }
    *selecting = wl;
    return mode;
}

static json_t *proxy_json(const cp_workload_t *w)
{
    json_t *o = json_object();
    set(o, "id", json_string(w->id));
    set(o, "service", json_string(w->service));
    set(o, "namespace", json_string(w->ns));
    set(o, "version", json_string(w->version != NULL ? w->version : ""));
    char *name = wl_workload_name(w);
    set(o, "workload", json_string(name));
    wf_free(name);
    set(o, "labels", wl_labels_json(w));
    const char *sa = w->service_account && w->service_account[0] ? w->service_account : "default";
    set(o, "service_account", json_string(sa));
    char *id = wl_identity(w);
    set(o, "identity", json_string(id));
    wf_free(id);
    set(o, "cluster_id", json_string("Kubernetes"));
    set(o, "mode", json_string(w->gateway ? "gateway" : "sidecar"));
    return o;
}

static json_t *telemetry_json(const cp_compiled_t *c)
{
    json_t *o = json_object();
    double s = c->opts.sampling;
    set(o, "sampling", json_real(s < 0 ? 1.0 : s > 100.0 ? 100.0 : s));
    set(o, "collector_url", json_string(c->collector_url));
    set(o, "access_log", json_boolean(c->opts.access_log));
    set(o, "metrics", json_true());
    return o;
}

/* ---- AuthorizationPolicy (docs/snapshot.md "authorization") ---- */

/* Add the string list s at key, only when it has values: absent and empty both mean "no
 * constraint" to Istio and to the proxy. */
static void add_nonempty(json_t *o, const char *key, const cp_strs_t *s)
{
    if (s->n > 0) {
        add_strs(o, key, s);
    }
}

static json_t *ap_rule_json(const cp_ap_rule_t *ru)
{
    json_t *o = json_object();
    if (ru->n_from > 0) {
        json_t *from = json_array();
        for (uint32_t i = 0; i < ru->n_from; i++) {
            const cp_source_t *s = ru->from[i].source;
            json_t *src = json_object();
            if (s != NULL) {
                add_nonempty(src, "principals", &s->principals);
                add_nonempty(src, "not_principals", &s->not_principals);
                add_nonempty(src, "request_principals", &s->request_principals);
                add_nonempty(src, "not_request_principals", &s->not_request_principals);
                add_nonempty(src, "namespaces", &s->namespaces);
                add_nonempty(src, "not_namespaces", &s->not_namespaces);
                add_nonempty(src, "ip_blocks", &s->ip_blocks);
                add_nonempty(src, "not_ip_blocks", &s->not_ip_blocks);
                add_nonempty(src, "remote_ip_blocks", &s->remote_ip_blocks);
                add_nonempty(src, "not_remote_ip_blocks", &s->not_remote_ip_blocks);
            }
            json_t *e = json_object();
            set(e, "source", src);
            json_array_append_new(from, e);
        }
        set(o, "from", from);
    }
    if (ru->n_to > 0) {
        json_t *to = json_array();
        for (uint32_t i = 0; i < ru->n_to; i++) {
            const cp_operation_t *op = ru->to[i].operation;
            json_t *oo = json_object();
            if (op != NULL) {
                add_nonempty(oo, "hosts", &op->hosts);
                add_nonempty(oo, "not_hosts", &op->not_hosts);
                add_nonempty(oo, "ports", &op->ports);
                add_nonempty(oo, "not_ports", &op->not_ports);
                add_nonempty(oo, "methods", &op->methods);
                add_nonempty(oo, "not_methods", &op->not_methods);
                add_nonempty(oo, "paths", &op->paths);
                add_nonempty(oo, "not_paths", &op->not_paths);
            }
            json_t *e = json_object();
            set(e, "operation", oo);
            json_array_append_new(to, e);
        }
        set(o, "to", to);
    }
    if (ru->n_when > 0) {
        json_t *when = json_array();
        for (uint32_t i = 0; i < ru->n_when; i++) {
            const cp_condition_t *c = &ru->when[i];
            json_t *e = json_object();
            set(e, "key", jstr(c->key));
            add_nonempty(e, "values", &c->values);
            add_nonempty(e, "not_values", &c->not_values);
            json_array_append_new(when, e);
        }
        set(o, "when", when);
    }
    return o;
}

/*
 * The AuthorizationPolicies that apply to w, as Istio selects them: every policy of the root
 * namespace (mesh-wide; one with a selector only for the workloads it selects, in any
 * namespace) and the policies of w's namespace without a selector or whose
 * selector.matchLabels match w's labels. A gateway gets its own the same way. CUSTOM never
 * gets here: apply refuses it.
 */
static json_t *authz_policies_json(const cp_config_t *cfg, const cp_workload_t *w)
{
    json_t *pols = json_array();
    for (size_t i = 0; i < cfg->n[CP_KIND_AUTHORIZATION_POLICY]; i++) {
        const cp_resource_t *r = cfg->res[CP_KIND_AUTHORIZATION_POLICY][i];
        const cp_authorization_policy_t *ap = r->spec.ap;
        if (!wf_str_eq_c(r->meta.namespace_, ROOT_NS) && !wf_str_eq_c(r->meta.namespace_, w->ns)) {
            continue;
        }
        if (ap->selector.n > 0 && !wl_selected(&ap->selector, w)) {
            continue;
        }
        WF_ASSERT(ap->action != CP_AP_CUSTOM);
        json_t *p = json_object();
        set(p, "name",
            json_sprintf("%.*s.%.*s", (int)r->meta.namespace_.len, r->meta.namespace_.p,
                         (int)r->meta.name.len, r->meta.name.p));
        set(p, "action",
            json_string(ap->action == CP_AP_DENY    ? "DENY"
                        : ap->action == CP_AP_AUDIT ? "AUDIT"
                                                    : "ALLOW"));
        json_t *rules = json_array();
        for (uint32_t k = 0; k < ap->n_rules; k++) {
            json_array_append_new(rules, ap_rule_json(&ap->rules[k]));
        }
        set(p, "rules", rules);
        json_array_append_new(pols, p);
    }
    return pols;
}

static json_t *inbound_json(const cp_config_t *cfg, const cp_workload_t *w)
{
    const cp_peer_authentication_t *sel = NULL;
    int mode = peer_auth(cfg, w, &sel);
    json_t *o = json_object(), *ports = json_array();
    set(o, "app_address", json_string("127.0.0.1"));
    /* A gateway fronts no application: its listeners are its Gateway servers. */
    for (size_t i = 0; !w->gateway && i < w->nports; i++) {
        bool dup = false;
        for (size_t j = 0; j < i && !dup; j++) {
            dup = w->ports[j] == w->ports[i];
        }
        if (dup) {
            continue;
        }
        json_t *p = json_object();
        set(p, "port", json_integer(w->ports[i]));
        set(p, "target_port", json_integer(w->ports[i]));
        set(p, "name", w->nports == 1 ? json_string("http") : json_sprintf("http-%u", w->ports[i]));
        set(p, "protocol", json_string("HTTP"));
        int pm = CP_MTLS_UNSET;
        char key[8];
        snprintf(key, sizeof(key), "%u", w->ports[i]);
        for (uint32_t k = 0; sel != NULL && k < sel->n_port_level_mtls; k++) {
            if (wf_str_eq_c(sel->port_level_mtls[k].key, key)) {
                pm = sel->port_level_mtls[k].mode;
            }
        }
        set(p, "mtls", json_string(mtls_name(pm)));
        json_array_append_new(ports, p);
    }
    set(o, "ports", ports);
    json_t *pa = json_object();
    set(pa, "mode", json_string(mtls_name(mode)));
    set(o, "peer_authentication", pa);
    json_t *az = json_object();
    set(az, "policies", authz_policies_json(cfg, w));
    set(o, "authorization", az);
    return o;
}

/* ---- gateways ---- */

/* The more specific of two hosts when one covers the other, else NULL. */
static char *host_intersect(const char *a, const char *b)
{
    if (host_score(a, b) >= 0) {
        return wf_strdup(b);
    }
    if (host_score(b, a) >= 0) {
        return wf_strdup(a);
    }
    return NULL;
}

static bool server_is_http(const cp_server_t *s)
{
    static const char *const http[] = {"HTTP", "HTTP2", "GRPC"};
    wf_str_t p = s->port->protocol;
    for (size_t i = 0; i < sizeof(http) / sizeof(http[0]); i++) {
        if (p.len == strlen(http[i]) && strncasecmp(p.p, http[i], p.len) == 0) {
            return true;
        }
    }
    return false;
}

typedef struct {
    int64_t port;
    char *domain;
    json_t *routes;
    const cp_resource_t *last_vs;
} gw_vh_t;

typedef struct {
    gw_vh_t *v;
    size_t n;
} gw_vhs_t;

static gw_vh_t *gw_vh_get(gw_vhs_t *vs, int64_t port, const char *domain)
{
    for (size_t i = 0; i < vs->n; i++) {
        if (vs->v[i].port == port && strcasecmp(vs->v[i].domain, domain) == 0) {
            return &vs->v[i];
        }
    }
    vs->v = wf_realloc(vs->v, (vs->n + 1) * sizeof(*vs->v));
    gw_vh_t *e = &vs->v[vs->n++];
    e->port = port;
    e->domain = wf_strdup(domain);
    e->routes = json_array();
    e->last_vs = NULL;
    return e;
}

/* The host part of server host h (wf_free it), or NULL when h does not admit VirtualServices
 * of vs_ns: `ns/host` admits those of ns (`*` any, `.` the Gateway's own). */
static char *server_host(wf_str_t h, wf_str_t gw_ns, wf_str_t vs_ns)
{
    const char *slash = memchr(h.p, '/', h.len);
    wf_str_t host = h;
    if (slash != NULL) {
        wf_str_t ns = {h.p, (size_t)(slash - h.p)};
        if (!(wf_str_eq_c(ns, "*") || wf_str_eq(ns, vs_ns) ||
              (wf_str_eq_c(ns, ".") && wf_str_eq(gw_ns, vs_ns)))) {
            return NULL;
        }
        host = (wf_str_t){slash + 1, h.len - ns.len - 1};
    }
    return wf_strndup(host.p, host.len);
}

/* The routes of VirtualService vs bound to server sv of Gateway gw (named gwname). */
static void gw_bind(ctx_t *x, gw_vhs_t *vhs, const cp_resource_t *gw, const char *gwname,
                    const cp_server_t *sv, const cp_resource_t *vs)
{
    const cp_virtual_service_t *v = vs->spec.vs;
    int64_t port = sv->port->number;
    for (uint32_t h = 0; h < v->hosts.n; h++) {
        char *vh_host = fqdn(v->hosts.items[h], vs->meta.namespace_);
        for (uint32_t k = 0; k < sv->hosts.n; k++) {
            char *sh = server_host(sv->hosts.items[k], gw->meta.namespace_, vs->meta.namespace_);
            char *d = sh != NULL ? host_intersect(sh, vh_host) : NULL;
            wf_free(sh);
            if (d == NULL || !domain_ok(d)) {
                wf_free(d);
                continue;
            }
            gw_vh_t *e = gw_vh_get(vhs, port, d);
            wf_free(d);
            if (e->last_vs != vs) {
                e->last_vs = vs;
                vs_routes(x, e->routes, vs, gwname, port);
            }
        }
        wf_free(vh_host);
    }
}

/* gateway.servers and the gateway's virtual hosts for workload w. */
static void gateway_part(ctx_t *x, const cp_workload_t *w, json_t *servers, json_t *vhosts)
{
    const cp_config_t *cfg = x->c->cfg;
    gw_vhs_t vhs = {0};
    for (size_t g = 0; g < cfg->n[CP_KIND_GATEWAY]; g++) {
        const cp_resource_t *gr = cfg->res[CP_KIND_GATEWAY][g];
        const cp_gateway_t *gw = gr->spec.gw;
        if (!wl_selected(&gw->selector, w)) {
            continue;
        }
        char *gwname = str_fmt("%.*s/%.*s", (int)gr->meta.namespace_.len, gr->meta.namespace_.p,
                               (int)gr->meta.name.len, gr->meta.name.p);
        for (uint32_t s = 0; s < gw->n_servers; s++) {
            const cp_server_t *sv = &gw->servers[s];
            if (!server_is_http(sv)) {
                skip(x, gr, "Gateway server with a protocol other than HTTP");
                continue;
            }
            if (sv->tls != NULL) {
                skip(x, gr, "Gateway server tls (httpsRedirect)");
            }
            /* One server per port: the hosts of servers sharing a port are merged. */
            json_t *so = NULL;
            size_t i;
            json_t *e;
            json_array_foreach(servers, i, e)
            {
                if (json_integer_value(json_object_get(e, "port")) == sv->port->number) {
                    so = e;
                }
            }
            if (so == NULL) {
                so = json_object();
                wf_str_t name = sv->name.len > 0 ? sv->name : sv->port->name;
                set(so, "name", jstr(name));
                set(so, "port", json_integer(sv->port->number));
                set(so, "protocol", json_string("HTTP"));
                set(so, "hosts", json_array());
                json_array_append_new(servers, so);
            }
            json_t *hosts = json_object_get(so, "hosts");
            for (uint32_t h = 0; h < sv->hosts.n; h++) {
                wf_str_t sh = sv->hosts.items[h];
                const char *slash = memchr(sh.p, '/', sh.len);
                if (slash != NULL) {
                    sh = (wf_str_t){slash + 1, sh.len - (size_t)(slash + 1 - sh.p)};
                }
                json_t *hv = jstr(sh);
                bool dup = false;
                for (size_t j = 0; j < json_array_size(hosts) && !dup; j++) {
                    dup = json_equal(json_array_get(hosts, j), hv);
                }
                if (dup) {
                    json_decref(hv);
                } else {
                    json_array_append_new(hosts, hv);
                }
            }
            for (size_t v = 0; v < cfg->n[CP_KIND_VIRTUAL_SERVICE]; v++) {
                const cp_resource_t *vr = cfg->res[CP_KIND_VIRTUAL_SERVICE][v];
                const cp_virtual_service_t *vs = vr->spec.vs;
                if (gateway_listed(&vs->gateways, vr->meta.namespace_, gwname) &&
                    exported(&vs->export_to, vr->meta.namespace_, w->ns)) {
                    gw_bind(x, &vhs, gr, gwname, sv, vr);
                }
            }
        }
        wf_free(gwname);
    }
    for (size_t i = 0; i < vhs.n; i++) {
        gw_vh_t *e = &vhs.v[i];
        json_t *vh = json_object();
        bool wild = strchr(e->domain, '*') != NULL;
        set(vh, "name", json_sprintf("%s:%lld", e->domain, (long long)e->port));
        set(vh, "host", json_string(wild ? "" : e->domain));
        set(vh, "port", json_integer(e->port));
        json_t *doms = json_array();
        json_array_append_new(doms, json_string(e->domain));
        if (!wild) {
            json_array_append_new(doms, json_sprintf("%s:*", e->domain));
        }
        set(vh, "domains", doms);
        set(vh, "routes", e->routes);
        json_array_append_new(vhosts, vh);
        wf_free(e->domain);
    }
    wf_free(vhs.v);
}

/* ---- public ---- */

int cp_compile_new(const cp_config_t *cfg, const cp_compile_opts_t *o, cp_compiled_t **out)
{
    cp_compiled_t *c = wf_calloc(1, sizeof(*c));
    c->cfg = cfg;
    c->opts = *o;
    c->collector_url = wf_strdup(o->collector_url != NULL ? o->collector_url : "");
    c->opts.collector_url = c->collector_url;
    c->trust_bundle = o->trust_bundle != NULL ? wf_strdup(o->trust_bundle) : NULL;
    c->opts.trust_bundle = c->trust_bundle;
    pthread_mutex_init(&c->mu, NULL);
    ctx_t x = {.c = c, .ns = ""};
    build_services(&x);
    c->skipped += x.skipped;
    size_t ndr = cfg->n[CP_KIND_DESTINATION_RULE], nvs = cfg->n[CP_KIND_VIRTUAL_SERVICE];
    c->dr_hosts = wf_calloc(ndr + 1, sizeof(*c->dr_hosts));
    for (size_t i = 0; i < ndr; i++) {
        const cp_resource_t *r = cfg->res[CP_KIND_DESTINATION_RULE][i];
        c->dr_hosts[i] = fqdn(r->spec.dr->host, r->meta.namespace_);
        ix_add(&c->dr_ix, c->dr_hosts[i], (uint32_t)i);
    }
    ix_sort(&c->dr_ix);
    c->vs_hosts = wf_calloc(nvs + 1, sizeof(*c->vs_hosts));
    for (size_t i = 0; i < nvs; i++) {
        const cp_resource_t *r = cfg->res[CP_KIND_VIRTUAL_SERVICE][i];
        c->vs_hosts[i] = wf_calloc(r->spec.vs->hosts.n + 1, sizeof(char *));
        for (uint32_t h = 0; h < r->spec.vs->hosts.n; h++) {
            c->vs_hosts[i][h] = fqdn(r->spec.vs->hosts.items[h], r->meta.namespace_);
            ix_add(&c->vs_ix, c->vs_hosts[i][h], (uint32_t)i);
        }
    }
    ix_sort(&c->vs_ix);
    *out = c;
    return 0;
}

void cp_compile_free(cp_compiled_t *c)
{
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; i < c->nsvcs; i++) {
        wf_free(c->svcs[i].host);
        wf_free(c->svcs[i].ns);
        wf_free(c->svcs[i].name);
        wf_free(c->svcs[i].ports);
        wf_free(c->svcs[i].wls);
    }
    wf_free(c->svcs);
    for (size_t i = 0; i < c->cfg->n[CP_KIND_DESTINATION_RULE]; i++) {
        wf_free(c->dr_hosts[i]);
    }
    wf_free(c->dr_hosts);
    for (size_t i = 0; i < c->cfg->n[CP_KIND_VIRTUAL_SERVICE]; i++) {
        for (size_t h = 0; c->vs_hosts[i][h] != NULL; h++) {
            wf_free(c->vs_hosts[i][h]);
        }
        wf_free(c->vs_hosts[i]);
    }
    wf_free(c->vs_hosts);
    wf_free(c->dr_ix.exact);
    wf_free(c->dr_ix.wild);
    wf_free(c->vs_ix.exact);
    wf_free(c->vs_ix.wild);
    for (size_t i = 0; i < c->ngroups; i++) {
        wf_free(c->groups[i]->ns);
        free(c->groups[i]->vhosts); /* from json_dumps */
        free(c->groups[i]->clusters);
        wf_free(c->groups[i]->gz);
        wf_free(c->groups[i]);
    }
    wf_free(c->groups);
    pthread_mutex_destroy(&c->mu);
    wf_free(c->collector_url);
    wf_free(c->trust_bundle);
    wf_free(c);
}

uint64_t cp_compile_skipped(cp_compiled_t *c)
{
    pthread_mutex_lock(&c->mu);
    uint64_t n = c->skipped;
    pthread_mutex_unlock(&c->mu);
    return n;
}

static const cp_workload_t *workload_find(const cp_config_t *cfg, const char *id)
{
    size_t lo = 0, hi = cfg->nworkloads;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int d = strcmp(cfg->workloads[mid].id ? cfg->workloads[mid].id : "", id);
        if (d == 0) {
            return &cfg->workloads[mid];
        }
        if (d < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

/*
 * A proxy's document in parts: *prefix (wf_buf, NUL-terminated) holds everything before the
 * virtual_hosts array; the rest is *own_vhosts (a gateway's, free() it) or the group's vhosts,
 * then ,"clusters": and the group's clusters and the closing brace. *content_hash as
 * cp_compile_proxy says. Errors as cp_compile_proxy.
 */
static int compile_parts(cp_compiled_t *c, const char *proxy_id, int64_t version, wf_buf_t *prefix,
                         char **own_vhosts, group_t **group, uint64_t *content_hash)
{
    const cp_workload_t *w = proxy_id != NULL ? workload_find(c->cfg, proxy_id) : NULL;
    if (w == NULL) {
        return WF_E_NOTFOUND;
    }
    if (version < 0) {
        return WF_E_INVAL;
    }
    const cp_resource_t *sidecar = sidecar_for(c->cfg, w);
    group_t *g = group_get(c, w->ns, sidecar);
    json_t *head = json_object();
    set(head, "proxy", proxy_json(w));
    set(head, "telemetry", telemetry_json(c));
    if (c->trust_bundle != NULL) {
        set(head, "security",
            json_pack("{s:s, s:I}", "trust_bundle", c->trust_bundle, "trust_bundle_version",
                      (json_int_t)c->opts.trust_bundle_version));
    }
    set(head, "inbound", inbound_json(c->cfg, w));
    char *gw_vhosts = NULL;
    if (w->gateway) {
        ctx_t x = {.c = c, .ns = w->ns, .sidecar = NULL};
        json_t *gw = json_object(), *servers = json_array(), *vh = json_array();
        gateway_part(&x, w, servers, vh);
        if (json_array_size(servers) == 0) {
            json_decref(servers);
            json_decref(vh);
            json_decref(gw);
            json_decref(head);
            return -EAGAIN;
        }
        set(gw, "servers", servers);
        set(head, "gateway", gw);
        gw_vhosts = json_dumps(vh, JSON_COMPACT);
        json_decref(vh);
        pthread_mutex_lock(&c->mu);
        c->skipped += x.skipped;
        pthread_mutex_unlock(&c->mu);
    }
    char *head_txt = json_dumps(head, JSON_COMPACT);
    json_decref(head);
    WF_ASSERT(head_txt != NULL && head_txt[0] == '{');

    /*
     * The hash covers everything after "version", so equal content hashes equal. A sidecar's
     * is its own part's hash seeded with the group's (hashed once, not per proxy): with a
     * thousand services the shared part is megabytes, and this runs for every proxy.
     */
    size_t hl = strlen(head_txt);
    wf_buf_printf(prefix, "{\"schema\":1,\"version\":%lld,", (long long)version);
    size_t body_at = prefix->len;
    wf_buf_append(prefix, head_txt + 1, hl - 2);
    wf_buf_puts(prefix, ",\"virtual_hosts\":");
    free(head_txt);
    if (content_hash != NULL) {
        if (gw_vhosts != NULL) {
            uint64_t h = wf_hash64(prefix->data + body_at, prefix->len - body_at, 0);
            h = wf_hash64(gw_vhosts, strlen(gw_vhosts), h);
            h = wf_hash64(CLUSTERS_KEY, sizeof(CLUSTERS_KEY) - 1, h);
            h = wf_hash64(g->clusters, g->clusters_len, h);
            *content_hash = wf_hash64("}", 1, h);
        } else {
            *content_hash = wf_hash64(prefix->data + body_at, prefix->len - body_at, g->hash);
        }
    }
    *own_vhosts = gw_vhosts;
    *group = g;
    return 0;
}

int cp_compile_proxy(cp_compiled_t *c, const char *proxy_id, int64_t version, char **json,
                     size_t *len, uint64_t *content_hash)
{
    wf_buf_t b;
    wf_buf_init(&b);
    char *gw_vhosts = NULL;
    group_t *g = NULL;
    int rc = compile_parts(c, proxy_id, version, &b, &gw_vhosts, &g, content_hash);
    if (rc < 0) {
        wf_buf_free(&b);
        return rc;
    }
    /* Sized once: the shared part is megabytes, and this runs for every proxy. */
    size_t vl = gw_vhosts != NULL ? strlen(gw_vhosts) : g->vhosts_len;
    wf_buf_reserve(&b, vl + g->clusters_len + 32);
    wf_buf_append(&b, gw_vhosts != NULL ? gw_vhosts : g->vhosts, vl);
    wf_buf_puts(&b, CLUSTERS_KEY);
    wf_buf_append(&b, g->clusters, g->clusters_len);
    wf_buf_putc(&b, '}');
    wf_buf_putc(&b, '\0');
    free(gw_vhosts);
    size_t total;
    *json = (char *)wf_buf_detach(&b, &total);
    if (len != NULL) {
        *len = total - 1;
    }
    return 0;
}

/* Deflate n bytes of in through z into out (grown as needed) with flush; zlib errors are
 * programming errors here (the stream is ours and the input in memory). */
static void deflate_into(z_stream *z, const void *in, size_t n, int flush, wf_buf_t *out)
{
    const unsigned char *p = in;
    for (;;) {
        /* avail_in is 32 bits wide: feed at most 1 GiB at a time. */
        uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
        z->next_in = (Bytef *)(uintptr_t)p;
        z->avail_in = chunk;
        int f = chunk == n ? flush : Z_NO_FLUSH;
        int zr;
        do {
            size_t room = deflateBound(z, z->avail_in) + 64;
            z->next_out = wf_buf_reserve(out, room);
            z->avail_out = (uInt)room;
            uInt before = z->avail_out;
            zr = deflate(z, f);
            WF_ASSERT(zr == Z_OK || zr == Z_STREAM_END || zr == Z_BUF_ERROR);
            out->len += before - z->avail_out;
        } while (z->avail_in > 0 || (z->avail_out == 0 && zr != Z_STREAM_END));
        p += chunk;
        n -= chunk;
        if (n == 0) {
            return;
        }
    }
}

/* A deflate stream of ours: raw (window_bits < 0) or gzip-wrapped (16 + 15). */
static void deflate_open(z_stream *z, int window_bits)
{
    memset(z, 0, sizeof(*z));
    int zr = deflateInit2(z, CP_COMPILE_GZ_LEVEL, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY);
    WF_ASSERT(zr == Z_OK);
}

/* Deflate g's shared suffix unless done; like the group itself, outside the lock, the loser of
 * a race dropping its copy. Returns with g's gz fields set. */
static void group_deflate(cp_compiled_t *c, group_t *g)
{
    pthread_mutex_lock(&c->mu);
    bool done = g->gz != NULL;
    pthread_mutex_unlock(&c->mu);
    if (done) {
        return;
    }
    z_stream z;
    deflate_open(&z, -MAX_WBITS);
    wf_buf_t out;
    wf_buf_init(&out);
    deflate_into(&z, g->vhosts, g->vhosts_len, Z_NO_FLUSH, &out);
    deflate_into(&z, CLUSTERS_KEY, sizeof(CLUSTERS_KEY) - 1, Z_NO_FLUSH, &out);
    deflate_into(&z, g->clusters, g->clusters_len, Z_NO_FLUSH, &out);
    deflate_into(&z, "}", 1, Z_FINISH, &out);
    deflateEnd(&z);
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32_z(crc, (const Bytef *)g->vhosts, g->vhosts_len);
    crc = crc32_z(crc, (const Bytef *)CLUSTERS_KEY, sizeof(CLUSTERS_KEY) - 1);
    crc = crc32_z(crc, (const Bytef *)g->clusters, g->clusters_len);
    crc = crc32_z(crc, (const Bytef *)"}", 1);
    size_t n;
    unsigned char *bytes = wf_buf_detach(&out, &n);
    pthread_mutex_lock(&c->mu);
    if (g->gz == NULL) {
        g->gz = bytes;
        g->gz_len = n;
        g->sfx_crc = (uint32_t)crc;
        g->sfx_len = g->vhosts_len + sizeof(CLUSTERS_KEY) - 1 + g->clusters_len + 1;
        c->gz_groups++;
        bytes = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    wf_free(bytes);
}

int cp_compile_proxy_gz(cp_compiled_t *c, const char *proxy_id, int64_t version, char **gz,
                        size_t *len, uint64_t *content_hash)
{
    wf_buf_t prefix;
    wf_buf_init(&prefix);
    char *gw_vhosts = NULL;
    group_t *g = NULL;
    int rc = compile_parts(c, proxy_id, version, &prefix, &gw_vhosts, &g, content_hash);
    if (rc < 0) {
        wf_buf_free(&prefix);
        return rc;
    }
    wf_buf_t out;
    wf_buf_init(&out);
    z_stream z;
    if (gw_vhosts != NULL) {
        /* A gateway's routes are its own: nothing to reuse, one gzip stream of it all. */
        deflate_open(&z, 16 + MAX_WBITS);
        deflate_into(&z, prefix.data, prefix.len, Z_NO_FLUSH, &out);
        deflate_into(&z, gw_vhosts, strlen(gw_vhosts), Z_NO_FLUSH, &out);
        deflate_into(&z, CLUSTERS_KEY, sizeof(CLUSTERS_KEY) - 1, Z_NO_FLUSH, &out);
        deflate_into(&z, g->clusters, g->clusters_len, Z_NO_FLUSH, &out);
        deflate_into(&z, "}", 1, Z_FINISH, &out);
        deflateEnd(&z);
    } else {
        group_deflate(c, g);
        /* gz fields are immutable once set, and set before group_deflate returned. */
        pthread_mutex_lock(&c->mu);
        const unsigned char *sfx = g->gz;
        size_t sfx_gz_len = g->gz_len, sfx_len = g->sfx_len;
        uint32_t sfx_crc = g->sfx_crc;
        pthread_mutex_unlock(&c->mu);
        /* RFC 1952 header: deflate, no flags, no mtime, OS unknown. */
        static const unsigned char hdr[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};
        wf_buf_reserve(&out, 10 + prefix.len + sfx_gz_len + 64);
        wf_buf_append(&out, hdr, sizeof(hdr));
        deflate_open(&z, -MAX_WBITS);
        /* A full flush ends the prefix's blocks on a byte boundary, none of them final, so
         * the suffix's stream continues the member as is. */
        deflate_into(&z, prefix.data, prefix.len, Z_FULL_FLUSH, &out);
        deflateEnd(&z);
        wf_buf_append(&out, sfx, sfx_gz_len);
        uLong crc = crc32_z(crc32(0L, Z_NULL, 0), (const Bytef *)prefix.data, prefix.len);
        crc = crc32_combine(crc, sfx_crc, (z_off_t)sfx_len);
        wf_buf_put_u32le(&out, (uint32_t)crc);
        wf_buf_put_u32le(&out, (uint32_t)(prefix.len + sfx_len));
    }
    wf_buf_free(&prefix);
    free(gw_vhosts);
    *gz = (char *)wf_buf_detach(&out, len);
    return 0;
}

uint64_t cp_compile_gz_groups(cp_compiled_t *c)
{
    pthread_mutex_lock(&c->mu);
    uint64_t n = c->gz_groups;
    pthread_mutex_unlock(&c->mu);
    return n;
}
