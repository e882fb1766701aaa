/*
 * test_proxy_matches.c - Istio's HTTP route matching through a real `weft proxy`, with the
 * hand-written tests/proxy/snapshots/routing-features.json (one route per matching feature)
 * whose clusters are pointed at local test servers named after their subsets: header exact
 * match, uri prefix with without_headers and a prefix rewrite, uri exact with ignore_uri_case,
 * uri regex, query parameter, method plus listener port (with request and response header
 * operations), source labels (a second proxy whose identity is productpage v2), redirect,
 * a fault without a percentage (never applies), an 80/20 weighted split, and Istio's domains
 * for a short name, the FQDN and an unknown host. Each request checks which server answered
 * (its X-Upstream) or the proxy's own answer.
 */
#include "test_proxy_common.h"

#include <jansson.h>

typedef struct {
    upstream_t v1, v2, v3, other;
    proxy_t px, px_v2;
    char *dir;
} mfx_t;

/* routing-features.json with every cluster's endpoints replaced by the server of its subset
 * (the others: `other`), and proxy.version set to version. */
static char *snapshot_text(mfx_t *f, const char *version)
{
    char *text0 = example_text("routing-features.json");
    json_error_t jerr;
    json_t *root = json_loads(text0, 0, &jerr);
    wf_free(text0);
    assert_non_null(root);
    json_object_set_new(json_object_get(root, "proxy"), "version", json_string(version));
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(root, "clusters"), i, c)
    {
        const char *subset = json_string_value(json_object_get(c, "subset"));
        const char *host = json_string_value(json_object_get(c, "host"));
        int port = (int)json_integer_value(json_object_get(c, "port"));
        upstream_t *u = &f->other;
        if (strcmp(host, "reviews") == 0 && port == 9080 && subset != NULL) {
            u = strcmp(subset, "v1") == 0   ? &f->v1
                : strcmp(subset, "v2") == 0 ? &f->v2
                : strcmp(subset, "v3") == 0 ? &f->v3
                                            : &f->other;
        }
        json_t *eps = json_array();
        json_array_append_new(eps,
                              json_pack("{s:s, s:i}", "address", "127.0.0.1", "port", u->port));
        json_object_set_new(c, "endpoints", eps);
    }
    char *text = json_dumps(root, JSON_INDENT(1));
    json_decref(root);
    return text;
}

static void start_with(mfx_t *f, proxy_t *p, const char *version)
{
    char *text = snapshot_text(f, version);
    char path[4200];
    snprintf(path, sizeof(path), "%s/snapshot-%s.json", f->dir, version);
    wt_write_file(path, text);
    free(text);
    proxy_start_with(p, wt_free_port(), path, "1", NULL);
    assert_true(wt_wait_port(p->outbound, 10000));
}

static int setup(void **state)
{
    mfx_t *f = wf_calloc(1, sizeof(*f));
    upstream_start(&f->v1, "v1");
    upstream_start(&f->v2, "v2");
    upstream_start(&f->v3, "v3");
    upstream_start(&f->other, "other");
    f->dir = wt_tmpdir("pxmatch");
    start_with(f, &f->px, "v1");
    start_with(f, &f->px_v2, "v2");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    mfx_t *f = *state;
    proxy_stop(&f->px);
    proxy_stop(&f->px_v2);
    upstream_stop(&f->v1);
    upstream_stop(&f->v2);
    upstream_stop(&f->v3);
    upstream_stop(&f->other);
    wt_rm_rf(f->dir);
    wf_free(f->dir);
    wf_free(f);
    return 0;
}

typedef struct {
    const char *name;
    const char *raw;      /* the request head */
    const char *body;     /* NULL = none */
    int status;           /* expected */
    const char *upstream; /* expected X-Upstream; "" = answered by the proxy; "*" = any */
} mcase_t;

static void run_case(int port, const mcase_t *mc, resp_t *rs)
{
    int st = request(port, mc->raw, mc->body, mc->body != NULL ? strlen(mc->body) : 0, rs);
    if (st != mc->status) {
        fail_msg("%s: status %d, want %d", mc->name, st, mc->status);
    }
    char v[64];
    const char *up = find_hdr(rs->head, "x-upstream", v, sizeof(v));
    if (mc->upstream[0] == '\0' && up != NULL) {
        fail_msg("%s: answered by %s, want the proxy", mc->name, v);
    }
    if (mc->upstream[0] != '\0' && strcmp(mc->upstream, "*") != 0 &&
        (up == NULL || strcmp(v, mc->upstream) != 0)) {
        fail_msg("%s: answered by %s, want %s", mc->name, up != NULL ? v : "the proxy",
                 mc->upstream);
    }
}

#define H "Host: reviews:9080\r\n"

static void test_matches(void **state)
{
    mfx_t *f = *state;
    static const mcase_t cases[] = {
        {"header exact", "GET /who HTTP/1.1\r\n" H "End-User: jason\r\n\r\n", NULL, 200, "v2"},
        {"uri prefix + rewrite", "GET /v3/who HTTP/1.1\r\n" H "\r\n", NULL, 200, "v3"},
        {"ignore_uri_case", "GET /ADMIN HTTP/1.1\r\n" H "\r\n", NULL, 403, ""},
        {"uri regex", "GET /api/v2/reviews/12 HTTP/1.1\r\n" H "\r\n", NULL, 404, "v1"},
        {"query param", "GET /who?x=1&debug=1 HTTP/1.1\r\n" H "\r\n", NULL, 200, "v3"},
        {"fault without percentage", "GET /who HTTP/1.1\r\n" H "x-fault: never\r\n\r\n", NULL, 200,
         "v1"},
        {"method + port", "POST /echo HTTP/1.1\r\n" H "Content-Length: 2\r\n\r\n", "hi", 200, "v2"},
        {"redirect", "GET /legacy/page HTTP/1.1\r\n" H "\r\n", NULL, 302, ""},
        {"FQDN domain",
         "GET /who HTTP/1.1\r\nHost: reviews.default.svc.cluster.local:9080\r\n"
         "End-User: jason\r\n\r\n",
         NULL, 200, "v2"},
        {"other port's virtual host", "GET /who HTTP/1.1\r\nHost: reviews:9091\r\n\r\n", NULL, 200,
         "other"},
        {"unknown host", "GET /who HTTP/1.1\r\nHost: nowhere:9080\r\n\r\n", NULL, 404, ""},
    };
    resp_t rs;
    char v[256];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        run_case(f->px.outbound, &cases[i], &rs);
        if (strcmp(cases[i].name, "uri prefix + rewrite") == 0) {
            assert_true(body_is(&rs, "v3", 2)); /* the upstream was asked for /who */
        }
        if (strcmp(cases[i].name, "ignore_uri_case") == 0) {
            assert_true(body_is(&rs, "forbidden", 9));
        }
        if (strcmp(cases[i].name, "method + port") == 0) {
            assert_string_equal(find_hdr(rs.head, "x-served-by", v, sizeof(v)), "weft");
        }
        if (strcmp(cases[i].name, "redirect") == 0) {
            assert_string_equal(find_hdr(rs.head, "location", v, sizeof(v)),
                                "http://reviews.example.com/new");
        }
        resp_free(&rs);
    }
    /* Near misses fall through to the split (v1 or v2), never to the route they missed. */
    static const mcase_t misses[] = {
        {"header value differs", "GET /who HTTP/1.1\r\n" H "End-User: jason2\r\n\r\n", NULL, 200,
         "*"},
        {"without_headers present", "GET /v3/who HTTP/1.1\r\n" H "x-canary: 1\r\n\r\n", NULL, 404,
         "*"},
        {"regex does not match", "GET /api/v2/reviews/abc HTTP/1.1\r\n" H "\r\n", NULL, 404, "*"},
        {"query value differs", "GET /who?debug=2 HTTP/1.1\r\n" H "\r\n", NULL, 200, "*"},
        {"other method", "PUT /who HTTP/1.1\r\n" H "Content-Length: 0\r\n\r\n", NULL, 200, "*"},
    };
    for (size_t i = 0; i < sizeof(misses) / sizeof(misses[0]); i++) {
        run_case(f->px.outbound, &misses[i], &rs);
        const char *up = find_hdr(rs.head, "x-upstream", v, sizeof(v));
        if (up == NULL || (strcmp(v, "v1") != 0 && strcmp(v, "v2") != 0)) {
            fail_msg("%s: answered by %s, want the split (v1 or v2)", misses[i].name,
                     up != NULL ? v : "the proxy");
        }
        resp_free(&rs);
    }
    /* The POST route's request header operations reached the upstream. */
    assert_int_equal(request(f->px.outbound,
                             "POST /headers HTTP/1.1\r\n" H
                             "X-Debug: 1\r\nContent-Length: 0\r\n\r\n",
                             NULL, 0, &rs),
                     200);
    const char *head = wf_buf_cstr(&rs.body);
    assert_string_equal(find_hdr(head, "x-route", v, sizeof(v)), "post");
    assert_null(find_hdr(head, "x-debug", v, sizeof(v)));
    resp_free(&rs);
}

/* sourceLabels: the same snapshot in a proxy whose workload is productpage v2. */
static void test_source_labels(void **state)
{
    mfx_t *f = *state;
    resp_t rs;
    mcase_t mc = {"source labels", "GET /who HTTP/1.1\r\n" H "\r\n", NULL, 200, "v3"};
    run_case(f->px_v2.outbound, &mc, &rs);
    resp_free(&rs);
}

/* 80/20 by weight over 400 requests: v1 within 5.5 standard deviations of 320. */
static void test_weighted_split(void **state)
{
    mfx_t *f = *state;
    int n1 = 0, n2 = 0;
    resp_t rs;
    char v[64];
    for (int i = 0; i < 400; i++) {
        assert_int_equal(request(f->px.outbound, "GET /who HTTP/1.1\r\n" H "\r\n", NULL, 0, &rs),
                         200);
        assert_non_null(find_hdr(rs.head, "x-upstream", v, sizeof(v)));
        if (strcmp(v, "v1") == 0) {
            n1++;
            assert_null(find_hdr(rs.head, "x-version", v, sizeof(v)));
        } else {
            assert_string_equal(v, "v2");
            n2++;
            /* The v2 destination's response header operation. */
            assert_string_equal(find_hdr(rs.head, "x-version", v, sizeof(v)), "v2");
        }
        resp_free(&rs);
    }
    printf("split: v1 %d, v2 %d of 400\n", n1, n2);
    assert_int_equal(n1 + n2, 400);
    assert_true(n1 >= 276 && n1 <= 364);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches),
        cmocka_unit_test(test_source_labels),
        cmocka_unit_test(test_weighted_split),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
