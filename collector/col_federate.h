/*
 * col_federate.h - GET /federate?match[]=<selector>...: the latest sample of every selected
 * series in the Prometheus text format 0.0.4, as Prometheus 2.42's federation endpoint writes
 * it, so that another Prometheus (honor_labels: true) can scrape weft.
 *
 * For each series matching any match[] selector: its newest sample within the 5-minute lookback
 * (dropped when that sample is a staleness marker), with its timestamp in ms; families sorted
 * by metric name, each under `# HELP` and `# TYPE` lines (Prometheus writes only
 * `# TYPE <name> untyped`; weft adds the recorded help text and counter/gauge types so that
 * `promtool check metrics` passes, see write_family_header in col_federate.c); labels in
 * name order with `instance=""` appended when the series has none (Prometheus adds its external
 * labels, and always `instance`, that way). No match[] gives an empty 200. A selector that does not
 * parse, or whose matchers all match the empty string, is 400 with a message.
 *
 * Selectors are parsed by the PromQL parser (pql_parse) and must be plain instant-vector
 * selectors (no offset or @), as Prometheus's ParseMetricSelector accepts; its messages are
 * the 400 bodies.
 *
 * Threads: the handler runs on HTTP worker threads and only reads the store.
 */
#ifndef COL_FEDERATE_H
#define COL_FEDERATE_H

#include "col_http.h"
#include "st_store.h"

/* The handler; arg is the st_store_t. */
void col_federate_handler(void *store, col_req_t *req, col_resp_t *resp);

#endif
