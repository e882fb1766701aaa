/*
 * test_px_tcp.c - the pure parts of px_tcp: where a CONNECT goes (snapshot cluster by exact
 * host and port, short names in the proxy's namespace, IP literal passthrough, malformed
 * authorities) and which TCP port lists a snapshot may not carry.
 */
#include "px_tcp.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <arpa/inet.h>

#include <cmocka.h>

static px_snapshot_t *parse(const char *doc)
{
    px_snapshot_t *s = NULL;
    char err[256];
    int rc = px_snapshot_parse(doc, strlen(doc), NULL, &s, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "%s\n", err);
    }
    assert_int_equal(rc, 0);
    return s;
}

static const char *const clusters_doc =
    "{\"schema\": 1, \"version\": 1, \"proxy\": {\"service\": \"productpage\", \"namespace\": "
    "\"shop\"},\n"
    " \"clusters\": [\n"
    "  {\"host\": \"reviews\", \"port\": 9080, \"subset\": \"v1\",\n"
    "   \"endpoints\": [{\"address\": \"10.0.0.1\", \"port\": 9080}]},\n"
    "  {\"host\": \"reviews\", \"port\": 9080,\n"
    "   \"endpoints\": [{\"address\": \"10.0.0.2\", \"port\": 9080}]},\n"
    "  {\"host\": \"db.example.com\", \"port\": 5432,\n"
    "   \"endpoints\": [{\"address\": \"10.0.0.3\", \"port\": 5432}]}]}\n";

static void test_connect_target_cluster(void **state)
{
    (void)state;
    px_snapshot_t *s = parse(clusters_doc);
    px_connect_target_t t;
    /* A short name is the service in the proxy's namespace; the cluster without a subset. */
    assert_int_equal(px_tcp_connect_target(s, wf_str("reviews:9080"), &t), 0);
    assert_true(t.cluster >= 0);
    assert_true(wf_str_eq_c(s->clusters[t.cluster].host, "reviews.shop.svc.cluster.local"));
    assert_int_equal(s->clusters[t.cluster].subset.len, 0);
    assert_int_equal(px_tcp_connect_target(s, wf_str("REVIEWS.shop.svc.cluster.local:9080"), &t),
                     0);
    assert_true(wf_str_eq_c(s->clusters[t.cluster].host, "reviews.shop.svc.cluster.local"));
    assert_int_equal(px_tcp_connect_target(s, wf_str("db.example.com:5432"), &t), 0);
    assert_true(wf_str_eq_c(s->clusters[t.cluster].host, "db.example.com"));
    /* Another port of a known host is no cluster, and a name cannot be passed through. */
    assert_int_equal(px_tcp_connect_target(s, wf_str("reviews:9081"), &t), PX_TCP_ENOTARGET);
    assert_int_equal(px_tcp_connect_target(s, wf_str("db.example.com:5433"), &t), PX_TCP_ENOTARGET);
    px_snapshot_unref(s);
}

static void test_connect_target_passthrough(void **state)
{
    (void)state;
    px_snapshot_t *s = parse(clusters_doc);
    px_connect_target_t t;
    assert_int_equal(px_tcp_connect_target(s, wf_str("192.0.2.7:443"), &t), 0);
    assert_int_equal(t.cluster, -1);
    const struct sockaddr_in *a4 = (const struct sockaddr_in *)&t.addr;
    assert_int_equal(a4->sin_family, AF_INET);
    assert_int_equal(ntohs(a4->sin_port), 443);
    assert_int_equal(ntohl(a4->sin_addr.s_addr), 0xc0000207u);
    assert_int_equal(px_tcp_connect_target(NULL, wf_str("[2001:db8::1]:8443"), &t), 0);
    const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&t.addr;
    assert_int_equal(a6->sin6_family, AF_INET6);
    assert_int_equal(ntohs(a6->sin6_port), 8443);
    assert_int_equal(a6->sin6_addr.s6_addr[0], 0x20);
    assert_int_equal(a6->sin6_addr.s6_addr[15], 0x01);
    /* Without a snapshot nothing but IP literals. */
    assert_int_equal(px_tcp_connect_target(NULL, wf_str("reviews:9080"), &t), PX_TCP_ENOTARGET);
    assert_int_equal(px_tcp_connect_target(NULL, wf_str("999.1.1.1:80"), &t), PX_TCP_ENOTARGET);
    px_snapshot_unref(s);
}

static void test_connect_target_malformed(void **state)
{
    (void)state;
    px_connect_target_t t;
    const char *bad[] = {"",           ":80",         "host",    "host:",     "host:0",
                         "host:65536", "host:123456", "host:8a", "1.2.3.4:-1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(px_tcp_connect_target(NULL, wf_str(bad[i]), &t), PX_TCP_EAUTHORITY);
    }
    assert_int_equal(px_tcp_connect_target(NULL, wf_str("1.2.3.4:65535"), &t), 0);
}

static void check(const char *ports, const char *app, const char *listen, int want, const char *msg)
{
    char doc[1024], err[256] = "";
    snprintf(doc, sizeof(doc),
             "{\"schema\": 1, \"version\": 1, \"proxy\": {\"service\": \"reviews\"},\n"
             " \"inbound\": {\"app_address\": \"%s\", \"ports\": [%s]}}\n",
             app, ports);
    px_snapshot_t *s = parse(doc);
    struct sockaddr_in in, out;
    uv_ip4_addr(listen, 15006, &in);
    uv_ip4_addr(listen, 15001, &out);
    int rc = px_tcp_check(s, (const struct sockaddr *)&in, (const struct sockaddr *)&out, err,
                          sizeof(err));
    assert_int_equal(rc, want);
    if (msg != NULL) {
        assert_non_null(strstr(err, msg));
    }
    px_snapshot_unref(s);
}

static void test_check_ports(void **state)
{
    (void)state;
    check("{\"port\": 3306, \"target_port\": 13306, \"protocol\": \"TCP\"}", "127.0.0.1",
          "127.0.0.1", 0, NULL);
    /* Its own target on the same address: the proxy would connect to itself. */
    check("{\"port\": 3306, \"protocol\": \"TCP\"}", "127.0.0.1", "127.0.0.1", PX_TCP_EPORTS,
          "proxies to itself");
    check("{\"port\": 3306, \"protocol\": \"TCP\"}", "0.0.0.0", "127.0.0.1", PX_TCP_EPORTS,
          "proxies to itself");
    check("{\"port\": 3306, \"protocol\": \"TCP\"}", "127.0.0.1", "0.0.0.0", PX_TCP_EPORTS,
          "proxies to itself");
    /* On another address it works (a pod's IP listener, the app on loopback). */
    check("{\"port\": 3306, \"protocol\": \"TCP\"}", "127.0.0.1", "10.1.2.3", 0, NULL);
    /* HTTP ports are served by the inbound listener: not checked here. */
    check("{\"port\": 9080}", "127.0.0.1", "127.0.0.1", 0, NULL);
    check("{\"port\": 15006, \"target_port\": 1, \"protocol\": \"TCP\"}", "127.0.0.1", "127.0.0.1",
          PX_TCP_EPORTS, "listener port");
    check("{\"port\": 15001, \"target_port\": 1, \"protocol\": \"TCP\"}", "127.0.0.1", "127.0.0.1",
          PX_TCP_EPORTS, "listener port");
    assert_int_equal(px_tcp_check(NULL, NULL, NULL, NULL, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_target_cluster),
        cmocka_unit_test(test_connect_target_passthrough),
        cmocka_unit_test(test_connect_target_malformed),
        cmocka_unit_test(test_check_ports),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
