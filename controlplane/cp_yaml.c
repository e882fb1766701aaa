/*
 * cp_yaml.c - libyaml's event stream turned into the tree of cp_yaml.h, with the limits that
 * make hostile input fail fast (see the header for the rules).
 */
#include "cp_yaml.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <yaml.h>

#include "wf_alloc.h"
#include "wf_err.h"

/* An open sequence or mapping: its children gather here until its end event. */
typedef struct {
    cp_yaml_node_t *node;
    const cp_yaml_node_t **items; /* heap, grown; mappings alternate key, value */
    uint32_t n, cap;
    char *anchor;       /* heap copy, NULL when none */
    size_t nodes_start; /* node count before this node was opened */
    size_t bytes_start; /* expanded scalar bytes before it */
} frame_t;

typedef struct {
    char *name;
    const cp_yaml_node_t *node;
    size_t size;  /* nodes the anchored subtree stands for, aliases expanded */
    size_t bytes; /* scalar bytes it stands for, aliases expanded */
} anchor_t;

#define MAX_ANCHORS 1024

typedef struct {
    cp_yaml_stream_t *s;
    const cp_yaml_limits_t *lim;
    cp_err_t *err;
    frame_t *stack;
    uint32_t depth, stack_cap;
    anchor_t *anchors;
    uint32_t n_anchors, anchors_cap;
    size_t nodes;
    size_t bytes; /* scalar bytes so far, aliases expanded */
    const cp_yaml_node_t **docs;
    uint32_t docs_cap;
} ctx_t;

void cp_yaml_limits_default(cp_yaml_limits_t *lim)
{
    lim->max_bytes = 4u << 20;
    lim->max_nodes = 200000;
    lim->max_depth = 64;
    lim->max_scalar = 1u << 20;
    lim->max_items = 10000;
    lim->max_expanded_bytes = 16u << 20;
}

static int fail(ctx_t *c, int code, size_t line0, size_t col0, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* line0/col0 are libyaml's 0-based marks. */
static int fail(ctx_t *c, int code, size_t line0, size_t col0, const char *fmt, ...)
{
    if (c->err != NULL) {
        char what[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        c->err->line = (uint32_t)line0 + 1;
        c->err->column = (uint32_t)col0 + 1;
        snprintf(c->err->msg, sizeof(c->err->msg), "line %zu column %zu: %s", line0 + 1, col0 + 1,
                 what);
    }
    return code;
}

static int count_node(ctx_t *c, size_t n, const yaml_mark_t *m)
{
    if (n > c->lim->max_nodes || c->nodes > c->lim->max_nodes - n) {
        return fail(c, CP_E_LIMIT, m->line, m->column,
                    "more than %zu nodes (aliases count as their expansion)", c->lim->max_nodes);
    }
    c->nodes += n;
    return 0;
}

static int count_bytes(ctx_t *c, size_t n, const yaml_mark_t *m)
{
    if (n > c->lim->max_expanded_bytes || c->bytes > c->lim->max_expanded_bytes - n) {
        return fail(c, CP_E_LIMIT, m->line, m->column,
                    "more than %zu bytes of scalars (aliases count as their expansion)",
                    c->lim->max_expanded_bytes);
    }
    c->bytes += n;
    return 0;
}

static cp_yaml_node_t *new_node(ctx_t *c, cp_yaml_kind_t kind, const yaml_mark_t *m,
                                const yaml_char_t *tag)
{
    cp_yaml_node_t *n = wf_arena_alloc(&c->s->arena, sizeof(*n));
    memset(n, 0, sizeof(*n));
    n->kind = kind;
    n->line = (uint32_t)m->line + 1;
    n->column = (uint32_t)m->column + 1;
    if (tag != NULL) {
        size_t tl = strlen((const char *)tag);
        n->tag = (wf_str_t){wf_arena_strndup(&c->s->arena, (const char *)tag, tl), tl};
    }
    return n;
}

static int remember_anchor(ctx_t *c, const char *name, const cp_yaml_node_t *node, size_t size,
                           size_t bytes, const yaml_mark_t *m)
{
    if (c->n_anchors == MAX_ANCHORS) {
        return fail(c, CP_E_LIMIT, m->line, m->column, "more than %d anchors", MAX_ANCHORS);
    }
    if (c->n_anchors == c->anchors_cap) {
        c->anchors_cap = c->anchors_cap ? c->anchors_cap * 2 : 8;
        c->anchors = wf_realloc(c->anchors, c->anchors_cap * sizeof(*c->anchors));
    }
    c->anchors[c->n_anchors++] = (anchor_t){wf_strdup(name), node, size, bytes};
    return 0;
}

/* Attach a finished node to the open collection or make it the document's root. */
static int add_child(ctx_t *c, const cp_yaml_node_t *n, const yaml_mark_t *m)
{
    if (c->depth == 0) {
        if (c->s->n_docs == c->docs_cap) {
            c->docs_cap = c->docs_cap ? c->docs_cap * 2 : 4;
            c->docs = wf_realloc(c->docs, c->docs_cap * sizeof(*c->docs));
        }
        c->docs[c->s->n_docs++] = n;
        return 0;
    }
    frame_t *f = &c->stack[c->depth - 1];
    bool is_map = f->node->kind == CP_YAML_MAP;
    if (is_map && f->n % 2 == 0) {
        if (n->kind != CP_YAML_SCALAR) {
            return fail(c, CP_E_SYNTAX, m->line, m->column, "mapping keys must be scalars");
        }
        for (uint32_t i = 0; i < f->n; i += 2) {
            if (wf_str_eq(f->items[i]->value, n->value)) {
                return fail(c, CP_E_SYNTAX, m->line, m->column, "duplicate key \"%s\"", n->value.p);
            }
        }
    }
    if ((is_map ? f->n / 2 : f->n) >= c->lim->max_items) {
        return fail(c, CP_E_LIMIT, m->line, m->column, "more than %u entries in one %s",
                    c->lim->max_items, is_map ? "mapping" : "sequence");
    }
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 8;
        f->items = wf_realloc(f->items, f->cap * sizeof(*f->items));
    }
    f->items[f->n++] = n;
    return 0;
}

static int on_scalar(ctx_t *c, const yaml_event_t *ev)
{
    const yaml_mark_t *m = &ev->start_mark;
    size_t len = ev->data.scalar.length;
    if (len > c->lim->max_scalar) {
        return fail(c, CP_E_LIMIT, m->line, m->column, "scalar longer than %zu bytes",
                    c->lim->max_scalar);
    }
    int rc = count_node(c, 1, m);
    if (rc == 0) {
        rc = count_bytes(c, len, m);
    }
    if (rc < 0) {
        return rc;
    }
    cp_yaml_node_t *n = new_node(c, CP_YAML_SCALAR, m, ev->data.scalar.tag);
    n->value =
        (wf_str_t){wf_arena_strndup(&c->s->arena, (const char *)ev->data.scalar.value, len), len};
    if (memchr(n->value.p, '\0', len) != NULL) {
        return fail(c, CP_E_SYNTAX, m->line, m->column, "NUL character in a scalar");
    }
    switch (ev->data.scalar.style) {
    case YAML_SINGLE_QUOTED_SCALAR_STYLE:
        n->style = CP_YAML_SINGLE_QUOTED;
        break;
    case YAML_DOUBLE_QUOTED_SCALAR_STYLE:
        n->style = CP_YAML_DOUBLE_QUOTED;
        break;
    case YAML_LITERAL_SCALAR_STYLE:
        n->style = CP_YAML_LITERAL;
        break;
    case YAML_FOLDED_SCALAR_STYLE:
        n->style = CP_YAML_FOLDED;
        break;
    default:
        n->style = CP_YAML_PLAIN;
        break;
    }
    if (ev->data.scalar.anchor != NULL) {
        rc = remember_anchor(c, (const char *)ev->data.scalar.anchor, n, 1, len, m);
        if (rc < 0) {
            return rc;
        }
    }
    return add_child(c, n, m);
}

static int on_open(ctx_t *c, const yaml_event_t *ev, cp_yaml_kind_t kind)
{
    const yaml_mark_t *m = &ev->start_mark;
    if (c->depth >= c->lim->max_depth) {
        return fail(c, CP_E_LIMIT, m->line, m->column, "nesting deeper than %u", c->lim->max_depth);
    }
    size_t start = c->nodes;
    int rc = count_node(c, 1, m);
    if (rc < 0) {
        return rc;
    }
    const yaml_char_t *tag, *anchor;
    if (kind == CP_YAML_MAP) {
        tag = ev->data.mapping_start.tag;
        anchor = ev->data.mapping_start.anchor;
    } else {
        tag = ev->data.sequence_start.tag;
        anchor = ev->data.sequence_start.anchor;
    }
    if (c->depth == c->stack_cap) {
        c->stack_cap = c->stack_cap ? c->stack_cap * 2 : 16;
        c->stack = wf_realloc(c->stack, c->stack_cap * sizeof(*c->stack));
    }
    frame_t *f = &c->stack[c->depth++];
    memset(f, 0, sizeof(*f));
    f->node = new_node(c, kind, m, tag);
    f->anchor = anchor != NULL ? wf_strdup((const char *)anchor) : NULL;
    f->nodes_start = start;
    f->bytes_start = c->bytes;
    return 0;
}

static bool is_merge_key(const cp_yaml_node_t *k)
{
    return k->style == CP_YAML_PLAIN && k->tag.p == NULL && wf_str_eq_c(k->value, "<<");
}

static bool has_key(const cp_yaml_pair_t *pairs, uint32_t n, wf_str_t key)
{
    for (uint32_t i = 0; i < n; i++) {
        if (wf_str_eq(pairs[i].key->value, key)) {
            return true;
        }
    }
    return false;
}

/*
 * A mapping's pairs from its frame, with YAML merge keys applied as Kubernetes' YAML reader
 * does: `<<: *base` (or a list of such) adds the pairs of base whose keys the mapping does not
 * set itself; the mapping's own keys win, then earlier sources win over later ones.
 */
static int build_map(ctx_t *c, const frame_t *f)
{
    cp_yaml_node_t *n = f->node;
    uint32_t own = f->n / 2, total = 0, merged = 0;
    for (uint32_t i = 0; i < own; i++) {
        const cp_yaml_node_t *k = f->items[2 * i], *v = f->items[2 * i + 1];
        if (!is_merge_key(k)) {
            continue;
        }
        merged++;
        if (v->kind == CP_YAML_MAP) {
            total += v->n;
            continue;
        }
        bool ok = v->kind == CP_YAML_SEQ;
        for (uint32_t j = 0; ok && j < v->n; j++) {
            ok = v->items[j]->kind == CP_YAML_MAP;
            total += ok ? v->items[j]->n : 0;
        }
        if (!ok) {
            return fail(c, CP_E_SYNTAX, k->line - 1, k->column - 1,
                        "merge key << needs a mapping or a list of mappings");
        }
    }
    if ((size_t)own - merged + total > c->lim->max_items) {
        return fail(c, CP_E_LIMIT, n->line - 1, n->column - 1,
                    "more than %u entries in one mapping", c->lim->max_items);
    }
    n->pairs = wf_arena_alloc(&c->s->arena, (own - merged + total + 1) * sizeof(*n->pairs));
    n->n = 0;
    for (uint32_t i = 0; i < own; i++) {
        if (!is_merge_key(f->items[2 * i])) {
            n->pairs[n->n++] = (cp_yaml_pair_t){f->items[2 * i], f->items[2 * i + 1]};
        }
    }
    for (uint32_t i = 0; i < own && merged > 0; i++) {
        const cp_yaml_node_t *v = f->items[2 * i + 1];
        if (!is_merge_key(f->items[2 * i])) {
            continue;
        }
        uint32_t nsrc = v->kind == CP_YAML_MAP ? 1 : v->n;
        for (uint32_t j = 0; j < nsrc; j++) {
            const cp_yaml_node_t *src = v->kind == CP_YAML_MAP ? v : v->items[j];
            for (uint32_t k = 0; k < src->n; k++) {
                if (!has_key(n->pairs, n->n, src->pairs[k].key->value)) {
                    n->pairs[n->n++] = src->pairs[k];
                }
            }
        }
    }
    return 0;
}

static int on_close(ctx_t *c, const yaml_event_t *ev)
{
    WF_ASSERT(c->depth > 0);
    frame_t f = c->stack[--c->depth];
    cp_yaml_node_t *n = f.node;
    int rc = 0;
    if (n->kind == CP_YAML_MAP) {
        rc = build_map(c, &f);
    } else {
        n->n = f.n;
        n->items = wf_arena_alloc(&c->s->arena, (n->n ? n->n : 1) * sizeof(*n->items));
        if (f.n > 0) {
            memcpy(n->items, f.items, f.n * sizeof(*n->items));
        }
    }
    wf_free(f.items);
    if (rc < 0) {
        wf_free(f.anchor);
        return rc;
    }
    if (f.anchor != NULL) {
        rc = remember_anchor(c, f.anchor, n, c->nodes - f.nodes_start, c->bytes - f.bytes_start,
                             &ev->start_mark);
        wf_free(f.anchor);
        if (rc < 0) {
            return rc;
        }
    }
    /* Errors about the collection as a key or an entry point at its start, not its end. */
    yaml_mark_t start = {.line = n->line - 1, .column = n->column - 1};
    return add_child(c, n, &start);
}

static int on_alias(ctx_t *c, const yaml_event_t *ev)
{
    const yaml_mark_t *m = &ev->start_mark;
    const char *name = (const char *)ev->data.alias.anchor;
    for (uint32_t i = c->n_anchors; i-- > 0;) {
        if (strcmp(c->anchors[i].name, name) == 0) {
            int rc = count_node(c, c->anchors[i].size, m);
            if (rc == 0) {
                rc = count_bytes(c, c->anchors[i].bytes, m);
            }
            if (rc < 0) {
                return rc;
            }
            return add_child(c, c->anchors[i].node, m);
        }
    }
    return fail(c, CP_E_SYNTAX, m->line, m->column, "unknown anchor \"%s\"", name);
}

/* Line and column (0-based) of byte off, for the UTF-8 error. */
static void locate(const char *buf, size_t off, size_t *line, size_t *col)
{
    *line = 0;
    *col = 0;
    for (size_t i = 0; i < off; i++) {
        if (buf[i] == '\n') {
            (*line)++;
            *col = 0;
        } else {
            (*col)++;
        }
    }
}

static int check_utf8(ctx_t *c, const char *buf, size_t len)
{
    if (wf_utf8_valid(buf, len)) {
        return 0;
    }
    /* Find the first bad byte by growing a valid prefix one code point at a time. */
    size_t off = 0;
    while (off < len) {
        size_t step = 1;
        while (step <= 4 && off + step <= len && !wf_utf8_valid(buf + off, step)) {
            step++;
        }
        if (step > 4 || off + step > len) {
            break;
        }
        off += step;
    }
    size_t line, col;
    locate(buf, off, &line, &col);
    return fail(c, CP_E_SYNTAX, line, col, "input is not valid UTF-8");
}

int cp_yaml_parse(const char *buf, size_t len, const cp_yaml_limits_t *lim, cp_yaml_stream_t **out,
                  cp_err_t *err)
{
    cp_yaml_limits_t deflim;
    if (lim == NULL) {
        cp_yaml_limits_default(&deflim);
        lim = &deflim;
    }
    ctx_t c = {.lim = lim, .err = err};
    yaml_parser_t parser;
    bool parser_ready = false;
    int rc = 0;
    *out = NULL;
    if (err != NULL) {
        memset(err, 0, sizeof(*err));
    }
    if (len > lim->max_bytes) {
        rc = fail(&c, CP_E_LIMIT, 0, 0, "document larger than %zu bytes", lim->max_bytes);
        goto fail;
    }
    rc = check_utf8(&c, buf, len);
    if (rc < 0) {
        goto fail;
    }
    c.s = wf_calloc(1, sizeof(*c.s));
    wf_arena_init(&c.s->arena, 16384, 0);
    if (!yaml_parser_initialize(&parser)) {
        rc = WF_E_INTERNAL;
        goto fail;
    }
    parser_ready = true;
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
    yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING);
    for (bool done = false; !done;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = fail(&c, CP_E_SYNTAX, parser.problem_mark.line, parser.problem_mark.column,
                      "%s%s%s", parser.problem ? parser.problem : "malformed YAML",
                      parser.context ? " " : "", parser.context ? parser.context : "");
            goto fail;
        }
        switch (ev.type) {
        case YAML_SCALAR_EVENT:
            rc = on_scalar(&c, &ev);
            break;
        case YAML_SEQUENCE_START_EVENT:
            rc = on_open(&c, &ev, CP_YAML_SEQ);
            break;
        case YAML_MAPPING_START_EVENT:
            rc = on_open(&c, &ev, CP_YAML_MAP);
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            rc = on_close(&c, &ev);
            break;
        case YAML_ALIAS_EVENT:
            rc = on_alias(&c, &ev);
            break;
        case YAML_DOCUMENT_END_EVENT:
            /* Anchors are scoped to their document. */
            for (uint32_t i = 0; i < c.n_anchors; i++) {
                wf_free(c.anchors[i].name);
            }
            c.n_anchors = 0;
            break;
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
        if (rc < 0) {
            goto fail;
        }
    }
    c.s->docs = wf_arena_alloc(&c.s->arena, (c.s->n_docs ? c.s->n_docs : 1) * sizeof(*c.s->docs));
    if (c.s->n_docs > 0) {
        memcpy(c.s->docs, c.docs, c.s->n_docs * sizeof(*c.docs));
    }
    *out = c.s;
    c.s = NULL;
fail:
    if (parser_ready) {
        yaml_parser_delete(&parser);
    }
    for (uint32_t i = 0; i < c.depth; i++) {
        wf_free(c.stack[i].items);
        wf_free(c.stack[i].anchor);
    }
    wf_free(c.stack);
    for (uint32_t i = 0; i < c.n_anchors; i++) {
        wf_free(c.anchors[i].name);
    }
    wf_free(c.anchors);
    wf_free(c.docs);
    cp_yaml_free(c.s);
    return rc;
}

void cp_yaml_free(cp_yaml_stream_t *s)
{
    if (s == NULL) {
        return;
    }
    wf_arena_free(&s->arena);
    wf_free(s);
}

const cp_yaml_node_t *cp_yaml_get(const cp_yaml_node_t *map, const char *key)
{
    if (map == NULL || map->kind != CP_YAML_MAP) {
        return NULL;
    }
    for (uint32_t i = 0; i < map->n; i++) {
        if (wf_str_eq_c(map->pairs[i].key->value, key)) {
            return map->pairs[i].value;
        }
    }
    return NULL;
}

bool cp_yaml_is_null(const cp_yaml_node_t *n)
{
    if (n == NULL || n->kind != CP_YAML_SCALAR) {
        return false;
    }
    if (n->tag.p != NULL) {
        return strcmp(n->tag.p, "tag:yaml.org,2002:null") == 0;
    }
    if (n->style != CP_YAML_PLAIN) {
        return false;
    }
    return n->value.len == 0 || wf_str_eq_c(n->value, "~") || wf_str_eq_c(n->value, "null") ||
           wf_str_eq_c(n->value, "Null") || wf_str_eq_c(n->value, "NULL");
}
