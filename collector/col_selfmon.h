/*
 * col_selfmon.h - the collector's own metrics at /metrics, in the Prometheus text format:
 * process, store, ingest, HTTP and query figures, so that a Prometheus (or the collector
 * itself) can watch it. Every family has HELP and TYPE lines and passes `promtool check
 * metrics`.
 */
#ifndef COL_SELFMON_H
#define COL_SELFMON_H

#include "col_api.h"
#include "col_http.h"
#include "col_writer.h"
#include "st_store.h"

#include <stdint.h>

typedef struct {
    st_store_t *store;
    col_writer_t *writer;
    col_http_t *http;
    col_api_t *api;
    int64_t started_ms;
    /* Optional: appends more families (the scrape manager's); NULL when absent. */
    void (*extra)(void *arg, wf_buf_t *out);
    void *extra_arg;
} col_selfmon_t;

/* GET /metrics; arg is a col_selfmon_t. */
void col_selfmon_handler(void *arg, col_req_t *req, col_resp_t *resp);

#endif
