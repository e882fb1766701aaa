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
#include "wt_util.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#define MS 1000000LL

typedef struct {
    char *dir;
    st_store_t *s;
    col_http_t *h;
    int port;
    int64_t t0; /* ns, start of trace A */
} fx_t;

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
    memset(sp, 0, sizeof(sp));
    /* A1: frontend root, every attribute type, scope, trace state */
    memcpy(sp[0].trace_id, TRACE_A, 16);
    sp[0].span_id[7] = 1;
    sp[0].trace_state = wf_str("k=v");
    sp[0].flags = 1;
    sp[0].name = wf_str("GET /");
    sp[0].kind = ST_SPAN_KIND_SERVER;
    sp[0].start_ns = f->t0;
    sp[0].end_ns = f->t0 + 100 * MS;
    sp[0].service = wf_str("frontend");
    sp[0].scope_name = wf_str("lib");
    sp[0].scope_version = wf_str("1.0");
    sp[0].resource_attrs = res_front;
    sp[0].n_resource_attrs = 2;
    sp[0].attrs = root_attrs;
    sp[0].n_attrs = sizeof(root_attrs) / sizeof(root_attrs[0]);
    /* A2: backend client child with an error, an event and a link */
    memcpy(sp[1].trace_id, TRACE_A, 16);
    sp[1].span_id[7] = 2;
    sp[1].parent_span_id[7] = 1;
    sp[1].name = wf_str("query");
    sp[1].kind = ST_SPAN_KIND_CLIENT;
    sp[1].start_ns = f->t0 + 10 * MS;
    sp[1].end_ns = f->t0 + 60 * MS + 1500; /* 50.0015 ms: the µs duration truncates */
    sp[1].status_code = ST_STATUS_ERROR;
    sp[1].status_message = wf_str("boom");
    sp[1].service = wf_str("backend");
    sp[1].resource_attrs = res_back;
    sp[1].n_resource_attrs = 2;
    sp[1].events = events;
    sp[1].n_events = 1;
    sp[1].links = links;
    sp[1].n_links = 2;
    /* A3: frontend internal child, same process as A1 */
    memcpy(sp[2].trace_id, TRACE_A, 16);
    sp[2].span_id[7] = 3;
    sp[2].parent_span_id[7] = 1;
    sp[2].name = wf_str("render");
    sp[2].kind = ST_SPAN_KIND_INTERNAL;
    sp[2].start_ns = f->t0 + 70 * MS;
    sp[2].end_ns = f->t0 + 75 * MS;
    sp[2].status_code = ST_STATUS_OK;
    sp[2].service = wf_str("frontend");
    sp[2].resource_attrs = res_front;
    sp[2].n_resource_attrs = 2;
    sp[2].links = &parent_link;
    sp[2].n_links = 1;
    /* B1: a 64-bit trace, 2 s long */
    memcpy(sp[3].trace_id, TRACE_B, 16);
    sp[3].span_id[7] = 9;
    sp[3].name = wf_str("cron");
    sp[3].kind = ST_SPAN_KIND_PRODUCER;
    sp[3].start_ns = f->t0 + 1000 * MS;
    sp[3].end_ns = f->t0 + 3000 * MS;
    sp[3].service = wf_str("backend");
    sp[3].resource_attrs = res_back;
    sp[3].n_resource_attrs = 2;
    size_t bad = 0;
    assert_int_equal(st_spans_append(f->s, sp, 4, &bad), 0);
}

static int setup(void **state)
{
    fx_t *f = wf_calloc(1, sizeof(*f));
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    /* ten minutes ago, whole milliseconds: inside retention and the default search window */
    f->t0 = ((int64_t)ts.tv_sec - 600) * 1000 * MS;
    f->dir = wt_tmpdir("col_jaeger");
    st_options_t o;
    st_options_default(&o);
    o.dir = f->dir;
    assert_int_equal(st_store_open(&o, &f->s), 0);
    write_spans(f);
    col_http_options_t ho = {.threads = 2};
    assert_int_equal(col_http_new(&ho, &f->h), 0);
    col_jaeger_register(f->h, f->s);
    f->port = wt_free_port();
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", f->port);
    assert_int_equal(col_http_listen(f->h, addr), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    col_http_free(f->h);
    st_store_close(f->s);
    wt_rm_rf(f->dir);
    wf_free(f->dir);
    wf_free(f);
    return 0;
}

/* GET path; checks the status and that the envelope's constant fields are Jaeger's. */
static json_t *get(fx_t *f, const char *path, int want_status)
{
    char *body = NULL;
    int st = wt_http(f->port, "GET", path, NULL, 0, &body);
    if (st != want_status) {
        fprintf(stderr, "GET %s: %d %s\n", path, st, body ? body : "");
    }
    assert_int_equal(st, want_status);
    json_error_t je;
    json_t *j = json_loads(body, 0, &je);
    if (j == NULL) {
        fprintf(stderr, "GET %s: bad JSON %s: %s\n", path, je.text, body);
    }
    assert_non_null(j);
    wf_free(body);
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
    /* Jaeger's translator order: scope, attributes, derived tags */
    assert_string_equal(sget(json_array_get(tags, 0), "key"), "otel.scope.name");
    assert_string_equal(sget(json_array_get(tags, 1), "key"), "otel.scope.version");
    assert_string_equal(sget(json_array_get(tags, 2), "key"), "http.method");
    assert_string_equal(sget(json_array_get(tags, 8), "key"), "span.kind");
    assert_string_equal(sget(json_array_get(tags, 9), "key"), "w3c.tracestate");

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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
