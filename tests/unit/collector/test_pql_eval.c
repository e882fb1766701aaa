/*
 * test_pql_eval.c - the PromQL evaluator against a real store: deterministic samples are
 * written through st_batch_*, queries are evaluated with pql_eval_instant / pql_eval_range, and
 * the results are compared with values derived by hand from Prometheus 2.42's definitions
 * (promql/engine.go, functions.go, quantile.go). Trees are built by hand here so that the
 * evaluator is tested on its own, independent of the parser.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "pql.h"
#include "st_store.h"
#include "wf_alloc.h"
#include "wf_arena.h"
#include "wt_util.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T0 1700000040000LL /* 2023-11-14T22:14:00Z, a whole minute */
#define SEC 1000LL
#define MIN (60 * SEC)

typedef struct {
    char *dir;
    int64_t now;
    st_store_t *s;
    pql_engine_t *e;
    pql_options_t o;
} fx_t;

static int64_t fake_now(void *arg)
{
    return *(int64_t *)arg;
}

/* ---- data ----------------------------------------------------------------------------------- */

static void add(st_batch_t *b, const char *labels, int64_t t, double v)
{
    /* labels: "name=value,name=value" */
    st_label_t l[16];
    size_t n = 0;
    char *copy = wf_strdup(labels);
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        assert_non_null(eq);
        *eq = 0;
        l[n].name = wf_str(tok);
        l[n].value = wf_str(eq + 1);
        n++;
    }
    assert_int_equal(st_batch_add(b, l, n, t, v), 0);
    wf_free(copy);
}

static double stale_nan(void)
{
    uint64_t b = 0x7ff0000000000002ULL;
    double d;
    memcpy(&d, &b, sizeof(d));
    return d;
}

/*
 * The data set (t in seconds after T0, one sample every 15 s unless said otherwise):
 *   reqs{job=api,instance=a}: 10*i for t = 15*i, i = 0..40
 *   reqs{job=api,instance=b}: 5*i for i < 20, then 5*(i-20) (a counter reset at t = 300)
 *   reqs{job=db,instance=c}:  i
 *   other{job=db,instance=c}: 2*i
 *   zp{job=z}: 0.5, 1.5, 2.5, ... at t = 0, 15, 30, ... (i = 0..40)
 *   lat_bucket{job=api,le=0.1|0.5|1|+Inf}: i*{1,3,4,5} at t = 15*i
 *   gauge{job=g,k=x}: 3 at t = 0, 7 at t = 60, stale marker at t = 120, 9 at t = 600
 *   gauge{job=g,k=y}: -2 at t = 0, 4 at t = 60 (no more samples)
 */
static void load(fx_t *f)
{
    st_batch_t *b;
    assert_int_equal(st_batch_begin(f->s, &b), 0);
    for (int i = 0; i <= 40; i++) {
        int64_t t = T0 + i * 15 * SEC;
        add(b, "__name__=reqs,job=api,instance=a", t, 10.0 * i);
        add(b, "__name__=reqs,job=api,instance=b", t, i < 20 ? 5.0 * i : 5.0 * (i - 20));
        add(b, "__name__=reqs,job=db,instance=c", t, (double)i);
        add(b, "__name__=other,job=db,instance=c", t, 2.0 * i);
        add(b, "__name__=zp,job=z", t, 0.5 + i);
        add(b, "__name__=lat_bucket,job=api,le=0.1", t, 1.0 * i);
        add(b, "__name__=lat_bucket,job=api,le=0.5", t, 3.0 * i);
        add(b, "__name__=lat_bucket,job=api,le=1", t, 4.0 * i);
        add(b, "__name__=lat_bucket,job=api,le=+Inf", t, 5.0 * i);
    }
    add(b, "__name__=gauge,job=g,k=x", T0, 3);
    add(b, "__name__=gauge,job=g,k=x", T0 + 60 * SEC, 7);
    add(b, "__name__=gauge,job=g,k=x", T0 + 120 * SEC, stale_nan());
    add(b, "__name__=gauge,job=g,k=x", T0 + 600 * SEC, 9);
    add(b, "__name__=gauge,job=g,k=y", T0, -2);
    add(b, "__name__=gauge,job=g,k=y", T0 + 60 * SEC, 4);
    assert_int_equal(st_batch_commit(b), 0);
}

static int setup(void **state)
{
    fx_t *f = wf_calloc(1, sizeof(*f));
    f->dir = wt_tmpdir("pql_eval");
    f->now = T0 + 3600 * SEC;
    st_options_t o;
    st_options_default(&o);
    o.dir = f->dir;
    o.now_ms = fake_now;
    o.now_arg = &f->now;
    assert_int_equal(st_store_open(&o, &f->s), 0);
    load(f);
    pql_options_default(&f->o);
    assert_int_equal(pql_engine_new(f->s, &f->o, &f->e), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    pql_engine_free(f->e);
    st_store_close(f->s);
    wt_rm_rf(f->dir);
    wf_free(f->dir);
    wf_free(f);
    return 0;
}

/* ---- tree building -------------------------------------------------------------------------- */

typedef pql_node_t N;

static pql_tree_t *tree; /* the tree being built by the current test */

static void tree_begin(void)
{
    tree = wf_calloc(1, sizeof(*tree));
    wf_arena_init(&tree->arena, 4096, 0);
}

static void tree_end(void)
{
    for (size_t i = 0; i < tree->ncompiled; i++) {
        st_matcher_free(tree->compiled[i]);
    }
    wf_free(tree->compiled);
    wf_arena_free(&tree->arena);
    wf_free(tree);
    tree = NULL;
}

static N *node(pql_node_kind_t k, pql_type_t t)
{
    N *n = wf_arena_alloc(&tree->arena, sizeof(*n));
    memset(n, 0, sizeof(*n));
    n->kind = k;
    n->type = t;
    return n;
}

static wf_str_t astr(const char *s)
{
    size_t n = strlen(s);
    return (wf_str_t){wf_arena_strndup(&tree->arena, s, n), n};
}

static N *num(double v)
{
    N *n = node(PQL_NODE_NUMBER, PQL_TYPE_SCALAR);
    n->u.number = v;
    return n;
}

static N *str(const char *s)
{
    N *n = node(PQL_NODE_STRING, PQL_TYPE_STRING);
    n->u.string = astr(s);
    return n;
}

static void add_matcher(N *n, st_match_type_t type, const char *name, const char *value)
{
    pql_matcher_t *m = &n->u.vector.matchers[n->u.vector.nmatchers++];
    m->type = type;
    m->name = astr(name);
    m->value = astr(value);
    assert_int_equal(st_matcher_new(type, m->name, m->value, &m->compiled, NULL, 0), 0);
    tree->compiled = wf_realloc(tree->compiled, (tree->ncompiled + 1) * sizeof(st_matcher_t *));
    tree->compiled[tree->ncompiled++] = m->compiled;
}

/* sel("reqs", "job=api,instance=~a|b"): a selector; ops = != =~ !~. */
static N *sel(const char *name, const char *matchers)
{
    N *n = node(PQL_NODE_VECTOR, PQL_TYPE_VECTOR);
    n->u.vector.matchers = wf_arena_alloc(&tree->arena, 16 * sizeof(pql_matcher_t));
    if (name && *name) {
        n->u.vector.name = astr(name);
        add_matcher(n, ST_MATCH_EQ, "__name__", name);
    }
    if (matchers && *matchers) {
        char *copy = wf_strdup(matchers), *save = NULL;
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            char *op = strpbrk(tok, "=!");
            assert_non_null(op);
            st_match_type_t t = ST_MATCH_EQ;
            char *v = op + 1;
            if (op[0] == '!' && op[1] == '=') {
                t = ST_MATCH_NE;
                v = op + 2;
            } else if (op[0] == '!' && op[1] == '~') {
                t = ST_MATCH_NRE;
                v = op + 2;
            } else if (op[0] == '=' && op[1] == '~') {
                t = ST_MATCH_RE;
                v = op + 2;
            }
            *op = 0;
            add_matcher(n, t, tok, v);
        }
        wf_free(copy);
    }
    return n;
}

static N *offset(N *n, int64_t off)
{
    if (n->kind == PQL_NODE_MATRIX) {
        n->u.matrix.vector->u.vector.offset_ms = off;
    } else if (n->kind == PQL_NODE_SUBQUERY) {
        n->u.subquery.offset_ms = off;
    } else {
        n->u.vector.offset_ms = off;
    }
    return n;
}

static N *at(N *n, pql_at_kind_t k, int64_t t)
{
    if (n->kind == PQL_NODE_MATRIX) {
        n = n->u.matrix.vector;
    }
    if (n->kind == PQL_NODE_SUBQUERY) {
        n->u.subquery.at = k;
        n->u.subquery.at_ms = t;
    } else {
        n->u.vector.at = k;
        n->u.vector.at_ms = t;
    }
    return n;
}

static N *mat(N *v, int64_t range)
{
    N *n = node(PQL_NODE_MATRIX, PQL_TYPE_MATRIX);
    n->u.matrix.vector = v;
    n->u.matrix.range_ms = range;
    return n;
}

static N *subq(N *e, int64_t range, int64_t step)
{
    N *n = node(PQL_NODE_SUBQUERY, PQL_TYPE_MATRIX);
    n->u.subquery.expr = e;
    n->u.subquery.range_ms = range;
    n->u.subquery.step_ms = step;
    return n;
}

static N *callv(pql_fn_t fn, pql_type_t ret, size_t nargs, ...)
{
    N *n = node(PQL_NODE_CALL, ret);
    n->u.call.fn = fn;
    n->u.call.nargs = nargs;
    n->u.call.args = wf_arena_alloc(&tree->arena, (nargs ? nargs : 1) * sizeof(N *));
    va_list ap;
    va_start(ap, nargs);
    for (size_t i = 0; i < nargs; i++) {
        n->u.call.args[i] = va_arg(ap, N *);
    }
    va_end(ap);
    return n;
}

#define CALL(fn, ...) callv(fn, PQL_TYPE_VECTOR, __VA_ARGS__)

static pql_names_t names(const char *csv)
{
    pql_names_t r = {NULL, 0};
    if (csv == NULL || *csv == 0) {
        return r;
    }
    r.names = wf_arena_alloc(&tree->arena, 16 * sizeof(wf_str_t));
    char *copy = wf_strdup(csv), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        r.names[r.n++] = astr(tok);
    }
    wf_free(copy);
    return r;
}

static N *agg(pql_agg_op_t op, N *e, N *param, bool without, const char *grouping)
{
    N *n = node(PQL_NODE_AGGREGATE, PQL_TYPE_VECTOR);
    n->u.aggregate.op = op;
    n->u.aggregate.expr = e;
    n->u.aggregate.param = param;
    n->u.aggregate.without = without;
    n->u.aggregate.grouping = names(grouping);
    return n;
}

static N *bin(pql_binop_t op, N *l, N *r)
{
    bool sc = l->type == PQL_TYPE_SCALAR && r->type == PQL_TYPE_SCALAR;
    N *n = node(PQL_NODE_BINARY, sc ? PQL_TYPE_SCALAR : PQL_TYPE_VECTOR);
    n->u.binary.op = op;
    n->u.binary.lhs = l;
    n->u.binary.rhs = r;
    n->u.binary.card = (op >= PQL_OP_AND) ? PQL_CARD_MANY_TO_MANY : PQL_CARD_ONE_TO_ONE;
    return n;
}

static N *boolop(N *b)
{
    b->u.binary.return_bool = true;
    return b;
}

static N *on(N *b, bool is_on, const char *labels)
{
    b->u.binary.on = is_on;
    b->u.binary.matching = names(labels);
    return b;
}

static N *group(N *b, pql_card_t card, const char *include)
{
    b->u.binary.card = card;
    b->u.binary.include = names(include);
    return b;
}

static N *neg(N *e)
{
    N *n = node(PQL_NODE_UNARY, e->type);
    n->u.unary.negate = true;
    n->u.unary.expr = e;
    return n;
}

/* ---- running -------------------------------------------------------------------------------- */

static pql_result_t *inst(fx_t *f, N *root, int64_t t)
{
    tree->root = root;
    pql_result_t *r = NULL;
    pql_error_t err;
    int rc = pql_eval_instant(f->e, tree, t, 0, &r, &err);
    if (rc != 0) {
        fail_msg("query failed: %s", err.msg);
    }
    return r;
}

static void inst_err(fx_t *f, N *root, int64_t t, const char *want)
{
    tree->root = root;
    pql_result_t *r = NULL;
    pql_error_t err;
    assert_int_equal(pql_eval_instant(f->e, tree, t, 0, &r, &err), -1);
    assert_null(r);
    if (strstr(err.msg, want) == NULL) {
        fail_msg("error %s, want %s", err.msg, want);
    }
}

static pql_result_t *range(fx_t *f, N *root, int64_t s, int64_t e, int64_t step)
{
    tree->root = root;
    pql_result_t *r = NULL;
    pql_error_t err;
    if (pql_eval_range(f->e, tree, s, e, step, 0, &r, &err) != 0) {
        fail_msg("range query failed: %s", err.msg);
    }
    return r;
}

/* The labels of s as {a="b",c="d"}. */
static void fmt_labels(const pql_series_t *s, char *out, size_t cap)
{
    size_t o = snprintf(out, cap, "{");
    for (size_t i = 0; i < s->nlabels && o < cap; i++) {
        o += snprintf(out + o, cap - o, "%s%.*s=\"%.*s\"", i ? "," : "", (int)s->labels[i].name.len,
                      s->labels[i].name.p, (int)s->labels[i].value.len, s->labels[i].value.p);
    }
    if (o < cap) {
        snprintf(out + o, cap - o, "}");
    }
}

static const pql_series_t *find(const pql_result_t *r, const char *labels)
{
    char buf[512];
    for (size_t i = 0; i < r->nseries; i++) {
        fmt_labels(&r->series[i], buf, sizeof(buf));
        if (strcmp(buf, labels) == 0) {
            return &r->series[i];
        }
    }
    for (size_t i = 0; i < r->nseries; i++) {
        fmt_labels(&r->series[i], buf, sizeof(buf));
        print_message("  have %s\n", buf);
    }
    fail_msg("no series %s", labels);
    return NULL;
}

static void near(double got, double want)
{
    if (isnan(want)) {
        if (!isnan(got)) {
            fail_msg("got %.17g, want NaN", got);
        }
        return;
    }
    if (isinf(want)) {
        if (got != want) {
            fail_msg("got %.17g, want %.17g", got, want);
        }
        return;
    }
    double tol = 1e-9 * fmax(1, fabs(want));
    if (!(fabs(got - want) <= tol)) {
        fail_msg("got %.17g, want %.17g", got, want);
    }
}

/* The one value of series `labels` in an instant vector result. */
static void expect(const pql_result_t *r, const char *labels, double want)
{
    assert_int_equal(r->type, PQL_TYPE_VECTOR);
    const pql_series_t *s = find(r, labels);
    assert_int_equal(s->n, 1);
    near(s->v[0], want);
}

#define AT(sec) (T0 + (sec)*SEC)

/* ---- selectors ------------------------------------------------------------------------------ */

static void test_instant_selector(void **state)
{
    fx_t *f = *state;
    tree_begin();
    pql_result_t *r = inst(f, sel("reqs", "job=api"), AT(100));
    /* The latest sample at or before t: t = 90 (i = 6). */
    assert_int_equal(r->nseries, 2);
    expect(r, "{__name__=\"reqs\",instance=\"a\",job=\"api\"}", 60);
    expect(r, "{__name__=\"reqs\",instance=\"b\",job=\"api\"}", 30);
    assert_int_equal(r->series[0].ts[0], AT(100));
    pql_result_free(r);

    /* Lookback is [t - 5m, t] in 2.42: the sample at 600 s is seen up to t = 900 inclusive. */
    r = inst(f, sel("reqs", "instance=a"), AT(900));
    expect(r, "{__name__=\"reqs\",instance=\"a\",job=\"api\"}", 400);
    pql_result_free(r);
    r = inst(f, sel("reqs", "instance=a"), AT(900) + 1);
    assert_int_equal(r->nseries, 0);
    pql_result_free(r);
    tree_end();
}

static void test_staleness(void **state)
{
    fx_t *f = *state;
    tree_begin();
    pql_result_t *r = inst(f, sel("gauge", ""), AT(119));
    expect(r, "{__name__=\"gauge\",job=\"g\",k=\"x\"}", 7);
    expect(r, "{__name__=\"gauge\",job=\"g\",k=\"y\"}", 4);
    pql_result_free(r);
    /* The staleness marker at 120 s hides k=x until its next sample. */
    r = inst(f, sel("gauge", ""), AT(120));
    assert_int_equal(r->nseries, 1);
    expect(r, "{__name__=\"gauge\",job=\"g\",k=\"y\"}", 4);
    pql_result_free(r);
    /* k=y's last sample (60 s) is out of the lookback at 361 s. */
    r = inst(f, sel("gauge", ""), AT(361));
    assert_int_equal(r->nseries, 0);
    pql_result_free(r);
    r = inst(f, sel("gauge", ""), AT(600));
    expect(r, "{__name__=\"gauge\",job=\"g\",k=\"x\"}", 9);
    pql_result_free(r);
    /* Range vectors drop the marker: count_over_time sees 3 and 7 only. */
    r = inst(f, CALL(PQL_FN_COUNT_OVER_TIME, 1, mat(sel("gauge", "k=x"), 10 * MIN)), AT(300));
    expect(r, "{job=\"g\",k=\"x\"}", 2);
    pql_result_free(r);
    tree_end();
}

static void test_matrix_selector_instant(void **state)
{
    fx_t *f = *state;
    tree_begin();
    /* [t - 1m, t] inclusive at both ends: 240, 255, 270, 285, 300. */
    pql_result_t *r = inst(f, mat(sel("reqs", "instance=a"), MIN), AT(300));
    assert_int_equal(r->type, PQL_TYPE_MATRIX);
    assert_int_equal(r->nseries, 1);
    assert_int_equal(r->series[0].n, 5);
    assert_int_equal(r->series[0].ts[0], AT(240));
    near(r->series[0].v[0], 160);
    assert_int_equal(r->series[0].ts[4], AT(300));
    pql_result_free(r);
    tree_end();
}

static void test_offset_and_at(void **state)
{
    fx_t *f = *state;
    tree_begin();
    pql_result_t *r = inst(f, offset(sel("reqs", "instance=a"), MIN), AT(300));
    expect(r, "{__name__=\"reqs\",instance=\"a\",job=\"api\"}", 160);
    pql_result_free(r);
    /* Negative offset looks ahead. */
    r = inst(f, offset(sel("reqs", "instance=a"), -MIN), AT(300));
    expect(r, "{__name__=\"reqs\",instance=\"a\",job=\"api\"}", 240);
    pql_result_free(r);
    /* @ fixes the time whatever the evaluation time. */
    r = inst(f, at(sel("reqs", "instance=a"), PQL_AT_TIME, AT(150)), AT(3000));
    expect(r, "{__name__=\"reqs\",instance=\"a\",job=\"api\"}", 100);
    pql_result_free(r);
    N *rq = at(offset(sel("reqs", "instance=a"), 30 * SEC), PQL_AT_END, 0);
    r = range(f, rq, AT(0), AT(300), 100 * SEC);
    assert_int_equal(r->nseries, 1);
    assert_int_equal(r->series[0].n, 4);
    for (size_t i = 0; i < 4; i++) {
        near(r->series[0].v[i], 180); /* at 300 - 30 = 270 s */
    }
    pql_result_free(r);
    tree_end();
}

/* ---- rate & co ------------------------------------------------------------------------------ */

static void test_rate(void **state)
{
    fx_t *f = *state;
    tree_begin();
    /* Aligned window: 40 over 60 s, no extrapolation needed. */
    pql_result_t *r = inst(f, CALL(PQL_FN_RATE, 1, mat(sel("reqs", "instance=a"), MIN)), AT(300));
    expect(r, "{instance=\"a\",job=\"api\"}", 40.0 / 60);
    pql_result_free(r);
    /* Unaligned: samples 255..300 (30 over 45 s), 8 s and 7 s to the edges: extrapolated to 60
     * s. */
    r = inst(f, CALL(PQL_FN_INCREASE, 1, mat(sel("reqs", "instance=a"), MIN)), AT(307));
    expect(r, "{instance=\"a\",job=\"api\"}", 30.0 * 60 / 45);
    pql_result_free(r);
    /* Counter reset at 300 s: window 255..345 holds 85, 90, 95, 0, 5, 10, 15 -> increase 30
     * + 95 = 45 over 90 s... values: 85 (i=17), 90, 95, then 0, 5, 10, 15 (i=23). */
    r = inst(f, CALL(PQL_FN_INCREASE, 1, mat(sel("reqs", "instance=b"), 90 * SEC)), AT(345));
    /* result = 15 - 85 + 95 = 25; window [255, 345] is fully covered -> 25. */
    expect(r, "{instance=\"b\",job=\"api\"}", 25);
    pql_result_free(r);
    /* delta ignores resets. */
    r = inst(f, CALL(PQL_FN_DELTA, 1, mat(sel("reqs", "instance=b"), 90 * SEC)), AT(345));
    expect(r, "{instance=\"b\",job=\"api\"}", -70);
    pql_result_free(r);
    /* Zero-point rule: zp = 0.5, 1.5, 2.5, 3.5 at 0..45 s; window [-10 s, 50 s]. durationToZero
     * = 45 * 0.5 / 3 = 7.5 < 10, so the start extrapolates by 7.5 s, the end by 5 s. */
    r = inst(f, CALL(PQL_FN_INCREASE, 1, mat(sel("zp", ""), MIN)), AT(50));
    expect(r, "{job=\"z\"}", 3.0 * 57.5 / 45);
    pql_result_free(r);
    /* Far from the edges: extrapolate by half an interval only. window [100, 400] over samples
     * of gauge? use reqs a with 5m at 700: samples 400..600 (i=27..40 -> 270..400). */
    r = inst(f, CALL(PQL_FN_RATE, 1, mat(sel("reqs", "instance=a"), 5 * MIN)), AT(700));
    /* window [400, 700]; samples 405..600: 270..400 -> 130 over 195 s; to start 5 s (< 16.5),
     * to end 100 s (> 16.5 -> 7.5 s). interval 195 + 5 + 7.5 = 207.5 */
    expect(r, "{instance=\"a\",job=\"api\"}", 130.0 * 207.5 / 195 / 300);
    pql_result_free(r);
    /* A single sample gives nothing. */
    r = inst(f, CALL(PQL_FN_RATE, 1, mat(sel("reqs", "instance=a"), 10 * SEC)), AT(300));
    assert_int_equal(r->nseries, 0);
    pql_result_free(r);
    /* irate / idelta use the last two samples; irate handles the reset. */
    r = inst(f, CALL(PQL_FN_IRATE, 1, mat(sel("reqs", "instance=b"), MIN)), AT(300));
    expect(r, "{instance=\"b\",job=\"api\"}", 0.0 / 15);
    pql_result_free(r);
    r = inst(f, CALL(PQL_FN_IRATE, 1, mat(sel("reqs", "instance=a"), MIN)), AT(300));
    expect(r, "{instance=\"a\",job=\"api\"}", 10.0 / 15);
    pql_result_free(r);
    r = inst(f, CALL(PQL_FN_IDELTA, 1, mat(sel("reqs", "instance=b"), MIN)), AT(300));
    expect(r, "{instance=\"b\",job=\"api\"}", -95);
    pql_result_free(r);
    tree_end();
}

static void test_rate_range_query(void **state)
{
    fx_t *f = *state;
    tree_begin();
    /* rate over a range: every step must equal the instant evaluation at that time. */
    N *q = CALL(PQL_FN_RATE, 1, mat(sel("reqs", ""), 2 * MIN));
    pql_result_t *r = range(f, q, AT(0), AT(900), 7 * SEC);
    assert_int_equal(r->type, PQL_TYPE_MATRIX);
    assert_int_equal(r->nseries, 3);
    for (size_t i = 0; i < r->nseries; i++) {
        for (size_t k = 0; k < r->series[i].n; k++) {
            pql_result_t *one = inst(f, q, r->series[i].ts[k]);
            char buf[256];
            fmt_labels(&r->series[i], buf, sizeof(buf));
            expect(one, buf, r->series[i].v[k]);
            pql_result_free(one);
        }
    }
    /* Sorted by labels: instance a, b, c. */
    assert_memory_equal(r->series[0].labels[0].value.p, "a", 1);
    assert_memory_equal(r->series[2].labels[0].value.p, "c", 1);
    pql_result_free(r);
    tree_end();
}

/* ---- aggregations --------------------------------------------------------------------------- */

static void test_aggregations(void **state)
{
    fx_t *f = *state;
    tree_begin();
    /* At 150 s: a = 100, b = 50, c = 10. */
    N *x = sel("reqs", "");
    pql_result_t *r = inst(f, agg(PQL_AGG_SUM, x, NULL, false, "job"), AT(150));
    assert_int_equal(r->nseries, 2);
    expect(r, "{job=\"api\"}", 150);
    expect(r, "{job=\"db\"}", 10);
    pql_result_free(r);
    r = inst(f, agg(PQL_AGG_AVG, x, NULL, false, ""), AT(150));
    expect(r, "{}", 160.0 / 3);
    pql_result_free(r);
    r = inst(f, agg(PQL_AGG_COUNT, x, NULL, true, "instance"), AT(150));
    expect(r, "{job=\"api\"}", 2);
    expect(r, "{job=\"db\"}", 1);
    pql_result_free(r);
    r = inst(f, agg(PQL_AGG_MAX, x, NULL, false, "job"), AT(150));
    expect(r, "{job=\"api\"}", 100);
    pql_result_free(r);
    r = inst(f, agg(PQL_AGG_MIN, x, NULL, false, "job"), AT(150));
    expect(r, "{job=\"api\"}", 50);
    pql_result_free(r);
    r = inst(f, agg(PQL_AGG_GROUP, x, NULL, false, "job"), AT(150));
    expect(r, "{job=\"api\"}", 1);
    pql_result_free(r);
    r = inst(f, agg(PQL_AGG_STDVAR, x, NULL, false, "job"), AT(150));
    expect(r, "{job=\"api\"}", 625);
    expect(r, "{job=\"db\"}", 0);
    pql_result_free(r);
    r = inst(f, agg(PQL_AGG_STDDEV, x, NULL, false, "job"), AT(150));
    expect(r, "{job=\"api\"}", 25);
    pql_result_free(r);
    /* without keeps everything else but drops __name__. */
    r = inst(f, agg(PQL_AGG_SUM, x, NULL, true, "job"), AT(150));
    expect(r, "{instance=\"a\"}", 100);
    pql_result_free(r);
    r = inst(f, agg(PQL_AGG_QUANTILE, x, num(0.5), false, ""), AT(150));
    expect(r, "{}", 50);
    pql_result_free(r);
    r = inst(f, agg(PQL_AGG_QUANTILE, x, num(0.75), false, ""), AT(150));
    expect(r, "{}", 75);
    pql_result_free(r);
    r = inst(f, agg(PQL_AGG_QUANTILE, x, num(2), false, ""), AT(150));
    expect(r, "{}", INFINITY);
    pql_result_free(r);
    /* topk keeps the input labels and orders by value. */
    r = inst(f, agg(PQL_AGG_TOPK, x, num(2), false, ""), AT(150));
    assert_int_equal(r->nseries, 2);
    near(r->series[0].v[0], 100);
    near(r->series[1].v[0], 50);
    expect(r, "{__name__=\"reqs\",instance=\"a\",job=\"api\"}", 100);
    pql_result_free(r);
    r = inst(f, agg(PQL_AGG_BOTTOMK, x, num(1), false, "job"), AT(150));
    expect(r, "{__name__=\"reqs\",instance=\"b\",job=\"api\"}", 50);
    expect(r, "{__name__=\"reqs\",instance=\"c\",job=\"db\"}", 10);
    pql_result_free(r);
    r = inst(f, agg(PQL_AGG_COUNT_VALUES, sel("lat_bucket", ""), str("v"), false, ""), AT(30));
    /* values 2, 6, 8, 10 */
    expect(r, "{v=\"2\"}", 1);
    expect(r, "{v=\"10\"}", 1);
    pql_result_free(r);
    r = inst(f,
             agg(PQL_AGG_COUNT_VALUES, bin(PQL_OP_DIV, sel("reqs", "instance=a"), num(8)), str("v"),
                 false, ""),
             AT(15));
    expect(r, "{v=\"1.25\"}", 1);
    pql_result_free(r);
    tree_end();
}

/* ---- binary operators ----------------------------------------------------------------------- */

static void test_binary(void **state)
{
    fx_t *f = *state;
    tree_begin();
    /* scalar/scalar */
    pql_result_t *r = inst(f, bin(PQL_OP_POW, num(2), num(10)), AT(0));
    assert_int_equal(r->type, PQL_TYPE_SCALAR);
    near(r->scalar_v, 1024);
    pql_result_free(r);
    r = inst(f, bin(PQL_OP_MOD, num(-7), num(3)), AT(0));
    near(r->scalar_v, -1);
    pql_result_free(r);
    r = inst(f, boolop(bin(PQL_OP_GTR, num(2), num(1))), AT(0));
    near(r->scalar_v, 1);
    pql_result_free(r);
    /* vector/scalar arithmetic drops the name; comparison keeps it and filters. */
    N *x = sel("reqs", "");
    r = inst(f, bin(PQL_OP_MUL, x, num(2)), AT(150));
    expect(r, "{instance=\"a\",job=\"api\"}", 200);
    pql_result_free(r);
    r = inst(f, bin(PQL_OP_GTR, x, num(20)), AT(150));
    assert_int_equal(r->nseries, 2);
    expect(r, "{__name__=\"reqs\",instance=\"b\",job=\"api\"}", 50);
    pql_result_free(r);
    /* scalar on the left of a comparison: the vector's value is kept. */
    r = inst(f, bin(PQL_OP_LSS, num(20), x), AT(150));
    expect(r, "{__name__=\"reqs\",instance=\"a\",job=\"api\"}", 100);
    pql_result_free(r);
    r = inst(f, boolop(bin(PQL_OP_GTR, x, num(20))), AT(150));
    assert_int_equal(r->nseries, 3);
    expect(r, "{instance=\"c\",job=\"db\"}", 0);
    expect(r, "{instance=\"a\",job=\"api\"}", 1);
    pql_result_free(r);
    r = inst(f, bin(PQL_OP_DIV, sel("reqs", "instance=a"), num(0)), AT(150));
    expect(r, "{instance=\"a\",job=\"api\"}", INFINITY);
    pql_result_free(r);
    /* vector/vector one-to-one */
    r = inst(f, bin(PQL_OP_SUB, x, offset(sel("reqs", ""), MIN)), AT(150));
    expect(r, "{instance=\"a\",job=\"api\"}", 40);
    expect(r, "{instance=\"c\",job=\"db\"}", 4);
    pql_result_free(r);
    /* on(job) with a sum by job on the right, group_left to keep instance. */
    N *g = group(
        on(bin(PQL_OP_DIV, x, agg(PQL_AGG_SUM, sel("reqs", ""), NULL, false, "job")), true, "job"),
        PQL_CARD_MANY_TO_ONE, "");
    r = inst(f, g, AT(150));
    expect(r, "{instance=\"a\",job=\"api\"}", 100.0 / 150);
    expect(r, "{instance=\"c\",job=\"db\"}", 1);
    pql_result_free(r);
    /* Without group_left the same match is an error. */
    inst_err(
        f,
        on(bin(PQL_OP_DIV, x, agg(PQL_AGG_SUM, sel("reqs", ""), NULL, false, "job")), true, "job"),
        AT(150), "multiple matches for labels: many-to-one matching must be explicit");
    /* Duplicates on the "one" side. */
    inst_err(
        f, group(on(bin(PQL_OP_DIV, x, sel("reqs", "")), true, "job"), PQL_CARD_MANY_TO_ONE, ""),
        AT(150), "many-to-many matching not allowed: matching labels must be unique on one side");
    /* group_left with an include label taken from the one side. */
    N *inc = group(on(bin(PQL_OP_MUL, sel("reqs", "job=api"),
                          CALL(PQL_FN_LABEL_REPLACE, 5, agg(PQL_AGG_SUM, x, NULL, false, "job"),
                               str("team"), str("t-$1"), str("job"), str("(.*)"))),
                      true, "job"),
                   PQL_CARD_MANY_TO_ONE, "team");
    r = inst(f, inc, AT(150));
    expect(r, "{instance=\"a\",job=\"api\",team=\"t-api\"}", 100 * 150.0);
    pql_result_free(r);
    /* Result label sets that collide on the many side. */
    inst_err(f,
             group(on(bin(PQL_OP_ADD, sel("", "__name__=~reqs|other,instance=c"),
                          agg(PQL_AGG_SUM, x, NULL, false, "job")),
                      true, "job"),
                   PQL_CARD_MANY_TO_ONE, ""),
             AT(150), "multiple matches for labels: grouping labels must ensure unique matches");
    /* set operators */
    r = inst(f, on(bin(PQL_OP_AND, x, sel("reqs", "instance=a")), true, "instance"), AT(150));
    assert_int_equal(r->nseries, 1);
    expect(r, "{__name__=\"reqs\",instance=\"a\",job=\"api\"}", 100);
    pql_result_free(r);
    r = inst(f, bin(PQL_OP_UNLESS, x, sel("reqs", "instance=a")), AT(150));
    assert_int_equal(r->nseries, 2);
    pql_result_free(r);
    r = inst(f, bin(PQL_OP_OR, sel("reqs", "instance=a"), sel("zp", "")), AT(150));
    assert_int_equal(r->nseries, 2);
    pql_result_free(r);
    /* unary minus drops the name */
    r = inst(f, neg(sel("reqs", "instance=a")), AT(150));
    expect(r, "{instance=\"a\",job=\"api\"}", -100);
    pql_result_free(r);
    tree_end();
}

/* ---- histogram_quantile --------------------------------------------------------------------- */

static void test_histogram_quantile(void **state)
{
    fx_t *f = *state;
    tree_begin();
    /* At 150 s (i = 10): le 0.1: 10, 0.5: 30, 1: 40, +Inf: 50. */
    N *b = sel("lat_bucket", "");
    pql_result_t *r = inst(f, CALL(PQL_FN_HISTOGRAM_QUANTILE, 2, num(0.5), b), AT(150));
    /* rank 25 falls in (0.1, 0.5]: 0.1 + 0.4 * (15 / 20) = 0.4 */
    expect(r, "{job=\"api\"}", 0.4);
    pql_result_free(r);
    r = inst(f, CALL(PQL_FN_HISTOGRAM_QUANTILE, 2, num(0.99), b), AT(150));
    /* rank 49.5 falls in the +Inf bucket: the highest finite bound. */
    expect(r, "{job=\"api\"}", 1);
    pql_result_free(r);
    r = inst(f, CALL(PQL_FN_HISTOGRAM_QUANTILE, 2, num(0.1), b), AT(150));
    /* rank 5 in the first bucket: 0 + 0.1 * 5 / 10 */
    expect(r, "{job=\"api\"}", 0.05);
    pql_result_free(r);
    r = inst(f, CALL(PQL_FN_HISTOGRAM_QUANTILE, 2, num(-1), b), AT(150));
    expect(r, "{job=\"api\"}", -INFINITY);
    pql_result_free(r);
    r = inst(f, CALL(PQL_FN_HISTOGRAM_QUANTILE, 2, num(0.5), b), AT(0));
    /* no observations */
    expect(r, "{job=\"api\"}", NAN);
    pql_result_free(r);
    /* over rates, grouped by le */
    N *rq = CALL(
        PQL_FN_HISTOGRAM_QUANTILE, 2, num(0.5),
        agg(PQL_AGG_SUM, CALL(PQL_FN_RATE, 1, mat(sel("lat_bucket", ""), MIN)), NULL, false, "le"));
    r = inst(f, rq, AT(300));
    expect(r, "{}", 0.4);
    pql_result_free(r);
    /* Without +Inf bucket: NaN. */
    r = inst(f, CALL(PQL_FN_HISTOGRAM_QUANTILE, 2, num(0.5), sel("lat_bucket", "le!=+Inf")),
             AT(150));
    expect(r, "{job=\"api\"}", NAN);
    pql_result_free(r);
    tree_end();
}

/* ---- functions over time -------------------------------------------------------------------- */

static void test_over_time(void **state)
{
    fx_t *f = *state;
    tree_begin();
    /* reqs c over [240, 300]: 16, 17, 18, 19, 20 */
    N *m = mat(sel("reqs", "instance=c"), MIN);
    const char *c = "{instance=\"c\",job=\"db\"}";
    struct {
        pql_fn_t fn;
        double want;
    } cases[] = {
        {PQL_FN_AVG_OVER_TIME, 18},
        {PQL_FN_SUM_OVER_TIME, 90},
        {PQL_FN_COUNT_OVER_TIME, 5},
        {PQL_FN_MIN_OVER_TIME, 16},
        {PQL_FN_MAX_OVER_TIME, 20},
        {PQL_FN_STDVAR_OVER_TIME, 2},
        {PQL_FN_STDDEV_OVER_TIME, sqrt(2)},
        {PQL_FN_CHANGES, 4},
        {PQL_FN_RESETS, 0},
        {PQL_FN_PRESENT_OVER_TIME, 1},
        {PQL_FN_DERIV, 1.0 / 15},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pql_result_t *r = inst(f, CALL(cases[i].fn, 1, m), AT(300));
        expect(r, c, cases[i].want);
        pql_result_free(r);
    }
    pql_result_t *r = inst(f, CALL(PQL_FN_LAST_OVER_TIME, 1, m), AT(300));
    expect(r, "{__name__=\"reqs\",instance=\"c\",job=\"db\"}", 20);
    pql_result_free(r);
    r = inst(f, CALL(PQL_FN_QUANTILE_OVER_TIME, 2, num(0.25), m), AT(300));
    expect(r, c, 17);
    pql_result_free(r);
    /* predict_linear: slope 1/15 per s, intercept at t=300 is 20: 20 + 60/15 */
    r = inst(f, CALL(PQL_FN_PREDICT_LINEAR, 2, m, num(60)), AT(300));
    expect(r, c, 24);
    pql_result_free(r);
    r = inst(f, CALL(PQL_FN_RESETS, 1, mat(sel("reqs", "instance=b"), 10 * MIN)), AT(600));
    expect(r, "{instance=\"b\",job=\"api\"}", 1);
    pql_result_free(r);
    /* holt_winters on a line gives the line's last value */
    r = inst(f, CALL(PQL_FN_HOLT_WINTERS, 3, m, num(0.5), num(0.5)), AT(300));
    expect(r, c, 20);
    pql_result_free(r);
    inst_err(f, CALL(PQL_FN_HOLT_WINTERS, 3, m, num(1), num(0.5)), AT(300),
             "invalid smoothing factor. Expected: 0 < sf < 1, got: 1.000000");
    /* absent_over_time */
    r = inst(f, CALL(PQL_FN_ABSENT_OVER_TIME, 1, mat(sel("nope", "job=x,k=~y"), MIN)), AT(300));
    expect(r, "{job=\"x\"}", 1);
    pql_result_free(r);
    r = inst(f, CALL(PQL_FN_ABSENT_OVER_TIME, 1, m), AT(300));
    assert_int_equal(r->nseries, 0);
    pql_result_free(r);
    tree_end();
}

/* ---- subqueries ----------------------------------------------------------------------------- */

static void test_subquery(void **state)
{
    fx_t *f = *state;
    tree_begin();
    /* max_over_time(rate(reqs{instance="b"}[1m])[5m:1m]) at 420: steps aligned to minutes:
     * 120..420 (inclusive). rate b: 1/3 per s before the reset. */
    N *sq = subq(CALL(PQL_FN_RATE, 1, mat(sel("reqs", "instance=b"), MIN)), 5 * MIN, MIN);
    pql_result_t *r = inst(f, sq, AT(430));
    /* Steps at 180, 240, ..., 420 (130 is the window start, 120 < 130). */
    assert_int_equal(r->type, PQL_TYPE_MATRIX);
    assert_int_equal(r->nseries, 1);
    assert_int_equal(r->series[0].n, 5);
    assert_int_equal(r->series[0].ts[0], AT(180));
    near(r->series[0].v[0], 20.0 / 60);
    pql_result_free(r);
    N *mx = CALL(PQL_FN_MAX_OVER_TIME, 1,
                 subq(CALL(PQL_FN_RATE, 1, mat(sel("reqs", "instance=a"), MIN)), 5 * MIN, MIN));
    r = inst(f, mx, AT(430));
    expect(r, "{instance=\"a\",job=\"api\"}", 40.0 / 60);
    pql_result_free(r);
    /* sum_over_time of a subquery of a selector: values at 0, 60, ..., 300 of instance c:
     * 0 + 4 + 8 + 12 + 16 + 20 */
    r = inst(f, CALL(PQL_FN_SUM_OVER_TIME, 1, subq(sel("reqs", "instance=c"), 5 * MIN, MIN)),
             AT(300));
    expect(r, "{instance=\"c\",job=\"db\"}", 60);
    pql_result_free(r);
    /* with an offset */
    r = inst(
        f,
        CALL(PQL_FN_SUM_OVER_TIME, 1, offset(subq(sel("reqs", "instance=c"), 2 * MIN, MIN), MIN)),
        AT(300));
    expect(r, "{instance=\"c\",job=\"db\"}", 8 + 12 + 16);
    pql_result_free(r);
    tree_end();
}

/* ---- instant functions ---------------------------------------------------------------------- */

static void test_functions(void **state)
{
    fx_t *f = *state;
    tree_begin();
    N *g = sel("gauge", "");
    pql_result_t *r = inst(f, CALL(PQL_FN_ABS, 1, g), AT(0));
    expect(r, "{job=\"g\",k=\"y\"}", 2);
    pql_result_free(r);
    r = inst(f, CALL(PQL_FN_CLAMP, 3, g, num(0), num(2.5)), AT(0));
    expect(r, "{job=\"g\",k=\"x\"}", 2.5);
    expect(r, "{job=\"g\",k=\"y\"}", 0);
    pql_result_free(r);
    r = inst(f, CALL(PQL_FN_CLAMP, 3, g, num(5), num(2.5)), AT(0));
    assert_int_equal(r->nseries, 0);
    pql_result_free(r);
    r = inst(f, CALL(PQL_FN_CLAMP_MIN, 2, g, num(0)), AT(0));
    expect(r, "{job=\"g\",k=\"y\"}", 0);
    pql_result_free(r);
    r = inst(f, CALL(PQL_FN_CLAMP_MAX, 2, g, num(0)), AT(0));
    expect(r, "{job=\"g\",k=\"x\"}", 0);
    pql_result_free(r);
    r = inst(f, CALL(PQL_FN_SGN, 1, g), AT(0));
    expect(r, "{job=\"g\",k=\"y\"}", -1);
    pql_result_free(r);
    r = inst(f, CALL(PQL_FN_ROUND, 2, bin(PQL_OP_DIV, g, num(4)), num(0.5)), AT(0));
    /* 0.75 -> 1 (ties up), -0.5 -> -0.5 */
    expect(r, "{job=\"g\",k=\"x\"}", 1);
    expect(r, "{job=\"g\",k=\"y\"}", -0.5);
    pql_result_free(r);
    r = inst(f, CALL(PQL_FN_ROUND, 1, bin(PQL_OP_DIV, g, num(-4))), AT(0));
    /* -0.75 -> -1, 0.5 -> 1 */
    expect(r, "{job=\"g\",k=\"x\"}", -1);
    expect(r, "{job=\"g\",k=\"y\"}", 1);
    pql_result_free(r);
    r = inst(f, CALL(PQL_FN_SQRT, 1, g), AT(0));
    expect(r, "{job=\"g\",k=\"y\"}", NAN);
    pql_result_free(r);
    r = inst(f, CALL(PQL_FN_LOG2, 1, g), AT(60));
    expect(r, "{job=\"g\",k=\"y\"}", 2);
    pql_result_free(r);
    r = inst(f, CALL(PQL_FN_LOG10, 1, bin(PQL_OP_MUL, g, num(25))), AT(60));
    expect(r, "{job=\"g\",k=\"y\"}", 2);
    pql_result_free(r);
    r = inst(f, CALL(PQL_FN_EXP, 1, CALL(PQL_FN_LN, 1, g)), AT(60));
    expect(r, "{job=\"g\",k=\"x\"}", 7);
    pql_result_free(r);
    r = inst(f, CALL(PQL_FN_DEG, 1, CALL(PQL_FN_RAD, 1, g)), AT(60));
    expect(r, "{job=\"g\",k=\"x\"}", 7);
    pql_result_free(r);
    r = inst(f, CALL(PQL_FN_TIMESTAMP, 1, g), AT(100));
    expect(r, "{job=\"g\",k=\"x\"}", (double)AT(60) / 1000);
    pql_result_free(r);
    r = inst(f, callv(PQL_FN_SCALAR, PQL_TYPE_SCALAR, 1, sel("gauge", "k=x")), AT(60));
    assert_int_equal(r->type, PQL_TYPE_SCALAR);
    near(r->scalar_v, 7);
    pql_result_free(r);
    r = inst(f, callv(PQL_FN_SCALAR, PQL_TYPE_SCALAR, 1, g), AT(60));
    near(r->scalar_v, NAN);
    pql_result_free(r);
    r = inst(f, CALL(PQL_FN_VECTOR, 1, callv(PQL_FN_TIME, PQL_TYPE_SCALAR, 0)), AT(60));
    expect(r, "{}", (double)AT(60) / 1000);
    pql_result_free(r);
    r = inst(f, CALL(PQL_FN_SORT_DESC, 1, g), AT(60));
    near(r->series[0].v[0], 7);
    near(r->series[1].v[0], 4);
    pql_result_free(r);
    r = inst(f, CALL(PQL_FN_SORT, 1, g), AT(60));
    near(r->series[0].v[0], 4);
    pql_result_free(r);
    /* absent: labels from the equality matchers */
    r = inst(f, CALL(PQL_FN_ABSENT, 1, sel("nope", "job=x,job=y,k=z,m=~.*")), AT(60));
    expect(r, "{k=\"z\"}", 1);
    pql_result_free(r);
    r = inst(f, CALL(PQL_FN_ABSENT, 1, g), AT(60));
    assert_int_equal(r->nseries, 0);
    pql_result_free(r);
    /* dates: T0 is 2023-11-14T22:14:00Z */
    struct {
        pql_fn_t fn;
        double want;
    } d[] = {{PQL_FN_YEAR, 2023},     {PQL_FN_MONTH, 11},        {PQL_FN_DAY_OF_MONTH, 14},
             {PQL_FN_DAY_OF_WEEK, 2}, {PQL_FN_DAY_OF_YEAR, 318}, {PQL_FN_HOUR, 22},
             {PQL_FN_MINUTE, 14},     {PQL_FN_DAYS_IN_MONTH, 30}};
    for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++) {
        r = inst(f, CALL(d[i].fn, 0), AT(0));
        expect(r, "{}", d[i].want);
        pql_result_free(r);
    }
    r = inst(f, CALL(PQL_FN_DAYS_IN_MONTH, 1, CALL(PQL_FN_VECTOR, 1, num(951782400))), AT(0));
    expect(r, "{}", 29); /* 2000-02-29 */
    pql_result_free(r);
    /* label_replace / label_join */
    r = inst(
        f, CALL(PQL_FN_LABEL_REPLACE, 5, g, str("dst"), str("$1-${2}x$$"), str("k"), str("(.)()")),
        AT(60));
    expect(r, "{__name__=\"gauge\",dst=\"x-x$\",job=\"g\",k=\"x\"}", 7);
    pql_result_free(r);
    /* no match: unchanged; empty replacement drops the label */
    r = inst(f, CALL(PQL_FN_LABEL_REPLACE, 5, g, str("job"), str(""), str("k"), str("x")), AT(60));
    expect(r, "{__name__=\"gauge\",k=\"x\"}", 7);
    expect(r, "{__name__=\"gauge\",job=\"g\",k=\"y\"}", 4);
    pql_result_free(r);
    inst_err(f, CALL(PQL_FN_LABEL_REPLACE, 5, g, str("a-b"), str(""), str("k"), str("x")), AT(60),
             "invalid destination label name in label_replace(): a-b");
    inst_err(f, CALL(PQL_FN_LABEL_REPLACE, 5, g, str("d"), str(""), str("k"), str("(")), AT(60),
             "invalid regular expression in label_replace(): (");
    /* making the two series identical is an error */
    inst_err(f, CALL(PQL_FN_LABEL_REPLACE, 5, g, str("k"), str("z"), str("k"), str(".*")), AT(60),
             "vector cannot contain metrics with the same labelset");
    r = inst(f, CALL(PQL_FN_LABEL_JOIN, 5, g, str("d"), str("/"), str("job"), str("k")), AT(60));
    expect(r, "{__name__=\"gauge\",d=\"g/x\",job=\"g\",k=\"x\"}", 7);
    pql_result_free(r);
    r = inst(f, CALL(PQL_FN_HISTOGRAM_COUNT, 1, g), AT(60));
    assert_int_equal(r->nseries, 0);
    pql_result_free(r);
    tree_end();
}

static void test_errors_and_limits(void **state)
{
    fx_t *f = *state;
    tree_begin();
    /* a range function over series that differ only by name */
    inst_err(f, CALL(PQL_FN_RATE, 1, mat(sel("", "__name__=~reqs|other,instance=c"), MIN)), AT(300),
             "vector cannot contain metrics with the same labelset");
    /* ... which is fine for last_over_time, which keeps the name */
    pql_result_t *r = inst(
        f, CALL(PQL_FN_LAST_OVER_TIME, 1, mat(sel("", "__name__=~reqs|other,instance=c"), MIN)),
        AT(300));
    assert_int_equal(r->nseries, 2);
    pql_result_free(r);
    pql_options_t o = f->o;
    o.max_samples = 100;
    pql_engine_t *small;
    assert_int_equal(pql_engine_new(f->s, &o, &small), 0);
    tree->root = sel("reqs", "");
    pql_error_t err;
    r = NULL;
    assert_int_equal(pql_eval_range(small, tree, AT(0), AT(600), 15 * SEC, 0, &r, &err), -1);
    assert_int_equal(err.type, PQL_ERR_EXECUTION);
    assert_string_equal(err.msg,
                        "query processing would load too many samples into memory in query "
                        "execution");
    /* 3 series x 11 steps fit. */
    assert_int_equal(pql_eval_range(small, tree, AT(0), AT(600), MIN, 0, &r, &err), 0);
    assert_int_equal(r->nseries, 3);
    pql_result_free(r);
    pql_engine_free(small);
    /* A deadline already past: the evaluator notices within a few dozen steps. */
    o = f->o;
    o.timeout_ms = -1000;
    pql_engine_t *late;
    assert_int_equal(pql_engine_new(f->s, &o, &late), 0);
    tree->root = CALL(PQL_FN_RATE, 1, mat(sel("reqs", ""), MIN));
    assert_int_equal(pql_eval_range(late, tree, AT(0), AT(600), SEC, 0, &r, &err), -1);
    assert_int_equal(err.type, PQL_ERR_TIMEOUT);
    assert_string_equal(err.msg, "query timed out in query execution");
    assert_null(r);
    pql_engine_free(late);
    tree_end();
}

/* ---- golden queries ------------------------------------------------------------------------
 *
 * Parsed queries against the same data, with the answers of a real Prometheus 2.42 loaded with
 * these samples (promtool tsdb create-blocks-from openmetrics) -- except the staleness marker,
 * which OpenMetrics cannot carry, so no query here touches `gauge`. Results are compared in a
 * canonical form: series sorted by labels (kept in result order for sort/topk/bottomk), values
 * equal to 1e-12 relative (transcendental functions differ from Go's in the last bits).
 */

typedef struct {
    bool range;
    const char *q;
    int64_t t, end, step; /* ms after T0 */
    bool ordered;
    const char *want;
} golden_t;

static const golden_t golden[] = {
    {false, "reqs", 100000, 0, 0, false,
     "vector {__name__=\"reqs\",instance=\"a\",job=\"api\"} 60; "
     "{__name__=\"reqs\",instance=\"b\",job=\"api\"} 30; "
     "{__name__=\"reqs\",instance=\"c\",job=\"db\"} 6"},
    {false, "reqs offset 1m", 100000, 0, 0, false,
     "vector {__name__=\"reqs\",instance=\"a\",job=\"api\"} 20; "
     "{__name__=\"reqs\",instance=\"b\",job=\"api\"} 10; "
     "{__name__=\"reqs\",instance=\"c\",job=\"db\"} 2"},
    {false, "reqs offset -30s", 100000, 0, 0, false,
     "vector {__name__=\"reqs\",instance=\"a\",job=\"api\"} 80; "
     "{__name__=\"reqs\",instance=\"b\",job=\"api\"} 40; "
     "{__name__=\"reqs\",instance=\"c\",job=\"db\"} 8"},
    {false, "reqs @ 150", 3000000, 0, 0, false, "vector"},
    {false, "reqs{instance=\"a\"}", 900000, 0, 0, false,
     "vector {__name__=\"reqs\",instance=\"a\",job=\"api\"} 400"},
    {false, "reqs[1m]", 300000, 0, 0, false,
     "matrix {__name__=\"reqs\",instance=\"a\",job=\"api\"} 240000:160 255000:170 270000:180 "
     "285000:190 300000:200; {__name__=\"reqs\",instance=\"b\",job=\"api\"} 240000:80 255000:85 "
     "270000:90 285000:95 300000:0; {__name__=\"reqs\",instance=\"c\",job=\"db\"} 240000:16 "
     "255000:17 270000:18 285000:19 300000:20"},
    {false, "rate(reqs[1m])", 307000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 0.66666666666666663; {instance=\"b\",job=\"api\"} "
     "0.22222222222222221; {instance=\"c\",job=\"db\"} 0.066666666666666652"},
    {false, "increase(reqs[90s])", 345000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 60; {instance=\"b\",job=\"api\"} 25; "
     "{instance=\"c\",job=\"db\"} 6"},
    {false, "delta(reqs[90s])", 345000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 60; {instance=\"b\",job=\"api\"} -70; "
     "{instance=\"c\",job=\"db\"} 6"},
    {false, "increase(zp[1m])", 50000, 0, 0, false, "vector {job=\"z\"} 3.833333333333333"},
    {false, "rate(reqs[5m])", 700000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 0.46111111111111108; {instance=\"b\",job=\"api\"} "
     "0.23055555555555554; {instance=\"c\",job=\"db\"} 0.04611111111111111"},
    {false, "irate(reqs[1m])", 300000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 0.66666666666666663; {instance=\"b\",job=\"api\"} 0; "
     "{instance=\"c\",job=\"db\"} 0.066666666666666666"},
    {false, "idelta(reqs[1m])", 300000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 10; {instance=\"b\",job=\"api\"} -95; "
     "{instance=\"c\",job=\"db\"} 1"},
    {false, "deriv(reqs[2m])", 300000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 0.66666666666666663; {instance=\"b\",job=\"api\"} "
     "-0.1111111111111111; {instance=\"c\",job=\"db\"} 0.066666666666666666"},
    {false, "predict_linear(reqs[2m], 600)", 300000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 600; {instance=\"b\",job=\"api\"} -4.4444444444444358; "
     "{instance=\"c\",job=\"db\"} 60"},
    {false, "holt_winters(reqs[2m], 0.1, 0.9)", 300000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 200; {instance=\"b\",job=\"api\"} 90; "
     "{instance=\"c\",job=\"db\"} 20.000000000000007"},
    {false, "holt_winters(reqs[2m], 1, 0.9)", 300000, 0, 0, false,
     "error: invalid smoothing factor. Expected: 0 < sf < 1, got: 1.000000"},
    {false, "holt_winters(reqs[2m], 0.5, 0)", 300000, 0, 0, false,
     "error: invalid trend factor. Expected: 0 < tf < 1, got: 0.000000"},
    {false, "avg_over_time(reqs[2m])", 300000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 160; {instance=\"b\",job=\"api\"} 68.888888888888886; "
     "{instance=\"c\",job=\"db\"} 16"},
    {false, "sum_over_time(zp[3m])", 300000, 0, 0, false, "vector {job=\"z\"} 188.5"},
    {false, "count_over_time(reqs[2m])", 300000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 9; {instance=\"b\",job=\"api\"} 9; "
     "{instance=\"c\",job=\"db\"} 9"},
    {false, "min_over_time(reqs[2m])", 300000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 120; {instance=\"b\",job=\"api\"} 0; "
     "{instance=\"c\",job=\"db\"} 12"},
    {false, "max_over_time(reqs[2m])", 300000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 200; {instance=\"b\",job=\"api\"} 95; "
     "{instance=\"c\",job=\"db\"} 20"},
    {false, "stddev_over_time(reqs[2m])", 300000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 25.819888974716111; {instance=\"b\",job=\"api\"} "
     "26.643508462848441; {instance=\"c\",job=\"db\"} 2.5819888974716112"},
    {false, "stdvar_over_time(zp[3m])", 300000, 0, 0, false, "vector {job=\"z\"} 14"},
    {false, "last_over_time(reqs[2m])", 300000, 0, 0, false,
     "vector {__name__=\"reqs\",instance=\"a\",job=\"api\"} 200; "
     "{__name__=\"reqs\",instance=\"b\",job=\"api\"} 0; "
     "{__name__=\"reqs\",instance=\"c\",job=\"db\"} 20"},
    {false, "present_over_time(reqs[2m])", 300000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 1; {instance=\"b\",job=\"api\"} 1; "
     "{instance=\"c\",job=\"db\"} 1"},
    {false, "quantile_over_time(0.3, reqs[2m])", 300000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 144; {instance=\"b\",job=\"api\"} 67; "
     "{instance=\"c\",job=\"db\"} 14.4"},
    {false, "quantile_over_time(-1, reqs[2m])", 300000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} -Inf; {instance=\"b\",job=\"api\"} -Inf; "
     "{instance=\"c\",job=\"db\"} -Inf"},
    {false, "changes(reqs[5m])", 300000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 20; {instance=\"b\",job=\"api\"} 20; "
     "{instance=\"c\",job=\"db\"} 20"},
    {false, "resets(reqs[5m])", 450000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 0; {instance=\"b\",job=\"api\"} 1; "
     "{instance=\"c\",job=\"db\"} 0"},
    {false, "absent_over_time(nope{a=\"b\"}[5m])", 300000, 0, 0, false, "vector {a=\"b\"} 1"},
    {false, "absent(nope{a=\"b\",c=~\"d\",e=\"f\",e=\"g\"})", 300000, 0, 0, false,
     "vector {a=\"b\"} 1"},
    {false, "absent(reqs)", 300000, 0, 0, false, "vector"},
    {false, "abs(-reqs)", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 60; {instance=\"b\",job=\"api\"} 30; "
     "{instance=\"c\",job=\"db\"} 6"},
    {false, "ceil(reqs / 7)", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 9; {instance=\"b\",job=\"api\"} 5; "
     "{instance=\"c\",job=\"db\"} 1"},
    {false, "floor(reqs / 7)", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 8; {instance=\"b\",job=\"api\"} 4; "
     "{instance=\"c\",job=\"db\"} 0"},
    {false, "exp(reqs / 100)", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 1.8221188003905089; {instance=\"b\",job=\"api\"} "
     "1.3498588075760032; {instance=\"c\",job=\"db\"} 1.0618365465453596"},
    {false, "sqrt(reqs)", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 7.745966692414834; {instance=\"b\",job=\"api\"} "
     "5.4772255750516612; {instance=\"c\",job=\"db\"} 2.4494897427831779"},
    {false, "ln(reqs)", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 4.0943445622221004; {instance=\"b\",job=\"api\"} "
     "3.4011973816621555; {instance=\"c\",job=\"db\"} 1.791759469228055"},
    {false, "log2(reqs)", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 5.9068905956085187; {instance=\"b\",job=\"api\"} "
     "4.9068905956085187; {instance=\"c\",job=\"db\"} 2.5849625007211561"},
    {false, "log10(reqs)", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 1.7781512503836434; {instance=\"b\",job=\"api\"} "
     "1.4771212547196624; {instance=\"c\",job=\"db\"} 0.77815125038364363"},
    {false, "sin(reqs)", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} -0.30481062110221668; {instance=\"b\",job=\"api\"} "
     "-0.98803162409286183; {instance=\"c\",job=\"db\"} -0.27941549819892586"},
    {false, "cos(reqs)", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} -0.95241298041515632; {instance=\"b\",job=\"api\"} "
     "0.15425144988758405; {instance=\"c\",job=\"db\"} 0.96017028665036608"},
    {false, "tan(reqs)", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 0.32004038937956297; {instance=\"b\",job=\"api\"} "
     "-6.4053311966462756; {instance=\"c\",job=\"db\"} -0.29100619138474915"},
    {false, "asin(reqs / 100)", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 0.64350110879328426; {instance=\"b\",job=\"api\"} "
     "0.30469265401539752; {instance=\"c\",job=\"db\"} 0.060036058445278415"},
    {false, "acos(reqs / 100)", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 0.9272952180016123; {instance=\"b\",job=\"api\"} "
     "1.266103672779499; {instance=\"c\",job=\"db\"} 1.5107602683496182"},
    {false, "atan(reqs)", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 1.5541312030809558; {instance=\"b\",job=\"api\"} "
     "1.5374753309166493; {instance=\"c\",job=\"db\"} 1.4056476493802696"},
    {false, "sinh(reqs / 10)", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 201.71315737027922; {instance=\"b\",job=\"api\"} "
     "10.017874927409903; {instance=\"c\",job=\"db\"} 0.63665358214824119"},
    {false, "cosh(reqs / 10)", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 201.71563612245589; {instance=\"b\",job=\"api\"} "
     "10.067661995777765; {instance=\"c\",job=\"db\"} 1.1854652182422676"},
    {false, "tanh(reqs / 10)", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 0.99998771165079559; {instance=\"b\",job=\"api\"} "
     "0.99505475368673046; {instance=\"c\",job=\"db\"} 0.5370495669980353"},
    {false, "asinh(reqs)", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 4.7875611799938103; {instance=\"b\",job=\"api\"} "
     "4.0946222243305304; {instance=\"c\",job=\"db\"} 2.4917798526449122"},
    {false, "acosh(reqs)", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 4.7874222911026889; {instance=\"b\",job=\"api\"} "
     "4.0940666686320855; {instance=\"c\",job=\"db\"} 2.4778887302884751"},
    {false, "atanh(reqs / 100)", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 0.69314718055994529; {instance=\"b\",job=\"api\"} "
     "0.30951960420311175; {instance=\"c\",job=\"db\"} 0.060072155921031621"},
    {false, "deg(reqs)", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 3437.7467707849396; {instance=\"b\",job=\"api\"} "
     "1718.8733853924698; {instance=\"c\",job=\"db\"} 343.77467707849394"},
    {false, "rad(reqs)", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 1.0471975511965976; {instance=\"b\",job=\"api\"} "
     "0.52359877559829882; {instance=\"c\",job=\"db\"} 0.10471975511965977"},
    {false, "sgn(reqs - 10)", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 1; {instance=\"b\",job=\"api\"} 1; "
     "{instance=\"c\",job=\"db\"} -1"},
    {false, "clamp(reqs, 10, 40)", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 40; {instance=\"b\",job=\"api\"} 30; "
     "{instance=\"c\",job=\"db\"} 10"},
    {false, "clamp(reqs, 40, 10)", 100000, 0, 0, false, "vector"},
    {false, "clamp_min(reqs, 20)", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 60; {instance=\"b\",job=\"api\"} 30; "
     "{instance=\"c\",job=\"db\"} 20"},
    {false, "clamp_max(reqs, 20)", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 20; {instance=\"b\",job=\"api\"} 20; "
     "{instance=\"c\",job=\"db\"} 6"},
    {false, "round(reqs / 7)", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 9; {instance=\"b\",job=\"api\"} 4; "
     "{instance=\"c\",job=\"db\"} 1"},
    {false, "round(reqs / 7, 0.25)", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 8.5; {instance=\"b\",job=\"api\"} 4.25; "
     "{instance=\"c\",job=\"db\"} 0.75"},
    {false, "round(-reqs / 4, 5)", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} -15; {instance=\"b\",job=\"api\"} -5; "
     "{instance=\"c\",job=\"db\"} 0"},
    {false, "scalar(reqs{instance=\"a\"})", 100000, 0, 0, false, "scalar 60"},
    {false, "scalar(reqs)", 100000, 0, 0, false, "scalar NaN"},
    {false, "vector(pi())", 100000, 0, 0, false, "vector {} 3.1415926535897931"},
    {false, "time()", 100000, 0, 0, false, "scalar 1700000140"},
    {false, "timestamp(reqs)", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 1700000130; {instance=\"b\",job=\"api\"} 1700000130; "
     "{instance=\"c\",job=\"db\"} 1700000130"},
    {false, "timestamp(reqs offset 20s)", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 1700000115; {instance=\"b\",job=\"api\"} 1700000115; "
     "{instance=\"c\",job=\"db\"} 1700000115"},
    {false, "timestamp(sum(reqs))", 100000, 0, 0, false, "vector {} 1700000140"},
    {false, "sort(reqs)", 100000, 0, 0, true,
     "vector {__name__=\"reqs\",instance=\"c\",job=\"db\"} 6; "
     "{__name__=\"reqs\",instance=\"b\",job=\"api\"} 30; "
     "{__name__=\"reqs\",instance=\"a\",job=\"api\"} 60"},
    {false, "sort_desc(reqs)", 100000, 0, 0, true,
     "vector {__name__=\"reqs\",instance=\"a\",job=\"api\"} 60; "
     "{__name__=\"reqs\",instance=\"b\",job=\"api\"} 30; "
     "{__name__=\"reqs\",instance=\"c\",job=\"db\"} 6"},
    {false, "sort(reqs / 0 - reqs / 0 or lat_bucket{le=\"1\"})", 100000, 0, 0, true,
     "vector {__name__=\"lat_bucket\",job=\"api\",le=\"1\"} 24; {instance=\"c\",job=\"db\"} NaN; "
     "{instance=\"b\",job=\"api\"} NaN; {instance=\"a\",job=\"api\"} NaN"},
    {false, "year()", 100000, 0, 0, false, "vector {} 2023"},
    {false, "month()", 100000, 0, 0, false, "vector {} 11"},
    {false, "day_of_month()", 100000, 0, 0, false, "vector {} 14"},
    {false, "day_of_week()", 100000, 0, 0, false, "vector {} 2"},
    {false, "day_of_year()", 100000, 0, 0, false, "vector {} 318"},
    {false, "days_in_month()", 100000, 0, 0, false, "vector {} 30"},
    {false, "hour()", 100000, 0, 0, false, "vector {} 22"},
    {false, "minute()", 100000, 0, 0, false, "vector {} 15"},
    {false, "day_of_week(vector(0))", 100000, 0, 0, false, "vector {} 4"},
    {false, "year(vector(NaN))", 100000, 0, 0, false, "vector {} 292277026596"},
    {false, "month(vector(NaN))", 100000, 0, 0, false, "vector {} 12"},
    {false, "day_of_month(vector(NaN))", 100000, 0, 0, false, "vector {} 4"},
    {false, "hour(vector(-1))", 100000, 0, 0, false, "vector {} 23"},
    {false, "days_in_month(vector(951782400))", 100000, 0, 0, false, "vector {} 29"},
    {false, "histogram_quantile(0.5, lat_bucket)", 100000, 0, 0, false,
     "vector {job=\"api\"} 0.40000000000000002"},
    {false, "histogram_quantile(0.99, lat_bucket)", 100000, 0, 0, false, "vector {job=\"api\"} 1"},
    {false, "histogram_quantile(0.01, lat_bucket)", 100000, 0, 0, false,
     "vector {job=\"api\"} 0.0050000000000000001"},
    {false, "histogram_quantile(1.01, lat_bucket)", 100000, 0, 0, false,
     "vector {job=\"api\"} +Inf"},
    {false, "histogram_quantile(-0.01, lat_bucket)", 100000, 0, 0, false,
     "vector {job=\"api\"} -Inf"},
    {false, "histogram_quantile(0.5, lat_bucket)", 0, 0, 0, false, "vector {job=\"api\"} NaN"},
    {false, "histogram_quantile(0.75, sum by (le) (rate(lat_bucket[1m])))", 300000, 0, 0, false,
     "vector {} 0.875"},
    {false, "histogram_quantile(0.5, lat_bucket{le!=\"+Inf\"})", 100000, 0, 0, false,
     "vector {job=\"api\"} NaN"},
    {false, "histogram_quantile(0.5, label_replace(lat_bucket, \"le\", \"0.50\", \"le\", \"0.5\"))",
     100000, 0, 0, false, "vector {job=\"api\"} 0.40000000000000002"},
    {false, "histogram_quantile(0.5, label_replace(lat_bucket, \"le\", \"0.5\", \"le\", \"1\"))",
     100000, 0, 0, false, "error: vector cannot contain metrics with the same labelset"},
    {false, "histogram_quantile(0.5, label_replace(lat_bucket, \"le\", \"junk\", \"le\", \"0.1\"))",
     100000, 0, 0, false, "vector {job=\"api\"} 0.41666666666666669"},
    {false, "histogram_count(reqs)", 100000, 0, 0, false, "vector"},
    {false, "histogram_sum(reqs)", 100000, 0, 0, false, "vector"},
    {false, "histogram_fraction(0, 1, reqs)", 100000, 0, 0, false, "vector"},
    {false, "label_replace(reqs, \"dst\", \"$1-${1}x$$z$2\", \"instance\", \"(.)\")", 100000, 0, 0,
     false,
     "vector {__name__=\"reqs\",dst=\"a-ax$z\",instance=\"a\",job=\"api\"} 60; "
     "{__name__=\"reqs\",dst=\"b-bx$z\",instance=\"b\",job=\"api\"} 30; "
     "{__name__=\"reqs\",dst=\"c-cx$z\",instance=\"c\",job=\"db\"} 6"},
    {false, "label_replace(reqs, \"job\", \"\", \"instance\", \"a\")", 100000, 0, 0, false,
     "vector {__name__=\"reqs\",instance=\"a\"} 60; {__name__=\"reqs\",instance=\"b\",job=\"api\"} "
     "30; {__name__=\"reqs\",instance=\"c\",job=\"db\"} 6"},
    {false, "label_replace(reqs, \"x\", \"$name\", \"job\", \"(?P<name>a)pi\")", 100000, 0, 0,
     false,
     "vector {__name__=\"reqs\",instance=\"a\",job=\"api\",x=\"a\"} 60; "
     "{__name__=\"reqs\",instance=\"b\",job=\"api\",x=\"a\"} 30; "
     "{__name__=\"reqs\",instance=\"c\",job=\"db\"} 6"},
    {false, "label_replace(reqs, \"x\", \"$1\", \"job\", \"ap\")", 100000, 0, 0, false,
     "vector {__name__=\"reqs\",instance=\"a\",job=\"api\"} 60; "
     "{__name__=\"reqs\",instance=\"b\",job=\"api\"} 30; "
     "{__name__=\"reqs\",instance=\"c\",job=\"db\"} 6"},
    {false, "label_join(reqs, \"d\", \",\", \"instance\", \"nope\", \"job\")", 100000, 0, 0, false,
     "vector {__name__=\"reqs\",d=\"a,,api\",instance=\"a\",job=\"api\"} 60; "
     "{__name__=\"reqs\",d=\"b,,api\",instance=\"b\",job=\"api\"} 30; "
     "{__name__=\"reqs\",d=\"c,,db\",instance=\"c\",job=\"db\"} 6"},
    {false, "label_join(reqs, \"__name__\", \"\", \"job\")", 100000, 0, 0, false,
     "vector {__name__=\"api\",instance=\"a\",job=\"api\"} 60; "
     "{__name__=\"api\",instance=\"b\",job=\"api\"} 30; "
     "{__name__=\"db\",instance=\"c\",job=\"db\"} 6"},
    {false, "sum(reqs)", 100000, 0, 0, false, "vector {} 96"},
    {false, "sum by (job) (reqs)", 100000, 0, 0, false, "vector {job=\"api\"} 90; {job=\"db\"} 6"},
    {false, "sum without (instance) (reqs)", 100000, 0, 0, false,
     "vector {job=\"api\"} 90; {job=\"db\"} 6"},
    {false, "sum by (__name__) (reqs)", 100000, 0, 0, false, "vector {__name__=\"reqs\"} 96"},
    {false, "avg by (job) (reqs)", 100000, 0, 0, false, "vector {job=\"api\"} 45; {job=\"db\"} 6"},
    {false, "count(reqs)", 100000, 0, 0, false, "vector {} 3"},
    {false, "min by (job) (reqs)", 100000, 0, 0, false, "vector {job=\"api\"} 30; {job=\"db\"} 6"},
    {false, "max(reqs)", 100000, 0, 0, false, "vector {} 60"},
    {false, "group without () (reqs)", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 1; {instance=\"b\",job=\"api\"} 1; "
     "{instance=\"c\",job=\"db\"} 1"},
    {false, "stddev(reqs)", 100000, 0, 0, false, "vector {} 22.090722034374522"},
    {false, "stdvar by (job) (reqs)", 100000, 0, 0, false,
     "vector {job=\"api\"} 225; {job=\"db\"} 0"},
    {false, "topk(2, reqs)", 100000, 0, 0, true,
     "vector {__name__=\"reqs\",instance=\"a\",job=\"api\"} 60; "
     "{__name__=\"reqs\",instance=\"b\",job=\"api\"} 30"},
    {false, "topk by (job) (1, reqs)", 100000, 0, 0, true,
     "vector {__name__=\"reqs\",instance=\"a\",job=\"api\"} 60; "
     "{__name__=\"reqs\",instance=\"c\",job=\"db\"} 6"},
    {false, "bottomk(2, reqs)", 100000, 0, 0, true,
     "vector {__name__=\"reqs\",instance=\"c\",job=\"db\"} 6; "
     "{__name__=\"reqs\",instance=\"b\",job=\"api\"} 30"},
    {false, "topk(0, reqs)", 100000, 0, 0, true, "vector"},
    {false, "topk(2, reqs / 0 - reqs / 0)", 100000, 0, 0, true,
     "vector {instance=\"a\",job=\"api\"} NaN; {instance=\"c\",job=\"db\"} NaN"},
    {false, "count_values(\"v\", reqs)", 100000, 0, 0, false,
     "vector {v=\"30\"} 1; {v=\"6\"} 1; {v=\"60\"} 1"},
    {false, "count_values by (job) (\"v\", reqs / 8)", 100000, 0, 0, false,
     "vector {job=\"api\",v=\"3.75\"} 1; {job=\"api\",v=\"7.5\"} 1; {job=\"db\",v=\"0.75\"} 1"},
    {false, "count_values without (instance) (\"job\", reqs)", 100000, 0, 0, false,
     "vector {job=\"30\"} 1; {job=\"6\"} 1; {job=\"60\"} 1"},
    {false, "quantile(0.5, reqs)", 100000, 0, 0, false, "vector {} 30"},
    {false, "quantile by (job) (0.9, reqs)", 100000, 0, 0, false,
     "vector {job=\"api\"} 57; {job=\"db\"} 6"},
    {false, "avg(reqs / 0)", 100000, 0, 0, false, "vector {} +Inf"},
    {false, "reqs + 1", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 61; {instance=\"b\",job=\"api\"} 31; "
     "{instance=\"c\",job=\"db\"} 7"},
    {false, "2 * reqs", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 120; {instance=\"b\",job=\"api\"} 60; "
     "{instance=\"c\",job=\"db\"} 12"},
    {false, "reqs / 0", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} +Inf; {instance=\"b\",job=\"api\"} +Inf; "
     "{instance=\"c\",job=\"db\"} +Inf"},
    {false, "reqs % 7", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 4; {instance=\"b\",job=\"api\"} 2; "
     "{instance=\"c\",job=\"db\"} 6"},
    {false, "reqs ^ 0.5", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 7.745966692414834; {instance=\"b\",job=\"api\"} "
     "5.4772255750516612; {instance=\"c\",job=\"db\"} 2.4494897427831779"},
    {false, "2 ^ reqs{instance=\"c\"}", 100000, 0, 0, false,
     "vector {instance=\"c\",job=\"db\"} 64"},
    {false, "reqs atan2 10", 100000, 0, 0, false,
     "vector {__name__=\"reqs\",instance=\"a\",job=\"api\"} 1.4056476493802696; "
     "{__name__=\"reqs\",instance=\"b\",job=\"api\"} 1.2490457723982544; "
     "{__name__=\"reqs\",instance=\"c\",job=\"db\"} 0.54041950027058416"},
    {false, "reqs > 20", 100000, 0, 0, false,
     "vector {__name__=\"reqs\",instance=\"a\",job=\"api\"} 60; "
     "{__name__=\"reqs\",instance=\"b\",job=\"api\"} 30"},
    {false, "20 < reqs", 100000, 0, 0, false,
     "vector {__name__=\"reqs\",instance=\"a\",job=\"api\"} 60; "
     "{__name__=\"reqs\",instance=\"b\",job=\"api\"} 30"},
    {false, "reqs > bool 20", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 1; {instance=\"b\",job=\"api\"} 1; "
     "{instance=\"c\",job=\"db\"} 0"},
    {false, "reqs == bool reqs", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 1; {instance=\"b\",job=\"api\"} 1; "
     "{instance=\"c\",job=\"db\"} 1"},
    {false, "reqs != reqs", 100000, 0, 0, false, "vector"},
    {false, "1 + 2 * 3 - 4 / 8", 100000, 0, 0, false, "scalar 6.5"},
    {false, "2 ^ 3 ^ 2", 100000, 0, 0, false, "scalar 512"},
    {false, "-7 % 3", 100000, 0, 0, false, "scalar -1"},
    {false, "1 >= bool 1", 100000, 0, 0, false, "scalar 1"},
    {false, "reqs - reqs offset 1m", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 40; {instance=\"b\",job=\"api\"} 20; "
     "{instance=\"c\",job=\"db\"} 4"},
    {false, "reqs / on (job) group_left sum by (job) (reqs)", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 0.66666666666666663; {instance=\"b\",job=\"api\"} "
     "0.33333333333333331; {instance=\"c\",job=\"db\"} 1"},
    {false, "sum by (job) (reqs) / on (job) group_right reqs", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 1.5; {instance=\"b\",job=\"api\"} 3; "
     "{instance=\"c\",job=\"db\"} 1"},
    {false, "reqs / on (job) sum by (job) (reqs)", 100000, 0, 0, false,
     "error: multiple matches for labels: many-to-one matching must be explicit "
     "(group_left/group_right)"},
    {false, "reqs / on (job) group_left reqs", 100000, 0, 0, false,
     "error: found duplicate series for the match group {job=\"api\"} on the right hand-side of "
     "the operation: [{__name__=\"reqs\", instance=\"b\", job=\"api\"}, {__name__=\"reqs\", "
     "instance=\"a\", job=\"api\"}];many-to-many matching not allowed: matching labels must be "
     "unique on one side"},
    {false, "reqs * on (job) group_left (le) lat_bucket{le=\"1\"}", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\",le=\"1\"} 1440; {instance=\"b\",job=\"api\",le=\"1\"} "
     "720"},
    {false, "reqs / ignoring (instance) group_left sum without (instance) (reqs)", 100000, 0, 0,
     false,
     "vector {instance=\"a\",job=\"api\"} 0.66666666666666663; {instance=\"b\",job=\"api\"} "
     "0.33333333333333331; {instance=\"c\",job=\"db\"} 1"},
    {false, "{__name__=~\"reqs|other\",instance=\"c\"} + on (job) group_left sum by (job) (reqs)",
     100000, 0, 0, false,
     "error: multiple matches for labels: grouping labels must ensure unique matches"},
    {false, "reqs > on (job) group_left sum by (job) (reqs) / 3", 100000, 0, 0, false,
     "vector {__name__=\"reqs\",instance=\"a\",job=\"api\"} 60; "
     "{__name__=\"reqs\",instance=\"c\",job=\"db\"} 6"},
    {false, "reqs and reqs{instance=\"a\"}", 100000, 0, 0, false,
     "vector {__name__=\"reqs\",instance=\"a\",job=\"api\"} 60"},
    {false, "reqs and on (job) reqs{instance=\"a\"}", 100000, 0, 0, false,
     "vector {__name__=\"reqs\",instance=\"a\",job=\"api\"} 60; "
     "{__name__=\"reqs\",instance=\"b\",job=\"api\"} 30"},
    {false, "reqs or zp", 100000, 0, 0, false,
     "vector {__name__=\"reqs\",instance=\"a\",job=\"api\"} 60; "
     "{__name__=\"reqs\",instance=\"b\",job=\"api\"} 30; "
     "{__name__=\"reqs\",instance=\"c\",job=\"db\"} 6; {__name__=\"zp\",job=\"z\"} 6.5"},
    {false, "reqs{job=\"db\"} or on (job) other", 100000, 0, 0, false,
     "vector {__name__=\"reqs\",instance=\"c\",job=\"db\"} 6"},
    {false, "reqs unless reqs{instance=\"b\"}", 100000, 0, 0, false,
     "vector {__name__=\"reqs\",instance=\"a\",job=\"api\"} 60; "
     "{__name__=\"reqs\",instance=\"c\",job=\"db\"} 6"},
    {false, "reqs unless on (job) reqs{instance=\"b\"}", 100000, 0, 0, false,
     "vector {__name__=\"reqs\",instance=\"c\",job=\"db\"} 6"},
    {false, "-reqs", 100000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} -60; {instance=\"b\",job=\"api\"} -30; "
     "{instance=\"c\",job=\"db\"} -6"},
    {false, "-{__name__=~\"reqs|other\",instance=\"c\"}", 100000, 0, 0, false,
     "error: vector cannot contain metrics with the same labelset"},
    {false, "rate({__name__=~\"reqs|other\",instance=\"c\"}[1m])", 300000, 0, 0, false,
     "error: vector cannot contain metrics with the same labelset"},
    {false, "last_over_time({__name__=~\"reqs|other\",instance=\"c\"}[1m])", 300000, 0, 0, false,
     "vector {__name__=\"other\",instance=\"c\",job=\"db\"} 40; "
     "{__name__=\"reqs\",instance=\"c\",job=\"db\"} 20"},
    {false, "label_replace(reqs, \"instance\", \"z\", \"\", \"\")", 100000, 0, 0, false,
     "error: vector cannot contain metrics with the same labelset"},
    {false, "rate(reqs{instance=\"b\"}[1m])[5m:1m]", 430000, 0, 0, false,
     "matrix {instance=\"b\",job=\"api\"} 180000:0.33333333333333331 240000:0.33333333333333331 "
     "300000:0.25 360000:0.33333333333333331 420000:0.33333333333333331"},
    {false, "max_over_time(rate(reqs[1m])[5m:1m])", 430000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 0.66666666666666663; {instance=\"b\",job=\"api\"} "
     "0.33333333333333331; {instance=\"c\",job=\"db\"} 0.066666666666666666"},
    {false, "max_over_time(rate(reqs[1m])[5m:])", 430000, 0, 0, false,
     "vector {instance=\"a\",job=\"api\"} 0.66666666666666663; {instance=\"b\",job=\"api\"} "
     "0.33333333333333331; {instance=\"c\",job=\"db\"} 0.066666666666666666"},
    {false, "sum_over_time(reqs{instance=\"c\"}[5m:1m])", 300000, 0, 0, false,
     "vector {instance=\"c\",job=\"db\"} 60"},
    {false, "sum_over_time(reqs{instance=\"c\"}[2m:1m] offset 1m)", 300000, 0, 0, false,
     "vector {instance=\"c\",job=\"db\"} 36"},
    {false, "sum_over_time(reqs{instance=\"c\"}[2m:1m] @ 200)", 300000, 0, 0, false, "vector"},
    {false, "min_over_time(sum(reqs)[3m:45s])", 300000, 0, 0, false, "vector {} 160"},
    {false, "deriv(sum(rate(reqs[1m]))[3m:30s])", 300000, 0, 0, false,
     "vector {} -0.00029761904761904765"},
    {false, "rate(reqs[1m] @ 200)", 300000, 0, 0, false, "vector"},
    {false, "rate(reqs[1m] offset 1m @ 200)", 300000, 0, 0, false, "vector"},
    {true, "reqs", 0, 600000, 30000, false,
     "matrix {__name__=\"reqs\",instance=\"a\",job=\"api\"} 0:0 30000:20 60000:40 90000:60 "
     "120000:80 150000:100 180000:120 210000:140 240000:160 270000:180 300000:200 330000:220 "
     "360000:240 390000:260 420000:280 450000:300 480000:320 510000:340 540000:360 570000:380 "
     "600000:400; {__name__=\"reqs\",instance=\"b\",job=\"api\"} 0:0 30000:10 60000:20 90000:30 "
     "120000:40 150000:50 180000:60 210000:70 240000:80 270000:90 300000:0 330000:10 360000:20 "
     "390000:30 420000:40 450000:50 480000:60 510000:70 540000:80 570000:90 600000:100; "
     "{__name__=\"reqs\",instance=\"c\",job=\"db\"} 0:0 30000:2 60000:4 90000:6 120000:8 150000:10 "
     "180000:12 210000:14 240000:16 270000:18 300000:20 330000:22 360000:24 390000:26 420000:28 "
     "450000:30 480000:32 510000:34 540000:36 570000:38 600000:40"},
    {true, "rate(reqs[1m])", 0, 600000, 45000, false,
     "matrix {instance=\"a\",job=\"api\"} 45000:0.5 90000:0.66666666666666663 "
     "135000:0.66666666666666663 180000:0.66666666666666663 225000:0.66666666666666663 "
     "270000:0.66666666666666663 315000:0.66666666666666663 360000:0.66666666666666663 "
     "405000:0.66666666666666663 450000:0.66666666666666663 495000:0.66666666666666663 "
     "540000:0.66666666666666663 585000:0.66666666666666663; {instance=\"b\",job=\"api\"} "
     "45000:0.25 90000:0.33333333333333331 135000:0.33333333333333331 180000:0.33333333333333331 "
     "225000:0.33333333333333331 270000:0.33333333333333331 315000:0.25 360000:0.33333333333333331 "
     "405000:0.33333333333333331 450000:0.33333333333333331 495000:0.33333333333333331 "
     "540000:0.33333333333333331 585000:0.33333333333333331; {instance=\"c\",job=\"db\"} "
     "45000:0.050000000000000003 90000:0.066666666666666666 135000:0.066666666666666666 "
     "180000:0.066666666666666666 225000:0.066666666666666666 270000:0.066666666666666666 "
     "315000:0.066666666666666666 360000:0.066666666666666666 405000:0.066666666666666666 "
     "450000:0.066666666666666666 495000:0.066666666666666666 540000:0.066666666666666666 "
     "585000:0.066666666666666666"},
    {true, "rate(reqs[2m] @ 300)", 0, 600000, 45000, false, "matrix"},
    {true, "predict_linear(reqs{instance=\"c\"}[1m] @ 300, 0)", 0, 600000, 100000, false, "matrix"},
    {true, "quantile_over_time(scalar(reqs{instance=\"c\"})/100, reqs{instance=\"c\"}[2m] @ 300)",
     100000, 600000, 100000, false, "matrix"},
    {true, "timestamp(reqs{instance=\"a\"} @ 300)", 0, 600000, 100000, false, "matrix"},
    {true, "topk(scalar(count(reqs)) - 1, reqs @ 300)", 0, 600000, 100000, false, "matrix"},
    {true, "sum_over_time((reqs{instance=\"c\"} @ 300)[2m:1m])", 100000, 600000, 100000, false,
     "matrix"},
    {true, "sum by (job) (rate(reqs[2m]))", 0, 600000, 60000, false,
     "matrix {job=\"api\"} 60000:0.5 120000:1 180000:1 240000:1 300000:0.95833333333333326 "
     "360000:0.95833333333333326 420000:1 480000:1 540000:1 600000:1; {job=\"db\"} "
     "60000:0.033333333333333333 120000:0.066666666666666666 180000:0.066666666666666666 "
     "240000:0.066666666666666666 300000:0.066666666666666666 360000:0.066666666666666666 "
     "420000:0.066666666666666666 480000:0.066666666666666666 540000:0.066666666666666666 "
     "600000:0.066666666666666666"},
    {true, "histogram_quantile(0.9, sum by (le) (rate(lat_bucket[2m])))", 0, 600000, 60000, false,
     "matrix {} 60000:1 120000:1 180000:1 240000:1 300000:1 360000:1 420000:1 480000:1 540000:1 "
     "600000:1"},
    {true, "time()", 0, 600000, 60000, false,
     "matrix {} 0:1700000040 60000:1700000100 120000:1700000160 180000:1700000220 "
     "240000:1700000280 300000:1700000340 360000:1700000400 420000:1700000460 480000:1700000520 "
     "540000:1700000580 600000:1700000640"},
    {true, "1 + 1", 0, 600000, 60000, false,
     "matrix {} 0:2 60000:2 120000:2 180000:2 240000:2 300000:2 360000:2 420000:2 480000:2 "
     "540000:2 600000:2"},
    {true, "absent(nope)", 0, 600000, 60000, false,
     "matrix {} 0:1 60000:1 120000:1 180000:1 240000:1 300000:1 360000:1 420000:1 480000:1 "
     "540000:1 600000:1"},
    {true, "absent_over_time(reqs{instance=\"a\"}[30s] offset -5m)", 0, 600000, 60000, false,
     "matrix {instance=\"a\"} 360000:1 420000:1 480000:1 540000:1 600000:1"},
    {true, "max_over_time(reqs{instance=\"c\"}[2m:1m])", 0, 600000, 60000, false,
     "matrix {instance=\"c\",job=\"db\"} 0:0 60000:4 120000:8 180000:12 240000:16 300000:20 "
     "360000:24 420000:28 480000:32 540000:36 600000:40"},
    {true, "topk(1, reqs)", 0, 600000, 60000, false,
     "matrix {__name__=\"reqs\",instance=\"a\",job=\"api\"} 0:0 60000:40 120000:80 180000:120 "
     "240000:160 300000:200 360000:240 420000:280 480000:320 540000:360 600000:400"},
    {true, "count_values(\"v\", floor(reqs / 100))", 0, 600000, 60000, false,
     "matrix {v=\"0\"} 0:3 60000:3 120000:3 180000:2 240000:2 300000:2 360000:2 420000:2 480000:2 "
     "540000:2 600000:1; {v=\"1\"} 180000:1 240000:1 600000:1; {v=\"2\"} 300000:1 360000:1 "
     "420000:1; {v=\"3\"} 480000:1 540000:1; {v=\"4\"} 600000:1"},
    {true, "reqs / on (job) group_left sum by (job) (reqs)", 0, 600000, 60000, false,
     "matrix {instance=\"a\",job=\"api\"} 0:NaN 60000:0.66666666666666663 "
     "120000:0.66666666666666663 180000:0.66666666666666663 240000:0.66666666666666663 300000:1 "
     "360000:0.92307692307692313 420000:0.875 480000:0.84210526315789469 "
     "540000:0.81818181818181823 600000:0.80000000000000004; {instance=\"b\",job=\"api\"} 0:NaN "
     "60000:0.33333333333333331 120000:0.33333333333333331 180000:0.33333333333333331 "
     "240000:0.33333333333333331 300000:0 360000:0.076923076923076927 420000:0.125 "
     "480000:0.15789473684210525 540000:0.18181818181818182 600000:0.20000000000000001; "
     "{instance=\"c\",job=\"db\"} 0:NaN 60000:1 120000:1 180000:1 240000:1 300000:1 360000:1 "
     "420000:1 480000:1 540000:1 600000:1"},
    {true, "sort_desc(reqs)", 0, 600000, 60000, false,
     "matrix {__name__=\"reqs\",instance=\"a\",job=\"api\"} 0:0 60000:40 120000:80 180000:120 "
     "240000:160 300000:200 360000:240 420000:280 480000:320 540000:360 600000:400; "
     "{__name__=\"reqs\",instance=\"b\",job=\"api\"} 0:0 60000:20 120000:40 180000:60 240000:80 "
     "300000:0 360000:20 420000:40 480000:60 540000:80 600000:100; "
     "{__name__=\"reqs\",instance=\"c\",job=\"db\"} 0:0 60000:4 120000:8 180000:12 240000:16 "
     "300000:20 360000:24 420000:28 480000:32 540000:36 600000:40"},
    {true, "label_replace(reqs, \"instance\", \"z\", \"\", \"\")", 0, 600000, 60000, false,
     "error: vector cannot contain metrics with the same labelset"},
    {true, "minute(reqs)", 0, 600000, 60000, false,
     "matrix {instance=\"a\",job=\"api\"} 0:0 60000:0 120000:1 180000:2 240000:2 300000:3 360000:4 "
     "420000:4 480000:5 540000:6 600000:6; {instance=\"b\",job=\"api\"} 0:0 60000:0 120000:0 "
     "180000:1 240000:1 300000:0 360000:0 420000:0 480000:1 540000:1 600000:1; "
     "{instance=\"c\",job=\"db\"} 0:0 60000:0 120000:0 180000:0 240000:0 300000:0 360000:0 "
     "420000:0 480000:0 540000:0 600000:0"},
};

static void fmt_value(double v, char *out, size_t cap)
{
    if (isnan(v)) {
        snprintf(out, cap, "NaN");
    } else if (isinf(v)) {
        snprintf(out, cap, v > 0 ? "+Inf" : "-Inf");
    } else {
        snprintf(out, cap, "%.17g", v);
    }
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The canonical text of a result, as the table spells it; owned by the caller. */
static char *canon(const pql_result_t *r, bool ordered)
{
    char num[64];
    if (r->type == PQL_TYPE_SCALAR) {
        fmt_value(r->scalar_v, num, sizeof(num));
        char *o = wf_malloc(80);
        snprintf(o, 80, "scalar %s", num);
        return o;
    }
    char **rows = wf_calloc(r->nseries + 1, sizeof(char *));
    size_t total = 16;
    for (size_t i = 0; i < r->nseries; i++) {
        const pql_series_t *s = &r->series[i];
        size_t cap = 64 + s->n * 64;
        for (size_t k = 0; k < s->nlabels; k++) {
            cap += s->labels[k].name.len + s->labels[k].value.len + 4;
        }
        rows[i] = wf_malloc(cap);
        fmt_labels(s, rows[i], cap);
        size_t o = strlen(rows[i]);
        for (size_t k = 0; k < s->n; k++) {
            fmt_value(s->v[k], num, sizeof(num));
            if (r->type == PQL_TYPE_VECTOR) {
                o += snprintf(rows[i] + o, cap - o, " %s", num);
            } else {
                o += snprintf(rows[i] + o, cap - o, " %lld:%s", (long long)(s->ts[k] - T0), num);
            }
        }
        total += o + 2;
    }
    if (!ordered) {
        qsort(rows, r->nseries, sizeof(char *), cmp_cstr);
    }
    char *out = wf_malloc(total);
    size_t o = snprintf(out, total, "%s", r->type == PQL_TYPE_VECTOR ? "vector" : "matrix");
    for (size_t i = 0; i < r->nseries; i++) {
        o += snprintf(out + o, total - o, "%s%s", i ? "; " : " ", rows[i]);
        wf_free(rows[i]);
    }
    wf_free(rows);
    return out;
}

/* Equal, but numbers (after a space or ':') within 1e-12 relative. */
static bool canon_equal(const char *a, const char *b)
{
    char prev = 0;
    while (*a && *b) {
        bool num_a = (prev == ' ' || prev == ':') &&
                     (isdigit((unsigned char)*a) || *a == '-' || *a == '+' || *a == 'N');
        if (num_a) {
            char *ea, *eb;
            double x = strtod(a, &ea), y = strtod(b, &eb);
            if (ea != a && eb != b && (*ea == 0 || *ea == ' ' || *ea == ';' || *ea == ':')) {
                bool same =
                    (isnan(x) && isnan(y)) || x == y ||
                    (isfinite(x) && isfinite(y) && fabs(x - y) <= 1e-12 * fmax(fabs(x), fabs(y)));
                if (!same) {
                    return false;
                }
                prev = ea[-1];
                a = ea;
                b = eb;
                continue;
            }
        }
        if (*a != *b) {
            return false;
        }
        prev = *a;
        a++;
        b++;
    }
    return *a == *b;
}

static void test_golden(void **state)
{
    fx_t *f = *state;
    size_t failed = 0;
    for (size_t i = 0; i < sizeof(golden) / sizeof(golden[0]); i++) {
        const golden_t *g = &golden[i];
        pql_tree_t *t = NULL;
        pql_parse_error_t perr;
        if (pql_parse(g->q, strlen(g->q), &t, &perr) != 0) {
            print_message("parse failed: %s: %s\n", g->q, perr.msg);
            failed++;
            continue;
        }
        pql_result_t *r = NULL;
        pql_error_t err;
        int rc = g->range ? pql_eval_range(f->e, t, T0 + g->t, T0 + g->end, g->step, 0, &r, &err)
                          : pql_eval_instant(f->e, t, T0 + g->t, 0, &r, &err);
        char *got;
        if (rc != 0) {
            got = wf_malloc(strlen(err.msg) + 8);
            sprintf(got, "error: %s", err.msg);
        } else {
            got = canon(r, g->ordered);
        }
        /* Error messages are cut at pql_error_t's 512 bytes. */
        bool ok = rc != 0 && strncmp(g->want, "error: ", 7) == 0 && strlen(got) == 518
                      ? strncmp(g->want, got, 518) == 0
                      : canon_equal(g->want, got);
        if (!ok) {
            print_message("%s (t=%lld)\n  want %s\n  got  %s\n", g->q, (long long)g->t, g->want,
                          got);
            failed++;
        }
        wf_free(got);
        pql_result_free(r);
        pql_tree_free(t);
    }
    assert_int_equal(failed, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_instant_selector, setup, teardown),
        cmocka_unit_test_setup_teardown(test_staleness, setup, teardown),
        cmocka_unit_test_setup_teardown(test_matrix_selector_instant, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offset_and_at, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_range_query, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aggregations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_histogram_quantile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_over_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subquery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_functions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_and_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_golden, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
