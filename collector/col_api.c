/*
 * col_api.c - Prometheus HTTP API v1 (queries, series, labels, metadata, status) on the
 * collector's HTTP server.
 *
 * Every answer uses Prometheus's envelope: {"status":"success","data":...} or
 * {"status":"error","errorType":"bad_data|execution|timeout|...","error":"..."}, with HTTP
 * 400 for bad_data, 422 for execution, 503 for timeout/canceled, 500 for internal errors.
 * Parameter errors use Prometheus's wording ("invalid parameter \"query\": ...") because
 * tools show them to users as they are.
 */
#include "col_api.h"

#include "wf_alloc.h"
#include "wf_clock.h"
#include "wf_err.h"
#include "wf_log.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_MATCH 64                /* match[] selectors per request */
#define MAX_POINTS_PER_SERIES 11000 /* Prometheus's range query resolution limit */

const double col_api_query_buckets[12] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                          0.1,   0.25,   0.5,   1,    2.5,   INFINITY};

/* ---- parameters --------------------------------------------------------------------------- */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* RFC 3339 with optional fraction and Z or ±hh:mm. */
static int parse_rfc3339(const char *s, int64_t *ms)
{
    int y, mo, d, h, mi, sec, n = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 || n != 19) {
        return WF_E_INVAL;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) {
        return WF_E_INVAL;
    }
    const char *p = s + n;
    int64_t frac_ms = 0;
    if (*p == '.') {
        p++;
        int digits = 0;
        int64_t scale = 100;
        while (isdigit((unsigned char)*p)) {
            if (digits < 3) {
                frac_ms += (*p - '0') * scale;
                scale /= 10;
            }
            digits++;
            p++;
        }
        if (digits == 0) {
            return WF_E_INVAL;
        }
    }
    int64_t off_s = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om, k = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &k) != 2 || k != 5) {
            return WF_E_INVAL;
        }
        off_s = (oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return WF_E_INVAL;
    }
    if (*p != '\0') {
        return WF_E_INVAL;
    }
    int64_t days = days_from_civil(y, (unsigned)mo, (unsigned)d);
    int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - off_s;
    *ms = secs * 1000 + frac_ms;
    return 0;
}

int col_parse_time(const char *s, int64_t *ms)
{
    if (s == NULL || *s == '\0') {
        return WF_E_INVAL;
    }
    char *end;
    errno = 0;
    double f = strtod(s, &end);
    if (*end == '\0' && end != s && errno == 0) {
        if (!isfinite(f) || f > 9.2e15 || f < -9.2e15) {
            return WF_E_INVAL;
        }
        double secs = trunc(f);
        double frac = round((f - secs) * 1000) / 1000;
        *ms = (int64_t)secs * 1000 + (int64_t)llround(frac * 1000);
        return 0;
    }
    return parse_rfc3339(s, ms);
}

int col_parse_duration(const char *s, int64_t *ms)
{
    if (s == NULL || *s == '\0') {
        return WF_E_INVAL;
    }
    char *end;
    errno = 0;
    double f = strtod(s, &end);
    if (*end == '\0' && end != s && errno == 0 && isfinite(f)) {
        double v = f * 1000;
        if (v > 9.2e18 || v < -9.2e18) {
            return WF_E_INVAL;
        }
        *ms = (int64_t)v;
        return 0;
    }
    /* Prometheus durations: units in decreasing order, each at most once. */
    static const struct {
        const char *u;
        int64_t ms;
    } units[] = {{"y", 365LL * 86400000},
                 {"w", 7LL * 86400000},
                 {"d", 86400000},
                 {"h", 3600000},
                 {"m", 60000},
                 {"s", 1000},
                 {"ms", 1}};
    const char *p = s;
    int64_t total = 0;
    size_t next_unit = 0;
    while (*p != '\0') {
        if (!isdigit((unsigned char)*p)) {
            return WF_E_INVAL;
        }
        int64_t n = 0;
        while (isdigit((unsigned char)*p)) {
            if (n > INT64_MAX / 10) {
                return WF_E_INVAL;
            }
            n = n * 10 + (*p++ - '0');
        }
        size_t ul = 0;
        while (isalpha((unsigned char)p[ul])) {
            ul++;
        }
        size_t u;
        for (u = next_unit; u < sizeof(units) / sizeof(units[0]); u++) {
            if (strlen(units[u].u) == ul && strncmp(p, units[u].u, ul) == 0) {
                break;
            }
        }
        if (u == sizeof(units) / sizeof(units[0])) {
            return WF_E_INVAL;
        }
        if (n > INT64_MAX / units[u].ms || total > INT64_MAX - n * units[u].ms) {
            return WF_E_INVAL;
        }
        total += n * units[u].ms;
        next_unit = u + 1;
        p += ul;
    }
    *ms = total;
    return 0;
}

/* ---- JSON encoding ------------------------------------------------------------------------ */

/* A timestamp as Prometheus writes it: seconds with up to three decimals ("1435781451.781"). */
static void put_ts(wf_buf_t *b, int64_t ms)
{
    if (ms < 0) {
        wf_buf_putc(b, '-');
        ms = -ms;
    }
    wf_buf_printf(b, "%" PRId64, ms / 1000);
    int64_t frac = ms % 1000;
    if (frac != 0) {
        wf_buf_printf(b, ".%03" PRId64, frac);
    }
}

static void put_labels(wf_buf_t *b, const st_label_t *l, size_t n)
{
    wf_buf_putc(b, '{');
    for (size_t i = 0; i < n; i++) {
        if (i) {
            wf_buf_putc(b, ',');
        }
        col_json_str(b, l[i].name.p, l[i].name.len);
        wf_buf_putc(b, ':');
        col_json_str(b, l[i].value.p, l[i].value.len);
    }
    wf_buf_putc(b, '}');
}

static void put_point(wf_buf_t *b, int64_t t, double v)
{
    wf_buf_putc(b, '[');
    put_ts(b, t);
    wf_buf_puts(b, ",\"");
    col_fmt_float(b, v);
    wf_buf_puts(b, "\"]");
}

static void put_result(wf_buf_t *b, const pql_result_t *r)
{
    wf_buf_puts(b, "{\"status\":\"success\",\"data\":{\"resultType\":");
    switch (r->type) {
    case PQL_TYPE_SCALAR:
        wf_buf_puts(b, "\"scalar\",\"result\":");
        put_point(b, r->scalar_t, r->scalar_v);
        break;
    case PQL_TYPE_STRING:
        wf_buf_puts(b, "\"string\",\"result\":[");
        put_ts(b, r->scalar_t);
        wf_buf_putc(b, ',');
        col_json_str(b, r->string.p, r->string.len);
        wf_buf_putc(b, ']');
        break;
    case PQL_TYPE_VECTOR:
        wf_buf_puts(b, "\"vector\",\"result\":[");
        for (size_t i = 0; i < r->nseries; i++) {
            const pql_series_t *s = &r->series[i];
            if (i) {
                wf_buf_putc(b, ',');
            }
            wf_buf_puts(b, "{\"metric\":");
            put_labels(b, s->labels, s->nlabels);
            wf_buf_puts(b, ",\"value\":");
            put_point(b, s->n ? s->ts[0] : 0, s->n ? s->v[0] : NAN);
            wf_buf_putc(b, '}');
        }
        wf_buf_putc(b, ']');
        break;
    default:
        wf_buf_puts(b, "\"matrix\",\"result\":[");
        for (size_t i = 0; i < r->nseries; i++) {
            const pql_series_t *s = &r->series[i];
            if (i) {
                wf_buf_putc(b, ',');
            }
            wf_buf_puts(b, "{\"metric\":");
            put_labels(b, s->labels, s->nlabels);
            wf_buf_puts(b, ",\"values\":[");
            for (size_t j = 0; j < s->n; j++) {
                if (j) {
                    wf_buf_putc(b, ',');
                }
                put_point(b, s->ts[j], s->v[j]);
            }
            wf_buf_puts(b, "]}");
        }
        wf_buf_putc(b, ']');
        break;
    }
    wf_buf_puts(b, "}}");
}

/* ---- queries ------------------------------------------------------------------------------ */

static void record_query(col_api_t *api, int64_t start_ns, bool failed)
{
    double secs = (double)(wf_mono_ns() - start_ns) / 1e9;
    pthread_mutex_lock(&api->stats_mu);
    api->stats.queries_total++;
    if (failed) {
        api->stats.query_errors_total++;
    }
    for (size_t i = 0; i < 12; i++) {
        if (secs <= col_api_query_buckets[i]) {
            api->stats.query_seconds_bucket[i]++;
        }
    }
    api->stats.query_seconds_count++;
    api->stats.query_seconds_sum += secs;
    pthread_mutex_unlock(&api->stats_mu);
}

void col_api_stats_copy(col_api_t *api, col_api_stats_t *out)
{
    pthread_mutex_lock(&api->stats_mu);
    *out = api->stats;
    pthread_mutex_unlock(&api->stats_mu);
}

static void eval_error(col_resp_t *resp, const pql_error_t *err)
{
    switch (err->type) {
    case PQL_ERR_BAD_DATA:
        col_resp_api_error(resp, 400, "bad_data", "%s", err->msg);
        break;
    case PQL_ERR_TIMEOUT:
        col_resp_api_error(resp, 503, "timeout", "%s", err->msg);
        break;
    case PQL_ERR_CANCELED:
        col_resp_api_error(resp, 503, "canceled", "%s", err->msg);
        break;
    case PQL_ERR_INTERNAL:
        col_resp_api_error(resp, 500, "internal", "%s", err->msg);
        break;
    default:
        col_resp_api_error(resp, 422, "execution", "%s", err->msg);
        break;
    }
}

/* Parse the "query" parameter; on failure the response is filled and NULL returned. Prometheus
 * 2.42 names the parameter in the message everywhere but in range queries. */
static pql_tree_t *parse_query_param(col_req_t *req, col_resp_t *resp, bool name_param)
{
    const char *q = col_req_param(req, "query");
    if (q == NULL) {
        q = "";
    }
    pql_tree_t *tree = NULL;
    pql_parse_error_t perr;
    memset(&perr, 0, sizeof(perr));
    if (pql_parse(q, strlen(q), &tree, &perr) != 0) {
        col_resp_api_error(resp, 400, "bad_data", "%s%s",
                           name_param ? "invalid parameter \"query\": " : "", perr.msg);
        return NULL;
    }
    return tree;
}

/* The optional "timeout" parameter: a duration that bounds this query (the engine's
 * --query-timeout still applies when it is shorter). *ms is 0 when absent. */
static bool check_timeout_param(col_req_t *req, col_resp_t *resp, int64_t *ms)
{
    const char *to = col_req_param(req, "timeout");
    *ms = 0;
    if (to != NULL && *to != '\0' && col_parse_duration(to, ms) != 0) {
        col_resp_api_error(resp, 400, "bad_data",
                           "invalid parameter \"timeout\": cannot parse \"%s\" to a valid "
                           "duration",
                           to);
        return false;
    }
    return true;
}

static void h_query(void *arg, col_req_t *req, col_resp_t *resp)
{
    col_api_t *api = arg;
    int64_t t0 = wf_mono_ns();
    int64_t t = wf_wall_ms();
    const char *ts = col_req_param(req, "time");
    if (ts != NULL && *ts != '\0' && col_parse_time(ts, &t) != 0) {
        col_resp_api_error(resp, 400, "bad_data",
                           "invalid parameter \"time\": Invalid time value for 'time': cannot "
                           "parse \"%s\" to a valid timestamp",
                           ts);
        return;
    }
    int64_t timeout_ms;
    if (!check_timeout_param(req, resp, &timeout_ms)) {
        return;
    }
    pql_tree_t *tree = parse_query_param(req, resp, true);
    if (tree == NULL) {
        record_query(api, t0, true);
        return;
    }
    pql_result_t *res = NULL;
    pql_error_t err;
    memset(&err, 0, sizeof(err));
    if (pql_eval_instant(api->engine, tree, t, timeout_ms, &res, &err) != 0) {
        eval_error(resp, &err);
        record_query(api, t0, true);
    } else {
        put_result(&resp->body, res);
        record_query(api, t0, false);
    }
    pql_result_free(res);
    pql_tree_free(tree);
}

static void h_query_range(void *arg, col_req_t *req, col_resp_t *resp)
{
    col_api_t *api = arg;
    int64_t t0 = wf_mono_ns();
    int64_t start, end, step;
    const char *s = col_req_param(req, "start");
    const char *e = col_req_param(req, "end");
    const char *st = col_req_param(req, "step");
    if (col_parse_time(s, &start) != 0) {
        col_resp_api_error(resp, 400, "bad_data",
                           "invalid parameter \"start\": cannot parse \"%s\" to a valid timestamp",
                           s ? s : "");
        return;
    }
    if (col_parse_time(e, &end) != 0) {
        col_resp_api_error(resp, 400, "bad_data",
                           "invalid parameter \"end\": cannot parse \"%s\" to a valid timestamp",
                           e ? e : "");
        return;
    }
    if (end < start) {
        col_resp_api_error(
            resp, 400, "bad_data",
            "invalid parameter \"end\": end timestamp must not be before start time");
        return;
    }
    if (col_parse_duration(st, &step) != 0) {
        col_resp_api_error(resp, 400, "bad_data",
                           "invalid parameter \"step\": cannot parse \"%s\" to a valid duration",
                           st ? st : "");
        return;
    }
    if (step <= 0) {
        col_resp_api_error(resp, 400, "bad_data",
                           "invalid parameter \"step\": zero or negative query resolution step "
                           "widths are not accepted. Try a positive integer");
        return;
    }
    int64_t timeout_ms;
    if (!check_timeout_param(req, resp, &timeout_ms)) {
        return;
    }
    if ((end - start) / step > MAX_POINTS_PER_SERIES) {
        col_resp_api_error(resp, 400, "bad_data",
                           "exceeded maximum resolution of 11,000 points per timeseries. Try "
                           "decreasing the query resolution (?step=XX)");
        return;
    }
    pql_tree_t *tree = parse_query_param(req, resp, false);
    if (tree == NULL) {
        record_query(api, t0, true);
        return;
    }
    if (tree->root->type != PQL_TYPE_SCALAR && tree->root->type != PQL_TYPE_VECTOR) {
        col_resp_api_error(resp, 400, "bad_data",
                           "invalid expression type \"%s\" for range "
                           "query, must be Scalar or instant Vector",
                           pql_type_name(tree->root->type));
        pql_tree_free(tree);
        record_query(api, t0, true);
        return;
    }
    pql_result_t *res = NULL;
    pql_error_t err;
    memset(&err, 0, sizeof(err));
    if (pql_eval_range(api->engine, tree, start, end, step, timeout_ms, &res, &err) != 0) {
        eval_error(resp, &err);
        record_query(api, t0, true);
    } else {
        put_result(&resp->body, res);
        record_query(api, t0, false);
    }
    pql_result_free(res);
    pql_tree_free(tree);
}

static void h_format_query(void *arg, col_req_t *req, col_resp_t *resp)
{
    pql_tree_t *tree = parse_query_param(req, resp, true);
    if (tree == NULL) {
        return;
    }
    wf_buf_t f = WF_BUF_INIT;
    pql_format_pretty(tree->root, &f);
    wf_buf_puts(&resp->body, "{\"status\":\"success\",\"data\":");
    col_json_str(&resp->body, (const char *)f.data, f.len);
    wf_buf_putc(&resp->body, '}');
    wf_buf_free(&f);
    pql_tree_free(tree);
}

/* ---- series, labels, values --------------------------------------------------------------- */

/* A selector's matchers, compiled, for the metadata endpoints. */
typedef struct {
    pql_tree_t *trees[MAX_MATCH];
    const st_matcher_t *m[MAX_MATCH][64];
    size_t nm[MAX_MATCH];
    size_t n;
} selectors_t;

static void selectors_free(selectors_t *s)
{
    for (size_t i = 0; i < s->n; i++) {
        pql_tree_free(s->trees[i]);
    }
}

/* Parse every match[] into s. Returns false with the response filled on error. */
static bool parse_matches(col_req_t *req, col_resp_t *resp, selectors_t *s)
{
    memset(s, 0, sizeof(*s));
    const char *vals[MAX_MATCH];
    size_t n = col_req_param_all(req, "match[]", vals, MAX_MATCH);
    if (n > MAX_MATCH) {
        col_resp_api_error(resp, 400, "bad_data", "too many match[] parameters (limit %d)",
                           MAX_MATCH);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        pql_parse_error_t perr;
        memset(&perr, 0, sizeof(perr));
        pql_tree_t *t = NULL;
        if (pql_parse(vals[i], strlen(vals[i]), &t, &perr) != 0) {
            col_resp_api_error(resp, 400, "bad_data", "invalid parameter \"match[]\": %s",
                               perr.msg);
            selectors_free(s);
            return false;
        }
        s->trees[s->n++] = t;
        const pql_node_t *v = t->root;
        if (v->kind != PQL_NODE_VECTOR) {
            col_resp_api_error(resp, 400, "bad_data",
                               "invalid parameter \"match[]\": 1:1: parse error: expected type "
                               "instant vector selector, got %s",
                               pql_type_name(v->type));
            selectors_free(s);
            return false;
        }
        if (v->u.vector.nmatchers > 64) {
            col_resp_api_error(resp, 400, "bad_data", "too many matchers in match[]");
            selectors_free(s);
            return false;
        }
        for (size_t j = 0; j < v->u.vector.nmatchers; j++) {
            s->m[i][j] = v->u.vector.matchers[j].compiled;
        }
        s->nm[i] = v->u.vector.nmatchers;
    }
    return true;
}

/* start/end parameters for the metadata endpoints; defaults cover all time. */
static bool parse_range(col_req_t *req, col_resp_t *resp, int64_t *mint, int64_t *maxt)
{
    *mint = 0;
    *maxt = INT64_MAX;
    const char *s = col_req_param(req, "start");
    const char *e = col_req_param(req, "end");
    if (s != NULL && *s != '\0' && col_parse_time(s, mint) != 0) {
        col_resp_api_error(resp, 400, "bad_data",
                           "invalid parameter \"start\": cannot parse \"%s\" to a valid timestamp",
                           s);
        return false;
    }
    if (e != NULL && *e != '\0' && col_parse_time(e, maxt) != 0) {
        col_resp_api_error(resp, 400, "bad_data",
                           "invalid parameter \"end\": cannot parse \"%s\" to a valid timestamp",
                           e);
        return false;
    }
    if (*mint < 0) {
        *mint = 0;
    }
    return true;
}

static void store_error(col_resp_t *resp, int rc)
{
    if (rc == ST_E_REGEX || rc == WF_E_INVAL) {
        col_resp_api_error(resp, 400, "bad_data", "%s", st_strerror(rc));
    } else {
        col_resp_api_error(resp, 500, "internal", "%s", st_strerror(rc));
    }
}

/* A label set's identity for de-duplication across several match[] selectors. */
static uint64_t labels_hash(const st_label_t *l, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ wf_hash64(l[i].name.p, l[i].name.len, 0)) * 0x100000001b3ULL;
        h = (h ^ wf_hash64(l[i].value.p, l[i].value.len, 1)) * 0x100000001b3ULL;
    }
    return h;
}

typedef struct {
    const st_label_t *labels;
    size_t n;
    uint64_t hash;
} series_ref_t;

static int cmp_labels(const st_label_t *a, size_t na, const st_label_t *b, size_t nb)
{
    for (size_t i = 0; i < na && i < nb; i++) {
        int c = wf_str_cmp(a[i].name, b[i].name);
        if (c != 0) {
            return c;
        }
        c = wf_str_cmp(a[i].value, b[i].value);
        if (c != 0) {
            return c;
        }
    }
    return na < nb ? -1 : na > nb;
}

static int cmp_series_ref(const void *x, const void *y)
{
    const series_ref_t *a = x, *b = y;
    return cmp_labels(a->labels, a->n, b->labels, b->n);
}

static void h_series(void *arg, col_req_t *req, col_resp_t *resp)
{
    col_api_t *api = arg;
    selectors_t sel;
    int64_t mint, maxt;
    if (!parse_range(req, resp, &mint, &maxt)) {
        return;
    }
    if (!parse_matches(req, resp, &sel)) {
        return;
    }
    if (sel.n == 0) {
        col_resp_api_error(resp, 400, "bad_data", "no match[] parameter provided");
        return;
    }
    st_series_set_t *sets[MAX_MATCH];
    size_t nsets = 0, total = 0;
    for (size_t i = 0; i < sel.n; i++) {
        int rc = st_select(api->store, sel.m[i], sel.nm[i], mint, maxt, &sets[nsets]);
        if (rc != 0) {
            store_error(resp, rc);
            goto out;
        }
        total += st_series_set_len(sets[nsets]);
        nsets++;
    }
    series_ref_t *refs = wf_malloc((total ? total : 1) * sizeof(*refs));
    size_t nrefs = 0;
    for (size_t i = 0; i < nsets; i++) {
        for (size_t j = 0; j < st_series_set_len(sets[i]); j++) {
            series_ref_t *r = &refs[nrefs++];
            r->labels = st_series_set_labels(sets[i], j, &r->n);
            r->hash = labels_hash(r->labels, r->n);
        }
    }
    qsort(refs, nrefs, sizeof(*refs), cmp_series_ref);
    wf_buf_puts(&resp->body, "{\"status\":\"success\",\"data\":[");
    for (size_t i = 0; i < nrefs; i++) {
        if (i > 0 && refs[i].hash == refs[i - 1].hash &&
            cmp_series_ref(&refs[i], &refs[i - 1]) == 0) {
            continue;
        }
        if (resp->body.data[resp->body.len - 1] != '[') {
            wf_buf_putc(&resp->body, ',');
        }
        put_labels(&resp->body, refs[i].labels, refs[i].n);
    }
    wf_buf_puts(&resp->body, "]}");
    wf_free(refs);
out:
    for (size_t i = 0; i < nsets; i++) {
        st_series_set_free(sets[i]);
    }
    selectors_free(&sel);
}

static int cmp_str(const void *x, const void *y)
{
    const wf_str_t *a = x, *b = y;
    return wf_str_cmp(*a, *b);
}

/* Union of sorted string lists, written as a JSON array of strings. */
static void put_union(wf_buf_t *b, st_strlist_t **lists, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += st_strlist_len(lists[i]);
    }
    wf_str_t *all = wf_malloc((total ? total : 1) * sizeof(*all));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < st_strlist_len(lists[i]); j++) {
            all[k++] = st_strlist_get(lists[i], j);
        }
    }
    if (n > 1) {
        qsort(all, k, sizeof(*all), cmp_str);
    }
    wf_buf_puts(b, "{\"status\":\"success\",\"data\":[");
    for (size_t i = 0; i < k; i++) {
        if (i > 0 && wf_str_eq(all[i], all[i - 1])) {
            continue;
        }
        if (b->data[b->len - 1] != '[') {
            wf_buf_putc(b, ',');
        }
        col_json_str(b, all[i].p, all[i].len);
    }
    wf_buf_puts(b, "]}");
    wf_free(all);
}

/* Label names (name == NULL) or the values of label name, over the series matching any
 * match[] selector (or all series), as one sorted JSON list. */
static void label_union(col_api_t *api, col_req_t *req, col_resp_t *resp, const wf_str_t *name)
{
    selectors_t sel;
    int64_t mint, maxt;
    if (!parse_range(req, resp, &mint, &maxt) || !parse_matches(req, resp, &sel)) {
        return;
    }
    st_strlist_t *lists[MAX_MATCH];
    size_t nl = 0;
    size_t rounds = sel.n ? sel.n : 1;
    for (size_t i = 0; i < rounds; i++) {
        const st_matcher_t *const *m = sel.n ? sel.m[i] : NULL;
        size_t nm = sel.n ? sel.nm[i] : 0;
        int rc = name == NULL ? st_label_names(api->store, m, nm, mint, maxt, &lists[nl])
                              : st_label_values(api->store, *name, m, nm, mint, maxt, &lists[nl]);
        if (rc != 0) {
            store_error(resp, rc);
            goto out;
        }
        nl++;
    }
    put_union(&resp->body, lists, nl);
out:
    for (size_t i = 0; i < nl; i++) {
        st_strlist_free(lists[i]);
    }
    selectors_free(&sel);
}

static void h_labels(void *arg, col_req_t *req, col_resp_t *resp)
{
    label_union(arg, req, resp, NULL);
}

static bool valid_label_name(const char *s, size_t n)
{
    if (n == 0) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (i > 0 && c >= '0' && c <= '9'))) {
            return false;
        }
    }
    return true;
}

/* /api/v1/label/<name>/values */
static void h_label_values(void *arg, col_req_t *req, col_resp_t *resp)
{
    col_api_t *api = arg;
    const char *rest = req->path + strlen("/api/v1/label/");
    const char *slash = strchr(rest, '/');
    if (slash == NULL || strcmp(slash, "/values") != 0) {
        col_resp_api_error(resp, 404, "not_found", "no such endpoint: %s", req->path);
        return;
    }
    size_t nlen = (size_t)(slash - rest);
    if (!valid_label_name(rest, nlen)) {
        col_resp_api_error(resp, 400, "bad_data", "invalid label name: \"%.*s\"", (int)nlen, rest);
        return;
    }
    wf_str_t name = {rest, nlen};
    label_union(api, req, resp, &name);
}

static const char *metric_type_name(st_metric_type_t t)
{
    switch (t) {
    case ST_METRIC_COUNTER:
        return "counter";
    case ST_METRIC_GAUGE:
        return "gauge";
    case ST_METRIC_HISTOGRAM:
        return "histogram";
    case ST_METRIC_GAUGEHISTOGRAM:
        return "gaugehistogram";
    case ST_METRIC_SUMMARY:
        return "summary";
    case ST_METRIC_INFO:
        return "info";
    case ST_METRIC_STATESET:
        return "stateset";
    default:
        return "unknown";
    }
}

static void put_metadata(wf_buf_t *b, const char *name, size_t nlen, const st_metadata_t *md)
{
    col_json_str(b, name, nlen);
    wf_buf_puts(b, ":[{\"type\":\"");
    wf_buf_puts(b, metric_type_name(md->type));
    wf_buf_puts(b, "\",\"help\":");
    col_json_str(b, md->help ? md->help : "", md->help ? strlen(md->help) : 0);
    wf_buf_puts(b, ",\"unit\":");
    col_json_str(b, md->unit ? md->unit : "", md->unit ? strlen(md->unit) : 0);
    wf_buf_puts(b, "}]");
}

static void h_metadata(void *arg, col_req_t *req, col_resp_t *resp)
{
    col_api_t *api = arg;
    const char *metric = col_req_param(req, "metric");
    const char *lim = col_req_param(req, "limit");
    long limit = -1;
    if (lim != NULL && *lim != '\0') {
        char *end;
        limit = strtol(lim, &end, 10);
        if (*end != '\0') {
            col_resp_api_error(resp, 400, "bad_data", "limit must be a number");
            return;
        }
    }
    /* The store keeps one entry per metric, so any limit_per_metric answers the same (<= 0
     * means none, as in Prometheus); it is still checked like Prometheus checks it. */
    const char *per = col_req_param(req, "limit_per_metric");
    if (per != NULL && *per != '\0') {
        char *end;
        (void)strtol(per, &end, 10);
        if (*end != '\0') {
            col_resp_api_error(resp, 400, "bad_data", "limit_per_metric must be a number");
            return;
        }
    }
    wf_buf_puts(&resp->body, "{\"status\":\"success\",\"data\":{");
    if (limit == 0) {
        wf_buf_puts(&resp->body, "}}");
        return;
    }
    if (metric != NULL && *metric != '\0') {
        st_metadata_t md;
        if (st_metadata_get(api->store, wf_str(metric), &md) == 0) {
            put_metadata(&resp->body, metric, strlen(metric), &md);
            wf_free(md.help);
            wf_free(md.unit);
        }
        wf_buf_puts(&resp->body, "}}");
        return;
    }
    st_strlist_t *names = NULL;
    int rc = st_metadata_metrics(api->store, &names);
    if (rc != 0) {
        wf_buf_reset(&resp->body);
        store_error(resp, rc);
        return;
    }
    long written = 0;
    for (size_t i = 0; i < st_strlist_len(names) && (limit < 0 || written < limit); i++) {
        wf_str_t n = st_strlist_get(names, i);
        st_metadata_t md;
        if (st_metadata_get(api->store, n, &md) != 0) {
            continue;
        }
        if (written++ > 0) {
            wf_buf_putc(&resp->body, ',');
        }
        put_metadata(&resp->body, n.p, n.len, &md);
        wf_free(md.help);
        wf_free(md.unit);
    }
    st_strlist_free(names);
    wf_buf_puts(&resp->body, "}}");
}

static void h_exemplars(void *arg, col_req_t *req, col_resp_t *resp)
{
    /* Exemplars are not stored: the answer is an empty list, as Prometheus gives when its
     * exemplar storage is disabled. The query is still checked. */
    pql_tree_t *tree = parse_query_param(req, resp, true);
    if (tree == NULL) {
        return;
    }
    pql_tree_free(tree);
    wf_buf_puts(&resp->body, "{\"status\":\"success\",\"data\":[]}");
}

/* ---- status ------------------------------------------------------------------------------- */

static void h_buildinfo(void *arg, col_req_t *req, col_resp_t *resp)
{
    /* Grafana and Kiali choose features by this version; weft implements Prometheus 2.42's
     * API, so it says 2.42.0 and names itself in revision and branch. */
    wf_buf_puts(&resp->body, "{\"status\":\"success\",\"data\":{\"version\":\"2.42.0\","
                             "\"revision\":\"weft-" WEFT_VERSION "\",\"branch\":\"weft\","
                             "\"buildUser\":\"weft\",\"buildDate\":\"" __DATE__ "\","
                             "\"goVersion\":\"none (weft is written in C)\"}}");
}

static void h_config(void *arg, col_req_t *req, col_resp_t *resp)
{
    col_api_t *api = arg;
    wf_buf_puts(&resp->body, "{\"status\":\"success\",\"data\":{\"yaml\":");
    const char *y = api->config_yaml ? api->config_yaml : "";
    col_json_str(&resp->body, y, strlen(y));
    wf_buf_puts(&resp->body, "}}");
}

static void h_flags(void *arg, col_req_t *req, col_resp_t *resp)
{
    col_api_t *api = arg;
    wf_buf_t *b = &resp->body;
    /* Prometheus's own flag names first: Kiali and Grafana read some of them (the retention
     * and the lookback) to size their queries. */
    wf_buf_puts(b, "{\"status\":\"success\",\"data\":{\"storage.tsdb.retention.time\":\"");
    pql_format_duration(b, api->retention_ms);
    wf_buf_puts(b, "\",\"query.lookback-delta\":\"");
    pql_format_duration(b, api->query.lookback_ms);
    wf_buf_puts(b, "\",\"query.timeout\":\"");
    pql_format_duration(b, api->query.timeout_ms);
    wf_buf_printf(
        b, "\",\"query.max-samples\":\"%zu\",\"web.listen-address\":", api->query.max_samples);
    col_json_str(b, api->listen ? api->listen : "", api->listen ? strlen(api->listen) : 0);
    wf_buf_puts(b, ",\"web.enable-remote-write-receiver\":\"true\"");
    for (const wf_flag_t *f = api->flags; f != NULL && f->name != NULL; f++) {
        wf_buf_putc(&resp->body, ',');
        col_json_str(&resp->body, f->name, strlen(f->name));
        wf_buf_putc(&resp->body, ':');
        const char *base = api->flags_cfg;
        char tmp[64];
        const char *v = tmp;
        switch (f->type) {
        case WF_FLAG_STR:
            v = *(char *const *)(base + f->offset);
            v = v ? v : "";
            break;
        case WF_FLAG_BOOL:
            v = *(const bool *)(base + f->offset) ? "true" : "false";
            break;
        case WF_FLAG_DURATION:
            snprintf(tmp, sizeof(tmp), "%" PRId64 "ms", *(const int64_t *)(base + f->offset));
            break;
        default:
            snprintf(tmp, sizeof(tmp), "%" PRId64, *(const int64_t *)(base + f->offset));
            break;
        }
        col_json_str(&resp->body, v, strlen(v));
    }
    wf_buf_puts(&resp->body, "}}");
}

static void h_runtimeinfo(void *arg, col_req_t *req, col_resp_t *resp)
{
    col_api_t *api = arg;
    char started[40], cwd[512];
    wf_time_rfc3339(api->started_ms * 1000000, started, sizeof(started));
    if (getcwd(cwd, sizeof(cwd)) == NULL) {
        strcpy(cwd, "");
    }
    wf_buf_puts(&resp->body, "{\"status\":\"success\",\"data\":{\"startTime\":");
    col_json_str(&resp->body, started, strlen(started));
    wf_buf_puts(&resp->body, ",\"CWD\":");
    col_json_str(&resp->body, cwd, strlen(cwd));
    wf_buf_printf(&resp->body,
                  ",\"reloadConfigSuccess\":true,\"lastConfigTime\":\"%s\","
                  "\"corruptionCount\":0,\"goroutineCount\":0,\"GOMAXPROCS\":%ld,"
                  "\"GOGC\":\"\",\"GODEBUG\":\"\",\"storageRetention\":\"%" PRId64 "d\"}}",
                  started, sysconf(_SC_NPROCESSORS_ONLN), api->retention_ms / 86400000);
}

/* /api/v1/status/tsdb: head statistics and the top-10 cardinality lists Prometheus shows. */
typedef struct {
    wf_str_t name;
    uint64_t value;
} stat_pair_t;

static int cmp_pair_desc(const void *x, const void *y)
{
    const stat_pair_t *a = x, *b = y;
    if (a->value != b->value) {
        return a->value < b->value ? 1 : -1;
    }
    return wf_str_cmp(a->name, b->name);
}

static void put_top(wf_buf_t *b, const char *key, stat_pair_t *p, size_t n)
{
    qsort(p, n, sizeof(*p), cmp_pair_desc);
    wf_buf_printf(b, ",\"%s\":[", key);
    for (size_t i = 0; i < n && i < 10; i++) {
        if (i) {
            wf_buf_putc(b, ',');
        }
        wf_buf_puts(b, "{\"name\":");
        col_json_str(b, p[i].name.p, p[i].name.len);
        wf_buf_printf(b, ",\"value\":%" PRIu64 "}", p[i].value);
    }
    wf_buf_putc(b, ']');
}

static void h_tsdb(void *arg, col_req_t *req, col_resp_t *resp)
{
    col_api_t *api = arg;
    st_stats_t stats;
    st_store_stats(api->store, &stats);
    st_strlist_t *names = NULL, *metrics = NULL;
    int rc = st_label_names(api->store, NULL, 0, 0, INT64_MAX, &names);
    if (rc == 0) {
        rc = st_label_values(api->store, WF_STR_LIT("__name__"), NULL, 0, 0, INT64_MAX, &metrics);
    }
    if (rc != 0) {
        st_strlist_free(names);
        store_error(resp, rc);
        return;
    }
    /* Series per metric name, through one selection per name. */
    size_t nm = st_strlist_len(metrics);
    stat_pair_t *by_metric = wf_malloc((nm ? nm : 1) * sizeof(*by_metric));
    for (size_t i = 0; i < nm; i++) {
        by_metric[i].name = st_strlist_get(metrics, i);
        by_metric[i].value = 0;
        st_matcher_t *m = NULL;
        if (st_matcher_new(ST_MATCH_EQ, WF_STR_LIT("__name__"), by_metric[i].name, &m, NULL, 0) ==
            0) {
            st_series_set_t *set = NULL;
            const st_matcher_t *mm[1] = {m};
            if (st_select(api->store, mm, 1, 0, INT64_MAX, &set) == 0) {
                by_metric[i].value = st_series_set_len(set);
                st_series_set_free(set);
            }
            st_matcher_free(m);
        }
    }
    size_t nn = st_strlist_len(names);
    stat_pair_t *by_label = wf_malloc((nn ? nn : 1) * sizeof(*by_label));
    uint64_t pairs = 0;
    for (size_t i = 0; i < nn; i++) {
        by_label[i].name = st_strlist_get(names, i);
        st_strlist_t *vals = NULL;
        by_label[i].value = 0;
        if (st_label_values(api->store, by_label[i].name, NULL, 0, 0, INT64_MAX, &vals) == 0) {
            by_label[i].value = st_strlist_len(vals);
            st_strlist_free(vals);
        }
        pairs += by_label[i].value;
    }
    wf_buf_printf(&resp->body,
                  "{\"status\":\"success\",\"data\":{\"headStats\":{\"numSeries\":%" PRIu64
                  ",\"numLabelPairs\":%" PRIu64 ",\"chunkCount\":%" PRIu64
                  ",\"minTime\":0,\"maxTime\":%" PRId64 "}",
                  stats.series, pairs, stats.sealed_chunks, wf_wall_ms());
    put_top(&resp->body, "seriesCountByMetricName", by_metric, nm);
    put_top(&resp->body, "labelValueCountByLabelName", by_label, nn);
    wf_buf_puts(&resp->body,
                ",\"memoryInBytesByLabelName\":[],\"seriesCountByLabelValuePair\":[]}}");
    wf_free(by_metric);
    wf_free(by_label);
    st_strlist_free(metrics);
    st_strlist_free(names);
}

void col_api_register(col_http_t *h, col_api_t *api)
{
    pthread_mutex_init(&api->stats_mu, NULL);
    const size_t form = 1 << 20; /* form-encoded POST bodies: queries and match[] lists */
    col_http_route(h, "GET POST", "/api/v1/query", false, form, h_query, api);
    col_http_route(h, "GET POST", "/api/v1/query_range", false, form, h_query_range, api);
    col_http_route(h, "GET POST", "/api/v1/format_query", false, form, h_format_query, api);
    col_http_route(h, "GET POST", "/api/v1/series", false, form, h_series, api);
    col_http_route(h, "GET POST", "/api/v1/labels", false, form, h_labels, api);
    col_http_route(h, "GET", "/api/v1/label/", true, 0, h_label_values, api);
    col_http_route(h, "GET", "/api/v1/metadata", false, 0, h_metadata, api);
    col_http_route(h, "GET POST", "/api/v1/query_exemplars", false, form, h_exemplars, api);
    col_http_route(h, "GET", "/api/v1/status/buildinfo", false, 0, h_buildinfo, api);
    col_http_route(h, "GET", "/api/v1/status/config", false, 0, h_config, api);
    col_http_route(h, "GET", "/api/v1/status/flags", false, 0, h_flags, api);
    col_http_route(h, "GET", "/api/v1/status/runtimeinfo", false, 0, h_runtimeinfo, api);
    col_http_route(h, "GET", "/api/v1/status/tsdb", false, 0, h_tsdb, api);
}
