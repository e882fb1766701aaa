/*
 * test_col_zipkin.c - the Zipkin API v2 (col_zipkin.h) against a real store in a temporary
 * directory, with the write queue on a second thread: the spans the OpenTelemetry JS Zipkin
 * exporter really sent (shared/ref/otel-captures/07..09) read back field for field through
 * /api/v2/trace/{id} and /api/v2/traces; a hand-written span with every field (and its shared
 * client twin) round-tripped exactly; the query endpoints' filters and shapes; malformed and
 * oversized input; and the routes served by a real HTTP server.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "col_http.h"
#include "col_writer.h"
#include "col_zipkin.h"
#include "st_store.h"
#include "wf_alloc.h"
#include "wf_arena.h"
#include "wf_buf.h"
#include "wt_colfx.h"
#include "wt_util.h"

#define CAPTURE_MS 1795634004970LL /* the captured spans' start, in ms */
#define T0 (CAPTURE_MS + 60000)    /* the store's fake "now" */
#define TRACE "a6996d9594ccf3c45c3da2dc100c79b1"

typedef wt_colfx_t fx_t;

static int setup(void **state)
{
    *state = wt_colfx_open("col_zipkin", T0, 0, 0);
    return 0;
}

static int teardown(void **state)
{
    wt_colfx_close(*state);
    return 0;
}

/*
 * Call handler with a request: query is "a=b&c=d" (not percent-encoded), body may be NULL.
 * Returns the status; the response body (NUL-terminated) in *out when out is not NULL.
 */
static unsigned call(col_handler_cb h, void *arg, const char *method, const char *path,
                     const char *query, const char *body, size_t len, wf_buf_t *out)
{
    wf_arena_t arena;
    wf_arena_init(&arena, 4096, 0);
    uint8_t *copy = wf_malloc(len + 1);
    if (len > 0) {
        memcpy(copy, body, len);
    }
    copy[len] = 0;
    col_param_t params[16];
    size_t np = 0;
    char *q = query != NULL ? wf_arena_strndup(&arena, query, strlen(query)) : NULL;
    for (char *tok = q != NULL ? strtok(q, "&") : NULL; tok != NULL; tok = strtok(NULL, "&")) {
        assert_true(np < 16);
        char *eq = strchr(tok, '=');
        assert_non_null(eq);
        *eq = '\0';
        params[np].name = tok;
        params[np].value = eq + 1;
        np++;
    }
    col_req_t req = {.method = method,
                     .path = path,
                     .body = copy,
                     .body_len = len,
                     .arena = &arena,
                     .params = params,
                     .nparams = np};
    col_resp_t resp;
    memset(&resp, 0, sizeof(resp));
    resp.status = 200;
    resp.content_type = "application/json";
    h(arg, &req, &resp);
    if (out != NULL) {
        wf_buf_reset(out);
        wf_buf_append(out, resp.body.data, resp.body.len);
        wf_buf_cstr(out);
    }
    if (resp.status >= 400) {
        assert_true(strncmp(resp.content_type, "text/plain", 10) == 0);
    }
    unsigned st = resp.status;
    wf_buf_free(&resp.body);
    wf_free(copy);
    wf_arena_free(&arena);
    return st;
}

static unsigned post(fx_t *f, const char *body, wf_buf_t *out)
{
    return call(col_zipkin_spans_handler, f->wr, "POST", "/api/v2/spans", NULL, body, strlen(body),
                out);
}

/* GET a query endpoint; the body parsed as JSON into *out (when 200). */
static unsigned get(fx_t *f, col_handler_cb h, const char *path, const char *query, json_t **out)
{
    wf_buf_t b = WF_BUF_INIT;
    unsigned st = call(h, f->s, "GET", path, query, NULL, 0, &b);
    if (out != NULL) {
        *out = NULL;
        if (st == 200) {
            json_error_t err;
            *out = json_loadb((const char *)b.data, b.len, 0, &err);
            if (*out == NULL) {
                fail_msg("bad JSON from %s: %s: %s", path, err.text, (const char *)b.data);
            }
        }
    }
    wf_buf_free(&b);
    return st;
}

/* Assert that JSON value got equals the JSON text want (objects compared without order). */
static void assert_json(const json_t *got, const char *want)
{
    json_error_t err;
    json_t *w = json_loads(want, 0, &err);
    if (w == NULL) {
        fail_msg("bad expected JSON: %s", err.text);
    }
    if (!json_equal(got, w)) {
        char *g = json_dumps(got, JSON_COMPACT);
        fprintf(stderr, "got:  %s\nwant: %s\n", g, want);
        free(g);
        fail();
    }
    json_decref(w);
}

static char *read_capture(int n)
{
    char rel[64];
    snprintf(rel, sizeof(rel), "otel-captures/%02d-zipkin.body.json", n);
    char *path = wt_ref_path(rel);
    if (path == NULL) {
        return NULL;
    }
    size_t len;
    char *body = wt_read_file(path, &len);
    assert_non_null(body);
    wf_free(path);
    return body;
}

static void test_capture(void **state)
{
    fx_t *f = *state;
    char *bodies[3];
    for (int i = 0; i < 3; i++) {
        bodies[i] = read_capture(7 + i);
        if (bodies[i] == NULL) {
            for (int j = 0; j < i; j++) {
                wf_free(bodies[j]);
            }
            wt_skip();
        }
    }
    wf_buf_t out = WF_BUF_INIT;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(post(f, bodies[i], &out), 202);
        assert_int_equal(out.len, 0);
    }
    /* Every field reads back as sent; the trace is ordered by start: 09 (server), 08, 07. */
    json_t *got;
    assert_int_equal(get(f, col_zipkin_trace_handler, "/api/v2/trace/" TRACE, NULL, &got), 200);
    assert_true(json_is_array(got));
    assert_int_equal(json_array_size(got), 3);
    for (int i = 0; i < 3; i++) {
        json_t *sent = json_loads(bodies[2 - i], 0, NULL);
        assert_non_null(sent);
        if (!json_equal(json_array_get(got, i), json_array_get(sent, 0))) {
            char *g = json_dumps(json_array_get(got, i), JSON_COMPACT);
            fprintf(stderr, "got:  %s\nsent: %s\n", g, bodies[2 - i]);
            free(g);
            fail();
        }
        json_decref(sent);
    }
    json_t *search;
    assert_int_equal(get(f, col_zipkin_traces_handler, "/api/v2/traces",
                         "serviceName=capture-demo&endTs=1795634064970&lookback=3600000", &search),
                     200);
    assert_int_equal(json_array_size(search), 1);
    assert_true(json_equal(json_array_get(search, 0), got));
    json_decref(search);
    /* The query API's other views of it. */
    json_t *v;
    assert_int_equal(get(f, col_zipkin_services_handler, "/api/v2/services", NULL, &v), 200);
    assert_json(v, "[\"capture-demo\"]");
    json_decref(v);
    assert_int_equal(
        get(f, col_zipkin_span_names_handler, "/api/v2/spans", "serviceName=capture-demo", &v),
        200);
    assert_json(v, "[\"GET /checkout\",\"SELECT orders\",\"compute-total\"]");
    json_decref(v);
    /* Zipkin lowercases the names in queries: "select orders" finds the stored "SELECT orders" */
    assert_int_equal(get(f, col_zipkin_traces_handler, "/api/v2/traces",
                         "serviceName=Capture-Demo&spanName=select orders&endTs=1795634064970", &v),
                     200);
    assert_int_equal(json_array_size(v), 1);
    json_decref(v);
    assert_int_equal(
        get(f, col_zipkin_span_names_handler, "/api/v2/spans", "serviceName=CAPTURE-DEMO", &v),
        200);
    assert_int_equal(json_array_size(v), 3);
    json_decref(v);
    assert_int_equal(get(f, col_zipkin_traces_handler, "/api/v2/traces",
                         "serviceName=capture-demo&spanName=compute-total&annotationQuery="
                         "cache-miss and items.count=3&endTs=1795634064970",
                         &v),
                     200);
    assert_int_equal(json_array_size(v), 1);
    json_decref(v);
    assert_int_equal(get(f, col_zipkin_traces_handler, "/api/v2/traces",
                         "serviceName=capture-demo&annotationQuery=items.count=4&endTs="
                         "1795634064970",
                         &v),
                     200);
    assert_json(v, "[]");
    json_decref(v);
    assert_int_equal(get(f, col_zipkin_traces_handler, "/api/v2/traces",
                         "annotationQuery=no-such-annotation&endTs=1795634064970", &v),
                     200);
    assert_json(v, "[]");
    json_decref(v);
    /* One service only: no dependency links. */
    assert_int_equal(
        get(f, col_zipkin_dependencies_handler, "/api/v2/dependencies", "endTs=1795634064970", &v),
        200);
    assert_json(v, "[]");
    json_decref(v);
    json_decref(got);
    wf_buf_free(&out);
    for (int i = 0; i < 3; i++) {
        wf_free(bodies[i]);
    }
}

/* Every field of the model; a 64-bit trace id; and the server half of a shared span. */
#define FULL_CLIENT                                                                                \
    "{\"traceId\":\"00000000000000a1\",\"parentId\":\"00000000000000b1\","                         \
    "\"id\":\"00000000000000c1\",\"kind\":\"CLIENT\",\"name\":\"get /api\","                       \
    "\"timestamp\":1795634000000001,\"duration\":2500,"                                            \
    "\"localEndpoint\":{\"serviceName\":\"frontend\",\"ipv4\":\"10.0.0.1\","                       \
    "\"ipv6\":\"2001:db8::1\",\"port\":8080},"                                                     \
    "\"remoteEndpoint\":{\"serviceName\":\"backend\",\"ipv4\":\"10.0.0.2\","                       \
    "\"ipv6\":\"2001:db8::2\",\"port\":9000},"                                                     \
    "\"annotations\":[{\"timestamp\":1795634000000100,\"value\":\"ws\"},"                          \
    "{\"timestamp\":1795634000002000,\"value\":\"wr \\\"q\\\" \\u00e9\"}],"                        \
    "\"tags\":{\"http.path\":\"/api\",\"http.method\":\"GET\",\"empty\":\"\","                     \
    "\"multi\":\"line\\nbreak\"},\"debug\":true}"
#define FULL_SERVER                                                                                \
    "{\"traceId\":\"00000000000000a1\",\"parentId\":\"00000000000000b1\","                         \
    "\"id\":\"00000000000000c1\",\"kind\":\"SERVER\",\"name\":\"get /api\","                       \
    "\"timestamp\":1795634000000500,\"duration\":1000,"                                            \
    "\"localEndpoint\":{\"serviceName\":\"backend\",\"ipv4\":\"10.0.0.2\",\"port\":9000},"         \
    "\"remoteEndpoint\":{\"ipv4\":\"10.0.0.1\"},"                                                  \
    "\"tags\":{\"http.status_code\":\"200\"},\"shared\":true}"
#define ROOT_SPAN                                                                                  \
    "{\"traceId\":\"00000000000000a1\",\"id\":\"00000000000000b1\",\"name\":\"main\","             \
    "\"timestamp\":1795634000000000,\"duration\":5000,"                                            \
    "\"localEndpoint\":{\"serviceName\":\"frontend\"}}"

static void test_full_round_trip(void **state)
{
    fx_t *f = *state;
    wf_buf_t out = WF_BUF_INIT;
    assert_int_equal(post(f, "[" FULL_SERVER "," FULL_CLIENT "," ROOT_SPAN "]", &out), 202);
    assert_int_equal(out.len, 0);
    json_t *got;
    assert_int_equal(get(f, col_zipkin_trace_handler, "/api/v2/trace/00000000000000a1", NULL, &got),
                     200);
    /* Both halves of the shared span are kept; ordered by start. */
    assert_json(got, "[" ROOT_SPAN "," FULL_CLIENT "," FULL_SERVER "]");
    json_decref(got);
    /* The 128-bit spelling of a 64-bit id names the same trace. */
    assert_int_equal(get(f, col_zipkin_trace_handler,
                         "/api/v2/trace/000000000000000000000000000000a1", NULL, &got),
                     200);
    assert_int_equal(json_array_size(got), 3);
    json_decref(got);
    /* traceMany: the traces that exist, each once; at least two unique ids. */
    assert_int_equal(
        get(f, col_zipkin_trace_many_handler, "/api/v2/traceMany",
            "traceIds=00000000000000a1,00000000000000ff,000000000000000000000000000000a1,"
            "00000000000000a2",
            &got),
        200);
    assert_int_equal(json_array_size(got), 1);
    assert_int_equal(json_array_size(json_array_get(got, 0)), 3);
    json_decref(got);
    assert_int_equal(get(f, col_zipkin_trace_many_handler, "/api/v2/traceMany",
                         "traceIds=00000000000000a1", NULL),
                     400);
    assert_int_equal(get(f, col_zipkin_trace_many_handler, "/api/v2/traceMany",
                         "traceIds=00000000000000a1,00000000000000a1", NULL),
                     400);
    assert_int_equal(get(f, col_zipkin_trace_many_handler, "/api/v2/traceMany",
                         "traceIds=00000000000000a1,xyz", NULL),
                     400);
    assert_int_equal(get(f, col_zipkin_trace_many_handler, "/api/v2/traceMany",
                         "traceIds=00000000000000a1,", NULL),
                     400);
    assert_int_equal(get(f, col_zipkin_trace_many_handler, "/api/v2/traceMany", NULL, NULL), 400);

    json_t *v;
    assert_int_equal(get(f, col_zipkin_services_handler, "/api/v2/services", NULL, &v), 200);
    assert_json(v, "[\"backend\",\"frontend\"]");
    json_decref(v);
    assert_int_equal(
        get(f, col_zipkin_span_names_handler, "/api/v2/spans", "serviceName=frontend", &v), 200);
    assert_json(v, "[\"get /api\",\"main\"]");
    json_decref(v);
    assert_int_equal(get(f, col_zipkin_remote_services_handler, "/api/v2/remoteServices",
                         "serviceName=frontend", &v),
                     200);
    assert_json(v, "[\"backend\"]");
    json_decref(v);
    assert_int_equal(get(f, col_zipkin_remote_services_handler, "/api/v2/remoteServices",
                         "serviceName=backend", &v),
                     200);
    assert_json(v, "[]");
    json_decref(v);
    /* The server half's parent (b1, the root) is in frontend: one call frontend -> backend; the
     * client half's parent is in its own service and counts nothing. */
    assert_int_equal(get(f, col_zipkin_dependencies_handler, "/api/v2/dependencies",
                         "endTs=1795634001000&lookback=60000", &v),
                     200);
    assert_json(v, "[{\"parent\":\"frontend\",\"child\":\"backend\",\"callCount\":1}]");
    json_decref(v);
    /* Outside the window: nothing. */
    assert_int_equal(get(f, col_zipkin_dependencies_handler, "/api/v2/dependencies",
                         "endTs=1795633000000&lookback=60000", &v),
                     200);
    assert_json(v, "[]");
    json_decref(v);
    wf_buf_free(&out);
}

/* Post n single-span traces of service svc: trace ids base+i, durations (i+1) ms, 1 s apart. */
static void post_traces(fx_t *f, const char *svc, int base, int n)
{
    for (int i = 0; i < n; i++) {
        char body[512];
        snprintf(body, sizeof(body),
                 "[{\"traceId\":\"%016x\",\"id\":\"%016x\",\"name\":\"op%d\",\"kind\":\"SERVER\","
                 "\"timestamp\":%lld,\"duration\":%d,\"localEndpoint\":{\"serviceName\":\"%s\"},"
                 "\"tags\":{\"i\":\"%d\"}}]",
                 base + i, base + i, i % 2, (long long)(CAPTURE_MS - 100000 + i * 1000) * 1000,
                 (i + 1) * 1000, svc, i);
        assert_int_equal(post(f, body, NULL), 202);
    }
}

/* The trace ids (as numbers) of a search answer, in order, into ids; returns how many. */
static size_t search(fx_t *f, const char *query, unsigned *ids, size_t max)
{
    json_t *v;
    assert_int_equal(get(f, col_zipkin_traces_handler, "/api/v2/traces", query, &v), 200);
    size_t n = json_array_size(v);
    assert_true(n <= max);
    for (size_t i = 0; i < n; i++) {
        json_t *tr = json_array_get(v, i);
        assert_int_equal(json_array_size(tr), 1);
        const char *id = json_string_value(json_object_get(json_array_get(tr, 0), "traceId"));
        assert_non_null(id);
        ids[i] = (unsigned)strtoul(id, NULL, 16);
    }
    json_decref(v);
    return n;
}

static void test_traces_query(void **state)
{
    fx_t *f = *state;
    post_traces(f, "svc-a", 0x100, 6);
    post_traces(f, "svc-b", 0x200, 2);
    unsigned ids[16];
    const char *end = "endTs=1795634064970";
    char q[256];
    /* Newest first; limit. */
    snprintf(q, sizeof(q), "serviceName=svc-a&%s&limit=3", end);
    assert_int_equal(search(f, q, ids, 16), 3);
    assert_int_equal(ids[0], 0x105);
    assert_int_equal(ids[1], 0x104);
    assert_int_equal(ids[2], 0x103);
    /* spanName. */
    snprintf(q, sizeof(q), "serviceName=svc-a&spanName=op1&%s", end);
    assert_int_equal(search(f, q, ids, 16), 3);
    assert_int_equal(ids[0], 0x105);
    assert_int_equal(ids[2], 0x101);
    snprintf(q, sizeof(q), "serviceName=svc-a&spanName=all&%s", end);
    assert_int_equal(search(f, q, ids, 16), 6);
    /* Durations in µs: 2 ms .. 4 ms inclusive. */
    snprintf(q, sizeof(q), "serviceName=svc-a&minDuration=2000&maxDuration=4000&%s", end);
    assert_int_equal(search(f, q, ids, 16), 3);
    assert_int_equal(ids[0], 0x103);
    assert_int_equal(ids[2], 0x101);
    /* The time window: traces started 100 s .. 95 s before CAPTURE_MS; a 97.5 s lookback from
     * CAPTURE_MS sees the last three. */
    assert_int_equal(search(f, "serviceName=svc-a&endTs=1795634004970&lookback=97500", ids, 16), 3);
    assert_int_equal(ids[2], 0x103);
    assert_int_equal(search(f, "serviceName=svc-a&endTs=1795633000000", ids, 16), 0);
    /* A tag; every service. */
    snprintf(q, sizeof(q), "annotationQuery=i=1&%s", end);
    assert_int_equal(search(f, q, ids, 16), 2);
    assert_int_equal(ids[0] + ids[1], 0x201 + 0x101);
    assert_true(ids[0] == 0x101 || ids[0] == 0x201);
    /* Malformed parameters. */
    assert_int_equal(get(f, col_zipkin_traces_handler, "/api/v2/traces", "limit=ten", NULL), 400);
    assert_int_equal(get(f, col_zipkin_traces_handler, "/api/v2/traces", "minDuration=-1", NULL),
                     400);
    assert_int_equal(get(f, col_zipkin_span_names_handler, "/api/v2/spans", NULL, NULL), 400);
    assert_int_equal(
        get(f, col_zipkin_remote_services_handler, "/api/v2/remoteServices", NULL, NULL), 400);
    assert_int_equal(
        get(f, col_zipkin_dependencies_handler, "/api/v2/dependencies", "lookback=5", NULL), 400);
    /* Unknown and malformed trace ids. */
    assert_int_equal(get(f, col_zipkin_trace_handler, "/api/v2/trace/00000000000000ff", NULL, NULL),
                     404);
    assert_int_equal(get(f, col_zipkin_trace_handler, "/api/v2/trace/xyz", NULL, NULL), 400);
    assert_int_equal(get(f, col_zipkin_trace_handler, "/api/v2/trace/0000000000000000", NULL, NULL),
                     400);
    assert_int_equal(get(f, col_zipkin_trace_handler, "/api/v2/trace/", NULL, NULL), 400);
}

static void expect_400(fx_t *f, const char *body, const char *msg)
{
    wf_buf_t out = WF_BUF_INIT;
    unsigned st = post(f, body, &out);
    if (st != 400 || strstr((const char *)out.data, msg) == NULL) {
        fail_msg("%s: got %u \"%s\", want 400 with \"%s\"", body, st,
                 out.data ? (const char *)out.data : "", msg);
    }
    wf_buf_free(&out);
}

#define OK_IDS "\"traceId\":\"0000000000000001\",\"id\":\"0000000000000002\""
#define OK_TS "\"timestamp\":1795634000000000"

static void test_malformed(void **state)
{
    fx_t *f = *state;
    expect_400(f, "", "malformed JSON");
    expect_400(f, "[{", "malformed JSON");
    expect_400(f, "{}", "expected a JSON array");
    expect_400(f, "[1]", "span 0: not a JSON object");
    expect_400(f, "[{\"id\":\"0000000000000002\"," OK_TS "}]", "traceId is required");
    expect_400(f, "[{\"traceId\":\"0000000000000001\"," OK_TS "}]", "id is required");
    expect_400(f, "[{\"traceId\":\"000000000000001\",\"id\":\"0000000000000002\"," OK_TS "}]",
               "not 16 or 32 hex");
    expect_400(f, "[{\"traceId\":\"000000000000000g\",\"id\":\"0000000000000002\"," OK_TS "}]",
               "not 16 or 32 hex");
    expect_400(f, "[{\"traceId\":1,\"id\":\"0000000000000002\"," OK_TS "}]",
               "traceId must be a string");
    expect_400(
        f,
        "[{\"traceId\":\"00000000000000000000000000000000\",\"id\":\"0000000000000002\"," OK_TS
        "}]",
        "traceId is zero");
    expect_400(f, "[{\"traceId\":\"0000000000000001\",\"id\":\"0000000000000000\"," OK_TS "}]",
               "id is zero");
    expect_400(
        f,
        "[{\"traceId\":\"0000000000000001\",\"id\":\"00000000000000000000000000000002\"," OK_TS
        "}]",
        "not 16 hex");
    expect_400(f, "[{" OK_IDS ",\"parentId\":\"12\"," OK_TS "}]", "parentId 12 is not");
    expect_400(f, "[{" OK_IDS ",\"kind\":\"SIDEWAYS\"," OK_TS "}]", "unknown kind SIDEWAYS");
    expect_400(f, "[{" OK_IDS "}]", "timestamp is required");
    expect_400(f, "[{" OK_IDS ",\"timestamp\":\"1\"}]", "timestamp must be");
    expect_400(f, "[{" OK_IDS ",\"timestamp\":-1}]", "timestamp must be");
    expect_400(f, "[{" OK_IDS ",\"timestamp\":1.5}]", "timestamp must be");
    expect_400(f, "[{" OK_IDS "," OK_TS ",\"duration\":-3}]", "duration must be");
    expect_400(f, "[{" OK_IDS "," OK_TS ",\"tags\":{\"a\":1}}]", "tag a must be a string");
    expect_400(f, "[{" OK_IDS "," OK_TS ",\"tags\":[]}]", "tags must be an object");
    expect_400(f, "[{" OK_IDS "," OK_TS ",\"annotations\":{}}]", "annotations must be an array");
    expect_400(f, "[{" OK_IDS "," OK_TS ",\"annotations\":[{\"timestamp\":1}]}]",
               "needs timestamp and value");
    expect_400(f, "[{" OK_IDS "," OK_TS ",\"localEndpoint\":{\"port\":70000}}]",
               "localEndpoint.port");
    expect_400(f, "[{" OK_IDS "," OK_TS ",\"remoteEndpoint\":\"x\"}]",
               "remoteEndpoint must be an object");
    expect_400(f, "[{" OK_IDS "," OK_TS ",\"debug\":\"yes\"}]", "debug must be a boolean");
    /* Valid JSON the store refuses: far in the future. */
    expect_400(f, "[{" OK_IDS ",\"timestamp\":2795634000000000}]", "span 0:");
    /* One bad span fails the whole request: nothing of it is stored. */
    expect_400(f,
               "[{" OK_IDS "," OK_TS ",\"localEndpoint\":{\"serviceName\":\"good\"}},"
               "{\"traceId\":\"0000000000000001\"}]",
               "span 1: id is required");
    json_t *v;
    assert_int_equal(get(f, col_zipkin_services_handler, "/api/v2/services", NULL, &v), 200);
    assert_json(v, "[]");
    json_decref(v);
    /* An empty batch is fine; unknown members are ignored; no service is unknown_service,
     * which reads back without a localEndpoint. */
    assert_int_equal(post(f, "[]", NULL), 202);
    assert_int_equal(post(f, "[{" OK_IDS "," OK_TS ",\"extra\":{\"x\":[1]}}]", NULL), 202);
    assert_int_equal(get(f, col_zipkin_trace_handler, "/api/v2/trace/0000000000000001", NULL, &v),
                     200);
    assert_json(v, "[{" OK_IDS "," OK_TS "}]");
    json_decref(v);
}

static void test_limits(void **state)
{
    fx_t *f = *state;
    /* More tags than the store keeps for one span. */
    wf_buf_t b = WF_BUF_INIT;
    wf_buf_puts(&b, "[{" OK_IDS "," OK_TS ",\"tags\":{");
    for (int i = 0; i < 1100; i++) {
        wf_buf_printf(&b, "%s\"k%d\":\"v\"", i > 0 ? "," : "", i);
    }
    wf_buf_puts(&b, "}}]");
    wf_buf_t out = WF_BUF_INIT;
    assert_int_equal(post(f, wf_buf_cstr(&b), &out), 413);
    assert_non_null(strstr((const char *)out.data, "span 0"));
    /* A tag value longer than the store's string limit. */
    wf_buf_reset(&b);
    wf_buf_puts(&b, "[{" OK_IDS "," OK_TS ",\"tags\":{\"big\":\"");
    for (int i = 0; i < 70000; i++) {
        wf_buf_putc(&b, 'x');
    }
    wf_buf_puts(&b, "\"}}]");
    assert_int_equal(post(f, wf_buf_cstr(&b), NULL), 413);
    wf_buf_free(&out);
    wf_buf_free(&b);
}

/* The decoder and the JSON writer agree: what is written decodes to the same JSON again. */
static void test_decode_encode(void **state)
{
    (void)state;
    const char *in = "[" FULL_CLIENT "," FULL_SERVER "," ROOT_SPAN "]";
    wf_arena_t arena;
    wf_arena_init(&arena, 4096, 0);
    st_span_t *spans;
    size_t n;
    char err[256];
    assert_int_equal(
        col_zipkin_decode((const uint8_t *)in, strlen(in), &arena, &spans, &n, err, sizeof(err)),
        0);
    assert_int_equal(n, 3);
    assert_int_equal(spans[0].kind, ST_SPAN_KIND_CLIENT);
    assert_int_equal(spans[0].start_ns, 1795634000000001000LL);
    assert_int_equal(spans[0].end_ns, 1795634000002501000LL);
    assert_int_equal(spans[0].trace_id[15], 0xa1);
    assert_int_equal(spans[0].trace_id[7], 0);
    assert_int_equal(spans[0].n_events, 2);
    assert_int_equal(spans[2].kind, ST_SPAN_KIND_INTERNAL);
    wf_buf_t b = WF_BUF_INIT;
    wf_buf_putc(&b, '[');
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            wf_buf_putc(&b, ',');
        }
        col_zipkin_span_json(&b, &spans[i]);
    }
    wf_buf_putc(&b, ']');
    json_t *got = json_loadb((const char *)b.data, b.len, 0, NULL);
    assert_non_null(got);
    assert_json(got, in);
    json_decref(got);
    wf_buf_free(&b);
    wf_arena_free(&arena);
}

/* A span as OTLP stores it (typed attributes, status in the model, no Zipkin flags) is shown as
 * the OTel Zipkin exporter would send it; attributes that only look like endpoint ones stay
 * tags. */
static void test_otlp_span_json(void **state)
{
    (void)state;
    st_attr_t res[] = {
        {WF_STR_LIT("service.name"), {.type = ST_VAL_STRING, .u.s = WF_STR_LIT("checkout")}}};
    st_value_t items[] = {{.type = ST_VAL_INT, .u.i = 1},
                          {.type = ST_VAL_STRING, .u.s = WF_STR_LIT("a")}};
    st_attr_t attrs[] = {
        {WF_STR_LIT("n"), {.type = ST_VAL_INT, .u.i = -42}},
        {WF_STR_LIT("ok"), {.type = ST_VAL_BOOL, .u.b = true}},
        {WF_STR_LIT("ratio"), {.type = ST_VAL_DOUBLE, .u.d = 0.25}},
        {WF_STR_LIT("list"), {.type = ST_VAL_ARRAY, .u.arr = {items, 2}}},
        {WF_STR_LIT("net.peer.port"), {.type = ST_VAL_STRING, .u.s = WF_STR_LIT("abc")}},
        {WF_STR_LIT("net.peer.port"), {.type = ST_VAL_INT, .u.i = 443}},
        {WF_STR_LIT("zipkin.debug"), {.type = ST_VAL_STRING, .u.s = WF_STR_LIT("x")}},
    };
    st_span_event_t ev[] = {{.time_ns = 1500999, .name = WF_STR_LIT("exception")}};
    st_span_t sp;
    memset(&sp, 0, sizeof(sp));
    sp.trace_id[0] = 0x01;
    sp.trace_id[15] = 0x02;
    sp.span_id[7] = 0x03;
    sp.name = WF_STR_LIT("work");
    sp.kind = ST_SPAN_KIND_INTERNAL;
    sp.start_ns = 1000999;
    sp.end_ns = 3000999;
    sp.status_code = ST_STATUS_ERROR;
    sp.status_message = WF_STR_LIT("boom");
    sp.service = WF_STR_LIT("checkout");
    sp.resource_attrs = res;
    sp.n_resource_attrs = 1;
    sp.attrs = attrs;
    sp.n_attrs = sizeof(attrs) / sizeof(attrs[0]);
    sp.events = ev;
    sp.n_events = 1;
    wf_buf_t b = WF_BUF_INIT;
    col_zipkin_span_json(&b, &sp);
    assert_string_equal(
        wf_buf_cstr(&b),
        "{\"traceId\":\"01000000000000000000000000000002\",\"id\":\"0000000000000003\","
        "\"name\":\"work\",\"timestamp\":1000,\"duration\":2000,"
        "\"localEndpoint\":{\"serviceName\":\"checkout\"},"
        "\"remoteEndpoint\":{\"port\":443},"
        "\"annotations\":[{\"timestamp\":1500,\"value\":\"exception\"}],"
        "\"tags\":{\"n\":\"-42\",\"ok\":\"true\",\"ratio\":\"0.25\",\"list\":\"[1,\\\"a\\\"]\","
        "\"net.peer.port\":\"abc\",\"zipkin.debug\":\"x\",\"otel.status_code\":\"ERROR\","
        "\"error\":\"boom\"}}");
    wf_buf_free(&b);
}

/* The registered routes on a real server: both methods of /api/v2/spans, the prefix route of
 * /api/v2/trace/, and the body limit. */
static void test_http_routes(void **state)
{
    fx_t *f = *state;
    col_http_t *h = NULL;
    col_http_options_t o = {.threads = 2};
    assert_int_equal(col_http_new(&o, &h), 0);
    col_zipkin_t *z = col_zipkin_register(h, f->wr, f->s);
    assert_non_null(z);
    int port = wt_free_port();
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    assert_int_equal(col_http_listen(h, addr), 0);
    const char *body = "[" FULL_CLIENT "," FULL_SERVER "," ROOT_SPAN "]";
    char *resp = NULL;
    assert_int_equal(wt_http(port, "POST", "/api/v2/spans", body, strlen(body), &resp), 202);
    wf_free(resp);
    assert_int_equal(wt_http(port, "GET", "/api/v2/trace/00000000000000a1", NULL, 0, &resp), 200);
    json_t *got = json_loads(resp, 0, NULL);
    assert_non_null(got);
    assert_json(got, "[" ROOT_SPAN "," FULL_CLIENT "," FULL_SERVER "]");
    json_decref(got);
    wf_free(resp);
    assert_int_equal(wt_http(port, "GET", "/api/v2/spans?serviceName=backend", NULL, 0, &resp),
                     200);
    assert_string_equal(resp, "[\"get /api\"]");
    wf_free(resp);
    assert_int_equal(wt_http(port, "GET", "/api/v2/spans?serviceName=frontend", NULL, 0, &resp),
                     200);
    assert_string_equal(resp, "[\"get /api\",\"main\"]");
    wf_free(resp);
    assert_int_equal(wt_http(port, "GET", "/api/v2/services", NULL, 0, &resp), 200);
    assert_string_equal(resp, "[\"backend\",\"frontend\"]");
    wf_free(resp);
    assert_int_equal(
        wt_http(port, "GET", "/api/v2/remoteServices?serviceName=frontend", NULL, 0, &resp), 200);
    assert_string_equal(resp, "[\"backend\"]");
    wf_free(resp);
    assert_int_equal(wt_http(port, "GET",
                             "/api/v2/traces?serviceName=backend&endTs=1795634064970&lookback="
                             "86400000",
                             NULL, 0, &resp),
                     200);
    got = json_loads(resp, 0, NULL);
    assert_non_null(got);
    assert_int_equal(json_array_size(got), 1);
    json_decref(got);
    wf_free(resp);
    assert_int_equal(
        wt_http(port, "GET", "/api/v2/dependencies?endTs=1795634064970", NULL, 0, &resp), 200);
    assert_string_equal(resp, "[{\"parent\":\"frontend\",\"child\":\"backend\",\"callCount\":1}]");
    wf_free(resp);
    assert_int_equal(wt_http(port, "GET", "/api/v2/trace/00000000000000a2", NULL, 0, NULL), 404);
    assert_int_equal(wt_http(port, "DELETE", "/api/v2/spans", NULL, 0, NULL), 405);
    /* Over the 16 MiB limit. */
    size_t big = COL_ZIPKIN_MAX_BODY + 1;
    char *huge = wf_malloc(big);
    memset(huge, ' ', big);
    huge[0] = '[';
    huge[big - 1] = ']';
    assert_int_equal(wt_http(port, "POST", "/api/v2/spans", huge, big, NULL), 413);
    /* At the limit it is read and reaches the decoder (which finds no closing bracket). */
    assert_int_equal(wt_http(port, "POST", "/api/v2/spans", huge, big - 1, NULL), 400);
    wf_free(huge);
    col_http_free(h);
    col_zipkin_free(z);
}

static int append_one_cb(col_write_t *w, st_store_t *s)
{
    return st_spans_append(s, w->arg, 1, NULL);
}

/* GET a path of the server on port; the answer's body must be want. */
static void expect_get(int port, const char *path, int want_status, const char *want)
{
    char *resp = NULL;
    assert_int_equal(wt_http(port, "GET", path, NULL, 0, &resp), want_status);
    if (want != NULL) {
        assert_string_equal(resp, want);
    }
    wf_free(resp);
}

/* Zipkin's autocomplete: the configured keys, and the distinct values each has in the store
 * (tags of Zipkin spans and attributes of OTLP ones alike, as their tag text). */
static void test_autocomplete(void **state)
{
    fx_t *f = *state;
    col_http_t *h = NULL;
    col_http_options_t o = {.threads = 2};
    assert_int_equal(col_http_new(&o, &h), 0);
    col_zipkin_options_t zo = {.autocomplete_keys = " http.method, http.path ,,code,bin"};
    col_zipkin_t *z = col_zipkin_register_opts(h, f->wr, f->s, &zo);
    int port = wt_free_port();
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    assert_int_equal(col_http_listen(h, addr), 0);
    expect_get(port, "/api/v2/autocompleteValues?key=http.method", 200, "[]"); /* empty store */
    const char *body = "[" FULL_CLIENT "," FULL_SERVER "," ROOT_SPAN
                       ",{\"traceId\":\"00000000000000a2\",\"id\":\"00000000000000b2\","
                       "\"timestamp\":1795634000000000,\"localEndpoint\":{\"serviceName\":"
                       "\"frontend\"},\"tags\":{\"http.method\":\"POST\"}},"
                       "{\"traceId\":\"00000000000000a3\",\"id\":\"00000000000000b3\","
                       "\"timestamp\":1795634000000000,\"tags\":{\"http.method\":\"GET\"}}]";
    assert_int_equal(wt_http(port, "POST", "/api/v2/spans", body, strlen(body), NULL), 202);
    /* a span with typed attributes, as OTLP writes them */
    st_attr_t attrs[] = {{WF_STR_LIT("code"), {.type = ST_VAL_INT, .u.i = 404}},
                         {WF_STR_LIT("bin"), {.type = ST_VAL_BYTES, .u.s = WF_STR_LIT("\x01")}}};
    st_span_t sp;
    memset(&sp, 0, sizeof(sp));
    sp.trace_id[15] = 0xa4;
    sp.span_id[7] = 1;
    sp.name = WF_STR_LIT("op");
    sp.service = WF_STR_LIT("svc");
    sp.start_ns = sp.end_ns = CAPTURE_MS * 1000000;
    sp.attrs = attrs;
    sp.n_attrs = 2;
    col_write_t w;
    memset(&w, 0, sizeof(w));
    w.spans = append_one_cb; /* the store is written on the queue's thread only */
    w.arg = &sp;
    assert_int_equal(col_writer_submit(f->wr, &w), 0);

    expect_get(port, "/api/v2/autocompleteKeys", 200,
               "[\"bin\",\"code\",\"http.method\","
               "\"http.path\"]");
    expect_get(port, "/api/v2/autocompleteValues?key=http.method", 200, "[\"GET\",\"POST\"]");
    expect_get(port, "/api/v2/autocompleteValues?key=http.path", 200, "[\"/api\"]");
    expect_get(port, "/api/v2/autocompleteValues?key=code", 200, "[\"404\"]");
    expect_get(port, "/api/v2/autocompleteValues?key=bin", 200, "[\"AQ==\"]");
    /* http.status_code is on a span, but not a configured key */
    expect_get(port, "/api/v2/autocompleteValues?key=http.status_code", 200, "[]");
    expect_get(port, "/api/v2/autocompleteValues", 400, NULL);
    col_http_free(h);
    col_zipkin_free(z);

    /* without options there are no keys */
    assert_int_equal(col_http_new(&o, &h), 0);
    z = col_zipkin_register(h, f->wr, f->s);
    port = wt_free_port();
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    assert_int_equal(col_http_listen(h, addr), 0);
    expect_get(port, "/api/v2/autocompleteKeys", 200, "[]");
    expect_get(port, "/api/v2/autocompleteValues?key=http.method", 200, "[]");
    col_http_free(h);
    col_zipkin_free(z);
}

/* lowercase_names: the routes show span and service names as Zipkin's server does, and its
 * lowercased queries find the names as stored. */
static void test_lowercase_names(void **state)
{
    fx_t *f = *state;
    col_http_t *h = NULL;
    col_http_options_t o = {.threads = 2};
    assert_int_equal(col_http_new(&o, &h), 0);
    col_zipkin_options_t zo = {.lowercase_names = true};
    col_zipkin_t *z = col_zipkin_register_opts(h, f->wr, f->s, &zo);
    int port = wt_free_port();
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    assert_int_equal(col_http_listen(h, addr), 0);
    const char *body = "[{\"traceId\":\"00000000000000a5\",\"id\":\"00000000000000b5\","
                       "\"kind\":\"CLIENT\",\"name\":\"GET /Api\","
                       "\"timestamp\":1795634000000000,\"duration\":10,"
                       "\"localEndpoint\":{\"serviceName\":\"FrontEnd\"},"
                       "\"remoteEndpoint\":{\"serviceName\":\"BackEnd\"}}]";
    assert_int_equal(wt_http(port, "POST", "/api/v2/spans", body, strlen(body), NULL), 202);
    expect_get(port, "/api/v2/trace/00000000000000a5", 200,
               "[{\"traceId\":\"00000000000000a5\",\"id\":\"00000000000000b5\","
               "\"kind\":\"CLIENT\",\"name\":\"get /api\",\"timestamp\":1795634000000000,"
               "\"duration\":10,\"localEndpoint\":{\"serviceName\":\"frontend\"},"
               "\"remoteEndpoint\":{\"serviceName\":\"backend\"}}]");
    expect_get(port, "/api/v2/services", 200, "[\"frontend\"]");
    expect_get(port, "/api/v2/spans?serviceName=frontend", 200, "[\"get /api\"]");
    expect_get(port, "/api/v2/remoteServices?serviceName=frontend", 200, "[\"backend\"]");
    char *resp = NULL;
    assert_int_equal(wt_http(port, "GET",
                             "/api/v2/traces?serviceName=frontend&spanName=get%20/api&endTs="
                             "1795634064970",
                             NULL, 0, &resp),
                     200);
    assert_non_null(strstr(resp, "\"id\":\"00000000000000b5\""));
    wf_free(resp);
    col_http_free(h);
    col_zipkin_free(z);

    /* the handlers themselves show the names as stored */
    wf_buf_t out = WF_BUF_INIT;
    assert_int_equal(
        call(col_zipkin_services_handler, f->s, "GET", "/api/v2/services", NULL, NULL, 0, &out),
        200);
    assert_string_equal(wf_buf_cstr(&out), "[\"FrontEnd\"]");
    wf_buf_free(&out);
}

/* errorCount counts the calls whose server span, or the client span calling it, is an error;
 * Zipkin leaves it out when there is none. */
static void test_dependency_errors(void **state)
{
    fx_t *f = *state;
    /* three calls web -> db: the client fails in c1, the server fails in c2, none in c3;
     * trace, id, parent ("" = none), kind, service, tags */
    static const char *const spans[][6] = {
        {"c1", "01", "", "SERVER", "web", ""},
        {"c1", "02", "01", "CLIENT", "web", "\"error\":\"timeout\""},
        {"c1", "03", "02", "SERVER", "db", ""},
        {"c2", "01", "", "CLIENT", "web", ""},
        {"c2", "02", "01", "SERVER", "db", "\"error\":\"\""},
        {"c3", "01", "", "CLIENT", "web", ""},
        {"c3", "02", "01", "SERVER", "db", ""},
    };
    wf_buf_t body = WF_BUF_INIT, out = WF_BUF_INIT;
    wf_buf_putc(&body, '[');
    for (size_t i = 0; i < sizeof(spans) / sizeof(spans[0]); i++) {
        const char *const *s = spans[i];
        char parent[64] = "";
        if (s[2][0] != '\0') {
            snprintf(parent, sizeof(parent), "\"parentId\":\"00000000000000%s\",", s[2]);
        }
        wf_buf_printf(&body,
                      "%s{\"traceId\":\"00000000000000%s\",\"id\":\"00000000000000%s\",%s"
                      "\"kind\":\"%s\",\"name\":\"x\",\"timestamp\":1795634000000000,"
                      "\"duration\":10,\"localEndpoint\":{\"serviceName\":\"%s\"},\"tags\":{%s}}",
                      i ? "," : "", s[0], s[1], parent, s[3], s[4], s[5]);
    }
    wf_buf_putc(&body, ']');
    wf_buf_putc(&body, '\0');
    assert_int_equal(post(f, (const char *)body.data, &out), 202);
    json_t *v;
    assert_int_equal(get(f, col_zipkin_dependencies_handler, "/api/v2/dependencies",
                         "endTs=1795634001000&lookback=60000", &v),
                     200);
    assert_json(v, "[{\"parent\":\"web\",\"child\":\"db\",\"callCount\":3,\"errorCount\":2}]");
    json_decref(v);
    wf_buf_free(&body);
    wf_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_capture, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_traces_query, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
        cmocka_unit_test(test_decode_encode),
        cmocka_unit_test(test_otlp_span_json),
        cmocka_unit_test_setup_teardown(test_http_routes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_autocomplete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lowercase_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dependency_errors, setup, teardown),
    };
    return wt_exit_code(cmocka_run_group_tests(tests, NULL, NULL));
}
