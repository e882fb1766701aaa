/*
 * bench_promql.c - PromQL query latency of weft beside Prometheus 2.42, on the same data, in the
 * same run: the queries Kiali's graph sends and the panels of Istio's service dashboard.
 *
 * Data: wt_pd_gen_mesh (bookinfo's edges, Istio's 25 labels, Envoy's buckets, 15 s scrapes)
 * over 6 hours ending now, remote-written into both servers identically.
 * Queries: from shared/ref (wt_pd_mesh_queries): every Kiali graph query (graph/... templates
 * and rendered graph examples, wrapped in round(..., 0.001) as Kiali sends them) as instant
 * queries at the end of the data, and every Istio service dashboard panel both as an instant
 * query and as the range query Grafana sends (last hour, 15 s step).
 * Method: one warm-up run per query and server, then R timed runs alternating between the
 * servers (so both see the same machine load); each figure is the median of the R wall times
 * of an HTTP request on a keep-alive connection (request, evaluation, JSON, transfer).
 * Output: per query the two medians and the ratio weft/Prometheus; per group and overall the
 * geometric mean of the ratios (design.md §5 goal: <= 0.5). Figures only, never a verdict.
 * Answers are also compared (wt_pd_compare) and disagreements counted, since a fast wrong
 * answer is no win.
 *
 * Run (after `cmake -DWEFT_BENCH=ON` and ninja):
 *   WEFT_BIN=build/weft WEFT_REF_DIR=../shared/ref build/tests/bench_promql [--hours H] [-r R]
 *       [--quiet]
 * WEFT_DIFF_SELF=1 puts a second Prometheus in weft's place (ratios near 1: a sanity check).
 */
#include "wf_alloc.h"
#include "wt_promdiff.h"
#include "wt_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    double log_sum;
    size_t n;
} group_t;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/*
 * Time one query (instant when step_ms == 0) r times on each server. Returns false when either
 * server failed to answer with 200 (then nothing is counted).
 */
static bool time_query(wt_pd_srv_t *prom, wt_pd_srv_t *weft, const char *q, int64_t t_ms,
                       int64_t start_ms, int64_t step_ms, int r, double *prom_ms, double *weft_ms,
                       bool *agree)
{
    wt_pd_srv_t *srv[2] = {prom, weft};
    wt_pd_answer_t first[2] = {{0}, {0}};
    double *times[2] = {wf_calloc((size_t)r, sizeof(double)), wf_calloc((size_t)r, sizeof(double))};
    bool ok = true;
    for (int i = -1; i < r && ok; i++) {
        for (int s = 0; s < 2 && ok; s++) {
            /* Alternate which server goes first, so neither always runs on a warmer cache. */
            int who = (i & 1) ? 1 - s : s;
            wt_pd_answer_t a = {0};
            int rc = step_ms ? wt_pd_query_range(srv[who], q, start_ms, t_ms, step_ms, &a)
                             : wt_pd_query(srv[who], q, t_ms, &a);
            if (rc != 0 || a.status != 200) {
                ok = false;
            } else if (i < 0) {
                first[who] = a;
                continue;
            } else {
                times[who][i] = a.ms;
            }
            wt_pd_answer_free(&a);
        }
    }
    if (ok) {
        char why[512];
        *agree = wt_pd_compare(&first[0], &first[1], false, why, sizeof(why)) != WT_PD_DIFFER;
        *prom_ms = median(times[0], (size_t)r);
        *weft_ms = median(times[1], (size_t)r);
    }
    wt_pd_answer_free(&first[0]);
    wt_pd_answer_free(&first[1]);
    wf_free(times[0]);
    wf_free(times[1]);
    return ok;
}

int main(int argc, char **argv)
{
    double hours = 6;
    int r = 20;
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--hours") == 0 && i + 1 < argc) {
            hours = atof(argv[++i]);
        } else if (strcmp(argv[i], "-r") == 0 && i + 1 < argc) {
            r = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--quiet") == 0) {
            quiet = true;
        } else {
            fprintf(stderr, "usage: %s [--hours H] [-r R] [--quiet]\n", argv[0]);
            return 2;
        }
    }
    if (r < 1 || hours <= 0) {
        fprintf(stderr, "bench_promql: -r must be >= 1 and --hours > 0\n");
        return 2;
    }
    wt_pd_mq_t *qs = NULL;
    size_t nq = wt_pd_mesh_queries(WT_PD_Q_ISTIO_DASHBOARDS | WT_PD_Q_KIALI, &qs);
    if (nq == 0 || wt_pd_prometheus_bin() == NULL) {
        wt_pd_mq_free(qs, nq);
        return 0;
    }
    int rc = 1;
    wt_pd_data_t data;
    wt_pd_data_init(&data);
    int64_t end = (wt_pd_now_ms() / 60000) * 60000 - 60000;
    wt_pd_gen_mesh(&data, 0x15710ULL, end, (int64_t)(hours * 3600 * 1000));
    printf("bench_promql: %zu series, %zu samples over %.1f h; R=%d runs per query and server\n",
           data.n, data.samples, hours, r);

    wt_pd_srv_t *prom = wt_pd_start(WT_PD_PROMETHEUS);
    wt_pd_srv_t *weft = prom ? wt_pd_start(WT_PD_WEFT) : NULL;
    if (prom == NULL || weft == NULL) {
        goto out;
    }
    if (wt_pd_load(prom, &data) != 0 || wt_pd_load(weft, &data) != 0) {
        goto out;
    }
    group_t groups[3] = {{"kiali graph, instant", 0, 0},
                         {"istio service dashboard, instant", 0, 0},
                         {"istio service dashboard, range 1h/15s", 0, 0}};
    size_t failed = 0, disagreed = 0;
    if (!quiet) {
        printf("%-40s %10s %10s %8s  %s\n", "I(nstant)/R(ange) origin", "prom ms", "weft ms",
               "ratio", "query");
    }
    for (int g = 0; g < 3; g++) {
        for (size_t i = 0; i < nq; i++) {
            bool want = g == 0 ? qs[i].kiali_graph : qs[i].service_dashboard;
            if (!want) {
                continue;
            }
            double pm = 0, wm = 0;
            bool agree = true;
            bool ok = time_query(prom, weft, qs[i].q, end, end - 3600000, g == 2 ? 15000 : 0, r,
                                 &pm, &wm, &agree);
            char origin[128];
            snprintf(origin, sizeof(origin), "%s %s", g == 2 ? "R" : "I", qs[i].origin);
            if (!ok) {
                failed++;
                if (!quiet) {
                    printf("%-40s %10s %10s %8s  %.120s\n", origin, "-", "-", "failed", qs[i].q);
                }
                continue;
            }
            disagreed += !agree;
            double ratio = wm / (pm > 0 ? pm : 1e-6);
            groups[g].log_sum += log(ratio);
            groups[g].n++;
            if (!quiet) {
                printf("%-40s %10.3f %10.3f %8.3f%s %.120s\n", origin, pm, wm, ratio,
                       agree ? " " : "!", qs[i].q);
            }
        }
    }
    double all_log = 0;
    size_t all_n = 0;
    printf("\nweft/Prometheus median latency ratio, geometric mean (goal <= 0.5):\n");
    for (int g = 0; g < 3; g++) {
        if (groups[g].n > 0) {
            printf("  %-40s %8.3f over %zu queries\n", groups[g].name,
                   exp(groups[g].log_sum / (double)groups[g].n), groups[g].n);
        }
        all_log += groups[g].log_sum;
        all_n += groups[g].n;
    }
    if (all_n > 0) {
        printf("  %-40s %8.3f over %zu queries\n", "overall", exp(all_log / (double)all_n), all_n);
    }
    printf("queries that failed on either server: %zu; answers that differed ('!'): %zu\n", failed,
           disagreed);
    rc = 0;
out:
    (void)wt_pd_stop(weft);
    (void)wt_pd_stop(prom);
    wt_pd_data_free(&data);
    wt_pd_mq_free(qs, nq);
    return rc;
}
