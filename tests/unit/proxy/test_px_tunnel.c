/*
 * test_px_tunnel.c - the byte pump on its own: two transports over socketpairs, driven by the
 * test from the far ends. Order (leftover bytes first), byte counts, half-close in each
 * direction and the clean end, backpressure (the write queue stays under the mark while the
 * reader is away, and every byte arrives once it reads), the idle timeout, and giving the
 * transports back (callbacks restored).
 */
#include "px_tunnel.h"

#include "wf_alloc.h"
#include "wf_buf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

typedef struct {
    uv_loop_t loop;
    px_transport_t down, up;
    int client, server; /* the far ends: the downstream client and the upstream server */
    int closed;
    bool done;
    px_tunnel_stats_t st;
    px_tunnel_t *tn;
} fx_t;

static void owner_alloc(px_transport_t *t, size_t s, uv_buf_t *b)
{
    (void)t;
    (void)s;
    (void)b;
    fail_msg("the owner's callbacks ran while the tunnel held the transport");
}

static void owner_read(px_transport_t *t, ssize_t n, const uv_buf_t *b)
{
    (void)t;
    (void)n;
    (void)b;
    fail_msg("the owner's callbacks ran while the tunnel held the transport");
}

static void owner_closed(px_transport_t *t)
{
    fx_t *f = t->owner;
    f->closed++;
}

static const px_transport_cbs_t owner_cbs = {
    .on_alloc = owner_alloc,
    .on_read = owner_read,
    .on_written = NULL,
    .on_connect = NULL,
    .on_closed = owner_closed,
};

static void on_done(void *arg, const px_tunnel_stats_t *st)
{
    fx_t *f = arg;
    f->done = true;
    f->st = *st;
    f->tn = NULL;
    /* The transports are the owner's again. */
    assert_ptr_equal(f->down.cbs, &owner_cbs);
    assert_ptr_equal(f->up.owner, f);
    px_transport_close(&f->down);
    px_transport_close(&f->up);
}

static void open_pair(fx_t *f, px_transport_t *t, int *far)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(px_transport_init(&f->loop, t, &owner_cbs, f), 0);
    assert_int_equal(uv_tcp_open(&t->tcp, sv[0]), 0);
    fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK);
    *far = sv[1];
}

static fx_t *fx_new(const char *to_up, const char *to_down, uint64_t idle_ms)
{
    fx_t *f = wf_calloc(1, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    open_pair(f, &f->down, &f->client);
    open_pair(f, &f->up, &f->server);
    px_tunnel_opts_t o = {
        .to_up = wf_str(to_up),
        .to_down = wf_str(to_down),
        .idle_ms = idle_ms,
        .done = on_done,
        .arg = f,
    };
    f->tn = px_tunnel_start(&f->loop, &f->down, &f->up, &o);
    assert_non_null(f->tn);
    return f;
}

static void fx_free(fx_t *f)
{
    if (f->tn != NULL) {
        px_tunnel_free(f->tn);
        assert_ptr_equal(f->down.cbs, &owner_cbs);
        px_transport_close(&f->down);
        px_transport_close(&f->up);
    }
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->closed, 2);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    close(f->client);
    close(f->server);
    wf_free(f);
}

static void spin(fx_t *f)
{
    for (int i = 0; i < 4; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
    }
}

/* Read from fd until want bytes arrived (running the loop in between) or it closed (*eof). */
static size_t read_some(fx_t *f, int fd, wf_buf_t *out, size_t want, bool *eof)
{
    size_t got = 0;
    *eof = false;
    for (int idle = 0; got < want && idle < 2000;) {
        uint8_t *p = wf_buf_reserve(out, 65536);
        ssize_t n = read(fd, p, 65536);
        if (n > 0) {
            out->len += (size_t)n;
            got += (size_t)n;
            idle = 0;
            continue;
        }
        if (n == 0 || (n < 0 && errno == ECONNRESET)) {
            *eof = true; /* closed, or reset: either way the connection is gone */
            break;
        }
        assert_true(errno == EAGAIN);
        spin(f);
        idle++;
    }
    return got;
}

static void expect(fx_t *f, int fd, const char *want)
{
    wf_buf_t b = {0};
    bool eof;
    assert_int_equal(read_some(f, fd, &b, strlen(want), &eof), strlen(want));
    assert_memory_equal(b.data, want, strlen(want));
    wf_buf_free(&b);
}

static void expect_eof(fx_t *f, int fd)
{
    wf_buf_t b = {0};
    bool eof;
    assert_int_equal(read_some(f, fd, &b, 1, &eof), 0);
    assert_true(eof);
    wf_buf_free(&b);
}

static void test_order_counts_half_close(void **state)
{
    (void)state;
    fx_t *f = fx_new("early-up", "early-down", 0);
    assert_int_equal(write(f->client, "abc", 3), 3);
    expect(f, f->server, "early-upabc");
    expect(f, f->client, "early-down");
    assert_int_equal(write(f->server, "0123456789", 10), 10);
    expect(f, f->client, "0123456789");
    /* The client half-closes: the server sees EOF, and can still answer. */
    shutdown(f->client, SHUT_WR);
    expect_eof(f, f->server);
    assert_false(f->done);
    assert_int_equal(write(f->server, "late", 4), 4);
    expect(f, f->client, "late");
    shutdown(f->server, SHUT_WR);
    expect_eof(f, f->client);
    spin(f);
    assert_true(f->done);
    assert_int_equal(f->st.end, PX_TUNNEL_CLOSED);
    assert_int_equal(f->st.down_to_up, 8 + 3);
    assert_int_equal(f->st.up_to_down, 10 + 10 + 4);
    fx_free(f);
}

static void test_backpressure(void **state)
{
    (void)state;
    fx_t *f = fx_new("", "", 0);
    /* Write as much as the client can while the server reads nothing. */
    const size_t total = (size_t)8 << 20;
    char *data = wf_malloc(total);
    for (size_t i = 0; i < total; i++) {
        data[i] = (char)(i * 31 + 7);
    }
    size_t sent = 0;
    for (int stalls = 0; sent < total && stalls < 200;) {
        ssize_t n = write(f->client, data + sent, total - sent);
        if (n > 0) {
            sent += (size_t)n;
            stalls = 0;
        } else {
            spin(f);
            stalls++;
        }
        assert_true(px_transport_queued(&f->up) < PX_TUNNEL_HWM + 65536);
    }
    /* Everything on the way is full: the tunnel stopped reading, the client is blocked. */
    assert_true(sent < total);
    assert_true(px_transport_queued(&f->up) >= PX_TUNNEL_HWM);
    /* The server reads: the rest flows, byte-exact. */
    wf_buf_t got = {0};
    bool eof = false;
    while (got.len < total && !eof) {
        ssize_t n = write(f->client, data + sent, total - sent);
        if (n > 0) {
            sent += (size_t)n;
        }
        read_some(f, f->server, &got, 1, &eof);
        assert_true(px_transport_queued(&f->up) < PX_TUNNEL_HWM + 65536);
    }
    assert_int_equal(got.len, total);
    assert_memory_equal(got.data, data, total);
    assert_int_equal(f->st.down_to_up, 0); /* still running: stats come at the end */
    px_tunnel_stats_t st;
    px_tunnel_stats(f->tn, &st);
    assert_int_equal(st.down_to_up, total);
    wf_buf_free(&got);
    wf_free(data);
    fx_free(f);
}

static void test_idle_timeout(void **state)
{
    (void)state;
    fx_t *f = fx_new("", "", 30);
    assert_int_equal(write(f->client, "x", 1), 1);
    expect(f, f->server, "x");
    uv_run(&f->loop, UV_RUN_DEFAULT); /* the timer ends it, the owner closes both */
    assert_true(f->done);
    assert_int_equal(f->st.end, PX_TUNNEL_IDLE);
    assert_int_equal(f->st.down_to_up, 1);
    expect_eof(f, f->client);
    fx_free(f);
}

static void test_reset(void **state)
{
    (void)state;
    fx_t *f = fx_new("", "", 0);
    /* The server goes away with unread bytes: its end resets, the tunnel ends with an error
     * and the client sees its connection closed. */
    assert_int_equal(write(f->client, "abc", 3), 3);
    spin(f);
    close(f->server);
    assert_int_equal(write(f->client, "more", 4), 4);
    for (int i = 0; i < 200 && !f->done; i++) {
        spin(f);
    }
    assert_true(f->done);
    assert_int_equal(f->st.end, PX_TUNNEL_RESET);
    assert_false(f->st.down_err);
    expect_eof(f, f->client);
    f->server = dup(f->client); /* fx_free closes both numbers */
    fx_free(f);
}

static void test_free_gives_back(void **state)
{
    (void)state;
    fx_t *f = fx_new("", "", 1000);
    assert_int_equal(write(f->client, "abc", 3), 3);
    expect(f, f->server, "abc");
    px_tunnel_free(f->tn);
    f->tn = NULL;
    assert_ptr_equal(f->down.cbs, &owner_cbs);
    assert_ptr_equal(f->up.cbs, &owner_cbs);
    assert_ptr_equal(f->down.owner, f);
    assert_false(f->down.reading);
    assert_false(f->done);
    px_transport_close(&f->down);
    px_transport_close(&f->up);
    fx_free(f);
    /* done never ran */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_counts_half_close),
        cmocka_unit_test(test_backpressure),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_free_gives_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
