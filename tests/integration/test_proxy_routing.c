/*
 * test_proxy_routing.c - the per-route behaviour of a real `weft proxy` (outbound listener,
 * config snapshot file) against real test upstreams: route timeouts (504 UT), per-try
 * timeouts with retries, retries on 5xx with the request body sent again, retries running out
 * (URX), retries on resets, fault delays (DI) and delayed aborts (FI), request and response
 * header operations of the route and of the destination, and CORS. Each case also checks the
 * response_flags the proxy recorded in istio_requests_total.
 */
#include "test_proxy_common.h"

#include "wf_clock.h"

typedef struct {
    upstream_t up;
    upstream_t shadow; /* the mirror cluster's endpoint */
    int hole_fd;       /* a listener whose full accept queue drops new connects' SYNs */
    int hole_fill[2];  /* the connections that fill it */
    int hole_port;
    proxy_t px;
    char *dir;
} rfx_t;

static int setup(void **state)
{
    rfx_t *f = wf_calloc(1, sizeof(*f));
    upstream_start(&f->up, "v1");
    upstream_start(&f->shadow, "shadow");
    /* A connect that never completes: backlog 0 holds one connection; later SYNs are dropped
     * while the accept queue is full (nothing accepts). */
    f->hole_fd = listen_loopback(0, &f->hole_port);
    struct sockaddr_in ha = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->hole_port)};
    ha.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < 2; i++) {
        f->hole_fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        (void)connect(f->hole_fill[i], (struct sockaddr *)&ha, sizeof(ha));
    }
    usleep(50 * 1000);
    f->dir = wt_tmpdir("pxroute");
    char path[4200];
    snprintf(path, sizeof(path), "%s/snapshot.json", f->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fprintf(fp,
            "{\"schema\": 1, \"version\": 3,\n"
            " \"proxy\": {\"service\": \"productpage\", \"version\": \"v1\"},\n"
            " \"virtual_hosts\": [{\"host\": \"reviews\", \"port\": 9080, \"routes\": [\n"
            "  {\"name\": \"timeout\", \"match\": [{\"uri\": {\"prefix\": \"/nap\"}, "
            "\"headers\": {\"x-case\": {\"exact\": \"timeout\"}}}],\n"
            "   \"timeout_ms\": 300, \"retries\": {\"attempts\": 0},\n"
            "   \"route\": [{\"destination\": {\"host\": \"reviews\"}}]},\n"
            "  {\"name\": \"pertry\", \"match\": [{\"headers\": {\"x-case\": {\"exact\": "
            "\"pertry\"}}}],\n"
            "   \"retries\": {\"attempts\": 1, \"per_try_timeout_ms\": 200, \"retry_on\": "
            "\"5xx\"},\n"
            "   \"route\": [{\"destination\": {\"host\": \"reviews\"}}]},\n"
            "  {\"name\": \"gw\", \"match\": [{\"headers\": {\"x-case\": {\"exact\": \"gw\"}}}],\n"
            "   \"retries\": {\"attempts\": 2, \"retry_on\": \"gateway-error\"},\n"
            "   \"route\": [{\"destination\": {\"host\": \"reviews\"}}]},\n"
            "  {\"name\": \"codes\", \"match\": [{\"headers\": {\"x-case\": {\"exact\": "
            "\"codes\"}}}],\n"
            "   \"retries\": {\"attempts\": 2, \"retry_on\": \"409,503\"},\n"
            "   \"route\": [{\"destination\": {\"host\": \"reviews\"}}]},\n"
            "  {\"name\": \"authority\", \"match\": [{\"authority\": {\"exact\": "
            "\"reviews:9080\"}, \"headers\": {\"x-case\": {\"exact\": \"authority\"}}}],\n"
            "   \"rewrite\": {\"authority\": \"reviews.internal\"},\n"
            "   \"route\": [{\"destination\": {\"host\": \"reviews\"}}]},\n"
            "  {\"name\": \"retry5xx\", \"match\": [{\"uri\": {\"prefix\": \"/flaky\"}}],\n"
            "   \"retries\": {\"attempts\": 3, \"retry_on\": \"5xx\"},\n"
            "   \"route\": [{\"destination\": {\"host\": \"reviews\"}}]},\n"
            "  {\"name\": \"reset\", \"match\": [{\"uri\": {\"exact\": \"/drop\"}}],\n"
            "   \"retries\": {\"attempts\": 2, \"retry_on\": \"reset\"},\n"
            "   \"route\": [{\"destination\": {\"host\": \"reviews\"}}]},\n"
            "  {\"name\": \"delay\", \"match\": [{\"headers\": {\"x-case\": {\"exact\": "
            "\"delay\"}}}],\n"
            "   \"fault\": {\"delay\": {\"fixed_delay_ms\": 300, \"percentage\": 100}},\n"
            "   \"route\": [{\"destination\": {\"host\": \"reviews\"}}]},\n"
            "  {\"name\": \"delayabort\", \"match\": [{\"headers\": {\"x-case\": {\"exact\": "
            "\"delayabort\"}}}],\n"
            "   \"fault\": {\"delay\": {\"fixed_delay_ms\": 200, \"percentage\": 100},\n"
            "             \"abort\": {\"http_status\": 418, \"percentage\": 100}},\n"
            "   \"route\": [{\"destination\": {\"host\": \"reviews\"}}]},\n"
            "  {\"name\": \"headers\", \"match\": [{\"headers\": {\"x-case\": {\"exact\": "
            "\"headers\"}}}],\n"
            "   \"headers\": {\"request\": {\"set\": {\"x-route\": \"r\", \"x-both\": "
            "\"route\"},\n"
            "                              \"add\": {\"x-added\": \"a\"},\n"
            "                              \"remove\": [\"x-secret\"]},\n"
            "               \"response\": {\"set\": {\"x-resp\": \"1\"}, \"remove\": "
            "[\"content-type\"]}},\n"
            "   \"route\": [{\"destination\": {\"host\": \"reviews\"},\n"
            "              \"headers\": {\"request\": {\"set\": {\"x-dest\": \"d\", "
            "\"x-both\": \"dest\"}}}}]},\n"
            "  {\"name\": \"cors\", \"match\": [{\"uri\": {\"prefix\": \"/cors\"}}],\n"
            "   \"rewrite\": {\"uri\": \"/who\"},\n"
            "   \"cors_policy\": {\"allow_origins\": [{\"exact\": \"http://ok.example\"}, "
            "{\"prefix\": \"http://pre.\"}],\n"
            "                   \"allow_methods\": [\"GET\", \"POST\"], \"allow_headers\": "
            "[\"x-a\", \"x-b\"],\n"
            "                   \"expose_headers\": [\"x-e\"], \"max_age_ms\": 60000, "
            "\"allow_credentials\": true},\n"
            "   \"route\": [{\"destination\": {\"host\": \"reviews\"}}]},\n"
            "  {\"name\": \"mirror\", \"match\": [{\"uri\": {\"prefix\": \"/mirror\"}}],\n"
            "   \"rewrite\": {\"uri\": \"/echo\"},\n"
            "   \"mirror\": {\"host\": \"ratings\"},\n"
            "   \"route\": [{\"destination\": {\"host\": \"reviews\"}}]},\n"
            "  {\"name\": \"nomirror\", \"match\": [{\"uri\": {\"prefix\": \"/nomirror\"}}],\n"
            "   \"rewrite\": {\"uri\": \"/echo\"},\n"
            "   \"mirror\": {\"host\": \"ratings\"}, \"mirror_percentage\": 0,\n"
            "   \"route\": [{\"destination\": {\"host\": \"reviews\"}}]},\n"
            "  {\"name\": \"default\", \"route\": [{\"destination\": {\"host\": "
            "\"reviews\"}}]}\n"
            " ]},\n"
            " {\"host\": \"blackhole\", \"port\": 9080, \"routes\": [{\"retries\": {\"attempts\": "
            "0},\n"
            "   \"route\": [{\"destination\": {\"host\": \"blackhole\"}}]}]}],\n"
            " \"clusters\": [{\"host\": \"reviews\", \"port\": 9080,\n"
            "   \"endpoints\": [{\"address\": \"127.0.0.1\", \"port\": %d}]},\n"
            "  {\"host\": \"ratings\", \"port\": 9080,\n"
            "   \"endpoints\": [{\"address\": \"127.0.0.1\", \"port\": %d}]},\n"
            "  {\"host\": \"blackhole\", \"port\": 9080,\n"
            "   \"connection_pool\": {\"tcp\": {\"connect_timeout_ms\": 200}},\n"
            "   \"endpoints\": [{\"address\": \"127.0.0.1\", \"port\": %d}]}]}\n",
            f->up.port, f->shadow.port, f->hole_port);
    fclose(fp);
    proxy_start_with(&f->px, wt_free_port(), path, "1", NULL);
    assert_true(wt_wait_port(f->px.outbound, 10000));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    rfx_t *f = *state;
    proxy_stop(&f->px);
    upstream_stop(&f->up);
    upstream_stop(&f->shadow);
    close(f->hole_fill[0]);
    close(f->hole_fill[1]);
    close(f->hole_fd);
    wt_rm_rf(f->dir);
    wf_free(f->dir);
    wf_free(f);
    return 0;
}

/* istio_requests_total (reporter source) for one code and response_flags value. */
static double flagged(int admin, const char *code, const char *flags)
{
    char *body = scrape(admin);
    char c[64], fl[64];
    snprintf(c, sizeof(c), "response_code=\"%s\"", code);
    snprintf(fl, sizeof(fl), "response_flags=\"%s\"", flags);
    const char *labels[] = {c, fl, NULL};
    double v = series(body, "istio_requests_total", labels);
    wf_free(body);
    return v < 0 ? 0 : v;
}

/* Send raw, time it, return the status; body in rs. */
/* libuv's timers count whole milliseconds of its loop clock, which is truncated to the
 * millisecond: a timer can fire up to 1 ms before its duration has passed in real time (seen
 * once under ASan: a 200 ms fault delay answered after 199.x ms). */
#define TIMER_SLACK_MS 1.0

static int timed(int port, const char *raw, const void *body, size_t blen, resp_t *rs, double *ms)
{
    int64_t t0 = wf_mono_ns();
    int st = request(port, raw, body, blen, rs);
    *ms = (double)(wf_mono_ns() - t0) / 1e6;
    return st;
}

static void test_route_timeout(void **state)
{
    rfx_t *f = *state;
    resp_t rs;
    double ms;
    int before = atomic_load(&f->up.requests);
    double ut0 = flagged(f->px.admin, "504", "UT");
    assert_int_equal(timed(f->px.outbound,
                           "GET /nap?ms=3000 HTTP/1.1\r\nHost: reviews:9080\r\nx-case: timeout\r\n"
                           "\r\n",
                           NULL, 0, &rs, &ms),
                     504);
    assert_true(body_is(&rs, "upstream request timeout", 24));
    resp_free(&rs);
    /* The answer cannot come before the timeout; the upstream saw one try. */
    assert_true(ms >= 300 - TIMER_SLACK_MS);
    assert_int_equal(atomic_load(&f->up.requests) - before, 1);
    assert_int_equal(flagged(f->px.admin, "504", "UT") - ut0, 1);
    /* Within the timeout the answer passes. */
    assert_int_equal(request(f->px.outbound,
                             "GET /nap?ms=10 HTTP/1.1\r\nHost: reviews:9080\r\nx-case: timeout\r\n"
                             "\r\n",
                             NULL, 0, &rs),
                     200);
    resp_free(&rs);
}

static void test_per_try_timeout_retries(void **state)
{
    rfx_t *f = *state;
    resp_t rs;
    double ms;
    int before = atomic_load(&f->up.requests);
    double ut0 = flagged(f->px.admin, "504", "UT");
    assert_int_equal(timed(f->px.outbound,
                           "GET /nap?ms=1500 HTTP/1.1\r\nHost: reviews:9080\r\nx-case: pertry\r\n"
                           "\r\n",
                           NULL, 0, &rs, &ms),
                     504);
    resp_free(&rs);
    /* Two tries of 200 ms each, both cut. */
    assert_true(ms >= 400 - TIMER_SLACK_MS);
    for (int i = 0; i < 200 && atomic_load(&f->up.requests) - before < 2; i++) {
        usleep(10 * 1000);
    }
    assert_int_equal(atomic_load(&f->up.requests) - before, 2);
    assert_int_equal(flagged(f->px.admin, "504", "UT") - ut0, 1);
}

static void test_retry_on_5xx_resends_body(void **state)
{
    rfx_t *f = *state;
    resp_t rs;
    atomic_store(&f->up.flaky, 0);
    /* Two 503s, then the third try passes with the same body. */
    assert_int_equal(request(f->px.outbound,
                             "POST /flaky?n=2 HTTP/1.1\r\nHost: reviews:9080\r\n"
                             "Content-Length: 11\r\n\r\n",
                             "hello world", 11, &rs),
                     200);
    assert_true(body_is(&rs, "try 3 body 11", 13));
    resp_free(&rs);
    /* A chunked body too. */
    atomic_store(&f->up.flaky, 0);
    assert_int_equal(request(f->px.outbound,
                             "POST /flaky?n=1 HTTP/1.1\r\nHost: reviews:9080\r\n"
                             "Transfer-Encoding: chunked\r\n\r\n",
                             "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", 26, &rs),
                     200);
    assert_true(body_is(&rs, "try 2 body 11", 13));
    resp_free(&rs);
    /* Retries run out: the last 503 goes to the client, marked URX. */
    atomic_store(&f->up.flaky, 0);
    assert_int_equal(request(f->px.outbound,
                             "GET /flaky?n=9 HTTP/1.1\r\nHost: reviews:9080\r\n\r\n", NULL, 0, &rs),
                     503);
    assert_true(body_is(&rs, "try 4 body 0", 12));
    resp_free(&rs);
    assert_int_equal(atomic_load(&f->up.flaky), 4);
    assert_int_equal(flagged(f->px.admin, "503", "URX"), 1);
    assert_int_equal(flagged(f->px.admin, "200", "-") >= 2, 1);
}

/* A body larger than the replay buffer (1 MiB) streamed before the 503 came: not retried. */
static void test_streamed_body_not_retried(void **state)
{
    rfx_t *f = *state;
    resp_t rs;
    size_t n = 3u << 20;
    char *big = wf_malloc(n);
    memset(big, 'b', n);
    atomic_store(&f->up.flaky, 0);
    char head[256];
    snprintf(head, sizeof(head),
             "POST /flaky?n=1 HTTP/1.1\r\nHost: reviews:9080\r\nContent-Length: %zu\r\n\r\n", n);
    assert_int_equal(request(f->px.outbound, head, big, n, &rs), 503);
    char want[64];
    int l = snprintf(want, sizeof(want), "try 1 body %zu", n);
    assert_true(body_is(&rs, want, (size_t)l));
    resp_free(&rs);
    wf_free(big);
    assert_int_equal(atomic_load(&f->up.flaky), 1);
    /* The same request with a small body is retried (the route allows 3). */
    atomic_store(&f->up.flaky, 0);
    assert_int_equal(request(f->px.outbound,
                             "POST /flaky?n=1 HTTP/1.1\r\nHost: reviews:9080\r\n"
                             "Content-Length: 3\r\n\r\nabc",
                             NULL, 0, &rs),
                     200);
    assert_true(body_is(&rs, "try 2 body 3", 12));
    resp_free(&rs);
}

/* gateway-error and listed status codes retry a 503 too; 5xx is not needed for them. */
static void test_retry_on_gateway_error_and_codes(void **state)
{
    rfx_t *f = *state;
    resp_t rs;
    const char *cases[] = {"gw", "codes"};
    for (size_t i = 0; i < 2; i++) {
        atomic_store(&f->up.flaky, 0);
        char raw[256];
        snprintf(raw, sizeof(raw),
                 "GET /flaky?n=2 HTTP/1.1\r\nHost: reviews:9080\r\nx-case: %s\r\n\r\n", cases[i]);
        assert_int_equal(request(f->px.outbound, raw, NULL, 0, &rs), 200);
        assert_true(body_is(&rs, "try 3 body 0", 12));
        resp_free(&rs);
    }
}

/* An authority match, and the authority rewritten towards the upstream. */
static void test_authority_match_and_rewrite(void **state)
{
    rfx_t *f = *state;
    resp_t rs;
    char v[128];
    assert_int_equal(request(f->px.outbound,
                             "GET /headers HTTP/1.1\r\nHost: reviews:9080\r\nx-case: authority\r\n"
                             "\r\n",
                             NULL, 0, &rs),
                     200);
    assert_string_equal(find_hdr(wf_buf_cstr(&rs.body), "host", v, sizeof(v)), "reviews.internal");
    resp_free(&rs);
    /* Another domain of the same virtual host is not this route's authority. */
    assert_int_equal(
        request(f->px.outbound,
                "GET /headers HTTP/1.1\r\nHost: reviews.default:9080\r\nx-case: authority\r\n\r\n",
                NULL, 0, &rs),
        200);
    assert_string_equal(find_hdr(wf_buf_cstr(&rs.body), "host", v, sizeof(v)),
                        "reviews.default:9080");
    resp_free(&rs);
}

/* A client that leaves before its answer: DC; a head over the 64 KiB limit: 431 and close. */
static void test_client_gone_and_huge_head(void **state)
{
    rfx_t *f = *state;
    double dc0 = flagged(f->px.admin, "0", "DC");
    int fd = tcp_connect(f->px.outbound);
    assert_true(fd >= 0);
    assert_true(send_str(fd, "GET /nap?ms=300 HTTP/1.1\r\nHost: reviews:9080\r\n\r\n"));
    usleep(50 * 1000);
    close(fd);
    for (int i = 0; i < 300 && flagged(f->px.admin, "0", "DC") == dc0; i++) {
        usleep(10 * 1000);
    }
    assert_int_equal(flagged(f->px.admin, "0", "DC") - dc0, 1);

    size_t n = 70 * 1024;
    char *big = wf_malloc(n + 128);
    int l = snprintf(big, 128, "GET /who HTTP/1.1\r\nHost: reviews:9080\r\nx-big: ");
    memset(big + l, 'a', n);
    memcpy(big + l + n, "\r\n\r\n", 5);
    resp_t rs;
    assert_int_equal(request(f->px.outbound, big, NULL, 0, &rs), 431);
    assert_non_null(find_hdr(rs.head, "connection", (char[16]){0}, 16));
    resp_free(&rs);
    wf_free(big);
}

/* The cluster's connect timeout (200 ms): 503 UF "connection timeout", no retry (attempts 0). */
static void test_connect_timeout(void **state)
{
    rfx_t *f = *state;
    resp_t rs;
    double ms;
    assert_int_equal(timed(f->px.outbound, "GET /who HTTP/1.1\r\nHost: blackhole:9080\r\n\r\n",
                           NULL, 0, &rs, &ms),
                     503);
    const char *msg = "upstream connect error or disconnect/reset before headers. reset reason: "
                      "connection timeout";
    assert_true(body_is(&rs, msg, strlen(msg)));
    resp_free(&rs);
    assert_true(ms >= 200 - TIMER_SLACK_MS);
    assert_int_equal(flagged(f->px.admin, "503", "UF"), 1);
}

static void test_retry_on_reset(void **state)
{
    rfx_t *f = *state;
    resp_t rs;
    int before = atomic_load(&f->up.requests);
    assert_int_equal(
        request(f->px.outbound, "GET /drop HTTP/1.1\r\nHost: reviews:9080\r\n\r\n", NULL, 0, &rs),
        503);
    assert_non_null(strstr(wf_buf_cstr(&rs.body), "retried and the latest reset reason: "
                                                  "connection termination"));
    resp_free(&rs);
    assert_int_equal(atomic_load(&f->up.requests) - before, 3);
    assert_int_equal(flagged(f->px.admin, "503", "UC,URX"), 1);
}

static void test_fault_delay_and_delayed_abort(void **state)
{
    rfx_t *f = *state;
    resp_t rs;
    double ms;
    assert_int_equal(timed(f->px.outbound,
                           "GET /who HTTP/1.1\r\nHost: reviews:9080\r\nx-case: delay\r\n\r\n", NULL,
                           0, &rs, &ms),
                     200);
    assert_true(body_is(&rs, "v1", 2));
    resp_free(&rs);
    assert_true(ms >= 300 - TIMER_SLACK_MS);
    assert_int_equal(flagged(f->px.admin, "200", "DI"), 1);

    /* A body sent during the delay waits and is forwarded after it. */
    assert_int_equal(request(f->px.outbound,
                             "POST /echo HTTP/1.1\r\nHost: reviews:9080\r\nx-case: delay\r\n"
                             "Content-Length: 4\r\n\r\n",
                             "ping", 4, &rs),
                     200);
    assert_true(body_is(&rs, "ping", 4));
    resp_free(&rs);

    int before = atomic_load(&f->up.requests);
    assert_int_equal(timed(f->px.outbound,
                           "GET /who HTTP/1.1\r\nHost: reviews:9080\r\nx-case: delayabort\r\n\r\n",
                           NULL, 0, &rs, &ms),
                     418);
    assert_true(body_is(&rs, "fault filter abort", 18));
    resp_free(&rs);
    assert_true(ms >= 200 - TIMER_SLACK_MS);
    assert_int_equal(atomic_load(&f->up.requests), before);
    assert_int_equal(flagged(f->px.admin, "418", "DI,FI"), 1);
    /* Nothing went upstream, yet the request went to the route's service: Istio reports that
     * service, with an unknown workload. */
    char *m = scrape(f->px.admin);
    const char *fi[] = {"response_flags=\"DI,FI\"", "destination_service_name=\"reviews\"",
                        "destination_workload=\"unknown\"", NULL};
    assert_true(series(m, "istio_requests_total", fi) == 1);
    wf_free(m);
}

static void test_header_operations(void **state)
{
    rfx_t *f = *state;
    resp_t rs;
    assert_int_equal(request(f->px.outbound,
                             "GET /headers HTTP/1.1\r\nHost: reviews:9080\r\nx-case: headers\r\n"
                             "x-secret: s3\r\nx-route: from-app\r\nx-added: app\r\n\r\n",
                             NULL, 0, &rs),
                     200);
    char v[64];
    const char *h = wf_buf_cstr(&rs.body);
    assert_null(find_hdr(h, "x-secret", v, sizeof(v)));
    assert_non_null(find_hdr(h, "x-route", v, sizeof(v)));
    assert_string_equal(v, "r");
    assert_non_null(find_hdr(h, "x-dest", v, sizeof(v)));
    assert_string_equal(v, "d");
    /* Set by both: the route's wins (Envoy applies the most general last), and only once. */
    assert_non_null(find_hdr(h, "x-both", v, sizeof(v)));
    assert_string_equal(v, "route");
    assert_null(strstr(strstr(h, "x-both") + 6, "x-both"));
    /* add keeps the app's value and appends another field. */
    assert_non_null(strstr(h, "x-added: app\r\n"));
    assert_non_null(strstr(h, "x-added: a\r\n"));
    assert_non_null(find_hdr(rs.head, "x-resp", v, sizeof(v)));
    assert_string_equal(v, "1");
    resp_free(&rs);
    /* Response remove: /echo's Content-Type is dropped. */
    assert_int_equal(request(f->px.outbound,
                             "POST /echo HTTP/1.1\r\nHost: reviews:9080\r\nx-case: headers\r\n"
                             "Content-Length: 2\r\n\r\nok",
                             NULL, 0, &rs),
                     200);
    assert_null(find_hdr(rs.head, "content-type", v, sizeof(v)));
    assert_true(body_is(&rs, "ok", 2));
    resp_free(&rs);
}

static void test_cors(void **state)
{
    rfx_t *f = *state;
    resp_t rs;
    char v[128];
    int before = atomic_load(&f->up.requests);
    /* A preflight from an allowed origin is answered by the proxy. */
    assert_int_equal(request(f->px.outbound,
                             "OPTIONS /cors HTTP/1.1\r\nHost: reviews:9080\r\n"
                             "Origin: http://ok.example\r\nAccess-Control-Request-Method: POST\r\n"
                             "\r\n",
                             NULL, 0, &rs),
                     200);
    assert_non_null(find_hdr(rs.head, "access-control-allow-origin", v, sizeof(v)));
    assert_string_equal(v, "http://ok.example");
    assert_non_null(find_hdr(rs.head, "access-control-allow-methods", v, sizeof(v)));
    assert_string_equal(v, "GET,POST");
    assert_non_null(find_hdr(rs.head, "access-control-allow-headers", v, sizeof(v)));
    assert_string_equal(v, "x-a,x-b");
    assert_non_null(find_hdr(rs.head, "access-control-max-age", v, sizeof(v)));
    assert_string_equal(v, "60");
    assert_non_null(find_hdr(rs.head, "access-control-allow-credentials", v, sizeof(v)));
    assert_string_equal(v, "true");
    resp_free(&rs);
    assert_int_equal(atomic_load(&f->up.requests), before);
    /* An actual request from an allowed origin (prefix match) goes up and gets the headers. */
    assert_int_equal(request(f->px.outbound,
                             "GET /cors HTTP/1.1\r\nHost: reviews:9080\r\n"
                             "Origin: http://pre.example\r\n\r\n",
                             NULL, 0, &rs),
                     200);
    assert_true(body_is(&rs, "v1", 2));
    assert_non_null(find_hdr(rs.head, "access-control-allow-origin", v, sizeof(v)));
    assert_string_equal(v, "http://pre.example");
    assert_non_null(find_hdr(rs.head, "access-control-expose-headers", v, sizeof(v)));
    assert_string_equal(v, "x-e");
    resp_free(&rs);
    /* Other origins: the preflight is forwarded and nothing is added. */
    assert_int_equal(
        request(f->px.outbound,
                "OPTIONS /cors HTTP/1.1\r\nHost: reviews:9080\r\n"
                "Origin: http://evil.example\r\nAccess-Control-Request-Method: POST\r\n"
                "\r\n",
                NULL, 0, &rs),
        200);
    assert_true(body_is(&rs, "v1", 2));
    assert_null(find_hdr(rs.head, "access-control-allow-origin", v, sizeof(v)));
    resp_free(&rs);
    assert_int_equal(atomic_load(&f->up.requests) - before, 2);
}

static void test_mirror(void **state)
{
    rfx_t *f = *state;
    resp_t rs;
    int s0 = atomic_load(&f->shadow.requests);
    double done0 = stat_value(f->px.admin, "weft_proxy_mirror_rq_total{result=\"done\"}");
    assert_int_equal(request(f->px.outbound,
                             "POST /mirror HTTP/1.1\r\nHost: reviews:9080\r\nx-request-id: m-1\r\n"
                             "Content-Length: 6\r\n\r\nmirror",
                             NULL, 0, &rs),
                     200);
    /* The client gets the real answer only. */
    assert_true(body_is(&rs, "mirror", 6));
    resp_free(&rs);
    for (int i = 0; i < 500 && atomic_load(&f->shadow.requests) == s0; i++) {
        usleep(10 * 1000);
    }
    assert_int_equal(atomic_load(&f->shadow.requests) - s0, 1);
    pthread_mutex_lock(&f->shadow.mu);
    char v[128];
    assert_non_null(find_hdr(f->shadow.last_head, "host", v, sizeof(v)));
    assert_string_equal(v, "reviews-shadow:9080");
    assert_non_null(find_hdr(f->shadow.last_head, "x-request-id", v, sizeof(v)));
    assert_string_equal(v, "m-1");
    assert_non_null(find_hdr(f->shadow.last_head, "content-length", v, sizeof(v)));
    assert_string_equal(v, "6");
    assert_int_equal(strncmp(f->shadow.last_head, "POST /echo HTTP/1.1\r\n", 21), 0);
    pthread_mutex_unlock(&f->shadow.mu);
    for (int i = 0; i < 500; i++) {
        if (stat_value(f->px.admin, "weft_proxy_mirror_rq_total{result=\"done\"}") > done0) {
            break;
        }
        usleep(10 * 1000);
    }
    assert_int_equal(stat_value(f->px.admin, "weft_proxy_mirror_rq_total{result=\"done\"}") - done0,
                     1);
    /* A chunked body that arrives after the head streams to the copy too. */
    s0 = atomic_load(&f->shadow.requests);
    int fd = tcp_connect(f->px.outbound);
    assert_true(fd >= 0);
    assert_true(send_str(fd, "POST /mirror HTTP/1.1\r\nHost: reviews:9080\r\n"
                             "Transfer-Encoding: chunked\r\n\r\n"));
    usleep(100 * 1000);
    assert_true(send_str(fd, "8\r\nstreamed\r\n"));
    usleep(100 * 1000);
    assert_true(send_str(fd, "5\r\n body\r\n0\r\n\r\n"));
    rd_t r;
    rd_init(&r, fd);
    assert_true(read_response(&r, &rs));
    assert_int_equal(rs.status, 200);
    assert_true(body_is(&rs, "streamed body", 13));
    resp_free(&rs);
    rd_free(&r);
    close(fd);
    for (int i = 0; i < 500 && atomic_load(&f->shadow.last_body_len) != 13; i++) {
        usleep(10 * 1000);
    }
    assert_int_equal(atomic_load(&f->shadow.requests) - s0, 1);
    assert_int_equal(atomic_load(&f->shadow.last_body_len), 13);
    s0 = atomic_load(&f->shadow.requests);
    /* mirror_percentage 0: never mirrored. */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(request(f->px.outbound,
                                 "GET /nomirror HTTP/1.1\r\nHost: reviews:9080\r\n\r\n", NULL, 0,
                                 &rs),
                         200);
        resp_free(&rs);
    }
    usleep(100 * 1000);
    assert_int_equal(atomic_load(&f->shadow.requests), s0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_timeout),
        cmocka_unit_test(test_per_try_timeout_retries),
        cmocka_unit_test(test_retry_on_5xx_resends_body),
        cmocka_unit_test(test_streamed_body_not_retried),
        cmocka_unit_test(test_retry_on_reset),
        cmocka_unit_test(test_connect_timeout),
        cmocka_unit_test(test_retry_on_gateway_error_and_codes),
        cmocka_unit_test(test_authority_match_and_rewrite),
        cmocka_unit_test(test_client_gone_and_huge_head),
        cmocka_unit_test(test_fault_delay_and_delayed_abort),
        cmocka_unit_test(test_header_operations),
        cmocka_unit_test(test_cors),
        cmocka_unit_test(test_mirror),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
