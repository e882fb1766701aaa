/*
 * px_lb.c - endpoint choice, circuit breakers and outlier detection (see px_lb.h).
 *
 * The ring is a Ketama ring hash like Envoy's: each endpoint gets ring entries in proportion
 * to its weight (a power-of-two number per unit of weight, at least minimum_ring_size in all);
 * entry k of an endpoint sits at hash("address:port_k"); a key goes to the first entry at or
 * after its hash, wrapping. Removing an endpoint removes only its entries (while the count per
 * unit of weight stays the same), so only its keys move; an ejected endpoint is skipped by walking
 * on to the next entry, which gives the same result as a ring built without it.
 */
#include "px_lb.h"

#include "px_worker.h"
#include "wf_alloc.h"
#include "wf_err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Ring entries past which large weights are scaled down (64 Ki entries: 1 MiB). */
#define PX_LB_RING_SCALE 65536

static int ring_cmp(const void *a, const void *b)
{
    const px_lb_ring_entry_t *x = a, *y = b;
    if (x->hash != y->hash) {
        return x->hash < y->hash ? -1 : 1;
    }
    return x->ep < y->ep ? -1 : (x->ep > y->ep ? 1 : 0);
}

static void build_ring(px_lb_cluster_t *lc)
{
    const px_cluster_t *c = lc->cluster;
    uint64_t min_size = c->lb.minimum_ring_size > 0 ? c->lb.minimum_ring_size : 1024;
    if (min_size > PX_LB_MAX_RING) {
        min_size = PX_LB_MAX_RING;
    }
    /* Entries per unit of weight: a power of two, so the ring keeps at least minimum_ring_size
     * entries and the same per-endpoint entries when an endpoint comes or goes (until the
     * total weight crosses a power of two), which is what keeps the other endpoints' keys in
     * place. Envoy scales by the lightest endpoint's share instead, which shifts every
     * endpoint's entries when the set changes. */
    uint64_t per = 1;
    while (per * lc->total_weight < min_size) {
        per <<= 1;
    }
    /* Large weights (up to 131072 each) would make a ring of sum(weights) entries: past a
     * bound the counts are scaled down in proportion (at least one each). */
    uint64_t limit = min_size * 2 > PX_LB_RING_SCALE ? min_size * 2 : PX_LB_RING_SCALE;
    bool scaled = per * lc->total_weight > limit;
    size_t cap = scaled ? (size_t)(limit + c->n_endpoints) : (size_t)(per * lc->total_weight);
    lc->ring = wf_malloc(cap * sizeof(*lc->ring));
    size_t n = 0;
    char name[300];
    for (uint32_t i = 0; i < c->n_endpoints; i++) {
        const px_endpoint_t *ep = &c->endpoints[i];
        uint64_t w = ep->weight ? ep->weight : 1;
        uint64_t count = scaled ? w * limit / lc->total_weight : per * w;
        if (count == 0) {
            count = 1;
        }
        for (uint64_t k = 0; k < count && n < cap; k++) {
            int l = snprintf(name, sizeof(name), "%.*s:%u_%llu", (int)ep->address.len,
                             ep->address.p, ep->port, (unsigned long long)k);
            lc->ring[n].hash = wf_hash64(name, (size_t)l, 0);
            lc->ring[n].ep = i;
            n++;
        }
    }
    qsort(lc->ring, n, sizeof(*lc->ring), ring_cmp);
    lc->ring_size = (uint32_t)n;
}

px_lb_shared_t *px_lb_shared_new(const px_snapshot_t *s)
{
    px_lb_shared_t *sh = wf_calloc(1, sizeof(*sh));
    atomic_init(&sh->refs, 1);
    sh->n_clusters = s->n_clusters;
    sh->clusters = wf_calloc(s->n_clusters ? s->n_clusters : 1, sizeof(*sh->clusters));
    for (uint32_t i = 0; i < s->n_clusters; i++) {
        px_lb_cluster_t *lc = &sh->clusters[i];
        const px_cluster_t *c = &s->clusters[i];
        uint32_t n = c->n_endpoints ? c->n_endpoints : 1;
        lc->cluster = c;
        lc->cum_weight = wf_calloc(n, sizeof(*lc->cum_weight));
        lc->hosts = wf_calloc(n, sizeof(*lc->hosts));
        for (uint32_t e = 0; e < c->n_endpoints; e++) {
            uint32_t w = c->endpoints[e].weight ? c->endpoints[e].weight : 1;
            lc->total_weight += w;
            lc->cum_weight[e] = lc->total_weight;
            if (w != (c->endpoints[0].weight ? c->endpoints[0].weight : 1)) {
                lc->weighted = true;
            }
        }
        if (c->lb.kind == PX_LB_CONSISTENT_HASH && c->n_endpoints > 0) {
            build_ring(lc);
        }
        lc->limits.max_connections = c->pool.max_connections;
        lc->limits.max_pending = c->pool.http1_max_pending_requests;
        lc->limits.max_requests_per_connection = c->pool.max_requests_per_connection;
    }
    return sh;
}

static void copy_u32(_Atomic uint32_t *to, _Atomic uint32_t *from)
{
    atomic_store_explicit(to, atomic_load_explicit(from, memory_order_relaxed),
                          memory_order_relaxed);
}

static void copy_u64(_Atomic uint64_t *to, _Atomic uint64_t *from)
{
    atomic_store_explicit(to, atomic_load_explicit(from, memory_order_relaxed),
                          memory_order_relaxed);
}

static void copy_i64(_Atomic int64_t *to, _Atomic int64_t *from)
{
    atomic_store_explicit(to, atomic_load_explicit(from, memory_order_relaxed),
                          memory_order_relaxed);
}

void px_lb_shared_carry(px_lb_shared_t *sh, const px_lb_shared_t *prev)
{
    if (prev == NULL) {
        return;
    }
    for (uint32_t i = 0; i < sh->n_clusters; i++) {
        px_lb_cluster_t *lc = &sh->clusters[i];
        px_lb_cluster_t *old = NULL;
        for (uint32_t j = 0; j < prev->n_clusters && old == NULL; j++) {
            if (wf_str_eq(prev->clusters[j].cluster->name, lc->cluster->name)) {
                old = &prev->clusters[j];
            }
        }
        if (old == NULL) {
            continue;
        }
        uint32_t active = 0;
        for (uint32_t e = 0; e < lc->cluster->n_endpoints; e++) {
            const px_endpoint_t *ep = &lc->cluster->endpoints[e];
            for (uint32_t k = 0; k < old->cluster->n_endpoints; k++) {
                const px_endpoint_t *oep = &old->cluster->endpoints[k];
                if (oep->port != ep->port || !wf_str_eq(oep->address, ep->address)) {
                    continue;
                }
                px_lb_host_t *h = &lc->hosts[e], *oh = &old->hosts[k];
                copy_u32(&h->c5xx, &oh->c5xx);
                copy_u32(&h->cgw, &oh->cgw);
                copy_i64(&h->ejected_until_ms, &oh->ejected_until_ms);
                copy_u32(&h->multiplier, &oh->multiplier);
                copy_i64(&h->back_ms, &oh->back_ms);
                active += atomic_load_explicit(&h->ejected_until_ms, memory_order_relaxed) != 0;
                break;
            }
        }
        atomic_store_explicit(&lc->ejections_active, active, memory_order_relaxed);
        copy_u64(&lc->ejections_total, &old->ejections_total);
        copy_u64(&lc->ejections_5xx, &old->ejections_5xx);
        copy_u64(&lc->ejections_gateway, &old->ejections_gateway);
        copy_u64(&lc->retry_overflow, &old->retry_overflow);
    }
}

px_lb_shared_t *px_lb_shared_ref(px_lb_shared_t *sh)
{
    atomic_fetch_add_explicit(&sh->refs, 1, memory_order_relaxed);
    return sh;
}

void px_lb_shared_unref(px_lb_shared_t *sh)
{
    if (sh == NULL || atomic_fetch_sub_explicit(&sh->refs, 1, memory_order_acq_rel) > 1) {
        return;
    }
    for (uint32_t i = 0; i < sh->n_clusters; i++) {
        wf_free(sh->clusters[i].cum_weight);
        wf_free(sh->clusters[i].hosts);
        wf_free(sh->clusters[i].ring);
    }
    wf_free(sh->clusters);
    wf_free(sh);
}

/* ---------------------------------------------------------------------------------------- */
/* Hash keys */

static bool name_is(wf_str_t a, wf_str_t b)
{
    return a.len == b.len && (a.len == 0 || strncasecmp(a.p, b.p, a.len) == 0);
}

static wf_str_t trim(wf_str_t s)
{
    while (s.len > 0 && (s.p[0] == ' ' || s.p[0] == '\t')) {
        s.p++;
        s.len--;
    }
    while (s.len > 0 && (s.p[s.len - 1] == ' ' || s.p[s.len - 1] == '\t')) {
        s.len--;
    }
    return s;
}

/* The value of cookie name in a Cookie header value ("a=1; b=2"), quotes removed. */
static bool cookie_value(wf_str_t hv, wf_str_t name, wf_str_t *out)
{
    size_t i = 0;
    while (i < hv.len) {
        size_t j = i;
        while (j < hv.len && hv.p[j] != ';') {
            j++;
        }
        wf_str_t pair = trim((wf_str_t){hv.p + i, j - i});
        const char *eq = memchr(pair.p, '=', pair.len);
        if (eq != NULL) {
            wf_str_t k = trim((wf_str_t){pair.p, (size_t)(eq - pair.p)});
            wf_str_t v = trim((wf_str_t){eq + 1, pair.len - (size_t)(eq - pair.p) - 1});
            if (k.len == name.len && memcmp(k.p, name.p, k.len) == 0) {
                if (v.len >= 2 && v.p[0] == '"' && v.p[v.len - 1] == '"') {
                    v.p++;
                    v.len -= 2;
                }
                *out = v;
                return true;
            }
        }
        i = j + 1;
    }
    return false;
}

/* The first value of query parameter name in q ("a=1&b=2"), taken as sent (not decoded). */
static bool query_value(wf_str_t q, wf_str_t name, wf_str_t *out)
{
    size_t i = 0;
    while (i < q.len) {
        size_t j = i;
        while (j < q.len && q.p[j] != '&') {
            j++;
        }
        const char *eq = memchr(q.p + i, '=', j - i);
        size_t kl = eq != NULL ? (size_t)(eq - (q.p + i)) : j - i;
        if (kl == name.len && memcmp(q.p + i, name.p, kl) == 0) {
            *out = eq != NULL ? (wf_str_t){eq + 1, (size_t)(q.p + j - eq - 1)} : (wf_str_t){"", 0};
            return true;
        }
        i = j + 1;
    }
    return false;
}

void px_lb_request_key(const px_lb_t *lb, const px_http1_head_t *h, wf_str_t query,
                       const char *client_ip, px_rng_t *rng, px_lb_key_t *key)
{
    memset(key, 0, sizeof(*key));
    if (lb->kind != PX_LB_CONSISTENT_HASH) {
        return;
    }
    wf_str_t v = {"", 0};
    switch (lb->hash_kind) {
    case PX_HASH_HEADER:
        for (size_t i = 0; i < h->num_headers && !key->set; i++) {
            if (name_is(h->headers[i].name, lb->hash_name)) {
                v = h->headers[i].value;
                key->set = true;
            }
        }
        break;
    case PX_HASH_COOKIE:
        for (size_t i = 0; i < h->num_headers && !key->set; i++) {
            if (name_is(h->headers[i].name, wf_str("cookie"))) {
                key->set = cookie_value(h->headers[i].value, lb->hash_name, &v);
            }
        }
        if (!key->set && lb->cookie_ttl_ms > 0) {
            snprintf(key->cookie, sizeof(key->cookie), "%016llx",
                     (unsigned long long)px_rng_next(rng));
            v = (wf_str_t){key->cookie, PX_LB_COOKIE_LEN - 1};
            key->set = true;
            key->set_cookie = true;
        }
        break;
    case PX_HASH_SOURCE_IP:
        v = wf_str(client_ip);
        key->set = v.len > 0;
        break;
    case PX_HASH_QUERY_PARAM:
        key->set = query_value(query, lb->hash_name, &v);
        break;
    }
    if (key->set) {
        key->hash = wf_hash64(v.p, v.len, 0);
    }
}

size_t px_lb_set_cookie(const px_lb_t *lb, const px_lb_key_t *key, char *out, size_t cap)
{
    if (!key->set_cookie) {
        return 0;
    }
    bool path = lb->cookie_path.len > 0;
    int n =
        snprintf(out, cap, "%.*s=\"%s\"; Max-Age=%llu%s%.*s; HttpOnly", (int)lb->hash_name.len,
                 lb->hash_name.p, key->cookie, (unsigned long long)(lb->cookie_ttl_ms / 1000),
                 path ? "; Path=" : "", (int)lb->cookie_path.len, path ? lb->cookie_path.p : "");
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Choice */

int px_lb_ring_lookup(px_lb_cluster_t *lc, uint64_t h, int64_t now_ms)
{
    uint32_t n = lc->ring_size;
    if (n == 0) {
        return -1;
    }
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (lc->ring[mid].hash < h) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo == n) {
        lo = 0;
    }
    if (atomic_load_explicit(&lc->ejections_active, memory_order_relaxed) == 0) {
        return (int)lc->ring[lo].ep;
    }
    /* Skip ejected endpoints: the next entry on is where the key would land on a ring built
     * without them. After as many misses as endpoints, make sure someone is left at all
     * rather than walking a whole lap for nothing. */
    uint32_t ne = lc->cluster->n_endpoints;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t e = lc->ring[(lo + k) % n].ep;
        if (!px_lb_ejected(lc, e, now_ms)) {
            return (int)e;
        }
        if (k + 1 == ne) {
            bool any = false;
            for (uint32_t x = 0; x < ne && !any; x++) {
                any = !px_lb_ejected(lc, x, now_ms);
            }
            if (!any) {
                return -1;
            }
        }
    }
    return -1;
}

/* Endpoint for position pos in [0, total_weight). */
static uint32_t by_weight(const px_lb_cluster_t *lc, uint64_t pos)
{
    uint32_t lo = 0, hi = lc->cluster->n_endpoints - 1;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (lc->cum_weight[mid] <= pos) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/* A healthy endpoint at random in proportion to weight, or -1. */
static int draw(px_lb_cluster_t *lc, px_rng_t *rng, int64_t now_ms)
{
    uint32_t n = lc->cluster->n_endpoints;
    for (int t = 0; t < 4; t++) {
        uint32_t e = lc->weighted ? by_weight(lc, px_rng_next(rng) % lc->total_weight)
                                  : (uint32_t)(px_rng_next(rng) % n);
        if (!px_lb_ejected(lc, e, now_ms)) {
            return (int)e;
        }
    }
    uint32_t start = (uint32_t)(px_rng_next(rng) % n);
    for (uint32_t k = 0; k < n; k++) {
        uint32_t e = (start + k) % n;
        if (!px_lb_ejected(lc, e, now_ms)) {
            return (int)e;
        }
    }
    return -1;
}

int px_lb_choose(px_lb_cluster_t *lc, uint64_t *rr, const uint32_t *active, px_rng_t *rng,
                 const px_lb_key_t *key, int64_t now_ms)
{
    const px_cluster_t *c = lc->cluster;
    uint32_t n = c->n_endpoints;
    if (n == 0) {
        return -1;
    }
    switch (c->lb.kind) {
    case PX_LB_CONSISTENT_HASH:
        if (key != NULL && key->set) {
            return px_lb_ring_lookup(lc, key->hash, now_ms);
        }
        return draw(lc, rng, now_ms);
    case PX_LB_ROUND_ROBIN: {
        /* Weighted: each endpoint takes weight consecutive turns of every total_weight. */
        uint64_t turns = lc->weighted ? lc->total_weight : n;
        for (uint64_t t = 0; t < turns; t++) {
            uint64_t pos = (*rr)++ % turns;
            uint32_t e = lc->weighted ? by_weight(lc, pos) : (uint32_t)pos;
            if (!px_lb_ejected(lc, e, now_ms)) {
                return (int)e;
            }
        }
        return -1;
    }
    case PX_LB_RANDOM:
        return draw(lc, rng, now_ms);
    default: {
        /* LEAST_REQUEST: the better of two weighted draws, Envoy's power of two choices; with
         * weights, fewer requests in flight per unit of weight wins. */
        int a = draw(lc, rng, now_ms);
        int b = draw(lc, rng, now_ms);
        if (a < 0 || b < 0) {
            return a < 0 ? b : a;
        }
        uint64_t wa = c->endpoints[a].weight ? c->endpoints[a].weight : 1;
        uint64_t wb = c->endpoints[b].weight ? c->endpoints[b].weight : 1;
        return ((uint64_t)active[b] + 1) * wa < ((uint64_t)active[a] + 1) * wb ? b : a;
    }
    }
}

int px_lb_passthrough_addr(wf_str_t a, uint32_t def, struct sockaddr_storage *ss)
{
    char host[64];
    wf_str_t h = a;
    uint32_t port = def;
    const char *colon = NULL;
    if (a.len > 0 && a.p[0] == '[') {
        const char *rb = memchr(a.p, ']', a.len);
        if (rb == NULL) {
            return WF_E_INVAL;
        }
        h = (wf_str_t){a.p + 1, (size_t)(rb - a.p - 1)};
        if ((size_t)(rb - a.p) + 1 < a.len) {
            if (rb[1] != ':') {
                return WF_E_INVAL;
            }
            colon = rb + 1;
        }
    } else {
        colon = memchr(a.p, ':', a.len);
        if (colon != NULL) {
            h = (wf_str_t){a.p, (size_t)(colon - a.p)};
        }
    }
    if (colon != NULL) {
        size_t pl = a.len - (size_t)(colon - a.p) - 1;
        port = 0;
        if (pl == 0 || pl > 5) {
            return WF_E_INVAL;
        }
        for (size_t i = 0; i < pl; i++) {
            char ch = colon[1 + i];
            if (ch < '0' || ch > '9') {
                return WF_E_INVAL;
            }
            port = port * 10 + (uint32_t)(ch - '0');
        }
    }
    if (h.len == 0 || h.len >= sizeof(host) || port == 0 || port > 65535) {
        return WF_E_INVAL;
    }
    memcpy(host, h.p, h.len);
    host[h.len] = '\0';
    memset(ss, 0, sizeof(*ss));
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) != 0 &&
        uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) != 0) {
        return WF_E_INVAL;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Outlier detection */

bool px_lb_ejected(px_lb_cluster_t *lc, uint32_t ep, int64_t now_ms)
{
    px_lb_host_t *h = &lc->hosts[ep];
    int64_t until = atomic_load_explicit(&h->ejected_until_ms, memory_order_relaxed);
    if (until == 0) {
        return false;
    }
    if (now_ms < until) {
        return true;
    }
    /* Over: whoever swaps it back first counts the return. */
    if (atomic_compare_exchange_strong(&h->ejected_until_ms, &until, 0)) {
        atomic_store_explicit(&h->back_ms, now_ms, memory_order_relaxed);
        atomic_fetch_sub_explicit(&lc->ejections_active, 1, memory_order_relaxed);
    }
    return false;
}

/* Eject ep unless max_ejection_percent of the endpoints are ejected already. */
static bool eject(px_lb_cluster_t *lc, uint32_t ep, int64_t now_ms)
{
    const px_outlier_t *od = &lc->cluster->outlier;
    uint32_t n = lc->cluster->n_endpoints;
    uint32_t act = atomic_load_explicit(&lc->ejections_active, memory_order_relaxed);
    do {
        /* Envoy's rule: (ejected + 1) / hosts must stay within the percentage. */
        if ((uint64_t)(act + 1) * 100 > (uint64_t)od->max_ejection_percent * n) {
            return false;
        }
    } while (!atomic_compare_exchange_weak(&lc->ejections_active, &act, act + 1));
    px_lb_host_t *h = &lc->hosts[ep];
    /* The multiplier decays by one for every interval spent back in service. */
    uint32_t mult = atomic_load_explicit(&h->multiplier, memory_order_relaxed);
    int64_t back = atomic_load_explicit(&h->back_ms, memory_order_relaxed);
    if (back > 0 && od->interval_ms > 0 && mult > 0) {
        uint64_t k = (uint64_t)(now_ms - back) / od->interval_ms;
        mult = k >= mult ? 0 : mult - (uint32_t)k;
    }
    mult++;
    uint64_t cap = od->base_ejection_time_ms > PX_LB_MAX_EJECTION_MS ? od->base_ejection_time_ms
                                                                     : PX_LB_MAX_EJECTION_MS;
    uint64_t t = od->base_ejection_time_ms * mult;
    if (t > cap || (mult > 0 && t / mult != od->base_ejection_time_ms)) {
        t = cap;
    }
    int64_t until = now_ms + (int64_t)(t > 0 ? t : 1);
    int64_t zero = 0;
    if (!atomic_compare_exchange_strong(&h->ejected_until_ms, &zero, until)) {
        /* Another worker ejected it first. */
        atomic_fetch_sub_explicit(&lc->ejections_active, 1, memory_order_relaxed);
        return false;
    }
    atomic_store_explicit(&h->multiplier, mult, memory_order_relaxed);
    atomic_fetch_add_explicit(&lc->ejections_total, 1, memory_order_relaxed);
    return true;
}

bool px_lb_outcome(px_lb_cluster_t *lc, uint32_t ep, px_lb_result_t r, int status, int64_t now_ms)
{
    const px_outlier_t *od = &lc->cluster->outlier;
    if (!od->enabled || ep >= lc->cluster->n_endpoints) {
        return false;
    }
    if (r == PX_LB_CONNECT_FAILURE || r == PX_LB_RESET) {
        status = 503;
    } else if (r == PX_LB_TIMEOUT) {
        status = 504;
    }
    px_lb_host_t *h = &lc->hosts[ep];
    if (status < 500 || status > 599) {
        atomic_store_explicit(&h->c5xx, 0, memory_order_relaxed);
        atomic_store_explicit(&h->cgw, 0, memory_order_relaxed);
        return false;
    }
    if (px_lb_ejected(lc, ep, now_ms)) {
        return false; /* answers of requests sent before the ejection */
    }
    bool ejected = false;
    if (status >= 502 && status <= 504) {
        uint32_t g = atomic_fetch_add_explicit(&h->cgw, 1, memory_order_relaxed) + 1;
        if (od->consecutive_gateway_errors > 0 && g == od->consecutive_gateway_errors) {
            atomic_store_explicit(&h->cgw, 0, memory_order_relaxed);
            if (eject(lc, ep, now_ms)) {
                atomic_fetch_add_explicit(&lc->ejections_gateway, 1, memory_order_relaxed);
                ejected = true;
            }
        }
    } else {
        atomic_store_explicit(&h->cgw, 0, memory_order_relaxed);
    }
    uint32_t f = atomic_fetch_add_explicit(&h->c5xx, 1, memory_order_relaxed) + 1;
    if (od->consecutive_5xx_errors > 0 && f == od->consecutive_5xx_errors) {
        atomic_store_explicit(&h->c5xx, 0, memory_order_relaxed);
        if (!ejected && eject(lc, ep, now_ms)) {
            atomic_fetch_add_explicit(&lc->ejections_5xx, 1, memory_order_relaxed);
            ejected = true;
        }
    }
    return ejected;
}

/* ---------------------------------------------------------------------------------------- */
/* The worker side */

static void pool_setup(px_worker_t *w, px_ob_cluster_t *oc, px_pool_t *p,
                       const struct sockaddr_storage *ss)
{
    px_pool_init(p, &w->loop, (const struct sockaddr *)ss, oc->cluster->pool.connect_timeout_ms,
                 oc->cluster->pool.idle_timeout_ms);
    p->lim = &oc->lb->limits;
    p->cx_total = &oc->st->cx_total;
    p->cx_active = &oc->st->cx_active;
    p->cx_connect_fail = &oc->st->cx_connect_fail;
}

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family) {
        return false;
    }
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port &&
           memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

/* PASSTHROUGH: the pool for ss, reusing the slot of a destination with no connection left when
 * the table is full. */
static px_pool_t *passthrough_pool(px_worker_t *w, px_ob_cluster_t *oc,
                                   const struct sockaddr_storage *ss)
{
    px_pool_t *free_slot = NULL;
    for (uint32_t i = 0; i < oc->n_pt_pools; i++) {
        px_pool_t *p = oc->pt_pools[i];
        if (same_addr(&p->addr, ss)) {
            return p;
        }
        if (free_slot == NULL && p->n_open == 0 && p->wait_head == NULL) {
            free_slot = p;
        }
    }
    if (oc->n_pt_pools < PX_LB_PASSTHROUGH_POOLS) {
        if (oc->pt_pools == NULL) {
            oc->pt_pools = wf_calloc(PX_LB_PASSTHROUGH_POOLS, sizeof(*oc->pt_pools));
        }
        free_slot = wf_calloc(1, sizeof(*free_slot));
        oc->pt_pools[oc->n_pt_pools++] = free_slot;
    }
    if (free_slot != NULL) {
        pool_setup(w, oc, free_slot, ss); /* no connection refers to it any more */
    }
    return free_slot;
}

int px_lb_pick(px_worker_t *w, px_ob_cluster_t *oc, const px_lb_key_t *key, wf_str_t authority,
               int64_t now_ms, px_lb_pick_t *out)
{
    memset(out, 0, sizeof(*out));
    const px_cluster_t *c = oc->cluster;
    if (c->lb.kind == PX_LB_PASSTHROUGH) {
        struct sockaddr_storage ss;
        if (px_lb_passthrough_addr(authority, c->port > 0 ? c->port : 80, &ss) != 0) {
            return PX_LB_E_ADDR;
        }
        out->pool = passthrough_pool(w, oc, &ss);
        if (out->pool == NULL) {
            return PX_LB_E_FULL;
        }
        char ip[64] = "";
        if (ss.ss_family == AF_INET6) {
            uv_ip6_name((const struct sockaddr_in6 *)&ss, ip, sizeof(ip));
            snprintf(out->host, sizeof(out->host), "[%s]:%u", ip,
                     ntohs(((const struct sockaddr_in6 *)&ss)->sin6_port));
        } else {
            uv_ip4_name((const struct sockaddr_in *)&ss, ip, sizeof(ip));
            snprintf(out->host, sizeof(out->host), "%s:%u", ip,
                     ntohs(((const struct sockaddr_in *)&ss)->sin_port));
        }
        return 0;
    }
    int e = px_lb_choose(oc->lb, &oc->rr, oc->active, &w->rng, key, now_ms);
    if (e < 0) {
        return PX_LB_E_UH;
    }
    const px_endpoint_t *ep = &c->endpoints[e];
    if (!oc->pool_ready[e]) {
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof(ss));
        if (uv_ip4_addr(ep->address.p, (int)ep->port, (struct sockaddr_in *)&ss) != 0 &&
            uv_ip6_addr(ep->address.p, (int)ep->port, (struct sockaddr_in6 *)&ss) != 0) {
            return PX_LB_E_UH; /* a host name: endpoints are not resolved */
        }
        pool_setup(w, oc, &oc->pools[e], &ss);
        px_tls_pool_setup(&oc->pools[e], w->px->tls, c, ep);
        oc->pool_ready[e] = true;
    }
    out->pool = &oc->pools[e];
    out->ep = ep;
    out->active = &oc->active[e];
    snprintf(out->host, sizeof(out->host), "%.*s:%u", (int)ep->address.len, ep->address.p,
             ep->port);
    return 0;
}

void px_lb_ob_close(px_ob_cluster_t *oc)
{
    for (uint32_t e = 0; e < oc->cluster->n_endpoints; e++) {
        if (oc->pool_ready[e]) {
            px_pool_close(&oc->pools[e]);
        }
    }
    for (uint32_t i = 0; i < oc->n_pt_pools; i++) {
        px_pool_close(oc->pt_pools[i]);
    }
}

void px_lb_ob_free(px_ob_cluster_t *oc)
{
    for (uint32_t i = 0; i < oc->n_pt_pools; i++) {
        wf_free(oc->pt_pools[i]);
    }
    wf_free(oc->pt_pools);
    oc->pt_pools = NULL;
    oc->n_pt_pools = 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Retries and counters */

bool px_lb_retry_admit(px_lb_cluster_t *lc)
{
    uint32_t max = lc->cluster->pool.max_retries;
    uint32_t cur = atomic_load_explicit(&lc->retries_active, memory_order_relaxed);
    do {
        if (cur >= max) {
            atomic_fetch_add_explicit(&lc->retry_overflow, 1, memory_order_relaxed);
            return false;
        }
    } while (!atomic_compare_exchange_weak(&lc->retries_active, &cur, cur + 1));
    return true;
}

void px_lb_retry_release(px_lb_cluster_t *lc)
{
    atomic_fetch_sub_explicit(&lc->retries_active, 1, memory_order_relaxed);
}

void px_lb_render(px_lb_shared_t *sh, int64_t now_ms, wf_buf_t *out)
{
    static const struct {
        const char *name, *type, *help;
    } fam[] = {
        {"weft_proxy_upstream_cx_overflow_total", "counter",
         "Times a connection was wanted while max_connections were open."},
        {"weft_proxy_upstream_rq_pending_overflow_total", "counter",
         "Requests refused (503 UO) because http1_max_pending_requests were waiting."},
        {"weft_proxy_upstream_rq_pending_active", "gauge", "Requests waiting for a connection."},
        {"weft_proxy_upstream_rq_retry_overflow_total", "counter",
         "Retries not made because max_retries were in progress."},
        {"weft_proxy_outlier_detection_ejections_active", "gauge", "Endpoints ejected now."},
        {"weft_proxy_outlier_detection_ejections_total", "counter", "Ejections so far."},
    };
    for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
        wf_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", fam[f].name, fam[f].help, fam[f].name,
                      fam[f].type);
        for (uint32_t i = 0; i < sh->n_clusters; i++) {
            px_lb_cluster_t *lc = &sh->clusters[i];
            uint64_t v = 0;
            switch (f) {
            case 0:
                v = atomic_load_explicit(&lc->limits.cx_overflow, memory_order_relaxed);
                break;
            case 1:
                v = atomic_load_explicit(&lc->limits.pending_overflow, memory_order_relaxed);
                break;
            case 2:
                v = atomic_load_explicit(&lc->limits.pending, memory_order_relaxed);
                break;
            case 3:
                v = atomic_load_explicit(&lc->retry_overflow, memory_order_relaxed);
                break;
            case 4:
                for (uint32_t e = 0; e < lc->cluster->n_endpoints; e++) {
                    (void)px_lb_ejected(lc, e, now_ms); /* ends ejections that are over */
                }
                v = atomic_load_explicit(&lc->ejections_active, memory_order_relaxed);
                break;
            default:
                v = atomic_load_explicit(&lc->ejections_total, memory_order_relaxed);
                break;
            }
            wf_buf_printf(out, "%s{cluster_name=\"%.*s\"} %llu\n", fam[f].name,
                          (int)lc->cluster->name.len, lc->cluster->name.p, (unsigned long long)v);
        }
    }
}
