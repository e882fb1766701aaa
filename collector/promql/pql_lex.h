/*
 * pql_lex.h - internals shared by the PromQL parser's files: the token stream of the lexer
 * (pql_lex.c), and the Go-compatible quoting and duration printing that both the parser's
 * error messages and the printer (pql_format.c) need.
 *
 * The lexer follows Prometheus 2.42's promql/parser/lex.go state for state (parenthesis depth,
 * open brace, open bracket, colon seen in a bracket), so that the same input yields the same
 * tokens and the same lexical error messages. It is not part of the engine's API.
 */
#ifndef PQL_LEX_H
#define PQL_LEX_H

#include "wf_buf.h"

#include <stddef.h>
#include <stdint.h>

typedef enum {
    PQL_T_EOF,
    PQL_T_ERROR, /* lexical error: msg holds the message; always the last token */
    PQL_T_IDENTIFIER,
    PQL_T_METRIC_IDENTIFIER, /* identifier with a colon */
    PQL_T_NUMBER,
    PQL_T_STRING,
    PQL_T_DURATION,
    PQL_T_LEFT_PAREN,
    PQL_T_RIGHT_PAREN,
    PQL_T_LEFT_BRACE,
    PQL_T_RIGHT_BRACE,
    PQL_T_LEFT_BRACKET,
    PQL_T_RIGHT_BRACKET,
    PQL_T_COMMA,
    PQL_T_EQL, /* = */
    PQL_T_COLON,
    /* operators (Prometheus's operatorsStart..operatorsEnd) */
    PQL_T_ADD,
    PQL_T_DIV,
    PQL_T_EQLC, /* == */
    PQL_T_EQL_REGEX,
    PQL_T_GTE,
    PQL_T_GTR,
    PQL_T_LAND,
    PQL_T_LOR,
    PQL_T_LSS,
    PQL_T_LTE,
    PQL_T_LUNLESS,
    PQL_T_MOD,
    PQL_T_MUL,
    PQL_T_NEQ,
    PQL_T_NEQ_REGEX,
    PQL_T_POW,
    PQL_T_SUB,
    PQL_T_AT,
    PQL_T_ATAN2,
    /* aggregators */
    PQL_T_AVG,
    PQL_T_BOTTOMK,
    PQL_T_COUNT,
    PQL_T_COUNT_VALUES,
    PQL_T_GROUP,
    PQL_T_MAX,
    PQL_T_MIN,
    PQL_T_QUANTILE,
    PQL_T_STDDEV,
    PQL_T_STDVAR,
    PQL_T_SUM,
    PQL_T_TOPK,
    /* keywords */
    PQL_T_BOOL,
    PQL_T_BY,
    PQL_T_GROUP_LEFT,
    PQL_T_GROUP_RIGHT,
    PQL_T_IGNORING,
    PQL_T_OFFSET,
    PQL_T_ON,
    PQL_T_WITHOUT,
    /* @ preprocessors */
    PQL_T_START,
    PQL_T_END,
} pql_tok_type_t;

#define PQL_T_IS_OPERATOR(t) ((t) >= PQL_T_ADD && (t) <= PQL_T_ATAN2)
#define PQL_T_IS_AGGREGATOR(t) ((t) >= PQL_T_AVG && (t) <= PQL_T_TOPK)
#define PQL_T_IS_KEYWORD(t) ((t) >= PQL_T_BOOL && (t) <= PQL_T_WITHOUT)

typedef struct {
    pql_tok_type_t type;
    uint32_t pos; /* byte offset of the token's first byte */
    uint32_t len; /* bytes of query text it spans */
} pql_tok_t;

/* The lexed query: every token up to and including EOF or the first ERROR. */
typedef struct {
    pql_tok_t *toks; /* wf_malloc'd */
    size_t n, cap;
    char msg[256]; /* the lexical error's message when the last token is PQL_T_ERROR */
} pql_toks_t;

/* Lex q[0..len) (len <= UINT32_MAX). Comments are dropped. Never fails: a lexical error ends
 * the stream with a PQL_T_ERROR token. Free with pql__lex_free. */
void pql__lex(const char *q, size_t len, pql_toks_t *out);
void pql__lex_free(pql_toks_t *t);

/* Decode one UTF-8 rune at p[0..n) (n > 0): returns its length and sets *r, or returns 1 and
 * sets *r = 0xFFFD for an invalid sequence (as Go's utf8.DecodeRune does). */
size_t pql__utf8_decode(const char *p, size_t n, uint32_t *r);

/* Append s[0..n) quoted as Go's strconv.Quote (%q) does; when max_runes > 0 only the first
 * max_runes runes are quoted (Go's %.Nq). */
void pql__quote(wf_buf_t *b, const char *s, size_t n, size_t max_runes);

/* Parse a duration as model.ParseDuration does plus the "greater than 0" rule of the PromQL
 * parser: 0 and *ms, or -1 with msg set. */
int pql__parse_duration(const char *s, size_t n, int64_t *ms, char *msg, size_t msglen);

#endif
