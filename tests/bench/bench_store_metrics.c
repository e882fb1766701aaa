/*
 * bench_store_metrics.c - bytes per sample and append rate of weft's metrics store, measured
 * beside VictoriaMetrics and Prometheus on the same synthetic mesh data set.
 *
 * The data set looks like what Prometheus scrapes from the sidecars of a bookinfo mesh: Istio's
 * standard metrics (istio_requests_total, the duration and size histograms with Envoy's buckets
 * and the 25 Istio labels) plus a few process gauges, 15 s scrapes with a few ms of per-target
 * jitter, several hours ending now. It is generated from a seed, so every run and every system
 * sees exactly the same samples.
 *
 * weft:  st_batch_* with one batch per target per scrape (as the scraper writes), periodic
 *        st_store_flush, then close; size = the whole data directory. A second run with large
 *        batches shows the cost of the per-batch commit.
 * VM:    victoria-metrics on 127.0.0.1 and a free port, fed the Prometheus text format through
 *        /api/v1/import/prometheus, flushed, force-merged, stopped; size = its data directory
 *        without the cache/ folder (caches it saves on shutdown and rebuilds when missing).
 * Prom:  `promtool tsdb create-blocks-from openmetrics` over an OpenMetrics file; size = the
 *        blocks it writes.
 *
 * Run (after `ninja -C build`; about 2 minutes on 2 cores, most of it in promtool):
 *   build/tests/bench_store_metrics                        # 6 h of data, ~2.9 M samples
 *   build/tests/bench_store_metrics --hours 1 --skip-prom  # quicker
 * See docs/benchmarks.md for every flag and the method.
 *
 * It prints figures and the goals from design.md §5; it never asserts on them. A reference
 * system whose binary is missing is reported as skipped, never with a made-up number. Run time
 * is bounded by the data set size (--hours) and by timeouts on every child process.
 */
#include "st_store.h"
#include "wf_alloc.h"
#include "wf_buf.h"
#include "wf_clock.h"
#include "wf_err.h"
#include "wf_log.h"
#include "wt_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SCRAPE_MS 15000
#define JITTER_MS 3
#define NBUCKETS 20 /* Envoy's 19 bounds and +Inf */
#define VM_BODY_BYTES (8u << 20)
#define GOAL_BYTES_RATIO 0.8
#define GOAL_APPEND_RATE 2e6

/* ---- the mesh ------------------------------------------------------------------------------ */

typedef struct {
    const char *name; /* workload: <app>-<version> */
    const char *ns;
    const char *app;
    const char *version;
    const char *sa;
    const char *ip;
    const char *pod_hash;
} workload_t;

enum { GW, PRODUCTPAGE, DETAILS, REVIEWS_V1, REVIEWS_V2, REVIEWS_V3, RATINGS, NWORKLOADS };

static const workload_t workloads[NWORKLOADS] = {
    {"istio-ingressgateway", "istio-system", "istio-ingressgateway", "unknown",
     "istio-ingressgateway-service-account", "10.244.0.5", "7d4f8c9b6-x2kqp"},
    {"productpage-v1", "default", "productpage", "v1", "bookinfo-productpage", "10.244.0.11",
     "6b746f74dc-9stfp"},
    {"details-v1", "default", "details", "v1", "bookinfo-details", "10.244.0.12",
     "79f774bdb9-kqx5w"},
    {"reviews-v1", "default", "reviews", "v1", "bookinfo-reviews", "10.244.0.13",
     "5b9b9c7d8-mjt4r"},
    {"reviews-v2", "default", "reviews", "v2", "bookinfo-reviews", "10.244.0.14",
     "6f8d9b4c7-zq2hn"},
    {"reviews-v3", "default", "reviews", "v3", "bookinfo-reviews", "10.244.0.15",
     "7c9fd8b5f-w8lpc"},
    {"ratings-v1", "default", "ratings", "v1", "bookinfo-ratings", "10.244.0.16", "b6994bb9-5vn8d"},
};

/* One HTTP route of the mesh and how its calls end (code, share of the calls, flags). */
typedef struct {
    int src, dst;
    double rps;
    int median_ms;
    struct {
        const char *code;
        double share; /* of rps; rare codes are hit by a few calls an hour */
        const char *flags;
    } outcomes[3];
} edge_t;

static const edge_t edges[] = {
    {GW, PRODUCTPAGE, 3.0, 28, {{"200", 0.995, "-"}, {"404", 0.003, "-"}, {"503", 0.0005, "UH"}}},
    {PRODUCTPAGE, DETAILS, 3.0, 3, {{"200", 0.999, "-"}, {"500", 0.0004, "-"}, {NULL, 0, NULL}}},
    {PRODUCTPAGE,
     REVIEWS_V1,
     1.0,
     6,
     {{"200", 0.999, "-"}, {"503", 0.0003, "URX"}, {NULL, 0, NULL}}},
    {PRODUCTPAGE,
     REVIEWS_V2,
     1.0,
     11,
     {{"200", 0.999, "-"}, {"503", 0.0003, "URX"}, {NULL, 0, NULL}}},
    {PRODUCTPAGE,
     REVIEWS_V3,
     1.0,
     12,
     {{"200", 0.999, "-"}, {"503", 0.0003, "URX"}, {NULL, 0, NULL}}},
    {REVIEWS_V2, RATINGS, 1.0, 2, {{"200", 0.999, "-"}, {"500", 0.0005, "-"}, {NULL, 0, NULL}}},
    {REVIEWS_V3, RATINGS, 1.0, 2, {{"200", 0.999, "-"}, {"500", 0.0005, "-"}, {NULL, 0, NULL}}},
};
#define NEDGES (sizeof(edges) / sizeof(edges[0]))

static const double bucket_bounds[NBUCKETS - 1] = {
    0.5,  1,    5,     10,    25,    50,     100,    250,     500,    1000,
    2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000};
/* As Envoy prints them. */
static const char *const bucket_le[NBUCKETS] = {
    "0.5",  "1",    "5",     "10",    "25",    "50",     "100",    "250",     "500",     "1000",
    "2500", "5000", "10000", "30000", "60000", "300000", "600000", "1.8e+06", "3.6e+06", "+Inf"};

/* ---- the data set -------------------------------------------------------------------------- */

typedef struct {
    st_label_t *labels; /* __name__ first; strings are owned by the data set's pool */
    size_t nlabels;
    char *text; /* name{labels} for the exposition formats */
    size_t text_len;
    int target;
} series_t;

typedef struct {
    const char *family; /* OpenMetrics family name */
    const char *type;   /* OpenMetrics type */
    st_metric_type_t st_type;
    const char *help;
    size_t first_group, ngroups;
} family_t;

typedef struct {
    size_t first_series, nseries; /* one labelled metric: 1 series, or a histogram's 22 */
} group_t;

/* A request stream seen by one reporter: its counter and three histograms. */
typedef struct {
    int edge, outcome, reporter_dst;
    size_t counter, dur, req, resp; /* first series of each; histograms: buckets, sum, count */
    uint64_t count;
    uint64_t dur_b[NBUCKETS], req_b[NBUCKETS], resp_b[NBUCKETS];
    double dur_sum, req_sum, resp_sum;
} stream_t;

typedef struct {
    series_t *series;
    size_t nseries, cap_series;
    group_t *groups;
    size_t ngroups, cap_groups;
    family_t families[16];
    size_t nfamilies;
    char **pool;
    size_t npool, cap_pool;
    stream_t streams[NEDGES * 3 * 2];
    size_t nstreams;
    size_t gauges[NWORKLOADS][5];
    size_t *target_series[NWORKLOADS]; /* series of each target, in exposition order */
    size_t target_n[NWORKLOADS];
    int target_order[NWORKLOADS]; /* targets by scrape phase */
    size_t nscrapes;
    int64_t *ts; /* [target][scrape] */
    double *v;   /* [series][scrape] */
    int64_t mint, maxt;
} dataset_t;

static char *pool_str(dataset_t *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static char *pool_str(dataset_t *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) {
        abort();
    }
    va_end(ap);
    if (d->npool == d->cap_pool) {
        d->cap_pool = d->cap_pool ? d->cap_pool * 2 : 256;
        d->pool = wf_realloc(d->pool, d->cap_pool * sizeof(*d->pool));
    }
    d->pool[d->npool++] = s;
    return s;
}

typedef struct {
    const char *name[40];
    const char *value[40];
    size_t n;
} labelset_t;

static void ls_add(labelset_t *ls, const char *name, const char *value)
{
    WF_ASSERT(ls->n < 40);
    ls->name[ls->n] = name;
    ls->value[ls->n] = value;
    ls->n++;
}

static int cmp_label(const void *a, const void *b)
{
    const st_label_t *x = a, *y = b;
    return wf_str_cmp(x->name, y->name);
}

/* Add a series named `name` with labels ls (plus `le` when not NULL) to the current group. */
static size_t add_series(dataset_t *d, int target, const char *name, const labelset_t *ls,
                         const char *le)
{
    if (d->nseries == d->cap_series) {
        d->cap_series = d->cap_series ? d->cap_series * 2 : 1024;
        d->series = wf_realloc(d->series, d->cap_series * sizeof(*d->series));
    }
    series_t *s = &d->series[d->nseries];
    s->target = target;
    s->nlabels = 1 + ls->n + (le != NULL);
    s->labels = wf_calloc(s->nlabels, sizeof(st_label_t));
    s->labels[0] = (st_label_t){WF_STR_LIT("__name__"), wf_str(name)};
    for (size_t i = 0; i < ls->n; i++) {
        s->labels[1 + i] = (st_label_t){wf_str(ls->name[i]), wf_str(ls->value[i])};
    }
    if (le != NULL) {
        s->labels[s->nlabels - 1] = (st_label_t){WF_STR_LIT("le"), wf_str(le)};
    }
    /* Exposition order is sorted by name, as Prometheus writes it. */
    qsort(s->labels + 1, s->nlabels - 1, sizeof(st_label_t), cmp_label);
    wf_buf_t b = WF_BUF_INIT;
    wf_buf_puts(&b, name);
    for (size_t i = 1; i < s->nlabels; i++) {
        wf_buf_printf(&b, "%c%.*s=\"%.*s\"", i == 1 ? '{' : ',', (int)s->labels[i].name.len,
                      s->labels[i].name.p, (int)s->labels[i].value.len, s->labels[i].value.p);
    }
    wf_buf_putc(&b, '}');
    s->text = (char *)wf_buf_detach(&b, &s->text_len);
    return d->nseries++;
}

static void begin_group(dataset_t *d)
{
    if (d->ngroups == d->cap_groups) {
        d->cap_groups = d->cap_groups ? d->cap_groups * 2 : 256;
        d->groups = wf_realloc(d->groups, d->cap_groups * sizeof(*d->groups));
    }
    d->groups[d->ngroups++] = (group_t){d->nseries, 0};
}

static void end_group(dataset_t *d)
{
    group_t *g = &d->groups[d->ngroups - 1];
    g->nseries = d->nseries - g->first_series;
}

static family_t *begin_family(dataset_t *d, const char *family, const char *type,
                              st_metric_type_t st_type, const char *help)
{
    family_t *f = &d->families[d->nfamilies++];
    *f = (family_t){family, type, st_type, help, d->ngroups, 0};
    return f;
}

static void end_family(dataset_t *d, family_t *f)
{
    f->ngroups = d->ngroups - f->first_group;
}

static void scrape_labels(dataset_t *d, labelset_t *ls, int target)
{
    const workload_t *w = &workloads[target];
    ls_add(ls, "instance", pool_str(d, "%s:15020", w->ip));
    ls_add(ls, "job", "kubernetes-pods");
    ls_add(ls, "namespace", w->ns);
    ls_add(ls, "pod", pool_str(d, "%s-%s", w->name, w->pod_hash));
}

/* The 25 Istio labels of a request stream, as the reporter's proxy emits them. */
static void istio_labels(dataset_t *d, labelset_t *ls, const edge_t *e, int outcome, int dst_rep)
{
    const workload_t *s = &workloads[e->src], *t = &workloads[e->dst];
    scrape_labels(d, ls, dst_rep ? e->dst : e->src);
    ls_add(ls, "reporter", dst_rep ? "destination" : "source");
    ls_add(ls, "source_workload", s->name);
    ls_add(ls, "source_canonical_service", s->app);
    ls_add(ls, "source_canonical_revision", e->src == GW ? "latest" : s->version);
    ls_add(ls, "source_workload_namespace", s->ns);
    ls_add(ls, "source_principal", pool_str(d, "spiffe://cluster.local/ns/%s/sa/%s", s->ns, s->sa));
    ls_add(ls, "source_app", s->app);
    ls_add(ls, "source_version", s->version);
    ls_add(ls, "source_cluster", "Kubernetes");
    ls_add(ls, "destination_workload", t->name);
    ls_add(ls, "destination_workload_namespace", t->ns);
    ls_add(ls, "destination_principal",
           pool_str(d, "spiffe://cluster.local/ns/%s/sa/%s", t->ns, t->sa));
    ls_add(ls, "destination_app", t->app);
    ls_add(ls, "destination_version", t->version);
    ls_add(ls, "destination_service", pool_str(d, "%s.%s.svc.cluster.local", t->app, t->ns));
    ls_add(ls, "destination_canonical_service", t->app);
    ls_add(ls, "destination_canonical_revision", t->version);
    ls_add(ls, "destination_service_name", t->app);
    ls_add(ls, "destination_service_namespace", t->ns);
    ls_add(ls, "destination_cluster", "Kubernetes");
    ls_add(ls, "request_protocol", "http");
    ls_add(ls, "response_code", e->outcomes[outcome].code);
    /* grpc_response_status is empty for plain HTTP, and empty labels do not exist. */
    ls_add(ls, "response_flags", e->outcomes[outcome].flags);
    ls_add(ls, "connection_security_policy", dst_rep ? "mutual_tls" : "unknown");
}

static void add_histogram(dataset_t *d, const char *base, int target, const labelset_t *ls,
                          size_t *first)
{
    char name[128];
    begin_group(d);
    snprintf(name, sizeof(name), "%s_bucket", base);
    const char *bucket = pool_str(d, "%s", name);
    for (int b = 0; b < NBUCKETS; b++) {
        size_t i = add_series(d, target, bucket, ls, bucket_le[b]);
        if (b == 0) {
            *first = i;
        }
    }
    add_series(d, target, pool_str(d, "%s_sum", base), ls, NULL);
    add_series(d, target, pool_str(d, "%s_count", base), ls, NULL);
    end_group(d);
}

static const char *const hist_families[3] = {"istio_request_duration_milliseconds",
                                             "istio_request_bytes", "istio_response_bytes"};
static const char *const hist_help[3] = {"Request duration in milliseconds",
                                         "Request size in bytes", "Response size in bytes"};

static const struct {
    const char *family, *sample, *type, *help;
    st_metric_type_t st_type;
} gauge_defs[5] = {
    {"process_resident_memory_bytes", "process_resident_memory_bytes", "gauge",
     "Resident memory size in bytes.", ST_METRIC_GAUGE},
    {"envoy_server_memory_allocated", "envoy_server_memory_allocated", "gauge",
     "Current amount of allocated memory in bytes.", ST_METRIC_GAUGE},
    {"process_cpu_seconds", "process_cpu_seconds_total", "counter",
     "Total user and system CPU time spent in seconds.", ST_METRIC_COUNTER},
    {"envoy_server_uptime", "envoy_server_uptime", "gauge", "Current server uptime in seconds.",
     ST_METRIC_GAUGE},
    {"envoy_cluster_upstream_cx_active", "envoy_cluster_upstream_cx_active", "gauge",
     "Total active connections.", ST_METRIC_GAUGE},
};

static void build_series(dataset_t *d)
{
    /* The request streams: every route and outcome, seen by the source and the destination. */
    for (size_t e = 0; e < NEDGES; e++) {
        for (int o = 0; o < 3 && edges[e].outcomes[o].code != NULL; o++) {
            for (int r = 0; r < 2; r++) {
                stream_t *st = &d->streams[d->nstreams++];
                memset(st, 0, sizeof(*st));
                st->edge = (int)e;
                st->outcome = o;
                st->reporter_dst = r;
            }
        }
    }
    family_t *f =
        begin_family(d, "istio_requests", "counter", ST_METRIC_COUNTER, "Total requests.");
    for (size_t i = 0; i < d->nstreams; i++) {
        stream_t *st = &d->streams[i];
        const edge_t *e = &edges[st->edge];
        labelset_t ls = {.n = 0};
        istio_labels(d, &ls, e, st->outcome, st->reporter_dst);
        begin_group(d);
        st->counter =
            add_series(d, st->reporter_dst ? e->dst : e->src, "istio_requests_total", &ls, NULL);
        end_group(d);
    }
    end_family(d, f);
    for (int h = 0; h < 3; h++) {
        f = begin_family(d, hist_families[h], "histogram", ST_METRIC_HISTOGRAM, hist_help[h]);
        for (size_t i = 0; i < d->nstreams; i++) {
            stream_t *st = &d->streams[i];
            const edge_t *e = &edges[st->edge];
            labelset_t ls = {.n = 0};
            istio_labels(d, &ls, e, st->outcome, st->reporter_dst);
            size_t *first = h == 0 ? &st->dur : h == 1 ? &st->req : &st->resp;
            add_histogram(d, hist_families[h], st->reporter_dst ? e->dst : e->src, &ls, first);
        }
        end_family(d, f);
    }
    for (int g = 0; g < 5; g++) {
        f = begin_family(d, gauge_defs[g].family, gauge_defs[g].type, gauge_defs[g].st_type,
                         gauge_defs[g].help);
        for (int t = 0; t < NWORKLOADS; t++) {
            labelset_t ls = {.n = 0};
            scrape_labels(d, &ls, t);
            if (g == 4) {
                ls_add(&ls, "cluster_name", "xds-grpc");
            }
            begin_group(d);
            d->gauges[t][g] = add_series(d, t, gauge_defs[g].sample, &ls, NULL);
            end_group(d);
        }
        end_family(d, f);
    }
    for (int t = 0; t < NWORKLOADS; t++) {
        d->target_series[t] = wf_malloc(d->nseries * sizeof(size_t));
    }
    for (size_t i = 0; i < d->nseries; i++) {
        int t = d->series[i].target;
        d->target_series[t][d->target_n[t]++] = i;
    }
}

static double rnd01(uint64_t *rng)
{
    return (double)(wt_rand(rng) >> 11) * (1.0 / 9007199254740992.0);
}

/* A standard normal deviate (Box-Muller). */
static double rnd_normal(uint64_t *rng)
{
    double u1 = rnd01(rng), u2 = rnd01(rng);
    if (u1 < 1e-300) {
        u1 = 1e-300;
    }
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

/* Calls in one scrape interval for a mean of m: Poisson for small means, normal for large. */
static uint64_t rnd_calls(uint64_t *rng, double m)
{
    if (m < 30) {
        double l = exp(-m), p = 1.0;
        uint64_t k = 0;
        do {
            k++;
            p *= rnd01(rng);
        } while (p > l);
        return k - 1;
    }
    double x = m + sqrt(m) * rnd_normal(rng);
    return x < 0 ? 0 : (uint64_t)llround(x);
}

static void observe(uint64_t *buckets, double *sum, double x)
{
    int b = 0;
    while (b < NBUCKETS - 1 && x > bucket_bounds[b]) {
        b++;
    }
    buckets[b]++;
    *sum += x;
}

static void store_hist(dataset_t *d, size_t first, const uint64_t *buckets, double sum,
                       uint64_t count, size_t i)
{
    uint64_t cum = 0;
    for (int b = 0; b < NBUCKETS; b++) {
        cum += buckets[b];
        d->v[(first + (size_t)b) * d->nscrapes + i] = (double)cum;
    }
    d->v[(first + NBUCKETS) * d->nscrapes + i] = sum;
    d->v[(first + NBUCKETS + 1) * d->nscrapes + i] = (double)count;
}

static int cmp_phase(const void *a, const void *b, void *arg)
{
    const dataset_t *d = arg;
    int64_t x = d->ts[(size_t) * (const int *)a * d->nscrapes];
    int64_t y = d->ts[(size_t) * (const int *)b * d->nscrapes];
    return x < y ? -1 : x > y;
}

static void generate(dataset_t *d, int hours, uint64_t seed, int64_t end_ms)
{
    memset(d, 0, sizeof(*d));
    build_series(d);
    d->nscrapes = (size_t)hours * 3600 / (SCRAPE_MS / 1000);
    d->ts = wf_malloc(NWORKLOADS * d->nscrapes * sizeof(int64_t));
    d->v = wf_malloc(d->nseries * d->nscrapes * sizeof(double));
    uint64_t rng = seed * 0x9e3779b97f4a7c15ULL + 1;
    /* Every series ends before end_ms: the last scrape starts at most one interval before. */
    int64_t start = end_ms - (int64_t)d->nscrapes * SCRAPE_MS - SCRAPE_MS;
    d->mint = INT64_MAX;
    d->maxt = INT64_MIN;
    for (int t = 0; t < NWORKLOADS; t++) {
        int64_t phase = (int64_t)(wt_rand(&rng) % SCRAPE_MS);
        for (size_t i = 0; i < d->nscrapes; i++) {
            int64_t jitter = (int64_t)(wt_rand(&rng) % (2 * JITTER_MS + 1)) - JITTER_MS;
            int64_t ts = start + phase + (int64_t)i * SCRAPE_MS + jitter;
            d->ts[(size_t)t * d->nscrapes + i] = ts;
            d->mint = ts < d->mint ? ts : d->mint;
            d->maxt = ts > d->maxt ? ts : d->maxt;
        }
        d->target_order[t] = t;
    }
    qsort_r(d->target_order, NWORKLOADS, sizeof(int), cmp_phase, d);
    /* Process gauges start where a proxy that has run for a while would be. */
    double rss[NWORKLOADS], alloc[NWORKLOADS], cpu[NWORKLOADS], uptime[NWORKLOADS];
    int cx[NWORKLOADS];
    for (int t = 0; t < NWORKLOADS; t++) {
        rss[t] = 4096.0 * (double)(11000 + wt_rand(&rng) % 3000);
        alloc[t] = (double)(8000000 + wt_rand(&rng) % 2000000);
        cpu[t] = (double)(wt_rand(&rng) % 100000) / 100.0;
        uptime[t] = (double)(86400 + wt_rand(&rng) % 864000);
        cx[t] = 1;
    }
    for (size_t i = 0; i < d->nscrapes; i++) {
        for (size_t k = 0; k < d->nstreams; k++) {
            stream_t *st = &d->streams[k];
            const edge_t *e = &edges[st->edge];
            double mean = e->rps * e->outcomes[st->outcome].share * (SCRAPE_MS / 1000);
            uint64_t n = rnd_calls(&rng, mean);
            for (uint64_t c = 0; c < n; c++) {
                double ms = e->median_ms * exp(0.6 * rnd_normal(&rng));
                if (st->reporter_dst) {
                    ms *= 0.8; /* the destination does not see the network hop */
                }
                if (rnd01(&rng) < 0.001) {
                    ms *= 40; /* a slow outlier now and then */
                }
                /* Envoy's histogram sums are sums of bin midpoints: decimals, not integers. */
                observe(st->dur_b, &st->dur_sum, floor(ms * 10 + 0.5) / 10 + 0.05);
                observe(st->req_b, &st->req_sum, (double)(600 + wt_rand(&rng) % 400));
                observe(st->resp_b, &st->resp_sum,
                        (double)(st->outcome == 0 ? 1500 + wt_rand(&rng) % 4000 : 95));
            }
            st->count += n;
            d->v[st->counter * d->nscrapes + i] = (double)st->count;
            store_hist(d, st->dur, st->dur_b, st->dur_sum, st->count, i);
            store_hist(d, st->req, st->req_b, st->req_sum, st->count, i);
            store_hist(d, st->resp, st->resp_b, st->resp_sum, st->count, i);
        }
        for (int t = 0; t < NWORKLOADS; t++) {
            rss[t] += 4096.0 * (double)((int)(wt_rand(&rng) % 9) - 4);
            alloc[t] += (double)((int64_t)(wt_rand(&rng) % 20001) - 10000);
            cpu[t] += (double)(1 + wt_rand(&rng) % 20) / 100.0;
            cpu[t] = floor(cpu[t] * 100 + 0.5) / 100;
            uptime[t] += SCRAPE_MS / 1000;
            if (wt_rand(&rng) % 20 == 0) {
                cx[t] = 1 + (int)(wt_rand(&rng) % 4);
            }
            d->v[d->gauges[t][0] * d->nscrapes + i] = rss[t];
            d->v[d->gauges[t][1] * d->nscrapes + i] = alloc[t];
            d->v[d->gauges[t][2] * d->nscrapes + i] = cpu[t];
            d->v[d->gauges[t][3] * d->nscrapes + i] = uptime[t];
            d->v[d->gauges[t][4] * d->nscrapes + i] = cx[t];
        }
    }
}

static void dataset_free(dataset_t *d)
{
    for (size_t i = 0; i < d->nseries; i++) {
        wf_free(d->series[i].labels);
        wf_free(d->series[i].text);
    }
    for (size_t i = 0; i < d->npool; i++) {
        free(d->pool[i]); /* from vasprintf */
    }
    for (int t = 0; t < NWORKLOADS; t++) {
        wf_free(d->target_series[t]);
    }
    wf_free(d->pool);
    wf_free(d->series);
    wf_free(d->groups);
    wf_free(d->ts);
    wf_free(d->v);
}

static size_t dataset_samples(const dataset_t *d)
{
    return d->nseries * d->nscrapes;
}

/* ---- helpers ------------------------------------------------------------------------------- */

static double secs_since(int64_t t0_ns)
{
    return (double)(wf_mono_ns() - t0_ns) / 1e9;
}

static double cpu_secs(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* The shortest decimal that reads back as exactly v (so every system stores the same doubles). */
static int fmt_value(char *out, size_t cap, double v)
{
    int n = snprintf(out, cap, "%.15g", v);
    if (strtod(out, NULL) != v) {
        n = snprintf(out, cap, "%.17g", v);
    }
    return n;
}

/* The executable `name` (or override) as a wf_malloc'ed path, or NULL when there is none. */
static char *find_bin(const char *name, const char *override)
{
    if (override != NULL) {
        return access(override, X_OK) == 0 ? wf_strdup(override) : NULL;
    }
    char path[4096];
    const char *p = getenv("PATH");
    if (p == NULL) {
        p = "/usr/local/bin:/usr/bin:/bin";
    }
    while (*p) {
        const char *c = strchr(p, ':');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        snprintf(path, sizeof(path), "%.*s/%s", (int)n, p, name);
        if (n > 0 && access(path, X_OK) == 0) {
            return wf_strdup(path);
        }
        p += n + (c != NULL);
    }
    return NULL;
}

/* ---- weft ---------------------------------------------------------------------------------- */

typedef struct {
    int ran;
    const char *skip; /* why the system was not measured */
    uint64_t samples;
    int64_t bytes;
    double append_s, append_cpu_s, flush_s, close_s;
    uint64_t errors;
    int verified;
    char breakdown[1024]; /* where the bytes are: per table and index */
} result_t;

static int64_t clock_now(void *arg)
{
    return *(const int64_t *)arg;
}

/* Read a few series back after reopening and compare every sample; 1 when all match. */
static int weft_verify(const char *dir, const dataset_t *d, int64_t *now)
{
    st_options_t o;
    st_options_default(&o);
    o.dir = dir;
    o.metrics_retention_ms = 0;
    o.now_ms = clock_now;
    o.now_arg = now;
    st_store_t *s = NULL;
    int rc = st_store_open(&o, &s);
    if (rc != 0) {
        fprintf(stderr, "weft verify: reopen failed: %s\n", st_strerror(rc));
        return 0;
    }
    int ok = 1;
    uint64_t rng = 42;
    for (int k = 0; k < 8 && ok; k++) {
        size_t si = (size_t)(wt_rand(&rng) % d->nseries);
        const series_t *ser = &d->series[si];
        st_matcher_t *m[40];
        size_t nm = 0;
        for (size_t l = 0; l < ser->nlabels; l++) {
            if (st_matcher_new(ST_MATCH_EQ, ser->labels[l].name, ser->labels[l].value, &m[nm], NULL,
                               0) == 0) {
                nm++;
            }
        }
        st_series_set_t *set = NULL;
        rc = st_select(s, (const st_matcher_t *const *)m, nm, d->mint, d->maxt, &set);
        const int64_t *ts = NULL;
        const double *v = NULL;
        size_t n = 0;
        if (rc != 0 || st_series_set_len(set) != 1 ||
            st_series_set_samples(set, 0, &ts, &v, &n) != 0 || n != d->nscrapes) {
            fprintf(stderr, "weft verify: series %zu: rc=%d found=%zu samples=%zu want %zu\n", si,
                    rc, set ? st_series_set_len(set) : 0, n, d->nscrapes);
            ok = 0;
        }
        for (size_t i = 0; ok && i < n; i++) {
            int64_t want_ts = d->ts[(size_t)ser->target * d->nscrapes + i];
            double want_v = d->v[si * d->nscrapes + i];
            if (ts[i] != want_ts || memcmp(&v[i], &want_v, sizeof(double)) != 0) {
                fprintf(stderr,
                        "weft verify: series %zu sample %zu: (%" PRId64 ", %.17g) want (%" PRId64
                        ", %.17g)\n",
                        si, i, ts[i], v[i], want_ts, want_v);
                ok = 0;
            }
        }
        st_series_set_free(set);
        for (size_t l = 0; l < nm; l++) {
            st_matcher_free(m[l]);
        }
    }
    st_store_close(s);
    return ok;
}

/* "name bytes, ..." for the largest tables and indexes of weft.db (SQLite's dbstat table). */
static void weft_breakdown(const char *dir, char *out, size_t cap)
{
    char path[4300];
    snprintf(path, sizeof(path), "%s/weft.db", dir);
    snprintf(out, cap, "(dbstat not available)");
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name "
                           "ORDER BY 2 DESC LIMIT 8",
                           -1, &st, NULL) != SQLITE_OK) {
        goto out;
    }
    size_t n = 0;
    out[0] = '\0';
    while (sqlite3_step(st) == SQLITE_ROW && n + 1 < cap) {
        int w = snprintf(out + n, cap - n, "%s%s %lld", n ? ", " : "",
                         (const char *)sqlite3_column_text(st, 0),
                         (long long)sqlite3_column_int64(st, 1));
        n += w > 0 ? (size_t)w : 0;
    }
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/*
 * Append the data set scrape by scrape. batch_scrapes == 0: one batch per target per scrape;
 * otherwise one batch holds every target's samples of batch_scrapes consecutive scrapes. With
 * use_refs, series references stand in for the labels after a series' first sample, as in a
 * scraper that caches them per target.
 */
static void bench_weft(const dataset_t *d, const char *dir, int batch_scrapes, int use_refs,
                       int flush_min, result_t *r)
{
    memset(r, 0, sizeof(*r));
    st_ref_t *refs = wf_calloc(d->nseries, sizeof(st_ref_t));
    uint8_t *have_ref = wf_calloc(d->nseries, 1);
    int64_t now = d->maxt + 1000;
    st_options_t o;
    st_options_default(&o);
    o.dir = dir;
    o.metrics_retention_ms = 0;
    o.now_ms = clock_now;
    o.now_arg = &now;
    st_store_t *s = NULL;
    int rc = st_store_open(&o, &s);
    if (rc != 0) {
        fprintf(stderr, "weft: open %s: %s\n", dir, st_strerror(rc));
        r->skip = "store open failed";
        wf_free(refs);
        wf_free(have_ref);
        return;
    }
    int first_err = 0;
    size_t flush_every = flush_min > 0 ? (size_t)flush_min * 60000 / SCRAPE_MS : 0;
    double cpu0 = cpu_secs();
    int64_t t0 = wf_mono_ns();
    double flush_s = 0;
    st_batch_t *b = NULL;
    int flush_due = 0;
    for (size_t i = 0; i < d->nscrapes; i++) {
        for (int k = 0; k < NWORKLOADS; k++) {
            int t = d->target_order[k];
            if (b == NULL) {
                /* The store reads its clock at st_batch_begin: make it the time of the batch's
                 * newest sample, as for a scraper that writes what it just scraped. */
                size_t last = batch_scrapes == 0 ? i : i + (size_t)batch_scrapes - 1;
                last = last < d->nscrapes ? last : d->nscrapes - 1;
                now = d->ts[(size_t)d->target_order[NWORKLOADS - 1] * d->nscrapes + last] + 1000;
            }
            if (b == NULL && (rc = st_batch_begin(s, &b)) != 0) {
                fprintf(stderr, "weft: batch_begin: %s\n", st_strerror(rc));
                goto out;
            }
            if (i == 0 && (k == 0 || batch_scrapes == 0)) {
                for (size_t f = 0; f < d->nfamilies; f++) {
                    const family_t *fam = &d->families[f];
                    st_batch_set_metadata(b, wf_str(fam->family), fam->st_type, wf_str(fam->help),
                                          WF_STR_LIT(""));
                }
            }
            int64_t ts = d->ts[(size_t)t * d->nscrapes + i];
            for (size_t j = 0; j < d->target_n[t]; j++) {
                size_t si = d->target_series[t][j];
                const series_t *ser = &d->series[si];
                double v = d->v[si * d->nscrapes + i];
                if (!use_refs) {
                    rc = st_batch_add(b, ser->labels, ser->nlabels, ts, v);
                } else if (!have_ref[si] ||
                           (rc = st_batch_add_ref(b, refs[si], ts, v)) == ST_E_UNKNOWN_REF) {
                    /* A reference is usable once the batch that created the series committed:
                     * from the next scrape on. */
                    rc = st_batch_add_get_ref(b, ser->labels, ser->nlabels, ts, v, &refs[si]);
                    have_ref[si] = rc == 0;
                }
                if (rc != 0) {
                    if (r->errors++ == 0) {
                        first_err = rc;
                    }
                } else {
                    r->samples++;
                }
            }
            int last =
                batch_scrapes == 0 || (i + 1) % (size_t)batch_scrapes == 0 || i + 1 == d->nscrapes;
            if (last && (batch_scrapes == 0 || k == NWORKLOADS - 1)) {
                rc = st_batch_commit(b);
                b = NULL;
                if (rc != 0) {
                    fprintf(stderr, "weft: batch_commit: %s\n", st_strerror(rc));
                    goto out;
                }
            }
        }
        if (flush_every > 0 && (i + 1) % flush_every == 0) {
            flush_due = 1;
        }
        /* As a collector would: between batches, never with one open. */
        if (flush_due && b == NULL) {
            flush_due = 0;
            int64_t f0 = wf_mono_ns();
            rc = st_store_flush(s);
            flush_s += secs_since(f0);
            if (rc != 0) {
                fprintf(stderr, "weft: flush: %s\n", st_strerror(rc));
                goto out;
            }
        }
    }
    r->append_s = secs_since(t0);
    r->append_cpu_s = cpu_secs() - cpu0;
    r->flush_s = flush_s;
    int64_t c0 = wf_mono_ns();
    rc = st_store_flush(s);
    if (rc != 0) {
        fprintf(stderr, "weft: final flush: %s\n", st_strerror(rc));
    }
    st_store_close(s);
    s = NULL;
    r->close_s = secs_since(c0);
    r->bytes = wt_du_bytes(dir);
    weft_breakdown(dir, r->breakdown, sizeof(r->breakdown));
    r->ran = 1;
    if (r->errors > 0) {
        fprintf(stderr, "weft: %" PRIu64 " samples refused, first: %s\n", r->errors,
                st_strerror(first_err));
    }
    r->verified = weft_verify(dir, d, &now);
out:
    st_batch_abort(b);
    if (s != NULL) {
        st_store_close(s);
        r->skip = "append failed";
    }
    wf_free(refs);
    wf_free(have_ref);
}

/* ---- VictoriaMetrics ----------------------------------------------------------------------- */

static int http_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    struct timeval tv = {300, 0}; /* a bound on every exchange: a hung server fails the step */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return fd;
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return -1;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* One HTTP/1.1 exchange (Connection: close). Returns the status code, or -1. resp may be NULL. */
static int http_do(int port, const char *method, const char *target, const char *body, size_t len,
                   wf_buf_t *resp)
{
    int fd = http_connect(port);
    if (fd < 0) {
        return -1;
    }
    char head[512];
    int hn = snprintf(head, sizeof(head),
                      "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: %zu\r\n"
                      "Content-Type: text/plain\r\nConnection: close\r\n\r\n",
                      method, target, port, len);
    wf_buf_t local = WF_BUF_INIT;
    wf_buf_t *out = resp ? resp : &local;
    wf_buf_reset(out);
    int status = -1;
    if (write_all(fd, head, (size_t)hn) != 0 || (len > 0 && write_all(fd, body, len) != 0)) {
        goto done;
    }
    for (;;) {
        uint8_t *p = wf_buf_reserve(out, 65536);
        ssize_t r = read(fd, p, 65536);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            break;
        }
        out->len += (size_t)r;
    }
    const char *s = wf_buf_cstr(out);
    if (strncmp(s, "HTTP/1.", 7) == 0 && strlen(s) > 12) {
        status = atoi(s + 9);
    }
done:
    close(fd);
    wf_buf_free(&local);
    return status;
}

/* The Prometheus text format with ms timestamps, scrape by scrape, into path. */
static int write_vm_text(const dataset_t *d, const char *path, size_t *bytes)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        return -errno;
    }
    char *buf = wf_malloc(1 << 20);
    setvbuf(f, buf, _IOFBF, 1 << 20);
    char num[64];
    for (size_t i = 0; i < d->nscrapes; i++) {
        for (int k = 0; k < NWORKLOADS; k++) {
            int t = d->target_order[k];
            int64_t ts = d->ts[(size_t)t * d->nscrapes + i];
            for (size_t j = 0; j < d->target_n[t]; j++) {
                size_t si = d->target_series[t][j];
                fwrite(d->series[si].text, 1, d->series[si].text_len, f);
                fputc(' ', f);
                fmt_value(num, sizeof(num), d->v[si * d->nscrapes + i]);
                fputs(num, f);
                fprintf(f, " %" PRId64 "\n", ts);
            }
        }
    }
    int rc = ferror(f) ? -EIO : 0;
    *bytes = (size_t)ftell(f);
    if (fclose(f) != 0 && rc == 0) {
        rc = -EIO;
    }
    wf_free(buf); /* only after fclose, which flushes from it */
    return rc;
}

/* Value of the first line "name value" in a /metrics page, or -1. */
static double metric_value(const char *page, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = page; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, name, n) == 0 && p[n] == ' ') {
            return strtod(p + n + 1, NULL);
        }
    }
    return -1;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static int64_t du_without(const char *dir, const char *sub)
{
    char p[8192];
    snprintf(p, sizeof(p), "%s/%s", dir, sub);
    return wt_du_bytes(dir) - wt_du_bytes(p);
}

static void bench_vm(const dataset_t *d, const char *bin, const char *root, result_t *r,
                     int64_t *cache_bytes, uint64_t *vm_count)
{
    memset(r, 0, sizeof(*r));
    char text[4096], dir[4096], logp[4096], arg_dir[4200], arg_addr[128];
    snprintf(text, sizeof(text), "%s/vm-import.txt", root);
    snprintf(dir, sizeof(dir), "%s/vm-data", root);
    snprintf(logp, sizeof(logp), "%s/vm.log", root);
    size_t text_bytes = 0;
    int rc = write_vm_text(d, text, &text_bytes);
    if (rc != 0) {
        fprintf(stderr, "vm: cannot write %s: %s\n", text, strerror(-rc));
        r->skip = "cannot write the import file";
        return;
    }
    int fd = open(text, O_RDONLY | O_CLOEXEC);
    unlink(text);
    if (fd < 0) {
        r->skip = "cannot read the import file";
        return;
    }
    char *body = wf_malloc(VM_BODY_BYTES);
    int port = wt_free_port();
    snprintf(arg_dir, sizeof(arg_dir), "-storageDataPath=%s", dir);
    snprintf(arg_addr, sizeof(arg_addr), "-httpListenAddr=127.0.0.1:%d", port);
    char *argv[] = {(char *)bin,
                    arg_dir,
                    arg_addr,
                    "-retentionPeriod=100y",
                    "-loggerLevel=WARN",
                    "-search.disableCache",
                    "-search.latencyOffset=0s",
                    "-selfScrapeInterval=0",
                    NULL};
    pid_t pid = wt_spawn(argv, logp);
    if (!wt_wait_port(port, 30000)) {
        fprintf(stderr, "vm: did not listen on %d (log: %s)\n", port, logp);
        r->skip = "victoria-metrics did not start";
        goto out;
    }
    wf_buf_t resp = WF_BUF_INIT;
    int64_t t0 = wf_mono_ns();
    /* Bodies of whole lines, read from the file as they go (the file can be gigabytes). */
    size_t have = 0;
    for (;;) {
        ssize_t n = read(fd, body + have, VM_BODY_BYTES - have);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            r->skip = "cannot read the import file";
            wf_buf_free(&resp);
            goto out;
        }
        have += (size_t)n;
        if (have == 0) {
            break;
        }
        size_t send = have;
        if (n > 0) {
            while (send > 0 && body[send - 1] != '\n') {
                send--;
            }
            WF_ASSERT(send > 0); /* a line is far shorter than a body */
        }
        int st = http_do(port, "POST", "/api/v1/import/prometheus", body, send, &resp);
        if (st / 100 != 2) {
            fprintf(stderr, "vm: import returned %d: %.300s\n", st, wf_buf_cstr(&resp));
            r->skip = "victoria-metrics import failed";
            wf_buf_free(&resp);
            goto out;
        }
        memmove(body, body + send, have - send);
        have -= send;
        if (n == 0) {
            break;
        }
    }
    int st = http_do(port, "GET", "/internal/force_flush", NULL, 0, &resp);
    r->append_s = secs_since(t0);
    if (st / 100 != 2) {
        fprintf(stderr, "vm: force_flush returned %d\n", st);
    }
    /*
     * Merge each month's parts into one, as VM's background merges would eventually; this is
     * VM at its most compact, so the comparison is conservative for weft.
     */
    for (int64_t t = d->mint;; t += 86400000LL * 28) {
        if (t > d->maxt) {
            t = d->maxt;
        }
        time_t sec = (time_t)(t / 1000);
        struct tm tm;
        gmtime_r(&sec, &tm);
        char path[128];
        snprintf(path, sizeof(path), "/internal/force_merge?partition_prefix=%04d_%02d",
                 tm.tm_year + 1900, tm.tm_mon + 1);
        http_do(port, "GET", path, NULL, 0, NULL);
        if (t == d->maxt) {
            break;
        }
    }
    sleep_ms(500);
    for (int waited = 0; waited < 300000; waited += 500) {
        st = http_do(port, "GET", "/metrics", NULL, 0, &resp);
        if (st == 200 && metric_value(wf_buf_cstr(&resp), "vm_active_force_merges") <= 0) {
            break;
        }
        sleep_ms(500);
    }
    /* Sample count as VM sees it: every sample lies in one window ending at maxt. */
    char q[512];
    int64_t window_s = (d->maxt - d->mint) / 1000 + 60;
    snprintf(q, sizeof(q),
             "/api/v1/query?query=sum(count_over_time(%%7B__name__%%21%%3D%%22%%22%%7D%%5B%" PRId64
             "s%%5D))&time=%" PRId64 ".%03" PRId64,
             window_s, d->maxt / 1000, d->maxt % 1000);
    sleep_ms(2000); /* flushed rows become searchable after VM's 1 s pending interval */
    st = http_do(port, "GET", q, NULL, 0, &resp);
    const char *vs = st == 200 ? strstr(wf_buf_cstr(&resp), "\"value\":[") : NULL;
    if (vs != NULL && (vs = strchr(vs, ',')) != NULL && vs[1] == '"') {
        *vm_count = strtoull(vs + 2, NULL, 10);
    }
    wf_buf_free(&resp);
    int status = wt_stop(pid, 120000);
    pid = -1;
    if (status == -1 || !WIFEXITED(status)) {
        fprintf(stderr, "vm: did not stop cleanly (log: %s)\n", logp);
    }
    r->samples = dataset_samples(d);
    r->bytes = du_without(dir, "cache");
    char cache[4200];
    snprintf(cache, sizeof(cache), "%s/cache", dir);
    *cache_bytes = wt_du_bytes(cache);
    r->ran = 1;
out:
    if (pid > 0) {
        wt_stop(pid, 60000);
    }
    close(fd);
    wf_free(body);
}

/* ---- Prometheus ---------------------------------------------------------------------------- */

/* OpenMetrics: families one after the other; within a family each labelled metric's points in
 * time order, a histogram's buckets, sum and count together per point; `# EOF` at the end. */
static int write_openmetrics(const dataset_t *d, const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        return -errno;
    }
    char *buf = wf_malloc(1 << 20);
    setvbuf(f, buf, _IOFBF, 1 << 20);
    char num[64];
    for (size_t fi = 0; fi < d->nfamilies; fi++) {
        const family_t *fam = &d->families[fi];
        fprintf(f, "# TYPE %s %s\n# HELP %s %s\n", fam->family, fam->type, fam->family, fam->help);
        for (size_t g = fam->first_group; g < fam->first_group + fam->ngroups; g++) {
            const group_t *grp = &d->groups[g];
            int t = d->series[grp->first_series].target;
            for (size_t i = 0; i < d->nscrapes; i++) {
                int64_t ts = d->ts[(size_t)t * d->nscrapes + i];
                for (size_t si = grp->first_series; si < grp->first_series + grp->nseries; si++) {
                    fwrite(d->series[si].text, 1, d->series[si].text_len, f);
                    fputc(' ', f);
                    fmt_value(num, sizeof(num), d->v[si * d->nscrapes + i]);
                    fputs(num, f);
                    fprintf(f, " %" PRId64 ".%03" PRId64 "\n", ts / 1000, ts % 1000);
                }
            }
        }
    }
    fputs("# EOF\n", f);
    int rc = ferror(f) ? -EIO : 0;
    if (fclose(f) != 0 && rc == 0) {
        rc = -EIO;
    }
    wf_free(buf); /* only after fclose, which flushes from it */
    return rc;
}

/* Sum of "numSamples" over the blocks' meta.json files under dir. */
static uint64_t prom_block_samples(const char *dir)
{
    uint64_t total = 0;
    char cmd[4300];
    snprintf(cmd, sizeof(cmd), "cat %s/*/meta.json 2>/dev/null", dir);
    FILE *p = popen(cmd, "r");
    if (p == NULL) {
        return 0;
    }
    char line[4096];
    while (fgets(line, sizeof(line), p) != NULL) {
        const char *s = strstr(line, "\"numSamples\":");
        if (s != NULL) {
            total += strtoull(s + 13, NULL, 10);
        }
    }
    pclose(p);
    return total;
}

static void bench_prom(const dataset_t *d, const char *bin, const char *root, result_t *r,
                       uint64_t *prom_count)
{
    memset(r, 0, sizeof(*r));
    char file[4096], dir[4096], logp[4096];
    snprintf(file, sizeof(file), "%s/prom.om", root);
    snprintf(dir, sizeof(dir), "%s/prom-blocks", root);
    snprintf(logp, sizeof(logp), "%s/promtool.log", root);
    int rc = write_openmetrics(d, file);
    if (rc != 0) {
        fprintf(stderr, "prometheus: cannot write %s: %s\n", file, strerror(-rc));
        r->skip = "cannot write the OpenMetrics file";
        return;
    }
    mkdir(dir, 0755);
    char *argv[] = {(char *)bin, "tsdb", "create-blocks-from", "openmetrics", "-q", file,
                    dir,         NULL};
    int64_t t0 = wf_mono_ns();
    pid_t pid = wt_spawn(argv, logp);
    int status = wt_wait(pid, 900000);
    r->append_s = secs_since(t0);
    unlink(file);
    if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char *log = wt_read_file(logp, NULL);
        fprintf(stderr, "prometheus: promtool failed (status %d): %.500s\n", status,
                log ? log : "");
        wf_free(log);
        r->skip = "promtool failed";
        return;
    }
    r->samples = dataset_samples(d);
    r->bytes = wt_du_bytes(dir);
    *prom_count = prom_block_samples(dir);
    r->ran = 1;
}

/* ---- main ---------------------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr, "usage: bench_store_metrics [--hours N] [--seed N] [--flush-minutes N]\n"
                    "                           [--skip-vm] [--skip-prom] [--no-large] [--keep]\n"
                    "                           [--vm-bin PATH] [--promtool PATH]\n");
}

static void print_row(const char *name, const result_t *r, const char *rate_note)
{
    if (!r->ran) {
        printf("%-26s %s\n", name, r->skip ? r->skip : "skipped");
        return;
    }
    char rate[64] = "-";
    if (r->append_s > 0) {
        snprintf(rate, sizeof(rate), "%.0f%s", (double)r->samples / r->append_s, rate_note);
    }
    printf("%-26s %12" PRIu64 " %14" PRId64 " %12.3f  %s\n", name, r->samples, r->bytes,
           (double)r->bytes / (double)r->samples, rate);
}

int main(int argc, char **argv)
{
    int hours = 6, flush_min = 120, skip_vm = 0, skip_prom = 0, large = 1, keep = 0;
    uint64_t seed = 1;
    const char *vm_override = NULL, *prom_override = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--hours") == 0 && next) {
            hours = atoi(argv[++i]);
        } else if (strcmp(a, "--seed") == 0 && next) {
            seed = strtoull(argv[++i], NULL, 10);
        } else if (strcmp(a, "--flush-minutes") == 0 && next) {
            flush_min = atoi(argv[++i]);
        } else if (strcmp(a, "--vm-bin") == 0 && next) {
            vm_override = argv[++i];
        } else if (strcmp(a, "--promtool") == 0 && next) {
            prom_override = argv[++i];
        } else if (strcmp(a, "--skip-vm") == 0) {
            skip_vm = 1;
        } else if (strcmp(a, "--skip-prom") == 0) {
            skip_prom = 1;
        } else if (strcmp(a, "--no-large") == 0) {
            large = 0;
        } else if (strcmp(a, "--keep") == 0) {
            keep = 1;
        } else {
            usage();
            return 2;
        }
    }
    if (hours < 1 || hours > 24 * 30 || flush_min < 0) {
        usage();
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    wf_log_set_level(WF_WARN);
    char *vm_bin = NULL, *prom_bin = NULL;
    if (!skip_vm) {
        vm_bin = find_bin("victoria-metrics", vm_override);
    }
    if (!skip_prom) {
        prom_bin = find_bin("promtool", prom_override);
    }

    int64_t g0 = wf_mono_ns();
    dataset_t d;
    generate(&d, hours, seed, wf_wall_ms());
    printf("data set: %zu series (%d targets), %zu scrapes every %d s over %d h, %zu samples "
           "(seed %" PRIu64 ", generated in %.1f s)\n",
           d.nseries, NWORKLOADS, d.nscrapes, SCRAPE_MS / 1000, hours, dataset_samples(&d), seed,
           secs_since(g0));
    char *root = wt_tmpdir("bench-metrics");
    char dir[4200];

    result_t weft, weft_refs, weft_large, vm, prom;
    snprintf(dir, sizeof(dir), "%s/weft", root);
    bench_weft(&d, dir, 0, 0, flush_min, &weft);
    snprintf(dir, sizeof(dir), "%s/weft-refs", root);
    bench_weft(&d, dir, 0, 1, flush_min, &weft_refs);
    memset(&weft_large, 0, sizeof(weft_large));
    weft_large.skip = "skipped: --no-large";
    if (large) {
        snprintf(dir, sizeof(dir), "%s/weft-large", root);
        bench_weft(&d, dir, 50, 0, flush_min, &weft_large);
    }
    int64_t vm_cache = 0;
    uint64_t vm_count = 0, prom_count = 0;
    memset(&vm, 0, sizeof(vm));
    if (skip_vm) {
        vm.skip = "skipped: --skip-vm";
    } else if (vm_bin == NULL) {
        vm.skip = "skipped: victoria-metrics not installed";
    } else {
        bench_vm(&d, vm_bin, root, &vm, &vm_cache, &vm_count);
    }
    memset(&prom, 0, sizeof(prom));
    if (skip_prom) {
        prom.skip = "skipped: --skip-prom";
    } else if (prom_bin == NULL) {
        prom.skip = "skipped: promtool not installed";
    } else {
        bench_prom(&d, prom_bin, root, &prom, &prom_count);
    }

    printf("\n%-26s %12s %14s %12s  %s\n", "system", "samples", "bytes", "bytes/sample",
           "append samples/s");
    print_row("weft (scrape batches)", &weft, "");
    print_row("weft (scrape b., refs)", &weft_refs, "");
    print_row("weft (large batches)", &weft_large, "");
    print_row("victoria-metrics", &vm, " (import, all cores)");
    print_row("prometheus (promtool)", &prom, " (offline backfill)");
    printf("\n");
    if (weft.ran) {
        printf("weft scrape batches: %zu samples/batch, append %.2f s wall, %.2f s cpu "
               "(incl. %.2f s in periodic flushes every %d min of data), final flush+close "
               "%.2f s, refused samples %" PRIu64 ", read-back check %s\n",
               dataset_samples(&d) / (d.nscrapes * NWORKLOADS), weft.append_s, weft.append_cpu_s,
               weft.flush_s, flush_min, weft.close_s, weft.errors, weft.verified ? "ok" : "FAILED");
        printf("weft bytes by table/index: %s\n", weft.breakdown);
    }
    if (weft_refs.ran) {
        printf("weft scrape batches with series refs: append %.2f s wall, %.2f s cpu (incl. "
               "%.2f s in flushes), refused %" PRIu64 ", read-back check %s\n",
               weft_refs.append_s, weft_refs.append_cpu_s, weft_refs.flush_s, weft_refs.errors,
               weft_refs.verified ? "ok" : "FAILED");
    }
    if (weft_large.ran) {
        printf("weft large batches: %zu samples/batch, append %.2f s wall, %.2f s cpu, refused "
               "%" PRIu64 ", read-back check %s\n",
               dataset_samples(&d) / d.nscrapes * 50, weft_large.append_s, weft_large.append_cpu_s,
               weft_large.errors, weft_large.verified ? "ok" : "FAILED");
    }
    if (vm.ran) {
        printf("victoria-metrics: import+flush %.2f s; data dir after force merge and stop, "
               "cache/ (%" PRId64 " bytes) excluded; samples VM counts: %" PRIu64 "\n",
               vm.append_s, vm_cache, vm_count);
        printf("victoria-metrics keeps values as decimals and drops digits beyond about 14 "
               "significant ones (29883.249999999996 reads back as 29883.25); weft and "
               "Prometheus keep every float64 bit-exact\n");
    }
    if (prom.ran) {
        printf("prometheus: promtool backfill %.2f s, 2 h blocks; samples in blocks: %" PRIu64 "\n",
               prom.append_s, prom_count);
    }
    printf("\n");
    double wb = weft.ran ? (double)weft.bytes / (double)weft.samples : 0;
    if (weft.ran && vm.ran) {
        double vb = (double)vm.bytes / (double)vm.samples;
        printf("bytes/sample weft/victoria-metrics: %.3f (goal <= %.1f): %s\n", wb / vb,
               GOAL_BYTES_RATIO, wb / vb <= GOAL_BYTES_RATIO ? "MET" : "NOT MET");
    } else {
        printf("bytes/sample weft/victoria-metrics: n/a (%s)\n",
               weft.ran ? vm.skip : "weft did not run");
    }
    if (weft.ran && prom.ran) {
        double pb = (double)prom.bytes / (double)prom.samples;
        printf("bytes/sample weft/prometheus: %.3f\n", wb / pb);
    } else {
        printf("bytes/sample weft/prometheus: n/a (%s)\n",
               weft.ran ? prom.skip : "weft did not run");
    }
    if (weft.ran) {
        double rate = (double)weft.samples / weft.append_s;
        printf("append on one core, scrape batches: %.2f M samples/s (goal >= %.1f M): %s\n",
               rate / 1e6, GOAL_APPEND_RATE / 1e6, rate >= GOAL_APPEND_RATE ? "MET" : "NOT MET");
    }
    if (weft_refs.ran) {
        double rate = (double)weft_refs.samples / weft_refs.append_s;
        printf("append on one core, scrape batches, series refs: %.2f M samples/s (goal >= %.1f "
               "M): %s\n",
               rate / 1e6, GOAL_APPEND_RATE / 1e6, rate >= GOAL_APPEND_RATE ? "MET" : "NOT MET");
    }
    if (weft_large.ran) {
        double rate = (double)weft_large.samples / weft_large.append_s;
        printf("append on one core, large batches:  %.2f M samples/s (goal >= %.1f M): %s\n",
               rate / 1e6, GOAL_APPEND_RATE / 1e6, rate >= GOAL_APPEND_RATE ? "MET" : "NOT MET");
    }
    if (keep) {
        printf("kept: %s\n", root);
    } else {
        wt_rm_rf(root);
    }
    wf_free(root);
    wf_free(vm_bin);
    wf_free(prom_bin);
    dataset_free(&d);
    int failed = !weft.ran || !weft.verified || (weft_refs.ran && !weft_refs.verified) ||
                 (weft_large.ran && !weft_large.verified);
    return failed ? 1 : 0;
}
