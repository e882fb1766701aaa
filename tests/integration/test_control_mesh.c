/*
 * test_control_mesh.c - the mesh end to end with real processes: `weft control`, a productpage
 * app behind a real sidecar and a real ingress gateway (`weft proxy --mode gateway`), both fed
 * by the control plane. Istio's own bookinfo-gateway.yaml (ports substituted with free ones) is
 * applied with the real `weft apply`; the gateway, which starts with no servers, opens its port
 * when its compiled snapshot arrives and routes /productpage through the sidecar to the app,
 * over mutual TLS with the identities the control plane's CA issued. Then the control plane is
 * stopped: the proxies keep serving; restarted on the same data directory it still has the
 * resources and the workloads, and a change applied after the restart reaches the gateway (a newer
 * version, as versions grow across restarts).
 */
#include "test_proxy_common.h"
#include "wt_control.h"

#include <jansson.h>

typedef struct {
    wt_control_t w;
    char url[64];
    char boot_file[600];
} control_t;

/* A short lease: the proxies' heartbeats keep their workloads. */
static const char *const LEASE_SHORT[] = {"--lease-ttl", "3s", NULL};

/* `weft <args>` against the control plane with the admin token; stdout into out. */
static int cli(const control_t *c, const char *args, char *out, size_t cap)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "'%s' %s --control %s --token-file '%s' 2>&1", wt_weft_bin(), args,
             c->url, c->w.admin_file);
    return run_cmd(cmd, out, cap);
}

/* A file in dir holding text with every `from` replaced by `to`. */
static void write_subst(const char *path, const char *text, const char *const *from,
                        const char *const *to, size_t n)
{
    wf_buf_t b = WF_BUF_INIT;
    for (const char *p = text; *p != '\0';) {
        size_t i = 0;
        while (i < n && strncmp(p, from[i], strlen(from[i])) != 0) {
            i++;
        }
        if (i < n) {
            wf_buf_append(&b, to[i], strlen(to[i]));
            p += strlen(from[i]);
        } else {
            wf_buf_append(&b, p, 1);
            p++;
        }
    }
    wf_buf_append(&b, "", 1);
    wt_write_file(path, (const char *)b.data);
    wf_buf_free(&b);
}

/* GET path through the gateway's port; the status (-1: no connection) and X-Upstream. */
static int via_gateway(int port, const char *path, char *who, size_t cap)
{
    int fd = tcp_connect(port);
    if (fd < 0) {
        return -1;
    }
    char raw[512];
    snprintf(raw, sizeof(raw), "GET %s HTTP/1.1\r\nHost: bookinfo.example\r\n\r\n", path);
    resp_t rs;
    memset(&rs, 0, sizeof(rs));
    int st = -1;
    rd_t r;
    rd_init(&r, fd);
    if (send_str(fd, raw) && read_response(&r, &rs)) {
        st = rs.status;
        if (who != NULL && find_hdr(rs.head, "X-Upstream", who, cap) == NULL) {
            who[0] = '\0';
        }
    }
    rd_free(&r);
    close(fd);
    resp_free(&rs);
    return st;
}

/* Wait (up to 20 s) until GET path through the gateway answers want. */
static bool wait_status(int port, const char *path, int want)
{
    for (int i = 0; i < 400; i++) {
        if (via_gateway(port, path, NULL, 0) == want) {
            return true;
        }
        usleep(50 * 1000);
    }
    return false;
}

static void test_bookinfo_gateway_and_restart(void **state)
{
    char *ref = wt_ref_path("istio/bookinfo-gateway.yaml");
    char *gw_yaml = ref != NULL ? wt_read_file(ref, NULL) : NULL;
    wf_free(ref);
    if (gw_yaml == NULL) {
        wt_skip(); /* skipped: reference data not present */
    }
    control_t c;
    assert_int_equal(wt_control_new(&c.w, "cpmesh", LEASE_SHORT), 0);
    snprintf(c.url, sizeof(c.url), "http://127.0.0.1:%d", c.w.port);
    snprintf(c.boot_file, sizeof(c.boot_file), "%s/bootstrap-token", c.w.data);

    /* productpage v1: the app and its sidecar, which registers productpage-v1.default */
    upstream_t app;
    upstream_start(&app, "productpage-v1");
    proxy_t side;
    const char *side_extra[] = {"--service", "productpage", "--version", "v1", NULL};
    proxy_start_meshed(&side, app.port, &c.w, side_extra);

    /* the ingress gateway: no --config, labels bookinfo's Gateway selects */
    int gw_admin = wt_free_port(), gw_port = wt_free_port();
    char adm[32], in[32], log[700], out[8192];
    snprintf(adm, sizeof(adm), "127.0.0.1:%d", gw_admin);
    snprintf(in, sizeof(in), "127.0.0.1:%d", wt_free_port());
    snprintf(log, sizeof(log), "%s/gateway.log", c.w.dir);
    char *gw_argv[] = {(char *)wt_weft_bin(),
                       "proxy",
                       "--mode",
                       "gateway",
                       "--service",
                       "istio-ingressgateway",
                       "--namespace",
                       "istio-system",
                       "--labels",
                       "istio=ingressgateway",
                       "--gateway-bind",
                       "127.0.0.1",
                       "--admin",
                       adm,
                       "--inbound",
                       in,
                       "--concurrency",
                       "2",
                       "--control",
                       c.url,
                       "--bootstrap-token-file",
                       c.boot_file,
                       NULL};
    pid_t gw = wt_spawn(gw_argv, log);
    assert_true(wt_wait_port(gw_admin, 10000));
    /* registered, but no Gateway selects it yet: nothing to open */
    usleep(500 * 1000);
    assert_int_equal(ready(gw_admin, out, sizeof(out)), 503);
    assert_string_equal(out, "INITIALIZING\n");
    assert_int_equal(via_gateway(gw_port, "/productpage", NULL, 0), -1);

    /* Istio's file, with its ports (gateway 8080, productpage 9080) made free ones */
    char gwp[16], ppp[16], path[700];
    snprintf(gwp, sizeof(gwp), "number: %d", gw_port);
    snprintf(ppp, sizeof(ppp), "number: %d", side.inbound);
    const char *from[] = {"number: 8080", "number: 9080"}, *to[] = {gwp, ppp};
    snprintf(path, sizeof(path), "%s/bookinfo-gateway.yaml", c.w.dir);
    write_subst(path, gw_yaml, from, to, 2);
    char args[800];
    snprintf(args, sizeof(args), "apply -f '%s'", path);
    assert_int_equal(cli(&c, args, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "gateway.networking.istio.io/bookinfo-gateway created"));
    assert_non_null(strstr(out, "virtualservice.networking.istio.io/bookinfo created"));

    /* the gateway opens its server port and routes through the sidecar to the app */
    assert_true(wait_status(gw_port, "/productpage", 200));
    char who[64] = "";
    assert_int_equal(via_gateway(gw_port, "/productpage", who, sizeof(who)), 200);
    assert_string_equal(who, "productpage-v1");
    assert_int_equal(via_gateway(gw_port, "/who", NULL, 0), 404); /* no bookinfo match */
    /* the hop gateway -> sidecar is mutual TLS with identities from the control plane's CA
     * (once both hold their certificates: a proxy without one calls in plaintext) */
    for (int i = 0; i < 400 && (stat_value(gw_admin, "weft_proxy_cert_valid") != 1 ||
                                stat_value(side.admin, "weft_proxy_cert_valid") != 1);
         i++) {
        usleep(50 * 1000);
    }
    for (int i = 0; i < 2; i++) {
        assert_int_equal(via_gateway(gw_port, "/productpage", NULL, 0), 200);
    }
    char *m = scrape(side.admin);
    const char *mtls[] = {"reporter=\"destination\"",
                          "connection_security_policy=\"mutual_tls\"",
                          "source_principal=\"spiffe://cluster.local/ns/istio-system/sa/default\"",
                          "destination_principal=\"spiffe://cluster.local/ns/default/sa/default\"",
                          "response_code=\"200\"",
                          NULL};
    assert_true(series(m, "istio_requests_total", mtls) >= 2);
    wf_free(m);
    assert_int_equal(ready(gw_admin, out, sizeof(out)), 200);
    int before = atomic_load(&app.requests);
    assert_true(before >= 2);

    /* the control plane goes away: both proxies keep serving their last snapshot */
    assert_int_equal(wt_control_stop(&c.w), 0);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(via_gateway(gw_port, "/productpage", NULL, 0), 200);
    }
    assert_int_equal(atomic_load(&app.requests), before + 10);
    assert_int_equal(wt_control_start(&c.w, LEASE_SHORT), 0);

    /* resources survive; the workloads are back (persisted, renewed by heartbeats) */
    assert_int_equal(cli(&c, "get vs -A", out, sizeof(out)), 0);
    assert_non_null(strstr(out, "bookinfo"));
    assert_int_equal(cli(&c, "get gw", out, sizeof(out)), 0);
    assert_non_null(strstr(out, "bookinfo-gateway"));
    bool both = false;
    for (int i = 0; i < 100 && !both; i++) {
        assert_int_equal(cli(&c, "workloads", out, sizeof(out)), 0);
        both = strstr(out, "productpage-v1") != NULL && strstr(out, "istio-ingressgateway");
        if (!both) {
            usleep(100 * 1000);
        }
    }
    assert_true(both);

    /* a change after the restart reaches the gateway: every /productpage aborted with 555 */
    char fault[2048];
    snprintf(fault, sizeof(fault),
             "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n"
             "  name: bookinfo\nspec:\n  hosts: [\"*\"]\n  gateways: [bookinfo-gateway]\n"
             "  http:\n  - match:\n    - uri: {exact: /productpage}\n"
             "    fault:\n      abort:\n        httpStatus: 555\n"
             "        percentage: {value: 100}\n"
             "    route:\n    - destination:\n        host: productpage\n"
             "        port: {number: %d}\n",
             side.inbound);
    snprintf(path, sizeof(path), "%s/fault.yaml", c.w.dir);
    wt_write_file(path, fault);
    snprintf(args, sizeof(args), "apply -f '%s'", path);
    assert_int_equal(cli(&c, args, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "virtualservice.networking.istio.io/bookinfo configured"));
    assert_true(wait_status(gw_port, "/productpage", 555));

    /* both proxies acknowledge the current version */
    bool synced = false;
    for (int i = 0; i < 100 && !synced; i++) {
        assert_int_equal(cli(&c, "proxy-status", out, sizeof(out)), 0);
        const char *a = strstr(out, "istio-ingressgateway");
        const char *b = strstr(out, "productpage-v1");
        synced =
            a != NULL && b != NULL && strstr(out, "STALE") == NULL && strstr(out, "NACK") == NULL;
        if (!synced) {
            usleep(100 * 1000);
        }
    }
    if (!synced) {
        fprintf(stderr, "proxy-status:\n%s\n", out);
    }
    assert_true(synced);
    /* NAME ACKED SENT STATE: the gateway applied what it was sent last */
    char name[128], st_name[32];
    long long acked = 0, sent = -1;
    const char *line = strstr(out, "istio-ingressgateway");
    assert_int_equal(sscanf(line, "%127s %lld %lld %31s", name, &acked, &sent, st_name), 4);
    assert_string_equal(name, "istio-ingressgateway-unknown.istio-system"); /* --version unknown */
    assert_true(acked > 0);
    assert_int_equal(acked, sent);
    assert_string_equal(st_name, "SYNCED");
    /* everything in bookinfo's files is expressible in a snapshot: nothing left out */
    char *metrics = NULL;
    assert_int_equal(wt_http(c.w.port, "GET", "/metrics", NULL, 0, &metrics), 200);
    assert_non_null(strstr(metrics, "\nweft_control_config_skipped 0\n"));
    assert_non_null(strstr(metrics, "\nweft_control_proxies{state=\"synced\"} 2\n"));
    wf_free(metrics);

    int st = wt_stop(gw, 20000);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    proxy_stop(&side);
    upstream_stop(&app);
    assert_int_equal(wt_control_stop(&c.w), 0);
    wt_control_free(&c.w);
    wf_free(gw_yaml);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bookinfo_gateway_and_restart),
    };
    return wt_exit_code(cmocka_run_group_tests(tests, NULL, NULL));
}
