/*
 * pql.h - the PromQL engine: evaluates a parsed query (pql_ast.h) against the store with
 * Prometheus 2.42's semantics, for one instant or for a range of steps.
 *
 * Threads: an engine is immutable after creation; any number of threads may run queries on it
 * concurrently (each query reads the store through the store's reader API).
 *
 * Limits and errors follow Prometheus: a query that would hold more than max_samples samples
 * in memory fails with PQL_ERR_EXECUTION "query processing would load too many samples into
 * memory in query execution"; one that runs past its timeout fails with PQL_ERR_TIMEOUT
 * "query timed out in query execution"; evaluation errors (e.g. "vector cannot contain metrics
 * with the same labelset", "found duplicate series for the match group ...", "many-to-many
 * matching not allowed: ...") are PQL_ERR_EXECUTION with Prometheus's wording.
 */
#ifndef PQL_H
#define PQL_H

#include "pql_ast.h"
#include "st_store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int64_t lookback_ms;     /* default 5 min (--query.lookback-delta) */
    int64_t timeout_ms;      /* default 2 min */
    size_t max_samples;      /* default 50,000,000 (--query.max-samples) */
    int64_t default_step_ms; /* subquery step when omitted: default 1 min
                                (--query.default-evaluation-interval... global eval interval) */
} pql_options_t;

void pql_options_default(pql_options_t *o);

typedef struct pql_engine pql_engine_t;

/* The engine reads s (borrowed; it must outlive the engine). */
int pql_engine_new(st_store_t *s, const pql_options_t *o, pql_engine_t **out);
void pql_engine_free(pql_engine_t *e);

typedef enum {
    PQL_ERR_NONE = 0,
    PQL_ERR_BAD_DATA,  /* HTTP 400: parse errors, bad parameters */
    PQL_ERR_EXECUTION, /* HTTP 422 */
    PQL_ERR_TIMEOUT,   /* HTTP 503 */
    PQL_ERR_CANCELED,  /* HTTP 503 */
    PQL_ERR_INTERNAL,  /* HTTP 500 (store failure) */
} pql_err_type_t;

typedef struct {
    pql_err_type_t type;
    char msg[4096]; /* Prometheus's longest messages name whole label sets */
} pql_error_t;

/* One series of a result. labels are sorted by name; for an instant vector n == 1. For a
 * vector, a series that is a plain metric keeps __name__; function and operator results drop
 * it as Prometheus does. */
typedef struct {
    st_label_t *labels;
    size_t nlabels;
    int64_t *ts; /* ms */
    double *v;
    size_t n;
} pql_series_t;

/*
 * A query result, all memory in its arena.
 *   PQL_TYPE_SCALAR: scalar_t, scalar_v.
 *   PQL_TYPE_STRING: scalar_t, string.
 *   PQL_TYPE_VECTOR: series[] with one point each, at the evaluation time (instant queries).
 *   PQL_TYPE_MATRIX: series[] with their points; range queries always return a matrix (series
 *                    sorted by labels), as do instant queries of a range-vector expression.
 * Order: as Prometheus returns it (sort()/sort_desc()/topk order kept for instant vectors;
 * range query results sorted by label set).
 */
typedef struct {
    wf_arena_t arena;
    pql_type_t type;
    int64_t scalar_t;
    double scalar_v;
    wf_str_t string;
    pql_series_t *series;
    size_t nseries;
    uint64_t samples_loaded; /* samples read from the store, for stats and limits */
} pql_result_t;

void pql_result_free(pql_result_t *r);

/* Evaluate tree at time t_ms (an instant query). timeout_ms bounds this query (0, or above
 * the engine's timeout: the engine's). 0 or -1 with err filled. */
int pql_eval_instant(pql_engine_t *e, const pql_tree_t *tree, int64_t t_ms, int64_t timeout_ms,
                     pql_result_t **out, pql_error_t *err);

/*
 * Evaluate tree at start, start + step, ..., up to end inclusive (a range query). The tree's
 * type must be scalar or instant vector (the API checks and answers bad_data otherwise).
 * Result type PQL_TYPE_MATRIX (a scalar result becomes one series with no labels).
 */
int pql_eval_range(pql_engine_t *e, const pql_tree_t *tree, int64_t start_ms, int64_t end_ms,
                   int64_t step_ms, int64_t timeout_ms, pql_result_t **out, pql_error_t *err);

#endif
