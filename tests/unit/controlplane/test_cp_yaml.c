/*
 * test_cp_yaml.c - the YAML document tree: structure, positions, multi-document streams, JSON,
 * and the refusals that protect the control plane from hostile input (alias bombs, depth,
 * size, non-UTF-8, duplicate keys).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cp_yaml.h"
#include "wf_alloc.h"

static int parse(const char *text, cp_yaml_stream_t **s, cp_err_t *err)
{
    return cp_yaml_parse(text, strlen(text), NULL, s, err);
}

static void test_tree(void **state)
{
    (void)state;
    cp_yaml_stream_t *s;
    cp_err_t err;
    const char *text = "a: 1\n"
                       "b:\n"
                       "  - x\n"
                       "  - 'y'\n"
                       "c: {d: \"e\"}\n"
                       "f: |\n"
                       "  lit\n";
    assert_int_equal(parse(text, &s, &err), 0);
    assert_int_equal(s->n_docs, 1);
    const cp_yaml_node_t *root = s->docs[0];
    assert_int_equal(root->kind, CP_YAML_MAP);
    assert_int_equal(root->n, 4);
    const cp_yaml_node_t *a = cp_yaml_get(root, "a");
    assert_string_equal(a->value.p, "1");
    assert_int_equal(a->style, CP_YAML_PLAIN);
    assert_int_equal(a->line, 1);
    assert_int_equal(a->column, 4);
    const cp_yaml_node_t *b = cp_yaml_get(root, "b");
    assert_int_equal(b->kind, CP_YAML_SEQ);
    assert_int_equal(b->n, 2);
    assert_string_equal(b->items[1]->value.p, "y");
    assert_int_equal(b->items[1]->style, CP_YAML_SINGLE_QUOTED);
    assert_int_equal(b->items[1]->line, 4);
    const cp_yaml_node_t *d = cp_yaml_get(cp_yaml_get(root, "c"), "d");
    assert_string_equal(d->value.p, "e");
    assert_int_equal(d->style, CP_YAML_DOUBLE_QUOTED);
    const cp_yaml_node_t *f = cp_yaml_get(root, "f");
    assert_string_equal(f->value.p, "lit\n");
    assert_int_equal(f->style, CP_YAML_LITERAL);
    assert_null(cp_yaml_get(root, "zz"));
    cp_yaml_free(s);
}

static void test_multi_doc_and_null(void **state)
{
    (void)state;
    cp_yaml_stream_t *s;
    const char *text = "---\nk: v\n---\n---\nk: ~\n...\n";
    assert_int_equal(parse(text, &s, NULL), 0);
    assert_int_equal(s->n_docs, 3);
    assert_true(cp_yaml_is_null(s->docs[1]));
    assert_false(cp_yaml_is_null(cp_yaml_get(s->docs[0], "k")));
    assert_true(cp_yaml_is_null(cp_yaml_get(s->docs[2], "k")));
    cp_yaml_free(s);

    assert_int_equal(parse("k: 'null'\nt: !!null x\n", &s, NULL), 0);
    assert_false(cp_yaml_is_null(cp_yaml_get(s->docs[0], "k")));
    assert_true(cp_yaml_is_null(cp_yaml_get(s->docs[0], "t")));
    cp_yaml_free(s);
}

static void test_json(void **state)
{
    (void)state;
    cp_yaml_stream_t *s;
    cp_err_t err;
    const char *text = "{\"kind\": \"VirtualService\", \"spec\": {\"hosts\": [\"a\", \"b\"], "
                       "\"n\": 3, \"t\": true}}";
    assert_int_equal(parse(text, &s, &err), 0);
    const cp_yaml_node_t *spec = cp_yaml_get(s->docs[0], "spec");
    assert_int_equal(cp_yaml_get(spec, "hosts")->n, 2);
    assert_string_equal(cp_yaml_get(spec, "n")->value.p, "3");
    assert_string_equal(cp_yaml_get(spec, "t")->value.p, "true");
    cp_yaml_free(s);
}

static void test_aliases_shared(void **state)
{
    (void)state;
    cp_yaml_stream_t *s;
    assert_int_equal(parse("a: &x {k: v}\nb: *x\n", &s, NULL), 0);
    assert_ptr_equal(cp_yaml_get(s->docs[0], "a"), cp_yaml_get(s->docs[0], "b"));
    cp_yaml_free(s);
    cp_err_t err;
    assert_int_equal(parse("a: *nope\n", &s, &err), CP_E_SYNTAX);
    assert_null(s);
    assert_string_equal(err.msg, "line 1 column 4: unknown anchor \"nope\"");
}

static void test_merge_keys(void **state)
{
    (void)state;
    cp_yaml_stream_t *s;
    cp_err_t err;
    const char *text = "base: &b {x: 1, y: 2}\n"
                       "more: &m {z: 3, x: 9}\n"
                       "one: {<<: *b, y: 5}\n"
                       "two:\n"
                       "  <<: [*b, *m]\n"
                       "  w: 0\n";
    assert_int_equal(parse(text, &s, &err), 0);
    const cp_yaml_node_t *one = cp_yaml_get(s->docs[0], "one");
    assert_int_equal(one->n, 2);
    assert_string_equal(cp_yaml_get(one, "y")->value.p, "5"); /* own key wins */
    assert_string_equal(cp_yaml_get(one, "x")->value.p, "1");
    const cp_yaml_node_t *two = cp_yaml_get(s->docs[0], "two");
    assert_int_equal(two->n, 4);
    assert_string_equal(two->pairs[0].key->value.p, "w");
    assert_string_equal(cp_yaml_get(two, "x")->value.p, "1"); /* earlier source wins */
    assert_string_equal(cp_yaml_get(two, "z")->value.p, "3");
    assert_null(cp_yaml_get(two, "<<"));
    cp_yaml_free(s);
    /* A quoted "<<" is an ordinary key. */
    assert_int_equal(parse("'<<': {a: 1}\n", &s, &err), 0);
    assert_non_null(cp_yaml_get(s->docs[0], "<<"));
    cp_yaml_free(s);
    assert_int_equal(parse("a: {<<: [x]}\n", &s, &err), CP_E_SYNTAX);
    assert_string_equal(err.msg, "line 1 column 5: merge key << needs a mapping or a list of "
                                 "mappings");
}

static void test_billion_laughs(void **state)
{
    (void)state;
    char text[2048];
    size_t w = (size_t)snprintf(text, sizeof(text), "a0: &a0 [lol, lol, lol, lol, lol, lol]\n");
    for (int i = 1; i < 10; i++) {
        w += (size_t)snprintf(text + w, sizeof(text) - w,
                              "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n",
                              i, i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1);
    }
    cp_yaml_stream_t *s;
    cp_err_t err;
    assert_int_equal(parse(text, &s, &err), CP_E_LIMIT);
    assert_null(s);
    assert_non_null(strstr(err.msg, "more than 200000 nodes (aliases count as their expansion)"));
    /* a5 alone stands for 420,724 nodes: the refusal comes at its line, not at the end. */
    assert_int_equal(err.line, 6);

    /* A tighter limit refuses the first expansion that crosses it. */
    cp_yaml_limits_t lim;
    cp_yaml_limits_default(&lim);
    lim.max_nodes = 100;
    assert_int_equal(cp_yaml_parse(text, w, &lim, &s, &err), CP_E_LIMIT);
    assert_int_equal(err.line, 3);
}

/* Few nodes, many bytes: a 1 MiB scalar repeated by aliases is refused by its expanded size. */
static void test_big_scalar_aliases(void **state)
{
    (void)state;
    size_t big = 1u << 20;
    size_t cap = big + 4096;
    char *text = wf_malloc(cap);
    size_t w = (size_t)snprintf(text, cap, "a: &a ");
    memset(text + w, 'x', big - 8);
    w += big - 8;
    w += (size_t)snprintf(text + w, cap - w, "\nb: [");
    for (int i = 0; i < 20; i++) {
        w += (size_t)snprintf(text + w, cap - w, "*a, ");
    }
    w += (size_t)snprintf(text + w, cap - w, "*a]\n");
    cp_yaml_stream_t *s;
    cp_err_t err;
    assert_int_equal(cp_yaml_parse(text, w, NULL, &s, &err), CP_E_LIMIT);
    assert_null(s);
    assert_string_equal(err.msg, "line 2 column 65: more than 16777216 bytes of scalars (aliases "
                                 "count as their expansion)");
    /* Eight uses stay under the limit. */
    w = (size_t)snprintf(text + big - 2, cap, "\nb: [*a, *a, *a, *a, *a, *a, *a]\n") + big - 2;
    assert_int_equal(cp_yaml_parse(text, w, NULL, &s, &err), 0);
    assert_int_equal(cp_yaml_get(s->docs[0], "b")->n, 7);
    cp_yaml_free(s);
    wf_free(text);
}

static void test_depth(void **state)
{
    (void)state;
    char text[400];
    memset(text, '[', 200);
    memset(text + 200, ']', 200);
    cp_yaml_stream_t *s;
    cp_err_t err;
    assert_int_equal(cp_yaml_parse(text, sizeof(text), NULL, &s, &err), CP_E_LIMIT);
    assert_string_equal(err.msg, "line 1 column 65: nesting deeper than 64");
    /* 64 levels are fine. */
    assert_int_equal(cp_yaml_parse(text + 136, 128, NULL, &s, &err), 0);
    cp_yaml_free(s);
}

static void test_sizes(void **state)
{
    (void)state;
    cp_yaml_limits_t lim;
    cp_yaml_limits_default(&lim);
    lim.max_bytes = 16;
    lim.max_scalar = 4;
    lim.max_items = 3;
    cp_yaml_stream_t *s;
    cp_err_t err;
    const char *big = "k: 01234567890123456789\n";
    assert_int_equal(cp_yaml_parse(big, strlen(big), &lim, &s, &err), CP_E_LIMIT);
    assert_string_equal(err.msg, "line 1 column 1: document larger than 16 bytes");
    assert_int_equal(cp_yaml_parse("k: 12345\n", 9, &lim, &s, &err), CP_E_LIMIT);
    assert_string_equal(err.msg, "line 1 column 4: scalar longer than 4 bytes");
    assert_int_equal(cp_yaml_parse("[1, 2, 3, 4]", 12, &lim, &s, &err), CP_E_LIMIT);
    assert_string_equal(err.msg, "line 1 column 11: more than 3 entries in one sequence");
}

static void test_refusals(void **state)
{
    (void)state;
    cp_yaml_stream_t *s;
    cp_err_t err;
    assert_int_equal(parse("a: 1\nb: 2\na: 3\n", &s, &err), CP_E_SYNTAX);
    assert_string_equal(err.msg, "line 3 column 1: duplicate key \"a\"");
    assert_int_equal(parse("? [a]\n: 1\n", &s, &err), CP_E_SYNTAX);
    assert_string_equal(err.msg, "line 1 column 3: mapping keys must be scalars");
    assert_int_equal(parse("a: ok\nb: caf\xc3\n", &s, &err), CP_E_SYNTAX);
    assert_string_equal(err.msg, "line 2 column 7: input is not valid UTF-8");
    assert_int_equal(parse("a: \xff\xfe\n", &s, &err), CP_E_SYNTAX);
    assert_int_equal(err.line, 1);
    assert_int_equal(parse("a: [1, 2\n", &s, &err), CP_E_SYNTAX);
    assert_int_equal(strncmp(err.msg, "line 2 column 1: ", 17), 0);
    assert_null(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tree),           cmocka_unit_test(test_multi_doc_and_null),
        cmocka_unit_test(test_json),           cmocka_unit_test(test_aliases_shared),
        cmocka_unit_test(test_billion_laughs), cmocka_unit_test(test_depth),
        cmocka_unit_test(test_merge_keys),     cmocka_unit_test(test_big_scalar_aliases),
        cmocka_unit_test(test_sizes),          cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
