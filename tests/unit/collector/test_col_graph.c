/*
 * test_col_graph.c - GET /api/graph (col_graph.h) against a real store: a bookinfo-shaped mesh
 * is written as Istio metrics, counters sampled 60 s apart so that every rate over a 60 s
 * duration is exact, then the handler is called for each graph type and its JSON is checked:
 * node and edge counts, rates, error percentages, response codes, p95 and average response
 * times, mTLS, throughput, health, roots, compound parents; and every bad parameter is a 400
 * with Prometheus's error envelope.
 *
 * The mesh (namespace bookinfo, rates in requests/s):
 *   unknown -> productpage-v1      1.0 200 (destination-reported only: no source sidecar)
 *   productpage-v1 -> reviews-v1   0.3 200          (p95 95 ms, avg 60 ms, 2048 B/s back)
 *   productpage-v1 -> reviews-v2   0.3 200
 *   productpage-v1 -> reviews-v3   0.35 200 + 0.05 503 UF   (5xx 12.5 %: Failure)
 *   reviews-v2 -> ratings-v1       0.5 200 + 0.1 404, plaintext
 *   reviews-v3 -> ratings-v1       0.2 200                  (ratings 4xx 12.5 %: Degraded)
 *   reviews-v1 -> mongodb-v1       TCP 1024 B/s
 * Sidecar-to-sidecar requests are reported by both proxies; the destination's copy carries
 * the mTLS verdict and must not be counted twice.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "col_graph.h"
#include "pql.h"
#include "st_store.h"
#include "wf_alloc.h"
#include "wf_arena.h"
#include "wf_buf.h"
#include "wt_util.h"

#define QT 1700000000LL /* query time, Unix seconds */
#define T1 ((QT - 60) * 1000)
#define T2 (QT * 1000)

typedef struct {
    char *dir;
    int64_t now;
    st_store_t *s;
    pql_engine_t *e;
} fx_t;

static int64_t fake_now(void *arg)
{
    return *(int64_t *)arg;
}

typedef struct {
    const char *wl, *app, *ver;
} peer_t;

static const peer_t UNKNOWN = {"unknown", "unknown", "unknown"};
static const peer_t PP = {"productpage-v1", "productpage", "v1"};
static const peer_t R1 = {"reviews-v1", "reviews", "v1"};
static const peer_t R2 = {"reviews-v2", "reviews", "v2"};
static const peer_t R3 = {"reviews-v3", "reviews", "v3"};
static const peer_t RA = {"ratings-v1", "ratings", "v1"};
static const peer_t MG = {"mongodb-v1", "mongodb", "v1"};

/* A counter of one Istio series rising by rate * 60 between T1 and T2. extra: one more label
 * (name, value) or NULL. */
static void counter(st_batch_t *b, const char *metric, const char *reporter, const peer_t *src,
                    const peer_t *dst, const char *code, const char *flags, const char *csp,
                    const char *extra_name, const char *extra_value, double rate)
{
    const char *src_ns = strcmp(src->wl, "unknown") == 0 ? "unknown" : "bookinfo";
    const char *svc = dst->app;
    char fqdn[128];
    snprintf(fqdn, sizeof(fqdn), "%s.bookinfo.svc.cluster.local", svc);
    st_label_t l[24];
    size_t n = 0;
#define ADD(k, v) (l[n].name = wf_str(k), l[n].value = wf_str(v), n++)
    ADD("__name__", metric);
    ADD("reporter", reporter);
    ADD("source_workload_namespace", src_ns);
    ADD("source_workload", src->wl);
    ADD("source_canonical_service", src->app);
    ADD("source_canonical_revision", src->ver);
    ADD("source_app", src->app);
    ADD("source_version", src->ver);
    ADD("destination_workload_namespace", "bookinfo");
    ADD("destination_workload", dst->wl);
    ADD("destination_canonical_service", dst->app);
    ADD("destination_canonical_revision", dst->ver);
    ADD("destination_service", fqdn);
    ADD("destination_service_name", svc);
    ADD("destination_service_namespace", "bookinfo");
    ADD("request_protocol", code ? "http" : "tcp");
    ADD("response_flags", flags);
    ADD("connection_security_policy", csp);
    if (code != NULL) {
        ADD("response_code", code);
    }
    if (extra_name != NULL) {
        ADD(extra_name, extra_value);
    }
#undef ADD
    assert_int_equal(st_batch_add(b, l, n, T1, 1000), 0);
    assert_int_equal(st_batch_add(b, l, n, T2, 1000 + rate * 60), 0);
}

/* Requests reported by the source proxy and, when mirrored, by the destination's too. */
static void requests(st_batch_t *b, const peer_t *src, const peer_t *dst, const char *code,
                     const char *flags, const char *dst_csp, double rate)
{
    if (strcmp(src->wl, "unknown") != 0) {
        counter(b, "istio_requests_total", "source", src, dst, code, flags, "unknown", NULL, NULL,
                rate);
    }
    counter(b, "istio_requests_total", "destination", src, dst, code, flags, dst_csp, NULL, NULL,
            rate);
}

/* Namespace "long": two workloads whose 601-byte names differ only in their last byte, both
 * calling "sink" at 1 request/s. */
static void long_names(st_batch_t *b)
{
    char name[2][602];
    for (int k = 0; k < 2; k++) {
        memset(name[k], 'w', 600);
        name[k][600] = (char)('a' + k);
        name[k][601] = '\0';
        st_label_t l[] = {
            {WF_STR_LIT("__name__"), WF_STR_LIT("istio_requests_total")},
            {WF_STR_LIT("reporter"), WF_STR_LIT("source")},
            {WF_STR_LIT("source_workload_namespace"), WF_STR_LIT("long")},
            {WF_STR_LIT("source_workload"), wf_str(name[k])},
            {WF_STR_LIT("source_canonical_service"), wf_str(name[k])},
            {WF_STR_LIT("destination_workload_namespace"), WF_STR_LIT("long")},
            {WF_STR_LIT("destination_workload"), WF_STR_LIT("sink")},
            {WF_STR_LIT("destination_canonical_service"), WF_STR_LIT("sink")},
            {WF_STR_LIT("destination_service_namespace"), WF_STR_LIT("long")},
            {WF_STR_LIT("destination_service_name"), WF_STR_LIT("sink")},
            {WF_STR_LIT("response_code"), WF_STR_LIT("200")},
        };
        size_t n = sizeof(l) / sizeof(l[0]);
        assert_int_equal(st_batch_add(b, l, n, T1, 0), 0);
        assert_int_equal(st_batch_add(b, l, n, T2, 60), 0);
    }
}

/* Namespace "nr": "client" calls service "missing", which has no workload (503 NR, 0.5/s). */
static void no_route(st_batch_t *b)
{
    st_label_t l[] = {
        {WF_STR_LIT("__name__"), WF_STR_LIT("istio_requests_total")},
        {WF_STR_LIT("reporter"), WF_STR_LIT("source")},
        {WF_STR_LIT("source_workload_namespace"), WF_STR_LIT("nr")},
        {WF_STR_LIT("source_workload"), WF_STR_LIT("client")},
        {WF_STR_LIT("source_canonical_service"), WF_STR_LIT("client")},
        {WF_STR_LIT("destination_workload_namespace"), WF_STR_LIT("unknown")},
        {WF_STR_LIT("destination_workload"), WF_STR_LIT("unknown")},
        {WF_STR_LIT("destination_canonical_service"), WF_STR_LIT("unknown")},
        {WF_STR_LIT("destination_service_namespace"), WF_STR_LIT("nr")},
        {WF_STR_LIT("destination_service_name"), WF_STR_LIT("missing")},
        {WF_STR_LIT("response_code"), WF_STR_LIT("503")},
        {WF_STR_LIT("response_flags"), WF_STR_LIT("NR")},
    };
    size_t n = sizeof(l) / sizeof(l[0]);
    assert_int_equal(st_batch_add(b, l, n, T1, 0), 0);
    assert_int_equal(st_batch_add(b, l, n, T2, 30), 0);
}

static void load(fx_t *f)
{
    st_batch_t *b = NULL;
    assert_int_equal(st_batch_begin(f->s, &b), 0);
    requests(b, &UNKNOWN, &PP, "200", "-", "none", 1.0);
    requests(b, &PP, &R1, "200", "-", "mutual_tls", 0.3);
    requests(b, &PP, &R2, "200", "-", "mutual_tls", 0.3);
    requests(b, &PP, &R3, "200", "-", "mutual_tls", 0.35);
    requests(b, &PP, &R3, "503", "UF", "mutual_tls", 0.05);
    requests(b, &R2, &RA, "200", "-", "none", 0.5);
    requests(b, &R2, &RA, "404", "-", "none", 0.1);
    requests(b, &R3, &RA, "200", "-", "mutual_tls", 0.2);
    /* productpage -> reviews-v1 latency: 10 requests up to 50 ms, 10 in (50, 100]: the 19th
     * of 20 interpolates to 95 ms; 1200 ms in total, 60 ms on average. Rates are increments
     * / 60, ratios unchanged. */
    static const struct {
        const char *le;
        double n;
    } bk[] = {{"50", 10}, {"100", 20}, {"+Inf", 20}};
    for (size_t i = 0; i < 3; i++) {
        counter(b, "istio_request_duration_milliseconds_bucket", "source", &PP, &R1, "200", "-",
                "unknown", "le", bk[i].le, bk[i].n / 60);
    }
    counter(b, "istio_request_duration_milliseconds_sum", "source", &PP, &R1, "200", "-", "unknown",
            NULL, NULL, 1200.0 / 60);
    counter(b, "istio_request_duration_milliseconds_count", "source", &PP, &R1, "200", "-",
            "unknown", NULL, NULL, 20.0 / 60);
    counter(b, "istio_response_bytes_sum", "source", &PP, &R1, "200", "-", "unknown", NULL, NULL,
            2048);
    counter(b, "istio_tcp_sent_bytes_total", "source", &R1, &MG, NULL, "-", "unknown", NULL, NULL,
            1024);
    /* The destination's copy says how much of it was mutual TLS: a quarter. */
    counter(b, "istio_tcp_sent_bytes_total", "destination", &R1, &MG, NULL, "-", "mutual_tls", NULL,
            NULL, 256);
    counter(b, "istio_tcp_sent_bytes_total", "destination", &R1, &MG, NULL, "-", "none", NULL, NULL,
            768);
    long_names(b);
    no_route(b);
    assert_int_equal(st_batch_commit(b), 0);
}

static int setup(void **state)
{
    fx_t *f = wf_calloc(1, sizeof(*f));
    f->dir = wt_tmpdir("col_graph");
    f->now = T2 + 1000;
    st_options_t o;
    st_options_default(&o);
    o.dir = f->dir;
    o.metrics_retention_ms = 0;
    o.now_ms = fake_now;
    o.now_arg = &f->now;
    assert_int_equal(st_store_open(&o, &f->s), 0);
    load(f);
    pql_options_t po;
    pql_options_default(&po);
    assert_int_equal(pql_engine_new(f->s, &po, &f->e), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    pql_engine_free(f->e);
    st_store_close(f->s);
    wt_rm_rf(f->dir);
    wf_free(f->dir);
    wf_free(f);
    return 0;
}

/* Call the handler with query "k=v&k=v" (no escaping needed in these tests); returns the
 * status and the parsed body in *out (json_decref). */
static unsigned get(fx_t *f, const char *query, json_t **out)
{
    wf_arena_t arena;
    wf_arena_init(&arena, 4096, 0);
    col_param_t params[16];
    size_t np = 0;
    char *copy = wf_strdup(query);
    char *save = NULL;
    for (char *tok = strtok_r(copy, "&", &save); tok != NULL; tok = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(tok, '=');
        assert_non_null(eq);
        *eq = '\0';
        assert_true(np < 16);
        params[np++] = (col_param_t){tok, eq + 1};
    }
    col_req_t req = {
        .method = "GET", .path = "/api/graph", .arena = &arena, .params = params, .nparams = np};
    col_resp_t resp;
    memset(&resp, 0, sizeof(resp));
    resp.status = 200;
    col_graph_handler(f->e, &req, &resp);
    json_error_t jerr;
    *out = json_loadb((const char *)resp.body.data, resp.body.len, 0, &jerr);
    if (*out == NULL) {
        fprintf(stderr, "not JSON: %.*s\n", (int)resp.body.len, (const char *)resp.body.data);
    }
    assert_non_null(*out);
    assert_string_equal(resp.content_type, "application/json");
    unsigned status = resp.status;
    for (size_t i = 0; i < resp.nheaders; i++) {
        wf_free(resp.headers[i][0]);
        wf_free(resp.headers[i][1]);
    }
    wf_buf_free(&resp.body);
    wf_free(copy);
    wf_arena_free(&arena);
    return status;
}

static json_t *nodes(json_t *g)
{
    return json_object_get(json_object_get(g, "elements"), "nodes");
}

static json_t *edges(json_t *g)
{
    return json_object_get(json_object_get(g, "elements"), "edges");
}

static const char *sget(json_t *data, const char *k)
{
    return json_string_value(json_object_get(data, k));
}

/* The data of the node whose field k is v (and, if v2, whose version is v2). */
static json_t *node(json_t *g, const char *k, const char *v, const char *version)
{
    json_t *found = NULL, *n;
    size_t i;
    json_array_foreach(nodes(g), i, n)
    {
        json_t *d = json_object_get(n, "data");
        const char *x = sget(d, k);
        if (x != NULL && strcmp(x, v) == 0 && strcmp(sget(d, "nodeType"), "box") != 0 &&
            (version == NULL || strcmp(sget(d, "version"), version) == 0)) {
            assert_null(found);
            found = d;
        }
    }
    assert_non_null(found);
    return found;
}

static json_t *edge(json_t *g, json_t *src, json_t *dst)
{
    json_t *found = NULL, *e;
    size_t i;
    json_array_foreach(edges(g), i, e)
    {
        json_t *d = json_object_get(e, "data");
        if (strcmp(sget(d, "source"), sget(src, "id")) == 0 &&
            strcmp(sget(d, "target"), sget(dst, "id")) == 0) {
            assert_null(found);
            found = d;
        }
    }
    assert_non_null(found);
    return found;
}

/* rates.<k> of a node's traffic entry for protocol, or NULL. */
static const char *node_rate(json_t *d, const char *protocol, const char *k)
{
    json_t *t;
    size_t i;
    json_array_foreach(json_object_get(d, "traffic"), i, t)
    {
        if (strcmp(sget(t, "protocol"), protocol) == 0) {
            return sget(json_object_get(t, "rates"), k);
        }
    }
    return NULL;
}

static const char *edge_rate(json_t *d, const char *k)
{
    return sget(json_object_get(json_object_get(d, "traffic"), "rates"), k);
}

static void test_workload(void **state)
{
    fx_t *f = *state;
    json_t *g;
    assert_int_equal(get(f, "namespaces=bookinfo&duration=60s&queryTime=1700000000", &g), 200);
    assert_int_equal(json_integer_value(json_object_get(g, "timestamp")), QT);
    assert_int_equal(json_integer_value(json_object_get(g, "duration")), 60);
    assert_string_equal(sget(g, "graphType"), "workload");
    assert_int_equal(json_array_size(nodes(g)), 7);
    assert_int_equal(json_array_size(edges(g)), 7);

    json_t *un = node(g, "nodeType", "unknown", NULL);
    json_t *pp = node(g, "workload", "productpage-v1", NULL);
    json_t *r1 = node(g, "workload", "reviews-v1", NULL);
    json_t *r2 = node(g, "workload", "reviews-v2", NULL);
    json_t *r3 = node(g, "workload", "reviews-v3", NULL);
    json_t *ra = node(g, "workload", "ratings-v1", NULL);
    json_t *mg = node(g, "workload", "mongodb-v1", NULL);
    assert_string_equal(sget(pp, "nodeType"), "workload");
    assert_string_equal(sget(pp, "namespace"), "bookinfo");
    assert_string_equal(sget(pp, "app"), "productpage");
    assert_string_equal(sget(pp, "version"), "v1");
    assert_string_equal(sget(un, "namespace"), "unknown");

    /* Roots: only the unknown source. */
    assert_true(json_is_true(json_object_get(un, "isRoot")));
    assert_null(json_object_get(pp, "isRoot"));
    assert_null(json_object_get(mg, "isRoot"));

    /* productpage: 1 in from outside; out 0.3 + 0.3 + 0.4, the destination copies ignored. */
    assert_string_equal(node_rate(pp, "http", "httpIn"), "1.00");
    assert_string_equal(node_rate(pp, "http", "httpOut"), "1.00");
    assert_null(node_rate(pp, "http", "httpIn5xx"));
    assert_string_equal(node_rate(r3, "http", "httpIn"), "0.40");
    assert_string_equal(node_rate(r3, "http", "httpIn5xx"), "0.05");
    assert_string_equal(node_rate(r3, "http", "httpOut"), "0.20");
    assert_string_equal(node_rate(ra, "http", "httpIn"), "0.80");
    assert_string_equal(node_rate(ra, "http", "httpIn4xx"), "0.10");
    assert_string_equal(node_rate(r1, "tcp", "tcpOut"), "1024.00");
    assert_string_equal(node_rate(mg, "tcp", "tcpIn"), "1024.00");
    assert_null(node_rate(mg, "http", "httpIn"));

    /* Health. */
    assert_string_equal(sget(un, "health"), "NA");
    assert_string_equal(sget(pp, "health"), "Healthy");
    assert_string_equal(sget(r1, "health"), "Healthy");
    assert_string_equal(sget(r2, "health"), "Healthy");
    assert_string_equal(sget(r3, "health"), "Failure");  /* 12.5 % 5xx */
    assert_string_equal(sget(ra, "health"), "Degraded"); /* 12.5 % 4xx */
    assert_string_equal(sget(mg, "health"), "NA");       /* TCP only */

    /* Edges. */
    json_t *e = edge(g, un, pp);
    assert_string_equal(edge_rate(e, "http"), "1.00");
    assert_string_equal(edge_rate(e, "httpPercentReq"), "100.0");
    assert_string_equal(sget(e, "isMTLS"), "0.0");
    e = edge(g, pp, r1);
    assert_string_equal(edge_rate(e, "http"), "0.30");
    assert_string_equal(edge_rate(e, "httpPercentReq"), "30.0");
    assert_null(edge_rate(e, "httpPercentErr"));
    assert_string_equal(sget(e, "responseTime"), "95");
    assert_string_equal(sget(e, "throughput"), "2048");
    assert_string_equal(sget(e, "isMTLS"), "100.0");
    json_t *resp = json_object_get(json_object_get(e, "traffic"), "responses");
    assert_string_equal(sget(json_object_get(json_object_get(resp, "200"), "flags"), "-"), "100.0");
    e = edge(g, pp, r3);
    assert_string_equal(edge_rate(e, "http"), "0.40");
    assert_string_equal(edge_rate(e, "httpPercentReq"), "40.0");
    assert_string_equal(edge_rate(e, "httpPercentErr"), "12.5");
    assert_null(json_object_get(e, "responseTime")); /* no histogram for this edge */
    resp = json_object_get(json_object_get(e, "traffic"), "responses");
    assert_int_equal(json_object_size(resp), 2);
    assert_string_equal(sget(json_object_get(json_object_get(resp, "503"), "flags"), "UF"), "12.5");
    assert_string_equal(sget(json_object_get(json_object_get(resp, "200"), "flags"), "-"), "87.5");
    e = edge(g, r2, ra);
    assert_string_equal(edge_rate(e, "http"), "0.60");
    assert_string_equal(edge_rate(e, "httpPercentErr"), "16.7");
    assert_string_equal(sget(e, "isMTLS"), "0.0");
    e = edge(g, r3, ra);
    assert_string_equal(edge_rate(e, "http"), "0.20");
    assert_string_equal(sget(e, "isMTLS"), "100.0");
    e = edge(g, r1, mg);
    assert_string_equal(sget(json_object_get(e, "traffic"), "protocol"), "tcp");
    assert_string_equal(edge_rate(e, "tcp"), "1024.00");
    assert_string_equal(sget(e, "isMTLS"), "25.0");
    json_decref(g);
}

/* Ids are a function of identity: the same graph twice has the same ids, and the workload's
 * id does not depend on which other nodes exist. */
static void test_ids_stable(void **state)
{
    fx_t *f = *state;
    json_t *a, *b;
    assert_int_equal(get(f, "namespaces=bookinfo&duration=60s&queryTime=1700000000", &a), 200);
    assert_int_equal(
        get(f, "namespaces=bookinfo&duration=60s&queryTime=1700000000&responseTime=avg", &b), 200);
    assert_string_equal(sget(node(a, "workload", "ratings-v1", NULL), "id"),
                        sget(node(b, "workload", "ratings-v1", NULL), "id"));
    assert_string_equal(sget(json_object_get(json_array_get(edges(a), 0), "data"), "id"),
                        sget(json_object_get(json_array_get(edges(b), 0), "data"), "id"));
    /* responseTime=avg: 1200 ms over 20 requests. */
    json_t *e = edge(b, node(b, "workload", "productpage-v1", NULL),
                     node(b, "workload", "reviews-v1", NULL));
    assert_string_equal(sget(e, "responseTime"), "60");
    json_decref(a);
    json_decref(b);
}

static void test_app(void **state)
{
    fx_t *f = *state;
    json_t *g;
    assert_int_equal(
        get(f, "namespaces=bookinfo&graphType=app&duration=60s&queryTime=1700000000", &g), 200);
    assert_string_equal(sget(g, "graphType"), "app");
    assert_int_equal(json_array_size(nodes(g)), 5);
    assert_int_equal(json_array_size(edges(g)), 4);
    json_t *un = node(g, "nodeType", "unknown", NULL);
    json_t *pp = node(g, "app", "productpage", NULL);
    json_t *rv = node(g, "app", "reviews", NULL);
    json_t *ra = node(g, "app", "ratings", NULL);
    assert_string_equal(sget(rv, "nodeType"), "app");
    assert_null(json_object_get(rv, "workload"));
    assert_string_equal(node_rate(rv, "http", "httpIn"), "1.00");
    assert_string_equal(node_rate(rv, "http", "httpOut"), "0.80");
    assert_string_equal(sget(rv, "health"), "Degraded"); /* 5 % 5xx */
    assert_string_equal(sget(ra, "health"), "Degraded");
    json_t *e = edge(g, pp, rv);
    assert_string_equal(edge_rate(e, "http"), "1.00");
    assert_string_equal(edge_rate(e, "httpPercentErr"), "5.0");
    assert_string_equal(sget(e, "responseTime"), "95");
    /* Of the 0.8 reviews -> ratings requests, reviews-v3's 0.2 were mutual TLS. */
    e = edge(g, rv, ra);
    assert_string_equal(edge_rate(e, "http"), "0.80");
    assert_string_equal(sget(e, "isMTLS"), "25.0");
    assert_string_equal(edge_rate(edge(g, un, pp), "http"), "1.00");
    json_decref(g);
}

static void test_versioned_app(void **state)
{
    fx_t *f = *state;
    json_t *g;
    assert_int_equal(
        get(f, "namespaces=bookinfo&graphType=versionedApp&duration=60s&queryTime=1700000000", &g),
        200);
    /* 7 version nodes (unknown included) + 4 app boxes. */
    assert_int_equal(json_array_size(nodes(g)), 11);
    assert_int_equal(json_array_size(edges(g)), 7);
    json_t *r2 = node(g, "app", "reviews", "v2");
    json_t *r3 = node(g, "app", "reviews", "v3");
    assert_string_equal(sget(r2, "parent"), sget(r3, "parent"));
    json_t *box = NULL, *n;
    size_t i, boxes = 0;
    json_array_foreach(nodes(g), i, n)
    {
        json_t *d = json_object_get(n, "data");
        if (strcmp(sget(d, "nodeType"), "box") == 0) {
            boxes++;
            assert_string_equal(sget(d, "isBox"), "app");
            if (strcmp(sget(d, "id"), sget(r2, "parent")) == 0) {
                box = d;
            }
        }
    }
    assert_int_equal(boxes, 4);
    assert_non_null(box);
    assert_string_equal(sget(box, "app"), "reviews");
    assert_string_equal(sget(r3, "health"), "Failure");
    assert_null(json_object_get(node(g, "nodeType", "unknown", NULL), "parent"));
    json_decref(g);
}

static void test_service(void **state)
{
    fx_t *f = *state;
    json_t *g;
    assert_int_equal(
        get(f, "namespaces=bookinfo&graphType=service&duration=60s&queryTime=1700000000", &g), 200);
    assert_int_equal(json_array_size(nodes(g)), 5);
    assert_int_equal(json_array_size(edges(g)), 4);
    json_t *rv = node(g, "service", "reviews", NULL);
    json_t *ra = node(g, "service", "ratings", NULL);
    assert_string_equal(sget(rv, "nodeType"), "service");
    assert_string_equal(node_rate(rv, "http", "httpIn"), "1.00");
    assert_string_equal(edge_rate(edge(g, rv, ra), "http"), "0.80");
    json_decref(g);
}

/* A namespace without traffic: an empty graph, not an error. */
static void test_empty(void **state)
{
    fx_t *f = *state;
    json_t *g;
    assert_int_equal(get(f, "namespaces=other&duration=60s&queryTime=1700000000", &g), 200);
    assert_int_equal(json_array_size(nodes(g)), 0);
    assert_int_equal(json_array_size(edges(g)), 0);
    json_decref(g);
    /* Before the samples: nothing either. */
    assert_int_equal(get(f, "namespaces=bookinfo&duration=60s&queryTime=1600000000", &g), 200);
    assert_int_equal(json_array_size(nodes(g)), 0);
    json_decref(g);
}

/* Long label values are identities in full: two workloads that differ in their 601st byte are
 * two nodes. */
static void test_long_names(void **state)
{
    fx_t *f = *state;
    json_t *g;
    assert_int_equal(get(f, "namespaces=long&duration=60s&queryTime=1700000000", &g), 200);
    assert_int_equal(json_array_size(nodes(g)), 3);
    assert_int_equal(json_array_size(edges(g)), 2);
    json_t *sink = node(g, "workload", "sink", NULL);
    assert_string_equal(node_rate(sink, "http", "httpIn"), "2.00");
    assert_string_equal(sget(sink, "health"), "Healthy");
    json_t *n;
    size_t i, longs = 0;
    json_array_foreach(nodes(g), i, n)
    {
        const char *w = sget(json_object_get(n, "data"), "workload");
        if (strlen(w) == 601) {
            longs++;
            assert_string_equal(node_rate(json_object_get(n, "data"), "http", "httpOut"), "1.00");
        }
    }
    assert_int_equal(longs, 2);
    json_decref(g);
}

/* The other quantiles of productpage -> reviews-v1: the 10th of 20 requests is at the top of
 * the (0, 50] bucket, the 19.8th at 99 ms. */
static void test_response_time(void **state)
{
    fx_t *f = *state;
    static const struct {
        const char *q, *want;
    } c[] = {{"50", "50"}, {"95", "95"}, {"99", "99"}, {"avg", "60"}};
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        char q[160];
        snprintf(q, sizeof(q),
                 "namespaces=bookinfo&graphType=versionedApp&duration=60s&queryTime=1700000000&"
                 "responseTime=%s",
                 c[i].q);
        json_t *g;
        assert_int_equal(get(f, q, &g), 200);
        json_t *e = edge(g, node(g, "app", "productpage", "v1"), node(g, "app", "reviews", "v1"));
        assert_string_equal(sget(e, "responseTime"), c[i].want);
        json_decref(g);
    }
}

/* A request that reached no workload ends at the service it named, for every graph type. */
static void test_no_route(void **state)
{
    fx_t *f = *state;
    static const char *const types[] = {"workload", "app", "versionedApp", "service"};
    for (size_t i = 0; i < 4; i++) {
        char q[128];
        snprintf(q, sizeof(q), "namespaces=nr&graphType=%s&duration=60s&queryTime=1700000000",
                 types[i]);
        json_t *g;
        assert_int_equal(get(f, q, &g), 200);
        /* versionedApp: the client's version node and its app box. */
        assert_int_equal(json_array_size(nodes(g)), i == 2 ? 3 : 2);
        assert_int_equal(json_array_size(edges(g)), 1);
        json_t *svc = node(g, "service", "missing", NULL);
        assert_string_equal(sget(svc, "nodeType"), "service");
        assert_string_equal(sget(svc, "namespace"), "nr");
        assert_string_equal(node_rate(svc, "http", "httpIn5xx"), "0.50");
        assert_string_equal(sget(svc, "health"), "Failure");
        json_t *e = json_object_get(json_array_get(edges(g), 0), "data");
        assert_string_equal(edge_rate(e, "httpPercentErr"), "100.0");
        json_t *resp = json_object_get(json_object_get(e, "traffic"), "responses");
        assert_string_equal(sget(json_object_get(json_object_get(resp, "503"), "flags"), "NR"),
                            "100.0");
        json_decref(g);
    }
}

/* An engine that may hold almost no samples fails the queries: 422 with the engine's
 * message, as the Prometheus API answers it. */
static void test_query_error(void **state)
{
    fx_t *f = *state;
    pql_options_t po;
    pql_options_default(&po);
    po.max_samples = 1;
    pql_engine_t *small = NULL;
    assert_int_equal(pql_engine_new(f->s, &po, &small), 0);
    pql_engine_t *saved = f->e;
    f->e = small;
    json_t *g;
    assert_int_equal(get(f, "namespaces=bookinfo&duration=60s&queryTime=1700000000", &g), 422);
    assert_string_equal(sget(g, "errorType"), "execution");
    assert_non_null(strstr(sget(g, "error"), "too many samples"));
    json_decref(g);
    f->e = saved;
    pql_engine_free(small);
}

static void expect_400(fx_t *f, const char *query, const char *msg_part)
{
    json_t *g;
    assert_int_equal(get(f, query, &g), 400);
    assert_string_equal(sget(g, "status"), "error");
    assert_string_equal(sget(g, "errorType"), "bad_data");
    const char *m = sget(g, "error");
    assert_non_null(m);
    if (strstr(m, msg_part) == NULL) {
        fail_msg("error %s lacks %s", m, msg_part);
    }
    json_decref(g);
}

static void test_bad_params(void **state)
{
    fx_t *f = *state;
    expect_400(f, "graphType=app", "\"namespaces\"");
    expect_400(f, "namespaces=", "\"namespaces\"");
    expect_400(f, "namespaces=a,,b", "\"namespaces\"");
    expect_400(f, "namespaces=Book_info", "\"namespaces\"");
    expect_400(f, "namespaces=x\"}or{y", "\"namespaces\"");
    expect_400(f, "namespaces=-a", "\"namespaces\"");
    expect_400(f, "namespaces=bookinfo&graphType=pods", "\"graphType\"");
    expect_400(f, "namespaces=bookinfo&duration=ten", "\"duration\"");
    expect_400(f, "namespaces=bookinfo&duration=0s", "\"duration\"");
    expect_400(f, "namespaces=bookinfo&duration=400d", "\"duration\"");
    expect_400(f, "namespaces=bookinfo&queryTime=-5", "\"queryTime\"");
    expect_400(f, "namespaces=bookinfo&queryTime=17e8", "\"queryTime\"");
    expect_400(f, "namespaces=bookinfo&queryTime=99999999999999999999999", "\"queryTime\"");
    expect_400(f, "namespaces=bookinfo&responseTime=90", "\"responseTime\"");

    /* 100 namespaces are fine, 101 are not; an oversized name is refused. */
    wf_buf_t q = WF_BUF_INIT;
    wf_buf_puts(&q, "namespaces=");
    for (int i = 0; i < 100; i++) {
        wf_buf_printf(&q, "%sns%d", i ? "," : "", i);
    }
    json_t *g;
    assert_int_equal(get(f, wf_buf_cstr(&q), &g), 200);
    json_decref(g);
    wf_buf_puts(&q, ",ns100");
    expect_400(f, wf_buf_cstr(&q), "more than 100");
    wf_buf_reset(&q);
    wf_buf_puts(&q, "namespaces=");
    for (int i = 0; i < 64; i++) {
        wf_buf_putc(&q, 'a');
    }
    expect_400(f, wf_buf_cstr(&q), "\"namespaces\"");
    wf_buf_reset(&q);
    wf_buf_puts(&q, "namespaces=");
    for (int i = 0; i < 100000; i++) {
        wf_buf_putc(&q, 'a');
    }
    expect_400(f, wf_buf_cstr(&q), "too long");
    wf_buf_free(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_workload),   cmocka_unit_test(test_ids_stable),
        cmocka_unit_test(test_app),        cmocka_unit_test(test_versioned_app),
        cmocka_unit_test(test_service),    cmocka_unit_test(test_empty),
        cmocka_unit_test(test_long_names), cmocka_unit_test(test_response_time),
        cmocka_unit_test(test_no_route),   cmocka_unit_test(test_query_error),
        cmocka_unit_test(test_bad_params),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
