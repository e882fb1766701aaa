/*
 * test_cp_token.c - unit tests of the bearer tokens (controlplane/cp_token.c): a token file
 * created 0600 with 64 hex digits and read back unchanged on the next start, hand-written
 * tokens trimmed or refused, fresh tokens differing, and the comparisons.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cp_token.h"
#include "wf_alloc.h"
#include "wf_err.h"
#include "wt_util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static void test_tokens(void **state)
{
    char *dir = wt_tmpdir("cptok");
    char path[512], tok[CP_TOKEN_MAX_LEN + 1], again[CP_TOKEN_MAX_LEN + 1];
    struct stat st;
    snprintf(path, sizeof(path), "%s/admin-token", dir);
    assert_int_equal(cp_token_load(path, false, tok), -ENOENT);
    assert_int_equal(cp_token_load(path, true, tok), 0);
    assert_int_equal(strlen(tok), CP_TOKEN_HEX_LEN);
    assert_int_equal(strspn(tok, "0123456789abcdef"), CP_TOKEN_HEX_LEN);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* A second start reads the same token, never replaces it. */
    assert_int_equal(cp_token_load(path, true, again), 0);
    assert_string_equal(tok, again);

    /* Given by hand: trailing newline dropped; inner whitespace and empty files refused. */
    wt_write_file(path, "s3cret\n");
    assert_int_equal(cp_token_load(path, false, tok), 0);
    assert_string_equal(tok, "s3cret");
    wt_write_file(path, "two words");
    assert_int_equal(cp_token_load(path, false, tok), WF_E_INVAL);
    wt_write_file(path, "\n");
    assert_int_equal(cp_token_load(path, false, tok), WF_E_INVAL);

    assert_true(cp_token_equal("abc", "abc"));
    assert_false(cp_token_equal("abd", "abc"));
    assert_false(cp_token_equal("ab", "abc"));
    assert_false(cp_token_equal("abcd", "abc"));
    assert_false(cp_token_equal("", "abc"));
    assert_true(cp_token_check_bearer("Bearer abc", "abc"));
    assert_true(cp_token_check_bearer("bearer abc", "abc"));
    assert_false(cp_token_check_bearer("Basic abc", "abc"));
    assert_false(cp_token_check_bearer("Bearer abcx", "abc"));
    assert_false(cp_token_check_bearer(NULL, "abc"));
    char a[CP_TOKEN_HEX_LEN + 1], b[CP_TOKEN_HEX_LEN + 1];
    assert_int_equal(cp_token_generate(a), 0);
    assert_int_equal(cp_token_generate(b), 0);
    assert_string_not_equal(a, b);
    wt_rm_rf(dir);
    wf_free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
