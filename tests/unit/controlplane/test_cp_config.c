/*
 * test_cp_config.c - unit tests of the configuration view (controlplane/cp_config.c): stored
 * resources come back parsed and ordered with their generation, live workloads only, a stored
 * row that no longer parses is left out (the rest still load), a registered gateway keeps its
 * mode through the store, and the builders used by tests and tools keep their orders.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cp_config.h"
#include "wf_alloc.h"
#include "wf_err.h"
#include "wt_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VS_DOC(name, host)                                                                         \
    "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"VirtualService\",\"metadata\":{"        \
    "\"name\":\"" name "\",\"namespace\":\"default\"},\"spec\":{\"hosts\":[\"" host "\"],"         \
    "\"http\":[{\"route\":[{\"destination\":{\"host\":\"" host "\"}}]}]}}"

static cp_write_t apply(const char *kind, const char *name, const char *doc)
{
    cp_write_t w = {.op = CP_OP_APPLY,
                    .kind = kind,
                    .ns = "default",
                    .name = name,
                    .api_version = "networking.istio.io/v1",
                    .spec = "{}",
                    .doc = doc};
    return w;
}

static void test_load(void **state)
{
    char *dir = wt_tmpdir("cpcfg");
    cp_store_t *s = NULL;
    cp_registry_t *r = NULL;
    cp_config_t *c = NULL;
    char err[128];
    assert_int_equal(cp_store_open(dir, &s), 0);
    assert_int_equal(cp_registry_open(s, 30000, 1000, &r), 0);

    cp_write_t w[] = {
        apply("VirtualService", "reviews", VS_DOC("reviews", "reviews")),
        apply("VirtualService", "details", VS_DOC("details", "details")),
        /* valid JSON, invalid Istio: a route weight below zero */
        apply("VirtualService", "broken",
              "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"VirtualService\","
              "\"metadata\":{\"name\":\"broken\"},\"spec\":{\"hosts\":[\"x\"],\"http\":[{"
              "\"route\":[{\"destination\":{\"host\":\"x\"},\"weight\":-1}]}]}}"),
        apply("DestinationRule", "reviews",
              "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"DestinationRule\","
              "\"metadata\":{\"name\":\"reviews\"},\"spec\":{\"host\":\"reviews\",\"subsets\":"
              "[{\"name\":\"v1\",\"labels\":{\"version\":\"v1\"}}]}}"),
    };
    assert_int_equal(cp_store_write(s, w, 4, 1000, NULL, NULL), 0);
    /* a second write of reviews with a changed spec: generation 2 */
    cp_write_t again = apply("VirtualService", "reviews", VS_DOC("reviews", "reviews.default"));
    again.spec = "{\"changed\":true}";
    assert_int_equal(cp_store_write(s, &again, 1, 2000, NULL, NULL), 0);

    cp_label_t labels[] = {{"istio", "ingressgateway"}};
    cp_workload_t gw = {.service = "istio-ingressgateway",
                        .ns = "istio-system",
                        .address = "127.0.0.9",
                        .labels = labels,
                        .nlabels = 1,
                        .gateway = true};
    cp_workload_t rv = {
        .service = "reviews", .ns = "default", .version = "v1", .address = "127.0.0.2"};
    assert_int_equal(cp_registry_register(r, &gw, 1000, NULL, err, sizeof(err)), 0);
    assert_int_equal(cp_registry_register(r, &rv, 20000, NULL, err, sizeof(err)), 0);

    /* reopened from the store at 10 s, the gateway (still live) keeps its mode */
    cp_registry_close(r);
    assert_int_equal(cp_registry_open(s, 30000, 10000, &r), 0);
    assert_int_equal(cp_config_load(s, r, 10000, &c), 0);
    assert_int_equal(c->nworkloads, 2);
    assert_string_equal(c->workloads[0].id, "istio-ingressgateway.istio-system");
    assert_true(c->workloads[0].gateway);
    assert_string_equal(c->workloads[0].labels[0].value, "ingressgateway");
    cp_config_free(c);

    /* at 40 s the gateway's lease (from 1 s, 30 s long) has run out; resources as stored */
    assert_int_equal(cp_config_load(s, r, 40000, &c), 0);
    assert_int_equal(c->store_rv, cp_store_rv(s));
    assert_int_equal(c->n[CP_KIND_VIRTUAL_SERVICE], 2); /* "broken" is left out */
    assert_true(wf_str_eq_c(c->res[CP_KIND_VIRTUAL_SERVICE][0]->meta.name, "details"));
    assert_true(wf_str_eq_c(c->res[CP_KIND_VIRTUAL_SERVICE][1]->meta.name, "reviews"));
    assert_int_equal(c->res[CP_KIND_VIRTUAL_SERVICE][0]->meta.generation, 1);
    assert_int_equal(c->res[CP_KIND_VIRTUAL_SERVICE][1]->meta.generation, 2);
    assert_true(wf_str_eq_c(c->res[CP_KIND_VIRTUAL_SERVICE][1]->spec.vs->hosts.items[0],
                            "reviews.default"));
    assert_int_equal(c->n[CP_KIND_DESTINATION_RULE], 1);
    assert_int_equal(c->res[CP_KIND_DESTINATION_RULE][0]->spec.dr->n_subsets, 1);
    assert_int_equal(c->n[CP_KIND_GATEWAY], 0);
    assert_int_equal(c->nworkloads, 1);
    assert_string_equal(c->workloads[0].id, "reviews-v1.default");
    assert_false(c->workloads[0].gateway);
    cp_config_free(c);

    cp_registry_close(r);
    cp_store_close(s);
    wt_rm_rf(dir);
    free(dir);
}

static cp_resource_t *parse(const char *text)
{
    cp_yaml_stream_t *ys = NULL;
    cp_resource_t *res = NULL;
    cp_err_t err;
    memset(&err, 0, sizeof(err));
    assert_int_equal(cp_yaml_parse(text, strlen(text), NULL, &ys, &err), 0);
    assert_int_equal(cp_istio_parse(ys->docs[0], &res, &err), 0);
    cp_yaml_free(ys);
    return res;
}

static void test_builders_keep_order(void **state)
{
    cp_config_t *c = cp_config_new();
    cp_config_add_resource(c, parse(VS_DOC("zeta", "z")));
    cp_config_add_resource(c, parse(VS_DOC("alpha", "a")));
    cp_config_add_resource(c, parse(VS_DOC("mid", "m")));
    cp_workload_t a = {.id = "b.default", .service = "b", .ns = "default", .address = "x"};
    cp_workload_t b = {.id = "a.default", .service = "a", .ns = "default", .address = "y"};
    cp_config_add_workload(c, &a);
    cp_config_add_workload(c, &b);
    assert_int_equal(c->n[CP_KIND_VIRTUAL_SERVICE], 3);
    assert_true(wf_str_eq_c(c->res[CP_KIND_VIRTUAL_SERVICE][0]->meta.name, "alpha"));
    assert_true(wf_str_eq_c(c->res[CP_KIND_VIRTUAL_SERVICE][1]->meta.name, "mid"));
    assert_true(wf_str_eq_c(c->res[CP_KIND_VIRTUAL_SERVICE][2]->meta.name, "zeta"));
    assert_string_equal(c->workloads[0].id, "a.default");
    assert_string_equal(c->workloads[1].address, "x");
    assert_string_equal(c->workloads[1].service_account, "default");
    cp_config_free(c);
    cp_config_free(NULL);
}

static void test_add_yaml_all_or_nothing(void **state)
{
    cp_config_t *c = cp_config_new();
    cp_err_t err;
    const char *k8s = "apiVersion: v1\nkind: Service\nmetadata: {name: x}\n";
    const char *vs = "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
                     "metadata: {name: a}\nspec: {hosts: [a]}\n---\n";
    char text[512];
    /* a Kubernetes kind is skipped when asked, refused otherwise (nothing added) */
    snprintf(text, sizeof(text), "%s%s", k8s, vs);
    assert_int_equal(cp_config_add_yaml(c, text, strlen(text), NULL, false, &err), CP_E_KIND);
    assert_int_equal(c->n[CP_KIND_VIRTUAL_SERVICE], 0);
    assert_int_equal(cp_config_add_yaml(c, text, strlen(text), NULL, true, &err), 0);
    assert_int_equal(c->n[CP_KIND_VIRTUAL_SERVICE], 1);
    /* a valid document before an invalid one is not added either */
    snprintf(text, sizeof(text),
             "%s---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
             "metadata: {name: b}\nspec: {hosts: [b], http: [{timeout: soon}]}\n",
             vs);
    assert_int_equal(cp_config_add_yaml(c, text, strlen(text), NULL, true, &err), CP_E_INVALID);
    assert_non_null(strstr(err.msg, "spec.http[0].timeout"));
    assert_int_equal(c->n[CP_KIND_VIRTUAL_SERVICE], 1);
    /* malformed YAML */
    assert_int_not_equal(cp_config_add_yaml(c, "a: [", 4, NULL, true, &err), 0);
    assert_int_equal(c->n[CP_KIND_VIRTUAL_SERVICE], 1);
    cp_config_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_builders_keep_order),
        cmocka_unit_test(test_add_yaml_all_or_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
