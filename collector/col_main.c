/*
 * col_main.c - `weft collector`: opens the embedded store and serves it over HTTP.
 *
 * What exists today (issue #2): the store with its durability, sealing and retention
 * housekeeping, and a small HTTP surface (health, readiness, store status). The Prometheus
 * and trace APIs and every ingest path arrive with issues #3 and #4 on this same server.
 *
 * Threads: the main thread owns the store's write side (it is the store's writer thread) and
 * runs the housekeeping timer; libmicrohttpd's thread pool answers requests and only calls the
 * store's read functions. SIGINT/SIGTERM stop accepting, finish in-flight requests, flush and
 * close the store.
 */
#include "col_main.h"

#include "st_store.h"
#include "wf_alloc.h"
#include "wf_buf.h"
#include "wf_clock.h"
#include "wf_err.h"
#include "wf_flags.h"
#include "wf_log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    char *listen;
    char *data_dir;
    int64_t retention_ms;
    int64_t trace_retention_ms;
    int64_t flush_interval_ms;
    char *sync;
    char *log_level;
    int64_t threads;
} col_config_t;

static const wf_flag_t col_flags[] = {
    {"listen", WF_FLAG_STR, "127.0.0.1:20001", offsetof(col_config_t, listen),
     "address:port of the HTTP server (UI and every API)"},
    {"data-dir", WF_FLAG_STR, "weft-data", offsetof(col_config_t, data_dir),
     "directory of the embedded store"},
    {"retention", WF_FLAG_DURATION, "15d", offsetof(col_config_t, retention_ms),
     "how long metrics are kept (0 = forever)"},
    {"trace-retention", WF_FLAG_DURATION, "7d", offsetof(col_config_t, trace_retention_ms),
     "how long spans are kept (0 = forever)"},
    {"flush-interval", WF_FLAG_DURATION, "1m", offsetof(col_config_t, flush_interval_ms),
     "how often the in-memory head is sealed into the database"},
    {"sync", WF_FLAG_STR, "process", offsetof(col_config_t, sync),
     "durability of acknowledged writes: process (survives kill -9) or power (fsync)"},
    {"threads", WF_FLAG_INT, "4", offsetof(col_config_t, threads), "HTTP worker threads"},
    {"log-level", WF_FLAG_STR, "info", offsetof(col_config_t, log_level),
     "error, warn, info or debug"},
    {NULL, 0, NULL, 0, NULL},
};

typedef struct {
    col_config_t cfg;
    st_store_t *store;
    struct MHD_Daemon *httpd;
    int64_t started_ms;
} col_ctx_t;

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *ctype,
                             wf_buf_t *body)
{
    size_t len;
    uint8_t *data = wf_buf_detach(body, &len);
    struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback(len, data, wf_free);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **req_cls)
{
    col_ctx_t *ctx = cls;
    wf_buf_t body = WF_BUF_INIT;
    if (*req_cls == NULL) {
        /* First call for this request: headers only. Bodies are not accepted yet. */
        *req_cls = ctx;
        return MHD_YES;
    }
    if (*upload_size != 0) {
        *upload_size = 0;
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        wf_buf_puts(&body, "{\"status\":\"error\",\"errorType\":\"bad_data\","
                           "\"error\":\"method not allowed\"}");
        return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "application/json", &body);
    }
    if (strcmp(url, "/-/healthy") == 0) {
        wf_buf_puts(&body, "weft collector is Healthy.\n");
        return reply(conn, MHD_HTTP_OK, "text/plain; charset=utf-8", &body);
    }
    if (strcmp(url, "/-/ready") == 0) {
        wf_buf_puts(&body, "weft collector is Ready.\n");
        return reply(conn, MHD_HTTP_OK, "text/plain; charset=utf-8", &body);
    }
    if (strcmp(url, "/api/v1/status/store") == 0) {
        st_stats_t st;
        st_store_stats(ctx->store, &st);
        wf_buf_printf(&body,
                      "{\"status\":\"success\",\"data\":{\"series\":%llu,\"headSamples\":%llu,"
                      "\"sealedChunks\":%llu,\"samplesAppended\":%llu,\"spansAppended\":%llu,"
                      "\"headSpans\":%llu,\"databaseBytes\":%lld,\"startTimeMs\":%lld}}",
                      (unsigned long long)st.series, (unsigned long long)st.head_samples,
                      (unsigned long long)st.sealed_chunks, (unsigned long long)st.samples_total,
                      (unsigned long long)st.spans_total, (unsigned long long)st.head_spans,
                      (long long)st.db_bytes, (long long)ctx->started_ms);
        return reply(conn, MHD_HTTP_OK, "application/json", &body);
    }
    wf_buf_puts(&body, "{\"status\":\"error\",\"errorType\":\"not_found\","
                       "\"error\":\"no such endpoint\"}");
    return reply(conn, MHD_HTTP_NOT_FOUND, "application/json", &body);
}

/* Parse "host:port" (IPv4 literal) into addr. */
static int parse_listen(const char *s, struct sockaddr_in *addr)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s) {
        return WF_E_INVAL;
    }
    char host[64];
    size_t hl = (size_t)(colon - s);
    if (hl >= sizeof(host)) {
        return WF_E_INVAL;
    }
    memcpy(host, s, hl);
    host[hl] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port < 0 || port > 65535) {
        return WF_E_INVAL;
    }
    memset(addr, 0, sizeof(*addr));
    addr->sin_family = AF_INET;
    addr->sin_port = htons((uint16_t)port);
    if (strcmp(host, "localhost") == 0) {
        strcpy(host, "127.0.0.1");
    }
    if (inet_pton(AF_INET, host, &addr->sin_addr) != 1) {
        return WF_E_INVAL;
    }
    return 0;
}

static void housekeeping(col_ctx_t *ctx, int64_t *next_flush, int64_t *next_retention)
{
    int64_t now = wf_mono_ns();
    if (now >= *next_flush) {
        int rc = st_store_flush(ctx->store);
        if (rc != 0) {
            WF_LOG(WF_ERROR, "collector", "store flush failed", "err=\"%s\"", st_strerror(rc));
        }
        *next_flush = now + ctx->cfg.flush_interval_ms * 1000000;
    }
    if (now >= *next_retention) {
        int rc = st_store_retention_run(ctx->store);
        if (rc != 0) {
            WF_LOG(WF_ERROR, "collector", "retention failed", "err=\"%s\"", st_strerror(rc));
        }
        *next_retention = now + 3600LL * 1000000000;
    }
}

int col_main(int argc, char **argv)
{
    col_ctx_t ctx;
    memset(&ctx, 0, sizeof(ctx));
    char err[256];
    int status = 1;
    int rc = wf_flags_parse(col_flags, &ctx.cfg, argc, argv, NULL, err, sizeof(err));
    if (rc == 1) {
        printf("Usage: weft collector [flags]\n\nThe telemetry backend: embedded store and its "
               "HTTP API.\n\nFlags:\n");
        wf_flags_print_help(col_flags, stdout);
        wf_flags_free(col_flags, &ctx.cfg);
        return 0;
    }
    if (rc != 0) {
        fprintf(stderr, "weft collector: %s\n", err);
        wf_flags_free(col_flags, &ctx.cfg);
        return 2;
    }
    wf_log_level_t level;
    struct sockaddr_in addr;
    st_options_t opt;
    st_options_default(&opt);
    if (wf_log_parse_level(ctx.cfg.log_level, &level) != 0) {
        fprintf(stderr, "weft collector: invalid --log-level %s\n", ctx.cfg.log_level);
        status = 2;
        goto out;
    }
    wf_log_set_level(level);
    if (parse_listen(ctx.cfg.listen, &addr) != 0) {
        fprintf(stderr, "weft collector: invalid --listen %s (want IPv4:port)\n", ctx.cfg.listen);
        status = 2;
        goto out;
    }
    if (strcmp(ctx.cfg.sync, "process") == 0) {
        opt.sync = ST_SYNC_PROCESS;
    } else if (strcmp(ctx.cfg.sync, "power") == 0) {
        opt.sync = ST_SYNC_POWER;
    } else {
        fprintf(stderr, "weft collector: invalid --sync %s (want process or power)\n",
                ctx.cfg.sync);
        status = 2;
        goto out;
    }
    if (ctx.cfg.flush_interval_ms <= 0 || ctx.cfg.threads < 1 || ctx.cfg.threads > 256) {
        fprintf(stderr, "weft collector: --flush-interval must be > 0 and --threads 1..256\n");
        status = 2;
        goto out;
    }
    opt.dir = ctx.cfg.data_dir;
    opt.metrics_retention_ms = ctx.cfg.retention_ms;
    opt.spans_retention_ms = ctx.cfg.trace_retention_ms;
    rc = st_store_open(&opt, &ctx.store);
    if (rc != 0) {
        fprintf(stderr, "weft collector: cannot open store in %s: %s\n", ctx.cfg.data_dir,
                st_strerror(rc));
        goto out;
    }
    ctx.started_ms = wf_wall_ms();

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    ctx.httpd = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL,
        on_request, &ctx, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)ctx.cfg.threads, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)60, MHD_OPTION_CONNECTION_LIMIT, (unsigned)1024, MHD_OPTION_END);
    if (ctx.httpd == NULL) {
        fprintf(stderr, "weft collector: cannot listen on %s: %s\n", ctx.cfg.listen,
                strerror(errno));
        goto out;
    }
    WF_LOG(WF_INFO, "collector", "listening", "addr=%s data_dir=%s", ctx.cfg.listen,
           ctx.cfg.data_dir);
    printf("weft collector listening on http://%s (data in %s)\n", ctx.cfg.listen,
           ctx.cfg.data_dir);
    fflush(stdout);

    int64_t next_flush = wf_mono_ns() + ctx.cfg.flush_interval_ms * 1000000;
    int64_t next_retention = wf_mono_ns();
    while (!stop_requested) {
        housekeeping(&ctx, &next_flush, &next_retention);
        struct timespec ts = {0, 100 * 1000000};
        nanosleep(&ts, NULL);
    }
    WF_LOG(WF_INFO, "collector", "shutting down", "");
    status = 0;
out:
    if (ctx.httpd != NULL) {
        MHD_stop_daemon(ctx.httpd); /* waits for in-flight requests */
    }
    st_store_close(ctx.store);
    wf_flags_free(col_flags, &ctx.cfg);
    return status;
}
