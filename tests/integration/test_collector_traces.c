/*
 * test_collector_traces.c - spans in through every ingest path of a real `weft collector` and
 * out through every query API: the OpenTelemetry JS SDK's captured OTLP JSON and protobuf
 * requests and Zipkin requests (../shared/ref/otel-captures) are replayed byte for byte, then
 * the same traces are read back with the Jaeger v1 API and the Zipkin v2 API and compared
 * field by field; malformed bodies are refused and the server keeps serving.
 */
#include "wf_alloc.h"
#include "wf_buf.h"
#include "wt_rw.h"
#include "wt_util.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#define OTLP_TRACE "b07b499ef7e0cac51a1d42bb07bcbfd4"   /* captures 01-03 (OTLP JSON) */
#define ZIPKIN_TRACE "a6996d9594ccf3c45c3da2dc100c79b1" /* captures 07-09 (Zipkin) */
#define CAPTURE_S 1795634004LL                          /* when the captures were made */

static int port;
static pid_t pid;
static char *dir;

/* POST the capture file rel with content type ct; returns the HTTP status. */
static int post_capture(const char *rel, const char *path, const char *ct)
{
    char *file = wt_ref_path(rel);
    if (file == NULL) {
        return -2;
    }
    size_t len;
    char *body = wt_read_file(file, &len);
    assert_non_null(body);
    char hdr[128];
    snprintf(hdr, sizeof(hdr), "Content-Type: %s\r\n", ct);
    wt_conn_t *c = wt_conn_open(port);
    assert_non_null(c);
    wf_buf_t resp = WF_BUF_INIT;
    int st = wt_conn_request(c, "POST", path, hdr, body, len, &resp);
    wt_conn_close(c);
    wf_buf_free(&resp);
    wf_free(body);
    wf_free(file);
    return st;
}

static int setup(void **state)
{
    dir = wt_tmpdir("coltraces");
    port = wt_free_port();
    char listen[64], data[512], log[600];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    snprintf(data, sizeof(data), "%s/data", dir);
    snprintf(log, sizeof(log), "%s/weft.log", dir);
    char *argv[] = {
        (char *)wt_weft_bin(), "collector", "--listen",        listen, "--data-dir", data,
        "--otlp-listen",       "off",       "--zipkin-listen", "off",  NULL};
    pid = wt_spawn(argv, log);
    assert_true(wt_wait_port(port, 10000));
    return 0;
}

static int teardown(void **state)
{
    int status = wt_stop(pid, 10000);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    wt_rm_rf(dir);
    wf_free(dir);
    return 0;
}

static json_t *get_json(const char *path, int want_status)
{
    char *body = NULL;
    int st = wt_http(port, "GET", path, NULL, 0, &body);
    if (st != want_status) {
        fail_msg("GET %s -> %d (want %d): %s", path, st, want_status, body ? body : "");
    }
    json_error_t err;
    json_t *j = json_loads(body, 0, &err);
    if (j == NULL) {
        fail_msg("GET %s: not JSON: %s", path, body);
    }
    wf_free(body);
    return j;
}

/* The Jaeger span named name in trace t (a Jaeger trace object), or fail. */
static json_t *jaeger_span(json_t *t, const char *name)
{
    json_t *spans = json_object_get(t, "spans");
    for (size_t i = 0; i < json_array_size(spans); i++) {
        json_t *s = json_array_get(spans, i);
        if (strcmp(json_string_value(json_object_get(s, "operationName")), name) == 0) {
            return s;
        }
    }
    fail_msg("no span %s", name);
    return NULL;
}

static const char *jaeger_tag(json_t *span, const char *key, const char **type)
{
    json_t *tags = json_object_get(span, "tags");
    for (size_t i = 0; i < json_array_size(tags); i++) {
        json_t *t = json_array_get(tags, i);
        if (strcmp(json_string_value(json_object_get(t, "key")), key) == 0) {
            *type = json_string_value(json_object_get(t, "type"));
            json_t *v = json_object_get(t, "value");
            static char buf[64];
            if (json_is_string(v)) {
                return json_string_value(v);
            }
            if (json_is_boolean(v)) {
                return json_is_true(v) ? "true" : "false";
            }
            snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
            return buf;
        }
    }
    return NULL;
}

static void test_round_trip(void **state)
{
    static const char *const otlp_json[] = {"01-otlp-json.body.json", "02-otlp-json.body.json",
                                            "03-otlp-json.body.json"};
    static const char *const otlp_pb[] = {"04-otlp-proto.body.bin", "05-otlp-proto.body.bin",
                                          "06-otlp-proto.body.bin"};
    static const char *const zipkin[] = {"07-zipkin.body.json", "08-zipkin.body.json",
                                         "09-zipkin.body.json"};
    for (size_t i = 0; i < 3; i++) {
        char rel[96];
        snprintf(rel, sizeof(rel), "otel-captures/%s", otlp_json[i]);
        int st = post_capture(rel, "/v1/traces", "application/json");
        if (st == -2) {
            wt_skip();
        }
        assert_int_equal(st, 200);
        snprintf(rel, sizeof(rel), "otel-captures/%s", otlp_pb[i]);
        assert_int_equal(post_capture(rel, "/v1/traces", "application/x-protobuf"), 200);
        snprintf(rel, sizeof(rel), "otel-captures/%s", zipkin[i]);
        assert_int_equal(post_capture(rel, "/api/v2/spans", "application/json"), 202);
    }

    /* OTLP in, Jaeger out. */
    json_t *j = get_json("/api/traces/" OTLP_TRACE, 200);
    json_t *t = json_array_get(json_object_get(j, "data"), 0);
    assert_string_equal(json_string_value(json_object_get(t, "traceID")), OTLP_TRACE);
    assert_int_equal(json_array_size(json_object_get(t, "spans")), 3);
    json_t *root = jaeger_span(t, "GET /checkout");
    json_t *mid = jaeger_span(t, "compute-total");
    json_t *leaf = jaeger_span(t, "SELECT orders");
    assert_int_equal(json_array_size(json_object_get(root, "references")), 0);
    json_t *ref = json_array_get(json_object_get(leaf, "references"), 0);
    assert_string_equal(json_string_value(json_object_get(ref, "refType")), "CHILD_OF");
    assert_string_equal(json_string_value(json_object_get(ref, "spanID")),
                        json_string_value(json_object_get(mid, "spanID")));
    assert_string_equal(json_string_value(json_object_get(leaf, "spanID")), "7e07b43ec9dabd36");
    /* startTimeUnixNano 1795634004008000000, end ...008153848: µs start, 153 µs. */
    assert_int_equal(json_integer_value(json_object_get(leaf, "startTime")), 1795634004008000LL);
    assert_int_equal(json_integer_value(json_object_get(leaf, "duration")), 153);
    const char *type = NULL;
    assert_string_equal(jaeger_tag(leaf, "db.system", &type), "sqlite");
    assert_string_equal(type, "string");
    assert_string_equal(jaeger_tag(leaf, "server.port", &type), "5432");
    assert_string_equal(type, "int64");
    assert_string_equal(jaeger_tag(leaf, "span.kind", &type), "client");
    assert_string_equal(jaeger_tag(leaf, "error", &type), "true");
    assert_string_equal(type, "bool");
    assert_string_equal(jaeger_tag(leaf, "otel.status_description", &type), "timeout");
    const char *pid1 = json_string_value(json_object_get(leaf, "processID"));
    json_t *proc = json_object_get(json_object_get(t, "processes"), pid1);
    assert_string_equal(json_string_value(json_object_get(proc, "serviceName")), "capture-demo");
    json_decref(j);

    /* OTLP in, Zipkin out: the same spans in Zipkin's model. */
    j = get_json("/api/v2/trace/" OTLP_TRACE, 200);
    assert_int_equal(json_array_size(j), 3);
    bool seen = false;
    for (size_t i = 0; i < 3; i++) {
        json_t *s = json_array_get(j, i);
        /* Zipkin shows names lowercased */
        if (strcmp(json_string_value(json_object_get(s, "name")), "select orders") != 0) {
            continue;
        }
        seen = true;
        assert_string_equal(json_string_value(json_object_get(s, "id")), "7e07b43ec9dabd36");
        assert_string_equal(json_string_value(json_object_get(s, "kind")), "CLIENT");
        assert_int_equal(json_integer_value(json_object_get(s, "timestamp")), 1795634004008000LL);
        assert_int_equal(json_integer_value(json_object_get(s, "duration")), 153);
        json_t *le = json_object_get(s, "localEndpoint");
        assert_string_equal(json_string_value(json_object_get(le, "serviceName")), "capture-demo");
        json_t *tags = json_object_get(s, "tags");
        assert_string_equal(json_string_value(json_object_get(tags, "db.system")), "sqlite");
    }
    assert_true(seen);
    json_decref(j);

    /* Zipkin in, Jaeger out. */
    j = get_json("/api/traces/" ZIPKIN_TRACE, 200);
    t = json_array_get(json_object_get(j, "data"), 0);
    assert_int_equal(json_array_size(json_object_get(t, "spans")), 3);
    leaf = jaeger_span(t, "SELECT orders");
    assert_string_equal(json_string_value(json_object_get(leaf, "spanID")), "446d9fe09f2a8d30");
    assert_int_equal(json_integer_value(json_object_get(leaf, "startTime")), 1795634004970000LL);
    assert_int_equal(json_integer_value(json_object_get(leaf, "duration")), 133);
    assert_string_equal(jaeger_tag(leaf, "db.system", &type), "sqlite");
    json_decref(j);

    /* Search finds the three traces (OTLP JSON, OTLP protobuf, Zipkin) of the service. */
    char path[256];
    snprintf(path, sizeof(path), "/api/traces?service=capture-demo&start=%lld&end=%lld&limit=20",
             (CAPTURE_S - 3600) * 1000000, (CAPTURE_S + 3600) * 1000000);
    j = get_json(path, 200);
    assert_int_equal(json_array_size(json_object_get(j, "data")), 3);
    json_decref(j);
    snprintf(path, sizeof(path),
             "/api/v2/traces?serviceName=capture-demo&endTs=%lld&lookback=7200000&limit=20",
             (CAPTURE_S + 3600) * 1000);
    j = get_json(path, 200);
    assert_int_equal(json_array_size(j), 3);
    json_decref(j);

    j = get_json("/api/services", 200);
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "data"), 0)),
                        "capture-demo");
    json_decref(j);
    j = get_json("/api/v2/services", 200);
    assert_string_equal(json_string_value(json_array_get(j, 0)), "capture-demo");
    json_decref(j);
}

static void test_bad_input(void **state)
{
    wt_conn_t *c = wt_conn_open(port);
    assert_non_null(c);
    wf_buf_t b = WF_BUF_INIT;
    assert_int_equal(wt_conn_request(c, "POST", "/v1/traces", "Content-Type: application/json\r\n",
                                     "{\"resourceSpans\":[", 18, &b),
                     400);
    assert_int_equal(wt_conn_request(c, "POST", "/v1/traces",
                                     "Content-Type: application/x-protobuf\r\n", "\x0a\xff", 2, &b),
                     400);
    assert_int_equal(wt_conn_request(c, "POST", "/api/v2/spans",
                                     "Content-Type: application/json\r\n",
                                     "[{\"traceId\":\"xyz\",\"id\":\"1\"}]", 28, &b),
                     400);
    wt_conn_close(c);
    wf_buf_free(&b);
    json_t *j = get_json("/api/traces/00000000000000000000000000000abc", 404);
    json_decref(j);
    j = get_json("/api/traces?service=capture-demo&minDuration=1x", 400);
    json_decref(j);
    j = get_json("/api/services", 200);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_bad_input),
    };
    return wt_exit_code(cmocka_run_group_tests(tests, setup, teardown));
}
