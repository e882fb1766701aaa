/*
 * test_mesh_security.c - mesh security end to end with real processes (issue #7): `weft
 * control` as the mesh CA with short-lived certificates, a ratings app behind its sidecar, and
 * three callers' sidecars (reviews and productpage in namespace default, sleep in namespace
 * other), each with its own service account. The test is each caller's app: it sends through
 * the caller sidecar's outbound listener to ratings. It checks, in order on one mesh:
 *   - auto mTLS: every sidecar gets a certificate from the CA, the hop is mutual TLS and both
 *     sides' Istio metrics carry the principals from the handshake;
 *   - PeerAuthentication STRICT (mesh-wide): a plaintext request to ratings' sidecar never
 *     reaches the app, while the callers' mTLS requests still do;
 *   - AuthorizationPolicy: a matrix of (caller, method, path) against ALLOW and DENY policies,
 *     DENY winning, and an ALLOW policy without rules denying everything;
 *   - rotation: certificates that live 6 s renew several times, then the root rotates, while a
 *     caller sends steadily: not one request fails.
 */
#include "test_proxy_common.h"
#include "wt_control.h"

#include <jansson.h>

#define CERT_TTL "6s"

typedef enum { REVIEWS, PRODUCTPAGE, SLEEP, N_CALLERS } caller_t;

static const char *const caller_svc[N_CALLERS] = {"reviews", "productpage", "sleep"};
static const char *const caller_ns[N_CALLERS] = {"default", "default", "other"};
static const char *const caller_sa[N_CALLERS] = {"bookinfo-reviews", "bookinfo-productpage",
                                                 "sleep"};

typedef struct {
    wt_control_t c;
    char url[64];
    upstream_t ratings_app;
    upstream_t caller_app; /* the callers' --app-port (never called: the test is their app) */
    proxy_t ratings;
    proxy_t callers[N_CALLERS];
} mesh_t;

static const char *const CONTROL_FLAGS[] = {
    "--lease-ttl",       "3s",  "--cert-ttl", CERT_TTL, "--ca-propagation-timeout", "3s",
    "--ca-root-overlap", "30s", NULL};

/* `weft <args>` against the control plane with the admin token; its output into out. */
static int cli(const mesh_t *m, const char *args, char *out, size_t cap)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "'%s' %s --control %s --token-file '%s' 2>&1", wt_weft_bin(), args,
             m->url, m->c.admin_file);
    return run_cmd(cmd, out, cap);
}

/* Apply YAML text with the real `weft apply`. */
static void apply(const mesh_t *m, const char *name, const char *yaml)
{
    char path[700], args[800], out[4096];
    snprintf(path, sizeof(path), "%s/%s.yaml", m->c.dir, name);
    wt_write_file(path, yaml);
    snprintf(args, sizeof(args), "apply -f '%s'", path);
    int st = cli(m, args, out, sizeof(out));
    if (st != 0) {
        fprintf(stderr, "weft apply %s: %s\n", name, out);
    }
    assert_int_equal(st, 0);
}

static void delete_res(const mesh_t *m, const char *kind, const char *ns, const char *name)
{
    char args[400], out[4096];
    snprintf(args, sizeof(args), "delete %s %s -n %s", kind, name, ns);
    assert_int_equal(cli(m, args, out, sizeof(out)), 0);
}

static void sidecar_start(mesh_t *m, proxy_t *p, int app_port, const char *svc, const char *ns,
                          const char *sa)
{
    const char *extra[] = {"--service",         svc, "--version", "v1", "--namespace", ns,
                           "--service-account", sa,  NULL};
    proxy_start_meshed(p, app_port, &m->c, extra);
}

/* Caller c's request for ratings through its sidecar; the status, -1 without an answer; the
 * body's first bytes into body (may be NULL). */
static int call(const mesh_t *m, caller_t c, const char *method, const char *path, char *body,
                size_t cap)
{
    char raw[512];
    snprintf(raw, sizeof(raw),
             "%s %s HTTP/1.1\r\nHost: ratings.default.svc.cluster.local:%d\r\n"
             "Content-Length: 0\r\nConnection: close\r\n\r\n",
             method, path, m->ratings.inbound);
    int fd = tcp_connect(m->callers[c].outbound);
    if (fd < 0) {
        return -1;
    }
    resp_t rs;
    memset(&rs, 0, sizeof(rs));
    rd_t r;
    rd_init(&r, fd);
    int st = send_str(fd, raw) && read_response(&r, &rs) ? rs.status : -1;
    if (body != NULL) {
        snprintf(body, cap, "%.*s", (int)rs.body.len, rs.body.data ? (char *)rs.body.data : "");
    }
    rd_free(&r);
    close(fd);
    resp_free(&rs);
    return st;
}

/* A plaintext request straight to ratings' sidecar inbound port: the status, -1 when the
 * connection was refused or closed without an answer. */
static int plaintext_to_ratings(const mesh_t *m)
{
    char raw[256];
    snprintf(raw, sizeof(raw), "GET /hello HTTP/1.1\r\nHost: ratings\r\nConnection: close\r\n\r\n");
    int fd = tcp_connect(m->ratings.inbound);
    if (fd < 0) {
        return -1;
    }
    resp_t rs;
    memset(&rs, 0, sizeof(rs));
    rd_t r;
    rd_init(&r, fd);
    int st = send_str(fd, raw) && read_response(&r, &rs) ? rs.status : -1;
    rd_free(&r);
    close(fd);
    resp_free(&rs);
    return st;
}

/* Poll until caller c's request answers want (up to 20 s). */
static bool wait_call(const mesh_t *m, caller_t c, const char *method, const char *path, int want)
{
    int st = -1;
    for (int i = 0; i < 400; i++) {
        if ((st = call(m, c, method, path, NULL, 0)) == want) {
            return true;
        }
        usleep(50 * 1000);
    }
    char *dump = NULL;
    wt_http(m->callers[c].admin, "GET", "/config_dump", NULL, 0, &dump);
    fprintf(stderr, "%s %s %s answers %d, not %d; its sidecar's snapshot:\n%s\n", caller_svc[c],
            method, path, st, want, dump != NULL ? dump : "(none)");
    wf_free(dump);
    return false;
}

static int mesh_setup(void **state)
{
    mesh_t *m = wf_calloc(1, sizeof(*m));
    if (wt_control_new(&m->c, "mtlsmesh", CONTROL_FLAGS) != 0) {
        return -1;
    }
    snprintf(m->url, sizeof(m->url), "http://127.0.0.1:%d", m->c.port);
    upstream_start(&m->ratings_app, "ratings-v1");
    upstream_start(&m->caller_app, "caller");
    sidecar_start(m, &m->ratings, m->ratings_app.port, "ratings", "default", "bookinfo-ratings");
    for (int i = 0; i < N_CALLERS; i++) {
        sidecar_start(m, &m->callers[i], m->caller_app.port, caller_svc[i], caller_ns[i],
                      caller_sa[i]);
    }
    *state = m;
    return 0;
}

static int mesh_teardown(void **state)
{
    mesh_t *m = *state;
    for (int i = 0; i < N_CALLERS; i++) {
        proxy_stop(&m->callers[i]);
    }
    proxy_stop(&m->ratings);
    upstream_stop(&m->caller_app);
    upstream_stop(&m->ratings_app);
    wt_control_stop(&m->c);
    wt_control_free(&m->c);
    wf_free(m);
    return 0;
}

/* Every sidecar holds a certificate from the CA; a caller's request is mTLS with both
 * principals in both sides' metrics. */
static void test_auto_mtls(void **state)
{
    mesh_t *m = *state;
    proxy_t *all[N_CALLERS + 1] = {&m->ratings, &m->callers[0], &m->callers[1], &m->callers[2]};
    for (int i = 0; i < N_CALLERS + 1; i++) {
        bool valid = false;
        for (int k = 0; k < 400 && !valid; k++) {
            valid = stat_value(all[i]->admin, "weft_proxy_cert_valid") == 1;
            if (!valid) {
                usleep(50 * 1000);
            }
        }
        assert_true(valid);
    }
    assert_true(wait_call(m, REVIEWS, "GET", "/hello", 200));
    assert_int_equal(call(m, REVIEWS, "GET", "/who", NULL, 0), 200);

    char *dst = scrape(m->ratings.admin);
    const char *dl[] = {
        "reporter=\"destination\"",
        "connection_security_policy=\"mutual_tls\"",
        "source_principal=\"spiffe://cluster.local/ns/default/sa/bookinfo-reviews\"",
        "destination_principal=\"spiffe://cluster.local/ns/default/sa/"
        "bookinfo-ratings\"",
        "response_code=\"200\"",
        NULL};
    assert_true(series(dst, "istio_requests_total", dl) >= 2);
    wf_free(dst);
    char *src = scrape(m->callers[REVIEWS].admin);
    const char *sl[] = {"reporter=\"source\"",
                        "destination_principal=\"spiffe://cluster.local/ns/default/sa/"
                        "bookinfo-ratings\"",
                        "response_code=\"200\"", NULL};
    assert_true(series(src, "istio_requests_total", sl) >= 2);
    wf_free(src);

    /* PERMISSIVE (the default): plaintext is served too, and labelled so */
    assert_int_equal(plaintext_to_ratings(m), 200);
    dst = scrape(m->ratings.admin);
    const char *pl[] = {"reporter=\"destination\"", "connection_security_policy=\"none\"",
                        "source_principal=\"unknown\"", NULL};
    assert_true(series(dst, "istio_requests_total", pl) >= 1);
    wf_free(dst);
}

/* Mesh-wide STRICT: plaintext never reaches the app; mTLS callers still do. */
static void test_strict(void **state)
{
    mesh_t *m = *state;
    apply(m, "strict",
          "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
          "metadata:\n  name: default\n  namespace: istio-system\n"
          "spec:\n  mtls:\n    mode: STRICT\n");
    bool refused = false;
    for (int i = 0; i < 400 && !refused; i++) {
        refused = plaintext_to_ratings(m) == -1;
        if (!refused) {
            usleep(50 * 1000);
        }
    }
    assert_true(refused);
    int before = atomic_load(&m->ratings_app.requests);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(plaintext_to_ratings(m), -1);
    }
    assert_int_equal(atomic_load(&m->ratings_app.requests), before);
    for (int c = 0; c < N_CALLERS; c++) {
        assert_int_equal(call(m, (caller_t)c, "GET", "/hello", NULL, 0), 200);
    }
    assert_int_equal(atomic_load(&m->ratings_app.requests), before + N_CALLERS);
}

/* Who may call what, with the identities the CA gave. */
static void test_authorization_matrix(void **state)
{
    mesh_t *m = *state;
    apply(m, "authz",
          "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
          "metadata:\n  name: ratings-viewer\n  namespace: default\nspec:\n"
          "  selector:\n    matchLabels:\n      app: ratings\n  action: ALLOW\n  rules:\n"
          "  - from:\n    - source:\n        principals: [\"cluster.local/ns/default/sa/"
          "bookinfo-reviews\"]\n"
          "    to:\n    - operation:\n        methods: [\"GET\"]\n        paths: [\"/status/*\"]\n"
          "  - from:\n    - source:\n        namespaces: [\"other\"]\n"
          "    to:\n    - operation:\n        methods: [\"GET\"]\n        paths: [\"/hello\"]\n"
          "---\n"
          "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
          "metadata:\n  name: ratings-deny-secret\n  namespace: default\nspec:\n"
          "  selector:\n    matchLabels:\n      app: ratings\n  action: DENY\n  rules:\n"
          "  - to:\n    - operation:\n        paths: [\"/status/418\"]\n");
    assert_true(wait_call(m, PRODUCTPAGE, "GET", "/hello", 403));

    char *m0 = scrape(m->ratings.admin);
    const char *dl[] = {"reporter=\"destination\"", "response_code=\"403\"",
                        "source_principal=\"spiffe://cluster.local/ns/default/sa/"
                        "bookinfo-productpage\"",
                        NULL};
    double denied0 = series(m0, "istio_requests_total", dl); /* wait_call's */
    wf_free(m0);
    static const char *const methods[] = {"GET", "POST"};
    static const char *const paths[] = {"/status/200", "/status/418", "/hello", "/who"};
    /* allowed[caller][method][path] */
    static const bool allowed[N_CALLERS][2][4] = {
        [REVIEWS] = {{true, false, false, false}, {false, false, false, false}},
        [PRODUCTPAGE] = {{false, false, false, false}, {false, false, false, false}},
        [SLEEP] = {{false, false, true, false}, {false, false, false, false}},
    };
    for (int c = 0; c < N_CALLERS; c++) {
        for (int k = 0; k < 2; k++) {
            for (int p = 0; p < 4; p++) {
                int before = atomic_load(&m->ratings_app.requests);
                char body[64];
                int st = call(m, (caller_t)c, methods[k], paths[p], body, sizeof(body));
                int after = atomic_load(&m->ratings_app.requests);
                if (allowed[c][k][p]) {
                    assert_int_equal(st, 200);
                    assert_int_equal(after, before + 1);
                } else {
                    if (st != 403) {
                        fprintf(stderr, "%s %s %s: %d\n", caller_svc[c], methods[k], paths[p], st);
                    }
                    assert_int_equal(st, 403);
                    assert_string_equal(body, "RBAC: access denied");
                    assert_int_equal(after, before);
                }
            }
        }
    }
    /* productpage's 8 denials are in the destination's metrics with its proven identity */
    char *dst = scrape(m->ratings.admin);
    assert_int_equal(series(dst, "istio_requests_total", dl), denied0 + 8);
    wf_free(dst);

    /* An ALLOW policy with no rules allows nothing: with the viewer policy gone, it is the only
     * ALLOW policy and everything is refused. */
    apply(m, "allow-nothing",
          "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
          "metadata:\n  name: allow-nothing\n  namespace: default\nspec:\n  action: ALLOW\n");
    delete_res(m, "authorizationpolicy", "default", "ratings-viewer");
    assert_true(wait_call(m, REVIEWS, "GET", "/status/200", 403));
    assert_int_equal(call(m, SLEEP, "GET", "/health", NULL, 0), 403);
    delete_res(m, "authorizationpolicy", "default", "allow-nothing");
    delete_res(m, "authorizationpolicy", "default", "ratings-deny-secret");
    assert_true(wait_call(m, PRODUCTPAGE, "GET", "/who", 200));
}

typedef struct {
    const mesh_t *m;
    atomic_bool stop;
    atomic_long ok;
    atomic_long failed;
} traffic_t;

static void *traffic_thread(void *arg)
{
    traffic_t *t = arg;
    while (!atomic_load(&t->stop)) {
        int st = call(t->m, REVIEWS, "GET", "/hello", NULL, 0);
        if (st == 200) {
            atomic_fetch_add(&t->ok, 1);
        } else {
            fprintf(stderr, "rotation: a request failed: %d\n", st);
            atomic_fetch_add(&t->failed, 1);
        }
        usleep(10 * 1000);
    }
    return NULL;
}

/* The serial of the leaf a sidecar holds, from its /certs. */
static void cert_serial(int admin, char *out, size_t cap)
{
    char *body = NULL;
    assert_int_equal(wt_http(admin, "GET", "/certs", NULL, 0, &body), 200);
    json_t *j = json_loads(body, 0, NULL);
    assert_non_null(j);
    const char *s = json_string_value(json_object_get(j, "serial"));
    assert_non_null(s);
    snprintf(out, cap, "%s", s);
    json_decref(j);
    wf_free(body);
}

/* Whether the certificate a sidecar holds now verifies against the CA's root number id alone
 * (<data>/ca/root-<id>.pem), by the openssl command line. */
static bool cert_from_root(const mesh_t *m, int admin, int id)
{
    char *body = NULL;
    assert_int_equal(wt_http(admin, "GET", "/certs", NULL, 0, &body), 200);
    json_t *j = json_loads(body, 0, NULL);
    assert_non_null(j);
    const char *chain = json_string_value(json_object_get(j, "certificate_chain"));
    assert_non_null(chain);
    char leaf[700], cmd[2400], out[4096];
    snprintf(leaf, sizeof(leaf), "%s/leaf-%d.pem", m->c.dir, admin);
    wt_write_file(leaf, chain);
    json_decref(j);
    wf_free(body);
    snprintf(cmd, sizeof(cmd), "openssl verify -CAfile '%s/ca/root-%d.pem' '%s' 2>&1", m->c.data,
             id, leaf);
    return run_cmd(cmd, out, sizeof(out)) == 0;
}

/* Certificates renew every half-life and the root rotates under steady traffic: no failure. */
static void test_rotation_under_traffic(void **state)
{
    mesh_t *m = *state;
    char serial0[128], serial1[128], out[8192];
    cert_serial(m->ratings.admin, serial0, sizeof(serial0));
    double renewed0 = stat_value(m->ratings.admin, "weft_proxy_cert_renewals_total{result=\"ok\"}");
    traffic_t t = {.m = m};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, traffic_thread, &t), 0);
    sleep(10); /* about three renewals of each sidecar */
    cert_serial(m->ratings.admin, serial1, sizeof(serial1));
    assert_string_not_equal(serial0, serial1);
    assert_true(stat_value(m->ratings.admin, "weft_proxy_cert_renewals_total{result=\"ok\"}") >=
                renewed0 + 2);

    assert_true(cert_from_root(m, m->ratings.admin, 1));
    assert_int_equal(cli(m, "ca rotate", out, sizeof(out)), 0);
    sleep(12); /* propagation (3 s), then every sidecar renews from the new root */
    /* both ends of the traffic now hold certificates of the new root, not of the old one */
    assert_true(cert_from_root(m, m->ratings.admin, 2));
    assert_false(cert_from_root(m, m->ratings.admin, 1));
    assert_true(cert_from_root(m, m->callers[REVIEWS].admin, 2));
    atomic_store(&t.stop, true);
    pthread_join(th, NULL);
    assert_int_equal(cli(m, "ca status", out, sizeof(out)), 0);
    fprintf(stderr, "ca status after rotation:\n%s\n", out);
    assert_int_equal(atomic_load(&t.failed), 0);
    assert_true(atomic_load(&t.ok) > 500);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auto_mtls),
        cmocka_unit_test(test_strict),
        cmocka_unit_test(test_authorization_matrix),
        cmocka_unit_test(test_rotation_under_traffic),
    };
    return cmocka_run_group_tests(tests, mesh_setup, mesh_teardown);
}
