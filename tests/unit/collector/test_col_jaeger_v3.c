/*
 * test_col_jaeger_v3.c - Jaeger api_v3 over a real store and a real HTTP server: spans are
 * written straight into the store, every route is asked over TCP and the OTLP JSON is checked
 * field by field (services, operations, trace by id and 404, search filters, 400s).
 */
#include "col_http.h"
#include "col_jaeger_v3.h"
#include "st_span.h"
#include "wf_alloc.h"
#include "wt_spanfx.h"
#include "wt_util.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#define MS WT_MS

typedef wt_spanfx_t fx_t;

static const uint8_t TRACE_A[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
static const uint8_t TRACE_B[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xab, 0xcd, 0xef};

static void write_spans(fx_t *f)
{
    const st_attr_t attrs[] = {
        {wf_str("http.method"), {.type = ST_VAL_STRING, .u.s = {"GET", 3}}},
        {wf_str("code"), {.type = ST_VAL_INT, .u.i = 200}},
        {wf_str("blob"), {.type = ST_VAL_BYTES, .u.s = {"\x01\x02\x03", 3}}},
    };
    const st_attr_t res_front[] = {
        {wf_str("service.name"), {.type = ST_VAL_STRING, .u.s = {"frontend", 8}}},
        {wf_str("host.name"), {.type = ST_VAL_STRING, .u.s = {"h1", 2}}},
    };
    const st_attr_t res_back[] = {
        {wf_str("service.name"), {.type = ST_VAL_STRING, .u.s = {"backend", 7}}},
    };
    const st_span_event_t events[] = {{f->t0 + 20 * MS, wf_str("exception"), NULL, 0}};
    st_span_link_t link = {.span_id = {0, 0, 0, 0, 0, 0, 0, 9}};
    memcpy(link.trace_id, TRACE_B, 16);

    st_span_t sp[4];
    wt_spanfx_span(&sp[0], TRACE_A, 1, 0, "GET /", ST_SPAN_KIND_SERVER, f->t0, f->t0 + 100 * MS,
                   res_front, 2);
    sp[0].scope_name = wf_str("lib");
    sp[0].scope_version = wf_str("1.0");
    sp[0].attrs = attrs;
    sp[0].n_attrs = 3;
    wt_spanfx_span(&sp[1], TRACE_A, 2, 1, "query", ST_SPAN_KIND_CLIENT, f->t0 + 10 * MS,
                   f->t0 + 60 * MS, res_back, 1);
    sp[1].status_code = ST_STATUS_ERROR;
    sp[1].status_message = wf_str("boom");
    sp[1].events = events;
    sp[1].n_events = 1;
    sp[1].links = &link;
    sp[1].n_links = 1;
    wt_spanfx_span(&sp[2], TRACE_A, 3, 1, "render", ST_SPAN_KIND_INTERNAL, f->t0 + 70 * MS,
                   f->t0 + 80 * MS, res_front, 2);
    sp[2].scope_name = sp[0].scope_name;
    sp[2].scope_version = sp[0].scope_version;
    wt_spanfx_span(&sp[3], TRACE_B, 7, 0, "GET /slow", ST_SPAN_KIND_SERVER, f->t0 + 60000 * MS,
                   f->t0 + 62000 * MS, res_front, 2);
    wt_spanfx_append(f, sp, 4);
}

static int setup(void **state)
{
    *state = wt_spanfx_start("col_jaeger_v3", write_spans, col_jaeger_v3_register);
    return 0;
}

static int teardown(void **state)
{
    wt_spanfx_close(*state);
    return 0;
}

static const char *sget(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

static json_int_t iget(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

static void assert_error(json_t *j, int code)
{
    json_t *e = json_object_get(j, "error");
    assert_non_null(e);
    assert_int_equal(iget(e, "httpCode"), code);
    assert_true(strlen(sget(e, "message")) > 0);
    json_decref(j);
}

/* The value object of attribute key in an attributes array, or NULL. */
static json_t *attr(json_t *attrs, const char *key)
{
    size_t i;
    json_t *a;
    json_array_foreach(attrs, i, a)
    {
        if (strcmp(sget(a, "key"), key) == 0) {
            return json_object_get(a, "value");
        }
    }
    return NULL;
}

/* Every span of a result as a flat list (borrowed references in a new array). */
static json_t *spans_of(json_t *j, size_t want_resources)
{
    json_t *rs = json_object_get(json_object_get(j, "result"), "resourceSpans");
    assert_true(json_is_array(rs));
    assert_int_equal(json_array_size(rs), want_resources);
    json_t *out = json_array();
    size_t i, k, m;
    json_t *r, *ss, *sp;
    json_array_foreach(rs, i, r)
    {
        json_array_foreach(json_object_get(r, "scopeSpans"), k, ss)
        {
            json_array_foreach(json_object_get(ss, "spans"), m, sp)
            {
                json_array_append(out, sp);
            }
        }
    }
    return out;
}

static void test_services(void **state)
{
    json_t *j = wt_spanfx_get(*state, "/api/v3/services", 200);
    json_t *s = json_object_get(j, "services");
    assert_int_equal(json_array_size(s), 2);
    assert_string_equal(json_string_value(json_array_get(s, 0)), "backend");
    assert_string_equal(json_string_value(json_array_get(s, 1)), "frontend");
    json_decref(j);
}

static void test_operations(void **state)
{
    json_t *j = wt_spanfx_get(*state, "/api/v3/operations?service=frontend", 200);
    json_t *ops = json_object_get(j, "operations");
    assert_int_equal(json_array_size(ops), 3);
    assert_string_equal(sget(json_array_get(ops, 0), "name"), "GET /");
    assert_string_equal(sget(json_array_get(ops, 0), "spanKind"), "server");
    assert_string_equal(sget(json_array_get(ops, 2), "name"), "render");
    assert_string_equal(sget(json_array_get(ops, 2), "spanKind"), "internal");
    json_decref(j);
    j = wt_spanfx_get(*state, "/api/v3/operations?service=frontend&span_kind=server", 200);
    ops = json_object_get(j, "operations");
    assert_int_equal(json_array_size(ops), 2);
    assert_string_equal(sget(json_array_get(ops, 1), "name"), "GET /slow");
    json_decref(j);
    assert_error(wt_spanfx_get(*state, "/api/v3/operations?service=frontend&span_kind=bogus", 400),
                 400);
}

static void test_trace_by_id(void **state)
{
    fx_t *f = *state;
    json_t *j = wt_spanfx_get(f, "/api/v3/traces/0102030405060708090a0b0c0d0e0f10", 200);
    /* frontend (two spans, one scope) and backend */
    json_t *rs = json_object_get(json_object_get(j, "result"), "resourceSpans");
    json_t *r0 = json_array_get(rs, 0);
    json_t *rattrs = json_object_get(json_object_get(r0, "resource"), "attributes");
    assert_string_equal(sget(attr(rattrs, "service.name"), "stringValue"), "frontend");
    assert_string_equal(sget(attr(rattrs, "host.name"), "stringValue"), "h1");
    assert_int_equal(json_array_size(rattrs), 2);
    json_t *ss0 = json_array_get(json_object_get(r0, "scopeSpans"), 0);
    assert_string_equal(sget(json_object_get(ss0, "scope"), "name"), "lib");
    assert_string_equal(sget(json_object_get(ss0, "scope"), "version"), "1.0");
    assert_int_equal(json_array_size(json_object_get(ss0, "spans")), 2);

    json_t *all = spans_of(j, 2);
    assert_int_equal(json_array_size(all), 3);
    json_t *root = json_array_get(all, 0);
    assert_string_equal(sget(root, "traceId"), "0102030405060708090a0b0c0d0e0f10");
    assert_string_equal(sget(root, "spanId"), "0000000000000001");
    assert_null(json_object_get(root, "parentSpanId"));
    assert_string_equal(sget(root, "name"), "GET /");
    assert_int_equal(iget(root, "kind"), 2);
    char want[32];
    snprintf(want, sizeof(want), "%lld", (long long)f->t0);
    assert_string_equal(sget(root, "startTimeUnixNano"), want);
    snprintf(want, sizeof(want), "%lld", (long long)(f->t0 + 100 * MS));
    assert_string_equal(sget(root, "endTimeUnixNano"), want);
    json_t *a = json_object_get(root, "attributes");
    assert_string_equal(sget(attr(a, "http.method"), "stringValue"), "GET");
    assert_string_equal(sget(attr(a, "code"), "intValue"), "200");
    assert_string_equal(sget(attr(a, "blob"), "bytesValue"), "AQID");
    assert_int_equal(iget(json_object_get(root, "status"), "code"), 0);

    json_t *render = json_array_get(all, 1);
    assert_string_equal(sget(render, "name"), "render");
    assert_string_equal(sget(render, "parentSpanId"), "0000000000000001");

    json_t *q = json_array_get(all, 2);
    assert_string_equal(sget(q, "name"), "query");
    assert_int_equal(iget(q, "kind"), 3);
    json_t *st = json_object_get(q, "status");
    assert_int_equal(iget(st, "code"), 2);
    assert_string_equal(sget(st, "message"), "boom");
    json_t *ev = json_array_get(json_object_get(q, "events"), 0);
    assert_string_equal(sget(ev, "name"), "exception");
    snprintf(want, sizeof(want), "%lld", (long long)(f->t0 + 20 * MS));
    assert_string_equal(sget(ev, "timeUnixNano"), want);
    json_t *ln = json_array_get(json_object_get(q, "links"), 0);
    assert_string_equal(sget(ln, "traceId"), "00000000000000000000000000abcdef");
    assert_string_equal(sget(ln, "spanId"), "0000000000000009");
    json_decref(all);
    json_decref(j);

    /* a short id is the low bytes */
    j = wt_spanfx_get(f, "/api/v3/traces/abcdef", 200);
    all = spans_of(j, 1);
    assert_string_equal(sget(json_array_get(all, 0), "name"), "GET /slow");
    json_decref(all);
    json_decref(j);

    assert_error(wt_spanfx_get(f, "/api/v3/traces/0102030405060708090a0b0c0d0e0f11", 404), 404);
    assert_error(wt_spanfx_get(f, "/api/v3/traces/xyz", 400), 400);
}

/* GET /api/v3/traces with the time window around t0 and extra parameters. */
static json_t *search(fx_t *f, const char *extra, int want_status)
{
    char path[512];
    time_t lo = (time_t)(f->t0 / (1000 * MS)) - 60;
    time_t hi = lo + 600;
    char tlo[32], thi[32];
    struct tm tm;
    strftime(tlo, sizeof(tlo), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&lo, &tm));
    strftime(thi, sizeof(thi), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&hi, &tm));
    snprintf(path, sizeof(path), "/api/v3/traces?query.start_time_min=%s&query.start_time_max=%s%s",
             tlo, thi, extra);
    return wt_spanfx_get(f, path, want_status);
}

static void test_search(void **state)
{
    fx_t *f = *state;
    json_t *j = search(f, "&query.service_name=frontend", 200);
    json_t *all = spans_of(j, 3); /* B's frontend, A's frontend and backend */
    assert_int_equal(json_array_size(all), 4);
    json_decref(all);
    json_decref(j);

    j = search(f, "&query.service_name=backend", 200);
    all = spans_of(j, 2);
    assert_int_equal(json_array_size(all), 3);
    json_decref(all);
    json_decref(j);

    j = search(f, "&query.service_name=frontend&query.duration_min=1s", 200);
    all = spans_of(j, 1);
    assert_int_equal(json_array_size(all), 1);
    assert_string_equal(sget(json_array_get(all, 0), "name"), "GET /slow");
    json_decref(all);
    json_decref(j);

    j = search(f, "&query.service_name=frontend&query.duration_max=1s&query.operation_name=GET%20/",
               200);
    all = spans_of(j, 2);
    assert_string_equal(sget(json_array_get(all, 0), "traceId"),
                        "0102030405060708090a0b0c0d0e0f10");
    json_decref(all);
    json_decref(j);

    /* newest first, so one trace is B */
    j = search(f, "&query.service_name=frontend&query.num_traces=1", 200);
    all = spans_of(j, 1);
    assert_int_equal(json_array_size(all), 1);
    assert_string_equal(sget(json_array_get(all, 0), "name"), "GET /slow");
    json_decref(all);
    json_decref(j);

    j = search(f, "&query.attributes=%7B%22http.method%22%3A%22GET%22%7D", 200);
    all = spans_of(j, 2);
    assert_int_equal(json_array_size(all), 3);
    json_decref(all);
    json_decref(j);

    /* Go durations, as Jaeger's gateway reads them: fractions and compound units */
    j = search(f, "&query.service_name=frontend&query.durationMin=99.5ms&query.durationMax=1.5s",
               200);
    all = spans_of(j, 2); /* trace A: frontend's and backend's resources */
    assert_string_equal(sget(json_array_get(all, 0), "traceId"),
                        "0102030405060708090a0b0c0d0e0f10");
    json_decref(all);
    json_decref(j);
    j = search(f, "&query.service_name=frontend&query.durationMin=1.999s&query.durationMax=2m3s",
               200);
    all = spans_of(j, 1);
    assert_string_equal(sget(json_array_get(all, 0), "name"), "GET /slow");
    json_decref(all);
    json_decref(j);
    j = search(f, "&query.service_name=frontend&query.durationMin=1d", 400);
    json_t *e = json_object_get(j, "error");
    assert_non_null(strstr(sget(e, "message"),
                           "malformed parameter query.durationMin: time: unknown unit \"d\""));
    json_decref(j);

    assert_error(search(f, "&query.service_name=nobody", 404), 404);
    assert_error(search(f, "&query.num_traces=abc", 400), 400);
    assert_error(search(f, "&query.duration_min=fast", 400), 400);
    assert_error(search(f, "&query.attributes=%5B1%5D", 400), 400);
    assert_error(wt_spanfx_get(f, "/api/v3/traces?query.service_name=frontend", 400), 400);
    assert_error(wt_spanfx_get(f,
                               "/api/v3/traces?query.start_time_min=2020-01-02T00:00:00Z"
                               "&query.start_time_max=2020-01-01T00:00:00Z",
                               400),
                 400);
    assert_error(wt_spanfx_get(f,
                               "/api/v3/traces?query.start_time_min=yesterday"
                               "&query.start_time_max=2020-01-01T00:00:00Z",
                               400),
                 400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_services, setup, teardown),
        cmocka_unit_test_setup_teardown(test_operations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trace_by_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
