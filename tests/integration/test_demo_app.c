/*
 * test_demo_app.c - `weft demo-app`, the bookinfo-shaped services, as real processes wired to
 * each other on loopback ports (no sidecars: the URLs point straight at the services):
 * the page and the JSON API carry what details, reviews and ratings answered; reviews v1/v2/v3
 * differ as bookinfo's do; tracing headers and end-user reach the next service; productpage
 * retries once and degrades to a 200 page when a service is down; reviews v3 gives up on a
 * slow ratings after 2.5 s while v2 waits; --error-percent answers 500; bad flags and hostile
 * requests get clear errors.
 */
#include "test_proxy_common.h"

typedef struct {
    pid_t pid;
    int port;
    char log[256];
} svc_t;

static char *g_dir;

/* Start `weft demo-app --role ROLE --listen 127.0.0.1:<free> extra...` (extra: a
 * space-separated flag list, no quoting) and wait until it answers. */
static void svc_start(svc_t *s, const char *role, const char *extra)
{
    s->port = wt_free_port();
    char listen_arg[64];
    snprintf(listen_arg, sizeof(listen_arg), "127.0.0.1:%d", s->port);
    char *argv[32] = {(char *)wt_weft_bin(), "demo-app", "--role",
                      (char *)role,          "--listen", listen_arg};
    int n = 6;
    char *copy = wf_strdup(extra != NULL ? extra : "");
    for (char *save = NULL, *t = strtok_r(copy, " ", &save); t != NULL && n < 30;
         t = strtok_r(NULL, " ", &save)) {
        argv[n++] = t;
    }
    argv[n] = NULL;
    snprintf(s->log, sizeof(s->log), "%s/%s-%d.log", g_dir, role, s->port);
    s->pid = wt_spawn(argv, s->log);
    wf_free(copy);
    assert_true(s->pid > 0);
    assert_true(wt_wait_port(s->port, 10000));
}

static void svc_stop(svc_t *s)
{
    assert_int_equal(wt_stop(s->pid, 5000), 0);
}

static char *url_of(const svc_t *s, char *buf, size_t cap)
{
    snprintf(buf, cap, "http://127.0.0.1:%d", s->port);
    return buf;
}

/* The value of one counter line of a service's /metrics ("demo_calls_total{role=\"x\"}"). */
static long metric(const svc_t *s, const char *series)
{
    char *body = NULL;
    assert_int_equal(wt_http(s->port, "GET", "/metrics", NULL, 0, &body), 200);
    const char *p = strstr(body, series);
    long v = p != NULL ? strtol(p + strlen(series), NULL, 10) : -1;
    wf_free(body);
    return v;
}

static int get(const svc_t *s, const char *path, const char *headers, char **body)
{
    return wt_http_ex(s->port, "GET", path, headers, NULL, 0, 15000, body);
}

static void test_bookinfo_chain(void **state)
{
    svc_t ratings, reviews[3], details, page;
    char u1[64], u2[64], u3[64], extra[256];
    svc_start(&ratings, "ratings", NULL);
    svc_start(&details, "details", NULL);
    for (int v = 0; v < 3; v++) {
        snprintf(extra, sizeof(extra), "--version v%d --ratings-url %s", v + 1,
                 url_of(&ratings, u1, sizeof(u1)));
        svc_start(&reviews[v], "reviews", extra);
    }
    char *body = NULL;
    /* Each reviews version on its own: v1 without ratings, v2 black, v3 red stars. */
    assert_int_equal(get(&reviews[0], "/reviews/0", NULL, &body), 200);
    assert_non_null(strstr(body, "\"podname\":\"reviews-v1\""));
    assert_null(strstr(body, "rating"));
    wf_free(body);
    assert_int_equal(get(&reviews[1], "/reviews/0", NULL, &body), 200);
    assert_non_null(strstr(body, "{\"stars\":5,\"color\":\"black\"}"));
    assert_non_null(strstr(body, "{\"stars\":4,\"color\":\"black\"}"));
    wf_free(body);
    assert_int_equal(get(&reviews[2], "/reviews/0", NULL, &body), 200);
    assert_non_null(strstr(body, "{\"stars\":5,\"color\":\"red\"}"));
    wf_free(body);
    assert_int_equal(metric(&ratings, "demo_requests_total{role=\"ratings\",code=\"2xx\"} "), 2);

    /* productpage in front of details and reviews v2. */
    snprintf(extra, sizeof(extra), "--details-url %s --reviews-url %s --ratings-url %s",
             url_of(&details, u1, sizeof(u1)), url_of(&reviews[1], u2, sizeof(u2)),
             url_of(&ratings, u3, sizeof(u3)));
    svc_start(&page, "productpage", extra);
    assert_int_equal(get(&page, "/productpage", NULL, &body), 200);
    assert_non_null(strstr(body, "<dt>publisher</dt><dd>PublisherA</dd>"));
    assert_non_null(strstr(body, "<dt>pages</dt><dd>200</dd>"));
    assert_non_null(strstr(body, "<span class=\"stars black\">&#9733;&#9733;&#9733;&#9733;"
                                 "&#9733;</span>"));
    assert_non_null(strstr(body, "Reviews served by: reviews-v2"));
    assert_non_null(strstr(body, "<p class=\"user\">anonymous</p>"));
    wf_free(body);
    /* The JSON API passes each service's answer through. */
    assert_int_equal(get(&page, "/api/v1/products", NULL, &body), 200);
    assert_non_null(strstr(body, "\"title\":\"The Comedy of Errors\""));
    wf_free(body);
    assert_int_equal(get(&page, "/api/v1/products/7", NULL, &body), 200);
    assert_non_null(strstr(body, "\"id\":7"));
    wf_free(body);
    assert_int_equal(get(&page, "/api/v1/products/0/ratings", NULL, &body), 200);
    assert_string_equal(body, "{\"id\":0,\"ratings\":{\"Reviewer1\":5,\"Reviewer2\":4}}");
    wf_free(body);
    assert_int_equal(get(&page, "/api/v1/products/0/reviews", NULL, &body), 200);
    assert_non_null(strstr(body, "\"podname\":\"reviews-v2\""));
    wf_free(body);
    /* Logging in sets the cookie whose user becomes end-user on the page. */
    assert_int_equal(get(&page, "/login?user=jason", NULL, &body), 302);
    wf_free(body);
    assert_int_equal(get(&page, "/productpage", "Cookie: session=jason\r\n", &body), 200);
    assert_non_null(strstr(body, "<p class=\"user\">jason</p>"));
    wf_free(body);
    assert_int_equal(get(&page, "/health", NULL, &body), 200);
    assert_string_equal(body, "{\"status\":\"productpage is healthy\"}");
    wf_free(body);
    /* Two pages of two calls each, three API calls of one: nothing retried. */
    assert_int_equal(metric(&page, "demo_calls_total{role=\"productpage\"} "), 2 * 2 + 3);
    assert_int_equal(metric(&page, "demo_call_failures_total{role=\"productpage\"} "), 0);

    svc_stop(&page);
    for (int v = 0; v < 3; v++) {
        svc_stop(&reviews[v]);
    }
    svc_stop(&details);
    svc_stop(&ratings);
}

/* The headers a call carries: a capture server stands in for details. */
static void test_headers_forwarded(void **state)
{
    upstream_t cap;
    upstream_start(&cap, "details");
    svc_t page;
    char extra[256];
    snprintf(extra, sizeof(extra),
             "--details-url http://127.0.0.1:%d --reviews-url http://127.0.0.1:%d", cap.port,
             cap.port);
    svc_start(&page, "productpage", extra);
    char *body = NULL;
    const char *hdrs =
        "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n"
        "tracestate: weft=1\r\nX-B3-TraceId: 80f198ee56343ba864fe8b2a57d3eff7\r\n"
        "X-B3-SpanId: e457b5a2e4d86bd1\r\nX-B3-Sampled: 1\r\nx-request-id: req-42\r\n"
        "Cookie: other=1; session=jason\r\nAuthorization: Bearer secret\r\n";
    assert_int_equal(get(&page, "/productpage", hdrs, &body), 200);
    /* The capture server answers 404 to /details/0 and /reviews/0: the page degrades. */
    assert_non_null(strstr(body, "product details are currently unavailable"));
    assert_non_null(strstr(body, "product reviews are currently unavailable"));
    wf_free(body);
    pthread_mutex_lock(&cap.mu);
    const char *h = cap.last_head;
    assert_non_null(strstr(h, "GET /reviews/0 HTTP/1.1"));
    assert_non_null(
        strstr(h, "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n"));
    assert_non_null(strstr(h, "tracestate: weft=1\r\n"));
    assert_non_null(strstr(h, "x-b3-traceid: 80f198ee56343ba864fe8b2a57d3eff7\r\n"));
    assert_non_null(strstr(h, "x-b3-spanid: e457b5a2e4d86bd1\r\n"));
    assert_non_null(strstr(h, "x-b3-sampled: 1\r\n"));
    assert_non_null(strstr(h, "x-request-id: req-42\r\n"));
    assert_non_null(strstr(h, "end-user: jason\r\n"));
    /* Credentials and cookies stay with productpage. */
    assert_null(strcasestr(h, "authorization"));
    assert_null(strcasestr(h, "cookie"));
    pthread_mutex_unlock(&cap.mu);
    /* A 404 is an answer: not retried (one call each). */
    assert_int_equal(atomic_load(&cap.requests), 2);
    svc_stop(&page);
    upstream_stop(&cap);
}

/* Services down or failing: productpage tries twice, then still answers its page. */
static void test_retry_and_degrade(void **state)
{
    int dead = wt_free_port();
    svc_t ratings, details, reviews, page;
    char extra[256], u[64];
    svc_start(&details, "details", "--error-percent 100");
    svc_start(&ratings, "ratings", "--error-percent 100");
    snprintf(extra, sizeof(extra), "--version v2 --ratings-url %s", url_of(&ratings, u, sizeof(u)));
    svc_start(&reviews, "reviews", extra);
    snprintf(extra, sizeof(extra), "--details-url %s --reviews-url http://127.0.0.1:%d",
             url_of(&details, u, sizeof(u)), dead);
    svc_start(&page, "productpage", extra);
    char *body = NULL;
    assert_int_equal(get(&page, "/productpage", NULL, &body), 200);
    assert_non_null(strstr(body, "product details are currently unavailable"));
    assert_non_null(strstr(body, "product reviews are currently unavailable"));
    wf_free(body);
    /* details answered 500 twice, reviews refused the connection twice. */
    assert_int_equal(metric(&details, "demo_injected_errors_total{role=\"details\"} "), 2);
    assert_int_equal(metric(&details, "demo_requests_total{role=\"details\",code=\"5xx\"} "), 2);
    assert_int_equal(metric(&page, "demo_calls_total{role=\"productpage\"} "), 4);
    assert_int_equal(metric(&page, "demo_call_failures_total{role=\"productpage\"} "), 4);
    /* The JSON API says 503 when nothing answered, and passes a 500 through. */
    snprintf(extra, sizeof(extra), "/api/v1/products/0/reviews");
    assert_int_equal(get(&page, extra, NULL, &body), 503);
    assert_non_null(strstr(body, "\"error\""));
    wf_free(body);
    assert_int_equal(get(&page, "/api/v1/products/0", NULL, &body), 500);
    wf_free(body);
    /* reviews v2 with a failing ratings: 200 with the unavailable message per review. */
    assert_int_equal(get(&reviews, "/reviews/0", NULL, &body), 200);
    assert_non_null(strstr(body, "\"rating\":{\"error\":\"Ratings service is currently "
                                 "unavailable\"}"));
    wf_free(body);
    svc_stop(&page);
    svc_stop(&reviews);
    svc_stop(&ratings);
    svc_stop(&details);
}

/* A ratings that takes 3..9 s: reviews v3 (2.5 s timeout) gives up, v2 (10 s) waits for it. */
static void test_ratings_timeouts(void **state)
{
    svc_t ratings, v2, v3;
    char extra[256], u[64];
    svc_start(&ratings, "ratings", "--latency 6s --slow-percent 0");
    snprintf(extra, sizeof(extra), "--version v3 --latency 1ms --ratings-url %s",
             url_of(&ratings, u, sizeof(u)));
    svc_start(&v3, "reviews", extra);
    snprintf(extra, sizeof(extra), "--version v2 --latency 1ms --ratings-url %s",
             url_of(&ratings, u, sizeof(u)));
    svc_start(&v2, "reviews", extra);
    char *body = NULL;
    assert_int_equal(get(&v2, "/reviews/0", NULL, &body), 200);
    assert_non_null(strstr(body, "\"color\":\"black\""));
    wf_free(body);
    assert_int_equal(get(&v3, "/reviews/0", NULL, &body), 200);
    assert_non_null(strstr(body, "\"rating\":{\"error\":\"Ratings service is currently "
                                 "unavailable\"}"));
    wf_free(body);
    assert_int_equal(metric(&v3, "demo_call_failures_total{role=\"reviews\"} "), 1);
    assert_int_equal(metric(&v2, "demo_call_failures_total{role=\"reviews\"} "), 0);
    svc_stop(&v2);
    svc_stop(&v3);
    svc_stop(&ratings);
}

static void test_bad_flags_and_requests(void **state)
{
    static const char *const bad[][4] = {
        {"--role", "frontend", NULL},
        {"--role", "reviews", "--version", "v4"},
        {"--role", "ratings", "--error-percent", "101"},
        {"--role", "ratings", "--threads", "0"},
        {"--bogus", NULL},
        {NULL},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *argv[8] = {(char *)wt_weft_bin(), "demo-app"};
        int n = 2;
        for (int k = 0; k < 4 && bad[i][k] != NULL; k++) {
            argv[n++] = (char *)bad[i][k];
        }
        argv[n] = NULL;
        char log[256];
        snprintf(log, sizeof(log), "%s/bad-%zu.log", g_dir, i);
        pid_t pid = wt_spawn(argv, log);
        int st = wt_wait(pid, 5000);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 2);
        size_t len = 0;
        char *text = wt_read_file(log, &len);
        assert_true(len > 0 && strstr(text, "weft demo-app") != NULL);
        wf_free(text);
    }

    svc_t page, details;
    char extra[256], u[64];
    svc_start(&details, "details", NULL);
    snprintf(extra, sizeof(extra), "--details-url %s", url_of(&details, u, sizeof(u)));
    svc_start(&page, "productpage", extra);
    char *body = NULL;
    static const char *const bad_paths[] = {"/details/-1", "/details/1234567", "/details/1x",
                                            "/details/", "/details/%00"};
    for (size_t i = 0; i < sizeof(bad_paths) / sizeof(bad_paths[0]); i++) {
        assert_int_equal(get(&details, bad_paths[i], NULL, &body), 400);
        assert_non_null(strstr(body, "want /details/<product id>"));
        wf_free(body);
    }
    assert_int_equal(get(&page, "/api/v1/products/0/../../etc", NULL, &body), 404);
    wf_free(body);
    assert_int_equal(get(&page, "/api/v1/products/99999999999999999999", NULL, &body), 404);
    wf_free(body);
    assert_int_equal(get(&page, "/login?user=%3Cscript%3E", NULL, &body), 400);
    wf_free(body);
    /* A huge end-user cookie is not passed on (nor does it break the page). */
    wf_buf_t h = WF_BUF_INIT;
    wf_buf_printf(&h, "Cookie: session=");
    for (int i = 0; i < 3000; i++) { /* wt_http_ex sends heads up to 4 KiB */
        wf_buf_printf(&h, "x");
    }
    wf_buf_printf(&h, "\r\nend-user: <b>mallory</b>\r\n");
    assert_int_equal(get(&page, "/productpage", (const char *)h.data, &body), 200);
    /* end-user is escaped on the page. */
    assert_non_null(strstr(body, "<p class=\"user\">&lt;b&gt;mallory&lt;/b&gt;</p>"));
    wf_free(body);
    wf_buf_free(&h);
    svc_stop(&page);
    svc_stop(&details);
}

static int setup(void **state)
{
    g_dir = wt_tmpdir("weft-demo-app");
    return 0;
}

static int teardown(void **state)
{
    wt_rm_rf(g_dir);
    wf_free(g_dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bookinfo_chain),         cmocka_unit_test(test_headers_forwarded),
        cmocka_unit_test(test_retry_and_degrade),      cmocka_unit_test(test_ratings_timeouts),
        cmocka_unit_test(test_bad_flags_and_requests),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
