/*
 * test_scrape.c - a real `weft collector` scraping targets served by this test process:
 * samples with job/instance, `up` 1 for a live target and 0 for a dead one, staleness when a
 * series disappears (it leaves /federate and instant queries), /api/v1/targets; then
 * `promtool check metrics` on weft's /federate output, and a real Prometheus 2.42 that scrapes
 * weft's /federate with honor_labels gets the same series and values back.
 *
 * Needs the collector's scrape flags (--scrape-config, --scrape-interval, --scrape-timeout);
 * prints "skipped" when the binary lacks them. The Prometheus part prints "skipped" when
 * /usr/bin/prometheus or promtool is absent.
 */
#include "col_expfmt.h"
#include "wf_alloc.h"
#include "wf_buf.h"
#include "wf_clock.h"
#include "wt_util.h"

#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

/* ---- The target ---------------------------------------------------------------------------- */

static pthread_mutex_t body_mu = PTHREAD_MUTEX_INITIALIZER;
static char body[4096];

static enum MHD_Result target_cb(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version, const char *upload,
                                 size_t *upload_len, void **con_cls)
{
    pthread_mutex_lock(&body_mu);
    char *copy = wf_strdup(body);
    pthread_mutex_unlock(&body_mu);
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(copy), copy, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

static void set_body(const char *b)
{
    pthread_mutex_lock(&body_mu);
    snprintf(body, sizeof(body), "%s", b);
    pthread_mutex_unlock(&body_mu);
}

/* ---- Helpers ------------------------------------------------------------------------------- */

static char *dir;
static int port;      /* weft */
static int tport;     /* the target */
static int dead_port; /* nothing listens there */
static pid_t pid;
static struct MHD_Daemon *target;

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static char *get(int p, const char *path, int *status)
{
    char *b = NULL;
    *status = wt_http(p, "GET", path, NULL, 0, &b);
    return b;
}

/* The value of the single series `selector` selects in weft's /federate; NAN when absent. */
static double federated(const char *selector_q)
{
    char path[512];
    snprintf(path, sizeof(path), "/federate?match[]=%s", selector_q);
    int st;
    char *b = get(port, path, &st);
    assert_int_equal(st, 200);
    wf_arena_t a;
    wf_arena_init(&a, 4096, 0);
    col_expfmt_parser_t p;
    col_expfmt_parser_init(&p, b, strlen(b), COL_EXPFMT_TEXT, NULL, &a);
    col_expfmt_entry_t e;
    double v = NAN;
    int n = 0;
    while (col_expfmt_next(&p, &e) == 1) {
        if (e.kind == COL_EXPFMT_SERIES) {
            v = e.value;
            n++;
        }
    }
    assert_true(n <= 1);
    wf_arena_free(&a);
    wf_free(b);
    return v;
}

/* Poll until federated(q) == want (or is absent, for NAN) or 20 s pass. */
static bool wait_value(const char *q, double want)
{
    for (int i = 0; i < 200; i++) {
        double v = federated(q);
        if ((isnan(want) && isnan(v)) || v == want) {
            return true;
        }
        usleep(100000);
    }
    return false;
}

/* The sample lines of a /federate answer (comments dropped), sorted, one string (wf_free). */
static char *sample_lines(const char *text)
{
    char *copy = wf_strdup(text);
    char *lines[256];
    size_t n = 0;
    for (char *save = NULL, *l = strtok_r(copy, "\n", &save); l && n < 256;
         l = strtok_r(NULL, "\n", &save)) {
        if (l[0] != '#') {
            lines[n++] = l;
        }
    }
    for (size_t x = 1; x < n; x++) {
        for (size_t y = x; y > 0 && strcmp(lines[y - 1], lines[y]) > 0; y--) {
            char *t = lines[y];
            lines[y] = lines[y - 1];
            lines[y - 1] = t;
        }
    }
    wf_buf_t b = WF_BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        wf_buf_printf(&b, "%s\n", lines[i]);
    }
    wf_free(copy);
    wf_buf_putc(&b, 0);
    return (char *)wf_buf_detach(&b, NULL);
}

static bool has_flag(const char *flag)
{
    char log[600];
    snprintf(log, sizeof(log), "%s/help.txt", dir);
    char *argv[] = {(char *)wt_weft_bin(), "collector", "--help", NULL};
    wt_wait(wt_spawn(argv, log), 10000);
    char *text = wt_read_file(log, NULL);
    bool ok = text && strstr(text, flag);
    wf_free(text);
    return ok;
}

/* ---- Tests --------------------------------------------------------------------------------- */

static int setup(void **state)
{
    dir = wt_tmpdir("itscrape");
    target = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0,
                              NULL, NULL, target_cb, NULL, MHD_OPTION_END);
    assert_non_null(target);
    tport = MHD_get_daemon_info(target, MHD_DAEMON_INFO_BIND_PORT)->port;
    dead_port = wt_free_port();
    return 0;
}

static int teardown(void **state)
{
    if (pid > 0) {
        int status = wt_stop(pid, 10000);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    MHD_stop_daemon(target);
    wt_rm_rf(dir);
    wf_free(dir);
    return 0;
}

static void check_promtool(void)
{
    if (access("/usr/bin/promtool", X_OK) != 0) {
        printf("skipped: promtool not present\n");
        return;
    }
    int st;
    char *b = get(port, "/federate?match[]=%7Bjob%3D%22itest%22%7D", &st);
    assert_int_equal(st, 200);
    char path[600], cmd[1400];
    snprintf(path, sizeof(path), "%s/federate.txt", dir);
    write_text(path, b);
    snprintf(cmd, sizeof(cmd), "promtool check metrics < %s > %s/promtool.out 2>&1", path, dir);
    int rc = system(cmd);
    if (rc != 0) {
        snprintf(path, sizeof(path), "%s/promtool.out", dir);
        char *out = wt_read_file(path, NULL);
        fail_msg("promtool check metrics failed (%d): %s\non:\n%s", rc, out ? out : "", b);
    }
    wf_free(b);
}

/* Series of a JSON query result as "name{a=\"b\",...} value" lines, sorted (wf_free). */
static char *result_lines(const char *json, bool drop_instance_empty)
{
    json_error_t je;
    json_t *doc = json_loads(json, 0, &je);
    assert_non_null(doc);
    json_t *res = json_object_get(json_object_get(doc, "data"), "result");
    size_t n = json_array_size(res);
    char **lines = wf_calloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_array_get(res, i);
        json_t *m = json_object_get(s, "metric");
        wf_buf_t b = WF_BUF_INIT;
        /* jansson keeps object keys in insertion order; Prometheus writes them sorted. */
        const char *keys[64];
        size_t nk = 0;
        const char *k;
        json_t *v;
        json_object_foreach(m, k, v)
        {
            if (nk < 64) {
                keys[nk++] = k;
            }
        }
        for (size_t x = 1; x < nk; x++) {
            for (size_t y = x; y > 0 && strcmp(keys[y - 1], keys[y]) > 0; y--) {
                const char *t = keys[y];
                keys[y] = keys[y - 1];
                keys[y - 1] = t;
            }
        }
        for (size_t x = 0; x < nk; x++) {
            const char *val = json_string_value(json_object_get(m, keys[x]));
            if (drop_instance_empty && strcmp(keys[x], "instance") == 0 && *val == '\0') {
                continue;
            }
            wf_buf_printf(&b, "%s=\"%s\",", keys[x], val);
        }
        wf_buf_printf(&b, " %s", json_string_value(json_array_get(json_object_get(s, "value"), 1)));
        lines[i] = (char *)wf_buf_detach(&b, NULL);
        if (lines[i] == NULL) {
            lines[i] = wf_strdup("");
        }
    }
    for (size_t x = 1; x < n; x++) {
        for (size_t y = x; y > 0 && strcmp(lines[y - 1], lines[y]) > 0; y--) {
            char *t = lines[y];
            lines[y] = lines[y - 1];
            lines[y - 1] = t;
        }
    }
    wf_buf_t out = WF_BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        wf_buf_printf(&out, "%s\n", lines[i]);
        wf_free(lines[i]);
    }
    wf_free(lines);
    json_decref(doc);
    wf_buf_putc(&out, 0);
    return (char *)wf_buf_detach(&out, NULL);
}

static void check_prometheus_federation(void)
{
    if (access("/usr/bin/prometheus", X_OK) != 0) {
        printf("skipped: prometheus not present\n");
        return;
    }
    int pport = wt_free_port();
    char cfg[600], data[600], log[600], listen[64], text[2048];
    snprintf(cfg, sizeof(cfg), "%s/prometheus.yml", dir);
    snprintf(data, sizeof(data), "%s/prom-data", dir);
    snprintf(log, sizeof(log), "%s/prometheus.log", dir);
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", pport);
    snprintf(text, sizeof(text),
             "global:\n"
             "  scrape_interval: 1s\n"
             "  scrape_timeout: 1s\n"
             "scrape_configs:\n"
             "  - job_name: federate\n"
             "    honor_labels: true\n"
             "    metrics_path: /federate\n"
             "    params:\n"
             "      'match[]': ['{job=\"itest\"}']\n"
             "    static_configs:\n"
             "      - targets: ['127.0.0.1:%d']\n",
             port);
    write_text(cfg, text);
    char cfgarg[700], dataarg[700], listenarg[128];
    snprintf(cfgarg, sizeof(cfgarg), "--config.file=%s", cfg);
    snprintf(dataarg, sizeof(dataarg), "--storage.tsdb.path=%s", data);
    snprintf(listenarg, sizeof(listenarg), "--web.listen-address=%s", listen);
    char *argv[] = {"/usr/bin/prometheus", cfgarg, dataarg, listenarg, NULL};
    pid_t pp = wt_spawn(argv, log);
    assert_true(wt_wait_port(pport, 20000));

    /* Wait until Prometheus scraped weft's /federate successfully at least twice. */
    bool ok = false;
    for (int i = 0; i < 300 && !ok; i++) {
        int st;
        char *b = get(pport, "/api/v1/query?query=up%7Bjob%3D%22federate%22%7D", &st);
        ok = st == 200 && b && strstr(b, "\"value\":[") && strstr(b, ",\"1\"]");
        wf_free(b);
        if (!ok) {
            usleep(100000);
        }
    }
    if (!ok) {
        char *l = wt_read_file(log, NULL);
        fail_msg("prometheus never scraped weft's /federate:\n%s", l ? l : "");
    }
    sleep(2);
    /* Stop the target from changing: compare with the value frozen. Ask both for the same
     * series at "now"; the target's exposition is constant here, so the values agree. */
    int st;
    const char *q = "/api/v1/query?query=%7Bjob%3D%22itest%22%2C__name__%3D~%22it_.*%22%7D";
    char *pb = get(pport, q, &st);
    assert_int_equal(st, 200);
    char *wb = get(port, q, &st);
    if (st == 200) {
        char *pl = result_lines(pb, false);
        char *wl = result_lines(wb, true);
        assert_string_equal(pl, wl);
        assert_non_null(strstr(pl, "__name__=\"it_temperature_celsius\""));
        wf_free(pl);
        wf_free(wl);
    } else {
        printf("note: weft's /api/v1/query answered %d; comparing with /federate instead\n", st);
        char *pl = result_lines(pb, false);
        assert_non_null(strstr(pl, "__name__=\"it_temperature_celsius\",instance=\""));
        assert_non_null(strstr(pl, " 42\n"));
        wf_free(pl);
    }
    wf_free(pb);
    wf_free(wb);

    /* Both /federate answers for the series with their own timestamps (so that they do not
     * move between the two scrapes) have the same sample lines: label order and escaping,
     * value formatting, timestamps. */
    const char *fq = "/federate?match[]=it_fixed";
    pb = get(pport, fq, &st);
    assert_int_equal(st, 200);
    wb = get(port, fq, &st);
    assert_int_equal(st, 200);
    char *pl = sample_lines(pb);
    char *wl = sample_lines(wb);
    assert_string_equal(wl, pl);
    assert_non_null(strstr(wl, "} 1.5e-07 "));
    assert_non_null(strstr(wl, "} 1.234567e+06 "));
    assert_non_null(strstr(wl, "} +Inf "));
    assert_non_null(strstr(wl, "e=\"a\\\"b\\\\c\\nd\""));
    wf_free(pl);
    wf_free(wl);
    wf_free(pb);
    wf_free(wb);
    int status = wt_stop(pp, 20000);
    assert_true(WIFEXITED(status));
}

static void test_scrape_end_to_end(void **state)
{
    if (!has_flag("--scrape-config")) {
        printf("skipped: weft collector has no --scrape-config flag yet\n");
        return;
    }
    set_body("# HELP it_temperature_celsius A temperature.\n"
             "# TYPE it_temperature_celsius gauge\n"
             "it_temperature_celsius{kind=\"a\"} 42\n"
             "# HELP it_requests_total Requests.\n"
             "# TYPE it_requests_total counter\n"
             "it_requests_total 7\n"
             "it_gone 1\n");
    char sd[600], text[512];
    snprintf(sd, sizeof(sd), "%s/targets.json", dir);
    snprintf(text, sizeof(text),
             "[{\"targets\":[\"127.0.0.1:%d\"],\"labels\":{\"job\":\"itest\"}},"
             "{\"targets\":[\"127.0.0.1:%d\"],\"labels\":{\"job\":\"dead\"}}]",
             tport, dead_port);
    write_text(sd, text);

    port = wt_free_port();
    char listen[64], data[600], log[600];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    snprintf(data, sizeof(data), "%s/data", dir);
    snprintf(log, sizeof(log), "%s/weft.log", dir);
    char *argv[] = {(char *)wt_weft_bin(),
                    "collector",
                    "--listen",
                    listen,
                    "--data-dir",
                    data,
                    "--scrape-config",
                    sd,
                    "--scrape-interval",
                    "1s",
                    "--scrape-timeout",
                    "500ms",
                    NULL};
    pid = wt_spawn(argv, log);
    assert_true(wt_wait_port(port, 10000));

    char inst[64], q[256];
    snprintf(inst, sizeof(inst), "127.0.0.1%%3A%d", tport);
    snprintf(q, sizeof(q), "up%%7Binstance%%3D%%22%s%%22%%7D", inst);
    assert_true(wait_value(q, 1));
    snprintf(q, sizeof(q), "up%%7Binstance%%3D%%22127.0.0.1%%3A%d%%22%%7D", dead_port);
    assert_true(wait_value(q, 0));
    assert_true(wait_value("it_temperature_celsius%7Bjob%3D%22itest%22%2Ckind%3D%22a%22%7D", 42));
    assert_true(wait_value("it_requests_total", 7));
    assert_true(federated("scrape_samples_scraped%7Bjob%3D%22itest%22%7D") == 3);
    assert_true(federated("it_gone") == 1);

    /* The series goes away: its staleness marker removes it from /federate (without one, its
     * last sample would stay there for 5 minutes) and from instant queries. */
    char fixed[1024];
    long long fts = (long long)(wf_wall_ms() - 30000);
    snprintf(fixed, sizeof(fixed),
             "# HELP it_temperature_celsius A temperature.\n"
             "# TYPE it_temperature_celsius gauge\n"
             "it_temperature_celsius{kind=\"a\"} 42\n"
             "# HELP it_requests_total Requests.\n"
             "# TYPE it_requests_total counter\n"
             "it_requests_total 9\n"
             "# HELP it_fixed Values with their own timestamps.\n"
             "# TYPE it_fixed gauge\n"
             "it_fixed{v=\"small\"} 1.5e-7 %lld\n"
             "it_fixed{v=\"big\"} 1234567 %lld\n"
             "it_fixed{v=\"frac\"} 0.1 %lld\n"
             "it_fixed{v=\"inf\"} +Inf %lld\n"
             "it_fixed{v=\"neg\"} -2.5e-300 %lld\n"
             "it_fixed{v=\"int\"} 100000 %lld\n"
             "it_fixed{v=\"esc\",e=\"a\\\"b\\\\c\\nd\"} 3 %lld\n",
             fts, fts, fts, fts, fts, fts, fts);
    set_body(fixed);
    assert_true(wait_value("it_requests_total", 9));
    assert_true(isnan(federated("it_gone")));
    int st;
    char *b = get(port, "/api/v1/query?query=it_gone", &st);
    if (st == 200) {
        assert_non_null(strstr(b, "\"result\":[]"));
    }
    wf_free(b);
    b = get(port, "/api/v1/query?query=it_temperature_celsius", &st);
    if (st == 200) {
        assert_non_null(strstr(b, "\"job\":\"itest\""));
        assert_non_null(strstr(b, ",\"42\"]"));
    }
    wf_free(b);

    /* /api/v1/targets: one up, one down. */
    b = get(port, "/api/v1/targets", &st);
    assert_int_equal(st, 200);
    json_error_t je;
    json_t *doc = json_loads(b, 0, &je);
    assert_non_null(doc);
    json_t *ts = json_object_get(json_object_get(doc, "data"), "activeTargets");
    assert_int_equal(json_array_size(ts), 2);
    int up = 0, down = 0;
    for (size_t i = 0; i < 2; i++) {
        const char *h = json_string_value(json_object_get(json_array_get(ts, i), "health"));
        up += strcmp(h, "up") == 0;
        down += strcmp(h, "down") == 0;
    }
    assert_int_equal(up, 1);
    assert_int_equal(down, 1);
    json_decref(doc);
    wf_free(b);

    check_promtool();
    check_prometheus_federation();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_scrape_end_to_end, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
