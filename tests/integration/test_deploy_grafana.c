/*
 * test_deploy_grafana.c - deploy/grafana checked as far as it can be without Grafana (which is
 * not packaged for Debian 12 and cannot be installed here).
 *
 * - The provisioning files parse as YAML and carry what Grafana's provisioning reads:
 *   apiVersion 1, data sources of type prometheus and jaeger with a uid, a name and an http
 *   URL, a file dashboards provider with a path.
 * - Every dashboard JSON parses; uids and panel ids are unique; every panel, target and
 *   template variable names a data source uid that the provisioning file defines.
 * - Against a real `weft collector` holding bookinfo-shaped Istio telemetry (remote-written,
 *   the last hour at 15 s, wt_pd_gen_mesh), every template variable's query_result(...) is run
 *   as Grafana runs it (an instant query, each result printed as Grafana prints it and cut by
 *   the variable's regex), then every panel query with Grafana's variables substituted the way
 *   Grafana's Prometheus data source does ($__rate_interval, $__interval, $__range, $var and
 *   ${var}; a multi-value selection as an escaped `(a|b)` regex; "All" as the variable's
 *   allValue `.*`), as a range query over the dashboard's hour at the $__interval step, or an
 *   instant query when the target says so. Twice: all multi-value variables on "All" and the
 *   reporter on "destination", then on their first two values and the reporter on "source".
 *   Every query must answer "success"; every variable must have values; the main panels
 *   (request volume, success rate, durations, requests by peer) must return data; every
 *   {{label}} of a legend must be a label of the series it names. A table of queries run /
 *   succeeded / returned data is printed.
 *   The "Recent traces" panels (Jaeger data source) run Grafana's trace search for the service
 *   their hidden $tracesvc variable names and must find the trace posted to the collector.
 * - The Jaeger data source's other requests (services, operations, trace by id, dependencies)
 *   answer that trace.
 */
#include "cp_yaml.h"
#include "wf_alloc.h"
#include "wt_promdiff.h"
#include "wt_util.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <dirent.h>
#include <jansson.h>
#include <libgen.h>
#include <pcre2.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define MAX_UIDS 8
#define MAX_VARS 16
#define MAX_VALUES 64
#define RANGE_S 3600
#define STEP_S 15

/* What Grafana substitutes for its built-in variables on a one-hour dashboard: the data
 * source's timeInterval (15 s) bounds $__interval from below, and $__rate_interval is
 * max($__interval + 15 s, 4 x 15 s). */
#define RATE_INTERVAL "1m"
#define INTERVAL "15s"
#define RANGE "3600s"

typedef struct {
    char name[64];
    bool multi;       /* multi-value or include-all: values are regex-escaped */
    char value[4096]; /* what $name becomes in the current pass */
    char *values[MAX_VALUES];
    size_t nvalues;
} var_t;

typedef struct {
    size_t run, ok, data;
} tally_t;

typedef struct {
    char root[600]; /* deploy/grafana */
    /* the provisioned data sources: filled by test_provisioning_files, which runs first */
    char uids[MAX_UIDS][64];
    char types[MAX_UIDS][32];
    size_t nuids;
    wt_pd_srv_t *col; /* the collector the test started (NULL with WT_GRAFANA_COLLECTOR) */
    int port;         /* the collector's port */
    int64_t end_ms;   /* the dashboards' "now" */
} fixture_t;

static fixture_t g;

/* Panels whose queries must return data (at least one target of each). */
static const char *const main_panels[] = {
    "Request volume",
    "Success rate",
    "Request duration (P50, P90, P99)",
    "Requests by destination service",
    "HTTP/gRPC workloads",
    "Client request volume",
    "Client success rate",
    "Client request duration",
    "Server request volume",
    "Server success rate",
    "Server request duration",
    "Incoming requests by source and response code",
    "Incoming request duration by source",
    "Incoming requests by destination workload and response code",
    "Incoming request duration by service workload",
    "Incoming request volume",
    "Incoming success rate",
    "Request duration",
    "Outgoing requests by destination and response code",
    "Outgoing request duration by destination",
    "Recent traces",
};

/* The values single-value variables get (Grafana would take the first; these make the
 * panels show a service and a workload with both callers and callees). */
static const char *const preferred[][2] = {
    {"service", "reviews.default.svc.cluster.local"},
    {"namespace", "default"},
    {"workload", "productpage-v1"},
};

/* ---- YAML provisioning ---- */

/* deploy/grafana/rel parsed (one document), failing the test when it does not parse. */
static cp_yaml_stream_t *load_yaml(const char *rel)
{
    char path[800];
    snprintf(path, sizeof(path), "%s/%s", g.root, rel);
    size_t len = 0;
    char *text = wt_read_file(path, &len);
    assert_non_null(text);
    cp_yaml_stream_t *s = NULL;
    cp_err_t err;
    int rc = cp_yaml_parse(text, len, NULL, &s, &err);
    if (rc != 0) {
        fail_msg("%s: line %u column %u: %s", rel, err.line, err.column, err.msg);
    }
    wf_free(text);
    assert_int_equal(s->n_docs, 1);
    return s;
}

/* The text of the scalar under key in map, or NULL. */
static const char *scalar(const cp_yaml_node_t *map, const char *key)
{
    const cp_yaml_node_t *n = cp_yaml_get(map, key);
    return n != NULL && n->kind == CP_YAML_SCALAR ? n->value.p : NULL;
}

static void test_provisioning_files(void **state)
{
    (void)state;
    cp_yaml_stream_t *s = load_yaml("provisioning/datasources/weft.yaml");
    const cp_yaml_node_t *root = s->docs[0];
    assert_string_equal(scalar(root, "apiVersion"), "1");
    const cp_yaml_node_t *list = cp_yaml_get(root, "datasources");
    assert_non_null(list);
    assert_int_equal(list->kind, CP_YAML_SEQ);
    bool prom = false, jaeger = false;
    for (uint32_t i = 0; i < list->n; i++) {
        const cp_yaml_node_t *ds = list->items[i];
        const char *type = scalar(ds, "type"), *uid = scalar(ds, "uid"), *url = scalar(ds, "url");
        assert_non_null(scalar(ds, "name"));
        assert_non_null(type);
        assert_non_null(uid);
        assert_non_null(url);
        assert_true(strcmp(type, "prometheus") == 0 || strcmp(type, "jaeger") == 0);
        /* Both are the collector's root: Grafana appends /api/v1/... and /api/traces... */
        assert_string_equal(url, "http://127.0.0.1:20001");
        assert_string_equal(scalar(ds, "access"), "proxy");
        prom = prom || strcmp(type, "prometheus") == 0;
        jaeger = jaeger || strcmp(type, "jaeger") == 0;
        assert_true(g.nuids < MAX_UIDS);
        snprintf(g.uids[g.nuids], sizeof(g.uids[0]), "%s", uid);
        snprintf(g.types[g.nuids], sizeof(g.types[0]), "%s", type);
        for (size_t k = 0; k < g.nuids; k++) {
            assert_string_not_equal(g.uids[k], uid);
        }
        g.nuids++;
        if (strcmp(type, "prometheus") == 0) {
            const cp_yaml_node_t *jd = cp_yaml_get(ds, "jsonData");
            assert_string_equal(scalar(jd, "timeInterval"), "15s");
            assert_string_equal(scalar(jd, "prometheusVersion"), "2.42.0");
        }
    }
    assert_true(prom);
    assert_true(jaeger);
    cp_yaml_free(s);

    s = load_yaml("provisioning/dashboards/weft.yaml");
    root = s->docs[0];
    assert_string_equal(scalar(root, "apiVersion"), "1");
    list = cp_yaml_get(root, "providers");
    assert_non_null(list);
    assert_int_equal(list->kind, CP_YAML_SEQ);
    assert_int_equal(list->n, 1);
    assert_non_null(scalar(list->items[0], "name"));
    assert_string_equal(scalar(list->items[0], "type"), "file");
    assert_non_null(scalar(cp_yaml_get(list->items[0], "options"), "path"));
    cp_yaml_free(s);
}

/* ---- dashboards ---- */

/* The type of data source uid, or NULL when the provisioning file has none such. */
static const char *uid_type(const char *uid)
{
    for (size_t i = 0; uid != NULL && i < g.nuids; i++) {
        if (strcmp(g.uids[i], uid) == 0) {
            return g.types[i];
        }
    }
    return NULL;
}

/* Whether a target (or panel) reads the Jaeger data source. */
static bool is_jaeger(json_t *t)
{
    const char *type =
        uid_type(json_string_value(json_object_get(json_object_get(t, "datasource"), "uid")));
    return type != NULL && strcmp(type, "jaeger") == 0;
}

/* Fail unless ds names a provisioned data source by uid, with its type. */
static void check_ds(json_t *ds, const char *where)
{
    const char *uid = json_string_value(json_object_get(ds, "uid"));
    const char *type = uid_type(uid);
    if (type == NULL) {
        fail_msg("%s: data source uid %s is not provisioned", where, uid != NULL ? uid : "(none)");
    }
    const char *t = json_string_value(json_object_get(ds, "type"));
    if (t == NULL || strcmp(t, type) != 0) {
        fail_msg("%s: data source %s has type %s, not %s", where, uid, t != NULL ? t : "(none)",
                 type);
    }
}

/* The dashboards' file names (sorted), NULL-terminated; wf_free each and the array. */
static char **dashboard_files(void)
{
    char dir[800];
    snprintf(dir, sizeof(dir), "%s/dashboards", g.root);
    struct dirent **ents = NULL;
    int n = scandir(dir, &ents, NULL, alphasort);
    assert_true(n > 0);
    char **out = wf_calloc((size_t)n + 1, sizeof(char *));
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(ents[i]->d_name);
        if (len > 5 && strcmp(ents[i]->d_name + len - 5, ".json") == 0) {
            size_t plen = strlen(dir) + len + 2;
            out[k] = wf_malloc(plen);
            snprintf(out[k], plen, "%s/%s", dir, ents[i]->d_name);
            k++;
        }
        free(ents[i]);
    }
    free(ents);
    return out;
}

static void free_files(char **files)
{
    for (size_t i = 0; files[i] != NULL; i++) {
        wf_free(files[i]);
    }
    wf_free(files);
}

static void test_dashboards_well_formed(void **state)
{
    (void)state;
    char **files = dashboard_files();
    char uids[8][64];
    size_t nd = 0, panels = 0, targets = 0;
    for (size_t f = 0; files[f] != NULL; f++) {
        json_error_t err;
        json_t *d = json_load_file(files[f], JSON_REJECT_DUPLICATES, &err);
        if (d == NULL) {
            fail_msg("%s: line %d: %s", files[f], err.line, err.text);
        }
        const char *uid = json_string_value(json_object_get(d, "uid"));
        assert_non_null(uid);
        assert_true(strlen(uid) <= 40); /* Grafana's limit */
        assert_non_null(json_string_value(json_object_get(d, "title")));
        assert_true(nd < 8);
        for (size_t k = 0; k < nd; k++) {
            assert_string_not_equal(uids[k], uid);
        }
        snprintf(uids[nd++], sizeof(uids[0]), "%s", uid);

        json_t *vars = json_object_get(json_object_get(d, "templating"), "list");
        size_t i;
        json_t *v;
        json_array_foreach(vars, i, v)
        {
            const char *type = json_string_value(json_object_get(v, "type"));
            assert_non_null(type);
            if (strcmp(type, "query") == 0) {
                check_ds(json_object_get(v, "datasource"), uid);
                assert_non_null(
                    json_string_value(json_object_get(json_object_get(v, "query"), "query")));
            }
        }

        json_t *ps = json_object_get(d, "panels");
        assert_true(json_array_size(ps) > 0);
        json_int_t ids[256];
        size_t nids = 0;
        json_t *p;
        json_array_foreach(ps, i, p)
        {
            json_int_t id = json_integer_value(json_object_get(p, "id"));
            assert_true(id > 0);
            for (size_t k = 0; k < nids; k++) {
                assert_true(ids[k] != id);
            }
            assert_true(nids < 256);
            ids[nids++] = id;
            json_t *gp = json_object_get(p, "gridPos");
            assert_true(json_is_integer(json_object_get(gp, "w")));
            assert_true(json_is_integer(json_object_get(gp, "h")));
            assert_true(json_integer_value(json_object_get(gp, "x")) +
                            json_integer_value(json_object_get(gp, "w")) <=
                        24);
            if (strcmp(json_string_value(json_object_get(p, "type")), "row") == 0) {
                continue;
            }
            panels++;
            char where[300];
            snprintf(where, sizeof(where), "%s: %s", uid,
                     json_string_value(json_object_get(p, "title")));
            check_ds(json_object_get(p, "datasource"), where);
            json_t *ts = json_object_get(p, "targets");
            assert_true(json_array_size(ts) > 0);
            size_t j;
            json_t *t;
            json_array_foreach(ts, j, t)
            {
                check_ds(json_object_get(t, "datasource"), where);
                if (is_jaeger(t)) {
                    /* a trace search: the fields of Grafana's Jaeger query editor */
                    assert_string_equal(json_string_value(json_object_get(t, "queryType")),
                                        "search");
                    assert_non_null(json_string_value(json_object_get(t, "service")));
                } else {
                    const char *expr = json_string_value(json_object_get(t, "expr"));
                    assert_non_null(expr);
                    assert_true(strlen(expr) > 0);
                }
                targets++;
            }
        }
        json_decref(d);
    }
    printf("%zu dashboards, %zu panels, %zu queries: well-formed, data sources provisioned\n", nd,
           panels, targets);
    assert_int_equal(nd, 3);
    free_files(files);
}

/* ---- running the queries as Grafana would ---- */

/* GET path on the collector as JSON; NULL (with the answer printed) unless a 200 with JSON. */
static json_t *jaeger_get(const char *path)
{
    char *body = NULL;
    int st = wt_http(g.port, "GET", path, NULL, 0, &body);
    json_t *j = st == 200 ? json_loads(body, 0, NULL) : NULL;
    if (j == NULL) {
        printf("GET %s: %d %s\n", path, st, body != NULL ? body : "");
    }
    wf_free(body);
    return j;
}

/* Append s[0..n) to the growing string *o (NUL-terminated). */
static void put(char **o, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        *cap = (*len + n + 1) * 2;
        *o = wf_realloc(*o, *cap);
    }
    memcpy(*o + *len, s, n);
    *len += n;
    (*o)[*len] = '\0';
}

/* expr with Grafana's built-in and the dashboard's variables replaced (wf_free it). A
 * variable Grafana would not know is left as written, as Grafana leaves it. */
static char *interpolate(const char *expr, const var_t *vars, size_t nvars)
{
    size_t len = 0, cap = strlen(expr) + 64;
    char *o = wf_malloc(cap);
    o[0] = '\0';
    for (const char *p = expr; *p != '\0';) {
        if (*p != '$') {
            put(&o, &len, &cap, p, 1);
            p++;
            continue;
        }
        const char *name = p + 1, *after;
        size_t n;
        if (*name == '{') {
            name++;
            n = strcspn(name, "}:");
            after = strchr(name, '}');
            after = after != NULL ? after + 1 : name + n;
        } else {
            n = 0;
            while (name[n] == '_' || (name[n] >= 'a' && name[n] <= 'z') ||
                   (name[n] >= 'A' && name[n] <= 'Z') || (name[n] >= '0' && name[n] <= '9')) {
                n++;
            }
            after = name + n;
        }
        const char *val = NULL;
        if (n == strlen("__rate_interval") && strncmp(name, "__rate_interval", n) == 0) {
            val = RATE_INTERVAL;
        } else if (n == strlen("__interval") && strncmp(name, "__interval", n) == 0) {
            val = INTERVAL;
        } else if (n == strlen("__range") && strncmp(name, "__range", n) == 0) {
            val = RANGE;
        }
        for (size_t i = 0; val == NULL && i < nvars; i++) {
            if (strlen(vars[i].name) == n && strncmp(vars[i].name, name, n) == 0) {
                val = vars[i].value;
            }
        }
        if (val == NULL) {
            put(&o, &len, &cap, p, (size_t)(after - p));
        } else {
            put(&o, &len, &cap, val, strlen(val));
        }
        p = after;
    }
    return o;
}

/* Grafana's escaping of a value inside a regex matcher's string (prometheusSpecialRegexEscape):
 * regex metacharacters get a backslash, itself escaped for the PromQL string. */
static void regex_escape(char *out, size_t cap, const char *v)
{
    size_t k = 0;
    for (; *v != '\0' && k + 4 < cap; v++) {
        if (strchr("\\^$*+?.()|{}[]", *v) != NULL) {
            out[k++] = '\\';
            out[k++] = '\\';
        }
        out[k++] = *v;
    }
    out[k] = '\0';
}

/* s percent-encoded for an application/x-www-form-urlencoded body (wf_free it). */
static char *form_escape(const char *s)
{
    size_t len = strlen(s);
    char *o = wf_malloc(len * 3 + 1), *w = o;
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            strchr("-_.~", c) != NULL) {
            *w++ = (char)c;
        } else {
            w += sprintf(w, "%%%02X", c);
        }
    }
    *w = '\0';
    return o;
}

/* Run q (already interpolated) as Grafana's data source does (POST form); the parsed answer
 * when the status is "success", else NULL after printing the error. */
static json_t *run_query(const char *q, bool instant)
{
    char *eq = form_escape(q);
    size_t flen = strlen(eq) + 128;
    char *form = wf_malloc(flen);
    int64_t end = g.end_ms / 1000;
    if (instant) {
        snprintf(form, flen, "query=%s&time=%lld", eq, (long long)end);
    } else {
        snprintf(form, flen, "query=%s&start=%lld&end=%lld&step=%d", eq, (long long)(end - RANGE_S),
                 (long long)end, STEP_S);
    }
    char *body = NULL;
    json_t *j = NULL;
    int status = wt_http_ex(g.port, "POST", instant ? "/api/v1/query" : "/api/v1/query_range",
                            "Content-Type: application/x-www-form-urlencoded\r\n", form,
                            strlen(form), 60000, &body);
    if (status == 200) {
        j = json_loads(body, 0, NULL);
    }
    const char *st = json_string_value(json_object_get(j, "status"));
    if (st == NULL || strcmp(st, "success") != 0) {
        printf("FAILED (%d): %s\n  %s\n", status, q, body != NULL ? body : "");
        json_decref(j);
        j = NULL;
    }
    wf_free(body);
    wf_free(eq);
    wf_free(form);
    return j;
}

/* The number of series (or samples) in a query answer. */
static size_t result_size(json_t *j)
{
    return json_array_size(json_object_get(json_object_get(j, "data"), "result"));
}

/*
 * A query variable's values: query_result(EXPR) run as an instant query, each result printed
 * as Grafana prints it (`name{l="v", ...} value timestamp`), the regex's first group taken,
 * duplicates dropped, sorted (sort 1). false when the query failed.
 */
static bool variable_values(var_t *v, const char *def, const char *regex, const var_t *vars,
                            size_t nvars, tally_t *t)
{
    const char *open = strchr(def, '(');
    const char *close = strrchr(def, ')');
    assert_non_null(open);
    assert_non_null(close);
    assert_memory_equal(def, "query_result(", strlen("query_result("));
    char *inner = wf_malloc((size_t)(close - open));
    snprintf(inner, (size_t)(close - open), "%s", open + 1);
    char *q = interpolate(inner, vars, nvars);
    wf_free(inner);
    t->run++;
    json_t *j = run_query(q, true);
    wf_free(q);
    if (j == NULL) {
        return false;
    }
    t->ok++;
    if (result_size(j) > 0) {
        t->data++;
    }
    /* regex is /RE/ (no flags in these dashboards) */
    size_t rlen = strlen(regex);
    assert_true(rlen >= 2 && regex[0] == '/' && regex[rlen - 1] == '/');
    int errc;
    PCRE2_SIZE erro;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)(regex + 1), rlen - 2, 0, &errc, &erro, NULL);
    assert_non_null(re);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(json_object_get(j, "data"), "result"), i, r)
    {
        char text[2048];
        size_t k = 0;
        json_t *m = json_object_get(r, "metric");
        const char *name = json_string_value(json_object_get(m, "__name__"));
        k += (size_t)snprintf(text + k, sizeof(text) - k, "%s{", name != NULL ? name : "");
        const char *key;
        json_t *val;
        bool first = true;
        json_object_foreach(m, key, val)
        {
            if (strcmp(key, "__name__") == 0 || k >= sizeof(text)) {
                continue;
            }
            k += (size_t)snprintf(text + k, sizeof(text) - k, "%s%s=\"%s\"", first ? "" : ", ", key,
                                  json_string_value(val));
            first = false;
        }
        if (k < sizeof(text)) {
            json_t *value = json_object_get(r, "value");
            snprintf(text + k, sizeof(text) - k, "} %s %lld",
                     json_string_value(json_array_get(value, 1)),
                     (long long)(json_number_value(json_array_get(value, 0)) * 1000));
        }
        if (pcre2_match(re, (PCRE2_SPTR)text, PCRE2_ZERO_TERMINATED, 0, 0, md, NULL) < 2) {
            continue;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        char got[512];
        snprintf(got, sizeof(got), "%.*s", (int)(ov[3] - ov[2]), text + ov[2]);
        bool dup = false;
        for (size_t n = 0; n < v->nvalues && !dup; n++) {
            dup = strcmp(v->values[n], got) == 0;
        }
        if (!dup && v->nvalues < MAX_VALUES) {
            size_t at = v->nvalues;
            while (at > 0 && strcmp(v->values[at - 1], got) > 0) {
                v->values[at] = v->values[at - 1];
                at--;
            }
            v->values[at] = wf_strdup(got);
            v->nvalues++;
        }
    }
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    json_decref(j);
    return true;
}

/* Set what $name becomes in this pass: a single-value variable its preferred value (else its
 * first); a multi-value one `.*` (All) or its first two values escaped as `(a|b)`. */
static void select_value(var_t *v, bool all)
{
    if (!v->multi) {
        const char *pick = v->nvalues > 0 ? v->values[0] : "";
        for (size_t i = 0; i < sizeof(preferred) / sizeof(preferred[0]); i++) {
            for (size_t k = 0; strcmp(v->name, preferred[i][0]) == 0 && k < v->nvalues; k++) {
                if (strcmp(v->values[k], preferred[i][1]) == 0) {
                    pick = v->values[k];
                }
            }
        }
        snprintf(v->value, sizeof(v->value), "%s", pick);
        return;
    }
    if (all) {
        snprintf(v->value, sizeof(v->value), ".*"); /* the variables' allValue */
        return;
    }
    size_t n = v->nvalues < 2 ? v->nvalues : 2;
    char esc[2][1024];
    for (size_t i = 0; i < n; i++) {
        regex_escape(esc[i], sizeof(esc[i]), v->values[i]);
    }
    if (n == 1) {
        snprintf(v->value, sizeof(v->value), "%s", esc[0]);
    } else {
        snprintf(v->value, sizeof(v->value), "(%s|%s)", esc[0], esc[1]);
    }
}

/* Whether a panel of this title must return data. */
static bool is_main(const char *title)
{
    for (size_t i = 0; i < sizeof(main_panels) / sizeof(main_panels[0]); i++) {
        if (strcmp(title, main_panels[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* Every {{label}} of a target's legend names a label of each series the query returned (a
 * legend naming a label that is not there prints empty in Grafana). 1 when one does not. */
static size_t check_legend(json_t *answer, const char *legend, const char *uid, const char *title)
{
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(json_object_get(answer, "data"), "result"), i, r)
    {
        json_t *m = json_object_get(r, "metric");
        for (const char *p = legend != NULL ? strstr(legend, "{{") : NULL; p != NULL;
             p = strstr(p + 2, "{{")) {
            const char *end = strstr(p, "}}");
            assert_non_null(end);
            char name[128];
            snprintf(name, sizeof(name), "%.*s", (int)(end - p - 2), p + 2);
            if (json_object_get(m, name) == NULL) {
                printf("%s: \"%s\": legend %s names label %s, absent from the series\n", uid, title,
                       legend, name);
                return 1;
            }
        }
    }
    return 0;
}

/* One dashboard, one pass. Counts into vt (variables) and pt (panel queries); the number of
 * failures (failed queries, variables without values, main panels without data). */
static size_t run_dashboard(json_t *d, bool all, tally_t *vt, tally_t *pt)
{
    const char *uid = json_string_value(json_object_get(d, "uid"));
    var_t vars[MAX_VARS];
    size_t nvars = 0, failures = 0;
    memset(vars, 0, sizeof(vars));
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(json_object_get(d, "templating"), "list"), i, v)
    {
        assert_true(nvars < MAX_VARS);
        var_t *x = &vars[nvars];
        snprintf(x->name, sizeof(x->name), "%s", json_string_value(json_object_get(v, "name")));
        x->multi = json_is_true(json_object_get(v, "multi")) ||
                   json_is_true(json_object_get(v, "includeAll"));
        const char *type = json_string_value(json_object_get(v, "type"));
        if (strcmp(type, "custom") == 0) {
            /* its current value as the dashboard opens in the first pass, its last option in
             * the second (qrep: the destination's reports, then the source's) */
            json_t *opts = json_object_get(v, "options");
            const char *cur =
                all ? json_string_value(json_object_get(json_object_get(v, "current"), "value"))
                    : json_string_value(json_object_get(
                          json_array_get(opts, json_array_size(opts) - 1), "value"));
            assert_non_null(cur);
            x->values[0] = wf_strdup(cur);
            x->nvalues = 1;
        } else {
            const char *def =
                json_string_value(json_object_get(json_object_get(v, "query"), "query"));
            const char *regex = json_string_value(json_object_get(v, "regex"));
            if (!variable_values(x, def, regex, vars, nvars, vt)) {
                failures++;
            }
            if (x->nvalues == 0) {
                printf("%s: variable $%s has no values\n", uid, x->name);
                failures++;
            }
        }
        select_value(x, all);
        nvars++;
    }

    json_t *p;
    json_array_foreach(json_object_get(d, "panels"), i, p)
    {
        const char *title = json_string_value(json_object_get(p, "title"));
        size_t j, with_data = 0;
        json_t *t;
        json_array_foreach(json_object_get(p, "targets"), j, t)
        {
            if (is_jaeger(t)) {
                /* Grafana's Jaeger search: the service, the dashboard's range in
                 * microseconds, the limit */
                char *svc =
                    interpolate(json_string_value(json_object_get(t, "service")), vars, nvars);
                char path[600];
                snprintf(path, sizeof(path),
                         "/api/traces?service=%s&start=%lld&end=%lld&limit=%lld", svc,
                         (long long)(g.end_ms - RANGE_S * 1000LL) * 1000,
                         (long long)g.end_ms * 1000,
                         (long long)json_integer_value(json_object_get(t, "limit")));
                wf_free(svc);
                pt->run++;
                json_t *a = jaeger_get(path);
                if (a == NULL || !json_is_array(json_object_get(a, "data"))) {
                    failures++;
                } else {
                    pt->ok++;
                    if (json_array_size(json_object_get(a, "data")) > 0) {
                        pt->data++;
                        with_data++;
                    }
                }
                json_decref(a);
                continue;
            }
            char *q = interpolate(json_string_value(json_object_get(t, "expr")), vars, nvars);
            pt->run++;
            json_t *a = run_query(q, json_is_true(json_object_get(t, "instant")));
            wf_free(q);
            if (a == NULL) {
                failures++;
                continue;
            }
            pt->ok++;
            if (result_size(a) > 0) {
                pt->data++;
                with_data++;
                failures += check_legend(a, json_string_value(json_object_get(t, "legendFormat")),
                                         uid, title);
            }
            json_decref(a);
        }
        if (is_main(title) && with_data == 0) {
            printf("%s: main panel \"%s\" returned no data\n", uid, title);
            failures++;
        }
    }
    if (!all) {
        printf("  %s variables:", uid);
        for (size_t k = 0; k < nvars; k++) {
            printf(" $%s=%s", vars[k].name, vars[k].value);
        }
        printf("\n");
    }
    for (size_t k = 0; k < nvars; k++) {
        for (size_t n = 0; n < vars[k].nvalues; n++) {
            wf_free(vars[k].values[n]);
        }
    }
    return failures;
}

static void test_queries_against_collector(void **state)
{
    (void)state;
    char **files = dashboard_files();
    size_t failures = 0;
    printf("%-16s %-5s | %-28s | %-28s\n", "dashboard", "pass", "variable queries",
           "panel queries");
    printf("%-16s %-5s | %8s %8s %10s | %8s %8s %10s\n", "", "", "run", "success", "with data",
           "run", "success", "with data");
    tally_t total = {0};
    for (size_t f = 0; files[f] != NULL; f++) {
        json_t *d = json_load_file(files[f], 0, NULL);
        assert_non_null(d);
        for (int pass = 0; pass < 2; pass++) {
            tally_t vt = {0}, pt = {0};
            failures += run_dashboard(d, pass == 0, &vt, &pt);
            printf("%-16s %-5s | %8zu %8zu %10zu | %8zu %8zu %10zu\n",
                   json_string_value(json_object_get(d, "uid")), pass == 0 ? "all" : "multi",
                   vt.run, vt.ok, vt.data, pt.run, pt.ok, pt.data);
            total.run += vt.run + pt.run;
            total.ok += vt.ok + pt.ok;
            total.data += vt.data + pt.data;
        }
        json_decref(d);
    }
    printf("total: %zu queries run, %zu answered success, %zu returned data\n", total.run, total.ok,
           total.data);
    free_files(files);
    assert_true(total.run > 300);
    assert_int_equal(total.ok, total.run);
    assert_int_equal(failures, 0);
}

/* ---- the Jaeger data source ---- */

/* The trace every Jaeger request of the test finds. */
#define TRACE_ID "5b8efff798038103d269b633813fc60c"

/*
 * Post one trace as two sidecars report it (service.name is the canonical service, as weft's
 * proxies set it): productpage's server span, its client span to reviews, and reviews' server
 * span; two minutes before the dashboards' end. 0 or -1.
 */
static int post_trace(void)
{
    long long t0 = (long long)(g.end_ms - 120000) * 1000000LL;
    char body[4096];
    snprintf(body, sizeof(body),
             "{\"resourceSpans\":["
             "{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":"
             "{\"stringValue\":\"productpage\"}},{\"key\":\"service.namespace\",\"value\":"
             "{\"stringValue\":\"default\"}}]},\"scopeSpans\":[{\"spans\":["
             "{\"traceId\":\"%s\",\"spanId\":\"eee19b7ec3c1b174\",\"name\":\"productpage:9080/*\","
             "\"kind\":2,\"startTimeUnixNano\":\"%lld\",\"endTimeUnixNano\":\"%lld\"},"
             "{\"traceId\":\"%s\",\"spanId\":\"eee19b7ec3c1b175\",\"parentSpanId\":"
             "\"eee19b7ec3c1b174\",\"name\":\"reviews:9080/*\",\"kind\":3,"
             "\"startTimeUnixNano\":\"%lld\",\"endTimeUnixNano\":\"%lld\"}]}]},"
             "{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":"
             "{\"stringValue\":\"reviews\"}},{\"key\":\"service.namespace\",\"value\":"
             "{\"stringValue\":\"default\"}}]},\"scopeSpans\":[{\"spans\":["
             "{\"traceId\":\"%s\",\"spanId\":\"eee19b7ec3c1b176\",\"parentSpanId\":"
             "\"eee19b7ec3c1b175\",\"name\":\"reviews:9080/*\",\"kind\":2,"
             "\"startTimeUnixNano\":\"%lld\",\"endTimeUnixNano\":\"%lld\"}]}]}]}",
             TRACE_ID, t0, t0 + 30000000LL, TRACE_ID, t0 + 1000000LL, t0 + 20000000LL, TRACE_ID,
             t0 + 2000000LL, t0 + 19000000LL);
    char *answer = NULL;
    int st = wt_http_ex(g.port, "POST", "/v1/traces", "Content-Type: application/json\r\n", body,
                        strlen(body), 10000, &answer);
    if (st != 200) {
        printf("POST /v1/traces: %d %s\n", st, answer != NULL ? answer : "");
    }
    wf_free(answer);
    return st == 200 ? 0 : -1;
}

static void test_jaeger_datasource(void **state)
{
    (void)state;
    if (g.col == NULL) {
        wt_skip(); /* someone else's collector: no trace of ours in it */
    }
    const char *trace = TRACE_ID;
    /* What Grafana's Jaeger data source asks, in its order: the services for the search form,
     * the operations of the chosen one, a search over the dashboard's range (microseconds),
     * the trace by id, and the dependency graph (milliseconds). */
    json_t *j = jaeger_get("/api/services");
    assert_non_null(j);
    json_t *data = json_object_get(j, "data");
    bool found = false;
    size_t i;
    json_t *x;
    json_array_foreach(data, i, x)
    {
        found = found || strcmp(json_string_value(x), "productpage") == 0;
    }
    assert_true(found);
    json_decref(j);

    j = jaeger_get("/api/services/productpage/operations");
    assert_non_null(j);
    assert_true(json_array_size(json_object_get(j, "data")) == 2);
    json_decref(j);

    char path[512];
    long long end_us = (long long)g.end_ms * 1000, start_us = end_us - RANGE_S * 1000000LL;
    snprintf(path, sizeof(path),
             "/api/traces?service=productpage&start=%lld&end=%lld&limit=20&lookback=1h", start_us,
             end_us);
    j = jaeger_get(path);
    assert_non_null(j);
    assert_int_equal(json_array_size(json_object_get(j, "data")), 1);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(j, "data"), 0), "traceID")),
                        trace);
    json_decref(j);

    snprintf(path, sizeof(path), "/api/traces/%s", trace);
    j = jaeger_get(path);
    assert_non_null(j);
    json_t *spans = json_object_get(json_array_get(json_object_get(j, "data"), 0), "spans");
    assert_int_equal(json_array_size(spans), 3);
    json_decref(j);

    snprintf(path, sizeof(path), "/api/dependencies?endTs=%lld&lookback=3600000", end_us / 1000);
    j = jaeger_get(path);
    assert_non_null(j);
    found = false;
    json_array_foreach(json_object_get(j, "data"), i, x)
    {
        const char *parent = json_string_value(json_object_get(x, "parent"));
        const char *child = json_string_value(json_object_get(x, "child"));
        found = found || (parent != NULL && child != NULL && strcmp(parent, "productpage") == 0 &&
                          strcmp(child, "reviews") == 0 &&
                          json_integer_value(json_object_get(x, "callCount")) == 1);
    }
    assert_true(found);
    json_decref(j);
    printf(
        "Jaeger data source: services, operations, search, trace by id, dependencies answered\n");
}

/*
 * Start a collector and load it (the test's data), or with WT_GRAFANA_COLLECTOR=PORT read the
 * collector already listening on 127.0.0.1:PORT (a `weft demo`'s, say) as it is: then nothing
 * is written to it and the Jaeger test, which needs its own trace, is skipped.
 */
static int setup(void **state)
{
    (void)state;
    char src[600];
    snprintf(src, sizeof(src), "%s", __FILE__);
    snprintf(g.root, sizeof(g.root), "%s/../../deploy/grafana", dirname(src));
    const char *ext = getenv("WT_GRAFANA_COLLECTOR");
    if (ext != NULL) {
        g.port = atoi(ext);
        g.end_ms = wt_pd_now_ms();
        printf("reading the collector on 127.0.0.1:%d as it is\n", g.port);
        return g.port > 0 && wt_wait_port(g.port, 1000) ? 0 : -1;
    }
    g.col = wt_pd_start(WT_PD_WEFT);
    if (g.col == NULL) {
        return -1;
    }
    g.port = wt_pd_port(g.col);
    wt_pd_data_t data;
    wt_pd_data_init(&data);
    /* whole minutes, a minute back: the last scrape of every series is inside the hour */
    g.end_ms = (wt_pd_now_ms() / 60000) * 60000 - 60000;
    wt_pd_gen_mesh(&data, 9, g.end_ms, RANGE_S * 1000);
    int rc = wt_pd_load(g.col, &data);
    printf("collector holds %zu series, %zu samples of mesh telemetry\n", data.n, data.samples);
    wt_pd_data_free(&data);
    return rc != 0 ? rc : post_trace();
}

static int teardown(void **state)
{
    (void)state;
    return wt_pd_stop(g.col) ? 0 : -1;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (wt_pd_prometheus_bin() == NULL) {
        return 77; /* wt_pd_start wants it, though only the collector runs */
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_provisioning_files),
        cmocka_unit_test(test_dashboards_well_formed),
        cmocka_unit_test(test_queries_against_collector),
        cmocka_unit_test(test_jaeger_datasource),
    };
    return wt_exit_code(cmocka_run_group_tests(tests, setup, teardown));
}
