/*
 * test_wf_err.c - error code names (wf_err.h): every common WF_E_* code has its own sentence,
 * -errno codes get the system's, and anything else is named as unknown rather than crashing or
 * borrowing a wrong name.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "wf_err.h"

static void test_common_codes(void **state)
{
    (void)state;
    assert_string_equal(wf_strerror(0), "success");
    assert_string_equal(wf_strerror(WF_E_INVAL), "invalid argument or input");
    assert_string_equal(wf_strerror(WF_E_LIMIT), "input exceeds a limit");
    assert_string_equal(wf_strerror(WF_E_NOTFOUND), "not found");
    assert_string_equal(wf_strerror(WF_E_UNKNOWN_FLAG), "unknown flag");
    assert_string_equal(wf_strerror(WF_E_CORRUPT), "stored data is corrupt");
    assert_string_equal(wf_strerror(WF_E_INTERNAL), "internal error");

    /* The codes sit in common's range and are distinct. */
    static const int codes[] = {WF_E_INVAL,        WF_E_LIMIT,   WF_E_NOTFOUND,
                                WF_E_UNKNOWN_FLAG, WF_E_CORRUPT, WF_E_INTERNAL};
    size_t n = sizeof(codes) / sizeof(codes[0]);
    for (size_t i = 0; i < n; i++) {
        assert_true(codes[i] <= WF_ERR_BASE && codes[i] > WF_ERR_BASE - 100);
        for (size_t j = i + 1; j < n; j++) {
            assert_int_not_equal(codes[i], codes[j]);
            assert_string_not_equal(wf_strerror(codes[i]), wf_strerror(codes[j]));
        }
    }
}

static void test_errno_codes(void **state)
{
    (void)state;
    static const int errs[] = {EPERM,  ENOENT, EIO,   ENOMEM,    EACCES,  EEXIST,
                               EINVAL, ENOSPC, EPIPE, EOVERFLOW, EBADMSG, ECONNREFUSED};
    for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
        char want[256];
        snprintf(want, sizeof(want), "%s", strerror(errs[i]));
        assert_string_equal(wf_strerror(-errs[i]), want);
    }
    assert_string_equal(wf_strerror(-ENOENT), "No such file or directory");
    assert_string_equal(wf_strerror(-EOVERFLOW), "Value too large for defined data type");
}

static void test_unknown_codes(void **state)
{
    (void)state;
    /* Unassigned codes in common's range, other modules' ranges (their own *_strerror names
     * them), positive numbers and the extremes. */
    static const int unknown[] = {
        WF_E_INTERNAL - 1, -1099, -1100, -1200, -1399, -5000, 1, ENOENT, 1000, INT_MAX, INT_MIN};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        const char *s = wf_strerror(unknown[i]);
        assert_non_null(s);
        assert_string_equal(s, "unknown error code");
    }
    /* Just below WF_ERR_BASE in magnitude is still errno territory, and never NULL. */
    assert_non_null(wf_strerror(-999));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_common_codes),
        cmocka_unit_test(test_errno_codes),
        cmocka_unit_test(test_unknown_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
