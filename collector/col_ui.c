/*
 * col_ui.c - serving the web UI: the embedded files (web_assets.c) or a directory on disk.
 *
 * A request path names one file of a flat directory (build.mjs writes no sub-directories), so
 * the name is checked as a whole before anything is looked up: a path that tries to climb
 * ("..", a backslash, a control character) is refused with 400 whatever mode serves it, and
 * on disk the resolved path must still lie inside the directory (a symlink pointing out is
 * refused too). Everything else the UI does not have is the server's usual 404, so that API
 * clients see the same answer for an unknown endpoint as before the UI took "/".
 */
#include "col_ui.h"

#include "wf_alloc.h"
#include "wf_buf.h"
#include "wf_err.h"
#include "wf_str.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* Longer names are not ours: build.mjs writes names of a few dozen bytes. */
#define UI_NAME_MAX 255
/* A file on disk larger than this is not a UI asset (the whole UI's budget is 500 KB). */
#define UI_FILE_MAX ((size_t)64 << 20)

/*
 * Scripts only from this origin (no inline script, no eval); styles may be inline because
 * cytoscape injects a <style> element for its container and the pages set style attributes;
 * images may be data:/blob: URLs (canvas exports). No framing, no plugins, no <base>.
 */
#define UI_CSP                                                                                     \
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "                    \
    "img-src 'self' data: blob:; font-src 'self'; connect-src 'self'; object-src 'none'; "         \
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

struct col_ui {
    char *dir; /* realpath of --ui-dir, or NULL: the embedded files */
};

static const struct {
    const char *ext;
    const char *type;
} ui_types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".json", "application/json"},
    {".map", "application/json"},
    {".woff2", "font/woff2"},
    {".png", "image/png"},
};

int col_ui_new(const char *dir, col_ui_t **out)
{
    *out = NULL;
    char *real = NULL;
    if (dir != NULL) {
        real = realpath(dir, NULL);
        if (real == NULL) {
            return -errno;
        }
        struct stat st;
        if (stat(real, &st) != 0) {
            int err = -errno;
            free(real);
            return err;
        }
        if (!S_ISDIR(st.st_mode)) {
            free(real);
            return -ENOTDIR;
        }
    }
    col_ui_t *ui = wf_calloc(1, sizeof(*ui));
    if (real != NULL) {
        ui->dir = wf_strdup(real);
        free(real);
    }
    *out = ui;
    return 0;
}

void col_ui_free(col_ui_t *ui)
{
    if (ui == NULL) {
        return;
    }
    wf_free(ui->dir);
    wf_free(ui);
}

static void security_headers(col_resp_t *resp)
{
    col_resp_header(resp, "Content-Security-Policy", UI_CSP);
    col_resp_header(resp, "X-Content-Type-Options", "nosniff");
    col_resp_header(resp, "X-Frame-Options", "DENY");
    col_resp_header(resp, "Referrer-Policy", "no-referrer");
}

static void not_found(col_resp_t *resp, const char *path)
{
    col_resp_api_error(resp, 404, "not_found", "no such endpoint: %s", path);
}

/*
 * The file name a request path asks for ("/" is index.html): 0 and *name (pointing into
 * path), WF_E_INVAL for a path that tries to leave the directory or carries bytes no name has
 * (answer 400; a '%' left in a decoded path is most likely a NUL, which col_http keeps
 * encoded, and no bundled name has one),
 * WF_E_NOTFOUND for a path that cannot name one of our files (404).
 */
static int path_to_name(const char *path, const char **name)
{
    if (path[0] != '/') {
        return WF_E_INVAL;
    }
    const char *n = path + 1;
    if (*n == '\0') {
        n = "index.html";
    }
    for (const char *p = n; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c == 0x7f || c == '\\' || c == '%') {
            return WF_E_INVAL;
        }
    }
    if (strstr(n, "..") != NULL) {
        return WF_E_INVAL;
    }
    if (strlen(n) > UI_NAME_MAX || strchr(n, '/') != NULL || n[0] == '.') {
        return WF_E_NOTFOUND;
    }
    *name = n;
    return 0;
}

static const char *type_of(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (dot != NULL) {
        for (size_t i = 0; i < sizeof(ui_types) / sizeof(ui_types[0]); i++) {
            if (strcmp(dot, ui_types[i].ext) == 0) {
                return ui_types[i].type;
            }
        }
    }
    return "application/octet-stream";
}

/* Does the If-None-Match list hold etag (or "*")? Weak comparison, as RFC 9110 13.1.2 asks
 * for If-None-Match: a W/ prefix is ignored. */
static bool etag_matches(const char *inm, const char *etag)
{
    if (inm == NULL) {
        return false;
    }
    size_t elen = strlen(etag);
    const char *p = inm;
    while (*p != '\0') {
        while (*p == ' ' || *p == '\t' || *p == ',') {
            p++;
        }
        if (*p == '*') {
            return true;
        }
        if (strncmp(p, "W/", 2) == 0) {
            p += 2;
        }
        const char *end = p;
        if (*end == '"') {
            end = strchr(end + 1, '"');
            end = end != NULL ? end + 1 : p + strlen(p);
        } else {
            end += strcspn(end, ", \t");
        }
        if ((size_t)(end - p) == elen && memcmp(p, etag, elen) == 0) {
            return true;
        }
        p = end;
        while (*p != '\0' && *p != ',') {
            p++;
        }
    }
    return false;
}

/* Does Accept-Encoding allow gzip? Only an explicit gzip (or "*") with a non-zero q does. */
static bool accepts_gzip(const char *ae)
{
    if (ae == NULL) {
        return false;
    }
    const char *p = ae;
    while (*p != '\0') {
        while (*p == ' ' || *p == '\t' || *p == ',') {
            p++;
        }
        size_t tok = strcspn(p, ";, \t");
        bool named = (tok == 4 && strncasecmp(p, "gzip", 4) == 0) ||
                     (tok == 6 && strncasecmp(p, "x-gzip", 6) == 0) || (tok == 1 && *p == '*');
        const char *q = p + tok;
        const char *next = strchr(q, ',');
        size_t span = next != NULL ? (size_t)(next - q) : strlen(q);
        bool zero = false;
        const char *qp = memchr(q, 'q', span);
        if (qp != NULL && qp[1] == '=') {
            zero = strtod(qp + 2, NULL) <= 0.0;
        }
        if (named && !zero) {
            return true;
        }
        if (next == NULL) {
            break;
        }
        p = next + 1;
    }
    return false;
}

/* Inflate an embedded file (size bytes once inflated) into out. */
static int inflate_into(const unsigned char *gz, size_t gz_len, size_t size, wf_buf_t *out)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
        return WF_E_INTERNAL;
    }
    uint8_t *dst = wf_buf_reserve(out, size + 1);
    zs.next_in = (Bytef *)gz;
    zs.avail_in = (uInt)gz_len;
    zs.next_out = dst;
    zs.avail_out = (uInt)(size + 1);
    int rc = inflate(&zs, Z_FINISH);
    size_t got = zs.total_out;
    inflateEnd(&zs);
    if (rc != Z_STREAM_END || got != size) {
        return WF_E_CORRUPT;
    }
    out->len += got;
    return 0;
}

static void serve_embedded(col_req_t *req, col_resp_t *resp, const char *name)
{
    const col_ui_asset_t *a = NULL;
    for (size_t i = 0; i < col_ui_nassets; i++) {
        if (strcmp(col_ui_assets[i].name, name) == 0) {
            a = &col_ui_assets[i];
            break;
        }
    }
    if (a == NULL) {
        not_found(resp, req->path);
        return;
    }
    resp->content_type = a->content_type;
    resp->no_compress = true;
    col_resp_header(resp, "Cache-Control",
                    a->immutable ? "public, max-age=31536000, immutable" : "no-cache");
    col_resp_header(resp, "ETag", a->etag);
    if (etag_matches(col_req_header(req, "If-None-Match"), a->etag)) {
        resp->status = 304;
        return;
    }
    if (accepts_gzip(col_req_header(req, "Accept-Encoding"))) {
        col_resp_header(resp, "Content-Encoding", "gzip");
        wf_buf_append(&resp->body, a->gz, a->gz_len);
        return;
    }
    /* The table is generated with the sizes of what it holds: a mismatch is a broken build. */
    int rc = inflate_into(a->gz, a->gz_len, a->size, &resp->body);
    WF_ASSERT(rc == 0);
}

/* Read the regular file fd (at most UI_FILE_MAX bytes) into out: 0, -errno, WF_E_NOTFOUND
 * (not a regular file) or WF_E_LIMIT. */
static int read_file(int fd, wf_buf_t *out)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        return -errno;
    }
    if (!S_ISREG(st.st_mode)) {
        return WF_E_NOTFOUND;
    }
    if ((uint64_t)st.st_size > UI_FILE_MAX) {
        return WF_E_LIMIT;
    }
    for (;;) {
        uint8_t *dst = wf_buf_reserve(out, 64 * 1024);
        ssize_t n = read(fd, dst, 64 * 1024);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -errno;
        }
        if (n == 0) {
            return 0;
        }
        out->len += (size_t)n;
        if (out->len > UI_FILE_MAX) {
            return WF_E_LIMIT;
        }
    }
}

static void serve_dir(const col_ui_t *ui, col_req_t *req, col_resp_t *resp, const char *name)
{
    char *real = NULL;
    int fd = -1;
    char full[PATH_MAX];
    int n = snprintf(full, sizeof(full), "%s/%s", ui->dir, name);
    if (n < 0 || (size_t)n >= sizeof(full)) {
        not_found(resp, req->path);
        goto out;
    }
    real = realpath(full, NULL);
    if (real == NULL) {
        not_found(resp, req->path);
        goto out;
    }
    size_t dlen = strlen(ui->dir);
    if (strncmp(real, ui->dir, dlen) != 0 || real[dlen] != '/') {
        col_resp_text(resp, 400, "%s resolves outside the UI directory", req->path);
        goto out;
    }
    /* O_NOFOLLOW: the last component was no symlink when realpath looked; it must not have
     * become one since. */
    fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        not_found(resp, req->path);
        goto out;
    }
    int rc = read_file(fd, &resp->body);
    if (rc == WF_E_NOTFOUND) {
        wf_buf_reset(&resp->body);
        col_resp_text(resp, 404, "%s is not a regular file", req->path);
        goto out;
    }
    if (rc != 0) {
        wf_buf_reset(&resp->body);
        col_resp_text(resp, 500, "cannot read %s: %s", req->path,
                      rc == WF_E_LIMIT ? "larger than 64 MiB" : wf_strerror(rc));
        goto out;
    }
    char etag[24];
    snprintf(etag, sizeof(etag), "\"%016llx\"",
             (unsigned long long)(resp->body.len > 0 ? wf_hash64(resp->body.data, resp->body.len, 0)
                                                     : 0));
    resp->content_type = type_of(name);
    col_resp_header(resp, "Cache-Control", "no-cache");
    col_resp_header(resp, "ETag", etag);
    if (etag_matches(col_req_header(req, "If-None-Match"), etag)) {
        wf_buf_reset(&resp->body);
        resp->status = 304;
    }
out:
    if (fd >= 0) {
        close(fd);
    }
    free(real);
}

void col_ui_handler(void *arg, col_req_t *req, col_resp_t *resp)
{
    const col_ui_t *ui = arg;
    security_headers(resp);
    const char *name = NULL;
    int rc = path_to_name(req->path, &name);
    if (rc == WF_E_INVAL) {
        col_resp_text(resp, 400,
                      "invalid path: a UI file name has no \"..\", backslash, %% or "
                      "control character");
        return;
    }
    if (rc != 0) {
        not_found(resp, req->path);
        return;
    }
    if (ui->dir != NULL) {
        serve_dir(ui, req, resp, name);
    } else {
        serve_embedded(req, resp, name);
    }
}
