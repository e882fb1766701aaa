/*
 * wt_rw.c - remote_write request builder, snappy, and a keep-alive HTTP client for tests and
 * benchmarks. See wt_rw.h.
 */
#include "wt_rw.h"

#include "wf_alloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <snappy-c.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* ---- protobuf writing ------------------------------------------------------------------- */

void wt_pb_tag(wf_buf_t *b, uint32_t field, unsigned wire)
{
    wf_buf_put_uvarint(b, ((uint64_t)field << 3) | wire);
}

void wt_pb_varint(wf_buf_t *b, uint32_t field, uint64_t v)
{
    wt_pb_tag(b, field, WT_PB_VARINT);
    wf_buf_put_uvarint(b, v);
}

void wt_pb_double(wf_buf_t *b, uint32_t field, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    wt_pb_fixed64(b, field, u);
}

void wt_pb_fixed64(wf_buf_t *b, uint32_t field, uint64_t v)
{
    wt_pb_tag(b, field, WT_PB_I64);
    wf_buf_put_u64le(b, v);
}

void wt_pb_fixed32(wf_buf_t *b, uint32_t field, uint32_t v)
{
    wt_pb_tag(b, field, WT_PB_I32);
    wf_buf_put_u32le(b, v);
}

void wt_pb_bytes(wf_buf_t *b, uint32_t field, const void *p, size_t n)
{
    wt_pb_tag(b, field, WT_PB_LEN);
    wf_buf_put_uvarint(b, n);
    wf_buf_append(b, p, n);
}

void wt_pb_str(wf_buf_t *b, uint32_t field, const char *s)
{
    wt_pb_bytes(b, field, s, strlen(s));
}

/* ---- builder ------------------------------------------------------------------------------ */

typedef struct {
    char **labels; /* 2 * nlabels strings: name, value, ... */
    size_t nlabels;
    int64_t *ts;
    double *v;
    size_t nsamples, cap;
} rw_series_t;

typedef struct {
    int type;
    char *family, *help, *unit;
} rw_meta_t;

struct wt_rw {
    rw_series_t *series;
    size_t nseries, cap;
    rw_meta_t *meta;
    size_t nmeta, meta_cap;
    size_t total_samples;
    bool keep_order;
};

wt_rw_t *wt_rw_new(void)
{
    return wf_calloc(1, sizeof(wt_rw_t));
}

void wt_rw_reset(wt_rw_t *rw)
{
    for (size_t i = 0; i < rw->nseries; i++) {
        rw_series_t *s = &rw->series[i];
        for (size_t j = 0; j < 2 * s->nlabels; j++) {
            wf_free(s->labels[j]);
        }
        wf_free(s->labels);
        wf_free(s->ts);
        wf_free(s->v);
    }
    for (size_t i = 0; i < rw->nmeta; i++) {
        wf_free(rw->meta[i].family);
        wf_free(rw->meta[i].help);
        wf_free(rw->meta[i].unit);
    }
    rw->nseries = 0;
    rw->nmeta = 0;
    rw->total_samples = 0;
}

void wt_rw_free(wt_rw_t *rw)
{
    if (rw == NULL) {
        return;
    }
    wt_rw_reset(rw);
    wf_free(rw->series);
    wf_free(rw->meta);
    wf_free(rw);
}

void wt_rw_keep_order(wt_rw_t *rw, bool keep)
{
    rw->keep_order = keep;
}

static rw_series_t *new_series(wt_rw_t *rw, size_t npairs)
{
    if (rw->nseries == rw->cap) {
        rw->cap = rw->cap ? rw->cap * 2 : 16;
        rw->series = wf_realloc(rw->series, rw->cap * sizeof(*rw->series));
    }
    rw_series_t *s = &rw->series[rw->nseries++];
    memset(s, 0, sizeof(*s));
    s->labels = wf_calloc(2 * npairs + 1, sizeof(char *));
    return s;
}

/* Insertion sort by name: label sets are small, and stability keeps duplicates in order. */
static void sort_labels(rw_series_t *s)
{
    for (size_t i = 1; i < s->nlabels; i++) {
        char *n = s->labels[2 * i], *v = s->labels[2 * i + 1];
        size_t j = i;
        while (j > 0 && strcmp(s->labels[2 * (j - 1)], n) > 0) {
            s->labels[2 * j] = s->labels[2 * (j - 1)];
            s->labels[2 * j + 1] = s->labels[2 * (j - 1) + 1];
            j--;
        }
        s->labels[2 * j] = n;
        s->labels[2 * j + 1] = v;
    }
}

void wt_rw_series(wt_rw_t *rw, const char *const *pairs, size_t npairs)
{
    rw_series_t *s = new_series(rw, npairs);
    for (size_t i = 0; i < 2 * npairs; i++) {
        s->labels[i] = wf_strdup(pairs[i]);
    }
    s->nlabels = npairs;
    if (!rw->keep_order) {
        sort_labels(s);
    }
}

void wt_rw_series_l(wt_rw_t *rw, ...)
{
    const char *pairs[256];
    size_t n = 0;
    va_list ap;
    va_start(ap, rw);
    const char *p;
    while ((p = va_arg(ap, const char *)) != NULL) {
        if (n == sizeof(pairs) / sizeof(pairs[0])) {
            fprintf(stderr, "wt_rw_series_l: too many labels\n");
            abort();
        }
        pairs[n++] = p;
    }
    va_end(ap);
    if (n % 2 != 0) {
        fprintf(stderr, "wt_rw_series_l: odd number of strings\n");
        abort();
    }
    wt_rw_series(rw, pairs, n / 2);
}

static void bad_text(const char *text)
{
    fprintf(stderr, "wt_rw_series_s: malformed series %s\n", text);
    abort();
}

void wt_rw_series_s(wt_rw_t *rw, const char *text)
{
    wf_buf_t names[128], values[128];
    size_t n = 0;
    const char *p = text;
    size_t name_len = strcspn(p, "{");
    if (name_len > 0) {
        wf_buf_init(&names[n]);
        wf_buf_init(&values[n]);
        wf_buf_puts(&names[n], "__name__");
        wf_buf_append(&values[n], p, name_len);
        n++;
    }
    p += name_len;
    if (*p == '{') {
        p++;
        while (*p != '}') {
            if (*p == '\0' || n == 128) {
                bad_text(text);
            }
            while (*p == ' ' || *p == ',') {
                p++;
            }
            if (*p == '}') {
                break;
            }
            size_t l = strcspn(p, "=");
            if (p[l] != '=' || p[l + 1] != '"') {
                bad_text(text);
            }
            wf_buf_init(&names[n]);
            wf_buf_init(&values[n]);
            wf_buf_append(&names[n], p, l);
            p += l + 2;
            while (*p != '"') {
                if (*p == '\0') {
                    bad_text(text);
                }
                if (*p == '\\') {
                    p++;
                    char c = *p == 'n' ? '\n' : *p;
                    if (c == '\0') {
                        bad_text(text);
                    }
                    wf_buf_putc(&values[n], (uint8_t)c);
                } else {
                    wf_buf_putc(&values[n], (uint8_t)*p);
                }
                p++;
            }
            p++;
            n++;
        }
    } else if (*p != '\0') {
        bad_text(text);
    }
    const char *pairs[256] = {NULL};
    for (size_t i = 0; i < n; i++) {
        pairs[2 * i] = wf_buf_cstr(&names[i]);
        pairs[2 * i + 1] = wf_buf_cstr(&values[i]);
    }
    wt_rw_series(rw, pairs, n);
    for (size_t i = 0; i < n; i++) {
        wf_buf_free(&names[i]);
        wf_buf_free(&values[i]);
    }
}

void wt_rw_sample(wt_rw_t *rw, int64_t ts_ms, double v)
{
    if (rw->nseries == 0) {
        fprintf(stderr, "wt_rw_sample: no series started\n");
        abort();
    }
    rw_series_t *s = &rw->series[rw->nseries - 1];
    if (s->nsamples == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 4;
        s->ts = wf_realloc(s->ts, s->cap * sizeof(*s->ts));
        s->v = wf_realloc(s->v, s->cap * sizeof(*s->v));
    }
    s->ts[s->nsamples] = ts_ms;
    s->v[s->nsamples] = v;
    s->nsamples++;
    rw->total_samples++;
}

void wt_rw_metadata(wt_rw_t *rw, int type, const char *family, const char *help, const char *unit)
{
    if (rw->nmeta == rw->meta_cap) {
        rw->meta_cap = rw->meta_cap ? rw->meta_cap * 2 : 8;
        rw->meta = wf_realloc(rw->meta, rw->meta_cap * sizeof(*rw->meta));
    }
    rw_meta_t *m = &rw->meta[rw->nmeta++];
    m->type = type;
    m->family = wf_strdup(family);
    m->help = help ? wf_strdup(help) : NULL;
    m->unit = unit ? wf_strdup(unit) : NULL;
}

size_t wt_rw_nseries(const wt_rw_t *rw)
{
    return rw->nseries;
}

size_t wt_rw_nsamples(const wt_rw_t *rw)
{
    return rw->total_samples;
}

void wt_rw_encode(const wt_rw_t *rw, wf_buf_t *out)
{
    wf_buf_t ts = WF_BUF_INIT, sub = WF_BUF_INIT;
    for (size_t i = 0; i < rw->nseries; i++) {
        const rw_series_t *s = &rw->series[i];
        wf_buf_reset(&ts);
        for (size_t j = 0; j < s->nlabels; j++) {
            /* Label{name = 1, value = 2}; proto3 omits empty strings, as gogo-proto does. */
            wf_buf_reset(&sub);
            if (s->labels[2 * j][0] != '\0') {
                wt_pb_str(&sub, 1, s->labels[2 * j]);
            }
            if (s->labels[2 * j + 1][0] != '\0') {
                wt_pb_str(&sub, 2, s->labels[2 * j + 1]);
            }
            wt_pb_bytes(&ts, 1, sub.data, sub.len);
        }
        for (size_t j = 0; j < s->nsamples; j++) {
            /* Sample{double value = 1; int64 timestamp = 2} */
            wf_buf_reset(&sub);
            uint64_t bits;
            memcpy(&bits, &s->v[j], 8);
            if (bits != 0) {
                wt_pb_double(&sub, 1, s->v[j]);
            }
            if (s->ts[j] != 0) {
                wt_pb_varint(&sub, 2, (uint64_t)s->ts[j]);
            }
            wt_pb_bytes(&ts, 2, sub.data, sub.len);
        }
        wt_pb_bytes(out, 1, ts.data, ts.len);
    }
    for (size_t i = 0; i < rw->nmeta; i++) {
        const rw_meta_t *m = &rw->meta[i];
        wf_buf_reset(&sub);
        if (m->type != 0) {
            wt_pb_varint(&sub, 1, (uint64_t)m->type);
        }
        wt_pb_str(&sub, 2, m->family);
        if (m->help != NULL && m->help[0] != '\0') {
            wt_pb_str(&sub, 4, m->help);
        }
        if (m->unit != NULL && m->unit[0] != '\0') {
            wt_pb_str(&sub, 5, m->unit);
        }
        wt_pb_bytes(out, 3, sub.data, sub.len);
    }
    wf_buf_free(&ts);
    wf_buf_free(&sub);
}

void wt_rw_snappy(const void *in, size_t n, wf_buf_t *out)
{
    size_t max = snappy_max_compressed_length(n);
    char *dst = (char *)wf_buf_reserve(out, max);
    size_t got = max;
    if (snappy_compress(in, n, dst, &got) != SNAPPY_OK) {
        fprintf(stderr, "snappy_compress failed\n");
        abort();
    }
    out->len += got;
}

void wt_rw_body(const wt_rw_t *rw, wf_buf_t *out)
{
    wf_buf_t raw = WF_BUF_INIT;
    wt_rw_encode(rw, &raw);
    wt_rw_snappy(raw.data, raw.len, out);
    wf_buf_free(&raw);
}

int wt_rw_post(int port, const char *path, const void *body, size_t len, char **resp)
{
    wt_conn_t *c = wt_conn_open(port);
    if (c == NULL) {
        return -1;
    }
    wf_buf_t rb = WF_BUF_INIT;
    int status = wt_conn_request(c, "POST", path, WT_RW_HEADERS, body, len, &rb);
    wt_conn_close(c);
    if (resp != NULL) {
        *resp = status >= 0 ? wf_strdup(wf_buf_cstr(&rb)) : NULL;
    }
    wf_buf_free(&rb);
    return status;
}

int wt_rw_send(const wt_rw_t *rw, int port, const char *path, char **resp)
{
    wf_buf_t body = WF_BUF_INIT;
    wt_rw_body(rw, &body);
    int status = wt_rw_post(port, path, body.data, body.len, resp);
    wf_buf_free(&body);
    return status;
}

/* ---- keep-alive client -------------------------------------------------------------------- */

struct wt_conn {
    int fd;
    int port;
    wf_buf_t in; /* bytes received and not yet consumed */
    size_t off;
};

wt_conn_t *wt_conn_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return NULL;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return NULL;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct timeval tv = {30, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    wt_conn_t *c = wf_calloc(1, sizeof(*c));
    c->fd = fd;
    c->port = port;
    return c;
}

void wt_conn_close(wt_conn_t *c)
{
    if (c == NULL) {
        return;
    }
    if (c->fd >= 0) {
        close(c->fd);
    }
    wf_buf_free(&c->in);
    wf_free(c);
}

static int write_all(int fd, const void *p, size_t n)
{
    const uint8_t *q = p;
    while (n > 0) {
        ssize_t w = send(fd, q, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return -1;
        }
        q += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Read more bytes into c->in; 0, or -1 on error or EOF. */
static int fill(wt_conn_t *c)
{
    if (c->off > 0 && c->off == c->in.len) {
        c->in.len = 0;
        c->off = 0;
    }
    uint8_t *p = wf_buf_reserve(&c->in, 65536);
    ssize_t r;
    do {
        r = recv(c->fd, p, 65536, 0);
    } while (r < 0 && errno == EINTR);
    if (r <= 0) {
        return -1;
    }
    c->in.len += (size_t)r;
    return 0;
}

/* A line ending in CRLF from the input (without the CRLF) into line; 0 or -1. */
static int read_line(wt_conn_t *c, char *line, size_t cap)
{
    for (;;) {
        const uint8_t *s = c->in.data != NULL ? c->in.data + c->off : NULL;
        size_t avail = c->in.len - c->off;
        const uint8_t *nl = avail ? memchr(s, '\n', avail) : NULL;
        if (nl != NULL) {
            size_t n = (size_t)(nl - s);
            size_t keep = n > 0 && s[n - 1] == '\r' ? n - 1 : n;
            if (keep >= cap) {
                return -1;
            }
            memcpy(line, s, keep);
            line[keep] = '\0';
            c->off += n + 1;
            return 0;
        }
        if (avail > 65536 || fill(c) != 0) {
            return -1;
        }
    }
}

/* Move n body bytes from the input to out (may be NULL); 0 or -1. */
static int read_body(wt_conn_t *c, size_t n, wf_buf_t *out)
{
    while (n > 0) {
        if (c->off == c->in.len && fill(c) != 0) {
            return -1;
        }
        size_t avail = c->in.len - c->off;
        size_t take = avail < n ? avail : n;
        if (out != NULL) {
            wf_buf_append(out, c->in.data + c->off, take);
        }
        c->off += take;
        n -= take;
    }
    return 0;
}

int wt_conn_request(wt_conn_t *c, const char *method, const char *path, const char *headers,
                    const void *body, size_t len, wf_buf_t *resp_body)
{
    if (c->fd < 0) {
        return -1;
    }
    char head[4096];
    bool chunked_req = headers != NULL && strcasestr(headers, "Transfer-Encoding: chunked");
    int hl;
    if (chunked_req) {
        hl = snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s\r\n", method,
                      path, c->port, headers);
    } else {
        hl = snprintf(head, sizeof(head),
                      "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%sContent-Length: %zu\r\n\r\n",
                      method, path, c->port, headers ? headers : "", len);
    }
    if (hl < 0 || (size_t)hl >= sizeof(head) || write_all(c->fd, head, (size_t)hl) != 0) {
        goto broken;
    }
    if (chunked_req) {
        /* Two chunks (as streaming clients send them, cut anywhere), then the last chunk. */
        size_t first = len / 2;
        const uint8_t *p = body;
        char sz[32];
        for (int i = 0; i < 2; i++) {
            size_t n = i == 0 ? first : len - first;
            if (n == 0) {
                continue;
            }
            int sl = snprintf(sz, sizeof(sz), "%zx\r\n", n);
            if (write_all(c->fd, sz, (size_t)sl) != 0 || write_all(c->fd, p, n) != 0 ||
                write_all(c->fd, "\r\n", 2) != 0) {
                goto broken;
            }
            p += n;
        }
        if (write_all(c->fd, "0\r\n\r\n", 5) != 0) {
            goto broken;
        }
    } else if (len > 0 && write_all(c->fd, body, len) != 0) {
        goto broken;
    }
    char line[8192];
    int status;
    do {
        /* 1xx interim responses (100 Continue) precede the real one. */
        if (read_line(c, line, sizeof(line)) != 0 || sscanf(line, "HTTP/1.%*d %d", &status) != 1) {
            goto broken;
        }
        bool chunked = false, close_after = false;
        long long clen = -1;
        for (;;) {
            if (read_line(c, line, sizeof(line)) != 0) {
                goto broken;
            }
            if (line[0] == '\0') {
                break;
            }
            if (strncasecmp(line, "Content-Length:", 15) == 0) {
                clen = atoll(line + 15);
            } else if (strncasecmp(line, "Transfer-Encoding:", 18) == 0 &&
                       strcasestr(line + 18, "chunked") != NULL) {
                chunked = true;
            } else if (strncasecmp(line, "Connection:", 11) == 0 &&
                       strcasestr(line + 11, "close") != NULL) {
                close_after = true;
            }
        }
        if (status < 200) {
            continue;
        }
        bool no_body = status == 204 || status == 304 || strcmp(method, "HEAD") == 0;
        if (no_body) {
            /* nothing */
        } else if (chunked) {
            for (;;) {
                if (read_line(c, line, sizeof(line)) != 0) {
                    goto broken;
                }
                unsigned long long n = strtoull(line, NULL, 16);
                if (n == 0) {
                    /* trailers until the empty line */
                    do {
                        if (read_line(c, line, sizeof(line)) != 0) {
                            goto broken;
                        }
                    } while (line[0] != '\0');
                    break;
                }
                if (read_body(c, (size_t)n, resp_body) != 0 ||
                    read_line(c, line, sizeof(line)) != 0) {
                    goto broken;
                }
            }
        } else if (clen >= 0) {
            if (read_body(c, (size_t)clen, resp_body) != 0) {
                goto broken;
            }
        } else {
            /* Delimited by the end of the connection. */
            while (fill(c) == 0) {
            }
            if (resp_body != NULL) {
                wf_buf_append(resp_body, c->in.data + c->off, c->in.len - c->off);
            }
            c->off = c->in.len;
            close_after = true;
        }
        if (close_after) {
            close(c->fd);
            c->fd = -1;
        }
    } while (status < 200);
    return status;
broken:
    close(c->fd);
    c->fd = -1;
    return -1;
}
