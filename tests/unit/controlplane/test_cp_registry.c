/*
 * test_cp_registry.c - unit tests of the workload registry (controlplane/cp_registry.c) with a
 * fake clock: ids, lease expiry and renewal, expiry at the boundary, re-registration, the
 * registry kept across a reopen until leases run out, refusal of invalid registrations, and the
 * Istio derivations (canonical service and revision, SPIFFE identity).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cp_registry.h"
#include "cp_store.h"
#include "wf_alloc.h"
#include "wf_err.h"
#include "wt_util.h"

#include <stdio.h>
#include <string.h>

#define TTL 30000

static cp_workload_t reviews(const char *version)
{
    static cp_label_t labels[] = {
        {"app", "reviews"}, {"team", "books"}, {"app.kubernetes.io/part-of", "bookinfo"}};
    static uint16_t ports[] = {9080, 15090};
    cp_workload_t w = {.service = "reviews",
                       .ns = "default",
                       .version = (char *)version,
                       .address = "10.0.0.7",
                       .service_account = "bookinfo-reviews",
                       .labels = labels,
                       .nlabels = 3,
                       .ports = ports,
                       .nports = 2,
                       .admin_port = 15000};
    return w;
}

static void test_register_and_expire(void **state)
{
    char *dir = wt_tmpdir("cpreg");
    cp_store_t *s = NULL;
    cp_registry_t *r = NULL;
    cp_workload_t out = {0}, *list = NULL;
    size_t n = 0;
    char err[128];
    assert_int_equal(cp_store_open(dir, &s), 0);
    assert_int_equal(cp_registry_open(s, TTL, 1000, &r), 0);

    cp_workload_t w = reviews("v1");
    assert_int_equal(cp_registry_register(r, &w, 1000, &out, err, sizeof(err)), 0);
    assert_string_equal(out.id, "reviews-v1.default");
    assert_int_equal(out.registered_ms, 1000);
    assert_int_equal(out.expires_ms, 1000 + TTL);
    assert_int_equal(out.nports, 2);
    assert_int_equal(out.ports[1], 15090);
    cp_workload_free(&out);
    cp_workload_t w2 = reviews("");
    assert_int_equal(cp_registry_register(r, &w2, 5000, &out, err, sizeof(err)), 0);
    assert_string_equal(out.id, "reviews.default");
    cp_workload_free(&out);

    /* A heartbeat at 20 s moves v1's lease to 50 s; the other runs out at 35 s. */
    int64_t exp = 0;
    assert_int_equal(cp_registry_heartbeat(r, "reviews-v1.default", 20000, &exp), 0);
    assert_int_equal(exp, 20000 + TTL);
    assert_int_equal(cp_registry_heartbeat(r, "ratings-v1.default", 20000, &exp), WF_E_NOTFOUND);

    assert_int_equal(cp_registry_expire(r, 34999), 0);
    assert_int_equal(cp_registry_expire(r, 35000), 1); /* the lease ends at its expiry instant */
    assert_int_equal(cp_registry_list(r, 35000, &list, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].id, "reviews-v1.default");
    cp_workload_list_free(list, n);

    /* A heartbeat that comes after the lease ran out does not revive it. */
    assert_int_equal(cp_registry_heartbeat(r, "reviews-v1.default", 50000, NULL), WF_E_NOTFOUND);
    assert_int_equal(cp_registry_list(r, 50000, &list, &n), 0);
    assert_int_equal(n, 0);
    cp_workload_list_free(list, n);

    cp_registry_stats_t st;
    cp_registry_stats(r, &st);
    assert_int_equal(st.registered, 0);
    assert_int_equal(st.registrations, 2);
    assert_int_equal(st.heartbeats, 1);
    assert_int_equal(st.leases_expired, 2);

    /* Registering again brings it back. */
    assert_int_equal(cp_registry_register(r, &w, 60000, NULL, err, sizeof(err)), 0);
    assert_int_equal(cp_registry_list(r, 60000, &list, &n), 0);
    assert_int_equal(n, 1);
    cp_workload_list_free(list, n);
    assert_int_equal(cp_registry_deregister(r, "reviews-v1.default"), 0);
    assert_int_equal(cp_registry_deregister(r, "reviews-v1.default"), WF_E_NOTFOUND);

    cp_registry_close(r);
    cp_store_close(s);
    wt_rm_rf(dir);
    wf_free(dir);
}

static void test_list_is_sorted_and_replaces(void **state)
{
    char *dir = wt_tmpdir("cpreg");
    cp_store_t *s = NULL;
    cp_registry_t *r = NULL;
    cp_workload_t *list = NULL;
    size_t n = 0;
    char err[128];
    assert_int_equal(cp_store_open(dir, &s), 0);
    assert_int_equal(cp_registry_open(s, 0, 0, &r), 0);
    const char *versions[] = {"v3", "v1", "v2", "v1"};
    for (size_t i = 0; i < 4; i++) {
        cp_workload_t w = reviews(versions[i]);
        w.address = i == 3 ? "10.0.0.9" : "10.0.0.7";
        assert_int_equal(cp_registry_register(r, &w, (int64_t)i, NULL, err, sizeof(err)), 0);
    }
    assert_int_equal(cp_registry_list(r, 10, &list, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(list[0].id, "reviews-v1.default");
    assert_string_equal(list[0].address, "10.0.0.9"); /* the later registration replaced it */
    assert_int_equal(list[0].expires_ms, 3 + CP_REGISTRY_DEFAULT_TTL_MS);
    assert_string_equal(list[1].id, "reviews-v2.default");
    assert_string_equal(list[2].id, "reviews-v3.default");
    cp_workload_list_free(list, n);
    cp_registry_close(r);
    cp_store_close(s);
    wt_rm_rf(dir);
    wf_free(dir);
}

static void test_survives_reopen(void **state)
{
    char *dir = wt_tmpdir("cpreg");
    cp_store_t *s = NULL;
    cp_registry_t *r = NULL;
    cp_workload_t *list = NULL;
    size_t n = 0;
    char err[128];
    assert_int_equal(cp_store_open(dir, &s), 0);
    assert_int_equal(cp_registry_open(s, TTL, 0, &r), 0);
    cp_workload_t a = reviews("v1"), b = reviews("v2");
    assert_int_equal(cp_registry_register(r, &a, 0, NULL, err, sizeof(err)), 0);
    assert_int_equal(cp_registry_register(r, &b, 10000, NULL, err, sizeof(err)), 0);
    cp_registry_close(r);
    cp_store_close(s);

    /* Reopened at 35 s: v1's lease (30 s) has run out, v2's (40 s) holds, with its fields. */
    assert_int_equal(cp_store_open(dir, &s), 0);
    assert_int_equal(cp_registry_open(s, TTL, 35000, &r), 0);
    assert_int_equal(cp_registry_list(r, 35000, &list, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].id, "reviews-v2.default");
    assert_string_equal(list[0].service_account, "bookinfo-reviews");
    assert_string_equal(list[0].address, "10.0.0.7");
    assert_int_equal(list[0].nlabels, 3);
    assert_string_equal(cp_workload_label(&list[0], "team"), "books");
    assert_string_equal(cp_workload_label(&list[0], "app.kubernetes.io/part-of"), "bookinfo");
    assert_int_equal(list[0].nports, 2);
    assert_int_equal(list[0].ports[0], 9080);
    assert_int_equal(list[0].admin_port, 15000);
    assert_int_equal(list[0].registered_ms, 10000);
    assert_int_equal(list[0].expires_ms, 40000);
    cp_workload_list_free(list, n);
    /* A heartbeat re-establishes it past its old expiry, and that is persisted too. */
    assert_int_equal(cp_registry_heartbeat(r, "reviews-v2.default", 39000, NULL), 0);
    cp_registry_close(r);
    cp_store_close(s);

    assert_int_equal(cp_store_open(dir, &s), 0);
    assert_int_equal(cp_registry_open(s, TTL, 60000, &r), 0);
    assert_int_equal(cp_registry_list(r, 60000, &list, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(list[0].expires_ms, 69000);
    cp_workload_list_free(list, n);
    cp_registry_close(r);
    cp_store_close(s);
    wt_rm_rf(dir);
    wf_free(dir);
}

static void test_invalid(void **state)
{
    char *dir = wt_tmpdir("cpreg");
    cp_store_t *s = NULL;
    cp_registry_t *r = NULL;
    char err[128];
    assert_int_equal(cp_store_open(dir, &s), 0);
    assert_int_equal(cp_registry_open(s, TTL, 0, &r), 0);

    cp_workload_t w = reviews("v1");
    w.service = "Reviews";
    assert_int_equal(cp_registry_register(r, &w, 0, NULL, err, sizeof(err)), WF_E_INVAL);
    assert_non_null(strstr(err, "service"));
    w = reviews("v1");
    w.ns = "";
    assert_int_equal(cp_registry_register(r, &w, 0, NULL, err, sizeof(err)), WF_E_INVAL);
    assert_non_null(strstr(err, "namespace"));
    w = reviews("v 1");
    assert_int_equal(cp_registry_register(r, &w, 0, NULL, err, sizeof(err)), WF_E_INVAL);
    assert_non_null(strstr(err, "version"));
    w = reviews("v1");
    w.address = NULL;
    assert_int_equal(cp_registry_register(r, &w, 0, NULL, err, sizeof(err)), WF_E_INVAL);
    assert_non_null(strstr(err, "address"));
    w = reviews("v1");
    w.service_account = "a/b";
    assert_int_equal(cp_registry_register(r, &w, 0, NULL, err, sizeof(err)), WF_E_INVAL);
    w = reviews("v1");
    cp_label_t bad_label = {"app name", "x"};
    w.labels = &bad_label;
    w.nlabels = 1;
    assert_int_equal(cp_registry_register(r, &w, 0, NULL, err, sizeof(err)), WF_E_INVAL);
    assert_non_null(strstr(err, "labels[0]"));
    w = reviews("v1");
    uint16_t zero = 0;
    w.ports = &zero;
    w.nports = 1;
    assert_int_equal(cp_registry_register(r, &w, 0, NULL, err, sizeof(err)), WF_E_INVAL);
    assert_non_null(strstr(err, "ports[0]"));

    cp_workload_t *list = NULL;
    size_t n = 9;
    assert_int_equal(cp_registry_list(r, 0, &list, &n), 0);
    assert_int_equal(n, 0);
    cp_workload_list_free(list, n);
    cp_registry_close(r);
    cp_store_close(s);
    wt_rm_rf(dir);
    wf_free(dir);
}

static void test_derivations(void **state)
{
    char buf[128];
    cp_workload_t w = reviews("v2");
    /* app label first, version field when no version label */
    assert_string_equal(cp_canonical_service(&w), "reviews");
    assert_string_equal(cp_canonical_revision(&w), "v2");
    assert_int_equal(cp_spiffe_id(&w, buf, sizeof(buf)),
                     (int)strlen("spiffe://cluster.local/ns/default/sa/bookinfo-reviews"));
    assert_string_equal(buf, "spiffe://cluster.local/ns/default/sa/bookinfo-reviews");

    cp_label_t labels[] = {{"app", "books"},
                           {"version", "blue"},
                           {"service.istio.io/canonical-name", "catalog"},
                           {"app.kubernetes.io/version", "2.1"}};
    w.labels = labels;
    w.nlabels = 4;
    assert_string_equal(cp_canonical_service(&w), "catalog");
    assert_string_equal(cp_canonical_revision(&w), "2.1");
    w.nlabels = 2;
    assert_string_equal(cp_canonical_service(&w), "books");
    assert_string_equal(cp_canonical_revision(&w), "blue");
    w.nlabels = 0;
    w.version = "";
    assert_string_equal(cp_canonical_service(&w), "reviews");
    assert_string_equal(cp_canonical_revision(&w), "latest");
    w.service_account = NULL;
    cp_spiffe_id(&w, buf, sizeof(buf));
    assert_string_equal(buf, "spiffe://cluster.local/ns/default/sa/default");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_and_expire),
        cmocka_unit_test(test_list_is_sorted_and_replaces),
        cmocka_unit_test(test_survives_reopen),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_derivations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
