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
    check(pql_node_equal(t->root, t2->root));
    pql_tree_free(t2);

    wf_buf_reset(&b);
    pql_format_pretty(t->root, &b);
    rc = pql_parse((const char *)b.data, b.len, &t2, &err);
    /* Indentation grows with depth, so the pretty form of a deep query may exceed the length
     * limit that its one-line form respects. */
    check(rc == 0 || (rc == WF_E_LIMIT && b.len > a.len));
    if (rc == 0) {
        check(pql_node_equal(t->root, t2->root));
        pql_tree_free(t2);
    }
    pql_tree_free(t);
    wf_buf_free(&a);
    wf_buf_free(&b);
    return 0;
}
