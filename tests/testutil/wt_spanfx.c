/*
 * wt_spanfx.c - span store + HTTP server fixture for the trace query API tests (see
 * wt_spanfx.h).
 */
#include "wt_spanfx.h"

#include "wf_alloc.h"
#include "wt_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

wt_spanfx_t *wt_spanfx_open(const char *prefix)
{
    wt_spanfx_t *f = wf_calloc(1, sizeof(*f));
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    f->t0 = ((int64_t)ts.tv_sec - 600) * 1000 * WT_MS;
    f->dir = wt_tmpdir(prefix);
    st_options_t o;
    st_options_default(&o);
    o.dir = f->dir;
    int rc = st_store_open(&o, &f->s);
    if (rc != 0) {
        fprintf(stderr, "wt_spanfx_open: %s\n", st_strerror(rc));
        abort();
    }
    col_http_options_t ho = {.threads = 2};
    if (col_http_new(&ho, &f->h) != 0) {
        fprintf(stderr, "wt_spanfx_open: cannot create the HTTP server\n");
        abort();
    }
    return f;
}

void wt_spanfx_listen(wt_spanfx_t *f)
{
    char addr[64];
    f->port = wt_free_port();
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", f->port);
    if (col_http_listen(f->h, addr) != 0) {
        fprintf(stderr, "wt_spanfx_listen: cannot listen on %s\n", addr);
        abort();
    }
}

wt_spanfx_t *wt_spanfx_start(const char *prefix, void (*write)(wt_spanfx_t *f),
                             void (*reg)(col_http_t *h, st_store_t *s))
{
    wt_spanfx_t *f = wt_spanfx_open(prefix);
    write(f);
    reg(f->h, f->s);
    wt_spanfx_listen(f);
    return f;
}

void wt_spanfx_close(wt_spanfx_t *f)
{
    col_http_free(f->h);
    st_store_close(f->s);
    wt_rm_rf(f->dir);
    wf_free(f->dir);
    wf_free(f);
}

json_t *wt_spanfx_get(wt_spanfx_t *f, const char *path, int want_status)
{
    char *body = NULL;
    int st = wt_http(f->port, "GET", path, NULL, 0, &body);
    json_error_t je;
    json_t *j = body != NULL ? json_loads(body, JSON_DECODE_ANY, &je) : NULL;
    if (st != want_status || j == NULL) {
        fprintf(stderr, "GET %s: status %d (want %d), body %s\n", path, st, want_status,
                body != NULL ? body : "(none)");
        abort();
    }
    wf_free(body);
    return j;
}

void wt_spanfx_span(st_span_t *sp, const uint8_t trace[16], uint8_t id, uint8_t parent,
                    const char *name, st_span_kind_t kind, int64_t start_ns, int64_t end_ns,
                    const st_attr_t *res, size_t nres)
{
    memset(sp, 0, sizeof(*sp));
    memcpy(sp->trace_id, trace, 16);
    sp->span_id[7] = id;
    sp->parent_span_id[7] = parent;
    sp->name = wf_str(name);
    sp->kind = kind;
    sp->start_ns = start_ns;
    sp->end_ns = end_ns;
    sp->resource_attrs = res;
    sp->n_resource_attrs = nres;
    sp->service = WF_STR_LIT("");
    for (size_t i = 0; i < nres; i++) {
        if (wf_str_eq_c(res[i].key, "service.name") && res[i].value.type == ST_VAL_STRING) {
            sp->service = res[i].value.u.s;
        }
    }
}

void wt_spanfx_append(wt_spanfx_t *f, const st_span_t *spans, size_t n)
{
    size_t bad = 0;
    int rc = st_spans_append(f->s, spans, n, &bad);
    if (rc != 0) {
        fprintf(stderr, "wt_spanfx_append: span %zu: %s\n", bad, st_strerror(rc));
        abort();
    }
}
