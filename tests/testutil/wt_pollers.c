/*
 * wt_pollers.c - the long-poll load client and request batches of wt_pollers.h: one epoll loop
 * over non-blocking HTTP/1.1 client connections, each a small state machine (connect, send,
 * read the head, read the body by length, chunks or close), shared by the pollers and batches.
 */
#include "wt_pollers.h"

#include "wf_alloc.h"
#include "wf_buf.h"
#include "wf_clock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#define READ_CHUNK (256 * 1024)
#define MAX_HEAD 16384
#define RETRY_FIRST_NS (100 * 1000000LL)
#define RETRY_MAX_NS (2000 * 1000000LL)
#define BATCH_ATTEMPTS 3

long wt_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return -1;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
        (void)getrlimit(RLIMIT_NOFILE, &rl);
    }
    return (long)rl.rlim_cur;
}

/*
 * A streaming scan for the top-level "version" of a JSON object, fed the body in pieces as they
 * arrive. It tracks nesting and strings only: "version" counts when it is a key directly inside
 * the outermost object (proxy.version is a string one level down) and its value an integer.
 */
typedef struct {
    int depth;
    bool in_str, esc, key_next, collecting, want_colon, want_num, in_num;
    int klen;
    char key[8];
    int64_t num;
    int64_t version; /* -1 until found */
} vscan_t;

static void vscan_init(vscan_t *s)
{
    memset(s, 0, sizeof(*s));
    s->version = -1;
}

static void vscan_feed(vscan_t *s, const char *p, size_t n)
{
    size_t i = 0;
    /* Top-level keys are unique: once found, the rest of the document need not be read (the
     * control plane writes "version" second, so a multi-megabyte body costs almost nothing). */
    while (i < n && s->version < 0) {
        char c = p[i];
        if (s->in_str) {
            if (!s->collecting && !s->esc) {
                /* Most of a document is string bytes: skip to the next quote or escape. */
                while (i < n && p[i] != '"' && p[i] != '\\') {
                    i++;
                }
                if (i == n) {
                    return;
                }
                c = p[i];
            }
            if (s->esc) {
                s->esc = false;
                s->collecting = false; /* "version" has no escapes */
            } else if (c == '\\') {
                s->esc = true;
            } else if (c == '"') {
                s->in_str = false;
                if (s->collecting) {
                    s->want_colon = s->klen == 7 && memcmp(s->key, "version", 7) == 0;
                    s->collecting = false;
                }
            } else if (s->collecting) {
                if (s->klen < 7) {
                    s->key[s->klen++] = c;
                } else {
                    s->collecting = false;
                }
            }
            i++;
            continue;
        }
        if (s->in_num) {
            if (c >= '0' && c <= '9' && s->num < INT64_MAX / 10 - 10) {
                s->num = s->num * 10 + (c - '0');
                i++;
                continue;
            }
            s->in_num = false;
            if (c == ',' || c == '}' || c == ' ' || c == '\n' || c == '\r' || c == '\t') {
                s->version = s->num;
            }
        }
        if (s->want_num) {
            if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
                i++;
                continue;
            }
            s->want_num = false;
            if (c >= '0' && c <= '9') {
                s->in_num = true;
                s->num = c - '0';
                i++;
                continue;
            }
        }
        switch (c) {
        case '"':
            s->in_str = true;
            s->collecting = s->depth == 1 && s->key_next;
            s->klen = 0;
            s->key_next = false;
            break;
        case '{':
        case '[':
            s->depth++;
            s->key_next = c == '{' && s->depth == 1;
            break;
        case '}':
        case ']':
            s->depth--;
            break;
        case ',':
            s->key_next = s->depth == 1;
            break;
        case ':':
            s->want_num = s->want_colon;
            s->want_colon = false;
            break;
        default:
            break;
        }
        i++;
    }
}

typedef enum { C_IDLE, C_CONNECTING, C_SENDING, C_HEAD, C_BODY, C_RETRY } cstate_t;
typedef enum { B_LENGTH, B_CHUNKED, B_EOF } bmode_t;
typedef enum { K_SIZE, K_DATA, K_DATA_END, K_TRAILER } kstate_t;

/* One client connection and the exchange under way on it. */
typedef struct {
    int fd;
    cstate_t st;
    size_t slot;   /* the poller, or the batch request in flight */
    bool has_slot; /* batch: a request is assigned */
    int attempts;  /* batch: failures of the assigned request */
    int64_t retry_ns;
    int64_t backoff_ns;
    wf_buf_t out;
    size_t out_off;
    wf_buf_t head;
    int status;
    bool close_after;
    bmode_t bm;
    int64_t left;
    kstate_t ks;
    char line[64];
    size_t line_len;
    bool keep_body;
    bool pause; /* set by done: open again only after the back-off */
    wf_buf_t body;
    vscan_t scan;
    uint64_t body_len;
    /* Content-Encoding: gzip. Inflated only as far as the scan needs ("version" is in the
     * first bytes), or whole for a body that is kept: a real proxy inflates it all, but that is
     * the proxy's work, not the control plane's. */
    bool gz, zs_on;
    z_stream zs;
} hconn_t;

typedef struct engine engine_t;

/* What a user of the engine supplies: the next request, and what to do with an answer. */
typedef struct {
    /* Write the next request into c->out; false when this connection has nothing to send. */
    bool (*next)(engine_t *e, hconn_t *c);
    /* The request is written: the server has it. */
    void (*sent)(engine_t *e, hconn_t *c);
    void (*done)(engine_t *e, hconn_t *c);
    /* The exchange failed (the connection is closed and will be opened again). */
    void (*failed)(engine_t *e, hconn_t *c);
} engine_ops_t;

struct engine {
    int ep;
    int port;
    hconn_t *conns;
    size_t nconns;
    size_t connecting;
    size_t max_connecting;
    size_t next_connect; /* conns below this index have been started once */
    size_t retrying;
    char *rbuf;
    const engine_ops_t *ops;
    void *user;
    uint64_t wire_bytes, conn_errors, connects;
};

static void gz_end(hconn_t *c)
{
    if (c->zs_on) {
        inflateEnd(&c->zs);
        c->zs_on = false;
    }
}

static void conn_free_bufs(hconn_t *c)
{
    gz_end(c);
    wf_buf_free(&c->out);
    wf_buf_free(&c->head);
    wf_buf_free(&c->body);
}

static void conn_close(engine_t *e, hconn_t *c)
{
    if (c->fd >= 0) {
        epoll_ctl(e->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    if (c->st == C_CONNECTING) {
        e->connecting--;
    }
    c->st = C_IDLE;
}

static int conn_events(engine_t *e, hconn_t *c, uint32_t ev)
{
    struct epoll_event ee = {.events = ev, .data.ptr = c};
    return epoll_ctl(e->ep, EPOLL_CTL_MOD, c->fd, &ee);
}

/* Close c and open it again after the back-off (100 ms, doubling to 2 s). */
static void conn_retry_later(engine_t *e, hconn_t *c)
{
    conn_close(e, c);
    c->backoff_ns = c->backoff_ns == 0 ? RETRY_FIRST_NS : c->backoff_ns * 2;
    if (c->backoff_ns > RETRY_MAX_NS) {
        c->backoff_ns = RETRY_MAX_NS;
    }
    c->retry_ns = wf_mono_ns() + c->backoff_ns;
    c->st = C_RETRY;
    e->retrying++;
}

/* The exchange on c failed: close, tell the user, and open again after the back-off. */
static void conn_fail(engine_t *e, hconn_t *c)
{
    conn_close(e, c);
    e->conn_errors++;
    e->ops->failed(e, c);
    conn_retry_later(e, c);
}

/* Open c's connection; its first request goes when the connect completes. */
static void conn_open(engine_t *e, hconn_t *c)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)e->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        goto fail;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) != 0 && errno != EINPROGRESS) {
        goto fail;
    }
    struct epoll_event ee = {.events = EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(e->ep, EPOLL_CTL_ADD, c->fd, &ee) != 0) {
        goto fail;
    }
    c->st = C_CONNECTING;
    e->connecting++;
    return;
fail:
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    c->st = C_IDLE;
    conn_fail(e, c);
}

/* Send what is left of c->out; then wait for the answer. */
static void conn_send(engine_t *e, hconn_t *c)
{
    while (c->out_off < c->out.len) {
        ssize_t w = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (w < 0 && errno == EAGAIN) {
            if (c->st != C_SENDING) {
                c->st = C_SENDING;
                conn_events(e, c, EPOLLIN | EPOLLOUT);
            }
            return;
        }
        if (w <= 0) {
            conn_fail(e, c);
            return;
        }
        c->out_off += (size_t)w;
    }
    bool was_sending = c->st == C_SENDING;
    c->st = C_HEAD;
    wf_buf_reset(&c->head);
    if (was_sending) {
        conn_events(e, c, EPOLLIN);
    }
    if (e->ops->sent != NULL) {
        e->ops->sent(e, c);
    }
}

/* Start c's next exchange on its open connection, or leave it idle (closed) when none. */
static void conn_next(engine_t *e, hconn_t *c)
{
    wf_buf_reset(&c->out);
    c->out_off = 0;
    if (!e->ops->next(e, c)) {
        conn_close(e, c);
        return;
    }
    if (c->fd < 0) {
        conn_open(e, c);
        return;
    }
    conn_send(e, c);
}

/* Parse the head in c->head[0..end); false when it is not an HTTP/1.x answer. */
static bool parse_head(hconn_t *c, size_t end)
{
    char *h = (char *)c->head.data;
    if (end < 12 || memcmp(h, "HTTP/1.", 7) != 0 || h[8] != ' ') {
        return false;
    }
    c->status = atoi(h + 9);
    if (c->status < 100 || c->status > 599) {
        return false;
    }
    c->close_after = h[7] == '0';
    c->gz = false;
    gz_end(c);
    c->bm = B_EOF;
    c->left = 0;
    bool has_len = false;
    char *p = (char *)memchr(h, '\n', end) + 1;
    while (p < h + end) {
        char *eol = memchr(p, '\n', (size_t)(h + end - p));
        if (eol == NULL) {
            break;
        }
        size_t ll = (size_t)(eol - p);
        if (strncasecmp(p, "content-encoding:", 17) == 0 && ll > 17 &&
            memmem(p + 17, ll - 17, "gzip", 4) != NULL) {
            c->gz = true;
        } else if (strncasecmp(p, "content-length:", 15) == 0) {
            c->left = strtoll(p + 15, NULL, 10);
            has_len = c->left >= 0;
        } else if (strncasecmp(p, "transfer-encoding:", 18) == 0 && ll > 18 &&
                   memmem(p + 18, ll - 18, "chunked", 7) != NULL) {
            c->bm = B_CHUNKED;
        } else if (strncasecmp(p, "connection:", 11) == 0 && ll > 11) {
            if (memmem(p + 11, ll - 11, "close", 5) != NULL) {
                c->close_after = true;
            } else if (memmem(p + 11, ll - 11, "keep-alive", 10) != NULL) {
                c->close_after = false;
            }
        }
        p = eol + 1;
    }
    if (c->status == 204 || c->status == 304 || c->status < 200) {
        c->bm = B_LENGTH;
        c->left = 0;
    } else if (c->bm != B_CHUNKED && has_len) {
        c->bm = B_LENGTH;
    }
    if (c->bm == B_EOF) {
        c->close_after = true;
    }
    c->ks = K_SIZE;
    c->line_len = 0;
    c->body_len = 0;
    wf_buf_reset(&c->body);
    vscan_init(&c->scan);
    return true;
}

static void body_plain(hconn_t *c, const char *p, size_t n)
{
    if (c->status == 200) {
        vscan_feed(&c->scan, p, n);
    }
    if (c->keep_body) {
        wf_buf_append(&c->body, p, n);
    }
}

/* A piece of a gzip body: inflated while the scan or the kept body still needs it. A body that
 * does not inflate leaves the scan without a version (the caller sees version -1). */
static void body_gzip(hconn_t *c, const char *p, size_t n)
{
    if (c->status != 200 || (c->scan.version >= 0 && !c->keep_body)) {
        return;
    }
    if (!c->zs_on) {
        memset(&c->zs, 0, sizeof(c->zs));
        if (inflateInit2(&c->zs, 16 + MAX_WBITS) != Z_OK) {
            return;
        }
        c->zs_on = true;
    }
    char out[16384];
    c->zs.next_in = (Bytef *)p;
    c->zs.avail_in = (uInt)n;
    int rc = Z_OK;
    while (rc == Z_OK && (c->zs.avail_in > 0 || c->zs.avail_out == 0) &&
           (c->scan.version < 0 || c->keep_body)) {
        c->zs.next_out = (Bytef *)out;
        c->zs.avail_out = sizeof(out);
        rc = inflate(&c->zs, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END) {
            break;
        }
        body_plain(c, out, sizeof(out) - c->zs.avail_out);
    }
    if (rc != Z_OK) {
        gz_end(c);
    }
}

static void body_data(hconn_t *c, const char *p, size_t n)
{
    c->body_len += n;
    if (c->gz) {
        body_gzip(c, p, n);
    } else {
        body_plain(c, p, n);
    }
}

/* The answer on c is complete: hand it over, then the next request (or reconnect). */
static void conn_complete(engine_t *e, hconn_t *c)
{
    c->pause = false;
    e->ops->done(e, c);
    /* A large document's buffer is not kept between answers: thousands of pollers. */
    if (c->body.cap > 65536) {
        wf_buf_free(&c->body);
    }
    if (c->pause) {
        conn_retry_later(e, c);
        return;
    }
    c->backoff_ns = 0;
    if (c->close_after) {
        conn_close(e, c);
    }
    conn_next(e, c);
}

/*
 * Consume n bytes read on c. Returns the number of bytes left over after a complete answer
 * (a server sends nothing unasked, so any is a protocol error), or -1 on a malformed answer.
 */
static int conn_feed(engine_t *e, hconn_t *c, const char *p, size_t n)
{
    while (n > 0) {
        if (c->st == C_HEAD) {
            size_t old = c->head.len;
            size_t take = n < MAX_HEAD ? n : MAX_HEAD;
            wf_buf_append(&c->head, p, take);
            size_t from = old >= 3 ? old - 3 : 0;
            char *h = (char *)c->head.data;
            char *end = memmem(h + from, c->head.len - from, "\r\n\r\n", 4);
            if (end == NULL) {
                if (c->head.len >= MAX_HEAD) {
                    return -1;
                }
                return 0;
            }
            size_t hl = (size_t)(end - h) + 4;
            size_t used = hl - old;
            p += used;
            n -= used;
            if (!parse_head(c, hl)) {
                return -1;
            }
            if (c->status < 200) {
                wf_buf_reset(&c->head);
                continue;
            }
            c->st = C_BODY;
            if (c->bm == B_LENGTH && c->left == 0) {
                conn_complete(e, c);
                return n > 0 ? -1 : 0;
            }
            continue;
        }
        if (c->st != C_BODY) {
            return -1;
        }
        if (c->bm == B_EOF) {
            body_data(c, p, n);
            return 0;
        }
        if (c->bm == B_LENGTH) {
            size_t take = (int64_t)n < c->left ? n : (size_t)c->left;
            body_data(c, p, take);
            c->left -= (int64_t)take;
            p += take;
            n -= take;
            if (c->left == 0) {
                conn_complete(e, c);
                return n > 0 ? -1 : 0;
            }
            continue;
        }
        /* Chunked: size line, data, CRLF, ...; a zero size, then trailers up to an empty line. */
        if (c->ks == K_DATA) {
            size_t take = (int64_t)n < c->left ? n : (size_t)c->left;
            body_data(c, p, take);
            c->left -= (int64_t)take;
            p += take;
            n -= take;
            if (c->left == 0) {
                c->ks = K_DATA_END;
                c->line_len = 0;
            }
            continue;
        }
        char ch = *p++;
        n--;
        if (ch != '\n') {
            if (c->line_len + 1 >= sizeof(c->line)) {
                return -1;
            }
            c->line[c->line_len++] = ch;
            continue;
        }
        c->line[c->line_len] = '\0';
        if (c->line_len > 0 && c->line[c->line_len - 1] == '\r') {
            c->line[--c->line_len] = '\0';
        }
        if (c->ks == K_DATA_END) {
            if (c->line_len != 0) {
                return -1;
            }
            c->ks = K_SIZE;
        } else if (c->ks == K_SIZE) {
            char *endp;
            long long sz = strtoll(c->line, &endp, 16);
            if (endp == c->line || sz < 0 || (*endp != '\0' && *endp != ';' && *endp != ' ')) {
                return -1;
            }
            c->left = sz;
            c->ks = sz == 0 ? K_TRAILER : K_DATA;
        } else if (c->line_len == 0) {
            conn_complete(e, c);
            return n > 0 ? -1 : 0;
        }
        c->line_len = 0;
    }
    return 0;
}

static void conn_readable(engine_t *e, hconn_t *c)
{
    ssize_t r = recv(c->fd, e->rbuf, READ_CHUNK, 0);
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    if (r > 0) {
        e->wire_bytes += (uint64_t)r;
        if (c->st != C_HEAD && c->st != C_BODY) {
            conn_fail(e, c);
            return;
        }
        if (conn_feed(e, c, e->rbuf, (size_t)r) != 0) {
            conn_fail(e, c);
        }
        return;
    }
    /* The server closed: the end of a close-delimited body, an idle keep-alive connection
     * closed before our request was read (send it again), or a failure. */
    if (c->st == C_BODY && c->bm == B_EOF) {
        c->close_after = true;
        conn_complete(e, c);
    } else if (c->st == C_HEAD && c->head.len == 0 && c->backoff_ns == 0) {
        conn_close(e, c);
        c->backoff_ns = RETRY_FIRST_NS / 2;
        e->ops->failed(e, c);
        conn_next(e, c);
    } else {
        conn_fail(e, c);
    }
}

static void conn_event(engine_t *e, hconn_t *c, uint32_t ev)
{
    if (c->st == C_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0 || (ev & (EPOLLERR | EPOLLHUP))) {
            conn_fail(e, c);
            return;
        }
        e->connecting--;
        e->connects++;
        c->st = C_SENDING;
        conn_events(e, c, EPOLLIN | EPOLLOUT);
        conn_send(e, c);
        return;
    }
    if ((ev & EPOLLOUT) && c->st == C_SENDING) {
        conn_send(e, c);
        if (c->fd < 0) {
            return;
        }
    }
    if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        conn_readable(e, c);
    }
}

/* Open connections not yet started (a few at a time) and those whose back-off ran out. */
static void engine_start_more(engine_t *e)
{
    int64_t now = e->retrying > 0 ? wf_mono_ns() : 0;
    for (size_t i = 0; i < e->nconns && e->retrying > 0; i++) {
        hconn_t *c = &e->conns[i];
        if (c->st == C_RETRY && c->retry_ns <= now && e->connecting < e->max_connecting) {
            e->retrying--;
            c->st = C_IDLE;
            conn_next(e, c);
        }
    }
    while (e->next_connect < e->nconns && e->connecting < e->max_connecting) {
        conn_next(e, &e->conns[e->next_connect++]);
    }
}

/* One turn of the loop: wait up to timeout_ms for events and handle them. */
static void engine_turn(engine_t *e, int timeout_ms)
{
    struct epoll_event evs[256];
    engine_start_more(e);
    if (e->retrying > 0 && timeout_ms > 20) {
        timeout_ms = 20;
    }
    int n = epoll_wait(e->ep, evs, 256, timeout_ms);
    for (int i = 0; i < n; i++) {
        if (evs[i].data.ptr == NULL) {
            continue; /* the stop event: the caller's loop reads it */
        }
        hconn_t *c = evs[i].data.ptr;
        if (c->fd >= 0) {
            conn_event(e, c, evs[i].events);
        }
    }
}

static int engine_init(engine_t *e, int port, size_t nconns, size_t max_connecting,
                       const engine_ops_t *ops, void *user)
{
    memset(e, 0, sizeof(*e));
    e->ep = epoll_create1(EPOLL_CLOEXEC);
    if (e->ep < 0) {
        return -1;
    }
    e->port = port;
    e->nconns = nconns;
    e->conns = wf_calloc(nconns > 0 ? nconns : 1, sizeof(hconn_t));
    for (size_t i = 0; i < nconns; i++) {
        e->conns[i].fd = -1;
        e->conns[i].slot = i;
    }
    e->max_connecting = max_connecting > 0 ? max_connecting : 64;
    e->rbuf = wf_malloc(READ_CHUNK);
    e->ops = ops;
    e->user = user;
    return 0;
}

static void engine_free(engine_t *e)
{
    for (size_t i = 0; i < e->nconns; i++) {
        hconn_t *c = &e->conns[i];
        if (c->fd >= 0) {
            close(c->fd);
        }
        conn_free_bufs(c);
    }
    wf_free(e->conns);
    wf_free(e->rbuf);
    if (e->ep >= 0) {
        close(e->ep);
    }
}

static void put_auth(wf_buf_t *b, const char *token)
{
    if (token != NULL) {
        wf_buf_printf(b, "Authorization: Bearer %s\r\n", token);
    }
}

/* ---- batches ---- */

typedef struct {
    const char *token;
    wt_req_t *reqs;
    size_t n;
    size_t next;     /* first request not yet handed to a connection */
    size_t answered; /* requests finished (answered or given up) */
    bool keep;
} batch_t;

static bool batch_next(engine_t *e, hconn_t *c)
{
    batch_t *b = e->user;
    if (!c->has_slot) {
        if (b->next < b->n) {
            c->slot = b->next++;
        } else {
            return false;
        }
        c->has_slot = true;
        c->attempts = 0;
    }
    const wt_req_t *r = &b->reqs[c->slot];
    size_t blen = r->body != NULL ? strlen(r->body) : 0;
    wf_buf_printf(&c->out, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n", r->method, r->path, e->port);
    put_auth(&c->out, b->token);
    if (r->body != NULL) {
        wf_buf_printf(&c->out, "Content-Type: application/json\r\nContent-Length: %zu\r\n", blen);
    }
    wf_buf_puts(&c->out, "\r\n");
    if (blen > 0) {
        wf_buf_append(&c->out, r->body, blen);
    }
    c->keep_body = b->keep;
    return true;
}

static void batch_done(engine_t *e, hconn_t *c)
{
    batch_t *b = e->user;
    wt_req_t *r = &b->reqs[c->slot];
    r->status = c->status;
    if (b->keep) {
        wf_free(r->answer);
        r->answer = wf_strndup((const char *)(c->body.data != NULL ? c->body.data : (uint8_t *)""),
                               c->body.len);
    }
    c->has_slot = false;
    b->answered++;
}

static void batch_failed(engine_t *e, hconn_t *c)
{
    batch_t *b = e->user;
    if (!c->has_slot) {
        return;
    }
    if (++c->attempts >= BATCH_ATTEMPTS) {
        b->reqs[c->slot].status = -1;
        b->answered++;
        c->has_slot = false;
        return;
    }
    /* Otherwise the request stays on this connection and is sent again when it reopens. */
}

static const engine_ops_t batch_ops = {batch_next, NULL, batch_done, batch_failed};

int wt_http_batch(int port, const char *token, wt_req_t *reqs, size_t n, int conns, int timeout_ms,
                  bool keep_answers)
{
    batch_t b = {.token = token, .reqs = reqs, .n = n, .keep = keep_answers};
    engine_t e;
    size_t nc = conns > 0 ? (size_t)conns : 1;
    if (nc > n) {
        nc = n;
    }
    for (size_t i = 0; i < n; i++) {
        reqs[i].status = -1;
        reqs[i].answer = NULL;
    }
    if (n == 0) {
        return 0;
    }
    if (engine_init(&e, port, nc, nc, &batch_ops, &b) != 0) {
        return -1;
    }
    int64_t deadline = wf_mono_ns() + (int64_t)timeout_ms * 1000000;
    while (b.answered < n) {
        int64_t left = (deadline - wf_mono_ns()) / 1000000;
        if (left <= 0) {
            break;
        }
        engine_turn(&e, left > 100 ? 100 : (int)left);
    }
    bool all = b.answered == n;
    engine_free(&e);
    return all ? 0 : -1;
}

/* ---- pollers ---- */

typedef struct {
    char *id; /* percent-encoded */
    int64_t version;
    int64_t reached_ns;
    bool excluded; /* not expected to reach the target: counted as reached */
    bool waiting;
} poller_t;

struct wt_pollers {
    wt_pollers_opts_t o;
    char *token;
    char *query;
    poller_t *pl;
    size_t n;
    engine_t e;
    int stop_fd;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* Under mu: */
    int64_t target;
    size_t reached;
    size_t waiting;
    wt_pollers_stats_t st;
};

static bool poll_next(engine_t *e, hconn_t *c)
{
    wt_pollers_t *p = e->user;
    poller_t *pl = &p->pl[c->slot];
    wf_buf_printf(&c->out,
                  "GET /v1/snapshot?proxy=%s&version=%lld%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n",
                  pl->id, (long long)pl->version, p->query, e->port);
    put_auth(&c->out, p->token);
    if (p->o.gzip) {
        wf_buf_puts(&c->out, "Accept-Encoding: gzip\r\n");
    }
    wf_buf_puts(&c->out, "\r\n");
    c->keep_body = p->o.keep_every > 0 && c->slot % p->o.keep_every == 0;
    return true;
}

static void poll_sent(engine_t *e, hconn_t *c)
{
    wt_pollers_t *p = e->user;
    poller_t *pl = &p->pl[c->slot];
    pthread_mutex_lock(&p->mu);
    if (!pl->waiting) {
        pl->waiting = true;
        p->waiting++;
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
}

static void poll_unwait(wt_pollers_t *p, poller_t *pl)
{
    if (pl->waiting) {
        pl->waiting = false;
        p->waiting--;
    }
}

static void poll_done(engine_t *e, hconn_t *c)
{
    wt_pollers_t *p = e->user;
    poller_t *pl = &p->pl[c->slot];
    int64_t v = c->status == 200 ? c->scan.version : -1;
    if (c->status == 200 && p->o.on_doc != NULL) {
        const char *body = c->keep_body ? wf_buf_cstr(&c->body) : NULL;
        p->o.on_doc(p->o.user, c->slot, v, body, c->body.len);
    }
    int64_t now = wf_mono_ns();
    pthread_mutex_lock(&p->mu);
    poll_unwait(p, pl);
    if (c->status == 200) {
        p->st.docs++;
        p->st.body_bytes += c->body_len;
        if (v > pl->version) {
            if (!pl->excluded && pl->version < p->target && v >= p->target) {
                pl->reached_ns = now;
                p->reached++;
            }
            pl->version = v;
        }
    } else if (c->status == 304) {
        p->st.not_modified++;
    } else {
        p->st.bad_status++;
        p->st.last_bad_status = c->status;
    }
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    /* Do not hammer a server that refuses: poll again after the back-off. */
    c->pause = c->status != 200 && c->status != 304;
}

static void poll_failed(engine_t *e, hconn_t *c)
{
    wt_pollers_t *p = e->user;
    pthread_mutex_lock(&p->mu);
    poll_unwait(p, &p->pl[c->slot]);
    pthread_mutex_unlock(&p->mu);
}

static const engine_ops_t poll_ops = {poll_next, poll_sent, poll_done, poll_failed};

static void *poll_thread(void *arg)
{
    wt_pollers_t *p = arg;
    for (;;) {
        uint64_t v;
        if (read(p->stop_fd, &v, sizeof(v)) == (ssize_t)sizeof(v)) {
            break;
        }
        engine_turn(&p->e, 200);
        pthread_mutex_lock(&p->mu);
        p->st.wire_bytes = p->e.wire_bytes;
        p->st.conn_errors = p->e.conn_errors;
        p->st.connects = p->e.connects;
        pthread_mutex_unlock(&p->mu);
    }
    return NULL;
}

static char *pct_encode(const char *s)
{
    wf_buf_t b = WF_BUF_INIT;
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            wf_buf_putc(&b, c);
        } else {
            wf_buf_printf(&b, "%%%02X", c);
        }
    }
    wf_buf_cstr(&b);
    return (char *)wf_buf_detach(&b, NULL);
}

int wt_pollers_start(const wt_pollers_opts_t *o, const char *const *ids, size_t n,
                     wt_pollers_t **out)
{
    wt_pollers_t *p = wf_calloc(1, sizeof(*p));
    p->o = *o;
    p->token = o->token != NULL ? wf_strdup(o->token) : NULL;
    p->query = wf_strdup(o->query != NULL ? o->query : "");
    p->o.token = p->token;
    p->o.query = p->query;
    p->n = n;
    p->pl = wf_calloc(n > 0 ? n : 1, sizeof(poller_t));
    for (size_t i = 0; i < n; i++) {
        p->pl[i].id = pct_encode(ids[i]);
        p->pl[i].reached_ns = -1;
    }
    p->target = INT64_MAX;
    p->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (p->stop_fd < 0 ||
        engine_init(&p->e, o->port, n, (size_t)o->max_connecting, &poll_ops, p) != 0) {
        goto fail;
    }
    struct epoll_event ee = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(p->e.ep, EPOLL_CTL_ADD, p->stop_fd, &ee) != 0 ||
        pthread_create(&p->thread, NULL, poll_thread, p) != 0) {
        engine_free(&p->e);
        goto fail;
    }
    *out = p;
    return 0;
fail:
    if (p->stop_fd >= 0) {
        close(p->stop_fd);
    }
    p->stop_fd = -1;
    p->e.ep = -1;
    for (size_t i = 0; i < n; i++) {
        wf_free(p->pl[i].id);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    wf_free(p->pl);
    wf_free(p->token);
    wf_free(p->query);
    wf_free(p);
    return -1;
}

void wt_pollers_stop(wt_pollers_t *p)
{
    if (p == NULL) {
        return;
    }
    uint64_t one = 1;
    (void)!write(p->stop_fd, &one, sizeof(one));
    pthread_join(p->thread, NULL);
    engine_free(&p->e);
    close(p->stop_fd);
    for (size_t i = 0; i < p->n; i++) {
        wf_free(p->pl[i].id);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    wf_free(p->pl);
    wf_free(p->token);
    wf_free(p->query);
    wf_free(p);
}

void wt_pollers_target_some(wt_pollers_t *p, int64_t v, const bool *which)
{
    int64_t now = wf_mono_ns();
    pthread_mutex_lock(&p->mu);
    p->target = v;
    p->reached = 0;
    for (size_t i = 0; i < p->n; i++) {
        poller_t *pl = &p->pl[i];
        bool r = pl->version >= v;
        pl->excluded = which != NULL && !which[i];
        pl->reached_ns = r && !pl->excluded ? now : -1;
        p->reached += r || pl->excluded;
    }
    pthread_mutex_unlock(&p->mu);
}

void wt_pollers_target(wt_pollers_t *p, int64_t v)
{
    wt_pollers_target_some(p, v, NULL);
}

/* Wait on the condition until ok(p) or the deadline; call with mu held. */
static void wait_until(wt_pollers_t *p, bool (*ok)(wt_pollers_t *, size_t), size_t arg,
                       int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ns = (int64_t)ts.tv_nsec + (int64_t)timeout_ms * 1000000;
    ts.tv_sec += (time_t)(ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    while (!ok(p, arg)) {
        if (pthread_cond_timedwait(&p->cv, &p->mu, &ts) == ETIMEDOUT) {
            break;
        }
    }
}

static bool all_reached(wt_pollers_t *p, size_t arg)
{
    (void)arg;
    return p->reached == p->n;
}

static bool enough_waiting(wt_pollers_t *p, size_t want)
{
    return p->waiting >= want;
}

size_t wt_pollers_wait(wt_pollers_t *p, int timeout_ms)
{
    pthread_mutex_lock(&p->mu);
    wait_until(p, all_reached, 0, timeout_ms);
    size_t r = p->reached;
    pthread_mutex_unlock(&p->mu);
    return r;
}

size_t wt_pollers_wait_waiting(wt_pollers_t *p, size_t want, int timeout_ms)
{
    pthread_mutex_lock(&p->mu);
    wait_until(p, enough_waiting, want, timeout_ms);
    size_t r = p->waiting;
    pthread_mutex_unlock(&p->mu);
    return r;
}

int64_t wt_pollers_settle(wt_pollers_t *p, int quiet_ms, int timeout_ms)
{
    int64_t deadline = wf_mono_ns() + (int64_t)timeout_ms * 1000000;
    wt_pollers_stats_t a, b;
    wt_pollers_stats(p, &a);
    while (wf_mono_ns() < deadline) {
        usleep((useconds_t)quiet_ms * 1000);
        wt_pollers_stats(p, &b);
        if (b.docs == a.docs && b.min_version > 0) {
            return b.max_version;
        }
        a = b;
    }
    return -1;
}

int64_t wt_pollers_version(wt_pollers_t *p, size_t i)
{
    pthread_mutex_lock(&p->mu);
    int64_t v = p->pl[i].version;
    pthread_mutex_unlock(&p->mu);
    return v;
}

int64_t wt_pollers_reached_ns(wt_pollers_t *p, size_t i)
{
    pthread_mutex_lock(&p->mu);
    int64_t v = p->pl[i].reached_ns;
    pthread_mutex_unlock(&p->mu);
    return v;
}

void wt_pollers_stats(wt_pollers_t *p, wt_pollers_stats_t *s)
{
    pthread_mutex_lock(&p->mu);
    *s = p->st;
    s->waiting = p->waiting;
    s->reached = p->reached;
    s->min_version = INT64_MAX;
    s->max_version = 0;
    for (size_t i = 0; i < p->n; i++) {
        int64_t v = p->pl[i].version;
        s->min_version = v < s->min_version ? v : s->min_version;
        s->max_version = v > s->max_version ? v : s->max_version;
    }
    if (p->n == 0) {
        s->min_version = 0;
    }
    pthread_mutex_unlock(&p->mu);
}

/* ---- the synthetic mesh ---- */

char *wt_mesh_id(int svc, int ver)
{
    wf_buf_t b = WF_BUF_INIT;
    wf_buf_printf(&b, "svc-%04d-v%d.default", svc, ver);
    wf_buf_cstr(&b);
    return (char *)wf_buf_detach(&b, NULL);
}

char *wt_mesh_register_body(int svc, int ver)
{
    wf_buf_t b = WF_BUF_INIT;
    int ip = svc * 2 + ver;
    wf_buf_printf(&b,
                  "{\"service\":\"svc-%04d\",\"namespace\":\"default\",\"version\":\"v%d\","
                  "\"address\":\"10.%d.%d.%d\",\"ports\":[9080],\"adminPort\":15000,"
                  "\"labels\":{\"app\":\"svc-%04d\",\"version\":\"v%d\"}}",
                  svc, ver, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255, svc, ver);
    wf_buf_cstr(&b);
    return (char *)wf_buf_detach(&b, NULL);
}

char *wt_mesh_dr(int svc)
{
    wf_buf_t b = WF_BUF_INIT;
    wf_buf_printf(&b,
                  "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"DestinationRule\","
                  "\"metadata\":{\"name\":\"svc-%04d\",\"namespace\":\"default\"},"
                  "\"spec\":{\"host\":\"svc-%04d\",\"subsets\":["
                  "{\"name\":\"v1\",\"labels\":{\"version\":\"v1\"}},"
                  "{\"name\":\"v2\",\"labels\":{\"version\":\"v2\"}}]}}",
                  svc, svc);
    wf_buf_cstr(&b);
    return (char *)wf_buf_detach(&b, NULL);
}

char *wt_mesh_vs(int svc, int w1, int w2)
{
    wf_buf_t b = WF_BUF_INIT;
    wf_buf_printf(&b,
                  "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"VirtualService\","
                  "\"metadata\":{\"name\":\"svc-%04d\",\"namespace\":\"default\"},"
                  "\"spec\":{\"hosts\":[\"svc-%04d\"],\"http\":[{\"route\":["
                  "{\"destination\":{\"host\":\"svc-%04d\",\"subset\":\"v1\"},\"weight\":%d},"
                  "{\"destination\":{\"host\":\"svc-%04d\",\"subset\":\"v2\"},\"weight\":%d}"
                  "]}]}}",
                  svc, svc, svc, w1, svc, w2);
    wf_buf_cstr(&b);
    return (char *)wf_buf_detach(&b, NULL);
}

char *wt_mesh_sidecar(int svc, int nsvc, int k)
{
    wf_buf_t b = WF_BUF_INIT;
    wf_buf_printf(&b,
                  "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"Sidecar\","
                  "\"metadata\":{\"name\":\"svc-%04d\",\"namespace\":\"default\"},"
                  "\"spec\":{\"workloadSelector\":{\"labels\":{\"app\":\"svc-%04d\"}},"
                  "\"egress\":[{\"hosts\":[",
                  svc, svc);
    for (int i = 1; i <= k; i++) {
        wf_buf_printf(&b, "%s\"./svc-%04d.default.svc.cluster.local\"", i > 1 ? "," : "",
                      (svc + i) % nsvc);
    }
    wf_buf_puts(&b, "]}]}}");
    wf_buf_cstr(&b);
    return (char *)wf_buf_detach(&b, NULL);
}

long wt_mesh_v2_weights(const char *doc, size_t len, long *n)
{
    json_error_t err;
    json_t *o = json_loadb(doc, len, 0, &err);
    long sum = 0;
    *n = 0;
    if (o == NULL) {
        return -1;
    }
    size_t i, j, k;
    json_t *vh, *rt, *dst;
    json_array_foreach(json_object_get(o, "virtual_hosts"), i, vh)
    {
        json_array_foreach(json_object_get(vh, "routes"), j, rt)
        {
            json_array_foreach(json_object_get(rt, "route"), k, dst)
            {
                const char *sub = json_string_value(
                    json_object_get(json_object_get(dst, "destination"), "subset"));
                if (sub != NULL && strcmp(sub, "v2") == 0) {
                    sum += (long)json_integer_value(json_object_get(dst, "weight"));
                    (*n)++;
                }
            }
        }
    }
    json_decref(o);
    return sum;
}
