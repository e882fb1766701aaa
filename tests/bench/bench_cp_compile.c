/*
 * bench_cp_compile.c - the snapshot compiler at mesh scale: S services in N namespaces, three
 * versions each (3*S workloads on one port), a DestinationRule with three subsets and a
 * VirtualService with a header match and an 80/20 split per service. Prints the time to build
 * the compiler, to compile the first proxy of a namespace (the shared outbound part), the
 * median of the following proxies of that namespace (spliced from the cache), and the size
 * of one snapshot; wall and CPU time; then the same for the gzip form (the first deflates the
 * group's shared part, the next reuse it) and its size. Figures only.
 *
 * Run (after `cmake -DWEFT_BENCH=ON` and ninja): build/tests/bench_cp_compile [S] [N]
 */
#include "cp_compile.h"
#include "wf_alloc.h"
#include "wf_buf.h"
#include "wf_clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* CPU time of the process: the machine is shared, so wall time alone says little. */
static int64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int nsvc = argc > 1 ? atoi(argv[1]) : 1000;
    int nns = argc > 2 ? atoi(argv[2]) : 10;
    if (nsvc <= 0 || nns <= 0) {
        fprintf(stderr, "usage: bench_cp_compile [services] [namespaces]\n");
        return 2;
    }
    cp_config_t *cfg = cp_config_new();
    wf_buf_t y;
    wf_buf_init(&y);
    for (int i = 0; i < nsvc; i++) {
        wf_buf_reset(&y);
        wf_buf_printf(&y,
                      "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
                      "metadata: {name: s%d, namespace: ns%d}\nspec:\n  host: s%d\n  subsets:\n"
                      "  - {name: v1, labels: {version: v1}}\n"
                      "  - {name: v2, labels: {version: v2}}\n"
                      "  - {name: v3, labels: {version: v3}}\n"
                      "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
                      "metadata: {name: s%d, namespace: ns%d}\nspec:\n  hosts: [s%d]\n  http:\n"
                      "  - match: [{headers: {end-user: {exact: jason}}}]\n"
                      "    route: [{destination: {host: s%d, subset: v3}}]\n"
                      "  - route:\n"
                      "    - {destination: {host: s%d, subset: v1}, weight: 80}\n"
                      "    - {destination: {host: s%d, subset: v2}, weight: 20}\n",
                      i, i % nns, i, i, i % nns, i, i, i, i);
        cp_err_t err;
        if (cp_config_add_yaml(cfg, (const char *)y.data, y.len, NULL, false, &err) != 0) {
            fprintf(stderr, "bench: %s\n", err.msg);
            return 1;
        }
    }
    wf_buf_free(&y);
    char **ids = wf_calloc((size_t)nsvc * 3, sizeof(char *));
    size_t nids = 0;
    for (int i = 0; i < nsvc; i++) {
        for (int v = 1; v <= 3; v++) {
            char id[96], svc[32], ns[32], ver[8], addr[32];
            snprintf(svc, sizeof(svc), "s%d", i);
            snprintf(ns, sizeof(ns), "ns%d", i % nns);
            snprintf(ver, sizeof(ver), "v%d", v);
            snprintf(id, sizeof(id), "%s-%s.%s", svc, ver, ns);
            snprintf(addr, sizeof(addr), "10.%d.%d.%d", v, (i / 250) % 250, i % 250 + 1);
            cp_label_t labels[2] = {{"app", svc}, {"version", ver}};
            uint16_t port = 9080;
            cp_workload_t w = {.id = id,
                               .service = svc,
                               .ns = ns,
                               .version = ver,
                               .address = addr,
                               .service_account = svc,
                               .labels = labels,
                               .nlabels = 2,
                               .ports = &port,
                               .nports = 1};
            cp_config_add_workload(cfg, &w);
            ids[nids++] = wf_strdup(id);
        }
    }
    cp_compile_opts_t o = {.collector_url = "http://127.0.0.1:4318/v1/traces", .sampling = -1};
    int64_t c0 = cpu_ns();
    int64_t t0 = wf_mono_ns();
    cp_compiled_t *c;
    if (cp_compile_new(cfg, &o, &c) != 0) {
        return 1;
    }
    int64_t t1 = wf_mono_ns(), c1 = cpu_ns();
    char *json;
    size_t len;
    /* ns0 holds services 0, nns, 2*nns, ...: their workloads are ids 3*k*nns + v. */
    if (cp_compile_proxy(c, ids[0], 1, &json, &len, NULL) != 0) {
        return 1;
    }
    int64_t t2 = wf_mono_ns(), c2 = cpu_ns();
    wf_free(json);
    size_t nlater = 0;
    int64_t *lat = wf_calloc(nids, sizeof(int64_t));
    for (size_t i = 1; i < nids; i++) {
        if (strstr(ids[i], ".ns0") == NULL || strcmp(strstr(ids[i], ".ns0"), ".ns0") != 0) {
            continue;
        }
        int64_t a = wf_mono_ns();
        if (cp_compile_proxy(c, ids[i], 1, &json, &len, NULL) != 0) {
            return 1;
        }
        lat[nlater++] = wf_mono_ns() - a;
        wf_free(json);
    }
    qsort(lat, nlater, sizeof(int64_t), cmp_i64);
    char *gz;
    size_t gz_len = 0, ngz = 0;
    int64_t g0 = wf_mono_ns(), gc0 = cpu_ns();
    if (cp_compile_proxy_gz(c, ids[0], 1, &gz, &gz_len, NULL) != 0) {
        return 1;
    }
    int64_t g1 = wf_mono_ns(), gc1 = cpu_ns();
    wf_free(gz);
    int64_t *glat = wf_calloc(nids, sizeof(int64_t));
    for (size_t i = 1; i < nids; i++) {
        if (strstr(ids[i], ".ns0") == NULL || strcmp(strstr(ids[i], ".ns0"), ".ns0") != 0) {
            continue;
        }
        int64_t a = wf_mono_ns();
        if (cp_compile_proxy_gz(c, ids[i], 1, &gz, &gz_len, NULL) != 0) {
            return 1;
        }
        glat[ngz++] = wf_mono_ns() - a;
        wf_free(gz);
    }
    qsort(glat, ngz, sizeof(int64_t), cmp_i64);
    printf("services %d, namespaces %d, workloads %zu\n", nsvc, nns, nids);
    printf("cp_compile_new:               %.1f ms (cpu %.1f ms)\n", (double)(t1 - t0) / 1e6,
           (double)(c1 - c0) / 1e6);
    printf("first proxy (shared part):    %.1f ms (cpu %.1f ms)\n", (double)(t2 - t1) / 1e6,
           (double)(c2 - c1) / 1e6);
    printf("next proxies of ns0 (median): %.3f ms over %zu\n",
           nlater ? (double)lat[nlater / 2] / 1e6 : 0.0, nlater);
    printf("snapshot size:                %zu bytes\n", len);
    printf("gzip, first proxy (deflate):  %.1f ms (cpu %.1f ms)\n", (double)(g1 - g0) / 1e6,
           (double)(gc1 - gc0) / 1e6);
    printf("gzip, next proxies (median):  %.3f ms over %zu\n",
           ngz ? (double)glat[ngz / 2] / 1e6 : 0.0, ngz);
    printf("gzip snapshot size:           %zu bytes (%.1fx smaller)\n", gz_len,
           gz_len ? (double)len / (double)gz_len : 0.0);
    wf_free(glat);
    wf_free(lat);
    for (size_t i = 0; i < nids; i++) {
        wf_free(ids[i]);
    }
    wf_free(ids);
    cp_compile_free(c);
    cp_config_free(cfg);
    return 0;
}
