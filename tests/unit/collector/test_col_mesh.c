/*
 * test_col_mesh.c - the graph badges (col_mesh_badges) derived from fixed configuration, with
 * Kiali's meaning: Istio's bookinfo samples from ../shared/ref/istio/ (the 80/20 reviews split,
 * the ratings abort, the details fault, destination-rule-all, the gateway's VirtualService)
 * turned into the canonical JSON the control plane serves by the control plane's own parser,
 * plus small Istio-shaped documents for what the samples lack (circuit breakers in a subset,
 * timeouts, mirroring, hosts of other namespaces) and registry entries for the missing sidecar.
 * Also: the JSON members the graph carries, and views refused for malformed answers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "col_mesh.h"
#include "cp_istio.h"
#include "cp_yaml.h"
#include "wf_alloc.h"
#include "wf_buf.h"
#include "wf_err.h"
#include "wt_util.h"

/* Every Istio document of text as the control plane lists it: {"items":[<canonical JSON>]},
 * each in namespace ns unless it names one. */
static char *list_of(const char *text, const char *ns)
{
    cp_yaml_stream_t *st = NULL;
    assert_int_equal(cp_yaml_parse(text, strlen(text), NULL, &st, NULL), 0);
    wf_buf_t b = WF_BUF_INIT;
    wf_buf_puts(&b, "{\"items\":[");
    size_t n = 0;
    for (uint32_t i = 0; i < st->n_docs; i++) {
        cp_resource_t *r = NULL;
        if (cp_yaml_is_null(st->docs[i])) {
            continue;
        }
        cp_err_t err;
        if (cp_istio_parse(st->docs[i], &r, &err) != 0) {
            fail_msg("document %u: %s", i, err.msg);
        }
        char *json = cp_istio_to_json(r);
        if (n++ > 0) {
            wf_buf_putc(&b, ',');
        }
        /* the canonical JSON names the namespace only when the document did */
        if (strstr(json, "\"namespace\"") == NULL) {
            char *meta = strstr(json, "\"metadata\":{");
            assert_non_null(meta);
            size_t head = (size_t)(meta - json) + strlen("\"metadata\":{");
            wf_buf_append(&b, json, head);
            wf_buf_printf(&b, "\"namespace\":\"%s\",", ns);
            wf_buf_puts(&b, json + head);
        } else {
            wf_buf_puts(&b, json);
        }
        wf_free(json);
        cp_resource_free(r);
    }
    wf_buf_puts(&b, "]}");
    wf_buf_putc(&b, 0);
    cp_yaml_free(st);
    return (char *)wf_buf_detach(&b, NULL);
}

/* The reference file rel as a list, or NULL when the reference data is absent. */
static char *ref_list(const char *rel)
{
    char *path = wt_ref_path(rel);
    if (path == NULL) {
        return NULL;
    }
    char *text = wt_read_file(path, NULL);
    assert_non_null(text);
    char *l = list_of(text, "default");
    wf_free(text);
    wf_free(path);
    return l;
}

static col_mesh_view_t *view_of(char **lists, size_t n, const char *workloads)
{
    col_mesh_src_t src = {.lists = (const char *const *)lists, .nlists = n, .workloads = workloads};
    col_mesh_view_t *v = NULL;
    char err[256] = "";
    int rc = col_mesh_view_new(&src, &v, err, sizeof(err));
    if (rc != 0) {
        fail_msg("view: %s", err);
    }
    return v;
}

static col_mesh_badges_t badges(const col_mesh_view_t *v, const char *type, const char *ns,
                                const char *workload, const char *app, const char *version,
                                const char *service)
{
    col_mesh_node_t n = {.type = type,
                         .ns = wf_str(ns),
                         .workload = wf_str(workload),
                         .app = wf_str(app),
                         .version = wf_str(version),
                         .service = wf_str(service)};
    col_mesh_badges_t b;
    col_mesh_badges(v, &n, &b);
    return b;
}

static col_mesh_badges_t service_badges(const col_mesh_view_t *v, const char *ns, const char *svc)
{
    return badges(v, "service", ns, "", "", "", svc);
}

static char *badges_json(const col_mesh_badges_t *b)
{
    wf_buf_t out = WF_BUF_INIT;
    col_mesh_badges_json(b, &out);
    wf_buf_putc(&out, 0);
    return (char *)wf_buf_detach(&out, NULL);
}

static void assert_badges(const col_mesh_badges_t *b, const char *want)
{
    char *got = badges_json(b);
    assert_string_equal(got, want);
    wf_free(got);
}

static void free_lists(char **lists, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        wf_free(lists[i]);
    }
}

/* Bookinfo's samples: the 80/20 split on reviews, the abort on ratings, the fault on details,
 * destination-rule-all (subsets without policies: no circuit breaker), the gateway's own
 * VirtualService (hosts "*", bound to the gateway only: no badge on any service). */
static void test_bookinfo_samples(void **state)
{
    (void)state;
    static const char *const files[] = {
        "istio/destination-rule-all.yaml", "istio/virtual-service-reviews-80-20.yaml",
        "istio/virtual-service-ratings-test-abort.yaml", "istio/bookinfo-gateway.yaml"};
    char *lists[4] = {NULL};
    for (size_t i = 0; i < 4; i++) {
        lists[i] = ref_list(files[i]);
        if (lists[i] == NULL) {
            free_lists(lists, i);
            wt_skip();
        }
    }
    col_mesh_view_t *v = view_of(lists, 4, NULL);

    col_mesh_badges_t b = service_badges(v, "default", "reviews");
    assert_true(b.vs && b.shifting);
    assert_false(b.fault || b.cb || b.timeout || b.mirroring || b.missing_sc);
    assert_int_equal(b.nhostnames, 1);
    assert_string_equal(b.hostnames[0], "reviews");
    assert_badges(&b, ",\"hasVS\":{\"hostnames\":[\"reviews\"]},\"hasTrafficShifting\":true");

    /* test-abort: jason gets v1, everyone else a 500 half the time; one destination per route */
    b = service_badges(v, "default", "ratings");
    assert_badges(&b, ",\"hasVS\":{\"hostnames\":[\"ratings\"]},\"hasFaultInjection\":true");

    /* productpage has a DestinationRule and is routed only by the gateway's VirtualService */
    b = service_badges(v, "default", "productpage");
    assert_badges(&b, "");

    /* Where Kiali puts them: an app node carries the service's badges, a versioned app or a
     * workload only circuit breakers; another namespace's service is another service. */
    b = badges(v, "app", "default", "", "reviews", "", "");
    assert_true(b.vs && b.shifting);
    b = badges(v, "box", "default", "", "reviews", "", "");
    assert_true(b.vs && b.shifting);
    b = badges(v, "app", "default", "", "reviews", "v2", "");
    assert_badges(&b, "");
    b = badges(v, "workload", "default", "reviews-v2", "reviews", "v2", "");
    assert_badges(&b, "");
    b = service_badges(v, "prod", "reviews");
    assert_badges(&b, "");
    b = badges(v, "unknown", "unknown", "", "", "", "");
    assert_badges(&b, "");

    col_mesh_view_release(v);
    free_lists(lists, 4);
}

/* The details fault sample (a VirtualService and its DestinationRule in one file). */
static void test_details_fault(void **state)
{
    (void)state;
    char *list = ref_list("istio/fault-injection-details-v1.yaml");
    if (list == NULL) {
        wt_skip();
    }
    col_mesh_view_t *v = view_of(&list, 1, NULL);
    col_mesh_badges_t b = service_badges(v, "default", "details");
    assert_badges(&b, ",\"hasVS\":{\"hostnames\":[\"details\"]},\"hasFaultInjection\":true");
    col_mesh_view_release(v);
    wf_free(list);
}

static const char cb_yaml[] = "apiVersion: networking.istio.io/v1\n"
                              "kind: DestinationRule\n"
                              "metadata: {name: reviews, namespace: bookinfo}\n"
                              "spec:\n"
                              "  host: reviews\n"
                              "  subsets:\n"
                              "  - name: v1\n"
                              "    labels: {version: v1}\n"
                              "  - name: v2\n"
                              "    labels: {version: v2}\n"
                              "    trafficPolicy:\n"
                              "      outlierDetection: {consecutive5xxErrors: 3}\n"
                              "---\n"
                              "apiVersion: networking.istio.io/v1\n"
                              "kind: DestinationRule\n"
                              "metadata: {name: ratings, namespace: bookinfo}\n"
                              "spec:\n"
                              "  host: ratings.bookinfo.svc.cluster.local\n"
                              "  trafficPolicy:\n"
                              "    portLevelSettings:\n"
                              "    - port: {number: 9080}\n"
                              "      connectionPool:\n"
                              "        tcp: {maxConnections: 10}\n"
                              "---\n"
                              "apiVersion: networking.istio.io/v1\n"
                              "kind: DestinationRule\n"
                              "metadata: {name: details, namespace: bookinfo}\n"
                              "spec:\n"
                              "  host: details\n"
                              "  subsets:\n"
                              "  - name: canary\n"
                              "    labels: {track: canary}\n"
                              "    trafficPolicy:\n"
                              "      connectionPool:\n"
                              "        http: {http1MaxPendingRequests: 1}\n";

/* Circuit breakers: top level (here port level) for every node of the host; a subset's only
 * for the versions it selects, other labels read from the registry. */
static void test_circuit_breakers(void **state)
{
    (void)state;
    char *list = list_of(cb_yaml, "bookinfo");
    const char *workloads =
        "{\"items\":[{\"id\":\"details-v1.bookinfo\",\"service\":\"details\","
        "\"namespace\":\"bookinfo\",\"version\":\"v1\",\"canonicalService\":\"details\","
        "\"canonicalRevision\":\"v1\",\"labels\":{\"track\":\"canary\"}},"
        "{\"id\":\"details-v2.bookinfo\",\"service\":\"details\",\"namespace\":\"bookinfo\","
        "\"version\":\"v2\",\"canonicalService\":\"details\",\"canonicalRevision\":\"v2\","
        "\"labels\":{}}]}";
    col_mesh_view_t *v = view_of(&list, 1, workloads);

    col_mesh_badges_t b = service_badges(v, "bookinfo", "reviews");
    assert_badges(&b, ",\"hasCB\":true");
    b = badges(v, "app", "bookinfo", "", "reviews", "", "");
    assert_true(b.cb);
    b = badges(v, "app", "bookinfo", "", "reviews", "v2", "");
    assert_true(b.cb);
    b = badges(v, "app", "bookinfo", "", "reviews", "v1", "");
    assert_false(b.cb);
    b = badges(v, "workload", "bookinfo", "reviews-v2", "reviews", "v2", "");
    assert_true(b.cb);
    b = badges(v, "workload", "bookinfo", "reviews-v3", "reviews", "v3", "");
    assert_false(b.cb);

    b = badges(v, "workload", "bookinfo", "ratings-v1", "ratings", "v1", "");
    assert_true(b.cb);
    b = service_badges(v, "bookinfo", "ratings");
    assert_badges(&b, ",\"hasCB\":true");

    b = badges(v, "workload", "bookinfo", "details-v1", "details", "v1", "");
    assert_true(b.cb);
    b = badges(v, "workload", "bookinfo", "details-v2", "details", "v2", "");
    assert_false(b.cb);
    /* an unregistered version: its labels are unknown, so no subset selects it */
    b = badges(v, "workload", "bookinfo", "details-v3", "details", "v3", "");
    assert_false(b.cb);

    col_mesh_view_release(v);
    wf_free(list);
}

static const char routes_yaml[] =
    "apiVersion: networking.istio.io/v1\n"
    "kind: VirtualService\n"
    "metadata: {name: ratings, namespace: bookinfo}\n"
    "spec:\n"
    "  hosts: [ratings]\n"
    "  http:\n"
    "  - match: [{uri: {prefix: /slow}}]\n"
    "    timeout: 10s\n"
    "    route: [{destination: {host: ratings, subset: v1}}]\n"
    "  - mirror: {host: ratings, subset: v2}\n"
    "    mirrorPercentage: {value: 10}\n"
    "    route:\n"
    "    - {destination: {host: ratings, subset: v1}, weight: 100}\n"
    "    - {destination: {host: ratings, subset: v2}, weight: 0}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: VirtualService\n"
    "metadata: {name: reviews-from-ops, namespace: ops}\n"
    "spec:\n"
    "  hosts: [reviews.bookinfo.svc.cluster.local, details]\n"
    "  gateways: [mesh, ops-gateway]\n"
    "  http:\n"
    "  - route: [{destination: {host: reviews.bookinfo.svc.cluster.local}}]\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: VirtualService\n"
    "metadata: {name: mongo, namespace: bookinfo}\n"
    "spec:\n"
    "  hosts: [mongodb.bookinfo]\n"
    "  tcp:\n"
    "  - route:\n"
    "    - {destination: {host: mongodb, subset: v1}, weight: 50}\n"
    "    - {destination: {host: mongodb, subset: v2}, weight: 50}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: VirtualService\n"
    "metadata: {name: all-bookinfo, namespace: web}\n"
    "spec:\n"
    "  hosts: ['*.bookinfo.svc.cluster.local']\n"
    "  http:\n"
    "  - route: [{destination: {host: productpage.bookinfo.svc.cluster.local}}]\n";

/* Timeouts, mirrors, a weight of 0 (not a split), TCP splits, hosts written in other
 * namespaces (FQDN, name.namespace, wildcard), a VirtualService of mesh and a gateway. */
static void test_routes(void **state)
{
    (void)state;
    char *list = list_of(routes_yaml, "bookinfo");
    col_mesh_view_t *v = view_of(&list, 1, NULL);

    col_mesh_badges_t b = service_badges(v, "bookinfo", "ratings");
    assert_badges(&b, ",\"hasVS\":{\"hostnames\":[\"ratings\","
                      "\"*.bookinfo.svc.cluster.local\"]},\"hasRequestTimeout\":true,"
                      "\"hasMirroring\":true");
    b = service_badges(v, "bookinfo", "reviews");
    assert_badges(&b, ",\"hasVS\":{\"hostnames\":[\"reviews.bookinfo.svc.cluster.local\","
                      "\"*.bookinfo.svc.cluster.local\"]}");
    b = service_badges(v, "bookinfo", "mongodb");
    assert_badges(&b, ",\"hasVS\":{\"hostnames\":[\"mongodb.bookinfo\","
                      "\"*.bookinfo.svc.cluster.local\"]},\"hasTrafficShifting\":true");
    /* "details" in namespace ops is details.ops, not bookinfo's */
    b = service_badges(v, "ops", "details");
    assert_badges(&b, ",\"hasVS\":{\"hostnames\":[\"details\"]}");
    b = service_badges(v, "other", "details");
    assert_badges(&b, "");

    col_mesh_view_release(v);
    wf_free(list);
}

/* A registered workload out of the mesh (Istio's tlsMode label, as the snapshot compiler reads
 * it) marks its workload, app and versioned-app nodes, never a service node. */
static void test_missing_sidecar(void **state)
{
    (void)state;
    const char *workloads =
        "{\"items\":[{\"id\":\"legacy-v1.bookinfo\",\"service\":\"legacy\","
        "\"namespace\":\"bookinfo\",\"version\":\"v1\",\"canonicalService\":\"legacy\","
        "\"canonicalRevision\":\"v1\",\"labels\":{\"security.istio.io/tlsMode\":\"disabled\"}},"
        "{\"id\":\"reviews-v1.bookinfo\",\"service\":\"reviews\",\"namespace\":\"bookinfo\","
        "\"version\":\"v1\",\"canonicalService\":\"reviews\",\"canonicalRevision\":\"v1\","
        "\"labels\":{\"security.istio.io/tlsMode\":\"istio\"}}]}";
    col_mesh_view_t *v = view_of(NULL, 0, workloads);
    col_mesh_badges_t b = badges(v, "workload", "bookinfo", "legacy-v1", "legacy", "v1", "");
    assert_badges(&b, ",\"hasMissingSC\":true");
    b = badges(v, "app", "bookinfo", "", "legacy", "", "");
    assert_true(b.missing_sc);
    b = badges(v, "app", "bookinfo", "", "legacy", "v1", "");
    assert_true(b.missing_sc);
    b = badges(v, "app", "bookinfo", "", "legacy", "v2", "");
    assert_false(b.missing_sc);
    b = service_badges(v, "bookinfo", "legacy");
    assert_false(b.missing_sc);
    b = badges(v, "workload", "bookinfo", "reviews-v1", "reviews", "v1", "");
    assert_badges(&b, "");
    b = badges(v, "workload", "other", "legacy-v1", "legacy", "v1", "");
    assert_false(b.missing_sc);
    col_mesh_view_release(v);
}

/* Answers that are not the control plane's are refused with what was wrong; no view, no
 * badges. */
static void test_malformed(void **state)
{
    (void)state;
    const char *bad_lists[] = {"{\"items\":[]}", "{\"items\":{}}"};
    col_mesh_src_t src = {.lists = bad_lists, .nlists = 2};
    col_mesh_view_t *v = (col_mesh_view_t *)1;
    char err[256] = "";
    assert_int_equal(col_mesh_view_new(&src, &v, err, sizeof(err)), WF_E_INVAL);
    assert_null(v);
    assert_string_equal(err, "resource list: not an object with an array member");

    col_mesh_src_t src2 = {.workloads = "{\"items\":[1,"};
    assert_int_equal(col_mesh_view_new(&src2, &v, err, sizeof(err)), WF_E_INVAL);
    assert_non_null(strstr(err, "/v1/workloads: "));

    /* items that are not objects are skipped, not trusted */
    const char *odd[] = {"{\"items\":[1,\"x\",null,{\"kind\":\"VirtualService\"}]}"};
    col_mesh_src_t src3 = {.lists = odd, .nlists = 1};
    assert_int_equal(col_mesh_view_new(&src3, &v, err, sizeof(err)), 0);
    col_mesh_badges_t b = service_badges(v, "default", "reviews");
    assert_badges(&b, "");
    col_mesh_view_release(v);
    col_mesh_view_release(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bookinfo_samples), cmocka_unit_test(test_details_fault),
        cmocka_unit_test(test_circuit_breakers), cmocka_unit_test(test_routes),
        cmocka_unit_test(test_missing_sidecar),  cmocka_unit_test(test_malformed),
    };
    return wt_exit_code(cmocka_run_group_tests(tests, NULL, NULL));
}
