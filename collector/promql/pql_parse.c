/*
 * pql_parse.c - the PromQL parser and type checker (pql_ast.h): Prometheus 2.42's grammar
 * (promql/parser/generated_parser.y) as a precedence-climbing recursive-descent parser, its
 * parse-time checks (ranges only on selectors, offset/@ placement, aggregation arity, regex
 * compilation) and then its type checks (parse.go checkAST) as a separate pass in the same
 * order, so that the first error reported is the one Prometheus reports.
 *
 * Precedence, lowest first: or; and unless; == != <= < >= >; + -; * / % atan2; ^ (right
 * associative). Unary + and - bind like * (so -2^2 is -(2^2)); offset, @ and [..] bind to the
 * primary expression before them. A unary minus on a number literal yields the negated literal,
 * as Prometheus's grammar does; no other folding happens.
 *
 * Prometheus's quirks are kept where users can see them: `x @ start()[5m]` is accepted (only a
 * numeric @ is refused before a range), keywords are metric names where an expression starts
 * (`sum`, `offset`, `by`), a syntax error inside an aggregation's arguments says "in
 * aggregation", and the error messages and their line:column positions are Prometheus's. Only
 * regular-expression errors differ in wording (PCRE2's, not RE2's).
 *
 * The tree: every node's type is set; a binary node's pos is its operator's (start_pos() finds
 * where its text begins); a selector's matchers start with __name__="name" when a name was
 * written, and every matcher is compiled (pql_tree_t.compiled owns them).
 *
 * Limits: a query longer than PQL_MAX_QUERY_LEN, or whose tree is deeper than PQL_MAX_DEPTH
 * (which also bounds the recursion of the parser, the checker, the printer and the evaluator),
 * fails with WF_E_LIMIT. Errors stop at the first one found.
 */
#include "pql_ast.h"
#include "pql_lex.h"

#include "wf_alloc.h"
#include "wf_err.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PQL_MAX_QUERY_LEN (64 * 1024)
#define PQL_MAX_DEPTH 256

typedef struct {
    const char *q;
    size_t len;
    pql_toks_t toks;
    size_t i; /* current token */
    pql_tree_t *t;
    pql_parse_error_t *err;
    int rc;     /* 0 until the first error */
    int depth;  /* parse_expr recursion depth */
    int in_agg; /* aggregation argument lists we are inside */
} parser_t;

/* Operator precedence levels. */
enum {
    PREC_NONE = 0,
    PREC_OR,
    PREC_AND,
    PREC_CMP,
    PREC_ADD,
    PREC_MUL,
    PREC_POW,
};

/* ---- Errors ------------------------------------------------------------------------------- */

static void fail_v(parser_t *p, int rc, uint32_t pos, const char *fmt, va_list ap)
{
    if (p->rc != 0) {
        return;
    }
    p->rc = rc;
    if (p->err == NULL) {
        return;
    }
    /* Prometheus prints line:column (column 1-based, counted in bytes). */
    unsigned line = 1;
    size_t last_nl = (size_t)-1;
    for (size_t i = 0; i < pos && i < p->len; i++) {
        if (p->q[i] == '\n') {
            line++;
            last_nl = i;
        }
    }
    unsigned col = (unsigned)(pos - last_nl);
    int n = snprintf(p->err->msg, sizeof(p->err->msg), "%u:%u: parse error: ", line, col);
    if (n > 0 && (size_t)n < sizeof(p->err->msg)) {
        vsnprintf(p->err->msg + n, sizeof(p->err->msg) - (size_t)n, fmt, ap);
    }
    p->err->pos = pos;
}

static void *fail(parser_t *p, uint32_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void *fail(parser_t *p, uint32_t pos, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fail_v(p, WF_E_INVAL, pos, fmt, ap);
    va_end(ap);
    return NULL;
}

static void *fail_limit(parser_t *p, uint32_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void *fail_limit(parser_t *p, uint32_t pos, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fail_v(p, WF_E_LIMIT, pos, fmt, ap);
    va_end(ap);
    return NULL;
}

/* ---- Tokens ------------------------------------------------------------------------------- */

static const pql_tok_t *cur(parser_t *p)
{
    return &p->toks.toks[p->i];
}

static const pql_tok_t *peek2(parser_t *p)
{
    /* The stream ends with EOF or ERROR, which the parser never steps over. */
    return p->i + 1 < p->toks.n ? &p->toks.toks[p->i + 1] : &p->toks.toks[p->i];
}

static pql_tok_type_t cur_type(parser_t *p)
{
    return cur(p)->type;
}

static const pql_tok_t *advance(parser_t *p)
{
    const pql_tok_t *t = cur(p);
    if (t->type != PQL_T_EOF && t->type != PQL_T_ERROR) {
        p->i++;
    }
    return t;
}

static const char *tok_text(parser_t *p, const pql_tok_t *t)
{
    return p->q + t->pos;
}

/* Prometheus's Item.desc(): how a token is named in "unexpected ..." messages. */
static void tok_desc(parser_t *p, const pql_tok_t *t, wf_buf_t *b)
{
    const char *s = tok_text(p, t);
    switch (t->type) {
    case PQL_T_EOF:
        wf_buf_puts(b, "end of input");
        return;
    case PQL_T_IDENTIFIER:
        wf_buf_puts(b, "identifier ");
        pql__quote(b, s, t->len, 0);
        return;
    case PQL_T_METRIC_IDENTIFIER:
        wf_buf_puts(b, "metric identifier ");
        pql__quote(b, s, t->len, 0);
        return;
    case PQL_T_NUMBER:
    case PQL_T_STRING:
    case PQL_T_DURATION:
        wf_buf_puts(b, t->type == PQL_T_NUMBER   ? "number "
                       : t->type == PQL_T_STRING ? "string "
                                                 : "duration ");
        if (t->len > 10) {
            pql__quote(b, s, t->len, 10);
            wf_buf_puts(b, "...");
        } else {
            pql__quote(b, s, t->len, 0);
        }
        return;
    default:
        break;
    }
    if (t->type == PQL_T_AT) {
        /* AT is missing from Prometheus's ItemTypeStr, so desc() falls back to naming the
         * goyacc token number before the item itself. */
        wf_buf_puts(b, "\"<Item 57385>\" <op:@>");
    } else if (PQL_T_IS_KEYWORD(t->type)) {
        wf_buf_printf(b, "<%.*s>", (int)t->len, s);
    } else if (PQL_T_IS_OPERATOR(t->type)) {
        wf_buf_printf(b, "<op:%.*s>", (int)t->len, s);
    } else if (PQL_T_IS_AGGREGATOR(t->type)) {
        wf_buf_printf(b, "<aggr:%.*s>", (int)t->len, s);
    } else {
        pql__quote(b, s, t->len, 0);
    }
}

/* "unexpected <token>[ in <context>][, expected <what>]" at the current token; a lexical error
 * token reports the lexer's message instead, as Prometheus does. A syntax error with no context
 * of its own inside an aggregation's arguments is reported "in aggregation": that is where
 * Prometheus's yacc error recovery lands (the `aggregate_op error` rule). */
static void *unexpected(parser_t *p, const char *context, const char *expected)
{
    const pql_tok_t *t = cur(p);
    if (context == NULL && p->in_agg > 0) {
        context = "aggregation";
    }
    if (t->type == PQL_T_ERROR) {
        return fail(p, t->pos, "%s", p->toks.msg);
    }
    wf_buf_t b = WF_BUF_INIT;
    tok_desc(p, t, &b);
    fail(p, t->pos, "unexpected %s%s%s%s%s", wf_buf_cstr(&b), context ? " in " : "",
         context ? context : "", expected ? ", expected " : "", expected ? expected : "");
    wf_buf_free(&b);
    return NULL;
}

/* ---- Tree helpers ------------------------------------------------------------------------- */

static pql_node_t *new_node(parser_t *p, pql_node_kind_t kind, uint32_t pos)
{
    pql_node_t *n = wf_arena_alloc(&p->t->arena, sizeof(*n));
    memset(n, 0, sizeof(*n));
    n->kind = kind;
    n->pos = pos;
    return n;
}

static wf_str_t arena_str(parser_t *p, const char *s, size_t n)
{
    return (wf_str_t){wf_arena_strndup(&p->t->arena, s, n), n};
}

/* Where a node's text starts (binary nodes carry their operator's position). */
static uint32_t start_pos(const pql_node_t *n)
{
    for (;;) {
        switch (n->kind) {
        case PQL_NODE_BINARY:
            n = n->u.binary.lhs;
            continue;
        case PQL_NODE_SUBQUERY:
            n = n->u.subquery.expr;
            continue;
        default:
            return n->pos;
        }
    }
}

static void track_compiled(pql_tree_t *t, st_matcher_t *m)
{
    if (t->ncompiled == t->capcompiled) {
        t->capcompiled = t->capcompiled ? t->capcompiled * 2 : 8;
        t->compiled = wf_realloc(t->compiled, t->capcompiled * sizeof(*t->compiled));
    }
    t->compiled[t->ncompiled++] = m;
}

/* A small growable array of pointers or names while a list is being parsed. */
typedef struct {
    void **v;
    size_t n, cap;
} vec_t;

static void vec_push(vec_t *v, void *x)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 8;
        v->v = wf_realloc(v->v, v->cap * sizeof(*v->v));
    }
    v->v[v->n++] = x;
}

/* ---- Literals ----------------------------------------------------------------------------- */

/* strconv.ParseInt(s, 0, 64) then strconv.ParseFloat(s, 64), as Prometheus's number(). The
 * lexer only lets through digits, one '.', an exponent, a 0x prefix with hex digits, and the
 * words Inf and NaN, so strtoll/strtod see nothing Go would read differently except hex
 * fractions, which Go refuses without a 'p' exponent. */
static int parse_number(parser_t *p, const pql_tok_t *t, double *out)
{
    const char *s = tok_text(p, t);
    char *buf = wf_malloc(t->len + 1);
    memcpy(buf, s, t->len);
    buf[t->len] = '\0';
    char *end;
    errno = 0;
    long long iv = strtoll(buf, &end, 0);
    if (*end == '\0' && errno == 0 && end != buf) {
        *out = (double)iv;
        wf_free(buf);
        return 0;
    }
    bool hex = t->len > 1 && buf[0] == '0' && (buf[1] == 'x' || buf[1] == 'X');
    errno = 0;
    double v = strtod(buf, &end);
    const char *why = NULL;
    if (hex || *end != '\0' || end == buf) {
        why = "invalid syntax";
    } else if (errno == ERANGE && isinf(v)) {
        why = "value out of range";
    }
    wf_free(buf);
    if (why != NULL) {
        wf_buf_t b = WF_BUF_INIT;
        pql__quote(&b, s, t->len, 0);
        fail(p, t->pos, "error parsing number: strconv.ParseFloat: parsing %s: %s", wf_buf_cstr(&b),
             why);
        wf_buf_free(&b);
        return -1;
    }
    *out = v;
    return 0;
}

static void put_utf8(char *o, size_t *k, uint32_t r)
{
    if (r < 0x80) {
        o[(*k)++] = (char)r;
    } else if (r < 0x800) {
        o[(*k)++] = (char)(0xC0 | (r >> 6));
        o[(*k)++] = (char)(0x80 | (r & 0x3F));
    } else if (r < 0x10000) {
        o[(*k)++] = (char)(0xE0 | (r >> 12));
        o[(*k)++] = (char)(0x80 | ((r >> 6) & 0x3F));
        o[(*k)++] = (char)(0x80 | (r & 0x3F));
    } else {
        o[(*k)++] = (char)(0xF0 | (r >> 18));
        o[(*k)++] = (char)(0x80 | ((r >> 12) & 0x3F));
        o[(*k)++] = (char)(0x80 | ((r >> 6) & 0x3F));
        o[(*k)++] = (char)(0x80 | (r & 0x3F));
    }
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return c - 'A' + 10;
}

/* The value of a string token. The lexer has validated every escape, so this cannot fail;
 * \x and octal escapes produce single bytes, \u and \U produce UTF-8, as Go's do. */
static wf_str_t unquote(parser_t *p, const pql_tok_t *t)
{
    const char *s = tok_text(p, t) + 1;
    size_t n = t->len - 2;
    if (s[-1] == '`') {
        return arena_str(p, s, n);
    }
    char *o = wf_arena_alloc(&p->t->arena, n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] != '\\') {
            o[k++] = s[i++];
            continue;
        }
        char c = s[i + 1];
        i += 2;
        switch (c) {
        case 'a':
            o[k++] = '\a';
            break;
        case 'b':
            o[k++] = '\b';
            break;
        case 'f':
            o[k++] = '\f';
            break;
        case 'n':
            o[k++] = '\n';
            break;
        case 'r':
            o[k++] = '\r';
            break;
        case 't':
            o[k++] = '\t';
            break;
        case 'v':
            o[k++] = '\v';
            break;
        case 'x': {
            o[k++] = (char)(hexval(s[i]) << 4 | hexval(s[i + 1]));
            i += 2;
            break;
        }
        case 'u':
        case 'U': {
            int digits = c == 'u' ? 4 : 8;
            uint32_t r = 0;
            for (int d = 0; d < digits; d++) {
                r = r << 4 | (uint32_t)hexval(s[i + (size_t)d]);
            }
            i += (size_t)digits;
            put_utf8(o, &k, r); /* never longer than the escape itself */
            break;
        }
        default:
            if (c >= '0' && c <= '7') {
                int v = (c - '0') << 6 | (s[i] - '0') << 3 | (s[i + 1] - '0');
                o[k++] = (char)v;
                i += 2;
            } else {
                o[k++] = c; /* \\ and the quote */
            }
            break;
        }
    }
    o[k] = '\0';
    return (wf_str_t){o, k};
}

static int parse_duration_tok(parser_t *p, const pql_tok_t *t, int64_t *ms)
{
    char msg[160];
    if (pql__parse_duration(tok_text(p, t), t->len, ms, msg, sizeof(msg)) != 0) {
        fail(p, t->pos, "%s", msg);
        return -1;
    }
    return 0;
}

/* ---- Grammar ------------------------------------------------------------------------------ */

static pql_node_t *parse_expr(parser_t *p, int min_prec, int *height);

static bool is_label_word(parser_t *p, const pql_tok_t *t)
{
    const char *s = tok_text(p, t);
    if (t->len == 0 ||
        !(s[0] == '_' || (s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z'))) {
        return false;
    }
    for (size_t i = 1; i < t->len; i++) {
        char c = s[i];
        if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9'))) {
            return false;
        }
    }
    return true;
}

/* Tokens the grammar's maybe_label accepts as a label name in grouping lists. */
static bool maybe_label(pql_tok_type_t t)
{
    return t == PQL_T_IDENTIFIER || t == PQL_T_METRIC_IDENTIFIER || PQL_T_IS_AGGREGATOR(t) ||
           PQL_T_IS_KEYWORD(t) || t == PQL_T_LAND || t == PQL_T_LOR || t == PQL_T_LUNLESS ||
           t == PQL_T_START || t == PQL_T_END || t == PQL_T_ATAN2;
}

/* ( label, ... ) -- the list after by/without/on/ignoring/group_x. */
static int parse_grouping(parser_t *p, pql_names_t *out)
{
    vec_t v = {0};
    if (cur_type(p) != PQL_T_LEFT_PAREN) {
        unexpected(p, "grouping opts", "\"(\"");
        return -1;
    }
    advance(p);
    if (cur_type(p) != PQL_T_RIGHT_PAREN) {
        for (;;) {
            const pql_tok_t *t = cur(p);
            if (!maybe_label(t->type) || !is_label_word(p, t)) {
                unexpected(p, "grouping opts", "label");
                goto fail;
            }
            vec_push(&v, (void *)t);
            advance(p);
            if (cur_type(p) == PQL_T_COMMA) {
                advance(p);
                if (cur_type(p) == PQL_T_RIGHT_PAREN) {
                    break;
                }
                continue;
            }
            if (cur_type(p) == PQL_T_RIGHT_PAREN) {
                break;
            }
            unexpected(p, "grouping opts", "\",\" or \")\"");
            goto fail;
        }
    }
    advance(p); /* ) */
    out->n = v.n;
    out->names = v.n ? wf_arena_alloc(&p->t->arena, v.n * sizeof(wf_str_t)) : NULL;
    for (size_t i = 0; i < v.n; i++) {
        const pql_tok_t *t = v.v[i];
        out->names[i] = arena_str(p, tok_text(p, t), t->len);
    }
    wf_free(v.v);
    return 0;
fail:
    wf_free(v.v);
    return -1;
}

/* Tokens that can begin an expression. */
static bool starts_expr(pql_tok_type_t t)
{
    switch (t) {
    case PQL_T_NUMBER:
    case PQL_T_STRING:
    case PQL_T_LEFT_PAREN:
    case PQL_T_LEFT_BRACE:
    case PQL_T_IDENTIFIER:
    case PQL_T_METRIC_IDENTIFIER:
    case PQL_T_BY:
    case PQL_T_WITHOUT:
    case PQL_T_OFFSET:
    case PQL_T_START:
    case PQL_T_END:
    case PQL_T_LAND:
    case PQL_T_LOR:
    case PQL_T_LUNLESS:
    case PQL_T_ADD:
    case PQL_T_SUB:
        return true;
    default:
        return PQL_T_IS_AGGREGATOR(t);
    }
}

/* ( expr, ... ) of a call or an aggregation; *h receives the deepest argument's height. */
static int parse_args(parser_t *p, vec_t *args, int *h, const char *context)
{
    *h = 0;
    WF_ASSERT(cur_type(p) == PQL_T_LEFT_PAREN);
    advance(p);
    if (cur_type(p) == PQL_T_RIGHT_PAREN) {
        advance(p);
        return 0;
    }
    for (;;) {
        int ah;
        pql_node_t *a = parse_expr(p, PREC_NONE, &ah);
        if (a == NULL) {
            return -1;
        }
        vec_push(args, a);
        *h = ah > *h ? ah : *h;
        if (cur_type(p) == PQL_T_COMMA) {
            const pql_tok_t *comma = advance(p);
            /* Prometheus's grammar reduces "args ," before it looks for an expression, so any
             * token that cannot begin one reports the trailing comma (a lexical error is seen
             * first, while the parser reads its lookahead). */
            if (cur_type(p) == PQL_T_ERROR) {
                unexpected(p, NULL, NULL);
                return -1;
            }
            if (!starts_expr(cur_type(p))) {
                fail(p, comma->pos, "trailing commas not allowed in function call args");
                return -1;
            }
            continue;
        }
        if (cur_type(p) == PQL_T_RIGHT_PAREN) {
            advance(p);
            return 0;
        }
        unexpected(p, context, NULL);
        return -1;
    }
}

/* Compile m into m->compiled (owned by the tree from here on); at is where errors point. */
static int compile_matcher(parser_t *p, pql_matcher_t *m, uint32_t at)
{
    char emsg[256] = "";
    int rc = st_matcher_new(m->type, m->name, m->value, &m->compiled, emsg, sizeof(emsg));
    if (rc != 0) {
        if (rc == ST_E_REGEX) {
            fail(p, at, "error parsing regexp: %s", emsg);
        } else {
            fail(p, at, "invalid label matcher");
        }
        return -1;
    }
    track_compiled(p->t, m->compiled);
    return 0;
}

static st_match_type_t match_type(pql_tok_type_t t)
{
    switch (t) {
    case PQL_T_EQL:
        return ST_MATCH_EQ;
    case PQL_T_NEQ:
        return ST_MATCH_NE;
    case PQL_T_EQL_REGEX:
        return ST_MATCH_RE;
    default:
        return ST_MATCH_NRE;
    }
}

static pql_node_t *parse_selector(parser_t *p, const pql_tok_t *name)
{
    uint32_t pos = name ? name->pos : cur(p)->pos;
    pql_node_t *n = new_node(p, PQL_NODE_VECTOR, pos);
    n->type = PQL_TYPE_VECTOR;
    /* Slot 0 is kept for the name's matcher; Prometheus adds it once the braces are read. */
    pql_matcher_t *ms = wf_calloc(8, sizeof(*ms));
    size_t nms = 1, cap = 8;

    if (name != NULL) {
        n->u.vector.name = arena_str(p, tok_text(p, name), name->len);
    }
    if (cur_type(p) == PQL_T_LEFT_BRACE) {
        advance(p);
        if (cur_type(p) != PQL_T_RIGHT_BRACE) {
            for (;;) {
                const pql_tok_t *ln = cur(p);
                if (ln->type != PQL_T_IDENTIFIER) {
                    unexpected(p, "label matching", "identifier or \"}\"");
                    goto fail;
                }
                advance(p);
                const pql_tok_t *op = cur(p);
                if (op->type != PQL_T_EQL && op->type != PQL_T_NEQ && op->type != PQL_T_EQL_REGEX &&
                    op->type != PQL_T_NEQ_REGEX) {
                    unexpected(p, "label matching", "label matching operator");
                    goto fail;
                }
                advance(p);
                const pql_tok_t *val = cur(p);
                if (val->type != PQL_T_STRING) {
                    unexpected(p, "label matching", "string");
                    goto fail;
                }
                if (nms == cap) {
                    cap *= 2;
                    ms = wf_realloc(ms, cap * sizeof(*ms));
                }
                pql_matcher_t *m = &ms[nms++];
                *m = (pql_matcher_t){.type = match_type(op->type),
                                     .name = arena_str(p, tok_text(p, ln), ln->len),
                                     .value = unquote(p, val)};
                /* Compiled as soon as it is read, so that a bad regex is reported before any
                 * later error in the same braces, as Prometheus does. */
                if (compile_matcher(p, m, ln->pos) != 0) {
                    goto fail;
                }
                advance(p);
                if (cur_type(p) == PQL_T_COMMA) {
                    advance(p);
                    if (cur_type(p) == PQL_T_RIGHT_BRACE) {
                        break;
                    }
                    continue;
                }
                if (cur_type(p) == PQL_T_RIGHT_BRACE) {
                    break;
                }
                unexpected(p, "label matching", "\",\" or \"}\"");
                goto fail;
            }
        }
        advance(p); /* } */
    }

    size_t first = 1;
    if (name != NULL) {
        first = 0;
        ms[0] = (pql_matcher_t){
            .type = ST_MATCH_EQ, .name = WF_STR_LIT("__name__"), .value = n->u.vector.name};
        if (compile_matcher(p, &ms[0], name->pos) != 0) {
            goto fail;
        }
    }
    n->u.vector.nmatchers = nms - first;
    n->u.vector.matchers = wf_arena_alloc(&p->t->arena, (nms - first + 1) * sizeof(pql_matcher_t));
    memcpy(n->u.vector.matchers, ms + first, (nms - first) * sizeof(pql_matcher_t));
    wf_free(ms);
    return n;
fail:
    wf_free(ms);
    return NULL;
}

static pql_node_t *parse_call(parser_t *p, int *h)
{
    const pql_tok_t *id = advance(p);
    vec_t args = {0};
    if (parse_args(p, &args, h, NULL) != 0) {
        wf_free(args.v);
        return NULL;
    }
    int fn = pql_fn_lookup(tok_text(p, id), id->len);
    if (fn < 0) {
        wf_buf_t b = WF_BUF_INIT;
        pql__quote(&b, tok_text(p, id), id->len, 0);
        fail(p, id->pos, "unknown function with name %s", wf_buf_cstr(&b));
        wf_buf_free(&b);
        wf_free(args.v);
        return NULL;
    }
    pql_node_t *n = new_node(p, PQL_NODE_CALL, id->pos);
    n->u.call.fn = (pql_fn_t)fn;
    n->u.call.nargs = args.n;
    n->u.call.args = wf_arena_alloc(&p->t->arena, (args.n ? args.n : 1) * sizeof(pql_node_t *));
    for (size_t i = 0; i < args.n; i++) {
        n->u.call.args[i] = args.v[i];
    }
    wf_free(args.v);
    *h += 1;
    return n;
}

static pql_agg_op_t agg_op(pql_tok_type_t t)
{
    switch (t) {
    case PQL_T_SUM:
        return PQL_AGG_SUM;
    case PQL_T_AVG:
        return PQL_AGG_AVG;
    case PQL_T_COUNT:
        return PQL_AGG_COUNT;
    case PQL_T_MIN:
        return PQL_AGG_MIN;
    case PQL_T_MAX:
        return PQL_AGG_MAX;
    case PQL_T_GROUP:
        return PQL_AGG_GROUP;
    case PQL_T_STDDEV:
        return PQL_AGG_STDDEV;
    case PQL_T_STDVAR:
        return PQL_AGG_STDVAR;
    case PQL_T_TOPK:
        return PQL_AGG_TOPK;
    case PQL_T_BOTTOMK:
        return PQL_AGG_BOTTOMK;
    case PQL_T_COUNT_VALUES:
        return PQL_AGG_COUNT_VALUES;
    default:
        return PQL_AGG_QUANTILE;
    }
}

static pql_node_t *parse_aggregate(parser_t *p, int *h)
{
    const pql_tok_t *op = advance(p);
    pql_node_t *n = new_node(p, PQL_NODE_AGGREGATE, op->pos);
    n->type = PQL_TYPE_VECTOR;
    n->u.aggregate.op = agg_op(op->type);
    bool have_mod = false;
    vec_t args = {0};
    if (cur_type(p) == PQL_T_BY || cur_type(p) == PQL_T_WITHOUT) {
        n->u.aggregate.without = advance(p)->type == PQL_T_WITHOUT;
        if (parse_grouping(p, &n->u.aggregate.grouping) != 0) {
            return NULL;
        }
        have_mod = true;
    }
    if (cur_type(p) != PQL_T_LEFT_PAREN) {
        return unexpected(p, "aggregation", NULL);
    }
    p->in_agg++;
    int rc = parse_args(p, &args, h, "aggregation");
    p->in_agg--;
    if (rc != 0) {
        goto fail;
    }
    /* Without a modifier before the arguments, Prometheus's grammar reads the next token to
     * see whether one follows, so a lexical error there is reported before arity errors. */
    if (!have_mod && cur_type(p) == PQL_T_ERROR) {
        unexpected(p, NULL, NULL);
        goto fail;
    }
    if (!have_mod && (cur_type(p) == PQL_T_BY || cur_type(p) == PQL_T_WITHOUT)) {
        n->u.aggregate.without = advance(p)->type == PQL_T_WITHOUT;
        if (parse_grouping(p, &n->u.aggregate.grouping) != 0) {
            goto fail;
        }
    }
    if (args.n == 0) {
        fail(p, op->pos, "no arguments for aggregate expression provided");
        goto fail;
    }
    pql_agg_op_t a = n->u.aggregate.op;
    size_t want = (a == PQL_AGG_TOPK || a == PQL_AGG_BOTTOMK || a == PQL_AGG_COUNT_VALUES ||
                   a == PQL_AGG_QUANTILE)
                      ? 2
                      : 1;
    if (args.n != want) {
        fail(p, op->pos,
             "wrong number of arguments for aggregate expression provided, expected %zu, got %zu",
             want, args.n);
        goto fail;
    }
    if (want == 2) {
        n->u.aggregate.param = args.v[0];
    }
    n->u.aggregate.expr = args.v[want - 1];
    wf_free(args.v);
    *h += 1;
    return n;
fail:
    wf_free(args.v);
    return NULL;
}

static pql_node_t *parse_primary(parser_t *p, int *h)
{
    const pql_tok_t *t = cur(p);
    *h = 1;
    switch (t->type) {
    case PQL_T_NUMBER: {
        pql_node_t *n = new_node(p, PQL_NODE_NUMBER, t->pos);
        n->type = PQL_TYPE_SCALAR;
        if (parse_number(p, t, &n->u.number) != 0) {
            return NULL;
        }
        advance(p);
        return n;
    }
    case PQL_T_STRING: {
        pql_node_t *n = new_node(p, PQL_NODE_STRING, t->pos);
        n->type = PQL_TYPE_STRING;
        n->u.string = unquote(p, t);
        advance(p);
        return n;
    }
    case PQL_T_LEFT_PAREN: {
        advance(p);
        int ih;
        pql_node_t *e = parse_expr(p, PREC_NONE, &ih);
        if (e == NULL) {
            return NULL;
        }
        if (cur_type(p) != PQL_T_RIGHT_PAREN) {
            return unexpected(p, NULL, NULL);
        }
        advance(p);
        pql_node_t *n = new_node(p, PQL_NODE_PAREN, t->pos);
        n->u.paren.expr = e;
        *h = ih + 1;
        return n;
    }
    case PQL_T_LEFT_BRACE:
        return parse_selector(p, NULL);
    case PQL_T_IDENTIFIER:
        if (peek2(p)->type == PQL_T_LEFT_PAREN) {
            return parse_call(p, h);
        }
        advance(p);
        return parse_selector(p, t);
    case PQL_T_METRIC_IDENTIFIER:
    case PQL_T_BY:
    case PQL_T_WITHOUT:
    case PQL_T_OFFSET:
    case PQL_T_START:
    case PQL_T_END:
    case PQL_T_LAND:
    case PQL_T_LOR:
    case PQL_T_LUNLESS:
        advance(p);
        return parse_selector(p, t);
    default:
        break;
    }
    if (PQL_T_IS_AGGREGATOR(t->type)) {
        pql_tok_type_t nt = peek2(p)->type;
        if (nt == PQL_T_LEFT_PAREN || nt == PQL_T_BY || nt == PQL_T_WITHOUT) {
            return parse_aggregate(p, h);
        }
        advance(p);
        return parse_selector(p, t);
    }
    return unexpected(p, NULL, NULL);
}

/* The vector selector an offset or @ applies to, or NULL (with the error set). */
static int modifier_target(parser_t *p, pql_node_t *n, const char *what, int64_t **offset,
                           pql_at_kind_t **at, int64_t **at_ms)
{
    pql_node_t *v = NULL;
    switch (n->kind) {
    case PQL_NODE_VECTOR:
        v = n;
        break;
    case PQL_NODE_MATRIX:
        v = n->u.matrix.vector;
        break;
    case PQL_NODE_SUBQUERY:
        *offset = &n->u.subquery.offset_ms;
        *at = &n->u.subquery.at;
        *at_ms = &n->u.subquery.at_ms;
        return 0;
    default:
        fail(p, start_pos(n),
             "%s must be preceded by an instant vector selector or range vector selector or a "
             "subquery",
             what);
        return -1;
    }
    *offset = &v->u.vector.offset_ms;
    *at = &v->u.vector.at;
    *at_ms = &v->u.vector.at_ms;
    return 0;
}

static pql_node_t *parse_range(parser_t *p, pql_node_t *n, int *h)
{
    const pql_tok_t *lb = advance(p);
    if (cur_type(p) != PQL_T_DURATION) {
        return unexpected(p, "subquery selector", "duration");
    }
    int64_t range;
    if (parse_duration_tok(p, cur(p), &range) != 0) {
        return NULL;
    }
    advance(p);
    if (cur_type(p) == PQL_T_RIGHT_BRACKET) {
        advance(p);
        if (n->kind != PQL_NODE_VECTOR) {
            return fail(p, lb->pos, "ranges only allowed for vector selectors");
        }
        if (n->u.vector.offset_ms != 0) {
            return fail(p, lb->pos, "no offset modifiers allowed before range");
        }
        /* Prometheus checks only for a timestamp here, so `x @ start()[5m]` is accepted and
         * means x[5m] @ start(). */
        if (n->u.vector.at == PQL_AT_TIME) {
            return fail(p, lb->pos, "no @ modifiers allowed before range");
        }
        pql_node_t *m = new_node(p, PQL_NODE_MATRIX, n->pos);
        m->type = PQL_TYPE_MATRIX;
        m->u.matrix.vector = n;
        m->u.matrix.range_ms = range;
        *h += 1;
        return m;
    }
    if (cur_type(p) != PQL_T_COLON) {
        return unexpected(p, "subquery or range", "\":\" or \"]\"");
    }
    advance(p);
    int64_t step = 0;
    if (cur_type(p) == PQL_T_DURATION) {
        if (parse_duration_tok(p, cur(p), &step) != 0) {
            return NULL;
        }
        advance(p);
        if (cur_type(p) != PQL_T_RIGHT_BRACKET) {
            return unexpected(p, "subquery selector", "\"]\"");
        }
    } else if (cur_type(p) != PQL_T_RIGHT_BRACKET) {
        return unexpected(p, "subquery selector", "duration or \"]\"");
    }
    advance(p);
    pql_node_t *s = new_node(p, PQL_NODE_SUBQUERY, lb->pos);
    s->type = PQL_TYPE_MATRIX;
    s->u.subquery.expr = n;
    s->u.subquery.range_ms = range;
    s->u.subquery.step_ms = step;
    *h += 1;
    return s;
}

static pql_node_t *parse_offset(parser_t *p, pql_node_t *n)
{
    advance(p);
    bool neg = false;
    if (cur_type(p) == PQL_T_SUB) {
        advance(p);
        neg = true;
    }
    if (cur_type(p) != PQL_T_DURATION) {
        return unexpected(p, "offset", "duration");
    }
    int64_t d;
    if (parse_duration_tok(p, cur(p), &d) != 0) {
        return NULL;
    }
    advance(p);
    int64_t *off;
    pql_at_kind_t *at;
    int64_t *at_ms;
    if (modifier_target(p, n, "offset modifier", &off, &at, &at_ms) != 0) {
        return NULL;
    }
    if (*off != 0) {
        return fail(p, start_pos(n), "offset may not be set multiple times");
    }
    *off = neg ? -d : d;
    return n;
}

static pql_node_t *parse_at(parser_t *p, pql_node_t *n)
{
    advance(p);
    pql_at_kind_t kind = PQL_AT_TIME;
    double ts = 0;
    pql_tok_type_t t = cur_type(p);
    if (t == PQL_T_START || t == PQL_T_END) {
        kind = t == PQL_T_START ? PQL_AT_START : PQL_AT_END;
        advance(p);
        if (cur_type(p) != PQL_T_LEFT_PAREN) {
            return unexpected(p, "@", "timestamp");
        }
        advance(p);
        if (cur_type(p) != PQL_T_RIGHT_PAREN) {
            return unexpected(p, "@", "timestamp");
        }
        advance(p);
    } else {
        bool neg = false;
        if (t == PQL_T_ADD || t == PQL_T_SUB) {
            neg = t == PQL_T_SUB;
            advance(p);
        }
        if (cur_type(p) != PQL_T_NUMBER) {
            return unexpected(p, "@", "timestamp");
        }
        if (parse_number(p, cur(p), &ts) != 0) {
            return NULL;
        }
        advance(p);
        if (neg) {
            ts = -ts;
        }
        if (isinf(ts) || isnan(ts) || ts >= 9223372036854775807.0 || ts <= -9223372036854775808.0) {
            if (isnan(ts)) {
                return fail(p, start_pos(n), "timestamp out of bounds for @ modifier: NaN");
            }
            if (isinf(ts)) {
                return fail(p, start_pos(n), "timestamp out of bounds for @ modifier: %s",
                            ts > 0 ? "+Inf" : "-Inf");
            }
            return fail(p, start_pos(n), "timestamp out of bounds for @ modifier: %f", ts);
        }
    }
    int64_t *off;
    pql_at_kind_t *at;
    int64_t *at_ms;
    if (modifier_target(p, n, "@ modifier", &off, &at, &at_ms) != 0) {
        return NULL;
    }
    if (*at != PQL_AT_NONE) {
        return fail(p, start_pos(n), "@ <timestamp> may not be set multiple times");
    }
    *at = kind;
    if (kind == PQL_AT_TIME) {
        /* timestamp.FromFloatSeconds rounds to ms; where int64 cannot hold that, Go on amd64
         * yields INT64_MIN (C would be undefined), and so do we. */
        double msf = round(ts * 1000.0);
        *at_ms = (msf >= 9223372036854775807.0 || msf < -9223372036854775808.0) ? INT64_MIN
                                                                                : (int64_t)msf;
    }
    return n;
}

static pql_node_t *parse_postfix(parser_t *p, int *h)
{
    pql_node_t *n = parse_primary(p, h);
    while (n != NULL) {
        switch (cur_type(p)) {
        case PQL_T_LEFT_BRACKET:
            n = parse_range(p, n, h);
            break;
        case PQL_T_OFFSET:
            n = parse_offset(p, n);
            break;
        case PQL_T_AT:
            n = parse_at(p, n);
            break;
        default:
            return n;
        }
        if (n != NULL && *h > PQL_MAX_DEPTH) {
            return fail_limit(p, n->pos, "query nesting too deep (limit %d)", PQL_MAX_DEPTH);
        }
    }
    return NULL;
}

static int binop_prec(pql_tok_type_t t, pql_binop_t *op)
{
    switch (t) {
    case PQL_T_LOR:
        *op = PQL_OP_OR;
        return PREC_OR;
    case PQL_T_LAND:
        *op = PQL_OP_AND;
        return PREC_AND;
    case PQL_T_LUNLESS:
        *op = PQL_OP_UNLESS;
        return PREC_AND;
    case PQL_T_EQLC:
        *op = PQL_OP_EQL;
        return PREC_CMP;
    case PQL_T_NEQ:
        *op = PQL_OP_NEQ;
        return PREC_CMP;
    case PQL_T_LTE:
        *op = PQL_OP_LTE;
        return PREC_CMP;
    case PQL_T_LSS:
        *op = PQL_OP_LSS;
        return PREC_CMP;
    case PQL_T_GTE:
        *op = PQL_OP_GTE;
        return PREC_CMP;
    case PQL_T_GTR:
        *op = PQL_OP_GTR;
        return PREC_CMP;
    case PQL_T_ADD:
        *op = PQL_OP_ADD;
        return PREC_ADD;
    case PQL_T_SUB:
        *op = PQL_OP_SUB;
        return PREC_ADD;
    case PQL_T_MUL:
        *op = PQL_OP_MUL;
        return PREC_MUL;
    case PQL_T_DIV:
        *op = PQL_OP_DIV;
        return PREC_MUL;
    case PQL_T_MOD:
        *op = PQL_OP_MOD;
        return PREC_MUL;
    case PQL_T_ATAN2:
        *op = PQL_OP_ATAN2;
        return PREC_MUL;
    case PQL_T_POW:
        *op = PQL_OP_POW;
        return PREC_POW;
    default:
        return PREC_NONE;
    }
}

static pql_node_t *parse_unary(parser_t *p, int *h)
{
    const pql_tok_t *t = cur(p);
    if (t->type != PQL_T_ADD && t->type != PQL_T_SUB) {
        return parse_postfix(p, h);
    }
    advance(p);
    /* The operand binds tighter than * but looser than ^: -a^b is -(a^b). */
    pql_node_t *e = parse_expr(p, PREC_POW, h);
    if (e == NULL) {
        return NULL;
    }
    if (e->kind == PQL_NODE_NUMBER) {
        if (t->type == PQL_T_SUB) {
            e->u.number = -e->u.number;
        }
        e->pos = t->pos;
        return e;
    }
    pql_node_t *n = new_node(p, PQL_NODE_UNARY, t->pos);
    n->u.unary.negate = t->type == PQL_T_SUB;
    n->u.unary.expr = e;
    *h += 1;
    return n;
}

/* bool, on/ignoring (...), group_left/group_right [(...)] after a binary operator. */
static int parse_bin_modifiers(parser_t *p, pql_node_t *n)
{
    if (cur_type(p) == PQL_T_BOOL) {
        advance(p);
        n->u.binary.return_bool = true;
    }
    if (cur_type(p) != PQL_T_ON && cur_type(p) != PQL_T_IGNORING) {
        return 0;
    }
    n->u.binary.on = advance(p)->type == PQL_T_ON;
    if (parse_grouping(p, &n->u.binary.matching) != 0) {
        return -1;
    }
    if (cur_type(p) == PQL_T_GROUP_LEFT || cur_type(p) == PQL_T_GROUP_RIGHT) {
        n->u.binary.card =
            advance(p)->type == PQL_T_GROUP_LEFT ? PQL_CARD_MANY_TO_ONE : PQL_CARD_ONE_TO_MANY;
        if (cur_type(p) == PQL_T_LEFT_PAREN) {
            return parse_grouping(p, &n->u.binary.include);
        }
    }
    return 0;
}

static pql_node_t *parse_expr(parser_t *p, int min_prec, int *height)
{
    if (++p->depth > PQL_MAX_DEPTH) {
        p->depth--;
        return fail_limit(p, cur(p)->pos, "query nesting too deep (limit %d)", PQL_MAX_DEPTH);
    }
    int h;
    pql_node_t *lhs = parse_unary(p, &h);
    while (lhs != NULL) {
        pql_binop_t op;
        int prec = binop_prec(cur_type(p), &op);
        if (prec == PREC_NONE || prec < min_prec) {
            break;
        }
        const pql_tok_t *opt = advance(p);
        pql_node_t *n = new_node(p, PQL_NODE_BINARY, opt->pos);
        n->u.binary.op = op;
        n->u.binary.card = PQL_CARD_ONE_TO_ONE;
        if (parse_bin_modifiers(p, n) != 0) {
            lhs = NULL;
            break;
        }
        int rh;
        pql_node_t *rhs = parse_expr(p, op == PQL_OP_POW ? prec : prec + 1, &rh);
        if (rhs == NULL) {
            lhs = NULL;
            break;
        }
        n->u.binary.lhs = lhs;
        n->u.binary.rhs = rhs;
        h = (h > rh ? h : rh) + 1;
        if (h > PQL_MAX_DEPTH) {
            lhs = fail_limit(p, opt->pos, "query nesting too deep (limit %d)", PQL_MAX_DEPTH);
            break;
        }
        lhs = n;
    }
    p->depth--;
    if (lhs != NULL && h > PQL_MAX_DEPTH) {
        lhs = fail_limit(p, lhs->pos, "query nesting too deep (limit %d)", PQL_MAX_DEPTH);
    }
    *height = h;
    return lhs;
}

/* ---- Type checking (parse.go checkAST) ---------------------------------------------------- */

static const char *raw_type_name(pql_type_t t)
{
    /* ValueType's own String(), used where Prometheus does not call DocumentedType. */
    switch (t) {
    case PQL_TYPE_SCALAR:
        return "scalar";
    case PQL_TYPE_VECTOR:
        return "vector";
    case PQL_TYPE_MATRIX:
        return "matrix";
    case PQL_TYPE_STRING:
        return "string";
    default:
        return "none";
    }
}

static bool is_comparison(pql_binop_t op)
{
    return op >= PQL_OP_EQL && op <= PQL_OP_LTE;
}

static bool is_set_op(pql_binop_t op)
{
    return op == PQL_OP_AND || op == PQL_OP_OR || op == PQL_OP_UNLESS;
}

static const char *binop_name(pql_binop_t op)
{
    static const char *names[] = {"+",  "-", "*", "/",  "%",  "^",   "atan2", "==",
                                  "!=", ">", "<", ">=", "<=", "and", "or",    "unless"};
    return names[op];
}

static pql_type_t check(parser_t *p, pql_node_t *n);

static void expect_type(parser_t *p, pql_node_t *n, pql_type_t want, const char *context)
{
    pql_type_t t = check(p, n);
    if (t != want && p->rc == 0) {
        fail(p, start_pos(n), "expected type %s in %s, got %s", pql_type_name(want), context,
             pql_type_name(t));
    }
}

static void check_vector(parser_t *p, pql_node_t *n)
{
    if (n->u.vector.name.len > 0) {
        for (size_t i = 1; i < n->u.vector.nmatchers; i++) {
            pql_matcher_t *m = &n->u.vector.matchers[i];
            if (wf_str_eq_c(m->name, "__name__")) {
                wf_buf_t b = WF_BUF_INIT;
                pql__quote(&b, n->u.vector.name.p, n->u.vector.name.len, 0);
                wf_buf_puts(&b, " or ");
                pql__quote(&b, m->value.p, m->value.len, 0);
                fail(p, n->pos, "metric name must not be set twice: %s", wf_buf_cstr(&b));
                wf_buf_free(&b);
                return;
            }
        }
        return;
    }
    for (size_t i = 0; i < n->u.vector.nmatchers; i++) {
        if (!st_matcher_matches(n->u.vector.matchers[i].compiled, (wf_str_t){"", 0})) {
            return;
        }
    }
    fail(p, n->pos, "vector selector must contain at least one non-empty matcher");
}

static void check_binary(parser_t *p, pql_node_t *n)
{
    pql_type_t lt = check(p, n->u.binary.lhs);
    pql_type_t rt = check(p, n->u.binary.rhs);
    pql_binop_t op = n->u.binary.op;
    if (p->rc != 0) {
        return;
    }
    if (n->u.binary.return_bool && !is_comparison(op)) {
        fail(p, n->pos, "bool modifier can only be used on comparison operators");
        return;
    }
    if (is_comparison(op) && !n->u.binary.return_bool && lt == PQL_TYPE_SCALAR &&
        rt == PQL_TYPE_SCALAR) {
        fail(p, n->pos, "comparisons between scalars must use BOOL modifier");
        return;
    }
    if (is_set_op(op) && n->u.binary.card == PQL_CARD_ONE_TO_ONE) {
        n->u.binary.card = PQL_CARD_MANY_TO_MANY;
    }
    if (n->u.binary.on) {
        for (size_t i = 0; i < n->u.binary.matching.n; i++) {
            for (size_t j = 0; j < n->u.binary.include.n; j++) {
                if (wf_str_eq(n->u.binary.matching.names[i], n->u.binary.include.names[j])) {
                    wf_buf_t b = WF_BUF_INIT;
                    wf_str_t l = n->u.binary.matching.names[i];
                    pql__quote(&b, l.p, l.len, 0);
                    fail(p, n->pos, "label %s must not occur in ON and GROUP clause at once",
                         wf_buf_cstr(&b));
                    wf_buf_free(&b);
                    return;
                }
            }
        }
    }
    if (lt != PQL_TYPE_SCALAR && lt != PQL_TYPE_VECTOR) {
        fail(p, start_pos(n->u.binary.lhs),
             "binary expression must contain only scalar and instant vector types");
        return;
    }
    if (rt != PQL_TYPE_SCALAR && rt != PQL_TYPE_VECTOR) {
        fail(p, start_pos(n->u.binary.rhs),
             "binary expression must contain only scalar and instant vector types");
        return;
    }
    if (lt != PQL_TYPE_VECTOR || rt != PQL_TYPE_VECTOR) {
        if (n->u.binary.matching.n > 0) {
            fail(p, start_pos(n), "vector matching only allowed between instant vectors");
            return;
        }
        /* Prometheus drops the vector matching here: nothing to match. */
        n->u.binary.card = PQL_CARD_ONE_TO_ONE;
        n->u.binary.on = false;
        n->u.binary.include = (pql_names_t){NULL, 0};
    } else if (is_set_op(op) && (n->u.binary.card == PQL_CARD_ONE_TO_MANY ||
                                 n->u.binary.card == PQL_CARD_MANY_TO_ONE)) {
        fail(p, start_pos(n), "no grouping allowed for \"%s\" operation", binop_name(op));
        return;
    }
    if ((lt == PQL_TYPE_SCALAR || rt == PQL_TYPE_SCALAR) && is_set_op(op)) {
        fail(p, start_pos(n), "set operator \"%s\" not allowed in binary scalar expression",
             binop_name(op));
        return;
    }
}

static void check_call(parser_t *p, pql_node_t *n)
{
    const pql_fn_sig_t *sig = pql_fn_sig(n->u.call.fn);
    size_t got = n->u.call.nargs;
    size_t nargs = (size_t)sig->nargs;
    if (sig->variadic == 0) {
        if (got != nargs) {
            fail(p, n->pos, "expected %zu argument(s) in call to \"%s\", got %zu", nargs, sig->name,
                 got);
            return;
        }
    } else {
        size_t min = nargs - (sig->variadic > 0 ? (size_t)sig->variadic : 1);
        if (got < min) {
            fail(p, n->pos, "expected at least %zu argument(s) in call to \"%s\", got %zu", min,
                 sig->name, got);
            return;
        }
        if (sig->variadic > 0 && got > nargs) {
            fail(p, n->pos, "expected at most %zu argument(s) in call to \"%s\", got %zu", nargs,
                 sig->name, got);
            return;
        }
    }
    char context[64];
    snprintf(context, sizeof(context), "call to function \"%s\"", sig->name);
    for (size_t i = 0; i < got && p->rc == 0; i++) {
        size_t k = i < nargs ? i : nargs - 1;
        expect_type(p, n->u.call.args[i], sig->args[k], context);
    }
}

static pql_type_t check(parser_t *p, pql_node_t *n)
{
    if (p->rc != 0) {
        return PQL_TYPE_NONE;
    }
    switch (n->kind) {
    case PQL_NODE_NUMBER:
        n->type = PQL_TYPE_SCALAR;
        break;
    case PQL_NODE_STRING:
        n->type = PQL_TYPE_STRING;
        break;
    case PQL_NODE_VECTOR:
        n->type = PQL_TYPE_VECTOR;
        check_vector(p, n);
        break;
    case PQL_NODE_MATRIX:
        n->type = PQL_TYPE_MATRIX;
        check(p, n->u.matrix.vector);
        break;
    case PQL_NODE_SUBQUERY: {
        n->type = PQL_TYPE_MATRIX;
        pql_type_t t = check(p, n->u.subquery.expr);
        if (p->rc == 0 && t != PQL_TYPE_VECTOR) {
            fail(p, start_pos(n), "subquery is only allowed on instant vector, got %s instead",
                 raw_type_name(t));
        }
        break;
    }
    case PQL_NODE_CALL:
        n->type = pql_fn_sig(n->u.call.fn)->ret;
        check_call(p, n);
        break;
    case PQL_NODE_AGGREGATE: {
        n->type = PQL_TYPE_VECTOR;
        expect_type(p, n->u.aggregate.expr, PQL_TYPE_VECTOR, "aggregation expression");
        pql_agg_op_t a = n->u.aggregate.op;
        if (a == PQL_AGG_TOPK || a == PQL_AGG_BOTTOMK || a == PQL_AGG_QUANTILE) {
            expect_type(p, n->u.aggregate.param, PQL_TYPE_SCALAR, "aggregation parameter");
        } else if (a == PQL_AGG_COUNT_VALUES) {
            expect_type(p, n->u.aggregate.param, PQL_TYPE_STRING, "aggregation parameter");
        }
        break;
    }
    case PQL_NODE_BINARY:
        check_binary(p, n);
        n->type =
            (n->u.binary.lhs->type == PQL_TYPE_SCALAR && n->u.binary.rhs->type == PQL_TYPE_SCALAR)
                ? PQL_TYPE_SCALAR
                : PQL_TYPE_VECTOR;
        break;
    case PQL_NODE_UNARY: {
        pql_type_t t = check(p, n->u.unary.expr);
        n->type = t;
        if (p->rc == 0 && t != PQL_TYPE_SCALAR && t != PQL_TYPE_VECTOR) {
            fail(p, n->pos,
                 "unary expression only allowed on expressions of type scalar or instant vector, "
                 "got \"%s\"",
                 pql_type_name(t));
        }
        break;
    }
    case PQL_NODE_PAREN:
        n->type = check(p, n->u.paren.expr);
        break;
    }
    return n->type;
}

/* ---- Entry points ------------------------------------------------------------------------- */

void pql_tree_free(pql_tree_t *t)
{
    if (t == NULL) {
        return;
    }
    for (size_t i = 0; i < t->ncompiled; i++) {
        st_matcher_free(t->compiled[i]);
    }
    wf_free(t->compiled);
    wf_arena_free(&t->arena);
    wf_free(t);
}

int pql_parse(const char *query, size_t len, pql_tree_t **out, pql_parse_error_t *err)
{
    *out = NULL;
    if (err != NULL) {
        err->msg[0] = '\0';
        err->pos = 0;
    }
    parser_t p = {.q = query, .len = len, .err = err};
    if (len > PQL_MAX_QUERY_LEN) {
        fail_limit(&p, 0, "query too long: %zu bytes (limit %d)", len, PQL_MAX_QUERY_LEN);
        return p.rc;
    }
    if (query == NULL && len > 0) {
        fail(&p, 0, "no query text");
        return p.rc;
    }
    if (query == NULL) {
        p.q = query = "";
    }
    p.t = wf_calloc(1, sizeof(*p.t));
    wf_arena_init(&p.t->arena, 4096, 0);
    pql__lex(query, len, &p.toks);

    pql_node_t *root = NULL;
    if (cur_type(&p) == PQL_T_EOF) {
        fail(&p, 0, "no expression found in input");
        goto fail;
    }
    int h;
    root = parse_expr(&p, PREC_NONE, &h);
    if (root == NULL) {
        goto fail;
    }
    if (cur_type(&p) != PQL_T_EOF) {
        unexpected(&p, NULL, NULL);
        goto fail;
    }
    check(&p, root);
    if (p.rc != 0) {
        goto fail;
    }
    p.t->root = root;
    pql__lex_free(&p.toks);
    *out = p.t;
    return 0;
fail:
    WF_ASSERT(p.rc != 0);
    pql__lex_free(&p.toks);
    pql_tree_free(p.t);
    return p.rc;
}
