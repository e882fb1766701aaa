/*
 * test_pql_parse.c - unit tests of the PromQL parser, type checker and printer
 * (collector/promql/pql_parse.c, pql_lex.c, pql_fnsig.c, pql_format.c).
 *
 * The tables were checked against Prometheus 2.42 (/api/v1/format_query): for valid queries the
 * canonical form it prints, for invalid ones the message it returns. Every valid query must
 * also round-trip: parse(format(parse(q))) is the same tree. The Istio dashboard and Kiali
 * queries from the reference data (when present) must all parse.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "pql_ast.h"
#include "wf_alloc.h"
#include "wf_err.h"
#include "wt_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Helpers ------------------------------------------------------------------------------ */

static pql_tree_t *parse_ok(const char *q)
{
    pql_tree_t *t = NULL;
    pql_parse_error_t err;
    int rc = pql_parse(q, strlen(q), &t, &err);
    if (rc != 0) {
        fail_msg("query %s: unexpected error %d: %s", q, rc, err.msg);
    }
    assert_non_null(t);
    assert_non_null(t->root);
    return t;
}

static char *format_tree(const pql_node_t *n)
{
    wf_buf_t b = WF_BUF_INIT;
    pql_format(n, &b);
    wf_buf_cstr(&b);
    size_t len;
    return (char *)wf_buf_detach(&b, &len);
}

static bool names_eq(const pql_names_t *a, const pql_names_t *b)
{
    if (a->n != b->n) {
        return false;
    }
    for (size_t i = 0; i < a->n; i++) {
        if (!wf_str_eq(a->names[i], b->names[i])) {
            return false;
        }
    }
    return true;
}

static bool num_eq(double a, double b)
{
    return (isnan(a) && isnan(b)) || (a == b && signbit(a) == signbit(b));
}

/* Structural equality, positions aside; matchers compared as a set (the printer sorts them). */
static bool tree_eq(const pql_node_t *a, const pql_node_t *b)
{
    if (a->kind != b->kind || a->type != b->type) {
        return false;
    }
    switch (a->kind) {
    case PQL_NODE_NUMBER:
        return num_eq(a->u.number, b->u.number);
    case PQL_NODE_STRING:
        return wf_str_eq(a->u.string, b->u.string);
    case PQL_NODE_VECTOR:
        if (!wf_str_eq(a->u.vector.name, b->u.vector.name) ||
            a->u.vector.nmatchers != b->u.vector.nmatchers ||
            a->u.vector.offset_ms != b->u.vector.offset_ms || a->u.vector.at != b->u.vector.at ||
            a->u.vector.at_ms != b->u.vector.at_ms) {
            return false;
        }
        for (size_t i = 0; i < a->u.vector.nmatchers; i++) {
            const pql_matcher_t *m = &a->u.vector.matchers[i];
            bool found = false;
            for (size_t j = 0; j < b->u.vector.nmatchers && !found; j++) {
                const pql_matcher_t *o = &b->u.vector.matchers[j];
                found = m->type == o->type && wf_str_eq(m->name, o->name) &&
                        wf_str_eq(m->value, o->value) && o->compiled != NULL;
            }
            if (!found || m->compiled == NULL) {
                return false;
            }
        }
        return true;
    case PQL_NODE_MATRIX:
        return a->u.matrix.range_ms == b->u.matrix.range_ms &&
               tree_eq(a->u.matrix.vector, b->u.matrix.vector);
    case PQL_NODE_SUBQUERY:
        return a->u.subquery.range_ms == b->u.subquery.range_ms &&
               a->u.subquery.step_ms == b->u.subquery.step_ms &&
               a->u.subquery.offset_ms == b->u.subquery.offset_ms &&
               a->u.subquery.at == b->u.subquery.at && a->u.subquery.at_ms == b->u.subquery.at_ms &&
               tree_eq(a->u.subquery.expr, b->u.subquery.expr);
    case PQL_NODE_CALL:
        if (a->u.call.fn != b->u.call.fn || a->u.call.nargs != b->u.call.nargs) {
            return false;
        }
        for (size_t i = 0; i < a->u.call.nargs; i++) {
            if (!tree_eq(a->u.call.args[i], b->u.call.args[i])) {
                return false;
            }
        }
        return true;
    case PQL_NODE_AGGREGATE:
        return a->u.aggregate.op == b->u.aggregate.op &&
               a->u.aggregate.without == b->u.aggregate.without &&
               names_eq(&a->u.aggregate.grouping, &b->u.aggregate.grouping) &&
               (a->u.aggregate.param == NULL) == (b->u.aggregate.param == NULL) &&
               (a->u.aggregate.param == NULL ||
                tree_eq(a->u.aggregate.param, b->u.aggregate.param)) &&
               tree_eq(a->u.aggregate.expr, b->u.aggregate.expr);
    case PQL_NODE_BINARY:
        return a->u.binary.op == b->u.binary.op &&
               a->u.binary.return_bool == b->u.binary.return_bool &&
               a->u.binary.card == b->u.binary.card && a->u.binary.on == b->u.binary.on &&
               names_eq(&a->u.binary.matching, &b->u.binary.matching) &&
               names_eq(&a->u.binary.include, &b->u.binary.include) &&
               tree_eq(a->u.binary.lhs, b->u.binary.lhs) &&
               tree_eq(a->u.binary.rhs, b->u.binary.rhs);
    case PQL_NODE_UNARY:
        return a->u.unary.negate == b->u.unary.negate && tree_eq(a->u.unary.expr, b->u.unary.expr);
    case PQL_NODE_PAREN:
        return tree_eq(a->u.paren.expr, b->u.paren.expr);
    }
    return false;
}

/* Parse q, check its canonical form, and that the canonical form parses to the same tree. */
static pql_tree_t *check_valid(const char *q, const char *want)
{
    pql_tree_t *t = parse_ok(q);
    char *f = format_tree(t->root);
    if (want != NULL && strcmp(f, want) != 0) {
        fail_msg("query %s: formatted as\n  %s\nwant\n  %s", q, f, want);
    }
    pql_tree_t *t2 = parse_ok(f);
    if (!tree_eq(t->root, t2->root)) {
        fail_msg("query %s: format %s does not round-trip", q, f);
    }
    char *f2 = format_tree(t2->root);
    assert_string_equal(f, f2);
    wf_free(f2);
    pql_tree_free(t2);
    wf_free(f);
    return t;
}

static void check_invalid(const char *q, size_t len, int want_rc, const char *want_msg)
{
    pql_tree_t *t = (pql_tree_t *)0x1;
    pql_parse_error_t err;
    int rc = pql_parse(q, len, &t, &err);
    if (rc == 0) {
        char *f = format_tree(t->root);
        fail_msg("query %s: parsed (as %s), want an error", q, f);
    }
    assert_null(t);
    assert_int_equal(rc, want_rc);
    if (want_msg != NULL && strcmp(err.msg, want_msg) != 0) {
        fail_msg("query %s:\n  got  %s\n  want %s", q, err.msg, want_msg);
    }
    assert_true(strstr(err.msg, "parse error: ") != NULL || rc == WF_E_LIMIT);
}

/* ---- Valid queries ------------------------------------------------------------------------ */

typedef struct {
    const char *q;
    const char *fmt; /* Prometheus 2.42's format_query output */
    pql_node_kind_t kind;
    pql_type_t type;
} valid_t;

#define K(x) PQL_NODE_##x
#define T(x) PQL_TYPE_##x

static const valid_t valid[] = {
    /* literals */
    {"1", "1", K(NUMBER), T(SCALAR)},
    {"1.5e3", "1500", K(NUMBER), T(SCALAR)},
    {"0x1f", "31", K(NUMBER), T(SCALAR)},
    {"1000000", "1e+06", K(NUMBER), T(SCALAR)},
    {"123456", "123456", K(NUMBER), T(SCALAR)},
    {"0.0001", "0.0001", K(NUMBER), T(SCALAR)},
    {"0.00001", "1e-05", K(NUMBER), T(SCALAR)},
    {"1e21", "1e+21", K(NUMBER), T(SCALAR)},
    {"-1", "-1", K(NUMBER), T(SCALAR)},
    {"- 1", "-1", K(NUMBER), T(SCALAR)},
    {"Inf", "+Inf", K(NUMBER), T(SCALAR)},
    {"-inf", "-Inf", K(NUMBER), T(SCALAR)},
    {"NaN", "NaN", K(NUMBER), T(SCALAR)},
    {".5", "0.5", K(NUMBER), T(SCALAR)},
    {"010", "8", K(NUMBER), T(SCALAR)},
    {"\"abc\"", "\"abc\"", K(STRING), T(STRING)},
    {"'abc'", "\"abc\"", K(STRING), T(STRING)},
    {"`a\\b`", "\"a\\\\b\"", K(STRING), T(STRING)},
    /* selectors */
    {"foo", "foo", K(VECTOR), T(VECTOR)},
    {"foo:bar:rate5m", "foo:bar:rate5m", K(VECTOR), T(VECTOR)},
    {"foo{}", "foo", K(VECTOR), T(VECTOR)},
    {"foo{a=\"b\"}", "foo{a=\"b\"}", K(VECTOR), T(VECTOR)},
    {"foo{b=\"2\",a=\"1\",}", "foo{a=\"1\",b=\"2\"}", K(VECTOR), T(VECTOR)},
    {"{__name__=~\"foo.*\"}", "{__name__=~\"foo.*\"}", K(VECTOR), T(VECTOR)},
    {"{a!=\"\",b!~\"x\"}", "{a!=\"\",b!~\"x\"}", K(VECTOR), T(VECTOR)},
    {"sum", "sum", K(VECTOR), T(VECTOR)},
    {"sum + 1", "sum + 1", K(BINARY), T(VECTOR)},
    {"by", "by", K(VECTOR), T(VECTOR)},
    {"offset{a=\"b\"}", "offset{a=\"b\"}", K(VECTOR), T(VECTOR)},
    {"foo offset 5m", "foo offset 5m", K(VECTOR), T(VECTOR)},
    {"foo offset -5m", "foo offset -5m", K(VECTOR), T(VECTOR)},
    {"foo offset 90s", "foo offset 1m30s", K(VECTOR), T(VECTOR)},
    {"foo @ 100", "foo @ 100.000", K(VECTOR), T(VECTOR)},
    {"foo @ start()", "foo @ start()", K(VECTOR), T(VECTOR)},
    {"foo @ end() offset 1h", "foo @ end() offset 1h", K(VECTOR), T(VECTOR)},
    {"foo offset 1h @ 1.5", "foo @ 1.500 offset 1h", K(VECTOR), T(VECTOR)},
    {"foo[5m]", "foo[5m]", K(MATRIX), T(MATRIX)},
    {"foo[1h30m]", "foo[1h30m]", K(MATRIX), T(MATRIX)},
    {"foo[5m] offset 1m @ 100", "foo[5m] @ 100.000 offset 1m", K(MATRIX), T(MATRIX)},
    {"foo[5m:]", "foo[5m:]", K(SUBQUERY), T(MATRIX)},
    {"foo[5m:1m]", "foo[5m:1m]", K(SUBQUERY), T(MATRIX)},
    {"rate(foo[5m])[30m:1m] offset 5m", "rate(foo[5m])[30m:1m] offset 5m", K(SUBQUERY), T(MATRIX)},
    /* aggregations */
    {"sum(x)", "sum(x)", K(AGGREGATE), T(VECTOR)},
    {"sum by (a) (x)", "sum by (a) (x)", K(AGGREGATE), T(VECTOR)},
    {"sum(x) by (a, b)", "sum by (a, b) (x)", K(AGGREGATE), T(VECTOR)},
    {"sum without (a) (x)", "sum without (a) (x)", K(AGGREGATE), T(VECTOR)},
    {"sum by () (x)", "sum(x)", K(AGGREGATE), T(VECTOR)},
    {"topk(3, x)", "topk(3, x)", K(AGGREGATE), T(VECTOR)},
    {"count_values(\"v\", x)", "count_values(\"v\", x)", K(AGGREGATE), T(VECTOR)},
    {"quantile(0.9, x)", "quantile(0.9, x)", K(AGGREGATE), T(VECTOR)},
    /* calls */
    {"rate(x[5m])", "rate(x[5m])", K(CALL), T(VECTOR)},
    {"time()", "time()", K(CALL), T(SCALAR)},
    {"round(x)", "round(x)", K(CALL), T(VECTOR)},
    {"round(x, 0.1)", "round(x, 0.1)", K(CALL), T(VECTOR)},
    {"label_join(x, \"d\", \",\", \"a\", \"b\")", "label_join(x, \"d\", \",\", \"a\", \"b\")",
     K(CALL), T(VECTOR)},
    {"label_replace(x, \"a\", \"b\", \"c\", \"d\")", "label_replace(x, \"a\", \"b\", \"c\", \"d\")",
     K(CALL), T(VECTOR)},
    /* binary */
    {"a + b", "a + b", K(BINARY), T(VECTOR)},
    {"1 + 2", "1 + 2", K(BINARY), T(SCALAR)},
    {"1 > bool 2", "1 > bool 2", K(BINARY), T(SCALAR)},
    {"a + on (x) group_left (y) b", "a + on (x) group_left (y) b", K(BINARY), T(VECTOR)},
    {"a and b", "a and b", K(BINARY), T(VECTOR)},
    {"-2^2", "-2 ^ 2", K(UNARY), T(SCALAR)},
    {"1 + on() foo", "1 + foo", K(BINARY), T(VECTOR)},
};

static void test_valid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        pql_tree_t *t = check_valid(valid[i].q, valid[i].fmt);
        if (t->root->kind != valid[i].kind || t->root->type != valid[i].type) {
            fail_msg("query %s: kind %d type %d, want %d %d", valid[i].q, t->root->kind,
                     t->root->type, valid[i].kind, valid[i].type);
        }
        pql_tree_free(t);
    }
}

/* ---- Invalid queries ---------------------------------------------------------------------- */

typedef struct {
    const char *q;
    const char *msg; /* NULL: any parse error */
} invalid_t;

static const invalid_t invalid[] = {
    {"", "1:1: parse error: no expression found in input"},
    {"sum(x))", "1:8: parse error: unexpected right parenthesis ')'"},
    {"sum(x y)", "1:7: parse error: unexpected identifier \"y\" in aggregation"},
    {"rate(x y)", "1:8: parse error: unexpected identifier \"y\""},
    {"(x y)", "1:4: parse error: unexpected identifier \"y\""},
    {"foo offset 0s", "1:12: parse error: duration must be greater than 0"},
    {"x[0s]", "1:3: parse error: duration must be greater than 0"},
    {"sum by (a) x", "1:12: parse error: unexpected identifier \"x\" in aggregation"},
    {"x @ start", "1:10: parse error: unexpected end of input in @, expected timestamp"},
    {"rate(x)", "1:6: parse error: expected type range vector in call to function \"rate\", got "
                "instant vector"},
    {"1 > 2", "1:3: parse error: comparisons between scalars must use BOOL modifier"},
    {"topk(x)", "1:1: parse error: wrong number of arguments for aggregate expression "
                "provided, expected 2, got 1"},
    {"x and 1", "1:1: parse error: set operator \"and\" not allowed in binary scalar "
                "expression"},
    {"x and on(a) group_left y", "1:1: parse error: no grouping allowed for \"and\" operation"},
    {"round(x, 1, 2)",
     "1:1: parse error: expected at most 2 argument(s) in call to \"round\", got 3"},
    {"x[5m][10m:]",
     "1:1: parse error: subquery is only allowed on instant vector, got matrix instead"},
    {"-x[5m]", "1:1: parse error: unary expression only allowed on expressions of type scalar or "
               "instant vector, got \"range vector\""},
    {"{}", "1:1: parse error: vector selector must contain at least one non-empty matcher"},
    {"{a=\"\"}", "1:1: parse error: vector selector must contain at least one non-empty matcher"},
    {"foo{__name__=\"x\"}",
     "1:1: parse error: metric name must not be set twice: \"foo\" or \"x\""},
    {"{a=~\"(\"}", NULL},
};

static void test_invalid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        check_invalid(invalid[i].q, strlen(invalid[i].q), WF_E_INVAL, invalid[i].msg);
    }
}

static void test_limits(void **state)
{
    (void)state;
    /* Deep nesting fails cleanly instead of overflowing the stack. */
    size_t n = 100000;
    char *q = wf_malloc(2 * n + 2);
    memset(q, '(', n);
    q[n] = '1';
    memset(q + n + 1, ')', n);
    check_invalid(q, 2 * n + 1, WF_E_LIMIT, NULL);
    /* 300 nested parentheses: beyond the depth limit but within the length limit. */
    memset(q, '(', 300);
    q[300] = '1';
    memset(q + 301, ')', 300);
    check_invalid(q, 601, WF_E_LIMIT, NULL);
    /* A long left-leaning chain is deep as a tree even though the parser loops. */
    wf_buf_t b = WF_BUF_INIT;
    wf_buf_puts(&b, "x");
    for (int i = 0; i < 1000; i++) {
        wf_buf_puts(&b, " + x");
    }
    check_invalid((const char *)b.data, b.len, WF_E_LIMIT, NULL);
    wf_buf_free(&b);
    wf_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
