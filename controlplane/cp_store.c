/*
 * cp_store.c - the control plane's SQLite database: resources with Kubernetes-style versions,
 * and the registry's rows (see cp_store.h for the contract).
 *
 * One connection behind one mutex: the control plane's write rate is that of people applying
 * configuration and of heartbeats, far below what one connection serves, and one connection
 * makes every read see every committed write without reasoning about snapshots.
 */
#include "cp_store.h"

#include "wf_alloc.h"
#include "wf_err.h"
#include "wf_sqlite.h"
#include "wf_log.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

struct cp_store {
    sqlite3 *db;
    pthread_mutex_t mu;
    int64_t rv; /* the current resourceVersion, mirrored from the meta table */
};

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS resources("
    " kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,"
    " api_version TEXT NOT NULL, spec TEXT NOT NULL, doc TEXT NOT NULL,"
    " resource_version INTEGER NOT NULL, generation INTEGER NOT NULL,"
    " created_ms INTEGER NOT NULL, PRIMARY KEY(kind, namespace, name)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS workloads("
    " id TEXT PRIMARY KEY, doc TEXT NOT NULL, expires_ms INTEGER NOT NULL) WITHOUT ROWID;";

static int exec_sql(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        WF_LOG(WF_ERROR, "control", "sql failed", "sql=\"%.60s\" err=\"%s\"", sql,
               msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return wf_sqlite_err(rc);
    }
    return 0;
}

static int prep(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
    int rc = sqlite3_prepare_v2(db, sql, -1, st, NULL);
    if (rc != SQLITE_OK) {
        WF_LOG(WF_ERROR, "control", "sql prepare failed", "sql=\"%.60s\" err=\"%s\"", sql,
               sqlite3_errmsg(db));
        return wf_sqlite_err(rc);
    }
    return 0;
}

static char *col_dup(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return wf_strdup(t ? (const char *)t : "");
}

int cp_store_open(const char *dir, cp_store_t **out)
{
    char path[PATH_MAX];
    cp_store_t *s = NULL;
    sqlite3_stmt *st = NULL;
    int err;

    if (snprintf(path, sizeof(path), "%s/control.db", dir) >= (int)sizeof(path)) {
        return WF_E_INVAL;
    }
    s = wf_calloc(1, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    int rc = sqlite3_open_v2(
        path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        WF_LOG(WF_ERROR, "control", "cannot open database", "path=%s err=\"%s\"", path,
               s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        err = wf_sqlite_err(rc);
        goto fail;
    }
    sqlite3_busy_timeout(s->db, 10000);
    sqlite3_extended_result_codes(s->db, 1);
    if ((err = exec_sql(s->db, "PRAGMA journal_mode=WAL;")) < 0 ||
        (err = exec_sql(s->db, "PRAGMA synchronous=NORMAL;")) < 0 ||
        (err = exec_sql(s->db, schema_sql)) < 0) {
        goto fail;
    }
    if ((err = prep(s->db, "SELECT value FROM meta WHERE key='rv'", &st)) < 0) {
        goto fail;
    }
    if (sqlite3_step(st) == SQLITE_ROW) {
        s->rv = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    *out = s;
    return 0;
fail:
    cp_store_close(s);
    return err;
}

void cp_store_close(cp_store_t *s)
{
    if (s == NULL) {
        return;
    }
    sqlite3_close(s->db);
    pthread_mutex_destroy(&s->mu);
    wf_free(s);
}

void cp_stored_free(cp_stored_t *r)
{
    if (r == NULL) {
        return;
    }
    wf_free(r->kind);
    wf_free(r->ns);
    wf_free(r->name);
    wf_free(r->api_version);
    wf_free(r->spec);
    wf_free(r->doc);
    memset(r, 0, sizeof(*r));
}

void cp_stored_list_free(cp_stored_t *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cp_stored_free(&list[i]);
    }
    wf_free(list);
}

#define RES_COLS                                                                                   \
    "kind, namespace, name, api_version, spec, doc, resource_version, generation, created_ms"

static void row_to_resource(sqlite3_stmt *st, cp_stored_t *r)
{
    r->kind = col_dup(st, 0);
    r->ns = col_dup(st, 1);
    r->name = col_dup(st, 2);
    r->api_version = col_dup(st, 3);
    r->spec = col_dup(st, 4);
    r->doc = col_dup(st, 5);
    r->resource_version = sqlite3_column_int64(st, 6);
    r->generation = sqlite3_column_int64(st, 7);
    r->created_ms = sqlite3_column_int64(st, 8);
}

/* The row for the key into *out (when not NULL); 1 found, 0 absent, negative on error. */
static int get_locked(cp_store_t *s, const char *kind, const char *ns, const char *name,
                      cp_stored_t *out)
{
    sqlite3_stmt *st = NULL;
    int err =
        prep(s->db, "SELECT " RES_COLS " FROM resources WHERE kind=?1 AND namespace=?2 AND name=?3",
             &st);
    if (err < 0) {
        return err;
    }
    sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, ns, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        if (out != NULL) {
            row_to_resource(st, out);
        }
        err = 1;
    } else if (rc == SQLITE_DONE) {
        err = 0;
    } else {
        err = wf_sqlite_err(rc);
    }
    sqlite3_finalize(st);
    return err;
}

static int put_locked(cp_store_t *s, const cp_stored_t *r)
{
    sqlite3_stmt *st = NULL;
    int err = prep(s->db,
                   "INSERT OR REPLACE INTO resources(" RES_COLS ") VALUES(?,?,?,?,?,?,?,?,?)", &st);
    if (err < 0) {
        return err;
    }
    sqlite3_bind_text(st, 1, r->kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, r->ns, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, r->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, r->api_version, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, r->spec, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, r->doc, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, r->resource_version);
    sqlite3_bind_int64(st, 8, r->generation);
    sqlite3_bind_int64(st, 9, r->created_ms);
    err = wf_sqlite_err(sqlite3_step(st));
    sqlite3_finalize(st);
    return err;
}

static int delete_locked(cp_store_t *s, const char *kind, const char *ns, const char *name)
{
    sqlite3_stmt *st = NULL;
    int err = prep(s->db, "DELETE FROM resources WHERE kind=?1 AND namespace=?2 AND name=?3", &st);
    if (err < 0) {
        return err;
    }
    sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, ns, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
    err = wf_sqlite_err(sqlite3_step(st));
    sqlite3_finalize(st);
    return err;
}

/* One write inside the open transaction; rv is the resourceVersion it gets (unless it changes
 * nothing: res->change says). */
static int write_one(cp_store_t *s, const cp_write_t *w, int64_t rv, int64_t now_ms,
                     cp_stored_t *res)
{
    cp_stored_t cur = {0};
    int err = get_locked(s, w->kind, w->ns, w->name, &cur);
    if (err < 0) {
        return err;
    }
    bool exists = err == 1;
    switch (w->op) {
    case CP_OP_CREATE:
        if (exists) {
            err = CP_E_EXISTS;
            goto out;
        }
        break;
    case CP_OP_UPDATE:
    case CP_OP_DELETE:
        if (!exists) {
            err = WF_E_NOTFOUND;
            goto out;
        }
        if (w->expect_rv != 0 && w->expect_rv != cur.resource_version) {
            err = CP_E_CONFLICT;
            goto out;
        }
        break;
    case CP_OP_APPLY:
        break;
    }
    if (w->op == CP_OP_DELETE) {
        if ((err = delete_locked(s, w->kind, w->ns, w->name)) < 0) {
            goto out;
        }
        cur.resource_version = rv;
        cur.change = CP_DELETED;
        *res = cur;
        return 0;
    }
    WF_ASSERT(w->api_version != NULL && w->spec != NULL && w->doc != NULL);
    if (exists && strcmp(cur.api_version, w->api_version) == 0 && strcmp(cur.doc, w->doc) == 0 &&
        strcmp(cur.spec, w->spec) == 0) {
        cur.change = CP_UNCHANGED;
        *res = cur;
        return 0;
    }
    res->kind = wf_strdup(w->kind);
    res->ns = wf_strdup(w->ns);
    res->name = wf_strdup(w->name);
    res->api_version = wf_strdup(w->api_version);
    res->spec = wf_strdup(w->spec);
    res->doc = wf_strdup(w->doc);
    res->resource_version = rv;
    res->change = exists ? CP_CONFIGURED : CP_CREATED;
    if (exists) {
        /* Metadata-only changes (labels, annotations) keep the generation, as Kubernetes does:
         * proxies and status consumers track the spec. */
        res->generation = cur.generation + (strcmp(cur.spec, w->spec) != 0);
        res->created_ms = cur.created_ms;
    } else {
        res->generation = 1;
        res->created_ms = now_ms;
    }
    err = put_locked(s, res);
    if (err < 0) {
        cp_stored_free(res);
    }
out:
    cp_stored_free(&cur);
    return err;
}

static int set_rv_locked(cp_store_t *s, int64_t rv)
{
    sqlite3_stmt *st = NULL;
    int err = prep(s->db, "INSERT OR REPLACE INTO meta(key, value) VALUES('rv', ?1)", &st);
    if (err < 0) {
        return err;
    }
    sqlite3_bind_int64(st, 1, rv);
    err = wf_sqlite_err(sqlite3_step(st));
    sqlite3_finalize(st);
    return err;
}

int cp_store_write(cp_store_t *s, const cp_write_t *writes, size_t n, int64_t now_ms,
                   cp_stored_t *out, size_t *failed)
{
    cp_stored_t *res = wf_calloc(n ? n : 1, sizeof(*res));
    size_t done = 0;
    int err;

    pthread_mutex_lock(&s->mu);
    int64_t rv = s->rv;
    if ((err = exec_sql(s->db, "BEGIN IMMEDIATE")) < 0) {
        goto fail;
    }
    for (; done < n; done++) {
        if ((err = write_one(s, &writes[done], rv + 1, now_ms, &res[done])) < 0) {
            if (failed != NULL) {
                *failed = done;
            }
            goto rollback;
        }
        if (res[done].change != CP_UNCHANGED) {
            rv++;
        }
    }
    if ((err = set_rv_locked(s, rv)) < 0 || (err = exec_sql(s->db, "COMMIT")) < 0) {
        if (failed != NULL) {
            *failed = n;
        }
        goto rollback;
    }
    s->rv = rv;
    pthread_mutex_unlock(&s->mu);
    if (out != NULL) {
        memcpy(out, res, n * sizeof(*res));
        wf_free(res);
    } else {
        cp_stored_list_free(res, n);
    }
    return 0;
rollback:
    (void)exec_sql(s->db, "ROLLBACK");
fail:
    pthread_mutex_unlock(&s->mu);
    cp_stored_list_free(res, done);
    return err;
}

int cp_store_get(cp_store_t *s, const char *kind, const char *ns, const char *name,
                 cp_stored_t *out)
{
    pthread_mutex_lock(&s->mu);
    int err = get_locked(s, kind, ns, name, out);
    pthread_mutex_unlock(&s->mu);
    if (err == 0) {
        return WF_E_NOTFOUND;
    }
    return err < 0 ? err : 0;
}

int cp_store_list(cp_store_t *s, const char *kind, const char *ns, cp_stored_t **out, size_t *n,
                  int64_t *rv)
{
    sqlite3_stmt *st = NULL;
    cp_stored_t *list = NULL;
    size_t len = 0, cap = 0;
    int err, rc;

    pthread_mutex_lock(&s->mu);
    err = prep(s->db,
               "SELECT " RES_COLS " FROM resources WHERE kind=?1 AND (?2 IS NULL OR namespace=?2)"
               " ORDER BY namespace, name",
               &st);
    if (err < 0) {
        goto out;
    }
    sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
    if (ns != NULL) {
        sqlite3_bind_text(st, 2, ns, -1, SQLITE_STATIC);
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (len == cap) {
            cap = cap ? cap * 2 : 8;
            list = wf_realloc(list, cap * sizeof(*list));
        }
        row_to_resource(st, &list[len++]);
    }
    if (rc != SQLITE_DONE) {
        err = wf_sqlite_err(rc);
        cp_stored_list_free(list, len);
        list = NULL;
        len = 0;
        goto out;
    }
    if (rv != NULL) {
        *rv = s->rv;
    }
    *out = list;
    *n = len;
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    return err;
}

int64_t cp_store_rv(cp_store_t *s)
{
    pthread_mutex_lock(&s->mu);
    int64_t rv = s->rv;
    pthread_mutex_unlock(&s->mu);
    return rv;
}

int cp_store_wl_put(cp_store_t *s, const char *id, const char *doc, int64_t expires_ms)
{
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&s->mu);
    int err =
        prep(s->db, "INSERT OR REPLACE INTO workloads(id, doc, expires_ms) VALUES(?,?,?)", &st);
    if (err == 0) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, doc, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, expires_ms);
        err = wf_sqlite_err(sqlite3_step(st));
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    return err;
}

int cp_store_wl_delete(cp_store_t *s, const char *id)
{
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&s->mu);
    int err = prep(s->db, "DELETE FROM workloads WHERE id=?1", &st);
    if (err == 0) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        err = wf_sqlite_err(sqlite3_step(st));
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    return err;
}

int cp_store_wl_load(cp_store_t *s,
                     int (*cb)(void *arg, const char *id, const char *doc, int64_t expires_ms),
                     void *arg)
{
    sqlite3_stmt *st = NULL;
    int rc;
    pthread_mutex_lock(&s->mu);
    int err = prep(s->db, "SELECT id, doc, expires_ms FROM workloads ORDER BY id", &st);
    if (err < 0) {
        goto out;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        err = cb(arg, (const char *)sqlite3_column_text(st, 0),
                 (const char *)sqlite3_column_text(st, 1), sqlite3_column_int64(st, 2));
        if (err < 0) {
            goto out;
        }
    }
    err = rc == SQLITE_DONE ? 0 : wf_sqlite_err(rc);
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    return err;
}
