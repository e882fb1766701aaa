/*
 * pql_eval.c - the PromQL evaluator: instant and range evaluation of a parsed tree against the
 * store, with Prometheus 2.42's semantics (promql/engine.go).
 *
 * Evaluation follows Prometheus's shape: every node is evaluated once over all the steps of
 * its range ([start, end] by step) and yields one column per series (pql__mat_t). Selectors
 * read the store once for the whole window they need, then walk each series with indices that
 * only move forward, so a range query never re-scans a series from its start at each step.
 * Operators, aggregations and instant functions run step by step over vectors gathered from
 * their inputs' columns (range_eval), exactly where Prometheus's rangeEval does; range-vector
 * functions run series by series over a sliding window (eval_range_call).
 *
 * The @ modifier follows 2.42's mechanism rather than its documentation, because the two
 * differ observably: step-invariant subtrees are evaluated once at the first step and
 * repeated (invariant()), `@ t` becomes offset + (start - t) (eff_offset()), and a selector
 * only sees the samples of the window 2.42's querier would have read for it (do_select()).
 * Label sets are interned per query (see pql_eval.h).
 *
 * Errors: every evaluation function returns 0 or -1; -1 means ev->err holds the message.
 */
#include "pql_eval.h"

#include "wf_alloc.h"
#include "wf_clock.h"
#include "wf_err.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERR_TOO_MANY "query processing would load too many samples into memory in query execution"
#define ERR_TIMEOUT "query timed out in query execution"
#define ERR_DUP "vector cannot contain metrics with the same labelset"

struct pql_engine {
    st_store_t *s;
    pql_options_t o;
};

/* A dense map from label-set id to a 32-bit value; UINT32_MAX means "none". */
typedef struct {
    uint32_t *a;
    size_t n;
} idmap_t;

/* Open addressing map from 64-bit keys to 32-bit values. */
typedef struct {
    uint64_t *k;
    uint32_t *v;
    uint8_t *used;
    size_t cap, n;
} u64map_t;

struct pql__ev {
    pql_engine_t *e;
    wf_arena_t arena;
    int64_t qstart, qend;
    /* Prometheus's subqueryTimes() of the subqueries around the node being evaluated: the
     * sums of their offsets and ranges since the innermost one with @ (whose time is sq_at). */
    int64_t sq_off, sq_range, sq_at;
    bool sq_has_at;
    pql__ls_t *ls;
    size_t nls, capls;
    uint32_t *lsidx; /* id + 1, 0 = empty slot */
    size_t lsidx_cap;
    idmap_t dropname;
    st_label_t *scratch;
    size_t capscratch;
    st_series_set_t **sets;
    size_t nsets, capsets;
    pql_error_t *err;
    int64_t deadline_ns;
    uint64_t loaded;
    size_t cur_samples;
    unsigned tick;
};

/* ---- small containers ------------------------------------------------------------------ */

static uint32_t idmap_get(const idmap_t *m, uint32_t id)
{
    return id < m->n ? m->a[id] : UINT32_MAX;
}

static void idmap_set(idmap_t *m, uint32_t id, uint32_t v)
{
    if (id >= m->n) {
        size_t n = m->n ? m->n : 64;
        while (n <= id) {
            n *= 2;
        }
        m->a = wf_realloc(m->a, n * sizeof(*m->a));
        memset(m->a + m->n, 0xff, (n - m->n) * sizeof(*m->a));
        m->n = n;
    }
    m->a[id] = v;
}

static void idmap_free(idmap_t *m)
{
    wf_free(m->a);
    m->a = NULL;
    m->n = 0;
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static void u64map_grow(u64map_t *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 64;
    uint64_t *k = wf_calloc(ncap, sizeof(*k));
    uint32_t *v = wf_calloc(ncap, sizeof(*v));
    uint8_t *used = wf_calloc(ncap, 1);
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->used[i]) {
            continue;
        }
        size_t j = mix64(m->k[i]) & (ncap - 1);
        while (used[j]) {
            j = (j + 1) & (ncap - 1);
        }
        used[j] = 1;
        k[j] = m->k[i];
        v[j] = m->v[i];
    }
    wf_free(m->k);
    wf_free(m->v);
    wf_free(m->used);
    m->k = k;
    m->v = v;
    m->used = used;
    m->cap = ncap;
}

/* The value slot of key, inserted (with *found false) when absent. */
static uint32_t *u64map_slot(u64map_t *m, uint64_t key, bool *found)
{
    if ((m->n + 1) * 2 > m->cap) {
        u64map_grow(m);
    }
    size_t j = mix64(key) & (m->cap - 1);
    while (m->used[j]) {
        if (m->k[j] == key) {
            *found = true;
            return &m->v[j];
        }
        j = (j + 1) & (m->cap - 1);
    }
    m->used[j] = 1;
    m->k[j] = key;
    m->v[j] = 0;
    m->n++;
    *found = false;
    return &m->v[j];
}

static void u64map_free(u64map_t *m)
{
    wf_free(m->k);
    wf_free(m->v);
    wf_free(m->used);
    memset(m, 0, sizeof(*m));
}

void pql__vec_push(pql__vec_t *v, uint32_t ls, double val, int64_t t)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 16;
        v->s = wf_realloc(v->s, v->cap * sizeof(*v->s));
    }
    v->s[v->n].ls = ls;
    v->s[v->n].v = val;
    v->s[v->n].t = t;
    v->n++;
}

static void vec_free(pql__vec_t *v)
{
    wf_free(v->s);
    memset(v, 0, sizeof(*v));
}

/* ---- errors and limits --------------------------------------------------------------------- */

int pql__fail(pql__ev_t *ev, const char *fmt, ...)
{
    if (ev->err->type == PQL_ERR_NONE) {
        va_list ap;
        va_start(ap, fmt);
        ev->err->type = PQL_ERR_EXECUTION;
        vsnprintf(ev->err->msg, sizeof(ev->err->msg), fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int fail_type(pql__ev_t *ev, pql_err_type_t type, const char *msg)
{
    if (ev->err->type == PQL_ERR_NONE) {
        ev->err->type = type;
        snprintf(ev->err->msg, sizeof(ev->err->msg), "%s", msg);
    }
    return -1;
}

/* Check the clock now and then; 0 or -1 (timed out). */
static int check_time(pql__ev_t *ev)
{
    if ((++ev->tick & 63) != 0) {
        return 0;
    }
    if (wf_mono_ns() > ev->deadline_ns) {
        return fail_type(ev, PQL_ERR_TIMEOUT, ERR_TIMEOUT);
    }
    return 0;
}

static int add_samples(pql__ev_t *ev, size_t n)
{
    ev->cur_samples += n;
    if (ev->cur_samples > ev->e->o.max_samples) {
        return pql__fail(ev, "%s", ERR_TOO_MANY);
    }
    return 0;
}

static void sub_samples(pql__ev_t *ev, size_t n)
{
    ev->cur_samples = ev->cur_samples > n ? ev->cur_samples - n : 0;
}

wf_arena_t *pql__ev_arena(pql__ev_t *ev)
{
    return &ev->arena;
}

/* ---- label sets ---------------------------------------------------------------------------- */

/* Mix the bytes of s into h: 8 bytes per multiply. Only for the in-memory table, so it need
 * not be stable across builds like wf_hash64 (which costs a call and a finaliser per string,
 * a measurable share of interning Istio's 30-label sets). */
static inline uint64_t hash_bytes(uint64_t h, const char *p, size_t n)
{
    const uint64_t k = 0x9fb21c651e98df25ULL;
    h ^= n * k;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * k;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }
    if (n) {
        uint64_t w = 0;
        memcpy(&w, p, n);
        h = (h ^ w) * k;
        h ^= h >> 29;
    }
    return h;
}

static uint64_t ls_hash(const st_label_t *l, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ n;
    for (size_t i = 0; i < n; i++) {
        h = hash_bytes(h, l[i].name.p, l[i].name.len);
        h = hash_bytes(h ^ 0xff, l[i].value.p, l[i].value.len);
    }
    return mix64(h);
}

static bool ls_equal(const pql__ls_t *a, const st_label_t *l, size_t n)
{
    if (a->n != n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!wf_str_eq(a->l[i].name, l[i].name) || !wf_str_eq(a->l[i].value, l[i].value)) {
            return false;
        }
    }
    return true;
}

static void lsidx_rehash(pql__ev_t *ev)
{
    size_t cap = ev->lsidx_cap ? ev->lsidx_cap * 2 : 1024;
    uint32_t *idx = wf_calloc(cap, sizeof(*idx));
    for (size_t i = 0; i < ev->nls; i++) {
        size_t j = ev->ls[i].hash & (cap - 1);
        while (idx[j]) {
            j = (j + 1) & (cap - 1);
        }
        idx[j] = (uint32_t)i + 1;
    }
    wf_free(ev->lsidx);
    ev->lsidx = idx;
    ev->lsidx_cap = cap;
}

/* How ls_intern keeps a new set: */
typedef enum {
    LS_BORROW,     /* the array and its strings outlive the query (store sets, interned sets) */
    LS_COPY_ARRAY, /* a transient array of lasting strings */
    LS_COPY_ALL,   /* transient array and strings */
} ls_keep_t;

/* The id of the label set l[0..n), interning it if new. */
static uint32_t ls_intern(pql__ev_t *ev, const st_label_t *l, size_t n, ls_keep_t keep)
{
    uint64_t h = ls_hash(l, n);
    if ((ev->nls + 1) * 2 > ev->lsidx_cap) {
        lsidx_rehash(ev);
    }
    size_t j = h & (ev->lsidx_cap - 1);
    while (ev->lsidx[j]) {
        const pql__ls_t *c = &ev->ls[ev->lsidx[j] - 1];
        if (c->hash == h && ls_equal(c, l, n)) {
            return ev->lsidx[j] - 1;
        }
        j = (j + 1) & (ev->lsidx_cap - 1);
    }
    if (ev->nls == ev->capls) {
        ev->capls = ev->capls ? ev->capls * 2 : 256;
        ev->ls = wf_realloc(ev->ls, ev->capls * sizeof(*ev->ls));
    }
    uint32_t id = (uint32_t)ev->nls++;
    pql__ls_t *c = &ev->ls[id];
    c->n = (uint32_t)n;
    c->hash = h;
    if (keep == LS_BORROW || n == 0) {
        c->l = (st_label_t *)l;
    } else {
        c->l = wf_arena_alloc(&ev->arena, n * sizeof(*l));
        for (size_t i = 0; i < n; i++) {
            c->l[i] = l[i];
            if (keep == LS_COPY_ALL) {
                c->l[i].name.p = wf_arena_strndup(&ev->arena, l[i].name.p, l[i].name.len);
                c->l[i].value.p = wf_arena_strndup(&ev->arena, l[i].value.p, l[i].value.len);
            }
        }
    }
    ev->lsidx[j] = id + 1;
    return id;
}

uint32_t pql__ls_intern(pql__ev_t *ev, const st_label_t *l, size_t n)
{
    return ls_intern(ev, l, n, LS_COPY_ARRAY);
}

const pql__ls_t *pql__ls_get(const pql__ev_t *ev, uint32_t id)
{
    return &ev->ls[id];
}

wf_str_t pql__ls_value(const pql__ev_t *ev, uint32_t id, wf_str_t name)
{
    const pql__ls_t *s = &ev->ls[id];
    for (uint32_t i = 0; i < s->n; i++) {
        if (wf_str_eq(s->l[i].name, name)) {
            return s->l[i].value;
        }
    }
    return (wf_str_t){"", 0};
}

static st_label_t *scratch(pql__ev_t *ev, size_t n)
{
    if (n > ev->capscratch) {
        ev->capscratch = n + 16;
        ev->scratch = wf_realloc(ev->scratch, ev->capscratch * sizeof(*ev->scratch));
    }
    return ev->scratch;
}

static const wf_str_t NAME_LABEL = {"__name__", 8};

uint32_t pql__ls_drop_name(pql__ev_t *ev, uint32_t id)
{
    uint32_t r = idmap_get(&ev->dropname, id);
    if (r != UINT32_MAX) {
        return r;
    }
    const pql__ls_t *s = &ev->ls[id];
    size_t n = 0;
    st_label_t *b = scratch(ev, s->n);
    for (uint32_t i = 0; i < s->n; i++) {
        if (!wf_str_eq(s->l[i].name, NAME_LABEL)) {
            b[n++] = s->l[i];
        }
    }
    if (n == s->n) {
        r = id;
    } else if (n + 1 == s->n && wf_str_eq(s->l[0].name, NAME_LABEL)) {
        /* __name__ sorts first in most sets: the rest is a tail of s's array. */
        r = ls_intern(ev, s->l + 1, n, LS_BORROW);
    } else {
        r = ls_intern(ev, b, n, LS_COPY_ARRAY);
    }
    idmap_set(&ev->dropname, id, r);
    return r;
}

uint32_t pql__ls_set(pql__ev_t *ev, uint32_t id, wf_str_t name, wf_str_t value)
{
    const pql__ls_t *s = &ev->ls[id];
    st_label_t *b = scratch(ev, s->n + 1);
    size_t n = 0;
    bool done = false;
    for (uint32_t i = 0; i < s->n; i++) {
        int c = wf_str_cmp(s->l[i].name, name);
        if (c == 0 || (c > 0 && !done)) {
            done = true;
            if (value.len) {
                b[n].name = name;
                b[n++].value = value;
            }
            if (c == 0) {
                continue;
            }
        }
        b[n++] = s->l[i];
    }
    if (!done && value.len) {
        b[n].name = name;
        b[n++].value = value;
    }
    return ls_intern(ev, b, n, LS_COPY_ALL);
}

static bool name_in(wf_str_t n, const pql_names_t *names)
{
    for (size_t i = 0; i < names->n; i++) {
        if (wf_str_eq(names->names[i], n)) {
            return true;
        }
    }
    return false;
}

/* The set restricted to names (keep) or without names and __name__ (!keep). */
static uint32_t ls_project(pql__ev_t *ev, uint32_t id, const pql_names_t *names, bool keep)
{
    const pql__ls_t *s = &ev->ls[id];
    st_label_t *b = scratch(ev, s->n);
    size_t n = 0;
    for (uint32_t i = 0; i < s->n; i++) {
        bool in = name_in(s->l[i].name, names);
        if (keep ? in : (!in && !wf_str_eq(s->l[i].name, NAME_LABEL))) {
            b[n++] = s->l[i];
        }
    }
    return n == s->n ? id : pql__ls_intern(ev, b, n);
}

int pql__ls_cmp(const pql__ev_t *ev, uint32_t a, uint32_t b)
{
    const pql__ls_t *x = &ev->ls[a], *y = &ev->ls[b];
    uint32_t n = x->n < y->n ? x->n : y->n;
    for (uint32_t i = 0; i < n; i++) {
        int c = wf_str_cmp(x->l[i].name, y->l[i].name);
        if (c != 0) {
            return c;
        }
        c = wf_str_cmp(x->l[i].value, y->l[i].value);
        if (c != 0) {
            return c;
        }
    }
    return x->n < y->n ? -1 : x->n > y->n ? 1 : 0;
}

/* Prometheus's labels.String(): {a="b", c="d"} with Go-quoted values; owned by the caller. */
static char *ls_format(const pql__ev_t *ev, uint32_t id)
{
    const pql__ls_t *s = &ev->ls[id];
    size_t cap = 3;
    for (uint32_t i = 0; i < s->n; i++) {
        cap += s->l[i].name.len + 2 * s->l[i].value.len + 5;
    }
    char *out = wf_malloc(cap);
    size_t o = 0;
    out[o++] = '{';
    for (uint32_t i = 0; i < s->n; i++) {
        if (i) {
            out[o++] = ',';
            out[o++] = ' ';
        }
        memcpy(out + o, s->l[i].name.p, s->l[i].name.len);
        o += s->l[i].name.len;
        out[o++] = '=';
        out[o++] = '"';
        for (size_t k = 0; k < s->l[i].value.len; k++) {
            char c = s->l[i].value.p[k];
            if (c == '"' || c == '\\') {
                out[o++] = '\\';
                out[o++] = c;
            } else if (c == '\n') {
                out[o++] = '\\';
                out[o++] = 'n';
            } else {
                out[o++] = c;
            }
        }
        out[o++] = '"';
    }
    out[o++] = '}';
    out[o] = 0;
    return out;
}

/* ---- matrices ------------------------------------------------------------------------------ */

#define SMALL_STEPS 32

static pql__ser_t *mat_add(pql__ev_t *ev, pql__mat_t *m, uint32_t ls, bool with_t)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 8;
        m->s = wf_realloc(m->s, m->cap * sizeof(*m->s));
    }
    pql__ser_t *s = &m->s[m->n++];
    size_t ns = m->nsteps ? m->nsteps : 1;
    size_t bytes = ns * (sizeof(double) + 1 + (with_t ? sizeof(int64_t) : 0));
    s->ls = ls;
    /* Short columns (instant queries above all) come from the query arena: one malloc per
     * series is a visible cost there, and their memory is small. */
    s->v = ns <= SMALL_STEPS ? wf_arena_alloc(&ev->arena, bytes) : wf_malloc(bytes);
    s->t = with_t ? (int64_t *)(s->v + ns) : NULL;
    s->ok = (uint8_t *)(s->v + ns) + (with_t ? ns * sizeof(int64_t) : 0);
    memset(s->ok, 0, ns);
    return s;
}

static size_t ser_points(const pql__ser_t *s, size_t nsteps)
{
    size_t c = 0;
    for (size_t i = 0; i < nsteps; i++) {
        c += s->ok[i];
    }
    return c;
}

static void mat_free(pql__ev_t *ev, pql__mat_t *m)
{
    for (size_t i = 0; i < m->n; i++) {
        if (ev) {
            sub_samples(ev, ser_points(&m->s[i], m->nsteps));
        }
        if ((m->nsteps ? m->nsteps : 1) > SMALL_STEPS) {
            wf_free(m->s[i].v);
        }
    }
    wf_free(m->s);
    memset(m, 0, sizeof(*m));
}

/* A scalar constant over the range. */
static void mat_scalar(pql__ev_t *ev, pql__mat_t *m, size_t nsteps, double v)
{
    memset(m, 0, sizeof(*m));
    m->nsteps = nsteps;
    pql__ser_t *s = mat_add(ev, m, PQL__LS_EMPTY, false);
    for (size_t i = 0; i < nsteps; i++) {
        s->v[i] = v;
        s->ok[i] = 1;
    }
}

/* Whether two series of m share a label set (over the whole range, as Prometheus checks
 * whole matrices). */
static bool mat_has_dup(pql__ev_t *ev, const pql__mat_t *m)
{
    if (m->n < 2) {
        return false;
    }
    idmap_t seen = {0};
    bool dup = false;
    for (size_t i = 0; i < m->n && !dup; i++) {
        if (idmap_get(&seen, m->s[i].ls) != UINT32_MAX) {
            dup = true;
        }
        idmap_set(&seen, m->s[i].ls, 1);
    }
    idmap_free(&seen);
    return dup;
}

static pql__rng_t rng_make(int64_t start, int64_t end, int64_t step)
{
    pql__rng_t r = {start, end, step, 0};
    if (end >= start && step > 0) {
        r.nsteps = (size_t)((end - start) / step) + 1;
    }
    return r;
}

static const pql_node_t *unparen(const pql_node_t *n)
{
    while (n->kind == PQL_NODE_PAREN) {
        n = n->u.paren.expr;
    }
    return n;
}

static int64_t at_time(const pql__ev_t *ev, pql_at_kind_t k, int64_t at_ms)
{
    return k == PQL_AT_START ? ev->qstart : k == PQL_AT_END ? ev->qend : at_ms;
}

static int eval(pql__ev_t *ev, const pql_node_t *n, const pql__rng_t *r, pql__mat_t *out);

/*
 * The offset a selector or subquery reads with. Prometheus implements `@ t` by rewriting the
 * offset to offset + (start - t), start being the first step of the evaluation the node is in;
 * the node is then normally evaluated only at start (it is step-invariant, see invariant()),
 * which reads at t - offset. Inside a function whose result depends on the step time
 * (predict_linear, ...) it is evaluated at every step with that rewritten offset, and we do the
 * same.
 */
static int64_t eff_offset(int64_t off, bool has_at, int64_t at, const pql__rng_t *r)
{
    return has_at ? off + (r->start - at) : off;
}

/* ---- selectors ----------------------------------------------------------------------------- */

static bool is_stale(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof(b));
    return b == 0x7ff0000000000002ULL;
}

/*
 * Read the series of selector vs in [mint, maxt], clamped to the window Prometheus's
 * getTimeRangesForSelector() gives the querier for it: samples outside that window do not
 * exist for 2.42's evaluation, which matters where @ makes windows move past it.
 */
static int do_select(pql__ev_t *ev, const pql_node_t *vs, int64_t range, int64_t mint, int64_t maxt,
                     st_series_set_t **out)
{
    int64_t ps = ev->qstart, pe = ev->qend;
    if (ev->sq_has_at) {
        ps = pe = ev->sq_at;
    }
    if (vs->u.vector.at != PQL_AT_NONE) {
        ps = pe = at_time(ev, vs->u.vector.at, vs->u.vector.at_ms);
    } else {
        ps -= ev->sq_off + ev->sq_range;
        pe -= ev->sq_off;
    }
    ps -= range ? range : ev->e->o.lookback_ms;
    ps -= vs->u.vector.offset_ms;
    pe -= vs->u.vector.offset_ms;
    if (mint < ps) {
        mint = ps;
    }
    if (maxt > pe) {
        maxt = pe;
    }
    const st_matcher_t *ms[64] = {0};
    const st_matcher_t **m = ms;
    size_t n = vs->u.vector.nmatchers;
    if (n > 64) {
        m = wf_malloc(n * sizeof(*m));
    }
    for (size_t i = 0; i < n; i++) {
        m[i] = vs->u.vector.matchers[i].compiled;
    }
    int rc = st_select(ev->e->s, m, n, mint, maxt, out);
    if (m != ms) {
        wf_free(m);
    }
    if (rc != 0) {
        if (ev->err->type == PQL_ERR_NONE) {
            ev->err->type = rc == WF_E_INVAL ? PQL_ERR_EXECUTION : PQL_ERR_INTERNAL;
            snprintf(ev->err->msg, sizeof(ev->err->msg), "expanding series: %s", st_strerror(rc));
        }
        return -1;
    }
    if (ev->nsets == ev->capsets) {
        ev->capsets = ev->capsets ? ev->capsets * 2 : 8;
        ev->sets = wf_realloc(ev->sets, ev->capsets * sizeof(*ev->sets));
    }
    ev->sets[ev->nsets++] = *out;
    return 0;
}

static int set_samples(pql__ev_t *ev, st_series_set_t *set, size_t i, const int64_t **t,
                       const double **v, size_t *n)
{
    int rc = st_series_set_samples(set, i, t, v, n);
    if (rc != 0) {
        if (ev->err->type == PQL_ERR_NONE) {
            ev->err->type = PQL_ERR_INTERNAL;
            snprintf(ev->err->msg, sizeof(ev->err->msg), "reading samples: %s", st_strerror(rc));
        }
        return -1;
    }
    ev->loaded += *n;
    return 0;
}

/* An instant-vector selector over the steps of r. with_t keeps the samples' timestamps. */
static int eval_vector_sel(pql__ev_t *ev, const pql_node_t *vs, const pql__rng_t *r, bool with_t,
                           pql__mat_t *out)
{
    memset(out, 0, sizeof(*out));
    out->nsteps = r->nsteps;
    if (r->nsteps == 0) {
        return 0;
    }
    int64_t off = vs->u.vector.offset_ms, lb = ev->e->o.lookback_ms;
    bool has_at = vs->u.vector.at != PQL_AT_NONE;
    int64_t at = has_at ? at_time(ev, vs->u.vector.at, vs->u.vector.at_ms) : 0;
    int64_t off_eff = eff_offset(off, has_at, at, r);
    int64_t mint = r->start - off_eff - lb, maxt = r->end - off_eff;
    /* timestamp(x @ t) reads at t itself at every step (2.42 replaces the offset with
     * step - t there), from the data a plain x @ t offset o would have loaded. */
    bool ts_quirk = with_t && has_at;
    if (ts_quirk) {
        mint = at - off - lb;
        maxt = at - off;
    }
    st_series_set_t *set;
    if (do_select(ev, vs, 0, mint, maxt, &set) != 0) {
        return -1;
    }
    size_t ns = st_series_set_len(set);
    for (size_t i = 0; i < ns; i++) {
        if (check_time(ev) != 0) {
            return -1;
        }
        const int64_t *t;
        const double *v;
        size_t n;
        if (set_samples(ev, set, i, &t, &v, &n) != 0) {
            return -1;
        }
        if (n == 0) {
            continue;
        }
        pql__ser_t *s = NULL;
        size_t j = 0, pts = 0;
        for (size_t k = 0; k < r->nsteps; k++) {
            int64_t ts = r->start + (int64_t)k * r->step;
            int64_t ref = ts_quirk ? at : ts - off_eff;
            /* Subqueries can ask a selector for millions of steps. */
            if (check_time(ev) != 0) {
                return -1;
            }
            while (j < n && t[j] <= ref) {
                j++;
            }
            if (j == 0 || t[j - 1] < ref - lb || is_stale(v[j - 1])) {
                continue;
            }
            if (s == NULL) {
                size_t nl;
                const st_label_t *l = st_series_set_labels(set, i, &nl);
                s = mat_add(ev, out, ls_intern(ev, l, nl, LS_BORROW), with_t);
            }
            s->ok[k] = 1;
            s->v[k] = v[j - 1];
            if (with_t) {
                s->t[k] = t[j - 1];
            }
            pts++;
        }
        if (pts && add_samples(ev, pts) != 0) {
            return -1;
        }
    }
    return 0;
}

/* A range vector: per series its samples (no staleness markers), and the window geometry. */
typedef struct {
    uint32_t ls;
    const int64_t *t;
    const double *v;
    size_t n;
} rser_t;

typedef struct {
    rser_t *s;
    size_t n;
    int64_t range, offset;
} rmat_t;

static void rmat_free(rmat_t *m)
{
    wf_free(m->s);
    memset(m, 0, sizeof(*m));
}

static void rmat_push(rmat_t *m, size_t *cap, uint32_t ls, const int64_t *t, const double *v,
                      size_t n)
{
    if (m->n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        m->s = wf_realloc(m->s, *cap * sizeof(*m->s));
    }
    m->s[m->n++] = (rser_t){ls, t, v, n};
}

/* Drop staleness markers, copying only when the series has any. */
static void strip_stale(pql__ev_t *ev, const int64_t **t, const double **v, size_t *n)
{
    size_t i = 0;
    while (i < *n && !is_stale((*v)[i])) {
        i++;
    }
    if (i == *n) {
        return;
    }
    int64_t *nt = wf_arena_alloc(&ev->arena, *n * sizeof(*nt));
    double *nv = wf_arena_alloc(&ev->arena, *n * sizeof(*nv));
    size_t k = 0;
    for (size_t j = 0; j < *n; j++) {
        if (!is_stale((*v)[j])) {
            nt[k] = (*t)[j];
            nv[k++] = (*v)[j];
        }
    }
    *t = nt;
    *v = nv;
    *n = k;
}

/*
 * The samples a range-vector node (matrix selector or subquery) provides for all the steps
 * of r: a matrix selector reads [first window start, last window end] once; a subquery
 * evaluates its expression once over its aligned steps covering every window.
 */
static int eval_rsource(pql__ev_t *ev, const pql_node_t *n, const pql__rng_t *r, rmat_t *out)
{
    memset(out, 0, sizeof(*out));
    size_t cap = 0;
    n = unparen(n);
    if (n->kind == PQL_NODE_MATRIX) {
        const pql_node_t *vs = n->u.matrix.vector;
        out->range = n->u.matrix.range_ms;
        out->offset = vs->u.vector.offset_ms;
        bool has_at = vs->u.vector.at != PQL_AT_NONE;
        int64_t at = has_at ? at_time(ev, vs->u.vector.at, vs->u.vector.at_ms) : 0;
        out->offset = eff_offset(out->offset, has_at, at, r);
        if (r->nsteps == 0) {
            return 0;
        }
        st_series_set_t *set;
        if (do_select(ev, vs, out->range, r->start - out->offset - out->range, r->end - out->offset,
                      &set) != 0) {
            return -1;
        }
        size_t ns = st_series_set_len(set);
        for (size_t i = 0; i < ns; i++) {
            if (check_time(ev) != 0) {
                return -1;
            }
            const int64_t *t;
            const double *v;
            size_t cnt;
            if (set_samples(ev, set, i, &t, &v, &cnt) != 0) {
                return -1;
            }
            strip_stale(ev, &t, &v, &cnt);
            if (cnt == 0) {
                continue;
            }
            size_t nl;
            const st_label_t *l = st_series_set_labels(set, i, &nl);
            rmat_push(out, &cap, ls_intern(ev, l, nl, LS_BORROW), t, v, cnt);
        }
        return 0;
    }
    WF_ASSERT(n->kind == PQL_NODE_SUBQUERY);
    out->range = n->u.subquery.range_ms;
    out->offset = n->u.subquery.offset_ms;
    bool has_at = n->u.subquery.at != PQL_AT_NONE;
    int64_t at = has_at ? at_time(ev, n->u.subquery.at, n->u.subquery.at_ms) : 0;
    out->offset = eff_offset(out->offset, has_at, at, r);
    if (r->nsteps == 0) {
        return 0;
    }
    int64_t step = n->u.subquery.step_ms ? n->u.subquery.step_ms : ev->e->o.default_step_ms;
    int64_t t0 = r->start, t1 = r->end;
    /* The first step at or after the first window's start that is a multiple of step. */
    int64_t lo = t0 - out->offset - out->range;
    int64_t start = step * (lo / step);
    if (start < lo) {
        start += step;
    }
    pql__rng_t sr = rng_make(start, t1 - out->offset, step);
    pql__mat_t m;
    int64_t save_off = ev->sq_off, save_range = ev->sq_range, save_at = ev->sq_at;
    bool save_has = ev->sq_has_at;
    if (has_at) {
        ev->sq_off = n->u.subquery.offset_ms;
        ev->sq_range = n->u.subquery.range_ms;
        ev->sq_at = at;
        ev->sq_has_at = true;
    } else {
        ev->sq_off += n->u.subquery.offset_ms;
        ev->sq_range += n->u.subquery.range_ms;
    }
    int rc = eval(ev, n->u.subquery.expr, &sr, &m);
    ev->sq_off = save_off;
    ev->sq_range = save_range;
    ev->sq_at = save_at;
    ev->sq_has_at = save_has;
    if (rc != 0) {
        mat_free(ev, &m);
        return -1;
    }
    for (size_t i = 0; i < m.n; i++) {
        size_t pts = ser_points(&m.s[i], sr.nsteps);
        int64_t *t = wf_arena_alloc(&ev->arena, (pts ? pts : 1) * sizeof(*t));
        double *v = wf_arena_alloc(&ev->arena, (pts ? pts : 1) * sizeof(*v));
        size_t k = 0;
        for (size_t j = 0; j < sr.nsteps; j++) {
            if (m.s[i].ok[j] && !is_stale(m.s[i].v[j])) {
                t[k] = sr.start + (int64_t)j * sr.step;
                v[k++] = m.s[i].v[j];
            }
        }
        if (k) {
            rmat_push(out, &cap, m.s[i].ls, t, v, k);
        }
    }
    mat_free(ev, &m);
    return 0;
}

/* ---- the step driver ------------------------------------------------------------------------ */

typedef int (*step_cb)(pql__ev_t *ev, void *arg, pql__vec_t *in, size_t k, int64_t ts,
                       pql__vec_t *out);

typedef struct {
    idmap_t idx;  /* output label set -> series index */
    idmap_t last; /* output label set -> last step + 1 it got a value (duplicate check) */
} outmap_t;

/*
 * Prometheus's rangeEval: at each step, gather the inputs' samples into vectors, call cb, and
 * append its output vector to the output series. A vector with the same label set twice fails
 * the query. Series appear in the order of their first sample, which for an instant query is
 * the order cb produced.
 */
static int range_eval(pql__ev_t *ev, const pql__rng_t *r, pql__mat_t *ins, size_t nin, step_cb cb,
                      void *arg, pql__mat_t *out)
{
    pql__vec_t vecs[4];
    pql__vec_t ov = {0};
    outmap_t om = {{0}, {0}};
    int rc = -1;
    WF_ASSERT(nin <= 4);
    memset(vecs, 0, sizeof(vecs));
    memset(out, 0, sizeof(*out));
    out->nsteps = r->nsteps;
    for (size_t k = 0; k < r->nsteps; k++) {
        int64_t ts = r->start + (int64_t)k * r->step;
        if (check_time(ev) != 0) {
            goto out;
        }
        for (size_t i = 0; i < nin; i++) {
            vecs[i].n = 0;
            for (size_t j = 0; j < ins[i].n; j++) {
                const pql__ser_t *s = &ins[i].s[j];
                if (s->ok[k]) {
                    pql__vec_push(&vecs[i], s->ls, s->v[k], s->t ? s->t[k] : ts);
                }
            }
        }
        ov.n = 0;
        if (cb(ev, arg, vecs, k, ts, &ov) != 0) {
            goto out;
        }
        for (size_t i = 0; i < ov.n; i++) {
            uint32_t ls = ov.s[i].ls;
            uint32_t at = idmap_get(&om.idx, ls);
            if (at == UINT32_MAX) {
                at = (uint32_t)out->n;
                mat_add(ev, out, ls, false);
                idmap_set(&om.idx, ls, at);
            } else if (idmap_get(&om.last, ls) == k + 1) {
                pql__fail(ev, ERR_DUP);
                goto out;
            }
            idmap_set(&om.last, ls, (uint32_t)k + 1);
            out->s[at].ok[k] = 1;
            out->s[at].v[k] = ov.s[i].v;
        }
        if (ov.n && add_samples(ev, ov.n) != 0) {
            goto out;
        }
    }
    rc = 0;
out:
    for (size_t i = 0; i < 4; i++) {
        vec_free(&vecs[i]);
    }
    vec_free(&ov);
    idmap_free(&om.idx);
    idmap_free(&om.last);
    return rc;
}

/* ---- binary operators ----------------------------------------------------------------------- */

static bool is_cmp(pql_binop_t op)
{
    return op >= PQL_OP_EQL && op <= PQL_OP_LTE;
}

static bool drops_name(pql_binop_t op)
{
    return op == PQL_OP_ADD || op == PQL_OP_SUB || op == PQL_OP_MUL || op == PQL_OP_DIV ||
           op == PQL_OP_POW || op == PQL_OP_MOD;
}

/* vectorElemBinop / scalarBinop: the value, and whether a comparison keeps the sample. */
static double binop_value(pql_binop_t op, double l, double r, bool *keep)
{
    *keep = true;
    switch (op) {
    case PQL_OP_ADD:
        return l + r;
    case PQL_OP_SUB:
        return l - r;
    case PQL_OP_MUL:
        return l * r;
    case PQL_OP_DIV:
        return l / r;
    case PQL_OP_POW:
        return pow(l, r);
    case PQL_OP_MOD:
        return fmod(l, r);
    case PQL_OP_ATAN2:
        return atan2(l, r);
    case PQL_OP_EQL:
        *keep = l == r;
        return l;
    case PQL_OP_NEQ:
        *keep = l != r;
        return l;
    case PQL_OP_GTR:
        *keep = l > r;
        return l;
    case PQL_OP_LSS:
        *keep = l < r;
        return l;
    case PQL_OP_GTE:
        *keep = l >= r;
        return l;
    case PQL_OP_LTE:
        *keep = l <= r;
        return l;
    default:
        break;
    }
    WF_ASSERT(!"not an arithmetic or comparison operator");
    return 0;
}

typedef struct {
    const pql_node_t *n;
} ss_ctx_t;

static int step_scalar_scalar(pql__ev_t *ev, void *arg, pql__vec_t *in, size_t k, int64_t ts,
                              pql__vec_t *out)
{
    const pql_node_t *n = ((ss_ctx_t *)arg)->n;
    (void)ev;
    (void)k;
    bool keep;
    double v = binop_value(n->u.binary.op, in[0].s[0].v, in[1].s[0].v, &keep);
    if (is_cmp(n->u.binary.op)) {
        v = keep ? 1 : 0;
    }
    pql__vec_push(out, PQL__LS_EMPTY, v, ts);
    return 0;
}

typedef struct {
    const pql_node_t *n;
    bool swap; /* the scalar is the left operand */
} vs_ctx_t;

static int step_vector_scalar(pql__ev_t *ev, void *arg, pql__vec_t *in, size_t k, int64_t ts,
                              pql__vec_t *out)
{
    vs_ctx_t *c = arg;
    pql_binop_t op = c->n->u.binary.op;
    bool rb = c->n->u.binary.return_bool;
    pql__vec_t *vec = &in[c->swap ? 1 : 0];
    double sv = in[c->swap ? 0 : 1].s[0].v;
    (void)k;
    for (size_t i = 0; i < vec->n; i++) {
        double lv = vec->s[i].v, rv = sv;
        if (c->swap) {
            lv = sv;
            rv = vec->s[i].v;
        }
        bool keep;
        double v = binop_value(op, lv, rv, &keep);
        if (is_cmp(op) && c->swap) {
            v = rv;
        }
        if (rb) {
            v = keep ? 1 : 0;
            keep = true;
        }
        if (!keep) {
            continue;
        }
        uint32_t ls = vec->s[i].ls;
        if (drops_name(op) || rb) {
            ls = pql__ls_drop_name(ev, ls);
        }
        pql__vec_push(out, ls, v, ts);
    }
    return 0;
}

typedef struct {
    const pql_node_t *n;
    idmap_t sig;       /* label set -> matching signature (a label set id) */
    idmap_t sig_gen;   /* signature -> step + 1 when present on the "one"/right side */
    idmap_t sig_at;    /* signature -> index in that side's vector */
    idmap_t matched;   /* signature -> step + 1 when matched (one-to-one) */
    u64map_t result;   /* (many ls, one ls) -> result label set */
    u64map_t inserted; /* (signature, result ls) -> step + 1 (many-to-one duplicates) */
} vv_ctx_t;

static uint32_t vv_sig(pql__ev_t *ev, vv_ctx_t *c, uint32_t ls)
{
    uint32_t s = idmap_get(&c->sig, ls);
    if (s == UINT32_MAX) {
        s = ls_project(ev, ls, &c->n->u.binary.matching, c->n->u.binary.on);
        idmap_set(&c->sig, ls, s);
    }
    return s;
}

static void vv_free(vv_ctx_t *c)
{
    idmap_free(&c->sig);
    idmap_free(&c->sig_gen);
    idmap_free(&c->sig_at);
    idmap_free(&c->matched);
    u64map_free(&c->result);
    u64map_free(&c->inserted);
}

static int step_set_op(pql__ev_t *ev, void *arg, pql__vec_t *in, size_t k, int64_t ts,
                       pql__vec_t *out)
{
    vv_ctx_t *c = arg;
    pql_binop_t op = c->n->u.binary.op;
    pql__vec_t *l = &in[0], *r = &in[1];
    uint32_t gen = (uint32_t)k + 1;
    (void)ts;
    if (op == PQL_OP_AND) {
        if (l->n == 0 || r->n == 0) {
            return 0;
        }
    } else if (op == PQL_OP_OR) {
        if (l->n == 0 || r->n == 0) {
            for (size_t i = 0; i < l->n; i++) {
                pql__vec_push(out, l->s[i].ls, l->s[i].v, l->s[i].t);
            }
            for (size_t i = 0; i < r->n; i++) {
                pql__vec_push(out, r->s[i].ls, r->s[i].v, r->s[i].t);
            }
            return 0;
        }
    } else if (l->n == 0 || r->n == 0) {
        for (size_t i = 0; i < l->n; i++) {
            pql__vec_push(out, l->s[i].ls, l->s[i].v, l->s[i].t);
        }
        return 0;
    }
    if (op == PQL_OP_OR) {
        for (size_t i = 0; i < l->n; i++) {
            idmap_set(&c->sig_gen, vv_sig(ev, c, l->s[i].ls), gen);
            pql__vec_push(out, l->s[i].ls, l->s[i].v, l->s[i].t);
        }
        for (size_t i = 0; i < r->n; i++) {
            if (idmap_get(&c->sig_gen, vv_sig(ev, c, r->s[i].ls)) != gen) {
                pql__vec_push(out, r->s[i].ls, r->s[i].v, r->s[i].t);
            }
        }
        return 0;
    }
    for (size_t i = 0; i < r->n; i++) {
        idmap_set(&c->sig_gen, vv_sig(ev, c, r->s[i].ls), gen);
    }
    for (size_t i = 0; i < l->n; i++) {
        bool in_r = idmap_get(&c->sig_gen, vv_sig(ev, c, l->s[i].ls)) == gen;
        if (in_r == (op == PQL_OP_AND)) {
            pql__vec_push(out, l->s[i].ls, l->s[i].v, l->s[i].t);
        }
    }
    return 0;
}

/* resultMetric: the label set of a vector/vector result from the "many" (or left) side ml and
 * the "one" side ol. */
static uint32_t vv_result(pql__ev_t *ev, vv_ctx_t *c, uint32_t ml, uint32_t ol)
{
    bool found;
    uint32_t *slot = u64map_slot(&c->result, (uint64_t)ml << 32 | ol, &found);
    if (found) {
        return *slot;
    }
    const pql_node_t *n = c->n;
    uint32_t ls = ml;
    if (drops_name(n->u.binary.op)) {
        ls = pql__ls_drop_name(ev, ls);
    }
    if (n->u.binary.card == PQL_CARD_ONE_TO_ONE) {
        if (n->u.binary.on) {
            ls = ls_project(ev, ls, &n->u.binary.matching, true);
        } else {
            /* Del(matching...) only; the name was handled above. */
            const pql__ls_t *s = pql__ls_get(ev, ls);
            st_label_t *b = scratch(ev, s->n);
            size_t cnt = 0;
            for (uint32_t i = 0; i < s->n; i++) {
                if (!name_in(s->l[i].name, &n->u.binary.matching)) {
                    b[cnt++] = s->l[i];
                }
            }
            if (cnt != s->n) {
                ls = pql__ls_intern(ev, b, cnt);
            }
        }
    }
    for (size_t i = 0; i < n->u.binary.include.n; i++) {
        wf_str_t name = n->u.binary.include.names[i];
        ls = pql__ls_set(ev, ls, name, pql__ls_value(ev, ol, name));
    }
    /* The slot may have moved while interning (maps grow); look it up again. */
    slot = u64map_slot(&c->result, (uint64_t)ml << 32 | ol, &found);
    *slot = ls;
    return ls;
}

static int step_vector_vector(pql__ev_t *ev, void *arg, pql__vec_t *in, size_t k, int64_t ts,
                              pql__vec_t *out)
{
    vv_ctx_t *c = arg;
    const pql_node_t *n = c->n;
    pql_binop_t op = n->u.binary.op;
    pql_card_t card = n->u.binary.card;
    bool rb = n->u.binary.return_bool;
    pql__vec_t *l = &in[0], *r = &in[1];
    uint32_t gen = (uint32_t)k + 1;
    if (l->n == 0 || r->n == 0) {
        return 0;
    }
    if (card == PQL_CARD_ONE_TO_MANY) {
        pql__vec_t *t = l;
        l = r;
        r = t;
    }
    for (size_t i = 0; i < r->n; i++) {
        uint32_t sig = vv_sig(ev, c, r->s[i].ls);
        if (idmap_get(&c->sig_gen, sig) == gen) {
            uint32_t dup = r->s[idmap_get(&c->sig_at, sig)].ls;
            char *m = ls_format(ev, sig), *a = ls_format(ev, r->s[i].ls), *b = ls_format(ev, dup);
            pql__fail(ev,
                      "found duplicate series for the match group %s on the %s hand-side of the "
                      "operation: [%s, %s];many-to-many matching not allowed: matching labels "
                      "must be unique on one side",
                      m, card == PQL_CARD_ONE_TO_MANY ? "left" : "right", a, b);
            wf_free(m);
            wf_free(a);
            wf_free(b);
            return -1;
        }
        idmap_set(&c->sig_gen, sig, gen);
        idmap_set(&c->sig_at, sig, (uint32_t)i);
    }
    for (size_t i = 0; i < l->n; i++) {
        uint32_t sig = vv_sig(ev, c, l->s[i].ls);
        if (idmap_get(&c->sig_gen, sig) != gen) {
            continue;
        }
        const pql__smp_t *rs = &r->s[idmap_get(&c->sig_at, sig)];
        double vl = l->s[i].v, vr = rs->v;
        if (card == PQL_CARD_ONE_TO_MANY) {
            vl = rs->v;
            vr = l->s[i].v;
        }
        bool keep;
        double v = binop_value(op, vl, vr, &keep);
        if (rb) {
            v = keep ? 1 : 0;
        } else if (!keep) {
            continue;
        }
        uint32_t ls = vv_result(ev, c, l->s[i].ls, rs->ls);
        if (rb) {
            ls = pql__ls_drop_name(ev, ls);
        }
        if (card == PQL_CARD_ONE_TO_ONE) {
            if (idmap_get(&c->matched, sig) == gen) {
                return pql__fail(ev, "multiple matches for labels: many-to-one matching must be "
                                     "explicit (group_left/group_right)");
            }
            idmap_set(&c->matched, sig, gen);
        } else {
            bool found;
            uint32_t *slot = u64map_slot(&c->inserted, (uint64_t)sig << 32 | ls, &found);
            if (found && *slot == gen) {
                return pql__fail(ev, "multiple matches for labels: grouping labels must ensure "
                                     "unique matches");
            }
            *slot = gen;
        }
        pql__vec_push(out, ls, v, ts);
    }
    return 0;
}

static int eval_binary(pql__ev_t *ev, const pql_node_t *n, const pql__rng_t *r, pql__mat_t *out)
{
    pql__mat_t in[2];
    memset(in, 0, sizeof(in));
    int rc = -1;
    if (eval(ev, n->u.binary.lhs, r, &in[0]) != 0) {
        goto out;
    }
    if (eval(ev, n->u.binary.rhs, r, &in[1]) != 0) {
        goto out;
    }
    pql_type_t lt = n->u.binary.lhs->type, rt = n->u.binary.rhs->type;
    if (lt == PQL_TYPE_SCALAR && rt == PQL_TYPE_SCALAR) {
        ss_ctx_t c = {n};
        rc = range_eval(ev, r, in, 2, step_scalar_scalar, &c, out);
    } else if (lt == PQL_TYPE_VECTOR && rt == PQL_TYPE_VECTOR) {
        vv_ctx_t c;
        memset(&c, 0, sizeof(c));
        c.n = n;
        pql_binop_t op = n->u.binary.op;
        bool set = op == PQL_OP_AND || op == PQL_OP_OR || op == PQL_OP_UNLESS;
        rc = range_eval(ev, r, in, 2, set ? step_set_op : step_vector_vector, &c, out);
        vv_free(&c);
    } else {
        vs_ctx_t c = {n, lt == PQL_TYPE_SCALAR};
        rc = range_eval(ev, r, in, 2, step_vector_scalar, &c, out);
    }
out:
    mat_free(ev, &in[0]);
    mat_free(ev, &in[1]);
    return rc;
}

/* ---- aggregations --------------------------------------------------------------------------- */

typedef struct {
    uint32_t ls;
    bool has;
    double value, mean;
    size_t count;
    pql__smp_t *heap; /* topk/bottomk heap, quantile values */
    size_t nheap, capheap;
} group_t;

typedef struct {
    const pql_node_t *n;
    pql__mat_t *param; /* scalar parameter, or NULL */
    wf_str_t label;    /* count_values */
    pql_names_t grouping;
    idmap_t key;   /* input label set -> group label set */
    idmap_t gslot; /* group label set -> index into groups */
    idmap_t ggen;  /* group label set -> step + 1 */
    group_t *g;
    size_t ng, capg;
    double *qbuf;
    size_t capq;
} agg_ctx_t;

static uint32_t agg_group_ls(pql__ev_t *ev, agg_ctx_t *c, uint32_t ls)
{
    if (c->n->u.aggregate.without) {
        return ls_project(ev, ls, &c->grouping, false);
    }
    if (c->grouping.n == 0) {
        return PQL__LS_EMPTY;
    }
    return ls_project(ev, ls, &c->grouping, true);
}

/* Go's container/heap over s[0..n) with less. */
typedef bool (*smp_less_t)(const pql__smp_t *, const pql__smp_t *);

static void heap_swap(pql__smp_t *s, size_t i, size_t j)
{
    pql__smp_t t = s[i];
    s[i] = s[j];
    s[j] = t;
}

static void heap_up(pql__smp_t *s, size_t j, smp_less_t less)
{
    while (j > 0) {
        size_t i = (j - 1) / 2;
        if (!less(&s[j], &s[i])) {
            break;
        }
        heap_swap(s, i, j);
        j = i;
    }
}

static void heap_down(pql__smp_t *s, size_t i, size_t n, smp_less_t less)
{
    for (;;) {
        size_t j1 = 2 * i + 1;
        if (j1 >= n) {
            break;
        }
        size_t j = j1;
        if (j1 + 1 < n && less(&s[j1 + 1], &s[j1])) {
            j = j1 + 1;
        }
        if (!less(&s[j], &s[i])) {
            break;
        }
        heap_swap(s, i, j);
        i = j;
    }
}

/* vectorByValueHeap: NaN first, then ascending. */
static bool less_value(const pql__smp_t *a, const pql__smp_t *b)
{
    return isnan(a->v) || a->v < b->v;
}

/* vectorByReverseValueHeap: NaN first, then descending. */
static bool less_rvalue(const pql__smp_t *a, const pql__smp_t *b)
{
    return isnan(a->v) || a->v > b->v;
}

static bool rless_value(const pql__smp_t *a, const pql__smp_t *b)
{
    return less_value(b, a);
}

static bool rless_rvalue(const pql__smp_t *a, const pql__smp_t *b)
{
    return less_rvalue(b, a);
}

static void group_push(group_t *g, const pql__smp_t *s)
{
    if (g->nheap == g->capheap) {
        g->capheap = g->capheap ? g->capheap * 2 : 4;
        g->heap = wf_realloc(g->heap, g->capheap * sizeof(*g->heap));
    }
    g->heap[g->nheap++] = *s;
}

static int step_aggregate(pql__ev_t *ev, void *arg, pql__vec_t *in, size_t k, int64_t ts,
                          pql__vec_t *out)
{
    agg_ctx_t *c = arg;
    pql_agg_op_t op = c->n->u.aggregate.op;
    pql__vec_t *vec = &in[c->param ? 1 : 0];
    uint32_t gen = (uint32_t)k + 1;
    int64_t kk = 0;
    double q = 0;
    (void)ts;
    if (op == PQL_AGG_TOPK || op == PQL_AGG_BOTTOMK) {
        double f = in[0].s[0].v;
        /* convertibleToInt64: 2.42 compares with MaxInt64/MinInt64 as floats (2^63). */
        if (!(f >= -9223372036854775808.0 && f <= 9223372036854775807.0)) {
            char buf[400];
            pql__fmt_float(f, 'v', buf, sizeof(buf));
            return pql__fail(ev, "Scalar value %s overflows int64", buf);
        }
        kk = (int64_t)f;
        if (kk < 1) {
            return 0;
        }
    } else if (op == PQL_AGG_QUANTILE) {
        q = in[0].s[0].v;
    }
    c->ng = 0;
    for (size_t i = 0; i < vec->n; i++) {
        const pql__smp_t *s = &vec->s[i];
        uint32_t gls;
        if (op == PQL_AGG_COUNT_VALUES) {
            char buf[400];
            pql__fmt_float(s->v, 'f', buf, sizeof(buf));
            uint32_t m = pql__ls_set(ev, s->ls, c->label, wf_str(buf));
            gls = agg_group_ls(ev, c, m);
        } else {
            gls = idmap_get(&c->key, s->ls);
            if (gls == UINT32_MAX) {
                gls = agg_group_ls(ev, c, s->ls);
                idmap_set(&c->key, s->ls, gls);
            }
        }
        group_t *g;
        if (idmap_get(&c->ggen, gls) != gen) {
            idmap_set(&c->ggen, gls, gen);
            idmap_set(&c->gslot, gls, (uint32_t)c->ng);
            if (c->ng == c->capg) {
                size_t old = c->capg;
                c->capg = c->capg ? c->capg * 2 : 16;
                c->g = wf_realloc(c->g, c->capg * sizeof(*c->g));
                memset(c->g + old, 0, (c->capg - old) * sizeof(*c->g));
            }
            g = &c->g[c->ng++];
            g->ls = gls;
            g->value = s->v;
            g->mean = s->v;
            g->count = 1;
            g->nheap = 0;
            switch (op) {
            case PQL_AGG_STDDEV:
            case PQL_AGG_STDVAR:
                g->value = 0;
                break;
            case PQL_AGG_TOPK:
            case PQL_AGG_BOTTOMK:
            case PQL_AGG_QUANTILE:
                group_push(g, s);
                break;
            case PQL_AGG_GROUP:
                g->value = 1;
                break;
            default:
                break;
            }
            continue;
        }
        g = &c->g[idmap_get(&c->gslot, gls)];
        switch (op) {
        case PQL_AGG_SUM:
            g->value += s->v;
            break;
        case PQL_AGG_AVG:
            g->count++;
            if (isinf(g->mean)) {
                if (isinf(s->v) && (g->mean > 0) == (s->v > 0)) {
                    break;
                }
                if (!isinf(s->v) && !isnan(s->v)) {
                    break;
                }
            }
            g->mean += s->v / (double)g->count - g->mean / (double)g->count;
            break;
        case PQL_AGG_GROUP:
            break;
        case PQL_AGG_MAX:
            if (g->value < s->v || isnan(g->value)) {
                g->value = s->v;
            }
            break;
        case PQL_AGG_MIN:
            if (g->value > s->v || isnan(g->value)) {
                g->value = s->v;
            }
            break;
        case PQL_AGG_COUNT:
        case PQL_AGG_COUNT_VALUES:
            g->count++;
            break;
        case PQL_AGG_STDDEV:
        case PQL_AGG_STDVAR: {
            g->count++;
            double delta = s->v - g->mean;
            g->mean += delta / (double)g->count;
            g->value += delta * (s->v - g->mean);
            break;
        }
        case PQL_AGG_TOPK:
        case PQL_AGG_BOTTOMK: {
            smp_less_t less = op == PQL_AGG_TOPK ? less_value : less_rvalue;
            bool take = (int64_t)g->nheap < kk || isnan(g->heap[0].v) ||
                        (op == PQL_AGG_TOPK ? g->heap[0].v < s->v : g->heap[0].v > s->v);
            if (!take) {
                break;
            }
            if ((int64_t)g->nheap == kk) {
                if (kk == 1) {
                    g->heap[0] = *s;
                    break;
                }
                /* heap.Pop: swap the root to the end, sift down, drop it. */
                heap_swap(g->heap, 0, g->nheap - 1);
                heap_down(g->heap, 0, g->nheap - 1, less);
                g->nheap--;
            }
            group_push(g, s);
            heap_up(g->heap, g->nheap - 1, less);
            break;
        }
        case PQL_AGG_QUANTILE:
            group_push(g, s);
            break;
        }
    }
    for (size_t i = 0; i < c->ng; i++) {
        group_t *g = &c->g[i];
        double v = g->value;
        switch (op) {
        case PQL_AGG_AVG:
            v = g->mean;
            break;
        case PQL_AGG_COUNT:
        case PQL_AGG_COUNT_VALUES:
            v = (double)g->count;
            break;
        case PQL_AGG_STDVAR:
            v = g->value / (double)g->count;
            break;
        case PQL_AGG_STDDEV:
            v = sqrt(g->value / (double)g->count);
            break;
        case PQL_AGG_TOPK:
        case PQL_AGG_BOTTOMK:
            if (g->nheap > 1) {
                pql__sort_smp(g->heap, g->nheap, op == PQL_AGG_TOPK ? rless_value : rless_rvalue);
            }
            for (size_t j = 0; j < g->nheap; j++) {
                pql__vec_push(out, g->heap[j].ls, g->heap[j].v, ts);
            }
            continue;
        case PQL_AGG_QUANTILE:
            if (g->nheap > c->capq) {
                c->capq = g->nheap;
                c->qbuf = wf_realloc(c->qbuf, c->capq * sizeof(*c->qbuf));
            }
            for (size_t j = 0; j < g->nheap; j++) {
                c->qbuf[j] = g->heap[j].v;
            }
            v = pql__quantile(q, c->qbuf, g->nheap);
            break;
        default:
            break;
        }
        pql__vec_push(out, g->ls, v, ts);
    }
    return 0;
}

static const pql_node_t *string_arg(const pql_node_t *n)
{
    n = unparen(n);
    return n->kind == PQL_NODE_STRING ? n : NULL;
}

static int eval_aggregate(pql__ev_t *ev, const pql_node_t *n, const pql__rng_t *r, pql__mat_t *out)
{
    agg_ctx_t c;
    pql__mat_t in[2];
    int rc = -1;
    memset(&c, 0, sizeof(c));
    memset(in, 0, sizeof(in));
    c.n = n;
    c.grouping = n->u.aggregate.grouping;
    pql_agg_op_t op = n->u.aggregate.op;
    size_t nin = 1;
    if (op == PQL_AGG_COUNT_VALUES) {
        const pql_node_t *s = string_arg(n->u.aggregate.param);
        WF_ASSERT(s != NULL);
        c.label = s->u.string;
        if (!pql__label_name_valid(c.label)) {
            return pql__fail(ev, "invalid label name \"%.*s\"", (int)c.label.len, c.label.p);
        }
        if (!n->u.aggregate.without) {
            /* The value label joins the grouping labels. */
            wf_str_t *names = wf_arena_alloc(&ev->arena, (c.grouping.n + 1) * sizeof(*names));
            if (c.grouping.n) {
                memcpy(names, c.grouping.names, c.grouping.n * sizeof(*names));
            }
            names[c.grouping.n] = c.label;
            c.grouping.names = names;
            c.grouping.n++;
        }
        if (eval(ev, n->u.aggregate.expr, r, &in[0]) != 0) {
            goto out;
        }
    } else if (n->u.aggregate.param != NULL) {
        if (eval(ev, n->u.aggregate.param, r, &in[0]) != 0) {
            goto out;
        }
        if (eval(ev, n->u.aggregate.expr, r, &in[1]) != 0) {
            goto out;
        }
        c.param = &in[0];
        nin = 2;
    } else if (eval(ev, n->u.aggregate.expr, r, &in[0]) != 0) {
        goto out;
    }
    rc = range_eval(ev, r, in, nin, step_aggregate, &c, out);
out:
    for (size_t i = 0; i < c.capg; i++) {
        wf_free(c.g[i].heap);
    }
    wf_free(c.g);
    wf_free(c.qbuf);
    idmap_free(&c.key);
    idmap_free(&c.gslot);
    idmap_free(&c.ggen);
    mat_free(ev, &in[0]);
    mat_free(ev, &in[1]);
    return rc;
}

/* ---- function calls ------------------------------------------------------------------------- */

static bool is_range_node(const pql_node_t *n)
{
    n = unparen(n);
    return n->kind == PQL_NODE_MATRIX || n->kind == PQL_NODE_SUBQUERY;
}

/* Labels for absent()/absent_over_time(): the equality matchers of a plain selector. */
static uint32_t absent_labels(pql__ev_t *ev, const pql_node_t *arg)
{
    arg = unparen(arg);
    if (arg->kind == PQL_NODE_MATRIX) {
        arg = arg->u.matrix.vector;
    }
    if (arg->kind != PQL_NODE_VECTOR) {
        return PQL__LS_EMPTY;
    }
    uint32_t ls = PQL__LS_EMPTY;
    size_t nm = arg->u.vector.nmatchers;
    for (size_t i = 0; i < nm; i++) {
        const pql_matcher_t *m = &arg->u.vector.matchers[i];
        if (wf_str_eq(m->name, NAME_LABEL)) {
            continue;
        }
        bool seen = false;
        for (size_t j = 0; j < i; j++) {
            if (wf_str_eq(arg->u.vector.matchers[j].name, m->name) &&
                arg->u.vector.matchers[j].type == ST_MATCH_EQ) {
                seen = true;
            }
        }
        if (m->type == ST_MATCH_EQ && !seen) {
            ls = pql__ls_set(ev, ls, m->name, m->value);
        } else {
            ls = pql__ls_set(ev, ls, m->name, (wf_str_t){"", 0});
        }
    }
    return ls;
}

static int eval_range_call(pql__ev_t *ev, const pql_node_t *n, size_t mi, const pql__rng_t *r,
                           pql__mat_t *out)
{
    pql_fn_t fn = n->u.call.fn;
    pql__mat_t other[4];
    rmat_t rm;
    double args[4] = {0, 0, 0, 0};
    int rc = -1;
    memset(other, 0, sizeof(other));
    memset(&rm, 0, sizeof(rm));
    memset(out, 0, sizeof(*out));
    out->nsteps = r->nsteps;
    WF_ASSERT(n->u.call.nargs <= 4);
    for (size_t i = 0; i < n->u.call.nargs; i++) {
        if (i != mi && eval(ev, n->u.call.args[i], r, &other[i]) != 0) {
            goto out;
        }
    }
    if (eval_rsource(ev, n->u.call.args[mi], r, &rm) != 0) {
        goto out;
    }
    for (size_t i = 0; i < rm.n; i++) {
        const rser_t *s = &rm.s[i];
        pql__ser_t *os = NULL;
        size_t lo = 0, hi = 0, pts = 0;
        if (check_time(ev) != 0) {
            goto out;
        }
        for (size_t k = 0; k < r->nsteps; k++) {
            int64_t ts = r->start + (int64_t)k * r->step;
            int64_t maxt = ts - rm.offset;
            if (check_time(ev) != 0) {
                goto out;
            }
            int64_t mint = maxt - rm.range;
            while (hi < s->n && s->t[hi] <= maxt) {
                hi++;
            }
            while (lo < hi && s->t[lo] < mint) {
                lo++;
            }
            if (hi == lo) {
                continue;
            }
            for (size_t j = 0; j < n->u.call.nargs; j++) {
                if (j != mi) {
                    args[j] = other[j].s[0].v[k];
                }
            }
            int err = 0;
            double v;
            if (!pql__range_fn(ev, fn, s->t + lo, s->v + lo, hi - lo, ts, rm.range, rm.offset, args,
                               &v, &err)) {
                if (err) {
                    goto out;
                }
                continue;
            }
            if (os == NULL) {
                uint32_t ls = fn == PQL_FN_LAST_OVER_TIME ? s->ls : pql__ls_drop_name(ev, s->ls);
                os = mat_add(ev, out, ls, false);
            }
            os->ok[k] = 1;
            os->v[k] = v;
            pts++;
        }
        if (pts && add_samples(ev, pts) != 0) {
            goto out;
        }
    }
    if (fn == PQL_FN_ABSENT_OVER_TIME) {
        /* 1 at the steps where no series had a sample, under the selector's labels. */
        uint8_t *found = wf_calloc(r->nsteps ? r->nsteps : 1, 1);
        size_t nfound = 0;
        for (size_t i = 0; i < out->n; i++) {
            for (size_t k = 0; k < r->nsteps; k++) {
                if (out->s[i].ok[k] && !found[k]) {
                    found[k] = 1;
                    nfound++;
                }
            }
        }
        mat_free(ev, out);
        out->nsteps = r->nsteps;
        if (nfound < r->nsteps) {
            pql__ser_t *s = mat_add(ev, out, absent_labels(ev, n->u.call.args[mi]), false);
            for (size_t k = 0; k < r->nsteps; k++) {
                s->ok[k] = !found[k];
                s->v[k] = 1;
            }
        }
        wf_free(found);
    } else if (mat_has_dup(ev, out)) {
        pql__fail(ev, ERR_DUP);
        goto out;
    }
    rc = 0;
out:
    for (size_t i = 0; i < 4; i++) {
        mat_free(ev, &other[i]);
    }
    rmat_free(&rm);
    return rc;
}

typedef struct {
    const pql_node_t *n;
    void *cache;
    size_t nin;
    uint32_t absent_ls;
} call_ctx_t;

static int step_call(pql__ev_t *ev, void *arg, pql__vec_t *in, size_t k, int64_t ts,
                     pql__vec_t *out)
{
    call_ctx_t *c = arg;
    (void)k;
    if (c->n->u.call.fn == PQL_FN_ABSENT) {
        if (in[0].n == 0) {
            pql__vec_push(out, c->absent_ls, 1, ts);
        }
        return 0;
    }
    return pql__call_fn(ev, c->n->u.call.fn, c->cache, in, c->nin, ts, out);
}

static int eval_call(pql__ev_t *ev, const pql_node_t *n, const pql__rng_t *r, pql__mat_t *out)
{
    size_t na = n->u.call.nargs;
    for (size_t i = 0; i < na; i++) {
        if (is_range_node(n->u.call.args[i])) {
            return eval_range_call(ev, n, i, r, out);
        }
    }
    call_ctx_t c;
    pql__mat_t in[4];
    int rc = -1;
    memset(&c, 0, sizeof(c));
    memset(in, 0, sizeof(in));
    memset(out, 0, sizeof(*out));
    out->nsteps = r->nsteps;
    c.n = n;
    c.nin = na;
    /* String arguments (label_replace, label_join) are read from the tree; at most the first
     * three arguments of any function are scalars or vectors. */
    wf_str_t *strs = wf_arena_alloc(&ev->arena, (na ? na : 1) * sizeof(*strs));
    memset(strs, 0, (na ? na : 1) * sizeof(*strs));
    size_t nvec = 0;
    for (size_t i = 0; i < na; i++) {
        const pql_node_t *a = unparen(n->u.call.args[i]);
        if (a->kind == PQL_NODE_STRING) {
            strs[i] = a->u.string;
            continue;
        }
        WF_ASSERT(i < 4);
        nvec = i + 1;
        if (n->u.call.fn == PQL_FN_TIMESTAMP && a->kind == PQL_NODE_VECTOR) {
            /* timestamp() of a selector reports the samples' own times. */
            if (eval_vector_sel(ev, a, r, true, &in[i]) != 0) {
                goto out;
            }
        } else if (eval(ev, a, r, &in[i]) != 0) {
            goto out;
        }
    }
    if (n->u.call.fn == PQL_FN_ABSENT) {
        c.absent_ls = absent_labels(ev, n->u.call.args[0]);
    }
    c.cache = pql__fn_cache_new(ev, n->u.call.fn, strs, na);
    if (ev->err->type != PQL_ERR_NONE) {
        if (r->nsteps > 0) {
            goto out;
        }
        /* Prometheus checks the arguments when it calls the function, at each step: with no
         * step there is no error. */
        ev->err->type = PQL_ERR_NONE;
        ev->err->msg[0] = 0;
    }
    rc = range_eval(ev, r, in, nvec, step_call, &c, out);
out:
    pql__fn_cache_free(c.cache);
    for (size_t i = 0; i < 4; i++) {
        mat_free(ev, &in[i]);
    }
    return rc;
}

/* ---- the dispatcher ------------------------------------------------------------------------- */

/* Functions whose value depends on the evaluation time beyond their arguments' values
 * (Prometheus's AtModifierUnsafeFunctions). */
static bool fn_time_dependent(pql_fn_t fn)
{
    switch (fn) {
    case PQL_FN_DAYS_IN_MONTH:
    case PQL_FN_DAY_OF_MONTH:
    case PQL_FN_DAY_OF_WEEK:
    case PQL_FN_DAY_OF_YEAR:
    case PQL_FN_HOUR:
    case PQL_FN_MINUTE:
    case PQL_FN_MONTH:
    case PQL_FN_YEAR:
    case PQL_FN_PREDICT_LINEAR:
    case PQL_FN_TIME:
    case PQL_FN_TIMESTAMP:
        return true;
    default:
        return false;
    }
}

/*
 * Whether n is step-invariant as Prometheus's PreprocessExpr decides it: every selector under
 * it has an @ modifier (literals count as invariant; an aggregation looks only at its
 * expression, not its parameter). Such a node is evaluated once, at the first step, and its
 * result repeated at every step -- which is observable (a parameter read only at the start,
 * extrapolation relative to the start), so we do exactly that.
 */
static bool invariant(const pql_node_t *n)
{
    switch (n->kind) {
    case PQL_NODE_NUMBER:
    case PQL_NODE_STRING:
        return true;
    case PQL_NODE_VECTOR:
        return n->u.vector.at != PQL_AT_NONE;
    case PQL_NODE_MATRIX:
        return n->u.matrix.vector->u.vector.at != PQL_AT_NONE;
    case PQL_NODE_SUBQUERY:
        return n->u.subquery.at != PQL_AT_NONE;
    case PQL_NODE_AGGREGATE:
        return invariant(n->u.aggregate.expr);
    case PQL_NODE_BINARY:
        return invariant(n->u.binary.lhs) && invariant(n->u.binary.rhs);
    case PQL_NODE_CALL:
        if (fn_time_dependent(n->u.call.fn)) {
            return false;
        }
        for (size_t i = 0; i < n->u.call.nargs; i++) {
            if (!invariant(n->u.call.args[i])) {
                return false;
            }
        }
        return true;
    case PQL_NODE_UNARY:
        return invariant(n->u.unary.expr);
    case PQL_NODE_PAREN:
        return invariant(n->u.paren.expr);
    }
    return false;
}

static int eval_node(pql__ev_t *ev, const pql_node_t *n, const pql__rng_t *r, pql__mat_t *out);

static int eval(pql__ev_t *ev, const pql_node_t *n, const pql__rng_t *r, pql__mat_t *out)
{
    if (r->nsteps <= 1 || n->kind == PQL_NODE_NUMBER || !invariant(n)) {
        return eval_node(ev, n, r, out);
    }
    pql__rng_t one = rng_make(r->start, r->start, r->step);
    pql__mat_t m;
    if (eval_node(ev, n, &one, &m) != 0) {
        mat_free(ev, &m);
        return -1;
    }
    memset(out, 0, sizeof(*out));
    out->nsteps = r->nsteps;
    int rc = 0;
    for (size_t i = 0; i < m.n && rc == 0; i++) {
        if (!m.s[i].ok[0]) {
            continue;
        }
        pql__ser_t *s = mat_add(ev, out, m.s[i].ls, false);
        for (size_t k = 0; k < r->nsteps; k++) {
            s->v[k] = m.s[i].v[0];
            s->ok[k] = 1;
        }
        rc = add_samples(ev, r->nsteps);
    }
    mat_free(ev, &m);
    return rc;
}

static int eval_node(pql__ev_t *ev, const pql_node_t *n, const pql__rng_t *r, pql__mat_t *out)
{
    memset(out, 0, sizeof(*out));
    out->nsteps = r->nsteps;
    if (check_time(ev) != 0) {
        return -1;
    }
    switch (n->kind) {
    case PQL_NODE_NUMBER:
        mat_scalar(ev, out, r->nsteps, n->u.number);
        return 0;
    case PQL_NODE_PAREN:
        return eval(ev, n->u.paren.expr, r, out);
    case PQL_NODE_VECTOR:
        return eval_vector_sel(ev, n, r, false, out);
    case PQL_NODE_UNARY:
        if (eval(ev, n->u.unary.expr, r, out) != 0) {
            return -1;
        }
        if (n->u.unary.negate) {
            for (size_t i = 0; i < out->n; i++) {
                out->s[i].ls = pql__ls_drop_name(ev, out->s[i].ls);
                for (size_t k = 0; k < out->nsteps; k++) {
                    out->s[i].v[k] = -out->s[i].v[k];
                }
            }
            if (mat_has_dup(ev, out)) {
                return pql__fail(ev, ERR_DUP);
            }
        }
        return 0;
    case PQL_NODE_BINARY:
        return eval_binary(ev, n, r, out);
    case PQL_NODE_AGGREGATE:
        return eval_aggregate(ev, n, r, out);
    case PQL_NODE_CALL:
        return eval_call(ev, n, r, out);
    case PQL_NODE_STRING:
    case PQL_NODE_MATRIX:
    case PQL_NODE_SUBQUERY:
        break;
    }
    return fail_type(ev, PQL_ERR_INTERNAL, "unexpected expression in instant evaluation");
}

/* ---- the public API ------------------------------------------------------------------------- */

void pql_options_default(pql_options_t *o)
{
    o->lookback_ms = 5 * 60 * 1000;
    o->timeout_ms = 2 * 60 * 1000;
    o->max_samples = 50000000;
    o->default_step_ms = 60 * 1000;
}

int pql_engine_new(st_store_t *s, const pql_options_t *o, pql_engine_t **out)
{
    *out = NULL;
    if (s == NULL) {
        return WF_E_INVAL;
    }
    pql_engine_t *e = wf_calloc(1, sizeof(*e));
    e->s = s;
    if (o != NULL) {
        e->o = *o;
    } else {
        pql_options_default(&e->o);
    }
    if (e->o.default_step_ms <= 0) {
        e->o.default_step_ms = 60 * 1000;
    }
    *out = e;
    return 0;
}

void pql_engine_free(pql_engine_t *e)
{
    wf_free(e);
}

void pql_result_free(pql_result_t *r)
{
    if (r == NULL) {
        return;
    }
    wf_arena_free(&r->arena);
    wf_free(r);
}

static void ev_init(pql__ev_t *ev, pql_engine_t *e, pql_error_t *err, int64_t qs, int64_t qe,
                    int64_t timeout_ms)
{
    memset(ev, 0, sizeof(*ev));
    ev->e = e;
    ev->err = err;
    ev->qstart = qs;
    ev->qend = qe;
    wf_arena_init(&ev->arena, 64 * 1024, 0);
    if (timeout_ms <= 0 || timeout_ms > e->o.timeout_ms) {
        timeout_ms = e->o.timeout_ms;
    }
    ev->deadline_ns = wf_mono_ns() + timeout_ms * 1000000;
    err->type = PQL_ERR_NONE;
    err->msg[0] = 0;
    uint32_t empty = pql__ls_intern(ev, NULL, 0);
    WF_ASSERT(empty == PQL__LS_EMPTY);
}

static void ev_free(pql__ev_t *ev)
{
    for (size_t i = 0; i < ev->nsets; i++) {
        st_series_set_free(ev->sets[i]);
    }
    wf_free(ev->sets);
    wf_free(ev->ls);
    wf_free(ev->lsidx);
    wf_free(ev->scratch);
    idmap_free(&ev->dropname);
    wf_arena_free(&ev->arena);
}

static pql_result_t *result_new(pql_type_t t)
{
    pql_result_t *r = wf_calloc(1, sizeof(*r));
    wf_arena_init(&r->arena, 64 * 1024, 0);
    r->type = t;
    return r;
}

static void copy_labels(pql_result_t *res, const pql__ev_t *ev, uint32_t ls, pql_series_t *o)
{
    const pql__ls_t *s = &ev->ls[ls];
    o->nlabels = s->n;
    o->labels = wf_arena_alloc(&res->arena, (s->n ? s->n : 1) * sizeof(*o->labels));
    for (uint32_t i = 0; i < s->n; i++) {
        o->labels[i].name.p = wf_arena_strndup(&res->arena, s->l[i].name.p, s->l[i].name.len);
        o->labels[i].name.len = s->l[i].name.len;
        o->labels[i].value.p = wf_arena_strndup(&res->arena, s->l[i].value.p, s->l[i].value.len);
        o->labels[i].value.len = s->l[i].value.len;
    }
}

static int cmp_series_ls(const void *a, const void *b, void *arg)
{
    const pql__ser_t *x = a, *y = b;
    return pql__ls_cmp(arg, x->ls, y->ls);
}

static void set_error_if_none(pql_error_t *err, pql_err_type_t t, const char *msg)
{
    if (err->type == PQL_ERR_NONE) {
        err->type = t;
        snprintf(err->msg, sizeof(err->msg), "%s", msg);
    }
}

int pql_eval_instant(pql_engine_t *e, const pql_tree_t *tree, int64_t t_ms, int64_t timeout_ms,
                     pql_result_t **out, pql_error_t *err)
{
    pql__ev_t ev;
    pql_result_t *res = NULL;
    *out = NULL;
    ev_init(&ev, e, err, t_ms, t_ms, timeout_ms);
    const pql_node_t *root = unparen(tree->root);
    pql__rng_t r = rng_make(t_ms, t_ms, 1);
    res = result_new(root->type);
    if (root->type == PQL_TYPE_STRING) {
        const pql_node_t *s = string_arg(root);
        WF_ASSERT(s != NULL);
        res->scalar_t = t_ms;
        res->string.p = wf_arena_strndup(&res->arena, s->u.string.p, s->u.string.len);
        res->string.len = s->u.string.len;
    } else if (root->type == PQL_TYPE_MATRIX) {
        rmat_t rm;
        if (eval_rsource(&ev, root, &r, &rm) != 0) {
            rmat_free(&rm);
            goto fail;
        }
        int64_t maxt = t_ms - rm.offset, mint = maxt - rm.range;
        res->series = wf_arena_alloc(&res->arena, (rm.n ? rm.n : 1) * sizeof(*res->series));
        for (size_t i = 0; i < rm.n; i++) {
            const rser_t *s = &rm.s[i];
            size_t lo = 0, hi = s->n;
            while (lo < hi && s->t[lo] < mint) {
                lo++;
            }
            while (hi > lo && s->t[hi - 1] > maxt) {
                hi--;
            }
            if (hi == lo) {
                continue;
            }
            pql_series_t *o = &res->series[res->nseries++];
            copy_labels(res, &ev, s->ls, o);
            o->n = hi - lo;
            o->ts = wf_arena_alloc(&res->arena, o->n * sizeof(*o->ts));
            o->v = wf_arena_alloc(&res->arena, o->n * sizeof(*o->v));
            memcpy(o->ts, s->t + lo, o->n * sizeof(*o->ts));
            memcpy(o->v, s->v + lo, o->n * sizeof(*o->v));
        }
        rmat_free(&rm);
    } else {
        pql__mat_t m;
        if (eval(&ev, root, &r, &m) != 0) {
            mat_free(NULL, &m);
            goto fail;
        }
        if (root->type == PQL_TYPE_SCALAR) {
            WF_ASSERT(m.n == 1);
            res->scalar_t = t_ms;
            res->scalar_v = m.s[0].v[0];
        } else {
            res->series = wf_arena_alloc(&res->arena, (m.n ? m.n : 1) * sizeof(*res->series));
            for (size_t i = 0; i < m.n; i++) {
                if (!m.s[i].ok[0]) {
                    continue;
                }
                pql_series_t *o = &res->series[res->nseries++];
                copy_labels(res, &ev, m.s[i].ls, o);
                o->n = 1;
                o->ts = wf_arena_alloc(&res->arena, sizeof(*o->ts));
                o->v = wf_arena_alloc(&res->arena, sizeof(*o->v));
                o->ts[0] = t_ms;
                o->v[0] = m.s[i].v[0];
            }
        }
        mat_free(NULL, &m);
    }
    res->samples_loaded = ev.loaded;
    ev_free(&ev);
    *out = res;
    return 0;
fail:
    set_error_if_none(err, PQL_ERR_INTERNAL, "evaluation failed");
    ev_free(&ev);
    pql_result_free(res);
    return -1;
}

int pql_eval_range(pql_engine_t *e, const pql_tree_t *tree, int64_t start_ms, int64_t end_ms,
                   int64_t step_ms, int64_t timeout_ms, pql_result_t **out, pql_error_t *err)
{
    pql__ev_t ev;
    pql_result_t *res = NULL;
    pql__mat_t m;
    memset(&m, 0, sizeof(m));
    *out = NULL;
    ev_init(&ev, e, err, start_ms, end_ms, timeout_ms);
    const pql_node_t *root = unparen(tree->root);
    if (step_ms <= 0 || end_ms < start_ms ||
        (root->type != PQL_TYPE_SCALAR && root->type != PQL_TYPE_VECTOR)) {
        set_error_if_none(err, PQL_ERR_BAD_DATA, "invalid range query");
        ev_free(&ev);
        return -1;
    }
    pql__rng_t r = rng_make(start_ms, end_ms, step_ms);
    if (eval(&ev, root, &r, &m) != 0) {
        goto fail;
    }
    res = result_new(PQL_TYPE_MATRIX);
    if (m.n > 1) {
        qsort_r(m.s, m.n, sizeof(*m.s), cmp_series_ls, &ev);
    }
    res->series = wf_arena_alloc(&res->arena, (m.n ? m.n : 1) * sizeof(*res->series));
    memset(res->series, 0, (m.n ? m.n : 1) * sizeof(*res->series));
    for (size_t i = 0; i < m.n; i++) {
        size_t pts = ser_points(&m.s[i], r.nsteps);
        if (pts == 0) {
            continue;
        }
        pql_series_t *o = &res->series[res->nseries++];
        copy_labels(res, &ev, m.s[i].ls, o);
        o->ts = wf_arena_alloc(&res->arena, pts * sizeof(*o->ts));
        o->v = wf_arena_alloc(&res->arena, pts * sizeof(*o->v));
        for (size_t k = 0; k < r.nsteps; k++) {
            if (m.s[i].ok[k]) {
                o->ts[o->n] = start_ms + (int64_t)k * step_ms;
                o->v[o->n++] = m.s[i].v[k];
            }
        }
    }
    mat_free(NULL, &m);
    res->samples_loaded = ev.loaded;
    ev_free(&ev);
    *out = res;
    return 0;
fail:
    mat_free(NULL, &m);
    set_error_if_none(err, PQL_ERR_INTERNAL, "evaluation failed");
    ev_free(&ev);
    pql_result_free(res);
    return -1;
}
