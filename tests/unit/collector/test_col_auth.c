/*
 * test_col_auth.c - the failed-login limiter on a clock the test moves: 5 failures a minute per
 * name and 20 per client address lock the key out for a minute, doubling with each lockout
 * within the hour up to 64 minutes; a success clears the name's count; the window and the
 * lockout history are forgotten in time; a locked-out key costs no hash.
 */
#include "col_auth.h"
#include "col_users.h"
#include "wf_err.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define PW "correct horse"
/* bcrypt cost 4 of PW (python3's crypt over libxcrypt) */
#define ALICE "alice:$2b$04$fXutLuE9QllZhWPvrtqH6O6hIw6cBJt9.CDrhZOc5mehR7w2eN3aq\n"
#define MIN (60 * 1000LL)

static col_auth_t *new_auth(void)
{
    col_users_t *u = NULL;
    char err[256];
    assert_int_equal(col_users_parse(ALICE, strlen(ALICE), "t", &u, err, sizeof(err)), 0);
    col_auth_t *a = NULL;
    assert_int_equal(col_auth_new(NULL, u, &a), 0);
    return a;
}

static const char *check(col_auth_t *a, const char *addr, const char *user, const char *pw,
                         int64_t now, int64_t *wait)
{
    return col__auth_check(a, addr, user, strlen(user), pw, strlen(pw), now, wait);
}

/* n wrong passwords, none of them refused by the limiter. */
static void fail_n(col_auth_t *a, const char *addr, const char *user, int n, int64_t now)
{
    for (int i = 0; i < n; i++) {
        int64_t wait = -1;
        assert_null(check(a, addr, user, "wrong", now, &wait));
        assert_int_equal(wait, 0);
    }
}

static void test_user_lockout_doubles(void **state)
{
    (void)state;
    col_auth_t *a = new_auth();
    int64_t t = 1000000;
    int64_t wait;
    fail_n(a, "10.0.0.1", "alice", 5, t);
    /* Locked out for a minute, even with the right password, from any address. */
    assert_null(check(a, "10.0.0.2", "alice", PW, t, &wait));
    assert_int_equal(wait, MIN);
    assert_null(check(a, "10.0.0.1", "alice", PW, t + MIN - 1, &wait));
    assert_int_equal(wait, 1);
    /* Each further lockout within the hour doubles: 2, 4, ... 64 minutes, no more. */
    int64_t want = MIN;
    for (int k = 1; k <= 8; k++) {
        t += want;
        fail_n(a, "10.0.0.1", "alice", 5, t);
        want = want * 2 > 64 * MIN ? 64 * MIN : want * 2;
        assert_null(check(a, "10.0.0.1", "alice", PW, t, &wait));
        assert_int_equal(wait, want);
    }
    /* Once it is over, the right password works and clears the count. */
    t += want;
    assert_string_equal(check(a, "10.0.0.1", "alice", PW, t, &wait), "alice");
    assert_int_equal(wait, 0);
    fail_n(a, "10.0.0.1", "alice", 4, t);
    assert_string_equal(check(a, "10.0.0.1", "alice", PW, t, &wait), "alice");
    col_auth_free(a);
}

static void test_windows_forget(void **state)
{
    (void)state;
    col_auth_t *a = new_auth();
    int64_t t = 5000000;
    int64_t wait;
    /* 4 failures, a minute passes: a new window, 4 more are still not 5 in a minute. */
    fail_n(a, "10.0.0.1", "alice", 4, t);
    t += MIN;
    fail_n(a, "10.0.0.1", "alice", 4, t);
    fail_n(a, "10.0.0.1", "alice", 1, t + 1);
    assert_null(check(a, "10.0.0.1", "alice", PW, t + 1, &wait));
    assert_int_equal(wait, MIN);
    /* A second lockout right after the first: two minutes. */
    t += 1 + MIN;
    fail_n(a, "10.0.0.1", "alice", 5, t);
    assert_null(check(a, "10.0.0.1", "alice", PW, t, &wait));
    assert_int_equal(wait, 2 * MIN);
    /* An hour without failures forgets the lockouts: one minute again. */
    t += 2 * MIN + 3600 * 1000LL;
    fail_n(a, "10.0.0.1", "alice", 5, t);
    assert_null(check(a, "10.0.0.1", "alice", PW, t, &wait));
    assert_int_equal(wait, MIN);
    col_auth_free(a);
}

static void test_address_limit(void **state)
{
    (void)state;
    col_auth_t *a = new_auth();
    int64_t t = 9000000;
    int64_t wait;
    /* 20 names from one address, 1 failure each: the address is locked out, not the names. */
    for (int i = 0; i < 20; i++) {
        char name[32];
        snprintf(name, sizeof(name), "guess%d", i);
        fail_n(a, "192.0.2.7", name, 1, t);
    }
    assert_null(check(a, "192.0.2.7", "alice", PW, t, &wait));
    assert_int_equal(wait, MIN);
    assert_string_equal(check(a, "192.0.2.8", "alice", PW, t, &wait), "alice");
    assert_int_equal(wait, 0);
    assert_null(check(a, "192.0.2.8", "guess3", "x", t, &wait));
    assert_int_equal(wait, 0);
    /* Names and addresses never seen are fine; hostile names are just names. */
    char big[10001];
    memset(big, 'u', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_null(check(a, "192.0.2.9", big, PW, t, &wait));
    assert_int_equal(wait, 0);
    assert_null(col__auth_check(a, "192.0.2.9", "ali\0ce", 6, PW, strlen(PW), t, &wait));
    assert_int_equal(wait, 0);
    col_auth_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_user_lockout_doubles),
        cmocka_unit_test(test_windows_forget),
        cmocka_unit_test(test_address_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
