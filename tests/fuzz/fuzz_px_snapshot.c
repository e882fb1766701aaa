/*
 * fuzz_px_snapshot.c - the config snapshot parser (px_snapshot.h) and the router over what it
 * accepts. Checked beyond "no crash": a refusal comes with a message and leaves no snapshot;
 * an accepted snapshot's invariants hold (clusters sorted and unique, every routed route has
 * a positive total weight that its destinations add up to, every virtual host selects itself
 * by one of its exact domains), and the router's answers stay inside the snapshot. Accepted
 * authorization policies are evaluated for requests with and without a principal: the
 * deciding policy, when there is one, belongs to the snapshot and agrees with the decision.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "px_route.h"
#include "px_snapshot.h"

static void check(int ok)
{
    if (!ok) {
        abort();
    }
}

static void exercise_routes(const px_snapshot_t *s)
{
    for (uint32_t i = 1; i < s->n_clusters; i++) {
        check(wf_str_cmp(s->clusters[i - 1].name, s->clusters[i].name) < 0);
    }
    px_route_hdr_t h = {WF_STR_LIT("end-user"), WF_STR_LIT("jason")};
    for (uint32_t i = 0; i < s->n_vhosts; i++) {
        const px_vhost_t *vh = &s->vhosts[i];
        for (uint32_t j = 0; j < vh->n_domains; j++) {
            const px_domain_t *d = &vh->domains[j];
            const px_vhost_t *got = px_route_select_vhost(s, d->value, vh->port);
            if (d->kind == PX_DOM_EXACT) {
                check(got == vh);
            }
            check(got == NULL || (got >= s->vhosts && got < s->vhosts + s->n_vhosts));
        }
        for (uint32_t j = 0; j < vh->n_routes; j++) {
            const px_route_t *r = &vh->routes[j];
            if (r->action == PX_ACTION_ROUTE) {
                uint64_t sum = 0;
                for (uint32_t k = 0; k < r->n_route; k++) {
                    sum += r->route[k].weight;
                }
                check(sum == r->total_weight && sum > 0);
            }
        }
        px_route_req_t req = {.method = WF_STR_LIT("GET"),
                              .scheme = WF_STR_LIT("http"),
                              .authority = vh->n_domains ? vh->domains[0].value : WF_STR_LIT("x"),
                              .path = WF_STR_LIT("/api/v1/products"),
                              .query = WF_STR_LIT("debug=1&a"),
                              .headers = &h,
                              .n_headers = 1,
                              .port = vh->port};
        const px_match_t *m = NULL;
        const px_route_t *r = px_route_match(vh, &req, &m);
        if (r == NULL) {
            continue;
        }
        check(r >= vh->routes && r < vh->routes + vh->n_routes);
        char buf[256];
        size_t n;
        if (r->action == PX_ACTION_ROUTE) {
            const px_route_dest_t *d = px_route_pick_destination(r, 0x9e3779b97f4a7c15ULL);
            check(d >= r->route && d < r->route + r->n_route);
            int rc = px_route_rewrite_path(r, m, req.path, buf, sizeof(buf), &n);
            check(rc == 0 ? n == strlen(buf) : n == 0);
        } else if (r->action == PX_ACTION_REDIRECT) {
            int rc = px_route_redirect_location(r, &req, buf, sizeof(buf), &n);
            check(rc == 0 ? n == strlen(buf) : n == 0);
        }
        px_fault_decision_t fd;
        px_route_fault_decide(r, 1, UINT64_MAX, &fd);
        (void)px_route_mirror_decide(r, 12345);
    }
}

static void exercise_authz(const px_snapshot_t *s)
{
    const px_authz_set_t *az = &s->inbound.authz;
    px_http1_header_t hs[] = {{WF_STR_LIT("x-forwarded-for"), WF_STR_LIT("203.0.113.7, ::1")},
                              {WF_STR_LIT("x-token"), WF_STR_LIT("secret-1")},
                              {WF_STR_LIT("X-Token"), WF_STR_LIT("b")}};
    static const char *const principals[] = {NULL, "spiffe://cluster.local/ns/default/sa/sleep"};
    static const char *const paths[] = {"/api/v1/items?x", "/static/a/b.css", "/", ""};
    for (size_t i = 0; i < 2; i++) {
        for (size_t j = 0; j < sizeof(paths) / sizeof(paths[0]); j++) {
            px_authz_req_t r = {.principal = principals[i],
                                .source_ip = WF_STR_LIT("10.9.0.1"),
                                .dest_ip = WF_STR_LIT("::ffff:127.0.0.1"),
                                .dest_port = 9080,
                                .method = WF_STR_LIT("GET"),
                                .path = wf_str(paths[j]),
                                .host = WF_STR_LIT("A.example.com:9080"),
                                .headers = hs,
                                .n_headers = j % 2 ? 3 : 0};
            px_authz_result_t res;
            px_authz_check(az, &r, &res);
            const px_authz_policy_t *p = res.policy;
            check(p == NULL || (p >= az->policies && p < az->policies + az->n_policies));
            check(p == NULL || (p->action == PX_AZ_DENY) == !res.allowed);
            check(res.allowed || p != NULL || az->n_allow > 0);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    px_snapshot_opts_t o;
    px_snapshot_opts_default(&o);
    /* Small limits so that the limit paths are reached by small inputs. */
    o.limits.max_bytes = 1 << 16;
    o.limits.max_arena = 1 << 20;
    o.limits.max_items = 256;
    o.limits.max_string = 512;
    o.limits.match_limit = 10000;
    o.strict = size > 0 && (data[0] & 1) == 0;
    char err[256];
    px_snapshot_t *s = (px_snapshot_t *)1;
    int rc = px_snapshot_parse((const char *)data, size, &o, &s, err, sizeof(err));
    if (rc != 0) {
        check(s == NULL && err[0] != '\0');
        return 0;
    }
    check(s != NULL && err[0] == '\0');
    exercise_routes(s);
    exercise_authz(s);
    px_snapshot_unref(px_snapshot_ref(s));
    px_snapshot_unref(s);
    return 0;
}
