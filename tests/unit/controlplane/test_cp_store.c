/*
 * test_cp_store.c - unit tests of the control plane's store (controlplane/cp_store.c): create,
 * get, list by namespace and across namespaces, update with and without a resourceVersion
 * precondition, the generation rules, delete, the one global resourceVersion, batches applied
 * whole or not at all, and everything read back after a reopen.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cp_store.h"
#include "wf_alloc.h"
#include "wf_err.h"
#include "wt_util.h"

#include <string.h>

#define VS "VirtualService"
#define AV "networking.istio.io/v1"

static cp_write_t wr(cp_op_kind_t op, const char *ns, const char *name, const char *spec,
                     int64_t rv)
{
    cp_write_t w = {.op = op,
                    .kind = VS,
                    .ns = ns,
                    .name = name,
                    .api_version = AV,
                    .spec = spec,
                    .doc = spec,
                    .expect_rv = rv};
    return w;
}

static int write1(cp_store_t *s, cp_write_t w, int64_t now, cp_stored_t *out)
{
    return cp_store_write(s, &w, 1, now, out, NULL);
}

static void test_create_get_conflict(void **state)
{
    char *dir = wt_tmpdir("cpstore");
    cp_store_t *s = NULL;
    cp_stored_t r = {0};
    assert_int_equal(cp_store_open(dir, &s), 0);
    assert_int_equal(cp_store_rv(s), 0);

    assert_int_equal(write1(s, wr(CP_OP_CREATE, "default", "reviews", "{\"a\":1}", 0), 1000, &r),
                     0);
    assert_string_equal(r.kind, VS);
    assert_string_equal(r.ns, "default");
    assert_string_equal(r.name, "reviews");
    assert_string_equal(r.api_version, AV);
    assert_int_equal(r.resource_version, 1);
    assert_int_equal(r.generation, 1);
    assert_int_equal(r.created_ms, 1000);
    cp_stored_free(&r);

    /* The same key again is AlreadyExists; another namespace is another object. */
    assert_int_equal(write1(s, wr(CP_OP_CREATE, "default", "reviews", "{}", 0), 2000, NULL),
                     CP_E_EXISTS);
    assert_int_equal(write1(s, wr(CP_OP_CREATE, "prod", "reviews", "{}", 0), 2000, &r), 0);
    assert_int_equal(r.resource_version, 2);
    cp_stored_free(&r);
    assert_int_equal(cp_store_rv(s), 2);

    assert_int_equal(cp_store_get(s, VS, "default", "reviews", &r), 0);
    assert_string_equal(r.spec, "{\"a\":1}");
    assert_int_equal(r.resource_version, 1);
    cp_stored_free(&r);
    assert_int_equal(cp_store_get(s, VS, "default", "nope", &r), WF_E_NOTFOUND);
    assert_int_equal(cp_store_get(s, "DestinationRule", "default", "reviews", &r), WF_E_NOTFOUND);

    /* Update with a stale version: Conflict, nothing changes. */
    assert_int_equal(write1(s, wr(CP_OP_UPDATE, "default", "reviews", "{\"a\":2}", 7), 3000, NULL),
                     CP_E_CONFLICT);
    assert_int_equal(cp_store_rv(s), 2);
    assert_int_equal(write1(s, wr(CP_OP_UPDATE, "default", "absent", "{}", 0), 3000, NULL),
                     WF_E_NOTFOUND);
    /* With the current version: applied, the creation time kept. */
    assert_int_equal(write1(s, wr(CP_OP_UPDATE, "default", "reviews", "{\"a\":2}", 1), 3000, &r),
                     0);
    assert_int_equal(r.resource_version, 3);
    assert_int_equal(r.generation, 2);
    assert_int_equal(r.created_ms, 1000);
    cp_stored_free(&r);
    /* The version read before that update is stale now. */
    assert_int_equal(write1(s, wr(CP_OP_UPDATE, "default", "reviews", "{\"a\":3}", 1), 3000, NULL),
                     CP_E_CONFLICT);

    cp_store_close(s);
    wt_rm_rf(dir);
    wf_free(dir);
}

static void test_generation_rules(void **state)
{
    char *dir = wt_tmpdir("cpstore");
    cp_store_t *s = NULL;
    cp_stored_t r = {0};
    assert_int_equal(cp_store_open(dir, &s), 0);
    assert_int_equal(write1(s, wr(CP_OP_APPLY, "default", "a", "{\"x\":1}", 0), 10, &r), 0);
    assert_int_equal(r.generation, 1);
    assert_int_equal(r.change, CP_CREATED);
    cp_stored_free(&r);

    /* Same spec, different document (a label): a new resourceVersion, the same generation. */
    cp_write_t w = wr(CP_OP_UPDATE, "default", "a", "{\"x\":1}", 0);
    w.doc = "{\"metadata\":{\"labels\":{\"k\":\"v\"}},\"spec\":{\"x\":1}}";
    assert_int_equal(write1(s, w, 20, &r), 0);
    assert_int_equal(r.resource_version, 2);
    assert_int_equal(r.generation, 1);
    assert_string_equal(r.doc, w.doc);
    cp_stored_free(&r);

    /* The same again changes nothing: no new resourceVersion, for the object or the store. */
    assert_int_equal(write1(s, w, 25, &r), 0);
    assert_int_equal(r.change, CP_UNCHANGED);
    assert_int_equal(r.resource_version, 2);
    assert_int_equal(r.generation, 1);
    cp_stored_free(&r);
    assert_int_equal(cp_store_rv(s), 2);

    /* A different spec: generation + 1, by APPLY too. */
    assert_int_equal(write1(s, wr(CP_OP_APPLY, "default", "a", "{\"x\":2}", 0), 30, &r), 0);
    assert_int_equal(r.resource_version, 3);
    assert_int_equal(r.generation, 2);
    assert_int_equal(r.created_ms, 10);
    assert_int_equal(r.change, CP_CONFIGURED);
    cp_stored_free(&r);

    /* Deleted and created again: a new object, generation 1, new creation time. */
    assert_int_equal(write1(s, wr(CP_OP_DELETE, "default", "a", NULL, 0), 40, &r), 0);
    assert_int_equal(r.resource_version, 4);
    assert_int_equal(r.generation, 2);
    assert_int_equal(r.change, CP_DELETED);
    cp_stored_free(&r);
    assert_int_equal(write1(s, wr(CP_OP_CREATE, "default", "a", "{\"x\":2}", 0), 50, &r), 0);
    assert_int_equal(r.resource_version, 5);
    assert_int_equal(r.generation, 1);
    assert_int_equal(r.created_ms, 50);
    cp_stored_free(&r);

    cp_store_close(s);
    wt_rm_rf(dir);
    wf_free(dir);
}

static void test_delete(void **state)
{
    char *dir = wt_tmpdir("cpstore");
    cp_store_t *s = NULL;
    assert_int_equal(cp_store_open(dir, &s), 0);
    assert_int_equal(write1(s, wr(CP_OP_CREATE, "default", "a", "{}", 0), 1, NULL), 0);
    assert_int_equal(write1(s, wr(CP_OP_DELETE, "default", "a", NULL, 9), 1, NULL), CP_E_CONFLICT);
    assert_int_equal(write1(s, wr(CP_OP_DELETE, "default", "b", NULL, 0), 1, NULL), WF_E_NOTFOUND);
    assert_int_equal(cp_store_rv(s), 1);
    assert_int_equal(write1(s, wr(CP_OP_DELETE, "default", "a", NULL, 1), 1, NULL), 0);
    assert_int_equal(cp_store_rv(s), 2);
    cp_stored_t r;
    assert_int_equal(cp_store_get(s, VS, "default", "a", &r), WF_E_NOTFOUND);
    cp_store_close(s);
    wt_rm_rf(dir);
    wf_free(dir);
}

static void test_list(void **state)
{
    char *dir = wt_tmpdir("cpstore");
    cp_store_t *s = NULL;
    cp_stored_t *list = NULL;
    size_t n = 99;
    int64_t rv = -1;
    assert_int_equal(cp_store_open(dir, &s), 0);
    assert_int_equal(cp_store_list(s, VS, NULL, &list, &n, &rv), 0);
    assert_int_equal(n, 0);
    assert_int_equal(rv, 0);
    cp_stored_list_free(list, n);

    const char *keys[][2] = {{"prod", "b"}, {"default", "z"}, {"prod", "a"}, {"default", "c"}};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(write1(s, wr(CP_OP_CREATE, keys[i][0], keys[i][1], "{}", 0), 1, NULL), 0);
    }
    cp_write_t dr = wr(CP_OP_CREATE, "default", "dr", "{}", 0);
    dr.kind = "DestinationRule";
    assert_int_equal(write1(s, dr, 1, NULL), 0);

    assert_int_equal(cp_store_list(s, VS, NULL, &list, &n, &rv), 0);
    assert_int_equal(n, 4);
    assert_int_equal(rv, 5);
    const char *want[][2] = {{"default", "c"}, {"default", "z"}, {"prod", "a"}, {"prod", "b"}};
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(list[i].ns, want[i][0]);
        assert_string_equal(list[i].name, want[i][1]);
    }
    cp_stored_list_free(list, n);

    assert_int_equal(cp_store_list(s, VS, "prod", &list, &n, NULL), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].name, "a");
    assert_string_equal(list[1].name, "b");
    cp_stored_list_free(list, n);

    assert_int_equal(cp_store_list(s, "DestinationRule", "prod", &list, &n, NULL), 0);
    assert_int_equal(n, 0);
    cp_stored_list_free(list, n);
    cp_store_close(s);
    wt_rm_rf(dir);
    wf_free(dir);
}

static void test_batch_all_or_nothing(void **state)
{
    char *dir = wt_tmpdir("cpstore");
    cp_store_t *s = NULL;
    cp_stored_t out[3];
    size_t failed = 99;
    assert_int_equal(cp_store_open(dir, &s), 0);
    assert_int_equal(write1(s, wr(CP_OP_CREATE, "default", "taken", "{}", 0), 1, NULL), 0);

    /* The third write fails: the first two must not be there afterwards. */
    cp_write_t batch[3] = {
        wr(CP_OP_CREATE, "default", "one", "{}", 0),
        wr(CP_OP_APPLY, "default", "taken", "{\"changed\":true}", 0),
        wr(CP_OP_CREATE, "default", "taken", "{}", 0),
    };
    assert_int_equal(cp_store_write(s, batch, 3, 2, out, &failed), CP_E_EXISTS);
    assert_int_equal(failed, 2);
    assert_int_equal(cp_store_rv(s), 1);
    cp_stored_t r = {0};
    assert_int_equal(cp_store_get(s, VS, "default", "one", &r), WF_E_NOTFOUND);
    assert_int_equal(cp_store_get(s, VS, "default", "taken", &r), 0);
    assert_string_equal(r.spec, "{}");
    assert_int_equal(r.resource_version, 1);
    cp_stored_free(&r);

    /* A good batch: one resourceVersion per write, in order. */
    batch[2] = wr(CP_OP_CREATE, "default", "two", "{}", 0);
    assert_int_equal(cp_store_write(s, batch, 3, 2, out, &failed), 0);
    assert_int_equal(out[0].resource_version, 2);
    assert_int_equal(out[1].resource_version, 3);
    assert_int_equal(out[1].generation, 2);
    assert_int_equal(out[2].resource_version, 4);
    for (size_t i = 0; i < 3; i++) {
        cp_stored_free(&out[i]);
    }
    assert_int_equal(cp_store_rv(s), 4);

    /* Re-applying the same batch with one real change: only that write takes a version. */
    batch[0] = wr(CP_OP_APPLY, "default", "one", "{}", 0);
    batch[2] = wr(CP_OP_APPLY, "default", "two", "{\"v\":2}", 0);
    assert_int_equal(cp_store_write(s, batch, 3, 3, out, NULL), 0);
    assert_int_equal(out[0].change, CP_UNCHANGED);
    assert_int_equal(out[0].resource_version, 2);
    assert_int_equal(out[1].change, CP_UNCHANGED);
    assert_int_equal(out[2].change, CP_CONFIGURED);
    assert_int_equal(out[2].resource_version, 5);
    for (size_t i = 0; i < 3; i++) {
        cp_stored_free(&out[i]);
    }
    assert_int_equal(cp_store_rv(s), 5);
    cp_store_close(s);
    wt_rm_rf(dir);
    wf_free(dir);
}

static int count_cb(void *arg, const char *id, const char *doc, int64_t expires_ms)
{
    size_t *n = arg;
    assert_string_equal(id, "w.default");
    assert_string_equal(doc, "{\"k\":1}");
    assert_int_equal(expires_ms, 12345);
    (*n)++;
    return 0;
}

static void test_reopen(void **state)
{
    char *dir = wt_tmpdir("cpstore");
    cp_store_t *s = NULL;
    cp_stored_t r = {0};
    assert_int_equal(cp_store_open(dir, &s), 0);
    assert_int_equal(write1(s, wr(CP_OP_CREATE, "default", "a", "{\"x\":1}", 0), 100, NULL), 0);
    assert_int_equal(write1(s, wr(CP_OP_UPDATE, "default", "a", "{\"x\":2}", 1), 200, NULL), 0);
    assert_int_equal(write1(s, wr(CP_OP_CREATE, "default", "gone", "{}", 0), 300, NULL), 0);
    assert_int_equal(write1(s, wr(CP_OP_DELETE, "default", "gone", NULL, 0), 400, NULL), 0);
    assert_int_equal(cp_store_wl_put(s, "w.default", "{\"k\":1}", 12345), 0);
    assert_int_equal(cp_store_wl_put(s, "x.default", "{}", 1), 0);
    assert_int_equal(cp_store_wl_delete(s, "x.default"), 0);
    cp_store_close(s);

    assert_int_equal(cp_store_open(dir, &s), 0);
    assert_int_equal(cp_store_rv(s), 4);
    assert_int_equal(cp_store_get(s, VS, "default", "a", &r), 0);
    assert_string_equal(r.spec, "{\"x\":2}");
    assert_int_equal(r.resource_version, 2);
    assert_int_equal(r.generation, 2);
    assert_int_equal(r.created_ms, 100);
    cp_stored_free(&r);
    assert_int_equal(cp_store_get(s, VS, "default", "gone", &r), WF_E_NOTFOUND);
    size_t n = 0;
    assert_int_equal(cp_store_wl_load(s, count_cb, &n), 0);
    assert_int_equal(n, 1);
    /* The counter continues where it was: no resourceVersion is handed out twice. */
    assert_int_equal(write1(s, wr(CP_OP_CREATE, "default", "b", "{}", 0), 500, &r), 0);
    assert_int_equal(r.resource_version, 5);
    cp_stored_free(&r);
    cp_store_close(s);
    wt_rm_rf(dir);
    wf_free(dir);
}

static void test_open_bad_dir(void **state)
{
    cp_store_t *s = NULL;
    assert_true(cp_store_open("/nonexistent-weft-dir/x/y", &s) < 0);
    assert_null(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_get_conflict),
        cmocka_unit_test(test_generation_rules),
        cmocka_unit_test(test_delete),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_batch_all_or_nothing),
        cmocka_unit_test(test_reopen),
        cmocka_unit_test(test_open_bad_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
