/*
 * col_federate.c - GET /federate (see col_federate.h): a metric-selector parser, the store
 * selection over the lookback window, and the text-format output in Prometheus's order.
 */
#include "col_federate.h"

#include "col_expfmt.h"
#include "pql_ast.h"
#include "wf_alloc.h"
#include "wf_clock.h"
#include "wf_err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FED_LOOKBACK_MS (5 * 60 * 1000)
#define FED_MAX_SELECTORS 64
#define FED_MAX_MATCHERS 64

/* Parse one match[] with the PromQL parser; it must be a plain instant-vector selector, as
 * Prometheus's ParseMetricSelector requires. Fills m[] (borrowed from *tree) and returns 0, or
 * fills err and returns WF_E_INVAL. */
static int parse_selector(const char *sel, pql_tree_t **tree, const st_matcher_t **m, size_t max,
                          size_t *n, char *err, size_t errlen)
{
    pql_parse_error_t perr;
    memset(&perr, 0, sizeof(perr));
    *tree = NULL;
    if (pql_parse(sel, strlen(sel), tree, &perr) != 0) {
        snprintf(err, errlen, "%s", perr.msg);
        return WF_E_INVAL;
    }
    const pql_node_t *v = (*tree)->root;
    if (v->kind != PQL_NODE_VECTOR || v->u.vector.offset_ms != 0 || v->u.vector.at != PQL_AT_NONE) {
        snprintf(err, errlen, "1:1: parse error: expected a metric selector, got \"%s\"", sel);
        return WF_E_INVAL;
    }
    if (v->u.vector.nmatchers > max) {
        snprintf(err, errlen, "too many matchers in \"%s\" (at most %zu)", sel, max);
        return WF_E_INVAL;
    }
    for (size_t i = 0; i < v->u.vector.nmatchers; i++) {
        m[i] = v->u.vector.matchers[i].compiled;
        WF_ASSERT(m[i] != NULL);
    }
    *n = v->u.vector.nmatchers;
    return 0;
}

/* ---- The handler -------------------------------------------------------------------------- */

typedef struct {
    const st_label_t *labels; /* sorted by name, borrowed from its set */
    size_t nlabels;
    wf_str_t name;
    int64_t ts;
    double v;
} fed_sample_t;

static int fed_cmp(const void *x, const void *y)
{
    const fed_sample_t *a = x, *b = y;
    int c = wf_str_cmp(a->name, b->name);
    if (c != 0) {
        return c;
    }
    size_t n = a->nlabels < b->nlabels ? a->nlabels : b->nlabels;
    for (size_t i = 0; i < n; i++) {
        c = wf_str_cmp(a->labels[i].name, b->labels[i].name);
        if (c == 0) {
            c = wf_str_cmp(a->labels[i].value, b->labels[i].value);
        }
        if (c != 0) {
            return c;
        }
    }
    return a->nlabels < b->nlabels ? -1 : a->nlabels > b->nlabels ? 1 : 0;
}

/*
 * The family's `# HELP` and `# TYPE` lines. Prometheus writes `# TYPE name untyped` and no HELP;
 * but `promtool check metrics`, which weft's federation output must pass, reports every family
 * without help text and every untyped name ending in _total. So: the recorded help text (or a
 * fixed one), and the recorded type when it is counter or gauge (looked up under the name, and
 * for a counter also under the name without _total, the OpenMetrics family name); histograms
 * and summaries stay untyped because their series are separate families here, as in
 * Prometheus. A scraping Prometheus reads all of these the same way.
 */
static void write_family_header(st_store_t *s, wf_buf_t *out, wf_str_t name)
{
    st_metadata_t md;
    memset(&md, 0, sizeof(md));
    int rc = st_metadata_get(s, name, &md);
    if (rc != 0 && name.len > 6 && memcmp(name.p + name.len - 6, "_total", 6) == 0) {
        rc = st_metadata_get(s, (wf_str_t){name.p, name.len - 6}, &md);
        if (rc == 0 && md.type != ST_METRIC_COUNTER) {
            wf_free(md.help);
            wf_free(md.unit);
            memset(&md, 0, sizeof(md));
            rc = WF_E_NOTFOUND;
        }
    }
    bool have = rc == 0 && md.help != NULL && md.help[0] != '\0';
    st_metric_type_t type = ST_METRIC_UNKNOWN;
    if (rc == 0 && (md.type == ST_METRIC_COUNTER || md.type == ST_METRIC_GAUGE)) {
        type = md.type;
    }
    col_expfmt_write_help(out, name, have ? wf_str(md.help) : WF_STR_LIT("Federated by weft."));
    col_expfmt_write_type(out, name, type);
    wf_free(md.help);
    wf_free(md.unit);
}

static bool is_stale(double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    return bits == 0x7ff0000000000002ULL;
}

void col_federate_handler(void *store, col_req_t *req, col_resp_t *resp)
{
    st_store_t *s = store;
    const char *sel[FED_MAX_SELECTORS];
    st_series_set_t *sets[FED_MAX_SELECTORS] = {0};
    size_t nsets = 0;
    fed_sample_t *v = NULL;
    size_t nv = 0, cap = 0;
    char err[600];
    st_label_t *tmp = NULL;

    size_t nsel = col_req_param_all(req, "match[]", sel, FED_MAX_SELECTORS);
    if (nsel > FED_MAX_SELECTORS) {
        col_resp_text(resp, 400, "too many match[] parameters (at most %d)", FED_MAX_SELECTORS);
        goto out;
    }
    int64_t maxt = wf_wall_ms();
    int64_t mint = maxt - FED_LOOKBACK_MS;
    for (size_t i = 0; i < nsel; i++) {
        const st_matcher_t *m[FED_MAX_MATCHERS];
        size_t nm = 0;
        pql_tree_t *tree = NULL;
        err[0] = '\0';
        int rc = parse_selector(sel[i], &tree, m, FED_MAX_MATCHERS, &nm, err, sizeof(err));
        if (rc < 0) {
            pql_tree_free(tree);
            col_resp_text(resp, 400, "%s", err);
            goto out;
        }
        rc = st_select(s, m, nm, mint, maxt, &sets[nsets]);
        pql_tree_free(tree);
        if (rc == WF_E_INVAL) {
            col_resp_text(resp, 400, "vector selector must contain at least one non-empty matcher");
            goto out;
        }
        if (rc < 0) {
            col_resp_text(resp, 500, "federation failed: %s", st_strerror(rc));
            goto out;
        }
        st_series_set_t *set = sets[nsets++];
        for (size_t j = 0; j < st_series_set_len(set); j++) {
            const int64_t *ts;
            const double *vals;
            size_t n;
            rc = st_series_set_samples(set, j, &ts, &vals, &n);
            if (rc < 0) {
                col_resp_text(resp, 500, "federation failed: %s", st_strerror(rc));
                goto out;
            }
            if (n == 0 || is_stale(vals[n - 1])) {
                continue;
            }
            fed_sample_t f = {0};
            f.labels = st_series_set_labels(set, j, &f.nlabels);
            for (size_t l = 0; l < f.nlabels; l++) {
                if (wf_str_eq_c(f.labels[l].name, "__name__")) {
                    f.name = f.labels[l].value;
                }
            }
            if (f.name.len == 0) {
                continue; /* Prometheus ignores nameless series here too */
            }
            f.ts = ts[n - 1];
            f.v = vals[n - 1];
            if (nv == cap) {
                cap = cap ? cap * 2 : 256;
                v = wf_realloc(v, cap * sizeof(*v));
            }
            v[nv++] = f;
        }
    }
    if (nv > 1) {
        qsort(v, nv, sizeof(*v), fed_cmp);
    }

    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    size_t tmpcap = 0;
    for (size_t i = 0; i < nv; i++) {
        if (i > 0 && fed_cmp(&v[i - 1], &v[i]) == 0) {
            continue; /* selected by more than one match[] */
        }
        if (i == 0 || !wf_str_eq(v[i - 1].name, v[i].name)) {
            write_family_header(s, &resp->body, v[i].name);
        }
        if (v[i].nlabels + 1 > tmpcap) {
            tmpcap = v[i].nlabels + 1;
            tmp = wf_realloc(tmp, tmpcap * sizeof(*tmp));
        }
        size_t k = 0;
        bool has_instance = false;
        for (size_t l = 0; l < v[i].nlabels; l++) {
            if (v[i].labels[l].value.len == 0) {
                continue;
            }
            has_instance = has_instance || wf_str_eq_c(v[i].labels[l].name, "instance");
            tmp[k++] = v[i].labels[l];
        }
        if (!has_instance) {
            tmp[k++] = (st_label_t){WF_STR_LIT("instance"), WF_STR_LIT("")};
        }
        col_expfmt_write_sample_ordered(&resp->body, v[i].name, tmp, k, v[i].v, true, v[i].ts);
    }
out:
    wf_free(tmp);
    wf_free(v);
    for (size_t i = 0; i < nsets; i++) {
        st_series_set_free(sets[i]);
    }
}
