/*
 * fuzz_cp_compile.c - YAML in, snapshots out: every Istio resource the input holds that
 * cp_istio accepts goes into one configuration with a fixed bookinfo registry (sidecars in two
 * namespaces and an ingress gateway), and every proxy's compiled snapshot must pass the
 * proxy's strict parser (the compiler never writes what the proxy refuses). Compiling twice
 * must give the same document and content hash (determinism).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_compile.h"
#include "px_snapshot.h"
#include "wf_alloc.h"
#include "wf_err.h"

static void check(int ok)
{
    if (!ok) {
        abort();
    }
}

static void add_wl(cp_config_t *cfg, const char *id, const char *service, const char *ns,
                   const char *version, const char *addr, uint16_t port, bool gateway,
                   const char *k2, const char *v2)
{
    cp_label_t labels[2] = {{"app", (char *)service}, {(char *)k2, (char *)v2}};
    cp_workload_t w = {
        .id = (char *)id,
        .service = (char *)service,
        .ns = (char *)ns,
        .version = (char *)version,
        .address = (char *)addr,
        .service_account = (char *)"sa",
        .labels = labels,
        .nlabels = 2,
        .ports = &port,
        .nports = port != 0 ? 1 : 0,
        .gateway = gateway,
    };
    cp_config_add_workload(cfg, &w);
}

static const char *const k_ids[] = {"productpage-v1.default", "reviews-v2.default", "client.other",
                                    "istio-ingressgateway.istio-system"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cp_yaml_limits_t lim;
    cp_yaml_limits_default(&lim);
    lim.max_nodes = 20000;
    cp_config_t *cfg = cp_config_new();
    if (cp_config_add_yaml(cfg, (const char *)data, size, &lim, true, NULL) != 0) {
        cp_config_free(cfg);
        return 0;
    }
    add_wl(cfg, "productpage-v1.default", "productpage", "default", "v1", "10.0.0.1", 9080, false,
           "version", "v1");
    add_wl(cfg, "reviews-v1.default", "reviews", "default", "v1", "10.0.0.2", 9080, false,
           "version", "v1");
    add_wl(cfg, "reviews-v2.default", "reviews", "default", "v2", "10.0.0.3", 9080, false,
           "version", "v2");
    add_wl(cfg, "ratings-v1.default", "ratings", "default", "v1", "10.0.0.4", 9080, false,
           "version", "v1");
    add_wl(cfg, "client.other", "client", "other", "", "10.0.1.1", 8080, false, "tier", "web");
    add_wl(cfg, "istio-ingressgateway.istio-system", "istio-ingressgateway", "istio-system", "",
           "10.0.2.1", 0, true, "istio", "ingressgateway");

    cp_compile_opts_t o = {.collector_url = "http://127.0.0.1:4318/v1/traces", .sampling = -1};
    cp_compiled_t *c = NULL;
    check(cp_compile_new(cfg, &o, &c) == 0);
    px_snapshot_opts_t po;
    px_snapshot_opts_default(&po);
    po.strict = true;
    for (size_t i = 0; i < sizeof(k_ids) / sizeof(k_ids[0]); i++) {
        char *json = NULL, *again = NULL;
        size_t len = 0, len2 = 0;
        uint64_t h1 = 0, h2 = 0;
        int rc = cp_compile_proxy(c, k_ids[i], 7, &json, &len, &h1);
        if (rc == -EAGAIN) {
            continue; /* a gateway without an HTTP server */
        }
        check(rc == 0);
        px_snapshot_t *snap = NULL;
        char msg[512];
        if (px_snapshot_parse(json, len, &po, &snap, msg, sizeof(msg)) != 0) {
            fprintf(stderr, "%s: refused by the proxy: %s\n%s\n", k_ids[i], msg, json);
            abort();
        }
        px_snapshot_unref(snap);
        check(cp_compile_proxy(c, k_ids[i], 7, &again, &len2, &h2) == 0);
        check(len == len2 && memcmp(json, again, len) == 0 && h1 == h2);
        wf_free(json);
        wf_free(again);
    }
    cp_compile_free(c);
    cp_config_free(cfg);
    return 0;
}
