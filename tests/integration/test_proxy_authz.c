/*
 * test_proxy_authz.c - AuthorizationPolicy enforced by a real sidecar in front of a real app
 * that counts requests, with a real HTTP client (curl).
 *
 * First with a --config snapshot holding DENY and ALLOW policies: every combination of caller
 * address (127.0.0.1, 127.0.0.3: curl --interface), path, method and header is sent, and each
 * answer is what Istio's rules give: 403 `RBAC: access denied` with the app's count unchanged,
 * or the app's answer with the count one higher. Principal and namespace rules never let a
 * plaintext caller in. istio_requests_total (reporter destination, 403) and the proxy's authz
 * counters agree with the matrix. Then through `weft control`: AuthorizationPolicy YAML applied
 * with `weft apply` reaches the sidecar, which enforces it; a policy of another namespace does
 * not apply; a CUSTOM policy is refused at apply with a clear message.
 */
#include "test_proxy_common.h"
#include "wt_control.h"

#define RBAC_BODY "RBAC: access denied"

/* One request with curl from address src; the status (-1: curl failed), body into out. */
static int curl_req(const char *src, int port, const char *method, const char *path,
                    const char *header, char *out, size_t cap)
{
    char cmd[1024], buf[8192];
    snprintf(cmd, sizeof(cmd),
             "curl -s -m 10 --interface %s -X %s %s%s%s %s -w '\\n%%{http_code}' "
             "'http://127.0.0.1:%d%s'",
             src, method, header ? "-H '" : "", header ? header : "", header ? "'" : "",
             strcmp(method, "POST") == 0 ? "--data-binary x" : "", port, path);
    if (run_cmd(cmd, buf, sizeof(buf)) != 0) {
        return -1;
    }
    char *nl = strrchr(buf, '\n');
    if (nl == NULL) {
        return -1;
    }
    *nl = '\0';
    size_t n = (size_t)(nl - buf) < cap - 1 ? (size_t)(nl - buf) : cap - 1;
    memcpy(out, buf, n);
    out[n] = '\0';
    return atoi(nl + 1);
}

/* The matrix's policies: written for the app port (the destination port of inbound requests). */
static void write_snapshot(const char *path, int app_port)
{
    char text[4096];
    snprintf(text, sizeof(text),
             "{\"schema\": 1, \"version\": 1,\n"
             " \"proxy\": {\"service\": \"reviews\", \"namespace\": \"default\"},\n"
             " \"inbound\": {\"authorization\": {\"policies\": [\n"
             "  {\"name\": \"default.deny-admin\", \"action\": \"DENY\", \"rules\": [\n"
             "    {\"to\": [{\"operation\": {\"paths\": [\"/admin*\"]}}]},\n"
             "    {\"from\": [{\"source\": {\"ip_blocks\": [\"127.0.0.3/32\"]}}],\n"
             "     \"to\": [{\"operation\": {\"methods\": [\"POST\"]}}]}]},\n"
             "  {\"name\": \"default.audit\", \"action\": \"AUDIT\", \"rules\": [{}]},\n"
             "  {\"name\": \"default.allow\", \"action\": \"ALLOW\", \"rules\": [\n"
             "    {\"to\": [{\"operation\": {\"methods\": [\"GET\", \"HEAD\"],\n"
             "       \"paths\": [\"/hello\", \"/status/{*}\"], \"ports\": [\"%d\"]}}]},\n"
             "    {\"to\": [{\"operation\": {\"methods\": [\"POST\"]}}],\n"
             "     \"when\": [{\"key\": \"request.headers[x-role]\", \"values\": [\"admin\"]}]},\n"
             "    {\"from\": [{\"source\": {\"principals\": "
             "[\"cluster.local/ns/default/sa/sleep\"]}}]},\n"
             "    {\"from\": [{\"source\": {\"namespaces\": [\"default\"]}}],\n"
             "     \"to\": [{\"operation\": {\"paths\": [\"/admin/x\", \"/who\"]}}]},\n"
             "    {\"from\": [{\"source\": {\"ip_blocks\": [\"127.0.0.1\"]}}],\n"
             "     \"to\": [{\"operation\": {\"paths\": [\"/who\"]}}]}]}]}}}\n",
             app_port);
    wt_write_file(path, text);
}

/* What Istio's evaluation gives for the policies above (callers have no mTLS). */
static bool expect_allowed(const char *src, const char *method, const char *path, bool role)
{
    bool post = strcmp(method, "POST") == 0;
    if (strncmp(path, "/admin", 6) == 0 || (strcmp(src, "127.0.0.3") == 0 && post)) {
        return false; /* default.deny-admin */
    }
    if (!post && (strcmp(path, "/hello") == 0 || strcmp(path, "/status/201") == 0)) {
        return true;
    }
    if (post && role) {
        return true;
    }
    /* The principals and namespaces rules never match a plaintext caller. */
    return strcmp(path, "/who") == 0 && strcmp(src, "127.0.0.1") == 0;
}

static void test_matrix_from_config(void **state)
{
    (void)state;
    upstream_t app;
    upstream_start(&app, "reviews-v1");
    char *dir = wt_tmpdir("pxauthz");
    char snap[600];
    snprintf(snap, sizeof(snap), "%s/snapshot.json", dir);
    write_snapshot(snap, app.port);
    proxy_t px;
    proxy_start_with(&px, app.port, snap, "2", NULL);

    static const char *const srcs[] = {"127.0.0.1", "127.0.0.3"};
    static const char *const paths[] = {"/hello", "/status/201", "/status/201/x", "/admin/x",
                                        "/who"};
    static const char *const methods[] = {"GET", "POST"};
    int allowed = 0, denied = 0;
    for (size_t s = 0; s < 2; s++) {
        for (size_t p = 0; p < sizeof(paths) / sizeof(paths[0]); p++) {
            for (size_t m = 0; m < 2; m++) {
                for (int role = 0; role < 2; role++) {
                    int before = atomic_load(&app.requests);
                    char body[4096];
                    int st = curl_req(srcs[s], px.inbound, methods[m], paths[p],
                                      role ? "x-role: admin" : NULL, body, sizeof(body));
                    int after = atomic_load(&app.requests);
                    bool want = expect_allowed(srcs[s], methods[m], paths[p], role);
                    if (want != (st != 403) || (want ? after != before + 1 : after != before) ||
                        (!want && strcmp(body, RBAC_BODY) != 0)) {
                        fail_msg("%s %s from %s%s: status %d body \"%s\" app %d->%d, want %s",
                                 methods[m], paths[p], srcs[s], role ? " as admin" : "", st, body,
                                 before, after, want ? "allowed" : "denied");
                    }
                    allowed += want;
                    denied += !want;
                }
            }
        }
    }
    assert_int_equal(allowed + denied, 40);
    assert_true(allowed >= 10 && denied >= 10);
    assert_int_equal(atomic_load(&app.requests), allowed);

    /* Telemetry: every denial is an inbound 403, counted on both sides of the decision. */
    char *m = scrape(px.admin);
    const char *lab403[] = {"reporter=\"destination\"", "response_code=\"403\"", NULL};
    assert_true(series(m, "istio_requests_total", lab403) == denied);
    wf_free(m);
    assert_true(stat_value(px.admin, "weft_proxy_authz_denied_total") == denied);
    assert_true(stat_value(px.admin, "weft_proxy_authz_allowed_total") == allowed);

    /* Policies see the path normalized (Istio's BASE), and the app gets that path: a dot
     * segment neither hides /admin from the DENY nor reaches the app un-normalized. */
    resp_t rn;
    memset(&rn, 0, sizeof(rn));
    int n0 = atomic_load(&app.requests);
    assert_int_equal(
        request(px.inbound, "GET /static/../hello HTTP/1.1\r\nHost: r\r\n\r\n", NULL, 0, &rn), 200);
    assert_true(body_is(&rn, "hello world", 11)); /* the app answers this for /hello only */
    resp_free(&rn);
    static const char *const sneaky[] = {"/hello/../admin/x", "/hello/%2E%2e/admin/x",
                                         "/hello\\..\\admin", "/./admin"};
    for (size_t i = 0; i < sizeof(sneaky) / sizeof(sneaky[0]); i++) {
        char raw[256];
        snprintf(raw, sizeof(raw), "GET %s HTTP/1.1\r\nHost: r\r\n\r\n", sneaky[i]);
        memset(&rn, 0, sizeof(rn));
        int code = request(px.inbound, raw, NULL, 0, &rn);
        if (code != 403) {
            fail_msg("%s: %d", sneaky[i], code);
        }
        resp_free(&rn);
    }
    assert_int_equal(atomic_load(&app.requests), n0 + 1);
    denied += 4;
    allowed += 1;
    m = scrape(px.admin);
    assert_true(series(m, "istio_requests_total", lab403) == denied);
    wf_free(m);
    assert_true(stat_value(px.admin, "weft_proxy_authz_denied_total") == denied);
    assert_true(stat_value(px.admin, "weft_proxy_authz_allowed_total") == allowed);

    /* A denied request with a body does not reach the app either, and the connection is
     * usable for nothing more (the body was not read). */
    resp_t rs;
    memset(&rs, 0, sizeof(rs));
    int before = atomic_load(&app.requests);
    int st =
        request(px.inbound, "POST /admin/x HTTP/1.1\r\nHost: reviews\r\nContent-Length: 5\r\n\r\n",
                "hello", 5, &rs);
    assert_int_equal(st, 403);
    assert_true(body_is(&rs, RBAC_BODY, strlen(RBAC_BODY)));
    resp_free(&rs);
    assert_int_equal(atomic_load(&app.requests), before);

    proxy_stop(&px);
    upstream_stop(&app);
    wt_rm_rf(dir);
    wf_free(dir);
}

/* A TCP port (protocol TCP: bytes proxied, no HTTP parsing): the policies are read with
 * Istio's TCP semantics on the client's first bytes (as Envoy's RBAC network filter does, so
 * that over mTLS the peer's identity is known) and a denied connection is closed before the app
 * sees a byte. */
static void test_tcp_port(void **state)
{
    (void)state;
    upstream_t app;
    upstream_start(&app, "db");
    char *dir = wt_tmpdir("pxauthz");
    char snap[600], text[2048];
    snprintf(snap, sizeof(snap), "%s/snapshot.json", dir);
    int tport = wt_free_port();
    snprintf(text, sizeof(text),
             "{\"schema\": 1, \"version\": 1, \"proxy\": {\"service\": \"reviews\"},\n"
             " \"inbound\": {\"ports\": [{\"port\": %d, \"target_port\": %d, \"protocol\": "
             "\"TCP\"}],\n"
             "  \"authorization\": {\"policies\": [\n"
             "   {\"name\": \"default.deny-3\", \"action\": \"DENY\", \"rules\": [\n"
             "     {\"from\": [{\"source\": {\"ip_blocks\": [\"127.0.0.3\"]}}]}]},\n"
             "   {\"name\": \"default.allow-port\", \"rules\": [\n"
             "     {\"to\": [{\"operation\": {\"paths\": [\"/who\"]}}]},\n"
             "     {\"to\": [{\"operation\": {\"ports\": [\"%d\"]}}]}]}]}}}\n",
             tport, app.port, app.port);
    wt_write_file(snap, text);
    proxy_t px;
    proxy_start_with(&px, wt_free_port(), snap, "1", NULL);
    assert_true(wt_wait_port(tport, 10000));
    /* wt_wait_port's own probe sent no byte: nothing was decided for it. */
    double allowed0 = stat_value(px.admin, "weft_proxy_authz_allowed_total");
    assert_true(allowed0 == 0);
    char body[256];
    assert_int_equal(curl_req("127.0.0.1", tport, "GET", "/hello", NULL, body, sizeof(body)), 200);
    assert_string_equal(body, "hello world");
    assert_int_equal(atomic_load(&app.requests), 1);
    /* Denied: closed at once, nothing reached the app. */
    assert_true(curl_req("127.0.0.3", tport, "GET", "/hello", NULL, body, sizeof(body)) <= 0);
    assert_int_equal(atomic_load(&app.requests), 1);
    assert_true(stat_value(px.admin, "weft_proxy_authz_allowed_total") == allowed0 + 1);
    assert_true(stat_value(px.admin, "weft_proxy_authz_denied_total") == 1);
    proxy_stop(&px);
    upstream_stop(&app);
    wt_rm_rf(dir);
    wf_free(dir);
}

/* A gateway's server ports: its own policies apply to what enters the mesh through it (ports
 * are the server's, hosts compare with and without the port); reporter is the source. */
static void test_gateway(void **state)
{
    (void)state;
    upstream_t app;
    upstream_start(&app, "shop");
    char *dir = wt_tmpdir("pxauthzgw");
    int gport = wt_free_port(), admin = wt_free_port();
    char snap[600], text[4096];
    snprintf(snap, sizeof(snap), "%s/gateway.json", dir);
    snprintf(text, sizeof(text),
             "{\"schema\": 1, \"version\": 1,\n"
             " \"proxy\": {\"service\": \"istio-ingressgateway\", \"namespace\": "
             "\"istio-system\", \"mode\": \"gateway\"},\n"
             " \"inbound\": {\"authorization\": {\"policies\": [\n"
             "  {\"name\": \"istio-system.deny-admin\", \"action\": \"DENY\", \"rules\": [\n"
             "    {\"to\": [{\"operation\": {\"ports\": [\"%d\"], \"paths\": [\"/admin*\"]}}]}]},\n"
             "  {\"name\": \"istio-system.shop-only\", \"rules\": [\n"
             "    {\"to\": [{\"operation\": {\"hosts\": [\"shop.example.com\"]}}]}]}]}},\n"
             " \"gateway\": {\"servers\": [{\"name\": \"http\", \"port\": %d, \"protocol\": "
             "\"HTTP\", \"hosts\": [\"*\"]}]},\n"
             " \"virtual_hosts\": [{\"name\": \"*:http\", \"port\": %d, \"domains\": [\"*\"],\n"
             "   \"routes\": [{\"route\": [{\"destination\": {\"host\": "
             "\"shop.default.svc.cluster.local\"}}]}]}],\n"
             " \"clusters\": [{\"host\": \"shop.default.svc.cluster.local\", \"port\": 9080,\n"
             "   \"endpoints\": [{\"address\": \"127.0.0.1\", \"port\": %d}]}]}\n",
             gport, gport, gport, app.port);
    wt_write_file(snap, text);
    char adm[32], log[700];
    snprintf(adm, sizeof(adm), "127.0.0.1:%d", admin);
    snprintf(log, sizeof(log), "%s/gateway.log", dir);
    char *argv[] = {(char *)wt_weft_bin(),
                    "proxy",
                    "--mode",
                    "gateway",
                    "--service",
                    "istio-ingressgateway",
                    "--namespace",
                    "istio-system",
                    "--gateway-bind",
                    "127.0.0.1",
                    "--admin",
                    adm,
                    "--config",
                    snap,
                    "--concurrency",
                    "1",
                    NULL};
    pid_t pid = wt_spawn(argv, log);
    assert_true(wt_wait_port(admin, 10000));
    assert_true(wt_wait_port(gport, 10000));
    static const struct {
        const char *path, *host;
        int status;
    } rows[] = {
        {"/hello", "shop.example.com", 200},
        {"/hello", "SHOP.example.com:8080", 200},
        {"/hello", "other.example.com", 403},
        {"/admin/x", "shop.example.com", 403},
        {"/x/../admin", "shop.example.com", 403},
        {"/static/../hello", "shop.example.com", 200}, /* routed and sent as /hello */
    };
    int denied = 0;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char raw[256];
        snprintf(raw, sizeof(raw), "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", rows[i].path,
                 rows[i].host);
        resp_t rs;
        memset(&rs, 0, sizeof(rs));
        int before = atomic_load(&app.requests);
        int st = request(gport, raw, NULL, 0, &rs);
        if (st != rows[i].status) {
            fail_msg("%s %s: %d, want %d", rows[i].host, rows[i].path, st, rows[i].status);
        }
        if (st == 403) {
            assert_true(body_is(&rs, RBAC_BODY, strlen(RBAC_BODY)));
            assert_int_equal(atomic_load(&app.requests), before);
            denied++;
        } else {
            assert_int_equal(atomic_load(&app.requests), before + 1);
        }
        resp_free(&rs);
    }
    char *m = scrape(admin);
    const char *lab403[] = {"reporter=\"source\"", "response_code=\"403\"", NULL};
    assert_true(series(m, "istio_requests_total", lab403) == denied);
    wf_free(m);
    assert_true(stat_value(admin, "weft_proxy_authz_denied_total") == denied);
    int st = wt_stop(pid, 20000);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    upstream_stop(&app);
    wt_rm_rf(dir);
    wf_free(dir);
}

/* `weft <args>` against the control plane with the admin token; output into out. */
static int cli(const wt_control_t *c, const char *args, char *out, size_t cap)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "'%s' %s --control http://127.0.0.1:%d --token-file '%s' 2>&1",
             wt_weft_bin(), args, c->port, c->admin_file);
    return run_cmd(cmd, out, cap);
}

static int get_status(int port, const char *method, const char *path)
{
    char body[4096];
    return curl_req("127.0.0.1", port, method, path, NULL, body, sizeof(body));
}

static const char k_policies[] =
    "apiVersion: security.istio.io/v1\n"
    "kind: AuthorizationPolicy\n"
    "metadata: {name: reviews-allow, namespace: default}\n"
    "spec:\n"
    "  selector: {matchLabels: {app: reviews}}\n"
    "  action: ALLOW\n"
    "  rules:\n"
    "  - to: [{operation: {methods: [GET], paths: [/hello, '/status/{*}']}}]\n"
    "---\n"
    "apiVersion: security.istio.io/v1\n"
    "kind: AuthorizationPolicy\n"
    "metadata: {name: deny-500, namespace: default}\n"
    "spec:\n"
    "  action: DENY\n"
    "  rules:\n"
    "  - to: [{operation: {paths: [/status/500]}}]\n"
    "---\n"
    "apiVersion: security.istio.io/v1\n"
    "kind: AuthorizationPolicy\n"
    "metadata: {name: deny-all, namespace: other}\n"
    "spec: {}\n";

static void test_applied_through_control(void **state)
{
    (void)state;
    wt_control_t c;
    assert_int_equal(wt_control_new(&c, "cpauthz", NULL), 0);
    char url[64], boot[700];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", c.port);
    snprintf(boot, sizeof(boot), "%s/bootstrap-token", c.data);
    upstream_t app;
    upstream_start(&app, "reviews-v1");
    proxy_t px;
    const char *extra[] = {
        "--service", "reviews", "--version", "v1", "--control", url, "--bootstrap-token-file",
        boot,        NULL};
    proxy_start_with(&px, app.port, NULL, "1", extra);
    /* The first snapshot (no policies) arrives: everything reaches the app. */
    int st = -1;
    for (int i = 0; i < 400 && st != 500; i++) {
        st = get_status(px.inbound, "GET", "/status/500");
        if (st != 500) {
            usleep(50 * 1000);
        }
    }
    assert_int_equal(st, 500);
    assert_int_equal(get_status(px.inbound, "POST", "/hello"), 200);

    char path[700], out[8192], args[800];
    snprintf(path, sizeof(path), "%s/policies.yaml", c.dir);
    wt_write_file(path, k_policies);
    snprintf(args, sizeof(args), "apply -f '%s'", path);
    assert_int_equal(cli(&c, args, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "authorizationpolicy.security.istio.io/reviews-allow created"));
    assert_non_null(strstr(out, "authorizationpolicy.security.istio.io/deny-500 created"));

    /* Pushed: the DENY takes effect ... */
    for (int i = 0; i < 400 && st != 403; i++) {
        st = get_status(px.inbound, "GET", "/status/500");
        if (st != 403) {
            usleep(50 * 1000);
        }
    }
    assert_int_equal(st, 403);
    /* ... and so does the ALLOW; other.deny-all does not apply to this namespace. */
    int before = atomic_load(&app.requests);
    assert_int_equal(get_status(px.inbound, "GET", "/hello"), 200);
    assert_int_equal(get_status(px.inbound, "GET", "/status/201"), 201);
    assert_int_equal(get_status(px.inbound, "POST", "/hello"), 403);
    assert_int_equal(get_status(px.inbound, "GET", "/who"), 403);
    assert_int_equal(get_status(px.inbound, "GET", "/status/201/x"), 403);
    assert_int_equal(atomic_load(&app.requests), before + 2);

    /* CUSTOM is refused at apply, saying why. */
    snprintf(path, sizeof(path), "%s/custom.yaml", c.dir);
    wt_write_file(path, "apiVersion: security.istio.io/v1\n"
                        "kind: AuthorizationPolicy\n"
                        "metadata: {name: ext, namespace: default}\n"
                        "spec:\n"
                        "  action: CUSTOM\n"
                        "  provider: {name: opa}\n"
                        "  rules: [{}]\n");
    snprintf(args, sizeof(args), "apply -f '%s'", path);
    assert_int_not_equal(cli(&c, args, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "CUSTOM is not supported: weft has no external authorizer"));

    /* Deleting the ALLOW policy opens the other paths again (the DENY stays). */
    snprintf(args, sizeof(args), "delete authorizationpolicy reviews-allow -n default");
    assert_int_equal(cli(&c, args, out, sizeof(out)), 0);
    for (int i = 0; i < 400 && st != 200; i++) {
        st = get_status(px.inbound, "POST", "/hello");
        if (st != 200) {
            usleep(50 * 1000);
        }
    }
    assert_int_equal(st, 200);
    assert_int_equal(get_status(px.inbound, "GET", "/status/500"), 403);

    proxy_stop(&px);
    upstream_stop(&app);
    wt_control_stop(&c);
    wt_control_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matrix_from_config),
        cmocka_unit_test(test_tcp_port),
        cmocka_unit_test(test_gateway),
        cmocka_unit_test(test_applied_through_control),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
