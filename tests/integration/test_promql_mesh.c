/*
 * test_promql_mesh.c - the queries Istio's Grafana dashboards and Kiali send, run against weft
 * and a real Prometheus 2.42 holding the same mesh-shaped telemetry (bookinfo's edges, Istio's
 * 25 labels, Envoy's histogram buckets, an hour at 15 s): every panel expression of
 * shared/ref/istio/dashboard-queries.txt, every variable query of
 * dashboard-template-queries.txt and every Kiali template and rendered example of
 * shared/ref/kiali/queries.txt, with their placeholders filled with bookinfo values
 * (wt_pd_mesh_queries). Instant queries at the end of the data and a few minutes before it,
 * range queries as the dashboards draw them (15 s step over the last hour) and an unaligned
 * one. Answers must agree as wt_promdiff.h defines; the test fails when any differs.
 *
 * Skipped when the reference data or Prometheus is absent. WEFT_DIFF_SELF=1 runs a second
 * Prometheus in weft's place; WT_PD_LIST=1 prints the filled queries; WT_PD_FILTER=text runs
 * only the queries whose text or origin contains text.
 */
#include "wf_alloc.h"
#include "wt_promdiff.h"
#include "wt_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#define SEED 0x15710ULL

static void test_promql_mesh(void **state)
{
    (void)state;
    wt_pd_mq_t *qs = NULL;
    size_t nq =
        wt_pd_mesh_queries(WT_PD_Q_ISTIO_DASHBOARDS | WT_PD_Q_ISTIO_TEMPLATES | WT_PD_Q_KIALI, &qs);
    if (nq == 0 || wt_pd_prometheus_bin() == NULL) {
        wt_pd_mq_free(qs, nq);
        wt_skip();
    }
    const char *list = getenv("WT_PD_LIST");
    if (list != NULL && strcmp(list, "1") == 0) {
        for (size_t i = 0; i < nq; i++) {
            printf("%-28s %s\n", qs[i].origin, qs[i].q);
        }
    }

    wt_pd_data_t data;
    wt_pd_data_init(&data);
    int64_t end = (wt_pd_now_ms() / 60000) * 60000 - 60000;
    wt_pd_gen_mesh(&data, SEED, end, 3600 * 1000);
    printf("mesh data: %zu series, %zu samples; %zu queries\n", data.n, data.samples, nq);

    bool ok_start = true, ok_load = true;
    size_t differed = 0;
    wt_pd_tally_t t;
    const char *show = getenv("WT_PD_SHOW");
    wt_pd_tally_init(&t, show ? (size_t)atoi(show) : 8);
    if (getenv("WEFT_DIFF_SELF") == NULL) {
        (void)wt_weft_bin(); /* aborts when WEFT_BIN is unset, before anything is started */
    }
    wt_pd_srv_t *prom = wt_pd_start(WT_PD_PROMETHEUS);
    wt_pd_srv_t *weft = prom ? wt_pd_start(WT_PD_WEFT) : NULL;
    if (prom == NULL || weft == NULL) {
        ok_start = false;
        goto out;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (wt_pd_load(prom, &data) != 0 || wt_pd_load(weft, &data) != 0) {
        ok_load = false;
        goto out;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("loaded both in %.1f s\n",
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);

    /* First the raw samples: both must hold exactly what was written. */
    const int64_t at_end[] = {end};
    differed += wt_pd_run(&t, stdout, prom, weft, "{__name__=~\".+\"}[2h]", at_end, 1, NULL, 0);
    const int64_t times[] = {end, end - 7 * 60000, end - 61234};
    const int64_t ranges[][3] = {
        {end - 3600000, end, 15000},         /* a dashboard panel: the last hour at 15 s */
        {end - 1800000 + 7, end, 60000 + 1}, /* unaligned start and step */
    };
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t nonempty = 0;
    const char *filter = getenv("WT_PD_FILTER");
    for (size_t i = 0; i < nq; i++) {
        if (filter != NULL && strstr(qs[i].q, filter) == NULL &&
            strstr(qs[i].origin, filter) == NULL) {
            continue;
        }
        size_t before = t.evals - t.ref_errors - t.ref_empty;
        size_t d =
            wt_pd_run(&t, stdout, prom, weft, qs[i].q, times, sizeof(times) / sizeof(times[0]),
                      ranges, sizeof(ranges) / sizeof(ranges[0]));
        if (d > 0) {
            printf("  (differing query came from %s)\n", qs[i].origin);
        }
        differed += d;
        nonempty += t.evals - t.ref_errors - t.ref_empty > before;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    wt_pd_tally_print(&t, stdout, "promql mesh");
    printf("%zu of %zu queries have data in Prometheus's answer; queries ran in %.1f s\n", nonempty,
           nq, (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);

out:;
    /* Both must have survived the run: a crash or a sanitizer report in weft fails the test
     * even when every answer before it agreed. */
    bool ok_stop = wt_pd_stop(weft);
    ok_stop &= wt_pd_stop(prom);
    wt_pd_data_free(&data);
    wt_pd_mq_free(qs, nq);
    assert_true(ok_start);
    assert_true(ok_load);
    assert_int_equal(differed, 0);
    assert_true(ok_stop);
}

int main(void)
{
    /* Line-buffered, so the summary and cmocka's verdict (stderr) come out in order. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_promql_mesh),
    };
    return wt_exit_code(cmocka_run_group_tests(tests, NULL, NULL));
}
