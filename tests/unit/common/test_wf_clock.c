/*
 * test_wf_clock.c - clocks and RFC 3339 formatting (wf_clock.h). The formatter stamps every
 * log line and API answer, so its output is pinned for known instants, including the ones
 * before 1970 and at the ends of the int64 nanosecond range.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <string.h>

#include "wf_clock.h"

static void test_rfc3339_known(void **state)
{
    (void)state;
    static const struct {
        int64_t ns;
        const char *want;
    } cases[] = {
        {0, "1970-01-01T00:00:00.000Z"},
        {999999, "1970-01-01T00:00:00.000Z"},
        {1000000, "1970-01-01T00:00:00.001Z"},
        {999999999, "1970-01-01T00:00:00.999Z"},
        {1764100319123456789, "2025-11-25T19:51:59.123Z"},
        {951782400000000000, "2000-02-29T00:00:00.000Z"},
        {INT64_MAX, "2262-04-11T23:47:16.854Z"},
        /* Before the epoch the fraction still counts forward from the whole second. */
        {-1, "1969-12-31T23:59:59.999Z"},
        {-1000000, "1969-12-31T23:59:59.999Z"},
        {-1000000000, "1969-12-31T23:59:59.000Z"},
        {-1500000000, "1969-12-31T23:59:58.500Z"},
        {INT64_MIN, "1677-09-21T00:12:43.145Z"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[32];
        memset(out, 'x', sizeof(out));
        wf_time_rfc3339(cases[i].ns, out, sizeof(out));
        if (strcmp(out, cases[i].want) != 0) {
            fail_msg("%lld: got %s want %s", (long long)cases[i].ns, out, cases[i].want);
        }
    }
    /* Exactly the documented minimum buffer (24 characters and the NUL) is enough. */
    char exact[25];
    wf_time_rfc3339(0, exact, sizeof(exact));
    assert_string_equal(exact, "1970-01-01T00:00:00.000Z");
    /* A shorter buffer is truncated and terminated, never overrun. */
    char small[8];
    wf_time_rfc3339(0, small, sizeof(small));
    assert_string_equal(small, "1970-01");
}

static void test_clocks(void **state)
{
    (void)state;
    /* The monotonic clock never goes back. */
    int64_t prev = wf_mono_ns();
    assert_true(prev > 0);
    for (int i = 0; i < 10000; i++) {
        int64_t now = wf_mono_ns();
        assert_true(now >= prev);
        prev = now;
    }
    /* Wall clocks are in the right unit and era: after 2020-01-01, before 2200-01-01. */
    int64_t ms = wf_wall_ms();
    assert_true(ms > 1577836800000LL);
    assert_true(ms < 7258118400000LL);
    int64_t ns = wf_wall_ns();
    assert_true(ns > 1577836800000LL * 1000000);
    assert_true(ns < 7258118400000LL * 1000000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc3339_known),
        cmocka_unit_test(test_clocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
