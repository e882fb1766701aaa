/*
 * px_http1.c - the strict HTTP/1.1 head parser (request and status lines, fields, framing) and
 * the canonical head serialiser. The body framer is px_http1_body.c.
 *
 * The parser is one forward pass over the buffer with table-driven character classes; it keeps
 * no state between calls (an incomplete head is parsed again from the start, as
 * picohttpparser does: heads are small and the rescan is cheaper than a resumable machine).
 * Fields that decide framing or routing (Content-Length, Transfer-Encoding, Host, Connection,
 * Expect, Upgrade) are recognised by length and a case-insensitive compare while they are
 * scanned, so no second pass over the fields is needed.
 */
#include "px_http1.h"

#include <limits.h>
#include <string.h>

#include "wf_err.h"

enum {
    C_TCHAR = 1,  /* token character (RFC 9110 §5.6.2) */
    C_VALUE = 2,  /* field-value character: HTAB, SP, VCHAR, obs-text */
    C_TARGET = 4, /* request-target character accepted (see docs/proxy.md) */
    C_HOST = 8,   /* character of a Host value / authority: reg-name, IP literal, port */
};

/*
 * Character classes, written as disjoint ranges in byte order (overlapping designators would
 * trip -Woverride-init). The ranges are a GNU extension; the project builds as gnu11.
 */
#define TVUH (C_TCHAR | C_VALUE | C_TARGET | C_HOST)
#define VUH (C_VALUE | C_TARGET | C_HOST)
#define TVU (C_TCHAR | C_VALUE | C_TARGET)
#define VU (C_VALUE | C_TARGET)
static const uint8_t cls[256] = {
    ['\t'] = C_VALUE,
    [' '] = C_VALUE,
    ['!'] = TVUH,
    ['"'] = VU,
    ['#'] = C_TCHAR | C_VALUE, /* a fragment is never sent (RFC 9112 §3.2) */
    ['$' ... '\''] = TVUH,
    ['(' ... ')'] = VUH,
    ['*' ... '+'] = TVUH,
    [','] = VUH,
    ['-' ... '.'] = TVUH,
    ['/'] = VU,
    ['0' ... '9'] = TVUH,
    [':' ... ';'] = VUH,
    ['<'] = VU,
    ['='] = VUH,
    ['>' ... '@'] = VU,
    ['A' ... 'Z'] = TVUH,
    ['['] = VUH,
    ['\\'] = VU,
    [']'] = VUH,
    ['^'] = TVU,
    ['_'] = TVUH,
    ['`'] = TVU,
    ['a' ... 'z'] = TVUH,
    ['{'] = VU,
    ['|'] = TVU,
    ['}'] = VU,
    ['~'] = TVUH,
    [0x80 ... 0xff] = C_VALUE,
};
#undef TVUH
#undef VUH
#undef TVU
#undef VU

#define IS(c, k) ((cls[(uint8_t)(c)] & (k)) != 0)

void px_http1_limits_init(px_http1_limits_t *lim)
{
    lim->max_head = 64 * 1024;
    lim->max_headers = 100;
    lim->max_uri = 8 * 1024;
    lim->max_chunk_line = 1024;
    lim->max_trailer = 16 * 1024;
    lim->max_trailers = 100;
}

const char *px_http1_strerror(int code)
{
    switch (code) {
    case PX_HTTP1_INCOMPLETE:
        return "incomplete HTTP/1 message";
    case PX_HTTP1_EMSG:
        return "malformed HTTP/1 message";
    default:
        return wf_strerror(code);
    }
}

/*
 * Case-insensitive compare against a lower-case literal of the same length. OR-ing 0x20 is
 * exact here: lit holds only lower-case letters, digits and '-', and s holds token or
 * field-value characters, among which only the matching letter of either case (or the same
 * digit or '-') maps onto those bytes (the other preimages are control characters).
 */
static bool tok_ieq(const char *s, const char *lit, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (((uint8_t)s[i] | 0x20) != (uint8_t)lit[i]) {
            return false;
        }
    }
    return true;
}

static bool str_ieq(wf_str_t s, const char *lit, size_t n)
{
    return s.len == n && tok_ieq(s.p, lit, n);
}

/* ASCII case-insensitive equality of two arbitrary byte strings. */
static bool bytes_ieq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t x = (uint8_t)a[i], y = (uint8_t)b[i];
        if (x >= 'A' && x <= 'Z') {
            x |= 0x20;
        }
        if (y >= 'A' && y <= 'Z') {
            y |= 0x20;
        }
        if (x != y) {
            return false;
        }
    }
    return true;
}

/*
 * Next element of a comma-separated list (RFC 9110 §5.6.1): OWS trimmed, empty elements
 * skipped as recipients must. Returns false at the end of the list.
 */
static bool list_next(wf_str_t *rest, wf_str_t *elem)
{
    const char *p = rest->p, *end = rest->p + rest->len;
    for (;;) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ',')) {
            p++;
        }
        if (p == end) {
            rest->p = p;
            rest->len = 0;
            return false;
        }
        const char *s = p;
        while (p < end && *p != ',') {
            p++;
        }
        const char *e = p;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t')) {
            e--;
        }
        rest->p = p;
        rest->len = (size_t)(end - p);
        elem->p = s;
        elem->len = (size_t)(e - s);
        return true;
    }
}

static bool is_token(wf_str_t s)
{
    if (s.len == 0) {
        return false;
    }
    for (size_t i = 0; i < s.len; i++) {
        if (!IS(s.p[i], C_TCHAR)) {
            return false;
        }
    }
    return true;
}

/*
 * Field names a Connection field may list. The serialiser compares every field against them;
 * the bound keeps that linear in the head size (real clients list one or two).
 */
#define MAX_CONN_NAMES 32

/* Scanner state for one head; framing facts are gathered here while the fields go by. */
typedef struct {
    const char *p;
    const char *end;
    bool is_request;
    bool truncated; /* the caller gave max_head bytes or more: running out means too large */
    px_http1_error_t *err;
    int bad_status; /* 400 for requests, 502 for responses */

    int n_cl;
    uint64_t cl;
    int n_te;       /* Transfer-Encoding fields */
    int te_codings; /* codings listed in all of them */
    int te_chunked; /* times chunked appears */
    bool te_last_chunked;
    bool te_unknown;
    bool te_bad;
    int n_host;
    wf_str_t host;
    bool conn_close, conn_keep_alive, conn_upgrade, conn_bad;
    int conn_names; /* field names listed in Connection */
    bool expect_continue;
    int n_upgrade;
    wf_str_t upgrade;
} scan_t;

static int fail(scan_t *s, int status, const char *reason)
{
    s->err->status = status;
    s->err->reason = reason;
    return PX_HTTP1_EMSG;
}

static int bad(scan_t *s, const char *reason)
{
    return fail(s, s->bad_status, reason);
}

/* Ran out of bytes: incomplete, unless the head limit is what stopped the scan. */
static int need_more(scan_t *s)
{
    if (s->truncated) {
        return fail(s, s->is_request ? 431 : 502, "header section too large");
    }
    return PX_HTTP1_INCOMPLETE;
}

/* Expect CRLF at s->p (the caller saw '\r' or '\n' there). */
static int eat_crlf(scan_t *s)
{
    if (*s->p == '\n') {
        return bad(s, "bare LF line ending");
    }
    if (s->p + 1 >= s->end) {
        return need_more(s);
    }
    if (s->p[1] != '\n') {
        return bad(s, "bare CR");
    }
    s->p += 2;
    return 0;
}

static int parse_version(scan_t *s, int *minor)
{
    if (s->end - s->p < 8) {
        /* Reject a wrong prefix early rather than waiting for bytes that cannot fix it. */
        static const char pre[] = "HTTP/";
        for (const char *q = s->p; q < s->end && q - s->p < 5; q++) {
            if (*q != pre[q - s->p]) {
                return bad(s, "invalid HTTP version");
            }
        }
        return need_more(s);
    }
    const char *v = s->p;
    if (v[0] != 'H' || v[1] != 'T' || v[2] != 'T' || v[3] != 'P' || v[4] != '/' ||
        !(v[5] >= '0' && v[5] <= '9') || v[6] != '.' || !(v[7] >= '0' && v[7] <= '9')) {
        return bad(s, "invalid HTTP version");
    }
    if (v[5] != '1' || v[7] > '1') {
        return fail(s, s->is_request ? 505 : 502, "HTTP version not supported");
    }
    *minor = v[7] - '0';
    s->p += 8;
    return 0;
}

/* host[:port] as in a Host field or an authority: allowed characters, '[' only as an IP
 * literal, port digits only. Empty is allowed here (a Host field may be empty). */
static bool authority_valid(wf_str_t a, bool need_port)
{
    const char *p = a.p, *end = a.p + a.len;
    if (p < end && *p == '[') {
        while (p < end && *p != ']') {
            if (!IS(*p, C_HOST) || (*p == '[' && p != a.p)) {
                return false;
            }
            p++;
        }
        if (p == end || p == a.p + 1) {
            return false; /* unterminated or empty IP literal */
        }
        p++;
    } else {
        while (p < end && *p != ':') {
            if (!IS(*p, C_HOST) || *p == '[' || *p == ']') {
                return false;
            }
            p++;
        }
    }
    if (p == end) {
        return !need_port;
    }
    if (*p != ':') {
        return false;
    }
    p++;
    if (p == end) {
        return !need_port; /* "host:" is allowed by RFC 3986's port = *DIGIT */
    }
    unsigned port = 0;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9') {
            return false;
        }
        port = port * 10 + (unsigned)(*p - '0');
        if (port > 65535) {
            return false;
        }
    }
    return true;
}

/* Strip ":<default port>" or a bare ":" so that example.com and example.com:80 compare equal. */
static wf_str_t authority_norm(wf_str_t a, const char *dflt)
{
    size_t dl = strlen(dflt);
    if (a.len > dl + 1 && a.p[a.len - dl - 1] == ':' && memcmp(a.p + a.len - dl, dflt, dl) == 0) {
        a.len -= dl + 1;
    } else if (a.len > 0 && a.p[a.len - 1] == ':') {
        a.len--;
    }
    return a;
}

static void classify_method(px_http1_head_t *h)
{
    wf_str_t m = h->method_str;
    h->method = PX_HTTP1_M_OTHER;
    switch (m.len) {
    case 3:
        if (memcmp(m.p, "GET", 3) == 0) {
            h->method = PX_HTTP1_M_GET;
        } else if (memcmp(m.p, "PUT", 3) == 0) {
            h->method = PX_HTTP1_M_PUT;
        }
        break;
    case 4:
        if (memcmp(m.p, "POST", 4) == 0) {
            h->method = PX_HTTP1_M_POST;
        } else if (memcmp(m.p, "HEAD", 4) == 0) {
            h->method = PX_HTTP1_M_HEAD;
        }
        break;
    case 5:
        if (memcmp(m.p, "PATCH", 5) == 0) {
            h->method = PX_HTTP1_M_PATCH;
        } else if (memcmp(m.p, "TRACE", 5) == 0) {
            h->method = PX_HTTP1_M_TRACE;
        }
        break;
    case 6:
        if (memcmp(m.p, "DELETE", 6) == 0) {
            h->method = PX_HTTP1_M_DELETE;
        }
        break;
    case 7:
        if (memcmp(m.p, "CONNECT", 7) == 0) {
            h->method = PX_HTTP1_M_CONNECT;
        } else if (memcmp(m.p, "OPTIONS", 7) == 0) {
            h->method = PX_HTTP1_M_OPTIONS;
        }
        break;
    default:
        break;
    }
}

/* Split and check the request-target into its form (RFC 9112 §3.2). */
static int classify_target(scan_t *s, px_http1_head_t *h)
{
    wf_str_t t = h->target;
    if (h->method == PX_HTTP1_M_CONNECT) {
        if (t.p[0] == '/' || !authority_valid(t, true) || t.p[0] == ':') {
            return bad(s, "CONNECT needs an authority-form target");
        }
        h->form = PX_HTTP1_FORM_AUTHORITY;
        h->authority = t;
        return 0;
    }
    if (t.p[0] == '/') {
        h->form = PX_HTTP1_FORM_ORIGIN;
        h->path = t;
        return 0;
    }
    if (t.len == 1 && t.p[0] == '*') {
        if (h->method != PX_HTTP1_M_OPTIONS) {
            return bad(s, "asterisk-form is for OPTIONS only");
        }
        h->form = PX_HTTP1_FORM_ASTERISK;
        return 0;
    }
    /* absolute-form: only the schemes a forward proxy serves over HTTP/1.1. */
    size_t sl;
    if (t.len > 7 && bytes_ieq(t.p, "http://", 7)) {
        sl = 4;
    } else if (t.len > 8 && bytes_ieq(t.p, "https://", 8)) {
        sl = 5;
    } else {
        return bad(s, "invalid request-target");
    }
    const char *a = t.p + sl + 3, *end = t.p + t.len, *q = a;
    while (q < end && *q != '/' && *q != '?') {
        q++;
    }
    wf_str_t auth = {a, (size_t)(q - a)};
    if (auth.len == 0 || auth.p[0] == ':' || !authority_valid(auth, false)) {
        return bad(s, "invalid authority in request-target");
    }
    h->form = PX_HTTP1_FORM_ABSOLUTE;
    h->scheme = (wf_str_t){t.p, sl};
    h->authority = auth;
    h->path = (wf_str_t){q, (size_t)(end - q)};
    return 0;
}

/* One Transfer-Encoding field: record what its codings mean for framing. */
static void note_te(scan_t *s, wf_str_t v)
{
    s->n_te++;
    wf_str_t rest = v, c;
    while (list_next(&rest, &c)) {
        s->te_codings++;
        s->te_last_chunked = false;
        if (str_ieq(c, "chunked", 7)) {
            s->te_chunked++;
            s->te_last_chunked = true;
        } else if (!is_token(c)) {
            s->te_bad = true; /* parameters, quoted strings, junk */
        } else if (!str_ieq(c, "gzip", 4) && !str_ieq(c, "deflate", 7) &&
                   !str_ieq(c, "compress", 8) && !str_ieq(c, "x-gzip", 6) &&
                   !str_ieq(c, "x-compress", 10)) {
            s->te_unknown = true;
        }
    }
}

static int note_cl(scan_t *s, wf_str_t v)
{
    if (++s->n_cl > 1) {
        return bad(s, "repeated Content-Length");
    }
    if (v.len == 0) {
        return bad(s, "invalid Content-Length");
    }
    uint64_t n = 0;
    for (size_t i = 0; i < v.len; i++) {
        uint8_t c = (uint8_t)v.p[i];
        if (c < '0' || c > '9') {
            return bad(s, "invalid Content-Length");
        }
        if (n > ((uint64_t)INT64_MAX - (c - '0')) / 10) {
            return bad(s, "Content-Length too large");
        }
        n = n * 10 + (c - '0');
    }
    s->cl = n;
    return 0;
}

static void note_connection(scan_t *s, wf_str_t v)
{
    wf_str_t rest = v, c;
    while (list_next(&rest, &c)) {
        if (str_ieq(c, "close", 5)) {
            s->conn_close = true;
        } else if (str_ieq(c, "keep-alive", 10)) {
            s->conn_keep_alive = true;
        } else if (str_ieq(c, "upgrade", 7)) {
            s->conn_upgrade = true;
        } else if (is_token(c)) {
            s->conn_names++;
        } else {
            s->conn_bad = true;
        }
    }
}

/* Act on a field whose name decides framing or routing. */
static int note_field(scan_t *s, wf_str_t n, wf_str_t v)
{
    switch (n.len) {
    case 4:
        if (s->is_request && tok_ieq(n.p, "host", 4)) {
            if (++s->n_host > 1) {
                return bad(s, "more than one Host");
            }
            if (!authority_valid(v, false)) {
                return bad(s, "invalid Host");
            }
            s->host = v;
        }
        break;
    case 6:
        if (s->is_request && tok_ieq(n.p, "expect", 6) && str_ieq(v, "100-continue", 12)) {
            s->expect_continue = true;
        }
        break;
    case 7:
        if (tok_ieq(n.p, "upgrade", 7) && s->n_upgrade++ == 0) {
            s->upgrade = v;
        }
        break;
    case 10:
        if (tok_ieq(n.p, "connection", 10)) {
            note_connection(s, v);
        }
        break;
    case 14:
        if (tok_ieq(n.p, "content-length", 14)) {
            return note_cl(s, v);
        }
        break;
    case 17:
        if (tok_ieq(n.p, "transfer-encoding", 17)) {
            note_te(s, v);
        }
        break;
    default:
        break;
    }
    return 0;
}

/* Field lines up to and including the empty line (RFC 9112 §5). */
static int parse_fields(scan_t *s, px_http1_header_t *hdrs, size_t cap, px_http1_head_t *h)
{
    size_t n = 0;
    for (;;) {
        if (s->p >= s->end) {
            return need_more(s);
        }
        char c = *s->p;
        if (c == '\r' || c == '\n') {
            int rc = eat_crlf(s);
            if (rc != 0) {
                return rc;
            }
            break;
        }
        if (c == ' ' || c == '\t') {
            return bad(s, "obs-fold or whitespace before a field line");
        }
        const char *name = s->p;
        while (s->p < s->end && IS(*s->p, C_TCHAR)) {
            s->p++;
        }
        if (s->p >= s->end) {
            return need_more(s);
        }
        if (s->p == name) {
            return bad(s, "invalid field name");
        }
        if (*s->p != ':') {
            if (*s->p == ' ' || *s->p == '\t') {
                return bad(s, "whitespace between field name and colon");
            }
            return bad(s, "invalid character in field name");
        }
        if (n == cap) {
            return fail(s, s->is_request ? 431 : 502, "too many header fields");
        }
        wf_str_t nm = {name, (size_t)(s->p - name)};
        s->p++;
        while (s->p < s->end && (*s->p == ' ' || *s->p == '\t')) {
            s->p++;
        }
        const char *val = s->p;
        while (s->p < s->end && IS(*s->p, C_VALUE)) {
            s->p++;
        }
        if (s->p >= s->end) {
            return need_more(s);
        }
        c = *s->p;
        if (c == '\0') {
            return bad(s, "NUL in field value");
        }
        if (c != '\r' && c != '\n') {
            return bad(s, "control character in field value");
        }
        const char *ve = s->p;
        while (ve > val && (ve[-1] == ' ' || ve[-1] == '\t')) {
            ve--;
        }
        int rc = eat_crlf(s);
        if (rc != 0) {
            return rc;
        }
        wf_str_t vv = {val, (size_t)(ve - val)};
        hdrs[n].name = nm;
        hdrs[n].value = vv;
        n++;
        rc = note_field(s, nm, vv);
        if (rc != 0) {
            return rc;
        }
    }
    h->headers = hdrs;
    h->num_headers = n;
    return 0;
}

static void scan_init(scan_t *s, const char *buf, size_t len, const px_http1_limits_t *lim,
                      bool is_request, px_http1_error_t *err)
{
    memset(s, 0, sizeof(*s));
    WF_ASSERT(lim->max_head < INT_MAX);
    s->p = buf;
    /* With max_head bytes in hand and no end of head among them, the head is over the limit. */
    s->truncated = len >= lim->max_head;
    s->end = buf + (s->truncated ? lim->max_head : len);
    s->is_request = is_request;
    s->err = err;
    s->bad_status = is_request ? 400 : 502;
}

static void head_init(px_http1_head_t *h)
{
    memset(h, 0, sizeof(*h));
}

/* Transfer-Encoding verdict shared by both directions; 0 when it is exactly "chunked". */
static int check_te(scan_t *s, int minor)
{
    if (minor == 0) {
        return bad(s, "Transfer-Encoding in HTTP/1.0");
    }
    if (s->n_cl > 0) {
        return bad(s, "both Content-Length and Transfer-Encoding");
    }
    if (s->te_bad || s->te_codings == 0) {
        return bad(s, "invalid Transfer-Encoding");
    }
    if (s->te_unknown) {
        return fail(s, s->is_request ? 501 : 502, "unknown transfer coding");
    }
    if (!s->te_last_chunked || s->te_chunked > 1) {
        return bad(s, "chunked is not the final transfer coding");
    }
    if (s->te_codings > 1) {
        /* Valid, but forwarding would need the other codings kept; nothing here needs it. */
        return fail(s, s->is_request ? 501 : 502, "transfer coding other than chunked");
    }
    return 0;
}

int px_http1_parse_request(const char *buf, size_t len, const px_http1_limits_t *lim,
                           px_http1_header_t *hdrs, size_t hdr_cap, px_http1_head_t *head,
                           px_http1_error_t *err)
{
    px_http1_limits_t dl;
    if (lim == NULL) {
        px_http1_limits_init(&dl);
        lim = &dl;
    }
    scan_t s;
    scan_init(&s, buf, len, lim, true, err);
    head_init(head);
    int rc;

    /* One empty line before the request line is tolerated (RFC 9112 §2.2), no more. */
    if (s.p < s.end && (*s.p == '\r' || *s.p == '\n')) {
        if ((rc = eat_crlf(&s)) != 0) {
            return rc;
        }
    }
    const char *m = s.p;
    while (s.p < s.end && IS(*s.p, C_TCHAR)) {
        s.p++;
    }
    if (s.p >= s.end) {
        return need_more(&s);
    }
    if (s.p == m || *s.p != ' ') {
        return bad(&s, "invalid method");
    }
    head->method_str = (wf_str_t){m, (size_t)(s.p - m)};
    s.p++;

    /* Scan at most one byte past the URI limit: a longer target is refused without waiting
     * for the rest of it. */
    const char *t = s.p;
    const char *tlim = (size_t)(s.end - t) > lim->max_uri ? t + lim->max_uri + 1 : s.end;
    while (s.p < tlim && IS(*s.p, C_TARGET)) {
        s.p++;
    }
    if ((size_t)(s.p - t) > lim->max_uri) {
        return fail(&s, 414, "URI too long");
    }
    if (s.p >= s.end) {
        return need_more(&s);
    }
    if (*s.p != ' ') {
        if (*s.p == '\r' || *s.p == '\n') {
            return bad(&s, "missing HTTP version");
        }
        return bad(&s, "invalid character in request-target");
    }
    if (s.p == t) {
        return bad(&s, "empty request-target");
    }
    head->target = (wf_str_t){t, (size_t)(s.p - t)};
    s.p++;
    if ((rc = parse_version(&s, &head->minor_version)) != 0) {
        return rc;
    }
    if (s.p >= s.end) {
        return need_more(&s);
    }
    if (*s.p != '\r' && *s.p != '\n') {
        return bad(&s, "invalid request line");
    }
    if ((rc = eat_crlf(&s)) != 0) {
        return rc;
    }
    classify_method(head);
    if ((rc = classify_target(&s, head)) != 0) {
        return rc;
    }
    size_t cap = hdr_cap < lim->max_headers ? hdr_cap : lim->max_headers;
    if ((rc = parse_fields(&s, hdrs, cap, head)) != 0) {
        return rc;
    }

    /* Framing (RFC 9112 §6.3, rules 3-6 for requests). */
    if (s.n_te > 0) {
        if ((rc = check_te(&s, head->minor_version)) != 0) {
            return rc;
        }
        head->body = PX_HTTP1_BODY_CHUNKED;
    } else if (s.n_cl > 0) {
        head->body = PX_HTTP1_BODY_LENGTH;
        head->content_length = s.cl;
    }
    if (s.conn_bad) {
        return bad(&s, "invalid Connection");
    }
    if (s.conn_names > MAX_CONN_NAMES) {
        return bad(&s, "too many names in Connection");
    }
    if (head->method == PX_HTTP1_M_CONNECT) {
        if (s.n_te > 0 || s.n_cl > 0) {
            return bad(&s, "CONNECT with content");
        }
        head->flags |= PX_HTTP1_F_CONNECT;
    }

    /* Host (RFC 9112 §3.2, §3.2.2). */
    if (head->minor_version == 1 && s.n_host == 0) {
        return bad(&s, "missing Host");
    }
    if (head->form == PX_HTTP1_FORM_ABSOLUTE) {
        const char *dport = head->scheme.len == 4 ? "80" : "443";
        wf_str_t a = authority_norm(head->authority, dport);
        if (s.n_host > 0) {
            wf_str_t hh = authority_norm(s.host, dport);
            if (a.len != hh.len || !bytes_ieq(a.p, hh.p, a.len)) {
                return bad(&s, "Host does not match the request-target");
            }
        }
        head->host = head->authority;
    } else if (head->form == PX_HTTP1_FORM_AUTHORITY) {
        head->host = head->authority;
    } else {
        head->host = s.host;
    }

    if (head->minor_version == 1) {
        if (!s.conn_close) {
            head->flags |= PX_HTTP1_F_KEEP_ALIVE;
        }
        if (s.expect_continue) {
            head->flags |= PX_HTTP1_F_EXPECT_CONTINUE;
        }
        if (s.conn_upgrade && s.n_upgrade > 0 && head->method != PX_HTTP1_M_CONNECT) {
            head->flags |= PX_HTTP1_F_UPGRADE;
            head->upgrade = s.upgrade;
        }
    } else if (s.conn_keep_alive && !s.conn_close) {
        head->flags |= PX_HTTP1_F_KEEP_ALIVE;
    }
    if (s.conn_names > 0) {
        head->flags |= PX_HTTP1_F_CONN_NAMES;
    }
    head->head_len = (size_t)(s.p - buf);
    return (int)head->head_len;
}

int px_http1_parse_response(const char *buf, size_t len, px_http1_method_t req_method,
                            const px_http1_limits_t *lim, px_http1_header_t *hdrs, size_t hdr_cap,
                            px_http1_head_t *head, px_http1_error_t *err)
{
    px_http1_limits_t dl;
    if (lim == NULL) {
        px_http1_limits_init(&dl);
        lim = &dl;
    }
    scan_t s;
    scan_init(&s, buf, len, lim, false, err);
    head_init(head);
    int rc;

    if ((rc = parse_version(&s, &head->minor_version)) != 0) {
        return rc;
    }
    if (s.end - s.p < 4) {
        for (const char *q = s.p; q < s.end; q++) {
            if (q == s.p ? *q != ' ' : (*q < '0' || *q > '9')) {
                return bad(&s, "invalid status line");
            }
        }
        return need_more(&s);
    }
    const char *d = s.p + 1;
    if (s.p[0] != ' ' || d[0] < '1' || d[0] > '9' || d[1] < '0' || d[1] > '9' || d[2] < '0' ||
        d[2] > '9') {
        return bad(&s, "invalid status line");
    }
    head->status = (d[0] - '0') * 100 + (d[1] - '0') * 10 + (d[2] - '0');
    s.p += 4;
    if (s.p >= s.end) {
        return need_more(&s);
    }
    /* The SP before an empty reason-phrase is often left out; that is accepted. */
    if (*s.p == ' ') {
        s.p++;
        const char *r = s.p;
        while (s.p < s.end && IS(*s.p, C_VALUE)) {
            s.p++;
        }
        if (s.p >= s.end) {
            return need_more(&s);
        }
        head->reason = (wf_str_t){r, (size_t)(s.p - r)};
    }
    if (*s.p != '\r' && *s.p != '\n') {
        return bad(&s, "invalid status line");
    }
    if ((rc = eat_crlf(&s)) != 0) {
        return rc;
    }
    size_t cap = hdr_cap < lim->max_headers ? hdr_cap : lim->max_headers;
    if ((rc = parse_fields(&s, hdrs, cap, head)) != 0) {
        return rc;
    }
    if (s.conn_bad) {
        return bad(&s, "invalid Connection");
    }
    if (s.conn_names > MAX_CONN_NAMES) {
        return bad(&s, "too many names in Connection");
    }

    /* The framing fields are checked even where they do not count: a server that sends
     * conflicting ones is not one to keep a connection to. */
    if (s.n_te > 0 && (rc = check_te(&s, head->minor_version)) != 0) {
        return rc;
    }
    int st = head->status;
    if (st == 101) {
        head->body = PX_HTTP1_BODY_TUNNEL;
        head->upgrade = s.upgrade;
    } else if (req_method == PX_HTTP1_M_CONNECT && st >= 200 && st < 300) {
        head->body = PX_HTTP1_BODY_TUNNEL;
    } else if (req_method == PX_HTTP1_M_HEAD || st < 200 || st == 204 || st == 304) {
        head->body = PX_HTTP1_BODY_NONE;
    } else if (s.n_te > 0) {
        head->body = PX_HTTP1_BODY_CHUNKED;
    } else if (s.n_cl > 0) {
        head->body = PX_HTTP1_BODY_LENGTH;
        head->content_length = s.cl;
    } else {
        head->body = PX_HTTP1_BODY_EOF;
    }
    bool ka = head->minor_version == 1 ? !s.conn_close : (s.conn_keep_alive && !s.conn_close);
    if (ka && head->body != PX_HTTP1_BODY_EOF && head->body != PX_HTTP1_BODY_TUNNEL) {
        head->flags |= PX_HTTP1_F_KEEP_ALIVE;
    }
    if (s.conn_names > 0) {
        head->flags |= PX_HTTP1_F_CONN_NAMES;
    }
    head->head_len = (size_t)(s.p - buf);
    return (int)head->head_len;
}

/* ---- serialiser ---- */

/*
 * Collect the field names the Connection fields of h list (RFC 9110 §7.6.1), other than the
 * connection options. Returns how many there are; only the first cap are stored. One pass.
 */
static size_t conn_collect(const px_http1_head_t *h, wf_str_t *names, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < h->num_headers; i++) {
        const px_http1_header_t *f = &h->headers[i];
        if (!str_ieq(f->name, "connection", 10)) {
            continue;
        }
        wf_str_t rest = f->value, c;
        while (list_next(&rest, &c)) {
            if (!str_ieq(c, "close", 5) && !str_ieq(c, "keep-alive", 10) &&
                !str_ieq(c, "upgrade", 7)) {
                if (n < cap) {
                    names[n] = c;
                }
                n++;
            }
        }
    }
    return n;
}

static bool name_in(wf_str_t name, const wf_str_t *names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (names[i].len == name.len && bytes_ieq(names[i].p, name.p, name.len)) {
            return true;
        }
    }
    return false;
}

/* Fields never forwarded as received: hop-by-hop ones, and those the serialiser rewrites. */
static bool is_dropped(wf_str_t n, const px_http1_ser_opts_t *o, bool is_request)
{
    switch (n.len) {
    case 2:
        return tok_ieq(n.p, "te", 2);
    case 4:
        return is_request && tok_ieq(n.p, "host", 4);
    case 7:
        return tok_ieq(n.p, "trailer", 7) || tok_ieq(n.p, "upgrade", 7);
    case 10:
        return tok_ieq(n.p, "connection", 10) || tok_ieq(n.p, "keep-alive", 10);
    case 14:
        return tok_ieq(n.p, "content-length", 14);
    case 16:
        return tok_ieq(n.p, "proxy-connection", 16);
    case 17:
        return tok_ieq(n.p, "transfer-encoding", 17);
    case 19:
        return !o->keep_proxy_auth && tok_ieq(n.p, "proxy-authorization", 19);
    default:
        return false;
    }
}

static void put_str(wf_buf_t *b, wf_str_t s)
{
    wf_buf_append(b, s.p, s.len);
}

static void put_field(wf_buf_t *b, wf_str_t name, wf_str_t value)
{
    uint8_t *w = wf_buf_reserve(b, name.len + value.len + 4);
    memcpy(w, name.p, name.len);
    w += name.len;
    *w++ = ':';
    *w++ = ' ';
    if (value.len > 0) {
        memcpy(w, value.p, value.len);
    }
    w += value.len;
    *w++ = '\r';
    *w++ = '\n';
    b->len += name.len + value.len + 4;
}

static void put_fields(const px_http1_head_t *h, const px_http1_ser_opts_t *o, bool is_request,
                       wf_buf_t *out)
{
    wf_str_t names[MAX_CONN_NAMES];
    size_t nn = 0;
    if (h->flags & PX_HTTP1_F_CONN_NAMES) {
        nn = conn_collect(h, names, MAX_CONN_NAMES);
        /* The parser refuses more; a head built by hand must not make the proxy leak one. */
        WF_ASSERT(nn <= MAX_CONN_NAMES);
    }
    for (size_t i = 0; i < h->num_headers; i++) {
        const px_http1_header_t *f = &h->headers[i];
        if (is_dropped(f->name, o, is_request) || name_in(f->name, names, nn)) {
            continue;
        }
        if (o->keep_cb != NULL && !o->keep_cb(o->keep_arg, f)) {
            continue;
        }
        put_field(out, f->name, f->value);
    }
    for (size_t i = 0; i < o->num_extra; i++) {
        put_field(out, o->extra[i].name, o->extra[i].value);
    }
    if (o->upgrade && h->upgrade.len > 0) {
        put_field(out, WF_STR_LIT("Connection"), WF_STR_LIT("upgrade"));
        put_field(out, WF_STR_LIT("Upgrade"), h->upgrade);
    } else if (o->connection_close) {
        put_field(out, WF_STR_LIT("Connection"), WF_STR_LIT("close"));
    }
    if (o->framing == PX_HTTP1_FRAME_LENGTH) {
        wf_buf_printf(out, "Content-Length: %llu\r\n", (unsigned long long)o->content_length);
    } else if (o->framing == PX_HTTP1_FRAME_CHUNKED) {
        put_field(out, WF_STR_LIT("Transfer-Encoding"), WF_STR_LIT("chunked"));
    }
    wf_buf_append(out, "\r\n", 2);
}

void px_http1_serialize_request(const px_http1_head_t *head, const px_http1_ser_opts_t *opts,
                                wf_buf_t *out)
{
    static const px_http1_ser_opts_t none;
    const px_http1_ser_opts_t *o = opts != NULL ? opts : &none;
    put_str(out, head->method_str);
    wf_buf_putc(out, ' ');
    if (head->form == PX_HTTP1_FORM_ABSOLUTE && !o->keep_absolute_form) {
        if (head->path.len == 0 || head->path.p[0] != '/') {
            wf_buf_putc(out, '/');
        }
        put_str(out, head->path);
    } else {
        put_str(out, head->target);
    }
    wf_buf_append(out, " HTTP/1.1\r\n", 11);
    wf_str_t host = o->host.len > 0 ? o->host : head->host;
    /* An HTTP/1.0 request may have come without Host; HTTP/1.1 needs one, even empty. */
    put_field(out, WF_STR_LIT("Host"), host);
    put_fields(head, o, true, out);
}

void px_http1_serialize_response(const px_http1_head_t *head, const px_http1_ser_opts_t *opts,
                                 wf_buf_t *out)
{
    static const px_http1_ser_opts_t none;
    const px_http1_ser_opts_t *o = opts != NULL ? opts : &none;
    wf_buf_printf(out, "HTTP/1.1 %03d ", head->status);
    put_str(out, head->reason);
    wf_buf_append(out, "\r\n", 2);
    put_fields(head, o, false, out);
}

uint32_t px_http1_authority_port(wf_str_t a, uint32_t def)
{
    size_t i = a.len;
    while (i > 0 && a.p[i - 1] >= '0' && a.p[i - 1] <= '9') {
        i--;
    }
    if (i == 0 || i == a.len || a.p[i - 1] != ':' || a.len - i > 5) {
        return def;
    }
    /* "::1" alone is an address, not a host with a port: a v6 port follows a bracket. */
    if (memchr(a.p, ':', i - 1) != NULL && a.p[i - 2] != ']') {
        return def;
    }
    uint32_t v = 0;
    for (size_t k = i; k < a.len; k++) {
        v = v * 10 + (uint32_t)(a.p[k] - '0');
    }
    return v > 0 && v <= 65535 ? v : def;
}
