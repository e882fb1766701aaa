/*
 * col_scrape.h - the scrape manager: pulls the Prometheus text format (and OpenMetrics) from
 * targets every interval and writes what it reads into the store, as Prometheus 2.42 does.
 *
 * Targets come from Prometheus file_sd JSON (`[{"targets":["host:port"],"labels":{...}}]`,
 * re-read when the file changes) and from http_sd URLs (the same JSON over HTTP, refreshed
 * every sd_refresh_ms; a failed refresh keeps the previous targets). Each target gets
 * Prometheus's discovered labels (__address__, __scheme__ "http", __metrics_path__ "/metrics",
 * __scrape_interval__, __scrape_timeout__, job = the default job unless the group sets one;
 * __param_<name> labels become URL parameters) and its labels are the ones without a `__`
 * prefix, with instance = __address__ unless set. There is no relabeling.
 *
 * Per scrape, like scrape/scrape.go: GET with Prometheus's Accept header, gzip, the
 * X-Prometheus-Scrape-Timeout-Seconds header and the per-target timeout; a body over
 * body_limit, a status other than 200, or a parse error fail the scrape. Every sample gets the
 * target's labels (a clashing scraped label is renamed exported_<name>, or wins with
 * honor_labels) and the scrape's start time unless the exposition has a timestamp. Then the
 * report series up, scrape_duration_seconds, scrape_samples_scraped,
 * scrape_samples_post_metric_relabeling and scrape_series_added; staleness markers (the NaN
 * 0x7ff0000000000002) for series of the previous scrape missing from this one, for every
 * series of a failed scrape (and up is 0), and for every series and the report series of a
 * target that left discovery (written two intervals later, as Prometheus's end-of-run
 * staleness, unless the target came back).
 *
 * Each target keeps a cache from its scraped series to store references (st_batch_add_ref), so
 * a steady scrape does not re-hash or re-sort labels. The families' HELP, TYPE and UNIT are
 * recorded as store metadata (st_batch_set_metadata) whenever they change.
 *
 * Threads: one scrape thread runs every transfer with libcurl's multi interface (HTTP/1.1
 * keep-alive); one submit thread parses each finished scrape, submits it to the writer as one
 * col_write_t and waits for durability, so a slow commit never delays other transfers.
 * col_scrape_targets_handler and col_scrape_write_metrics may be called from any thread.
 */
#ifndef COL_SCRAPE_H
#define COL_SCRAPE_H

#include "col_http.h"
#include "col_writer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *sd_file;        /* file_sd JSON path, or NULL (borrowed for the call) */
    const char *const *sd_urls; /* http_sd URLs (borrowed for the call) */
    size_t nsd_urls;
    const char *sd_url_list;     /* more http_sd URLs, comma-separated (a flag's value), or NULL */
    int64_t interval_ms;         /* default scrape interval; 15 s */
    int64_t timeout_ms;          /* default per-scrape timeout; 10 s (at most the interval) */
    int64_t sd_refresh_ms;       /* http_sd refresh; 30 s */
    const char *sd_bearer_token; /* sent to the http_sd URLs as Authorization: Bearer (copied);
                                  * NULL or "": none */
    int64_t file_check_ms;       /* how often the file_sd file is stat()ed; 1 s */
    const char *job;             /* job of targets whose group sets none; "weft" */
    bool honor_labels;           /* default false */
    size_t body_limit;           /* bytes of one scrape after decompression; 64 MiB */
} col_scrape_options_t;

void col_scrape_options_default(col_scrape_options_t *o);

typedef struct col_scrape col_scrape_t;

/*
 * Start the manager: read the file_sd file once (a missing or malformed file is an error
 * here: WF_E_INVAL / -errno, with a log line; later changes that break it keep the old
 * targets), start both threads. writer is borrowed and must outlive the manager.
 */
int col_scrape_new(const col_scrape_options_t *o, col_writer_t *writer, col_scrape_t **out);

/* Stop scraping (in-flight transfers are abandoned; no staleness markers are written, as
 * Prometheus on shutdown), wait for the submit thread, free everything. NULL is a no-op.
 * Call it before col_writer_free. */
void col_scrape_free(col_scrape_t *s);

/* GET /api/v1/targets (arg: the col_scrape_t, or NULL when nothing is scraped: empty lists),
 * Prometheus's JSON; `state` = active, dropped or any (default). */
void col_scrape_targets_handler(void *scrape, col_req_t *req, col_resp_t *resp);

/* The manager's own metrics in the text format (HELP and TYPE lines), for /metrics; matches
 * col_selfmon_t's extra callback. NULL writes nothing. */
void col_scrape_write_metrics(void *scrape, wf_buf_t *out);

typedef struct {
    uint64_t scrapes;         /* scrapes finished and submitted (successful or not) */
    uint64_t scrape_failures; /* of which failed (up 0) */
    uint64_t samples;         /* samples accepted by the store, report series included */
    uint64_t sd_refreshes;    /* successful discovery reads (file or http) */
    uint64_t sd_failures;     /* failed ones */
    size_t targets;           /* active targets now */
} col_scrape_stats_t;

void col_scrape_stats(col_scrape_t *s, col_scrape_stats_t *out);

#endif
