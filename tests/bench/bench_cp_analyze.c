/*
 * bench_cp_analyze.c - the cost of cp_analyze on issue #6's benchmark mesh: S services (default
 * 1,000) of two versions each over 10 namespaces, one workload per version, a DestinationRule
 * with subsets v1 and v2 and an 80/20 VirtualService per service; one service in 100 routes to
 * a subset nobody defines, so the findings are not empty. GET /v1/analyze pays this on every
 * call (plus cp_config_load), so it bounds how often a UI may poll.
 *
 * Method: one warm-up run, then R timed runs; prints the median and the worst wall time and
 * the number of findings. Figures only.
 *
 * Run: build/tests/bench_cp_analyze [-s SERVICES] [-r RUNS]
 */
#include "cp_analyze.h"
#include "wf_alloc.h"
#include "wf_clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void add_doc(cp_config_t *c, const char *text)
{
    cp_err_t err;
    if (cp_config_add_yaml(c, text, strlen(text), NULL, false, &err) != 0) {
        fprintf(stderr, "bench: %s\n%s\n", err.msg, text);
        exit(1);
    }
}

static cp_config_t *mesh(int services)
{
    cp_config_t *c = cp_config_new();
    char doc[1024], svc[32], ns[32], id[96];
    for (int i = 0; i < services; i++) {
        snprintf(svc, sizeof(svc), "svc-%d", i);
        snprintf(ns, sizeof(ns), "ns-%d", i % 10);
        for (int v = 1; v <= 2; v++) {
            char ver[8];
            snprintf(ver, sizeof(ver), "v%d", v);
            snprintf(id, sizeof(id), "%s-%s.%s", svc, ver, ns);
            uint16_t port = 9080;
            cp_label_t labels[2] = {{"app", svc}, {"version", ver}};
            cp_workload_t w = {.id = id,
                               .service = svc,
                               .ns = ns,
                               .version = ver,
                               .address = "10.0.0.1",
                               .labels = labels,
                               .nlabels = 2,
                               .ports = &port,
                               .nports = 1};
            cp_config_add_workload(c, &w);
        }
        snprintf(doc, sizeof(doc),
                 "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
                 "metadata: {name: %s, namespace: %s}\nspec:\n  host: %s\n"
                 "  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: "
                 "v2}}]\n",
                 svc, ns, svc);
        add_doc(c, doc);
        snprintf(doc, sizeof(doc),
                 "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
                 "metadata: {name: %s, namespace: %s}\nspec:\n  hosts: [%s]\n  http:\n"
                 "  - route:\n    - {destination: {host: %s, subset: v1}, weight: 80}\n"
                 "    - {destination: {host: %s.%s.svc.cluster.local, subset: %s}, weight: 20}\n",
                 svc, ns, svc, svc, svc, ns, i % 100 == 0 ? "v9" : "v2");
        add_doc(c, doc);
    }
    return c;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int services = 1000, runs = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "-s") == 0) {
            services = atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "-r") == 0) {
            runs = atoi(argv[i + 1]);
        }
    }
    if (services < 1 || runs < 1) {
        fprintf(stderr, "usage: bench_cp_analyze [-s SERVICES] [-r RUNS]\n");
        return 2;
    }
    cp_config_t *c = mesh(services);
    cp_finding_t *f;
    size_t n;
    cp_analyze(c, &f, &n);
    cp_findings_free(f, n);
    int64_t *t = wf_calloc((size_t)runs, sizeof(*t));
    for (int r = 0; r < runs; r++) {
        int64_t t0 = wf_mono_ns();
        cp_analyze(c, &f, &n);
        t[r] = wf_mono_ns() - t0;
        cp_findings_free(f, n);
    }
    qsort(t, (size_t)runs, sizeof(*t), cmp_i64);
    printf("cp_analyze: %d services, %zu workloads, %zu VirtualServices, %zu DestinationRules: "
           "%zu findings, median %.1f ms, worst %.1f ms (%d runs)\n",
           services, c->nworkloads, c->n[CP_KIND_VIRTUAL_SERVICE], c->n[CP_KIND_DESTINATION_RULE],
           n, (double)t[runs / 2] / 1e6, (double)t[runs - 1] / 1e6, runs);
    wf_free(t);
    cp_config_free(c);
    return 0;
}
