/*
 * test_col_remote_write.c - the remote_write receiver (col_remote_write.h) end to end without
 * HTTP: requests built by the test-side encoder (wt_rw.h) or crafted byte by byte go through
 * col_remote_write_handler into a real store in a temporary directory, with the write queue
 * running on a second thread as in the collector; the test then reads the store back.
 * Covered: valid requests with metadata, unsorted and empty-valued labels, per-sample
 * refusals (out of order, duplicate, too old) that keep the good samples, and every malformed
 * shape (bad snappy, truncated varint, length past the end, wrong wire type, invalid UTF-8,
 * empty or invalid label names, duplicates, oversized bodies and sample counts), each of
 * which must write nothing. Overload and shutdown: a request the write queue sheds, or one
 * that meets a failed store, is answered 503 with Retry-After and writes nothing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "col_remote_write.h"
#include "col_writer.h"
#include "st_internal.h"
#include "st_store.h"
#include "wf_alloc.h"
#include "wf_arena.h"
#include "wf_buf.h"
#include "wf_err.h"
#include "wt_rw.h"
#include "wt_colfx.h"
#include "wt_util.h"

#define T0 1700000000000LL /* the store's fake "now" */

typedef wt_colfx_t fx_t;

static int setup(void **state)
{
    *state = wt_colfx_open("col_rw", T0, 0, 0);
    return 0;
}

/* A store whose batches hold at most 10 samples, to reach the batch limit with small
 * requests. */
static int setup_small_batches(void **state)
{
    *state = wt_colfx_open("col_rw", T0, 10, 0);
    return 0;
}

static int teardown(void **state)
{
    wt_colfx_close(*state);
    return 0;
}

/* The Retry-After header of the last answer ("" when it had none). */
static char retry_after[16];

/* Run the handler on a compressed body; returns the status, *msg the body (wf_free). */
static unsigned post(fx_t *f, const void *body, size_t len, char **msg)
{
    wf_arena_t arena;
    wf_arena_init(&arena, 4096, 0);
    /* The HTTP layer hands handlers a NUL-terminated copy of the body. */
    uint8_t *copy = wf_malloc(len + 1);
    if (len > 0) {
        memcpy(copy, body, len);
    }
    copy[len] = 0;
    col_req_t req = {
        .method = "POST", .path = "/api/v1/write", .body = copy, .body_len = len, .arena = &arena};
    col_resp_t resp;
    memset(&resp, 0, sizeof(resp));
    resp.status = 200;
    col_remote_write_handler(f->wr, &req, &resp);
    if (msg != NULL) {
        *msg = wf_strdup(resp.body.len ? wf_buf_cstr(&resp.body) : "");
    }
    unsigned status = resp.status;
    if (status == 204) {
        assert_int_equal(resp.body.len, 0);
    } else {
        assert_non_null(resp.content_type);
        assert_non_null(strstr(resp.content_type, "text/plain"));
    }
    retry_after[0] = '\0';
    for (size_t i = 0; i < resp.nheaders; i++) {
        if (strcmp(resp.headers[i][0], "Retry-After") == 0) {
            snprintf(retry_after, sizeof(retry_after), "%s", resp.headers[i][1]);
        }
        wf_free(resp.headers[i][0]);
        wf_free(resp.headers[i][1]);
    }
    wf_buf_free(&resp.body);
    wf_free(copy);
    wf_arena_free(&arena);
    return status;
}

static unsigned post_pb(fx_t *f, const wf_buf_t *pb, char **msg)
{
    wf_buf_t body = WF_BUF_INIT;
    wt_rw_snappy(pb->data, pb->len, &body);
    unsigned st = post(f, body.data, body.len, msg);
    wf_buf_free(&body);
    return st;
}

static unsigned post_rw(fx_t *f, const wt_rw_t *rw, char **msg)
{
    wf_buf_t pb = WF_BUF_INIT;
    wt_rw_encode(rw, &pb);
    unsigned st = post_pb(f, &pb, msg);
    wf_buf_free(&pb);
    return st;
}

/* Samples of the series matching {__name__=name} (exactly one series expected unless
 * nseries is given); copies up to max samples; returns the number of series. */
static size_t query(fx_t *f, const char *name, int64_t *ts, double *v, size_t max, size_t *n,
                    char *labels_out, size_t labels_cap)
{
    st_matcher_t *m = NULL;
    assert_int_equal(st_matcher_new(ST_MATCH_EQ, WF_STR_LIT("__name__"), wf_str(name), &m, NULL, 0),
                     0);
    st_series_set_t *set = NULL;
    const st_matcher_t *ms[1] = {m};
    assert_int_equal(st_select(f->s, ms, 1, 0, INT64_MAX, &set), 0);
    size_t count = st_series_set_len(set);
    *n = 0;
    if (count > 0) {
        const int64_t *t;
        const double *vals;
        size_t k;
        assert_int_equal(st_series_set_samples(set, 0, &t, &vals, &k), 0);
        for (size_t i = 0; i < k && i < max; i++) {
            ts[i] = t[i];
            v[i] = vals[i];
        }
        *n = k;
        if (labels_out != NULL) {
            size_t nl, o = 0;
            const st_label_t *l = st_series_set_labels(set, 0, &nl);
            labels_out[0] = '\0';
            for (size_t i = 0; i < nl && o < labels_cap; i++) {
                o += (size_t)snprintf(labels_out + o, labels_cap - o, "%s%.*s=%.*s", i ? "," : "",
                                      (int)l[i].name.len, l[i].name.p, (int)l[i].value.len,
                                      l[i].value.p);
            }
        }
    }
    st_series_set_free(set);
    st_matcher_free(m);
    return count;
}

static size_t count_series(fx_t *f, const char *name)
{
    int64_t ts[1];
    double v[1];
    size_t n;
    return query(f, name, ts, v, 1, &n, NULL, 0);
}

/* ---- valid requests -------------------------------------------------------------------- */

static void test_valid_request(void **state)
{
    fx_t *f = *state;
    wt_rw_t *rw = wt_rw_new();
    wt_rw_series_s(rw, "http_requests_total{job=\"api\",instance=\"a:1\",code=\"200\"}");
    for (int i = 0; i < 5; i++) {
        wt_rw_sample(rw, T0 - 60000 + i * 15000, 10.0 * i);
    }
    wt_rw_series_s(rw, "temperature{room=\"kitchen\"}");
    wt_rw_sample(rw, T0 - 1000, -3.25);
    wt_rw_sample(rw, T0, NAN);
    wt_rw_metadata(rw, WT_RW_COUNTER, "http_requests_total", "Requests served.", "");
    wt_rw_metadata(rw, WT_RW_GAUGE, "temperature", "Room temperature.", "celsius");
    char *msg = NULL;
    assert_int_equal(post_rw(f, rw, &msg), 204);
    wf_free(msg);

    int64_t ts[16];
    double v[16];
    size_t n;
    char lbl[512];
    assert_int_equal(query(f, "http_requests_total", ts, v, 16, &n, lbl, sizeof(lbl)), 1);
    assert_int_equal(n, 5);
    for (int i = 0; i < 5; i++) {
        assert_true(ts[i] == T0 - 60000 + i * 15000);
        assert_true(v[i] == 10.0 * i);
    }
    assert_string_equal(lbl, "__name__=http_requests_total,code=200,instance=a:1,job=api");
    assert_int_equal(query(f, "temperature", ts, v, 16, &n, NULL, 0), 1);
    assert_int_equal(n, 2);
    assert_true(v[0] == -3.25);
    assert_true(isnan(v[1]));

    st_metadata_t md;
    assert_int_equal(st_metadata_get(f->s, WF_STR_LIT("http_requests_total"), &md), 0);
    assert_int_equal(md.type, ST_METRIC_COUNTER);
    assert_string_equal(md.help, "Requests served.");
    assert_string_equal(md.unit, "");
    wf_free(md.help);
    wf_free(md.unit);
    assert_int_equal(st_metadata_get(f->s, WF_STR_LIT("temperature"), &md), 0);
    assert_int_equal(md.type, ST_METRIC_GAUGE);
    assert_string_equal(md.unit, "celsius");
    wf_free(md.help);
    wf_free(md.unit);
    wt_rw_free(rw);
}

/* Prometheus's staleness marker survives bit for bit. */
static void test_stale_marker(void **state)
{
    fx_t *f = *state;
    const uint64_t stale_bits = 0x7ff0000000000002ULL;
    double stale;
    memcpy(&stale, &stale_bits, 8);
    wt_rw_t *rw = wt_rw_new();
    wt_rw_series_s(rw, "gone{a=\"b\"}");
    wt_rw_sample(rw, T0 - 2000, 1);
    wt_rw_sample(rw, T0 - 1000, stale);
    assert_int_equal(post_rw(f, rw, NULL), 204);
    int64_t ts[4];
    double v[4];
    size_t n;
    assert_int_equal(query(f, "gone", ts, v, 4, &n, NULL, 0), 1);
    assert_int_equal(n, 2);
    uint64_t bits;
    memcpy(&bits, &v[1], 8);
    assert_true(bits == stale_bits);
    wt_rw_free(rw);
}

static void test_unsorted_and_empty_labels(void **state)
{
    fx_t *f = *state;
    wt_rw_t *rw = wt_rw_new();
    wt_rw_keep_order(rw, true);
    wt_rw_series_l(rw, "zone", "eu", "__name__", "unsorted_metric", "empty", "", "app", "x", NULL);
    wt_rw_sample(rw, T0 - 5000, 1);
    assert_int_equal(post_rw(f, rw, NULL), 204);
    int64_t ts[2];
    double v[2];
    size_t n;
    char lbl[256];
    assert_int_equal(query(f, "unsorted_metric", ts, v, 2, &n, lbl, sizeof(lbl)), 1);
    /* Sorted by the store, and the empty-valued label dropped as Prometheus does. */
    assert_string_equal(lbl, "__name__=unsorted_metric,app=x,zone=eu");
    wt_rw_free(rw);
}

static void test_empty_request_and_series_without_samples(void **state)
{
    fx_t *f = *state;
    wt_rw_t *rw = wt_rw_new();
    assert_int_equal(post_rw(f, rw, NULL), 204);
    wt_rw_series_s(rw, "no_samples{a=\"1\"}");
    assert_int_equal(post_rw(f, rw, NULL), 204);
    assert_int_equal(count_series(f, "no_samples"), 0);
    wt_rw_free(rw);
}

/* Exemplars (3), native histograms (4) and unknown fields are accepted and ignored. */
static void test_ignored_fields(void **state)
{
    fx_t *f = *state;
    wf_buf_t pb = WF_BUF_INIT, ts = WF_BUF_INIT, sub = WF_BUF_INIT;
    wt_pb_str(&sub, 1, "__name__");
    wt_pb_str(&sub, 2, "with_exemplar");
    wt_pb_bytes(&ts, 1, sub.data, sub.len);
    wf_buf_reset(&sub);
    wt_pb_double(&sub, 1, 42);
    wt_pb_varint(&sub, 2, (uint64_t)(T0 - 100));
    wt_pb_varint(&sub, 9, 1); /* unknown field inside Sample */
    wt_pb_bytes(&ts, 2, sub.data, sub.len);
    wt_pb_str(&ts, 3, "\x0a\x00\x11\x00\x00\x00\x00\x00\x00\xf0\x3f"); /* an exemplar */
    wt_pb_bytes(&ts, 4, "\x08\x01", 2);                                /* a histogram */
    wt_pb_fixed32(&ts, 15, 7);                                         /* unknown */
    wt_pb_bytes(&pb, 1, ts.data, ts.len);
    wt_pb_varint(&pb, 2, 5); /* unknown top-level field */
    assert_int_equal(post_pb(f, &pb, NULL), 204);
    int64_t t[2];
    double v[2];
    size_t n;
    assert_int_equal(query(f, "with_exemplar", t, v, 2, &n, NULL, 0), 1);
    assert_int_equal(n, 1);
    assert_true(v[0] == 42 && t[0] == T0 - 100);
    wf_buf_free(&pb);
    wf_buf_free(&ts);
    wf_buf_free(&sub);
}

/* What wt_rw encodes, the decoder reads back exactly (the test encoder is itself tested). */
static void test_encoder_roundtrip(void **state)
{
    (void)state;
    wt_rw_t *rw = wt_rw_new();
    wt_rw_series_s(rw, "rt{b=\"two\",a=\"one \\\"quoted\\\"\\n\"}");
    wt_rw_sample(rw, 0, 0);
    wt_rw_sample(rw, 1, -0.0);
    wt_rw_sample(rw, INT64_MAX, 1e308);
    wt_rw_series_l(rw, "__name__", "rt2", NULL);
    wt_rw_sample(rw, 5, INFINITY);
    wt_rw_metadata(rw, WT_RW_SUMMARY, "rt", "h", "u");
    wf_buf_t pb = WF_BUF_INIT;
    wt_rw_encode(rw, &pb);
    col_sset_t s;
    memset(&s, 0, sizeof(s));
    char err[256];
    assert_int_equal(col_rw_decode(pb.data, pb.len, &s, err, sizeof(err)), 0);
    assert_int_equal(s.nseries, 2);
    assert_int_equal(s.nsamples, 4);
    assert_int_equal(s.series[0].nlabels, 3);
    assert_true(wf_str_eq_c(s.labels[0].name, "__name__"));
    assert_true(wf_str_eq_c(s.labels[1].name, "a"));
    assert_true(wf_str_eq_c(s.labels[1].value, "one \"quoted\"\n"));
    assert_true(wf_str_eq_c(s.labels[2].value, "two"));
    assert_true(s.ts[0] == 0 && s.v[0] == 0 && !signbit(s.v[0]));
    assert_true(s.ts[1] == 1 && signbit(s.v[1]));
    assert_true(s.ts[2] == INT64_MAX && s.v[2] == 1e308);
    assert_true(isinf(s.v[3]));
    assert_int_equal(s.nmeta, 1);
    assert_int_equal(s.meta[0].type, ST_METRIC_SUMMARY);
    assert_true(wf_str_eq_c(s.meta[0].help, "h") && wf_str_eq_c(s.meta[0].unit, "u"));
    assert_int_equal(wt_rw_nseries(rw), 2);
    assert_int_equal(wt_rw_nsamples(rw), 4);
    col_sset_free(&s);
    wf_buf_free(&pb);
    wt_rw_free(rw);
}

/* ---- per-sample refusals: the good samples are kept, the answer is 400 ----------------- */

static void test_out_of_order_keeps_good_samples(void **state)
{
    fx_t *f = *state;
    wt_rw_t *rw = wt_rw_new();
    wt_rw_series_s(rw, "ooo{s=\"a\"}");
    wt_rw_sample(rw, T0 - 1000, 1);
    assert_int_equal(post_rw(f, rw, NULL), 204);

    wt_rw_reset(rw);
    wt_rw_series_s(rw, "ooo{s=\"a\"}");
    wt_rw_sample(rw, T0 - 2000, 2); /* older than the newest: refused */
    wt_rw_series_s(rw, "ooo{s=\"b\"}");
    wt_rw_sample(rw, T0 - 500, 3); /* fine */
    char *msg = NULL;
    assert_int_equal(post_rw(f, rw, &msg), 400);
    assert_non_null(strstr(msg, "out of order"));
    assert_non_null(strstr(msg, "s=\"a\""));
    assert_non_null(strstr(msg, "1 of 2 samples refused"));
    wf_free(msg);

    st_matcher_t *m = NULL;
    assert_int_equal(st_matcher_new(ST_MATCH_EQ, WF_STR_LIT("s"), WF_STR_LIT("b"), &m, NULL, 0), 0);
    st_series_set_t *set = NULL;
    const st_matcher_t *ms[1] = {m};
    assert_int_equal(st_select(f->s, ms, 1, 0, INT64_MAX, &set), 0);
    assert_int_equal(st_series_set_len(set), 1);
    st_series_set_free(set);
    st_matcher_free(m);

    /* Series a still holds only its first sample. */
    assert_int_equal(st_matcher_new(ST_MATCH_EQ, WF_STR_LIT("s"), WF_STR_LIT("a"), &m, NULL, 0), 0);
    ms[0] = m;
    assert_int_equal(st_select(f->s, ms, 1, 0, INT64_MAX, &set), 0);
    const int64_t *ts;
    const double *v;
    size_t n;
    assert_int_equal(st_series_set_samples(set, 0, &ts, &v, &n), 0);
    assert_int_equal(n, 1);
    assert_true(v[0] == 1);
    st_series_set_free(set);
    st_matcher_free(m);
    wt_rw_free(rw);
}

static void test_duplicate_and_too_old(void **state)
{
    fx_t *f = *state;
    wt_rw_t *rw = wt_rw_new();
    wt_rw_series_s(rw, "dup{x=\"1\"}");
    wt_rw_sample(rw, T0 - 1000, 1);
    assert_int_equal(post_rw(f, rw, NULL), 204);
    /* The same sample again is a no-op (Prometheus's client resends after timeouts). */
    assert_int_equal(post_rw(f, rw, NULL), 204);

    wt_rw_reset(rw);
    wt_rw_series_s(rw, "dup{x=\"1\"}");
    wt_rw_sample(rw, T0 - 1000, 2);
    char *msg = NULL;
    assert_int_equal(post_rw(f, rw, &msg), 400);
    assert_non_null(strstr(msg, st_strerror(ST_E_DUPLICATE)));
    wf_free(msg);

    wt_rw_reset(rw);
    wt_rw_series_s(rw, "old{x=\"1\"}");
    wt_rw_sample(rw, T0 - f->o.metrics_retention_ms - 1000, 1);
    assert_int_equal(post_rw(f, rw, &msg), 400);
    assert_non_null(strstr(msg, st_strerror(ST_E_TOO_OLD)));
    wf_free(msg);
    assert_int_equal(count_series(f, "old"), 0);

    wt_rw_reset(rw);
    wt_rw_series_s(rw, "negative_ts{x=\"1\"}");
    wt_rw_sample(rw, -5, 1);
    assert_int_equal(post_rw(f, rw, &msg), 400);
    wf_free(msg);
    wt_rw_free(rw);
}

/* ---- malformed requests: 400 (or 413), nothing written ----------------------------------- */

/* A valid series that must not be written when the rest of its request is refused. */
static void add_canary(wf_buf_t *pb)
{
    wf_buf_t ts = WF_BUF_INIT, sub = WF_BUF_INIT;
    wt_pb_str(&sub, 1, "__name__");
    wt_pb_str(&sub, 2, "canary");
    wt_pb_bytes(&ts, 1, sub.data, sub.len);
    wf_buf_reset(&sub);
    wt_pb_double(&sub, 1, 1);
    wt_pb_varint(&sub, 2, (uint64_t)T0);
    wt_pb_bytes(&ts, 2, sub.data, sub.len);
    wt_pb_bytes(pb, 1, ts.data, ts.len);
    wf_buf_free(&ts);
    wf_buf_free(&sub);
}

/* A TimeSeries with the given labels (pairs, name NULL = omit the field) and one sample. */
static void add_series_raw(wf_buf_t *pb, const char *const *pairs, size_t npairs)
{
    wf_buf_t ts = WF_BUF_INIT, sub = WF_BUF_INIT;
    for (size_t i = 0; i < npairs; i++) {
        wf_buf_reset(&sub);
        if (pairs[2 * i] != NULL) {
            wt_pb_str(&sub, 1, pairs[2 * i]);
        }
        wt_pb_str(&sub, 2, pairs[2 * i + 1]);
        wt_pb_bytes(&ts, 1, sub.data, sub.len);
    }
    wf_buf_reset(&sub);
    wt_pb_double(&sub, 1, 1);
    wt_pb_varint(&sub, 2, (uint64_t)T0);
    wt_pb_bytes(&ts, 2, sub.data, sub.len);
    wt_pb_bytes(pb, 1, ts.data, ts.len);
    wf_buf_free(&ts);
    wf_buf_free(&sub);
}

static void expect_refused(fx_t *f, const wf_buf_t *pb, unsigned status, const char *needle)
{
    char *msg = NULL;
    unsigned got = post_pb(f, pb, &msg);
    if (got != status || strstr(msg, needle) == NULL) {
        fail_msg("expected %u with \"%s\", got %u: %s", status, needle, got, msg);
    }
    wf_free(msg);
    assert_int_equal(count_series(f, "canary"), 0);
}

static void test_bad_snappy(void **state)
{
    fx_t *f = *state;
    char *msg = NULL;
    assert_int_equal(post(f, "definitely not snappy", 21, &msg), 400);
    assert_non_null(strstr(msg, "snappy"));
    wf_free(msg);
    assert_int_equal(post(f, "", 0, &msg), 400);
    wf_free(msg);
    /* A valid snappy header followed by a truncated stream. */
    wf_buf_t pb = WF_BUF_INIT, body = WF_BUF_INIT;
    add_canary(&pb);
    wt_rw_snappy(pb.data, pb.len, &body);
    assert_int_equal(post(f, body.data, body.len - 3, &msg), 400);
    assert_non_null(strstr(msg, "snappy: corrupt input"));
    wf_free(msg);
    assert_int_equal(count_series(f, "canary"), 0);
    wf_buf_free(&pb);
    wf_buf_free(&body);
}

static void test_oversized(void **state)
{
    fx_t *f = *state;
    /* A snappy block announcing 64 MiB + 1 bytes: refused from the header, before any
     * allocation or decompression. */
    wf_buf_t body = WF_BUF_INIT;
    wf_buf_put_uvarint(&body, COL_RW_MAX_UNCOMPRESSED + 1);
    wf_buf_append(&body, "\x00\x01\x02", 3);
    char *msg = NULL;
    assert_int_equal(post(f, body.data, body.len, &msg), 413);
    assert_non_null(strstr(msg, "exceeds the limit"));
    wf_free(msg);
    wf_buf_free(&body);
}

static void test_too_many_samples(void **state)
{
    fx_t *f = *state;
    /* One series with COL_SSET_MAX_SAMPLES + 1 empty Sample messages (value 0 at time 0): a
     * small body that decodes into more samples than one store batch takes. */
    wf_buf_t pb = WF_BUF_INIT, ts = WF_BUF_INIT, sub = WF_BUF_INIT;
    wt_pb_str(&sub, 1, "__name__");
    wt_pb_str(&sub, 2, "many");
    wt_pb_bytes(&ts, 1, sub.data, sub.len);
    for (size_t i = 0; i <= COL_SSET_MAX_SAMPLES; i++) {
        wf_buf_putc(&ts, 0x12);
        wf_buf_putc(&ts, 0x00);
    }
    add_canary(&pb);
    wt_pb_bytes(&pb, 1, ts.data, ts.len);
    expect_refused(f, &pb, 413, "2000000 samples");
    assert_int_equal(count_series(f, "many"), 0);
    wf_buf_free(&pb);
    wf_buf_free(&ts);
    wf_buf_free(&sub);
}

static void test_truncated_protobuf(void **state)
{
    fx_t *f = *state;
    wf_buf_t pb = WF_BUF_INIT;
    /* truncated varint at the top level, after a valid series */
    add_canary(&pb);
    wf_buf_append(&pb, "\x08\xff\xff", 3);
    expect_refused(f, &pb, 400, "truncated varint");

    /* a length past the end of the message */
    wf_buf_reset(&pb);
    add_canary(&pb);
    wf_buf_append(&pb, "\x0a\x40\x0a\x02", 4);
    expect_refused(f, &pb, 400, "length past the end");

    /* a truncated varint inside a sample's timestamp */
    wf_buf_reset(&pb);
    add_canary(&pb);
    wf_buf_append(&pb, "\x0a\x07\x12\x05\x10\xff\xff\xff\xff", 9);
    expect_refused(f, &pb, 400, "protobuf: sample: truncated varint");

    /* a label whose name's length runs past the label message */
    wf_buf_reset(&pb);
    add_canary(&pb);
    wf_buf_append(&pb, "\x0a\x04\x0a\x02\x0a\x09", 6);
    expect_refused(f, &pb, 400, "label: length past the end");

    /* a deprecated group */
    wf_buf_reset(&pb);
    add_canary(&pb);
    wf_buf_append(&pb, "\x0b\x0c", 2);
    expect_refused(f, &pb, 400, "deprecated group");
    wf_buf_free(&pb);
}

static void test_wrong_wire_types(void **state)
{
    fx_t *f = *state;
    wf_buf_t pb = WF_BUF_INIT;
    /* timeseries as a varint */
    add_canary(&pb);
    wt_pb_varint(&pb, 1, 5);
    expect_refused(f, &pb, 400, "wrong wire type");
    /* a sample's value as a varint instead of a double */
    wf_buf_reset(&pb);
    add_canary(&pb);
    wf_buf_append(&pb, "\x0a\x04\x12\x02\x08\x01", 6);
    expect_refused(f, &pb, 400, "sample: wrong wire type");
    /* a label name as fixed32 */
    wf_buf_reset(&pb);
    add_canary(&pb);
    wf_buf_append(&pb, "\x0a\x07\x0a\x05\x0d\x01\x02\x03\x04", 9);
    expect_refused(f, &pb, 400, "label: wrong wire type");
    /* an exemplar as a varint */
    wf_buf_reset(&pb);
    add_canary(&pb);
    wf_buf_append(&pb, "\x0a\x02\x18\x01", 4);
    expect_refused(f, &pb, 400, "timeseries: wrong wire type");
    /* metadata type as a string */
    wf_buf_reset(&pb);
    add_canary(&pb);
    wf_buf_append(&pb, "\x1a\x03\x0a\x01x", 5);
    expect_refused(f, &pb, 400, "metadata: wrong wire type");
    wf_buf_free(&pb);
}

static void test_invalid_labels(void **state)
{
    fx_t *f = *state;
    static const struct {
        const char *pairs[6];
        size_t n;
        const char *needle;
    } cases[] = {
        {{"__name__", "m", "l", "\xff\xfe"}, 2, "invalid UTF-8 in the value of label l"},
        {{"__name__", "m", "l", "\xed\xa0\x80"}, 2, "invalid UTF-8"}, /* a surrogate */
        {{"__name__", "m", "l", "\xc0\xaf"}, 2, "invalid UTF-8"},     /* an overlong */
        {{"__name__", "m", NULL, "v"}, 2, "invalid label name \"\""},
        {{"__name__", "m", "", "v"}, 2, "invalid label name \"\""},
        {{"__name__", "m", "1abc", "v"}, 2, "invalid label name \"1abc\""},
        {{"__name__", "m", "a-b", "v"}, 2, "invalid label name \"a-b\""},
        {{"__name__", "m", "caf\xc3\xa9", "v"}, 2, "invalid label name \"caf\\xc3\\xa9\""},
        {{"__name__", "bad name"}, 1, "invalid metric name \"bad name\""},
        {{"__name__", "9lives"}, 1, "invalid metric name"},
        {{"__name__", "m", "a", "1", "a", "2"}, 3, "duplicate label name a"},
        {{"a", "1", "__name__", "m", "a", "2"}, 3, "duplicate label name a"}, /* unsorted */
        {{"a", ""}, 1, "series without labels"},
        {{NULL}, 0, "series without labels"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        wf_buf_t pb = WF_BUF_INIT;
        add_canary(&pb);
        add_series_raw(&pb, cases[i].pairs, cases[i].n);
        expect_refused(f, &pb, 400, cases[i].needle);
        wf_buf_free(&pb);
    }
    /* The index of the offending series is named. */
    wf_buf_t pb = WF_BUF_INIT;
    add_canary(&pb);
    const char *bad[] = {"__name__", "m", "l", "\xff"};
    add_series_raw(&pb, bad, 2);
    expect_refused(f, &pb, 400, "timeseries 1: ");
    wf_buf_free(&pb);
    /* A name that differs from the previous series' name at the same position is checked
     * again (the decoder skips names it has just seen). */
    wf_buf_reset(&pb);
    add_canary(&pb);
    const char *first[] = {"__name__", "m", "a_b", "1", "z", "2"};
    const char *second[] = {"__name__", "m", "a-b", "1", "z", "2"};
    add_series_raw(&pb, first, 3);
    add_series_raw(&pb, second, 3);
    expect_refused(f, &pb, 400, "timeseries 2: invalid label name \"a-b\"");
    wf_buf_free(&pb);
    /* Metric names may hold colons; label names may not. */
    wt_rw_t *rw = wt_rw_new();
    wt_rw_series_l(rw, "__name__", "job:requests:rate5m", "_under", "x", NULL);
    wt_rw_sample(rw, T0, 1);
    assert_int_equal(post_rw(f, rw, NULL), 204);
    wt_rw_reset(rw);
    wt_rw_series_l(rw, "__name__", "m", "a:b", "x", NULL);
    wt_rw_sample(rw, T0, 1);
    assert_int_equal(post_rw(f, rw, NULL), 400);
    wt_rw_free(rw);
}

static void test_invalid_metadata(void **state)
{
    fx_t *f = *state;
    wt_rw_t *rw = wt_rw_new();
    wt_rw_series_s(rw, "canary");
    wt_rw_sample(rw, T0, 1);
    wt_rw_metadata(rw, WT_RW_GAUGE, "not a name", "h", "");
    wf_buf_t pb = WF_BUF_INIT;
    wt_rw_encode(rw, &pb);
    expect_refused(f, &pb, 400, "invalid metric family name");
    wf_buf_reset(&pb);

    wt_rw_reset(rw);
    wt_rw_series_s(rw, "canary");
    wt_rw_sample(rw, T0, 1);
    wt_rw_metadata(rw, WT_RW_GAUGE, "ok_name", "bad \xff help", "");
    wt_rw_encode(rw, &pb);
    expect_refused(f, &pb, 400, "invalid UTF-8 in help");
    wf_buf_free(&pb);

    /* A metric type newer than prompb's list is recorded as unknown. */
    wt_rw_reset(rw);
    wt_rw_metadata(rw, 42, "future_type", "h", "");
    assert_int_equal(post_rw(f, rw, NULL), 204);
    st_metadata_t md;
    assert_int_equal(st_metadata_get(f->s, WF_STR_LIT("future_type"), &md), 0);
    assert_int_equal(md.type, ST_METRIC_UNKNOWN);
    wf_free(md.help);
    wf_free(md.unit);
    wt_rw_free(rw);
}

/* More samples than the store takes in one batch: 413, nothing written, and the server
 * goes on accepting requests that fit. */
static void test_store_batch_limit(void **state)
{
    fx_t *f = *state;
    wt_rw_t *rw = wt_rw_new();
    for (int i = 0; i < 11; i++) {
        char v[16];
        snprintf(v, sizeof(v), "%d", i);
        wt_rw_series_l(rw, "__name__", "big", "i", v, NULL);
        wt_rw_sample(rw, T0, i);
    }
    char *msg = NULL;
    assert_int_equal(post_rw(f, rw, &msg), 413);
    assert_non_null(strstr(msg, "store batch"));
    wf_free(msg);
    assert_int_equal(count_series(f, "big"), 0);
    wt_rw_reset(rw);
    wt_rw_series_l(rw, "__name__", "small", NULL);
    wt_rw_sample(rw, T0, 1);
    assert_int_equal(post_rw(f, rw, NULL), 204);
    assert_int_equal(count_series(f, "small"), 1);
    wt_rw_free(rw);
}

/* Many requests from several threads at once all land (group commit under the queue). */
typedef struct {
    fx_t *f;
    int id;
} worker_arg_t;

static void *concurrent_worker(void *p)
{
    worker_arg_t *a = p;
    wt_rw_t *rw = wt_rw_new();
    for (int r = 0; r < 20; r++) {
        wt_rw_reset(rw);
        char id[16];
        snprintf(id, sizeof(id), "%d", a->id);
        for (int s = 0; s < 10; s++) {
            char sname[16];
            snprintf(sname, sizeof(sname), "%d", s);
            wt_rw_series_l(rw, "__name__", "concurrent", "worker", id, "s", sname, NULL);
            wt_rw_sample(rw, T0 - 100000 + r * 1000, r);
        }
        if (post_rw(a->f, rw, NULL) != 204) {
            wt_rw_free(rw);
            return (void *)1;
        }
    }
    wt_rw_free(rw);
    return NULL;
}

static void test_concurrent_requests(void **state)
{
    fx_t *f = *state;
    pthread_t th[4];
    worker_arg_t args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (worker_arg_t){f, i};
        assert_int_equal(pthread_create(&th[i], NULL, concurrent_worker, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        assert_null(ret);
    }
    st_matcher_t *m = NULL;
    assert_int_equal(
        st_matcher_new(ST_MATCH_EQ, WF_STR_LIT("__name__"), WF_STR_LIT("concurrent"), &m, NULL, 0),
        0);
    st_series_set_t *set = NULL;
    const st_matcher_t *ms[1] = {m};
    assert_int_equal(st_select(f->s, ms, 1, 0, INT64_MAX, &set), 0);
    assert_int_equal(st_series_set_len(set), 40);
    for (size_t i = 0; i < 40; i++) {
        const int64_t *ts;
        const double *v;
        size_t n;
        assert_int_equal(st_series_set_samples(set, i, &ts, &v, &n), 0);
        assert_int_equal(n, 20);
        assert_true(v[19] == 19);
    }
    st_series_set_free(set);
    st_matcher_free(m);
}

/* A queue nobody runs, whose jobs wait at most 50 ms: a request can only be shed (503 with
 * Retry-After), and must leave nothing behind; with the queue running again it is written. */
static void test_shed_503(void **state)
{
    fx_t *f = *state;
    col_writer_thread_stop(f->thread);
    f->thread = NULL;
    col_writer_free(f->wr);
    col_writer_options_t wo = {.max_wait_ms = 50};
    assert_int_equal(col_writer_new_opts(f->s, &wo, &f->wr), 0);

    wt_rw_t *rw = wt_rw_new();
    wt_rw_series_s(rw, "shed_me{job=\"api\"}");
    wt_rw_sample(rw, T0 - 1000, 1);
    char *msg = NULL;
    assert_int_equal(post_rw(f, rw, &msg), 503);
    assert_string_equal(retry_after, "1");
    assert_non_null(strstr(msg, "overloaded"));
    wf_free(msg);
    col_writer_stats_t ws;
    col_writer_stats(f->wr, &ws);
    assert_int_equal(ws.shed_queue_wait, 1);
    assert_int_equal(count_series(f, "shed_me"), 0);

    assert_int_equal(col_writer_thread_start(f->wr, &f->thread), 0);
    assert_int_equal(post_rw(f, rw, NULL), 204);
    assert_string_equal(retry_after, "");
    assert_int_equal(count_series(f, "shed_me"), 1);
    wt_rw_free(rw);
}

/* A failed store refuses writes with ST_E_CLOSED (as during shutdown): 503 with Retry-After,
 * so that Prometheus sends the request again. */
static void test_store_closed_503(void **state)
{
    fx_t *f = *state;
    wt_rw_t *rw = wt_rw_new();
    wt_rw_series_s(rw, "closed_store{job=\"api\"}");
    wt_rw_sample(rw, T0 - 1000, 1);
    f->s->failed = 1;
    char *msg = NULL;
    assert_int_equal(post_rw(f, rw, &msg), 503);
    assert_string_equal(retry_after, "1");
    assert_non_null(strstr(msg, "retry later"));
    wf_free(msg);
    f->s->failed = 0;
    assert_int_equal(count_series(f, "closed_store"), 0);
    assert_int_equal(post_rw(f, rw, NULL), 204);
    assert_int_equal(count_series(f, "closed_store"), 1);
    wt_rw_free(rw);
}

/* ---- remote write 2.0 ------------------------------------------------------------------------ */

/* A v2 Request: symbols, then series given as packed refs with one sample each, and optional
 * metadata {type, help_ref, unit_ref}. */
static void rw2_symbols(wf_buf_t *b, const char *const *sym, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        wt_pb_str(b, 4, sym[i]);
    }
}

static void rw2_series(wf_buf_t *b, const uint32_t *refs, size_t nrefs, int64_t ts, double v,
                       const uint32_t *meta)
{
    wf_buf_t ts_msg = WF_BUF_INIT, packed = WF_BUF_INIT, sample = WF_BUF_INIT, md = WF_BUF_INIT;
    for (size_t i = 0; i < nrefs; i++) {
        wf_buf_put_uvarint(&packed, refs[i]);
    }
    wt_pb_bytes(&ts_msg, 1, packed.data, packed.len);
    wt_pb_double(&sample, 1, v);
    wt_pb_varint(&sample, 2, (uint64_t)ts);
    wt_pb_bytes(&ts_msg, 2, sample.data, sample.len);
    if (meta != NULL) {
        wt_pb_varint(&md, 1, meta[0]);
        wt_pb_varint(&md, 3, meta[1]);
        wt_pb_varint(&md, 4, meta[2]);
        wt_pb_bytes(&ts_msg, 5, md.data, md.len);
    }
    wt_pb_bytes(b, 5, ts_msg.data, ts_msg.len);
    wf_buf_free(&ts_msg);
    wf_buf_free(&packed);
    wf_buf_free(&sample);
    wf_buf_free(&md);
}

static const char *const SYM[] = {
    "",    "__name__",         "http_requests_total", "job", "api", "code",
    "200", "Requests served.", "req_seconds_bucket",  "le",  "0.5", "seconds"};

static void test_rw2_decode(void **state)
{
    (void)state;
    wf_buf_t b = WF_BUF_INIT;
    /* A series before the symbol table: the decoder reads the table first. */
    rw2_series(&b, (const uint32_t[]){1, 2, 5, 6, 3, 4}, 6, T0, 7, (const uint32_t[]){1, 7, 0});
    rw2_symbols(&b, SYM, 12);
    rw2_series(&b, (const uint32_t[]){1, 8, 9, 10}, 4, T0, 3, (const uint32_t[]){3, 0, 11});
    col_sset_t s;
    memset(&s, 0, sizeof(s));
    size_t hist = 9;
    char err[512];
    assert_int_equal(col_rw2_decode(b.data, b.len, &s, &hist, err, sizeof(err)), 0);
    assert_int_equal(hist, 0);
    assert_int_equal(s.nseries, 2);
    assert_int_equal(s.nsamples, 2);
    assert_int_equal(s.series[0].nlabels, 3);
    assert_true(wf_str_eq(s.labels[0].name, WF_STR_LIT("__name__")));
    assert_true(wf_str_eq(s.labels[0].value, WF_STR_LIT("http_requests_total")));
    assert_true(wf_str_eq(s.labels[2].value, WF_STR_LIT("api")));
    assert_true(s.ts[0] == T0 && s.v[0] == 7 && s.v[1] == 3);
    /* Metadata by family: a counter as named, a histogram's _bucket series under its family. */
    assert_int_equal(s.nmeta, 2);
    assert_true(wf_str_eq(s.meta[0].family, WF_STR_LIT("http_requests_total")));
    assert_int_equal(s.meta[0].type, ST_METRIC_COUNTER);
    assert_true(wf_str_eq(s.meta[0].help, WF_STR_LIT("Requests served.")));
    assert_true(wf_str_eq(s.meta[1].family, WF_STR_LIT("req_seconds")));
    assert_int_equal(s.meta[1].type, ST_METRIC_HISTOGRAM);
    assert_true(wf_str_eq(s.meta[1].unit, WF_STR_LIT("seconds")));
    col_sset_free(&s);
    wf_buf_free(&b);

    /* labels_refs unpacked (a field per ref), and a packed run split inside a pair: the same
     * series. */
    wf_buf_t u = WF_BUF_INIT, ts_msg = WF_BUF_INIT, sample = WF_BUF_INIT, part = WF_BUF_INIT;
    rw2_symbols(&u, SYM, 12);
    wt_pb_varint(&ts_msg, 1, 1);
    wt_pb_varint(&ts_msg, 1, 2);
    wf_buf_put_uvarint(&part, 3);
    wt_pb_bytes(&ts_msg, 1, part.data, part.len); /* the name ref of a pair... */
    wt_pb_varint(&ts_msg, 1, 4);                  /* ...and its value ref */
    wt_pb_double(&sample, 1, 1);
    wt_pb_varint(&sample, 2, (uint64_t)T0);
    wt_pb_bytes(&ts_msg, 2, sample.data, sample.len);
    wt_pb_bytes(&u, 5, ts_msg.data, ts_msg.len);
    memset(&s, 0, sizeof(s));
    assert_int_equal(col_rw2_decode(u.data, u.len, &s, &hist, err, sizeof(err)), 0);
    assert_int_equal(s.nlabels, 2);
    assert_true(wf_str_eq(s.labels[1].name, WF_STR_LIT("job")));
    assert_true(wf_str_eq(s.labels[1].value, WF_STR_LIT("api")));
    col_sset_free(&s);
    wf_buf_free(&u);
    wf_buf_free(&ts_msg);
    wf_buf_free(&sample);
    wf_buf_free(&part);
}

/* Each malformed 2.0 request is refused with a message and decodes nothing usable. */
static void test_rw2_malformed(void **state)
{
    (void)state;
    static const char *const bad_first[] = {"x", "__name__", "up"};
    static const char *const bad_utf8[] = {"", "__name__", "\xff\xfe"};
    struct {
        const char *what;
        const char *const *sym;
        size_t nsym;
        uint32_t refs[6];
        size_t nrefs;
        const char *want;
    } cases[] = {
        {"ref out of range", SYM, 12, {1, 2, 3, 99}, 4, "out of range"},
        {"odd refs", SYM, 12, {1, 2, 3}, 3, "odd number"},
        {"first symbol not empty", bad_first, 3, {1, 2}, 2, "first symbol"},
        {"symbol not UTF-8", bad_utf8, 3, {1, 2}, 2, "UTF-8"},
        {"empty name ref", SYM, 12, {0, 4, 1, 2}, 4, "label name"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        wf_buf_t b = WF_BUF_INIT;
        rw2_symbols(&b, cases[i].sym, cases[i].nsym);
        rw2_series(&b, cases[i].refs, cases[i].nrefs, T0, 1, NULL);
        col_sset_t s;
        memset(&s, 0, sizeof(s));
        size_t hist;
        char err[512] = "";
        int rc = col_rw2_decode(b.data, b.len, &s, &hist, err, sizeof(err));
        printf("%s: %d %s\n", cases[i].what, rc, err);
        assert_int_equal(rc, WF_E_INVAL);
        assert_non_null(strstr(err, cases[i].want));
        col_sset_free(&s);
        wf_buf_free(&b);
    }
    /* Metadata with the wrong wire type, and a truncated body. */
    wf_buf_t b = WF_BUF_INIT;
    rw2_symbols(&b, SYM, 12);
    wf_buf_t ts_msg = WF_BUF_INIT;
    wt_pb_varint(&ts_msg, 5, 3);
    wt_pb_bytes(&b, 5, ts_msg.data, ts_msg.len);
    col_sset_t s;
    memset(&s, 0, sizeof(s));
    size_t hist;
    char err[512] = "";
    assert_int_equal(col_rw2_decode(b.data, b.len, &s, &hist, err, sizeof(err)), WF_E_INVAL);
    col_sset_free(&s);
    memset(&s, 0, sizeof(s));
    assert_int_equal(col_rw2_decode(b.data, b.len - 1, &s, &hist, err, sizeof(err)), WF_E_INVAL);
    assert_non_null(strstr(err, "protobuf"));
    col_sset_free(&s);
    wf_buf_free(&ts_msg);
    wf_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_valid_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_marker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unsorted_and_empty_labels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_request_and_series_without_samples, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ignored_fields, setup, teardown),
        cmocka_unit_test(test_rw2_decode),
        cmocka_unit_test(test_rw2_malformed),
        cmocka_unit_test(test_encoder_roundtrip),
        cmocka_unit_test_setup_teardown(test_out_of_order_keeps_good_samples, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_and_too_old, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_snappy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_many_samples, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_protobuf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_wire_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_labels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_metadata, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_batch_limit, setup_small_batches, teardown),
        cmocka_unit_test_setup_teardown(test_shed_503, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_closed_503, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
