/*
 * bench_spans.c - span ingest and query figures of the real `weft collector` over HTTP: OTLP
 * protobuf ingest rate with durable acknowledgements, bytes per span on disk, and Jaeger v1
 * trace-by-id and search latency at --spans stored spans (issue #4's goals).
 *
 * Run (after `ninja -C build`, WEFT_BENCH=ON):
 *   build/tests/bench_spans                       # 1,000,000 spans, 4 senders, batches of 512
 *   build/tests/bench_spans --spans 200000        # quicker
 *   flags: --spans N --senders N --batch N --queries N (per kind, default 200)
 *          --keep DIR (use DIR as the data directory and leave it there)
 * The weft binary is $WEFT_BIN, else ../weft next to this program.
 *
 * The data is what Istio's sidecars report for a bookinfo mesh: an ingress gateway, productpage,
 * details, reviews v1/v2/v3 and ratings, two pods each; one CLIENT span (caller's proxy) and one
 * SERVER span (callee's proxy) per hop, 6 or 8 spans per trace; the tags Envoy sets (http.method,
 * http.url, http.protocol, http.status_code as a string, upstream_cluster, node_id,
 * guid:x-request-id, user_agent, peer.address, istio.canonical_service/revision, istio.mesh_id,
 * istio.namespace, component=proxy, response_flags, downstream_cluster) and four resource
 * attributes per pod. Times have microsecond precision, as Envoy's. About 3 % of the traces fail:
 * a 500 from details or ratings, or a 503 (response_flags UF) between productpage and reviews,
 * and the failure shows up the call chain to the gateway. Traces start at a steady rate over 45
 * minutes ending 30 s before the program starts, in time order, so a lookback=1h search sees
 * them all while the run lasts less than ~14 minutes.
 *
 * Every request is encoded before the collector starts (ExportTraceServiceRequest, one
 * ResourceSpans per pod present in the batch, scope "envoy"). The collector runs with its
 * default durability (--sync=process: a 200 means the SQLite COMMIT of the batch's log record
 * returned, which survives kill -9). Steps:
 *   1. --senders threads send the batches (sender i takes batches i, i+senders, ...) back to
 *      back on keep-alive connections; spans/s = acknowledged spans / wall time from the first
 *      request to the last answer. The collector's CPU time (from /proc) is printed beside it.
 *   2. The collector is stopped (SIGTERM: it flushes its head into blocks, closes the store and
 *      checkpoints the WAL); bytes/span = every file of the data directory / spans stored.
 *   3. It is started again on the same directory, and one client on one keep-alive connection
 *      times --queries requests of each kind, one after another: GET /api/traces/{id} for
 *      random known traces, and GET /api/traces?service=productpage.default&tags=...&limit=20
 *      &lookback=1h for a rare tag (http.status_code 500, ~3 % of traces), a common one
 *      (http.status_code 200) and a needle (one trace's guid:x-request-id). Each answer is
 *      checked (status 200; span count of the trace; traces returned) and the check printed.
 * Figures only: nothing is asserted, and the figures include the client's share of the CPU
 * (same machine).
 */
#include "wf_alloc.h"
#include "wf_buf.h"
#include "wf_clock.h"
#include "wt_rw.h"
#include "wt_util.h"

#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_TRACE_SPANS 8
#define WINDOW_US (45LL * 60 * 1000000)
#define GOAL_SPANS_PER_S 150000.0
#define GOAL_BYTES_PER_SPAN 50.0
#define GOAL_TRACE_MS 2.0
#define GOAL_SEARCH_MS 30.0

/* A workload of the mesh: what its proxies report about themselves. */
typedef struct {
    const char *service;   /* service.name: Istio's Envoy reports <app>.<namespace> */
    const char *canonical; /* istio.canonical_service */
    const char *revision;  /* istio.canonical_revision */
    const char *ns;
    const char *ip[2]; /* two pods */
} workload_t;

enum { GATEWAY, PRODUCTPAGE, DETAILS, REVIEWS1, REVIEWS2, REVIEWS3, RATINGS, N_WORKLOADS };

static const workload_t workloads[N_WORKLOADS] = {
    {"istio-ingressgateway.istio-system",
     "istio-ingressgateway",
     "latest",
     "istio-system",
     {"10.44.0.7", "10.44.0.8"}},
    {"productpage.default", "productpage", "v1", "default", {"10.44.1.12", "10.44.1.13"}},
    {"details.default", "details", "v1", "default", {"10.44.1.20", "10.44.1.21"}},
    {"reviews.default", "reviews", "v1", "default", {"10.44.2.31", "10.44.2.34"}},
    {"reviews.default", "reviews", "v2", "default", {"10.44.2.32", "10.44.2.35"}},
    {"reviews.default", "reviews", "v3", "default", {"10.44.2.33", "10.44.2.36"}},
    {"ratings.default", "ratings", "v1", "default", {"10.44.3.40", "10.44.3.41"}},
};

static const char *const user_agents[] = {
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0 Safari",
    "curl/7.88.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 13_5) AppleWebKit/605.1.15 Version/16.6 Safari",
    "python-requests/2.28.1",
};

/* One generated span, before encoding. */
typedef struct {
    uint8_t tid[16], sid[8], parent[8];
    int wl, pod;  /* the reporting proxy */
    int peer_wl;  /* the other side of the hop */
    int peer_pod; /* its pod */
    int callee;   /* the hop's destination (names the span, as Envoy does) */
    int client;   /* 1: CLIENT (caller's proxy), 0: SERVER */
    int64_t start_us, end_us;
    int status;
    int ua;
    int path_id;
    const char *path;
    char guid[37];
} gspan_t;

/* What the queries need to know about a trace. */
typedef struct {
    uint8_t id[16];
    char guid[37];
    int n_spans;
} trace_t;

typedef struct {
    size_t spans, senders, batch, queries;
    const char *keep;
} opts_t;

typedef struct {
    uint64_t rng;
    trace_t *traces;
    size_t n_traces, cap_traces;
    gspan_t pending[MAX_TRACE_SPANS];
    size_t n_pending, pending_off;
} gen_t;

typedef struct {
    wf_buf_t *bodies;
    size_t *n_spans;
    size_t n;
} reqs_t;

static void rand_bytes(uint64_t *rng, uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i += 8) {
        uint64_t r = wt_rand(rng);
        memcpy(p + i, &r, n - i < 8 ? n - i : 8);
    }
}

static int64_t jitter(gen_t *g, int64_t base, int64_t spread)
{
    return base + (int64_t)(wt_rand(&g->rng) % (uint64_t)spread);
}

/* One hop from `from` to `to`: a CLIENT span then a SERVER span in g->pending; returns the
 * index of the last one there. */
static size_t hop(gen_t *g, const trace_t *t, const uint8_t parent[8], int from, int to,
                  const char *path, int64_t start_us, int64_t dur_us, int status, int ua)
{
    int pods[2] = {(int)(wt_rand(&g->rng) % 2), (int)(wt_rand(&g->rng) % 2)};
    int64_t skew = 80 + (int64_t)(wt_rand(&g->rng) % 300);
    /* An upstream failure (UF) never reaches the callee: only the caller's proxy reports it. */
    int sides = status == 503 ? 1 : 2;
    for (int side = 0; side < sides; side++) {
        gspan_t *sp = &g->pending[g->n_pending++];
        memcpy(sp->tid, t->id, 16);
        rand_bytes(&g->rng, sp->sid, 8);
        if (side == 0) {
            memcpy(sp->parent, parent, 8);
        } else {
            memcpy(sp->parent, g->pending[g->n_pending - 2].sid, 8);
        }
        sp->wl = side == 0 ? from : to;
        sp->pod = pods[side];
        sp->peer_wl = side == 0 ? to : from;
        sp->peer_pod = pods[1 - side];
        sp->callee = to;
        sp->client = side == 0;
        sp->start_us = start_us + (side == 0 ? 0 : skew);
        sp->end_us = start_us + dur_us - (side == 0 ? 0 : skew);
        sp->status = status;
        sp->ua = ua;
        sp->path = path;
        memcpy(sp->guid, t->guid, sizeof(sp->guid));
    }
    return g->n_pending - 1;
}

/* Generate the next trace into g->pending. */
static void gen_trace(gen_t *g, int64_t start_us)
{
    if (g->n_traces == g->cap_traces) {
        g->cap_traces = g->cap_traces ? 2 * g->cap_traces : 4096;
        g->traces = wf_realloc(g->traces, g->cap_traces * sizeof(trace_t));
    }
    trace_t *t = &g->traces[g->n_traces++];
    rand_bytes(&g->rng, t->id, 16);
    uint8_t r[16];
    rand_bytes(&g->rng, r, 16);
    snprintf(t->guid, sizeof(t->guid),
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0], r[1],
             r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14],
             r[15]);
    static const uint8_t root[8];
    static const char *const paths[] = {"/productpage", "/details/0", "/reviews/0", "/ratings/0"};
    int ua = (int)(wt_rand(&g->rng) % 4);
    int reviews = REVIEWS1 + (int)(wt_rand(&g->rng) % 3);
    /* ~3 % of traces fail, at one of three places. */
    int fail = wt_rand(&g->rng) % 100 < 3 ? 1 + (int)(wt_rand(&g->rng) % 3) : 0;
    if (fail == 3 && reviews == REVIEWS1) {
        fail = 2; /* reviews v1 calls no ratings: fail between productpage and reviews instead */
    }
    int det_status = fail == 1 ? 500 : 200;
    int rev_status = fail == 2 ? 503 : fail == 3 ? 500 : 200;
    int rat_status = fail == 3 ? 500 : 200;
    int top_status = fail ? 500 : 200;
    int64_t det_us = jitter(g, 1200, 2500), rat_us = jitter(g, 900, 3000);
    int64_t rev_us = jitter(g, 4000, 20000) + (reviews != REVIEWS1 ? rat_us + 600 : 0);
    int64_t pp_us = det_us + rev_us + jitter(g, 8000, 30000);

    g->n_pending = 0;
    g->pending_off = 0;
    size_t pp =
        hop(g, t, root, GATEWAY, PRODUCTPAGE, paths[0], start_us, pp_us + 700, top_status, ua);
    uint8_t pp_sid[8];
    memcpy(pp_sid, g->pending[pp].sid, 8);
    hop(g, t, pp_sid, PRODUCTPAGE, DETAILS, paths[1], start_us + 1500, det_us, det_status, ua);
    size_t rv = hop(g, t, pp_sid, PRODUCTPAGE, reviews, paths[2], start_us + 1800 + det_us, rev_us,
                    rev_status, ua);
    if (reviews != REVIEWS1 && fail != 2) {
        uint8_t rv_sid[8];
        memcpy(rv_sid, g->pending[rv].sid, 8);
        hop(g, t, rv_sid, reviews, RATINGS, paths[3], start_us + 2400 + det_us, rat_us, rat_status,
            ua);
    }
    t->n_spans = (int)g->n_pending;
}

/* ---- OTLP protobuf encoding (opentelemetry-proto trace.proto, common.proto) ---------------- */

static size_t uvlen(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* A KeyValue{key, AnyValue{string_value}} as field `field` of the enclosing message: the sizes
 * are known up front, so it is written in place with no scratch buffer. */
static void pb_kv(wf_buf_t *b, uint32_t field, const char *k, const char *v)
{
    size_t kl = strlen(k), vl = strlen(v);
    size_t any = 1 + uvlen(vl) + vl;
    size_t kv = 1 + uvlen(kl) + kl + 1 + uvlen(any) + any;
    wt_pb_tag(b, field, WT_PB_LEN);
    wf_buf_put_uvarint(b, kv);
    wt_pb_bytes(b, 1, k, kl);
    wt_pb_tag(b, 2, WT_PB_LEN);
    wf_buf_put_uvarint(b, any);
    wt_pb_bytes(b, 1, v, vl);
}

static void pb_kvf(wf_buf_t *b, uint32_t field, const char *k, const char *f, ...)
    __attribute__((format(printf, 4, 5)));
static void pb_kvf(wf_buf_t *b, uint32_t field, const char *k, const char *f, ...)
{
    char v[512];
    va_list ap;
    va_start(ap, f);
    vsnprintf(v, sizeof(v), f, ap);
    va_end(ap);
    pb_kv(b, field, k, v);
}

static void pod_name(int wl, int pod, char *out, size_t len)
{
    const workload_t *w = &workloads[wl];
    snprintf(out, len, "%s-%s-7d4b9c5f6-%c%c9z", w->canonical, w->revision, 'a' + pod * 3,
             'k' + wl);
}

/* Span (trace.proto): 1 trace_id, 2 span_id, 4 parent_span_id, 5 name, 6 kind, 7/8 start/end
 * fixed64 ns, 9 attributes, 15 status {3 code}. */
static void encode_span(const gspan_t *sp, wf_buf_t *b)
{
    const workload_t *me = &workloads[sp->wl], *peer = &workloads[sp->peer_wl];
    const workload_t *callee = &workloads[sp->callee];
    char pod[96];
    pod_name(sp->wl, sp->pod, pod, sizeof(pod));
    wt_pb_bytes(b, 1, sp->tid, 16);
    wt_pb_bytes(b, 2, sp->sid, 8);
    static const uint8_t zero[8];
    if (memcmp(sp->parent, zero, 8) != 0) {
        wt_pb_bytes(b, 4, sp->parent, 8);
    }
    char name[160];
    snprintf(name, sizeof(name), "%s.%s.svc.cluster.local:9080/*", callee->canonical, callee->ns);
    wt_pb_str(b, 5, name);
    wt_pb_varint(b, 6, sp->client ? 3 : 2);
    wt_pb_fixed64(b, 7, (uint64_t)sp->start_us * 1000);
    wt_pb_fixed64(b, 8, (uint64_t)sp->end_us * 1000);
    pb_kv(b, 9, "http.method", "GET");
    pb_kvf(b, 9, "http.url", "http://%s:9080%s", callee->canonical, sp->path);
    pb_kv(b, 9, "http.protocol", "HTTP/1.1");
    pb_kvf(b, 9, "http.status_code", "%d", sp->status);
    if (sp->client) {
        pb_kvf(b, 9, "upstream_cluster", "outbound|9080||%s.%s.svc.cluster.local",
               callee->canonical, callee->ns);
    } else {
        pb_kv(b, 9, "upstream_cluster", "inbound|9080||");
    }
    pb_kvf(b, 9, "node_id", "%s~%s~%s.%s~%s.svc.cluster.local",
           sp->wl == GATEWAY ? "router" : "sidecar", me->ip[sp->pod], pod, me->ns, me->ns);
    pb_kv(b, 9, "guid:x-request-id", sp->guid);
    pb_kv(b, 9, "user_agent", user_agents[sp->ua]);
    pb_kv(b, 9, "peer.address", peer->ip[sp->peer_pod]);
    pb_kv(b, 9, "istio.canonical_service", me->canonical);
    pb_kv(b, 9, "istio.canonical_revision", me->revision);
    pb_kv(b, 9, "istio.mesh_id", "cluster.local");
    pb_kv(b, 9, "istio.namespace", me->ns);
    pb_kv(b, 9, "component", "proxy");
    pb_kv(b, 9, "response_flags", sp->status == 503 ? "UF" : "-");
    pb_kv(b, 9, "downstream_cluster", "-");
    if (sp->status >= 500) {
        /* Status{code = STATUS_CODE_ERROR} */
        uint8_t st[2] = {3 << 3 | WT_PB_VARINT, 2};
        wt_pb_bytes(b, 15, st, sizeof(st));
    }
}

typedef struct {
    wf_buf_t span, scope, res;
} scratch_t;

/* An ExportTraceServiceRequest for sp[0..n): one ResourceSpans per pod present, in order of
 * first appearance, each with one ScopeSpans. */
static void encode_request(const gspan_t *sp, size_t n, scratch_t *s, wf_buf_t *out)
{
    bool done[N_WORKLOADS * 2] = {false};
    for (size_t i = 0; i < n; i++) {
        int r = sp[i].wl * 2 + sp[i].pod;
        if (done[r]) {
            continue;
        }
        done[r] = true;
        const workload_t *w = &workloads[sp[i].wl];
        /* ScopeSpans: 1 scope (InstrumentationScope{1 name}), 2 spans */
        wf_buf_t *ss = &s->scope;
        wf_buf_reset(ss);
        wt_pb_tag(ss, 1, WT_PB_LEN);
        wf_buf_put_uvarint(ss, 2 + strlen("envoy"));
        wt_pb_str(ss, 1, "envoy");
        for (size_t j = i; j < n; j++) {
            if (sp[j].wl * 2 + sp[j].pod != r) {
                continue;
            }
            wf_buf_reset(&s->span);
            encode_span(&sp[j], &s->span);
            wt_pb_bytes(ss, 2, s->span.data, s->span.len);
        }
        /* Resource: 1 attributes */
        char pod[96];
        pod_name(sp[i].wl, sp[i].pod, pod, sizeof(pod));
        wf_buf_reset(&s->res);
        pb_kv(&s->res, 1, "service.name", w->service);
        pb_kv(&s->res, 1, "k8s.namespace.name", w->ns);
        pb_kv(&s->res, 1, "k8s.pod.name", pod);
        pb_kv(&s->res, 1, "istio.version", "1.20.3");
        /* ResourceSpans: 1 resource, 2 scope_spans; as field 1 of the request */
        size_t rs = 1 + uvlen(s->res.len) + s->res.len + 1 + uvlen(ss->len) + ss->len;
        wt_pb_tag(out, 1, WT_PB_LEN);
        wf_buf_put_uvarint(out, rs);
        wt_pb_bytes(out, 1, s->res.data, s->res.len);
        wt_pb_bytes(out, 2, ss->data, ss->len);
    }
}

/* Every request, in sending order; traces start evenly over WINDOW_US before end_us. */
static void build_requests(const opts_t *o, gen_t *g, int64_t end_us, reqs_t *out, size_t *bytes)
{
    size_t n_req = (o->spans + o->batch - 1) / o->batch;
    out->bodies = wf_calloc(n_req, sizeof(wf_buf_t));
    out->n_spans = wf_calloc(n_req, sizeof(size_t));
    out->n = 0;
    gspan_t *batch = wf_malloc(o->batch * sizeof(gspan_t));
    scratch_t s = {WF_BUF_INIT, WF_BUF_INIT, WF_BUF_INIT};
    /* ~7 spans per trace on average */
    double step_us = (double)WINDOW_US / ((double)o->spans / 7.0);
    int64_t t0 = end_us - WINDOW_US;
    size_t made = 0;
    *bytes = 0;
    while (made < o->spans) {
        size_t n = 0;
        while (n < o->batch && made + n < o->spans) {
            if (g->pending_off == g->n_pending) {
                gen_trace(g, t0 + (int64_t)((double)g->n_traces * step_us));
            }
            batch[n++] = g->pending[g->pending_off++];
        }
        wf_buf_t *b = &out->bodies[out->n];
        encode_request(batch, n, &s, b);
        out->n_spans[out->n++] = n;
        *bytes += b->len;
        made += n;
    }
    /* The last trace may be cut short: record what was really sent. */
    g->traces[g->n_traces - 1].n_spans -= (int)(g->n_pending - g->pending_off);
    wf_free(batch);
    wf_buf_free(&s.span);
    wf_buf_free(&s.scope);
    wf_buf_free(&s.res);
}

/* ---- sending ------------------------------------------------------------------------------- */

typedef struct {
    const reqs_t *reqs;
    size_t first, step;
    int port;
    size_t ok, failed;
    int64_t *lat_ns; /* one per request sent by this sender */
    size_t n_lat;
    int first_bad_status;
    char first_bad_body[200];
} sender_t;

static void *send_main(void *arg)
{
    sender_t *s = arg;
    wt_conn_t *c = wt_conn_open(s->port);
    wf_buf_t resp = WF_BUF_INIT;
    for (size_t i = s->first; i < s->reqs->n; i += s->step) {
        int st = -1;
        int64_t t = wf_mono_ns();
        for (int attempt = 0; attempt < 3 && st < 0; attempt++) {
            if (c == NULL && (c = wt_conn_open(s->port)) == NULL) {
                continue;
            }
            wf_buf_reset(&resp);
            st =
                wt_conn_request(c, "POST", "/v1/traces", "Content-Type: application/x-protobuf\r\n",
                                s->reqs->bodies[i].data, s->reqs->bodies[i].len, &resp);
            if (st < 0) {
                wt_conn_close(c);
                c = NULL;
            }
        }
        s->lat_ns[s->n_lat++] = wf_mono_ns() - t;
        if (st == 200) {
            s->ok += s->reqs->n_spans[i];
        } else {
            s->failed += s->reqs->n_spans[i];
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

/* ---- figures ------------------------------------------------------------------------------- */

static int cmp_i64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return a < b ? -1 : a > b;
}

/* Sorts ns; *median_ms and *p99_ms get the figures. */
static void percentiles(int64_t *ns, size_t n, double *median_ms, double *p99_ms)
{
    qsort(ns, n, sizeof(*ns), cmp_i64);
    *median_ms = (double)ns[n / 2] / 1e6;
    *p99_ms = (double)ns[(n * 99) / 100] / 1e6;
}

static void loadavg(char *out, size_t len)
{
    FILE *f = fopen("/proc/loadavg", "r");
    if (f == NULL || fgets(out, (int)len, f) == NULL) {
        snprintf(out, len, "unknown\n");
    }
    if (f != NULL) {
        fclose(f);
    }
    out[strcspn(out, "\n")] = '\0';
}

/* CPU seconds (user + system) the process has used so far, from /proc/<pid>/stat. */
static double cpu_seconds(pid_t pid)
{
    char path[64], line[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }
    double s = 0;
    if (fgets(line, sizeof(line), f) != NULL) {
        /* fields 14 and 15 (utime, stime) follow the parenthesised command name */
        const char *p = strrchr(line, ')');
        unsigned long ut = 0, st = 0;
        if (p != NULL &&
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2) {
            s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
        }
    }
    fclose(f);
    return s;
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

/* Start `weft collector` on a free port over dir; returns its pid and port, or -1. */
static pid_t start_collector(const char *weft, const char *dir, const char *logp, int *port)
{
    char a_listen[64], a_dir[4200];
    *port = wt_free_port();
    snprintf(a_listen, sizeof(a_listen), "--listen=127.0.0.1:%d", *port);
    snprintf(a_dir, sizeof(a_dir), "--data-dir=%s", dir);
    /* The SDK default ports stay off: other programs on the machine may hold them. */
    char *av[] = {(char *)weft,        "collector",           a_listen, a_dir, "--log-level=error",
                  "--otlp-listen=off", "--zipkin-listen=off", NULL};
    pid_t pid = wt_spawn(av, logp);
    if (!wt_wait_port(*port, 30000)) {
        wt_stop(pid, 10000);
        return -1;
    }
    for (int waited = 0; waited <= 30000; waited += 100) {
        if (wt_http(*port, "GET", "/-/ready", NULL, 0, NULL) == 200) {
            return pid;
        }
        usleep(100000);
    }
    wt_stop(pid, 10000);
    return -1;
}

/* The integer after "key": in a JSON body, or -1. */
static long long json_int(const char *body, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *p = body ? strstr(body, pat) : NULL;
    return p ? strtoll(p + strlen(pat), NULL, 10) : -1;
}

static size_t count_occurrences(const char *s, const char *needle)
{
    size_t n = 0, l = strlen(needle);
    for (const char *p = s; (p = strstr(p, needle)) != NULL; p += l) {
        n++;
    }
    return n;
}

static void breakdown(const char *dir, size_t n_spans)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/weft.db", dir);
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return;
    }
    static const char *const q[][2] = {
        {"compressed blocks", "SELECT sum(length(data)), count(*) FROM span_block_data"},
        {"bloom filters", "SELECT sum(length(bloom)), count(*) FROM span_blocks"},
        {"trace index", "SELECT 0, count(*) FROM span_trace_index"},
        {"free pages", "SELECT 0, freelist_count FROM pragma_freelist_count"},
    };
    for (size_t i = 0; i < sizeof(q) / sizeof(q[0]); i++) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db, q[i][1], -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW) {
            long long bytes = sqlite3_column_int64(st, 0), rows = sqlite3_column_int64(st, 1);
            if (bytes > 0) {
                printf("  of which %-18s %12lld bytes (%6.2f B/span), %lld rows\n", q[i][0], bytes,
                       (double)bytes / (double)n_spans, rows);
            } else {
                printf("  of which %-18s %lld rows/pages (size inside the page total)\n", q[i][0],
                       rows);
            }
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
}

/* Time `n` GETs of paths made by path_fn on one keep-alive connection; check_fn looks at each
 * answer and returns true when it is right. Prints median and p99. */
typedef void (*path_fn_t)(size_t i, const gen_t *g, uint64_t *rng, char *path, size_t len,
                          size_t *trace);
typedef bool (*check_fn_t)(const char *body, const gen_t *g, size_t trace, size_t *units);

static void time_queries(int port, pid_t pid, const char *what, size_t n, const gen_t *g,
                         path_fn_t pf, check_fn_t cf, const char *unit, double goal_ms, bool *met)
{
    double cpu0 = cpu_seconds(pid);
    wt_conn_t *c = wt_conn_open(port);
    wf_buf_t body = WF_BUF_INIT;
    int64_t *lat = wf_malloc(n * sizeof(*lat));
    uint64_t rng = 7;
    size_t good = 0, units = 0, errors = 0;
    char path[1024];
    for (size_t i = 0; i < n; i++) {
        size_t trace = 0;
        pf(i, g, &rng, path, sizeof(path), &trace);
        wf_buf_reset(&body);
        int64_t t = wf_mono_ns();
        int st = c ? wt_conn_request(c, "GET", path, NULL, NULL, 0, &body) : -1;
        lat[i] = wf_mono_ns() - t;
        if (st < 0) {
            wt_conn_close(c);
            c = wt_conn_open(port);
        }
        if (st != 200) {
            errors++;
            continue;
        }
        size_t u = 0;
        good += cf(wf_buf_cstr(&body), g, trace, &u);
        units += u;
    }
    double med, p99;
    percentiles(lat, n, &med, &p99);
    *met = p99 < goal_ms && good == n;
    printf("%-46s median %7.3f ms  p99 %7.3f ms  (n=%zu, goal < %.0f ms)\n", what, med, p99, n,
           goal_ms);
    printf("  check: %zu of %zu answers right, %zu not 200; %.1f %s per answer; collector CPU "
           "%.2f ms per request\n",
           good, n, errors, n > errors ? (double)units / (double)(n - errors) : 0.0, unit,
           (cpu_seconds(pid) - cpu0) * 1e3 / (double)n);
    wt_conn_close(c);
    wf_buf_free(&body);
    wf_free(lat);
}

static void path_trace(size_t i, const gen_t *g, uint64_t *rng, char *path, size_t len,
                       size_t *trace)
{
    (void)i;
    *trace = (size_t)(wt_rand(rng) % g->n_traces);
    const uint8_t *id = g->traces[*trace].id;
    int off = snprintf(path, len, "/api/traces/");
    for (int k = 0; k < 16; k++) {
        off += snprintf(path + off, len - (size_t)off, "%02x", id[k]);
    }
}

static bool check_trace(const char *body, const gen_t *g, size_t trace, size_t *units)
{
    /* one operationName per span ("spanID" also appears in references) */
    *units = count_occurrences(body, "\"operationName\"");
    return *units == (size_t)g->traces[trace].n_spans &&
           count_occurrences(body, "\"processes\"") == 1;
}

static void search_path(char *path, size_t len, const char *key, const char *value)
{
    /* tags={"key":"value"}, percent-encoded as the Jaeger UI sends it */
    snprintf(path, len,
             "/api/traces?service=productpage.default&tags=%%7B%%22%s%%22%%3A%%22%s%%22%%7D"
             "&limit=20&lookback=1h",
             key, value);
}

static void path_rare(size_t i, const gen_t *g, uint64_t *rng, char *path, size_t len,
                      size_t *trace)
{
    (void)i, (void)g, (void)rng, (void)trace;
    search_path(path, len, "http.status_code", "500");
}

static void path_common(size_t i, const gen_t *g, uint64_t *rng, char *path, size_t len,
                        size_t *trace)
{
    (void)i, (void)g, (void)rng, (void)trace;
    search_path(path, len, "http.status_code", "200");
}

static void path_needle(size_t i, const gen_t *g, uint64_t *rng, char *path, size_t len,
                        size_t *trace)
{
    (void)i;
    *trace = (size_t)(wt_rand(rng) % g->n_traces);
    search_path(path, len, "guid:x-request-id", g->traces[*trace].guid);
}

/* A full page: 20 traces (there are far more than 20 matches in the hour). */
static bool check_page(const char *body, const gen_t *g, size_t trace, size_t *units)
{
    (void)g, (void)trace;
    *units = count_occurrences(body, "\"processes\"");
    return *units == 20;
}

static bool check_needle(const char *body, const gen_t *g, size_t trace, size_t *units)
{
    *units = count_occurrences(body, "\"processes\"");
    return *units == 1 && check_trace(body, g, trace, &(size_t){0});
}

static const char *status_word(bool met)
{
    return met ? "met" : "MISSED";
}

int main(int argc, char **argv)
{
    opts_t o = {.spans = 1000000, .senders = 4, .batch = 512, .queries = 200, .keep = NULL};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        size_t *num = strcmp(a, "--spans") == 0     ? &o.spans
                      : strcmp(a, "--senders") == 0 ? &o.senders
                      : strcmp(a, "--batch") == 0   ? &o.batch
                      : strcmp(a, "--queries") == 0 ? &o.queries
                                                    : NULL;
        if (num != NULL && v != NULL) {
            *num = strtoull(v, NULL, 10);
            i++;
        } else if (strcmp(a, "--keep") == 0 && v != NULL) {
            o.keep = v;
            i++;
        } else {
            fprintf(stderr,
                    "usage: %s [--spans N] [--senders N] [--batch N] [--queries N] [--keep DIR]\n",
                    argv[0]);
            return 2;
        }
    }
    if (o.spans < 100 || o.senders < 1 || o.senders > 64 || o.batch < 1 || o.queries < 1) {
        fprintf(stderr, "need --spans >= 100, --senders 1..64, --batch and --queries >= 1\n");
        return 2;
    }
    /* line-buffered, so that a profiler can be attached when the collector's pid shows */
    setvbuf(stdout, NULL, _IOLBF, 0);
    char load[128];
    long nproc = sysconf(_SC_NPROCESSORS_ONLN);
    loadavg(load, sizeof(load));
    printf("bench_spans: %zu spans, %zu senders, batches of %zu, %zu queries per kind\n", o.spans,
           o.senders, o.batch, o.queries);
    printf("machine: %ld CPUs online, load average at start: %s (shared machine)\n", nproc, load);
    printf("reference: none runnable (Jaeger/Zipkin/Tempo are not packaged in Debian 12 and Go "
           "modules cannot be fetched)\n");

    /* ---- build every request ---- */
    int64_t tb = wf_mono_ns();
    gen_t *g = wf_calloc(1, sizeof(*g));
    g->rng = 42;
    reqs_t reqs;
    size_t body_bytes;
    build_requests(&o, g, wf_wall_ns() / 1000 - 30 * 1000000LL, &reqs, &body_bytes);
    printf("data: %zu traces in %zu requests, %.1f MB of OTLP protobuf (%.0f bytes/span sent), "
           "built in %.1f s\n",
           g->n_traces, reqs.n, (double)body_bytes / 1e6, (double)body_bytes / (double)o.spans,
           (double)(wf_mono_ns() - tb) / 1e9);

    char *weft = weft_path();
    char *dir = o.keep ? wf_strdup(o.keep) : wt_tmpdir("bench-spans");
    char logp[4200];
    snprintf(logp, sizeof(logp), "%s.log", dir);
    int port = 0, status = 1;
    pid_t pid = start_collector(weft, dir, logp, &port);
    if (pid < 0) {
        fprintf(stderr, "weft collector did not start (binary %s, log %s)\n", weft, logp);
        goto out;
    }

    printf("collector pid %d (ingest)\n", (int)pid);

    /* ---- 1. ingest ---- */
    sender_t *snd = wf_calloc(o.senders, sizeof(sender_t));
    pthread_t *th = wf_calloc(o.senders, sizeof(pthread_t));
    double cpu0 = cpu_seconds(pid);
    int64_t t0 = wf_mono_ns();
    for (size_t i = 0; i < o.senders; i++) {
        snd[i] = (sender_t){.reqs = &reqs, .first = i, .step = o.senders, .port = port};
        snd[i].lat_ns = wf_malloc((reqs.n / o.senders + 1) * sizeof(int64_t));
        pthread_create(&th[i], NULL, send_main, &snd[i]);
    }
    size_t ok = 0, failed = 0, n_lat = 0;
    int64_t *lat = wf_malloc(reqs.n * sizeof(int64_t));
    for (size_t i = 0; i < o.senders; i++) {
        pthread_join(th[i], NULL);
        ok += snd[i].ok;
        failed += snd[i].failed;
        memcpy(lat + n_lat, snd[i].lat_ns, snd[i].n_lat * sizeof(int64_t));
        n_lat += snd[i].n_lat;
        if (snd[i].first_bad_status != 0) {
            printf("  sender %zu: first refusal: status %d %s\n", i, snd[i].first_bad_status,
                   snd[i].first_bad_body);
        }
        wf_free(snd[i].lat_ns);
    }
    double secs = (double)(wf_mono_ns() - t0) / 1e9;
    double cpu = cpu_seconds(pid) - cpu0;
    loadavg(load, sizeof(load));
    double rate = (double)ok / secs, med, p99;
    percentiles(lat, n_lat, &med, &p99);
    wf_free(lat);
    wf_free(snd);
    wf_free(th);
    char *st_body = NULL;
    wt_http(port, "GET", "/api/v1/status/store", NULL, 0, &st_body);
    long long stored = json_int(st_body, "spansAppended");
    wf_free(st_body);
    printf("ingest: %.0f spans/s (goal >= %.0f): %zu spans acknowledged in %.2f s, %zu refused; "
           "durable acks (--sync=process)\n",
           rate, GOAL_SPANS_PER_S, ok, secs, failed);
    printf("  request latency median %.2f ms, p99 %.2f ms (%zu requests)\n", med, p99, n_lat);
    /* CPU per span moves less with the machine's load than the wall-clock rate does. */
    printf("  collector CPU %.2f s (%.2f us per span, %.2f cores busy on average); spans the store "
           "counts: %lld\n",
           cpu, ok ? cpu * 1e6 / (double)ok : 0.0, cpu / secs, stored);
    printf("  load average after ingest: %s\n", load);
    bool ingest_met = rate >= GOAL_SPANS_PER_S && failed == 0;

    /* ---- 2. bytes on disk ---- */
    printf("  on disk while running (head in the log, WAL not checkpointed): %.2f bytes/span\n",
           (double)wt_du_bytes(dir) / (double)ok);
    wt_stop(pid, 120000);
    pid = -1;
    int64_t bytes = wt_du_bytes(dir);
    double bps = ok ? (double)bytes / (double)ok : 0;
    bool bytes_met = bps <= GOAL_BYTES_PER_SPAN && ok > 0;
    printf("disk: %.2f bytes/span (goal <= %.0f): %lld bytes for %zu spans, every file of the "
           "data directory after a clean stop (flush + WAL checkpoint)\n",
           bps, GOAL_BYTES_PER_SPAN, (long long)bytes, ok);
    breakdown(dir, ok);

    /* ---- 3. queries ---- */
    pid = start_collector(weft, dir, logp, &port);
    if (pid < 0) {
        fprintf(stderr, "weft collector did not restart (log %s)\n", logp);
        goto out;
    }
    printf("collector pid %d (queries)\n", (int)pid);
    bool tr_met, rare_met, common_met, needle_met;
    printf("queries at %zu stored spans, one client, one keep-alive connection:\n", ok);
    time_queries(port, pid, "GET /api/traces/{id}", o.queries, g, path_trace, check_trace, "spans",
                 GOAL_TRACE_MS, &tr_met);
    time_queries(port, pid, "search productpage + http.status_code=500", o.queries, g, path_rare,
                 check_page, "traces", GOAL_SEARCH_MS, &rare_met);
    time_queries(port, pid, "search productpage + http.status_code=200", o.queries, g, path_common,
                 check_page, "traces", GOAL_SEARCH_MS, &common_met);
    time_queries(port, pid, "search productpage + guid:x-request-id (needle)", o.queries, g,
                 path_needle, check_needle, "traces", GOAL_SEARCH_MS, &needle_met);
    loadavg(load, sizeof(load));
    printf("  load average after queries: %s\n", load);
    printf("status: ingest %s, bytes/span %s, trace by id %s, service+tag search %s (rare %s, "
           "common %s, needle %s)\n",
           status_word(ingest_met), status_word(bytes_met), status_word(tr_met),
           status_word(rare_met && common_met && needle_met), status_word(rare_met),
           status_word(common_met), status_word(needle_met));
    status = 0;
out:
    if (pid > 0) {
        wt_stop(pid, 120000);
    }
    if (o.keep == NULL) {
        wt_rm_rf(dir);
        unlink(logp);
    }
    for (size_t i = 0; i < reqs.n; i++) {
        wf_buf_free(&reqs.bodies[i]);
    }
    wf_free(reqs.bodies);
    wf_free(reqs.n_spans);
    wf_free(g->traces);
    wf_free(g);
    wf_free(dir);
    wf_free(weft);
    return status;
}
