/*
 * st_internal.h - what the store's modules share inside store/ (st__ names). Not for callers.
 *
 * The store is one SQLite database with one writer connection (used only by the writer thread)
 * and a pool of reader connections (one borrowed per read call). Schema changes are made by the
 * module that owns the tables, in its *_open hook, with CREATE ... IF NOT EXISTS.
 *
 * Lifecycle hooks each half (metrics: st_metrics*.c, spans: st_span*.c) implements:
 *   open      create tables, load persistent state (series index, ...); writer connection
 *   replay    called for every log record of the half's kind, in order, after open
 *   flush     seal the in-memory head into the database and truncate the half's log records
 *             (inside one transaction, so that a crash leaves either the log or the sealed data)
 *   retention delete data older than cutoff (ms for metrics, ns for spans)
 *   close     free memory (the store has flushed before)
 */
#ifndef ST_INTERNAL_H
#define ST_INTERNAL_H

#include "st_span.h"
#include "st_store.h"
#include "wf_sqlite.h" /* wf_sqlite_err: SQLite codes as ours */

#include <pthread.h>
#include <sqlite3.h>

typedef struct st__metrics st__metrics_t;
typedef struct st__spans st__spans_t;

#define ST__READERS_MAX 16

typedef struct {
    sqlite3 *writer;
    pthread_mutex_t pool_mu;
    sqlite3 *idle[ST__READERS_MAX]; /* reader connections not in use */
    int n_idle;
    char *path;
    int in_tx;                /* the writer is inside BEGIN ... COMMIT */
    sqlite3_stmt *log_insert; /* cached INSERT INTO log */
} st__db_t;

/* Log record kinds (the `kind` column of the log table). */
enum {
    ST__LOG_SAMPLES = 1,
    ST__LOG_SPANS = 2,
};

struct st_store {
    st_options_t opt;
    char *dir;
    st__db_t db;
    st__metrics_t *metrics;
    st__spans_t *spans;
    int failed; /* a write failed half-way in memory: refuse further writes (ST_E_CLOSED) */
};

/* Current time in ms according to the store's clock option. */
int64_t st__now_ms(const st_store_t *s);

/* ---- st_db.c: connections, transactions, the write-ahead log ---------------------------- */

int st__db_open(st__db_t *db, const char *path, st_sync_t sync);
void st__db_close(st__db_t *db);
/* Run SQL without results on the writer; returns 0 or -EIO with a logged message. */
int st__db_exec(st__db_t *db, const char *sql);
int st__db_begin(st__db_t *db);
int st__db_commit(st__db_t *db);
void st__db_rollback(st__db_t *db);
/* Prepare on the writer. */
int st__db_prepare(st__db_t *db, const char *sql, sqlite3_stmt **out);
/* Borrow a reader connection (opened read-only on first need) and give it back. */
int st__db_reader_get(st__db_t *db, sqlite3 **out);
void st__db_reader_put(st__db_t *db, sqlite3 *conn);

/*
 * Append a log record inside the caller's transaction (the caller commits; the record is
 * durable when the commit returns). *seq receives the record's sequence number.
 */
int st__log_append(st__db_t *db, int kind, const void *payload, size_t len, int64_t *seq);
/* Delete the records of `kind` with seq <= upto, inside the caller's transaction. */
int st__log_truncate(st__db_t *db, int kind, int64_t upto);
typedef int (*st__log_replay_cb)(st_store_t *s, int64_t seq, const void *payload, size_t len);
/* Call cb for each record of kind in sequence order; stops at the first error. */
int st__log_replay(st_store_t *s, int kind, st__log_replay_cb cb);

/* ---- hooks implemented by the metrics half (st_metrics*.c) ------------------------------ */

int st__metrics_open(st_store_t *s);
int st__metrics_replay(st_store_t *s, int64_t seq, const void *payload, size_t len);
int st__metrics_flush(st_store_t *s);
int st__metrics_retention(st_store_t *s, int64_t cutoff_ms);
void st__metrics_stats(st_store_t *s, st_stats_t *out);
void st__metrics_close(st_store_t *s);

/* ---- hooks implemented by the span half (st_span*.c) ------------------------------------ */

int st__spans_open(st_store_t *s);
int st__spans_replay(st_store_t *s, int64_t seq, const void *payload, size_t len);
int st__spans_flush(st_store_t *s);
int st__spans_retention(st_store_t *s, int64_t cutoff_ns);
void st__spans_stats(st_store_t *s, st_stats_t *out);
void st__spans_close(st_store_t *s);

/* ---- st_strlist (st_store.c): sorted string lists returned by readers --------------------- */

struct st_strlist {
    char **items;
    size_t *lens;
    size_t n;
};

/* Build a list taking ownership of items (wf_malloc'ed strings). */
st_strlist_t *st__strlist_new(char **items, size_t *lens, size_t n);

#endif
