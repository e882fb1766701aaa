/*
 * test_control_push.c - the config push of the real `weft control` (docs/snapshot.md
 * "Delivery", docs/controlplane.md "Push"): long-polls held on /v1/snapshot and answered when a
 * registration or an apply makes a newer version (200, version above the previous one) or when
 * their wait runs out (304); a refused version is not sent again; /v1/proxy-status shows
 * SYNCED, STALE, NACK (with the reason) and NOT_REGISTERED; tokens are required; a hundred
 * polls held at once are all answered after their workloads register; versions keep growing
 * across a restart; the push metrics; gzip when the poll's Accept-Encoding asks. And end to end: a
 * real `weft proxy --control` receives its compiled snapshot and routes per the VirtualService
 * applied, then per the next one.
 */
#include "test_proxy_common.h"
#include "wt_control.h"

#include <jansson.h>
#include <stdint.h>
#include <zlib.h>

/* The lease every test but the expiry one runs with: longer than any test. */
static const char *const LEASE_LONG[] = {"--lease-ttl", "120s", NULL};

/* A connection to the control plane for a request of our own making. */
static int connect_to(int port)
{
    int fd = wt_http_connect(port, 60000);
    assert_true(fd >= 0);
    return fd;
}

/* One request (held polls wait up to 30 s); the status, *out the body (wf_free). */
static int req(int port, const char *method, const char *path, const char *token, const char *body,
               char **out)
{
    return wt_control_req_full(port, method, path, token, body, body ? strlen(body) : 0, false,
                               60000, out);
}

static json_t *parse(char *body)
{
    json_t *o = json_loads(body, 0, NULL);
    if (o == NULL) {
        fprintf(stderr, "not JSON: %s\n", body);
    }
    assert_non_null(o);
    wf_free(body);
    return o;
}

/* Register a workload with no sidecar (plain test servers answer there: Istio's tlsMode label
 * keeps callers' sidecars from using mTLS). */
static void reg_at(wt_control_t *c, const char *service, const char *version, const char *address,
                   int port)
{
    char body[512];
    snprintf(body, sizeof(body),
             "{\"service\":\"%s\",\"version\":\"%s\",\"address\":\"%s\",\"ports\":[%d],"
             "\"labels\":{\"app\":\"%s\",\"version\":\"%s\","
             "\"security.istio.io/tlsMode\":\"disabled\"}}",
             service, version, address, port, service, version);
    assert_int_equal(req(c->port, "POST", "/v1/register", c->boot, body, NULL), 200);
}

static void reg(wt_control_t *c, const char *service, const char *version, int port)
{
    reg_at(c, service, version, "127.0.0.1", port);
}

/* A poll (blocking); the status and, on 200, the document's version in *version. */
static int poll_snapshot(wt_control_t *c, const char *id, long long version, const char *extra,
                         int wait_ms, long long *doc_version)
{
    char path[512];
    snprintf(path, sizeof(path), "/v1/snapshot?proxy=%s&version=%lld%s&wait_ms=%d", id, version,
             extra != NULL ? extra : "", wait_ms);
    char *body = NULL;
    int st = req(c->port, "GET", path, c->boot, NULL, &body);
    if (st == 200) {
        json_t *o = parse(body);
        *doc_version = json_integer_value(json_object_get(o, "version"));
        json_decref(o);
    } else {
        wf_free(body);
    }
    return st;
}

/* A poll on its own thread, to hold it while the test changes something. */
typedef struct {
    wt_control_t *c;
    const char *id;
    long long version;
    const char *extra;
    int wait_ms;
    int status;
    long long doc_version;
    pthread_t t;
} bg_poll_t;

static void *bg_run(void *arg)
{
    bg_poll_t *b = arg;
    b->status = poll_snapshot(b->c, b->id, b->version, b->extra, b->wait_ms, &b->doc_version);
    return NULL;
}

/* Start a held poll and wait until the server shows it waiting. */
static void bg_start(bg_poll_t *b);

static int bg_join(bg_poll_t *b)
{
    pthread_join(b->t, NULL);
    return b->status;
}

/* proxy-status's entry for id (a new reference), or NULL; *current the version. */
static json_t *status_entry(wt_control_t *c, const char *id, long long *current)
{
    char *body = NULL;
    assert_int_equal(req(c->port, "GET", "/v1/proxy-status", c->admin, NULL, &body), 200);
    json_t *o = parse(body);
    if (current != NULL) {
        *current = json_integer_value(json_object_get(o, "version"));
    }
    json_t *list = json_object_get(o, "proxies");
    json_t *found = NULL;
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *e = json_array_get(list, i);
        if (strcmp(json_string_value(json_object_get(e, "id")), id) == 0) {
            found = json_incref(e);
        }
    }
    json_decref(o);
    return found;
}

static void bg_start(bg_poll_t *b)
{
    assert_int_equal(pthread_create(&b->t, NULL, bg_run, b), 0);
    for (int i = 0; i < 2000; i++) {
        json_t *e = status_entry(b->c, b->id, NULL);
        bool waiting = e != NULL && json_is_true(json_object_get(e, "waiting"));
        json_decref(e);
        if (waiting) {
            return;
        }
        usleep(5000);
    }
    fail_msg("the poll of %s never waited", b->id);
}

static const char *state_of(wt_control_t *c, const char *id, char reason[128])
{
    static char state[32];
    json_t *e = status_entry(c, id, NULL);
    assert_non_null(e);
    snprintf(state, sizeof(state), "%s", json_string_value(json_object_get(e, "state")));
    if (reason != NULL) {
        snprintf(reason, 128, "%s", json_string_value(json_object_get(e, "reason")));
    }
    json_decref(e);
    return state;
}

/* Tokens: the bootstrap (or admin) token polls, the admin token reads the status. */
static void test_auth(void **state)
{
    (void)state;
    wt_control_t c;
    assert_int_equal(wt_control_new(&c, "cppush", LEASE_LONG), 0);
    char *body = NULL;
    assert_int_equal(
        req(c.port, "GET", "/v1/snapshot?proxy=a.default&version=0&wait_ms=0", NULL, NULL, NULL),
        401);
    assert_int_equal(
        req(c.port, "GET", "/v1/snapshot?proxy=a.default&version=0&wait_ms=0", "wrong", NULL, NULL),
        401);
    assert_int_equal(
        req(c.port, "GET", "/v1/snapshot?proxy=a.default&version=0&wait_ms=0", c.admin, NULL, NULL),
        304);
    assert_int_equal(req(c.port, "GET", "/v1/proxy-status", NULL, NULL, NULL), 401);
    assert_int_equal(req(c.port, "GET", "/v1/proxy-status", c.boot, NULL, NULL), 401);
    /* Malformed queries. */
    assert_int_equal(req(c.port, "GET", "/v1/snapshot?version=0", c.boot, NULL, &body), 400);
    wf_free(body);
    assert_int_equal(
        req(c.port, "GET", "/v1/snapshot?proxy=a.default&version=x", c.boot, NULL, NULL), 400);
    assert_int_equal(
        req(c.port, "GET", "/v1/snapshot?proxy=a.default&wait_ms=999999999", c.boot, NULL, NULL),
        400);
    assert_int_equal(req(c.port, "POST", "/v1/snapshot?proxy=a.default", c.boot, "{}", NULL), 405);
    assert_int_equal(wt_control_stop(&c), 0);
    wt_control_free(&c);
}

/* Polls answered by registrations and applies, 304 when nothing is newer, a refusal not resent,
 * the states of proxy-status, the metrics; versions grow across a restart. */
static void test_push_flow(void **state)
{
    (void)state;
    wt_control_t c;
    assert_int_equal(wt_control_new(&c, "cppush", LEASE_LONG), 0);
    long long v = 0, cur = 0;
    const char *id = "reviews-v1.default";

    /* Not registered: the poll waits, and is answered 304. */
    assert_int_equal(poll_snapshot(&c, id, 0, NULL, 200, &v), 304);
    assert_string_equal(state_of(&c, id, NULL), "NOT_REGISTERED");

    /* Held while the workload registers: answered with a document. */
    bg_poll_t b1 = {.c = &c, .id = id, .version = 0, .wait_ms = 20000};
    bg_start(&b1);
    reg(&c, "reviews", "v1", 9080);
    assert_int_equal(bg_join(&b1), 200);
    long long v1 = b1.doc_version;
    assert_true(v1 > 0);
    json_t *e = status_entry(&c, id, &cur);
    assert_int_equal(cur, v1);
    assert_string_equal(json_string_value(json_object_get(e, "state")), "STALE");
    assert_int_equal(json_integer_value(json_object_get(e, "sent")), v1);
    assert_string_equal(json_string_value(json_object_get(e, "namespace")), "default");
    assert_string_equal(json_string_value(json_object_get(e, "service")), "reviews");
    json_decref(e);

    /* The proxy applied it: nothing newer, 304, SYNCED. */
    assert_int_equal(poll_snapshot(&c, id, v1, NULL, 200, &v), 304);
    assert_string_equal(state_of(&c, id, NULL), "SYNCED");

    /* Another workload changes this proxy's view: a newer version. */
    bg_poll_t b2 = {.c = &c, .id = id, .version = v1, .wait_ms = 20000};
    bg_start(&b2);
    reg(&c, "ratings", "v1", 9081);
    assert_int_equal(bg_join(&b2), 200);
    long long v2 = b2.doc_version;
    assert_true(v2 > v1);

    /* Refused: not sent again, NACK with the reason. */
    assert_int_equal(poll_snapshot(&c, id, v1, "&nack=0&reason=cluster%20x%3A%20bad", 200, &v),
                     304);
    char reason[128];
    assert_string_equal(state_of(&c, id, reason), "NACK");
    assert_string_equal(reason, "cluster x: bad");
    char nack[64];
    snprintf(nack, sizeof(nack), "&nack=%lld&reason=bad", v2);
    assert_int_equal(poll_snapshot(&c, id, v1, nack, 200, &v), 304);
    assert_int_equal(wt_control_metric(c.port, "weft_control_push_nacks_total"), 2);

    /* A resource applied through /v1/apply is a change: a newer version reaches the proxy. */
    bg_poll_t b3 = {.c = &c, .id = id, .version = v1, .extra = nack, .wait_ms = 20000};
    bg_start(&b3);
    reg(&c, "details", "v1", 9082);
    const char *apply =
        "{\"items\":[{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"DestinationRule\","
        "\"metadata\":{\"name\":\"ratings\"},\"spec\":{\"host\":\"ratings\",\"subsets\":[{"
        "\"name\":\"v1\",\"labels\":{\"version\":\"v1\"}}]}}]}";
    assert_int_equal(req(c.port, "POST", "/v1/apply", c.admin, apply, NULL), 200);
    assert_int_equal(bg_join(&b3), 200);
    long long v3 = b3.doc_version;
    assert_true(v3 > v2);
    /* The registration and the apply may have made two versions: take what is newer. */
    for (int i = 0; i < 5 && poll_snapshot(&c, id, v3, NULL, 300, &v) == 200; i++) {
        assert_true(v > v3);
        v3 = v;
    }
    assert_int_equal(poll_snapshot(&c, id, v3, NULL, 100, &v), 304);
    assert_string_equal(state_of(&c, id, reason), "SYNCED");
    assert_string_equal(reason, "");

    assert_int_equal(wt_control_metric(c.port, "weft_control_config_version"), (double)v3);
    assert_true(wt_control_metric(c.port, "weft_control_pushes_total") >= 3);
    assert_true(wt_control_metric(c.port, "weft_control_config_builds_total") >= 4);
    assert_int_equal(wt_control_metric(c.port, "weft_control_proxies{state=\"synced\"}"), 1);
    assert_int_equal(wt_control_metric(c.port, "weft_control_proxies_connected"), 0);
    assert_true(wt_control_metric(c.port, "weft_control_push_convergence_seconds_count") >= 1);

    /* A held poll does not stop the server from stopping; after a restart the version is still
     * above every version handed out before. */
    bg_poll_t b4 = {.c = &c, .id = id, .version = v3, .wait_ms = 20000};
    bg_start(&b4);
    assert_int_equal(wt_control_stop(&c), 0);
    bg_join(&b4);
    assert_int_equal(wt_control_start(&c, LEASE_LONG), 0);
    e = status_entry(&c, id, &cur);
    json_decref(e);
    assert_true(cur > v3);
    assert_int_equal(poll_snapshot(&c, id, v3, NULL, 5000, &v), 200);
    assert_int_equal(v, cur);
    assert_int_equal(wt_control_stop(&c), 0);
    wt_control_free(&c);
}

/* A lease that runs out is a change: a new version, and the proxy is NOT_REGISTERED. */
static void test_lease_expiry(void **state)
{
    (void)state;
    wt_control_t c;
    assert_int_equal(wt_control_new(&c, "cppush", (const char *const[]){"--lease-ttl", "1s", NULL}),
                     0);
    long long v = 0, cur = 0;
    reg(&c, "ratings", "v1", 9080);
    assert_int_equal(poll_snapshot(&c, "ratings-v1.default", 0, NULL, 5000, &v), 200);
    char state_now[32] = "";
    for (int i = 0; i < 500; i++) {
        json_t *e = status_entry(&c, "ratings-v1.default", &cur);
        assert_non_null(e);
        snprintf(state_now, sizeof(state_now), "%s",
                 json_string_value(json_object_get(e, "state")));
        json_decref(e);
        if (strcmp(state_now, "NOT_REGISTERED") == 0) {
            break;
        }
        usleep(10 * 1000);
    }
    assert_string_equal(state_now, "NOT_REGISTERED");
    assert_true(cur > v);
    assert_true(wt_control_metric(c.port, "weft_control_leases_expired_total") >= 1);
    assert_int_equal(wt_control_stop(&c), 0);
    wt_control_free(&c);
}

#define NPOLLS 100

/* A hundred polls held at once, for workloads not registered yet; their registrations
 * (coalesced into few versions) answer every one of them with its own document. */
static void test_many_held_polls(void **state)
{
    (void)state;
    wt_control_t c;
    assert_int_equal(wt_control_new(&c, "cppush", LEASE_LONG), 0);
    int fds[NPOLLS];
    char id[64], path[256];
    for (int i = 0; i < NPOLLS; i++) {
        fds[i] = connect_to(c.port);
        snprintf(path, sizeof(path), "/v1/snapshot?proxy=svc%d-v1.default&version=0&wait_ms=30000",
                 i);
        char auth[256];
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", c.boot);
        assert_int_equal(wt_http_send(fds[i], c.port, "GET", path, auth, NULL, 0), 0);
    }
    for (int i = 0;
         i < 2000 && wt_control_metric(c.port, "weft_control_proxies_connected") < NPOLLS; i++) {
        usleep(5000);
    }
    assert_int_equal(wt_control_metric(c.port, "weft_control_proxies_connected"), NPOLLS);
    double builds = wt_control_metric(c.port, "weft_control_config_builds_total");
    for (int i = 0; i < NPOLLS; i++) {
        char svc[32];
        snprintf(svc, sizeof(svc), "svc%d", i);
        reg(&c, svc, "v1", 10000 + i);
    }
    for (int i = 0; i < NPOLLS; i++) {
        char *body = NULL;
        assert_int_equal(wt_http_read(fds[i], &body), 200);
        json_t *o = parse(body);
        assert_true(json_integer_value(json_object_get(o, "version")) > 0);
        json_t *px = json_object_get(o, "proxy");
        snprintf(id, sizeof(id), "svc%d-v1.default", i);
        if (px != NULL && json_object_get(px, "id") != NULL) {
            assert_string_equal(json_string_value(json_object_get(px, "id")), id);
        }
        json_decref(o);
    }
    /* Debounced: far fewer versions than registrations. */
    double built = wt_control_metric(c.port, "weft_control_config_builds_total") - builds;
    assert_true(built >= 1 && built < NPOLLS / 4);
    assert_int_equal(wt_control_metric(c.port, "weft_control_proxies{state=\"stale\"}"), NPOLLS);
    assert_int_equal(wt_control_stop(&c), 0);
    wt_control_free(&c);
}

/* An upstream that answers every request with its name, on a given address and port (two of
 * them share a port on 127.0.0.1 and 127.0.0.2, as two pods share a service port). */
typedef struct {
    const char *name;
    int fd;
    atomic_bool stop;
    pthread_t t;
} named_t;

static void *named_run(void *arg)
{
    named_t *n = arg;
    while (!atomic_load(&n->stop)) {
        struct pollfd p = {.fd = n->fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0) {
            continue;
        }
        int fd = accept(n->fd, NULL, NULL);
        if (fd < 0) {
            continue;
        }
        rd_t r;
        rd_init(&r, fd);
        char *head = rd_until(&r, "\r\n\r\n");
        if (head != NULL) {
            char msg[256];
            int l =
                snprintf(msg, sizeof(msg),
                         "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                         strlen(n->name), n->name);
            send_all(fd, msg, (size_t)l);
        }
        wf_free(head);
        rd_free(&r);
        close(fd);
    }
    return NULL;
}

static void named_start(named_t *n, const char *name, const char *addr, int port)
{
    n->name = name;
    atomic_store(&n->stop, false);
    n->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(n->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    assert_int_equal(inet_pton(AF_INET, addr, &a.sin_addr), 1);
    assert_int_equal(bind(n->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(n->fd, 64), 0);
    assert_int_equal(pthread_create(&n->t, NULL, named_run, n), 0);
}

static void named_stop(named_t *n)
{
    atomic_store(&n->stop, true);
    pthread_join(n->t, NULL);
    close(n->fd);
}

static void apply_reviews_vs(wt_control_t *c, const char *subset)
{
    char body[1024];
    snprintf(body, sizeof(body),
             "{\"items\":[{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":"
             "\"VirtualService\",\"metadata\":{\"name\":\"reviews\"},\"spec\":{\"hosts\":["
             "\"reviews\"],\"http\":[{\"route\":[{\"destination\":{\"host\":\"reviews\","
             "\"subset\":\"%s\"}}]}]}}]}",
             subset);
    assert_int_equal(req(c->port, "POST", "/v1/apply", c->admin, body, NULL), 200);
}

/* Which upstream a request for reviews through the proxy's outbound listener reaches. */
static void reviews_via(const proxy_t *p, int port, char *out, size_t cap)
{
    char raw[256];
    snprintf(raw, sizeof(raw), "GET /who HTTP/1.1\r\nHost: reviews:%d\r\nConnection: close\r\n\r\n",
             port);
    resp_t rs;
    out[0] = '\0';
    if (request(p->outbound, raw, NULL, 0, &rs) == 200) {
        snprintf(out, cap, "%.*s", (int)rs.body.len, (const char *)rs.body.data);
    }
    resp_free(&rs);
}

/* Until requests reach the upstream named want (at most ~10 s); true when they do. */
static bool routes_to(const proxy_t *p, int port, const char *want)
{
    char got[64] = "";
    for (int i = 0; i < 1000; i++) {
        reviews_via(p, port, got, sizeof(got));
        if (strcmp(got, want) == 0) {
            return true;
        }
        usleep(10 * 1000);
    }
    fprintf(stderr, "requests for reviews reach \"%s\", not \"%s\"\n", got, want);
    return false;
}

/* A real proxy gets its compiled snapshot from `weft control` (it turns ready), routes per the
 * applied VirtualService, and follows the next one; proxy-status shows it SYNCED. */
/* A snapshot poll that does not wait, with Accept-Encoding ae (NULL: none): the status; the
 * answer's head in *head and its body, inflated when it came gzip-encoded, in *doc (wf_free
 * both; *doc NULL when not 200). */
static int poll_encoded(wt_control_t *c, const char *id, const char *ae, char **head, json_t **doc)
{
    int fd = connect_to(c->port);
    char rq[1024];
    int n = snprintf(rq, sizeof(rq),
                     "GET /v1/snapshot?proxy=%s&version=0&wait_ms=0 HTTP/1.1\r\n"
                     "Host: 127.0.0.1\r\nConnection: close\r\n"
                     "Authorization: Bearer %s\r\n%s%s%s\r\n",
                     id, c->boot, ae != NULL ? "Accept-Encoding: " : "", ae != NULL ? ae : "",
                     ae != NULL ? "\r\n" : "");
    assert_true(n > 0 && n < (int)sizeof(rq));
    assert_int_equal(write(fd, rq, (size_t)n), n);
    wf_buf_t in = WF_BUF_INIT;
    ssize_t r;
    do {
        r = read(fd, wf_buf_reserve(&in, 65536), 65536);
        in.len += r > 0 ? (size_t)r : 0;
    } while (r > 0);
    close(fd);
    const char *text = wf_buf_cstr(&in);
    const char *sep = strstr(text, "\r\n\r\n");
    assert_non_null(sep);
    *head = wf_strndup(text, (size_t)(sep - text));
    int status = -1;
    assert_int_equal(sscanf(text, "HTTP/1.%*d %d", &status), 1);
    const unsigned char *body = (const unsigned char *)sep + 4;
    size_t blen = in.len - (size_t)(body - in.data);
    *doc = NULL;
    if (status == 200) {
        wf_buf_t plain = WF_BUF_INIT;
        if (strcasestr(*head, "\r\nContent-Encoding: gzip") != NULL) {
            z_stream z;
            memset(&z, 0, sizeof(z));
            assert_int_equal(inflateInit2(&z, 16 + MAX_WBITS), Z_OK);
            z.next_in = (Bytef *)(uintptr_t)body;
            z.avail_in = (uInt)blen;
            int zr;
            do {
                z.next_out = wf_buf_reserve(&plain, 65536);
                z.avail_out = 65536;
                zr = inflate(&z, Z_NO_FLUSH);
                plain.len += 65536 - z.avail_out;
            } while (zr == Z_OK);
            assert_int_equal(zr, Z_STREAM_END);
            assert_int_equal(z.avail_in, 0);
            inflateEnd(&z);
        } else {
            wf_buf_append(&plain, body, blen);
        }
        *doc = json_loadb((const char *)plain.data, plain.len, 0, NULL);
        assert_non_null(*doc);
        wf_buf_free(&plain);
    }
    wf_buf_free(&in);
    return status;
}

/* /v1/snapshot is gzip-encoded when the poll's Accept-Encoding lists gzip (q > 0), plain
 * otherwise; both say Vary: Accept-Encoding, and both carry the same document. */
static void test_gzip(void **state)
{
    (void)state;
    wt_control_t c;
    assert_int_equal(wt_control_new(&c, "cppush", LEASE_LONG), 0);
    const char *id = "reviews-v1.default";
    reg(&c, "reviews", "v1", 9080);
    long long cur = 0, v = 0;
    /* Held until the (debounced) version that has the workload. */
    assert_int_equal(poll_snapshot(&c, id, 0, NULL, 20000, &v), 200);
    static const struct {
        const char *ae;
        bool gzip;
    } cases[] = {
        {"gzip", true},
        {"deflate, gzip;q=0.5", true},
        {"GZIP", true},
        {"x-gzip", true},
        {NULL, false},
        {"gzip;q=0", false},
        {"gzip; q=0.000", false},
        {"br, deflate", false},
        {"gzipx", false},
    };
    json_t *plain = NULL;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *head = NULL;
        json_t *doc = NULL;
        assert_int_equal(poll_encoded(&c, id, cases[i].ae, &head, &doc), 200);
        bool gz = strcasestr(head, "\r\nContent-Encoding: gzip") != NULL;
        if (gz != cases[i].gzip) {
            fail_msg("Accept-Encoding %s: answered %s", cases[i].ae ? cases[i].ae : "(none)", head);
        }
        assert_non_null(strcasestr(head, "\r\nVary: Accept-Encoding"));
        json_decref(status_entry(&c, id, &cur));
        assert_int_equal(cur, v);
        assert_int_equal(json_integer_value(json_object_get(doc, "version")), cur);
        assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "proxy"), "id")),
                            id);
        if (plain == NULL) {
            plain = json_incref(doc);
        } else {
            assert_true(json_equal(plain, doc));
        }
        json_decref(doc);
        wf_free(head);
    }
    json_decref(plain);
    assert_int_equal(wt_control_stop(&c), 0);
    wt_control_free(&c);
}

static void test_real_proxy(void **state)
{
    (void)state;
    wt_control_t c;
    assert_int_equal(wt_control_new(&c, "cppush", LEASE_LONG), 0);
    int port = wt_free_port();
    named_t v1, v2;
    named_start(&v1, "reviews-v1", "127.0.0.1", port);
    named_start(&v2, "reviews-v2", "127.0.0.2", port);
    reg_at(&c, "reviews", "v1", "127.0.0.1", port);
    reg_at(&c, "reviews", "v2", "127.0.0.2", port);
    const char *dr =
        "{\"items\":[{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"DestinationRule\","
        "\"metadata\":{\"name\":\"reviews\"},\"spec\":{\"host\":\"reviews\",\"subsets\":["
        "{\"name\":\"v1\",\"labels\":{\"version\":\"v1\"}},"
        "{\"name\":\"v2\",\"labels\":{\"version\":\"v2\"}}]}}]}";
    assert_int_equal(req(c.port, "POST", "/v1/apply", c.admin, dr, NULL), 200);
    apply_reviews_vs(&c, "v2");

    char url[64], token[700];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", c.port);
    snprintf(token, sizeof(token), "%s/bootstrap-token", c.data);
    const char *extra[] = {"--control", url,         "--bootstrap-token-file",
                           token,       "--service", "productpage",
                           "--version", "v1",        NULL};
    proxy_t p;
    proxy_start_with(&p, wt_free_port(), NULL, "1", extra);
    int ready = 0;
    for (int i = 0; i < 1000 && ready != 200; i++) {
        ready = wt_http(p.admin, "GET", "/ready", NULL, 0, NULL);
        if (ready != 200) {
            usleep(10 * 1000);
        }
    }
    assert_int_equal(ready, 200);
    assert_true(routes_to(&p, port, "reviews-v2"));

    apply_reviews_vs(&c, "v1");
    assert_true(routes_to(&p, port, "reviews-v1"));
    /* It acknowledged the version it runs. */
    long long cur = 0;
    bool synced = false;
    for (int i = 0; i < 500 && !synced; i++) {
        json_t *e = status_entry(&c, "productpage-v1.default", &cur);
        synced = e != NULL &&
                 strcmp(json_string_value(json_object_get(e, "state")), "SYNCED") == 0 &&
                 json_integer_value(json_object_get(e, "version")) == cur;
        json_decref(e);
        if (!synced) {
            usleep(10 * 1000);
        }
    }
    assert_true(synced);
    assert_int_equal(stat_value(p.admin, "weft_proxy_config_version"), (double)cur);

    proxy_stop(&p);
    named_stop(&v1);
    named_stop(&v2);
    assert_int_equal(wt_control_stop(&c), 0);
    wt_control_free(&c);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_push_flow),
        cmocka_unit_test(test_many_held_polls),
        cmocka_unit_test(test_lease_expiry),
        cmocka_unit_test(test_gzip),
        cmocka_unit_test(test_real_proxy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
