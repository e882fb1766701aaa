/*
 * pql_eval.h - internals shared by the PromQL evaluator (pql_eval.c) and its functions
 * (pql_func.c). Not a public interface: only these two files include it.
 *
 * A query runs in one evaluator (pql__ev_t): every label set it meets is interned once into a
 * table and named by a dense 32-bit id, so that grouping, vector matching, duplicate detection
 * and metric-name dropping work on integers and small per-id caches instead of hashing label
 * strings again at every step. Label strings are borrowed from the store's series sets (kept
 * open until the query ends) or copied into the query arena.
 *
 * An instant-vector expression evaluates to a pql__mat_t: one column per series holding a value
 * and a presence flag for every step of the current evaluation range (Prometheus evaluates
 * each node over all steps at once in the same way). Per-step work (operators, aggregations,
 * instant functions) sees pql__vec_t vectors gathered from those columns.
 */
#ifndef PQL_EVAL_H
#define PQL_EVAL_H

#include "pql.h"
#include "wf_arena.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The id of the empty label set (scalars, vector(), aggregations without grouping). */
#define PQL__LS_EMPTY 0u

typedef struct {
    st_label_t *l; /* sorted by name; strings borrowed (store sets) or in the query arena */
    uint32_t n;
    uint64_t hash;
} pql__ls_t;

/* One sample of a per-step vector. t is the sample's own timestamp for vector selectors
 * (what timestamp() reports) and the step time otherwise. */
typedef struct {
    uint32_t ls;
    double v;
    int64_t t;
} pql__smp_t;

typedef struct {
    pql__smp_t *s;
    size_t n, cap;
} pql__vec_t;

/* One series over the steps of an evaluation range. */
typedef struct {
    uint32_t ls;
    double *v;   /* [nsteps] */
    uint8_t *ok; /* [nsteps]: 1 when the series has a value at that step */
    int64_t *t;  /* [nsteps] sample timestamps, or NULL (then the step times) */
} pql__ser_t;

typedef struct {
    pql__ser_t *s;
    size_t n, cap;
    size_t nsteps;
} pql__mat_t;

/* The steps of an evaluation: start, start + step, ..., <= end; nsteps of them (may be 0). */
typedef struct {
    int64_t start, end, step;
    size_t nsteps;
} pql__rng_t;

typedef struct pql__ev pql__ev_t;

/* Label sets. */
uint32_t pql__ls_intern(pql__ev_t *ev, const st_label_t *l, size_t n);
const pql__ls_t *pql__ls_get(const pql__ev_t *ev, uint32_t id);
wf_str_t pql__ls_value(const pql__ev_t *ev, uint32_t id, wf_str_t name);
/* The set without __name__ (cached). */
uint32_t pql__ls_drop_name(pql__ev_t *ev, uint32_t id);
/* The set with name=value (value empty: without name). value is copied. */
uint32_t pql__ls_set(pql__ev_t *ev, uint32_t id, wf_str_t name, wf_str_t value);
/* Byte-wise comparison of two sets, Prometheus's labels.Compare order. */
int pql__ls_cmp(const pql__ev_t *ev, uint32_t a, uint32_t b);
wf_arena_t *pql__ev_arena(pql__ev_t *ev);

/* Fail the query with a PQL_ERR_EXECUTION message; returns -1 for `return pql__fail(...)`. */
int pql__fail(pql__ev_t *ev, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void pql__vec_push(pql__vec_t *v, uint32_t ls, double val, int64_t t);

/*
 * Range-vector functions (pql_func.c): fn over the samples t[0..n), v[0..n) (n >= 1, ascending,
 * no staleness markers) of one window that ends at step time ts. range_ms/offset_ms are the
 * selector's (for extrapolation), args the per-step scalar arguments in argument order (the
 * matrix argument's slot unused). Returns true with *out set, or false for "no sample".
 * A non-zero *err (with the message set through ev) fails the query.
 */
bool pql__range_fn(pql__ev_t *ev, pql_fn_t fn, const int64_t *t, const double *v, size_t n,
                   int64_t ts, int64_t range_ms, int64_t offset_ms, const double *args, double *out,
                   int *err);

/* Instant-vector and scalar functions for one step: in[i] is argument i (scalars are vectors
 * of one sample; string arguments were handed to pql__fn_cache_new), nin the number of
 * arguments. Appends to out. 0, or -1 with the error set. */
int pql__call_fn(pql__ev_t *ev, pql_fn_t fn, void *cache, pql__vec_t *in, size_t nin, int64_t ts,
                 pql__vec_t *out);
/* Per-node state of pql__call_fn (regex for label_replace, buckets for histogram_quantile). */
void *pql__fn_cache_new(pql__ev_t *ev, pql_fn_t fn, const wf_str_t *strs, size_t nin);
void pql__fn_cache_free(void *cache);

/* Prometheus's quantile of values (sorted in place), as used by quantile() and
 * quantile_over_time(). */
double pql__quantile(double q, double *values, size_t n);

/* Go's math.Min/Max (NaN wins; -0 < +0), which C's fmin/fmax are not. */
double pql__go_min(double a, double b);
double pql__go_max(double a, double b);

/* Go's sort.Sort on s[0..n) with less(a, b), reproducing its order for equal elements where
 * it matters (insertion sort for short inputs, as pdqsort does). */
void pql__sort_smp(pql__smp_t *s, size_t n, bool (*less)(const pql__smp_t *, const pql__smp_t *));

/* Go's formatting of a float64: 'f' is strconv.FormatFloat(v, 'f', -1, 64) (count_values),
 * 'v' is fmt's %v (error messages). out gets at least 400 bytes. */
void pql__fmt_float(double v, char verb, char *out, size_t cap);

/* Whether s is a valid label name ([a-zA-Z_][a-zA-Z0-9_]*). */
bool pql__label_name_valid(wf_str_t s);

#endif
