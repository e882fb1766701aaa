/*
 * wt_promdiff.c - the differential harness (weft vs Prometheus 2.42). See wt_promdiff.h for the
 * comparison rules.
 *
 * Loading goes through Prometheus's own remote_write protocol (wt_rw.h: snappy-compressed
 * protobuf WriteRequest, the headers Prometheus sends) into both servers, so weft sees exactly the
 * samples Prometheus sees, staleness markers and NaN payloads bit for bit. HTTP goes through
 * libcurl with one keep-alive handle per server, so query timings do not include connection setup.
 */
#include "wt_promdiff.h"

#include "wf_alloc.h"
#include "wf_buf.h"
#include "wt_rw.h"
#include "wt_util.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct wt_pd_srv {
    wt_pd_kind_t kind;
    bool is_prometheus;
    char name[32];
    int port;
    pid_t pid;
    char *dir;
    CURL *curl;
    char base[64];
};

int64_t wt_pd_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static double f64_from_bits(uint64_t bits)
{
    double d;
    memcpy(&d, &bits, sizeof(d));
    return d;
}

/* ---- servers ---- */

const char *wt_pd_prometheus_bin(void)
{
    const char *p = getenv("WT_PROMETHEUS");
    if (p == NULL) {
        p = "/usr/bin/prometheus";
    }
    if (access(p, X_OK) != 0) {
        printf("skipped: Prometheus not installed (%s)\n", p);
        return NULL;
    }
    return p;
}

static bool self_mode(void)
{
    const char *s = getenv("WEFT_DIFF_SELF");
    return s != NULL && strcmp(s, "1") == 0;
}

typedef struct {
    wf_buf_t *buf;
} sink_t;

static size_t sink_cb(char *p, size_t size, size_t n, void *arg)
{
    wf_buf_append(((sink_t *)arg)->buf, p, size * n);
    return size * n;
}

/*
 * GET path on s, or POST form (application/x-www-form-urlencoded) when form is not NULL.
 * Returns the HTTP status or -1. The body goes to body when not NULL.
 */
static long http_do(wt_pd_srv_t *s, const char *path, const char *form, wf_buf_t *body,
                    double timeout_s)
{
    size_t n = strlen(s->base) + strlen(path) + 1;
    char *url = wf_malloc(n);
    snprintf(url, n, "%s%s", s->base, path);
    wf_buf_t scratch = WF_BUF_INIT;
    sink_t sink = {body ? body : &scratch};
    curl_easy_reset(s->curl);
    curl_easy_setopt(s->curl, CURLOPT_URL, url);
    curl_easy_setopt(s->curl, CURLOPT_WRITEFUNCTION, sink_cb);
    curl_easy_setopt(s->curl, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(s->curl, CURLOPT_TIMEOUT_MS, (long)(timeout_s * 1000));
    curl_easy_setopt(s->curl, CURLOPT_NOSIGNAL, 1L);
    if (form != NULL) {
        /* libcurl sends Content-Type: application/x-www-form-urlencoded with POSTFIELDS. */
        curl_easy_setopt(s->curl, CURLOPT_POSTFIELDS, form);
        curl_easy_setopt(s->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(form));
    }
    long status = -1;
    if (curl_easy_perform(s->curl) == CURLE_OK) {
        curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
    }
    wf_buf_free(&scratch);
    wf_free(url);
    return status;
}

static long http_get(wt_pd_srv_t *s, const char *path, wf_buf_t *body, double timeout_s)
{
    return http_do(s, path, NULL, body, timeout_s);
}

static void print_log(const char *dir)
{
    char p[4200];
    snprintf(p, sizeof(p), "%s/server.log", dir);
    size_t n = 0;
    char *text = wt_read_file(p, &n);
    if (text != NULL) {
        const char *tail = n > 8000 ? text + n - 8000 : text;
        printf("---- %s (last 8000 bytes) ----\n%s\n----\n", p, tail);
        wf_free(text);
    }
}

static bool start_once(wt_pd_srv_t *s)
{
    char data[4200], log[4200], cfg[4200], addr[64];
    snprintf(data, sizeof(data), "%s/data", s->dir);
    snprintf(log, sizeof(log), "%s/server.log", s->dir);
    s->port = wt_free_port();
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", s->port);
    snprintf(s->base, sizeof(s->base), "http://127.0.0.1:%d", s->port);
    if (s->is_prometheus) {
        snprintf(cfg, sizeof(cfg), "%s/prometheus.yml", s->dir);
        FILE *f = fopen(cfg, "w");
        if (f == NULL) {
            return false;
        }
        /* No scrape jobs: the only samples are the ones the harness writes. The evaluation
         * interval keeps its default (1m): it is also the default subquery step, which weft
         * takes as 1m. */
        fputs("global:\n  scrape_interval: 15s\n", f);
        fclose(f);
        char a_cfg[4300], a_data[4300], a_addr[128];
        snprintf(a_cfg, sizeof(a_cfg), "--config.file=%s", cfg);
        snprintf(a_data, sizeof(a_data), "--storage.tsdb.path=%s", data);
        snprintf(a_addr, sizeof(a_addr), "--web.listen-address=%s", addr);
        char *argv[] = {(char *)wt_pd_prometheus_bin(),
                        a_cfg,
                        a_data,
                        a_addr,
                        "--web.enable-remote-write-receiver",
                        "--storage.tsdb.retention.time=30d",
                        "--log.level=warn",
                        NULL};
        s->pid = wt_spawn(argv, log);
    } else {
        char *argv[] = {(char *)wt_weft_bin(), "collector", "--listen", addr,
                        "--data-dir",          data,        NULL};
        s->pid = wt_spawn(argv, log);
    }
    double deadline = mono_ms() + 60000;
    while (mono_ms() < deadline) {
        if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
            s->pid = -1;
            return false;
        }
        if (wt_wait_port(s->port, 100) && http_get(s, "/-/ready", NULL, 2) == 200) {
            return true;
        }
        usleep(50000);
    }
    wt_stop(s->pid, 5000);
    s->pid = -1;
    return false;
}

wt_pd_srv_t *wt_pd_start(wt_pd_kind_t kind)
{
    if (wt_pd_prometheus_bin() == NULL) {
        return NULL;
    }
    wt_pd_srv_t *s = wf_calloc(1, sizeof(*s));
    s->kind = kind;
    s->pid = -1;
    s->is_prometheus = kind == WT_PD_PROMETHEUS || self_mode();
    snprintf(s->name, sizeof(s->name), "%s",
             kind == WT_PD_PROMETHEUS ? "prometheus"
             : self_mode()            ? "prometheus-2"
                                      : "weft");
    s->dir = wt_tmpdir(s->is_prometheus ? "pdprom" : "pdweft");
    s->curl = curl_easy_init();
    if (s->curl == NULL) {
        goto fail;
    }
    /* A port that was free a moment ago may be taken by the time the server binds it. */
    for (int attempt = 0; attempt < 3; attempt++) {
        if (start_once(s)) {
            return s;
        }
    }
    printf("%s did not become ready\n", s->name);
    print_log(s->dir);
fail:
    (void)wt_pd_stop(s);
    return NULL;
}

/* True when the server's log holds a sanitizer report. */
static bool log_has_sanitizer_report(const char *dir)
{
    char p[4200];
    snprintf(p, sizeof(p), "%s/server.log", dir);
    char *text = wt_read_file(p, NULL);
    bool found = text != NULL && (strstr(text, "runtime error:") != NULL ||
                                  strstr(text, "ERROR: AddressSanitizer") != NULL ||
                                  strstr(text, "ERROR: LeakSanitizer") != NULL);
    wf_free(text);
    return found;
}

bool wt_pd_stop(wt_pd_srv_t *s)
{
    if (s == NULL) {
        return true;
    }
    bool clean = true;
    if (s->pid > 0) {
        /* A server that died under the test (a crash, a sanitizer report) says why in its
         * log: show it, since the directory goes away below. */
        int status = 0;
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            printf("%s had exited by itself (%s %d)\n", s->name,
                   WIFSIGNALED(status) ? "signal" : "exit code",
                   WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
            clean = false;
        } else {
            status = wt_stop(s->pid, 20000);
            if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                printf("%s did not exit cleanly on SIGTERM (status %d)\n", s->name, status);
                clean = false;
            }
        }
        if (log_has_sanitizer_report(s->dir)) {
            printf("%s's log has a sanitizer report\n", s->name);
            clean = false;
        }
        if (!clean) {
            print_log(s->dir);
        }
    }
    if (s->curl != NULL) {
        curl_easy_cleanup(s->curl);
    }
    const char *keep = getenv("WT_KEEP");
    if (keep != NULL && strcmp(keep, "1") == 0) {
        printf("kept %s\n", s->dir);
    } else {
        wt_rm_rf(s->dir);
    }
    wf_free(s->dir);
    wf_free(s);
    return clean;
}

const char *wt_pd_name(const wt_pd_srv_t *s)
{
    return s->name;
}

int wt_pd_port(const wt_pd_srv_t *s)
{
    return s->port;
}

/* ---- sample sets ---- */

void wt_pd_data_init(wt_pd_data_t *d)
{
    memset(d, 0, sizeof(*d));
}

void wt_pd_data_free(wt_pd_data_t *d)
{
    for (size_t i = 0; i < d->n; i++) {
        wt_pd_series_t *s = &d->series[i];
        for (size_t j = 0; j < s->nlabels; j++) {
            wf_free(s->names[j]);
            wf_free(s->values[j]);
        }
        wf_free(s->names);
        wf_free(s->values);
        wf_free(s->ts);
        wf_free(s->v);
    }
    wf_free(d->series);
    memset(d, 0, sizeof(*d));
}

/* Add one label, keeping the names sorted (remote_write wants them sorted). */
static void series_add_label(wt_pd_series_t *s, const char *k, const char *v)
{
    size_t at = s->nlabels;
    s->names = wf_realloc(s->names, (at + 1) * sizeof(char *));
    s->values = wf_realloc(s->values, (at + 1) * sizeof(char *));
    while (at > 0 && strcmp(s->names[at - 1], k) > 0) {
        s->names[at] = s->names[at - 1];
        s->values[at] = s->values[at - 1];
        at--;
    }
    s->names[at] = wf_strdup(k);
    s->values[at] = wf_strdup(v);
    s->nlabels++;
}

wt_pd_series_t *wt_pd_series_new(wt_pd_data_t *d, const char *name, ...)
{
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 64;
        d->series = wf_realloc(d->series, d->cap * sizeof(*d->series));
    }
    wt_pd_series_t *s = &d->series[d->n++];
    memset(s, 0, sizeof(*s));
    va_list ap;
    va_start(ap, name);
    for (const char *k = name; k != NULL; k = va_arg(ap, const char *)) {
        series_add_label(s, k, va_arg(ap, const char *));
    }
    va_end(ap);
    return s;
}

void wt_pd_series_push(wt_pd_data_t *d, wt_pd_series_t *s, int64_t ts, double v)
{
    if (s->n > 0 && ts <= s->ts[s->n - 1]) {
        fprintf(stderr, "wt_pd_series_push: out of order (%lld after %lld)\n", (long long)ts,
                (long long)s->ts[s->n - 1]);
        abort();
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 256;
        s->ts = wf_realloc(s->ts, s->cap * sizeof(*s->ts));
        s->v = wf_realloc(s->v, s->cap * sizeof(*s->v));
    }
    s->ts[s->n] = ts;
    s->v[s->n] = v;
    s->n++;
    d->samples++;
}

/* Uniform in [0, 1). */
static double urand(uint64_t *st)
{
    return (double)(wt_rand(st) >> 11) * (1.0 / 9007199254740992.0);
}

/* Standard normal (Box-Muller). */
static double grand(uint64_t *st)
{
    double u1 = urand(st), u2 = urand(st);
    if (u1 < 1e-300) {
        u1 = 1e-300;
    }
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

/* A scrape timestamp: the k-th 15 s tick after start plus the series' phase, jittered by up to
 * ±4 ms the way real scrapes drift. */
static int64_t scrape_ts(uint64_t *st, int64_t start, int64_t phase, int64_t k)
{
    return start + phase + k * 15000 + (int64_t)(wt_rand(st) % 9) - 4;
}

static const double prom_default_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                              0.5,   1,    2.5,   5,    10};
static const double envoy_buckets[] = {0.5,   1,      5,      10,      25,     50,    100,
                                       250,   500,    1000,   2500,    5000,   10000, 30000,
                                       60000, 300000, 600000, 1800000, 3600000};
static const double small_buckets[] = {1};

/* A classic histogram under construction: one series per bucket plus _sum and _count. */
typedef struct {
    size_t nb;
    const double *bounds;
    size_t first;   /* index of the first bucket series in d; then +Inf, _sum, _count */
    double *counts; /* cumulative per bucket incl. +Inf */
    double sum;
} hist_t;

/* le as Prometheus client libraries print it (shortest round-trip form). */
static void fmt_le(char *out, size_t n, double b)
{
    snprintf(out, n, "%.17g", b);
    for (int prec = 1; prec <= 17; prec++) {
        char tmp[64];
        snprintf(tmp, sizeof(tmp), "%.*g", prec, b);
        if (strtod(tmp, NULL) == b) {
            snprintf(out, n, "%s", tmp);
            return;
        }
    }
}

/*
 * Create the series of a histogram named base with the given extra labels (NULL-terminated
 * name/value pairs in a fixed array of up to 26 pairs).
 */
static void hist_new(wt_pd_data_t *d, hist_t *h, const char *base, const double *bounds, size_t nb,
                     const char *const *lbl)
{
    h->nb = nb;
    h->bounds = bounds;
    h->first = d->n;
    h->counts = wf_calloc(nb + 1, sizeof(double));
    h->sum = 0;
    char name[256];
    for (size_t i = 0; i <= nb + 2; i++) {
        char le[64] = "";
        if (i < nb) {
            fmt_le(le, sizeof(le), bounds[i]);
        } else if (i == nb) {
            snprintf(le, sizeof(le), "+Inf");
        }
        snprintf(name, sizeof(name), "%s%s", base,
                 i <= nb       ? "_bucket"
                 : i == nb + 1 ? "_sum"
                               : "_count");
        wt_pd_series_t *s = wt_pd_series_new(d, "__name__", name, NULL);
        for (size_t j = 0; lbl[j] != NULL; j += 2) {
            series_add_label(s, lbl[j], lbl[j + 1]);
        }
        if (i <= nb) {
            series_add_label(s, "le", le);
        }
    }
}

static void hist_observe(hist_t *h, double x)
{
    for (size_t i = 0; i < h->nb; i++) {
        if (x <= h->bounds[i]) {
            h->counts[i] += 1;
        }
    }
    h->counts[h->nb] += 1;
    h->sum += x;
}

static void hist_reset(hist_t *h)
{
    memset(h->counts, 0, (h->nb + 1) * sizeof(double));
    h->sum = 0;
}

/* Write the histogram's current state as one scrape at ts. */
static void hist_push(wt_pd_data_t *d, hist_t *h, int64_t ts)
{
    for (size_t i = 0; i <= h->nb; i++) {
        wt_pd_series_push(d, &d->series[h->first + i], ts, h->counts[i]);
    }
    wt_pd_series_push(d, &d->series[h->first + h->nb + 1], ts, h->sum);
    wt_pd_series_push(d, &d->series[h->first + h->nb + 2], ts, h->counts[h->nb]);
}

static void hist_free(hist_t *h)
{
    wf_free(h->counts);
    h->counts = NULL;
}

void wt_pd_gen_general(wt_pd_data_t *d, uint64_t seed, int64_t end_ms, int64_t span_ms)
{
    uint64_t st = seed ? seed : 1;
    int64_t start = end_ms - span_ms;
    int64_t nticks = span_ms / 15000;
    d->start_ms = start;
    d->end_ms = end_ms;
    /* The gap sits 50..62 minutes into the window (longer than the 5 min lookback). */
    d->gap_from_ms = start + 50 * 60000;
    d->gap_to_ms = start + 62 * 60000;
    char inst[64], buf[64];

    /* Counters with resets: http_requests_total{job, instance, method, code}. */
    static const char *methods[] = {"GET", "POST"};
    static const char *codes[] = {"200", "404", "500"};
    for (int i = 0; i < 3; i++) {
        for (int m = 0; m < 2; m++) {
            for (int c = 0; c < 3; c++) {
                snprintf(inst, sizeof(inst), "api-%d:8080", i);
                wt_pd_series_t *s =
                    wt_pd_series_new(d, "__name__", "http_requests_total", "job", "api", "instance",
                                     inst, "method", methods[m], "code", codes[c], NULL);
                size_t idx = (size_t)(s - d->series);
                int64_t phase = 1000 * i + 7;
                double rate = (c == 0   ? 20.0
                               : c == 1 ? 2.0
                                        : 0.5) *
                              (m == 0 ? 1.0 : 0.3) * (1.0 + i * 0.25);
                double v = floor(urand(&st) * 1000);
                for (int64_t k = 0; k <= nticks; k++) {
                    int64_t ts = scrape_ts(&st, start, phase, k);
                    if (ts > end_ms) {
                        break;
                    }
                    /* api-1 restarts half way; api-2's 500s counter restarts twice. */
                    if ((i == 1 && k == nticks / 2) ||
                        (i == 2 && c == 2 && (k == nticks / 3 || k == 2 * nticks / 3))) {
                        v = floor(urand(&st) * 3);
                    } else {
                        v += floor(rate * 15 * (0.5 + urand(&st)));
                    }
                    wt_pd_series_push(d, &d->series[idx], ts, v);
                }
            }
        }
    }
    /* A fractional counter (cpu seconds) and a huge one. */
    for (int i = 0; i < 2; i++) {
        snprintf(inst, sizeof(inst), "node-%d:9100", i);
        size_t a = (size_t)(wt_pd_series_new(d, "__name__", "node_cpu_seconds_total", "job", "node",
                                             "instance", inst, "mode", "user", NULL) -
                            d->series);
        size_t b = (size_t)(wt_pd_series_new(d, "__name__", "bytes_total", "job", "node",
                                             "instance", inst, NULL) -
                            d->series);
        double va = 1234.5 * (i + 1), vb = 1e15 * (i + 1);
        for (int64_t k = 0; k <= nticks; k++) {
            int64_t ts = scrape_ts(&st, start, 3000 + i * 500, k);
            if (ts > end_ms) {
                break;
            }
            va += 15 * 0.37 * (0.9 + 0.2 * urand(&st));
            vb += floor(1e9 * urand(&st));
            wt_pd_series_push(d, &d->series[a], ts, va);
            wt_pd_series_push(d, &d->series[b], ts, vb);
        }
    }

    /* Gauges: temperatures crossing zero, integer queue depths with zeros, tiny values. */
    static const char *sensors[] = {"cpu", "board"};
    for (int i = 0; i < 4; i++) {
        for (int sn = 0; sn < 2; sn++) {
            snprintf(inst, sizeof(inst), "node-%d:9100", i);
            size_t a =
                (size_t)(wt_pd_series_new(d, "__name__", "node_temperature_celsius", "job", "node",
                                          "instance", inst, "sensor", sensors[sn], NULL) -
                         d->series);
            for (int64_t k = 0; k <= nticks; k++) {
                int64_t ts = scrape_ts(&st, start, 2000 + i * 311 + sn * 17, k);
                if (ts > end_ms) {
                    break;
                }
                double v = 8.0 * sin((double)k / 40.0 + i) + (sn ? -2.0 : 3.0) + grand(&st);
                wt_pd_series_push(d, &d->series[a], ts, round(v * 100) / 100);
            }
        }
    }
    static const char *queues[] = {"a", "b"};
    for (int i = 0; i < 3; i++) {
        for (int q = 0; q < 2; q++) {
            snprintf(inst, sizeof(inst), "worker-%d:7000", i);
            size_t a = (size_t)(wt_pd_series_new(d, "__name__", "queue_depth", "job", "worker",
                                                 "instance", inst, "queue", queues[q], NULL) -
                                d->series);
            double v = 0;
            for (int64_t k = 0; k <= nticks; k++) {
                int64_t ts = scrape_ts(&st, start, 4000 + i * 100 + q * 50, k);
                if (ts > end_ms) {
                    break;
                }
                v += floor(grand(&st) * 3);
                if (v < 0) {
                    v = 0;
                }
                wt_pd_series_push(d, &d->series[a], ts, v);
            }
        }
    }
    {
        size_t a = (size_t)(wt_pd_series_new(d, "__name__", "tiny_gauge", "job", "node", NULL) -
                            d->series);
        for (int64_t k = 0; k <= nticks; k++) {
            int64_t ts = scrape_ts(&st, start, 500, k);
            if (ts > end_ms) {
                break;
            }
            wt_pd_series_push(d, &d->series[a], ts, 1e-12 * (1 + urand(&st)) - 1.5e-12);
        }
    }
    /* Special values: NaN, +Inf, -Inf, zero, and all of them mixed. */
    static const char *kinds[] = {"nan", "inf", "neginf", "zero", "mixed"};
    for (int kd = 0; kd < 5; kd++) {
        size_t a = (size_t)(wt_pd_series_new(d, "__name__", "special_values", "job", "edge", "kind",
                                             kinds[kd], NULL) -
                            d->series);
        for (int64_t k = 0; k <= nticks; k++) {
            int64_t ts = scrape_ts(&st, start, 6000 + kd * 100, k);
            if (ts > end_ms) {
                break;
            }
            double v = 10 + (double)(k % 17);
            switch (kd) {
            case 0:
                v = k % 7 == 3 || k % 29 == 0 ? f64_from_bits(WT_PD_NAN_BITS) : v;
                break;
            case 1:
                v = k % 11 == 5 ? INFINITY : v;
                break;
            case 2:
                v = k % 13 == 4 ? -INFINITY : -v;
                break;
            case 3:
                v = 0;
                break;
            default:
                v = k % 4 == 0   ? f64_from_bits(WT_PD_NAN_BITS)
                    : k % 4 == 1 ? INFINITY
                    : k % 4 == 2 ? -INFINITY
                                 : (k % 8 == 3 ? -0.0 : -v);
                break;
            }
            wt_pd_series_push(d, &d->series[a], ts, v);
        }
    }

    /* up / build_info: the usual join targets for group_left and friends. */
    static const char *up_jobs[] = {"api", "node", "worker"};
    for (int j = 0; j < 3; j++) {
        for (int i = 0; i < 3; i++) {
            snprintf(inst, sizeof(inst), "%s-%d:%s",
                     j == 0   ? "api"
                     : j == 1 ? "node"
                              : "worker",
                     i,
                     j == 0   ? "8080"
                     : j == 1 ? "9100"
                              : "7000");
            size_t a = (size_t)(wt_pd_series_new(d, "__name__", "up", "job", up_jobs[j], "instance",
                                                 inst, NULL) -
                                d->series);
            size_t b = SIZE_MAX;
            if (j == 0) {
                snprintf(buf, sizeof(buf), "1.%d.0", i);
                b = (size_t)(wt_pd_series_new(d, "__name__", "build_info", "job", "api", "instance",
                                              inst, "version", buf, NULL) -
                             d->series);
            }
            for (int64_t k = 0; k <= nticks; k++) {
                int64_t ts = scrape_ts(&st, start, 1000 * i + 7 + j * 2000, k);
                if (ts > end_ms) {
                    break;
                }
                double v = (j == 2 && i == 1 && k % 50 < 3) ? 0 : 1;
                wt_pd_series_push(d, &d->series[a], ts, v);
                if (b != SIZE_MAX) {
                    wt_pd_series_push(d, &d->series[b], ts, 1);
                }
            }
        }
    }
    /* A recording-rule style name with colons. */
    {
        size_t a = (size_t)(wt_pd_series_new(d, "__name__", "job:http_requests:rate5m", "job",
                                             "api", NULL) -
                            d->series);
        for (int64_t k = 0; k <= nticks; k++) {
            int64_t ts = start + 9000 + k * 15000;
            if (ts > end_ms) {
                break;
            }
            wt_pd_series_push(d, &d->series[a], ts, 30 + 5 * sin((double)k / 20.0));
        }
    }

    /* Histograms: Prometheus default buckets (seconds), Envoy buckets (ms), a tiny layout. */
    static const char *rpc_methods[] = {"Get", "Put"};
    for (int i = 0; i < 2; i++) {
        for (int m = 0; m < 2; m++) {
            hist_t h;
            snprintf(inst, sizeof(inst), "rpc-%d:9000", i);
            const char *lbl[] = {"job", "rpc", "instance", inst, "method", rpc_methods[m], NULL};
            hist_new(d, &h, "rpc_duration_seconds", prom_default_buckets,
                     sizeof(prom_default_buckets) / sizeof(double), lbl);
            for (int64_t k = 0; k <= nticks; k++) {
                int64_t ts = scrape_ts(&st, start, 5000 + i * 700 + m * 90, k);
                if (ts > end_ms) {
                    break;
                }
                if (i == 1 && k == nticks / 3) {
                    hist_reset(&h);
                }
                int obs = 5 + (int)(wt_rand(&st) % 20);
                for (int o = 0; o < obs; o++) {
                    hist_observe(&h, exp(log(0.08 * (m + 1)) + 1.1 * grand(&st)));
                }
                hist_push(d, &h, ts);
            }
            hist_free(&h);
        }
    }
    static const char *dst[] = {"reviews-v1", "reviews-v2"};
    static const char *rc[] = {"200", "503"};
    for (int dd = 0; dd < 2; dd++) {
        for (int c = 0; c < 2; c++) {
            hist_t h;
            const char *lbl[] = {"source_workload", "productpage-v1", "destination_workload",
                                 dst[dd],           "response_code",  rc[c],
                                 "reporter",        "source",         NULL};
            hist_new(d, &h, "envoy_request_duration_ms", envoy_buckets,
                     sizeof(envoy_buckets) / sizeof(double), lbl);
            for (int64_t k = 0; k <= nticks; k++) {
                int64_t ts = scrape_ts(&st, start, 8000 + dd * 300 + c * 40, k);
                if (ts > end_ms) {
                    break;
                }
                int obs = c == 0 ? 20 + (int)(wt_rand(&st) % 30) : (int)(wt_rand(&st) % 3);
                for (int o = 0; o < obs; o++) {
                    hist_observe(&h, exp(log(dd ? 40.0 : 12.0) + 1.3 * grand(&st)));
                }
                hist_push(d, &h, ts);
            }
            hist_free(&h);
        }
    }
    {
        hist_t h;
        const char *lbl[] = {"job", "batch", "instance", "batch-0:9000", NULL};
        hist_new(d, &h, "batch_size", small_buckets, 1, lbl);
        for (int64_t k = 0; k <= nticks; k++) {
            int64_t ts = scrape_ts(&st, start, 11000, k);
            if (ts > end_ms) {
                break;
            }
            int obs = (int)(wt_rand(&st) % 4);
            for (int o = 0; o < obs; o++) {
                hist_observe(&h, 2.0 * urand(&st));
            }
            hist_push(d, &h, ts);
        }
        hist_free(&h);
    }

    /* Gaps: nothing between gap_from and gap_to; g-1 also has a 3 min gap (under the
     * lookback). */
    for (int i = 0; i < 2; i++) {
        snprintf(inst, sizeof(inst), "g-%d:9000", i);
        size_t a = (size_t)(wt_pd_series_new(d, "__name__", "gappy_requests_total", "job", "gap",
                                             "instance", inst, NULL) -
                            d->series);
        size_t b = (size_t)(wt_pd_series_new(d, "__name__", "gappy_gauge", "job", "gap", "instance",
                                             inst, NULL) -
                            d->series);
        double v = 100;
        for (int64_t k = 0; k <= nticks; k++) {
            int64_t ts = scrape_ts(&st, start, 10000 + i * 1000, k);
            if (ts > end_ms) {
                break;
            }
            v += floor(10 * urand(&st));
            if (ts >= d->gap_from_ms && ts < d->gap_to_ms) {
                continue;
            }
            if (i == 1 && ts >= start + 80 * 60000 && ts < start + 83 * 60000) {
                continue;
            }
            wt_pd_series_push(d, &d->series[a], ts, v);
            wt_pd_series_push(d, &d->series[b], ts, 50 + 20 * sin((double)k / 10.0));
        }
    }

    /* Staleness: s-0 disappears at +70 min, s-1 goes stale at +40 min and comes back at +45,
     * and a counter goes stale 10 minutes before the end. */
    for (int i = 0; i < 2; i++) {
        snprintf(inst, sizeof(inst), "s-%d:9000", i);
        size_t a = (size_t)(wt_pd_series_new(d, "__name__", "stale_gauge", "job", "stale",
                                             "instance", inst, NULL) -
                            d->series);
        bool gone = false;
        for (int64_t k = 0; k <= nticks; k++) {
            int64_t ts = scrape_ts(&st, start, 12000 + i * 100, k);
            if (ts > end_ms) {
                break;
            }
            int64_t rel = ts - start;
            bool absent = i == 0 ? rel >= 70 * 60000 : (rel >= 40 * 60000 && rel < 45 * 60000);
            if (absent) {
                if (!gone) {
                    wt_pd_series_push(d, &d->series[a], ts, f64_from_bits(WT_PD_STALE_NAN_BITS));
                    gone = true;
                }
                continue;
            }
            gone = false;
            wt_pd_series_push(d, &d->series[a], ts, (double)(k % 23) - 5);
        }
    }
    {
        size_t a = (size_t)(wt_pd_series_new(d, "__name__", "stale_requests_total", "job", "stale",
                                             "instance", "s-0:9000", NULL) -
                            d->series);
        double v = 0;
        for (int64_t k = 0; k <= nticks; k++) {
            int64_t ts = scrape_ts(&st, start, 12500, k);
            if (ts > end_ms) {
                break;
            }
            if (ts >= end_ms - 10 * 60000) {
                wt_pd_series_push(d, &d->series[a], ts, f64_from_bits(WT_PD_STALE_NAN_BITS));
                break;
            }
            v += floor(5 * urand(&st));
            wt_pd_series_push(d, &d->series[a], ts, v);
        }
    }

    /* Unjittered series on the 15 s grid of the window's start (a whole minute): queries at
     * whole minutes find samples exactly on the edges of their windows and lookback. */
    {
        size_t a = (size_t)(wt_pd_series_new(d, "__name__", "aligned_requests_total", "job",
                                             "aligned", NULL) -
                            d->series);
        size_t b =
            (size_t)(wt_pd_series_new(d, "__name__", "aligned_gauge", "job", "aligned", NULL) -
                     d->series);
        double v = 0;
        for (int64_t k = 0; k <= nticks; k++) {
            int64_t ts = start + k * 15000;
            v += (double)(k % 7);
            wt_pd_series_push(d, &d->series[a], ts, v);
            wt_pd_series_push(d, &d->series[b], ts, (double)(k % 11) - 3);
        }
    }

    /* Mesh-style counters with Istio label names. */
    static const char *edges[][2] = {{"productpage-v1", "details-v1"},
                                     {"productpage-v1", "reviews-v2"},
                                     {"reviews-v2", "ratings-v1"}};
    static const char *reporters[] = {"source", "destination"};
    for (int e = 0; e < 3; e++) {
        for (int r = 0; r < 2; r++) {
            for (int c = 0; c < 2; c++) {
                size_t a =
                    (size_t)(wt_pd_series_new(d, "__name__", "mesh_requests_total", "reporter",
                                              reporters[r], "source_workload", edges[e][0],
                                              "destination_workload", edges[e][1], "response_code",
                                              rc[c], "connection_security_policy",
                                              r == 0 ? "unknown" : "mutual_tls", NULL) -
                             d->series);
                double v = 0;
                for (int64_t k = 0; k <= nticks; k++) {
                    int64_t ts = scrape_ts(&st, start, 13000 + e * 200 + r * 60 + c * 7, k);
                    if (ts > end_ms) {
                        break;
                    }
                    v += c == 0 ? floor(100 * (0.8 + 0.4 * urand(&st))) : floor(3 * urand(&st));
                    wt_pd_series_push(d, &d->series[a], ts, v);
                }
            }
        }
    }
}

/* ---- the mesh ---- */

typedef struct {
    const char *app, *version, *ns, *sa;
} workload_t;

static const workload_t w_ingress = {"istio-ingressgateway", "unknown", "istio-system",
                                     "istio-ingressgateway-service-account"};
static const workload_t w_product = {"productpage", "v1", "default", "bookinfo-productpage"};
static const workload_t w_details = {"details", "v1", "default", "bookinfo-details"};
static const workload_t w_rev1 = {"reviews", "v1", "default", "bookinfo-reviews"};
static const workload_t w_rev2 = {"reviews", "v2", "default", "bookinfo-reviews"};
static const workload_t w_rev3 = {"reviews", "v3", "default", "bookinfo-reviews"};
static const workload_t w_ratings = {"ratings", "v1", "default", "bookinfo-ratings"};
static const workload_t w_mongo = {"mongodb", "v1", "default", "default"};

typedef struct {
    const workload_t *src, *dst;
    const char *codes[3];
    double rps; /* requests per second of the 200s */
    double latency_ms;
    bool tcp;
} edge_t;

static const edge_t mesh_edges[] = {
    {&w_ingress, &w_product, {"200", "503", NULL}, 10, 35, false},
    {&w_product, &w_details, {"200", "404", NULL}, 10, 4, false},
    {&w_product, &w_rev1, {"200", NULL, NULL}, 3.3, 6, false},
    {&w_product, &w_rev2, {"200", NULL, NULL}, 3.3, 15, false},
    {&w_product, &w_rev3, {"200", "503", NULL}, 3.3, 22, false},
    {&w_rev2, &w_ratings, {"200", NULL, NULL}, 3.3, 3, false},
    {&w_rev3, &w_ratings, {"200", "503", NULL}, 3.3, 5, false},
    {&w_ratings, &w_mongo, {NULL, NULL, NULL}, 0, 0, true},
};

/*
 * Fill Istio's labels into lbl as NULL-terminated name/value pairs: the 25 of design.md §3
 * except grpc_response_status, which is empty for plain HTTP and so absent from what a scrape
 * stores (Prometheus drops empty labels), and response_code for TCP. Strings built here live
 * in store (6 slots used). Returns the number of strings in lbl.
 */
static size_t istio_labels(const char **lbl, char store[][128], const edge_t *e, bool dest_rep,
                           const char *code)
{
    size_t n = 0;
    const workload_t *s = e->src, *d = e->dst;
    /* The gateway's workload carries no version suffix. */
    if (strcmp(s->version, "unknown") == 0) {
        snprintf(store[0], 128, "%s", s->app);
    } else {
        snprintf(store[0], 128, "%s-%s", s->app, s->version);
    }
    snprintf(store[1], 128, "spiffe://cluster.local/ns/%s/sa/%s", s->ns, s->sa);
    snprintf(store[2], 128, "%s-%s", d->app, d->version);
    snprintf(store[3], 128, "spiffe://cluster.local/ns/%s/sa/%s", d->ns, d->sa);
    snprintf(store[4], 128, "%s.%s.svc.cluster.local", d->app, d->ns);
    snprintf(store[5], 128, "%s", strcmp(s->version, "unknown") == 0 ? "latest" : s->version);
    const char *kv[] = {
        "reporter",
        dest_rep ? "destination" : "source",
        "source_workload",
        store[0],
        "source_canonical_service",
        s->app,
        "source_canonical_revision",
        store[5],
        "source_workload_namespace",
        s->ns,
        "source_principal",
        store[1],
        "source_app",
        s->app,
        "source_version",
        s->version,
        "source_cluster",
        "Kubernetes",
        "destination_workload",
        store[2],
        "destination_workload_namespace",
        d->ns,
        "destination_principal",
        store[3],
        "destination_app",
        d->app,
        "destination_version",
        d->version,
        "destination_service",
        store[4],
        "destination_canonical_service",
        d->app,
        "destination_canonical_revision",
        d->version,
        "destination_service_name",
        d->app,
        "destination_service_namespace",
        d->ns,
        "destination_cluster",
        "Kubernetes",
        "request_protocol",
        e->tcp ? "tcp" : "http",
        "response_flags",
        code != NULL && strcmp(code, "503") == 0 ? "URX" : "-",
        "connection_security_policy",
        dest_rep ? "mutual_tls" : "unknown",
        NULL,
    };
    for (size_t i = 0; kv[i] != NULL; i++) {
        lbl[n++] = kv[i];
    }
    if (code != NULL) {
        lbl[n++] = "response_code";
        lbl[n++] = code;
    }
    lbl[n] = NULL;
    return n;
}

/* A series named name with the NULL-terminated pairs in lbl. */
static size_t series_from(wt_pd_data_t *d, const char *name, const char *const *lbl)
{
    wt_pd_series_t *s = wt_pd_series_new(d, "__name__", name, NULL);
    for (size_t j = 0; lbl[j] != NULL; j += 2) {
        series_add_label(s, lbl[j], lbl[j + 1]);
    }
    return (size_t)(s - d->series);
}

void wt_pd_gen_mesh(wt_pd_data_t *d, uint64_t seed, int64_t end_ms, int64_t span_ms)
{
    uint64_t st = seed ? seed : 1;
    int64_t start = end_ms - span_ms;
    int64_t nticks = span_ms / 15000;
    d->start_ms = start;
    d->end_ms = end_ms;
    d->gap_from_ms = d->gap_to_ms = 0;
    size_t nedges = sizeof(mesh_edges) / sizeof(mesh_edges[0]);
    for (size_t ei = 0; ei < nedges; ei++) {
        const edge_t *e = &mesh_edges[ei];
        for (int rep = 0; rep < 2; rep++) {
            int64_t phase = (int64_t)(ei * 1300 + (size_t)rep * 7100) % 15000;
            const char *lbl[64];
            char store[8][128];
            if (e->tcp) {
                istio_labels(lbl, store, e, rep == 1, NULL);
                size_t s_sent = series_from(d, "istio_tcp_sent_bytes_total", lbl);
                size_t s_recv = series_from(d, "istio_tcp_received_bytes_total", lbl);
                size_t s_open = series_from(d, "istio_tcp_connections_opened_total", lbl);
                size_t s_close = series_from(d, "istio_tcp_connections_closed_total", lbl);
                double sent = 0, recv = 0, opened = 0, closed = 0;
                for (int64_t k = 0; k <= nticks; k++) {
                    int64_t ts = scrape_ts(&st, start, phase, k);
                    if (ts > end_ms) {
                        break;
                    }
                    double c = floor(3 * urand(&st));
                    opened += c;
                    closed += c > 0 ? c - (k % 2) : 0;
                    if (closed > opened) {
                        closed = opened;
                    }
                    sent += floor(15 * 2048 * (0.5 + urand(&st)));
                    recv += floor(15 * 512 * (0.5 + urand(&st)));
                    wt_pd_series_push(d, &d->series[s_sent], ts, sent);
                    wt_pd_series_push(d, &d->series[s_recv], ts, recv);
                    wt_pd_series_push(d, &d->series[s_open], ts, opened);
                    wt_pd_series_push(d, &d->series[s_close], ts, closed);
                }
                continue;
            }
            for (int c = 0; c < 3 && e->codes[c] != NULL; c++) {
                istio_labels(lbl, store, e, rep == 1, e->codes[c]);
                size_t s_req = series_from(d, "istio_requests_total", lbl);
                hist_t hd, hq, hs;
                hist_new(d, &hd, "istio_request_duration_milliseconds", envoy_buckets,
                         sizeof(envoy_buckets) / sizeof(double), lbl);
                hist_new(d, &hq, "istio_request_bytes", envoy_buckets,
                         sizeof(envoy_buckets) / sizeof(double), lbl);
                hist_new(d, &hs, "istio_response_bytes", envoy_buckets,
                         sizeof(envoy_buckets) / sizeof(double), lbl);
                double req = 0;
                double share = c == 0 ? 1.0 : 0.04;
                for (int64_t k = 0; k <= nticks; k++) {
                    int64_t ts = scrape_ts(&st, start, phase, k);
                    if (ts > end_ms) {
                        break;
                    }
                    /* Traffic swells and ebbs over the hour; errors come in bursts. */
                    double rps = e->rps * share * (1.0 + 0.3 * sin((double)k / 30.0 + ei));
                    if (c > 0 && (k / 20) % 3 != 0) {
                        rps = 0;
                    }
                    int n = (int)floor(rps * 15 * (0.8 + 0.4 * urand(&st)));
                    for (int i = 0; i < n; i++) {
                        double lat = exp(log(e->latency_ms) + 0.9 * grand(&st));
                        if (rep == 0) {
                            lat += 0.7; /* the source side also sees the hop */
                        }
                        hist_observe(&hd, lat);
                        hist_observe(&hq, floor(200 + 600 * urand(&st)));
                        hist_observe(&hs, c == 0 ? floor(1000 + 4000 * urand(&st)) : 95);
                    }
                    req += n;
                    wt_pd_series_push(d, &d->series[s_req], ts, req);
                    hist_push(d, &hd, ts);
                    hist_push(d, &hq, ts);
                    hist_push(d, &hs, ts);
                }
                hist_free(&hd);
                hist_free(&hq);
                hist_free(&hs);
            }
        }
    }
    /* The proxies' own resource use and build info, which the dashboards also chart. */
    const workload_t *pods[] = {&w_ingress, &w_product, &w_details, &w_rev1,
                                &w_rev2,    &w_rev3,    &w_ratings};
    for (size_t p = 0; p < sizeof(pods) / sizeof(pods[0]); p++) {
        char pod[128];
        snprintf(pod, sizeof(pod), "%s-%s-7d9f8c6b5-x%zu", pods[p]->app,
                 strcmp(pods[p]->version, "unknown") == 0 ? "deploy" : pods[p]->version, p);
        if (p == 0) {
            snprintf(pod, sizeof(pod), "istio-ingressgateway-5b7c8d9f-abcde");
        }
        const char *lbl[] = {"namespace", pods[p]->ns,   "pod", pod,
                             "container", "istio-proxy", NULL};
        size_t cpu = series_from(d, "container_cpu_usage_seconds_total", lbl);
        size_t mem = series_from(d, "container_memory_working_set_bytes", lbl);
        const char *blbl[] = {"component", "proxy", "tag", "1.20.0", "pod", pod, NULL};
        size_t build = series_from(d, "istio_build", blbl);
        double cpu_s = 100 * (double)(p + 1);
        for (int64_t k = 0; k <= nticks; k++) {
            int64_t ts = scrape_ts(&st, start, 14000 - (int64_t)p * 100, k);
            if (ts > end_ms) {
                break;
            }
            cpu_s += 15 * 0.02 * (0.5 + urand(&st));
            wt_pd_series_push(d, &d->series[cpu], ts, cpu_s);
            wt_pd_series_push(d, &d->series[mem], ts, floor(40e6 + 5e6 * urand(&st)));
            wt_pd_series_push(d, &d->series[build], ts, 1);
        }
    }
}

/* ---- remote write ---- */

static int post_write(wt_pd_srv_t *s, const wt_rw_t *rw)
{
    char *resp = NULL;
    int status = wt_rw_send(rw, s->port, "/api/v1/write", &resp);
    int rc = status == 204 || status == 200 ? 0 : -1;
    if (rc != 0) {
        printf("remote_write to %s: status %d: %.500s\n", s->name, status, resp ? resp : "");
    }
    wf_free(resp);
    return rc;
}

int wt_pd_load(wt_pd_srv_t *s, const wt_pd_data_t *d)
{
    /* Ten-minute slices across all series, oldest first: every request stays well inside the
     * hour Prometheus accepts behind its newest sample. */
    const int64_t slice = 10 * 60000;
    const size_t max_samples = 20000;
    size_t *cur = wf_calloc(d->n ? d->n : 1, sizeof(size_t));
    const char **pairs = NULL;
    size_t pairs_cap = 0;
    wt_rw_t *rw = wt_rw_new();
    int rc = 0;
    int64_t lo = INT64_MAX;
    for (size_t i = 0; i < d->n; i++) {
        if (d->series[i].n > 0 && d->series[i].ts[0] < lo) {
            lo = d->series[i].ts[0];
        }
    }
    for (int64_t t = lo; rc == 0 && lo != INT64_MAX; t += slice) {
        bool more = false;
        for (size_t i = 0; i < d->n && rc == 0; i++) {
            const wt_pd_series_t *se = &d->series[i];
            size_t from = cur[i], to = from;
            while (to < se->n && se->ts[to] < t + slice) {
                to++;
            }
            if (to > from) {
                if (pairs_cap < 2 * se->nlabels) {
                    pairs_cap = 2 * se->nlabels;
                    pairs = wf_realloc(pairs, pairs_cap * sizeof(char *));
                }
                for (size_t j = 0; j < se->nlabels; j++) {
                    pairs[2 * j] = se->names[j];
                    pairs[2 * j + 1] = se->values[j];
                }
                wt_rw_series(rw, pairs, se->nlabels);
                for (size_t j = from; j < to; j++) {
                    wt_rw_sample(rw, se->ts[j], se->v[j]);
                }
                cur[i] = to;
            }
            if (cur[i] < se->n) {
                more = true;
            }
            if (wt_rw_nsamples(rw) >= max_samples) {
                rc = post_write(s, rw);
                wt_rw_reset(rw);
            }
        }
        if (rc == 0 && wt_rw_nsamples(rw) > 0) {
            rc = post_write(s, rw);
            wt_rw_reset(rw);
        }
        if (!more) {
            break;
        }
    }
    wt_rw_free(rw);
    wf_free(pairs);
    wf_free(cur);
    return rc;
}

/* ---- queries ---- */

void wt_pd_answer_free(wt_pd_answer_t *a)
{
    wf_free(a->body);
    a->body = NULL;
}

static void fmt_time(char *out, size_t n, int64_t ms)
{
    /* Seconds with milliseconds, the form Grafana and the Prometheus UI send. */
    int64_t s = ms / 1000, frac = ms % 1000;
    if (frac < 0) {
        frac += 1000;
        s -= 1;
    }
    snprintf(out, n, "%lld.%03lld", (long long)s, (long long)frac);
}

int wt_pd_request(wt_pd_srv_t *s, const char *path, const char *form, wt_pd_answer_t *out)
{
    wf_buf_t body = WF_BUF_INIT;
    double t0 = mono_ms();
    out->status = http_do(s, path, form, &body, 120);
    out->ms = mono_ms() - t0;
    if (out->status < 0) {
        wf_buf_free(&body);
        out->body = NULL;
        return -1;
    }
    wf_buf_putc(&body, 0);
    out->body = (char *)wf_buf_detach(&body, NULL);
    return 0;
}

static int do_query(wt_pd_srv_t *s, const char *path_and_args, wt_pd_answer_t *out)
{
    return wt_pd_request(s, path_and_args, NULL, out);
}

int wt_pd_query(wt_pd_srv_t *s, const char *q, int64_t t_ms, wt_pd_answer_t *out)
{
    char *enc = curl_easy_escape(s->curl, q, 0);
    char t[64];
    fmt_time(t, sizeof(t), t_ms);
    size_t n = strlen(enc) + 128;
    char *path = wf_malloc(n);
    snprintf(path, n, "/api/v1/query?query=%s&time=%s", enc, t);
    curl_free(enc);
    int rc = do_query(s, path, out);
    wf_free(path);
    return rc;
}

int wt_pd_query_range(wt_pd_srv_t *s, const char *q, int64_t start_ms, int64_t end_ms,
                      int64_t step_ms, wt_pd_answer_t *out)
{
    char *enc = curl_easy_escape(s->curl, q, 0);
    char a[64], b[64], c[64];
    fmt_time(a, sizeof(a), start_ms);
    fmt_time(b, sizeof(b), end_ms);
    fmt_time(c, sizeof(c), step_ms);
    size_t n = strlen(enc) + 256;
    char *path = wf_malloc(n);
    snprintf(path, n, "/api/v1/query_range?query=%s&start=%s&end=%s&step=%s", enc, a, b, c);
    curl_free(enc);
    int rc = do_query(s, path, out);
    wf_free(path);
    return rc;
}

/* ---- comparison ---- */

static bool num_equal(double a, double b)
{
    if (isnan(a) || isnan(b)) {
        return isnan(a) && isnan(b);
    }
    if (isinf(a) || isinf(b)) {
        return a == b;
    }
    double diff = fabs(a - b);
    if (diff <= 1e-9) {
        return true;
    }
    double mag = fmax(fabs(a), fabs(b));
    return diff <= 1e-6 * mag;
}

/* A sample value as the API writes it: a string ("1.5", "NaN", "+Inf"). */
static bool parse_value(json_t *v, double *out)
{
    if (!json_is_string(v)) {
        return false;
    }
    const char *s = json_string_value(v);
    char *end = NULL;
    *out = strtod(s, &end);
    return end != s && *end == '\0';
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The label set of a result series as one comparable string: {a="1", b="2"} sorted. */
static char *series_key(json_t *metric)
{
    wf_buf_t b = WF_BUF_INIT;
    if (!json_is_object(metric)) {
        wf_buf_puts(&b, "<no metric>");
        wf_buf_putc(&b, 0);
        return (char *)wf_buf_detach(&b, NULL);
    }
    size_t n = json_object_size(metric), i = 0;
    const char **keys = wf_malloc((n ? n : 1) * sizeof(char *));
    const char *k;
    json_t *v;
    json_object_foreach(metric, k, v)
    {
        keys[i++] = k;
    }
    qsort(keys, n, sizeof(char *), cmp_str);
    wf_buf_putc(&b, '{');
    for (i = 0; i < n; i++) {
        json_t *val = json_object_get(metric, keys[i]);
        wf_buf_printf(&b, "%s%s=\"%s\"", i ? ", " : "", keys[i],
                      json_is_string(val) ? json_string_value(val) : "<not a string>");
    }
    wf_buf_putc(&b, '}');
    wf_buf_putc(&b, 0);
    wf_free(keys);
    return (char *)wf_buf_detach(&b, NULL);
}

typedef struct {
    char *key;
    json_t *item;
    size_t pos;
} keyed_t;

static int cmp_keyed(const void *a, const void *b)
{
    return strcmp(((const keyed_t *)a)->key, ((const keyed_t *)b)->key);
}

static keyed_t *keyed_array(json_t *arr, size_t *n)
{
    *n = json_array_size(arr);
    keyed_t *k = wf_calloc(*n ? *n : 1, sizeof(keyed_t));
    for (size_t i = 0; i < *n; i++) {
        k[i].item = json_array_get(arr, i);
        k[i].key = series_key(json_object_get(k[i].item, "metric"));
        k[i].pos = i;
    }
    qsort(k, *n, sizeof(keyed_t), cmp_keyed);
    return k;
}

static void keyed_free(keyed_t *k, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        wf_free(k[i].key);
    }
    wf_free(k);
}

/*
 * Compare one [ts, "value"] point. fmt (FMT_LEN bytes) receives the first pair of values that
 * are the same number written differently ("1e+06" and "1000000"): not a difference for a
 * client that parses numbers, but worth knowing.
 */
#define FMT_LEN 256
static bool point_equal(json_t *a, json_t *b, char *why, size_t whylen, const char *ctx, char *fmt)
{
    if (!json_is_array(a) || json_array_size(a) != 2 || !json_is_array(b) ||
        json_array_size(b) != 2) {
        snprintf(why, whylen, "%s: malformed point", ctx);
        return false;
    }
    json_t *ta = json_array_get(a, 0), *tb = json_array_get(b, 0);
    if (!json_is_number(ta) || !json_is_number(tb) ||
        json_number_value(ta) != json_number_value(tb)) {
        snprintf(why, whylen, "%s: timestamp prom %.3f weft %.3f", ctx, json_number_value(ta),
                 json_number_value(tb));
        return false;
    }
    double va, vb;
    if (!parse_value(json_array_get(a, 1), &va) || !parse_value(json_array_get(b, 1), &vb)) {
        snprintf(why, whylen, "%s: value is not a number string", ctx);
        return false;
    }
    if (!num_equal(va, vb)) {
        snprintf(why, whylen, "%s at %.3f: prom %s weft %s", ctx, json_number_value(ta),
                 json_string_value(json_array_get(a, 1)), json_string_value(json_array_get(b, 1)));
        return false;
    }
    const char *sa = json_string_value(json_array_get(a, 1));
    const char *sb = json_string_value(json_array_get(b, 1));
    bool same = va == vb || (isnan(va) && isnan(vb));
    if (fmt[0] == '\0' && same && strcmp(sa, sb) != 0) {
        snprintf(fmt, FMT_LEN, "value written as \"%.60s\" by prom, \"%.60s\" by weft", sa, sb);
    }
    return true;
}

static bool compare_series_sets(json_t *ra, json_t *rb, bool matrix, bool ordered, char *why,
                                size_t whylen, char *fmt)
{
    if (!json_is_array(ra) || !json_is_array(rb)) {
        snprintf(why, whylen, "result is not an array");
        return false;
    }
    size_t na, nb;
    keyed_t *ka = keyed_array(ra, &na), *kb = keyed_array(rb, &nb);
    bool ok = true;
    size_t i = 0, j = 0;
    while (ok && (i < na || j < nb)) {
        int c = i == na ? 1 : j == nb ? -1 : strcmp(ka[i].key, kb[j].key);
        if (c < 0) {
            snprintf(why, whylen, "%zu series vs %zu; missing in weft: %s", na, nb, ka[i].key);
            ok = false;
        } else if (c > 0) {
            snprintf(why, whylen, "%zu series vs %zu; extra in weft: %s", na, nb, kb[j].key);
            ok = false;
        } else if ((i > 0 && strcmp(ka[i - 1].key, ka[i].key) == 0) ||
                   (j > 0 && strcmp(kb[j - 1].key, kb[j].key) == 0)) {
            snprintf(why, whylen, "duplicate series %s", ka[i].key);
            ok = false;
        } else if (!matrix) {
            ok = point_equal(json_object_get(ka[i].item, "value"),
                             json_object_get(kb[j].item, "value"), why, whylen, ka[i].key, fmt);
            i++;
            j++;
        } else {
            json_t *pa = json_object_get(ka[i].item, "values");
            json_t *pb = json_object_get(kb[j].item, "values");
            size_t la = json_array_size(pa), lb = json_array_size(pb);
            for (size_t p = 0; ok && p < la && p < lb; p++) {
                ok = point_equal(json_array_get(pa, p), json_array_get(pb, p), why, whylen,
                                 ka[i].key, fmt);
            }
            if (ok && la != lb) {
                snprintf(why, whylen, "%s: %zu points vs %zu", ka[i].key, la, lb);
                ok = false;
            }
            i++;
            j++;
        }
    }
    if (ok && ordered && !matrix) {
        /* Compare the value sequence position by position: ties may swap labels, but the
         * order of values is what sort/topk define. */
        for (size_t p = 0; ok && p < na; p++) {
            double va, vb;
            json_t *a = json_object_get(json_array_get(ra, p), "value");
            json_t *b = json_object_get(json_array_get(rb, p), "value");
            if (parse_value(json_array_get(a, 1), &va) && parse_value(json_array_get(b, 1), &vb) &&
                !num_equal(va, vb)) {
                snprintf(why, whylen, "order differs at position %zu: prom %s weft %s", p,
                         json_string_value(json_array_get(a, 1)),
                         json_string_value(json_array_get(b, 1)));
                ok = false;
            }
        }
    }
    keyed_free(ka, na);
    keyed_free(kb, nb);
    return ok;
}

/* Canonical text of a JSON value (keys sorted); wf_free it. */
static char *canon(json_t *v)
{
    char *d = json_dumps(v, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
    char *r = wf_strdup(d ? d : "");
    free(d);
    return r;
}

/*
 * Lists of label names or values must match in order (Prometheus sorts them); lists of series
 * (objects) as sets.
 */
static bool compare_lists(json_t *la, json_t *lb, char *why, size_t whylen)
{
    if (!json_is_array(lb)) {
        snprintf(why, whylen, "data is not a list in weft's answer");
        return false;
    }
    size_t na = json_array_size(la), nb = json_array_size(lb);
    char **ca = wf_calloc(na + 1, sizeof(char *)), **cb = wf_calloc(nb + 1, sizeof(char *));
    bool objects = false;
    for (size_t i = 0; i < na; i++) {
        ca[i] = canon(json_array_get(la, i));
        objects |= json_is_object(json_array_get(la, i));
    }
    for (size_t i = 0; i < nb; i++) {
        cb[i] = canon(json_array_get(lb, i));
    }
    if (objects) {
        qsort(ca, na, sizeof(char *), cmp_str);
        qsort(cb, nb, sizeof(char *), cmp_str);
    }
    bool ok = na == nb;
    size_t i = 0;
    for (; ok && i < na; i++) {
        ok = strcmp(ca[i], cb[i]) == 0;
    }
    if (!ok) {
        if (na != nb) {
            snprintf(why, whylen, "%zu entries vs %zu", na, nb);
        } else {
            snprintf(why, whylen, "entry %zu: prom %.200s weft %.200s", i - 1, ca[i - 1],
                     cb[i - 1]);
        }
    }
    for (i = 0; i < na; i++) {
        wf_free(ca[i]);
    }
    for (i = 0; i < nb; i++) {
        wf_free(cb[i]);
    }
    wf_free(ca);
    wf_free(cb);
    return ok;
}

wt_pd_verdict_t wt_pd_compare(const wt_pd_answer_t *ref, const wt_pd_answer_t *got, bool ordered,
                              char *why, size_t whylen)
{
    wt_pd_verdict_t verdict = WT_PD_DIFFER;
    json_t *a = NULL, *b = NULL;
    char fmt[FMT_LEN] = "";
    why[0] = '\0';
    if (got->body == NULL) {
        snprintf(why, whylen, "weft gave no HTTP answer");
        goto out;
    }
    a = json_loads(ref->body ? ref->body : "", 0, NULL);
    b = json_loads(got->body, 0, NULL);
    if (a == NULL) {
        snprintf(why, whylen, "prometheus answer is not JSON (status %ld)", ref->status);
        goto out;
    }
    if (b == NULL) {
        snprintf(why, whylen, "weft answer is not JSON (status %ld)", got->status);
        goto out;
    }
    const char *sa = json_string_value(json_object_get(a, "status"));
    const char *sb = json_string_value(json_object_get(b, "status"));
    if (sa == NULL || sb == NULL) {
        snprintf(why, whylen, "missing status field");
        goto out;
    }
    if (strcmp(sa, "error") == 0) {
        const char *ta = json_string_value(json_object_get(a, "errorType"));
        const char *tb = json_string_value(json_object_get(b, "errorType"));
        const char *ma = json_string_value(json_object_get(a, "error"));
        const char *mb = json_string_value(json_object_get(b, "error"));
        if (strcmp(sb, "error") != 0) {
            snprintf(why, whylen, "prom error (%s: %s), weft success", ta ? ta : "?",
                     ma ? ma : "?");
        } else if (ta == NULL || tb == NULL || strcmp(ta, tb) != 0) {
            snprintf(why, whylen, "error type prom %s weft %s (prom: %s | weft: %s)", ta ? ta : "?",
                     tb ? tb : "?", ma ? ma : "?", mb ? mb : "?");
        } else if (ref->status != got->status) {
            snprintf(why, whylen, "error HTTP status prom %ld weft %ld", ref->status, got->status);
        } else if (ma == NULL || mb == NULL || strcmp(ma, mb) != 0) {
            snprintf(why, whylen, "error message prom \"%s\" weft \"%s\"", ma ? ma : "?",
                     mb ? mb : "?");
            verdict = WT_PD_AGREE_ERRMSG;
        } else {
            verdict = WT_PD_AGREE;
        }
        goto out;
    }
    if (strcmp(sb, "success") != 0) {
        snprintf(why, whylen, "prom success, weft error %s: %s",
                 json_string_value(json_object_get(b, "errorType")),
                 json_string_value(json_object_get(b, "error")));
        goto out;
    }
    if (got->status != 200) {
        snprintf(why, whylen, "weft answered success with HTTP %ld", got->status);
        goto out;
    }
    json_t *da = json_object_get(a, "data"), *db = json_object_get(b, "data");
    if (json_is_array(da)) {
        /* /api/v1/series, /labels, /label/<name>/values: lists rather than results. */
        if (compare_lists(da, db, why, whylen)) {
            verdict = WT_PD_AGREE;
        }
        goto out;
    }
    const char *rta = json_string_value(json_object_get(da, "resultType"));
    const char *rtb = json_string_value(json_object_get(db, "resultType"));
    if (rta == NULL || rtb == NULL || strcmp(rta, rtb) != 0) {
        snprintf(why, whylen, "resultType prom %s weft %s", rta ? rta : "?", rtb ? rtb : "?");
        goto out;
    }
    json_t *ra = json_object_get(da, "result"), *rb = json_object_get(db, "result");
    if (strcmp(rta, "scalar") == 0) {
        if (point_equal(ra, rb, why, whylen, "scalar", fmt)) {
            verdict = WT_PD_AGREE;
        }
    } else if (strcmp(rta, "string") == 0) {
        if (json_equal(ra, rb)) {
            verdict = WT_PD_AGREE;
        } else {
            snprintf(why, whylen, "string result differs");
        }
    } else if (strcmp(rta, "vector") == 0 || strcmp(rta, "matrix") == 0) {
        if (compare_series_sets(ra, rb, strcmp(rta, "matrix") == 0, ordered, why, whylen, fmt)) {
            verdict = WT_PD_AGREE;
        }
    } else {
        snprintf(why, whylen, "unknown resultType %s", rta);
    }
out:
    if (verdict == WT_PD_AGREE && fmt[0] != '\0') {
        snprintf(why, whylen, "%s", fmt);
        verdict = WT_PD_AGREE_FORMAT;
    }
    json_decref(a);
    json_decref(b);
    return verdict;
}

/* Does the parenthesis opened at q[open] close at the last non-space character? */
static bool closes_at_end(const char *q, size_t open)
{
    int depth = 0;
    char quote = 0;
    size_t i = open;
    for (; q[i] != '\0'; i++) {
        char c = q[i];
        if (quote) {
            if (c == '\\' && q[i + 1] != '\0') {
                i++;
            } else if (c == quote) {
                quote = 0;
            }
            continue;
        }
        if (c == '"' || c == '\'' || c == '`') {
            quote = c;
        } else if (c == '(') {
            depth++;
        } else if (c == ')' && --depth == 0) {
            break;
        }
    }
    if (q[i] == '\0') {
        return false;
    }
    for (i++; q[i] != '\0'; i++) {
        if (q[i] != ' ' && q[i] != '\t') {
            return false;
        }
    }
    return true;
}

bool wt_pd_order_defined(const char *q)
{
    while (*q == ' ') {
        q++;
    }
    static const char *fns[] = {"sort_desc", "sort", "topk", "bottomk"};
    for (size_t f = 0; f < 4; f++) {
        size_t n = strlen(fns[f]);
        if (strncmp(q, fns[f], n) != 0) {
            continue;
        }
        size_t p = n;
        while (q[p] == ' ') {
            p++;
        }
        if (q[p] != '(') {
            return false; /* topk by (x) (...) groups: the order across groups is not defined */
        }
        if (!closes_at_end(q, p)) {
            return false;
        }
        if (f >= 2 && (strstr(q, ") by") != NULL || strstr(q, ")by") != NULL ||
                       strstr(q, "without") != NULL)) {
            return false;
        }
        return true;
    }
    return false;
}

/* ---- running ---- */

void wt_pd_tally_init(wt_pd_tally_t *t, size_t show_max)
{
    memset(t, 0, sizeof(*t));
    t->show_max = show_max;
    t->oneline_max = 400;
    const char *notes = getenv("WT_PD_NOTES");
    t->notes_max = notes != NULL ? (size_t)atoi(notes) : 20;
}

static void print_body(FILE *out, const char *who, const wt_pd_answer_t *a)
{
    const char *b = a->body ? a->body : "(no answer)";
    size_t n = strlen(b);
    fprintf(out, "    %s (HTTP %ld): %.*s%s\n", who, a->status, (int)(n > 1500 ? 1500 : n), b,
            n > 1500 ? " ...(truncated)" : "");
}

static void report(wt_pd_tally_t *t, FILE *out, const char *q, const char *when, wt_pd_verdict_t v,
                   const char *why, const wt_pd_answer_t *a, const wt_pd_answer_t *b)
{
    if (v == WT_PD_AGREE) {
        return;
    }
    if (v == WT_PD_AGREE_ERRMSG || v == WT_PD_AGREE_FORMAT) {
        if (t->notes < t->notes_max) {
            fprintf(out, "note (%s only): %s [%s]: %s\n",
                    v == WT_PD_AGREE_ERRMSG ? "error message" : "number format", q, when, why);
            t->notes++;
        }
        return;
    }
    if (t->shown < t->show_max) {
        fprintf(out, "DIFF #%zu: %s\n    at: %s\n    why: %s\n", t->shown + 1, q, when, why);
        print_body(out, "prom", a);
        print_body(out, "weft", b);
        t->shown++;
    } else if (t->oneline < t->oneline_max) {
        fprintf(out, "DIFF: %s [%s]: %s\n", q, when, why);
        t->oneline++;
    }
}

size_t wt_pd_run(wt_pd_tally_t *t, FILE *out, wt_pd_srv_t *ref, wt_pd_srv_t *got, const char *q,
                 const int64_t *times, size_t ntimes, const int64_t (*ranges)[3], size_t nranges)
{
    size_t differed = 0;
    bool ordered = wt_pd_order_defined(q);
    char why[2048], when[256];
    t->queries++;
    for (size_t i = 0; i < ntimes + nranges; i++) {
        wt_pd_answer_t a = {0}, b = {0};
        if (i < ntimes) {
            wt_pd_query(ref, q, times[i], &a);
            wt_pd_query(got, q, times[i], &b);
            char ts[64];
            fmt_time(ts, sizeof(ts), times[i]);
            snprintf(when, sizeof(when), "instant time=%s", ts);
        } else {
            const int64_t *r = ranges[i - ntimes];
            wt_pd_query_range(ref, q, r[0], r[1], r[2], &a);
            wt_pd_query_range(got, q, r[0], r[1], r[2], &b);
            char s0[64], s1[64], s2[64];
            fmt_time(s0, sizeof(s0), r[0]);
            fmt_time(s1, sizeof(s1), r[1]);
            fmt_time(s2, sizeof(s2), r[2]);
            snprintf(when, sizeof(when), "range start=%s end=%s step=%s", s0, s1, s2);
        }
        wt_pd_verdict_t v;
        if (a.body == NULL) {
            v = WT_PD_DIFFER;
            snprintf(why, sizeof(why), "prometheus gave no HTTP answer");
        } else {
            v = wt_pd_compare(&a, &b, i < ntimes && ordered, why, sizeof(why));
        }
        t->evals++;
        if (a.body != NULL && strstr(a.body, "\"status\":\"error\"") != NULL) {
            t->ref_errors++;
        } else if (a.body != NULL && strstr(a.body, "\"result\":[]") != NULL) {
            t->ref_empty++;
        }
        if (v == WT_PD_DIFFER) {
            t->differed++;
            differed++;
        } else {
            t->agreed++;
            t->errmsg_only += v == WT_PD_AGREE_ERRMSG;
            t->format_only += v == WT_PD_AGREE_FORMAT;
        }
        report(t, out, q, when, v, why, &a, &b);
        wt_pd_answer_free(&a);
        wt_pd_answer_free(&b);
    }
    if (differed > 0) {
        t->queries_differing++;
    }
    return differed;
}

bool wt_pd_run_raw(wt_pd_tally_t *t, FILE *out, wt_pd_srv_t *ref, wt_pd_srv_t *got,
                   const char *path, const char *form)
{
    wt_pd_answer_t a = {0}, b = {0};
    char why[2048];
    wt_pd_request(ref, path, form, &a);
    wt_pd_request(got, path, form, &b);
    wt_pd_verdict_t v = WT_PD_DIFFER;
    if (a.body == NULL) {
        snprintf(why, sizeof(why), "prometheus gave no HTTP answer");
    } else {
        v = wt_pd_compare(&a, &b, false, why, sizeof(why));
    }
    t->queries++;
    t->evals++;
    if (a.body != NULL && strstr(a.body, "\"status\":\"error\"") != NULL) {
        t->ref_errors++;
    }
    if (v == WT_PD_DIFFER) {
        t->differed++;
        t->queries_differing++;
    } else {
        t->agreed++;
        t->errmsg_only += v == WT_PD_AGREE_ERRMSG;
        t->format_only += v == WT_PD_AGREE_FORMAT;
    }
    report(t, out, path, form ? form : "GET", v, why, &a, &b);
    wt_pd_answer_free(&a);
    wt_pd_answer_free(&b);
    return v != WT_PD_DIFFER;
}

void wt_pd_tally_print(const wt_pd_tally_t *t, FILE *out, const char *what)
{
    fprintf(out,
            "%s: %zu queries, %zu evaluations: %zu agreed (%zu with a different error message, "
            "%zu with numbers written differently), %zu differed (%zu queries with a "
            "difference); Prometheus answered %zu errors, %zu empty results, %zu non-empty "
            "results\n",
            what, t->queries, t->evals, t->agreed, t->errmsg_only, t->format_only, t->differed,
            t->queries_differing, t->ref_errors, t->ref_empty,
            t->evals - t->ref_errors - t->ref_empty);
}

/* ---- the mesh query sets ---- */

static void mq_add(wt_pd_mq_t **qs, size_t *n, size_t *cap, char *q, const char *origin,
                   bool kiali_graph, bool service_dashboard)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 256;
        *qs = wf_realloc(*qs, *cap * sizeof(**qs));
    }
    wt_pd_mq_t *m = &(*qs)[(*n)++];
    m->q = q;
    snprintf(m->origin, sizeof(m->origin), "%s", origin);
    m->kiali_graph = kiali_graph;
    m->service_dashboard = service_dashboard;
}

void wt_pd_mq_free(wt_pd_mq_t *q, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        wf_free(q[i].q);
    }
    wf_free(q);
}

/* Grafana's variables, longest names first so that $service never eats $services. */
static const char *const grafana_vars[][2] = {
    {"$__rate_interval", "1m"},
    {"$__interval", "1m"},
    {"$__range", "1h"},
    {"$srccluster", ".*"},
    {"$dstcluster", ".*"},
    {"$namespace", "default"},
    {"$workload", "reviews-v3"},
    {"$service", "reviews.default.svc.cluster.local"},
    {"$dstsvc", ".*"},
    {"$srcns", ".*"},
    {"$srcwl", ".*"},
    {"$dstns", ".*"},
    {"$dstwl", ".*"},
    {"$qrep", "source"},
};

static char *grafana_subst(const char *in)
{
    wf_buf_t b = WF_BUF_INIT;
    for (const char *p = in; *p != '\0';) {
        bool done = false;
        if (*p == '$') {
            for (size_t i = 0; i < sizeof(grafana_vars) / sizeof(grafana_vars[0]); i++) {
                size_t n = strlen(grafana_vars[i][0]);
                if (strncmp(p, grafana_vars[i][0], n) == 0) {
                    wf_buf_puts(&b, grafana_vars[i][1]);
                    p += n;
                    done = true;
                    break;
                }
            }
        }
        if (!done) {
            wf_buf_putc(&b, (uint8_t)*p++);
        }
    }
    wf_buf_putc(&b, 0);
    return (char *)wf_buf_detach(&b, NULL);
}

/* Lines of a file with the trailing newline removed; NULL when absent. */
static char **read_lines(const char *rel, size_t *n)
{
    char *path = wt_ref_path(rel);
    *n = 0;
    if (path == NULL) {
        return NULL;
    }
    char *text = wt_read_file(path, NULL);
    wf_free(path);
    if (text == NULL) {
        return NULL;
    }
    size_t cap = 64;
    char **lines = wf_malloc(cap * sizeof(char *));
    char *p = text;
    while (*p != '\0') {
        char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (*n == cap) {
            cap *= 2;
            lines = wf_realloc(lines, cap * sizeof(char *));
        }
        lines[(*n)++] = wf_strndup(p, len);
        p += len + (nl ? 1 : 0);
    }
    wf_free(text);
    return lines;
}

static void free_lines(char **l, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        wf_free(l[i]);
    }
    wf_free(l);
}

/* Kiali's groupBy lists, by file and line of the assignment (kiali/queries.txt lists them). */
typedef struct {
    char file[128];
    int line;
    char *value;
} groupby_t;

static const char kiali_http_groupby[] =
    "source_cluster,source_workload_namespace,source_workload,source_canonical_service,"
    "source_canonical_revision,destination_cluster,destination_service_namespace,"
    "destination_service,destination_service_name,destination_workload_namespace,"
    "destination_workload,destination_canonical_service,destination_canonical_revision,"
    "request_protocol,response_code,grpc_response_status,response_flags";

/* The sub-queries Kiali ORs together ("%s OR (%s)" templates). */
static const char *kiali_subquery(const char *arg)
{
    if (strstr(arg, "tcpReceived") != NULL) {
        return "sum(rate(istio_tcp_received_bytes_total{reporter=\"destination\","
               "destination_service_namespace=\"default\"}[600s])) by "
               "(source_workload,destination_workload) > 0";
    }
    if (strstr(arg, "tcp") != NULL) {
        return "sum(rate(istio_tcp_sent_bytes_total{reporter=\"destination\","
               "destination_service_namespace=\"default\"}[600s])) by "
               "(source_workload,destination_workload) > 0";
    }
    if (strstr(arg, "grpc") != NULL) {
        return "sum(rate(istio_request_messages_total{reporter=\"destination\","
               "destination_service_namespace=\"default\"}[600s])) by "
               "(source_workload,destination_workload) > 0";
    }
    return "sum(rate(istio_requests_total{reporter=\"destination\","
           "destination_service_namespace=\"default\"}[600s])) by "
           "(source_workload,destination_workload,response_code) > 0";
}

/* A value for the placeholder at tpl[pos] judged from the text around it. */
static const char *kiali_by_context(const char *tpl, size_t pos, const char *groupby)
{
    const char *after = tpl + pos + 2;
    if (pos > 0 && tpl[pos - 1] == '[') {
        return strncmp(after, "s]", 2) == 0 ? "600" : "5m";
    }
    if (pos >= 4 && strncmp(tpl + pos - 4, "by (", 4) == 0) {
        return groupby;
    }
    if (pos >= 2 && strncmp(tpl + pos - 2, "=\"", 2) == 0) {
        size_t e = pos - 2;
        if (e > 0 && tpl[e - 1] == '!') {
            e--;
        }
        size_t b = e;
        while (b > 0 && (tpl[b - 1] == '_' || (tpl[b - 1] >= 'a' && tpl[b - 1] <= 'z'))) {
            b--;
        }
        char name[64];
        snprintf(name, sizeof(name), "%.*s", (int)(e - b), tpl + b);
        size_t n = strlen(name);
        if (n >= 9 && strcmp(name + n - 9, "namespace") == 0) {
            return "default";
        }
        if (n >= 8 && strcmp(name + n - 8, "workload") == 0) {
            return "reviews-v3";
        }
        if (strstr(name, "revision") != NULL || strstr(name, "version") != NULL) {
            return "v3";
        }
        if (strstr(name, "cluster") != NULL) {
            return "Kubernetes";
        }
        return "reviews";
    }
    if (pos > 0 && tpl[pos - 1] == '{') {
        return "reporter=\"destination\"";
    }
    if (after[0] == '{' || after[0] == '_') {
        return "istio_requests_total";
    }
    if (after[0] == '\0' && pos > 0 && tpl[pos - 1] == ' ') {
        return "> 0";
    }
    return "";
}

/* Split Go call arguments at top-level commas; a "// comment word" item becomes "word". */
static size_t split_args(const char *s, char args[][256], size_t max)
{
    size_t n = 0;
    int depth = 0;
    char quote = 0;
    const char *start = s;
    for (const char *p = s;; p++) {
        char c = *p;
        if (quote) {
            if (c == '\\' && p[1] != '\0') {
                p++;
            } else if (c == quote) {
                quote = 0;
            }
            if (c != '\0') {
                continue;
            }
        }
        if (c == '"' || c == '`') {
            quote = c;
            continue;
        }
        if (c == '(' || c == '[') {
            depth++;
        } else if ((c == ')' || c == ']') && depth > 0) {
            depth--;
        }
        if ((c == ',' && depth == 0) || c == '\0') {
            if (n < max) {
                const char *b = start, *e = p;
                while (b < e && *b == ' ') {
                    b++;
                }
                while (e > b && e[-1] == ' ') {
                    e--;
                }
                const char *cm = NULL;
                for (const char *q = b; q + 1 < e; q++) {
                    if (q[0] == '/' && q[1] == '/') {
                        cm = q;
                        break;
                    }
                }
                if (cm != NULL) {
                    /* "// range duration for the query groupBy": the argument is the last
                     * word; the comment swallowed the line break before it. */
                    const char *w = e;
                    while (w > cm && w[-1] != ' ') {
                        w--;
                    }
                    b = w;
                }
                snprintf(args[n], 256, "%.*s", (int)(e - b), b);
                n++;
            }
            if (c == '\0') {
                break;
            }
            start = p + 1;
        }
    }
    return n;
}

/* The value of one Kiali Go argument, or NULL when it is not one we know. */
static const char *kiali_arg(const char *a, const char *tpl, size_t pos, bool quoted_verb,
                             const char *file, const char *groupby, bool tcp, char *tmp,
                             size_t tmplen)
{
    const char *after = tpl + pos + 2;
    if (a[0] == '"') {
        snprintf(tmp, tmplen, "%.*s", (int)strlen(a) - 2, a + 1);
        return tmp;
    }
    if (strcmp(a, "namespace") == 0) {
        return quoted_verb ? "\"default\"" : "default";
    }
    if (strstr(a, "Seconds()") != NULL) {
        return "600";
    }
    if (strcmp(a, "groupBy") == 0) {
        return groupby;
    }
    if (strcmp(a, "idleCondition") == 0) {
        return "> 0";
    }
    if (strncmp(a, "util.GetReporter(\"", 18) == 0) {
        snprintf(tmp, tmplen, "reporter=~\"waypoint|%.*s\"", (int)strcspn(a + 18, "\""), a + 18);
        return tmp;
    }
    if (strncmp(a, "util.GetApp", 11) == 0) {
        return "";
    }
    if (strcmp(a, "reporter") == 0 || strcmp(a, "inboundReporter") == 0) {
        return "reporter=\"destination\"";
    }
    if (strcmp(a, "outboutReporter") == 0) {
        return "reporter=\"source\"";
    }
    if (strcmp(a, "destCluster") == 0) {
        return ",destination_cluster=\"Kubernetes\"";
    }
    if (strcmp(a, "sourceCluster") == 0) {
        return ",source_cluster=\"Kubernetes\"";
    }
    if (strcmp(a, "metric") == 0) {
        return strstr(file, "throughput") != NULL ? "istio_request_bytes_sum"
               : tcp                              ? "istio_tcp_sent_bytes_total"
                                                  : "istio_requests_total";
    }
    if (strcmp(a, "n.Workload") == 0) {
        return "reviews-v3";
    }
    if (strcmp(a, "n.App") == 0 || strcmp(a, "n.Service") == 0 || strcmp(a, "q.App") == 0) {
        return strcmp(a, "q.App") == 0 ? "productpage" : "reviews";
    }
    if (strcmp(a, "n.Version") == 0) {
        return "v3";
    }
    if (strcmp(a, "a.Aggregate") == 0 || strstr(a, "[graph.Aggregate]") != NULL) {
        return "destination_app";
    }
    if (strcmp(a, "a.AggregateValue") == 0 || strstr(a, "[graph.AggregateValue]") != NULL) {
        return "reviews";
    }
    if (strcmp(a, "a.Service") == 0) {
        return "reviews";
    }
    if (strcmp(a, "serviceFragment") == 0) {
        return ",destination_service_name=\"reviews\"";
    }
    if (strcmp(a, "quantile") == 0) {
        return "0.95";
    }
    if (strcmp(a, "ext.Name") == 0) {
        return "ext";
    }
    if (strcmp(a, "labelQueryString") == 0) {
        return "{__name__=~\"istio_.*\",destination_service_namespace=\"default\"}";
    }
    if (strcmp(a, "query") == 0 || strstr(a, "Query") != NULL) {
        return kiali_subquery(a);
    }
    if (strcmp(a, "podName") == 0 || strcmp(a, "pods[0].Name") == 0) {
        return quoted_verb ? "\"productpage-v1-7d9f8c6b5-x1\"" : "productpage-v1-7d9f8c6b5-x1";
    }
    if (strcmp(a, "podRegex") == 0) {
        return "productpage-v1-.*|details-v1-.*";
    }
    if (strcmp(a, "timeRange") == 0 || strcmp(a, "q.RateInterval") == 0 ||
        strcmp(a, "rateInterval") == 0 || strcmp(a, "ratesInterval") == 0) {
        return strcmp(a, "timeRange") == 0 ? "5m" : "1m";
    }
    if (strcmp(a, "limit") == 0) {
        return "5";
    }
    if (strcmp(a, "labels") == 0 || strcmp(a, "labelsInstance") == 0) {
        /* Inside braces the fragment is bare; after a metric name it brings its braces. */
        if (pos > 0 && (tpl[pos - 1] == '{' || tpl[pos - 1] == ',')) {
            return strstr(file, "overview") != NULL ? "destination_workload!=\"unknown\","
                                                      "destination_service_namespace=~\"default\""
                                                    : "destination_service_namespace=\"default\"";
        }
        return "{reporter=\"source\",source_workload_namespace=\"default\","
               "source_workload=\"productpage-v1\"}";
    }
    if (strcmp(a, "metricName") == 0) {
        return after[0] == '_' ? "istio_request_duration_milliseconds" : "istio_requests_total";
    }
    if (strcmp(a, "grouping") == 0 || strcmp(a, "groupBy") == 0) {
        return "destination_canonical_service";
    }
    if (strcmp(a, "groupingAvg") == 0) {
        return " by (destination_canonical_service)";
    }
    if (strcmp(a, "groupingQuantile") == 0) {
        return ",destination_canonical_service";
    }
    if (strcmp(a, "q.RateFunc") == 0) {
        return "rate";
    }
    if (strcmp(a, "aggregator") == 0) {
        return "sum";
    }
    if (strstr(a, "duration.Round") != NULL) {
        return "10m0s";
    }
    if (strcmp(a, "cluster") == 0) {
        return quoted_verb ? "\"Kubernetes\"" : "Kubernetes";
    }
    return NULL;
}

/* Decode the Go string literal after "TEMPLATE: " (raw `...` or interpreted "..."). */
static char *go_string(const char *s)
{
    while (*s == ' ') {
        s++;
    }
    char q = *s;
    if (q != '`' && q != '"') {
        return NULL;
    }
    const char *end = s + strlen(s);
    while (end > s + 1 && end[-1] != q) {
        end--;
    }
    if (end <= s + 1) {
        return NULL;
    }
    wf_buf_t b = WF_BUF_INIT;
    for (const char *p = s + 1; p < end - 1; p++) {
        if (q == '"' && *p == '\\' && p + 1 < end - 1) {
            p++;
            wf_buf_putc(&b, (uint8_t)(*p == 'n' ? '\n' : *p));
        } else {
            wf_buf_putc(&b, (uint8_t)*p);
        }
    }
    wf_buf_putc(&b, 0);
    return (char *)wf_buf_detach(&b, NULL);
}

/* Fill one Kiali template. */
static char *kiali_fill(const char *tpl, const char *args_text, const char *file,
                        const char *groupby)
{
    char args[32][256];
    size_t nargs = split_args(args_text, args, 32);
    bool tcp = strstr(args_text, "GetApp") != NULL;
    wf_buf_t b = WF_BUF_INIT;
    size_t ai = 0;
    for (size_t i = 0; tpl[i] != '\0'; i++) {
        if (tpl[i] != '%') {
            wf_buf_putc(&b, (uint8_t)tpl[i]);
            continue;
        }
        if (tpl[i + 1] == '%') {
            wf_buf_putc(&b, '%');
            i++;
            continue;
        }
        /* A verb: %s %v %d %q %.2f. */
        size_t j = i + 1;
        while (tpl[j] == '.' || (tpl[j] >= '0' && tpl[j] <= '9')) {
            j++;
        }
        bool quoted = tpl[j] == 'q';
        char tmp[512];
        const char *v = NULL;
        if (ai < nargs) {
            v = kiali_arg(args[ai], tpl, i, quoted, file, groupby, tcp, tmp, sizeof(tmp));
        }
        if (v == NULL) {
            v = kiali_by_context(tpl, i, groupby);
        }
        wf_buf_puts(&b, v);
        ai++;
        i = j;
    }
    wf_buf_putc(&b, 0);
    return (char *)wf_buf_detach(&b, NULL);
}

static void load_kiali(wt_pd_mq_t **qs, size_t *n, size_t *cap, char **lines, size_t nl)
{
    /* The groupBy assignments, for the nearest one above each template in the same file. */
    groupby_t *gb = NULL;
    size_t ngb = 0;
    bool in_groupby = false, in_examples = false;
    for (size_t i = 0; i < nl; i++) {
        const char *l = lines[i];
        if (strncmp(l, "# ---- groupBy", 14) == 0) {
            in_groupby = true;
            continue;
        }
        if (!in_groupby) {
            continue;
        }
        const char *eq = strstr(l, "  groupBy = ");
        const char *colon = strchr(l, ':');
        if (eq == NULL || colon == NULL || colon > eq) {
            continue;
        }
        char *val = go_string(strchr(eq, '=') + 1);
        if (val == NULL) {
            const char *fs = strstr(eq, "fmt.Sprintf(\"");
            if (fs != NULL) {
                val = go_string(fs + 12);
                /* The one formatted groupBy appends a.Aggregate. */
                char *pct = val ? strstr(val, "%s") : NULL;
                if (pct != NULL) {
                    size_t len = (size_t)(pct - val);
                    char *nv = wf_malloc(len + 32);
                    snprintf(nv, len + 32, "%.*sdestination_app", (int)len, val);
                    wf_free(val);
                    val = nv;
                }
            }
        }
        if (val == NULL) {
            continue;
        }
        gb = wf_realloc(gb, (ngb + 1) * sizeof(*gb));
        snprintf(gb[ngb].file, sizeof(gb[ngb].file), "%.*s", (int)(colon - l), l);
        gb[ngb].line = atoi(colon + 1);
        gb[ngb].value = val;
        ngb++;
    }

    for (size_t i = 0; i < nl; i++) {
        const char *l = lines[i];
        if (strstr(l, "# ---- RENDERED EXAMPLES") == l) {
            in_examples = true;
            continue;
        }
        if (strstr(l, "# ---- VERBATIM TEMPLATES") == l) {
            in_examples = false;
            continue;
        }
        if (in_examples) {
            const char *p = l;
            while (*p == ' ') {
                p++;
            }
            if (*p == '\0' || *p == '#') {
                continue;
            }
            /* Rendered for namespace bookinfo; the mesh data lives in "default". */
            wf_buf_t b = WF_BUF_INIT;
            for (const char *c = p; *c != '\0';) {
                if (strncmp(c, "bookinfo", 8) == 0) {
                    wf_buf_puts(&b, "default");
                    c += 8;
                } else {
                    wf_buf_putc(&b, (uint8_t)*c++);
                }
            }
            wf_buf_putc(&b, 0);
            char origin[64];
            snprintf(origin, sizeof(origin), "kiali-example:%zu", i + 1);
            mq_add(qs, n, cap, (char *)wf_buf_detach(&b, NULL), origin,
                   strncmp(p, "round(", 6) == 0, false);
            continue;
        }
        if (l[0] != '[' || i + 2 >= nl) {
            continue;
        }
        const char *tl = strstr(lines[i + 1], "TEMPLATE: ");
        const char *al = strstr(lines[i + 2], "ARGS: ");
        if (tl == NULL) {
            continue;
        }
        char *tpl = go_string(tl + 10);
        if (tpl == NULL) {
            continue;
        }
        char file[128] = "";
        int line = 0, idx = atoi(l + 1);
        const char *fstart = strchr(l, ']');
        if (fstart != NULL) {
            fstart++;
            while (*fstart == ' ') {
                fstart++;
            }
            const char *colon = strchr(fstart, ':');
            if (colon != NULL) {
                snprintf(file, sizeof(file), "%.*s", (int)(colon - fstart), fstart);
                line = atoi(colon + 1);
            }
        }
        const char *groupby = kiali_http_groupby;
        int best = -1;
        for (size_t g = 0; g < ngb; g++) {
            if (strcmp(gb[g].file, file) == 0 && gb[g].line <= line && gb[g].line > best) {
                best = gb[g].line;
                groupby = gb[g].value;
            }
        }
        char *q = kiali_fill(tpl, al ? al + 6 : "", file, groupby);
        bool graph = strncmp(file, "graph/telemetry", 15) == 0;
        if (graph) {
            /* graph.PromQuery sends every graph query as round(<query>,0.001). */
            size_t len = strlen(q) + 32;
            char *w = wf_malloc(len);
            snprintf(w, len, "round(%s,0.001)", q);
            wf_free(q);
            q = w;
        }
        char origin[96];
        const char *base = strrchr(file, '/');
        snprintf(origin, sizeof(origin), "kiali[%d] %s:%d", idx, base ? base + 1 : file, line);
        mq_add(qs, n, cap, q, origin, graph, false);
        wf_free(tpl);
    }
    for (size_t g = 0; g < ngb; g++) {
        wf_free(gb[g].value);
    }
    wf_free(gb);
}

size_t wt_pd_mesh_queries(unsigned sources, wt_pd_mq_t **out)
{
    wt_pd_mq_t *qs = NULL;
    size_t n = 0, cap = 0;
    bool missing = false;
    *out = NULL;
    if (sources & WT_PD_Q_ISTIO_DASHBOARDS) {
        size_t nl;
        char **lines = read_lines("istio/dashboard-queries.txt", &nl);
        missing |= lines == NULL;
        for (size_t i = 0; i < nl; i++) {
            if (lines[i][0] == '\0') {
                continue;
            }
            char origin[64];
            snprintf(origin, sizeof(origin), "istio-dashboard:%zu", i + 1);
            mq_add(&qs, &n, &cap, grafana_subst(lines[i]), origin, false,
                   strstr(lines[i], "$service") != NULL);
        }
        free_lines(lines, nl);
    }
    if (sources & WT_PD_Q_ISTIO_TEMPLATES) {
        size_t nl;
        char **lines = read_lines("istio/dashboard-template-queries.txt", &nl);
        missing |= lines == NULL;
        for (size_t i = 0; i < nl; i++) {
            /* dashboard \t $var \t query_result(EXPR) \t regex=... */
            const char *qr = strstr(lines[i], "query_result(");
            if (qr == NULL) {
                continue;
            }
            qr += 13;
            const char *tab = strchr(qr, '\t');
            size_t len = tab ? (size_t)(tab - qr) : strlen(qr);
            while (len > 0 && qr[len - 1] != ')') {
                len--;
            }
            if (len == 0) {
                continue;
            }
            char *expr = wf_strndup(qr, len - 1);
            char origin[64];
            snprintf(origin, sizeof(origin), "istio-template:%zu", i + 1);
            mq_add(&qs, &n, &cap, grafana_subst(expr), origin, false, false);
            wf_free(expr);
        }
        free_lines(lines, nl);
    }
    if (sources & WT_PD_Q_KIALI) {
        size_t nl;
        char **lines = read_lines("kiali/queries.txt", &nl);
        missing |= lines == NULL;
        if (lines != NULL) {
            load_kiali(&qs, &n, &cap, lines, nl);
        }
        free_lines(lines, nl);
    }
    if (missing) {
        wt_pd_mq_free(qs, n);
        return 0;
    }
    *out = qs;
    return n;
}
