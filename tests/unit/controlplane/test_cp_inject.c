/*
 * test_cp_inject.c - `weft inject`'s rewriter: golden outputs for the samples (reviewed by
 * eye, in tests/data/inject/), idempotency, Istio's skip rules, every kind, the Service
 * rewrite, document order and byte-exact pass-through, hostile input (bounded memory, clear
 * errors), and the manifests of deploy/k8s/ (each document parses and is named; the CRDs are
 * the control plane's kinds; the users Secret is a file the collector accepts).
 */
#include <glob.h>
#include <libgen.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <cmocka.h>

#include "col_users.h"
#include "cp_err.h"
#include "cp_inject.h"
#include "cp_kinds.h"
#include "cp_yaml.h"
#include "wf_alloc.h"
#include "wf_buf.h"
#include "wt_util.h"

static char src_root[4096]; /* the repository */

/* The options `weft inject` runs with by default, the image pinned so goldens do not follow
 * the version. */
static cp_inject_opts_t defaults(void)
{
    return (cp_inject_opts_t){
        .image = "weft:0.1.0",
        .control = "http://weft-control.weft-system:15010",
        .cpu_request = "10m",
        .memory_request = "32Mi",
        .memory_limit = "128Mi",
        .native_sidecar = true,
    };
}

static char *read_rel(const char *rel, size_t *len)
{
    char path[8192];
    snprintf(path, sizeof(path), "%s/%s", src_root, rel);
    char *text = wt_read_file(path, len);
    if (text == NULL) {
        fail_msg("cannot read %s", path);
    }
    return text;
}

/* Inject text with o; returns the result (NUL-terminated, wf_free it) or NULL with *rc set. */
static char *inject(const char *text, size_t len, const cp_inject_opts_t *o, int *rc,
                    wf_buf_t *notes, cp_err_t *err)
{
    wf_buf_t out;
    wf_buf_init(&out);
    cp_err_t e;
    *rc = cp_inject(text, len, o, &out, notes, err != NULL ? err : &e);
    if (*rc < 0) {
        assert_int_equal(out.len, 0); /* nothing written on failure */
        wf_buf_free(&out);
        return NULL;
    }
    wf_buf_putc(&out, 0);
    return (char *)wf_buf_detach(&out, NULL);
}

static char *inject_ok(const char *text, const cp_inject_opts_t *o, wf_buf_t *notes)
{
    int rc;
    cp_err_t err;
    char *r = inject(text, strlen(text), o, &rc, notes, &err);
    if (r == NULL) {
        fail_msg("cp_inject: %d %s", rc, err.msg);
    }
    return r;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle)) {
        n++;
    }
    return n;
}

static void check_golden(const char *input_rel, const char *golden_rel, size_t pods)
{
    size_t len;
    char *in = read_rel(input_rel, &len);
    char *want = read_rel(golden_rel, NULL);
    cp_inject_opts_t o = defaults();
    wf_buf_t notes;
    wf_buf_init(&notes);
    char *got = inject_ok(in, &o, &notes);
    if (strcmp(got, want) != 0) {
        fprintf(stderr, "%s differs from %s; got:\n%s\n", input_rel, golden_rel, got);
        fail();
    }
    assert_int_equal(count(got, "- name: weft-proxy\n"), pods);
    /* Idempotent: the output goes through unchanged, every pod noted as injected already. */
    wf_buf_reset(&notes);
    char *again = inject_ok(got, &o, &notes);
    assert_string_equal(again, got);
    wf_buf_putc(&notes, 0);
    assert_int_equal(count((const char *)notes.data, "already has a weft-proxy container"), pods);
    wf_free(again);
    wf_free(got);
    wf_free(want);
    wf_free(in);
    wf_buf_free(&notes);
}

static void test_golden_bookinfo(void **state)
{
    (void)state;
    check_golden("deploy/k8s/samples/bookinfo.yaml", "tests/data/inject/bookinfo.injected.yaml", 6);
}

static void test_golden_kinds(void **state)
{
    (void)state;
    check_golden("tests/data/inject/kinds.yaml", "tests/data/inject/kinds.injected.yaml", 9);
}

static void test_golden_anchors(void **state)
{
    (void)state;
    check_golden("tests/data/inject/anchors.yaml", "tests/data/inject/anchors.injected.yaml", 2);
}

/* The pod spec of a parsed injected document, following the kind's path. */
static const cp_yaml_node_t *pod_spec(const cp_yaml_node_t *doc)
{
    const char *kind = cp_yaml_get(doc, "kind")->value.p;
    const cp_yaml_node_t *t = doc;
    if (strcmp(kind, "CronJob") == 0) {
        t = cp_yaml_get(cp_yaml_get(cp_yaml_get(cp_yaml_get(doc, "spec"), "jobTemplate"), "spec"),
                        "template");
    } else if (strcmp(kind, "Pod") != 0) {
        t = cp_yaml_get(cp_yaml_get(doc, "spec"), "template");
    }
    assert_non_null(t);
    return cp_yaml_get(t, "spec");
}

static const cp_yaml_node_t *find_named(const cp_yaml_node_t *seq, const char *name)
{
    for (uint32_t i = 0; seq != NULL && i < seq->n; i++) {
        const cp_yaml_node_t *n = cp_yaml_get(seq->items[i], "name");
        if (n != NULL && strcmp(n->value.p, name) == 0) {
            return seq->items[i];
        }
    }
    return NULL;
}

/* The value after flag in a container's args, or NULL. */
static const char *arg_of(const cp_yaml_node_t *ct, const char *flag)
{
    const cp_yaml_node_t *args = cp_yaml_get(ct, "args");
    for (uint32_t i = 0; args != NULL && i + 1 < args->n; i++) {
        if (strcmp(args->items[i]->value.p, flag) == 0) {
            return args->items[i + 1]->value.p;
        }
    }
    return NULL;
}

static const char *env_of(const cp_yaml_node_t *ct, const char *name)
{
    const cp_yaml_node_t *e = find_named(cp_yaml_get(ct, "env"), name);
    return e != NULL && cp_yaml_get(e, "value") ? cp_yaml_get(e, "value")->value.p : NULL;
}

/* Every kind, read back as YAML: the sidecar is where the kind keeps its pod, with the service,
 * version and port its labels and containers give, and the app containers have the proxy. */
static void test_every_kind(void **state)
{
    (void)state;
    char *in = read_rel("tests/data/inject/kinds.yaml", NULL);
    cp_inject_opts_t o = defaults();
    char *got = inject_ok(in, &o, NULL);
    cp_yaml_stream_t *s;
    cp_err_t err;
    assert_int_equal(cp_yaml_parse(got, strlen(got), NULL, &s, &err), 0);
    assert_int_equal(s->n_docs, 11);
    static const struct {
        uint32_t doc;
        const char *kind, *service, *version, *port;
    } want[] = {
        {1, "Pod", "web", NULL, "8080"},
        {2, "Deployment", "api", "v2", "9091"}, /* 9090 is UDP */
        {3, "StatefulSet", "db", NULL, "5432"},
        {4, "DaemonSet", "agent", NULL, "7000"}, /* the annotation */
        {5, "ReplicaSet", "cache", "1.0", "6379"},
        {6, "ReplicationController", "legacy", NULL, "80"},
        {7, "Job", "migrate", NULL, "8000"},
        {8, "CronJob", "report", NULL, "8001"},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const cp_yaml_node_t *doc = s->docs[want[i].doc];
        assert_string_equal(cp_yaml_get(doc, "kind")->value.p, want[i].kind);
        const cp_yaml_node_t *spec = pod_spec(doc);
        const cp_yaml_node_t *init = cp_yaml_get(spec, "initContainers");
        /* A native sidecar, first among the init containers. */
        const cp_yaml_node_t *px = init->items[0];
        assert_string_equal(cp_yaml_get(px, "name")->value.p, "weft-proxy");
        assert_string_equal(cp_yaml_get(px, "restartPolicy")->value.p, "Always");
        assert_string_equal(arg_of(px, "--service"), want[i].service);
        assert_string_equal(arg_of(px, "--app-port"), want[i].port);
        assert_string_equal(arg_of(px, "--inbound"), "$(POD_IP):15006");
        assert_string_equal(arg_of(px, "--admin"), "$(POD_IP):15000");
        assert_string_equal(arg_of(px, "--outbound"), "127.0.0.1:15001");
        if (want[i].version != NULL) {
            assert_string_equal(arg_of(px, "--version"), want[i].version);
        } else {
            assert_null(arg_of(px, "--version"));
        }
        const cp_yaml_node_t *cts = cp_yaml_get(spec, "containers");
        assert_null(find_named(cts, "weft-proxy"));
        for (uint32_t k = 0; k < cts->n; k++) {
            assert_string_equal(env_of(cts->items[k], "http_proxy"), "http://127.0.0.1:15001");
            assert_string_equal(env_of(cts->items[k], "HTTP_PROXY"), "http://127.0.0.1:15001");
            assert_string_equal(env_of(cts->items[k], "NO_PROXY"), "localhost,127.0.0.1,::1");
        }
        const cp_yaml_node_t *vol =
            find_named(cp_yaml_get(spec, "volumes"), "weft-bootstrap-token");
        assert_string_equal(cp_yaml_get(cp_yaml_get(vol, "secret"), "secretName")->value.p,
                            "weft-bootstrap-token");
    }
    /* The user's own HTTP_PROXY is replaced, other variables kept in order. */
    const cp_yaml_node_t *api = cp_yaml_get(pod_spec(s->docs[2]), "containers")->items[0];
    assert_string_equal(cp_yaml_get(api, "env")->items[0]->pairs[0].value->value.p, "LOG");
    assert_int_equal(cp_yaml_get(api, "env")->n, 5);
    /* StatefulSet: its own init container and volume stay, after the sidecar's. */
    const cp_yaml_node_t *db = pod_spec(s->docs[3]);
    assert_int_equal(cp_yaml_get(db, "initContainers")->n, 2);
    assert_non_null(find_named(cp_yaml_get(db, "initContainers"), "init-schema"));
    assert_non_null(find_named(cp_yaml_get(db, "volumes"), "conf"));
    /* List: its Service's port 80 (to 8080, web's app port) now reaches the sidecar; port 81
     * does not lead to the app and stays; the Deployment inside is injected. */
    const cp_yaml_node_t *items = cp_yaml_get(s->docs[9], "items");
    const cp_yaml_node_t *ports = cp_yaml_get(cp_yaml_get(items->items[0], "spec"), "ports");
    assert_string_equal(cp_yaml_get(ports->items[0], "targetPort")->value.p, "15006");
    assert_string_equal(cp_yaml_get(ports->items[1], "targetPort")->value.p, "9999");
    assert_string_equal(
        arg_of(cp_yaml_get(pod_spec(items->items[1]), "initContainers")->items[0], "--service"),
        "inlist");
    /* The ConfigMap and the Namespace pass through byte for byte. */
    assert_non_null(strstr(got, "data:\n  # Not a workload: copied as it is, comments and quotes "
                                "included.\n  mode: 'fast'\n"));
    assert_non_null(strstr(got, "# Every kind weft inject rewrites, and two it passes through.\n"
                                "apiVersion: v1\nkind: Namespace\n"));
    cp_yaml_free(s);
    wf_free(got);
    wf_free(in);
}

static void test_skips(void **state)
{
    (void)state;
    size_t len;
    char *in = read_rel("tests/data/inject/skips.yaml", &len);
    cp_inject_opts_t o = defaults();
    wf_buf_t notes;
    wf_buf_init(&notes);
    char *got = inject_ok(in, &o, &notes);
    assert_string_equal(got, in); /* nothing to do: byte for byte */
    wf_buf_putc(&notes, 0);
    assert_string_equal(
        (const char *)notes.data,
        "document 2 (Deployment opted-out): skipped: sidecar.istio.io/inject is false\n"
        "document 3 (Pod opted-out-by-label): skipped: sidecar.istio.io/inject is false\n"
        "document 4 (DaemonSet node-exporter): skipped: hostNetwork (the sidecar's ports would "
        "be the node's)\n"
        "document 5 (Job no-port): skipped: no containerPort and no weft.io/app-port annotation "
        "(the sidecar needs the port the app serves on)\n"
        "document 6 (Deployment old): skipped: its Namespace in this input is not labelled "
        "weft-injection=enabled\n");
    wf_free(got);
    wf_free(in);
    wf_buf_free(&notes);
}

static const char *small_pod = "apiVersion: v1\n"
                               "kind: Pod\n"
                               "metadata:\n"
                               "  name: p\n"
                               "  labels: {app: p}\n"
                               "spec:\n"
                               "  containers:\n"
                               "  - name: app\n"
                               "    image: app:1\n"
                               "    ports: [{containerPort: 8080}]\n";

static void test_classic_sidecar_and_options(void **state)
{
    (void)state;
    cp_inject_opts_t o = {.image = "registry.example/weft:9",
                          .control = "http://ctl:15010",
                          .collector = "http://col:20001",
                          .log_level = "debug",
                          .native_sidecar = false};
    char *got = inject_ok(small_pod, &o, NULL);
    cp_yaml_stream_t *s;
    cp_err_t err;
    assert_int_equal(cp_yaml_parse(got, strlen(got), NULL, &s, &err), 0);
    const cp_yaml_node_t *spec = cp_yaml_get(s->docs[0], "spec");
    assert_null(cp_yaml_get(spec, "initContainers"));
    const cp_yaml_node_t *cts = cp_yaml_get(spec, "containers");
    assert_int_equal(cts->n, 2);
    const cp_yaml_node_t *px = cts->items[1];
    assert_string_equal(cp_yaml_get(px, "name")->value.p, "weft-proxy");
    assert_string_equal(cp_yaml_get(px, "image")->value.p, "registry.example/weft:9");
    assert_null(cp_yaml_get(px, "restartPolicy"));
    assert_null(cp_yaml_get(px, "startupProbe"));
    assert_non_null(cp_yaml_get(px, "readinessProbe"));
    assert_null(cp_yaml_get(px, "resources")); /* none asked for */
    assert_string_equal(arg_of(px, "--control"), "http://ctl:15010");
    assert_string_equal(arg_of(px, "--collector"), "http://col:20001");
    assert_string_equal(arg_of(px, "--log-level"), "debug");
    /* Idempotent in this shape too. */
    char *again = inject_ok(got, &o, NULL);
    assert_string_equal(again, got);
    wf_free(again);
    cp_yaml_free(s);
    wf_free(got);
}

/* Services: same namespace, selector subset of the pod's labels, the port leading to the app
 * (by number, by name, or by port when no targetPort); UDP and other namespaces untouched. */
static void test_services(void **state)
{
    (void)state;
    const char *text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: a\n"
                       "  labels: {app: p, tier: web}\n"
                       "spec:\n  containers:\n  - name: app\n    image: x\n"
                       "    ports: [{containerPort: 8080, name: web}]\n"
                       "---\n"
                       "apiVersion: v1\nkind: Service\nmetadata: {name: byname, namespace: a}\n"
                       "spec:\n  selector: {app: p}\n"
                       "  ports: [{port: 80, targetPort: web}, {port: 8080, protocol: UDP}]\n"
                       "---\n"
                       "apiVersion: v1\nkind: Service\nmetadata: {name: noport, namespace: a}\n"
                       "spec:\n  selector: {app: p, tier: web}\n  ports: [{port: 8080}]\n"
                       "---\n"
                       "apiVersion: v1\nkind: Service\nmetadata: {name: otherns, namespace: b}\n"
                       "spec:\n  selector: {app: p}\n  ports: [{port: 8080}]\n"
                       "---\n"
                       "apiVersion: v1\nkind: Service\nmetadata: {name: nomatch, namespace: a}\n"
                       "spec:\n  selector: {app: p, tier: db}\n  ports: [{port: 8080}]\n"
                       "---\n"
                       "apiVersion: v1\nkind: Service\nmetadata: {name: noselector, namespace: a}\n"
                       "spec:\n  ports: [{port: 8080}]\n";
    cp_inject_opts_t o = defaults();
    char *got = inject_ok(text, &o, NULL);
    cp_yaml_stream_t *s;
    cp_err_t err;
    assert_int_equal(cp_yaml_parse(got, strlen(got), NULL, &s, &err), 0);
    assert_int_equal(s->n_docs, 6);
#define PORT(d, i)                                                                                 \
    cp_yaml_get(cp_yaml_get(cp_yaml_get(s->docs[d], "spec"), "ports")->items[i], "targetPort")
    assert_string_equal(PORT(1, 0)->value.p, "15006");
    assert_null(PORT(1, 1));
    assert_string_equal(PORT(2, 0)->value.p, "15006");
    assert_null(PORT(3, 0));
    assert_null(PORT(4, 0));
    assert_null(PORT(5, 0));
#undef PORT
    /* The untouched Services are the input's bytes. */
    assert_non_null(strstr(got, "metadata: {name: otherns, namespace: b}\n"));
    assert_non_null(strstr(got, "metadata: {name: nomatch, namespace: a}\n"));
    cp_yaml_free(s);
    wf_free(got);
}

/* Separators, empty documents, content on the `---` line, `...`, CRLF, comments-only input. */
static void test_documents(void **state)
{
    (void)state;
    cp_inject_opts_t o = defaults();
    const char *keep[] = {"", "# only a comment\n", "---\n", "a: 1\n---\n---\nb: 2\n...\n",
                          "kind: ConfigMap\r\nmetadata:\r\n  name: crlf\r\n"};
    for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
        char *got = inject_ok(keep[i], &o, NULL);
        assert_string_equal(got, keep[i]);
        wf_free(got);
    }
    /* A pod written on its separator's line, between two untouched documents. */
    const char *text = "x: 1\n"
                       "--- {kind: Pod, metadata: {name: p}, spec: {containers: [{name: a, "
                       "image: a, ports: [{containerPort: 1}]}]}}\n"
                       "# trailing comment of the pod: lost\n"
                       "---\n"
                       "y: 2\n";
    char *got = inject_ok(text, &o, NULL);
    assert_true(strncmp(got, "x: 1\n---\nkind: Pod\nmetadata:\n  name: p\n", 37) == 0);
    assert_non_null(strstr(got, "\n---\ny: 2\n"));
    assert_null(strstr(got, "trailing comment"));
    assert_int_equal(count(got, "---"), 2);
    wf_free(got);
    /* A lone CR (and NEL) is a line break to YAML: the `---` line ends there, the content
     * that follows it is not copied as part of that line (found by libFuzzer). */
    const char *cr = "x: 1\n---\rkind: Pod\rmetadata: {name: p}\rspec: {containers: [{name: a, "
                     "ports: [{containerPort: 1}]}]}\r";
    got = inject_ok(cr, &o, NULL);
    assert_true(strncmp(got, "x: 1\n---\rkind: Pod\nmetadata:\n", 29) == 0);
    assert_int_equal(count(got, "kind: Pod"), 1);
    char *again = inject_ok(got, &o, NULL);
    assert_string_equal(again, got);
    wf_free(again);
    wf_free(got);
    const char *nel = "x: 1\n---\xc2\x85kind: Pod\nmetadata: {name: p}\nspec: {containers: "
                      "[{name: a, ports: [{containerPort: 1}]}]}\n";
    got = inject_ok(nel, &o, NULL);
    assert_true(strncmp(got, "x: 1\n---\xc2\x85kind: Pod\n", 20) == 0);
    assert_int_equal(count(got, "kind: Pod"), 1);
    wf_free(got);
    /* CRLF around a rewritten document: the untouched ones keep their CRLF. */
    const char *crlf = "a: 1\r\n---\r\nkind: Pod\r\nmetadata: {name: p}\r\nspec:\r\n"
                       "  containers: [{name: a, image: a, ports: [{containerPort: 1}]}]\r\n"
                       "---\r\nb: 2\r\n";
    got = inject_ok(crlf, &o, NULL);
    assert_true(strncmp(got, "a: 1\r\n---\r\nkind: Pod\n", 21) == 0);
    size_t gl = strlen(got);
    assert_string_equal(got + gl - 11, "---\r\nb: 2\r\n");
    wf_free(got);
}

static void expect_error_lim(const char *text, size_t len, const cp_yaml_limits_t *lim, int code,
                             const char *msg_part)
{
    cp_inject_opts_t o = defaults();
    o.limits = lim;
    wf_buf_t notes;
    wf_buf_init(&notes);
    cp_err_t err;
    int rc;
    char *got = inject(text, len, &o, &rc, &notes, &err);
    assert_null(got);
    assert_int_equal(rc, code);
    if (strstr(err.msg, msg_part) == NULL) {
        fail_msg("error '%s' lacks '%s'", err.msg, msg_part);
    }
    assert_int_equal(notes.len, 0);
    wf_buf_free(&notes);
}

static void expect_error(const char *text, size_t len, int code, const char *msg_part)
{
    expect_error_lim(text, len, NULL, code, msg_part);
}

static long max_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* Hostile input fails with a clear error, writes nothing, and stays within bounded memory.
 * Runs first so that the high-water mark it reads is its own. */
static void test_hostile(void **state)
{
    (void)state;
    long before = max_rss_kb();
    /* Billion laughs: 10 levels of 10 aliases would be 10^10 nodes once expanded. */
    wf_buf_t b;
    wf_buf_init(&b);
    wf_buf_puts(&b, "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for (int i = 1; i <= 10; i++) {
        wf_buf_printf(&b, "a%d: &a%d [", i, i);
        for (int k = 0; k < 10; k++) {
            wf_buf_printf(&b, "%s*a%d", k ? ", " : "", i - 1);
        }
        wf_buf_puts(&b, "]\n");
    }
    expect_error((const char *)b.data, b.len, CP_E_LIMIT, "aliases count as their expansion");
    /* With `weft inject`'s larger limits too. */
    cp_yaml_limits_t cli;
    cp_inject_limits(&cli);
    expect_error_lim((const char *)b.data, b.len, &cli, CP_E_LIMIT, "more than 1000000 nodes");
    /* 10 MB: refused before parsing. */
    wf_buf_reset(&b);
    wf_buf_puts(&b, "kind: ConfigMap\ndata:\n");
    while (b.len < 10u << 20) {
        wf_buf_printf(&b, "  k%zu: 0123456789012345678901234567890123456789\n", b.len);
    }
    expect_error((const char *)b.data, b.len, CP_E_LIMIT, "larger than 4194304 bytes");
    while (b.len < 20u << 20) {
        wf_buf_printf(&b, "  k%zu: 0123456789012345678901234567890123456789\n", b.len);
    }
    expect_error_lim((const char *)b.data, b.len, &cli, CP_E_LIMIT, "larger than 16777216 bytes");
    /* Nesting 1,000 deep. */
    wf_buf_reset(&b);
    for (int i = 0; i < 1000; i++) {
        wf_buf_putc(&b, '[');
    }
    expect_error((const char *)b.data, b.len, CP_E_LIMIT, "line 1 column");
    wf_buf_free(&b);
    long grown_mb = (max_rss_kb() - before) / 1024;
    print_message("hostile inputs: max RSS grew by %ld MiB\n", grown_mb);
    assert_true(grown_mb < 128);
    /* Not YAML, not UTF-8. */
    const char *bad = "kind: Pod\nspec: [1, 2\n";
    expect_error(bad, strlen(bad), CP_E_SYNTAX, "line 3");
    expect_error("a: \xff\xfe\n", 6, CP_E_SYNTAX, "UTF-8");
    expect_error("a: 1\na: 2\n", 10, CP_E_SYNTAX, "duplicate");
}

/* A workload whose pod template is malformed is an error naming the document, not a pass. */
static void test_invalid_workloads(void **state)
{
    (void)state;
    const char *no_tmpl = "kind: ConfigMap\n---\nkind: Deployment\nmetadata: {name: d}\nspec: {}\n";
    expect_error(no_tmpl, strlen(no_tmpl), CP_E_INVALID,
                 "document 2 (Deployment d): line 5 column 7: no mapping template");
    const char *no_cts = "kind: Pod\nmetadata: {name: p}\nspec: {containers: x}\n";
    expect_error(no_cts, strlen(no_cts), CP_E_INVALID, "the pod spec has no list of containers");
    const char *bad_env =
        "kind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, env: {a: b}, ports: "
        "[{containerPort: 1}]}]}\n";
    expect_error(bad_env, strlen(bad_env), CP_E_INVALID, "env must be a list");
    const char *bad_port = "kind: Pod\nmetadata:\n  name: p\n  annotations: {weft.io/app-port: "
                           "http}\nspec: {containers: [{name: a}]}\n";
    expect_error(bad_port, strlen(bad_port), CP_E_INVALID, "weft.io/app-port must be a port");
    const char *taken = "kind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, ports: "
                        "[{containerPort: 15006}]}]}\n";
    expect_error(taken, strlen(taken), CP_E_INVALID,
                 "the app's port 15006 is one of the sidecar's (15000, 15001, 15006)");
    const char *bad_list = "kind: List\nitems: {a: 1}\n";
    expect_error(bad_list, strlen(bad_list), CP_E_INVALID, "a List's items must be a list");
}

/* ---- deploy/k8s ---- */

/* Every label of sel is in labels, with the same value. */
static bool labels_match(const cp_yaml_node_t *sel, const cp_yaml_node_t *labels)
{
    if (sel == NULL || sel->kind != CP_YAML_MAP || labels == NULL) {
        return false;
    }
    for (uint32_t i = 0; i < sel->n; i++) {
        const cp_yaml_node_t *v = cp_yaml_get(labels, sel->pairs[i].key->value.p);
        if (v == NULL || strcmp(v->value.p, sel->pairs[i].value->value.p) != 0) {
            return false;
        }
    }
    return true;
}

static void check_manifest(const char *path)
{
    size_t len;
    char *text = wt_read_file(path, &len);
    assert_non_null(text);
    cp_yaml_stream_t *s = NULL;
    cp_err_t err;
    if (cp_yaml_parse(text, len, NULL, &s, &err) != 0) {
        fail_msg("%s: %s", path, err.msg);
    }
    assert_true(s->n_docs > 0);
    for (uint32_t i = 0; i < s->n_docs; i++) {
        const cp_yaml_node_t *d = s->docs[i];
        const cp_yaml_node_t *name = cp_yaml_get(cp_yaml_get(d, "metadata"), "name");
        if (cp_yaml_get(d, "apiVersion") == NULL || cp_yaml_get(d, "kind") == NULL ||
            name == NULL || name->kind != CP_YAML_SCALAR || name->value.len == 0) {
            fail_msg("%s: document %u lacks apiVersion, kind or metadata.name", path, i + 1);
        }
        /* What an API server would refuse: a workload whose selector misses its own pods. */
        const cp_yaml_node_t *spec = cp_yaml_get(d, "spec");
        const cp_yaml_node_t *ml = cp_yaml_get(cp_yaml_get(spec, "selector"), "matchLabels");
        const cp_yaml_node_t *tl =
            cp_yaml_get(cp_yaml_get(cp_yaml_get(spec, "template"), "metadata"), "labels");
        if (ml != NULL && !labels_match(ml, tl)) {
            fail_msg("%s: document %u: selector does not match its template", path, i + 1);
        }
        /* A Service whose selector picks no pod template of its file is a typo. */
        const cp_yaml_node_t *kind = cp_yaml_get(d, "kind");
        const cp_yaml_node_t *sel = cp_yaml_get(spec, "selector");
        if (strcmp(kind->value.p, "Service") == 0 && sel != NULL) {
            bool found = false;
            for (uint32_t j = 0; j < s->n_docs && !found; j++) {
                const cp_yaml_node_t *t = cp_yaml_get(cp_yaml_get(s->docs[j], "spec"), "template");
                found = labels_match(sel, cp_yaml_get(cp_yaml_get(t, "metadata"), "labels"));
            }
            if (!found) {
                fail_msg("%s: Service %s selects no pod of its file", path, name->value.p);
            }
        }
    }
    cp_yaml_free(s);
    wf_free(text);
}

static void test_deploy_manifests(void **state)
{
    (void)state;
    const char *pats[] = {"deploy/k8s/*.yaml", "deploy/k8s/samples/*.yaml"};
    size_t files = 0;
    for (size_t p = 0; p < 2; p++) {
        char pat[8192];
        snprintf(pat, sizeof(pat), "%s/%s", src_root, pats[p]);
        glob_t g;
        assert_int_equal(glob(pat, 0, NULL, &g), 0);
        for (size_t i = 0; i < g.gl_pathc; i++) {
            check_manifest(g.gl_pathv[i]);
            files++;
        }
        globfree(&g);
    }
    assert_true(files >= 5);

    /* The CRDs are exactly the kinds the control plane serves, with their versions. */
    size_t len;
    char *crds = read_rel("deploy/k8s/01-crds.yaml", &len);
    cp_yaml_stream_t *s;
    cp_err_t err;
    assert_int_equal(cp_yaml_parse(crds, len, NULL, &s, &err), 0);
    size_t n_kinds = 0;
    for (const cp_kind_info_t *k = cp_kinds; k->kind; k++, n_kinds++) {
        char name[128];
        snprintf(name, sizeof(name), "%s.%s", k->plural, k->group);
        const cp_yaml_node_t *found = NULL;
        for (uint32_t i = 0; i < s->n_docs && found == NULL; i++) {
            const cp_yaml_node_t *n = cp_yaml_get(cp_yaml_get(s->docs[i], "metadata"), "name");
            found = strcmp(n->value.p, name) == 0 ? s->docs[i] : NULL;
        }
        if (found == NULL) {
            fail_msg("01-crds.yaml has no CRD %s", name);
        }
        const cp_yaml_node_t *spec = cp_yaml_get(found, "spec");
        assert_string_equal(cp_yaml_get(spec, "group")->value.p, k->group);
        assert_string_equal(cp_yaml_get(cp_yaml_get(spec, "names"), "kind")->value.p, k->kind);
        const cp_yaml_node_t *vers = cp_yaml_get(spec, "versions");
        size_t nv = 0;
        for (const char *const *v = k->versions; *v; v++, nv++) {
            assert_non_null(find_named(vers, *v));
        }
        assert_int_equal(vers->n, nv);
    }
    assert_int_equal(s->n_docs, n_kinds);
    cp_yaml_free(s);
    wf_free(crds);

    /* The users Secret holds a file the collector starts with. */
    char *sec = read_rel("deploy/k8s/03-ui-secret.yaml", &len);
    assert_int_equal(cp_yaml_parse(sec, len, NULL, &s, &err), 0);
    const cp_yaml_node_t *users = cp_yaml_get(cp_yaml_get(s->docs[0], "stringData"), "users");
    assert_non_null(users);
    col_users_t *u = NULL;
    char uerr[256];
    if (col_users_parse(users->value.p, users->value.len, "03-ui-secret.yaml", &u, uerr,
                        sizeof(uerr)) != 0) {
        fail_msg("users: %s", uerr);
    }
    col_users_free(u);
    cp_yaml_free(s);
    wf_free(sec);
}

int main(void)
{
    char *src = wf_strdup(__FILE__);
    snprintf(src_root, sizeof(src_root), "%s/../../..", dirname(src));
    wf_free(src);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_golden_bookinfo),
        cmocka_unit_test(test_golden_kinds),
        cmocka_unit_test(test_golden_anchors),
        cmocka_unit_test(test_every_kind),
        cmocka_unit_test(test_skips),
        cmocka_unit_test(test_classic_sidecar_and_options),
        cmocka_unit_test(test_services),
        cmocka_unit_test(test_documents),
        cmocka_unit_test(test_invalid_workloads),
        cmocka_unit_test(test_deploy_manifests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
