/*
 * test_collector_api.c - the Prometheus HTTP API of a real `weft collector`:
 * samples arrive by remote_write, then every query, metadata and status
 * endpoint is asked as Grafana, Kiali or curl would ask, and the answers are
 * checked value by value; hostile parameters get Prometheus's error types and
 * the server keeps serving.
 */
#include "wf_alloc.h"
#include "wf_buf.h"
#include "wf_clock.h"
#include "wt_rw.h"
#include "wt_util.h"

#include <jansson.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

enum { N = 121 }; /* samples per series: 30 minutes at 15 s */

static int port;
static pid_t pid;
static char *dir;
static int64_t t_last; /* ms of the last sample */

static int setup(void **state)
{
    dir = wt_tmpdir("colapi");
    port = wt_free_port();
    char listen[64], data[512], log[600];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    snprintf(data, sizeof(data), "%s/data", dir);
    snprintf(log, sizeof(log), "%s/weft.log", dir);
    char *argv[] = {(char *)wt_weft_bin(), "collector", "--listen", listen,
                    "--data-dir",          data,        NULL};
    pid = wt_spawn(argv, log);
    assert_true(wt_wait_port(port, 10000));

    /* Timestamps on a 15 s grid so that windows hold a known number of samples.
     */
    t_last = (wf_wall_ms() / 15000) * 15000 - 60000;
    int64_t t0 = t_last - (N - 1) * 15000;
    wt_rw_t *rw = wt_rw_new();
    wt_rw_series_s(rw, "http_requests_total{job=\"api\",instance=\"a:1\",code=\"200\"}");
    for (int i = 0; i < N; i++) {
        wt_rw_sample(rw, t0 + i * 15000, i * 10.0);
    }
    wt_rw_series_s(rw, "http_requests_total{job=\"api\",instance=\"a:1\",code=\"500\"}");
    for (int i = 0; i < N; i++) {
        wt_rw_sample(rw, t0 + i * 15000, i * 1.0);
    }
    wt_rw_series_s(rw, "temperature{job=\"api\",instance=\"a:1\"}");
    for (int i = 0; i < N; i++) {
        wt_rw_sample(rw, t0 + i * 15000, 20 + i % 5);
    }
    wt_rw_metadata(rw, WT_RW_COUNTER, "http_requests_total", "Requests served.", NULL);
    wt_rw_metadata(rw, WT_RW_GAUGE, "temperature", "Degrees.", "celsius");
    char *resp = NULL;
    int st = wt_rw_send(rw, port, "/api/v1/write", &resp);
    if (st != 204) {
        fail_msg("remote_write: %d %s", st, resp ? resp : "");
    }
    wf_free(resp);
    wt_rw_free(rw);
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

/* GET path (already URL-encoded); returns the status and the parsed JSON body
 * in *out. */
static int get_json(const char *path, json_t **out)
{
    char *body = NULL;
    int st = wt_http(port, "GET", path, NULL, 0, &body);
    json_error_t err;
    *out = body ? json_loads(body, 0, &err) : NULL;
    if (*out == NULL) {
        fail_msg("GET %s -> %d, not JSON: %s", path, st, body ? body : "(none)");
    }
    wf_free(body);
    return st;
}

static json_t *ok_data(const char *path)
{
    json_t *j;
    int st = get_json(path, &j);
    if (st != 200 || strcmp(json_string_value(json_object_get(j, "status")), "success") != 0) {
        char *s = json_dumps(j, 0);
        fail_msg("GET %s -> %d %s", path, st, s);
    }
    json_t *d = json_incref(json_object_get(j, "data"));
    json_decref(j);
    return d;
}

/* Expect an error answer with the HTTP status and Prometheus errorType. */
static void expect_error(const char *method, const char *path, const char *form, int status,
                         const char *type)
{
    wt_conn_t *c = wt_conn_open(port);
    assert_non_null(c);
    wf_buf_t b = WF_BUF_INIT;
    int st = wt_conn_request(c, method, path,
                             form ? "Content-Type: application/x-www-form-urlencoded\r\n" : NULL,
                             form, form ? strlen(form) : 0, &b);
    wt_conn_close(c);
    wf_buf_putc(&b, 0);
    const char *body = (const char *)b.data;
    if (st != status) {
        fail_msg("%s %s -> %d (want %d): %.300s", method, path, st, status, body);
    }
    if (type != NULL) {
        json_error_t err;
        json_t *j = json_loads(body, 0, &err);
        assert_non_null(j);
        assert_string_equal(json_string_value(json_object_get(j, "status")), "error");
        assert_string_equal(json_string_value(json_object_get(j, "errorType")), type);
        assert_true(strlen(json_string_value(json_object_get(j, "error"))) > 0);
        json_decref(j);
    }
    wf_buf_free(&b);
}

static double sample_value(json_t *point)
{
    const char *s = json_string_value(json_array_get(point, 1));
    assert_non_null(s);
    return strtod(s, NULL);
}

static void test_instant_queries(void **state)
{
    char path[512];
    double t = (double)t_last / 1000;
    snprintf(path, sizeof(path),
             "/api/v1/"
             "query?query=http_requests_total%%7Bcode%%3D%%22200%%22%%7D&time=%.3f",
             t);
    json_t *d = ok_data(path);
    assert_string_equal(json_string_value(json_object_get(d, "resultType")), "vector");
    json_t *res = json_object_get(d, "result");
    assert_int_equal(json_array_size(res), 1);
    json_t *m = json_object_get(json_array_get(res, 0), "metric");
    assert_string_equal(json_string_value(json_object_get(m, "__name__")), "http_requests_total");
    assert_string_equal(json_string_value(json_object_get(m, "code")), "200");
    json_t *v = json_object_get(json_array_get(res, 0), "value");
    assert_true(fabs(json_number_value(json_array_get(v, 0)) - t) < 1e-6);
    assert_true(sample_value(v) == (N - 1) * 10.0);
    json_decref(d);

    /* sum over both series, by job: the metric name is gone. */
    snprintf(path, sizeof(path),
             "/api/v1/"
             "query?query=sum%%20by%%20(job)%%20(http_requests_total)&time=%.3f",
             t);
    d = ok_data(path);
    res = json_object_get(d, "result");
    assert_int_equal(json_array_size(res), 1);
    m = json_object_get(json_array_get(res, 0), "metric");
    assert_null(json_object_get(m, "__name__"));
    assert_true(sample_value(json_object_get(json_array_get(res, 0), "value")) == (N - 1) * 11.0);
    json_decref(d);

    /* A perfectly regular counter: rate is its slope, 10 per 15 s. */
    snprintf(path, sizeof(path),
             "/api/v1/"
             "query?query=rate(http_requests_total%%7Bcode%%3D%%22200%%22%%7D%%"
             "5B5m%%5D)&time=%.3f",
             t);
    d = ok_data(path);
    res = json_object_get(d, "result");
    assert_int_equal(json_array_size(res), 1);
    assert_true(fabs(sample_value(json_object_get(json_array_get(res, 0), "value")) - 10.0 / 15) <
                1e-12);
    json_decref(d);

    /* Scalars and strings. */
    d = ok_data("/api/v1/query?query=1%2B1&time=100");
    assert_string_equal(json_string_value(json_object_get(d, "resultType")), "scalar");
    assert_true(sample_value(json_object_get(d, "result")) == 2);
    assert_true(json_number_value(json_array_get(json_object_get(d, "result"), 0)) == 100);
    json_decref(d);
    d = ok_data("/api/v1/query?query=%22hello%22&time=100");
    assert_string_equal(json_string_value(json_object_get(d, "resultType")), "string");
    assert_string_equal(json_string_value(json_array_get(json_object_get(d, "result"), 1)),
                        "hello");
    json_decref(d);

    /* A range selector in an instant query is a matrix with the window's samples.
     */
    snprintf(path, sizeof(path), "/api/v1/query?query=temperature%%5B1m%%5D&time=%.3f", t);
    d = ok_data(path);
    assert_string_equal(json_string_value(json_object_get(d, "resultType")), "matrix");
    size_t n =
        json_array_size(json_object_get(json_array_get(json_object_get(d, "result"), 0), "values"));
    assert_true(n == 4 || n == 5); /* (t-1m, t] holds 4 grid points; [t-1m, t] 5 */
    json_decref(d);

    /* Form POST, as Grafana's and Prometheus's Go clients send queries. */
    char form[256];
    snprintf(form, sizeof(form), "query=count(http_requests_total)&time=%.3f", t);
    wt_conn_t *c = wt_conn_open(port);
    assert_non_null(c);
    wf_buf_t body = WF_BUF_INIT;
    int st = wt_conn_request(c, "POST", "/api/v1/query",
                             "Content-Type: application/x-www-form-urlencoded\r\n", form,
                             strlen(form), &body);
    assert_int_equal(st, 200);
    wf_buf_putc(&body, 0);
    assert_non_null(strstr((char *)body.data, "\"value\":["));
    assert_non_null(strstr((char *)body.data, ",\"2\"]"));
    /* The same connection serves the next request (keep-alive). */
    wf_buf_reset(&body);
    st = wt_conn_request(c, "GET", "/api/v1/query?query=vector(7)", NULL, NULL, 0, &body);
    assert_int_equal(st, 200);
    wf_buf_free(&body);
    wt_conn_close(c);
}

static void test_range_queries(void **state)
{
    char path[512];
    double end = (double)t_last / 1000, start = end - 600;
    snprintf(path, sizeof(path),
             "/api/v1/query_range?query=temperature&start=%.3f&end=%.3f&step=60", start, end);
    json_t *d = ok_data(path);
    assert_string_equal(json_string_value(json_object_get(d, "resultType")), "matrix");
    json_t *vals = json_object_get(json_array_get(json_object_get(d, "result"), 0), "values");
    assert_int_equal(json_array_size(vals), 11);
    for (size_t i = 0; i < 11; i++) {
        json_t *p = json_array_get(vals, i);
        assert_true(fabs(json_number_value(json_array_get(p, 0)) - (start + 60.0 * i)) < 1e-6);
        /* the sample at that instant: index N-1-(10-i)*4 on the 15 s grid */
        int idx = N - 1 - (int)(10 - i) * 4;
        assert_true(sample_value(p) == 20 + idx % 5);
    }
    json_decref(d);

    /* A scalar over a range: one series without labels. */
    snprintf(path, sizeof(path), "/api/v1/query_range?query=time()&start=%.3f&end=%.3f&step=1m",
             start, end);
    d = ok_data(path);
    json_t *s0 = json_array_get(json_object_get(d, "result"), 0);
    assert_int_equal(json_object_size(json_object_get(s0, "metric")), 0);
    assert_int_equal(json_array_size(json_object_get(s0, "values")), 11);
    json_decref(d);
}

static void test_metadata_endpoints(void **state)
{
    json_t *d = ok_data("/api/v1/series?match%5B%5D=http_requests_total");
    assert_int_equal(json_array_size(d), 2);
    json_decref(d);
    d = ok_data("/api/v1/"
                "series?match%5B%5D=http_requests_total%7Bcode%3D%22500%22%7D&"
                "match%5B%5D=temperature");
    assert_int_equal(json_array_size(d), 2);
    json_decref(d);

    d = ok_data("/api/v1/labels");
    assert_int_equal(json_array_size(d), 4);
    assert_string_equal(json_string_value(json_array_get(d, 0)), "__name__");
    assert_string_equal(json_string_value(json_array_get(d, 1)), "code");
    json_decref(d);

    d = ok_data("/api/v1/label/__name__/values");
    assert_int_equal(json_array_size(d), 2);
    assert_string_equal(json_string_value(json_array_get(d, 0)), "http_requests_total");
    json_decref(d);
    d = ok_data("/api/v1/label/code/values?match%5B%5D=http_requests_total");
    assert_int_equal(json_array_size(d), 2);
    json_decref(d);

    d = ok_data("/api/v1/metadata");
    json_t *md = json_array_get(json_object_get(d, "temperature"), 0);
    assert_string_equal(json_string_value(json_object_get(md, "type")), "gauge");
    assert_string_equal(json_string_value(json_object_get(md, "help")), "Degrees.");
    assert_string_equal(json_string_value(json_object_get(md, "unit")), "celsius");
    json_decref(d);
    d = ok_data("/api/v1/metadata?metric=http_requests_total");
    assert_int_equal(json_object_size(d), 1);
    json_decref(d);
    d = ok_data("/api/v1/metadata?limit_per_metric=1&limit=1");
    assert_int_equal(json_object_size(d), 1);
    assert_int_equal(json_array_size(json_object_get(d, "http_requests_total")), 1);
    json_decref(d);
    expect_error("GET", "/api/v1/metadata?limit_per_metric=one", NULL, 400, "bad_data");

    d = ok_data("/api/v1/format_query?query=sum(x)by(a)");
    assert_string_equal(json_string_value(d), "sum by (a) (x)");
    json_decref(d);

    d = ok_data("/api/v1/query_exemplars?query=x&start=1&end=2");
    assert_int_equal(json_array_size(d), 0);
    json_decref(d);

    d = ok_data("/api/v1/status/buildinfo");
    assert_non_null(json_string_value(json_object_get(d, "version")));
    json_decref(d);
    d = ok_data("/api/v1/status/flags");
    assert_string_equal(json_string_value(json_object_get(d, "storage.tsdb.retention.time")),
                        "15d");
    json_decref(d);
    d = ok_data("/api/v1/status/config");
    assert_non_null(strstr(json_string_value(json_object_get(d, "yaml")), "scrape_interval"));
    json_decref(d);
    d = ok_data("/api/v1/status/runtimeinfo");
    assert_non_null(json_string_value(json_object_get(d, "startTime")));
    json_decref(d);
    d = ok_data("/api/v1/status/tsdb");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(d, "headStats"), "numSeries")), 3);
    json_t *top = json_array_get(json_object_get(d, "seriesCountByMetricName"), 0);
    assert_string_equal(json_string_value(json_object_get(top, "name")), "http_requests_total");
    assert_int_equal(json_integer_value(json_object_get(top, "value")), 2);
    json_decref(d);
}

static void test_bad_input(void **state)
{
    expect_error("GET", "/api/v1/query?query=sum(", NULL, 400, "bad_data");
    expect_error("GET", "/api/v1/query?query=", NULL, 400, "bad_data");
    expect_error("GET", "/api/v1/query?query=rate(temperature)", NULL, 400, "bad_data");
    expect_error("GET", "/api/v1/query?query=up&time=yesterday", NULL, 400, "bad_data");
    expect_error("GET", "/api/v1/query?query=%7B%7D", NULL, 400, "bad_data");
    expect_error("GET",
                 "/api/v1/"
                 "query?query=label_replace(temperature,%221x%22,%22%22,%22job%"
                 "22,%22.*%22)",
                 NULL, 422, "execution");
    expect_error("GET", "/api/v1/query_range?query=up&start=10&end=5&step=1", NULL, 400,
                 "bad_data");
    expect_error("GET", "/api/v1/query_range?query=up&start=0&end=100&step=0", NULL, 400,
                 "bad_data");
    expect_error("GET", "/api/v1/query_range?query=up&start=0&end=100&step=-5", NULL, 400,
                 "bad_data");
    expect_error("GET", "/api/v1/query_range?query=up&start=0&end=1000000&step=1", NULL, 400,
                 "bad_data");
    expect_error("GET", "/api/v1/query_range?query=up&start=0&end=1e300&step=1", NULL, 400,
                 "bad_data");
    expect_error("GET", "/api/v1/query_range?query=up%5B5m%5D&start=0&end=100&step=10", NULL, 400,
                 "bad_data");
    expect_error("GET", "/api/v1/query_range?query=up&start=0&end=100&step=abc", NULL, 400,
                 "bad_data");
    expect_error("GET", "/api/v1/query_range?query=up&end=100&step=1", NULL, 400, "bad_data");
    expect_error("GET", "/api/v1/query?query=up&timeout=soon", NULL, 400, "bad_data");
    /* 3.6 million subquery steps cannot finish within a millisecond. */
    expect_error("GET", "/api/v1/query?query=sum_over_time(temperature%5B1h:1ms%5D)&timeout=1ms",
                 NULL, 503, "timeout");
    expect_error("GET", "/api/v1/series", NULL, 400, "bad_data");
    expect_error("GET", "/api/v1/series?match%5B%5D=sum(up)", NULL, 400, "bad_data");
    expect_error("GET", "/api/v1/series?match%5B%5D=%7Bx%3D~%22(%22%7D", NULL, 400, "bad_data");
    expect_error("GET", "/api/v1/label/1x/values", NULL, 400, "bad_data");
    expect_error("GET", "/api/v1/label/job/nothing", NULL, 404, "not_found");
    expect_error("GET", "/api/v1/nothing", NULL, 404, "not_found");
    expect_error("PUT", "/api/v1/query", "", 405, NULL);

    /* Deep nesting and a huge query: refused, not a crash. */
    wf_buf_t q = WF_BUF_INIT;
    wf_buf_puts(&q, "query=");
    for (int i = 0; i < 5000; i++) {
        wf_buf_puts(&q, "(");
    }
    wf_buf_puts(&q, "1");
    for (int i = 0; i < 5000; i++) {
        wf_buf_puts(&q, ")");
    }
    wf_buf_putc(&q, 0);
    expect_error("POST", "/api/v1/query", (const char *)q.data, 400, "bad_data");
    wf_buf_reset(&q);
    wf_buf_puts(&q, "query=");
    for (int i = 0; i < (2 << 20); i++) {
        wf_buf_putc(&q, 'a');
    }
    wf_buf_putc(&q, 0);
    expect_error("POST", "/api/v1/query", (const char *)q.data, 413, NULL);
    wf_buf_free(&q);

    /* Still serving. */
    json_t *d = ok_data("/api/v1/query?query=vector(1)");
    json_decref(d);
}

/* Run promtool (Prometheus's own Go API client, which POSTs queries as Grafana's backend
 * does) against weft; returns its exit status and its output in *out. */
static int promtool(char **out, const char *a1, const char *a2, const char *a3, const char *a4,
                    const char *a5, const char *a6)
{
    char server[64], log[600];
    snprintf(server, sizeof(server), "http://127.0.0.1:%d", port);
    snprintf(log, sizeof(log), "%s/promtool.out", dir);
    const char *argv[10] = {"promtool", "query", a1};
    size_t n = 3;
    const char *rest[] = {a2, a3, a4, a5, a6};
    for (size_t i = 0; i < 5; i++) {
        if (rest[i] != NULL) {
            argv[n++] = strcmp(rest[i], "SERVER") == 0 ? server : rest[i];
        }
    }
    argv[n] = NULL;
    unlink(log);
    pid_t p = wt_spawn((char *const *)argv, log);
    int st = wt_wait(p, 30000);
    *out = wt_read_file(log, NULL);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_promtool_client(void **state)
{
    char t[32], start[32], flag_t[48], flag_s[48], flag_e[48];
    snprintf(t, sizeof(t), "%.3f", (double)t_last / 1000);
    snprintf(start, sizeof(start), "%.3f", (double)t_last / 1000 - 300);
    snprintf(flag_t, sizeof(flag_t), "--time=%s", t);
    snprintf(flag_s, sizeof(flag_s), "--start=%s", start);
    snprintf(flag_e, sizeof(flag_e), "--end=%s", t);
    char *out = NULL;
    int rc = promtool(&out, "instant", "-o", "json", flag_t, "SERVER",
                      "sum by (code) (http_requests_total)");
    if (rc != 0) {
        fail_msg("promtool query instant: %d %s", rc, out ? out : "");
    }
    json_error_t err;
    json_t *j = json_loads(out, 0, &err);
    assert_non_null(j);
    assert_int_equal(json_array_size(j), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *e = json_array_get(j, i);
        const char *code = json_string_value(json_object_get(json_object_get(e, "metric"), "code"));
        double v = sample_value(json_object_get(e, "value"));
        assert_true(v == (strcmp(code, "200") == 0 ? (N - 1) * 10.0 : (N - 1) * 1.0));
    }
    json_decref(j);
    wf_free(out);

    rc = promtool(&out, "range", flag_s, flag_e, "--step=1m", "SERVER", "temperature");
    if (rc != 0 || strstr(out, "temperature{instance=\"a:1\", job=\"api\"} =>") == NULL) {
        fail_msg("promtool query range: %d %s", rc, out ? out : "");
    }
    /* 6 points: start, +1m, ..., end */
    size_t points = 0;
    for (const char *p = out; (p = strstr(p, " @[")) != NULL; p++) {
        points++;
    }
    assert_int_equal(points, 6);
    wf_free(out);

    rc = promtool(&out, "series", "--match=http_requests_total{code=\"500\"}", "SERVER", NULL, NULL,
                  NULL);
    if (rc != 0 || strstr(out, "code=\"500\"") == NULL || strstr(out, "code=\"200\"") != NULL) {
        fail_msg("promtool query series: %d %s", rc, out ? out : "");
    }
    wf_free(out);

    rc = promtool(&out, "labels", "SERVER", "code", NULL, NULL, NULL);
    if (rc != 0 || strcmp(out, "200\n500\n") != 0) {
        fail_msg("promtool query labels: %d %s", rc, out ? out : "");
    }
    wf_free(out);
}

/* The graph API over HTTP, on Istio metrics sent by remote_write: productpage -> reviews at
 * 1 request/s (one in ten a 503), as a source sidecar reports it; bad parameters are 400. */
static void test_graph_api(void **state)
{
    (void)state;
    wt_rw_t *rw = wt_rw_new();
    static const char *const codes[] = {"200", "503"};
    for (int k = 0; k < 2; k++) {
        char series[1024];
        snprintf(
            series, sizeof(series),
            "istio_requests_total{reporter=\"source\",source_workload=\"productpage-v1\","
            "source_workload_namespace=\"default\",source_app=\"productpage\","
            "source_version=\"v1\",source_canonical_service=\"productpage\","
            "destination_workload=\"reviews-v1\",destination_workload_namespace=\"default\","
            "destination_app=\"reviews\",destination_version=\"v1\","
            "destination_service=\"reviews.default.svc.cluster.local\","
            "destination_service_name=\"reviews\",destination_service_namespace=\"default\","
            "destination_canonical_service=\"reviews\",request_protocol=\"http\","
            "response_code=\"%s\",response_flags=\"-\",connection_security_policy=\"unknown\"}",
            codes[k]);
        wt_rw_series_s(rw, series);
        for (int i = 0; i < N; i++) {
            wt_rw_sample(rw, t_last - (N - 1 - i) * 15000, i * 15.0 * (k == 0 ? 0.9 : 0.1));
        }
    }
    char *resp = NULL;
    int st = wt_rw_send(rw, port, "/api/v1/write", &resp);
    if (st != 204 && st != 200) {
        fail_msg("remote_write: %d %s", st, resp ? resp : "");
    }
    wf_free(resp);
    wt_rw_free(rw);

    char path[256];
    snprintf(path, sizeof(path), "/api/graph?namespaces=default&duration=5m&queryTime=%lld",
             (long long)(t_last / 1000));
    json_t *g;
    assert_int_equal(get_json(path, &g), 200);
    json_t *nodes = json_object_get(json_object_get(g, "elements"), "nodes");
    json_t *edges = json_object_get(json_object_get(g, "elements"), "edges");
    assert_int_equal(json_array_size(nodes), 2);
    assert_int_equal(json_array_size(edges), 1);
    json_t *e = json_object_get(json_array_get(edges, 0), "data");
    json_t *rates = json_object_get(json_object_get(e, "traffic"), "rates");
    assert_true(fabs(strtod(json_string_value(json_object_get(rates, "http")), NULL) - 1.0) < 0.01);
    assert_true(fabs(strtod(json_string_value(json_object_get(rates, "httpPercentErr")), NULL) -
                     10.0) < 0.2);
    json_decref(g);
    expect_error("GET", "/api/graph", NULL, 400, "bad_data");
    expect_error("GET", "/api/graph?namespaces=default&graphType=nope", NULL, 400, "bad_data");
    expect_error("GET", "/api/graph?namespaces=Bad_NS", NULL, 400, "bad_data");
}

static void test_self_metrics(void **state)
{
    /* Ask a query first so that the query histogram has counts. */
    json_t *d = ok_data("/api/v1/query?query=vector(1)");
    json_decref(d);
    char *body = NULL;
    assert_int_equal(wt_http(port, "GET", "/metrics", NULL, 0, &body), 200);
    assert_non_null(strstr(body, "\nweft_store_series 3\n"));
    assert_non_null(strstr(body, "weft_ingest_samples_total "));
    assert_non_null(
        strstr(body, "weft_http_requests_total{code=\"2xx\",handler=\"/api/v1/query\"}"));
    assert_non_null(strstr(body, "weft_query_duration_seconds_bucket{le=\"+Inf\"}"));
    char path[600], log[600], cmd[1400];
    snprintf(path, sizeof(path), "%s/metrics.txt", dir);
    snprintf(log, sizeof(log), "%s/promtool-check.out", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(body, f);
    fclose(f);
    wf_free(body);
    /* promtool's linter: HELP and TYPE for every family, counter and unit naming rules. */
    snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path);
    char *argv[] = {"sh", "-c", cmd, NULL};
    int st = wt_wait(wt_spawn(argv, log), 30000);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        char *out = wt_read_file(log, NULL);
        fail_msg("promtool check metrics: %s", out ? out : "");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_instant_queries),    cmocka_unit_test(test_range_queries),
        cmocka_unit_test(test_metadata_endpoints), cmocka_unit_test(test_promtool_client),
        cmocka_unit_test(test_self_metrics),       cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_graph_api),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
