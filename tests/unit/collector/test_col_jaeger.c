/*
 * test_col_jaeger.c - the Jaeger query API over a real store and a real HTTP server: spans are
 * written straight into the store, then every route is asked over TCP and its JSON is checked
 * field by field (services, operations, trace by 128- and 64-bit id, search filters,
 * dependencies, and the error envelope for unknown traces and bad parameters).
 */
#include "col_http.h"
#include "col_jaeger.h"
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

static const uint8_t TRACE_A[16] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
                                    0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10};
/* a 64-bit id whose low half has leading zero bytes */
static const uint8_t TRACE_B[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xab, 0xcd, 0xef};

static void write_spans(fx_t *f)
{
    static const st_value_t arr_items[] = {
        {.type = ST_VAL_STRING, .u.s = {"x", 1}},
        {.type = ST_VAL_INT, .u.i = 1},
    };
    const st_attr_t root_attrs[] = {
        {wf_str("http.method"), {.type = ST_VAL_STRING, .u.s = {"GET", 3}}},
        {wf_str("cached"), {.type = ST_VAL_BOOL, .u.b = true}},
        {wf_str("http.status_code"), {.type = ST_VAL_INT, .u.i = 200}},
        {wf_str("ratio"), {.type = ST_VAL_DOUBLE, .u.d = 1.5}},
        {wf_str("blob"), {.type = ST_VAL_BYTES, .u.s = {"\x01\x02\x03", 3}}},
        {wf_str("list"), {.type = ST_VAL_ARRAY, .u.arr = {arr_items, 2}}},
    };
    const st_attr_t res_front[] = {
        {wf_str("service.name"), {.type = ST_VAL_STRING, .u.s = {"frontend", 8}}},
        {wf_str("host.name"), {.type = ST_VAL_STRING, .u.s = {"h1", 2}}},
    };
    const st_attr_t res_back[] = {
        {wf_str("service.name"), {.type = ST_VAL_STRING, .u.s = {"backend", 7}}},
        {wf_str("pid"), {.type = ST_VAL_INT, .u.i = 42}},
    };
    const st_attr_t ev_attrs[] = {
        {wf_str("exception.message"), {.type = ST_VAL_STRING, .u.s = {"bad", 3}}},
    };
    const st_span_event_t events[] = {
        {f->t0 + 20 * MS, wf_str("exception"), ev_attrs, 1},
    };
    const st_attr_t child_of[] = {
        {wf_str("opentracing.ref_type"), {.type = ST_VAL_STRING, .u.s = {"child_of", 8}}},
    };
    const st_attr_t follows_from[] = {
        {wf_str("opentracing.ref_type"), {.type = ST_VAL_STRING, .u.s = {"follows_from", 12}}},
    };
    st_span_link_t links[2] = {
        {.span_id = {0, 0, 0, 0, 0, 0, 0, 9}},
        {.span_id = {0, 0, 0, 0, 0, 0, 0, 10}, .attrs = child_of, .n_attrs = 1},
    };
    memcpy(links[0].trace_id, TRACE_B, 16);
    memcpy(links[1].trace_id, TRACE_B, 16);
    /* a link to the span's own parent only changes the parent reference's type */
    st_span_link_t parent_link = {
        .span_id = {0, 0, 0, 0, 0, 0, 0, 1}, .attrs = follows_from, .n_attrs = 1};
    memcpy(parent_link.trace_id, TRACE_A, 16);

    st_span_t sp[4];
    /* A1: frontend root, every attribute type, scope, trace state */
    wt_spanfx_span(&sp[0], TRACE_A, 1, 0, "GET /", ST_SPAN_KIND_SERVER, f->t0, f->t0 + 100 * MS,
                   res_front, 2);
    sp[0].trace_state = wf_str("k=v");
    sp[0].flags = 1;
    sp[0].scope_name = wf_str("lib");
    sp[0].scope_version = wf_str("1.0");
    sp[0].attrs = root_attrs;
    sp[0].n_attrs = sizeof(root_attrs) / sizeof(root_attrs[0]);
    /* A2: backend client child with an error, an event and a link; 50.0015 ms long, which
     * the µs duration truncates */
    wt_spanfx_span(&sp[1], TRACE_A, 2, 1, "query", ST_SPAN_KIND_CLIENT, f->t0 + 10 * MS,
                   f->t0 + 60 * MS + 1500, res_back, 2);
    sp[1].status_code = ST_STATUS_ERROR;
    sp[1].status_message = wf_str("boom");
    sp[1].events = events;
    sp[1].n_events = 1;
    sp[1].links = links;
    sp[1].n_links = 2;
    /* A3: frontend internal child, same process as A1 */
    wt_spanfx_span(&sp[2], TRACE_A, 3, 1, "render", ST_SPAN_KIND_INTERNAL, f->t0 + 70 * MS,
                   f->t0 + 75 * MS, res_front, 2);
    sp[2].status_code = ST_STATUS_OK;
    sp[2].links = &parent_link;
    sp[2].n_links = 1;
    /* B1: a 64-bit trace, 2 s long */
    wt_spanfx_span(&sp[3], TRACE_B, 9, 0, "cron", ST_SPAN_KIND_PRODUCER, f->t0 + 1000 * MS,
                   f->t0 + 3000 * MS, res_back, 2);
    wt_spanfx_append(f, sp, 4);
}

static int setup(void **state)
{
    *state = wt_spanfx_start("col_jaeger", write_spans, col_jaeger_register);
    return 0;
}

static int teardown(void **state)
{
    wt_spanfx_close(*state);
    return 0;
}

/* GET path; checks the status and that the envelope's constant fields are Jaeger's. */
static json_t *get(fx_t *f, const char *path, int want_status)
{
    json_t *j = wt_spanfx_get(f, path, want_status);
    assert_true(json_is_integer(json_object_get(j, "total")));
    assert_int_equal(json_integer_value(json_object_get(j, "limit")), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "offset")), 0);
    assert_non_null(json_object_get(j, "errors"));
    return j;
}

static json_t *data(json_t *j)
{
    json_t *d = json_object_get(j, "data");
    assert_non_null(d);
    return d;
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

/* The tag named key in a tags/fields array, checked for its type; NULL when absent. */
static json_t *tag(json_t *tags, const char *key, const char *type)
{
    size_t i;
    json_t *t;
    json_t *found = NULL;
    json_array_foreach(tags, i, t)
    {
        if (strcmp(sget(t, "key"), key) == 0) {
            assert_null(found); /* keys are not repeated */
            found = t;
        }
    }
    if (found != NULL) {
        assert_string_equal(sget(found, "type"), type);
        return json_object_get(found, "value");
    }
    return NULL;
}

static json_t *span_by_id(json_t *trace, const char *id)
{
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(trace, "spans"), i, s)
    {
        if (strcmp(sget(s, "spanID"), id) == 0) {
            return s;
        }
    }
    fail_msg("span %s not found", id);
    return NULL;
}

static void assert_error(json_t *j, int code, const char *msg_part)
{
    assert_true(json_is_null(json_object_get(j, "data")));
    assert_int_equal(iget(j, "total"), 0);
    json_t *errs = json_object_get(j, "errors");
    assert_int_equal(json_array_size(errs), 1);
    json_t *e = json_array_get(errs, 0);
    assert_int_equal(iget(e, "code"), code);
    if (strstr(sget(e, "msg"), msg_part) == NULL) {
        fail_msg("error message \"%s\" lacks \"%s\"", sget(e, "msg"), msg_part);
    }
}

static void test_services(void **state)
{
    fx_t *f = *state;
    json_t *j = get(f, "/api/services", 200);
    json_t *d = data(j);
    assert_int_equal(json_array_size(d), 2);
    assert_string_equal(json_string_value(json_array_get(d, 0)), "backend");
    assert_string_equal(json_string_value(json_array_get(d, 1)), "frontend");
    assert_int_equal(iget(j, "total"), 2);
    assert_true(json_is_null(json_object_get(j, "errors")));
    json_decref(j);
}

static void test_operations(void **state)
{
    fx_t *f = *state;
    json_t *j = get(f, "/api/operations?service=frontend", 200);
    json_t *d = data(j);
    assert_int_equal(json_array_size(d), 2);
    assert_int_equal(iget(j, "total"), 2);
    assert_string_equal(sget(json_array_get(d, 0), "name"), "GET /");
    assert_string_equal(sget(json_array_get(d, 0), "spanKind"), "server");
    assert_string_equal(sget(json_array_get(d, 1), "name"), "render");
    assert_string_equal(sget(json_array_get(d, 1), "spanKind"), "internal");
    json_decref(j);

    j = get(f, "/api/operations?service=frontend&spanKind=server", 200);
    d = data(j);
    assert_int_equal(json_array_size(d), 1);
    assert_string_equal(sget(json_array_get(d, 0), "name"), "GET /");
    json_decref(j);

    j = get(f, "/api/operations?service=backend&spanKind=server", 200);
    assert_int_equal(json_array_size(data(j)), 0);
    assert_int_equal(iget(j, "total"), 0);
    json_decref(j);

    j = get(f, "/api/operations?service=frontend&spanKind=bogus", 200);
    assert_int_equal(json_array_size(data(j)), 0);
    json_decref(j);

    /* the legacy route lists distinct names */
    j = get(f, "/api/services/backend/operations", 200);
    d = data(j);
    assert_int_equal(json_array_size(d), 2);
    assert_string_equal(json_string_value(json_array_get(d, 0)), "cron");
    assert_string_equal(json_string_value(json_array_get(d, 1)), "query");
    assert_int_equal(iget(j, "total"), 2);
    json_decref(j);

    j = get(f, "/api/operations", 400);
    assert_error(j, 400, "parameter 'service' is required");
    json_decref(j);
}

static void test_trace_128(void **state)
{
    fx_t *f = *state;
    json_t *j = get(f, "/api/traces/0102030405060708090a0b0c0d0e0f10", 200);
    assert_int_equal(iget(j, "total"), 0);
    assert_true(json_is_null(json_object_get(j, "errors")));
    json_t *d = data(j);
    assert_int_equal(json_array_size(d), 1);
    json_t *t = json_array_get(d, 0);
    assert_string_equal(sget(t, "traceID"), "0102030405060708090a0b0c0d0e0f10");
    assert_int_equal(json_array_size(json_object_get(t, "spans")), 3);

    /* processes: frontend's two spans share p1 */
    json_t *procs = json_object_get(t, "processes");
    assert_int_equal(json_object_size(procs), 2);
    json_t *p1 = json_object_get(procs, "p1");
    json_t *p2 = json_object_get(procs, "p2");
    assert_string_equal(sget(p1, "serviceName"), "frontend");
    assert_string_equal(sget(p2, "serviceName"), "backend");
    json_t *ptags = json_object_get(p1, "tags");
    assert_int_equal(json_array_size(ptags), 1); /* service.name is not repeated as a tag */
    assert_string_equal(json_string_value(tag(ptags, "host.name", "string")), "h1");
    assert_int_equal(json_integer_value(tag(json_object_get(p2, "tags"), "pid", "int64")), 42);

    json_t *s1 = span_by_id(t, "0000000000000001");
    assert_string_equal(sget(s1, "traceID"), "0102030405060708090a0b0c0d0e0f10");
    assert_string_equal(sget(s1, "operationName"), "GET /");
    assert_int_equal(iget(s1, "flags"), 1);
    assert_int_equal(iget(s1, "startTime"), f->t0 / 1000);
    assert_int_equal(iget(s1, "duration"), 100000);
    assert_string_equal(sget(s1, "processID"), "p1");
    assert_int_equal(json_array_size(json_object_get(s1, "references")), 0);
    assert_int_equal(json_array_size(json_object_get(s1, "logs")), 0);
    json_t *tags = json_object_get(s1, "tags");
    assert_string_equal(json_string_value(tag(tags, "http.method", "string")), "GET");
    assert_true(json_is_true(tag(tags, "cached", "bool")));
    assert_int_equal(json_integer_value(tag(tags, "http.status_code", "int64")), 200);
    assert_true(json_real_value(tag(tags, "ratio", "float64")) == 1.5);
    assert_string_equal(json_string_value(tag(tags, "blob", "binary")), "AQID");
    assert_string_equal(json_string_value(tag(tags, "list", "string")), "[\"x\",1]");
    assert_string_equal(json_string_value(tag(tags, "otel.scope.name", "string")), "lib");
    assert_string_equal(json_string_value(tag(tags, "otel.scope.version", "string")), "1.0");
    assert_string_equal(json_string_value(tag(tags, "span.kind", "string")), "server");
    assert_string_equal(json_string_value(tag(tags, "w3c.tracestate", "string")), "k=v");
    assert_null(tag(tags, "otel.status_code", "string")); /* unset status: no tag */
    assert_null(tag(tags, "error", "bool"));
    assert_int_equal(json_array_size(tags), 10);
    /* Jaeger's translator order: scope, attributes (sorted by the adjuster), derived tags */
    static const char *const order[] = {"otel.scope.name", "otel.scope.version", "blob", "cached",
                                        "http.method",     "http.status_code",   "list", "ratio",
                                        "span.kind",       "w3c.tracestate"};
    for (size_t i = 0; i < 10; i++) {
        assert_string_equal(sget(json_array_get(tags, i), "key"), order[i]);
    }

    json_t *s2 = span_by_id(t, "0000000000000002");
    assert_string_equal(sget(s2, "processID"), "p2");
    assert_int_equal(iget(s2, "duration"), 50001);
    json_t *refs = json_object_get(s2, "references");
    assert_int_equal(json_array_size(refs), 3);
    assert_string_equal(sget(json_array_get(refs, 2), "refType"), "CHILD_OF");
    assert_string_equal(sget(json_array_get(refs, 2), "traceID"), "0000000000abcdef");
    assert_string_equal(sget(json_array_get(refs, 2), "spanID"), "000000000000000a");
    assert_string_equal(sget(json_array_get(refs, 0), "refType"), "CHILD_OF");
    assert_string_equal(sget(json_array_get(refs, 0), "traceID"),
                        "0102030405060708090a0b0c0d0e0f10");
    assert_string_equal(sget(json_array_get(refs, 0), "spanID"), "0000000000000001");
    assert_string_equal(sget(json_array_get(refs, 1), "refType"), "FOLLOWS_FROM");
    assert_string_equal(sget(json_array_get(refs, 1), "traceID"), "0000000000abcdef");
    assert_string_equal(sget(json_array_get(refs, 1), "spanID"), "0000000000000009");
    tags = json_object_get(s2, "tags");
    assert_string_equal(json_string_value(tag(tags, "span.kind", "string")), "client");
    assert_string_equal(json_string_value(tag(tags, "otel.status_code", "string")), "ERROR");
    assert_string_equal(json_string_value(tag(tags, "otel.status_description", "string")), "boom");
    assert_true(json_is_true(tag(tags, "error", "bool")));
    json_t *logs = json_object_get(s2, "logs");
    assert_int_equal(json_array_size(logs), 1);
    json_t *log = json_array_get(logs, 0);
    assert_int_equal(iget(log, "timestamp"), (f->t0 + 20 * MS) / 1000);
    json_t *fields = json_object_get(log, "fields");
    assert_int_equal(json_array_size(fields), 2);
    assert_string_equal(sget(json_array_get(fields, 0), "key"), "event");
    assert_string_equal(json_string_value(tag(fields, "event", "string")), "exception");
    assert_string_equal(json_string_value(tag(fields, "exception.message", "string")), "bad");

    json_t *s3 = span_by_id(t, "0000000000000003");
    assert_string_equal(sget(s3, "processID"), "p1");
    refs = json_object_get(s3, "references");
    assert_int_equal(json_array_size(refs), 1);
    assert_string_equal(sget(json_array_get(refs, 0), "refType"), "FOLLOWS_FROM");
    assert_string_equal(sget(json_array_get(refs, 0), "spanID"), "0000000000000001");
    tags = json_object_get(s3, "tags");
    assert_string_equal(json_string_value(tag(tags, "otel.status_code", "string")), "OK");
    assert_null(tag(tags, "error", "bool"));
    assert_string_equal(json_string_value(tag(tags, "span.kind", "string")), "internal");
    json_decref(j);

    /* upper-case hex is accepted too */
    j = get(f, "/api/traces/0102030405060708090A0B0C0D0E0F10", 200);
    assert_int_equal(json_array_size(data(j)), 1);
    json_decref(j);
}

static void test_trace_64(void **state)
{
    fx_t *f = *state;
    static const char *const paths[] = {"/api/traces/abcdef", "/api/traces/0000000000abcdef",
                                        "/api/traces/00000000000000000000000000abcdef"};
    for (size_t i = 0; i < 3; i++) {
        json_t *j = get(f, paths[i], 200);
        json_t *t = json_array_get(data(j), 0);
        assert_string_equal(sget(t, "traceID"), "0000000000abcdef");
        json_t *s = json_array_get(json_object_get(t, "spans"), 0);
        assert_string_equal(sget(s, "traceID"), "0000000000abcdef");
        assert_string_equal(sget(s, "operationName"), "cron");
        assert_int_equal(iget(s, "duration"), 2000000);
        json_t *tags = json_object_get(s, "tags");
        assert_string_equal(json_string_value(tag(tags, "span.kind", "string")), "producer");
        assert_int_equal(json_array_size(tags), 1);
        json_decref(j);
    }
}

static void test_trace_errors(void **state)
{
    fx_t *f = *state;
    char *body = NULL;
    assert_int_equal(
        wt_http(f->port, "GET", "/api/traces/0102030405060708090a0b0c0d0e0f11", NULL, 0, &body),
        404);
    assert_string_equal(body, "{\"data\":null,\"total\":0,\"limit\":0,\"offset\":0,\"errors\":[{"
                              "\"code\":404,\"msg\":\"trace not found\"}]}");
    wf_free(body);

    json_t *j = get(f, "/api/traces/zz", 400);
    assert_error(j, 400, "traceID");
    json_decref(j);
    j = get(f, "/api/traces/0102030405060708090a0b0c0d0e0f1011", 400); /* 34 digits */
    assert_error(j, 400, "traceID");
    json_decref(j);
}

/* The trace ids a search returns, in order, joined by spaces. */
static char *search(fx_t *f, const char *query)
{
    char path[512];
    snprintf(path, sizeof(path), "/api/traces?%s", query);
    json_t *j = get(f, path, 200);
    assert_true(json_is_null(json_object_get(j, "errors")));
    wf_buf_t b = WF_BUF_INIT;
    size_t i;
    json_t *t;
    json_array_foreach(data(j), i, t)
    {
        wf_buf_printf(&b, "%s%s", i > 0 ? " " : "", sget(t, "traceID"));
    }
    wf_buf_putc(&b, 0);
    json_decref(j);
    return (char *)wf_buf_detach(&b, NULL);
}

#define A "0102030405060708090a0b0c0d0e0f10"
#define B "0000000000abcdef"

static void expect_search(fx_t *f, const char *query, const char *want)
{
    char *got = search(f, query);
    if (strcmp(got, want) != 0) {
        fail_msg("search %s: got \"%s\", want \"%s\"", query, got, want);
    }
    wf_free(got);
}

static void test_search(void **state)
{
    fx_t *f = *state;
    expect_search(f, "service=frontend", A);
    expect_search(f, "service=backend", B " " A); /* newest matching span first */
    expect_search(f, "service=backend&limit=1", B);
    expect_search(f, "service=backend&operation=query", A);
    expect_search(f, "service=backend&operation=nope", "");
    expect_search(f, "service=nobody", "");
    /* tags={"http.method":"GET"} and tag=k:v */
    expect_search(f, "service=frontend&tags=%7B%22http.method%22%3A%22GET%22%7D", A);
    expect_search(f, "service=frontend&tags=%7B%22http.method%22%3A%22POST%22%7D", "");
    expect_search(f, "service=frontend&tag=http.status_code:200", A);
    expect_search(f, "service=backend&tag=pid:42", B " " A);
    /* span.kind is searched as the span's kind; error and the like are not attributes */
    expect_search(f, "service=backend&tag=span.kind:producer", B);
    expect_search(f, "service=backend&tag=span.kind:client", A);
    expect_search(f, "service=backend&tag=span.kind:server", "");
    expect_search(f, "service=backend&tag=span.kind:client&tag=span.kind:producer", "");
    expect_search(f, "service=frontend&tag=span.kind:server&tag=http.method:GET", A);
    expect_search(f, "service=frontend&tag=span.kind:internal&tag=http.method:GET", "");
    /* durations in Go syntax */
    expect_search(f, "service=backend&minDuration=1s", B);
    expect_search(f, "service=backend&minDuration=1.5s", B);
    expect_search(f, "service=backend&minDuration=2001ms", "");
    expect_search(f, "service=backend&minDuration=1m", "");
    expect_search(f, "service=backend&minDuration=1999999us", B);
    expect_search(f, "service=backend&minDuration=1s999ms", B);
    expect_search(f, "service=backend&maxDuration=100ms", A);
    expect_search(f, "service=backend&minDuration=10ms&maxDuration=1h", B " " A);
    /* time window in µs */
    char q[256];
    snprintf(q, sizeof(q), "service=backend&start=%lld&end=%lld", (long long)(f->t0 / 1000),
             (long long)((f->t0 + 500 * MS) / 1000));
    expect_search(f, q, A);
    snprintf(q, sizeof(q), "service=backend&start=%lld", (long long)((f->t0 + 500 * MS) / 1000));
    expect_search(f, q, B);
    expect_search(f, "service=backend&lookback=1m", ""); /* the spans are 10 minutes old */
    expect_search(f, "service=backend&lookback=1h", B " " A);
    /* explicit ids, one unknown */
    expect_search(f, "traceID=abcdef&traceID=" A, B " " A);
    json_t *j = get(f, "/api/traces?traceID=abcdef&traceID=123", 200);
    assert_int_equal(json_array_size(data(j)), 1);
    json_t *errs = json_object_get(j, "errors");
    assert_int_equal(json_array_size(errs), 1);
    assert_string_equal(sget(json_array_get(errs, 0), "msg"), "trace not found");
    assert_string_equal(sget(json_array_get(errs, 0), "traceID"), "0000000000000123");
    json_decref(j);
}

static void test_bad_params(void **state)
{
    fx_t *f = *state;
    static const struct {
        const char *path;
        const char *msg;
    } cases[] = {
        {"/api/traces?service=backend&minDuration=1x",
         "unable to parse param 'minDuration': time: unknown unit \"x\" in duration \"1x\""},
        {"/api/traces?service=backend&maxDuration=ms",
         "unable to parse param 'maxDuration': time: invalid duration \"ms\""},
        {"/api/traces?service=backend&minDuration=10", "missing unit"},
        {"/api/traces?service=backend&tags=%7Bnope", "malformed 'tags' parameter"},
        {"/api/traces?service=backend&tags=%7B%22a%22%3A1%7D", "malformed 'tags' parameter"},
        {"/api/traces?service=backend&tag=novalue", "malformed 'tag' parameter"},
        {"/api/traces?service=backend&start=2000&end=1000", "'start' should not be after 'end'"},
        {"/api/traces?service=backend&start=abc", "unable to parse param 'start'"},
        {"/api/traces?service=backend&limit=ten", "unable to parse param 'limit'"},
        {"/api/traces?service=backend&minDuration=2s&maxDuration=1s",
         "'maxDuration' should be greater than 'minDuration'"},
        {"/api/traces", "parameter 'service' is required"},
        {"/api/traces?traceID=xyz", "traceID"},
        {"/api/dependencies?endTs=soon", "unable to parse param 'endTs'"},
        {"/api/dependencies?lookback=1h", "unable to parse param 'lookback'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *j = get(f, cases[i].path, 400);
        assert_error(j, 400, cases[i].msg);
        json_decref(j);
    }
}

static void test_dependencies(void **state)
{
    fx_t *f = *state;
    char path[128];
    snprintf(path, sizeof(path), "/api/dependencies?endTs=%lld&lookback=3600000",
             (long long)(f->t0 / MS + 60000));
    json_t *j = get(f, path, 200);
    json_t *d = data(j);
    assert_int_equal(json_array_size(d), 1);
    json_t *dep = json_array_get(d, 0);
    assert_string_equal(sget(dep, "parent"), "frontend");
    assert_string_equal(sget(dep, "child"), "backend");
    assert_int_equal(iget(dep, "callCount"), 1);
    json_decref(j);

    j = get(f, "/api/dependencies", 200); /* now, 24 h back */
    assert_int_equal(json_array_size(data(j)), 1);
    json_decref(j);

    j = get(f, "/api/dependencies?service=nobody", 200);
    assert_int_equal(json_array_size(data(j)), 0);
    json_decref(j);

    /* a window that ends before the trace */
    snprintf(path, sizeof(path), "/api/dependencies?endTs=%lld&lookback=60000",
             (long long)(f->t0 / MS - 1));
    j = get(f, path, 200);
    assert_int_equal(json_array_size(data(j)), 0);
    json_decref(j);
}

/* Tags the span JSON shows without their being attributes (derived from the status, kind,
 * scope, trace state and event names) are searchable, on the same span as the other
 * conditions. */
static void test_search_derived(void **state)
{
    fx_t *f = *state;
    expect_search(f, "service=backend&tags=%7B%22error%22%3A%22true%22%7D", A);
    expect_search(f, "service=backend&tag=error:true&limit=1", A);
    expect_search(f, "service=frontend&tag=error:true", ""); /* the error is backend's span */
    expect_search(f, "service=backend&tag=error:false", "");
    expect_search(f, "service=backend&tag=error:true&operation=cron", "");
    expect_search(f, "service=backend&tag=error:true&tag=span.kind:client", A);
    expect_search(f, "service=backend&tag=otel.status_code:ERROR", A);
    expect_search(f, "service=frontend&tag=otel.status_code:OK", A);
    expect_search(f, "service=frontend&tag=otel.status_code:OK&operation=GET%20/", "");
    expect_search(f, "service=backend&tag=otel.status_description:boom", A);
    expect_search(f, "service=frontend&tag=otel.scope.name:lib&tag=otel.scope.version:1.0", A);
    expect_search(f, "service=frontend&tag=otel.scope.name:other", "");
    expect_search(f, "service=frontend&tag=w3c.tracestate:k=v", A);
    expect_search(f, "service=backend&tag=event:exception", A);
    expect_search(f, "service=backend&tag=event:exception&tag=exception.message:bad", A);
    expect_search(f, "service=backend&tag=span.kind:bogus", "");
    /* process tags (resource attributes) as Jaeger's storage indexes them */
    expect_search(f, "service=frontend&tag=host.name:h1", A);
    expect_search(f, "service=frontend&tag=host.name:h1&tag=error:true", "");
    /* a window that excludes the error span */
    char q[256];
    snprintf(q, sizeof(q), "service=backend&tag=error:true&start=%lld",
             (long long)((f->t0 + 500 * MS) / 1000));
    expect_search(f, q, "");
}

/* Zipkin's shared span: client and server report one span id. Jaeger's query service gives the
 * server span a fresh id with the client as its parent, and the server's children follow. */
static void test_zipkin_shared_id(void **state)
{
    fx_t *f = *state;
    static const uint8_t trace_c[16] = {0xcc, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xc1};
    const st_attr_t front[] = {
        {wf_str("service.name"), {.type = ST_VAL_STRING, .u.s = {"frontend", 8}}}};
    const st_attr_t back[] = {
        {wf_str("service.name"), {.type = ST_VAL_STRING, .u.s = {"backend", 7}}}};
    st_span_t sp[4];
    wt_spanfx_span(&sp[0], trace_c, 0x10, 0, "root", ST_SPAN_KIND_SERVER, f->t0, f->t0 + 50 * MS,
                   front, 1);
    wt_spanfx_span(&sp[1], trace_c, 0x20, 0x10, "call", ST_SPAN_KIND_CLIENT, f->t0 + 1 * MS,
                   f->t0 + 40 * MS, front, 1);
    wt_spanfx_span(&sp[2], trace_c, 0x20, 0x10, "serve", ST_SPAN_KIND_SERVER, f->t0 + 2 * MS,
                   f->t0 + 30 * MS, back, 1);
    wt_spanfx_span(&sp[3], trace_c, 0x21, 0x20, "db", ST_SPAN_KIND_INTERNAL, f->t0 + 3 * MS,
                   f->t0 + 10 * MS, back, 1);
    /* as Zipkin ingest keeps it: the error tag as an attribute, and the status */
    const st_attr_t zipkin_error[] = {
        {wf_str("error"), {.type = ST_VAL_STRING, .u.s = {"deadline", 8}}},
        {wf_str("otel.status_code"), {.type = ST_VAL_STRING, .u.s = {"ERROR", 5}}},
    };
    sp[2].attrs = zipkin_error;
    sp[2].n_attrs = 2;
    sp[2].status_code = ST_STATUS_ERROR;
    sp[2].status_message = wf_str("deadline");
    wt_spanfx_append(f, sp, 4);

    json_t *j = get(f, "/api/traces/cc0000000000000000000000000000c1", 200);
    json_t *t = json_array_get(data(j), 0);
    assert_int_equal(json_array_size(json_object_get(t, "spans")), 4);
    json_t *client = span_by_id(t, "0000000000000020");
    assert_string_equal(sget(client, "operationName"), "call");
    json_t *server = span_by_id(t, "0000000000000001");
    assert_string_equal(sget(server, "operationName"), "serve");
    json_t *refs = json_object_get(server, "references");
    assert_int_equal(json_array_size(refs), 1);
    assert_string_equal(sget(json_array_get(refs, 0), "refType"), "CHILD_OF");
    assert_string_equal(sget(json_array_get(refs, 0), "spanID"), "0000000000000020");
    /* one error tag, the derived boolean (tag() fails on a repeated key) */
    json_t *tags = json_object_get(server, "tags");
    assert_true(json_is_true(tag(tags, "error", "bool")));
    assert_string_equal(json_string_value(tag(tags, "otel.status_code", "string")), "ERROR");
    assert_string_equal(json_string_value(tag(tags, "otel.status_description", "string")),
                        "deadline");
    json_t *db = span_by_id(t, "0000000000000021");
    refs = json_object_get(db, "references");
    assert_int_equal(json_array_size(refs), 1);
    assert_string_equal(sget(json_array_get(refs, 0), "spanID"), "0000000000000001");
    refs = json_object_get(span_by_id(t, "0000000000000010"), "references");
    assert_int_equal(json_array_size(refs), 0);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_services, setup, teardown),
        cmocka_unit_test_setup_teardown(test_operations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trace_128, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trace_64, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trace_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_params, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dependencies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search_derived, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zipkin_shared_id, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
