/*
 * test_proxy_gateway.c - `weft proxy --mode gateway`: one listener per gateway server of the
 * snapshot, each routed only by the virtual hosts bound to its port (bookinfo's gateway shape:
 * uri matches to productpage on a `*` server; a second server for one host), reporting
 * reporter="source" with the gateway as the source workload. Also the refusals: a gateway
 * without a gateway snapshot, and a sidecar given a gateway's snapshot.
 */
#include "test_proxy_common.h"

typedef struct {
    upstream_t productpage, details;
    pid_t pid;
    int port_any, port_host, admin;
    char *dir;
    char snap[4200];
} gfx_t;

static int setup(void **state)
{
    gfx_t *f = wf_calloc(1, sizeof(*f));
    upstream_start(&f->productpage, "productpage");
    upstream_start(&f->details, "details");
    f->dir = wt_tmpdir("pxgw");
    f->port_any = wt_free_port();
    f->port_host = wt_free_port();
    f->admin = wt_free_port();
    snprintf(f->snap, sizeof(f->snap), "%s/gateway.json", f->dir);
    FILE *fp = fopen(f->snap, "w");
    assert_non_null(fp);
    fprintf(fp,
            "{\"schema\": 1, \"version\": 5,\n"
            " \"proxy\": {\"service\": \"istio-ingressgateway\", \"namespace\": "
            "\"istio-system\",\n"
            "           \"workload\": \"istio-ingressgateway\", \"mode\": \"gateway\",\n"
            "           \"labels\": {\"app\": \"istio-ingressgateway\", \"istio\": "
            "\"ingressgateway\"}},\n"
            " \"gateway\": {\"servers\": [\n"
            "   {\"name\": \"http\", \"port\": %d, \"protocol\": \"HTTP\", \"hosts\": [\"*\"]},\n"
            "   {\"name\": \"api\", \"port\": %d, \"protocol\": \"HTTP\", \"hosts\": "
            "[\"api.example\"]}]},\n"
            " \"virtual_hosts\": [\n"
            "  {\"name\": \"*:http\", \"port\": %d, \"domains\": [\"*\"], \"routes\": [\n"
            "   {\"match\": [{\"uri\": {\"exact\": \"/productpage\"}}, {\"uri\": {\"prefix\": "
            "\"/static\"}}],\n"
            "    \"rewrite\": {\"uri\": \"/who\"},\n"
            "    \"route\": [{\"destination\": {\"host\": "
            "\"productpage.default.svc.cluster.local\"}}]}]},\n"
            "  {\"name\": \"api.example:api\", \"port\": %d, \"domains\": [\"api.example\", "
            "\"api.example:*\"],\n"
            "   \"routes\": [{\"route\": [{\"destination\": {\"host\": "
            "\"details.default.svc.cluster.local\"}}]}]}],\n"
            " \"clusters\": [\n"
            "  {\"host\": \"productpage.default.svc.cluster.local\", \"port\": 9080,\n"
            "   \"endpoints\": [{\"address\": \"127.0.0.1\", \"port\": %d, \"labels\": {\"app\": "
            "\"productpage\", \"version\": \"v1\"}, \"workload\": \"productpage-v1\", "
            "\"namespace\": \"default\"}]},\n"
            "  {\"host\": \"details.default.svc.cluster.local\", \"port\": 9080,\n"
            "   \"endpoints\": [{\"address\": \"127.0.0.1\", \"port\": %d}]}]}\n",
            f->port_any, f->port_host, f->port_any, f->port_host, f->productpage.port,
            f->details.port);
    fclose(fp);
    char adm[32], log[4300];
    snprintf(adm, sizeof(adm), "127.0.0.1:%d", f->admin);
    snprintf(log, sizeof(log), "%s/gateway.log", f->dir);
    char *argv[] = {(char *)wt_weft_bin(),
                    "proxy",
                    "--mode",
                    "gateway",
                    "--service",
                    "istio-ingressgateway",
                    "--gateway-bind",
                    "127.0.0.1",
                    "--admin",
                    adm,
                    "--config",
                    f->snap,
                    "--concurrency",
                    "2",
                    NULL};
    f->pid = wt_spawn(argv, log);
    assert_true(wt_wait_port(f->admin, 10000));
    assert_true(wt_wait_port(f->port_any, 10000));
    assert_true(wt_wait_port(f->port_host, 10000));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    gfx_t *f = *state;
    int st = wt_stop(f->pid, 20000);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    upstream_stop(&f->productpage);
    upstream_stop(&f->details);
    wt_rm_rf(f->dir);
    wf_free(f->dir);
    wf_free(f);
    return 0;
}

static void test_servers_route_by_their_port(void **state)
{
    gfx_t *f = *state;
    resp_t rs;
    /* The `*` server: bookinfo's uri matches, any Host. */
    assert_int_equal(request(f->port_any,
                             "GET /productpage HTTP/1.1\r\nHost: bookinfo.example.com\r\n\r\n",
                             NULL, 0, &rs),
                     200);
    assert_true(body_is(&rs, "productpage", 11));
    resp_free(&rs);
    /* A prefix rewrite replaces only the matched prefix (/static/x.css -> /who/x.css). */
    assert_int_equal(
        request(f->port_any, "GET /static HTTP/1.1\r\nHost: 10.0.0.1\r\n\r\n", NULL, 0, &rs), 200);
    assert_true(body_is(&rs, "productpage", 11));
    resp_free(&rs);
    assert_int_equal(
        request(f->port_any, "GET /static/x.css HTTP/1.1\r\nHost: 10.0.0.1\r\n\r\n", NULL, 0, &rs),
        404);
    assert_true(body_is(&rs, "unknown", 7));
    resp_free(&rs);
    assert_int_equal(request(f->port_any,
                             "GET /admin HTTP/1.1\r\nHost: bookinfo.example.com\r\n\r\n", NULL, 0,
                             &rs),
                     404);
    resp_free(&rs);
    /* The api server answers its host only; its virtual host is not visible on the other port. */
    assert_int_equal(
        request(f->port_host, "GET /who HTTP/1.1\r\nHost: api.example\r\n\r\n", NULL, 0, &rs), 200);
    assert_true(body_is(&rs, "details", 7));
    resp_free(&rs);
    assert_int_equal(
        request(f->port_host, "GET /who HTTP/1.1\r\nHost: other.example\r\n\r\n", NULL, 0, &rs),
        404);
    resp_free(&rs);
    assert_int_equal(
        request(f->port_any, "GET /who HTTP/1.1\r\nHost: api.example\r\n\r\n", NULL, 0, &rs), 404);
    resp_free(&rs);
}

static void test_reports_as_source(void **state)
{
    gfx_t *f = *state;
    resp_t rs;
    char *before = scrape(f->admin);
    const char *lab[] = {"reporter=\"source\"",
                         "source_workload=\"istio-ingressgateway\"",
                         "source_workload_namespace=\"istio-system\"",
                         "destination_workload=\"productpage-v1\"",
                         "destination_service=\"productpage.default.svc.cluster.local\"",
                         "response_code=\"200\"",
                         NULL};
    double n0 = series(before, "istio_requests_total", lab);
    wf_free(before);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(
            request(f->port_any, "GET /productpage HTTP/1.1\r\nHost: x\r\n\r\n", NULL, 0, &rs),
            200);
        resp_free(&rs);
    }
    char *after = scrape(f->admin);
    assert_int_equal(series(after, "istio_requests_total", lab) - (n0 < 0 ? 0 : n0), 3);
    wf_free(after);
}

/* Each mode refuses the other's snapshot, and a gateway needs one. */
static void test_mode_mismatch_refused(void **state)
{
    gfx_t *f = *state;
    char cmd[8600], out[512];
    snprintf(cmd, sizeof(cmd),
             "%s proxy --service gw --app-port 9 --inbound 127.0.0.1:%d --outbound off "
             "--admin 127.0.0.1:%d --config %s 2>&1; echo rc=$?",
             wt_weft_bin(), wt_free_port(), wt_free_port(), f->snap);
    run_cmd(cmd, out, sizeof(out));
    assert_non_null(
        strstr(out, "a gateway's snapshot (proxy.mode gateway): run with --mode gateway"));
    assert_non_null(strstr(out, "rc=2"));
    snprintf(cmd, sizeof(cmd),
             "%s proxy --mode gateway --service gw --admin 127.0.0.1:%d 2>&1; echo rc=$?",
             wt_weft_bin(), wt_free_port());
    run_cmd(cmd, out, sizeof(out));
    assert_non_null(strstr(out, "--mode gateway needs a --config snapshot"));
    assert_non_null(strstr(out, "rc=2"));
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_servers_route_by_their_port),
        cmocka_unit_test(test_reports_as_source),
        cmocka_unit_test(test_mode_mismatch_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
