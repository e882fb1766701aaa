/*
 * bench_remote_write.c - Prometheus remote_write ingest rate of weft's collector, measured
 * beside VictoriaMetrics and Prometheus 2.42 in the same run, with the same pre-encoded
 * requests.
 *
 * The data set is what a Prometheus scraping a bookinfo mesh forwards: Istio's
 * istio_requests_total and istio_request_duration_milliseconds (Envoy's 19 bucket bounds,
 * +Inf, _sum, _count) with the 25 Istio labels (24 non-empty) plus job and instance, for 8 edges of
 * the bookinfo graph x 2 reporters x 4 response codes x --pods pods (23 series each), one sample
 * per series every 15 s for --rounds scrapes ending now. It is generated from fixed rules, so
 * every system sees exactly the same bytes.
 *
 * The requests are built before any system starts: series are sharded over --conns
 * connections as Prometheus's queue manager shards them (a series always goes through the
 * same shard, so its samples arrive in order), each shard's samples are cut into requests of
 * --batch samples (Prometheus 2.42's max_samples_per_send is 500), protobuf-encoded and
 * snappy-compressed with the headers Prometheus sends. Then, for each system in turn, the
 * --conns threads send their shard's requests back to back over keep-alive connections and
 * the wall time from the first request to the last answer gives samples/s.
 *
 * What an answer means differs and is printed with the figures: weft answers after the SQLite
 * commit of its write-ahead log record (survives kill -9); Prometheus after appending to its
 * head and WAL (written, not fsynced, also survives kill -9); VictoriaMetrics buffers
 * samples in memory and acknowledges before they are written (it loses up to a second of
 * data on kill -9).
 *
 * Run (after `ninja -C build`):
 *   build/tests/bench_remote_write                      # ~4400 series x 60 rounds, 4 conns
 *   build/tests/bench_remote_write --pods 1 --rounds 20 # quicker
 *   flags: --pods N --rounds N --conns N --batch N --repeat N (default 3; the systems take
 *   turns and the medians are compared) --only weft|vm|prom
 * The weft binary is $WEFT_BIN, else ../weft next to this program. Figures only: nothing is
 * asserted; a missing reference system is reported as skipped.
 */
#include "wf_alloc.h"
#include "wf_buf.h"
#include "wt_rw.h"
#include "wt_util.h"

#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SCRAPE_MS 15000
#define GOAL_VS_VM 1.5

static const double envoy_buckets[] = {0.5,   1,      5,      10,      25,     50,    100,
                                       250,   500,    1000,   2500,    5000,   10000, 30000,
                                       60000, 300000, 600000, 1800000, 3600000};
#define NBOUNDS (sizeof(envoy_buckets) / sizeof(envoy_buckets[0]))
#define SERIES_PER_COMBO (1 + NBOUNDS + 1 + 2) /* counter, buckets, +Inf, _sum, _count */

typedef struct {
    const char *src_app, *src_ver, *dst_app, *dst_ver;
} edge_t;

static const edge_t edges[] = {
    {"istio-ingressgateway", "unknown", "productpage", "v1"},
    {"productpage", "v1", "details", "v1"},
    {"productpage", "v1", "reviews", "v1"},
    {"productpage", "v1", "reviews", "v2"},
    {"productpage", "v1", "reviews", "v3"},
    {"reviews", "v2", "ratings", "v1"},
    {"reviews", "v3", "ratings", "v1"},
    {"ratings", "v1", "mysqldb", "v1"},
};
static const char *const reporters[] = {"source", "destination"};
static const char *const codes[] = {"200", "404", "500", "503"};

typedef struct {
    int pods, rounds, conns, batch, repeat;
    const char *only;
} opts_t;

/* One series: its labels (2 * n strings, owned) and the rule for its values. */
typedef struct {
    char **labels;
    size_t n;
    int kind;    /* 0 counter, 1 bucket, 2 sum, 3 count */
    double le;   /* bucket bound (INFINITY for +Inf) */
    double rate; /* requests per scrape of this combo */
} series_t;

typedef struct {
    wf_buf_t *bodies; /* one compressed request each, in sending order */
    size_t *samples;
    size_t n, cap;
} shard_t;

static void add_label(series_t *s, const char *name, const char *value)
{
    s->labels = wf_realloc(s->labels, (s->n + 1) * 2 * sizeof(char *));
    s->labels[2 * s->n] = wf_strdup(name);
    s->labels[2 * s->n + 1] = wf_strdup(value);
    s->n++;
}

/* The 25 Istio labels of one edge, reporter and code, plus job and instance. */
static void istio_labels(series_t *s, const edge_t *e, const char *reporter, const char *code,
                         int pod)
{
    char buf[256];
    bool dst = strcmp(reporter, "destination") == 0;
    add_label(s, "reporter", reporter);
    snprintf(buf, sizeof(buf), "%s-%s", e->src_app, e->src_ver);
    add_label(s, "source_workload", buf);
    add_label(s, "source_canonical_service", e->src_app);
    add_label(s, "source_canonical_revision", e->src_ver);
    add_label(s, "source_workload_namespace", "default");
    snprintf(buf, sizeof(buf), "spiffe://cluster.local/ns/default/sa/bookinfo-%s", e->src_app);
    add_label(s, "source_principal", buf);
    add_label(s, "source_app", e->src_app);
    add_label(s, "source_version", e->src_ver);
    add_label(s, "source_cluster", "Kubernetes");
    snprintf(buf, sizeof(buf), "%s-%s", e->dst_app, e->dst_ver);
    add_label(s, "destination_workload", buf);
    add_label(s, "destination_workload_namespace", "default");
    snprintf(buf, sizeof(buf), "spiffe://cluster.local/ns/default/sa/bookinfo-%s", e->dst_app);
    add_label(s, "destination_principal", buf);
    add_label(s, "destination_app", e->dst_app);
    add_label(s, "destination_version", e->dst_ver);
    snprintf(buf, sizeof(buf), "%s.default.svc.cluster.local", e->dst_app);
    add_label(s, "destination_service", buf);
    add_label(s, "destination_canonical_service", e->dst_app);
    add_label(s, "destination_canonical_revision", e->dst_ver);
    add_label(s, "destination_service_name", e->dst_app);
    add_label(s, "destination_service_namespace", "default");
    add_label(s, "destination_cluster", "Kubernetes");
    add_label(s, "request_protocol", "http");
    add_label(s, "response_code", code);
    /* grpc_response_status is empty for HTTP requests: Prometheus drops empty labels when it
     * scrapes, so it never sends them on. */
    add_label(s, "response_flags", strcmp(code, "503") == 0 ? "UH" : "-");
    add_label(s, "connection_security_policy", dst ? "mutual_tls" : "unknown");
    add_label(s, "job", "kubernetes-pods");
    snprintf(buf, sizeof(buf), "10.0.%d.%d:15020", (int)(e - edges), 10 + pod);
    add_label(s, "instance", buf);
}

static series_t *make_series(const opts_t *o, size_t *count)
{
    size_t n = (sizeof(edges) / sizeof(edges[0])) * 2 * 4 * (size_t)o->pods * SERIES_PER_COMBO;
    series_t *all = wf_calloc(n, sizeof(series_t));
    size_t k = 0;
    for (size_t e = 0; e < sizeof(edges) / sizeof(edges[0]); e++) {
        for (int r = 0; r < 2; r++) {
            for (int c = 0; c < 4; c++) {
                for (int p = 0; p < o->pods; p++) {
                    double rate = c == 0 ? 150 + 10 * (double)e : 2 + c;
                    for (size_t j = 0; j < SERIES_PER_COMBO; j++) {
                        series_t *s = &all[k++];
                        s->rate = rate;
                        istio_labels(s, &edges[e], reporters[r], codes[c], p);
                        char le[32];
                        if (j == 0) {
                            s->kind = 0;
                            add_label(s, "__name__", "istio_requests_total");
                        } else if (j <= NBOUNDS + 1) {
                            s->kind = 1;
                            s->le = j <= NBOUNDS ? envoy_buckets[j - 1] : 1e300;
                            if (j <= NBOUNDS) {
                                snprintf(le, sizeof(le), "%g", envoy_buckets[j - 1]);
                            } else {
                                snprintf(le, sizeof(le), "+Inf");
                            }
                            add_label(s, "__name__", "istio_request_duration_milliseconds_bucket");
                            add_label(s, "le", le);
                        } else if (j == NBOUNDS + 2) {
                            s->kind = 2;
                            add_label(s, "__name__", "istio_request_duration_milliseconds_sum");
                        } else {
                            s->kind = 3;
                            add_label(s, "__name__", "istio_request_duration_milliseconds_count");
                        }
                    }
                }
            }
        }
    }
    *count = k;
    return all;
}

/* The value of series s after round r: counters grow by the rate; a bucket holds the share
 * of requests at or below its bound under a fixed latency profile (median ~20 ms). */
static double value_at(const series_t *s, int r)
{
    double total = s->rate * (r + 1);
    switch (s->kind) {
    case 0:
    case 3:
        return total;
    case 2:
        return total * 23.5;
    default: {
        double share = s->le >= 1e300 ? 1.0 : s->le / (s->le + 20.0);
        return (double)(int64_t)(total * share);
    }
    }
}

static void shard_add(shard_t *sh, wt_rw_t *rw)
{
    if (wt_rw_nsamples(rw) == 0) {
        return;
    }
    if (sh->n == sh->cap) {
        sh->cap = sh->cap ? sh->cap * 2 : 64;
        sh->bodies = wf_realloc(sh->bodies, sh->cap * sizeof(wf_buf_t));
        sh->samples = wf_realloc(sh->samples, sh->cap * sizeof(size_t));
    }
    wf_buf_init(&sh->bodies[sh->n]);
    wt_rw_body(rw, &sh->bodies[sh->n]);
    sh->samples[sh->n] = wt_rw_nsamples(rw);
    sh->n++;
    wt_rw_reset(rw);
}

typedef struct {
    const shard_t *sh;
    int port;
    const char *path;
    size_t ok, failed;
    int first_bad_status;
    char first_bad_body[200];
} sender_t;

static void *send_main(void *arg)
{
    sender_t *s = arg;
    wt_conn_t *c = wt_conn_open(s->port);
    wf_buf_t resp = WF_BUF_INIT;
    for (size_t i = 0; i < s->sh->n; i++) {
        int st = -1;
        for (int attempt = 0; attempt < 3 && st < 0; attempt++) {
            if (c == NULL) {
                c = wt_conn_open(s->port);
                if (c == NULL) {
                    continue;
                }
            }
            wf_buf_reset(&resp);
            st = wt_conn_request(c, "POST", s->path, WT_RW_HEADERS, s->sh->bodies[i].data,
                                 s->sh->bodies[i].len, &resp);
            if (st < 0) {
                wt_conn_close(c);
                c = NULL;
            }
        }
        if (st >= 200 && st < 300) {
            s->ok += s->sh->samples[i];
        } else {
            s->failed += s->sh->samples[i];
            if (s->first_bad_status == 0) {
                s->first_bad_status = st;
                snprintf(s->first_bad_body, sizeof(s->first_bad_body), "%.150s",
                         resp.len ? wf_buf_cstr(&resp) : "");
            }
        }
    }
    wt_conn_close(c);
    wf_buf_free(&resp);
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct {
    double seconds;
    size_t ok, failed;
} result_t;

static result_t run_load(const opts_t *o, shard_t *shards, int port, const char *path)
{
    sender_t *snd = wf_calloc((size_t)o->conns, sizeof(sender_t));
    pthread_t *th = wf_calloc((size_t)o->conns, sizeof(pthread_t));
    double t0 = now_s();
    for (int i = 0; i < o->conns; i++) {
        snd[i] = (sender_t){.sh = &shards[i], .port = port, .path = path};
        pthread_create(&th[i], NULL, send_main, &snd[i]);
    }
    result_t r = {0, 0, 0};
    for (int i = 0; i < o->conns; i++) {
        pthread_join(th[i], NULL);
        r.ok += snd[i].ok;
        r.failed += snd[i].failed;
        if (snd[i].first_bad_status != 0 && r.failed == snd[i].failed) {
            printf("    first refusal: status %d %s\n", snd[i].first_bad_status,
                   snd[i].first_bad_body);
        }
    }
    r.seconds = now_s() - t0;
    wf_free(snd);
    wf_free(th);
    return r;
}

/* Poll GET path until it answers 200 or timeout_ms passes. */
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

static bool executable(const char *p)
{
    return access(p, X_OK) == 0;
}

/* Print the number of series the system reports for the data set (a sanity check that the
 * samples really landed), from a PromQL count at the last round's time. */
static void print_count(int port, int64_t at_ms, const char *extra)
{
    char path[512], *body = NULL;
    snprintf(path, sizeof(path),
             "/api/v1/query?query=count(%%7B__name__%%3D~%%22istio_.%%2B%%22%%7D)&time=%.3f%s",
             (double)at_ms / 1000.0, extra);
    int st = wt_http(port, "GET", path, NULL, 0, &body);
    const char *v = body ? strstr(body, "\"value\":[") : NULL;
    const char *q = v ? strchr(v + 9, ',') : NULL;
    if (st == 200 && q != NULL) {
        q += q[1] == '"' ? 2 : 1;
        printf("    series visible to queries: %.*s\n", (int)strcspn(q, "\"]"), q);
    } else {
        printf("    series count query: status %d\n", st);
    }
    wf_free(body);
}

#define MAX_REPEAT 15

typedef struct {
    const char *name;
    double rate[MAX_REPEAT];
    int n;
} sys_rate_t;

static void report(const result_t *r, size_t total, int rep, sys_rate_t *out)
{
    double rate = (double)r->ok / r->seconds;
    printf("  run %d %-16s %10.0f samples/s  (%zu samples in %.2f s, %zu refused of %zu)\n",
           rep + 1, out->name, rate, r->ok, r->seconds, r->failed, total);
    out->rate[out->n++] = rate;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(sys_rate_t *s)
{
    qsort(s->rate, (size_t)s->n, sizeof(double), cmp_double);
    return s->n % 2 ? s->rate[s->n / 2] : (s->rate[s->n / 2 - 1] + s->rate[s->n / 2]) / 2;
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

int main(int argc, char **argv)
{
    opts_t o = {.pods = 3, .rounds = 60, .conns = 4, .batch = 500, .repeat = 3, .only = NULL};
    /* Flags come in pairs: name and value. */
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--pods") == 0 && v) {
            o.pods = atoi(v);
        } else if (strcmp(a, "--rounds") == 0 && v) {
            o.rounds = atoi(v);
        } else if (strcmp(a, "--conns") == 0 && v) {
            o.conns = atoi(v);
        } else if (strcmp(a, "--batch") == 0 && v) {
            o.batch = atoi(v);
        } else if (strcmp(a, "--repeat") == 0 && v) {
            o.repeat = atoi(v);
        } else if (strcmp(a, "--only") == 0 && v) {
            o.only = v;
        } else {
            fprintf(stderr,
                    "usage: %s [--pods N] [--rounds N] [--conns N] [--batch N] "
                    "[--repeat N] [--only weft|vm|prom]\n",
                    argv[0]);
            return 2;
        }
    }
    if (o.pods < 1 || o.rounds < 1 || o.conns < 1 || o.batch < 1 || o.repeat < 1 ||
        o.repeat > MAX_REPEAT) {
        fprintf(stderr, "every number must be at least 1 (and --repeat at most %d)\n", MAX_REPEAT);
        return 2;
    }

    /* ---- build every request once ---- */
    double tb = now_s();
    size_t nseries;
    series_t *series = make_series(&o, &nseries);
    int64_t end_ms = (int64_t)time(NULL) * 1000 - 5000;
    int64_t start_ms = end_ms - (int64_t)(o.rounds - 1) * SCRAPE_MS;
    shard_t *shards = wf_calloc((size_t)o.conns, sizeof(shard_t));
    wt_rw_t **rws = wf_calloc((size_t)o.conns, sizeof(wt_rw_t *));
    for (int c = 0; c < o.conns; c++) {
        rws[c] = wt_rw_new();
    }
    size_t raw_bytes = 0, body_bytes = 0;
    for (int r = 0; r < o.rounds; r++) {
        int64_t ts = start_ms + (int64_t)r * SCRAPE_MS;
        for (size_t i = 0; i < nseries; i++) {
            int c = (int)(i % (size_t)o.conns);
            wt_rw_series(rws[c], (const char *const *)series[i].labels, series[i].n);
            wt_rw_sample(rws[c], ts, value_at(&series[i], r));
            if (wt_rw_nsamples(rws[c]) >= (size_t)o.batch) {
                wf_buf_t raw = WF_BUF_INIT;
                wt_rw_encode(rws[c], &raw);
                raw_bytes += raw.len;
                wf_buf_free(&raw);
                shard_add(&shards[c], rws[c]);
                body_bytes += shards[c].bodies[shards[c].n - 1].len;
            }
        }
        for (int c = 0; c < o.conns; c++) {
            if (wt_rw_nsamples(rws[c]) > 0) {
                wf_buf_t raw = WF_BUF_INIT;
                wt_rw_encode(rws[c], &raw);
                raw_bytes += raw.len;
                wf_buf_free(&raw);
                shard_add(&shards[c], rws[c]);
                body_bytes += shards[c].bodies[shards[c].n - 1].len;
            }
        }
    }
    size_t total = nseries * (size_t)o.rounds, nreq = 0;
    for (int c = 0; c < o.conns; c++) {
        nreq += shards[c].n;
    }
    printf(
        "bench_remote_write: %zu series (%d pods, 24 non-empty Istio labels + job, instance), %d "
        "rounds of 15 s, %zu samples\n",
        nseries, o.pods, o.rounds, total);
    printf("  %zu requests of <= %d samples over %d connections; %.1f MB protobuf, %.1f MB "
           "snappy (%.0f bytes/sample sent); built in %.1f s\n",
           nreq, o.batch, o.conns, (double)raw_bytes / 1e6, (double)body_bytes / 1e6,
           (double)body_bytes / (double)total, now_s() - tb);

    sys_rate_t rates[3] = {
        {.name = "weft"}, {.name = "VictoriaMetrics"}, {.name = "Prometheus 2.42"}};
    char *dir = wt_tmpdir("bench-rw");
    char path[4200], arg1[4300], arg2[4300], arg3[4300], logp[4300];
    char *weft = weft_path();

    /* The systems take turns, each run on a fresh data directory, so that a change in the
     * machine's background load spreads over all of them rather than favouring one. */
    for (int rep = 0; rep < o.repeat; rep++) {
        /* ---- weft ---- */
        if (o.only == NULL || strcmp(o.only, "weft") == 0) {
            if (!executable(weft)) {
                printf("  weft: skipped (%s not found; set WEFT_BIN)\n", weft);
            } else {
                int port = wt_free_port();
                snprintf(path, sizeof(path), "%s/weft-%d", dir, rep);
                snprintf(arg1, sizeof(arg1), "--listen=127.0.0.1:%d", port);
                snprintf(arg2, sizeof(arg2), "--data-dir=%s", path);
                snprintf(logp, sizeof(logp), "%s/weft.log", dir);
                char *av[] = {weft, "collector", arg1, arg2, "--log-level=error", NULL};
                pid_t pid = wt_spawn(av, logp);
                if (!wt_wait_port(port, 20000) || !wait_ready(port, "/-/ready", 20000)) {
                    printf("  weft: did not start (see %s)\n", logp);
                } else {
                    result_t r = run_load(&o, shards, port, "/api/v1/write");
                    report(&r, total, rep, &rates[0]);
                    print_count(port, end_ms, "");
                }
                wt_stop(pid, 30000);
            }
        }

        /* ---- VictoriaMetrics ---- */
        if (o.only == NULL || strcmp(o.only, "vm") == 0) {
            const char *vm = "/usr/bin/victoria-metrics";
            if (!executable(vm)) {
                printf("  VictoriaMetrics: skipped (%s not found)\n", vm);
            } else {
                int port = wt_free_port();
                snprintf(path, sizeof(path), "%s/vm-%d", dir, rep);
                snprintf(arg1, sizeof(arg1), "-httpListenAddr=127.0.0.1:%d", port);
                snprintf(arg2, sizeof(arg2), "-storageDataPath=%s", path);
                snprintf(logp, sizeof(logp), "%s/vm.log", dir);
                char *av[] = {(char *)vm, arg1, arg2, "-retentionPeriod=1y", NULL};
                pid_t pid = wt_spawn(av, logp);
                if (!wt_wait_port(port, 20000) || !wait_ready(port, "/health", 20000)) {
                    printf("  VictoriaMetrics: did not start (see %s)\n", logp);
                } else {
                    result_t r = run_load(&o, shards, port, "/api/v1/write");
                    report(&r, total, rep, &rates[1]);
                    /* Its samples become searchable after its in-memory buffers flush (~1 s). */
                    sleep(2);
                    print_count(port, end_ms, "&nocache=1");
                }
                wt_stop(pid, 30000);
            }
        }

        /* ---- Prometheus ---- */
        if (o.only == NULL || strcmp(o.only, "prom") == 0) {
            const char *prom = "/usr/bin/prometheus";
            if (!executable(prom)) {
                printf("  Prometheus: skipped (%s not found)\n", prom);
            } else {
                int port = wt_free_port();
                snprintf(path, sizeof(path), "%s/prom.yml", dir);
                FILE *f = fopen(path, "w");
                fputs("global:\n  scrape_interval: 15s\n", f);
                fclose(f);
                snprintf(arg1, sizeof(arg1), "--config.file=%s", path);
                snprintf(arg2, sizeof(arg2), "--storage.tsdb.path=%s/prom-%d", dir, rep);
                snprintf(arg3, sizeof(arg3), "--web.listen-address=127.0.0.1:%d", port);
                snprintf(logp, sizeof(logp), "%s/prom.log", dir);
                char *av[] = {
                    (char *)prom,        arg1, arg2, arg3, "--web.enable-remote-write-receiver",
                    "--log.level=error", NULL};
                pid_t pid = wt_spawn(av, logp);
                if (!wt_wait_port(port, 30000) || !wait_ready(port, "/-/ready", 30000)) {
                    printf("  Prometheus: did not start (see %s)\n", logp);
                } else {
                    result_t r = run_load(&o, shards, port, "/api/v1/write");
                    report(&r, total, rep, &rates[2]);
                    print_count(port, end_ms, "");
                }
                wt_stop(pid, 30000);
            }
        }
    }

    printf("  acknowledgement: weft after its WAL commit (survives kill -9); Prometheus after "
           "its head + WAL write; VictoriaMetrics before writing (buffers ~1 s in memory)\n");
    double med[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++) {
        if (rates[i].n > 0) {
            med[i] = median(&rates[i]);
            printf("  median of %d  %-16s %10.0f samples/s\n", rates[i].n, rates[i].name, med[i]);
        }
    }
    if (med[0] > 0 && med[1] > 0) {
        printf("  weft / VictoriaMetrics = %.2f (goal >= %.1f)\n", med[0] / med[1], GOAL_VS_VM);
    }
    if (med[0] > 0 && med[2] > 0) {
        printf("  weft / Prometheus      = %.2f\n", med[0] / med[2]);
    }

    wt_rm_rf(dir);
    wf_free(dir);
    wf_free(weft);
    for (int c = 0; c < o.conns; c++) {
        for (size_t i = 0; i < shards[c].n; i++) {
            wf_buf_free(&shards[c].bodies[i]);
        }
        wf_free(shards[c].bodies);
        wf_free(shards[c].samples);
        wt_rw_free(rws[c]);
    }
    wf_free(shards);
    wf_free(rws);
    for (size_t i = 0; i < nseries; i++) {
        for (size_t j = 0; j < 2 * series[i].n; j++) {
            wf_free(series[i].labels[j]);
        }
        wf_free(series[i].labels);
    }
    wf_free(series);
    return 0;
}
