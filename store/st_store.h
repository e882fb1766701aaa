/*
 * st_store.h - the embedded telemetry store: time series and spans in one SQLite database.
 *
 * One st_store_t per data directory. Its database file is `weft.db` (SQLite, WAL mode).
 *
 * Threads: one writer thread calls the write functions (st_batch_*, st_spans_append,
 * st_store_flush, st_store_retention_run); any number of reader threads call the read functions
 * (st_select, st_label_*, st_metadata_get, st_trace_*, st_services, st_operations,
 * st_dependencies) concurrently with the writer and with each other. Readers see every
 * committed write.
 *
 * Durability: a write function that returns 0 has made its data survive a kill -9 of the
 * process (sync ST_SYNC_PROCESS, the default) or a power loss (ST_SYNC_POWER). Writes go to
 * the write-ahead log (the log table, see st_db.c) first; recent samples and spans are kept in
 * memory (the head) and are sealed into compressed chunks and blocks later. On open, the log is
 * replayed; a torn tail (a crash inside a write) is detected by SQLite's WAL checksums and dropped.
 *
 * Errors: 0 or a negative code, either -errno or an ST_E_* / WF_E_* code; st_strerror() names
 * them.
 */
#ifndef ST_STORE_H
#define ST_STORE_H

#include "wf_str.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    ST_E_LABEL_NAME = -1100,   /* label name empty or not [a-zA-Z_][a-zA-Z0-9_]* */
    ST_E_LABEL_VALUE = -1101,  /* label value is not valid UTF-8 */
    ST_E_LABEL_DUP = -1102,    /* the same label name twice in one series */
    ST_E_LABEL_LIMIT = -1103,  /* too many labels, or a name/value too long */
    ST_E_NO_LABELS = -1104,    /* a series with no (non-empty) labels */
    ST_E_OUT_OF_ORDER = -1105, /* sample older than the series' newest sample */
    ST_E_DUPLICATE = -1106,    /* same timestamp as the newest sample, different value */
    ST_E_TOO_OLD = -1107,      /* timestamp before the retention cut-off */
    ST_E_TOO_NEW = -1108,      /* timestamp too far in the future */
    ST_E_BATCH_LIMIT = -1109,  /* the batch holds too many samples or spans, or bytes */
    ST_E_REGEX = -1110,        /* a matcher's regular expression does not compile */
    ST_E_SPAN_INVALID = -1111, /* zero trace or span id, end before start, ... */
    ST_E_SPAN_LIMIT = -1112,   /* a span exceeds a size limit (attributes, events, strings) */
    ST_E_TIMESTAMP = -1113,    /* negative or otherwise impossible timestamp */
    ST_E_CLOSED = -1114,       /* the store is closed or failed; no more writes */
    ST_E_METADATA = -1115,     /* invalid metric metadata */
    ST_E_UNKNOWN_REF = -1116,  /* a series reference that names no series (any more) */
};

const char *st_strerror(int code);

typedef enum {
    ST_SYNC_PROCESS = 0, /* survives kill -9 (SQLite WAL, synchronous=NORMAL) */
    ST_SYNC_POWER = 1,   /* survives power loss (synchronous=FULL: fsync on every commit) */
} st_sync_t;

typedef struct {
    const char *dir;              /* data directory, created if missing (borrowed) */
    st_sync_t sync;               /* default ST_SYNC_PROCESS */
    int64_t metrics_retention_ms; /* 0 = keep forever; default 15 days */
    int64_t spans_retention_ms;   /* 0 = keep forever; default 7 days */
    int64_t max_future_ms;        /* refuse samples/spans newer than now + this; default 10 min */
    size_t max_batch_samples;     /* per st_batch; default 2,000,000 */
    size_t max_batch_spans;       /* per st_spans_append; default 200,000 */
    /* Bytes of one write batch before compression (new series' labels, samples and metadata;
     * or encoded spans). Default 64 MiB, at most ST_MAX_BATCH_BYTES (what replay accepts). */
    size_t max_batch_bytes;
    size_t max_labels;          /* per series; default 64 */
    size_t max_label_name_len;  /* bytes; default 256 */
    size_t max_label_value_len; /* bytes; default 16384 */
    /* Clock in ms since the epoch, for tests that need to move time; NULL = wall clock. */
    int64_t (*now_ms)(void *arg);
    void *now_arg;
} st_options_t;

#define ST_MAX_BATCH_BYTES ((size_t)256 << 20)

void st_options_default(st_options_t *o);

typedef struct st_store st_store_t;

/* Open (or create) the store in o->dir and replay its log. *out is NULL on failure. */
int st_store_open(const st_options_t *o, st_store_t **out);
/* Seal what is in memory, checkpoint, and close. NULL is a no-op. */
void st_store_close(st_store_t *s);
/* Seal the in-memory head into chunks/blocks and truncate the log. Writer thread. */
int st_store_flush(st_store_t *s);
/* Delete data older than the retention periods now (also done periodically by the writer). */
int st_store_retention_run(st_store_t *s);

typedef struct {
    uint64_t series;        /* series known to the index */
    uint64_t head_samples;  /* samples in memory not yet sealed */
    uint64_t sealed_chunks; /* chunks in the database */
    uint64_t samples_total; /* samples appended since open */
    uint64_t spans_total;   /* spans appended since open */
    uint64_t head_spans;    /* spans in memory not yet sealed */
    int64_t db_bytes;       /* size of weft.db + its -wal file */
} st_stats_t;

int st_store_stats(st_store_t *s, st_stats_t *out);

/* ---- Metrics: writing ------------------------------------------------------------------- */

typedef struct {
    wf_str_t name;
    wf_str_t value;
} st_label_t;

typedef struct st_batch st_batch_t;

/*
 * Start a batch (writer thread). A batch is committed atomically or not at all. One batch may be
 * open at a time per store (WF_E_INVAL otherwise); ST_E_CLOSED after a failed write.
 */
int st_batch_begin(st_store_t *s, st_batch_t **out);

/*
 * Add one sample. labels need not be sorted; they are validated and copied (borrowed only for
 * the call). Labels with an empty value are dropped, as in Prometheus. Per-sample problems
 * (bad labels, out of order, duplicate, too old/new) are returned here and the sample is not
 * added; the batch remains usable. NaN, +Inf and -Inf are valid values and are stored
 * bit-exactly, including Prometheus's staleness marker NaN (0x7ff0000000000002).
 *
 * Out-of-order policy: rejection, as Prometheus does by default. Each series only grows at its
 * end: a timestamp before the series' newest sample (committed, or added earlier to this batch)
 * is ST_E_OUT_OF_ORDER; the same timestamp with a different value (compared bit by bit) is
 * ST_E_DUPLICATE; the same timestamp with the bit-identical value is accepted as a no-op and
 * stored once. Negative timestamps are ST_E_TIMESTAMP; older than now - metrics_retention_ms,
 * ST_E_TOO_OLD; newer than now + max_future_ms, ST_E_TOO_NEW ("now" is read at
 * st_batch_begin). More than max_batch_samples in one batch, or more than max_batch_bytes of
 * new series' labels, samples and metadata, is ST_E_BATCH_LIMIT.
 */
int st_batch_add(st_batch_t *b, const st_label_t *labels, size_t nlabels, int64_t ts_ms, double v);

/*
 * Series references, for callers that append to the same series again and again (a scraper's
 * cache per target, as Prometheus keeps one): they skip sorting, encoding, hashing and
 * comparing the labels, which is most of st_batch_add's cost for Istio's 25 labels.
 *
 * st_batch_add_get_ref is st_batch_add that also stores the series' reference in *ref (when
 * it returns 0). A reference is a number that names one series for as long as the store is
 * open; it is never reused for another series while the store is open. It becomes usable once
 * the batch that created the series has been committed.
 *
 * st_batch_add_ref appends to the series ref names, with every other check of st_batch_add.
 * ST_E_UNKNOWN_REF means the reference names no series now (never did, not committed yet, or
 * deleted by retention): the caller drops it and uses st_batch_add_get_ref again.
 */
typedef uint64_t st_ref_t;

int st_batch_add_get_ref(st_batch_t *b, const st_label_t *labels, size_t nlabels, int64_t ts_ms,
                         double v, st_ref_t *ref);
int st_batch_add_ref(st_batch_t *b, st_ref_t ref, int64_t ts_ms, double v);

typedef enum {
    ST_METRIC_UNKNOWN = 0,
    ST_METRIC_COUNTER,
    ST_METRIC_GAUGE,
    ST_METRIC_HISTOGRAM,
    ST_METRIC_GAUGEHISTOGRAM,
    ST_METRIC_SUMMARY,
    ST_METRIC_INFO,
    ST_METRIC_STATESET,
} st_metric_type_t;

/* Record metric metadata (per metric family name); last write wins. */
int st_batch_set_metadata(st_batch_t *b, wf_str_t metric, st_metric_type_t type, wf_str_t help,
                          wf_str_t unit);

/*
 * Visit the samples added to the open batch so far, in the order they were added, each with
 * its series' reference and labels in the stored form (sorted by name, no empty values). For
 * a caller that forwards what it writes (the collector's remote_write sender) just before
 * st_batch_commit. labels are valid only during the call. fn returns 0 to go on; anything
 * else stops the walk and is returned; WF_E_CORRUPT for a label encoding that does not
 * decode (never expected: the batch made it).
 */
typedef int (*st_batch_sample_cb)(void *arg, st_ref_t ref, const st_label_t *labels, size_t nlabels,
                                  int64_t ts_ms, double v);
int st_batch_each(st_batch_t *b, st_batch_sample_cb fn, void *arg);

/* Make the batch durable and visible; the batch is freed whatever the result. */
int st_batch_commit(st_batch_t *b);
/* Drop the batch without writing anything. NULL is a no-op. */
void st_batch_abort(st_batch_t *b);

/* ---- Metrics: reading ------------------------------------------------------------------- */

typedef enum {
    ST_MATCH_EQ,  /* = */
    ST_MATCH_NE,  /* != */
    ST_MATCH_RE,  /* =~ fully anchored RE2-syntax regex */
    ST_MATCH_NRE, /* !~ */
} st_match_type_t;

typedef struct st_matcher st_matcher_t;

/*
 * Compile a matcher. As in Prometheus, a label that a series lacks has the value "" for
 * matching purposes (so {foo=""} selects series without foo). On ST_E_REGEX, err (if not NULL)
 * receives PCRE2's message.
 */
int st_matcher_new(st_match_type_t type, wf_str_t name, wf_str_t value, st_matcher_t **out,
                   char *err, size_t errlen);
void st_matcher_free(st_matcher_t *m);
bool st_matcher_matches(const st_matcher_t *m, wf_str_t value);

typedef struct st_series_set st_series_set_t;

/*
 * Select the series matching all matchers that have samples in [mint, maxt] (ms, inclusive).
 * At least one matcher must not match the empty string (as in Prometheus); otherwise
 * WF_E_INVAL.
 */
int st_select(st_store_t *s, const st_matcher_t *const *m, size_t n, int64_t mint, int64_t maxt,
              st_series_set_t **out);
size_t st_series_set_len(const st_series_set_t *set);
/* Labels of series i, sorted by name; borrowed from the set. */
const st_label_t *st_series_set_labels(const st_series_set_t *set, size_t i, size_t *nlabels);
/* Samples of series i within [mint, maxt], ascending; decoded on first access, borrowed. */
int st_series_set_samples(st_series_set_t *set, size_t i, const int64_t **ts, const double **v,
                          size_t *n);
void st_series_set_free(st_series_set_t *set);

typedef struct st_strlist st_strlist_t;
size_t st_strlist_len(const st_strlist_t *l);
wf_str_t st_strlist_get(const st_strlist_t *l, size_t i);
void st_strlist_free(st_strlist_t *l);

/* Sorted label names of the series matching m (n may be 0: all series) within [mint, maxt]. */
int st_label_names(st_store_t *s, const st_matcher_t *const *m, size_t n, int64_t mint,
                   int64_t maxt, st_strlist_t **out);
/* Sorted distinct values of label `name` over the matching series. */
int st_label_values(st_store_t *s, wf_str_t name, const st_matcher_t *const *m, size_t n,
                    int64_t mint, int64_t maxt, st_strlist_t **out);

typedef struct {
    st_metric_type_t type;
    char *help; /* owned by the caller (wf_free) */
    char *unit; /* owned by the caller (wf_free) */
} st_metadata_t;

/* WF_E_NOTFOUND when nothing was recorded for metric. */
int st_metadata_get(st_store_t *s, wf_str_t metric, st_metadata_t *out);
/* Sorted names of every metric that has metadata. */
int st_metadata_metrics(st_store_t *s, st_strlist_t **out);

#endif
