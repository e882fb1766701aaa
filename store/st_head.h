/*
 * st_head.h - the metrics half's in-memory state, shared by its write side (st_metrics.c:
 * series, head, batches, log, flush, replay, retention) and its read side (st_mread.c:
 * selection, label names and values, metadata). Internal to store/.
 *
 * Locking: `lock` guards the index, the id map, the counters and every series' head (open
 * encoder and pending chunks); readers hold it shared, the writer takes it exclusively to
 * change them. Fields marked writer-only are touched by the writer thread alone, without it.
 */
#ifndef ST_HEAD_H
#define ST_HEAD_H

#include "st_chunk.h"
#include "st_index.h"
#include "st_internal.h"

#include "wf_err.h"

#include <string.h>
#include <zstd.h>

/*
 * A chunk spans at most this much time (maxt - mint); readers seek with it. It is also the
 * wall-clock window chunks are cut on: a chunk never holds samples of two windows
 * [k * ST_CHUNK_SPAN_MS, (k + 1) * ST_CHUNK_SPAN_MS).
 */
#define ST_CHUNK_SPAN_MS (2LL * 3600 * 1000)

/* A chunk cut from the head and sealed (split form), waiting for the next flush. */
typedef struct {
    int64_t mint, maxt;
    uint32_t count;
    uint8_t *data; /* values-only chunk */
    size_t len;
    uint8_t *ts; /* its timestamp column */
    size_t ts_len;
} st__pchunk_t;

/* One series: identity, time range and head. */
typedef struct st__mseries {
    uint64_t id;
    uint64_t hash;
    struct st__mseries *hnext; /* next series with the same label hash */
    uint8_t *lbl;              /* canonical label encoding (owned) */
    size_t lbl_len;
    int64_t min_t; /* oldest sample */
    int64_t last_ts;
    uint64_t last_v;
    int has_last;
    st_chunk_enc_t head;
    st__pchunk_t *pend; /* sealed, waiting for the next flush */
    size_t npend, cpend;
    int dirty;
    /* writer-only: newest sample accepted by the open batch */
    uint64_t b_gen;
    int64_t b_ts;
    uint64_t b_v;
} st__mseries_t;

struct st__metrics {
    pthread_rwlock_t lock;
    st__index_t idx;
    st__map_t by_id; /* id -> st__mseries_t* */
    uint64_t nseries;
    uint64_t head_samples, sealed_chunks, samples_total;
    /* writer only */
    st__map_t by_hash;   /* label hash -> st__mseries_t* (chain through hnext) */
    st__map_t meta_seen; /* hash(metric) -> hash(metadata) last written */
    uint64_t next_id;
    size_t chunk_max_bytes; /* cut a chunk before its bytes reach this */
    int64_t last_seq;
    st__mseries_t **dirty;
    size_t ndirty, cdirty;
    size_t log_bytes, log_records;
    uint64_t gen;
    int open_batch;
    int64_t last_retention;
    st_batch_t *spare;
    wf_buf_t rec, zrec;
    ZSTD_CCtx *zc;
    ZSTD_DCtx *zd;
    sqlite3_stmt *ins_series, *ins_chunk, *put_head, *del_head, *ins_meta, *put_state, *ins_sym;
    sqlite3_stmt *find_tscol, *ins_tscol;
    /* writer only: label strings -> symbol ids */
    st__map_t sym_by_hash; /* hash -> sym_t* (chain through next) */
    uint64_t next_sym;
    struct sym **sym_added; /* symbols created by the transaction in progress */
    size_t nsym_added, csym_added;
    wf_buf_t row;
};

/* The series with id, or NULL. Under the lock (or on the writer thread). */
static inline st__mseries_t *st__series_by_id(const st__metrics_t *m, uint64_t id)
{
    uint64_t *v = st__map_get(&m->by_id, id);
    return v ? (st__mseries_t *)(uintptr_t)*v : NULL;
}

/*
 * Start reading a sealed chunk from a result row whose columns c, c + 1, c + 2 are chunks.data,
 * chunks.ts_id and the referenced ts_columns.data (a LEFT JOIN, so that the chunk and its
 * timestamps come from one snapshot). A ts_id whose column is missing is WF_E_CORRUPT.
 */
static inline int st__chunk_row_iter(st_chunk_iter_t *it, sqlite3_stmt *st, int c)
{
    const uint8_t *data = sqlite3_column_blob(st, c);
    size_t len = (size_t)sqlite3_column_bytes(st, c);
    if (sqlite3_column_type(st, c + 1) == SQLITE_NULL) {
        return st_chunk_iter_init(it, data, len);
    }
    const uint8_t *ts = sqlite3_column_blob(st, c + 2);
    size_t ts_len = (size_t)sqlite3_column_bytes(st, c + 2);
    if (ts == NULL || data == NULL) {
        memset(it, 0, sizeof(*it));
        return WF_E_CORRUPT;
    }
    return st_chunk_iter_init_split(it, ts, ts_len, data, len);
}

#endif
