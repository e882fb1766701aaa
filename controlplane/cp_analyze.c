/*
 * cp_analyze.c - the cross-resource checks of cp_analyze.h, each after the Kiali checker that
 * owns its code (business/checkers/...): virtualservices/{no_host,subset_presence,route,
 * no_gateway,single_host}, destinationrules/{no_dest,multi_match,*_mtls}, peerauthentications/
 * {mesh,namespace}_mtls, gateways/selector and common/workload_selector.
 *
 * The API runs an analysis per request over meshes of thousands of services, so no check scans
 * every workload or rule per item: host names are expanded to FQDNs once per resource, and
 * workloads, DestinationRules and namespaces are indexed by name (hash tables in an arena that
 * lives for one analysis); the group checks (two VirtualServices for one host, two
 * DestinationRules for one subset) compare only the resources of one host, after sorting or
 * through the index. Only wildcard DestinationRule hosts are compared with every rule.
 */
#include "cp_analyze.h"

#include "wf_alloc.h"
#include "wf_arena.h"
#include "wf_err.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DOMAIN_SUFFIX "svc.cluster.local"
#define DEFAULT_ROOT_NS "istio-system"

/* The codes weft emits, with Kiali's severity and text (kia-codes.txt). */
enum {
    K0004,
    K0201,
    K0202,
    K0203,
    K0205,
    K0206,
    K0207,
    K0208,
    K0209,
    K0302,
    K0401,
    K0501,
    K1101,
    K1102,
    K1104,
    K1105,
    K1106,
    K1107,
    K1108,
};

static const struct {
    const char *code;
    cp_level_t level;
    const char *text;
} k_codes[] = {
    [K0004] = {"KIA0004", CP_LEVEL_WARNING,
               "No matching workload found for the selector in this namespace"},
    [K0201] = {"KIA0201", CP_LEVEL_WARNING,
               "More than one DestinationRules for the same host subset combination"},
    [K0202] = {"KIA0202", CP_LEVEL_ERROR,
               "This host has no matching entry in the service registry (service, workload or "
               "service entries)"},
    [K0203] = {"KIA0203", CP_LEVEL_ERROR,
               "This subset's labels are not found in any matching host"},
    [K0205] = {"KIA0205", CP_LEVEL_ERROR,
               "PeerAuthentication enabling mTLS at mesh level is missing"},
    [K0206] = {"KIA0206", CP_LEVEL_ERROR,
               "PeerAuthentication enabling namespace-wide mTLS is missing"},
    [K0207] = {"KIA0207", CP_LEVEL_ERROR,
               "PeerAuthentication with TLS strict mode found, it should be permissive"},
    [K0208] = {"KIA0208", CP_LEVEL_ERROR,
               "PeerAuthentication enabling mTLS found, permissive mode needed"},
    [K0209] = {"KIA0209", CP_LEVEL_WARNING, "This subset has not labels"},
    [K0302] = {"KIA0302", CP_LEVEL_WARNING,
               "No matching workload found for gateway selector in this namespace"},
    [K0401] = {"KIA0401", CP_LEVEL_ERROR, "Mesh-wide Destination Rule enabling mTLS is missing"},
    [K0501] = {"KIA0501", CP_LEVEL_ERROR,
               "Destination Rule enabling namespace-wide mTLS is missing"},
    [K1101] = {"KIA1101", CP_LEVEL_ERROR,
               "DestinationWeight on route doesn't have a valid service (host not found)"},
    [K1102] = {"KIA1102", CP_LEVEL_ERROR, "VirtualService is pointing to a non-existent gateway"},
    [K1104] = {"KIA1104", CP_LEVEL_WARNING,
               "The weight is assumed to be 100 because there is only one route destination"},
    [K1105] = {"KIA1105", CP_LEVEL_WARNING,
               "This host subset combination is already referenced in another route "
               "destination"},
    [K1106] = {"KIA1106", CP_LEVEL_WARNING, "More than one Virtual Service for same host"},
    [K1107] = {"KIA1107", CP_LEVEL_WARNING, "Subset not found"},
    [K1108] = {"KIA1108", CP_LEVEL_INFO,
               "Preferred nomenclature: <gateway namespace>/<gateway name>"},
};

#define NO_ITEM SIZE_MAX

/* A hash index from names to items (open addressing); the items of one name are chained in
 * next[], in item order. Lives in the analysis' arena. */
typedef struct {
    size_t mask;
    wf_str_t *keys; /* per slot; p == NULL: free */
    size_t *first;  /* per slot: its first item */
    size_t *next;   /* per item: the next item of its name, or NO_ITEM */
} idx_t;

typedef struct {
    const cp_config_t *cfg;
    const char *root_ns;
    bool auto_mtls;
    wf_arena_t arena;
    /* Host names as FQDNs, computed once, and indexed: a check looks a host up instead of
     * scanning every workload or rule, so an analysis stays near-linear in the mesh size. */
    const char **wl_fqdn;  /* per workload: <service>.<namespace>.svc.cluster.local */
    const char **dr_fqdn;  /* per DestinationRule: spec.host */
    const char ***vs_fqdn; /* per VirtualService: spec.hosts[] */
    const char ***se_fqdn; /* per ServiceEntry: spec.hosts[] (wildcards as written) */
    idx_t ns_idx;          /* every namespace of a workload or resource */
    idx_t wl_idx;          /* workloads by wl_fqdn */
    idx_t dr_idx;          /* DestinationRules by dr_fqdn */
    size_t *dr_wild;       /* the DestinationRules whose host is a wildcard */
    size_t n_dr_wild;
    idx_t ref_idx; /* "<fqdn> <subset>" of every route destination, built on demand */
    bool ref_built;
    cp_finding_t *f;
    size_t n, cap;
} ax_t;

/* ---- strings ---- */

static char *vfmt(const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int len = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    WF_ASSERT(len >= 0);
    char *s = wf_malloc((size_t)len + 1);
    vsnprintf(s, (size_t)len + 1, fmt, ap);
    return s;
}

static char *afmt(ax_t *ax, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *afmt(ax_t *ax, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *tmp = vfmt(fmt, ap);
    va_end(ap);
    char *s = wf_arena_strndup(&ax->arena, tmp, strlen(tmp));
    wf_free(tmp);
    return s;
}

static bool str_is(wf_str_t s, const char *c)
{
    return wf_str_eq_c(s, c);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/* ---- findings ---- */

static void add(ax_t *ax, int code, int level, const cp_resource_t *r, const char *path,
                const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void add(ax_t *ax, int code, int level, const cp_resource_t *r, const char *path,
                const char *fmt, ...)
{
    if (ax->n == ax->cap) {
        ax->cap = ax->cap ? ax->cap * 2 : 16;
        ax->f = wf_realloc(ax->f, ax->cap * sizeof(*ax->f));
    }
    va_list ap;
    va_start(ap, fmt);
    char *detail = vfmt(fmt, ap);
    va_end(ap);
    cp_finding_t *f = &ax->f[ax->n++];
    f->code = k_codes[code].code;
    f->level = level < 0 ? k_codes[code].level : (cp_level_t)level;
    f->kind = r->kind;
    f->ns = wf_strndup(r->meta.namespace_.p, r->meta.namespace_.len);
    f->name = wf_strndup(r->meta.name.p, r->meta.name.len);
    f->path = wf_strdup(path);
    size_t tl = strlen(k_codes[code].text), dl = strlen(detail);
    f->message = wf_malloc(tl + 2 + dl + 1);
    memcpy(f->message, k_codes[code].text, tl);
    memcpy(f->message + tl, ": ", 2);
    memcpy(f->message + tl + 2, detail, dl + 1);
    wf_free(detail);
}

/* ---- indexes ---- */

/* Index items 0..n) by keys[i] (a key with p == NULL is left out). */
static void idx_build(ax_t *ax, idx_t *x, const wf_str_t *keys, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n) {
        cap <<= 1;
    }
    x->mask = cap - 1;
    x->keys = wf_arena_alloc(&ax->arena, cap * sizeof(*x->keys));
    memset(x->keys, 0, cap * sizeof(*x->keys));
    x->first = wf_arena_alloc(&ax->arena, cap * sizeof(*x->first));
    x->next = wf_arena_alloc(&ax->arena, (n ? n : 1) * sizeof(*x->next));
    /* Backwards, each item in front of its chain: the chains come out in item order. */
    for (size_t i = n; i-- > 0;) {
        x->next[i] = NO_ITEM;
        if (keys[i].p == NULL) {
            continue;
        }
        size_t slot = wf_hash64(keys[i].p, keys[i].len, 0) & x->mask;
        while (x->keys[slot].p != NULL && !wf_str_eq(x->keys[slot], keys[i])) {
            slot = (slot + 1) & x->mask;
        }
        if (x->keys[slot].p == NULL) {
            x->keys[slot] = keys[i];
            x->first[slot] = NO_ITEM;
        }
        x->next[i] = x->first[slot];
        x->first[slot] = i;
    }
}

/* The first item of key, or NO_ITEM. */
static size_t idx_first(const idx_t *x, wf_str_t key)
{
    size_t slot = wf_hash64(key.p, key.len, 0) & x->mask;
    while (x->keys[slot].p != NULL) {
        if (wf_str_eq(x->keys[slot], key)) {
            return x->first[slot];
        }
        slot = (slot + 1) & x->mask;
    }
    return NO_ITEM;
}

/* ---- namespaces, hosts, workloads ---- */

static bool ns_known(const ax_t *ax, wf_str_t ns)
{
    return idx_first(&ax->ns_idx, ns) != NO_ITEM;
}

/*
 * host as written in a resource of namespace ns, as an FQDN (Kiali's kubernetes.GetHost):
 * "reviews" and "*" are relative to ns, "reviews.prod" is reviews in namespace prod when prod
 * is ns or a namespace the configuration knows (else an external name), "reviews.prod.svc"
 * gets the domain; anything else stays as written.
 */
static const char *fqdn(ax_t *ax, wf_str_t host, wf_str_t ns)
{
    size_t dots = 0, first = host.len;
    for (size_t i = 0; i < host.len; i++) {
        if (host.p[i] == '.') {
            if (dots++ == 0) {
                first = i;
            }
        }
    }
    if (dots == 0) {
        return afmt(ax, "%.*s.%.*s." DOMAIN_SUFFIX, (int)host.len, host.p, (int)ns.len, ns.p);
    }
    wf_str_t second = {host.p + first + 1, host.len - first - 1};
    if (dots == 1 && (wf_str_eq(second, ns) || ns_known(ax, second))) {
        return afmt(ax, "%.*s." DOMAIN_SUFFIX, (int)host.len, host.p);
    }
    if (dots == 2 && host.len > 4 && memcmp(host.p + host.len - 4, ".svc", 4) == 0) {
        return afmt(ax, "%.*s.cluster.local", (int)host.len, host.p);
    }
    return wf_arena_strndup(&ax->arena, host.p, host.len);
}

/* Kiali's HostWithinWildcardHost: "*" holds every host, "*.suffix" the hosts ending so. */
static bool within_wildcard(const char *host, const char *wild)
{
    if (strcmp(wild, "*") == 0) {
        return true;
    }
    return wild[0] == '*' && wild[1] == '.' && ends_with(host, wild + 1);
}

/* A ServiceEntry host as an FQDN; wildcards stay as written. */
static const char *se_host(ax_t *ax, wf_str_t host, wf_str_t ns)
{
    if (memchr(host.p, '*', host.len) != NULL) {
        return wf_arena_strndup(&ax->arena, host.p, host.len);
    }
    return fqdn(ax, host, ns);
}

/* ServiceEntry i declares fq, exactly or by a wildcard. */
static bool se_declares_at(const ax_t *ax, size_t i, const char *fq)
{
    const cp_resource_t *r = ax->cfg->res[CP_KIND_SERVICE_ENTRY][i];
    for (uint32_t h = 0; h < r->spec.se->hosts.n; h++) {
        const char *s = ax->se_fqdn[i][h];
        if (strcmp(s, fq) == 0 || within_wildcard(fq, s)) {
            return true;
        }
    }
    return false;
}

static bool se_declares(const ax_t *ax, const char *fq)
{
    for (size_t i = 0; i < ax->cfg->n[CP_KIND_SERVICE_ENTRY]; i++) {
        if (se_declares_at(ax, i, fq)) {
            return true;
        }
    }
    return false;
}

static bool served_by_workload(const ax_t *ax, const char *fq)
{
    return idx_first(&ax->wl_idx, wf_str(fq)) != NO_ITEM;
}

/* A host is a known service: a workload serves it, a ServiceEntry declares it, or it is a
 * wildcard (which Kiali does not try to resolve). */
static bool host_known(ax_t *ax, const char *fq)
{
    return fq[0] == '*' || served_by_workload(ax, fq) || se_declares(ax, fq);
}

/* A workload's label, with app and version implied by its service and version. */
static bool wl_label_is(const cp_workload_t *w, wf_str_t key, wf_str_t value)
{
    for (size_t i = 0; i < w->nlabels; i++) {
        if (str_is(key, w->labels[i].name)) {
            return str_is(value, w->labels[i].value);
        }
    }
    if (str_is(key, "app")) {
        return str_is(value, w->service);
    }
    if (str_is(key, "version") && w->version[0] != '\0') {
        return str_is(value, w->version);
    }
    return false;
}

static bool wl_selected(const cp_workload_t *w, const cp_labels_t *sel)
{
    for (uint32_t i = 0; i < sel->n; i++) {
        if (!wl_label_is(w, sel->items[i].key, sel->items[i].value)) {
            return false;
        }
    }
    return true;
}

static bool labels_selected(const cp_labels_t *have, const cp_labels_t *sel)
{
    for (uint32_t i = 0; i < sel->n; i++) {
        bool ok = false;
        for (uint32_t j = 0; j < have->n && !ok; j++) {
            ok = wf_str_eq(have->items[j].key, sel->items[i].key) &&
                 wf_str_eq(have->items[j].value, sel->items[i].value);
        }
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* Some workload (of namespace ns unless ns.p is NULL) matches sel. */
static bool any_workload_selected(const ax_t *ax, wf_str_t ns, const cp_labels_t *sel)
{
    for (size_t i = 0; i < ax->cfg->nworkloads; i++) {
        const cp_workload_t *w = &ax->cfg->workloads[i];
        if ((ns.p == NULL || str_is(ns, w->ns)) && wl_selected(w, sel)) {
            return true;
        }
    }
    return false;
}

/* ---- VirtualService ---- */

/* One route destination of any of the three route lists. */
typedef struct {
    const char *list; /* "http", "tcp", "tls" */
    uint32_t route, dest, n_dest;
    const cp_destination_t *d;
    int64_t weight;
} vs_dest_t;

typedef bool (*vs_dest_cb)(ax_t *ax, const cp_resource_t *r, const vs_dest_t *d, void *arg);

/* Call cb for every destination of every route of r, in order; stop when cb returns true. */
static bool vs_each_dest(ax_t *ax, const cp_resource_t *r, vs_dest_cb cb, void *arg)
{
    const cp_virtual_service_t *vs = r->spec.vs;
    for (uint32_t i = 0; i < vs->n_http; i++) {
        for (uint32_t j = 0; j < vs->http[i].n_route; j++) {
            vs_dest_t d = {"http",
                           i,
                           j,
                           vs->http[i].n_route,
                           vs->http[i].route[j].destination,
                           vs->http[i].route[j].weight};
            if (d.d != NULL && cb(ax, r, &d, arg)) {
                return true;
            }
        }
    }
    const cp_l4_route_t *l4[2] = {vs->tcp, vs->tls};
    const uint32_t nl4[2] = {vs->n_tcp, vs->n_tls};
    for (int t = 0; t < 2; t++) {
        for (uint32_t i = 0; i < nl4[t]; i++) {
            for (uint32_t j = 0; j < l4[t][i].n_route; j++) {
                vs_dest_t d = {
                    t == 0 ? "tcp" : "tls",  i, j, l4[t][i].n_route, l4[t][i].route[j].destination,
                    l4[t][i].route[j].weight};
                if (d.d != NULL && cb(ax, r, &d, arg)) {
                    return true;
                }
            }
        }
    }
    return false;
}

static bool dr_has_subset(const ax_t *ax, size_t i, wf_str_t subset)
{
    const cp_destination_rule_t *dr = ax->cfg->res[CP_KIND_DESTINATION_RULE][i]->spec.dr;
    for (uint32_t s = 0; s < dr->n_subsets; s++) {
        if (wf_str_eq(dr->subsets[s].name, subset)) {
            return true;
        }
    }
    return false;
}

/* A DestinationRule defines subset for fq (its host, or a wildcard host holding fq). */
static bool subset_defined(ax_t *ax, const char *fq, wf_str_t subset)
{
    for (size_t i = idx_first(&ax->dr_idx, wf_str(fq)); i != NO_ITEM; i = ax->dr_idx.next[i]) {
        if (dr_has_subset(ax, i, subset)) {
            return true;
        }
    }
    for (size_t k = 0; k < ax->n_dr_wild; k++) {
        size_t i = ax->dr_wild[k];
        if (within_wildcard(fq, ax->dr_fqdn[i]) && dr_has_subset(ax, i, subset)) {
            return true;
        }
    }
    return false;
}

/* KIA1101 host not found, KIA1107 subset not found, KIA1104 weight of a lone destination. */
static bool check_vs_dest(ax_t *ax, const cp_resource_t *r, const vs_dest_t *d, void *arg)
{
    (void)arg;
    char path[160];
    if (d->d->host.len == 0) {
        return false;
    }
    const char *fq = fqdn(ax, d->d->host, r->meta.namespace_);
    if (!host_known(ax, fq)) {
        snprintf(path, sizeof(path), "spec.%s[%u].route[%u].destination.host", d->list, d->route,
                 d->dest);
        add(ax, K1101, -1, r, path, "%s is not a registered service nor declared by a ServiceEntry",
            fq);
    }
    if (d->d->subset.len > 0 && !subset_defined(ax, fq, d->d->subset)) {
        snprintf(path, sizeof(path), "spec.%s[%u].route[%u].destination.subset", d->list, d->route,
                 d->dest);
        add(ax, K1107, -1, r, path, "no DestinationRule defines subset %.*s for %s",
            (int)d->d->subset.len, d->d->subset.p, fq);
    }
    if (d->n_dest == 1 && d->weight > 0 && d->weight < 100) {
        snprintf(path, sizeof(path), "spec.%s[%u].route[%u].weight", d->list, d->route, d->dest);
        add(ax, K1104, -1, r, path, "weight %lld on the only destination of the route",
            (long long)d->weight);
    }
    return false;
}

/* KIA1105: one host and subset twice among the destinations of one route. */
static void check_vs_repeated(ax_t *ax, const cp_resource_t *r, const char *list, uint32_t route,
                              const cp_destination_t *const *dests, uint32_t n)
{
    wf_arena_mark_t mark = wf_arena_mark(&ax->arena);
    const char **fq = wf_arena_alloc(&ax->arena, (n ? n : 1) * sizeof(*fq));
    for (uint32_t i = 0; i < n; i++) {
        fq[i] = dests[i] != NULL ? fqdn(ax, dests[i]->host, r->meta.namespace_) : NULL;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (dests[i] == NULL) {
            continue;
        }
        const char *fi = fq[i];
        for (uint32_t j = 0; j < n; j++) {
            if (j == i || dests[j] == NULL || !wf_str_eq(dests[i]->subset, dests[j]->subset) ||
                strcmp(fi, fq[j]) != 0) {
                continue;
            }
            char path[160];
            snprintf(path, sizeof(path), "spec.%s[%u].route[%u].destination", list, route, i);
            add(ax, K1105, -1, r, path, "%s subset \"%.*s\" is also route[%u]", fi,
                (int)dests[i]->subset.len, dests[i]->subset.p, j);
            break;
        }
    }
    wf_arena_rewind(&ax->arena, mark);
}

static void check_vs_routes(ax_t *ax, const cp_resource_t *r)
{
    vs_each_dest(ax, r, check_vs_dest, NULL);
    const cp_virtual_service_t *vs = r->spec.vs;
    for (uint32_t i = 0; i < vs->n_http; i++) {
        uint32_t n = vs->http[i].n_route;
        const cp_destination_t **d = wf_calloc(n ? n : 1, sizeof(*d));
        for (uint32_t j = 0; j < n; j++) {
            d[j] = vs->http[i].route[j].destination;
        }
        check_vs_repeated(ax, r, "http", i, d, n);
        wf_free(d);
    }
    const cp_l4_route_t *l4[2] = {vs->tcp, vs->tls};
    const uint32_t nl4[2] = {vs->n_tcp, vs->n_tls};
    for (int t = 0; t < 2; t++) {
        for (uint32_t i = 0; i < nl4[t]; i++) {
            uint32_t n = l4[t][i].n_route;
            const cp_destination_t **d = wf_calloc(n ? n : 1, sizeof(*d));
            for (uint32_t j = 0; j < n; j++) {
                d[j] = l4[t][i].route[j].destination;
            }
            check_vs_repeated(ax, r, t == 0 ? "tcp" : "tls", i, d, n);
            wf_free(d);
        }
    }
}

/*
 * A gateway reference as namespace and name (Kiali's ParseGatewayAsHost): "ns/name",
 * "name.ns[.svc.cluster.local]" (the old form), or "name" in the VirtualService's namespace.
 */
static void gw_ref(wf_str_t ref, wf_str_t vs_ns, wf_str_t *ns, wf_str_t *name)
{
    const char *dot = memchr(ref.p, '.', ref.len);
    const char *slash = memchr(ref.p, '/', ref.len);
    *ns = vs_ns;
    *name = ref;
    if (dot != NULL) {
        name->len = (size_t)(dot - ref.p);
        const char *end = ref.p + ref.len;
        const char *dot2 = memchr(dot + 1, '.', (size_t)(end - dot - 1));
        *ns = (wf_str_t){dot + 1, (size_t)((dot2 ? dot2 : end) - dot - 1)};
    } else if (slash != NULL) {
        *ns = (wf_str_t){ref.p, (size_t)(slash - ref.p)};
        *name = (wf_str_t){slash + 1, ref.len - (size_t)(slash - ref.p) - 1};
    }
}

static bool gateway_exists(const ax_t *ax, wf_str_t ns, wf_str_t name)
{
    const cp_config_t *c = ax->cfg;
    for (size_t i = 0; i < c->n[CP_KIND_GATEWAY]; i++) {
        const cp_resource_t *g = c->res[CP_KIND_GATEWAY][i];
        if (wf_str_eq(g->meta.namespace_, ns) && wf_str_eq(g->meta.name, name)) {
            return true;
        }
    }
    return false;
}

/* KIA1102 gateway not found and KIA1108 old nomenclature, for one gateways list at where. */
static void check_gateway_list(ax_t *ax, const cp_resource_t *r, const cp_strs_t *gws,
                               const char *where)
{
    for (uint32_t i = 0; i < gws->n; i++) {
        wf_str_t g = gws->items[i], ns, name;
        if (str_is(g, "mesh")) {
            continue;
        }
        char path[160];
        snprintf(path, sizeof(path), "%s.gateways[%u]", where, i);
        if (memchr(g.p, '.', g.len) != NULL) {
            add(ax, K1108, -1, r, path, "write %.*s as <namespace>/<name>", (int)g.len, g.p);
        }
        gw_ref(g, r->meta.namespace_, &ns, &name);
        if (!gateway_exists(ax, ns, name)) {
            add(ax, K1102, -1, r, path, "no Gateway %.*s in namespace %.*s", (int)name.len, name.p,
                (int)ns.len, ns.p);
        }
    }
}

static void check_vs_gateways(ax_t *ax, const cp_resource_t *r)
{
    const cp_virtual_service_t *vs = r->spec.vs;
    check_gateway_list(ax, r, &vs->gateways, "spec");
    for (uint32_t i = 0; i < vs->n_http; i++) {
        for (uint32_t j = 0; j < vs->http[i].n_match; j++) {
            char where[64];
            snprintf(where, sizeof(where), "spec.http[%u].match[%u]", i, j);
            check_gateway_list(ax, r, &vs->http[i].match[j].gateways, where);
        }
    }
}

/* A VirtualService host split as Kiali's Host: service and namespace of a cluster-local FQDN,
 * or the whole name with an empty namespace for anything else. */
typedef struct {
    wf_str_t service, ns;
} vhost_t;

static vhost_t vhost_of(const char *fq)
{
    vhost_t h = {{fq, strlen(fq)}, {"", 0}};
    const char *dot = strchr(fq, '.');
    if (dot != NULL && ends_with(fq, "." DOMAIN_SUFFIX)) {
        const char *ns = dot + 1;
        size_t nslen = strlen(ns) - strlen("." DOMAIN_SUFFIX);
        if (nslen > 0 && memchr(ns, '.', nslen) == NULL) {
            h.service = (wf_str_t){fq, (size_t)(dot - fq)};
            h.ns = (wf_str_t){ns, nslen};
        }
    }
    return h;
}

/* The gateway scope of a VirtualService: its gateways as ns/name, or "mesh" when none. */
static bool share_gateway(const cp_resource_t *a, const cp_resource_t *b)
{
    const cp_strs_t *ga = &a->spec.vs->gateways, *gb = &b->spec.vs->gateways;
    if (ga->n == 0 || gb->n == 0) {
        return ga->n == gb->n;
    }
    for (uint32_t i = 0; i < ga->n; i++) {
        wf_str_t ans, aname;
        gw_ref(ga->items[i], a->meta.namespace_, &ans, &aname);
        for (uint32_t j = 0; j < gb->n; j++) {
            wf_str_t bns, bname;
            gw_ref(gb->items[j], b->meta.namespace_, &bns, &bname);
            bool a_mesh = str_is(ga->items[i], "mesh"), b_mesh = str_is(gb->items[j], "mesh");
            if (a_mesh || b_mesh ? a_mesh && b_mesh
                                 : wf_str_eq(ans, bns) && wf_str_eq(aname, bname)) {
                return true;
            }
        }
    }
    return false;
}

/* One host of one VirtualService, for KIA1106. */
typedef struct {
    vhost_t h;
    size_t vs;
    uint32_t host;
} vh_entry_t;

static int vh_cmp(const void *pa, const void *pb)
{
    const vh_entry_t *x = pa, *y = pb;
    int d = wf_str_cmp(x->h.ns, y->h.ns);
    if (d == 0) {
        d = wf_str_cmp(x->h.service, y->h.service);
    }
    if (d == 0) {
        d = x->vs < y->vs ? -1 : x->vs > y->vs;
    }
    return d != 0 ? d : (x->host < y->host ? -1 : x->host > y->host);
}

/* Two hosts of two VirtualServices claim the same traffic: both are flagged when the two
 * share a gateway scope. */
static void vs_clash(ax_t *ax, const vh_entry_t *x, const vh_entry_t *y)
{
    cp_resource_t *const *v = ax->cfg->res[CP_KIND_VIRTUAL_SERVICE];
    const cp_resource_t *a = v[x->vs], *b = v[y->vs];
    if (x->vs == y->vs || !share_gateway(a, b)) {
        return;
    }
    add(ax, K1106, -1, a, "spec.hosts", "%s is also claimed by %.*s/%.*s",
        ax->vs_fqdn[x->vs][x->host], (int)b->meta.namespace_.len, b->meta.namespace_.p,
        (int)b->meta.name.len, b->meta.name.p);
    add(ax, K1106, -1, b, "spec.hosts", "%s is also claimed by %.*s/%.*s",
        ax->vs_fqdn[y->vs][y->host], (int)a->meta.namespace_.len, a->meta.namespace_.p,
        (int)a->meta.name.len, a->meta.name.p);
}

/*
 * KIA1106: two VirtualServices of one gateway scope for one host (Kiali's single_host_checker),
 * both flagged. The hosts are sorted by namespace and service, so only the hosts of one
 * service, and a namespace's "*" with that namespace's others, are compared.
 */
static void check_vs_single_host(ax_t *ax)
{
    const cp_config_t *c = ax->cfg;
    size_t total = 0, n = 0;
    for (size_t i = 0; i < c->n[CP_KIND_VIRTUAL_SERVICE]; i++) {
        total += c->res[CP_KIND_VIRTUAL_SERVICE][i]->spec.vs->hosts.n;
    }
    vh_entry_t *e = wf_calloc(total ? total : 1, sizeof(*e));
    for (size_t i = 0; i < c->n[CP_KIND_VIRTUAL_SERVICE]; i++) {
        for (uint32_t k = 0; k < c->res[CP_KIND_VIRTUAL_SERVICE][i]->spec.vs->hosts.n; k++) {
            e[n++] = (vh_entry_t){vhost_of(ax->vs_fqdn[i][k]), i, k};
        }
    }
    qsort(e, n, sizeof(*e), vh_cmp);
    for (size_t ns_at = 0, ns_end; ns_at < n; ns_at = ns_end) {
        for (ns_end = ns_at + 1; ns_end < n && wf_str_eq(e[ns_end].h.ns, e[ns_at].h.ns);) {
            ns_end++;
        }
        for (size_t at = ns_at, end; at < ns_end; at = end) {
            for (end = at + 1; end < ns_end && wf_str_eq(e[end].h.service, e[at].h.service);) {
                end++;
            }
            for (size_t p = at; p < end; p++) {
                for (size_t q = p + 1; q < end; q++) {
                    vs_clash(ax, &e[p], &e[q]);
                }
            }
        }
        for (size_t p = ns_at; e[ns_at].h.ns.len > 0 && p < ns_end; p++) {
            if (!str_is(e[p].h.service, "*")) {
                continue;
            }
            for (size_t q = ns_at; q < ns_end; q++) {
                if (!str_is(e[q].h.service, "*")) {
                    vs_clash(ax, &e[p], &e[q]);
                }
            }
        }
    }
    wf_free(e);
}

/* ---- DestinationRule ---- */

/* The DR's client TLS mode when its host is exactly host (Kiali's
 * DestinationRuleHasMTLSEnabledForHost); CP_TLS_UNSET otherwise. */
static int dr_tls_for_host(const cp_resource_t *r, const char *host)
{
    const cp_destination_rule_t *dr = r->spec.dr;
    if (!str_is(dr->host, host) || dr->traffic_policy == NULL || dr->traffic_policy->tls == NULL) {
        return CP_TLS_UNSET;
    }
    return dr->traffic_policy->tls->mode;
}

static int dr_mesh_tls(const cp_resource_t *r)
{
    return dr_tls_for_host(r, "*.local");
}

/* The DR's client TLS mode when its host is *.<ns>.svc.cluster.local; CP_TLS_UNSET otherwise. */
static int dr_ns_tls(const cp_resource_t *r, wf_str_t ns)
{
    const cp_destination_rule_t *dr = r->spec.dr;
    wf_str_t h = dr->host;
    size_t sl = strlen("." DOMAIN_SUFFIX);
    if (h.len != 2 + ns.len + sl || memcmp(h.p, "*.", 2) != 0 ||
        memcmp(h.p + 2, ns.p, ns.len) != 0 ||
        memcmp(h.p + 2 + ns.len, "." DOMAIN_SUFFIX, sl) != 0 || dr->traffic_policy == NULL ||
        dr->traffic_policy->tls == NULL) {
        return CP_TLS_UNSET;
    }
    return dr->traffic_policy->tls->mode;
}

/* Collect "<fqdn> <subset>" of every route destination (KIA0203's "referenced" test). */
typedef struct {
    wf_str_t *keys;
    size_t n, cap;
} refs_t;

static bool collect_ref(ax_t *ax, const cp_resource_t *r, const vs_dest_t *d, void *arg)
{
    refs_t *refs = arg;
    if (refs->n == refs->cap) {
        refs->cap = refs->cap ? refs->cap * 2 : 64;
        refs->keys = wf_realloc(refs->keys, refs->cap * sizeof(*refs->keys));
    }
    /* A space cannot occur in a host name, so the key is unambiguous. */
    refs->keys[refs->n++] = wf_str(afmt(ax, "%s %.*s", fqdn(ax, d->d->host, r->meta.namespace_),
                                        (int)d->d->subset.len, d->d->subset.p));
    return false;
}

/* A VirtualService routes to host fq with subset. */
static bool subset_referenced(ax_t *ax, const char *fq, wf_str_t subset)
{
    if (!ax->ref_built) {
        refs_t refs = {0};
        for (size_t i = 0; i < ax->cfg->n[CP_KIND_VIRTUAL_SERVICE]; i++) {
            vs_each_dest(ax, ax->cfg->res[CP_KIND_VIRTUAL_SERVICE][i], collect_ref, &refs);
        }
        idx_build(ax, &ax->ref_idx, refs.keys, refs.n);
        wf_free(refs.keys);
        ax->ref_built = true;
    }
    wf_arena_mark_t mark = wf_arena_mark(&ax->arena);
    const char *key = afmt(ax, "%s %.*s", fq, (int)subset.len, subset.p);
    bool found = idx_first(&ax->ref_idx, wf_str(key)) != NO_ITEM;
    wf_arena_rewind(&ax->arena, mark);
    return found;
}

/* Some endpoint of host fq carries labels sel (Kiali's hasMatchingWorkload): the workloads of
 * the registered service, else the endpoints of the ServiceEntries declaring fq. */
static bool subset_has_endpoint(ax_t *ax, const char *fq, const cp_labels_t *sel)
{
    if (fq[0] == '*') {
        return true;
    }
    size_t first = idx_first(&ax->wl_idx, wf_str(fq));
    if (first != NO_ITEM) {
        for (size_t i = first; i != NO_ITEM; i = ax->wl_idx.next[i]) {
            if (wl_selected(&ax->cfg->workloads[i], sel)) {
                return true;
            }
        }
        return false;
    }
    const cp_config_t *c = ax->cfg;
    for (size_t i = 0; i < c->n[CP_KIND_SERVICE_ENTRY]; i++) {
        const cp_resource_t *r = c->res[CP_KIND_SERVICE_ENTRY][i];
        bool declares = se_declares_at(ax, i, fq);
        for (uint32_t e = 0; declares && e < r->spec.se->n_endpoints; e++) {
            if (labels_selected(&r->spec.se->endpoints[e].labels, sel)) {
                return true;
            }
        }
    }
    return false;
}

/* KIA0202 host unknown; else KIA0203 subset without endpoints, KIA0209 subset without labels. */
static void check_dr_dest(ax_t *ax, size_t at)
{
    const cp_resource_t *r = ax->cfg->res[CP_KIND_DESTINATION_RULE][at];
    const cp_destination_rule_t *dr = r->spec.dr;
    const char *fq = ax->dr_fqdn[at];
    if (!host_known(ax, fq)) {
        add(ax, K0202, -1, r, "spec.host",
            "%s is not a registered service nor declared by a ServiceEntry", fq);
        return;
    }
    bool matched = false;
    for (uint32_t i = 0; i < dr->n_subsets; i++) {
        const cp_subset_t *s = &dr->subsets[i];
        if (s->labels.n > 0 && subset_has_endpoint(ax, fq, &s->labels)) {
            matched = true;
        }
    }
    for (uint32_t i = 0; i < dr->n_subsets; i++) {
        const cp_subset_t *s = &dr->subsets[i];
        char path[64];
        snprintf(path, sizeof(path), "spec.subsets[%u]", i);
        if (s->labels.n == 0) {
            /* Kiali lowers it to Unknown once another subset does select workloads. */
            add(ax, K0209, matched ? CP_LEVEL_INFO : -1, r, path, "subset %.*s of %s",
                (int)s->name.len, s->name.p, fq);
        } else if (!subset_has_endpoint(ax, fq, &s->labels)) {
            /* An unreferenced subset breaks no traffic: Kiali's Unknown. */
            int level = subset_referenced(ax, fq, s->name) ? -1 : CP_LEVEL_INFO;
            add(ax, K0203, level, r, path, "no workload of %s carries the labels of subset %.*s",
                fq, (int)s->name.len, s->name.p);
        }
    }
}

/* A mesh-wide or namespace-wide ISTIO_MUTUAL rule, which Kiali keeps out of KIA0201. */
static bool dr_is_mtls_default(const cp_resource_t *r)
{
    return dr_mesh_tls(r) == CP_TLS_ISTIO_MUTUAL ||
           dr_ns_tls(r, r->meta.namespace_) == CP_TLS_ISTIO_MUTUAL;
}

/* Kiali's hostsOverlap. */
static bool hosts_overlap(const char *a, const char *b)
{
    return strcmp(a, b) == 0 || strcmp(a, "*") == 0 || strcmp(b, "*") == 0 ||
           within_wildcard(b, a) || within_wildcard(a, b);
}

/* The two rules share a subset name; a rule without subsets covers them all. */
static bool subsets_collide(const cp_destination_rule_t *a, const cp_destination_rule_t *b,
                            wf_str_t *which)
{
    if (a->n_subsets == 0 || b->n_subsets == 0) {
        *which = WF_STR_LIT("(all)");
        return true;
    }
    for (uint32_t i = 0; i < a->n_subsets; i++) {
        for (uint32_t j = 0; j < b->n_subsets; j++) {
            if (wf_str_eq(a->subsets[i].name, b->subsets[j].name)) {
                *which = a->subsets[i].name;
                return true;
            }
        }
    }
    return false;
}

/* Rules i and j select the same host and subset: both are flagged. */
static void dr_pair(ax_t *ax, size_t i, size_t j)
{
    cp_resource_t *const *v = ax->cfg->res[CP_KIND_DESTINATION_RULE];
    const char *fi = ax->dr_fqdn[i], *fj = ax->dr_fqdn[j];
    wf_str_t sub;
    if (dr_is_mtls_default(v[i]) || dr_is_mtls_default(v[j]) || !hosts_overlap(fi, fj) ||
        !subsets_collide(v[i]->spec.dr, v[j]->spec.dr, &sub)) {
        return;
    }
    add(ax, K0201, -1, v[i], "spec.host", "%s subset %.*s is also defined by %.*s/%.*s", fi,
        (int)sub.len, sub.p, (int)v[j]->meta.namespace_.len, v[j]->meta.namespace_.p,
        (int)v[j]->meta.name.len, v[j]->meta.name.p);
    add(ax, K0201, -1, v[j], "spec.host", "%s subset %.*s is also defined by %.*s/%.*s", fj,
        (int)sub.len, sub.p, (int)v[i]->meta.namespace_.len, v[i]->meta.namespace_.p,
        (int)v[i]->meta.name.len, v[i]->meta.name.p);
}

/* KIA0201: two DestinationRules for one host and subset (Kiali's multi_match_checker). Rules of
 * one host are found through the index; only wildcard hosts are compared with every rule. */
static void check_dr_multi_match(ax_t *ax)
{
    size_t n = ax->cfg->n[CP_KIND_DESTINATION_RULE];
    for (size_t i = 0; i < n; i++) {
        for (size_t j = ax->dr_idx.next[i]; j != NO_ITEM; j = ax->dr_idx.next[j]) {
            dr_pair(ax, i, j);
        }
    }
    for (size_t k = 0; k < ax->n_dr_wild; k++) {
        size_t w = ax->dr_wild[k];
        for (size_t j = 0; j < n; j++) {
            /* Same host: done above; two wildcards: once, from the first. */
            if (strcmp(ax->dr_fqdn[j], ax->dr_fqdn[w]) == 0 ||
                (ax->dr_fqdn[j][0] == '*' && j < w)) {
                continue;
            }
            dr_pair(ax, w, j);
        }
    }
}

/* ---- mTLS: PeerAuthentication against DestinationRule ---- */

/* The mode of a PeerAuthentication without a selector (Kiali's PeerAuthnHasMTLSEnabled: one
 * with a selector is not namespace- or mesh-wide); CP_MTLS_UNSET otherwise. */
static int pa_wide_mode(const cp_resource_t *r)
{
    return r->spec.pa->selector.n > 0 ? CP_MTLS_UNSET : r->spec.pa->mtls_mode;
}

static bool pa_enables(const cp_resource_t *r)
{
    int m = pa_wide_mode(r);
    return m == CP_MTLS_STRICT || m == CP_MTLS_PERMISSIVE;
}

static bool in_root(const ax_t *ax, const cp_resource_t *r)
{
    return str_is(r->meta.namespace_, ax->root_ns);
}

/* Some DestinationRule is an ISTIO_MUTUAL default mesh-wide, or (ns.p != NULL) for ns. */
static bool mtls_dr_exists(ax_t *ax, wf_str_t ns)
{
    const cp_config_t *c = ax->cfg;
    for (size_t i = 0; i < c->n[CP_KIND_DESTINATION_RULE]; i++) {
        const cp_resource_t *d = c->res[CP_KIND_DESTINATION_RULE][i];
        if (dr_mesh_tls(d) == CP_TLS_ISTIO_MUTUAL ||
            (ns.p != NULL && dr_ns_tls(d, ns) == CP_TLS_ISTIO_MUTUAL)) {
            return true;
        }
    }
    return false;
}

/* KIA0401 / KIA0501: a STRICT mesh or namespace policy that no ISTIO_MUTUAL rule serves
 * (only without auto mTLS, as in Kiali). */
static void check_pa_mtls(ax_t *ax, const cp_resource_t *r)
{
    if (ax->auto_mtls || pa_wide_mode(r) != CP_MTLS_STRICT) {
        return;
    }
    if (in_root(ax, r)) {
        if (!mtls_dr_exists(ax, (wf_str_t){NULL, 0})) {
            add(ax, K0401, -1, r, "spec.mtls",
                "mesh-wide STRICT mTLS, and no DestinationRule for *.local uses ISTIO_MUTUAL");
        }
    } else if (!mtls_dr_exists(ax, r->meta.namespace_)) {
        add(ax, K0501, -1, r, "spec.mtls",
            "STRICT mTLS in namespace %.*s, and no DestinationRule for *.%.*s." DOMAIN_SUFFIX
            " or *.local uses ISTIO_MUTUAL",
            (int)r->meta.namespace_.len, r->meta.namespace_.p, (int)r->meta.namespace_.len,
            r->meta.namespace_.p);
    }
}

/* The mesh-wide policies (root namespace, no selector) include a STRICT one. */
static bool mesh_pa_strict(const ax_t *ax)
{
    const cp_config_t *c = ax->cfg;
    for (size_t i = 0; i < c->n[CP_KIND_PEER_AUTHENTICATION]; i++) {
        const cp_resource_t *p = c->res[CP_KIND_PEER_AUTHENTICATION][i];
        if (in_root(ax, p) && pa_wide_mode(p) == CP_MTLS_STRICT) {
            return true;
        }
    }
    return false;
}

static bool mesh_pa_enables(const ax_t *ax)
{
    const cp_config_t *c = ax->cfg;
    for (size_t i = 0; i < c->n[CP_KIND_PEER_AUTHENTICATION]; i++) {
        const cp_resource_t *p = c->res[CP_KIND_PEER_AUTHENTICATION][i];
        if (in_root(ax, p) && pa_enables(p)) {
            return true;
        }
    }
    return false;
}

/*
 * A DestinationRule that sets mTLS for a whole namespace (*.<ns>.svc.cluster.local) or mesh
 * (*.local): KIA0207 / KIA0208 when it disables mTLS that a STRICT policy requires (traffic
 * then fails, auto mTLS or not); KIA0206 / KIA0205 when it asks for ISTIO_MUTUAL that no
 * policy enables (only without auto mTLS).
 */
static void check_dr_mtls(ax_t *ax, const cp_resource_t *r)
{
    const cp_config_t *c = ax->cfg;
    const char *path = "spec.trafficPolicy.tls.mode";
    int ns_mode = dr_ns_tls(r, r->meta.namespace_);
    if (ns_mode == CP_TLS_DISABLE) {
        bool ns_disable = false;
        for (size_t i = 0; i < c->n[CP_KIND_PEER_AUTHENTICATION]; i++) {
            const cp_resource_t *p = c->res[CP_KIND_PEER_AUTHENTICATION][i];
            if (!wf_str_eq(p->meta.namespace_, r->meta.namespace_)) {
                continue;
            }
            int m = pa_wide_mode(p);
            if (m == CP_MTLS_STRICT) {
                add(ax, K0207, -1, r, path,
                    "mTLS disabled for namespace %.*s, where PeerAuthentication %.*s is STRICT",
                    (int)r->meta.namespace_.len, r->meta.namespace_.p, (int)p->meta.name.len,
                    p->meta.name.p);
                return;
            }
            if (m == CP_MTLS_PERMISSIVE) {
                return;
            }
            ns_disable = ns_disable || m == CP_MTLS_DISABLE;
        }
        if (!ns_disable && mesh_pa_strict(ax)) {
            add(ax, K0208, -1, r, path,
                "mTLS disabled for namespace %.*s, where the mesh-wide PeerAuthentication is "
                "STRICT",
                (int)r->meta.namespace_.len, r->meta.namespace_.p);
        }
        return;
    }
    if (dr_mesh_tls(r) == CP_TLS_DISABLE) {
        if (mesh_pa_strict(ax)) {
            add(ax, K0208, -1, r, path,
                "mTLS disabled mesh-wide, where the mesh-wide PeerAuthentication is STRICT");
        }
        return;
    }
    if (ax->auto_mtls) {
        return;
    }
    if (ns_mode == CP_TLS_ISTIO_MUTUAL) {
        for (size_t i = 0; i < c->n[CP_KIND_PEER_AUTHENTICATION]; i++) {
            const cp_resource_t *p = c->res[CP_KIND_PEER_AUTHENTICATION][i];
            if (wf_str_eq(p->meta.namespace_, r->meta.namespace_) && pa_enables(p)) {
                return;
            }
        }
        if (!mesh_pa_enables(ax)) {
            add(ax, K0206, -1, r, path,
                "ISTIO_MUTUAL for namespace %.*s, and no PeerAuthentication enables mTLS there",
                (int)r->meta.namespace_.len, r->meta.namespace_.p);
        }
    } else if (dr_mesh_tls(r) == CP_TLS_ISTIO_MUTUAL && !mesh_pa_enables(ax)) {
        add(ax, K0205, -1, r, path,
            "ISTIO_MUTUAL mesh-wide, and no mesh-wide PeerAuthentication enables mTLS");
    }
}

/* ---- selectors ---- */

/* KIA0302: a Gateway's selector matches no workload (of any namespace, Kiali's default). */
static void check_gw_selector(ax_t *ax, const cp_resource_t *r)
{
    if (!any_workload_selected(ax, (wf_str_t){NULL, 0}, &r->spec.gw->selector)) {
        add(ax, K0302, -1, r, "spec.selector", "no registered workload carries these labels");
    }
}

/* KIA0004: a policy's workload selector matches no workload of its namespace. */
static void check_selector(ax_t *ax, const cp_resource_t *r, const cp_labels_t *sel,
                           const char *path)
{
    if (sel->n > 0 && !any_workload_selected(ax, r->meta.namespace_, sel)) {
        add(ax, K0004, -1, r, path, "no workload of namespace %.*s carries these labels",
            (int)r->meta.namespace_.len, r->meta.namespace_.p);
    }
}

/* ---- order ---- */

/* strcmp, but runs of digits compare as numbers: route[2] before route[10]. */
static int natcmp(const char *a, const char *b)
{
    while (*a != '\0' && *b != '\0') {
        if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
            while (*a == '0') {
                a++;
            }
            while (*b == '0') {
                b++;
            }
            size_t la = 0, lb = 0;
            while (isdigit((unsigned char)a[la])) {
                la++;
            }
            while (isdigit((unsigned char)b[lb])) {
                lb++;
            }
            if (la != lb) {
                return la < lb ? -1 : 1;
            }
            int d = memcmp(a, b, la);
            if (d != 0) {
                return d;
            }
            a += la;
            b += lb;
            continue;
        }
        if (*a != *b) {
            return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
        }
        a++;
        b++;
    }
    return (unsigned char)*a - (unsigned char)*b;
}

/* Order up to the code: two findings equal here say the same thing about the same field. */
static int finding_key_cmp(const cp_finding_t *x, const cp_finding_t *y)
{
    int d = strcmp(x->ns, y->ns);
    if (d == 0) {
        d = strcmp(cp_kind_name(x->kind), cp_kind_name(y->kind));
    }
    if (d == 0) {
        d = strcmp(x->name, y->name);
    }
    if (d == 0) {
        d = natcmp(x->path, y->path);
    }
    if (d == 0) {
        d = strcmp(x->path, y->path);
    }
    if (d == 0) {
        d = strcmp(x->code, y->code);
    }
    return d;
}

static int finding_cmp(const void *pa, const void *pb)
{
    const cp_finding_t *x = pa, *y = pb;
    int d = finding_key_cmp(x, y);
    return d != 0 ? d : strcmp(x->message, y->message);
}

static void finding_free(cp_finding_t *f)
{
    wf_free(f->ns);
    wf_free(f->name);
    wf_free(f->path);
    wf_free(f->message);
}

/* ---- entry points ---- */

int cp_analyze_opts(const cp_config_t *cfg, const cp_analyze_opts_t *o, cp_finding_t **out,
                    size_t *n)
{
    ax_t ax = {.cfg = cfg,
               .root_ns = o->root_namespace ? o->root_namespace : DEFAULT_ROOT_NS,
               .auto_mtls = o->auto_mtls};
    wf_arena_init(&ax.arena, 16384, 0);
    size_t nres = 0, nwl = cfg->nworkloads;
    for (int k = CP_KIND_NONE + 1; k < CP_KIND_COUNT; k++) {
        nres += cfg->n[k];
    }
    wf_str_t *keys = wf_calloc(nwl + nres + 1, sizeof(*keys));
    size_t nk = 0;
    for (size_t i = 0; i < nwl; i++) {
        keys[nk++] = wf_str(cfg->workloads[i].ns);
    }
    for (int k = CP_KIND_NONE + 1; k < CP_KIND_COUNT; k++) {
        for (size_t i = 0; i < cfg->n[k]; i++) {
            keys[nk++] = cfg->res[k][i]->meta.namespace_;
        }
    }
    idx_build(&ax, &ax.ns_idx, keys, nk);

    ax.wl_fqdn = wf_arena_alloc(&ax.arena, (nwl + 1) * sizeof(*ax.wl_fqdn));
    for (size_t i = 0; i < nwl; i++) {
        ax.wl_fqdn[i] =
            afmt(&ax, "%s.%s." DOMAIN_SUFFIX, cfg->workloads[i].service, cfg->workloads[i].ns);
        keys[i] = wf_str(ax.wl_fqdn[i]);
    }
    idx_build(&ax, &ax.wl_idx, keys, nwl);

    size_t ndr = cfg->n[CP_KIND_DESTINATION_RULE], nvs = cfg->n[CP_KIND_VIRTUAL_SERVICE];
    size_t nse = cfg->n[CP_KIND_SERVICE_ENTRY];
    ax.dr_fqdn = wf_arena_alloc(&ax.arena, (ndr + 1) * sizeof(*ax.dr_fqdn));
    ax.dr_wild = wf_arena_alloc(&ax.arena, (ndr + 1) * sizeof(*ax.dr_wild));
    for (size_t i = 0; i < ndr; i++) {
        const cp_resource_t *r = cfg->res[CP_KIND_DESTINATION_RULE][i];
        ax.dr_fqdn[i] = fqdn(&ax, r->spec.dr->host, r->meta.namespace_);
        keys[i] = wf_str(ax.dr_fqdn[i]);
        if (ax.dr_fqdn[i][0] == '*') {
            ax.dr_wild[ax.n_dr_wild++] = i;
        }
    }
    idx_build(&ax, &ax.dr_idx, keys, ndr);
    wf_free(keys);
    ax.vs_fqdn = wf_arena_alloc(&ax.arena, (nvs + 1) * sizeof(*ax.vs_fqdn));
    for (size_t i = 0; i < nvs; i++) {
        const cp_resource_t *r = cfg->res[CP_KIND_VIRTUAL_SERVICE][i];
        const cp_strs_t *h = &r->spec.vs->hosts;
        ax.vs_fqdn[i] = wf_arena_alloc(&ax.arena, (h->n + 1) * sizeof(char *));
        for (uint32_t k = 0; k < h->n; k++) {
            ax.vs_fqdn[i][k] = fqdn(&ax, h->items[k], r->meta.namespace_);
        }
    }
    ax.se_fqdn = wf_arena_alloc(&ax.arena, (nse + 1) * sizeof(*ax.se_fqdn));
    for (size_t i = 0; i < nse; i++) {
        const cp_resource_t *r = cfg->res[CP_KIND_SERVICE_ENTRY][i];
        const cp_strs_t *h = &r->spec.se->hosts;
        ax.se_fqdn[i] = wf_arena_alloc(&ax.arena, (h->n + 1) * sizeof(char *));
        for (uint32_t k = 0; k < h->n; k++) {
            ax.se_fqdn[i][k] = se_host(&ax, h->items[k], r->meta.namespace_);
        }
    }

    for (size_t i = 0; i < cfg->n[CP_KIND_VIRTUAL_SERVICE]; i++) {
        check_vs_routes(&ax, cfg->res[CP_KIND_VIRTUAL_SERVICE][i]);
        check_vs_gateways(&ax, cfg->res[CP_KIND_VIRTUAL_SERVICE][i]);
    }
    check_vs_single_host(&ax);
    for (size_t i = 0; i < cfg->n[CP_KIND_DESTINATION_RULE]; i++) {
        check_dr_dest(&ax, i);
        check_dr_mtls(&ax, cfg->res[CP_KIND_DESTINATION_RULE][i]);
    }
    check_dr_multi_match(&ax);
    for (size_t i = 0; i < cfg->n[CP_KIND_PEER_AUTHENTICATION]; i++) {
        const cp_resource_t *r = cfg->res[CP_KIND_PEER_AUTHENTICATION][i];
        check_selector(&ax, r, &r->spec.pa->selector, "spec.selector.matchLabels");
        check_pa_mtls(&ax, r);
    }
    for (size_t i = 0; i < cfg->n[CP_KIND_AUTHORIZATION_POLICY]; i++) {
        const cp_resource_t *r = cfg->res[CP_KIND_AUTHORIZATION_POLICY][i];
        check_selector(&ax, r, &r->spec.ap->selector, "spec.selector.matchLabels");
    }
    for (size_t i = 0; i < cfg->n[CP_KIND_SIDECAR]; i++) {
        const cp_resource_t *r = cfg->res[CP_KIND_SIDECAR][i];
        check_selector(&ax, r, &r->spec.sidecar->workload_selector, "spec.workloadSelector.labels");
    }
    for (size_t i = 0; i < cfg->n[CP_KIND_GATEWAY]; i++) {
        check_gw_selector(&ax, cfg->res[CP_KIND_GATEWAY][i]);
    }

    if (ax.n > 1) {
        qsort(ax.f, ax.n, sizeof(*ax.f), finding_cmp);
    }
    /* A resource clashing with several others is told once per field and code. */
    size_t kept = 0;
    for (size_t i = 0; i < ax.n; i++) {
        if (kept > 0 && finding_key_cmp(&ax.f[kept - 1], &ax.f[i]) == 0) {
            finding_free(&ax.f[i]);
            continue;
        }
        ax.f[kept++] = ax.f[i];
    }
    if (kept == 0) {
        wf_free(ax.f);
        ax.f = NULL;
    }
    wf_arena_free(&ax.arena);
    *out = ax.f;
    *n = kept;
    return 0;
}

int cp_analyze(const cp_config_t *cfg, cp_finding_t **out, size_t *n)
{
    cp_analyze_opts_t o = {.auto_mtls = true, .root_namespace = NULL};
    return cp_analyze_opts(cfg, &o, out, n);
}

void cp_findings_free(cp_finding_t *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        finding_free(&f[i]);
    }
    wf_free(f);
}

const char *cp_level_name(cp_level_t l)
{
    switch (l) {
    case CP_LEVEL_ERROR:
        return "error";
    case CP_LEVEL_WARNING:
        return "warning";
    default:
        return "info";
    }
}

json_t *cp_findings_json(const cp_finding_t *f, size_t n, const char *ns)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        if (ns != NULL && strcmp(ns, f[i].ns) != 0) {
            continue;
        }
        json_array_append_new(
            arr, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "code", f[i].code, "level",
                           cp_level_name(f[i].level), "kind", cp_kind_name(f[i].kind), "namespace",
                           f[i].ns, "name", f[i].name, "path", f[i].path, "message", f[i].message));
    }
    return json_pack("{s:o}", "messages", arr);
}

char *cp_findings_text(const cp_finding_t *f, size_t n)
{
    static const char *const k_level_title[] = {"Error", "Warning", "Info"};
    char *out = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&out, &len);
    WF_ASSERT(m != NULL);
    for (size_t i = 0; i < n; i++) {
        fprintf(m, "%s [%s] (%s %s/%s %s) %s\n", k_level_title[f[i].level], f[i].code,
                cp_kind_name(f[i].kind), f[i].ns, f[i].name, f[i].path, f[i].message);
    }
    fclose(m);
    /* open_memstream's buffer comes from malloc; hand back one the caller frees with wf_free. */
    char *s = wf_strndup(out, len);
    free(out);
    return s;
}
