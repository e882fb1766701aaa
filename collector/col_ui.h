/*
 * col_ui.h - the collector serves the web UI: index.html at / and every bundled file by its
 * name, either from the copy compiled into the binary (web/build.mjs --embed writes that table,
 * web_assets.c in the build directory) or, for development, from a directory on disk
 * (`weft collector --ui-dir DIR`, build.mjs's output, read per request).
 *
 * Embedded files are stored gzip -9 and sent as stored to clients that accept gzip, inflated
 * on the fly for the others. Hashed names (app-<hash>.js) are cached for a year as immutable,
 * index.html is revalidated (no-cache) through its strong ETag; every answer carries the
 * security headers (Content-Security-Policy, nosniff, no framing, no referrer). Files from
 * --ui-dir are all no-cache. Unknown names are 404; a path with "..", a backslash or a control
 * character is 400, as is a path that resolves outside the directory (a symlink) or to
 * something that is not a regular file (404 then).
 *
 * Threads: the handler runs on any HTTP worker thread, many at once; col_ui_t is read-only
 * after col_ui_new.
 */
#ifndef COL_UI_H
#define COL_UI_H

#include "col_http.h"

#include <stdbool.h>
#include <stddef.h>

/* One embedded file, as web/build.mjs generates it. */
typedef struct {
    const char *name;         /* "index.html", "app-<hash>.js": no slash */
    const char *content_type; /* "text/javascript; charset=utf-8", ... */
    const char *etag;         /* strong, quoted: "\"<hex>\"" */
    const unsigned char *gz;  /* the file, gzip -9 */
    size_t gz_len;
    size_t size;    /* uncompressed */
    bool immutable; /* a content-hashed name: cacheable for good */
} col_ui_asset_t;

/* The embedded files (generated: web_assets.c), sorted by name. */
extern const col_ui_asset_t col_ui_assets[];
extern const size_t col_ui_nassets;

typedef struct col_ui col_ui_t;

/*
 * The UI server: serves the embedded files when dir is NULL, otherwise the files of dir
 * (resolved once here: it must exist and be a directory). 0, or -errno from realpath/stat
 * (-ENOTDIR when dir is not a directory); *out is NULL on failure.
 */
int col_ui_new(const char *dir, col_ui_t **out);

/* NULL is a no-op. Only after the HTTP server that used it has stopped. */
void col_ui_free(col_ui_t *ui);

/* The handler for GET (and HEAD) of every path the other routes leave (route "/" as a prefix;
 * arg is the col_ui_t). */
void col_ui_handler(void *arg, col_req_t *req, col_resp_t *resp);

#endif
