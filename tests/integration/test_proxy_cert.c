/*
 * test_proxy_cert.c - the workload certificate of a real `weft proxy` from the CA of a real
 * `weft control` (short --cert-ttl): /certs shows the registry's SPIFFE identity and a chain
 * that `openssl verify` accepts against the bundle served by /v1/trust-bundle, with exactly
 * that URI as SAN; renewals at half-life change the serial while a client keeps sending
 * requests through the proxy with zero failures; with the control plane stopped the proxy
 * keeps serving and keeps its certificate until it expires, then /ready answers 503
 * CERTIFICATE_EXPIRED and weft_proxy_cert_valid is 0; restarted, the proxy renews and /ready
 * is 200 again. A root rotation (`weft ca rotate`) reaches the proxy through its snapshots
 * without a restart, and when the old root leaves the bundle the proxy renews under the new
 * one at once.
 */
#include "test_proxy_common.h"
#include "wf_clock.h"
#include "wt_control.h"

#include <jansson.h>
#include <time.h>

#define ID "spiffe://cluster.local/ns/shop/sa/reviews-sa"

static const char *const CONTROL_FLAGS[] = {"--cert-ttl", "6s", NULL};

/* GET /certs, parsed (json_decref it); NULL when the admin does not answer 200 JSON. */
static json_t *certs(int admin)
{
    char *body = NULL;
    int st = wt_http(admin, "GET", "/certs", NULL, 0, &body);
    json_t *j = st == 200 && body != NULL ? json_loads(body, 0, NULL) : NULL;
    wf_free(body);
    return j;
}

/* The /certs serial, "" when no certificate (out has room for 128 bytes). */
static void cert_serial(int admin, char *out)
{
    json_t *j = certs(admin);
    const char *s = json_string_value(json_object_get(j, "serial"));
    snprintf(out, 128, "%s", s != NULL ? s : "");
    json_decref(j);
}

/* A client sending GET /who through the proxy's inbound listener, a new connection each time,
 * until told to stop; every answer but a 200 is a failure. */
typedef struct {
    int port;
    atomic_bool stop;
    atomic_int ok;
    atomic_int failed;
    pthread_t thread;
} client_t;

static void *client_main(void *arg)
{
    client_t *c = arg;
    while (!atomic_load(&c->stop)) {
        int fd = tcp_connect(c->port);
        int st = -1;
        if (fd >= 0) {
            rd_t r;
            rd_init(&r, fd);
            resp_t rs;
            memset(&rs, 0, sizeof(rs));
            if (send_str(fd, "GET /who HTTP/1.1\r\nHost: reviews\r\n\r\n") &&
                read_response(&r, &rs)) {
                st = rs.status;
            }
            resp_free(&rs);
            rd_free(&r);
            close(fd);
        }
        atomic_fetch_add(st == 200 ? &c->ok : &c->failed, 1);
        usleep(20 * 1000);
    }
    return NULL;
}

/* Wait (bounded) until the admin's series reaches want; its last value. */
static double wait_stat(int admin, const char *name, double want, int timeout_ms)
{
    double v = stat_value(admin, name);
    for (int t = 0; t < timeout_ms && v < want; t += 100) {
        usleep(100 * 1000);
        v = stat_value(admin, name);
    }
    return v;
}

static void test_certificate_lifecycle(void **state)
{
    (void)state;
    wt_control_t c;
    assert_int_equal(wt_control_new(&c, "pxcert", CONTROL_FLAGS), 0);
    upstream_t app;
    upstream_start(&app, "reviews-v1");
    proxy_t px;
    const char *extra[] = {"--namespace",       "shop",       "--version", "v1",
                           "--service-account", "reviews-sa", NULL};
    proxy_start_meshed(&px, app.port, &c, extra);

    /* The first certificate: the registry's identity, a chain the served bundle verifies. */
    assert_true(wait_stat(px.admin, "weft_proxy_cert_renewals_total{result=\"ok\"}", 1, 20000) >=
                1);
    json_t *j = certs(px.admin);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "identity")), ID);
    assert_true(json_is_true(json_object_get(j, "valid")));
    int64_t nb = json_integer_value(json_object_get(j, "not_before"));
    int64_t na = json_integer_value(json_object_get(j, "not_after"));
    int64_t now = (int64_t)time(NULL);
    assert_true(na > now && na <= now + 6);
    assert_true(nb <= now);
    assert_int_equal(json_integer_value(json_object_get(j, "trust_bundle_version")), 1);
    assert_int_equal(json_array_size(json_object_get(j, "roots")), 1);
    char path[800];
    snprintf(path, sizeof(path), "%s/chain.pem", c.dir);
    wt_write_file(path, json_string_value(json_object_get(j, "certificate_chain")));
    json_decref(j);
    assert_int_equal(
        wt_sh(c.dir, "curl -sf -o bundle.pem http://127.0.0.1:%d/v1/trust-bundle", c.port), 0);
    assert_int_equal(wt_sh(c.dir, "openssl verify -CAfile bundle.pem chain.pem"), 0);
    /* Exactly the one URI as SAN. */
    char cmd[1200], out[4096];
    snprintf(cmd, sizeof(cmd), "openssl x509 -in '%s' -noout -ext subjectAltName", path);
    assert_int_equal(run_cmd(cmd, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "URI:" ID "\n"));
    assert_null(strstr(out, ","));
    assert_int_equal(stat_value(px.admin, "weft_proxy_cert_valid"), 1);
    assert_int_equal(stat_value(px.admin, "weft_proxy_trust_bundle_version"), 1);
    assert_int_equal(stat_value(px.admin, "weft_proxy_cert_expiry_timestamp_seconds"), (double)na);

    /* Renewals under traffic: new serials, more renewals, no failed request. */
    client_t cl = {.port = px.inbound};
    assert_int_equal(pthread_create(&cl.thread, NULL, client_main, &cl), 0);
    char serial1[128], serial2[128];
    cert_serial(px.admin, serial1);
    assert_true(wait_stat(px.admin, "weft_proxy_cert_renewals_total{result=\"ok\"}", 3, 30000) >=
                3);
    cert_serial(px.admin, serial2);
    assert_string_not_equal(serial1, serial2);
    assert_int_equal(stat_value(px.admin, "weft_proxy_cert_renewals_total{result=\"error\"}"), 0);
    assert_true(atomic_load(&cl.ok) > 0);
    assert_int_equal(atomic_load(&cl.failed), 0);
    char txt[64];
    assert_int_equal(ready(px.admin, txt, sizeof(txt)), 200);

    /* The control plane goes away: the proxy serves and keeps its certificate until expiry. */
    assert_int_equal(wt_control_stop(&c), 0);
    j = certs(px.admin);
    na = json_integer_value(json_object_get(j, "not_after"));
    char held[128];
    snprintf(held, sizeof(held), "%s", json_string_value(json_object_get(j, "serial")));
    json_decref(j);
    int ok_before = atomic_load(&cl.ok);
    while ((int64_t)time(NULL) < na - 1) {
        usleep(100 * 1000);
    }
    assert_true(atomic_load(&cl.ok) > ok_before);
    assert_int_equal(atomic_load(&cl.failed), 0);
    /* Expired (to the second: wait for /ready to say so, bounded). */
    int st = 0;
    for (int i = 0; i < 100 && (st = ready(px.admin, txt, sizeof(txt))) == 200; i++) {
        usleep(100 * 1000);
    }
    assert_int_equal(st, 503);
    assert_string_equal(txt, "CERTIFICATE_EXPIRED\n");
    /* the proxy's clock is CLOCK_REALTIME; time() may read the coarse clock, a few ms behind */
    assert_true(wf_wall_ms() >= (int64_t)na * 1000);
    assert_int_equal(stat_value(px.admin, "weft_proxy_cert_valid"), 0);
    cert_serial(px.admin, serial2);
    assert_string_equal(serial2, held);
    assert_true(stat_value(px.admin, "weft_proxy_cert_renewals_total{result=\"error\"}") >= 1);

    /* Back: a renewal, /ready 200 again, on the same root (the CA kept it in its data). */
    double ok_n = stat_value(px.admin, "weft_proxy_cert_renewals_total{result=\"ok\"}");
    assert_int_equal(wt_control_start(&c, CONTROL_FLAGS), 0);
    assert_true(wait_stat(px.admin, "weft_proxy_cert_renewals_total{result=\"ok\"}", ok_n + 1,
                          40000) >= ok_n + 1);
    assert_int_equal(ready(px.admin, txt, sizeof(txt)), 200);
    assert_int_equal(stat_value(px.admin, "weft_proxy_cert_valid"), 1);
    j = certs(px.admin);
    wt_write_file(path, json_string_value(json_object_get(j, "certificate_chain")));
    json_decref(j);
    assert_int_equal(wt_sh(c.dir, "openssl verify -CAfile bundle.pem chain.pem"), 0);

    atomic_store(&cl.stop, true);
    pthread_join(cl.thread, NULL);
    assert_int_equal(atomic_load(&cl.failed), 0);
    proxy_stop(&px);
    upstream_stop(&app);
    wt_control_free(&c);
}

/* The number of roots /certs shows. */
static size_t cert_roots(int admin)
{
    json_t *j = certs(admin);
    size_t n = json_array_size(json_object_get(j, "roots"));
    json_decref(j);
    return n;
}

static void test_root_rotation(void **state)
{
    (void)state;
    /* Certificates for an hour (half-life renewals out of the picture), a short overlap. */
    static const char *const flags[] = {
        "--cert-ttl", "1h", "--ca-root-overlap", "4s", "--ca-propagation-timeout", "60s", NULL};
    wt_control_t c;
    assert_int_equal(wt_control_new(&c, "pxrot", flags), 0);
    char url[64], path[800];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", c.port);
    snprintf(path, sizeof(path), "%s/chain.pem", c.dir);
    upstream_t app;
    upstream_start(&app, "reviews-v1");
    proxy_t px;
    const char *extra[] = {"--namespace",       "shop",       "--version", "v1",
                           "--service-account", "reviews-sa", NULL};
    proxy_start_meshed(&px, app.port, &c, extra);
    assert_true(wait_stat(px.admin, "weft_proxy_cert_renewals_total{result=\"ok\"}", 1, 20000) >=
                1);
    assert_int_equal(cert_roots(px.admin), 1);
    char serial1[128], serial2[128];
    cert_serial(px.admin, serial1);
    client_t cl = {.port = px.inbound};
    assert_int_equal(pthread_create(&cl.thread, NULL, client_main, &cl), 0);

    /* Rotation: the new bundle (both roots) reaches the proxy in a snapshot, no restart. */
    assert_int_equal(wt_sh(c.dir, "WEFT_CONTROL=%s WEFT_TOKEN_FILE=%s %s ca rotate", url,
                           c.admin_file, wt_weft_bin()),
                     0);
    assert_true(wait_stat(px.admin, "weft_proxy_trust_bundle_version", 2, 20000) >= 2);
    assert_int_equal(cert_roots(px.admin), 2);
    assert_int_equal(stat_value(px.admin, "weft_proxy_cert_renewals_total{result=\"ok\"}"), 1);
    /* The proxy took it, so the new root signs; after the overlap the old root leaves the
     * bundle (version 3), and the proxy, whose certificate the old root signed, renews at once
     * under the new one. */
    assert_true(wait_stat(px.admin, "weft_proxy_trust_bundle_version", 3, 30000) >= 3);
    assert_true(wait_stat(px.admin, "weft_proxy_cert_renewals_total{result=\"ok\"}", 2, 20000) >=
                2);
    assert_int_equal(cert_roots(px.admin), 1);
    cert_serial(px.admin, serial2);
    assert_string_not_equal(serial1, serial2);
    json_t *j = certs(px.admin);
    wt_write_file(path, json_string_value(json_object_get(j, "certificate_chain")));
    json_decref(j);
    assert_int_equal(
        wt_sh(c.dir, "curl -sf -o bundle.pem http://127.0.0.1:%d/v1/trust-bundle", c.port), 0);
    assert_int_equal(wt_sh(c.dir, "openssl verify -CAfile bundle.pem chain.pem"), 0);
    char txt[64];
    assert_int_equal(ready(px.admin, txt, sizeof(txt)), 200);
    atomic_store(&cl.stop, true);
    pthread_join(cl.thread, NULL);
    assert_true(atomic_load(&cl.ok) > 0);
    assert_int_equal(atomic_load(&cl.failed), 0);
    proxy_stop(&px);
    upstream_stop(&app);
    wt_control_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_certificate_lifecycle),
        cmocka_unit_test(test_root_rotation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
