/*
 * wt_colfx.c - store + write-queue fixture for the collector's tests (see wt_colfx.h).
 */
#include "wt_colfx.h"

#include "wf_alloc.h"
#include "wt_util.h"

#include <stdio.h>
#include <stdlib.h>

static int64_t fixture_now(void *arg)
{
    return *(int64_t *)arg;
}

wt_colfx_t *wt_colfx_open(const char *prefix, int64_t now_ms, size_t max_batch_samples,
                          size_t max_batch_spans)
{
    wt_colfx_t *f = wf_calloc(1, sizeof(*f));
    f->dir = wt_tmpdir(prefix);
    f->now = now_ms;
    st_options_default(&f->o);
    f->o.dir = f->dir;
    f->o.now_ms = fixture_now;
    f->o.now_arg = &f->now;
    if (max_batch_samples > 0) {
        f->o.max_batch_samples = max_batch_samples;
    }
    if (max_batch_spans > 0) {
        f->o.max_batch_spans = max_batch_spans;
    }
    int rc = st_store_open(&f->o, &f->s);
    if (rc == 0) {
        rc = col_writer_new(f->s, &f->wr);
    }
    if (rc == 0) {
        rc = col_writer_thread_start(f->wr, &f->thread);
    }
    if (rc != 0) {
        fprintf(stderr, "wt_colfx_open: %s\n", st_strerror(rc));
        abort();
    }
    return f;
}

void wt_colfx_close(wt_colfx_t *f)
{
    col_writer_thread_stop(f->thread);
    col_writer_free(f->wr);
    st_store_close(f->s);
    wt_rm_rf(f->dir);
    wf_free(f->dir);
    wf_free(f);
}
