/*
 * fuzz_px_http1.c - drives the HTTP/1.1 head parser, the body framer and the serialiser
 * (px_http1.h) over arbitrary bytes, the way a connection would: parse a head, frame the body
 * that follows, re-serialise the head. The first byte picks the direction (request, or a
 * response to GET, HEAD or CONNECT), small or default limits, and how the body is split.
 *
 * Checked beyond "no crash": a head's length is inside the input and every slice lies inside
 * the head; the head's own bytes parse to the same length and one byte less is incomplete; a
 * refusal carries a status of the documented set; the framer consumes within its input, hands
 * out slices of it, and gives the same content and verdict whether fed at once or in pieces;
 * the serialised head parses again to the same start line and the same fields (a subsequence
 * of the received ones, Host first for requests, no hop-by-hop field left) and framing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "px_http1.h"
#include "wf_buf.h"

#define CAP 128

static void check(int ok)
{
    if (!ok) {
        abort();
    }
}

static int parse(bool req, px_http1_method_t m, const char *p, size_t n,
                 const px_http1_limits_t *lim, px_http1_header_t *hdrs, px_http1_head_t *h,
                 px_http1_error_t *err)
{
    if (req) {
        return px_http1_parse_request(p, n, lim, hdrs, CAP, h, err);
    }
    return px_http1_parse_response(p, n, m, lim, hdrs, CAP, h, err);
}

static void check_slice(wf_str_t s, const char *lo, const char *hi)
{
    if (s.len > 0) {
        check(s.p >= lo && s.p + s.len <= hi);
    }
}

/* Frame body[0..len) in pieces whose sizes come from seed (0: at once). */
static int frame(const px_http1_head_t *h, const char *body, size_t len, uint32_t seed,
                 wf_buf_t *content, size_t *used, bool *done)
{
    px_http1_body_t b;
    px_http1_limits_t lim;
    px_http1_limits_init(&lim);
    lim.max_chunk_line = 64;
    lim.max_trailer = 256;
    lim.max_trailers = 4;
    px_http1_body_init(&b, h, &lim);
    size_t off = 0;
    int rc = 0;
    while (off < len && !px_http1_body_done(&b)) {
        size_t n = len - off;
        if (seed != 0) {
            seed = seed * 1103515245u + 12345u;
            size_t step = 1 + (seed >> 16) % 7;
            n = n < step ? n : step;
        }
        size_t got = 0;
        wf_str_t d;
        rc = px_http1_body_feed(&b, body + off, n, &got, &d);
        if (rc != 0) {
            check(rc == PX_HTTP1_EMSG && b.err.reason != NULL);
            check(b.err.status == 400 || b.err.status == 502);
            break;
        }
        check(got <= n && (got > 0 || n == 0));
        check(d.len <= got);
        check_slice(d, body + off, body + off + got);
        wf_buf_append(content, d.p, d.len);
        off += got;
    }
    *used = off;
    *done = px_http1_body_done(&b);
    check(b.total == content->len);
    return rc;
}

static bool is_hop(wf_str_t n)
{
    static const char *const hop[] = {"connection", "keep-alive",          "proxy-connection",
                                      "te",         "transfer-encoding",   "upgrade",
                                      "trailer",    "proxy-authorization", "content-length"};
    for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++) {
        size_t l = strlen(hop[i]);
        if (n.len == l && strncasecmp(n.p, hop[i], l) == 0) {
            return true;
        }
    }
    return false;
}

static void reserialize(bool req, px_http1_method_t m, const px_http1_head_t *h,
                        const px_http1_limits_t *lim)
{
    px_http1_ser_opts_t o;
    memset(&o, 0, sizeof(o));
    if (h->body == PX_HTTP1_BODY_LENGTH) {
        o.framing = PX_HTTP1_FRAME_LENGTH;
        o.content_length = h->content_length;
    } else if (h->body == PX_HTTP1_BODY_CHUNKED) {
        o.framing = PX_HTTP1_FRAME_CHUNKED;
    }
    wf_buf_t out = WF_BUF_INIT;
    if (req) {
        px_http1_serialize_request(h, &o, &out);
    } else {
        px_http1_serialize_response(h, &o, &out);
    }
    /* Normalising "Name:value" to "Name: value" and adding Host and a framing field can grow
     * a head, so the re-parse gets room for that. */
    px_http1_limits_t big = *lim;
    big.max_head = lim->max_head * 2 + 64;
    big.max_headers = lim->max_headers + 2;
    px_http1_header_t hdrs[CAP + 2];
    px_http1_head_t h2;
    px_http1_error_t err;
    const char *p = (const char *)out.data;
    int rc = req ? px_http1_parse_request(p, out.len, &big, hdrs, CAP + 2, &h2, &err)
                 : px_http1_parse_response(p, out.len, m, &big, hdrs, CAP + 2, &h2, &err);
    check(rc == (int)out.len);
    check(h2.minor_version == 1);
    size_t i = 0;
    if (req) {
        check(wf_str_eq(h2.method_str, h->method_str) && h2.method == h->method);
        if (h->form == PX_HTTP1_FORM_ABSOLUTE) {
            check(h2.form == PX_HTTP1_FORM_ORIGIN);
            check(h->path.len == 0 || h->path.p[0] != '/' || wf_str_eq(h2.target, h->path));
        } else {
            check(h2.form == h->form && wf_str_eq(h2.target, h->target));
        }
        check(h2.num_headers >= 1 && wf_str_eq_c(hdrs[0].name, "Host"));
        check(wf_str_eq(hdrs[0].value, h->host) && wf_str_eq(h2.host, h->host));
        i = 1;
    } else {
        check(h2.status == h->status && wf_str_eq(h2.reason, h->reason));
    }
    size_t end = h2.num_headers - (o.framing != PX_HTTP1_FRAME_NONE ? 1 : 0);
    size_t j = 0;
    for (; i < end; i++) {
        check(!is_hop(hdrs[i].name));
        while (j < h->num_headers && !(wf_str_eq(h->headers[j].name, hdrs[i].name) &&
                                       wf_str_eq(h->headers[j].value, hdrs[i].value))) {
            j++;
        }
        check(j < h->num_headers);
        j++;
    }
    if (h->body == PX_HTTP1_BODY_LENGTH || h->body == PX_HTTP1_BODY_CHUNKED) {
        check(h2.body == h->body && h2.content_length == h->content_length);
    }
    wf_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    uint8_t ctl = data[0];
    const char *in = (const char *)data + 1;
    size_t len = size - 1;
    /* ctl & 3: 0 a request; 1, 2, 3 a response to GET, HEAD, CONNECT. */
    bool req = (ctl & 3) == 0;
    static const px_http1_method_t answers[4] = {PX_HTTP1_M_GET, PX_HTTP1_M_GET, PX_HTTP1_M_HEAD,
                                                 PX_HTTP1_M_CONNECT};
    px_http1_method_t m = answers[ctl & 3];
    px_http1_limits_t lim;
    px_http1_limits_init(&lim);
    if (ctl & 4) {
        lim.max_head = 256;
        lim.max_headers = 8;
        lim.max_uri = 32;
    }

    px_http1_header_t hdrs[CAP];
    px_http1_head_t h;
    px_http1_error_t err = {0, NULL};
    int rc = parse(req, m, in, len, &lim, hdrs, &h, &err);
    if (rc == PX_HTTP1_INCOMPLETE) {
        check(len < lim.max_head);
        return 0;
    }
    if (rc == PX_HTTP1_EMSG) {
        check(err.reason != NULL);
        if (req) {
            int s = err.status;
            check(s == 400 || s == 414 || s == 431 || s == 501 || s == 505);
        } else {
            check(err.status == 502);
        }
        return 0;
    }
    check(rc > 0 && (size_t)rc <= len && (size_t)rc <= lim.max_head && h.head_len == (size_t)rc);
    const char *hend = in + rc;
    check(h.num_headers <= lim.max_headers && h.headers == hdrs);
    for (size_t i = 0; i < h.num_headers; i++) {
        check(hdrs[i].name.len > 0);
        check_slice(hdrs[i].name, in, hend);
        check_slice(hdrs[i].value, in, hend);
    }
    check_slice(h.method_str, in, hend);
    check_slice(h.target, in, hend);
    check_slice(h.path, in, hend);
    check_slice(h.authority, in, hend);
    check_slice(h.host, in, hend);
    check_slice(h.reason, in, hend);
    check_slice(h.upgrade, in, hend);
    check(req ? h.method_str.len > 0 && h.target.len <= lim.max_uri && h.status == 0
              : h.status >= 100 && h.status <= 999 && h.method_str.len == 0);
    check(h.minor_version == 0 || h.minor_version == 1);

    /* The head is decided by its own bytes. */
    px_http1_header_t hdrs2[CAP];
    px_http1_head_t h2;
    check(parse(req, m, in, (size_t)rc, &lim, hdrs2, &h2, &err) == rc);
    check(h2.body == h.body && h2.content_length == h.content_length && h2.flags == h.flags);
    check(parse(req, m, in, (size_t)rc - 1, &lim, hdrs2, &h2, &err) == PX_HTTP1_INCOMPLETE);

    /* The body, at once and in pieces. */
    wf_buf_t c1 = WF_BUF_INIT, c2 = WF_BUF_INIT;
    size_t u1, u2;
    bool d1, d2;
    int f1 = frame(&h, hend, len - (size_t)rc, 0, &c1, &u1, &d1);
    int f2 = frame(&h, hend, len - (size_t)rc, (uint32_t)ctl * 2654435761u | 1, &c2, &u2, &d2);
    check(f1 == f2 && d1 == d2 && c1.len == c2.len);
    check(c1.len == 0 || memcmp(c1.data, c2.data, c1.len) == 0);
    if (f1 == 0) {
        check(u1 == u2 && u1 <= len - (size_t)rc);
        if (h.body == PX_HTTP1_BODY_NONE) {
            check(d1 && u1 == 0);
        }
        if (h.body == PX_HTTP1_BODY_LENGTH) {
            check(c1.len == (d1 ? h.content_length : u1));
        }
    }
    wf_buf_free(&c1);
    wf_buf_free(&c2);

    reserialize(req, m, &h, &lim);
    return 0;
}
