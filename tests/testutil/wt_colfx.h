/*
 * wt_colfx.h - the fixture of the collector's ingest and query tests: a store in a temporary
 * directory with a clock the test sets, and the write queue running on a thread of its own,
 * so that handlers can be called directly and their jobs complete.
 */
#ifndef WT_COLFX_H
#define WT_COLFX_H

#include "col_writer.h"
#include "st_store.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *dir;
    int64_t now; /* the store's "now" in ms; tests may move it */
    st_options_t o;
    st_store_t *s;
    col_writer_t *wr;
    col_writer_thread_t *thread;
} wt_colfx_t;

/* Open the fixture (aborts on failure). now_ms is the store's clock; max_batch_samples and
 * max_batch_spans override the store's batch limits when not 0. */
wt_colfx_t *wt_colfx_open(const char *prefix, int64_t now_ms, size_t max_batch_samples,
                          size_t max_batch_spans);
/* Stop the queue, close the store, remove the directory. */
void wt_colfx_close(wt_colfx_t *f);

#endif
