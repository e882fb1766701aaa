/*
 * test_collector_grpc.c - OTLP/gRPC of a real `weft collector` (--otlp-grpc-listen), spoken to by
 * an HTTP/2 client made with libnghttp2 in this test, so that every malformed and hostile case
 * can be sent: unknown methods, plain HTTP/2 requests, unsupported encodings, messages above the
 * limit (refused from the prefix alone, before the data), gzip bombs, truncated and doubled
 * messages, compressed flags without gzip, corrupt gzip, malformed protobuf, garbage instead of
 * HTTP/2; each gets its gRPC status, the collector keeps serving, and a good call stores its
 * span. With --users and --auth-ingest, calls need a Bearer token or Basic credentials. The
 * real OpenTelemetry SDK's gRPC exporters are run by test_otel_js.
 */
#include "wf_alloc.h"
#include "wf_buf.h"
#include "wf_clock.h"
#include "wt_h2c.h"
#include "wt_rw.h"
#include "wt_util.h"

#include <arpa/inet.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define TRACES "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
#define METRICS "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
/* sha256("grpc_test_token") */
#define TOKEN_SHA "ff445aa472d70226c854f912b547de4fc1a7896d72355223fba7bebf7cf192ff"
/* bcrypt (cost 4) of "correct horse"; base64 of "alice:correct horse" */
#define ALICE "$2b$04$fXutLuE9QllZhWPvrtqH6O6hIw6cBJt9.CDrhZOc5mehR7w2eN3aq"
#define B_ALICE "YWxpY2U6Y29ycmVjdCBob3JzZQ=="
#define B_ALICE_WRONG "YWxpY2U6bm9wZQ==" /* alice:nope */

/* ---- an OTLP request ------------------------------------------------------------------------ */

/* A sub-message into field num of b. */
static void pb_sub(wf_buf_t *b, unsigned num, const wf_buf_t *sub)
{
    wt_pb_bytes(b, num, sub->data, sub->len);
}

/* ExportTraceServiceRequest with one span of service svc, trace id 0x11.., span id 0x22.. */
static void traces_request(wf_buf_t *out, const char *svc, const char *span_name)
{
    wf_buf_t kv = WF_BUF_INIT, val = WF_BUF_INIT, res = WF_BUF_INIT, span = WF_BUF_INIT,
             ss = WF_BUF_INIT, rs = WF_BUF_INIT;
    wt_pb_bytes(&val, 1, svc, strlen(svc)); /* AnyValue.string_value */
    wt_pb_bytes(&kv, 1, "service.name", 12);
    pb_sub(&kv, 2, &val);
    pb_sub(&res, 1, &kv); /* Resource.attributes */
    uint8_t tid[16], sid[8];
    memset(tid, 0x11, sizeof(tid));
    memset(sid, 0x22, sizeof(sid));
    int64_t now_ns = wf_wall_ns();
    wt_pb_bytes(&span, 1, tid, 16);
    wt_pb_bytes(&span, 2, sid, 8);
    wt_pb_bytes(&span, 5, span_name, strlen(span_name));
    wt_pb_fixed64(&span, 7, (uint64_t)now_ns);
    wt_pb_fixed64(&span, 8, (uint64_t)now_ns + 1000000);
    pb_sub(&ss, 2, &span); /* ScopeSpans.spans */
    pb_sub(&rs, 1, &res);  /* ResourceSpans.resource */
    pb_sub(&rs, 2, &ss);   /* ResourceSpans.scope_spans */
    pb_sub(out, 1, &rs);   /* ExportTraceServiceRequest.resource_spans */
    wf_buf_free(&kv);
    wf_buf_free(&val);
    wf_buf_free(&res);
    wf_buf_free(&span);
    wf_buf_free(&ss);
    wf_buf_free(&rs);
}

/* ---- the collector -------------------------------------------------------------------------- */

static char *dir;

typedef struct {
    pid_t pid;
    int port, grpc;
} collector_t;

static void start(collector_t *c, const char *label, const char *users)
{
    c->port = wt_free_port();
    c->grpc = wt_free_port();
    char listen[64], grpc[64], data[600], log[600];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", c->port);
    snprintf(grpc, sizeof(grpc), "127.0.0.1:%d", c->grpc);
    snprintf(data, sizeof(data), "%s/data-%s", dir, label);
    snprintf(log, sizeof(log), "%s/%s.log", dir, label);
    char *argv[20] = {(char *)wt_weft_bin(), "collector", "--listen",           listen,
                      "--data-dir",          data,        "--otlp-listen",      "off",
                      "--zipkin-listen",     "off",       "--otlp-grpc-listen", grpc};
    int n = 12;
    if (users != NULL) {
        argv[n++] = "--users";
        argv[n++] = (char *)users;
        argv[n++] = "--auth-ingest";
    }
    argv[n] = NULL;
    c->pid = wt_spawn(argv, log);
    assert_true(wt_wait_port(c->port, 20000));
    assert_true(wt_wait_port(c->grpc, 20000));
}

static void stop(collector_t *c)
{
    int st = wt_stop(c->pid, 20000);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

/* The number of spans named name the Jaeger API finds for service svc. */
static int spans_named(int port, const char *svc, const char *name)
{
    char path[256], *body = NULL;
    snprintf(path, sizeof(path), "/api/traces?service=%s&lookback=1h", svc);
    int st = wt_http(port, "GET", path, NULL, 0, &body);
    int n = 0;
    char want[128];
    snprintf(want, sizeof(want), "\"operationName\":\"%s\"", name);
    for (const char *p = body; st == 200 && p != NULL && (p = strstr(p, want)) != NULL; p++) {
        n++;
    }
    wf_free(body);
    return n;
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_calls(void **state)
{
    (void)state;
    collector_t col;
    start(&col, "calls", NULL);
    wt_h2c_t c;
    assert_int_equal(wt_h2c_open(&c, col.grpc), 0);
    wt_h2c_opts_t plain = {0};

    /* A good call: OK with an empty ExportTraceServiceResponse, and the span is stored. */
    wf_buf_t req = WF_BUF_INIT;
    traces_request(&req, "grpc-svc", "good-call");
    wt_h2c_call(&c, TRACES, 0, req.data, req.len, &plain);
    assert_true(c.done);
    assert_int_equal(c.http_status, 200);
    assert_int_equal(c.grpc_status, 0);
    assert_int_equal(c.body.len, 5); /* the prefix of an empty message */
    assert_int_equal(spans_named(col.port, "grpc-svc", "good-call"), 1);

    /* The same gzip-compressed (flag 1, grpc-encoding gzip) on the same connection. */
    wf_buf_t gz = WF_BUF_INIT;
    wf_buf_t req2 = WF_BUF_INIT;
    traces_request(&req2, "grpc-svc", "gzip-call");
    wt_gzip(req2.data, req2.len, &gz);
    wt_h2c_call(&c, TRACES, 1, gz.data, gz.len, &(wt_h2c_opts_t){.encoding = "gzip"});
    assert_int_equal(c.grpc_status, 0);
    assert_int_equal(spans_named(col.port, "grpc-svc", "gzip-call"), 1);

    /* Unknown method; logs are not served. */
    wt_h2c_call(&c, "/opentelemetry.proto.collector.logs.v1.LogsService/Export", 0, req.data,
                req.len, &plain);
    assert_int_equal(c.grpc_status, 12);
    assert_non_null(strstr(c.grpc_message, "unknown method"));
    /* Not gRPC: a GET, another content type. */
    wt_h2c_call(&c, TRACES, 0, req.data, req.len, &(wt_h2c_opts_t){.method = "GET"});
    assert_int_equal(c.http_status, 405);
    wt_h2c_call(&c, TRACES, 0, req.data, req.len,
                &(wt_h2c_opts_t){.content_type = "application/json"});
    assert_int_equal(c.http_status, 415);
    assert_int_equal(c.grpc_status, -1);
    /* application/grpc+proto is gRPC. */
    wt_h2c_call(&c, TRACES, 0, req.data, req.len,
                &(wt_h2c_opts_t){.content_type = "application/grpc+proto"});
    assert_int_equal(c.grpc_status, 0);
    /* An encoding the server does not have. */
    wt_h2c_call(&c, TRACES, 1, gz.data, gz.len, &(wt_h2c_opts_t){.encoding = "snappy"});
    assert_int_equal(c.grpc_status, 12);
    assert_non_null(strstr(c.accept_encoding, "gzip"));

    /* Framing violations: INTERNAL. */
    wt_h2c_call(&c, TRACES, 1, req.data, req.len, &plain); /* compressed flag, no encoding */
    assert_int_equal(c.grpc_status, 13);
    assert_non_null(strstr(c.grpc_message, "compressed flag"));
    wt_h2c_call(&c, TRACES, 2, req.data, req.len, &plain); /* a flag that does not exist */
    assert_int_equal(c.grpc_status, 13);
    wt_h2c_call(&c, TRACES, 1, req.data, req.len,
                &(wt_h2c_opts_t){.encoding = "gzip"}); /* not gzip */
    assert_int_equal(c.grpc_status, 13);
    assert_non_null(strstr(c.grpc_message, "decompress"));
    wf_buf_t two = WF_BUF_INIT;
    wt_grpc_frame(&two, 0, req.data, req.len);
    wt_grpc_frame(&two, 0, req.data, req.len);
    wt_h2c_call_raw(&c, TRACES, two.data, two.len, &plain);
    assert_int_equal(c.grpc_status, 13);
    assert_non_null(strstr(c.grpc_message, "more than one"));
    wt_h2c_call_raw(&c, TRACES, two.data, req.len / 2, &plain); /* truncated */
    assert_int_equal(c.grpc_status, 13);
    assert_non_null(strstr(c.grpc_message, "truncated"));
    wt_h2c_call_raw(&c, TRACES, two.data, 3, &plain); /* not even a prefix */
    assert_int_equal(c.grpc_status, 13);
    wt_h2c_call_raw(&c, TRACES, NULL, 0, &plain); /* no body at all */
    assert_int_equal(c.grpc_status, 13);

    /* Malformed protobuf: INVALID_ARGUMENT, with OTLP/HTTP's reason; also for metrics, whose
     * OTLP/HTTP answer is a google.rpc.Status (its message is passed on). */
    static const uint8_t junk[] = {0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01};
    wt_h2c_call(&c, TRACES, 0, junk, sizeof(junk), &plain);
    assert_int_equal(c.grpc_status, 3);
    assert_true(strlen(c.grpc_message) > 5);
    wt_h2c_call(&c, METRICS, 0, junk, sizeof(junk), &plain);
    assert_int_equal(c.grpc_status, 3);
    assert_true(strlen(c.grpc_message) > 5);
    assert_null(strchr(c.grpc_message, '\x08')); /* text, not the Status's bytes */
    /* An empty message is a valid, empty export. */
    wt_h2c_call(&c, METRICS, 0, "", 0, &plain);
    assert_int_equal(c.grpc_status, 0);

    /* Too large, from the prefix alone: answered while the client still sends (the request
     * stays open here), then the stream is reset. */
    uint8_t big[5] = {0, 0x04, 0, 0, 0}; /* 64 MiB announced */
    wt_h2c_call_raw(&c, TRACES, big, 5, &(wt_h2c_opts_t){.keep_open = true});
    assert_true(c.done);
    assert_int_equal(c.grpc_status, 8);
    assert_non_null(strstr(c.grpc_message, "larger than max"));
    /* A gzip bomb: 40 MiB of zeros in some 40 KiB: refused after inflating 32 MiB. */
    size_t bomb_n = (size_t)40 << 20;
    uint8_t *zeros = wf_calloc(1, bomb_n);
    wf_buf_t bomb = WF_BUF_INIT;
    wt_gzip(zeros, bomb_n, &bomb);
    wf_free(zeros);
    assert_true(bomb.len < 100000);
    wt_h2c_call(&c, TRACES, 1, bomb.data, bomb.len, &(wt_h2c_opts_t){.encoding = "gzip"});
    assert_int_equal(c.grpc_status, 8);
    assert_non_null(strstr(c.grpc_message, "decompression"));
    wf_buf_free(&bomb);

    /* The connection took all of that and still serves. */
    assert_false(c.conn_closed);
    wt_h2c_call(&c, TRACES, 0, req.data, req.len, &plain);
    assert_int_equal(c.grpc_status, 0);
    wt_h2c_free(&c);

    /* Counted per method and code. */
    char *m = NULL;
    assert_int_equal(wt_http(col.port, "GET", "/metrics", NULL, 0, &m), 200);
    assert_non_null(strstr(m, "weft_grpc_requests_total{code=\"OK\",method=\"opentelemetry.proto."
                              "collector.trace.v1.TraceService/Export\"} 4"));
    assert_non_null(
        strstr(m, "weft_grpc_requests_total{code=\"Unimplemented\",method=\"other\"} 1"));
    wf_free(m);

    wf_buf_free(&req);
    wf_buf_free(&req2);
    wf_buf_free(&gz);
    wf_buf_free(&two);
    stop(&col);
}

/* Bytes that are not HTTP/2, and HTTP/2 that breaks the protocol: the connection ends (a GOAWAY
 * where there is a session to send it), and the collector serves the next one. */
static void test_hostile_connections(void **state)
{
    (void)state;
    collector_t col;
    start(&col, "hostile", NULL);
#define J(s)                                                                                       \
    {                                                                                              \
        s, sizeof(s) - 1                                                                           \
    }
    static const struct {
        const char *p;
        size_t n;
    } junk[] = {
        /* HTTP/1.1 */
        J("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        /* the preface, then a WINDOW_UPDATE where SETTINGS must come first */
        J("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x04\x08\x00\x00\x00\x00\x00\x00\x00\x00\x01"),
        /* SETTINGS, then a HEADERS frame of 16 MiB - 1 (above the frame size limit) */
        J("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"
          "\xff\xff\xff\x01\x05\x00\x00\x00\x01"),
        /* SETTINGS, then DATA on a stream never opened */
        J("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"
          "\x00\x00\x02\x00\x01\x00\x00\x00\x07"
          "ab"),
    };
#undef J
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)col.grpc)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
        assert_int_equal(send(fd, junk[i].p, junk[i].n, MSG_NOSIGNAL), (ssize_t)junk[i].n);
        /* Read until the server closes: it must, within the 10 s. */
        bool closed = false;
        for (int64_t end = wf_mono_ns() / 1000000 + 10000;
             !closed && wf_mono_ns() / 1000000 < end;) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            if (poll(&p, 1, 100) > 0) {
                char buf[4096];
                closed = recv(fd, buf, sizeof(buf), 0) <= 0;
            }
        }
        printf("junk %zu: connection closed by the server: %s\n", i, closed ? "yes" : "no");
        assert_true(closed);
        close(fd);
    }
    wt_h2c_t c;
    assert_int_equal(wt_h2c_open(&c, col.grpc), 0);
    wf_buf_t req = WF_BUF_INIT;
    traces_request(&req, "after-junk", "still-serving");
    wt_h2c_call(&c, TRACES, 0, req.data, req.len, &(wt_h2c_opts_t){0});
    assert_int_equal(c.grpc_status, 0);
    wt_h2c_free(&c);
    wf_buf_free(&req);
    stop(&col);
}

static void test_auth(void **state)
{
    (void)state;
    char users[700];
    snprintf(users, sizeof(users), "%s/users", dir);
    wt_write_file(users, "alice:" ALICE "\nagent:$weft-token-sha256$" TOKEN_SHA "\n");
    collector_t col;
    start(&col, "auth", users);
    wt_h2c_t c;
    assert_int_equal(wt_h2c_open(&c, col.grpc), 0);
    wf_buf_t req = WF_BUF_INIT;
    traces_request(&req, "authed", "with-token");
    wt_h2c_call(&c, TRACES, 0, req.data, req.len, &(wt_h2c_opts_t){0});
    assert_int_equal(c.grpc_status, 16);
    assert_non_null(strstr(c.grpc_message, "authentication required"));
    wt_h2c_call(&c, TRACES, 0, req.data, req.len,
                &(wt_h2c_opts_t){.authorization = "Bearer wrong"});
    assert_int_equal(c.grpc_status, 16);
    assert_non_null(strstr(c.grpc_message, "invalid token"));
    wt_h2c_call(&c, TRACES, 0, req.data, req.len, &(wt_h2c_opts_t){.authorization = "Digest x"});
    assert_int_equal(c.grpc_status, 16);
    wt_h2c_call(&c, TRACES, 0, req.data, req.len,
                &(wt_h2c_opts_t){.authorization = "Bearer grpc_test_token"});
    assert_int_equal(c.grpc_status, 0);
    wt_h2c_call(&c, TRACES, 0, req.data, req.len,
                &(wt_h2c_opts_t){.authorization = "Basic " B_ALICE});
    assert_int_equal(c.grpc_status, 0);
    /* Wrong passwords: refused, until the failed-login limiter locks the name out; then the
     * answer is UNAVAILABLE, which exporters retry (HTTP answers 429 then). */
    int last = -1;
    for (int i = 0; i < 8 && last != 14; i++) {
        wt_h2c_call(&c, TRACES, 0, req.data, req.len,
                    &(wt_h2c_opts_t){.authorization = "Basic " B_ALICE_WRONG});
        last = c.grpc_status;
        assert_true(last == 16 || last == 14);
    }
    assert_int_equal(last, 14);
    assert_non_null(strstr(c.grpc_message, "too many failed logins"));
    wt_h2c_free(&c);
    wf_buf_free(&req);
    stop(&col);
}

static int setup(void **state)
{
    (void)state;
    dir = wt_tmpdir("colgrpc");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    wt_rm_rf(dir);
    wf_free(dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_calls),
        cmocka_unit_test(test_hostile_connections),
        cmocka_unit_test(test_auth),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
