/*
 * test_cp_analyze.c - the cross-resource checks of cp_analyze.h on configurations built from
 * YAML and registered workloads: each check fires on a crafted bad configuration (with its
 * code, level, resource and field path) and stays quiet on the corrected one; bookinfo's
 * reference files with bookinfo's workloads give no error or warning; the order and the JSON
 * and text renderings are fixed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cp_analyze.h"
#include "wf_alloc.h"
#include "wt_util.h"

/* Add every document of a YAML stream to c (Kubernetes kinds are skipped). */
static void add_yaml(cp_config_t *c, const char *text)
{
    cp_err_t err;
    if (cp_config_add_yaml(c, text, strlen(text), NULL, true, &err) != 0) {
        fail_msg("%s", err.msg);
    }
}

/* Register a workload; labels is "k=v,k=v" or NULL. */
static void add_wl(cp_config_t *c, const char *service, const char *ns, const char *version,
                   const char *labels)
{
    cp_label_t l[8];
    char buf[256], id[128];
    size_t nl = 0;
    if (labels != NULL) {
        snprintf(buf, sizeof(buf), "%s", labels);
        for (char *save = NULL, *kv = strtok_r(buf, ",", &save); kv != NULL;
             kv = strtok_r(NULL, ",", &save)) {
            char *eq = strchr(kv, '=');
            assert_non_null(eq);
            *eq = '\0';
            l[nl].name = kv;
            l[nl].value = eq + 1;
            nl++;
        }
    }
    snprintf(id, sizeof(id), "%s%s%s.%s", service, version[0] ? "-" : "", version, ns);
    uint16_t port = 9080;
    cp_workload_t w = {.id = id,
                       .service = (char *)service,
                       .ns = (char *)ns,
                       .version = (char *)version,
                       .address = "10.0.0.1",
                       .labels = l,
                       .nlabels = nl,
                       .ports = &port,
                       .nports = 1};
    cp_config_add_workload(c, &w);
}

typedef struct {
    cp_finding_t *f;
    size_t n;
} res_t;

static res_t run_opts(const cp_config_t *c, const cp_analyze_opts_t *o)
{
    res_t r;
    assert_int_equal(o ? cp_analyze_opts(c, o, &r.f, &r.n) : cp_analyze(c, &r.f, &r.n), 0);
    return r;
}

static res_t run(const cp_config_t *c)
{
    return run_opts(c, NULL);
}

static void dump(const res_t *r)
{
    char *t = cp_findings_text(r->f, r->n);
    fprintf(stderr, "%zu findings:\n%s", r->n, t);
    wf_free(t);
}

/* The one finding with code on resource name (the test fails unless exactly one). */
static const cp_finding_t *one(const res_t *r, const char *code, const char *name)
{
    const cp_finding_t *hit = NULL;
    size_t k = 0;
    for (size_t i = 0; i < r->n; i++) {
        if (strcmp(r->f[i].code, code) == 0 && strcmp(r->f[i].name, name) == 0) {
            hit = &r->f[i];
            k++;
        }
    }
    if (k != 1) {
        dump(r);
        fail_msg("%zu findings %s on %s, 1 expected", k, code, name);
    }
    return hit;
}

static size_t count(const res_t *r, const char *code)
{
    size_t k = 0;
    for (size_t i = 0; i < r->n; i++) {
        k += strcmp(r->f[i].code, code) == 0;
    }
    return k;
}

static void expect(const res_t *r, const char *code, const char *name, cp_level_t level,
                   cp_kind_t kind, const char *ns, const char *path)
{
    const cp_finding_t *f = one(r, code, name);
    assert_string_equal(cp_level_name(f->level), cp_level_name(level));
    assert_int_equal(f->kind, kind);
    assert_string_equal(f->ns, ns);
    assert_string_equal(f->path, path);
}

static void expect_none(const res_t *r)
{
    if (r->n != 0) {
        dump(r);
        fail_msg("no findings expected");
    }
}

static void done(cp_config_t *c, res_t *r)
{
    cp_findings_free(r->f, r->n);
    r->f = NULL;
    r->n = 0;
    cp_config_free(c);
}

#define DR_REVIEWS                                                                                 \
    "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\n"       \
    "spec:\n  host: reviews\n  subsets:\n  - {name: v1, labels: {version: v1}}\n"                  \
    "  - {name: v2, labels: {version: v2}}\n"

#define VS_REVIEWS(subset)                                                                         \
    "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\n"        \
    "spec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, "          \
    "subset: " subset "}\n"

static cp_config_t *reviews_world(void)
{
    cp_config_t *c = cp_config_new();
    add_wl(c, "reviews", "default", "v1", NULL);
    add_wl(c, "reviews", "default", "v2", NULL);
    return c;
}

/* ---- VirtualService ---- */

static void test_host_not_found(void **state)
{
    (void)state;
    cp_config_t *c = reviews_world();
    add_yaml(c, "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
                "metadata: {name: r, namespace: default}\n"
                "spec:\n  hosts: [reviews]\n  http:\n  - route:\n"
                "    - {destination: {host: reviews}, weight: 50}\n"
                "    - {destination: {host: reveiws}, weight: 50}\n"
                "  tcp:\n  - route:\n    - destination: {host: nowhere.example.com}\n");
    res_t r = run(c);
    assert_int_equal(count(&r, "KIA1101"), 2);
    assert_int_equal(r.n, 2);
    /* sorted by path: http before tcp */
    assert_string_equal(r.f[0].path, "spec.http[0].route[1].destination.host");
    assert_string_equal(r.f[0].level == CP_LEVEL_ERROR ? "error" : "?", "error");
    assert_non_null(strstr(r.f[0].message, "reveiws.default.svc.cluster.local"));
    assert_string_equal(r.f[1].path, "spec.tcp[0].route[0].destination.host");
    done(c, &r);

    /* Negative: the same names in every accepted spelling, and a ServiceEntry. */
    c = reviews_world();
    add_wl(c, "ratings", "prod", "v1", NULL);
    add_yaml(c, "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
                "metadata: {name: ext, namespace: other}\n"
                "spec: {hosts: [nowhere.example.com, '*.wild.example.com']}\n"
                "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
                "metadata: {name: r}\n"
                "spec:\n  hosts: [reviews]\n  http:\n"
                "  - route: [{destination: {host: reviews}}]\n"
                "  - route: [{destination: {host: reviews.default}}]\n"
                "  - route: [{destination: {host: ratings.prod.svc}}]\n"
                "  - route: [{destination: {host: ratings.prod.svc.cluster.local}}]\n"
                "  - route: [{destination: {host: ratings.prod}}]\n"
                "  - route: [{destination: {host: api.wild.example.com}}]\n"
                "  tcp:\n  - route:\n    - destination: {host: nowhere.example.com}\n");
    r = run(c);
    expect_none(&r);
    done(c, &r);
}

static void test_subset_not_found(void **state)
{
    (void)state;
    cp_config_t *c = reviews_world();
    add_yaml(c, DR_REVIEWS "---\n" VS_REVIEWS("v3"));
    res_t r = run(c);
    expect(&r, "KIA1107", "reviews", CP_LEVEL_WARNING, CP_KIND_VIRTUAL_SERVICE, "default",
           "spec.http[0].route[0].destination.subset");
    assert_int_equal(r.n, 1);
    done(c, &r);

    /* A DestinationRule of another namespace naming the host by FQDN defines it too. */
    c = reviews_world();
    add_yaml(c, VS_REVIEWS("v2") "---\napiVersion: networking.istio.io/v1\n"
                                 "kind: DestinationRule\nmetadata: {name: rv, namespace: ops}\n"
                                 "spec:\n  host: reviews.default.svc.cluster.local\n"
                                 "  subsets: [{name: v2, labels: {version: v2}}]\n");
    r = run(c);
    expect_none(&r);
    done(c, &r);

    /* So does a wildcard DestinationRule holding the host. */
    c = reviews_world();
    add_yaml(c, VS_REVIEWS("v2") "---\napiVersion: networking.istio.io/v1\n"
                                 "kind: DestinationRule\nmetadata: {name: all, namespace: ops}\n"
                                 "spec:\n  host: '*.svc.cluster.local'\n"
                                 "  subsets: [{name: v2, labels: {version: v2}}]\n");
    r = run(c);
    expect_none(&r);
    done(c, &r);

    /* ... and a subset of the same name for another host does not. */
    c = reviews_world();
    add_wl(c, "ratings", "default", "v2", NULL);
    add_yaml(c, VS_REVIEWS("v2") "---\napiVersion: networking.istio.io/v1\n"
                                 "kind: DestinationRule\nmetadata: {name: ratings}\n"
                                 "spec:\n  host: ratings\n"
                                 "  subsets: [{name: v2, labels: {version: v2}}]\n");
    r = run(c);
    expect(&r, "KIA1107", "reviews", CP_LEVEL_WARNING, CP_KIND_VIRTUAL_SERVICE, "default",
           "spec.http[0].route[0].destination.subset");
    done(c, &r);
}

static void test_single_weight(void **state)
{
    (void)state;
    cp_config_t *c = reviews_world();
    add_yaml(c, "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\n"
                "spec:\n  hosts: [reviews]\n  http:\n"
                "  - route:\n    - {destination: {host: reviews}, weight: 100}\n"
                "  - route:\n    - {destination: {host: reviews}, weight: 40}\n"
                "  - route:\n    - {destination: {host: reviews}}\n");
    res_t r = run(c);
    expect(&r, "KIA1104", "r", CP_LEVEL_WARNING, CP_KIND_VIRTUAL_SERVICE, "default",
           "spec.http[1].route[0].weight");
    assert_int_equal(r.n, 1);
    assert_non_null(strstr(r.f[0].message, "weight 40"));
    done(c, &r);
}

static void test_repeated_subset(void **state)
{
    (void)state;
    cp_config_t *c = reviews_world();
    add_yaml(c,
             DR_REVIEWS "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
                        "metadata: {name: r}\n"
                        "spec:\n  hosts: [reviews]\n  http:\n  - route:\n"
                        "    - {destination: {host: reviews, subset: v1}, weight: 50}\n"
                        "    - {destination: {host: reviews, subset: v2}, weight: 25}\n"
                        "    - {destination: {host: reviews.default, subset: v1}, weight: 25}\n");
    res_t r = run(c);
    assert_int_equal(count(&r, "KIA1105"), 2);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.f[0].path, "spec.http[0].route[0].destination");
    assert_string_equal(r.f[1].path, "spec.http[0].route[2].destination");
    done(c, &r);
}

#define GW_YAML(name, ns)                                                                          \
    "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: " name ", namespace: " ns \
    "}\n"                                                                                          \
    "spec:\n  selector: {istio: ingressgateway}\n"                                                 \
    "  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}]\n"

static void test_gateway_not_found(void **state)
{
    (void)state;
    cp_config_t *c = reviews_world();
    add_wl(c, "ingress", "istio-system", "", "istio=ingressgateway");
    add_yaml(
        c, GW_YAML(
               "gw",
               "istio-system") "---\n"
                               "apiVersion: networking.istio.io/v1\nkind: "
                               "VirtualService\nmetadata: {name: r}\n"
                               "spec:\n  hosts: ['*']\n"
                               "  gateways: [mesh, istio-system/gw, gw, missing, gw.istio-system]\n"
                               "  http:\n  - match: [{gateways: [istio-system/nope]}]\n"
                               "    route: [{destination: {host: reviews}}]\n");
    res_t r = run(c);
    /* "gw" alone is looked up in the VirtualService's own namespace. */
    assert_int_equal(count(&r, "KIA1102"), 3);
    assert_int_equal(count(&r, "KIA1108"), 1);
    assert_int_equal(r.n, 4);
    assert_string_equal(r.f[0].code, "KIA1102");
    assert_string_equal(r.f[0].path, "spec.gateways[2]");
    assert_string_equal(r.f[1].path, "spec.gateways[3]");
    assert_string_equal(r.f[2].code, "KIA1108");
    assert_string_equal(r.f[2].path, "spec.gateways[4]");
    assert_string_equal(cp_level_name(r.f[2].level), "info");
    assert_string_equal(r.f[3].path, "spec.http[0].match[0].gateways[0]");
    assert_non_null(strstr(r.f[3].message, "no Gateway nope in namespace istio-system"));
    done(c, &r);

    c = reviews_world();
    add_wl(c, "ingress", "istio-system", "", "istio=ingressgateway");
    add_yaml(c,
             GW_YAML("gw", "istio-system") "---\n" GW_YAML(
                 "gw", "default") "---\n"
                                  "apiVersion: networking.istio.io/v1\nkind: "
                                  "VirtualService\nmetadata: {name: r}\n"
                                  "spec:\n  hosts: ['*']\n  gateways: [mesh, istio-system/gw, gw]\n"
                                  "  http:\n  - match: [{gateways: [istio-system/gw]}]\n"
                                  "    route: [{destination: {host: reviews}}]\n");
    r = run(c);
    expect_none(&r);
    done(c, &r);
}

#define VS_HOST(name, ns, host, gws)                                                               \
    "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: " name             \
    ", namespace: " ns "}\n"                                                                       \
    "spec:\n  hosts: [" host "]\n" gws "  http:\n  - route: [{destination: {host: "                \
    "reviews.default.svc.cluster.local}}]\n"

static void test_two_vs_one_host(void **state)
{
    (void)state;
    cp_config_t *c = reviews_world();
    add_yaml(c, VS_HOST("a", "default", "reviews",
                        "") "---\n" VS_HOST("b", "ops", "reviews.default.svc.cluster.local",
                                            "") "---\n" VS_HOST("c", "default", "ratings", ""));
    add_wl(c, "ratings", "default", "v1", NULL);
    res_t r = run(c);
    expect(&r, "KIA1106", "a", CP_LEVEL_WARNING, CP_KIND_VIRTUAL_SERVICE, "default", "spec.hosts");
    expect(&r, "KIA1106", "b", CP_LEVEL_WARNING, CP_KIND_VIRTUAL_SERVICE, "ops", "spec.hosts");
    assert_non_null(strstr(one(&r, "KIA1106", "a")->message, "ops/b"));
    assert_int_equal(r.n, 2);
    done(c, &r);

    /* The same host on different gateways is fine; a namespace's "*" clashes with its hosts. */
    c = reviews_world();
    add_wl(c, "ingress", "default", "", "istio=ingressgateway");
    add_yaml(c, GW_YAML("g1", "default") "---\n" GW_YAML("g2", "default") "---\n" VS_HOST(
                    "a", "default", "reviews",
                    "  gateways: [g1]\n") "---\n" VS_HOST("b", "default", "reviews",
                                                          "  gateways: [default/g2]\n"));
    r = run(c);
    expect_none(&r);
    done(c, &r);

    c = reviews_world();
    add_yaml(c, VS_HOST("a", "default", "reviews", "") "---\n" VS_HOST(
                    "star", "default", "'*.default.svc.cluster.local'", ""));
    r = run(c);
    assert_int_equal(count(&r, "KIA1106"), 2);
    one(&r, "KIA1106", "star");
    done(c, &r);
}

/* ---- DestinationRule ---- */

static void test_dr_host_unknown(void **state)
{
    (void)state;
    cp_config_t *c = reviews_world();
    add_yaml(c, "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
                "metadata: {name: ghost}\nspec:\n  host: ghost\n"
                "  subsets: [{name: v1, labels: {version: v1}}]\n");
    res_t r = run(c);
    expect(&r, "KIA0202", "ghost", CP_LEVEL_ERROR, CP_KIND_DESTINATION_RULE, "default",
           "spec.host");
    assert_int_equal(r.n, 1); /* no subset check on an unknown host */
    done(c, &r);

    /* Wildcards are accepted, as Kiali does; so is a ServiceEntry host. */
    c = reviews_world();
    add_yaml(c, "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
                "metadata: {name: all}\nspec:\n  host: '*.example.com'\n"
                "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
                "metadata: {name: db}\nspec:\n  hosts: [db.example.org]\n"
                "  endpoints: [{address: 10.1.1.1, labels: {role: primary}}]\n"
                "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
                "metadata: {name: db}\nspec:\n  host: db.example.org\n"
                "  subsets: [{name: p, labels: {role: primary}}]\n");
    r = run(c);
    expect_none(&r);
    done(c, &r);
}

static void test_dr_subset_no_workload(void **state)
{
    (void)state;
    cp_config_t *c = reviews_world();
    add_yaml(c, "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
                "metadata: {name: reviews}\nspec:\n  host: reviews\n  subsets:\n"
                "  - {name: v1, labels: {version: v1}}\n"
                "  - {name: v3, labels: {version: v3}}\n"
                "  - {name: v4, labels: {version: v4}}\n"
                "  - {name: canary, labels: {track: canary}}\n"
                "---\n" VS_REVIEWS("v3"));
    add_wl(c, "reviews", "default", "v9", "track=canary");
    res_t r = run(c);
    /* v3 is routed to: an error; v4 is not: Kiali's "Unknown" (info). */
    assert_int_equal(count(&r, "KIA0203"), 2);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.f[0].path, "spec.subsets[1]");
    assert_string_equal(cp_level_name(r.f[0].level), "error");
    assert_string_equal(r.f[1].path, "spec.subsets[2]");
    assert_string_equal(cp_level_name(r.f[1].level), "info");
    done(c, &r);

    /* A workload of another service with the labels does not count. */
    c = cp_config_new();
    add_wl(c, "reviews", "default", "v1", NULL);
    add_wl(c, "ratings", "default", "v2", NULL);
    add_yaml(c, DR_REVIEWS);
    r = run(c);
    expect(&r, "KIA0203", "reviews", CP_LEVEL_INFO, CP_KIND_DESTINATION_RULE, "default",
           "spec.subsets[1]");
    done(c, &r);

    /* ServiceEntry endpoints carry labels too. */
    c = cp_config_new();
    add_yaml(c, "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
                "metadata: {name: db}\nspec:\n  hosts: [db.example.org]\n"
                "  endpoints: [{address: 10.1.1.1, labels: {role: primary}}]\n"
                "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
                "metadata: {name: db}\nspec:\n  host: db.example.org\n"
                "  subsets: [{name: r, labels: {role: replica}}]\n");
    r = run(c);
    expect(&r, "KIA0203", "db", CP_LEVEL_INFO, CP_KIND_DESTINATION_RULE, "default",
           "spec.subsets[0]");
    done(c, &r);
}

static void test_dr_subset_no_labels(void **state)
{
    (void)state;
    cp_config_t *c = reviews_world();
    add_yaml(c, "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
                "metadata: {name: reviews}\nspec:\n  host: reviews\n  subsets: [{name: all}]\n");
    res_t r = run(c);
    expect(&r, "KIA0209", "reviews", CP_LEVEL_WARNING, CP_KIND_DESTINATION_RULE, "default",
           "spec.subsets[0]");
    done(c, &r);

    /* Next to a subset that selects workloads, it is only information. */
    c = reviews_world();
    add_yaml(c, "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
                "metadata: {name: reviews}\nspec:\n  host: reviews\n"
                "  subsets: [{name: all}, {name: v1, labels: {version: v1}}]\n");
    r = run(c);
    expect(&r, "KIA0209", "reviews", CP_LEVEL_INFO, CP_KIND_DESTINATION_RULE, "default",
           "spec.subsets[0]");
    assert_int_equal(r.n, 1);
    done(c, &r);
}

static void test_dr_multi_match(void **state)
{
    (void)state;
    cp_config_t *c = reviews_world();
    add_yaml(c, DR_REVIEWS "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
                           "metadata: {name: reviews-v2, namespace: ops}\nspec:\n"
                           "  host: reviews.default.svc.cluster.local\n"
                           "  subsets: [{name: v2, labels: {version: v2}}]\n");
    res_t r = run(c);
    expect(&r, "KIA0201", "reviews", CP_LEVEL_WARNING, CP_KIND_DESTINATION_RULE, "default",
           "spec.host");
    expect(&r, "KIA0201", "reviews-v2", CP_LEVEL_WARNING, CP_KIND_DESTINATION_RULE, "ops",
           "spec.host");
    assert_int_equal(r.n, 2);
    done(c, &r);

    /* Different subsets of one host, and a namespace-wide mTLS rule, do not collide. */
    c = reviews_world();
    add_yaml(c, DR_REVIEWS "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
                           "metadata: {name: reviews-v3}\nspec:\n  host: reviews\n"
                           "  subsets: [{name: v3, labels: {version: v1}}]\n"
                           "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
                           "metadata: {name: ns-mtls}\nspec:\n"
                           "  host: '*.default.svc.cluster.local'\n"
                           "  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}\n");
    r = run(c);
    expect_none(&r);
    done(c, &r);

    /* A wildcard host overlaps the hosts it holds; two identical wildcards overlap too. */
    c = reviews_world();
    add_yaml(c, DR_REVIEWS "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
                           "metadata: {name: wild-a}\nspec:\n"
                           "  host: '*.default.svc.cluster.local'\n"
                           "  subsets: [{name: v2, labels: {version: v2}}]\n"
                           "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
                           "metadata: {name: wild-b, namespace: ops}\nspec:\n"
                           "  host: '*.default.svc.cluster.local'\n"
                           "  subsets: [{name: v9, labels: {version: v9}}]\n"
                           "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
                           "metadata: {name: wild-c, namespace: ops}\nspec:\n"
                           "  host: '*.default.svc.cluster.local'\n"
                           "  subsets: [{name: v9, labels: {version: v9}}]\n"
                           "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
                           "metadata: {name: other}\nspec:\n"
                           "  host: '*.example.com'\n"
                           "  subsets: [{name: v2, labels: {version: v2}}]\n");
    r = run(c);
    assert_int_equal(count(&r, "KIA0201"), 4);
    one(&r, "KIA0201", "reviews");
    one(&r, "KIA0201", "wild-a");
    one(&r, "KIA0201", "wild-b");
    one(&r, "KIA0201", "wild-c");
    assert_int_equal(r.n, 4);
    done(c, &r);

    /* A rule without subsets covers them all. */
    c = reviews_world();
    add_yaml(c, DR_REVIEWS "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
                           "metadata: {name: reviews-lb}\nspec:\n  host: reviews\n"
                           "  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n");
    r = run(c);
    assert_int_equal(count(&r, "KIA0201"), 2);
    done(c, &r);
}

/* ---- mTLS ---- */

#define PA(name, ns, mode)                                                                         \
    "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: " name           \
    ", namespace: " ns "}\nspec: {mtls: {mode: " mode "}}\n"

#define DR_NS_TLS(name, ns, mode)                                                                  \
    "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: " name            \
    ", namespace: " ns "}\nspec:\n  host: '*." ns ".svc.cluster.local'\n"                          \
    "  trafficPolicy: {tls: {mode: " mode "}}\n"

#define DR_MESH_TLS(mode)                                                                          \
    "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: mesh, "           \
    "namespace: istio-system}\nspec:\n  host: '*.local'\n  trafficPolicy: {tls: {mode: " mode      \
    "}}\n"

static void test_strict_without_dr(void **state)
{
    (void)state;
    cp_analyze_opts_t manual = {.auto_mtls = false};
    cp_config_t *c = reviews_world();
    add_yaml(c, PA("strict", "default", "STRICT") "---\n" PA("mesh", "istio-system", "STRICT"));
    res_t r = run_opts(c, &manual);
    expect(&r, "KIA0501", "strict", CP_LEVEL_ERROR, CP_KIND_PEER_AUTHENTICATION, "default",
           "spec.mtls");
    expect(&r, "KIA0401", "mesh", CP_LEVEL_ERROR, CP_KIND_PEER_AUTHENTICATION, "istio-system",
           "spec.mtls");
    assert_int_equal(r.n, 2);
    cp_findings_free(r.f, r.n);
    /* With auto mTLS (weft's default) sidecars already talk mTLS: nothing to say. */
    r = run(c);
    expect_none(&r);
    done(c, &r);

    /* A mesh-wide ISTIO_MUTUAL rule serves both; a namespace-wide one serves its namespace. */
    c = reviews_world();
    add_yaml(c, PA("strict", "default", "STRICT") "---\n" PA(
                    "mesh", "istio-system", "STRICT") "---\n" DR_MESH_TLS("ISTIO_MUTUAL"));
    r = run_opts(c, &manual);
    expect_none(&r);
    done(c, &r);
    c = reviews_world();
    add_yaml(c,
             PA("strict", "default", "STRICT") "---\n" DR_NS_TLS("ns", "default", "ISTIO_MUTUAL"));
    r = run_opts(c, &manual);
    expect_none(&r);
    done(c, &r);
    /* PERMISSIVE needs nothing; a policy with a selector is not namespace-wide. */
    c = reviews_world();
    add_yaml(
        c,
        PA("p", "default",
           "PERMISSIVE") "---\n"
                         "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
                         "metadata: {name: sel}\nspec:\n  selector: {matchLabels: {app: reviews}}\n"
                         "  mtls: {mode: STRICT}\n");
    r = run_opts(c, &manual);
    expect_none(&r);
    done(c, &r);
}

static void test_dr_disables_strict(void **state)
{
    (void)state;
    cp_config_t *c = reviews_world();
    add_yaml(c, PA("strict", "default", "STRICT") "---\n" DR_NS_TLS("off", "default", "DISABLE"));
    res_t r = run(c);
    expect(&r, "KIA0207", "off", CP_LEVEL_ERROR, CP_KIND_DESTINATION_RULE, "default",
           "spec.trafficPolicy.tls.mode");
    assert_int_equal(r.n, 1);
    done(c, &r);

    c = reviews_world();
    add_yaml(c, PA("mesh", "istio-system", "STRICT") "---\n" DR_NS_TLS(
                    "off", "default", "DISABLE") "---\n" DR_MESH_TLS("DISABLE"));
    r = run(c);
    expect(&r, "KIA0208", "off", CP_LEVEL_ERROR, CP_KIND_DESTINATION_RULE, "default",
           "spec.trafficPolicy.tls.mode");
    expect(&r, "KIA0208", "mesh", CP_LEVEL_ERROR, CP_KIND_DESTINATION_RULE, "istio-system",
           "spec.trafficPolicy.tls.mode");
    /* Two rules without subsets whose hosts overlap (*.local holds the namespace's): unlike
     * ISTIO_MUTUAL defaults, DISABLE rules are not exempt from KIA0201, as in Kiali. */
    assert_int_equal(count(&r, "KIA0201"), 2);
    assert_int_equal(r.n, 4);
    done(c, &r);

    /* A PERMISSIVE namespace policy overrides the mesh's STRICT one. */
    c = reviews_world();
    add_yaml(c,
             PA("mesh", "istio-system", "STRICT") "---\n" PA(
                 "perm", "default", "PERMISSIVE") "---\n" DR_NS_TLS("off", "default", "DISABLE"));
    r = run(c);
    expect_none(&r);
    done(c, &r);
}

static void test_mtls_dr_without_policy(void **state)
{
    (void)state;
    cp_analyze_opts_t manual = {.auto_mtls = false};
    cp_config_t *c = reviews_world();
    add_yaml(c, DR_NS_TLS("ns", "default", "ISTIO_MUTUAL") "---\n" DR_MESH_TLS("ISTIO_MUTUAL"));
    res_t r = run_opts(c, &manual);
    expect(&r, "KIA0206", "ns", CP_LEVEL_ERROR, CP_KIND_DESTINATION_RULE, "default",
           "spec.trafficPolicy.tls.mode");
    expect(&r, "KIA0205", "mesh", CP_LEVEL_ERROR, CP_KIND_DESTINATION_RULE, "istio-system",
           "spec.trafficPolicy.tls.mode");
    assert_int_equal(r.n, 2);
    cp_findings_free(r.f, r.n);
    r = run(c);
    expect_none(&r);
    done(c, &r);

    c = reviews_world();
    add_yaml(c, DR_NS_TLS("ns", "default", "ISTIO_MUTUAL") "---\n" DR_MESH_TLS(
                    "ISTIO_MUTUAL") "---\n" PA("mesh", "istio-system", "PERMISSIVE"));
    r = run_opts(c, &manual);
    expect_none(&r);
    done(c, &r);
}

/* ---- selectors ---- */

static void test_selectors(void **state)
{
    (void)state;
    cp_config_t *c = reviews_world();
    add_wl(c, "ingress", "istio-system", "", "istio=ingress");
    add_yaml(
        c,
        GW_YAML(
            "gw",
            "istio-system") "---\n"
                            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
                            "metadata: {name: ap}\nspec: {selector: {matchLabels: {app: "
                            "ratings}}}\n"
                            "---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
                            "metadata: {name: pa}\nspec: {selector: {matchLabels: {version: v3}}}\n"
                            "---\napiVersion: networking.istio.io/v1\nkind: Sidecar\n"
                            "metadata: {name: sc, namespace: other}\n"
                            "spec:\n  workloadSelector: {labels: {app: reviews}}\n"
                            "  egress: [{hosts: ['./*']}]\n");
    res_t r = run(c);
    expect(&r, "KIA0302", "gw", CP_LEVEL_WARNING, CP_KIND_GATEWAY, "istio-system", "spec.selector");
    expect(&r, "KIA0004", "ap", CP_LEVEL_WARNING, CP_KIND_AUTHORIZATION_POLICY, "default",
           "spec.selector.matchLabels");
    expect(&r, "KIA0004", "pa", CP_LEVEL_WARNING, CP_KIND_PEER_AUTHENTICATION, "default",
           "spec.selector.matchLabels");
    /* reviews lives in default, not in the Sidecar's namespace */
    expect(&r, "KIA0004", "sc", CP_LEVEL_WARNING, CP_KIND_SIDECAR, "other",
           "spec.workloadSelector.labels");
    assert_int_equal(r.n, 4);
    done(c, &r);

    c = reviews_world();
    add_wl(c, "ingress", "istio-system", "", "istio=ingressgateway");
    add_wl(c, "reviews", "other", "v1", NULL);
    add_yaml(
        c,
        GW_YAML(
            "gw",
            "istio-system") "---\n"
                            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
                            "metadata: {name: ap}\nspec: {selector: {matchLabels: {app: "
                            "reviews}}}\n"
                            "---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
                            "metadata: {name: pa}\nspec: {selector: {matchLabels: {version: v2}}}\n"
                            "---\napiVersion: networking.istio.io/v1\nkind: Sidecar\n"
                            "metadata: {name: sc, namespace: other}\n"
                            "spec:\n  workloadSelector: {labels: {app: reviews}}\n"
                            "  egress: [{hosts: ['./*']}]\n");
    r = run(c);
    expect_none(&r);
    done(c, &r);
}

/* ---- bookinfo ---- */

static bool add_ref(cp_config_t *c, const char *name)
{
    char rel[128];
    snprintf(rel, sizeof(rel), "istio/%s", name);
    char *path = wt_ref_path(rel);
    if (path == NULL) {
        return false;
    }
    char *text = wt_read_file(path, NULL);
    assert_non_null(text);
    add_yaml(c, text);
    wf_free(text);
    wf_free(path);
    return true;
}

static void bookinfo_workloads(cp_config_t *c)
{
    add_wl(c, "productpage", "default", "v1", "app=productpage,version=v1");
    add_wl(c, "details", "default", "v1", "app=details,version=v1");
    add_wl(c, "ratings", "default", "v1", "app=ratings,version=v1");
    add_wl(c, "reviews", "default", "v1", "app=reviews,version=v1");
    add_wl(c, "reviews", "default", "v2", "app=reviews,version=v2");
    add_wl(c, "reviews", "default", "v3", "app=reviews,version=v3");
    add_wl(c, "istio-ingressgateway", "default", "", "istio=ingressgateway");
}

static void test_bookinfo(void **state)
{
    (void)state;
    static const char *const vs_files[] = {
        "virtual-service-all-v1.yaml",
        "virtual-service-reviews-80-20.yaml",
        "virtual-service-reviews-v2-v3.yaml",
        "virtual-service-reviews-jason-v2-v3.yaml",
        "virtual-service-ratings-test-delay.yaml",
    };
    for (size_t v = 0; v < sizeof(vs_files) / sizeof(vs_files[0]); v++) {
        cp_config_t *c = cp_config_new();
        bookinfo_workloads(c);
        if (!add_ref(c, "destination-rule-all.yaml") || !add_ref(c, vs_files[v]) ||
            !add_ref(c, "bookinfo-gateway.yaml")) {
            cp_config_free(c);
            print_message("skipped: reference data not present\n");
            wt_skip();
        }
        res_t r = run(c);
        /* The subsets bookinfo's deployment has no workload for (details v2, ratings v2,
         * v2-mysql, v2-mysql-vm), and no route uses: Kiali's "Unknown", nothing else. */
        size_t info = 0;
        for (size_t i = 0; i < r.n; i++) {
            if (r.f[i].level != CP_LEVEL_INFO || strcmp(r.f[i].code, "KIA0203") != 0) {
                dump(&r);
                fail_msg("%s: unexpected finding %s", vs_files[v], r.f[i].code);
            }
            info++;
        }
        assert_int_equal(info, 4);
        assert_string_equal(r.f[0].name, "details");
        assert_string_equal(r.f[0].path, "spec.subsets[1]");
        done(c, &r);

        /* Every subset deployed: nothing at all. */
        c = cp_config_new();
        bookinfo_workloads(c);
        add_wl(c, "details", "default", "v2", NULL);
        add_wl(c, "ratings", "default", "v2", NULL);
        add_wl(c, "ratings", "default", "v2-mysql", NULL);
        add_wl(c, "ratings", "default", "v2-mysql-vm", NULL);
        assert_true(add_ref(c, "destination-rule-all.yaml"));
        assert_true(add_ref(c, vs_files[v]));
        assert_true(add_ref(c, "bookinfo-gateway.yaml"));
        r = run(c);
        expect_none(&r);
        done(c, &r);
    }

    /* The same VirtualService file twice under other names: every host claimed twice. */
    cp_config_t *c = cp_config_new();
    bookinfo_workloads(c);
    if (!add_ref(c, "destination-rule-all.yaml") || !add_ref(c, "virtual-service-all-v1.yaml")) {
        cp_config_free(c);
        wt_skip();
    }
    add_yaml(c, VS_HOST("reviews-2", "default", "reviews", ""));
    res_t r = run(c);
    assert_int_equal(count(&r, "KIA1106"), 2);
    one(&r, "KIA1106", "reviews");
    one(&r, "KIA1106", "reviews-2");
    done(c, &r);
}

/* ---- order and rendering ---- */

static void test_order_and_render(void **state)
{
    (void)state;
    cp_config_t *c = cp_config_new();
    /* Twelve routes to an unknown host, in two namespaces: numbers sort as numbers. */
    char yaml[4096];
    size_t off = 0;
    for (int ns = 0; ns < 2; ns++) {
        off += (size_t)snprintf(yaml + off, sizeof(yaml) - off,
                                "%sapiVersion: networking.istio.io/v1\nkind: VirtualService\n"
                                "metadata: {name: v, namespace: %s}\nspec:\n  hosts: [x]\n"
                                "  http:\n",
                                ns ? "---\n" : "", ns ? "alpha" : "beta");
        for (int i = 0; i < 12; i++) {
            off += (size_t)snprintf(yaml + off, sizeof(yaml) - off,
                                    "  - route: [{destination: {host: ghost}}]\n");
        }
    }
    add_yaml(c, yaml);
    res_t r = run(c);
    assert_int_equal(r.n, 24);
    for (size_t i = 0; i < 24; i++) {
        char want[64];
        snprintf(want, sizeof(want), "spec.http[%zu].route[0].destination.host", i % 12);
        assert_string_equal(r.f[i].ns, i < 12 ? "alpha" : "beta");
        assert_string_equal(r.f[i].path, want);
    }

    json_t *j = cp_findings_json(r.f, r.n, "beta");
    json_t *msgs = json_object_get(j, "messages");
    assert_int_equal(json_array_size(msgs), 12);
    json_t *m = json_array_get(msgs, 2);
    assert_string_equal(json_string_value(json_object_get(m, "code")), "KIA1101");
    assert_string_equal(json_string_value(json_object_get(m, "level")), "error");
    assert_string_equal(json_string_value(json_object_get(m, "kind")), "VirtualService");
    assert_string_equal(json_string_value(json_object_get(m, "namespace")), "beta");
    assert_string_equal(json_string_value(json_object_get(m, "name")), "v");
    assert_string_equal(json_string_value(json_object_get(m, "path")),
                        "spec.http[2].route[0].destination.host");
    assert_string_equal(json_string_value(json_object_get(m, "message")),
                        "DestinationWeight on route doesn't have a valid service (host not "
                        "found): ghost.beta.svc.cluster.local is not a registered service nor "
                        "declared by a ServiceEntry");
    json_decref(j);
    j = cp_findings_json(r.f, r.n, "nope");
    assert_int_equal(json_array_size(json_object_get(j, "messages")), 0);
    json_decref(j);

    char *t = cp_findings_text(r.f, 1);
    assert_string_equal(t, "Error [KIA1101] (VirtualService alpha/v "
                           "spec.http[0].route[0].destination.host) DestinationWeight on route "
                           "doesn't have a valid service (host not found): "
                           "ghost.alpha.svc.cluster.local is not a registered service nor "
                           "declared by a ServiceEntry\n");
    wf_free(t);
    t = cp_findings_text(NULL, 0);
    assert_string_equal(t, "");
    wf_free(t);
    done(c, &r);

    /* An empty configuration has nothing to say. */
    c = cp_config_new();
    r = run(c);
    assert_null(r.f);
    expect_none(&r);
    done(c, &r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host_not_found),
        cmocka_unit_test(test_subset_not_found),
        cmocka_unit_test(test_single_weight),
        cmocka_unit_test(test_repeated_subset),
        cmocka_unit_test(test_gateway_not_found),
        cmocka_unit_test(test_two_vs_one_host),
        cmocka_unit_test(test_dr_host_unknown),
        cmocka_unit_test(test_dr_subset_no_workload),
        cmocka_unit_test(test_dr_subset_no_labels),
        cmocka_unit_test(test_dr_multi_match),
        cmocka_unit_test(test_strict_without_dr),
        cmocka_unit_test(test_dr_disables_strict),
        cmocka_unit_test(test_mtls_dr_without_policy),
        cmocka_unit_test(test_selectors),
        cmocka_unit_test(test_bookinfo),
        cmocka_unit_test(test_order_and_render),
    };
    return wt_exit_code(cmocka_run_group_tests(tests, NULL, NULL));
}
