/*
 * col_main.c - `weft collector`: opens the embedded store and serves it over HTTP.
 *
 * Threads: the main thread owns the store's write side: it runs the write queue
 * (col_writer.c), into which every ingest path hands its samples, and between jobs the
 * housekeeping (flush, retention). libmicrohttpd's worker threads answer requests: queries read
 * the store directly, ingest handlers wait on the queue. SIGINT/SIGTERM stop accepting, finish
 * in-flight requests, flush and close the store.
 */
#include "col_main.h"

#include "col_api.h"
#include "col_auth.h"
#include "col_federate.h"
#include "col_graph.h"
#include "col_http.h"
#include "col_import.h"
#include "col_jaeger.h"
#include "col_jaeger_v3.h"
#include "col_mesh.h"
#include "col_grpc.h"
#include "col_otlp_grpc.h"
#include "col_otlp_metrics.h"
#include "col_otlp_traces.h"
#include "col_remote_write.h"
#include "col_rw_sender.h"
#include "col_scrape.h"
#include "col_selfmon.h"
#include "col_ui.h"
#include "pql.h"
#include "col_writer.h"
#include "col_zipkin.h"

#include "st_store.h"
#include "wf_alloc.h"
#include "wf_buf.h"
#include "wf_clock.h"
#include "wf_err.h"
#include "wf_flags.h"
#include "wf_log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
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
    int64_t query_lookback_ms;
    int64_t query_timeout_ms;
    int64_t query_max_samples;
    char *scrape_config;
    char *scrape_sd;
    int64_t scrape_sd_refresh_ms;
    int64_t scrape_interval_ms;
    int64_t scrape_timeout_ms;
    char *scrape_job;
    bool honor_labels;
    char *otlp_listen;
    char *otlp_grpc_listen;
    char *zipkin_listen;
    char *zipkin_autocomplete_keys;
    int64_t ingest_queue_bytes;
    int64_t ingest_max_wait_ms;
    int64_t http_body_bytes;
    int64_t retry_after_ms;
    char *control;
    char *control_token_file;
    int64_t control_cache_ms;
    int64_t control_timeout_ms;
    char *users;
    bool anonymous;
    bool auth_ingest;
    int64_t session_idle_ms;
    int64_t session_lifetime_ms;
    int64_t max_sessions;
    char *ui_dir;
    char *remote_write;
    int64_t remote_write_batch;
    int64_t remote_write_queue;
    int64_t remote_write_flush_ms;
    int64_t remote_write_timeout_ms;
    int64_t remote_write_drain_ms;
    char *remote_write_bearer_file;
    char *scrape_sd_bearer_file;
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
    {"query-lookback", WF_FLAG_DURATION, "5m", offsetof(col_config_t, query_lookback_ms),
     "how far back an instant selector looks for a sample (Prometheus's lookback delta)"},
    {"query-timeout", WF_FLAG_DURATION, "2m", offsetof(col_config_t, query_timeout_ms),
     "longest time a query may run"},
    {"query-max-samples", WF_FLAG_INT, "50000000", offsetof(col_config_t, query_max_samples),
     "most samples one query may hold in memory"},
    {"scrape-config", WF_FLAG_STR, NULL, offsetof(col_config_t, scrape_config),
     "targets to scrape: a file in Prometheus file_sd JSON format, re-read when it changes"},
    {"scrape-sd", WF_FLAG_STR, NULL, offsetof(col_config_t, scrape_sd),
     "targets to scrape from Prometheus http_sd URLs (comma-separated), e.g. the control "
     "plane's /v1/targets"},
    {"scrape-sd-bearer-file", WF_FLAG_STR, NULL, offsetof(col_config_t, scrape_sd_bearer_file),
     "send the token in this file (read at start) to the --scrape-sd URLs as Authorization: "
     "Bearer (weft control's read token)"},
    {"scrape-sd-refresh", WF_FLAG_DURATION, "30s", offsetof(col_config_t, scrape_sd_refresh_ms),
     "how often the --scrape-sd URLs are read again (Prometheus's http_sd refresh_interval)"},
    {"scrape-interval", WF_FLAG_DURATION, "15s", offsetof(col_config_t, scrape_interval_ms),
     "how often each target is scraped"},
    {"scrape-timeout", WF_FLAG_DURATION, "10s", offsetof(col_config_t, scrape_timeout_ms),
     "how long one scrape may take (at most the interval)"},
    {"scrape-job", WF_FLAG_STR, "weft", offsetof(col_config_t, scrape_job),
     "job label of targets whose group sets none"},
    {"honor-labels", WF_FLAG_BOOL, "false", offsetof(col_config_t, honor_labels),
     "on a conflict between a scraped label and a target label, keep the scraped one "
     "(otherwise it is renamed exported_<name>)"},
    {"otlp-listen", WF_FLAG_STR, "127.0.0.1:4318", offsetof(col_config_t, otlp_listen),
     "also serve on the port OTLP/HTTP SDKs send to by default (off = do not)"},
    {"otlp-grpc-listen", WF_FLAG_STR, "127.0.0.1:4317", offsetof(col_config_t, otlp_grpc_listen),
     "serve OTLP over gRPC (traces and metrics) on this port, where SDKs send it by default "
     "(off = do not)"},
    {"zipkin-listen", WF_FLAG_STR, "127.0.0.1:9411", offsetof(col_config_t, zipkin_listen),
     "also serve on the port Zipkin clients send to by default (off = do not)"},
    {"zipkin-autocomplete-keys", WF_FLAG_STR, NULL,
     offsetof(col_config_t, zipkin_autocomplete_keys),
     "span tags the Zipkin UI may autocomplete (comma-separated, e.g. environment,http.method)"},
    {"ingest-queue-bytes", WF_FLAG_SIZE, "256MiB", offsetof(col_config_t, ingest_queue_bytes),
     "ingest waiting for the store above this size is refused with 503 + Retry-After (0 = no "
     "limit)"},
    {"ingest-max-wait", WF_FLAG_DURATION, "5s", offsetof(col_config_t, ingest_max_wait_ms),
     "ingest not taken by the store within this time is refused with 503 + Retry-After (0 = "
     "no limit)"},
    {"http-body-bytes", WF_FLAG_SIZE, "512MiB", offsetof(col_config_t, http_body_bytes),
     "request bodies being received at once above this size are refused with 503 + "
     "Retry-After (0 = no limit)"},
    {"retry-after", WF_FLAG_DURATION, "1s", offsetof(col_config_t, retry_after_ms),
     "the Retry-After a refused (shed) request is given"},
    {"control", WF_FLAG_STR, NULL, offsetof(col_config_t, control),
     "URL of `weft control`: the mesh page and the graph's badges read its configuration"},
    {"control-token-file", WF_FLAG_STR, NULL, offsetof(col_config_t, control_token_file),
     "file holding a token for the control plane, its read token will do (default: "
     "$WEFT_TOKEN_FILE, else weft-control/admin-token when it exists, as `weft get` finds it)"},
    {"control-cache", WF_FLAG_DURATION, "5s", offsetof(col_config_t, control_cache_ms),
     "how long one read of the control plane is reused by every request"},
    {"control-timeout", WF_FLAG_DURATION, "3s", offsetof(col_config_t, control_timeout_ms),
     "how long one read of the control plane (all its requests) may take"},
    {"users", WF_FLAG_STR, NULL, offsetof(col_config_t, users),
     "users file (htpasswd-style name:hash lines, see `weft users`): every request but health, "
     "UI files, login and ingest then needs a session, Basic or Bearer credentials"},
    {"anonymous", WF_FLAG_BOOL, "false", offsetof(col_config_t, anonymous),
     "serve without authentication on a non-loopback address (without --users)"},
    {"auth-ingest", WF_FLAG_BOOL, "false", offsetof(col_config_t, auth_ingest),
     "with --users, ingest endpoints (remote_write, OTLP, Zipkin, import) need credentials too"},
    {"session-idle", WF_FLAG_DURATION, "1h", offsetof(col_config_t, session_idle_ms),
     "a login session unused this long ends"},
    {"session-lifetime", WF_FLAG_DURATION, "24h", offsetof(col_config_t, session_lifetime_ms),
     "a login session ends this long after login, used or not"},
    {"max-sessions", WF_FLAG_INT, "10000", offsetof(col_config_t, max_sessions),
     "login sessions kept at once; beyond it the oldest ends"},
    {"ui-dir", WF_FLAG_STR, NULL, offsetof(col_config_t, ui_dir),
     "serve the web UI from this directory (web/build.mjs's output, read per request) instead "
     "of the copy built into the binary: for working on the UI"},
    {"remote-write", WF_FLAG_STR, NULL, offsetof(col_config_t, remote_write),
     "also send every stored sample to this Prometheus remote_write URL "
     "(e.g. http://127.0.0.1:9090/api/v1/write)"},
    {"remote-write-batch", WF_FLAG_INT, "2000", offsetof(col_config_t, remote_write_batch),
     "samples per remote_write request at most"},
    {"remote-write-queue", WF_FLAG_INT, "100000", offsetof(col_config_t, remote_write_queue),
     "samples waiting for the remote store at most; beyond it the oldest are dropped"},
    {"remote-write-flush", WF_FLAG_DURATION, "1s", offsetof(col_config_t, remote_write_flush_ms),
     "longest a sample waits before it is sent in a smaller batch"},
    {"remote-write-timeout", WF_FLAG_DURATION, "30s",
     offsetof(col_config_t, remote_write_timeout_ms), "of one remote_write request"},
    {"remote-write-drain", WF_FLAG_DURATION, "5s", offsetof(col_config_t, remote_write_drain_ms),
     "at shutdown, keep sending queued samples this long, then drop the rest"},
    {"remote-write-bearer-file", WF_FLAG_STR, NULL,
     offsetof(col_config_t, remote_write_bearer_file),
     "send the token in this file (read at start) as Authorization: Bearer"},
    {NULL, 0, NULL, 0, NULL},
};

typedef struct {
    col_config_t cfg;
    st_store_t *store;
    col_writer_t *writer;
    col_http_t *http;
    pql_engine_t *engine;
    col_scrape_t *scrape;
    col_zipkin_t *zipkin;
    col_mesh_t *mesh;
    col_graph_ctx_t graph;
    col_auth_t *auth;
    col_api_t api;
    col_selfmon_t selfmon;
    col_ui_t *ui;
    col_rw_sender_t *rw;
    col_grpc_t *grpc;
    char *config_yaml;
    int64_t started_ms;
} col_ctx_t;

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void h_healthy(void *arg, col_req_t *req, col_resp_t *resp)
{
    col_resp_text(resp, 200, "weft collector is Healthy.");
}

static void h_ready(void *arg, col_req_t *req, col_resp_t *resp)
{
    col_resp_text(resp, 200, "weft collector is Ready.");
}

static void h_store_status(void *arg, col_req_t *req, col_resp_t *resp)
{
    col_ctx_t *ctx = arg;
    st_stats_t st;
    st_store_stats(ctx->store, &st);
    wf_buf_printf(&resp->body,
                  "{\"status\":\"success\",\"data\":{\"series\":%llu,\"headSamples\":%llu,"
                  "\"sealedChunks\":%llu,\"samplesAppended\":%llu,\"spansAppended\":%llu,"
                  "\"headSpans\":%llu,\"databaseBytes\":%lld,\"startTimeMs\":%lld}}",
                  (unsigned long long)st.series, (unsigned long long)st.head_samples,
                  (unsigned long long)st.sealed_chunks, (unsigned long long)st.samples_total,
                  (unsigned long long)st.spans_total, (unsigned long long)st.head_spans,
                  (long long)st.db_bytes, (long long)ctx->started_ms);
}

/* /metrics' families beyond the core ones: the scrape manager's and authentication's. */
static void extra_metrics(void *arg, wf_buf_t *out)
{
    col_ctx_t *ctx = arg;
    col_scrape_write_metrics(ctx->scrape, out);
    col_auth_write_metrics(ctx->auth, out);
    col_rw_sender_write_metrics(ctx->rw, out);
    if (ctx->grpc != NULL) {
        col_grpc_write_metrics(ctx->grpc, out);
    }
}

/* Is "host:port" an address other hosts may reach: an IP literal outside 127.0.0.0/8 and ::1?
 * A host that is no IP literal is left to col_http_listen, which refuses it with its own
 * message. */
static bool reachable_addr(const char *addr)
{
    const char *colon = strrchr(addr, ':');
    size_t hl = colon != NULL ? (size_t)(colon - addr) : strlen(addr);
    char host[64];
    if (hl >= sizeof(host)) {
        return false;
    }
    memcpy(host, addr, hl);
    host[hl] = '\0';
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1) {
        return (ntohl(a4.s_addr) >> 24) != 127;
    }
    if (hl > 2 && host[0] == '[' && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        memmove(host, host + 1, hl - 1);
    }
    return inet_pton(AF_INET6, host, &a6) == 1 && !IN6_IS_ADDR_LOOPBACK(&a6);
}

/* Decide how requests are authenticated: the users file, or anonymous on loopback or by
 * --anonymous. 0, or 2 (the exit status) after saying why on stderr. */
static int setup_auth(col_ctx_t *ctx)
{
    const col_config_t *c = &ctx->cfg;
    col_users_t *users = NULL;
    if (c->users != NULL && c->anonymous) {
        fprintf(stderr, "weft collector: --users and --anonymous exclude each other: with a "
                        "users file every API needs credentials\n");
        return 2;
    }
    if (c->users == NULL && !c->anonymous) {
        const char *addrs[4] = {c->listen, c->otlp_listen, c->zipkin_listen, c->otlp_grpc_listen};
        for (size_t i = 0; i < 4; i++) {
            if (addrs[i] == NULL || !reachable_addr(addrs[i])) {
                continue;
            }
            fprintf(stderr,
                    "weft collector: refusing to serve without authentication on %s (not a "
                    "loopback address): give --users FILE (create it with `weft users add FILE "
                    "NAME`), or --anonymous to allow it\n",
                    addrs[i]);
            return 2;
        }
    }
    if (c->session_idle_ms <= 0 || c->session_lifetime_ms <= 0 || c->max_sessions < 1) {
        fprintf(stderr, "weft collector: --session-idle, --session-lifetime and --max-sessions "
                        "must be > 0\n");
        return 2;
    }
    if (c->users != NULL) {
        char err[512];
        if (col_users_load(c->users, &users, err, sizeof(err)) != 0) {
            fprintf(stderr, "weft collector: --users: %s\n", err);
            return 2;
        }
        if (col_users_password_count(users) + col_users_token_count(users) == 0) {
            fprintf(stderr,
                    "weft collector: --users: %s has no entries (add one with `weft users "
                    "add %s NAME`)\n",
                    c->users, c->users);
            col_users_free(users);
            return 2;
        }
        WF_LOG(WF_INFO, "collector", "authentication on", "users=%s passwords=%zu tokens=%zu",
               c->users, col_users_password_count(users), col_users_token_count(users));
    }
    col_auth_options_t ao = {.auth_ingest = c->auth_ingest,
                             .session_idle_ms = c->session_idle_ms,
                             .session_lifetime_ms = c->session_lifetime_ms,
                             .max_sessions = (size_t)c->max_sessions};
    col_auth_new(&ao, users, &ctx->auth);
    return 0;
}

/* Every endpoint of the collector. */
static void add_routes(col_ctx_t *ctx)
{
    col_http_route(ctx->http, "GET", "/-/healthy", false, 0, h_healthy, ctx);
    col_http_route(ctx->http, "GET", "/-/ready", false, 0, h_ready, ctx);
    col_http_route(ctx->http, "GET", "/api/v1/status/store", false, 0, h_store_status, ctx);
    /* Ingest. Body limits are on the bytes as sent (remote_write's snappy is decoded by its
     * handler, within its own limit). */
    col_http_route(ctx->http, "POST", "/api/v1/write", false, (size_t)32 << 20,
                   col_remote_write_handler, ctx->writer);
    col_http_route(ctx->http, "POST", "/v1/metrics", false, (size_t)32 << 20,
                   col_otlp_metrics_handler, ctx->writer);
    /* Prometheus's own OTLP path (its otlp-write-receiver), for exporters pointed at it. */
    col_http_route(ctx->http, "POST", "/api/v1/otlp/v1/metrics", false, (size_t)32 << 20,
                   col_otlp_metrics_handler, ctx->writer);
    col_http_route(ctx->http, "POST", "/api/v1/import/prometheus", false, (size_t)32 << 20,
                   col_import_handler, ctx->writer);
    col_api_register(ctx->http, &ctx->api);
    ctx->graph = (col_graph_ctx_t){.engine = ctx->engine, .mesh = ctx->mesh};
    col_http_route(ctx->http, "GET", "/api/graph", false, 0, col_graph_badged_handler, &ctx->graph);
    col_mesh_register(ctx->http, ctx->mesh);
    col_http_route(ctx->http, "GET", "/api/v1/targets", false, 0, col_scrape_targets_handler,
                   ctx->scrape);
    col_http_route(ctx->http, "GET POST", "/federate", false, 1 << 20, col_federate_handler,
                   ctx->store);
    /* Traces: OTLP and Zipkin ingest, the Zipkin and Jaeger query APIs. */
    col_http_route(ctx->http, "POST", "/v1/traces", false, (size_t)32 << 20,
                   col_otlp_traces_handler, ctx->writer);
    /* Names lowercased on the way out, as Zipkin's own server shows them. */
    col_zipkin_options_t zo = {.autocomplete_keys = ctx->cfg.zipkin_autocomplete_keys,
                               .lowercase_names = true};
    ctx->zipkin = col_zipkin_register_opts(ctx->http, ctx->writer, ctx->store, &zo);
    col_jaeger_register(ctx->http, ctx->store);
    col_jaeger_v3_register(ctx->http, ctx->store);
    col_http_route(ctx->http, "GET", "/metrics", false, 0, col_selfmon_handler, &ctx->selfmon);
    col_auth_register(ctx->auth, ctx->http);
    /* The web UI takes every GET path no route above has (the longest route wins); what it
     * does not have is the same 404 as before. */
    col_http_route(ctx->http, "GET", "/", true, 0, col_ui_handler, ctx->ui);
}

/* What /api/v1/status/config shows: the configuration in Prometheus's YAML shape, so that
 * tools that read the global scrape interval (Kiali does) find it. */
static char *config_yaml(const col_config_t *c)
{
    wf_buf_t b = WF_BUF_INIT;
    wf_buf_printf(&b,
                  "global:\n  scrape_interval: 15s\n  scrape_timeout: 10s\n"
                  "  evaluation_interval: 1m\n"
                  "storage:\n  tsdb:\n    path: %s\n",
                  c->data_dir);
    wf_buf_putc(&b, 0);
    return (char *)wf_buf_detach(&b, NULL);
}

/*
 * The bearer token in the file a --*-bearer-file flag names, into out (cap bytes, trailing
 * white space removed). 0, or 2 with the message printed: unreadable, empty or too long.
 */
static int read_bearer_file(const char *flag, const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        fprintf(stderr, "weft collector: --%s %s: %s\n", flag, path, strerror(errno));
        return 2;
    }
    size_t n = fread(out, 1, cap - 1, f);
    bool longer = n == cap - 1 && fgetc(f) != EOF;
    fclose(f);
    if (longer) {
        explicit_bzero(out, cap);
        fprintf(stderr, "weft collector: --%s %s: longer than %zu bytes\n", flag, path, cap - 1);
        return 2;
    }
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' ')) {
        n--;
    }
    out[n] = '\0';
    if (n == 0) {
        fprintf(stderr, "weft collector: --%s %s is empty\n", flag, path);
        return 2;
    }
    return 0;
}

/*
 * The token for the control plane (its read token does), found as `weft get` finds one:
 * --control-token-file, else $WEFT_TOKEN_FILE, else weft-control/admin-token when it exists.
 * 0 with the token in out (cap bytes; "" when none is to be sent), or 2 with the message
 * printed when a named file cannot be read.
 */
static int control_token(const char *flag, char *out, size_t cap)
{
    const char *env = getenv("WEFT_TOKEN_FILE");
    out[0] = '\0';
    if (flag != NULL && flag[0] != '\0') {
        return read_bearer_file("control-token-file", flag, out, cap);
    }
    if (env != NULL && env[0] != '\0') {
        return read_bearer_file("control-token-file ($WEFT_TOKEN_FILE)", env, out, cap);
    }
    const char *dflt = "weft-control/admin-token";
    if (access(dflt, F_OK) != 0 && errno == ENOENT) {
        return 0;
    }
    return read_bearer_file("control-token-file (default)", dflt, out, cap);
}

/*
 * Start the remote_write sender when --remote-write is set (its tap goes on the write queue
 * once there is one). 0 (also when not set), or 2 with the message printed (a bad flag or
 * token file), before anything is written to the data directory.
 */
static int setup_remote_write(col_ctx_t *ctx)
{
    const col_config_t *c = &ctx->cfg;
    if (c->remote_write == NULL || c->remote_write[0] == '\0') {
        return 0;
    }
    if (c->remote_write_batch < 1 || c->remote_write_batch > COL_RW_SENDER_MAX_BATCH ||
        c->remote_write_queue < 1 || c->remote_write_flush_ms <= 0 ||
        c->remote_write_timeout_ms <= 0 || c->remote_write_drain_ms < 0) {
        fprintf(stderr,
                "weft collector: --remote-write-batch (at most %d), --remote-write-queue, "
                "--remote-write-flush and --remote-write-timeout must be > 0\n",
                COL_RW_SENDER_MAX_BATCH);
        return 2;
    }
    char token[4096] = "";
    if (c->remote_write_bearer_file != NULL && c->remote_write_bearer_file[0] != '\0' &&
        read_bearer_file("remote-write-bearer-file", c->remote_write_bearer_file, token,
                         sizeof(token)) != 0) {
        return 2;
    }
    col_rw_sender_options_t o = {.url = c->remote_write,
                                 .bearer_token = token,
                                 .batch = (size_t)c->remote_write_batch,
                                 .queue = (size_t)c->remote_write_queue,
                                 .flush_ms = c->remote_write_flush_ms,
                                 .timeout_ms = c->remote_write_timeout_ms};
    char err[256];
    int rc = col_rw_sender_new(&o, &ctx->rw, err, sizeof(err));
    explicit_bzero(token, sizeof(token));
    if (rc != 0) {
        fprintf(stderr, "weft collector: --remote-write %s: %s\n", c->remote_write, err);
        return 2;
    }
    return 0;
}

/* Run stop(arg) while a helper thread keeps serving the write queue: the HTTP server's
 * in-flight ingest requests and the scraper's last scrapes wait on the queue, and would
 * otherwise never finish. */
static void stop_while_draining(col_writer_t *wr, void (*stop)(void *), void *arg)
{
    col_writer_thread_t *t = NULL;
    col_writer_thread_start(wr, &t);
    stop(arg);
    col_writer_thread_stop(t);
}

static void stop_http(void *arg)
{
    col_http_free(arg);
}

static void stop_scrape(void *arg)
{
    col_scrape_free(arg);
}

static void stop_grpc(void *arg)
{
    col_grpc_free(arg);
}

/*
 * OTLP/gRPC on --otlp-grpc-listen (unless off). Like the other SDK default ports it is a
 * convenience: when another process holds it, say so and go on. 0, or 2 with the message
 * printed (a malformed address).
 */
static int start_grpc(col_ctx_t *ctx)
{
    const char *addr = ctx->cfg.otlp_grpc_listen;
    if (addr == NULL || *addr == '\0' || strcmp(addr, "off") == 0) {
        return 0;
    }
    col_grpc_options_t go = {.auth = col_auth_ingest_credentials, .auth_arg = ctx->auth};
    if (col_grpc_new(&go, &ctx->grpc) != 0) {
        fprintf(stderr, "weft collector: cannot start the gRPC server\n");
        return 2;
    }
    col_otlp_grpc_register(ctx->grpc, ctx->writer);
    int rc = col_grpc_listen(ctx->grpc, addr);
    if (rc == WF_E_INVAL) {
        fprintf(stderr, "weft collector: invalid --otlp-grpc-listen %s (want IPv4:port or off)\n",
                addr);
        return 2;
    }
    if (rc == 0) {
        rc = col_grpc_start(ctx->grpc);
    }
    if (rc != 0) {
        WF_LOG(WF_WARN, "collector", "not listening on an extra port", "addr=%s err=\"%s\"", addr,
               wf_strerror(rc));
        col_grpc_free(ctx->grpc);
        ctx->grpc = NULL;
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
    rc = col_ui_new(ctx.cfg.ui_dir, &ctx.ui);
    if (rc != 0) {
        fprintf(stderr, "weft collector: --ui-dir %s: %s\n", ctx.cfg.ui_dir, wf_strerror(rc));
        status = 2;
        goto out;
    }
    st_options_t opt;
    st_options_default(&opt);
    if (wf_log_parse_level(ctx.cfg.log_level, &level) != 0) {
        fprintf(stderr, "weft collector: invalid --log-level %s\n", ctx.cfg.log_level);
        status = 2;
        goto out;
    }
    wf_log_set_level(level);
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
    if (ctx.cfg.query_lookback_ms <= 0 || ctx.cfg.query_timeout_ms <= 0 ||
        ctx.cfg.query_max_samples <= 0) {
        fprintf(stderr, "weft collector: --query-lookback, --query-timeout and "
                        "--query-max-samples must be > 0\n");
        status = 2;
        goto out;
    }
    status = setup_auth(&ctx);
    if (status == 0) {
        status = setup_remote_write(&ctx);
    }
    if (status != 0) {
        goto out;
    }
    status = 1;
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
    /* Nothing is re-read on SIGHUP (a closed terminal, `systemctl reload`): it must not stop
     * the collector, as its default action would. */
    signal(SIGHUP, SIG_IGN);

    /* 0 on the command line means no limit; in the options it means the default */
    col_writer_options_t wopt = {
        .max_queue_bytes =
            ctx.cfg.ingest_queue_bytes > 0 ? (size_t)ctx.cfg.ingest_queue_bytes : SIZE_MAX,
        .max_wait_ms = ctx.cfg.ingest_max_wait_ms > 0 ? ctx.cfg.ingest_max_wait_ms : -1};
    col_writer_new_opts(ctx.store, &wopt, &ctx.writer);
    if (ctx.rw != NULL) {
        col_writer_tap_t tap;
        col_rw_sender_tap(ctx.rw, &tap);
        col_writer_set_tap(ctx.writer, &tap);
    }
    pql_options_t qopt;
    pql_options_default(&qopt);
    qopt.lookback_ms = ctx.cfg.query_lookback_ms;
    qopt.timeout_ms = ctx.cfg.query_timeout_ms;
    qopt.max_samples = (size_t)ctx.cfg.query_max_samples;
    rc = pql_engine_new(ctx.store, &qopt, &ctx.engine);
    if (rc != 0) {
        fprintf(stderr, "weft collector: cannot start the query engine: %s\n", wf_strerror(rc));
        goto out;
    }
    col_scrape_options_t sopt;
    col_scrape_options_default(&sopt);
    sopt.sd_file = ctx.cfg.scrape_config;
    sopt.sd_url_list = ctx.cfg.scrape_sd;
    sopt.interval_ms = ctx.cfg.scrape_interval_ms;
    sopt.sd_refresh_ms = ctx.cfg.scrape_sd_refresh_ms;
    if (sopt.sd_refresh_ms <= 0 || sopt.interval_ms <= 0 || sopt.timeout_ms <= 0) {
        fprintf(stderr, "weft collector: --scrape-sd-refresh, --scrape-interval and "
                        "--scrape-timeout must be longer than 0\n");
        status = 2;
        goto out;
    }
    sopt.timeout_ms = ctx.cfg.scrape_timeout_ms;
    sopt.job = ctx.cfg.scrape_job;
    sopt.honor_labels = ctx.cfg.honor_labels;
    char sd_token[4096] = "";
    if (ctx.cfg.scrape_sd_bearer_file != NULL && ctx.cfg.scrape_sd_bearer_file[0] != '\0') {
        if (read_bearer_file("scrape-sd-bearer-file", ctx.cfg.scrape_sd_bearer_file, sd_token,
                             sizeof(sd_token)) != 0) {
            status = 2;
            goto out;
        }
        sopt.sd_bearer_token = sd_token;
    }
    rc = col_scrape_new(&sopt, ctx.writer, &ctx.scrape);
    explicit_bzero(sd_token, sizeof(sd_token));
    if (rc != 0) {
        fprintf(stderr, "weft collector: cannot start scraping: %s\n", wf_strerror(rc));
        status = 2;
        goto out;
    }
    if (ctx.cfg.control != NULL && ctx.cfg.control[0] != '\0') {
        char token[512];
        if (control_token(ctx.cfg.control_token_file, token, sizeof(token)) != 0) {
            status = 2;
            goto out;
        }
        col_mesh_options_t mo = {.url = ctx.cfg.control,
                                 .token = token[0] != '\0' ? token : NULL,
                                 .cache_ms = ctx.cfg.control_cache_ms,
                                 .timeout_ms = ctx.cfg.control_timeout_ms};
        rc = col_mesh_new(&mo, &ctx.mesh);
        explicit_bzero(token, sizeof(token));
        if (rc != 0) {
            fprintf(stderr,
                    "weft collector: invalid --control %s (want an http:// or https:// URL)\n",
                    ctx.cfg.control);
            status = 2;
            goto out;
        }
    }
    ctx.config_yaml = config_yaml(&ctx.cfg);
    ctx.api.store = ctx.store;
    ctx.api.engine = ctx.engine;
    ctx.api.started_ms = ctx.started_ms;
    ctx.api.flags = col_flags;
    ctx.api.flags_cfg = &ctx.cfg;
    ctx.api.config_yaml = ctx.config_yaml;
    ctx.api.retention_ms = ctx.cfg.retention_ms;
    ctx.api.query = qopt;
    ctx.api.listen = ctx.cfg.listen;
    int64_t retry_s = (ctx.cfg.retry_after_ms + 999) / 1000;
    col_http_options_t hopt = {
        .threads = (unsigned)ctx.cfg.threads,
        .max_body_bytes = ctx.cfg.http_body_bytes > 0 ? (size_t)ctx.cfg.http_body_bytes : SIZE_MAX,
        .retry_after_s = (unsigned)(retry_s > 0 ? retry_s : 1)};
    col_http_new(&hopt, &ctx.http);
    ctx.selfmon.store = ctx.store;
    ctx.selfmon.writer = ctx.writer;
    ctx.selfmon.http = ctx.http;
    ctx.selfmon.api = &ctx.api;
    ctx.selfmon.started_ms = ctx.started_ms;
    ctx.selfmon.extra = extra_metrics;
    ctx.selfmon.extra_arg = &ctx;
    add_routes(&ctx);
    rc = col_http_listen(ctx.http, ctx.cfg.listen);
    if (rc == WF_E_INVAL) {
        fprintf(stderr, "weft collector: invalid --listen %s (want IPv4:port)\n", ctx.cfg.listen);
        status = 2;
        goto out;
    }
    if (rc != 0) {
        fprintf(stderr, "weft collector: cannot listen on %s: %s\n", ctx.cfg.listen,
                wf_strerror(rc));
        goto out;
    }
    /* The SDKs' default ports are a convenience: when another process holds one (a second
     * collector, a Jaeger), say so and go on serving on the main port. */
    const char *extra[2] = {ctx.cfg.otlp_listen, ctx.cfg.zipkin_listen};
    for (size_t i = 0; i < 2; i++) {
        if (extra[i] == NULL || *extra[i] == '\0' || strcmp(extra[i], "off") == 0) {
            continue;
        }
        rc = col_http_listen(ctx.http, extra[i]);
        if (rc == WF_E_INVAL) {
            fprintf(stderr, "weft collector: invalid --%s %s (want IPv4:port or off)\n",
                    i == 0 ? "otlp-listen" : "zipkin-listen", extra[i]);
            status = 2;
            goto out;
        }
        if (rc != 0) {
            WF_LOG(WF_WARN, "collector", "not listening on an extra port", "addr=%s err=\"%s\"",
                   extra[i], wf_strerror(rc));
        }
    }
    if (start_grpc(&ctx) != 0) {
        status = 2;
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
        col_writer_run(ctx.writer, 100);
        housekeeping(&ctx, &next_flush, &next_retention);
    }
    WF_LOG(WF_INFO, "collector", "shutting down", "");
    status = 0;
out:
    /* Order matters: first no new requests or scrapes, then the queue, then the store. */
    if (ctx.grpc != NULL) {
        stop_while_draining(ctx.writer, stop_grpc, ctx.grpc);
    }
    if (ctx.http != NULL) {
        stop_while_draining(ctx.writer, stop_http, ctx.http);
    }
    if (ctx.scrape != NULL) {
        stop_while_draining(ctx.writer, stop_scrape, ctx.scrape);
    }
    /* Every ingest path has stopped: what the sender holds now is all there is to send. */
    col_rw_sender_stop(ctx.rw, ctx.cfg.remote_write_drain_ms);
    col_zipkin_free(ctx.zipkin);
    col_mesh_free(ctx.mesh);
    col_auth_free(ctx.auth);
    col_ui_free(ctx.ui);
    col_writer_free(ctx.writer);
    col_rw_sender_free(ctx.rw);
    pql_engine_free(ctx.engine);
    st_store_close(ctx.store);
    wf_free(ctx.config_yaml);
    wf_flags_free(col_flags, &ctx.cfg);
    return status;
}
