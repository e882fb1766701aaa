/*
 * pql_ast.h - the PromQL syntax tree: what the parser (pql_parse.c) produces and what the
 * evaluator (pql_eval.c) and the printer (pql_format.c) consume.
 *
 * Semantics are Prometheus 2.42's. The tree is allocated in one wf_arena_t owned by whoever
 * called the parser; nodes, strings and arrays live and die with that arena. The parser has
 * already type-checked the tree (every node's `type` is set, function arguments match their
 * signatures, binary operators are legal for their operand types), so consumers may rely on it.
 *
 * Times are int64 milliseconds; durations too.
 */
#ifndef PQL_AST_H
#define PQL_AST_H

#include "st_store.h"
#include "wf_arena.h"
#include "wf_buf.h"
#include "wf_str.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The four value types of PromQL. */
typedef enum {
    PQL_TYPE_NONE = 0,
    PQL_TYPE_SCALAR,
    PQL_TYPE_VECTOR, /* instant vector */
    PQL_TYPE_MATRIX, /* range vector */
    PQL_TYPE_STRING,
} pql_type_t;

const char *pql_type_name(pql_type_t t); /* "scalar", "instant vector", "range vector", "string" */

typedef enum {
    PQL_NODE_NUMBER,    /* 1, 1.5e3, 0x1f, Inf, NaN */
    PQL_NODE_STRING,    /* "abc", 'abc', `abc` */
    PQL_NODE_VECTOR,    /* metric{a="b"} [offset d] [@ t] */
    PQL_NODE_MATRIX,    /* vector selector [5m] */
    PQL_NODE_SUBQUERY,  /* expr[5m:1m] [offset d] [@ t] */
    PQL_NODE_CALL,      /* rate(x[5m]) */
    PQL_NODE_AGGREGATE, /* sum by (a) (x), topk(3, x) */
    PQL_NODE_BINARY,    /* a + b, a > bool b, a and on(x) b */
    PQL_NODE_UNARY,     /* -a, +a */
    PQL_NODE_PAREN,     /* (a) */
} pql_node_kind_t;

/* Functions of Prometheus 2.42 (promql/parser/functions.go), in its order of names. */
typedef enum {
    PQL_FN_ABS,
    PQL_FN_ABSENT,
    PQL_FN_ABSENT_OVER_TIME,
    PQL_FN_ACOS,
    PQL_FN_ACOSH,
    PQL_FN_ASIN,
    PQL_FN_ASINH,
    PQL_FN_ATAN,
    PQL_FN_ATANH,
    PQL_FN_AVG_OVER_TIME,
    PQL_FN_CEIL,
    PQL_FN_CHANGES,
    PQL_FN_CLAMP,
    PQL_FN_CLAMP_MAX,
    PQL_FN_CLAMP_MIN,
    PQL_FN_COS,
    PQL_FN_COSH,
    PQL_FN_COUNT_OVER_TIME,
    PQL_FN_DAYS_IN_MONTH,
    PQL_FN_DAY_OF_MONTH,
    PQL_FN_DAY_OF_WEEK,
    PQL_FN_DAY_OF_YEAR,
    PQL_FN_DEG,
    PQL_FN_DELTA,
    PQL_FN_DERIV,
    PQL_FN_EXP,
    PQL_FN_FLOOR,
    PQL_FN_HISTOGRAM_COUNT,    /* native histograms: no float series has one -> empty */
    PQL_FN_HISTOGRAM_FRACTION, /* idem */
    PQL_FN_HISTOGRAM_QUANTILE,
    PQL_FN_HISTOGRAM_SUM, /* idem */
    PQL_FN_HOLT_WINTERS,
    PQL_FN_HOUR,
    PQL_FN_IDELTA,
    PQL_FN_INCREASE,
    PQL_FN_IRATE,
    PQL_FN_LABEL_JOIN,
    PQL_FN_LABEL_REPLACE,
    PQL_FN_LAST_OVER_TIME,
    PQL_FN_LN,
    PQL_FN_LOG10,
    PQL_FN_LOG2,
    PQL_FN_MAX_OVER_TIME,
    PQL_FN_MIN_OVER_TIME,
    PQL_FN_MINUTE,
    PQL_FN_MONTH,
    PQL_FN_PI,
    PQL_FN_PREDICT_LINEAR,
    PQL_FN_PRESENT_OVER_TIME,
    PQL_FN_QUANTILE_OVER_TIME,
    PQL_FN_RAD,
    PQL_FN_RATE,
    PQL_FN_RESETS,
    PQL_FN_ROUND,
    PQL_FN_SCALAR,
    PQL_FN_SGN,
    PQL_FN_SIN,
    PQL_FN_SINH,
    PQL_FN_SORT,
    PQL_FN_SORT_DESC,
    PQL_FN_SQRT,
    PQL_FN_STDDEV_OVER_TIME,
    PQL_FN_STDVAR_OVER_TIME,
    PQL_FN_SUM_OVER_TIME,
    PQL_FN_TAN,
    PQL_FN_TANH,
    PQL_FN_TIME,
    PQL_FN_TIMESTAMP,
    PQL_FN_VECTOR,
    PQL_FN_YEAR,
    PQL_FN_COUNT_ /* number of functions */
} pql_fn_t;

/* A function's signature, as the parser checks it. */
typedef struct {
    const char *name;
    pql_type_t args[5]; /* argument types, nargs of them (label_replace has 5) */
    int nargs;
    int variadic; /* 0: exactly nargs; k > 0: the last k of args are optional; -1: the
                     last one repeats any number of times (label_join) */
    pql_type_t ret;
} pql_fn_sig_t;

/* The signature of fn (fn < PQL_FN_COUNT_); and lookup by name (-1 if unknown). */
const pql_fn_sig_t *pql_fn_sig(pql_fn_t fn);
int pql_fn_lookup(const char *name, size_t len);

typedef enum {
    PQL_AGG_SUM,
    PQL_AGG_AVG,
    PQL_AGG_COUNT,
    PQL_AGG_MIN,
    PQL_AGG_MAX,
    PQL_AGG_GROUP,
    PQL_AGG_STDDEV,
    PQL_AGG_STDVAR,
    PQL_AGG_TOPK,         /* param: scalar k */
    PQL_AGG_BOTTOMK,      /* param: scalar k */
    PQL_AGG_COUNT_VALUES, /* param: string label name */
    PQL_AGG_QUANTILE,     /* param: scalar phi */
} pql_agg_op_t;

typedef enum {
    /* arithmetic, in precedence groups */
    PQL_OP_ADD,
    PQL_OP_SUB,
    PQL_OP_MUL,
    PQL_OP_DIV,
    PQL_OP_MOD,
    PQL_OP_POW,
    PQL_OP_ATAN2,
    /* comparison (filter, or 0/1 with `bool`) */
    PQL_OP_EQL,
    PQL_OP_NEQ,
    PQL_OP_GTR,
    PQL_OP_LSS,
    PQL_OP_GTE,
    PQL_OP_LTE,
    /* set operators (vector/vector only; many-to-many) */
    PQL_OP_AND,
    PQL_OP_OR,
    PQL_OP_UNLESS,
} pql_binop_t;

typedef enum {
    PQL_CARD_ONE_TO_ONE,
    PQL_CARD_MANY_TO_ONE,  /* group_left */
    PQL_CARD_ONE_TO_MANY,  /* group_right */
    PQL_CARD_MANY_TO_MANY, /* set operators */
} pql_card_t;

/* A list of label names (by (...), on (...), group_left (...)). */
typedef struct {
    wf_str_t *names;
    size_t n;
} pql_names_t;

/* `@` modifier: none, a fixed time, or start()/end() of the query. */
typedef enum {
    PQL_AT_NONE,
    PQL_AT_TIME,
    PQL_AT_START,
    PQL_AT_END,
} pql_at_kind_t;

typedef struct pql_node pql_node_t;

/* One label matcher as written; `re` is compiled by the parser for =~ and !~ (else NULL). */
typedef struct {
    st_match_type_t type;
    wf_str_t name;
    wf_str_t value;
    st_matcher_t *compiled; /* owned by the tree: pql_tree_free() releases it */
} pql_matcher_t;

struct pql_node {
    pql_node_kind_t kind;
    pql_type_t type; /* the value type this node evaluates to */
    uint32_t pos;    /* byte offset in the query text, for messages */
    union {
        double number;               /* PQL_NODE_NUMBER */
        wf_str_t string;             /* PQL_NODE_STRING: the unescaped value */
        struct {                     /* PQL_NODE_VECTOR (also the inside of PQL_NODE_MATRIX) */
            wf_str_t name;           /* metric name as written before `{`, may be empty */
            pql_matcher_t *matchers; /* includes __name__="name" when name was given */
            size_t nmatchers;
            int64_t offset_ms; /* may be negative */
            pql_at_kind_t at;
            int64_t at_ms; /* PQL_AT_TIME */
        } vector;
        struct {                /* PQL_NODE_MATRIX */
            pql_node_t *vector; /* a PQL_NODE_VECTOR */
            int64_t range_ms;
        } matrix;
        struct { /* PQL_NODE_SUBQUERY */
            pql_node_t *expr;
            int64_t range_ms;
            int64_t step_ms; /* 0 = the engine's default resolution */
            int64_t offset_ms;
            pql_at_kind_t at;
            int64_t at_ms;
        } subquery;
        struct { /* PQL_NODE_CALL */
            pql_fn_t fn;
            pql_node_t **args;
            size_t nargs;
        } call;
        struct { /* PQL_NODE_AGGREGATE */
            pql_agg_op_t op;
            pql_node_t *expr;
            pql_node_t *param; /* topk/bottomk/quantile/count_values, else NULL */
            pql_names_t grouping;
            bool without;
        } aggregate;
        struct { /* PQL_NODE_BINARY */
            pql_binop_t op;
            pql_node_t *lhs, *rhs;
            bool return_bool;
            /* Vector matching; meaningful only when both sides are instant vectors. */
            pql_card_t card;
            pql_names_t matching; /* on(...) or ignoring(...) labels */
            bool on;              /* true: on(...), false: ignoring(...) (or neither) */
            pql_names_t include;  /* group_left(...)/group_right(...) extra labels */
        } binary;
        struct {         /* PQL_NODE_UNARY */
            bool negate; /* '-' (true) or '+' */
            pql_node_t *expr;
        } unary;
        struct { /* PQL_NODE_PAREN */
            pql_node_t *expr;
        } paren;
    } u;
};

/* A parsed query. */
typedef struct {
    wf_arena_t arena; /* every node and string of the tree */
    pql_node_t *root;
    /* Compiled matchers to free (st_matcher_free) with the tree. */
    st_matcher_t **compiled;
    size_t ncompiled, capcompiled;
} pql_tree_t;

/* Parse errors carry Prometheus's message and the byte offset where they were found. */
typedef struct {
    char msg[512];
    uint32_t pos;
} pql_parse_error_t;

/*
 * Parse and type-check query[0..len). On success *out is a tree (free with pql_tree_free) and
 * 0 is returned; on failure WF_E_INVAL (or WF_E_LIMIT for input beyond the parser's limits:
 * query length, nesting depth) with err->msg like Prometheus's ("1:8: parse error: unexpected
 * right parenthesis ')'"), and *out is NULL.
 */
int pql_parse(const char *query, size_t len, pql_tree_t **out, pql_parse_error_t *err);
void pql_tree_free(pql_tree_t *t);

/* Print the tree canonically on one line, as Prometheus's String() does, appending to out;
 * parsing the output gives the same tree. */
void pql_format(const pql_node_t *n, wf_buf_t *out);

/* Print the tree as Prometheus's Pretty(0) does, appending to out: the String() form, split
 * over indented lines wherever a subexpression's one-line form exceeds 100 characters. This is
 * what /api/v1/format_query returns. */
void pql_format_pretty(const pql_node_t *n, wf_buf_t *out);

/* Append a duration in ms as Prometheus's model.Duration prints it ("1h30m", "15d", "0s";
 * years and weeks only when they divide it). Everything weft shows as a Prometheus duration
 * (queries, flags, scrape intervals) goes through this. */
void pql_format_duration(wf_buf_t *out, int64_t ms);

/* Structural equality of two trees, positions aside: numbers bit for bit (NaN equal to NaN),
 * matchers as a set (the printer sorts them) and compiled. For round-trip checks: parsing
 * the printed form of a tree must give an equal tree. */
bool pql_node_equal(const pql_node_t *a, const pql_node_t *b);

#endif
