/*
 * bench_proxy.c - `weft proxy` beside nginx on the same machine in the same run (issues #5 and
 * #7, Benchmarks). Three measurements:
 *
 * throughput: wrk (closed loop) against one upstream (nginx, `return 200 "hello"`, keep-alive)
 *   directly, through nginx as a reverse proxy (upstream keepalive 64, HTTP/1.1 to the
 *   upstream, access_log off) with 1 and 2 worker processes, and through `weft proxy`'s
 *   inbound listener with --concurrency 1 and 2 (telemetry on: it always records Istio's
 *   metrics). The configurations run in turn, R rounds, and each figure is the median of its
 *   R runs; the direct figure shows the upstream was not the bottleneck.
 *
 * hops: an open-loop load generator of this file (fixed-rate schedule over N keep-alive
 *   connections; each latency is measured from the request's scheduled send time, so a stall
 *   delays the requests queued behind it instead of hiding them: no coordinated omission)
 *   sends at a fixed rate to a 1 KiB-body server (nginx) on three paths at once, their
 *   schedules interleaved so that the stalls of a shared machine hit all three alike: direct;
 *   through two weft sidecars, proxy A's outbound listener (a snapshot routes Host `server` to
 *   a cluster whose endpoint is B) -> proxy B's inbound listener -> the server; and through
 *   two nginx reverse proxies chained the same way (the reference). It prints the latency the
 *   two hops add over direct at p50/p90/p99, each proxy's CPU (utime+stime from
 *   /proc/<pid>/stat around the measured window, nginx's master + workers) per 1000 requests
 *   and as vCPU, and each proxy's peak RSS (VmHWM), next to the goals of issue #5.
 *   With --mtls the hop between the two proxies is mutual TLS 1.3 (certificates made with the
 *   openssl command line: weft A auto mTLS to B, which verifies A; nginx A proxy_ssl_* with a
 *   client certificate to nginx B with ssl_verify_client on), next to the goals of issue #7.
 *
 * handshakes: wrk through the two proxies of each kind with a new connection between them for
 *   every request, plaintext and mTLS: new connections (handshakes) per second.
 *
 * Every child (nginx masters, weft proxies, wrk) is stopped at the end, also when a step
 * fails; the generated nginx configs, logs and pid files live in one temporary directory that
 * is removed at the end. (When the bench itself is killed, wt_spawn's parent-death signal ends
 * the weft proxies and nginx masters; nginx's workers outlive a master killed that way.) Figures
 * only, never a verdict beyond "met" against the stated goals.
 *
 * Run (RelWithDebInfo or Release build, never the sanitizer one; wrk and nginx installed):
 *   WEFT_BIN=build/weft build/tests/bench_proxy [all|throughput|hops|handshakes] [flags]
 * flags: -d SECONDS wrk duration (5)   -c CONNS wrk connections (64)   -t THREADS wrk (2)
 *        -r RUNS per configuration (3) -u WORKERS upstream nginx workers (1)
 *        --rate N hops requests/s (1000) --hop-seconds S (10) --hop-conns N (16)
 *        --body BYTES response body of the hops server (1024) --post (1 KiB POST bodies)
 *        --mtls (hops: the hop between the proxies is mutual TLS)
 *        --hop-concurrency N weft workers of each sidecar (2) --keep (keep the temp dir)
 *        --client-nice N (e.g. -10, as root: the hops load generator alone at that priority)
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "wf_alloc.h"
#include "wf_buf.h"
#include "wf_clock.h"
#include "wf_err.h"
#include "wt_certs.h"
#include "wt_util.h"

#define MAX_CHILDREN 16

typedef struct {
    int wrk_seconds;
    int wrk_conns;
    int wrk_threads;
    int runs;
    int upstream_workers;
    int rate;
    int hop_seconds;
    int hop_conns;
    int body_bytes;
    bool post;
    int hop_concurrency;
    int client_nice;
    bool keep;
    bool mtls; /* hops and handshakes: the hop between the two proxies is mutual TLS */
} opts_t;

/* The children of one run, stopped in reverse order by bench_stop_all. */
typedef struct {
    char *dir;
    pid_t pids[MAX_CHILDREN];
    int n;
} bench_t;

/* ---------------------------------------------------------------------------------------- */
/* Children: nginx and weft proxy */

static void bench_track(bench_t *b, pid_t pid)
{
    WF_ASSERT(b->n < MAX_CHILDREN);
    b->pids[b->n++] = pid;
}

static void bench_stop_all(bench_t *b)
{
    for (int i = b->n - 1; i >= 0; i--) {
        /* SIGTERM is a fast shutdown for nginx (the master stops its workers) and a drain for
         * weft proxy (1 s, from its flags). */
        wt_stop(b->pids[i], 15000);
    }
    b->n = 0;
}

/* Write <dir>/<name>.conf: an nginx with `workers` worker processes listening on port, whose
 * `location /` holds location; upstream_port > 0 adds `upstream up` with keepalive 64. Every
 * path nginx writes is inside dir. */
static char *nginx_conf(const char *dir, const char *name, int workers, int port, int upstream_port,
                        const char *location, const char *server_tls)
{
    wf_buf_t b = WF_BUF_INIT;
    wf_buf_printf(&b, "worker_processes %d;\npid %s/%s.pid;\nerror_log %s/%s.err warn;\n", workers,
                  dir, name, dir, name);
    wf_buf_puts(&b, "worker_rlimit_nofile 8192;\nevents { worker_connections 4096; }\nhttp {\n");
    wf_buf_puts(&b, "    access_log off;\n    default_type text/plain;\n");
    /* nginx closes a client connection after 1000 requests by default; weft's pools and
     * wrk's connections live for the whole run, so both sides get unlimited keep-alive. */
    wf_buf_puts(&b, "    keepalive_requests 100000000;\n    keepalive_timeout 300s;\n");
    static const char *const temps[] = {"client_body", "proxy", "fastcgi", "uwsgi", "scgi"};
    for (size_t i = 0; i < sizeof(temps) / sizeof(temps[0]); i++) {
        wf_buf_printf(&b, "    %s_temp_path %s/%s-%s;\n", temps[i], dir, name, temps[i]);
    }
    if (upstream_port > 0) {
        wf_buf_printf(&b,
                      "    upstream up {\n        server 127.0.0.1:%d;\n        keepalive 64;\n"
                      "        keepalive_requests 100000000;\n    }\n",
                      upstream_port);
    }
    wf_buf_printf(&b,
                  "    server {\n        listen 127.0.0.1:%d%s;\n%s        location / {\n%s"
                  "        }\n    }\n}\n",
                  port, server_tls != NULL ? " ssl" : "", server_tls != NULL ? server_tls : "",
                  location);
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s.conf", dir, name);
    wt_write_file(path, wf_buf_cstr(&b));
    wf_buf_free(&b);
    return wf_strdup(path);
}

/* A child that did not come up: say so, with its log (the directory is removed at the end). */
static void start_failed(const char *what, const char *name, const char *log)
{
    char *text = wt_read_file(log, NULL);
    fprintf(stderr, "bench_proxy: %s %s did not start; its log:\n%s\n", what, name,
            text != NULL ? text : "(none)");
    wf_free(text);
}

/* Start nginx (master + workers) on port with the config above; its master's pid, or -1 when it
 * does not listen within 10 s. */
static pid_t nginx_start(bench_t *b, const char *name, int workers, int port, int upstream_port,
                         const char *location, const char *server_tls)
{
    char *conf = nginx_conf(b->dir, name, workers, port, upstream_port, location, server_tls);
    char log[4200];
    snprintf(log, sizeof(log), "%s/%s.log", b->dir, name);
    char *argv[] = {"nginx", "-p", b->dir, "-c", conf, "-g", "daemon off;", NULL};
    pid_t pid = wt_spawn(argv, log);
    wf_free(conf);
    bench_track(b, pid);
    if (!wt_wait_port(port, 10000)) {
        start_failed("nginx", name, log);
        return -1;
    }
    return pid;
}

/* Start `weft proxy`; outbound 0 = off; mtls: with the certificate <dir>/<name>.pem made by
 * make_certs. Returns its pid, or -1 when its ports do not open. */
static pid_t weft_start(bench_t *b, const char *name, const char *service, int app_port,
                        int inbound, int outbound, int admin, int concurrency, const char *config,
                        bool mtls)
{
    char app[16], in[32], out[32], adm[32], conc[16], log[4200];
    char cert[4200], key[4200], roots[4200];
    snprintf(app, sizeof(app), "%d", app_port);
    snprintf(in, sizeof(in), "127.0.0.1:%d", inbound);
    snprintf(out, sizeof(out), outbound > 0 ? "127.0.0.1:%d" : "off", outbound);
    snprintf(adm, sizeof(adm), "127.0.0.1:%d", admin);
    snprintf(conc, sizeof(conc), "%d", concurrency);
    snprintf(log, sizeof(log), "%s/%s.log", b->dir, name);
    char *argv[32] = {(char *)wt_weft_bin(), "proxy", "--service",   (char *)service,
                      "--app-port",          app,     "--inbound",   in,
                      "--outbound",          out,     "--admin",     adm,
                      "--concurrency",       conc,    "--log-level", "warn",
                      "--drain-time",        "1s",    NULL};
    int n = 18;
    if (config != NULL) {
        argv[n++] = "--config";
        argv[n++] = (char *)config;
    }
    if (mtls) {
        argv[n++] = "--cert-chain";
        argv[n++] = (char *)wt_cert_path(b->dir, name, false, cert, sizeof(cert));
        argv[n++] = "--private-key";
        argv[n++] = (char *)wt_cert_path(b->dir, name, true, key, sizeof(key));
        argv[n++] = "--root-cert";
        argv[n++] = (char *)wt_cert_path(b->dir, "ca", false, roots, sizeof(roots));
    }
    argv[n] = NULL;
    pid_t pid = wt_spawn(argv, log);
    bench_track(b, pid);
    if (!wt_wait_port(admin, 10000) || !wt_wait_port(inbound, 10000) ||
        (outbound > 0 && !wt_wait_port(outbound, 10000))) {
        start_failed("weft proxy", name, log);
        return -1;
    }
    return pid;
}

/* GET / through port must answer 200 with body want (a wrong setup must not be measured). */
static int check_answer(const char *what, int port, const char *want)
{
    char *body = NULL;
    int st = wt_http(port, "GET", "/", NULL, 0, &body);
    bool ok = st == 200 && body != NULL && strcmp(body, want) == 0;
    if (!ok) {
        fprintf(stderr, "bench_proxy: %s answered %d \"%.60s\", want 200 \"%.60s\"\n", what, st,
                body != NULL ? body : "", want);
    }
    wf_free(body);
    return ok ? 0 : -1;
}

/* ---------------------------------------------------------------------------------------- */
/* /proc figures */

/* utime + stime of pid in seconds, or -1. */
static double proc_cpu_s(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    char *text = wt_read_file(path, NULL);
    if (text == NULL) {
        return -1;
    }
    /* The command name may hold spaces and parentheses: fields count from the last ')'. */
    char *p = strrchr(text, ')');
    unsigned long ut = 0, st = 0;
    int n = p != NULL
                ? sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st)
                : 0;
    wf_free(text);
    return n == 2 ? (double)(ut + st) / (double)sysconf(_SC_CLK_TCK) : -1;
}

/* A "Key:   N kB" line of /proc/<pid>/<file> (status, smaps_rollup) in KiB, or -1. */
static long proc_kib(pid_t pid, const char *file, const char *key)
{
    char path[96];
    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
    char *text = wt_read_file(path, NULL);
    long v = -1;
    size_t kl = strlen(key);
    for (char *p = text; p != NULL && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, key, kl) == 0 && p[kl] == ':') {
            v = strtol(p + kl + 1, NULL, 10);
        }
    }
    wf_free(text);
    return v;
}

/* The direct children of pid (nginx's workers), at most max; their number. */
static int proc_children(pid_t pid, pid_t *out, int max)
{
    char path[96];
    snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)pid);
    char *text = wt_read_file(path, NULL);
    int n = 0;
    for (char *p = text, *end; p != NULL && n < max; p = end) {
        long v = strtol(p, &end, 10);
        if (end == p) {
            break;
        }
        out[n++] = (pid_t)v;
    }
    wf_free(text);
    return n;
}

/* CPU seconds of pid and its children (a weft proxy has none; an nginx master has workers). */
static double tree_cpu_s(pid_t pid)
{
    pid_t kids[16];
    int n = proc_children(pid, kids, 16);
    double sum = proc_cpu_s(pid);
    for (int i = 0; i < n; i++) {
        sum += proc_cpu_s(kids[i]);
    }
    return sum;
}

/* Sum of a proc_kib figure over pid and its children (for VmHWM, pages they share count once
 * per process). */
static long tree_kib(pid_t pid, const char *file, const char *key)
{
    pid_t kids[16];
    int n = proc_children(pid, kids, 16);
    long sum = proc_kib(pid, file, key);
    for (int i = 0; i < n; i++) {
        sum += proc_kib(kids[i], file, key);
    }
    return sum;
}

/* ---------------------------------------------------------------------------------------- */
/* Medians */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
    double s[64];
    WF_ASSERT(n > 0 && n <= 64);
    memcpy(s, v, sizeof(double) * (size_t)n);
    qsort(s, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* ---------------------------------------------------------------------------------------- */
/* throughput: wrk */

typedef struct {
    double rps;
    double p50_ms;
    double p99_ms;
    long errors; /* non-2xx/3xx responses + socket errors */
} wrk_res_t;

/* "612.00us", "2.31ms", "1.02s" in milliseconds; -1 when unparsable. */
static double wrk_duration_ms(const char *s)
{
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s) {
        return -1;
    }
    if (strncmp(end, "us", 2) == 0) {
        return v / 1000;
    }
    if (strncmp(end, "ms", 2) == 0) {
        return v;
    }
    if (end[0] == 's') {
        return v * 1000;
    }
    if (strncmp(end, "m", 1) == 0) {
        return v * 60000;
    }
    return -1;
}

/* Parse wrk's report; 0 when Requests/sec and the 50 % and 99 % lines were found. */
static int wrk_parse(const char *out, wrk_res_t *r)
{
    memset(r, 0, sizeof(*r));
    r->rps = r->p50_ms = r->p99_ms = -1;
    for (const char *p = out; p != NULL && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        long a, b, c, d;
        if (strncmp(p, "Requests/sec:", 13) == 0) {
            r->rps = strtod(p + 13, NULL);
        } else if (strncmp(p, "50%", 3) == 0) {
            r->p50_ms = wrk_duration_ms(p + 3 + strspn(p + 3, " \t"));
        } else if (strncmp(p, "99%", 3) == 0) {
            r->p99_ms = wrk_duration_ms(p + 3 + strspn(p + 3, " \t"));
        } else if (strncmp(p, "Non-2xx or 3xx responses:", 25) == 0) {
            r->errors += strtol(p + 25, NULL, 10);
        } else if (sscanf(p, "Socket errors: connect %ld, read %ld, write %ld, timeout %ld", &a, &b,
                          &c, &d) == 4) {
            r->errors += a + b + c + d;
        }
    }
    return r->rps > 0 && r->p50_ms >= 0 && r->p99_ms >= 0 ? 0 : -1;
}

/* wrk against port for seconds; host: a Host header to send instead of wrk's, or NULL. */
static int wrk_run(const opts_t *o, bench_t *b, int port, int seconds, const char *host,
                   wrk_res_t *r)
{
    char out[4200], url[64], t[16], c[16], d[16], hh[128];
    snprintf(out, sizeof(out), "%s/wrk.out", b->dir);
    unlink(out);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
    snprintf(t, sizeof(t), "%d", o->wrk_threads);
    snprintf(c, sizeof(c), "%d", o->wrk_conns);
    snprintf(d, sizeof(d), "%ds", seconds);
    snprintf(hh, sizeof(hh), "Host: %s", host != NULL ? host : "");
    char *argv[] = {"wrk", "-t", t, "-c", c, "-d", d, "--latency", url, NULL, NULL, NULL};
    if (host != NULL) {
        argv[9] = "-H";
        argv[10] = hh;
    }
    pid_t pid = wt_spawn(argv, out);
    int st = wt_wait(pid, (seconds + 30) * 1000);
    char *text = wt_read_file(out, NULL);
    int rc = -1;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && text != NULL) {
        rc = wrk_parse(text, r);
    }
    if (rc != 0) {
        fprintf(stderr, "bench_proxy: wrk against port %d failed:\n%s\n", port,
                text != NULL ? text : "");
    }
    wf_free(text);
    return rc;
}

static const char *met(bool ok)
{
    return ok ? "met" : "NOT met";
}

enum { TP_DIRECT, TP_NGINX1, TP_WEFT1, TP_NGINX2, TP_WEFT2, TP_N };

static int bench_throughput(const opts_t *o)
{
    static const char *const names[TP_N] = {"upstream direct", "nginx proxy, 1 worker",
                                            "weft proxy, concurrency 1", "nginx proxy, 2 workers",
                                            "weft proxy, concurrency 2"};
    bench_t b = {.dir = wt_tmpdir("pxbench")};
    int port[TP_N];
    for (int i = 0; i < TP_N; i++) {
        port[i] = wt_free_port();
    }
    double rps[TP_N][64], p50[TP_N][64], p99[TP_N][64];
    long errors[TP_N] = {0};
    int rc = -1;
    const char *proxy_loc = "            proxy_pass http://up;\n"
                            "            proxy_http_version 1.1;\n"
                            "            proxy_set_header Connection \"\";\n";
    if (nginx_start(&b, "upstream", o->upstream_workers, port[TP_DIRECT], 0,
                    "            return 200 \"hello\";\n", NULL) < 0 ||
        nginx_start(&b, "nginx1", 1, port[TP_NGINX1], port[TP_DIRECT], proxy_loc, NULL) < 0 ||
        nginx_start(&b, "nginx2", 2, port[TP_NGINX2], port[TP_DIRECT], proxy_loc, NULL) < 0 ||
        weft_start(&b, "weft1", "bench", port[TP_DIRECT], port[TP_WEFT1], 0, wt_free_port(), 1,
                   NULL, false) < 0 ||
        weft_start(&b, "weft2", "bench", port[TP_DIRECT], port[TP_WEFT2], 0, wt_free_port(), 2,
                   NULL, false) < 0) {
        goto fail;
    }
    for (int i = 0; i < TP_N; i++) {
        if (check_answer(names[i], port[i], "hello") != 0) {
            goto fail;
        }
    }
    printf("throughput: wrk -t%d -c%d -d%ds --latency, %d runs per configuration in turn, "
           "medians; upstream nginx with %d worker(s) answering `return 200 \"hello\"`\n",
           o->wrk_threads, o->wrk_conns, o->wrk_seconds, o->runs, o->upstream_workers);
    /* Warm-up: pools filled, caches warm, not counted. */
    for (int i = 0; i < TP_N; i++) {
        wrk_res_t r;
        if (wrk_run(o, &b, port[i], 1, NULL, &r) != 0) {
            goto fail;
        }
    }
    for (int run = 0; run < o->runs; run++) {
        for (int i = 0; i < TP_N; i++) {
            wrk_res_t r;
            if (wrk_run(o, &b, port[i], o->wrk_seconds, NULL, &r) != 0) {
                goto fail;
            }
            rps[i][run] = r.rps;
            p50[i][run] = r.p50_ms;
            p99[i][run] = r.p99_ms;
            errors[i] += r.errors;
            printf("  run %d %-27s %10.0f req/s  p50 %7.3f ms  p99 %7.3f ms%s\n", run + 1, names[i],
                   r.rps, r.p50_ms, r.p99_ms, r.errors ? "  (errors)" : "");
            fflush(stdout);
        }
    }
    double m_rps[TP_N], m_p50[TP_N], m_p99[TP_N];
    for (int i = 0; i < TP_N; i++) {
        m_rps[i] = median(rps[i], o->runs);
        m_p50[i] = median(p50[i], o->runs);
        m_p99[i] = median(p99[i], o->runs);
    }
    printf("\n%-27s %12s %10s %10s %8s\n", "configuration (median)", "req/s", "p50 ms", "p99 ms",
           "errors");
    for (int i = 0; i < TP_N; i++) {
        printf("%-27s %12.0f %10.3f %10.3f %8ld\n", names[i], m_rps[i], m_p50[i], m_p99[i],
               errors[i]);
    }
    printf("\nweft/nginx     req/s ratio  p50 ratio  p99 ratio   goal (req/s)\n");
    for (int w = 1; w <= 2; w++) {
        int wi = w == 1 ? TP_WEFT1 : TP_WEFT2, ni = w == 1 ? TP_NGINX1 : TP_NGINX2;
        double ratio = m_rps[wi] / m_rps[ni];
        printf("%d worker(s)    %11.2f %10.2f %10.2f   >= 1.20 %s\n", w, ratio,
               m_p50[wi] / m_p50[ni], m_p99[wi] / m_p99[ni], met(ratio >= 1.2));
    }
    printf("direct upstream / best proxy req/s: %.2f (> 1: the upstream was not the "
           "bottleneck)\n\n",
           m_rps[TP_DIRECT] /
               (m_rps[TP_NGINX2] > m_rps[TP_WEFT2] ? m_rps[TP_NGINX2] : m_rps[TP_WEFT2]));
    rc = 0;
fail:
    bench_stop_all(&b);
    if (!o->keep) {
        wt_rm_rf(b.dir);
    } else {
        printf("kept %s\n", b.dir);
    }
    wf_free(b.dir);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* hops: the open-loop load generator */

typedef struct {
    int fd;
    bool busy;
    int64_t sched_ns; /* scheduled send time of the request in flight */
    wf_buf_t in;
} lconn_t;

typedef struct {
    int64_t *lat_ns; /* one per completed request, from its scheduled send time */
    long n;
    long errors;
    long late; /* sent more than 1 ms after their due time (no free connection, or this
                * process was not running then: a loaded machine) */
} lres_t;

static int lconn_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool send_full(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return false;
        }
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* 1 when in holds one whole response (consumed; *ok = status 200), 0 when more is needed,
 * -1 when it cannot be framed (no Content-Length). */
static int response_complete(wf_buf_t *in, bool *ok)
{
    const char *s = (const char *)in->data;
    const char *end = memmem(s, in->len, "\r\n\r\n", 4);
    if (end == NULL) {
        return 0;
    }
    size_t head = (size_t)(end - s) + 4;
    long cl = -1;
    for (const char *p = s; p != NULL && p < end;) {
        if (strncasecmp(p, "content-length:", 15) == 0) {
            cl = strtol(p + 15, NULL, 10);
        }
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        p = nl != NULL ? nl + 1 : NULL;
    }
    if (cl < 0) {
        return -1;
    }
    if (in->len < head + (size_t)cl) {
        return 0;
    }
    *ok = in->len > 12 && strncmp(s + 8, " 200", 4) == 0;
    size_t used = head + (size_t)cl;
    memmove(in->data, in->data + used, in->len - used);
    in->len -= used;
    return 1;
}

/* req sent on a new connection to port must be answered 200 with body want. */
static int check_raw(const char *what, int port, const char *req, size_t req_len, const char *want)
{
    int fd = lconn_open(port);
    wf_buf_t in = WF_BUF_INIT;
    int rc = -1;
    if (fd < 0 || !send_full(fd, req, req_len)) {
        goto fail;
    }
    for (;;) {
        const char *s = (const char *)in.data;
        const char *end = in.len > 0 ? memmem(s, in.len, "\r\n\r\n", 4) : NULL;
        size_t blen = strlen(want);
        if (end != NULL && in.len >= (size_t)(end - s) + 4 + blen) {
            bool ok = strncmp(s + 8, " 200", 4) == 0 && memcmp(end + 4, want, blen) == 0 &&
                      in.len == (size_t)(end - s) + 4 + blen;
            rc = ok ? 0 : -1;
            break;
        }
        char buf[16384];
        ssize_t r = recv(fd, buf, sizeof(buf), 0);
        if (r <= 0) {
            break;
        }
        wf_buf_append(&in, buf, (size_t)r);
    }
fail:
    if (rc != 0) {
        fprintf(stderr, "bench_proxy: %s: not answered 200 with the expected body: %.300s\n", what,
                in.len > 0 ? wf_buf_cstr(&in) : "(nothing)");
    }
    if (fd >= 0) {
        close(fd);
    }
    wf_buf_free(&in);
    return rc;
}

/*
 * Send rate requests/s to each of nt targets (127.0.0.1:ports[t]) at once for seconds, over
 * conns keep-alive connections per target, one request in flight per connection. Request k of
 * target t is due at start + k/rate + t/(nt*rate): the targets' schedules interleave, so a
 * stall of this shared machine hits them alike. A due request waits for a free connection of
 * its target, in order, and its latency still counts from its due time.
 */
static int open_loop(const int *ports, int nt, int rate, int seconds, int conns, const char *req,
                     size_t req_len, lres_t *res)
{
    long total = (long)rate * seconds;
    int nc = nt * conns; /* connection i belongs to target i / conns */
    lconn_t *c = wf_calloc((size_t)nc, sizeof(lconn_t));
    struct pollfd *pf = wf_calloc((size_t)nc, sizeof(struct pollfd));
    long next[8] = {0}; /* per target: next request to send */
    int rc = -1;
    WF_ASSERT(nt <= 8);
    for (int t = 0; t < nt; t++) {
        memset(&res[t], 0, sizeof(res[t]));
        res[t].lat_ns = wf_calloc((size_t)total, sizeof(int64_t));
    }
    for (int i = 0; i < nc; i++) {
        c[i].fd = -1;
    }
    for (int i = 0; i < nc; i++) {
        c[i].fd = lconn_open(ports[i / conns]);
        if (c[i].fd < 0) {
            fprintf(stderr, "bench_proxy: connect to %d: %s\n", ports[i / conns], strerror(errno));
            goto fail;
        }
    }
    double period = 1e9 / rate;
    int64_t start = wf_mono_ns() + 1000000;
    long done = 0, all = total * nt; /* completed, of all */
    int64_t hard_end = start + (int64_t)(seconds + 30) * 1000000000LL;
    while (done < all) {
        int64_t now = wf_mono_ns();
        if (now > hard_end) {
            fprintf(stderr, "bench_proxy: %ld of %ld requests unanswered after %d s\n", all - done,
                    all, seconds + 30);
            goto fail;
        }
        int64_t wait_ns = 50000000;
        for (int t = 0; t < nt; t++) {
            double offset = period * t / nt;
            for (int i = t * conns; i < (t + 1) * conns && next[t] < total; i++) {
                int64_t due = start + (int64_t)(period * (double)next[t] + offset);
                if (due > now) {
                    break;
                }
                if (c[i].busy) {
                    continue;
                }
                res[t].late += now - due > 1000000;
                c[i].busy = true;
                c[i].sched_ns = due;
                next[t]++;
                if (!send_full(c[i].fd, req, req_len)) {
                    fprintf(stderr, "bench_proxy: send: %s\n", strerror(errno));
                    goto fail;
                }
            }
            /* Sleep until the next due send, unless every connection of t is busy: then
             * an answer frees one and wakes the poll. */
            bool any_free = false;
            for (int i = t * conns; i < (t + 1) * conns; i++) {
                any_free = any_free || !c[i].busy;
            }
            if (next[t] < total && any_free) {
                int64_t due = start + (int64_t)(period * (double)next[t] + offset);
                int64_t w = due > now ? due - now : 0;
                wait_ns = w < wait_ns ? w : wait_ns;
            }
        }
        for (int i = 0; i < nc; i++) {
            pf[i].fd = c[i].fd;
            pf[i].events = c[i].busy ? POLLIN : 0;
            pf[i].revents = 0;
        }
        struct timespec ts = {wait_ns / 1000000000, wait_ns % 1000000000};
        int n = ppoll(pf, (nfds_t)nc, &ts, NULL);
        if (n < 0 && errno != EINTR) {
            goto fail;
        }
        for (int i = 0; i < nc && n > 0; i++) {
            if (pf[i].revents == 0) {
                continue;
            }
            char buf[16384];
            ssize_t r = recv(c[i].fd, buf, sizeof(buf), 0);
            if (r <= 0) {
                fprintf(stderr, "bench_proxy: connection closed by the server\n");
                goto fail;
            }
            wf_buf_append(&c[i].in, buf, (size_t)r);
            bool ok = false;
            int st = response_complete(&c[i].in, &ok);
            if (st < 0) {
                fprintf(stderr, "bench_proxy: a response without Content-Length\n");
                goto fail;
            }
            if (st == 1) {
                lres_t *rt = &res[i / conns];
                if (ok) {
                    rt->lat_ns[rt->n++] = wf_mono_ns() - c[i].sched_ns;
                } else {
                    rt->errors++;
                }
                c[i].busy = false;
                done++;
            }
        }
    }
    rc = 0;
fail:
    for (int i = 0; i < nc; i++) {
        if (c[i].fd >= 0) {
            close(c[i].fd);
        }
        wf_buf_free(&c[i].in);
    }
    wf_free(c);
    wf_free(pf);
    return rc;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* q-quantile (nearest rank) of sorted v in milliseconds. */
static double quantile_ms(const int64_t *v, long n, double q)
{
    if (n == 0) {
        return -1;
    }
    long i = (long)(q * (double)n + 0.999999) - 1;
    i = i < 0 ? 0 : i >= n ? n - 1 : i;
    return (double)v[i] / 1e6;
}

enum { Q50, Q90, Q99, Q999, QN };
static const double qs[QN] = {0.50, 0.90, 0.99, 0.999};
static const char *const qnames[QN] = {"p50", "p90", "p99", "p99.9"};

typedef struct {
    double q[QN][64];  /* per run, ms */
    double cpu[2][64]; /* per run, seconds, proxy A and B */
    long errors;
    long late;
} hop_runs_t;

/* One measured run of the nt targets at once: quantiles into h[t].q[..][run], CPU of the two
 * proxies of each target that has them (pids[t][0] > 0) into h[t].cpu[..][run]. */
static int hop_run(const opts_t *o, const int *ports, int nt, const char *req, size_t req_len,
                   hop_runs_t *h, int run, pid_t (*pids)[2])
{
    double cpu0[8][2];
    for (int t = 0; t < nt; t++) {
        for (int k = 0; k < 2 && pids[t][0] > 0; k++) {
            cpu0[t][k] = tree_cpu_s(pids[t][k]);
        }
    }
    lres_t r[8];
    int rc = open_loop(ports, nt, o->rate, o->hop_seconds, o->hop_conns, req, req_len, r);
    for (int t = 0; t < nt; t++) {
        for (int k = 0; k < 2 && pids[t][0] > 0; k++) {
            h[t].cpu[k][run] = tree_cpu_s(pids[t][k]) - cpu0[t][k];
        }
        if (rc == 0) {
            qsort(r[t].lat_ns, (size_t)r[t].n, sizeof(int64_t), cmp_i64);
            for (int i = 0; i < QN; i++) {
                h[t].q[i][run] = quantile_ms(r[t].lat_ns, r[t].n, qs[i]);
            }
            h[t].errors += r[t].errors;
            h[t].late += r[t].late;
        }
        wf_free(r[t].lat_ns);
    }
    return rc;
}

/* Proxy A's snapshot: Host `server` to one endpoint, dest_port. mtls: the endpoint's identity is
 * B's, so auto mTLS verifies it; one_per_conn: every request opens a new upstream connection
 * (the handshakes measurement). */
static char *hop_snapshot(const char *dir, const char *name, int dest_port, bool mtls,
                          bool one_per_conn)
{
    wf_buf_t b = WF_BUF_INIT;
    wf_buf_printf(
        &b,
        "{\n  \"schema\": 1,\n  \"version\": 1,\n"
        "  \"proxy\": {\"service\": \"client\", \"version\": \"v1\"},\n"
        "  \"telemetry\": {\"metrics\": true},\n"
        "  \"virtual_hosts\": [{\"host\": \"server.default.svc.cluster.local\", \"port\": 80,\n"
        "    \"domains\": [\"server\", \"server:80\"]}],\n"
        "  \"clusters\": [{\"name\": \"outbound|80||server.default.svc.cluster.local\",\n"
        "    \"host\": \"server.default.svc.cluster.local\", \"port\": 80,%s\n"
        "    \"endpoints\": [{\"address\": \"127.0.0.1\", \"port\": %d, \"in_mesh\": true,%s\n"
        "      \"labels\": {\"app\": \"server\", \"version\": \"v1\"}}]}]\n}\n",
        one_per_conn
            ? "\n    \"connection_pool\": {\"http\": {\"max_requests_per_connection\": 1}},"
            : "",
        dest_port, mtls ? " \"identity\": \"spiffe://cluster.local/ns/default/sa/server\"," : "");
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s.json", dir, name);
    wt_write_file(path, wf_buf_cstr(&b));
    wf_buf_free(&b);
    return wf_strdup(path);
}

/* ---------------------------------------------------------------------------------------- */
/* mTLS between the proxies (--mtls) */

/* The certificates of an mTLS run in b->dir (wt_certs: the openssl command line): a CA and one
 * leaf per proxy, named as the proxy; nginx B's also carries DNS:server, the name nginx A
 * verifies (nginx checks host names, not SPIFFE URIs). */
static int make_certs(bench_t *b)
{
    static const char *const leaves[][2] = {
        {"weft-a", "URI:spiffe://cluster.local/ns/default/sa/client"},
        {"weft-b", "URI:spiffe://cluster.local/ns/default/sa/server"},
        {"nginx-a", "URI:spiffe://cluster.local/ns/default/sa/client"},
        {"nginx-b", "URI:spiffe://cluster.local/ns/default/sa/server,DNS:server"},
    };
    if (wt_cert_ca(b->dir, "ca") != 0) {
        return -1;
    }
    for (size_t i = 0; i < sizeof(leaves) / sizeof(leaves[0]); i++) {
        if (wt_cert_leaf(b->dir, leaves[i][0], "ca", leaves[i][1], false) != 0) {
            return -1;
        }
    }
    return 0;
}

/* nginx B's server block: TLS 1.3 only, a client certificate required and verified against the
 * CA, as a STRICT sidecar does. */
static char *nginx_tls_server(const char *dir)
{
    wf_buf_t b = WF_BUF_INIT;
    wf_buf_printf(&b,
                  "        ssl_certificate %s/nginx-b.pem;\n"
                  "        ssl_certificate_key %s/nginx-b.key;\n"
                  "        ssl_client_certificate %s/ca.pem;\n"
                  "        ssl_verify_client on;\n"
                  "        ssl_protocols TLSv1.3;\n",
                  dir, dir, dir);
    char *text = wf_strdup(wf_buf_cstr(&b));
    wf_buf_free(&b);
    return text;
}

/* nginx A's location: proxy_pass to target (`up` or an address) over mutual TLS 1.3 with B's
 * certificate verified and sessions reused, as a client sidecar does. */
static char *nginx_tls_location(const char *dir, const char *target)
{
    wf_buf_t b = WF_BUF_INIT;
    wf_buf_printf(&b,
                  "            proxy_pass https://%s;\n"
                  "            proxy_http_version 1.1;\n"
                  "            proxy_set_header Connection \"\";\n"
                  "            proxy_ssl_certificate %s/nginx-a.pem;\n"
                  "            proxy_ssl_certificate_key %s/nginx-a.key;\n"
                  "            proxy_ssl_trusted_certificate %s/ca.pem;\n"
                  "            proxy_ssl_verify on;\n"
                  "            proxy_ssl_name server;\n"
                  "            proxy_ssl_protocols TLSv1.3;\n"
                  "            proxy_ssl_session_reuse on;\n",
                  target, dir, dir, dir);
    char *text = wf_strdup(wf_buf_cstr(&b));
    wf_buf_free(&b);
    return text;
}

/* The sum of the samples of the lines of a Prometheus text body that start with prefix. */
static double metric_sum(const char *body, const char *prefix)
{
    double sum = 0;
    size_t n = strlen(prefix);
    for (const char *p = body; p != NULL && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, prefix, n) == 0) {
            const char *sp = strchr(p + n, ' ');
            sum += sp != NULL ? strtod(sp + 1, NULL) : 0;
        }
    }
    return sum;
}

enum { HOP_DIRECT, HOP_WEFT, HOP_NGINX, HOP_N };

static int bench_hops(const opts_t *o)
{
    static const char *const names[HOP_N] = {"direct", "weft x2", "nginx x2"};
    bench_t b = {.dir = wt_tmpdir("pxbench")};
    int server = wt_free_port(), b_in = wt_free_port(), a_out = wt_free_port();
    int ng_b = wt_free_port(), ng_a = wt_free_port();
    int port[HOP_N] = {server, a_out, ng_a};
    char *snap = NULL;
    hop_runs_t *h = wf_calloc(HOP_N, sizeof(hop_runs_t));
    int rc = -1;
    char *body = wf_malloc((size_t)o->body_bytes + 1);
    memset(body, 'x', (size_t)o->body_bytes);
    body[o->body_bytes] = '\0';
    wf_buf_t loc = WF_BUF_INIT, req = WF_BUF_INIT;
    wf_buf_printf(&loc, "            return 200 \"%s\";\n", body);
    if (o->post) {
        wf_buf_printf(&req, "POST / HTTP/1.1\r\nHost: server\r\nContent-Type: text/plain\r\n"
                            "Content-Length: 1024\r\n\r\n");
        for (int i = 0; i < 1024; i++) {
            wf_buf_putc(&req, 'y');
        }
    } else {
        wf_buf_puts(&req, "GET / HTTP/1.1\r\nHost: server\r\n\r\n");
    }
    const char *rq = wf_buf_cstr(&req);
    size_t rq_len = req.len;
    pid_t pids[HOP_N][2] = {{0, 0}, {-1, -1}, {-1, -1}};
    pid_t none[HOP_N][2] = {{0, 0}, {0, 0}, {0, 0}};
    const char *proxy_loc = "            proxy_pass http://up;\n"
                            "            proxy_http_version 1.1;\n"
                            "            proxy_set_header Connection \"\";\n";
    char *tls_server = NULL, *tls_loc = NULL;
    if (o->mtls) {
        if (make_certs(&b) != 0) {
            goto fail;
        }
        tls_server = nginx_tls_server(b.dir);
        tls_loc = nginx_tls_location(b.dir, "up");
    }
    if (nginx_start(&b, "server", 1, server, 0, wf_buf_cstr(&loc), NULL) < 0) {
        goto fail;
    }
    pids[HOP_WEFT][1] = weft_start(&b, "weft-b", "server", server, b_in, 0, wt_free_port(),
                                   o->hop_concurrency, NULL, o->mtls);
    if (pids[HOP_WEFT][1] < 0) {
        goto fail;
    }
    snap = hop_snapshot(b.dir, "snapshot", b_in, o->mtls, false);
    pids[HOP_WEFT][0] = weft_start(&b, "weft-a", "client", wt_free_port(), wt_free_port(), a_out,
                                   wt_free_port(), o->hop_concurrency, snap, o->mtls);
    if (pids[HOP_WEFT][0] < 0) {
        goto fail;
    }
    pids[HOP_NGINX][1] =
        nginx_start(&b, "nginx-b", o->hop_concurrency, ng_b, server, proxy_loc, tls_server);
    pids[HOP_NGINX][0] = pids[HOP_NGINX][1] < 0
                             ? -1
                             : nginx_start(&b, "nginx-a", o->hop_concurrency, ng_a, ng_b,
                                           o->mtls ? tls_loc : proxy_loc, NULL);
    if (pids[HOP_NGINX][0] < 0) {
        goto fail;
    }
    for (int i = 0; i < HOP_N; i++) {
        if (check_raw(names[i], port[i], rq, rq_len, body) != 0) {
            goto fail;
        }
    }
    printf("hops: open loop, %d req/s for %d s to each of direct, two weft sidecars and two "
           "nginx reverse proxies at once (interleaved schedules), %d keep-alive connections "
           "each, %s with %d-byte response bodies; %d runs, medians; weft --concurrency %d, "
           "nginx worker_processes %d; load generator nice %d; the hop between the proxies %s\n",
           o->rate, o->hop_seconds, o->hop_conns, o->post ? "POST of 1024 bytes" : "GET",
           o->body_bytes, o->runs, o->hop_concurrency, o->hop_concurrency, o->client_nice,
           o->mtls ? "mutual TLS 1.3 (weft: auto mTLS, B PERMISSIVE; nginx: proxy_ssl_* with "
                     "a client certificate, ssl_verify_client on)"
                   : "plaintext");
    /* Warm-up (not counted): connections and pools established, pages touched. */
    opts_t warm = *o;
    warm.hop_seconds = 2;
    hop_runs_t scratch[HOP_N];
    /* Only the measuring client, started last, runs at this priority: on a loaded machine the
     * instrument's own wake-ups are then not what is measured. */
    if (o->client_nice != 0 && setpriority(PRIO_PROCESS, 0, o->client_nice) != 0) {
        fprintf(stderr, "bench_proxy: setpriority %d: %s\n", o->client_nice, strerror(errno));
    }
    if (hop_run(&warm, port, HOP_N, rq, rq_len, scratch, 0, none) != 0) {
        goto fail;
    }
    for (int run = 0; run < o->runs; run++) {
        if (hop_run(o, port, HOP_N, rq, rq_len, h, run, pids) != 0) {
            goto fail;
        }
        printf("  run %d", run + 1);
        for (int i = 0; i < HOP_N; i++) {
            printf(" | %s p50 %.3f p90 %.3f p99 %.3f ms", names[i], h[i].q[Q50][run],
                   h[i].q[Q90][run], h[i].q[Q99][run]);
        }
        printf("\n");
        fflush(stdout);
    }
    /* Peak RSS is the goal's figure; it counts every resident page of the shared libraries
     * mapped, so the anonymous part and PSS (shared pages divided among their users) are
     * printed beside it. */
    long hwm[HOP_N][2], anon[HOP_N][2], pss[HOP_N][2];
    double cpu[HOP_N][2];
    double reqs_k = (double)o->rate * o->hop_seconds / 1000.0;
    for (int i = HOP_WEFT; i < HOP_N; i++) {
        for (int k = 0; k < 2; k++) {
            hwm[i][k] = tree_kib(pids[i][k], "status", "VmHWM");
            anon[i][k] = tree_kib(pids[i][k], "status", "RssAnon");
            pss[i][k] = tree_kib(pids[i][k], "smaps_rollup", "Pss");
            cpu[i][k] = median(h[i].cpu[k], o->runs);
        }
    }
    printf("\n%-8s %10s %10s %10s %12s %12s %8s\n", "(median)", "direct ms", "weft x2", "nginx x2",
           "weft added", "nginx added", "ratio");
    double added[HOP_N][QN];
    for (int q = 0; q < QN; q++) {
        double d = median(h[HOP_DIRECT].q[q], o->runs);
        double w = median(h[HOP_WEFT].q[q], o->runs), n = median(h[HOP_NGINX].q[q], o->runs);
        added[HOP_WEFT][q] = w - d;
        added[HOP_NGINX][q] = n - d;
        printf("%-8s %10.3f %10.3f %10.3f %+12.3f %+12.3f %8.2f\n", qnames[q], d, w, n, w - d,
               n - d, (n - d) != 0 ? (w - d) / (n - d) : 0.0);
    }
    /* The three paths of a run shared its time window, so the run whose direct p99 is lowest
     * is the one the machine disturbed least: its figures are the closest to an idle machine. */
    int quiet = 0;
    for (int run = 1; run < o->runs; run++) {
        quiet = h[HOP_DIRECT].q[Q99][run] < h[HOP_DIRECT].q[Q99][quiet] ? run : quiet;
    }
    printf("quietest run (%d, lowest direct p99):\n", quiet + 1);
    for (int q = 0; q < QN; q++) {
        double d = h[HOP_DIRECT].q[q][quiet], w = h[HOP_WEFT].q[q][quiet];
        double n = h[HOP_NGINX].q[q][quiet];
        printf("%-8s %10.3f %10.3f %10.3f %+12.3f %+12.3f %8.2f\n", qnames[q], d, w, n, w - d,
               n - d, (n - d) != 0 ? (w - d) / (n - d) : 0.0);
    }
    printf("errors (non-200): direct %ld, weft %ld, nginx %ld; sends more than 1 ms after their "
           "due time (all connections busy, or this process not running then): direct %ld, "
           "weft %ld, nginx %ld\n\n",
           h[HOP_DIRECT].errors, h[HOP_WEFT].errors, h[HOP_NGINX].errors, h[HOP_DIRECT].late,
           h[HOP_WEFT].late, h[HOP_NGINX].late);
    printf("%-30s %9s %9s %9s %9s %9s  %s\n", "per proxy (A = first hop)", "weft A", "weft B",
           "nginx A", "nginx B", "goal", "weft");
    /* The goals: issue #5 for plaintext, issue #7 with mTLS. */
    double g90 = o->mtls ? 0.15 : 0.10, g99 = o->mtls ? 0.20 : 0.15;
    double gcpu = o->mtls ? 0.04 : 0.03, grss_mib = o->mtls ? 10 : 8;
    char gtext[4][16];
    snprintf(gtext[0], sizeof(gtext[0]), "<= +%.2f", g90);
    snprintf(gtext[1], sizeof(gtext[1]), "<= +%.2f", g99);
    snprintf(gtext[2], sizeof(gtext[2]), "<= %.2f", gcpu);
    snprintf(gtext[3], sizeof(gtext[3]), "<= %.0f", grss_mib);
    printf("%-30s %+9.3f %9s %+9.3f %9s %9s  %s\n", "added p90 ms (both hops)",
           added[HOP_WEFT][Q90], "", added[HOP_NGINX][Q90], "", gtext[0],
           met(added[HOP_WEFT][Q90] <= g90));
    printf("%-30s %+9.3f %9s %+9.3f %9s %9s  %s\n", "added p99 ms (both hops)",
           added[HOP_WEFT][Q99], "", added[HOP_NGINX][Q99], "", gtext[1],
           met(added[HOP_WEFT][Q99] <= g99));
    printf("%-30s %9.4f %9.4f %9.4f %9.4f %9s\n", "CPU s per 1000 requests",
           cpu[HOP_WEFT][0] / reqs_k, cpu[HOP_WEFT][1] / reqs_k, cpu[HOP_NGINX][0] / reqs_k,
           cpu[HOP_NGINX][1] / reqs_k, "");
    double va = cpu[HOP_WEFT][0] / o->hop_seconds, vb = cpu[HOP_WEFT][1] / o->hop_seconds;
    printf("%-30s %9.4f %9.4f %9.4f %9.4f %9s  %s\n", "vCPU at this rate", va, vb,
           cpu[HOP_NGINX][0] / o->hop_seconds, cpu[HOP_NGINX][1] / o->hop_seconds, gtext[2],
           met(va <= gcpu && vb <= gcpu));
    printf("%-30s %9.1f %9.1f %9.1f %9.1f %9s  %s\n", "peak RSS MiB (VmHWM)",
           (double)hwm[HOP_WEFT][0] / 1024, (double)hwm[HOP_WEFT][1] / 1024,
           (double)hwm[HOP_NGINX][0] / 1024, (double)hwm[HOP_NGINX][1] / 1024, gtext[3],
           met(hwm[HOP_WEFT][0] <= grss_mib * 1024 && hwm[HOP_WEFT][1] <= grss_mib * 1024));
    printf("%-30s %9.1f %9.1f %9.1f %9.1f\n", "RSS anonymous MiB (at end)",
           (double)anon[HOP_WEFT][0] / 1024, (double)anon[HOP_WEFT][1] / 1024,
           (double)anon[HOP_NGINX][0] / 1024, (double)anon[HOP_NGINX][1] / 1024);
    printf("%-30s %9.1f %9.1f %9.1f %9.1f\n", "PSS MiB (at end)", (double)pss[HOP_WEFT][0] / 1024,
           (double)pss[HOP_WEFT][1] / 1024, (double)pss[HOP_NGINX][0] / 1024,
           (double)pss[HOP_NGINX][1] / 1024);
    printf("(CPU: utime+stime, 1/%ld s resolution; nginx figures are master + workers, its RSS "
           "the sum of their VmHWM)\n\n",
           sysconf(_SC_CLK_TCK));
    rc = 0;
fail:
    if (o->client_nice != 0) {
        setpriority(PRIO_PROCESS, 0, 0);
    }
    bench_stop_all(&b);
    if (!o->keep) {
        wt_rm_rf(b.dir);
    } else {
        printf("kept %s\n", b.dir);
    }
    wf_free(b.dir);
    wf_free(snap);
    wf_free(tls_server);
    wf_free(tls_loc);
    wf_free(body);
    wf_free(h);
    wf_buf_free(&loc);
    wf_buf_free(&req);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* handshakes: a new upstream connection per request */

enum { HS_WEFT_PLAIN, HS_WEFT_MTLS, HS_NGINX_PLAIN, HS_NGINX_MTLS, HS_N };

/*
 * wrk (closed loop, keep-alive towards the first proxy) through two proxies whose hop opens a
 * new connection for every request: weft A with `max_requests_per_connection: 1`, nginx A
 * with no upstream keepalive. Each request is then one TCP connect, and with mTLS one TLS 1.3
 * handshake (resumed when the proxy keeps sessions: weft offers its last ticket, nginx has
 * proxy_ssl_session_reuse on), so requests/s is the rate of new connections each setup
 * sustains, and plaintext beside mTLS shows what the handshakes cost.
 */
static int bench_handshakes(const opts_t *o)
{
    static const char *const names[HS_N] = {"weft x2, plaintext hop", "weft x2, mTLS hop",
                                            "nginx x2, plaintext hop", "nginx x2, mTLS hop"};
    bench_t b = {.dir = wt_tmpdir("pxbench")};
    int server = wt_free_port(), b_in = wt_free_port(), ng_b = wt_free_port();
    int ng_b_tls = wt_free_port(), a_admin = wt_free_port();
    int port[HS_N] = {wt_free_port(), wt_free_port(), wt_free_port(), wt_free_port()};
    char *snap_plain = NULL, *snap_mtls = NULL, *tls_server = NULL, *tls_loc = NULL;
    char plain_loc[256], tls_target[64];
    double rps[HS_N][64];
    long errors[HS_N] = {0};
    int rc = -1;
    const char *keep_loc = "            proxy_pass http://up;\n"
                           "            proxy_http_version 1.1;\n"
                           "            proxy_set_header Connection \"\";\n";
    snprintf(plain_loc, sizeof(plain_loc), "            proxy_pass http://127.0.0.1:%d;\n", ng_b);
    snprintf(tls_target, sizeof(tls_target), "127.0.0.1:%d", ng_b_tls);
    if (make_certs(&b) != 0) {
        goto fail;
    }
    tls_server = nginx_tls_server(b.dir);
    tls_loc = nginx_tls_location(b.dir, tls_target);
    snap_plain = hop_snapshot(b.dir, "snapshot-plain", b_in, false, true);
    snap_mtls = hop_snapshot(b.dir, "snapshot-mtls", b_in, true, true);
    /* One B serves both A's: PERMISSIVE, it takes TLS and plaintext alike. */
    if (nginx_start(&b, "server", 1, server, 0, "            return 200 \"hello\";\n", NULL) < 0 ||
        weft_start(&b, "weft-b", "server", server, b_in, 0, wt_free_port(), 2, NULL, true) < 0 ||
        weft_start(&b, "weft-a-plain", "client", wt_free_port(), wt_free_port(),
                   port[HS_WEFT_PLAIN], wt_free_port(), 2, snap_plain, false) < 0 ||
        weft_start(&b, "weft-a", "client", wt_free_port(), wt_free_port(), port[HS_WEFT_MTLS],
                   a_admin, 2, snap_mtls, true) < 0 ||
        nginx_start(&b, "nginx-b-plain", 2, ng_b, server, keep_loc, NULL) < 0 ||
        nginx_start(&b, "nginx-b", 2, ng_b_tls, server, keep_loc, tls_server) < 0 ||
        nginx_start(&b, "nginx-a-plain", 2, port[HS_NGINX_PLAIN], 0, plain_loc, NULL) < 0 ||
        nginx_start(&b, "nginx-a", 2, port[HS_NGINX_MTLS], 0, tls_loc, NULL) < 0) {
        goto fail;
    }
    const char *rq = "GET / HTTP/1.1\r\nHost: server\r\n\r\n";
    for (int i = 0; i < HS_N; i++) {
        if (check_raw(names[i], port[i], rq, strlen(rq), "hello") != 0) {
            goto fail;
        }
    }
    printf("handshakes: wrk -t%d -c%d -d%ds (keep-alive to proxy A, Host: server), a new "
           "connection A -> B for every request; %d runs in turn, medians; both proxies 2 "
           "workers each\n",
           o->wrk_threads, o->wrk_conns, o->wrk_seconds, o->runs);
    for (int i = 0; i < HS_N; i++) {
        wrk_res_t r;
        if (wrk_run(o, &b, port[i], 1, "server", &r) != 0) {
            goto fail;
        }
    }
    char *stats0 = NULL;
    wt_http(a_admin, "GET", "/stats/prometheus", NULL, 0, &stats0);
    for (int run = 0; run < o->runs; run++) {
        for (int i = 0; i < HS_N; i++) {
            wrk_res_t r;
            if (wrk_run(o, &b, port[i], o->wrk_seconds, "server", &r) != 0) {
                wf_free(stats0);
                goto fail;
            }
            rps[i][run] = r.rps;
            errors[i] += r.errors;
            printf("  run %d %-26s %10.0f new connections/s%s\n", run + 1, names[i], r.rps,
                   r.errors ? "  (errors)" : "");
            fflush(stdout);
        }
    }
    char *stats1 = NULL;
    wt_http(a_admin, "GET", "/stats/prometheus", NULL, 0, &stats1);
    const char *hs_ok = "weft_proxy_tls_handshakes_total{side=\"client\",result=\"ok\"}";
    const char *hs_err = "weft_proxy_tls_handshakes_total{side=\"client\",result=\"error\"}";
    const char *resumed = "weft_proxy_tls_resumed_total";
    double d_ok = metric_sum(stats1, hs_ok) - metric_sum(stats0, hs_ok);
    double d_err = metric_sum(stats1, hs_err) - metric_sum(stats0, hs_err);
    double d_res = metric_sum(stats1, resumed) - metric_sum(stats0, resumed);
    wf_free(stats0);
    wf_free(stats1);
    double m[HS_N];
    printf("\n%-26s %18s %8s\n", "configuration (median)", "new connections/s", "errors");
    for (int i = 0; i < HS_N; i++) {
        m[i] = median(rps[i], o->runs);
        printf("%-26s %18.0f %8ld\n", names[i], m[i], errors[i]);
    }
    printf("weft/nginx with mTLS: %.2f; mTLS/plaintext: weft %.2f, nginx %.2f\n",
           m[HS_WEFT_MTLS] / m[HS_NGINX_MTLS], m[HS_WEFT_MTLS] / m[HS_WEFT_PLAIN],
           m[HS_NGINX_MTLS] / m[HS_NGINX_PLAIN]);
    printf("weft A's client handshakes in the measured runs: %.0f ok, %.0f failed, %.0f resumed "
           "(%.0f %%)\n\n",
           d_ok, d_err, d_res, d_ok > 0 ? 100.0 * d_res / d_ok : 0.0);
    rc = 0;
fail:
    bench_stop_all(&b);
    if (!o->keep) {
        wt_rm_rf(b.dir);
    } else {
        printf("kept %s\n", b.dir);
    }
    wf_free(b.dir);
    wf_free(snap_plain);
    wf_free(snap_mtls);
    wf_free(tls_server);
    wf_free(tls_loc);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */

static int usage(void)
{
    fprintf(stderr, "usage: bench_proxy [all|throughput|hops|handshakes] [-d SECONDS] [-c CONNS] "
                    "[-t THREADS] [-r RUNS] [-u UPSTREAM_WORKERS]\n"
                    "       [--rate N] [--hop-seconds S] [--hop-conns N] [--body BYTES] [--post] "
                    "[--mtls] [--hop-concurrency N] [--client-nice N] [--keep]\n");
    return 2;
}

int main(int argc, char **argv)
{
    opts_t o = {.wrk_seconds = 5,
                .wrk_conns = 64,
                .wrk_threads = 2,
                .runs = 3,
                .upstream_workers = 1,
                .rate = 1000,
                .hop_seconds = 10,
                .hop_conns = 16,
                .body_bytes = 1024,
                .hop_concurrency = 2};
    static const struct option longs[] = {{"rate", required_argument, NULL, 'R'},
                                          {"hop-seconds", required_argument, NULL, 'S'},
                                          {"hop-conns", required_argument, NULL, 'C'},
                                          {"body", required_argument, NULL, 'B'},
                                          {"post", no_argument, NULL, 'P'},
                                          {"hop-concurrency", required_argument, NULL, 'W'},
                                          {"keep", no_argument, NULL, 'K'},
                                          {"client-nice", required_argument, NULL, 'N'},
                                          {"mtls", no_argument, NULL, 'M'},
                                          {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "d:c:t:r:u:", longs, NULL)) != -1) {
        switch (ch) {
        case 'd':
            o.wrk_seconds = atoi(optarg);
            break;
        case 'c':
            o.wrk_conns = atoi(optarg);
            break;
        case 't':
            o.wrk_threads = atoi(optarg);
            break;
        case 'r':
            o.runs = atoi(optarg);
            break;
        case 'u':
            o.upstream_workers = atoi(optarg);
            break;
        case 'R':
            o.rate = atoi(optarg);
            break;
        case 'S':
            o.hop_seconds = atoi(optarg);
            break;
        case 'C':
            o.hop_conns = atoi(optarg);
            break;
        case 'B':
            o.body_bytes = atoi(optarg);
            break;
        case 'P':
            o.post = true;
            break;
        case 'W':
            o.hop_concurrency = atoi(optarg);
            break;
        case 'K':
            o.keep = true;
            break;
        case 'N':
            o.client_nice = atoi(optarg);
            break;
        case 'M':
            o.mtls = true;
            break;
        default:
            return usage();
        }
    }
    const char *what = optind < argc ? argv[optind] : "all";
    if (o.wrk_seconds < 1 || o.wrk_conns < 1 || o.wrk_threads < 1 || o.runs < 1 || o.runs > 64 ||
        o.upstream_workers < 1 || o.rate < 1 || o.hop_seconds < 1 || o.hop_conns < 1 ||
        o.body_bytes < 0 || o.body_bytes > 65536 || o.hop_concurrency < 1 ||
        (strcmp(what, "all") != 0 && strcmp(what, "throughput") != 0 && strcmp(what, "hops") != 0 &&
         strcmp(what, "handshakes") != 0)) {
        return usage();
    }
    /* Sub-millisecond send times: the default 50 us timer slack would blur the schedule. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    signal(SIGPIPE, SIG_IGN);
    char cpu[256] = "?";
    char *info = wt_read_file("/proc/cpuinfo", NULL);
    const char *m = info != NULL ? strstr(info, "model name") : NULL;
    if (m != NULL && strchr(m, ':') != NULL) {
        sscanf(strchr(m, ':') + 2, "%255[^\n]", cpu);
    }
    wf_free(info);
    printf("bench_proxy: %ld CPUs (%s), shared with other work; weft %s\n\n",
           sysconf(_SC_NPROCESSORS_ONLN), cpu, wt_weft_bin());
    fflush(stdout);
    int rc = 0;
    bool all = strcmp(what, "all") == 0;
    if (all || strcmp(what, "throughput") == 0) {
        rc |= bench_throughput(&o);
    }
    if (all || strcmp(what, "hops") == 0) {
        rc |= bench_hops(&o);
    }
    if (all || strcmp(what, "handshakes") == 0) {
        rc |= bench_handshakes(&o);
    }
    return rc == 0 ? 0 : 1;
}
