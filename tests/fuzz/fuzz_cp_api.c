/*
 * fuzz_cp_api.c - feeds arbitrary bodies to the control plane's API (cp_api_handle, no socket):
 * the first byte picks the endpoint (resource create or update, batch apply, register,
 * heartbeat), the rest is the body. Every answer must be a known status with a JSON body, never
 * a 500 or a crash, and an answer other than 2xx must leave the store's resourceVersion where
 * it was: a refused document is never partly applied. The store lives in a temporary directory
 * and is recreated every 256 inputs so that it stays small.
 */
#include "cp_api.h"
#include "cp_registry.h"
#include "cp_store.h"

#include "wf_log.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];
static cp_store_t *store;
static cp_registry_t *registry;
static cp_api_t *api;
static unsigned calls;

static void remove_all(void)
{
    cp_api_free(api);
    cp_registry_close(registry);
    cp_store_close(store);
    api = NULL;
    registry = NULL;
    store = NULL;
    if (dir[0] == '\0') {
        return;
    }
    static const char *const files[] = {"control.db", "control.db-wal", "control.db-shm"};
    char path[128];
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
    dir[0] = '\0';
}

static void fresh(void)
{
    remove_all();
    snprintf(dir, sizeof(dir), "/tmp/fuzz_cp_api.XXXXXX");
    if (mkdtemp(dir) == NULL || cp_store_open(dir, &store) != 0 ||
        cp_registry_open(store, 30000, 0, &registry) != 0) {
        abort();
    }
    cp_api_options_t o = {
        .store = store, .registry = registry, .admin_token = "a", .bootstrap_token = "b"};
    if (cp_api_new(&o, &api) != 0) {
        abort();
    }
}

static const struct {
    const char *method;
    const char *path;
} routes[] = {
    {"POST", "/apis/networking.istio.io/v1/namespaces/default/virtualservices"},
    {"PUT", "/apis/networking.istio.io/v1/namespaces/default/virtualservices/reviews"},
    {"POST", "/apis/security.istio.io/v1beta1/namespaces/prod/authorizationpolicies"},
    {"POST", "/v1/apply"},
    {"POST", "/v1/register"},
    {"POST", "/v1/heartbeat"},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (api == NULL) {
        wf_log_set_level(WF_ERROR);
        atexit(remove_all);
    }
    if (api == NULL || calls++ % 256 == 0) {
        fresh();
    }
    if (size == 0) {
        return 0;
    }
    size_t r = data[0] % (sizeof(routes) / sizeof(routes[0]));
    char *body = malloc(size);
    if (body == NULL) {
        abort();
    }
    memcpy(body, data + 1, size - 1);
    body[size - 1] = '\0';
    cp_api_req_t req = {
        .method = routes[r].method,
        .path = routes[r].path,
        .authorization = r >= 4 ? "Bearer b" : "Bearer a",
        .body = body,
        .body_len = size - 1,
    };
    int64_t rv = cp_store_rv(store);
    cp_api_resp_t resp;
    cp_api_handle(api, &req, 1000 + calls, &resp);
    json_t *o = json_loads(resp.body, 0, NULL);
    bool ok = resp.status == 200 || resp.status == 201;
    bool refused =
        resp.status == 400 || resp.status == 404 || resp.status == 409 || resp.status == 422;
    if (o == NULL || !(ok || refused) || (!ok && cp_store_rv(store) != rv)) {
        fprintf(stderr, "fuzz_cp_api: %s %s -> %u %s\n", req.method, req.path, resp.status,
                resp.body);
        abort();
    }
    json_decref(o);
    free(resp.body);
    free(body);
    return 0;
}
