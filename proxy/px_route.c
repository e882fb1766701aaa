/*
 * px_route.c - Istio's routing semantics over a snapshot: Envoy's virtual host selection by
 * domain, first-match HTTPRoute evaluation, weighted destination choice, rewrite and redirect
 * targets, and the fault, mirror and retry decisions. Pure functions; see px_route.h.
 */
#include "px_route.h"

#include "wf_err.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- virtual hosts ---- */

/* Compare a (any case) with b (stored lower-case), byte order of the lower-cased a. */
static int ci_cmp(wf_str_t a, wf_str_t b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    for (size_t i = 0; i < n; i++) {
        int x = tolower((unsigned char)a.p[i]), y = (unsigned char)b.p[i];
        if (x != y) {
            return x < y ? -1 : 1;
        }
    }
    return a.len < b.len ? -1 : a.len > b.len ? 1 : 0;
}

static bool ci_eq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (tolower((unsigned char)a[i]) != tolower((unsigned char)b[i])) {
            return false;
        }
    }
    return true;
}

static const px_vhost_t *find_exact(const px_snapshot_t *s, wf_str_t authority, uint32_t port)
{
    size_t lo = 0, hi = s->n_dom_exact;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const px_dom_index_t *e = &s->dom_exact[mid];
        int c = e->port != port ? (e->port < port ? -1 : 1) : -ci_cmp(authority, e->value);
        if (c == 0) {
            return e->vhost;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

/* The wildcard index is sorted by port, kind (suffix, prefix, any), then longer values
 * first: the first entry of the port that matches is Envoy's choice. */
static const px_vhost_t *find_wild(const px_snapshot_t *s, wf_str_t a, uint32_t port)
{
    for (uint32_t i = 0; i < s->n_dom_wild; i++) {
        const px_dom_index_t *e = &s->dom_wild[i];
        if (e->port < port) {
            continue;
        }
        if (e->port > port) {
            break;
        }
        switch (e->kind) {
        case PX_DOM_SUFFIX:
            if (a.len > e->value.len &&
                ci_eq(a.p + a.len - e->value.len, e->value.p, e->value.len)) {
                return e->vhost;
            }
            break;
        case PX_DOM_PREFIX:
            if (a.len > e->value.len && ci_eq(a.p, e->value.p, e->value.len)) {
                return e->vhost;
            }
            break;
        case PX_DOM_ANY:
            return e->vhost;
        case PX_DOM_EXACT:
            break;
        }
    }
    return NULL;
}

const px_vhost_t *px_route_select_vhost(const px_snapshot_t *s, wf_str_t authority, uint32_t port)
{
    const px_vhost_t *vh = find_exact(s, authority, port);
    if (vh == NULL) {
        vh = find_wild(s, authority, port);
    }
    if (vh == NULL && port != 0) {
        vh = find_exact(s, authority, 0);
        if (vh == NULL) {
            vh = find_wild(s, authority, 0);
        }
    }
    return vh;
}

/* ---- matching ---- */

int px_strmatch_eval(const px_snapshot_t *s, const px_strmatch_t *m, wf_str_t v, bool ignore_case,
                     struct pcre2_real_match_data_8 *md)
{
    switch (m->kind) {
    case PX_SM_NONE:
    case PX_SM_PRESENT:
        return 1;
    case PX_SM_EXACT:
        if (v.len != m->value.len) {
            return 0;
        }
        return ignore_case ? ci_eq(v.p, m->value.p, v.len) : memcmp(v.p, m->value.p, v.len) == 0;
    case PX_SM_PREFIX:
        if (v.len < m->value.len) {
            return 0;
        }
        return ignore_case ? ci_eq(v.p, m->value.p, m->value.len)
                           : memcmp(v.p, m->value.p, m->value.len) == 0;
    case PX_SM_REGEX: {
        pcre2_match_data *own = NULL;
        if (md == NULL) {
            own = pcre2_match_data_create(1, NULL);
            WF_ASSERT(own != NULL);
            md = own;
        }
        /* An empty value has a NULL-able pointer; PCRE2 wants a valid one. */
        PCRE2_SPTR subj = (PCRE2_SPTR)(v.p != NULL ? v.p : "");
        int rc = pcre2_match(m->re, subj, v.len, 0, 0, md, s->mctx);
        pcre2_match_data_free(own);
        if (rc >= 0) {
            return 1;
        }
        return rc == PCRE2_ERROR_NOMATCH ? 0 : -1;
    }
    }
    return 0;
}

static const px_route_hdr_t *find_header(const px_route_req_t *req, wf_str_t lname)
{
    for (size_t i = 0; i < req->n_headers; i++) {
        if (req->headers[i].name.len == lname.len &&
            ci_eq(req->headers[i].name.p, lname.p, lname.len)) {
            return &req->headers[i];
        }
    }
    return NULL;
}

/* The value of key in a raw query string (first occurrence, not percent-decoded, as Envoy's
 * query parameter matcher compares). A key without '=' has the empty value. */
static bool find_query(wf_str_t q, wf_str_t key, wf_str_t *val)
{
    size_t i = 0;
    while (i < q.len) {
        size_t j = i;
        while (j < q.len && q.p[j] != '&') {
            j++;
        }
        const char *eq = memchr(q.p + i, '=', j - i);
        size_t klen = eq ? (size_t)(eq - (q.p + i)) : j - i;
        if (klen == key.len && memcmp(q.p + i, key.p, klen) == 0) {
            *val = eq ? (wf_str_t){eq + 1, (size_t)(q.p + j - eq - 1)} : (wf_str_t){"", 0};
            return true;
        }
        i = j + 1;
    }
    return false;
}

bool px_route_match_one(const px_snapshot_t *s, const px_match_t *m, const px_route_req_t *req)
{
    if (m->port != 0 && m->port != req->port) {
        return false;
    }
    if (px_strmatch_eval(s, &m->uri, req->path, m->ignore_uri_case, req->md) != 1 ||
        px_strmatch_eval(s, &m->scheme, req->scheme, false, req->md) != 1 ||
        px_strmatch_eval(s, &m->method, req->method, false, req->md) != 1 ||
        px_strmatch_eval(s, &m->authority, req->authority, false, req->md) != 1) {
        return false;
    }
    for (uint32_t i = 0; i < m->n_headers; i++) {
        const px_route_hdr_t *h = find_header(req, m->headers[i].name);
        if (h == NULL || px_strmatch_eval(s, &m->headers[i].match, h->value, false, req->md) != 1) {
            return false;
        }
    }
    /* withoutHeaders: the condition holds when the header is absent or does not match. */
    for (uint32_t i = 0; i < m->n_without_headers; i++) {
        const px_route_hdr_t *h = find_header(req, m->without_headers[i].name);
        if (h != NULL) {
            int rc = px_strmatch_eval(s, &m->without_headers[i].match, h->value, false, req->md);
            if (rc != 0) {
                return false; /* matched, or could not tell */
            }
        }
    }
    for (uint32_t i = 0; i < m->n_query_params; i++) {
        wf_str_t v;
        if (!find_query(req->query, m->query_params[i].name, &v) ||
            px_strmatch_eval(s, &m->query_params[i].match, v, false, req->md) != 1) {
            return false;
        }
    }
    for (uint32_t i = 0; i < m->n_source_labels; i++) {
        bool found = false;
        for (size_t j = 0; j < req->n_source_labels && !found; j++) {
            found = wf_str_eq(req->source_labels[j].key, m->source_labels[i].key) &&
                    wf_str_eq(req->source_labels[j].value, m->source_labels[i].value);
        }
        if (!found) {
            return false;
        }
    }
    return true;
}

const px_route_t *px_route_match(const px_vhost_t *vh, const px_route_req_t *req,
                                 const px_match_t **matched)
{
    if (matched != NULL) {
        *matched = NULL;
    }
    if (vh == NULL) {
        return NULL;
    }
    for (uint32_t i = 0; i < vh->n_routes; i++) {
        const px_route_t *r = &vh->routes[i];
        if (r->n_match == 0) {
            return r;
        }
        for (uint32_t j = 0; j < r->n_match; j++) {
            if (px_route_match_one(vh->snap, &r->match[j], req)) {
                if (matched != NULL) {
                    *matched = &r->match[j];
                }
                return r;
            }
        }
    }
    return NULL;
}

/* ---- decisions ---- */

const px_route_dest_t *px_route_pick_destination(const px_route_t *r, uint64_t rnd)
{
    if (r == NULL || r->action != PX_ACTION_ROUTE || r->total_weight == 0) {
        return NULL;
    }
    uint64_t x = rnd % r->total_weight;
    for (uint32_t i = 0; i < r->n_route; i++) {
        if (x < r->route[i].weight) {
            return &r->route[i];
        }
        x -= r->route[i].weight;
    }
    WF_ASSERT(!"weights do not add up to total_weight");
    return NULL;
}

bool px_route_draw_pct(uint64_t rnd, double pct)
{
    if (pct <= 0.0) {
        return false;
    }
    if (pct >= 100.0) {
        return true;
    }
    /* The top 53 bits as a uniform double in [0, 1). */
    double u = (double)(rnd >> 11) * 0x1.0p-53;
    return u * 100.0 < pct;
}

void px_route_fault_decide(const px_route_t *r, uint64_t rnd_delay, uint64_t rnd_abort,
                           px_fault_decision_t *out)
{
    out->delay_ms = 0;
    out->abort_status = 0;
    if (r->fault.delay_set && px_route_draw_pct(rnd_delay, r->fault.delay_percentage)) {
        out->delay_ms = r->fault.delay_ms;
    }
    if (r->fault.abort_set && px_route_draw_pct(rnd_abort, r->fault.abort_percentage)) {
        out->abort_status = r->fault.abort_status;
    }
}

bool px_route_mirror_decide(const px_route_t *r, uint64_t rnd)
{
    return r->has_mirror && px_route_draw_pct(rnd, r->mirror_percentage);
}

bool px_route_retry_on_status(const px_retries_t *rt, unsigned status)
{
    if (rt->attempts == 0) {
        return false;
    }
    if ((rt->retry_on & PX_RETRY_5XX) && status >= 500 && status <= 599) {
        return true;
    }
    if ((rt->retry_on & PX_RETRY_GATEWAY_ERROR) &&
        (status == 502 || status == 503 || status == 504)) {
        return true;
    }
    if ((rt->retry_on & PX_RETRY_RETRIABLE_4XX) && status == 409) {
        return true;
    }
    if (rt->retry_on & PX_RETRY_RETRIABLE_STATUS_CODES) {
        for (uint32_t i = 0; i < rt->n_status_codes; i++) {
            if (rt->status_codes[i] == status) {
                return true;
            }
        }
    }
    return false;
}

/* ---- rewrite and redirect ---- */

typedef struct {
    char *p;
    size_t cap, len;
    bool over;
} out_t;

static void put(out_t *o, const char *s, size_t n)
{
    if (o->over || n >= o->cap - o->len) {
        o->over = true;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static int finish(out_t *o, size_t *out_len)
{
    if (o->over) {
        if (o->cap > 0) {
            o->p[0] = '\0';
        }
        *out_len = 0;
        return WF_E_LIMIT;
    }
    *out_len = o->len;
    return 0;
}

int px_route_rewrite_path(const px_route_t *r, const px_match_t *matched, wf_str_t path, char *out,
                          size_t cap, size_t *out_len)
{
    out_t o = {out, cap, 0, cap == 0};
    if (cap > 0) {
        out[0] = '\0';
    }
    if (!r->has_rewrite || r->rewrite.uri.len == 0) {
        put(&o, path.p, path.len);
        return finish(&o, out_len);
    }
    put(&o, r->rewrite.uri.p, r->rewrite.uri.len);
    if (matched != NULL && matched->uri.kind == PX_SM_PREFIX &&
        path.len >= matched->uri.value.len) {
        put(&o, path.p + matched->uri.value.len, path.len - matched->uri.value.len);
    }
    return finish(&o, out_len);
}

wf_str_t px_route_rewrite_authority(const px_route_t *r, wf_str_t authority)
{
    return r->has_rewrite && r->rewrite.authority.len > 0 ? r->rewrite.authority : authority;
}

/* Split host[:port] (an IPv6 literal keeps its brackets). */
static void split_port(wf_str_t a, wf_str_t *host, wf_str_t *port)
{
    *host = a;
    *port = (wf_str_t){"", 0};
    size_t i = a.len;
    while (i > 0 && isdigit((unsigned char)a.p[i - 1])) {
        i--;
    }
    if (i > 0 && i < a.len && a.p[i - 1] == ':') {
        wf_str_t h = {a.p, i - 1};
        /* "::1" without brackets is not host:port. */
        if (memchr(h.p, ':', h.len) == NULL || (h.len > 0 && h.p[h.len - 1] == ']')) {
            *host = h;
            *port = (wf_str_t){a.p + i, a.len - i};
        }
    }
}

int px_route_redirect_location(const px_route_t *r, const px_route_req_t *req, char *out,
                               size_t cap, size_t *out_len)
{
    if (r->action != PX_ACTION_REDIRECT) {
        *out_len = 0;
        return WF_E_INVAL;
    }
    const px_redirect_t *rd = &r->redirect;
    out_t o = {out, cap, 0, cap == 0};
    if (cap > 0) {
        out[0] = '\0';
    }
    wf_str_t scheme = rd->scheme.len    ? rd->scheme
                      : req->scheme.len ? req->scheme
                                        : WF_STR_LIT("http");
    put(&o, scheme.p, scheme.len);
    put(&o, "://", 3);
    /* As Envoy's host_redirect: a new authority replaces host and port together. */
    wf_str_t host, port, req_port;
    split_port(req->authority, &host, &req_port);
    port = req_port;
    if (rd->authority.len > 0) {
        split_port(rd->authority, &host, &port);
    }
    char pbuf[16];
    if (rd->port != 0) {
        int n = snprintf(pbuf, sizeof(pbuf), "%u", rd->port);
        port = (wf_str_t){pbuf, (size_t)n};
    } else if (rd->derive_port == PX_DERIVE_PORT_FROM_PROTOCOL_DEFAULT) {
        port = (wf_str_t){"", 0};
    } else if (rd->derive_port == PX_DERIVE_PORT_FROM_REQUEST_PORT) {
        port = req_port;
        if (port.len == 0 && req->port != 0) {
            int n = snprintf(pbuf, sizeof(pbuf), "%u", req->port);
            port = (wf_str_t){pbuf, (size_t)n};
        }
    }
    put(&o, host.p, host.len);
    if (port.len > 0) {
        put(&o, ":", 1);
        put(&o, port.p, port.len);
    }
    if (rd->uri.len > 0) {
        put(&o, rd->uri.p, rd->uri.len);
        if (memchr(rd->uri.p, '?', rd->uri.len) == NULL && req->query.len > 0) {
            put(&o, "?", 1);
            put(&o, req->query.p, req->query.len);
        }
    } else {
        put(&o, req->path.len ? req->path.p : "/", req->path.len ? req->path.len : 1);
        if (req->query.len > 0) {
            put(&o, "?", 1);
            put(&o, req->query.p, req->query.len);
        }
    }
    return finish(&o, out_len);
}
