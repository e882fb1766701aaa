/*
 * wt_promdiff.h - the differential harness that checks weft's PromQL and HTTP API against a real
 * Prometheus 2.42: start both servers, generate deterministic sample sets (general-purpose
 * series and mesh-shaped Istio telemetry), remote-write the same samples into both, run queries
 * against both and compare the answers as Prometheus clients see them.
 *
 * Comparison rules (what "answers like Prometheus" means here):
 *   - same status (success / error); for errors the same errorType and HTTP status (messages
 *     may differ: they are reported but are not a difference); a success must be HTTP 200;
 *   - list answers (/api/v1/series as sets, /labels and /label/x/values in order) equal;
 *   - same resultType;
 *   - series compared as label sets (set equality); where the order is defined by the query
 *     (an instant query whose outermost call is sort, sort_desc, or topk/bottomk without
 *     grouping) the sequence of values must also match;
 *   - values as numbers, relative tolerance 1e-6 (absolute 1e-9 near zero), NaN equals NaN,
 *     infinities exact; timestamps exact. The same number written differently is noted, not
 *     counted as a difference.
 *
 * Used by tests/integration/test_promql_diff.c, test_promql_mesh.c and tests/bench/bench_promql.c.
 * Single-threaded; every function aborts on allocation failure (wf_malloc) and reports I/O and
 * server failures through its return value.
 *
 * Environment: WEFT_BIN (weft binary), WT_PROMETHEUS (Prometheus binary, default
 * /usr/bin/prometheus), WEFT_DIFF_SELF=1 runs a second Prometheus in weft's place (the harness
 * checking itself: every query must agree), WT_KEEP=1 keeps the servers' directories,
 * WT_PD_NOTES=n prints up to n notes on agreeing answers whose error message or number
 * formatting differs (default 20).
 */
#ifndef WT_PROMDIFF_H
#define WT_PROMDIFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- servers ---- */

typedef enum {
    WT_PD_PROMETHEUS,
    WT_PD_WEFT, /* `weft collector`, or a second Prometheus when WEFT_DIFF_SELF=1 */
} wt_pd_kind_t;

typedef struct wt_pd_srv wt_pd_srv_t;

/* The Prometheus binary, or NULL (with a printed reason) when it is not installed. */
const char *wt_pd_prometheus_bin(void);
/*
 * Start a server on a free 127.0.0.1 port with a fresh temporary directory and wait until it
 * answers /-/ready (up to 60 s). Returns NULL (after stopping what it started and printing the
 * reason and the server's log) on failure.
 */
wt_pd_srv_t *wt_pd_start(wt_pd_kind_t kind);
/*
 * Stop the server (SIGTERM, then SIGKILL) and remove its directory. Returns false (after
 * printing the server's log) when it had died by itself, did not exit with status 0, or its
 * log holds a sanitizer report; NULL is a no-op that returns true.
 */
bool wt_pd_stop(wt_pd_srv_t *s);
/* "prometheus" or "weft" (or "prometheus-2" in self mode). */
const char *wt_pd_name(const wt_pd_srv_t *s);
int wt_pd_port(const wt_pd_srv_t *s);

/* ---- sample sets ---- */

/* The staleness marker Prometheus writes when a series disappears (a NaN with these bits). */
#define WT_PD_STALE_NAN_BITS 0x7ff0000000000002ULL
/* The NaN Go's math.NaN() returns: an ordinary NaN sample value. */
#define WT_PD_NAN_BITS 0x7ff8000000000001ULL

typedef struct {
    char **names;  /* sorted by name; names[0] is usually "__name__" */
    char **values; /* same length */
    size_t nlabels;
    int64_t *ts; /* ms, strictly increasing */
    double *v;
    size_t n, cap;
} wt_pd_series_t;

typedef struct {
    wt_pd_series_t *series;
    size_t n, cap;
    int64_t start_ms, end_ms;       /* the window the generator covered */
    int64_t gap_from_ms, gap_to_ms; /* a window where the gappy series have no samples */
    size_t samples;
} wt_pd_data_t;

void wt_pd_data_init(wt_pd_data_t *d);
void wt_pd_data_free(wt_pd_data_t *d);
/*
 * A new series with the given labels: a NULL-terminated list of name, value pairs (any order).
 * The returned pointer is valid until the next wt_pd_series_new on d.
 */
wt_pd_series_t *wt_pd_series_new(wt_pd_data_t *d, const char *name, ...);
/* Append one sample; ts must be greater than the series' last timestamp. */
void wt_pd_series_push(wt_pd_data_t *d, wt_pd_series_t *s, int64_t ts, double v);

/*
 * General-purpose data for the PromQL corpus over [end_ms - span_ms, end_ms]: counters with
 * resets, gauges with negative, zero, NaN and infinite values, classic histograms with several
 * bucket layouts (Envoy's defaults among them), series with gaps longer than the lookback,
 * series that end with a staleness marker, 15 s scrapes with a few ms of jitter. Deterministic
 * for a given seed and window.
 */
void wt_pd_gen_general(wt_pd_data_t *d, uint64_t seed, int64_t end_ms, int64_t span_ms);
/*
 * Mesh-shaped Istio telemetry for bookinfo over [end_ms - span_ms, end_ms] at 15 s:
 * istio_requests_total, istio_request_duration_milliseconds, istio_request_bytes and
 * istio_response_bytes histograms (Envoy's buckets), istio_tcp_* counters, with Istio's labels
 * (design.md §3; grpc_response_status is empty for HTTP and so absent, as after a scrape),
 * reporters source and destination, response codes 200/404/503, namespace "default"; plus the
 * proxies' container_cpu_usage_seconds_total, container_memory_working_set_bytes and
 * istio_build, which the dashboards also chart.
 */
void wt_pd_gen_mesh(wt_pd_data_t *d, uint64_t seed, int64_t end_ms, int64_t span_ms);

/*
 * Remote-write every sample of d into s, in time-ordered batches (Prometheus only accepts
 * samples within an hour of the newest one it holds). Returns 0, or -1 with a printed reason.
 */
int wt_pd_load(wt_pd_srv_t *s, const wt_pd_data_t *d);

/* ---- queries ---- */

typedef struct {
    long status; /* HTTP status, or -1 when the request failed */
    char *body;  /* wf_malloc'ed, NUL-terminated; NULL when status is -1 */
    double ms;   /* wall time of the request */
} wt_pd_answer_t;

void wt_pd_answer_free(wt_pd_answer_t *a);
/*
 * GET path (with its query string) on s, or POST form as application/x-www-form-urlencoded
 * when form is not NULL. Returns 0, or -1 when no HTTP answer came.
 */
int wt_pd_request(wt_pd_srv_t *s, const char *path, const char *form, wt_pd_answer_t *out);
/* GET /api/v1/query?query=q&time=t_ms. Returns 0, or -1 when no HTTP answer came. */
int wt_pd_query(wt_pd_srv_t *s, const char *q, int64_t t_ms, wt_pd_answer_t *out);
/* GET /api/v1/query_range. Returns 0, or -1 when no HTTP answer came. */
int wt_pd_query_range(wt_pd_srv_t *s, const char *q, int64_t start_ms, int64_t end_ms,
                      int64_t step_ms, wt_pd_answer_t *out);

/* ---- comparison ---- */

typedef enum {
    WT_PD_AGREE,
    WT_PD_AGREE_ERRMSG, /* both errors of the same type, different messages */
    WT_PD_AGREE_FORMAT, /* the same numbers, some written differently ("1e+06", "1000000") */
    WT_PD_DIFFER,
} wt_pd_verdict_t;

/*
 * Compare Prometheus's answer (ref) with the candidate's (got) for query q. ordered says the
 * instant vector's order is defined (see wt_pd_order_defined). why receives a one-line reason
 * when the verdict is not WT_PD_AGREE.
 */
wt_pd_verdict_t wt_pd_compare(const wt_pd_answer_t *ref, const wt_pd_answer_t *got, bool ordered,
                              char *why, size_t whylen);
/* True when an instant query's result order is defined by Prometheus for q. */
bool wt_pd_order_defined(const char *q);

/* ---- running a query list ---- */

typedef struct {
    size_t queries;     /* distinct query texts run */
    size_t evals;       /* (query, time or range) pairs compared */
    size_t agreed;      /* evaluations that agreed (incl. same error type, other message) */
    size_t errmsg_only; /* of those, errors whose messages differ */
    size_t format_only; /* of those, answers with a number written differently */
    size_t differed;
    size_t queries_differing; /* query texts with at least one differing evaluation */
    size_t ref_errors;        /* evaluations Prometheus answered with an error */
    size_t ref_empty;         /* evaluations Prometheus answered with an empty result */
    size_t shown;             /* diffs printed in full so far */
    size_t show_max;          /* how many to print in full (the rest one line each) */
    size_t oneline_max;       /* how many one-line diffs at most */
    size_t oneline;
    size_t notes;     /* error-message-only notes printed */
    size_t notes_max; /* at most this many ($WT_PD_NOTES, default 20) */
} wt_pd_tally_t;

void wt_pd_tally_init(wt_pd_tally_t *t, size_t show_max);
/*
 * Run q against both servers as an instant query at each of ntimes times and as a range query
 * over each of nranges (start, end, step) triples, compare, count into t and print differences
 * to out. Returns the number of differing evaluations.
 */
size_t wt_pd_run(wt_pd_tally_t *t, FILE *out, wt_pd_srv_t *ref, wt_pd_srv_t *got, const char *q,
                 const int64_t *times, size_t ntimes, const int64_t (*ranges)[3], size_t nranges);
/*
 * Send the same raw request (wt_pd_request) to both servers and compare the answers: query
 * results as above, list answers (/api/v1/series, /labels, /label/x/values) as lists. Counts
 * into t and prints a difference to out. Returns true when they agree.
 */
bool wt_pd_run_raw(wt_pd_tally_t *t, FILE *out, wt_pd_srv_t *ref, wt_pd_srv_t *got,
                   const char *path, const char *form);
/* Print "N queries, E evaluations, A agreed, D differed ..." to out. */
void wt_pd_tally_print(const wt_pd_tally_t *t, FILE *out, const char *what);

/* ---- the mesh query sets (reference data in shared/ref) ---- */

enum {
    WT_PD_Q_ISTIO_DASHBOARDS = 1, /* istio/dashboard-queries.txt: every panel expression */
    WT_PD_Q_ISTIO_TEMPLATES = 2,  /* istio/dashboard-template-queries.txt: variable queries */
    WT_PD_Q_KIALI = 4,            /* kiali/queries.txt: templates and rendered examples */
};

typedef struct {
    char *q;                /* the query, placeholders filled with bookinfo values */
    char origin[96];        /* where it came from: "istio-dashboard:12", "kiali[45] istio.go:147" */
    bool kiali_graph;       /* a Kiali graph query (graph/... templates, rendered graph examples) */
    bool service_dashboard; /* an Istio service dashboard panel (it filters on $service) */
} wt_pd_mq_t;

/*
 * Read the Istio dashboard and Kiali query files via wt_ref_path and turn each into a query
 * against wt_pd_gen_mesh's data: Grafana variables ($__rate_interval -> 1m, $qrep -> source,
 * $service, $namespace, $workload -> bookinfo values, the other multi-value variables -> .*)
 * and Kiali's Go format arguments (namespace "default", workload reviews-v3, 600 s windows,
 * Kiali's groupBy lists; graph queries wrapped in round(..., 0.001) as Kiali sends them).
 * Returns the number of queries in *out (free with wt_pd_mq_free), or 0 when a requested file
 * is absent (wt_ref_path has printed "skipped: reference data not present").
 */
size_t wt_pd_mesh_queries(unsigned sources, wt_pd_mq_t **out);
void wt_pd_mq_free(wt_pd_mq_t *q, size_t n);

/* Now, in ms since the epoch. */
int64_t wt_pd_now_ms(void);

#endif
