/*
 * col_api.h - the Prometheus HTTP API v1 of the collector: queries, metadata and status
 * endpoints, answering exactly as Prometheus 2.42 does (JSON envelope, error types, value
 * encoding), so that Grafana, Kiali and curl work against weft unchanged.
 *
 * Threads: handlers run on the HTTP worker threads; they only read the store.
 */
#ifndef COL_API_H
#define COL_API_H

#include "col_http.h"
#include "pql.h"
#include "st_store.h"
#include "wf_flags.h"

#include <pthread.h>
#include <stdint.h>

/* Counters the API keeps for the collector's own /metrics (updated atomically). */
typedef struct {
    uint64_t queries_total;            /* instant + range queries answered */
    uint64_t query_errors_total;       /* of which failed */
    uint64_t query_seconds_bucket[12]; /* cumulative latency histogram, bounds below */
    uint64_t query_seconds_count;
    double query_seconds_sum; /* updated under the histogram lock */
} col_api_stats_t;

/* Upper bounds (seconds) of query_seconds_bucket; the last one is +Inf. */
extern const double col_api_query_buckets[12];

typedef struct {
    st_store_t *store;      /* borrowed */
    pql_engine_t *engine;   /* borrowed */
    int64_t started_ms;     /* process start, wall clock */
    const wf_flag_t *flags; /* the collector's flag table and config, for /status/flags */
    const void *flags_cfg;
    const char *config_yaml; /* what /status/config shows (borrowed) */
    int64_t retention_ms;
    pql_options_t query;      /* the engine's options, shown under Prometheus's flag names */
    const char *listen;       /* --listen, shown as web.listen-address */
    col_api_stats_t stats;    /* under stats_mu */
    pthread_mutex_t stats_mu; /* initialised by col_api_register */
} col_api_t;

/* A consistent copy of api's counters (any thread). */
void col_api_stats_copy(col_api_t *api, col_api_stats_t *out);

/* Route every /api/v1/ query, metadata and status endpoint to api. */
void col_api_register(col_http_t *h, col_api_t *api);

/* Prometheus's parameter formats: a time as float seconds or RFC 3339 (to ms); a duration as
 * float seconds or a Prometheus duration like "1h30m" (to ms). 0 or WF_E_INVAL. */
int col_parse_time(const char *s, int64_t *ms);
int col_parse_duration(const char *s, int64_t *ms);

#endif
