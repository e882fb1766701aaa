/*
 * fuzz_col_graph_params.c - GET /api/graph with hostile parameters: the input is a query
 * string ("k=v&k=v..."; bytes as they come, NULs and all) handed to col_graph_handler over a
 * real, empty store. Checked beyond "no crash": the answer is always JSON, its status is one
 * the handler documents (200, 400, 422, 503), and a 400 is Prometheus's error envelope with
 * errorType bad_data.
 */
#include <ftw.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "col_graph.h"
#include "st_store.h"
#include "wf_alloc.h"
#include "wf_arena.h"

#define MAX_PARAMS 64

static char g_dir[] = "/tmp/fuzz_col_graph_params.XXXXXX";
static st_store_t *g_store;
static pql_engine_t *g_engine;

static void check(int ok)
{
    if (!ok) {
        abort();
    }
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void cleanup(void)
{
    pql_engine_free(g_engine);
    st_store_close(g_store);
    nftw(g_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void init(void)
{
    check(mkdtemp(g_dir) != NULL);
    st_options_t o;
    st_options_default(&o);
    o.dir = g_dir;
    check(st_store_open(&o, &g_store) == 0);
    pql_options_t po;
    pql_options_default(&po);
    check(pql_engine_new(g_store, &po, &g_engine) == 0);
    atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (g_engine == NULL) {
        init();
    }
    char *q = wf_malloc(size + 1);
    memcpy(q, data, size);
    q[size] = '\0';
    col_param_t params[MAX_PARAMS];
    size_t np = 0;
    for (char *p = q; p != NULL && np < MAX_PARAMS;) {
        char *amp = memchr(p, '&', (size_t)(q + size - p));
        if (amp != NULL) {
            *amp = '\0';
        }
        char *eq = strchr(p, '=');
        if (eq != NULL) {
            *eq = '\0';
        }
        params[np++] = (col_param_t){p, eq != NULL ? eq + 1 : ""};
        p = amp != NULL ? amp + 1 : NULL;
    }
    wf_arena_t arena;
    wf_arena_init(&arena, 4096, 0);
    col_req_t req = {
        .method = "GET", .path = "/api/graph", .arena = &arena, .params = params, .nparams = np};
    col_resp_t resp;
    memset(&resp, 0, sizeof(resp));
    resp.status = 200;
    col_graph_handler(g_engine, &req, &resp);

    check(resp.status == 200 || resp.status == 400 || resp.status == 422 || resp.status == 503);
    json_t *j = json_loadb((const char *)resp.body.data, resp.body.len, 0, NULL);
    check(j != NULL);
    if (resp.status == 400) {
        check(strcmp(json_string_value(json_object_get(j, "status")), "error") == 0);
        check(strcmp(json_string_value(json_object_get(j, "errorType")), "bad_data") == 0);
        check(json_is_string(json_object_get(j, "error")));
    } else if (resp.status == 200) {
        check(json_is_object(json_object_get(j, "elements")));
    }
    json_decref(j);
    for (size_t i = 0; i < resp.nheaders; i++) {
        wf_free(resp.headers[i][0]);
        wf_free(resp.headers[i][1]);
    }
    wf_buf_free(&resp.body);
    wf_arena_free(&arena);
    wf_free(q);
    return 0;
}
