/*
 * test_wf_log.c - logfmt output (wf_log.h). Output goes to a pipe through wf_log_set_fd and
 * every line is checked byte for byte (except the timestamp, checked for its shape): the
 * format is read by people and by log pipelines, so it is a contract.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "wf_clock.h"
#include "wf_err.h"
#include "wf_log.h"

typedef struct {
    int rd;
    int wr;
} pipe_t;

static int setup(void **state)
{
    static pipe_t p;
    int fds[2];
    if (pipe(fds) != 0) {
        return -1;
    }
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    p.rd = fds[0];
    p.wr = fds[1];
    wf_log_set_fd(p.wr);
    wf_log_set_level(WF_INFO);
    *state = &p;
    return 0;
}

static int teardown(void **state)
{
    pipe_t *p = *state;
    wf_log_set_fd(2);
    wf_log_set_level(WF_INFO);
    close(p->rd);
    close(p->wr);
    return 0;
}

/* Read everything written so far into out (NUL-terminated); returns the length. */
static size_t drain(void **state, char *out, size_t cap)
{
    pipe_t *p = *state;
    size_t len = 0;
    for (;;) {
        ssize_t n = read(p->rd, out + len, cap - 1 - len);
        if (n <= 0) {
            break;
        }
        len += (size_t)n;
    }
    out[len] = '\0';
    return len;
}

/* Check "ts=YYYY-MM-DDTHH:MM:SS.mmmZ " and return what follows it. */
static const char *skip_ts(const char *line)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ ";
    assert_memory_equal(line, "ts=", 3);
    line += 3;
    for (size_t i = 0; i < sizeof(shape) - 1; i++) {
        if (shape[i] == 'd') {
            if (line[i] < '0' || line[i] > '9') {
                fail_msg("timestamp byte %zu is '%c' in \"%s\"", i, line[i], line);
            }
        } else if (line[i] != shape[i]) {
            fail_msg("timestamp byte %zu is '%c', want '%c'", i, line[i], shape[i]);
        }
    }
    return line + sizeof(shape) - 1;
}

static void test_line_shape(void **state)
{
    char out[8192];
    WF_LOG(WF_WARN, "x", "a \"q\"", "k=%s", "v");
    size_t n = drain(state, out, sizeof(out));
    assert_true(n > 0);
    assert_string_equal(skip_ts(out), "level=warn comp=x msg=\"a \\\"q\\\"\" k=v\n");

    /* No key-values: the line ends after msg. */
    WF_LOG(WF_ERROR, "store", "disk full");
    drain(state, out, sizeof(out));
    assert_string_equal(skip_ts(out), "level=error comp=store msg=\"disk full\"\n");

    WF_LOG(WF_INFO, "proxy", "upstream reset", "upstream=%s attempt=%d", "10.0.0.3:9080", 2);
    drain(state, out, sizeof(out));
    assert_string_equal(skip_ts(out),
                        "level=info comp=proxy msg=\"upstream reset\" upstream=10.0.0.3:9080 "
                        "attempt=2\n");
}

static void test_timestamp_is_now(void **state)
{
    char out[8192];
    char before[32], after[32];
    wf_time_rfc3339(wf_wall_ns(), before, sizeof(before));
    WF_LOG(WF_WARN, "x", "m");
    wf_time_rfc3339(wf_wall_ns(), after, sizeof(after));
    drain(state, out, sizeof(out));
    /* RFC 3339 UTC strings of equal shape sort like the times they name. */
    char ts[32];
    memcpy(ts, out + 3, 24);
    ts[24] = '\0';
    assert_true(strcmp(before, ts) <= 0);
    assert_true(strcmp(ts, after) <= 0);
}

static void test_escaping(void **state)
{
    char out[8192];
    WF_LOG(WF_WARN, "x", "back\\slash\nnew\tline\x01");
    drain(state, out, sizeof(out));
    /* Backslash and newline are escaped, other control bytes become spaces: a message can
     * never break the line or open a field. */
    assert_string_equal(skip_ts(out), "level=warn comp=x msg=\"back\\\\slash\\nnew line \"\n");
    WF_LOG(WF_WARN, "x", "");
    drain(state, out, sizeof(out));
    assert_string_equal(skip_ts(out), "level=warn comp=x msg=\"\"\n");
}

static void test_long_lines_truncated(void **state)
{
    char out[16384];
    char big[5000];
    memset(big, 'm', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';

    /* An enormous message is cut, the line stays one line. */
    WF_LOG(WF_WARN, "x", big);
    size_t n = drain(state, out, sizeof(out));
    assert_true(n <= 2048);
    assert_int_equal(out[n - 1], '\n');
    assert_null(memchr(out, '\n', n - 1));
    assert_null(memchr(out, '\0', n));
    assert_non_null(strstr(out, "msg=\"mmmm"));

    /* Same for enormous key-values. */
    WF_LOG(WF_WARN, "x", "m", "k=%s", big);
    n = drain(state, out, sizeof(out));
    assert_true(n <= 2048);
    assert_int_equal(out[n - 1], '\n');
    assert_null(memchr(out, '\n', n - 1));
    assert_null(memchr(out, '\0', n));
    assert_non_null(strstr(out, "msg=\"m\" k=mmmm"));

    /* And for an absurd component name. */
    WF_LOG(WF_WARN, big, "m");
    n = drain(state, out, sizeof(out));
    assert_true(n <= 2048);
    assert_int_equal(out[n - 1], '\n');
    assert_null(memchr(out, '\n', n - 1));
    assert_null(memchr(out, '\0', n));
}

static int evaluated;

static int count_eval(void)
{
    return ++evaluated;
}

static void test_level_filter(void **state)
{
    char out[8192];
    wf_log_set_level(WF_WARN);
    evaluated = 0;
    WF_LOG(WF_INFO, "x", "info line", "n=%d", count_eval());
    WF_LOG(WF_DEBUG, "x", "debug line", "n=%d", count_eval());
    assert_int_equal(drain(state, out, sizeof(out)), 0);
    /* The level is checked before the arguments are even evaluated. */
    assert_int_equal(evaluated, 0);
    WF_LOG(WF_WARN, "x", "warn line", "n=%d", count_eval());
    WF_LOG(WF_ERROR, "x", "error line");
    assert_int_equal(evaluated, 1);
    drain(state, out, sizeof(out));
    const char *second = strchr(out, '\n');
    assert_non_null(second);
    assert_non_null(strstr(out, "level=warn comp=x msg=\"warn line\" n=1\n"));
    assert_string_equal(skip_ts(second + 1), "level=error comp=x msg=\"error line\"\n");

    wf_log_set_level(WF_ERROR);
    WF_LOG(WF_WARN, "x", "w");
    assert_int_equal(drain(state, out, sizeof(out)), 0);

    wf_log_set_level(WF_DEBUG);
    WF_LOG(WF_DEBUG, "x", "d");
    drain(state, out, sizeof(out));
    assert_string_equal(skip_ts(out), "level=debug comp=x msg=\"d\"\n");
    assert_true(wf_log_enabled(WF_DEBUG));
    wf_log_set_level(WF_INFO);
    assert_false(wf_log_enabled(WF_DEBUG));
    assert_true(wf_log_enabled(WF_INFO));
}

static void test_parse_level(void **state)
{
    (void)state;
    wf_log_level_t l = WF_INFO;
    assert_int_equal(wf_log_parse_level("error", &l), 0);
    assert_int_equal(l, WF_ERROR);
    assert_int_equal(wf_log_parse_level("warn", &l), 0);
    assert_int_equal(l, WF_WARN);
    assert_int_equal(wf_log_parse_level("debug", &l), 0);
    assert_int_equal(l, WF_DEBUG);
    assert_int_equal(wf_log_parse_level("info", &l), 0);
    assert_int_equal(l, WF_INFO);
    assert_int_equal(wf_log_parse_level("warning", &l), WF_E_INVAL);
    assert_int_equal(wf_log_parse_level("", &l), WF_E_INVAL);
    assert_int_equal(wf_log_parse_level("INFO", &l), WF_E_INVAL);
    assert_int_equal(l, WF_INFO);
}

static void test_ratelimit(void **state)
{
    char out[8192];
    wf_log_ratelimit_t rl = {0};
    /* The first call opens a window. The window start is then moved into the future so that
     * the rest of this test stays in one window however slowly it runs. */
    assert_int_equal(wf_log_ratelimit_pass(&rl, 5, WF_WARN, "rl"), 1);
    rl.window_start_ns = wf_mono_ns() + 3600LL * 1000000000;
    int passed = 1;
    for (int i = 0; i < 20; i++) {
        passed += wf_log_ratelimit_pass(&rl, 5, WF_WARN, "rl");
    }
    assert_int_equal(passed, 5);
    assert_int_equal(rl.dropped, 16);
    assert_int_equal(drain(state, out, sizeof(out)), 0); /* dropping is silent until later */

    /* The next window reports the count once and lets lines through again. */
    rl.window_start_ns = wf_mono_ns() - 2LL * 1000000000;
    assert_int_equal(wf_log_ratelimit_pass(&rl, 5, WF_WARN, "rl"), 1);
    drain(state, out, sizeof(out));
    assert_string_equal(skip_ts(out),
                        "level=warn comp=rl msg=\"rate-limited log lines dropped\" dropped=16\n");
    assert_int_equal(rl.dropped, 0);
    rl.window_start_ns = wf_mono_ns() + 3600LL * 1000000000;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(wf_log_ratelimit_pass(&rl, 5, WF_WARN, "rl"), 1);
    }
    assert_int_equal(wf_log_ratelimit_pass(&rl, 5, WF_WARN, "rl"), 0);

    /* A window with nothing dropped says nothing. */
    wf_log_ratelimit_t quiet = {0};
    assert_int_equal(wf_log_ratelimit_pass(&quiet, 5, WF_WARN, "rl"), 1);
    quiet.window_start_ns = wf_mono_ns() - 2LL * 1000000000;
    assert_int_equal(wf_log_ratelimit_pass(&quiet, 5, WF_WARN, "rl"), 1);
    assert_int_equal(drain(state, out, sizeof(out)), 0);

    /* The macro form prints through the same path; its first line always passes. */
    WF_LOG_RL(WF_WARN, 1, "rl", "per request", "id=%d", 7);
    drain(state, out, sizeof(out));
    assert_string_equal(skip_ts(out), "level=warn comp=rl msg=\"per request\" id=7\n");
    /* ...and a disabled level is not counted against the limit. */
    wf_log_set_level(WF_ERROR);
    WF_LOG_RL(WF_WARN, 1, "rl", "off");
    assert_int_equal(drain(state, out, sizeof(out)), 0);
    wf_log_set_level(WF_INFO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_line_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timestamp_is_now, setup, teardown),
        cmocka_unit_test_setup_teardown(test_escaping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_lines_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_level_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_level, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ratelimit, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
