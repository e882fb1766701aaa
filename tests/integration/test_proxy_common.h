/*
 * test_proxy_common.h - helpers the proxy's integration tests share (included by each
 * tests/integration/test_proxy_*.c, so everything is static): raw-socket HTTP/1.1 client
 * pieces, a small threaded HTTP/1.1 upstream server, and starting / stopping `weft proxy`.
 *
 * The upstream server answers by path: /hello, /who (its name), /echo (the request body),
 * /headers (the request head as received), /chunked (a chunked response), /reset (a
 * Content-Length of 1000, 100 bytes, then close), /sleep (400 ms), /status/<code> (its name
 * with that status; /status/404 answers "nope"), /failif/<name> (503 from the server so named),
 * /nap?ms=N, /flaky?n=N (503 for the first N, counted per server in `flaky`), /drop (closes
 * without answering), /upgrade (with an Upgrade field: 101 with the same Upgrade, then an echo
 * of every byte until EOF), /switch101 (a 101 whatever was asked, then close).
 */
#ifndef TEST_PROXY_COMMON_H
#define TEST_PROXY_COMMON_H

#include "wf_alloc.h"
#include "wf_buf.h"
#include "wt_control.h"
#include "wt_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

/* Each test file uses a different subset of these helpers. */
#pragma GCC diagnostic ignored "-Wunused-function"

/* ---------------------------------------------------------------------------------------- */
/* Socket helpers */

static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 15};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w <= 0) {
            if (w < 0 && errno == EINTR) {
                continue;
            }
            return false;
        }
        c += w;
        n -= (size_t)w;
    }
    return true;
}

static bool send_str(int fd, const char *s)
{
    return send_all(fd, s, strlen(s));
}

/* A buffered reader over a socket. */
typedef struct {
    int fd;
    wf_buf_t b;
    size_t pos;
} rd_t;

static void rd_init(rd_t *r, int fd)
{
    memset(r, 0, sizeof(*r));
    r->fd = fd;
}

static bool rd_fill(rd_t *r)
{
    uint8_t *p = wf_buf_reserve(&r->b, 65536);
    ssize_t n;
    do {
        n = recv(r->fd, p, 65536, 0);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
        return false;
    }
    r->b.len += (size_t)n;
    return true;
}

/* The bytes up to and including the first delim (a wf_strndup'ed string), or NULL at EOF. */
static char *rd_until(rd_t *r, const char *delim)
{
    size_t dl = strlen(delim);
    for (;;) {
        size_t avail = r->b.len - r->pos;
        if (r->b.data == NULL) {
            if (!rd_fill(r)) {
                return NULL;
            }
            continue;
        }
        char *start = (char *)r->b.data + r->pos;
        for (size_t i = 0; avail >= dl && i <= avail - dl; i++) {
            if (memcmp(start + i, delim, dl) == 0) {
                char *out = wf_strndup(start, i + dl);
                r->pos += i + dl;
                return out;
            }
        }
        if (!rd_fill(r)) {
            return NULL;
        }
    }
}

static bool rd_bytes(rd_t *r, size_t n, wf_buf_t *out)
{
    if (n == 0) {
        return true;
    }
    while (r->b.len - r->pos < n) {
        if (!rd_fill(r)) {
            return false;
        }
    }
    if (out != NULL) {
        wf_buf_append(out, r->b.data + r->pos, n);
    }
    r->pos += n;
    return true;
}

/* True when the peer closes (recv returns 0 or a reset) with no more bytes pending. */
static bool rd_closed(rd_t *r)
{
    if (r->pos < r->b.len) {
        return false;
    }
    return !rd_fill(r);
}

static void rd_free(rd_t *r)
{
    wf_buf_free(&r->b);
}

static const char *find_hdr(const char *head, const char *name, char *val, size_t cap)
{
    size_t nl = strlen(name);
    const char *p = strstr(head, "\r\n");
    while (p != NULL && p[2] != '\r') {
        p += 2;
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ') {
                v++;
            }
            const char *e = strstr(v, "\r\n");
            size_t l = (size_t)(e - v) < cap - 1 ? (size_t)(e - v) : cap - 1;
            memcpy(val, v, l);
            val[l] = '\0';
            return val;
        }
        p = strstr(p, "\r\n");
    }
    return NULL;
}

/* Decode a chunked body from r into out (trailers skipped). */
static bool rd_chunked(rd_t *r, wf_buf_t *out)
{
    for (;;) {
        char *line = rd_until(r, "\r\n");
        if (line == NULL) {
            return false;
        }
        unsigned long n = strtoul(line, NULL, 16);
        wf_free(line);
        if (n == 0) {
            for (;;) {
                char *t = rd_until(r, "\r\n");
                if (t == NULL) {
                    return false;
                }
                bool end = strcmp(t, "\r\n") == 0;
                wf_free(t);
                if (end) {
                    return true;
                }
            }
        }
        if (!rd_bytes(r, n, out) || !rd_bytes(r, 2, NULL)) {
            return false;
        }
    }
}

typedef struct {
    int status;
    char *head;
    wf_buf_t body;
    bool complete;
} resp_t;

static void resp_free(resp_t *rs)
{
    wf_free(rs->head);
    wf_buf_free(&rs->body);
    memset(rs, 0, sizeof(*rs));
}

/* Read one response (to a request that was not HEAD). */
static bool read_response(rd_t *r, resp_t *rs)
{
    memset(rs, 0, sizeof(*rs));
    rs->head = rd_until(r, "\r\n\r\n");
    if (rs->head == NULL || sscanf(rs->head, "HTTP/1.1 %d", &rs->status) != 1) {
        return false;
    }
    char v[64];
    if (find_hdr(rs->head, "Transfer-Encoding", v, sizeof(v)) != NULL) {
        rs->complete = rd_chunked(r, &rs->body);
    } else if (find_hdr(rs->head, "Content-Length", v, sizeof(v)) != NULL) {
        rs->complete = rd_bytes(r, strtoull(v, NULL, 10), &rs->body);
    } else {
        while (rd_fill(r)) {
        }
        if (r->b.len > r->pos) {
            wf_buf_append(&rs->body, r->b.data + r->pos, r->b.len - r->pos);
        }
        r->pos = r->b.len;
        rs->complete = true;
    }
    return true;
}

static bool body_is(const resp_t *rs, const void *p, size_t n)
{
    return rs->body.len == n && (n == 0 || memcmp(rs->body.data, p, n) == 0);
}

/* ---------------------------------------------------------------------------------------- */
/* The upstream test server */

/* A listening socket on 127.0.0.1 at a port the kernel picks (CLOEXEC, SO_REUSEADDR), with
 * backlog; its port into *port. */
static int listen_loopback(int backlog, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, backlog), 0);
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return fd;
}

/*
 * A TCP test server: an accept thread hands every connection to serve(fd, ctx), on a thread of
 * its own when threaded, else in turn (one connection at a time); the server closes fd after
 * serve returns. Connections are CLOEXEC — a child another thread forks (popen'd curl, a
 * spawned proxy) must not inherit one, or closing it here sends no FIN while the child lives —
 * with a 30 s receive timeout. tsrv_stop ends the accept thread; stop_pipe stays readable from
 * then on, so a serve function can poll it to give up a wait.
 */
typedef struct {
    int lfd;
    int port;
    int stop_pipe[2];
    pthread_t thread;
    bool threaded;
    void (*serve)(int fd, void *ctx);
    void *ctx;
} tsrv_t;

typedef struct {
    tsrv_t *s;
    int fd;
} tsrv_conn_t;

static void *tsrv_conn_thread(void *arg)
{
    tsrv_conn_t *c = arg;
    c->s->serve(c->fd, c->s->ctx);
    close(c->fd);
    wf_free(c);
    return NULL;
}

static void *tsrv_accept_thread(void *arg)
{
    tsrv_t *s = arg;
    for (;;) {
        struct pollfd p[2] = {{.fd = s->lfd, .events = POLLIN},
                              {.fd = s->stop_pipe[0], .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            continue;
        }
        if (p[1].revents) {
            break;
        }
        int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            continue;
        }
        struct timeval tv = {.tv_sec = 30};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        if (!s->threaded) {
            s->serve(fd, s->ctx);
            close(fd);
            continue;
        }
        tsrv_conn_t *c = wf_malloc(sizeof(*c));
        c->s = s;
        c->fd = fd;
        pthread_t t;
        pthread_create(&t, NULL, tsrv_conn_thread, c);
        pthread_detach(t);
    }
    return NULL;
}

static void tsrv_start(tsrv_t *s, bool threaded, void (*serve)(int fd, void *ctx), void *ctx)
{
    s->threaded = threaded;
    s->serve = serve;
    s->ctx = ctx;
    s->lfd = listen_loopback(128, &s->port);
    assert_int_equal(pipe(s->stop_pipe), 0);
    pthread_create(&s->thread, NULL, tsrv_accept_thread, s);
}

static void tsrv_stop(tsrv_t *s)
{
    assert_int_equal(write(s->stop_pipe[1], "x", 1), 1);
    pthread_join(s->thread, NULL);
    close(s->lfd);
    close(s->stop_pipe[0]);
    close(s->stop_pipe[1]);
}

typedef struct {
    tsrv_t srv;
    int port; /* srv.port */
    atomic_int conns_total;
    atomic_int conns_open;
    atomic_int requests;
    atomic_int flaky; /* /flaky requests seen */
    char name[32];    /* what /who answers */
    pthread_mutex_t mu;
    char last_head[2048];      /* the head of the last request received (under mu) */
    atomic_long last_body_len; /* its body's length once read whole, -1 when it was cut */
} upstream_t;

/* The name of the server whose connection thread this is (set by up_conn_thread): every
 * answer says who gave it in X-Upstream, so a test can tell which endpoint a route chose. */
static __thread const char *tl_upstream_name = "";

/* An answer whose Content-Length is cl and whose content is body[0..len) (they differ for
 * HEAD). */
static void srv_reply_cl(int fd, int status, const char *extra, const void *body, size_t len,
                         size_t cl)
{
    char head[512];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nX-Upstream: %s\r\n%s\r\n", status, cl,
                     tl_upstream_name, extra ? extra : "");
    send_all(fd, head, (size_t)n);
    send_all(fd, body, len);
}

static void srv_reply(int fd, int status, const char *extra, const void *body, size_t len)
{
    srv_reply_cl(fd, status, extra, body, len, len);
}

/* After a 101: echo every byte (those already read first) until EOF, then half-close. */
static void srv_echo_rest(int fd, rd_t *r)
{
    if (r->b.len > r->pos) {
        send_all(fd, r->b.data + r->pos, r->b.len - r->pos);
        r->pos = r->b.len;
    }
    char buf[65536];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof(buf), 0)) > 0 || (n < 0 && errno == EINTR)) {
        if (n > 0 && !send_all(fd, buf, (size_t)n)) {
            break;
        }
    }
    shutdown(fd, SHUT_WR);
}

static void up_serve(int fd, void *ctx)
{
    upstream_t *u = ctx;
    int one = 1; /* head and body go in separate writes: no Nagle delay between them */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    atomic_fetch_add(&u->conns_total, 1);
    atomic_fetch_add(&u->conns_open, 1);
    tl_upstream_name = u->name;
    rd_t r;
    rd_init(&r, fd);
    for (;;) {
        char *head = rd_until(&r, "\r\n\r\n");
        if (head == NULL) {
            break;
        }
        pthread_mutex_lock(&u->mu);
        snprintf(u->last_head, sizeof(u->last_head), "%s", head);
        pthread_mutex_unlock(&u->mu);
        atomic_fetch_add(&u->requests, 1);
        char method[16] = "", path[256] = "", v[64];
        sscanf(head, "%15s %255s", method, path);
        unsigned long big_mb = 0;
        if (strncmp(path, "/big?mb=", 8) == 0) {
            big_mb = strtoul(path + 8, NULL, 10);
        }
        long nap_ms = strncmp(path, "/nap?ms=", 8) == 0 ? strtol(path + 8, NULL, 10) : 0;
        int flaky_n = strncmp(path, "/flaky?n=", 9) == 0 ? atoi(path + 9) : 0;
        char *q = strchr(path, '?');
        if (q != NULL) {
            *q = '\0';
        }
        if (strcmp(path, "/slowcount") == 0) {
            /* Reads nothing for a while, then counts the body without keeping it. */
            usleep(600 * 1000);
            size_t n = 0;
            if (find_hdr(head, "Content-Length", v, sizeof(v)) != NULL) {
                n = strtoull(v, NULL, 10);
            }
            bool got = rd_bytes(&r, n, NULL);
            wf_free(head);
            if (!got) {
                break;
            }
            char num[32];
            int l = snprintf(num, sizeof(num), "%zu", n);
            srv_reply(fd, 200, NULL, num, (size_t)l);
            continue;
        }
        if (strcmp(path, "/big") == 0) {
            /* big_mb MiB of bytes i % 251, written as fast as the proxy takes them. */
            char hdr[128];
            int l = snprintf(hdr, sizeof(hdr), "HTTP/1.1 200 OK\r\nContent-Length: %lu\r\n\r\n",
                             big_mb << 20);
            send_all(fd, hdr, (size_t)l);
            uint8_t block[65536];
            for (size_t off = 0; off < (big_mb << 20); off += sizeof(block)) {
                for (size_t i = 0; i < sizeof(block); i++) {
                    block[i] = (uint8_t)((off + i) % 251);
                }
                if (!send_all(fd, block, sizeof(block))) {
                    break;
                }
            }
            wf_free(head);
            continue;
        }
        wf_buf_t body = WF_BUF_INIT;
        bool ok = true;
        if (find_hdr(head, "Transfer-Encoding", v, sizeof(v)) != NULL) {
            ok = rd_chunked(&r, &body);
        } else if (find_hdr(head, "Content-Length", v, sizeof(v)) != NULL) {
            ok = rd_bytes(&r, strtoull(v, NULL, 10), &body);
        }
        atomic_store(&u->last_body_len, ok ? (long)body.len : -1);
        bool close_after =
            find_hdr(head, "Connection", v, sizeof(v)) != NULL && strcasecmp(v, "close") == 0;
        if (!ok) {
            wf_free(head);
            wf_buf_free(&body);
            break;
        }
        if (strcmp(path, "/who") == 0 || strcmp(path, "/productpage") == 0) {
            srv_reply(fd, 200, NULL, u->name, strlen(u->name));
        } else if (strcmp(path, "/hello") == 0) {
            /* A HEAD answer has the length of the GET's content and none of it. */
            srv_reply_cl(fd, 200, NULL, "hello world", strcmp(method, "HEAD") == 0 ? 0 : 11, 11);
        } else if (strcmp(path, "/echo") == 0) {
            srv_reply(fd, 200, "Content-Type: application/octet-stream\r\n", body.data, body.len);
        } else if (strcmp(path, "/headers") == 0) {
            srv_reply(fd, 200, NULL, head, strlen(head));
        } else if (strcmp(path, "/chunked") == 0) {
            send_str(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "6\r\nchunk1\r\n6\r\nchunk2\r\n4\r\n-end\r\n0\r\n\r\n");
        } else if (strcmp(path, "/reset") == 0) {
            char part[100];
            memset(part, 'x', sizeof(part));
            send_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
            send_all(fd, part, sizeof(part));
            close_after = true;
        } else if (strcmp(path, "/upgrade") == 0 &&
                   find_hdr(head, "Upgrade", v, sizeof(v)) != NULL) {
            char sw[160];
            int n = snprintf(sw, sizeof(sw),
                             "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                             "Upgrade: %s\r\n\r\n",
                             v);
            send_all(fd, sw, (size_t)n);
            srv_echo_rest(fd, &r);
            close_after = true;
        } else if (strcmp(path, "/switch101") == 0) {
            send_str(fd, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                         "Upgrade: websocket\r\n\r\n");
            close_after = true;
        } else if (strcmp(path, "/sleep") == 0) {
            usleep(400 * 1000);
            srv_reply(fd, 200, NULL, "slept", 5);
        } else if (strcmp(path, "/status/404") == 0) {
            srv_reply(fd, 404, NULL, "nope", 4);
        } else if (strncmp(path, "/status/", 8) == 0) {
            /* Its name, with that status. */
            srv_reply(fd, atoi(path + 8), NULL, u->name, strlen(u->name));
        } else if (strncmp(path, "/failif/", 8) == 0) {
            /* 503 from the upstream so named, its name (200) from the others. */
            bool me = strcmp(path + 8, u->name) == 0;
            srv_reply(fd, me ? 503 : 200, NULL, u->name, strlen(u->name));
        } else if (strcmp(path, "/nap") == 0) {
            /* /nap?ms=N: answers after N ms. */
            usleep((useconds_t)(nap_ms * 1000));
            srv_reply(fd, 200, NULL, u->name, strlen(u->name));
        } else if (strcmp(path, "/flaky") == 0) {
            /* /flaky?n=N: the first N requests since the last reset answer 503, then 200; the
             * content is the request's number (1-based) and its body size. */
            int k = atomic_fetch_add(&u->flaky, 1) + 1;
            char msg[64];
            int l = snprintf(msg, sizeof(msg), "try %d body %zu", k, body.len);
            srv_reply(fd, k <= flaky_n ? 503 : 200, NULL, msg, (size_t)l);
        } else if (strcmp(path, "/drop") == 0) {
            close_after = true; /* closes without an answer */
        } else {
            srv_reply(fd, 404, NULL, "unknown", 7);
        }
        wf_free(head);
        wf_buf_free(&body);
        if (close_after) {
            break;
        }
    }
    rd_free(&r);
    atomic_fetch_sub(&u->conns_open, 1);
}

static void upstream_start(upstream_t *u, const char *name)
{
    memset(u, 0, sizeof(*u));
    pthread_mutex_init(&u->mu, NULL);
    snprintf(u->name, sizeof(u->name), "%s", name);
    tsrv_start(&u->srv, true, up_serve, u);
    u->port = u->srv.port;
}

static void upstream_stop(upstream_t *u)
{
    tsrv_stop(&u->srv);
    /* The proxy is stopped first, so its upstream connections are closed: wait for the
     * connection threads to see it. */
    for (int i = 0; i < 500 && atomic_load(&u->conns_open) > 0; i++) {
        usleep(10 * 1000);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* The proxy under test */

typedef struct {
    pid_t pid;
    int inbound;
    int outbound;
    int admin;
    char *dir;
} proxy_t;

/* Start `weft proxy` on free ports; config: a snapshot file or NULL; concurrency "1", "2"...;
 * extra: more arguments (NULL-terminated) or NULL. */
static void proxy_start_with(proxy_t *p, int app_port, const char *config, const char *concurrency,
                             const char *const *extra)
{
    p->dir = wt_tmpdir("pxin");
    p->inbound = wt_free_port();
    p->outbound = wt_free_port();
    p->admin = wt_free_port();
    char app[16], in[32], out[32], adm[32], log[4200];
    snprintf(app, sizeof(app), "%d", app_port);
    snprintf(in, sizeof(in), "127.0.0.1:%d", p->inbound);
    snprintf(out, sizeof(out), "127.0.0.1:%d", p->outbound);
    snprintf(adm, sizeof(adm), "127.0.0.1:%d", p->admin);
    snprintf(log, sizeof(log), "%s/proxy.log", p->dir);
    char *argv[40];
    int n = 0;
    const char *fixed[] = {wt_weft_bin(),  "proxy", "--service",     "reviews",  "--app-port", app,
                           "--inbound",    in,      "--outbound",    out,        "--admin",    adm,
                           "--drain-time", "5s",    "--concurrency", concurrency};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        argv[n++] = (char *)fixed[i];
    }
    if (config != NULL) {
        argv[n++] = "--config";
        argv[n++] = (char *)config;
    }
    for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 38; i++) {
        argv[n++] = (char *)extra[i];
    }
    argv[n] = NULL;
    p->pid = wt_spawn(argv, log);
    assert_true(wt_wait_port(p->admin, 10000));
    assert_true(wt_wait_port(p->inbound, 10000));
}

/* A sidecar of the real control plane c: it registers with c's bootstrap token, polls its
 * snapshots and gets its certificate from c's CA; extra as for proxy_start_with (--service,
 * --namespace, ... ; NULL-terminated, at most 30). */
static void proxy_start_meshed(proxy_t *p, int app_port, const wt_control_t *c,
                               const char *const *extra)
{
    char url[64], boot[700];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", c->port);
    snprintf(boot, sizeof(boot), "%s/bootstrap-token", c->data);
    const char *args[36] = {"--control", url, "--bootstrap-token-file", boot};
    int n = 4;
    for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 35; i++) {
        args[n++] = extra[i];
    }
    args[n] = NULL;
    proxy_start_with(p, app_port, NULL, "2", args);
}

static void proxy_start(proxy_t *p, int app_port)
{
    proxy_start_with(p, app_port, NULL, "2", NULL);
}

/* Resident memory of process pid in KiB (VmRSS), or -1. */
static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long v = -1;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            v = strtol(line + 6, NULL, 10);
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    return v;
}

/* SIGTERM; the exit status must be 0. */
static void proxy_stop(proxy_t *p)
{
    int st = wt_stop(p->pid, 20000);
    if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
        char log[4200];
        snprintf(log, sizeof(log), "%s/proxy.log", p->dir);
        char *text = wt_read_file(log, NULL);
        fprintf(stderr, "proxy log:\n%s\n", text ? text : "");
        wf_free(text);
    }
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    wt_rm_rf(p->dir);
    wf_free(p->dir);
}

/* One request on a new connection; returns the status, body in rs. */
static int request(int port, const char *raw, const void *body, size_t blen, resp_t *rs)
{
    int fd = tcp_connect(port);
    assert_true(fd >= 0);
    assert_true(send_str(fd, raw));
    if (blen > 0) {
        assert_true(send_all(fd, body, blen));
    }
    rd_t r;
    rd_init(&r, fd);
    bool ok = read_response(&r, rs);
    rd_free(&r);
    close(fd);
    return ok ? rs->status : -1;
}

/* Value of a sample line "name{labels} value" in the admin's /stats/prometheus. */
static double stat_value(int admin, const char *series)
{
    char *body = NULL;
    assert_int_equal(wt_http(admin, "GET", "/stats/prometheus", NULL, 0, &body), 200);
    double v = -1;
    size_t sl = strlen(series);
    for (const char *p = body; p != NULL && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, series, sl) == 0 && p[sl] == ' ') {
            v = strtod(p + sl + 1, NULL);
            break;
        }
    }
    wf_free(body);
    return v;
}

/* The admin's /ready: its status, and its body into out. */
static int ready(int admin, char *out, size_t cap)
{
    char *body = NULL;
    int st = wt_http(admin, "GET", "/ready", NULL, 0, &body);
    snprintf(out, cap, "%s", body != NULL ? body : "");
    wf_free(body);
    return st;
}

/* Run a shell command; its stdout into out (NUL-terminated). Returns the exit status. */
static int run_cmd(const char *cmd, char *out, size_t cap)
{
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The admin's whole /stats/prometheus text (the caller frees it). */
static char *scrape(int admin)
{
    char *body = NULL;
    assert_int_equal(wt_http(admin, "GET", "/stats/prometheus", NULL, 0, &body), 200);
    assert_non_null(body);
    return body;
}

/* The value of the one series of family name whose labels include every `k="v"` of labels
 * (NULL-terminated); -1 when none matches, -2 when more than one does. */
static double series(const char *body, const char *name, const char *const *labels)
{
    size_t nl = strlen(name);
    int found = 0;
    double v = -1;
    for (const char *p = body; p != NULL && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, name, nl) != 0 || p[nl] != '{') {
            continue;
        }
        const char *end = strstr(p, "} ");
        const char *eol = strchr(p, '\n');
        assert_non_null(end);
        bool all = true;
        for (size_t i = 0; labels[i] != NULL && all; i++) {
            char a[300], b[300];
            snprintf(a, sizeof(a), "{%s", labels[i]);
            snprintf(b, sizeof(b), ",%s", labels[i]);
            const char *q = strstr(p + nl, a);
            if (q == NULL || q > end || (eol != NULL && q > eol)) {
                q = strstr(p + nl, b);
            }
            all = q != NULL && q < end && (eol == NULL || q < eol);
        }
        if (all) {
            found++;
            v = strtod(end + 2, NULL);
        }
    }
    return found == 1 ? v : found == 0 ? -1 : -2;
}

/* tests/proxy/snapshots/<name>, found from this file's path. */
static char *example_text(const char *name)
{
    char *src = wf_strdup(__FILE__);
    char *cut = strstr(src, "/integration/");
    assert_non_null(cut);
    *cut = '\0';
    char path[4200];
    snprintf(path, sizeof(path), "%s/proxy/snapshots/%s", src, name);
    wf_free(src);
    char *text = wt_read_file(path, NULL);
    assert_non_null(text);
    return text;
}

/* An example snapshot for proxies run without certificates: its ISTIO_MUTUAL clusters, which
 * could then not connect at all, made plaintext (DISABLE, padded with JSON whitespace). */
static char *example_text_plaintext(const char *name)
{
    char *text = example_text(name);
    for (char *p = text; (p = strstr(p, "\"ISTIO_MUTUAL\"")) != NULL;) {
        memcpy(p, "\"DISABLE\"     ", 14);
    }
    return text;
}

#endif
