/*
 * col_import.c - POST /api/v1/import/prometheus (see col_import.h): parse the whole body into
 * the request's arena, then hand the samples to the writer as one job.
 */
#include "col_import.h"

#include "col_expfmt.h"
#include "col_writer.h"
#include "wf_alloc.h"
#include "wf_clock.h"
#include "wf_err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    st_label_t *labels; /* __name__ first; in the request's arena */
    size_t nlabels;
    int64_t ts_ms;
    double v;
} imp_sample_t;

typedef struct {
    wf_str_t name;
    st_metric_type_t type;
    wf_str_t help;
} imp_meta_t;

typedef struct {
    imp_sample_t *s;
    size_t n, cap;
    imp_meta_t *m;
    size_t nm, mcap;
} imp_job_t;

/* The write job, on the writer thread: add every sample, then the metadata. */
static int imp_fill(col_write_t *w, st_batch_t *b)
{
    const imp_job_t *j = w->arg;
    for (size_t i = 0; i < j->n; i++) {
        const imp_sample_t *s = &j->s[i];
        int rc = st_batch_add(b, s->labels, s->nlabels, s->ts_ms, s->v);
        if (rc == 0) {
            w->accepted++;
        } else if (rc == ST_E_CLOSED || rc == ST_E_BATCH_LIMIT || rc == -EIO) {
            return rc;
        } else {
            col_write_reject(w, rc, s->labels, s->nlabels);
        }
    }
    for (size_t i = 0; i < j->nm; i++) {
        int rc =
            st_batch_set_metadata(b, j->m[i].name, j->m[i].type, j->m[i].help, (wf_str_t){"", 0});
        if (rc == ST_E_CLOSED || rc == ST_E_BATCH_LIMIT || rc == -EIO) {
            return rc;
        }
    }
    return 0;
}

/* The metadata entry of family name, appended when it is not the last one seen. */
static imp_meta_t *meta_for(imp_job_t *j, wf_str_t name)
{
    if (j->nm > 0 && wf_str_eq(j->m[j->nm - 1].name, name)) {
        return &j->m[j->nm - 1];
    }
    if (j->nm == j->mcap) {
        j->mcap = j->mcap ? j->mcap * 2 : 16;
        j->m = wf_realloc(j->m, j->mcap * sizeof(*j->m));
    }
    imp_meta_t *m = &j->m[j->nm++];
    memset(m, 0, sizeof(*m));
    m->name = name;
    return m;
}

static bool parse_ms(const char *s, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno != 0 || v < 0) {
        return false;
    }
    *out = v;
    return true;
}

void col_import_handler(void *writer, col_req_t *req, col_resp_t *resp)
{
    imp_job_t job = {0};
    enum { MAX_EXTRA = 32 };
    const char *extra_raw[MAX_EXTRA];
    st_label_t extra[MAX_EXTRA];
    size_t nextra = col_req_param_all(req, "extra_label", extra_raw, MAX_EXTRA);
    int64_t now_ms = wf_wall_ms();
    const char *tsp = col_req_param(req, "timestamp");

    if (tsp != NULL && !parse_ms(tsp, &now_ms)) {
        col_resp_text(resp, 400, "cannot parse timestamp %s: expected ms since the epoch", tsp);
        goto out;
    }
    if (nextra > MAX_EXTRA) {
        col_resp_text(resp, 400, "too many extra_label parameters (at most %d)", MAX_EXTRA);
        goto out;
    }
    for (size_t i = 0; i < nextra; i++) {
        const char *eq = strchr(extra_raw[i], '=');
        wf_str_t name = {extra_raw[i], eq ? (size_t)(eq - extra_raw[i]) : 0};
        if (eq == NULL || !col_expfmt_valid_label_name(name) ||
            !wf_utf8_valid(eq + 1, strlen(eq + 1))) {
            col_resp_text(resp, 400, "invalid extra_label %s: expected name=value", extra_raw[i]);
            goto out;
        }
        extra[i].name = name;
        extra[i].value = wf_str(eq + 1);
    }

    col_expfmt_parser_t p;
    col_expfmt_parser_init(&p, req->body, req->body_len,
                           col_expfmt_format_of(col_req_header(req, "Content-Type")), NULL,
                           req->arena);
    col_expfmt_entry_t e;
    int rc;
    size_t est_bytes = 0;
    while ((rc = col_expfmt_next(&p, &e)) == 1) {
        if (e.kind == COL_EXPFMT_TYPE) {
            meta_for(&job, e.name)->type = e.type;
            continue;
        }
        if (e.kind == COL_EXPFMT_HELP) {
            meta_for(&job, e.name)->help = e.text;
            continue;
        }
        if (e.kind != COL_EXPFMT_SERIES) {
            continue;
        }
        if (job.n == job.cap) {
            size_t ncap = job.cap ? job.cap * 2 : 256;
            if (wf_realloc_checked((void **)&job.s, ncap, sizeof(*job.s), 0) != 0) {
                col_resp_text(resp, 413, "too many samples");
                goto out;
            }
            job.cap = ncap;
        }
        size_t n = 1 + e.nlabels + nextra;
        st_label_t *ls = wf_arena_alloc(req->arena, n * sizeof(*ls));
        size_t k = 0;
        ls[k++] = (st_label_t){WF_STR_LIT("__name__"), e.name};
        for (size_t i = 0; i < e.nlabels; i++) {
            bool replaced = false;
            for (size_t x = 0; x < nextra; x++) {
                replaced = replaced || wf_str_eq(extra[x].name, e.labels[i].name);
            }
            if (!replaced) {
                ls[k++] = e.labels[i];
            }
        }
        for (size_t x = 0; x < nextra; x++) {
            ls[k++] = extra[x];
        }
        for (size_t i = 0; i < k; i++) {
            est_bytes += ls[i].name.len + ls[i].value.len + 2;
        }
        est_bytes += 16;
        job.s[job.n++] = (imp_sample_t){ls, k, e.has_ts ? e.ts_ms : now_ms, e.value};
    }
    if (rc < 0) {
        col_resp_text(resp, 400, "cannot parse Prometheus text: %s", col_expfmt_error(&p));
        goto out;
    }

    col_write_t w;
    memset(&w, 0, sizeof(w));
    w.fill = imp_fill;
    w.arg = &job;
    w.est_samples = job.n;
    w.est_bytes = est_bytes;
    rc = col_writer_submit(writer, &w);
    if (rc == ST_E_BATCH_LIMIT) {
        col_resp_text(resp, 413, "too many samples in one request: %s", st_strerror(rc));
    } else if (rc != 0) {
        col_resp_write_failed(resp, rc); /* 503 + Retry-After when shed or shutting down */
    } else if (w.rejected > 0) {
        col_resp_text(resp, 400, "%zu of %zu samples rejected: %s", w.rejected, job.n,
                      w.reject_msg);
    } else {
        resp->status = 204;
    }
out:
    wf_free(job.s);
    wf_free(job.m);
}
