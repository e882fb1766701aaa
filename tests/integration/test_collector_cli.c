/*
 * test_collector_cli.c - starts the real `weft` binary: the command dispatcher's answers, the
 * collector's flags, its HTTP surface, and a clean shutdown on SIGTERM that leaves a store
 * which opens again.
 */
#include "wf_alloc.h"
#include "wt_util.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

/* Run weft with args, capture combined output; returns the exit code. */
static int run_weft(char *out, size_t outlen, const char *a1, const char *a2, const char *a3)
{
    char *dir = wt_tmpdir("cli");
    char log[4200];
    snprintf(log, sizeof(log), "%s/out.txt", dir);
    char *argv[] = {(char *)wt_weft_bin(), (char *)a1, (char *)a2, (char *)a3, NULL};
    pid_t pid = wt_spawn(argv, log);
    int st = wt_wait(pid, 20000);
    size_t n = 0;
    char *text = wt_read_file(log, &n);
    snprintf(out, outlen, "%s", text ? text : "");
    wf_free(text);
    wt_rm_rf(dir);
    wf_free(dir);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_dispatch(void **state)
{
    char out[8192];
    assert_int_equal(run_weft(out, sizeof(out), "--version", NULL, NULL), 0);
    assert_non_null(strstr(out, "weft 0."));
    assert_int_equal(run_weft(out, sizeof(out), "--help", NULL, NULL), 0);
    assert_non_null(strstr(out, "collector"));
    assert_non_null(strstr(out, "proxy"));
    assert_int_equal(run_weft(out, sizeof(out), "no-such-command", NULL, NULL), 2);
    assert_non_null(strstr(out, "unknown command 'no-such-command'"));
    assert_int_equal(run_weft(out, sizeof(out), "run", "--help", NULL), 0);
    assert_non_null(strstr(out, "-- COMMAND"));
    assert_int_equal(run_weft(out, sizeof(out), "demo", "--help", NULL), 0);
    assert_non_null(strstr(out, "--gateway-port"));
}

static void test_collector_flags(void **state)
{
    char out[8192];
    assert_int_equal(run_weft(out, sizeof(out), "collector", "--help", NULL), 0);
    assert_non_null(strstr(out, "--data-dir"));
    assert_non_null(strstr(out, "--retention"));
    assert_int_equal(run_weft(out, sizeof(out), "collector", "--retension", "3d"), 2);
    assert_non_null(strstr(out, "did you mean --retention?"));
    assert_int_equal(run_weft(out, sizeof(out), "collector", "--retention", "3 days"), 2);
    assert_non_null(strstr(out, "invalid value"));
    assert_int_equal(run_weft(out, sizeof(out), "collector", "--listen", "nowhere"), 2);
    assert_non_null(strstr(out, "invalid --listen"));
}

static pid_t start_collector(const char *dir, int port, const char *log)
{
    char listen[64], ddir[4200];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    snprintf(ddir, sizeof(ddir), "%s/data", dir);
    char *argv[] = {(char *)wt_weft_bin(), "collector", "--listen", listen,
                    "--data-dir",          ddir,        NULL};
    pid_t pid = wt_spawn(argv, log);
    assert_true(wt_wait_port(port, 15000));
    return pid;
}

static void test_collector_http_and_shutdown(void **state)
{
    char *dir = wt_tmpdir("col");
    char log[4200];
    snprintf(log, sizeof(log), "%s/collector.log", dir);
    int port = wt_free_port();
    pid_t pid = start_collector(dir, port, log);

    char *body = NULL;
    assert_int_equal(wt_http(port, "GET", "/-/healthy", NULL, 0, &body), 200);
    assert_non_null(strstr(body, "Healthy"));
    wf_free(body);
    assert_int_equal(wt_http(port, "GET", "/-/ready", NULL, 0, &body), 200);
    wf_free(body);
    assert_int_equal(wt_http(port, "GET", "/api/v1/status/store", NULL, 0, &body), 200);
    assert_non_null(strstr(body, "\"status\":\"success\""));
    assert_non_null(strstr(body, "\"series\":0"));
    wf_free(body);
    assert_int_equal(wt_http(port, "GET", "/no/such/path", NULL, 0, &body), 404);
    assert_non_null(strstr(body, "\"errorType\":\"not_found\""));
    wf_free(body);
    /* A body the server does not want: refused, and the server keeps serving. */
    static char junk[300000];
    memset(junk, 'x', sizeof(junk));
    assert_int_equal(wt_http(port, "POST", "/-/healthy", junk, sizeof(junk), &body), 405);
    wf_free(body);
    assert_int_equal(wt_http(port, "GET", "/-/healthy", NULL, 0, NULL), 200);
    /* SIGHUP (a closed terminal, `systemctl reload`) does not stop it. */
    assert_int_equal(kill(pid, SIGHUP), 0);
    usleep(200 * 1000);
    assert_int_equal(wt_http(port, "GET", "/-/healthy", NULL, 0, NULL), 200);

    int st = wt_stop(pid, 15000);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);

    /* The store it closed opens again, and a second instance cannot take a busy port. */
    pid = start_collector(dir, port, log);
    char out[8192];
    char listen[64];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    char *ddir = wt_tmpdir("col2");
    char *argv[] = {(char *)wt_weft_bin(), "collector", "--listen", listen,
                    "--data-dir",          ddir,        NULL};
    char log2[4200];
    snprintf(log2, sizeof(log2), "%s/second.log", dir);
    pid_t second = wt_spawn(argv, log2);
    int st2 = wt_wait(second, 15000);
    assert_true(WIFEXITED(st2));
    assert_int_not_equal(WEXITSTATUS(st2), 0);
    char *text = wt_read_file(log2, NULL);
    snprintf(out, sizeof(out), "%s", text ? text : "");
    wf_free(text);
    assert_non_null(strstr(out, "cannot listen"));
    st = wt_stop(pid, 15000);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    wt_rm_rf(ddir);
    wf_free(ddir);
    wt_rm_rf(dir);
    wf_free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dispatch),
        cmocka_unit_test(test_collector_flags),
        cmocka_unit_test(test_collector_http_and_shutdown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
