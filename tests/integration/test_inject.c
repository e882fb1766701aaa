/*
 * test_inject.c - the real `weft inject` binary on deploy/k8s/samples/ and tests/data/inject/:
 * -f FILE, -f - (standard input) and -o FILE give the reviewed golden output, notes and errors
 * go to stderr with the documented exit codes, a refused input writes nothing (an existing -o
 * file stays as it was), and the output injected again is unchanged. Then the sidecar it
 * writes is started as Kubernetes would start it (its args with $(POD_IP) and the other
 * downward-API variables expanded, the listeners moved to free ports of 127.0.0.1 since this
 * machine is shared) against a real control plane: `weft proxy` accepts every flag, registers
 * the workload with the inbound address and becomes ready; so do the control plane and the
 * collector of 02-install.yaml with their manifests' args. No Kubernetes here: what a kubelet
 * would do is not exercised (deploy/k8s/README.md).
 */
#include "cp_yaml.h"
#include "wf_alloc.h"
#include "wt_control.h"
#include "wt_util.h"

#include <libgen.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static char g_root[4096]; /* the repository */
static char *g_dir;       /* this run's temporary directory */

static char *file_in_dir(const char *name)
{
    char path[4600];
    snprintf(path, sizeof(path), "%s/%s", g_dir, name);
    char *t = wt_read_file(path, NULL);
    assert_non_null(t);
    return t;
}

static char *repo_file(const char *rel)
{
    char path[4600];
    snprintf(path, sizeof(path), "%s/%s", g_root, rel);
    char *t = wt_read_file(path, NULL);
    assert_non_null(t);
    return t;
}

/* Run weft with args (a shell fragment) and stdout/stderr into dir/out, dir/err; the exit
 * code. */
static int weft(const char *args)
{
    int rc = wt_sh(g_dir, "'%s' %s > out 2> err", wt_weft_bin(), args);
    assert_true(rc >= 0);
    return rc;
}

static void test_file_stdin_output(void **state)
{
    (void)state;
    char *golden = repo_file("tests/data/inject/bookinfo.injected.yaml");
    char cmd[9000];
    snprintf(cmd, sizeof(cmd), "inject -f '%s/deploy/k8s/samples/bookinfo.yaml' --image weft:0.1.0",
             g_root);
    assert_int_equal(weft(cmd), 0);
    char *out = file_in_dir("out"), *err = file_in_dir("err");
    assert_string_equal(out, golden);
    assert_string_equal(err, "");
    wf_free(out);
    wf_free(err);

    snprintf(cmd, sizeof(cmd),
             "inject -f - --image weft:0.1.0 < '%s/deploy/k8s/samples/bookinfo.yaml'", g_root);
    assert_int_equal(weft(cmd), 0);
    out = file_in_dir("out");
    assert_string_equal(out, golden);
    wf_free(out);

    snprintf(cmd, sizeof(cmd),
             "inject --image=weft:0.1.0 -o injected.yaml -f '%s/deploy/k8s/samples/bookinfo.yaml'",
             g_root);
    assert_int_equal(weft(cmd), 0);
    out = file_in_dir("out");
    assert_string_equal(out, "");
    wf_free(out);
    out = file_in_dir("injected.yaml");
    assert_string_equal(out, golden);
    wf_free(out);

    /* Idempotent through the binary: its output injected again is the same bytes, and each of
     * the six pods is reported as injected already. */
    assert_int_equal(weft("inject -f - --image weft:0.1.0 < injected.yaml"), 0);
    out = file_in_dir("out");
    err = file_in_dir("err");
    assert_string_equal(out, golden);
    size_t notes = 0;
    for (const char *p = strstr(err, "already has a weft-proxy container"); p;
         p = strstr(p + 1, "already has a weft-proxy container")) {
        notes++;
    }
    assert_int_equal(notes, 6);
    wf_free(out);
    wf_free(err);
    wf_free(golden);
}

/* 300 copies of every kind (1.1 MB, 2,700 pods): the output, 7 times larger, is under
 * `weft inject`'s limits and goes through again unchanged. */
static void test_large_idempotent(void **state)
{
    (void)state;
    char cmd[9000];
    snprintf(cmd, sizeof(cmd),
             "for i in $(seq 300); do cat '%s/tests/data/inject/kinds.yaml'; echo ---; done > "
             "many.yaml",
             g_root);
    assert_int_equal(wt_sh(g_dir, "%s", cmd), 0);
    assert_int_equal(weft("inject -f many.yaml -o many.out"), 0);
    assert_int_equal(weft("inject -f many.out -o many.out2"), 0);
    char *a = file_in_dir("many.out"), *b = file_in_dir("many.out2");
    size_t pods = 0;
    for (const char *p = strstr(a, "- name: weft-proxy\n"); p;
         p = strstr(p + 1, "- name: weft-proxy\n")) {
        pods++;
    }
    assert_int_equal(pods, 2700);
    assert_true(strlen(a) > (4u << 20));
    assert_string_equal(a, b);
    wf_free(a);
    wf_free(b);
}

static void test_skips_on_stderr(void **state)
{
    (void)state;
    char cmd[9000];
    snprintf(cmd, sizeof(cmd), "inject -f '%s/tests/data/inject/skips.yaml'", g_root);
    assert_int_equal(weft(cmd), 0);
    char *in = repo_file("tests/data/inject/skips.yaml");
    char *out = file_in_dir("out"), *err = file_in_dir("err");
    assert_string_equal(out, in);
    assert_non_null(strstr(err, "weft inject: document 4 (DaemonSet node-exporter): skipped: "
                                "hostNetwork"));
    size_t lines = 0;
    for (const char *p = err; (p = strchr(p, '\n')) != NULL; p++) {
        lines++;
    }
    assert_int_equal(lines, 5);
    wf_free(in);
    wf_free(out);
    wf_free(err);
}

static void expect_fail(const char *args, int code, const char *stderr_part)
{
    int rc = weft(args);
    char *out = file_in_dir("out"), *err = file_in_dir("err");
    if (rc != code || strstr(err, stderr_part) == NULL) {
        fail_msg("weft %s: exit %d, stderr '%s' (wanted %d and '%s')", args, rc, err, code,
                 stderr_part);
    }
    assert_string_equal(out, "");
    wf_free(out);
    wf_free(err);
}

static void test_errors(void **state)
{
    (void)state;
    expect_fail("inject", 2, "weft inject: -f FILE (or -f - for standard input) is required");
    expect_fail("inject -f x.yaml --imag y", 2, "unknown flag --imag (did you mean --image?)");
    expect_fail("inject -f x.yaml extra", 2, "unexpected argument 'extra'");
    expect_fail("inject -f /nonexistent/x.yaml", 1,
                "weft inject: /nonexistent/x.yaml: No such file or directory");
    assert_int_equal(wt_sh(g_dir, "printf 'kind: Pod\\nspec: [1, 2\\n' > bad.yaml"), 0);
    expect_fail("inject -f bad.yaml", 1, "weft inject: bad.yaml: line 3 column 1:");
    assert_int_equal(wt_sh(g_dir, "printf 'kind: Deployment\\nmetadata: {name: d}\\n' > inv.yaml"),
                     0);
    expect_fail("inject -f - < inv.yaml", 1,
                "weft inject: standard input: document 1 (Deployment d): line 1 column 1: no "
                "mapping spec on the way to the pod template");
    /* 20 MB on standard input: refused after 16 MiB are read. */
    assert_int_equal(wt_sh(g_dir, "head -c 20971520 /dev/zero | tr '\\0' 'a' > big.yaml"), 0);
    expect_fail("inject -f - < big.yaml", 1, "weft inject: standard input: larger than 16777216");
    /* A refused input leaves -o's file as it was. */
    assert_int_equal(wt_sh(g_dir, "printf 'before\\n' > kept.yaml"), 0);
    expect_fail("inject -f bad.yaml -o kept.yaml", 1, "line 3 column 1");
    char *kept = file_in_dir("kept.yaml");
    assert_string_equal(kept, "before\n");
    wf_free(kept);
    /* A billion laughs through the binary. */
    assert_int_equal(wt_sh(g_dir, "printf 'a: &a [x,x,x,x,x,x,x,x,x,x]\\nb: &b [*a,*a,*a,*a,*a,*a,"
                                  "*a,*a,*a,*a]\\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\\nd: &d "
                                  "[*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\\ne: &e [*d,*d,*d,*d,*d,*d,*d,"
                                  "*d,*d,*d]\\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\\n' > bomb.yaml"),
                     0);
    expect_fail("inject -f bomb.yaml", 1, "aliases count as their expansion");
}

/* Replace every occurrence of from in s (an owned string) by to. */
static char *replace(char *s, const char *from, const char *to)
{
    char *p = strstr(s, from);
    if (p == NULL) {
        return s;
    }
    size_t fl = strlen(from), tl = strlen(to), sl = strlen(s);
    char *r = wf_malloc(sl - fl + tl + 1);
    memcpy(r, s, (size_t)(p - s));
    memcpy(r + (p - s), to, tl);
    memcpy(r + (p - s) + tl, p + fl, sl - (size_t)(p - s) - fl + 1);
    wf_free(s);
    return replace(r, from, to);
}

/* The injected sidecar, started with its own args against a real control plane. */
static void test_sidecar_args_run(void **state)
{
    (void)state;
    wt_control_t cp;
    memset(&cp, 0, sizeof(cp));
    assert_int_equal(wt_control_new(&cp, "inject-cp", NULL), 0);
    assert_int_equal(
        wt_sh(g_dir,
              "printf 'apiVersion: v1\\nkind: Pod\\nmetadata:\\n  name: web\\n  labels: {app: "
              "web, version: v7}\\nspec:\\n  containers:\\n  - name: web\\n    image: x\\n    "
              "ports: [{containerPort: 18080}]\\n' > pod.yaml"),
        0);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "inject -f pod.yaml --control http://127.0.0.1:%d", cp.port);
    assert_int_equal(weft(cmd), 0);
    char *out = file_in_dir("out");
    cp_yaml_stream_t *s;
    cp_err_t err;
    assert_int_equal(cp_yaml_parse(out, strlen(out), NULL, &s, &err), 0);
    const cp_yaml_node_t *px =
        cp_yaml_get(cp_yaml_get(s->docs[0], "spec"), "initContainers")->items[0];
    const cp_yaml_node_t *args = cp_yaml_get(px, "args");
    assert_non_null(args);

    int in_port = wt_free_port(), out_port = wt_free_port(), admin_port = wt_free_port();
    while (out_port == in_port) {
        out_port = wt_free_port();
    }
    while (admin_port == in_port || admin_port == out_port) {
        admin_port = wt_free_port();
    }
    char in_addr[32], out_addr[32], admin_addr[32], token[700];
    snprintf(in_addr, sizeof(in_addr), "127.0.0.1:%d", in_port);
    snprintf(out_addr, sizeof(out_addr), "127.0.0.1:%d", out_port);
    snprintf(admin_addr, sizeof(admin_addr), "127.0.0.1:%d", admin_port);
    snprintf(token, sizeof(token), "%s/bootstrap-token", cp.data);
    char *argv[64];
    int k = 0;
    argv[k++] = wf_strdup(wt_weft_bin());
    for (uint32_t i = 0; i < args->n && k < 62; i++) {
        /* What the kubelet does: $(VAR) from the container's env (downward API). */
        char *a = wf_strdup(args->items[i]->value.p);
        a = replace(a, "$(POD_IP):15006", in_addr);
        a = replace(a, "$(POD_IP):15000", admin_addr);
        a = replace(a, "127.0.0.1:15001", out_addr);
        a = replace(a, "$(POD_NAMESPACE)", "default");
        a = replace(a, "$(POD_SERVICE_ACCOUNT)", "web-sa");
        a = replace(a, "/var/run/weft/bootstrap/token", token);
        assert_null(strstr(a, "$("));
        argv[k++] = a;
    }
    argv[k] = NULL;
    char log[4600];
    snprintf(log, sizeof(log), "%s/proxy.log", g_dir);
    pid_t pid = wt_spawn(argv, log);
    char path[64];
    snprintf(path, sizeof(path), "/ready");
    int st = -1;
    for (int i = 0; i < 100 && st != 200; i++) {
        st = wt_http_ex(admin_port, "GET", path, NULL, NULL, 0, 1000, NULL);
        if (st != 200) {
            usleep(100 * 1000);
        }
    }
    char *body = NULL;
    int wst = wt_control_req(cp.port, "GET", "/v1/workloads", cp.admin, NULL, &body);
    wt_stop(pid, 10000);
    if (st != 200) {
        char *l = wt_read_file(log, NULL);
        fail_msg("the injected sidecar was not ready (%d); its log:\n%s", st, l ? l : "");
    }
    assert_int_equal(wst, 200);
    /* Registered as the pod's service and version, reachable at its inbound listener. */
    assert_non_null(strstr(body, "\"service\":\"web\""));
    assert_non_null(strstr(body, "\"version\":\"v7\""));
    assert_non_null(strstr(body, "web-sa"));
    char want[64];
    snprintf(want, sizeof(want), "%d", in_port);
    assert_non_null(strstr(body, want));
    wf_free(body);
    for (int i = 0; i < k; i++) {
        wf_free(argv[i]);
    }
    cp_yaml_free(s);
    wf_free(out);
    wt_control_free(&cp);
}

/* The args of the first container of the workload named name in a parsed file. */
static const cp_yaml_node_t *workload_args(const cp_yaml_stream_t *s, const char *name)
{
    for (uint32_t i = 0; i < s->n_docs; i++) {
        const cp_yaml_node_t *n = cp_yaml_get(cp_yaml_get(s->docs[i], "metadata"), "name");
        const cp_yaml_node_t *t = cp_yaml_get(cp_yaml_get(s->docs[i], "spec"), "template");
        if (n != NULL && t != NULL && strcmp(n->value.p, name) == 0) {
            return cp_yaml_get(cp_yaml_get(cp_yaml_get(t, "spec"), "containers")->items[0], "args");
        }
    }
    return NULL;
}

/* Spawn weft with args, each with the (from, to) pairs of subst replaced in it. */
static pid_t spawn_args(const cp_yaml_node_t *args, const char *const (*subst)[2], size_t n_subst,
                        const char *log)
{
    char *argv[64];
    int k = 0;
    argv[k++] = wf_strdup(wt_weft_bin());
    for (uint32_t i = 0; i < args->n && k < 62; i++) {
        char *a = wf_strdup(args->items[i]->value.p);
        for (size_t j = 0; j < n_subst; j++) {
            a = replace(a, subst[j][0], subst[j][1]);
        }
        argv[k++] = a;
    }
    argv[k] = NULL;
    pid_t pid = wt_spawn(argv, log);
    for (int i = 0; i < k; i++) {
        wf_free(argv[i]);
    }
    return pid;
}

static int wait_status(int port, const char *path, int want)
{
    int st = -1;
    for (int i = 0; i < 150 && st != want; i++) {
        st = wt_http_ex(port, "GET", path, NULL, NULL, 0, 1000, NULL);
        if (st != want) {
            usleep(100 * 1000);
        }
    }
    return st;
}

/*
 * The control plane and the collector of 02-install.yaml started with their manifests' args
 * (paths moved to a temporary directory, addresses to free loopback ports, Secrets' files
 * written as README.md makes them, the users file from 03-ui-secret.yaml): both accept every
 * flag and become ready, and the collector then refuses requests without credentials.
 */
static void test_install_args_run(void **state)
{
    (void)state;
    char *inst = repo_file("deploy/k8s/02-install.yaml");
    char *sec = repo_file("deploy/k8s/03-ui-secret.yaml");
    cp_yaml_stream_t *s = NULL, *ss = NULL;
    cp_err_t err;
    assert_int_equal(cp_yaml_parse(inst, strlen(inst), NULL, &s, &err), 0);
    assert_int_equal(cp_yaml_parse(sec, strlen(sec), NULL, &ss, &err), 0);
    const cp_yaml_node_t *users = cp_yaml_get(cp_yaml_get(ss->docs[0], "stringData"), "users");
    assert_non_null(users);
    char path[4600];
    snprintf(path, sizeof(path), "%s/k8s", g_dir);
    assert_int_equal(wt_sh(g_dir, "mkdir -p k8s/control k8s/collector k8s/users && "
                                  "od -An -tx1 -N32 /dev/urandom | tr -d ' \\n' > k8s/bootstrap && "
                                  "od -An -tx1 -N32 /dev/urandom | tr -d ' \\n' > k8s/admin && "
                                  "od -An -tx1 -N32 /dev/urandom | tr -d ' \\n' > k8s/read"),
                     0);
    snprintf(path, sizeof(path), "%s/k8s/users/users", g_dir);
    wt_write_file(path, users->value.p);

    int ports[5];
    for (int i = 0; i < 5; i++) {
        bool dup;
        do {
            ports[i] = wt_free_port();
            dup = false;
            for (int j = 0; j < i; j++) {
                dup = dup || ports[j] == ports[i];
            }
        } while (dup);
    }
    char a_ctl[32], a_col[32], a_otlp[32], a_zip[32], u_ctl[64], u_col[64];
    char d_ctl[4600], d_col[4600], f_boot[4600], f_admin[4600], f_read[4600], f_users[4600];
    snprintf(a_ctl, sizeof(a_ctl), "127.0.0.1:%d", ports[0]);
    snprintf(a_col, sizeof(a_col), "127.0.0.1:%d", ports[1]);
    snprintf(a_otlp, sizeof(a_otlp), "127.0.0.1:%d", ports[2]);
    snprintf(a_zip, sizeof(a_zip), "127.0.0.1:%d", ports[3]);
    snprintf(u_ctl, sizeof(u_ctl), "http://127.0.0.1:%d", ports[0]);
    snprintf(u_col, sizeof(u_col), "http://127.0.0.1:%d", ports[1]);
    snprintf(d_ctl, sizeof(d_ctl), "%s/k8s/control", g_dir);
    snprintf(d_col, sizeof(d_col), "%s/k8s/collector", g_dir);
    snprintf(f_boot, sizeof(f_boot), "%s/k8s/bootstrap", g_dir);
    snprintf(f_admin, sizeof(f_admin), "%s/k8s/admin", g_dir);
    snprintf(f_read, sizeof(f_read), "%s/k8s/read", g_dir);
    snprintf(f_users, sizeof(f_users), "%s/k8s/users/users", g_dir);
    const char *const subst[][2] = {
        {"http://weft-control.weft-system:15010", u_ctl},
        {"http://weft-collector.weft-system:20001", u_col},
        {"0.0.0.0:15010", a_ctl},
        {"0.0.0.0:20001", a_col},
        {"0.0.0.0:4318", a_otlp},
        {"0.0.0.0:9411", a_zip},
        {"/var/lib/weft-control", d_ctl},
        {"/var/lib/weft", d_col},
        {"/etc/weft/bootstrap/token", f_boot},
        {"/etc/weft/admin/token", f_admin},
        {"/etc/weft/read/token", f_read},
        {"/etc/weft/users/users", f_users},
    };
    size_t n_subst = sizeof(subst) / sizeof(subst[0]);
    char log_ctl[4600], log_col[4600];
    snprintf(log_ctl, sizeof(log_ctl), "%s/k8s/control.log", g_dir);
    snprintf(log_col, sizeof(log_col), "%s/k8s/collector.log", g_dir);
    const cp_yaml_node_t *ctl_args = workload_args(s, "weft-control");
    const cp_yaml_node_t *col_args = workload_args(s, "weft-collector");
    assert_non_null(ctl_args);
    assert_non_null(col_args);
    pid_t ctl = spawn_args(ctl_args, subst, n_subst, log_ctl);
    int st_ctl = wait_status(ports[0], "/healthz", 200);
    pid_t col = spawn_args(col_args, subst, n_subst, log_col);
    int st_col = wait_status(ports[1], "/-/ready", 200);
    /* --users holds: a query without credentials is refused. */
    int st_q = wt_http_ex(ports[1], "GET", "/api/v1/query?query=up", NULL, NULL, 0, 5000, NULL);
    /* The targets need a token; the read token the collector holds reads them, and its
     * discovery through them succeeds (the control plane counts the 2xx answers). */
    int st_t = wt_http_ex(ports[0], "GET", "/v1/targets", NULL, NULL, 0, 5000, NULL);
    char *read_token = wt_read_file(f_read, NULL);
    char auth[200];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", read_token ? read_token : "");
    wf_free(read_token);
    int st_tr = wt_http_ex(ports[0], "GET", "/v1/targets", auth, NULL, 0, 5000, NULL);
    const char *sd_ok = "weft_control_http_requests_total{code=\"2xx\",handler=\"/v1/targets\"}";
    double sd_answers = wt_control_metric(ports[0], sd_ok);
    for (int i = 0; i < 100 && sd_answers < 2; i++) {
        usleep(100 * 1000);
        sd_answers = wt_control_metric(ports[0], sd_ok);
    }
    double sd_refused = wt_control_metric(
        ports[0], "weft_control_http_requests_total{code=\"4xx\",handler=\"/v1/targets\"}");
    wt_stop(col, 10000);
    wt_stop(ctl, 10000);
    if (st_ctl != 200 || st_col != 200) {
        char *l1 = wt_read_file(log_ctl, NULL), *l2 = wt_read_file(log_col, NULL);
        fail_msg("control %d, collector %d\ncontrol log:\n%s\ncollector log:\n%s", st_ctl, st_col,
                 l1 ? l1 : "", l2 ? l2 : "");
    }
    assert_int_equal(st_q, 401);
    assert_int_equal(st_t, 401);
    assert_int_equal(st_tr, 200);
    /* Ours (one) and the collector's (at least one) were answered; only ours was refused. */
    assert_true(sd_answers >= 2);
    assert_true(sd_refused == 1);
    cp_yaml_free(s);
    cp_yaml_free(ss);
    wf_free(inst);
    wf_free(sec);
}

int main(void)
{
    char *src = wf_strdup(__FILE__);
    snprintf(g_root, sizeof(g_root), "%s/../..", dirname(src));
    wf_free(src);
    g_dir = wt_tmpdir("inject");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_stdin_output), cmocka_unit_test(test_large_idempotent),
        cmocka_unit_test(test_skips_on_stderr),   cmocka_unit_test(test_errors),
        cmocka_unit_test(test_sidecar_args_run),  cmocka_unit_test(test_install_args_run),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    wt_rm_rf(g_dir);
    wf_free(g_dir);
    return rc;
}
