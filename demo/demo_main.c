/*
 * demo_main.c - `weft demo` (see demo_main.h): a supervisor of child processes, each a `weft`
 * subcommand of this same binary, plus a load generator thread.
 *
 * Addresses: as pods each have an IP, every workload gets its own loopback address in
 * `--subnet` (127.0.10.x by default; Linux routes all of 127/8 to lo), so its sidecar serves
 * the service's port 9080 there as Kubernetes would and three reviews versions never collide.
 * The app itself listens on a free port of 127.0.0.1 that only its sidecar uses, and calls the
 * other services by name (`http://reviews:9080`) through its sidecar, which `http_proxy` names.
 * Only the ports a user opens are fixed: the collector (UI and APIs, `--port`), the gateway
 * (`--gateway-port`) and the control plane (`--control-port`, the CLI's default 15010).
 * Each is checked before anything starts: a port in use is a clear message, not a half mesh.
 *
 * Children run in their own process group (a Ctrl-C reaches the demo alone, which then stops
 * them in order: traffic, gateway, sidecars, apps, collector, control plane) and get SIGTERM if
 * the demo itself dies (PR_SET_PDEATHSIG). A child that exits unexpectedly is restarted after
 * a second; one that keeps failing (5 times in a minute) stops the demo with its log's name.
 * Every child's output goes to <data-dir>/logs/<name>.log.
 *
 * The proxies learn where to send spans from their snapshots (the control plane's
 * `--collector`), as sidecars of a real mesh do: nothing telemetry-specific is passed to them.
 */
#include "demo_main.h"

#include "demo_proc.h"

#include "wf_alloc.h"
#include "wf_buf.h"
#include "wf_clock.h"
#include "wf_err.h"
#include "wf_flags.h"
#include "wf_log.h"

#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    int64_t port;
    int64_t gateway_port;
    int64_t control_port;
    char *data_dir;
    char *config_dir;
    char *subnet;
    int64_t rate;
    int64_t jason_percent;
    int64_t error_percent;
    int64_t sampling;
    char *log_level;
} demo_cfg_t;

static const wf_flag_t demo_flags[] = {
    {"port", WF_FLAG_INT, "20001", offsetof(demo_cfg_t, port),
     "port of the collector on 127.0.0.1: the web UI, the Prometheus and trace APIs"},
    {"gateway-port", WF_FLAG_INT, "20080", offsetof(demo_cfg_t, gateway_port),
     "port of the ingress gateway on 127.0.0.1 (the bookinfo page: /productpage)"},
    {"control-port", WF_FLAG_INT, "15010", offsetof(demo_cfg_t, control_port),
     "port of the control plane on 127.0.0.1 (where `weft apply` goes by default)"},
    {"data-dir", WF_FLAG_STR, "weft-demo", offsetof(demo_cfg_t, data_dir),
     "state of the demo (store, control plane database, CA, logs), kept between runs"},
    {"config-dir", WF_FLAG_STR, "deploy/demo", offsetof(demo_cfg_t, config_dir),
     "the demo's Istio YAML (bookinfo-gateway.yaml, destination-rule-all.yaml, ...)"},
    {"subnet", WF_FLAG_STR, "127.0.10", offsetof(demo_cfg_t, subnet),
     "first three octets of the loopback addresses the workloads get (a /24 in 127.0.0.0/8)"},
    {"rate", WF_FLAG_INT, "5", offsetof(demo_cfg_t, rate),
     "requests per second the load generator sends through the gateway (0 = none)"},
    {"jason-percent", WF_FLAG_INT, "20", offsetof(demo_cfg_t, jason_percent),
     "share of those requests made logged in as jason (end-user: jason)"},
    {"error-percent", WF_FLAG_INT, "2", offsetof(demo_cfg_t, error_percent),
     "share of ratings requests answered 500"},
    {"sampling", WF_FLAG_INT, "100", offsetof(demo_cfg_t, sampling), "percent of requests traced"},
    {"log-level", WF_FLAG_STR, "warn", offsetof(demo_cfg_t, log_level),
     "log level of every process of the demo"},
    {NULL, 0, NULL, 0, NULL},
};

/* The demo application: service, version, role flags, last octet of its address. */
static const struct {
    const char *service;
    const char *version;
    const char *role;
    int octet;
} workloads[] = {
    {"productpage", "v1", "productpage", 1}, {"details", "v1", "details", 2},
    {"reviews", "v1", "reviews", 3},         {"reviews", "v2", "reviews", 4},
    {"reviews", "v3", "reviews", 5},         {"ratings", "v1", "ratings", 6},
};
#define NWORKLOADS (sizeof(workloads) / sizeof(workloads[0]))
#define GATEWAY_OCTET 100
#define SERVICE_PORT 9080
#define MAX_CHILDREN 24
#define MAX_ARGS 40
#define MAX_RESTARTS_PER_MIN 5

typedef struct {
    char name[48];
    char *argv[MAX_ARGS]; /* owned strings; argv[0] is the weft binary */
    char http_proxy[64];  /* "" = none */
    char log[PATH_MAX + 64];
    pid_t pid;
    int64_t started_ms;
    int restarts; /* within the last minute */
    int64_t restart_window_ms;
} child_t;

typedef struct {
    demo_cfg_t cfg;
    char exe[PATH_MAX];
    char dir[PATH_MAX]; /* absolute data dir */
    child_t children[MAX_CHILDREN];
    size_t nchildren;
    char control_url[64];
    char collector_url[64];
    char gateway_url[64];
    /* the load generator */
    pthread_t load_thread;
    bool load_running;
    atomic_bool load_stop;
    _Atomic uint64_t sent, ok, failed;
} demo_t;

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !stop_requested) {
    }
}

/* --- children ----------------------------------------------------------------------------- */

/* Add a child: name, then the weft arguments (NULL-terminated). */
static child_t *child_add(demo_t *d, const char *name, ...)
{
    WF_ASSERT(d->nchildren < MAX_CHILDREN);
    child_t *c = &d->children[d->nchildren++];
    memset(c, 0, sizeof(*c));
    snprintf(c->name, sizeof(c->name), "%s", name);
    snprintf(c->log, sizeof(c->log), "%s/logs/%s.log", d->dir, name);
    c->argv[0] = wf_strdup(d->exe);
    int n = 1;
    va_list ap;
    va_start(ap, name);
    for (const char *a = va_arg(ap, const char *); a != NULL; a = va_arg(ap, const char *)) {
        WF_ASSERT(n < MAX_ARGS - 3);
        c->argv[n++] = wf_strdup(a);
    }
    va_end(ap);
    c->argv[n++] = wf_strdup("--log-level");
    c->argv[n++] = wf_strdup(d->cfg.log_level);
    c->argv[n] = NULL;
    return c;
}

static int child_start(demo_t *d, child_t *c)
{
    demo_spawn_t sp = {.argv = c->argv,
                       .log = c->log,
                       .http_proxy = c->http_proxy[0] != '\0' ? c->http_proxy : NULL,
                       .own_group = true};
    (void)d;
    c->pid = demo_spawn("weft demo", &sp);
    c->started_ms = wf_mono_ns() / 1000000;
    return c->pid > 0 ? 0 : -1;
}

static void child_stop(child_t *c, int64_t timeout_ms)
{
    demo_stop(c->pid, timeout_ms);
    c->pid = 0;
}

static void stop_all(demo_t *d)
{
    /* Reverse order of start: traffic sources first, the store last (it keeps what came). */
    for (size_t i = d->nchildren; i-- > 0;) {
        child_stop(&d->children[i], 10000);
    }
}

/* Reap children that exited; restart them, or return -1 when one fails too often. */
static int supervise(demo_t *d)
{
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        for (size_t i = 0; i < d->nchildren; i++) {
            child_t *c = &d->children[i];
            if (c->pid != pid) {
                continue;
            }
            c->pid = 0;
            int64_t now = (wf_mono_ns() / 1000000);
            if (now - c->restart_window_ms > 60000) {
                c->restart_window_ms = now;
                c->restarts = 0;
            }
            if (++c->restarts > MAX_RESTARTS_PER_MIN) {
                fprintf(stderr,
                        "weft demo: %s keeps exiting (%d times in a minute); see %s. Stopping.\n",
                        c->name, c->restarts - 1, c->log);
                return -1;
            }
            fprintf(stderr, "weft demo: %s exited (%s %d); restarting it (log: %s)\n", c->name,
                    WIFSIGNALED(st) ? "signal" : "status",
                    WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), c->log);
            sleep_ms(1000);
            if (child_start(d, c) != 0) {
                return -1;
            }
        }
    }
    return 0;
}

/* --- HTTP checks (libcurl) ---------------------------------------------------------------- */

/* Wait until url answers 200 (up to timeout_ms), supervising meanwhile. */
static int wait_ok(demo_t *d, const char *what, const char *url, int64_t timeout_ms)
{
    CURL *c = curl_easy_init();
    int64_t until = (wf_mono_ns() / 1000000) + timeout_ms;
    int rc = -1;
    while (!stop_requested && (wf_mono_ns() / 1000000) < until) {
        if (demo_http_get(c, url, NULL, 2000) == 200) {
            rc = 0;
            break;
        }
        if (supervise(d) != 0) {
            break;
        }
        sleep_ms(200);
    }
    curl_easy_cleanup(c);
    if (rc != 0 && !stop_requested) {
        fprintf(stderr, "weft demo: %s did not come up within %lld s (%s); logs in %s/logs\n", what,
                (long long)(timeout_ms / 1000), url, d->dir);
    }
    return rc;
}

/* --- the load generator ------------------------------------------------------------------- */

static void *load_main(void *arg)
{
    demo_t *d = arg;
    CURL *c = curl_easy_init();
    char url[128];
    snprintf(url, sizeof(url), "%s/productpage", d->gateway_url);
    int64_t period_ms = 1000 / d->cfg.rate > 0 ? 1000 / d->cfg.rate : 1;
    int64_t next = (wf_mono_ns() / 1000000);
    uint64_t seq = 0;
    while (!atomic_load(&d->load_stop)) {
        /* jason's share spread evenly over the requests: every k-th of each hundred */
        bool jason = (seq * (uint64_t)d->cfg.jason_percent) % 100 < (uint64_t)d->cfg.jason_percent;
        seq++;
        long st = demo_http_get(c, url, jason ? "session=jason" : NULL, 15000);
        atomic_fetch_add(&d->sent, 1);
        atomic_fetch_add(st >= 200 && st < 400 ? &d->ok : &d->failed, 1);
        next += period_ms;
        int64_t now = (wf_mono_ns() / 1000000);
        if (next > now) {
            struct timespec ts = {.tv_sec = (next - now) / 1000,
                                  .tv_nsec = ((next - now) % 1000) * 1000000};
            nanosleep(&ts, NULL);
        } else if (now - next > 5000) {
            next = now; /* slow answers (a fault injected): do not burst to catch up */
        }
    }
    curl_easy_cleanup(c);
    return NULL;
}

/* --- the mesh ------------------------------------------------------------------------------ */

/* Apply a YAML file of the config dir with `weft apply`, with `number: 20080` made the gateway
 * port for the gateway file. */
static int apply(demo_t *d, const char *file)
{
    char src[PATH_MAX], dst[PATH_MAX + 64];
    snprintf(src, sizeof(src), "%s/%s", d->cfg.config_dir, file);
    FILE *in = fopen(src, "r");
    if (in == NULL) {
        fprintf(stderr,
                "weft demo: cannot read %s: %s (run from weft's source tree, or give "
                "--config-dir DIR with the demo's YAML)\n",
                src, strerror(errno));
        return -1;
    }
    snprintf(dst, sizeof(dst), "%s/applied-%s", d->dir, file);
    FILE *out = fopen(dst, "w");
    char line[1024], want[32];
    snprintf(want, sizeof(want), "number: %lld", (long long)d->cfg.gateway_port);
    while (out != NULL && fgets(line, sizeof(line), in) != NULL) {
        char *p = strstr(line, "number: 20080");
        if (p != NULL) {
            fprintf(out, "%.*s%s%s", (int)(p - line), line, want, p + strlen("number: 20080"));
        } else {
            fputs(line, out);
        }
    }
    fclose(in);
    if (out == NULL || fclose(out) != 0) {
        fprintf(stderr, "weft demo: cannot write %s\n", dst);
        return -1;
    }
    char token[PATH_MAX + 32];
    snprintf(token, sizeof(token), "%s/control/admin-token", d->dir);
    child_t c;
    memset(&c, 0, sizeof(c));
    snprintf(c.log, sizeof(c.log), "%s/logs/apply.log", d->dir);
    char *argv[] = {d->exe,         "apply",        "-f",  dst, "--control",
                    d->control_url, "--token-file", token, NULL};
    memcpy(c.argv, argv, sizeof(argv));
    snprintf(c.name, sizeof(c.name), "apply");
    if (child_start(d, &c) != 0) {
        return -1;
    }
    int st;
    while (waitpid(c.pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "weft demo: `weft apply -f %s` failed; see %s\n", dst, c.log);
        return -1;
    }
    return 0;
}

static int start_mesh(demo_t *d)
{
    const demo_cfg_t *cfg = &d->cfg;
    char buf[8][PATH_MAX + 64];
    /* control plane: telemetry goes to the collector, every request traced */
    snprintf(buf[0], sizeof(buf[0]), "127.0.0.1:%lld", (long long)cfg->control_port);
    snprintf(buf[1], sizeof(buf[1]), "%s/control", d->dir);
    snprintf(buf[2], sizeof(buf[2]), "%lld", (long long)cfg->sampling);
    child_t *c = child_add(d, "control", "control", "--listen", buf[0], "--data-dir", buf[1],
                           "--collector", d->collector_url, "--sampling", buf[2], NULL);
    if (child_start(d, c) != 0) {
        return -1;
    }
    snprintf(buf[3], sizeof(buf[3]), "%s/healthz", d->control_url);
    if (wait_ok(d, "the control plane", buf[3], 20000) != 0) {
        return -1;
    }
    /* collector: scrapes every proxy the control plane knows (its list re-read every 2 s, so a
     * new sidecar is scraped soon) every 2 s, so the graph has rates a few seconds after the
     * start (with 5 s: 12 s), and reads the mesh's configuration from it (the Mesh page, the
     * graph's badges), both with the control plane's read token (made on its first start) */
    char token[PATH_MAX + 32];
    snprintf(token, sizeof(token), "%s/control/read-token", d->dir);
    snprintf(buf[0], sizeof(buf[0]), "127.0.0.1:%lld", (long long)cfg->port);
    snprintf(buf[1], sizeof(buf[1]), "%s/collector", d->dir);
    snprintf(buf[2], sizeof(buf[2]), "%s/v1/targets", d->control_url);
    c = child_add(d, "collector", "collector", "--listen", buf[0], "--data-dir", buf[1],
                  "--scrape-sd", buf[2], "--scrape-sd-bearer-file", token, "--scrape-sd-refresh",
                  "2s", "--scrape-interval", "2s", "--scrape-timeout", "2s", "--otlp-listen", "off",
                  "--otlp-grpc-listen", "off", "--zipkin-listen", "off", "--control",
                  d->control_url, "--control-token-file", token, NULL);
    if (child_start(d, c) != 0) {
        return -1;
    }
    snprintf(buf[3], sizeof(buf[3]), "%s/-/ready", d->collector_url);
    if (wait_ok(d, "the collector", buf[3], 30000) != 0) {
        return -1;
    }
    /* the application: each instance and its sidecar at its own address */
    char boot[PATH_MAX + 32];
    snprintf(boot, sizeof(boot), "%s/control/bootstrap-token", d->dir);
    int app_ports[NWORKLOADS];
    if (demo_free_ports(app_ports, NWORKLOADS) != 0) {
        fprintf(stderr, "weft demo: no free port on 127.0.0.1 for the applications\n");
        return -1;
    }
    for (size_t i = 0; i < NWORKLOADS; i++) {
        const char *svc = workloads[i].service, *ver = workloads[i].version;
        char ip[32], name[48], app_listen[32], in[48], out[48], admin[48], port[16], sa[48];
        snprintf(ip, sizeof(ip), "%s.%d", cfg->subnet, workloads[i].octet);
        int app_port = app_ports[i];
        snprintf(app_listen, sizeof(app_listen), "127.0.0.1:%d", app_port);
        snprintf(port, sizeof(port), "%d", app_port);
        snprintf(in, sizeof(in), "%s:%d", ip, SERVICE_PORT);
        snprintf(out, sizeof(out), "%s:15001", ip);
        snprintf(admin, sizeof(admin), "%s:15000", ip);
        snprintf(sa, sizeof(sa), "bookinfo-%s", svc);
        snprintf(name, sizeof(name), "%s-%s", svc, ver);
        snprintf(buf[4], sizeof(buf[4]), "%lld",
                 strcmp(svc, "ratings") == 0 ? (long long)cfg->error_percent : 0LL);
        c = child_add(d, name, "demo-app", "--role", workloads[i].role, "--version", ver,
                      "--listen", app_listen, "--name", name, "--error-percent", buf[4], NULL);
        snprintf(c->http_proxy, sizeof(c->http_proxy), "http://%s", out);
        if (child_start(d, c) != 0) {
            return -1;
        }
        snprintf(name, sizeof(name), "%s-%s-sidecar", svc, ver);
        c = child_add(d, name, "proxy", "--service", svc, "--version", ver, "--app-port", port,
                      "--inbound", in, "--outbound", out, "--admin", admin, "--service-account", sa,
                      "--concurrency", "1", "--control", d->control_url, "--bootstrap-token-file",
                      boot, NULL);
        if (child_start(d, c) != 0) {
            return -1;
        }
    }
    /* the ingress gateway */
    char gw_admin[48], gw_in[48];
    snprintf(gw_admin, sizeof(gw_admin), "%s.%d:15000", cfg->subnet, GATEWAY_OCTET);
    snprintf(gw_in, sizeof(gw_in), "%s.%d:15006", cfg->subnet, GATEWAY_OCTET);
    c = child_add(d, "istio-ingressgateway", "proxy", "--mode", "gateway", "--service",
                  "istio-ingressgateway", "--version", "", "--namespace", "istio-system",
                  "--labels", "istio=ingressgateway", "--service-account", "istio-ingressgateway",
                  "--gateway-bind", "127.0.0.1", "--admin", gw_admin, "--inbound", gw_in,
                  "--concurrency", "1", "--control", d->control_url, "--bootstrap-token-file", boot,
                  NULL);
    if (child_start(d, c) != 0) {
        return -1;
    }
    if (apply(d, "destination-rule-all.yaml") != 0 || apply(d, "bookinfo-gateway.yaml") != 0) {
        return -1;
    }
    snprintf(buf[3], sizeof(buf[3]), "%s/productpage", d->gateway_url);
    return wait_ok(d, "the bookinfo page through the gateway", buf[3], 60000);
}

static void print_banner(const demo_t *d)
{
    /* The CLI commands below are this same binary: its directory goes first in PATH. */
    const char *slash = strrchr(d->exe, '/');
    int exe_dir_len = slash != NULL ? (int)(slash - d->exe) : 1;
    printf(
        "\nweft demo is running: bookinfo behind an ingress gateway, %lld requests/s.\n\n"
        "  Web UI (graph, traces, metrics)   %s/\n"
        "  Grafana Prometheus data source    %s\n"
        "  Jaeger / Zipkin trace API          %s  (Grafana's Jaeger data source)\n"
        "  The application                   %s/productpage\n"
        "  Control plane                     %s\n\n"
        "Try next (in another terminal, from weft's source tree):\n"
        "  export PATH=\"%.*s:$PATH\" WEFT_CONTROL=%s WEFT_TOKEN_FILE=%s/control/admin-token \\\n"
        "         WEFT_BOOTSTRAP_TOKEN_FILE=%s/control/bootstrap-token\n"
        "  weft apply -f %s/virtual-service-all-v1.yaml            # every service to v1\n"
        "  weft apply -f %s/virtual-service-reviews-80-20.yaml     # traffic shifting\n"
        "  weft apply -f %s/virtual-service-reviews-jason-v2-v3.yaml  # route by user\n"
        "  weft apply -f %s/virtual-service-ratings-test-abort.yaml   # 500s for jason\n"
        "  weft apply -f %s/virtual-service-ratings-test-delay.yaml   # 7 s for jason: trips "
        "productpage's 3 s timeout\n"
        "  weft apply -f %s/virtual-service-reviews-timeout.yaml    # ... or a 0.5 s route "
        "timeout (504 UT)\n"
        "  weft proxy-status; weft get vs\n"
        "  weft run --service client -- curl -s http://productpage:9080/health   # your program "
        "in the mesh\n\n"
        "Logs: %s/logs/. Ctrl-C stops everything.\n",
        (long long)d->cfg.rate, d->collector_url, d->collector_url, d->collector_url,
        d->gateway_url, d->control_url, exe_dir_len, d->exe, d->control_url, d->dir, d->dir,
        d->cfg.config_dir, d->cfg.config_dir, d->cfg.config_dir, d->cfg.config_dir,
        d->cfg.config_dir, d->cfg.config_dir, d->dir);
    fflush(stdout);
}

/* Flags -> checks; 0, or 2 with a message. */
static int check_config(demo_t *d)
{
    demo_cfg_t *c = &d->cfg;
    const int64_t ports[3] = {c->port, c->gateway_port, c->control_port};
    static const char *const names[3] = {"--port", "--gateway-port", "--control-port"};
    for (int i = 0; i < 3; i++) {
        if (ports[i] < 1 || ports[i] > 65535) {
            fprintf(stderr, "weft demo: %s must be 1..65535\n", names[i]);
            return 2;
        }
        for (int j = 0; j < i; j++) {
            if (ports[j] == ports[i]) {
                fprintf(stderr, "weft demo: %s and %s are both %lld\n", names[j], names[i],
                        (long long)ports[i]);
                return 2;
            }
        }
    }
    if (c->rate < 0 || c->rate > 1000 || c->jason_percent < 0 || c->jason_percent > 100 ||
        c->error_percent < 0 || c->error_percent > 100 || c->sampling < 0 || c->sampling > 100) {
        fprintf(stderr, "weft demo: --rate must be 0..1000; --jason-percent, --error-percent and "
                        "--sampling 0..100\n");
        return 2;
    }
    int o[3];
    char tail;
    if (sscanf(c->subnet, "%d.%d.%d%c", &o[0], &o[1], &o[2], &tail) != 3 || o[0] != 127 ||
        o[1] < 0 || o[1] > 255 || o[2] < 0 || o[2] > 255) {
        fprintf(stderr, "weft demo: --subnet must be three octets in 127/8, like 127.0.10\n");
        return 2;
    }
    for (int i = 0; i < 3; i++) {
        if (!demo_port_free("127.0.0.1", (int)ports[i])) {
            fprintf(stderr,
                    "weft demo: 127.0.0.1:%lld is in use (another weft demo, or a server on "
                    "that port): stop it, or choose another port with %s\n",
                    (long long)ports[i], names[i]);
            return 2;
        }
    }
    char ip[32];
    snprintf(ip, sizeof(ip), "%s.1", c->subnet);
    if (!demo_port_free(ip, SERVICE_PORT)) {
        fprintf(stderr,
                "weft demo: %s:%d is in use (another weft demo?): stop it, or give this one other "
                "addresses with --subnet 127.0.11\n",
                ip, SERVICE_PORT);
        return 2;
    }
    return 0;
}

int demo_main(int argc, char **argv)
{
    demo_t *d = wf_calloc(1, sizeof(*d));
    char err[256];
    int status = 2;
    int rc = wf_flags_parse(demo_flags, &d->cfg, argc, argv, NULL, err, sizeof(err));
    if (rc == 1) {
        printf("Usage: weft demo [flags]\n\nThe whole mesh on this machine: control plane, "
               "collector and UI, an ingress gateway,\nthe bookinfo-shaped application with a "
               "sidecar per instance, and steady traffic.\n\nFlags:\n");
        wf_flags_print_help(demo_flags, stdout);
        status = 0;
        goto out;
    }
    if (rc != 0) {
        fprintf(stderr, "weft demo: %s\n", err);
        goto out;
    }
    wf_log_level_t level;
    if (wf_log_parse_level(d->cfg.log_level, &level) != 0) {
        fprintf(stderr, "weft demo: invalid --log-level %s\n", d->cfg.log_level);
        goto out;
    }
    if (check_config(d) != 0) {
        goto out;
    }
    ssize_t n = readlink("/proc/self/exe", d->exe, sizeof(d->exe) - 1);
    if (n <= 0) {
        fprintf(stderr, "weft demo: cannot find its own binary: %s\n", strerror(errno));
        goto out;
    }
    d->exe[n] = '\0';
    char logs[PATH_MAX];
    if ((mkdir(d->cfg.data_dir, 0755) != 0 && errno != EEXIST) ||
        realpath(d->cfg.data_dir, d->dir) == NULL ||
        snprintf(logs, sizeof(logs), "%s/logs", d->dir) >= (int)sizeof(logs) ||
        (mkdir(logs, 0755) != 0 && errno != EEXIST)) {
        fprintf(stderr, "weft demo: cannot use --data-dir %s: %s\n", d->cfg.data_dir,
                strerror(errno));
        goto out;
    }
    snprintf(d->control_url, sizeof(d->control_url), "http://127.0.0.1:%lld",
             (long long)d->cfg.control_port);
    snprintf(d->collector_url, sizeof(d->collector_url), "http://127.0.0.1:%lld",
             (long long)d->cfg.port);
    snprintf(d->gateway_url, sizeof(d->gateway_url), "http://127.0.0.1:%lld",
             (long long)d->cfg.gateway_port);

    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    printf("weft demo: starting the mesh (data and logs in %s)...\n", d->dir);
    fflush(stdout);
    status = 1;
    if (start_mesh(d) != 0) {
        goto stop;
    }
    if (d->cfg.rate > 0) {
        d->load_running = pthread_create(&d->load_thread, NULL, load_main, d) == 0;
    }
    print_banner(d);
    status = 0;
    int64_t next_report = (wf_mono_ns() / 1000000) + 60000;
    while (!stop_requested) {
        if (supervise(d) != 0) {
            status = 1;
            break;
        }
        if ((wf_mono_ns() / 1000000) >= next_report) {
            printf("weft demo: %llu requests sent, %llu answered 2xx/3xx, %llu failed\n",
                   (unsigned long long)atomic_load(&d->sent),
                   (unsigned long long)atomic_load(&d->ok),
                   (unsigned long long)atomic_load(&d->failed));
            fflush(stdout);
            next_report += 60000;
        }
        sleep_ms(200);
    }
stop:
    printf("weft demo: stopping...\n");
    fflush(stdout);
    if (d->load_running) {
        atomic_store(&d->load_stop, true);
        pthread_join(d->load_thread, NULL);
    }
    stop_all(d);
    curl_global_cleanup();
    printf("weft demo: stopped.\n");
out:
    for (size_t i = 0; i < d->nchildren; i++) {
        for (char **a = d->children[i].argv; *a != NULL; a++) {
            wf_free(*a);
        }
    }
    wf_flags_free(demo_flags, &d->cfg);
    wf_free(d);
    return status;
}
