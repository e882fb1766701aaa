/*
 * bench_px_http1.c - cost of the proxy's HTTP/1.1 parser (px_http1.h) per head, for a few
 * shapes a sidecar sees, plus the re-serialisation of a head and the chunked body framer.
 *
 * Method: each shape is parsed N times in a loop (the buffer stays in cache, as the head of a
 * request just read does); the figure is the median over R rounds of the round's thread CPU
 * time (CLOCK_THREAD_CPUTIME_ID, so that other processes on a shared machine do not count)
 * divided by N. Figures only, never a verdict.
 *
 * Reference: none. The conventions ask for a reference run beside each figure; the natural one
 * is picohttpparser, which is not packaged in Debian 12 (`apt-cache search picohttpparser` finds
 * nothing), and nothing else packaged parses HTTP/1.1 heads as a library call, so the output
 * says so rather than comparing against a number from elsewhere.
 *
 * Run (after `cmake -DWEFT_BENCH=ON` and ninja, in a normal, not sanitizer, build):
 *   build/tests/bench_px_http1 [-n N] [-r R]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <time.h>

#include "px_http1.h"
#include "wf_buf.h"

typedef struct {
    const char *name;
    int dir; /* 0 request, 1 response */
    const char *text;
} shape_t;

static const shape_t shapes[] = {
    {"curl GET", 0,
     "GET /productpage HTTP/1.1\r\nHost: productpage:9080\r\nUser-Agent: curl/7.88.1\r\n"
     "Accept: */*\r\n\r\n"},
    {"browser-like GET", 0,
     "GET /api/v1/products/0/reviews?limit=10 HTTP/1.1\r\n"
     "Host: reviews.default.svc.cluster.local:9080\r\n"
     "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0\r\n"
     "Accept: application/json, text/plain, */*\r\n"
     "Accept-Language: en-US,en;q=0.5\r\n"
     "Accept-Encoding: gzip, deflate\r\n"
     "x-request-id: 6f1c7a52-4b8e-4a0b-9d43-0f2d6c1e9b77\r\n"
     "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"
     "Connection: keep-alive\r\n\r\n"},
    {"POST JSON with Content-Length", 0,
     "POST /v1/traces HTTP/1.1\r\nHost: collector:4318\r\nContent-Type: application/json\r\n"
     "Content-Length: 1234\r\nUser-Agent: OTel-OTLP-Exporter-JavaScript/0.45.1\r\n"
     "Accept: application/json\r\n\r\n"},
    {"absolute-form (http_proxy)", 0,
     "GET http://details.default:9080/details/0 HTTP/1.1\r\nHost: details.default:9080\r\n"
     "User-Agent: python-requests/2.28.1\r\nAccept-Encoding: gzip, deflate\r\nAccept: */*\r\n"
     "Proxy-Connection: keep-alive\r\n\r\n"},
    {"response 200, 7 fields", 1,
     "HTTP/1.1 200 OK\r\nserver: istio-envoy\r\ndate: Thu, 26 Nov 2026 01:00:00 GMT\r\n"
     "content-type: application/json\r\ncontent-length: 358\r\n"
     "x-envoy-upstream-service-time: 3\r\ncache-control: no-cache\r\n"
     "vary: Accept-Encoding\r\n\r\n"},
};

/* CPU time of this thread: the machine is shared, and wall time would count the waits. */
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

int main(int argc, char **argv)
{
    long n = 1000000;
    int r = 7;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "-n") == 0) {
            n = atol(argv[i + 1]);
        } else if (strcmp(argv[i], "-r") == 0) {
            r = atoi(argv[i + 1]);
        }
    }
    if (n <= 0 || r <= 0 || r > 101) {
        fprintf(stderr, "usage: bench_px_http1 [-n N] [-r R<=101]\n");
        return 2;
    }
    double t[101];
    px_http1_header_t hdrs[100];
    px_http1_head_t h;
    px_http1_error_t err;
    volatile size_t sink = 0;

    printf("px_http1 parser, %ld iterations x %d rounds, median thread-CPU ns per operation\n", n,
           r);
    printf("reference: none run beside (picohttpparser is not packaged in Debian 12)\n\n");
    printf("%-34s %6s %10s %10s\n", "shape", "bytes", "ns/head", "MB/s");
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        const char *txt = shapes[s].text;
        size_t len = strlen(txt);
        for (int k = 0; k < r; k++) {
            int64_t t0 = cpu_ns();
            for (long i = 0; i < n; i++) {
                int rc = shapes[s].dir == 0
                             ? px_http1_parse_request(txt, len, NULL, hdrs, 100, &h, &err)
                             : px_http1_parse_response(txt, len, PX_HTTP1_M_GET, NULL, hdrs, 100,
                                                       &h, &err);
                if (rc != (int)len) {
                    fprintf(stderr, "%s: parse failed (%d %s)\n", shapes[s].name, rc,
                            rc == PX_HTTP1_EMSG ? err.reason : "incomplete");
                    return 1;
                }
                sink += h.num_headers;
            }
            t[k] = (double)(cpu_ns() - t0) / (double)n;
        }
        double ns = median(t, r);
        printf("%-34s %6zu %10.1f %10.0f\n", shapes[s].name, len, ns, (double)len / ns * 1e3);
    }

    /* Re-serialisation of the ~400 B head with two appended fields, buffer reused. */
    const char *txt = shapes[1].text;
    size_t len = strlen(txt);
    if (px_http1_parse_request(txt, len, NULL, hdrs, 100, &h, &err) != (int)len) {
        return 1;
    }
    px_http1_header_t extra[] = {{WF_STR_LIT("X-Forwarded-For"), WF_STR_LIT("10.0.0.7")},
                                 {WF_STR_LIT("X-Forwarded-Proto"), WF_STR_LIT("http")}};
    px_http1_ser_opts_t o = {.extra = extra, .num_extra = 2};
    wf_buf_t out = WF_BUF_INIT;
    for (int k = 0; k < r; k++) {
        int64_t t0 = cpu_ns();
        for (long i = 0; i < n; i++) {
            wf_buf_reset(&out);
            px_http1_serialize_request(&h, &o, &out);
            sink += out.len;
        }
        t[k] = (double)(cpu_ns() - t0) / (double)n;
    }
    printf("%-34s %6zu %10.1f\n", "serialise browser GET (+2 fields)", out.len, median(t, r));
    wf_buf_free(&out);

    /* Chunked framer over a 64 KiB body of 4 KiB chunks, fed in 16 KiB reads. */
    wf_buf_t body = WF_BUF_INIT;
    static char chunk[4096];
    memset(chunk, 'x', sizeof(chunk));
    for (int i = 0; i < 16; i++) {
        wf_buf_printf(&body, "%zx\r\n", sizeof(chunk));
        wf_buf_append(&body, chunk, sizeof(chunk));
        wf_buf_append(&body, "\r\n", 2);
    }
    wf_buf_append(&body, "0\r\n\r\n", 5);
    px_http1_head_t ch;
    memset(&ch, 0, sizeof(ch));
    ch.body = PX_HTTP1_BODY_CHUNKED;
    long bn = n / 100 > 0 ? n / 100 : 1;
    for (int k = 0; k < r; k++) {
        int64_t t0 = cpu_ns();
        for (long i = 0; i < bn; i++) {
            px_http1_body_t b;
            px_http1_body_init(&b, &ch, NULL);
            size_t off = 0;
            while (!px_http1_body_done(&b)) {
                size_t rd = body.len - off < 16384 ? body.len - off : 16384;
                size_t got;
                wf_str_t d;
                if (px_http1_body_feed(&b, (const char *)body.data + off, rd, &got, &d) != 0) {
                    return 1;
                }
                off += got;
                sink += d.len;
            }
        }
        t[k] = (double)(cpu_ns() - t0) / (double)bn;
    }
    double ns = median(t, r);
    printf("%-34s %6zu %10.1f %10.0f\n", "chunked body 64 KiB (ns/body)", body.len, ns,
           (double)body.len / ns * 1e3);
    wf_buf_free(&body);
    (void)sink;
    return 0;
}
