/*
 * test_collector_ui.c - the real collector serves the web UI: index.html at / and every file
 * web/build.mjs bundled (its manifest.json beside the weft binary, build/web/, is the list),
 * byte for byte, with their types and cache headers; gzip as stored or inflated; ETag and 304;
 * HEAD; the security headers; hostile paths refused, the same in the embedded mode and with
 * --ui-dir (where a symlink out of the directory, a directory and a FIFO are refused too); the
 * API routes unchanged.
 */
#include "wf_alloc.h"
#include "wf_buf.h"
#include "wt_util.h"

#include <curl/curl.h>
#include <jansson.h>
#include <libgen.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#define CSP                                                                                        \
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "                    \
    "img-src 'self' data: blob:; font-src 'self'; connect-src 'self'; object-src 'none'; "         \
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

typedef struct {
    long status;
    wf_buf_t body;
    char content_type[128];
    char cache_control[128];
    char etag[80];
    char content_encoding[32];
    char vary[64];
    char csp[512];
    char nosniff[32];
    char frame[32];
    char referrer[32];
    long content_length;
} resp_t;

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    wf_buf_append(arg, p, size * n);
    return size * n;
}

/* Copy the value of header line (if it is name) into out. */
static void take(const char *line, size_t len, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);
    if (len <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':') {
        return;
    }
    const char *v = line + nl + 1;
    const char *end = line + len;
    while (v < end && *v == ' ') {
        v++;
    }
    while (end > v && (end[-1] == '\r' || end[-1] == '\n')) {
        end--;
    }
    snprintf(out, outlen, "%.*s", (int)(end - v), v);
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    resp_t *r = arg;
    size_t len = size * n;
    take(p, len, "Content-Type", r->content_type, sizeof(r->content_type));
    take(p, len, "Cache-Control", r->cache_control, sizeof(r->cache_control));
    take(p, len, "ETag", r->etag, sizeof(r->etag));
    take(p, len, "Content-Encoding", r->content_encoding, sizeof(r->content_encoding));
    take(p, len, "Vary", r->vary, sizeof(r->vary));
    take(p, len, "Content-Security-Policy", r->csp, sizeof(r->csp));
    take(p, len, "X-Content-Type-Options", r->nosniff, sizeof(r->nosniff));
    take(p, len, "X-Frame-Options", r->frame, sizeof(r->frame));
    take(p, len, "Referrer-Policy", r->referrer, sizeof(r->referrer));
    char cl[32] = "";
    take(p, len, "Content-Length", cl, sizeof(cl));
    if (cl[0] != '\0') {
        r->content_length = atol(cl);
    }
    return len;
}

/*
 * One request, the path sent as it is (no normalisation of "..", no decoding of the body):
 * extra is one header line or NULL. Fills *r (free its body with wf_buf_free).
 */
static void req(int port, const char *method, const char *path, const char *extra, resp_t *r)
{
    memset(r, 0, sizeof(*r));
    r->content_length = -1;
    CURL *c = curl_easy_init();
    assert_non_null(c);
    wf_buf_t url = WF_BUF_INIT;
    wf_buf_printf(&url, "http://127.0.0.1:%d%s", port, path);
    struct curl_slist *hdrs = NULL;
    if (extra != NULL) {
        hdrs = curl_slist_append(hdrs, extra);
    }
    curl_easy_setopt(c, CURLOPT_URL, wf_buf_cstr(&url));
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    }
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    wf_buf_free(&url);
}

static long status_of(int port, const char *path)
{
    resp_t r;
    req(port, "GET", path, NULL, &r);
    wf_buf_free(&r.body);
    return r.status;
}

static void assert_security_headers(const resp_t *r)
{
    assert_string_equal(r->csp, CSP);
    assert_string_equal(r->nosniff, "nosniff");
    assert_string_equal(r->frame, "DENY");
    assert_string_equal(r->referrer, "no-referrer");
}

/* gzip bytes -> the inflated bytes (NUL-terminated), asserting they are one whole stream. */
static void gunzip(const wf_buf_t *in, wf_buf_t *out)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    assert_int_equal(inflateInit2(&zs, 16 + MAX_WBITS), Z_OK);
    zs.next_in = in->data;
    zs.avail_in = (uInt)in->len;
    int rc;
    do {
        uint8_t *dst = wf_buf_reserve(out, 65536);
        zs.next_out = dst;
        zs.avail_out = 65536;
        rc = inflate(&zs, Z_NO_FLUSH);
        assert_true(rc == Z_OK || rc == Z_STREAM_END);
        out->len += 65536 - zs.avail_out;
    } while (rc != Z_STREAM_END);
    assert_int_equal(zs.avail_in, 0);
    inflateEnd(&zs);
}

/* The build's UI directory: web/ beside the weft binary (build.mjs's output). */
static char *web_dir(void)
{
    char *bin = wf_strdup(wt_weft_bin());
    wf_buf_t b = WF_BUF_INIT;
    wf_buf_printf(&b, "%s/web", dirname(bin));
    wf_free(bin);
    return (char *)wf_buf_detach(&b, NULL);
}

static json_t *manifest(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/manifest.json", dir);
    json_error_t err;
    json_t *m = json_load_file(path, 0, &err);
    if (m == NULL) {
        fail_msg("%s: %s", path, err.text);
    }
    json_t *files = json_object_get(m, "files");
    assert_true(json_is_array(files));
    assert_true(json_array_size(files) >= 4); /* index.html, app js and css, favicon */
    return m;
}

typedef struct {
    char *dir;   /* temporary directory */
    char *ui;    /* --ui-dir (a copy of build/web), or NULL: the embedded files */
    char *build; /* build/web: what the bytes must be */
    int port;
    pid_t pid;
} fx_t;

static void fx_start(fx_t *f, bool ui_dir)
{
    memset(f, 0, sizeof(*f));
    f->dir = wt_tmpdir("ui");
    f->build = web_dir();
    char listen[64], ddir[4200], log[4200], ui[4200];
    if (ui_dir) {
        snprintf(ui, sizeof(ui), "%s/ui", f->dir);
        assert_int_equal(wt_sh(f->dir, "cp -r '%s' '%s'", f->build, ui), 0);
        f->ui = wf_strdup(ui);
    }
    f->port = wt_free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", f->port);
    snprintf(ddir, sizeof(ddir), "%s/data", f->dir);
    snprintf(log, sizeof(log), "%s/collector.log", f->dir);
    char *argv[] = {(char *)wt_weft_bin(),
                    "collector",
                    "--listen",
                    listen,
                    "--data-dir",
                    ddir,
                    "--otlp-listen",
                    "off",
                    "--zipkin-listen",
                    "off",
                    ui_dir ? "--ui-dir" : NULL,
                    ui_dir ? f->ui : NULL,
                    NULL};
    f->pid = wt_spawn(argv, log);
    assert_true(wt_wait_port(f->port, 15000));
}

static void fx_stop(fx_t *f)
{
    int st = wt_stop(f->pid, 15000);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    wt_rm_rf(f->dir);
    wf_free(f->dir);
    wf_free(f->ui);
    wf_free(f->build);
}

/*
 * Every file of the manifest, by name: 200, the bytes on disk (identity) and the same bytes
 * once inflated (gzip), its type, the cache policy of its mode, the security headers.
 * Returns the bytes of gzip bodies in total.
 */
static size_t check_all_files(const fx_t *f)
{
    json_t *m = manifest(f->build);
    size_t i, gz_total = 0;
    json_t *e;
    json_array_foreach(json_object_get(m, "files"), i, e)
    {
        const char *name = json_string_value(json_object_get(e, "name"));
        const char *type = json_string_value(json_object_get(e, "type"));
        char path[4200], url[600];
        snprintf(path, sizeof(path), "%s/%s", f->build, name);
        snprintf(url, sizeof(url), "/%s", name);
        size_t want_len = 0;
        char *want = wt_read_file(path, &want_len);
        assert_non_null(want);
        assert_int_equal(want_len, json_integer_value(json_object_get(e, "size")));

        resp_t id, gz;
        req(f->port, "GET", url, NULL, &id);
        assert_int_equal(id.status, 200);
        assert_string_equal(id.content_type, type);
        assert_string_equal(id.content_encoding, "");
        assert_string_equal(id.vary, "Accept-Encoding");
        assert_security_headers(&id);
        assert_int_equal(id.body.len, want_len);
        assert_memory_equal(id.body.data, want, want_len);
        bool index = strcmp(name, "index.html") == 0;
        assert_string_equal(id.cache_control, f->ui != NULL || index
                                                  ? "no-cache"
                                                  : "public, max-age=31536000, immutable");
        assert_int_equal(id.etag[0], '"');

        /* Embedded files go as stored; from disk, the server compresses what is worth it. */
        req(f->port, "GET", url, "Accept-Encoding: gzip, deflate", &gz);
        assert_int_equal(gz.status, 200);
        assert_string_equal(gz.etag, id.etag);
        assert_string_equal(gz.vary, "Accept-Encoding");
        if (f->ui == NULL || want_len >= 1024) {
            assert_string_equal(gz.content_encoding, "gzip");
            wf_buf_t plain = WF_BUF_INIT;
            gunzip(&gz.body, &plain);
            assert_int_equal(plain.len, want_len);
            assert_memory_equal(plain.data, want, want_len);
            wf_buf_free(&plain);
            assert_true(gz.body.len < want_len || want_len < 300);
        }
        gz_total += gz.body.len;
        wf_free(want);
        wf_buf_free(&id.body);
        wf_buf_free(&gz.body);
    }
    json_decref(m);
    return gz_total;
}

/* index.html refers to the bundle by its hashed names, and those are the manifest's. */
static void check_index(const fx_t *f)
{
    json_t *m = manifest(f->build);
    json_t *entries = json_object_get(m, "entries");
    resp_t r;
    req(f->port, "GET", "/", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "text/html; charset=utf-8");
    assert_string_equal(r.cache_control, "no-cache");
    assert_security_headers(&r);
    const char *html = wf_buf_cstr(&r.body);
    const char *keys[] = {"app.js", "app.css", "favicon.svg"};
    for (size_t k = 0; k < 3; k++) {
        const char *hashed = json_string_value(json_object_get(entries, keys[k]));
        assert_non_null(hashed);
        assert_string_not_equal(hashed, keys[k]);
        char ref[300];
        snprintf(ref, sizeof(ref), "=\"%s\"", hashed);
        assert_non_null(strstr(html, ref));
        snprintf(ref, sizeof(ref), "/%s", keys[k]);
        assert_int_equal(status_of(f->port, ref), 404); /* the unhashed names are not served */
    }
    assert_non_null(strstr(html, "<title>weft</title>"));
    /* "/index.html" is the same page. */
    resp_t same;
    req(f->port, "GET", "/index.html", NULL, &same);
    assert_int_equal(same.status, 200);
    assert_int_equal(same.body.len, r.body.len);
    assert_memory_equal(same.body.data, r.body.data, r.body.len);
    wf_buf_free(&same.body);
    wf_buf_free(&r.body);
    json_decref(m);
}

static void check_etag_and_head(const fx_t *f)
{
    resp_t r, nm;
    req(f->port, "GET", "/", NULL, &r);
    assert_int_equal(r.status, 200);
    char hdr[200];
    snprintf(hdr, sizeof(hdr), "If-None-Match: \"nope\", %s", r.etag);
    req(f->port, "GET", "/", hdr, &nm);
    assert_int_equal(nm.status, 304);
    assert_int_equal(nm.body.len, 0);
    assert_string_equal(nm.etag, r.etag);
    assert_string_equal(nm.cache_control, "no-cache");
    wf_buf_free(&nm.body);
    snprintf(hdr, sizeof(hdr), "If-None-Match: W/%s", r.etag);
    req(f->port, "GET", "/", hdr, &nm);
    assert_int_equal(nm.status, 304);
    wf_buf_free(&nm.body);
    req(f->port, "GET", "/", "If-None-Match: \"0000\"", &nm);
    assert_int_equal(nm.status, 200);
    assert_int_equal(nm.body.len, r.body.len);
    wf_buf_free(&nm.body);

    /* HEAD: the GET's headers and length, no body. */
    resp_t h;
    req(f->port, "HEAD", "/", NULL, &h);
    assert_int_equal(h.status, 200);
    assert_int_equal(h.body.len, 0);
    assert_int_equal(h.content_length, (long)r.body.len);
    assert_string_equal(h.etag, r.etag);
    assert_security_headers(&h);
    wf_buf_free(&h.body);
    wf_buf_free(&r.body);

    /* q=0 refuses gzip. */
    req(f->port, "GET", "/", "Accept-Encoding: gzip;q=0, identity", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_encoding, "");
    assert_non_null(strstr(wf_buf_cstr(&r.body), "<!doctype html>"));
    wf_buf_free(&r.body);
}

/* Paths that try to leave the directory or smuggle bytes: 400; names we lack: 404. */
static void check_hostile(const fx_t *f)
{
    static const struct {
        const char *path;
        long status;
    } cases[] = {
        {"/../etc/passwd", 400},
        {"/%2e%2e%2fetc%2fpasswd", 400},
        {"/%2E%2E/%2E%2E/etc/passwd", 400},
        {"/..%5c..%5cetc%5cpasswd", 400},
        {"/a\\b.js", 400},
        {"/%5c", 400},
        {"/%00", 400},
        {"/index.html%00.png", 400},
        {"/app.js%0a", 400},
        {"/app-XXXX.js", 404},
        {"/.hidden", 404},
        {"/sub/index.html", 404},
        {"//etc/passwd", 404},
        {"/etc/passwd", 404},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        resp_t r;
        req(f->port, "GET", cases[i].path, NULL, &r);
        if (r.status != cases[i].status) {
            fail_msg("%s: %ld, want %ld", cases[i].path, r.status, cases[i].status);
        }
        assert_security_headers(&r);
        assert_null(strstr(wf_buf_cstr(&r.body), "root:"));
        wf_buf_free(&r.body);
    }
    /* A 64 KiB path: libmicrohttpd refuses the request line before any route (414). */
    wf_buf_t big = WF_BUF_INIT;
    wf_buf_putc(&big, '/');
    for (size_t i = 0; i < 65536; i++) {
        wf_buf_putc(&big, 'a');
    }
    assert_int_equal(status_of(f->port, wf_buf_cstr(&big)), 414);
    wf_buf_free(&big);
    /* A name of 300 bytes gets to the handler, which has nothing that long. */
    char longname[302] = "/";
    memset(longname + 1, 'b', 300);
    assert_int_equal(status_of(f->port, longname), 404);

    /* The UI is GET/HEAD only: "/" exists, so POST is 405, not 404; the server still
     * answers. */
    resp_t r;
    req(f->port, "POST", "/", NULL, &r);
    assert_int_equal(r.status, 405);
    wf_buf_free(&r.body);
    /* The API around it is unchanged. */
    assert_int_equal(status_of(f->port, "/-/healthy"), 200);
    req(f->port, "GET", "/api/v1/nothing", NULL, &r);
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(wf_buf_cstr(&r.body), "\"errorType\":\"not_found\""));
    wf_buf_free(&r.body);
    req(f->port, "GET", "/api/v1/query?query=1%2B1", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(wf_buf_cstr(&r.body), "\"2\"]"));
    wf_buf_free(&r.body);
    /* An encoded NUL in an argument stays encoded instead of cutting the value short. */
    req(f->port, "GET", "/api/v1/query?query=%22a%00b%22", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(wf_buf_cstr(&r.body), "\"a%00b\"]"));
    wf_buf_free(&r.body);
}

static void test_embedded(void **state)
{
    fx_t f;
    fx_start(&f, false);
    check_index(&f);
    size_t gz = check_all_files(&f);
    /* The budget of a first page load: every file, compressed, under 500 KB. */
    print_message("embedded UI: %zu bytes gzip in total\n", gz);
    assert_true(gz < 500 * 1000);
    check_etag_and_head(&f);
    check_hostile(&f);
    fx_stop(&f);
}

static void test_ui_dir(void **state)
{
    fx_t f;
    fx_start(&f, true);
    check_index(&f);
    check_all_files(&f);
    check_etag_and_head(&f);
    check_hostile(&f);

    /* What the directory holds besides the bundle. */
    char p[4200];
    snprintf(p, sizeof(p), "%s/evil.js", f.ui);
    assert_int_equal(symlink("/etc/passwd", p), 0);
    snprintf(p, sizeof(p), "%s/dir.js", f.ui);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof(p), "%s/fifo.js", f.ui);
    assert_int_equal(mkfifo(p, 0644), 0);
    snprintf(p, sizeof(p), "%s/inside.html", f.ui);
    assert_int_equal(symlink("index.html", p), 0);
    resp_t r;
    req(f.port, "GET", "/evil.js", NULL, &r);
    assert_int_equal(r.status, 400);
    assert_null(strstr(wf_buf_cstr(&r.body), "root:"));
    assert_non_null(strstr(wf_buf_cstr(&r.body), "outside the UI directory"));
    wf_buf_free(&r.body);
    assert_int_equal(status_of(f.port, "/dir.js"), 404);
    assert_int_equal(status_of(f.port, "/fifo.js"), 404);
    assert_int_equal(status_of(f.port, "/inside.html"), 200); /* a symlink within is fine */

    /* Read per request: a rebuilt index.html is served at once. */
    snprintf(p, sizeof(p), "%s/index.html", f.ui);
    wt_write_file(p, "<!doctype html><title>rebuilt</title>\n");
    req(f.port, "GET", "/", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(wf_buf_cstr(&r.body), "<!doctype html><title>rebuilt</title>\n");
    wf_buf_free(&r.body);
    fx_stop(&f);

    /* A --ui-dir that is not a directory stops the collector with a clear message. */
    char *dir = wt_tmpdir("uibad");
    char log[4200], ddir[4200], notdir[4200];
    snprintf(log, sizeof(log), "%s/out.txt", dir);
    snprintf(ddir, sizeof(ddir), "%s/data", dir);
    snprintf(notdir, sizeof(notdir), "%s/file", dir);
    wt_write_file(notdir, "x");
    const char *bad[] = {"/nonexistent-weft-ui", notdir};
    for (size_t i = 0; i < 2; i++) {
        char *argv[] = {(char *)wt_weft_bin(), "collector", "--data-dir", ddir, "--ui-dir",
                        (char *)bad[i],        NULL};
        pid_t pid = wt_spawn(argv, log);
        int st = wt_wait(pid, 15000);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 2);
        char *out = wt_read_file(log, NULL);
        assert_non_null(strstr(out, "--ui-dir"));
        assert_non_null(strstr(out, i == 0 ? "No such file" : "Not a directory"));
        wf_free(out);
    }
    wt_rm_rf(dir);
    wf_free(dir);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embedded),
        cmocka_unit_test(test_ui_dir),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
