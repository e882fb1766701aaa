/*
 * test_proxy_inbound.c - starts the real `weft proxy` in front of a small HTTP/1.1 server
 * (test_proxy_common.h) and drives its inbound listener with curl and raw sockets:
 * forwarding, body framing both ways, keep-alive reuse, pipelining order,
 * Expect: 100-continue, smuggling probes, upstream failures, 10 MB bodies, the admin
 * endpoints and counters, and clean stops by SIGTERM and POST /quitquitquit.
 */
#include "test_proxy_common.h"

typedef struct {
    upstream_t up;
    proxy_t px;
} fx_t;

static int setup(void **state)
{
    fx_t *f = wf_calloc(1, sizeof(*f));
    upstream_start(&f->up, "app");
    proxy_start(&f->px, f->up.port);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    proxy_stop(&f->px);
    upstream_stop(&f->up);
    wf_free(f);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Tests */

static void test_curl_get_and_headers(void **state)
{
    fx_t *f = *state;
    char cmd[512], out[8192];
    snprintf(cmd, sizeof(cmd), "curl -s -w ' %%{http_code}' http://127.0.0.1:%d/hello",
             f->px.inbound);
    assert_int_equal(run_cmd(cmd, out, sizeof(out)), 0);
    assert_string_equal(out, "hello world 200");

    /* What the app sees: the head re-serialised, X-Forwarded-*, a generated x-request-id, no
     * hop-by-hop fields. */
    snprintf(cmd, sizeof(cmd),
             "curl -s -H 'X-Forwarded-For: 10.1.2.3' -H 'Keep-Alive: timeout=5' "
             "-H 'Connection: keep-alive, X-Secret' -H 'X-Secret: 1' "
             "http://127.0.0.1:%d/headers",
             f->px.inbound);
    assert_int_equal(run_cmd(cmd, out, sizeof(out)), 0);
    const char *start = "GET /headers HTTP/1.1\r\nHost: 127.0.0.1:";
    assert_true(strncmp(out, start, strlen(start)) == 0);
    assert_non_null(strstr(out, "\r\nX-Forwarded-For: 10.1.2.3, 127.0.0.1\r\n"));
    assert_non_null(strstr(out, "\r\nX-Forwarded-Proto: http\r\n"));
    char rid[64];
    assert_non_null(find_hdr(out, "x-request-id", rid, sizeof(rid)));
    assert_int_equal(strlen(rid), 36);
    assert_int_equal(rid[14], '4');
    assert_null(strcasestr(out, "keep-alive"));
    assert_null(strcasestr(out, "x-secret"));

    /* A request id that came in is kept. */
    snprintf(cmd, sizeof(cmd), "curl -s -H 'x-request-id: abc-123' http://127.0.0.1:%d/headers",
             f->px.inbound);
    assert_int_equal(run_cmd(cmd, out, sizeof(out)), 0);
    assert_non_null(find_hdr(out, "x-request-id", rid, sizeof(rid)));
    assert_string_equal(rid, "abc-123");

    /* The app's status passes through; a chunked response stays chunked and intact. */
    resp_t rs;
    assert_int_equal(
        request(f->px.inbound, "GET /status/404 HTTP/1.1\r\nHost: a\r\n\r\n", NULL, 0, &rs), 404);
    assert_true(body_is(&rs, "nope", 4));
    resp_free(&rs);
    assert_int_equal(
        request(f->px.inbound, "GET /chunked HTTP/1.1\r\nHost: a\r\n\r\n", NULL, 0, &rs), 200);
    char v[32];
    assert_non_null(find_hdr(rs.head, "Transfer-Encoding", v, sizeof(v)));
    assert_true(rs.complete);
    assert_true(body_is(&rs, "chunk1chunk2-end", 16));
    resp_free(&rs);
}

static void test_post_bodies_echo(void **state)
{
    fx_t *f = *state;
    uint8_t body[70000];
    uint64_t seed = 7;
    for (size_t i = 0; i < sizeof(body); i++) {
        body[i] = (uint8_t)wt_rand(&seed);
    }
    resp_t rs;
    char head[256];
    snprintf(head, sizeof(head), "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: %zu\r\n\r\n",
             sizeof(body));
    assert_int_equal(request(f->px.inbound, head, body, sizeof(body), &rs), 200);
    assert_true(body_is(&rs, body, sizeof(body)));
    resp_free(&rs);

    /* Chunked request body, sent in pieces with a chunk extension and a trailer. */
    int fd = tcp_connect(f->px.inbound);
    assert_true(send_str(fd, "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "5;ext=1\r\nhello\r\n"));
    usleep(20 * 1000);
    assert_true(send_str(fd, "1\r\n \r\n"));
    usleep(20 * 1000);
    assert_true(send_str(fd, "5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n"));
    rd_t r;
    rd_init(&r, fd);
    assert_true(read_response(&r, &rs));
    assert_int_equal(rs.status, 200);
    assert_true(body_is(&rs, "hello world", 11));
    resp_free(&rs);
    rd_free(&r);
    close(fd);

    /* HTTP/1.0 client: answered, then the connection closes. */
    fd = tcp_connect(f->px.inbound);
    assert_true(send_str(fd, "GET /hello HTTP/1.0\r\n\r\n"));
    rd_init(&r, fd);
    assert_true(read_response(&r, &rs));
    assert_int_equal(rs.status, 200);
    assert_true(body_is(&rs, "hello world", 11));
    assert_true(rd_closed(&r));
    resp_free(&rs);
    rd_free(&r);
    close(fd);
}

/* HEAD: the Content-Length of the GET's content passes through, no content, and the
 * connection carries the next request. */
static void test_head_request(void **state)
{
    fx_t *f = *state;
    int fd = tcp_connect(f->px.inbound);
    assert_true(send_str(fd, "HEAD /hello HTTP/1.1\r\nHost: a\r\n\r\n"));
    rd_t r;
    rd_init(&r, fd);
    char *head = rd_until(&r, "\r\n\r\n");
    assert_non_null(head);
    assert_true(strncmp(head, "HTTP/1.1 200 ", 13) == 0);
    char v[32];
    assert_non_null(find_hdr(head, "Content-Length", v, sizeof(v)));
    assert_string_equal(v, "11");
    wf_free(head);
    assert_true(send_str(fd, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n"));
    resp_t rs;
    assert_true(read_response(&r, &rs));
    assert_int_equal(rs.status, 200);
    assert_true(body_is(&rs, "hello world", 11));
    resp_free(&rs);
    rd_free(&r);
    close(fd);
}

static void test_keepalive_reuse_and_pipelining(void **state)
{
    fx_t *f = *state;
    char reused[128];
    snprintf(reused, sizeof(reused), "weft_proxy_upstream_rq_reused_total");
    double reused0 = stat_value(f->px.admin, reused);
    assert_true(reused0 >= 0);
    int before_conns = atomic_load(&f->up.conns_total);
    int before_reqs = atomic_load(&f->up.requests);
    int fd = tcp_connect(f->px.inbound);
    rd_t r;
    rd_init(&r, fd);
    resp_t rs;
    for (int i = 0; i < 5; i++) {
        char req[128], exp[16];
        snprintf(exp, sizeof(exp), "req-%d", i);
        snprintf(req, sizeof(req),
                 "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: %zu\r\n\r\n%s", strlen(exp),
                 exp);
        assert_true(send_str(fd, req));
        assert_true(read_response(&r, &rs));
        assert_int_equal(rs.status, 200);
        assert_true(body_is(&rs, exp, strlen(exp)));
        resp_free(&rs);
    }
    /* Pipelined: three requests in one write, answered in order on the same connection. */
    assert_true(send_str(fd, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\none"
                             "GET /sleep HTTP/1.1\r\nHost: a\r\n\r\n"
                             "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nthree"));
    assert_true(read_response(&r, &rs));
    assert_true(body_is(&rs, "one", 3));
    resp_free(&rs);
    assert_true(read_response(&r, &rs));
    assert_true(body_is(&rs, "slept", 5));
    resp_free(&rs);
    assert_true(read_response(&r, &rs));
    assert_true(body_is(&rs, "three", 5));
    resp_free(&rs);
    rd_free(&r);
    close(fd);
    int conns = atomic_load(&f->up.conns_total) - before_conns;
    int reqs = atomic_load(&f->up.requests) - before_reqs;
    assert_int_equal(reqs, 8);
    /* One downstream connection lives on one worker, whose pool holds at most one upstream
     * connection for all eight (none new when an earlier test left one idle there); every
     * request but a first connect went on a reused connection. */
    assert_true(conns <= 1);
    assert_int_equal(stat_value(f->px.admin, reused) - reused0, 8 - conns);
}

static void test_expect_continue(void **state)
{
    fx_t *f = *state;
    int fd = tcp_connect(f->px.inbound);
    assert_true(send_str(fd, "POST /headers HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
                             "Expect: 100-continue\r\n\r\n"));
    rd_t r;
    rd_init(&r, fd);
    char *interim = rd_until(&r, "\r\n\r\n");
    assert_non_null(interim);
    assert_string_equal(interim, "HTTP/1.1 100 Continue\r\n\r\n");
    wf_free(interim);
    assert_true(send_str(fd, "data"));
    resp_t rs;
    assert_true(read_response(&r, &rs));
    assert_int_equal(rs.status, 200);
    wf_buf_cstr(&rs.body);
    /* The proxy answered the expectation itself: the app is not asked again. */
    assert_null(strcasestr((const char *)rs.body.data, "expect"));
    assert_non_null(strstr((const char *)rs.body.data, "Content-Length: 4\r\n"));
    resp_free(&rs);
    rd_free(&r);
    close(fd);
}

static void test_smuggling_probe(void **state)
{
    fx_t *f = *state;
    int before = atomic_load(&f->up.requests);
    const char *c4 = "weft_proxy_requests_total{response_code_class=\"4xx\"}";
    const char *c2 = "weft_proxy_requests_total{response_code_class=\"2xx\"}";
    double bad0 = stat_value(f->px.admin, c4), ok0 = stat_value(f->px.admin, c2);
    static const char *const probes[] = {
        ("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n"
         "\r\n0\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n"),
        "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd",
        "GET /hello HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
        int fd = tcp_connect(f->px.inbound);
        assert_true(send_str(fd, probes[i]));
        rd_t r;
        rd_init(&r, fd);
        resp_t rs;
        assert_true(read_response(&r, &rs));
        assert_int_equal(rs.status, 400);
        char v[32];
        assert_non_null(find_hdr(rs.head, "connection", v, sizeof(v)));
        assert_string_equal(v, "close");
        assert_true(rd_closed(&r));
        resp_free(&rs);
        rd_free(&r);
        close(fd);
    }
    /* A bad chunk size in the body, after the head went upstream: 400 and closed. */
    int fd = tcp_connect(f->px.inbound);
    assert_true(send_str(fd, "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "zz\r\nhello\r\n0\r\n\r\n"));
    rd_t r;
    rd_init(&r, fd);
    resp_t rs;
    assert_true(read_response(&r, &rs));
    assert_int_equal(rs.status, 400);
    assert_true(rd_closed(&r));
    resp_free(&rs);
    rd_free(&r);
    close(fd);
    /* Four refusals, no success: the smuggled GETs were never answered. At most the last
     * request's head reached the app (its body was refused after it had been sent on). */
    assert_int_equal(stat_value(f->px.admin, c4) - bad0, 4);
    assert_int_equal(stat_value(f->px.admin, c2) - ok0, 0);
    usleep(100 * 1000);
    assert_true(atomic_load(&f->up.requests) - before <= 1);
}

static void test_upstream_reset_mid_body(void **state)
{
    fx_t *f = *state;
    int fd = tcp_connect(f->px.inbound);
    assert_true(send_str(fd, "GET /reset HTTP/1.1\r\nHost: a\r\n\r\n"));
    rd_t r;
    rd_init(&r, fd);
    char *head = rd_until(&r, "\r\n\r\n");
    assert_non_null(head);
    assert_true(strncmp(head, "HTTP/1.1 200 ", 13) == 0);
    wf_free(head);
    /* 100 of the 1000 announced bytes, then the proxy closes the connection. */
    while (rd_fill(&r)) {
    }
    assert_int_equal(r.b.len - r.pos, 100);
    rd_free(&r);
    close(fd);
}

static void test_big_body_curl(void **state)
{
    fx_t *f = *state;
    char *dir = wt_tmpdir("pxbig");
    char in[4200], out[4200], cmd[9000], res[256];
    snprintf(in, sizeof(in), "%s/in.bin", dir);
    snprintf(out, sizeof(out), "%s/out.bin", dir);
    FILE *fp = fopen(in, "wb");
    assert_non_null(fp);
    uint64_t seed = 99;
    uint8_t block[65536];
    for (int i = 0; i < 160; i++) { /* 10 MiB */
        for (size_t j = 0; j < sizeof(block); j++) {
            block[j] = (uint8_t)wt_rand(&seed);
        }
        fwrite(block, 1, sizeof(block), fp);
    }
    fclose(fp);
    /* curl sends Expect: 100-continue for a body this large. */
    snprintf(cmd, sizeof(cmd),
             "curl -s -o %s -w '%%{http_code} %%{size_upload} %%{size_download}' "
             "--data-binary @%s -H 'Content-Type: application/octet-stream' "
             "http://127.0.0.1:%d/echo",
             out, in, f->px.inbound);
    assert_int_equal(run_cmd(cmd, res, sizeof(res)), 0);
    assert_string_equal(res, "200 10485760 10485760");
    size_t la = 0, lb = 0;
    char *a = wt_read_file(in, &la);
    char *b = wt_read_file(out, &lb);
    assert_int_equal(la, lb);
    assert_int_equal(memcmp(a, b, la), 0);
    wf_free(a);
    wf_free(b);
    /* Chunked upload of the same file. */
    snprintf(cmd, sizeof(cmd),
             "curl -s -o %s -w '%%{http_code}' -H 'Transfer-Encoding: chunked' "
             "--data-binary @%s http://127.0.0.1:%d/echo",
             out, in, f->px.inbound);
    assert_int_equal(run_cmd(cmd, res, sizeof(res)), 0);
    assert_string_equal(res, "200");
    assert_int_equal(wt_du_bytes(dir), 2 * 10485760);
    a = wt_read_file(in, &la);
    b = wt_read_file(out, &lb);
    assert_int_equal(la, lb);
    assert_int_equal(memcmp(a, b, la), 0);
    wf_free(a);
    wf_free(b);
    wt_rm_rf(dir);
    wf_free(dir);
}

typedef struct {
    int fd;
    size_t len;
    bool ok;
} sender_t;

static void *send_body(void *arg)
{
    sender_t *s = arg;
    uint8_t block[65536];
    memset(block, 'b', sizeof(block));
    s->ok = true;
    for (size_t off = 0; off < s->len && s->ok; off += sizeof(block)) {
        s->ok = send_all(s->fd, block, sizeof(block));
    }
    return NULL;
}

/* A side that does not read stops the proxy from reading the other side: the proxy's memory
 * stays far below the 128 MiB in flight, in both directions. */
static void test_backpressure(void **state)
{
    fx_t *f = *state;
    const size_t mib128 = (size_t)128 << 20;
    const long bound_kib = 48 * 1024;
    long base = rss_kib(f->px.pid);
    assert_true(base > 0);

    /* Response direction: the client reads nothing for a while. */
    int fd = tcp_connect(f->px.inbound);
    assert_true(send_str(fd, "GET /big?mb=128 HTTP/1.1\r\nHost: a\r\n\r\n"));
    usleep(500 * 1000);
    long stalled = rss_kib(f->px.pid);
    rd_t r;
    rd_init(&r, fd);
    char *head = rd_until(&r, "\r\n\r\n");
    assert_non_null(head);
    assert_non_null(strstr(head, "Content-Length: 134217728\r\n"));
    wf_free(head);
    size_t got = 0;
    bool pattern_ok = true;
    while (got < mib128) {
        if (r.pos == r.b.len) {
            r.pos = r.b.len = 0;
            if (!rd_fill(&r)) {
                break;
            }
        }
        for (; r.pos < r.b.len && got < mib128; r.pos++, got++) {
            pattern_ok = pattern_ok && r.b.data[r.pos] == (uint8_t)(got % 251);
        }
    }
    rd_free(&r);
    close(fd);
    assert_int_equal(got, mib128);
    assert_true(pattern_ok);
    fprintf(stderr, "rss: base %ld KiB, response stalled %ld KiB\n", base, stalled);
    assert_true(stalled - base < bound_kib);

    /* Request direction: the app reads nothing for 600 ms while the client keeps sending. */
    fd = tcp_connect(f->px.inbound);
    char req[128];
    snprintf(req, sizeof(req), "POST /slowcount HTTP/1.1\r\nHost: a\r\nContent-Length: %zu\r\n\r\n",
             mib128);
    assert_true(send_str(fd, req));
    sender_t snd = {.fd = fd, .len = mib128};
    pthread_t t;
    pthread_create(&t, NULL, send_body, &snd);
    usleep(400 * 1000);
    stalled = rss_kib(f->px.pid);
    rd_init(&r, fd);
    resp_t rs;
    assert_true(read_response(&r, &rs));
    pthread_join(t, NULL);
    assert_true(snd.ok);
    assert_int_equal(rs.status, 200);
    assert_true(body_is(&rs, "134217728", 9));
    resp_free(&rs);
    rd_free(&r);
    close(fd);
    fprintf(stderr, "rss: request stalled %ld KiB\n", stalled);
    assert_true(stalled - base < bound_kib);
}

static void test_admin_and_counters(void **state)
{
    fx_t *f = *state;
    char *body = NULL;
    assert_int_equal(wt_http(f->px.admin, "GET", "/ready", NULL, 0, &body), 200);
    assert_string_equal(body, "LIVE\n");
    wf_free(body);
    assert_int_equal(wt_http(f->px.admin, "GET", "/config_dump", NULL, 0, &body), 200);
    assert_string_equal(body, "{}\n");
    wf_free(body);
    assert_int_equal(wt_http(f->px.admin, "GET", "/clusters", NULL, 0, &body), 200);
    char line[128];
    snprintf(line, sizeof(line), "inbound|%d||::127.0.0.1:%d::health_flags::healthy\n", f->up.port,
             f->up.port);
    assert_non_null(strstr(body, line));
    wf_free(body);
    assert_int_equal(wt_http(f->px.admin, "GET", "/nope", NULL, 0, &body), 404);
    wf_free(body);
    assert_int_equal(wt_http(f->px.admin, "GET", "/quitquitquit", NULL, 0, &body), 405);
    wf_free(body);

    const char *c2 = "weft_proxy_requests_total{response_code_class=\"2xx\"}";
    const char *c4 = "weft_proxy_requests_total{response_code_class=\"4xx\"}";
    const char *cx = "weft_proxy_downstream_cx_total";
    double ok0 = stat_value(f->px.admin, c2), bad0 = stat_value(f->px.admin, c4);
    double cx0 = stat_value(f->px.admin, cx);
    assert_true(ok0 >= 0 && bad0 >= 0 && cx0 >= 0);
    resp_t rs;
    for (int i = 0; i < 7; i++) {
        assert_int_equal(
            request(f->px.inbound, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n", NULL, 0, &rs), 200);
        resp_free(&rs);
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(
            request(f->px.inbound, "GET /status/404 HTTP/1.1\r\nHost: a\r\n\r\n", NULL, 0, &rs),
            404);
        resp_free(&rs);
    }
    assert_int_equal(stat_value(f->px.admin, c2) - ok0, 7);
    assert_int_equal(stat_value(f->px.admin, c4) - bad0, 3);
    assert_int_equal(stat_value(f->px.admin, cx) - cx0, 10);
    /* The clients have closed; the proxy sees it a moment later. */
    double active = -1;
    for (int i = 0; i < 500; i++) {
        active = stat_value(f->px.admin, "weft_proxy_downstream_cx_active");
        if (active == 0) {
            break;
        }
        usleep(10 * 1000);
    }
    assert_int_equal(active, 0);

    /* promtool (Debian's prometheus package) accepts the exposition when it is installed. */
    char cmd[256], out[4096];
    if (system("command -v promtool >/dev/null 2>&1") == 0) {
        snprintf(cmd, sizeof(cmd),
                 "curl -s http://127.0.0.1:%d/stats/prometheus | promtool check metrics 2>&1",
                 f->px.admin);
        int st = run_cmd(cmd, out, sizeof(out));
        /* promtool exits 3 on lint problems. The one allowed is Istio's own metric name, fixed
         * by the contract (Istio's output draws it too); any other complaint fails. */
        bool ok = st == 0;
        if (st == 3) {
            static const char allowed[] =
                "istio_request_duration_milliseconds use base unit \"seconds\" instead of "
                "\"milliseconds\"";
            ok = true;
            for (char *save = NULL, *ln = strtok_r(out, "\n", &save); ln != NULL;
                 ln = strtok_r(NULL, "\n", &save)) {
                if (strcmp(ln, allowed) != 0) {
                    fprintf(stderr, "promtool: %s\n", ln);
                    ok = false;
                }
            }
        } else if (!ok) {
            fprintf(stderr, "promtool: %s\n", out);
        }
        assert_true(ok);
    }
}

static void test_outbound_without_snapshot(void **state)
{
    fx_t *f = *state;
    resp_t rs;
    /* No snapshot, no route: 404 with response flag NR and an empty body, as Envoy. */
    assert_int_equal(
        request(f->px.outbound, "GET /x HTTP/1.1\r\nHost: reviews:9080\r\n\r\n", NULL, 0, &rs),
        404);
    assert_int_equal(rs.body.len, 0);
    resp_free(&rs);
}

static void test_cli_flags(void **state)
{
    char cmd[512], out[8192];
    snprintf(cmd, sizeof(cmd), "%s proxy --help 2>&1", wt_weft_bin());
    assert_int_equal(run_cmd(cmd, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "--app-port"));
    assert_non_null(strstr(out, "--request-headers-timeout"));
    snprintf(cmd, sizeof(cmd), "%s proxy --servic x --app-port 1 2>&1", wt_weft_bin());
    assert_int_equal(run_cmd(cmd, out, sizeof(out)), 2);
    assert_non_null(strstr(out, "did you mean --service?"));
    snprintf(cmd, sizeof(cmd), "%s proxy --service x 2>&1", wt_weft_bin());
    assert_int_equal(run_cmd(cmd, out, sizeof(out)), 2);
    assert_non_null(strstr(out, "--app-port"));
    snprintf(cmd, sizeof(cmd),
             "%s proxy --service x --app-port 1 --config /nonexistent/s.json 2>&1", wt_weft_bin());
    assert_int_equal(run_cmd(cmd, out, sizeof(out)), 2);
    assert_non_null(strstr(out, "No such file"));
    /* --inbound off: a sidecar with only an outbound listener (no --app-port needed), never a
     * proxy with no listener at all nor a gateway. */
    snprintf(cmd, sizeof(cmd), "%s proxy --service x --inbound off --outbound off 2>&1",
             wt_weft_bin());
    assert_int_equal(run_cmd(cmd, out, sizeof(out)), 2);
    assert_non_null(strstr(out, "--inbound off is for a sidecar with an --outbound listener"));
    snprintf(cmd, sizeof(cmd), "%s proxy --service x --mode gateway --inbound off 2>&1",
             wt_weft_bin());
    assert_int_equal(run_cmd(cmd, out, sizeof(out)), 2);
    assert_non_null(strstr(out, "--inbound off is for a sidecar"));
    int op = wt_free_port(), ap = wt_free_port();
    snprintf(cmd, sizeof(cmd),
             "%s proxy --service x --inbound off --outbound 127.0.0.1:%d --admin 127.0.0.1:%d "
             "> /dev/null 2>&1 & echo $!",
             wt_weft_bin(), op, ap);
    assert_int_equal(run_cmd(cmd, out, sizeof(out)), 0);
    pid_t only_out = (pid_t)atoi(out);
    assert_true(only_out > 0);
    assert_true(wt_wait_port(op, 10000));
    assert_true(wt_wait_port(ap, 10000)); /* the admin listener opens after the workers' */
    assert_int_equal(wt_http(ap, "GET", "/ready", NULL, 0, NULL), 200);
    kill(only_out, SIGTERM);
    /* A listener that cannot be bound: exit 1, nothing left running. */
    int busy = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    assert_int_equal(bind(busy, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(busy, 1), 0);
    getsockname(busy, (struct sockaddr *)&a, &len);
    snprintf(cmd, sizeof(cmd),
             "%s proxy --service x --app-port 1 --inbound 127.0.0.1:%d --outbound off "
             "--admin 127.0.0.1:%d 2>&1",
             wt_weft_bin(), ntohs(a.sin_port), wt_free_port());
    assert_int_equal(run_cmd(cmd, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "address already in use"));
    close(busy);
}

static void test_upstream_down_and_quit(void **state)
{
    (void)state;
    proxy_t p;
    proxy_start(&p, wt_free_port()); /* nothing listens there */
    resp_t rs;
    assert_int_equal(request(p.inbound, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n", NULL, 0, &rs),
                     503);
    const char *msg = "upstream connect error or disconnect/reset before headers. reset reason: "
                      "connection failure";
    assert_true(body_is(&rs, msg, strlen(msg)));
    resp_free(&rs);
    /* A body announced but not read yet: the answer closes the connection. */
    int fd = tcp_connect(p.inbound);
    assert_true(send_str(fd, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n"));
    rd_t r;
    rd_init(&r, fd);
    assert_true(read_response(&r, &rs));
    assert_int_equal(rs.status, 503);
    assert_true(rd_closed(&r));
    resp_free(&rs);
    rd_free(&r);
    close(fd);
    assert_int_equal(stat_value(p.admin, "weft_proxy_requests_total{response_code_class=\"5xx\"}"),
                     2);
    char series[128];
    snprintf(series, sizeof(series), "weft_proxy_upstream_cx_connect_fail_total{cluster_name=\"");
    char *body = NULL;
    assert_int_equal(wt_http(p.admin, "GET", "/stats/prometheus", NULL, 0, &body), 200);
    assert_non_null(strstr(body, series));
    wf_free(body);

    assert_int_equal(wt_http(p.admin, "POST", "/quitquitquit", "", 0, &body), 200);
    assert_string_equal(body, "OK\n");
    wf_free(body);
    int st = wt_wait(p.pid, 20000);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    wt_rm_rf(p.dir);
    wf_free(p.dir);
}

static void test_slowloris_and_idle_timeouts(void **state)
{
    upstream_t up;
    upstream_start(&up, "app");
    proxy_t p;
    static const char *const extra[] = {"--request-headers-timeout", "300ms", "--idle-timeout",
                                        "600ms", NULL};
    proxy_start_with(&p, up.port, NULL, "1", extra);
    /* A head trickled a byte at a time is cut off 300 ms after its first byte: 408, closed. */
    int fd = tcp_connect(p.inbound);
    const char *head = "GET /hello HTTP/1.1\r\nHost: a\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaa";
    size_t sent = 0;
    for (; head[sent] != '\0'; sent++) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 0) > 0) {
            break; /* the proxy has answered */
        }
        assert_true(send_all(fd, head + sent, 1));
        usleep(50 * 1000);
    }
    assert_true(sent < strlen(head));
    rd_t r;
    rd_init(&r, fd);
    resp_t rs;
    assert_true(read_response(&r, &rs));
    assert_int_equal(rs.status, 408);
    assert_true(rd_closed(&r));
    resp_free(&rs);
    rd_free(&r);
    close(fd);
    /* A keep-alive connection left idle is closed without an answer; one in use is not. */
    fd = tcp_connect(p.inbound);
    rd_init(&r, fd);
    assert_true(send_str(fd, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n"));
    assert_true(read_response(&r, &rs));
    assert_int_equal(rs.status, 200);
    resp_free(&rs);
    assert_true(rd_closed(&r));
    rd_free(&r);
    close(fd);
    assert_int_equal(stat_value(p.admin, "weft_proxy_requests_total{response_code_class=\"4xx\"}"),
                     1);
    proxy_stop(&p);
    upstream_stop(&up);
}

static void test_sigterm_finishes_in_flight(void **state)
{
    upstream_t up;
    upstream_start(&up, "app");
    proxy_t p;
    proxy_start(&p, up.port);
    int fd = tcp_connect(p.inbound);
    assert_true(send_str(fd, "GET /sleep HTTP/1.1\r\nHost: a\r\n\r\n"));
    /* An idle keep-alive connection is closed at once when draining starts. */
    int idle = tcp_connect(p.inbound);
    for (int i = 0; i < 100 && atomic_load(&up.requests) == 0; i++) {
        usleep(5 * 1000);
    }
    assert_int_equal(atomic_load(&up.requests), 1);
    kill(p.pid, SIGTERM);
    rd_t r;
    rd_init(&r, fd);
    resp_t rs;
    assert_true(read_response(&r, &rs));
    assert_int_equal(rs.status, 200);
    assert_true(body_is(&rs, "slept", 5));
    char v[32];
    assert_non_null(find_hdr(rs.head, "connection", v, sizeof(v)));
    assert_string_equal(v, "close");
    assert_true(rd_closed(&r));
    resp_free(&rs);
    rd_free(&r);
    close(fd);
    rd_init(&r, idle);
    assert_true(rd_closed(&r));
    rd_free(&r);
    close(idle);
    int st = wt_wait(p.pid, 20000);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    /* New connections are refused once it is gone. */
    assert_int_equal(tcp_connect(p.inbound), -1);
    wt_rm_rf(p.dir);
    wf_free(p.dir);
    upstream_stop(&up);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_curl_get_and_headers),
        cmocka_unit_test(test_post_bodies_echo),
        cmocka_unit_test(test_head_request),
        cmocka_unit_test(test_keepalive_reuse_and_pipelining),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_smuggling_probe),
        cmocka_unit_test(test_upstream_reset_mid_body),
        cmocka_unit_test(test_big_body_curl),
        cmocka_unit_test(test_backpressure),
        cmocka_unit_test(test_admin_and_counters),
        cmocka_unit_test(test_outbound_without_snapshot),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    const struct CMUnitTest alone[] = {
        cmocka_unit_test(test_cli_flags),
        cmocka_unit_test(test_upstream_down_and_quit),
        cmocka_unit_test(test_slowloris_and_idle_timeouts),
        cmocka_unit_test(test_sigterm_finishes_in_flight),
    };
    rc |= cmocka_run_group_tests(alone, NULL, NULL);
    return rc;
}
