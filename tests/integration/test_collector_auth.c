/*
 * test_collector_auth.c - authentication of a real `weft collector --users FILE`: what is open
 * without credentials (health, UI, login, ingest) and what answers 401; Basic for every hash
 * scheme and for a user `weft users add` made; Bearer tokens; the login cookie flow with its
 * CSRF token and logout; the failed-login limiter (429 + Retry-After, counted in /metrics);
 * idle sessions ending; --auth-ingest; the refusals at start (anonymous off loopback, weak or
 * missing users file); and hostile headers and bodies, after which the server still serves.
 */
#include "wf_alloc.h"
#include "wf_buf.h"
#include "wt_util.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

/* The password of alice (bcrypt), erin (PBKDF2-SHA256) and carol (yescrypt). */
#define PW "correct horse"
#define ALICE "$2b$04$fXutLuE9QllZhWPvrtqH6O6hIw6cBJt9.CDrhZOc5mehR7w2eN3aq"
#define ERIN                                                                                       \
    "$pbkdf2-sha256$29000$c2FsdHNhbHRzYWx0MDEyMw$9knkDEWIsrVu5KADGJUgewejcTKEBsUySOhSDmlNBlM"
#define CAROL "$y$j9T$7xaePMUlE9HlTAcNSKRZu.$atr8m8Iv1cFpVrVYfPiZmX8stM/Vysz2FSHhaadvar/"
/* sha256("weft_test_token") */
#define TOKEN_SHA "47660e29987d638ba7eed6230b3d4fbc3e82c93e900775ed4e8c21ea3c8b4199"
/* base64 of "alice:correct horse", "erin:...", "carol:...", "bob:bobs password", "alice:nope" */
#define B_ALICE "YWxpY2U6Y29ycmVjdCBob3JzZQ=="
#define B_ERIN "ZXJpbjpjb3JyZWN0IGhvcnNl"
#define B_CAROL "Y2Fyb2w6Y29ycmVjdCBob3JzZQ=="
#define B_BOB "Ym9iOmJvYnMgcGFzc3dvcmQ="
#define B_ALICE_WRONG "YWxpY2U6bm9wZQ=="

static char *dir;
static char users[512];

typedef struct {
    pid_t pid;
    int port;
} collector_t;

static collector_t main_col;

typedef struct {
    int status;
    char *head; /* the status line and headers */
    char *body;
} resp_t;

static void resp_free(resp_t *r)
{
    wf_free(r->head);
    wf_free(r->body);
    memset(r, 0, sizeof(*r));
}

/* One request with headers (lines ending "\r\n"); the raw answer split into head and body. */
static int req(int port, const char *method, const char *path, const char *headers,
               const char *body, resp_t *out)
{
    memset(out, 0, sizeof(*out));
    int fd = wt_http_connect(port, 20000);
    if (fd < 0) {
        return -1;
    }
    wf_buf_t msg = WF_BUF_INIT;
    size_t blen = body != NULL ? strlen(body) : 0;
    wf_buf_printf(&msg, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n%s", method,
                  path, port, headers != NULL ? headers : "");
    if (body != NULL) {
        wf_buf_printf(&msg, "Content-Length: %zu\r\n", blen);
    }
    wf_buf_puts(&msg, "\r\n");
    if (body != NULL) {
        wf_buf_append(&msg, body, blen);
    }
    size_t off = 0;
    while (off < msg.len) {
        ssize_t n = write(fd, msg.data + off, msg.len - off);
        if (n <= 0) {
            break;
        }
        off += (size_t)n;
    }
    wf_buf_free(&msg);
    wf_buf_t in = WF_BUF_INIT;
    for (;;) {
        uint8_t *p = wf_buf_reserve(&in, 65536);
        ssize_t n = read(fd, p, 65536);
        if (n <= 0) {
            break;
        }
        in.len += (size_t)n;
    }
    close(fd);
    const char *s = wf_buf_cstr(&in);
    const char *sep = strstr(s, "\r\n\r\n");
    if (strncmp(s, "HTTP/1.1 ", 9) != 0 || sep == NULL) {
        wf_buf_free(&in);
        return -1;
    }
    out->status = atoi(s + 9);
    out->head = wf_strndup(s, (size_t)(sep - s) + 2);
    out->body = wf_strdup(sep + 4);
    wf_buf_free(&in);
    return out->status;
}

/* Value of response header name (case-insensitive) into buf, or NULL. */
static const char *header(const resp_t *r, const char *name, char *buf, size_t len)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(r->head, "\r\n"); p != NULL && p[2] != '\0';
         p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ') {
                v++;
            }
            size_t vl = strcspn(v, "\r");
            snprintf(buf, len, "%.*s", (int)vl, v);
            return buf;
        }
    }
    return NULL;
}

/* Status of a GET of path with one extra header line (or none). */
static int get_status(int port, const char *path, const char *hdr)
{
    resp_t r;
    int st = req(port, "GET", path, hdr, NULL, &r);
    resp_free(&r);
    return st;
}

static collector_t start(const char *label, const char *extra1, const char *extra2,
                         const char *extra3)
{
    collector_t c;
    c.port = wt_free_port();
    char listen[64], data[600], log[600];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", c.port);
    snprintf(data, sizeof(data), "%s/data-%s", dir, label);
    snprintf(log, sizeof(log), "%s/%s.log", dir, label);
    char *argv[16] = {(char *)wt_weft_bin(), "collector", "--listen",      listen,
                      "--data-dir",          data,        "--otlp-listen", "off",
                      "--zipkin-listen",     "off",       "--users",       users};
    int n = 12;
    if (extra1 != NULL) {
        argv[n++] = (char *)extra1;
    }
    if (extra2 != NULL) {
        argv[n++] = (char *)extra2;
    }
    if (extra3 != NULL) {
        argv[n++] = (char *)extra3;
    }
    argv[n] = NULL;
    c.pid = wt_spawn(argv, log);
    assert_true(wt_wait_port(c.port, 20000));
    return c;
}

static int setup(void **state)
{
    dir = wt_tmpdir("colauth");
    snprintf(users, sizeof(users), "%s/users", dir);
    char text[1024];
    snprintf(text, sizeof(text),
             "# test users\nalice:" ALICE "\nerin:" ERIN "\ncarol:" CAROL
             "\ngrafana:$weft-token-sha256$" TOKEN_SHA "\n");
    wt_write_file(users, text);
    /* bob as an operator adds him. */
    int rc =
        wt_sh(dir, "printf 'bobs password\\n' | '%s' users add --password-stdin --cost 4 '%s' bob",
              wt_weft_bin(), users);
    assert_int_equal(rc, 0);
    main_col = start("main", NULL, NULL, NULL);
    return 0;
}

static int teardown(void **state)
{
    assert_int_equal(wt_stop(main_col.pid, 10000), 0);
    wt_rm_rf(dir);
    wf_free(dir);
    return 0;
}

static void test_open_and_closed(void **state)
{
    int port = main_col.port;
    assert_int_equal(get_status(port, "/-/healthy", NULL), 200);
    assert_int_equal(get_status(port, "/-/ready", NULL), 200);
    assert_int_equal(get_status(port, "/", NULL), 200);
    resp_t r;
    assert_int_equal(req(port, "GET", "/api/auth/info", NULL, NULL, &r), 200);
    assert_string_equal(r.body, "{\"strategy\":\"login\",\"user\":null,\"csrfToken\":null}");
    resp_free(&r);
    /* Ingest is open without --auth-ingest. */
    assert_int_equal(req(port, "POST", "/api/v1/import/prometheus", NULL, "up 1\n", &r), 204);
    resp_free(&r);

    char v[256];
    const char *closed[] = {"/api/v1/labels", "/api/v1/query?query=up", "/metrics",   "/federate",
                            "/api/graph",     "/api/v2/services",       "/api/traces"};
    for (size_t i = 0; i < sizeof(closed) / sizeof(closed[0]); i++) {
        assert_int_equal(req(port, "GET", closed[i], NULL, NULL, &r), 401);
        assert_string_equal(r.body, "{\"status\":\"error\",\"errorType\":\"unauthorized\","
                                    "\"error\":\"authentication required: log in, or send "
                                    "Basic or Bearer credentials\"}");
        assert_non_null(header(&r, "WWW-Authenticate", v, sizeof(v)));
        assert_string_equal(v, "Basic realm=\"weft\", charset=\"UTF-8\"");
        resp_free(&r);
    }
    /* The UI's own fetches get no WWW-Authenticate: no browser dialog over the login page. */
    const char *script[] = {"Accept: application/json\r\n", "X-Requested-With: fetch\r\n",
                            "Sec-Fetch-Mode: cors\r\n"};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(req(port, "GET", "/api/v1/labels", script[i], NULL, &r), 401);
        assert_null(header(&r, "WWW-Authenticate", v, sizeof(v)));
        resp_free(&r);
    }
}

static void test_basic(void **state)
{
    int port = main_col.port;
    const char *ok[] = {B_ALICE, B_ERIN, B_CAROL, B_BOB};
    char h[256];
    resp_t r;
    for (size_t i = 0; i < 4; i++) {
        snprintf(h, sizeof(h), "Authorization: Basic %s\r\n", ok[i]);
        assert_int_equal(req(port, "GET", "/api/v1/labels", h, NULL, &r), 200);
        assert_string_equal(r.body, "{\"status\":\"success\",\"data\":[\"__name__\"]}");
        resp_free(&r);
        /* The second time comes from the cache; the answer is the same. */
        assert_int_equal(get_status(port, "/api/v1/labels", h), 200);
    }
    assert_int_equal(
        req(port, "GET", "/api/v1/labels", "Authorization: Basic " B_ALICE_WRONG "\r\n", NULL, &r),
        401);
    assert_string_equal(r.body, "{\"status\":\"error\",\"errorType\":\"unauthorized\","
                                "\"error\":\"invalid username or password\"}");
    resp_free(&r);
    /* mallory:correct horse: an unknown name is the same answer. */
    assert_int_equal(req(port, "GET", "/api/v1/labels",
                         "Authorization: Basic bWFsbG9yeTpjb3JyZWN0IGhvcnNl\r\n", NULL, &r),
                     401);
    assert_string_equal(r.body, "{\"status\":\"error\",\"errorType\":\"unauthorized\","
                                "\"error\":\"invalid username or password\"}");
    resp_free(&r);
    /* grafana has only a token: no password works for it. */
    assert_int_equal(
        get_status(port, "/api/v1/labels", "Authorization: Basic Z3JhZmFuYTpjb3JyZWN0IGhvcnNl\r\n"),
        401);
}

static void test_bearer(void **state)
{
    int port = main_col.port;
    assert_int_equal(
        get_status(port, "/api/v1/labels", "Authorization: Bearer weft_test_token\r\n"), 200);
    assert_int_equal(
        get_status(port, "/api/v1/labels", "Authorization: bearer weft_test_token\r\n"), 200);
    resp_t r;
    assert_int_equal(
        req(port, "GET", "/api/v1/labels", "Authorization: Bearer weft_test_tokeN\r\n", NULL, &r),
        401);
    assert_string_equal(r.body, "{\"status\":\"error\",\"errorType\":\"unauthorized\","
                                "\"error\":\"invalid token\"}");
    resp_free(&r);
    /* A password is not a token. */
    assert_int_equal(get_status(port, "/api/v1/labels", "Authorization: Bearer " PW "\r\n"), 401);
    /* POST with a token needs no CSRF header: there is no cookie to forge. */
    assert_int_equal(req(port, "POST", "/api/v1/query",
                         "Authorization: Bearer weft_test_token\r\nContent-Type: "
                         "application/x-www-form-urlencoded\r\n",
                         "query=1", &r),
                     200);
    resp_free(&r);
}

/* Log in; the cookie ("weft_session=<hex>") and the CSRF token into the buffers. */
static int login(int port, const char *user, const char *pw, const char *extra, char *cookie,
                 size_t clen, char *csrf, size_t csrflen, resp_t *r)
{
    char body[256];
    snprintf(body, sizeof(body), "{\"username\":\"%s\",\"password\":\"%s\"}", user, pw);
    char h[256];
    snprintf(h, sizeof(h), "Content-Type: application/json\r\n%s", extra ? extra : "");
    int st = req(port, "POST", "/api/login", h, body, r);
    if (st != 200) {
        return st;
    }
    char v[256];
    assert_non_null(header(r, "Set-Cookie", v, sizeof(v)));
    snprintf(cookie, clen, "%.*s", (int)strcspn(v, ";"), v);
    json_error_t je;
    json_t *j = json_loads(r->body, 0, &je);
    assert_non_null(j);
    snprintf(csrf, csrflen, "%s", json_string_value(json_object_get(j, "csrfToken")));
    json_decref(j);
    return st;
}

static void test_cookie_flow(void **state)
{
    int port = main_col.port;
    resp_t r;
    /* Only JSON: a cross-site form cannot log anybody in. */
    assert_int_equal(req(port, "POST", "/api/login",
                         "Content-Type: application/x-www-form-urlencoded\r\n",
                         "username=alice&password=x", &r),
                     415);
    resp_free(&r);
    assert_int_equal(
        req(port, "POST", "/api/login", "Content-Type: application/json\r\n", "{\"username\":", &r),
        400);
    resp_free(&r);
    assert_int_equal(req(port, "POST", "/api/login", "Content-Type: application/json\r\n",
                         "{\"username\":\"alice\",\"password\":\"nope\"}", &r),
                     401);
    assert_string_equal(r.body, "{\"error\":\"invalid username or password\"}");
    resp_free(&r);

    char cookie[128], csrf[128], v[512], h[512];
    assert_int_equal(login(port, "alice", PW, NULL, cookie, sizeof(cookie), csrf, sizeof(csrf), &r),
                     200);
    assert_non_null(header(&r, "Set-Cookie", v, sizeof(v)));
    assert_int_equal(strlen(cookie), strlen("weft_session=") + 64);
    char want[256];
    snprintf(want, sizeof(want), "%s; Path=/; HttpOnly; SameSite=Strict", cookie);
    assert_string_equal(v, want);
    assert_int_equal(strlen(csrf), 64);
    snprintf(want, sizeof(want), "{\"user\":\"alice\",\"csrfToken\":\"%s\"}", csrf);
    assert_string_equal(r.body, want);
    resp_free(&r);

    snprintf(h, sizeof(h), "Cookie: theme=dark; %s\r\n", cookie);
    assert_int_equal(req(port, "GET", "/api/auth/info", h, NULL, &r), 200);
    snprintf(want, sizeof(want), "{\"strategy\":\"login\",\"user\":\"alice\",\"csrfToken\":\"%s\"}",
             csrf);
    assert_string_equal(r.body, want);
    resp_free(&r);
    assert_int_equal(get_status(port, "/api/v1/labels", h), 200);

    /* Other methods need the CSRF token too. */
    char hq[768];
    snprintf(hq, sizeof(hq), "%sContent-Type: application/x-www-form-urlencoded\r\n", h);
    assert_int_equal(req(port, "POST", "/api/v1/query", hq, "query=1", &r), 403);
    assert_string_equal(r.body, "{\"status\":\"error\",\"errorType\":\"forbidden\",\"error\":"
                                "\"missing or wrong X-Weft-CSRF header\"}");
    resp_free(&r);
    snprintf(hq, sizeof(hq),
             "%sX-Weft-CSRF: %.63sx\r\nContent-Type: application/x-www-form-urlencoded\r\n", h,
             csrf);
    assert_int_equal(req(port, "POST", "/api/v1/query", hq, "query=1", &r), 403);
    resp_free(&r);
    snprintf(hq, sizeof(hq),
             "%sX-Weft-CSRF: %s\r\nContent-Type: application/x-www-form-urlencoded\r\n", h, csrf);
    assert_int_equal(req(port, "POST", "/api/v1/query", hq, "query=1%2B1", &r), 200);
    assert_non_null(strstr(r.body, "\"resultType\":\"scalar\""));
    assert_non_null(strstr(r.body, ",\"2\"]"));
    resp_free(&r);

    /* Logout needs the token as well, then the cookie is dead on the server. */
    assert_int_equal(req(port, "POST", "/api/logout", h, "{}", &r), 403);
    resp_free(&r);
    snprintf(hq, sizeof(hq), "%sX-Weft-CSRF: %s\r\n", h, csrf);
    assert_int_equal(req(port, "POST", "/api/logout", hq, "{}", &r), 200);
    assert_non_null(header(&r, "Set-Cookie", v, sizeof(v)));
    assert_string_equal(v, "weft_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict");
    resp_free(&r);
    assert_int_equal(req(port, "GET", "/api/v1/labels", h, NULL, &r), 401);
    assert_non_null(strstr(r.body, "session expired or unknown"));
    resp_free(&r);
    assert_int_equal(req(port, "GET", "/api/auth/info", h, NULL, &r), 200);
    assert_string_equal(r.body, "{\"strategy\":\"login\",\"user\":null,\"csrfToken\":null}");
    resp_free(&r);

    /* Behind a TLS-terminating proxy the cookie is Secure. */
    assert_int_equal(login(port, "erin", PW, "X-Forwarded-Proto: https\r\n", cookie, sizeof(cookie),
                           csrf, sizeof(csrf), &r),
                     200);
    assert_non_null(header(&r, "Set-Cookie", v, sizeof(v)));
    snprintf(want, sizeof(want), "%s; Path=/; HttpOnly; SameSite=Strict; Secure", cookie);
    assert_string_equal(v, want);
    resp_free(&r);
}

static void test_hostile(void **state)
{
    int port = main_col.port;
    resp_t r;
    /* 64 KiB of Authorization: above the header memory; libmicrohttpd answers 431 itself. */
    size_t big = 64 * 1024;
    char *h = wf_malloc(big + 64);
    memcpy(h, "Authorization: Basic ", 21);
    memset(h + 21, 'A', big);
    strcpy(h + 21 + big, "\r\n");
    assert_int_equal(get_status(port, "/api/v1/labels", h), 431);
    /* 8 KiB fits the headers, not a credential: 401. */
    strcpy(h + 21 + 8192, "\r\n");
    assert_int_equal(get_status(port, "/api/v1/labels", h), 401);
    wf_free(h);
    const char *bad[] = {
        "Authorization: Basic !!!notbase64\r\n",
        "Authorization: Basic YWxpY2U=\r\n",                 /* "alice": no ':' */
        "Authorization: Basic OnBhc3M=\r\n",                 /* ":pass": no name */
        "Authorization: Basic YQBiOmNvcnJlY3QgaG9yc2U=\r\n", /* "a\0b:correct horse" */
        "Authorization: Digest username=\"alice\"\r\n",
        "Authorization: Basic\r\n",
        "Authorization: Bearer\r\n",
        "Cookie: weft_session=deadbeef\r\n",
        "Cookie: weft_session=zz00000000000000000000000000000000000000000000000000000000000000\r\n",
        "Cookie: weft_session=0000000000000000000000000000000000000000000000000000000000000000\r\n",
        "Cookie: weft_session=\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(get_status(port, "/api/v1/labels", bad[i]), 401);
    }
    /* A 10 000-byte user name, by Basic and by login: refused like any wrong name. */
    wf_buf_t b = WF_BUF_INIT;
    wf_buf_puts(&b, "{\"username\":\"");
    for (int i = 0; i < 10000; i++) {
        wf_buf_putc(&b, 'u');
    }
    wf_buf_puts(&b, "\",\"password\":\"x\"}");
    assert_int_equal(
        req(port, "POST", "/api/login", "Content-Type: application/json\r\n", wf_buf_cstr(&b), &r),
        401);
    assert_string_equal(r.body, "{\"error\":\"invalid username or password\"}");
    resp_free(&r);
    wf_buf_reset(&b);
    wf_buf_puts(&b, "Authorization: Basic ");
    for (int i = 0; i < 13336; i++) {
        wf_buf_putc(&b, 'd'); /* base64 of 10 002 bytes 'u]u]...' */
    }
    wf_buf_puts(&b, "\r\n");
    assert_int_equal(get_status(port, "/api/v1/labels", wf_buf_cstr(&b)), 401);
    wf_buf_free(&b);
    /* NUL in the user name of a login: JSON forbids \u0000 in our parser: 400. */
    assert_int_equal(req(port, "POST", "/api/login", "Content-Type: application/json\r\n",
                         "{\"username\":\"ali\\u0000ce\",\"password\":\"" PW "\"}", &r),
                     400);
    resp_free(&r);
    assert_int_equal(
        req(port, "POST", "/api/login", "Content-Type: application/json\r\n", "[1,2,3]", &r), 400);
    resp_free(&r);
    /* Still serving. */
    assert_int_equal(get_status(port, "/-/healthy", NULL), 200);
    assert_int_equal(get_status(port, "/api/v1/labels", "Authorization: Basic " B_BOB "\r\n"), 200);
}

/* A second collector: the limiter, the Basic cache, the session table's bound, idle sessions
 * and --auth-ingest. */
static void test_limits(void **state)
{
    collector_t c = start("limits", "--session-idle=2s", "--auth-ingest", "--max-sessions=2");
    resp_t r;
    char cookie[128], csrf[128], v[64], h[256];
    for (int i = 0; i < 5; i++) {
        assert_int_equal(
            login(c.port, "alice", "nope", NULL, cookie, sizeof(cookie), csrf, sizeof(csrf), &r),
            401);
        resp_free(&r);
    }
    /* alice is locked out, even with her password, by login and by Basic. */
    assert_int_equal(
        login(c.port, "alice", PW, NULL, cookie, sizeof(cookie), csrf, sizeof(csrf), &r), 429);
    assert_non_null(header(&r, "Retry-After", v, sizeof(v)));
    assert_string_equal(v, "60");
    assert_string_equal(r.body, "{\"error\":\"too many failed logins: retry in 60 s\"}");
    resp_free(&r);
    assert_int_equal(
        req(c.port, "GET", "/api/v1/labels", "Authorization: Basic " B_ALICE "\r\n", NULL, &r),
        429);
    assert_non_null(header(&r, "Retry-After", v, sizeof(v)));
    assert_string_equal(r.body, "{\"status\":\"error\",\"errorType\":\"rate_limited\",\"error\":"
                                "\"too many failed logins: retry in 60 s\"}");
    resp_free(&r);
    /* Others from the same address are not (20 a minute per address). */
    assert_int_equal(
        login(c.port, "bob", "bobs password", NULL, cookie, sizeof(cookie), csrf, sizeof(csrf), &r),
        200);
    resp_free(&r);
    snprintf(h, sizeof(h), "Cookie: %s\r\n", cookie);
    assert_int_equal(get_status(c.port, "/api/v1/labels", h), 200);
    /* The second Basic check of the same header is answered by the cache. */
    for (int i = 0; i < 2; i++) {
        assert_int_equal(get_status(c.port, "/api/v1/labels", "Authorization: Basic " B_BOB "\r\n"),
                         200);
    }

    assert_int_equal(
        req(c.port, "GET", "/metrics", "Authorization: Bearer weft_test_token\r\n", NULL, &r), 200);
    assert_non_null(strstr(r.body, "weft_collector_logins_total{result=\"success\"} 1\n"));
    assert_non_null(strstr(r.body, "weft_collector_logins_total{result=\"failure\"} 5\n"));
    assert_non_null(strstr(r.body, "weft_collector_logins_total{result=\"rate_limited\"} 1\n"));
    assert_non_null(
        strstr(r.body, "weft_collector_auth_rejected_total{reason=\"rate_limited\"} 1\n"));
    assert_non_null(strstr(r.body, "weft_collector_sessions 1\n"));
    assert_non_null(strstr(r.body, "weft_collector_auth_basic_cache_total{result=\"hit\"} 1\n"));
    /* bob's first Basic check, and alice's refused before any hash (locked out) */
    assert_non_null(strstr(r.body, "weft_collector_auth_basic_cache_total{result=\"miss\"} 2\n"));
    resp_free(&r);

    /* --max-sessions=2: a third login ends the oldest session. */
    char cookie2[128], h2[256];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(login(c.port, "bob", "bobs password", NULL, cookie2, sizeof(cookie2), csrf,
                               sizeof(csrf), &r),
                         200);
        resp_free(&r);
    }
    assert_int_equal(get_status(c.port, "/api/v1/labels", h), 401);
    snprintf(h2, sizeof(h2), "Cookie: %s\r\n", cookie2);
    assert_int_equal(get_status(c.port, "/api/v1/labels", h2), 200);

    /* --auth-ingest: ingest needs credentials too. */
    assert_int_equal(req(c.port, "POST", "/api/v1/import/prometheus", NULL, "up 1\n", &r), 401);
    resp_free(&r);
    assert_int_equal(req(c.port, "POST", "/api/v1/import/prometheus",
                         "Authorization: Bearer weft_test_token\r\n", "up 1\n", &r),
                     204);
    resp_free(&r);

    /* An idle session ends (--session-idle=2s). */
    usleep(3000 * 1000);
    assert_int_equal(req(c.port, "GET", "/api/v1/labels", h2, NULL, &r), 401);
    assert_non_null(strstr(r.body, "session expired or unknown"));
    resp_free(&r);
    assert_int_equal(wt_stop(c.pid, 10000), 0);
}

/* Run the collector with args; its exit status (124: it was still serving after 10 s) and its
 * stderr into err. */
static int run_collector(const char *args, char *err, size_t len)
{
    int st = wt_sh(dir,
                   "timeout 10 '%s' collector --data-dir '%s/data-refused' --otlp-listen off "
                   "--zipkin-listen off %s 2>'%s/refused.err' >/dev/null",
                   wt_weft_bin(), dir, args, dir);
    char path[600];
    snprintf(path, sizeof(path), "%s/refused.err", dir);
    char *text = wt_read_file(path, NULL);
    snprintf(err, len, "%s", text != NULL ? text : "");
    wf_free(text);
    return st;
}

static void test_refusals(void **state)
{
    char err[1024];
    char args[1024];
    int port = wt_free_port();
    snprintf(args, sizeof(args), "--listen 0.0.0.0:%d", port);
    assert_int_equal(run_collector(args, err, sizeof(err)), 2);
    char want[1024];
    snprintf(want, sizeof(want),
             "weft collector: refusing to serve without authentication on 0.0.0.0:%d (not a "
             "loopback address): give --users FILE (create it with `weft users add FILE NAME`), "
             "or --anonymous to allow it\n",
             port);
    assert_string_equal(err, want);
    snprintf(args, sizeof(args), "--listen 127.0.0.1:%d --otlp-listen 0.0.0.0:%d", port,
             wt_free_port());
    assert_int_equal(run_collector(args, err, sizeof(err)), 2);
    assert_non_null(strstr(err, "not a loopback address"));

    char weak[600];
    snprintf(weak, sizeof(weak), "%s/weak", dir);
    wt_write_file(weak, "alice:" ALICE "\n\nbob:$apr1$abcdefgh$y6iHhJNbuC0xpbk0w9pm80\n");
    snprintf(args, sizeof(args), "--listen 127.0.0.1:%d --users '%s'", port, weak);
    assert_int_equal(run_collector(args, err, sizeof(err)), 2);
    snprintf(want, sizeof(want),
             "weft collector: --users: %s:3: MD5-based hashes ($1$, $apr1$: htpasswd's "
             "default) are too weak; use bcrypt (htpasswd -B, or weft users add)\n",
             weak);
    assert_string_equal(err, want);
    wt_write_file(weak, "alice:hunter2\n");
    assert_int_equal(run_collector(args, err, sizeof(err)), 2);
    assert_non_null(strstr(err, ":1: not a password hash (plain text?)"));
    wt_write_file(weak, "# nobody\n");
    assert_int_equal(run_collector(args, err, sizeof(err)), 2);
    assert_non_null(strstr(err, "has no entries"));
    snprintf(args, sizeof(args), "--listen 127.0.0.1:%d --users '%s/absent'", port, dir);
    assert_int_equal(run_collector(args, err, sizeof(err)), 2);
    assert_non_null(strstr(err, "/absent: No such file or directory"));
    snprintf(args, sizeof(args), "--listen 127.0.0.1:%d --users '%s' --anonymous", port, users);
    assert_int_equal(run_collector(args, err, sizeof(err)), 2);
    assert_non_null(strstr(err, "--users and --anonymous exclude each other"));
}

/* Explicitly anonymous: serves everything, and says so. */
static void test_anonymous(void **state)
{
    int port = wt_free_port();
    char listen[64], data[600], log[600];
    snprintf(listen, sizeof(listen), "0.0.0.0:%d", port);
    snprintf(data, sizeof(data), "%s/data-anon", dir);
    snprintf(log, sizeof(log), "%s/anon.log", dir);
    char *argv[] = {(char *)wt_weft_bin(), "collector", "--listen",      listen,
                    "--data-dir",          data,        "--otlp-listen", "off",
                    "--zipkin-listen",     "off",       "--anonymous",   NULL};
    pid_t pid = wt_spawn(argv, log);
    assert_true(wt_wait_port(port, 20000));
    resp_t r;
    assert_int_equal(req(port, "GET", "/api/auth/info", NULL, NULL, &r), 200);
    assert_string_equal(r.body, "{\"strategy\":\"anonymous\",\"user\":null,\"csrfToken\":null}");
    resp_free(&r);
    assert_int_equal(get_status(port, "/api/v1/labels", NULL), 200);
    assert_int_equal(req(port, "POST", "/api/login", "Content-Type: application/json\r\n",
                         "{\"username\":\"a\",\"password\":\"b\"}", &r),
                     404);
    resp_free(&r);
    assert_int_equal(wt_stop(pid, 10000), 0);
}

static void test_users_cli(void **state)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/cli-users", dir);
    assert_int_equal(wt_sh(dir,
                           "printf 'pw1\\n' | '%s' users add --password-stdin --cost 4 "
                           "'%s' dave",
                           wt_weft_bin(), path),
                     0);
    assert_int_equal(
        wt_sh(dir, "'%s' users token '%s' dave > '%s/token.out'", wt_weft_bin(), path, dir), 0);
    assert_int_equal(wt_sh(dir, "test \"$(stat -c %%a '%s')\" = 600", path), 0);
    /* Replacing keeps one password entry and the token. */
    assert_int_equal(wt_sh(dir,
                           "printf 'pw2\\n' | '%s' users add --password-stdin --scheme "
                           "yescrypt '%s' dave",
                           wt_weft_bin(), path),
                     0);
    assert_int_equal(wt_sh(dir,
                           "test $(grep -c '^dave:\\$y\\$' '%s') = 1 && test $(grep -c "
                           "'^dave:\\$weft-token-sha256\\$' '%s') = 1 && test $(wc -l < "
                           "'%s') = 2 && grep -qx 'weft_[0-9a-f]\\{64\\}' '%s/token.out'",
                           path, path, path, dir),
                     0);
    /* No terminal and no --password-stdin: refused, file unchanged. */
    assert_int_equal(wt_sh(dir, "setsid '%s' users add '%s' eve < /dev/null", wt_weft_bin(), path),
                     1);
    assert_int_equal(
        wt_sh(dir, "printf '\\n' | '%s' users add --password-stdin '%s' eve", wt_weft_bin(), path),
        1);
    assert_int_equal(wt_sh(dir,
                           "printf 'x\\n' | '%s' users add --password-stdin --cost 4 '%s' 'e:ve'",
                           wt_weft_bin(), path),
                     1);
    assert_int_equal(wt_sh(dir, "'%s' users remove '%s' nobody", wt_weft_bin(), path), 1);
    assert_int_equal(
        wt_sh(dir, "'%s' users remove '%s' dave && test ! -s '%s'", wt_weft_bin(), path, path), 0);
    assert_int_equal(wt_sh(dir, "'%s' users frobnicate '%s' dave", wt_weft_bin(), path), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_and_closed), cmocka_unit_test(test_basic),
        cmocka_unit_test(test_bearer),          cmocka_unit_test(test_cookie_flow),
        cmocka_unit_test(test_hostile),         cmocka_unit_test(test_limits),
        cmocka_unit_test(test_refusals),        cmocka_unit_test(test_anonymous),
        cmocka_unit_test(test_users_cli),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
