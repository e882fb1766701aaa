/*
 * test_col_otlp_traces.c - the OTLP/HTTP trace receiver (col_otlp_traces.h) against a real
 * store in a temporary directory, with the write queue on a second thread: the requests the
 * OpenTelemetry JS SDK really sent (shared/ref/otel-captures: JSON, protobuf, the gzip ones
 * already decompressed, one-request batches) read back with st_trace_get and compared field by
 * field with the capture; hand-built requests for links, every value type and kvlists; every
 * malformed shape (truncation, wrong wire types, bad ids, invalid UTF-8) and the span limits.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "col_otlp_traces.h"
#include "col_writer.h"
#include "st_internal.h"
#include "st_span.h"
#include "st_store.h"
#include "wf_alloc.h"
#include "wf_arena.h"
#include "wf_buf.h"
#include "wf_err.h"
#include "wt_colfx.h"
#include "wt_util.h"

#define T0 (1795634004000LL + 60000) /* the store's fake "now", a minute after the captures */

typedef wt_colfx_t fx_t;

static fx_t *fx_open(size_t max_batch_spans)
{
    return wt_colfx_open("col_otlptr", T0, 0, max_batch_spans);
}

static void fx_close(fx_t *f)
{
    wt_colfx_close(f);
}

static int setup(void **state)
{
    *state = fx_open(0);
    return 0;
}

static int teardown(void **state)
{
    fx_close(*state);
    return 0;
}

#define PB "application/x-protobuf"
#define JSON "application/json"

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
        .method = "POST", .path = "/v1/traces", .body = copy, .body_len = len, .arena = &arena};
    col_resp_t resp;
    memset(&resp, 0, sizeof(resp));
    resp.status = 200;
    col_otlp_traces_serve(f->wr, ctype, &req, &resp);
    if (out != NULL) {
        wf_buf_append(out, resp.body.data, resp.body.len);
        wf_buf_cstr(out);
    }
    if (resp.status == 200) {
        bool json = ctype != NULL && strstr(ctype, "json") != NULL;
        assert_string_equal(resp.content_type,
                            json ? "application/json" : "application/x-protobuf");
        if (json) {
            assert_int_equal(resp.body.len, 2);
            assert_memory_equal(resp.body.data, "{}", 2);
        } else {
            assert_int_equal(resp.body.len, 0);
        }
    }
    if (resp.status == 503) {
        assert_int_equal(resp.nheaders, 1);
        assert_string_equal(resp.headers[0][0], "Retry-After");
        assert_string_equal(resp.headers[0][1], "1");
    }
    unsigned st = resp.status;
    for (size_t i = 0; i < resp.nheaders; i++) {
        wf_free(resp.headers[i][0]);
        wf_free(resp.headers[i][1]);
    }
    wf_buf_free(&resp.body);
    wf_free(copy);
    wf_arena_free(&arena);
    return st;
}

/* Post a reference capture; false (test skipped) when the reference data is absent. */
static bool post_ref(fx_t *f, const char *rel, const char *ctype)
{
    char *path = wt_ref_path(rel);
    if (path == NULL) {
        return false;
    }
    size_t len = 0;
    char *body = wt_read_file(path, &len);
    assert_non_null(body);
    assert_int_equal(post(f, ctype, body, len, NULL), 200);
    wf_free(body);
    wf_free(path);
    return true;
}

static void unhex(const char *hex, uint8_t *out, size_t n)
{
    assert_int_equal(strlen(hex), 2 * n);
    for (size_t i = 0; i < n; i++) {
        unsigned x;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &x), 1);
        out[i] = (uint8_t)x;
    }
}

static st_span_list_t *trace(fx_t *f, const char *trace_hex)
{
    uint8_t id[16];
    unhex(trace_hex, id, 16);
    st_span_list_t *l = NULL;
    assert_int_equal(st_trace_get(f->s, id, &l), 0);
    return l;
}

static bool trace_absent(fx_t *f, const char *trace_hex)
{
    uint8_t id[16];
    unhex(trace_hex, id, 16);
    st_span_list_t *l = NULL;
    int rc = st_trace_get(f->s, id, &l);
    st_span_list_free(l);
    return rc == WF_E_NOTFOUND;
}

static const st_span_t *span_of(const st_span_list_t *l, const char *span_hex)
{
    uint8_t id[8];
    unhex(span_hex, id, 8);
    for (size_t i = 0; i < l->n; i++) {
        if (memcmp(l->spans[i].span_id, id, 8) == 0) {
            return &l->spans[i];
        }
    }
    fail_msg("span %s not in trace", span_hex);
    return NULL;
}

static void assert_str(wf_str_t s, const char *want)
{
    if (s.len != strlen(want) || memcmp(s.p, want, s.len) != 0) {
        fail_msg("got \"%.*s\", want \"%s\"", (int)s.len, s.p, want);
    }
}

static void assert_parent(const st_span_t *s, const char *hex)
{
    uint8_t id[8] = {0};
    if (hex != NULL && hex[0] != '\0') {
        unhex(hex, id, 8);
    }
    assert_memory_equal(s->parent_span_id, id, 8);
}

static const st_value_t *attr(const st_attr_t *a, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++) {
        if (wf_str_eq_c(a[i].key, key)) {
            return &a[i].value;
        }
    }
    fail_msg("attribute %s missing", key);
    return NULL;
}

/* Compare one JSON AnyValue of the capture with what the store returned. */
static void assert_value_json(const st_value_t *v, json_t *any)
{
    json_t *x;
    if ((x = json_object_get(any, "stringValue")) != NULL) {
        assert_int_equal(v->type, ST_VAL_STRING);
        assert_str(v->u.s, json_string_value(x));
    } else if ((x = json_object_get(any, "intValue")) != NULL) {
        assert_int_equal(v->type, ST_VAL_INT);
        int64_t want = json_is_string(x) ? strtoll(json_string_value(x), NULL, 10)
                                         : (int64_t)json_integer_value(x);
        assert_true(v->u.i == want);
    } else if ((x = json_object_get(any, "boolValue")) != NULL) {
        assert_int_equal(v->type, ST_VAL_BOOL);
        assert_int_equal(v->u.b, json_is_true(x));
    } else if ((x = json_object_get(any, "doubleValue")) != NULL) {
        assert_int_equal(v->type, ST_VAL_DOUBLE);
        assert_true(v->u.d == json_number_value(x));
    } else if ((x = json_object_get(any, "arrayValue")) != NULL) {
        json_t *vals = json_object_get(x, "values");
        assert_int_equal(v->type, ST_VAL_ARRAY);
        assert_int_equal(v->u.arr.n, json_array_size(vals));
        for (size_t i = 0; i < v->u.arr.n; i++) {
            assert_value_json(&v->u.arr.items[i], json_array_get(vals, i));
        }
    } else {
        fail_msg("capture holds a value type this test does not know");
    }
}

static void assert_attrs_json(const st_attr_t *a, size_t n, json_t *list)
{
    assert_int_equal(n, json_array_size(list));
    size_t i;
    json_t *kv;
    json_array_foreach(list, i, kv)
    {
        assert_value_json(attr(a, n, json_string_value(json_object_get(kv, "key"))),
                          json_object_get(kv, "value"));
    }
}

static int64_t jtime(json_t *o, const char *k)
{
    return strtoll(json_string_value(json_object_get(o, k)), NULL, 10);
}

/* Every span of a JSON capture, read back from the store, field by field. Returns the count. */
static size_t check_json_capture(fx_t *f, const char *rel)
{
    char *path = wt_ref_path(rel);
    assert_non_null(path);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    assert_non_null(root);
    size_t count = 0, i, k, m, e;
    json_t *rs, *ss, *js, *ev;
    json_array_foreach(json_object_get(root, "resourceSpans"), i, rs)
    {
        json_t *rattrs = json_object_get(json_object_get(rs, "resource"), "attributes");
        json_array_foreach(json_object_get(rs, "scopeSpans"), k, ss)
        {
            json_t *scope = json_object_get(ss, "scope");
            json_array_foreach(json_object_get(ss, "spans"), m, js)
            {
                st_span_list_t *l = trace(f, json_string_value(json_object_get(js, "traceId")));
                const st_span_t *s = span_of(l, json_string_value(json_object_get(js, "spanId")));
                json_t *parent = json_object_get(js, "parentSpanId");
                assert_parent(s, parent ? json_string_value(parent) : NULL);
                assert_str(s->name, json_string_value(json_object_get(js, "name")));
                assert_int_equal(s->kind, json_integer_value(json_object_get(js, "kind")));
                assert_true(s->start_ns == jtime(js, "startTimeUnixNano"));
                assert_true(s->end_ns == jtime(js, "endTimeUnixNano"));
                assert_int_equal(s->flags, json_integer_value(json_object_get(js, "flags")));
                assert_str(s->service, "capture-demo");
                assert_str(s->scope_name, json_string_value(json_object_get(scope, "name")));
                assert_str(s->scope_version, json_string_value(json_object_get(scope, "version")));
                assert_attrs_json(s->resource_attrs, s->n_resource_attrs, rattrs);
                assert_attrs_json(s->attrs, s->n_attrs, json_object_get(js, "attributes"));
                json_t *st = json_object_get(js, "status");
                assert_int_equal(s->status_code, json_integer_value(json_object_get(st, "code")));
                json_t *msg = json_object_get(st, "message");
                assert_str(s->status_message, msg ? json_string_value(msg) : "");
                json_t *events = json_object_get(js, "events");
                assert_int_equal(s->n_events, json_array_size(events));
                json_array_foreach(events, e, ev)
                {
                    assert_str(s->events[e].name, json_string_value(json_object_get(ev, "name")));
                    assert_true(s->events[e].time_ns == jtime(ev, "timeUnixNano"));
                    assert_attrs_json(s->events[e].attrs, s->events[e].n_attrs,
                                      json_object_get(ev, "attributes"));
                }
                assert_int_equal(s->n_links, 0);
                st_span_list_free(l);
                count++;
            }
        }
    }
    json_decref(root);
    wf_free(path);
    return count;
}

static void test_json_captures(void **state)
{
    fx_t *f = *state;
    static const char *const files[] = {
        "otel-captures/01-otlp-json.body.json",       "otel-captures/02-otlp-json.body.json",
        "otel-captures/03-otlp-json.body.json",       "otel-captures/10-otlp-json.gunzipped",
        "otel-captures/11-otlp-json.gunzipped",       "otel-captures/12-otlp-json.gunzipped",
        "otel-captures/batch/01-otlp-json.body.json", "otel-captures/batch/04-otlp-json.gunzipped",
    };
    size_t spans = 0;
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        if (!post_ref(f, files[i], JSON)) {
            wt_skip();
        }
    }
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        spans += check_json_capture(f, files[i]);
    }
    assert_int_equal(spans, 12);
    /* The same facts written out by hand, so the test does not only mirror its own reading of
     * the capture: the three requests 01-03 make one trace of three nested spans. */
    st_span_list_t *l = trace(f, "b07b499ef7e0cac51a1d42bb07bcbfd4");
    assert_int_equal(l->n, 3);
    assert_str(l->spans[0].name, "GET /checkout"); /* ordered by start time */
    const st_span_t *s = span_of(l, "4daca8a02cade6cd");
    assert_str(s->name, "compute-total");
    assert_int_equal(s->kind, ST_SPAN_KIND_INTERNAL);
    assert_parent(s, "5a00ee6f252da34f");
    assert_true(s->start_ns == 1795634004008000000LL);
    assert_true(s->end_ns == 1795634004011553506LL);
    assert_true(attr(s->attrs, s->n_attrs, "big.int")->u.i == 9007199254740992LL);
    assert_true(attr(s->attrs, s->n_attrs, "ratio")->u.d == 0.25);
    assert_int_equal(s->n_events, 1);
    assert_str(s->events[0].name, "cache-miss");
    assert_true(s->events[0].time_ns == 1795634004008147128LL);
    assert_str(attr(s->events[0].attrs, s->events[0].n_attrs, "cache.key")->u.s, "cart:42");
    s = span_of(l, "7e07b43ec9dabd36");
    assert_int_equal(s->status_code, ST_STATUS_ERROR);
    assert_str(s->status_message, "timeout");
    const st_value_t *tags = attr(s->attrs, s->n_attrs, "tags.list");
    assert_int_equal(tags->type, ST_VAL_ARRAY);
    assert_int_equal(tags->u.arr.n, 2);
    assert_str(tags->u.arr.items[1].u.s, "b");
    st_span_list_free(l);
}

/* The emit.js trace (SERVER -> INTERNAL -> CLIENT) as the protobuf captures carry it. */
typedef struct {
    const char *trace, *server, *internal, *client;
    int64_t times[6]; /* start/end of server, internal, client; 0 = not checked */
    int64_t event_ns;
} demo_t;

static void check_demo(fx_t *f, const demo_t *d)
{
    st_span_list_t *l = trace(f, d->trace);
    assert_int_equal(l->n, 3);
    const st_span_t *sv = span_of(l, d->server), *in = span_of(l, d->internal),
                    *cl = span_of(l, d->client);
    assert_parent(sv, NULL);
    assert_parent(in, d->server);
    assert_parent(cl, d->internal);
    assert_str(sv->name, "GET /checkout");
    assert_str(in->name, "compute-total");
    assert_str(cl->name, "SELECT orders");
    assert_int_equal(sv->kind, ST_SPAN_KIND_SERVER);
    assert_int_equal(in->kind, ST_SPAN_KIND_INTERNAL);
    assert_int_equal(cl->kind, ST_SPAN_KIND_CLIENT);
    const st_span_t *all[3] = {sv, in, cl};
    for (int i = 0; i < 3; i++) {
        assert_str(all[i]->service, "capture-demo");
        assert_str(all[i]->scope_name, "capture-lib");
        assert_str(all[i]->scope_version, "0.1.0");
        assert_int_equal(all[i]->n_resource_attrs, 3);
        assert_str(attr(all[i]->resource_attrs, 3, "host.name")->u.s, "testhost");
        assert_str(attr(all[i]->resource_attrs, 3, "service.version")->u.s, "1.2.3");
        assert_int_equal(all[i]->flags, 257);
        if (d->times[2 * i] != 0) {
            assert_true(all[i]->start_ns == d->times[2 * i]);
            assert_true(all[i]->end_ns == d->times[2 * i + 1]);
        }
    }
    assert_int_equal(sv->n_attrs, 3);
    assert_str(attr(sv->attrs, 3, "http.request.method")->u.s, "GET");
    assert_true(attr(sv->attrs, 3, "http.response.status_code")->u.i == 200);
    assert_str(attr(sv->attrs, 3, "url.path")->u.s, "/checkout");
    assert_int_equal(sv->status_code, ST_STATUS_UNSET);
    assert_int_equal(in->n_attrs, 4);
    assert_true(attr(in->attrs, 4, "items.count")->u.i == 3);
    assert_true(attr(in->attrs, 4, "discount.applied")->u.b);
    assert_true(attr(in->attrs, 4, "ratio")->u.d == 0.25);
    assert_true(attr(in->attrs, 4, "big.int")->u.i == 9007199254740992LL);
    assert_int_equal(in->n_events, 1);
    assert_str(in->events[0].name, "cache-miss");
    if (d->event_ns != 0) {
        assert_true(in->events[0].time_ns == d->event_ns);
    }
    assert_str(attr(in->events[0].attrs, in->events[0].n_attrs, "cache.key")->u.s, "cart:42");
    assert_int_equal(cl->n_attrs, 4);
    assert_str(attr(cl->attrs, 4, "db.system")->u.s, "sqlite");
    assert_str(attr(cl->attrs, 4, "server.address")->u.s, "db.local");
    assert_true(attr(cl->attrs, 4, "server.port")->u.i == 5432);
    const st_value_t *tags = attr(cl->attrs, 4, "tags.list");
    assert_int_equal(tags->type, ST_VAL_ARRAY);
    assert_int_equal(tags->u.arr.n, 2);
    assert_str(tags->u.arr.items[0].u.s, "a");
    assert_str(tags->u.arr.items[1].u.s, "b");
    assert_int_equal(cl->status_code, ST_STATUS_ERROR);
    assert_str(cl->status_message, "timeout");
    st_span_list_free(l);
}

static void test_proto_captures(void **state)
{
    fx_t *f = *state;
    static const char *const files[] = {
        "otel-captures/04-otlp-proto.body.bin",       "otel-captures/05-otlp-proto.body.bin",
        "otel-captures/06-otlp-proto.body.bin",       "otel-captures/13-otlp-proto.gunzipped",
        "otel-captures/14-otlp-proto.gunzipped",      "otel-captures/15-otlp-proto.gunzipped",
        "otel-captures/batch/02-otlp-proto.body.bin",
    };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        if (!post_ref(f, files[i], i == 0 ? NULL : PB)) { /* no Content-Type: protobuf */
            wt_skip();
        }
    }
    /* ids and times from the *.decoded.txt protoc dumps */
    demo_t simple = {"39e75e672f54dc74ab033b7bb638ca64",
                     "26b26a182cc9b114",
                     "3d28d0406fa8edc9",
                     "7323a043e77f05f7",
                     {1795634004481000000LL, 1795634004490043257LL, 1795634004482000000LL,
                      1795634004489756366LL, 1795634004482000000LL, 1795634004482157945LL},
                     1795634004482152737LL};
    check_demo(f, &simple);
    demo_t gz = {"77429a2e2024511580f22fafc08226c0",
                 "bdec515fdda820df",
                 "e66d734c2b768a1b",
                 "fec2ec67cebd8836",
                 {0},
                 0};
    check_demo(f, &gz);
    demo_t batch = {"ef227e9d4a740857b71b3c2419348dc8",
                    "2f3b6dda8ed54487",
                    "05709756d9501f8a",
                    "41c6613bd4d74898",
                    {1795634016175000000LL, 1795634016176560627LL, 1795634016176000000LL,
                     1795634016176817383LL, 1795634016176000000LL, 1795634016176152907LL},
                    1795634016176139297LL};
    check_demo(f, &batch);
}

/* ---- a small protobuf writer for hand-built requests ---- */

static void pb_tag(wf_buf_t *b, unsigned num, unsigned wire)
{
    wf_buf_put_uvarint(b, (uint64_t)num << 3 | wire);
}

static void pb_len(wf_buf_t *b, unsigned num, const void *p, size_t n)
{
    pb_tag(b, num, 2);
    wf_buf_put_uvarint(b, n);
    wf_buf_append(b, p, n);
}

static void pb_str(wf_buf_t *b, unsigned num, const char *s)
{
    pb_len(b, num, s, strlen(s));
}

static void pb_msg(wf_buf_t *b, unsigned num, wf_buf_t *m)
{
    pb_len(b, num, m->data, m->len);
    wf_buf_free(m);
}

static void pb_varint(wf_buf_t *b, unsigned num, uint64_t v)
{
    pb_tag(b, num, 0);
    wf_buf_put_uvarint(b, v);
}

static void pb_fixed64(wf_buf_t *b, unsigned num, uint64_t v)
{
    pb_tag(b, num, 1);
    wf_buf_put_u64le(b, v);
}

static void pb_kv_str(wf_buf_t *b, unsigned num, const char *k, const char *v)
{
    wf_buf_t kv = WF_BUF_INIT, any = WF_BUF_INIT;
    pb_str(&any, 1, v);
    pb_str(&kv, 1, k);
    pb_msg(&kv, 2, &any);
    pb_msg(b, num, &kv);
}

#define TRACE_HEX "0102030405060708090a0b0c0d0e0f10"
static const uint8_t trace_id[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
static const uint8_t span_id[8] = {0xa1, 2, 3, 4, 5, 6, 7, 8};
#define NOW_NS ((uint64_t)T0 * 1000000)

/* A request of one span whose body (after ids, name and times) the caller may extend with
 * extra; the span's trace and span ids can be replaced. */
static void build(wf_buf_t *req, const void *tid, size_t tlen, const void *sid, size_t slen,
                  const char *name, const wf_buf_t *extra)
{
    wf_buf_t span = WF_BUF_INIT, ss = WF_BUF_INIT, rs = WF_BUF_INIT, res = WF_BUF_INIT;
    if (tid != NULL) {
        pb_len(&span, 1, tid, tlen);
    }
    if (sid != NULL) {
        pb_len(&span, 2, sid, slen);
    }
    pb_str(&span, 5, name);
    pb_varint(&span, 6, ST_SPAN_KIND_PRODUCER);
    pb_fixed64(&span, 7, NOW_NS - 5000);
    pb_fixed64(&span, 8, NOW_NS - 1000);
    if (extra != NULL) {
        wf_buf_append(&span, extra->data, extra->len);
    }
    pb_msg(&ss, 2, &span);
    pb_kv_str(&res, 1, "k8s.pod.name", "pod-1"); /* no service.name */
    pb_msg(&rs, 1, &res);
    pb_msg(&rs, 2, &ss);
    pb_msg(req, 1, &rs);
}

static void test_pb_links_values(void **state)
{
    fx_t *f = *state;
    wf_buf_t extra = WF_BUF_INIT, link = WF_BUF_INIT, st = WF_BUF_INIT, req = WF_BUF_INIT;
    static const uint8_t ltrace[16] = {0xff, 1}, lspan[8] = {0, 0, 0, 0, 0, 0, 0, 9};
    pb_str(&extra, 3, "vendor=x");
    /* attributes of every value type: bytes, double, nested array, kvlist, empty value */
    {
        wf_buf_t kv = WF_BUF_INIT, any = WF_BUF_INIT;
        pb_len(&any, 7, "\x00\xff", 2);
        pb_str(&kv, 1, "bin");
        pb_msg(&kv, 2, &any);
        pb_msg(&extra, 9, &kv);
    }
    {
        wf_buf_t kv = WF_BUF_INIT, any = WF_BUF_INIT, arr = WF_BUF_INIT, inner = WF_BUF_INIT;
        wf_buf_t e1 = WF_BUF_INIT, e2 = WF_BUF_INIT, ie = WF_BUF_INIT;
        pb_varint(&e1, 3, (uint64_t)-7);           /* int64 -7 sign-extended */
        pb_fixed64(&ie, 4, 0x3ff8000000000000ULL); /* 1.5 */
        pb_msg(&inner, 1, &ie);
        pb_msg(&e2, 5, &inner);
        pb_msg(&arr, 1, &e1);
        pb_msg(&arr, 1, &e2);
        pb_msg(&any, 5, &arr);
        pb_str(&kv, 1, "nested");
        pb_msg(&kv, 2, &any);
        pb_msg(&extra, 9, &kv);
    }
    {
        wf_buf_t kv = WF_BUF_INIT, any = WF_BUF_INIT, list = WF_BUF_INIT, b = WF_BUF_INIT;
        wf_buf_t bv = WF_BUF_INIT;
        pb_kv_str(&list, 1, "a", "x\"y");
        pb_varint(&bv, 2, 1);
        pb_str(&b, 1, "b");
        pb_msg(&b, 2, &bv);
        pb_msg(&list, 1, &b);
        pb_msg(&any, 6, &list);
        pb_str(&kv, 1, "map");
        pb_msg(&kv, 2, &any);
        pb_msg(&extra, 9, &kv);
    }
    {
        wf_buf_t kv = WF_BUF_INIT;
        pb_str(&kv, 1, "empty");
        pb_msg(&extra, 9, &kv);
    }
    pb_len(&link, 1, ltrace, 16);
    pb_len(&link, 2, lspan, 8);
    pb_str(&link, 3, "l=1");
    pb_kv_str(&link, 4, "link.kind", "follows");
    pb_msg(&extra, 13, &link);
    pb_varint(&st, 3, ST_STATUS_OK);
    pb_msg(&extra, 15, &st);
    build(&req, trace_id, 16, span_id, 8, "send", &extra);
    wf_buf_free(&extra);
    assert_int_equal(post(f, PB, req.data, req.len, NULL), 200);
    wf_buf_free(&req);

    st_span_list_t *l = trace(f, TRACE_HEX);
    assert_int_equal(l->n, 1);
    const st_span_t *s = &l->spans[0];
    assert_memory_equal(s->span_id, span_id, 8);
    assert_parent(s, NULL);
    assert_str(s->trace_state, "vendor=x");
    assert_int_equal(s->kind, ST_SPAN_KIND_PRODUCER);
    assert_true(s->start_ns == (int64_t)NOW_NS - 5000);
    assert_true(s->end_ns == (int64_t)NOW_NS - 1000);
    assert_str(s->service, "unknown_service");
    assert_int_equal(s->n_resource_attrs, 1);
    assert_str(attr(s->resource_attrs, 1, "k8s.pod.name")->u.s, "pod-1");
    assert_int_equal(s->status_code, ST_STATUS_OK);
    assert_int_equal(s->n_attrs, 4);
    const st_value_t *v = attr(s->attrs, 4, "bin");
    assert_int_equal(v->type, ST_VAL_BYTES);
    assert_int_equal(v->u.s.len, 2);
    assert_memory_equal(v->u.s.p, "\x00\xff", 2);
    v = attr(s->attrs, 4, "nested");
    assert_int_equal(v->type, ST_VAL_ARRAY);
    assert_int_equal(v->u.arr.n, 2);
    assert_int_equal(v->u.arr.items[0].type, ST_VAL_INT);
    assert_true(v->u.arr.items[0].u.i == -7);
    assert_int_equal(v->u.arr.items[1].type, ST_VAL_ARRAY);
    assert_int_equal(v->u.arr.items[1].u.arr.n, 1);
    assert_true(v->u.arr.items[1].u.arr.items[0].u.d == 1.5);
    v = attr(s->attrs, 4, "map");
    assert_int_equal(v->type, ST_VAL_STRING);
    assert_str(v->u.s, "{\"a\":\"x\\\"y\",\"b\":true}");
    v = attr(s->attrs, 4, "empty");
    assert_int_equal(v->type, ST_VAL_STRING);
    assert_str(v->u.s, "");
    assert_int_equal(s->n_links, 1);
    assert_memory_equal(s->links[0].trace_id, ltrace, 16);
    assert_memory_equal(s->links[0].span_id, lspan, 8);
    assert_str(s->links[0].trace_state, "l=1");
    assert_int_equal(s->links[0].n_attrs, 1);
    assert_str(attr(s->links[0].attrs, 1, "link.kind")->u.s, "follows");
    st_span_list_free(l);
}

static void test_json_values(void **state)
{
    fx_t *f = *state;
    char body[2048];
    snprintf(body, sizeof(body),
             "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\","
             "\"value\":{\"stringValue\":\"svc\"}}]},\"scopeSpans\":[{\"spans\":[{"
             "\"traceId\":\"%s\",\"spanId\":\"A102030405060708\",\"parentSpanId\":\"\","
             "\"name\":\"n\",\"kind\":5,\"startTimeUnixNano\":%" PRIu64
             ",\"endTimeUnixNano\":\"%" PRIu64 "\",\"attributes\":["
             "{\"key\":\"b\",\"value\":{\"bytesValue\":\"AP8=\"}},"
             "{\"key\":\"i\",\"value\":{\"intValue\":\"-9223372036854775808\"}},"
             "{\"key\":\"m\",\"value\":{\"kvlistValue\":{\"values\":[{\"key\":\"k\","
             "\"value\":{\"intValue\":1}}]}}}],"
             "\"links\":[{\"traceId\":\"%s\",\"spanId\":\"0000000000000001\"}]}]}]}]}",
             TRACE_HEX, NOW_NS - 10, NOW_NS - 1, TRACE_HEX);
    assert_int_equal(post(f, JSON, body, strlen(body), NULL), 200);
    st_span_list_t *l = trace(f, TRACE_HEX);
    assert_int_equal(l->n, 1);
    const st_span_t *s = &l->spans[0];
    assert_memory_equal(s->span_id, span_id, 8); /* upper-case hex accepted */
    assert_str(s->service, "svc");
    assert_str(s->scope_name, "");
    assert_int_equal(s->kind, ST_SPAN_KIND_CONSUMER);
    assert_true(s->start_ns == (int64_t)NOW_NS - 10);
    assert_true(s->end_ns == (int64_t)NOW_NS - 1);
    const st_value_t *v = attr(s->attrs, s->n_attrs, "b");
    assert_int_equal(v->type, ST_VAL_BYTES);
    assert_int_equal(v->u.s.len, 2);
    assert_memory_equal(v->u.s.p, "\x00\xff", 2);
    assert_true(attr(s->attrs, s->n_attrs, "i")->u.i == INT64_MIN);
    assert_str(attr(s->attrs, s->n_attrs, "m")->u.s, "{\"k\":1}");
    assert_int_equal(s->n_links, 1);
    assert_int_equal(s->links[0].span_id[7], 1);
    st_span_list_free(l);
}

/* Every malformed protobuf shape is refused with 400 and writes nothing. */
static void test_pb_malformed(void **state)
{
    fx_t *f = *state;
    static const uint8_t zero16[16] = {0}, zero8[8] = {0};
    wf_buf_t req = WF_BUF_INIT, extra = WF_BUF_INIT;

    /* a good request, truncated at every length: all 400 except the empty body (no spans) */
    build(&req, trace_id, 16, span_id, 8, "ok", NULL);
    for (size_t cut = 1; cut < req.len; cut++) {
        if (post(f, PB, req.data, cut, NULL) != 400) {
            fail_msg("truncated at %zu of %zu not refused", cut, req.len);
        }
    }
    assert_int_equal(post(f, PB, req.data, 0, NULL), 200);
    wf_buf_reset(&req);

    build(&req, trace_id, 15, span_id, 8, "short trace id", NULL);
    assert_int_equal(post(f, PB, req.data, req.len, NULL), 400);
    wf_buf_reset(&req);
    build(&req, trace_id, 16, span_id, 7, "short span id", NULL);
    assert_int_equal(post(f, PB, req.data, req.len, NULL), 400);
    wf_buf_reset(&req);
    build(&req, zero16, 16, span_id, 8, "zero trace id", NULL);
    assert_int_equal(post(f, PB, req.data, req.len, NULL), 400);
    wf_buf_reset(&req);
    build(&req, trace_id, 16, zero8, 8, "zero span id", NULL);
    assert_int_equal(post(f, PB, req.data, req.len, NULL), 400);
    wf_buf_reset(&req);
    build(&req, trace_id, 16, NULL, 0, "no span id", NULL);
    assert_int_equal(post(f, PB, req.data, req.len, NULL), 400);
    wf_buf_reset(&req);
    build(&req, trace_id, 16, span_id, 8, "bad \xc3\x28 name", NULL);
    assert_int_equal(post(f, PB, req.data, req.len, NULL), 400);
    wf_buf_reset(&req);

    pb_len(&extra, 4, span_id, 5); /* parent of 5 bytes */
    build(&req, trace_id, 16, span_id, 8, "short parent", &extra);
    assert_int_equal(post(f, PB, req.data, req.len, NULL), 400);
    wf_buf_reset(&req);
    wf_buf_reset(&extra);
    pb_kv_str(&extra, 9, "k\xff", "v"); /* invalid UTF-8 key */
    build(&req, trace_id, 16, span_id, 8, "bad key", &extra);
    assert_int_equal(post(f, PB, req.data, req.len, NULL), 400);
    wf_buf_reset(&req);
    wf_buf_reset(&extra);
    pb_varint(&extra, 7, 5); /* start time as a varint: wrong wire type */
    build(&req, trace_id, 16, span_id, 8, "wire", &extra);
    assert_int_equal(post(f, PB, req.data, req.len, NULL), 400);
    wf_buf_reset(&req);
    wf_buf_reset(&extra);
    pb_str(&extra, 6, "x"); /* kind as bytes */
    build(&req, trace_id, 16, span_id, 8, "wire", &extra);
    assert_int_equal(post(f, PB, req.data, req.len, NULL), 400);
    wf_buf_reset(&req);
    wf_buf_reset(&extra);
    pb_varint(&extra, 6, 9); /* unknown kind */
    build(&req, trace_id, 16, span_id, 8, "kind", &extra);
    assert_int_equal(post(f, PB, req.data, req.len, NULL), 400);
    wf_buf_reset(&req);
    wf_buf_reset(&extra);
    pb_fixed64(&extra, 8, UINT64_MAX); /* end time above int64 */
    build(&req, trace_id, 16, span_id, 8, "time", &extra);
    assert_int_equal(post(f, PB, req.data, req.len, NULL), 400);
    wf_buf_reset(&req);
    wf_buf_reset(&extra);
    pb_fixed64(&extra, 8, NOW_NS - 9000); /* end before start: the store refuses it */
    build(&req, trace_id, 16, span_id, 8, "backwards", &extra);
    assert_int_equal(post(f, PB, req.data, req.len, NULL), 400);
    wf_buf_reset(&req);
    wf_buf_reset(&extra);
    pb_varint(&req, 1, 1); /* resource_spans as a varint */
    assert_int_equal(post(f, PB, req.data, req.len, NULL), 400);
    wf_buf_free(&req);
    wf_buf_free(&extra);
    assert_true(trace_absent(f, TRACE_HEX));
    assert_true(trace_absent(f, "00000000000000000000000000000000"));
}

static void test_json_malformed(void **state)
{
    fx_t *f = *state;
    static const char *const bad_spans[] = {
        "\"traceId\":\"0102030405060708090a0b0c0d0e0f1g\",\"spanId\":\"a102030405060708\"",
        "\"traceId\":\"0102030405060708090a0b0c0d0e0f1\",\"spanId\":\"a102030405060708\"",
        "\"traceId\":\"00000000000000000000000000000000\",\"spanId\":\"a102030405060708\"",
        "\"traceId\":\"" TRACE_HEX "\",\"spanId\":\"0000000000000000\"",
        "\"traceId\":\"" TRACE_HEX "\"",
        "\"traceId\":\"" TRACE_HEX "\",\"spanId\":\"a1020304050607\"",
        "\"traceId\":\"AQIDBAUGBwgJCgsMDQ4PEA==\",\"spanId\":\"a102030405060708\"", /* base64 */
        "\"traceId\":\"" TRACE_HEX "\",\"spanId\":\"a102030405060708\",\"kind\":6",
        "\"traceId\":\"" TRACE_HEX "\",\"spanId\":\"a102030405060708\",\"kind\":\"SERVER\"",
        "\"traceId\":\"" TRACE_HEX "\",\"spanId\":\"a102030405060708\","
        "\"startTimeUnixNano\":\"12x\"",
        "\"traceId\":\"" TRACE_HEX "\",\"spanId\":\"a102030405060708\","
        "\"startTimeUnixNano\":\"-5\"",
        "\"traceId\":\"" TRACE_HEX "\",\"spanId\":\"a102030405060708\",\"parentSpanId\":\"xx\"",
        "\"traceId\":\"" TRACE_HEX "\",\"spanId\":\"a102030405060708\",\"attributes\":{}",
        "\"traceId\":\"" TRACE_HEX "\",\"spanId\":\"a102030405060708\","
        "\"attributes\":[{\"key\":\"k\",\"value\":{\"bytesValue\":\"!!\"}}]",
        "\"traceId\":\"" TRACE_HEX "\",\"spanId\":\"a102030405060708\",\"status\":{\"code\":3}",
        "\"traceId\":\"" TRACE_HEX "\",\"spanId\":\"a102030405060708\",\"links\":[{}]",
    };
    for (size_t i = 0; i < sizeof(bad_spans) / sizeof(bad_spans[0]); i++) {
        char body[1024];
        snprintf(body, sizeof(body),
                 "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{%s,\"name\":\"x\","
                 "\"endTimeUnixNano\":\"%" PRIu64 "\"}]}]}]}",
                 bad_spans[i], NOW_NS);
        if (post(f, JSON, body, strlen(body), NULL) != 400) {
            fail_msg("accepted: %s", bad_spans[i]);
        }
    }
    static const char *const bad_docs[] = {
        "",
        "{",
        "[]",
        "{\"resourceSpans\":{}}",
        "{\"resourceSpans\":[1]}",
        "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[\"x\"]}]}]}",
        "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"name\":\"\xc3\x28\"}]}]}]}",
    };
    for (size_t i = 0; i < sizeof(bad_docs) / sizeof(bad_docs[0]); i++) {
        if (post(f, JSON, bad_docs[i], strlen(bad_docs[i]), NULL) != 400) {
            fail_msg("accepted: %s", bad_docs[i]);
        }
    }
    assert_int_equal(post(f, JSON, "{}", 2, NULL), 200); /* no spans is fine */
    assert_int_equal(post(f, "text/plain", "{}", 2, NULL), 415);
    assert_true(trace_absent(f, TRACE_HEX));
}

static void three_spans(wf_buf_t *req)
{
    for (uint8_t i = 1; i <= 3; i++) {
        uint8_t sid[8] = {0, 0, 0, 0, 0, 0, 0, i};
        build(req, trace_id, 16, sid, 8, "s", NULL);
    }
}

/* Beyond the decoder's span limit: WF_E_LIMIT; beyond the store's batch limit: 413. */
static void test_limits(void **state)
{
    (void)state;
    wf_buf_t req = WF_BUF_INIT;
    three_spans(&req);
    wf_arena_t arena;
    wf_arena_init(&arena, 4096, 0);
    st_span_t *spans;
    size_t n;
    char err[256];
    assert_int_equal(
        col_otlp_traces_decode(req.data, req.len, false, 2, &arena, &spans, &n, err, sizeof(err)),
        WF_E_LIMIT);
    assert_non_null(strstr(err, "too many spans"));
    assert_int_equal(
        col_otlp_traces_decode(req.data, req.len, false, 3, &arena, &spans, &n, err, sizeof(err)),
        0);
    assert_int_equal(n, 3);
    assert_int_equal(spans[2].span_id[7], 3);
    wf_arena_free(&arena);

    fx_t *f = fx_open(2);
    assert_int_equal(post(f, PB, req.data, req.len, NULL), 413);
    assert_true(trace_absent(f, TRACE_HEX));
    fx_close(f);
    wf_buf_free(&req);
}

/*
 * A store that failed (st_internal.h's flag, which a half-done write sets) refuses every
 * write with ST_E_CLOSED: the receiver answers 503 with Retry-After: 1 (checked in post), so
 * that OTLP clients retry. No job is in flight when the flag changes: col_writer_submit's
 * mutex orders it before the writer thread reads it.
 */
static void test_store_failed(void **state)
{
    fx_t *f = *state;
    wf_buf_t req = WF_BUF_INIT;
    build(&req, trace_id, 16, span_id, 8, "s", NULL);
    f->s->failed = 1;
    assert_int_equal(post(f, PB, req.data, req.len, NULL), 503);
    f->s->failed = 0;
    assert_true(trace_absent(f, TRACE_HEX));
    assert_int_equal(post(f, PB, req.data, req.len, NULL), 200);
    assert_false(trace_absent(f, TRACE_HEX));
    wf_buf_free(&req);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_json_captures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proto_captures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pb_links_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pb_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_failed, setup, teardown),
        cmocka_unit_test(test_limits),
    };
    return wt_exit_code(cmocka_run_group_tests(tests, NULL, NULL));
}
