/*
 * st_index.h - the metrics inverted index: label name -> label value -> postings (the sorted
 * ids of the series that carry that pair), plus the postings set operations that selectors
 * are evaluated with, and a small open-addressing map from 64-bit keys to 64-bit values that
 * the metrics half uses for its id and label-hash tables. Internal to store/.
 *
 * Ownership: the index copies names and values. Thread-safety: none of its own; the metrics
 * half guards the index with its rwlock (readers share, the writer excludes).
 */
#ifndef ST_INDEX_H
#define ST_INDEX_H

#include "st_matcher.h"
#include "wf_str.h"

#include <stddef.h>
#include <stdint.h>

/* ---- u64 -> u64 map (key 0 is reserved as "empty") ---------------------------------------- */

typedef struct {
    uint64_t *keys;
    uint64_t *vals;
    size_t cap; /* power of two, or 0 */
    size_t n;
} st__map_t;

void st__map_free(st__map_t *m);
/* Pointer to the value stored under key, or NULL. */
uint64_t *st__map_get(const st__map_t *m, uint64_t key);
/* Insert or replace. */
void st__map_put(st__map_t *m, uint64_t key, uint64_t val);
/* Remove key; returns whether it was present. */
bool st__map_del(st__map_t *m, uint64_t key);

/* ---- postings: sorted, duplicate-free arrays of series ids -------------------------------- */

typedef struct {
    uint64_t *ids;
    size_t n, cap;
} st__postings_t;

void st__postings_free(st__postings_t *p);
void st__postings_add(st__postings_t *p, uint64_t id);
void st__postings_del(st__postings_t *p, uint64_t id);
/* a = a ∩ b; a = a \ b (in place). */
void st__postings_and(st__postings_t *a, const uint64_t *b, size_t nb);
void st__postings_sub(st__postings_t *a, const uint64_t *b, size_t nb);
/* out = union of lists (out is overwritten). */
void st__postings_union(st__postings_t *out, const st__postings_t *const *lists, size_t n);

/* ---- the inverted index ------------------------------------------------------------------ */

typedef struct st__ival {
    wf_str_t value; /* owned */
    st__postings_t post;
    size_t pos;            /* index in its name's vals array */
    struct st__ival *next; /* next value with the same hash */
} st__ival_t;

typedef struct st__iname {
    wf_str_t name; /* owned */
    st__map_t by_hash;
    st__ival_t **vals;
    size_t nvals, cap;
    size_t pos;
    struct st__iname *next;
} st__iname_t;

typedef struct {
    st__map_t by_hash;
    st__iname_t **names;
    size_t nnames, cap;
    st__postings_t all; /* every series */
} st__index_t;

void st__index_free(st__index_t *x);
/* Add series id with its canonical label encoding. */
void st__index_add(st__index_t *x, uint64_t id, const uint8_t *enc, size_t len);
void st__index_del(st__index_t *x, uint64_t id, const uint8_t *enc, size_t len);
st__iname_t *st__index_name(const st__index_t *x, wf_str_t name);
st__ival_t *st__index_value(const st__iname_t *n, wf_str_t value);

/*
 * Evaluate matchers: out receives the sorted ids of the series that match all of m[0..n). With
 * n == 0, every series. The caller checks Prometheus's "one matcher must not match the empty
 * string" rule before.
 */
void st__index_select(const st__index_t *x, const st_matcher_t *const *m, size_t n,
                      st__postings_t *out);

#endif
