/*
 * test_col_http.c - the collector's HTTP layer against raw sockets: routing, parameters from
 * query strings and form bodies, body limits, gzip request bodies (and gzip bombs), chunked
 * bodies, gzip responses; the request body memory budget (a request that does not fit is
 * answered 503 with Retry-After on a connection that stays usable); and its JSON string and
 * float formatting.
 */
#include "col_http.h"
#include "wf_alloc.h"
#include "wt_util.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

static char *fmt(double v)
{
    wf_buf_t b = WF_BUF_INIT;
    col_fmt_float(&b, v);
    wf_buf_putc(&b, 0);
    return (char *)wf_buf_detach(&b, NULL);
}

static void test_fmt_float(void **state)
{
    static const struct {
        double v;
        const char *want;
    } cases[] = {
        {1, "1"},
        {0.1, "0.1"},
        {-2.5, "-2.5"},
        {1e21, "1e+21"},
        {1e20, "100000000000000000000"},
        {1e-7, "1e-07"},
        {1.5e-6, "0.0000015"},
        {123456789012.0, "123456789012"},
        {1.0 / 3, "0.3333333333333333"},
        {2.0 / 3, "0.6666666666666666"},
        {0.000001, "0.000001"},
        {5e-324, "5e-324"},
        {1.7976931348623157e308, "1.7976931348623157e+308"},
        {100, "100"},
        {12.5, "12.5"},
        {0, "0"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *s = fmt(cases[i].v);
        assert_string_equal(s, cases[i].want);
        wf_free(s);
    }
    char *s = fmt(NAN);
    assert_string_equal(s, "NaN");
    wf_free(s);
    s = fmt(INFINITY);
    assert_string_equal(s, "+Inf");
    wf_free(s);
    s = fmt(-INFINITY);
    assert_string_equal(s, "-Inf");
    wf_free(s);
}

static void test_json_str(void **state)
{
    wf_buf_t b = WF_BUF_INIT;
    const char in[] = "a\"b\\c\n\x01\xff\xc3\xa9";
    col_json_str(&b, in, sizeof(in) - 1);
    wf_buf_putc(&b, 0);
    assert_string_equal((char *)b.data, "\"a\\\"b\\\\c\\n\\u0001\xef\xbf\xbd\xc3\xa9\"");
    wf_buf_free(&b);
}

/* ---- a server with one echo route -------------------------------------------------------- */

static void echo(void *arg, col_req_t *req, col_resp_t *resp)
{
    resp->content_type = "text/plain";
    wf_buf_printf(&resp->body, "%s %s len=%zu", req->method, req->path, req->body_len);
    for (size_t i = 0; i < req->nparams; i++) {
        wf_buf_printf(&resp->body, " %s=%s", req->params[i].name, req->params[i].value);
    }
    const char *big = col_req_param(req, "big");
    if (big != NULL) {
        for (int i = 0; i < atoi(big); i++) {
            wf_buf_puts(&resp->body, "0123456789");
        }
    }
    if (req->body_len > 0 && req->body_len < 64) {
        wf_buf_printf(&resp->body, " body=%s", (const char *)req->body);
    }
}

static int port;
static col_http_t *srv;

static int setup(void **state)
{
    col_http_options_t o = {.threads = 2};
    assert_int_equal(col_http_new(&o, &srv), 0);
    assert_int_equal(col_http_route(srv, "GET POST", "/echo", false, 4096, echo, NULL), 0);
    assert_int_equal(col_http_route(srv, "GET", "/p/", true, 0, echo, NULL), 0);
    port = wt_free_port();
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    assert_int_equal(col_http_listen(srv, addr), 0);
    return 0;
}

static int teardown(void **state)
{
    col_http_free(srv);
    return 0;
}

/* Send raw bytes, read the whole answer (the request asks for Connection: close). */
static char *raw(const void *req, size_t len, size_t *out_len)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, (const char *)req + off, len - off);
        assert_true(n > 0);
        off += (size_t)n;
    }
    wf_buf_t b = WF_BUF_INIT;
    char tmp[4096];
    ssize_t n;
    while ((n = read(fd, tmp, sizeof(tmp))) > 0) {
        wf_buf_append(&b, tmp, (size_t)n);
    }
    close(fd);
    wf_buf_putc(&b, 0);
    size_t l;
    char *s = (char *)wf_buf_detach(&b, &l);
    if (out_len) {
        *out_len = l - 1;
    }
    return s;
}

static char *rawf(const char *fmt_, ...)
{
    char req[8192];
    va_list ap;
    va_start(ap, fmt_);
    int n = vsnprintf(req, sizeof(req), fmt_, ap);
    va_end(ap);
    return raw(req, (size_t)n, NULL);
}

static void test_routes_and_params(void **state)
{
    char *r = rawf("GET /echo?a=1&match%%5B%%5D=x&match[]=y%%20z HTTP/1.1\r\nHost: x\r\n"
                   "Connection: close\r\n\r\n");
    assert_non_null(strstr(r, "200 OK"));
    assert_non_null(strstr(r, "GET /echo len=0 a=1 match[]=x match[]=y z"));
    wf_free(r);

    const char *form = "query=sum%28rate%28x%5B5m%5D%29%29&time=1.5&e=";
    r = rawf("POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: "
             "application/x-www-form-urlencoded\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(form), form);
    assert_non_null(strstr(r, "query=sum(rate(x[5m])) time=1.5 e="));
    wf_free(r);

    r = rawf("GET /p/deep/er HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_non_null(strstr(r, "GET /p/deep/er len=0"));
    wf_free(r);

    r = rawf("GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_non_null(strstr(r, "404 Not Found"));
    assert_non_null(strstr(r, "\"errorType\":\"not_found\""));
    wf_free(r);

    r = rawf("DELETE /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_non_null(strstr(r, "405"));
    wf_free(r);

    /* A body on a route that takes none. */
    r = rawf("GET /p/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc");
    assert_non_null(strstr(r, "413"));
    wf_free(r);
}

static void test_body_limits_and_chunked(void **state)
{
    /* Declared above the limit: the body is read and dropped, then 413. */
    wf_buf_t big = WF_BUF_INIT;
    wf_buf_puts(&big, "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                      "Content-Length: 5000\r\n\r\n");
    for (int i = 0; i < 5000; i++) {
        wf_buf_putc(&big, 'b');
    }
    char *r = raw(big.data, big.len, NULL);
    assert_non_null(strstr(r, "413"));
    wf_free(r);
    wf_buf_free(&big);
    /* Declared far above it: answered at once, before any body. */
    r = rawf("POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
             "Content-Length: 100000000000\r\n\r\n");
    assert_non_null(strstr(r, "413"));
    wf_free(r);

    /* Chunked, no Content-Length, within the limit. */
    r = rawf("POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: "
             "chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    assert_non_null(strstr(r, "len=11 body=hello world"));
    wf_free(r);

    /* Chunked and above the limit: 413 after the body. */
    wf_buf_t req = WF_BUF_INIT;
    wf_buf_puts(&req, "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 5; i++) {
        wf_buf_puts(&req, "400\r\n");
        for (int j = 0; j < 1024; j++) {
            wf_buf_putc(&req, 'a');
        }
        wf_buf_puts(&req, "\r\n");
    }
    wf_buf_puts(&req, "0\r\n\r\n");
    r = raw(req.data, req.len, NULL);
    assert_non_null(strstr(r, "413"));
    wf_free(r);
    wf_buf_free(&req);
}

static size_t gz(const void *in, size_t len, uint8_t *out, size_t cap)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    assert_int_equal(deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)len;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    deflateEnd(&zs);
    return zs.total_out;
}

static void post_gzip(const uint8_t *body, size_t n, const char *want)
{
    wf_buf_t req = WF_BUF_INIT;
    wf_buf_printf(&req,
                  "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Encoding: "
                  "gzip\r\nContent-Length: %zu\r\n\r\n",
                  n);
    wf_buf_append(&req, body, n);
    char *r = raw(req.data, req.len, NULL);
    if (strstr(r, want) == NULL) {
        fail_msg("want %s in %s", want, r);
    }
    wf_free(r);
    wf_buf_free(&req);
}

static void test_gzip_bodies(void **state)
{
    uint8_t z[4096];
    size_t n = gz("hello gzip", 10, z, sizeof(z));
    post_gzip(z, n, "len=10 body=hello gzip");

    /* 1 MiB of zeros compresses to ~1 KiB: a bomb for a 4 KiB limit. */
    uint8_t *zeros = wf_calloc(1, 1 << 20);
    n = gz(zeros, 1 << 20, z, sizeof(z));
    wf_free(zeros);
    assert_true(n < 4096);
    post_gzip(z, n, "413");

    /* Corrupt and truncated streams. */
    n = gz("hello gzip", 10, z, sizeof(z));
    z[12] ^= 0xff;
    post_gzip(z, n, "400");
    n = gz("hello gzip hello gzip", 21, z, sizeof(z));
    post_gzip(z, n / 2, "400");
    post_gzip((const uint8_t *)"not gzip at all", 15, "400");
}

static void test_gzip_response(void **state)
{
    size_t len;
    const char *req = "GET /echo?big=500 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                      "Accept-Encoding: gzip, deflate\r\n\r\n";
    char *r = raw(req, strlen(req), &len);
    assert_non_null(strstr(r, "Content-Encoding: gzip"));
    char *body = strstr(r, "\r\n\r\n") + 4;
    size_t blen = len - (size_t)(body - r);
    uint8_t out[8192];
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    assert_int_equal(inflateInit2(&zs, 15 + 16), Z_OK);
    zs.next_in = (Bytef *)body;
    zs.avail_in = (uInt)blen;
    zs.next_out = out;
    zs.avail_out = sizeof(out);
    assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
    assert_true(zs.total_out > 5000);
    assert_memory_equal(out, "GET /echo len=0 big=500", 23);
    inflateEnd(&zs);
    wf_free(r);

    /* q=0 refuses gzip; small bodies are never compressed. */
    req = "GET /echo?big=500 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
          "Accept-Encoding: gzip;q=0\r\n\r\n";
    r = raw(req, strlen(req), NULL);
    assert_null(strstr(r, "Content-Encoding: gzip"));
    wf_free(r);
    req = "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAccept-Encoding: gzip\r\n\r\n";
    r = raw(req, strlen(req), NULL);
    assert_null(strstr(r, "Content-Encoding: gzip"));
    wf_free(r);
}

static void test_keep_alive(void **state)
{
    /* Two requests on one connection, the second closing it: both answered. */
    const char *req = "GET /echo?n=1 HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET /echo?n=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    char *r = raw(req, strlen(req), NULL);
    assert_non_null(strstr(r, "n=1"));
    assert_non_null(strstr(r, "n=2"));
    wf_free(r);
}

/* ---- the body memory budget ---------------------------------------------------------------- */

enum { BUDGET = 10000 };

static int shed_setup(void **state)
{
    col_http_options_t o = {.threads = 2, .max_body_bytes = BUDGET, .retry_after_s = 3};
    assert_int_equal(col_http_new(&o, &srv), 0);
    assert_int_equal(col_http_route(srv, "GET POST", "/echo", false, 4 * BUDGET, echo, NULL), 0);
    port = wt_free_port();
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    assert_int_equal(col_http_listen(srv, addr), 0);
    return 0;
}

static int connect_srv(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static void send_all(int fd, const void *p, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, (const char *)p + off, len - off);
        assert_true(n > 0);
        off += (size_t)n;
    }
}

/* A POST /echo of len bytes: headers with Content-Length, or chunked in 1 KiB chunks. */
static void post_body(wf_buf_t *req, size_t len, bool chunked, const char *extra_headers)
{
    wf_buf_printf(req, "POST /echo HTTP/1.1\r\nHost: x\r\n%s", extra_headers);
    if (!chunked) {
        wf_buf_printf(req, "Content-Length: %zu\r\n\r\n", len);
        for (size_t i = 0; i < len; i++) {
            wf_buf_putc(req, 'x');
        }
        return;
    }
    wf_buf_puts(req, "Transfer-Encoding: chunked\r\n\r\n");
    for (size_t off = 0; off < len; off += 1024) {
        size_t n = len - off < 1024 ? len - off : 1024;
        wf_buf_printf(req, "%zx\r\n", n);
        for (size_t i = 0; i < n; i++) {
            wf_buf_putc(req, 'x');
        }
        wf_buf_puts(req, "\r\n");
    }
    wf_buf_puts(req, "0\r\n\r\n");
}

/* Read one response (headers and Content-Length bytes of body), NUL-terminated. */
static char *read_resp(int fd)
{
    wf_buf_t b = WF_BUF_INIT;
    char tmp[4096];
    for (;;) {
        wf_buf_putc(&b, 0);
        b.len--;
        const char *end = strstr((const char *)b.data, "\r\n\r\n");
        if (end != NULL) {
            const char *cl = strstr((const char *)b.data, "Content-Length: ");
            size_t want = (size_t)(end + 4 - (const char *)b.data);
            if (cl != NULL && cl < end) {
                want += strtoul(cl + 16, NULL, 10);
            }
            if (b.len >= want) {
                break;
            }
        }
        ssize_t n = read(fd, tmp, sizeof(tmp));
        if (n <= 0) {
            fail_msg("connection closed after %zu bytes: %.*s", b.len, (int)b.len,
                     (const char *)b.data);
        }
        wf_buf_append(&b, tmp, (size_t)n);
    }
    return (char *)wf_buf_detach(&b, NULL);
}

/* Wait (the test's timeout bounds it) until the server holds n body bytes. */
static void wait_body_bytes(uint64_t n)
{
    for (;;) {
        col_http_stats_t st;
        col_http_stats(srv, &st);
        if (st.body_bytes == n) {
            return;
        }
        usleep(1000);
    }
}

static void test_body_budget_shed(void **state)
{
    /* Client A announces 6000 bytes and sends only part: its reservation holds the budget. */
    int a = connect_srv();
    wf_buf_t ra = WF_BUF_INIT;
    post_body(&ra, 6000, false, "");
    size_t head = (size_t)(strstr((const char *)ra.data, "\r\n\r\n") + 4 - (const char *)ra.data);
    send_all(a, ra.data, head + 100);
    wait_body_bytes(6000);

    /* Client B, keep-alive: 5000 more do not fit. 503, Retry-After, the connection stays. */
    int b = connect_srv();
    wf_buf_t rb = WF_BUF_INIT;
    post_body(&rb, 5000, false, "");
    send_all(b, rb.data, rb.len);
    char *r = read_resp(b);
    assert_non_null(strstr(r, "HTTP/1.1 503"));
    assert_non_null(strstr(r, "Retry-After: 3\r\n"));
    assert_non_null(strstr(r, "retry later"));
    assert_null(strstr(r, "Connection: close"));
    wf_free(r);
    /* The same, chunked: refused as its chunks arrive. */
    wf_buf_reset(&rb);
    post_body(&rb, 5000, true, "");
    send_all(b, rb.data, rb.len);
    r = read_resp(b);
    assert_non_null(strstr(r, "HTTP/1.1 503"));
    assert_non_null(strstr(r, "Retry-After: 3\r\n"));
    wf_free(r);
    /* A gzip body of 5000 bytes, ~40 as sent: counted at its decoded size, it does not fit. */
    uint8_t *zeros = wf_calloc(1, BUDGET + 1);
    uint8_t z[1024];
    size_t zn = gz(zeros, 5000, z, sizeof(z));
    assert_true(zn < 1000);
    wf_buf_reset(&rb);
    wf_buf_printf(&rb,
                  "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\n"
                  "Content-Length: %zu\r\n\r\n",
                  zn);
    wf_buf_append(&rb, z, zn);
    send_all(b, rb.data, rb.len);
    r = read_resp(b);
    assert_non_null(strstr(r, "HTTP/1.1 503"));
    assert_non_null(strstr(r, "Retry-After: 3\r\n"));
    wf_free(r);
    /* A small body still fits, on the same connection. */
    const char *small = "POST /echo?n=2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
    send_all(b, small, strlen(small));
    r = read_resp(b);
    assert_non_null(strstr(r, "HTTP/1.1 200"));
    assert_non_null(strstr(r, "len=5 n=2 body=hello"));
    wf_free(r);

    col_http_stats_t st;
    col_http_stats(srv, &st);
    assert_int_equal(st.shed_memory, 3);

    /* A finishes: its request is served whole, and its reservation is given back. */
    send_all(a, ra.data + head + 100, ra.len - head - 100);
    r = read_resp(a);
    assert_non_null(strstr(r, "HTTP/1.1 200"));
    assert_non_null(strstr(r, "POST /echo len=6000"));
    wf_free(r);
    wait_body_bytes(0);

    /* B's 5000 bytes now fit. */
    wf_buf_reset(&rb);
    post_body(&rb, 5000, false, "");
    send_all(b, rb.data, rb.len);
    r = read_resp(b);
    assert_non_null(strstr(r, "HTTP/1.1 200"));
    assert_non_null(strstr(r, "POST /echo len=5000"));
    wf_free(r);

    /* A body above the whole budget can never succeed: 413, not 503, both ways. */
    wf_buf_reset(&rb);
    post_body(&rb, BUDGET + 1, false, "");
    send_all(b, rb.data, rb.len);
    r = read_resp(b);
    assert_non_null(strstr(r, "HTTP/1.1 413"));
    assert_null(strstr(r, "Retry-After"));
    wf_free(r);
    wf_buf_reset(&rb);
    post_body(&rb, BUDGET + 1, true, "");
    send_all(b, rb.data, rb.len);
    r = read_resp(b);
    assert_non_null(strstr(r, "HTTP/1.1 413"));
    wf_free(r);
    /* Decoded above the whole budget: 413 too. */
    zn = gz(zeros, BUDGET + 1, z, sizeof(z));
    wf_buf_reset(&rb);
    wf_buf_printf(&rb,
                  "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\n"
                  "Content-Length: %zu\r\n\r\n",
                  zn);
    wf_buf_append(&rb, z, zn);
    send_all(b, rb.data, rb.len);
    r = read_resp(b);
    assert_non_null(strstr(r, "HTTP/1.1 413"));
    wf_free(r);
    wf_free(zeros);
    col_http_stats(srv, &st);
    assert_int_equal(st.shed_memory, 3);
    wait_body_bytes(0);

    close(a);
    close(b);
    wf_buf_free(&ra);
    wf_buf_free(&rb);
}

static void test_retry_later_resp(void **state)
{
    col_resp_t r;
    memset(&r, 0, sizeof(r));
    r.retry_after_s = 30;
    col_resp_retry_later(&r, 429, "slow down %d", 1);
    assert_int_equal(r.status, 429);
    assert_string_equal(r.content_type, "text/plain; charset=utf-8");
    assert_int_equal(r.nheaders, 1);
    assert_string_equal(r.headers[0][0], "Retry-After");
    assert_string_equal(r.headers[0][1], "30");
    assert_int_equal(r.body.len, 12);
    assert_memory_equal(r.body.data, "slow down 1\n", 12);
    for (size_t i = 0; i < r.nheaders; i++) {
        wf_free(r.headers[i][0]);
        wf_free(r.headers[i][1]);
    }
    wf_buf_free(&r.body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fmt_float),
        cmocka_unit_test(test_json_str),
        cmocka_unit_test_setup_teardown(test_routes_and_params, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_limits_and_chunked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gzip_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gzip_response, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keep_alive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_budget_shed, shed_setup, teardown),
        cmocka_unit_test(test_retry_later_resp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
