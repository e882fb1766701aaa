/*
 * bench_px_authz.c - cost of one AuthorizationPolicy decision (px_authz_check) and of the path
 * normalization in front of it, for policy sets of a few shapes: one DENY, the bookinfo-like
 * set of a DENY, an AUDIT and an ALLOW with ten rules, and 100 ALLOW policies of which only
 * the last matches (the worst case a large namespace could write).
 *
 * Method: each (set, request) pair is checked N times in a loop; the figure is the median over
 * R rounds of the round's thread CPU time (CLOCK_THREAD_CPUTIME_ID: the machine is shared)
 * divided by N. Figures only, never a verdict.
 *
 * Reference: none run beside. Envoy's RBAC filter is the natural one, and no Envoy is
 * installed here; the output says so rather than quoting a number from elsewhere.
 *
 * Run (in a normal, not sanitizer, build): build/tests/bench_px_authz [-n N] [-r R]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <time.h>

#include "px_authz.h"
#include "px_snapshot.h"
#include "wf_alloc.h"
#include "wf_buf.h"

static int64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* A snapshot holding policies (JSON, ' for "). Exits on a parse error. */
static px_snapshot_t *load(const char *policies)
{
    wf_buf_t b = WF_BUF_INIT;
    wf_buf_printf(&b,
                  "{\"schema\":1,\"version\":1,\"proxy\":{\"service\":\"svc\"},"
                  "\"inbound\":{\"authorization\":{\"policies\":%s}}}",
                  policies);
    for (size_t i = 0; i < b.len; i++) {
        if (b.data[i] == '\'') {
            b.data[i] = '"';
        }
    }
    px_snapshot_t *s = NULL;
    char err[512];
    if (px_snapshot_parse((const char *)b.data, b.len, NULL, &s, err, sizeof(err)) != 0) {
        fprintf(stderr, "bad policies: %s\n", err);
        exit(1);
    }
    wf_buf_free(&b);
    return s;
}

static const char k_bookinfo[] =
    "[{'name':'default.deny-admin','action':'DENY','rules':["
    "  {'to':[{'operation':{'paths':['/admin*']}}]},"
    "  {'from':[{'source':{'ip_blocks':['10.9.0.0/16','2001:db8::/32']}}]}]},"
    " {'name':'default.audit','action':'AUDIT','rules':[{'to':[{'operation':{'methods':['POST']}}]}"
    "]},"
    " {'name':'default.allow','rules':["
    "  {'from':[{'source':{'principals':['cluster.local/ns/default/sa/bookinfo-productpage']}}],"
    "   'to':[{'operation':{'methods':['GET'],'paths':['/reviews/{*}','/ratings/{**}']}}]},"
    "  {'from':[{'source':{'namespaces':['istio-system']}}]},"
    "  {'to':[{'operation':{'hosts':['*.example.com'],'ports':['9080']}}],"
    "   'when':[{'key':'request.headers[x-token]','values':['secret-*']}]},"
    "  {'from':[{'source':{'remote_ip_blocks':['203.0.113.0/24']}}]},"
    "  {'to':[{'operation':{'paths':['/health','/ready','/metrics']}}]},"
    "  {'to':[{'operation':{'paths':['*.css','*.js','/static/*']}}]},"
    "  {'when':[{'key':'source.ip','values':['127.0.0.1']}]},"
    "  {'to':[{'operation':{'methods':['OPTIONS']}}]},"
    "  {'from':[{'source':{'not_principals':['*']}}],'to':[{'operation':{'paths':['/public']}}]},"
    "  {'to':[{'operation':{'not_methods':['GET','POST','PUT','DELETE','HEAD']}}]}]}]";

int main(int argc, char **argv)
{
    long n = 200000;
    int r = 11;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "-n") == 0) {
            n = atol(argv[i + 1]);
        } else if (strcmp(argv[i], "-r") == 0) {
            r = atoi(argv[i + 1]);
        }
    }
    if (n <= 0 || r <= 0 || r > 101) {
        fprintf(stderr, "usage: bench_px_authz [-n N] [-r R<=101]\n");
        return 2;
    }
    wf_buf_t many = WF_BUF_INIT;
    wf_buf_puts(&many, "[");
    for (int i = 0; i < 100; i++) {
        wf_buf_printf(&many,
                      "%s{'name':'default.p%d','rules':[{'to':[{'operation':{'paths':['/p%d/{*}'],"
                      "'methods':['GET']}}],'when':[{'key':'request.headers[x-id]','values':"
                      "['%d']}]}]}",
                      i ? "," : "", i, i, i);
    }
    wf_buf_puts(&many, "]");
    wf_buf_putc(&many, '\0');
    px_snapshot_t *sets[3] = {
        load("[{'name':'default.deny','action':'DENY','rules':[{'to':[{'operation':{'paths':["
             "'/admin*']}}]}]}]"),
        load(k_bookinfo),
        load((const char *)many.data),
    };
    px_http1_header_t hs[] = {
        {WF_STR_LIT("Host"), WF_STR_LIT("reviews.default.svc.cluster.local:9080")},
        {WF_STR_LIT("User-Agent"), WF_STR_LIT("curl/7.88.1")},
        {WF_STR_LIT("x-id"), WF_STR_LIT("99")},
        {WF_STR_LIT("x-request-id"), WF_STR_LIT("7d1c4b9a-0c4b-4d4e-9a55-2d0c8f9f1a11")},
    };
    static const struct {
        const char *name;
        int set;
        const char *principal, *path;
    } cases[] = {
        {"1 DENY, not matching", 0, NULL, "/reviews/0"},
        {"bookinfo set, mTLS, rule 1 allows", 1,
         "spiffe://cluster.local/ns/default/sa/"
         "bookinfo-productpage",
         "/reviews/0"},
        {"bookinfo set, plaintext, no rule matches", 1, NULL, "/nothing/here"},
        {"100 ALLOW, the last matches", 2, NULL, "/p99/x"},
    };
    printf("px_authz_check, %ld iterations x %d rounds, median thread-CPU ns per decision\n", n, r);
    printf("reference: none run beside (no Envoy RBAC filter installed here)\n\n");
    printf("%-42s %10s %8s\n", "case", "ns/check", "allowed");
    double t[101];
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        px_authz_req_t q = {.principal = cases[c].principal,
                            .source_ip = WF_STR_LIT("10.1.2.3"),
                            .dest_ip = WF_STR_LIT("10.1.2.4"),
                            .dest_port = 9080,
                            .method = WF_STR_LIT("GET"),
                            .path = wf_str(cases[c].path),
                            .host = WF_STR_LIT("reviews.default.svc.cluster.local:9080"),
                            .headers = hs,
                            .n_headers = sizeof(hs) / sizeof(hs[0])};
        px_authz_result_t res;
        volatile int sink = 0;
        for (int k = 0; k < r; k++) {
            int64_t t0 = cpu_ns();
            for (long i = 0; i < n; i++) {
                px_authz_check(&sets[cases[c].set]->inbound.authz, &q, &res);
                sink += res.allowed;
            }
            t[k] = (double)(cpu_ns() - t0) / (double)n;
        }
        (void)sink;
        printf("%-42s %10.1f %8s\n", cases[c].name, median(t, r), res.allowed ? "yes" : "no");
    }
    static const char path[] = "/api/v1/products/0/../1/./reviews?limit=10&x=/../y";
    char out[sizeof(path)];
    volatile size_t sink = 0;
    for (int k = 0; k < r; k++) {
        int64_t t0 = cpu_ns();
        for (long i = 0; i < n; i++) {
            sink += px_authz_normalize_path(WF_STR_LIT(path), out);
        }
        t[k] = (double)(cpu_ns() - t0) / (double)n;
    }
    (void)sink;
    printf("%-42s %10.1f\n", "normalize a 50-byte path with dot segments", median(t, r));
    for (int i = 0; i < 3; i++) {
        px_snapshot_unref(sets[i]);
    }
    wf_buf_free(&many);
    return 0;
}
