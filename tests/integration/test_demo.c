/*
 * test_demo.c - `weft demo` end to end: the real command on free ports and its own loopback
 * subnet, checked only through the public APIs a user would use. The graph has bookinfo's
 * workloads and edges with traffic; istio_requests_total has both reporters for every edge,
 * and every hop between proxies is mutual TLS; a trace runs gateway -> productpage -> reviews
 * -> ratings with each span's parent in the trace; `weft apply` of the reviews-v3 route moves
 * every reviews request to v3; the ratings abort fault shows as 500s with the FI flag on the
 * reviews -> ratings edge, and the graph carries the VirtualService and fault badges the
 * collector reads from the control plane; the ratings delay under a 0.5 s route timeout shows
 * as 504 UT on productpage -> reviews; the whole demo stays under 1 GiB of memory; SIGTERM stops
 * it and no process it started is left.
 */
#include "wf_alloc.h"
#include "wf_buf.h"
#include "wt_util.h"

#include <ctype.h>
#include <dirent.h>
#include <jansson.h>
#include <libgen.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#else
#define UNDER_ASAN 0
#endif

typedef struct {
    char *dir;
    char config_dir[4096];
    char log[4200];
    char subnet[16];
    int port, gateway_port, control_port;
    pid_t pid;
} demo_t;

static demo_t g;

/* GET path from the collector as JSON (NULL unless 200). */
static json_t *get_json(const char *path)
{
    char *body = NULL;
    int st = wt_http(g.port, "GET", path, NULL, 0, &body);
    json_t *j = st == 200 ? json_loads(body, 0, NULL) : NULL;
    wf_free(body);
    return j;
}

/* An instant PromQL query's result vector (NULL on error). */
static json_t *query(const char *promql)
{
    char path[2048] = "/api/v1/query?query=";
    size_t n = strlen(path);
    for (const unsigned char *p = (const unsigned char *)promql; *p != '\0' && n < 2000; p++) {
        n += (size_t)snprintf(path + n, sizeof(path) - n,
                              isalnum(*p) || strchr("_-.~", *p) ? "%c" : "%%%02X", *p);
    }
    json_t *j = get_json(path);
    json_t *res =
        j != NULL ? json_incref(json_object_get(json_object_get(j, "data"), "result")) : NULL;
    json_decref(j);
    return res;
}

/* The sample value of the series of a result whose label k has value v (NaN if none). */
static double value_where(json_t *res, const char *k, const char *v)
{
    size_t i;
    json_t *s;
    json_array_foreach(res, i, s)
    {
        const char *lv = json_string_value(json_object_get(json_object_get(s, "metric"), k));
        if (lv != NULL && strcmp(lv, v) == 0) {
            return atof(json_string_value(json_array_get(json_object_get(s, "value"), 1)));
        }
    }
    return NAN;
}

static int weft_cli(const char *args)
{
    int rc = wt_sh(g.dir,
                   "WEFT_CONTROL=http://127.0.0.1:%d WEFT_TOKEN_FILE='%s/data/control/admin-token' "
                   "'%s' %s",
                   g.control_port, g.dir, wt_weft_bin(), args);
    if (rc != 0) {
        char path[4200];
        snprintf(path, sizeof(path), "%s/sh.log", g.dir);
        char *text = wt_read_file(path, NULL);
        fprintf(stderr, "weft %s: exit %d\n%s\n", args, rc, text != NULL ? text : "");
        wf_free(text);
    }
    return rc;
}

/* The bookinfo page through the gateway, n times; how many were served by reviews `want`. */
static int pages_served_by(const char *want, int n)
{
    int hits = 0;
    char needle[64];
    snprintf(needle, sizeof(needle), "Reviews served by: %s<", want);
    for (int i = 0; i < n; i++) {
        char *body = NULL;
        if (wt_http(g.gateway_port, "GET", "/productpage", NULL, 0, &body) == 200 &&
            strstr(body, needle) != NULL) {
            hits++;
        }
        wf_free(body);
    }
    return hits;
}

/* The graph's edges as "<source workload>>(<target workload>|service:<name>)" with their
 * rates and responses. */
typedef struct {
    char name[128];
    double rate;
    double err_pct;
    json_t *responses;
} edge_t;

static size_t graph_edges(const char *type, edge_t *out, size_t max)
{
    char path[256];
    snprintf(path, sizeof(path), "/api/graph?namespaces=default&graphType=%s&duration=30s", type);
    json_t *g_json = get_json(path);
    if (g_json == NULL) {
        return 0;
    }
    json_t *nodes = json_object_get(json_object_get(g_json, "elements"), "nodes");
    json_t *edges = json_object_get(json_object_get(g_json, "elements"), "edges");
    size_t n = 0, i;
    json_t *e;
    json_array_foreach(edges, i, e)
    {
        json_t *d = json_object_get(e, "data");
        const char *ends[2] = {json_string_value(json_object_get(d, "source")),
                               json_string_value(json_object_get(d, "target"))};
        char names[2][64] = {"?", "?"};
        size_t k;
        json_t *node;
        json_array_foreach(nodes, k, node)
        {
            json_t *nd = json_object_get(node, "data");
            for (int s = 0; s < 2; s++) {
                if (ends[s] != NULL &&
                    strcmp(json_string_value(json_object_get(nd, "id")), ends[s]) == 0) {
                    const char *w = json_string_value(json_object_get(nd, "workload"));
                    const char *sv = json_string_value(json_object_get(nd, "service"));
                    if (w != NULL) {
                        snprintf(names[s], sizeof(names[s]), "%s", w);
                    } else {
                        snprintf(names[s], sizeof(names[s]), "service:%s", sv != NULL ? sv : "?");
                    }
                }
            }
        }
        if (n < max) {
            json_t *rates = json_object_get(json_object_get(d, "traffic"), "rates");
            snprintf(out[n].name, sizeof(out[n].name), "%s>%s", names[0], names[1]);
            const char *r = json_string_value(json_object_get(rates, "http"));
            const char *ep = json_string_value(json_object_get(rates, "httpPercentErr"));
            out[n].rate = r != NULL ? atof(r) : 0;
            out[n].err_pct = ep != NULL ? atof(ep) : 0;
            out[n].responses =
                json_incref(json_object_get(json_object_get(d, "traffic"), "responses"));
            n++;
        }
    }
    json_decref(g_json);
    return n;
}

static void edges_free(edge_t *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        json_decref(e[i].responses);
    }
}

static const edge_t *find_edge(const edge_t *e, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(e[i].name, name) == 0) {
            return &e[i];
        }
    }
    return NULL;
}

static const char *const bookinfo_edges[] = {
    "istio-ingressgateway>productpage-v1",
    "productpage-v1>details-v1",
    "productpage-v1>reviews-v1",
    "productpage-v1>reviews-v2",
    "productpage-v1>reviews-v3",
    "reviews-v2>ratings-v1",
    "reviews-v3>ratings-v1",
};
#define NEDGES (sizeof(bookinfo_edges) / sizeof(bookinfo_edges[0]))

/* Whether /proc/<pid>/<what> (cmdline or environ: NUL-separated strings) contains s. */
static bool proc_has(const char *pid, const char *what, const char *s)
{
    char path[300];
    snprintf(path, sizeof(path), "/proc/%s/%s", pid, what);
    size_t len = 0;
    char *text = wt_read_file(path, &len);
    bool found = false;
    for (size_t off = 0; text != NULL && off < len && !found; off += strlen(text + off) + 1) {
        found = strstr(text + off, s) != NULL;
    }
    wf_free(text);
    return found;
}

/* Memory of the demo and every process it started, in KiB: those whose command line names
 * the data dir, or whose command line or environment names an address of the demo's subnet
 * (the apps: their http_proxy is their sidecar's). */
static long demo_rss_kib(int *nprocs)
{
    long total = 0;
    *nprocs = 0;
    DIR *proc = opendir("/proc");
    struct dirent *e;
    while (proc != NULL && (e = readdir(proc)) != NULL) {
        if (atoi(e->d_name) <= 0) {
            continue;
        }
        char subnet[24], path[300];
        snprintf(subnet, sizeof(subnet), "%s.", g.subnet);
        bool mine = atoi(e->d_name) == g.pid || proc_has(e->d_name, "cmdline", g.dir) ||
                    proc_has(e->d_name, "cmdline", subnet) ||
                    proc_has(e->d_name, "environ", subnet);
        if (!mine) {
            continue;
        }
        snprintf(path, sizeof(path), "/proc/%s/status", e->d_name);
        char *st = wt_read_file(path, NULL);
        const char *rss = st != NULL ? strstr(st, "VmRSS:") : NULL;
        if (rss != NULL) {
            total += atol(rss + 6);
            (*nprocs)++;
        }
        wf_free(st);
    }
    if (proc != NULL) {
        closedir(proc);
    }
    return total;
}

static void test_demo_end_to_end(void **state)
{
    /* 1. It comes up and says where to look. */
    bool up = false;
    for (int i = 0; i < 1200 && !up; i++) {
        char *text = wt_read_file(g.log, NULL);
        up = text != NULL && strstr(text, "weft demo is running") != NULL;
        if (text != NULL && strstr(text, "weft demo: stopped") != NULL) {
            fprintf(stderr, "%s\n", text);
            fail_msg("the demo stopped on its own");
        }
        wf_free(text);
        usleep(100 * 1000);
    }
    assert_true(up);
    char *text = wt_read_file(g.log, NULL);
    char want[128];
    snprintf(want, sizeof(want), "http://127.0.0.1:%d/", g.port);
    assert_non_null(strstr(text, want));
    snprintf(want, sizeof(want), "http://127.0.0.1:%d/productpage", g.gateway_port);
    assert_non_null(strstr(text, want));
    wf_free(text);

    /* 2. The graph: every bookinfo edge with traffic (all reviews versions: no route yet). */
    edge_t e[32];
    size_t n = 0;
    bool all = false;
    for (int i = 0; i < 120 && !all; i++) {
        edges_free(e, n);
        n = graph_edges("workload", e, 32);
        all = true;
        for (size_t k = 0; k < NEDGES; k++) {
            const edge_t *x = find_edge(e, n, bookinfo_edges[k]);
            all = all && x != NULL && x->rate > 0;
        }
        if (!all) {
            usleep(500 * 1000);
        }
    }
    for (size_t k = 0; k < n && !all; k++) {
        fprintf(stderr, "edge %s rate %g\n", e[k].name, e[k].rate);
    }
    assert_true(all);
    assert_int_equal(n, NEDGES); /* nothing else: reviews v1 does not call ratings */
    edges_free(e, n);

    /* 3. Both reporters for every edge, and mutual TLS on every hop between proxies. */
    json_t *r = query("count by (source_workload, destination_workload) "
                      "(count by (source_workload, destination_workload, reporter) "
                      "(istio_requests_total{destination_workload_namespace=\"default\"}))");
    assert_non_null(r);
    assert_int_equal(json_array_size(r), NEDGES);
    size_t i;
    json_t *s;
    json_array_foreach(r, i, s)
    {
        assert_string_equal(json_string_value(json_array_get(json_object_get(s, "value"), 1)), "2");
    }
    json_decref(r);
    r = query("count by (connection_security_policy) (istio_requests_total{reporter="
              "\"destination\",destination_workload_namespace=\"default\"})");
    assert_int_equal(json_array_size(r), 1);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(json_array_get(r, 0), "metric"),
                                          "connection_security_policy")),
        "mutual_tls");
    json_decref(r);

    /* 4. A trace through every hop: gateway -> productpage -> reviews -> ratings, each span's
     * parent in the trace, one root (the gateway's). */
    bool found = false;
    for (int tries = 0; tries < 40 && !found; tries++) {
        json_t *t = get_json("/api/traces?service=ratings&limit=5&lookback=5m");
        size_t k;
        json_t *tr;
        json_array_foreach(json_object_get(t, "data"), k, tr)
        {
            json_t *spans = json_object_get(tr, "spans");
            json_t *procs = json_object_get(tr, "processes");
            int roots = 0, orphans = 0;
            bool svc[4] = {false, false, false, false};
            static const char *const names[4] = {"istio-ingressgateway", "productpage", "reviews",
                                                 "ratings"};
            size_t a;
            json_t *sp;
            json_array_foreach(spans, a, sp)
            {
                const char *pid = json_string_value(json_object_get(sp, "processID"));
                const char *sname =
                    json_string_value(json_object_get(json_object_get(procs, pid), "serviceName"));
                for (int q = 0; q < 4; q++) {
                    svc[q] = svc[q] || (sname != NULL && strcmp(sname, names[q]) == 0);
                }
                json_t *refs = json_object_get(sp, "references");
                if (json_array_size(refs) == 0) {
                    roots++;
                    continue;
                }
                const char *parent =
                    json_string_value(json_object_get(json_array_get(refs, 0), "spanID"));
                bool have = false;
                size_t b;
                json_t *other;
                json_array_foreach(spans, b, other)
                {
                    have = have ||
                           strcmp(json_string_value(json_object_get(other, "spanID")), parent) == 0;
                }
                orphans += !have;
            }
            /* gateway, productpage in/out x2 (details, reviews), details, reviews in/out,
             * ratings: 8 spans */
            if (roots == 1 && orphans == 0 && svc[0] && svc[1] && svc[2] && svc[3] &&
                json_array_size(spans) == 8) {
                found = true;
            }
        }
        json_decref(t);
        if (!found) {
            usleep(500 * 1000);
        }
    }
    assert_true(found);

    /* 5. Route every reviews request to v3: the page shows v3 only, and the metrics agree. */
    char args[4200];
    snprintf(args, sizeof(args), "apply -f '%s/virtual-service-reviews-v3.yaml'", g.config_dir);
    assert_int_equal(weft_cli(args), 0);
    int v3 = 0;
    for (int tries = 0; tries < 100 && (v3 = pages_served_by("reviews-v3", 10)) < 10; tries++) {
        usleep(200 * 1000);
    }
    assert_int_equal(v3, 10);
    /* two scrapes later, the v1/v2 counters stand still while v3's grow */
    sleep(11);
    const char *by_version = "sum by (destination_version) (istio_requests_total{reporter="
                             "\"source\",source_workload=\"productpage-v1\","
                             "destination_service_name=\"reviews\"})";
    json_t *before = query(by_version);
    sleep(11);
    json_t *after = query(by_version);
    assert_true(value_where(after, "destination_version", "v1") ==
                value_where(before, "destination_version", "v1"));
    assert_true(value_where(after, "destination_version", "v2") ==
                value_where(before, "destination_version", "v2"));
    assert_true(value_where(after, "destination_version", "v3") >
                value_where(before, "destination_version", "v3"));
    json_decref(before);
    json_decref(after);

    /* 6. The abort fault: 500 for jason's ratings calls, injected by reviews-v3's sidecar
     * (flag FI). They reached no ratings workload, so (as in Kiali) the graph draws them on an
     * edge from reviews-v3 to the ratings service node, all errors. */
    snprintf(args, sizeof(args), "apply -f '%s/virtual-service-ratings-test-abort.yaml'",
             g.config_dir);
    assert_int_equal(weft_cli(args), 0);
    bool faulted = false;
    for (int tries = 0; tries < 120 && !faulted; tries++) {
        n = graph_edges("workload", e, 32);
        const edge_t *x = find_edge(e, n, "reviews-v3>service:ratings");
        json_t *fi = x != NULL
                         ? json_object_get(
                               json_object_get(json_object_get(x->responses, "500"), "flags"), "FI")
                         : NULL;
        faulted = x != NULL && x->err_pct == 100 && fi != NULL;
        edges_free(e, n);
        if (!faulted) {
            usleep(500 * 1000);
        }
    }
    assert_true(faulted);
    /* The collector reads the configuration from the control plane: the graph's badges. */
    bool badges = false;
    for (int tries = 0; tries < 40 && !badges; tries++) {
        json_t *gr = get_json("/api/graph?namespaces=default&graphType=app&duration=30s");
        bool reviews_vs = false, ratings_fi = false;
        size_t k;
        json_t *node;
        json_array_foreach(json_object_get(json_object_get(gr, "elements"), "nodes"), k, node)
        {
            json_t *nd = json_object_get(node, "data");
            const char *app = json_string_value(json_object_get(nd, "app"));
            if (app != NULL && strcmp(app, "reviews") == 0) {
                reviews_vs = reviews_vs || json_object_get(nd, "hasVS") != NULL;
            }
            if (app != NULL && strcmp(app, "ratings") == 0) {
                ratings_fi = ratings_fi || json_is_true(json_object_get(nd, "hasFaultInjection"));
            }
        }
        json_decref(gr);
        badges = reviews_vs && ratings_fi;
        if (!badges) {
            usleep(500 * 1000);
        }
    }
    assert_true(badges);

    /* 7. The delay fault (7 s for jason's ratings calls) under a 0.5 s route timeout on
     * reviews (now v2, which waits for ratings): productpage's sidecar gives up, 504 with the
     * UT flag on the productpage -> reviews-v2 edge. */
    snprintf(args, sizeof(args), "apply -f '%s/virtual-service-ratings-test-delay.yaml'",
             g.config_dir);
    assert_int_equal(weft_cli(args), 0);
    snprintf(args, sizeof(args), "apply -f '%s/virtual-service-reviews-timeout.yaml'",
             g.config_dir);
    assert_int_equal(weft_cli(args), 0);
    bool timed_out = false;
    for (int tries = 0; tries < 120 && !timed_out; tries++) {
        n = graph_edges("workload", e, 32);
        const edge_t *x = find_edge(e, n, "productpage-v1>reviews-v2");
        timed_out = x != NULL &&
                    json_object_get(json_object_get(json_object_get(x->responses, "504"), "flags"),
                                    "UT") != NULL;
        edges_free(e, n);
        if (!timed_out) {
            usleep(500 * 1000);
        }
    }
    assert_true(timed_out);

    /* 8. Within its memory budget. */
    int nprocs = 0;
    long kib = demo_rss_kib(&nprocs);
    fprintf(stderr, "weft demo: %d processes, %ld MiB resident in all\n", nprocs, kib / 1024);
    assert_true(nprocs >= 15);
    if (UNDER_ASAN) {
        /* ASan's shadow memory and quarantine multiply every process's size. */
        fprintf(stderr, "weft demo: memory budget not checked in a sanitizer build\n");
    } else {
        assert_true(kib < 1024 * 1024);
    }
}

static int setup(void **state)
{
    char src[4096];
    snprintf(src, sizeof(src), "%s", __FILE__);
    snprintf(g.config_dir, sizeof(g.config_dir), "%s/../../deploy/demo", dirname(src));
    g.dir = wt_tmpdir("weft-demo");
    snprintf(g.log, sizeof(g.log), "%s/demo.out", g.dir);
    uint64_t seed = (uint64_t)getpid() * 2654435761u;
    snprintf(g.subnet, sizeof(g.subnet), "127.0.%d", 100 + (int)(wt_rand(&seed) % 150));
    /* three different ports (two probes in a row may be given the same one) */
    do {
        g.port = wt_free_port();
        g.gateway_port = wt_free_port();
        g.control_port = wt_free_port();
    } while (g.port == g.gateway_port || g.port == g.control_port ||
             g.gateway_port == g.control_port);
    char p1[16], p2[16], p3[16], data[4200];
    snprintf(p1, sizeof(p1), "%d", g.port);
    snprintf(p2, sizeof(p2), "%d", g.gateway_port);
    snprintf(p3, sizeof(p3), "%d", g.control_port);
    snprintf(data, sizeof(data), "%s/data", g.dir);
    char *argv[] = {(char *)wt_weft_bin(),
                    "demo",
                    "--port",
                    p1,
                    "--gateway-port",
                    p2,
                    "--control-port",
                    p3,
                    "--data-dir",
                    data,
                    "--config-dir",
                    g.config_dir,
                    "--subnet",
                    g.subnet,
                    "--rate",
                    "10",
                    "--error-percent",
                    "0",
                    NULL};
    g.pid = wt_spawn(argv, g.log);
    return g.pid > 0 ? 0 : -1;
}

static int teardown(void **state)
{
    /* SIGTERM stops the demo and everything it started. */
    int st = wt_stop(g.pid, 60000);
    bool clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    int left = 0;
    demo_rss_kib(&left);
    if (!clean || left != 0) {
        char *text = wt_read_file(g.log, NULL);
        fprintf(stderr, "demo exit status %d, %d processes left\n%s\n", st, left,
                text != NULL ? text : "");
        wf_free(text);
    }
    wt_rm_rf(g.dir);
    wf_free(g.dir);
    return clean && left == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_demo_end_to_end),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
