/*
 * test_col_grpc.c - the gRPC server (col_grpc.h) in this process on a real socket, with small
 * limits, for what the collector's own test cannot reach: a call echoed with its response
 * message and trailers; a connection beyond max_conns closed at once; an idle connection sent a
 * GOAWAY and closed; stopping while a call is in flight lets the call finish with OK; a handler
 * that answers an error gets a trailers-only answer with the percent-encoded message.
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

static int setup(void **state)
{
    fx_t *f = wf_calloc(1, sizeof(*f));
    col_grpc_options_t o = {
        .max_message = 1024, .max_conns = 2, .idle_ms = 300, .stream_timeout_ms = 300};
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

static void test_max_conns_and_idle(void **state)
{
    fx_t *f = *state;
    wt_h2c_t a, b, c;
    assert_int_equal(wt_h2c_open(&a, f->port), 0);
    assert_int_equal(wt_h2c_call(&a, PATH, 0, "a", 1, &(wt_h2c_opts_t){0}), 0);
    assert_int_equal(wt_h2c_open(&b, f->port), 0);
    assert_int_equal(wt_h2c_call(&b, PATH, 0, "b", 1, &(wt_h2c_opts_t){0}), 0);
    /* A third connection is over max_conns: closed at once, before the server says anything
     * (an idle close would come after its SETTINGS and a GOAWAY). */
    assert_int_equal(wt_h2c_open(&c, f->port), 0);
    assert_int_equal(closed_by_server(c.fd), 0);
    wt_h2c_free(&c);
    /* The first two, left idle past idle_ms, get a GOAWAY (a 17-byte frame) and are closed. */
    assert_true(closed_by_server(a.fd) >= 17);
    assert_true(closed_by_server(b.fd) >= 17);
    wt_h2c_free(&a);
    wt_h2c_free(&b);
    /* Their places are free again. */
    assert_int_equal(wt_h2c_open(&a, f->port), 0);
    assert_int_equal(wt_h2c_call(&a, PATH, 0, "again", 5, &(wt_h2c_opts_t){0}), 0);
    assert_int_equal(a.grpc_status, 0);
    wt_h2c_free(&a);
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
        cmocka_unit_test_setup_teardown(test_echo_and_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_conns_and_idle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_with_a_call_in_flight, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
