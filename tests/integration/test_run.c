/*
 * test_run.c - `weft run` with a real control plane: a program started under it is a mesh
 * workload (registered, reachable by name through its sidecar over mutual TLS), a second
 * program's HTTP requests go through its own sidecar (http_proxy / HTTP_PROXY set, loopback in
 * NO_PROXY) and reach the first by service name; the program's exit status is weft run's; a
 * SIGTERM to weft run stops the program and the sidecar; bad flags and an unreachable control
 * plane are clear errors.
 */
#include "wf_alloc.h"
#include "wt_control.h"
#include "wt_util.h"

#include <dirent.h>
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

static wt_control_t g_cp;

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

static void print_file(const char *path)
{
    char *text = wt_read_file(path, NULL);
    fprintf(stderr, "--- %s\n%s\n", path, text != NULL ? text : "(none)");
    wf_free(text);
}

/* Whether some other process's command line (arguments joined by spaces) contains s. */
static bool process_with(const char *s)
{
    DIR *proc = opendir("/proc");
    struct dirent *e;
    bool found = false;
    while (proc != NULL && !found && (e = readdir(proc)) != NULL) {
        int pid = atoi(e->d_name);
        if (pid <= 0 || pid == getpid()) {
            continue;
        }
        char path[300];
        snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
        size_t len = 0;
        char *cmd = wt_read_file(path, &len);
        for (size_t i = 0; cmd != NULL && i + 1 < len; i++) {
            if (cmd[i] == '\0') {
                cmd[i] = ' ';
            }
        }
        found = cmd != NULL && strstr(cmd, s) != NULL;
        wf_free(cmd);
    }
    if (proc != NULL) {
        closedir(proc);
    }
    return found;
}

static void test_program_in_the_mesh(void **state)
{
    char url[64], boot[700], app_listen[32], app_port[16], inbound[32], log1[700], log2[700];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", g_cp.port);
    snprintf(boot, sizeof(boot), "%s/bootstrap-token", g_cp.data);
    int ap, in;
    do { /* two different ports (two probes in a row may be given the same one) */
        ap = wt_free_port();
        in = wt_free_port();
    } while (ap == in || ap == g_cp.port || in == g_cp.port);
    snprintf(app_listen, sizeof(app_listen), "127.0.0.1:%d", ap);
    snprintf(app_port, sizeof(app_port), "%d", ap);
    snprintf(inbound, sizeof(inbound), "127.0.0.1:%d", in);
    snprintf(log1, sizeof(log1), "%s/run-ratings.log", g_cp.dir);
    snprintf(log2, sizeof(log2), "%s/run-client.log", g_cp.dir);

    /* 1. ratings under weft run: a demo service, reached through its sidecar at `inbound`. */
    char *ratings_argv[] = {(char *)wt_weft_bin(),
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
    pid_t ratings = wt_spawn(ratings_argv, log1);
    if (!file_has(log1, "ratings is in the mesh", 30000)) {
        print_file(log1);
        fail_msg("ratings did not join the mesh");
    }
    assert_true(wt_wait_port(ap, 10000));
    char *body = NULL;
    assert_int_equal(wt_control_req(g_cp.port, "GET", "/v1/workloads", g_cp.admin, NULL, &body),
                     200);
    assert_non_null(strstr(body, "\"ratings-v1.default\""));
    wf_free(body);

    /* 2. A client program under weft run, without --port (it serves nothing): its environment
     * points at its sidecar, a request by service name goes through the mesh to ratings, and
     * its workload is registered with no port (nothing routes to it). */
    char script[4096], out_file[700], wl_file[700];
    snprintf(out_file, sizeof(out_file), "%s/client.out", g_cp.dir);
    snprintf(wl_file, sizeof(wl_file), "%s/client.workloads", g_cp.dir);
    snprintf(script, sizeof(script),
             "printf '%%s|%%s|%%s|%%s\\n' \"$http_proxy\" \"$HTTP_PROXY\" \"$no_proxy\" "
             "\"$NO_PROXY\" > '%s'; curl -s -w ' %%{http_code}' http://ratings:%d/ratings/0 >> "
             "'%s'; curl -s -H 'Authorization: Bearer %s' %s/v1/workloads > '%s'; exit 7",
             out_file, in, out_file, g_cp.admin, url, wl_file);
    char *client_argv[] = {(char *)wt_weft_bin(),
                           "run",
                           "--service",
                           "client",
                           "--control",
                           url,
                           "--bootstrap-token-file",
                           boot,
                           "--",
                           "sh",
                           "-c",
                           script,
                           NULL};
    pid_t client = wt_spawn(client_argv, log2);
    int st = wt_wait(client, 60000);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 7) {
        print_file(log2);
    }
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 7); /* the program's status */
    char *out = wt_read_file(out_file, NULL);
    assert_non_null(out);
    char *bar = strchr(out, '|');
    assert_non_null(bar);
    size_t plen = (size_t)(bar - out);
    assert_true(plen > strlen("http://127.0.0.1:"));
    assert_memory_equal(out, "http://127.0.0.1:", strlen("http://127.0.0.1:"));
    assert_memory_equal(bar + 1, out, plen); /* HTTP_PROXY the same */
    assert_non_null(strstr(out, "|localhost,127.0.0.1,::1|localhost,127.0.0.1,::1\n"));
    assert_non_null(strstr(out, "{\"id\":0,\"ratings\":{\"Reviewer1\":5,\"Reviewer2\":4}} 200"));
    wf_free(out);
    json_t *wls = json_load_file(wl_file, 0, NULL);
    json_t *items = json_object_get(wls, "items");
    assert_non_null(items);
    int seen = 0;
    for (size_t i = 0; i < json_array_size(items); i++) {
        json_t *w = json_array_get(items, i);
        const char *svc = json_string_value(json_object_get(w, "service"));
        size_t np = json_array_size(json_object_get(w, "ports"));
        if (svc != NULL && strcmp(svc, "client") == 0) {
            assert_int_equal(np, 0);
            seen++;
        } else if (svc != NULL && strcmp(svc, "ratings") == 0) {
            assert_int_equal(np, 1);
            seen++;
        }
    }
    assert_int_equal(seen, 2);
    json_decref(wls);
    /* the client's sidecar is gone with it */
    char side_admin[64];
    snprintf(side_admin, sizeof(side_admin), "--service client --namespace default");
    assert_false(process_with(side_admin));

    /* 3. ratings was called over mutual TLS, as its sidecar's metrics say. */
    char *text = wt_read_file(log1, NULL);
    const char *adm = strstr(text, "sidecar admin (metrics) at 127.0.0.1:");
    assert_non_null(adm);
    int admin_port = atoi(adm + strlen("sidecar admin (metrics) at 127.0.0.1:"));
    wf_free(text);
    char *metrics = NULL;
    assert_int_equal(wt_http(admin_port, "GET", "/stats/prometheus", NULL, 0, &metrics), 200);
    const char *line = strstr(metrics, "istio_requests_total{");
    bool mtls = false;
    for (; line != NULL; line = strstr(line + 1, "istio_requests_total{")) {
        const char *eol = strchr(line, '\n');
        char one[2048];
        snprintf(one, sizeof(one), "%.*s", (int)(eol != NULL ? eol - line : 200), line);
        mtls = mtls || (strstr(one, "reporter=\"destination\"") != NULL &&
                        strstr(one, "connection_security_policy=\"mutual_tls\"") != NULL &&
                        strstr(one, "source_workload=\"client-unknown\"") != NULL);
    }
    wf_free(metrics);
    assert_true(mtls);
    char inb_arg[64];
    snprintf(inb_arg, sizeof(inb_arg), "--inbound %s", inbound);
    assert_true(process_with(inb_arg));

    /* 4. SIGTERM to weft run: the program and its sidecar stop. */
    st = wt_stop(ratings, 15000);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0); /* demo-app ends cleanly on the SIGTERM passed on */
    assert_false(process_with(inb_arg));
    assert_false(process_with(app_listen));
}

static void test_errors(void **state)
{
    char log[700];
    snprintf(log, sizeof(log), "%s/errors.log", g_cp.dir);
    /* no command */
    char *a1[] = {(char *)wt_weft_bin(), "run", "--service", "x", "--port", "1", NULL};
    int st = wt_wait(wt_spawn(a1, log), 10000);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 2);
    assert_true(file_has(log, "a command after -- are required", 0));
    /* --inbound without --port: there would be nothing to forward to */
    char *a0[] = {(char *)wt_weft_bin(), "run", "--service", "x", "--inbound",
                  "127.0.0.1:1",         "--",  "true",      NULL};
    st = wt_wait(wt_spawn(a0, log), 10000);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 2);
    assert_true(file_has(log, "--inbound needs --port", 0));
    /* no control plane there: the program never runs */
    char port[16], dead[64], marker[700], script[800];
    snprintf(port, sizeof(port), "%d", wt_free_port());
    snprintf(dead, sizeof(dead), "http://127.0.0.1:%d", wt_free_port());
    snprintf(marker, sizeof(marker), "%s/ran", g_cp.dir);
    snprintf(script, sizeof(script), "touch '%s'", marker);
    char boot[700];
    snprintf(boot, sizeof(boot), "%s/bootstrap-token", g_cp.data);
    char *a2[] = {(char *)wt_weft_bin(),
                  "run",
                  "--service",
                  "x",
                  "--port",
                  port,
                  "--control",
                  dead,
                  "--bootstrap-token-file",
                  boot,
                  "--ready-timeout",
                  "2s",
                  "--",
                  "sh",
                  "-c",
                  script,
                  NULL};
    st = wt_wait(wt_spawn(a2, log), 30000);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    assert_true(file_has(log, "the sidecar was not ready within 2000 ms", 0));
    assert_int_equal(access(marker, F_OK), -1);
}

static int setup(void **state)
{
    return wt_control_new(&g_cp, "run", NULL);
}

static int teardown(void **state)
{
    wt_control_stop(&g_cp);
    wt_control_free(&g_cp);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_program_in_the_mesh),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
