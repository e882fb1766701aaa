/*
 * test_collector_remote_write.c - `weft collector --remote-write` against real receivers.
 *
 * Prometheus 2.42 (--web.enable-remote-write-receiver, no scrape jobs): samples pushed into
 * the collector (its text import) must show up in Prometheus's /api/v1/query with exactly
 * their labels and values. Then Prometheus is stopped: more pushes are still answered 204 at
 * once and stored by the collector, while its weft_remote_write_retries_total and
 * _samples_pending move; Prometheus restarted on the same port and data directory then
 * receives the queued samples, and every counter balances (sent = pushed, nothing dropped).
 * The collector's /metrics passes `promtool check metrics`, and SIGTERM stops it cleanly.
 * Scraped samples take the same way: a collector scraping itself shows up in Prometheus.
 *
 * VictoriaMetrics (when installed) as a second receiver: its /api/v1/export must hold the
 * pushed samples with their exact timestamps.
 *
 * Skipped (77) when Prometheus is not installed.
 */
#include "wf_alloc.h"
#include "wf_buf.h"
#include "wf_clock.h"
#include "wt_util.h"

#include <jansson.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define PROMETHEUS "/usr/bin/prometheus"
#define VICTORIA "/usr/bin/victoria-metrics"
#define PROMTOOL "/usr/bin/promtool"

typedef struct {
    char *dir;
    int prom_port, weft_port;
    pid_t prom, weft;
    char prom_log[512], weft_log[512];
} fx_t;

/* A temporary directory named after prefix, two distinct free ports and the log paths. */
static void fx_init(fx_t *f, const char *prefix)
{
    memset(f, 0, sizeof(*f));
    f->dir = wt_tmpdir(prefix);
    f->prom_port = wt_free_port();
    f->weft_port = wt_free_port();
    while (f->weft_port == f->prom_port) {
        f->weft_port = wt_free_port();
    }
    snprintf(f->prom_log, sizeof(f->prom_log), "%s/prometheus.log", f->dir);
    snprintf(f->weft_log, sizeof(f->weft_log), "%s/weft.log", f->dir);
}

static void print_file(const char *path)
{
    char *text = wt_read_file(path, NULL);
    size_t len = text != NULL ? strlen(text) : 0;
    fprintf(stderr, "--- %s (last 6000 bytes)\n%s\n", path,
            text == NULL ? "(none)"
            : len > 6000 ? text + len - 6000
                         : text);
    wf_free(text);
}

/* Wait until GET path on port answers 200 (bounded); false when pid died or time ran out. */
static bool wait_ready(pid_t pid, int port, const char *path)
{
    for (int i = 0; i < 600; i++) {
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            return false;
        }
        if (wt_wait_port(port, 100) && wt_http(port, "GET", path, NULL, 0, NULL) == 200) {
            return true;
        }
        usleep(100000);
    }
    return false;
}

static pid_t start_prometheus(fx_t *f)
{
    char cfg[512], a_cfg[600], a_data[600], a_addr[100];
    snprintf(cfg, sizeof(cfg), "%s/prometheus.yml", f->dir);
    /* No scrape jobs: the only samples are the ones the collector sends. */
    wt_write_file(cfg, "global:\n  scrape_interval: 15s\n");
    snprintf(a_cfg, sizeof(a_cfg), "--config.file=%s", cfg);
    snprintf(a_data, sizeof(a_data), "--storage.tsdb.path=%s/prom", f->dir);
    snprintf(a_addr, sizeof(a_addr), "--web.listen-address=127.0.0.1:%d", f->prom_port);
    char *argv[] = {PROMETHEUS,         a_cfg, a_data, a_addr, "--web.enable-remote-write-receiver",
                    "--log.level=warn", NULL};
    pid_t pid = wt_spawn(argv, f->prom_log);
    if (!wait_ready(pid, f->prom_port, "/-/ready")) {
        print_file(f->prom_log);
        fail_msg("prometheus did not become ready on port %d", f->prom_port);
    }
    return pid;
}

/* The collector, sending to rw_port; scrape_file (may be NULL): file_sd targets scraped every
 * second. */
static pid_t start_weft(const char *dir, int port, int rw_port, const char *log,
                        const char *scrape_file)
{
    char addr[64], data[512], url[128];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    snprintf(data, sizeof(data), "%s/weft-%d", dir, port);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/v1/write", rw_port);
    /* the last four slots: the scrape flags, when asked for */
    char *argv[] = {(char *)wt_weft_bin(),
                    "collector",
                    "--listen",
                    addr,
                    "--otlp-listen",
                    "off",
                    "--zipkin-listen",
                    "off",
                    "--data-dir",
                    data,
                    "--remote-write",
                    url,
                    "--remote-write-flush",
                    "200ms",
                    NULL,
                    NULL,
                    NULL,
                    NULL,
                    NULL};
    if (scrape_file != NULL) {
        argv[14] = "--scrape-config";
        argv[15] = (char *)scrape_file;
        argv[16] = "--scrape-interval";
        argv[17] = "1s";
    }
    pid_t pid = wt_spawn(argv, log);
    if (!wait_ready(pid, port, "/-/ready")) {
        print_file(log);
        fail_msg("weft collector did not become ready on port %d", port);
    }
    return pid;
}

/* POST a text exposition to the collector's import; the HTTP status. */
static int push(int port, const char *text)
{
    return wt_http(port, "POST", "/api/v1/import/prometheus", text, strlen(text), NULL);
}

/* The value of an unlabelled (or exactly labelled) metric line in the collector's /metrics;
 * -1 when absent. */
static double weft_metric(int port, const char *series)
{
    char *body = NULL;
    double v = -1;
    if (wt_http(port, "GET", "/metrics", NULL, 0, &body) == 200 && body != NULL) {
        size_t n = strlen(series);
        for (const char *p = body; p != NULL && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
            if (strncmp(p, series, n) == 0 && p[n] == ' ') {
                v = strtod(p + n + 1, NULL);
                break;
            }
        }
    }
    wf_free(body);
    return v;
}

static void urlencode(wf_buf_t *out, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '_' || c == '-' || c == '.') {
            wf_buf_putc(out, c);
        } else {
            wf_buf_printf(out, "%%%02X", c);
        }
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Run an instant query at time t_s on a Prometheus-API server and render its vector as sorted
 * lines "name{k=v,...} value" joined by '\n'; NULL when the query failed. wf_free the result.
 */
static char *query_lines(int port, const char *expr, double t_s)
{
    wf_buf_t path, out;
    wf_buf_init(&path);
    wf_buf_init(&out);
    wf_buf_puts(&path, "/api/v1/query?query=");
    urlencode(&path, expr);
    wf_buf_printf(&path, "&time=%.3f", t_s);
    char *body = NULL;
    int code = wt_http(port, "GET", wf_buf_cstr(&path), NULL, 0, &body);
    wf_buf_free(&path);
    json_t *j = code == 200 && body != NULL ? json_loads(body, 0, NULL) : NULL;
    wf_free(body);
    json_t *res = json_object_get(json_object_get(j, "data"), "result");
    if (!json_is_array(res)) {
        json_decref(j);
        wf_buf_free(&out);
        return NULL;
    }
    size_t n = json_array_size(res);
    char **lines = wf_calloc(n + 1, sizeof(*lines));
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_object_get(json_array_get(res, i), "metric");
        json_t *val = json_object_get(json_array_get(res, i), "value");
        const char *keys[64];
        size_t nk = 0;
        const char *k;
        json_t *v;
        json_object_foreach(m, k, v)
        {
            if (nk < 64 && strcmp(k, "__name__") != 0) {
                keys[nk++] = k;
            }
        }
        qsort(keys, nk, sizeof(keys[0]), cmp_str);
        wf_buf_t l;
        wf_buf_init(&l);
        wf_buf_printf(&l, "%s{", json_string_value(json_object_get(m, "__name__")));
        for (size_t x = 0; x < nk; x++) {
            wf_buf_printf(&l, "%s%s=%s", x ? "," : "", keys[x],
                          json_string_value(json_object_get(m, keys[x])));
        }
        wf_buf_printf(&l, "} %s", json_string_value(json_array_get(val, 1)));
        lines[i] = wf_strdup(wf_buf_cstr(&l));
        wf_buf_free(&l);
    }
    qsort(lines, n, sizeof(lines[0]), cmp_str);
    for (size_t i = 0; i < n; i++) {
        wf_buf_printf(&out, "%s%s", i ? "\n" : "", lines[i]);
        wf_free(lines[i]);
    }
    wf_free(lines);
    json_decref(j);
    wf_buf_putc(&out, 0);
    return (char *)wf_buf_detach(&out, NULL);
}

/* Poll the query (bounded) until its lines equal want; fails the test with both otherwise. */
static void wait_query(int port, const char *expr, double t_s, const char *want)
{
    char *got = NULL;
    for (int i = 0; i < 300; i++) {
        wf_free(got);
        got = query_lines(port, expr, t_s);
        if (got != NULL && strcmp(got, want) == 0) {
            wf_free(got);
            return;
        }
        usleep(100000);
    }
    fail_msg("query %s at %.3f:\n got:\n%s\n want:\n%s", expr, t_s, got ? got : "(failed)", want);
}

/* Poll the collector's metric (bounded) until pred(value) holds; the last value. */
static double wait_metric(int port, const char *series, double at_least)
{
    double v = -1;
    for (int i = 0; i < 300; i++) {
        v = weft_metric(port, series);
        if (v >= at_least) {
            break;
        }
        usleep(100000);
    }
    return v;
}

static void test_prometheus(void **state)
{
    (void)state;
    if (access(PROMETHEUS, X_OK) != 0) {
        printf("skipped: Prometheus not installed (%s)\n", PROMETHEUS);
        wt_skip();
    }
    fx_t f;
    fx_init(&f, "rw_send");
    f.prom = start_prometheus(&f);
    f.weft = start_weft(f.dir, f.weft_port, f.prom_port, f.weft_log, NULL);

    /* Phase 1: Prometheus up. Timestamps a minute ago, well inside its head block. */
    int64_t t0 = (wf_wall_ms() / 1000) * 1000 - 60000;
    char text[2048];
    snprintf(text, sizeof(text),
             "rw_test_value{zone=\"z1\",case=\"a\"} 1.5 %lld\n"
             "rw_test_value{case=\"b\",weird=\"sp ace \\\"q\\\" \xc3\xa9\"} -7 %lld\n"
             "rw_test_total{case=\"c\",job=\"j\"} 1e+300 %lld\n",
             (long long)t0, (long long)t0, (long long)t0);
    assert_int_equal(push(f.weft_port, text), 204);
    const char *expr = "{__name__=~\"rw_test_.*\"}";
    wait_query(f.prom_port, expr, (double)t0 / 1000,
               "rw_test_total{case=c,job=j} 1e+300\n"
               "rw_test_value{case=a,zone=z1} 1.5\n"
               "rw_test_value{case=b,weird=sp ace \"q\" \xc3\xa9} -7");
    assert_true(wait_metric(f.weft_port, "weft_remote_write_samples_sent_total", 3) == 3);
    assert_true(weft_metric(f.weft_port, "weft_remote_write_retries_total") == 0);

    /* Phase 2: Prometheus down. Ingest goes on; the sender retries and holds the samples. */
    assert_int_equal(WEXITSTATUS(wt_stop(f.prom, 10000)), 0);
    f.prom = -1;
    for (int k = 1; k <= 3; k++) {
        snprintf(text, sizeof(text),
                 "rw_test_value{zone=\"z1\",case=\"a\"} %d.25 %lld\n"
                 "rw_test_total{case=\"c\",job=\"j\"} %d %lld\n",
                 k, (long long)(t0 + k * 1000), k, (long long)(t0 + k * 1000));
        assert_int_equal(push(f.weft_port, text), 204);
    }
    /* the collector stored them itself */
    wait_query(f.weft_port, "rw_test_value{case=\"a\"}", (double)(t0 + 3000) / 1000,
               "rw_test_value{case=a,zone=z1} 3.25");
    assert_true(wait_metric(f.weft_port, "weft_remote_write_retries_total", 2) >= 2);
    assert_true(weft_metric(f.weft_port, "weft_remote_write_samples_pending") == 6);
    assert_true(weft_metric(f.weft_port, "weft_remote_write_requests_total{code=\"error\"}") >= 2);
    assert_true(weft_metric(f.weft_port, "weft_remote_write_samples_sent_total") == 3);

    /* Phase 3: Prometheus back on the same port and data: the queued samples arrive. */
    f.prom = start_prometheus(&f);
    wait_query(f.prom_port, expr, (double)(t0 + 3000) / 1000,
               "rw_test_total{case=c,job=j} 3\n"
               "rw_test_value{case=a,zone=z1} 3.25\n"
               "rw_test_value{case=b,weird=sp ace \"q\" \xc3\xa9} -7");
    wait_query(f.prom_port, "rw_test_value{case=\"a\"}", (double)(t0 + 1000) / 1000,
               "rw_test_value{case=a,zone=z1} 1.25");
    assert_true(wait_metric(f.weft_port, "weft_remote_write_samples_sent_total", 9) == 9);
    assert_true(weft_metric(f.weft_port, "weft_remote_write_samples_pending") == 0);
    const char *reasons[] = {"queue_full", "rejected", "shutdown"};
    for (size_t i = 0; i < 3; i++) {
        char s[128];
        snprintf(s, sizeof(s), "weft_remote_write_samples_dropped_total{reason=\"%s\"}",
                 reasons[i]);
        assert_true(weft_metric(f.weft_port, s) == 0);
    }

    /* The self-metrics are valid exposition text. */
    if (access(PROMTOOL, X_OK) == 0) {
        char *body = NULL;
        assert_int_equal(wt_http(f.weft_port, "GET", "/metrics", NULL, 0, &body), 200);
        char mpath[600];
        snprintf(mpath, sizeof(mpath), "%s/metrics.txt", f.dir);
        wt_write_file(mpath, body);
        wf_free(body);
        int rc = wt_sh(f.dir, PROMTOOL " check metrics < metrics.txt");
        if (rc != 0) {
            char lp[600];
            snprintf(lp, sizeof(lp), "%s/sh.log", f.dir);
            print_file(lp);
        }
        assert_int_equal(rc, 0);
    }

    int st = wt_stop(f.weft, 20000);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        print_file(f.weft_log);
    }
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(WEXITSTATUS(wt_stop(f.prom, 10000)), 0);
    char *log = wt_read_file(f.weft_log, NULL);
    assert_non_null(strstr(log, "remote store unreachable: retrying"));
    assert_non_null(strstr(log, "remote store reachable again"));
    assert_null(strstr(log, "ERROR: AddressSanitizer"));
    assert_null(strstr(log, "runtime error:"));
    wf_free(log);
    wt_rm_rf(f.dir);
    wf_free(f.dir);
}

/* Scraped samples take the same way: the collector scrapes itself, Prometheus receives its up
 * and its own remote_write counters. */
static void test_scraped_forwarded(void **state)
{
    (void)state;
    if (access(PROMETHEUS, X_OK) != 0) {
        printf("skipped: Prometheus not installed (%s)\n", PROMETHEUS);
        wt_skip();
    }
    fx_t f;
    fx_init(&f, "rw_send_scrape");
    char sd[600], targets[200];
    snprintf(sd, sizeof(sd), "%s/targets.json", f.dir);
    snprintf(targets, sizeof(targets),
             "[{\"targets\": [\"127.0.0.1:%d\"], \"labels\": {\"job\": \"self\"}}]\n", f.weft_port);
    wt_write_file(sd, targets);
    f.prom = start_prometheus(&f);
    f.weft = start_weft(f.dir, f.weft_port, f.prom_port, f.weft_log, sd);
    char want[200];
    snprintf(want, sizeof(want), "up{instance=127.0.0.1:%d,job=self} 1", f.weft_port);
    /* evaluated at "now" by each poll: the newest scrape is within the lookback */
    char *got = NULL;
    bool ok = false;
    for (int i = 0; i < 300 && !ok; i++) {
        wf_free(got);
        got = query_lines(f.prom_port, "up", (double)wf_wall_ms() / 1000);
        ok = got != NULL && strcmp(got, want) == 0;
        if (!ok) {
            usleep(100000);
        }
    }
    if (!ok) {
        print_file(f.weft_log);
        fail_msg("up in prometheus: %s (want %s)", got ? got : "(failed)", want);
    }
    wf_free(got);
    /* a counter of the sender itself, scraped and forwarded: at least one sample was sent */
    got = NULL;
    ok = false;
    for (int i = 0; i < 300 && !ok; i++) {
        wf_free(got);
        got = query_lines(f.prom_port, "weft_remote_write_samples_sent_total > 0",
                          (double)wf_wall_ms() / 1000);
        ok = got != NULL && strstr(got, "job=self") != NULL;
        if (!ok) {
            usleep(100000);
        }
    }
    if (!ok) {
        fail_msg("weft_remote_write_samples_sent_total in prometheus: %s", got ? got : "(failed)");
    }
    wf_free(got);
    int st = wt_stop(f.weft, 20000);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(WEXITSTATUS(wt_stop(f.prom, 10000)), 0);
    wt_rm_rf(f.dir);
    wf_free(f.dir);
}

/* VictoriaMetrics' /api/v1/export (raw samples, JSON lines) holds exactly what was pushed. */
static void test_victoria_metrics(void **state)
{
    (void)state;
    if (access(VICTORIA, X_OK) != 0) {
        printf("skipped: VictoriaMetrics not installed (%s)\n", VICTORIA);
        wt_skip();
    }
    char *dir = wt_tmpdir("rw_send_vm");
    int vm_port = wt_free_port(), weft_port = wt_free_port();
    while (weft_port == vm_port) {
        weft_port = wt_free_port();
    }
    char a_addr[64], a_data[600], vm_log[600], weft_log[600];
    snprintf(a_addr, sizeof(a_addr), "-httpListenAddr=127.0.0.1:%d", vm_port);
    snprintf(a_data, sizeof(a_data), "-storageDataPath=%s/vm", dir);
    snprintf(vm_log, sizeof(vm_log), "%s/vm.log", dir);
    snprintf(weft_log, sizeof(weft_log), "%s/weft.log", dir);
    char *argv[] = {VICTORIA, a_addr, a_data, "-loggerLevel=WARN", NULL};
    pid_t vm = wt_spawn(argv, vm_log);
    if (!wait_ready(vm, vm_port, "/health")) {
        print_file(vm_log);
        fail_msg("victoria-metrics did not become ready");
    }
    pid_t weft = start_weft(dir, weft_port, vm_port, weft_log, NULL);
    int64_t t0 = (wf_wall_ms() / 1000) * 1000 - 60000;
    char text[512];
    snprintf(text, sizeof(text),
             "rw_vm_value{b=\"2\",a=\"1\"} 0.125 %lld\n"
             "rw_vm_value{b=\"2\",a=\"1\"} 4096 %lld\n",
             (long long)t0, (long long)t0 + 500);
    assert_int_equal(push(weft_port, text), 204);
    assert_true(wait_metric(weft_port, "weft_remote_write_samples_sent_total", 2) == 2);

    const char *want = "{\"metric\":{\"__name__\":\"rw_vm_value\",\"a\":\"1\",\"b\":\"2\"},"
                       "\"values\":[0.125,4096],\"timestamps\":[";
    char ts[64];
    snprintf(ts, sizeof(ts), "%lld,%lld]}", (long long)t0, (long long)t0 + 500);
    char *body = NULL;
    bool ok = false;
    /* VictoriaMetrics makes new samples searchable within a few seconds. */
    for (int i = 0; i < 300 && !ok; i++) {
        wf_free(body);
        body = NULL;
        wt_http(vm_port, "GET", "/api/v1/export?match%5B%5D=rw_vm_value", NULL, 0, &body);
        ok = body != NULL && strstr(body, want) != NULL && strstr(body, ts) != NULL;
        if (!ok) {
            usleep(100000);
        }
    }
    if (!ok) {
        fail_msg("victoria-metrics export: %s", body ? body : "(none)");
    }
    wf_free(body);
    int st = wt_stop(weft, 20000);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    wt_stop(vm, 10000);
    wt_rm_rf(dir);
    wf_free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prometheus),
        cmocka_unit_test(test_scraped_forwarded),
        cmocka_unit_test(test_victoria_metrics),
    };
    return wt_exit_code(cmocka_run_group_tests(tests, NULL, NULL));
}
