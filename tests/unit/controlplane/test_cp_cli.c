/*
 * test_cp_cli.c - unit tests of the CLI's local parts (controlplane/cp_cli*.c, cp_kinds.c):
 * ages printed as kubectl prints them, RFC 3339 timestamps, kubectl's column layout, the kind
 * names a user may type, the command line (flags anywhere, every usage error with its message
 * and exit status 2) and the YAML printer, whose output must parse back to the same values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cp_cli.h"
#include "cp_kinds.h"
#include "cp_yaml.h"
#include "wf_alloc.h"
#include "wf_err.h"
#include "wt_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_age(void **state)
{
    static const struct {
        int64_t ms;
        const char *want;
    } cases[] = {
        {0, "0s"},
        {999, "0s"},
        {-1999, "0s"}, /* clocks a little apart: now */
        {-2000, "<invalid>"},
        {45000, "45s"},
        {119999, "119s"},
        {120000, "2m"},
        {200000, "3m20s"},
        {599000, "9m59s"},
        {600000, "10m"},
        {179 * 60000LL, "179m"},
        {180 * 60000LL, "3h"},
        {(3 * 60 + 30) * 60000LL, "3h30m"},
        {8 * 3600000LL, "8h"},
        {47 * 3600000LL + 59 * 60000LL, "47h"},
        {48 * 3600000LL, "2d"},
        {50 * 3600000LL, "2d2h"},
        {8 * 24 * 3600000LL, "8d"},
        {729 * 24 * 3600000LL, "729d"},
        {730 * 24 * 3600000LL, "2y"},
        {735 * 24 * 3600000LL, "2y5d"},
        {8 * 365 * 24 * 3600000LL + 3600000LL * 24 * 40, "8y"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[32];
        cp_cli_age(cases[i].ms, out, sizeof(out));
        if (strcmp(out, cases[i].want) != 0) {
            print_error("age(%lld) = %s, want %s\n", (long long)cases[i].ms, out, cases[i].want);
        }
        assert_string_equal(out, cases[i].want);
    }
}

static void test_parse_time(void **state)
{
    assert_int_equal(cp_cli_parse_time("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(cp_cli_parse_time("2000-01-01T00:00:00Z"), 946684800);
    assert_int_equal(cp_cli_parse_time("2000-03-01T01:02:03Z"), 946684800 + 60 * 86400 + 3723);
    assert_int_equal(cp_cli_parse_time("2000-01-01"), -1);
    assert_int_equal(cp_cli_parse_time("2000-01-01T00:00:00Zjunk"), -1);
    assert_int_equal(cp_cli_parse_time(""), -1);
    assert_int_equal(cp_cli_parse_time(NULL), -1);
}

static char *table_text(cp_cli_table_t *t)
{
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    assert_non_null(m);
    cp_cli_table_print(t, m);
    fclose(m);
    return text;
}

static void test_table(void **state)
{
    static const char *const h[] = {"NAME", "GATEWAYS", "HOSTS", "AGE"};
    cp_cli_table_t *t = cp_cli_table_new(4, h);
    assert_int_equal(cp_cli_table_rows(t), 0);
    static const char *const r1[] = {"bookinfo", "[\"bookinfo-gateway\"]", "[\"*\"]", "5d"};
    static const char *const r2[] = {"reviews", "", "[\"reviews\"]", "45s"};
    cp_cli_table_add(t, r1);
    cp_cli_table_add(t, r2);
    assert_int_equal(cp_cli_table_rows(t), 2);
    char *text = table_text(t);
    /* Each column as wide as its widest cell plus 3 spaces; the last unpadded. */
    assert_string_equal(text, "NAME       GATEWAYS               HOSTS         AGE\n"
                              "bookinfo   [\"bookinfo-gateway\"]   [\"*\"]         5d\n"
                              "reviews                           [\"reviews\"]   45s\n");
    free(text);
    cp_cli_table_free(t);

    /* Width counts characters, not bytes; NULL cells print empty. */
    static const char *const h2[] = {"NAME", "AGE"};
    t = cp_cli_table_new(2, h2);
    static const char *const r3[] = {"d\xc3\xa9j\xc3\xa0", "1m"};
    static const char *const r4[] = {NULL, "2m"};
    cp_cli_table_add(t, r3);
    cp_cli_table_add(t, r4);
    text = table_text(t);
    assert_string_equal(text, "NAME   AGE\nd\xc3\xa9j\xc3\xa0   1m\n       2m\n");
    free(text);
    cp_cli_table_free(t);
    cp_cli_table_free(NULL);
}

static void test_kinds(void **state)
{
    static const struct {
        const char *word;
        const char *kind;
    } cases[] = {
        {"vs", "VirtualService"},
        {"VS", "VirtualService"},
        {"virtualservice", "VirtualService"},
        {"virtualservices", "VirtualService"},
        {"VirtualService", "VirtualService"},
        {"virtualservices.networking.istio.io", "VirtualService"},
        {"virtualservice.networking.istio.io", "VirtualService"},
        {"dr", "DestinationRule"},
        {"destinationrules", "DestinationRule"},
        {"gw", "Gateway"},
        {"gateways", "Gateway"},
        {"se", "ServiceEntry"},
        {"serviceentries", "ServiceEntry"},
        {"serviceentry", "ServiceEntry"},
        {"sidecar", "Sidecar"},
        {"sidecars", "Sidecar"},
        {"pa", "PeerAuthentication"},
        {"peerauthentications.security.istio.io", "PeerAuthentication"},
        {"ap", "AuthorizationPolicy"},
        {"authorizationpolicies", "AuthorizationPolicy"},
        {"authorizationpolicy", "AuthorizationPolicy"},
        {"virtualservices.security.istio.io", NULL}, /* wrong group */
        {"virtualservicess", NULL},
        {"virtual", NULL},
        {"services", NULL},
        {"", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const cp_kind_info_t *k = cp_kinds_lookup(cases[i].word);
        if (cases[i].kind == NULL) {
            assert_null(k);
        } else {
            assert_non_null(k);
            assert_string_equal(k->kind, cases[i].kind);
        }
    }
    const cp_kind_info_t *k = cp_kinds_find("networking.istio.io", "v1alpha3", "gateways");
    assert_non_null(k);
    assert_int_equal(k->id, CP_KIND_GATEWAY);
    assert_string_equal(k->versions[0], "v1");
    assert_null(cp_kinds_find("security.istio.io", "v1alpha3", "peerauthentications"));
    assert_null(cp_kinds_find("networking.istio.io", "v1", "peerauthentications"));
    k = cp_kinds_by_kind("AuthorizationPolicy");
    assert_non_null(k);
    assert_string_equal(k->plural, "authorizationpolicies");
    assert_string_equal(k->singular, "authorizationpolicy");
    assert_string_equal(k->group, "security.istio.io");
    assert_null(cp_kinds_by_kind("virtualservice"));
    /* Every kind cp_istio parses is in the table, with its name. */
    for (int id = CP_KIND_NONE + 1; id < CP_KIND_COUNT; id++) {
        k = cp_kinds_by_kind(cp_kind_name((cp_kind_t)id));
        assert_non_null(k);
        assert_int_equal(k->id, id);
    }
}

/* Parse a space-separated command line. */
static int parse(const char *line, cp_cli_args_t *a, char *err, size_t errlen)
{
    static char buf[512];
    static char *argv[64];
    int argc = 0;
    snprintf(buf, sizeof(buf), "%s", line);
    for (char *save = NULL, *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        argv[argc++] = t;
    }
    argv[argc] = NULL;
    err[0] = '\0';
    return cp_cli_parse_args(argc, argv, a, err, errlen);
}

static void test_args(void **state)
{
    cp_cli_args_t a;
    char err[256];

    assert_int_equal(parse("get vs reviews -n bookinfo -o yaml", &a, err, sizeof(err)), 0);
    assert_string_equal(a.cmd, "get");
    assert_int_equal(a.npos, 2);
    assert_string_equal(a.pos[0], "vs");
    assert_string_equal(a.pos[1], "reviews");
    assert_string_equal(a.ns, "bookinfo");
    assert_string_equal(a.output, "yaml");
    assert_false(a.all_ns);

    /* Flags before, between and after positionals, in every spelling. */
    assert_int_equal(
        parse("get -A dr --output=json --control http://h:1 --token-file=/t", &a, err, sizeof(err)),
        0);
    assert_true(a.all_ns);
    assert_int_equal(a.npos, 1);
    assert_string_equal(a.output, "json");
    assert_string_equal(a.control, "http://h:1");
    assert_string_equal(a.token_file, "/t");
    assert_int_equal(parse("get -nfoo -owide vs", &a, err, sizeof(err)), 0);
    assert_string_equal(a.ns, "foo");
    assert_string_equal(a.output, "wide");
    assert_int_equal(parse("apply -f a.yaml --filename b -f - -n x", &a, err, sizeof(err)), 0);
    assert_int_equal(a.nfiles, 3);
    assert_string_equal(a.files[0], "a.yaml");
    assert_string_equal(a.files[1], "b");
    assert_string_equal(a.files[2], "-");
    assert_int_equal(parse("delete vs -- -odd", &a, err, sizeof(err)), 0);
    assert_int_equal(a.npos, 2);
    assert_string_equal(a.pos[1], "-odd");
    assert_int_equal(parse("delete -f x.yaml --ignore-not-found", &a, err, sizeof(err)), 0);
    assert_true(a.ignore_not_found);
    assert_int_equal(parse("describe ap deny-all", &a, err, sizeof(err)), 0);
    assert_int_equal(a.ntargets, 1);
    assert_int_equal(a.targets[0].k->id, CP_KIND_AUTHORIZATION_POLICY);
    assert_string_equal(a.targets[0].name, "deny-all");

    /* Targets: every kind with every name, kind by kind; or KIND/NAME pairs. */
    assert_int_equal(parse("get vs,dr a b", &a, err, sizeof(err)), 0);
    assert_int_equal(a.ntargets, 4);
    assert_int_equal(a.targets[0].k->id, CP_KIND_VIRTUAL_SERVICE);
    assert_string_equal(a.targets[0].name, "a");
    assert_int_equal(a.targets[1].k->id, CP_KIND_VIRTUAL_SERVICE);
    assert_string_equal(a.targets[1].name, "b");
    assert_int_equal(a.targets[2].k->id, CP_KIND_DESTINATION_RULE);
    assert_string_equal(a.targets[2].name, "a");
    assert_int_equal(a.targets[3].k->id, CP_KIND_DESTINATION_RULE);
    assert_int_equal(parse("get gw,se,sidecar -A", &a, err, sizeof(err)), 0);
    assert_int_equal(a.ntargets, 3);
    assert_int_equal(a.targets[2].k->id, CP_KIND_SIDECAR);
    assert_string_equal(a.targets[2].name, "");
    assert_int_equal(parse("delete virtualservice.networking.istio.io/reviews dr/r.x -n b", &a, err,
                           sizeof(err)),
                     0);
    assert_int_equal(a.ntargets, 2);
    assert_int_equal(a.targets[0].k->id, CP_KIND_VIRTUAL_SERVICE);
    assert_string_equal(a.targets[0].name, "reviews");
    assert_int_equal(a.targets[1].k->id, CP_KIND_DESTINATION_RULE);
    assert_string_equal(a.targets[1].name, "r.x");
    assert_int_equal(parse("describe vs a b", &a, err, sizeof(err)), 0);
    assert_int_equal(a.ntargets, 2);
    assert_int_equal(parse("workloads -A -o json", &a, err, sizeof(err)), 0);
    assert_int_equal(parse("analyze -n bookinfo", &a, err, sizeof(err)), 0);
    assert_int_equal(parse("proxy-status", &a, err, sizeof(err)), 0);
    assert_int_equal(parse("get --help", &a, err, sizeof(err)), 0);
    assert_true(a.help);

    static const struct {
        const char *line;
        const char *msg;
    } bad[] = {
        {"frobnicate", "unknown command \"frobnicate\""},
        {"get vs --outptu yaml", "unknown flag --outptu (did you mean --output?)"},
        {"get vs --zzzzzzzzzz", "unknown flag --zzzzzzzzzz"},
        {"get vs -x", "unknown shorthand flag -x in -x"},
        {"get vs -Ax", "unknown shorthand flags in -Ax"},
        {"get vs --all-namespaces=yes", "flag --all-namespaces takes no value"},
        {"get vs -o", "flag needs a value: -o"},
        {"get vs -o table", "unable to match a printer for --output=\"table\" (allowed: yaml json "
                            "wide name)"},
        {"get vs -n a -A", "--namespace and --all-namespaces cannot be used together"},
        {"get vs -n=", "--namespace: must not be empty"},
        {"get", "you must specify the type of resource to get"},
        {"get vs reviews -A", "a resource cannot be retrieved by name across all namespaces"},
        {"get services", "the server doesn't have a resource type \"services\" (vs, dr, gw, se, "
                         "sidecar, pa, ap)"},
        {"get vs -f x.yaml", "weft get does not take -f"},
        {"apply", "must specify -f FILE, DIR or -"},
        {"apply -f x.yaml extra", "unexpected argument after -f"},
        {"apply -f x.yaml -o name", "weft apply does not take -o"},
        {"apply -f x.yaml -A", "weft apply does not take -A"},
        {"delete", "must specify -f FILE or KIND NAME..."},
        {"delete vs", "resource(s) were provided, but no name was specified"},
        {"delete vs a -f x.yaml", "give either -f FILE or KIND NAME..., not both"},
        {"delete pods a", "the server doesn't have a resource type \"pods\" (vs, dr, gw, se, "
                          "sidecar, pa, ap)"},
        {"describe vs", "resource(s) were provided, but no name was specified"},
        {"get vs/", "there is no need to specify a resource type as a separate argument when "
                    "passing arguments in resource/name form (\"vs/\")"},
        {"get vs/a b", "there is no need to specify a resource type as a separate argument when "
                       "passing arguments in resource/name form (\"b\")"},
        {"get vs vs/a", "there is no need to specify a resource type as a separate argument when "
                        "passing arguments in resource/name form (\"vs/a\")"},
        {"get vs,pods", "the server doesn't have a resource type \"pods\" (vs, dr, gw, se, "
                        "sidecar, pa, ap)"},
        {"get vs,,dr", "the server doesn't have a resource type \"\" (vs, dr, gw, se, sidecar, "
                       "pa, ap)"},
        {"delete pods/a", "the server doesn't have a resource type \"pods\" (vs, dr, gw, se, "
                          "sidecar, pa, ap)"},
        {"get vs/a -A", "a resource cannot be retrieved by name across all namespaces"},
        {"workloads extra", "weft workloads takes no arguments (got \"extra\")"},
        {"workloads -o name", "unable to match a printer for --output=\"name\" (allowed: yaml "
                              "json wide)"},
        {"analyze -o wide", "unable to match a printer for --output=\"wide\" (allowed: yaml "
                            "json)"},
        {"proxy-status --ignore-not-found", "weft proxy-status does not take --ignore-not-found"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = parse(bad[i].line, &a, err, sizeof(err));
        if (rc != WF_E_INVAL || strcmp(err, bad[i].msg) != 0) {
            print_error("'%s': rc %d, \"%s\"\n", bad[i].line, rc, err);
        }
        assert_int_equal(rc, WF_E_INVAL);
        assert_string_equal(err, bad[i].msg);
    }
}

/* The exit status of a whole command, run in this process (nothing listens on port 1). */
static int run(const char *line)
{
    static char buf[512];
    char *argv[64];
    int argc = 0;
    snprintf(buf, sizeof(buf), "%s", line);
    for (char *save = NULL, *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        argv[argc++] = t;
    }
    argv[argc] = NULL;
    return cp_cli_main(argc, argv);
}

static void test_exit_status(void **state)
{
    char *dir = wt_tmpdir("cpcli");
    char tok[600], yaml[600], line[1400];
    snprintf(tok, sizeof(tok), "%s/token", dir);
    snprintf(yaml, sizeof(yaml), "%s/bad.yaml", dir);
    wt_write_file(tok, "s3cret\n");
    setenv("WEFT_TOKEN_FILE", tok, 1);
    unsetenv("WEFT_CONTROL");

    assert_int_equal(run("get vs --outptu yaml"), 2);
    assert_int_equal(run("apply"), 2);
    assert_int_equal(run("get --help"), 0);
    /* Errors found before or without a server: 1. */
    assert_int_equal(run("get vs --control ftp://127.0.0.1:1"), 1);
    assert_int_equal(run("get vs --control http://127.0.0.1:1"), 1);
    assert_int_equal(run("get vs --control http://127.0.0.1:1 --token-file /nonexistent"), 1);
    wt_write_file(yaml, "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
                        "metadata: {name: r}\nspec:\n  hosts: [r]\n  http:\n  - route:\n"
                        "    - destination: {host: r}\n      weight: -1\n");
    snprintf(line, sizeof(line), "apply -f %s --control http://127.0.0.1:1", yaml);
    assert_int_equal(run(line), 1);
    snprintf(line, sizeof(line), "apply -f %s/missing.yaml --control http://127.0.0.1:1", dir);
    assert_int_equal(run(line), 1);
    /* A directory without YAML or JSON: no objects. */
    unlink(yaml);
    snprintf(line, sizeof(line), "apply -f %s --control http://127.0.0.1:1", dir);
    assert_int_equal(run(line), 1);
    unsetenv("WEFT_TOKEN_FILE");
    wt_rm_rf(dir);
    wf_free(dir);
}

/* ---- YAML printer ---- */

/* A parsed YAML node as JSON, resolving plain scalars as a YAML 1.1 reader would. */
static json_t *yaml_to_json(const cp_yaml_node_t *n)
{
    if (n->kind == CP_YAML_MAP) {
        json_t *o = json_object();
        for (uint32_t i = 0; i < n->n; i++) {
            json_object_set_new(o, n->pairs[i].key->value.p, yaml_to_json(n->pairs[i].value));
        }
        return o;
    }
    if (n->kind == CP_YAML_SEQ) {
        json_t *a = json_array();
        for (uint32_t i = 0; i < n->n; i++) {
            json_array_append_new(a, yaml_to_json(n->items[i]));
        }
        return a;
    }
    const char *s = n->value.p;
    if (n->style != CP_YAML_PLAIN) {
        return json_string(s);
    }
    if (cp_yaml_is_null(n)) {
        return json_null();
    }
    if (strcmp(s, "{}") == 0) {
        return json_object();
    }
    if (strcmp(s, "[]") == 0) {
        return json_array();
    }
    static const char *const yes[] = {"true", "True", "yes", "Yes", "on", "On", "y", NULL};
    static const char *const no[] = {"false", "False", "no", "No", "off", "Off", "n", NULL};
    for (const char *const *w = yes; *w; w++) {
        if (strcmp(s, *w) == 0) {
            return json_true();
        }
    }
    for (const char *const *w = no; *w; w++) {
        if (strcmp(s, *w) == 0) {
            return json_false();
        }
    }
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*s && *end == '\0') {
        return json_integer(v);
    }
    double d = strtod(s, &end);
    if (*s && *end == '\0') {
        return json_real(d);
    }
    return json_string(s);
}

static void test_yaml(void **state)
{
    static const char *const strings[] = {"plain",
                                          "",
                                          "yes",
                                          "No",
                                          "on",
                                          "OFF",
                                          "y",
                                          "null",
                                          "~",
                                          "true",
                                          "1",
                                          "-1",
                                          "0x1F",
                                          "1e3",
                                          ".5",
                                          ".inf",
                                          "-.nan",
                                          "2026-01-02",
                                          "a: b",
                                          "a #b",
                                          "#x",
                                          "- x",
                                          "-",
                                          "?",
                                          "*",
                                          "&a",
                                          "!tag",
                                          "|",
                                          ">",
                                          "'q'",
                                          "\"q\"",
                                          "%p",
                                          "@a",
                                          "`a",
                                          " lead",
                                          "trail ",
                                          "end:",
                                          "multi\nline",
                                          "tab\there",
                                          "{a}",
                                          "[a]",
                                          ",",
                                          "d\xc3\xa9j\xc3\xa0",
                                          "http://x:80/a",
                                          "a:b",
                                          "reviews.default.svc.cluster.local"};
    json_t *strs = json_array();
    json_t *map = json_object();
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
        json_array_append_new(strs, json_string(strings[i]));
        char key[32];
        snprintf(key, sizeof(key), "k%02zu", i);
        json_object_set_new(map, key, json_string(strings[i]));
    }
    json_object_set_new(map, "", json_string("empty key"));
    json_object_set_new(map, "yes", json_string("bool-looking key"));
    json_t *doc = json_pack(
        "{s:s, s:{s:s, s:i}, s:{s:o, s:o, s:[{s:[{s:{s:s, s:i}}]}, [i, [s]], {}, []],"
        " s:f, s:b, s:b, s:n, s:{}, s:[]}}",
        "apiVersion", "networking.istio.io/v1", "metadata", "name", "reviews", "generation", 3,
        "spec", "strings", strs, "map", map, "http", "route", "destination", "host", "reviews",
        "weight", 80, 1, "deep", "ratio", 0.25, "t", 1, "f", 0, "nothing", "emptyObj", "emptyArr");
    assert_non_null(doc);

    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    assert_non_null(m);
    cp_cli_print_yaml(m, doc);
    fclose(m);

    /* The layout kubectl prints: sorted keys, sequences at their key's indent. */
    assert_non_null(strstr(text, "apiVersion: networking.istio.io/v1\nmetadata:\n"
                                 "  generation: 3\n  name: reviews\nspec:\n"));
    assert_non_null(strstr(text, "  http:\n  - route:\n    - destination:\n        host: reviews\n"
                                 "        weight: 80\n  - - 1\n    - - deep\n  - {}\n  - []\n"));

    cp_yaml_stream_t *s = NULL;
    cp_err_t err;
    int rc = cp_yaml_parse(text, len, NULL, &s, &err);
    if (rc != 0) {
        print_error("%s\n---\n%s\n", err.msg, text);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(s->n_docs, 1);
    json_t *back = yaml_to_json(s->docs[0]);
    if (!json_equal(back, doc)) {
        char *a = json_dumps(doc, JSON_SORT_KEYS), *b = json_dumps(back, JSON_SORT_KEYS);
        print_error("printed:\n%s\nwant %s\ngot  %s\n", text, a, b);
        free(a);
        free(b);
    }
    assert_true(json_equal(back, doc));
    json_decref(back);
    cp_yaml_free(s);
    free(text);
    json_decref(doc);

    /* A scalar alone and an empty object alone. */
    m = open_memstream(&text, &len);
    json_t *v = json_string("yes");
    cp_cli_print_yaml(m, v);
    json_decref(v);
    v = json_object();
    cp_cli_print_yaml(m, v);
    json_decref(v);
    fclose(m);
    assert_string_equal(text, "\"yes\"\n{}\n");
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_age),   cmocka_unit_test(test_parse_time),
        cmocka_unit_test(test_table), cmocka_unit_test(test_kinds),
        cmocka_unit_test(test_args),  cmocka_unit_test(test_exit_status),
        cmocka_unit_test(test_yaml),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
