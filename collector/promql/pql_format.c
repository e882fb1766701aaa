/*
 * pql_format.c - prints a PromQL tree canonically, as Prometheus 2.42's String() methods
 * (promql/parser/printer.go) do, so that parsing the output yields the same tree again; and
 * the indented multi-line form of its Pretty() methods (promql/parser/prettier.go), which is
 * what /api/v1/format_query returns.
 *
 * Details that matter for byte-equality with Prometheus: numbers print like Go's %v of a
 * float64 (shortest round-trip digits, exponent form when the decimal exponent is below -4 or
 * at least 6: 1e+06, 0.0001, 1e-05), strings and matcher values are Go-quoted, matchers are
 * sorted as strings, durations print as model.Duration, `@` times as seconds with three
 * decimals before the offset.
 *
 * Two deliberate differences, both where Prometheus's output would not parse back to the same
 * tree: +Inf prints unsigned as "Inf" right after a unary operator and on the left of ^ (where
 * "+Inf ^ 2" would read as +(Inf ^ 2)), and an empty ignoring() is kept when it carries a
 * group_left/group_right (Prometheus drops both, turning the match one-to-one).
 */
#include "pql_ast.h"
#include "pql_lex.h"

#include "wf_alloc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Go's fmt %v of a float64: strconv.FormatFloat(v, 'g', -1, 64), i.e. the shortest digits that
 * round-trip, in %e form when the decimal exponent is < -4 or >= 6 (the shortest form's
 * precision threshold), with at least two exponent digits. */
static void put_number(wf_buf_t *b, double v, bool lead)
{
    if (isnan(v)) {
        wf_buf_puts(b, "NaN");
        return;
    }
    if (isinf(v)) {
        /* Where "+Inf" would read back as a unary plus applied to more than the literal --
         * right after a unary operator, or on the left of ^ -- print it unsigned. Prometheus
         * prints `Inf ^ 2` as "+Inf ^ 2", which parses as +(Inf ^ 2). */
        wf_buf_puts(b, v < 0 ? "-Inf" : lead ? "Inf" : "+Inf");
        return;
    }
    char tmp[64];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, v);
        if (strtod(tmp, NULL) == v) {
            break;
        }
    }
    /* tmp is [-]d[.ddd]e[+-]xx: split into digits and a decimal exponent. */
    const char *s = tmp;
    bool neg = *s == '-';
    if (neg) {
        s++;
    }
    char digits[32];
    size_t nd = 0;
    for (; *s != 'e'; s++) {
        if (*s != '.') {
            digits[nd++] = *s;
        }
    }
    int exp = atoi(s + 1);
    while (nd > 1 && digits[nd - 1] == '0') {
        nd--;
    }
    if (neg) {
        wf_buf_putc(b, '-');
    }
    if (exp < -4 || exp >= 6) {
        wf_buf_putc(b, (uint8_t)digits[0]);
        if (nd > 1) {
            wf_buf_putc(b, '.');
            wf_buf_append(b, digits + 1, nd - 1);
        }
        wf_buf_printf(b, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
        return;
    }
    if (exp < 0) {
        wf_buf_puts(b, "0.");
        for (int i = -1; i > exp; i--) {
            wf_buf_putc(b, '0');
        }
        wf_buf_append(b, digits, nd);
        return;
    }
    /* exp >= 0: digits before the point are digits[0..exp], zero-padded. */
    for (int i = 0; i <= exp; i++) {
        wf_buf_putc(b, (size_t)i < nd ? (uint8_t)digits[i] : '0');
    }
    if ((size_t)exp + 1 < nd) {
        wf_buf_putc(b, '.');
        wf_buf_append(b, digits + exp + 1, nd - (size_t)exp - 1);
    }
}

static void put_names(wf_buf_t *b, const pql_names_t *n)
{
    wf_buf_putc(b, '(');
    for (size_t i = 0; i < n->n; i++) {
        if (i > 0) {
            wf_buf_puts(b, ", ");
        }
        wf_buf_append(b, n->names[i].p, n->names[i].len);
    }
    wf_buf_putc(b, ')');
}

static void put_at_offset(wf_buf_t *b, pql_at_kind_t at, int64_t at_ms, int64_t offset_ms)
{
    switch (at) {
    case PQL_AT_TIME:
        wf_buf_printf(b, " @ %.3f", (double)at_ms / 1000.0);
        break;
    case PQL_AT_START:
        wf_buf_puts(b, " @ start()");
        break;
    case PQL_AT_END:
        wf_buf_puts(b, " @ end()");
        break;
    case PQL_AT_NONE:
        break;
    }
    if (offset_ms > 0) {
        wf_buf_puts(b, " offset ");
        pql_format_duration(b, offset_ms);
    } else if (offset_ms < 0) {
        wf_buf_puts(b, " offset -");
        pql_format_duration(b, offset_ms == INT64_MIN ? INT64_MAX : -offset_ms);
    }
}

static const char *match_op(st_match_type_t t)
{
    switch (t) {
    case ST_MATCH_EQ:
        return "=";
    case ST_MATCH_NE:
        return "!=";
    case ST_MATCH_RE:
        return "=~";
    default:
        return "!~";
    }
}

typedef struct {
    char *s;
    size_t n;
} str_t;

static int cmp_str(const void *a, const void *b)
{
    const str_t *x = a, *y = b;
    size_t n = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->s, y->s, n);
    if (c != 0) {
        return c;
    }
    return x->n < y->n ? -1 : x->n > y->n;
}

/* The selector's name and sorted matchers (without the one its name implies). */
static void put_selector(wf_buf_t *b, const pql_node_t *n)
{
    const wf_str_t name = n->u.vector.name;
    str_t *ms = wf_calloc(n->u.vector.nmatchers + 1, sizeof(*ms));
    size_t k = 0;
    for (size_t i = 0; i < n->u.vector.nmatchers; i++) {
        const pql_matcher_t *m = &n->u.vector.matchers[i];
        if (m->type == ST_MATCH_EQ && wf_str_eq_c(m->name, "__name__") &&
            wf_str_eq(m->value, name)) {
            continue;
        }
        wf_buf_t t = WF_BUF_INIT;
        wf_buf_append(&t, m->name.p, m->name.len);
        wf_buf_puts(&t, match_op(m->type));
        pql__quote(&t, m->value.p, m->value.len, 0);
        ms[k].s = (char *)wf_buf_detach(&t, &ms[k].n);
        k++;
    }
    wf_buf_append(b, name.p, name.len);
    if (k > 0) {
        qsort(ms, k, sizeof(*ms), cmp_str);
        wf_buf_putc(b, '{');
        for (size_t i = 0; i < k; i++) {
            if (i > 0) {
                wf_buf_putc(b, ',');
            }
            wf_buf_append(b, ms[i].s, ms[i].n);
        }
        wf_buf_putc(b, '}');
    }
    for (size_t i = 0; i < k; i++) {
        wf_free(ms[i].s);
    }
    wf_free(ms);
}

static const char *agg_name(pql_agg_op_t op)
{
    static const char *names[] = {"sum",  "avg",     "count",        "min",
                                  "max",  "group",   "stddev",       "stdvar",
                                  "topk", "bottomk", "count_values", "quantile"};
    return names[op];
}

static const char *binop_name(pql_binop_t op)
{
    static const char *names[] = {"+",  "-", "*", "/",  "%",  "^",   "atan2", "==",
                                  "!=", ">", "<", ">=", "<=", "and", "or",    "unless"};
    return names[op];
}

static void put_agg_prefix(wf_buf_t *out, const pql_node_t *n)
{
    wf_buf_puts(out, agg_name(n->u.aggregate.op));
    if (n->u.aggregate.without) {
        wf_buf_puts(out, " without ");
        put_names(out, &n->u.aggregate.grouping);
        wf_buf_putc(out, ' ');
    } else if (n->u.aggregate.grouping.n > 0) {
        wf_buf_puts(out, " by ");
        put_names(out, &n->u.aggregate.grouping);
        wf_buf_putc(out, ' ');
    }
}

/* The operator of a binary node with its bool and vector-matching modifiers. */
static void put_binop(wf_buf_t *out, const pql_node_t *n)
{
    wf_buf_puts(out, binop_name(n->u.binary.op));
    if (n->u.binary.return_bool) {
        wf_buf_puts(out, " bool");
    }
    /* Prometheus prints the matching only when it has labels or is on(); a grouping with an
     * empty ignoring() is printed too, else the output would lose the grouping. */
    if (n->u.binary.matching.n > 0 || n->u.binary.on || n->u.binary.card == PQL_CARD_MANY_TO_ONE ||
        n->u.binary.card == PQL_CARD_ONE_TO_MANY) {
        wf_buf_puts(out, n->u.binary.on ? " on " : " ignoring ");
        put_names(out, &n->u.binary.matching);
        if (n->u.binary.card == PQL_CARD_MANY_TO_ONE || n->u.binary.card == PQL_CARD_ONE_TO_MANY) {
            wf_buf_puts(out, n->u.binary.card == PQL_CARD_MANY_TO_ONE ? " group_left "
                                                                      : " group_right ");
            put_names(out, &n->u.binary.include);
        }
    }
}

/* [range:step] @ t offset d of a subquery. */
static void put_subquery_suffix(wf_buf_t *out, const pql_node_t *n)
{
    wf_buf_putc(out, '[');
    pql_format_duration(out, n->u.subquery.range_ms);
    wf_buf_putc(out, ':');
    if (n->u.subquery.step_ms != 0) {
        pql_format_duration(out, n->u.subquery.step_ms);
    }
    wf_buf_putc(out, ']');
    put_at_offset(out, n->u.subquery.at, n->u.subquery.at_ms, n->u.subquery.offset_ms);
}

/* lead: n starts right after a unary operator or starts the left side of ^ (see put_number). */
static void fmt_node(const pql_node_t *n, wf_buf_t *out, bool lead)
{
    switch (n->kind) {
    case PQL_NODE_NUMBER:
        put_number(out, n->u.number, lead);
        return;
    case PQL_NODE_STRING:
        pql__quote(out, n->u.string.p, n->u.string.len, 0);
        return;
    case PQL_NODE_VECTOR:
        put_selector(out, n);
        put_at_offset(out, n->u.vector.at, n->u.vector.at_ms, n->u.vector.offset_ms);
        return;
    case PQL_NODE_MATRIX: {
        const pql_node_t *v = n->u.matrix.vector;
        put_selector(out, v);
        wf_buf_putc(out, '[');
        pql_format_duration(out, n->u.matrix.range_ms);
        wf_buf_putc(out, ']');
        put_at_offset(out, v->u.vector.at, v->u.vector.at_ms, v->u.vector.offset_ms);
        return;
    }
    case PQL_NODE_SUBQUERY:
        fmt_node(n->u.subquery.expr, out, lead);
        put_subquery_suffix(out, n);
        return;
    case PQL_NODE_CALL:
        wf_buf_puts(out, pql_fn_sig(n->u.call.fn)->name);
        wf_buf_putc(out, '(');
        for (size_t i = 0; i < n->u.call.nargs; i++) {
            if (i > 0) {
                wf_buf_puts(out, ", ");
            }
            pql_format(n->u.call.args[i], out);
        }
        wf_buf_putc(out, ')');
        return;
    case PQL_NODE_AGGREGATE:
        put_agg_prefix(out, n);
        wf_buf_putc(out, '(');
        if (n->u.aggregate.param != NULL) {
            pql_format(n->u.aggregate.param, out);
            wf_buf_puts(out, ", ");
        }
        pql_format(n->u.aggregate.expr, out);
        wf_buf_putc(out, ')');
        return;
    case PQL_NODE_BINARY:
        fmt_node(n->u.binary.lhs, out, lead || n->u.binary.op == PQL_OP_POW);
        wf_buf_putc(out, ' ');
        put_binop(out, n);
        wf_buf_putc(out, ' ');
        pql_format(n->u.binary.rhs, out);
        return;
    case PQL_NODE_UNARY:
        wf_buf_putc(out, n->u.unary.negate ? '-' : '+');
        fmt_node(n->u.unary.expr, out, true);
        return;
    case PQL_NODE_PAREN:
        wf_buf_putc(out, '(');
        pql_format(n->u.paren.expr, out);
        wf_buf_putc(out, ')');
        return;
    }
}

void pql_format(const pql_node_t *n, wf_buf_t *out)
{
    fmt_node(n, out, false);
}

/* ---- Pretty printing (prettier.go) -------------------------------------------------------- */

/* Prometheus splits an expression over several lines when its one-line form is longer. */
#define PRETTY_MAX_LINE 100

static void pretty(const pql_node_t *n, int level, wf_buf_t *out, bool lead);

static void indent(wf_buf_t *out, int level)
{
    for (int i = 0; i < level; i++) {
        wf_buf_puts(out, "  ");
    }
}

static bool needs_split(const pql_node_t *n, bool lead)
{
    wf_buf_t b = WF_BUF_INIT;
    fmt_node(n, &b, lead);
    bool split = b.len > PRETTY_MAX_LINE;
    wf_buf_free(&b);
    return split;
}

static void pretty(const pql_node_t *n, int level, wf_buf_t *out, bool lead)
{
    switch (n->kind) {
    case PQL_NODE_AGGREGATE:
        indent(out, level);
        if (!needs_split(n, lead)) {
            fmt_node(n, out, lead);
            return;
        }
        put_agg_prefix(out, n);
        wf_buf_puts(out, "(\n");
        if (n->u.aggregate.param != NULL) {
            pretty(n->u.aggregate.param, level + 1, out, false);
            wf_buf_puts(out, ",\n");
        }
        pretty(n->u.aggregate.expr, level + 1, out, false);
        wf_buf_putc(out, '\n');
        indent(out, level);
        wf_buf_putc(out, ')');
        return;
    case PQL_NODE_BINARY:
        if (!needs_split(n, lead)) {
            indent(out, level);
            fmt_node(n, out, lead);
            return;
        }
        pretty(n->u.binary.lhs, level + 1, out, lead || n->u.binary.op == PQL_OP_POW);
        wf_buf_putc(out, '\n');
        indent(out, level);
        put_binop(out, n);
        wf_buf_putc(out, '\n');
        pretty(n->u.binary.rhs, level + 1, out, false);
        return;
    case PQL_NODE_CALL:
        indent(out, level);
        if (!needs_split(n, lead)) {
            fmt_node(n, out, lead);
            return;
        }
        wf_buf_puts(out, pql_fn_sig(n->u.call.fn)->name);
        wf_buf_puts(out, "(\n");
        for (size_t i = 0; i < n->u.call.nargs; i++) {
            if (i > 0) {
                wf_buf_puts(out, ",\n");
            }
            pretty(n->u.call.args[i], level + 1, out, false);
        }
        wf_buf_putc(out, '\n');
        indent(out, level);
        wf_buf_putc(out, ')');
        return;
    case PQL_NODE_PAREN:
        indent(out, level);
        if (!needs_split(n, lead)) {
            fmt_node(n, out, lead);
            return;
        }
        wf_buf_puts(out, "(\n");
        pretty(n->u.paren.expr, level + 1, out, false);
        wf_buf_putc(out, '\n');
        indent(out, level);
        wf_buf_putc(out, ')');
        return;
    case PQL_NODE_SUBQUERY:
        /* Prometheus prints a short subquery without its indentation. */
        if (!needs_split(n, lead)) {
            fmt_node(n, out, lead);
            return;
        }
        pretty(n->u.subquery.expr, level, out, lead);
        put_subquery_suffix(out, n);
        return;
    case PQL_NODE_UNARY: {
        wf_buf_t child = WF_BUF_INIT;
        pretty(n->u.unary.expr, level, &child, true);
        size_t a = 0, b = child.len;
        while (a < b && (child.data[a] == ' ' || child.data[a] == '\n' || child.data[a] == '\t')) {
            a++;
        }
        while (b > a && (child.data[b - 1] == ' ' || child.data[b - 1] == '\n' ||
                         child.data[b - 1] == '\t')) {
            b--;
        }
        indent(out, level);
        wf_buf_putc(out, n->u.unary.negate ? '-' : '+');
        wf_buf_append(out, child.data + a, b - a);
        wf_buf_free(&child);
        return;
    }
    default:
        indent(out, level);
        fmt_node(n, out, lead);
        return;
    }
}

void pql_format_pretty(const pql_node_t *n, wf_buf_t *out)
{
    pretty(n, 0, out, false);
}

/* ---- structural equality (round-trip checks of the printer) ---------------------------- */

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

bool pql_node_equal(const pql_node_t *a, const pql_node_t *b)
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
               pql_node_equal(a->u.matrix.vector, b->u.matrix.vector);
    case PQL_NODE_SUBQUERY:
        return a->u.subquery.range_ms == b->u.subquery.range_ms &&
               a->u.subquery.step_ms == b->u.subquery.step_ms &&
               a->u.subquery.offset_ms == b->u.subquery.offset_ms &&
               a->u.subquery.at == b->u.subquery.at && a->u.subquery.at_ms == b->u.subquery.at_ms &&
               pql_node_equal(a->u.subquery.expr, b->u.subquery.expr);
    case PQL_NODE_CALL:
        if (a->u.call.fn != b->u.call.fn || a->u.call.nargs != b->u.call.nargs) {
            return false;
        }
        for (size_t i = 0; i < a->u.call.nargs; i++) {
            if (!pql_node_equal(a->u.call.args[i], b->u.call.args[i])) {
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
                pql_node_equal(a->u.aggregate.param, b->u.aggregate.param)) &&
               pql_node_equal(a->u.aggregate.expr, b->u.aggregate.expr);
    case PQL_NODE_BINARY:
        return a->u.binary.op == b->u.binary.op &&
               a->u.binary.return_bool == b->u.binary.return_bool &&
               a->u.binary.card == b->u.binary.card && a->u.binary.on == b->u.binary.on &&
               names_eq(&a->u.binary.matching, &b->u.binary.matching) &&
               names_eq(&a->u.binary.include, &b->u.binary.include) &&
               pql_node_equal(a->u.binary.lhs, b->u.binary.lhs) &&
               pql_node_equal(a->u.binary.rhs, b->u.binary.rhs);
    case PQL_NODE_UNARY:
        return a->u.unary.negate == b->u.unary.negate &&
               pql_node_equal(a->u.unary.expr, b->u.unary.expr);
    case PQL_NODE_PAREN:
        return pql_node_equal(a->u.paren.expr, b->u.paren.expr);
    }
    return false;
}
