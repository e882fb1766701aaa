/*
 * test_proxy_traces.c - spans and trace propagation through real processes: a `weft collector`,
 * a source proxy (productpage, outbound listener routed by the example snapshot, sampling 100)
 * and a destination proxy (details, inbound) in front of the test upstream. Asserted: the app
 * receives this hop's context (incoming trace id, the destination's server span as parent, one
 * traceparent only); the collector's Jaeger API returns exactly the CLIENT and SERVER spans with
 * their parent links, Istio's tags and durations; B3 in gives B3 out; an unsampled request
 * exports nothing; no header starts a new sampled trace; with the collector down requests still
 * succeed and the failed spans are counted. Waits poll with a bounded deadline.
 */
#include "test_proxy_common.h"

#include <jansson.h>

static int col_port;
static pid_t col_pid;
static char *col_dir;
static upstream_t app;
static proxy_t dst, src;
static char *snap_dir;
static char dst_log[600], src_log[600];

/* text with the one occurrence of from replaced by to (a new string). */
static char *replace_once(const char *text, const char *from, const char *to)
{
    const char *q = strstr(text, from);
    assert_non_null(q);
    wf_buf_t b = WF_BUF_INIT;
    wf_buf_append(&b, text, (size_t)(q - text));
    wf_buf_puts(&b, to);
    wf_buf_puts(&b, q + strlen(from));
    wf_buf_cstr(&b);
    return (char *)wf_buf_detach(&b, NULL);
}

static int setup(void **state)
{
    (void)state;
    col_dir = wt_tmpdir("pxtraces");
    col_port = wt_free_port();
    char listen[64], data[512], log[600], col_url[64];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", col_port);
    snprintf(data, sizeof(data), "%s/data", col_dir);
    snprintf(log, sizeof(log), "%s/collector.log", col_dir);
    snprintf(col_url, sizeof(col_url), "http://127.0.0.1:%d", col_port);
    char *argv[] = {
        (char *)wt_weft_bin(), "collector", "--listen",        listen, "--data-dir", data,
        "--otlp-listen",       "off",       "--zipkin-listen", "off",  NULL};
    col_pid = wt_spawn(argv, log);
    assert_true(wt_wait_port(col_port, 10000));

    upstream_start(&app, "details-app");
    snprintf(dst_log, sizeof(dst_log), "%s/dst-access.log", col_dir);
    snprintf(src_log, sizeof(src_log), "%s/src-access.log", col_dir);
    const char *const dextra[] = {
        "--version",    "v1",    "--service",  "details", "--outbound",       "off",
        "--collector",  col_url, "--sampling", "0",       "--trace-flush-ms", "100",
        "--access-log", dst_log, NULL};
    proxy_start_with(&dst, app.port, NULL, "1", dextra);

    /* The source's snapshot: details' endpoint is the destination proxy, spans go to our
     * collector, every new trace is sampled. */
    char *text = example_text_plaintext("productpage-reviews-80-20.json");
    char to[64];
    snprintf(to, sizeof(to), "\"address\": \"127.0.0.1\",\n          \"port\": %d", dst.inbound);
    char *a = replace_once(text, "\"address\": \"10.1.0.20\",\n          \"port\": 9080", to);
    char *b = replace_once(a, "\"sampling\": 1.0", "\"sampling\": 100");
    char url[96];
    snprintf(url, sizeof(url), "\"collector_url\": \"%s/v1/traces\"", col_url);
    char *c = replace_once(b, "\"collector_url\": \"http://127.0.0.1:4318/v1/traces\"", url);
    snap_dir = wt_tmpdir("pxtrsnap");
    char path[4200];
    snprintf(path, sizeof(path), "%s/snapshot.json", snap_dir);
    wt_write_file(path, c);
    const char *const sextra[] = {"--trace-flush-ms", "100", "--access-log", src_log, NULL};
    proxy_start_with(&src, wt_free_port(), path, "1", sextra);
    assert_true(wt_wait_port(src.outbound, 10000));
    wf_free(text);
    wf_free(a);
    wf_free(b);
    wf_free(c);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    proxy_stop(&src);
    proxy_stop(&dst);
    upstream_stop(&app);
    int st = wt_stop(col_pid, 10000);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    wt_rm_rf(col_dir);
    wf_free(col_dir);
    wt_rm_rf(snap_dir);
    wf_free(snap_dir);
    return 0;
}

/* The head the app received for GET http://details:9080/headers through the source proxy,
 * with the extra curl arguments (header options). */
static void through_mesh(const char *curl_args, char *head, size_t cap)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "curl -s --max-time 20 -A test-agent/1.0 -x http://127.0.0.1:%d %s "
             "http://details:9080/headers",
             src.outbound, curl_args);
    assert_int_equal(run_cmd(cmd, head, cap), 0);
    assert_non_null(strstr(head, "GET /headers HTTP/1.1\r\n"));
}

/* How many field lines named name the head has. */
static int count_hdr(const char *head, const char *name)
{
    int n = 0;
    size_t nl = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p != NULL; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, nl) == 0 && p[2 + nl] == ':') {
            n++;
        }
    }
    return n;
}

/* GET /api/traces/<id>: the trace object once it holds want spans, polling up to 10 s (*j
 * holds the document); NULL (and *j NULL) when it never does. */
static json_t *trace_wait(const char *id, size_t want, json_t **j)
{
    char path[128];
    snprintf(path, sizeof(path), "/api/traces/%s", id);
    for (int i = 0; i < 200; i++) {
        char *body = NULL;
        int st = wt_http(col_port, "GET", path, NULL, 0, &body);
        if (st == 200 && body != NULL) {
            json_error_t err;
            *j = json_loads(body, 0, &err);
            assert_non_null(*j);
            json_t *t = json_array_get(json_object_get(*j, "data"), 0);
            if (json_array_size(json_object_get(t, "spans")) >= want) {
                wf_free(body);
                return t;
            }
            json_decref(*j);
        }
        wf_free(body);
        usleep(50 * 1000);
    }
    *j = NULL;
    return NULL;
}

/* True when the collector has no span of trace id (it answers 404 or an empty trace). */
static bool trace_absent(const char *id)
{
    char path[128];
    snprintf(path, sizeof(path), "/api/traces/%s", id);
    char *body = NULL;
    int st = wt_http(col_port, "GET", path, NULL, 0, &body);
    bool absent = st == 404;
    if (st == 200) {
        json_t *j = json_loads(body, 0, NULL);
        json_t *t = json_array_get(json_object_get(j, "data"), 0);
        absent = json_array_size(json_object_get(t, "spans")) == 0;
        json_decref(j);
    }
    wf_free(body);
    return absent;
}

static const char *tag(json_t *span, const char *key)
{
    json_t *tags = json_object_get(span, "tags");
    for (size_t i = 0; i < json_array_size(tags); i++) {
        json_t *t = json_array_get(tags, i);
        if (strcmp(json_string_value(json_object_get(t, "key")), key) == 0) {
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

static const char *sval(json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    assert_non_null(v);
    return v;
}

/* The span of trace t with tag span.kind = kind. */
static json_t *span_of_kind(json_t *t, const char *kind)
{
    json_t *spans = json_object_get(t, "spans");
    json_t *found = NULL;
    for (size_t i = 0; i < json_array_size(spans); i++) {
        json_t *s = json_array_get(spans, i);
        const char *k = tag(s, "span.kind");
        if (k != NULL && strcmp(k, kind) == 0) {
            assert_null(found);
            found = s;
        }
    }
    assert_non_null(found);
    return found;
}

/* The parent span id of s ("" for a root). */
static const char *parent_of(json_t *s)
{
    json_t *refs = json_object_get(s, "references");
    if (json_array_size(refs) == 0) {
        return "";
    }
    assert_int_equal(json_array_size(refs), 1);
    json_t *r = json_array_get(refs, 0);
    assert_string_equal(sval(r, "refType"), "CHILD_OF");
    return sval(r, "spanID");
}

static const char *service_of(json_t *t, json_t *s)
{
    json_t *proc = json_object_get(json_object_get(t, "processes"), sval(s, "processID"));
    return sval(proc, "serviceName");
}

/* An upstream that closes mid-body behind two hops: after a keep-alive request on the same
 * client connection, the client sees a cut response (curl: partial file, 18) at once, not a
 * hang until its time limit (28). */
static void test_reset_mid_body_two_hops(void **state)
{
    (void)state;
    char cmd[1024], out[256];
    snprintf(cmd, sizeof(cmd),
             "curl -s --max-time 8 -o /dev/null -w '%%{http_code} ' -x http://127.0.0.1:%d "
             "http://details:9080/hello -o /dev/null -w '%%{http_code} ' "
             "http://details:9080/reset; echo rc=$?",
             src.outbound);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(run_cmd(cmd, out, sizeof(out)), 0);
        assert_string_equal(out, "200 200 rc=18\n");
    }
}

static void test_w3c_two_hops(void **state)
{
    (void)state;
    static const char tid[] = "4bf92f3577b34da6a3ce929d0e0e4736";
    static const char caller[] = "00f067aa0ba902b7";
    char head[16384], v[512];
    through_mesh("-H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' "
                 "-H 'tracestate: vendor=abc, other=1' -H 'x-request-id: rid-w3c-1'",
                 head, sizeof(head));
    assert_int_equal(count_hdr(head, "traceparent"), 1);
    assert_non_null(find_hdr(head, "traceparent", v, sizeof(v)));
    /* 00-<trace>-<the destination's server span>-01 */
    assert_int_equal(strlen(v), 55);
    assert_memory_equal(v, "00-", 3);
    assert_memory_equal(v + 3, tid, 32);
    assert_string_equal(v + 52, "-01");
    char app_parent[17];
    memcpy(app_parent, v + 36, 16);
    app_parent[16] = '\0';
    assert_string_not_equal(app_parent, caller);
    assert_int_equal(count_hdr(head, "tracestate"), 1);
    assert_string_equal(find_hdr(head, "tracestate", v, sizeof(v)), "vendor=abc,other=1");
    assert_string_equal(find_hdr(head, "x-request-id", v, sizeof(v)), "rid-w3c-1");
    /* Every hop also speaks B3 multi, with the same ids. */
    assert_string_equal(find_hdr(head, "x-b3-traceid", v, sizeof(v)), tid);
    assert_string_equal(find_hdr(head, "x-b3-spanid", v, sizeof(v)), app_parent);
    assert_int_equal(count_hdr(head, "x-b3-traceid"), 1);

    json_t *j = NULL;
    json_t *t = trace_wait(tid, 2, &j);
    assert_non_null(t);
    json_t *spans = json_object_get(t, "spans");
    assert_int_equal(json_array_size(spans), 2);
    json_t *client = span_of_kind(t, "client");
    json_t *server = span_of_kind(t, "server");
    /* caller -> client (source proxy) -> server (destination proxy) -> app */
    assert_string_equal(parent_of(client), caller);
    assert_string_equal(parent_of(server), sval(client, "spanID"));
    assert_string_equal(sval(server, "spanID"), app_parent);
    assert_string_equal(service_of(t, client), "productpage");
    assert_string_equal(service_of(t, server), "details");
    assert_string_equal(sval(client, "operationName"), "details.default.svc.cluster.local:9080/*");
    char op[128];
    snprintf(op, sizeof(op), "details.default.svc.cluster.local:%d/*", app.port);
    assert_string_equal(sval(server, "operationName"), op);
    json_t *both[2] = {client, server};
    for (int i = 0; i < 2; i++) {
        json_t *s = both[i];
        assert_true(json_integer_value(json_object_get(s, "duration")) > 0);
        assert_string_equal(tag(s, "http.method"), "GET");
        assert_string_equal(tag(s, "http.url"), "http://details:9080/headers");
        assert_string_equal(tag(s, "http.status_code"), "200");
        assert_string_equal(tag(s, "http.protocol"), "HTTP/1.1");
        assert_string_equal(tag(s, "response_flags"), "-");
        assert_string_equal(tag(s, "guid:x-request-id"), "rid-w3c-1");
        assert_string_equal(tag(s, "component"), "proxy");
        assert_string_equal(tag(s, "user_agent"), "test-agent/1.0");
        assert_string_equal(tag(s, "peer.address"), "127.0.0.1");
        assert_string_equal(tag(s, "istio.namespace"), "default");
        assert_null(tag(s, "error"));
    }
    /* The server span lies within the client span. */
    long long cs = json_integer_value(json_object_get(client, "startTime"));
    long long cd = json_integer_value(json_object_get(client, "duration"));
    long long ss = json_integer_value(json_object_get(server, "startTime"));
    long long sd = json_integer_value(json_object_get(server, "duration"));
    assert_true(ss >= cs && ss + sd <= cs + cd + 1); /* + 1: both are truncated to µs */
    assert_string_equal(tag(client, "upstream_cluster"),
                        "outbound|9080||details.default.svc.cluster.local");
    assert_string_equal(tag(client, "istio.canonical_service"), "productpage");
    assert_string_equal(tag(client, "istio.canonical_revision"), "v1");
    assert_string_equal(tag(client, "node_id"),
                        "sidecar~127.0.0.1~productpage-v1.default~default.svc.cluster.local");
    char cluster[64];
    snprintf(cluster, sizeof(cluster), "inbound|%d||", app.port);
    assert_string_equal(tag(server, "upstream_cluster"), cluster);
    assert_string_equal(tag(server, "istio.canonical_service"), "details");
    assert_string_equal(tag(server, "istio.canonical_revision"), "v1");
    json_decref(j);
}

/* A destination whose app is down answers 503 UF itself: its span is an error. */
static void test_error_span(void **state)
{
    (void)state;
    proxy_t p;
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", col_port);
    const char *const extra[] = {"--collector", url, "--trace-flush-ms", "50", "--service",
                                 "ratings",     NULL};
    proxy_start_with(&p, wt_free_port(), NULL, "1", extra); /* nothing listens on the app port */
    char cmd[512], out[256];
    snprintf(cmd, sizeof(cmd),
             "curl -s -o /dev/null -w '%%{http_code}' --max-time 20 "
             "-H 'traceparent: 00-6bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' "
             "http://127.0.0.1:%d/x",
             p.inbound);
    assert_int_equal(run_cmd(cmd, out, sizeof(out)), 0);
    assert_string_equal(out, "503");
    json_t *j = NULL;
    json_t *t = trace_wait("6bf92f3577b34da6a3ce929d0e0e4736", 1, &j);
    assert_non_null(t);
    assert_int_equal(json_array_size(json_object_get(t, "spans")), 1);
    json_t *server = span_of_kind(t, "server");
    assert_string_equal(parent_of(server), "00f067aa0ba902b7");
    assert_string_equal(service_of(t, server), "ratings");
    assert_string_equal(tag(server, "http.status_code"), "503");
    assert_string_equal(tag(server, "response_flags"), "UF");
    assert_string_equal(tag(server, "error"), "true");
    json_decref(j);
    proxy_stop(&p);
}

static void test_b3_in_b3_out(void **state)
{
    (void)state;
    char head[16384], v[512];
    /* B3 multi, 64-bit trace id. */
    through_mesh("-H 'X-B3-TraceId: 463ac35c9f6413ad' -H 'X-B3-SpanId: a2fb4a1d1a96d312' "
                 "-H 'X-B3-Sampled: 1'",
                 head, sizeof(head));
    assert_int_equal(count_hdr(head, "x-b3-traceid"), 1);
    /* The source kept the 64-bit form; between the proxies traceparent carries it padded to
     * 128 bits, and the destination (traceparent first) passes that form on. */
    assert_string_equal(find_hdr(head, "x-b3-traceid", v, sizeof(v)),
                        "0000000000000000463ac35c9f6413ad");
    assert_string_equal(find_hdr(head, "x-b3-sampled", v, sizeof(v)), "1");
    char span[17], parent[17];
    assert_non_null(find_hdr(head, "x-b3-spanid", span, sizeof(span)));
    assert_non_null(find_hdr(head, "x-b3-parentspanid", parent, sizeof(parent)));
    assert_string_not_equal(span, "a2fb4a1d1a96d312");
    assert_string_not_equal(parent, "a2fb4a1d1a96d312");
    assert_int_equal(count_hdr(head, "b3"), 0);
    json_t *j = NULL;
    json_t *t = trace_wait("0000000000000000463ac35c9f6413ad", 2, &j);
    assert_non_null(t);
    json_t *client = span_of_kind(t, "client");
    json_t *server = span_of_kind(t, "server");
    assert_string_equal(parent_of(client), "a2fb4a1d1a96d312");
    assert_string_equal(sval(client, "spanID"), parent);
    assert_string_equal(sval(server, "spanID"), span);
    json_decref(j);

    /* B3 single in, B3 single out (and the multi form beside it). */
    through_mesh("-H 'b3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1'", head,
                 sizeof(head));
    assert_int_equal(count_hdr(head, "b3"), 1);
    assert_non_null(find_hdr(head, "b3", v, sizeof(v)));
    /* trace-span-1-parent */
    assert_int_equal(strlen(v), 32 + 1 + 16 + 2 + 17);
    assert_memory_equal(v, "80f198ee56343ba864fe8b2a57d3eff7-", 33);
    assert_memory_equal(v + 49, "-1-", 3);
    char b3tid[64];
    assert_string_equal(find_hdr(head, "x-b3-traceid", b3tid, sizeof(b3tid)),
                        "80f198ee56343ba864fe8b2a57d3eff7");
    t = trace_wait("80f198ee56343ba864fe8b2a57d3eff7", 2, &j);
    assert_non_null(t);
    client = span_of_kind(t, "client");
    server = span_of_kind(t, "server");
    assert_string_equal(parent_of(client), "e457b5a2e4d86bd1");
    assert_memory_equal(v + 33, sval(server, "spanID"), 16);
    assert_string_equal(v + 52, sval(client, "spanID"));
    json_decref(j);
}

static void test_unsampled_and_new_traces(void **state)
{
    (void)state;
    char head[16384], v[512];
    /* The caller said "not sampled": propagated as such, and no span anywhere. */
    static const char quiet[] = "0af7651916cd43dd8448eb211c80319c";
    through_mesh("-H 'traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00'", head,
                 sizeof(head));
    assert_non_null(find_hdr(head, "traceparent", v, sizeof(v)));
    assert_memory_equal(v + 3, quiet, 32);
    assert_string_equal(v + 52, "-00");
    assert_string_equal(find_hdr(head, "x-b3-sampled", v, sizeof(v)), "0");

    /* No context: the source (sampling 100) starts a sampled trace. Both proxies run one
     * worker each, so its spans are queued after anything the request above could have made:
     * once they are in, the unsampled trace would be too. */
    through_mesh("", head, sizeof(head));
    assert_non_null(find_hdr(head, "traceparent", v, sizeof(v)));
    assert_string_equal(v + 52, "-01");
    char tid[33];
    memcpy(tid, v + 3, 32);
    tid[32] = '\0';
    json_t *j = NULL;
    json_t *t = trace_wait(tid, 2, &j);
    assert_non_null(t);
    json_t *client = span_of_kind(t, "client");
    json_t *server = span_of_kind(t, "server");
    assert_string_equal(parent_of(client), ""); /* a root */
    assert_string_equal(parent_of(server), sval(client, "spanID"));
    assert_memory_equal(v + 36, sval(server, "spanID"), 16);
    /* x-request-id made by the source proxy, seen by the app and in both spans. */
    char rid[64];
    assert_non_null(find_hdr(head, "x-request-id", rid, sizeof(rid)));
    assert_int_equal(strlen(rid), 36);
    assert_string_equal(tag(client, "guid:x-request-id"), rid);
    assert_string_equal(tag(server, "guid:x-request-id"), rid);
    json_decref(j);
    assert_true(trace_absent(quiet));
}

/* A sidecar under a control plane, started without --collector: its span exporter starts
 * with the first snapshot, which names the control plane's --collector (concurrency 2: both
 * workers' queues are picked up while they run). Requests then leave server spans. */
static void test_collector_from_control(void **state)
{
    (void)state;
    char col_url[64];
    snprintf(col_url, sizeof(col_url), "http://127.0.0.1:%d", col_port);
    wt_control_t c;
    assert_int_equal(
        wt_control_new(&c, "pxtrctl",
                       (const char *const[]){"--collector", col_url, "--sampling", "100", NULL}),
        0);
    proxy_t p;
    const char *const extra[] = {"--service",  "stars", "--version",        "v7",
                                 "--outbound", "off",   "--trace-flush-ms", "50",
                                 NULL};
    proxy_start_meshed(&p, app.port, &c, extra);
    double version = 0;
    for (int i = 0; i < 500 && version <= 0; i++) {
        version = stat_value(p.admin, "weft_proxy_config_version");
        if (version <= 0) {
            usleep(10 * 1000);
        }
    }
    assert_true(version > 0);
    /* Each request is a new trace; once one is stored the exporter runs. Both workers take
     * requests (new connections are spread), so a few requests reach both. */
    bool found = false;
    for (int i = 0; i < 100 && !found; i++) {
        assert_int_equal(wt_http(p.inbound, "GET", "/headers", NULL, 0, NULL), 200);
        char *body = NULL;
        int st = wt_http(col_port, "GET", "/api/traces?service=stars&limit=5", NULL, 0, &body);
        if (st == 200 && body != NULL) {
            json_t *j = json_loads(body, 0, NULL);
            json_t *t = json_array_get(json_object_get(j, "data"), 0);
            json_t *s = t != NULL ? json_array_get(json_object_get(t, "spans"), 0) : NULL;
            if (s != NULL) {
                assert_string_equal(tag(s, "span.kind"), "server");
                assert_string_equal(tag(s, "istio.canonical_revision"), "v7");
                found = true;
            }
            json_decref(j);
        }
        wf_free(body);
        if (!found) {
            usleep(100 * 1000);
        }
    }
    assert_true(found);
    assert_true(stat_value(p.admin, "weft_proxy_spans_sent_total") >= 1);
    proxy_stop(&p);
    assert_int_equal(wt_control_stop(&c), 0);
    wt_control_free(&c);
}

static void test_collector_down(void **state)
{
    (void)state;
    proxy_t p;
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", wt_free_port()); /* nothing listens */
    const char *const extra[] = {"--collector",      url,  "--sampling", "100",
                                 "--trace-flush-ms", "50", NULL};
    proxy_start_with(&p, app.port, NULL, "1", extra);
    resp_t rs;
    for (int i = 0; i < 3; i++) {
        memset(&rs, 0, sizeof(rs));
        assert_int_equal(request(p.inbound,
                                 "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                                 NULL, 0, &rs),
                         200);
        resp_free(&rs);
    }
    double failed = -1;
    for (int i = 0; i < 200 && failed < 3; i++) {
        failed = stat_value(p.admin, "weft_proxy_spans_dropped_total{reason=\"export_failed\"}");
        if (failed < 3) {
            usleep(50 * 1000);
        }
    }
    assert_true(failed == 3);
    assert_true(stat_value(p.admin, "weft_proxy_span_export_failures_total") >= 1);
    assert_true(stat_value(p.admin, "weft_proxy_spans_sent_total") == 0);
    assert_true(stat_value(p.admin, "weft_proxy_spans_dropped_total{reason=\"queue_full\"}") == 0);
    assert_true(stat_value(p.admin, "weft_proxy_access_log_dropped_total") == 0);
    /* promtool's linter has nothing to say about these families (it does about Istio's
     * istio_request_duration_milliseconds unit, which is Istio's name). */
    char cmd[256], out[4096];
    snprintf(cmd, sizeof(cmd),
             "curl -s http://127.0.0.1:%d/stats/prometheus | promtool check metrics 2>&1", p.admin);
    run_cmd(cmd, out, sizeof(out));
    assert_null(strstr(out, "weft_proxy_"));
    assert_null(strstr(out, "error"));
    proxy_stop(&p);
}

/* The value of key in a logfmt line (quoted values unescaped) into out; false when absent. */
static bool logfmt_get(const char *line, const char *key, char *out, size_t cap)
{
    size_t kl = strlen(key);
    const char *p = line;
    while (*p != '\0' && *p != '\n') {
        const char *eq = strchr(p, '=');
        assert_non_null(eq);
        bool match = (size_t)(eq - p) == kl && strncmp(p, key, kl) == 0;
        const char *v = eq + 1;
        size_t n = 0;
        if (*v == '"') {
            v++;
            while (*v != '"') {
                assert_true(*v != '\0' && *v != '\n');
                char c = *v++;
                if (c == '\\') {
                    c = *v++;
                    c = c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c;
                }
                if (match && n + 1 < cap) {
                    out[n++] = c;
                }
            }
            v++;
        } else {
            while (*v != ' ' && *v != '\n' && *v != '\0') {
                if (match && n + 1 < cap) {
                    out[n++] = *v;
                }
                v++;
            }
        }
        if (match) {
            out[n] = '\0';
            return true;
        }
        p = *v == ' ' ? v + 1 : v;
    }
    return false;
}

/* The line of the access log at path whose request_id is rid, polling up to 10 s (the writer
 * flushes every second). A new string, or NULL. */
static char *log_line(const char *path, const char *rid)
{
    char want[128];
    snprintf(want, sizeof(want), " request_id=%s ", rid);
    for (int i = 0; i < 200; i++) {
        char *text = wt_read_file(path, NULL);
        const char *hit = text != NULL ? strstr(text, want) : NULL;
        if (hit != NULL) {
            while (hit > text && hit[-1] != '\n') {
                hit--;
            }
            const char *eol = strchr(hit, '\n');
            assert_non_null(eol);
            char *line = wf_malloc((size_t)(eol - hit) + 2);
            memcpy(line, hit, (size_t)(eol - hit) + 1);
            line[eol - hit + 1] = '\0';
            wf_free(text);
            return line;
        }
        wf_free(text);
        usleep(50 * 1000);
    }
    return NULL;
}

static void test_access_log(void **state)
{
    (void)state;
    char head[16384], v[512];
    through_mesh("-H 'x-request-id: rid-log-1' "
                 "-H 'traceparent: 00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'",
                 head, sizeof(head));
    size_t app_bytes = strlen(head);
    static const char *const keys[] = {
        "start_time", "method",      "authority",          "path",
        "protocol",   "status",      "response_flags",     "bytes_in",
        "bytes_out",  "duration_ms", "upstream_host",      "upstream_cluster",
        "request_id", "trace_id",    "downstream_address", "reporter"};
    const char *paths[2] = {src_log, dst_log};
    for (int k = 0; k < 2; k++) {
        char *line = log_line(paths[k], "rid-log-1");
        assert_non_null(line);
        /* Every key, in the documented order, and nothing else. */
        const char *p = line;
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
            size_t kl = strlen(keys[i]);
            assert_memory_equal(p, keys[i], kl);
            assert_int_equal(p[kl], '=');
            assert_true(logfmt_get(line, keys[i], v, sizeof(v)));
            p = strchr(p + kl, ' ');
            if (i + 1 < sizeof(keys) / sizeof(keys[0])) {
                assert_non_null(p);
                p++;
            }
        }
        assert_null(p);
        assert_true(logfmt_get(line, "start_time", v, sizeof(v)));
        assert_int_equal(strlen(v), 24); /* 2026-11-26T04:05:26.123Z */
        assert_true(v[10] == 'T' && v[19] == '.' && v[23] == 'Z');
        assert_true(logfmt_get(line, "method", v, sizeof(v)));
        assert_string_equal(v, "GET");
        assert_true(logfmt_get(line, "authority", v, sizeof(v)));
        assert_string_equal(v, "details:9080");
        assert_true(logfmt_get(line, "protocol", v, sizeof(v)));
        assert_string_equal(v, "HTTP/1.1");
        assert_true(logfmt_get(line, "status", v, sizeof(v)));
        assert_string_equal(v, "200");
        assert_true(logfmt_get(line, "response_flags", v, sizeof(v)));
        assert_string_equal(v, "-");
        assert_true(logfmt_get(line, "bytes_in", v, sizeof(v)));
        assert_string_equal(v, "0");
        assert_true(logfmt_get(line, "bytes_out", v, sizeof(v)));
        assert_int_equal(strtoull(v, NULL, 10), app_bytes);
        assert_true(logfmt_get(line, "duration_ms", v, sizeof(v)));
        assert_true(strtod(v, NULL) > 0);
        assert_true(logfmt_get(line, "trace_id", v, sizeof(v)));
        assert_string_equal(v, "5bf92f3577b34da6a3ce929d0e0e4736");
        assert_true(logfmt_get(line, "downstream_address", v, sizeof(v)));
        assert_string_equal(v, "127.0.0.1");
        char want[128];
        if (k == 0) {
            assert_true(logfmt_get(line, "path", v, sizeof(v)));
            assert_string_equal(v, "http://details:9080/headers"); /* absolute-form */
            assert_true(logfmt_get(line, "upstream_host", v, sizeof(v)));
            snprintf(want, sizeof(want), "127.0.0.1:%d", dst.inbound);
            assert_string_equal(v, want);
            assert_true(logfmt_get(line, "upstream_cluster", v, sizeof(v)));
            assert_string_equal(v, "outbound|9080||details.default.svc.cluster.local");
            assert_true(logfmt_get(line, "reporter", v, sizeof(v)));
            assert_string_equal(v, "source");
        } else {
            assert_true(logfmt_get(line, "path", v, sizeof(v)));
            assert_string_equal(v, "/headers");
            assert_true(logfmt_get(line, "upstream_host", v, sizeof(v)));
            snprintf(want, sizeof(want), "127.0.0.1:%d", app.port);
            assert_string_equal(v, want);
            assert_true(logfmt_get(line, "upstream_cluster", v, sizeof(v)));
            snprintf(want, sizeof(want), "inbound|%d||", app.port);
            assert_string_equal(v, want);
            assert_true(logfmt_get(line, "reporter", v, sizeof(v)));
            assert_string_equal(v, "destination");
        }
        wf_free(line);
    }
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_w3c_two_hops),
        cmocka_unit_test(test_error_span),
        cmocka_unit_test(test_b3_in_b3_out),
        cmocka_unit_test(test_unsampled_and_new_traces),
        cmocka_unit_test(test_access_log),
        cmocka_unit_test(test_collector_down),
        cmocka_unit_test(test_collector_from_control),
        cmocka_unit_test(test_reset_mid_body_two_hops),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
