/*
 * fuzz_pql_parse.c - drives the PromQL parser (collector/promql) over arbitrary bytes. Beyond
 * "no crash": a failed parse leaves no tree and a message with Prometheus's "parse error"
 * prefix (or is a limit error); a successful one prints a canonical form that parses back to
 * the same tree and prints identically (the printer's round-trip property), and a pretty form
 * that parses back to the same canonical form.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pql_ast.h"
#include "wf_err.h"

static void check(int ok)
{
    if (!ok) {
        abort();
    }
}

static bool same_names(const pql_names_t *a, const pql_names_t *b)
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

/* Structural equality apart from positions; matchers in order (the printer sorts them, so
 * compare as multisets by a simple quadratic scan). */
static bool same_tree(const pql_node_t *a, const pql_node_t *b)
{
    if (a->kind != b->kind || a->type != b->type) {
        return false;
    }
    switch (a->kind) {
    case PQL_NODE_NUMBER:
        return (isnan(a->u.number) && isnan(b->u.number)) ||
               memcmp(&a->u.number, &b->u.number, sizeof(double)) == 0;
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
                        wf_str_eq(m->value, o->value);
            }
            if (!found || m->compiled == NULL) {
                return false;
            }
        }
        return true;
    case PQL_NODE_MATRIX:
        return a->u.matrix.range_ms == b->u.matrix.range_ms &&
               same_tree(a->u.matrix.vector, b->u.matrix.vector);
    case PQL_NODE_SUBQUERY:
        return a->u.subquery.range_ms == b->u.subquery.range_ms &&
               a->u.subquery.step_ms == b->u.subquery.step_ms &&
               a->u.subquery.offset_ms == b->u.subquery.offset_ms &&
               a->u.subquery.at == b->u.subquery.at && a->u.subquery.at_ms == b->u.subquery.at_ms &&
               same_tree(a->u.subquery.expr, b->u.subquery.expr);
    case PQL_NODE_CALL:
        if (a->u.call.fn != b->u.call.fn || a->u.call.nargs != b->u.call.nargs) {
            return false;
        }
        for (size_t i = 0; i < a->u.call.nargs; i++) {
            if (!same_tree(a->u.call.args[i], b->u.call.args[i])) {
                return false;
            }
        }
        return true;
    case PQL_NODE_AGGREGATE:
        return a->u.aggregate.op == b->u.aggregate.op &&
               a->u.aggregate.without == b->u.aggregate.without &&
               same_names(&a->u.aggregate.grouping, &b->u.aggregate.grouping) &&
               (a->u.aggregate.param == NULL) == (b->u.aggregate.param == NULL) &&
               (a->u.aggregate.param == NULL ||
                same_tree(a->u.aggregate.param, b->u.aggregate.param)) &&
               same_tree(a->u.aggregate.expr, b->u.aggregate.expr);
    case PQL_NODE_BINARY:
        return a->u.binary.op == b->u.binary.op &&
               a->u.binary.return_bool == b->u.binary.return_bool &&
               a->u.binary.card == b->u.binary.card && a->u.binary.on == b->u.binary.on &&
               same_names(&a->u.binary.matching, &b->u.binary.matching) &&
               same_names(&a->u.binary.include, &b->u.binary.include) &&
               same_tree(a->u.binary.lhs, b->u.binary.lhs) &&
               same_tree(a->u.binary.rhs, b->u.binary.rhs);
    case PQL_NODE_UNARY:
        return a->u.unary.negate == b->u.unary.negate &&
               same_tree(a->u.unary.expr, b->u.unary.expr);
    case PQL_NODE_PAREN:
        return same_tree(a->u.paren.expr, b->u.paren.expr);
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pql_tree_t *t = NULL;
    pql_parse_error_t err;
    int rc = pql_parse((const char *)data, size, &t, &err);
    if (rc != 0) {
        check(t == NULL);
        check(rc == WF_E_INVAL || rc == WF_E_LIMIT);
        check(memchr(err.msg, '\0', sizeof(err.msg)) != NULL);
        check(rc == WF_E_LIMIT || strstr(err.msg, "parse error: ") != NULL);
        return 0;
    }
    wf_buf_t a = WF_BUF_INIT, b = WF_BUF_INIT;
    pql_format(t->root, &a);
    pql_tree_t *t2 = NULL;
    rc = pql_parse((const char *)a.data, a.len, &t2, &err);
    /* The canonical form is never longer than the limits allow in practice; a limit error on
     * it would be a printer blow-up, so it counts as a failure too. */
    check(rc == 0);
    pql_format(t2->root, &b);
    check(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
    check(same_tree(t->root, t2->root));
    pql_tree_free(t2);

    wf_buf_reset(&b);
    pql_format_pretty(t->root, &b);
    rc = pql_parse((const char *)b.data, b.len, &t2, &err);
    /* Indentation grows with depth, so the pretty form of a deep query may exceed the length
     * limit that its one-line form respects. */
    check(rc == 0 || (rc == WF_E_LIMIT && b.len > a.len));
    if (rc == 0) {
        check(same_tree(t->root, t2->root));
        pql_tree_free(t2);
    }
    pql_tree_free(t);
    wf_buf_free(&a);
    wf_buf_free(&b);
    return 0;
}
