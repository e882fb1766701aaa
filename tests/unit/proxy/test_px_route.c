/*
 * test_px_route.c - the router (px_route.h) over the example snapshots of
 * tests/proxy/snapshots/: a table of requests with the virtual host, route and destination
 * (or redirect / direct response) Istio would pick; the 80/20 split over deterministic draws;
 * fault and mirror percentages; rewrite, redirect and retry helpers; the regex match limit.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "px_route.h"
#include "px_snapshot.h"
#include "wf_alloc.h"
#include "wf_err.h"
#include "wt_util.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

static char *example_path(const char *name)
{
    char *src = wf_strdup(__FILE__);
    char *cut = strstr(src, "/unit/proxy/");
    assert_non_null(cut);
    *cut = '\0';
    size_t n = strlen(src) + strlen(name) + 32;
    char *p = wf_malloc(n);
    snprintf(p, n, "%s/proxy/snapshots/%s", src, name);
    wf_free(src);
    return p;
}

static px_snapshot_t *load_example(const char *name)
{
    char *path = example_path(name);
    char err[512];
    px_snapshot_t *s = NULL;
    if (px_snapshot_load(path, NULL, &s, NULL, err, sizeof(err)) != 0) {
        fail_msg("%s: %s", name, err);
    }
    wf_free(path);
    return s;
}

#define P "productpage-reviews-80-20.json"
#define R "reviews-v2-ratings-delay.json"
#define G "gateway-bookinfo.json"
#define F "routing-features.json"

#define REVIEWS "reviews.default.svc.cluster.local"
#define C_REV(sub) "cluster:outbound|9080|" sub "|" REVIEWS

typedef struct {
    const char *file;
    uint32_t port;
    const char *authority;
    const char *method;
    const char *target;  /* path?query */
    const char *headers; /* "name: value\n..." */
    const char *source;  /* "k=v,k=v" */
    const char *vhost;   /* expected virtual host name; NULL = none (404 NR) */
    int route;           /* expected route index; -1 = none */
    /* "cluster:NAME" (destination for draw 0), "direct:STATUS BODY", "redirect:LOCATION" */
    const char *want;
    const char *upstream_path; /* after rewrite; NULL = not checked */
} row_t;

static const row_t rows[] = {
    /* productpage sidecar, reviews 80/20 (draw 0 lands in v1) and details' default route. */
    {P, 9080, "reviews:9080", "GET", "/reviews/1", "", "", REVIEWS ":9080", 0, C_REV("v1"), NULL},
    {P, 9080, "reviews", "GET", "/reviews/1", "", "", REVIEWS ":9080", 0, C_REV("v1"), NULL},
    {P, 9080, REVIEWS ":9080", "GET", "/", "", "", REVIEWS ":9080", 0, C_REV("v1"), NULL},
    {P, 9080, "REVIEWS.Default", "GET", "/", "", "", REVIEWS ":9080", 0, C_REV("v1"), NULL},
    {P, 9080, "reviews.default.svc:9080", "PUT", "/", "", "", REVIEWS ":9080", 0, C_REV("v1"),
     NULL},
    {P, 9080, "details:9080", "GET", "/details/0", "", "", "details.default.svc.cluster.local:9080",
     0, "cluster:outbound|9080||details.default.svc.cluster.local", NULL},
    {P, 9080, "details.default.svc", "GET", "/", "", "", "details.default.svc.cluster.local:9080",
     0, "cluster:outbound|9080||details.default.svc.cluster.local", NULL},
    {P, 9080, "ratings:9080", "GET", "/", "", "", NULL, -1, NULL, NULL},
    {P, 9080, "reviews:9081", "GET", "/", "", "", NULL, -1, NULL, NULL},
    {P, 9090, "reviews", "GET", "/", "", "", NULL, -1, NULL, NULL},
    {P, 9080, "reviews.default.svc.cluster", "GET", "/", "", "", NULL, -1, NULL, NULL},
    {P, 9080, "", "GET", "/", "", "", NULL, -1, NULL, NULL},

    /* reviews-v2 sidecar, ratings test-delay: only jason (exact, value case-sensitive). */
    {R, 9080, "ratings", "GET", "/ratings/0", "end-user: jason\n", "",
     "ratings.default.svc.cluster.local:9080", 0,
     "cluster:outbound|9080|v1|ratings.default.svc.cluster.local", NULL},
    {R, 9080, "ratings", "GET", "/ratings/0", "END-USER: jason\n", "",
     "ratings.default.svc.cluster.local:9080", 0,
     "cluster:outbound|9080|v1|ratings.default.svc.cluster.local", NULL},
    {R, 9080, "ratings", "GET", "/ratings/0", "end-user: Jason\n", "",
     "ratings.default.svc.cluster.local:9080", 1,
     "cluster:outbound|9080|v1|ratings.default.svc.cluster.local", NULL},
    {R, 9080, "ratings", "GET", "/ratings/0", "end-user: jason2\n", "",
     "ratings.default.svc.cluster.local:9080", 1,
     "cluster:outbound|9080|v1|ratings.default.svc.cluster.local", NULL},
    {R, 9080, "ratings", "GET", "/ratings/0", "", "", "ratings.default.svc.cluster.local:9080", 1,
     "cluster:outbound|9080|v1|ratings.default.svc.cluster.local", NULL},

    /* Ingress gateway: bookinfo's uri matches, exact vs prefix, any host on port 8080. */
    {G, 8080, "bookinfo.example.com", "GET", "/productpage", "", "", "*:8080", 0,
     "cluster:outbound|9080||productpage.default.svc.cluster.local", NULL},
    {G, 8080, "bookinfo.example.com", "GET", "/productpage?u=normal", "", "", "*:8080", 0,
     "cluster:outbound|9080||productpage.default.svc.cluster.local", NULL},
    {G, 8080, "bookinfo.example.com", "GET", "/productpage/extra", "", "", "*:8080", -1, NULL,
     NULL},
    {G, 8080, "1.2.3.4:8080", "GET", "/static/css/site.css", "", "", "*:8080", 0,
     "cluster:outbound|9080||productpage.default.svc.cluster.local", NULL},
    {G, 8080, "x", "GET", "/staticfoo", "", "", "*:8080", 0,
     "cluster:outbound|9080||productpage.default.svc.cluster.local", NULL},
    {G, 8080, "x", "POST", "/login", "", "", "*:8080", 0,
     "cluster:outbound|9080||productpage.default.svc.cluster.local", NULL},
    {G, 8080, "x", "POST", "/LOGIN", "", "", "*:8080", -1, NULL, NULL},
    {G, 8080, "x", "GET", "/logout", "", "", "*:8080", 0,
     "cluster:outbound|9080||productpage.default.svc.cluster.local", NULL},
    {G, 8080, "x", "GET", "/api/v1/products/1/reviews", "", "", "*:8080", 0,
     "cluster:outbound|9080||productpage.default.svc.cluster.local", NULL},
    {G, 8080, "x", "GET", "/api/v1", "", "", "*:8080", -1, NULL, NULL},
    {G, 9999, "x", "GET", "/productpage", "", "", NULL, -1, NULL, NULL},

    /* Hand-written features file, reviews on 9080: first match wins, in order. */
    {F, 9080, "reviews", "GET", "/x", "end-user: jason\n", "", REVIEWS ":9080", 0, C_REV("v2"),
     "/x"},
    {F, 9080, "reviews", "GET", "/v3/x", "", "", REVIEWS ":9080", 1, C_REV("v3"), "/x"},
    {F, 9080, "reviews", "GET", "/v3/a/b?c=d", "", "", REVIEWS ":9080", 1, C_REV("v3"), "/a/b"},
    {F, 9080, "reviews", "GET", "/v3/x", "x-canary: 1\n", "", REVIEWS ":9080", 10, C_REV("v1"),
     "/v3/x"},
    {F, 9080, "reviews", "GET", "/v3", "", "", REVIEWS ":9080", 10, C_REV("v1"), NULL},
    {F, 9080, "reviews", "GET", "/ADMIN", "", "", REVIEWS ":9080", 2, "direct:403 forbidden", NULL},
    {F, 9080, "reviews", "GET", "/admin", "", "", REVIEWS ":9080", 2, "direct:403 forbidden", NULL},
    {F, 9080, "reviews", "GET", "/Admin/x", "", "", REVIEWS ":9080", 10, C_REV("v1"), NULL},
    {F, 9080, "reviews", "GET", "/api/v2/reviews/42", "", "", REVIEWS ":9080", 3, C_REV("v1"),
     NULL},
    {F, 9080, "reviews", "GET", "/api/v10/reviews/7?x=1", "", "", REVIEWS ":9080", 3, C_REV("v1"),
     NULL},
    {F, 9080, "reviews", "GET", "/api/v2/reviews/42/x", "", "", REVIEWS ":9080", 10, C_REV("v1"),
     NULL},
    {F, 9080, "reviews", "GET", "/api/vX/reviews/1", "", "", REVIEWS ":9080", 10, C_REV("v1"),
     NULL},
    {F, 9080, "reviews", "GET", "/x?debug=1", "", "", REVIEWS ":9080", 4, C_REV("v3"), NULL},
    {F, 9080, "reviews", "GET", "/x?a=b&debug=1", "", "", REVIEWS ":9080", 4, C_REV("v3"), NULL},
    {F, 9080, "reviews", "GET", "/x?debug=10", "", "", REVIEWS ":9080", 10, C_REV("v1"), NULL},
    {F, 9080, "reviews", "GET", "/x?debugx=1", "", "", REVIEWS ":9080", 10, C_REV("v1"), NULL},
    {F, 9080, "reviews", "GET", "/x?debug", "", "", REVIEWS ":9080", 10, C_REV("v1"), NULL},
    {F, 9080, "reviews", "GET", "/x", "", "app=productpage,version=v2", REVIEWS ":9080", 5,
     C_REV("v3"), NULL},
    {F, 9080, "reviews", "GET", "/x", "", "version=v2,app=productpage,team=a", REVIEWS ":9080", 5,
     C_REV("v3"), NULL},
    {F, 9080, "reviews", "GET", "/x", "", "app=productpage,version=v1", REVIEWS ":9080", 10,
     C_REV("v1"), NULL},
    {F, 9080, "reviews", "GET", "/x", "x-fault: abort\n", "", REVIEWS ":9080", 6, C_REV("v1"),
     NULL},
    {F, 9080, "reviews", "POST", "/x", "", "", REVIEWS ":9080", 8, C_REV("v2"), NULL},
    {F, 9080, "reviews", "post", "/x", "", "", REVIEWS ":9080", 10, C_REV("v1"), NULL},
    {F, 9080, "reviews", "GET", "/old/page?q=1", "", "", REVIEWS ":9080", 9,
     "redirect:http://reviews.example.com/new?q=1", NULL},
    {F, 9080, "reviews:9080", "GET", "/legacy", "", "", REVIEWS ":9080", 9,
     "redirect:http://reviews.example.com/new", NULL},
    {F, 9091, "reviews:9091", "GET", "/x", "", "", REVIEWS ":9091", 0,
     "cluster:outbound|9091||" REVIEWS, NULL},
    {F, 9091, "reviews:9080", "GET", "/x", "", "", NULL, -1, NULL, NULL},
    {F, 9080, "ratings", "GET", "/x", "", "", "ratings.default.svc.cluster.local:9080", 0,
     "cluster:outbound|9080||ratings.default.svc.cluster.local", NULL},

    /* Domains on port 80: exact, longest suffix, prefix, catch-all. */
    {F, 80, "www.example.com", "GET", "/", "", "", "exact", 0, "direct:200 exact", NULL},
    {F, 80, "WWW.Example.COM", "GET", "/", "", "", "exact", 0, "direct:200 exact", NULL},
    {F, 80, "api.example.com", "GET", "/", "", "", "suffix", 0, "direct:200 suffix", NULL},
    {F, 80, "v1.api.example.com", "GET", "/", "", "", "longer-suffix", 0,
     "direct:200 longer-suffix", NULL},
    {F, 80, ".api.example.com", "GET", "/", "", "", "suffix", 0, "direct:200 suffix", NULL},
    {F, 80, "example.com", "GET", "/", "", "", "catch-all", 0, "direct:404 catch-all", NULL},
    {F, 80, "foo.bar", "GET", "/", "", "", "prefix", 0, "direct:200 prefix", NULL},
    {F, 80, "foo.", "GET", "/", "", "", "catch-all", 0, "direct:404 catch-all", NULL},
    {F, 80, "www.example.com:80", "GET", "/", "", "", "catch-all", 0, "direct:404 catch-all", NULL},
    {F, 8080, "www.example.com", "GET", "/", "", "", NULL, -1, NULL, NULL},
};

typedef struct {
    px_route_hdr_t hdrs[8];
    px_label_t labels[8];
    char buf[1024];
} req_store_t;

static void build_req(const row_t *row, req_store_t *st, px_route_req_t *req)
{
    memset(req, 0, sizeof(*req));
    snprintf(st->buf, sizeof(st->buf), "%s", row->headers);
    size_t nh = 0;
    for (char *line = strtok(st->buf, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        char *colon = strchr(line, ':');
        assert_non_null(colon);
        *colon = '\0';
        st->hdrs[nh].name = wf_str(line);
        st->hdrs[nh].value = wf_str(colon + 2);
        nh++;
    }
    static char lbuf[256];
    snprintf(lbuf, sizeof(lbuf), "%s", row->source);
    size_t nl = 0;
    for (char *kv = strtok(lbuf, ","); kv != NULL; kv = strtok(NULL, ",")) {
        char *eq = strchr(kv, '=');
        *eq = '\0';
        st->labels[nl].key = wf_str(kv);
        st->labels[nl].value = wf_str(eq + 1);
        nl++;
    }
    const char *q = strchr(row->target, '?');
    req->method = wf_str(row->method);
    req->scheme = WF_STR_LIT("http");
    req->authority = wf_str(row->authority);
    req->path = q ? (wf_str_t){row->target, (size_t)(q - row->target)} : wf_str(row->target);
    req->query = q ? wf_str(q + 1) : (wf_str_t){"", 0};
    req->headers = st->hdrs;
    req->n_headers = nh;
    req->source_labels = st->labels;
    req->n_source_labels = nl;
    req->port = row->port;
}

static px_snapshot_t *snap_for(const char *file)
{
    static const char *names[] = {P, R, G, F};
    static px_snapshot_t *snaps[4];
    for (int i = 0; i < 4; i++) {
        if (strcmp(names[i], file) == 0) {
            if (snaps[i] == NULL) {
                snaps[i] = load_example(file);
            }
            return snaps[i];
        }
    }
    fail_msg("unknown file %s", file);
    return NULL;
}

static void check_row(size_t i, const row_t *row, pcre2_match_data *md)
{
    px_snapshot_t *s = snap_for(row->file);
    req_store_t st;
    px_route_req_t req;
    build_req(row, &st, &req);
    req.md = md;
    const px_vhost_t *vh = px_route_select_vhost(s, req.authority, req.port);
    if (row->vhost == NULL) {
        if (vh != NULL) {
            fail_msg("row %zu: got virtual host %s, want none", i, vh->name.p);
        }
        return;
    }
    if (vh == NULL || !wf_str_eq_c(vh->name, row->vhost)) {
        fail_msg("row %zu: got virtual host %s, want %s", i, vh ? vh->name.p : "(none)",
                 row->vhost);
    }
    const px_match_t *matched = NULL;
    const px_route_t *r = px_route_match(vh, &req, &matched);
    int idx = r ? (int)(r - vh->routes) : -1;
    if (idx != row->route) {
        fail_msg("row %zu (%s %s): got route %d, want %d", i, row->method, row->target, idx,
                 row->route);
    }
    if (r == NULL) {
        return;
    }
    char got[512];
    if (r->action == PX_ACTION_ROUTE) {
        const px_route_dest_t *d = px_route_pick_destination(r, 0);
        assert_non_null(d);
        assert_non_null(d->dest.cluster); /* every example destination exists */
        snprintf(got, sizeof(got), "cluster:%s", d->dest.cluster_name.p);
    } else if (r->action == PX_ACTION_DIRECT_RESPONSE) {
        snprintf(got, sizeof(got), "direct:%u %s", r->direct_response.status,
                 r->direct_response.body.p);
    } else {
        char loc[256];
        size_t n;
        assert_int_equal(px_route_redirect_location(r, &req, loc, sizeof(loc), &n), 0);
        assert_int_equal(n, strlen(loc));
        snprintf(got, sizeof(got), "redirect:%s", loc);
    }
    if (strcmp(got, row->want) != 0) {
        fail_msg("row %zu (%s %s): got %s, want %s", i, row->method, row->target, got, row->want);
    }
    if (row->upstream_path != NULL) {
        char path[256];
        size_t n;
        assert_int_equal(px_route_rewrite_path(r, matched, req.path, path, sizeof(path), &n), 0);
        if (strcmp(path, row->upstream_path) != 0) {
            fail_msg("row %zu: upstream path %s, want %s", i, path, row->upstream_path);
        }
    }
}

static void test_route_table(void **state)
{
    (void)state;
    size_t n = sizeof(rows) / sizeof(rows[0]);
    assert_true(n >= 40);
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    for (size_t i = 0; i < n; i++) {
        check_row(i, &rows[i], md);
        /* Without a caller scratch the router allocates its own: same answers. */
        check_row(i, &rows[i], NULL);
    }
    pcre2_match_data_free(md);
}

static const px_route_t *route_of(const char *file, const char *authority, uint32_t port,
                                  const char *path, const char *headers)
{
    px_snapshot_t *s = snap_for(file);
    row_t row = {file, port, authority, "GET", path, headers, "", NULL, 0, NULL, NULL};
    req_store_t st;
    px_route_req_t req;
    build_req(&row, &st, &req);
    const px_route_t *r = px_route_match(px_route_select_vhost(s, req.authority, port), &req, NULL);
    assert_non_null(r);
    return r;
}

/* reviews 80/20: exact proportions over one period of the modulus, and within a binomial
 * tolerance over pseudo-random draws. */
static void test_weighted_split(void **state)
{
    (void)state;
    const px_route_t *r = route_of(P, "reviews", 9080, "/reviews/1", "");
    assert_int_equal(r->total_weight, 100);
    int v1 = 0;
    for (uint64_t x = 0; x < 100; x++) {
        const px_route_dest_t *d = px_route_pick_destination(r, x);
        v1 += d == &r->route[0];
        assert_true(d == &r->route[0] || d == &r->route[1]);
    }
    assert_int_equal(v1, 80);
    /* Deterministic: the same draw picks the same destination. */
    assert_ptr_equal(px_route_pick_destination(r, 79), &r->route[0]);
    assert_ptr_equal(px_route_pick_destination(r, 80), &r->route[1]);
    assert_ptr_equal(px_route_pick_destination(r, 199), &r->route[1]);

    const int n = 10000;
    uint64_t seed = 0x5eed;
    v1 = 0;
    for (int i = 0; i < n; i++) {
        v1 += px_route_pick_destination(r, wt_rand(&seed)) == &r->route[0];
    }
    /* Binomial(n, 0.8): sd = sqrt(n * 0.8 * 0.2) = 40; allow 5 sd. */
    double sd = sqrt(n * 0.8 * 0.2);
    assert_true(fabs(v1 - 0.8 * n) <= 5 * sd);
    /* The split is not a constant: the v2 share is present too. */
    assert_true(n - v1 > 1500);
}

static void test_fault_and_mirror(void **state)
{
    (void)state;
    const int n = 10000;
    double sd = sqrt(n * 0.5 * 0.5);
    uint64_t seed = 42;

    /* ratings test-delay for jason: 7 s at 100 %, no abort. */
    const px_route_t *r = route_of(R, "ratings", 9080, "/", "end-user: jason\n");
    px_fault_decision_t fd;
    for (int i = 0; i < 1000; i++) {
        px_route_fault_decide(r, wt_rand(&seed), wt_rand(&seed), &fd);
        assert_int_equal(fd.delay_ms, 7000);
        assert_int_equal(fd.abort_status, 0);
    }
    px_route_fault_decide(r, UINT64_MAX, UINT64_MAX, &fd);
    assert_int_equal(fd.delay_ms, 7000);
    /* Everyone else: no fault. */
    r = route_of(R, "ratings", 9080, "/", "");
    px_route_fault_decide(r, 0, 0, &fd);
    assert_int_equal(fd.delay_ms, 0);
    assert_int_equal(fd.abort_status, 0);

    /* Abort 503 at 50 %. */
    r = route_of(F, "reviews", 9080, "/", "x-fault: abort\n");
    int aborted = 0;
    for (int i = 0; i < n; i++) {
        px_route_fault_decide(r, wt_rand(&seed), wt_rand(&seed), &fd);
        assert_int_equal(fd.delay_ms, 0);
        assert_true(fd.abort_status == 0 || fd.abort_status == 503);
        aborted += fd.abort_status == 503;
    }
    assert_true(fabs(aborted - 0.5 * n) <= 5 * sd);

    /* Omitted percentages inject nothing, even with the largest and smallest draws. */
    r = route_of(F, "reviews", 9080, "/", "x-fault: never\n");
    px_route_fault_decide(r, 0, 0, &fd);
    assert_int_equal(fd.delay_ms + fd.abort_status, 0);
    px_route_fault_decide(r, UINT64_MAX, UINT64_MAX, &fd);
    assert_int_equal(fd.delay_ms + fd.abort_status, 0);

    /* Mirror at 50 % on POST; none elsewhere. */
    px_snapshot_t *s = snap_for(F);
    const px_vhost_t *vh = px_route_select_vhost(s, WF_STR_LIT("reviews"), 9080);
    r = &vh->routes[8];
    assert_true(r->has_mirror);
    int mirrored = 0;
    for (int i = 0; i < n; i++) {
        mirrored += px_route_mirror_decide(r, wt_rand(&seed));
    }
    assert_true(fabs(mirrored - 0.5 * n) <= 5 * sd);
    assert_false(px_route_mirror_decide(&vh->routes[10], 0));

    assert_false(px_route_draw_pct(0, 0.0));
    assert_true(px_route_draw_pct(UINT64_MAX, 100.0));
    assert_true(px_route_draw_pct(0, 0.001));
    assert_false(px_route_draw_pct(UINT64_MAX, 99.999));
}

static void test_retry_policy(void **state)
{
    (void)state;
    /* Istio's default: connection-level conditions only, no status retried. */
    const px_route_t *r = route_of(P, "reviews", 9080, "/", "");
    assert_false(px_route_retry_on_status(&r->retries, 503));
    assert_false(px_route_retry_on_status(&r->retries, 500));
    /* 5xx,gateway-error,409 */
    r = route_of(F, "reviews", 9080, "/api/v1/reviews/1", "");
    assert_true(px_route_retry_on_status(&r->retries, 500));
    assert_true(px_route_retry_on_status(&r->retries, 504));
    assert_true(px_route_retry_on_status(&r->retries, 409));
    assert_false(px_route_retry_on_status(&r->retries, 404));
    assert_false(px_route_retry_on_status(&r->retries, 200));
    px_retries_t none = r->retries;
    none.attempts = 0;
    assert_false(px_route_retry_on_status(&none, 500));
}

static void test_rewrite_and_redirect(void **state)
{
    (void)state;
    px_snapshot_t *s = snap_for(F);
    const px_vhost_t *vh = px_route_select_vhost(s, WF_STR_LIT("reviews"), 9080);
    const px_route_t *r = &vh->routes[1]; /* prefix /v3/ -> / */
    char out[64];
    size_t n;
    /* A match-all or exact match replaces the whole path. */
    assert_int_equal(px_route_rewrite_path(r, NULL, WF_STR_LIT("/v3/a"), out, sizeof(out), &n), 0);
    assert_string_equal(out, "/");
    assert_int_equal(px_route_rewrite_path(r, &r->match[0], WF_STR_LIT("/v3/a"), out, 2, &n),
                     WF_E_LIMIT);
    assert_int_equal(n, 0);
    /* No rewrite: the path is kept, and the authority too. */
    const px_route_t *plain = &vh->routes[0];
    assert_int_equal(px_route_rewrite_path(plain, NULL, WF_STR_LIT("/p"), out, sizeof(out), &n), 0);
    assert_string_equal(out, "/p");
    assert_true(wf_str_eq_c(px_route_rewrite_authority(plain, WF_STR_LIT("reviews")), "reviews"));

    /* Redirect: the route's own fields, IPv6 authorities, port handling. */
    r = &vh->routes[9];
    px_route_req_t req = {.method = WF_STR_LIT("GET"),
                          .scheme = WF_STR_LIT("https"),
                          .authority = WF_STR_LIT("[::1]:8443"),
                          .path = WF_STR_LIT("/old")};
    char loc[128];
    assert_int_equal(px_route_redirect_location(r, &req, loc, sizeof(loc), &n), 0);
    assert_string_equal(loc, "https://reviews.example.com/new");
    assert_int_equal(px_route_redirect_location(r, &req, loc, 10, &n), WF_E_LIMIT);
    px_route_t own = *r;
    own.redirect.authority = (wf_str_t){"", 0};
    assert_int_equal(px_route_redirect_location(&own, &req, loc, sizeof(loc), &n), 0);
    assert_string_equal(loc, "https://[::1]:8443/new");
    own.redirect.derive_port = PX_DERIVE_PORT_FROM_PROTOCOL_DEFAULT;
    assert_int_equal(px_route_redirect_location(&own, &req, loc, sizeof(loc), &n), 0);
    assert_string_equal(loc, "https://[::1]/new");
    own.redirect.derive_port = PX_DERIVE_PORT_NONE;
    own.redirect.port = 9443;
    own.redirect.scheme = WF_STR_LIT("http");
    req.query = WF_STR_LIT("a=1");
    assert_int_equal(px_route_redirect_location(&own, &req, loc, sizeof(loc), &n), 0);
    assert_string_equal(loc, "http://[::1]:9443/new?a=1");
    own = *r;
    own.redirect.derive_port = PX_DERIVE_PORT_FROM_REQUEST_PORT;
    req.authority = WF_STR_LIT("reviews");
    req.port = 9080;
    own.redirect.uri = (wf_str_t){"", 0};
    assert_int_equal(px_route_redirect_location(&own, &req, loc, sizeof(loc), &n), 0);
    assert_string_equal(loc, "https://reviews.example.com:9080/old?a=1");
    assert_int_equal(px_route_redirect_location(plain, &req, loc, sizeof(loc), &n), WF_E_INVAL);
}

/* A pattern that backtracks exponentially in PCRE2 stops at the match limit and counts as
 * "does not match" instead of stalling a worker. */
static void test_regex_match_limit(void **state)
{
    (void)state;
    const char *doc = "{\"schema\":1,\"version\":1,\"proxy\":{\"service\":\"a\"},"
                      "\"virtual_hosts\":[{\"domains\":[\"*\"],\"routes\":["
                      "{\"match\":[{\"headers\":{\"x\":{\"regex\":\"(a|aa)*\"}}}],"
                      "\"direct_response\":{\"status\":200}},"
                      "{\"direct_response\":{\"status\":404}}]}]}";
    px_snapshot_t *s = NULL;
    char err[256];
    assert_int_equal(px_snapshot_parse(doc, strlen(doc), NULL, &s, err, sizeof(err)), 0);
    char val[64];
    memset(val, 'a', sizeof(val) - 2);
    val[sizeof(val) - 2] = 'b';
    val[sizeof(val) - 1] = '\0';
    px_route_hdr_t h = {WF_STR_LIT("x"), wf_str(val)};
    px_route_req_t req = {
        .method = WF_STR_LIT("GET"), .path = WF_STR_LIT("/"), .headers = &h, .n_headers = 1};
    const px_vhost_t *vh = px_route_select_vhost(s, WF_STR_LIT("any"), 80);
    assert_non_null(vh);
    assert_int_equal(
        px_strmatch_eval(s, &vh->routes[0].match[0].headers[0].match, h.value, false, NULL), -1);
    const px_route_t *r = px_route_match(vh, &req, NULL);
    assert_ptr_equal(r, &vh->routes[1]);
    /* A short subject is decided normally. */
    h.value = WF_STR_LIT("aaaaa");
    assert_ptr_equal(px_route_match(vh, &req, NULL), &vh->routes[0]);
    px_snapshot_unref(s);
}

static int teardown(void **state)
{
    (void)state;
    static const char *names[] = {P, R, G, F};
    for (int i = 0; i < 4; i++) {
        px_snapshot_unref(snap_for(names[i]));
    }
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_table),          cmocka_unit_test(test_weighted_split),
        cmocka_unit_test(test_fault_and_mirror),     cmocka_unit_test(test_retry_policy),
        cmocka_unit_test(test_rewrite_and_redirect), cmocka_unit_test(test_regex_match_limit),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
