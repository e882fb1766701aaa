/*
 * col_http.c - the collector's HTTP server: libmicrohttpd daemons, one route table, whole
 * requests in, whole responses out.
 *
 * Request lifecycle (libmicrohttpd calls the access handler several times per request):
 *   1st call: headers are in. Find the route, reject an unknown path (404), a wrong method
 *             (405), or a Content-Length above the route's limit (413), and allocate the
 *             request state (arena, body buffer).
 *   next calls: body bytes (Content-Length or chunked, libmicrohttpd decodes the chunking);
 *             appended up to the limit, the rest discarded and answered 413 at the end.
 *   last call: decode Content-Encoding (gzip, deflate) within the limit, parse the query
 *             string and form body into params, run the handler, queue its response
 *             (gzip-compressed when the client accepts it and the body is large enough).
 * The request state is freed in the completion callback, whatever happened.
 *
 * Body memory budget: every request state holds a reservation of the server-wide budget
 * (max_body_bytes) covering its body: as received, a Content-Length reserved whole on the
 * 1st call, a chunked body chunk by chunk; then the decoded copy the handler reads, which
 * replaces the received bytes before the handler runs. A reservation that does not fit turns the
 * request into a discarded one answered 503 with Retry-After, like the 413 path (the client reads
 * an answer on a connection that stays usable). The completion callback releases it.
 */
#include "col_http.h"

#include "wf_alloc.h"
#include "wf_err.h"
#include "wf_log.h"
#include "wf_str.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#define MAX_ROUTES 64
#define MAX_DAEMONS 4
/* Responses smaller than this are sent as they are: gzip would save little and cost a
 * deflate stream setup. */
#define GZIP_MIN_BYTES 1024
/* Header block memory per connection (request line, headers, small reads). libmicrohttpd
 * zeroes this pool for every connection and request, so it is a per-request cost: 64 KiB
 * holds GET query strings of ~60 KiB (clients send longer PromQL as form POSTs); above it
 * libmicrohttpd answers 414/431 itself. */
#define CONN_MEMORY_LIMIT (64 * 1024)
/* Largest declared body that is read (and dropped) to answer 413 cleanly. */
#define DISCARD_MAX (64ULL << 20)

typedef struct {
    char *path;
    size_t path_len;
    bool prefix;
    unsigned methods; /* bit set of METHOD_* */
    size_t max_body;
    col_handler_cb cb;
    void *arg;
    atomic_ulong by_class[6]; /* responses by status class: 1xx..5xx, [0] other */
} route_t;

enum { METHOD_GET = 1, METHOD_POST = 2, METHOD_PUT = 4, METHOD_DELETE = 8, METHOD_OTHER = 16 };

struct col_http {
    col_http_options_t opt;
    route_t routes[MAX_ROUTES];
    size_t nroutes;
    struct MHD_Daemon *daemons[MAX_DAEMONS];
    size_t ndaemons;
    atomic_size_t body_bytes; /* reserved by request states; never above opt.max_body_bytes */
    atomic_ulong shed_memory;
    col_auth_hook_cb auth_cb; /* NULL: every request reaches its handler */
    void *auth_arg;
};

/* Per-request state between the access handler's calls. */
typedef struct {
    const route_t *route;
    wf_buf_t raw;    /* body as received */
    bool too_large;  /* body exceeded the route's limit: answer 413 at the end */
    bool shed;       /* body did not fit in the server's budget: answer 503 at the end */
    size_t reserved; /* bytes of col_http.body_bytes this request holds */
    wf_arena_t arena;
} req_state_t;

static unsigned method_bit(const char *m)
{
    if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0) {
        return METHOD_GET;
    }
    if (strcmp(m, "POST") == 0) {
        return METHOD_POST;
    }
    if (strcmp(m, "PUT") == 0) {
        return METHOD_PUT;
    }
    if (strcmp(m, "DELETE") == 0) {
        return METHOD_DELETE;
    }
    return METHOD_OTHER;
}

int col_http_new(const col_http_options_t *o, col_http_t **out)
{
    col_http_t *h = wf_calloc(1, sizeof(*h));
    if (o != NULL) {
        h->opt = *o;
    }
    if (h->opt.threads == 0) {
        h->opt.threads = 4;
    }
    if (h->opt.conn_limit == 0) {
        h->opt.conn_limit = 1024;
    }
    if (h->opt.conn_timeout_s == 0) {
        h->opt.conn_timeout_s = 60;
    }
    if (h->opt.max_body_bytes == 0) {
        h->opt.max_body_bytes = COL_HTTP_DEFAULT_BODY_BYTES;
    }
    if (h->opt.retry_after_s == 0) {
        h->opt.retry_after_s = COL_RETRY_AFTER_DEFAULT_S;
    }
    atomic_init(&h->body_bytes, 0);
    atomic_init(&h->shed_memory, 0);
    *out = h;
    return 0;
}

int col_http_route(col_http_t *h, const char *methods, const char *path, bool prefix,
                   size_t max_body, col_handler_cb cb, void *arg)
{
    if (h->nroutes == MAX_ROUTES || h->ndaemons != 0) {
        return WF_E_INVAL;
    }
    route_t *r = &h->routes[h->nroutes++];
    r->path = wf_strdup(path);
    r->path_len = strlen(path);
    r->prefix = prefix;
    r->max_body = max_body;
    r->cb = cb;
    r->arg = arg;
    char m[16];
    for (const char *p = methods; *p != '\0';) {
        size_t n = strcspn(p, " ");
        if (n > 0 && n < sizeof(m)) {
            memcpy(m, p, n);
            m[n] = '\0';
            r->methods |= method_bit(m);
        }
        p += n;
        p += strspn(p, " ");
    }
    return 0;
}

/* The longest route whose path matches url. */
static const route_t *find_route(const col_http_t *h, const char *url)
{
    const route_t *best = NULL;
    size_t ulen = strlen(url);
    for (size_t i = 0; i < h->nroutes; i++) {
        const route_t *r = &h->routes[i];
        bool match = r->prefix ? (ulen >= r->path_len && memcmp(url, r->path, r->path_len) == 0)
                               : (ulen == r->path_len && memcmp(url, r->path, ulen) == 0);
        if (match && (best == NULL || r->path_len > best->path_len)) {
            best = r;
        }
    }
    return best;
}

/* ---- responses ---------------------------------------------------------------------------- */

void col_resp_header(col_resp_t *resp, const char *name, const char *value)
{
    if (resp->nheaders == COL_RESP_MAX_HEADERS) {
        return;
    }
    resp->headers[resp->nheaders][0] = wf_strdup(name);
    resp->headers[resp->nheaders][1] = wf_strdup(value);
    resp->nheaders++;
}

void col_resp_text(col_resp_t *resp, unsigned status, const char *fmt, ...)
{
    resp->status = status;
    resp->content_type = "text/plain; charset=utf-8";
    wf_buf_reset(&resp->body);
    va_list ap;
    va_start(ap, fmt);
    wf_buf_vprintf(&resp->body, fmt, ap);
    va_end(ap);
    wf_buf_putc(&resp->body, '\n');
}

void col_resp_retry_after(col_resp_t *resp)
{
    char v[16];
    snprintf(v, sizeof(v), "%u",
             resp->retry_after_s ? resp->retry_after_s : COL_RETRY_AFTER_DEFAULT_S);
    col_resp_header(resp, "Retry-After", v);
}

void col_resp_retry_later(col_resp_t *resp, unsigned status, const char *fmt, ...)
{
    resp->status = status;
    resp->content_type = "text/plain; charset=utf-8";
    wf_buf_reset(&resp->body);
    va_list ap;
    va_start(ap, fmt);
    wf_buf_vprintf(&resp->body, fmt, ap);
    va_end(ap);
    wf_buf_putc(&resp->body, '\n');
    col_resp_retry_after(resp);
}

void col_resp_api_error(col_resp_t *resp, unsigned status, const char *error_type, const char *fmt,
                        ...)
{
    resp->status = status;
    resp->content_type = "application/json";
    wf_buf_t msg = WF_BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    wf_buf_vprintf(&msg, fmt, ap);
    va_end(ap);
    wf_buf_reset(&resp->body);
    wf_buf_puts(&resp->body, "{\"status\":\"error\",\"errorType\":");
    col_json_str(&resp->body, error_type, strlen(error_type));
    wf_buf_puts(&resp->body, ",\"error\":");
    col_json_str(&resp->body, (const char *)msg.data, msg.len);
    wf_buf_putc(&resp->body, '}');
    wf_buf_free(&msg);
}

void col_resp_free(col_resp_t *resp)
{
    for (size_t i = 0; i < resp->nheaders; i++) {
        wf_free(resp->headers[i][0]);
        wf_free(resp->headers[i][1]);
    }
    resp->nheaders = 0;
    wf_buf_free(&resp->body);
}

/* Does Accept-Encoding allow gzip? (q=0 refuses it.) */
static bool accepts_gzip(struct MHD_Connection *conn)
{
    const char *ae = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Accept-Encoding");
    if (ae == NULL) {
        return false;
    }
    for (const char *p = ae; *p != '\0';) {
        p += strspn(p, " \t,");
        size_t n = strcspn(p, ",");
        size_t tok = strcspn(p, ";, \t");
        if (tok == 4 && strncasecmp(p, "gzip", 4) == 0) {
            const char *q = memchr(p, ';', n);
            if (q != NULL) {
                const char *qv = strstr(q, "q=");
                if (qv != NULL && qv < p + n && strtod(qv + 2, NULL) <= 0) {
                    return false;
                }
            }
            return true;
        }
        p += n;
    }
    return false;
}

/* gzip in into *out (level 1: responses are produced per request; speed matters more than
 * the last percent). 0 or WF_E_INTERNAL. */
static int gzip_compress(const uint8_t *in, size_t len, uint8_t **out, size_t *out_len)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        return WF_E_INTERNAL;
    }
    size_t cap = deflateBound(&zs, len);
    uint8_t *buf = wf_malloc(cap);
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)len;
    zs.next_out = buf;
    zs.avail_out = (uInt)cap;
    int rc = deflate(&zs, Z_FINISH);
    deflateEnd(&zs);
    if (rc != Z_STREAM_END) {
        wf_free(buf);
        return WF_E_INTERNAL;
    }
    *out = buf;
    *out_len = zs.total_out;
    return 0;
}

static enum MHD_Result send_resp(struct MHD_Connection *conn, col_resp_t *resp)
{
    size_t len;
    uint8_t *data = wf_buf_detach(&resp->body, &len);
    bool gz = false;
    if (!resp->no_compress && len >= GZIP_MIN_BYTES && accepts_gzip(conn)) {
        uint8_t *z;
        size_t zlen;
        if (gzip_compress(data, len, &z, &zlen) == 0) {
            wf_free(data);
            data = z;
            len = zlen;
            gz = true;
        }
    }
    if (data == NULL) {
        data = wf_malloc(1);
    }
    struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback(len, data, wf_free);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            resp->content_type ? resp->content_type : "application/json");
    if (gz) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, "Accept-Encoding");
    for (size_t i = 0; i < resp->nheaders; i++) {
        MHD_add_response_header(r, resp->headers[i][0], resp->headers[i][1]);
    }
    enum MHD_Result ret = MHD_queue_response(conn, resp->status ? resp->status : 200, r);
    MHD_destroy_response(r);
    col_resp_free(resp);
    return ret;
}

static enum MHD_Result send_simple(struct MHD_Connection *conn, unsigned status, const char *msg)
{
    col_resp_t resp;
    memset(&resp, 0, sizeof(resp));
    col_resp_text(&resp, status, "%s", msg);
    return send_resp(conn, &resp);
}

/* The answer to a request shed because its body did not fit in the budget. */
static enum MHD_Result send_shed(col_http_t *h, struct MHD_Connection *conn)
{
    col_resp_t resp;
    memset(&resp, 0, sizeof(resp));
    resp.retry_after_s = h->opt.retry_after_s;
    col_resp_retry_later(&resp, MHD_HTTP_SERVICE_UNAVAILABLE,
                         "the collector is overloaded (request bodies in memory at their limit "
                         "of %zu bytes): retry later",
                         h->opt.max_body_bytes);
    return send_resp(conn, &resp);
}

/* Reserve n more bytes of the body budget; false (nothing reserved) when they do not fit. */
static bool budget_reserve(col_http_t *h, size_t n)
{
    size_t cur = atomic_load(&h->body_bytes);
    do {
        if (n > h->opt.max_body_bytes - cur) {
            return false;
        }
    } while (!atomic_compare_exchange_weak(&h->body_bytes, &cur, cur + n));
    return true;
}

/* Give back the request's reservation and count it as shed. */
static void shed_request(col_http_t *h, req_state_t *st)
{
    atomic_fetch_sub(&h->body_bytes, st->reserved);
    st->reserved = 0;
    st->shed = true;
    wf_buf_free(&st->raw);
    atomic_fetch_add(&h->shed_memory, 1);
    WF_LOG_RL(WF_WARN, 1, "http", "request body budget full: request shed", "route=%s limit=%zu",
              st->route->path, h->opt.max_body_bytes);
}

/* ---- requests ----------------------------------------------------------------------------- */

const char *col_req_param(const col_req_t *r, const char *name)
{
    for (size_t i = 0; i < r->nparams; i++) {
        if (strcmp(r->params[i].name, name) == 0) {
            return r->params[i].value;
        }
    }
    return NULL;
}

size_t col_req_param_all(const col_req_t *r, const char *name, const char **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < r->nparams; i++) {
        if (strcmp(r->params[i].name, name) == 0) {
            if (n < max) {
                out[n] = r->params[i].value;
            }
            n++;
        }
    }
    return n;
}

const char *col_req_header(const col_req_t *r, const char *name)
{
    return MHD_lookup_connection_value((struct MHD_Connection *)r->conn_, MHD_HEADER_KIND, name);
}

typedef struct {
    col_req_t *req;
    size_t cap;
} params_acc_t;

static void params_add(col_req_t *req, size_t *cap, const char *name, const char *value)
{
    if (req->nparams == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        col_param_t *np = wf_arena_alloc(req->arena, ncap * sizeof(*np));
        if (req->nparams != 0) {
            memcpy(np, req->params, req->nparams * sizeof(*np));
        }
        req->params = np;
        *cap = ncap;
    }
    req->params[req->nparams].name = name;
    req->params[req->nparams].value = value;
    req->nparams++;
}

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    params_acc_t *acc = cls;
    params_add(acc->req, &acc->cap, wf_arena_strndup(acc->req->arena, key, strlen(key)),
               value ? wf_arena_strndup(acc->req->arena, value, strlen(value)) : "");
    return MHD_YES;
}

/* Decode one application/x-www-form-urlencoded component into the arena. A malformed
 * escape is kept literally, as Go's url.ParseQuery would refuse it; we are lenient on the
 * byte but not on the structure. */
static char *form_decode(wf_arena_t *a, const char *s, size_t n)
{
    char *out = wf_arena_alloc(a, n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%' && i + 2 < n && wf_hex_digit((unsigned char)s[i + 1]) >= 0 &&
                   wf_hex_digit((unsigned char)s[i + 2]) >= 0) {
            out[o++] = (char)(wf_hex_digit((unsigned char)s[i + 1]) * 16 +
                              wf_hex_digit((unsigned char)s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

static void parse_form(col_req_t *req, size_t *cap, const char *body, size_t len)
{
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && body[j] != '&') {
            j++;
        }
        if (j > i) {
            const char *eq = memchr(body + i, '=', j - i);
            size_t klen = eq ? (size_t)(eq - (body + i)) : j - i;
            char *k = form_decode(req->arena, body + i, klen);
            char *v = eq ? form_decode(req->arena, eq + 1, (size_t)(body + j - (eq + 1)))
                         : wf_arena_strndup(req->arena, "", 0);
            params_add(req, cap, k, v);
        }
        i = j + 1;
    }
}

int col_http_inflate(const uint8_t *in, size_t len, int window_bits, size_t limit, wf_buf_t *out)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (inflateInit2(&zs, window_bits) != Z_OK) {
        return WF_E_INTERNAL;
    }
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)len;
    int rc = Z_OK;
    int ret = 0;
    while (rc != Z_STREAM_END) {
        size_t room = 64 * 1024;
        if (out->len + room > limit + 1) {
            room = limit + 1 - out->len;
        }
        if (room == 0) {
            ret = WF_E_LIMIT;
            break;
        }
        uint8_t *dst = wf_buf_reserve(out, room);
        zs.next_out = dst;
        zs.avail_out = (uInt)room;
        rc = inflate(&zs, Z_NO_FLUSH);
        out->len += room - zs.avail_out;
        if (rc == Z_STREAM_END) {
            break;
        }
        if (rc != Z_OK) {
            ret = WF_E_INVAL;
            break;
        }
        if (zs.avail_in == 0 && zs.avail_out != 0) {
            ret = WF_E_INVAL; /* truncated stream */
            break;
        }
        if (out->len > limit) {
            ret = WF_E_LIMIT;
            break;
        }
    }
    if (ret == 0 && out->len > limit) {
        ret = WF_E_LIMIT;
    }
    inflateEnd(&zs);
    return ret;
}

static void complete_cb(void *cls, struct MHD_Connection *conn, void **req_cls,
                        enum MHD_RequestTerminationCode toe)
{
    col_http_t *h = cls;
    req_state_t *st = *req_cls;
    if (st == NULL) {
        return;
    }
    atomic_fetch_sub(&h->body_bytes, st->reserved);
    wf_buf_free(&st->raw);
    wf_arena_free(&st->arena);
    wf_free(st);
    *req_cls = NULL;
}

static enum MHD_Result dispatch(col_http_t *h, struct MHD_Connection *conn, const char *url,
                                const char *method, req_state_t *st)
{
    const route_t *route = st->route;
    if (st->too_large) {
        char msg[96];
        snprintf(msg, sizeof(msg), "request body too large (limit %zu bytes)",
                 route->max_body < h->opt.max_body_bytes ? route->max_body : h->opt.max_body_bytes);
        return send_simple(conn, MHD_HTTP_CONTENT_TOO_LARGE, msg);
    }
    if (st->shed) {
        return send_shed(h, conn);
    }
    col_req_t req;
    memset(&req, 0, sizeof(req));
    req.method = method;
    req.path = url;
    req.arena = &st->arena;
    req.conn_ = conn;

    wf_buf_t decoded = WF_BUF_INIT;
    const uint8_t *body = st->raw.data;
    size_t body_len = st->raw.len;
    const char *ce = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Encoding");
    if (ce != NULL && body_len > 0 &&
        (strcasecmp(ce, "gzip") == 0 || strcasecmp(ce, "x-gzip") == 0 ||
         strcasecmp(ce, "deflate") == 0)) {
        int rc =
            col_http_inflate(body, body_len, strcasecmp(ce, "deflate") == 0 ? 15 + 32 : 15 + 16,
                             route->max_body, &decoded);
        if (rc == WF_E_LIMIT) {
            wf_buf_free(&decoded);
            char msg[96];
            snprintf(msg, sizeof(msg), "decompressed body too large (limit %zu bytes)",
                     route->max_body);
            return send_simple(conn, MHD_HTTP_CONTENT_TOO_LARGE, msg);
        }
        if (rc != 0) {
            wf_buf_free(&decoded);
            return send_simple(conn, MHD_HTTP_BAD_REQUEST,
                               "invalid Content-Encoding: the body is not valid gzip/deflate");
        }
        body = decoded.data;
        body_len = decoded.len;
    } else if (ce != NULL && strcasecmp(ce, "identity") != 0 && strcasecmp(ce, "snappy") != 0) {
        /* snappy is remote_write's own framing; the handler decodes it. */
        char msg[128];
        snprintf(msg, sizeof(msg), "unsupported Content-Encoding %.64s", ce);
        return send_simple(conn, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, msg);
    }
    /* From here on the request holds its decoded body (the arena copy) instead of the raw one,
     * and the reservation follows it: a gzip body counts at its decoded size. */
    if (body_len > h->opt.max_body_bytes) {
        wf_buf_free(&decoded);
        char msg[96];
        snprintf(msg, sizeof(msg), "decompressed body too large (limit %zu bytes)",
                 h->opt.max_body_bytes);
        return send_simple(conn, MHD_HTTP_CONTENT_TOO_LARGE, msg);
    }
    if (body_len > st->reserved && !budget_reserve(h, body_len - st->reserved)) {
        wf_buf_free(&decoded);
        shed_request(h, st);
        return send_shed(h, conn);
    }
    if (body_len < st->reserved) {
        atomic_fetch_sub(&h->body_bytes, st->reserved - body_len);
    }
    st->reserved = body_len;
    /* NUL-terminate a copy in the arena so text handlers may treat it as a string. */
    uint8_t *b = wf_arena_alloc(&st->arena, body_len + 1);
    if (body_len > 0) {
        memcpy(b, body, body_len);
    }
    b[body_len] = '\0';
    wf_buf_free(&decoded);
    wf_buf_free(&st->raw);
    req.body = b;
    req.body_len = body_len;

    params_acc_t acc = {&req, 0};
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_arg, &acc);
    const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    if (ct != NULL && strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0) {
        parse_form(&req, &acc.cap, (const char *)b, body_len);
    }

    col_resp_t resp;
    memset(&resp, 0, sizeof(resp));
    resp.status = 200;
    resp.content_type = "application/json";
    resp.retry_after_s = h->opt.retry_after_s;
    route->cb(route->arg, &req, &resp);
    unsigned cls = resp.status / 100;
    atomic_fetch_add(&((route_t *)route)->by_class[cls >= 1 && cls <= 5 ? cls : 0], 1);
    return send_resp(conn, &resp);
}

/* Ask the authentication hook about a request whose headers are in: true to serve it; false
 * when it refused it, with its answer in *resp (counted in the route's figures) to send. */
static bool run_auth(col_http_t *h, struct MHD_Connection *conn, const route_t *route,
                     const char *url, const char *method, col_resp_t *resp)
{
    col_req_t req;
    memset(&req, 0, sizeof(req));
    req.method = method;
    req.path = url;
    req.conn_ = conn;
    memset(resp, 0, sizeof(*resp));
    resp->status = 200;
    resp->content_type = "application/json";
    resp->retry_after_s = h->opt.retry_after_s;
    if (h->auth_cb(h->auth_arg, route->path, &req, resp)) {
        col_resp_free(resp);
        return true;
    }
    unsigned cls = resp->status / 100;
    atomic_fetch_add(&((route_t *)route)->by_class[cls >= 1 && cls <= 5 ? cls : 0], 1);
    return false;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **req_cls)
{
    col_http_t *h = cls;
    req_state_t *st = *req_cls;
    if (st == NULL) {
        const route_t *route = find_route(h, url);
        if (route == NULL) {
            col_resp_t resp;
            memset(&resp, 0, sizeof(resp));
            col_resp_api_error(&resp, MHD_HTTP_NOT_FOUND, "not_found", "no such endpoint: %s", url);
            return send_resp(conn, &resp);
        }
        if ((route->methods & method_bit(method)) == 0) {
            col_resp_t resp;
            memset(&resp, 0, sizeof(resp));
            col_resp_api_error(&resp, MHD_HTTP_METHOD_NOT_ALLOWED, "bad_data",
                               "method %s not allowed for %s", method, url);
            return send_resp(conn, &resp);
        }
        col_resp_t refused;
        if (h->auth_cb != NULL && !run_auth(h, conn, route, url, method, &refused)) {
            return send_resp(conn, &refused);
        }
        /* A declared body above the limit is read and dropped, then answered 413, so that
         * the client (still sending) reads the answer instead of a reset connection; one
         * far above it is answered at once and the connection closed. */
        bool too_large = false;
        size_t declared = 0;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl != NULL) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(cl, &end, 10);
            if (errno != 0 || (unsigned long long)route->max_body < n ||
                (unsigned long long)h->opt.max_body_bytes < n) {
                too_large = true;
                if (errno != 0 || n > DISCARD_MAX) {
                    char msg[96];
                    snprintf(msg, sizeof(msg), "request body too large (limit %zu bytes)",
                             route->max_body < h->opt.max_body_bytes ? route->max_body
                                                                     : h->opt.max_body_bytes);
                    return send_simple(conn, MHD_HTTP_CONTENT_TOO_LARGE, msg);
                }
            } else {
                declared = (size_t)n;
            }
        }
        st = wf_calloc(1, sizeof(*st));
        st->route = route;
        st->too_large = too_large;
        wf_arena_init(&st->arena, 16 * 1024, 0);
        *req_cls = st;
        if (declared > 0) {
            if (budget_reserve(h, declared)) {
                st->reserved = declared;
                /* The whole body at once: growing it chunk by chunk (libmicrohttpd hands over
                 * a few kilobytes per call) cost a realloc copy and fresh page faults per
                 * doubling, ~10 % of the collector's CPU on span ingest. declared is within
                 * the route's limit and the budget. */
                wf_buf_reserve(&st->raw, declared);
            } else {
                shed_request(h, st);
                if (declared > DISCARD_MAX) {
                    return send_shed(h, conn);
                }
            }
        }
        return MHD_YES;
    }
    if (*upload_size != 0) {
        if (!st->too_large && !st->shed) {
            size_t want = st->raw.len + *upload_size;
            if (want > st->route->max_body || want > h->opt.max_body_bytes) {
                st->too_large = true;
                wf_buf_free(&st->raw);
                atomic_fetch_sub(&h->body_bytes, st->reserved);
                st->reserved = 0;
            } else if (want > st->reserved && !budget_reserve(h, want - st->reserved)) {
                shed_request(h, st);
            } else {
                if (want > st->reserved) {
                    st->reserved = want;
                }
                wf_buf_append(&st->raw, upload, *upload_size);
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    return dispatch(h, conn, url, method, st);
}

int col_http_parse_addr(const char *s, struct sockaddr_in *addr)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s) {
        return WF_E_INVAL;
    }
    char host[64];
    size_t hl = (size_t)(colon - s);
    if (hl >= sizeof(host)) {
        return WF_E_INVAL;
    }
    memcpy(host, s, hl);
    host[hl] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port < 0 || port > 65535 || end == colon + 1) {
        return WF_E_INVAL;
    }
    memset(addr, 0, sizeof(*addr));
    addr->sin_family = AF_INET;
    addr->sin_port = htons((uint16_t)port);
    if (strcmp(host, "localhost") == 0) {
        strcpy(host, "127.0.0.1");
    }
    if (inet_pton(AF_INET, host, &addr->sin_addr) != 1) {
        return WF_E_INVAL;
    }
    return 0;
}

/*
 * libmicrohttpd's percent-decoding of the path and the query arguments, except that "%00"
 * stays as it is: a decoded NUL would end the C string the handlers get, and "/x%00/../y" or
 * "/api/v1/query%00z" would silently be served as their prefix.
 */
static size_t unescape_cb(void *cls, struct MHD_Connection *conn, char *s)
{
    char *w = s;
    for (const char *r = s; *r != '\0';) {
        int hi = r[0] == '%' ? wf_hex_digit((unsigned char)r[1]) : -1;
        int lo = hi >= 0 ? wf_hex_digit((unsigned char)r[2]) : -1;
        if (lo >= 0 && (hi | lo) != 0) {
            *w++ = (char)(hi * 16 + lo);
            r += 3;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
    return (size_t)(w - s);
}

int col_http_listen(col_http_t *h, const char *addr_s)
{
    struct sockaddr_in addr;
    if (h->ndaemons == MAX_DAEMONS) {
        return WF_E_LIMIT;
    }
    if (col_http_parse_addr(addr_s, &addr) != 0) {
        return WF_E_INVAL;
    }
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL,
        on_request, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_THREAD_POOL_SIZE,
        h->opt.threads, MHD_OPTION_CONNECTION_TIMEOUT, h->opt.conn_timeout_s,
        MHD_OPTION_CONNECTION_LIMIT, h->opt.conn_limit, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)CONN_MEMORY_LIMIT, MHD_OPTION_NOTIFY_COMPLETED, complete_cb, h,
        MHD_OPTION_UNESCAPE_CALLBACK, unescape_cb, NULL, MHD_OPTION_END);
    if (d == NULL) {
        return errno ? -errno : WF_E_INTERNAL;
    }
    h->daemons[h->ndaemons++] = d;
    return 0;
}

void col_http_set_auth(col_http_t *h, col_auth_hook_cb cb, void *arg)
{
    h->auth_cb = cb;
    h->auth_arg = arg;
}

void col_req_client_addr(const col_req_t *r, char *buf, size_t len)
{
    buf[0] = '\0';
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
        (struct MHD_Connection *)r->conn_, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci == NULL || ci->client_addr == NULL) {
        return;
    }
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, (socklen_t)len);
    } else if (sa->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf, (socklen_t)len);
    }
}

void col_http_write_metrics(col_http_t *h, wf_buf_t *out)
{
    static const char *const classes[6] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
    wf_buf_puts(out, "# HELP weft_http_requests_total HTTP requests answered by a handler, by "
                     "status class.\n# TYPE weft_http_requests_total counter\n");
    for (size_t i = 0; i < h->nroutes; i++) {
        for (size_t c = 0; c < 6; c++) {
            unsigned long n = atomic_load(&h->routes[i].by_class[c]);
            if (n != 0 || c == 2) {
                wf_buf_printf(out, "weft_http_requests_total{code=\"%s\",handler=\"%s\"} %lu\n",
                              classes[c], h->routes[i].path, n);
            }
        }
    }
}

void col_http_stats(col_http_t *h, col_http_stats_t *out)
{
    out->shed_memory = atomic_load(&h->shed_memory);
    out->body_bytes = atomic_load(&h->body_bytes);
}

void col_http_free(col_http_t *h)
{
    if (h == NULL) {
        return;
    }
    for (size_t i = 0; i < h->ndaemons; i++) {
        MHD_stop_daemon(h->daemons[i]); /* waits for in-flight requests */
    }
    for (size_t i = 0; i < h->nroutes; i++) {
        wf_free(h->routes[i].path);
    }
    wf_free(h);
}

/* ---- JSON helpers --------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80) {
        return 1;
    } else if ((c & 0xe0) == 0xc0) {
        len = 2;
        min = 0x80;
        c &= 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3;
        min = 0x800;
        c &= 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4;
        min = 0x10000;
        c &= 0x07;
    } else {
        return 0;
    }
    if (len > n) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        c = (c << 6) | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
        return 0;
    }
    return len;
}

void col_json_str(wf_buf_t *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    wf_buf_putc(out, '"');
    size_t i = 0;
    while (i < len) {
        /* Copy the longest run that needs no escaping in one append. */
        size_t j = i;
        while (j < len && p[j] >= 0x20 && p[j] < 0x80 && p[j] != '"' && p[j] != '\\') {
            j++;
        }
        if (j > i) {
            wf_buf_append(out, p + i, j - i);
            i = j;
            continue;
        }
        unsigned c = p[i];
        if (c == '"' || c == '\\') {
            wf_buf_putc(out, '\\');
            wf_buf_putc(out, (uint8_t)c);
            i++;
        } else if (c < 0x20) {
            switch (c) {
            case '\n':
                wf_buf_puts(out, "\\n");
                break;
            case '\r':
                wf_buf_puts(out, "\\r");
                break;
            case '\t':
                wf_buf_puts(out, "\\t");
                break;
            default: {
                char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                wf_buf_append(out, e, 6);
            }
            }
            i++;
        } else {
            size_t n = utf8_seq(p + i, len - i);
            if (n == 0) {
                wf_buf_puts(out, "\xef\xbf\xbd"); /* U+FFFD */
                i++;
            } else {
                wf_buf_append(out, p + i, n);
                i += n;
            }
        }
    }
    wf_buf_putc(out, '"');
}

void col_fmt_float(wf_buf_t *out, double v)
{
    if (isnan(v)) {
        wf_buf_puts(out, "NaN");
        return;
    }
    if (isinf(v)) {
        wf_buf_puts(out, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (v == 0) {
        wf_buf_puts(out, signbit(v) ? "-0" : "0");
        return;
    }
    /* Shortest decimal that reads back as v (what Go's 'g'/'f'/'e' with precision -1 pick). */
    char e[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(e, sizeof(e), "%.*e", prec - 1, v);
        if (strtod(e, NULL) == v) {
            break;
        }
    }
    double a = fabs(v);
    if (a < 1e-6 || a >= 1e21) {
        /* Go's 'e' format: mantissa digits, then e, sign, at least two exponent digits. */
        char *ep = strchr(e, 'e');
        int exp = atoi(ep + 1);
        wf_buf_append(out, e, (size_t)(ep - e));
        wf_buf_printf(out, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
        return;
    }
    /* Fixed notation with exactly the shortest digits. */
    char digits[24];
    size_t nd = 0;
    const char *q = e;
    bool neg = false;
    if (*q == '-') {
        neg = true;
        q++;
    }
    for (; *q != 'e'; q++) {
        if (*q >= '0' && *q <= '9') {
            digits[nd++] = *q;
        }
    }
    int exp = atoi(q + 1); /* value = 0.d1d2d3... * 10^(exp+1) */
    while (nd > 1 && digits[nd - 1] == '0') {
        nd--;
    }
    if (neg) {
        wf_buf_putc(out, '-');
    }
    int point = exp + 1; /* digits before the decimal point */
    if (point <= 0) {
        wf_buf_puts(out, "0.");
        for (int i = 0; i < -point; i++) {
            wf_buf_putc(out, '0');
        }
        wf_buf_append(out, digits, nd);
    } else if ((size_t)point >= nd) {
        wf_buf_append(out, digits, nd);
        for (size_t i = nd; i < (size_t)point; i++) {
            wf_buf_putc(out, '0');
        }
    } else {
        wf_buf_append(out, digits, (size_t)point);
        wf_buf_putc(out, '.');
        wf_buf_append(out, digits + point, nd - (size_t)point);
    }
}
