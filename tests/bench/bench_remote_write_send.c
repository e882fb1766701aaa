/*
 * bench_remote_write_send.c - how fast weft's collector forwards what it ingests to a remote
 * Prometheus (--remote-write), beside Prometheus 2.42 doing the same job with its own
 * remote_write (a Prometheus receiving the samples and forwarding them from its WAL).
 *
 * The data: --series series with 24 Istio-shaped labels (about 900 bytes of labels each),
 * --rounds samples each, pushed as remote_write requests of 2000 samples over one keep-alive
 * connection. The requests are rebuilt for each system with timestamps just after it started
 * (one round per millisecond), because Prometheus's remote_write forwards only samples newer
 * than its queue's start. Each system that forwards gets a fresh receiver (Prometheus 2.42
 * with --web.enable-remote-write-receiver) on the same machine:
 *
 *   weft-off  `weft collector` without --remote-write: its ingest alone.
 *   weft-tap  with --remote-write towards a port nobody listens on (and a queue that holds
 *             everything): what the tap costs the ingest path, without a receiver competing
 *             for the CPU.
 *   weft      with --remote-write to the receiver, its default batch of 2000 samples; done
 *             when weft_remote_write_samples_sent_total reaches the total.
 *   prom      Prometheus receiving the same requests, with a remote_write section to the
 *             receiver (max_samples_per_send 2000, capacity 10000, the defaults of later
 *             releases; 2.42's are 500/2500); done when
 *             prometheus_remote_storage_samples_total reaches the total.
 *
 * Printed per system: ingest seconds (first push to last answer), forward seconds (first push
 * to the last sample acknowledged by the receiver) and samples/s for both. Figures only:
 * nothing is asserted; a missing Prometheus is reported as skipped.
 *
 * Run (after `ninja -C build`):
 *   build/tests/bench_remote_write_send                  # 2000 series x 60 rounds
 *   build/tests/bench_remote_write_send --series 500 --rounds 20
 * The weft binary is $WEFT_BIN, else ../weft next to this program.
 */
#include "wf_alloc.h"
#include "wf_buf.h"
#include "wt_rw.h"
#include "wt_util.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROMETHEUS "/usr/bin/prometheus"
#define BATCH 2000

static const char *const label_names[] = {
    "connection_security_policy",
    "destination_app",
    "destination_canonical_revision",
    "destination_canonical_service",
    "destination_cluster",
    "destination_principal",
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "destination_version",
    "destination_workload",
    "destination_workload_namespace",
    "instance",
    "job",
    "reporter",
    "request_protocol",
    "response_code",
    "response_flags",
    "source_app",
    "source_canonical_revision",
    "source_canonical_service",
    "source_principal",
    "source_version",
    "source_workload",
};
#define NLABELS (sizeof(label_names) / sizeof(label_names[0]))

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *weft_path(void)
{
    const char *env = getenv("WEFT_BIN");
    if (env != NULL) {
        return wf_strdup(env);
    }
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0) {
        return wf_strdup("weft");
    }
    self[n] = '\0';
    char p[4200];
    snprintf(p, sizeof(p), "%s/../weft", dirname(self));
    return wf_strdup(p);
}

static bool wait_ready(int port, const char *path, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 100) {
        if (wt_http(port, "GET", path, NULL, 0, NULL) == 200) {
            return true;
        }
        usleep(100000);
    }
    return false;
}

/* The value of the first line of name (with or without labels) in GET /metrics; -1 if none. */
static double scrape_value(int port, const char *name)
{
    char *body = NULL;
    double v = -1;
    if (wt_http(port, "GET", "/metrics", NULL, 0, &body) == 200 && body != NULL) {
        size_t n = strlen(name);
        for (const char *p = body; p != NULL && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
            if (strncmp(p, name, n) == 0 && (p[n] == ' ' || p[n] == '{')) {
                const char *sp = strchr(p + n, ' ');
                v = sp != NULL ? strtod(sp + 1, NULL) : -1;
                break;
            }
        }
    }
    wf_free(body);
    return v;
}

/* A receiver: Prometheus with the remote_write receiver on, no scrape jobs. */
static pid_t start_prom(const char *dir, const char *name, int port, const char *extra_cfg)
{
    char cfg[600], a_cfg[700], a_data[700], a_addr[100], log[700];
    snprintf(cfg, sizeof(cfg), "%s/%s.yml", dir, name);
    FILE *f = fopen(cfg, "w");
    if (f == NULL) {
        return -1;
    }
    fprintf(f, "global:\n  scrape_interval: 15s\n%s", extra_cfg);
    fclose(f);
    snprintf(a_cfg, sizeof(a_cfg), "--config.file=%s", cfg);
    snprintf(a_data, sizeof(a_data), "--storage.tsdb.path=%s/%s-data", dir, name);
    snprintf(a_addr, sizeof(a_addr), "--web.listen-address=127.0.0.1:%d", port);
    snprintf(log, sizeof(log), "%s/%s.log", dir, name);
    char *argv[] = {PROMETHEUS,         a_cfg, a_data, a_addr, "--web.enable-remote-write-receiver",
                    "--log.level=warn", NULL};
    pid_t pid = wt_spawn(argv, log);
    if (!wait_ready(port, "/-/ready", 60000)) {
        fprintf(stderr, "%s did not become ready (log: %s)\n", name, log);
        wt_stop(pid, 5000);
        return -1;
    }
    return pid;
}

typedef struct {
    wf_buf_t *bodies;
    size_t *counts;
    size_t n, cap;
} reqs_t;

static void reqs_free(reqs_t *q)
{
    for (size_t i = 0; i < q->n; i++) {
        wf_buf_free(&q->bodies[i]);
    }
    wf_free(q->bodies);
    wf_free(q->counts);
    memset(q, 0, sizeof(*q));
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * The requests, rebuilt for each system with timestamps from t0_ms on, one round per
 * millisecond: Prometheus forwards only samples newer than the start of its remote_write
 * queue, so every system gets samples stamped after it started.
 */
static void build(reqs_t *q, int nseries, int rounds, int64_t t0_ms)
{
    reqs_free(q);
    wt_rw_t *rw = wt_rw_new();
    const char *pairs[2 * (NLABELS + 1)];
    char values[NLABELS][96];
    for (int r = 0; r < rounds; r++) {
        for (int s = 0; s < nseries; s++) {
            pairs[0] = "__name__";
            pairs[1] = s % 2 ? "istio_requests_total" : "istio_request_duration_milliseconds_sum";
            for (size_t l = 0; l < NLABELS; l++) {
                snprintf(values[l], sizeof(values[l]), "%s-value-%d", label_names[l],
                         l == 12 ? s : s % (int)(3 + l));
                pairs[2 + 2 * l] = label_names[l];
                pairs[3 + 2 * l] = values[l];
            }
            wt_rw_series(rw, pairs, NLABELS + 1);
            wt_rw_sample(rw, t0_ms + r, (double)(r * 100 + s % 7));
            if (wt_rw_nsamples(rw) == BATCH || (r == rounds - 1 && s == nseries - 1)) {
                if (q->n == q->cap) {
                    q->cap = q->cap ? q->cap * 2 : 64;
                    q->bodies = wf_realloc(q->bodies, q->cap * sizeof(*q->bodies));
                    q->counts = wf_realloc(q->counts, q->cap * sizeof(*q->counts));
                }
                wf_buf_init(&q->bodies[q->n]);
                wt_rw_body(rw, &q->bodies[q->n]);
                q->counts[q->n++] = wt_rw_nsamples(rw);
                wt_rw_reset(rw);
            }
        }
    }
    wt_rw_free(rw);
}

typedef struct {
    double ingest_s, forward_s;
    size_t refused;
} run_t;

/* Push every body to port; then wait until metric on mport reaches total. */
static run_t run(const reqs_t *q, int port, const char *metric, int mport, size_t total)
{
    run_t r = {0, 0, 0};
    wt_conn_t *c = wt_conn_open(port);
    double t0 = now_s();
    for (size_t i = 0; i < q->n; i++) {
        int st = c != NULL ? wt_conn_request(c, "POST", "/api/v1/write", WT_RW_HEADERS,
                                             q->bodies[i].data, q->bodies[i].len, NULL)
                           : -1;
        if (st < 200 || st > 299) {
            r.refused += q->counts[i];
        }
    }
    r.ingest_s = now_s() - t0;
    wt_conn_close(c);
    if (metric == NULL) {
        return r;
    }
    for (int i = 0; i < 6000; i++) {
        double v = scrape_value(mport, metric);
        if (v >= (double)(total - r.refused)) {
            break;
        }
        usleep(20000);
    }
    r.forward_s = now_s() - t0;
    return r;
}

static void print_run(const char *name, const run_t *r, size_t total)
{
    printf("  %-9s ingest %6.2f s (%8.0f samples/s)", name, r->ingest_s,
           (double)total / r->ingest_s);
    if (r->forward_s > 0) {
        printf("   forwarded %6.2f s (%8.0f samples/s)", r->forward_s,
               (double)total / r->forward_s);
    }
    if (r->refused) {
        printf("   refused %zu", r->refused);
    }
    printf("\n");
}

int main(int argc, char **argv)
{
    int nseries = 2000, rounds = 60;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--series") == 0) {
            nseries = atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "--rounds") == 0) {
            rounds = atoi(argv[i + 1]);
        } else {
            fprintf(stderr, "usage: %s [--series N] [--rounds N]\n", argv[0]);
            return 2;
        }
    }
    if (nseries < 1 || rounds < 1 || argc % 2 == 0) {
        fprintf(stderr, "usage: %s [--series N] [--rounds N]\n", argv[0]);
        return 2;
    }
    if (access(PROMETHEUS, X_OK) != 0) {
        printf("bench_remote_write_send: skipped: Prometheus not installed\n");
        return 0;
    }

    size_t total = (size_t)nseries * (size_t)rounds;
    reqs_t q = {0};
    build(&q, nseries, rounds, wall_ms());
    printf("bench_remote_write_send: %d series x %d rounds = %zu samples, %zu requests of <= %d "
           "samples, 25 labels per series\n",
           nseries, rounds, total, q.n, BATCH);

    char *dir = wt_tmpdir("bench_rw_send");
    char *weft = weft_path();

    /* ---- weft: without the sender, with it towards nobody (its cost on ingest alone), and
     * with it towards a receiver ---- */
    static const char *const variants[] = {"weft-off", "weft-tap", "weft"};
    for (int v = 0; v < 3; v++) {
        int rport = wt_free_port(), wport = wt_free_port();
        while (wport == rport) {
            wport = wt_free_port();
        }
        pid_t recv = v == 2 ? start_prom(dir, "recv-weft", rport, "") : -1;
        if (v == 2 && recv < 0) {
            return 1;
        }
        char addr[64], data[700], url[128], log[700];
        snprintf(addr, sizeof(addr), "127.0.0.1:%d", wport);
        snprintf(data, sizeof(data), "%s/weft-%d", dir, v);
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/v1/write", rport);
        snprintf(log, sizeof(log), "%s/weft-%d.log", dir, v);
        char *wargv[] = {weft, "collector", "--listen", addr, "--data-dir", data, "--otlp-listen",
                         "off", "--zipkin-listen", "off", "--log-level", "error",
                         v > 0 ? "--remote-write" : NULL, url,
                         /* towards nobody, the queue must hold everything */
                         "--remote-write-queue", "100000000", NULL};
        pid_t w = wt_spawn(wargv, log);
        if (!wait_ready(wport, "/-/ready", 60000)) {
            fprintf(stderr, "weft did not become ready (log: %s)\n", log);
            return 1;
        }
        build(&q, nseries, rounds, wall_ms());
        run_t r =
            run(&q, wport, v == 2 ? "weft_remote_write_samples_sent_total" : NULL, wport, total);
        print_run(variants[v], &r, total);
        wt_stop(w, 20000);
        if (recv > 0) {
            wt_stop(recv, 10000);
        }
    }

    /* ---- Prometheus forwarding from its WAL ---- */
    int rport = wt_free_port(), fport = wt_free_port();
    while (fport == rport) {
        fport = wt_free_port();
    }
    pid_t recv = start_prom(dir, "recv-prom", rport, "");
    char cfg[512];
    snprintf(cfg, sizeof(cfg),
             "remote_write:\n  - url: http://127.0.0.1:%d/api/v1/write\n    queue_config:\n"
             "      max_samples_per_send: 2000\n      capacity: 10000\n",
             rport);
    pid_t fwd = recv > 0 ? start_prom(dir, "forwarder", fport, cfg) : -1;
    if (fwd > 0) {
        build(&q, nseries, rounds, wall_ms());
        run_t r = run(&q, fport, "prometheus_remote_storage_samples_total", fport, total);
        print_run("prom", &r, total);
        wt_stop(fwd, 10000);
    }
    if (recv > 0) {
        wt_stop(recv, 10000);
    }
    wt_rm_rf(dir);
    wf_free(dir);
    wf_free(weft);
    reqs_free(&q);
    return 0;
}
