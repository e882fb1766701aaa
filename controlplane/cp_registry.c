/*
 * cp_registry.c - the workload registry: an in-memory table of leases, written through to the
 * cp_store so a restart keeps them (see cp_registry.h).
 *
 * The table is a sorted array: a mesh has thousands of workloads, not millions, and lists are
 * served in id order; a binary search finds an entry.
 */
#include "cp_registry.h"

#include "wf_alloc.h"
#include "wf_err.h"
#include "wf_log.h"

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

struct cp_registry {
    cp_store_t *store;
    int64_t ttl_ms;
    pthread_mutex_t mu;
    cp_workload_t *wl; /* sorted by id */
    size_t n, cap;
    cp_registry_stats_t stats;
};

void cp_workload_free(cp_workload_t *w)
{
    if (w == NULL) {
        return;
    }
    wf_free(w->id);
    wf_free(w->service);
    wf_free(w->ns);
    wf_free(w->version);
    wf_free(w->address);
    wf_free(w->service_account);
    for (size_t i = 0; i < w->nlabels; i++) {
        wf_free(w->labels[i].name);
        wf_free(w->labels[i].value);
    }
    wf_free(w->labels);
    wf_free(w->ports);
    memset(w, 0, sizeof(*w));
}

void cp_workload_list_free(cp_workload_t *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cp_workload_free(&list[i]);
    }
    wf_free(list);
}

static char *dup_or_empty(const char *s)
{
    return wf_strdup(s ? s : "");
}

void cp_workload_copy(cp_workload_t *dst, const cp_workload_t *src)
{
    dst->id = dup_or_empty(src->id);
    dst->service = dup_or_empty(src->service);
    dst->ns = dup_or_empty(src->ns);
    dst->version = dup_or_empty(src->version);
    dst->address = dup_or_empty(src->address);
    dst->service_account = wf_strdup(
        src->service_account && src->service_account[0] ? src->service_account : "default");
    dst->nlabels = src->nlabels;
    dst->labels = wf_calloc(src->nlabels ? src->nlabels : 1, sizeof(*dst->labels));
    for (size_t i = 0; i < src->nlabels; i++) {
        dst->labels[i].name = dup_or_empty(src->labels[i].name);
        dst->labels[i].value = dup_or_empty(src->labels[i].value);
    }
    dst->nports = src->nports;
    dst->ports = wf_calloc(src->nports ? src->nports : 1, sizeof(*dst->ports));
    if (src->nports) {
        memcpy(dst->ports, src->ports, src->nports * sizeof(*dst->ports));
    }
    dst->admin_port = src->admin_port;
    dst->gateway = src->gateway;
    dst->registered_ms = src->registered_ms;
    dst->expires_ms = src->expires_ms;
}

const char *cp_workload_label(const cp_workload_t *w, const char *name)
{
    for (size_t i = 0; i < w->nlabels; i++) {
        if (strcmp(w->labels[i].name, name) == 0) {
            return w->labels[i].value;
        }
    }
    return NULL;
}

static const char *first_label(const cp_workload_t *w, const char *const *names)
{
    for (; *names; names++) {
        const char *v = cp_workload_label(w, *names);
        if (v != NULL && v[0] != '\0') {
            return v;
        }
    }
    return NULL;
}

const char *cp_canonical_service(const cp_workload_t *w)
{
    static const char *const names[] = {"service.istio.io/canonical-name", "app.kubernetes.io/name",
                                        "app", NULL};
    const char *v = first_label(w, names);
    return v ? v : w->service;
}

const char *cp_canonical_revision(const cp_workload_t *w)
{
    static const char *const names[] = {"service.istio.io/canonical-revision",
                                        "app.kubernetes.io/version", "version", NULL};
    const char *v = first_label(w, names);
    if (v != NULL) {
        return v;
    }
    return w->version && w->version[0] ? w->version : "latest";
}

int cp_spiffe_id(const cp_workload_t *w, char *out, size_t outlen)
{
    const char *sa = w->service_account && w->service_account[0] ? w->service_account : "default";
    return snprintf(out, outlen, "spiffe://cluster.local/ns/%s/sa/%s", w->ns, sa);
}

/* A DNS-1123 label: 1..63 of [a-z0-9-], starting and ending with an alphanumeric. */
static bool dns_label(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-') {
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

/* A Kubernetes label value: 0..63 of [A-Za-z0-9._-], alphanumeric at both ends. */
static bool label_value(const char *s)
{
    size_t n = strlen(s);
    if (n == 0) {
        return true;
    }
    if (n > 63) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && c != '.' && c != '_' && c != '-') {
            return false;
        }
        if (!alnum && (i == 0 || i == n - 1)) {
            return false;
        }
    }
    return true;
}

/* Printable, no spaces or quotes: it goes into http_sd targets and ids. */
static bool plain_token(const char *s, size_t max)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > max) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c >= 0x7f || c == '"' || c == '\\' || c == '/') {
            return false;
        }
    }
    return true;
}

/* A Kubernetes label key: an optional DNS prefix and '/', then a name; [A-Za-z0-9._/-]. */
static bool label_key(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 317) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && c != '.' && c != '_' && c != '-' && c != '/') {
            return false;
        }
    }
    return true;
}

static int validate(const cp_workload_t *w, char *err, size_t errlen)
{
    if (!dns_label(w->service)) {
        snprintf(err, errlen,
                 "service: must be a DNS-1123 label (lowercase alphanumerics and '-')");
        return WF_E_INVAL;
    }
    if (!dns_label(w->ns)) {
        snprintf(err, errlen,
                 "namespace: must be a DNS-1123 label (lowercase alphanumerics and '-')");
        return WF_E_INVAL;
    }
    if (w->version != NULL && !label_value(w->version)) {
        snprintf(err, errlen, "version: must be a label value (alphanumerics, '.', '_', '-')");
        return WF_E_INVAL;
    }
    if (!plain_token(w->address, 253)) {
        snprintf(err, errlen, "address: must be a host name or IP address");
        return WF_E_INVAL;
    }
    if (w->service_account != NULL && w->service_account[0] != '\0' &&
        !plain_token(w->service_account, 253)) {
        snprintf(err, errlen, "serviceAccount: must be a name without spaces or '/'");
        return WF_E_INVAL;
    }
    if (w->nlabels > CP_REGISTRY_MAX_LABELS) {
        snprintf(err, errlen, "labels: at most %d", CP_REGISTRY_MAX_LABELS);
        return WF_E_INVAL;
    }
    for (size_t i = 0; i < w->nlabels; i++) {
        if (!label_key(w->labels[i].name) || !label_value(w->labels[i].value)) {
            snprintf(err, errlen, "labels[%zu]: invalid label name or value", i);
            return WF_E_INVAL;
        }
    }
    if (w->nports > CP_REGISTRY_MAX_PORTS) {
        snprintf(err, errlen, "ports: at most %d", CP_REGISTRY_MAX_PORTS);
        return WF_E_INVAL;
    }
    for (size_t i = 0; i < w->nports; i++) {
        if (w->ports[i] == 0) {
            snprintf(err, errlen, "ports[%zu]: must be 1..65535", i);
            return WF_E_INVAL;
        }
    }
    return 0;
}

/* Index of id, or -(insertion point) - 1. */
static ptrdiff_t find(const cp_registry_t *r, const char *id)
{
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(r->wl[mid].id, id);
        if (c == 0) {
            return (ptrdiff_t)mid;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return -(ptrdiff_t)lo - 1;
}

/* Take ownership of *w into the table (replacing an entry with its id). */
static void insert_locked(cp_registry_t *r, cp_workload_t *w)
{
    ptrdiff_t i = find(r, w->id);
    if (i >= 0) {
        cp_workload_free(&r->wl[i]);
        r->wl[i] = *w;
        return;
    }
    size_t at = (size_t)(-i - 1);
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->wl = wf_realloc(r->wl, r->cap * sizeof(*r->wl));
    }
    memmove(&r->wl[at + 1], &r->wl[at], (r->n - at) * sizeof(*r->wl));
    r->wl[at] = *w;
    r->n++;
}

static void remove_at_locked(cp_registry_t *r, size_t i)
{
    cp_workload_free(&r->wl[i]);
    memmove(&r->wl[i], &r->wl[i + 1], (r->n - i - 1) * sizeof(*r->wl));
    r->n--;
}

static char *encode(const cp_workload_t *w)
{
    json_t *labels = json_object();
    for (size_t i = 0; i < w->nlabels; i++) {
        json_object_set_new(labels, w->labels[i].name, json_string(w->labels[i].value));
    }
    json_t *ports = json_array();
    for (size_t i = 0; i < w->nports; i++) {
        json_array_append_new(ports, json_integer(w->ports[i]));
    }
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:i, s:I, s:s}", "service",
                          w->service, "namespace", w->ns, "version", w->version, "address",
                          w->address, "serviceAccount", w->service_account, "labels", labels,
                          "ports", ports, "adminPort", (int)w->admin_port, "registeredMs",
                          (json_int_t)w->registered_ms, "mode", w->gateway ? "gateway" : "sidecar");
    WF_ASSERT(o != NULL);
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    WF_ASSERT(s != NULL);
    return s;
}

/* A stored row back into *w; WF_E_CORRUPT when it does not decode. */
static int decode(const char *id, const char *doc, int64_t expires_ms, cp_workload_t *w)
{
    json_error_t jerr;
    json_t *o = json_loads(doc, 0, &jerr);
    json_t *labels = NULL, *ports = NULL;
    const char *service, *ns, *version, *address, *sa, *mode = "sidecar";
    int admin = 0;
    json_int_t reg = 0;
    int err = WF_E_CORRUPT;

    memset(w, 0, sizeof(*w));
    if (o == NULL ||
        json_unpack(o, "{s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:i, s:I, s?s}", "service", &service,
                    "namespace", &ns, "version", &version, "address", &address, "serviceAccount",
                    &sa, "labels", &labels, "ports", &ports, "adminPort", &admin, "registeredMs",
                    &reg, "mode", &mode) != 0 ||
        !json_is_object(labels) || !json_is_array(ports)) {
        goto out;
    }
    w->id = wf_strdup(id);
    w->service = wf_strdup(service);
    w->ns = wf_strdup(ns);
    w->version = wf_strdup(version);
    w->address = wf_strdup(address);
    w->service_account = wf_strdup(sa);
    w->labels = wf_calloc(json_object_size(labels) + 1, sizeof(*w->labels));
    const char *k;
    json_t *v;
    json_object_foreach(labels, k, v)
    {
        w->labels[w->nlabels].name = wf_strdup(k);
        w->labels[w->nlabels].value = wf_strdup(json_is_string(v) ? json_string_value(v) : "");
        w->nlabels++;
    }
    w->ports = wf_calloc(json_array_size(ports) + 1, sizeof(*w->ports));
    size_t i;
    json_array_foreach(ports, i, v)
    {
        w->ports[w->nports++] = (uint16_t)json_integer_value(v);
    }
    w->admin_port = (uint16_t)admin;
    w->gateway = strcmp(mode, "gateway") == 0;
    w->registered_ms = reg;
    w->expires_ms = expires_ms;
    err = 0;
out:
    json_decref(o);
    return err;
}

typedef struct {
    cp_registry_t *r;
    int64_t now_ms;
    char **stale; /* ids to delete from the store after the load */
    size_t nstale;
} load_ctx_t;

static int load_cb(void *arg, const char *id, const char *doc, int64_t expires_ms)
{
    load_ctx_t *c = arg;
    cp_workload_t w;
    if (expires_ms <= c->now_ms || decode(id, doc, expires_ms, &w) < 0) {
        c->stale = wf_realloc(c->stale, (c->nstale + 1) * sizeof(*c->stale));
        c->stale[c->nstale++] = wf_strdup(id);
        return 0;
    }
    insert_locked(c->r, &w);
    return 0;
}

int cp_registry_open(cp_store_t *store, int64_t ttl_ms, int64_t now_ms, cp_registry_t **out)
{
    cp_registry_t *r = wf_calloc(1, sizeof(*r));
    r->store = store;
    r->ttl_ms = ttl_ms > 0 ? ttl_ms : CP_REGISTRY_DEFAULT_TTL_MS;
    pthread_mutex_init(&r->mu, NULL);
    load_ctx_t c = {.r = r, .now_ms = now_ms};
    int err = cp_store_wl_load(store, load_cb, &c);
    for (size_t i = 0; i < c.nstale; i++) {
        if (err == 0) {
            err = cp_store_wl_delete(store, c.stale[i]);
        }
        wf_free(c.stale[i]);
    }
    wf_free(c.stale);
    if (err < 0) {
        cp_registry_close(r);
        return err;
    }
    r->stats.registered = r->n;
    *out = r;
    return 0;
}

void cp_registry_close(cp_registry_t *r)
{
    if (r == NULL) {
        return;
    }
    cp_workload_list_free(r->wl, r->n);
    pthread_mutex_destroy(&r->mu);
    wf_free(r);
}

int cp_registry_register(cp_registry_t *r, const cp_workload_t *w, int64_t now_ms,
                         cp_workload_t *out, char *err, size_t errlen)
{
    int e = validate(w, err, errlen);
    if (e < 0) {
        return e;
    }
    char id[160];
    if (w->version != NULL && w->version[0] != '\0') {
        snprintf(id, sizeof(id), "%s-%s.%s", w->service, w->version, w->ns);
    } else {
        snprintf(id, sizeof(id), "%s.%s", w->service, w->ns);
    }
    cp_workload_t n = {0};
    cp_workload_copy(&n, w);
    wf_free(n.id);
    n.id = wf_strdup(id);
    n.registered_ms = now_ms;
    n.expires_ms = now_ms + r->ttl_ms;
    char *doc = encode(&n);

    pthread_mutex_lock(&r->mu);
    /* Persist first: a registration the caller saw accepted must survive a restart. */
    e = cp_store_wl_put(r->store, n.id, doc, n.expires_ms);
    if (e == 0) {
        if (out != NULL) {
            cp_workload_copy(out, &n);
        }
        insert_locked(r, &n);
        r->stats.registrations++;
        r->stats.registered = r->n;
    }
    pthread_mutex_unlock(&r->mu);
    wf_free(doc);
    if (e < 0) {
        cp_workload_free(&n);
        snprintf(err, errlen, "cannot store the registration: %s", cp_strerror(e));
    }
    return e;
}

int cp_registry_heartbeat(cp_registry_t *r, const char *id, int64_t now_ms, int64_t *expires_ms)
{
    int e = WF_E_NOTFOUND;
    pthread_mutex_lock(&r->mu);
    ptrdiff_t i = find(r, id);
    if (i >= 0 && r->wl[i].expires_ms <= now_ms) {
        /* Ran out before this heartbeat came: gone, as if the sweep had already run. */
        (void)cp_store_wl_delete(r->store, id);
        remove_at_locked(r, (size_t)i);
        r->stats.leases_expired++;
        r->stats.registered = r->n;
    } else if (i >= 0) {
        cp_workload_t *w = &r->wl[i];
        char *doc = encode(w);
        e = cp_store_wl_put(r->store, id, doc, now_ms + r->ttl_ms);
        wf_free(doc);
        if (e == 0) {
            w->expires_ms = now_ms + r->ttl_ms;
            r->stats.heartbeats++;
            if (expires_ms != NULL) {
                *expires_ms = w->expires_ms;
            }
        }
    }
    pthread_mutex_unlock(&r->mu);
    return e;
}

int cp_registry_deregister(cp_registry_t *r, const char *id)
{
    int e = WF_E_NOTFOUND;
    pthread_mutex_lock(&r->mu);
    ptrdiff_t i = find(r, id);
    if (i >= 0) {
        e = cp_store_wl_delete(r->store, id);
        if (e == 0) {
            remove_at_locked(r, (size_t)i);
            r->stats.registered = r->n;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return e;
}

static size_t expire_locked(cp_registry_t *r, int64_t now_ms)
{
    size_t removed = 0;
    for (size_t i = 0; i < r->n;) {
        if (r->wl[i].expires_ms <= now_ms) {
            WF_LOG(WF_INFO, "control", "lease expired", "workload=%s", r->wl[i].id);
            /* The row goes too; if that delete fails the row is dropped at the next open. */
            (void)cp_store_wl_delete(r->store, r->wl[i].id);
            remove_at_locked(r, i);
            removed++;
        } else {
            i++;
        }
    }
    r->stats.leases_expired += removed;
    r->stats.registered = r->n;
    return removed;
}

size_t cp_registry_expire(cp_registry_t *r, int64_t now_ms)
{
    pthread_mutex_lock(&r->mu);
    size_t removed = expire_locked(r, now_ms);
    pthread_mutex_unlock(&r->mu);
    return removed;
}

int cp_registry_list(cp_registry_t *r, int64_t now_ms, cp_workload_t **out, size_t *n)
{
    pthread_mutex_lock(&r->mu);
    expire_locked(r, now_ms);
    cp_workload_t *list = wf_calloc(r->n ? r->n : 1, sizeof(*list));
    for (size_t i = 0; i < r->n; i++) {
        cp_workload_copy(&list[i], &r->wl[i]);
    }
    *n = r->n;
    pthread_mutex_unlock(&r->mu);
    *out = list;
    return 0;
}

void cp_registry_stats(cp_registry_t *r, cp_registry_stats_t *out)
{
    pthread_mutex_lock(&r->mu);
    *out = r->stats;
    pthread_mutex_unlock(&r->mu);
}
