/*
 * test_px_snapshot.c - the config snapshot parser (px_snapshot.h): every example snapshot of
 * tests/proxy/snapshots/ parses, field by field; the defaults a hand-written file gets; errors
 * naming the JSON path for malformed documents, wrong types, out-of-range values, negative
 * and zero weights, bad and non-RE2 regexes, unknown fields in strict mode, oversized input;
 * reference counting.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "px_snapshot.h"
#include "wf_alloc.h"
#include "wf_err.h"
#include "wt_util.h"

/* tests/proxy/snapshots/<name>, found from this file's path. */
static char *example_path(const char *name)
{
    char *src = wf_strdup(__FILE__);
    char *cut = strstr(src, "/unit/proxy/");
    assert_non_null(cut);
    *cut = '\0';
    size_t n = strlen(src) + strlen(name) + 32;
    char *p = wf_malloc(n);
    snprintf(p, n, "%s/proxy/snapshots/%s", src, name);
    wf_free(src);
    return p;
}

static px_snapshot_t *load_example(const char *name)
{
    char *path = example_path(name);
    char err[512];
    px_snapshot_opts_t o;
    px_snapshot_opts_default(&o);
    o.strict = true; /* the examples must not carry typos */
    px_snapshot_t *s = NULL;
    int rc = px_snapshot_load(path, &o, &s, NULL, err, sizeof(err));
    if (rc != 0) {
        fail_msg("%s: %s", name, err);
    }
    wf_free(path);
    return s;
}

static bool str_is(wf_str_t s, const char *want)
{
    return wf_str_eq_c(s, want) && s.p[s.len] == '\0';
}

#define assert_str(s, want)                                                                        \
    do {                                                                                           \
        if (!str_is((s), (want))) {                                                                \
            fail_msg("got \"%.*s\", want \"%s\"", (int)(s).len, (s).p, (want));                    \
        }                                                                                          \
    } while (0)

static const px_vhost_t *vhost_named(const px_snapshot_t *s, const char *name)
{
    for (uint32_t i = 0; i < s->n_vhosts; i++) {
        if (wf_str_eq_c(s->vhosts[i].name, name)) {
            return &s->vhosts[i];
        }
    }
    fail_msg("no virtual host %s", name);
    return NULL;
}

static const px_label_t *label(const px_label_t *l, uint32_t n, const char *key)
{
    for (uint32_t i = 0; i < n; i++) {
        if (wf_str_eq_c(l[i].key, key)) {
            return &l[i];
        }
    }
    return NULL;
}

static void test_productpage_80_20(void **state)
{
    (void)state;
    px_snapshot_t *s = load_example("productpage-reviews-80-20.json");
    assert_int_equal(s->schema, 1);
    assert_int_equal(s->version, 42);
    assert_str(s->proxy.id, "productpage-v1.default");
    assert_str(s->proxy.service, "productpage");
    assert_str(s->proxy.namespace, "default");
    assert_str(s->proxy.version, "v1");
    assert_str(s->proxy.workload, "productpage-v1");
    assert_str(s->proxy.service_account, "bookinfo-productpage");
    assert_str(s->proxy.identity, "spiffe://cluster.local/ns/default/sa/bookinfo-productpage");
    assert_str(s->proxy.cluster_id, "Kubernetes");
    assert_int_equal(s->proxy.mode, PX_MODE_SIDECAR);
    assert_int_equal(s->proxy.n_labels, 2);
    assert_str(label(s->proxy.labels, 2, "version")->value, "v1");
    assert_true(s->telemetry.sampling == 1.0);
    assert_str(s->telemetry.collector_url, "http://127.0.0.1:4318/v1/traces");
    assert_false(s->telemetry.access_log);
    assert_true(s->telemetry.metrics);

    assert_str(s->inbound.app_address, "127.0.0.1");
    assert_int_equal(s->inbound.n_ports, 1);
    assert_int_equal(s->inbound.ports[0].port, 9080);
    assert_int_equal(s->inbound.ports[0].target_port, 9080);
    assert_str(s->inbound.ports[0].protocol, "HTTP");
    assert_int_equal(s->inbound.ports[0].mtls, PX_PEER_AUTH_UNSET);
    assert_int_equal(s->inbound.mtls_mode, PX_PEER_AUTH_PERMISSIVE);
    assert_int_equal(s->inbound.authz.n_policies, 0);

    assert_int_equal(s->n_vhosts, 2);
    const px_vhost_t *vh = vhost_named(s, "reviews.default.svc.cluster.local:9080");
    assert_str(vh->host, "reviews.default.svc.cluster.local");
    assert_int_equal(vh->port, 9080);
    assert_int_equal(vh->n_domains, 8);
    assert_int_equal(vh->domains[2].kind, PX_DOM_EXACT);
    assert_str(vh->domains[2].value, "reviews");
    assert_str(vh->domains[3].value, "reviews:9080");
    assert_int_equal(vh->n_routes, 1);
    const px_route_t *r = &vh->routes[0];
    assert_int_equal(r->n_match, 0);
    assert_int_equal(r->action, PX_ACTION_ROUTE);
    assert_int_equal(r->n_route, 2);
    assert_int_equal(r->total_weight, 100);
    assert_int_equal(r->route[0].weight, 80);
    assert_int_equal(r->route[1].weight, 20);
    assert_str(r->route[0].dest.cluster_name, "outbound|9080|v1|reviews.default.svc.cluster.local");
    assert_str(r->route[1].dest.subset, "v2");
    assert_non_null(r->route[0].dest.cluster);
    assert_ptr_equal(r->route[1].dest.cluster,
                     px_snapshot_cluster(s, r->route[1].dest.cluster_name));
    assert_int_equal(r->timeout_ms, 0);
    assert_int_equal(r->retries.attempts, 2);
    assert_int_equal(r->retries.retry_on, PX_RETRY_CONNECT_FAILURE | PX_RETRY_REFUSED_STREAM |
                                              PX_RETRY_UNAVAILABLE | PX_RETRY_CANCELLED);
    assert_false(r->fault.delay_set);
    assert_false(r->has_mirror);

    /* details: 1 + 1 subset; reviews: 1 + 3 subsets; sorted by name. */
    assert_int_equal(s->n_clusters, 6);
    for (uint32_t i = 1; i < s->n_clusters; i++) {
        assert_true(wf_str_cmp(s->clusters[i - 1].name, s->clusters[i].name) < 0);
    }
    const px_cluster_t *c =
        px_snapshot_cluster(s, WF_STR_LIT("outbound|9080|v2|reviews.default.svc.cluster.local"));
    assert_non_null(c);
    assert_str(c->host, "reviews.default.svc.cluster.local");
    assert_int_equal(c->port, 9080);
    assert_str(c->subset, "v2");
    assert_int_equal(c->lb.kind, PX_LB_LEAST_REQUEST);
    assert_int_equal(c->pool.max_connections, UINT32_MAX);
    assert_int_equal(c->pool.connect_timeout_ms, 10000);
    assert_int_equal(c->pool.idle_timeout_ms, 3600000);
    assert_false(c->outlier.enabled);
    assert_int_equal(c->tls.mode, PX_TLS_ISTIO_MUTUAL);
    assert_str(c->tls.sni, "outbound_.9080_.v2_.reviews.default.svc.cluster.local");
    assert_int_equal(c->tls.n_subject_alt_names, 1);
    assert_str(c->tls.subject_alt_names[0],
               "spiffe://cluster.local/ns/default/sa/bookinfo-reviews");
    assert_int_equal(c->n_endpoints, 1);
    assert_str(c->endpoints[0].address, "10.1.0.32");
    assert_int_equal(c->endpoints[0].port, 9080);
    assert_str(c->endpoints[0].workload, "reviews-v2");
    assert_str(c->endpoints[0].namespace, "default");
    assert_true(c->endpoints[0].in_mesh);
    assert_str(label(c->endpoints[0].labels, c->endpoints[0].n_labels, "version")->value, "v2");
    c = px_snapshot_cluster(s, WF_STR_LIT("outbound|9080||reviews.default.svc.cluster.local"));
    assert_non_null(c);
    assert_int_equal(c->n_endpoints, 3);
    assert_null(px_snapshot_cluster(s, WF_STR_LIT("outbound|9080|v9|reviews")));
    px_snapshot_unref(s);
}

static void test_ratings_delay(void **state)
{
    (void)state;
    px_snapshot_t *s = load_example("reviews-v2-ratings-delay.json");
    assert_int_equal(s->version, 7);
    assert_str(s->proxy.workload, "reviews-v2");
    assert_int_equal(s->n_vhosts, 1);
    const px_vhost_t *vh = &s->vhosts[0];
    assert_int_equal(vh->n_routes, 2);
    const px_route_t *r = &vh->routes[0];
    assert_int_equal(r->n_match, 1);
    assert_int_equal(r->match[0].n_headers, 1);
    assert_str(r->match[0].headers[0].name, "end-user");
    assert_int_equal(r->match[0].headers[0].match.kind, PX_SM_EXACT);
    assert_str(r->match[0].headers[0].match.value, "jason");
    assert_true(r->fault.delay_set);
    assert_int_equal(r->fault.delay_ms, 7000);
    assert_true(r->fault.delay_percentage == 100.0);
    assert_false(r->fault.abort_set);
    assert_str(r->route[0].dest.cluster_name, "outbound|9080|v1|ratings.default.svc.cluster.local");
    assert_non_null(r->route[0].dest.cluster);
    assert_false(vh->routes[1].fault.delay_set);
    px_snapshot_unref(s);
}

static void test_gateway(void **state)
{
    (void)state;
    px_snapshot_t *s = load_example("gateway-bookinfo.json");
    assert_int_equal(s->proxy.mode, PX_MODE_GATEWAY);
    assert_str(s->proxy.namespace, "istio-system");
    assert_int_equal(s->gateway.n_servers, 1);
    assert_int_equal(s->gateway.servers[0].port, 8080);
    assert_str(s->gateway.servers[0].protocol, "HTTP");
    assert_int_equal(s->gateway.servers[0].n_hosts, 1);
    assert_str(s->gateway.servers[0].hosts[0], "*");
    assert_int_equal(s->n_vhosts, 1);
    assert_int_equal(s->vhosts[0].n_domains, 1);
    assert_int_equal(s->vhosts[0].domains[0].kind, PX_DOM_ANY);
    const px_route_t *r = &s->vhosts[0].routes[0];
    assert_int_equal(r->n_match, 5);
    assert_int_equal(r->match[0].uri.kind, PX_SM_EXACT);
    assert_str(r->match[0].uri.value, "/productpage");
    assert_int_equal(r->match[1].uri.kind, PX_SM_PREFIX);
    assert_str(r->match[4].uri.value, "/api/v1/products");
    assert_str(r->route[0].dest.cluster_name,
               "outbound|9080||productpage.default.svc.cluster.local");
    assert_non_null(r->route[0].dest.cluster);
    px_snapshot_unref(s);
}

/* The hand-written file relies on the parser's defaults. */
static void test_hand_written_defaults(void **state)
{
    (void)state;
    px_snapshot_t *s = load_example("routing-features.json");
    assert_str(s->proxy.id, "productpage-v1.default");
    assert_str(s->proxy.namespace, "default");
    assert_str(s->proxy.workload, "productpage-v1");
    assert_str(s->proxy.service_account, "default");
    assert_str(s->proxy.identity, "spiffe://cluster.local/ns/default/sa/default");
    assert_str(label(s->proxy.labels, s->proxy.n_labels, "app")->value, "productpage");
    assert_true(s->telemetry.sampling == 1.0);
    assert_true(s->telemetry.metrics);
    assert_int_equal(s->inbound.mtls_mode, PX_PEER_AUTH_PERMISSIVE);
    assert_int_equal(s->inbound.n_ports, 0);

    const px_vhost_t *vh = vhost_named(s, "reviews.default.svc.cluster.local:9080");
    assert_str(vh->host, "reviews.default.svc.cluster.local");
    /* Istio's domain set: FQDN, name, name.ns, name.ns.svc, each with and without the port. */
    const char *want[] = {"reviews.default.svc.cluster.local",
                          "reviews.default.svc.cluster.local:9080",
                          "reviews",
                          "reviews:9080",
                          "reviews.default",
                          "reviews.default:9080",
                          "reviews.default.svc",
                          "reviews.default.svc:9080"};
    assert_int_equal(vh->n_domains, 8);
    for (int i = 0; i < 8; i++) {
        assert_str(vh->domains[i].value, want[i]);
    }
    const px_route_t *r = &vh->routes[0];
    assert_str(r->name, "jason");
    assert_str(r->match[0].headers[0].name, "end-user"); /* lower-cased */
    assert_int_equal(r->n_route, 1);
    assert_int_equal(r->route[0].weight, 100); /* a lone destination */
    assert_int_equal(r->route[0].dest.port, 9080);
    assert_str(r->route[0].dest.host, "reviews.default.svc.cluster.local");
    assert_str(r->route[0].dest.cluster_name, "outbound|9080|v2|reviews.default.svc.cluster.local");
    assert_non_null(r->route[0].dest.cluster);
    assert_int_equal(r->retries.attempts, 2);

    r = &vh->routes[1];
    assert_int_equal(r->match[0].n_without_headers, 1);
    assert_int_equal(r->match[0].without_headers[0].match.kind, PX_SM_PRESENT);
    assert_true(r->has_rewrite);
    assert_str(r->rewrite.uri, "/");
    assert_int_equal(r->rewrite.authority.len, 0);

    r = &vh->routes[2];
    assert_int_equal(r->action, PX_ACTION_DIRECT_RESPONSE);
    assert_int_equal(r->direct_response.status, 403);
    assert_str(r->direct_response.body, "forbidden");
    assert_true(r->match[0].ignore_uri_case);

    r = &vh->routes[3];
    assert_int_equal(r->match[0].uri.kind, PX_SM_REGEX);
    assert_non_null(r->match[0].uri.re);
    assert_int_equal(r->timeout_ms, 3000);
    assert_int_equal(r->retries.attempts, 3);
    assert_int_equal(r->retries.per_try_timeout_ms, 1000);
    assert_int_equal(r->retries.retry_on,
                     PX_RETRY_5XX | PX_RETRY_GATEWAY_ERROR | PX_RETRY_RETRIABLE_STATUS_CODES);
    assert_int_equal(r->retries.n_status_codes, 1);
    assert_int_equal(r->retries.status_codes[0], 409);

    r = &vh->routes[4];
    assert_int_equal(r->match[0].n_query_params, 1);
    assert_str(r->match[0].query_params[0].name, "debug");

    r = &vh->routes[5];
    assert_int_equal(r->match[0].n_source_labels, 2);

    r = &vh->routes[6];
    assert_true(r->fault.abort_set);
    assert_int_equal(r->fault.abort_status, 503);
    assert_true(r->fault.abort_percentage == 50.0);
    r = &vh->routes[7];
    /* Istio: an omitted fault percentage is 0 %. */
    assert_true(r->fault.abort_percentage == 0.0);
    assert_true(r->fault.delay_percentage == 0.0);
    assert_int_equal(r->fault.delay_ms, 100);

    r = &vh->routes[8];
    assert_true(r->has_mirror);
    assert_true(r->mirror_percentage == 50.0);
    assert_str(r->mirror.cluster_name, "outbound|9080|v3|reviews.default.svc.cluster.local");
    assert_non_null(r->mirror.cluster);
    assert_int_equal(r->match[0].port, 9080);
    assert_int_equal(r->headers.request.n_set, 1);
    assert_str(r->headers.request.set[0].key, "x-route");
    assert_str(r->headers.request.set[0].value, "post");
    assert_str(r->headers.request.remove[0], "x-debug");
    assert_str(r->headers.response.add[0].key, "x-served-by");

    r = &vh->routes[9];
    assert_int_equal(r->action, PX_ACTION_REDIRECT);
    assert_str(r->redirect.uri, "/new");
    assert_str(r->redirect.authority, "reviews.example.com");
    assert_int_equal(r->redirect.code, 302);
    assert_int_equal(r->n_match, 2);

    r = &vh->routes[10];
    assert_true(r->has_cors);
    assert_int_equal(r->cors.n_allow_origins, 2);
    assert_int_equal(r->cors.allow_origins[1].kind, PX_SM_REGEX);
    assert_str(r->cors.allow_methods, "GET,POST");
    assert_int_equal(r->cors.max_age_ms, 86400000);
    assert_int_equal(r->cors.allow_credentials, 1);
    assert_int_equal(r->total_weight, 100);
    assert_str(r->route[1].headers.response.set[0].key, "x-version");

    /* A virtual host without routes gets Istio's default route to the service's cluster. */
    vh = vhost_named(s, "ratings.default.svc.cluster.local:9080");
    assert_int_equal(vh->n_routes, 1);
    assert_int_equal(vh->routes[0].n_match, 0);
    assert_str(vh->routes[0].route[0].dest.cluster_name,
               "outbound|9080||ratings.default.svc.cluster.local");
    assert_non_null(vh->routes[0].route[0].dest.cluster);
    assert_int_equal(vh->routes[0].retries.attempts, 2);

    const px_cluster_t *c =
        px_snapshot_cluster(s, WF_STR_LIT("outbound|9080|v1|reviews.default.svc.cluster.local"));
    assert_non_null(c);
    assert_int_equal(c->lb.kind, PX_LB_CONSISTENT_HASH);
    assert_int_equal(c->lb.hash_kind, PX_HASH_HEADER);
    assert_str(c->lb.hash_name, "x-user");
    assert_int_equal(c->lb.minimum_ring_size, 1024);
    assert_true(c->outlier.enabled);
    assert_int_equal(c->outlier.consecutive_5xx_errors, 5);
    assert_int_equal(c->outlier.consecutive_gateway_errors, 0);
    assert_int_equal(c->outlier.interval_ms, 10000);
    assert_int_equal(c->outlier.base_ejection_time_ms, 30000);
    assert_int_equal(c->outlier.max_ejection_percent, 10);
    assert_int_equal(c->tls.mode, PX_TLS_AUTO);   /* no `tls` key: auto mTLS */
    assert_int_equal(c->endpoints[0].port, 9080); /* the cluster's port */
    assert_int_equal(c->endpoints[0].weight, 1);
    assert_false(c->endpoints[0].in_mesh);
    c = px_snapshot_cluster(s, WF_STR_LIT("outbound|9080|v2|reviews.default.svc.cluster.local"));
    assert_int_equal(c->lb.kind, PX_LB_ROUND_ROBIN);
    assert_int_equal(c->pool.max_connections, 100);
    assert_int_equal(c->pool.http1_max_pending_requests, 10);
    assert_int_equal(c->pool.max_retries, UINT32_MAX);
    assert_int_equal(c->outlier.consecutive_5xx_errors, 3);
    assert_int_equal(c->outlier.interval_ms, 5000);
    assert_int_equal(c->endpoints[0].port, 19080);
    assert_int_equal(c->endpoints[0].weight, 2);
    assert_true(c->endpoints[0].in_mesh);
    px_snapshot_unref(s);
}

/* Parse text (with the default, lenient options unless strict) and expect failure with a
 * message containing want. */
static void expect_error(const char *json, bool strict, int want_rc, const char *want)
{
    px_snapshot_opts_t o;
    px_snapshot_opts_default(&o);
    o.strict = strict;
    char err[512];
    px_snapshot_t *s = (px_snapshot_t *)1;
    int rc = px_snapshot_parse(json, strlen(json), &o, &s, err, sizeof(err));
    if (rc == 0) {
        px_snapshot_unref(s);
        fail_msg("accepted: %s", json);
    }
    assert_null(s);
    assert_int_equal(rc, want_rc);
    if (strstr(err, want) == NULL) {
        fail_msg("error \"%s\" lacks \"%s\"", err, want);
    }
}

#define HEAD "{\"schema\":1,\"version\":1,\"proxy\":{\"service\":\"productpage\"},"
#define CLUSTERS                                                                                   \
    "\"clusters\":[{\"host\":\"reviews\",\"port\":9080,\"subset\":\"v1\"},"                        \
    "{\"host\":\"reviews\",\"port\":9080,\"subset\":\"v2\"}]"
#define VH_ROUTES(routes)                                                                          \
    HEAD CLUSTERS                                                                                  \
        ",\"virtual_hosts\":[{\"host\":\"ratings\",\"port\":9080},{\"host\":\"reviews\","          \
        "\"port\":9080,\"routes\":" routes "}]}"
#define D1 "{\"destination\":{\"host\":\"reviews\",\"subset\":\"v1\"}"
#define D2 "{\"destination\":{\"host\":\"reviews\",\"subset\":\"v2\"}"

static void test_errors(void **state)
{
    (void)state;
    expect_error("", false, WF_E_INVAL, "invalid JSON");
    expect_error("{\"schema\":1,", false, WF_E_INVAL, "invalid JSON");
    expect_error("[]", false, WF_E_INVAL, "must be a JSON object");
    expect_error("{\"version\":1,\"proxy\":{\"service\":\"a\"}}", false, WF_E_INVAL,
                 "schema: required");
    expect_error("{\"schema\":2,\"version\":1,\"proxy\":{\"service\":\"a\"}}", false, WF_E_INVAL,
                 "schema: 2 is not supported");
    expect_error("{\"schema\":1,\"version\":-1,\"proxy\":{\"service\":\"a\"}}", false, WF_E_INVAL,
                 "version: must be >= 0");
    expect_error("{\"schema\":1,\"version\":\"7\",\"proxy\":{\"service\":\"a\"}}", false,
                 WF_E_INVAL, "version: must be an integer, not a string");
    expect_error("{\"schema\":1,\"version\":1}", false, WF_E_INVAL, "proxy: required");
    expect_error("{\"schema\":1,\"version\":1,\"proxy\":{\"service\":7}}", false, WF_E_INVAL,
                 "proxy.service: must be a string, not an integer");
    expect_error("{\"schema\":1,\"schema\":1,\"version\":1,\"proxy\":{\"service\":\"a\"}}", false,
                 WF_E_INVAL, "duplicate object key");
    expect_error(HEAD "\"proxy\":{}}", false, WF_E_INVAL, "duplicate");
    expect_error("{\"schema\":1,\"version\":1,\"proxy\":{\"service\":\"a\",\"mode\":\"edge\"}}",
                 false, WF_E_INVAL, "proxy.mode: must be one of sidecar, gateway");
    expect_error(HEAD "\"telemetry\":{\"sampling\":101}}", false, WF_E_INVAL,
                 "telemetry.sampling: must be <= 100");
    expect_error(HEAD "\"telemetry\":{\"access_log\":1}}", false, WF_E_INVAL,
                 "telemetry.access_log: must be a boolean");

    /* Weights. */
    expect_error(VH_ROUTES("[{\"route\":[" D1 ",\"weight\":50}," D2 ",\"weight\":-1}]}]"), false,
                 WF_E_INVAL, "virtual_hosts[1].routes[0].route[1].weight: must be >= 0");
    expect_error(VH_ROUTES("[{\"route\":[" D1 ",\"weight\":0}," D2 ",\"weight\":0}]}]"), false,
                 WF_E_INVAL, "virtual_hosts[1].routes[0].route: total weight must be > 0");
    expect_error(VH_ROUTES("[{\"route\":[" D1 "}," D2 "}]}]"), false, WF_E_INVAL,
                 "total weight must be > 0");
    expect_error(VH_ROUTES("[{\"route\":[" D1 ",\"weight\":1.5}]}]"), false, WF_E_INVAL,
                 "route[0].weight: must be an integer, not a number");
    expect_error(VH_ROUTES("[{\"route\":[]}]"), false, WF_E_INVAL,
                 "routes[0].route: must have at least one destination");
    expect_error(VH_ROUTES("[{\"route\":[{\"weight\":1}]}]"), false, WF_E_INVAL,
                 "routes[0].route[0].destination: required");

    /* Actions and fields. */
    expect_error(VH_ROUTES("[{}]"), false, WF_E_INVAL,
                 "routes[0]: exactly one of route, redirect, direct_response");
    expect_error(VH_ROUTES("[{\"route\":[" D1 "}],\"direct_response\":{\"status\":200}}]"), false,
                 WF_E_INVAL, "exactly one of");
    expect_error(VH_ROUTES("[{\"direct_response\":{\"status\":99}}]"), false, WF_E_INVAL,
                 "routes[0].direct_response.status: must be >= 200");
    expect_error(VH_ROUTES("[{\"route\":[" D1 "}],\"timeout_ms\":-5}]"), false, WF_E_INVAL,
                 "routes[0].timeout_ms: must be >= 0");
    expect_error(VH_ROUTES("[{\"route\":[" D1 "}],\"retries\":{\"attempts\":2,"
                           "\"retry_on\":\"5xx,sometimes\"}}]"),
                 false, WF_E_INVAL, "routes[0].retries.retry_on: unknown condition \"sometimes\"");
    expect_error(VH_ROUTES("[{\"route\":[" D1 "}],\"fault\":{\"abort\":{\"percentage\":10}}}]"),
                 false, WF_E_INVAL, "routes[0].fault.abort.http_status: required");
    expect_error(VH_ROUTES("[{\"route\":[" D1 "}],\"fault\":{\"delay\":{\"fixed_delay_ms\":1,"
                           "\"percentage\":-1}}}]"),
                 false, WF_E_INVAL, "fault.delay.percentage: must be >= 0");
    expect_error(VH_ROUTES("[{\"route\":[" D1 "}],\"match\":[{\"uri\":{\"exact\":\"/a\","
                           "\"prefix\":\"/b\"}}]}]"),
                 false, WF_E_INVAL, "routes[0].match[0].uri: exactly one of exact, prefix, regex");
    expect_error(VH_ROUTES("[{\"route\":[" D1 "}],\"match\":[{\"query_params\":{\"a\":"
                           "{\"prefix\":\"x\"}}}]}]"),
                 false, WF_E_INVAL,
                 "match[0].query_params.a.prefix: prefix match is not supported");
    expect_error(VH_ROUTES("[{\"redirect\":{\"uri\":\"new\"}}]"), false, WF_E_INVAL,
                 "routes[0].redirect.uri: must start with /");
    expect_error(VH_ROUTES("[{\"route\":[" D1 "}],\"mirror_percentage\":5}]"), false, WF_E_INVAL,
                 "routes[0].mirror_percentage: needs mirror");

    /* Regexes: invalid ones, and valid PCRE2 that RE2 would refuse. */
    expect_error(VH_ROUTES("[{\"route\":[" D1 "}],\"match\":[{\"uri\":{\"regex\":\"/a(b\"}}]}]"),
                 false, WF_E_INVAL, "routes[0].match[0].uri.regex: invalid regex: missing closing");
    const char *non_re2[] = {"(a)\\\\1", "a(?=b)",     "(?<=a)b", "(?>ab)",    "a++",     "(?R)",
                             "\\\\Ka",   "(*ACCEPT)a", "a{2}+",   "(?(1)a|b)", "(?x)a b", "(?P=n)"};
    for (size_t i = 0; i < sizeof(non_re2) / sizeof(non_re2[0]); i++) {
        char doc[1024];
        snprintf(doc, sizeof(doc),
                 VH_ROUTES("[{\"route\":[" D1 "}],\"match\":[{\"uri\":{\"regex\":\"%s\"}}]}]"),
                 non_re2[i]);
        expect_error(doc, false, WF_E_INVAL, "not RE2 syntax");
    }

    /* Domains. */
    expect_error(HEAD "\"virtual_hosts\":[{\"domains\":[\"a.*.com\"],\"routes\":[]}]}", false,
                 WF_E_INVAL, "virtual_hosts[0].domains[0]: domain \"a.*.com\"");
    expect_error(HEAD "\"virtual_hosts\":[{\"domains\":[\"*.a.com\"],\"port\":80,\"routes\":[]},"
                      "{\"domains\":[\"*.A.com\"],\"port\":80,\"routes\":[]}]}",
                 false, WF_E_INVAL, "domain \"*.a.com\" on port 80 is claimed by");
    expect_error(HEAD "\"virtual_hosts\":[{\"host\":\"x\"}]}", false, WF_E_INVAL,
                 "virtual_hosts[0].routes: required when host or port is not given");
    expect_error(HEAD "\"virtual_hosts\":[{\"routes\":[]}]}", false, WF_E_INVAL,
                 "virtual_hosts[0]: needs host or domains");

    /* Clusters. */
    expect_error(HEAD "\"clusters\":[{\"host\":\"a\",\"port\":0}]}", false, WF_E_INVAL,
                 "clusters[0].port: must be >= 1");
    expect_error(HEAD "\"clusters\":[{\"host\":\"a\",\"port\":70000}]}", false, WF_E_INVAL,
                 "clusters[0].port: must be <= 65535");
    expect_error(HEAD "\"clusters\":[{\"host\":\"a\",\"port\":1},{\"host\":\"a\",\"port\":1}]}",
                 false, WF_E_INVAL,
                 "duplicate cluster name \"outbound|1||a.default.svc.cluster.local\"");
    expect_error(HEAD "\"clusters\":[{\"host\":\"a\",\"port\":1,\"load_balancer\":"
                      "{\"simple\":\"FASTEST\"}}]}",
                 false, WF_E_INVAL,
                 "clusters[0].load_balancer.simple: must be one of LEAST_REQUEST, ROUND_ROBIN");
    expect_error(HEAD "\"clusters\":[{\"host\":\"a\",\"port\":1,\"load_balancer\":"
                      "{\"consistent_hash\":{}}}]}",
                 false, WF_E_INVAL, "consistent_hash: exactly one of http_header_name");
    expect_error(HEAD "\"clusters\":[{\"host\":\"a\",\"port\":1,\"tls\":{\"mode\":\"MUTUAL\"}}]}",
                 false, WF_E_INVAL, "clusters[0].tls: MUTUAL needs client_certificate");
    expect_error(HEAD "\"clusters\":[{\"host\":\"a\",\"port\":1,\"outlier_detection\":"
                      "{\"max_ejection_percent\":101}}]}",
                 false, WF_E_INVAL, "outlier_detection.max_ejection_percent: must be <= 100");
    expect_error(HEAD "\"clusters\":[{\"host\":\"a\",\"port\":1,\"endpoints\":[{\"port\":1}]}]}",
                 false, WF_E_INVAL, "clusters[0].endpoints[0].address: required");

    expect_error(HEAD "\"inbound\":{\"peer_authentication\":{\"mode\":\"LOOSE\"}}}", false,
                 WF_E_INVAL, "inbound.peer_authentication.mode: must be one of");
    expect_error(HEAD "\"inbound\":{\"ports\":[{\"port\":1},{\"port\":1}]}}", false, WF_E_INVAL,
                 "inbound.ports[1].port: duplicate inbound port 1");

    /* Gateway. */
    expect_error(HEAD "\"gateway\":{\"servers\":[]}}", false, WF_E_INVAL,
                 "gateway: only valid with proxy.mode");
    expect_error("{\"schema\":1,\"version\":1,\"proxy\":{\"service\":\"gw\",\"mode\":\"gateway\"}}",
                 false, WF_E_INVAL, "gateway: required");
    expect_error("{\"schema\":1,\"version\":1,\"proxy\":{\"service\":\"gw\",\"mode\":\"gateway\"},"
                 "\"gateway\":{\"servers\":[{\"port\":80,\"hosts\":[\"*\"]}]},"
                 "\"virtual_hosts\":[{\"port\":81,\"domains\":[\"*\"],\"routes\":[]}]}",
                 false, WF_E_INVAL, "virtual_hosts[0].port: 81 is not a gateway server port");

    /* Strict mode names unknown fields; lenient mode ignores them. */
    expect_error(HEAD "\"telemetry\":{\"samplng\":5}}", true, WF_E_INVAL,
                 "telemetry.samplng: unknown field");
    expect_error(VH_ROUTES("[{\"route\":[" D1 ",\"wieght\":1}]}]"), true, WF_E_INVAL,
                 "virtual_hosts[1].routes[0].route[0].wieght: unknown field");
    const char *lenient = HEAD "\"telemetry\":{\"samplng\":5},\"future\":{\"x\":[1,2]}}";
    px_snapshot_t *s = NULL;
    char err[256];
    assert_int_equal(px_snapshot_parse(lenient, strlen(lenient), NULL, &s, err, sizeof(err)), 0);
    assert_true(s->telemetry.sampling == 1.0);
    px_snapshot_unref(s);
}

#define AZ(policies) HEAD "\"inbound\":{\"authorization\":{\"policies\":" policies "}}}"

/* inbound.authorization.policies: the compiled structure, and every kind of bad value refused
 * with its path, in lenient mode too (ignoring part of a policy would change its meaning). */
static void test_authorization(void **state)
{
    (void)state;
    const char *doc =
        AZ("[{\"name\":\"default.a\",\"action\":\"DENY\",\"rules\":[{\"from\":[{\"source\":"
           "{\"principals\":[\"cluster.local/ns/x/sa/y\"],\"not_ip_blocks\":[\"10.0.0.0/8\","
           "\"::1\"]}}],\"to\":[{\"operation\":{\"hosts\":[\"*.Example.COM\"],\"ports\":[\"8080\"],"
           "\"paths\":[\"/a/{*}\",\"/b*\"]}}],\"when\":[{\"key\":\"request.headers[X-A]\","
           "\"values\":[\"v\"]},{\"key\":\"destination.port\",\"not_values\":[\"1\"]}]}]},"
           "{\"name\":\"default.b\"},{\"name\":\"default.c\",\"action\":\"AUDIT\","
           "\"rules\":[{}]}]");
    px_snapshot_t *s = NULL;
    char err[512];
    int rc = px_snapshot_parse(doc, strlen(doc), NULL, &s, err, sizeof(err));
    if (rc != 0) {
        fail_msg("%s", err);
    }
    const px_authz_set_t *az = &s->inbound.authz;
    assert_int_equal(az->n_policies, 3);
    assert_int_equal(az->n_allow, 1);
    const px_authz_policy_t *p = &az->policies[0];
    assert_str(p->name, "default.a");
    assert_int_equal(p->action, PX_AZ_DENY);
    assert_int_equal(p->n_rules, 1);
    const px_authz_rule_t *r = &p->rules[0];
    assert_int_equal(r->n_from, 1);
    assert_int_equal(r->from[0].principals.n, 1);
    assert_int_equal(r->from[0].principals.v[0].kind, PX_AZ_EXACT);
    assert_int_equal(r->from[0].not_ip_blocks.n, 2);
    assert_int_equal(r->from[0].not_ip_blocks.v[0].bits, 8);
    assert_int_equal(r->from[0].not_ip_blocks.v[1].family, 6);
    assert_int_equal(r->n_to, 1);
    assert_int_equal(r->to[0].hosts.v[0].kind, PX_AZ_SUFFIX);
    assert_true(wf_str_eq_c(r->to[0].hosts.v[0].v, ".example.com")); /* lower-cased */
    assert_int_equal(r->to[0].ports.v[0], 8080);
    assert_int_equal(r->to[0].paths.n, 2);
    assert_int_equal(r->to[0].paths.v[0].n_segs, 2);
    assert_int_equal(r->to[0].paths.v[1].s.kind, PX_AZ_PREFIX);
    assert_int_equal(r->n_when, 2);
    assert_int_equal(r->when[0].key, PX_AZ_KEY_HEADER);
    assert_str(r->when[0].header, "x-a");
    assert_int_equal(r->when[1].key, PX_AZ_KEY_DEST_PORT);
    assert_int_equal(r->when[1].not_ports.v[0], 1);
    assert_int_equal(az->policies[1].action, PX_AZ_ALLOW); /* Istio's default action */
    assert_int_equal(az->policies[1].n_rules, 0);
    assert_int_equal(az->policies[2].action, PX_AZ_AUDIT);
    assert_int_equal(az->policies[2].n_rules, 1);
    px_snapshot_unref(s);

#define RULE(x) "[{\"name\":\"n.p\",\"rules\":[" x "]}]"
    const char *P = "inbound.authorization.policies[0]";
    static const struct {
        const char *doc, *want;
    } bad[] = {
        {AZ("{}"), "inbound.authorization.policies: must be an array"},
        {AZ("[1]"), "policies[0]: must be an object"},
        {AZ("[{}]"), "policies[0].name: required"},
        {AZ("[{\"name\":\"n.p\",\"action\":\"CUSTOM\"}]"),
         "policies[0].action: CUSTOM needs an external authorizer"},
        {AZ("[{\"name\":\"n.p\",\"action\":\"allow\"}]"), "policies[0].action: must be one of"},
        {AZ("[{\"name\":\"n.p\",\"provider\":{}}]"), "policies[0].provider: unknown field"},
        {AZ(RULE("{\"from\":[{\"source\":{\"ip_blocks\":[\"10.0.0.0/33\"]}}]}")),
         "rules[0].from[0].source.ip_blocks[0]: CIDR prefix length out of range: \"10.0.0.0/33\""},
        {AZ(RULE("{\"from\":[{\"source\":{\"remote_ip_blocks\":[\"300.1.1.1\"]}}]}")),
         "source.remote_ip_blocks[0]: not an IP address or CIDR"},
        {AZ(RULE("{\"from\":[{\"source\":{\"principals\":\"a\"}}]}")),
         "source.principals: must be an array, not a string"},
        {AZ(RULE("{\"from\":[{\"source\":{\"principals\":[7]}}]}")),
         "source.principals[0]: must be a string, not an integer"},
        {AZ(RULE("{\"from\":[{\"source\":{\"principal\":[\"a\"]}}]}")),
         "source.principal: unknown field"},
        {AZ(RULE("{\"from\":[{}]}")), "rules[0].from[0].source: required"},
        {AZ(RULE("{\"to\":[{\"operation\":{\"paths\":[\"/a/{**}/b/{*}\"]}}]}")),
         "operation.paths[0]: {**} must be the last operator"},
        {AZ(RULE("{\"to\":[{\"operation\":{\"not_paths\":[\"/a{*}\"]}}]}")),
         "operation.not_paths[0]: a path template operator must be a whole path segment"},
        {AZ(RULE("{\"to\":[{\"operation\":{\"paths\":[\"/{id}\"]}}]}")),
         "only {*} and {**} are path template operators"},
        {AZ(RULE("{\"to\":[{\"operation\":{\"ports\":[\"http\"]}}]}")),
         "operation.ports[0]: must be a port number"},
        {AZ(RULE("{\"to\":[{\"operation\":{\"ports\":[8080]}}]}")),
         "operation.ports[0]: must be a string"},
        {AZ(RULE("{\"when\":[{\"key\":\"source.ipp\",\"values\":[\"a\"]}]}")),
         "rules[0].when[0].key: unknown condition key"},
        {AZ(RULE("{\"when\":[{\"key\":\"source.ip\",\"values\":[\"a\"]}]}")),
         "rules[0].when[0].values[0]: not an IP address"},
        {AZ(RULE("{\"when\":[{\"key\":\"destination.port\",\"not_values\":[\"-1\"]}]}")),
         "when[0].not_values[0]: must be a port number"},
        {AZ(RULE("{\"when\":[{\"key\":\"request.headers[a]\"}]}")),
         "when[0]: a condition needs values or not_values"},
        {AZ(RULE("{\"when\":[{\"values\":[\"a\"]}]}")), "when[0].key: required"},
        {AZ(RULE("{\"whenever\":[]}")), "rules[0].whenever: unknown field"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect_error(bad[i].doc, false, WF_E_INVAL, bad[i].want);
    }
    expect_error(AZ(RULE("{\"from\":[{\"source\":{\"ip_blocks\":[\"::/129\"]}}]}")), false,
                 WF_E_INVAL, P);

    /* Huge lists hit the per-array limit with the path. */
    px_snapshot_opts_t o;
    px_snapshot_opts_default(&o);
    o.limits.max_items = 4;
    doc = AZ(RULE("{\"to\":[{\"operation\":{\"methods\":[\"A\",\"B\",\"C\",\"D\",\"E\"]}}]}"));
    assert_int_equal(px_snapshot_parse(doc, strlen(doc), &o, &s, err, sizeof(err)), WF_E_LIMIT);
    assert_non_null(
        strstr(err, "policies[0].rules[0].to[0].operation.methods: more than 4 entries"));
    size_t cap = 1 << 20, len = 0;
    char *big = wf_malloc(cap);
    len += (size_t)snprintf(big + len, cap - len, AZ("["));
    len -= 3; /* drop the closing "}}}" of AZ: policies go on */
    for (int i = 0; i < 10001; i++) {
        len += (size_t)snprintf(big + len, cap - len, "%s{\"name\":\"n.p%d\"}", i ? "," : "", i);
    }
    len += (size_t)snprintf(big + len, cap - len, "]}}}");
    assert_int_equal(px_snapshot_parse(big, len, NULL, &s, err, sizeof(err)), WF_E_LIMIT);
    assert_non_null(strstr(err, "inbound.authorization.policies: more than 10000 entries"));
    wf_free(big);
}

static void test_limits(void **state)
{
    (void)state;
    px_snapshot_opts_t o;
    px_snapshot_opts_default(&o);
    char err[256];
    px_snapshot_t *s = NULL;

    /* Input bytes. */
    o.limits.max_bytes = 64;
    const char *doc = HEAD "\"telemetry\":{\"collector_url\":\"http://127.0.0.1:4318/v1/traces\"}}";
    assert_int_equal(px_snapshot_parse(doc, strlen(doc), &o, &s, err, sizeof(err)), WF_E_LIMIT);
    assert_null(s);
    assert_non_null(strstr(err, "larger than 64 bytes"));

    /* Items per array. */
    px_snapshot_opts_default(&o);
    o.limits.max_items = 3;
    doc = HEAD "\"inbound\":{\"ports\":[{\"port\":1},{\"port\":2},{\"port\":3},{\"port\":4}]}}";
    assert_int_equal(px_snapshot_parse(doc, strlen(doc), &o, &s, err, sizeof(err)), WF_E_LIMIT);
    assert_non_null(strstr(err, "inbound.ports: more than 3 entries"));

    /* String length. */
    px_snapshot_opts_default(&o);
    o.limits.max_string = 12;
    doc = HEAD "\"telemetry\":{\"collector_url\":\"http://example\"}}";
    assert_int_equal(px_snapshot_parse(doc, strlen(doc), &o, &s, err, sizeof(err)), WF_E_LIMIT);
    assert_non_null(strstr(err, "telemetry.collector_url: longer than 12 bytes"));

    /* Regex length. */
    px_snapshot_opts_default(&o);
    o.limits.max_regex = 4;
    doc = VH_ROUTES("[{\"route\":[" D1 "}],\"match\":[{\"uri\":{\"regex\":\"/abcdef\"}}]}]");
    assert_int_equal(px_snapshot_parse(doc, strlen(doc), &o, &s, err, sizeof(err)), WF_E_LIMIT);
    assert_non_null(strstr(err, "uri.regex: regex longer than 4 bytes"));

    /* Total parsed structures: many small clusters within every per-item limit. */
    px_snapshot_opts_default(&o);
    o.limits.max_arena = 64 * 1024;
    size_t cap = 1 << 20, len = 0;
    char *big = wf_malloc(cap);
    len += (size_t)snprintf(big + len, cap - len, HEAD "\"clusters\":[");
    for (int i = 0; i < 2000; i++) {
        len += (size_t)snprintf(big + len, cap - len, "%s{\"host\":\"svc%d\",\"port\":80}",
                                i ? "," : "", i);
    }
    len += (size_t)snprintf(big + len, cap - len, "]}");
    assert_int_equal(px_snapshot_parse(big, len, &o, &s, err, sizeof(err)), WF_E_LIMIT);
    assert_null(s);
    assert_non_null(strstr(err, "exceeds 65536 bytes of parsed structures"));
    /* The same document within the default limits parses. */
    assert_int_equal(px_snapshot_parse(big, len, NULL, &s, err, sizeof(err)), 0);
    assert_int_equal(s->n_clusters, 2000);
    px_snapshot_unref(s);
    wf_free(big);

    /* Deep nesting is refused by the JSON parser, not the stack. */
    char *deep = wf_malloc(200000);
    memset(deep, '[', 100000);
    memset(deep + 100000, ']', 100000);
    assert_int_equal(px_snapshot_parse(deep, 200000, NULL, &s, err, sizeof(err)), WF_E_INVAL);
    wf_free(deep);

    /* A file that does not exist. */
    assert_true(px_snapshot_load("/nonexistent/snap.json", NULL, &s, NULL, err, sizeof(err)) < 0);
    assert_null(s);
}

static void test_refcount(void **state)
{
    (void)state;
    px_snapshot_t *s = load_example("productpage-reviews-80-20.json");
    assert_int_equal(atomic_load(&s->refs), 1);
    assert_ptr_equal(px_snapshot_ref(s), s);
    assert_int_equal(atomic_load(&s->refs), 2);
    px_snapshot_unref(s);
    assert_int_equal(atomic_load(&s->refs), 1);
    /* Still readable: the last reference has not dropped. */
    assert_int_equal(s->version, 42);
    px_snapshot_unref(s); /* frees; ASan reports a leak or double free if wrong */
    px_snapshot_unref(NULL);
}

/* Readers on several threads take and drop references while the installer swaps snapshots
 * (the proxy's pattern): every reader sees a whole snapshot, and each one is freed exactly once
 * (ASan reports a use after free or a leak otherwise). */
typedef struct {
    px_snapshot_t *_Atomic *slot;
    pthread_mutex_t *mu;
    uint64_t seen;
} reader_t;

static void *reader_main(void *arg)
{
    reader_t *r = arg;
    for (int i = 0; i < 20000; i++) {
        /* The mutex stands in for the proxy's swap protocol (RCU-like): take a reference
         * under it, use the snapshot outside it. */
        pthread_mutex_lock(r->mu);
        px_snapshot_t *s = px_snapshot_ref(atomic_load(r->slot));
        pthread_mutex_unlock(r->mu);
        r->seen += s->n_clusters == 6 && s->version == 42;
        px_snapshot_unref(s);
    }
    return NULL;
}

static void test_refcount_threads(void **state)
{
    (void)state;
    px_snapshot_t *_Atomic slot = load_example("productpage-reviews-80-20.json");
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    reader_t readers[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        readers[i] = (reader_t){&slot, &mu, 0};
        assert_int_equal(pthread_create(&th[i], NULL, reader_main, &readers[i]), 0);
    }
    for (int i = 0; i < 50; i++) {
        px_snapshot_t *fresh = load_example("productpage-reviews-80-20.json");
        pthread_mutex_lock(&mu);
        px_snapshot_t *old = atomic_exchange(&slot, fresh);
        pthread_mutex_unlock(&mu);
        px_snapshot_unref(old);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(readers[i].seen, 20000);
    }
    assert_int_equal(atomic_load(&atomic_load(&slot)->refs), 1);
    px_snapshot_unref(atomic_load(&slot));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_productpage_80_20),
        cmocka_unit_test(test_ratings_delay),
        cmocka_unit_test(test_gateway),
        cmocka_unit_test(test_hand_written_defaults),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_authorization),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_refcount),
        cmocka_unit_test(test_refcount_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
