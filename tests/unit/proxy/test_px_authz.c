/*
 * test_px_authz.c - AuthorizationPolicy evaluation (px_authz.h) through the real snapshot
 * parser: sets of ALLOW / DENY / AUDIT policies written as snapshot JSON, and a table of
 * requests (principal or none, peer address, method, path, host, port, headers) with the
 * decision and deciding policy Istio's documentation gives for each: DENY before ALLOW, the
 * empty ALLOW policy, not_* fields, path templates, IPv4 and IPv6 CIDRs, X-Forwarded-For,
 * headers, hosts with and without ports, and principals that never match a plaintext caller.
 * Also the compile helpers' refusals (bad CIDRs, templates, ports, condition keys).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "px_authz.h"
#include "px_snapshot.h"
#include "wf_alloc.h"
#include "wf_err.h"

#define SLEEP "spiffe://cluster.local/ns/default/sa/sleep"
#define DEFWEB "spiffe://cluster.local/ns/default/sa/web"
#define TEAM "spiffe://cluster.local/ns/team-a/sa/web"
#define OTHER "spiffe://cluster.local/ns/other/sa/x"
#define PROD "spiffe://cluster.local/ns/prod/sa/a"

/* Policy sets, in JSON with ' for " (the test swaps them). */
static const char *const k_sets[] = {
    /* A: two DENY, one AUDIT, one ALLOW with many rules. */
    "[{'name':'default.deny-admin','action':'DENY','rules':["
    "  {'to':[{'operation':{'paths':['/admin*']}}]},"
    "  {'from':[{'source':{'ip_blocks':['10.9.0.0/16']}}]}]},"
    " {'name':'default.deny-delete','action':'DENY','rules':["
    "  {'from':[{'source':{'not_principals':['cluster.local/ns/default/sa/sleep']}}],"
    "   'to':[{'operation':{'methods':['DELETE']}}]}]},"
    " {'name':'default.audit','action':'AUDIT','rules':[{}]},"
    " {'name':'default.allow-read','rules':["
    "  {'to':[{'operation':{'methods':['GET','HEAD'],"
    "     'paths':['/api/{*}/items','/static/{**}','/public*','*.css']}}]},"
    "  {'from':[{'source':{'principals':['cluster.local/ns/default/sa/sleep']}}]},"
    "  {'from':[{'source':{'namespaces':['team-*']}}],"
    "   'to':[{'operation':{'methods':['POST'],'ports':['9080']}}]},"
    "  {'to':[{'operation':{'hosts':['*.example.com'],'not_paths':['/private*']}}],"
    "   'when':[{'key':'request.headers[X-Token]','values':['secret-*']}]},"
    "  {'from':[{'source':{'ip_blocks':['2001:db8::/32'],'not_ip_blocks':['2001:db8::bad']}}]},"
    "  {'from':[{'source':{'remote_ip_blocks':['203.0.113.0/24']}}],"
    "   'to':[{'operation':{'paths':['/via-lb']}}]},"
    "  {'when':[{'key':'source.principal','not_values':['*']},"
    "           {'key':'destination.port','values':['9443']}]},"
    "  {'to':[{'operation':{'hosts':['api.local'],'methods':['PUT']}}]},"
    "  {'to':[{'operation':{'paths':['/h']}}],"
    "   'when':[{'key':'request.headers[x-env]','not_values':['prod']}]},"
    "  {'from':[{'source':{'not_namespaces':['default']}}],"
    "   'to':[{'operation':{'paths':['/ext']}}]}]}]",
    /* B: an ALLOW policy without rules (`spec: {}`): nothing is allowed. */
    "[{'name':'default.deny-all','action':'ALLOW'}]",
    /* C: no policy at all. */
    "[]",
    /* D: DENY only (plus AUDIT): what no DENY matches is allowed. */
    "[{'name':'default.no-post','action':'DENY','rules':["
    "  {'to':[{'operation':{'methods':['POST']}}]}]},"
    " {'name':'default.audit-get','action':'AUDIT','rules':["
    "  {'to':[{'operation':{'methods':['GET']}}]}]}]",
    /* E: `rules: [{}]` allows everything. */
    "[{'name':'istio-system.allow-all','action':'ALLOW','rules':[{}]}]",
    /* F: AUDIT only. */
    "[{'name':'default.audit-all','action':'AUDIT','rules':[{}]}]",
    /* G: conditions. */
    "[{'name':'default.when','action':'ALLOW','rules':["
    "  {'when':[{'key':'source.ip','values':['10.0.0.0/8']},"
    "           {'key':'request.headers[x-a]','values':['1']}]},"
    "  {'when':[{'key':'source.namespace','values':['prod']}]},"
    "  {'when':[{'key':'request.auth.claims[iss]','values':['*']}]},"
    "  {'when':[{'key':'connection.sni','values':['*']}]},"
    "  {'when':[{'key':'destination.ip','values':['127.0.0.0/8']},"
    "           {'key':'request.headers[x-b]','values':['*']}]},"
    "  {'when':[{'key':'request.headers[x-multi]','values':['a,b']}]},"
    "  {'to':[{'operation':{'not_methods':['GET','POST','PUT','DELETE']}}],"
    "   'when':[{'key':'remote.ip','not_values':['192.0.2.0/24']}]}]}]",
};
#define N_SETS (sizeof(k_sets) / sizeof(k_sets[0]))

typedef struct {
    char set; /* 'A'.. */
    const char *principal;
    const char *ip;
    const char *method;
    const char *path;
    const char *host;
    uint32_t port;
    const char *headers; /* "name: value\n" lines */
    const char *dest_ip;
    bool allow;
    const char *policy; /* the deciding policy, NULL for none */
} row_t;

#define IP "10.0.0.5"
#define H "svc.default"
#define DIP "10.0.0.9"

static const row_t k_rows[] = {
    /* A: ALLOW rule 0, methods and paths (exact, prefix, suffix, templates). */
    {'A', NULL, IP, "GET", "/api/v1/items", H, 9080, "", DIP, true, "default.allow-read"},
    {'A', NULL, IP, "GET", "/api/v1/items?x=1", H, 9080, "", DIP, true, "default.allow-read"},
    {'A', NULL, IP, "GET", "/api/v1/x/items", H, 9080, "", DIP, false, NULL},
    {'A', NULL, IP, "GET", "/api//items", H, 9080, "", DIP, false, NULL},
    {'A', NULL, IP, "GET", "/static/", H, 9080, "", DIP, true, "default.allow-read"},
    {'A', NULL, IP, "GET", "/static/a/b/c.js", H, 9080, "", DIP, true, "default.allow-read"},
    {'A', NULL, IP, "GET", "/static", H, 9080, "", DIP, false, NULL},
    {'A', NULL, IP, "HEAD", "/public/x", H, 9080, "", DIP, true, "default.allow-read"},
    {'A', NULL, IP, "GET", "/style/site.css", H, 9080, "", DIP, true, "default.allow-read"},
    {'A', NULL, IP, "get", "/public", H, 9080, "", DIP, false, NULL},
    {'A', NULL, IP, "POST", "/api/v1/items", H, 9080, "", DIP, false, NULL},
    {'A', DEFWEB, IP, "GET", "/api/v2/items", H, 9080, "", DIP, true, "default.allow-read"},
    /* A: DENY wins over ALLOW. */
    {'A', NULL, IP, "GET", "/admin", H, 9080, "", DIP, false, "default.deny-admin"},
    {'A', NULL, IP, "GET", "/administrator", H, 9080, "", DIP, false, "default.deny-admin"},
    {'A', SLEEP, IP, "GET", "/admin/x", H, 9080, "", DIP, false, "default.deny-admin"},
    {'A', SLEEP, IP, "POST", "/anything", H, 9080, "", DIP, true, "default.allow-read"},
    {'A', SLEEP, IP, "DELETE", "/x", H, 9080, "", DIP, true, "default.allow-read"},
    /* A: not_principals match a caller without mTLS. */
    {'A', NULL, IP, "DELETE", "/public", H, 9080, "", DIP, false, "default.deny-delete"},
    {'A', OTHER, IP, "DELETE", "/public", H, 9080, "", DIP, false, "default.deny-delete"},
    /* A: ip_blocks, IPv4 and IPv4-mapped IPv6. */
    {'A', NULL, "10.9.1.1", "GET", "/public", H, 9080, "", DIP, false, "default.deny-admin"},
    {'A', NULL, "10.10.1.1", "GET", "/public", H, 9080, "", DIP, true, "default.allow-read"},
    {'A', NULL, "::ffff:10.9.0.1", "GET", "/public", H, 9080, "", DIP, false, "default.deny-admin"},
    /* A: namespaces with a prefix; ports; no principal = no namespace. */
    {'A', TEAM, IP, "POST", "/x", H, 9080, "", DIP, true, "default.allow-read"},
    {'A', TEAM, IP, "POST", "/x", H, 9081, "", DIP, false, NULL},
    {'A', OTHER, IP, "POST", "/x", H, 9080, "", DIP, false, NULL},
    {'A', NULL, IP, "POST", "/x", H, 9080, "", DIP, false, NULL},
    /* A: hosts (case-insensitive, with and without port), not_paths, header values. */
    {'A', NULL, IP, "GET", "/p", "a.example.com", 9080, "x-token: secret-1\n", DIP, true,
     "default.allow-read"},
    {'A', NULL, IP, "GET", "/p", "A.Example.COM:8080", 9080, "X-TOKEN: secret-1\n", DIP, true,
     "default.allow-read"},
    {'A', NULL, IP, "GET", "/private/1", "a.example.com", 9080, "x-token: secret-1\n", DIP, false,
     NULL},
    {'A', NULL, IP, "GET", "/p", "a.example.com", 9080, "x-token: wrong\n", DIP, false, NULL},
    {'A', NULL, IP, "GET", "/p", "a.example.com", 9080, "", DIP, false, NULL},
    {'A', NULL, IP, "GET", "/p", "example.com", 9080, "x-token: secret-1\n", DIP, false, NULL},
    /* A: IPv6 blocks with a not_ip_blocks hole. */
    {'A', NULL, "2001:db8::1", "POST", "/p", H, 9080, "", DIP, true, "default.allow-read"},
    {'A', NULL, "2001:db8::bad", "POST", "/p", H, 9080, "", DIP, false, NULL},
    {'A', NULL, "2001:db9::1", "POST", "/p", H, 9080, "", DIP, false, NULL},
    /* A: remote_ip_blocks from the first X-Forwarded-For entry, else the peer. */
    {'A', NULL, IP, "POST", "/via-lb", H, 9080, "x-forwarded-for: 203.0.113.7, 10.0.0.1\n", DIP,
     true, "default.allow-read"},
    {'A', NULL, IP, "POST", "/via-lb", H, 9080, "x-forwarded-for: 198.51.100.1\n", DIP, false,
     NULL},
    {'A', NULL, "203.0.113.9", "POST", "/via-lb", H, 9080, "", DIP, true, "default.allow-read"},
    /* A: source.principal not_values `*` = callers without mTLS; destination.port. */
    {'A', NULL, IP, "POST", "/x", H, 9443, "", DIP, true, "default.allow-read"},
    {'A', OTHER, IP, "POST", "/x", H, 9443, "", DIP, false, NULL},
    /* A: an exact host matches with or without the port, nothing longer. */
    {'A', NULL, IP, "PUT", "/x", "api.local", 9080, "", DIP, true, "default.allow-read"},
    {'A', NULL, IP, "PUT", "/x", "API.local:9080", 9080, "", DIP, true, "default.allow-read"},
    {'A', NULL, IP, "PUT", "/x", "api.local.evil", 9080, "", DIP, false, NULL},
    /* A: header not_values: an absent header is not one of them. */
    {'A', NULL, IP, "POST", "/h", H, 9080, "x-env: dev\n", DIP, true, "default.allow-read"},
    {'A', NULL, IP, "POST", "/h", H, 9080, "", DIP, true, "default.allow-read"},
    {'A', NULL, IP, "POST", "/h", H, 9080, "x-env: prod\n", DIP, false, NULL},
    /* A: not_namespaces match plaintext callers and other namespaces. */
    {'A', NULL, IP, "POST", "/ext", H, 9080, "", DIP, true, "default.allow-read"},
    {'A', OTHER, IP, "POST", "/ext", H, 9080, "", DIP, true, "default.allow-read"},
    {'A', DEFWEB, IP, "POST", "/ext", H, 9080, "", DIP, false, NULL},
    /* B: empty ALLOW denies everything, mTLS or not. */
    {'B', NULL, IP, "GET", "/", H, 9080, "", DIP, false, NULL},
    {'B', SLEEP, IP, "GET", "/", H, 9080, "", DIP, false, NULL},
    /* C: no policies. */
    {'C', NULL, IP, "GET", "/admin", H, 9080, "", DIP, true, NULL},
    {'C', SLEEP, "2001:db8::1", "DELETE", "/x", H, 9080, "", DIP, true, NULL},
    /* D: DENY only. */
    {'D', NULL, IP, "GET", "/", H, 9080, "", DIP, true, NULL},
    {'D', NULL, IP, "POST", "/", H, 9080, "", DIP, false, "default.no-post"},
    {'D', SLEEP, IP, "POST", "/", H, 9080, "", DIP, false, "default.no-post"},
    /* E: rules [{}]. */
    {'E', NULL, IP, "GET", "/anything", H, 9080, "", DIP, true, "istio-system.allow-all"},
    {'E', SLEEP, "::1", "DELETE", "/x", H, 1, "", DIP, true, "istio-system.allow-all"},
    /* F: AUDIT changes nothing. */
    {'F', NULL, IP, "DELETE", "/x", H, 9080, "", DIP, true, NULL},
    /* G: when conditions are ANDed; JWT and SNI are never present. */
    {'G', NULL, "10.1.1.1", "GET", "/", H, 9080, "x-a: 1\n", DIP, true, "default.when"},
    {'G', NULL, "10.1.1.1", "GET", "/", H, 9080, "x-a: 2\n", DIP, false, NULL},
    {'G', NULL, "11.1.1.1", "GET", "/", H, 9080, "x-a: 1\n", DIP, false, NULL},
    {'G', PROD, "11.1.1.1", "GET", "/", H, 9080, "", DIP, true, "default.when"},
    {'G', NULL, "11.1.1.1", "GET", "/", H, 9080, "authorization: Bearer abc.def.ghi\n", DIP, false,
     NULL},
    {'G', NULL, "11.1.1.1", "GET", "/", H, 9080, "x-b:\n", "127.0.0.1", true, "default.when"},
    {'G', NULL, "11.1.1.1", "GET", "/", H, 9080, "x-b: 1\n", DIP, false, NULL},
    {'G', NULL, "11.1.1.1", "GET", "/", H, 9080, "x-multi: a\nx-multi: b\n", DIP, true,
     "default.when"},
    {'G', NULL, "11.1.1.1", "GET", "/", H, 9080, "x-multi: a\n", DIP, false, NULL},
    {'G', NULL, "11.1.1.1", "PATCH", "/", H, 9080, "", DIP, true, "default.when"},
    {'G', NULL, "11.1.1.1", "PATCH", "/", H, 9080, "x-forwarded-for: 192.0.2.1\n", DIP, false,
     NULL},
};

static px_snapshot_t *g_snaps[N_SETS];

static px_snapshot_t *parse_set(const char *policies, char *err, size_t errlen, int *rc)
{
    size_t cap = strlen(policies) + 256;
    char *doc = wf_malloc(cap);
    snprintf(doc, cap,
             "{\"schema\":1,\"version\":1,\"proxy\":{\"service\":\"svc\"},"
             "\"inbound\":{\"authorization\":{\"policies\":%s}}}",
             policies);
    for (char *p = doc; *p != '\0'; p++) {
        if (*p == '\'') {
            *p = '"';
        }
    }
    px_snapshot_opts_t o;
    px_snapshot_opts_default(&o);
    o.strict = true;
    px_snapshot_t *s = NULL;
    *rc = px_snapshot_parse(doc, strlen(doc), &o, &s, err, errlen);
    wf_free(doc);
    return s;
}

static int setup(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_SETS; i++) {
        char err[512];
        int rc;
        g_snaps[i] = parse_set(k_sets[i], err, sizeof(err), &rc);
        if (rc != 0) {
            fprintf(stderr, "set %c: %s\n", (char)('A' + i), err);
            return -1;
        }
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_SETS; i++) {
        px_snapshot_unref(g_snaps[i]);
    }
    return 0;
}

/* Split "name: value\n" lines into h[] (the slices point into buf). */
static size_t split_headers(char *buf, px_http1_header_t *h, size_t cap)
{
    size_t n = 0;
    char *line = buf;
    while (*line != '\0' && n < cap) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        *nl = '\0';
        char *colon = strchr(line, ':');
        assert_non_null(colon);
        char *v = colon + 1;
        while (*v == ' ') {
            v++;
        }
        h[n].name = (wf_str_t){line, (size_t)(colon - line)};
        h[n].value = (wf_str_t){v, strlen(v)};
        n++;
        line = nl + 1;
    }
    return n;
}

static void test_matrix(void **state)
{
    (void)state;
    size_t n_rows = sizeof(k_rows) / sizeof(k_rows[0]);
    assert_true(n_rows >= 60);
    size_t allowed = 0, denied = 0;
    for (size_t i = 0; i < n_rows; i++) {
        const row_t *rw = &k_rows[i];
        const px_snapshot_t *s = g_snaps[rw->set - 'A'];
        char hbuf[512];
        snprintf(hbuf, sizeof(hbuf), "%s", rw->headers);
        px_http1_header_t hs[8];
        px_authz_req_t r = {
            .principal = rw->principal,
            .source_ip = wf_str(rw->ip),
            .dest_ip = wf_str(rw->dest_ip),
            .dest_port = rw->port,
            .method = wf_str(rw->method),
            .path = wf_str(rw->path),
            .host = wf_str(rw->host),
            .headers = hs,
            .n_headers = split_headers(hbuf, hs, 8),
        };
        px_authz_result_t res;
        px_authz_check(&s->inbound.authz, &r, &res);
        const char *got = res.policy != NULL ? res.policy->name.p : NULL;
        if (res.allowed != rw->allow || (got == NULL) != (rw->policy == NULL) ||
            (got != NULL && strcmp(got, rw->policy) != 0)) {
            fail_msg("row %zu (set %c, %s %s %s from %s as %s): got %s by %s, want %s by %s", i,
                     rw->set, rw->method, rw->host, rw->path, rw->ip,
                     rw->principal ? rw->principal : "(no mTLS)", res.allowed ? "allow" : "deny",
                     got ? got : "(none)", rw->allow ? "allow" : "deny",
                     rw->policy ? rw->policy : "(none)");
        }
        allowed += res.allowed;
        denied += !res.allowed;
    }
    /* The table exercises both outcomes in earnest. */
    assert_true(allowed >= 25);
    assert_true(denied >= 25);
}

/* Principal and namespace rules never match a request without mTLS, whatever they say. */
static void test_no_mtls_no_principal(void **state)
{
    (void)state;
    static const char *const pols[] = {
        "[{'name':'a.p','rules':[{'from':[{'source':{'principals':['*']}}]}]}]",
        "[{'name':'a.p','rules':[{'from':[{'source':{'principals':['cluster.local/*']}}]}]}]",
        "[{'name':'a.p','rules':[{'from':[{'source':{'principals':['*/sa/sleep']}}]}]}]",
        "[{'name':'a.p','rules':[{'from':[{'source':{'namespaces':['*']}}]}]}]",
        "[{'name':'a.p','rules':[{'when':[{'key':'source.principal','values':['*']}]}]}]",
        "[{'name':'a.p','rules':[{'when':[{'key':'source.namespace','values':['*']}]}]}]",
        "[{'name':'a.p','rules':[{'from':[{'source':{'request_principals':['*']}}]}]}]",
    };
    for (size_t i = 0; i < sizeof(pols) / sizeof(pols[0]); i++) {
        char err[512];
        int rc;
        px_snapshot_t *s = parse_set(pols[i], err, sizeof(err), &rc);
        assert_int_equal(rc, 0);
        px_authz_req_t r = {.source_ip = wf_str("10.0.0.1"),
                            .method = wf_str("GET"),
                            .path = wf_str("/"),
                            .host = wf_str("h")};
        px_authz_result_t res;
        px_authz_check(&s->inbound.authz, &r, &res);
        assert_false(res.allowed);
        /* The same rule with a principal: every one but request_principals (no JWT) allows. */
        r.principal = SLEEP;
        px_authz_check(&s->inbound.authz, &r, &res);
        assert_int_equal(res.allowed, i != 6);
        px_snapshot_unref(s);
    }
}

static void test_audit(void **state)
{
    (void)state;
    px_authz_req_t r = {.source_ip = wf_str(IP), .method = wf_str("GET"), .path = wf_str("/")};
    px_authz_result_t res;
    px_authz_check(&g_snaps['D' - 'A']->inbound.authz, &r, &res);
    assert_true(res.allowed);
    assert_non_null(res.audit);
    assert_string_equal(res.audit->name.p, "default.audit-get");
    r.method = wf_str("PUT");
    px_authz_check(&g_snaps['D' - 'A']->inbound.authz, &r, &res);
    assert_true(res.allowed);
    assert_null(res.audit);
    /* A NULL or empty set allows. */
    px_authz_check(NULL, &r, &res);
    assert_true(res.allowed);
    assert_null(res.policy);
}

/* TCP connections (Istio's authorization for TCP traffic): HTTP-only fields make an ALLOW rule
 * match nothing and are left out of a DENY rule, which then denies more. */
static void test_tcp(void **state)
{
    (void)state;
    char err[512];
    int rc;
    px_snapshot_t *s =
        parse_set("[{'name':'d.ip','action':'DENY','rules':[{'from':[{'source':{'ip_blocks':['10.9."
                  "0.0/16']}}],"
                  "   'to':[{'operation':{'paths':['/x'],'methods':['GET']}}]}]},"
                  " {'name':'a.ports','rules':[{'to':[{'operation':{'paths':['/y']}}]},"
                  "   {'to':[{'operation':{'ports':['3306']}}]},"
                  "   {'from':[{'source':{'request_principals':['*']}}]},"
                  "   {'when':[{'key':'request.headers[x]','values':['a']}]}]}]",
                  err, sizeof(err), &rc);
    assert_int_equal(rc, 0);
    static const struct {
        const char *ip;
        uint32_t port;
        bool tcp, allow;
        const char *policy;
    } rows[] = {
        {"10.9.0.1", 3306, true, false, "d.ip"},   /* paths and methods left out of the DENY */
        {"10.0.0.1", 3306, true, true, "a.ports"}, /* the ports rule */
        {"10.0.0.1", 5432, true, false, NULL},     /* the paths / principals / header rules: none */
        {"10.9.0.1", 3306, false, true, "a.ports"}, /* HTTP: the DENY needs GET /x */
        {"10.0.0.1", 5432, false, true, "a.ports"}, /* HTTP: the header rule that TCP skips */
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        px_http1_header_t h = {wf_str("x"), wf_str("a")};
        px_authz_req_t r = {.source_ip = wf_str(rows[i].ip),
                            .dest_port = rows[i].port,
                            .tcp = rows[i].tcp,
                            .method = wf_str(rows[i].tcp ? "" : "POST"),
                            .path = wf_str(rows[i].tcp ? "" : "/z"),
                            .headers = rows[i].tcp ? NULL : &h,
                            .n_headers = rows[i].tcp ? 0 : 1};
        px_authz_result_t res;
        px_authz_check(&s->inbound.authz, &r, &res);
        assert_int_equal(res.allowed, rows[i].allow);
        if (rows[i].policy == NULL) {
            assert_null(res.policy);
        } else {
            assert_non_null(res.policy);
            assert_string_equal(res.policy->name.p, rows[i].policy);
        }
    }
    px_snapshot_unref(s);
    /* A DENY whose only condition is a header denies every TCP connection. */
    s = parse_set("[{'name':'d.h','action':'DENY','rules':[{'when':[{'key':'request.headers[x]',"
                  "'values':['a']}]}]}]",
                  err, sizeof(err), &rc);
    assert_int_equal(rc, 0);
    px_authz_req_t r = {.source_ip = wf_str("10.0.0.1"), .dest_port = 1, .tcp = true};
    px_authz_result_t res;
    px_authz_check(&s->inbound.authz, &r, &res);
    assert_false(res.allowed);
    r.tcp = false;
    r.method = wf_str("GET");
    r.path = wf_str("/");
    px_authz_check(&s->inbound.authz, &r, &res);
    assert_true(res.allowed);
    px_snapshot_unref(s);
}

/* A header sent several times is matched joined with "," (Envoy's view), at any length. */
static void test_headers_joined(void **state)
{
    (void)state;
    char err[512];
    int rc;
    px_snapshot_t *s = parse_set("[{'name':'a.p','action':'DENY','rules':["
                                 " {'when':[{'key':'request.headers[x-m]','values':['a,b*']}]},"
                                 " {'when':[{'key':'request.headers[x-m]','values':['*,z']}]},"
                                 " {'when':[{'key':'request.headers[x-m]','values':['p,q,r']}]}]}]",
                                 err, sizeof(err), &rc);
    assert_int_equal(rc, 0);
    static char big[6000];
    memset(big, 'q', sizeof(big) - 1);
    static const struct {
        const char *v[3];
        bool denied;
    } rows[] = {
        {{"a", "b", NULL}, true},     {{"a", "bc", "d"}, true},    {{"ab", NULL, NULL}, false},
        {{"x", "z", NULL}, true},     {{"x,z", NULL, NULL}, true}, {{"xz", NULL, NULL}, false},
        {{"p", "q", "r"}, true},      {{"p", "q,r", NULL}, true},  {{"p", "q", "rr"}, false},
        {{"p,q", NULL, NULL}, false}, {{big, "z", NULL}, true},    {{big, "zz", NULL}, false},
        {{"", "", NULL}, false},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        px_http1_header_t hs[4];
        size_t n = 0;
        hs[n++] = (px_http1_header_t){wf_str("other"), wf_str("a,b")};
        for (size_t k = 0; k < 3 && rows[i].v[k] != NULL; k++) {
            hs[n++] = (px_http1_header_t){wf_str(k % 2 ? "X-M" : "x-m"), wf_str(rows[i].v[k])};
        }
        px_authz_req_t r = {.source_ip = wf_str("10.0.0.1"),
                            .method = wf_str("GET"),
                            .path = wf_str("/"),
                            .headers = hs,
                            .n_headers = n};
        px_authz_result_t res;
        px_authz_check(&s->inbound.authz, &r, &res);
        if (res.allowed == rows[i].denied) {
            fail_msg("row %zu: %s", i, res.allowed ? "allowed" : "denied");
        }
    }
    px_snapshot_unref(s);
}

static void test_normalize_path(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"/a/b/../c", "/a/c"},
        {"/a/./b", "/a/b"},
        {"/a/.", "/a/"},
        {"/a/..", "/"},
        {"/..", "/"},
        {"/../../admin", "/admin"},
        {"/public/%2e%2E/admin?x=/../y", "/admin?x=/../y"},
        {"/public/.%2e/admin", "/admin"},
        {"\\admin\\x", "/admin/x"},
        {"/a//../b", "/a/b"},
        {"/a//b/", "/a//b/"},
        {"/...", "/..."},
        {"/a/..b/.c", "/a/..b/.c"},
        {"/", "/"},
        {"*", "*"},
        {"", ""},
        {"/x?/../a", "/x?/../a"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[64];
        size_t n = px_authz_normalize_path(wf_str(cases[i][0]), out);
        if (n != strlen(cases[i][1]) || memcmp(out, cases[i][1], n) != 0) {
            fail_msg("%s -> %.*s, want %s", cases[i][0], (int)n, out, cases[i][1]);
        }
    }
}

static void test_compile_helpers(void **state)
{
    (void)state;
    const char *why = NULL;
    px_authz_cidr_t c;
    assert_int_equal(px_authz_compile_cidr(wf_str("10.1.2.3/8"), &c, &why), 0);
    assert_int_equal(c.family, 4);
    assert_int_equal(c.bits, 8);
    assert_int_equal(c.addr[0], 10);
    assert_int_equal(c.addr[1], 0); /* host bits cleared */
    assert_int_equal(px_authz_compile_cidr(wf_str("2001:db8::/33"), &c, &why), 0);
    assert_int_equal(c.family, 6);
    assert_int_equal(c.bits, 33);
    assert_int_equal(px_authz_compile_cidr(wf_str("::1"), &c, &why), 0);
    assert_int_equal(c.bits, 128);
    static const char *const bad_cidrs[] = {"",        "10.0.0.0/33", "10.0.0/8",
                                            "::/129",  "10.0.0.0/",   "10.0.0.0/8/8",
                                            "a.b.c.d", "1.2.3.4/x",   "10.0.0.0/0008"};
    for (size_t i = 0; i < sizeof(bad_cidrs) / sizeof(bad_cidrs[0]); i++) {
        why = NULL;
        assert_int_equal(px_authz_compile_cidr(wf_str(bad_cidrs[i]), &c, &why), WF_E_INVAL);
        assert_non_null(why);
    }
    uint16_t port;
    assert_int_equal(px_authz_compile_port(wf_str("65535"), &port, &why), 0);
    assert_int_equal(port, 65535);
    assert_int_equal(px_authz_compile_port(wf_str("65536"), &port, &why), WF_E_INVAL);
    assert_int_equal(px_authz_compile_port(wf_str("80a"), &port, &why), WF_E_INVAL);
    assert_int_equal(px_authz_compile_port(wf_str(""), &port, &why), WF_E_INVAL);

    wf_arena_t arena;
    wf_arena_init(&arena, 4096, 1 << 20);
    px_authz_path_t p;
    assert_int_equal(px_authz_compile_path(&arena, wf_str("/a/{*}/b/{**}"), &p, &why), 0);
    assert_int_equal(p.n_segs, 4);
    assert_int_equal(p.segs[0].kind, PX_AZ_SEG_LIT);
    assert_int_equal(p.segs[1].kind, PX_AZ_SEG_ONE);
    assert_int_equal(p.segs[3].kind, PX_AZ_SEG_MANY);
    assert_int_equal(px_authz_compile_path(&arena, wf_str("/a*"), &p, &why), 0);
    assert_int_equal(p.n_segs, 0);
    assert_int_equal(p.s.kind, PX_AZ_PREFIX);
    static const char *const bad_paths[] = {"/{**}/a/{*}", "/a{*}",  "/{*}b",      "a/{*}",
                                            "/{x}",        "/*/{*}", "/{**}/{**}", "/a}"};
    for (size_t i = 0; i < sizeof(bad_paths) / sizeof(bad_paths[0]); i++) {
        why = NULL;
        if (px_authz_compile_path(&arena, wf_str(bad_paths[i]), &p, &why) != WF_E_INVAL) {
            fail_msg("path template %s accepted", bad_paths[i]);
        }
        assert_non_null(why);
    }
    wf_arena_free(&arena);

    px_authz_key_t k;
    wf_str_t hdr;
    assert_int_equal(px_authz_compile_key(wf_str("request.headers[X-Foo]"), &k, &hdr, &why), 0);
    assert_int_equal(k, PX_AZ_KEY_HEADER);
    assert_true(wf_str_eq_c(hdr, "X-Foo"));
    assert_int_equal(px_authz_compile_key(wf_str("request.auth.claims[groups]"), &k, &hdr, &why),
                     0);
    assert_int_equal(k, PX_AZ_KEY_REQUEST_AUTH);
    static const char *const bad_keys[] = {"request.headers[]",
                                           "request.headers[a b]",
                                           "source.ipx",
                                           "experimental.envoy.filters.x",
                                           "request.regex.headers[x]",
                                           ""};
    for (size_t i = 0; i < sizeof(bad_keys) / sizeof(bad_keys[0]); i++) {
        assert_int_equal(px_authz_compile_key(wf_str(bad_keys[i]), &k, &hdr, &why), WF_E_INVAL);
    }
    px_authz_str_t m;
    px_authz_compile_str(wf_str("a*b"), &m);
    assert_int_equal(m.kind, PX_AZ_EXACT);
    px_authz_compile_str(wf_str("*"), &m);
    assert_int_equal(m.kind, PX_AZ_ANY);
    px_authz_compile_str(wf_str("*b"), &m);
    assert_int_equal(m.kind, PX_AZ_SUFFIX);
    assert_true(wf_str_eq_c(m.v, "b"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matrix),          cmocka_unit_test(test_no_mtls_no_principal),
        cmocka_unit_test(test_audit),           cmocka_unit_test(test_tcp),
        cmocka_unit_test(test_headers_joined),  cmocka_unit_test(test_normalize_path),
        cmocka_unit_test(test_compile_helpers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
