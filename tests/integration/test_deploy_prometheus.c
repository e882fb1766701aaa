/*
 * test_deploy_prometheus.c - deploy/prometheus/prometheus.yml driving a real Prometheus against
 * a real mesh: the file, with its placeholders replaced by the sed deploy/prometheus/README.md
 * gives, passes `promtool check config` (with the read token, and in the --read-open form);
 * then a real `weft control`, a real collector, and a demo ratings service under `weft run`
 * (its sidecar registered with the control plane) take requests, and a real Prometheus
 * started on the shipped file discovers the sidecar through /v1/targets with the labels the
 * control plane gave, scrapes it ("up"), and answers istio_requests_total for ratings-v1 with
 * the number of requests sent. The read-open form is refused by a control plane that needs
 * the token (Prometheus counts the http_sd failure, discovers nothing) and works once the
 * control plane runs with --read-open.
 */
#include "wf_alloc.h"
#include "wt_control.h"
#include "wt_promdiff.h"
#include "wt_util.h"

#include <jansson.h>
#include <libgen.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

/* How many requests the test sends through the sidecar. */
#define N_REQUESTS 7

typedef struct {
    wt_control_t cp;
    char shipped[600]; /* deploy/prometheus/prometheus.yml */
    int col_port;      /* the collector's port */
    pid_t col_pid;     /* the collector */
    pid_t run_pid;     /* weft run (ratings and its sidecar) */
    int admin_port;    /* the sidecar's admin (metrics) port */
    char run_log[700]; /* weft run's output */
    int app_port;      /* the demo ratings service */
    int in_port;       /* its sidecar's inbound listener */
} fixture_t;

typedef struct {
    pid_t pid;
    int port;
    char dir[700];
} prom_t;

static fixture_t g;

/* True when a process exited with status 0 (weft run: the demo app's status after the SIGTERM it
 * passed on). */
static bool clean_exit(int st)
{
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void print_file(const char *path)
{
    char *text = wt_read_file(path, NULL);
    fprintf(stderr, "--- %s\n%s\n", path, text != NULL ? text : "(none)");
    wf_free(text);
}

/* Wait until path's text contains s (up to timeout_ms). */
static bool file_has(const char *path, const char *s, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 100) {
        char *text = wt_read_file(path, NULL);
        bool ok = text != NULL && strstr(text, s) != NULL;
        wf_free(text);
        if (ok) {
            return true;
        }
        usleep(100 * 1000);
    }
    return false;
}

/*
 * Write dir/name from the shipped file with the README's substitution: the control plane's and
 * the collector's addresses, and either the token file's path or (token_file NULL, the
 * --read-open form) the three authorization lines deleted. 0 or the sed's exit status.
 */
static int write_config(const char *dir, const char *name, const char *token_file)
{
    if (token_file != NULL) {
        return wt_sh(
            dir,
            "sed -e 's/127.0.0.1:15010/127.0.0.1:%d/' -e 's/127.0.0.1:20001/127.0.0.1:%d/' "
            "-e 's#/etc/prometheus/weft-read-token#%s#' '%s' > '%s'",
            g.cp.port, g.col_port, token_file, g.shipped, name);
    }
    return wt_sh(dir,
                 "sed -e 's/127.0.0.1:15010/127.0.0.1:%d/' -e 's/127.0.0.1:20001/127.0.0.1:%d/' "
                 "-e '/authorization:/,/credentials_file:/d' '%s' > '%s'",
                 g.cp.port, g.col_port, g.shipped, name);
}

/* Start Prometheus on g.cp.dir/cfg_name with its data in a new temporary directory; false
 * (with its log printed) when it does not get ready. */
static bool prom_start(prom_t *p, const char *prefix, const char *cfg_name)
{
    char *tmp = wt_tmpdir(prefix);
    snprintf(p->dir, sizeof(p->dir), "%s", tmp);
    wf_free(tmp);
    char a_cfg[800], a_data[800], a_addr[64], log[800];
    snprintf(a_cfg, sizeof(a_cfg), "--config.file=%s/%s", g.cp.dir, cfg_name);
    snprintf(a_data, sizeof(a_data), "--storage.tsdb.path=%s/data", p->dir);
    snprintf(log, sizeof(log), "%s/prometheus.log", p->dir);
    do {
        p->port = wt_free_port();
    } while (p->port == g.cp.port || p->port == g.col_port || p->port == g.admin_port ||
             p->port == g.app_port || p->port == g.in_port);
    snprintf(a_addr, sizeof(a_addr), "--web.listen-address=127.0.0.1:%d", p->port);
    char *argv[] = {
        (char *)wt_pd_prometheus_bin(), a_cfg, a_data, a_addr, "--log.level=warn", NULL};
    p->pid = wt_spawn(argv, log);
    for (int i = 0; i < 300; i++) {
        if (wt_wait_port(p->port, 100) &&
            wt_http(p->port, "GET", "/-/ready", NULL, 0, NULL) == 200) {
            return true;
        }
        usleep(100 * 1000);
    }
    print_file(log);
    return false;
}

static void prom_stop(prom_t *p)
{
    if (p->pid > 0) {
        wt_stop(p->pid, 10000);
        p->pid = 0;
    }
    wt_rm_rf(p->dir);
}

/* GET path on port as JSON; NULL when the answer is not a 200 with a JSON body. */
static json_t *get_json(int port, const char *path)
{
    char *body = NULL;
    json_t *j = NULL;
    if (wt_http(port, "GET", path, NULL, 0, &body) == 200) {
        j = json_loads(body, 0, NULL);
    }
    wf_free(body);
    return j;
}

/* The active target of job whose instance is instance in Prometheus's /api/v1/targets answer
 * (borrowed from targets), or NULL. */
static json_t *find_target(json_t *targets, const char *job, const char *instance)
{
    json_t *active = json_object_get(json_object_get(targets, "data"), "activeTargets");
    size_t i;
    json_t *t;
    json_array_foreach(active, i, t)
    {
        json_t *labels = json_object_get(t, "labels");
        const char *j = json_string_value(json_object_get(labels, "job"));
        const char *in = json_string_value(json_object_get(labels, "instance"));
        if (j != NULL && strcmp(j, job) == 0 &&
            (instance == NULL || (in != NULL && strcmp(in, instance) == 0))) {
            return t;
        }
    }
    return NULL;
}

/* Poll Prometheus's targets until job/instance is "up" (timeout_ms); the targets answer
 * (caller json_decref's it), or NULL. */
static json_t *wait_up(const prom_t *p, const char *job, const char *instance, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 500) {
        json_t *targets = get_json(p->port, "/api/v1/targets");
        json_t *t = find_target(targets, job, instance);
        const char *health = json_string_value(json_object_get(t, "health"));
        if (health != NULL && strcmp(health, "up") == 0) {
            return targets;
        }
        json_decref(targets);
        usleep(500 * 1000);
    }
    json_t *targets = get_json(p->port, "/api/v1/targets");
    char *dump = json_dumps(targets, JSON_INDENT(1));
    fprintf(stderr, "%s/%s not up; targets:\n%s\n", job, instance != NULL ? instance : "*",
            dump != NULL ? dump : "(none)");
    free(dump);
    json_decref(targets);
    return NULL;
}

/* The sum of the values of the lines of port's /metrics named name (with any labels), or -1
 * when there is none. */
static double prom_metric(int port, const char *name)
{
    char *body = NULL;
    double v = -1;
    if (wt_http(port, "GET", "/metrics", NULL, 0, &body) == 200) {
        for (const char *l = body; l != NULL && *l != '\0';
             l = strchr(l, '\n'), l = l ? l + 1 : l) {
            size_t n = strlen(name);
            if (strncmp(l, name, n) == 0 && (l[n] == ' ' || l[n] == '{')) {
                /* the value is the line's last field (label values may hold spaces) */
                const char *eol = strchr(l, '\n');
                const char *sp = eol != NULL ? eol : l + strlen(l);
                while (sp > l && sp[-1] != ' ') {
                    sp--;
                }
                v = v < 0 ? 0 : v;
                v += strtod(sp, NULL);
            }
        }
    }
    wf_free(body);
    return v;
}

static void test_promtool_check(void **state)
{
    (void)state;
    assert_int_equal(write_config(g.cp.dir, "check-token.yml", g.cp.reader_file), 0);
    assert_int_equal(write_config(g.cp.dir, "check-open.yml", NULL), 0);
    char path[800];
    snprintf(path, sizeof(path), "%s/check-token.yml", g.cp.dir);
    char *text = wt_read_file(path, NULL);
    assert_non_null(text);
    assert_non_null(strstr(text, g.cp.reader_file));
    assert_null(strstr(text, "127.0.0.1:15010"));
    assert_null(strstr(text, "127.0.0.1:20001"));
    wf_free(text);
    snprintf(path, sizeof(path), "%s/check-open.yml", g.cp.dir);
    text = wt_read_file(path, NULL);
    assert_non_null(text);
    assert_null(strstr(text, "authorization:"));
    assert_null(strstr(text, "credentials_file"));
    assert_non_null(strstr(text, "http_sd_configs"));
    wf_free(text);
    const char *names[] = {"check-token.yml", "check-open.yml"};
    for (size_t i = 0; i < 2; i++) {
        int st = wt_sh(g.cp.dir, "promtool check config '%s'", names[i]);
        if (st != 0) {
            snprintf(path, sizeof(path), "%s/sh.log", g.cp.dir);
            print_file(path);
        }
        assert_int_equal(st, 0);
    }
}

/*
 * Check that Prometheus p discovered the sidecar with the labels of its /v1/targets group and
 * scrapes it: every label of the group (but the metrics path, which becomes the scrape URL)
 * is a target label with the same value, and the target is up.
 */
static void check_proxy_target(const prom_t *p)
{
    char *body = NULL;
    assert_int_equal(wt_control_req(g.cp.port, "GET", "/v1/targets", g.cp.admin, NULL, &body), 200);
    json_t *groups = json_loads(body, 0, NULL);
    wf_free(body);
    assert_true(json_is_array(groups));
    assert_int_equal(json_array_size(groups), 1);
    json_t *group = json_array_get(groups, 0);
    char instance[64];
    snprintf(instance, sizeof(instance), "127.0.0.1:%d", g.admin_port);
    assert_string_equal(json_string_value(json_array_get(json_object_get(group, "targets"), 0)),
                        instance);
    json_t *sd = json_object_get(group, "labels");
    assert_string_equal(json_string_value(json_object_get(sd, "workload")), "ratings-v1");

    json_t *targets = wait_up(p, "weft-proxies", instance, 60000);
    assert_non_null(targets);
    json_t *t = find_target(targets, "weft-proxies", instance);
    json_t *labels = json_object_get(t, "labels");
    const char *k;
    json_t *v;
    size_t checked = 0;
    json_object_foreach(sd, k, v)
    {
        if (strcmp(k, "__metrics_path__") == 0) {
            continue;
        }
        const char *got = json_string_value(json_object_get(labels, k));
        if (got == NULL || strcmp(got, json_string_value(v)) != 0) {
            fail_msg("label %s: http_sd gave %s, Prometheus has %s", k, json_string_value(v),
                     got != NULL ? got : "(none)");
        }
        checked++;
    }
    assert_true(checked >= 4); /* namespace, app, version, workload */
    assert_string_equal(json_string_value(json_object_get(labels, "app")), "ratings");
    assert_string_equal(json_string_value(json_object_get(labels, "version")), "v1");
    assert_string_equal(json_string_value(json_object_get(labels, "namespace")), "default");
    char url[128];
    snprintf(url, sizeof(url), "http://%s/stats/prometheus", instance);
    assert_string_equal(json_string_value(json_object_get(t, "scrapeUrl")), url);
    json_decref(targets);
    json_decref(groups);
}

/*
 * Poll Prometheus until istio_requests_total of ratings-v1 (destination reporter) adds up to
 * want; the last sum seen. The series must carry the target's labels and Istio's.
 */
static double wait_requests(const prom_t *p, double want, int timeout_ms)
{
    /* sum by (...) (istio_requests_total{destination_workload="ratings-v1",
     * reporter="destination"}), URL-encoded */
    const char *path = "/api/v1/query?query=sum%20by%20(job%2Cworkload%2Cdestination_workload%2C"
                       "destination_service%2Cresponse_code)%20(istio_requests_total%7B"
                       "destination_workload%3D%22ratings-v1%22%2Creporter%3D%22destination%22%7D)";
    double sum = -1;
    for (int waited = 0; waited <= timeout_ms; waited += 500) {
        json_t *j = get_json(p->port, path);
        json_t *res = json_object_get(json_object_get(j, "data"), "result");
        if (json_array_size(res) == 1) {
            json_t *m = json_object_get(json_array_get(res, 0), "metric");
            assert_string_equal(json_string_value(json_object_get(m, "job")), "weft-proxies");
            assert_string_equal(json_string_value(json_object_get(m, "workload")), "ratings-v1");
            assert_string_equal(json_string_value(json_object_get(m, "destination_service")),
                                "ratings.default.svc.cluster.local");
            assert_string_equal(json_string_value(json_object_get(m, "response_code")), "200");
            json_t *val = json_object_get(json_array_get(res, 0), "value");
            sum = strtod(json_string_value(json_array_get(val, 1)), NULL);
        }
        json_decref(j);
        if (sum == want) {
            break;
        }
        usleep(500 * 1000);
    }
    return sum;
}

static void test_real_prometheus(void **state)
{
    (void)state;
    /* Requests to ratings through its sidecar's inbound listener. */
    for (int i = 0; i < N_REQUESTS; i++) {
        char *body = NULL;
        int st = wt_http(g.in_port, "GET", "/ratings/0", NULL, 0, &body);
        if (st != 200) {
            fprintf(stderr, "request %d: %d %s\n", i, st, body != NULL ? body : "");
        }
        assert_int_equal(st, 200);
        assert_non_null(strstr(body, "\"ratings\""));
        wf_free(body);
    }

    /* 1. The shipped file with the read token: discovery, scraping, Istio's metric. Beside
     * it, the read-open form against this control plane (which needs the token): refused. */
    prom_t tok = {0}, open = {0};
    assert_int_equal(write_config(g.cp.dir, "prom-token.yml", g.cp.reader_file), 0);
    assert_int_equal(write_config(g.cp.dir, "prom-open.yml", NULL), 0);
    assert_true(prom_start(&tok, "deployprom-tok", "prom-token.yml"));
    assert_true(prom_start(&open, "deployprom-open", "prom-open.yml"));
    check_proxy_target(&tok);
    double sum = wait_requests(&tok, N_REQUESTS, 60000);
    printf("read token: sidecar 127.0.0.1:%d discovered as ratings-v1 and up; "
           "istio_requests_total{destination_workload=\"ratings-v1\"} = %g (sent %d)\n",
           g.admin_port, sum, N_REQUESTS);
    assert_true(sum == N_REQUESTS);
    char instance[64];
    snprintf(instance, sizeof(instance), "127.0.0.1:%d", g.cp.port);
    json_t *t = wait_up(&tok, "weft-control", instance, 60000);
    assert_non_null(t);
    json_decref(t);
    snprintf(instance, sizeof(instance), "127.0.0.1:%d", g.col_port);
    t = wait_up(&tok, "weft-collector", instance, 60000);
    assert_non_null(t);
    json_decref(t);

    double failures = -1;
    for (int waited = 0; waited < 20000 && failures < 1; waited += 250) {
        failures = prom_metric(open.port, "prometheus_sd_http_failures_total");
        usleep(250 * 1000);
    }
    printf("read-open form against a control plane that needs the token: "
           "prometheus_sd_http_failures_total = %g, no proxy target\n",
           failures);
    assert_true(failures >= 1);
    json_t *targets = get_json(open.port, "/api/v1/targets");
    assert_non_null(targets);
    assert_null(find_target(targets, "weft-proxies", NULL));
    json_decref(targets);
    prom_stop(&open);
    prom_stop(&tok);

    /* 2. The control plane with --read-open: the form without a token discovers the sidecar. */
    assert_true(clean_exit(wt_control_stop(&g.cp)));
    const char *read_open[] = {"--read-open", NULL};
    assert_int_equal(wt_control_start(&g.cp, read_open), 0);
    assert_true(wt_wait_port(g.cp.port, 10000));
    prom_t open2 = {0};
    assert_true(prom_start(&open2, "deployprom-open2", "prom-open.yml"));
    check_proxy_target(&open2);
    sum = wait_requests(&open2, N_REQUESTS, 60000);
    printf("--read-open: discovered and up without a token; istio_requests_total = %g\n", sum);
    assert_true(sum == N_REQUESTS);
    prom_stop(&open2);
}

static int setup(void **state)
{
    (void)state;
    char src[600];
    snprintf(src, sizeof(src), "%s", __FILE__);
    snprintf(g.shipped, sizeof(g.shipped), "%s/../../deploy/prometheus/prometheus.yml",
             dirname(src));
    if (wt_control_new(&g.cp, "deployprom", NULL) != 0) {
        return -1;
    }
    /* Distinct ports: two probes in a row may be given the same one. */
    do {
        g.col_port = wt_free_port();
        g.app_port = wt_free_port();
        g.in_port = wt_free_port();
    } while (g.col_port == g.app_port || g.col_port == g.in_port || g.app_port == g.in_port ||
             g.cp.port == g.col_port || g.cp.port == g.app_port || g.cp.port == g.in_port);

    char listen[64], data[800], log[800];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", g.col_port);
    snprintf(data, sizeof(data), "%s/collector", g.cp.dir);
    snprintf(log, sizeof(log), "%s/collector.log", g.cp.dir);
    char *col_argv[] = {
        (char *)wt_weft_bin(), "collector", "--listen",        listen, "--data-dir", data,
        "--otlp-listen",       "off",       "--zipkin-listen", "off",  NULL};
    g.col_pid = wt_spawn(col_argv, log);
    if (!wt_wait_port(g.col_port, 20000)) {
        print_file(log);
        return -1;
    }

    char url[64], boot[800], app_listen[64], app_port[16], inbound[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", g.cp.port);
    snprintf(boot, sizeof(boot), "%s/bootstrap-token", g.cp.data);
    snprintf(app_listen, sizeof(app_listen), "127.0.0.1:%d", g.app_port);
    snprintf(app_port, sizeof(app_port), "%d", g.app_port);
    snprintf(inbound, sizeof(inbound), "127.0.0.1:%d", g.in_port);
    snprintf(g.run_log, sizeof(g.run_log), "%s/run-ratings.log", g.cp.dir);
    char *run_argv[] = {(char *)wt_weft_bin(),
                        "run",
                        "--service",
                        "ratings",
                        "--version",
                        "v1",
                        "--port",
                        app_port,
                        "--inbound",
                        inbound,
                        "--control",
                        url,
                        "--bootstrap-token-file",
                        boot,
                        "--",
                        (char *)wt_weft_bin(),
                        "demo-app",
                        "--role",
                        "ratings",
                        "--listen",
                        app_listen,
                        NULL};
    g.run_pid = wt_spawn(run_argv, g.run_log);
    if (!file_has(g.run_log, "ratings is in the mesh", 30000) || !wt_wait_port(g.app_port, 10000)) {
        print_file(g.run_log);
        return -1;
    }
    char *text = wt_read_file(g.run_log, NULL);
    const char *adm = strstr(text, "sidecar admin (metrics) at 127.0.0.1:");
    if (adm != NULL) {
        g.admin_port = atoi(adm + strlen("sidecar admin (metrics) at 127.0.0.1:"));
    }
    wf_free(text);
    if (g.admin_port <= 0) {
        print_file(g.run_log);
        return -1;
    }
    return 0;
}

/* Whether the log at dir/name holds a sanitizer report (printing it when it does). */
static bool sanitizer_report(const char *name)
{
    char path[800];
    snprintf(path, sizeof(path), "%s/%s", g.cp.dir, name);
    char *text = wt_read_file(path, NULL);
    bool bad = text != NULL && (strstr(text, "ERROR: AddressSanitizer") != NULL ||
                                strstr(text, "runtime error:") != NULL ||
                                strstr(text, "ERROR: LeakSanitizer") != NULL);
    wf_free(text);
    if (bad) {
        print_file(path);
    }
    return bad;
}

static int teardown(void **state)
{
    (void)state;
    int rc = 0;
    if (g.run_pid > 0 && !clean_exit(wt_stop(g.run_pid, 15000))) {
        fprintf(stderr, "weft run did not exit cleanly\n");
        rc = -1;
    }
    if (g.col_pid > 0 && !clean_exit(wt_stop(g.col_pid, 15000))) {
        fprintf(stderr, "the collector did not exit cleanly\n");
        rc = -1;
    }
    if (!clean_exit(wt_control_stop(&g.cp))) {
        fprintf(stderr, "the control plane did not exit cleanly\n");
        rc = -1;
    }
    const char *logs[] = {"control.log", "collector.log", "run-ratings.log"};
    for (size_t i = 0; i < sizeof(logs) / sizeof(logs[0]); i++) {
        if (sanitizer_report(logs[i])) {
            rc = -1;
        }
    }
    wt_control_free(&g.cp);
    return rc;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (wt_pd_prometheus_bin() == NULL) {
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_promtool_check),
        cmocka_unit_test(test_real_prometheus),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
