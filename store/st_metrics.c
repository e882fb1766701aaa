/*
 * st_metrics.c - the metrics half of the store: series, the in-memory head, the write path
 * (batches -> log record -> head), flush, replay and retention. The read API is in
 * st_mread.c; the state both share is in st_head.h.
 *
 * Tables (created here, in the one weft.db):
 *   series(id INTEGER PRIMARY KEY, labels BLOB, mint INTEGER)
 *       one row per series: its labels as uvarint symbol ids (name, value, name, value, ...
 *       in canonical order) and the timestamp of its oldest sample, inserted in the
 *       transaction of the log record that first mentions it; mint is moved forward by
 *       retention.
 *   symbols(id INTEGER PRIMARY KEY, s BLOB)
 *       every distinct label name and value, stored once: mesh series share most of their 25
 *       label values, so a series row is ~60 bytes instead of ~800. Symbols are never
 *       deleted (a store accumulates the distinct strings it has ever seen).
 *   chunks(series_id, mint, maxt, data, ts_id, PRIMARY KEY(series_id, mint)) WITHOUT ROWID
 *       sealed chunks. The clustered key keeps one series' chunks together and avoids a rowid
 *       plus a second index per row. ts_id NULL: data is a whole chunk (st_chunk_seal form,
 *       stores written before ts_columns existed); else data holds the values only and ts_id
 *       names its timestamp column (st_chunk_seal_split form).
 *   ts_columns(id INTEGER PRIMARY KEY, hash, maxt, data) + index on hash
 *       timestamp columns, each stored once for all the chunks with byte-equal timestamps:
 *       the series of one scrape target share every scrape's timestamp, and the cut rule
 *       below makes them cut at the same samples, so one target's chunks of a window share
 *       one column (the jittered timestamps are most of a counter chunk's bits). hash is
 *       wf_hash64 of data, looked up at flush; equal bytes are checked, never just hashes.
 *       maxt is the column's last timestamp. Equal bytes mean equal timestamps, so every
 *       chunk referencing a column has its maxt, and retention, which deletes exactly the
 *       chunks with maxt < cutoff, deletes the columns with maxt < cutoff after them: no
 *       reference counts (see st__metrics_retention).
 *   head_chunks(series_id INTEGER PRIMARY KEY, data BLOB)
 *       the open (partial) chunk of each series as of the last flush, sealed.
 *   metadata(metric TEXT PRIMARY KEY, type, help, unit) WITHOUT ROWID
 *       written directly in the batch's transaction (no log record needed); last write wins.
 *   metrics_state(key TEXT PRIMARY KEY, value INTEGER)
 *       counters that would otherwise need a full scan at open (the sealed chunk count).
 *
 * Head: per series one open chunk encoder. A chunk is cut when the next sample would make it
 * hold more than 480 samples, fall into another aligned 2 h wall-clock window than its first
 * sample (ts / 2 h != mint / 2 h, as Prometheus blocks), or possibly make its values exceed
 * the largest row SQLite keeps inside a b-tree page of a WITHOUT ROWID table (~1000 bytes with
 * 4 KiB pages; beyond it a row spills into an overflow page that is mostly empty). The first
 * two depend on the timestamps alone, so series with the same timestamps cut at the same
 * samples and their chunks share a timestamp column; the size cut depends on the values and
 * its chunks usually get a column of their own. Every chunk's maxt - mint <= ST_CHUNK_SPAN_MS;
 * readers rely on that bound to seek by (series_id, mint). Cut chunks are sealed at once
 * (split form) and wait in memory ("pending") until the next flush writes them to `chunks`
 * and `ts_columns`. The cut happens when the sample that does not fit arrives, so the open
 * chunk of a live series is never empty.
 *
 * Write path (writer thread): st_batch_add validates labels (a fast path skips validation for
 * input that is byte-identical to a known series' canonical encoding), finds the series id
 * through a hash of the encoding, and checks the timestamp against the series' newest sample
 * (in the head, or earlier in the same batch). st_batch_commit encodes the accepted samples
 * into one log record (new series with labels, then samples as id/ts deltas and integer or raw
 * values, zstd-compressed when that helps), and in one transaction inserts new series rows and
 * metadata and appends the record. Only after COMMIT are the samples applied to the head, under
 * the write lock, so a crash before COMMIT leaves nothing and one after is replayed.
 *
 * Out-of-order policy: rejection, as Prometheus does by default (see st_store.h).
 *
 * Flush: one transaction writes pending chunks (each timestamp column once: found among the
 * columns this flush wrote, else in the table by hash, else inserted), replaces the
 * head_chunks rows of the series that changed, and truncates the samples log up to the last
 * applied record. Reopening is then
 * load series + head chunks, replay the remaining log. The writer flushes by itself after a
 * commit once the log holds >= 8 MiB of payload or >= 8192 records since the last flush, so
 * the log (and the replay time) stay bounded. Replay applies a record exactly as commit did;
 * a sample whose timestamp is <= the series' newest one is skipped, which makes replaying a
 * record that is already reflected in the head a no-op.
 *
 * Retention: after a flush, per series whose oldest sample is older than the cutoff, sealed
 * chunks ending before the cutoff are deleted (a seek on the primary key), and a series whose
 * newest sample is older than the cutoff is deleted with all its rows and leaves the index;
 * 1000 series per transaction; then the timestamp columns with maxt < cutoff. The writer also runs
 * it every 10 minutes (store clock) from st_batch_commit when metrics_retention_ms is set.
 *
 * Locking: one rwlock (writer-preferring) guards the index, the id map and every series' head.
 * Readers hold it shared while they evaluate matchers and copy what they need (labels, head
 * chunk bytes); the writer holds it exclusively only while applying a committed batch, after a
 * flush or retention commit. Sealed chunks are read later, outside the lock, through a reader
 * connection; a chunk that was flushed in between is then seen twice (copy and table) and the
 * duplicate samples are dropped while merging. Writer-only state (the label-hash map, batch
 * bookkeeping in each series) needs no lock. One batch may be open at a time.
 */
#include "st_head.h"
#include "st_labels.h"

#include "wf_alloc.h"
#include "wf_err.h"
#include "wf_log.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#define ST_CHUNK_MAX_SAMPLES 480
#define ST_SAMPLE_MAX_BYTES 20 /* most bytes one sample can add to an encoder */
#define ST_VHDR_BYTES 6        /* header of a values-only chunk (st_chunk.c) */
#define FLUSH_LOG_BYTES (8u << 20)
#define FLUSH_LOG_RECORDS 8192
#define RETENTION_EVERY_MS (10LL * 60 * 1000)
#define RETENTION_TX_SERIES 1000
#define LOG_VERSION 1
#define LOG_F_ZSTD 1
#define LOG_MAX_RAW (1u << 30)
/*
 * A batch is also bounded in bytes (opt.max_batch_bytes): what its log record (new series'
 * labels, samples) and its metadata need before compression. Counts alone (samples, labels,
 * value lengths) do not bound bytes; without it a batch could be acknowledged whose record
 * replay refuses (LOG_MAX_RAW), or exhaust memory.
 */
#define SAMPLE_MAX_BYTES 30 /* series id, timestamp delta, value: three varints */
_Static_assert(ST_MAX_BATCH_BYTES < LOG_MAX_RAW, "replay must accept every batch commit accepts");
#define META_MAX_LEN 65536

typedef struct {
    char *metric, *help, *unit;
    size_t mlen, hlen, ulen;
    int type;
} meta_t;

struct st_batch {
    st_store_t *s;
    uint64_t gen;
    int64_t now;
    st__mseries_t **ser;
    int64_t *ts;
    uint64_t *v;
    size_t n, cap;
    st__mseries_t **news;
    size_t nnew, cnew;
    st__map_t newmap;
    meta_t *meta;
    size_t nmeta, cmeta;
    st_label_t *lbuf;
    size_t lcap;
    wf_buf_t enc;
    size_t bytes; /* counted against opt.max_batch_bytes */
};

typedef struct sym {
    uint64_t id;
    uint64_t hash;
    struct sym *next;
    size_t len;
    char s[];
} sym_t;

/* ---- series ---------------------------------------------------------------------------- */

static uint64_t bits_of(double v)
{
    uint64_t b;
    memcpy(&b, &v, 8);
    return b;
}

static double double_of(uint64_t b)
{
    double v;
    memcpy(&v, &b, 8);
    return v;
}

static st__mseries_t *series_new(uint64_t id, const uint8_t *lbl, size_t len, uint64_t hash)
{
    st__mseries_t *se = wf_calloc(1, sizeof(*se));
    se->id = id;
    se->hash = hash;
    se->lbl = wf_malloc(len ? len : 1);
    memcpy(se->lbl, lbl, len);
    se->lbl_len = len;
    se->min_t = INT64_MAX;
    st_chunk_enc_init(&se->head);
    return se;
}

static void series_free(st__mseries_t *se)
{
    if (se == NULL) {
        return;
    }
    for (size_t i = 0; i < se->npend; i++) {
        wf_free(se->pend[i].data);
        wf_free(se->pend[i].ts);
    }
    wf_free(se->pend);
    st_chunk_enc_free(&se->head);
    wf_free(se->lbl);
    wf_free(se);
}

static st__mseries_t *chain_find(const st__map_t *map, uint64_t hash, const uint8_t *enc,
                                 size_t len)
{
    uint64_t *v = st__map_get(map, hash);
    for (st__mseries_t *se = v ? (st__mseries_t *)(uintptr_t)*v : NULL; se != NULL;
         se = se->hnext) {
        if (se->lbl_len == len && memcmp(se->lbl, enc, len) == 0) {
            return se;
        }
    }
    return NULL;
}

static void chain_add(st__map_t *map, st__mseries_t *se)
{
    uint64_t *v = st__map_get(map, se->hash);
    se->hnext = v ? (st__mseries_t *)(uintptr_t)*v : NULL;
    st__map_put(map, se->hash, (uint64_t)(uintptr_t)se);
}

static void chain_del(st__map_t *map, st__mseries_t *se)
{
    uint64_t *v = st__map_get(map, se->hash);
    WF_ASSERT(v != NULL);
    st__mseries_t *head = (st__mseries_t *)(uintptr_t)*v;
    if (head == se) {
        if (se->hnext != NULL) {
            *v = (uint64_t)(uintptr_t)se->hnext;
        } else {
            st__map_del(map, se->hash);
        }
        return;
    }
    while (head->hnext != se) {
        head = head->hnext;
    }
    head->hnext = se->hnext;
}

static uint64_t label_hash(const uint8_t *enc, size_t len)
{
    uint64_t h = wf_hash64(enc, len, 0);
    return h ? h : 1;
}

/* Make a series visible: index, id map, label map. Caller holds the write lock (or is open). */
static void series_adopt(st__metrics_t *m, st__mseries_t *se)
{
    st__index_add(&m->idx, se->id, se->lbl, se->lbl_len);
    st__map_put(&m->by_id, se->id, (uint64_t)(uintptr_t)se);
    chain_add(&m->by_hash, se);
    m->nseries++;
    if (se->id >= m->next_id) {
        m->next_id = se->id + 1;
    }
}

static void series_drop(st__metrics_t *m, st__mseries_t *se)
{
    st__index_del(&m->idx, se->id, se->lbl, se->lbl_len);
    st__map_del(&m->by_id, se->id);
    chain_del(&m->by_hash, se);
    m->nseries--;
    m->head_samples -= se->head.count;
    for (size_t i = 0; i < se->npend; i++) {
        m->head_samples -= se->pend[i].count;
    }
}

static void mark_dirty(st__metrics_t *m, st__mseries_t *se)
{
    if (se->dirty) {
        return;
    }
    se->dirty = 1;
    if (m->ndirty == m->cdirty) {
        m->cdirty = m->cdirty ? m->cdirty * 2 : 1024;
        m->dirty = wf_realloc(m->dirty, m->cdirty * sizeof(*m->dirty));
    }
    m->dirty[m->ndirty++] = se;
}

/* Seal the open chunk into the pending list and start a new one. */
static int head_cut(st__metrics_t *m, st__mseries_t *se)
{
    size_t len;
    const uint8_t *bytes = st_chunk_enc_bytes(&se->head, &len);
    wf_buf_t out = WF_BUF_INIT, tsb = WF_BUF_INIT;
    int rc = st_chunk_seal_split(bytes, len, &tsb, &out);
    if (rc != 0) {
        wf_buf_free(&out);
        wf_buf_free(&tsb);
        return rc;
    }
    if (se->npend == se->cpend) {
        se->cpend = se->cpend ? se->cpend * 2 : 2;
        se->pend = wf_realloc(se->pend, se->cpend * sizeof(*se->pend));
    }
    st__pchunk_t *p = &se->pend[se->npend++];
    p->mint = se->head.mint;
    p->maxt = se->head.maxt;
    p->count = se->head.count;
    p->data = wf_buf_detach(&out, &p->len);
    p->ts = wf_buf_detach(&tsb, &p->ts_len);
    st_chunk_enc_free(&se->head);
    st_chunk_enc_init(&se->head);
    mark_dirty(m, se);
    return 0;
}

/*
 * Append one sample to the head. Samples at or before the series' newest one are skipped:
 * commit never passes them (st_batch_add refused them) and replay relies on it.
 */
static int head_append(st__metrics_t *m, st__mseries_t *se, int64_t ts, uint64_t vbits)
{
    if (se->has_last && ts <= se->last_ts) {
        return 0;
    }
    /* the cut rule: see the top comment (ts >= 0 here, so / is the window number) */
    if (se->head.count > 0 &&
        (se->head.count >= ST_CHUNK_MAX_SAMPLES ||
         ts / ST_CHUNK_SPAN_MS != se->head.mint / ST_CHUNK_SPAN_MS ||
         ST_VHDR_BYTES + (se->head.vbits + 7) / 8 + ST_SAMPLE_MAX_BYTES > m->chunk_max_bytes)) {
        int rc = head_cut(m, se);
        if (rc != 0) {
            return rc;
        }
    }
    int rc = st_chunk_enc_append(&se->head, ts, double_of(vbits));
    if (rc != 0) {
        return rc;
    }
    if (ts < se->min_t) {
        se->min_t = ts;
    }
    se->last_ts = ts;
    se->last_v = vbits;
    se->has_last = 1;
    m->head_samples++;
    m->samples_total++;
    mark_dirty(m, se);
    return 0;
}

/* ---- symbols --------------------------------------------------------------------------- */

static int step_done(sqlite3_stmt *st);

static uint64_t sym_hash(const char *p, size_t len)
{
    uint64_t h = wf_hash64((const uint8_t *)p, len, 0);
    return h ? h : 1;
}

static sym_t *sym_find(const st__metrics_t *m, const char *p, size_t len, uint64_t h)
{
    uint64_t *v = st__map_get(&m->sym_by_hash, h);
    for (sym_t *y = v ? (sym_t *)(uintptr_t)*v : NULL; y != NULL; y = y->next) {
        if (y->len == len && memcmp(y->s, p, len) == 0) {
            return y;
        }
    }
    return NULL;
}

static sym_t *sym_insert(st__metrics_t *m, uint64_t id, const char *p, size_t len, uint64_t h)
{
    sym_t *y = wf_malloc(sizeof(*y) + (len ? len : 1));
    y->id = id;
    y->hash = h;
    y->len = len;
    if (len > 0) {
        memcpy(y->s, p, len);
    }
    uint64_t *v = st__map_get(&m->sym_by_hash, h);
    y->next = v ? (sym_t *)(uintptr_t)*v : NULL;
    st__map_put(&m->sym_by_hash, h, (uint64_t)(uintptr_t)y);
    if (id >= m->next_sym) {
        m->next_sym = id + 1;
    }
    return y;
}

/* Symbol id of a string, inserting a new symbol inside the caller's transaction. */
static int sym_get(st__metrics_t *m, wf_str_t str, uint64_t *id)
{
    uint64_t h = sym_hash(str.p, str.len);
    sym_t *y = sym_find(m, str.p, str.len, h);
    if (y != NULL) {
        *id = y->id;
        return 0;
    }
    uint64_t nid = m->next_sym ? m->next_sym : 1;
    sqlite3_bind_int64(m->ins_sym, 1, (int64_t)nid);
    sqlite3_bind_blob(m->ins_sym, 2, str.p, (int)str.len, SQLITE_STATIC);
    int rc = step_done(m->ins_sym);
    if (rc != 0) {
        return rc;
    }
    y = sym_insert(m, nid, str.p, str.len, h);
    if (m->nsym_added == m->csym_added) {
        m->csym_added = m->csym_added ? m->csym_added * 2 : 64;
        m->sym_added = wf_realloc(m->sym_added, m->csym_added * sizeof(*m->sym_added));
    }
    m->sym_added[m->nsym_added++] = y;
    *id = nid;
    return 0;
}

/* The transaction that created the symbols in sym_added rolled back: forget them. */
static void sym_rollback(st__metrics_t *m)
{
    for (size_t i = m->nsym_added; i-- > 0;) {
        sym_t *y = m->sym_added[i];
        uint64_t *v = st__map_get(&m->sym_by_hash, y->hash);
        WF_ASSERT(v != NULL && (sym_t *)(uintptr_t)*v == y);
        if (y->next != NULL) {
            *v = (uint64_t)(uintptr_t)y->next;
        } else {
            st__map_del(&m->sym_by_hash, y->hash);
        }
        m->next_sym = y->id;
        wf_free(y);
    }
    m->nsym_added = 0;
}

/* The series row's labels: symbol ids of the canonical encoding's names and values. */
static int series_row(st__metrics_t *m, const st__mseries_t *se)
{
    wf_buf_reset(&m->row);
    wf_rd_t r;
    wf_rd_init(&r, se->lbl, se->lbl_len);
    wf_str_t name, value;
    int rc = 0;
    while (rc == 0 && st__labels_next(&r, &name, &value) == 1) {
        uint64_t a = 0, b = 0;
        rc = sym_get(m, name, &a);
        if (rc == 0) {
            rc = sym_get(m, value, &b);
        }
        wf_buf_put_uvarint(&m->row, a);
        wf_buf_put_uvarint(&m->row, b);
    }
    return rc;
}

/* Load every symbol into the writer's map and an id-indexed array for decoding series rows. */
static int load_symbols(st_store_t *s, st__metrics_t *m, sym_t ***by_id, size_t *n)
{
    sqlite3_stmt *st = NULL;
    int rc =
        sqlite3_prepare_v2(s->db.writer, "SELECT id, s FROM symbols ORDER BY id", -1, &st, NULL);
    if (rc != SQLITE_OK) {
        return wf_sqlite_err(rc);
    }
    size_t cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        const char *p = sqlite3_column_blob(st, 1);
        size_t len = (size_t)sqlite3_column_bytes(st, 1);
        if (id <= 0 || id > (int64_t)1 << 40) {
            sqlite3_finalize(st);
            return WF_E_CORRUPT;
        }
        if ((size_t)id >= cap) {
            size_t ncap = cap ? cap : 1024;
            while (ncap <= (size_t)id) {
                ncap *= 2;
            }
            *by_id = wf_realloc(*by_id, ncap * sizeof(**by_id));
            memset(*by_id + cap, 0, (ncap - cap) * sizeof(**by_id));
            cap = ncap;
        }
        (*by_id)[id] = sym_insert(m, (uint64_t)id, p, len, sym_hash(p, len));
        if ((size_t)id >= *n) {
            *n = (size_t)id + 1;
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : wf_sqlite_err(rc);
}

/* Rebuild a canonical label encoding from a series row; WF_E_CORRUPT on unknown symbols. */
static int row_decode(const uint8_t *row, size_t len, sym_t *const *by_id, size_t nsym,
                      wf_buf_t *out)
{
    wf_rd_t r;
    wf_rd_init(&r, row, len);
    wf_buf_reset(out);
    while (wf_rd_left(&r) > 0) {
        uint64_t id;
        for (int k = 0; k < 2; k++) {
            if (wf_rd_uvarint(&r, &id) != 0 || id >= nsym || by_id[id] == NULL) {
                return WF_E_CORRUPT;
            }
            wf_buf_put_uvarint(out, by_id[id]->len);
            wf_buf_append(out, by_id[id]->s, by_id[id]->len);
        }
    }
    return out->len > 0 ? 0 : WF_E_CORRUPT;
}

/* ---- schema and open ------------------------------------------------------------------- */

static const char *const schema =
    "CREATE TABLE IF NOT EXISTS series(id INTEGER PRIMARY KEY, labels BLOB NOT NULL,"
    " mint INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS chunks(series_id INTEGER NOT NULL, mint INTEGER NOT NULL,"
    " maxt INTEGER NOT NULL, data BLOB NOT NULL, ts_id INTEGER,"
    " PRIMARY KEY(series_id, mint)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS ts_columns(id INTEGER PRIMARY KEY, hash INTEGER NOT NULL,"
    " maxt INTEGER NOT NULL, data BLOB NOT NULL);"
    "CREATE INDEX IF NOT EXISTS ts_columns_hash ON ts_columns(hash);"
    "CREATE TABLE IF NOT EXISTS head_chunks(series_id INTEGER PRIMARY KEY, data BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS metadata(metric TEXT PRIMARY KEY, type INTEGER NOT NULL,"
    " help TEXT NOT NULL, unit TEXT NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS symbols(id INTEGER PRIMARY KEY, s BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS metrics_state(key TEXT PRIMARY KEY, value INTEGER NOT NULL)"
    " WITHOUT ROWID;";

static int prepare_all(st_store_t *s, st__metrics_t *m)
{
    int rc = st__db_prepare(&s->db, "INSERT INTO series(id, labels, mint) VALUES(?, ?, ?)",
                            &m->ins_series);
    if (rc == 0) {
        rc = st__db_prepare(&s->db,
                            "INSERT OR REPLACE INTO chunks(series_id, mint, maxt, data, ts_id)"
                            " VALUES(?, ?, ?, ?, ?)",
                            &m->ins_chunk);
    }
    if (rc == 0) {
        rc = st__db_prepare(&s->db, "SELECT id, data FROM ts_columns WHERE hash = ?",
                            &m->find_tscol);
    }
    if (rc == 0) {
        rc = st__db_prepare(&s->db, "INSERT INTO ts_columns(hash, maxt, data) VALUES(?, ?, ?)",
                            &m->ins_tscol);
    }
    if (rc == 0) {
        rc = st__db_prepare(&s->db,
                            "INSERT OR REPLACE INTO head_chunks(series_id, data) VALUES(?, ?)",
                            &m->put_head);
    }
    if (rc == 0) {
        rc = st__db_prepare(&s->db, "DELETE FROM head_chunks WHERE series_id = ?", &m->del_head);
    }
    if (rc == 0) {
        rc = st__db_prepare(&s->db,
                            "INSERT OR REPLACE INTO metadata(metric, type, help, unit)"
                            " VALUES(?, ?, ?, ?)",
                            &m->ins_meta);
    }
    if (rc == 0) {
        rc = st__db_prepare(&s->db, "INSERT OR REPLACE INTO metrics_state(key, value) VALUES(?, ?)",
                            &m->put_state);
    }
    if (rc == 0) {
        rc = st__db_prepare(&s->db, "INSERT INTO symbols(id, s) VALUES(?, ?)", &m->ins_sym);
    }
    return rc;
}

static int step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE) {
        WF_LOG(WF_ERROR, "store", "metrics statement failed", "err=\"%s\"",
               sqlite3_errmsg(sqlite3_db_handle(st)));
        return wf_sqlite_err(rc);
    }
    return 0;
}

/* Restore the open chunk of a series from its stored bytes (sealed or encoder form). */
static int load_head(st__metrics_t *m, st__mseries_t *se, const uint8_t *data, size_t len)
{
    st_chunk_iter_t it;
    int rc = st_chunk_iter_init(&it, data, len);
    if (rc != 0) {
        return rc;
    }
    int64_t ts;
    double v;
    while ((rc = st_chunk_iter_next(&it, &ts, &v)) == 1) {
        if ((rc = head_append(m, se, ts, bits_of(v))) != 0) {
            break;
        }
    }
    st_chunk_iter_free(&it);
    m->samples_total = 0;
    return rc < 0 ? rc : 0;
}

/* Newest sample of a series whose head is empty: the last sample of its newest sealed chunk. */
static int load_last_sealed(st_store_t *s, st__mseries_t *se)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db.writer,
                                "SELECT c.data, c.ts_id, t.data FROM chunks c"
                                " LEFT JOIN ts_columns t ON t.id = c.ts_id"
                                " WHERE c.series_id = ? ORDER BY c.mint DESC LIMIT 1",
                                -1, &st, NULL);
    if (rc != SQLITE_OK) {
        return wf_sqlite_err(rc);
    }
    sqlite3_bind_int64(st, 1, (int64_t)se->id);
    int out = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        st_chunk_iter_t it;
        out = st__chunk_row_iter(&it, st, 0);
        if (out == 0) {
            int64_t ts;
            double v;
            while ((out = st_chunk_iter_next(&it, &ts, &v)) == 1) {
                se->last_ts = ts;
                se->last_v = bits_of(v);
                se->has_last = 1;
            }
            st_chunk_iter_free(&it);
        }
    }
    sqlite3_finalize(st);
    return out < 0 ? out : 0;
}

static int load_series(st_store_t *s, st__metrics_t *m)
{
    sym_t **by_id = NULL;
    size_t nsym = 0;
    wf_buf_t enc = WF_BUF_INIT;
    sqlite3_stmt *st = NULL;
    int rc = load_symbols(s, m, &by_id, &nsym);
    if (rc != 0) {
        goto out;
    }
    rc = sqlite3_prepare_v2(s->db.writer, "SELECT id, labels, mint FROM series ORDER BY id", -1,
                            &st, NULL);
    if (rc != SQLITE_OK) {
        rc = wf_sqlite_err(rc);
        goto out;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        rc = row_decode(sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1), by_id,
                        nsym, &enc);
        if (rc != 0 || st__labels_count(enc.data, enc.len) <= 0) {
            rc = WF_E_CORRUPT;
            goto out;
        }
        st__mseries_t *se = series_new((uint64_t)sqlite3_column_int64(st, 0), enc.data, enc.len,
                                       label_hash(enc.data, enc.len));
        se->min_t = sqlite3_column_int64(st, 2);
        series_adopt(m, se);
    }
    rc = rc == SQLITE_DONE ? 0 : wf_sqlite_err(rc);
out:
    sqlite3_finalize(st);
    wf_buf_free(&enc);
    wf_free(by_id);
    return rc;
}

static int load_state(st_store_t *s, st__metrics_t *m)
{
    sqlite3_stmt *st = NULL;
    int rc = load_series(s, m);
    if (rc != 0) {
        return rc;
    }
    rc = sqlite3_prepare_v2(s->db.writer, "SELECT series_id, data FROM head_chunks", -1, &st, NULL);
    if (rc != SQLITE_OK) {
        return wf_sqlite_err(rc);
    }
    int out = 0;
    while (out == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        st__mseries_t *se = st__series_by_id(m, (uint64_t)sqlite3_column_int64(st, 0));
        if (se != NULL) {
            int64_t min_t = se->min_t;
            out = load_head(m, se, sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1));
            se->min_t = min_t < se->min_t ? min_t : se->min_t;
        }
    }
    sqlite3_finalize(st);
    if (out != 0) {
        return out;
    }
    if (rc != SQLITE_DONE) {
        return wf_sqlite_err(rc);
    }
    for (size_t i = 0; i < m->idx.all.n; i++) {
        st__mseries_t *se = st__series_by_id(m, m->idx.all.ids[i]);
        if (!se->has_last && (rc = load_last_sealed(s, se)) != 0) {
            return rc;
        }
    }
    /*
     * Loading is not new data: nothing is dirty, except a series whose stored head was cut
     * while re-encoding it (a codec change); its pending chunk must reach the table.
     */
    size_t keep = 0;
    for (size_t i = 0; i < m->ndirty; i++) {
        if (m->dirty[i]->npend > 0) {
            m->dirty[keep++] = m->dirty[i];
        } else {
            m->dirty[i]->dirty = 0;
        }
    }
    m->ndirty = keep;
    rc = sqlite3_prepare_v2(
        s->db.writer, "SELECT value FROM metrics_state WHERE key = 'sealed_chunks'", -1, &st, NULL);
    if (rc != SQLITE_OK) {
        return wf_sqlite_err(rc);
    }
    if (sqlite3_step(st) == SQLITE_ROW) {
        m->sealed_chunks = (uint64_t)sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return 0;
}

int st__metrics_open(st_store_t *s)
{
    st__metrics_t *m = wf_calloc(1, sizeof(*m));
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    /* Readers arrive continuously; without this the writer could starve. */
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&m->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    m->next_id = 1;
    sqlite3_stmt *ps = NULL;
    int64_t page_size = 4096;
    if (sqlite3_prepare_v2(s->db.writer, "PRAGMA page_size", -1, &ps, NULL) == SQLITE_OK &&
        sqlite3_step(ps) == SQLITE_ROW) {
        page_size = sqlite3_column_int64(ps, 0);
    }
    sqlite3_finalize(ps);
    /*
     * A WITHOUT ROWID row larger than (usable - 12) * 64 / 255 - 23 bytes spills into overflow
     * pages, which wastes most of a page per chunk; keep a chunk's row below that (the other
     * columns and the record header take < 32 bytes).
     */
    m->chunk_max_bytes = (size_t)((page_size - 12) * 64 / 255 - 23 - 32);
    s->metrics = m;
    int rc = st__db_exec(&s->db, schema);
    if (rc == 0) {
        /* stores written before timestamp columns existed: every chunk keeps inline timestamps */
        if (sqlite3_prepare_v2(s->db.writer, "SELECT ts_id FROM chunks LIMIT 0", -1, &ps, NULL) !=
            SQLITE_OK) {
            rc = st__db_exec(&s->db, "ALTER TABLE chunks ADD COLUMN ts_id INTEGER");
        }
        sqlite3_finalize(ps);
    }
    if (rc == 0) {
        rc = prepare_all(s, m);
    }
    if (rc == 0) {
        rc = load_state(s, m);
    }
    m->last_retention = st__now_ms(s);
    return rc;
}

void st__metrics_close(st_store_t *s)
{
    st__metrics_t *m = s->metrics;
    if (m == NULL) {
        return;
    }
    /*
     * The log's rows are deleted at every flush and their pages reused by the next records, so
     * a running store carries up to FLUSH_LOG_BYTES of free pages; give them back at close so
     * the file at rest holds only data.
     */
    if (s->db.writer != NULL && !s->db.in_tx) {
        sqlite3_exec(s->db.writer, "PRAGMA incremental_vacuum", NULL, NULL, NULL);
    }
    for (size_t i = 0; i < m->idx.all.n; i++) {
        series_free(st__series_by_id(m, m->idx.all.ids[i]));
    }
    st__index_free(&m->idx);
    st__map_free(&m->by_id);
    st__map_free(&m->by_hash);
    st__map_free(&m->meta_seen);
    wf_free(m->dirty);
    if (m->spare != NULL) {
        st__map_free(&m->spare->newmap);
        wf_free(m->spare->ser);
        wf_free(m->spare->ts);
        wf_free(m->spare->v);
        wf_free(m->spare->news);
        wf_free(m->spare->meta);
        wf_free(m->spare->lbuf);
        wf_buf_free(&m->spare->enc);
        wf_free(m->spare);
    }
    wf_buf_free(&m->rec);
    wf_buf_free(&m->zrec);
    ZSTD_freeCCtx(m->zc);
    ZSTD_freeDCtx(m->zd);
    sqlite3_finalize(m->ins_series);
    sqlite3_finalize(m->ins_chunk);
    sqlite3_finalize(m->put_head);
    sqlite3_finalize(m->del_head);
    sqlite3_finalize(m->ins_meta);
    sqlite3_finalize(m->put_state);
    sqlite3_finalize(m->ins_sym);
    sqlite3_finalize(m->find_tscol);
    sqlite3_finalize(m->ins_tscol);
    for (size_t i = 0; i < m->sym_by_hash.cap; i++) {
        sym_t *y = m->sym_by_hash.keys[i] ? (sym_t *)(uintptr_t)m->sym_by_hash.vals[i] : NULL;
        while (y != NULL) {
            sym_t *next = y->next;
            wf_free(y);
            y = next;
        }
    }
    st__map_free(&m->sym_by_hash);
    wf_free(m->sym_added);
    wf_buf_free(&m->row);
    pthread_rwlock_destroy(&m->lock);
    wf_free(m);
    s->metrics = NULL;
}

void st__metrics_stats(st_store_t *s, st_stats_t *out)
{
    st__metrics_t *m = s->metrics;
    pthread_rwlock_rdlock(&m->lock);
    out->series = m->nseries;
    out->head_samples = m->head_samples;
    out->sealed_chunks = m->sealed_chunks;
    out->samples_total = m->samples_total;
    pthread_rwlock_unlock(&m->lock);
}

/* ---- batches --------------------------------------------------------------------------- */

int st_batch_begin(st_store_t *s, st_batch_t **out)
{
    *out = NULL;
    if (s == NULL) {
        return WF_E_INVAL;
    }
    if (s->failed) {
        return ST_E_CLOSED;
    }
    st__metrics_t *m = s->metrics;
    if (m->open_batch) {
        return WF_E_INVAL;
    }
    st_batch_t *b = m->spare;
    if (b != NULL) {
        m->spare = NULL;
    } else {
        b = wf_calloc(1, sizeof(*b));
    }
    b->s = s;
    b->gen = ++m->gen;
    b->now = st__now_ms(s);
    m->open_batch = 1;
    *out = b;
    return 0;
}

static void meta_clear(st_batch_t *b)
{
    for (size_t i = 0; i < b->nmeta; i++) {
        wf_free(b->meta[i].metric);
        wf_free(b->meta[i].help);
        wf_free(b->meta[i].unit);
    }
    b->nmeta = 0;
}

/* End a batch: free pending series it still owns and keep its buffers for the next one. */
static void batch_release(st_batch_t *b)
{
    st__metrics_t *m = b->s->metrics;
    for (size_t i = 0; i < b->nnew; i++) {
        series_free(b->news[i]);
    }
    b->nnew = 0;
    meta_clear(b);
    b->n = 0;
    b->bytes = 0;
    if (b->newmap.n > 0) {
        memset(b->newmap.keys, 0, b->newmap.cap * sizeof(uint64_t));
        b->newmap.n = 0;
    }
    /* Do not keep the buffers of a huge batch around forever. */
    if (b->cap > (1u << 20)) {
        wf_free(b->ser);
        wf_free(b->ts);
        wf_free(b->v);
        b->ser = NULL;
        b->ts = NULL;
        b->v = NULL;
        b->cap = 0;
    }
    if (b->newmap.cap > (1u << 16)) {
        st__map_free(&b->newmap);
    }
    m->open_batch = 0;
    if (m->spare == NULL) {
        m->spare = b;
        return;
    }
    st__map_free(&b->newmap);
    wf_free(b->ser);
    wf_free(b->ts);
    wf_free(b->v);
    wf_free(b->news);
    wf_free(b->meta);
    wf_free(b->lbuf);
    wf_buf_free(&b->enc);
    wf_free(b);
}

void st_batch_abort(st_batch_t *b)
{
    if (b != NULL) {
        batch_release(b);
    }
}

static st__mseries_t *find_series(st_batch_t *b, const uint8_t *enc, size_t len, uint64_t hash)
{
    st__mseries_t *se = chain_find(&b->s->metrics->by_hash, hash, enc, len);
    if (se == NULL && b->newmap.n > 0) {
        se = chain_find(&b->newmap, hash, enc, len);
    }
    return se;
}

/*
 * Check ts/v against the series' newest sample and the store's time bounds, then queue the
 * sample. se is NULL for a series this call creates (from b->enc / hash); *out receives the
 * series. Returns 0 (also for an idempotent resend, which queues nothing) or the sample's error.
 */
static int batch_append(st_batch_t *b, st__mseries_t *se, uint64_t hash, int64_t ts_ms, double v,
                        st__mseries_t **out)
{
    st_store_t *s = b->s;
    st__metrics_t *m = s->metrics;
    const st_options_t *o = &s->opt;
    if (ts_ms < 0) {
        return ST_E_TIMESTAMP;
    }
    if (o->metrics_retention_ms > 0 && ts_ms < b->now - o->metrics_retention_ms) {
        return ST_E_TOO_OLD;
    }
    if (ts_ms > b->now + o->max_future_ms) {
        return ST_E_TOO_NEW;
    }
    uint64_t vb = bits_of(v);
    size_t cost = SAMPLE_MAX_BYTES + (se == NULL ? b->enc.len + SAMPLE_MAX_BYTES : 0);
    if (cost > b->s->opt.max_batch_bytes - b->bytes) {
        return ST_E_BATCH_LIMIT;
    }
    if (se != NULL) {
        int have = 1;
        int64_t nts;
        uint64_t nv;
        if (se->b_gen == b->gen) {
            nts = se->b_ts;
            nv = se->b_v;
        } else if (se->has_last) {
            nts = se->last_ts;
            nv = se->last_v;
        } else {
            have = 0;
        }
        if (have && ts_ms <= nts) {
            if (ts_ms < nts) {
                return ST_E_OUT_OF_ORDER;
            }
            /* Same timestamp: a resend of the same sample is accepted and stored once. */
            *out = se;
            return vb == nv ? 0 : ST_E_DUPLICATE;
        }
    } else {
        se = series_new(m->next_id++, b->enc.data, b->enc.len, hash);
        se->min_t = ts_ms;
        if (b->nnew == b->cnew) {
            b->cnew = b->cnew ? b->cnew * 2 : 64;
            b->news = wf_realloc(b->news, b->cnew * sizeof(*b->news));
        }
        b->news[b->nnew++] = se;
        chain_add(&b->newmap, se);
    }
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 1024;
        b->ser = wf_realloc(b->ser, b->cap * sizeof(*b->ser));
        b->ts = wf_realloc(b->ts, b->cap * sizeof(*b->ts));
        b->v = wf_realloc(b->v, b->cap * sizeof(*b->v));
    }
    b->ser[b->n] = se;
    b->ts[b->n] = ts_ms;
    b->v[b->n] = vb;
    b->n++;
    b->bytes += cost;
    se->b_gen = b->gen;
    se->b_ts = ts_ms;
    se->b_v = vb;
    *out = se;
    return 0;
}

int st_batch_add_get_ref(st_batch_t *b, const st_label_t *labels, size_t nlabels, int64_t ts_ms,
                         double v, st_ref_t *ref)
{
    const st_options_t *o = &b->s->opt;
    if (b->n >= o->max_batch_samples) {
        return ST_E_BATCH_LIMIT;
    }
    if (nlabels > o->max_labels) {
        return ST_E_LABEL_LIMIT;
    }
    if (nlabels > 0 && labels == NULL) {
        return WF_E_INVAL;
    }
    st__mseries_t *se = NULL;
    uint64_t hash = 0;
    wf_buf_reset(&b->enc);
    if (st__labels_encode_if_sorted(labels, nlabels, &b->enc)) {
        hash = label_hash(b->enc.data, b->enc.len);
        se = find_series(b, b->enc.data, b->enc.len, hash);
    }
    if (se == NULL) {
        if (b->lcap < nlabels) {
            b->lcap = nlabels;
            b->lbuf = wf_realloc(b->lbuf, b->lcap * sizeof(*b->lbuf));
        }
        /*
         * Sort and look up before validating: a label set equal to a known series' was
         * validated when that series was created. Input that had empty values dropped is
         * validated anyway, because a duplicate name may hide among them.
         */
        size_t k = 0;
        bool dropped = st__labels_sort(labels, nlabels, b->lbuf, &k);
        wf_buf_reset(&b->enc);
        if (k > 0) {
            st__labels_encode(b->lbuf, k, &b->enc);
            hash = label_hash(b->enc.data, b->enc.len);
            se = find_series(b, b->enc.data, b->enc.len, hash);
        }
        if (se == NULL || dropped) {
            int rc = st__labels_normalize(o, labels, nlabels, b->lbuf, &k);
            if (rc != 0) {
                return rc;
            }
        }
    }
    st__mseries_t *out = NULL;
    int rc = batch_append(b, se, hash, ts_ms, v, &out);
    if (rc == 0 && ref != NULL) {
        *ref = out->id;
    }
    return rc;
}

int st_batch_add(st_batch_t *b, const st_label_t *labels, size_t nlabels, int64_t ts_ms, double v)
{
    return st_batch_add_get_ref(b, labels, nlabels, ts_ms, v, NULL);
}

int st_batch_add_ref(st_batch_t *b, st_ref_t ref, int64_t ts_ms, double v)
{
    if (b->n >= b->s->opt.max_batch_samples) {
        return ST_E_BATCH_LIMIT;
    }
    /* The writer thread owns by_id's changes, so it reads the map without the lock. */
    st__mseries_t *se = st__series_by_id(b->s->metrics, ref);
    if (se == NULL) {
        return ST_E_UNKNOWN_REF;
    }
    st__mseries_t *out = NULL;
    return batch_append(b, se, se->hash, ts_ms, v, &out);
}

static bool metric_name_valid(wf_str_t n)
{
    if (n.len == 0) {
        return false;
    }
    for (size_t i = 0; i < n.len; i++) {
        unsigned char c = (unsigned char)n.p[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                  (i > 0 && c >= '0' && c <= '9');
        if (!ok) {
            return false;
        }
    }
    return true;
}

int st_batch_set_metadata(st_batch_t *b, wf_str_t metric, st_metric_type_t type, wf_str_t help,
                          wf_str_t unit)
{
    if (!metric_name_valid(metric) || metric.len > b->s->opt.max_label_value_len ||
        (int)type < ST_METRIC_UNKNOWN || type > ST_METRIC_STATESET || help.len > META_MAX_LEN ||
        unit.len > META_MAX_LEN || (help.len > 0 && help.p == NULL) ||
        (unit.len > 0 && unit.p == NULL) || !wf_utf8_valid(help.p, help.len) ||
        !wf_utf8_valid(unit.p, unit.len)) {
        return ST_E_METADATA;
    }
    size_t cost = metric.len + help.len + unit.len + SAMPLE_MAX_BYTES;
    if (b->nmeta >= b->s->opt.max_batch_samples || cost > b->s->opt.max_batch_bytes - b->bytes) {
        return ST_E_BATCH_LIMIT;
    }
    b->bytes += cost;
    if (b->nmeta == b->cmeta) {
        b->cmeta = b->cmeta ? b->cmeta * 2 : 16;
        b->meta = wf_realloc(b->meta, b->cmeta * sizeof(*b->meta));
    }
    meta_t *e = &b->meta[b->nmeta++];
    e->metric = wf_strndup(metric.p, metric.len);
    e->mlen = metric.len;
    e->help = wf_strndup(help.len ? help.p : "", help.len);
    e->hlen = help.len;
    e->unit = wf_strndup(unit.len ? unit.p : "", unit.len);
    e->ulen = unit.len;
    e->type = (int)type;
    return 0;
}

int st_batch_each(st_batch_t *b, st_batch_sample_cb fn, void *arg)
{
    st_label_t *l = NULL;
    size_t cap = 0;
    int rc = 0;
    for (size_t i = 0; i < b->n && rc == 0; i++) {
        const st__mseries_t *se = b->ser[i];
        wf_rd_t r;
        wf_rd_init(&r, se->lbl, se->lbl_len);
        size_t n = 0;
        wf_str_t name, value;
        int more;
        while ((more = st__labels_next(&r, &name, &value)) == 1) {
            if (n == cap) {
                cap = cap ? cap * 2 : 32;
                l = wf_realloc(l, cap * sizeof(*l));
            }
            l[n++] = (st_label_t){name, value};
        }
        rc = more < 0 ? more : fn(arg, se->id, l, n, b->ts[i], double_of(b->v[i]));
    }
    wf_free(l);
    return rc;
}

/* ---- log records ----------------------------------------------------------------------- */

/*
 * Record body: uvarint nnew, then per new series uvarint id, uvarint len, labels; uvarint n,
 * then per sample svarint(id - previous id), svarint(ts - previous ts), value. A value that is
 * a finite integer below 2^53 in magnitude (and not -0.0) is uvarint(zigzag(i) << 1); any
 * other value is uvarint(1) and its 8 bytes little-endian, so every bit pattern survives.
 */
static void encode_body(const st_batch_t *b, wf_buf_t *out)
{
    wf_buf_put_uvarint(out, b->nnew);
    for (size_t i = 0; i < b->nnew; i++) {
        wf_buf_put_uvarint(out, b->news[i]->id);
        wf_buf_put_uvarint(out, b->news[i]->lbl_len);
        wf_buf_append(out, b->news[i]->lbl, b->news[i]->lbl_len);
    }
    wf_buf_put_uvarint(out, b->n);
    uint64_t pid = 0;
    int64_t pts = 0;
    for (size_t i = 0; i < b->n; i++) {
        uint8_t *p = wf_buf_reserve(out, 40);
        uint8_t *q = p;
        uint64_t id = b->ser[i]->id;
        q += wf_uvarint_put(q, wf_zigzag_enc((int64_t)(id - pid)));
        q += wf_uvarint_put(q, wf_zigzag_enc(b->ts[i] - pts));
        pid = id;
        pts = b->ts[i];
        double d = double_of(b->v[i]);
        if (isfinite(d) && fabs(d) < 9007199254740992.0 && d == (double)(int64_t)d &&
            !(d == 0 && signbit(d))) {
            q += wf_uvarint_put(q, wf_zigzag_enc((int64_t)d) << 1);
        } else {
            *q++ = 1;
            for (int k = 0; k < 8; k++) {
                *q++ = (uint8_t)(b->v[i] >> (8 * k));
            }
        }
        out->len += (size_t)(q - p);
    }
}

static void encode_record(st__metrics_t *m, const st_batch_t *b)
{
    wf_buf_reset(&m->rec);
    wf_buf_reset(&m->zrec);
    encode_body(b, &m->zrec);
    wf_buf_putc(&m->rec, LOG_VERSION);
    if (m->zrec.len >= 512) {
        if (m->zc == NULL) {
            m->zc = ZSTD_createCCtx();
        }
        size_t bound = ZSTD_compressBound(m->zrec.len);
        wf_buf_putc(&m->rec, LOG_F_ZSTD);
        wf_buf_put_uvarint(&m->rec, m->zrec.len);
        size_t hdr = m->rec.len;
        uint8_t *dst = wf_buf_reserve(&m->rec, bound);
        size_t z = ZSTD_compressCCtx(m->zc, dst, bound, m->zrec.data, m->zrec.len, 1);
        if (!ZSTD_isError(z) && z < m->zrec.len - m->zrec.len / 8) {
            m->rec.len += z;
            return;
        }
        m->rec.len = hdr;
        m->rec.data[1] = 0;
        m->rec.len = 2;
    } else {
        wf_buf_putc(&m->rec, 0);
    }
    wf_buf_append(&m->rec, m->zrec.data, m->zrec.len);
}

/* ---- commit ---------------------------------------------------------------------------- */

static int write_tx(st_store_t *s, st_batch_t *b, int64_t *seq)
{
    st__metrics_t *m = s->metrics;
    int rc = st__db_begin(&s->db);
    if (rc != 0) {
        return rc;
    }
    for (size_t i = 0; i < b->nnew && rc == 0; i++) {
        st__mseries_t *se = b->news[i];
        rc = series_row(m, se);
        if (rc != 0) {
            break;
        }
        sqlite3_bind_int64(m->ins_series, 1, (int64_t)se->id);
        sqlite3_bind_blob(m->ins_series, 2, m->row.data, (int)m->row.len, SQLITE_STATIC);
        sqlite3_bind_int64(m->ins_series, 3, se->min_t);
        rc = step_done(m->ins_series);
    }
    for (size_t i = 0; i < b->nmeta && rc == 0; i++) {
        meta_t *e = &b->meta[i];
        sqlite3_bind_text(m->ins_meta, 1, e->metric, (int)e->mlen, SQLITE_STATIC);
        sqlite3_bind_int(m->ins_meta, 2, e->type);
        sqlite3_bind_text(m->ins_meta, 3, e->help, (int)e->hlen, SQLITE_STATIC);
        sqlite3_bind_text(m->ins_meta, 4, e->unit, (int)e->ulen, SQLITE_STATIC);
        rc = step_done(m->ins_meta);
    }
    if (rc == 0 && (b->n > 0 || b->nnew > 0)) {
        encode_record(m, b);
        rc = st__log_append(&s->db, ST__LOG_SAMPLES, m->rec.data, m->rec.len, seq);
    }
    if (rc == 0) {
        rc = st__db_commit(&s->db);
    } else {
        st__db_rollback(&s->db);
    }
    if (rc != 0) {
        sym_rollback(m);
    }
    m->nsym_added = 0;
    return rc;
}

static uint64_t meta_hash(const meta_t *e)
{
    uint64_t h = wf_hash64(e->help, e->hlen, (uint64_t)e->type);
    h = wf_hash64(e->unit, e->ulen, h);
    return h ? h : 1;
}

int st_batch_commit(st_batch_t *b)
{
    st_store_t *s = b->s;
    st__metrics_t *m = s->metrics;
    int rc = 0;
    if (s->failed) {
        rc = ST_E_CLOSED;
        goto out;
    }
    /* Metadata that did not change since it was last written is not written again. */
    size_t k = 0;
    for (size_t i = 0; i < b->nmeta; i++) {
        meta_t *e = &b->meta[i];
        uint64_t key = wf_hash64(e->metric, e->mlen, 0) | 1;
        uint64_t *seen = st__map_get(&m->meta_seen, key);
        bool later = false;
        for (size_t j = i + 1; j < b->nmeta && !later; j++) {
            later =
                b->meta[j].mlen == e->mlen && memcmp(b->meta[j].metric, e->metric, e->mlen) == 0;
        }
        if ((seen != NULL && *seen == meta_hash(e)) || later) {
            wf_free(e->metric);
            wf_free(e->help);
            wf_free(e->unit);
            continue;
        }
        b->meta[k++] = *e;
    }
    b->nmeta = k;
    if (b->n == 0 && b->nmeta == 0 && b->nnew == 0) {
        goto out;
    }
    int64_t seq = 0;
    rc = write_tx(s, b, &seq);
    if (rc != 0) {
        WF_LOG(WF_WARN, "store", "batch commit failed", "err=\"%s\"", st_strerror(rc));
        goto out;
    }
    for (size_t i = 0; i < b->nmeta; i++) {
        st__map_put(&m->meta_seen, wf_hash64(b->meta[i].metric, b->meta[i].mlen, 0) | 1,
                    meta_hash(&b->meta[i]));
    }
    pthread_rwlock_wrlock(&m->lock);
    for (size_t i = 0; i < b->nnew; i++) {
        series_adopt(m, b->news[i]);
    }
    b->nnew = 0;
    int arc = 0;
    for (size_t i = 0; i < b->n && arc == 0; i++) {
        arc = head_append(m, b->ser[i], b->ts[i], b->v[i]);
    }
    if (seq > m->last_seq) {
        m->last_seq = seq;
    }
    pthread_rwlock_unlock(&m->lock);
    if (arc != 0) {
        /* Durable in the log but not in memory: reads would miss data until a reopen. */
        WF_LOG(WF_ERROR, "store", "applying a committed batch failed; store needs a reopen",
               "err=\"%s\"", st_strerror(arc));
        s->failed = 1;
        rc = arc;
        goto out;
    }
    if (b->n > 0) {
        m->log_bytes += m->rec.len;
        m->log_records++;
    }
    if (m->log_bytes >= FLUSH_LOG_BYTES || m->log_records >= FLUSH_LOG_RECORDS) {
        int frc = st__metrics_flush(s);
        if (frc != 0) {
            WF_LOG(WF_WARN, "store", "automatic flush failed; the log keeps the data", "err=\"%s\"",
                   st_strerror(frc));
        }
    }
    int64_t now = st__now_ms(s);
    if (s->opt.metrics_retention_ms > 0 && now - m->last_retention >= RETENTION_EVERY_MS) {
        m->open_batch = 0;
        int rrc = st__metrics_retention(s, now - s->opt.metrics_retention_ms);
        if (rrc != 0) {
            WF_LOG(WF_WARN, "store", "periodic retention failed", "err=\"%s\"", st_strerror(rrc));
        }
    }
out:
    batch_release(b);
    return rc;
}

/* ---- replay ---------------------------------------------------------------------------- */

int st__metrics_replay(st_store_t *s, int64_t seq, const void *payload, size_t len)
{
    st__metrics_t *m = s->metrics;
    wf_rd_t r;
    wf_rd_init(&r, payload, len);
    uint8_t ver, flags;
    if (wf_rd_u8(&r, &ver) != 0 || ver != LOG_VERSION || wf_rd_u8(&r, &flags) != 0) {
        return WF_E_CORRUPT;
    }
    int rc = 0;
    if (flags & LOG_F_ZSTD) {
        uint64_t raw;
        if (wf_rd_uvarint(&r, &raw) != 0 || raw > LOG_MAX_RAW) {
            return WF_E_CORRUPT;
        }
        if (m->zd == NULL) {
            m->zd = ZSTD_createDCtx();
        }
        wf_buf_reset(&m->zrec);
        uint8_t *dst = wf_buf_reserve(&m->zrec, raw ? raw : 1);
        size_t got = ZSTD_decompressDCtx(m->zd, dst, raw, r.p, wf_rd_left(&r));
        if (ZSTD_isError(got) || got != raw) {
            return WF_E_CORRUPT;
        }
        m->zrec.len = raw;
        wf_rd_init(&r, m->zrec.data, raw);
    }
    uint64_t nnew, n;
    if (wf_rd_uvarint(&r, &nnew) != 0) {
        return WF_E_CORRUPT;
    }
    pthread_rwlock_wrlock(&m->lock);
    for (uint64_t i = 0; i < nnew; i++) {
        uint64_t id, l;
        const uint8_t *lbl;
        if (wf_rd_uvarint(&r, &id) != 0 || id == 0 || wf_rd_uvarint(&r, &l) != 0 ||
            l > wf_rd_left(&r) || wf_rd_bytes(&r, l, &lbl) != 0 || st__labels_count(lbl, l) <= 0) {
            rc = WF_E_CORRUPT;
            goto out;
        }
        if (st__series_by_id(m, id) == NULL) {
            uint64_t h = label_hash(lbl, l);
            if (chain_find(&m->by_hash, h, lbl, l) != NULL) {
                rc = WF_E_CORRUPT;
                goto out;
            }
            series_adopt(m, series_new(id, lbl, l, h));
        }
    }
    if (wf_rd_uvarint(&r, &n) != 0) {
        rc = WF_E_CORRUPT;
        goto out;
    }
    uint64_t id = 0;
    int64_t ts = 0;
    /* Replayed samples were appended before this open; samples_total counts new appends. */
    uint64_t appended = m->samples_total;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t did, dts, vv, bits = 0;
        if (wf_rd_uvarint(&r, &did) != 0 || wf_rd_uvarint(&r, &dts) != 0 ||
            wf_rd_uvarint(&r, &vv) != 0) {
            rc = WF_E_CORRUPT;
            goto out;
        }
        id += (uint64_t)wf_zigzag_dec(did);
        if (__builtin_add_overflow(ts, wf_zigzag_dec(dts), &ts)) {
            rc = WF_E_CORRUPT;
            goto out;
        }
        if (vv == 1) {
            if (wf_rd_u64le(&r, &bits) != 0) {
                rc = WF_E_CORRUPT;
                goto out;
            }
        } else if ((vv & 1) == 0) {
            bits = bits_of((double)wf_zigzag_dec(vv >> 1));
        } else {
            rc = WF_E_CORRUPT;
            goto out;
        }
        st__mseries_t *se = id ? st__series_by_id(m, id) : NULL;
        if (se == NULL || ts < 0) {
            rc = WF_E_CORRUPT;
            goto out;
        }
        if ((rc = head_append(m, se, ts, bits)) != 0) {
            goto out;
        }
    }
    m->samples_total = appended;
    if (wf_rd_left(&r) != 0) {
        rc = WF_E_CORRUPT;
        goto out;
    }
    if (seq > m->last_seq) {
        m->last_seq = seq;
    }
    m->log_bytes += len;
    m->log_records++;
out:
    pthread_rwlock_unlock(&m->lock);
    return rc;
}

/* ---- flush ----------------------------------------------------------------------------- */

static int put_state(st__metrics_t *m, const char *key, int64_t v)
{
    sqlite3_bind_text(m->put_state, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(m->put_state, 2, v);
    return step_done(m->put_state);
}

/* A timestamp column that the flush in progress wrote or found. */
typedef struct {
    int64_t id;
    const uint8_t *data; /* a pending chunk's copy, alive until the flush ends */
    size_t len;
} tscol_t;

typedef struct {
    st__map_t by_hash; /* hash -> index in cols */
    tscol_t *cols;
    size_t n, cap;
} tscols_t;

static uint64_t tscol_hash(const uint8_t *p, size_t len)
{
    uint64_t h = wf_hash64(p, len, 0);
    return h ? h : 1;
}

/*
 * The id of the timestamp column with exactly the bytes of p's: one that this flush already
 * wrote or found, else a row of the table with equal bytes (a target whose series reached a
 * flush apart), else a new row. Equal hashes are never trusted without equal bytes.
 */
static int tscol_id(st_store_t *s, tscols_t *tc, const st__pchunk_t *p, int64_t *id)
{
    st__metrics_t *m = s->metrics;
    uint64_t h = tscol_hash(p->ts, p->ts_len);
    uint64_t *v = st__map_get(&tc->by_hash, h);
    if (v != NULL) {
        const tscol_t *c = &tc->cols[*v];
        if (c->len == p->ts_len && memcmp(c->data, p->ts, p->ts_len) == 0) {
            *id = c->id;
            return 0;
        }
    }
    int64_t found = 0;
    int rc;
    sqlite3_bind_int64(m->find_tscol, 1, (int64_t)h);
    while ((rc = sqlite3_step(m->find_tscol)) == SQLITE_ROW) {
        if ((size_t)sqlite3_column_bytes(m->find_tscol, 1) == p->ts_len &&
            memcmp(sqlite3_column_blob(m->find_tscol, 1), p->ts, p->ts_len) == 0) {
            found = sqlite3_column_int64(m->find_tscol, 0);
            break;
        }
    }
    sqlite3_reset(m->find_tscol);
    sqlite3_clear_bindings(m->find_tscol);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        return wf_sqlite_err(rc);
    }
    if (found == 0) {
        sqlite3_bind_int64(m->ins_tscol, 1, (int64_t)h);
        sqlite3_bind_int64(m->ins_tscol, 2, p->maxt);
        sqlite3_bind_blob(m->ins_tscol, 3, p->ts, (int)p->ts_len, SQLITE_STATIC);
        if ((rc = step_done(m->ins_tscol)) != 0) {
            return rc;
        }
        found = sqlite3_last_insert_rowid(s->db.writer);
    }
    if (v == NULL) {
        if (tc->n == tc->cap) {
            tc->cap = tc->cap ? tc->cap * 2 : 64;
            tc->cols = wf_realloc(tc->cols, tc->cap * sizeof(*tc->cols));
        }
        tc->cols[tc->n] = (tscol_t){found, p->ts, p->ts_len};
        st__map_put(&tc->by_hash, h, tc->n++);
    }
    *id = found;
    return 0;
}

int st__metrics_flush(st_store_t *s)
{
    st__metrics_t *m = s->metrics;
    if (m->ndirty == 0 && m->log_records == 0) {
        return 0;
    }
    int rc = st__db_begin(&s->db);
    if (rc != 0) {
        return rc;
    }
    uint64_t nchunks = 0, nsamples = 0;
    tscols_t tc = {0};
    for (size_t i = 0; i < m->ndirty && rc == 0; i++) {
        st__mseries_t *se = m->dirty[i];
        for (size_t j = 0; j < se->npend && rc == 0; j++) {
            st__pchunk_t *p = &se->pend[j];
            int64_t ts_id = 0;
            if ((rc = tscol_id(s, &tc, p, &ts_id)) != 0) {
                break;
            }
            sqlite3_bind_int64(m->ins_chunk, 1, (int64_t)se->id);
            sqlite3_bind_int64(m->ins_chunk, 2, p->mint);
            sqlite3_bind_int64(m->ins_chunk, 3, p->maxt);
            sqlite3_bind_blob(m->ins_chunk, 4, p->data, (int)p->len, SQLITE_STATIC);
            sqlite3_bind_int64(m->ins_chunk, 5, ts_id);
            rc = step_done(m->ins_chunk);
            nchunks++;
            nsamples += p->count;
        }
        if (rc != 0) {
            break;
        }
        if (se->head.count > 0) {
            /*
             * Stored sealed (a third smaller than the encoder's form on scrape data); open
             * re-encodes it into an encoder. If sealing fails the encoder bytes, which any
             * reader accepts too, are stored instead.
             */
            size_t len;
            const uint8_t *bytes = st_chunk_enc_bytes(&se->head, &len);
            wf_buf_reset(&m->row);
            if (st_chunk_seal(bytes, len, &m->row) == 0) {
                bytes = m->row.data;
                len = m->row.len;
            }
            sqlite3_bind_int64(m->put_head, 1, (int64_t)se->id);
            sqlite3_bind_blob(m->put_head, 2, bytes, (int)len, SQLITE_STATIC);
            rc = step_done(m->put_head);
        } else {
            sqlite3_bind_int64(m->del_head, 1, (int64_t)se->id);
            rc = step_done(m->del_head);
        }
    }
    if (rc == 0 && nchunks > 0) {
        rc = put_state(m, "sealed_chunks", (int64_t)(m->sealed_chunks + nchunks));
    }
    if (rc == 0 && m->last_seq > 0) {
        rc = st__log_truncate(&s->db, ST__LOG_SAMPLES, m->last_seq);
    }
    st__map_free(&tc.by_hash);
    wf_free(tc.cols);
    if (rc == 0) {
        rc = st__db_commit(&s->db);
    } else {
        st__db_rollback(&s->db);
    }
    if (rc != 0) {
        WF_LOG(WF_WARN, "store", "metrics flush failed", "err=\"%s\"", st_strerror(rc));
        return rc;
    }
    pthread_rwlock_wrlock(&m->lock);
    for (size_t i = 0; i < m->ndirty; i++) {
        st__mseries_t *se = m->dirty[i];
        for (size_t j = 0; j < se->npend; j++) {
            wf_free(se->pend[j].data);
            wf_free(se->pend[j].ts);
        }
        se->npend = 0;
        se->dirty = 0;
    }
    m->ndirty = 0;
    m->sealed_chunks += nchunks;
    m->head_samples -= nsamples;
    pthread_rwlock_unlock(&m->lock);
    m->log_bytes = 0;
    m->log_records = 0;
    return 0;
}

/* ---- retention ------------------------------------------------------------------------- */

static int exec_id(sqlite3 *db, const char *sql, uint64_t id, int64_t a, int64_t *changes)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
    if (rc != SQLITE_OK) {
        return wf_sqlite_err(rc);
    }
    sqlite3_bind_int64(st, 1, (int64_t)id);
    if (sqlite3_bind_parameter_count(st) >= 2) {
        sqlite3_bind_int64(st, 2, a);
    }
    rc = sqlite3_step(st);
    int out = 0;
    if (rc == SQLITE_ROW) {
        *changes =
            sqlite3_column_type(st, 0) == SQLITE_NULL ? INT64_MAX : sqlite3_column_int64(st, 0);
    } else if (rc == SQLITE_DONE) {
        if (changes != NULL) {
            *changes = sqlite3_changes(db);
        }
    } else {
        out = wf_sqlite_err(rc);
    }
    sqlite3_finalize(st);
    return out;
}

typedef struct {
    st__mseries_t *se;
    int drop;
    int64_t new_min;
} ret_t;

static int retention_group(st_store_t *s, ret_t *g, size_t n, int64_t cutoff)
{
    st__metrics_t *m = s->metrics;
    sqlite3 *db = s->db.writer;
    int64_t deleted = 0;
    int rc = st__db_begin(&s->db);
    if (rc != 0) {
        return rc;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        st__mseries_t *se = g[i].se;
        int64_t ch = 0;
        if (g[i].drop) {
            rc = exec_id(db, "DELETE FROM chunks WHERE series_id = ?1", se->id, 0, &ch);
            deleted += ch;
            if (rc == 0) {
                rc = exec_id(db, "DELETE FROM head_chunks WHERE series_id = ?1", se->id, 0, &ch);
            }
            if (rc == 0) {
                rc = exec_id(db, "DELETE FROM series WHERE id = ?1", se->id, 0, &ch);
            }
            continue;
        }
        rc = exec_id(db, "DELETE FROM chunks WHERE series_id = ?1 AND mint < ?2 AND maxt < ?2",
                     se->id, cutoff, &ch);
        deleted += ch;
        int64_t first = INT64_MAX;
        if (rc == 0) {
            rc =
                exec_id(db, "SELECT min(mint) FROM chunks WHERE series_id = ?1", se->id, 0, &first);
        }
        if (first == INT64_MAX) {
            first = se->head.count > 0 ? se->head.mint : se->last_ts;
        }
        g[i].new_min = first;
        if (rc == 0 && first != se->min_t) {
            rc = exec_id(db, "UPDATE series SET mint = ?2 WHERE id = ?1", se->id, first, &ch);
        }
    }
    if (rc == 0 && deleted > 0) {
        rc = put_state(m, "sealed_chunks", (int64_t)(m->sealed_chunks - (uint64_t)deleted));
    }
    if (rc == 0) {
        rc = st__db_commit(&s->db);
    } else {
        st__db_rollback(&s->db);
    }
    if (rc != 0) {
        return rc;
    }
    pthread_rwlock_wrlock(&m->lock);
    m->sealed_chunks -= (uint64_t)deleted;
    for (size_t i = 0; i < n; i++) {
        if (g[i].drop) {
            series_drop(m, g[i].se);
        } else {
            g[i].se->min_t = g[i].new_min;
        }
    }
    pthread_rwlock_unlock(&m->lock);
    for (size_t i = 0; i < n; i++) {
        if (g[i].drop) {
            series_free(g[i].se);
        }
    }
    return 0;
}

int st__metrics_retention(st_store_t *s, int64_t cutoff_ms)
{
    st__metrics_t *m = s->metrics;
    m->last_retention = st__now_ms(s);
    /* Flushing first empties the pending lists and the log, so that nothing deleted here can
     * come back from a replay. */
    int rc = st__metrics_flush(s);
    if (rc != 0) {
        return rc;
    }
    ret_t *g = wf_malloc(RETENTION_TX_SERIES * sizeof(*g));
    size_t n = 0;
    /* Collect first: dropping series reshuffles the id list. */
    st__postings_t cand = {0};
    for (size_t i = 0; i < m->idx.all.n; i++) {
        st__mseries_t *se = st__series_by_id(m, m->idx.all.ids[i]);
        if (se->min_t < cutoff_ms) {
            st__postings_add(&cand, se->id);
        }
    }
    for (size_t i = 0; i < cand.n && rc == 0; i++) {
        st__mseries_t *se = st__series_by_id(m, cand.ids[i]);
        g[n].se = se;
        /* A series referenced by an open batch stays; only its old chunks go. */
        g[n].drop = (!se->has_last || se->last_ts < cutoff_ms) && !m->open_batch;
        g[n].new_min = se->min_t;
        if (++n == RETENTION_TX_SERIES) {
            rc = retention_group(s, g, n, cutoff_ms);
            n = 0;
        }
    }
    if (rc == 0 && n > 0) {
        rc = retention_group(s, g, n, cutoff_ms);
    }
    /*
     * Timestamp columns need no reference counts: a column is shared only by chunks with
     * byte-equal timestamps, so every chunk that references it has the column's maxt. Every
     * chunk with maxt < cutoff belongs to a candidate (its series' min_t is older still) and
     * was deleted by the groups above, which all committed: a column with maxt < cutoff is
     * referenced by nothing. It is deleted only now, after the last group, because a reader
     * between two groups may still read chunks of a later group. A crash before this point
     * leaves unreferenced columns that the next retention deletes.
     */
    if (rc == 0) {
        rc = exec_id(s->db.writer, "DELETE FROM ts_columns WHERE maxt < ?1", (uint64_t)cutoff_ms, 0,
                     NULL);
    }
    st__postings_free(&cand);
    wf_free(g);
    return rc;
}
