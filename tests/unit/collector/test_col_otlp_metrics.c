/*
 * test_col_otlp_metrics.c - the OTLP/HTTP metrics receiver (col_otlp_metrics.h) against a real
 * store in a temporary directory, with the write queue on a second thread: the requests the
 * OpenTelemetry JS SDK really sent (shared/ref/otel-captures/metrics-logs, JSON and protobuf),
 * and hand-built protobuf and JSON requests for every metric type, temporality, attribute
 * value type, resource mapping (job, instance, target_info), name and label sanitizing with
 * collisions, dropped points reported as partial success, and malformed input.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "col_otlp_metrics.h"
#include "col_writer.h"
#include "st_store.h"
#include "wf_alloc.h"
#include "wf_arena.h"
#include "wf_buf.h"
#include "wf_pb.h"
#include "wt_rw.h"
#include "wt_colfx.h"
#include "wt_util.h"

#define CAPTURE_MS 1795634371768LL /* time_unix_nano of the JSON capture's points, in ms */
#define T0 (CAPTURE_MS + 60000)    /* the store's fake "now" */
#define NS(ms) ((uint64_t)(ms) * (uint64_t)1000000)

typedef wt_colfx_t fx_t;

static int setup(void **state)
{
    *state = wt_colfx_open("col_otlp", T0, 0, 0);
    return 0;
}

static int teardown(void **state)
{
    wt_colfx_close(*state);
    return 0;
}

/* Run the receiver; returns the status, the response body in *out (when not NULL). */
static unsigned post(fx_t *f, const char *ctype, const void *body, size_t len, wf_buf_t *out)
{
    wf_arena_t arena;
    wf_arena_init(&arena, 4096, 0);
    uint8_t *copy = wf_malloc(len + 1);
    if (len > 0) {
        memcpy(copy, body, len);
    }
    copy[len] = 0;
    col_req_t req = {
        .method = "POST", .path = "/v1/metrics", .body = copy, .body_len = len, .arena = &arena};
    col_resp_t resp;
    memset(&resp, 0, sizeof(resp));
    resp.status = 200;
    col_otlp_metrics_serve(f->wr, ctype, &req, &resp);
    if (out != NULL) {
        wf_buf_append(out, resp.body.data, resp.body.len);
        wf_buf_cstr(out);
    }
    if (resp.status == 200 || resp.status == 400) {
        bool json = ctype != NULL && strstr(ctype, "json") != NULL;
        assert_string_equal(resp.content_type,
                            json ? "application/json" : "application/x-protobuf");
    }
    unsigned st = resp.status;
    wf_buf_free(&resp.body);
    wf_free(copy);
    wf_arena_free(&arena);
    return st;
}

#define PB "application/x-protobuf"
#define JSON "application/json"

/* The value of the one series matching name and the label pairs (NULL-terminated); asserts
 * exactly one series with one sample at ts. */
static double value_of(fx_t *f, int64_t ts, const char *name, ...)
{
    st_matcher_t *m[16];
    size_t n = 0;
    assert_int_equal(
        st_matcher_new(ST_MATCH_EQ, WF_STR_LIT("__name__"), wf_str(name), &m[n++], NULL, 0), 0);
    va_list ap;
    va_start(ap, name);
    const char *ln;
    while ((ln = va_arg(ap, const char *)) != NULL) {
        const char *lv = va_arg(ap, const char *);
        assert_int_equal(st_matcher_new(ST_MATCH_EQ, wf_str(ln), wf_str(lv), &m[n++], NULL, 0), 0);
    }
    va_end(ap);
    st_series_set_t *set = NULL;
    assert_int_equal(st_select(f->s, (const st_matcher_t *const *)m, n, 0, INT64_MAX, &set), 0);
    if (st_series_set_len(set) != 1) {
        fail_msg("%s: %zu series", name, st_series_set_len(set));
    }
    const int64_t *t;
    const double *v;
    size_t k;
    assert_int_equal(st_series_set_samples(set, 0, &t, &v, &k), 0);
    assert_int_equal(k, 1);
    assert_true(t[0] == ts);
    double r = v[0];
    st_series_set_free(set);
    for (size_t i = 0; i < n; i++) {
        st_matcher_free(m[i]);
    }
    return r;
}

/* The label set of the one series called name, as "a=b,c=d" (sorted). */
static void labels_of(fx_t *f, const char *name, char *out, size_t cap)
{
    st_matcher_t *m = NULL;
    assert_int_equal(st_matcher_new(ST_MATCH_EQ, WF_STR_LIT("__name__"), wf_str(name), &m, NULL, 0),
                     0);
    st_series_set_t *set = NULL;
    const st_matcher_t *ms[1] = {m};
    assert_int_equal(st_select(f->s, ms, 1, 0, INT64_MAX, &set), 0);
    assert_int_equal(st_series_set_len(set), 1);
    size_t nl, o = 0;
    const st_label_t *l = st_series_set_labels(set, 0, &nl);
    out[0] = '\0';
    for (size_t i = 0; i < nl && o < cap; i++) {
        o += (size_t)snprintf(out + o, cap - o, "%s%.*s=%.*s", i ? "," : "", (int)l[i].name.len,
                              l[i].name.p, (int)l[i].value.len, l[i].value.p);
    }
    st_series_set_free(set);
    st_matcher_free(m);
}

static size_t series_count(fx_t *f, const char *name)
{
    st_matcher_t *m = NULL;
    assert_int_equal(st_matcher_new(ST_MATCH_EQ, WF_STR_LIT("__name__"), wf_str(name), &m, NULL, 0),
                     0);
    st_series_set_t *set = NULL;
    const st_matcher_t *ms[1] = {m};
    assert_int_equal(st_select(f->s, ms, 1, 0, INT64_MAX, &set), 0);
    size_t n = st_series_set_len(set);
    st_series_set_free(set);
    st_matcher_free(m);
    return n;
}

/* ---- names ------------------------------------------------------------------------------- */

static void test_metric_names(void **state)
{
    (void)state;
    static const struct {
        const char *name, *unit;
        char kind;
        const char *want;
    } cases[] = {
        {"http.server.duration", "ms", 'h', "http_server_duration_milliseconds"},
        {"http.server.requests", "1", 'c', "http_server_requests_total"},
        {"queue.depth", "", 'g', "queue_depth"},
        {"system.memory.utilization", "1", 'g', "system_memory_utilization_ratio"},
        {"system.network.dropped", "{packets}", 'c', "system_network_dropped_total"},
        {"system.network.dropped", "packets", 'g', "system_network_dropped_packets"},
        {"system.filesystem.usage", "By", 'g', "system_filesystem_usage_bytes"},
        {"throughput", "By/s", 'g', "throughput_bytes_per_second"},
        {"events", "{event}/min", 'c', "events_per_minute_total"},
        {"(lambda).function.executions(#)", "", 'g', "lambda_function_executions"},
        {"request_duration_seconds", "s", 'h', "request_duration_seconds"},
        {"requests_total", "", 'c', "requests_total"},
        {"cpu.time", "s", 'c', "cpu_time_seconds_total"},
        {"2xx.count", "", 'g', "_2xx_count"},
        {"job:requests:rate5m", "", 'g', "job:requests:rate5m"},
        {"caf\xc3\xa9.temp", "Cel", 's', "caf_temp_celsius"},
        {"a__b..c", "", 'g', "a_b_c"},
    };
    char out[256];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = col_otlp_metric_name(wf_str(cases[i].name), wf_str(cases[i].unit), cases[i].kind,
                                        out, sizeof(out));
        if (n != strlen(cases[i].want) || strcmp(out, cases[i].want) != 0) {
            fail_msg("%s [%s] %c: got %s, want %s", cases[i].name, cases[i].unit, cases[i].kind,
                     out, cases[i].want);
        }
    }
    assert_int_equal(col_otlp_metric_name(WF_STR_LIT("..."), WF_STR_LIT("ms"), 'g', out, 64), 0);
    assert_int_equal(col_otlp_metric_name(WF_STR_LIT(""), WF_STR_LIT(""), 'c', out, 64), 0);
}

static void test_label_names(void **state)
{
    (void)state;
    static const struct {
        const char *key, *want;
    } cases[] = {
        {"http.route", "http_route"}, {"2xx", "key_2xx"},      {"_private", "key_private"},
        {"__reserved", "__reserved"}, {"caf\xc3\xa9", "caf_"}, {"a-b/c d", "a_b_c_d"},
        {"ok_name", "ok_name"},
    };
    char out[64];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        col_otlp_label_name(wf_str(cases[i].key), out, sizeof(out));
        if (strcmp(out, cases[i].want) != 0) {
            fail_msg("%s: got %s, want %s", cases[i].key, out, cases[i].want);
        }
    }
    assert_int_equal(col_otlp_label_name(WF_STR_LIT(""), out, sizeof(out)), 0);
}

/* ---- the SDK's own requests ----------------------------------------------------------------- */

/* What emit-metrics-logs.js sent: a counter, a gauge and a histogram of service capture-demo. */
static void check_capture(fx_t *f, int64_t ts)
{
    assert_true(value_of(f, ts, "http_server_requests_total", "job", "capture-demo", "http_route",
                         "/checkout", NULL) == 5);
    assert_true(value_of(f, ts, "queue_depth", "job", "capture-demo", "q", "main", NULL) == 7.5);
    static const struct {
        const char *le;
        double v;
    } buckets[] = {{"0", 0},    {"5", 0},    {"10", 0},    {"25", 1},  {"50", 1},   {"75", 1},
                   {"100", 1},  {"250", 1},  {"500", 1},   {"750", 1}, {"1000", 1}, {"2500", 1},
                   {"5000", 1}, {"7500", 1}, {"10000", 1}, {"+Inf", 1}};
    for (size_t i = 0; i < sizeof(buckets) / sizeof(buckets[0]); i++) {
        double v = value_of(f, ts, "http_server_duration_milliseconds_bucket", "le", buckets[i].le,
                            "http_route", "/checkout", NULL);
        if (v != buckets[i].v) {
            fail_msg("le=%s: %g", buckets[i].le, v);
        }
    }
    assert_int_equal(series_count(f, "http_server_duration_milliseconds_bucket"), 16);
    assert_true(value_of(f, ts, "http_server_duration_milliseconds_sum", NULL) == 12.3);
    assert_true(value_of(f, ts, "http_server_duration_milliseconds_count", NULL) == 1);
    char lbl[512];
    labels_of(f, "queue_depth", lbl, sizeof(lbl));
    assert_string_equal(lbl, "__name__=queue_depth,job=capture-demo,q=main");
    /* service.name is the only resource attribute: no target_info. */
    assert_int_equal(series_count(f, "target_info"), 0);

    st_metadata_t md;
    assert_int_equal(st_metadata_get(f->s, WF_STR_LIT("http_server_requests_total"), &md), 0);
    assert_int_equal(md.type, ST_METRIC_COUNTER);
    assert_string_equal(md.help, "reqs");
    wf_free(md.help);
    wf_free(md.unit);
    assert_int_equal(st_metadata_get(f->s, WF_STR_LIT("http_server_duration_milliseconds"), &md),
                     0);
    assert_int_equal(md.type, ST_METRIC_HISTOGRAM);
    assert_string_equal(md.unit, "milliseconds");
    wf_free(md.help);
    wf_free(md.unit);
    assert_int_equal(st_metadata_get(f->s, WF_STR_LIT("queue_depth"), &md), 0);
    assert_int_equal(md.type, ST_METRIC_GAUGE);
    wf_free(md.help);
    wf_free(md.unit);
}

static void test_capture_json(void **state)
{
    fx_t *f = *state;
    char *path = wt_ref_path("otel-captures/metrics-logs/01-otlp-json.body.json");
    if (path == NULL) {
        wt_skip();
    }
    size_t len;
    char *body = wt_read_file(path, &len);
    assert_non_null(body);
    wf_buf_t out = WF_BUF_INIT;
    assert_int_equal(post(f, JSON, body, len, &out), 200);
    assert_string_equal((const char *)out.data, "{}");
    check_capture(f, CAPTURE_MS);
    /* The SDK's retry of the same export is accepted again (identical samples). */
    wf_buf_reset(&out);
    assert_int_equal(post(f, JSON, body, len, &out), 200);
    assert_string_equal((const char *)out.data, "{}");
    wf_buf_free(&out);
    wf_free(body);
    wf_free(path);
}

static void test_capture_protobuf(void **state)
{
    fx_t *f = *state;
    char *path = wt_ref_path("otel-captures/metrics-logs/03-otlp-proto.body.bin");
    if (path == NULL) {
        wt_skip();
    }
    size_t len;
    char *body = wt_read_file(path, &len);
    assert_non_null(body);
    wf_buf_t out = WF_BUF_INIT;
    assert_int_equal(post(f, PB, body, len, &out), 200);
    assert_int_equal(out.len, 0); /* an empty ExportMetricsServiceResponse */
    /* 03's points were stamped 1795634372051 ms (see its decoded.txt): check_capture reads
     * whatever single sample each series holds at that time. */
    check_capture(f, 1795634372051LL);
    wf_buf_free(&out);
    wf_free(body);
    wf_free(path);
}

/* ---- hand-built protobuf requests ---------------------------------------------------------- */

/* KeyValue with a string value. */
static void kv_str(wf_buf_t *b, uint32_t field, const char *k, const char *v)
{
    wf_buf_t kv = WF_BUF_INIT, any = WF_BUF_INIT;
    wt_pb_str(&any, 1, v);
    wt_pb_str(&kv, 1, k);
    wt_pb_bytes(&kv, 2, any.data, any.len);
    wt_pb_bytes(b, field, kv.data, kv.len);
    wf_buf_free(&kv);
    wf_buf_free(&any);
}

/* KeyValue with an already encoded AnyValue. */
static void kv_any(wf_buf_t *b, uint32_t field, const char *k, const wf_buf_t *any)
{
    wf_buf_t kv = WF_BUF_INIT;
    wt_pb_str(&kv, 1, k);
    wt_pb_bytes(&kv, 2, any->data, any->len);
    wt_pb_bytes(b, field, kv.data, kv.len);
    wf_buf_free(&kv);
}

/* Wrap metrics (each an encoded Metric) into a request with the resource attributes given. */
static void request(wf_buf_t *out, const wf_buf_t *resource, const wf_buf_t *metrics, size_t n)
{
    wf_buf_t sm = WF_BUF_INIT, rm = WF_BUF_INIT, scope = WF_BUF_INIT;
    wt_pb_str(&scope, 1, "test-scope");
    wt_pb_str(&scope, 2, "1.0");
    wt_pb_bytes(&sm, 1, scope.data, scope.len);
    for (size_t i = 0; i < n; i++) {
        wt_pb_bytes(&sm, 2, metrics[i].data, metrics[i].len);
    }
    /* scope_metrics before the resource: the decoder must not depend on field order */
    wt_pb_bytes(&rm, 2, sm.data, sm.len);
    if (resource != NULL) {
        wt_pb_bytes(&rm, 1, resource->data, resource->len);
    }
    wt_pb_bytes(out, 1, rm.data, rm.len);
    wf_buf_free(&sm);
    wf_buf_free(&rm);
    wf_buf_free(&scope);
}

/* A Metric with one NumberDataPoint: data is 5 (gauge) or 7 (sum). */
static void number_metric(wf_buf_t *m, const char *name, const char *unit, uint32_t data,
                          int temporality, bool monotonic, const wf_buf_t *point)
{
    wf_buf_t d = WF_BUF_INIT;
    wt_pb_bytes(&d, 1, point->data, point->len);
    if (data == 7) {
        wt_pb_varint(&d, 2, (uint64_t)temporality);
        wt_pb_varint(&d, 3, monotonic);
    }
    wt_pb_str(m, 1, name);
    wt_pb_str(m, 3, unit);
    wt_pb_bytes(m, data, d.data, d.len);
    wf_buf_free(&d);
}

static void test_protobuf_types(void **state)
{
    fx_t *f = *state;
    const int64_t ts = T0 - 5000;
    wf_buf_t res = WF_BUF_INIT, metrics[8], any = WF_BUF_INIT, p = WF_BUF_INIT;
    for (int i = 0; i < 8; i++) {
        wf_buf_init(&metrics[i]);
    }
    kv_str(&res, 1, "service.name", "cart");
    kv_str(&res, 1, "service.namespace", "shop");
    kv_str(&res, 1, "service.instance.id", "i-1");
    kv_str(&res, 1, "host.name", "h1");

    /* 0: a monotonic cumulative sum with as_int, colliding and typed attributes */
    kv_str(&p, 7, "a.b", "1");
    kv_str(&p, 7, "a_b", "2");
    kv_str(&p, 7, "job", "overridden");
    wt_pb_varint(&any, 2, 1);
    kv_any(&p, 7, "flag", &any);
    wf_buf_reset(&any);
    wt_pb_varint(&any, 3, (uint64_t)-5);
    kv_any(&p, 7, "int", &any);
    wf_buf_reset(&any);
    wt_pb_double(&any, 4, 0.5);
    kv_any(&p, 7, "dbl", &any);
    wf_buf_reset(&any);
    {
        wf_buf_t arr = WF_BUF_INIT, e = WF_BUF_INIT;
        wt_pb_varint(&e, 3, 1);
        wt_pb_bytes(&arr, 1, e.data, e.len);
        wf_buf_reset(&e);
        wt_pb_str(&e, 1, "x\"y");
        wt_pb_bytes(&arr, 1, e.data, e.len);
        wt_pb_bytes(&any, 5, arr.data, arr.len);
        kv_any(&p, 7, "arr", &any);
        wf_buf_reset(&any);
        wf_buf_reset(&arr);
        wf_buf_reset(&e);
        wt_pb_varint(&e, 2, 1);
        kv_any(&arr, 1, "k", &e);
        wt_pb_bytes(&any, 6, arr.data, arr.len);
        kv_any(&p, 7, "map", &any);
        wf_buf_reset(&any);
        wt_pb_bytes(&any, 7, "\x01\x02", 2);
        kv_any(&p, 7, "raw", &any);
        wf_buf_reset(&any);
        wf_buf_free(&arr);
        wf_buf_free(&e);
    }
    wt_pb_fixed64(&p, 3, NS(ts));
    wt_pb_fixed64(&p, 6, (uint64_t)42);
    number_metric(&metrics[0], "orders.placed", "{order}", 7, 2, true, &p);

    /* 1: a non-monotonic cumulative sum -> gauge */
    wf_buf_reset(&p);
    wt_pb_fixed64(&p, 3, NS(ts));
    wt_pb_double(&p, 4, -3.5);
    number_metric(&metrics[1], "queue.size", "", 7, 2, false, &p);

    /* 2: a delta sum -> dropped */
    number_metric(&metrics[2], "delta.sum", "", 7, 1, true, &p);

    /* 3: a gauge flagged "no recorded value" -> staleness marker */
    wf_buf_reset(&p);
    wt_pb_fixed64(&p, 3, NS(ts));
    wt_pb_varint(&p, 8, 1);
    number_metric(&metrics[3], "gone.gauge", "", 5, 0, false, &p);

    /* 4: a summary */
    {
        wf_buf_t sp = WF_BUF_INIT, q = WF_BUF_INIT, d = WF_BUF_INIT;
        kv_str(&sp, 7, "route", "/r");
        wt_pb_fixed64(&sp, 3, NS(ts));
        wt_pb_fixed64(&sp, 4, 10);
        wt_pb_double(&sp, 5, 99.5);
        wt_pb_double(&q, 1, 0.5);
        wt_pb_double(&q, 2, 7);
        wt_pb_bytes(&sp, 6, q.data, q.len);
        wf_buf_reset(&q);
        wt_pb_double(&q, 1, 0.99);
        wt_pb_double(&q, 2, 20);
        wt_pb_bytes(&sp, 6, q.data, q.len);
        wt_pb_bytes(&d, 1, sp.data, sp.len);
        wt_pb_str(&metrics[4], 1, "rpc.latency");
        wt_pb_str(&metrics[4], 3, "s");
        wt_pb_bytes(&metrics[4], 11, d.data, d.len);
        wf_buf_free(&sp);
        wf_buf_free(&q);
        wf_buf_free(&d);
    }

    /* 5: an exponential histogram with two points -> dropped */
    {
        wf_buf_t ep = WF_BUF_INIT, d = WF_BUF_INIT;
        wt_pb_fixed64(&ep, 3, NS(ts));
        wt_pb_fixed64(&ep, 4, 3);
        wt_pb_bytes(&d, 1, ep.data, ep.len);
        wt_pb_bytes(&d, 1, ep.data, ep.len);
        wt_pb_varint(&d, 2, 2);
        wt_pb_str(&metrics[5], 1, "exp.hist");
        wt_pb_bytes(&metrics[5], 10, d.data, d.len);
        wf_buf_free(&ep);
        wf_buf_free(&d);
    }

    /* 6: a histogram with unpacked bucket counts and bounds, and no sum; and one point whose
     * bucket count does not match its bounds (dropped) */
    {
        wf_buf_t hp = WF_BUF_INIT, d = WF_BUF_INIT;
        wt_pb_fixed64(&hp, 3, NS(ts));
        wt_pb_fixed64(&hp, 4, 6);
        wt_pb_fixed64(&hp, 6, 1);
        wt_pb_fixed64(&hp, 6, 2);
        wt_pb_fixed64(&hp, 6, 3);
        wt_pb_double(&hp, 7, 0.1);
        wt_pb_double(&hp, 7, 1e3);
        wt_pb_bytes(&d, 1, hp.data, hp.len);
        wt_pb_double(&hp, 7, 2e3); /* now 3 bounds for 3 counts */
        wt_pb_bytes(&d, 1, hp.data, hp.len);
        wt_pb_varint(&d, 2, 2);
        wt_pb_str(&metrics[6], 1, "payload.size");
        wt_pb_str(&metrics[6], 3, "By");
        wt_pb_bytes(&metrics[6], 9, d.data, d.len);
        wf_buf_free(&hp);
        wf_buf_free(&d);
    }

    wf_buf_t req = WF_BUF_INIT, out = WF_BUF_INIT;
    request(&req, &res, metrics, 7);
    assert_int_equal(post(f, PB, req.data, req.len, &out), 200);

    /* partial_success: 1 delta + 2 exponential + 1 malformed histogram point */
    wf_pb_rd_t r, ps;
    wf_pb_field_t fl;
    wf_pb_init(&r, out.data, out.len);
    assert_int_equal(wf_pb_next(&r, &fl), 1);
    assert_int_equal(fl.num, 1);
    assert_int_equal(wf_pb_sub(&r, &fl, &ps), 0);
    int64_t rejected = -1;
    wf_str_t msg = {NULL, 0};
    while (wf_pb_next(&ps, &fl) > 0) {
        if (fl.num == 1) {
            assert_int_equal(wf_pb_int64(&ps, &fl, &rejected), 0);
        } else if (fl.num == 2) {
            assert_int_equal(wf_pb_bytes(&ps, &fl, &msg), 0);
        }
    }
    assert_int_equal(rejected, 4);
    assert_non_null(msg.p);
    assert_non_null(strstr(msg.p, "4 data points dropped: sum with delta"));

    char lbl[1024];
    labels_of(f, "orders_placed_total", lbl, sizeof(lbl));
    assert_string_equal(lbl, "__name__=orders_placed_total,a_b=1;2,arr=[1,\"x\\\"y\"],dbl=0.5,"
                             "flag=true,instance=i-1,int=-5,job=shop/cart,map={\"k\":true},"
                             "raw=AQI=");
    assert_true(value_of(f, ts, "orders_placed_total", NULL) == 42);
    assert_true(value_of(f, ts, "queue_size", "job", "shop/cart", NULL) == -3.5);
    assert_int_equal(series_count(f, "delta_sum_total"), 0);
    assert_int_equal(series_count(f, "delta_sum"), 0);
    double stale = value_of(f, ts, "gone_gauge", NULL);
    uint64_t bits;
    memcpy(&bits, &stale, 8);
    assert_true(bits == 0x7ff0000000000002ULL);
    assert_true(value_of(f, ts, "rpc_latency_seconds", "quantile", "0.5", "route", "/r", NULL) ==
                7);
    assert_true(value_of(f, ts, "rpc_latency_seconds", "quantile", "0.99", NULL) == 20);
    assert_true(value_of(f, ts, "rpc_latency_seconds_sum", NULL) == 99.5);
    assert_true(value_of(f, ts, "rpc_latency_seconds_count", NULL) == 10);
    assert_int_equal(series_count(f, "exp_hist"), 0);
    assert_true(value_of(f, ts, "payload_size_bytes_bucket", "le", "0.1", NULL) == 1);
    assert_true(value_of(f, ts, "payload_size_bytes_bucket", "le", "1000", NULL) == 3);
    assert_true(value_of(f, ts, "payload_size_bytes_bucket", "le", "+Inf", NULL) == 6);
    assert_int_equal(series_count(f, "payload_size_bytes_bucket"), 3);
    assert_int_equal(series_count(f, "payload_size_bytes_sum"), 0); /* no sum was sent */
    assert_true(value_of(f, ts, "payload_size_bytes_count", NULL) == 6);
    /* target_info holds the resource attributes that are not job / instance */
    labels_of(f, "target_info", lbl, sizeof(lbl));
    assert_string_equal(lbl, "__name__=target_info,host_name=h1,instance=i-1,job=shop/cart");
    assert_true(value_of(f, ts, "target_info", NULL) == 1);

    st_metadata_t md;
    assert_int_equal(st_metadata_get(f->s, WF_STR_LIT("rpc_latency_seconds"), &md), 0);
    assert_int_equal(md.type, ST_METRIC_SUMMARY);
    assert_string_equal(md.unit, "seconds");
    wf_free(md.help);
    wf_free(md.unit);
    assert_int_equal(st_metadata_get(f->s, WF_STR_LIT("queue_size"), &md), 0);
    assert_int_equal(md.type, ST_METRIC_GAUGE);
    wf_free(md.help);
    wf_free(md.unit);

    for (int i = 0; i < 8; i++) {
        wf_buf_free(&metrics[i]);
    }
    wf_buf_free(&res);
    wf_buf_free(&any);
    wf_buf_free(&p);
    wf_buf_free(&req);
    wf_buf_free(&out);
}

/* A request refused sample by sample still answers 200 with partial success. */
static void test_store_refusal_is_partial_success(void **state)
{
    fx_t *f = *state;
    wf_buf_t p = WF_BUF_INIT, m = WF_BUF_INIT, req = WF_BUF_INIT, out = WF_BUF_INIT;
    wt_pb_fixed64(&p, 3, NS(T0 - 1000));
    wt_pb_double(&p, 4, 1);
    number_metric(&m, "temp", "", 5, 0, false, &p);
    request(&req, NULL, &m, 1);
    assert_int_equal(post(f, PB, req.data, req.len, &out), 200);
    assert_int_equal(out.len, 0);
    /* Same timestamp, another value: a duplicate. */
    wf_buf_reset(&p);
    wf_buf_reset(&m);
    wf_buf_reset(&req);
    wt_pb_fixed64(&p, 3, NS(T0 - 1000));
    wt_pb_double(&p, 4, 2);
    number_metric(&m, "temp", "", 5, 0, false, &p);
    request(&req, NULL, &m, 1);
    assert_int_equal(post(f, JSON, "{}", 2, &out), 200); /* (an empty JSON request is fine) */
    wf_buf_reset(&out);
    assert_int_equal(post(f, PB, req.data, req.len, &out), 200);
    assert_true(out.len > 0);
    assert_non_null(memmem(out.data, out.len, "samples refused", 15));
    /* Without a resource there is no job label. */
    char lbl[128];
    labels_of(f, "temp", lbl, sizeof(lbl));
    assert_string_equal(lbl, "__name__=temp");
    wf_buf_free(&p);
    wf_buf_free(&m);
    wf_buf_free(&req);
    wf_buf_free(&out);
}

/* ---- JSON variants -------------------------------------------------------------------------- */

static void test_json_variants(void **state)
{
    fx_t *f = *state;
    char body[4096];
    int64_t ts = T0 - 2000;
    /* int64 as strings and numbers, enums by name, snake_case keys, NaN as a string, a
     * service.namespace, and an attribute whose value is missing. */
    snprintf(body, sizeof(body),
             "{\"resource_metrics\":[{\"resource\":{\"attributes\":["
             "{\"key\":\"service.name\",\"value\":{\"stringValue\":\"svc\"}},"
             "{\"key\":\"service.namespace\",\"value\":{\"stringValue\":\"ns\"}},"
             "{\"key\":\"region\",\"value\":{\"stringValue\":\"eu\"}}]},"
             "\"scopeMetrics\":[{\"metrics\":["
             "{\"name\":\"c1\",\"sum\":{\"aggregationTemporality\":"
             "\"AGGREGATION_TEMPORALITY_CUMULATIVE\",\"isMonotonic\":true,\"dataPoints\":[{"
             "\"attributes\":[{\"key\":\"n\",\"value\":{\"intValue\":\"-7\"}},"
             "{\"key\":\"none\"}],"
             "\"timeUnixNano\":\"%" PRIu64 "\",\"asInt\":\"9007199254740993\"}]}},"
             "{\"name\":\"g1\",\"gauge\":{\"data_points\":[{\"time_unix_nano\":%" PRIu64
             ",\"as_double\":\"NaN\"}]}},"
             "{\"name\":\"h1\",\"unit\":\"ms\",\"histogram\":{\"aggregationTemporality\":2,"
             "\"dataPoints\":[{\"timeUnixNano\":\"%" PRIu64 "\",\"count\":3,\"sum\":4.5,"
             "\"bucketCounts\":[\"1\",2],\"explicitBounds\":[2.5]}]}},"
             "{\"name\":\"s1\",\"summary\":{\"dataPoints\":[{\"timeUnixNano\":\"%" PRIu64 "\","
             "\"count\":\"2\",\"sum\":3,\"quantileValues\":[{\"quantile\":0.9,\"value\":1.5}]}]}},"
             "{\"name\":\"nodata\"}"
             "]}]}]}",
             NS(ts), NS(ts), NS(ts), NS(ts));
    wf_buf_t out = WF_BUF_INIT;
    unsigned st = post(f, JSON, body, strlen(body), &out);
    if (st != 200) {
        fail_msg("status %u: %s", st, out.data);
    }
    assert_string_equal((const char *)out.data, "{}");
    char lbl[256];
    labels_of(f, "c1_total", lbl, sizeof(lbl));
    assert_string_equal(lbl, "__name__=c1_total,job=ns/svc,n=-7");
    assert_true(value_of(f, ts, "c1_total", NULL) == 9007199254740992.0);
    assert_true(isnan(value_of(f, ts, "g1", NULL)));
    assert_true(value_of(f, ts, "h1_milliseconds_bucket", "le", "2.5", NULL) == 1);
    assert_true(value_of(f, ts, "h1_milliseconds_bucket", "le", "+Inf", NULL) == 3);
    assert_true(value_of(f, ts, "h1_milliseconds_sum", NULL) == 4.5);
    assert_true(value_of(f, ts, "s1", "quantile", "0.9", NULL) == 1.5);
    assert_true(value_of(f, ts, "s1_count", NULL) == 2);
    labels_of(f, "target_info", lbl, sizeof(lbl));
    assert_string_equal(lbl, "__name__=target_info,job=ns/svc,region=eu");

    /* A delta histogram in JSON is reported as partial success with a string count. */
    snprintf(body, sizeof(body),
             "{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":[{\"name\":\"d\","
             "\"histogram\":{\"aggregationTemporality\":1,\"dataPoints\":[{},{}]}}]}]}]}");
    wf_buf_reset(&out);
    assert_int_equal(post(f, JSON, body, strlen(body), &out), 200);
    assert_non_null(strstr((const char *)out.data, "\"rejectedDataPoints\":\"2\""));
    assert_non_null(strstr((const char *)out.data, "histogram with delta"));
    wf_buf_free(&out);
}

/* ---- malformed input ------------------------------------------------------------------------ */

static void test_malformed(void **state)
{
    fx_t *f = *state;
    static const struct {
        const char *body, *needle;
    } bad_json[] = {
        {"{not json", "json: "},
        {"[]", "not an object"},
        {"{\"resourceMetrics\":5}", "resourceMetrics is not an array"},
        {"{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":[{\"name\":\"x\",\"gauge\":{"
         "\"dataPoints\":5}}]}]}]}",
         "dataPoints is not an array"},
        {"{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":[{\"name\":\"x\",\"gauge\":{"
         "\"dataPoints\":[{\"timeUnixNano\":\"12x\"}]}}]}]}]}",
         "timeUnixNano is not an integer"},
        {"{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":[{\"name\":\"x\",\"gauge\":{"
         "\"dataPoints\":[{\"asDouble\":\"lots\"}]}}]}]}]}",
         "asDouble is not a number"},
        {"{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":[{\"name\":7}]}]}]}",
         "name is not a string"},

    };
    for (size_t i = 0; i < sizeof(bad_json) / sizeof(bad_json[0]) + 1; i++) {
        wf_buf_t out = WF_BUF_INIT, deep = WF_BUF_INIT;
        const char *body = i < sizeof(bad_json) / sizeof(bad_json[0]) ? bad_json[i].body : NULL;
        const char *needle = body ? bad_json[i].needle : "nested deeper";
        if (body == NULL) {
            /* an attribute value of arrays nested 20 deep */
            wf_buf_puts(&deep, "{\"resourceMetrics\":[{\"resource\":{\"attributes\":[{\"key\":"
                               "\"k\",\"value\":");
            for (int d = 0; d < 20; d++) {
                wf_buf_puts(&deep, "{\"arrayValue\":{\"values\":[");
            }
            for (int d = 0; d < 20; d++) {
                wf_buf_puts(&deep, "]}}");
            }
            wf_buf_puts(&deep, "}]}}]}");
            body = wf_buf_cstr(&deep);
        }
        unsigned st = post(f, JSON, body, strlen(body), &out);
        if (st != 400 || strstr((const char *)out.data, needle) == NULL ||
            strstr((const char *)out.data, "\"code\":3") == NULL) {
            fail_msg("json case %zu: %u %s", i, st, out.data ? (const char *)out.data : "");
        }
        wf_buf_free(&out);
        wf_buf_free(&deep);
    }

    /* protobuf: a truncated body, a wrong wire type, invalid UTF-8 in an attribute */
    wf_buf_t p = WF_BUF_INIT, m = WF_BUF_INIT, req = WF_BUF_INIT;
    kv_str(&p, 7, "k", "bad \xff");
    wt_pb_fixed64(&p, 3, NS(T0));
    number_metric(&m, "utf", "", 5, 0, false, &p);
    request(&req, NULL, &m, 1);
    static const char *const needles[] = {"protobuf: ", "wrong wire type", "not valid UTF-8"};
    wf_buf_t bodies[3];
    for (int i = 0; i < 3; i++) {
        wf_buf_init(&bodies[i]);
    }
    wf_buf_append(&bodies[0], req.data, req.len - 3);
    wt_pb_fixed32(&bodies[1], 1, 5);
    wf_buf_append(&bodies[2], req.data, req.len);
    for (int i = 0; i < 3; i++) {
        wf_buf_t out = WF_BUF_INIT;
        assert_int_equal(post(f, PB, bodies[i].data, bodies[i].len, &out), 400);
        /* google.rpc.Status{code: 3, message} */
        wf_pb_rd_t r;
        wf_pb_field_t fl;
        wf_pb_init(&r, out.data, out.len);
        uint32_t code = 0;
        wf_str_t msg = {"", 0};
        while (wf_pb_next(&r, &fl) > 0) {
            if (fl.num == 1) {
                assert_int_equal(wf_pb_uint32(&r, &fl, &code), 0);
            } else if (fl.num == 2) {
                assert_int_equal(wf_pb_bytes(&r, &fl, &msg), 0);
            }
        }
        assert_int_equal(code, 3);
        char text[512];
        snprintf(text, sizeof(text), "%.*s", (int)msg.len, msg.p);
        if (strstr(text, needles[i]) == NULL) {
            fail_msg("protobuf case %d: %s", i, text);
        }
        wf_buf_free(&out);
        wf_buf_free(&bodies[i]);
    }
    assert_int_equal(series_count(f, "utf"), 0);

    /* other content types */
    wf_buf_t out = WF_BUF_INIT;
    assert_int_equal(post(f, "text/plain", "x", 1, &out), 415);
    wf_buf_free(&out);
    wf_buf_free(&p);
    wf_buf_free(&m);
    wf_buf_free(&req);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metric_names),
        cmocka_unit_test(test_label_names),
        cmocka_unit_test_setup_teardown(test_capture_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capture_protobuf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_protobuf_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_refusal_is_partial_success, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_variants, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
    };
    return wt_exit_code(cmocka_run_group_tests(tests, NULL, NULL));
}
