/*
 * test_collector_mesh.c - `weft collector --control` against a real `weft control`: workloads
 * registered (one without a sidecar), one polling its snapshot like a proxy, Istio resources
 * applied (an 80/20 split, a circuit breaker on one subset, a route to a subset nobody
 * defines), Istio metrics sent by remote_write. Then /api/mesh/services, /workloads, /config
 * and one resource's YAML are checked field by field, /api/graph carries the badges, twenty
 * requests cost the control plane one read, and the failures are answered as documented: no
 * --control (404), a control plane that refuses the token, is not there or never answers (502,
 * and the graph without badges but with "badgesError").
 */
#include "wf_alloc.h"
#include "wf_buf.h"
#include "wf_clock.h"
#include "wt_control.h"
#include "wt_rw.h"
#include "wt_util.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

typedef struct {
    pid_t pid;
    int port;
} collector_t;

static void collector_start(collector_t *c, const char *dir, const char *name,
                            const char *const *extra)
{
    char listen[64], data[600], log[600];
    c->port = wt_free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", c->port);
    snprintf(data, sizeof(data), "%s/%s-data", dir, name);
    snprintf(log, sizeof(log), "%s/%s.log", dir, name);
    char *argv[32] = {(char *)wt_weft_bin(), "collector", "--listen",      listen,
                      "--data-dir",          data,        "--otlp-listen", "off",
                      "--zipkin-listen",     "off"};
    size_t n = 10;
    for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 31; i++) {
        argv[n++] = (char *)extra[i];
    }
    argv[n] = NULL;
    c->pid = wt_spawn(argv, log);
    assert_true(wt_wait_port(c->port, 10000));
}

static void collector_stop(collector_t *c)
{
    int status = wt_stop(c->pid, 10000);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* GET path from the collector: the status, the JSON body in *out (NULL when not JSON). */
static int get_json(int port, const char *path, json_t **out)
{
    char *body = NULL;
    int st = wt_http(port, "GET", path, NULL, 0, &body);
    *out = body != NULL ? json_loads(body, 0, NULL) : NULL;
    if (*out == NULL) {
        fail_msg("GET %s -> %d, not JSON: %s", path, st, body ? body : "(none)");
    }
    wf_free(body);
    return st;
}

static const char *str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    if (s == NULL) {
        char *d = json_dumps(o, 0);
        fail_msg("no string %s in %s", key, d);
    }
    return s;
}

/* The element of array a whose member key is value; fails when none. */
static json_t *find(const json_t *a, const char *key, const char *value)
{
    size_t i;
    json_t *e;
    json_array_foreach(a, i, e)
    {
        const char *s = json_string_value(json_object_get(e, key));
        if (s != NULL && strcmp(s, value) == 0) {
            return e;
        }
    }
    char *d = json_dumps(a, 0);
    fail_msg("no %s=%s in %s", key, value, d);
    return NULL;
}

static void control_ok(wt_control_t *c, const char *method, const char *path, const char *token,
                       const char *body, int want)
{
    char *out = NULL;
    int st = wt_control_req(c->port, method, path, token, body, &out);
    if (st != want) {
        fail_msg("%s %s -> %d (want %d): %s", method, path, st, want, out ? out : "");
    }
    wf_free(out);
}

static void register_workload(wt_control_t *c, const char *svc, const char *ver, const char *labels)
{
    char body[512];
    snprintf(body, sizeof(body),
             "{\"service\":\"%s\",\"namespace\":\"bookinfo\",\"version\":\"%s\","
             "\"address\":\"127.0.0.1\",\"ports\":[9080],\"labels\":%s}",
             svc, ver, labels);
    control_ok(c, "POST", "/v1/register", c->boot, body, 200);
}

static const char *const resources =
    "{\"items\":["
    "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"VirtualService\","
    "\"metadata\":{\"name\":\"reviews\",\"namespace\":\"bookinfo\"},\"spec\":{\"hosts\":"
    "[\"reviews\"],\"http\":[{\"route\":[{\"destination\":{\"host\":\"reviews\",\"subset\":"
    "\"v1\"},\"weight\":80},{\"destination\":{\"host\":\"reviews\",\"subset\":\"v2\"},"
    "\"weight\":20}]}]}},"
    "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"DestinationRule\","
    "\"metadata\":{\"name\":\"reviews\",\"namespace\":\"bookinfo\"},\"spec\":{\"host\":"
    "\"reviews\",\"subsets\":[{\"name\":\"v1\",\"labels\":{\"version\":\"v1\"}},{\"name\":\"v2\","
    "\"labels\":{\"version\":\"v2\"},\"trafficPolicy\":{\"outlierDetection\":"
    "{\"consecutive5xxErrors\":3}}}]}},"
    "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"VirtualService\","
    "\"metadata\":{\"name\":\"legacy\",\"namespace\":\"bookinfo\"},\"spec\":{\"hosts\":"
    "[\"legacy\"],\"http\":[{\"timeout\":\"2s\",\"route\":[{\"destination\":{\"host\":"
    "\"legacy\",\"subset\":\"v9\"}}]}]}}"
    "]}";

/* productpage-v1 -> reviews-v1, reviews-v2, legacy-v1: 1 request/s each, as the source proxy
 * reports it, over the last ten minutes. */
static void send_metrics(int port)
{
    int64_t t_last = (wf_wall_ms() / 15000) * 15000;
    wt_rw_t *rw = wt_rw_new();
    static const char *const dst[][3] = {{"reviews-v1", "reviews", "v1"},
                                         {"reviews-v2", "reviews", "v2"},
                                         {"legacy-v1", "legacy", "v1"}};
    for (size_t d = 0; d < 3; d++) {
        char series[1024];
        snprintf(series, sizeof(series),
                 "istio_requests_total{reporter=\"source\",source_workload=\"productpage-v1\","
                 "source_workload_namespace=\"bookinfo\",source_canonical_service=\"productpage\","
                 "source_canonical_revision=\"v1\",destination_workload=\"%s\","
                 "destination_workload_namespace=\"bookinfo\",destination_canonical_service=\"%s\","
                 "destination_canonical_revision=\"%s\",destination_service_name=\"%s\","
                 "destination_service_namespace=\"bookinfo\",response_code=\"200\","
                 "response_flags=\"-\"}",
                 dst[d][0], dst[d][1], dst[d][2], dst[d][1]);
        wt_rw_series_s(rw, series);
        for (int i = 0; i <= 40; i++) {
            wt_rw_sample(rw, t_last - (40 - i) * 15000, i * 15.0);
        }
    }
    char *resp = NULL;
    int st = wt_rw_send(rw, port, "/api/v1/write", &resp);
    if (st != 204) {
        fail_msg("remote_write: %d %s", st, resp ? resp : "");
    }
    wf_free(resp);
    wt_rw_free(rw);
}

/* The graph node of app (and version, "" for none) in graph g. */
static json_t *graph_node(const json_t *g, const char *field, const char *value,
                          const char *version)
{
    size_t i;
    json_t *n;
    json_array_foreach(json_object_get(json_object_get(g, "elements"), "nodes"), i, n)
    {
        json_t *d = json_object_get(n, "data");
        const char *v = json_string_value(json_object_get(d, field));
        const char *ver = json_string_value(json_object_get(d, "version"));
        if (v != NULL && strcmp(v, value) == 0 &&
            (version[0] ? ver && !strcmp(ver, version) : !ver)) {
            return d;
        }
    }
    char *s = json_dumps(g, 0);
    fail_msg("no node %s=%s %s in %s", field, value, version, s);
    return NULL;
}

static void test_mesh(void **state)
{
    (void)state;
    const char *const cp_args[] = {"--lease-ttl", "10m", NULL};
    wt_control_t c;
    assert_int_equal(wt_control_new(&c, "colmesh", cp_args), 0);
    register_workload(&c, "reviews", "v1", "{}");
    register_workload(&c, "reviews", "v2", "{}");
    register_workload(&c, "legacy", "v1", "{\"security.istio.io/tlsMode\":\"disabled\"}");
    control_ok(&c, "POST", "/v1/apply", c.admin, resources, 200);

    /* reviews-v1 polls like a proxy: takes the snapshot, then acknowledges its version */
    char *doc = NULL;
    int st = 0;
    for (int i = 0; i < 100 && st != 200; i++) {
        wf_free(doc);
        st = wt_control_req(c.port, "GET", "/v1/snapshot?proxy=reviews-v1.bookinfo&version=0",
                            c.boot, NULL, &doc);
        if (st != 200) {
            usleep(50000);
        }
    }
    assert_int_equal(st, 200);
    json_t *snap = json_loads(doc, 0, NULL);
    wf_free(doc);
    json_int_t version = json_integer_value(json_object_get(snap, "version"));
    json_decref(snap);
    assert_true(version > 0);
    char path[256];
    snprintf(path, sizeof(path), "/v1/snapshot?proxy=reviews-v1.bookinfo&version=%lld&wait_ms=1",
             (long long)version);
    control_ok(&c, "GET", path, c.boot, NULL, 304);

    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", c.port);
    const char *const col_args[] = {
        "--control", url, "--control-token-file", c.admin_file, "--control-cache", "1h", NULL};
    collector_t col;
    collector_start(&col, c.dir, "collector", col_args);
    send_metrics(col.port);

    /* Services: from the registry, with versions, routing resources and badges. */
    json_t *j;
    assert_int_equal(get_json(col.port, "/api/mesh/services", &j), 200);
    json_t *svcs = json_object_get(j, "services");
    assert_int_equal(json_array_size(svcs), 2);
    json_t *s = json_array_get(svcs, 1);
    assert_string_equal(str(s, "name"), "reviews");
    assert_string_equal(str(s, "namespace"), "bookinfo");
    assert_string_equal(str(s, "host"), "reviews.bookinfo.svc.cluster.local");
    char *d = json_dumps(s, JSON_COMPACT);
    assert_string_equal(
        d, "{\"name\":\"reviews\",\"namespace\":\"bookinfo\",\"host\":"
           "\"reviews.bookinfo.svc.cluster.local\",\"versions\":[\"v1\",\"v2\"],\"workloads\":2,"
           "\"inMesh\":true,\"virtualServices\":[\"bookinfo/reviews\"],\"destinationRules\":"
           "[\"bookinfo/reviews\"],\"badges\":{\"hasVS\":{\"hostnames\":[\"reviews\"]},"
           "\"hasCB\":true,\"hasTrafficShifting\":true}}");
    free(d);
    s = json_array_get(svcs, 0);
    assert_string_equal(str(s, "name"), "legacy");
    assert_true(json_is_false(json_object_get(s, "inMesh")));
    d = json_dumps(json_object_get(s, "badges"), JSON_COMPACT);
    assert_string_equal(d, "{\"hasVS\":{\"hostnames\":[\"legacy\"]},\"hasRequestTimeout\":true}");
    free(d);
    json_decref(j);

    /* Workloads: registry entries with the proxy's sync state as proxy-status has it. */
    assert_int_equal(get_json(col.port, "/api/mesh/workloads", &j), 200);
    json_t *wls = json_object_get(j, "workloads");
    assert_int_equal(json_array_size(wls), 3);
    json_t *w = find(wls, "id", "reviews-v1.bookinfo");
    assert_string_equal(str(w, "name"), "reviews-v1");
    assert_string_equal(str(w, "app"), "reviews");
    assert_string_equal(str(w, "version"), "v1");
    assert_string_equal(str(w, "identity"), "spiffe://cluster.local/ns/bookinfo/sa/default");
    assert_true(json_is_true(json_object_get(w, "inMesh")));
    assert_true(json_integer_value(json_object_get(w, "leaseRemainingMs")) > 60000);
    json_t *p = json_object_get(w, "proxy");
    assert_string_equal(str(p, "state"), "SYNCED");
    assert_int_equal(json_integer_value(json_object_get(p, "acked")), version);
    w = find(wls, "id", "legacy-v1.bookinfo");
    assert_true(json_is_false(json_object_get(w, "inMesh")));
    assert_true(json_is_null(json_object_get(w, "proxy")));
    json_decref(j);

    /* Config: every resource with its validation state and messages. */
    assert_int_equal(get_json(col.port, "/api/mesh/config", &j), 200);
    json_t *rs = json_object_get(j, "resources");
    assert_int_equal(json_array_size(rs), 3);
    json_t *r = json_array_get(rs, 0);
    assert_string_equal(str(r, "kind"), "DestinationRule");
    assert_string_equal(str(r, "validation"), "valid");
    assert_int_equal(json_array_size(json_object_get(r, "messages")), 0);
    r = json_array_get(rs, 1);
    assert_string_equal(str(r, "kind"), "VirtualService");
    assert_string_equal(str(r, "name"), "legacy");
    assert_string_equal(str(r, "validation"), "warning");
    json_t *m = json_array_get(json_object_get(r, "messages"), 0);
    assert_string_equal(str(m, "code"), "KIA1107");
    assert_string_equal(str(m, "level"), "warning");
    assert_string_equal(str(m, "path"), "spec.http[0].route[0].destination.subset");
    assert_non_null(strstr(str(m, "message"), "Subset not found"));
    r = json_array_get(rs, 2);
    assert_string_equal(str(r, "name"), "reviews");
    assert_string_equal(str(r, "validation"), "valid");
    json_decref(j);

    /* One resource as YAML, by kind name or plural. */
    assert_int_equal(get_json(col.port, "/api/mesh/config/destinationrules/bookinfo/reviews", &j),
                     200);
    const char *yaml = str(j, "yaml");
    const char *spec = strstr(yaml, "spec:\n");
    assert_non_null(spec);
    assert_string_equal(spec, "spec:\n"
                              "  host: reviews\n"
                              "  subsets:\n"
                              "  - labels:\n"
                              "      version: v1\n"
                              "    name: v1\n"
                              "  - labels:\n"
                              "      version: v2\n"
                              "    name: v2\n"
                              "    trafficPolicy:\n"
                              "      outlierDetection:\n"
                              "        consecutive5xxErrors: 3\n");
    assert_int_equal(strncmp(yaml,
                             "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
                             "metadata:\n",
                             57),
                     0);
    assert_non_null(strstr(yaml, "\n  resourceVersion: \""));
    json_decref(j);
    assert_int_equal(get_json(col.port, "/api/mesh/config/VirtualService/bookinfo/legacy", &j),
                     200);
    assert_string_equal(str(j, "validation"), "warning");
    /* durations stay plain, as kubectl prints them */
    assert_non_null(strstr(str(j, "yaml"), "\n  http:\n  - route:\n    - destination:\n"
                                           "        host: legacy\n        subset: v9\n"
                                           "    timeout: 2s\n"));
    json_decref(j);
    assert_int_equal(get_json(col.port, "/api/mesh/config/VirtualService/bookinfo/nope", &j), 404);
    assert_string_equal(str(j, "error"), "the control plane has no VirtualService bookinfo/nope");
    json_decref(j);
    assert_int_equal(get_json(col.port, "/api/mesh/config/VirtualService/bookinfo", &j), 404);
    json_decref(j);

    /* The graph's badges, where Kiali puts them. */
    assert_int_equal(
        get_json(col.port, "/api/graph?namespaces=bookinfo&graphType=app&duration=5m", &j), 200);
    assert_null(json_object_get(j, "badgesError"));
    json_t *n = graph_node(j, "app", "reviews", "");
    d = json_dumps(json_object_get(n, "hasVS"), JSON_COMPACT);
    assert_string_equal(d, "{\"hostnames\":[\"reviews\"]}");
    free(d);
    assert_true(json_is_true(json_object_get(n, "hasTrafficShifting")));
    assert_true(json_is_true(json_object_get(n, "hasCB")));
    n = graph_node(j, "app", "legacy", "");
    assert_true(json_is_true(json_object_get(n, "hasRequestTimeout")));
    assert_true(json_is_true(json_object_get(n, "hasMissingSC")));
    n = graph_node(j, "app", "productpage", "");
    assert_null(json_object_get(n, "hasVS"));
    assert_null(json_object_get(n, "hasMissingSC"));
    json_decref(j);
    assert_int_equal(
        get_json(col.port, "/api/graph?namespaces=bookinfo&graphType=workload&duration=5m", &j),
        200);
    n = graph_node(j, "workload", "reviews-v2", "v2");
    assert_true(json_is_true(json_object_get(n, "hasCB")));
    assert_null(json_object_get(n, "hasVS"));
    n = graph_node(j, "workload", "reviews-v1", "v1");
    assert_null(json_object_get(n, "hasCB"));
    n = graph_node(j, "workload", "legacy-v1", "v1");
    assert_true(json_is_true(json_object_get(n, "hasMissingSC")));
    json_decref(j);

    /* Twenty more requests: the control plane is not asked again within --control-cache. */
    const char *metric = "weft_control_http_requests_total{code=\"2xx\",handler=\"/v1/workloads\"}";
    double before = wt_control_metric(c.port, metric);
    assert_true(before >= 1);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(get_json(col.port, i % 2 ? "/api/mesh/workloads" : "/api/mesh/config", &j),
                         200);
        json_decref(j);
    }
    assert_true(wt_control_metric(c.port, metric) == before);
    collector_stop(&col);

    /* A wrong token: 502 saying the control plane refused it, and how to give one. */
    char bad[700];
    snprintf(bad, sizeof(bad), "%s/wrong-token", c.dir);
    wt_write_file(bad, "0000\n");
    const char *const bad_args[] = {"--control", url, "--control-token-file", bad, NULL};
    collector_start(&col, c.dir, "badtoken", bad_args);
    assert_int_equal(get_json(col.port, "/api/mesh/services", &j), 502);
    assert_non_null(strstr(str(j, "error"), "answered 401"));
    assert_non_null(strstr(str(j, "error"), "--control-token-file"));
    json_decref(j);
    collector_stop(&col);

    assert_int_equal(wt_control_stop(&c), 0);
    wt_control_free(&c);
}

static void test_unreachable_and_absent(void **state)
{
    (void)state;
    char *dir = wt_tmpdir("colmesh2");
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", wt_free_port());
    const char *const args[] = {"--control", url, NULL};
    collector_t col;
    collector_start(&col, dir, "down", args);
    send_metrics(col.port);
    json_t *j;
    assert_int_equal(get_json(col.port, "/api/mesh/workloads", &j), 502);
    char want[256];
    snprintf(want, sizeof(want), "the control plane at %s did not answer: ", url);
    assert_int_equal(strncmp(str(j, "error"), want, strlen(want)), 0);
    json_decref(j);
    /* the graph still answers, without badges, and says why */
    assert_int_equal(
        get_json(col.port, "/api/graph?namespaces=bookinfo&graphType=app&duration=5m", &j), 200);
    assert_int_equal(strncmp(str(j, "badgesError"), want, strlen(want)), 0);
    json_t *n = graph_node(j, "app", "reviews", "");
    assert_null(json_object_get(n, "hasVS"));
    json_decref(j);
    collector_stop(&col);

    /* a control plane that accepts connections and never answers: the refresh times out */
    int silent = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t salen = sizeof(sa);
    assert_int_equal(bind(silent, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(silent, 16), 0);
    assert_int_equal(getsockname(silent, (struct sockaddr *)&sa, &salen), 0);
    char silent_url[64];
    snprintf(silent_url, sizeof(silent_url), "http://127.0.0.1:%d", ntohs(sa.sin_port));
    const char *const silent_args[] = {"--control", silent_url, "--control-timeout", "300ms", NULL};
    collector_start(&col, dir, "silent", silent_args);
    assert_int_equal(get_json(col.port, "/api/mesh/config", &j), 502);
    snprintf(want, sizeof(want), "the control plane at %s did not answer: Timeout was reached",
             silent_url);
    assert_string_equal(str(j, "error"), want);
    json_decref(j);
    collector_stop(&col);
    close(silent);

    /* no --control at all: the mesh API says how to connect one; the graph has no badge field */
    collector_start(&col, dir, "alone", NULL);
    static const char *const paths[] = {"/api/mesh/services", "/api/mesh/workloads",
                                        "/api/mesh/config", "/api/mesh/config/vs/a/b"};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(get_json(col.port, paths[i], &j), 404);
        assert_string_equal(str(j, "error"), "the collector is not connected to a control plane: "
                                             "start it with --control URL");
        json_decref(j);
    }
    assert_int_equal(get_json(col.port, "/api/graph?namespaces=bookinfo", &j), 200);
    assert_null(json_object_get(j, "badgesError"));
    json_decref(j);
    collector_stop(&col);

    /* a token file named but unreadable: refused at start, with the reason */
    char log[600];
    snprintf(log, sizeof(log), "%s/refused.log", dir);
    char *argv[] = {
        (char *)wt_weft_bin(),      "collector", "--control", url, "--control-token-file",
        "/nonexistent/admin-token", NULL};
    pid_t pid = wt_spawn(argv, log);
    int status = wt_wait(pid, 10000);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 2);
    char *text = wt_read_file(log, NULL);
    assert_non_null(strstr(text, "--control-token-file /nonexistent/admin-token: No such file"));
    wf_free(text);
    wt_rm_rf(dir);
    wf_free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mesh),
        cmocka_unit_test(test_unreachable_and_absent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
