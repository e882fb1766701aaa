/*
 * test_collector_ingest.c - the push ingest paths of a real `weft collector` over HTTP:
 * Prometheus remote_write (snappy + protobuf, with Prometheus's headers, on keep-alive
 * connections) and OTLP/HTTP metrics (the OpenTelemetry JS SDK's captured requests, as JSON
 * with gzip and as protobuf with a chunked body). Hostile bodies get their 4xx with a message
 * (bad snappy, truncated protobuf, invalid UTF-8, a snappy header announcing too much, a body
 * over the route's limit, malformed JSON) and the server keeps serving afterwards; what was
 * accepted is read back through the query API. Last, a real Prometheus 2.42 remote-writes its
 * own metrics and metadata to weft and counts no failure.
 */
#include "wf_alloc.h"
#include "wf_buf.h"
#include "wf_clock.h"
#include "wt_rw.h"
#include "wt_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

static int port;
static pid_t pid;
static char *dir;

static int setup(void **state)
{
    (void)state;
    dir = wt_tmpdir("colingest");
    port = wt_free_port();
    char listen[64], data[512], log[600];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    snprintf(data, sizeof(data), "%s/data", dir);
    snprintf(log, sizeof(log), "%s/weft.log", dir);
    /* Retention 0 (forever): the captured OTLP requests carry the time they were recorded. */
    char *argv[] = {(char *)wt_weft_bin(), "collector", "--listen", listen, "--data-dir", data,
                    "--retention",         "0",         NULL};
    pid = wt_spawn(argv, log);
    assert_true(wt_wait_port(port, 10000));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    int status = wt_stop(pid, 10000);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    wt_rm_rf(dir);
    wf_free(dir);
    return 0;
}

/* The value of an instant query that must return exactly one sample, as a string. */
static void query_value(const char *q, int64_t at_ms, char *out, size_t cap)
{
    char path[1024];
    snprintf(path, sizeof(path), "/api/v1/query?query=%s&time=%.3f", q, (double)at_ms / 1000.0);
    char *body = NULL;
    assert_int_equal(wt_http(port, "GET", path, NULL, 0, &body), 200);
    const char *v = strstr(body, "\"value\":[");
    if (v == NULL || strstr(v + 1, "\"value\":[") != NULL) {
        fail_msg("%s: not one sample: %s", q, body);
    }
    const char *s = strchr(v + 9, '"');
    assert_non_null(s);
    size_t n = strcspn(s + 1, "\"");
    snprintf(out, cap, "%.*s", (int)n, s + 1);
    wf_free(body);
}

static void test_remote_write(void **state)
{
    (void)state;
    int64_t t = (wf_wall_ms() / 1000) * 1000 - 60000;
    wt_conn_t *c = wt_conn_open(port);
    assert_non_null(c);
    wt_rw_t *rw = wt_rw_new();
    wf_buf_t body = WF_BUF_INIT, resp = WF_BUF_INIT;
    /* Several requests on one keep-alive connection, as Prometheus's shards send them. */
    for (int r = 0; r < 5; r++) {
        wt_rw_reset(rw);
        for (int s = 0; s < 50; s++) {
            char id[16];
            snprintf(id, sizeof(id), "%d", s);
            wt_rw_series_l(rw, "__name__", "ingest_total", "job", "it", "s", id, NULL);
            wt_rw_sample(rw, t + r * 1000, r * 10 + s);
        }
        wf_buf_reset(&body);
        wt_rw_body(rw, &body);
        wf_buf_reset(&resp);
        int st =
            wt_conn_request(c, "POST", "/api/v1/write", WT_RW_HEADERS, body.data, body.len, &resp);
        if (st != 204) {
            fail_msg("round %d: %d %s", r, st, wf_buf_cstr(&resp));
        }
    }
    /* Without Prometheus's Content-Type and version headers, and chunked: accepted too. */
    wt_rw_reset(rw);
    wt_rw_series_l(rw, "__name__", "ingest_plain", "job", "it", NULL);
    wt_rw_sample(rw, t, 42);
    wf_buf_reset(&body);
    wt_rw_body(rw, &body);
    assert_int_equal(wt_conn_request(c, "POST", "/api/v1/write",
                                     "Content-Encoding: snappy\r\nTransfer-Encoding: chunked\r\n",
                                     body.data, body.len, NULL),
                     204);
    wt_conn_close(c);

    char v[64];
    query_value("ingest_total%7Bs%3D%2217%22%7D", t + 4000, v, sizeof(v));
    assert_string_equal(v, "57");
    query_value("count(ingest_total)", t + 4000, v, sizeof(v));
    assert_string_equal(v, "50");
    query_value("count_over_time(ingest_total%7Bs%3D%220%22%7D%5B1m%5D)", t + 4000, v, sizeof(v));
    assert_string_equal(v, "5");
    query_value("ingest_plain", t, v, sizeof(v));
    assert_string_equal(v, "42");
    wt_rw_free(rw);
    wf_buf_free(&body);
    wf_buf_free(&resp);
}

/* Send body to /api/v1/write; expect status and a message containing needle. */
static void expect(const void *body, size_t len, int status, const char *needle)
{
    char *resp = NULL;
    int st = wt_rw_post(port, "/api/v1/write", body, len, &resp);
    if (st != status || (needle != NULL && (resp == NULL || strstr(resp, needle) == NULL))) {
        fail_msg("expected %d with \"%s\", got %d: %s", status, needle ? needle : "", st,
                 resp ? resp : "(none)");
    }
    wf_free(resp);
}

static void test_remote_write_refusals(void **state)
{
    (void)state;
    int64_t t = wf_wall_ms() - 30000;
    expect("this is not snappy", 18, 400, "snappy");

    wf_buf_t pb = WF_BUF_INIT, body = WF_BUF_INIT;
    wt_rw_t *rw = wt_rw_new();
    wt_rw_series_l(rw, "__name__", "refused_metric", "job", "x", NULL);
    wt_rw_sample(rw, t, 1);
    wt_rw_encode(rw, &pb);
    /* truncated protobuf inside a valid snappy block */
    wt_rw_snappy(pb.data, pb.len - 4, &body);
    expect(body.data, body.len, 400, "protobuf");
    /* invalid UTF-8 in a label value */
    wt_rw_reset(rw);
    wt_rw_series_l(rw, "__name__", "refused_metric", "job", "\xc3\x28", NULL);
    wt_rw_sample(rw, t, 1);
    wf_buf_reset(&body);
    wt_rw_body(rw, &body);
    expect(body.data, body.len, 400, "UTF-8");
    /* a snappy header announcing 1 GiB */
    wf_buf_reset(&body);
    wf_buf_put_uvarint(&body, (uint64_t)1 << 30);
    wf_buf_append(&body, "\x00\x00", 2);
    expect(body.data, body.len, 413, NULL);
    /* a body over the route's limit, refused by the HTTP layer before decoding */
    size_t big = (size_t)33 << 20;
    char *huge = wf_calloc(1, big);
    expect(huge, big, 413, NULL);
    wf_free(huge);
    /* out of order: the first answer's sample is kept, the older one refused */
    wt_rw_reset(rw);
    wt_rw_series_l(rw, "__name__", "ooo_metric", "job", "x", NULL);
    wt_rw_sample(rw, t, 1);
    wf_buf_reset(&body);
    wt_rw_body(rw, &body);
    expect(body.data, body.len, 204, NULL);
    wt_rw_reset(rw);
    wt_rw_series_l(rw, "__name__", "ooo_metric", "job", "x", NULL);
    wt_rw_sample(rw, t - 10000, 2);
    wf_buf_reset(&body);
    wt_rw_body(rw, &body);
    expect(body.data, body.len, 400, "out of order");

    /* Nothing of the refused requests landed, and the server still serves. */
    char *resp = NULL;
    assert_int_equal(wt_http(port, "GET", "/api/v1/query?query=refused_metric", NULL, 0, &resp),
                     200);
    assert_non_null(strstr(resp, "\"result\":[]"));
    wf_free(resp);
    char v[64];
    query_value("ooo_metric", t, v, sizeof(v));
    assert_string_equal(v, "1");
    wt_rw_free(rw);
    wf_buf_free(&pb);
    wf_buf_free(&body);
}

static void gzip_buf(const void *in, size_t n, wf_buf_t *out)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&z, n);
    uint8_t *dst = wf_buf_reserve(out, cap);
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    z.next_out = dst;
    z.avail_out = (uInt)cap;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    out->len += z.total_out;
    deflateEnd(&z);
}

/* POST a remote_write body with content_type; the whole answer, headers included, into out
 * (NUL-terminated, wf_free it); returns the status. */
static int post_rw_raw(const char *content_type, const wf_buf_t *body, char **out)
{
    char headers[512];
    snprintf(headers, sizeof(headers),
             "Content-Encoding: snappy\r\nContent-Type: %s\r\n"
             "X-Prometheus-Remote-Write-Version: 2.0.0\r\n",
             content_type);
    int fd = wt_http_connect(port, 10000);
    assert_true(fd >= 0);
    assert_int_equal(wt_http_send(fd, port, "POST", "/api/v1/write", headers,
                                  (const char *)body->data, body->len),
                     0);
    wf_buf_t r = WF_BUF_INIT;
    char buf[4096];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) {
        wf_buf_append(&r, buf, (size_t)n);
    }
    close(fd);
    wf_buf_putc(&r, 0);
    *out = (char *)wf_buf_detach(&r, NULL);
    int status = 0;
    sscanf(*out, "HTTP/1.1 %d", &status);
    return status;
}

/* Remote write 2.0 (io.prometheus.write.v2.Request, what Prometheus 3 sends when told to):
 * samples and metadata stored, the Written headers 2.0 senders count; a message the receiver
 * does not know is 415, not silently read as another. No 2.0 sender runs here (Debian's
 * Prometheus is 2.42): the request is built from the 2.0 specification's field numbers. */
static void test_remote_write_2(void **state)
{
    (void)state;
    int64_t t = wf_wall_ms() - 20000;
    static const char *const sym[] = {"",    "__name__", "rw2_requests_total", "job", "app", "code",
                                      "200", "Served."};
    wf_buf_t pb = WF_BUF_INIT, series = WF_BUF_INIT, sample = WF_BUF_INIT, md = WF_BUF_INIT,
             body = WF_BUF_INIT;
    for (size_t i = 0; i < 8; i++) {
        wt_pb_str(&pb, 4, sym[i]);
    }
    static const uint8_t refs[] = {1, 2, 5, 6, 3, 4}; /* __name__, code, job: sorted */
    wt_pb_bytes(&series, 1, refs, sizeof(refs));
    for (int i = 0; i < 2; i++) {
        wf_buf_reset(&sample);
        wt_pb_double(&sample, 1, 10 + i);
        wt_pb_varint(&sample, 2, (uint64_t)(t + i * 1000));
        wt_pb_bytes(&series, 2, sample.data, sample.len);
    }
    wt_pb_varint(&md, 1, 1); /* COUNTER */
    wt_pb_varint(&md, 3, 7); /* help "Served." */
    wt_pb_bytes(&series, 5, md.data, md.len);
    wt_pb_bytes(&pb, 5, series.data, series.len);
    wt_rw_snappy(pb.data, pb.len, &body);

    char *r = NULL;
    assert_int_equal(
        post_rw_raw("application/x-protobuf;proto=io.prometheus.write.v2.Request", &body, &r), 204);
    assert_non_null(strcasestr(r, "X-Prometheus-Remote-Write-Samples-Written: 2\r\n"));
    assert_non_null(strcasestr(r, "X-Prometheus-Remote-Write-Histograms-Written: 0\r\n"));
    wf_free(r);
    char v[64];
    query_value("rw2_requests_total%7Bjob%3D%22app%22%2Ccode%3D%22200%22%7D", t + 1000, v,
                sizeof(v));
    assert_string_equal(v, "11");
    char *m = NULL;
    assert_int_equal(
        wt_http(port, "GET", "/api/v1/metadata?metric=rw2_requests_total", NULL, 0, &m), 200);
    assert_non_null(strstr(m, "\"type\":\"counter\",\"help\":\"Served.\""));
    wf_free(m);

    /* The same bytes named as another message: refused, nothing read. */
    assert_int_equal(
        post_rw_raw("application/x-protobuf;proto=io.prometheus.write.v3.Request", &body, &r), 415);
    assert_non_null(strstr(r, "io.prometheus.write.v2.Request"));
    wf_free(r);
    /* A 2.0 body sent as 1.0: 1.0 has none of its fields, so it holds no samples (204, as
     * Prometheus answers an empty request) and stores nothing. */
    assert_int_equal(post_rw_raw("application/x-protobuf", &body, &r), 204);
    wf_free(r);
    assert_int_equal(
        wt_http(port, "GET", "/api/v1/series?match%5B%5D=%7Bjob%3D%22app%22%7D", NULL, 0, &m), 200);
    assert_non_null(strstr(m, "\"data\":[{"));
    assert_null(strstr(m, "},{"));
    wf_free(m);
    /* A symbol reference outside the table: 400 with the reason. */
    wf_buf_t bad = WF_BUF_INIT, bad_body = WF_BUF_INIT;
    wt_pb_str(&bad, 4, "");
    wf_buf_reset(&series);
    static const uint8_t bad_refs[] = {1, 2};
    wt_pb_bytes(&series, 1, bad_refs, sizeof(bad_refs));
    wt_pb_bytes(&bad, 5, series.data, series.len);
    wt_rw_snappy(bad.data, bad.len, &bad_body);
    assert_int_equal(
        post_rw_raw("application/x-protobuf;proto=io.prometheus.write.v2.Request", &bad_body, &r),
        400);
    assert_non_null(strstr(r, "out of range"));
    assert_non_null(strcasestr(r, "X-Prometheus-Remote-Write-Samples-Written: 0\r\n"));
    wf_free(r);
    wf_buf_free(&bad);
    wf_buf_free(&bad_body);
    wf_buf_free(&pb);
    wf_buf_free(&series);
    wf_buf_free(&sample);
    wf_buf_free(&md);
    wf_buf_free(&body);
}

static void test_otlp_metrics(void **state)
{
    (void)state;
    char *jpath = wt_ref_path("otel-captures/metrics-logs/01-otlp-json.body.json");
    char *ppath = wt_ref_path("otel-captures/metrics-logs/03-otlp-proto.body.bin");
    if (jpath == NULL || ppath == NULL) {
        wf_free(jpath);
        wf_free(ppath);
        wt_skip();
    }
    size_t jlen, plen;
    char *json = wt_read_file(jpath, &jlen);
    char *proto = wt_read_file(ppath, &plen);
    wt_conn_t *c = wt_conn_open(port);
    assert_non_null(c);
    wf_buf_t gz = WF_BUF_INIT, resp = WF_BUF_INIT;
    gzip_buf(json, jlen, &gz);
    int st = wt_conn_request(c, "POST", "/v1/metrics",
                             "Content-Type: application/json\r\nContent-Encoding: gzip\r\n",
                             gz.data, gz.len, &resp);
    assert_int_equal(st, 200);
    assert_string_equal(wf_buf_cstr(&resp), "{}");
    wf_buf_reset(&resp);
    /* Prometheus's OTLP path takes the same. */
    st = wt_conn_request(c, "POST", "/api/v1/otlp/v1/metrics",
                         "Content-Type: application/x-protobuf\r\nTransfer-Encoding: chunked\r\n",
                         proto, plen, &resp);
    assert_int_equal(st, 200);
    assert_int_equal(resp.len, 0);
    wf_buf_reset(&resp);
    st = wt_conn_request(c, "POST", "/v1/metrics", "Content-Type: application/json\r\n",
                         "{\"resourceMetrics\":[", 20, &resp);
    assert_int_equal(st, 400);
    assert_non_null(strstr(wf_buf_cstr(&resp), "\"code\":3"));
    wt_conn_close(c);

    /* The JSON capture's points are at 1795634371768 ms, the protobuf one's at
     * 1795634372051 ms: both landed in the same series. */
    char v[64];
    query_value("http_server_duration_milliseconds_count%7Bjob%3D%22capture-demo%22%7D",
                1795634372051LL, v, sizeof(v));
    assert_string_equal(v, "1");
    query_value("count_over_time(http_server_requests_total%5B1m%5D)", 1795634372051LL, v,
                sizeof(v));
    assert_string_equal(v, "2");
    query_value("http_server_duration_milliseconds_bucket%7Ble%3D%2225%22%7D", 1795634372051LL, v,
                sizeof(v));
    assert_string_equal(v, "1");
    wf_buf_free(&gz);
    wf_buf_free(&resp);
    wf_free(json);
    wf_free(proto);
    wf_free(jpath);
    wf_free(ppath);
}

/* The body of GET path on port (NULL unless 200); wf_free it. */
static char *get_ok(int p, const char *path)
{
    char *body = NULL;
    if (wt_http(p, "GET", path, NULL, 0, &body) != 200) {
        wf_free(body);
        return NULL;
    }
    return body;
}

/*
 * A real Prometheus 2.42 as the remote_write client: it scrapes itself every second and
 * forwards samples and metric metadata to weft. Weft must take everything: Prometheus counts
 * no failed sample, and the series and metadata show up in weft's API.
 */
static void test_prometheus_client(void **state)
{
    (void)state;
    if (access("/usr/bin/prometheus", X_OK) != 0) {
        printf("skipped: /usr/bin/prometheus not present\n");
        wt_skip();
    }
    int pport = wt_free_port();
    char cfg[600], tsdb[600], listen[64], log[600], cfgarg[700], tsdbarg[700];
    snprintf(cfg, sizeof(cfg), "%s/prom.yml", dir);
    snprintf(tsdb, sizeof(tsdb), "%s/prom", dir);
    snprintf(log, sizeof(log), "%s/prom.log", dir);
    FILE *f = fopen(cfg, "w");
    assert_non_null(f);
    fprintf(f,
            "global:\n  scrape_interval: 1s\n"
            "scrape_configs:\n  - job_name: prom\n    static_configs:\n"
            "      - targets: ['127.0.0.1:%d']\n"
            "remote_write:\n  - url: http://127.0.0.1:%d/api/v1/write\n"
            "    queue_config:\n      batch_send_deadline: 1s\n"
            "    metadata_config:\n      send_interval: 1s\n",
            pport, port);
    fclose(f);
    snprintf(cfgarg, sizeof(cfgarg), "--config.file=%s", cfg);
    snprintf(tsdbarg, sizeof(tsdbarg), "--storage.tsdb.path=%s", tsdb);
    snprintf(listen, sizeof(listen), "--web.listen-address=127.0.0.1:%d", pport);
    char *argv[] = {"/usr/bin/prometheus", cfgarg, tsdbarg, listen, NULL};
    pid_t prom = wt_spawn(argv, log);
    assert_true(wt_wait_port(pport, 30000));

    /* Wait (at most 30 s) until weft has Prometheus's own `up` and a metric's metadata. */
    bool up = false, meta = false;
    for (int i = 0; i < 300 && !(up && meta); i++) {
        char *b = get_ok(port, "/api/v1/query?query=up%7Bjob%3D%22prom%22%7D");
        up = b != NULL && strstr(b, "\"value\":[") != NULL && strstr(b, ",\"1\"]") != NULL;
        wf_free(b);
        b = get_ok(port, "/api/v1/metadata?metric=prometheus_http_requests_total");
        meta = b != NULL && strstr(b, "\"type\":\"counter\"") != NULL;
        wf_free(b);
        if (!(up && meta)) {
            usleep(100000);
        }
    }
    /* Prometheus sees its own send counters only through its next self-scrape, a second or more
     * after weft has the samples: wait (at most 30 s) until they show a send. */
    char *sent = NULL, *failed = NULL;
    for (int i = 0; i < 300; i++) {
        wf_free(sent);
        wf_free(failed);
        sent = get_ok(pport, "/api/v1/query?query=prometheus_remote_storage_samples_total");
        failed =
            get_ok(pport, "/api/v1/query?query=prometheus_remote_storage_samples_failed_total");
        if (sent != NULL && strstr(sent, "\"value\":[") != NULL &&
            strstr(sent, ",\"0\"]") == NULL) {
            break;
        }
        usleep(100000);
    }
    wt_stop(prom, 10000);
    assert_true(up);
    assert_true(meta);
    assert_non_null(sent);
    assert_non_null(failed);
    /* Prometheus sent samples, and none failed (a refusal would count as failed). */
    assert_null(strstr(sent, ",\"0\"]"));
    assert_non_null(strstr(failed, ",\"0\"]"));
    wf_free(sent);
    wf_free(failed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_remote_write),      cmocka_unit_test(test_remote_write_refusals),
        cmocka_unit_test(test_remote_write_2),    cmocka_unit_test(test_otlp_metrics),
        cmocka_unit_test(test_prometheus_client),
    };
    return wt_exit_code(cmocka_run_group_tests(tests, setup, teardown));
}
