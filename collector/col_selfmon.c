/*
 * col_selfmon.c - /metrics: the collector's own figures in the Prometheus text format 0.0.4.
 *
 * Values are read when the page is asked for (store statistics, the write queue's and the
 * HTTP server's counters, the API's query histogram, /proc for the process); nothing is kept
 * here.
 */
#include "col_selfmon.h"

#include "wf_buf.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static void family(wf_buf_t *b, const char *name, const char *type, const char *help)
{
    wf_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void value(wf_buf_t *b, const char *name, double v)
{
    wf_buf_printf(b, "%s ", name);
    col_fmt_float(b, v);
    wf_buf_putc(b, '\n');
}

static void one(wf_buf_t *b, const char *name, const char *type, const char *help, double v)
{
    family(b, name, type, help);
    value(b, name, v);
}

static double resident_bytes(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL) {
        return 0;
    }
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2) {
        rss = 0;
    }
    fclose(f);
    return (double)rss * (double)sysconf(_SC_PAGESIZE);
}

void col_selfmon_handler(void *arg, col_req_t *req, col_resp_t *resp)
{
    col_selfmon_t *m = arg;
    wf_buf_t *b = &resp->body;
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";

    family(b, "weft_build_info", "gauge", "A metric with a constant 1 labelled by the version.");
    wf_buf_puts(b, "weft_build_info{version=\"" WEFT_VERSION "\"} 1\n");
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    one(b, "process_cpu_seconds_total", "counter", "Total user and system CPU time in seconds.",
        (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
            (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
    one(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
        resident_bytes());
    one(b, "process_start_time_seconds", "gauge",
        "Start time of the process in seconds since "
        "the epoch.",
        (double)m->started_ms / 1000);

    st_stats_t st;
    if (st_store_stats(m->store, &st) == 0) {
        one(b, "weft_store_series", "gauge", "Series known to the store.", (double)st.series);
        one(b, "weft_store_head_samples", "gauge", "Samples in memory not yet sealed into chunks.",
            (double)st.head_samples);
        one(b, "weft_store_sealed_chunks", "gauge", "Sealed sample chunks in the database.",
            (double)st.sealed_chunks);
        one(b, "weft_store_samples_appended_total", "counter",
            "Samples appended since the process started.", (double)st.samples_total);
        one(b, "weft_store_spans_appended_total", "counter",
            "Spans appended since the process started.", (double)st.spans_total);
        one(b, "weft_store_database_bytes", "gauge",
            "Size of the database file and its write-ahead log.", (double)st.db_bytes);
    }

    col_writer_stats_t ws;
    col_writer_stats(m->writer, &ws);
    one(b, "weft_ingest_requests_total", "counter",
        "Ingest jobs (requests and scrapes) handed to the writer.", (double)ws.jobs);
    one(b, "weft_ingest_requests_failed_total", "counter",
        "Ingest jobs whose batch could not be written.", (double)ws.jobs_failed);
    one(b, "weft_ingest_batches_total", "counter",
        "Store batches (one commit each) the writer ran.", (double)ws.batches);
    one(b, "weft_ingest_samples_total", "counter", "Samples made durable by ingest.",
        (double)ws.samples_accepted);
    one(b, "weft_ingest_samples_rejected_total", "counter",
        "Samples refused one by one (out of order, invalid labels, ...).",
        (double)ws.samples_rejected);
    one(b, "weft_ingest_queue_jobs", "gauge", "Ingest jobs waiting for the writer.",
        (double)ws.queued_jobs);
    one(b, "weft_ingest_queue_bytes", "gauge",
        "Estimated bytes of the ingest jobs waiting for the writer.", (double)ws.queued_bytes);

    col_http_stats_t hs = {0};
    if (m->http != NULL) {
        col_http_stats(m->http, &hs);
    }
    one(b, "weft_http_request_body_bytes", "gauge",
        "Request body bytes held in memory (the load-shedding budget's use).",
        (double)hs.body_bytes);
    family(b, "weft_ingest_shed_total", "counter",
           "Requests refused with 503 and Retry-After to shed load, by reason.");
    wf_buf_printf(b, "weft_ingest_shed_total{reason=\"memory\"} %" PRIu64 "\n", hs.shed_memory);
    wf_buf_printf(b, "weft_ingest_shed_total{reason=\"queue_full\"} %" PRIu64 "\n",
                  ws.shed_queue_full);
    wf_buf_printf(b, "weft_ingest_shed_total{reason=\"queue_wait\"} %" PRIu64 "\n",
                  ws.shed_queue_wait);

    if (m->http != NULL) {
        col_http_write_metrics(m->http, b);
    }

    if (m->api != NULL) {
        col_api_stats_t qs;
        col_api_stats_copy(m->api, &qs);
        const col_api_stats_t *q = &qs;
        one(b, "weft_queries_total", "counter", "Instant and range queries answered.",
            (double)q->queries_total);
        one(b, "weft_query_errors_total", "counter", "Queries that failed.",
            (double)q->query_errors_total);
        family(b, "weft_query_duration_seconds", "histogram",
               "Time to answer a query, parse to response.");
        for (size_t i = 0; i < 12; i++) {
            wf_buf_puts(b, "weft_query_duration_seconds_bucket{le=\"");
            col_fmt_float(b, col_api_query_buckets[i]);
            wf_buf_printf(b, "\"} %" PRIu64 "\n", q->query_seconds_bucket[i]);
        }
        value(b, "weft_query_duration_seconds_sum", q->query_seconds_sum);
        value(b, "weft_query_duration_seconds_count", (double)q->query_seconds_count);
    }
    if (m->extra != NULL) {
        m->extra(m->extra_arg, b);
    }
}
