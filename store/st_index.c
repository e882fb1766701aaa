/*
 * st_index.c - the in-memory inverted index and postings operations (see st_index.h).
 *
 * The index is rebuilt at open from the `series` table; nothing of it is persisted. Series ids
 * are handed out in increasing order, so adding a series appends to each of its postings;
 * deletion (retention) is a binary search and a memmove.
 *
 * Selector evaluation follows Prometheus (tsdb/querier.go PostingsForMatchers): a matcher that
 * does not match "" intersects the union of the postings of the values it matches; a matcher
 * that matches "" (which also selects series lacking the label) subtracts the union of the
 * postings of the values it does not match. `=`, `!=` and literal-alternation regexes look
 * their values up; other regexes scan the label's values.
 */
#include "st_index.h"

#include "st_labels.h"
#include "wf_alloc.h"
#include "wf_err.h"

#include <stdlib.h>
#include <string.h>

/* ---- map ------------------------------------------------------------------------------- */

static inline size_t slot_of(uint64_t key, size_t cap)
{
    return (size_t)((key * 0x9e3779b97f4a7c15ULL) >> 32) & (cap - 1);
}

void st__map_free(st__map_t *m)
{
    wf_free(m->keys);
    wf_free(m->vals);
    memset(m, 0, sizeof(*m));
}

uint64_t *st__map_get(const st__map_t *m, uint64_t key)
{
    WF_ASSERT(key != 0);
    if (m->cap == 0) {
        return NULL;
    }
    for (size_t i = slot_of(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == key) {
            return &m->vals[i];
        }
        if (m->keys[i] == 0) {
            return NULL;
        }
    }
}

static void map_grow(st__map_t *m)
{
    st__map_t old = *m;
    m->cap = old.cap ? old.cap * 2 : 16;
    m->keys = wf_calloc(m->cap, sizeof(uint64_t));
    m->vals = wf_malloc(m->cap * sizeof(uint64_t));
    m->n = 0;
    for (size_t i = 0; i < old.cap; i++) {
        if (old.keys[i] != 0) {
            st__map_put(m, old.keys[i], old.vals[i]);
        }
    }
    wf_free(old.keys);
    wf_free(old.vals);
}

void st__map_put(st__map_t *m, uint64_t key, uint64_t val)
{
    WF_ASSERT(key != 0);
    if ((m->n + 1) * 4 > m->cap * 3) {
        map_grow(m);
    }
    size_t i = slot_of(key, m->cap);
    while (m->keys[i] != 0 && m->keys[i] != key) {
        i = (i + 1) & (m->cap - 1);
    }
    if (m->keys[i] == 0) {
        m->n++;
        m->keys[i] = key;
    }
    m->vals[i] = val;
}

bool st__map_del(st__map_t *m, uint64_t key)
{
    uint64_t *v = st__map_get(m, key);
    if (v == NULL) {
        return false;
    }
    size_t mask = m->cap - 1;
    size_t i = (size_t)(v - m->vals);
    /* Backward-shift deletion keeps linear probing free of tombstones. */
    for (size_t j = (i + 1) & mask; m->keys[j] != 0; j = (j + 1) & mask) {
        size_t home = slot_of(m->keys[j], m->cap);
        /* Move j into the hole i when its home slot is not in (i, j] cyclically. */
        bool in_range = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_range) {
            m->keys[i] = m->keys[j];
            m->vals[i] = m->vals[j];
            i = j;
        }
    }
    m->keys[i] = 0;
    m->n--;
    return true;
}

/* ---- postings -------------------------------------------------------------------------- */

void st__postings_free(st__postings_t *p)
{
    wf_free(p->ids);
    memset(p, 0, sizeof(*p));
}

static void postings_reserve(st__postings_t *p, size_t n)
{
    if (n > p->cap) {
        size_t cap = p->cap ? p->cap : 4;
        while (cap < n) {
            cap *= 2;
        }
        p->ids = wf_realloc(p->ids, cap * sizeof(uint64_t));
        p->cap = cap;
    }
}

static size_t lower_bound(const uint64_t *a, size_t n, uint64_t id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a[mid] < id) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

void st__postings_add(st__postings_t *p, uint64_t id)
{
    postings_reserve(p, p->n + 1);
    if (p->n == 0 || p->ids[p->n - 1] < id) {
        p->ids[p->n++] = id;
        return;
    }
    size_t i = lower_bound(p->ids, p->n, id);
    if (i < p->n && p->ids[i] == id) {
        return;
    }
    memmove(p->ids + i + 1, p->ids + i, (p->n - i) * sizeof(uint64_t));
    p->ids[i] = id;
    p->n++;
}

void st__postings_del(st__postings_t *p, uint64_t id)
{
    size_t i = lower_bound(p->ids, p->n, id);
    if (i < p->n && p->ids[i] == id) {
        memmove(p->ids + i, p->ids + i + 1, (p->n - i - 1) * sizeof(uint64_t));
        p->n--;
    }
}

void st__postings_and(st__postings_t *a, const uint64_t *b, size_t nb)
{
    size_t i = 0, j = 0, k = 0;
    while (i < a->n && j < nb) {
        if (a->ids[i] < b[j]) {
            i++;
        } else if (a->ids[i] > b[j]) {
            j++;
        } else {
            a->ids[k++] = a->ids[i];
            i++;
            j++;
        }
    }
    a->n = k;
}

void st__postings_sub(st__postings_t *a, const uint64_t *b, size_t nb)
{
    size_t i = 0, j = 0, k = 0;
    while (i < a->n) {
        while (j < nb && b[j] < a->ids[i]) {
            j++;
        }
        if (j < nb && b[j] == a->ids[i]) {
            i++;
            continue;
        }
        a->ids[k++] = a->ids[i++];
    }
    a->n = k;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void st__postings_union(st__postings_t *out, const st__postings_t *const *lists, size_t n)
{
    out->n = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += lists[i]->n;
    }
    postings_reserve(out, total);
    for (size_t i = 0; i < n; i++) {
        if (lists[i]->n > 0) {
            memcpy(out->ids + out->n, lists[i]->ids, lists[i]->n * sizeof(uint64_t));
            out->n += lists[i]->n;
        }
    }
    if (n > 1 && out->n > 1) {
        qsort(out->ids, out->n, sizeof(uint64_t), cmp_u64);
        size_t k = 0;
        for (size_t i = 0; i < out->n; i++) {
            if (k == 0 || out->ids[k - 1] != out->ids[i]) {
                out->ids[k++] = out->ids[i];
            }
        }
        out->n = k;
    }
}

/* ---- index ----------------------------------------------------------------------------- */

static uint64_t str_hash(wf_str_t s)
{
    uint64_t h = wf_hash64((const uint8_t *)s.p, s.len, 0);
    return h ? h : 1;
}

static wf_str_t str_dup(wf_str_t s)
{
    return (wf_str_t){wf_strndup(s.p, s.len), s.len};
}

void st__index_free(st__index_t *x)
{
    for (size_t i = 0; i < x->nnames; i++) {
        st__iname_t *n = x->names[i];
        for (size_t j = 0; j < n->nvals; j++) {
            st__postings_free(&n->vals[j]->post);
            wf_free((void *)n->vals[j]->value.p);
            wf_free(n->vals[j]);
        }
        wf_free(n->vals);
        st__map_free(&n->by_hash);
        wf_free((void *)n->name.p);
        wf_free(n);
    }
    wf_free(x->names);
    st__map_free(&x->by_hash);
    st__postings_free(&x->all);
    memset(x, 0, sizeof(*x));
}

st__iname_t *st__index_name(const st__index_t *x, wf_str_t name)
{
    uint64_t *v = st__map_get(&x->by_hash, str_hash(name));
    for (st__iname_t *n = v ? (st__iname_t *)(uintptr_t)*v : NULL; n != NULL; n = n->next) {
        if (wf_str_eq(n->name, name)) {
            return n;
        }
    }
    return NULL;
}

st__ival_t *st__index_value(const st__iname_t *n, wf_str_t value)
{
    uint64_t *v = st__map_get(&n->by_hash, str_hash(value));
    for (st__ival_t *e = v ? (st__ival_t *)(uintptr_t)*v : NULL; e != NULL; e = e->next) {
        if (wf_str_eq(e->value, value)) {
            return e;
        }
    }
    return NULL;
}

static st__iname_t *name_get_or_add(st__index_t *x, wf_str_t name)
{
    st__iname_t *n = st__index_name(x, name);
    if (n != NULL) {
        return n;
    }
    n = wf_calloc(1, sizeof(*n));
    n->name = str_dup(name);
    uint64_t h = str_hash(name);
    uint64_t *head = st__map_get(&x->by_hash, h);
    n->next = head ? (st__iname_t *)(uintptr_t)*head : NULL;
    st__map_put(&x->by_hash, h, (uint64_t)(uintptr_t)n);
    if (x->nnames == x->cap) {
        x->cap = x->cap ? x->cap * 2 : 16;
        x->names = wf_realloc(x->names, x->cap * sizeof(*x->names));
    }
    n->pos = x->nnames;
    x->names[x->nnames++] = n;
    return n;
}

static st__ival_t *value_get_or_add(st__iname_t *n, wf_str_t value)
{
    st__ival_t *e = st__index_value(n, value);
    if (e != NULL) {
        return e;
    }
    e = wf_calloc(1, sizeof(*e));
    e->value = str_dup(value);
    uint64_t h = str_hash(value);
    uint64_t *head = st__map_get(&n->by_hash, h);
    e->next = head ? (st__ival_t *)(uintptr_t)*head : NULL;
    st__map_put(&n->by_hash, h, (uint64_t)(uintptr_t)e);
    if (n->nvals == n->cap) {
        n->cap = n->cap ? n->cap * 2 : 8;
        n->vals = wf_realloc(n->vals, n->cap * sizeof(*n->vals));
    }
    e->pos = n->nvals;
    n->vals[n->nvals++] = e;
    return e;
}

void st__index_add(st__index_t *x, uint64_t id, const uint8_t *enc, size_t len)
{
    wf_rd_t r;
    wf_rd_init(&r, enc, len);
    wf_str_t name, value;
    while (st__labels_next(&r, &name, &value) == 1) {
        st__ival_t *e = value_get_or_add(name_get_or_add(x, name), value);
        st__postings_add(&e->post, id);
    }
    st__postings_add(&x->all, id);
}

/* Unlink e from the hash chain of its name. */
static void value_remove(st__iname_t *n, st__ival_t *e)
{
    uint64_t h = str_hash(e->value);
    uint64_t *head = st__map_get(&n->by_hash, h);
    WF_ASSERT(head != NULL);
    if ((st__ival_t *)(uintptr_t)*head == e) {
        if (e->next != NULL) {
            *head = (uint64_t)(uintptr_t)e->next;
        } else {
            st__map_del(&n->by_hash, h);
        }
    } else {
        st__ival_t *p = (st__ival_t *)(uintptr_t)*head;
        while (p->next != e) {
            p = p->next;
        }
        p->next = e->next;
    }
    n->vals[e->pos] = n->vals[--n->nvals];
    n->vals[e->pos]->pos = e->pos;
    st__postings_free(&e->post);
    wf_free((void *)e->value.p);
    wf_free(e);
}

static void name_remove(st__index_t *x, st__iname_t *n)
{
    uint64_t h = str_hash(n->name);
    uint64_t *head = st__map_get(&x->by_hash, h);
    WF_ASSERT(head != NULL);
    if ((st__iname_t *)(uintptr_t)*head == n) {
        if (n->next != NULL) {
            *head = (uint64_t)(uintptr_t)n->next;
        } else {
            st__map_del(&x->by_hash, h);
        }
    } else {
        st__iname_t *p = (st__iname_t *)(uintptr_t)*head;
        while (p->next != n) {
            p = p->next;
        }
        p->next = n->next;
    }
    x->names[n->pos] = x->names[--x->nnames];
    x->names[n->pos]->pos = n->pos;
    wf_free(n->vals);
    st__map_free(&n->by_hash);
    wf_free((void *)n->name.p);
    wf_free(n);
}

void st__index_del(st__index_t *x, uint64_t id, const uint8_t *enc, size_t len)
{
    wf_rd_t r;
    wf_rd_init(&r, enc, len);
    wf_str_t name, value;
    while (st__labels_next(&r, &name, &value) == 1) {
        st__iname_t *n = st__index_name(x, name);
        st__ival_t *e = n ? st__index_value(n, value) : NULL;
        if (e == NULL) {
            continue;
        }
        st__postings_del(&e->post, id);
        if (e->post.n == 0) {
            value_remove(n, e);
            if (n->nvals == 0) {
                name_remove(x, n);
            }
        }
    }
    st__postings_del(&x->all, id);
}

/*
 * Collect the postings of the values of m's label for which the matcher's result equals
 * `want`, into lists (a growable array the caller frees).
 */
static void collect(const st__index_t *x, const st_matcher_t *m, bool want, pcre2_match_data *md,
                    const st__postings_t ***lists, size_t *nl, size_t *cap)
{
    *nl = 0;
    st__iname_t *n = st__index_name(x, m->name);
    if (n == NULL) {
        return;
    }
#define PUSH(p)                                                                                    \
    do {                                                                                           \
        if (*nl == *cap) {                                                                         \
            *cap = *cap ? *cap * 2 : 16;                                                           \
            *lists = wf_realloc(*lists, *cap * sizeof(**lists));                                   \
        }                                                                                          \
        (*lists)[(*nl)++] = (p);                                                                   \
    } while (0)
    /* Lookups: `=v` wanted true, `!=v` wanted false, and literal sets the same way. */
    bool positive_eq = (m->type == ST_MATCH_EQ && want) || (m->type == ST_MATCH_NE && !want);
    bool positive_set =
        m->set != NULL && ((m->type == ST_MATCH_RE && want) || (m->type == ST_MATCH_NRE && !want));
    if (positive_eq) {
        st__ival_t *e = st__index_value(n, m->value);
        if (e != NULL) {
            PUSH(&e->post);
        }
        return;
    }
    if (positive_set) {
        for (size_t i = 0; i < m->nset; i++) {
            st__ival_t *e = st__index_value(n, m->set[i]);
            bool dup = false;
            for (size_t j = 0; j < i && e != NULL; j++) {
                dup = dup || wf_str_eq(m->set[j], m->set[i]);
            }
            if (e != NULL && !dup) {
                PUSH(&e->post);
            }
        }
        return;
    }
    for (size_t i = 0; i < n->nvals; i++) {
        if (st__matcher_match(m, n->vals[i]->value, md) == want) {
            PUSH(&n->vals[i]->post);
        }
    }
#undef PUSH
}

void st__index_select(const st__index_t *x, const st_matcher_t *const *m, size_t n,
                      st__postings_t *out)
{
    out->n = 0;
    pcre2_match_data *md = st__matcher_scratch_new();
    const st__postings_t **lists = NULL;
    size_t nl = 0, cap = 0;
    st__postings_t tmp = {0};
    bool have = false;
    for (size_t i = 0; i < n; i++) {
        if (m[i]->matches_empty) {
            continue;
        }
        collect(x, m[i], true, md, &lists, &nl, &cap);
        if (!have) {
            st__postings_union(out, lists, nl);
            have = true;
        } else if (nl == 1) {
            st__postings_and(out, lists[0]->ids, lists[0]->n);
        } else {
            st__postings_union(&tmp, lists, nl);
            st__postings_and(out, tmp.ids, tmp.n);
        }
        if (out->n == 0) {
            goto done;
        }
    }
    if (!have) {
        postings_reserve(out, x->all.n);
        if (x->all.n > 0) {
            memcpy(out->ids, x->all.ids, x->all.n * sizeof(uint64_t));
        }
        out->n = x->all.n;
    }
    for (size_t i = 0; i < n && out->n > 0; i++) {
        if (!m[i]->matches_empty) {
            continue;
        }
        collect(x, m[i], false, md, &lists, &nl, &cap);
        if (nl == 1) {
            st__postings_sub(out, lists[0]->ids, lists[0]->n);
        } else if (nl > 1) {
            st__postings_union(&tmp, lists, nl);
            st__postings_sub(out, tmp.ids, tmp.n);
        }
    }
done:
    st__postings_free(&tmp);
    wf_free(lists);
    st__matcher_scratch_free(md);
}
