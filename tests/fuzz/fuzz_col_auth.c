/*
 * fuzz_col_auth.c - the users-file parser and the credentials header parsers on arbitrary
 * bytes. The input is parsed as a whole users file (every line through the line parser, with
 * its limits), then as an Authorization header value and as a Cookie header (NUL-terminated
 * copies, as libmicrohttpd hands headers over). Checks: no crash, no leak, and a parsed Basic
 * credential's lengths within their maximums.
 */
#include "col_auth.h"
#include "col_users.h"
#include "wf_alloc.h"
#include "wf_err.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    col_users_t *u = NULL;
    char err[256];
    if (col_users_parse((const char *)data, size, "fuzz", &u, err, sizeof(err)) == 0) {
        WF_ASSERT(u != NULL);
        /* Lookups without a hash to compute: tokens only. */
        (void)col_users_check_token(u, (const char *)data, size);
        col_users_free(u);
    } else {
        WF_ASSERT(u == NULL && err[0] != '\0');
    }
    char *s = wf_malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    col_cred_t c;
    if (col_auth_parse_authorization(s, &c) == 0 && c.kind == COL_CRED_BASIC) {
        WF_ASSERT(c.user_len >= 1 && c.user_len <= COL_USERS_NAME_MAX);
        WF_ASSERT(c.password_len <= COL_USERS_PASSWORD_MAX);
        WF_ASSERT(strlen(c.user) == c.user_len && strlen(c.password) == c.password_len);
    }
    uint8_t id[32];
    (void)col_auth_cookie_session(s, id);
    wf_free(s);
    return 0;
}
