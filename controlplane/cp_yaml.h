/*
 * cp_yaml.h - YAML (and JSON, which is YAML) into a small read-only document tree.
 *
 * The control plane reads user resources with it: `weft apply -f` sends a multi-document YAML
 * stream, each document becomes one tree of mappings, sequences and scalars with their line
 * and column, ready for the typed layer (cp_istio.h). The input is hostile: every limit below
 * is checked while the tree is built, and aliases are counted as if they were expanded, so a
 * "billion laughs" document fails after a few thousand events instead of growing. An alias is
 * not copied: it points at the anchored node, so the tree is a DAG whose expanded size is what
 * the node limit bounds. Non-UTF-8 input, duplicate mapping keys and non-scalar keys are
 * refused. Errors read "line L column C: message" (1-based).
 *
 * Ownership: a cp_yaml_stream_t owns every node and string (one arena); free it with
 * cp_yaml_free. Any thread; no shared state.
 */
#ifndef CP_YAML_H
#define CP_YAML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cp_err.h"
#include "wf_arena.h"
#include "wf_str.h"

/* An error's text and where it points in the input (line/column 0 when unknown). */
typedef struct {
    uint32_t line;
    uint32_t column;
    char msg[320];
} cp_err_t;

typedef enum { CP_YAML_SCALAR, CP_YAML_SEQ, CP_YAML_MAP } cp_yaml_kind_t;

typedef enum {
    CP_YAML_PLAIN,
    CP_YAML_SINGLE_QUOTED,
    CP_YAML_DOUBLE_QUOTED,
    CP_YAML_LITERAL,
    CP_YAML_FOLDED,
} cp_yaml_style_t;

typedef struct cp_yaml_node cp_yaml_node_t;

typedef struct {
    const cp_yaml_node_t *key; /* always a scalar */
    const cp_yaml_node_t *value;
} cp_yaml_pair_t;

struct cp_yaml_node {
    cp_yaml_kind_t kind;
    cp_yaml_style_t style; /* scalars */
    uint32_t line, column; /* 1-based start of the node */
    wf_str_t tag;          /* explicit tag, {NULL, 0} when none */
    wf_str_t value;        /* scalars: NUL-terminated, valid UTF-8 */
    uint32_t n;            /* items of a sequence or pairs of a mapping */
    const cp_yaml_node_t **items;
    cp_yaml_pair_t *pairs;
};

typedef struct {
    size_t max_bytes;          /* whole input */
    size_t max_nodes;          /* nodes created, aliases counted as their expanded size */
    uint32_t max_depth;        /* nesting of sequences and mappings */
    size_t max_scalar;         /* bytes of one scalar */
    uint32_t max_items;        /* entries of one sequence or mapping */
    size_t max_expanded_bytes; /* scalar bytes, aliases counted as their expansion */
} cp_yaml_limits_t;

typedef struct {
    wf_arena_t arena;
    uint32_t n_docs;
    const cp_yaml_node_t **docs; /* roots; an empty document is a null scalar */
} cp_yaml_stream_t;

/* Defaults: 4 MiB, 200,000 nodes, depth 64, 1 MiB per scalar, 10,000 items, 16 MiB of
 * scalars once aliases are expanded (a few large scalars repeated by aliases stay few nodes,
 * so the node count alone would not bound what a consumer copies). */
void cp_yaml_limits_default(cp_yaml_limits_t *lim);

/*
 * Parse buf[0..len) (lim NULL = defaults). On success *out is a new stream (owned by the
 * caller) and 0 is returned; otherwise *out is NULL, err (may be NULL) holds the message and
 * the result is CP_E_SYNTAX or CP_E_LIMIT.
 */
int cp_yaml_parse(const char *buf, size_t len, const cp_yaml_limits_t *lim, cp_yaml_stream_t **out,
                  cp_err_t *err);
void cp_yaml_free(cp_yaml_stream_t *s);

/* The value under key in a mapping, or NULL (also when map is not a mapping). */
const cp_yaml_node_t *cp_yaml_get(const cp_yaml_node_t *map, const char *key);
/* True for a plain scalar null, ~, empty, or the !!null tag (YAML's null; JSON's null). */
bool cp_yaml_is_null(const cp_yaml_node_t *n);

#endif
