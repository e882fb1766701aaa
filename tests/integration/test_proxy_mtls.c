/*
 * test_proxy_mtls.c - mTLS between two real sidecars. Certificates are made by the `openssl`
 * command (a mesh root, another root, leaves with SPIFFE URI SANs, and bad ones: expired, from
 * the other root, self-signed, with another identity). A (productpage) reaches the app behind B
 * (reviews) through A's outbound listener; A's snapshot sends to a relay in this test that
 * forwards to B's inbound listener and records what A sends, so the test sees the wire: it
 * starts with a TLS handshake record and never shows the request's path or headers. B STRICT
 * refuses plaintext (the app counts nothing) and a TLS 1.2 hello; PERMISSIVE serves both;
 * DISABLE on A's cluster is refused by a STRICT B; B with a bad certificate makes A answer 503
 * (UF) without the app seeing a request; both proxies' metrics carry the principals the
 * handshakes proved.
 */
#include "test_proxy_common.h"

#define ID_PP "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"
#define ID_RV "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"

static const char gen_sh[] =
    "set -e\n"
    "cat > ext.cnf <<X\n"
    "[pp]\nbasicConstraints=critical,CA:FALSE\n"
    "keyUsage=critical,digitalSignature,keyEncipherment\n"
    "extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=URI:" ID_PP "\n"
    "[rv]\nbasicConstraints=critical,CA:FALSE\n"
    "keyUsage=critical,digitalSignature,keyEncipherment\n"
    "extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=URI:" ID_RV "\n"
    "[other]\nbasicConstraints=critical,CA:FALSE\n"
    "keyUsage=critical,digitalSignature,keyEncipherment\n"
    "extendedKeyUsage=serverAuth,clientAuth\n"
    "subjectAltName=URI:spiffe://cluster.local/ns/default/sa/someone-else\n"
    "X\n"
    "printf '[ca]\\ndefault_ca=d\\n[d]\\ndatabase=index.txt\\nnew_certs_dir=.\\n"
    "serial=serial.txt\\ndefault_md=sha256\\npolicy=p\\n[p]\\ncommonName=supplied\\n' > ca.cnf\n"
    "touch index.txt\necho 01 > serial.txt\n"
    "K='-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes'\n"
    "openssl req -x509 $K -keyout ca.key -out ca.crt -days 30 -subj /CN=mesh-root\n"
    "openssl req -x509 $K -keyout other-ca.key -out other-ca.crt -days 30 -subj /CN=other\n"
    "leaf() {\n"
    "  openssl req $K -keyout $1.key -out $1.csr -subj /CN=$1\n"
    "  openssl x509 -req -in $1.csr -CA $3.crt -CAkey $3.key -CAcreateserial -days 30 "
    "-extfile ext.cnf -extensions $2 -out $1.crt\n"
    "}\n"
    "leaf pp pp ca\n"
    "leaf rv rv ca\n"
    "leaf rv-foreign rv other-ca\n"
    "leaf rv-wrong-san other ca\n"
    "openssl req -x509 $K -keyout rv-self.key -out rv-self.crt -days 30 -subj /CN=rv-self "
    "-addext subjectAltName=URI:" ID_RV "\n"
    "openssl req $K -keyout rv-expired.key -out rv-expired.csr -subj /CN=rv-expired\n"
    "openssl ca -batch -config ca.cnf -cert ca.crt -keyfile ca.key -in rv-expired.csr "
    "-out rv-expired.crt -startdate 20200101000000Z -enddate 20200102000000Z -extfile ext.cnf "
    "-extensions rv -notext\n";

/* ---------------------------------------------------------------------------------------- */
/* The relay between A and B: forwards both ways and keeps what A sent. */

typedef struct {
    tsrv_t srv;
    atomic_int target; /* B's inbound port */
    atomic_int open;
    pthread_mutex_t mu;
    wf_buf_t seen;  /* A -> B bytes, every connection one after the other */
    int first_byte; /* of the first connection that sent anything, -1 before */
} relay_t;

static void relay_serve(int fd, void *ctx)
{
    relay_t *r = ctx;
    atomic_fetch_add(&r->open, 1);
    int up = tcp_connect(atomic_load(&r->target));
    char buf[16384];
    while (up >= 0) {
        struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = up, .events = POLLIN}};
        if (poll(p, 2, 30000) <= 0) {
            break;
        }
        if (p[0].revents) {
            ssize_t n = recv(fd, buf, sizeof(buf), 0);
            if (n <= 0) {
                break;
            }
            pthread_mutex_lock(&r->mu);
            if (r->first_byte < 0) {
                r->first_byte = (unsigned char)buf[0];
            }
            wf_buf_append(&r->seen, buf, (size_t)n);
            pthread_mutex_unlock(&r->mu);
            if (!send_all(up, buf, (size_t)n)) {
                break;
            }
        }
        if (p[1].revents) {
            ssize_t n = recv(up, buf, sizeof(buf), 0);
            if (n <= 0 || !send_all(fd, buf, (size_t)n)) {
                break;
            }
        }
    }
    if (up >= 0) {
        close(up);
    }
    atomic_fetch_sub(&r->open, 1);
}

/* ---------------------------------------------------------------------------------------- */
/* Fixture */

typedef struct {
    char *certs;    /* the directory the certificates are in */
    char *dir;      /* snapshots */
    upstream_t app; /* behind B */
    relay_t relay;
    proxy_t a, b;
    bool a_on, b_on;
} fx_t;

static int group_setup(void **state)
{
    fx_t *f = wf_calloc(1, sizeof(*f));
    f->certs = wt_tmpdir("mtlscerts");
    f->dir = wt_tmpdir("mtlssnap");
    char path[4200], cmd[4400];
    snprintf(path, sizeof(path), "%s/gen.sh", f->certs);
    wt_write_file(path, gen_sh);
    snprintf(cmd, sizeof(cmd), "cd '%s' && sh gen.sh > gen.log 2>&1", f->certs);
    if (system(cmd) != 0) {
        fprintf(stderr, "certificates not made (see %s/gen.log)\n", f->certs);
        return -1;
    }
    upstream_start(&f->app, "reviews-app");
    pthread_mutex_init(&f->relay.mu, NULL);
    f->relay.first_byte = -1;
    tsrv_start(&f->relay.srv, true, relay_serve, &f->relay);
    *state = f;
    return 0;
}

static int group_teardown(void **state)
{
    fx_t *f = *state;
    tsrv_stop(&f->relay.srv);
    upstream_stop(&f->app);
    for (int i = 0; i < 500 && atomic_load(&f->relay.open) > 0; i++) {
        usleep(10 * 1000);
    }
    wf_buf_free(&f->relay.seen);
    wt_rm_rf(f->certs);
    wt_rm_rf(f->dir);
    wf_free(f->certs);
    wf_free(f->dir);
    wf_free(f);
    return 0;
}

static void reset_relay(fx_t *f)
{
    pthread_mutex_lock(&f->relay.mu);
    wf_buf_reset(&f->relay.seen);
    f->relay.first_byte = -1;
    pthread_mutex_unlock(&f->relay.mu);
}

/* Start B (reviews) with PeerAuthentication mode and certificate name (NULL: none), and an
 * inbound TCP port tcp_port to the app when not 0. */
static void start_b_tcp(fx_t *f, const char *mode, const char *cert, int tcp_port)
{
    char snap[1024], path[4200], ports[256] = "";
    if (tcp_port != 0) {
        snprintf(ports, sizeof(ports),
                 "\"ports\": [{\"port\": %d, \"target_port\": %d, \"protocol\": \"TCP\"}], ",
                 tcp_port, f->app.port);
    }
    snprintf(snap, sizeof(snap),
             "{\"schema\": 1, \"version\": 1,\n"
             " \"proxy\": {\"service\": \"reviews\", \"version\": \"v1\",\n"
             "           \"service_account\": \"bookinfo-reviews\"},\n"
             " \"inbound\": {%s\"peer_authentication\": {\"mode\": \"%s\"}}}\n",
             ports, mode);
    snprintf(path, sizeof(path), "%s/b.json", f->dir);
    wt_write_file(path, snap);
    char chain[4200], key[4200], root[4200];
    snprintf(chain, sizeof(chain), "%s/%s.crt", f->certs, cert ? cert : "");
    snprintf(key, sizeof(key), "%s/%s.key", f->certs, cert ? cert : "");
    snprintf(root, sizeof(root), "%s/ca.crt", f->certs);
    const char *extra[] = {"--cert-chain", chain, "--private-key", key, "--root-cert", root, NULL};
    proxy_start_with(&f->b, f->app.port, path, "1", cert != NULL ? extra : NULL);
    atomic_store(&f->relay.target, f->b.inbound);
    f->b_on = true;
}

static void start_b(fx_t *f, const char *mode, const char *cert)
{
    start_b_tcp(f, mode, cert, 0);
}

/* Start A (productpage) whose reviews cluster has tls (JSON member text, "" = absent) and goes
 * to the relay; with its certificate files when certs. */
static void start_a_opts(fx_t *f, const char *tls, bool certs)
{
    char snap[2048], path[4200];
    snprintf(snap, sizeof(snap),
             "{\"schema\": 1, \"version\": 1,\n"
             " \"proxy\": {\"service\": \"productpage\", \"version\": \"v1\",\n"
             "           \"service_account\": \"bookinfo-productpage\"},\n"
             " \"virtual_hosts\": [{\"host\": \"reviews\", \"port\": 9080}],\n"
             " \"clusters\": [{\"host\": \"reviews\", \"port\": 9080, %s\n"
             "   \"endpoints\": [{\"address\": \"127.0.0.1\", \"port\": %d, \"in_mesh\": true,\n"
             "                  \"workload\": \"reviews-v1\", \"namespace\": \"default\",\n"
             "                  \"identity\": \"" ID_RV "\"}]}]}\n",
             tls, f->relay.srv.port);
    snprintf(path, sizeof(path), "%s/a.json", f->dir);
    wt_write_file(path, snap);
    char chain[4200], key[4200], root[4200];
    snprintf(chain, sizeof(chain), "%s/pp.crt", f->certs);
    snprintf(key, sizeof(key), "%s/pp.key", f->certs);
    snprintf(root, sizeof(root), "%s/ca.crt", f->certs);
    const char *extra[] = {"--cert-chain", chain, "--private-key", key, "--root-cert", root, NULL};
    proxy_start_with(&f->a, wt_free_port(), path, "1", certs ? extra : NULL);
    assert_true(wt_wait_port(f->a.outbound, 10000));
    f->a_on = true;
}

static void start_a(fx_t *f, const char *tls)
{
    start_a_opts(f, tls, true);
}

static int test_setup(void **state)
{
    fx_t *f = *state;
    reset_relay(f);
    atomic_store(&f->app.requests, 0);
    return 0;
}

static int test_teardown(void **state)
{
    fx_t *f = *state;
    if (f->a_on) {
        proxy_stop(&f->a);
        f->a_on = false;
    }
    if (f->b_on) {
        proxy_stop(&f->b);
        f->b_on = false;
    }
    return 0;
}

/* GET http://reviews:9080/headers?token=hunter2 through A with a header only the app may see;
 * returns the status, the body in *body (may be NULL). */
static int via_a(fx_t *f, char **body)
{
    resp_t rs;
    memset(&rs, 0, sizeof(rs));
    int st =
        request(f->a.outbound,
                "GET http://reviews:9080/headers?token=hunter2 HTTP/1.1\r\nHost: reviews:9080\r\n"
                "X-Secret-Header: swordfish\r\n\r\n",
                NULL, 0, &rs);
    if (body != NULL) {
        *body =
            rs.body.len > 0 ? wf_strndup((const char *)rs.body.data, rs.body.len) : wf_strdup("");
    }
    resp_free(&rs);
    return st;
}

/* A plaintext request straight to B's inbound listener: the status, -1 when closed. */
static int plain_to_b(fx_t *f)
{
    resp_t rs;
    memset(&rs, 0, sizeof(rs));
    int st =
        request(f->b.inbound, "GET /hello HTTP/1.1\r\nHost: reviews:9080\r\n\r\n", NULL, 0, &rs);
    resp_free(&rs);
    return st;
}

static bool seen_contains(fx_t *f, const char *s)
{
    pthread_mutex_lock(&f->relay.mu);
    bool found = memmem(f->relay.seen.data, f->relay.seen.len, s, strlen(s)) != NULL;
    pthread_mutex_unlock(&f->relay.mu);
    return found;
}

static double metric(int admin, const char *name, const char *const *labels)
{
    char *body = scrape(admin);
    double v = series(body, name, labels);
    wf_free(body);
    return v;
}

/* ---------------------------------------------------------------------------------------- */
/* Tests */

static void test_strict_mtls(void **state)
{
    fx_t *f = *state;
    start_b(f, "STRICT", "rv");
    start_a(f, "");
    char *body = NULL;
    assert_int_equal(via_a(f, &body), 200);
    wf_free(body);
    assert_int_equal(via_a(f, NULL), 200);
    assert_int_equal(atomic_load(&f->app.requests), 2);
    char head[2048];
    pthread_mutex_lock(&f->app.mu);
    snprintf(head, sizeof(head), "%s", f->app.last_head);
    pthread_mutex_unlock(&f->app.mu);
    assert_non_null(strstr(head, "GET /headers?token=hunter2 HTTP/1.1"));
    assert_non_null(strstr(head, "X-Secret-Header: swordfish"));
    /* The wire between the sidecars: a TLS handshake record first, and nothing readable. */
    pthread_mutex_lock(&f->relay.mu);
    int first = f->relay.first_byte;
    size_t seen = f->relay.seen.len;
    pthread_mutex_unlock(&f->relay.mu);
    assert_int_equal(first, 0x16);
    assert_true(seen > 500);
    assert_false(seen_contains(f, "hunter2"));
    assert_false(seen_contains(f, "swordfish"));
    assert_false(seen_contains(f, "X-Secret-Header"));
    assert_false(seen_contains(f, "HTTP/1.1"));

    /* Plaintext straight to B never reaches the app. */
    assert_int_equal(plain_to_b(f), -1);
    assert_int_equal(atomic_load(&f->app.requests), 2);
    assert_true(stat_value(f->b.admin, "weft_proxy_tls_plaintext_refused_total") == 1);

    /* Garbage and a TLS 1.2 hello: closed, counted, and B keeps serving. */
    int fd = tcp_connect(f->b.inbound);
    assert_true(fd >= 0);
    assert_true(send_str(fd, "\x01\x02\x03 garbage\r\n\r\n"));
    char buf[64];
    assert_true(recv(fd, buf, sizeof(buf), 0) <= 0);
    close(fd);
    assert_true(stat_value(f->b.admin, "weft_proxy_tls_plaintext_refused_total") == 2);
    char cmd[4600], out[4096];
    snprintf(cmd, sizeof(cmd),
             "openssl s_client -tls1_2 -alpn istio-http/1.1 -connect 127.0.0.1:%d "
             "-cert %s/pp.crt -key %s/pp.key </dev/null 2>&1",
             f->b.inbound, f->certs, f->certs);
    assert_true(run_cmd(cmd, out, sizeof(out)) != 0);
    const char *const err_server[] = {"side=\"server\"", "result=\"error\"", NULL};
    assert_true(metric(f->b.admin, "weft_proxy_tls_handshakes_total", err_server) == 1);
    assert_int_equal(via_a(f, NULL), 200);
    assert_int_equal(atomic_load(&f->app.requests), 3);

    /* Telemetry from the handshakes. */
    const char *const dst[] = {"reporter=\"destination\"",
                               "connection_security_policy=\"mutual_tls\"",
                               "source_principal=\"" ID_PP "\"",
                               "destination_principal=\"" ID_RV "\"",
                               "source_workload=\"productpage-v1\"",
                               "response_code=\"200\"",
                               NULL};
    assert_true(metric(f->b.admin, "istio_requests_total", dst) == 3);
    const char *const src[] = {"reporter=\"source\"", "destination_principal=\"" ID_RV "\"",
                               "source_principal=\"" ID_PP "\"", "response_code=\"200\"", NULL};
    assert_true(metric(f->a.admin, "istio_requests_total", src) == 3);
    const char *const ok_client[] = {"side=\"client\"", "result=\"ok\"", NULL};
    assert_true(metric(f->a.admin, "weft_proxy_tls_handshakes_total", ok_client) >= 1);
    const char *const ok_server[] = {"side=\"server\"", "result=\"ok\"", NULL};
    assert_true(metric(f->b.admin, "weft_proxy_tls_handshakes_total", ok_server) >= 1);
}

static void test_permissive(void **state)
{
    fx_t *f = *state;
    start_b(f, "PERMISSIVE", "rv");
    start_a(f, "");
    assert_int_equal(via_a(f, NULL), 200);
    assert_int_equal(plain_to_b(f), 200);
    assert_int_equal(atomic_load(&f->app.requests), 2);
    pthread_mutex_lock(&f->relay.mu);
    int first = f->relay.first_byte;
    pthread_mutex_unlock(&f->relay.mu);
    assert_int_equal(first, 0x16);
    const char *const m[] = {"reporter=\"destination\"",
                             "connection_security_policy=\"mutual_tls\"",
                             "source_principal=\"" ID_PP "\"", NULL};
    assert_true(metric(f->b.admin, "istio_requests_total", m) == 1);
    const char *const n[] = {"reporter=\"destination\"", "connection_security_policy=\"none\"",
                             "source_principal=\"unknown\"", NULL};
    assert_true(metric(f->b.admin, "istio_requests_total", n) == 1);
    assert_true(stat_value(f->b.admin, "weft_proxy_tls_plaintext_refused_total") == 0);
}

static void test_disable_to_strict(void **state)
{
    fx_t *f = *state;
    start_b(f, "STRICT", "rv");
    start_a(f, "\"tls\": {\"mode\": \"DISABLE\"},");
    char *body = NULL;
    assert_int_equal(via_a(f, &body), 503);
    wf_free(body);
    assert_int_equal(atomic_load(&f->app.requests), 0);
    /* A spoke plaintext, which B refused. */
    assert_true(seen_contains(f, "GET /headers?token=hunter2"));
    assert_true(stat_value(f->b.admin, "weft_proxy_tls_plaintext_refused_total") >= 1);
}

/* One request per upstream connection: every connection after the first resumes the session
 * its pool kept, and the resumed sessions still prove both identities. */
static void test_resumption(void **state)
{
    fx_t *f = *state;
    start_b(f, "STRICT", "rv");
    start_a(f, "\"connection_pool\": {\"http\": {\"max_requests_per_connection\": 1}},");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(via_a(f, NULL), 200);
    }
    assert_int_equal(atomic_load(&f->app.requests), 3);
    const char *const ok_client[] = {"side=\"client\"", "result=\"ok\"", NULL};
    assert_true(metric(f->a.admin, "weft_proxy_tls_handshakes_total", ok_client) == 3);
    assert_true(stat_value(f->a.admin, "weft_proxy_tls_resumed_total") == 2);
    const char *const dst[] = {"reporter=\"destination\"",
                               "connection_security_policy=\"mutual_tls\"",
                               "source_principal=\"" ID_PP "\"", NULL};
    assert_true(metric(f->b.admin, "istio_requests_total", dst) == 3);
    const char *const src[] = {"reporter=\"source\"", "destination_principal=\"" ID_RV "\"", NULL};
    assert_true(metric(f->a.admin, "istio_requests_total", src) == 3);
}

/* A without a certificate: auto mTLS falls back to plaintext (a PERMISSIVE B serves it), while
 * ISTIO_MUTUAL cannot connect at all (503 UF). */
static void test_outbound_without_cert(void **state)
{
    fx_t *f = *state;
    start_b(f, "PERMISSIVE", "rv");
    start_a_opts(f, "", false);
    assert_int_equal(via_a(f, NULL), 200);
    assert_int_equal(atomic_load(&f->app.requests), 1);
    pthread_mutex_lock(&f->relay.mu);
    int first = f->relay.first_byte;
    pthread_mutex_unlock(&f->relay.mu);
    assert_int_equal(first, 'G');
    const char *const none[] = {"reporter=\"destination\"", "connection_security_policy=\"none\"",
                                NULL};
    assert_true(metric(f->b.admin, "istio_requests_total", none) == 1);
    proxy_stop(&f->a);
    f->a_on = false;
    start_a_opts(f, "\"tls\": {\"mode\": \"ISTIO_MUTUAL\"},", false);
    char *body = NULL;
    assert_int_equal(via_a(f, &body), 503);
    assert_non_null(strstr(body, "connection failure"));
    wf_free(body);
    assert_int_equal(atomic_load(&f->app.requests), 1);
    const char *const uf[] = {"reporter=\"source\"", "response_code=\"503\"", NULL};
    assert_true(metric(f->a.admin, "istio_requests_total", uf) == 1);
}

/* B with a bad certificate: A refuses it, answers 503 UF, and the app sees nothing. */
static void bad_b(fx_t *f, const char *cert)
{
    start_b(f, "STRICT", cert);
    start_a(f, "");
    char *body = NULL;
    assert_int_equal(via_a(f, &body), 503);
    assert_non_null(strstr(body, "connection failure"));
    wf_free(body);
    assert_int_equal(atomic_load(&f->app.requests), 0);
    const char *const uf[] = {"reporter=\"source\"", "response_code=\"503\"", NULL};
    char *m = scrape(f->a.admin);
    assert_true(series(m, "istio_requests_total", uf) == 1);
    assert_non_null(strstr(m, "response_flags=\"UF"));
    wf_free(m);
    const char *const err_client[] = {"side=\"client\"", "result=\"error\"", NULL};
    assert_true(metric(f->a.admin, "weft_proxy_tls_handshakes_total", err_client) >= 1);
    const char *const ok_client[] = {"side=\"client\"", "result=\"ok\"", NULL};
    assert_true(metric(f->a.admin, "weft_proxy_tls_handshakes_total", ok_client) == 0);
    test_teardown((void **)&f);
}

static void test_bad_server_certs(void **state)
{
    fx_t *f = *state;
    bad_b(f, "rv-expired");
    bad_b(f, "rv-foreign");
    bad_b(f, "rv-wrong-san");
    bad_b(f, "rv-self");
}

/* An inbound TCP port follows PeerAuthentication too: plaintext is closed before the app
 * sees a byte, an mTLS client (ALPN istio) reaches the app. */
static void test_tcp_port_strict(void **state)
{
    fx_t *f = *state;
    int port = wt_free_port();
    start_b_tcp(f, "STRICT", "rv", port);
    assert_true(wt_wait_port(port, 10000));
    int conns = atomic_load(&f->app.conns_total);
    int fd = tcp_connect(port);
    assert_true(fd >= 0);
    assert_true(send_str(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
    char buf[64];
    assert_true(recv(fd, buf, sizeof(buf), 0) <= 0);
    close(fd);
    assert_int_equal(atomic_load(&f->app.requests), 0);
    assert_true(stat_value(f->b.admin, "weft_proxy_tls_plaintext_refused_total") == 1);
    char cmd[4600], out[4096];
    snprintf(cmd, sizeof(cmd),
             "printf 'GET /who HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n' | "
             "timeout 20 openssl s_client -quiet -alpn istio -connect 127.0.0.1:%d "
             "-cert %s/pp.crt -key %s/pp.key -CAfile %s/ca.crt -verify_return_error 2>/dev/null",
             port, f->certs, f->certs, f->certs);
    run_cmd(cmd, out, sizeof(out));
    assert_non_null(strstr(out, "HTTP/1.1 200"));
    assert_non_null(strstr(out, "reviews-app"));
    assert_int_equal(atomic_load(&f->app.requests), 1);
    assert_true(atomic_load(&f->app.conns_total) > conns);
    /* istio_tcp_* of the mTLS connection carry what its handshake proved (waiting for the close
     * to be recorded) */
    char *m = NULL;
    for (int i = 0; i < 100; i++) {
        wf_free(m);
        m = scrape(f->b.admin);
        const char *cl[] = {"reporter=\"destination\"", "connection_security_policy=\"mutual_tls\"",
                            NULL};
        if (series(m, "istio_tcp_connections_closed_total", cl) == 1) {
            break;
        }
        usleep(50 * 1000);
    }
    const char *ml[] = {"reporter=\"destination\"", "connection_security_policy=\"mutual_tls\"",
                        "source_principal=\"" ID_PP "\"", NULL};
    assert_true(series(m, "istio_tcp_connections_opened_total", ml) == 1);
    assert_true(series(m, "istio_tcp_connections_closed_total", ml) == 1);
    assert_true(series(m, "istio_tcp_received_bytes_total", ml) > 30);
    wf_free(m);
}

/* The certificate B presents to a TLS client on its inbound port (openssl s_client). */
static void presented_subject(fx_t *f, char *out, size_t cap)
{
    char cmd[4600];
    snprintf(cmd, sizeof(cmd),
             "timeout 20 openssl s_client -alpn istio-http/1.1 -connect 127.0.0.1:%d "
             "-cert %s/pp.crt -key %s/pp.key </dev/null 2>/dev/null | grep '^subject='",
             f->b.inbound, f->certs, f->certs);
    run_cmd(cmd, out, cap);
}

/* SIGHUP reads the certificate files again: new handshakes show the new certificate. */
static void test_sighup_reloads_certs(void **state)
{
    fx_t *f = *state;
    char cmd[4600], out[4096];
    snprintf(cmd, sizeof(cmd), "cd '%s' && cp rv.crt live.crt && cp rv.key live.key", f->certs);
    assert_int_equal(system(cmd), 0);
    start_b(f, "STRICT", "live");
    presented_subject(f, out, sizeof(out));
    assert_non_null(strstr(out, "CN = rv\n"));
    snprintf(cmd, sizeof(cmd),
             "cd '%s' && cp rv-wrong-san.crt live.crt.new && cp rv-wrong-san.key live.key.new && "
             "mv live.crt.new live.crt && mv live.key.new live.key",
             f->certs);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(kill(f->b.pid, SIGHUP), 0);
    for (int i = 0; i < 100; i++) {
        presented_subject(f, out, sizeof(out));
        if (strstr(out, "CN = rv-wrong-san") != NULL) {
            break;
        }
        usleep(50 * 1000);
    }
    assert_non_null(strstr(out, "CN = rv-wrong-san"));
}

static void test_bad_cert_files(void **state)
{
    fx_t *f = *state;
    char chain[4200], key[4200], log[4200];
    snprintf(chain, sizeof(chain), "%s/ca.crt", f->certs); /* no SPIFFE URI SAN */
    snprintf(key, sizeof(key), "%s/ca.key", f->certs);
    char *dir = wt_tmpdir("mtlsbad");
    snprintf(log, sizeof(log), "%s/log", dir);
    char *argv[] = {(char *)wt_weft_bin(), "proxy", "--service",     "x", "--app-port", "1",
                    "--cert-chain",        chain,   "--private-key", key, NULL};
    pid_t pid = wt_spawn(argv, log);
    int st = wt_wait(pid, 10000);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 2);
    char *text = wt_read_file(log, NULL);
    assert_non_null(strstr(text, "certificate files"));
    wf_free(text);
    wt_rm_rf(dir);
    wf_free(dir);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_strict_mtls, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_permissive, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_disable_to_strict, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_bad_server_certs, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_outbound_without_cert, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_resumption, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_tcp_port_strict, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_sighup_reloads_certs, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_bad_cert_files, test_setup, test_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
