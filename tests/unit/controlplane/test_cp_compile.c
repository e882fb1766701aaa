/*
 * test_cp_compile.c - the snapshot compiler over the bookinfo reference resources and a
 * bookinfo registry: golden comparisons with the example snapshots of tests/proxy/snapshots/,
 * field-by-field checks for every reference VirtualService, Sidecar scoping, PeerAuthentication
 * precedence, ServiceEntries, gateways, content hashes, gzip-encoded documents, and the rule
 * that every compiled document passes the proxy's strict parser.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <pthread.h>
#include <zlib.h>

#include "cp_compile.h"
#include "px_snapshot.h"
#include "wf_alloc.h"
#include "wf_err.h"
#include "wt_util.h"

#define COLLECTOR "http://127.0.0.1:4318/v1/traces"

/* ---- building configurations ---- */

/* Add every Istio document of text to cfg (Kubernetes kinds are skipped). */
static void add_yaml(cp_config_t *cfg, const char *text, size_t len)
{
    cp_err_t err;
    if (cp_config_add_yaml(cfg, text, len, NULL, true, &err) != 0) {
        fail_msg("%s", err.msg);
    }
}

static void add_text(cp_config_t *cfg, const char *text)
{
    add_yaml(cfg, text, strlen(text));
}

/* false when the reference data is absent (the test then skips). */
static bool add_ref(cp_config_t *cfg, const char *name)
{
    char rel[128];
    snprintf(rel, sizeof(rel), "istio/%s", name);
    char *path = wt_ref_path(rel);
    if (path == NULL) {
        return false;
    }
    size_t len;
    char *text = wt_read_file(path, &len);
    assert_non_null(text);
    add_yaml(cfg, text, len);
    wf_free(text);
    wf_free(path);
    return true;
}

static void add_wl(cp_config_t *cfg, const char *service, const char *ns, const char *version,
                   const char *address, const char *sa, uint16_t port, bool gateway,
                   const char *const *labels)
{
    cp_workload_t w;
    memset(&w, 0, sizeof(w));
    char id[256];
    if (version[0] != '\0') {
        snprintf(id, sizeof(id), "%s-%s.%s", service, version, ns);
    } else {
        snprintf(id, sizeof(id), "%s.%s", service, ns);
    }
    w.id = id;
    w.service = (char *)service;
    w.ns = (char *)ns;
    w.version = (char *)version;
    w.address = (char *)address;
    w.service_account = (char *)sa;
    cp_label_t lv[8];
    size_t nl = 0;
    for (size_t i = 0; labels != NULL && labels[i] != NULL; i += 2) {
        lv[nl].name = (char *)labels[i];
        lv[nl].value = (char *)labels[i + 1];
        nl++;
    }
    w.labels = lv;
    w.nlabels = nl;
    w.ports = &port;
    w.nports = port != 0 ? 1 : 0;
    w.gateway = gateway;
    cp_config_add_workload(cfg, &w);
}

/* bookinfo: productpage v1, details v1, reviews v1..v3, ratings v1 on 127.0.0.x:9080, and the
 * ingress gateway (istio-system, label istio=ingressgateway). */
static void add_bookinfo(cp_config_t *cfg)
{
    static const struct {
        const char *svc, *version, *addr;
    } b[] = {
        {"productpage", "v1", "127.0.0.10"}, {"details", "v1", "127.0.0.20"},
        {"reviews", "v1", "127.0.0.31"},     {"reviews", "v2", "127.0.0.32"},
        {"reviews", "v3", "127.0.0.33"},     {"ratings", "v1", "127.0.0.40"},
    };
    for (size_t i = 0; i < sizeof(b) / sizeof(b[0]); i++) {
        char sa[64];
        snprintf(sa, sizeof(sa), "bookinfo-%s", b[i].svc);
        const char *labels[] = {"app", b[i].svc, "version", b[i].version, NULL};
        add_wl(cfg, b[i].svc, "default", b[i].version, b[i].addr, sa, 9080, false, labels);
    }
    const char *gl[] = {"app", "istio-ingressgateway", "istio", "ingressgateway", NULL};
    add_wl(cfg, "istio-ingressgateway", "istio-system", "", "127.0.0.2",
           "istio-ingressgateway-service-account", 0, true, gl);
}

/* ---- compiling ---- */

/* Compile proxy id; the document must pass the proxy's strict parser. Returns it parsed. */
static json_t *compile_h(cp_compiled_t *c, const char *id, int64_t version, uint64_t *hash,
                         char **text)
{
    char *json = NULL;
    size_t len = 0;
    int rc = cp_compile_proxy(c, id, version, &json, &len, hash);
    assert_int_equal(rc, 0);
    assert_int_equal(len, strlen(json));
    px_snapshot_opts_t o;
    px_snapshot_opts_default(&o);
    o.strict = true;
    px_snapshot_t *s = NULL;
    char err[512];
    if (px_snapshot_parse(json, len, &o, &s, err, sizeof(err)) != 0) {
        fail_msg("%s: strict parse: %s\n%s", id, err, json);
    }
    px_snapshot_unref(s);
    json_error_t je;
    json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    assert_non_null(doc);
    if (text != NULL) {
        *text = json;
    } else {
        wf_free(json);
    }
    return doc;
}

static json_t *compile1(const cp_config_t *cfg, const char *id)
{
    cp_compile_opts_t o = {.collector_url = COLLECTOR, .sampling = -1, .access_log = false};
    cp_compiled_t *c;
    assert_int_equal(cp_compile_new(cfg, &o, &c), 0);
    json_t *doc = compile_h(c, id, 1, NULL, NULL);
    cp_compile_free(c);
    return doc;
}

/* ---- JSON helpers ---- */

/* Element of array a whose "name" is name, or NULL. */
static json_t *by_name(json_t *a, const char *name)
{
    size_t i;
    json_t *e;
    json_array_foreach(a, i, e)
    {
        const char *n = json_string_value(json_object_get(e, "name"));
        if (n != NULL && strcmp(n, name) == 0) {
            return e;
        }
    }
    return NULL;
}

static json_t *vhost(json_t *doc, const char *name)
{
    return by_name(json_object_get(doc, "virtual_hosts"), name);
}

static json_t *cluster(json_t *doc, const char *name)
{
    return by_name(json_object_get(doc, "clusters"), name);
}

/* Value at a path like "routes/0/route/1/weight" under o. */
static json_t *at(json_t *o, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    char *save = NULL;
    for (char *tok = strtok_r(buf, "/", &save); tok != NULL && o != NULL;
         tok = strtok_r(NULL, "/", &save)) {
        if (json_is_array(o)) {
            o = json_array_get(o, (size_t)strtoul(tok, NULL, 10));
        } else {
            o = json_object_get(o, tok);
        }
    }
    return o;
}

static const char *at_s(json_t *o, const char *path)
{
    json_t *v = at(o, path);
    if (!json_is_string(v)) {
        fail_msg("%s: not a string", path);
    }
    return json_string_value(v);
}

static long long at_i(json_t *o, const char *path)
{
    json_t *v = at(o, path);
    if (!json_is_integer(v)) {
        fail_msg("%s: not an integer", path);
    }
    return json_integer_value(v);
}

static void assert_json_eq(json_t *a, json_t *b, const char *what)
{
    if (!json_equal(a, b)) {
        char *x = json_dumps(a, JSON_INDENT(1) | JSON_SORT_KEYS);
        char *y = json_dumps(b, JSON_INDENT(1) | JSON_SORT_KEYS);
        fail_msg("%s differs:\ncompiled %s\nexpected %s", what, x ? x : "(null)", y ? y : "(null)");
    }
}

/* As assert_json_eq, taking ownership of expected (built with json_pack). */
static void assert_json_is(json_t *a, json_t *expected, const char *what)
{
    assert_non_null(expected);
    assert_json_eq(a, expected, what);
    json_decref(expected);
}

static json_t *load_example(const char *name)
{
    char *src = wf_strdup(__FILE__);
    char *cut = strstr(src, "/unit/controlplane/");
    assert_non_null(cut);
    *cut = '\0';
    char path[1024];
    snprintf(path, sizeof(path), "%s/proxy/snapshots/%s", src, name);
    wf_free(src);
    json_error_t je;
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (doc == NULL) {
        fail_msg("%s: %s", path, je.text);
    }
    return doc;
}

/* The examples were written with 10.1.0.x addresses; the test registry uses 127.0.0.x. */
static json_t *without_addresses(json_t *cl)
{
    json_t *c = json_deep_copy(cl);
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(c, "endpoints"), i, e)
    {
        json_object_del(e, "address");
    }
    return c;
}

/* Every example cluster is compiled identically (addresses aside). */
static void assert_example_clusters(json_t *doc, json_t *ex)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(ex, "clusters"), i, e)
    {
        const char *name = json_string_value(json_object_get(e, "name"));
        json_t *mine = cluster(doc, name);
        if (mine == NULL) {
            fail_msg("cluster %s missing", name);
        }
        json_t *a = without_addresses(mine), *b = without_addresses(e);
        assert_json_eq(a, b, name);
        json_decref(a);
        json_decref(b);
    }
}

/* ---- golden tests ---- */

static void test_productpage_80_20(void **state)
{
    (void)state;
    cp_config_t *cfg = cp_config_new();
    if (!add_ref(cfg, "destination-rule-all-mtls.yaml") ||
        !add_ref(cfg, "virtual-service-reviews-80-20.yaml")) {
        cp_config_free(cfg);
        wt_skip();
    }
    add_bookinfo(cfg);
    json_t *doc = compile1(cfg, "productpage-v1.default");
    json_t *ex = load_example("productpage-reviews-80-20.json");

    assert_int_equal(at_i(doc, "schema"), 1);
    assert_int_equal(at_i(doc, "version"), 1);
    assert_json_eq(at(doc, "proxy"), at(ex, "proxy"), "proxy");
    assert_json_eq(at(doc, "telemetry"), at(ex, "telemetry"), "telemetry");
    assert_json_eq(at(doc, "inbound"), at(ex, "inbound"), "inbound");

    /* Every bookinfo service and port, in host order. */
    json_t *vhs = at(doc, "virtual_hosts");
    assert_int_equal(json_array_size(vhs), 4);
    assert_string_equal(at_s(vhs, "0/name"), "details.default.svc.cluster.local:9080");
    assert_string_equal(at_s(vhs, "1/name"), "productpage.default.svc.cluster.local:9080");
    assert_string_equal(at_s(vhs, "2/name"), "ratings.default.svc.cluster.local:9080");
    assert_string_equal(at_s(vhs, "3/name"), "reviews.default.svc.cluster.local:9080");

    /* reviews: the VirtualService, exactly as the example. */
    json_t *rv = vhost(doc, "reviews.default.svc.cluster.local:9080");
    assert_json_eq(rv, vhost(ex, "reviews.default.svc.cluster.local:9080"), "reviews vhost");
    assert_int_equal(at_i(rv, "routes/0/route/0/weight"), 80);
    assert_int_equal(at_i(rv, "routes/0/route/1/weight"), 20);
    assert_string_equal(at_s(rv, "routes/0/route/0/destination/cluster"),
                        "outbound|9080|v1|reviews.default.svc.cluster.local");
    assert_string_equal(at_s(rv, "routes/0/route/1/destination/cluster"),
                        "outbound|9080|v2|reviews.default.svc.cluster.local");
    assert_null(at(rv, "routes/0/match"));

    /* details: no VirtualService, so no routes (the proxy's default route); the rest as the
     * example, whose explicit default route is what the parser fills in. */
    json_t *dv = json_deep_copy(vhost(doc, "details.default.svc.cluster.local:9080"));
    json_t *dex = json_deep_copy(vhost(ex, "details.default.svc.cluster.local:9080"));
    assert_null(json_object_get(dv, "routes"));
    assert_string_equal(at_s(dex, "routes/0/route/0/destination/cluster"),
                        "outbound|9080||details.default.svc.cluster.local");
    json_object_del(dex, "routes");
    assert_json_eq(dv, dex, "details vhost");
    json_decref(dv);
    json_decref(dex);

    /* Clusters: default + one per subset for each service (productpage 1+1, details 1+2,
     * reviews 1+3, ratings 1+4), those of the example identical. */
    assert_int_equal(json_array_size(at(doc, "clusters")), 14);
    assert_example_clusters(doc, ex);
    json_t *v2 = cluster(doc, "outbound|9080|v2|reviews.default.svc.cluster.local");
    assert_int_equal(json_array_size(at(v2, "endpoints")), 1);
    assert_string_equal(at_s(v2, "endpoints/0/address"), "127.0.0.32");
    assert_string_equal(at_s(v2, "endpoints/0/workload"), "reviews-v2");
    json_t *all = cluster(doc, "outbound|9080||reviews.default.svc.cluster.local");
    assert_int_equal(json_array_size(at(all, "endpoints")), 3);
    /* ratings v2 has no workload: an empty subset. */
    json_t *r2 = cluster(doc, "outbound|9080|v2|ratings.default.svc.cluster.local");
    assert_non_null(r2);
    assert_int_equal(json_array_size(at(r2, "endpoints")), 0);
    assert_string_equal(at_s(r2, "tls/mode"), "ISTIO_MUTUAL");
    assert_int_equal(json_array_size(at(r2, "tls/subject_alt_names")), 0);

    json_decref(doc);
    json_decref(ex);
    cp_config_free(cfg);
}

/* A DestinationRule without tls: no `tls` key, which the proxy reads as auto mTLS. */
static void test_no_tls_rule_is_auto_mtls(void **state)
{
    (void)state;
    cp_config_t *cfg = cp_config_new();
    if (!add_ref(cfg, "destination-rule-all.yaml")) {
        cp_config_free(cfg);
        wt_skip();
    }
    add_bookinfo(cfg);
    json_t *doc = compile1(cfg, "productpage-v1.default");
    json_t *c = cluster(doc, "outbound|9080|v1|reviews.default.svc.cluster.local");
    assert_non_null(c);
    assert_null(at(c, "tls"));
    assert_string_equal(at_s(c, "load_balancer/simple"), "LEAST_REQUEST");
    assert_int_equal(at_i(c, "connection_pool/tcp/connect_timeout_ms"), 10000);
    assert_null(at(c, "outlier_detection"));
    json_decref(doc);
    cp_config_free(cfg);
}

static void test_reviews_ratings_delay(void **state)
{
    (void)state;
    cp_config_t *cfg = cp_config_new();
    if (!add_ref(cfg, "destination-rule-all-mtls.yaml") ||
        !add_ref(cfg, "virtual-service-ratings-test-delay.yaml")) {
        cp_config_free(cfg);
        wt_skip();
    }
    add_bookinfo(cfg);
    json_t *doc = compile1(cfg, "reviews-v2.default");
    json_t *ex = load_example("reviews-v2-ratings-delay.json");
    assert_json_eq(at(doc, "proxy"), at(ex, "proxy"), "proxy");
    assert_json_eq(at(doc, "inbound"), at(ex, "inbound"), "inbound");
    json_t *rv = vhost(doc, "ratings.default.svc.cluster.local:9080");
    assert_json_eq(rv, vhost(ex, "ratings.default.svc.cluster.local:9080"), "ratings vhost");
    assert_string_equal(at_s(rv, "routes/0/match/0/headers/end-user/exact"), "jason");
    assert_int_equal(at_i(rv, "routes/0/fault/delay/fixed_delay_ms"), 7000);
    assert_true(json_real_value(at(rv, "routes/0/fault/delay/percentage")) == 100.0);
    assert_null(at(rv, "routes/1/fault"));
    assert_null(at(rv, "routes/1/match"));
    assert_example_clusters(doc, ex);
    json_decref(doc);
    json_decref(ex);
    cp_config_free(cfg);
}

static void test_gateway_bookinfo(void **state)
{
    (void)state;
    cp_config_t *cfg = cp_config_new();
    if (!add_ref(cfg, "destination-rule-all-mtls.yaml") || !add_ref(cfg, "bookinfo-gateway.yaml")) {
        cp_config_free(cfg);
        wt_skip();
    }
    add_bookinfo(cfg);
    json_t *doc = compile1(cfg, "istio-ingressgateway.istio-system");
    json_t *ex = load_example("gateway-bookinfo.json");
    assert_json_eq(at(doc, "proxy"), at(ex, "proxy"), "proxy");
    assert_json_eq(at(doc, "inbound"), at(ex, "inbound"), "inbound");
    assert_json_eq(at(doc, "gateway"), at(ex, "gateway"), "gateway");
    assert_json_eq(at(doc, "virtual_hosts"), at(ex, "virtual_hosts"), "virtual_hosts");
    assert_int_equal(at_i(doc, "virtual_hosts/0/routes/0/route/0/destination/port"), 9080);
    assert_string_equal(at_s(doc, "virtual_hosts/0/routes/0/match/1/uri/prefix"), "/static");
    assert_example_clusters(doc, ex);

    /* The bookinfo VirtualService is bound to the gateway only: sidecars keep the default. */
    json_t *pp = compile1(cfg, "productpage-v1.default");
    assert_null(vhost(pp, "*:8080"));
    assert_null(at(vhost(pp, "productpage.default.svc.cluster.local:9080"), "routes"));
    assert_null(at(pp, "gateway"));
    json_decref(pp);
    json_decref(doc);
    json_decref(ex);
    cp_config_free(cfg);
}

/* The first destination's subset of route i of the named vhost. */
static const char *subset_of(json_t *doc, const char *vh, int route, int dest)
{
    char p[64];
    snprintf(p, sizeof(p), "routes/%d/route/%d/destination/subset", route, dest);
    return at_s(vhost(doc, vh), p);
}

#define REVIEWS "reviews.default.svc.cluster.local:9080"
#define RATINGS "ratings.default.svc.cluster.local:9080"
#define DETAILS "details.default.svc.cluster.local:9080"
#define PRODUCTPAGE "productpage.default.svc.cluster.local:9080"

/* Every reference VirtualService compiles for productpage and reviews-v2, strictly parsed,
 * with the routes the file says. */
static void test_reference_virtual_services(void **state)
{
    (void)state;
    static const char *const files[] = {
        "virtual-service-all-v1.yaml",
        "virtual-service-details-v2.yaml",
        "virtual-service-ratings-db.yaml",
        "virtual-service-ratings-mysql-vm.yaml",
        "virtual-service-ratings-mysql.yaml",
        "virtual-service-ratings-test-abort.yaml",
        "virtual-service-ratings-test-delay.yaml",
        "virtual-service-reviews-50-v3.yaml",
        "virtual-service-reviews-80-20.yaml",
        "virtual-service-reviews-90-10.yaml",
        "virtual-service-reviews-jason-v2-v3.yaml",
        "virtual-service-reviews-test-v2.yaml",
        "virtual-service-reviews-v2-v3.yaml",
        "virtual-service-reviews-v3.yaml",
    };
    for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
        cp_config_t *cfg = cp_config_new();
        if (!add_ref(cfg, "destination-rule-all.yaml") || !add_ref(cfg, files[f])) {
            cp_config_free(cfg);
            wt_skip();
        }
        add_bookinfo(cfg);
        json_t *pp = compile1(cfg, "productpage-v1.default");
        json_t *rv = compile1(cfg, "reviews-v2.default");
        const char *n = files[f];
        if (strcmp(n, "virtual-service-all-v1.yaml") == 0) {
            assert_string_equal(subset_of(pp, PRODUCTPAGE, 0, 0), "v1");
            assert_string_equal(subset_of(pp, REVIEWS, 0, 0), "v1");
            assert_string_equal(subset_of(pp, RATINGS, 0, 0), "v1");
            assert_string_equal(subset_of(pp, DETAILS, 0, 0), "v1");
            assert_int_equal(at_i(vhost(pp, DETAILS), "routes/0/route/0/weight"), 100);
        } else if (strcmp(n, "virtual-service-details-v2.yaml") == 0) {
            assert_string_equal(subset_of(pp, DETAILS, 0, 0), "v2");
            /* details v2 is not registered: the subset's cluster has no endpoints. */
            json_t *c = cluster(pp, "outbound|9080|v2|details.default.svc.cluster.local");
            assert_int_equal(json_array_size(at(c, "endpoints")), 0);
        } else if (strcmp(n, "virtual-service-ratings-db.yaml") == 0) {
            assert_string_equal(subset_of(rv, RATINGS, 0, 0), "v2");
            assert_string_equal(subset_of(rv, REVIEWS, 0, 0), "v3");
        } else if (strcmp(n, "virtual-service-ratings-mysql.yaml") == 0) {
            assert_string_equal(subset_of(rv, RATINGS, 0, 0), "v2-mysql");
        } else if (strcmp(n, "virtual-service-ratings-mysql-vm.yaml") == 0) {
            assert_string_equal(subset_of(rv, RATINGS, 0, 0), "v2-mysql-vm");
        } else if (strcmp(n, "virtual-service-ratings-test-abort.yaml") == 0) {
            json_t *v = vhost(rv, RATINGS);
            assert_int_equal(at_i(v, "routes/0/fault/abort/http_status"), 500);
            assert_true(json_real_value(at(v, "routes/0/fault/abort/percentage")) == 100.0);
            assert_null(at(v, "routes/0/fault/delay"));
            assert_string_equal(at_s(v, "routes/0/match/0/headers/end-user/exact"), "jason");
        } else if (strcmp(n, "virtual-service-ratings-test-delay.yaml") == 0) {
            assert_int_equal(at_i(vhost(rv, RATINGS), "routes/0/fault/delay/fixed_delay_ms"), 7000);
        } else if (strcmp(n, "virtual-service-reviews-50-v3.yaml") == 0) {
            json_t *v = vhost(pp, REVIEWS);
            assert_int_equal(at_i(v, "routes/0/route/0/weight"), 50);
            assert_int_equal(at_i(v, "routes/0/route/1/weight"), 50);
            assert_string_equal(subset_of(pp, REVIEWS, 0, 1), "v3");
        } else if (strcmp(n, "virtual-service-reviews-80-20.yaml") == 0) {
            assert_int_equal(at_i(vhost(pp, REVIEWS), "routes/0/route/0/weight"), 80);
        } else if (strcmp(n, "virtual-service-reviews-90-10.yaml") == 0) {
            json_t *v = vhost(pp, REVIEWS);
            assert_int_equal(at_i(v, "routes/0/route/0/weight"), 90);
            assert_int_equal(at_i(v, "routes/0/route/1/weight"), 10);
            assert_string_equal(subset_of(pp, REVIEWS, 0, 1), "v2");
        } else if (strcmp(n, "virtual-service-reviews-jason-v2-v3.yaml") == 0) {
            json_t *v = vhost(pp, REVIEWS);
            assert_int_equal(json_array_size(at(v, "routes")), 2);
            assert_string_equal(at_s(v, "routes/0/match/0/headers/end-user/exact"), "jason");
            assert_string_equal(subset_of(pp, REVIEWS, 0, 0), "v2");
            assert_string_equal(subset_of(pp, REVIEWS, 1, 0), "v3");
        } else if (strcmp(n, "virtual-service-reviews-test-v2.yaml") == 0) {
            assert_string_equal(subset_of(pp, REVIEWS, 0, 0), "v2");
            assert_string_equal(subset_of(pp, REVIEWS, 1, 0), "v1");
        } else if (strcmp(n, "virtual-service-reviews-v2-v3.yaml") == 0) {
            assert_string_equal(subset_of(pp, REVIEWS, 0, 0), "v2");
            assert_string_equal(subset_of(pp, REVIEWS, 0, 1), "v3");
        } else if (strcmp(n, "virtual-service-reviews-v3.yaml") == 0) {
            assert_string_equal(subset_of(pp, REVIEWS, 0, 0), "v3");
            assert_int_equal(json_array_size(at(vhost(pp, REVIEWS), "routes")), 1);
        }
        /* The reviews-v2 sidecar sees the same routes (one namespace). */
        assert_json_eq(vhost(pp, REVIEWS), vhost(rv, REVIEWS), n);
        json_decref(pp);
        json_decref(rv);
        cp_config_free(cfg);
    }
}

static void test_fault_injection_details(void **state)
{
    (void)state;
    cp_config_t *cfg = cp_config_new();
    if (!add_ref(cfg, "fault-injection-details-v1.yaml")) {
        cp_config_free(cfg);
        wt_skip();
    }
    add_bookinfo(cfg);
    json_t *pp = compile1(cfg, "productpage-v1.default");
    json_t *v = vhost(pp, DETAILS);
    assert_int_equal(at_i(v, "routes/0/fault/abort/http_status"), 555);
    assert_null(at(v, "routes/0/match"));
    /* Only this file's DestinationRule: details has v1, and reviews has no subsets at all. */
    assert_non_null(cluster(pp, "outbound|9080|v1|details.default.svc.cluster.local"));
    assert_null(cluster(pp, "outbound|9080|v2|details.default.svc.cluster.local"));
    assert_non_null(cluster(pp, "outbound|9080||reviews.default.svc.cluster.local"));
    assert_null(cluster(pp, "outbound|9080|v1|reviews.default.svc.cluster.local"));
    json_decref(pp);
    cp_config_free(cfg);
}

/* ---- edge cases ---- */

static void test_unknown_proxy(void **state)
{
    (void)state;
    cp_config_t *cfg = cp_config_new();
    add_bookinfo(cfg);
    cp_compile_opts_t o = {.sampling = 5};
    cp_compiled_t *c;
    assert_int_equal(cp_compile_new(cfg, &o, &c), 0);
    char *json = NULL;
    size_t len = 0;
    assert_int_equal(cp_compile_proxy(c, "nosuch-v1.default", 1, &json, &len, NULL), WF_E_NOTFOUND);
    assert_null(json);
    /* Known proxy with explicit sampling and no collector. */
    json_t *doc = compile_h(c, "details-v1.default", 3, NULL, NULL);
    assert_true(json_real_value(at(doc, "telemetry/sampling")) == 5.0);
    assert_string_equal(at_s(doc, "telemetry/collector_url"), "");
    json_decref(doc);
    cp_compile_free(c);
    cp_compile_free(NULL);
    cp_config_free(cfg);
}

static void test_vs_unknown_host_and_gateway_only(void **state)
{
    (void)state;
    cp_config_t *cfg = cp_config_new();
    add_bookinfo(cfg);
    add_text(cfg, "apiVersion: networking.istio.io/v1\n"
                  "kind: VirtualService\n"
                  "metadata: {name: ghost}\n"
                  "spec:\n"
                  "  hosts: [nosuch]\n"
                  "  http:\n"
                  "  - route:\n"
                  "    - destination: {host: nosuch}\n"
                  "---\n"
                  "apiVersion: networking.istio.io/v1\n"
                  "kind: VirtualService\n"
                  "metadata: {name: edge}\n"
                  "spec:\n"
                  "  hosts: [ratings]\n"
                  "  gateways: [some-gateway]\n"
                  "  http:\n"
                  "  - route:\n"
                  "    - destination: {host: ratings, subset: v9}\n"
                  "---\n"
                  "apiVersion: networking.istio.io/v1\n"
                  "kind: VirtualService\n"
                  "metadata: {name: details}\n"
                  "spec:\n"
                  "  hosts: [details]\n"
                  "  http:\n"
                  "  - route:\n"
                  "    - destination: {host: nosuch, port: {number: 81}}\n");
    json_t *pp = compile1(cfg, "productpage-v1.default");
    assert_null(vhost(pp, "nosuch.default.svc.cluster.local:9080"));
    assert_int_equal(json_array_size(at(pp, "virtual_hosts")), 4);
    /* A VirtualService bound to a gateway only does not apply to sidecars. */
    assert_null(at(vhost(pp, RATINGS), "routes"));
    /* A destination without a service: the cluster is named (503 NC at the proxy). */
    assert_string_equal(at_s(vhost(pp, DETAILS), "routes/0/route/0/destination/cluster"),
                        "outbound|81||nosuch.default.svc.cluster.local");
    json_decref(pp);
    cp_config_free(cfg);
}

static void test_service_entries(void **state)
{
    (void)state;
    cp_config_t *cfg = cp_config_new();
    add_bookinfo(cfg);
    add_text(cfg, "apiVersion: networking.istio.io/v1\n"
                  "kind: ServiceEntry\n"
                  "metadata: {name: static-api}\n"
                  "spec:\n"
                  "  hosts: [api.example.com]\n"
                  "  ports: [{number: 8000, name: http, protocol: HTTP}]\n"
                  "  resolution: STATIC\n"
                  "  location: MESH_EXTERNAL\n"
                  "  endpoints:\n"
                  "  - {address: 10.9.0.1, labels: {tier: a}}\n"
                  "  - {address: 10.9.0.2, ports: {http: 8001}, weight: 3, labels: {tier: b}}\n"
                  "---\n"
                  "apiVersion: networking.istio.io/v1\n"
                  "kind: ServiceEntry\n"
                  "metadata: {name: private, namespace: other}\n"
                  "spec:\n"
                  "  hosts: [private.example.com]\n"
                  "  exportTo: [.]\n"
                  "  ports: [{number: 80, name: http, protocol: HTTP}]\n"
                  "  resolution: DNS\n"
                  "---\n"
                  "apiVersion: networking.istio.io/v1\n"
                  "kind: DestinationRule\n"
                  "metadata: {name: static-api}\n"
                  "spec:\n"
                  "  host: api.example.com\n"
                  "  subsets: [{name: b, labels: {tier: b}}]\n"
                  "---\n"
                  "apiVersion: networking.istio.io/v1\n"
                  "kind: ServiceEntry\n"
                  "metadata: {name: wild}\n"
                  "spec:\n"
                  "  hosts: ['*.wild.example', '*.in*side.example']\n"
                  "  ports: [{number: 80, name: http, protocol: HTTP}]\n"
                  "  resolution: NONE\n");
    bool google = add_ref(cfg, "egress-rule-google-apis.yaml");
    json_t *pp = compile1(cfg, "productpage-v1.default");
    json_t *v = vhost(pp, "api.example.com:8000");
    assert_non_null(v);
    assert_json_is(at(v, "domains"), json_pack("[ss]", "api.example.com", "api.example.com:8000"),
                   "se domains");
    json_t *c = cluster(pp, "outbound|8000||api.example.com");
    assert_int_equal(json_array_size(at(c, "endpoints")), 2);
    assert_string_equal(at_s(c, "endpoints/0/address"), "10.9.0.1");
    assert_int_equal(at_i(c, "endpoints/0/port"), 8000);
    assert_int_equal(at_i(c, "endpoints/1/port"), 8001);
    assert_int_equal(at_i(c, "endpoints/1/weight"), 3);
    assert_true(json_is_false(at(c, "endpoints/0/in_mesh")));
    json_t *cb = cluster(pp, "outbound|8000|b|api.example.com");
    assert_int_equal(json_array_size(at(cb, "endpoints")), 1);
    assert_string_equal(at_s(cb, "endpoints/0/address"), "10.9.0.2");
    /* A wildcard host: one wildcard per domain, so no `:port` form; no endpoints to list. */
    assert_json_is(at(vhost(pp, "*.wild.example:80"), "domains"),
                   json_pack("[s]", "*.wild.example"), "wildcard domains");
    assert_int_equal(json_array_size(at(cluster(pp, "outbound|80||*.wild.example"), "endpoints")),
                     0);
    /* A second wildcard inside a host: no domain the proxy takes; left out and counted. */
    assert_null(vhost(pp, "*.in*side.example:80"));
    assert_null(cluster(pp, "outbound|80||*.in*side.example"));
    /* exportTo "." hides the other namespace's entry from default. */
    assert_null(vhost(pp, "private.example.com:80"));
    assert_null(cluster(pp, "outbound|80||private.example.com"));
    if (google) {
        /* HTTP port: a virtual host routing to the HTTPS port, whose cluster originates TLS
         * (SIMPLE): the proxy cannot yet, so that cluster is left out (its requests get 503)
         * rather than sent in plaintext or making the proxy refuse the whole snapshot. */
        json_t *g = vhost(pp, "www.googleapis.com:80");
        assert_non_null(g);
        assert_null(vhost(pp, "www.googleapis.com:443"));
        assert_int_equal(at_i(g, "routes/0/match/0/port"), 80);
        assert_string_equal(at_s(g, "routes/0/route/0/destination/cluster"),
                            "outbound|443||www.googleapis.com");
        assert_null(cluster(pp, "outbound|443||www.googleapis.com"));
        json_t *c80 = cluster(pp, "outbound|80||www.googleapis.com");
        assert_null(at(c80, "tls")); /* auto: plaintext to an endpoint outside the mesh */
    }
    json_decref(pp);

    /* A proxy in namespace other sees its private entry (DNS: the host as address). */
    const char *ol[] = {"app", "client", NULL};
    add_wl(cfg, "client", "other", "", "127.0.0.50", NULL, 8080, false, ol);
    json_t *oc = compile1(cfg, "client.other");
    json_t *pc = cluster(oc, "outbound|80||private.example.com");
    assert_non_null(pc);
    assert_string_equal(at_s(pc, "endpoints/0/address"), "private.example.com");
    /* From another namespace, bookinfo's short names are gone and the ns forms stay. */
    json_t *dom = at(vhost(oc, DETAILS), "domains");
    for (size_t i = 0; i < json_array_size(dom); i++) {
        assert_string_not_equal(json_string_value(json_array_get(dom, i)), "details");
    }
    assert_string_equal(json_string_value(json_array_get(dom, 2)), "details.default");
    assert_string_equal(at_s(oc, "proxy/service_account"), "default");
    assert_string_equal(at_s(oc, "proxy/workload"), "client");
    json_decref(oc);
    cp_config_free(cfg);
}

static void test_sidecar_scoping(void **state)
{
    (void)state;
    cp_config_t *cfg = cp_config_new();
    add_bookinfo(cfg);
    const char *ol[] = {"app", "billing", NULL};
    add_wl(cfg, "billing", "other", "", "127.0.0.60", NULL, 7070, false, ol);
    add_wl(cfg, "audit", "other", "", "127.0.0.61", NULL, 7071, false, NULL);
    add_text(cfg, "apiVersion: networking.istio.io/v1\n"
                  "kind: Sidecar\n"
                  "metadata: {name: default, namespace: default}\n"
                  "spec:\n"
                  "  egress:\n"
                  "  - hosts: [./ratings.default.svc.cluster.local, other/*]\n"
                  "---\n"
                  "apiVersion: networking.istio.io/v1\n"
                  "kind: Sidecar\n"
                  "metadata: {name: reviews-only, namespace: default}\n"
                  "spec:\n"
                  "  workloadSelector: {labels: {app: reviews}}\n"
                  "  egress:\n"
                  "  - hosts: ['*/ratings.default.svc.cluster.local']\n"
                  "  - port: {number: 7071, name: http, protocol: HTTP}\n"
                  "    hosts: ['other/*']\n"
                  "---\n"
                  "apiVersion: networking.istio.io/v1\n"
                  "kind: Sidecar\n"
                  "metadata: {name: default, namespace: istio-system}\n"
                  "spec:\n"
                  "  egress:\n"
                  "  - hosts: [./*]\n");
    /* productpage: the namespace's Sidecar (ratings + namespace other). */
    json_t *pp = compile1(cfg, "productpage-v1.default");
    json_t *vhs = at(pp, "virtual_hosts");
    assert_int_equal(json_array_size(vhs), 3);
    assert_string_equal(at_s(vhs, "0/name"), "audit.other.svc.cluster.local:7071");
    assert_string_equal(at_s(vhs, "1/name"), "billing.other.svc.cluster.local:7070");
    assert_string_equal(at_s(vhs, "2/name"), RATINGS);
    assert_null(cluster(pp, "outbound|9080||reviews.default.svc.cluster.local"));
    assert_non_null(cluster(pp, "outbound|7070||billing.other.svc.cluster.local"));
    /* reviews: the Sidecar selecting it; its second egress entry imports namespace other on
     * port 7071 only (billing listens on 7070: its cluster, no virtual host). */
    json_t *rv = compile1(cfg, "reviews-v1.default");
    vhs = at(rv, "virtual_hosts");
    assert_int_equal(json_array_size(vhs), 2);
    assert_string_equal(at_s(vhs, "0/name"), "audit.other.svc.cluster.local:7071");
    assert_string_equal(at_s(vhs, "1/name"), RATINGS);
    assert_int_equal(json_array_size(at(rv, "clusters")), 3);
    assert_non_null(cluster(rv, "outbound|7070||billing.other.svc.cluster.local"));
    /* billing (namespace other, no Sidecar of its own): the root default, its namespace. */
    json_t *bl = compile1(cfg, "billing.other");
    vhs = at(bl, "virtual_hosts");
    assert_int_equal(json_array_size(vhs), 2);
    assert_string_equal(at_s(vhs, "0/name"), "audit.other.svc.cluster.local:7071");
    assert_string_equal(at_s(vhs, "0/domains/2"), "audit");
    /* A gateway no Gateway gives a server has nothing to serve yet. */
    cp_compile_opts_t o = {.sampling = -1};
    cp_compiled_t *c;
    assert_int_equal(cp_compile_new(cfg, &o, &c), 0);
    char *json = NULL;
    size_t len;
    assert_int_equal(cp_compile_proxy(c, "istio-ingressgateway.istio-system", 1, &json, &len, NULL),
                     -EAGAIN);
    assert_null(json);
    cp_compile_free(c);
    /* With one, it gets every service: gateways are not scoped by Sidecars. */
    add_text(cfg, "apiVersion: networking.istio.io/v1\n"
                  "kind: Gateway\n"
                  "metadata: {name: gw}\n"
                  "spec:\n"
                  "  selector: {istio: ingressgateway}\n"
                  "  servers: [{port: {number: 80, name: web, protocol: HTTP}, hosts: ['*']}]\n");
    json_t *gw = compile1(cfg, "istio-ingressgateway.istio-system");
    assert_int_equal(json_array_size(at(gw, "clusters")), 6);
    assert_int_equal(json_array_size(at(gw, "virtual_hosts")), 0);
    assert_string_equal(at_s(gw, "gateway/servers/0/name"), "web");
    json_decref(pp);
    json_decref(rv);
    json_decref(bl);
    json_decref(gw);
    cp_config_free(cfg);
}

static void test_peer_authentication(void **state)
{
    (void)state;
    cp_config_t *cfg = cp_config_new();
    add_bookinfo(cfg);
    add_text(cfg, "apiVersion: security.istio.io/v1\n"
                  "kind: PeerAuthentication\n"
                  "metadata: {name: default, namespace: istio-system}\n"
                  "spec: {mtls: {mode: STRICT}}\n");
    json_t *d = compile1(cfg, "details-v1.default");
    assert_string_equal(at_s(d, "inbound/peer_authentication/mode"), "STRICT");
    assert_string_equal(at_s(d, "inbound/ports/0/mtls"), "UNSET");
    json_decref(d);

    /* The namespace's policy wins over the mesh's; UNSET inherits. */
    add_text(cfg, "apiVersion: security.istio.io/v1\n"
                  "kind: PeerAuthentication\n"
                  "metadata: {name: default, namespace: default}\n"
                  "spec: {mtls: {mode: PERMISSIVE}}\n"
                  "---\n"
                  "apiVersion: security.istio.io/v1\n"
                  "kind: PeerAuthentication\n"
                  "metadata: {name: reviews, namespace: default}\n"
                  "spec:\n"
                  "  selector: {matchLabels: {app: reviews, version: v2}}\n"
                  "  mtls: {mode: DISABLE}\n"
                  "  portLevelMtls: {9080: {mode: STRICT}}\n"
                  "---\n"
                  "apiVersion: security.istio.io/v1\n"
                  "kind: PeerAuthentication\n"
                  "metadata: {name: ratings, namespace: default}\n"
                  "spec:\n"
                  "  selector: {matchLabels: {app: ratings}}\n"
                  "  portLevelMtls: {9080: {mode: DISABLE}}\n");
    d = compile1(cfg, "details-v1.default");
    assert_string_equal(at_s(d, "inbound/peer_authentication/mode"), "PERMISSIVE");
    json_decref(d);
    json_t *r2 = compile1(cfg, "reviews-v2.default");
    assert_string_equal(at_s(r2, "inbound/peer_authentication/mode"), "DISABLE");
    assert_string_equal(at_s(r2, "inbound/ports/0/mtls"), "STRICT");
    json_decref(r2);
    json_t *r1 = compile1(cfg, "reviews-v1.default");
    assert_string_equal(at_s(r1, "inbound/peer_authentication/mode"), "PERMISSIVE");
    assert_string_equal(at_s(r1, "inbound/ports/0/mtls"), "UNSET");
    json_decref(r1);
    json_t *ra = compile1(cfg, "ratings-v1.default");
    assert_string_equal(at_s(ra, "inbound/peer_authentication/mode"), "PERMISSIVE");
    assert_string_equal(at_s(ra, "inbound/ports/0/mtls"), "DISABLE");
    json_decref(ra);
    cp_config_free(cfg);
}

/* The names of the authorization policies compiled for proxy id, comma-separated. */
static void policy_names(const cp_config_t *cfg, const char *id, char *out, size_t cap)
{
    json_t *d = compile1(cfg, id);
    json_t *pols = at(d, "inbound/authorization/policies");
    assert_true(json_is_array(pols));
    size_t i, off = 0;
    json_t *e;
    out[0] = '\0';
    json_array_foreach(pols, i, e)
    {
        off += (size_t)snprintf(out + off, cap - off, "%s%s", i ? "," : "",
                                json_string_value(json_object_get(e, "name")));
    }
    json_decref(d);
}

/* AuthorizationPolicy: which policies a workload gets (root namespace mesh-wide, its own
 * namespace's without selector, selector match and miss, another namespace's never), and the
 * field mapping; every document passes the proxy's strict parser (compile1). */
static void test_authorization_policies(void **state)
{
    (void)state;
    cp_config_t *cfg = cp_config_new();
    add_bookinfo(cfg);
    const char *other_labels[] = {"app", "web", NULL};
    add_wl(cfg, "web", "shop", "", "127.0.0.50", "web", 8080, false, other_labels);
    char names[512];
    policy_names(cfg, "reviews-v1.default", names, sizeof(names));
    assert_string_equal(names, "");

    add_text(cfg, "apiVersion: security.istio.io/v1\n"
                  "kind: AuthorizationPolicy\n"
                  "metadata: {name: mesh-deny, namespace: istio-system}\n"
                  "spec:\n"
                  "  action: DENY\n"
                  "  rules:\n"
                  "  - from:\n"
                  "    - source: {notPrincipals: ['*'], ipBlocks: [10.0.0.0/8, '2001:db8::/32']}\n"
                  "    - source: {namespaces: [evil], notRemoteIpBlocks: [1.2.3.4]}\n"
                  "    to:\n"
                  "    - operation: {paths: ['/admin/{**}'], notMethods: [GET], ports: ['9080']}\n"
                  "    when:\n"
                  "    - key: request.headers[x-user]\n"
                  "      values: [mallory]\n"
                  "      notValues: [alice]\n"
                  "---\n"
                  "apiVersion: security.istio.io/v1\n"
                  "kind: AuthorizationPolicy\n"
                  "metadata: {name: ingress-only, namespace: istio-system}\n"
                  "spec:\n"
                  "  selector: {matchLabels: {istio: ingressgateway}}\n"
                  "  action: AUDIT\n"
                  "  rules: [{}]\n"
                  "---\n"
                  "apiVersion: security.istio.io/v1beta1\n"
                  "kind: AuthorizationPolicy\n"
                  "metadata: {name: ns-allow, namespace: default}\n"
                  "spec:\n"
                  "  rules:\n"
                  "  - to:\n"
                  "    - operation: {hosts: ['*.example.com'], notHosts: [x.example.com], "
                  "notPorts: ['1'], methods: [GET], notPaths: ['/private*']}\n"
                  "---\n"
                  "apiVersion: security.istio.io/v1\n"
                  "kind: AuthorizationPolicy\n"
                  "metadata: {name: reviews-v2-only, namespace: default}\n"
                  "spec:\n"
                  "  selector: {matchLabels: {app: reviews, version: v2}}\n"
                  "  action: ALLOW\n"
                  "  rules:\n"
                  "  - from:\n"
                  "    - source: {principals: [cluster.local/ns/default/sa/bookinfo-productpage],"
                  " requestPrincipals: ['*'], notRequestPrincipals: [x], notNamespaces: [b],"
                  " remoteIpBlocks: [5.6.7.0/24], notIpBlocks: ['::1']}\n"
                  "---\n"
                  "apiVersion: security.istio.io/v1\n"
                  "kind: AuthorizationPolicy\n"
                  "metadata: {name: deny-all, namespace: shop}\n"
                  "spec: {}\n"
                  "---\n"
                  "apiVersion: security.istio.io/v1\n"
                  "kind: AuthorizationPolicy\n"
                  "metadata: {name: mesh-reviews, namespace: istio-system}\n"
                  "spec:\n"
                  "  selector: {matchLabels: {app: reviews}}\n"
                  "  action: DENY\n"
                  "  rules: [{to: [{operation: {methods: [PATCH]}}]}]\n"
                  "---\n"
                  "apiVersion: security.istio.io/v1\n"
                  "kind: AuthorizationPolicy\n"
                  "metadata: {name: other-ns-reviews, namespace: shop}\n"
                  "spec:\n"
                  "  selector: {matchLabels: {app: reviews}}\n"
                  "  rules: [{}]\n"
                  "---\n"
                  "apiVersion: networking.istio.io/v1\n"
                  "kind: Gateway\n"
                  "metadata: {name: gw, namespace: istio-system}\n"
                  "spec:\n"
                  "  selector: {istio: ingressgateway}\n"
                  "  servers: [{port: {number: 80, name: web, protocol: HTTP}, hosts: ['*']}]\n");
    /* Selection: a root-namespace policy with a selector selects in every namespace; another
     * namespace's policy never applies, whatever its selector says. */
    policy_names(cfg, "reviews-v1.default", names, sizeof(names));
    assert_string_equal(names, "default.ns-allow,istio-system.mesh-deny,istio-system.mesh-reviews");
    policy_names(cfg, "reviews-v2.default", names, sizeof(names));
    assert_string_equal(names, "default.ns-allow,default.reviews-v2-only,istio-system.mesh-deny,"
                               "istio-system.mesh-reviews");
    policy_names(cfg, "web.shop", names, sizeof(names));
    assert_string_equal(names, "istio-system.mesh-deny,shop.deny-all");
    policy_names(cfg, "istio-ingressgateway.istio-system", names, sizeof(names));
    assert_string_equal(names, "istio-system.ingress-only,istio-system.mesh-deny");

    /* Field mapping. */
    json_t *d = compile1(cfg, "reviews-v2.default");
    json_t *p = at(d, "inbound/authorization/policies/2");
    assert_string_equal(at_s(p, "action"), "DENY");
    assert_int_equal(json_array_size(at(p, "rules")), 1);
    assert_string_equal(at_s(p, "rules/0/from/0/source/not_principals/0"), "*");
    assert_string_equal(at_s(p, "rules/0/from/0/source/ip_blocks/1"), "2001:db8::/32");
    assert_null(at(p, "rules/0/from/0/source/principals"));
    assert_string_equal(at_s(p, "rules/0/from/1/source/namespaces/0"), "evil");
    assert_string_equal(at_s(p, "rules/0/from/1/source/not_remote_ip_blocks/0"), "1.2.3.4");
    assert_string_equal(at_s(p, "rules/0/to/0/operation/paths/0"), "/admin/{**}");
    assert_string_equal(at_s(p, "rules/0/to/0/operation/not_methods/0"), "GET");
    assert_string_equal(at_s(p, "rules/0/to/0/operation/ports/0"), "9080");
    assert_string_equal(at_s(p, "rules/0/when/0/key"), "request.headers[x-user]");
    assert_string_equal(at_s(p, "rules/0/when/0/values/0"), "mallory");
    assert_string_equal(at_s(p, "rules/0/when/0/not_values/0"), "alice");
    p = at(d, "inbound/authorization/policies/0");
    assert_string_equal(at_s(p, "action"), "ALLOW"); /* Istio's default */
    assert_string_equal(at_s(p, "rules/0/to/0/operation/hosts/0"), "*.example.com");
    assert_string_equal(at_s(p, "rules/0/to/0/operation/not_hosts/0"), "x.example.com");
    assert_string_equal(at_s(p, "rules/0/to/0/operation/not_ports/0"), "1");
    assert_string_equal(at_s(p, "rules/0/to/0/operation/methods/0"), "GET");
    assert_string_equal(at_s(p, "rules/0/to/0/operation/not_paths/0"), "/private*");
    assert_null(at(p, "rules/0/from"));
    p = at(d, "inbound/authorization/policies/1");
    assert_string_equal(at_s(p, "rules/0/from/0/source/principals/0"),
                        "cluster.local/ns/default/sa/bookinfo-productpage");
    assert_string_equal(at_s(p, "rules/0/from/0/source/request_principals/0"), "*");
    assert_string_equal(at_s(p, "rules/0/from/0/source/not_request_principals/0"), "x");
    assert_string_equal(at_s(p, "rules/0/from/0/source/not_namespaces/0"), "b");
    assert_string_equal(at_s(p, "rules/0/from/0/source/remote_ip_blocks/0"), "5.6.7.0/24");
    assert_string_equal(at_s(p, "rules/0/from/0/source/not_ip_blocks/0"), "::1");
    json_decref(d);
    d = compile1(cfg, "web.shop");
    p = at(d, "inbound/authorization/policies/1");
    assert_string_equal(at_s(p, "action"), "ALLOW");
    assert_int_equal(json_array_size(at(p, "rules")), 0); /* spec: {} denies everything */
    json_decref(d);
    d = compile1(cfg, "istio-ingressgateway.istio-system");
    p = at(d, "inbound/authorization/policies/0");
    assert_string_equal(at_s(p, "action"), "AUDIT");
    assert_int_equal(json_array_size(at(p, "rules")), 1);
    assert_int_equal(json_object_size(at(p, "rules/0")), 0); /* rules: [{}] */
    json_decref(d);
    cp_config_free(cfg);
}

static void test_content_hash(void **state)
{
    (void)state;
    cp_config_t *cfg = cp_config_new();
    add_bookinfo(cfg);
    cp_compile_opts_t o = {.collector_url = COLLECTOR, .sampling = -1};
    cp_compiled_t *c;
    assert_int_equal(cp_compile_new(cfg, &o, &c), 0);
    uint64_t h1, h2, h3;
    char *t1, *t2, *t3;
    json_decref(compile_h(c, "productpage-v1.default", 1, &h1, &t1));
    json_decref(compile_h(c, "productpage-v1.default", 2, &h2, &t2));
    assert_true(h1 == h2);
    assert_string_not_equal(t1, t2);
    /* Only the version differs. */
    assert_string_equal(strstr(t1, "\"proxy\""), strstr(t2, "\"proxy\""));
    json_decref(compile_h(c, "productpage-v1.default", 1, &h3, &t3));
    assert_string_equal(t1, t3);
    wf_free(t3);
    /* Two sidecars of one namespace share the outbound part, byte for byte. */
    char *td;
    json_decref(compile_h(c, "details-v1.default", 1, NULL, &td));
    assert_string_equal(strstr(t1, "\"virtual_hosts\""), strstr(td, "\"virtual_hosts\""));
    wf_free(td);
    cp_compile_free(c);

    /* A new VirtualService changes the content. */
    add_text(cfg, "apiVersion: networking.istio.io/v1\n"
                  "kind: VirtualService\n"
                  "metadata: {name: reviews}\n"
                  "spec:\n"
                  "  hosts: [reviews]\n"
                  "  http:\n"
                  "  - timeout: 1.5s\n"
                  "    route: [{destination: {host: reviews}}]\n");
    assert_int_equal(cp_compile_new(cfg, &o, &c), 0);
    json_t *doc = compile_h(c, "productpage-v1.default", 2, &h3, &t3);
    assert_true(h3 != h1);
    assert_int_equal(at_i(vhost(doc, REVIEWS), "routes/0/timeout_ms"), 1500);
    json_decref(doc);
    wf_free(t3);
    cp_compile_free(c);
    wf_free(t1);
    wf_free(t2);
    cp_config_free(cfg);
}

/* Every HTTPRoute field the schema has, and what it cannot carry is left out and counted. */
static void test_route_features(void **state)
{
    (void)state;
    cp_config_t *cfg = cp_config_new();
    add_bookinfo(cfg);
    add_text(cfg, "apiVersion: networking.istio.io/v1\n"
                  "kind: VirtualService\n"
                  "metadata: {name: reviews}\n"
                  "spec:\n"
                  "  hosts: [reviews]\n"
                  "  tcp:\n"
                  "  - route: [{destination: {host: reviews}}]\n"
                  "  http:\n"
                  "  - name: redirect\n"
                  "    match:\n"
                  "    - uri: {prefix: /old}\n"
                  "      method: {exact: GET}\n"
                  "      ignoreUriCase: true\n"
                  "      queryParams: {q: {exact: x}}\n"
                  "      withoutHeaders: {x-skip: {}}\n"
                  "      sourceLabels: {app: productpage}\n"
                  "    redirect: {uri: /new, authority: example.com, redirectCode: 302}\n"
                  "  - name: dr\n"
                  "    match: [{uri: {exact: /teapot}}]\n"
                  "    directResponse: {status: 418, body: {string: short and stout}}\n"
                  "  - name: other-ns-only\n"
                  "    match: [{sourceNamespace: elsewhere}]\n"
                  "    route: [{destination: {host: reviews, subset: v1}}]\n"
                  "  - name: main\n"
                  "    match: [{headers: {X-User: {regex: 'a.*'}}}]\n"
                  "    rewrite: {uri: /v2}\n"
                  "    timeout: 3s\n"
                  "    retries: {attempts: 4, perTryTimeout: 500ms, retryOn: '5xx,bogus,503'}\n"
                  "    mirror: {host: ratings}\n"
                  "    mirrorPercentage: {value: 25}\n"
                  "    corsPolicy:\n"
                  "      allowOrigins: [{exact: 'https://a.example'}]\n"
                  "      allowMethods: [GET, POST]\n"
                  "      maxAge: 24h\n"
                  "      allowCredentials: true\n"
                  "    headers:\n"
                  "      request: {set: {x-a: '1'}, remove: [x-b]}\n"
                  "      response: {add: {x-c: '2'}}\n"
                  "    route:\n"
                  "    - destination: {host: reviews, subset: v2}\n"
                  "      weight: 70\n"
                  "      headers: {request: {set: {x-d: '3'}}}\n"
                  "    - destination: {host: reviews.default.svc.cluster.local, subset: v3}\n"
                  "      weight: 30\n"
                  "---\n"
                  "apiVersion: networking.istio.io/v1\n"
                  "kind: DestinationRule\n"
                  "metadata: {name: reviews}\n"
                  "spec:\n"
                  "  host: reviews\n"
                  "  trafficPolicy:\n"
                  "    loadBalancer: {simple: ROUND_ROBIN}\n"
                  "    connectionPool: {tcp: {maxConnections: 10}, http: {http2MaxRequests: 5}}\n"
                  "    outlierDetection: {consecutive5xxErrors: 3, interval: 5s}\n"
                  "  subsets:\n"
                  "  - name: v2\n"
                  "    labels: {version: v2}\n"
                  "    trafficPolicy:\n"
                  "      loadBalancer: {consistentHash: {httpHeaderName: x-user}}\n"
                  "      portLevelSettings:\n"
                  "      - port: {number: 9080}\n"
                  "        connectionPool: {tcp: {connectTimeout: 250ms}}\n"
                  "  - name: v3\n"
                  "    labels: {version: v3}\n");
    cp_compile_opts_t o = {.collector_url = COLLECTOR, .sampling = 10, .access_log = true};
    cp_compiled_t *c;
    assert_int_equal(cp_compile_new(cfg, &o, &c), 0);
    json_t *doc = compile_h(c, "productpage-v1.default", 9, NULL, NULL);
    assert_true(json_is_true(at(doc, "telemetry/access_log")));
    json_t *v = vhost(doc, REVIEWS);
    json_t *routes = at(v, "routes");
    /* sourceNamespace elsewhere never holds for this proxy: that route is gone. */
    assert_int_equal(json_array_size(routes), 3);
    json_t *r0 = json_array_get(routes, 0);
    assert_string_equal(at_s(r0, "name"), "redirect");
    assert_string_equal(at_s(r0, "match/0/uri/prefix"), "/old");
    assert_string_equal(at_s(r0, "match/0/method/exact"), "GET");
    assert_true(json_is_true(at(r0, "match/0/ignore_uri_case")));
    assert_string_equal(at_s(r0, "match/0/query_params/q/exact"), "x");
    assert_int_equal(json_object_size(at(r0, "match/0/without_headers/x-skip")), 0);
    assert_string_equal(at_s(r0, "match/0/source_labels/app"), "productpage");
    assert_string_equal(at_s(r0, "redirect/uri"), "/new");
    assert_string_equal(at_s(r0, "redirect/authority"), "example.com");
    assert_int_equal(at_i(r0, "redirect/redirect_code"), 302);
    assert_null(at(r0, "route"));
    json_t *r1 = json_array_get(routes, 1);
    assert_int_equal(at_i(r1, "direct_response/status"), 418);
    assert_string_equal(at_s(r1, "direct_response/body"), "short and stout");
    json_t *r2 = json_array_get(routes, 2);
    assert_string_equal(at_s(r2, "name"), "main");
    assert_string_equal(at_s(r2, "rewrite/uri"), "/v2");
    assert_int_equal(at_i(r2, "timeout_ms"), 3000);
    assert_int_equal(at_i(r2, "retries/attempts"), 4);
    assert_int_equal(at_i(r2, "retries/per_try_timeout_ms"), 500);
    assert_string_equal(at_s(r2, "retries/retry_on"), "5xx,503");
    assert_string_equal(at_s(r2, "mirror/cluster"),
                        "outbound|9080||ratings.default.svc.cluster.local");
    assert_true(json_real_value(at(r2, "mirror_percentage")) == 25.0);
    assert_string_equal(at_s(r2, "cors_policy/allow_origins/0/exact"), "https://a.example");
    assert_string_equal(at_s(r2, "cors_policy/allow_methods/1"), "POST");
    assert_int_equal(at_i(r2, "cors_policy/max_age_ms"), 86400000);
    assert_true(json_is_true(at(r2, "cors_policy/allow_credentials")));
    assert_string_equal(at_s(r2, "headers/request/set/x-a"), "1");
    assert_string_equal(at_s(r2, "headers/request/remove/0"), "x-b");
    assert_string_equal(at_s(r2, "headers/response/add/x-c"), "2");
    assert_string_equal(at_s(r2, "route/0/headers/request/set/x-d"), "3");
    assert_int_equal(at_i(r2, "route/0/weight"), 70);
    assert_string_equal(at_s(r2, "route/1/destination/cluster"),
                        "outbound|9080|v3|reviews.default.svc.cluster.local");

    /* Traffic policy: top level, subset over it, port level over the subset. */
    json_t *c0 = cluster(doc, "outbound|9080||reviews.default.svc.cluster.local");
    assert_string_equal(at_s(c0, "load_balancer/simple"), "ROUND_ROBIN");
    assert_int_equal(at_i(c0, "connection_pool/tcp/max_connections"), 10);
    assert_int_equal(at_i(c0, "outlier_detection/consecutive_5xx_errors"), 3);
    assert_int_equal(at_i(c0, "outlier_detection/interval_ms"), 5000);
    assert_int_equal(at_i(c0, "outlier_detection/base_ejection_time_ms"), 30000);
    json_t *c2 = cluster(doc, "outbound|9080|v2|reviews.default.svc.cluster.local");
    assert_string_equal(at_s(c2, "load_balancer/consistent_hash/http_header_name"), "x-user");
    assert_int_equal(at_i(c2, "load_balancer/consistent_hash/minimum_ring_size"), 1024);
    assert_int_equal(at_i(c2, "connection_pool/tcp/connect_timeout_ms"), 250);
    assert_int_equal(at_i(c2, "connection_pool/tcp/max_connections"), 4294967295LL);
    assert_int_equal(at_i(c2, "outlier_detection/consecutive_5xx_errors"), 3);
    json_t *c3 = cluster(doc, "outbound|9080|v3|reviews.default.svc.cluster.local");
    assert_string_equal(at_s(c3, "load_balancer/simple"), "ROUND_ROBIN");
    /* Left out and counted: tcp routes, the unknown retry condition, http2MaxRequests. */
    assert_true(cp_compile_skipped(c) >= 3);
    json_decref(doc);
    cp_compile_free(c);
    cp_config_free(cfg);
}

static void test_gateway_hosts(void **state)
{
    (void)state;
    cp_config_t *cfg = cp_config_new();
    add_bookinfo(cfg);
    add_text(cfg, "apiVersion: networking.istio.io/v1\n"
                  "kind: Gateway\n"
                  "metadata: {name: gw, namespace: istio-system}\n"
                  "spec:\n"
                  "  selector: {istio: ingressgateway}\n"
                  "  servers:\n"
                  "  - port: {number: 8080, name: http, protocol: HTTP}\n"
                  "    hosts: ['*.example.com', 'default/shop.test', 'prod/shop.test']\n"
                  "  - port: {number: 8443, name: https, protocol: HTTPS}\n"
                  "    hosts: ['*']\n"
                  "    tls: {mode: SIMPLE, credentialName: cert}\n"
                  "---\n"
                  "apiVersion: networking.istio.io/v1\n"
                  "kind: Gateway\n"
                  "metadata: {name: elsewhere, namespace: istio-system}\n"
                  "spec:\n"
                  "  selector: {istio: egressgateway}\n"
                  "  servers:\n"
                  "  - port: {number: 9000, name: http, protocol: HTTP}\n"
                  "    hosts: ['*']\n"
                  "---\n"
                  "apiVersion: networking.istio.io/v1\n"
                  "kind: VirtualService\n"
                  "metadata: {name: a}\n"
                  "spec:\n"
                  "  hosts: [bookinfo.example.com, other.org]\n"
                  "  gateways: [istio-system/gw, mesh]\n"
                  "  http:\n"
                  "  - route: [{destination: {host: productpage}}]\n"
                  "---\n"
                  "apiVersion: networking.istio.io/v1\n"
                  "kind: VirtualService\n"
                  "metadata: {name: b}\n"
                  "spec:\n"
                  "  hosts: ['*']\n"
                  "  gateways: [istio-system/gw]\n"
                  "  http:\n"
                  "  - match: [{uri: {prefix: /b}}]\n"
                  "    route: [{destination: {host: details}}]\n");
    json_t *gw = compile1(cfg, "istio-ingressgateway.istio-system");
    /* HTTP server only; the HTTPS one is left out. */
    assert_int_equal(json_array_size(at(gw, "gateway/servers")), 1);
    assert_int_equal(at_i(gw, "gateway/servers/0/port"), 8080);
    /* `ns/host`: the host, admitting VirtualServices of ns only. */
    assert_json_is(at(gw, "gateway/servers/0/hosts"),
                   json_pack("[ss]", "*.example.com", "shop.test"), "server hosts");
    json_t *vhs = at(gw, "virtual_hosts");
    /* a: bookinfo.example.com (in *.example.com); other.org is not served. b: "*" meets both
     * server hosts. */
    assert_int_equal(json_array_size(vhs), 3);
    json_t *v = by_name(vhs, "bookinfo.example.com:8080");
    assert_non_null(v);
    assert_json_is(at(v, "domains"),
                   json_pack("[ss]", "bookinfo.example.com", "bookinfo.example.com:*"), "domains");
    assert_string_equal(at_s(v, "routes/0/route/0/destination/host"),
                        "productpage.default.svc.cluster.local");
    json_t *w = by_name(vhs, "*.example.com:8080");
    assert_string_equal(at_s(w, "host"), "");
    assert_string_equal(at_s(w, "routes/0/match/0/uri/prefix"), "/b");
    assert_non_null(by_name(vhs, "shop.test:8080"));
    json_decref(gw);
    /* VirtualService a also lists mesh, but its hosts are no services: sidecars ignore it. */
    json_t *pp = compile1(cfg, "productpage-v1.default");
    assert_null(vhost(pp, "bookinfo.example.com:9080"));
    json_decref(pp);
    cp_config_free(cfg);
}

/* DestinationRule lookup: the proxy's namespace, then the service's, then the root namespace;
 * VirtualService exportTo "." keeps a rule to its own namespace. */
static void test_rule_precedence(void **state)
{
    (void)state;
    cp_config_t *cfg = cp_config_new();
    add_bookinfo(cfg);
    const char *ol[] = {"app", "client", NULL};
    add_wl(cfg, "client", "other", "", "127.0.0.50", NULL, 8080, false, ol);
    add_wl(cfg, "tool", "third", "", "127.0.0.51", NULL, 8081, false, NULL);
    add_text(cfg, "apiVersion: networking.istio.io/v1\n"
                  "kind: DestinationRule\n"
                  "metadata: {name: ratings-root, namespace: istio-system}\n"
                  "spec:\n"
                  "  host: ratings.default.svc.cluster.local\n"
                  "  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n"
                  "---\n"
                  "apiVersion: networking.istio.io/v1\n"
                  "kind: DestinationRule\n"
                  "metadata: {name: ratings}\n"
                  "spec:\n"
                  "  host: ratings\n"
                  "  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}\n"
                  "---\n"
                  "apiVersion: networking.istio.io/v1\n"
                  "kind: DestinationRule\n"
                  "metadata: {name: ratings-client, namespace: other}\n"
                  "spec:\n"
                  "  host: '*.default.svc.cluster.local'\n"
                  "  trafficPolicy: {loadBalancer: {simple: PASSTHROUGH}}\n"
                  "---\n"
                  "apiVersion: networking.istio.io/v1\n"
                  "kind: DestinationRule\n"
                  "metadata: {name: details-root, namespace: istio-system}\n"
                  "spec:\n"
                  "  host: details.default.svc.cluster.local\n"
                  "  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n"
                  "---\n"
                  "apiVersion: networking.istio.io/v1\n"
                  "kind: VirtualService\n"
                  "metadata: {name: private}\n"
                  "spec:\n"
                  "  hosts: [details]\n"
                  "  exportTo: [.]\n"
                  "  http: [{route: [{destination: {host: details}}], timeout: 2s}]\n");
#define LB(doc, cl) at_s(cluster(doc, cl), "load_balancer/simple")
    const char *rat = "outbound|9080||ratings.default.svc.cluster.local";
    const char *det = "outbound|9080||details.default.svc.cluster.local";
    json_t *pp = compile1(cfg, "productpage-v1.default");
    assert_string_equal(LB(pp, rat), "ROUND_ROBIN"); /* the service's (= proxy's) namespace */
    assert_string_equal(LB(pp, det), "RANDOM");      /* the root namespace */
    assert_int_equal(at_i(vhost(pp, DETAILS), "routes/0/timeout_ms"), 2000);
    json_t *cl = compile1(cfg, "client.other");
    assert_string_equal(LB(cl, rat), "PASSTHROUGH"); /* the proxy's namespace, by wildcard */
    assert_string_equal(LB(cl, det), "PASSTHROUGH");
    assert_null(at(vhost(cl, DETAILS), "routes")); /* exportTo "." */
    json_t *tl = compile1(cfg, "tool.third");
    assert_string_equal(LB(tl, rat), "ROUND_ROBIN"); /* the service's namespace */
    assert_string_equal(LB(tl, det), "RANDOM");
    assert_string_equal(LB(tl, "outbound|9080||reviews.default.svc.cluster.local"),
                        "LEAST_REQUEST");
#undef LB
    json_decref(pp);
    json_decref(cl);
    json_decref(tl);
    cp_config_free(cfg);
}

/* One gzip member inflated (zlib's gzip decoder: header, CRC-32 and length checked); NULL when
 * it is not exactly one valid member. */
static char *gunzip(const char *gz, size_t len, size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    assert_int_equal(inflateInit2(&z, 16 + MAX_WBITS), Z_OK);
    size_t cap = len * 4 + 1024, n = 0;
    char *out = wf_malloc(cap);
    z.next_in = (Bytef *)(uintptr_t)gz;
    z.avail_in = (uInt)len;
    int zr;
    do {
        if (cap - n < 4096) {
            cap *= 2;
            out = wf_realloc(out, cap);
        }
        z.next_out = (Bytef *)out + n;
        z.avail_out = (uInt)(cap - n - 1);
        uInt before = z.avail_out;
        zr = inflate(&z, Z_NO_FLUSH);
        n += before - z.avail_out;
    } while (zr == Z_OK);
    inflateEnd(&z);
    if (zr != Z_STREAM_END || z.avail_in != 0) {
        wf_free(out);
        return NULL;
    }
    out[n] = '\0';
    *out_len = n;
    return out;
}

/* The gzip form of a proxy's document inflates to exactly the plain form, with its hash. */
static void assert_gz_is_plain(cp_compiled_t *c, const char *id)
{
    char *plain = NULL, *gz = NULL;
    size_t plain_len = 0, gz_len = 0, back_len = 0;
    uint64_t h_plain = 0, h_gz = 1;
    assert_int_equal(cp_compile_proxy(c, id, 42, &plain, &plain_len, &h_plain), 0);
    assert_int_equal(cp_compile_proxy_gz(c, id, 42, &gz, &gz_len, &h_gz), 0);
    assert_true(h_plain == h_gz);
    assert_true(gz_len > 18);
    char *back = gunzip(gz, gz_len, &back_len);
    if (back == NULL) {
        fail_msg("%s: the gzip form is not one valid gzip member", id);
    }
    assert_int_equal(back_len, plain_len);
    assert_memory_equal(back, plain, plain_len);
    wf_free(back);
    wf_free(gz);
    wf_free(plain);
}

/*
 * cp_compile_proxy_gz: two sidecars of one namespace share one deflate of their group's part,
 * a sidecar of another namespace gets its own, a gateway deflates its own document; each is
 * one gzip member inflating to the plain document.
 */
static void test_gzip(void **state)
{
    (void)state;
    cp_config_t *cfg = cp_config_new();
    add_bookinfo(cfg);
    const char *ol[] = {"app", "billing", NULL};
    add_wl(cfg, "billing", "other", "", "127.0.0.60", NULL, 7070, false, ol);
    add_text(cfg, "apiVersion: networking.istio.io/v1\n"
                  "kind: Gateway\n"
                  "metadata: {name: gw, namespace: istio-system}\n"
                  "spec:\n"
                  "  selector: {istio: ingressgateway}\n"
                  "  servers: [{port: {number: 80, name: web, protocol: HTTP}, hosts: ['*']}]\n");
    cp_compile_opts_t o = {.sampling = -1};
    cp_compiled_t *c;
    assert_int_equal(cp_compile_new(cfg, &o, &c), 0);
    assert_int_equal(cp_compile_gz_groups(c), 0);
    assert_gz_is_plain(c, "productpage-v1.default");
    assert_int_equal(cp_compile_gz_groups(c), 1);
    assert_gz_is_plain(c, "reviews-v2.default");
    assert_int_equal(cp_compile_gz_groups(c), 1); /* the group's deflate, reused */
    assert_gz_is_plain(c, "billing.other");
    assert_int_equal(cp_compile_gz_groups(c), 2);
    assert_gz_is_plain(c, "istio-ingressgateway.istio-system");
    assert_int_equal(cp_compile_gz_groups(c), 2); /* a gateway's vhosts are its own */

    /* The shared part is not compressed per proxy: two sidecars of a group end in the same
     * bytes (the group's deflate stream) up to their trailers. */
    char *a = NULL, *b = NULL;
    size_t la = 0, lb = 0;
    assert_int_equal(cp_compile_proxy_gz(c, "details-v1.default", 1, &a, &la, NULL), 0);
    assert_int_equal(cp_compile_proxy_gz(c, "ratings-v1.default", 1, &b, &lb, NULL), 0);
    size_t same = 0;
    while (same < la - 8 && same < lb - 8 && a[la - 9 - same] == b[lb - 9 - same]) {
        same++;
    }
    assert_true(same > la / 2); /* the cluster list dominates these documents */
    wf_free(a);
    wf_free(b);

    /* Errors as the plain form's. */
    char *gz = NULL;
    size_t len = 0;
    assert_int_equal(cp_compile_proxy_gz(c, "nosuch.default", 1, &gz, &len, NULL), WF_E_NOTFOUND);
    assert_int_equal(cp_compile_proxy_gz(c, "details-v1.default", -1, &gz, &len, NULL), WF_E_INVAL);
    assert_null(gz);
    cp_compile_free(c);
    cp_config_free(cfg);
}

typedef struct {
    cp_compiled_t *c;
    const char *const *ids;
    size_t n;
    char **expected;
    int mismatches;
} thread_arg_t;

static void *compile_many(void *p)
{
    thread_arg_t *a = p;
    for (int round = 0; round < 20; round++) {
        for (size_t i = 0; i < a->n; i++) {
            char *json = NULL, *gz = NULL, *back = NULL;
            size_t len, gz_len, back_len = 0;
            if (cp_compile_proxy(a->c, a->ids[i], 5, &json, &len, NULL) != 0 ||
                strcmp(json, a->expected[i]) != 0) {
                a->mismatches++;
            }
            /* The gzip form too: its shared deflate is made lazily, racing as well. */
            if (cp_compile_proxy_gz(a->c, a->ids[i], 5, &gz, &gz_len, NULL) != 0 ||
                (back = gunzip(gz, gz_len, &back_len)) == NULL ||
                strcmp(back, a->expected[i]) != 0) {
                a->mismatches++;
            }
            wf_free(back);
            wf_free(gz);
            wf_free(json);
        }
    }
    return NULL;
}

/* Several threads on one compiler (cold cache) produce what one thread does. */
static void test_threads(void **state)
{
    (void)state;
    cp_config_t *cfg = cp_config_new();
    add_bookinfo(cfg);
    const char *ol[] = {"app", "billing", NULL};
    add_wl(cfg, "billing", "other", "", "127.0.0.60", NULL, 7070, false, ol);
    static const char *const ids[] = {"productpage-v1.default", "reviews-v1.default",
                                      "reviews-v2.default", "ratings-v1.default", "billing.other"};
    size_t n = sizeof(ids) / sizeof(ids[0]);
    cp_compile_opts_t o = {.sampling = -1};
    cp_compiled_t *c;
    assert_int_equal(cp_compile_new(cfg, &o, &c), 0);
    char *expected[5];
    for (size_t i = 0; i < n; i++) {
        size_t len;
        assert_int_equal(cp_compile_proxy(c, ids[i], 5, &expected[i], &len, NULL), 0);
    }
    cp_compile_free(c);
    assert_int_equal(cp_compile_new(cfg, &o, &c), 0);
    pthread_t th[4];
    thread_arg_t args[4];
    for (int t = 0; t < 4; t++) {
        args[t] = (thread_arg_t){.c = c, .ids = ids, .n = n, .expected = expected};
        assert_int_equal(pthread_create(&th[t], NULL, compile_many, &args[t]), 0);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(args[t].mismatches, 0);
    }
    for (size_t i = 0; i < n; i++) {
        wf_free(expected[i]);
    }
    cp_compile_free(c);
    cp_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_productpage_80_20),
        cmocka_unit_test(test_no_tls_rule_is_auto_mtls),
        cmocka_unit_test(test_reviews_ratings_delay),
        cmocka_unit_test(test_gateway_bookinfo),
        cmocka_unit_test(test_reference_virtual_services),
        cmocka_unit_test(test_fault_injection_details),
        cmocka_unit_test(test_unknown_proxy),
        cmocka_unit_test(test_vs_unknown_host_and_gateway_only),
        cmocka_unit_test(test_service_entries),
        cmocka_unit_test(test_sidecar_scoping),
        cmocka_unit_test(test_peer_authentication),
        cmocka_unit_test(test_authorization_policies),
        cmocka_unit_test(test_rule_precedence),
        cmocka_unit_test(test_content_hash),
        cmocka_unit_test(test_route_features),
        cmocka_unit_test(test_gateway_hosts),
        cmocka_unit_test(test_gzip),
        cmocka_unit_test(test_threads),
    };
    return wt_exit_code(cmocka_run_group_tests(tests, NULL, NULL));
}
