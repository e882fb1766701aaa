/*
 * px_authz.c - AuthorizationPolicy evaluation (see px_authz.h): the compile helpers the
 * snapshot parser uses to turn policy values into matchers once, and the per-request check
 * that walks them without allocating.
 *
 * Every matcher answers "does this value match"; an attribute the request does not have (no
 * principal without mTLS, no such header, no SNI, no JWT) is "absent", which no value matches
 * and therefore every not_* list accepts, the way Envoy's RBAC filter evaluates Istio's
 * generated `not_id` / `not_rule` wrappers around matchers that fail on a missing attribute.
 */
#include "px_authz.h"

#include "wf_err.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define SPIFFE_PREFIX "spiffe://"

enum { M_NOCASE = 1, M_PRESENCE = 2 };

/* An address of the request, parsed once per check. */
typedef struct {
    bool present;
    uint8_t family; /* 4 or 6 */
    uint8_t addr[16];
} addr_t;

/* ---- compile helpers ---- */

void px_authz_compile_str(wf_str_t s, px_authz_str_t *out)
{
    if (s.len == 1 && s.p[0] == '*') {
        *out = (px_authz_str_t){PX_AZ_ANY, {"", 0}};
    } else if (s.len > 0 && s.p[s.len - 1] == '*') {
        *out = (px_authz_str_t){PX_AZ_PREFIX, {s.p, s.len - 1}};
    } else if (s.len > 0 && s.p[0] == '*') {
        *out = (px_authz_str_t){PX_AZ_SUFFIX, {s.p + 1, s.len - 1}};
    } else {
        *out = (px_authz_str_t){PX_AZ_EXACT, s};
    }
}

/* Parse an IP literal of n bytes; false when it is not one. IPv4-mapped IPv6 addresses count
 * as IPv4 so that a dual-stack socket's peer matches IPv4 blocks. */
static bool parse_ip(const char *p, size_t n, uint8_t *family, uint8_t addr[16])
{
    char buf[INET6_ADDRSTRLEN + 1];
    if (n == 0 || n >= sizeof(buf)) {
        return false;
    }
    memcpy(buf, p, n);
    buf[n] = '\0';
    memset(addr, 0, 16);
    if (inet_pton(AF_INET, buf, addr) == 1) {
        *family = 4;
        return true;
    }
    if (inet_pton(AF_INET6, buf, addr) != 1) {
        return false;
    }
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(addr, mapped, 12) == 0) {
        memmove(addr, addr + 12, 4);
        memset(addr + 4, 0, 12);
        *family = 4;
        return true;
    }
    *family = 6;
    return true;
}

int px_authz_compile_cidr(wf_str_t s, px_authz_cidr_t *out, const char **why)
{
    memset(out, 0, sizeof(*out));
    const char *slash = memchr(s.p, '/', s.len);
    size_t alen = slash != NULL ? (size_t)(slash - s.p) : s.len;
    if (!parse_ip(s.p, alen, &out->family, out->addr)) {
        *why = "not an IP address or CIDR";
        return WF_E_INVAL;
    }
    unsigned max = out->family == 4 ? 32 : 128;
    unsigned bits = max;
    if (slash != NULL) {
        const char *d = slash + 1;
        size_t dn = s.len - alen - 1;
        if (dn == 0 || dn > 3) {
            *why = "bad CIDR prefix length";
            return WF_E_INVAL;
        }
        bits = 0;
        for (size_t i = 0; i < dn; i++) {
            if (!isdigit((unsigned char)d[i])) {
                *why = "bad CIDR prefix length";
                return WF_E_INVAL;
            }
            bits = bits * 10 + (unsigned)(d[i] - '0');
        }
        if (bits > max) {
            *why = "CIDR prefix length out of range";
            return WF_E_INVAL;
        }
    }
    out->bits = (uint8_t)bits;
    for (unsigned i = 0; i < 16; i++) {
        unsigned keep = bits > i * 8 ? bits - i * 8 : 0;
        if (keep < 8) {
            out->addr[i] &= (uint8_t)(0xff00u >> keep);
        }
    }
    return 0;
}

int px_authz_compile_port(wf_str_t s, uint16_t *out, const char **why)
{
    uint32_t v = 0;
    if (s.len == 0 || s.len > 5) {
        *why = "must be a port number 0..65535";
        return WF_E_INVAL;
    }
    for (size_t i = 0; i < s.len; i++) {
        if (!isdigit((unsigned char)s.p[i])) {
            *why = "must be a port number 0..65535";
            return WF_E_INVAL;
        }
        v = v * 10 + (uint32_t)(s.p[i] - '0');
    }
    if (v > 65535) {
        *why = "must be a port number 0..65535";
        return WF_E_INVAL;
    }
    *out = (uint16_t)v;
    return 0;
}

/* Istio's path template rules: the template starts with `/`; each operator is a whole segment
 * (`/{*}/`, not `/a{*}`); `{**}` appears at most once and no operator follows it; a bare `*`
 * is refused (it cannot be mixed with operators); any other `{...}` is refused. */
int px_authz_compile_path(wf_arena_t *arena, wf_str_t s, px_authz_path_t *out, const char **why)
{
    memset(out, 0, sizeof(*out));
    if (memchr(s.p, '{', s.len) == NULL && memchr(s.p, '}', s.len) == NULL) {
        px_authz_compile_str(s, &out->s);
        return 0;
    }
    if (s.len == 0 || s.p[0] != '/') {
        *why = "a path template must start with /";
        return WF_E_INVAL;
    }
    /* At most one segment per byte: count generously, then fill. */
    size_t cap = s.len + 1;
    px_authz_seg_t *segs = wf_arena_alloc_checked(arena, cap * sizeof(*segs));
    if (segs == NULL) {
        *why = "snapshot too large";
        return WF_E_LIMIT;
    }
    uint32_t n = 0;
    bool many_seen = false;
    size_t lit_start = 0;
    size_t i = 0;
    while (i < s.len) {
        char ch = s.p[i];
        if (ch == '{') {
            size_t oplen;
            px_authz_seg_kind_t kind;
            if (s.len - i >= 4 && memcmp(s.p + i, "{**}", 4) == 0) {
                oplen = 4;
                kind = PX_AZ_SEG_MANY;
            } else if (s.len - i >= 3 && memcmp(s.p + i, "{*}", 3) == 0) {
                oplen = 3;
                kind = PX_AZ_SEG_ONE;
            } else {
                *why = "only {*} and {**} are path template operators";
                return WF_E_INVAL;
            }
            if (many_seen) {
                *why = "{**} must be the last operator of a path template";
                return WF_E_INVAL;
            }
            if (s.p[i - 1] != '/' || (i + oplen < s.len && s.p[i + oplen] != '/')) {
                *why = "a path template operator must be a whole path segment";
                return WF_E_INVAL;
            }
            if (i > lit_start) {
                segs[n++] = (px_authz_seg_t){PX_AZ_SEG_LIT, {s.p + lit_start, i - lit_start}};
            }
            segs[n++] = (px_authz_seg_t){kind, {"", 0}};
            many_seen = many_seen || kind == PX_AZ_SEG_MANY;
            i += oplen;
            lit_start = i;
            continue;
        }
        if (ch == '}' || ch == '*') {
            *why = "a path template may hold * only inside {*} or {**}";
            return WF_E_INVAL;
        }
        i++;
    }
    if (i > lit_start) {
        segs[n++] = (px_authz_seg_t){PX_AZ_SEG_LIT, {s.p + lit_start, i - lit_start}};
    }
    WF_ASSERT(n <= cap);
    out->s = (px_authz_str_t){PX_AZ_EXACT, s};
    out->segs = segs;
    out->n_segs = n;
    return 0;
}

static const struct {
    const char *name;
    px_authz_key_t key;
} k_keys[] = {
    {"source.ip", PX_AZ_KEY_SOURCE_IP},
    {"remote.ip", PX_AZ_KEY_REMOTE_IP},
    {"source.namespace", PX_AZ_KEY_SOURCE_NS},
    {"source.principal", PX_AZ_KEY_SOURCE_PRINCIPAL},
    {"destination.ip", PX_AZ_KEY_DEST_IP},
    {"destination.port", PX_AZ_KEY_DEST_PORT},
    {"connection.sni", PX_AZ_KEY_SNI},
    {"request.auth.principal", PX_AZ_KEY_REQUEST_AUTH},
    {"request.auth.audiences", PX_AZ_KEY_REQUEST_AUTH},
    {"request.auth.presenter", PX_AZ_KEY_REQUEST_AUTH},
};

int px_authz_compile_key(wf_str_t s, px_authz_key_t *out, wf_str_t *header, const char **why)
{
    *header = (wf_str_t){"", 0};
    for (size_t i = 0; i < sizeof(k_keys) / sizeof(k_keys[0]); i++) {
        if (wf_str_eq_c(s, k_keys[i].name)) {
            *out = k_keys[i].key;
            return 0;
        }
    }
    static const char hdr[] = "request.headers[";
    static const char claims[] = "request.auth.claims[";
    size_t hl = sizeof(hdr) - 1, cl = sizeof(claims) - 1;
    if (s.len > hl + 1 && memcmp(s.p, hdr, hl) == 0 && s.p[s.len - 1] == ']') {
        wf_str_t name = {s.p + hl, s.len - hl - 1};
        for (size_t i = 0; i < name.len; i++) {
            unsigned char c = (unsigned char)name.p[i];
            if (c <= ' ' || c >= 0x7f || strchr("()<>@,;:\\\"/[]?={}", c) != NULL) {
                *why = "request.headers[...] needs a header name";
                return WF_E_INVAL;
            }
        }
        *out = PX_AZ_KEY_HEADER;
        *header = name;
        return 0;
    }
    if (s.len > cl + 1 && memcmp(s.p, claims, cl) == 0 && s.p[s.len - 1] == ']') {
        *out = PX_AZ_KEY_REQUEST_AUTH;
        return 0;
    }
    *why = "unknown condition key (see Istio's authorization policy conditions)";
    return WF_E_INVAL;
}

/* 1 for a `.` segment, 2 for `..`, 0 otherwise; `%2e` counts as a dot. */
static int dot_segment(const char *p, size_t n)
{
    int dots = 0;
    size_t i = 0;
    while (i < n && dots < 3) {
        if (p[i] == '.') {
            i++;
        } else if (n - i >= 3 && p[i] == '%' && p[i + 1] == '2' && (p[i + 2] | 0x20) == 'e') {
            i += 3;
        } else {
            return 0;
        }
        dots++;
    }
    return i == n && dots <= 2 ? dots : 0;
}

size_t px_authz_normalize_path(wf_str_t in, char *out)
{
    const char *q = memchr(in.p, '?', in.len);
    size_t plen = q != NULL ? (size_t)(q - in.p) : in.len;
    for (size_t i = 0; i < plen; i++) {
        out[i] = in.p[i] == '\\' ? '/' : in.p[i];
    }
    size_t o = 0;
    if (plen > 0 && out[0] == '/') {
        /* In place: what is written never gets ahead of what is read. */
        size_t r = 0;
        while (r < plen) {
            size_t seg = r + 1, end = seg;
            while (end < plen && out[end] != '/') {
                end++;
            }
            bool last = end == plen;
            int dots = dot_segment(out + seg, end - seg);
            if (dots == 2) {
                while (o > 0 && out[o - 1] != '/') {
                    o--;
                }
                if (o > 0) {
                    o--;
                }
            }
            if (dots == 0) {
                out[o++] = '/';
                memmove(out + o, out + seg, end - seg);
                o += end - seg;
            } else if (last) {
                out[o++] = '/';
            }
            r = end;
        }
    } else {
        o = plen;
    }
    memcpy(out + o, in.p + plen, in.len - plen);
    return o + in.len - plen;
}

/* ---- matching ---- */

/* M_NOCASE: ASCII case-insensitive (hosts). `*` is any non-empty value (Istio's `.+` regex);
 * with M_PRESENCE any present value, empty included (Istio's presence match on :authority and
 * :method). */
static bool str_match(const px_authz_str_t *m, wf_str_t v, int flags)
{
    int (*cmp)(const char *, const char *, size_t) = (flags & M_NOCASE) ? strncasecmp : strncmp;
    switch (m->kind) {
    case PX_AZ_ANY:
        return v.len > 0 || (flags & M_PRESENCE);
    case PX_AZ_PREFIX:
        return v.len >= m->v.len && (m->v.len == 0 || cmp(v.p, m->v.p, m->v.len) == 0);
    case PX_AZ_SUFFIX:
        return v.len >= m->v.len &&
               (m->v.len == 0 || cmp(v.p + v.len - m->v.len, m->v.p, m->v.len) == 0);
    default:
        return v.len == m->v.len && (v.len == 0 || cmp(v.p, m->v.p, v.len) == 0);
    }
}

/* Does any value of l match v (false when v is absent)? */
static bool strs_any(const px_authz_strs_t *l, bool present, wf_str_t v, int flags)
{
    for (uint32_t i = 0; present && i < l->n; i++) {
        if (str_match(&l->v[i], v, flags)) {
            return true;
        }
    }
    return false;
}

/* A values / not_values pair: some value matches (when there are values) and no not_value
 * does. The generic shape of every field of Istio's Source, Operation and Condition. */
static bool field_ok(bool has_values, bool any_value, bool has_not, bool any_not)
{
    return (!has_values || any_value) && (!has_not || !any_not);
}

static bool strs_ok(const px_authz_strs_t *in, const px_authz_strs_t *not_in, bool present,
                    wf_str_t v, int flags)
{
    if (in->n == 0 && not_in->n == 0) {
        return true;
    }
    return field_ok(in->n > 0, strs_any(in, present, v, flags), not_in->n > 0,
                    strs_any(not_in, present, v, flags));
}

static bool cidr_match(const px_authz_cidr_t *c, const addr_t *a)
{
    if (!a->present || a->family != c->family) {
        return false;
    }
    unsigned full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(a->addr, c->addr, full) != 0) {
        return false;
    }
    if (rest == 0) {
        return true;
    }
    uint8_t mask = (uint8_t)(0xff00u >> rest);
    return (a->addr[full] & mask) == c->addr[full];
}

static bool cidrs_any(const px_authz_cidrs_t *l, const addr_t *a)
{
    for (uint32_t i = 0; i < l->n; i++) {
        if (cidr_match(&l->v[i], a)) {
            return true;
        }
    }
    return false;
}

static bool cidrs_ok(const px_authz_cidrs_t *in, const px_authz_cidrs_t *not_in, const addr_t *a)
{
    return field_ok(in->n > 0, cidrs_any(in, a), not_in->n > 0, cidrs_any(not_in, a));
}

static bool ports_any(const px_authz_ports_t *l, uint32_t port)
{
    for (uint32_t i = 0; i < l->n; i++) {
        if (l->v[i] == port) {
            return true;
        }
    }
    return false;
}

static bool ports_ok(const px_authz_ports_t *in, const px_authz_ports_t *not_in, uint32_t port)
{
    return field_ok(in->n > 0, ports_any(in, port), not_in->n > 0, ports_any(not_in, port));
}

/* Envoy's uri template glob characters (RFC 3986 pchar without `*`): what `{*}` matches. */
static bool is_pchar(unsigned char c)
{
    return isalnum(c) || strchr("-._~%!$&'()+,;:@=", c) != NULL;
}

static bool template_match(const px_authz_path_t *t, wf_str_t v)
{
    size_t pos = 0;
    for (uint32_t i = 0; i < t->n_segs; i++) {
        const px_authz_seg_t *sg = &t->segs[i];
        if (sg->kind == PX_AZ_SEG_LIT) {
            if (v.len - pos < sg->lit.len || memcmp(v.p + pos, sg->lit.p, sg->lit.len) != 0) {
                return false;
            }
            pos += sg->lit.len;
        } else if (sg->kind == PX_AZ_SEG_ONE) {
            /* Whole segment: what follows is `/` or the end, so take every pchar. */
            size_t start = pos;
            while (pos < v.len && is_pchar((unsigned char)v.p[pos])) {
                pos++;
            }
            if (pos == start) {
                return false;
            }
        } else {
            /* The last operator: at most one literal follows, which must end the path. */
            wf_str_t tail = {"", 0};
            if (i + 1 < t->n_segs) {
                WF_ASSERT(i + 2 == t->n_segs && t->segs[i + 1].kind == PX_AZ_SEG_LIT);
                tail = t->segs[i + 1].lit;
            }
            if (v.len - pos < tail.len || memcmp(v.p + v.len - tail.len, tail.p, tail.len) != 0) {
                return false;
            }
            for (size_t k = pos; k < v.len - tail.len; k++) {
                unsigned char c = (unsigned char)v.p[k];
                if (c != '/' && !is_pchar(c)) {
                    return false;
                }
            }
            return true;
        }
    }
    return pos == v.len;
}

static bool paths_any(const px_authz_paths_t *l, wf_str_t path)
{
    for (uint32_t i = 0; i < l->n; i++) {
        const px_authz_path_t *p = &l->v[i];
        if (p->n_segs > 0 ? template_match(p, path) : str_match(&p->s, path, 0)) {
            return true;
        }
    }
    return false;
}

/* The request attributes derived once per check. */
typedef struct {
    const px_authz_req_t *r;
    bool has_principal;
    wf_str_t principal; /* without `spiffe://` */
    bool has_ns;
    wf_str_t ns; /* the `ns/<ns>/` part of the principal */
    addr_t src, remote, dst;
    wf_str_t path;        /* without query and fragment */
    wf_str_t host_noport; /* host without `:port` ("" when it had none) */
} attrs_t;

static bool host_any(const px_authz_strs_t *l, const attrs_t *a)
{
    bool present = a->r->host.len > 0;
    return strs_any(l, present, a->r->host, M_NOCASE | M_PRESENCE) ||
           (a->host_noport.len > 0 && strs_any(l, true, a->host_noport, M_NOCASE | M_PRESENCE));
}

static bool source_match(const px_authz_source_t *s, const attrs_t *a)
{
    /* No RequestAuthentication in weft: a request principal is never present. */
    wf_str_t none = {"", 0};
    return strs_ok(&s->principals, &s->not_principals, a->has_principal, a->principal, 0) &&
           (a->r->tcp ||
            strs_ok(&s->request_principals, &s->not_request_principals, false, none, 0)) &&
           strs_ok(&s->namespaces, &s->not_namespaces, a->has_ns, a->ns, 0) &&
           cidrs_ok(&s->ip_blocks, &s->not_ip_blocks, &a->src) &&
           cidrs_ok(&s->remote_ip_blocks, &s->not_remote_ip_blocks, &a->remote);
}

static bool op_match(const px_authz_op_t *o, const attrs_t *a)
{
    const px_authz_req_t *r = a->r;
    if (r->tcp) {
        return ports_ok(&o->ports, &o->not_ports, r->dest_port);
    }
    if ((o->hosts.n > 0 && !host_any(&o->hosts, a)) ||
        (o->not_hosts.n > 0 && host_any(&o->not_hosts, a))) {
        return false;
    }
    if (!ports_ok(&o->ports, &o->not_ports, r->dest_port)) {
        return false;
    }
    if (!strs_ok(&o->methods, &o->not_methods, r->method.len > 0, r->method, M_PRESENCE)) {
        return false;
    }
    return field_ok(o->paths.n > 0, paths_any(&o->paths, a->path), o->not_paths.n > 0,
                    paths_any(&o->not_paths, a->path));
}

/* A header as Envoy's header matcher sees it: every occurrence's value joined with ",", read
 * in place (no copy, no length cap). */
typedef struct {
    const px_authz_req_t *r;
    wf_str_t name; /* lower-case */
    bool present;
    size_t len; /* of the joined value */
} hdr_t;

static bool hdr_is(const px_http1_header_t *h, wf_str_t name)
{
    return h->name.len == name.len && strncasecmp(h->name.p, name.p, name.len) == 0;
}

static void hdr_init(hdr_t *h, const px_authz_req_t *r, wf_str_t name)
{
    *h = (hdr_t){r, name, false, 0};
    for (size_t i = 0; i < r->n_headers; i++) {
        if (hdr_is(&r->headers[i], name)) {
            h->len += (h->present ? 1 : 0) + r->headers[i].value.len;
            h->present = true;
        }
    }
}

/* Are bytes [off, off + pat.len) of the joined value equal to pat? (off + pat.len <= len) */
static bool hdr_range_eq(const hdr_t *h, size_t off, wf_str_t pat)
{
    size_t pos = 0, k = 0;
    bool first = true;
    for (size_t i = 0; i < h->r->n_headers && k < pat.len; i++) {
        const px_http1_header_t *hd = &h->r->headers[i];
        if (!hdr_is(hd, h->name)) {
            continue;
        }
        if (!first) {
            if (pos >= off && k < pat.len && pat.p[k++] != ',') {
                return false;
            }
            pos++;
        }
        first = false;
        for (size_t j = 0; j < hd->value.len && k < pat.len; j++, pos++) {
            if (pos >= off && pat.p[k++] != hd->value.p[j]) {
                return false;
            }
        }
    }
    return k == pat.len;
}

static bool hdr_match(const px_authz_str_t *m, const hdr_t *h)
{
    switch (m->kind) {
    case PX_AZ_ANY:
        return true; /* Istio's presence match: an empty value is present too */
    case PX_AZ_PREFIX:
        return h->len >= m->v.len && hdr_range_eq(h, 0, m->v);
    case PX_AZ_SUFFIX:
        return h->len >= m->v.len && hdr_range_eq(h, h->len - m->v.len, m->v);
    default:
        return h->len == m->v.len && hdr_range_eq(h, 0, m->v);
    }
}

static bool hdr_any(const px_authz_strs_t *l, const hdr_t *h)
{
    for (uint32_t i = 0; h->present && i < l->n; i++) {
        if (hdr_match(&l->v[i], h)) {
            return true;
        }
    }
    return false;
}

static bool cond_match(const px_authz_cond_t *c, const attrs_t *a)
{
    const px_authz_req_t *r = a->r;
    switch (c->key) {
    case PX_AZ_KEY_SOURCE_IP:
        return cidrs_ok(&c->cidrs, &c->not_cidrs, &a->src);
    case PX_AZ_KEY_REMOTE_IP:
        return cidrs_ok(&c->cidrs, &c->not_cidrs, &a->remote);
    case PX_AZ_KEY_DEST_IP:
        return cidrs_ok(&c->cidrs, &c->not_cidrs, &a->dst);
    case PX_AZ_KEY_DEST_PORT:
        return ports_ok(&c->ports, &c->not_ports, r->dest_port);
    case PX_AZ_KEY_SOURCE_NS:
        return strs_ok(&c->strs, &c->not_strs, a->has_ns, a->ns, 0);
    case PX_AZ_KEY_SOURCE_PRINCIPAL:
        return strs_ok(&c->strs, &c->not_strs, a->has_principal, a->principal, 0);
    case PX_AZ_KEY_SNI:
        return strs_ok(&c->strs, &c->not_strs, r->sni.len > 0, r->sni, 0);
    case PX_AZ_KEY_HEADER: {
        hdr_t h;
        hdr_init(&h, r, c->header);
        return field_ok(c->strs.n > 0, hdr_any(&c->strs, &h), c->not_strs.n > 0,
                        hdr_any(&c->not_strs, &h));
    }
    default:
        return strs_ok(&c->strs, &c->not_strs, false, (wf_str_t){"", 0}, 0);
    }
}

/* Does rule use a field only HTTP requests have? */
static bool rule_is_http(const px_authz_rule_t *rule)
{
    for (uint32_t i = 0; i < rule->n_from; i++) {
        const px_authz_source_t *s = &rule->from[i];
        if (s->request_principals.n + s->not_request_principals.n > 0) {
            return true;
        }
    }
    for (uint32_t i = 0; i < rule->n_to; i++) {
        const px_authz_op_t *o = &rule->to[i];
        if (o->hosts.n + o->not_hosts.n + o->methods.n + o->not_methods.n + o->paths.n +
                o->not_paths.n >
            0) {
            return true;
        }
    }
    for (uint32_t i = 0; i < rule->n_when; i++) {
        if (rule->when[i].key == PX_AZ_KEY_HEADER || rule->when[i].key == PX_AZ_KEY_REQUEST_AUTH) {
            return true;
        }
    }
    return false;
}

/*
 * On a TCP connection (Istio's "authorization for TCP traffic"), a rule with HTTP-only fields
 * matches nothing in an ALLOW or AUDIT policy, and in a DENY policy is evaluated without them,
 * so it denies more: both the conservative reading. deny says which kind of policy rule is in.
 */
static bool rule_match(const px_authz_rule_t *rule, const attrs_t *a, bool deny)
{
    if (a->r->tcp && !deny && rule_is_http(rule)) {
        return false;
    }
    bool ok = rule->n_from == 0;
    for (uint32_t i = 0; !ok && i < rule->n_from; i++) {
        ok = source_match(&rule->from[i], a);
    }
    if (!ok) {
        return false;
    }
    ok = rule->n_to == 0;
    for (uint32_t i = 0; !ok && i < rule->n_to; i++) {
        ok = op_match(&rule->to[i], a);
    }
    if (!ok) {
        return false;
    }
    for (uint32_t i = 0; i < rule->n_when; i++) {
        const px_authz_cond_t *c = &rule->when[i];
        bool http_only = c->key == PX_AZ_KEY_HEADER || c->key == PX_AZ_KEY_REQUEST_AUTH;
        if (!(a->r->tcp && http_only) && !cond_match(c, a)) {
            return false;
        }
    }
    return true;
}

static bool policy_match(const px_authz_policy_t *p, const attrs_t *a)
{
    for (uint32_t i = 0; i < p->n_rules; i++) {
        if (rule_match(&p->rules[i], a, p->action == PX_AZ_DENY)) {
            return true;
        }
    }
    return false;
}

static void parse_addr(wf_str_t s, addr_t *out)
{
    out->present = parse_ip(s.p, s.len, &out->family, out->addr);
}

/* remote.ip: the first X-Forwarded-For entry when it is an address, else the peer. */
static void remote_addr(const px_authz_req_t *r, const addr_t *src, addr_t *out)
{
    *out = *src;
    for (size_t i = 0; i < r->n_headers; i++) {
        const px_http1_header_t *h = &r->headers[i];
        if (h->name.len != 15 || strncasecmp(h->name.p, "x-forwarded-for", 15) != 0) {
            continue;
        }
        const char *p = h->value.p, *end = p + h->value.len;
        const char *comma = memchr(p, ',', h->value.len);
        const char *e = comma != NULL ? comma : end;
        while (p < e && (*p == ' ' || *p == '\t')) {
            p++;
        }
        while (e > p && (e[-1] == ' ' || e[-1] == '\t')) {
            e--;
        }
        addr_t x;
        parse_addr((wf_str_t){p, (size_t)(e - p)}, &x);
        if (x.present) {
            *out = x;
        }
        return; /* the first X-Forwarded-For field holds the first entry */
    }
}

static void attrs_init(const px_authz_req_t *r, attrs_t *a)
{
    memset(a, 0, sizeof(*a));
    a->r = r;
    if (r->principal != NULL && r->principal[0] != '\0') {
        wf_str_t p = wf_str(r->principal);
        size_t pl = sizeof(SPIFFE_PREFIX) - 1;
        if (p.len >= pl && memcmp(p.p, SPIFFE_PREFIX, pl) == 0) {
            p.p += pl;
            p.len -= pl;
        }
        a->has_principal = true;
        a->principal = p;
        /* Istio derives the namespace from `.../ns/<ns>/...` of the identity. */
        for (size_t i = 0; i + 4 <= p.len; i++) {
            if (memcmp(p.p + i, "/ns/", 4) == 0) {
                const char *ns = p.p + i + 4;
                const char *end = memchr(ns, '/', p.len - i - 4);
                a->has_ns = true;
                a->ns = (wf_str_t){ns, end != NULL ? (size_t)(end - ns) : p.len - i - 4};
                break;
            }
        }
    }
    parse_addr(r->source_ip, &a->src);
    remote_addr(r, &a->src, &a->remote);
    parse_addr(r->dest_ip, &a->dst);
    a->path = r->path;
    for (size_t i = 0; i < r->path.len; i++) {
        if (r->path.p[i] == '?' || r->path.p[i] == '#') {
            a->path.len = i;
            break;
        }
    }
    /* host:port -> host; an IPv6 literal keeps its brackets. */
    wf_str_t h = r->host;
    for (size_t i = h.len; i > 0; i--) {
        char c = h.p[i - 1];
        if (c == ':') {
            if (i - 1 > 0 && h.p[i - 2] != ':' && (h.p[0] != '[' || h.p[i - 2] == ']')) {
                a->host_noport = (wf_str_t){h.p, i - 1};
            }
            break;
        }
        if (!isdigit((unsigned char)c)) {
            break;
        }
    }
}

void px_authz_check(const px_authz_set_t *set, const px_authz_req_t *r, px_authz_result_t *out)
{
    memset(out, 0, sizeof(*out));
    out->allowed = true;
    if (set == NULL || set->n_policies == 0) {
        return;
    }
    attrs_t a;
    attrs_init(r, &a);
    for (uint32_t i = 0; i < set->n_policies; i++) {
        const px_authz_policy_t *p = &set->policies[i];
        if (p->action == PX_AZ_DENY && policy_match(p, &a)) {
            out->allowed = false;
            out->policy = p;
            return;
        }
    }
    for (uint32_t i = 0; i < set->n_policies; i++) {
        const px_authz_policy_t *p = &set->policies[i];
        if (p->action == PX_AZ_AUDIT && policy_match(p, &a)) {
            out->audit = p;
            break;
        }
    }
    if (set->n_allow == 0) {
        return;
    }
    for (uint32_t i = 0; i < set->n_policies; i++) {
        const px_authz_policy_t *p = &set->policies[i];
        if (p->action == PX_AZ_ALLOW && policy_match(p, &a)) {
            out->policy = p;
            return;
        }
    }
    out->allowed = false;
}
