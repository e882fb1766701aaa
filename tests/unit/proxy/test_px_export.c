/*
 * test_px_export.c - the span exporter and the tracing helpers: collector URL to traces
 * endpoint, Istio operation names, authority ports; and the exporter thread against a small
 * in-process HTTP server: batches of at most batch_max spans POSTed as protobuf to /v1/traces,
 * every span sent once, a refused batch counted as failed (not retried), and stop sending what
 * is still queued.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include "px_export.h"
#include "px_tracing.h"
#include "wf_alloc.h"
#include "wf_err.h"

static void test_url(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(px_export_url("http://127.0.0.1:20001", out, sizeof(out)), 0);
    assert_string_equal(out, "http://127.0.0.1:20001/v1/traces");
    assert_int_equal(px_export_url("http://127.0.0.1:20001/", out, sizeof(out)), 0);
    assert_string_equal(out, "http://127.0.0.1:20001/v1/traces");
    assert_int_equal(px_export_url("https://c:4318/v1/traces", out, sizeof(out)), 0);
    assert_string_equal(out, "https://c:4318/v1/traces");
    assert_int_equal(px_export_url("http://c/otlp", out, sizeof(out)), 0);
    assert_string_equal(out, "http://c/otlp/v1/traces");
    assert_int_equal(px_export_url("ftp://c", out, sizeof(out)), WF_E_INVAL);
    assert_int_equal(px_export_url("http://", out, sizeof(out)), WF_E_INVAL);
    assert_int_equal(px_export_url("c:4318", out, sizeof(out)), WF_E_INVAL);
    assert_int_equal(px_export_url("http://127.0.0.1:20001", out, 32), WF_E_LIMIT);
    assert_int_equal(px_export_url("http://127.0.0.1:20001", out, 33), 0);
}

static void test_names(void **state)
{
    (void)state;
    char n[128];
    px_tracing_op_name(n, sizeof(n), wf_str("reviews"), wf_str("bookinfo"), 9080);
    assert_string_equal(n, "reviews.bookinfo.svc.cluster.local:9080/*");
    px_tracing_op_name(n, sizeof(n), wf_str("details"), wf_str(""), 80);
    assert_string_equal(n, "details.default.svc.cluster.local:80/*");
    px_tracing_op_name(n, sizeof(n), wf_str("details.default.svc.cluster.local"), wf_str("x"), 1);
    assert_string_equal(n, "details.default.svc.cluster.local:1/*");
    px_tracing_op_name(n, 10, wf_str("reviews"), wf_str("bookinfo"), 9080);
    assert_string_equal(n, "reviews.b");

    assert_int_equal(px_http1_authority_port(wf_str("a:8080"), 80), 8080);
    assert_int_equal(px_http1_authority_port(wf_str("a"), 80), 80);
    assert_int_equal(px_http1_authority_port(wf_str("a:"), 80), 80);
    assert_int_equal(px_http1_authority_port(wf_str("[::1]:9090"), 80), 9090);
    assert_int_equal(px_http1_authority_port(wf_str("[::1]"), 80), 80);
    assert_int_equal(px_http1_authority_port(wf_str("::1"), 80), 80);
    assert_int_equal(px_http1_authority_port(wf_str("a:65536"), 80), 80);
    assert_int_equal(px_http1_authority_port(wf_str("a:0"), 80), 80);
    assert_int_equal(px_http1_authority_port(wf_str("a:123456"), 80), 80);
    assert_int_equal(px_http1_authority_port(wf_str(""), 80), 80);
}

/* ---- a tiny OTLP/HTTP receiver ---- */

static const uint8_t MARK[16] = {0xde, 0xad, 0xbe, 0xef, 0x10, 0x32, 0x54, 0x76,
                                 0x98, 0xba, 0xdc, 0xfe, 0x01, 0x23, 0x45, 0x67};

typedef struct {
    int lfd, port;
    int stop[2];
    pthread_t thread;
    int status; /* what to answer */
    atomic_int requests;
    atomic_int spans;     /* MARK occurrences over every body */
    atomic_int max_batch; /* most spans in one body */
    atomic_int bad;       /* a request that was not POST /v1/traces protobuf */
} rcv_t;

static size_t count_mark(const uint8_t *p, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i + 16 <= n; i++) {
        if (memcmp(p + i, MARK, 16) == 0) {
            c++;
            i += 15;
        }
    }
    return c;
}

/* Serve one connection: keep-alive requests with Content-Length bodies. */
static void rcv_conn(rcv_t *r, int fd)
{
    char *buf = wf_malloc(1 << 20);
    size_t len = 0;
    for (;;) {
        char *end = NULL;
        while ((end = memmem(buf, len, "\r\n\r\n", 4)) == NULL) {
            ssize_t n = recv(fd, buf + len, (1 << 20) - len, 0);
            if (n <= 0) {
                wf_free(buf);
                return;
            }
            len += (size_t)n;
        }
        size_t hl = (size_t)(end - buf) + 4;
        buf[hl - 1] = '\0';
        const char *cl = strcasestr(buf, "\r\ncontent-length:");
        size_t blen = cl != NULL ? strtoul(cl + 17, NULL, 10) : 0;
        if (strncmp(buf, "POST /v1/traces HTTP/1.1\r\n", 26) != 0 ||
            strcasestr(buf, "\r\ncontent-type: application/x-protobuf\r\n") == NULL) {
            atomic_fetch_add(&r->bad, 1);
        }
        while (len < hl + blen) {
            ssize_t n = recv(fd, buf + len, (1 << 20) - len, 0);
            if (n <= 0) {
                wf_free(buf);
                return;
            }
            len += (size_t)n;
        }
        int spans = (int)count_mark((const uint8_t *)buf + hl, blen);
        atomic_fetch_add(&r->spans, spans);
        if (spans > atomic_load(&r->max_batch)) {
            atomic_store(&r->max_batch, spans);
        }
        atomic_fetch_add(&r->requests, 1);
        char resp[128];
        int rl =
            snprintf(resp, sizeof(resp), "HTTP/1.1 %d X\r\nContent-Length: 2\r\n\r\n{}", r->status);
        if (send(fd, resp, (size_t)rl, MSG_NOSIGNAL) != rl) {
            wf_free(buf);
            return;
        }
        memmove(buf, buf + hl + blen, len - hl - blen);
        len -= hl + blen;
    }
}

static void *rcv_thread(void *arg)
{
    rcv_t *r = arg;
    for (;;) {
        struct pollfd p[2] = {{.fd = r->lfd, .events = POLLIN},
                              {.fd = r->stop[0], .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            continue;
        }
        if (p[1].revents) {
            return NULL;
        }
        int fd = accept(r->lfd, NULL, NULL);
        if (fd >= 0) {
            rcv_conn(r, fd); /* one client at a time is all the exporter makes */
            close(fd);
        }
    }
}

static void rcv_start(rcv_t *r, int status)
{
    memset(r, 0, sizeof(*r));
    r->status = status;
    r->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    assert_int_equal(bind(r->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(r->lfd, 16), 0);
    getsockname(r->lfd, (struct sockaddr *)&a, &len);
    r->port = ntohs(a.sin_port);
    assert_int_equal(pipe(r->stop), 0);
    pthread_create(&r->thread, NULL, rcv_thread, r);
}

static void rcv_stop(rcv_t *r)
{
    assert_int_equal(write(r->stop[1], "x", 1), 1);
    pthread_join(r->thread, NULL);
    close(r->lfd);
    close(r->stop[0]);
    close(r->stop[1]);
}

static px_span_t *test_span(void)
{
    px_trace_ctx_t ctx;
    memset(&ctx, 0, sizeof(ctx));
    memcpy(ctx.trace_id, MARK, 16);
    ctx.span_id[7] = 1;
    ctx.sampled = true;
    px_span_in_t in = {
        .ctx = &ctx,
        .kind = PX_SPAN_SERVER,
        .name = wf_str("reviews.default.svc.cluster.local:9080/*"),
        .start_ns = 1795634004008000000LL,
        .end_ns = 1795634004009000000LL,
        .method = wf_str("GET"),
        .url = wf_str("http://reviews:9080/"),
        .protocol = wf_str("HTTP/1.1"),
        .status = 200,
    };
    return px_span_new(&in);
}

typedef struct {
    rcv_t rcv;
    px_span_queue_t *q[2];
    px_export_t *e;
    char url[64];
} fx_t;

static void fx_start(fx_t *f, int status, int64_t flush_ms, size_t batch)
{
    rcv_start(&f->rcv, status);
    f->q[0] = px_span_queue_new(16);
    f->q[1] = px_span_queue_new(16);
    snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d/v1/traces", f->rcv.port);
    px_export_cfg_t cfg = {
        .url = f->url,
        .flush_ms = flush_ms,
        .batch_max = batch,
        .timeout_ms = 5000,
        .node = {.node_id = WF_STR_LIT("sidecar~127.0.0.1~reviews-v1.default~default.svc.cluster."
                                       "local"),
                 .canonical_service = WF_STR_LIT("reviews"),
                 .canonical_revision = WF_STR_LIT("v1"),
                 .namespace = WF_STR_LIT("default"),
                 .mesh_id = WF_STR_LIT("")},
        .queues = f->q,
        .n_queues = 2,
    };
    assert_int_equal(px_export_start(&f->e, &cfg), 0);
}

static void fx_stop(fx_t *f)
{
    px_export_stop(f->e, 5000);
    px_span_queue_free(f->q[0]);
    px_span_queue_free(f->q[1]);
    rcv_stop(&f->rcv);
}

/* Poll (up to 10 s) until the exporter has accounted for n spans. */
static void wait_accounted(px_export_t *e, uint64_t n, px_export_counters_t *c)
{
    for (int i = 0; i < 1000; i++) {
        px_export_counters(e, c);
        if (c->spans_sent + c->spans_failed >= n) {
            return;
        }
        usleep(10 * 1000);
    }
    fail_msg("the exporter accounted for %llu of %llu spans",
             (unsigned long long)(c->spans_sent + c->spans_failed), (unsigned long long)n);
}

static void test_export_batches(void **state)
{
    (void)state;
    fx_t f;
    fx_start(&f, 200, 50, 4);
    for (int i = 0; i < 5; i++) {
        assert_true(px_span_queue_push(f.q[0], test_span()));
    }
    for (int i = 0; i < 3; i++) {
        assert_true(px_span_queue_push(f.q[1], test_span()));
    }
    px_export_counters_t c;
    wait_accounted(f.e, 8, &c);
    assert_int_equal(c.spans_sent, 8);
    assert_int_equal(c.spans_failed, 0);
    assert_true(c.batches_sent >= 2);
    assert_int_equal(c.batches_failed, 0);
    assert_int_equal(atomic_load(&f.rcv.spans), 8);
    assert_int_equal(atomic_load(&f.rcv.requests), (int)c.batches_sent);
    assert_true(atomic_load(&f.rcv.max_batch) <= 4);
    assert_int_equal(atomic_load(&f.rcv.bad), 0);
    fx_stop(&f);
}

static void test_export_refused(void **state)
{
    (void)state;
    fx_t f;
    fx_start(&f, 503, 50, 512);
    for (int i = 0; i < 3; i++) {
        assert_true(px_span_queue_push(f.q[1], test_span()));
    }
    px_export_counters_t c;
    wait_accounted(f.e, 3, &c);
    assert_int_equal(c.spans_sent, 0);
    assert_int_equal(c.spans_failed, 3);
    assert_true(c.batches_failed >= 1);
    /* Not retried: the receiver saw each span once. */
    assert_int_equal(atomic_load(&f.rcv.spans), 3);
    fx_stop(&f);
}

static void test_stop_sends_queued(void **state)
{
    (void)state;
    fx_t f;
    fx_start(&f, 200, 600000, 512); /* no timed flush during the test */
    for (int i = 0; i < 3; i++) {
        assert_true(px_span_queue_push(f.q[0], test_span()));
    }
    px_export_t *e = f.e;
    px_export_stop(e, 5000);
    f.e = NULL;
    assert_int_equal(atomic_load(&f.rcv.spans), 3);
    assert_int_equal(atomic_load(&f.rcv.requests), 1);
    px_export_stop(NULL, 0); /* a no-op */
    px_span_queue_free(f.q[0]);
    px_span_queue_free(f.q[1]);
    rcv_stop(&f.rcv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_export_batches),
        cmocka_unit_test(test_export_refused),
        cmocka_unit_test(test_stop_sends_queued),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
