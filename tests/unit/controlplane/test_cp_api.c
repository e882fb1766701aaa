/*
 * test_cp_api.c - unit tests of the control plane's request handling (cp_api_handle, without a
 * socket): methods allowed per path, unknown paths and kinds, server-owned metadata ignored on
 * input, label-only updates keeping the generation, the DELETE precondition, registration
 * defaults, and the request counters in /metrics.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cp_api.h"
#include "cp_registry.h"
#include "cp_store.h"
#include "wf_alloc.h"
#include "wt_util.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define VS "/apis/networking.istio.io/v1/namespaces/default/virtualservices"

typedef struct {
    char *dir;
    cp_store_t *store;
    cp_registry_t *reg;
    cp_api_t *api;
} fx_t;

static int setup(void **state)
{
    fx_t *f = wf_calloc(1, sizeof(*f));
    f->dir = wt_tmpdir("cpapiu");
    assert_int_equal(cp_store_open(f->dir, &f->store), 0);
    assert_int_equal(cp_registry_open(f->store, 30000, 0, &f->reg), 0);
    cp_api_options_t o = {
        .store = f->store, .registry = f->reg, .admin_token = "adm", .bootstrap_token = "boot"};
    assert_int_equal(cp_api_new(&o, &f->api), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    cp_api_free(f->api);
    cp_registry_close(f->reg);
    cp_store_close(f->store);
    wt_rm_rf(f->dir);
    wf_free(f->dir);
    wf_free(f);
    return 0;
}

/* One request as admin (or with token when not NULL); returns the status, *out the parsed
 * JSON body (NULL when it is not JSON) when out is not NULL. */
static unsigned call(fx_t *f, const char *method, const char *path, const char *token,
                     const char *rv, const char *body, json_t **out)
{
    char auth[64];
    snprintf(auth, sizeof(auth), "Bearer %s", token ? token : "adm");
    cp_api_req_t req = {.method = method,
                        .path = path,
                        .authorization = auth,
                        .resource_version = rv,
                        .body = body,
                        .body_len = body ? strlen(body) : 0};
    cp_api_resp_t resp;
    cp_api_handle(f->api, &req, 1700000000000LL, &resp);
    assert_non_null(resp.body);
    if (out != NULL) {
        *out = json_loads(resp.body, 0, NULL);
    }
    free(resp.body);
    return resp.status;
}

static const char *reason(json_t *o)
{
    return json_string_value(json_object_get(o, "reason"));
}

static void test_methods_and_paths(void **state)
{
    fx_t *f = *state;
    json_t *o = NULL;
    assert_int_equal(call(f, "GET", "/v1/register", "boot", NULL, NULL, &o), 405);
    assert_string_equal(reason(o), "MethodNotAllowed");
    json_decref(o);
    assert_int_equal(call(f, "PATCH", VS "/x", NULL, NULL, "{}", &o), 405);
    json_decref(o);
    assert_int_equal(call(f, "POST", VS "/x", NULL, NULL, "{}", &o), 405);
    json_decref(o);
    assert_int_equal(call(f, "PUT", VS, NULL, NULL, "{}", &o), 405);
    json_decref(o);
    assert_int_equal(
        call(f, "POST", "/apis/networking.istio.io/v1/virtualservices", NULL, NULL, "{}", &o), 405);
    json_decref(o);
    /* security.istio.io has no v1alpha3; there is no such group or kind */
    assert_int_equal(call(f, "GET",
                          "/apis/security.istio.io/v1alpha3/namespaces/default/"
                          "authorizationpolicies",
                          NULL, NULL, NULL, &o),
                     404);
    assert_string_equal(reason(o), "NotFound");
    json_decref(o);
    assert_int_equal(
        call(f, "GET", "/apis/apps/v1/namespaces/default/deployments", NULL, NULL, NULL, &o), 404);
    json_decref(o);
    assert_int_equal(
        call(f, "GET", "/apis/networking.istio.io/v1/namespaces/default", NULL, NULL, NULL, &o),
        404);
    json_decref(o);
    assert_int_equal(call(f, "HEAD", "/healthz", NULL, NULL, NULL, NULL), 200);
    assert_int_equal(call(f, "HEAD", VS, NULL, NULL, NULL, NULL), 200);
    assert_int_equal(call(f, "HEAD", VS, "boot", NULL, NULL, NULL), 401);
}

static void test_metadata_and_generation(void **state)
{
    fx_t *f = *state;
    json_t *o = NULL;
    /* Server-owned metadata on a create is ignored, not stored. */
    assert_int_equal(call(f, "POST", VS, NULL, NULL,
                          "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"VirtualService\","
                          "\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"77\",\"generation\":"
                          "9,\"uid\":\"u\"},\"spec\":{\"hosts\":[\"a\"]}}",
                          &o),
                     201);
    json_t *md = json_object_get(o, "metadata");
    assert_string_equal(json_string_value(json_object_get(md, "resourceVersion")), "1");
    assert_int_equal(json_integer_value(json_object_get(md, "generation")), 1);
    assert_null(json_object_get(md, "uid"));
    assert_string_equal(json_string_value(json_object_get(md, "creationTimestamp")),
                        "2023-11-14T22:13:20Z");
    json_decref(o);

    /* A label: a new resourceVersion, the same generation. */
    const char *labelled =
        "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"VirtualService\",\"metadata\":{"
        "\"name\":\"a\",\"labels\":{\"team\":\"x\"}},\"spec\":{\"hosts\":[\"a\"]}}";
    assert_int_equal(call(f, "PUT", VS "/a", NULL, NULL, labelled, &o), 200);
    md = json_object_get(o, "metadata");
    assert_string_equal(json_string_value(json_object_get(md, "resourceVersion")), "2");
    assert_int_equal(json_integer_value(json_object_get(md, "generation")), 1);
    assert_string_equal(json_string_value(json_object_get(json_object_get(md, "labels"), "team")),
                        "x");
    json_decref(o);
    /* The same again: unchanged, the version stays. */
    assert_int_equal(call(f, "PUT", VS "/a", NULL, NULL, labelled, &o), 200);
    md = json_object_get(o, "metadata");
    assert_string_equal(json_string_value(json_object_get(md, "resourceVersion")), "2");
    json_decref(o);
    assert_int_equal(cp_store_rv(f->store), 2);

    /* Name mismatch between path and body. */
    assert_int_equal(call(f, "PUT", VS "/b", NULL, NULL, labelled, &o), 400);
    assert_string_equal(reason(o), "BadRequest");
    json_decref(o);
    /* DELETE preconditions. */
    assert_int_equal(call(f, "DELETE", VS "/a", NULL, "abc", NULL, &o), 400);
    json_decref(o);
    assert_int_equal(call(f, "DELETE", VS "/a", NULL, "1", NULL, &o), 409);
    assert_string_equal(reason(o), "Conflict");
    json_decref(o);
    assert_int_equal(call(f, "DELETE", VS "/a", NULL, "2", NULL, &o), 200);
    json_decref(o);
    assert_int_equal(cp_store_rv(f->store), 3);
}

static void test_register_defaults(void **state)
{
    fx_t *f = *state;
    json_t *o = NULL;
    assert_int_equal(call(f, "POST", "/v1/register", "boot", NULL,
                          "{\"service\":\"db\",\"address\":\"10.0.0.1\"}", &o),
                     200);
    assert_string_equal(json_string_value(json_object_get(o, "id")), "db.default");
    assert_string_equal(json_string_value(json_object_get(o, "canonicalRevision")), "latest");
    assert_string_equal(json_string_value(json_object_get(o, "identity")),
                        "spiffe://cluster.local/ns/default/sa/default");
    assert_int_equal(json_integer_value(json_object_get(o, "leaseRemainingMs")), 30000);
    json_decref(o);
    assert_int_equal(call(f, "POST", "/v1/heartbeat", "boot", NULL, "{}", &o), 400);
    assert_string_equal(reason(o), "BadRequest");
    json_decref(o);
    assert_int_equal(call(f, "POST", "/v1/register", "boot", NULL,
                          "{\"service\":\"db\",\"address\":\"10.0.0.1\",\"labels\":{\"a\":1}}", &o),
                     400);
    json_decref(o);
    assert_int_equal(call(f, "POST", "/v1/register", "boot", NULL,
                          "{\"service\":7,\"address\":\"10.0.0.1\"}", &o),
                     400);
    json_decref(o);
}

static void test_metrics_counters(void **state)
{
    fx_t *f = *state;
    assert_int_equal(call(f, "GET", VS, NULL, NULL, NULL, NULL), 200);
    assert_int_equal(call(f, "GET", VS, "nope", NULL, NULL, NULL), 401);
    assert_int_equal(call(f, "GET", VS, "nope", NULL, NULL, NULL), 401);
    assert_int_equal(call(f, "GET", "/x", NULL, NULL, NULL, NULL), 404);
    cp_api_req_t req = {.method = "GET", .path = "/metrics"};
    cp_api_resp_t resp;
    cp_api_handle(f->api, &req, 0, &resp);
    assert_int_equal(resp.status, 200);
    assert_non_null(strstr(
        resp.body, "\nweft_control_http_requests_total{code=\"2xx\",handler=\"/apis\"} 1\n"));
    assert_non_null(strstr(
        resp.body, "\nweft_control_http_requests_total{code=\"4xx\",handler=\"/apis\"} 2\n"));
    assert_non_null(strstr(
        resp.body, "\nweft_control_http_requests_total{code=\"4xx\",handler=\"other\"} 1\n"));
    assert_non_null(strstr(resp.body, "\nweft_control_registered_workloads 0\n"));
    free(resp.body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_methods_and_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metadata_and_generation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_register_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_counters, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
