/*
 * st_spans.c - the span store: append, the in-memory head, sealing into blocks, the indexes,
 * trace lookup, search, services/operations, dependencies, retention and replay.
 *
 * Write path (writer thread). st_spans_append checks every span first, encodes the whole batch
 * as one log record (st_span_codec.h) and commits it together with any operation seen for the
 * first time; only after COMMIT are the spans copied into the head, so an error leaves nothing
 * behind. Small appends compress badly, so the head accumulates spans and is sealed into one
 * block when it holds SEAL_SPANS spans, when its oldest span has waited SEAL_AGE_NS, or on
 * flush; the transaction that writes the block also deletes the log records it covers, so a
 * crash leaves either the records (replayed into the head on open) or the block, never both.
 * Group commit (st_internal.h): the collector's queue brackets several appends in one
 * transaction; each still writes its own log record, and their head copies are published
 * together once that transaction commits (an append's error before it writes leaves the group
 * untouched; one after marks the group failed, so that it is rolled back whole).
 *
 * Tables (all created here):
 *   span_blocks(id, min_start, max_start, min_dur, max_dur, n_spans, bloom)
 *       one row per block: the summary search uses to skip blocks without decompressing them.
 *       bloom is a Bloom filter (BLOOM_K probes, 16-32 bits per distinct item, ~0.1 % false
 *       positives) over the block's items (st__span_item_*: service, service+operation, and
 *       key=value-as-text of every span, resource, event and link attribute), which the block
 *       encoder lists while it builds its dictionary.
 *   span_block_data(id, data)      the compressed block, apart so that scanning summaries
 *                                  never pulls block pages into the cache.
 *   span_trace_index(tid, block)   WITHOUT ROWID, one row per (trace, block): tid is 47 bits of
 *                                  the trace id's low half (so 64-bit ids index as well as
 *                                  128-bit ones); a collision costs one block decode, and the
 *                                  block's own directory gives the exact answer.
 *   span_operations(service, name, kind, last_seen) WITHOUT ROWID: services and operations.
 *                                  A new one is written with the append that brings it; later
 *                                  sightings only move last_seen in memory, written at flush and
 *                                  before retention, which deletes what was not seen since.
 *
 * Search walks the summaries newest first (by max_start), skips blocks whose time/duration
 * range or bloom filter rule them out, decodes the rest, and stops as soon as the limit-th
 * newest matching trace is newer than the next block's newest span: the answer is exactly the
 * newest `limit` traces, not an approximation. The head is scanned in full (it is small).
 *
 * Sizes: SEAL_SPANS 4096 keeps a trace lookup (one block decompressed, ~0.3 ms) under a
 * millisecond; 8192 saved only ~0.5 byte/span. The seal's encoding (dictionary, bloom items,
 * zstd: most of the writer's time when it ran inline) runs on a thread of its own, started by the
 * append that fills the head: the head arena and the span pointers it covers move to the seal
 * job, appends go on into a fresh arena behind them, and the writer commits the finished blocks
 * (with the deletion of the log records up to the last one sealed) at its next append, at flush,
 * or before retention; the sealed prefix then leaves the head under the write lock. Until that
 * commit the spans are read from the head and replayed from the log after a crash, as before.
 * A head that grows SEAL_BACKLOG spans behind a running seal makes the writer wait for it.
 *
 * Reads (any thread) use a reader connection. The head is guarded by a rwlock that readers hold
 * only while they copy what they need from the head and open their SQLite read transaction;
 * the writer holds it while it commits a sealed block and empties the head. So a reader sees a
 * span either in the head or in a block of its snapshot, never in both and never in neither.
 * Opened blocks are shared by readers through a small cache (block_acquire): a Jaeger search
 * answer gets its traces by id right after the search opened their blocks. Block ids are never
 * reused while the store is open, and blocks never change, so a cached id is never stale and any
 * snapshot that names the id sees the same content.
 */
#include "st_internal.h"
#include "st_span_codec.h"

#include "wf_alloc.h"
#include "wf_clock.h"
#include "wf_err.h"
#include "wf_log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define SEAL_SPANS 4096
#define SEAL_AGE_NS (10LL * 1000000000)
/* Head spans behind a running seal beyond which the writer waits for it. */
#define SEAL_BACKLOG (4 * SEAL_SPANS)
/*
 * zstd level of sealed blocks: 7 saved 2 bytes/span over 3 (30.6 vs 32.6 in the bench) but cost
 * ~15 % of the append rate, which is the tighter goal.
 */
#define BLOCK_ZSTD_LEVEL 3
#define BLOOM_K 7
#define BLOOM_BITS_PER_ITEM 16
#define DEFAULT_LIMIT 20
/* Append scratch buffers grown beyond this by a large batch are released after it. */
#define SCRATCH_KEEP (4u << 20)
/*
 * Opened blocks kept for readers. A search answer's traces sit in the few newest blocks that
 * matched, and the Jaeger and Zipkin handlers then get each trace by id: without the cache each
 * of those lookups decompressed and parsed the same block again (~1 ms each, 20 per answer).
 * 16 entries of ~1 MB (decompressed block, directory, zstd context).
 */
#define BCACHE_N 16
#define BCACHE_ARENA (1u << 20)

/*
 * One opened block. Entries in the cache are found by block id: ids are never reused while the
 * store is open (st__spans_t.last_block_id) and blocks never change, so an entry never goes
 * stale; one whose block retention deleted is simply not asked for again and ages out.
 */
typedef struct {
    int64_t id;    /* the block held, 0 = none (or being loaded) */
    unsigned refs; /* readers using it (bc_lock) */
    uint64_t used; /* last use, for LRU (bc_lock) */
    bool cached;   /* false: a private load, freed by its release */
    wf_arena_t arena;
    ZSTD_DCtx *dctx;
    st__span_block_t b;
} bcache_ent_t;

/* One encoded block, waiting to be inserted. */
typedef struct sealed {
    wf_buf_t block, bloom;
    st__block_info_t info;
} sealed_t;

static void sealed_free(sealed_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        wf_buf_free(&b[i].block);
        wf_buf_free(&b[i].bloom);
        wf_free(b[i].info.trace_ids);
        wf_free(b[i].info.items);
    }
    wf_free(b);
}

/* A seal running on its own thread (seal_start); its fields are the seal thread's until done. */
typedef struct {
    pthread_t th;
    atomic_bool done;
    const st_span_t **spans; /* the head's first n spans when the seal began */
    size_t n;
    int64_t upto;         /* newest log record of those spans */
    int64_t started_mono; /* when it began (the remaining head's age after it) */
    wf_arena_t arena;     /* their memory: the head arena when the seal began */
    ZSTD_CCtx *cctx;
    sealed_t *blocks; /* the result */
    size_t n_blocks;
} seal_job_t;

typedef struct {
    char *service;
    char *name;
    size_t service_len, name_len;
    int kind;
    int64_t last_seen;    /* newest span start seen (ns) */
    int64_t db_last_seen; /* what span_operations holds */
    uint64_t h;
} op_t;

struct st__spans {
    pthread_rwlock_t lock; /* guards head/n_head (readers vs. the writer) */
    wf_arena_t head_arena;
    st_span_t **head;
    size_t n_head, cap_head;
    int64_t head_last_seq;  /* newest log record whose spans are in the head */
    int64_t head_born_mono; /* when the head got its first span */

    op_t *ops; /* services and operations, writer thread only */
    size_t n_ops, cap_ops;
    uint32_t *op_slots; /* index + 1 */
    size_t op_cap;

    sqlite3_stmt *op_upsert;
    ZSTD_CCtx *cctx;      /* reused: a fresh context per call costs its table setup every time */
    wf_buf_t scratch;     /* the compressed log record of an append */
    wf_buf_t scratch_raw; /* and its uncompressed form */
    uint64_t spans_total;
    int64_t last_block_id; /* writer thread: the largest block id used since open */

    pthread_mutex_t bc_lock;
    bcache_ent_t *bc[BCACHE_N];
    uint64_t bc_tick;

    /* Group commit (st_spans_group_begin): the appends' head copies wait here, unpublished,
     * until the group's transaction commits. Writer thread only. */
    bool group;
    int group_err; /* an append failed half-way: the group's transaction must not commit */
    st_span_t **pend;
    size_t n_pend, cap_pend;
    int64_t pend_seq; /* newest log record of the group */
    uint64_t pend_total;
    wf_arena_mark_t group_mark; /* head_arena before the group's copies, undone on a drop */

    /* Sealing off the writer thread: the seal thread encodes head[0 .. job.n) while the writer
     * appends behind them; the writer commits its blocks (seal_collect). Writer thread only. */
    bool sealing;
    seal_job_t job;
    ZSTD_CCtx *seal_cctx;
    bool has_old_arena; /* a failed seal's spans, still in the head, live in old_arena */
    wf_arena_t old_arena;
};

static int prepare_on(sqlite3 *c, const char *sql, sqlite3_stmt **st)
{
    int rc = sqlite3_prepare_v2(c, sql, -1, st, NULL);
    if (rc != SQLITE_OK) {
        WF_LOG(WF_ERROR, "store", "prepare failed", "sql=\"%.80s\" err=\"%s\"", sql,
               sqlite3_errmsg(c));
        return wf_sqlite_err(rc);
    }
    return 0;
}

/* The trace index key: 47 bits of the id's low half, always a positive 6-byte SQLite int. */
static int64_t trace_key(const uint8_t id[16])
{
    uint64_t v = 0;
    for (int i = 8; i < 16; i++) {
        v = v << 8 | id[i];
    }
    return (int64_t)(v >> 17);
}

/* ---- services and operations cache ------------------------------------------------------- */

static uint64_t op_hash(wf_str_t service, wf_str_t name, int kind)
{
    return wf_hash64(name.p, name.len, wf_hash64(service.p, service.len, (uint64_t)kind + 1));
}

static op_t *op_find(st__spans_t *sp, wf_str_t service, wf_str_t name, int kind, uint64_t h)
{
    if (sp->op_cap == 0) {
        return NULL;
    }
    for (size_t j = h & (sp->op_cap - 1); sp->op_slots[j] != 0; j = (j + 1) & (sp->op_cap - 1)) {
        op_t *o = &sp->ops[sp->op_slots[j] - 1];
        if (o->h == h && o->kind == kind &&
            wf_str_eq((wf_str_t){o->service, o->service_len}, service) &&
            wf_str_eq((wf_str_t){o->name, o->name_len}, name)) {
            return o;
        }
    }
    return NULL;
}

static void op_rehash(st__spans_t *sp)
{
    size_t cap = 64;
    while (cap < sp->n_ops * 2 + 2) {
        cap *= 2;
    }
    wf_free(sp->op_slots);
    sp->op_slots = wf_calloc(cap, sizeof(*sp->op_slots));
    sp->op_cap = cap;
    for (size_t i = 0; i < sp->n_ops; i++) {
        size_t j = sp->ops[i].h & (cap - 1);
        while (sp->op_slots[j] != 0) {
            j = (j + 1) & (cap - 1);
        }
        sp->op_slots[j] = (uint32_t)i + 1;
    }
}

static op_t *op_add(st__spans_t *sp, wf_str_t service, wf_str_t name, int kind, int64_t seen,
                    int64_t db_seen)
{
    if (sp->n_ops == sp->cap_ops) {
        sp->cap_ops = sp->cap_ops ? sp->cap_ops * 2 : 32;
        sp->ops = wf_realloc(sp->ops, sp->cap_ops * sizeof(*sp->ops));
    }
    op_t *o = &sp->ops[sp->n_ops++];
    o->service = wf_strndup(service.p, service.len);
    o->service_len = service.len;
    o->name = wf_strndup(name.p, name.len);
    o->name_len = name.len;
    o->kind = kind;
    o->last_seen = seen;
    o->db_last_seen = db_seen;
    o->h = op_hash(service, name, kind);
    if ((sp->n_ops * 2 + 2) > sp->op_cap) {
        op_rehash(sp);
    } else {
        size_t j = o->h & (sp->op_cap - 1);
        while (sp->op_slots[j] != 0) {
            j = (j + 1) & (sp->op_cap - 1);
        }
        sp->op_slots[j] = (uint32_t)sp->n_ops;
    }
    return o;
}

static int op_write(st__spans_t *sp, wf_str_t service, wf_str_t name, int kind, int64_t seen)
{
    sqlite3_stmt *st = sp->op_upsert;
    /* An empty slice may have a NULL pointer; SQLite would store NULL, not "". */
    sqlite3_bind_text(st, 1, service.p ? service.p : "", (int)service.len, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name.p ? name.p : "", (int)name.len, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, kind);
    sqlite3_bind_int64(st, 4, seen);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? 0 : wf_sqlite_err(rc);
}

/* Write last_seen values that moved since they were last written (inside a transaction). */
static int ops_write_pending(st__spans_t *sp)
{
    for (size_t i = 0; i < sp->n_ops; i++) {
        op_t *o = &sp->ops[i];
        if (o->last_seen > o->db_last_seen) {
            int rc = op_write(sp, (wf_str_t){o->service, o->service_len},
                              (wf_str_t){o->name, o->name_len}, o->kind, o->last_seen);
            if (rc != 0) {
                return rc;
            }
        }
    }
    return 0;
}

static void ops_mark_written(st__spans_t *sp)
{
    for (size_t i = 0; i < sp->n_ops; i++) {
        sp->ops[i].db_last_seen = sp->ops[i].last_seen;
    }
}

static void ops_free(st__spans_t *sp)
{
    for (size_t i = 0; i < sp->n_ops; i++) {
        wf_free(sp->ops[i].service);
        wf_free(sp->ops[i].name);
    }
    wf_free(sp->ops);
    wf_free(sp->op_slots);
    sp->ops = NULL;
    sp->op_slots = NULL;
    sp->n_ops = sp->cap_ops = sp->op_cap = 0;
}

/* Note a span's operation in memory (after its data is durable). */
static void op_seen(st__spans_t *sp, const st_span_t *s)
{
    uint64_t h = op_hash(s->service, s->name, (int)s->kind);
    op_t *o = op_find(sp, s->service, s->name, (int)s->kind, h);
    if (o == NULL) {
        o = op_add(sp, s->service, s->name, (int)s->kind, s->start_ns, s->start_ns);
    }
    if (s->start_ns > o->last_seen) {
        o->last_seen = s->start_ns;
    }
}

/* ---- head ---------------------------------------------------------------------------------- */

/* Copy spans into the head arena (no lock: readers never see unpublished memory). */
static st_span_t **head_prepare(st__spans_t *sp, const st_span_t *spans, size_t n,
                                int64_t min_start, size_t *kept)
{
    st_span_t **ptrs = wf_malloc((n ? n : 1) * sizeof(*ptrs));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (spans[i].start_ns < min_start) {
            continue;
        }
        st_span_t *c = wf_arena_alloc(&sp->head_arena, sizeof(*c));
        st__span_copy(&sp->head_arena, c, &spans[i]);
        ptrs[k++] = c;
    }
    *kept = k;
    return ptrs;
}

static void head_publish(st__spans_t *sp, st_span_t **ptrs, size_t n, int64_t seq)
{
    for (size_t i = 0; i < n; i++) {
        op_seen(sp, ptrs[i]);
    }
    pthread_rwlock_wrlock(&sp->lock);
    if (sp->n_head + n > sp->cap_head) {
        size_t cap = sp->cap_head ? sp->cap_head : 1024;
        while (cap < sp->n_head + n) {
            cap *= 2;
        }
        sp->head = wf_realloc(sp->head, cap * sizeof(*sp->head));
        sp->cap_head = cap;
    }
    if (sp->n_head == 0) {
        sp->head_born_mono = wf_mono_ns();
    }
    memcpy(sp->head + sp->n_head, ptrs, n * sizeof(*ptrs));
    sp->n_head += n;
    if (seq > sp->head_last_seq) {
        sp->head_last_seq = seq;
    }
    pthread_rwlock_unlock(&sp->lock);
}

/* ---- block cache entries --------------------------------------------------------------------- */

static bcache_ent_t *bcache_ent_new(bool cached)
{
    bcache_ent_t *e = wf_calloc(1, sizeof(*e));
    e->cached = cached;
    wf_arena_init(&e->arena, BCACHE_ARENA, 0);
    e->dctx = ZSTD_createDCtx();
    WF_ASSERT(e->dctx != NULL);
    return e;
}

static void bcache_ent_free(bcache_ent_t *e)
{
    if (e != NULL) {
        wf_arena_free(&e->arena);
        ZSTD_freeDCtx(e->dctx);
        wf_free(e);
    }
}

/* ---- lifecycle ----------------------------------------------------------------------------- */

int st__spans_open(st_store_t *s)
{
    int rc = st__db_exec(&s->db, "CREATE TABLE IF NOT EXISTS span_blocks("
                                 " id INTEGER PRIMARY KEY, min_start INTEGER NOT NULL,"
                                 " max_start INTEGER NOT NULL, min_dur INTEGER NOT NULL,"
                                 " max_dur INTEGER NOT NULL, n_spans INTEGER NOT NULL,"
                                 " bloom BLOB NOT NULL);"
                                 "CREATE INDEX IF NOT EXISTS span_blocks_max_start"
                                 " ON span_blocks(max_start);"
                                 "CREATE TABLE IF NOT EXISTS span_block_data("
                                 " id INTEGER PRIMARY KEY, data BLOB NOT NULL);"
                                 "CREATE TABLE IF NOT EXISTS span_trace_index("
                                 " tid INTEGER NOT NULL, block INTEGER NOT NULL,"
                                 " PRIMARY KEY(tid, block)) WITHOUT ROWID;"
                                 "CREATE TABLE IF NOT EXISTS span_operations("
                                 " service TEXT NOT NULL, name TEXT NOT NULL,"
                                 " kind INTEGER NOT NULL, last_seen INTEGER NOT NULL,"
                                 " PRIMARY KEY(service, name, kind)) WITHOUT ROWID;");
    if (rc != 0) {
        return rc;
    }
    st__spans_t *sp = wf_calloc(1, sizeof(*sp));
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    /* Searches may be frequent; the writer must not starve behind them. */
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&sp->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    wf_arena_init(&sp->head_arena, 1 << 20, 0);
    sp->cctx = ZSTD_createCCtx();
    sp->seal_cctx = ZSTD_createCCtx();
    WF_ASSERT(sp->cctx != NULL && sp->seal_cctx != NULL);
    pthread_mutex_init(&sp->bc_lock, NULL);
    for (size_t i = 0; i < BCACHE_N; i++) {
        sp->bc[i] = bcache_ent_new(true);
    }
    s->spans = sp;
    rc = st__db_prepare(&s->db,
                        "INSERT INTO span_operations(service, name, kind, last_seen)"
                        " VALUES(?1, ?2, ?3, ?4) ON CONFLICT(service, name, kind)"
                        " DO UPDATE SET last_seen = max(last_seen, excluded.last_seen)",
                        &sp->op_upsert);
    if (rc != 0) {
        return rc;
    }
    sqlite3_stmt *st = NULL;
    if ((rc = st__db_prepare(&s->db, "SELECT coalesce(max(id), 0) FROM span_blocks", &st)) != 0) {
        return rc;
    }
    int step = sqlite3_step(st);
    sp->last_block_id = step == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    if (step != SQLITE_ROW) {
        return wf_sqlite_err(step);
    }
    rc = st__db_prepare(&s->db, "SELECT service, name, kind, last_seen FROM span_operations", &st);
    if (rc != 0) {
        return rc;
    }
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        wf_str_t svc = {(const char *)sqlite3_column_text(st, 0),
                        (size_t)sqlite3_column_bytes(st, 0)};
        wf_str_t name = {(const char *)sqlite3_column_text(st, 1),
                         (size_t)sqlite3_column_bytes(st, 1)};
        int64_t seen = sqlite3_column_int64(st, 3);
        op_add(sp, svc, name, sqlite3_column_int(st, 2), seen, seen);
    }
    sqlite3_finalize(st);
    return step == SQLITE_DONE ? 0 : wf_sqlite_err(step);
}

void st__spans_close(st_store_t *s)
{
    st__spans_t *sp = s->spans;
    if (sp == NULL) {
        return;
    }
    if (sp->sealing) {
        /* The store flushed before (st_internal.h), which finished any seal; an error there
         * leaves its thread to join, and its spans to the log. */
        pthread_join(sp->job.th, NULL);
        sealed_free(sp->job.blocks, sp->job.n_blocks);
        wf_free(sp->job.spans);
        wf_arena_free(&sp->job.arena);
    }
    if (sp->has_old_arena) {
        wf_arena_free(&sp->old_arena);
    }
    sqlite3_finalize(sp->op_upsert);
    ZSTD_freeCCtx(sp->cctx);
    ZSTD_freeCCtx(sp->seal_cctx);
    ops_free(sp);
    wf_free(sp->head);
    wf_free(sp->pend);
    wf_arena_free(&sp->head_arena);
    wf_buf_free(&sp->scratch);
    wf_buf_free(&sp->scratch_raw);
    for (size_t i = 0; i < BCACHE_N; i++) {
        WF_ASSERT(sp->bc[i] == NULL || sp->bc[i]->refs == 0);
        bcache_ent_free(sp->bc[i]);
    }
    pthread_mutex_destroy(&sp->bc_lock);
    pthread_rwlock_destroy(&sp->lock);
    wf_free(sp);
    s->spans = NULL;
}

void st__spans_stats(st_store_t *s, st_stats_t *out)
{
    st__spans_t *sp = s->spans;
    if (sp == NULL) {
        return;
    }
    out->spans_total = sp->spans_total;
    pthread_rwlock_rdlock(&sp->lock);
    out->head_spans = sp->n_head;
    pthread_rwlock_unlock(&sp->lock);
}

static int64_t retention_cutoff_ns(const st_store_t *s)
{
    if (s->opt.spans_retention_ms <= 0) {
        return INT64_MIN;
    }
    return (st__now_ms(s) - s->opt.spans_retention_ms) * 1000000;
}

int st__spans_replay(st_store_t *s, int64_t seq, const void *payload, size_t len)
{
    st__spans_t *sp = s->spans;
    wf_arena_t tmp;
    wf_arena_init(&tmp, 1 << 16, 0);
    st_span_t *spans = NULL;
    size_t n = 0;
    int rc = st__span_log_decode(payload, len, &tmp, &spans, &n);
    if (rc != 0) {
        WF_LOG(WF_ERROR, "store", "corrupt span log record", "seq=%lld", (long long)seq);
        goto out;
    }
    /* Spans that aged out while the process was down are not brought back. */
    size_t kept;
    st_span_t **ptrs = head_prepare(sp, spans, n, retention_cutoff_ns(s), &kept);
    head_publish(sp, ptrs, kept, seq);
    wf_free(ptrs);
out:
    wf_arena_free(&tmp);
    return rc;
}

/* ---- bloom filter -------------------------------------------------------------------------- */

static void bloom_probe(uint64_t h, size_t bits, size_t *pos)
{
    uint64_t h2 = (h >> 33 | h << 31) | 1;
    for (int i = 0; i < BLOOM_K; i++) {
        pos[i] = (size_t)((h + (uint64_t)i * h2) & (bits - 1));
    }
}

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

/* Build the bloom filter over a block's distinct items into out (a power-of-two byte count). */
static void bloom_build(const uint64_t *items, size_t n, wf_buf_t *out)
{
    size_t bits = 512;
    while (bits < n * BLOOM_BITS_PER_ITEM) {
        bits *= 2;
    }
    wf_buf_reset(out);
    uint8_t *m = wf_buf_reserve(out, bits / 8);
    memset(m, 0, bits / 8);
    out->len = bits / 8;
    for (size_t i = 0; i < n; i++) {
        size_t pos[BLOOM_K];
        bloom_probe(items[i], bits, pos);
        for (int k = 0; k < BLOOM_K; k++) {
            m[pos[k] / 8] |= (uint8_t)(1u << (pos[k] % 8));
        }
    }
}

/* False when the item is certainly not in the block. */
static bool bloom_may_have(const uint8_t *m, size_t len, uint64_t h)
{
    if (len == 0 || (len & (len - 1)) != 0) {
        return true; /* not a filter we wrote: do not prune on it */
    }
    size_t pos[BLOOM_K];
    bloom_probe(h, len * 8, pos);
    for (int k = 0; k < BLOOM_K; k++) {
        if ((m[pos[k] / 8] & (1u << (pos[k] % 8))) == 0) {
            return false;
        }
    }
    return true;
}

/* ---- sealing ------------------------------------------------------------------------------- */

/*
 * Encode spans (pointers reordered) as near-equal blocks of 3/4 to 3/2 x SEAL_SPANS spans (the
 * nearest count of SEAL_SPANS-sized blocks): a head that grew while a seal ran, or one huge
 * append, must not make big blocks that every lookup of their traces has to decompress, nor a
 * tiny tail block. Pure: runs on the seal thread as well as on the writer.
 */
static sealed_t *encode_blocks(const st_span_t **spans, size_t n, ZSTD_CCtx *cctx, size_t *nb)
{
    size_t chunks = (n + SEAL_SPANS / 2) / SEAL_SPANS ? (n + SEAL_SPANS / 2) / SEAL_SPANS : 1;
    size_t per = (n + chunks - 1) / chunks;
    sealed_t *out = wf_calloc(chunks, sizeof(*out));
    size_t k = 0;
    for (size_t off = 0; off < n; off += per, k++) {
        WF_ASSERT(k < chunks);
        st__span_block_encode(spans + off, n - off < per ? n - off : per, cctx, BLOCK_ZSTD_LEVEL,
                              &out[k].block, &out[k].info);
        bloom_build(out[k].info.items, out[k].info.n_items, &out[k].bloom);
    }
    *nb = k;
    return out;
}

/* Insert an encoded block with its index rows (inside a transaction). */
static int insert_block(st_store_t *s, const sealed_t *b)
{
    st__spans_t *sp = s->spans;
    const st__block_info_t *info = &b->info;
    sqlite3_stmt *st = NULL;
    /* A fresh id even when an earlier transaction that used one rolled back or retention deleted
     * the newest block: the block cache relies on an id naming one content for good. */
    int64_t id = sp->last_block_id + 1;
    int rc = st__db_prepare(&s->db,
                            "INSERT INTO span_blocks(id, min_start, max_start, min_dur, max_dur,"
                            " n_spans, bloom) VALUES(?, ?, ?, ?, ?, ?, ?)",
                            &st);
    if (rc != 0) {
        goto out;
    }
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, info->min_start);
    sqlite3_bind_int64(st, 3, info->max_start);
    sqlite3_bind_int64(st, 4, info->min_dur);
    sqlite3_bind_int64(st, 5, info->max_dur);
    sqlite3_bind_int64(st, 6, (int64_t)info->n_spans);
    sqlite3_bind_blob(st, 7, b->bloom.data, (int)b->bloom.len, SQLITE_STATIC);
    if ((rc = sqlite3_step(st)) != SQLITE_DONE) {
        rc = wf_sqlite_err(rc);
        goto out;
    }
    sp->last_block_id = id;
    sqlite3_finalize(st);
    st = NULL;
    if ((rc = st__db_prepare(&s->db, "INSERT INTO span_block_data(id, data) VALUES(?, ?)", &st)) !=
        0) {
        goto out;
    }
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_blob(st, 2, b->block.data, (int)b->block.len, SQLITE_STATIC);
    if ((rc = sqlite3_step(st)) != SQLITE_DONE) {
        rc = wf_sqlite_err(rc);
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    if ((rc = st__db_prepare(&s->db,
                             "INSERT OR IGNORE INTO span_trace_index(tid, block) VALUES(?, ?)",
                             &st)) != 0) {
        goto out;
    }
    rc = 0;
    for (size_t i = 0; i < info->n_traces && rc == 0; i++) {
        sqlite3_bind_int64(st, 1, trace_key(info->trace_ids[i]));
        sqlite3_bind_int64(st, 2, id);
        int step = sqlite3_step(st);
        rc = step == SQLITE_DONE ? 0 : wf_sqlite_err(step);
        sqlite3_reset(st);
    }
out:
    sqlite3_finalize(st);
    return rc;
}

/*
 * Write blocks, the moved last_seen values and the deletion of the log records up to upto, in
 * one transaction; on success run done (under the head's write lock, with the commit, so that
 * readers see the spans either in the head or in the blocks). Returns 0 or the error (rolled
 * back).
 */
static int commit_blocks(st_store_t *s, const sealed_t *blocks, size_t nb, int64_t upto,
                         void (*done)(st__spans_t *sp))
{
    st__spans_t *sp = s->spans;
    int rc = st__db_begin(&s->db);
    if (rc != 0) {
        return rc;
    }
    for (size_t i = 0; i < nb && rc == 0; i++) {
        rc = insert_block(s, &blocks[i]);
    }
    if (rc != 0 || (rc = ops_write_pending(sp)) != 0 ||
        (rc = st__log_truncate(&s->db, ST__LOG_SPANS, upto)) != 0) {
        st__db_rollback(&s->db);
        return rc;
    }
    pthread_rwlock_wrlock(&sp->lock);
    rc = st__db_commit(&s->db);
    if (rc == 0) {
        done(sp);
    }
    pthread_rwlock_unlock(&sp->lock);
    if (rc == 0) {
        ops_mark_written(sp);
    }
    return rc;
}

static void *seal_main(void *arg)
{
    seal_job_t *j = arg;
    j->blocks = encode_blocks(j->spans, j->n, j->cctx, &j->n_blocks);
    atomic_store(&j->done, true);
    return NULL;
}

/* Under the write lock: the sealed prefix of the head leaves it. */
static void async_sealed(st__spans_t *sp)
{
    size_t n = sp->job.n;
    memmove(sp->head, sp->head + n, (sp->n_head - n) * sizeof(*sp->head));
    sp->n_head -= n;
    if (sp->n_head == 0) {
        sp->head_last_seq = 0;
    } else {
        sp->head_born_mono = sp->job.started_mono;
    }
    wf_arena_free(&sp->job.arena);
}

/*
 * Finish the seal running on its own thread, if any: when wait is false, only if it is done.
 * Its blocks are committed on the writer (here); on failure its spans stay in the head, their
 * memory kept as old_arena, and the next seal (synchronous) covers them.
 */
static int seal_collect(st_store_t *s, bool wait)
{
    st__spans_t *sp = s->spans;
    seal_job_t *j = &sp->job;
    if (!sp->sealing || (!wait && !atomic_load(&j->done))) {
        return 0;
    }
    pthread_join(j->th, NULL);
    sp->sealing = false;
    int rc = commit_blocks(s, j->blocks, j->n_blocks, j->upto, async_sealed);
    if (rc != 0) {
        WF_ASSERT(!sp->has_old_arena);
        sp->old_arena = j->arena;
        sp->has_old_arena = true;
        WF_LOG(WF_ERROR, "store", "span seal failed", "err=\"%s\"", st_strerror(rc));
    }
    sealed_free(j->blocks, j->n_blocks);
    wf_free(j->spans);
    j->blocks = NULL;
    j->spans = NULL;
    return rc;
}

/*
 * Seal the whole head on a thread of its own: the head's spans are immutable and their memory
 * (the head arena) moves to the job, so that the writer goes on appending into a fresh arena
 * meanwhile. Readers keep seeing the spans in the head until the blocks commit.
 */
static void seal_start(st_store_t *s)
{
    st__spans_t *sp = s->spans;
    seal_job_t *j = &sp->job;
    WF_ASSERT(!sp->sealing && !sp->has_old_arena && sp->n_head > 0);
    j->n = sp->n_head;
    j->spans = wf_malloc(j->n * sizeof(*j->spans));
    memcpy(j->spans, sp->head, j->n * sizeof(*j->spans));
    j->upto = sp->head_last_seq;
    j->started_mono = wf_mono_ns();
    j->cctx = sp->seal_cctx;
    j->arena = sp->head_arena;
    wf_arena_init(&sp->head_arena, 1 << 20, 0);
    atomic_store(&j->done, false);
    sp->sealing = true;
    if (pthread_create(&j->th, NULL, seal_main, j) != 0) {
        /* No thread: encode here; the join below then has nothing to wait for. */
        seal_main(j);
        sp->sealing = false;
        int rc = commit_blocks(s, j->blocks, j->n_blocks, j->upto, async_sealed);
        if (rc != 0) {
            sp->old_arena = j->arena;
            sp->has_old_arena = true;
        }
        sealed_free(j->blocks, j->n_blocks);
        wf_free(j->spans);
        j->blocks = NULL;
        j->spans = NULL;
    }
}

/* Under the write lock: the whole head is in blocks now. */
static void sync_sealed(st__spans_t *sp)
{
    sp->n_head = 0;
    sp->head_last_seq = 0;
    wf_arena_reset(&sp->head_arena);
    if (sp->has_old_arena) {
        wf_arena_free(&sp->old_arena);
        sp->has_old_arena = false;
    }
}

/* Seal the head now, on the writer, after the seal running on its own thread (if any). */
int st__spans_flush(st_store_t *s)
{
    st__spans_t *sp = s->spans;
    WF_ASSERT(!sp->group);
    seal_collect(s, true); /* on failure its spans are still in the head: sealed below */
    if (sp->n_head == 0 && sp->head_last_seq == 0) {
        return 0;
    }
    /* With an empty head (retention dropped it) this still deletes the records it left. */
    size_t n = sp->n_head, nb = 0;
    sealed_t *blocks = NULL;
    if (n > 0) {
        const st_span_t **spans = wf_malloc(n * sizeof(*spans));
        memcpy(spans, sp->head, n * sizeof(*spans));
        blocks = encode_blocks(spans, n, sp->cctx, &nb);
        wf_free(spans);
    }
    int rc = commit_blocks(s, blocks, nb, sp->head_last_seq, sync_sealed);
    if (rc != 0) {
        WF_LOG(WF_ERROR, "store", "span flush failed", "err=\"%s\"", st_strerror(rc));
    }
    sealed_free(blocks, nb);
    return rc;
}

/* ---- append -------------------------------------------------------------------------------- */

/* Publish spans made durable by a commit and seal the head when it is due. */
static void after_commit(st_store_t *s, st_span_t **ptrs, size_t kept, int64_t seq, size_t n)
{
    st__spans_t *sp = s->spans;
    if (sp->scratch_raw.cap > SCRATCH_KEEP) {
        wf_buf_free(&sp->scratch_raw);
    }
    head_publish(sp, ptrs, kept, seq);
    sp->spans_total += n;
    /* The spans are durable in the log; a failed seal only postpones sealing. */
    if (sp->sealing) {
        /* A head that outgrows the seal thread waits for it rather than grow without bound. */
        seal_collect(s, sp->n_head - sp->job.n >= SEAL_BACKLOG);
    }
    if (sp->sealing) {
        return;
    }
    if (sp->n_head >= SEAL_SPANS && !sp->has_old_arena) {
        seal_start(s);
    } else if (sp->n_head >= SEAL_SPANS || wf_mono_ns() - sp->head_born_mono >= SEAL_AGE_NS) {
        st__spans_flush(s);
    }
}

int st_spans_append(st_store_t *s, const st_span_t *spans, size_t n, size_t *bad_index)
{
    st__spans_t *sp = s->spans;
    if (bad_index != NULL) {
        *bad_index = 0;
    }
    if (s->failed || sp == NULL) {
        return ST_E_CLOSED;
    }
    if (sp->group && sp->group_err != 0) {
        return sp->group_err;
    }
    if (n > s->opt.max_batch_spans) {
        if (bad_index != NULL) {
            *bad_index = s->opt.max_batch_spans;
        }
        return ST_E_BATCH_LIMIT;
    }
    if (n == 0) {
        return 0;
    }
    int64_t now_ns = st__now_ms(s) * 1000000;
    int64_t min_start = retention_cutoff_ns(s);
    int64_t max_start = now_ns + s->opt.max_future_ms * 1000000;
    for (size_t i = 0; i < n; i++) {
        int rc = st__span_check(&spans[i]);
        if (rc == 0 && spans[i].start_ns < min_start) {
            rc = ST_E_TOO_OLD;
        }
        if (rc == 0 && spans[i].start_ns > max_start) {
            rc = ST_E_TOO_NEW;
        }
        if (rc != 0) {
            if (bad_index != NULL) {
                *bad_index = i;
            }
            return rc;
        }
    }
    int64_t seq = 0;
    int rc = st__span_log_encode_tmp(&sp->scratch, &sp->scratch_raw, spans, n,
                                     s->opt.max_batch_bytes, sp->cctx);
    if (rc != 0) {
        return rc;
    }
    if (!sp->group && (rc = st__db_begin(&s->db)) != 0) {
        return rc;
    }
    rc = st__log_append(&s->db, ST__LOG_SPANS, sp->scratch.data, sp->scratch.len, &seq);
    for (size_t i = 0; i < n && rc == 0; i++) {
        wf_str_t svc = st__span_service(&spans[i]);
        uint64_t h = op_hash(svc, spans[i].name, (int)spans[i].kind);
        if (op_find(sp, svc, spans[i].name, (int)spans[i].kind, h) == NULL) {
            rc = op_write(sp, svc, spans[i].name, (int)spans[i].kind, spans[i].start_ns);
        }
    }
    if (rc != 0) {
        if (sp->group) {
            /* Part of this call may be in the transaction (or SQLite may have rolled it back
             * already): nothing more may run in it. */
            sp->group_err = rc;
        } else {
            st__db_rollback(&s->db);
        }
        return rc;
    }
    size_t kept;
    if (sp->group) {
        st_span_t **ptrs = head_prepare(sp, spans, n, INT64_MIN, &kept);
        if (sp->n_pend + kept > sp->cap_pend) {
            size_t cap = sp->cap_pend ? sp->cap_pend : 1024;
            while (cap < sp->n_pend + kept) {
                cap *= 2;
            }
            sp->pend = wf_realloc(sp->pend, cap * sizeof(*sp->pend));
            sp->cap_pend = cap;
        }
        memcpy(sp->pend + sp->n_pend, ptrs, kept * sizeof(*ptrs));
        sp->n_pend += kept;
        sp->pend_seq = seq;
        sp->pend_total += n;
        wf_free(ptrs);
        return 0;
    }
    if ((rc = st__db_commit(&s->db)) != 0) {
        return rc;
    }
    st_span_t **ptrs = head_prepare(sp, spans, n, INT64_MIN, &kept);
    after_commit(s, ptrs, kept, seq, n);
    wf_free(ptrs);
    return 0;
}

int st_spans_group_begin(st_store_t *s)
{
    st__spans_t *sp = s->spans;
    if (s->failed || sp == NULL) {
        return ST_E_CLOSED;
    }
    WF_ASSERT(!sp->group);
    int rc = st__db_begin(&s->db);
    if (rc != 0) {
        return rc;
    }
    sp->group = true;
    sp->group_err = 0;
    sp->n_pend = 0;
    sp->pend_seq = 0;
    sp->pend_total = 0;
    /* Nothing resets head_arena while a group is open (seals start only after a commit). */
    sp->group_mark = wf_arena_mark(&sp->head_arena);
    return 0;
}

/* End the group without publishing its spans (their transaction is rolled back). */
static void group_drop(st_store_t *s)
{
    st__spans_t *sp = s->spans;
    st__db_rollback(&s->db);
    sp->group = false;
    sp->n_pend = 0;
    /* The group's copies were never published: no reader holds them. Forgetting them here,
     * rather than at the next seal, keeps a store whose commits keep failing (disk full) from
     * growing by every retried group. */
    wf_arena_rewind(&sp->head_arena, sp->group_mark);
}

int st_spans_group_commit(st_store_t *s)
{
    st__spans_t *sp = s->spans;
    WF_ASSERT(sp->group);
    int rc = sp->group_err;
    if (rc == 0) {
        rc = st__db_commit(&s->db);
    }
    if (rc != 0) {
        group_drop(s);
        return rc;
    }
    sp->group = false;
    size_t n = sp->n_pend;
    sp->n_pend = 0;
    after_commit(s, sp->pend, n, sp->pend_seq, (size_t)sp->pend_total);
    return 0;
}

void st_spans_group_abort(st_store_t *s)
{
    st__spans_t *sp = s->spans;
    if (sp != NULL && sp->group) {
        group_drop(s);
    }
}

/* ---- reading helpers ------------------------------------------------------------------------ */

/*
 * Start a read: borrow a connection, open its read transaction (the snapshot) while holding the
 * head lock, so that head and snapshot agree. Returns with the lock held (rdlock) on success.
 */
static int read_begin(st_store_t *s, sqlite3 **conn)
{
    int rc = st__db_reader_get(&s->db, conn);
    if (rc != 0) {
        return rc;
    }
    pthread_rwlock_rdlock(&s->spans->lock);
    rc = sqlite3_exec(*conn, "BEGIN; SELECT count(*) FROM span_operations WHERE 0", NULL, NULL,
                      NULL);
    if (rc != SQLITE_OK) {
        pthread_rwlock_unlock(&s->spans->lock);
        sqlite3_exec(*conn, "ROLLBACK", NULL, NULL, NULL);
        st__db_reader_put(&s->db, *conn);
        *conn = NULL;
        return wf_sqlite_err(rc);
    }
    return 0;
}

static void read_end(st_store_t *s, sqlite3 *conn)
{
    if (conn != NULL) {
        sqlite3_exec(conn, "COMMIT", NULL, NULL, NULL);
        st__db_reader_put(&s->db, conn);
    }
}

/* Load and open block id into arena a (dctx may be NULL). */
static int block_load(sqlite3 *conn, sqlite3_stmt **st, int64_t id, wf_arena_t *a, ZSTD_DCtx *dctx,
                      st__span_block_t *b)
{
    int rc = 0;
    if (*st == NULL &&
        (rc = prepare_on(conn, "SELECT data FROM span_block_data WHERE id = ?", st)) != 0) {
        return rc;
    }
    sqlite3_bind_int64(*st, 1, id);
    int step = sqlite3_step(*st);
    if (step == SQLITE_ROW) {
        rc = st__span_block_open_dctx(b, sqlite3_column_blob(*st, 0),
                                      (size_t)sqlite3_column_bytes(*st, 0), a, dctx);
        if (rc != 0) {
            WF_LOG(WF_ERROR, "store", "corrupt span block", "id=%lld", (long long)id);
        }
    } else {
        rc = step == SQLITE_DONE ? WF_E_NOTFOUND : wf_sqlite_err(step);
    }
    sqlite3_reset(*st);
    return rc;
}

/*
 * Block id opened, from the cache or loaded through conn (whose snapshot must contain it).
 * The block stays valid until block_release. Any reader thread.
 */
static int block_acquire(st__spans_t *sp, sqlite3 *conn, sqlite3_stmt **st, int64_t id,
                         bcache_ent_t **out)
{
    *out = NULL;
    bcache_ent_t *e = NULL;
    pthread_mutex_lock(&sp->bc_lock);
    for (size_t i = 0; i < BCACHE_N; i++) {
        bcache_ent_t *c = sp->bc[i];
        if (c->id == id) {
            c->refs++;
            c->used = ++sp->bc_tick;
            pthread_mutex_unlock(&sp->bc_lock);
            *out = c;
            return 0;
        }
        if (c->refs == 0 && (e == NULL || c->used < e->used)) {
            e = c;
        }
    }
    if (e != NULL) {
        e->id = 0; /* reserved for this load: nobody finds or evicts it meanwhile */
        e->refs = 1;
    }
    pthread_mutex_unlock(&sp->bc_lock);
    if (e == NULL) {
        e = bcache_ent_new(false); /* every entry is in use: load privately */
        e->refs = 1;
    }
    /* Outside the lock: other readers go on meanwhile. Two readers may load the same block
     * into two entries; both copies are right, and the older ages out. */
    wf_arena_reset(&e->arena);
    int rc = block_load(conn, st, id, &e->arena, e->dctx, &e->b);
    if (!e->cached) {
        if (rc != 0) {
            bcache_ent_free(e);
            return rc;
        }
        *out = e;
        return 0;
    }
    pthread_mutex_lock(&sp->bc_lock);
    if (rc == 0) {
        e->id = id;
        e->used = ++sp->bc_tick;
    } else {
        e->refs = 0;
    }
    pthread_mutex_unlock(&sp->bc_lock);
    *out = rc == 0 ? e : NULL;
    return rc;
}

static void block_release(st__spans_t *sp, bcache_ent_t *e)
{
    if (e == NULL) {
        return;
    }
    if (!e->cached) {
        bcache_ent_free(e);
        return;
    }
    pthread_mutex_lock(&sp->bc_lock);
    WF_ASSERT(e->refs > 0);
    e->refs--;
    pthread_mutex_unlock(&sp->bc_lock);
}

/* ---- trace by id ---------------------------------------------------------------------------- */

typedef struct {
    st_span_t *v;
    size_t n, cap;
} spanvec_t;

static st_span_t *spanvec_push(spanvec_t *sv, size_t k)
{
    if (sv->n + k > sv->cap) {
        size_t cap = sv->cap ? sv->cap : 16;
        while (cap < sv->n + k) {
            cap *= 2;
        }
        sv->v = wf_realloc(sv->v, cap * sizeof(*sv->v));
        sv->cap = cap;
    }
    st_span_t *p = sv->v + sv->n;
    sv->n += k;
    return p;
}

static int cmp_span_start(const void *x, const void *y)
{
    const st_span_t *a = x, *b = y;
    if (a->start_ns != b->start_ns) {
        return a->start_ns < b->start_ns ? -1 : 1;
    }
    return memcmp(a->span_id, b->span_id, 8);
}

void st_span_list_free(st_span_list_t *l)
{
    if (l == NULL) {
        return;
    }
    wf_arena_free(&l->arena);
    wf_free(l);
}

int st_trace_get(st_store_t *s, const uint8_t trace_id[16], st_span_list_t **out)
{
    *out = NULL;
    st_span_list_t *l = wf_calloc(1, sizeof(*l));
    wf_arena_init(&l->arena, 1 << 16, 0);
    spanvec_t sv = {0};
    wf_arena_t tmp;
    wf_arena_init(&tmp, 1 << 14, 0);
    int64_t *blocks = NULL;
    size_t n_blocks = 0, cap_blocks = 0;
    sqlite3 *conn = NULL;
    sqlite3_stmt *st = NULL, *data = NULL;
    int rc = read_begin(s, &conn);
    if (rc != 0) {
        goto fail;
    }
    st__spans_t *sp = s->spans;
    for (size_t i = 0; i < sp->n_head; i++) {
        if (memcmp(sp->head[i]->trace_id, trace_id, 16) == 0) {
            st__span_copy(&l->arena, spanvec_push(&sv, 1), sp->head[i]);
        }
    }
    pthread_rwlock_unlock(&sp->lock);
    if ((rc = prepare_on(conn, "SELECT block FROM span_trace_index WHERE tid = ?", &st)) != 0) {
        goto fail;
    }
    sqlite3_bind_int64(st, 1, trace_key(trace_id));
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (n_blocks == cap_blocks) {
            cap_blocks = cap_blocks ? cap_blocks * 2 : 8;
            blocks = wf_realloc(blocks, cap_blocks * sizeof(*blocks));
        }
        blocks[n_blocks++] = sqlite3_column_int64(st, 0);
    }
    if (step != SQLITE_DONE) {
        rc = wf_sqlite_err(step);
        goto fail;
    }
    for (size_t i = 0; i < n_blocks; i++) {
        bcache_ent_t *e = NULL;
        rc = block_acquire(sp, conn, &data, blocks[i], &e);
        if (rc == WF_E_NOTFOUND) {
            continue; /* deleted by retention after the index row was read: not possible in
                         one snapshot, but harmless */
        }
        if (rc != 0) {
            goto fail;
        }
        long ti = st__span_block_find(&e->b, trace_id);
        if (ti >= 0) { /* else a trace key collision */
            /* Decoded spans point into the shared block: copy them into the list's arena. */
            size_t k = e->b.traces[ti].n_spans;
            wf_arena_reset(&tmp);
            st_span_t *dec = wf_arena_alloc(&tmp, k * sizeof(*dec));
            rc = st__span_block_decode_trace(&e->b, (size_t)ti, &tmp, dec);
            st_span_t *dst = rc == 0 ? spanvec_push(&sv, k) : NULL;
            for (size_t j = 0; j < k && rc == 0; j++) {
                st__span_copy(&l->arena, &dst[j], &dec[j]);
            }
        }
        block_release(sp, e);
        if (rc != 0) {
            goto fail;
        }
    }
    if (sv.n == 0) {
        rc = WF_E_NOTFOUND;
        goto fail;
    }
    qsort(sv.v, sv.n, sizeof(*sv.v), cmp_span_start);
    l->spans = wf_arena_alloc(&l->arena, sv.n * sizeof(*l->spans));
    memcpy(l->spans, sv.v, sv.n * sizeof(*l->spans));
    l->n = sv.n;
    *out = l;
    l = NULL;
fail:
    sqlite3_finalize(st);
    sqlite3_finalize(data);
    read_end(s, conn);
    wf_free(blocks);
    wf_free(sv.v);
    wf_arena_free(&tmp);
    st_span_list_free(l);
    return rc;
}

/* ---- search --------------------------------------------------------------------------------- */

typedef struct {
    const st_trace_query_t *q;
    int64_t start_min, start_max, dur_min, dur_max;
    wf_buf_t text;
    /* results: distinct trace ids with the start of their newest matching span */
    struct hit {
        uint8_t id[16];
        int64_t start;
    } * hits;
    size_t n_hits, cap_hits;
    uint32_t *slots; /* hit index + 1 */
    size_t slot_cap;
} search_t;

static bool attr_matches(search_t *se, const st_attr_t *a, size_t n, const st_tag_filter_t *f)
{
    for (size_t i = 0; i < n; i++) {
        if (!wf_str_eq(a[i].key, f->key)) {
            continue;
        }
        if (a[i].value.type == ST_VAL_STRING) {
            if (wf_str_eq(a[i].value.u.s, f->value)) {
                return true;
            }
            continue;
        }
        wf_buf_reset(&se->text);
        st__span_value_text(&se->text, &a[i].value);
        if (wf_str_eq((wf_str_t){(const char *)se->text.data, se->text.len}, f->value)) {
            return true;
        }
    }
    return false;
}

static bool span_matches(search_t *se, const st_span_t *s)
{
    const st_trace_query_t *q = se->q;
    int64_t dur = s->end_ns - s->start_ns;
    if (s->start_ns < se->start_min || s->start_ns > se->start_max || dur < se->dur_min ||
        dur > se->dur_max) {
        return false;
    }
    if (q->service.len > 0 && !wf_str_eq(q->service, s->service)) {
        return false;
    }
    if (q->operation.len > 0 && !wf_str_eq(q->operation, s->name)) {
        return false;
    }
    if (q->span_kind >= 0 && (int)s->kind != q->span_kind) {
        return false;
    }
    for (size_t t = 0; t < q->n_tags; t++) {
        const st_tag_filter_t *f = &q->tags[t];
        bool ok = attr_matches(se, s->attrs, s->n_attrs, f) ||
                  attr_matches(se, s->resource_attrs, s->n_resource_attrs, f);
        for (size_t e = 0; e < s->n_events && !ok; e++) {
            ok = attr_matches(se, s->events[e].attrs, s->events[e].n_attrs, f);
        }
        if (!ok) {
            return false;
        }
    }
    return true;
}

static void hits_rehash(search_t *se)
{
    size_t cap = se->slot_cap ? se->slot_cap * 2 : 256;
    wf_free(se->slots);
    se->slots = wf_calloc(cap, sizeof(*se->slots));
    se->slot_cap = cap;
    for (size_t i = 0; i < se->n_hits; i++) {
        size_t j = wf_hash64(se->hits[i].id, 16, 0) & (cap - 1);
        while (se->slots[j] != 0) {
            j = (j + 1) & (cap - 1);
        }
        se->slots[j] = (uint32_t)i + 1;
    }
}

static void hit_add(search_t *se, const uint8_t id[16], int64_t start)
{
    if ((se->n_hits + 1) * 2 > se->slot_cap) {
        hits_rehash(se);
    }
    size_t j = wf_hash64(id, 16, 0) & (se->slot_cap - 1);
    while (se->slots[j] != 0) {
        struct hit *h = &se->hits[se->slots[j] - 1];
        if (memcmp(h->id, id, 16) == 0) {
            if (start > h->start) {
                h->start = start;
            }
            return;
        }
        j = (j + 1) & (se->slot_cap - 1);
    }
    if (se->n_hits == se->cap_hits) {
        se->cap_hits = se->cap_hits ? se->cap_hits * 2 : 64;
        se->hits = wf_realloc(se->hits, se->cap_hits * sizeof(*se->hits));
    }
    memcpy(se->hits[se->n_hits].id, id, 16);
    se->hits[se->n_hits].start = start;
    se->slots[j] = (uint32_t)++se->n_hits;
}

static int cmp_hit_newest(const void *x, const void *y)
{
    const struct hit *a = x, *b = y;
    if (a->start != b->start) {
        return a->start > b->start ? -1 : 1;
    }
    return memcmp(a->id, b->id, 16);
}

/* Start of the limit-th newest hit, or INT64_MIN when there are fewer hits. */
static int64_t hits_kth(search_t *se, size_t limit)
{
    if (se->n_hits < limit) {
        return INT64_MIN;
    }
    int64_t *v = wf_malloc(se->n_hits * sizeof(*v));
    for (size_t i = 0; i < se->n_hits; i++) {
        v[i] = se->hits[i].start;
    }
    qsort(v, se->n_hits, sizeof(*v), cmp_u64); /* starts are >= 0: unsigned order is fine */
    int64_t k = v[se->n_hits - limit];
    wf_free(v);
    return k;
}

void st_trace_ids_free(st_trace_ids_t *l)
{
    if (l == NULL) {
        return;
    }
    wf_free(l->ids);
    wf_free(l);
}

/* Bloom filter items the query needs a block to contain. */
static size_t query_items(const st_trace_query_t *q, uint64_t *out)
{
    wf_buf_t b = WF_BUF_INIT;
    size_t n = 0;
    if (q->service.len > 0) {
        out[n++] = st__span_item_service(q->service, &b);
        if (q->operation.len > 0) {
            out[n++] = st__span_item_operation(q->service, q->operation, &b);
        }
    }
    for (size_t i = 0; i < q->n_tags; i++) {
        out[n++] = st__span_item_tag(q->tags[i].key, q->tags[i].value, &b);
    }
    wf_buf_free(&b);
    return n;
}

int st_trace_search(st_store_t *s, const st_trace_query_t *q, st_trace_ids_t **out)
{
    *out = NULL;
    size_t limit = q->limit ? q->limit : DEFAULT_LIMIT;
    search_t se = {.q = q};
    se.start_min = q->start_min_ns > 0 ? q->start_min_ns : INT64_MIN;
    se.start_max = q->start_max_ns > 0 ? q->start_max_ns : INT64_MAX;
    se.dur_min = q->min_duration_ns > 0 ? q->min_duration_ns : INT64_MIN;
    se.dur_max = q->max_duration_ns > 0 ? q->max_duration_ns : INT64_MAX;
    size_t max_items = 2 + q->n_tags;
    uint64_t *items = wf_malloc(max_items * sizeof(*items));
    size_t n_items = query_items(q, items);
    wf_arena_t a;
    wf_arena_init(&a, 1 << 16, 0);
    sqlite3 *conn = NULL;
    sqlite3_stmt *st = NULL, *data = NULL;
    spanvec_t sv = {0};
    int rc = read_begin(s, &conn);
    if (rc != 0) {
        goto out;
    }
    st__spans_t *sp = s->spans;
    for (size_t i = 0; i < sp->n_head; i++) {
        if (span_matches(&se, sp->head[i])) {
            hit_add(&se, sp->head[i]->trace_id, sp->head[i]->start_ns);
        }
    }
    pthread_rwlock_unlock(&sp->lock);
    rc = prepare_on(conn,
                    "SELECT id, max_start, bloom FROM span_blocks"
                    " WHERE max_start >= ?1 AND min_start <= ?2 AND max_dur >= ?3"
                    " AND min_dur <= ?4 ORDER BY max_start DESC",
                    &st);
    if (rc != 0) {
        goto out;
    }
    sqlite3_bind_int64(st, 1, se.start_min);
    sqlite3_bind_int64(st, 2, se.start_max);
    sqlite3_bind_int64(st, 3, se.dur_min);
    sqlite3_bind_int64(st, 4, se.dur_max);
    int step;
    int64_t kth = hits_kth(&se, limit);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        int64_t max_start = sqlite3_column_int64(st, 1);
        if (kth > max_start) {
            break; /* every later block is older than the limit-th hit */
        }
        const uint8_t *bloom = sqlite3_column_blob(st, 2);
        size_t bloom_len = (size_t)sqlite3_column_bytes(st, 2);
        bool maybe = true;
        for (size_t i = 0; i < n_items && maybe; i++) {
            maybe = bloom_may_have(bloom, bloom_len, items[i]);
        }
        if (!maybe) {
            continue;
        }
        bcache_ent_t *e = NULL;
        if ((rc = block_acquire(sp, conn, &data, id, &e)) != 0) {
            goto out;
        }
        const st__span_block_t *b = &e->b;
        size_t before = se.n_hits;
        for (size_t t = 0; t < b->n_traces && rc == 0; t++) {
            /* A trace's decoded spans are only needed while they are matched: reusing the same
             * arena memory for every trace keeps it in cache, where a block's worth of decoded
             * attributes (MBs) was faulted in and released again for every block. */
            wf_arena_reset(&a);
            sv.n = 0;
            st_span_t *spans = spanvec_push(&sv, b->traces[t].n_spans);
            if ((rc = st__span_block_decode_trace(b, t, &a, spans)) != 0) {
                break;
            }
            for (size_t k = 0; k < b->traces[t].n_spans; k++) {
                if (span_matches(&se, &spans[k])) {
                    hit_add(&se, spans[k].trace_id, spans[k].start_ns);
                }
            }
        }
        block_release(sp, e);
        if (rc != 0) {
            goto out;
        }
        if (se.n_hits != before || kth != INT64_MIN) {
            kth = hits_kth(&se, limit);
        }
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        rc = wf_sqlite_err(step);
        goto out;
    }
    if (se.n_hits > 1) {
        qsort(se.hits, se.n_hits, sizeof(*se.hits), cmp_hit_newest);
    }
    st_trace_ids_t *l = wf_calloc(1, sizeof(*l));
    l->n = se.n_hits < limit ? se.n_hits : limit;
    l->ids = wf_malloc((l->n ? l->n : 1) * sizeof(*l->ids));
    for (size_t i = 0; i < l->n; i++) {
        memcpy(l->ids[i], se.hits[i].id, 16);
    }
    *out = l;
out:
    sqlite3_finalize(st);
    sqlite3_finalize(data);
    read_end(s, conn);
    wf_arena_free(&a);
    wf_free(sv.v);
    wf_free(items);
    wf_free(se.hits);
    wf_free(se.slots);
    wf_buf_free(&se.text);
    return rc;
}

/* ---- services and operations ---------------------------------------------------------------- */

int st_services(st_store_t *s, st_strlist_t **out)
{
    *out = NULL;
    sqlite3 *conn = NULL;
    sqlite3_stmt *st = NULL;
    char **items = NULL;
    size_t *lens = NULL, n = 0, cap = 0;
    int rc = st__db_reader_get(&s->db, &conn);
    if (rc != 0) {
        return rc;
    }
    if ((rc = prepare_on(conn, "SELECT DISTINCT service FROM span_operations ORDER BY service",
                         &st)) != 0) {
        goto out;
    }
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            items = wf_realloc(items, cap * sizeof(*items));
            lens = wf_realloc(lens, cap * sizeof(*lens));
        }
        lens[n] = (size_t)sqlite3_column_bytes(st, 0);
        items[n] = wf_strndup((const char *)sqlite3_column_text(st, 0), lens[n]);
        n++;
    }
    if (step != SQLITE_DONE) {
        rc = wf_sqlite_err(step);
        goto out;
    }
    *out = st__strlist_new(items, lens, n);
    items = NULL;
    lens = NULL;
    n = 0;
out:
    for (size_t i = 0; i < n; i++) {
        wf_free(items[i]);
    }
    wf_free(items);
    wf_free(lens);
    sqlite3_finalize(st);
    st__db_reader_put(&s->db, conn);
    return rc;
}

void st_operation_list_free(st_operation_list_t *l)
{
    if (l == NULL) {
        return;
    }
    for (size_t i = 0; i < l->n; i++) {
        wf_free(l->ops[i].name);
    }
    wf_free(l->ops);
    wf_free(l);
}

int st_operations(st_store_t *s, wf_str_t service, int kind, st_operation_list_t **out)
{
    *out = NULL;
    sqlite3 *conn = NULL;
    sqlite3_stmt *st = NULL;
    st_operation_list_t *l = wf_calloc(1, sizeof(*l));
    size_t cap = 0;
    int rc = st__db_reader_get(&s->db, &conn);
    if (rc != 0) {
        wf_free(l);
        return rc;
    }
    if ((rc = prepare_on(conn,
                         "SELECT name, kind FROM span_operations WHERE service = ?1"
                         " AND (?2 < 0 OR kind = ?2) ORDER BY name, kind",
                         &st)) != 0) {
        goto out;
    }
    sqlite3_bind_text(st, 1, service.p ? service.p : "", (int)service.len, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, kind);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (l->n == cap) {
            cap = cap ? cap * 2 : 16;
            l->ops = wf_realloc(l->ops, cap * sizeof(*l->ops));
        }
        l->ops[l->n].name = wf_strndup((const char *)sqlite3_column_text(st, 0),
                                       (size_t)sqlite3_column_bytes(st, 0));
        l->ops[l->n].kind = (st_span_kind_t)sqlite3_column_int(st, 1);
        l->n++;
    }
    if (step != SQLITE_DONE) {
        rc = wf_sqlite_err(step);
        goto out;
    }
    *out = l;
    l = NULL;
out:
    st_operation_list_free(l);
    sqlite3_finalize(st);
    st__db_reader_put(&s->db, conn);
    return rc;
}

/* ---- dependencies --------------------------------------------------------------------------- */

typedef struct {
    uint8_t trace[16];
    uint8_t span[8];
    uint8_t parent[8];
    int64_t start;
    uint32_t service; /* index into the interned service names */
    bool error;       /* status ERROR */
    bool client;      /* kind CLIENT */
} dep_span_t;

typedef struct {
    dep_span_t *v;
    size_t n, cap;
    char **names;
    size_t *lens;
    size_t n_names;
} dep_t;

static uint32_t dep_service(dep_t *d, wf_str_t s)
{
    for (size_t i = 0; i < d->n_names; i++) {
        if (wf_str_eq((wf_str_t){d->names[i], d->lens[i]}, s)) {
            return (uint32_t)i;
        }
    }
    d->names = wf_realloc(d->names, (d->n_names + 1) * sizeof(*d->names));
    d->lens = wf_realloc(d->lens, (d->n_names + 1) * sizeof(*d->lens));
    d->names[d->n_names] = wf_strndup(s.p, s.len);
    d->lens[d->n_names] = s.len;
    return (uint32_t)d->n_names++;
}

static void dep_add(dep_t *d, const st_span_t *s)
{
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 1024;
        d->v = wf_realloc(d->v, d->cap * sizeof(*d->v));
    }
    dep_span_t *x = &d->v[d->n++];
    memcpy(x->trace, s->trace_id, 16);
    memcpy(x->span, s->span_id, 8);
    memcpy(x->parent, s->parent_span_id, 8);
    x->start = s->start_ns;
    x->service = dep_service(d, s->service);
    x->error = s->status_code == ST_STATUS_ERROR;
    x->client = s->kind == ST_SPAN_KIND_CLIENT;
}

void st_dependency_list_free(st_dependency_list_t *l)
{
    if (l == NULL) {
        return;
    }
    for (size_t i = 0; i < l->n; i++) {
        wf_free(l->deps[i].parent);
        wf_free(l->deps[i].child);
    }
    wf_free(l->deps);
    wf_free(l);
}

static int cmp_dep(const void *x, const void *y)
{
    const st_dependency_t *a = x, *b = y;
    int c = strcmp(a->parent, b->parent);
    return c != 0 ? c : strcmp(a->child, b->child);
}

static uint64_t dep_key(const uint8_t trace[16], const uint8_t span[8])
{
    return wf_hash64(span, 8, wf_hash64(trace, 16, 0));
}

/*
 * Parents are looked up among the spans of the blocks (and head) that overlap the window, so a
 * parent that started shortly before from_ns but shares a block with its child still counts.
 */
int st_dependencies(st_store_t *s, int64_t from_ns, int64_t to_ns, st_dependency_list_t **out)
{
    *out = NULL;
    dep_t d = {0};
    wf_arena_t a;
    wf_arena_init(&a, 1 << 20, 0);
    sqlite3 *conn = NULL;
    sqlite3_stmt *st = NULL, *data = NULL;
    spanvec_t sv = {0};
    uint32_t *slots = NULL;
    uint64_t *counts = NULL, *errors = NULL;
    /* One context for the whole scan; it bypasses the block cache, which it would only flush. */
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    WF_ASSERT(dctx != NULL);
    int rc = read_begin(s, &conn);
    if (rc != 0) {
        goto out;
    }
    st__spans_t *sp = s->spans;
    for (size_t i = 0; i < sp->n_head; i++) {
        dep_add(&d, sp->head[i]);
    }
    pthread_rwlock_unlock(&sp->lock);
    if ((rc = prepare_on(conn,
                         "SELECT id FROM span_blocks WHERE max_start >= ?1 AND"
                         " min_start <= ?2",
                         &st)) != 0) {
        goto out;
    }
    sqlite3_bind_int64(st, 1, from_ns);
    sqlite3_bind_int64(st, 2, to_ns);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        wf_arena_reset(&a);
        st__span_block_t b;
        if ((rc = block_load(conn, &data, sqlite3_column_int64(st, 0), &a, dctx, &b)) != 0) {
            goto out;
        }
        for (size_t t = 0; t < b.n_traces; t++) {
            sv.n = 0;
            st_span_t *spans = spanvec_push(&sv, b.traces[t].n_spans);
            if ((rc = st__span_block_decode_trace(&b, t, &a, spans)) != 0) {
                goto out;
            }
            for (size_t k = 0; k < b.traces[t].n_spans; k++) {
                dep_add(&d, &spans[k]);
            }
        }
    }
    if (step != SQLITE_DONE) {
        rc = wf_sqlite_err(step);
        goto out;
    }
    size_t cap = 64;
    while (cap < d.n * 2 + 2) {
        cap *= 2;
    }
    slots = wf_calloc(cap, sizeof(*slots));
    for (size_t i = 0; i < d.n; i++) {
        size_t j = dep_key(d.v[i].trace, d.v[i].span) & (cap - 1);
        while (slots[j] != 0) {
            j = (j + 1) & (cap - 1);
        }
        slots[j] = (uint32_t)i + 1;
    }
    counts = wf_calloc(d.n_names * d.n_names + 1, sizeof(*counts));
    errors = wf_calloc(d.n_names * d.n_names + 1, sizeof(*errors));
    static const uint8_t no_parent[8];
    for (size_t i = 0; i < d.n; i++) {
        const dep_span_t *c = &d.v[i];
        if (c->start < from_ns || c->start > to_ns || memcmp(c->parent, no_parent, 8) == 0) {
            continue;
        }
        size_t j = dep_key(c->trace, c->parent) & (cap - 1);
        for (; slots[j] != 0; j = (j + 1) & (cap - 1)) {
            const dep_span_t *p = &d.v[slots[j] - 1];
            if (memcmp(p->span, c->parent, 8) == 0 && memcmp(p->trace, c->trace, 16) == 0) {
                if (p->service != c->service) {
                    counts[p->service * d.n_names + c->service]++;
                    errors[p->service * d.n_names + c->service] +=
                        c->error || (p->client && p->error);
                }
                break;
            }
        }
    }
    st_dependency_list_t *l = wf_calloc(1, sizeof(*l));
    for (size_t i = 0; i < d.n_names * d.n_names; i++) {
        l->n += counts[i] != 0;
    }
    l->deps = wf_calloc(l->n ? l->n : 1, sizeof(*l->deps));
    size_t k = 0;
    for (size_t i = 0; i < d.n_names * d.n_names; i++) {
        if (counts[i] != 0) {
            l->deps[k].parent = wf_strdup(d.names[i / d.n_names]);
            l->deps[k].child = wf_strdup(d.names[i % d.n_names]);
            l->deps[k].call_count = counts[i];
            l->deps[k].error_count = errors[i];
            k++;
        }
    }
    qsort(l->deps, l->n, sizeof(*l->deps), cmp_dep);
    *out = l;
out:
    sqlite3_finalize(st);
    sqlite3_finalize(data);
    read_end(s, conn);
    wf_arena_free(&a);
    wf_free(sv.v);
    wf_free(slots);
    wf_free(counts);
    wf_free(errors);
    for (size_t i = 0; i < d.n_names; i++) {
        wf_free(d.names[i]);
    }
    wf_free(d.names);
    wf_free(d.lens);
    wf_free(d.v);
    ZSTD_freeDCtx(dctx);
    return rc;
}

/* ---- retention ------------------------------------------------------------------------------ */

int st__spans_retention(st_store_t *s, int64_t cutoff_ns)
{
    st__spans_t *sp = s->spans;
    sqlite3_stmt *sel = NULL, *data = NULL, *del_idx = NULL, *del_blk = NULL, *del_data = NULL;
    wf_arena_t a;
    wf_arena_init(&a, 1 << 20, 0);
    int64_t *ids = NULL;
    size_t n_ids = 0, cap_ids = 0;
    /* The head is filtered below: no seal may be encoding a part of it meanwhile. */
    seal_collect(s, true);
    int rc = st__db_begin(&s->db);
    if (rc != 0) {
        goto out;
    }
    if ((rc = st__db_prepare(&s->db, "SELECT id FROM span_blocks WHERE max_start < ?", &sel)) !=
            0 ||
        (rc = st__db_prepare(&s->db, "DELETE FROM span_trace_index WHERE tid = ? AND block = ?",
                             &del_idx)) != 0 ||
        (rc = st__db_prepare(&s->db, "DELETE FROM span_blocks WHERE id = ?", &del_blk)) != 0 ||
        (rc = st__db_prepare(&s->db, "DELETE FROM span_block_data WHERE id = ?", &del_data)) != 0) {
        goto fail;
    }
    sqlite3_bind_int64(sel, 1, cutoff_ns);
    int step;
    while ((step = sqlite3_step(sel)) == SQLITE_ROW) {
        if (n_ids == cap_ids) {
            cap_ids = cap_ids ? cap_ids * 2 : 64;
            ids = wf_realloc(ids, cap_ids * sizeof(*ids));
        }
        ids[n_ids++] = sqlite3_column_int64(sel, 0);
    }
    if (step != SQLITE_DONE) {
        rc = wf_sqlite_err(step);
        goto fail;
    }
    for (size_t i = 0; i < n_ids; i++) {
        wf_arena_reset(&a);
        st__span_block_t b;
        rc = block_load(s->db.writer, &data, ids[i], &a, NULL, &b);
        if (rc == 0) {
            for (size_t t = 0; t < b.n_traces && rc == 0; t++) {
                sqlite3_bind_int64(del_idx, 1, trace_key(b.traces[t].id));
                sqlite3_bind_int64(del_idx, 2, ids[i]);
                step = sqlite3_step(del_idx);
                sqlite3_reset(del_idx);
                rc = step == SQLITE_DONE ? 0 : wf_sqlite_err(step);
            }
        } else if (rc == WF_E_CORRUPT || rc == WF_E_NOTFOUND) {
            /* An unreadable block cannot name its traces; its index rows, if any, only cost a
               lookup that finds nothing. Delete the block anyway. */
            rc = 0;
        }
        for (int k = 0; k < 2 && rc == 0; k++) {
            sqlite3_stmt *del = k == 0 ? del_blk : del_data;
            sqlite3_bind_int64(del, 1, ids[i]);
            step = sqlite3_step(del);
            sqlite3_reset(del);
            rc = step == SQLITE_DONE ? 0 : wf_sqlite_err(step);
        }
        if (rc != 0) {
            goto fail;
        }
    }
    if ((rc = ops_write_pending(sp)) != 0) {
        goto fail;
    }
    sqlite3_finalize(sel);
    sel = NULL;
    if ((rc = st__db_prepare(&s->db, "DELETE FROM span_operations WHERE last_seen < ?", &sel)) !=
        0) {
        goto fail;
    }
    sqlite3_bind_int64(sel, 1, cutoff_ns);
    if ((step = sqlite3_step(sel)) != SQLITE_DONE) {
        rc = wf_sqlite_err(step);
        goto fail;
    }
    if ((rc = st__db_commit(&s->db)) != 0) {
        goto out;
    }
    ops_mark_written(sp);
    /* Rebuild the operations cache without what the database just forgot. */
    size_t keep = 0;
    for (size_t i = 0; i < sp->n_ops; i++) {
        if (sp->ops[i].last_seen < cutoff_ns) {
            wf_free(sp->ops[i].service);
            wf_free(sp->ops[i].name);
        } else {
            sp->ops[keep++] = sp->ops[i];
        }
    }
    sp->n_ops = keep;
    op_rehash(sp);
    /* Old head spans go now; their memory and log records go with the next seal. */
    pthread_rwlock_wrlock(&sp->lock);
    keep = 0;
    for (size_t i = 0; i < sp->n_head; i++) {
        if (sp->head[i]->start_ns >= cutoff_ns) {
            sp->head[keep++] = sp->head[i];
        }
    }
    sp->n_head = keep;
    pthread_rwlock_unlock(&sp->lock);
    goto out;
fail:
    st__db_rollback(&s->db);
out:
    sqlite3_finalize(sel);
    sqlite3_finalize(data);
    sqlite3_finalize(del_idx);
    sqlite3_finalize(del_blk);
    sqlite3_finalize(del_data);
    wf_free(ids);
    wf_arena_free(&a);
    return rc;
}
