/*
 * test_col_rw_sender.c - the remote_write sender (col_rw_sender.h).
 *
 * The encoder is checked against the receiver's decoder (col_rw_decode): labels sorted by
 * name, empty values left out, values bit-exact (the staleness NaN, -0.0, infinities), and
 * hostile label sets (lengths on varint boundaries, 1000 labels in reverse order, values of
 * 100 KB). The sender runs against a receiver in the test: the collector's own HTTP server
 * with a handler that answers from a script (503, 429, 400, ...), decodes every body with the
 * receiver's code and records headers and samples. Samples are fed as the write queue feeds
 * them: a real store batch, the tap's stage, the commit, the tap's publish. Covered: batches
 * of at most `batch` samples and every sample exactly once and in order; the headers; 5xx and
 * 429 retried, 400 dropped; an uncommitted batch never sent; the queue dropping its oldest
 * samples; stop draining the queue, or giving up and counting what it drops; the series
 * cache's sweep; the tap installed on a real write queue.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "col_http.h"
#include "col_remote_write.h"
#include "col_rw_sender.h"
#include "col_writer.h"
#include "st_store.h"
#include "wf_alloc.h"
#include "wf_buf.h"
#include "wf_clock.h"
#include "wf_err.h"
#include "wt_util.h"

/* ---- the encoder -------------------------------------------------------------------------- */

#define L(n, v) ((st_label_t){WF_STR_LIT(n), WF_STR_LIT(v)})

static uint64_t bits(double v)
{
    uint64_t b;
    memcpy(&b, &v, 8);
    return b;
}

static double from_bits(uint64_t b)
{
    double v;
    memcpy(&v, &b, 8);
    return v;
}

/* Decode a WriteRequest body made of encoded entries; aborts the test when it is invalid. */
static void decode(const wf_buf_t *b, col_sset_t *set)
{
    char err[512] = "";
    memset(set, 0, sizeof(*set));
    int rc = col_rw_decode(b->data, b->len, set, err, sizeof(err));
    if (rc != 0) {
        fail_msg("decode: %s", err);
    }
}

static bool str_is(wf_str_t s, const char *want)
{
    return s.len == strlen(want) && memcmp(s.p, want, s.len) == 0;
}

static void test_encode_roundtrip(void **state)
{
    (void)state;
    wf_buf_t b;
    wf_buf_init(&b);
    const st_label_t l1[] = {L("__name__", "up"), L("instance", "a:1"), L("job", "j")};
    const st_label_t l2[] = {L("zeta", "z"), L("job", "j"), L("__name__", "m"), L("empty", ""),
                             L("alpha", "\xc3\xa9t\xc3\xa9")};
    uint64_t stale = 0x7ff0000000000002ULL;
    col_rw_encode_series(&b, l1, 3, 1700000000123LL, 1.5);
    col_rw_encode_series(&b, l2, 5, 0, from_bits(stale));
    col_rw_encode_series(&b, l2, 5, INT64_MAX, -0.0);
    col_rw_encode_series(&b, l1, 3, 1, -INFINITY);

    col_sset_t set;
    decode(&b, &set);
    assert_int_equal(set.nseries, 4);
    assert_int_equal(set.nsamples, 4);
    /* one sample per series, in the order encoded */
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(set.series[i].nsamples, 1);
        assert_int_equal(set.series[i].sample_off, i);
    }
    assert_int_equal(set.ts[0], 1700000000123LL);
    assert_int_equal(bits(set.v[0]), bits(1.5));
    assert_int_equal(set.ts[1], 0);
    assert_int_equal(bits(set.v[1]), stale);
    assert_int_equal(set.ts[2], INT64_MAX);
    assert_int_equal(bits(set.v[2]), bits(-0.0));
    assert_int_equal(bits(set.v[3]), bits(-INFINITY));

    /* the second series: sorted by name, the empty value left out */
    const col_sset_series_t *se = &set.series[1];
    const st_label_t *l = set.labels + se->label_off;
    assert_int_equal(se->nlabels, 4);
    assert_true(str_is(l[0].name, "__name__") && str_is(l[0].value, "m"));
    assert_true(str_is(l[1].name, "alpha") && str_is(l[1].value, "\xc3\xa9t\xc3\xa9"));
    assert_true(str_is(l[2].name, "job") && str_is(l[2].value, "j"));
    assert_true(str_is(l[3].name, "zeta") && str_is(l[3].value, "z"));
    se = &set.series[0];
    l = set.labels + se->label_off;
    assert_int_equal(se->nlabels, 3);
    assert_true(str_is(l[1].name, "instance") && str_is(l[1].value, "a:1"));
    col_sset_free(&set);
    wf_buf_free(&b);
}

/* Label sets a sender may meet: values whose lengths sit on varint boundaries, a thousand
 * labels in reverse order, values of 100 KB. */
static void test_encode_hostile(void **state)
{
    (void)state;
    static const size_t lens[] = {0, 1, 127, 128, 129, 16383, 16384, 16385, 100000};
    size_t nl = sizeof(lens) / sizeof(lens[0]);
    char *big = wf_malloc(100001);
    for (size_t i = 0; i < 100000; i++) {
        big[i] = (char)('a' + i % 26);
    }
    big[100000] = '\0';
    st_label_t *l = wf_calloc(1000, sizeof(*l));
    char(*names)[16] = wf_calloc(1000, sizeof(*names));
    wf_buf_t b;
    wf_buf_init(&b);
    for (size_t i = 0; i < nl; i++) {
        l[0] = L("__name__", "m");
        l[1] = (st_label_t){WF_STR_LIT("v"), {big, lens[i]}};
        col_rw_encode_series(&b, l, 2, (int64_t)i, (double)i);
    }
    for (size_t i = 0; i < 1000; i++) {
        snprintf(names[i], sizeof(names[i]), "l%04zu", 999 - i); /* descending */
        l[i] = (st_label_t){{names[i], 5}, {big, 1 + i % 7}};
    }
    col_rw_encode_series(&b, l, 1000, 42, 42);

    col_sset_t set;
    decode(&b, &set);
    /* the empty value leaves a series of __name__ alone */
    assert_int_equal(set.nseries, nl + 1);
    for (size_t i = 0; i < nl; i++) {
        const col_sset_series_t *se = &set.series[i];
        const st_label_t *sl = set.labels + se->label_off;
        assert_int_equal(se->nlabels, lens[i] == 0 ? 1 : 2);
        if (lens[i] > 0) {
            assert_int_equal(sl[1].value.len, lens[i]);
            assert_memory_equal(sl[1].value.p, big, lens[i]);
        }
        assert_int_equal(set.ts[se->sample_off], (int64_t)i);
    }
    const col_sset_series_t *se = &set.series[nl];
    const st_label_t *sl = set.labels + se->label_off;
    assert_int_equal(se->nlabels, 1000);
    for (size_t i = 0; i < 1000; i++) {
        char want[16];
        snprintf(want, sizeof(want), "l%04zu", i);
        assert_true(str_is(sl[i].name, want));
        /* the value travelled with its name: l%04zu was written at index 999 - i */
        assert_int_equal(sl[i].value.len, 1 + (999 - i) % 7);
    }
    col_sset_free(&set);
    wf_buf_free(&b);
    wf_free(names);
    wf_free(l);
    wf_free(big);
}

/* ---- a receiver -------------------------------------------------------------------------- */

#define MAX_SCRIPT 16

typedef struct {
    pthread_mutex_t mu;
    unsigned script[MAX_SCRIPT]; /* answers in turn; then `then` */
    size_t nscript, next;
    unsigned then;
    size_t requests, max_per_request;
    bool unsorted; /* a request held labels out of order */
    char ce[64], ct[64], ver[32], ua[64], auth[128];
    /* samples of the accepted requests: "m{i=\"3\"}" and its timestamp and value */
    char (*name)[64];
    int64_t *ts;
    double *v;
    size_t n, cap;
} recv_t;

static void copy_header(const col_req_t *req, const char *name, char *out, size_t len)
{
    const char *v = col_req_header(req, name);
    snprintf(out, len, "%s", v != NULL ? v : "");
}

static void recv_handler(void *arg, col_req_t *req, col_resp_t *resp)
{
    recv_t *r = arg;
    uint8_t *pb = NULL;
    size_t pb_len = 0;
    col_sset_t set;
    memset(&set, 0, sizeof(set));
    char err[512];
    pthread_mutex_lock(&r->mu);
    unsigned status = r->next < r->nscript ? r->script[r->next++] : r->then;
    r->requests++;
    copy_header(req, "Content-Encoding", r->ce, sizeof(r->ce));
    copy_header(req, "Content-Type", r->ct, sizeof(r->ct));
    copy_header(req, "X-Prometheus-Remote-Write-Version", r->ver, sizeof(r->ver));
    copy_header(req, "User-Agent", r->ua, sizeof(r->ua));
    copy_header(req, "Authorization", r->auth, sizeof(r->auth));
    if (col_rw_uncompress(req->body, req->body_len, COL_RW_MAX_UNCOMPRESSED, &pb, &pb_len, err,
                          sizeof(err)) != 0 ||
        col_rw_decode(pb, pb_len, &set, err, sizeof(err)) != 0) {
        status = 599; /* fails the test: the sender never sees this from a good receiver */
        goto out;
    }
    if (set.nsamples > r->max_per_request) {
        r->max_per_request = set.nsamples;
    }
    if (status / 100 != 2) {
        goto out;
    }
    for (size_t i = 0; i < set.nseries; i++) {
        const col_sset_series_t *se = &set.series[i];
        const st_label_t *l = set.labels + se->label_off;
        char text[64] = "", *p = text;
        for (size_t j = 0; j < se->nlabels; j++) {
            if (j > 0 && wf_str_cmp(l[j - 1].name, l[j].name) >= 0) {
                r->unsorted = true;
            }
            p += snprintf(p, sizeof(text) - (size_t)(p - text), "%s%.*s=%.*s", j ? "," : "",
                          (int)l[j].name.len, l[j].name.p, (int)l[j].value.len, l[j].value.p);
        }
        for (size_t k = se->sample_off; k < se->sample_off + se->nsamples; k++) {
            if (r->n == r->cap) {
                r->cap = r->cap ? r->cap * 2 : 1024;
                r->name = wf_realloc(r->name, r->cap * sizeof(*r->name));
                r->ts = wf_realloc(r->ts, r->cap * sizeof(*r->ts));
                r->v = wf_realloc(r->v, r->cap * sizeof(*r->v));
            }
            snprintf(r->name[r->n], sizeof(r->name[0]), "%s", text);
            r->ts[r->n] = set.ts[k];
            r->v[r->n] = set.v[k];
            r->n++;
        }
    }
out:
    pthread_mutex_unlock(&r->mu);
    col_sset_free(&set);
    wf_free(pb);
    if (status / 100 == 2) {
        resp->status = status;
    } else {
        col_resp_text(resp, status, "scripted answer %u", status);
    }
}

typedef struct {
    char *dir;
    st_store_t *store;
    col_http_t *http;
    recv_t r;
    int port;
    char url[64];
    col_rw_sender_t *s;
    col_writer_tap_t tap;
    int64_t t0;
} fx_t;

static int setup(void **state)
{
    fx_t *f = wf_calloc(1, sizeof(*f));
    f->dir = wt_tmpdir("col_rw_sender");
    st_options_t o;
    st_options_default(&o);
    o.dir = f->dir;
    assert_int_equal(st_store_open(&o, &f->store), 0);
    pthread_mutex_init(&f->r.mu, NULL);
    f->r.then = 204;
    col_http_options_t ho = {.threads = 2};
    assert_int_equal(col_http_new(&ho, &f->http), 0);
    assert_int_equal(
        col_http_route(f->http, "POST", "/api/v1/write", false, 64 << 20, recv_handler, &f->r), 0);
    for (int tries = 0;; tries++) {
        f->port = wt_free_port();
        char addr[32];
        snprintf(addr, sizeof(addr), "127.0.0.1:%d", f->port);
        if (col_http_listen(f->http, addr) == 0) {
            break;
        }
        assert_true(tries < 10);
    }
    snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d/api/v1/write", f->port);
    f->t0 = wf_wall_ms() - 60000;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    col_rw_sender_free(f->s);
    col_http_free(f->http);
    st_store_close(f->store);
    wt_rm_rf(f->dir);
    wf_free(f->dir);
    wf_free(f->r.name);
    wf_free(f->r.ts);
    wf_free(f->r.v);
    pthread_mutex_destroy(&f->r.mu);
    wf_free(f);
    return 0;
}

static void start(fx_t *f, col_rw_sender_options_t o)
{
    char err[256] = "";
    if (o.url == NULL) {
        o.url = f->url;
    }
    o.min_backoff_ms = o.min_backoff_ms ? o.min_backoff_ms : 5;
    o.max_backoff_ms = o.max_backoff_ms ? o.max_backoff_ms : 20;
    int rc = col_rw_sender_new(&o, &f->s, err, sizeof(err));
    if (rc != 0) {
        fail_msg("col_rw_sender_new: %s", err);
    }
    col_rw_sender_tap(f->s, &f->tap);
}

/* One store batch of n samples over `series` series m{i="k"}, sample j at t0 + j (series j %
 * series, value j), through the tap as the write queue does; committed or aborted. */
static void feed(fx_t *f, size_t from, size_t n, size_t series, bool commit)
{
    st_batch_t *b = NULL;
    assert_int_equal(st_batch_begin(f->store, &b), 0);
    for (size_t j = from; j < from + n; j++) {
        char iv[16];
        snprintf(iv, sizeof(iv), "%zu", j % series);
        st_label_t l[2] = {{WF_STR_LIT("i"), wf_str(iv)}, L("__name__", "m")};
        assert_int_equal(st_batch_add(b, l, 2, f->t0 + (int64_t)j, (double)j), 0);
    }
    f->tap.stage(f->tap.arg, b);
    if (commit) {
        assert_int_equal(st_batch_commit(b), 0);
    } else {
        st_batch_abort(b);
    }
    f->tap.publish(f->tap.arg, commit);
}

/* Wait (bounded) until the sender has settled `total` samples (sent or dropped). */
static col_rw_sender_stats_t wait_settled(fx_t *f, uint64_t total)
{
    col_rw_sender_stats_t st;
    for (int i = 0; i < 3000; i++) {
        col_rw_sender_stats(f->s, &st);
        uint64_t done =
            st.samples_sent + st.dropped_queue_full + st.dropped_rejected + st.dropped_shutdown;
        if (done >= total && st.pending == 0) {
            break;
        }
        usleep(10000);
    }
    return st;
}

/* The receiver holds samples from..from+n-1 of feed(), exactly once, in order. */
static void assert_received(fx_t *f, size_t at, size_t from, size_t n, size_t series)
{
    pthread_mutex_lock(&f->r.mu);
    assert_true(f->r.n >= at + n);
    for (size_t k = 0; k < n; k++) {
        size_t j = from + k;
        char want[64];
        snprintf(want, sizeof(want), "__name__=m,i=%zu", j % series);
        assert_string_equal(f->r.name[at + k], want);
        assert_int_equal(f->r.ts[at + k], f->t0 + (int64_t)j);
        assert_true(f->r.v[at + k] == (double)j);
    }
    pthread_mutex_unlock(&f->r.mu);
}

static void test_batches_and_headers(void **state)
{
    fx_t *f = *state;
    start(f, (col_rw_sender_options_t){.batch = 100, .flush_ms = 20, .bearer_token = "s3cret"});
    feed(f, 0, 500, 7, true);
    feed(f, 500, 500, 7, true);
    feed(f, 1000, 50, 7, true);
    col_rw_sender_stats_t st = wait_settled(f, 1050);
    assert_int_equal(st.samples_sent, 1050);
    assert_int_equal(st.pending, 0);
    assert_int_equal(st.retries, 0);
    assert_int_equal(st.dropped_queue_full + st.dropped_rejected + st.dropped_shutdown, 0);
    assert_int_equal(f->r.n, 1050);
    assert_received(f, 0, 0, 1050, 7);
    assert_true(f->r.max_per_request <= 100);
    assert_true(f->r.requests >= 11);
    assert_int_equal(st.requests, f->r.requests);
    assert_false(f->r.unsorted);
    assert_string_equal(f->r.ce, "snappy");
    assert_string_equal(f->r.ct, "application/x-protobuf");
    assert_string_equal(f->r.ver, "0.1.0");
    assert_string_equal(f->r.ua, "weft/" WEFT_VERSION);
    assert_string_equal(f->r.auth, "Bearer s3cret");
}

static void test_retry_5xx_and_429(void **state)
{
    fx_t *f = *state;
    f->r.script[0] = 503;
    f->r.script[1] = 429;
    f->r.script[2] = 500;
    f->r.nscript = 3;
    start(f, (col_rw_sender_options_t){.batch = 1000, .flush_ms = 10});
    feed(f, 0, 30, 3, true);
    col_rw_sender_stats_t st = wait_settled(f, 30);
    assert_int_equal(st.samples_sent, 30);
    assert_int_equal(st.retries, 3);
    assert_int_equal(st.requests, 4);
    assert_int_equal(st.dropped_rejected, 0);
    assert_int_equal(f->r.n, 30);
    assert_received(f, 0, 0, 30, 3);

    wf_buf_t m;
    wf_buf_init(&m);
    col_rw_sender_write_metrics(f->s, &m);
    const char *text = wf_buf_cstr(&m);
    assert_non_null(strstr(text, "\nweft_remote_write_samples_sent_total 30\n"));
    assert_non_null(strstr(text, "\nweft_remote_write_retries_total 3\n"));
    assert_non_null(strstr(text, "\nweft_remote_write_requests_total{code=\"503\"} 1\n"));
    assert_non_null(strstr(text, "\nweft_remote_write_requests_total{code=\"429\"} 1\n"));
    assert_non_null(strstr(text, "\nweft_remote_write_requests_total{code=\"204\"} 1\n"));
    assert_non_null(
        strstr(text, "\nweft_remote_write_samples_dropped_total{reason=\"queue_full\"} 0\n"));
    assert_non_null(strstr(text, "\nweft_remote_write_samples_pending 0\n"));
    wf_buf_free(&m);
}

static void test_4xx_dropped(void **state)
{
    fx_t *f = *state;
    f->r.script[0] = 400;
    f->r.nscript = 1;
    start(f, (col_rw_sender_options_t){.batch = 1000, .flush_ms = 10});
    feed(f, 0, 10, 2, true);
    col_rw_sender_stats_t st = wait_settled(f, 10);
    assert_int_equal(st.dropped_rejected, 10);
    assert_int_equal(st.samples_sent, 0);
    assert_int_equal(st.retries, 0);
    feed(f, 10, 5, 2, true);
    st = wait_settled(f, 15);
    assert_int_equal(st.samples_sent, 5);
    assert_int_equal(f->r.n, 5);
    assert_received(f, 0, 10, 5, 2);
}

static void test_uncommitted_not_sent(void **state)
{
    fx_t *f = *state;
    start(f, (col_rw_sender_options_t){.batch = 1000, .flush_ms = 10});
    feed(f, 0, 20, 4, false);
    feed(f, 0, 8, 4, true);
    col_rw_sender_stats_t st = wait_settled(f, 8);
    assert_int_equal(st.samples_sent, 8);
    assert_int_equal(f->r.n, 8);
    assert_received(f, 0, 0, 8, 4);
}

/*
 * The queue keeps the newest samples. With a flush interval of an hour, the sender only wakes
 * when a full batch waits, so the queue's content is known when it trims: 90 + 90 + 90 in a
 * queue of 200 drops the first chunk's oldest 70.
 */
static void test_queue_drops_oldest(void **state)
{
    fx_t *f = *state;
    start(f, (col_rw_sender_options_t){.batch = 200, .queue = 200, .flush_ms = 3600000});
    feed(f, 0, 90, 5, true);
    feed(f, 90, 90, 5, true);
    feed(f, 180, 90, 5, true);
    col_rw_sender_stats_t st = wait_settled(f, 270);
    assert_int_equal(st.dropped_queue_full, 70);
    assert_int_equal(st.samples_sent, 200);
    assert_int_equal(f->r.n, 200);
    assert_received(f, 0, 70, 200, 5);
}

/* One batch larger than the whole queue keeps its newest samples (trimmed while staging). */
static void test_big_batch_trimmed(void **state)
{
    fx_t *f = *state;
    f->r.script[0] = 503;
    f->r.nscript = 1;
    start(f, (col_rw_sender_options_t){.batch = 100, .queue = 100, .flush_ms = 10});
    feed(f, 0, 1000, 13, true);
    col_rw_sender_stats_t st = wait_settled(f, 1000);
    assert_int_equal(st.dropped_queue_full, 900);
    assert_int_equal(st.samples_sent, 100);
    assert_int_equal(st.retries, 1);
    assert_received(f, 0, 900, 100, 13);
}

static void test_stop_drains(void **state)
{
    fx_t *f = *state;
    /* an hour's flush interval: only stop sends these */
    start(f, (col_rw_sender_options_t){.batch = 1000, .flush_ms = 3600000});
    feed(f, 0, 10, 2, true);
    col_rw_sender_stats_t st;
    col_rw_sender_stats(f->s, &st);
    assert_int_equal(st.pending, 10);
    assert_int_equal(f->r.requests, 0);
    col_rw_sender_stop(f->s, 30000);
    col_rw_sender_stats(f->s, &st);
    assert_int_equal(st.samples_sent, 10);
    assert_int_equal(st.dropped_shutdown, 0);
    assert_int_equal(st.pending, 0);
    assert_received(f, 0, 0, 10, 2);
    /* a batch committed after the stop is counted, not queued */
    feed(f, 10, 3, 2, true);
    col_rw_sender_stats(f->s, &st);
    assert_int_equal(st.dropped_shutdown, 3);
    assert_int_equal(st.pending, 0);
}

static void test_stop_gives_up(void **state)
{
    fx_t *f = *state;
    f->r.then = 503;
    start(f, (col_rw_sender_options_t){.batch = 4, .flush_ms = 10});
    feed(f, 0, 10, 2, true);
    /* wait until it has failed at least once */
    col_rw_sender_stats_t st;
    for (int i = 0; i < 3000; i++) {
        col_rw_sender_stats(f->s, &st);
        if (st.retries > 0) {
            break;
        }
        usleep(10000);
    }
    assert_true(st.retries > 0);
    col_rw_sender_stop(f->s, 100);
    col_rw_sender_stats(f->s, &st);
    assert_int_equal(st.samples_sent, 0);
    assert_int_equal(st.dropped_shutdown, 10);
    assert_int_equal(st.pending, 0);
    assert_int_equal(f->r.n, 0);
}

/* Nobody listens: transport errors are retried and counted as code="error". */
static void test_unreachable(void **state)
{
    fx_t *f = *state;
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/v1/write", wt_free_port());
    start(f, (col_rw_sender_options_t){.url = url, .batch = 10, .flush_ms = 10});
    feed(f, 0, 5, 1, true);
    col_rw_sender_stats_t st;
    for (int i = 0; i < 3000; i++) {
        col_rw_sender_stats(f->s, &st);
        if (st.retries >= 2) {
            break;
        }
        usleep(10000);
    }
    assert_true(st.retries >= 2);
    assert_int_equal(st.requests_failed, st.requests);
    assert_int_equal(st.pending, 5);
    wf_buf_t m;
    wf_buf_init(&m);
    col_rw_sender_write_metrics(f->s, &m);
    assert_non_null(strstr(wf_buf_cstr(&m), "weft_remote_write_requests_total{code=\"error\"} "));
    wf_buf_free(&m);
    col_rw_sender_stop(f->s, 0);
    col_rw_sender_stats(f->s, &st);
    assert_int_equal(st.dropped_shutdown, 5);
}

/*
 * The series cache frees the labels of series no queued sample refers to (ASan checks that no
 * sample reads them afterwards) once it has grown past its sweep size. How many of a batch's
 * series the sender has already released when the writer sweeps is a race, so the counts are
 * bounds: after the second batch the cache holds at most its 5000 series, which it can only
 * if the first batch's were freed.
 */
static void test_series_cache_sweep(void **state)
{
    fx_t *f = *state;
    start(f, (col_rw_sender_options_t){.batch = 1000, .flush_ms = 10});
    feed(f, 0, 5000, 1000000, true);
    col_rw_sender_stats_t st = wait_settled(f, 5000);
    assert_int_equal(st.samples_sent, 5000);
    assert_true(st.series_cached <= 5000);
    feed(f, 5000, 5000, 1000000, true);
    st = wait_settled(f, 10000);
    assert_int_equal(st.samples_sent, 10000);
    assert_true(st.series_cached <= 5000);
    /* the first batch's series again (i = 0..2999): entries made anew from the store */
    feed(f, 10000, 3000, 10000, true);
    st = wait_settled(f, 13000);
    assert_int_equal(st.samples_sent, 13000);
    assert_int_equal(f->r.n, 13000);
    assert_received(f, 0, 0, 10000, 1000000);
    assert_received(f, 10000, 10000, 3000, 10000);
}

/* ---- on a real write queue ---------------------------------------------------------------- */

typedef struct {
    int64_t t0;
    int fail;
} job_t;

static int fill(col_write_t *w, st_batch_t *b)
{
    const job_t *j = w->arg;
    for (int k = 0; k < 3; k++) {
        st_label_t l[2] = {L("__name__", "w"), L("k", "v")};
        if (st_batch_add(b, l, 2, j->t0 + k, k) == 0) {
            w->accepted++;
        }
    }
    return j->fail;
}

static void test_writer_tap(void **state)
{
    fx_t *f = *state;
    start(f, (col_rw_sender_options_t){.batch = 1000, .flush_ms = 10});
    col_writer_t *wr = NULL;
    col_writer_thread_t *th = NULL;
    assert_int_equal(col_writer_new(f->store, &wr), 0);
    col_writer_set_tap(wr, &f->tap);
    assert_int_equal(col_writer_thread_start(wr, &th), 0);
    job_t bad = {.t0 = f->t0, .fail = -EIO}, good = {.t0 = f->t0 + 10, .fail = 0};
    col_write_t w;
    memset(&w, 0, sizeof(w));
    w.fill = fill;
    w.arg = &bad;
    w.est_samples = 3;
    w.est_bytes = 100;
    assert_int_equal(col_writer_submit(wr, &w), -EIO);
    w.arg = &good;
    assert_int_equal(col_writer_submit(wr, &w), 0);
    col_writer_thread_stop(th);
    col_writer_free(wr);
    col_rw_sender_stats_t st = wait_settled(f, 3);
    assert_int_equal(st.samples_sent, 3);
    pthread_mutex_lock(&f->r.mu);
    assert_int_equal(f->r.n, 3);
    for (int k = 0; k < 3; k++) {
        assert_string_equal(f->r.name[k], "__name__=w,k=v");
        assert_int_equal(f->r.ts[k], f->t0 + 10 + k);
    }
    pthread_mutex_unlock(&f->r.mu);
}

static void test_bad_options(void **state)
{
    (void)state;
    col_rw_sender_t *s = NULL;
    char err[256];
    col_rw_sender_options_t o = {.url = "ftp://x/"};
    assert_int_equal(col_rw_sender_new(&o, &s, err, sizeof(err)), WF_E_INVAL);
    assert_null(s);
    assert_non_null(strstr(err, "http://"));
    o.url = NULL;
    assert_int_equal(col_rw_sender_new(&o, &s, err, sizeof(err)), WF_E_INVAL);
    o.url = "http://127.0.0.1:1/api/v1/write";
    o.flush_ms = -1;
    assert_int_equal(col_rw_sender_new(&o, &s, err, sizeof(err)), WF_E_INVAL);
    col_rw_sender_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_roundtrip),
        cmocka_unit_test(test_encode_hostile),
        cmocka_unit_test_setup_teardown(test_batches_and_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_5xx_and_429, setup, teardown),
        cmocka_unit_test_setup_teardown(test_4xx_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_uncommitted_not_sent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_drops_oldest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_batch_trimmed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_drains, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_gives_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreachable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_series_cache_sweep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_tap, setup, teardown),
        cmocka_unit_test(test_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
