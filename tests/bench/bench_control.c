/*
 * bench_control.c - config push figures of the real `weft control` (issue #6's benchmark):
 * 1,000 services x 2 versions registered (2,000 workloads), a DestinationRule with subsets v1/v2
 * and a VirtualService per service, and 2,000 simulated proxies holding the snapshot long-poll
 * (tests/testutil/wt_pollers.c, one epoll thread). Then changes are applied and timed from the
 * start of the apply until every poller holds the version it produced.
 *
 * Run (after `ninja -C build`, WEFT_BENCH=ON):
 *   build/tests/bench_control                     # 1,000 services, 2,000 pollers
 *   build/tests/bench_control --services 200      # quicker
 *   build/tests/bench_control --egress 5          # each service calls 5 others (Sidecars)
 *   flags: --services N (1000) --pollers N (2 x services, at most that) --egress K (0: every
 *          proxy sees every service) --api (apply with POST /v1/apply instead of the `weft
 *          apply` CLI) --keep (leave the data directory) --plain (polls without
 *          Accept-Encoding: gzip; the proxy asks for gzip)
 * The weft binary is $WEFT_BIN, else ../weft next to this program.
 *
 * Steps:
 *   1. `weft control --lease-ttl 1h` on a fresh data directory (no heartbeats needed);
 *      2 x services POST /v1/register over 8 keep-alive connections; one POST /v1/apply of the
 *      DestinationRules and VirtualServices (every VS: 100 % v1, 0 % v2).
 *   2. The pollers start from version 0: time until each holds its first snapshot.
 *   3. Once every poll is held by the server: `weft apply -f` of one VirtualService (svc-0007:
 *      50/50), then separately of every VirtualService at once (all 20/80). For each: the
 *      time from the apply's start until each poller holds a version newer than all before
 *      (p50, p99, max over the pollers); the control plane's CPU seconds (utime + stime from
 *      /proc/<pid>/stat) and its VmRSS / VmHWM (/proc/<pid>/status) over that window; the
 *      documents and bytes pushed. A sample of the documents is parsed to check that the
 *      change is in them.
 * Figures only: nothing is asserted. The pollers run on the same (shared) machine, so their
 * CPU (printed) is taken from the control plane's. There is no istiod here: its figure is
 * the documented anchor of issue #6 (1 vCPU and 1.5 GB for 1,000 services / 2,000 sidecars).
 */
#include "wf_alloc.h"
#include "wf_buf.h"
#include "wf_clock.h"
#include "wt_pollers.h"
#include "wt_control.h"
#include "wt_util.h"

#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define GOAL_CONVERGE_S 1.0
#define GOAL_RSS_MB 100.0
#define ISTIOD_RSS_MB 1500.0
#define ISTIOD_VCPU 1.0
#define CONVERGE_WAIT_MS 600000 /* how long the pollers may take to converge */
#define SAMPLE_EVERY 499        /* pollers 0, 499, ... have their documents parsed and checked */

typedef struct {
    int services;
    int pollers;
    bool api;
    bool keep;
    bool plain; /* polls without Accept-Encoding: gzip (the proxy asks for gzip) */
    int egress; /* > 0: a Sidecar per service limits its egress to the next `egress` services */
} opts_t;

typedef struct {
    wt_control_t w;
    bool cli_failed; /* `weft apply` failed once: the API is used from then on */
} cp_t;

/* What the sampled pollers' documents said: written on the pollers' thread, read after a
 * wait for the pollers (their lock orders the two). */
typedef struct {
    int64_t *version;
    long *v2_sum;
    long *v2_dests;
} seen_t;

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

/* A "Key:   N kB" line of /proc/<pid>/status in MB, or -1. */
static double proc_mb(pid_t pid, const char *key)
{
    char path[96];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    char *text = wt_read_file(path, NULL);
    double v = -1;
    size_t kl = strlen(key);
    for (char *p = text; p != NULL && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, key, kl) == 0 && p[kl] == ':') {
            v = (double)strtol(p + kl + 1, NULL, 10) / 1024.0;
        }
    }
    wf_free(text);
    return v;
}

/* This process's CPU seconds (the pollers' thread is nearly all of it): user, or system. */
static double self_cpu_s(bool sys)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    struct timeval tv = sys ? ru.ru_stime : ru.ru_utime;
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static const char *weft_bin(void)
{
    static char p[4200];
    const char *env = getenv("WEFT_BIN");
    if (env != NULL) {
        return env;
    }
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0) {
        return "weft";
    }
    self[n] = '\0';
    snprintf(p, sizeof(p), "%s/../weft", dirname(self));
    return p;
}

static size_t batch(cp_t *c, const char *token, wt_req_t *r, size_t n)
{
    size_t ok = 0;
    bool shown = false;
    wt_http_batch(c->w.port, token, r, n, 8, 120000, true);
    for (size_t i = 0; i < n; i++) {
        if (r[i].status == 200) {
            ok++;
        } else if (!shown) {
            fprintf(stderr, "bench_control: %s %s: %d %.300s\n", r[i].method, r[i].path,
                    r[i].status, r[i].answer != NULL ? r[i].answer : "");
            shown = true;
        }
        wf_free(r[i].answer);
        r[i].answer = NULL;
    }
    return ok;
}

/* The VirtualServices of services [from, to) with weights w1/w2 (and with drs their
 * DestinationRules): as {"items":[...]} for the API, or as a multi-document YAML stream of
 * JSON documents (JSON is YAML) for `weft apply -f`. */
static char *mesh_docs(const opts_t *o, int from, int to, int w1, int w2, bool drs, bool yaml)
{
    wf_buf_t b = WF_BUF_INIT;
    wf_buf_puts(&b, yaml ? "" : "{\"items\":[");
    for (int s = from; s < to; s++) {
        char *vs = wt_mesh_vs(s, w1, w2);
        wf_buf_printf(&b, "%s%s", yaml ? "---\n" : (s > from ? "," : ""), vs);
        wf_free(vs);
        if (drs) {
            char *dr = wt_mesh_dr(s);
            wf_buf_printf(&b, "%s%s", yaml ? "\n---\n" : ",", dr);
            wf_free(dr);
        }
        if (drs && o->egress > 0) {
            char *sc = wt_mesh_sidecar(s, o->services, o->egress);
            wf_buf_printf(&b, "%s%s", yaml ? "\n---\n" : ",", sc);
            wf_free(sc);
        }
        wf_buf_puts(&b, yaml ? "\n" : "");
    }
    wf_buf_puts(&b, yaml ? "" : "]}");
    wf_buf_cstr(&b);
    return (char *)wf_buf_detach(&b, NULL);
}

static int apply_api(cp_t *c, const opts_t *o, int from, int to, int w1, int w2, bool drs)
{
    char *body = mesh_docs(o, from, to, w1, w2, drs, false);
    wt_req_t r = {"POST", "/v1/apply", body, 0, NULL};
    size_t ok = batch(c, c->w.admin, &r, 1);
    wf_free(body);
    return ok == 1 ? 0 : -1;
}

/* `weft apply -f FILE` with WEFT_CONTROL and WEFT_TOKEN_FILE; 0 when it exits 0. */
static int apply_cli(cp_t *c, const opts_t *o, int from, int to, int w1, int w2)
{
    char file[700], log[700], url[64];
    snprintf(file, sizeof(file), "%s/change.yaml", c->w.dir);
    snprintf(log, sizeof(log), "%s/apply.log", c->w.dir);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", c->w.port);
    char *text = mesh_docs(o, from, to, w1, w2, false, true);
    wt_write_file(file, text);
    wf_free(text);
    setenv("WEFT_CONTROL", url, 1);
    setenv("WEFT_TOKEN_FILE", c->w.admin_file, 1);
    char *argv[] = {(char *)weft_bin(), "apply", "-f", file, NULL};
    int st = wt_wait(wt_spawn(argv, log), 60000);
    if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        char *out = wt_read_file(log, NULL);
        fprintf(stderr, "bench_control: `weft apply -f` failed (%.300s); using POST /v1/apply\n",
                out != NULL ? out : "");
        wf_free(out);
        return -1;
    }
    return 0;
}

static void on_doc(void *user, size_t idx, int64_t version, const char *body, size_t len)
{
    seen_t *s = user;
    if (body != NULL) {
        s->version[idx] = version;
        s->v2_sum[idx] = wt_mesh_v2_weights(body, len, &s->v2_dests[idx]);
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The figures of one convergence (times relative to t0, ns). */
static void print_latencies(const char *what, wt_pollers_t *p, size_t n, int64_t t0,
                            size_t affected)
{
    int64_t *lat = wf_calloc(n, sizeof(int64_t));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t t = wt_pollers_reached_ns(p, i);
        if (t >= 0) {
            lat[k++] = t - t0;
        }
    }
    qsort(lat, k, sizeof(int64_t), cmp_i64);
    if (k == 0) {
        printf("  %-34s no poller reached the new version\n", what);
    } else {
        printf("  %-34s %zu/%zu pollers; first %.0f ms, p50 %.0f ms, p99 %.0f ms, max %.0f ms\n",
               what, k, affected, (double)lat[0] / 1e6, (double)lat[k / 2] / 1e6,
               (double)lat[(k * 99) / 100 < k ? (k * 99) / 100 : k - 1] / 1e6,
               (double)lat[k - 1] / 1e6);
    }
    wf_free(lat);
}

/* The last documents of the sampled pollers (every `every`-th, of those `which` selects) hold
 * the change: nsvc v2 destinations weighing want. */
static void check_docs(const seen_t *seen, size_t n, size_t every, const bool *which,
                       int64_t target, long want, int nsvc)
{
    size_t good = 0, k = 0;
    for (size_t i = 0; i < n; i += every) {
        if (which != NULL && !which[i]) {
            continue;
        }
        k++;
        if (seen->version[i] >= target && seen->v2_dests[i] == nsvc && seen->v2_sum[i] == want) {
            good++;
        } else {
            printf("  poller %zu: version %lld, %ld v2 destinations, v2 weights %ld (want %d, "
                   "%ld)\n",
                   i, (long long)seen->version[i], seen->v2_dests[i], seen->v2_sum[i], nsvc, want);
        }
    }
    printf("  documents checked                   %zu of %zu sampled pollers hold the change%s\n",
           good, k, good == k ? "" : " (WRONG)");
}

/* Which pollers' documents are parsed: few of the large ones, every service's v1 of the small. */
static size_t sample_every(const opts_t *o)
{
    return o->egress > 0 ? 2 : SAMPLE_EVERY;
}

typedef struct {
    double converge_s; /* max poller; < 0 when not every poller converged */
    double cpu_s;
    double rss_mb, hwm_mb;
    double mb_pushed;
} phase_t;

/* Apply a change and time the pollers' convergence to the version it produces. */
static int phase(const char *what, cp_t *c, wt_pollers_t *p, size_t n, const opts_t *o,
                 seen_t *seen, int from, int to, int w1, int w2, long want_v2, phase_t *out)
{
    /* With Sidecars, a proxy sees a change only to the services in its egress: the others get
     * no new document. Poller i is service i / 2's. */
    bool *which = NULL;
    int nsvc = o->services;
    if (o->egress > 0) {
        which = wf_calloc(n, sizeof(bool));
        for (size_t i = 0; i < n; i++) {
            int svc = (int)(i / 2);
            for (int t = from; t < to && !which[i]; t++) {
                int d = (t - svc + o->services) % o->services;
                which[i] = d >= 1 && d <= o->egress;
            }
        }
        nsvc = o->egress;
    }
    wt_pollers_stats_t s0, s1;
    /* No build pending (so the next version is the change's), and every poll held. */
    if (wt_pollers_settle(p, 1500, 120000) < 0) {
        printf("  the pollers did not settle on one version\n");
    }
    size_t held = wt_pollers_wait_waiting(p, n, 60000);
    wt_pollers_stats(p, &s0);
    int64_t target = s0.max_version + 1;
    printf("%s (%zu of %zu polls held before the change, version %lld)\n", what, held, n,
           (long long)s0.max_version);
    wt_pollers_target_some(p, target, which);
    double cpu0 = proc_cpu_s(c->w.pid), user0 = self_cpu_s(false), sys0 = self_cpu_s(true);
    int64_t t0 = wf_mono_ns();
    const char *how = "weft apply -f";
    if (o->api || c->cli_failed || apply_cli(c, o, from, to, w1, w2) != 0) {
        c->cli_failed = !o->api;
        how = "POST /v1/apply";
        t0 = wf_mono_ns();
        if (apply_api(c, o, from, to, w1, w2, false) != 0) {
            wf_free(which);
            return -1;
        }
    }
    int64_t t_applied = wf_mono_ns();
    size_t reached = wt_pollers_wait(p, CONVERGE_WAIT_MS);
    int64_t t_end = wf_mono_ns();
    double cpu1 = proc_cpu_s(c->w.pid), user1 = self_cpu_s(false), sys1 = self_cpu_s(true);
    wt_pollers_stats(p, &s1);
    printf("  applied with %-20s %.0f ms\n", how, (double)(t_applied - t0) / 1e6);
    size_t affected = n;
    for (size_t i = 0; which != NULL && i < n; i++) {
        affected -= !which[i];
    }
    print_latencies("converged:", p, n, t0, affected);
    out->converge_s = reached == n ? (double)(t_end - t0) / 1e9 : -1;
    out->cpu_s = cpu1 - cpu0;
    out->rss_mb = proc_mb(c->w.pid, "VmRSS");
    out->hwm_mb = proc_mb(c->w.pid, "VmHWM");
    out->mb_pushed = (double)(s1.body_bytes - s0.body_bytes) / 1e6;
    uint64_t docs = s1.docs - s0.docs;
    printf("  control plane CPU over the window   %.2f s (pollers' own CPU %.2f s user + %.2f s "
           "system)\n",
           out->cpu_s, user1 - user0, sys1 - sys0);
    printf("  control plane RSS after / peak      %.1f MB / %.1f MB\n", out->rss_mb, out->hwm_mb);
    printf("  pushed                              %llu documents, %.1f MB (%.0f kB each)\n",
           (unsigned long long)docs, out->mb_pushed,
           docs > 0 ? (double)(s1.body_bytes - s0.body_bytes) / 1e3 / (double)docs : 0.0);
    if (s1.bad_status != s0.bad_status || s1.conn_errors != s0.conn_errors) {
        printf("  errors: %llu unexpected statuses (last %d), %llu connection errors\n",
               (unsigned long long)(s1.bad_status - s0.bad_status), s1.last_bad_status,
               (unsigned long long)(s1.conn_errors - s0.conn_errors));
    }
    check_docs(seen, n, sample_every(o), which, target, want_v2, nsvc);
    wf_free(which);
    return reached == n ? 0 : -1;
}

static int run(const opts_t *o)
{
    cp_t c = {0};
    int rc = 1;
    size_t nw = (size_t)o->services * 2, np = (size_t)o->pollers;
    char **ids = wf_calloc(nw, sizeof(char *));
    char **bodies = wf_calloc(nw, sizeof(char *));
    wt_req_t *regs = wf_calloc(nw, sizeof(wt_req_t));
    seen_t seen = {wf_calloc(np, sizeof(int64_t)), wf_calloc(np, sizeof(long)),
                   wf_calloc(np, sizeof(long))};
    wt_pollers_t *p = NULL;
    phase_t one = {0}, all = {0};

    if (wt_control_new(&c.w, "bench-control", (const char *const[]){"--lease-ttl", "1h", NULL}) !=
        0) {
        goto out;
    }
    printf("weft control pid %d, data %s\n", (int)c.w.pid, c.w.data);
    for (int s = 0; s < o->services; s++) {
        for (int v = 1; v <= 2; v++) {
            size_t i = (size_t)s * 2 + (size_t)v - 1;
            ids[i] = wt_mesh_id(s, v);
            bodies[i] = wt_mesh_register_body(s, v);
            regs[i] = (wt_req_t){"POST", "/v1/register", bodies[i], 0, NULL};
        }
    }
    int64_t t = wf_mono_ns();
    size_t ok = batch(&c, c.w.boot, regs, nw);
    printf("registered %zu/%zu workloads in %.0f ms (8 connections)\n", ok, nw,
           (double)(wf_mono_ns() - t) / 1e6);
    t = wf_mono_ns();
    if (ok != nw || apply_api(&c, o, 0, o->services, 100, 0, true) != 0) {
        goto out;
    }
    printf("applied %d DestinationRules + %d VirtualServices%s in one POST /v1/apply: %.0f ms\n",
           o->services, o->services, o->egress > 0 ? " + as many Sidecars" : "",
           (double)(wf_mono_ns() - t) / 1e6);
    printf("control plane before the pollers: RSS %.1f MB, CPU %.2f s\n", proc_mb(c.w.pid, "VmRSS"),
           proc_cpu_s(c.w.pid));

    wt_pollers_opts_t po = {.port = c.w.port,
                            .token = c.w.boot,
                            .keep_every = sample_every(o),
                            .on_doc = on_doc,
                            .user = &seen,
                            .gzip = !o->plain};
    if (wt_pollers_start(&po, (const char *const *)ids, np, &p) != 0) {
        goto out;
    }
    wt_pollers_target(p, 1);
    t = wf_mono_ns();
    double cpu0 = proc_cpu_s(c.w.pid);
    size_t reached = wt_pollers_wait(p, CONVERGE_WAIT_MS);
    wt_pollers_stats_t st;
    wt_pollers_stats(p, &st);
    printf("initial sync: %zu/%zu pollers hold a snapshot (version %lld) after %.0f ms; %.1f MB "
           "in %llu documents; control plane CPU %.2f s, RSS %.1f MB (peak %.1f MB)\n",
           reached, np, (long long)st.max_version, (double)(wf_mono_ns() - t) / 1e6,
           (double)st.body_bytes / 1e6, (unsigned long long)st.docs, proc_cpu_s(c.w.pid) - cpu0,
           proc_mb(c.w.pid, "VmRSS"), proc_mb(c.w.pid, "VmHWM"));
    if (reached != np) {
        printf("  not every poller got a snapshot: %llu unexpected statuses (last %d), %llu "
               "connection errors\n",
               (unsigned long long)st.bad_status, st.last_bad_status,
               (unsigned long long)st.conn_errors);
        goto out;
    }
    printf("\n");
    int r1 = phase("change 1: one VirtualService (svc-0007 to 50/50)", &c, p, np, o, &seen, 7, 8,
                   50, 50, 50, &one);
    printf("\n");
    int r2 = phase("change 2: every VirtualService at once (20/80)", &c, p, np, o, &seen, 0,
                   o->services, 20, 80, 80L * (o->egress > 0 ? o->egress : o->services), &all);

    printf("\nsummary (%d services, %zu workloads, %zu pollers; 2 shared vCPUs):\n", o->services,
           nw, np);
    printf("  %-28s %12s %12s %14s\n", "", "1 VS change", "all VS", "goal / istiod");
    char c1[32], c2[32];
    snprintf(c1, sizeof(c1), one.converge_s < 0 ? "not all" : "%.3f s", one.converge_s);
    snprintf(c2, sizeof(c2), all.converge_s < 0 ? "not all" : "%.3f s", all.converge_s);
    printf("  %-28s %12s %12s %14s\n", "converge (max poller)", c1, c2, "< 1 s");
    printf("  %-28s %10.2f s %10.2f s %14s\n", "control plane CPU", one.cpu_s, all.cpu_s, "");
    printf("  %-28s %9.1f MB %9.1f MB %14s\n", "control plane RSS peak", one.hwm_mb, all.hwm_mb,
           "< 100 MB");
    printf("  %-28s %9.1f MB %9.1f MB %14s\n", "pushed", one.mb_pushed, all.mb_pushed, "");
    printf("  goal converge < %.0f s: %s; goal RSS < %.0f MB: %s\n", GOAL_CONVERGE_S,
           one.converge_s >= 0 && all.converge_s >= 0 && one.converge_s < GOAL_CONVERGE_S &&
                   all.converge_s < GOAL_CONVERGE_S
               ? "MET"
               : "NOT MET",
           GOAL_RSS_MB, all.hwm_mb < GOAL_RSS_MB ? "MET" : "NOT MET");
    printf("  istiod anchor (documented, not run here): %.0f vCPU and %.0f MB for 1,000 services "
           "/ 2,000 sidecars; weft peak RSS is %.1f %% of it\n",
           ISTIOD_VCPU, ISTIOD_RSS_MB, 100.0 * all.hwm_mb / ISTIOD_RSS_MB);
    rc = r1 == 0 && r2 == 0 ? 0 : 1;
out:
    wt_pollers_stop(p);
    wt_control_stop(&c.w);
    if (o->keep && c.w.dir != NULL) {
        printf("kept %s\n", c.w.dir);
        wf_free(c.w.dir);
        c.w.dir = NULL;
    }
    wt_control_free(&c.w);
    for (size_t i = 0; i < nw; i++) {
        wf_free(ids[i]);
        wf_free(bodies[i]);
    }
    wf_free(ids);
    wf_free(bodies);
    wf_free(regs);
    wf_free(seen.version);
    wf_free(seen.v2_sum);
    wf_free(seen.v2_dests);
    return rc;
}

int main(int argc, char **argv)
{
    opts_t o = {.services = 1000, .pollers = -1};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--services") == 0 && i + 1 < argc) {
            o.services = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--pollers") == 0 && i + 1 < argc) {
            o.pollers = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--api") == 0) {
            o.api = true;
        } else if (strcmp(argv[i], "--egress") == 0 && i + 1 < argc) {
            o.egress = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--keep") == 0) {
            o.keep = true;
        } else if (strcmp(argv[i], "--plain") == 0) {
            o.plain = true;
        } else {
            fprintf(stderr,
                    "usage: bench_control [--services N] [--pollers N] [--egress K] [--api] "
                    "[--keep] [--plain]\n");
            return 2;
        }
    }
    if (o.services < 8 || o.services > 2500) {
        fprintf(stderr, "bench_control: --services must be 8..2500 (one apply holds 5,000)\n");
        return 2;
    }
    if (o.egress < 0 || o.egress >= o.services) {
        fprintf(stderr, "bench_control: --egress must be 0..services-1\n");
        return 2;
    }
    if (o.pollers < 0 || o.pollers > o.services * 2) {
        o.pollers = o.services * 2;
    }
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0); /* figures appear as they come, also in a log file */
    long nofile = wt_raise_nofile();
    setenv("WEFT_BIN", weft_bin(), 0);
    printf("bench_control: %ld CPUs, shared with other work; weft %s; RLIMIT_NOFILE %ld\n",
           sysconf(_SC_NPROCESSORS_ONLN), weft_bin(), nofile);
    fflush(stdout);
    return run(&o);
}
