/*
 * st_mread.c - the metrics read API: st_select and series sets, st_label_names,
 * st_label_values, st_metadata_get. Any thread, concurrently with the writer.
 *
 * Under the shared lock a reader evaluates the matchers on the index and copies what it needs
 * of each series (labels, the bytes of its head chunks that overlap the range); it never
 * touches the database while holding the lock. Sealed chunks are read later, when the samples
 * of a series are first asked for, through a reader connection that the set keeps until it is
 * freed. A pending chunk that a flush wrote in between is seen twice (copy and table): samples
 * are merged by timestamp and duplicates dropped. A sealed chunk and its timestamp column are
 * fetched by one statement (a join), so retention between two statements cannot leave a chunk
 * without its column.
 */
#include "st_head.h"
#include "st_labels.h"
#include "st_matcher.h"

#include "wf_alloc.h"
#include "wf_arena.h"
#include "wf_err.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t mint, maxt;
    const uint8_t *data; /* arena copy */
    size_t len;
    const uint8_t *ts; /* arena copy of a pending chunk's timestamp column; NULL for the head */
    size_t ts_len;
} hcopy_t;

typedef struct {
    uint64_t id;
    st_label_t *labels;
    size_t nlabels;
    hcopy_t *heads;
    size_t nheads;
    /* Oldest sample time held in memory (pending chunks, then the head); every chunk in the
     * database is older. A window starting at or after it needs no database read. */
    int64_t mem_mint;
    int decoded;
    int64_t *ts;
    double *v;
    size_t n;
} sentry_t;

struct st_series_set {
    st_store_t *s;
    int64_t mint, maxt;
    sentry_t *e;
    size_t n;
    wf_arena_t arena;
    sqlite3 *conn;
    sqlite3_stmt *q;
};

static bool has_nonempty_matcher(const st_matcher_t *const *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (m[i] == NULL) {
            return false;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (!m[i]->matches_empty) {
            return true;
        }
    }
    return false;
}

static bool overlaps(const st__mseries_t *se, int64_t mint, int64_t maxt)
{
    return se->has_last && se->min_t <= maxt && se->last_ts >= mint;
}

static int cmp_entry(const void *a, const void *b)
{
    const sentry_t *x = a, *y = b;
    return st__labels_cmp(x->labels, x->nlabels, y->labels, y->nlabels);
}

static void copy_labels(wf_arena_t *a, const st__mseries_t *se, sentry_t *e)
{
    uint8_t *enc = wf_arena_alloc(a, se->lbl_len);
    memcpy(enc, se->lbl, se->lbl_len);
    int n = st__labels_count(enc, se->lbl_len);
    WF_ASSERT(n > 0);
    e->labels = wf_arena_alloc(a, (size_t)n * sizeof(st_label_t));
    e->nlabels = 0;
    wf_rd_t r;
    wf_rd_init(&r, enc, se->lbl_len);
    wf_str_t name, value;
    while (st__labels_next(&r, &name, &value) == 1) {
        e->labels[e->nlabels].name = name;
        e->labels[e->nlabels].value = value;
        e->nlabels++;
    }
}

static void copy_heads(wf_arena_t *a, const st__mseries_t *se, sentry_t *e, int64_t mint,
                       int64_t maxt)
{
    e->heads = wf_arena_alloc(a, (se->npend + 1) * sizeof(hcopy_t));
    e->nheads = 0;
    e->mem_mint =
        se->npend > 0 ? se->pend[0].mint : (se->head.count > 0 ? se->head.mint : INT64_MAX);
    for (size_t i = 0; i <= se->npend; i++) {
        hcopy_t h = {0};
        const uint8_t *src;
        if (i < se->npend) {
            h.mint = se->pend[i].mint;
            h.maxt = se->pend[i].maxt;
            src = se->pend[i].data;
            h.len = se->pend[i].len;
        } else {
            if (se->head.count == 0) {
                break;
            }
            h.mint = se->head.mint;
            h.maxt = se->head.maxt;
            src = st_chunk_enc_bytes(&se->head, &h.len);
        }
        if (h.maxt < mint || h.mint > maxt) {
            continue;
        }
        uint8_t *dst = wf_arena_alloc(a, h.len);
        memcpy(dst, src, h.len);
        h.data = dst;
        if (i < se->npend) {
            uint8_t *t = wf_arena_alloc(a, se->pend[i].ts_len);
            memcpy(t, se->pend[i].ts, se->pend[i].ts_len);
            h.ts = t;
            h.ts_len = se->pend[i].ts_len;
        }
        e->heads[e->nheads++] = h;
    }
}

int st_select(st_store_t *s, const st_matcher_t *const *m, size_t n, int64_t mint, int64_t maxt,
              st_series_set_t **out)
{
    *out = NULL;
    if (s == NULL || (n > 0 && m == NULL) || !has_nonempty_matcher(m, n)) {
        return WF_E_INVAL;
    }
    st__metrics_t *mt = s->metrics;
    st_series_set_t *set = wf_calloc(1, sizeof(*set));
    set->s = s;
    set->mint = mint;
    set->maxt = maxt;
    wf_arena_init(&set->arena, 64 * 1024, 0);
    st__postings_t ids = {0};
    pthread_rwlock_rdlock(&mt->lock);
    if (mint <= maxt) {
        st__index_select(&mt->idx, m, n, &ids);
    }
    set->e = wf_calloc(ids.n ? ids.n : 1, sizeof(*set->e));
    for (size_t i = 0; i < ids.n; i++) {
        st__mseries_t *se = st__series_by_id(mt, ids.ids[i]);
        if (se == NULL || !overlaps(se, mint, maxt)) {
            continue;
        }
        sentry_t *e = &set->e[set->n++];
        e->id = se->id;
        copy_labels(&set->arena, se, e);
        copy_heads(&set->arena, se, e, mint, maxt);
    }
    pthread_rwlock_unlock(&mt->lock);
    st__postings_free(&ids);
    qsort(set->e, set->n, sizeof(*set->e), cmp_entry);
    *out = set;
    return 0;
}

size_t st_series_set_len(const st_series_set_t *set)
{
    return set->n;
}

const st_label_t *st_series_set_labels(const st_series_set_t *set, size_t i, size_t *nlabels)
{
    WF_ASSERT(i < set->n);
    *nlabels = set->e[i].nlabels;
    return set->e[i].labels;
}

typedef struct {
    int64_t *ts;
    double *v;
    size_t n, cap;
} samples_t;

/* Append the samples of [mint, maxt] of a chunk whose iterator init returned rc. */
static int decode_into(samples_t *o, st_chunk_iter_t *it, int rc, int64_t mint, int64_t maxt)
{
    if (rc != 0) {
        return rc;
    }
    int64_t ts;
    double v;
    while ((rc = st_chunk_iter_next(it, &ts, &v)) == 1) {
        if (ts > maxt) {
            rc = 0; /* a chunk's samples ascend: the rest are later still */
            break;
        }
        if (ts < mint) {
            continue;
        }
        if (o->n == o->cap) {
            o->cap = o->cap ? o->cap * 2 : 256;
            o->ts = wf_realloc(o->ts, o->cap * sizeof(*o->ts));
            o->v = wf_realloc(o->v, o->cap * sizeof(*o->v));
        }
        o->ts[o->n] = ts;
        o->v[o->n] = v;
        o->n++;
    }
    st_chunk_iter_free(it);
    return rc < 0 ? rc : 0;
}

typedef struct {
    int64_t ts;
    double v;
} pair_t;

static int cmp_pair(const void *a, const void *b)
{
    const pair_t *x = a, *y = b;
    return x->ts < y->ts ? -1 : x->ts > y->ts;
}

/* Sort by time and drop repeated timestamps (a chunk seen both as a copy and in the table). */
static void sort_unique(samples_t *o)
{
    bool sorted = true;
    for (size_t i = 1; i < o->n && sorted; i++) {
        sorted = o->ts[i - 1] < o->ts[i];
    }
    if (sorted) {
        return;
    }
    pair_t *p = wf_malloc(o->n * sizeof(*p));
    for (size_t i = 0; i < o->n; i++) {
        p[i].ts = o->ts[i];
        p[i].v = o->v[i];
    }
    qsort(p, o->n, sizeof(*p), cmp_pair);
    size_t k = 0;
    for (size_t i = 0; i < o->n; i++) {
        if (k > 0 && o->ts[k - 1] == p[i].ts) {
            continue;
        }
        o->ts[k] = p[i].ts;
        o->v[k] = p[i].v;
        k++;
    }
    o->n = k;
    wf_free(p);
}

int st_series_set_samples(st_series_set_t *set, size_t i, const int64_t **ts, const double **v,
                          size_t *n)
{
    WF_ASSERT(i < set->n);
    sentry_t *e = &set->e[i];
    if (e->decoded) {
        goto done;
    }
    int rc = 0;
    samples_t o = {0};
    if (set->mint >= e->mem_mint) {
        goto memory; /* the whole window is in memory */
    }
    if (set->q == NULL) {
        sqlite3 *conn = NULL;
        rc = st__db_reader_get(&set->s->db, &conn);
        if (rc != 0) {
            return rc;
        }
        rc = sqlite3_prepare_v2(conn,
                                "SELECT c.data, c.ts_id, t.data FROM chunks c"
                                " LEFT JOIN ts_columns t ON t.id = c.ts_id"
                                " WHERE c.series_id = ?1 AND c.mint >= ?2 AND c.mint <= ?3"
                                " AND c.maxt >= ?4 ORDER BY c.mint",
                                -1, &set->q, NULL);
        if (rc != SQLITE_OK) {
            st__db_reader_put(&set->s->db, conn);
            return wf_sqlite_err(rc);
        }
        /* One read transaction for the whole set: without it every series' statement opens
         * and closes its own, and the WAL read-lock traffic dominates small reads. */
        rc = sqlite3_exec(conn, "BEGIN", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            sqlite3_finalize(set->q);
            set->q = NULL;
            st__db_reader_put(&set->s->db, conn);
            return wf_sqlite_err(rc);
        }
        set->conn = conn;
    }
    int64_t lo =
        set->mint > INT64_MIN + ST_CHUNK_SPAN_MS ? set->mint - ST_CHUNK_SPAN_MS : INT64_MIN;
    sqlite3_bind_int64(set->q, 1, (int64_t)e->id);
    sqlite3_bind_int64(set->q, 2, lo);
    sqlite3_bind_int64(set->q, 3, set->maxt);
    sqlite3_bind_int64(set->q, 4, set->mint);
    int step;
    while (rc == 0 && (step = sqlite3_step(set->q)) == SQLITE_ROW) {
        st_chunk_iter_t it;
        rc = decode_into(&o, &it, st__chunk_row_iter(&it, set->q, 0), set->mint, set->maxt);
    }
    if (rc == 0 && step != SQLITE_DONE) {
        rc = wf_sqlite_err(step);
    }
    sqlite3_reset(set->q);
memory:
    for (size_t h = 0; h < e->nheads && rc == 0; h++) {
        const hcopy_t *hc = &e->heads[h];
        st_chunk_iter_t it;
        rc = decode_into(&o, &it,
                         st_chunk_iter_init_split(&it, hc->ts, hc->ts_len, hc->data, hc->len),
                         set->mint, set->maxt);
    }
    if (rc != 0) {
        wf_free(o.ts);
        wf_free(o.v);
        return rc;
    }
    sort_unique(&o);
    e->ts = o.ts;
    e->v = o.v;
    e->n = o.n;
    e->decoded = 1;
done:
    *ts = e->ts;
    *v = e->v;
    *n = e->n;
    return 0;
}

void st_series_set_free(st_series_set_t *set)
{
    if (set == NULL) {
        return;
    }
    for (size_t i = 0; i < set->n; i++) {
        wf_free(set->e[i].ts);
        wf_free(set->e[i].v);
    }
    wf_free(set->e);
    sqlite3_finalize(set->q);
    if (set->conn != NULL) {
        sqlite3_exec(set->conn, "COMMIT", NULL, NULL, NULL);
        st__db_reader_put(&set->s->db, set->conn);
    }
    wf_arena_free(&set->arena);
    wf_free(set);
}

/* ---- label names and values ------------------------------------------------------------ */

typedef struct {
    wf_str_t *v;
    size_t n, cap;
} strvec_t;

static void strvec_push(strvec_t *sv, wf_str_t s)
{
    if (sv->n == sv->cap) {
        sv->cap = sv->cap ? sv->cap * 2 : 32;
        sv->v = wf_realloc(sv->v, sv->cap * sizeof(*sv->v));
    }
    sv->v[sv->n++] = s;
}

static int cmp_str(const void *a, const void *b)
{
    return wf_str_cmp(*(const wf_str_t *)a, *(const wf_str_t *)b);
}

/* Sort, copy out (the strings borrow from the index) and build the list. Under the read lock. */
static st_strlist_t *strvec_finish(strvec_t *sv)
{
    if (sv->n > 1) {
        qsort(sv->v, sv->n, sizeof(*sv->v), cmp_str);
    }
    char **items = wf_malloc((sv->n ? sv->n : 1) * sizeof(char *));
    size_t *lens = wf_malloc((sv->n ? sv->n : 1) * sizeof(size_t));
    for (size_t i = 0; i < sv->n; i++) {
        items[i] = wf_strndup(sv->v[i].p, sv->v[i].len);
        lens[i] = sv->v[i].len;
    }
    st_strlist_t *l = st__strlist_new(items, lens, sv->n);
    wf_free(sv->v);
    return l;
}

int st_label_names(st_store_t *s, const st_matcher_t *const *m, size_t n, int64_t mint,
                   int64_t maxt, st_strlist_t **out)
{
    *out = NULL;
    if (s == NULL || (n > 0 && (m == NULL || !has_nonempty_matcher(m, n)))) {
        return WF_E_INVAL;
    }
    st__metrics_t *mt = s->metrics;
    strvec_t sv = {0};
    st__postings_t ids = {0};
    st__map_t seen = {0};
    pthread_rwlock_rdlock(&mt->lock);
    if (mint <= maxt) {
        const st__postings_t *src = &mt->idx.all;
        if (n > 0) {
            st__index_select(&mt->idx, m, n, &ids);
            src = &ids;
        }
        for (size_t i = 0; i < src->n && seen.n < mt->idx.nnames; i++) {
            st__mseries_t *se = st__series_by_id(mt, src->ids[i]);
            if (se == NULL || !overlaps(se, mint, maxt)) {
                continue;
            }
            wf_rd_t r;
            wf_rd_init(&r, se->lbl, se->lbl_len);
            wf_str_t name, value;
            while (st__labels_next(&r, &name, &value) == 1) {
                st__iname_t *in = st__index_name(&mt->idx, name);
                if (in != NULL && st__map_get(&seen, (uint64_t)(uintptr_t)in) == NULL) {
                    st__map_put(&seen, (uint64_t)(uintptr_t)in, 1);
                    strvec_push(&sv, in->name);
                }
            }
        }
    }
    *out = strvec_finish(&sv);
    pthread_rwlock_unlock(&mt->lock);
    st__map_free(&seen);
    st__postings_free(&ids);
    return 0;
}

int st_label_values(st_store_t *s, wf_str_t name, const st_matcher_t *const *m, size_t n,
                    int64_t mint, int64_t maxt, st_strlist_t **out)
{
    *out = NULL;
    if (s == NULL || (n > 0 && (m == NULL || !has_nonempty_matcher(m, n)))) {
        return WF_E_INVAL;
    }
    st__metrics_t *mt = s->metrics;
    strvec_t sv = {0};
    st__postings_t ids = {0};
    st__map_t seen = {0};
    pthread_rwlock_rdlock(&mt->lock);
    st__iname_t *in = st__index_name(&mt->idx, name);
    if (in != NULL && mint <= maxt) {
        if (n == 0) {
            for (size_t i = 0; i < in->nvals; i++) {
                const st__postings_t *p = &in->vals[i]->post;
                for (size_t j = 0; j < p->n; j++) {
                    st__mseries_t *se = st__series_by_id(mt, p->ids[j]);
                    if (se != NULL && overlaps(se, mint, maxt)) {
                        strvec_push(&sv, in->vals[i]->value);
                        break;
                    }
                }
            }
        } else {
            st__index_select(&mt->idx, m, n, &ids);
            for (size_t i = 0; i < ids.n && seen.n < in->nvals; i++) {
                st__mseries_t *se = st__series_by_id(mt, ids.ids[i]);
                if (se == NULL || !overlaps(se, mint, maxt)) {
                    continue;
                }
                wf_str_t v = st__labels_get(se->lbl, se->lbl_len, name);
                st__ival_t *iv = v.len ? st__index_value(in, v) : NULL;
                if (iv != NULL && st__map_get(&seen, (uint64_t)(uintptr_t)iv) == NULL) {
                    st__map_put(&seen, (uint64_t)(uintptr_t)iv, 1);
                    strvec_push(&sv, iv->value);
                }
            }
        }
    }
    *out = strvec_finish(&sv);
    pthread_rwlock_unlock(&mt->lock);
    st__map_free(&seen);
    st__postings_free(&ids);
    return 0;
}

/* ---- metadata -------------------------------------------------------------------------- */

int st_metadata_get(st_store_t *s, wf_str_t metric, st_metadata_t *out)
{
    memset(out, 0, sizeof(*out));
    sqlite3 *c = NULL;
    int rc = st__db_reader_get(&s->db, &c);
    if (rc != 0) {
        return rc;
    }
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(c, "SELECT type, help, unit FROM metadata WHERE metric = ?", -1,
                                 &st, NULL);
    if (src != SQLITE_OK) {
        rc = wf_sqlite_err(src);
        goto out;
    }
    sqlite3_bind_text(st, 1, metric.len ? metric.p : "", (int)metric.len, SQLITE_STATIC);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        out->type = (st_metric_type_t)sqlite3_column_int(st, 0);
        out->help = wf_strndup((const char *)sqlite3_column_text(st, 1),
                               (size_t)sqlite3_column_bytes(st, 1));
        out->unit = wf_strndup((const char *)sqlite3_column_text(st, 2),
                               (size_t)sqlite3_column_bytes(st, 2));
    } else if (src == SQLITE_DONE) {
        rc = WF_E_NOTFOUND;
    } else {
        rc = wf_sqlite_err(src);
    }
out:
    sqlite3_finalize(st);
    st__db_reader_put(&s->db, c);
    return rc;
}

int st_metadata_metrics(st_store_t *s, st_strlist_t **out)
{
    *out = NULL;
    sqlite3 *c = NULL;
    int rc = st__db_reader_get(&s->db, &c);
    if (rc != 0) {
        return rc;
    }
    sqlite3_stmt *st = NULL;
    char **items = NULL;
    size_t *lens = NULL;
    size_t n = 0, cap = 0;
    int src = sqlite3_prepare_v2(c, "SELECT metric FROM metadata ORDER BY metric", -1, &st, NULL);
    if (src != SQLITE_OK) {
        rc = wf_sqlite_err(src);
        goto out;
    }
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            items = wf_realloc(items, cap * sizeof(*items));
            lens = wf_realloc(lens, cap * sizeof(*lens));
        }
        lens[n] = (size_t)sqlite3_column_bytes(st, 0);
        items[n] = wf_strndup((const char *)sqlite3_column_text(st, 0), lens[n]);
        n++;
    }
    if (src != SQLITE_DONE) {
        rc = wf_sqlite_err(src);
        for (size_t i = 0; i < n; i++) {
            wf_free(items[i]);
        }
        wf_free(items);
        wf_free(lens);
        goto out;
    }
    *out = st__strlist_new(items, lens, n);
out:
    sqlite3_finalize(st);
    st__db_reader_put(&s->db, c);
    return rc;
}
