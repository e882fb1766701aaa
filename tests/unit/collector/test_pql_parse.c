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

/* Parse q, check its canonical form, and that the canonical form parses to the same tree. */
static pql_tree_t *check_valid(const char *q, const char *want)
{
    pql_tree_t *t = parse_ok(q);
    char *f = format_tree(t->root);
    if (want != NULL && strcmp(f, want) != 0) {
        fail_msg("query %s: formatted as\n  %s\nwant\n  %s", q, f, want);
    }
    pql_tree_t *t2 = parse_ok(f);
    if (!pql_node_equal(t->root, t2->root)) {
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

static const pql_node_t *root_of(pql_tree_t *t)
{
    return t->root;
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
    {"1", "1", K(NUMBER), T(SCALAR)},
    {"1.5e3", "1500", K(NUMBER), T(SCALAR)},
    {"0x1f", "31", K(NUMBER), T(SCALAR)},
    {"0X1F", "31", K(NUMBER), T(SCALAR)},
    {"1000000", "1e+06", K(NUMBER), T(SCALAR)},
    {"123456", "123456", K(NUMBER), T(SCALAR)},
    {"0.0001", "0.0001", K(NUMBER), T(SCALAR)},
    {"0.00001", "1e-05", K(NUMBER), T(SCALAR)},
    {"1e21", "1e+21", K(NUMBER), T(SCALAR)},
    {"-1", "-1", K(NUMBER), T(SCALAR)},
    {"- 1", "-1", K(NUMBER), T(SCALAR)},
    {"+1", "1", K(NUMBER), T(SCALAR)},
    {"--1", "1", K(NUMBER), T(SCALAR)},
    {"Inf", "+Inf", K(NUMBER), T(SCALAR)},
    {"-inf", "-Inf", K(NUMBER), T(SCALAR)},
    {"+Inf", "+Inf", K(NUMBER), T(SCALAR)},
    {"NaN", "NaN", K(NUMBER), T(SCALAR)},
    {"nan", "NaN", K(NUMBER), T(SCALAR)},
    {".5", "0.5", K(NUMBER), T(SCALAR)},
    {"5.", "5", K(NUMBER), T(SCALAR)},
    {"010", "8", K(NUMBER), T(SCALAR)},
    {"08", "8", K(NUMBER), T(SCALAR)},
    {"1e-7", "1e-07", K(NUMBER), T(SCALAR)},
    {"12345678901234567890", "1.2345678901234567e+19", K(NUMBER), T(SCALAR)},
    {"0.30000000000000004", "0.30000000000000004", K(NUMBER), T(SCALAR)},
    {"4.9e-324", "5e-324", K(NUMBER), T(SCALAR)},
    {"1e-400", "0", K(NUMBER), T(SCALAR)},
    {"-0", "-0", K(NUMBER), T(SCALAR)},
    {"\"abc\"", "\"abc\"", K(STRING), T(STRING)},
    {"'abc'", "\"abc\"", K(STRING), T(STRING)},
    {"`a\\b`", "\"a\\\\b\"", K(STRING), T(STRING)},
    {"\"a\\\"b\"", "\"a\\\"b\"", K(STRING), T(STRING)},
    {"'a\\'b'", "\"a'b\"", K(STRING), T(STRING)},
    {"\"\\a\\b\\f\\n\\r\\t\\v\\\\\"", "\"\\a\\b\\f\\n\\r\\t\\v\\\\\"", K(STRING), T(STRING)},
    {"\"\\x41\\101\\u00e9\\U0001F600\"", "\"AA\303\251\360\237\230\200\"", K(STRING), T(STRING)},
    {"\"\342\230\203\303\251\"", "\"\342\230\203\303\251\"", K(STRING), T(STRING)},
    {"\"\\u00a0\\u2028\"", "\"\\u00a0\\u2028\"", K(STRING), T(STRING)},
    {"\"\\x00\\x7f\"", "\"\\x00\\x7f\"", K(STRING), T(STRING)},
    {"'\"'", "\"\\\"\"", K(STRING), T(STRING)},
    {"foo", "foo", K(VECTOR), T(VECTOR)},
    {"foo:bar:rate5m", "foo:bar:rate5m", K(VECTOR), T(VECTOR)},
    {":foo", ":foo", K(VECTOR), T(VECTOR)},
    {"foo{}", "foo", K(VECTOR), T(VECTOR)},
    {"foo{a=\"b\"}", "foo{a=\"b\"}", K(VECTOR), T(VECTOR)},
    {"foo{b=\"2\",a=\"1\",}", "foo{a=\"1\",b=\"2\"}", K(VECTOR), T(VECTOR)},
    {"{__name__=~\"foo.*\"}", "{__name__=~\"foo.*\"}", K(VECTOR), T(VECTOR)},
    {"{a!=\"\",b!~\"x\"}", "{a!=\"\",b!~\"x\"}", K(VECTOR), T(VECTOR)},
    {"{__name__=\"foo\"}", "{__name__=\"foo\"}", K(VECTOR), T(VECTOR)},
    {"foo{a=~\"b|c\",a!~\"d\"}", "foo{a!~\"d\",a=~\"b|c\"}", K(VECTOR), T(VECTOR)},
    {"foo{a='b'}", "foo{a=\"b\"}", K(VECTOR), T(VECTOR)},
    {"foo{a=`b\\c`}", "foo{a=\"b\\\\c\"}", K(VECTOR), T(VECTOR)},
    {"sum", "sum", K(VECTOR), T(VECTOR)},
    {"sum + 1", "sum + 1", K(BINARY), T(VECTOR)},
    {"by", "by", K(VECTOR), T(VECTOR)},
    {"without", "without", K(VECTOR), T(VECTOR)},
    {"offset", "offset", K(VECTOR), T(VECTOR)},
    {"start", "start", K(VECTOR), T(VECTOR)},
    {"end", "end", K(VECTOR), T(VECTOR)},
    {"and", "and", K(VECTOR), T(VECTOR)},
    {"or", "or", K(VECTOR), T(VECTOR)},
    {"unless", "unless", K(VECTOR), T(VECTOR)},
    {"SUM", "SUM", K(VECTOR), T(VECTOR)},
    {"offset{a=\"b\"}", "offset{a=\"b\"}", K(VECTOR), T(VECTOR)},
    {"foo{offset=\"a\",by=\"b\",sum=\"c\",on=\"d\",bool=\"e\"}",
     "foo{bool=\"e\",by=\"b\",offset=\"a\",on=\"d\",sum=\"c\"}", K(VECTOR), T(VECTOR)},
    {"foo # comment", "foo", K(VECTOR), T(VECTOR)},
    {"foo\n+\nbar", "foo + bar", K(BINARY), T(VECTOR)},
    {"foo{# comment\na=\"b\"}", "foo{a=\"b\"}", K(VECTOR), T(VECTOR)},
    {"foo offset 5m", "foo offset 5m", K(VECTOR), T(VECTOR)},
    {"foo offset -5m", "foo offset -5m", K(VECTOR), T(VECTOR)},
    {"foo offset 90s", "foo offset 1m30s", K(VECTOR), T(VECTOR)},
    {"foo offset 1500ms", "foo offset 1s500ms", K(VECTOR), T(VECTOR)},
    {"foo offset 86400s", "foo offset 1d", K(VECTOR), T(VECTOR)},
    {"foo offset 604800s", "foo offset 1w", K(VECTOR), T(VECTOR)},
    {"foo offset 31536000s", "foo offset 1y", K(VECTOR), T(VECTOR)},
    {"foo offset 14d", "foo offset 2w", K(VECTOR), T(VECTOR)},
    {"foo offset 365d", "foo offset 1y", K(VECTOR), T(VECTOR)},
    {"foo offset 1y1d", "foo offset 366d", K(VECTOR), T(VECTOR)},
    {"foo offset 2w", "foo offset 2w", K(VECTOR), T(VECTOR)},
    {"foo offset 1h1s5ms", "foo offset 1h1s5ms", K(VECTOR), T(VECTOR)},
    {"foo @ 100", "foo @ 100.000", K(VECTOR), T(VECTOR)},
    {"foo @ -100", "foo @ -100.000", K(VECTOR), T(VECTOR)},
    {"foo @ +100", "foo @ 100.000", K(VECTOR), T(VECTOR)},
    {"foo @ 1.2345", "foo @ 1.235", K(VECTOR), T(VECTOR)},
    {"foo @ 0x10", "foo @ 16.000", K(VECTOR), T(VECTOR)},
    {"foo @ start()", "foo @ start()", K(VECTOR), T(VECTOR)},
    {"foo @ end()", "foo @ end()", K(VECTOR), T(VECTOR)},
    {"foo @ end() offset 1h", "foo @ end() offset 1h", K(VECTOR), T(VECTOR)},
    {"foo offset 1h @ 1.5", "foo @ 1.500 offset 1h", K(VECTOR), T(VECTOR)},
    {"foo @ start()[5m]", "foo[5m] @ start()", K(MATRIX), T(MATRIX)},
    {"foo[5m]", "foo[5m]", K(MATRIX), T(MATRIX)},
    {"foo[1h30m]", "foo[1h30m]", K(MATRIX), T(MATRIX)},
    {"foo[90m]", "foo[1h30m]", K(MATRIX), T(MATRIX)},
    {"foo[ 5m ]", "foo[5m]", K(MATRIX), T(MATRIX)},
    {"foo{a=\"b\"}[5m] offset 1m", "foo{a=\"b\"}[5m] offset 1m", K(MATRIX), T(MATRIX)},
    {"foo[5m] offset 1m @ 100", "foo[5m] @ 100.000 offset 1m", K(MATRIX), T(MATRIX)},
    {"foo[5m] @ end()", "foo[5m] @ end()", K(MATRIX), T(MATRIX)},
    {"foo[5m:]", "foo[5m:]", K(SUBQUERY), T(MATRIX)},
    {"foo[5m:1m]", "foo[5m:1m]", K(SUBQUERY), T(MATRIX)},
    {"foo[5m : 1m]", "foo[5m:1m]", K(SUBQUERY), T(MATRIX)},
    {"foo offset 1m [5m:1m]", "foo offset 1m[5m:1m]", K(SUBQUERY), T(MATRIX)},
    {"foo @ 10 [5m:]", "foo @ 10.000[5m:]", K(SUBQUERY), T(MATRIX)},
    {"rate(foo[5m])[30m:1m] offset 5m", "rate(foo[5m])[30m:1m] offset 5m", K(SUBQUERY), T(MATRIX)},
    {"sum(foo)[5m:] @ start() offset -1m", "sum(foo)[5m:] @ start() offset -1m", K(SUBQUERY),
     T(MATRIX)},
    {"(foo)[5m:]", "(foo)[5m:]", K(SUBQUERY), T(MATRIX)},
    {"min_over_time(rate(x[1m])[1h:5m])", "min_over_time(rate(x[1m])[1h:5m])", K(CALL), T(VECTOR)},
    {"sum(x)", "sum(x)", K(AGGREGATE), T(VECTOR)},
    {"avg(x)", "avg(x)", K(AGGREGATE), T(VECTOR)},
    {"count(x)", "count(x)", K(AGGREGATE), T(VECTOR)},
    {"min(x)", "min(x)", K(AGGREGATE), T(VECTOR)},
    {"max(x)", "max(x)", K(AGGREGATE), T(VECTOR)},
    {"group(x)", "group(x)", K(AGGREGATE), T(VECTOR)},
    {"stddev(x)", "stddev(x)", K(AGGREGATE), T(VECTOR)},
    {"stdvar(x)", "stdvar(x)", K(AGGREGATE), T(VECTOR)},
    {"sum by (a) (x)", "sum by (a) (x)", K(AGGREGATE), T(VECTOR)},
    {"sum(x) by (a, b)", "sum by (a, b) (x)", K(AGGREGATE), T(VECTOR)},
    {"sum without (a) (x)", "sum without (a) (x)", K(AGGREGATE), T(VECTOR)},
    {"sum(x) without (a)", "sum without (a) (x)", K(AGGREGATE), T(VECTOR)},
    {"sum by () (x)", "sum(x)", K(AGGREGATE), T(VECTOR)},
    {"sum without () (x)", "sum without () (x)", K(AGGREGATE), T(VECTOR)},
    {"sum by (a,) (x)", "sum by (a) (x)", K(AGGREGATE), T(VECTOR)},
    {"SUM BY (a) (x)", "sum by (a) (x)", K(AGGREGATE), T(VECTOR)},
    {"sum by (on, by, offset, sum, bool, start, end, atan2, and) (x)",
     "sum by (on, by, offset, sum, bool, start, end, atan2, and) (x)", K(AGGREGATE), T(VECTOR)},
    {"topk(3, x)", "topk(3, x)", K(AGGREGATE), T(VECTOR)},
    {"bottomk(3, x)", "bottomk(3, x)", K(AGGREGATE), T(VECTOR)},
    {"topk by (a) (3, x)", "topk by (a) (3, x)", K(AGGREGATE), T(VECTOR)},
    {"topk(scalar(y), x)", "topk(scalar(y), x)", K(AGGREGATE), T(VECTOR)},
    {"count_values(\"v\", x)", "count_values(\"v\", x)", K(AGGREGATE), T(VECTOR)},
    {"count_values without (a) (\"v\", x)", "count_values without (a) (\"v\", x)", K(AGGREGATE),
     T(VECTOR)},
    {"quantile(0.9, x)", "quantile(0.9, x)", K(AGGREGATE), T(VECTOR)},
    {"quantile(0.9, x) by (a)", "quantile by (a) (0.9, x)", K(AGGREGATE), T(VECTOR)},
    {"sum(sum(x))", "sum(sum(x))", K(AGGREGATE), T(VECTOR)},
    {"sum(rate(x[5m])) by (a) > 0", "sum by (a) (rate(x[5m])) > 0", K(BINARY), T(VECTOR)},
    {"a + b", "a + b", K(BINARY), T(VECTOR)},
    {"a - b", "a - b", K(BINARY), T(VECTOR)},
    {"a * b", "a * b", K(BINARY), T(VECTOR)},
    {"a / b", "a / b", K(BINARY), T(VECTOR)},
    {"a % b", "a % b", K(BINARY), T(VECTOR)},
    {"a ^ b", "a ^ b", K(BINARY), T(VECTOR)},
    {"a atan2 b", "a atan2 b", K(BINARY), T(VECTOR)},
    {"a == b", "a == b", K(BINARY), T(VECTOR)},
    {"a != b", "a != b", K(BINARY), T(VECTOR)},
    {"a > b", "a > b", K(BINARY), T(VECTOR)},
    {"a < b", "a < b", K(BINARY), T(VECTOR)},
    {"a >= b", "a >= b", K(BINARY), T(VECTOR)},
    {"a <= b", "a <= b", K(BINARY), T(VECTOR)},
    {"a and b", "a and b", K(BINARY), T(VECTOR)},
    {"a or b", "a or b", K(BINARY), T(VECTOR)},
    {"a unless b", "a unless b", K(BINARY), T(VECTOR)},
    {"1 + 2", "1 + 2", K(BINARY), T(SCALAR)},
    {"1 > bool 2", "1 > bool 2", K(BINARY), T(SCALAR)},
    {"a > bool b", "a > bool b", K(BINARY), T(VECTOR)},
    {"a == bool 1", "a == bool 1", K(BINARY), T(VECTOR)},
    {"a + on (x) group_left (y) b", "a + on (x) group_left (y) b", K(BINARY), T(VECTOR)},
    {"a + on(x) group_left b", "a + on (x) group_left () b", K(BINARY), T(VECTOR)},
    {"a * ignoring(x) group_right(y, z) b", "a * ignoring (x) group_right (y, z) b", K(BINARY),
     T(VECTOR)},
    {"a + on() b", "a + on () b", K(BINARY), T(VECTOR)},
    {"a + ignoring(x) b", "a + ignoring (x) b", K(BINARY), T(VECTOR)},
    {"a and on(x) b", "a and on (x) b", K(BINARY), T(VECTOR)},
    {"a or ignoring(x) b", "a or ignoring (x) b", K(BINARY), T(VECTOR)},
    {"a unless on() b", "a unless on () b", K(BINARY), T(VECTOR)},
    {"a > bool on(x) b", "a > bool on (x) b", K(BINARY), T(VECTOR)},
    {"1 + on() foo", "1 + foo", K(BINARY), T(VECTOR)},
    {"x + on(a,) group_left(b,) y", "x + on (a) group_left (b) y", K(BINARY), T(VECTOR)},
    {"a + b * c", "a + b * c", K(BINARY), T(VECTOR)},
    {"a * b + c", "a * b + c", K(BINARY), T(VECTOR)},
    {"a - b - c", "a - b - c", K(BINARY), T(VECTOR)},
    {"a / b / c", "a / b / c", K(BINARY), T(VECTOR)},
    {"a ^ b ^ c", "a ^ b ^ c", K(BINARY), T(VECTOR)},
    {"-a ^ b", "-a ^ b", K(UNARY), T(VECTOR)},
    {"-2^2", "-2 ^ 2", K(UNARY), T(SCALAR)},
    {"-a * b", "-a * b", K(BINARY), T(VECTOR)},
    {"a * -b", "a * -b", K(BINARY), T(VECTOR)},
    {"2 ^ -3 ^ 2", "2 ^ -3 ^ 2", K(BINARY), T(SCALAR)},
    {"a or b and c", "a or b and c", K(BINARY), T(VECTOR)},
    {"a and b or c", "a and b or c", K(BINARY), T(VECTOR)},
    {"a unless b and c", "a unless b and c", K(BINARY), T(VECTOR)},
    {"a == b + c", "a == b + c", K(BINARY), T(VECTOR)},
    {"1 - -1", "1 - -1", K(BINARY), T(SCALAR)},
    {"1--1", "1 - -1", K(BINARY), T(SCALAR)},
    {"x-1", "x - 1", K(BINARY), T(VECTOR)},
    {"-x offset 5m", "-x offset 5m", K(UNARY), T(VECTOR)},
    {"+x", "+x", K(UNARY), T(VECTOR)},
    {"-(1)", "-(1)", K(UNARY), T(SCALAR)},
    {"-(-x)", "-(-x)", K(UNARY), T(VECTOR)},
    {"(1 + 2) * 3", "(1 + 2) * 3", K(BINARY), T(SCALAR)},
    {"((x))", "((x))", K(PAREN), T(VECTOR)},
    {"a + b offset 5m", "a + b offset 5m", K(BINARY), T(VECTOR)},
    {"a atan2 b ^ c", "a atan2 b ^ c", K(BINARY), T(VECTOR)},
    {"abs(x)", "abs(x)", K(CALL), T(VECTOR)},
    {"absent(nonexistent{job=\"x\"})", "absent(nonexistent{job=\"x\"})", K(CALL), T(VECTOR)},
    {"absent_over_time(x[5m])", "absent_over_time(x[5m])", K(CALL), T(VECTOR)},
    {"acos(x)", "acos(x)", K(CALL), T(VECTOR)},
    {"acosh(x)", "acosh(x)", K(CALL), T(VECTOR)},
    {"asin(x)", "asin(x)", K(CALL), T(VECTOR)},
    {"asinh(x)", "asinh(x)", K(CALL), T(VECTOR)},
    {"atan(x)", "atan(x)", K(CALL), T(VECTOR)},
    {"atanh(x)", "atanh(x)", K(CALL), T(VECTOR)},
    {"avg_over_time(x[5m])", "avg_over_time(x[5m])", K(CALL), T(VECTOR)},
    {"ceil(x)", "ceil(x)", K(CALL), T(VECTOR)},
    {"changes(x[5m])", "changes(x[5m])", K(CALL), T(VECTOR)},
    {"clamp(x, 0, 1)", "clamp(x, 0, 1)", K(CALL), T(VECTOR)},
    {"clamp_max(x, 1)", "clamp_max(x, 1)", K(CALL), T(VECTOR)},
    {"clamp_min(x, 0)", "clamp_min(x, 0)", K(CALL), T(VECTOR)},
    {"cos(x)", "cos(x)", K(CALL), T(VECTOR)},
    {"cosh(x)", "cosh(x)", K(CALL), T(VECTOR)},
    {"count_over_time(x[5m])", "count_over_time(x[5m])", K(CALL), T(VECTOR)},
    {"days_in_month()", "days_in_month()", K(CALL), T(VECTOR)},
    {"days_in_month(x)", "days_in_month(x)", K(CALL), T(VECTOR)},
    {"day_of_month()", "day_of_month()", K(CALL), T(VECTOR)},
    {"day_of_month(x)", "day_of_month(x)", K(CALL), T(VECTOR)},
    {"day_of_week()", "day_of_week()", K(CALL), T(VECTOR)},
    {"day_of_week(x)", "day_of_week(x)", K(CALL), T(VECTOR)},
    {"day_of_year()", "day_of_year()", K(CALL), T(VECTOR)},
    {"day_of_year(x)", "day_of_year(x)", K(CALL), T(VECTOR)},
    {"deg(x)", "deg(x)", K(CALL), T(VECTOR)},
    {"delta(x[5m])", "delta(x[5m])", K(CALL), T(VECTOR)},
    {"deriv(x[5m])", "deriv(x[5m])", K(CALL), T(VECTOR)},
    {"exp(x)", "exp(x)", K(CALL), T(VECTOR)},
    {"floor(x)", "floor(x)", K(CALL), T(VECTOR)},
    {"histogram_count(x)", "histogram_count(x)", K(CALL), T(VECTOR)},
    {"histogram_fraction(0, 0.5, x)", "histogram_fraction(0, 0.5, x)", K(CALL), T(VECTOR)},
    {"histogram_quantile(0.9, rate(x_bucket[5m]))", "histogram_quantile(0.9, rate(x_bucket[5m]))",
     K(CALL), T(VECTOR)},
    {"histogram_sum(x)", "histogram_sum(x)", K(CALL), T(VECTOR)},
    {"holt_winters(x[5m], 0.5, 0.5)", "holt_winters(x[5m], 0.5, 0.5)", K(CALL), T(VECTOR)},
    {"hour()", "hour()", K(CALL), T(VECTOR)},
    {"hour(x)", "hour(x)", K(CALL), T(VECTOR)},
    {"idelta(x[5m])", "idelta(x[5m])", K(CALL), T(VECTOR)},
    {"increase(x[5m])", "increase(x[5m])", K(CALL), T(VECTOR)},
    {"irate(x[5m])", "irate(x[5m])", K(CALL), T(VECTOR)},
    {"label_join(x, \"d\", \",\", \"a\", \"b\")", "label_join(x, \"d\", \",\", \"a\", \"b\")",
     K(CALL), T(VECTOR)},
    {"label_join(x, \"d\", \",\")", "label_join(x, \"d\", \",\")", K(CALL), T(VECTOR)},
    {"label_replace(x, \"a\", \"$1\", \"b\", \"(.*)\")",
     "label_replace(x, \"a\", \"$1\", \"b\", \"(.*)\")", K(CALL), T(VECTOR)},
    {"last_over_time(x[5m])", "last_over_time(x[5m])", K(CALL), T(VECTOR)},
    {"ln(x)", "ln(x)", K(CALL), T(VECTOR)},
    {"log10(x)", "log10(x)", K(CALL), T(VECTOR)},
    {"log2(x)", "log2(x)", K(CALL), T(VECTOR)},
    {"max_over_time(x[5m])", "max_over_time(x[5m])", K(CALL), T(VECTOR)},
    {"min_over_time(x[5m])", "min_over_time(x[5m])", K(CALL), T(VECTOR)},
    {"minute()", "minute()", K(CALL), T(VECTOR)},
    {"minute(x)", "minute(x)", K(CALL), T(VECTOR)},
    {"month()", "month()", K(CALL), T(VECTOR)},
    {"month(x)", "month(x)", K(CALL), T(VECTOR)},
    {"pi()", "pi()", K(CALL), T(SCALAR)},
    {"predict_linear(x[5m], 3600)", "predict_linear(x[5m], 3600)", K(CALL), T(VECTOR)},
    {"present_over_time(x[5m])", "present_over_time(x[5m])", K(CALL), T(VECTOR)},
    {"quantile_over_time(0.5, x[5m])", "quantile_over_time(0.5, x[5m])", K(CALL), T(VECTOR)},
    {"rad(x)", "rad(x)", K(CALL), T(VECTOR)},
    {"rate(x[5m])", "rate(x[5m])", K(CALL), T(VECTOR)},
    {"resets(x[5m])", "resets(x[5m])", K(CALL), T(VECTOR)},
    {"round(x)", "round(x)", K(CALL), T(VECTOR)},
    {"round(x, 0.1)", "round(x, 0.1)", K(CALL), T(VECTOR)},
    {"scalar(x)", "scalar(x)", K(CALL), T(SCALAR)},
    {"sgn(x)", "sgn(x)", K(CALL), T(VECTOR)},
    {"sin(x)", "sin(x)", K(CALL), T(VECTOR)},
    {"sinh(x)", "sinh(x)", K(CALL), T(VECTOR)},
    {"sort(x)", "sort(x)", K(CALL), T(VECTOR)},
    {"sort_desc(x)", "sort_desc(x)", K(CALL), T(VECTOR)},
    {"sqrt(x)", "sqrt(x)", K(CALL), T(VECTOR)},
    {"stddev_over_time(x[5m])", "stddev_over_time(x[5m])", K(CALL), T(VECTOR)},
    {"stdvar_over_time(x[5m])", "stdvar_over_time(x[5m])", K(CALL), T(VECTOR)},
    {"sum_over_time(x[5m])", "sum_over_time(x[5m])", K(CALL), T(VECTOR)},
    {"tan(x)", "tan(x)", K(CALL), T(VECTOR)},
    {"tanh(x)", "tanh(x)", K(CALL), T(VECTOR)},
    {"time()", "time()", K(CALL), T(SCALAR)},
    {"timestamp(x)", "timestamp(x)", K(CALL), T(VECTOR)},
    {"vector(1)", "vector(1)", K(CALL), T(VECTOR)},
    {"year()", "year()", K(CALL), T(VECTOR)},
    {"year(x)", "year(x)", K(CALL), T(VECTOR)},
    {"rate(x[5m:])", "rate(x[5m:])", K(CALL), T(VECTOR)},
    {"time() - timestamp(up) > bool 300", "time() - timestamp(up) > bool 300", K(BINARY),
     T(VECTOR)},
    {"vector(time())", "vector(time())", K(CALL), T(VECTOR)},
    {"scalar(x) * 2", "scalar(x) * 2", K(BINARY), T(SCALAR)},
    {"foo[5m x]", "foo[5m:]", K(SUBQUERY), T(MATRIX)},
    {"foo{a=\"\303\277\"}", "foo{a=\"\303\277\"}", K(VECTOR), T(VECTOR)},
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
    /* Found by comparing against Prometheus: order of lexical and arity errors. */
    {"topk()\\(on", "1:7: parse error: unexpected character: '\\\\'"},
    {"sum by (a) ()\\", "1:1: parse error: no arguments for aggregate expression provided"},
    {"", "1:1: parse error: no expression found in input"},
    {" ", "1:1: parse error: no expression found in input"},
    {"# comment only", "1:1: parse error: no expression found in input"},
    {"sum(x))", "1:8: parse error: unexpected right parenthesis ')'"},
    {"sum(x y)", "1:7: parse error: unexpected identifier \"y\" in aggregation"},
    {"rate(x y)", "1:8: parse error: unexpected identifier \"y\""},
    {"(x y)", "1:4: parse error: unexpected identifier \"y\""},
    {"x y", "1:3: parse error: unexpected identifier \"y\""},
    {"(x", "1:3: parse error: unclosed left parenthesis"},
    {"x)", "1:3: parse error: unexpected right parenthesis ')'"},
    {"()", "1:2: parse error: unexpected \")\""},
    {"(", "1:2: parse error: unclosed left parenthesis"},
    {")", "1:2: parse error: unexpected right parenthesis ')'"},
    {"foo offset 0s", "1:12: parse error: duration must be greater than 0"},
    {"x[0s]", "1:3: parse error: duration must be greater than 0"},
    {"x[5m:0s]", "1:6: parse error: duration must be greater than 0"},
    {"sum by (a) x", "1:12: parse error: unexpected identifier \"x\" in aggregation"},
    {"x @ start", "1:10: parse error: unexpected end of input in @, expected timestamp"},
    {"x @ start(", "1:11: parse error: unclosed left parenthesis"},
    {"x @", "1:4: parse error: unexpected end of input in @, expected timestamp"},
    {"x @ foo", "1:5: parse error: unexpected identifier \"foo\" in @, expected timestamp"},
    {"@", "1:1: parse error: unexpected \"<Item 57385>\" <op:@>"},
    {"x @ Inf", "1:1: parse error: timestamp out of bounds for @ modifier: +Inf"},
    {"x @ NaN", "1:1: parse error: timestamp out of bounds for @ modifier: NaN"},
    {"rate(x)", "1:6: parse error: expected type range vector in call to function \"rate\", got "
                "instant vector"},
    {"1 > 2", "1:3: parse error: comparisons between scalars must use BOOL modifier"},
    {"topk(x)", "1:1: parse error: wrong number of arguments for aggregate expression provided, "
                "expected 2, got 1"},
    {"sum()", "1:1: parse error: no arguments for aggregate expression provided"},
    {"sum(x, y)", "1:1: parse error: wrong number of arguments for aggregate expression provided, "
                  "expected 1, got 2"},
    {"x and 1", "1:1: parse error: set operator \"and\" not allowed in binary scalar expression"},
    {"1 or x", "1:1: parse error: set operator \"or\" not allowed in binary scalar expression"},
    {"x and on(a) group_left y", "1:1: parse error: no grouping allowed for \"and\" operation"},
    {"x and bool y", "1:3: parse error: bool modifier can only be used on comparison operators"},
    {"x + bool y", "1:3: parse error: bool modifier can only be used on comparison operators"},
    {"round(x, 1, 2)",
     "1:1: parse error: expected at most 2 argument(s) in call to \"round\", got 3"},
    {"round()", "1:1: parse error: expected at least 1 argument(s) in call to \"round\", got 0"},
    {"time(1)", "1:1: parse error: expected 0 argument(s) in call to \"time\", got 1"},
    {"label_join(x, \"a\")",
     "1:1: parse error: expected at least 3 argument(s) in call to \"label_join\", got 2"},
    {"label_replace(x, \"a\", \"b\", \"c\")",
     "1:1: parse error: expected 5 argument(s) in call to \"label_replace\", got 4"},
    {"x[5m][10m:]",
     "1:1: parse error: subquery is only allowed on instant vector, got matrix instead"},
    {"-x[5m]", "1:1: parse error: unary expression only allowed on expressions of type scalar or "
               "instant vector, got \"range vector\""},
    {"-\"a\"", "1:1: parse error: unary expression only allowed on expressions of type scalar or "
               "instant vector, got \"string\""},
    {"{}", "1:1: parse error: vector selector must contain at least one non-empty matcher"},
    {"{a=\"\"}", "1:1: parse error: vector selector must contain at least one non-empty matcher"},
    {"{a=~\".*\"}",
     "1:1: parse error: vector selector must contain at least one non-empty matcher"},
    {"foo{__name__=\"x\"}",
     "1:1: parse error: metric name must not be set twice: \"foo\" or \"x\""},
    {"foo{__name__=~\"x\"}",
     "1:1: parse error: metric name must not be set twice: \"foo\" or \"x\""},
    {"{a=~\"(\"}", NULL},
    {"foo{", "1:5: parse error: unexpected end of input inside braces"},
    {"foo{a=\"b\"", "1:10: parse error: unexpected end of input inside braces"},
    {"foo{a}",
     "1:6: parse error: unexpected \"}\" in label matching, expected label matching operator"},
    {"foo{a=}", "1:7: parse error: unexpected \"}\" in label matching, expected string"},
    {"foo{a=\"b\" c=\"d\"}",
     "1:11: parse error: unexpected identifier \"c\" in label matching, expected \",\" or \"}\""},
    {"foo{,}",
     "1:5: parse error: unexpected \",\" in label matching, expected identifier or \"}\""},
    {"foo{a=\"b\",,}",
     "1:11: parse error: unexpected \",\" in label matching, expected identifier or \"}\""},
    {"foo{a==\"b\"}", "1:7: parse error: unexpected \"=\" in label matching, expected string"},
    {"foo{a:b=\"c\"}", "1:6: parse error: unexpected character inside braces: ':'"},
    {"foo{1a=\"b\"}", "1:5: parse error: unexpected character inside braces: '1'"},
    {"foo}", "1:4: parse error: unexpected character: '}'"},
    {"foo]", "1:4: parse error: unexpected right bracket ']'"},
    {"foo[5m", "1:7: parse error: unclosed left bracket"},
    {"foo[]", "1:5: parse error: missing unit character in duration"},
    {"foo[5]", "1:5: parse error: missing unit character in duration"},
    {"foo[-5m]", "1:5: parse error: missing unit character in duration"},
    {"foo[5mx]", "1:5: parse error: bad duration syntax: \"5mx\""},
    {"foo[5m:1]",
     "1:8: parse error: unexpected number \"1\" in subquery selector, expected duration or \"]\""},
    {"foo[5m:", "1:8: parse error: unclosed left bracket"},
    {"foo[[5m]]", "1:5: parse error: missing unit character in duration"},
    {"(foo)[5m]", "1:6: parse error: ranges only allowed for vector selectors"},
    {"sum(foo)[5m]", "1:9: parse error: ranges only allowed for vector selectors"},
    {"foo offset 1m [5m]", "1:15: parse error: no offset modifiers allowed before range"},
    {"foo @ 100 [5m]", "1:11: parse error: no @ modifiers allowed before range"},
    {"foo[5m] offset 1m offset 1m", "1:1: parse error: offset may not be set multiple times"},
    {"foo offset 5m offset 5m", "1:1: parse error: offset may not be set multiple times"},
    {"foo @ 1 @ 2", "1:1: parse error: @ <timestamp> may not be set multiple times"},
    {"foo offset", "1:11: parse error: unexpected end of input in offset, expected duration"},
    {"foo offset 5", "1:12: parse error: unexpected number \"5\" in offset, expected duration"},
    {"foo offset 1h1d", "1:12: parse error: not a valid duration string: \"1h1d\""},
    {"foo offset 5hs", "1:12: parse error: not a valid duration string: \"5hs\""},
    {"foo offset 293y", "1:12: parse error: duration out of range"},
    {"sum(foo) offset 1m", "1:1: parse error: offset modifier must be preceded by an instant "
                           "vector selector or range vector selector or a subquery"},
    {"1 offset 1m", "1:1: parse error: offset modifier must be preceded by an instant vector "
                    "selector or range vector selector or a subquery"},
    {"(foo) offset 5m", "1:1: parse error: offset modifier must be preceded by an instant vector "
                        "selector or range vector selector or a subquery"},
    {"sum(foo) @ 100", "1:1: parse error: @ modifier must be preceded by an instant vector "
                       "selector or range vector selector or a subquery"},
    {"\"a\" + 1",
     "1:1: parse error: binary expression must contain only scalar and instant vector types"},
    {"\"a\"[5m]", "1:4: parse error: ranges only allowed for vector selectors"},
    {"sum(\"a\")",
     "1:5: parse error: expected type instant vector in aggregation expression, got string"},
    {"count_values(1, x)",
     "1:14: parse error: expected type string in aggregation parameter, got scalar"},
    {"topk(\"a\", x)",
     "1:6: parse error: expected type scalar in aggregation parameter, got string"},
    {"quantile(x, x)",
     "1:10: parse error: expected type scalar in aggregation parameter, got instant vector"},
    {"foo(x)", "1:1: parse error: unknown function with name \"foo\""},
    {"Rate(x[5m])", "1:1: parse error: unknown function with name \"Rate\""},
    {"rate(x[5m],)", "1:11: parse error: trailing commas not allowed in function call args"},
    {"rate(,x)", "1:6: parse error: unexpected \",\""},
    {"rate x[5m]", "1:6: parse error: unexpected identifier \"x\""},
    {"sum by (a b) (x)",
     "1:11: parse error: unexpected identifier \"b\" in grouping opts, expected \",\" or \")\""},
    {"sum by (a:b) (x)",
     "1:9: parse error: unexpected metric identifier \"a:b\" in grouping opts, expected label"},
    {"sum by (1) (x)",
     "1:9: parse error: unexpected number \"1\" in grouping opts, expected label"},
    {"sum by (\"a\") (x)",
     "1:9: parse error: unexpected string \"\\\"a\\\"\" in grouping opts, expected label"},
    {"sum by a (x)",
     "1:8: parse error: unexpected identifier \"a\" in grouping opts, expected \"(\""},
    {"sum(x) by (a) by (b)", "1:15: parse error: unexpected <by>"},
    {"x + on(a) group_left(a) y",
     "1:3: parse error: label \"a\" must not occur in ON and GROUP clause at once"},
    {"x + on(a) 1", "1:1: parse error: vector matching only allowed between instant vectors"},
    {"x + on(a) ignoring(b) y", "1:11: parse error: unexpected <ignoring>"},
    {"x + group_left y", "1:5: parse error: unexpected <group_left>"},
    {"x ! y", "1:3: parse error: unexpected character after '!': ' '"},
    {"x =~ y", "1:3: parse error: unexpected character after '=': '~'"},
    {"!x", "1:1: parse error: unexpected character after '!': 'x'"},
    {"~x", "1:1: parse error: unexpected character: '~'"},
    {"x;", "1:2: parse error: unexpected character: ';'"},
    {"$x", "1:1: parse error: unexpected character: '$'"},
    {"\303\251", "1:1: parse error: unexpected character: '\303\251'"},
    {"\"unterminated", "1:1: parse error: unterminated quoted string"},
    {"'unterminated", "1:1: parse error: unterminated quoted string"},
    {"`unterminated", "1:1: parse error: unterminated raw string"},
    {"\"a\nb\"", "1:1: parse error: unterminated quoted string"},
    {"\"\\q\"", "1:1: parse error: unknown escape sequence U+0071 'q'"},
    {"\"\\x4\"", "1:1: parse error: illegal character U+0022 '\"' in escape sequence"},
    {"\"\\ud800\"", "1:1: parse error: escape sequence is an invalid Unicode code point"},
    {"\"\\U00110000\"", "1:1: parse error: escape sequence is an invalid Unicode code point"},
    {"\"\\400\"", "1:1: parse error: escape sequence is an invalid Unicode code point"},
    {"'\\\"'", "1:1: parse error: unknown escape sequence U+0022 '\"'"},
    {"\"\\'\"", "1:1: parse error: unknown escape sequence U+0027 '''"},
    {"1e",
     "1:1: parse error: error parsing number: strconv.ParseFloat: parsing \"1e\": invalid syntax"},
    {"0x",
     "1:1: parse error: error parsing number: strconv.ParseFloat: parsing \"0x\": invalid syntax"},
    {"0x1.8", "1:1: parse error: error parsing number: strconv.ParseFloat: parsing \"0x1.8\": "
              "invalid syntax"},
    {"1e309", "1:1: parse error: error parsing number: strconv.ParseFloat: parsing \"1e309\": "
              "value out of range"},
    {"123abc", "1:1: parse error: bad number or duration syntax: \"123\""},
    {"1..2", "1:3: parse error: unexpected number \".2\""},
    {"5m", "1:1: parse error: unexpected duration \"5m\""},
    {"foo\n+\n)", "3:2: parse error: unexpected right parenthesis ')'"},
    {"x{a!}", "1:4: parse error: unexpected character after '!' inside braces: '}'"},
    {"x{a=\"b\"}}", "1:9: parse error: unexpected character: '}'"},
    {"x{{", "1:3: parse error: unexpected left brace '{'"},
    {"x [", "1:4: parse error: missing unit character in duration"},
    {"x 12345678901234", "1:3: parse error: unexpected number \"1234567890\"..."},
    {"sum(x) \"abcdefghijklmnop\"", "1:8: parse error: unexpected string \"\\\"abcdefghi\"..."},
    {"x 5m30s20ms", "1:3: parse error: unexpected duration \"5m30s20ms\""},
    {"x by", "1:3: parse error: unexpected <by>"},
    {"x sum", "1:3: parse error: unexpected <aggr:sum>"},
    {"x start", "1:3: parse error: unexpected \"start\""},
    {"x ,", "1:3: parse error: unexpected \",\""},
    {"x @ 1e20 offset 5m",
     "1:1: parse error: timestamp out of bounds for @ modifier: 100000000000000000000.000000"},
    {"foo[5m:][10m:]",
     "1:1: parse error: subquery is only allowed on instant vector, got matrix instead"},
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
    /* Well inside the limits, both shapes parse. */
    memset(q, '(', 200);
    q[200] = '1';
    memset(q + 201, ')', 200);
    q[401] = '\0';
    pql_tree_t *t = parse_ok(q);
    pql_tree_free(t);
    wf_buf_t c = WF_BUF_INIT;
    wf_buf_puts(&c, "x");
    for (int i = 0; i < 200; i++) {
        wf_buf_puts(&c, " or x");
    }
    t = parse_ok(wf_buf_cstr(&c));
    assert_int_equal(root_of(t)->u.binary.op, PQL_OP_OR);
    pql_tree_free(t);
    wf_buf_free(&c);
    wf_free(q);
}

/* ---- Tree contents ------------------------------------------------------------------------ */

static void assert_str(wf_str_t s, const char *want)
{
    if (!wf_str_eq_c(s, want)) {
        fail_msg("got \"%.*s\", want \"%s\"", (int)s.len, s.p, want);
    }
}

static void test_selector_contents(void **state)
{
    (void)state;
    pql_tree_t *t = parse_ok("foo{a=\"b\",c=~\"d|e\",f!=\"\",g!~\"h.*\"} offset -5m @ 123.4567");
    const pql_node_t *n = root_of(t);
    assert_int_equal(n->kind, PQL_NODE_VECTOR);
    assert_int_equal(n->type, PQL_TYPE_VECTOR);
    assert_str(n->u.vector.name, "foo");
    assert_int_equal(n->u.vector.nmatchers, 5);
    const pql_matcher_t *m = n->u.vector.matchers;
    assert_int_equal(m[0].type, ST_MATCH_EQ);
    assert_str(m[0].name, "__name__");
    assert_str(m[0].value, "foo");
    assert_int_equal(m[1].type, ST_MATCH_EQ);
    assert_str(m[1].name, "a");
    assert_str(m[1].value, "b");
    assert_int_equal(m[2].type, ST_MATCH_RE);
    assert_str(m[2].value, "d|e");
    assert_int_equal(m[3].type, ST_MATCH_NE);
    assert_str(m[3].value, "");
    assert_int_equal(m[4].type, ST_MATCH_NRE);
    /* Every matcher is compiled, owned by the tree, and anchored like Prometheus's. */
    assert_int_equal(t->ncompiled, 5);
    for (size_t i = 0; i < 5; i++) {
        assert_non_null(m[i].compiled);
    }
    assert_true(st_matcher_matches(m[0].compiled, WF_STR_LIT("foo")));
    assert_false(st_matcher_matches(m[0].compiled, WF_STR_LIT("foox")));
    assert_true(st_matcher_matches(m[2].compiled, WF_STR_LIT("e")));
    assert_false(st_matcher_matches(m[2].compiled, WF_STR_LIT("de")));
    assert_true(st_matcher_matches(m[3].compiled, WF_STR_LIT("x")));
    assert_false(st_matcher_matches(m[3].compiled, WF_STR_LIT("")));
    assert_false(st_matcher_matches(m[4].compiled, WF_STR_LIT("hello")));
    assert_true(st_matcher_matches(m[4].compiled, WF_STR_LIT("xh")));
    assert_int_equal(n->u.vector.offset_ms, -300000);
    assert_int_equal(n->u.vector.at, PQL_AT_TIME);
    assert_int_equal(n->u.vector.at_ms, 123457); /* rounded to the millisecond */
    pql_tree_free(t);

    t = parse_ok("{__name__=~\"up|down\"} @ end()");
    n = root_of(t);
    assert_int_equal(n->u.vector.name.len, 0);
    assert_int_equal(n->u.vector.nmatchers, 1);
    assert_int_equal(n->u.vector.at, PQL_AT_END);
    assert_int_equal(n->u.vector.offset_ms, 0);
    pql_tree_free(t);

    t = parse_ok("rate(x[1h30m] offset 1w @ start())");
    n = root_of(t);
    assert_int_equal(n->kind, PQL_NODE_CALL);
    assert_int_equal(n->u.call.fn, PQL_FN_RATE);
    assert_int_equal(n->u.call.nargs, 1);
    const pql_node_t *mx = n->u.call.args[0];
    assert_int_equal(mx->kind, PQL_NODE_MATRIX);
    assert_int_equal(mx->type, PQL_TYPE_MATRIX);
    assert_int_equal(mx->u.matrix.range_ms, 5400000);
    assert_int_equal(mx->u.matrix.vector->kind, PQL_NODE_VECTOR);
    assert_int_equal(mx->u.matrix.vector->u.vector.offset_ms, 7 * 86400000LL);
    assert_int_equal(mx->u.matrix.vector->u.vector.at, PQL_AT_START);
    pql_tree_free(t);

    t = parse_ok("max_over_time(deriv(x[1m])[1y:10ms] offset 2d @ -1)");
    const pql_node_t *sq = root_of(t)->u.call.args[0];
    assert_int_equal(sq->kind, PQL_NODE_SUBQUERY);
    assert_int_equal(sq->type, PQL_TYPE_MATRIX);
    assert_int_equal(sq->u.subquery.range_ms, 365 * 86400000LL);
    assert_int_equal(sq->u.subquery.step_ms, 10);
    assert_int_equal(sq->u.subquery.offset_ms, 2 * 86400000LL);
    assert_int_equal(sq->u.subquery.at, PQL_AT_TIME);
    assert_int_equal(sq->u.subquery.at_ms, -1000);
    assert_int_equal(sq->u.subquery.expr->kind, PQL_NODE_CALL);
    pql_tree_free(t);

    t = parse_ok("x[5m:]");
    assert_int_equal(root_of(t)->u.subquery.step_ms, 0);
    pql_tree_free(t);
}

static void test_aggregate_contents(void **state)
{
    (void)state;
    pql_tree_t *t = parse_ok("sum without (a, b) (x)");
    const pql_node_t *n = root_of(t);
    assert_int_equal(n->kind, PQL_NODE_AGGREGATE);
    assert_int_equal(n->u.aggregate.op, PQL_AGG_SUM);
    assert_true(n->u.aggregate.without);
    assert_int_equal(n->u.aggregate.grouping.n, 2);
    assert_str(n->u.aggregate.grouping.names[0], "a");
    assert_str(n->u.aggregate.grouping.names[1], "b");
    assert_null(n->u.aggregate.param);
    assert_int_equal(n->u.aggregate.expr->kind, PQL_NODE_VECTOR);
    pql_tree_free(t);

    t = parse_ok("topk(5, x) by (le)");
    n = root_of(t);
    assert_int_equal(n->u.aggregate.op, PQL_AGG_TOPK);
    assert_false(n->u.aggregate.without);
    assert_int_equal(n->u.aggregate.grouping.n, 1);
    assert_int_equal(n->u.aggregate.param->kind, PQL_NODE_NUMBER);
    assert_true(n->u.aggregate.param->u.number == 5.0);
    pql_tree_free(t);

    t = parse_ok("count_values(\"ver\", build_info)");
    n = root_of(t);
    assert_int_equal(n->u.aggregate.op, PQL_AGG_COUNT_VALUES);
    assert_int_equal(n->u.aggregate.param->kind, PQL_NODE_STRING);
    assert_str(n->u.aggregate.param->u.string, "ver");
    pql_tree_free(t);

    static const struct {
        const char *q;
        pql_agg_op_t op;
    } ops[] = {
        {"sum(x)", PQL_AGG_SUM},
        {"avg(x)", PQL_AGG_AVG},
        {"count(x)", PQL_AGG_COUNT},
        {"min(x)", PQL_AGG_MIN},
        {"max(x)", PQL_AGG_MAX},
        {"group(x)", PQL_AGG_GROUP},
        {"stddev(x)", PQL_AGG_STDDEV},
        {"stdvar(x)", PQL_AGG_STDVAR},
        {"topk(1, x)", PQL_AGG_TOPK},
        {"bottomk(1, x)", PQL_AGG_BOTTOMK},
        {"quantile(1, x)", PQL_AGG_QUANTILE},
        {"count_values(\"a\", x)", PQL_AGG_COUNT_VALUES},
    };
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        t = parse_ok(ops[i].q);
        assert_int_equal(root_of(t)->u.aggregate.op, ops[i].op);
        pql_tree_free(t);
    }
}

static void test_binary_contents(void **state)
{
    (void)state;
    pql_tree_t *t = parse_ok("a / on(x) group_left(y, z) b");
    const pql_node_t *n = root_of(t);
    assert_int_equal(n->kind, PQL_NODE_BINARY);
    assert_int_equal(n->u.binary.op, PQL_OP_DIV);
    assert_int_equal(n->u.binary.card, PQL_CARD_MANY_TO_ONE);
    assert_true(n->u.binary.on);
    assert_int_equal(n->u.binary.matching.n, 1);
    assert_str(n->u.binary.matching.names[0], "x");
    assert_int_equal(n->u.binary.include.n, 2);
    assert_str(n->u.binary.include.names[1], "z");
    assert_false(n->u.binary.return_bool);
    /* Positions: the operator's for the binary node, each operand's own. */
    assert_int_equal(n->pos, 2);
    assert_int_equal(n->u.binary.lhs->pos, 0);
    assert_int_equal(n->u.binary.rhs->pos, 27);
    pql_tree_free(t);

    t = parse_ok("a - ignoring(x) group_right b");
    n = root_of(t);
    assert_int_equal(n->u.binary.card, PQL_CARD_ONE_TO_MANY);
    assert_false(n->u.binary.on);
    assert_int_equal(n->u.binary.include.n, 0);
    pql_tree_free(t);

    /* Set operators are many-to-many, with or without matching labels. */
    const char *setops[] = {"a and b", "a or on(x) b", "a unless ignoring(y) b"};
    const pql_binop_t setop[] = {PQL_OP_AND, PQL_OP_OR, PQL_OP_UNLESS};
    for (size_t i = 0; i < 3; i++) {
        t = parse_ok(setops[i]);
        assert_int_equal(root_of(t)->u.binary.op, setop[i]);
        assert_int_equal(root_of(t)->u.binary.card, PQL_CARD_MANY_TO_MANY);
        pql_tree_free(t);
    }

    t = parse_ok("x > bool 1");
    n = root_of(t);
    assert_int_equal(n->u.binary.op, PQL_OP_GTR);
    assert_true(n->u.binary.return_bool);
    assert_int_equal(n->type, PQL_TYPE_VECTOR);
    assert_int_equal(n->u.binary.card, PQL_CARD_ONE_TO_ONE);
    pql_tree_free(t);

    /* Vector matching is dropped when one side is a scalar, as Prometheus does. */
    t = parse_ok("1 + on() x");
    n = root_of(t);
    assert_false(n->u.binary.on);
    assert_int_equal(n->u.binary.card, PQL_CARD_ONE_TO_ONE);
    pql_tree_free(t);

    /* Precedence and associativity: a - b * c ^ d ^ e == a - (b * (c ^ (d ^ e))). */
    t = parse_ok("a - b * c ^ d ^ e");
    n = root_of(t);
    assert_int_equal(n->u.binary.op, PQL_OP_SUB);
    const pql_node_t *r = n->u.binary.rhs;
    assert_int_equal(r->u.binary.op, PQL_OP_MUL);
    r = r->u.binary.rhs;
    assert_int_equal(r->u.binary.op, PQL_OP_POW);
    assert_int_equal(r->u.binary.lhs->kind, PQL_NODE_VECTOR);
    assert_int_equal(r->u.binary.rhs->u.binary.op, PQL_OP_POW);
    pql_tree_free(t);

    /* Left associativity: a / b / c == (a / b) / c; or binds loosest. */
    t = parse_ok("a / b / c or d and e");
    n = root_of(t);
    assert_int_equal(n->u.binary.op, PQL_OP_OR);
    assert_int_equal(n->u.binary.lhs->u.binary.op, PQL_OP_DIV);
    assert_int_equal(n->u.binary.lhs->u.binary.lhs->u.binary.op, PQL_OP_DIV);
    assert_int_equal(n->u.binary.rhs->u.binary.op, PQL_OP_AND);
    pql_tree_free(t);

    /* Unary minus binds looser than ^ and folds into a number literal only. */
    t = parse_ok("-2^2");
    n = root_of(t);
    assert_int_equal(n->kind, PQL_NODE_UNARY);
    assert_true(n->u.unary.negate);
    assert_int_equal(n->u.unary.expr->u.binary.op, PQL_OP_POW);
    assert_true(n->u.unary.expr->u.binary.lhs->u.number == 2.0);
    pql_tree_free(t);
    t = parse_ok("- 1");
    assert_int_equal(root_of(t)->kind, PQL_NODE_NUMBER);
    assert_true(root_of(t)->u.number == -1.0);
    pql_tree_free(t);
    t = parse_ok("-(1)");
    assert_int_equal(root_of(t)->kind, PQL_NODE_UNARY);
    assert_int_equal(root_of(t)->u.unary.expr->kind, PQL_NODE_PAREN);
    assert_int_equal(root_of(t)->type, PQL_TYPE_SCALAR);
    pql_tree_free(t);
    t = parse_ok("1 + 2 * 3");
    n = root_of(t);
    assert_int_equal(n->kind, PQL_NODE_BINARY); /* no constant folding */
    assert_int_equal(n->type, PQL_TYPE_SCALAR);
    pql_tree_free(t);
}

static void test_literals(void **state)
{
    (void)state;
    static const struct {
        const char *q;
        double v;
    } nums[] = {
        {"0x1f", 31},    {"010", 8},     {"08", 8},
        {"1.5e3", 1500}, {".5", 0.5},    {"5.", 5},
        {"1e-400", 0},   {"-0x10", -16}, {"12345678901234567890", 12345678901234567890.0},
    };
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        pql_tree_t *t = parse_ok(nums[i].q);
        if (root_of(t)->u.number != nums[i].v) {
            fail_msg("%s: got %.17g", nums[i].q, root_of(t)->u.number);
        }
        pql_tree_free(t);
    }
    pql_tree_t *t = parse_ok("Inf");
    assert_true(isinf(root_of(t)->u.number) && root_of(t)->u.number > 0);
    pql_tree_free(t);
    t = parse_ok("-iNf");
    assert_true(isinf(root_of(t)->u.number) && root_of(t)->u.number < 0);
    pql_tree_free(t);
    t = parse_ok("nAn");
    assert_true(isnan(root_of(t)->u.number));
    pql_tree_free(t);

    /* Go escapes: \x and octal are bytes, \u and \U are UTF-8. */
    t = parse_ok("\"\\x41\\101\\u00e9\\U0001F600\\n\\t\\\\\\\"\"");
    assert_int_equal(root_of(t)->kind, PQL_NODE_STRING);
    assert_str(root_of(t)->u.string, "AA\xc3\xa9\xf0\x9f\x98\x80\n\t\\\"");
    pql_tree_free(t);
    t = parse_ok("'it\\'s \"x\"'");
    assert_str(root_of(t)->u.string, "it's \"x\"");
    pql_tree_free(t);
    t = parse_ok("`raw\\n\nline`");
    assert_str(root_of(t)->u.string, "raw\\n\nline");
    pql_tree_free(t);
    t = parse_ok("{a=\"\\xff\\x00\"}");
    wf_str_t v = root_of(t)->u.vector.matchers[0].value;
    assert_int_equal(v.len, 2);
    assert_int_equal((uint8_t)v.p[0], 0xff);
    assert_int_equal(v.p[1], 0);
    /* The printer escapes what Go's %q escapes. */
    char *f = format_tree(root_of(t));
    assert_string_equal(f, "{a=\"\\xff\\x00\"}");
    wf_free(f);
    pql_tree_free(t);
}

static void test_functions(void **state)
{
    (void)state;
    int with_names = 0;
    for (int i = 0; i < PQL_FN_COUNT_; i++) {
        const pql_fn_sig_t *s = pql_fn_sig((pql_fn_t)i);
        assert_non_null(s);
        assert_non_null(s->name);
        assert_true(s->nargs >= 0 && s->nargs <= 5);
        assert_int_equal(pql_fn_lookup(s->name, strlen(s->name)), i);
        with_names++;
    }
    assert_int_equal(with_names, 70);
    assert_null(pql_fn_sig(PQL_FN_COUNT_));
    assert_int_equal(pql_fn_lookup("rate", 4), PQL_FN_RATE);
    assert_int_equal(pql_fn_lookup("ratex", 4), PQL_FN_RATE); /* length-bounded */
    assert_int_equal(pql_fn_lookup("Rate", 4), -1);
    assert_int_equal(pql_fn_lookup("nope", 4), -1);
    const pql_fn_sig_t *s = pql_fn_sig(PQL_FN_LABEL_REPLACE);
    assert_int_equal(s->nargs, 5);
    assert_int_equal(s->args[4], PQL_TYPE_STRING);
    s = pql_fn_sig(PQL_FN_LABEL_JOIN);
    assert_int_equal(s->variadic, -1);
    s = pql_fn_sig(PQL_FN_ROUND);
    assert_int_equal(s->nargs, 2);
    assert_int_equal(s->variadic, 1);
    s = pql_fn_sig(PQL_FN_HOLT_WINTERS);
    assert_int_equal(s->args[0], PQL_TYPE_MATRIX);
    assert_int_equal(s->ret, PQL_TYPE_VECTOR);
    assert_int_equal(pql_fn_sig(PQL_FN_TIME)->ret, PQL_TYPE_SCALAR);
    assert_int_equal(pql_fn_sig(PQL_FN_SCALAR)->ret, PQL_TYPE_SCALAR);
    assert_string_equal(pql_type_name(PQL_TYPE_SCALAR), "scalar");
    assert_string_equal(pql_type_name(PQL_TYPE_VECTOR), "instant vector");
    assert_string_equal(pql_type_name(PQL_TYPE_MATRIX), "range vector");
    assert_string_equal(pql_type_name(PQL_TYPE_STRING), "string");

    /* label_join takes any number of source labels, all strings. */
    pql_tree_t *t = parse_ok("label_join(x, \"d\", \"-\", \"a\", \"b\", \"c\", \"d\", \"e\")");
    assert_int_equal(root_of(t)->u.call.nargs, 8);
    pql_tree_free(t);
    check_invalid("label_join(x, \"d\", \"-\", \"a\", 1)", 31, WF_E_INVAL,
                  "1:30: parse error: expected type string in call to function \"label_join\", "
                  "got scalar");
}

/* Inputs a C string literal table cannot hold: bytes that are not UTF-8, NUL, lines. */
static void test_bytes_and_positions(void **state)
{
    (void)state;
    check_invalid("foo{a=\"\xff\"}", 10, WF_E_INVAL, "1:7: parse error: invalid UTF-8 rune");
    check_invalid("\xff", 1, WF_E_INVAL, "1:1: parse error: unexpected character: '\xef\xbf\xbd'");
    check_invalid("\"\xef\xbf\xbd\"", 5, WF_E_INVAL, "1:1: parse error: invalid UTF-8 rune");
    check_invalid("foo\0", 4, WF_E_INVAL, "1:4: parse error: unexpected character: '\\x00'");
    check_invalid("x\n+\n)", 5, WF_E_INVAL, "3:2: parse error: unexpected right parenthesis ')'");
    check_invalid("x\n+ \n  y[0s]", 12, WF_E_INVAL,
                  "3:5: parse error: duration must be greater than 0");
    check_invalid("\xe2\x98\x83", 3, WF_E_INVAL,
                  "1:1: parse error: unexpected character: '\xe2\x98\x83'");
    pql_tree_t *t = NULL;
    pql_parse_error_t err;
    assert_int_equal(pql_parse("foo{a=\"\0\"}", 10, &t, &err), 0);
    assert_int_equal(root_of(t)->u.vector.matchers[1].value.len, 1);
    pql_tree_free(t);
    /* The error position is the byte offset. */
    assert_int_equal(pql_parse("sum(x) +", 8, &t, &err), WF_E_INVAL);
    assert_int_equal(err.pos, 8);
    assert_string_equal(err.msg, "1:9: parse error: unexpected end of input");
    /* A NULL error pointer is allowed. */
    assert_int_equal(pql_parse("(", 1, &t, NULL), WF_E_INVAL);
    assert_null(t);
    pql_tree_free(NULL);
}

static void test_length_limit(void **state)
{
    (void)state;
    size_t limit = 64 * 1024;
    char *q = wf_malloc(limit + 2);
    /* Exactly at the limit: a selector with one long label value. */
    memcpy(q, "x{a=\"", 5);
    memset(q + 5, 'v', limit - 7);
    memcpy(q + limit - 2, "\"}", 2);
    pql_tree_t *t = NULL;
    pql_parse_error_t err;
    int rc = pql_parse(q, limit, &t, &err);
    if (rc != 0) {
        fail_msg("%s", err.msg);
    }
    assert_int_equal(root_of(t)->u.vector.matchers[1].value.len, limit - 7);
    pql_tree_free(t);
    q[limit] = ' ';
    assert_int_equal(pql_parse(q, limit + 1, &t, &err), WF_E_LIMIT);
    assert_null(t);
    assert_non_null(strstr(err.msg, "too long"));
    wf_free(q);
}

/* ---- Reference queries -------------------------------------------------------------------- */

static char *read_ref(const char *rel)
{
    char *path = wt_ref_path(rel);
    if (path == NULL) {
        return NULL;
    }
    size_t len = 0;
    char *data = wt_read_file(path, &len);
    wf_free(path);
    return data;
}

static bool is_word(char c)
{
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/*
 * Grafana variables of the Istio dashboards: $__rate_interval -> 1m, $qrep -> source,
 * $__range -> 5m; any other $name or ${name} -> .* inside a regex matcher's string, else a
 * plain word.
 */
static void substitute_grafana(const char *in, size_t n, wf_buf_t *out)
{
    char quote = 0;
    bool regex = false;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (quote != 0) {
            if (c == '\\' && i + 1 < n) {
                wf_buf_putc(out, (uint8_t)c);
                wf_buf_putc(out, (uint8_t)in[++i]);
                continue;
            }
            if (c == quote) {
                quote = 0;
            }
        } else if (c == '"' || c == '\'' || c == '`') {
            quote = c;
            regex = i >= 2 && in[i - 1] == '~';
        }
        if (c != '$') {
            wf_buf_putc(out, (uint8_t)c);
            continue;
        }
        size_t j = i + 1;
        bool braced = j < n && in[j] == '{';
        if (braced) {
            j++;
        }
        size_t s = j;
        while (j < n && is_word(in[j])) {
            j++;
        }
        wf_str_t name = {in + s, j - s};
        if (braced && j < n && in[j] == '}') {
            j++;
        }
        if (wf_str_eq_c(name, "__rate_interval")) {
            wf_buf_puts(out, "1m");
        } else if (wf_str_eq_c(name, "qrep")) {
            wf_buf_puts(out, "source");
        } else if (wf_str_eq_c(name, "__range")) {
            wf_buf_puts(out, "5m");
        } else {
            wf_buf_puts(out, quote != 0 && regex ? ".*" : "bookinfo");
        }
        i = j - 1;
    }
}

static int parse_or_report(const char *q, size_t len, const char *origin)
{
    pql_tree_t *t = NULL;
    pql_parse_error_t err;
    if (pql_parse(q, len, &t, &err) != 0) {
        print_message("%s: %.*s\n  -> %s\n", origin, (int)len, q, err.msg);
        return 1;
    }
    /* Round trip too: these are the queries real users send. */
    char *f = format_tree(t->root);
    pql_tree_t *t2 = NULL;
    int bad = pql_parse(f, strlen(f), &t2, &err) != 0 || !pql_node_equal(t->root, t2->root);
    if (bad) {
        print_message("%s: %.*s\n  -> formats as %s, which does not round-trip\n", origin, (int)len,
                      q, f);
    }
    wf_free(f);
    pql_tree_free(t2);
    pql_tree_free(t);
    return bad;
}

static void test_istio_dashboards(void **state)
{
    (void)state;
    char *data = read_ref("istio/dashboard-queries.txt");
    if (data == NULL) {
        wt_skip();
    }
    int n = 0, bad = 0;
    for (char *line = data; *line != '\0';) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (len > 0) {
            wf_buf_t q = WF_BUF_INIT;
            substitute_grafana(line, len, &q);
            bad += parse_or_report((const char *)q.data, q.len, "istio");
            wf_buf_free(&q);
            n++;
        }
        line += len + (nl ? 1 : 0);
    }
    print_message("istio dashboard queries: %d parsed, %d failed\n", n - bad, bad);
    assert_true(n >= 200);
    assert_int_equal(bad, 0);
    wf_free(data);
}

/* Values for the arguments of Kiali's query templates (bookinfo, default graph settings),
 * matched by a fragment of the Go argument expression; the first match wins. */
static const struct {
    const char *arg;
    const char *value;
} kiali_args[] = {
    {"GetReporter(\"source\"", "reporter=~\"waypoint|source\""},
    {"GetReporter(\"destination\"", "reporter=~\"waypoint|destination\""},
    {"GetApp(", "app!=\"ztunnel\","},
    {"inboundReporter", "reporter=\"destination\""},
    {"outboutReporter", "reporter=\"source\""},
    {"reporter", "reporter=\"source\""},
    {"destCluster", ",destination_cluster=\"Kubernetes\""},
    {"sourceCluster", ",source_cluster=\"Kubernetes\""},
    {"Seconds()", "600"},
    {"podRegex", "productpage-v1-1|reviews-v1-2"},
    {"pods[0].Name", "productpage-v1-1"},
    {"podName", "productpage-v1-1"},
    {"n.Workload", "productpage-v1"},
    {"n.Version", "v1"},
    {"ext.Name", "ext"},
    {".App", "productpage"},
    {"n.Service", "productpage"},
    {"AggregateValue", "GET /reviews"},
    {"Aggregate", "request_operation"},
    {"serviceFragment", ",destination_service_name=\"productpage\""},
    {"RateFunc", "rate"},
    {"aggregator", "sum"},
    {"groupingAvg", " by (destination_service)"},
    {"groupingQuantile", ",destination_service"},
    {"groupBy", "source_workload,destination_service"},
    {"grouping", "source_workload,destination_service"},
    {"labelQueryString", "{destination_service_namespace=\"bookinfo\"}"},
    {"quantile", "0.95"},
    {"limit", "10"},
    {"Interval", "5m"},
    {"interval", "5m"},
    {"timeRange", "5m"},
    {"duration.Round", "10m0s"},
    {"idleCondition", "> 0"},
    {"Query", "sum(rate(istio_tcp_sent_bytes_total{reporter=\"source\"}[600s])) by (app) > 0"},
    {"query", "sum(rate(istio_requests_total{reporter=\"source\"}[600s])) by (app) > 0"},
    {"metric", "istio_requests_total"},
    {"namespace", "bookinfo"},
};

/* Split Kiali's ARGS line into argument expressions (top-level commas; the extractor's
 * "// range duration for the query" comment sits between two arguments). */
static size_t split_args(const char *s, size_t n, wf_str_t *out, size_t max)
{
    static const char comment[] = "// range duration for the query";
    size_t k = 0, start = 0;
    int depth = 0;
    char quote = 0;
    for (size_t i = 0; i <= n && k < max; i++) {
        char c = i < n ? s[i] : ',';
        if (quote != 0) {
            if (c == quote) {
                quote = 0;
            }
            continue;
        }
        if (i < n && strncmp(s + i, comment, sizeof(comment) - 1) == 0) {
            i += sizeof(comment) - 2;
            start = i + 1;
            continue;
        }
        if (c == '"' || c == '`') {
            quote = c;
        } else if (c == '(' || c == '[') {
            depth++;
        } else if (c == ')' || c == ']') {
            depth--;
        } else if (c == ',' && depth == 0) {
            size_t a = start, b = i;
            while (a < b && (s[a] == ' ' || s[a] == '\t')) {
                a++;
            }
            while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t')) {
                b--;
            }
            if (b > a) {
                out[k++] = (wf_str_t){s + a, b - a};
            }
            start = i + 1;
        }
    }
    return k;
}

static const char *kiali_value(wf_str_t arg, bool in_braces)
{
    if (arg.len >= 2 && arg.p[0] == '"') {
        return NULL; /* a literal: its content */
    }
    if (memmem(arg.p, arg.len, "labels", 6) != NULL) {
        return in_braces ? "destination_service_namespace=\"bookinfo\""
                         : "{destination_service_namespace=\"bookinfo\"}";
    }
    for (size_t i = 0; i < sizeof(kiali_args) / sizeof(kiali_args[0]); i++) {
        if (memmem(arg.p, arg.len, kiali_args[i].arg, strlen(kiali_args[i].arg)) != NULL) {
            return kiali_args[i].value;
        }
    }
    return "bookinfo";
}

/* A value for a placeholder judged from where it sits, for the few templates whose ARGS the
 * extractor garbled (they hold a whole fmt.Sprintf statement). */
static const char *kiali_context_value(const wf_buf_t *so_far, const char *next, bool in_braces)
{
    char prev = so_far->len > 0 ? (char)so_far->data[so_far->len - 1] : 0;
    if (next[0] == '{' || next[0] == '_') {
        return "istio_requests_total";
    }
    if (next[0] == 's' && next[1] == ']') {
        return "600";
    }
    if (prev == '[') {
        return "5m";
    }
    if (prev == '"') {
        return "bookinfo";
    }
    if (in_braces) {
        return "reporter=\"destination\"";
    }
    if (prev == '(') {
        return "source_workload";
    }
    return "> 0";
}

/* Render one Kiali template (a Go string literal) with its arguments. */
static void render_kiali(const char *tpl, size_t tn, const char *args, size_t an, wf_buf_t *out)
{
    wf_str_t argv[32];
    size_t argc = split_args(args, an, argv, 32);
    bool garbled = memmem(args, an, "fmt.Sprintf(", 12) != NULL;
    size_t ai = 0;
    bool raw = tpl[0] == '`';
    int braces = 0;
    for (size_t i = 1; i + 1 < tn; i++) {
        char c = tpl[i];
        if (!raw && c == '\\' && i + 2 < tn) {
            wf_buf_putc(out, (uint8_t)tpl[++i]);
            continue;
        }
        if (c == '{') {
            braces++;
        } else if (c == '}') {
            braces--;
        }
        if (c != '%') {
            wf_buf_putc(out, (uint8_t)c);
            continue;
        }
        /* A verb: %s %v %q %d %.2f */
        size_t j = i + 1;
        while (j + 1 < tn && (tpl[j] == '.' || (tpl[j] >= '0' && tpl[j] <= '9'))) {
            j++;
        }
        char verb = tpl[j];
        wf_str_t arg = ai < argc ? argv[ai] : (wf_str_t){"", 0};
        ai++;
        const char *v = garbled ? kiali_context_value(out, tpl + j + 1, braces > 0)
                                : kiali_value(arg, braces > 0);
        if (verb == 'q') {
            wf_buf_puts(out, "\"bookinfo\"");
        } else if (verb == 'f') {
            wf_buf_puts(out, "0.95");
        } else if (v == NULL) {
            wf_buf_append(out, arg.p + 1, arg.len - 2);
        } else {
            wf_buf_puts(out, v);
        }
        i = j;
    }
}

static void test_kiali_queries(void **state)
{
    (void)state;
    char *data = read_ref("kiali/queries.txt");
    if (data == NULL) {
        wt_skip();
    }
    int n = 0, bad = 0;
    bool examples = false; /* between the RENDERED EXAMPLES and VERBATIM TEMPLATES headings */
    const char *tpl = NULL;
    size_t tpl_len = 0;
    for (char *line = data; *line != '\0';) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        char *s = line;
        size_t sl = len;
        while (sl > 0 && (*s == ' ' || *s == '\t')) {
            s++;
            sl--;
        }
        if (sl > 0 && *s == '#') {
            if (memmem(s, sl, "RENDERED EXAMPLES", 17) != NULL) {
                examples = true;
            } else if (memmem(s, sl, "VERBATIM TEMPLATES", 18) != NULL) {
                examples = false;
            }
        } else if (sl > 10 && strncmp(s, "TEMPLATE: ", 10) == 0 && (s[10] == '`' || s[10] == '"')) {
            tpl = s + 10;
            tpl_len = sl - 10;
        } else if (sl > 6 && strncmp(s, "ARGS: ", 6) == 0 && tpl != NULL) {
            wf_buf_t q = WF_BUF_INIT;
            render_kiali(tpl, tpl_len, s + 6, sl - 6, &q);
            bad += parse_or_report((const char *)q.data, q.len, "kiali template");
            wf_buf_free(&q);
            tpl = NULL;
            n++;
        } else if (examples && sl > 0) {
            /* A rendered example query. */
            bad += parse_or_report(s, sl, "kiali example");
            n++;
        }
        line += len + (nl ? 1 : 0);
    }
    print_message("kiali queries: %d parsed, %d failed\n", n - bad, bad);
    assert_true(n >= 90);
    assert_int_equal(bad, 0);
    wf_free(data);
}

/* The multi-line form of /api/v1/format_query (Prometheus's Pretty), checked against 2.42. */
static void test_pretty(void **state)
{
    (void)state;
    static const struct {
        const char *q, *want;
    } cases[] = {
        {"sum(rate(istio_requests_total{reporter=\"source\",source_workload_namespace=\"bookinfo\","
         "source_workload=\"productpage-v1\"}[1m])) by (destination_canonical_service)",
         "sum by (destination_canonical_service) (\n  rate(\n    "
         "istio_requests_total{reporter=\"source\",source_workload=\"productpage-v1\",source_"
         "workload_namespace=\"bookinfo\"}[1m]\n  )\n)"},
        {"histogram_quantile(0.95, "
         "sum(rate(istio_request_duration_milliseconds_bucket{reporter=\"source\",source_workload_"
         "namespace=\"bookinfo\"}[1m])) by (le,destination_canonical_service))",
         "histogram_quantile(\n  0.95,\n  sum by (le, destination_canonical_service) (\n    "
         "rate(\n      "
         "istio_request_duration_milliseconds_bucket{reporter=\"source\",source_workload_namespace="
         "\"bookinfo\"}[1m]\n    )\n  )\n)"},
        {"-sum(rate(istio_requests_total{reporter=\"source\",source_workload_namespace="
         "\"bookinfo\",source_workload=\"productpage-v1\"}[1m])) / on(a) group_left(b) topk(5, "
         "sum(rate(istio_requests_total{reporter=\"destination\",destination_workload_namespace="
         "\"bookinfo\"}[5m])) by (source_workload))",
         "  -sum(\n    rate(\n      "
         "istio_requests_total{reporter=\"source\",source_workload=\"productpage-v1\",source_"
         "workload_namespace=\"bookinfo\"}[1m]\n    )\n  )\n/ on (a) group_left (b)\n  topk(\n    "
         "5,\n    sum by (source_workload) (\n      "
         "rate(istio_requests_total{destination_workload_namespace=\"bookinfo\",reporter="
         "\"destination\"}[5m])\n    )\n  )"},
        {"max_over_time(sum(rate(istio_requests_total{reporter=\"source\",source_workload_"
         "namespace=\"bookinfo\",source_workload=\"productpage-v1\"}[1m]))[1h:5m] offset 1d)",
         "max_over_time(\n  sum(\n    rate(\n      "
         "istio_requests_total{reporter=\"source\",source_workload=\"productpage-v1\",source_"
         "workload_namespace=\"bookinfo\"}[1m]\n    )\n  )[1h:5m] offset 1d\n)"},
        {"(sum(rate(istio_requests_total{reporter=\"source\",source_workload_namespace="
         "\"bookinfo\",source_workload=\"productpage-v1\"}[1m])) > bool 0)",
         "(\n    sum(\n      rate(\n        "
         "istio_requests_total{reporter=\"source\",source_workload=\"productpage-v1\",source_"
         "workload_namespace=\"bookinfo\"}[1m]\n      )\n    )\n  > bool\n    0\n)"},
        {"label_replace(x{a=\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}, \"dst\", \"$1\", "
         "\"src\", \"(aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.*)\")",
         "label_replace(\n  x{a=\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"},\n  \"dst\",\n  "
         "\"$1\",\n  \"src\",\n  \"(aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.*)\"\n)"},
        {"sum(rate(x[1m]))[1h:5m]", "sum(rate(x[1m]))[1h:5m]"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pql_tree_t *t = parse_ok(cases[i].q);
        wf_buf_t b = WF_BUF_INIT;
        pql_format_pretty(t->root, &b);
        if (strcmp(wf_buf_cstr(&b), cases[i].want) != 0) {
            fail_msg("query %s: pretty\n%s\nwant\n%s", cases[i].q, wf_buf_cstr(&b), cases[i].want);
        }
        /* The pretty form is the same query. */
        pql_tree_t *t2 = parse_ok(wf_buf_cstr(&b));
        assert_true(pql_node_equal(t->root, t2->root));
        pql_tree_free(t2);
        wf_buf_free(&b);
        pql_tree_free(t);
    }
}

/* Where the printer deliberately differs from Prometheus, so that its output round-trips. */
static void test_format_deviations(void **state)
{
    (void)state;
    /* Prometheus prints +(Inf ^ 2) as "++Inf ^ 2", which reads back as two unary pluses. */
    pql_tree_t *t = check_valid("+Inf ^ 2", "+Inf ^ 2");
    assert_int_equal(root_of(t)->kind, PQL_NODE_UNARY);
    pql_tree_free(t);
    t = check_valid("-Inf ^ 2", "-Inf ^ 2");
    pql_tree_free(t);
    /* ... and `Inf ^ 2` as "+Inf ^ 2", which reads back as +(Inf ^ 2). */
    t = check_valid("inf^14^Q", "Inf ^ 14 ^ Q");
    assert_int_equal(root_of(t)->kind, PQL_NODE_BINARY);
    pql_tree_free(t);
    t = check_valid("2 ^ Inf ^ 3 + Inf", "2 ^ Inf ^ 3 + +Inf");
    pql_tree_free(t);
    /* Prometheus drops an empty ignoring() with a group modifier, losing the grouping. */
    t = check_valid("a * ignoring() group_left(b) c", "a * ignoring () group_left (b) c");
    assert_int_equal(root_of(t)->u.binary.card, PQL_CARD_MANY_TO_ONE);
    pql_tree_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_length_limit),
        cmocka_unit_test(test_selector_contents),
        cmocka_unit_test(test_aggregate_contents),
        cmocka_unit_test(test_binary_contents),
        cmocka_unit_test(test_literals),
        cmocka_unit_test(test_functions),
        cmocka_unit_test(test_bytes_and_positions),
        cmocka_unit_test(test_pretty),
        cmocka_unit_test(test_format_deviations),
        cmocka_unit_test(test_istio_dashboards),
        cmocka_unit_test(test_kiali_queries),
    };
    return wt_exit_code(cmocka_run_group_tests(tests, NULL, NULL));
}
