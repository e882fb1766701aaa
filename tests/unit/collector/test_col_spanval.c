/*
 * test_col_spanval.c - every form of a span attribute value (text, JSON, Jaeger tag, OTLP
 * AnyValue, kvlist JSON) for every value type, the awkward doubles included, and the tag
 * filter comparison.
 */
#include "col_spanval.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static const st_value_t ITEMS[] = {
    {.type = ST_VAL_STRING, .u.s = WF_STR_LIT("a\"b")},
    {.type = ST_VAL_INT, .u.i = -3},
    {.type = ST_VAL_DOUBLE, .u.d = INFINITY},
    {.type = ST_VAL_BYTES, .u.s = WF_STR_LIT("\x01\x02\x03")},
    {.type = ST_VAL_BOOL, .u.b = false},
};

typedef struct {
    st_value_t v;
    const char *text, *json, *jaeger_type, *jaeger, *otlp;
} case_t;

static void check(const case_t *c)
{
    wf_buf_t b = WF_BUF_INIT;
    col_spanval_text(&b, &c->v);
    assert_string_equal(wf_buf_cstr(&b), c->text);
    wf_buf_reset(&b);
    col_spanval_json(&b, &c->v);
    assert_string_equal(wf_buf_cstr(&b), c->json);
    wf_buf_reset(&b);
    assert_string_equal(col_spanval_jaeger(&b, &c->v), c->jaeger_type);
    assert_string_equal(wf_buf_cstr(&b), c->jaeger);
    wf_buf_reset(&b);
    col_spanval_otlp(&b, &c->v);
    assert_string_equal(wf_buf_cstr(&b), c->otlp);
    wf_buf_free(&b);
}

static void test_forms(void **state)
{
    (void)state;
    const case_t cases[] = {
        {{.type = ST_VAL_STRING, .u.s = WF_STR_LIT("x\"y")},
         "x\"y",
         "\"x\\\"y\"",
         "string",
         "\"x\\\"y\"",
         "{\"stringValue\":\"x\\\"y\"}"},
        {{.type = ST_VAL_BOOL, .u.b = true},
         "true",
         "true",
         "bool",
         "true",
         "{\"boolValue\":true}"},
        {{.type = ST_VAL_INT, .u.i = INT64_MIN},
         "-9223372036854775808",
         "-9223372036854775808",
         "int64",
         "-9223372036854775808",
         "{\"intValue\":\"-9223372036854775808\"}"},
        {{.type = ST_VAL_DOUBLE, .u.d = 0.25},
         "0.25",
         "0.25",
         "float64",
         "0.25",
         "{\"doubleValue\":0.25}"},
        {{.type = ST_VAL_DOUBLE, .u.d = NAN},
         "NaN",
         "\"NaN\"",
         "string",
         "\"NaN\"",
         "{\"doubleValue\":\"NaN\"}"},
        {{.type = ST_VAL_DOUBLE, .u.d = -INFINITY},
         "-Inf",
         "\"-Inf\"",
         "string",
         "\"-Inf\"",
         "{\"doubleValue\":\"-Infinity\"}"},
        {{.type = ST_VAL_BYTES, .u.s = WF_STR_LIT("\x00\xff")},
         "AP8=",
         "\"AP8=\"",
         "binary",
         "\"AP8=\"",
         "{\"bytesValue\":\"AP8=\"}"},
        {{.type = ST_VAL_ARRAY, .u.arr = {ITEMS, 5}},
         "[\"a\\\"b\",-3,\"+Inf\",\"AQID\",false]",
         "[\"a\\\"b\",-3,\"+Inf\",\"AQID\",false]",
         "string",
         "\"[\\\"a\\\\\\\"b\\\",-3,\\\"+Inf\\\",\\\"AQID\\\",false]\"",
         "{\"arrayValue\":{\"values\":[{\"stringValue\":\"a\\\"b\"},{\"intValue\":\"-3\"},"
         "{\"doubleValue\":\"Infinity\"},{\"bytesValue\":\"AQID\"},{\"boolValue\":false}]}}"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        check(&cases[i]);
    }
}

static void test_kvlist(void **state)
{
    (void)state;
    const st_attr_t kv[] = {
        {WF_STR_LIT("s"), {.type = ST_VAL_STRING, .u.s = WF_STR_LIT("v")}},
        {WF_STR_LIT("d"), {.type = ST_VAL_DOUBLE, .u.d = 1.5}},
        {WF_STR_LIT("b"), {.type = ST_VAL_BYTES, .u.s = WF_STR_LIT("\x01")}},
    };
    wf_buf_t b = WF_BUF_INIT;
    col_spanval_kvlist_json(&b, kv, 3);
    assert_string_equal(wf_buf_cstr(&b), "{\"s\":\"v\",\"d\":1.5,\"b\":\"AQ==\"}");
    wf_buf_reset(&b);
    col_spanval_kvlist_json(&b, kv, 0);
    assert_string_equal(wf_buf_cstr(&b), "{}");
    wf_buf_free(&b);
}

static void test_matches(void **state)
{
    (void)state;
    wf_buf_t tmp = WF_BUF_INIT;
    st_value_t s = {.type = ST_VAL_STRING, .u.s = WF_STR_LIT("GET")};
    st_value_t i = {.type = ST_VAL_INT, .u.i = 200};
    st_value_t d = {.type = ST_VAL_DOUBLE, .u.d = 0.5};
    st_value_t by = {.type = ST_VAL_BYTES, .u.s = WF_STR_LIT("\x01\x02\x03")};
    assert_true(col_spanval_matches(&s, WF_STR_LIT("GET"), &tmp));
    assert_false(col_spanval_matches(&s, WF_STR_LIT("get"), &tmp));
    assert_true(col_spanval_matches(&i, WF_STR_LIT("200"), &tmp));
    assert_false(col_spanval_matches(&i, WF_STR_LIT("200.0"), &tmp));
    assert_true(col_spanval_matches(&d, WF_STR_LIT("0.5"), &tmp));
    assert_true(col_spanval_matches(&d, WF_STR_LIT("0.50"), &tmp));
    assert_false(col_spanval_matches(&d, WF_STR_LIT("0.5x"), &tmp));
    assert_true(col_spanval_matches(&by, WF_STR_LIT("AQID"), &tmp));
    wf_buf_free(&tmp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forms),
        cmocka_unit_test(test_kvlist),
        cmocka_unit_test(test_matches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
