/*
 * test_col_scrape.c - the scrape manager, the text import endpoint and /federate, over a real
 * store and write queue, against a target served by libmicrohttpd inside the test.
 *
 * Scrape: samples with the target's labels and the scrape's timestamp, exported_ renaming (and
 * honor_labels), the report series, staleness markers when a series disappears, when a scrape
 * fails (up 0) and when the target leaves discovery; explicit timestamps kept (and no markers
 * for them); the request headers Prometheus sends; gzip; timeouts, bad status, body limit and
 * parse errors; http_sd; /api/v1/targets. Import: 204, timestamps, extra_label, 400 with the
 * line on a parse error and nothing written. Federate: the latest non-stale sample of each
 * selected series in Prometheus's layout, 400 on a bad selector.
 */
#include "col_federate.h"
#include "col_http.h"
#include "col_import.h"
#include "col_scrape.h"
#include "col_writer.h"
#include "wf_alloc.h"
#include "wf_clock.h"
#include "wf_err.h"
#include "wt_util.h"

#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

/* ---- The target: an exposition that the test changes between scrapes ---------------------- */

typedef struct {
    pthread_mutex_t mu;
    char body[8192];
    char ctype[128];
    unsigned status;
    int delay_ms;
    bool gzip;
    char sd[4096]; /* served at /sd */
    unsigned sd_status;
    /* what the last scrape request carried */
    char accept[512];
    char timeout_hdr[64];
    char accept_encoding[64];
    int requests;
    struct MHD_Daemon *d;
    int port;
} target_srv_t;

static enum MHD_Result srv_cb(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_len, void **con_cls)
{
    target_srv_t *t = cls;
    pthread_mutex_lock(&t->mu);
    bool sd = strcmp(url, "/sd") == 0;
    char *body = wf_strdup(sd ? t->sd : t->body);
    unsigned status = sd ? t->sd_status : t->status;
    int delay = sd ? 0 : t->delay_ms;
    bool gz = !sd && t->gzip;
    char ctype[128];
    snprintf(ctype, sizeof(ctype), "%s", sd ? "application/json" : t->ctype);
    if (!sd) {
        const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept");
        snprintf(t->accept, sizeof(t->accept), "%s", h ? h : "");
        h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Prometheus-Scrape-Timeout-Seconds");
        snprintf(t->timeout_hdr, sizeof(t->timeout_hdr), "%s", h ? h : "");
        h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept-Encoding");
        snprintf(t->accept_encoding, sizeof(t->accept_encoding), "%s", h ? h : "");
        t->requests++;
    }
    pthread_mutex_unlock(&t->mu);
    if (delay > 0) {
        usleep((useconds_t)delay * 1000);
    }
    size_t len = strlen(body);
    void *data = body;
    if (gz) {
        /* gzip wrapper (windowBits 31) around the body. */
        z_stream z;
        memset(&z, 0, sizeof(z));
        deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY);
        uLong cap = deflateBound(&z, (uLong)len) + 32;
        unsigned char *out = wf_malloc(cap);
        z.next_in = (unsigned char *)body;
        z.avail_in = (uInt)len;
        z.next_out = out;
        z.avail_out = (uInt)cap;
        deflate(&z, Z_FINISH);
        len = z.total_out;
        deflateEnd(&z);
        wf_free(body);
        data = out;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", ctype);
    if (gz) {
        MHD_add_response_header(r, "Content-Encoding", "gzip");
    }
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static void srv_start(target_srv_t *t)
{
    memset(t, 0, sizeof(*t));
    pthread_mutex_init(&t->mu, NULL);
    t->status = 200;
    t->sd_status = 200;
    snprintf(t->ctype, sizeof(t->ctype), "text/plain; version=0.0.4");
    t->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0,
                            NULL, NULL, srv_cb, t, MHD_OPTION_SOCK_ADDR, NULL, MHD_OPTION_END);
    assert_non_null(t->d);
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(t->d, MHD_DAEMON_INFO_BIND_PORT);
    t->port = i->port;
}

static void srv_set(target_srv_t *t, const char *body)
{
    pthread_mutex_lock(&t->mu);
    snprintf(t->body, sizeof(t->body), "%s", body);
    pthread_mutex_unlock(&t->mu);
}

static void srv_stop(target_srv_t *t)
{
    MHD_stop_daemon(t->d);
    pthread_mutex_destroy(&t->mu);
}

/* ---- Fixture: store, write queue, HTTP server with import and federate -------------------- */

typedef struct {
    char *dir;
    st_store_t *store;
    col_writer_t *wr;
    col_writer_thread_t *th;
    target_srv_t srv;
    col_http_t *http;
    int http_port;
    char sd_path[512];
} fix_t;

static int setup(void **state)
{
    fix_t *f = wf_calloc(1, sizeof(*f));
    f->dir = wt_tmpdir("colscrape");
    st_options_t o;
    st_options_default(&o);
    o.dir = f->dir;
    assert_int_equal(st_store_open(&o, &f->store), 0);
    assert_int_equal(col_writer_new(f->store, &f->wr), 0);
    assert_int_equal(col_writer_thread_start(f->wr, &f->th), 0);
    srv_start(&f->srv);
    snprintf(f->sd_path, sizeof(f->sd_path), "%s/targets.json", f->dir);

    col_http_options_t ho = {.threads = 2, .conn_limit = 64, .conn_timeout_s = 10};
    assert_int_equal(col_http_new(&ho, &f->http), 0);
    assert_int_equal(col_http_route(f->http, "POST", "/api/v1/import/prometheus", false, 1 << 20,
                                    col_import_handler, f->wr),
                     0);
    assert_int_equal(
        col_http_route(f->http, "GET", "/federate", false, 0, col_federate_handler, f->store), 0);
    f->http_port = wt_free_port();
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", f->http_port);
    assert_int_equal(col_http_listen(f->http, addr), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fix_t *f = *state;
    col_http_free(f->http);
    srv_stop(&f->srv);
    col_writer_thread_stop(f->th);
    col_writer_free(f->wr);
    st_store_close(f->store);
    wt_rm_rf(f->dir);
    wf_free(f->dir);
    wf_free(f);
    return 0;
}

/* ---- Reading the store back --------------------------------------------------------------- */

typedef struct {
    size_t n;    /* samples */
    double last; /* last value */
    int64_t last_ts;
    double prev; /* the one before */
    double sum;  /* of every value (NaN excluded) */
    size_t nseries;
} series_t;

static bool is_stale(double v)
{
    uint64_t b;
    memcpy(&b, &v, 8);
    return b == 0x7ff0000000000002ULL;
}

/* Samples of the series matching name and optional label=value pairs (NULL-terminated). */
static series_t get(fix_t *f, const char *name, ...)
{
    st_matcher_t *m[8];
    size_t nm = 0;
    assert_int_equal(
        st_matcher_new(ST_MATCH_EQ, WF_STR_LIT("__name__"), wf_str(name), &m[nm++], NULL, 0), 0);
    va_list ap;
    va_start(ap, name);
    const char *k;
    while ((k = va_arg(ap, const char *)) != NULL) {
        const char *v = va_arg(ap, const char *);
        assert_int_equal(st_matcher_new(ST_MATCH_EQ, wf_str(k), wf_str(v), &m[nm++], NULL, 0), 0);
    }
    va_end(ap);
    st_series_set_t *set = NULL;
    assert_int_equal(st_select(f->store, (const st_matcher_t *const *)m, nm, 0, INT64_MAX, &set),
                     0);
    series_t r = {0};
    r.nseries = st_series_set_len(set);
    if (r.nseries == 1) {
        const int64_t *ts;
        const double *v;
        assert_int_equal(st_series_set_samples(set, 0, &ts, &v, &r.n), 0);
        if (r.n > 0) {
            r.last = v[r.n - 1];
            r.last_ts = ts[r.n - 1];
        }
        if (r.n > 1) {
            r.prev = v[r.n - 2];
        }
        for (size_t i = 0; i < r.n; i++) {
            r.sum += isnan(v[i]) ? 0 : v[i];
        }
    }
    st_series_set_free(set);
    for (size_t i = 0; i < nm; i++) {
        st_matcher_free(m[i]);
    }
    return r;
}

static uint64_t scrapes(col_scrape_t *s)
{
    col_scrape_stats_t st;
    col_scrape_stats(s, &st);
    return st.scrapes;
}

/* Wait until the manager finished `more` scrapes beyond now (10 s at most). */
static void wait_scrapes(col_scrape_t *s, uint64_t more)
{
    uint64_t want = scrapes(s) + more;
    for (int i = 0; i < 1000 && scrapes(s) < want; i++) {
        usleep(10000);
    }
    assert_true(scrapes(s) >= want);
}

static col_scrape_t *start(fix_t *f, bool honor, const char *labels_json)
{
    char doc[1024];
    snprintf(doc, sizeof(doc), "[{\"targets\":[\"127.0.0.1:%d\"],\"labels\":{%s}}]", f->srv.port,
             labels_json);
    wt_write_file(f->sd_path, doc);
    col_scrape_options_t o;
    col_scrape_options_default(&o);
    o.sd_file = f->sd_path;
    o.interval_ms = 300;
    o.timeout_ms = 300;
    o.file_check_ms = 50;
    o.job = "testjob";
    o.honor_labels = honor;
    col_scrape_t *s = NULL;
    assert_int_equal(col_scrape_new(&o, f->wr, &s), 0);
    return s;
}

static void test_scrape_lifecycle(void **state)
{
    fix_t *f = *state;
    char inst[64];
    snprintf(inst, sizeof(inst), "127.0.0.1:%d", f->srv.port);
    int64_t d_ts = wf_wall_ms() - 60000;
    char body[512];
    snprintf(body, sizeof(body),
             "# TYPE a_total counter\n"
             "a_total{x=\"1\"} 1\n"
             "b 2\n"
             "c{job=\"inner\",instance=\"i\",exported_job=\"taken\"} 3\n"
             "d 4 %lld\n",
             (long long)d_ts);
    srv_set(&f->srv, body);
    col_scrape_t *s = start(f, false, "\"team\":\"t1\"");
    wait_scrapes(s, 2);

    /* Headers as Prometheus 2.42 sends them. */
    pthread_mutex_lock(&f->srv.mu);
    assert_string_equal(f->srv.accept,
                        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                        "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1");
    assert_string_equal(f->srv.timeout_hdr, "0.3");
    assert_non_null(strstr(f->srv.accept_encoding, "gzip"));
    pthread_mutex_unlock(&f->srv.mu);

    series_t a =
        get(f, "a_total", "job", "testjob", "instance", inst, "team", "t1", "x", "1", NULL);
    assert_int_equal(a.nseries, 1);
    assert_true(a.n >= 2);
    assert_true(a.last == 1);
    /* Every sample of a scrape has the scrape's time; up has the same timestamp. */
    series_t up = get(f, "up", "job", "testjob", "instance", inst, NULL);
    assert_int_equal(up.nseries, 1);
    assert_true(up.last == 1);
    int64_t now = wf_wall_ms();
    assert_true(up.last_ts <= now && up.last_ts > now - 5000);

    /* Conflicts: job and instance move to exported_*, exported_job is taken, so
     * exported_exported_job; the target's values win. */
    series_t c = get(f, "c", "job", "testjob", "instance", inst, "exported_instance", "i",
                     "exported_exported_job", "inner", "exported_job", "taken", NULL);
    assert_int_equal(c.nseries, 1);
    assert_true(c.last == 3);
    /* An explicit timestamp is kept. */
    series_t d = get(f, "d", NULL);
    assert_int_equal(d.nseries, 1);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.last_ts, d_ts);

    assert_true(get(f, "scrape_samples_scraped", "instance", inst, NULL).last == 4);
    assert_true(get(f, "scrape_samples_post_metric_relabeling", "instance", inst, NULL).last == 4);
    /* The first scrape added 4 series, the later ones none. */
    series_t added = get(f, "scrape_series_added", "instance", inst, NULL);
    assert_true(added.last == 0);
    assert_true(get(f, "scrape_duration_seconds", NULL).last > 0);

    /* b disappears: one staleness marker, then nothing. */
    srv_set(&f->srv, "a_total{x=\"1\"} 5\nc{job=\"inner\",instance=\"i\",exported_job=\"taken\"} "
                     "3\n");
    wait_scrapes(s, 2);
    series_t b = get(f, "b", NULL);
    assert_true(is_stale(b.last));
    assert_true(b.prev == 2);
    size_t bn = b.n;
    /* d had its own timestamp: no marker. */
    assert_int_equal(get(f, "d", NULL).n, 1);
    assert_true(get(f, "a_total", NULL).last == 5);
    assert_true(get(f, "scrape_samples_scraped", NULL).last == 2);
    wait_scrapes(s, 1);
    assert_int_equal(get(f, "b", NULL).n, bn);

    /* A failing target: up 0 and every series stale. */
    pthread_mutex_lock(&f->srv.mu);
    f->srv.status = 503;
    pthread_mutex_unlock(&f->srv.mu);
    wait_scrapes(s, 2);
    up = get(f, "up", NULL);
    assert_true(up.last == 0);
    assert_true(is_stale(get(f, "a_total", NULL).last));
    assert_true(is_stale(get(f, "c", NULL).last));
    assert_true(get(f, "scrape_samples_scraped", NULL).last == 0);

    /* /api/v1/targets shows it down with Prometheus's error text. */
    col_req_t req;
    memset(&req, 0, sizeof(req));
    wf_arena_t arena;
    wf_arena_init(&arena, 4096, 0);
    req.arena = &arena;
    req.method = "GET";
    req.path = "/api/v1/targets";
    col_resp_t resp;
    memset(&resp, 0, sizeof(resp));
    col_scrape_targets_handler(s, &req, &resp);
    json_error_t je;
    json_t *doc = json_loadb((const char *)resp.body.data, resp.body.len, 0, &je);
    assert_non_null(doc);
    json_t *t0 = json_array_get(json_object_get(json_object_get(doc, "data"), "activeTargets"), 0);
    assert_non_null(t0);
    assert_string_equal(json_string_value(json_object_get(t0, "health")), "down");
    assert_string_equal(json_string_value(json_object_get(t0, "lastError")),
                        "server returned HTTP status 503");
    assert_string_equal(json_string_value(json_object_get(json_object_get(t0, "labels"), "job")),
                        "testjob");
    assert_string_equal(json_string_value(json_object_get(json_object_get(t0, "discoveredLabels"),
                                                          "__metrics_path__")),
                        "/metrics");
    char url[128];
    snprintf(url, sizeof(url), "http://%s/metrics", inst);
    assert_string_equal(json_string_value(json_object_get(t0, "scrapeUrl")), url);
    assert_string_equal(json_string_value(json_object_get(t0, "scrapeInterval")), "300ms");
    assert_string_equal(json_string_value(json_object_get(t0, "scrapePool")), "testjob");
    assert_int_equal(
        json_array_size(json_object_get(json_object_get(doc, "data"), "droppedTargets")), 0);
    json_decref(doc);
    wf_buf_free(&resp.body);

    /* Recovery, then the target leaves discovery: up and its series get markers later. */
    pthread_mutex_lock(&f->srv.mu);
    f->srv.status = 200;
    pthread_mutex_unlock(&f->srv.mu);
    wait_scrapes(s, 2);
    assert_true(get(f, "up", NULL).last == 1);
    assert_true(get(f, "a_total", NULL).last == 5);
    /* scrape_series_added: 4 in the first scrape, then 0 every time, the recovery included
     * (the cache kept its entries through the failures, as Prometheus's does). */
    assert_true(get(f, "scrape_series_added", NULL).sum == 4);
    wt_write_file(f->sd_path, "[]");
    for (int i = 0; i < 500 && !is_stale(get(f, "up", NULL).last); i++) {
        usleep(10000);
    }
    assert_true(is_stale(get(f, "up", NULL).last));
    assert_true(is_stale(get(f, "a_total", NULL).last));
    assert_true(is_stale(get(f, "scrape_duration_seconds", NULL).last));
    col_scrape_stats_t st;
    col_scrape_stats(s, &st);
    assert_int_equal(st.targets, 0);

    memset(&resp, 0, sizeof(resp));
    col_scrape_targets_handler(s, &req, &resp);
    assert_string_equal(wf_buf_cstr(&resp.body),
                        "{\"status\":\"success\",\"data\":{\"activeTargets\":[],"
                        "\"droppedTargets\":[]}}");
    wf_buf_free(&resp.body);
    wf_arena_free(&arena);
    col_scrape_free(s);
}

static void test_honor_labels_gzip_openmetrics(void **state)
{
    fix_t *f = *state;
    pthread_mutex_lock(&f->srv.mu);
    f->srv.gzip = true;
    snprintf(f->srv.ctype, sizeof(f->srv.ctype),
             "application/openmetrics-text; version=1.0.0; charset=utf-8");
    pthread_mutex_unlock(&f->srv.mu);
    srv_set(&f->srv, "# TYPE c counter\n"
                     "c_total{job=\"inner\"} 3 # {trace_id=\"abc\"} 1\n"
                     "c_created{job=\"inner\"} 1700000000.5\n"
                     "# EOF\n");
    col_scrape_t *s = start(f, true,
                            "\"__metrics_path__\":\"/stats/prometheus\","
                            "\"__param_format\":\"prom\",\"job\":\"fromsd\"");
    wait_scrapes(s, 2);
    /* honor_labels: the scraped job wins, instance is still added. */
    series_t c = get(f, "c_total", "job", "inner", NULL);
    assert_int_equal(c.nseries, 1);
    assert_true(c.last == 3);
    assert_int_equal(get(f, "c_total", "job", "fromsd", NULL).nseries, 0);
    assert_true(get(f, "c_created", "job", "inner", NULL).last == 1700000000.5);
    /* The group's job names the report series; the metrics path and params make the URL. */
    assert_true(get(f, "up", "job", "fromsd", NULL).last == 1);

    col_req_t req;
    memset(&req, 0, sizeof(req));
    wf_arena_t arena;
    wf_arena_init(&arena, 4096, 0);
    req.arena = &arena;
    col_resp_t resp;
    memset(&resp, 0, sizeof(resp));
    col_scrape_targets_handler(s, &req, &resp);
    char want[160];
    snprintf(want, sizeof(want),
             "\"scrapeUrl\":\"http://127.0.0.1:%d/stats/prometheus?format=prom\"", f->srv.port);
    assert_non_null(strstr(wf_buf_cstr(&resp.body), want));
    wf_buf_free(&resp.body);
    wf_arena_free(&arena);
    col_scrape_free(s);
}

static void test_scrape_failures(void **state)
{
    fix_t *f = *state;
    srv_set(&f->srv, "m 1\n");
    col_scrape_t *s = start(f, false, "");
    wait_scrapes(s, 1);
    assert_true(get(f, "up", NULL).last == 1);

    /* A parse error fails the scrape and writes nothing of it. */
    srv_set(&f->srv, "m 2\nbroken{ 3\n");
    wait_scrapes(s, 2);
    assert_true(get(f, "up", NULL).last == 0);
    series_t m = get(f, "m", NULL);
    assert_true(is_stale(m.last));
    assert_true(m.prev == 1);
    assert_true(get(f, "scrape_samples_scraped", NULL).last == 1);

    /* Too slow: the timeout fails it. */
    srv_set(&f->srv, "m 3\n");
    pthread_mutex_lock(&f->srv.mu);
    f->srv.delay_ms = 1000;
    pthread_mutex_unlock(&f->srv.mu);
    wait_scrapes(s, 2);
    assert_true(get(f, "up", NULL).last == 0);
    pthread_mutex_lock(&f->srv.mu);
    f->srv.delay_ms = 0;
    pthread_mutex_unlock(&f->srv.mu);
    wait_scrapes(s, 2);
    assert_true(get(f, "up", NULL).last == 1);
    assert_true(get(f, "m", NULL).last == 3);
    col_scrape_free(s);

    /* A body above the limit fails the scrape. */
    char big[4000];
    memset(big, 0, sizeof(big));
    for (int i = 0; i < 200; i++) {
        snprintf(big + strlen(big), sizeof(big) - strlen(big), "s%d 1\n", i);
    }
    srv_set(&f->srv, big);
    wt_write_file(f->sd_path, "[]");
    char doc[256];
    snprintf(doc, sizeof(doc), "[{\"targets\":[\"127.0.0.1:%d\"],\"labels\":{\"job\":\"lim\"}}]",
             f->srv.port);
    wt_write_file(f->sd_path, doc);
    col_scrape_options_t o;
    col_scrape_options_default(&o);
    o.sd_file = f->sd_path;
    o.interval_ms = 300;
    o.timeout_ms = 300;
    o.body_limit = 100;
    assert_int_equal(col_scrape_new(&o, f->wr, &s), 0);
    wait_scrapes(s, 1);
    assert_true(get(f, "up", "job", "lim", NULL).last == 0);
    assert_int_equal(get(f, "s1", NULL).nseries, 0);
    col_scrape_free(s);

    /* A missing or malformed file_sd file is refused at start. */
    o.sd_file = "/nonexistent/targets.json";
    assert_true(col_scrape_new(&o, f->wr, &s) < 0);
    assert_null(s);
    wt_write_file(f->sd_path, "{\"targets\":1}");
    o.sd_file = f->sd_path;
    assert_int_equal(col_scrape_new(&o, f->wr, &s), WF_E_INVAL);
}

static void test_http_sd(void **state)
{
    fix_t *f = *state;
    srv_set(&f->srv, "hs 7\n");
    pthread_mutex_lock(&f->srv.mu);
    snprintf(f->srv.sd, sizeof(f->srv.sd),
             "[{\"targets\":[\"127.0.0.1:%d\"],\"labels\":{\"job\":\"viasd\"}}]", f->srv.port);
    pthread_mutex_unlock(&f->srv.mu);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/sd", f->srv.port);
    col_scrape_options_t o;
    col_scrape_options_default(&o);
    o.sd_url_list = url; /* as the --scrape-sd flag passes it */
    o.interval_ms = 300;
    o.timeout_ms = 300;
    o.sd_refresh_ms = 100;
    col_scrape_t *s = NULL;
    assert_int_equal(col_scrape_new(&o, f->wr, &s), 0);
    wait_scrapes(s, 2);
    assert_true(get(f, "hs", "job", "viasd", NULL).last == 7);

    /* A failing refresh keeps the targets. */
    pthread_mutex_lock(&f->srv.mu);
    f->srv.sd_status = 500;
    pthread_mutex_unlock(&f->srv.mu);
    col_scrape_stats_t st;
    col_scrape_stats(s, &st);
    for (int i = 0; i < 1000 && st.sd_failures == 0; i++) {
        usleep(10000);
        col_scrape_stats(s, &st);
    }
    assert_true(st.sd_failures >= 1);
    assert_int_equal(st.targets, 1);
    wf_buf_t m = WF_BUF_INIT;
    col_scrape_write_metrics(s, &m);
    assert_non_null(strstr(wf_buf_cstr(&m), "weft_scrape_targets{health=\"up\"} 1\n"));
    wf_buf_free(&m);
    col_scrape_free(s);
}

static int stale_fill(col_write_t *w, st_batch_t *b)
{
    const int64_t *now = w->arg;
    uint64_t bits = 0x7ff0000000000002ULL;
    double v;
    memcpy(&v, &bits, 8);
    st_label_t l[2] = {{WF_STR_LIT("__name__"), WF_STR_LIT("st")},
                       {WF_STR_LIT("env"), WF_STR_LIT("prod")}};
    if (st_batch_add(b, l, 2, *now - 1500, v) == 0) {
        w->accepted++;
    }
    return 0;
}

static void test_import_and_federate(void **state)
{
    fix_t *f = *state;
    int64_t now = wf_wall_ms();
    char body[1024];
    snprintf(body, sizeof(body),
             "# TYPE imp_total counter\n"
             "imp_total{a=\"1\"} 10 %lld\n"
             "imp_total{a=\"2\"} 20\n"
             "zz_gauge{instance=\"i1\",q=\"x\\\"y\"} 1.5e+06 %lld\n"
             "old 1 %lld\n"
             "st 1 %lld\n",
             (long long)(now - 1000), (long long)(now - 1000), (long long)(now - 3600 * 1000),
             (long long)(now - 2000));
    char path[256];
    snprintf(path, sizeof(path), "/api/v1/import/prometheus?timestamp=%lld&extra_label=env=prod",
             (long long)(now - 500));
    char *resp = NULL;
    assert_int_equal(wt_http(f->http_port, "POST", path, body, strlen(body), &resp), 204);
    wf_free(resp);
    series_t s = get(f, "imp_total", "a", "2", "env", "prod", NULL);
    assert_int_equal(s.nseries, 1);
    assert_int_equal(s.last_ts, now - 500);
    assert_true(s.last == 20);
    assert_int_equal(get(f, "imp_total", "a", "1", NULL).last_ts, now - 1000);

    /* The text format cannot carry a staleness marker: write one for st directly. */
    col_write_t w;
    memset(&w, 0, sizeof(w));
    w.fill = stale_fill;
    w.arg = &now;
    w.est_samples = 1;
    w.est_bytes = 64;
    assert_int_equal(col_writer_submit(f->wr, &w), 0);
    assert_int_equal(w.accepted, 1);

    /* A parse error: 400 with the line, nothing written. */
    const char *bad = "ok_one 1\nok_two 2\nbad{a=\"1\" 3\n";
    assert_int_equal(
        wt_http(f->http_port, "POST", "/api/v1/import/prometheus", bad, strlen(bad), &resp), 400);
    assert_non_null(strstr(resp, "line 3:"));
    wf_free(resp);
    assert_int_equal(get(f, "ok_one", NULL).nseries, 0);
    assert_int_equal(
        wt_http(f->http_port, "POST", "/api/v1/import/prometheus?timestamp=x", "a 1", 3, NULL),
        400);
    assert_int_equal(wt_http(f->http_port, "POST", "/api/v1/import/prometheus?extra_label=1bad=x",
                             "a 1", 3, NULL),
                     400);
    /* Out of order: the store refuses it, the answer says so. */
    snprintf(body, sizeof(body), "imp_total{a=\"1\",env=\"prod\"} 9 %lld\n",
             (long long)(now - 5000));
    assert_int_equal(
        wt_http(f->http_port, "POST", "/api/v1/import/prometheus", body, strlen(body), &resp), 400);
    assert_non_null(strstr(resp, "1 of 1 samples rejected"));
    wf_free(resp);

    /* Federate: the latest sample of each, families sorted, instance="" appended last. */
    assert_int_equal(
        wt_http(f->http_port, "GET",
                "/federate?match[]=imp_total&match[]=%7B__name__%3D~%22zz_.*%7Cold%7Cst%22%7D"
                "&match[]=%7Ba%3D%221%22%7D",
                NULL, 0, &resp),
        200);
    char want[1024];
    snprintf(want, sizeof(want),
             "# HELP imp_total Federated by weft.\n"
             "# TYPE imp_total counter\n"
             "imp_total{a=\"1\",env=\"prod\",instance=\"\"} 10 %lld\n"
             "imp_total{a=\"2\",env=\"prod\",instance=\"\"} 20 %lld\n"
             "# HELP zz_gauge Federated by weft.\n"
             "# TYPE zz_gauge untyped\n"
             "zz_gauge{env=\"prod\",instance=\"i1\",q=\"x\\\"y\"} 1.5e+06 %lld\n",
             (long long)(now - 1000), (long long)(now - 500), (long long)(now - 1000));
    assert_string_equal(resp, want);
    wf_free(resp);

    assert_int_equal(wt_http(f->http_port, "GET", "/federate", NULL, 0, &resp), 200);
    assert_string_equal(resp, "");
    wf_free(resp);
    assert_int_equal(wt_http(f->http_port, "GET", "/federate?match[]=foo%7B", NULL, 0, &resp), 400);
    assert_non_null(strstr(resp, "parse error"));
    wf_free(resp);
    assert_int_equal(
        wt_http(f->http_port, "GET", "/federate?match[]=rate(x%5B5m%5D)", NULL, 0, NULL), 400);
    assert_int_equal(
        wt_http(f->http_port, "GET", "/federate?match[]=%7Bx%3D%22%22%7D", NULL, 0, NULL), 400);
}

static void test_target_labels(void **state)
{
    fix_t *f = *state;
    /* No port: the scheme's default, in instance and the URL; discovered labels unchanged.
     * An empty job in the group means the default one, as in Prometheus. */
    wt_write_file(f->sd_path,
                  "[{\"targets\":[\"127.0.0.1\"],\"labels\":{\"job\":\"\",\"a\":\"b\"}},"
                  "{\"targets\":[\"127.0.0.1\"],\"labels\":{\"__scheme__\":\"https\","
                  "\"__scrape_interval__\":\"1m30s\",\"__scrape_timeout__\":\"10s\"}},"
                  "{\"targets\":[\"127.0.0.2:1\"],\"labels\":{\"__scrape_timeout__\":\"2h\"}}]");
    col_scrape_options_t o;
    col_scrape_options_default(&o);
    o.sd_file = f->sd_path;
    col_scrape_t *s = NULL;
    assert_int_equal(col_scrape_new(&o, f->wr, &s), 0);
    col_req_t req;
    memset(&req, 0, sizeof(req));
    wf_arena_t arena;
    wf_arena_init(&arena, 4096, 0);
    req.arena = &arena;
    col_resp_t resp;
    memset(&resp, 0, sizeof(resp));
    col_scrape_targets_handler(s, &req, &resp);
    json_error_t je;
    json_t *doc = json_loadb((const char *)resp.body.data, resp.body.len, 0, &je);
    assert_non_null(doc);
    json_t *ts = json_object_get(json_object_get(doc, "data"), "activeTargets");
    /* The third group's timeout exceeds its interval: dropped, as Prometheus does. */
    assert_int_equal(json_array_size(ts), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *t = json_array_get(ts, i);
        const char *url = json_string_value(json_object_get(t, "scrapeUrl"));
        json_t *labels = json_object_get(t, "labels");
        json_t *disc = json_object_get(t, "discoveredLabels");
        assert_string_equal(json_string_value(json_object_get(disc, "__address__")), "127.0.0.1");
        assert_string_equal(json_string_value(json_object_get(labels, "job")), "weft");
        assert_string_equal(json_string_value(json_object_get(t, "health")), "unknown");
        assert_string_equal(json_string_value(json_object_get(t, "lastScrape")),
                            "0001-01-01T00:00:00Z");
        if (strncmp(url, "https", 5) == 0) {
            assert_string_equal(url, "https://127.0.0.1:443/metrics");
            assert_string_equal(json_string_value(json_object_get(labels, "instance")),
                                "127.0.0.1:443");
            assert_string_equal(json_string_value(json_object_get(t, "scrapeInterval")), "1m30s");
            assert_string_equal(json_string_value(json_object_get(t, "scrapeTimeout")), "10s");
        } else {
            assert_string_equal(url, "http://127.0.0.1:80/metrics");
            char host[256], gurl[400];
            gethostname(host, sizeof(host));
            snprintf(gurl, sizeof(gurl), "http://%s:80/metrics", host);
            assert_string_equal(json_string_value(json_object_get(t, "globalUrl")), gurl);
            assert_string_equal(json_string_value(json_object_get(labels, "instance")),
                                "127.0.0.1:80");
            assert_string_equal(json_string_value(json_object_get(labels, "a")), "b");
            assert_string_equal(json_string_value(json_object_get(t, "scrapeInterval")), "15s");
            assert_string_equal(json_string_value(json_object_get(disc, "__scrape_interval__")),
                                "15s");
        }
    }
    json_decref(doc);
    wf_buf_free(&resp.body);

    /* state=dropped lists no active targets. */
    col_param_t prm = {"state", "dropped"};
    req.params = &prm;
    req.nparams = 1;
    memset(&resp, 0, sizeof(resp));
    col_scrape_targets_handler(s, &req, &resp);
    assert_string_equal(wf_buf_cstr(&resp.body),
                        "{\"status\":\"success\",\"data\":{\"droppedTargets\":[]}}");
    wf_buf_free(&resp.body);
    wf_arena_free(&arena);
    col_scrape_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_scrape_lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_honor_labels_gzip_openmetrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scrape_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_sd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_target_labels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_and_federate, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
