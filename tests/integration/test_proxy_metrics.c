/*
 * test_proxy_metrics.c - the Istio metrics of real requests through `weft proxy`, read back
 * from /stats/prometheus: inbound requests answered 200 and 503 by the app and one 503 UF with
 * the app down (reporter=destination, the proxy's own workload from its flags, the caller from
 * x-weft-peer), and a request through one proxy's outbound listener, routed by the example
 * snapshot productpage-reviews-80-20.json, to a second proxy's inbound listener: the first
 * reports it as source, the second as destination with the first as its source (the peer
 * metadata exchange), and the app never sees x-weft-peer; the destination proxy answers with
 * its own x-weft-peer (never the app's), which the source reads for an endpoint whose labels
 * it does not know and keeps from its app. Every asserted value is exact.
 */
#include "test_proxy_common.h"

/* ---------------------------------------------------------------------------------------- */
/* A one-request-per-connection app: /status/NNN answers NNN with body "status NNN";
 * /headers answers 200 with the request head as received. */

typedef struct {
    tsrv_t srv;
    int port; /* srv.port */
} app_t;

static void app_serve(int fd, void *ctx)
{
    (void)ctx;
    char head[8192];
    size_t n = 0;
    while (n < sizeof(head) - 1) {
        ssize_t r = recv(fd, head + n, sizeof(head) - 1 - n, 0);
        if (r <= 0) {
            return;
        }
        n += (size_t)r;
        head[n] = '\0';
        if (strstr(head, "\r\n\r\n") != NULL) {
            break;
        }
    }
    char path[256] = "";
    sscanf(head, "%*15s %255s", path);
    int status = 404;
    char body[8192];
    if (strncmp(path, "/status/", 8) == 0) {
        status = atoi(path + 8);
        snprintf(body, sizeof(body), "status %d", status);
    } else if (strcmp(path, "/headers") == 0) {
        status = 200;
        snprintf(body, sizeof(body), "%s", head);
    } else if (strcmp(path, "/spoof") == 0) {
        status = 200; /* claims to be a proxy in its response */
        snprintf(body, sizeof(body), "spoof");
    } else {
        snprintf(body, sizeof(body), "unknown");
    }
    char resp[9000];
    int len = snprintf(
        resp, sizeof(resp), "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nConnection: close\r\n%s\r\n%s",
        status, strlen(body), strcmp(path, "/spoof") == 0 ? "x-weft-peer: wl=evil\r\n" : "", body);
    send_all(fd, resp, (size_t)len);
}

static void app_start(app_t *a)
{
    memset(a, 0, sizeof(*a));
    tsrv_start(&a->srv, false, app_serve, NULL);
    a->port = a->srv.port;
}

static void app_stop(app_t *a)
{
    tsrv_stop(&a->srv);
}

/* ---------------------------------------------------------------------------------------- */
/* Reading the exposition */

/* Every `# TYPE name` appears once. */
static void assert_types_unique(const char *body)
{
    for (const char *p = strstr(body, "# TYPE "); p != NULL; p = strstr(p + 1, "# TYPE ")) {
        char name[160];
        assert_int_equal(sscanf(p + 7, "%159s", name), 1);
        char line[200];
        snprintf(line, sizeof(line), "# TYPE %s ", name);
        const char *first = strstr(body, line);
        assert_ptr_equal(first, p);
    }
}

static int curl_status(const char *args)
{
    char cmd[1024], out[64];
    snprintf(cmd, sizeof(cmd), "curl -s -o /dev/null -w '%%{http_code}' %s", args);
    assert_int_equal(run_cmd(cmd, out, sizeof(out)), 0);
    return atoi(out);
}

/* ---------------------------------------------------------------------------------------- */

static void test_inbound_reporter_destination(void **state)
{
    (void)state;
    app_t app;
    app_start(&app);
    proxy_t px;
    const char *const extra[] = {"--version", "v2", "--namespace", "bookinfo", NULL};
    proxy_start_with(&px, app.port, NULL, "2", extra);
    char args[512];
    for (int i = 0; i < 3; i++) {
        snprintf(args, sizeof(args), "http://127.0.0.1:%d/status/200", px.inbound);
        assert_int_equal(curl_status(args), 200);
    }
    for (int i = 0; i < 2; i++) {
        snprintf(args, sizeof(args), "http://127.0.0.1:%d/status/503", px.inbound);
        assert_int_equal(curl_status(args), 503);
    }
    /* A caller that says who it is; the app must not see the header. */
    char cmd[512], out[8192];
    snprintf(cmd, sizeof(cmd),
             "curl -s -H 'x-weft-peer: wl=ratings-v1;ns=bookinfo;app=ratings;ver=v1' "
             "http://127.0.0.1:%d/headers",
             px.inbound);
    assert_int_equal(run_cmd(cmd, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "GET /headers HTTP/1.1"));
    assert_null(strcasestr(out, "x-weft-peer"));
    assert_null(strstr(out, "ratings-v1"));

    char *body = scrape(px.admin);
    const char *ok[] = {"reporter=\"destination\"",
                        "source_workload=\"unknown\"",
                        "destination_workload=\"reviews-v2\"",
                        "destination_workload_namespace=\"bookinfo\"",
                        "destination_app=\"reviews\"",
                        "destination_version=\"v2\"",
                        "destination_service=\"reviews.bookinfo.svc.cluster.local\"",
                        "request_protocol=\"http\"",
                        "connection_security_policy=\"none\"",
                        "response_code=\"200\"",
                        "response_flags=\"-\"",
                        NULL};
    assert_true(series(body, "istio_requests_total", ok) == 3);
    assert_true(series(body, "istio_request_duration_milliseconds_count", ok) == 3);
    const char *unavail[] = {"reporter=\"destination\"",
                             "source_workload=\"unknown\"",
                             "destination_workload=\"reviews-v2\"",
                             "destination_app=\"reviews\"",
                             "destination_version=\"v2\"",
                             "response_code=\"503\"",
                             "response_flags=\"-\"",
                             NULL};
    assert_true(series(body, "istio_requests_total", unavail) == 2);
    assert_true(series(body, "istio_request_duration_milliseconds_count", unavail) == 2);
    /* "status 503" is 10 bytes, twice. */
    assert_true(series(body, "istio_response_bytes_sum", unavail) == 20);
    const char *peer[] = {"reporter=\"destination\"",
                          "source_workload=\"ratings-v1\"",
                          "source_workload_namespace=\"bookinfo\"",
                          "source_app=\"ratings\"",
                          "source_version=\"v1\"",
                          "destination_workload=\"reviews-v2\"",
                          "response_code=\"200\"",
                          "response_flags=\"-\"",
                          NULL};
    assert_true(series(body, "istio_requests_total", peer) == 1);
    const char *any[] = {NULL};
    assert_true(series(body, "istio_requests_total", any) == -2); /* exactly the three above */
    const char *src[] = {"reporter=\"source\"", NULL};
    assert_true(series(body, "istio_requests_total", src) == -1);
    assert_types_unique(body);
    /* The proxy's own counters are still there. */
    assert_non_null(strstr(body, "weft_proxy_requests_total{response_code_class=\"2xx\"} 4\n"));
    wf_free(body);
    proxy_stop(&px);
    app_stop(&app);
}

static void test_inbound_upstream_down(void **state)
{
    (void)state;
    proxy_t px;
    const char *const extra[] = {"--version", "v2", NULL};
    proxy_start_with(&px, wt_free_port(), NULL, "1", extra); /* nothing listens there */
    char args[256];
    snprintf(args, sizeof(args), "http://127.0.0.1:%d/status/200", px.inbound);
    assert_int_equal(curl_status(args), 503);
    char *body = scrape(px.admin);
    const char *uf[] = {"reporter=\"destination\"",
                        "destination_workload=\"reviews-v2\"",
                        "destination_workload_namespace=\"default\"",
                        "destination_app=\"reviews\"",
                        "destination_version=\"v2\"",
                        "response_code=\"503\"",
                        "response_flags=\"UF\"",
                        NULL};
    assert_true(series(body, "istio_requests_total", uf) == 1);
    assert_true(series(body, "istio_request_duration_milliseconds_count", uf) == 1);
    const char *any[] = {NULL};
    assert_true(series(body, "istio_requests_total", any) == 1);
    assert_types_unique(body);
    wf_free(body);
    proxy_stop(&px);
}

/* text with every occurrence of from replaced by to (a new string). */
static char *replace_all(const char *text, const char *from, const char *to)
{
    wf_buf_t b = WF_BUF_INIT;
    size_t fl = strlen(from);
    const char *p = text, *q;
    while ((q = strstr(p, from)) != NULL) {
        wf_buf_append(&b, p, (size_t)(q - p));
        wf_buf_puts(&b, to);
        p = q + fl;
    }
    wf_buf_puts(&b, p);
    wf_buf_cstr(&b);
    return (char *)wf_buf_detach(&b, NULL);
}

static void test_outbound_source_and_peer_exchange(void **state)
{
    (void)state;
    app_t app;
    app_start(&app);
    /* The destination: details v1, in front of the app. */
    proxy_t dst;
    const char *const dextra[] = {"--version",  "v1",  "--service", "details",
                                  "--outbound", "off", NULL};
    proxy_start_with(&dst, app.port, NULL, "1", dextra);
    /* The source: productpage, whose snapshot's details endpoint is the destination proxy. */
    char *text = example_text_plaintext("productpage-reviews-80-20.json");
    char to[64];
    snprintf(to, sizeof(to), "\"address\": \"127.0.0.1\",\n          \"port\": %d", dst.inbound);
    char *snap = replace_all(text, "\"address\": \"10.1.0.20\",\n          \"port\": 9080", to);
    assert_string_not_equal(snap, text);
    char *dir = wt_tmpdir("pxmet");
    char path[4200];
    snprintf(path, sizeof(path), "%s/snapshot.json", dir);
    wt_write_file(path, snap);
    proxy_t src;
    proxy_start_with(&src, wt_free_port(), path, "2", NULL);
    assert_true(wt_wait_port(src.outbound, 10000));

    char cmd[512], out[8192];
    /* The app's own x-weft-peer is replaced by the source proxy's and stripped by the
     * destination proxy. */
    snprintf(cmd, sizeof(cmd),
             "curl -s -x http://127.0.0.1:%d -H 'x-weft-peer: wl=evil' http://details:9080/headers",
             src.outbound);
    assert_int_equal(run_cmd(cmd, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "GET /headers HTTP/1.1"));
    assert_null(strcasestr(out, "x-weft-peer"));
    assert_null(strstr(out, "evil"));
    char args[256];
    for (int i = 0; i < 2; i++) {
        snprintf(args, sizeof(args), "-x http://127.0.0.1:%d http://details:9080/status/503",
                 src.outbound);
        assert_int_equal(curl_status(args), 503);
    }

    char *sb = scrape(src.admin);
    const char *s200[] = {"reporter=\"source\"",
                          "source_workload=\"productpage-v1\"",
                          "source_app=\"productpage\"",
                          "source_version=\"v1\"",
                          "destination_workload=\"details-v1\"",
                          "destination_workload_namespace=\"default\"",
                          "destination_app=\"details\"",
                          "destination_version=\"v1\"",
                          "destination_service=\"details.default.svc.cluster.local\"",
                          "destination_service_name=\"details\"",
                          "connection_security_policy=\"unknown\"",
                          "response_code=\"200\"",
                          "response_flags=\"-\"",
                          NULL};
    assert_true(series(sb, "istio_requests_total", s200) == 1);
    assert_true(series(sb, "istio_request_duration_milliseconds_count", s200) == 1);
    const char *s503[] = {"reporter=\"source\"",
                          "source_workload=\"productpage-v1\"",
                          "destination_workload=\"details-v1\"",
                          "destination_app=\"details\"",
                          "destination_version=\"v1\"",
                          "response_code=\"503\"",
                          "response_flags=\"-\"",
                          NULL};
    assert_true(series(sb, "istio_requests_total", s503) == 2);
    assert_true(series(sb, "istio_request_duration_milliseconds_count", s503) == 2);
    const char *dest[] = {"reporter=\"destination\"", NULL};
    assert_true(series(sb, "istio_requests_total", dest) == -1);
    assert_types_unique(sb);
    wf_free(sb);

    char *db = scrape(dst.admin);
    const char *d200[] = {"reporter=\"destination\"",
                          "source_workload=\"productpage-v1\"",
                          "source_workload_namespace=\"default\"",
                          "source_app=\"productpage\"",
                          "source_version=\"v1\"",
                          "destination_workload=\"details-v1\"",
                          "destination_app=\"details\"",
                          "destination_version=\"v1\"",
                          "connection_security_policy=\"none\"",
                          "response_code=\"200\"",
                          "response_flags=\"-\"",
                          NULL};
    assert_true(series(db, "istio_requests_total", d200) == 1);
    const char *d503[] = {"reporter=\"destination\"",
                          "source_workload=\"productpage-v1\"",
                          "destination_workload=\"details-v1\"",
                          "response_code=\"503\"",
                          "response_flags=\"-\"",
                          NULL};
    assert_true(series(db, "istio_requests_total", d503) == 2);
    assert_true(series(db, "istio_request_duration_milliseconds_count", d503) == 2);
    const char *unknown_src[] = {"source_workload=\"unknown\"", NULL};
    assert_true(series(db, "istio_requests_total", unknown_src) == -1);
    wf_free(db);

    proxy_stop(&src);
    proxy_stop(&dst);
    app_stop(&app);
    wt_rm_rf(dir);
    wf_free(dir);
    wf_free(snap);
    wf_free(text);
}

static void test_response_peer_metadata(void **state)
{
    (void)state;
    app_t app;
    app_start(&app);
    proxy_t dst;
    const char *const dextra[] = {"--version",  "v2",  "--service", "details",
                                  "--outbound", "off", NULL};
    proxy_start_with(&dst, app.port, NULL, "1", dextra);
    /* Straight to the destination: its own metadata, the app's claim removed. */
    char cmd[512], out[8192];
    snprintf(cmd, sizeof(cmd), "curl -si http://127.0.0.1:%d/spoof", dst.inbound);
    assert_int_equal(run_cmd(cmd, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "HTTP/1.1 200 "));
    assert_int_equal(strstr(out, "x-weft-peer: ") != NULL, 1);
    assert_non_null(strstr(out, "wl=details-v2;"));
    assert_null(strstr(out, "evil"));
    assert_null(strstr(strstr(out, "x-weft-peer: ") + 1, "x-weft-peer"));

    /* The source knows the endpoint's address only: the answer says who it is. */
    char *text = example_text_plaintext("productpage-reviews-80-20.json");
    char to[64];
    snprintf(to, sizeof(to), "\"address\": \"127.0.0.1\",\n          \"port\": %d", dst.inbound);
    char *a = replace_all(text, "\"address\": \"10.1.0.20\",\n          \"port\": 9080", to);
    char *snap = replace_all(a,
                             "\"labels\": {\n            \"app\": \"details\",\n            "
                             "\"version\": \"v1\"\n          },\n          \"workload\": "
                             "\"details-v1\",",
                             "");
    assert_string_not_equal(snap, a);
    char *dir = wt_tmpdir("pxmetpeer");
    char path[4200];
    snprintf(path, sizeof(path), "%s/snapshot.json", dir);
    wt_write_file(path, snap);
    proxy_t src;
    proxy_start_with(&src, wt_free_port(), path, "1", NULL);
    assert_true(wt_wait_port(src.outbound, 10000));
    snprintf(cmd, sizeof(cmd), "curl -si -x http://127.0.0.1:%d http://details:9080/spoof",
             src.outbound);
    assert_int_equal(run_cmd(cmd, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "HTTP/1.1 200 "));
    assert_null(strcasestr(out, "x-weft-peer"));
    assert_null(strstr(out, "details-v2"));

    char *sb = scrape(src.admin);
    const char *s200[] = {"reporter=\"source\"",
                          "source_workload=\"productpage-v1\"",
                          "destination_workload=\"details-v2\"",
                          "destination_app=\"details\"",
                          "destination_version=\"v2\"",
                          "destination_service=\"details.default.svc.cluster.local\"",
                          "response_code=\"200\"",
                          NULL};
    assert_true(series(sb, "istio_requests_total", s200) == 1);
    const char *any[] = {NULL};
    assert_true(series(sb, "istio_requests_total", any) == 1);
    wf_free(sb);

    proxy_stop(&src);
    proxy_stop(&dst);
    app_stop(&app);
    wt_rm_rf(dir);
    wf_free(dir);
    wf_free(snap);
    wf_free(a);
    wf_free(text);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inbound_reporter_destination),
        cmocka_unit_test(test_inbound_upstream_down),
        cmocka_unit_test(test_outbound_source_and_peer_exchange),
        cmocka_unit_test(test_response_peer_metadata),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
