/*
 * wt_spanfx.h - the fixture of the trace query API tests (Jaeger v1, api_v3, Zipkin): a span
 * store in a temporary directory with the real clock, an HTTP server on 127.0.0.1 and an
 * ephemeral port, and a GET helper that parses the answer as JSON. Failures abort: the
 * fixture is used from cmocka setup functions and plain programs alike.
 *
 * Use: wt_spanfx_open, write spans with st_spans_append (times around f->t0), register the
 * routes under test on f->h, wt_spanfx_listen; at the end wt_spanfx_close.
 */
#ifndef WT_SPANFX_H
#define WT_SPANFX_H

#include "col_http.h"
#include "st_span.h"

#include <jansson.h>
#include <stdint.h>

#define WT_MS 1000000LL /* nanoseconds in a millisecond */

typedef struct {
    char *dir;
    st_store_t *s;
    col_http_t *h; /* routes are added by the test before wt_spanfx_listen */
    int port;
    int64_t t0; /* ns: ten minutes ago in whole seconds, inside every default search window */
} wt_spanfx_t;

wt_spanfx_t *wt_spanfx_open(const char *prefix);
void wt_spanfx_listen(wt_spanfx_t *f);
void wt_spanfx_close(wt_spanfx_t *f);

/* wt_spanfx_open, write(f), reg(f->h, f->s), wt_spanfx_listen: a test's whole setup. */
wt_spanfx_t *wt_spanfx_start(const char *prefix, void (*write)(wt_spanfx_t *f),
                             void (*reg)(col_http_t *h, st_store_t *s));

/*
 * GET path and parse the body as JSON (owned by the caller). Aborts, printing the answer,
 * unless the status is want_status and the body is JSON.
 */
json_t *wt_spanfx_get(wt_spanfx_t *f, const char *path, int want_status);

/*
 * Fill sp (zeroed first): trace, span id ...00id, parent ...00parent (0: root), name, kind,
 * times, and the resource res[0..nres) (borrowed), whose service.name gives the service.
 */
void wt_spanfx_span(st_span_t *sp, const uint8_t trace[16], uint8_t id, uint8_t parent,
                    const char *name, st_span_kind_t kind, int64_t start_ns, int64_t end_ns,
                    const st_attr_t *res, size_t nres);

/* st_spans_append with every span valid, else abort. */
void wt_spanfx_append(wt_spanfx_t *f, const st_span_t *spans, size_t n);

#endif
