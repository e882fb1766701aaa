/*
 * bench_store_spans.c - span store figures on synthetic service-mesh traces: append rate
 * (durable), bytes per span on disk, trace-by-id and search latency.
 *
 * Run (after `ninja -C build`):
 *   build/tests/bench_store_spans                 # 1,000,000 spans in a temporary directory
 *   build/tests/bench_store_spans --spans 200000  # fewer spans
 *   build/tests/bench_store_spans --dir /path     # keep the data directory (not removed)
 *   build/tests/bench_store_spans --ns            # nanosecond instead of microsecond timestamps
 *
 * The data: a bookinfo-like mesh of 10 services (an ingress gateway, productpage, details,
 * reviews v1-v3, ratings, and three backends), one client span (source proxy) and one server
 * span (destination proxy) per hop, 4 to 8 spans per trace, ~12 span attributes each as Envoy
 * reports them (http.method, http.url, http.status_code, upstream_cluster, node_id,
 * guid:x-request-id shared by the trace, user_agent, peer.address, istio.canonical_service,
 * istio.mesh_id, component, response_flags, ...) and 4 resource attributes per service. Times are
 * spread over the last hour, with microsecond precision as Envoy reports them (--ns for random
 * nanoseconds). Spans are appended durably in batches of 512 (ST_SYNC_PROCESS: survives kill -9).
 *
 * Figures: spans/s appended (time inside st_spans_append only, one thread; the wall time includes
 * waiting for the seal thread when the head runs ahead of it, the writer's CPU time does not
 * include the seal's encoding, which runs on that thread); bytes per span = every file of the data
 * directory after close (flush + WAL checkpoint), with a breakdown per table; trace-by-id latency
 * over 1000 random known traces; search latency over 100 queries each for service+tag,
 * service+operation+minDuration, and a needle (service + the x-request-id of one trace). Latencies
 * are median and p99 in ms. Nothing is asserted: this is a program, not a test.
 */
#include "st_span.h"
#include "wt_util.h"

#include "wf_alloc.h"
#include "wf_clock.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCH 512
#define MAX_TRACE_SPANS 8

typedef struct {
    const char *name; /* service.name */
    const char *canonical;
    const char *version;
    const char *ip;
    st_attr_t res[4];
} svc_t;

enum { GATEWAY, PRODUCTPAGE, DETAILS, REVIEWS1, REVIEWS2, REVIEWS3, RATINGS, MONGODB, MYSQL, AUTH };

static svc_t svcs[] = {
    {.name = "istio-ingressgateway.istio-system",
     .canonical = "istio-ingressgateway",
     .version = "latest",
     .ip = "10.44.0.7"},
    {.name = "productpage.default",
     .canonical = "productpage",
     .version = "v1",
     .ip = "10.44.1.12"},
    {.name = "details.default", .canonical = "details", .version = "v1", .ip = "10.44.1.20"},
    {.name = "reviews.default", .canonical = "reviews", .version = "v1", .ip = "10.44.2.31"},
    {.name = "reviews-v2.default", .canonical = "reviews", .version = "v2", .ip = "10.44.2.32"},
    {.name = "reviews-v3.default", .canonical = "reviews", .version = "v3", .ip = "10.44.2.33"},
    {.name = "ratings.default", .canonical = "ratings", .version = "v1", .ip = "10.44.3.40"},
    {.name = "mongodb.default", .canonical = "mongodb", .version = "v1", .ip = "10.44.3.50"},
    {.name = "mysqldb.default", .canonical = "mysqldb", .version = "v1", .ip = "10.44.3.51"},
    {.name = "ext-authz.istio-system",
     .canonical = "ext-authz",
     .version = "v1",
     .ip = "10.44.0.9"},
};

static const char *user_agents[] = {
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0 Safari",
    "curl/7.88.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 13_5) AppleWebKit/605.1.15 Version/16.6 Safari",
    "python-requests/2.28.1",
};

typedef struct {
    wf_arena_t a;
    st_span_t spans[BATCH + MAX_TRACE_SPANS];
    size_t n;
    uint64_t rng;
    int64_t t0_us, t1_us;
    bool ns;
} gen_t;

static st_attr_t str_attr(const char *k, const char *v)
{
    return (st_attr_t){wf_str(k), {.type = ST_VAL_STRING, .u.s = wf_str(v)}};
}

static st_attr_t int_attr(const char *k, int64_t v)
{
    return (st_attr_t){wf_str(k), {.type = ST_VAL_INT, .u.i = v}};
}

static char *fmt(gen_t *g, const char *f, ...) __attribute__((format(printf, 2, 3)));
static char *fmt(gen_t *g, const char *f, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(tmp, sizeof(tmp), f, ap);
    va_end(ap);
    return wf_arena_strndup(&g->a, tmp, (size_t)n);
}

static void rand_bytes(gen_t *g, uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i += 8) {
        uint64_t r = wt_rand(&g->rng);
        memcpy(p + i, &r, n - i < 8 ? n - i : 8);
    }
}

/* One hop: a client span of `from` and a server span of `to`, returns the server span. */
static st_span_t *hop(gen_t *g, const uint8_t tid[16], const uint8_t parent[8], int from, int to,
                      const char *path, int64_t start_us, int64_t dur_us, int status,
                      const char *guid, const char *ua)
{
    const svc_t *f = &svcs[from], *t = &svcs[to];
    for (int side = 0; side < 2; side++) {
        st_span_t *sp = &g->spans[g->n++];
        memset(sp, 0, sizeof(*sp));
        memcpy(sp->trace_id, tid, 16);
        rand_bytes(g, sp->span_id, 8);
        if (side == 0) {
            memcpy(sp->parent_span_id, parent, 8);
        } else {
            memcpy(sp->parent_span_id, g->spans[g->n - 2].span_id, 8);
        }
        const svc_t *me = side == 0 ? f : t;
        sp->service = wf_str(me->name);
        sp->kind = side == 0 ? ST_SPAN_KIND_CLIENT : ST_SPAN_KIND_SERVER;
        char *host = fmt(g, "%s:9080", t->canonical);
        sp->name = wf_str(fmt(g, "%s%s", host, path));
        int64_t skew = side == 0 ? 0 : 80 + (int64_t)(wt_rand(&g->rng) % 300);
        int64_t s_us = start_us + skew, d_us = dur_us - 2 * skew;
        if (g->ns) {
            uint64_t r = wt_rand(&g->rng);
            sp->start_ns = s_us * 1000 + (int64_t)(r % 1000);
            sp->end_ns = sp->start_ns + d_us * 1000 + (int64_t)((r >> 10) % 1000);
        } else {
            sp->start_ns = s_us * 1000;
            sp->end_ns = (s_us + d_us) * 1000;
        }
        sp->status_code = status >= 500 ? ST_STATUS_ERROR : ST_STATUS_UNSET;
        sp->resource_attrs = me->res;
        sp->n_resource_attrs = 4;
        sp->scope_name = WF_STR_LIT("envoy");
        st_attr_t *a = wf_arena_alloc(&g->a, 14 * sizeof(*a));
        size_t n = 0;
        a[n++] = str_attr("http.method", "GET");
        a[n++] = str_attr("http.url", fmt(g, "http://%s%s", host, path));
        a[n++] = int_attr("http.status_code", status);
        a[n++] = str_attr("upstream_cluster",
                          side == 0 ? fmt(g, "outbound|9080||%s.svc.cluster.local", t->name)
                                    : "inbound|9080||");
        a[n++] = str_attr("node_id", fmt(g,
                                         "sidecar~%s~%s-%s-7d4b9c%02x.default~default.svc."
                                         "cluster.local",
                                         me->ip, me->canonical, me->version,
                                         (unsigned)(wt_rand(&g->rng) % 3)));
        a[n++] = str_attr("guid:x-request-id", guid);
        a[n++] = str_attr("user_agent", ua);
        a[n++] = str_attr("peer.address", side == 0 ? t->ip : f->ip);
        a[n++] = str_attr("istio.canonical_service", me->canonical);
        a[n++] = str_attr("istio.mesh_id", "cluster.local");
        a[n++] = str_attr("istio.namespace", "default");
        a[n++] = str_attr("component", "proxy");
        a[n++] = str_attr("response_flags", status == 503 ? "UF" : "-");
        a[n++] = str_attr("http.protocol", "HTTP/1.1");
        sp->attrs = a;
        sp->n_attrs = n;
    }
    return &g->spans[g->n - 1];
}

static int64_t jitter(gen_t *g, int64_t base, int64_t spread)
{
    return base + (int64_t)(wt_rand(&g->rng) % (uint64_t)spread);
}

/* One trace (4 to 8 spans) starting at start_us; returns the trace id in tid. */
static void gen_trace(gen_t *g, int64_t start_us, uint8_t tid[16])
{
    rand_bytes(g, tid, 16);
    uint8_t r[16];
    rand_bytes(g, r, 16);
    char *guid = fmt(g, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                     r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11],
                     r[12], r[13], r[14], r[15]);
    const char *ua = user_agents[wt_rand(&g->rng) % 4];
    static const uint8_t root[8];
    int reviews = REVIEWS1 + (int)(wt_rand(&g->rng) % 3);
    bool fail = wt_rand(&g->rng) % 100 == 0;
    int64_t details_us = jitter(g, 1200, 2500), ratings_us = jitter(g, 900, 3000);
    int64_t reviews_us = jitter(g, 4000, 20000) + (reviews != REVIEWS1 ? ratings_us + 600 : 0);
    int64_t pp_us = details_us + reviews_us + jitter(g, 8000, 30000);
    int64_t total_us = pp_us + 700;
    int pid = (int)(wt_rand(&g->rng) % 10);
    char *pp_path = fmt(g, "/productpage?u=%d", pid % 3);
    st_span_t *pp = hop(g, tid, root, GATEWAY, PRODUCTPAGE, pp_path, start_us, total_us,
                        fail ? 503 : 200, guid, ua);
    hop(g, tid, pp->span_id, PRODUCTPAGE, DETAILS, fmt(g, "/details/%d", pid), start_us + 1500,
        details_us, 200, guid, ua);
    if (fail) {
        return;
    }
    st_span_t *rv = hop(g, tid, pp->span_id, PRODUCTPAGE, reviews, fmt(g, "/reviews/%d", pid),
                        start_us + 1800 + details_us, reviews_us, 200, guid, ua);
    if (reviews != REVIEWS1) {
        hop(g, tid, rv->span_id, reviews, RATINGS, fmt(g, "/ratings/%d", pid),
            start_us + 2400 + details_us, ratings_us, 200, guid, ua);
    }
}

static int64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return a < b ? -1 : a > b;
}

static void report(const char *what, int64_t *ns, size_t n)
{
    qsort(ns, n, sizeof(*ns), cmp_i64);
    printf("%-44s median %7.3f ms   p99 %7.3f ms   (n=%zu)\n", what, ns[n / 2] / 1e6,
           ns[(n * 99) / 100] / 1e6, n);
}

static void breakdown(const char *dir, size_t n_spans)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/weft.db", dir);
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return;
    }
    const char *q[][2] = {
        {"blocks (compressed data)", "SELECT sum(length(data)), count(*) FROM span_block_data"},
        {"bloom filters", "SELECT sum(length(bloom)), count(*) FROM span_blocks"},
        {"trace index rows", "SELECT 0, count(*) FROM span_trace_index"},
        {"page size x pages", "SELECT page_size * page_count, page_count FROM pragma_page_size,"
                              " pragma_page_count"},
        {"free pages", "SELECT 0, freelist_count FROM pragma_freelist_count"},
    };
    for (size_t i = 0; i < sizeof(q) / sizeof(q[0]); i++) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db, q[i][1], -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW) {
            int64_t bytes = sqlite3_column_int64(st, 0), count = sqlite3_column_int64(st, 1);
            printf("  %-28s %12lld bytes (%6.2f B/span), %lld rows/pages\n", q[i][0],
                   (long long)bytes, (double)bytes / (double)n_spans, (long long)count);
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
}

int main(int argc, char **argv)
{
    size_t target = 1000000;
    const char *keep_dir = NULL;
    bool ns = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--spans") == 0 && i + 1 < argc) {
            target = strtoull(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            keep_dir = argv[++i];
        } else if (strcmp(argv[i], "--ns") == 0) {
            ns = true;
        } else {
            fprintf(stderr, "usage: %s [--spans N] [--dir DIR] [--ns]\n", argv[0]);
            return 2;
        }
    }
    char *dir = keep_dir ? wf_strdup(keep_dir) : wt_tmpdir("bench-spans");
    st_options_t o;
    st_options_default(&o);
    o.dir = dir;
    st_store_t *s = NULL;
    int rc = st_store_open(&o, &s);
    if (rc != 0) {
        fprintf(stderr, "open: %s\n", st_strerror(rc));
        return 1;
    }
    for (size_t i = 0; i < sizeof(svcs) / sizeof(svcs[0]); i++) {
        svc_t *v = &svcs[i];
        char pod[128];
        snprintf(pod, sizeof(pod), "%s-%s-7d4b9c5f6-x2x9z", v->canonical, v->version);
        v->res[0] = str_attr("service.name", v->name);
        v->res[1] = str_attr("k8s.namespace.name", "default");
        v->res[2] = str_attr("k8s.pod.name", wf_strdup(pod));
        v->res[3] = str_attr("istio.version", "1.20.3");
    }
    gen_t *g = wf_calloc(1, sizeof(*g));
    wf_arena_init(&g->a, 1 << 20, 0);
    g->rng = 42;
    g->ns = ns;
    int64_t now_us = wf_wall_ns() / 1000;
    g->t0_us = now_us - 3600LL * 1000000;
    size_t max_traces = target / 4 + 16;
    uint8_t(*tids)[16] = wf_malloc(max_traces * sizeof(*tids));
    int64_t *tstart = wf_malloc(max_traces * sizeof(*tstart));
    size_t n_traces = 0, n_spans = 0;
    int64_t append_ns = 0, append_cpu_ns = 0;
    /* Traces start at a steady rate over the hour before now. */
    double step_us = 3600e6 / ((double)target / 6.0);
    while (n_spans < target) {
        g->n = 0;
        wf_arena_reset(&g->a);
        while (g->n < BATCH && n_spans + g->n < target) {
            int64_t start = g->t0_us + (int64_t)(n_traces * step_us);
            tstart[n_traces] = start;
            gen_trace(g, start, tids[n_traces]);
            n_traces++;
        }
        size_t n = g->n;
        if (n_spans + n > target) {
            n = target - n_spans;
        }
        int64_t t = wf_mono_ns(), c = cpu_ns();
        size_t bad = 0;
        rc = st_spans_append(s, g->spans, n, &bad);
        append_ns += wf_mono_ns() - t;
        append_cpu_ns += cpu_ns() - c;
        if (rc != 0) {
            fprintf(stderr, "append: %s (span %zu)\n", st_strerror(rc), bad);
            return 1;
        }
        n_spans += n;
    }
    int64_t t = wf_mono_ns();
    st_store_flush(s);
    int64_t flush_ns = wf_mono_ns() - t;
    printf("spans appended: %zu in %zu traces, batches of %d, durable (ST_SYNC_PROCESS)\n", n_spans,
           n_traces, BATCH);
    printf("append rate: %.0f spans/s wall, %.0f spans/s per CPU-second of the writer thread\n"
           "  (%.2f s wall, %.2f s CPU in st_spans_append; final flush %.1f ms)\n",
           (double)n_spans / (append_ns / 1e9), (double)n_spans / (append_cpu_ns / 1e9),
           append_ns / 1e9, append_cpu_ns / 1e9, flush_ns / 1e6);
    st_store_close(s);
    int64_t bytes = wt_du_bytes(dir);
    printf("on disk after close (flush + checkpoint): %lld bytes = %.2f bytes/span\n",
           (long long)bytes, (double)bytes / (double)n_spans);
    breakdown(dir, n_spans);

    if ((rc = st_store_open(&o, &s)) != 0) {
        fprintf(stderr, "reopen: %s\n", st_strerror(rc));
        return 1;
    }
    size_t nq = 1000;
    int64_t *lat = wf_malloc(nq * sizeof(*lat));
    uint64_t rng = 7;
    size_t found_spans = 0;
    for (size_t i = 0; i < nq; i++) {
        size_t k = (size_t)(wt_rand(&rng) % (n_traces - 1)); /* the last may be cut short */
        st_span_list_t *l = NULL;
        t = wf_mono_ns();
        rc = st_trace_get(s, tids[k], &l);
        lat[i] = wf_mono_ns() - t;
        if (rc != 0) {
            fprintf(stderr, "trace_get: %s\n", st_strerror(rc));
            return 1;
        }
        found_spans += l->n;
        st_span_list_free(l);
    }
    report("trace by id", lat, nq);
    printf("  (%.2f spans per trace returned)\n", (double)found_spans / (double)nq);

    struct {
        const char *what;
        st_trace_query_t q;
        st_tag_filter_t tag;
    } qs[3];
    memset(qs, 0, sizeof(qs));
    qs[0].what = "search service+tag (ratings, status 200)";
    qs[0].q.service = wf_str(svcs[RATINGS].name);
    qs[0].tag = (st_tag_filter_t){WF_STR_LIT("http.status_code"), WF_STR_LIT("200")};
    qs[0].q.tags = &qs[0].tag;
    qs[0].q.n_tags = 1;
    qs[1].what = "search service+tag (productpage, 503: 1%)";
    qs[1].q.service = wf_str(svcs[PRODUCTPAGE].name);
    qs[1].tag = (st_tag_filter_t){WF_STR_LIT("http.status_code"), WF_STR_LIT("503")};
    qs[1].q.tags = &qs[1].tag;
    qs[1].q.n_tags = 1;
    qs[2].what = "search service+operation+minDuration 40ms";
    qs[2].q.service = wf_str(svcs[PRODUCTPAGE].name);
    qs[2].q.operation = WF_STR_LIT("productpage:9080/productpage?u=1");
    qs[2].q.min_duration_ns = 40000000;
    for (size_t k = 0; k < 3; k++) {
        qs[k].q.span_kind = -1;
        size_t n = 100, hits = 0;
        for (size_t i = 0; i < n; i++) {
            st_trace_ids_t *ids = NULL;
            t = wf_mono_ns();
            rc = st_trace_search(s, &qs[k].q, &ids);
            lat[i] = wf_mono_ns() - t;
            if (rc != 0) {
                fprintf(stderr, "search: %s\n", st_strerror(rc));
                return 1;
            }
            hits += ids->n;
            st_trace_ids_free(ids);
        }
        report(qs[k].what, lat, n);
        printf("  (%.1f traces per result, limit 20)\n", (double)hits / (double)n);
    }
    /* A needle: one trace's request id, found through the blooms. */
    {
        size_t n = 100, hits = 0;
        for (size_t i = 0; i < n; i++) {
            size_t k = (size_t)(wt_rand(&rng) % (n_traces - 1));
            st_span_list_t *l = NULL;
            if (st_trace_get(s, tids[k], &l) != 0) {
                return 1;
            }
            st_tag_filter_t tag = {WF_STR_LIT("guid:x-request-id"), {0}};
            for (size_t a = 0; a < l->spans[0].n_attrs; a++) {
                if (wf_str_eq_c(l->spans[0].attrs[a].key, "guid:x-request-id")) {
                    tag.value = l->spans[0].attrs[a].value.u.s;
                }
            }
            st_trace_query_t q = {
                .service = l->spans[0].service, .span_kind = -1, .tags = &tag, .n_tags = 1};
            st_trace_ids_t *ids = NULL;
            t = wf_mono_ns();
            rc = st_trace_search(s, &q, &ids);
            lat[i] = wf_mono_ns() - t;
            if (rc != 0) {
                return 1;
            }
            hits += ids->n == 1 && memcmp(ids->ids[0], tids[k], 16) == 0;
            st_trace_ids_free(ids);
            st_span_list_free(l);
        }
        report("search service+tag needle (x-request-id)", lat, n);
        printf("  (%zu of %zu found exactly their trace)\n", hits, n);
    }
    {
        st_dependency_list_t *d = NULL;
        t = wf_mono_ns();
        rc = st_dependencies(s, 0, INT64_MAX, &d);
        int64_t dt = wf_mono_ns() - t;
        if (rc == 0) {
            printf("dependencies over everything: %zu edges in %.1f ms\n", d->n, dt / 1e6);
            st_dependency_list_free(d);
        }
    }
    st_store_close(s);
    if (keep_dir == NULL) {
        wt_rm_rf(dir);
    }
    wf_free(lat);
    wf_free(tids);
    wf_free(tstart);
    wf_arena_free(&g->a);
    wf_free(g);
    wf_free(dir);
    return 0;
}
