/*
 * test_proxy_outbound.c - the outbound listener of the real `weft proxy`, routed by a config
 * snapshot file (docs/snapshot.md) to three test upstream servers: as an HTTP forward proxy
 * (curl -x, absolute-form targets) and by Host header; virtual host and route selection,
 * ROUND_ROBIN over two endpoints, a header match, direct response, redirect, prefix rewrite,
 * fault abort, a missing cluster (503 NC), no route (404 NR), and the per-cluster counters.
 */
#include "test_proxy_common.h"

typedef struct {
    upstream_t v1a, v1b, v2;
    proxy_t px;
    char *dir;
} ofx_t;

static const char *const v1_cluster = "outbound|9080|v1|reviews.default.svc.cluster.local";

static int setup(void **state)
{
    ofx_t *f = wf_calloc(1, sizeof(*f));
    upstream_start(&f->v1a, "v1a");
    upstream_start(&f->v1b, "v1b");
    upstream_start(&f->v2, "v2");
    f->dir = wt_tmpdir("pxout");
    char path[4200];
    snprintf(path, sizeof(path), "%s/snapshot.json", f->dir);
    int dead = wt_free_port(); /* nothing listens there: connections are refused */
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fprintf(fp,
            "{\"schema\": 1, \"version\": 7,\n"
            " \"proxy\": {\"service\": \"productpage\", \"version\": \"v1\"},\n"
            " \"virtual_hosts\": [{\"host\": \"reviews\", \"port\": 9080, \"routes\": [\n"
            "  {\"name\": \"jason\", \"match\": [{\"headers\": {\"end-user\": {\"exact\": "
            "\"jason\"}}}],\n"
            "   \"route\": [{\"destination\": {\"host\": \"reviews\", \"subset\": \"v2\"}}]},\n"
            "  {\"name\": \"admin\", \"match\": [{\"uri\": {\"exact\": \"/admin\"}}],\n"
            "   \"direct_response\": {\"status\": 403, \"body\": \"forbidden\"}},\n"
            "  {\"name\": \"old\", \"match\": [{\"uri\": {\"prefix\": \"/old/\"}}],\n"
            "   \"redirect\": {\"uri\": \"/new\"}},\n"
            "  {\"name\": \"v3\", \"match\": [{\"uri\": {\"prefix\": \"/v3/\"}}],\n"
            "   \"rewrite\": {\"uri\": \"/\"},\n"
            "   \"route\": [{\"destination\": {\"host\": \"reviews\", \"subset\": \"v2\"}}]},\n"
            "  {\"name\": \"abort\", \"match\": [{\"headers\": {\"x-fault\": {\"exact\": "
            "\"abort\"}}}],\n"
            "   \"fault\": {\"abort\": {\"http_status\": 418, \"percentage\": 100}},\n"
            "   \"route\": [{\"destination\": {\"host\": \"reviews\", \"subset\": \"v1\"}}]},\n"
            "  {\"name\": \"gone\", \"match\": [{\"uri\": {\"prefix\": \"/gone\"}}],\n"
            "   \"route\": [{\"destination\": {\"host\": \"reviews\", \"subset\": \"v9\"}}]},\n"
            "  {\"name\": \"default\",\n"
            "   \"route\": [{\"destination\": {\"host\": \"reviews\", \"subset\": \"v1\"}}]}\n"
            " ]},\n"
            " {\"host\": \"details\", \"port\": 9080},\n"
            " {\"host\": \"ratings\", \"port\": 9080}],\n"
            " \"clusters\": [\n"
            "  {\"host\": \"reviews\", \"port\": 9080, \"subset\": \"v1\",\n"
            "   \"load_balancer\": {\"simple\": \"ROUND_ROBIN\"},\n"
            "   \"endpoints\": [{\"address\": \"127.0.0.1\", \"port\": %d},\n"
            "                 {\"address\": \"127.0.0.1\", \"port\": %d}]},\n"
            "  {\"host\": \"reviews\", \"port\": 9080, \"subset\": \"v2\",\n"
            "   \"endpoints\": [{\"address\": \"127.0.0.1\", \"port\": %d}]},\n"
            "  {\"host\": \"details\", \"port\": 9080,\n"
            "   \"load_balancer\": {\"simple\": \"ROUND_ROBIN\"},\n"
            "   \"endpoints\": [{\"address\": \"127.0.0.1\", \"port\": %d},\n"
            "                 {\"address\": \"127.0.0.1\", \"port\": %d}]},\n"
            "  {\"host\": \"ratings\", \"port\": 9080,\n"
            "   \"endpoints\": [{\"address\": \"127.0.0.1\", \"port\": %d}]}\n"
            " ]}\n",
            f->v1a.port, f->v1b.port, f->v2.port, dead, f->v2.port, dead);
    fclose(fp);
    /* One worker: round robin is per worker, so its order is then exact. */
    proxy_start_with(&f->px, wt_free_port(), path, "1", NULL);
    assert_true(wt_wait_port(f->px.outbound, 10000));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    ofx_t *f = *state;
    proxy_stop(&f->px);
    upstream_stop(&f->v1a);
    upstream_stop(&f->v1b);
    upstream_stop(&f->v2);
    wt_rm_rf(f->dir);
    wf_free(f->dir);
    wf_free(f);
    return 0;
}

static void test_forward_proxy_round_robin(void **state)
{
    ofx_t *f = *state;
    char cmd[512], out[256];
    double rq0 = 0;
    char series[160];
    snprintf(series, sizeof(series), "weft_proxy_upstream_rq_total{cluster_name=\"%s\"}",
             v1_cluster);
    rq0 = stat_value(f->px.admin, series);
    assert_true(rq0 >= 0);
    /* curl as an http_proxy client: absolute-form targets. */
    snprintf(cmd, sizeof(cmd),
             "curl -s -x http://127.0.0.1:%d http://reviews:9080/who http://reviews:9080/who "
             "http://reviews:9080/who http://reviews:9080/who",
             f->px.outbound);
    assert_int_equal(run_cmd(cmd, out, sizeof(out)), 0);
    /* curl reuses its connection: requests of one connection still rotate endpoints. */
    assert_true(strcmp(out, "v1av1bv1av1b") == 0 || strcmp(out, "v1bv1av1bv1a") == 0);
    assert_int_equal(stat_value(f->px.admin, series) - rq0, 4);

    /* The same through the environment variable real clients use. */
    snprintf(cmd, sizeof(cmd), "http_proxy=http://127.0.0.1:%d curl -s http://reviews:9080/who",
             f->px.outbound);
    assert_int_equal(run_cmd(cmd, out, sizeof(out)), 0);
    assert_true(strcmp(out, "v1a") == 0 || strcmp(out, "v1b") == 0);
}

static void test_routes_by_host_header(void **state)
{
    ofx_t *f = *state;
    resp_t rs;
    int port = f->px.outbound;
    assert_int_equal(request(port,
                             "GET /who HTTP/1.1\r\nHost: reviews:9080\r\nEnd-User: jason\r\n\r\n",
                             NULL, 0, &rs),
                     200);
    assert_true(body_is(&rs, "v2", 2));
    resp_free(&rs);
    /* The FQDN is one of the virtual host's domains too. */
    assert_int_equal(request(port,
                             "GET /who HTTP/1.1\r\nHost: reviews.default.svc.cluster.local:9080\r\n"
                             "end-user: jason\r\n\r\n",
                             NULL, 0, &rs),
                     200);
    assert_true(body_is(&rs, "v2", 2));
    resp_free(&rs);
    assert_int_equal(
        request(port, "GET /admin HTTP/1.1\r\nHost: reviews:9080\r\n\r\n", NULL, 0, &rs), 403);
    assert_true(body_is(&rs, "forbidden", 9));
    resp_free(&rs);
    assert_int_equal(
        request(port, "GET /old/x?a=1 HTTP/1.1\r\nHost: reviews:9080\r\n\r\n", NULL, 0, &rs), 301);
    char v[256];
    assert_non_null(find_hdr(rs.head, "location", v, sizeof(v)));
    assert_string_equal(v, "http://reviews:9080/new?a=1");
    resp_free(&rs);
    /* Prefix rewrite: /v3/headers reaches v2 as /headers, query kept. */
    assert_int_equal(
        request(port, "GET /v3/headers?q=2 HTTP/1.1\r\nHost: reviews:9080\r\n\r\n", NULL, 0, &rs),
        200);
    wf_buf_cstr(&rs.body);
    assert_true(strncmp((const char *)rs.body.data, "GET /headers?q=2 HTTP/1.1\r\n", 27) == 0);
    resp_free(&rs);
    assert_int_equal(request(port,
                             "GET /who HTTP/1.1\r\nHost: reviews:9080\r\nx-fault: abort\r\n\r\n",
                             NULL, 0, &rs),
                     418);
    assert_true(body_is(&rs, "fault filter abort", 18));
    resp_free(&rs);
    assert_int_equal(
        request(port, "GET /gone HTTP/1.1\r\nHost: reviews:9080\r\n\r\n", NULL, 0, &rs), 503);
    resp_free(&rs);
    /* Unknown host, or a port no virtual host is bound to: no route. */
    assert_int_equal(
        request(port, "GET /who HTTP/1.1\r\nHost: productpage:9080\r\n\r\n", NULL, 0, &rs), 404);
    assert_int_equal(rs.body.len, 0);
    resp_free(&rs);
    assert_int_equal(request(port, "GET /who HTTP/1.1\r\nHost: reviews:9081\r\n\r\n", NULL, 0, &rs),
                     404);
    resp_free(&rs);
    /* POST body through the outbound side. */
    assert_int_equal(request(port,
                             "POST /echo HTTP/1.1\r\nHost: reviews:9080\r\nContent-Length: 5\r\n"
                             "\r\nhello",
                             NULL, 0, &rs),
                     200);
    assert_true(body_is(&rs, "hello", 5));
    resp_free(&rs);
}

/* Istio's default retry policy (2 retries on connect-failure, route without `retries`). */
static void test_connect_failure_retries(void **state)
{
    ofx_t *f = *state;
    const char *fail_d = "weft_proxy_upstream_cx_connect_fail_total{cluster_name=\"outbound|9080||"
                         "details.default.svc."
                         "cluster.local\"}";
    const char *fail_r = "weft_proxy_upstream_cx_connect_fail_total{cluster_name=\"outbound|9080||"
                         "ratings.default.svc."
                         "cluster.local\"}";
    double d0 = stat_value(f->px.admin, fail_d), r0 = stat_value(f->px.admin, fail_r);
    assert_true(d0 >= 0 && r0 >= 0);
    /* Round robin alternates a dead and a live endpoint: every request meets the dead one
     * once, and the retry (next endpoint) succeeds. */
    resp_t rs;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(request(f->px.outbound, "GET /who HTTP/1.1\r\nHost: details:9080\r\n\r\n",
                                 NULL, 0, &rs),
                         200);
        assert_true(body_is(&rs, "v2", 2));
        resp_free(&rs);
    }
    assert_int_equal(stat_value(f->px.admin, fail_d) - d0, 4);
    /* The only endpoint is dead: three attempts, then 503 with URX's message. */
    assert_int_equal(
        request(f->px.outbound, "GET /who HTTP/1.1\r\nHost: ratings:9080\r\n\r\n", NULL, 0, &rs),
        503);
    const char *msg = "upstream connect error or disconnect/reset before headers. retried and the "
                      "latest reset reason: connection failure";
    assert_true(body_is(&rs, msg, strlen(msg)));
    resp_free(&rs);
    assert_int_equal(stat_value(f->px.admin, fail_r) - r0, 3);
}

static void test_admin_with_snapshot(void **state)
{
    ofx_t *f = *state;
    char *body = NULL;
    assert_int_equal(wt_http(f->px.admin, "GET", "/config_dump", NULL, 0, &body), 200);
    assert_non_null(strstr(body, "\"version\": 7"));
    wf_free(body);
    assert_int_equal(wt_http(f->px.admin, "GET", "/clusters", NULL, 0, &body), 200);
    char line[160];
    snprintf(line, sizeof(line), "%s::127.0.0.1:%d::health_flags::healthy\n", v1_cluster,
             f->v1b.port);
    assert_non_null(strstr(body, line));
    wf_free(body);
    assert_int_equal(stat_value(f->px.admin, "weft_proxy_config_version"), 7);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_proxy_round_robin),
        cmocka_unit_test(test_routes_by_host_header),
        cmocka_unit_test(test_connect_failure_retries),
        cmocka_unit_test(test_admin_with_snapshot),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
