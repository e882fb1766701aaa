/*
 * px_metrics.c - Istio standard metrics in per-worker shards, merged at scrape time
 * (px_metrics.h).
 *
 * A shard interns each distinct label set once: an entry holds its own copy of the label
 * values and the counters of every metric of its kind (HTTP or TCP). The owner finds entries
 * through a private chained hash table; readers never touch that table, they walk the
 * append-only `published` list, whose links are written with release stores after the entry
 * is complete. Counters are atomics that only the owner writes.
 */
#include "px_metrics.h"

#include "wf_alloc.h"
#include "wf_err.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const ml_names[PX_ML_COUNT] = {
    "reporter",
    "source_workload",
    "source_canonical_service",
    "source_canonical_revision",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_cluster",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_service_name",
    "destination_service_namespace",
    "destination_cluster",
    "request_protocol",
    "response_code",
    "grpc_response_status",
    "response_flags",
    "connection_security_policy",
};

const char *px_ml_name(px_ml_t l)
{
    WF_ASSERT((unsigned)l < PX_ML_COUNT);
    return ml_names[l];
}

static const char *const rf_codes[PX_RF_COUNT_] = {
    "LH", "UH", "UT",   "LR", "UR",  "UF", "UC", "UO",  "NR",  "DI",
    "FI", "RL", "UAEX", "DC", "URX", "SI", "IH", "DPE", "UPE", "NC",
};

size_t px_rflags_format(uint32_t flags, char out[PX_RFLAGS_MAX])
{
    size_t n = 0;
    for (int i = 0; i < PX_RF_COUNT_; i++) {
        if (flags & (1u << i)) {
            size_t k = strlen(rf_codes[i]);
            if (n > 0) {
                out[n++] = ',';
            }
            memcpy(out + n, rf_codes[i], k);
            n += k;
        }
    }
    if (n == 0) {
        out[n++] = '-';
    }
    WF_ASSERT(n < PX_RFLAGS_MAX);
    out[n] = '\0';
    return n;
}

/* ---- label-set builder ---- */

static wf_str_t label_get(const px_label_t *labels, uint32_t n, const char *key)
{
    for (uint32_t i = 0; i < n; i++) {
        if (wf_str_eq_c(labels[i].key, key)) {
            return labels[i].value;
        }
    }
    return (wf_str_t){"", 0};
}

static wf_str_t first(wf_str_t a, wf_str_t b)
{
    return a.len > 0 ? a : b;
}

void px_workload_build(px_workload_t *w, const px_label_t *labels, uint32_t n_labels,
                       wf_str_t service, wf_str_t version, wf_str_t workload, wf_str_t ns,
                       wf_str_t principal, wf_str_t cluster)
{
    wf_str_t app = first(label_get(labels, n_labels, "app"),
                         label_get(labels, n_labels, "app.kubernetes.io/name"));
    wf_str_t ver = first(label_get(labels, n_labels, "version"),
                         label_get(labels, n_labels, "app.kubernetes.io/version"));
    wf_str_t cs = label_get(labels, n_labels, "service.istio.io/canonical-name");
    wf_str_t cr = label_get(labels, n_labels, "service.istio.io/canonical-revision");

    memset(w, 0, sizeof(*w));
    w->app = first(app, service);
    w->version = first(ver, version);
    w->canonical_service = first(cs, first(app, service));
    w->canonical_revision = first(cr, first(ver, first(version, WF_STR_LIT("latest"))));
    w->namespace = ns;
    w->principal = principal;
    w->cluster = cluster;
    if (workload.len > 0) {
        w->workload = workload;
    } else if (service.len > 0 && w->version.len > 0) {
        int k = snprintf(w->workload_buf, sizeof(w->workload_buf), "%.*s-%.*s", (int)service.len,
                         service.p, (int)w->version.len, w->version.p);
        w->workload =
            (wf_str_t){w->workload_buf,
                       k < (int)sizeof(w->workload_buf) ? (size_t)k : sizeof(w->workload_buf) - 1};
    } else {
        w->workload = service;
    }
}

void px_workload_from_proxy(px_workload_t *w, const px_proxy_info_t *pi)
{
    px_workload_build(w, pi->labels, pi->n_labels, pi->service, pi->version, pi->workload,
                      pi->namespace, pi->identity, pi->cluster_id);
}

void px_workload_from_endpoint(px_workload_t *w, const px_endpoint_t *ep, wf_str_t service)
{
    px_workload_build(w, ep->labels, ep->n_labels, service, WF_STR_LIT(""), ep->workload,
                      ep->namespace, ep->identity, WF_STR_LIT(""));
}

/* ---- peer metadata ---- */

static const char *const peer_keys[] = {"wl", "ns", "app", "ver", "cs", "cr", "cl"};
enum { PEER_NKEYS = sizeof(peer_keys) / sizeof(peer_keys[0]) };

static wf_str_t *peer_field(px_workload_t *w, int k)
{
    wf_str_t *f[PEER_NKEYS] = {&w->workload, &w->namespace,         &w->app,
                               &w->version,  &w->canonical_service, &w->canonical_revision,
                               &w->cluster};
    return f[k];
}

static bool peer_plain(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '~' || c == ':' || c == '/' || c == '@' || c == '+' || c == '-';
}

void px_peer_format(const px_workload_t *w, wf_buf_t *out)
{
    static const char hexd[] = "0123456789ABCDEF";
    px_workload_t *mw = (px_workload_t *)w; /* peer_field only reads through it here */
    for (int k = 0; k < PEER_NKEYS; k++) {
        wf_str_t v = *peer_field(mw, k);
        if (k > 0) {
            wf_buf_putc(out, ';');
        }
        wf_buf_puts(out, peer_keys[k]);
        wf_buf_putc(out, '=');
        for (size_t i = 0; i < v.len; i++) {
            unsigned char c = (unsigned char)v.p[i];
            if (peer_plain(c)) {
                wf_buf_putc(out, c);
            } else {
                char e[3] = {'%', hexd[c >> 4], hexd[c & 15]};
                wf_buf_append(out, e, 3);
            }
        }
    }
}

int px_peer_parse(const char *p, size_t len, px_workload_t *w, char *store, size_t cap)
{
    if (len > PX_PEER_MAX || len > cap) {
        return WF_E_LIMIT;
    }
    memset(w, 0, sizeof(*w));
    unsigned seen = 0;
    size_t o = 0, i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && p[j] != ';') {
            j++;
        }
        const char *eq = memchr(p + i, '=', j - i);
        if (eq == NULL) {
            return WF_E_INVAL;
        }
        size_t kl = (size_t)(eq - (p + i));
        int key = -1;
        for (int k = 0; k < PEER_NKEYS; k++) {
            if (strlen(peer_keys[k]) == kl && memcmp(peer_keys[k], p + i, kl) == 0) {
                key = k;
            }
        }
        size_t start = o;
        for (size_t x = (size_t)(eq - p) + 1; x < j; x++) {
            char c = p[x];
            if (c == '%') {
                int hi = x + 2 < j ? wf_hex_digit((unsigned char)p[x + 1]) : -1,
                    lo = x + 2 < j ? wf_hex_digit((unsigned char)p[x + 2]) : -1;
                if (hi < 0 || lo < 0) {
                    return WF_E_INVAL;
                }
                c = (char)(hi << 4 | lo);
                x += 2;
            } else if (!peer_plain((unsigned char)c)) {
                return WF_E_INVAL;
            }
            store[o++] = c;
        }
        if (key >= 0) {
            if (seen & (1u << key)) {
                return WF_E_INVAL;
            }
            seen |= 1u << key;
            *peer_field(w, key) = (wf_str_t){store + start, o - start};
        } else {
            o = start; /* an unknown key: skipped */
        }
        i = j + 1;
    }
    return 0;
}

static const wf_str_t unknown = {"unknown", 7};

static wf_str_t or_unknown(wf_str_t s)
{
    return s.len > 0 ? s : unknown;
}

/* Copy into l->scratch; returns the slice, or `unknown` when scratch is full. */
static wf_str_t scratch_printf(px_labels_t *l, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static wf_str_t scratch_printf(px_labels_t *l, size_t *used, const char *fmt, ...)
{
    va_list ap;
    size_t room = sizeof(l->scratch) - *used;
    va_start(ap, fmt);
    int n = vsnprintf(l->scratch + *used, room, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= room) {
        return unknown;
    }
    wf_str_t s = {l->scratch + *used, (size_t)n};
    *used += (size_t)n + 1;
    return s;
}

/* `<svc>.<ns>.svc.cluster.local` in scratch, or `unknown` when it does not fit. */
static wf_str_t scratch_fqdn(px_labels_t *l, size_t *used, wf_str_t svc, wf_str_t ns)
{
    static const char tail[] = ".svc.cluster.local";
    size_t n = svc.len + 1 + ns.len + sizeof(tail) - 1;
    if (sizeof(l->scratch) - *used < n + 1) {
        return unknown;
    }
    char *d = l->scratch + *used, *p = d;
    memcpy(p, svc.p, svc.len);
    p += svc.len;
    *p++ = '.';
    memcpy(p, ns.p, ns.len);
    p += ns.len;
    memcpy(p, tail, sizeof(tail)); /* with the NUL */
    *used += n + 1;
    return (wf_str_t){d, n};
}

/* Decimal digits of v into buf (>= 20 bytes), right-aligned; returns the first digit. */
static char *u64_digits(char *end, uint64_t v)
{
    char *p = end;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return p;
}

static wf_str_t scratch_u32(px_labels_t *l, size_t *used, uint32_t v)
{
    char tmp[24];
    char *p = u64_digits(tmp + sizeof(tmp), v);
    size_t n = (size_t)(tmp + sizeof(tmp) - p);
    if (sizeof(l->scratch) - *used < n + 1) {
        return unknown;
    }
    char *dst = l->scratch + *used;
    memcpy(dst, p, n);
    dst[n] = '\0';
    *used += n + 1;
    return (wf_str_t){dst, n};
}

void px_labels_build(px_labels_t *l, const px_labels_in_t *in)
{
    size_t used = 0;
    wf_str_t *v = l->v;
    const px_workload_t *s = in->source, *d = in->destination;

    v[PX_ML_REPORTER] =
        in->reporter == PX_REPORTER_SOURCE ? WF_STR_LIT("source") : WF_STR_LIT("destination");
    v[PX_ML_SOURCE_WORKLOAD] = s ? or_unknown(s->workload) : unknown;
    v[PX_ML_SOURCE_CANONICAL_SERVICE] = s ? or_unknown(s->canonical_service) : unknown;
    v[PX_ML_SOURCE_CANONICAL_REVISION] = s ? or_unknown(s->canonical_revision) : unknown;
    v[PX_ML_SOURCE_WORKLOAD_NAMESPACE] = s ? or_unknown(s->namespace) : unknown;
    v[PX_ML_SOURCE_PRINCIPAL] = s ? or_unknown(s->principal) : unknown;
    v[PX_ML_SOURCE_APP] = s ? or_unknown(s->app) : unknown;
    v[PX_ML_SOURCE_VERSION] = s ? or_unknown(s->version) : unknown;
    v[PX_ML_SOURCE_CLUSTER] = s ? or_unknown(s->cluster) : unknown;
    v[PX_ML_DESTINATION_WORKLOAD] = d ? or_unknown(d->workload) : unknown;
    v[PX_ML_DESTINATION_WORKLOAD_NAMESPACE] = d ? or_unknown(d->namespace) : unknown;
    v[PX_ML_DESTINATION_PRINCIPAL] = d ? or_unknown(d->principal) : unknown;
    v[PX_ML_DESTINATION_APP] = d ? or_unknown(d->app) : unknown;
    v[PX_ML_DESTINATION_VERSION] = d ? or_unknown(d->version) : unknown;
    v[PX_ML_DESTINATION_CANONICAL_SERVICE] = d ? or_unknown(d->canonical_service) : unknown;
    v[PX_ML_DESTINATION_CANONICAL_REVISION] = d ? or_unknown(d->canonical_revision) : unknown;
    v[PX_ML_DESTINATION_CLUSTER] = d ? or_unknown(d->cluster) : unknown;

    /* destination_service: `<name>.<ns>.svc.cluster.local`; a host with a dot is taken as a
     * name already qualified (an FQDN or an external host), and its first label is the name. */
    wf_str_t svc = in->dest_service, ns = in->dest_service_ns;
    const char *dot = svc.len > 0 ? memchr(svc.p, '.', svc.len) : NULL;
    if (svc.len == 0) {
        v[PX_ML_DESTINATION_SERVICE] = unknown;
        v[PX_ML_DESTINATION_SERVICE_NAME] = unknown;
    } else if (dot != NULL) {
        v[PX_ML_DESTINATION_SERVICE] = svc;
        v[PX_ML_DESTINATION_SERVICE_NAME] = (wf_str_t){svc.p, (size_t)(dot - svc.p)};
        if (ns.len == 0) {
            const char *rest = dot + 1, *end = svc.p + svc.len;
            const char *dot2 = memchr(rest, '.', (size_t)(end - rest));
            if (dot2 != NULL && (size_t)(end - dot2) >= 4 && memcmp(dot2, ".svc", 4) == 0) {
                ns = (wf_str_t){rest, (size_t)(dot2 - rest)};
            }
        }
    } else {
        v[PX_ML_DESTINATION_SERVICE_NAME] = svc;
        v[PX_ML_DESTINATION_SERVICE] = ns.len > 0 ? scratch_fqdn(l, &used, svc, ns) : svc;
    }
    v[PX_ML_DESTINATION_SERVICE_NAMESPACE] = or_unknown(ns);

    v[PX_ML_REQUEST_PROTOCOL] = or_unknown(in->protocol);
    v[PX_ML_RESPONSE_CODE] = scratch_u32(l, &used, in->response_code);
    v[PX_ML_GRPC_RESPONSE_STATUS] =
        in->grpc_status >= 0 ? scratch_printf(l, &used, "%d", in->grpc_status) : WF_STR_LIT("");
    if (in->flags == 0) {
        v[PX_ML_RESPONSE_FLAGS] = WF_STR_LIT("-");
    } else if (sizeof(l->scratch) - used >= PX_RFLAGS_MAX) {
        size_t n = px_rflags_format(in->flags, l->scratch + used);
        v[PX_ML_RESPONSE_FLAGS] = (wf_str_t){l->scratch + used, n};
        used += n + 1;
    } else {
        v[PX_ML_RESPONSE_FLAGS] = unknown;
    }
    if (in->reporter == PX_REPORTER_SOURCE || in->security == PX_SEC_UNKNOWN) {
        v[PX_ML_CONNECTION_SECURITY_POLICY] = unknown;
    } else {
        v[PX_ML_CONNECTION_SECURITY_POLICY] =
            in->security == PX_SEC_MUTUAL_TLS ? WF_STR_LIT("mutual_tls") : WF_STR_LIT("none");
    }
}

/* ---- shards ---- */

/* Envoy's default histogram buckets (source/common/stats/histogram_impl.h). */
#define NB 19
static const double bounds[NB] = {0.5,  1,    5,     10,    25,    50,  100, 250,   500,  1000,
                                  2500, 5000, 10000, 30000, 60000, 3e5, 6e5, 1.8e6, 3.6e6};
static const char *const bound_text[NB] = {
    "0.5",  "1",    "5",     "10",    "25",    "50",     "100",    "250",     "500",    "1000",
    "2500", "5000", "10000", "30000", "60000", "300000", "600000", "1800000", "3600000"};

typedef struct {
    _Atomic uint64_t b[NB + 1]; /* per bucket (not cumulative); [NB] = above the last bound */
    _Atomic uint64_t sum;       /* bits of a double */
} hist_t;

enum { K_HTTP, K_TCP };
enum { H_DUR, H_REQ, H_RESP, H_COUNT };
enum { T_SENT, T_RECV, T_OPENED, T_CLOSED, T_COUNT };

typedef struct entry entry_t;
struct entry {
    entry_t *hnext;          /* owner's hash chain */
    _Atomic(entry_t *) next; /* published list, newest first */
    uint64_t hash;
    int kind;
    wf_str_t v[PX_ML_COUNT];
    union {
        struct {
            _Atomic uint64_t requests;
            hist_t h[H_COUNT];
        } http;
        _Atomic uint64_t tcp[T_COUNT];
    } u;
};

struct px_metrics_shard {
    entry_t **buckets;
    size_t nbuckets;
    size_t n;
    _Atomic(entry_t *) published;
    char pad[64];
};

struct px_own_metric {
    char *name;
    char *help;
    char *labels;
    px_mtype_t type;
    _Atomic int64_t value;
    px_own_metric_t *next;
};

struct px_metrics {
    px_metrics_shard_t *shards;
    unsigned n_shards;
    pthread_mutex_t mu; /* own-metric registration and scrapes */
    px_own_metric_t *own;
};

px_metrics_t *px_metrics_new(unsigned n_shards)
{
    px_metrics_t *m = wf_calloc(1, sizeof(*m));
    m->n_shards = n_shards ? n_shards : 1;
    m->shards = wf_calloc(m->n_shards, sizeof(*m->shards));
    for (unsigned i = 0; i < m->n_shards; i++) {
        px_metrics_shard_t *s = &m->shards[i];
        s->nbuckets = 64;
        s->buckets = wf_calloc(s->nbuckets, sizeof(*s->buckets));
        atomic_init(&s->published, NULL);
    }
    pthread_mutex_init(&m->mu, NULL);
    return m;
}

void px_metrics_free(px_metrics_t *m)
{
    if (m == NULL) {
        return;
    }
    for (unsigned i = 0; i < m->n_shards; i++) {
        entry_t *e = atomic_load_explicit(&m->shards[i].published, memory_order_acquire);
        while (e != NULL) {
            entry_t *nx = atomic_load_explicit(&e->next, memory_order_relaxed);
            wf_free(e);
            e = nx;
        }
        wf_free(m->shards[i].buckets);
    }
    for (px_own_metric_t *o = m->own, *nx; o != NULL; o = nx) {
        nx = o->next;
        wf_free(o->name);
        wf_free(o->help);
        wf_free(o->labels);
        wf_free(o);
    }
    pthread_mutex_destroy(&m->mu);
    wf_free(m->shards);
    wf_free(m);
}

unsigned px_metrics_shards(const px_metrics_t *m)
{
    return m->n_shards;
}

px_metrics_shard_t *px_metrics_shard(px_metrics_t *m, unsigned i)
{
    WF_ASSERT(i < m->n_shards);
    return &m->shards[i];
}

size_t px_metrics_shard_series(const px_metrics_shard_t *s)
{
    return s->n;
}

/* The values that identify a label set of this kind (TCP ignores the two HTTP-only labels). */
static wf_str_t key_value(const wf_str_t *v, int kind, int i)
{
    if (kind == K_TCP && (i == PX_ML_RESPONSE_CODE || i == PX_ML_GRPC_RESPONSE_STATUS)) {
        return (wf_str_t){"", 0};
    }
    return v[i];
}

static inline uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v * 0x9e3779b97f4a7c15ULL;
    return ((h << 31) | (h >> 33)) * 0xbf58476d1ce4e5b9ULL;
}

/*
 * One pass over all values, 8 bytes per step, one final avalanche: a label set costs one hash
 * per request, so this avoids wf_hash64's per-call finalisation 25 times over. Not seeded:
 * the values come from the mesh's own registry and peers, a bounded set.
 */
static uint64_t key_hash(const wf_str_t *v, int kind)
{
    uint64_t h = (uint64_t)kind + 0x243f6a8885a308d3ULL;
    for (int i = 0; i < PX_ML_COUNT; i++) {
        wf_str_t s = key_value(v, kind, i);
        size_t k = 0;
        for (; k + 8 <= s.len; k += 8) {
            uint64_t w;
            memcpy(&w, s.p + k, 8);
            h = mix(h, w);
        }
        uint64_t tail = (uint64_t)s.len << 56;
        for (size_t j = 0; k + j < s.len; j++) {
            tail |= (uint64_t)(uint8_t)s.p[k + j] << (8 * j);
        }
        h = mix(h, tail);
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 33);
}

static bool key_eq(const entry_t *e, const wf_str_t *v, int kind)
{
    if (e->kind != kind) {
        return false;
    }
    for (int i = 0; i < PX_ML_COUNT; i++) {
        if (!wf_str_eq(e->v[i], key_value(v, kind, i))) {
            return false;
        }
    }
    return true;
}

static void shard_grow(px_metrics_shard_t *s)
{
    size_t nb = s->nbuckets * 2;
    entry_t **b = wf_calloc(nb, sizeof(*b));
    for (size_t i = 0; i < s->nbuckets; i++) {
        for (entry_t *e = s->buckets[i], *nx; e != NULL; e = nx) {
            nx = e->hnext;
            e->hnext = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
        }
    }
    wf_free(s->buckets);
    s->buckets = b;
    s->nbuckets = nb;
}

static entry_t *shard_get(px_metrics_shard_t *s, const px_labels_t *l, int kind)
{
    uint64_t h = key_hash(l->v, kind);
    for (entry_t *e = s->buckets[h & (s->nbuckets - 1)]; e != NULL; e = e->hnext) {
        if (e->hash == h && key_eq(e, l->v, kind)) {
            return e;
        }
    }
    size_t strbytes = 0;
    for (int i = 0; i < PX_ML_COUNT; i++) {
        strbytes += key_value(l->v, kind, i).len + 1;
    }
    /* The counters start at zero (calloc), which is also a valid atomic zero. */
    entry_t *e = wf_calloc(1, sizeof(*e) + strbytes);
    char *p = (char *)(e + 1);
    e->hash = h;
    e->kind = kind;
    for (int i = 0; i < PX_ML_COUNT; i++) {
        wf_str_t v = key_value(l->v, kind, i);
        if (v.len > 0) {
            memcpy(p, v.p, v.len);
        }
        p[v.len] = '\0';
        e->v[i] = (wf_str_t){p, v.len};
        p += v.len + 1;
    }
    if (s->n >= s->nbuckets) {
        shard_grow(s);
    }
    e->hnext = s->buckets[h & (s->nbuckets - 1)];
    s->buckets[h & (s->nbuckets - 1)] = e;
    s->n++;
    atomic_store_explicit(&e->next, atomic_load_explicit(&s->published, memory_order_relaxed),
                          memory_order_relaxed);
    /* Release: a reader that sees e sees its strings and zeroed counters. */
    atomic_store_explicit(&s->published, e, memory_order_release);
    return e;
}

/* Single-writer add: a load and a store, no read-modify-write instruction needed. */
static inline void add(_Atomic uint64_t *c, uint64_t d)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + d,
                          memory_order_relaxed);
}

static inline uint64_t rd(const _Atomic uint64_t *c)
{
    return atomic_load_explicit((_Atomic uint64_t *)c, memory_order_relaxed);
}

static double bits_to_double(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof(d));
    return d;
}

static uint64_t double_to_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    return u;
}

static void observe(hist_t *h, double v)
{
    int i = 0;
    while (i < NB && v > bounds[i]) {
        i++;
    }
    add(&h->b[i], 1);
    double sum = bits_to_double(rd(&h->sum)) + v;
    atomic_store_explicit(&h->sum, double_to_bits(sum), memory_order_relaxed);
}

void px_metrics_record_http(px_metrics_shard_t *s, const px_labels_t *l, double duration_ms,
                            uint64_t request_bytes, uint64_t response_bytes)
{
    entry_t *e = shard_get(s, l, K_HTTP);
    add(&e->u.http.requests, 1);
    observe(&e->u.http.h[H_DUR], duration_ms < 0 || isnan(duration_ms) ? 0 : duration_ms);
    observe(&e->u.http.h[H_REQ], (double)request_bytes);
    observe(&e->u.http.h[H_RESP], (double)response_bytes);
}

void px_metrics_record_tcp(px_metrics_shard_t *s, const px_labels_t *l, uint64_t sent_bytes,
                           uint64_t received_bytes, unsigned opened, unsigned closed)
{
    entry_t *e = shard_get(s, l, K_TCP);
    add(&e->u.tcp[T_SENT], sent_bytes);
    add(&e->u.tcp[T_RECV], received_bytes);
    add(&e->u.tcp[T_OPENED], opened);
    add(&e->u.tcp[T_CLOSED], closed);
}

/* ---- own metrics ---- */

static bool metric_name_valid(const char *s)
{
    if (s == NULL || *s == '\0' || (*s >= '0' && *s <= '9')) {
        return false;
    }
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == ':')) {
            return false;
        }
    }
    return true;
}

px_own_metric_t *px_metrics_own(px_metrics_t *m, const char *name, const char *help,
                                px_mtype_t type, const char *labels)
{
    WF_ASSERT(metric_name_valid(name));
    px_own_metric_t *o = wf_calloc(1, sizeof(*o));
    o->name = wf_strdup(name);
    o->help = wf_strdup(help ? help : "");
    o->labels = wf_strdup(labels ? labels : "");
    o->type = type;
    atomic_init(&o->value, 0);
    pthread_mutex_lock(&m->mu);
    for (px_own_metric_t *x = m->own; x != NULL; x = x->next) {
        WF_ASSERT(strcmp(x->name, name) != 0 || x->type == type);
    }
    o->next = m->own;
    m->own = o;
    pthread_mutex_unlock(&m->mu);
    return o;
}

void px_own_add(px_own_metric_t *c, int64_t delta)
{
    atomic_fetch_add_explicit(&c->value, delta, memory_order_relaxed);
}

void px_own_set(px_own_metric_t *c, int64_t value)
{
    atomic_store_explicit(&c->value, value, memory_order_relaxed);
}

int64_t px_own_get(const px_own_metric_t *c)
{
    return atomic_load_explicit(&((px_own_metric_t *)c)->value, memory_order_relaxed);
}

/* ---- scrape ---- */

/* One merged label set. */
typedef struct {
    uint64_t hash;
    int kind;
    const wf_str_t *v; /* the first shard entry's values */
    char *ltext;       /* `k="v",...` in label-name order */
    size_t ltext_len;
    uint64_t requests;
    uint64_t b[H_COUNT][NB + 1];
    double sum[H_COUNT];
    uint64_t tcp[T_COUNT];
} agg_t;

typedef struct {
    agg_t *a;
    size_t n, cap;
    uint32_t *slots; /* index + 1 into a; 0 = empty */
    size_t nslots;
} aggmap_t;

static agg_t *agg_get(aggmap_t *m, const entry_t *e)
{
    if ((m->n + 1) * 2 > m->nslots) {
        size_t ns = m->nslots ? m->nslots * 2 : 1024;
        uint32_t *sl = wf_calloc(ns, sizeof(*sl));
        for (size_t i = 0; i < m->n; i++) {
            size_t j = m->a[i].hash & (ns - 1);
            while (sl[j] != 0) {
                j = (j + 1) & (ns - 1);
            }
            sl[j] = (uint32_t)(i + 1);
        }
        wf_free(m->slots);
        m->slots = sl;
        m->nslots = ns;
    }
    size_t j = e->hash & (m->nslots - 1);
    while (m->slots[j] != 0) {
        agg_t *a = &m->a[m->slots[j] - 1];
        if (a->hash == e->hash && key_eq(e, a->v, a->kind)) {
            return a;
        }
        j = (j + 1) & (m->nslots - 1);
    }
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 256;
        m->a = wf_realloc(m->a, m->cap * sizeof(*m->a));
    }
    agg_t *a = &m->a[m->n++];
    memset(a, 0, sizeof(*a));
    a->hash = e->hash;
    a->kind = e->kind;
    a->v = e->v;
    m->slots[j] = (uint32_t)m->n;
    return a;
}

static void merge_entry(agg_t *a, const entry_t *e)
{
    if (e->kind == K_HTTP) {
        a->requests += rd(&e->u.http.requests);
        for (int h = 0; h < H_COUNT; h++) {
            for (int i = 0; i <= NB; i++) {
                a->b[h][i] += rd(&e->u.http.h[h].b[i]);
            }
            a->sum[h] += bits_to_double(rd(&e->u.http.h[h].sum));
        }
    } else {
        for (int t = 0; t < T_COUNT; t++) {
            a->tcp[t] += rd(&e->u.tcp[t]);
        }
    }
}

static void put_escaped(wf_buf_t *b, wf_str_t s)
{
    for (size_t i = 0; i < s.len; i++) {
        char c = s.p[i];
        if (c == '\\') {
            wf_buf_append(b, "\\\\", 2);
        } else if (c == '"') {
            wf_buf_append(b, "\\\"", 2);
        } else if (c == '\n') {
            wf_buf_append(b, "\\n", 2);
        } else {
            wf_buf_putc(b, (uint8_t)c);
        }
    }
}

static int cmp_label_idx(const void *a, const void *b)
{
    return strcmp(ml_names[*(const int *)a], ml_names[*(const int *)b]);
}

/* The label indexes in name order. Computed per scrape into the caller's array: cheap, and
 * keeps the module free of mutable globals. */
static void sorted_labels(int order[PX_ML_COUNT])
{
    for (int i = 0; i < PX_ML_COUNT; i++) {
        order[i] = i;
    }
    qsort(order, PX_ML_COUNT, sizeof(order[0]), cmp_label_idx);
}

static void make_ltext(agg_t *a, const int *order, wf_buf_t *tmp)
{
    wf_buf_reset(tmp);
    bool firstl = true;
    for (int k = 0; k < PX_ML_COUNT; k++) {
        int i = order[k];
        if (a->kind == K_TCP && (i == PX_ML_RESPONSE_CODE || i == PX_ML_GRPC_RESPONSE_STATUS)) {
            continue;
        }
        if (!firstl) {
            wf_buf_putc(tmp, ',');
        }
        firstl = false;
        wf_buf_puts(tmp, ml_names[i]);
        wf_buf_append(tmp, "=\"", 2);
        put_escaped(tmp, a->v[i]);
        wf_buf_putc(tmp, '"');
    }
    a->ltext = wf_strndup((const char *)tmp->data, tmp->len);
    a->ltext_len = tmp->len;
}

static int cmp_agg_ptr(const void *x, const void *y)
{
    const agg_t *a = *(const agg_t *const *)x, *b = *(const agg_t *const *)y;
    return strcmp(a->ltext, b->ltext);
}

/* Shortest text that reads back as the same double (Go's strconv 'g' -1, as Prometheus). */
static void put_double(wf_buf_t *b, double v)
{
    char tmp[40];
    if (isnan(v)) {
        wf_buf_puts(b, "NaN");
        return;
    }
    if (isinf(v)) {
        wf_buf_puts(b, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(tmp, sizeof(tmp), "%.0f", v);
        wf_buf_puts(b, tmp);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
        if (strtod(tmp, NULL) == v) {
            break;
        }
    }
    wf_buf_puts(b, tmp);
}

static void family_head(wf_buf_t *b, const char *name, const char *help, const char *type)
{
    wf_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* ` <v>\n` */
static void put_u64_nl(wf_buf_t *b, uint64_t v)
{
    char tmp[24];
    tmp[sizeof(tmp) - 1] = '\n';
    char *p = u64_digits(tmp + sizeof(tmp) - 1, v);
    *--p = ' ';
    wf_buf_append(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

/* `<name><suffix>{<labels>` : the caller closes the braces. */
static void put_series(wf_buf_t *b, const char *name, size_t nlen, const char *suffix,
                       const agg_t *a)
{
    wf_buf_append(b, name, nlen);
    wf_buf_puts(b, suffix);
    wf_buf_putc(b, '{');
    wf_buf_append(b, a->ltext, a->ltext_len);
}

static void render_hist(wf_buf_t *b, const char *name, const char *help, agg_t **list, size_t n,
                        int h)
{
    size_t nlen = strlen(name);
    family_head(b, name, help, "histogram");
    for (size_t k = 0; k < n; k++) {
        const agg_t *a = list[k];
        uint64_t cum = 0;
        for (int i = 0; i <= NB; i++) {
            cum += a->b[h][i];
            put_series(b, name, nlen, "_bucket", a);
            wf_buf_append(b, ",le=\"", 5);
            wf_buf_puts(b, i < NB ? bound_text[i] : "+Inf");
            wf_buf_append(b, "\"}", 2);
            put_u64_nl(b, cum);
        }
        put_series(b, name, nlen, "_sum", a);
        wf_buf_append(b, "} ", 2);
        put_double(b, a->sum[h]);
        wf_buf_putc(b, '\n');
        put_series(b, name, nlen, "_count", a);
        wf_buf_putc(b, '}');
        put_u64_nl(b, cum);
    }
}

static void render_counter(wf_buf_t *b, const char *name, const char *help, agg_t **list, size_t n,
                           int t)
{
    size_t nlen = strlen(name);
    family_head(b, name, help, "counter");
    for (size_t k = 0; k < n; k++) {
        put_series(b, name, nlen, "", list[k]);
        wf_buf_putc(b, '}');
        put_u64_nl(b, t < 0 ? list[k]->requests : list[k]->tcp[t]);
    }
}

static int cmp_own(const void *x, const void *y)
{
    const px_own_metric_t *a = *(const px_own_metric_t *const *)x;
    const px_own_metric_t *b = *(const px_own_metric_t *const *)y;
    int c = strcmp(a->name, b->name);
    return c != 0 ? c : strcmp(a->labels, b->labels);
}

static void render_own(px_metrics_t *m, wf_buf_t *b)
{
    size_t n = 0;
    for (px_own_metric_t *o = m->own; o != NULL; o = o->next) {
        n++;
    }
    if (n == 0) {
        return;
    }
    px_own_metric_t **list = wf_malloc(n * sizeof(*list));
    n = 0;
    for (px_own_metric_t *o = m->own; o != NULL; o = o->next) {
        list[n++] = o;
    }
    qsort(list, n, sizeof(*list), cmp_own);
    for (size_t i = 0; i < n; i++) {
        const px_own_metric_t *o = list[i];
        if (i == 0 || strcmp(list[i - 1]->name, o->name) != 0) {
            /* HELP text escapes backslash and newline. */
            wf_buf_printf(b, "# HELP %s ", o->name);
            for (const char *p = o->help; *p; p++) {
                if (*p == '\\') {
                    wf_buf_puts(b, "\\\\");
                } else if (*p == '\n') {
                    wf_buf_puts(b, "\\n");
                } else {
                    wf_buf_putc(b, (uint8_t)*p);
                }
            }
            wf_buf_printf(b, "\n# TYPE %s %s\n", o->name,
                          o->type == PX_MT_COUNTER ? "counter" : "gauge");
        }
        if (o->labels[0] != '\0') {
            wf_buf_printf(b, "%s{%s} %" PRId64 "\n", o->name, o->labels, px_own_get(o));
        } else {
            wf_buf_printf(b, "%s %" PRId64 "\n", o->name, px_own_get(o));
        }
    }
    wf_free(list);
}

void px_metrics_render(px_metrics_t *m, wf_buf_t *out)
{
    aggmap_t map = {0};
    wf_buf_t tmp = WF_BUF_INIT;
    int order[PX_ML_COUNT];
    agg_t **http = NULL, **tcp = NULL;
    size_t nh = 0, nt = 0;

    pthread_mutex_lock(&m->mu);
    for (unsigned i = 0; i < m->n_shards; i++) {
        const entry_t *e = atomic_load_explicit(&m->shards[i].published, memory_order_acquire);
        for (; e != NULL; e = atomic_load_explicit(&e->next, memory_order_acquire)) {
            merge_entry(agg_get(&map, e), e);
        }
    }
    sorted_labels(order);
    if (map.n > 0) {
        http = wf_malloc(map.n * sizeof(*http));
        tcp = wf_malloc(map.n * sizeof(*tcp));
    }
    for (size_t i = 0; i < map.n; i++) {
        make_ltext(&map.a[i], order, &tmp);
        if (map.a[i].kind == K_HTTP) {
            http[nh++] = &map.a[i];
        } else {
            tcp[nt++] = &map.a[i];
        }
    }
    if (nh > 1) {
        qsort(http, nh, sizeof(*http), cmp_agg_ptr);
    }
    if (nt > 1) {
        qsort(tcp, nt, sizeof(*tcp), cmp_agg_ptr);
    }

    /* Families in name order. */
    if (nh > 0) {
        render_hist(out, "istio_request_bytes", "Size of HTTP request bodies in bytes.", http, nh,
                    H_REQ);
        render_hist(out, "istio_request_duration_milliseconds",
                    "Duration of HTTP requests in milliseconds.", http, nh, H_DUR);
        render_counter(out, "istio_requests_total", "HTTP requests handled.", http, nh, -1);
        render_hist(out, "istio_response_bytes", "Size of HTTP response bodies in bytes.", http, nh,
                    H_RESP);
    }
    if (nt > 0) {
        render_counter(out, "istio_tcp_connections_closed_total", "TCP connections closed.", tcp,
                       nt, T_CLOSED);
        render_counter(out, "istio_tcp_connections_opened_total", "TCP connections opened.", tcp,
                       nt, T_OPENED);
        render_counter(out, "istio_tcp_received_bytes_total",
                       "Bytes received from the downstream on TCP connections.", tcp, nt, T_RECV);
        render_counter(out, "istio_tcp_sent_bytes_total",
                       "Bytes sent to the downstream on TCP connections.", tcp, nt, T_SENT);
    }
    render_own(m, out);
    pthread_mutex_unlock(&m->mu);

    for (size_t i = 0; i < map.n; i++) {
        wf_free(map.a[i].ltext);
    }
    wf_free(http);
    wf_free(tcp);
    wf_free(map.a);
    wf_free(map.slots);
    wf_buf_free(&tmp);
}
