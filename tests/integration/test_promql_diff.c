/*
 * test_promql_diff.c - differential test of weft's PromQL engine and query API against a real
 * Prometheus 2.42: both servers receive the same deterministic samples by remote_write, then
 * every query of tests/promql/corpus.txt runs against both as instant queries at several times
 * (the end of the data, 7 minutes before it, inside a gap longer than the lookback, just after
 * the start, an unaligned time) and as range queries whose start, end and step hit the
 * alignment edge cases. The answers must agree (wt_promdiff.h says how they are compared);
 * the test fails when any evaluation differs.
 *
 * WEFT_DIFF_SELF=1 runs a second Prometheus in weft's place, which checks the harness itself.
 * WT_PROMQL_CORPUS overrides the corpus path; WT_PD_SHOW sets how many diffs print in full;
 * WT_PD_FILTER=text runs only the corpus queries that contain text (a quick loop while fixing
 * one); WT_PD_RANDOM=n runs n seeded random queries instead of 400 and WT_PD_RANDOM_SEED=s
 * starts them from another seed (a longer hunt).
 */
#include "wf_alloc.h"
#include "wf_buf.h"
#include "wt_promdiff.h"
#include "wt_util.h"

#include <libgen.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#define SEED 0x5eed2042ULL
#define RANDOM_SEED 0x7a11ab1eULL
#define RANDOM_QUERIES 400

/* The corpus sits next to this file's folder: tests/promql/corpus.txt. */
static char *corpus_path(void)
{
    const char *env = getenv("WT_PROMQL_CORPUS");
    if (env != NULL) {
        return wf_strdup(env);
    }
    char *src = wf_strdup(__FILE__);
    char *dir = dirname(src);
    size_t n = strlen(dir) + 64;
    char *p = wf_malloc(n);
    snprintf(p, n, "%s/../promql/corpus.txt", dir);
    wf_free(src);
    return p;
}

/* Split the corpus into queries: one a line, blank lines and '#' comment lines skipped. */
static char **load_corpus(size_t *n)
{
    char *path = corpus_path();
    char *text = wt_read_file(path, NULL);
    if (text == NULL) {
        printf("cannot read corpus %s\n", path);
        wf_free(path);
        *n = 0;
        return NULL;
    }
    wf_free(path);
    size_t cap = 512;
    char **q = wf_malloc(cap * sizeof(char *));
    *n = 0;
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        while (*line == ' ' || *line == '\t') {
            line++;
        }
        size_t len = strlen(line);
        while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\r')) {
            line[--len] = '\0';
        }
        if (len == 0 || line[0] == '#') {
            continue;
        }
        if (*n == cap) {
            cap *= 2;
            q = wf_realloc(q, cap * sizeof(char *));
        }
        q[(*n)++] = wf_strdup(line);
    }
    wf_free(text);
    return q;
}

/* True when Prometheus holds every series of d, with all its samples, over its window. */
static bool oracle_holds(wt_pd_srv_t *prom, const wt_pd_data_t *d)
{
    wt_pd_answer_t a = {0};
    size_t series = 0, points = 0;
    if (wt_pd_query(prom, "{__name__=~\".+\"}[3h]", d->end_ms, &a) == 0 && a.body != NULL) {
        for (const char *p = a.body; (p = strstr(p, "\"metric\":")) != NULL; p++) {
            series++;
        }
        /* Every point is "[ts,"value"]"; a sample value never contains '['. */
        for (const char *p = a.body; (p = strstr(p, "[")) != NULL; p++) {
            points++;
        }
    }
    /* Range selectors never return staleness markers. */
    size_t stale = 0;
    for (size_t i = 0; i < d->n; i++) {
        for (size_t j = 0; j < d->series[i].n; j++) {
            uint64_t bits;
            memcpy(&bits, &d->series[i].v[j], sizeof(bits));
            stale += bits == WT_PD_STALE_NAN_BITS;
        }
    }
    /* One '[' opens each series' "values" array and one opens "result". */
    bool ok = series == d->n && points == d->samples - stale + d->n + 1;
    if (!ok) {
        printf("prometheus holds %zu series / %zu points, the generator wrote %zu / %zu\n", series,
               points - series - 1, d->n, d->samples);
    }
    wt_pd_answer_free(&a);
    return ok;
}

/* ---- random queries: a seeded generator over the same data, for what the corpus missed ---- */

typedef struct {
    uint64_t st;
    wf_buf_t b;
} gen_t;

static unsigned pick(gen_t *g, unsigned n)
{
    return (unsigned)(wt_rand(&g->st) % n);
}

static void gen_vector(gen_t *g, int depth);

static void gen_scalar(gen_t *g, int depth)
{
    static const char *lits[] = {"0", "1", "2", "0.5", "-1", "10", "1e3", "Inf", "NaN", "0.25"};
    unsigned k = depth > 0 ? pick(g, 4) : 0;
    if (k == 1) {
        wf_buf_puts(&g->b, "scalar(");
        gen_vector(g, depth - 1);
        wf_buf_puts(&g->b, ")");
    } else if (k == 2) {
        wf_buf_puts(&g->b, "time()");
    } else {
        wf_buf_puts(&g->b, lits[pick(g, 10)]);
    }
}

static void gen_selector(gen_t *g)
{
    static const char *names[] = {"http_requests_total",
                                  "node_temperature_celsius",
                                  "queue_depth",
                                  "special_values",
                                  "up",
                                  "rpc_duration_seconds_count",
                                  "gappy_gauge",
                                  "stale_gauge",
                                  "aligned_gauge",
                                  "mesh_requests_total"};
    static const char *matchers[] = {"",
                                     "{job=\"api\"}",
                                     "{instance=~\".*-0:.*\"}",
                                     "{instance!~\".*-1:.*\"}",
                                     "{code!=\"404\"}",
                                     "{reporter=\"source\"}"};
    static const char *offsets[] = {"", "", "", " offset 5m", " offset 1h", " offset -1m"};
    wf_buf_puts(&g->b, names[pick(g, 10)]);
    wf_buf_puts(&g->b, matchers[pick(g, 6)]);
    wf_buf_puts(&g->b, offsets[pick(g, 6)]);
}

static void gen_range(gen_t *g, int depth)
{
    static const char *ranges[] = {"30s", "1m", "5m", "10m", "1h"};
    if (depth > 0 && pick(g, 4) == 0) {
        wf_buf_puts(&g->b, "(");
        gen_vector(g, depth - 1);
        wf_buf_printf(&g->b, ")[%s:%s]", ranges[1 + pick(g, 4)], pick(g, 2) ? "1m" : "");
        return;
    }
    static const char *names[] = {"http_requests_total", "node_temperature_celsius",
                                  "special_values",      "gappy_requests_total",
                                  "stale_gauge",         "aligned_requests_total"};
    wf_buf_puts(&g->b, names[pick(g, 6)]);
    wf_buf_printf(&g->b, "[%s]", ranges[pick(g, 5)]);
}

static void gen_labels(gen_t *g)
{
    static const char *labels[] = {"job",    "instance", "code", "method",
                                   "sensor", "kind",     "le",   "reporter"};
    unsigned n = pick(g, 3);
    wf_buf_putc(&g->b, '(');
    for (unsigned i = 0; i < n; i++) {
        wf_buf_printf(&g->b, "%s%s", i ? ", " : "", labels[pick(g, 8)]);
    }
    wf_buf_putc(&g->b, ')');
}

static void gen_vector(gen_t *g, int depth)
{
    unsigned k = depth > 0 ? pick(g, 9) : 0;
    switch (k) {
    case 0:
        gen_selector(g);
        break;
    case 1: {
        static const char *fns[] = {"abs",       "ceil", "floor", "exp",       "ln",
                                    "sqrt",      "sgn",  "round", "timestamp", "sort",
                                    "sort_desc", "deg",  "sin",   "tanh",      "-"};
        wf_buf_printf(&g->b, "%s(", fns[pick(g, 15)]);
        gen_vector(g, depth - 1);
        wf_buf_putc(&g->b, ')');
        break;
    }
    case 2: {
        static const char *fns[] = {"clamp_min", "clamp_max", "round"};
        wf_buf_printf(&g->b, "%s(", fns[pick(g, 3)]);
        gen_vector(g, depth - 1);
        wf_buf_puts(&g->b, ", ");
        gen_scalar(g, depth - 1);
        wf_buf_putc(&g->b, ')');
        break;
    }
    case 3:
    case 4: {
        static const char *fns[] = {"rate",
                                    "irate",
                                    "increase",
                                    "delta",
                                    "idelta",
                                    "deriv",
                                    "changes",
                                    "resets",
                                    "avg_over_time",
                                    "min_over_time",
                                    "max_over_time",
                                    "sum_over_time",
                                    "count_over_time",
                                    "stddev_over_time",
                                    "last_over_time",
                                    "present_over_time"};
        wf_buf_printf(&g->b, "%s(", fns[pick(g, 16)]);
        gen_range(g, depth - 1);
        wf_buf_putc(&g->b, ')');
        break;
    }
    case 5:
    case 6: {
        /* No topk/bottomk: which of equal values they keep is not defined, and Prometheus
         * answers differently from run to run (the corpus has them on data without ties). */
        static const char *aggs[] = {"sum",    "avg",    "min",   "max",     "count",
                                     "stddev", "stdvar", "group", "quantile"};
        unsigned a = pick(g, 9);
        wf_buf_puts(&g->b, aggs[a]);
        unsigned grouping = pick(g, 3);
        if (grouping > 0) {
            wf_buf_puts(&g->b, grouping == 1 ? " by " : " without ");
            gen_labels(g);
        }
        wf_buf_puts(&g->b, " (");
        if (a == 8) {
            wf_buf_puts(&g->b, pick(g, 2) ? "0.5, " : "0.9, ");
        }
        gen_vector(g, depth - 1);
        wf_buf_putc(&g->b, ')');
        break;
    }
    case 7: {
        static const char *ops[] = {
            "+", "-", "*", "/", "%", "^", "==", "!=", ">", "<", ">=", "<=", "and", "or", "unless"};
        unsigned op = pick(g, 15);
        wf_buf_putc(&g->b, '(');
        gen_vector(g, depth - 1);
        wf_buf_printf(&g->b, ") %s ", ops[op]);
        if (op >= 6 && op < 12 && pick(g, 2)) {
            wf_buf_puts(&g->b, "bool ");
        }
        unsigned m = pick(g, 4);
        if (m == 1 || m == 2) {
            wf_buf_puts(&g->b, m == 1 ? "on" : "ignoring");
            gen_labels(g);
            wf_buf_putc(&g->b, ' ');
            if (op < 12 && pick(g, 3) == 0) {
                wf_buf_puts(&g->b, pick(g, 2) ? "group_left " : "group_right ");
            }
        }
        wf_buf_putc(&g->b, '(');
        gen_vector(g, depth - 1);
        wf_buf_putc(&g->b, ')');
        break;
    }
    default: {
        static const char *ops[] = {"+", "-", "*", "/", ">", "<", "== bool", "%"};
        wf_buf_putc(&g->b, '(');
        gen_vector(g, depth - 1);
        wf_buf_printf(&g->b, ") %s ", ops[pick(g, 8)]);
        gen_scalar(g, depth - 1);
        break;
    }
    }
}

/* The n-th random query of the seeded sequence (wf_free it). */
static char *random_query(gen_t *g)
{
    wf_buf_reset(&g->b);
    gen_vector(g, 1 + (int)pick(g, 3));
    wf_buf_putc(&g->b, 0);
    return wf_strdup((const char *)g->b.data);
}

/* The timestamp of the newest sample before t of the first series named name. */
static int64_t last_before(const wt_pd_data_t *d, const char *name, int64_t t)
{
    for (size_t i = 0; i < d->n; i++) {
        const wt_pd_series_t *s = &d->series[i];
        if (strcmp(s->values[0], name) != 0) {
            continue;
        }
        int64_t best = d->start_ms;
        for (size_t j = 0; j < s->n && s->ts[j] < t; j++) {
            best = s->ts[j];
        }
        return best;
    }
    return t;
}

static void fmt_secs(char *out, size_t n, int64_t ms)
{
    snprintf(out, n, "%lld.%03lld", (long long)(ms / 1000), (long long)(ms % 1000));
}

static void fmt_rfc3339(char *out, size_t n, int64_t ms)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char base[32];
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, n, "%s.%03lldZ", base, (long long)(ms % 1000));
}

/*
 * Raw requests against both servers: time formats (seconds, fractions finer than a ms,
 * scientific notation, RFC 3339), step as seconds and as a duration, POSTed forms, missing and
 * malformed parameters, the 11,000-points limit, and /api/v1/series, /labels and
 * /label/<name>/values. Returns the number of differing answers.
 */
static size_t api_cases(wt_pd_tally_t *t, wt_pd_srv_t *prom, wt_pd_srv_t *weft,
                        const wt_pd_data_t *d)
{
    char e[32], s[32], e2h[32], re[96], rs[96], path[1024], form[1024];
    int64_t end = d->end_ms, start = d->end_ms - 3600000;
    fmt_secs(e, sizeof(e), end);
    fmt_secs(s, sizeof(s), start);
    fmt_secs(e2h, sizeof(e2h), end - 7200000);
    fmt_rfc3339(re, sizeof(re), end);
    fmt_rfc3339(rs, sizeof(rs), start);
    const char *rate = "sum%20by%20(code)%20(rate(http_requests_total%5B5m%5D))";
    size_t differed = 0;
#define RAW(...)                                                                                   \
    do {                                                                                           \
        snprintf(path, sizeof(path), __VA_ARGS__);                                                 \
        differed += !wt_pd_run_raw(t, stdout, prom, weft, path, NULL);                             \
    } while (0)
#define FORM(p, ...)                                                                               \
    do {                                                                                           \
        snprintf(form, sizeof(form), __VA_ARGS__);                                                 \
        differed += !wt_pd_run_raw(t, stdout, prom, weft, p, form);                                \
    } while (0)
    RAW("/api/v1/query?query=%s&time=%s", rate, e);
    RAW("/api/v1/query?query=%s&time=%s", rate, re);
    RAW("/api/v1/query?query=%s&time=%s456789", rate, e);
    RAW("/api/v1/query?query=sum(up)&time=%lld.5e-1", (long long)(end / 1000) * 10);
    RAW("/api/v1/query?query=up&time=%s&timeout=5s", e);
    RAW("/api/v1/query?query=up&time=%s&timeout=abc", e);
    RAW("/api/v1/query?query=&time=%s", e);
    RAW("/api/v1/query?time=%s", e);
    RAW("/api/v1/query?query=up&time=abc");
    RAW("/api/v1/query?query=up&time=%s&foo=bar", e);
    RAW("/api/v1/query_range?query=%s&start=%s&end=%s&step=15", rate, s, e);
    RAW("/api/v1/query_range?query=%s&start=%s&end=%s&step=15s", rate, s, e);
    RAW("/api/v1/query_range?query=%s&start=%s&end=%s&step=1m", rate, s, e);
    RAW("/api/v1/query_range?query=%s&start=%s&end=%s&step=60", rate, rs, re);
    RAW("/api/v1/query_range?query=%s&start=%s&end=%s&step=0.015e3", rate, s, e);
    RAW("/api/v1/query_range?query=up&start=%s&end=%s&step=0", s, e);
    RAW("/api/v1/query_range?query=up&start=%s&end=%s&step=-15", s, e);
    RAW("/api/v1/query_range?query=up&start=%s&end=%s&step=15", e, s);
    RAW("/api/v1/query_range?query=up&start=%s&end=%s&step=0.5", e2h, e);
    RAW("/api/v1/query_range?query=up&start=%s&end=%s&step=0.65", e2h, e);
    RAW("/api/v1/query_range?query=up&start=%s&end=%s", s, e);
    RAW("/api/v1/query_range?query=up&start=%s&step=15", s);
    RAW("/api/v1/query_range?query=up&end=%s&step=15", e);
    RAW("/api/v1/query_range?query=up&start=abc&end=%s&step=15", e);
    FORM("/api/v1/query", "query=%s&time=%s", rate, e);
    FORM("/api/v1/query_range", "query=%s&start=%s&end=%s&step=30", rate, s, e);
    FORM("/api/v1/query", "query=up%%20%%2B%%20on(instance)%%20group_left%%20build_info&time=%s",
         e);
    RAW("/api/v1/series?match%%5B%%5D=up&start=%s&end=%s", s, e);
    RAW("/api/v1/series?match[]=up&match[]=build_info&start=%s&end=%s", s, e);
    RAW("/api/v1/series?match[]=%%7Bjob%%3D%%22gap%%22%%7D&start=%s&end=%s", s, e);
    RAW("/api/v1/series?match[]=%%7B__name__%%3D~%%22rpc_.*%%22,le%%3D%%220.1%%22%%7D&start=%s"
        "&end=%s",
        s, e);
    RAW("/api/v1/series?start=%s&end=%s", s, e);
    RAW("/api/v1/series?match[]=up%%7B&start=%s&end=%s", s, e);
    FORM("/api/v1/series", "match[]=up&start=%s&end=%s", s, e);
    RAW("/api/v1/labels?start=%s&end=%s", s, e);
    RAW("/api/v1/labels?match[]=up&start=%s&end=%s", s, e);
    RAW("/api/v1/label/job/values?start=%s&end=%s", s, e);
    RAW("/api/v1/label/__name__/values?start=%s&end=%s", s, e);
    RAW("/api/v1/label/le/values?start=%s&end=%s", s, e);
    RAW("/api/v1/label/nonexistent/values?start=%s&end=%s", s, e);
    RAW("/api/v1/label/job/values?match[]=up&start=%s&end=%s", s, e);
    RAW("/api/v1/label/instance/values?match[]=%%7Bjob%%3D~%%22api%%7Cgap%%22%%7D&start=%s&end=%s",
        s, e);
#undef RAW
#undef FORM
    return differed;
}

static void test_promql_diff(void **state)
{
    (void)state;
    if (wt_pd_prometheus_bin() == NULL) {
        wt_skip();
    }
    size_t nq = 0;
    char **queries = load_corpus(&nq);
    assert_true(nq >= 300);

    wt_pd_srv_t *prom = NULL, *weft = NULL;
    wt_pd_data_t data;
    wt_pd_data_init(&data);
    /* The window ends on a minute boundary shortly before now, so aligned steps land exactly
     * on it and the scrape jitter straddles the range boundaries. */
    int64_t end = (wt_pd_now_ms() / 60000) * 60000 - 60000;
    int64_t span = 2 * 3600 * 1000;
    wt_pd_gen_general(&data, SEED, end, span);
    printf("data: %zu series, %zu samples, window %lld..%lld ms\n", data.n, data.samples,
           (long long)data.start_ms, (long long)data.end_ms);

    bool ok_start = true, ok_load = true;
    size_t differed = 0;
    wt_pd_tally_t t;
    const char *show = getenv("WT_PD_SHOW");
    wt_pd_tally_init(&t, show ? (size_t)atoi(show) : 8);

    if (getenv("WEFT_DIFF_SELF") == NULL) {
        (void)wt_weft_bin(); /* aborts when WEFT_BIN is unset, before anything is started */
    }
    prom = wt_pd_start(WT_PD_PROMETHEUS);
    weft = prom ? wt_pd_start(WT_PD_WEFT) : NULL;
    if (prom == NULL || weft == NULL) {
        ok_start = false;
        goto out;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (wt_pd_load(prom, &data) != 0 || wt_pd_load(weft, &data) != 0) {
        ok_load = false;
        goto out;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("loaded both in %.1f s\n",
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);

    /* The oracle must hold every series the generator made, or the comparison proves little. */
    ok_load = oracle_holds(prom, &data);
    if (!ok_load) {
        goto out;
    }

    int64_t gap_mid = (data.gap_from_ms + data.gap_to_ms) / 2;
    /* Times that put a real sample exactly on a window's edge: the last sample before the gap
     * exactly 5 minutes (the lookback) and 5 min + 1 ms back, and a dense series' sample exactly
     * one minute back (the left edge of every [1m] range). */
    int64_t before_gap = last_before(&data, "gappy_gauge", data.gap_from_ms);
    int64_t dense = last_before(&data, "http_requests_total", end - 20 * 60000);
    const int64_t times[] = {
        end,                   /* the newest samples */
        end - 7 * 60000,       /* after stale_requests_total's staleness marker */
        gap_mid,               /* inside the 12 minute gap */
        data.start_ms + 30000, /* windows reaching before the first sample */
        end - 61234,           /* not aligned to anything */
        end + 4 * 60000,       /* past the data, inside the lookback */
        before_gap + 300000,   /* lookback edge */
        before_gap + 300001,   /* just past it */
        dense + 60000,         /* [1m] window edge */
    };
    const int64_t ranges[][3] = {
        {end - 3600000, end, 60000},                                     /* aligned, 61 steps */
        {data.gap_from_ms - 600000 + 7, data.gap_to_ms + 600000, 37000}, /* unaligned */
        {end - 1800000 + 1, end + 120000, 15000}, /* end not reachable by whole steps */
        {end - 300000, end - 300000, 60000},      /* start == end: one step */
        {end - 7200000, end, 3600000},            /* step far larger than the windows */
        {end - 30000, end, 500},                  /* sub-second step */
    };
    const char *filter = getenv("WT_PD_FILTER");
    bool *bad = wf_calloc(nq, sizeof(bool));
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (size_t i = 0; i < nq; i++) {
        if (filter != NULL && strstr(queries[i], filter) == NULL) {
            continue;
        }
        size_t d =
            wt_pd_run(&t, stdout, prom, weft, queries[i], times, sizeof(times) / sizeof(times[0]),
                      ranges, sizeof(ranges) / sizeof(ranges[0]));
        bad[i] = d > 0;
        differed += d;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (differed > 0) {
        printf("queries with a difference:\n");
        for (size_t i = 0; i < nq; i++) {
            if (bad[i]) {
                printf("  %s\n", queries[i]);
            }
        }
    }
    wf_free(bad);
    wt_pd_tally_print(&t, stdout, "promql diff");
    printf("queries ran in %.1f s\n",
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);

    /* Random queries from a fixed seed: shapes nobody thought to write down. */
    wt_pd_tally_t rnd;
    wt_pd_tally_init(&rnd, show ? (size_t)atoi(show) : 8);
    const char *rseed = getenv("WT_PD_RANDOM_SEED");
    gen_t g = {rseed != NULL ? strtoull(rseed, NULL, 0) : RANDOM_SEED, WF_BUF_INIT};
    const int64_t rtimes[] = {end, gap_mid, dense + 60000};
    const char *nrandom = getenv("WT_PD_RANDOM");
    int nr = nrandom != NULL ? atoi(nrandom) : RANDOM_QUERIES;
    for (int i = 0; i < nr; i++) {
        char *q = random_query(&g);
        size_t d = wt_pd_run(&rnd, stdout, prom, weft, q, rtimes, 3, ranges, 2);
        if (d > 0) {
            printf("  (random query #%d)\n", i);
        }
        differed += d;
        wf_free(q);
    }
    wf_buf_free(&g.b);
    wt_pd_tally_print(&rnd, stdout, "random diff");

    /* The HTTP API's parameter handling and the metadata endpoints, as raw requests. */
    wt_pd_tally_t api;
    wt_pd_tally_init(&api, show ? (size_t)atoi(show) : 8);
    differed += api_cases(&api, prom, weft, &data);
    wt_pd_tally_print(&api, stdout, "api diff");

out:;
    /* Both must have survived the run: a crash or a sanitizer report in weft fails the test
     * even when every answer before it agreed. */
    bool ok_stop = wt_pd_stop(weft);
    ok_stop &= wt_pd_stop(prom);
    wt_pd_data_free(&data);
    for (size_t i = 0; i < nq; i++) {
        wf_free(queries[i]);
    }
    wf_free(queries);
    assert_true(ok_start);
    assert_true(ok_load);
    assert_int_equal(differed, 0);
    assert_true(ok_stop);
}

static wt_pd_verdict_t cmp(const char *ref, const char *got, bool ordered)
{
    wt_pd_answer_t a = {200, (char *)ref, 0}, b = {200, (char *)got, 0};
    char why[512];
    if (strstr(ref, "\"error\"") != NULL) {
        a.status = strstr(ref, "bad_data") ? 400 : 422;
    }
    if (strstr(got, "\"error\"") != NULL) {
        b.status = strstr(got, "bad_data") ? 400 : 422;
    }
    return wt_pd_compare(&a, &b, ordered, why, sizeof(why));
}

#define VEC(items)                                                                                 \
    "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[" items "]}}"
#define MAT(items)                                                                                 \
    "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[" items "]}}"
#define S(lbl, t, v) "{\"metric\":{" lbl "},\"value\":[" t ",\"" v "\"]}"
#define ERR(type, msg) "{\"status\":\"error\",\"errorType\":\"" type "\",\"error\":\"" msg "\"}"

/* The comparison itself must be able to fail: every rule of wt_promdiff.h, both ways. */
static void test_compare_rules(void **state)
{
    (void)state;
    const char *ab = VEC(S("\"a\":\"1\"", "10", "1") "," S("\"a\":\"2\"", "10", "2"));
    const char *ba = VEC(S("\"a\":\"2\"", "10", "2") "," S("\"a\":\"1\"", "10", "1"));
    assert_int_equal(cmp(ab, ab, false), WT_PD_AGREE);
    assert_int_equal(cmp(ab, ba, false), WT_PD_AGREE);
    assert_int_equal(cmp(ab, ba, true), WT_PD_DIFFER);
    assert_int_equal(cmp(VEC(S("", "10", "1")), VEC(S("", "10", "1.0000001")), false), WT_PD_AGREE);
    assert_int_equal(cmp(VEC(S("", "10", "1")), VEC(S("", "10", "1.001")), false), WT_PD_DIFFER);
    assert_int_equal(cmp(VEC(S("", "10", "0")), VEC(S("", "10", "1e-10")), false), WT_PD_AGREE);
    assert_int_equal(cmp(VEC(S("", "10", "0")), VEC(S("", "10", "1e-8")), false), WT_PD_DIFFER);
    assert_int_equal(cmp(VEC(S("", "10", "NaN")), VEC(S("", "10", "NaN")), false), WT_PD_AGREE);
    assert_int_equal(cmp(VEC(S("", "10", "1000000")), VEC(S("", "10", "1e+06")), false),
                     WT_PD_AGREE_FORMAT);
    assert_int_equal(cmp(VEC(S("", "10", "+Inf")), VEC(S("", "10", "inf")), false),
                     WT_PD_AGREE_FORMAT);
    assert_int_equal(cmp(VEC(S("", "10", "NaN")), VEC(S("", "10", "0")), false), WT_PD_DIFFER);
    assert_int_equal(cmp(VEC(S("", "10", "+Inf")), VEC(S("", "10", "+Inf")), false), WT_PD_AGREE);
    assert_int_equal(cmp(VEC(S("", "10", "+Inf")), VEC(S("", "10", "-Inf")), false), WT_PD_DIFFER);
    assert_int_equal(cmp(VEC(S("", "10", "1")), VEC(S("", "10.001", "1")), false), WT_PD_DIFFER);
    assert_int_equal(cmp(ab, VEC(S("\"a\":\"1\"", "10", "1")), false), WT_PD_DIFFER);
    assert_int_equal(cmp(VEC(S("\"a\":\"1\"", "10", "1")), ab, false), WT_PD_DIFFER);
    assert_int_equal(cmp(VEC(S("\"a\":\"1\"", "10", "1")), VEC(S("\"a\":\"x\"", "10", "1")), false),
                     WT_PD_DIFFER);
    assert_int_equal(cmp(VEC(""), VEC(""), false), WT_PD_AGREE);
    assert_int_equal(cmp(VEC(""), MAT(""), false), WT_PD_DIFFER);
    const char *m2 = MAT("{\"metric\":{},\"values\":[[1,\"1\"],[2,\"2\"]]}");
    const char *m1 = MAT("{\"metric\":{},\"values\":[[1,\"1\"]]}");
    const char *m2b = MAT("{\"metric\":{},\"values\":[[1,\"1\"],[3,\"2\"]]}");
    assert_int_equal(cmp(m2, m2, false), WT_PD_AGREE);
    assert_int_equal(cmp(m2, m1, false), WT_PD_DIFFER);
    assert_int_equal(cmp(m2, m2b, false), WT_PD_DIFFER);
    const char *sc =
        "{\"status\":\"success\",\"data\":{\"resultType\":\"scalar\",\"result\":[5,\"2\"]}}";
    const char *sc2 =
        "{\"status\":\"success\",\"data\":{\"resultType\":\"scalar\",\"result\":[5,\"3\"]}}";
    assert_int_equal(cmp(sc, sc, false), WT_PD_AGREE);
    assert_int_equal(cmp(sc, sc2, false), WT_PD_DIFFER);
    assert_int_equal(cmp(ERR("bad_data", "x"), ERR("bad_data", "x"), false), WT_PD_AGREE);
    assert_int_equal(cmp(ERR("bad_data", "x"), ERR("bad_data", "y"), false), WT_PD_AGREE_ERRMSG);
    assert_int_equal(cmp(ERR("bad_data", "x"), ERR("execution", "x"), false), WT_PD_DIFFER);
    assert_int_equal(cmp(ERR("execution", "x"), ab, false), WT_PD_DIFFER);
    assert_int_equal(cmp(ab, ERR("execution", "x"), false), WT_PD_DIFFER);
    assert_int_equal(cmp(ab, "not json", false), WT_PD_DIFFER);

    assert_true(wt_pd_order_defined("sort(up)"));
    assert_true(wt_pd_order_defined("sort_desc(sum by (a) (up))"));
    assert_true(wt_pd_order_defined("topk(3, up)"));
    assert_true(wt_pd_order_defined("bottomk (3, rate(x[5m]))"));
    assert_false(wt_pd_order_defined("topk by (a) (3, up)"));
    assert_false(wt_pd_order_defined("topk(3, up) by (a)"));
    assert_false(wt_pd_order_defined("sort(up) + 1"));
    assert_false(wt_pd_order_defined("sum(up)"));
    assert_false(wt_pd_order_defined("sort(up) or sort(up)"));
}

int main(void)
{
    /* Line-buffered, so the summary and cmocka's verdict (stderr) come out in order. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compare_rules),
        cmocka_unit_test(test_promql_diff),
    };
    return wt_exit_code(cmocka_run_group_tests(tests, NULL, NULL));
}
