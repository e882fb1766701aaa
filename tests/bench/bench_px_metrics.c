/*
 * bench_px_metrics.c - cost of the proxy's telemetry on the request path and at scrape time
 * (px_metrics.h, px_trace.h): ns per recorded request on one shard (one label set, and 100
 * label sets in turn), ns to build a label set, the scrape (merge + render) of 10,000 label
 * sets over 2 shards, and ns per trace extract + start + inject.
 *
 * Usage: bench_px_metrics [requests]   (default 5,000,000). No reference system runs beside
 * it: Envoy's stats are not available on this machine; the figure to compare with is Envoy's
 * own per-request cost of its Istio stats filter, which Istio's performance notes put at a
 * few microseconds of CPU per request.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "px_metrics.h"
#include "px_trace.h"
#include "wf_buf.h"
#include "wf_clock.h"

static px_workload_t src, dst;

static void labels(px_labels_t *l, uint32_t code, const char *svc)
{
    px_labels_in_t in = {.reporter = PX_REPORTER_DESTINATION,
                         .source = &src,
                         .destination = &dst,
                         .dest_service = wf_str(svc),
                         .dest_service_ns = wf_str("bookinfo"),
                         .protocol = wf_str("http"),
                         .response_code = code,
                         .grpc_status = -1,
                         .security = PX_SEC_MUTUAL_TLS};
    px_labels_build(l, &in);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 5000000;
    px_label_t sl[] = {{wf_str("app"), wf_str("productpage")}, {wf_str("version"), wf_str("v1")}};
    px_label_t dl[] = {{wf_str("app"), wf_str("reviews")}, {wf_str("version"), wf_str("v2")}};
    px_workload_build(
        &src, sl, 2, wf_str("productpage"), wf_str(""), wf_str(""), wf_str("bookinfo"),
        wf_str("spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage"), wf_str("Kubernetes"));
    px_workload_build(&dst, dl, 2, wf_str("reviews"), wf_str(""), wf_str(""), wf_str("bookinfo"),
                      wf_str("spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews"),
                      wf_str("Kubernetes"));

    px_metrics_t *m = px_metrics_new(2);
    px_metrics_shard_t *s = px_metrics_shard(m, 0);
    px_labels_t one;
    labels(&one, 200, "reviews");

    int64_t t0 = wf_mono_ns();
    for (long i = 0; i < n; i++) {
        px_metrics_record_http(s, &one, (double)(i & 63), 120, 1800);
    }
    int64_t t1 = wf_mono_ns();
    printf("record_http, 1 label set:      %7.1f ns/request (%ld requests)\n",
           (double)(t1 - t0) / (double)n, n);

    px_labels_t sets[100];
    char svc[100][32];
    for (int k = 0; k < 100; k++) {
        snprintf(svc[k], sizeof(svc[k]), "svc%02d", k);
        labels(&sets[k], 200, svc[k]);
    }
    t0 = wf_mono_ns();
    for (long i = 0; i < n; i++) {
        px_metrics_record_http(s, &sets[i % 100], (double)(i & 63), 120, 1800);
    }
    t1 = wf_mono_ns();
    printf("record_http, 100 label sets:   %7.1f ns/request\n", (double)(t1 - t0) / (double)n);

    px_labels_t tmp;
    volatile size_t sink = 0;
    t0 = wf_mono_ns();
    for (long i = 0; i < n / 10; i++) {
        labels(&tmp, 200 + (uint32_t)(i & 3), "reviews");
        sink += tmp.v[PX_ML_RESPONSE_CODE].len;
    }
    t1 = wf_mono_ns();
    printf("labels_build:                  %7.1f ns/request\n",
           (double)(t1 - t0) / (double)(n / 10));
    px_metrics_free(m);

    /* 10,000 label sets, half in each shard with an overlap of 2,000 to merge. */
    m = px_metrics_new(2);
    for (int k = 0; k < 10000; k++) {
        px_labels_t l;
        char name[32];
        snprintf(name, sizeof(name), "svc%05d", k);
        labels(&l, 200, name);
        px_metrics_record_http(px_metrics_shard(m, k < 6000 ? 0 : 1), &l, 3, 100, 1000);
        if (k >= 4000 && k < 6000) {
            px_metrics_record_http(px_metrics_shard(m, 1), &l, 5, 100, 1000);
        }
    }
    wf_buf_t out = WF_BUF_INIT;
    px_metrics_render(m, &out); /* warm */
    int reps = 5;
    t0 = wf_mono_ns();
    for (int r = 0; r < reps; r++) {
        wf_buf_reset(&out);
        px_metrics_render(m, &out);
    }
    t1 = wf_mono_ns();
    printf("scrape, 10,000 label sets:     %7.1f ms (%.1f MB of text, %zu bytes/series)\n",
           (double)(t1 - t0) / reps / 1e6, (double)out.len / 1e6, out.len / 10000);
    wf_buf_free(&out);
    px_metrics_free(m);

    px_rng_t rng;
    px_rng_seed(&rng, 1);
    px_http1_header_t h[] = {
        {wf_str("host"), wf_str("reviews:9080")},
        {wf_str("user-agent"), wf_str("curl/7.88.1")},
        {wf_str("accept"), wf_str("*/*")},
        {wf_str("traceparent"), wf_str("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")},
        {wf_str("tracestate"), wf_str("rojo=00f067aa0ba902b7")},
    };
    px_trace_in_t in;
    px_trace_ctx_t ctx;
    px_trace_out_t o;
    t0 = wf_mono_ns();
    for (long i = 0; i < n / 10; i++) {
        px_trace_extract(h, 5, &in);
        px_trace_start(&in, 1, &rng, &ctx);
        px_trace_inject(&ctx, &o);
        sink += o.n;
    }
    t1 = wf_mono_ns();
    printf("trace extract+start+inject:    %7.1f ns/request\n",
           (double)(t1 - t0) / (double)(n / 10));
    return sink == 0;
}
