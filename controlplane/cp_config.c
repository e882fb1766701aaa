/*
 * cp_config.c - builds the cp_config_t view (cp_config.h): stored resources parsed back into
 * their typed form, and a copy of the registry's live workloads.
 */
#include "cp_config.h"

#include "wf_alloc.h"
#include "wf_err.h"
#include "wf_log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cp_config_t *cp_config_new(void)
{
    return wf_calloc(1, sizeof(cp_config_t));
}

void cp_config_free(cp_config_t *c)
{
    if (c == NULL) {
        return;
    }
    for (int k = 0; k < CP_KIND_COUNT; k++) {
        for (size_t i = 0; i < c->n[k]; i++) {
            cp_resource_free(c->res[k][i]);
        }
        wf_free(c->res[k]);
    }
    cp_workload_list_free(c->workloads, c->nworkloads);
    wf_free(c);
}

static int res_cmp(const cp_resource_t *a, const cp_resource_t *b)
{
    int d = wf_str_cmp(a->meta.namespace_, b->meta.namespace_);
    return d != 0 ? d : wf_str_cmp(a->meta.name, b->meta.name);
}

void cp_config_add_resource(cp_config_t *c, cp_resource_t *r)
{
    WF_ASSERT(r->kind > CP_KIND_NONE && r->kind < CP_KIND_COUNT);
    size_t n = c->n[r->kind];
    cp_resource_t **v = wf_realloc(c->res[r->kind], (n + 1) * sizeof(*v));
    size_t at = n;
    while (at > 0 && res_cmp(v[at - 1], r) > 0) {
        v[at] = v[at - 1];
        at--;
    }
    v[at] = r;
    c->res[r->kind] = v;
    c->n[r->kind] = n + 1;
}

void cp_config_add_workload(cp_config_t *c, const cp_workload_t *w)
{
    size_t n = c->nworkloads;
    cp_workload_t *v = wf_realloc(c->workloads, (n + 1) * sizeof(*v));
    size_t at = n;
    while (at > 0 && strcmp(v[at - 1].id ? v[at - 1].id : "", w->id ? w->id : "") > 0) {
        v[at] = v[at - 1];
        at--;
    }
    cp_workload_copy(&v[at], w);
    c->workloads = v;
    c->nworkloads = n + 1;
}

int cp_config_add_yaml(cp_config_t *c, const char *text, size_t len, const cp_yaml_limits_t *lim,
                       bool skip_foreign, cp_err_t *err)
{
    cp_err_t local;
    cp_err_t *e = err != NULL ? err : &local;
    memset(e, 0, sizeof(*e));
    cp_yaml_stream_t *s = NULL;
    int rc = cp_yaml_parse(text, len, lim, &s, e);
    if (rc != 0) {
        return rc;
    }
    cp_resource_t **got = wf_calloc(s->n_docs ? s->n_docs : 1, sizeof(*got));
    size_t n = 0;
    for (uint32_t i = 0; i < s->n_docs && rc == 0; i++) {
        if (cp_yaml_is_null(s->docs[i])) {
            continue;
        }
        rc = cp_istio_parse(s->docs[i], &got[n], e);
        if (rc == 0) {
            n++;
        } else if (rc == CP_E_KIND && skip_foreign) {
            rc = 0;
        }
    }
    cp_yaml_free(s);
    for (size_t i = 0; i < n; i++) {
        if (rc == 0) {
            cp_config_add_resource(c, got[i]);
        } else {
            cp_resource_free(got[i]);
        }
    }
    wf_free(got);
    return rc;
}

/* Parse one stored document back into its typed form; NULL (logged) when it does not parse. */
static cp_resource_t *parse_stored(const cp_stored_t *row)
{
    cp_err_t err;
    memset(&err, 0, sizeof(err));
    cp_yaml_stream_t *s = NULL;
    cp_resource_t *r = NULL;
    int rc = cp_yaml_parse(row->doc, strlen(row->doc), NULL, &s, &err);
    if (rc == 0 && s->n_docs != 1) {
        rc = WF_E_INVAL;
        snprintf(err.msg, sizeof(err.msg), "one document expected");
    }
    if (rc == 0) {
        rc = cp_istio_parse(s->docs[0], &r, &err);
    }
    cp_yaml_free(s);
    if (rc != 0) {
        WF_LOG(WF_WARN, "control", "stored resource left out of the configuration",
               "kind=%s namespace=%s name=%s err=\"%s\"", row->kind, row->ns, row->name,
               err.msg[0] != '\0' ? err.msg : cp_strerror(rc));
        return NULL;
    }
    r->meta.generation = row->generation;
    return r;
}

/*
 * One pass over every kind; -EAGAIN when a write landed between two lists (the kinds would
 * then come from two different moments).
 */
static int load_resources(cp_store_t *store, cp_config_t *c)
{
    int64_t rv_first = -1;
    for (int k = CP_KIND_NONE + 1; k < CP_KIND_COUNT; k++) {
        cp_stored_t *rows = NULL;
        size_t n = 0;
        int64_t rv = 0;
        int rc = cp_store_list(store, cp_kind_name((cp_kind_t)k), NULL, &rows, &n, &rv);
        if (rc != 0) {
            return rc;
        }
        if (rv_first < 0) {
            rv_first = rv;
        }
        for (size_t i = 0; i < n; i++) {
            cp_resource_t *r = parse_stored(&rows[i]);
            if (r != NULL) {
                cp_config_add_resource(c, r);
            }
        }
        cp_stored_list_free(rows, n);
        if (rv != rv_first) {
            return -EAGAIN;
        }
    }
    c->store_rv = rv_first;
    return 0;
}

int cp_config_load(cp_store_t *store, cp_registry_t *registry, int64_t now_ms, cp_config_t **out)
{
    cp_config_t *c = NULL;
    int rc = -EAGAIN;
    /* Writes are rare next to reads: a few tries find a quiet moment. */
    for (int attempt = 0; attempt < 16 && rc == -EAGAIN; attempt++) {
        cp_config_free(c);
        c = cp_config_new();
        rc = load_resources(store, c);
    }
    if (rc == 0) {
        rc = cp_registry_list(registry, now_ms, &c->workloads, &c->nworkloads);
    }
    if (rc != 0) {
        cp_config_free(c);
        return rc;
    }
    *out = c;
    return 0;
}
