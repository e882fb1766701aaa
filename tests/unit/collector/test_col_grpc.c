/*
 * test_col_grpc.c - the gRPC server (col_grpc.h) in this process on a real socket, with small
 * limits, for what the collector's own test cannot reach: a call echoed with its response
 * message and trailers; a handler's error as a trailers-only answer with the percent-encoded
 * message; a connection beyond max_conns closed at once; an idle connection sent a GOAWAY and
 * closed; a request that never ends answered DEADLINE_EXCEEDED; peers that never read (calls
 * whose answers their window holds back; refused calls by the hundred thousand, whose answers
 * pile up) closed and their handles gone; stopping while a call is in flight lets the call finish
 * with OK.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "col_grpc.h"
#include "wf_alloc.h"
#include "wf_err.h"
#include "wt_h2c.h"
#include "wt_util.h"

#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PATH "/t.Svc/Call"

static atomic_bool sleeping; /* a "sleep" call is in the handler */

/* Echoes the message; "sleep" first waits 600 ms; "fail" answers INVALID_ARGUMENT. */
static void handler(void *arg, const uint8_t *msg, size_t len, col_grpc_reply_t *reply)
{
    (void)arg;
    if (len == 5 && memcmp(msg, "sleep", 5) == 0) {
        atomic_store(&sleeping, true);
        usleep(600 * 1000);
    }
    if (len == 4 && memcmp(msg, "fail", 4) == 0) {
        reply->code = COL_GRPC_INVALID_ARGUMENT;
        snprintf(reply->message, sizeof(reply->message), "bad 100%% \xc3\xa9\n");
        return;
    }
    wf_buf_append(&reply->body, msg, len);
}

typedef struct {
    col_grpc_t *g;
    int port;
} fx_t;

static int start(void **state, int64_t idle_ms, int64_t stream_timeout_ms)
{
    fx_t *f = wf_calloc(1, sizeof(*f));
    col_grpc_options_t o = {.max_message = 1024,
                            .max_conns = 2,
                            .idle_ms = idle_ms,
                            .stream_timeout_ms = stream_timeout_ms};
    assert_int_equal(col_grpc_new(&o, &f->g), 0);
    assert_int_equal(col_grpc_route(f->g, PATH, handler, NULL), 0);
    f->port = wt_free_port();
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", f->port);
    assert_int_equal(col_grpc_listen(f->g, addr), 0);
    assert_int_equal(col_grpc_listen(f->g, "not-an-address"), WF_E_INVAL);
    assert_int_equal(col_grpc_start(f->g), 0);
    *state = f;
    return 0;
}

/* Idle connections closed after 1 s and calls after 300 ms, for the tests of those; the others
 * have neither (on a loaded machine a new connection's first bytes can take longer than a short
 * time to be read). */
static int setup(void **state)
{
    return start(state, 1000, 300);
}

static int setup_no_idle(void **state)
{
    return start(state, 3600 * 1000, 3600 * 1000);
}

static int setup_short_calls(void **state)
{
    return start(state, 3600 * 1000, 300);
}

static int teardown(void **state)
{
    fx_t *f = *state;
    col_grpc_free(f->g);
    wf_free(f);
    return 0;
}

/* Wait until the server closes fd, reading what it sends: how many bytes it sent before
 * closing, or -1 when it did not close within 10 s. */
static long closed_by_server(int fd)
{
    long got = 0;
    for (int i = 0; i < 100; i++) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) > 0) {
            char buf[4096];
            ssize_t n = recv(fd, buf, sizeof(buf), 0);
            if (n <= 0) {
                return got;
            }
            got += n;
        }
    }
    return -1;
}

static void test_echo_and_error(void **state)
{
    fx_t *f = *state;
    wt_h2c_t c;
    assert_int_equal(wt_h2c_open(&c, f->port), 0);
    assert_int_equal(wt_h2c_call(&c, PATH, 0, "hello", 5, &(wt_h2c_opts_t){0}), 0);
    assert_int_equal(c.http_status, 200);
    assert_int_equal(c.grpc_status, 0);
    assert_int_equal(c.body.len, 10);
    assert_memory_equal(c.body.data, "\0\0\0\0\5hello", 10);
    assert_int_equal(wt_h2c_call(&c, PATH, 0, "fail", 4, &(wt_h2c_opts_t){0}), 0);
    assert_int_equal(c.grpc_status, 3);
    assert_string_equal(c.grpc_message, "bad 100%25 %C3%A9%0A");
    assert_int_equal(c.body.len, 0);
    wt_h2c_free(&c);
    wf_buf_t m = WF_BUF_INIT;
    col_grpc_write_metrics(f->g, &m);
    assert_non_null(
        strstr(wf_buf_cstr(&m), "weft_grpc_requests_total{code=\"OK\",method=\"t.Svc/Call\"} 1\n"));
    assert_non_null(
        strstr(wf_buf_cstr(&m), "{code=\"InvalidArgument\",method=\"t.Svc/Call\"} 1\n"));
    wf_buf_free(&m);
}

/* A connection beyond max_conns is closed at once, before the server says anything; once one
 * of the others is gone, a new one is served. (Idle closes are off here: they would free a
 * place at a time a slow machine decides.) */
static void test_max_conns(void **state)
{
    fx_t *f = *state;
    wt_h2c_t a, b, c;
    assert_int_equal(wt_h2c_open(&a, f->port), 0);
    assert_int_equal(wt_h2c_call(&a, PATH, 0, "a", 1, &(wt_h2c_opts_t){0}), 0);
    assert_int_equal(wt_h2c_open(&b, f->port), 0);
    assert_int_equal(wt_h2c_call(&b, PATH, 0, "b", 1, &(wt_h2c_opts_t){0}), 0);
    assert_int_equal(wt_h2c_open(&c, f->port), 0);
    assert_int_equal(closed_by_server(c.fd), 0);
    wt_h2c_free(&c);
    wt_h2c_free(&a);
    /* a's place frees once the server has seen it go. */
    bool served = false;
    for (int i = 0; i < 100 && !served; i++) {
        assert_int_equal(wt_h2c_open(&c, f->port), 0);
        served = wt_h2c_call(&c, PATH, 0, "c", 1, &(wt_h2c_opts_t){0}) == 0 && c.grpc_status == 0;
        wt_h2c_free(&c);
        if (!served) {
            usleep(50 * 1000);
        }
    }
    assert_true(served);
    wt_h2c_free(&b);
}

/* Connections left idle past idle_ms get a GOAWAY (a 17-byte frame) and are closed. */
static void test_idle(void **state)
{
    fx_t *f = *state;
    wt_h2c_t a, b;
    assert_int_equal(wt_h2c_open(&a, f->port), 0);
    assert_int_equal(wt_h2c_call(&a, PATH, 0, "a", 1, &(wt_h2c_opts_t){0}), 0);
    assert_int_equal(wt_h2c_open(&b, f->port), 0);
    assert_int_equal(wt_h2c_call(&b, PATH, 0, "b", 1, &(wt_h2c_opts_t){0}), 0);
    assert_true(closed_by_server(a.fd) >= 17);
    assert_true(closed_by_server(b.fd) >= 17);
    wt_h2c_free(&a);
    wt_h2c_free(&b);
}

/* A request that never ends is answered DEADLINE_EXCEEDED and its stream reset; the
 * connection goes on serving. */
static void test_request_deadline(void **state)
{
    fx_t *f = *state;
    wt_h2c_t c;
    assert_int_equal(wt_h2c_open(&c, f->port), 0);
    assert_int_equal(wt_h2c_call_raw(&c, PATH, (const uint8_t *)"\0\0\0\0\x09part", 9,
                                     &(wt_h2c_opts_t){.keep_open = true}),
                     0);
    assert_int_equal(c.grpc_status, 4);
    assert_non_null(strstr(c.grpc_message, "not complete"));
    assert_int_equal(wt_h2c_call(&c, PATH, 0, "next", 4, &(wt_h2c_opts_t){0}), 0);
    assert_int_equal(c.grpc_status, 0);
    wt_h2c_free(&c);
}

/* A TCP connection to 127.0.0.1:port with a 4 KiB receive buffer, for peers that never read. */
static int connect_slow_reader(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

/* Whether every connection of g is gone (its handle closed) within 15 s. */
static bool connections_gone(col_grpc_t *g)
{
    bool gone = false;
    for (int i = 0; i < 150 && !gone; i++) {
        usleep(100 * 1000);
        wf_buf_t m = WF_BUF_INIT;
        col_grpc_write_metrics(g, &m);
        gone = strstr(wf_buf_cstr(&m), "weft_grpc_connections 0\n") != NULL;
        wf_buf_free(&m);
    }
    return gone;
}

/* Appends an HTTP/2 frame header (length, type, flags, stream) to b. */
static void frame_head(wf_buf_t *b, size_t len, uint8_t type, uint8_t flags, uint32_t stream)
{
    uint8_t h[9] = {(uint8_t)(len >> 16),
                    (uint8_t)(len >> 8),
                    (uint8_t)len,
                    type,
                    flags,
                    (uint8_t)(stream >> 24),
                    (uint8_t)(stream >> 16),
                    (uint8_t)(stream >> 8),
                    (uint8_t)stream};
    wf_buf_append(b, h, 9);
}

/* An HPACK literal header field without indexing, new name (RFC 7541 6.2.2). */
static void hpack_literal(wf_buf_t *b, const char *name, const char *value)
{
    wf_buf_putc(b, 0);
    wf_buf_putc(b, (uint8_t)strlen(name));
    wf_buf_puts(b, name);
    wf_buf_putc(b, (uint8_t)strlen(value));
    wf_buf_puts(b, value);
}

/* A peer that sends calls and never reads the answers: answers its flow-control window holds
 * back are reset after stream_timeout_ms, then the idle connection is closed. The requests are
 * written frame by frame: an HTTP/2 client library would not open more streams while its
 * peer's answers are unread. */
static void test_calls_never_read(void **state)
{
    fx_t *f = *state;
    int fd = connect_slow_reader(f->port);
    wf_buf_t out = WF_BUF_INIT, block = WF_BUF_INIT;
    wf_buf_puts(&out, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    frame_head(&out, 0, 4, 0, 0); /* SETTINGS */
    hpack_literal(&block, ":method", "POST");
    hpack_literal(&block, ":scheme", "http");
    hpack_literal(&block, ":path", PATH);
    hpack_literal(&block, ":authority", "x");
    hpack_literal(&block, "content-type", "application/grpc");
    uint8_t msg[5 + 1000] = {0, 0, 0, 0x03, 0xe8};
    memset(msg + 5, 'x', 1000);
    size_t sent = 0, calls = 0;
    for (uint32_t id = 1; calls < 20000; id += 2, calls++) {
        frame_head(&out, block.len, 1, 4, id); /* HEADERS, END_HEADERS */
        wf_buf_append(&out, block.data, block.len);
        frame_head(&out, sizeof(msg), 0, 1, id); /* DATA, END_STREAM */
        wf_buf_append(&out, msg, sizeof(msg));
        if (out.len < 64 * 1024) {
            continue;
        }
        size_t off = 0;
        for (int tries = 0; off < out.len && tries < 200;) {
            ssize_t n = send(fd, out.data + off, out.len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) {
                off += (size_t)n;
            } else {
                tries++;
                usleep(10 * 1000);
            }
        }
        sent += off;
        if (off < out.len) {
            break; /* the server stopped reading */
        }
        wf_buf_reset(&out);
    }
    printf("sent %zu bytes (%zu calls) without reading an answer\n", sent, calls);
    assert_true(calls > 100);
    wf_buf_free(&out);
    wf_buf_free(&block);
    assert_true(connections_gone(f->g));
    close(fd);
}

/* A peer that sends calls the server refuses from their headers (answers no flow control holds
 * back: PING and SETTINGS ACKs nghttp2 caps itself) and never reads: the server stops reading
 * it once 4 MiB of answers wait, closes it when it turns idle, and closes its handle 5 s later
 * although the answers were never taken (a connection counts until its handle closes). */
static void test_refusals_never_read(void **state)
{
    fx_t *f = *state;
    int fd = connect_slow_reader(f->port);
    wf_buf_t out = WF_BUF_INIT, block = WF_BUF_INIT;
    wf_buf_puts(&out, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    frame_head(&out, 0, 4, 0, 0);
    hpack_literal(&block, ":method", "POST");
    hpack_literal(&block, ":scheme", "http");
    hpack_literal(&block, ":path", "/no.Such/Method");
    hpack_literal(&block, ":authority", "x");
    hpack_literal(&block, "content-type", "application/grpc");
    size_t sent = 0;
    uint32_t id = 1;
    for (int stalls = 0; stalls < 50 && id < 0x7ffffff0u;) {
        while (out.len < 64 * 1024) {
            frame_head(&out, block.len, 1, 4 | 1, id); /* HEADERS, END_HEADERS | END_STREAM */
            wf_buf_append(&out, block.data, block.len);
            id += 2;
        }
        ssize_t n = send(fd, out.data, out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            sent += (size_t)n;
            memmove(out.data, out.data + n, out.len - (size_t)n);
            out.len -= (size_t)n;
        } else {
            stalls++; /* the server is not reading any more */
            usleep(20 * 1000);
        }
    }
    printf("sent %zu bytes (%u calls) without reading an answer\n", sent, (id - 1) / 2);
    wf_buf_free(&out);
    wf_buf_free(&block);
    assert_true(connections_gone(f->g));
    close(fd);
}

static void *slow_call(void *arg)
{
    wt_h2c_t *c = arg;
    wt_h2c_call(c, PATH, 0, "sleep", 5, &(wt_h2c_opts_t){0});
    return NULL;
}

/* Stopping lets a call in flight finish: it is answered OK, then everything closes. */
static void test_stop_with_a_call_in_flight(void **state)
{
    fx_t *f = *state;
    wt_h2c_t c;
    assert_int_equal(wt_h2c_open(&c, f->port), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, slow_call, &c), 0);
    for (int i = 0; i < 1000 && !atomic_load(&sleeping); i++) {
        usleep(10 * 1000);
    }
    assert_true(atomic_load(&sleeping)); /* the call is in the handler's 600 ms */
    col_grpc_stop(f->g);
    pthread_join(t, NULL);
    assert_true(c.done);
    assert_int_equal(c.grpc_status, 0);
    assert_int_equal(c.body.len, 10);
    assert_true(closed_by_server(c.fd) >= 0);
    wt_h2c_free(&c);
    /* Nothing listens any more. */
    wt_h2c_t d;
    assert_int_equal(wt_h2c_open(&d, f->port), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_echo_and_error, setup_no_idle, teardown),
        cmocka_unit_test_setup_teardown(test_max_conns, setup_no_idle, teardown),
        cmocka_unit_test_setup_teardown(test_idle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_deadline, setup_short_calls, teardown),
        cmocka_unit_test_setup_teardown(test_calls_never_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals_never_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_with_a_call_in_flight, setup_no_idle, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
