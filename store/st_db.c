/*
 * st_db.c - the store's SQLite connections and its write-ahead log table.
 *
 * Durability comes from SQLite in WAL mode: a COMMIT appends frames, each with a checksum that
 * chains over the previous ones, to weft.db-wal. With synchronous=NORMAL the frames reach the
 * kernel before COMMIT returns (a kill -9 loses nothing acknowledged); with synchronous=FULL they
 * are fsync'ed too. On open after a crash SQLite replays the WAL up to the last frame whose
 * checksum chain is intact and whose transaction is complete: a torn tail is dropped, never
 * half-applied.
 *
 * The log table holds records that were acknowledged but whose data lives only in memory (the
 * head). A flush seals the head into the database and deletes those records in one transaction.
 */
#include "st_internal.h"

#include "wf_alloc.h"
#include "wf_err.h"
#include "wf_sqlite.h"
#include "wf_log.h"

#include <errno.h>
#include <string.h>

static int open_conn(const char *path, int flags, sqlite3 **out)
{
    sqlite3 *c = NULL;
    int rc = sqlite3_open_v2(path, &c, flags | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        WF_LOG(WF_ERROR, "store", "cannot open database", "path=%s err=\"%s\"", path,
               c ? sqlite3_errmsg(c) : sqlite3_errstr(rc));
        sqlite3_close(c);
        return wf_sqlite_err(rc);
    }
    sqlite3_busy_timeout(c, 10000);
    sqlite3_extended_result_codes(c, 1);
    *out = c;
    return 0;
}

static int exec_on(sqlite3 *c, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(c, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        WF_LOG(WF_ERROR, "store", "sql failed", "sql=\"%.80s\" err=\"%s\"", sql,
               msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return wf_sqlite_err(rc);
    }
    return 0;
}

int st__db_open(st__db_t *db, const char *path, st_sync_t sync)
{
    memset(db, 0, sizeof(*db));
    pthread_mutex_init(&db->pool_mu, NULL);
    db->path = wf_strdup(path);
    int rc = open_conn(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &db->writer);
    if (rc != 0) {
        goto fail;
    }
    /*
     * WAL: readers never block the writer. The page cache is sized for the index and hot
     * chunks; auto-checkpoints keep the -wal file bounded. auto_vacuum=INCREMENTAL lets
     * retention hand pages back when asked; freed pages are reused by later writes anyway.
     */
    rc = exec_on(db->writer, "PRAGMA auto_vacuum=INCREMENTAL");
    if (rc == 0) {
        rc = exec_on(db->writer, "PRAGMA journal_mode=WAL");
    }
    if (rc == 0) {
        rc = exec_on(db->writer, sync == ST_SYNC_POWER ? "PRAGMA synchronous=FULL"
                                                       : "PRAGMA synchronous=NORMAL");
    }
    if (rc == 0) {
        rc = exec_on(db->writer, "PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY;"
                                 "PRAGMA journal_size_limit=67108864;"
                                 "CREATE TABLE IF NOT EXISTS log("
                                 " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                                 " kind INTEGER NOT NULL,"
                                 " payload BLOB NOT NULL)");
    }
    if (rc != 0) {
        goto fail;
    }
    return 0;
fail:
    st__db_close(db);
    return rc;
}

void st__db_close(st__db_t *db)
{
    for (int i = 0; i < db->n_idle; i++) {
        sqlite3_close(db->idle[i]);
    }
    db->n_idle = 0;
    sqlite3_finalize(db->log_insert);
    db->log_insert = NULL;
    if (db->writer != NULL) {
        sqlite3_close(db->writer);
        db->writer = NULL;
    }
    wf_free(db->path);
    db->path = NULL;
    pthread_mutex_destroy(&db->pool_mu);
}

int st__db_exec(st__db_t *db, const char *sql)
{
    return exec_on(db->writer, sql);
}

int st__db_begin(st__db_t *db)
{
    WF_ASSERT(!db->in_tx);
    int rc = exec_on(db->writer, "BEGIN IMMEDIATE");
    if (rc == 0) {
        db->in_tx = 1;
    }
    return rc;
}

int st__db_commit(st__db_t *db)
{
    WF_ASSERT(db->in_tx);
    int rc = exec_on(db->writer, "COMMIT");
    if (rc != 0) {
        st__db_rollback(db);
        return rc;
    }
    db->in_tx = 0;
    return 0;
}

void st__db_rollback(st__db_t *db)
{
    if (db->in_tx) {
        if (sqlite3_get_autocommit(db->writer) == 0) {
            sqlite3_exec(db->writer, "ROLLBACK", NULL, NULL, NULL);
        }
        db->in_tx = 0;
    }
}

int st__db_prepare(st__db_t *db, const char *sql, sqlite3_stmt **out)
{
    int rc = sqlite3_prepare_v3(db->writer, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);
    if (rc != SQLITE_OK) {
        WF_LOG(WF_ERROR, "store", "prepare failed", "sql=\"%.80s\" err=\"%s\"", sql,
               sqlite3_errmsg(db->writer));
        return wf_sqlite_err(rc);
    }
    return 0;
}

int st__db_reader_get(st__db_t *db, sqlite3 **out)
{
    pthread_mutex_lock(&db->pool_mu);
    if (db->n_idle > 0) {
        *out = db->idle[--db->n_idle];
        pthread_mutex_unlock(&db->pool_mu);
        return 0;
    }
    pthread_mutex_unlock(&db->pool_mu);
    int rc = open_conn(db->path, SQLITE_OPEN_READONLY, out);
    if (rc == 0) {
        exec_on(*out, "PRAGMA cache_size=-16384");
    }
    return rc;
}

void st__db_reader_put(st__db_t *db, sqlite3 *conn)
{
    pthread_mutex_lock(&db->pool_mu);
    if (db->n_idle < ST__READERS_MAX) {
        db->idle[db->n_idle++] = conn;
        conn = NULL;
    }
    pthread_mutex_unlock(&db->pool_mu);
    if (conn != NULL) {
        sqlite3_close(conn);
    }
}

int st__log_append(st__db_t *db, int kind, const void *payload, size_t len, int64_t *seq)
{
    int rc = SQLITE_OK;
    if (db->log_insert == NULL) {
        rc = sqlite3_prepare_v3(db->writer, "INSERT INTO log(kind, payload) VALUES(?, ?)", -1,
                                SQLITE_PREPARE_PERSISTENT, &db->log_insert, NULL);
    }
    if (rc == SQLITE_OK) {
        sqlite3_stmt *st = db->log_insert;
        sqlite3_bind_int(st, 1, kind);
        sqlite3_bind_blob64(st, 2, payload, len, SQLITE_STATIC);
        rc = sqlite3_step(st);
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    if (rc != SQLITE_DONE) {
        WF_LOG(WF_ERROR, "store", "log append failed", "err=\"%s\"", sqlite3_errmsg(db->writer));
        return wf_sqlite_err(rc);
    }
    if (seq != NULL) {
        *seq = sqlite3_last_insert_rowid(db->writer);
    }
    return 0;
}

int st__log_truncate(st__db_t *db, int kind, int64_t upto)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db->writer, "DELETE FROM log WHERE kind = ? AND seq <= ?", -1, &st,
                                NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int(st, 1, kind);
        sqlite3_bind_int64(st, 2, upto);
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : wf_sqlite_err(rc);
}

int st__log_replay(st_store_t *s, int kind, st__log_replay_cb cb)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        s->db.writer, "SELECT seq, payload FROM log WHERE kind = ? ORDER BY seq", -1, &st, NULL);
    if (rc != SQLITE_OK) {
        return wf_sqlite_err(rc);
    }
    sqlite3_bind_int(st, 1, kind);
    int out = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        out = cb(s, sqlite3_column_int64(st, 0), sqlite3_column_blob(st, 1),
                 (size_t)sqlite3_column_bytes(st, 1));
        if (out != 0) {
            break;
        }
    }
    if (out == 0 && rc != SQLITE_DONE) {
        out = wf_sqlite_err(rc);
    }
    sqlite3_finalize(st);
    return out;
}
