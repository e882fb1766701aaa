/*
 * test_proxy_control.c - `weft proxy --control URL` against a scripted control plane (a small
 * HTTP server in this test speaking docs/snapshot.md "Delivery"): the proxy is INITIALIZING
 * until the first snapshot, long-polls with the version it applied (the ACK), reports a
 * snapshot it refuses with the next poll (nack + reason) while the last good one keeps
 * serving, takes the next good one, and NACKs a document that does not parse with the
 * version it claims. Over gzip: the proxy asks for it, takes a gzip-encoded snapshot, and NACKs
 * one whose inflated size passes its limit (a gzip bomb) without applying it. A proxy that asks
 * the CA for its workload certificate stays INITIALIZING, snapshot applied, until it has one.
 */
#include "test_proxy_common.h"
#include "wt_control.h"

#define MAX_POLLS 32

typedef struct {
    tsrv_t srv;     /* one connection at a time, as one proxy polls */
    int up_a, up_b; /* the ports snapshots route reviews to */
    pthread_mutex_t mu;
    char queries[MAX_POLLS][1024];
    bool asked_gzip[MAX_POLLS]; /* the poll's Accept-Encoding listed gzip */
    int n_polls;
    bool gzip_script; /* answer per gzip_answer, not answer */
    int n_refused;    /* requests other than polls answered 503 (nocert_serve) */
} control_t;

static void snapshot_json(char *out, size_t cap, int version, const char *service, int port)
{
    snprintf(out, cap,
             "{\"schema\": 1, \"version\": %d, \"proxy\": {\"service\": \"%s\"},\n"
             " \"virtual_hosts\": [{\"host\": \"reviews\", \"port\": 9080}],\n"
             " \"clusters\": [{\"host\": \"reviews\", \"port\": 9080,\n"
             "   \"endpoints\": [{\"address\": \"127.0.0.1\", \"port\": %d}]}]}\n",
             version, service, port);
}

/* Wait ms or until the test stops the server; true when stopping. */
static bool hold(control_t *c, int ms)
{
    struct pollfd p = {.fd = c->srv.stop_pipe[0], .events = POLLIN};
    return poll(&p, 1, ms) > 0;
}

/* The script: what the control plane answers to poll number n (0-based). */
static void answer(control_t *c, int fd, int n)
{
    char body[2048];
    const char *status = "200 OK";
    switch (n) {
    case 0:
        if (hold(c, 600)) {
            return;
        }
        snapshot_json(body, sizeof(body), 1, "reviews", c->up_a);
        break;
    case 1:
        snapshot_json(body, sizeof(body), 2, "details", c->up_b); /* another identity */
        break;
    case 2:
        snapshot_json(body, sizeof(body), 3, "reviews", c->up_b);
        break;
    case 3:
        snprintf(body, sizeof(body), "{\"schema\": 1, \"version\": 4, \"proxy\": {}}");
        break;
    default:
        if (hold(c, n == 4 ? 300 : 10000)) {
            return;
        }
        status = "304 Not Modified";
        body[0] = '\0';
        break;
    }
    char head[256];
    int hl =
        snprintf(head, sizeof(head),
                 "HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                 status, strlen(body));
    send_all(fd, head, (size_t)hl);
    send_all(fd, body, strlen(body));
}

/* The gzip script: version 1 gzip-encoded (taken), then a document that inflates past the
 * proxy's 8 MiB limit from 9 KiB or so (refused), then nothing newer. */
static void gzip_answer(control_t *c, int fd, int n)
{
    wf_buf_t plain = WF_BUF_INIT, gz = WF_BUF_INIT;
    if (n == 0) {
        char body[2048];
        snapshot_json(body, sizeof(body), 1, "reviews", c->up_a);
        wf_buf_puts(&plain, body);
    } else if (n == 1) {
        const size_t big = 9u << 20;
        wf_buf_puts(&plain, "{\"schema\": 1, \"version\": 2,");
        memset(wf_buf_reserve(&plain, big), ' ', big);
        plain.len += big;
        wf_buf_puts(&plain, "\"proxy\": {}}");
    } else {
        if (hold(c, 10000)) {
            return;
        }
        send_str(fd, "HTTP/1.1 304 Not Modified\r\nContent-Length: 0\r\n\r\n");
        return;
    }
    wt_gzip(plain.data, plain.len, &gz);
    char head[256];
    int hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: "
                      "gzip\r\nVary: Accept-Encoding\r\nContent-Length: %zu\r\n\r\n",
                      gz.len);
    send_all(fd, head, (size_t)hl);
    send_all(fd, gz.data, gz.len);
    wf_buf_free(&plain);
    wf_buf_free(&gz);
}

/* The requests of one connection, in turn. */
static void control_serve(int fd, void *ctx)
{
    control_t *c = ctx;
    rd_t r;
    rd_init(&r, fd);
    for (;;) {
        char *head = rd_until(&r, "\r\n\r\n");
        if (head == NULL) {
            break;
        }
        char target[1024] = "";
        sscanf(head, "GET %1023s", target);
        pthread_mutex_lock(&c->mu);
        int n = c->n_polls;
        if (n < MAX_POLLS) {
            const char *q = strchr(target, '?');
            snprintf(c->queries[n], sizeof(c->queries[n]), "%s", q != NULL ? q + 1 : "");
            c->asked_gzip[n] = strcasestr(head, "\r\nAccept-Encoding: gzip") != NULL;
            c->n_polls++;
        }
        pthread_mutex_unlock(&c->mu);
        wf_free(head);
        if (strncmp(target, "/v1/snapshot?", 13) != 0) {
            send_str(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
            continue;
        }
        if (c->gzip_script) {
            gzip_answer(c, fd, n);
        } else {
            answer(c, fd, n);
        }
        if (hold(c, 0)) {
            break;
        }
    }
    rd_free(&r);
}

typedef struct {
    control_t ctl;
    upstream_t a, b;
    proxy_t px;
} cfx_t;

static int setup(void **state)
{
    cfx_t *f = wf_calloc(1, sizeof(*f));
    upstream_start(&f->a, "A");
    upstream_start(&f->b, "B");
    control_t *c = &f->ctl;
    pthread_mutex_init(&c->mu, NULL);
    c->up_a = f->a.port;
    c->up_b = f->b.port;
    tsrv_start(&c->srv, false, control_serve, c);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    cfx_t *f = *state;
    control_t *c = &f->ctl;
    if (f->px.pid > 0) {
        proxy_stop(&f->px); /* abandons the held poll; exits 0 */
    }
    tsrv_stop(&c->srv);
    upstream_stop(&f->a);
    upstream_stop(&f->b);
    wf_free(f);
    return 0;
}

static int polls(control_t *c)
{
    pthread_mutex_lock(&c->mu);
    int n = c->n_polls;
    pthread_mutex_unlock(&c->mu);
    return n;
}

static void test_long_poll_ack_nack(void **state)
{
    cfx_t *f = *state;
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", f->ctl.srv.port);
    const char *extra[] = {"--control", url, NULL};
    proxy_start_with(&f->px, wt_free_port(), NULL, "2", extra);
    /* Before the first snapshot the proxy is not ready, and routes nothing. */
    char *body = NULL;
    assert_int_equal(wt_http(f->px.admin, "GET", "/ready", NULL, 0, &body), 503);
    assert_string_equal(body, "INITIALIZING\n");
    wf_free(body);
    /* Polls 0..4 answered (1 refused, 2 taken, 3 refused, 4 a timeout), 5 is held. */
    for (int i = 0; i < 1500 && polls(&f->ctl) < 6; i++) {
        usleep(10 * 1000);
    }
    assert_int_equal(polls(&f->ctl), 6);
    assert_int_equal(wt_http(f->px.admin, "GET", "/ready", NULL, 0, &body), 200);
    wf_free(body);
    pthread_mutex_lock(&f->ctl.mu);
    char(*q)[1024] = f->ctl.queries;
    assert_string_equal(q[0], "proxy=reviews-unknown.default&version=0");
    assert_string_equal(q[1], "proxy=reviews-unknown.default&version=1");
    /* The NACK of version 2, with curl's escaping of the reason. */
    assert_int_equal(strncmp(q[2], "proxy=reviews-unknown.default&version=1&nack=2&reason=", 54),
                     0);
    assert_non_null(strstr(q[2], "proxy%20identity"));
    assert_string_equal(q[3], "proxy=reviews-unknown.default&version=3");
    assert_int_equal(strncmp(q[4], "proxy=reviews-unknown.default&version=3&nack=4&reason=", 54),
                     0);
    assert_non_null(strstr(q[4], "service"));
    /* After a timeout (304) the same state is polled again. */
    assert_string_equal(q[5], q[4]);
    pthread_mutex_unlock(&f->ctl.mu);
    /* Version 3 serves: reviews goes to B. */
    assert_int_equal(stat_value(f->px.admin, "weft_proxy_config_version"), 3);
    assert_int_equal(
        stat_value(f->px.admin, "weft_proxy_config_updates_total{result=\"rejected\"}"), 2);
    resp_t rs;
    assert_int_equal(
        request(f->px.outbound, "GET /who HTTP/1.1\r\nHost: reviews:9080\r\n\r\n", NULL, 0, &rs),
        200);
    assert_true(body_is(&rs, "B", 1));
    resp_free(&rs);
}

static void test_gzip_and_bomb(void **state)
{
    cfx_t *f = *state;
    f->ctl.gzip_script = true;
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", f->ctl.srv.port);
    const char *extra[] = {"--control", url, NULL};
    proxy_start_with(&f->px, wt_free_port(), NULL, "2", extra);
    /* Poll 0 answered (taken), 1 answered (refused), 2 held. */
    for (int i = 0; i < 1500 && polls(&f->ctl) < 3; i++) {
        usleep(10 * 1000);
    }
    assert_int_equal(polls(&f->ctl), 3);
    pthread_mutex_lock(&f->ctl.mu);
    char(*q)[1024] = f->ctl.queries;
    assert_true(f->ctl.asked_gzip[0] && f->ctl.asked_gzip[1] && f->ctl.asked_gzip[2]);
    assert_string_equal(q[0], "proxy=reviews-unknown.default&version=0");
    assert_string_equal(q[1], "proxy=reviews-unknown.default&version=1");
    /* The bomb's version was never read: NACK 0, with the reason. */
    assert_int_equal(strncmp(q[2], "proxy=reviews-unknown.default&version=1&nack=0&reason=", 54),
                     0);
    assert_non_null(strstr(q[2], "larger%20than"));
    pthread_mutex_unlock(&f->ctl.mu);
    assert_int_equal(stat_value(f->px.admin, "weft_proxy_config_version"), 1);
    assert_int_equal(
        stat_value(f->px.admin, "weft_proxy_config_updates_total{result=\"rejected\"}"), 1);
    resp_t rs;
    assert_int_equal(
        request(f->px.outbound, "GET /who HTTP/1.1\r\nHost: reviews:9080\r\n\r\n", NULL, 0, &rs),
        200);
    assert_true(body_is(&rs, "A", 1));
    resp_free(&rs);
}

/* GET path from the control plane with the admin token (200); the body into out. */
static void cp_get(const wt_control_t *c, const char *path, char *out, size_t cap)
{
    char *body = NULL;
    assert_int_equal(wt_control_req(c->port, "GET", path, c->admin, NULL, &body), 200);
    snprintf(out, cap, "%s", body);
    wf_free(body);
}

/* A control plane that serves snapshot 1 (then holds every poll) and answers 503 to anything
 * else: the registration, so the proxy never gets to ask for its certificate. */
static void nocert_serve(int fd, void *ctx)
{
    control_t *c = ctx;
    rd_t r;
    rd_init(&r, fd);
    for (;;) {
        char *head = rd_until(&r, "\r\n\r\n");
        if (head == NULL) {
            break;
        }
        char method[8] = "", target[1024] = "";
        sscanf(head, "%7s %1023s", method, target);
        const char *cl = strcasestr(head, "\r\nContent-Length:");
        size_t len = cl != NULL ? strtoul(cl + 17, NULL, 10) : 0;
        wf_free(head);
        wf_buf_t body = WF_BUF_INIT;
        bool whole = rd_bytes(&r, len, &body);
        wf_buf_free(&body);
        if (!whole) {
            break;
        }
        if (strcmp(method, "GET") != 0 || strncmp(target, "/v1/snapshot?", 13) != 0) {
            pthread_mutex_lock(&c->mu);
            c->n_refused++;
            pthread_mutex_unlock(&c->mu);
            send_str(fd, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
            continue;
        }
        if (strstr(target, "&version=0") == NULL) {
            if (hold(c, 10000)) {
                break;
            }
            send_str(fd, "HTTP/1.1 304 Not Modified\r\nContent-Length: 0\r\n\r\n");
            continue;
        }
        char snap[2048], resp[2400];
        snapshot_json(snap, sizeof(snap), 1, "reviews", c->up_a);
        snprintf(resp, sizeof(resp),
                 "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                 "%zu\r\n\r\n%s",
                 strlen(snap), snap);
        send_str(fd, resp);
    }
    rd_free(&r);
}

/* With a bootstrap token the proxy asks the CA for its workload certificate: until that is
 * installed it is not ready, though its snapshot serves (it would send plaintext where auto
 * mTLS belongs, as an Envoy without its SDS secrets would). */
static void test_not_ready_without_certificate(void **state)
{
    (void)state;
    upstream_t a;
    upstream_start(&a, "A");
    control_t c = {.up_a = a.port};
    pthread_mutex_init(&c.mu, NULL);
    tsrv_start(&c.srv, true, nocert_serve, &c);
    char url[64], token[4300];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", c.srv.port);
    char *dir = wt_tmpdir("pxnocert");
    snprintf(token, sizeof(token), "%s/bootstrap-token", dir);
    wt_write_file(token, "0123456789abcdef0123456789abcdef\n");
    const char *extra[] = {"--control", url, "--bootstrap-token-file", token, NULL};
    proxy_t p;
    proxy_start_with(&p, wt_free_port(), NULL, "1", extra);
    for (int i = 0; i < 1000 && stat_value(p.admin, "weft_proxy_config_version") != 1; i++) {
        usleep(10 * 1000);
    }
    assert_int_equal(stat_value(p.admin, "weft_proxy_config_version"), 1);
    /* The snapshot serves; the registration was refused at least once; still not ready. */
    resp_t rs;
    assert_int_equal(
        request(p.outbound, "GET /who HTTP/1.1\r\nHost: reviews:9080\r\n\r\n", NULL, 0, &rs), 200);
    assert_true(body_is(&rs, "A", 1));
    resp_free(&rs);
    for (int i = 0; i < 1000; i++) {
        pthread_mutex_lock(&c.mu);
        int refused = c.n_refused;
        pthread_mutex_unlock(&c.mu);
        if (refused > 0) {
            break;
        }
        usleep(10 * 1000);
    }
    char *body = NULL;
    assert_int_equal(wt_http(p.admin, "GET", "/ready", NULL, 0, &body), 503);
    assert_string_equal(body, "INITIALIZING\n");
    wf_free(body);
    pthread_mutex_lock(&c.mu);
    assert_true(c.n_refused > 0);
    pthread_mutex_unlock(&c.mu);
    assert_int_equal(stat_value(p.admin, "weft_proxy_cert_valid"), 0);
    proxy_stop(&p);
    tsrv_stop(&c.srv);
    upstream_stop(&a);
    wt_rm_rf(dir);
    wf_free(dir);
}

/* With the real `weft control`: the proxy registers its workload with the bootstrap token and
 * keeps it alive by heartbeats past the lease; once it stops, the lease runs out; a proxy
 * with a wrong token is refused (401) and says so. */
static void test_registers_with_the_control_plane(void **state)
{
    (void)state;
    wt_control_t c;
    assert_int_equal(wt_control_new(&c, "pxcp", (const char *const[]){"--lease-ttl", "2s", NULL}),
                     0);
    char url[64], token[4300], bad[4300];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", c.port);
    snprintf(token, sizeof(token), "%s/bootstrap-token", c.data);
    const char *extra[] = {"--control", url, "--bootstrap-token-file", token, "--version",
                           "v1",        NULL};
    proxy_t p;
    proxy_start_with(&p, wt_free_port(), NULL, "1", extra);
    char body[8192], want[128];
    bool seen = false;
    for (int i = 0; i < 500 && !seen; i++) {
        cp_get(&c, "/v1/workloads", body, sizeof(body));
        seen = strstr(body, "\"reviews-v1.default\"") != NULL;
        if (!seen) {
            usleep(10 * 1000);
        }
    }
    assert_true(seen);
    snprintf(want, sizeof(want), "\"adminPort\":%d", p.admin);
    assert_non_null(strstr(body, want));
    assert_non_null(strstr(body, "\"address\":\"127.0.0.1\""));
    snprintf(want, sizeof(want), "\"127.0.0.1:%d\"", p.admin);
    cp_get(&c, "/v1/targets", body, sizeof(body));
    assert_non_null(strstr(body, want));
    /* Three seconds is past the 2 s lease: heartbeats kept it. */
    usleep(3000 * 1000);
    cp_get(&c, "/v1/workloads", body, sizeof(body));
    assert_non_null(strstr(body, "\"reviews-v1.default\""));
    proxy_stop(&p);
    for (int i = 0; i < 600 && seen; i++) {
        cp_get(&c, "/v1/workloads", body, sizeof(body));
        seen = strstr(body, "\"reviews-v1.default\"") != NULL;
        if (seen) {
            usleep(10 * 1000);
        }
    }
    assert_false(seen);

    /* A wrong bootstrap token: refused, and the proxy says why. */
    snprintf(bad, sizeof(bad), "%s/bad-token", c.dir);
    wt_write_file(bad, "0123456789abcdef\n");
    const char *extra2[] = {"--control", url, "--bootstrap-token-file", bad, NULL};
    proxy_start_with(&p, wt_free_port(), NULL, "1", extra2);
    char plog[4300];
    snprintf(plog, sizeof(plog), "%s/proxy.log", p.dir);
    bool refused = false;
    for (int i = 0; i < 500 && !refused; i++) {
        char *t = wt_read_file(plog, NULL);
        refused = t != NULL && strstr(t, "what=registration status=401") != NULL;
        wf_free(t);
        if (!refused) {
            usleep(10 * 1000);
        }
    }
    assert_true(refused);
    cp_get(&c, "/v1/workloads", body, sizeof(body));
    assert_null(strstr(body, "reviews-unknown.default"));
    proxy_stop(&p);
    assert_int_equal(wt_control_stop(&c), 0);
    wt_control_free(&c);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_long_poll_ack_nack),
    };
    int failed = cmocka_run_group_tests(tests, setup, teardown);
    const struct CMUnitTest gzip[] = {
        cmocka_unit_test(test_gzip_and_bomb),
    };
    failed += cmocka_run_group_tests(gzip, setup, teardown);
    const struct CMUnitTest real[] = {
        cmocka_unit_test(test_registers_with_the_control_plane),
        cmocka_unit_test(test_not_ready_without_certificate),
    };
    return failed + cmocka_run_group_tests(real, NULL, NULL);
}
