/*
 * test_control_cli.c - the real `weft` CLI, as a child process, against a real `weft control`:
 * every file of ../shared/ref/istio/ applied (created/configured, then unchanged), Kubernetes
 * kinds refused with nothing applied, a directory applied in name order, `get` of every kind
 * as a table (kind-specific columns, -A), -o json/yaml/name (the YAML applies back unchanged),
 * a change reported as configured, delete -f and delete KIND NAME, NotFound with kubectl's
 * words and exit 1, bad YAML and invalid fields named by file:line:column with nothing
 * stored, a missing or wrong token, an unreachable control plane, usage errors (exit 2),
 * `workloads`, and `analyze` / `proxy-status` (their output when the control plane serves
 * /v1/analyze and /v1/proxy-status, their one-line error when it does not).
 */
#include "cp_istio.h"
#include "cp_yaml.h"
#include "wf_alloc.h"
#include "wt_control.h"
#include "wt_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <regex.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

typedef struct {
    int code; /* exit status; -1 when it did not exit normally */
    char *out;
    char *err;
} res_t;

static void res_free(res_t *r)
{
    wf_free(r->out);
    wf_free(r->err);
}

/*
 * Run `weft args...` in c->dir with WEFT_CONTROL pointing at the control plane and, with
 * token, WEFT_TOKEN_FILE at its admin token; stdin from stdin_path (or /dev/null).
 */
static res_t cli(wt_control_t *c, bool token, const char *stdin_path, const char *const *args)
{
    char out_path[700], err_path[700], url[64];
    snprintf(out_path, sizeof(out_path), "%s/cli.out", c->dir);
    snprintf(err_path, sizeof(err_path), "%s/cli.err", c->dir);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", c->port);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        const char *argv[64];
        int n = 0;
        argv[n++] = wt_weft_bin();
        for (const char *const *a = args; *a && n < 63; a++) {
            argv[n++] = *a;
        }
        argv[n] = NULL;
        int in = open(stdin_path ? stdin_path : "/dev/null", O_RDONLY);
        int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (in < 0 || o < 0 || e < 0 || chdir(c->dir) != 0) {
            _exit(127);
        }
        dup2(in, 0);
        dup2(o, 1);
        dup2(e, 2);
        setenv("WEFT_CONTROL", url, 1);
        if (token) {
            setenv("WEFT_TOKEN_FILE", c->admin_file, 1);
        } else {
            unsetenv("WEFT_TOKEN_FILE");
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st = wt_wait(pid, 60000);
    res_t r = {.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1};
    r.out = wt_read_file(out_path, NULL);
    r.err = wt_read_file(err_path, NULL);
    assert_non_null(r.out);
    assert_non_null(r.err);
    return r;
}

#define CLI(c, ...) cli((c), true, NULL, (const char *const[]){__VA_ARGS__, NULL})
#define CLI_NOTOKEN(c, ...) cli((c), false, NULL, (const char *const[]){__VA_ARGS__, NULL})
#define CLI_STDIN(c, path, ...) cli((c), true, (path), (const char *const[]){__VA_ARGS__, NULL})

/* Assert an exit status, printing the output when it differs. */
static void expect(const res_t *r, int code)
{
    if (r->code != code) {
        fprintf(stderr, "exit %d, want %d\nstdout:\n%s\nstderr:\n%s\n", r->code, code, r->out,
                r->err);
    }
    assert_int_equal(r->code, code);
}

/* c->dir is also the CLI's working directory: it has no weft-control/ in it. */
static int setup(void **state)
{
    wt_control_t *c = wf_calloc(1, sizeof(*c));
    *state = c;
    return wt_control_new(c, "cpcli", NULL);
}

static int teardown(void **state)
{
    wt_control_t *c = *state;
    /* SIGHUP (a closed terminal, `systemctl reload`) does not stop it: it still answers, and
     * SIGTERM below still ends it with status 0. */
    kill(c->pid, SIGHUP);
    usleep(200 * 1000);
    if (wt_control_req(c->port, "GET", "/v1/workloads", c->admin, NULL, NULL) != 200) {
        fprintf(stderr, "weft control stopped answering after SIGHUP\n");
        return -1;
    }
    int st = wt_control_stop(c);
    wt_control_free(c);
    wf_free(c);
    return st == 0 ? 0 : -1;
}

/* Write text to DIR/name; returns the path (wf_free). */
static char *write_in(const wt_control_t *c, const char *name, const char *text)
{
    size_t len = strlen(c->dir) + strlen(name) + 2;
    char *path = wf_malloc(len);
    snprintf(path, len, "%s/%s", c->dir, name);
    wt_write_file(path, text);
    return path;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++) {
        n += *s == '\n';
    }
    return n;
}

/* Whether every line of s matches the extended regex re. */
static bool lines_match(const char *s, const char *re)
{
    regex_t rx;
    assert_int_equal(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0);
    bool ok = true;
    char *copy = wf_strdup(s);
    for (char *save = NULL, *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (regexec(&rx, l, 0, NULL, 0) != 0) {
            fprintf(stderr, "line does not match %s: %s\n", re, l);
            ok = false;
        }
    }
    wf_free(copy);
    regfree(&rx);
    return ok;
}

/* The resources (Istio documents) a file holds, counted with the control plane's parsers. */
static size_t istio_docs(const char *path, size_t *k8s)
{
    size_t len = 0, n = 0;
    char *text = wt_read_file(path, &len);
    cp_yaml_stream_t *s = NULL;
    assert_non_null(text);
    assert_int_equal(cp_yaml_parse(text, len, NULL, &s, NULL), 0);
    *k8s = 0;
    for (uint32_t i = 0; i < s->n_docs; i++) {
        cp_resource_t *r = NULL;
        if (cp_yaml_is_null(s->docs[i])) {
            continue;
        }
        int rc = cp_istio_parse(s->docs[i], &r, NULL);
        if (rc == CP_E_KIND) {
            (*k8s)++;
        } else {
            assert_int_equal(rc, 0);
            n++;
        }
        cp_resource_free(r);
    }
    cp_yaml_free(s);
    wf_free(text);
    return n;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

#define APPLY_LINE                                                                                 \
    "^(virtualservice|destinationrule|gateway|serviceentry)\\.networking\\.istio\\.io/"            \
    "[a-z0-9.-]+ "

static void test_ref_files(void **state)
{
    wt_control_t *c = *state;
    char *dir = wt_ref_path("istio");
    if (dir == NULL) {
        wt_skip();
    }
    DIR *d = opendir(dir);
    assert_non_null(d);
    char *names[128];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 128) {
        size_t l = strlen(e->d_name);
        if (l > 5 && strcmp(e->d_name + l - 5, ".yaml") == 0) {
            names[n++] = wf_strdup(e->d_name);
        }
    }
    closedir(d);
    qsort(names, n, sizeof(char *), cmp_str);
    assert_true(n >= 20);
    size_t applied = 0, refused = 0;
    for (size_t i = 0; i < n; i++) {
        char path[1200];
        size_t k8s = 0;
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        size_t docs = istio_docs(path, &k8s);
        res_t r = CLI(c, "apply", "-f", path);
        if (k8s > 0) {
            /* bookinfo.yaml: Services, Deployments, ServiceAccounts. Refused whole. */
            expect(&r, 1);
            assert_string_equal(r.out, "");
            assert_non_null(strstr(r.err, "unknown kind \""));
            assert_non_null(strstr(r.err, "not an Istio resource weft serves (nothing was "
                                          "applied)\n"));
            assert_non_null(strstr(r.err, names[i]));
            assert_int_equal(count_lines(r.err), 1);
            refused++;
        } else {
            expect(&r, 0);
            assert_int_equal(count_lines(r.out), docs);
            assert_true(lines_match(r.out, APPLY_LINE "(created|configured|unchanged)$"));
            applied++;
            res_free(&r);
            /* Applied again at once: nothing changes. */
            r = CLI(c, "apply", "-f", path);
            expect(&r, 0);
            assert_int_equal(count_lines(r.out), docs);
            assert_true(lines_match(r.out, APPLY_LINE "unchanged$"));
        }
        res_free(&r);
    }
    assert_int_equal(refused, 1);
    assert_int_equal(applied, n - 1);

    /* The whole directory holds bookinfo.yaml: refused, naming it. */
    res_t r = CLI(c, "apply", "-f", dir);
    expect(&r, 1);
    assert_non_null(strstr(r.err, "bookinfo.yaml:"));
    assert_string_equal(r.out, "");
    res_free(&r);

    /* Every kind from the files is listed; the bookinfo gateway VS shows its columns. */
    r = CLI(c, "get", "vs");
    expect(&r, 0);
    assert_true(strncmp(r.out, "NAME ", 5) == 0);
    assert_true(lines_match(r.out, "^(NAME +GATEWAYS +HOSTS +AGE|[a-z0-9.-]+ +(\\[[^ ]+\\] +)?"
                                   "\\[[^ ]+\\] +[0-9]+[smhdy][0-9smhd]*)$"));
    assert_true(
        lines_match(strstr(r.out, "\nbookinfo ") + 1,
                    "^(bookinfo +\\[\"bookinfo-gateway\"\\] +\\[\"\\*\"\\] +[0-9]+s|[^b].*)$"));
    res_free(&r);
    r = CLI(c, "get", "se");
    expect(&r, 0);
    assert_true(lines_match(r.out, "^(NAME +HOSTS +LOCATION +RESOLUTION +AGE|googleapis +"
                                   "\\[\"www.googleapis.com\"\\] +DNS +[0-9]+s)$"));
    res_free(&r);
    r = CLI(c, "get", "gateways");
    expect(&r, 0);
    assert_true(lines_match(r.out, "^(NAME +AGE|[a-z0-9-]+ +[0-9]+s)$"));
    assert_non_null(strstr(r.out, "\nbookinfo-gateway "));
    res_free(&r);
    for (size_t i = 0; i < n; i++) {
        wf_free(names[i]);
    }
    wf_free(dir);
}

static const char vs_cli[] = "apiVersion: networking.istio.io/v1\n"
                             "kind: VirtualService\n"
                             "metadata:\n"
                             "  name: cli-reviews\n"
                             "spec:\n"
                             "  hosts: [cli-reviews]\n"
                             "  http:\n"
                             "  - route:\n"
                             "    - destination: {host: cli-reviews, subset: v1}\n"
                             "      weight: 80\n"
                             "    - destination: {host: cli-reviews, subset: v2}\n"
                             "      weight: 20\n"
                             "---\n"
                             "apiVersion: networking.istio.io/v1beta1\n"
                             "kind: DestinationRule\n"
                             "metadata:\n"
                             "  name: cli-reviews\n"
                             "spec:\n"
                             "  host: cli-reviews\n"
                             "  subsets:\n"
                             "  - {name: v1, labels: {version: v1}}\n"
                             "  - {name: v2, labels: {version: v2}}\n";

static const char sec_cli[] = "apiVersion: security.istio.io/v1\n"
                              "kind: PeerAuthentication\n"
                              "metadata: {name: strict, namespace: cli}\n"
                              "spec:\n"
                              "  mtls: {mode: STRICT}\n"
                              "---\n"
                              "apiVersion: security.istio.io/v1beta1\n"
                              "kind: AuthorizationPolicy\n"
                              "metadata: {name: deny-admin, namespace: cli}\n"
                              "spec:\n"
                              "  action: DENY\n"
                              "  rules:\n"
                              "  - to:\n"
                              "    - operation: {paths: [/admin]}\n"
                              "---\n"
                              "apiVersion: networking.istio.io/v1\n"
                              "kind: Sidecar\n"
                              "metadata: {name: default, namespace: cli}\n"
                              "spec:\n"
                              "  egress:\n"
                              "  - hosts: [./*]\n";

static void test_round_trip(void **state)
{
    wt_control_t *c = *state;
    char *f = write_in(c, "cli.yaml", vs_cli);
    char *sec = write_in(c, "sec.yaml", sec_cli);

    res_t r = CLI(c, "apply", "-f", f);
    expect(&r, 0);
    assert_string_equal(r.out, "virtualservice.networking.istio.io/cli-reviews created\n"
                               "destinationrule.networking.istio.io/cli-reviews created\n");
    res_free(&r);
    r = CLI(c, "apply", "-f", f);
    expect(&r, 0);
    assert_string_equal(r.out, "virtualservice.networking.istio.io/cli-reviews unchanged\n"
                               "destinationrule.networking.istio.io/cli-reviews unchanged\n");
    res_free(&r);

    /* One name: a table of one row. */
    r = CLI(c, "get", "virtualservice", "cli-reviews");
    expect(&r, 0);
    assert_true(lines_match(r.out, "^(NAME +GATEWAYS +HOSTS +AGE|cli-reviews +\\[\"cli-reviews\"\\]"
                                   " +[0-9]+s)$"));
    assert_int_equal(count_lines(r.out), 2);
    res_free(&r);
    r = CLI(c, "get", "dr", "cli-reviews", "-o", "wide");
    expect(&r, 0);
    assert_true(lines_match(r.out, "^(NAME +HOST +AGE|cli-reviews +cli-reviews +[0-9]+s)$"));
    res_free(&r);

    /* -o json: one object for one name, a List otherwise. */
    r = CLI(c, "get", "vs", "cli-reviews", "-o", "json");
    expect(&r, 0);
    json_t *o = json_loads(r.out, 0, NULL);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "kind")), "VirtualService");
    json_t *md = json_object_get(o, "metadata");
    assert_string_equal(json_string_value(json_object_get(md, "name")), "cli-reviews");
    assert_string_equal(json_string_value(json_object_get(md, "namespace")), "default");
    assert_int_equal(json_integer_value(json_object_get(md, "generation")), 1);
    json_t *w = json_object_get(
        json_array_get(
            json_object_get(json_array_get(json_object_get(json_object_get(o, "spec"), "http"), 0),
                            "route"),
            1),
        "weight");
    assert_int_equal(json_integer_value(w), 20);
    json_decref(o);
    res_free(&r);
    r = CLI(c, "get", "dr", "-o", "json");
    expect(&r, 0);
    o = json_loads(r.out, 0, NULL);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "kind")), "List");
    assert_true(json_array_size(json_object_get(o, "items")) >= 1);
    json_decref(o);
    res_free(&r);

    /* -o yaml parses as the resource, and applies back unchanged from standard input. */
    r = CLI(c, "get", "vs", "cli-reviews", "-o", "yaml");
    expect(&r, 0);
    assert_true(strncmp(r.out, "apiVersion: networking.istio.io/v1\nkind: VirtualService\n", 56) ==
                0);
    cp_yaml_stream_t *s = NULL;
    cp_resource_t *res = NULL;
    assert_int_equal(cp_yaml_parse(r.out, strlen(r.out), NULL, &s, NULL), 0);
    assert_int_equal(cp_istio_parse(s->docs[0], &res, NULL), 0);
    assert_int_equal(res->spec.vs->n_http, 1);
    cp_resource_free(res);
    cp_yaml_free(s);
    char *y = write_in(c, "back.yaml", r.out);
    res_free(&r);
    r = CLI_STDIN(c, y, "apply", "-f", "-");
    expect(&r, 0);
    assert_string_equal(r.out, "virtualservice.networking.istio.io/cli-reviews unchanged\n");
    res_free(&r);
    /* A list printed by -o yaml applies too. */
    r = CLI(c, "get", "dr", "cli-reviews", "cli-reviews", "-o", "yaml");
    expect(&r, 0);
    assert_true(strncmp(r.out, "apiVersion: v1\nitems:\n", 22) == 0);
    wt_write_file(y, r.out);
    res_free(&r);
    r = CLI_STDIN(c, y, "apply", "-f", "-");
    expect(&r, 0);
    assert_int_equal(count_lines(r.out), 2);
    assert_string_equal(r.out, "destinationrule.networking.istio.io/cli-reviews unchanged\n"
                               "destinationrule.networking.istio.io/cli-reviews unchanged\n");
    res_free(&r);

    r = CLI(c, "get", "vs", "-o", "name");
    expect(&r, 0);
    assert_non_null(strstr(r.out, "virtualservice.networking.istio.io/cli-reviews\n"));
    assert_true(lines_match(r.out, "^virtualservice\\.networking\\.istio\\.io/[a-z0-9.-]+$"));
    res_free(&r);

    /* A change: configured, generation 2. */
    char *changed = wf_strdup(vs_cli);
    char *p = strstr(changed, "weight: 80");
    memcpy(p, "weight: 50", 10);
    p = strstr(changed, "weight: 20");
    memcpy(p, "weight: 50", 10);
    wt_write_file(f, changed);
    wf_free(changed);
    r = CLI(c, "apply", "-f", f);
    expect(&r, 0);
    assert_string_equal(r.out, "virtualservice.networking.istio.io/cli-reviews configured\n"
                               "destinationrule.networking.istio.io/cli-reviews unchanged\n");
    res_free(&r);
    r = CLI(c, "get", "vs", "cli-reviews", "-o", "json");
    o = json_loads(r.out, 0, NULL);
    assert_non_null(o);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(o, "metadata"), "generation")), 2);
    json_decref(o);
    res_free(&r);

    /* Security kinds and Sidecar, in another namespace; -n and -A. */
    r = CLI(c, "apply", "-f", sec);
    expect(&r, 0);
    assert_string_equal(r.out, "peerauthentication.security.istio.io/strict created\n"
                               "authorizationpolicy.security.istio.io/deny-admin created\n"
                               "sidecar.networking.istio.io/default created\n");
    res_free(&r);
    r = CLI(c, "get", "pa", "-n", "cli");
    expect(&r, 0);
    assert_true(lines_match(r.out, "^(NAME +MODE +AGE|strict +STRICT +[0-9]+s)$"));
    assert_int_equal(count_lines(r.out), 2);
    res_free(&r);
    r = CLI(c, "get", "authorizationpolicies", "-A");
    expect(&r, 0);
    assert_true(
        lines_match(r.out, "^(NAMESPACE +NAME +ACTION +AGE|cli +deny-admin +DENY +[0-9]+s)$"));
    assert_int_equal(count_lines(r.out), 2);
    res_free(&r);
    r = CLI(c, "get", "sidecar", "--namespace=cli");
    expect(&r, 0);
    assert_true(lines_match(r.out, "^(NAME +AGE|default +[0-9]+s)$"));
    res_free(&r);
    /* kubectl's words for nothing: on stderr, exit 0. */
    r = CLI(c, "get", "pa");
    expect(&r, 0);
    assert_string_equal(r.out, "");
    assert_string_equal(r.err, "No resources found in default namespace.\n");
    res_free(&r);
    r = CLI(c, "get", "se", "-n", "nowhere", "-o", "json");
    expect(&r, 0);
    o = json_loads(r.out, 0, NULL);
    assert_non_null(o);
    assert_int_equal(json_array_size(json_object_get(o, "items")), 0);
    json_decref(o);
    res_free(&r);
    /* apply -n sets the namespace of objects without one, and refuses a different one. */
    r = CLI(c, "apply", "-f", f, "-n", "other");
    expect(&r, 0);
    assert_string_equal(r.out, "virtualservice.networking.istio.io/cli-reviews created\n"
                               "destinationrule.networking.istio.io/cli-reviews created\n");
    res_free(&r);
    r = CLI(c, "apply", "-f", sec, "-n", "other");
    expect(&r, 1);
    assert_non_null(strstr(r.err, "the namespace from the provided object \"cli\" does not match "
                                  "the namespace \"other\""));
    res_free(&r);
    r = CLI(c, "get", "vs", "-A");
    expect(&r, 0);
    assert_non_null(strstr(r.out, "\nother "));
    assert_true(strncmp(r.out, "NAMESPACE ", 10) == 0);
    res_free(&r);

    /* describe: the resource, and a section for its validation messages. */
    r = CLI(c, "describe", "vs", "cli-reviews");
    expect(&r, 0);
    assert_non_null(strstr(r.out, "Name:         cli-reviews\nNamespace:    default\n"));
    assert_non_null(strstr(r.out, "Kind:         VirtualService\n"));
    assert_non_null(strstr(r.out, "  Generation:          2\n"));
    assert_non_null(strstr(r.out, "Spec:\n  hosts:\n  - cli-reviews\n"));
    assert_non_null(strstr(r.out, "\nValidation Messages:\n  "));
    res_free(&r);

    /* Deleting: -f, KIND NAME, then NotFound with kubectl's words and exit 1. */
    r = CLI(c, "delete", "-f", f);
    expect(&r, 0);
    assert_string_equal(r.out, "virtualservice.networking.istio.io \"cli-reviews\" deleted\n"
                               "destinationrule.networking.istio.io \"cli-reviews\" deleted\n");
    res_free(&r);
    r = CLI(c, "get", "vs", "cli-reviews");
    expect(&r, 1);
    assert_string_equal(r.out, "");
    assert_string_equal(r.err, "Error from server (NotFound): virtualservices.networking.istio.io "
                               "\"cli-reviews\" not found\n");
    res_free(&r);
    r = CLI(c, "delete", "-f", f);
    expect(&r, 1);
    assert_non_null(strstr(r.err, "Error from server (NotFound): error when deleting \""));
    res_free(&r);
    r = CLI(c, "delete", "-f", f, "--ignore-not-found");
    expect(&r, 0);
    assert_string_equal(r.out, "");
    assert_string_equal(r.err, "");
    res_free(&r);
    r = CLI(c, "delete", "vs", "cli-reviews", "-n", "other");
    expect(&r, 0);
    assert_string_equal(r.out, "virtualservice.networking.istio.io \"cli-reviews\" deleted\n");
    res_free(&r);
    r = CLI(c, "delete", "pa", "strict", "missing", "-n", "cli");
    expect(&r, 1);
    assert_string_equal(r.out, "peerauthentication.security.istio.io \"strict\" deleted\n");
    assert_string_equal(r.err, "Error from server (NotFound): peerauthentications.security.istio.io"
                               " \"missing\" not found\n");
    res_free(&r);
    r = CLI(c, "get", "pa", "strict", "-n", "cli");
    expect(&r, 1);
    res_free(&r);

    unlink(y);
    wf_free(y);
    wf_free(f);
    wf_free(sec);
}

static void test_directory(void **state)
{
    wt_control_t *c = *state;
    char sub[700];
    snprintf(sub, sizeof(sub), "%s/conf", c->dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    char *a = write_in(c, "conf/b-dr.yml",
                       "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
                       "metadata: {name: dir-b}\nspec: {host: dir-b}\n");
    char *b = write_in(c, "conf/a-vs.json",
                       "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"VirtualService\","
                       "\"metadata\":{\"name\":\"dir-a\"},\"spec\":{\"hosts\":[\"dir-a\"]}}");
    char *d = write_in(c, "conf/README.txt", "not: [yaml");
    char *e = write_in(c, "conf/c-gw.yaml",
                       "---\napiVersion: networking.istio.io/v1\nkind: Gateway\n"
                       "metadata: {name: dir-c}\nspec:\n  servers:\n  - port: {number: 80, "
                       "name: http, protocol: HTTP}\n    hosts: ['*']\n---\n");
    res_t r = CLI(c, "apply", "-f", sub);
    expect(&r, 0);
    assert_string_equal(r.out, "virtualservice.networking.istio.io/dir-a created\n"
                               "destinationrule.networking.istio.io/dir-b created\n"
                               "gateway.networking.istio.io/dir-c created\n");
    res_free(&r);

    /* Several kinds in one get: a table per kind, names qualified, a blank line between. */
    r = CLI(c, "get", "vs,dr", "dir-a", "dir-b");
    expect(&r, 1); /* no VirtualService dir-b, no DestinationRule dir-a */
    assert_true(lines_match(r.out,
                            "^(NAME +GATEWAYS +HOSTS +AGE|"
                            "virtualservice\\.networking\\.istio\\.io/dir-a +"
                            "\\[\"dir-a\"\\] +[0-9]+s|NAME +HOST +AGE|"
                            "destinationrule\\.networking\\.istio\\.io/dir-b +dir-b +[0-9]+s)$"));
    assert_int_equal(count_lines(r.out), 5);
    assert_non_null(strstr(r.out, "s\n\nNAME "));
    assert_string_equal(r.err, "Error from server (NotFound): virtualservices.networking.istio.io "
                               "\"dir-b\" not found\n"
                               "Error from server (NotFound): destinationrules.networking.istio.io "
                               "\"dir-a\" not found\n");
    res_free(&r);
    /* What -o name prints is what get, describe and delete take. */
    r = CLI(c, "get", "vs/dir-a", "dr/dir-b", "gateway/dir-c", "-o", "name");
    expect(&r, 0);
    assert_string_equal(r.out, "virtualservice.networking.istio.io/dir-a\n"
                               "destinationrule.networking.istio.io/dir-b\n"
                               "gateway.networking.istio.io/dir-c\n");
    res_free(&r);
    r = CLI(c, "describe", "virtualservice.networking.istio.io/dir-a",
            "destinationrule.networking.istio.io/dir-b");
    expect(&r, 0);
    assert_non_null(strstr(r.out, "Name:         dir-a\n"));
    assert_non_null(strstr(r.out, "\n\n\nName:         dir-b\n"));
    res_free(&r);
    r = CLI(c, "get", "vs,dr,gw", "-o", "json");
    expect(&r, 0);
    json_t *o = json_loads(r.out, 0, NULL);
    assert_non_null(o);
    size_t dir_objects = 0, i;
    json_t *it;
    json_array_foreach(json_object_get(o, "items"), i, it)
    {
        const char *name =
            json_string_value(json_object_get(json_object_get(it, "metadata"), "name"));
        dir_objects += strncmp(name, "dir-", 4) == 0;
    }
    assert_int_equal(dir_objects, 3);
    json_decref(o);
    res_free(&r);
    r = CLI(c, "delete", "virtualservice.networking.istio.io/dir-a",
            "destinationrule.networking.istio.io/dir-b", "gateway.networking.istio.io/dir-c");
    expect(&r, 0);
    assert_string_equal(r.out, "virtualservice.networking.istio.io \"dir-a\" deleted\n"
                               "destinationrule.networking.istio.io \"dir-b\" deleted\n"
                               "gateway.networking.istio.io \"dir-c\" deleted\n");
    res_free(&r);
    r = CLI(c, "apply", "-f", sub);
    expect(&r, 0);
    res_free(&r);
    r = CLI(c, "delete", "-f", sub);
    expect(&r, 0);
    assert_int_equal(count_lines(r.out), 3);
    res_free(&r);
    wf_free(a);
    wf_free(b);
    wf_free(d);
    wf_free(e);
}

static void test_bad_input(void **state)
{
    wt_control_t *c = *state;
    /* Broken YAML in the second document: the first is not stored either. */
    char *f = write_in(c, "bad.yaml",
                       "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
                       "metadata: {name: bad-first}\nspec: {hosts: [bad-first]}\n---\n"
                       "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
                       "metadata:\n  name: bad-second\n   oops: [\n");
    res_t r = CLI(c, "apply", "-f", f);
    expect(&r, 1);
    assert_string_equal(r.out, "");
    char want[900];
    snprintf(want, sizeof(want), "error: %s:10:", f);
    assert_true(strncmp(r.err, want, strlen(want)) == 0);
    assert_non_null(strstr(r.err, "(nothing was applied)\n"));
    assert_int_equal(count_lines(r.err), 1);
    res_free(&r);
    r = CLI(c, "get", "vs", "bad-first");
    expect(&r, 1);
    res_free(&r);

    /* A field the typed validation refuses: path, line and column. */
    wt_write_file(f, "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
                     "metadata: {name: bad-first}\nspec: {hosts: [bad-first]}\n---\n"
                     "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
                     "metadata: {name: bad-weight}\nspec:\n  hosts: [r]\n  http:\n  - route:\n"
                     "    - destination: {host: r}\n      weight: -5\n");
    r = CLI(c, "apply", "-f", f);
    expect(&r, 1);
    snprintf(want, sizeof(want),
             "error: %s:14:15: spec.http[0].route[0].weight: must be >= 0 (nothing was "
             "applied)\n",
             f);
    assert_string_equal(r.err, want);
    res_free(&r);
    r = CLI(c, "get", "vs", "bad-first");
    expect(&r, 1);
    res_free(&r);

    /* A Kubernetes kind among Istio ones: refused, naming the kind; nothing applied. */
    wt_write_file(f, "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
                     "metadata: {name: bad-first}\nspec: {hosts: [bad-first]}\n---\n"
                     "apiVersion: v1\nkind: Service\nmetadata: {name: reviews}\n"
                     "spec: {ports: [{port: 9080}]}\n");
    r = CLI(c, "apply", "-f", f);
    expect(&r, 1);
    snprintf(want, sizeof(want),
             "error: %s:7:7: kind: unknown kind \"Service\" (apiVersion v1): not an Istio "
             "resource weft serves (nothing was applied)\n",
             f);
    assert_string_equal(r.err, want);
    res_free(&r);
    r = CLI(c, "get", "vs", "bad-first");
    expect(&r, 1);
    res_free(&r);

    /* Empty input, a missing file. */
    r = CLI_STDIN(c, "/dev/null", "apply", "-f", "-");
    expect(&r, 1);
    assert_string_equal(r.err, "error: no objects passed to apply\n");
    res_free(&r);
    r = CLI(c, "apply", "-f", "/nonexistent/x.yaml");
    expect(&r, 1);
    assert_string_equal(r.err, "error: the path \"/nonexistent/x.yaml\" cannot be read: No such "
                               "file or directory\n");
    res_free(&r);
    wf_free(f);
}

static void test_access_and_usage(void **state)
{
    wt_control_t *c = *state;
    char *f = write_in(c, "acc.yaml", vs_cli);

    /* No token anywhere: the server's refusal, and where the CLI looked. */
    res_t r = CLI_NOTOKEN(c, "apply", "-f", f);
    expect(&r, 1);
    assert_string_equal(r.err, "Error from server (Unauthorized): Unauthorized: a valid bearer "
                               "token is required (no admin token: weft-control/admin-token does "
                               "not exist; pass --token-file or set WEFT_TOKEN_FILE)\n");
    res_free(&r);
    r = CLI_NOTOKEN(c, "get", "vs");
    expect(&r, 1);
    assert_non_null(strstr(r.err, "Error from server (Unauthorized): "));
    res_free(&r);
    /* A wrong token, a token file that does not exist. */
    char *bad = write_in(c, "wrong-token", "0123456789abcdef\n");
    r = CLI_NOTOKEN(c, "get", "vs", "--token-file", bad);
    expect(&r, 1);
    char want[900];
    snprintf(want, sizeof(want),
             "Error from server (Unauthorized): Unauthorized: a valid bearer token is required "
             "(the admin token in %s was refused)\n",
             bad);
    assert_string_equal(r.err, want);
    res_free(&r);
    r = CLI(c, "get", "vs", "--token-file", "/nonexistent/token");
    expect(&r, 1);
    assert_string_equal(r.err, "error: cannot read the admin token from /nonexistent/token: No "
                               "such file or directory\n");
    res_free(&r);
    /* The default token file, found from the working directory. */
    char link[700];
    snprintf(link, sizeof(link), "%s/weft-control", c->dir);
    assert_int_equal(symlink(c->data, link), 0);
    r = CLI_NOTOKEN(c, "get", "gw");
    expect(&r, 0);
    res_free(&r);
    unlink(link);

    /* Nothing listening there. */
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", wt_free_port());
    r = CLI(c, "get", "vs", "--control", url);
    expect(&r, 1);
    snprintf(want, sizeof(want), "error: cannot reach the control plane at %s: ", url);
    assert_true(strncmp(r.err, want, strlen(want)) == 0);
    assert_int_equal(count_lines(r.err), 1);
    res_free(&r);

    /* Usage errors: exit 2. */
    r = CLI(c, "get", "pods");
    expect(&r, 2);
    assert_true(strncmp(r.err, "error: the server doesn't have a resource type \"pods\"", 52) == 0);
    res_free(&r);
    r = CLI(c, "get", "vs", "--outptu", "yaml");
    expect(&r, 2);
    assert_true(strncmp(r.err, "error: unknown flag --outptu (did you mean --output?)\n", 53) == 0);
    res_free(&r);
    r = CLI(c, "apply");
    expect(&r, 2);
    res_free(&r);
    r = CLI(c, "get", "--help");
    expect(&r, 0);
    assert_non_null(strstr(r.out, "Usage: weft get KIND"));
    res_free(&r);
    wf_free(bad);
    wf_free(f);
}

static void test_workloads(void **state)
{
    wt_control_t *c = *state;
    res_t r = CLI(c, "workloads");
    expect(&r, 0);
    assert_string_equal(r.out, "");
    assert_string_equal(r.err, "No workloads registered.\n");
    res_free(&r);
    char *body = NULL;
    assert_int_equal(
        wt_control_req(c->port, "POST", "/v1/register", c->boot,
                       "{\"service\":\"reviews\",\"version\":\"v2\",\"address\":\"10.0.0.7\","
                       "\"ports\":[9080],\"serviceAccount\":\"bookinfo-reviews\"}",
                       &body),
        200);
    wf_free(body);
    assert_int_equal(
        wt_control_req(c->port, "POST", "/v1/register", c->boot,
                       "{\"service\":\"ratings\",\"namespace\":\"shop\",\"address\":\"10.0.0.9\"}",
                       &body),
        200);
    wf_free(body);
    r = CLI(c, "workloads");
    expect(&r, 0);
    assert_true(lines_match(r.out, "^(NAME +NAMESPACE +SERVICE +VERSION +ADDRESS +IDENTITY +LEASE"
                                   "|ratings\\.shop +shop +ratings +10\\.0\\.0\\.9 +"
                                   "spiffe://cluster\\.local/ns/shop/sa/default +[0-9]+s"
                                   "|reviews-v2\\.default +default +reviews +v2 +10\\.0\\.0\\.7 +"
                                   "spiffe://cluster\\.local/ns/default/sa/bookinfo-reviews +"
                                   "[0-9]+s)$"));
    assert_int_equal(count_lines(r.out), 3);
    res_free(&r);
    r = CLI(c, "workloads", "-n", "shop", "-o", "json");
    expect(&r, 0);
    json_t *o = json_loads(r.out, 0, NULL);
    assert_non_null(o);
    assert_int_equal(json_array_size(json_object_get(o, "items")), 1);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(o, "items"), 0), "id")),
        "ratings.shop");
    json_decref(o);
    res_free(&r);
}

/* The CLI's analyze and proxy-status lines match the control plane's answers. */
static void test_analyze_and_proxy_status(void **state)
{
    wt_control_t *c = *state;
    char *body = NULL;
    int st = wt_control_req(c->port, "GET", "/v1/analyze", c->admin, NULL, &body);
    res_t r = CLI(c, "analyze", "-A");
    assert_int_equal(st, 200);
    json_t *o = json_loads(body, 0, NULL);
    assert_non_null(o);
    json_t *msgs = json_object_get(o, "messages");
    size_t i, errors = 0;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        errors += strcmp(json_string_value(json_object_get(m, "level")), "error") == 0;
    }
    expect(&r, errors ? 1 : 0);
    if (json_array_size(msgs) == 0) {
        assert_string_equal(r.err, "\u2714 No validation issues found when analyzing all "
                                   "namespaces.\n");
    } else {
        assert_int_equal(count_lines(r.out), json_array_size(msgs));
        assert_true(lines_match(r.out, "^(Error|Warning|Info) \\[[A-Z]+[0-9]+\\] [A-Za-z]+ "
                                       "[a-z0-9-]+/[a-z0-9.-]+: .+$"));
    }
    json_decref(o);
    res_free(&r);
    wf_free(body);

    body = NULL;
    st = wt_control_req(c->port, "GET", "/v1/proxy-status", c->admin, NULL, &body);
    r = CLI(c, "proxy-status");
    assert_int_equal(st, 200);
    expect(&r, 0);
    o = json_loads(body, 0, NULL);
    assert_non_null(o);
    size_t n = json_array_size(json_object_get(o, "proxies"));
    assert_int_equal(count_lines(r.out), n ? n + 1 : 0);
    if (n > 0) {
        assert_true(lines_match(r.out, "^(NAME +ACKED +SENT +STATE( +REASON)?|[a-z0-9.-]+ +"
                                       "[0-9]+ +[0-9]+ +(SYNCED|STALE|NACK|NOT_REGISTERED).*)$"));
    }
    json_decref(o);
    res_free(&r);
    wf_free(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ref_files),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_directory),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_access_and_usage),
        cmocka_unit_test(test_workloads),
        cmocka_unit_test(test_analyze_and_proxy_status),
    };
    return wt_exit_code(cmocka_run_group_tests(tests, setup, teardown));
}
