/*
 * test_proxy_resilience.c - load balancing, circuit breaking and outlier detection of the real
 * `weft proxy` (one worker, so per-worker orders are exact) over three test upstreams A, B, C:
 * consistent hash on a header, a cookie (generated with Set-Cookie, then sticky), the client's
 * address (clients bound to 127.0.0.N) and a query parameter; PASSTHROUGH to the authority's
 * address; max_connections 1 + http1_max_pending_requests 1 with the connection held by a
 * request whose body is not all sent yet (so the test decides when it frees): a second request
 * waits and then reuses that connection, a third is refused 503 UO, a waiting one whose client
 * leaves is dropped from the queue; max_retries 0; two workers and 40 concurrent clients under
 * max_connections 2; max_requests_per_connection; an upstream answering 503 ejected after
 * consecutive_5xx_errors and back after its ejection time; every endpoint ejected -> 503 UH.
 * Counters, /clusters health flags and istio_requests_total flags are asserted.
 */
#include "test_proxy_common.h"

#include "wf_clock.h"

typedef struct {
    upstream_t a, b, c;
    proxy_t px;
    char *dir;
} rfx_t;

#define CL(h) "outbound|80||" h ".default.svc.cluster.local"

static int setup(void **state)
{
    rfx_t *f = wf_calloc(1, sizeof(*f));
    upstream_start(&f->a, "A");
    upstream_start(&f->b, "B");
    upstream_start(&f->c, "C");
    f->dir = wt_tmpdir("pxres");
    char path[4200], abc[512], a[128], b[128], ab[256];
    snprintf(path, sizeof(path), "%s/snapshot.json", f->dir);
    snprintf(a, sizeof(a), "[{\"address\": \"127.0.0.1\", \"port\": %d}]", f->a.port);
    snprintf(b, sizeof(b), "[{\"address\": \"127.0.0.1\", \"port\": %d}]", f->b.port);
    snprintf(ab, sizeof(ab),
             "[{\"address\": \"127.0.0.1\", \"port\": %d}, {\"address\": \"127.0.0.1\", "
             "\"port\": %d}]",
             f->a.port, f->b.port);
    snprintf(abc, sizeof(abc),
             "[{\"address\": \"127.0.0.1\", \"port\": %d}, {\"address\": \"127.0.0.1\", "
             "\"port\": %d}, {\"address\": \"127.0.0.1\", \"port\": %d}]",
             f->a.port, f->b.port, f->c.port);
    wf_buf_t j = WF_BUF_INIT;
    wf_buf_puts(&j, "{\"schema\": 1, \"version\": 3,\n"
                    " \"proxy\": {\"service\": \"productpage\", \"version\": \"v1\"},\n"
                    " \"virtual_hosts\": [\n");
    const char *vh[] = {"hh", "hc", "hi", "hq", "cb", "mr", "od", "oa", "rt", "cs"};
    for (size_t i = 0; i < sizeof(vh) / sizeof(vh[0]); i++) {
        wf_buf_printf(&j, "  {\"host\": \"%s\", \"port\": 80},\n", vh[i]);
    }
    wf_buf_puts(&j, "  {\"host\": \"passthrough\", \"port\": 0, \"domains\": [\"*\"], \"routes\": "
                    "[{\"route\": [{\"destination\": {\"host\": \"passthrough\", \"cluster\": "
                    "\"PassthroughCluster\"}}]}]}\n ],\n \"clusters\": [\n");
    wf_buf_printf(&j,
                  "  {\"host\": \"hh\", \"port\": 80, \"load_balancer\": {\"consistent_hash\": "
                  "{\"http_header_name\": \"x-user\"}}, \"endpoints\": %s},\n",
                  abc);
    wf_buf_printf(&j,
                  "  {\"host\": \"hc\", \"port\": 80, \"load_balancer\": {\"consistent_hash\": "
                  "{\"http_cookie\": {\"name\": \"sticky\", \"path\": \"/\", \"ttl_ms\": 60000}}}, "
                  "\"endpoints\": %s},\n",
                  abc);
    wf_buf_printf(&j,
                  "  {\"host\": \"hi\", \"port\": 80, \"load_balancer\": {\"consistent_hash\": "
                  "{\"use_source_ip\": true}}, \"endpoints\": %s},\n",
                  abc);
    wf_buf_printf(&j,
                  "  {\"host\": \"hq\", \"port\": 80, \"load_balancer\": {\"consistent_hash\": "
                  "{\"http_query_parameter_name\": \"user\"}}, \"endpoints\": %s},\n",
                  abc);
    wf_buf_printf(&j,
                  "  {\"host\": \"cb\", \"port\": 80, \"connection_pool\": {\"tcp\": "
                  "{\"max_connections\": 1}, \"http\": {\"http1_max_pending_requests\": 1}}, "
                  "\"endpoints\": %s},\n",
                  a);
    wf_buf_printf(&j,
                  "  {\"host\": \"mr\", \"port\": 80, \"connection_pool\": {\"http\": "
                  "{\"max_requests_per_connection\": 2}}, \"endpoints\": %s},\n",
                  b);
    wf_buf_printf(&j,
                  "  {\"host\": \"od\", \"port\": 80, \"load_balancer\": {\"simple\": "
                  "\"ROUND_ROBIN\"}, \"outlier_detection\": {\"consecutive_5xx_errors\": 3, "
                  "\"interval_ms\": 100, \"base_ejection_time_ms\": 2000, "
                  "\"max_ejection_percent\": 100}, \"endpoints\": %s},\n",
                  ab);
    wf_buf_printf(&j,
                  "  {\"host\": \"oa\", \"port\": 80, \"load_balancer\": {\"simple\": "
                  "\"RANDOM\"}, \"outlier_detection\": {\"consecutive_5xx_errors\": 1, "
                  "\"base_ejection_time_ms\": 60000, \"max_ejection_percent\": 100}, "
                  "\"endpoints\": %s},\n",
                  ab);
    wf_buf_printf(&j,
                  "  {\"host\": \"rt\", \"port\": 80, \"connection_pool\": {\"http\": "
                  "{\"max_retries\": 0}}, \"endpoints\": [{\"address\": \"127.0.0.1\", "
                  "\"port\": %d}]},\n",
                  wt_free_port());
    wf_buf_printf(&j,
                  "  {\"host\": \"cs\", \"port\": 80, \"connection_pool\": {\"tcp\": "
                  "{\"max_connections\": 2}, \"http\": {\"http1_max_pending_requests\": 1000}}, "
                  "\"endpoints\": [{\"address\": \"127.0.0.1\", \"port\": %d}]},\n",
                  f->c.port);
    wf_buf_puts(&j, "  {\"name\": \"PassthroughCluster\", \"host\": \"passthrough\", \"port\": 80, "
                    "\"load_balancer\": {\"simple\": \"PASSTHROUGH\"}}\n ]}\n");
    wf_buf_cstr(&j);
    wt_write_file(path, (const char *)j.data);
    wf_buf_free(&j);
    proxy_start_with(&f->px, wt_free_port(), path, "1", NULL);
    assert_true(wt_wait_port(f->px.outbound, 10000));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    rfx_t *f = *state;
    proxy_stop(&f->px);
    upstream_stop(&f->a);
    upstream_stop(&f->b);
    upstream_stop(&f->c);
    wt_rm_rf(f->dir);
    wf_free(f->dir);
    wf_free(f);
    return 0;
}

/* GET path with Host host (and extra header lines) on a new connection from src (NULL: the
 * default 127.0.0.1). Returns the status; the body as a string in out. */
static int get_from(int port, const char *src, const char *host, const char *path, const char *hdrs,
                    resp_t *rs, char *out, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct timeval tv = {.tv_sec = 15};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (src != NULL) {
        struct sockaddr_in s = {.sin_family = AF_INET};
        assert_int_equal(inet_pton(AF_INET, src, &s.sin_addr), 1);
        assert_int_equal(bind(fd, (struct sockaddr *)&s, sizeof(s)), 0);
    }
    struct sockaddr_in d = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    d.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&d, sizeof(d)), 0);
    char raw[2048];
    snprintf(raw, sizeof(raw), "GET %s HTTP/1.1\r\nHost: %s\r\n%sConnection: close\r\n\r\n", path,
             host, hdrs != NULL ? hdrs : "");
    assert_true(send_str(fd, raw));
    rd_t r;
    rd_init(&r, fd);
    bool ok = read_response(&r, rs);
    rd_free(&r);
    close(fd);
    size_t n = rs->body.len < cap - 1 ? rs->body.len : cap - 1;
    memcpy(out, rs->body.data, n);
    out[n] = '\0';
    return ok ? rs->status : -1;
}

static int get(int port, const char *host, const char *path, const char *hdrs, char *out,
               size_t cap, resp_t *rs)
{
    return get_from(port, NULL, host, path, hdrs, rs, out, cap);
}

/* Sum of the istio_requests_total samples whose labels contain every one of want. */
static double istio_count(int admin, const char *const *want)
{
    char *body = NULL;
    assert_int_equal(wt_http(admin, "GET", "/stats/prometheus", NULL, 0, &body), 200);
    double sum = 0;
    for (char *p = body; p != NULL && *p;) {
        char *nl = strchr(p, '\n');
        if (nl != NULL) {
            *nl = '\0';
        }
        if (strncmp(p, "istio_requests_total{", 21) == 0) {
            bool all = true;
            for (size_t i = 0; want[i] != NULL && all; i++) {
                all = strstr(p, want[i]) != NULL;
            }
            if (all) {
                sum += strtod(strrchr(p, ' ') + 1, NULL);
            }
        }
        p = nl != NULL ? nl + 1 : NULL;
    }
    wf_free(body);
    return sum;
}

static double cl_stat(int admin, const char *family, const char *cluster)
{
    char series[256];
    snprintf(series, sizeof(series), "%s{cluster_name=\"%s\"}", family, cluster);
    return stat_value(admin, series);
}

/* Distinct upstream names seen, as a bit set of A, B, C. */
static int name_bit(const char *n)
{
    return n[0] >= 'A' && n[0] <= 'C' && n[1] == '\0' ? 1 << (n[0] - 'A') : 0;
}

static int bits(int m)
{
    return (m & 1) + ((m >> 1) & 1) + ((m >> 2) & 1);
}

static void test_hash_header_and_query(void **state)
{
    rfx_t *f = *state;
    resp_t rs;
    char first[64], out[64], hdr[64], path[64];
    int seen_h = 0, seen_q = 0;
    for (int u = 0; u < 20; u++) {
        snprintf(hdr, sizeof(hdr), "X-User: user-%d\r\n", u);
        for (int i = 0; i < 4; i++) {
            assert_int_equal(get(f->px.outbound, "hh", "/who", hdr, out, sizeof(out), &rs), 200);
            resp_free(&rs);
            if (i == 0) {
                snprintf(first, sizeof(first), "%s", out);
                seen_h |= name_bit(out);
            }
            assert_string_equal(out, first); /* same key, same upstream */
        }
        snprintf(path, sizeof(path), "/who?a=1&user=user-%d", u);
        for (int i = 0; i < 4; i++) {
            assert_int_equal(get(f->px.outbound, "hq", path, NULL, out, sizeof(out), &rs), 200);
            resp_free(&rs);
            if (i == 0) {
                snprintf(first, sizeof(first), "%s", out);
                seen_q |= name_bit(out);
            }
            assert_string_equal(out, first);
        }
    }
    /* Twenty keys land on more than one of the three. */
    assert_true(bits(seen_h) >= 2);
    assert_true(bits(seen_q) >= 2);
}

static void test_hash_cookie_generated_then_sticky(void **state)
{
    rfx_t *f = *state;
    resp_t rs;
    char first[64], out[64], sc[256], cookie[128];
    int seen = 0;
    for (int client = 0; client < 12; client++) {
        assert_int_equal(get(f->px.outbound, "hc", "/who", NULL, first, sizeof(first), &rs), 200);
        assert_non_null(find_hdr(rs.head, "set-cookie", sc, sizeof(sc)));
        resp_free(&rs);
        /* sticky="<16 hex digits>"; Max-Age=60; Path=/; HttpOnly */
        assert_int_equal(strncmp(sc, "sticky=\"", 8), 0);
        for (int i = 8; i < 24; i++) {
            assert_non_null(strchr("0123456789abcdef", sc[i]));
        }
        assert_string_equal(sc + 24, "\"; Max-Age=60; Path=/; HttpOnly");
        seen |= name_bit(first);
        /* The client sends it back (quoted or not): the same upstream, no new cookie. */
        for (int i = 0; i < 4; i++) {
            snprintf(cookie, sizeof(cookie), "Cookie: other=1; sticky=%s%.16s%s\r\n",
                     i % 2 ? "\"" : "", sc + 8, i % 2 ? "\"" : "");
            assert_int_equal(get(f->px.outbound, "hc", "/who", cookie, out, sizeof(out), &rs), 200);
            assert_null(find_hdr(rs.head, "set-cookie", sc + 100, 100));
            resp_free(&rs);
            assert_string_equal(out, first);
        }
    }
    assert_true(bits(seen) >= 2);
}

static void test_hash_source_ip(void **state)
{
    rfx_t *f = *state;
    resp_t rs;
    char first[64], out[64], src[32];
    int seen = 0;
    for (int n = 2; n < 22; n++) {
        snprintf(src, sizeof(src), "127.0.0.%d", n);
        for (int i = 0; i < 3; i++) {
            assert_int_equal(
                get_from(f->px.outbound, src, "hi", "/who", NULL, &rs, out, sizeof(out)), 200);
            resp_free(&rs);
            if (i == 0) {
                snprintf(first, sizeof(first), "%s", out);
                seen |= name_bit(out);
            }
            assert_string_equal(out, first);
        }
    }
    assert_true(bits(seen) >= 2);
}

static void test_passthrough(void **state)
{
    rfx_t *f = *state;
    resp_t rs;
    char target[128], host[64], out[128];
    snprintf(host, sizeof(host), "127.0.0.1:%d", f->b.port);
    snprintf(target, sizeof(target), "http://127.0.0.1:%d/who", f->b.port);
    assert_int_equal(get(f->px.outbound, host, target, NULL, out, sizeof(out), &rs), 200);
    resp_free(&rs);
    assert_string_equal(out, "B");
    snprintf(host, sizeof(host), "127.0.0.1:%d", f->c.port);
    assert_int_equal(get(f->px.outbound, host, "/who", NULL, out, sizeof(out), &rs), 200);
    resp_free(&rs);
    assert_string_equal(out, "C");
    /* A name would need DNS on the worker: refused with a clear answer. */
    assert_int_equal(get(f->px.outbound, "nosuch.invalid", "/who", NULL, out, sizeof(out), &rs),
                     503);
    resp_free(&rs);
    assert_string_equal(out, "passthrough destination is not an IP address");
}

/* Poll until cond(f) holds, for at most 10 s. */
static bool wait_until(bool (*cond)(rfx_t *), rfx_t *f)
{
    for (int i = 0; i < 1000; i++) {
        if (cond(f)) {
            return true;
        }
        usleep(10 * 1000);
    }
    return false;
}

static bool a_has_request(rfx_t *f)
{
    return atomic_load(&f->a.requests) > 0;
}

static bool one_pending(rfx_t *f)
{
    return cl_stat(f->px.admin, "weft_proxy_upstream_rq_pending_active", CL("cb")) == 1;
}

/* A request that holds cluster cb's one connection until the test sends the last 3 bytes of
 * its body ("llo"): the upstream's /echo waits for all of it. */
static int hold_connection(rfx_t *f)
{
    int fd = tcp_connect(f->px.outbound);
    assert_true(fd >= 0);
    assert_true(send_str(fd, "POST /echo HTTP/1.1\r\nHost: cb\r\nContent-Length: 5\r\n"
                             "Connection: close\r\n\r\nhe"));
    assert_true(wait_until(a_has_request, f));
    return fd;
}

static void test_circuit_breaker_pending_overflow(void **state)
{
    rfx_t *f = *state;
    int conns0 = atomic_load(&f->a.conns_total);
    atomic_store(&f->a.requests, 0);
    const char *req = "GET /sleep HTTP/1.1\r\nHost: cb\r\nConnection: close\r\n\r\n";
    int fd[3];
    fd[0] = hold_connection(f);
    fd[1] = tcp_connect(f->px.outbound);
    assert_true(send_str(fd[1], req));
    assert_true(wait_until(one_pending, f)); /* waits for it */
    fd[2] = tcp_connect(f->px.outbound);
    assert_true(send_str(fd[2], req));
    resp_t rs[3];
    rd_t r;
    rd_init(&r, fd[2]);
    assert_true(read_response(&r, &rs[2]));
    rd_free(&r);
    close(fd[2]);
    assert_int_equal(rs[2].status, 503);
    const char *uo = "upstream connect error or disconnect/reset before headers. reset reason: "
                     "overflow";
    assert_true(body_is(&rs[2], uo, strlen(uo)));
    /* The rest of the body frees the connection; the waiting request gets it. */
    assert_true(send_str(fd[0], "llo"));
    for (int i = 0; i < 2; i++) {
        rd_init(&r, fd[i]);
        assert_true(read_response(&r, &rs[i]));
        rd_free(&r);
        close(fd[i]);
        assert_int_equal(rs[i].status, 200);
    }
    assert_true(body_is(&rs[0], "hello", 5));
    assert_true(body_is(&rs[1], "slept", 5));
    for (int i = 0; i < 3; i++) {
        resp_free(&rs[i]);
    }
    /* The waiting request got the first one's connection: one connection for both. */
    assert_int_equal(atomic_load(&f->a.conns_total) - conns0, 1);
    assert_int_equal(
        cl_stat(f->px.admin, "weft_proxy_upstream_rq_pending_overflow_total", CL("cb")), 1);
    assert_int_equal(cl_stat(f->px.admin, "weft_proxy_upstream_rq_pending_active", CL("cb")), 0);
    assert_true(cl_stat(f->px.admin, "weft_proxy_upstream_cx_overflow_total", CL("cb")) >= 1);
    const char *want[] = {"response_flags=\"UO\"", "response_code=\"503\"",
                          "destination_service_name=\"cb\"", NULL};
    assert_int_equal(istio_count(f->px.admin, want), 1);
}

static bool none_pending(rfx_t *f)
{
    return cl_stat(f->px.admin, "weft_proxy_upstream_rq_pending_active", CL("cb")) == 0;
}

/* A waiting request whose client leaves is taken out of the queue; the rest goes on. */
static void test_pending_client_leaves(void **state)
{
    rfx_t *f = *state;
    atomic_store(&f->a.requests, 0);
    int fd0 = hold_connection(f);
    int fd1 = tcp_connect(f->px.outbound);
    assert_true(send_str(fd1, "GET /who HTTP/1.1\r\nHost: cb\r\nConnection: close\r\n\r\n"));
    assert_true(wait_until(one_pending, f));
    close(fd1);
    assert_true(wait_until(none_pending, f));
    assert_true(send_str(fd0, "llo"));
    resp_t rs;
    rd_t r;
    rd_init(&r, fd0);
    assert_true(read_response(&r, &rs));
    rd_free(&r);
    close(fd0);
    assert_int_equal(rs.status, 200);
    assert_true(body_is(&rs, "hello", 5));
    resp_free(&rs);
    char out[64];
    assert_int_equal(get(f->px.outbound, "cb", "/who", NULL, out, sizeof(out), &rs), 200);
    resp_free(&rs);
    assert_string_equal(out, "A");
    /* Only the first request and the last reached the upstream. */
    assert_int_equal(atomic_load(&f->a.requests), 2);
    assert_int_equal(
        cl_stat(f->px.admin, "weft_proxy_upstream_rq_pending_overflow_total", CL("cb")), 1);
}

/* max_retries 0: the route's connect-failure retries are not admitted, and counted. */
static void test_retry_budget(void **state)
{
    rfx_t *f = *state;
    resp_t rs;
    char out[256];
    assert_int_equal(get(f->px.outbound, "rt", "/who", NULL, out, sizeof(out), &rs), 503);
    resp_free(&rs);
    assert_string_equal(out, "upstream connect error or disconnect/reset before headers. reset "
                             "reason: connection failure");
    assert_int_equal(cl_stat(f->px.admin, "weft_proxy_upstream_rq_retry_overflow_total", CL("rt")),
                     1);
    const char *want[] = {"response_flags=\"UF\"", "destination_service_name=\"rt\"", NULL};
    assert_int_equal(istio_count(f->px.admin, want), 1);
}

typedef struct {
    int port;
    atomic_int *ok;
    atomic_int *bad;
} stress_arg_t;

/* Five requests on new connections; no cmocka assertion off the main thread. */
static void *stress_client(void *arg)
{
    stress_arg_t *a = arg;
    for (int i = 0; i < 5; i++) {
        int fd = tcp_connect(a->port);
        resp_t rs;
        memset(&rs, 0, sizeof(rs));
        bool good = false;
        if (fd >= 0 && send_str(fd, "GET /who HTTP/1.1\r\nHost: cs\r\nConnection: close\r\n\r\n")) {
            rd_t r;
            rd_init(&r, fd);
            good = read_response(&r, &rs) && rs.status == 200 && body_is(&rs, "C", 1);
            rd_free(&r);
        }
        if (fd >= 0) {
            close(fd);
        }
        resp_free(&rs);
        atomic_fetch_add(good ? a->ok : a->bad, 1);
    }
    return NULL;
}

/* Two workers, max_connections 2, a deep pending queue: 40 clients at once are all served,
 * over at most 3 upstream connections (2, plus the one a worker holding none may always
 * open). */
static void test_pending_queue_two_workers(void **state)
{
    rfx_t *f = *state;
    char path[4200];
    snprintf(path, sizeof(path), "%s/snapshot.json", f->dir);
    proxy_t p2;
    proxy_start_with(&p2, wt_free_port(), path, "2", NULL);
    assert_true(wt_wait_port(p2.outbound, 10000));
    int conns0 = atomic_load(&f->c.conns_total);
    atomic_int ok = 0, bad = 0;
    pthread_t t[40];
    stress_arg_t a = {.port = p2.outbound, .ok = &ok, .bad = &bad};
    for (int i = 0; i < 40; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, stress_client, &a), 0);
    }
    for (int i = 0; i < 40; i++) {
        pthread_join(t[i], NULL);
    }
    assert_int_equal(atomic_load(&bad), 0);
    assert_int_equal(atomic_load(&ok), 200);
    int conns = atomic_load(&f->c.conns_total) - conns0;
    assert_true(conns >= 1 && conns <= 3);
    assert_int_equal(cl_stat(p2.admin, "weft_proxy_upstream_rq_pending_active", CL("cs")), 0);
    assert_int_equal(cl_stat(p2.admin, "weft_proxy_upstream_rq_pending_overflow_total", CL("cs")),
                     0);
    proxy_stop(&p2);
}

static void test_max_requests_per_connection(void **state)
{
    rfx_t *f = *state;
    resp_t rs;
    char out[64];
    int conns0 = atomic_load(&f->b.conns_total);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(get(f->px.outbound, "mr", "/who", NULL, out, sizeof(out), &rs), 200);
        resp_free(&rs);
        assert_string_equal(out, "B");
    }
    /* Two requests per connection: 2 + 2 + 1. */
    assert_int_equal(atomic_load(&f->b.conns_total) - conns0, 3);
}

static bool a_is_back(rfx_t *f)
{
    resp_t rs;
    char out[64];
    int st = get(f->px.outbound, "od", "/who", NULL, out, sizeof(out), &rs);
    resp_free(&rs);
    return st == 200 && strcmp(out, "A") == 0;
}

static void test_outlier_ejects_and_returns(void **state)
{
    rfx_t *f = *state;
    resp_t rs;
    char out[64];
    /* A answers 503: round robin alternates until its third in a row ejects it. */
    int fails = 0, sent = 0;
    while (fails < 3 && sent < 20) {
        int st = get(f->px.outbound, "od", "/failif/A", NULL, out, sizeof(out), &rs);
        resp_free(&rs);
        sent++;
        if (st == 503) {
            assert_string_equal(out, "A");
            fails++;
        } else {
            assert_int_equal(st, 200);
            assert_string_equal(out, "B");
        }
    }
    assert_int_equal(fails, 3);
    int64_t ejected_at = wf_mono_ns();
    char *clusters = NULL, line[160];
    assert_int_equal(wt_http(f->px.admin, "GET", "/clusters", NULL, 0, &clusters), 200);
    snprintf(line, sizeof(line), "%s::127.0.0.1:%d::health_flags::/failed_outlier_check\n",
             CL("od"), f->a.port);
    bool flagged = strstr(clusters, line) != NULL;
    snprintf(line, sizeof(line), "%s::127.0.0.1:%d::health_flags::healthy\n", CL("od"), f->b.port);
    bool b_healthy = strstr(clusters, line) != NULL;
    wf_free(clusters);
    assert_true(b_healthy);
    if (wf_mono_ns() - ejected_at < 1800LL * 1000000) {
        assert_true(flagged);
    }
    assert_int_equal(cl_stat(f->px.admin, "weft_proxy_outlier_detection_ejections_total", CL("od")),
                     1);
    /* While it is out (2 s), everything goes to B. The guard only skips the check should this
     * machine be so slow that the ejection is already over. */
    for (int i = 0; i < 6; i++) {
        assert_int_equal(get(f->px.outbound, "od", "/failif/A", NULL, out, sizeof(out), &rs), 200);
        resp_free(&rs);
        if (wf_mono_ns() - ejected_at < 1800LL * 1000000) {
            assert_string_equal(out, "B");
        }
    }
    /* Then it comes back. */
    assert_true(wait_until(a_is_back, f));
    assert_int_equal(
        cl_stat(f->px.admin, "weft_proxy_outlier_detection_ejections_active", CL("od")), 0);
}

static void test_all_ejected_no_healthy_upstream(void **state)
{
    rfx_t *f = *state;
    resp_t rs;
    char out[64], first[8];
    /* consecutive_5xx_errors 1: each 503 ejects the endpoint that sent it. */
    assert_int_equal(get(f->px.outbound, "oa", "/status/503", NULL, first, sizeof(first), &rs),
                     503);
    resp_free(&rs);
    assert_true(strcmp(first, "A") == 0 || strcmp(first, "B") == 0);
    assert_int_equal(get(f->px.outbound, "oa", "/status/503", NULL, out, sizeof(out), &rs), 503);
    resp_free(&rs);
    assert_string_equal(out, strcmp(first, "A") == 0 ? "B" : "A");
    assert_int_equal(
        cl_stat(f->px.admin, "weft_proxy_outlier_detection_ejections_active", CL("oa")), 2);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(get(f->px.outbound, "oa", "/status/200", NULL, out, sizeof(out), &rs),
                         503);
        resp_free(&rs);
        assert_string_equal(out, "no healthy upstream");
    }
    const char *want[] = {"response_flags=\"UH\"", "response_code=\"503\"",
                          "destination_service_name=\"oa\"", NULL};
    assert_int_equal(istio_count(f->px.admin, want), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_header_and_query),
        cmocka_unit_test(test_hash_cookie_generated_then_sticky),
        cmocka_unit_test(test_hash_source_ip),
        cmocka_unit_test(test_passthrough),
        cmocka_unit_test(test_circuit_breaker_pending_overflow),
        cmocka_unit_test(test_pending_client_leaves),
        cmocka_unit_test(test_retry_budget),
        cmocka_unit_test(test_pending_queue_two_workers),
        cmocka_unit_test(test_max_requests_per_connection),
        cmocka_unit_test(test_outlier_ejects_and_returns),
        cmocka_unit_test(test_all_ejected_no_healthy_upstream),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
