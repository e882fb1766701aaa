/*
 * test_control_analyze.c - starts the real `weft control` and reads GET /v1/analyze: a
 * VirtualService routing to a subset no DestinationRule defines shows KIA1107 (and only that,
 * since its host has a registered workload); applying the DestinationRule clears it; the
 * namespace filter and the admin token are honoured.
 */
#include "wf_alloc.h"
#include "wt_control.h"
#include "wt_util.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

/* GET /v1/analyze[query] as admin; the "messages" array (json_decref the returned root). */
static json_t *analyze(int port, const char *admin, const char *query, json_t **messages)
{
    char path[128], *body = NULL;
    snprintf(path, sizeof(path), "/v1/analyze%s", query);
    assert_int_equal(wt_control_req(port, "GET", path, admin, NULL, &body), 200);
    json_error_t err;
    json_t *o = json_loads(body, 0, &err);
    if (o == NULL) {
        fail_msg("not JSON: %s", body);
    }
    wf_free(body);
    *messages = json_object_get(o, "messages");
    assert_true(json_is_array(*messages));
    return o;
}

static const char *field(json_t *m, const char *key)
{
    const char *s = json_string_value(json_object_get(m, key));
    assert_non_null(s);
    return s;
}

static void test_analyze_subset(void **state)
{
    (void)state;
    wt_control_t c;
    assert_int_equal(wt_control_new(&c, "cpanalyze", NULL), 0);
    int port = c.port;
    const char *admin = c.admin, *boot = c.boot;
    char *body = NULL;

    /* Nothing stored yet: nothing to say. */
    json_t *msgs;
    json_t *root = analyze(port, admin, "", &msgs);
    assert_int_equal(json_array_size(msgs), 0);
    json_decref(root);

    assert_int_equal(
        wt_control_req(port, "POST", "/v1/register", boot,
                       "{\"service\":\"reviews\",\"namespace\":\"default\",\"version\":\"v3\","
                       "\"address\":\"127.0.0.1\",\"ports\":[9080],"
                       "\"labels\":{\"app\":\"reviews\",\"version\":\"v3\"}}",
                       NULL),
        200);
    assert_int_equal(
        wt_control_req(
            port, "POST", "/apis/networking.istio.io/v1/namespaces/default/virtualservices", admin,
            "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"VirtualService\","
            "\"metadata\":{\"name\":\"reviews\"},\"spec\":{\"hosts\":[\"reviews\"],"
            "\"http\":[{\"route\":[{\"destination\":{\"host\":\"reviews\",\"subset\":\"v3\"}}]}]}}",
            NULL),
        201);

    root = analyze(port, admin, "", &msgs);
    assert_int_equal(json_array_size(msgs), 1);
    json_t *m = json_array_get(msgs, 0);
    assert_string_equal(field(m, "code"), "KIA1107");
    assert_string_equal(field(m, "level"), "warning");
    assert_string_equal(field(m, "kind"), "VirtualService");
    assert_string_equal(field(m, "namespace"), "default");
    assert_string_equal(field(m, "name"), "reviews");
    assert_string_equal(field(m, "path"), "spec.http[0].route[0].destination.subset");
    assert_string_equal(field(m, "message"),
                        "Subset not found: no DestinationRule defines subset v3 for "
                        "reviews.default.svc.cluster.local");
    json_decref(root);

    /* The namespace filter, and the token. */
    root = analyze(port, admin, "?namespace=default", &msgs);
    assert_int_equal(json_array_size(msgs), 1);
    json_decref(root);
    root = analyze(port, admin, "?namespace=other", &msgs);
    assert_int_equal(json_array_size(msgs), 0);
    json_decref(root);
    assert_int_equal(wt_control_req(port, "GET", "/v1/analyze", NULL, NULL, NULL), 401);
    assert_int_equal(wt_control_req(port, "GET", "/v1/analyze", boot, NULL, NULL), 401);
    assert_int_equal(wt_control_req(port, "POST", "/v1/analyze", admin, "{}", NULL), 405);

    /* The DestinationRule defining v3 (whose labels the registered workload carries). */
    assert_int_equal(
        wt_control_req(port, "POST",
                       "/apis/networking.istio.io/v1/namespaces/default/destinationrules", admin,
                       "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"DestinationRule\","
                       "\"metadata\":{\"name\":\"reviews\"},\"spec\":{\"host\":\"reviews\","
                       "\"subsets\":[{\"name\":\"v3\",\"labels\":{\"version\":\"v3\"}}]}}",
                       &body),
        201);
    wf_free(body);
    root = analyze(port, admin, "", &msgs);
    if (json_array_size(msgs) != 0) {
        char *d = json_dumps(root, 0);
        fprintf(stderr, "%s\n", d);
        free(d);
    }
    assert_int_equal(json_array_size(msgs), 0);
    json_decref(root);

    assert_int_equal(wt_control_stop(&c), 0);
    wt_control_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_analyze_subset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
