/*
 * st_store.c - the store's lifecycle (open, replay, flush, retention, close), its options,
 * statistics, error names, and the string lists readers return.
 */
#include "st_internal.h"

#include "wf_alloc.h"
#include "wf_clock.h"
#include "wf_err.h"
#include "wf_log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

void st_options_default(st_options_t *o)
{
    memset(o, 0, sizeof(*o));
    o->sync = ST_SYNC_PROCESS;
    o->metrics_retention_ms = 15LL * 86400 * 1000;
    o->spans_retention_ms = 7LL * 86400 * 1000;
    o->max_future_ms = 10 * 60 * 1000;
    o->max_batch_samples = 2000000;
    o->max_batch_spans = 200000;
    o->max_batch_bytes = (size_t)64 << 20;
    o->max_labels = 64;
    o->max_label_name_len = 256;
    o->max_label_value_len = 16384;
}

int64_t st__now_ms(const st_store_t *s)
{
    return s->opt.now_ms ? s->opt.now_ms(s->opt.now_arg) : wf_wall_ms();
}

const char *st_strerror(int code)
{
    switch (code) {
    case ST_E_LABEL_NAME:
        return "invalid label name (must match [a-zA-Z_][a-zA-Z0-9_]*)";
    case ST_E_LABEL_VALUE:
        return "label value is not valid UTF-8";
    case ST_E_LABEL_DUP:
        return "duplicate label name in one series";
    case ST_E_LABEL_LIMIT:
        return "too many labels, or a label name or value too long";
    case ST_E_NO_LABELS:
        return "series has no labels";
    case ST_E_OUT_OF_ORDER:
        return "out of order sample";
    case ST_E_DUPLICATE:
        return "duplicate sample for timestamp with a different value";
    case ST_E_TOO_OLD:
        return "timestamp is older than the retention period";
    case ST_E_TOO_NEW:
        return "timestamp is too far in the future";
    case ST_E_BATCH_LIMIT:
        return "batch is too large";
    case ST_E_REGEX:
        return "invalid regular expression";
    case ST_E_SPAN_INVALID:
        return "invalid span";
    case ST_E_SPAN_LIMIT:
        return "span exceeds a size limit";
    case ST_E_TIMESTAMP:
        return "invalid timestamp";
    case ST_E_CLOSED:
        return "store is closed after a failed write";
    case ST_E_METADATA:
        return "invalid metric metadata";
    case ST_E_UNKNOWN_REF:
        return "series reference names no series";
    default:
        return wf_strerror(code);
    }
}

static int mkdir_p(const char *dir)
{
    char path[4096];
    if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path)) {
        return -ENAMETOOLONG;
    }
    for (char *p = path + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(path, 0750) != 0 && errno != EEXIST) {
                return -errno;
            }
            *p = '/';
        }
    }
    if (mkdir(path, 0750) != 0 && errno != EEXIST) {
        return -errno;
    }
    return 0;
}

int st_store_open(const st_options_t *o, st_store_t **out)
{
    *out = NULL;
    if (o == NULL || o->dir == NULL || o->dir[0] == '\0') {
        return WF_E_INVAL;
    }
    int rc = mkdir_p(o->dir);
    if (rc != 0) {
        WF_LOG(WF_ERROR, "store", "cannot create data directory", "dir=%s err=\"%s\"", o->dir,
               wf_strerror(rc));
        return rc;
    }
    st_store_t *s = wf_calloc(1, sizeof(*s));
    s->opt = *o;
    s->dir = wf_strdup(o->dir);
    s->opt.dir = s->dir;
    if (s->opt.max_batch_bytes == 0 || s->opt.max_batch_bytes > ST_MAX_BATCH_BYTES) {
        s->opt.max_batch_bytes = ST_MAX_BATCH_BYTES;
    }
    char path[4200];
    snprintf(path, sizeof(path), "%s/weft.db", o->dir);
    int db_open = 0;
    rc = st__db_open(&s->db, path, o->sync);
    if (rc != 0) {
        goto fail;
    }
    db_open = 1;
    int64_t t0 = wf_mono_ns();
    if ((rc = st__metrics_open(s)) != 0 || (rc = st__spans_open(s)) != 0) {
        goto fail;
    }
    if ((rc = st__log_replay(s, ST__LOG_SAMPLES, st__metrics_replay)) != 0 ||
        (rc = st__log_replay(s, ST__LOG_SPANS, st__spans_replay)) != 0) {
        WF_LOG(WF_ERROR, "store", "log replay failed", "err=\"%s\"", st_strerror(rc));
        goto fail;
    }
    st_stats_t st;
    st_store_stats(s, &st);
    WF_LOG(WF_INFO, "store", "opened",
           "dir=%s series=%llu head_samples=%llu head_spans=%llu ms=%lld", o->dir,
           (unsigned long long)st.series, (unsigned long long)st.head_samples,
           (unsigned long long)st.head_spans, (long long)((wf_mono_ns() - t0) / 1000000));
    *out = s;
    return 0;
fail:
    if (s->metrics != NULL) {
        st__metrics_close(s);
    }
    if (s->spans != NULL) {
        st__spans_close(s);
    }
    if (db_open) {
        st__db_close(&s->db);
    }
    wf_free(s->dir);
    wf_free(s);
    return rc;
}

int st_store_flush(st_store_t *s)
{
    if (s->failed) {
        return ST_E_CLOSED;
    }
    int rc = st__metrics_flush(s);
    if (rc == 0) {
        rc = st__spans_flush(s);
    }
    return rc;
}

int st_store_retention_run(st_store_t *s)
{
    if (s->failed) {
        return ST_E_CLOSED;
    }
    int64_t now = st__now_ms(s);
    int rc = 0;
    if (s->opt.metrics_retention_ms > 0) {
        rc = st__metrics_retention(s, now - s->opt.metrics_retention_ms);
    }
    if (rc == 0 && s->opt.spans_retention_ms > 0) {
        rc = st__spans_retention(s, (now - s->opt.spans_retention_ms) * 1000000);
    }
    if (rc == 0) {
        /* Hand some freed pages back to the file system; the rest are reused by later writes. */
        rc = st__db_exec(&s->db, "PRAGMA incremental_vacuum(2048)");
    }
    return rc;
}

void st_store_close(st_store_t *s)
{
    if (s == NULL) {
        return;
    }
    if (!s->failed) {
        int rc = st_store_flush(s);
        if (rc != 0) {
            WF_LOG(WF_WARN, "store", "flush on close failed; the log keeps the data", "err=\"%s\"",
                   st_strerror(rc));
        }
    }
    st__metrics_close(s);
    st__spans_close(s);
    sqlite3_exec(s->db.writer, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
    st__db_close(&s->db);
    wf_free(s->dir);
    wf_free(s);
}

static int64_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_size : 0;
}

int st_store_stats(st_store_t *s, st_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    st__metrics_stats(s, out);
    st__spans_stats(s, out);
    char path[4200];
    snprintf(path, sizeof(path), "%s/weft.db", s->dir);
    out->db_bytes = file_size(path);
    snprintf(path, sizeof(path), "%s/weft.db-wal", s->dir);
    out->db_bytes += file_size(path);
    return 0;
}

st_strlist_t *st__strlist_new(char **items, size_t *lens, size_t n)
{
    st_strlist_t *l = wf_calloc(1, sizeof(*l));
    l->items = items;
    l->lens = lens;
    l->n = n;
    return l;
}

size_t st_strlist_len(const st_strlist_t *l)
{
    return l->n;
}

wf_str_t st_strlist_get(const st_strlist_t *l, size_t i)
{
    WF_ASSERT(i < l->n);
    return (wf_str_t){l->items[i], l->lens[i]};
}

void st_strlist_free(st_strlist_t *l)
{
    if (l == NULL) {
        return;
    }
    for (size_t i = 0; i < l->n; i++) {
        wf_free(l->items[i]);
    }
    wf_free(l->items);
    wf_free(l->lens);
    wf_free(l);
}
