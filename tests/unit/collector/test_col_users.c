/*
 * test_col_users.c - the users file and the credentials parsers: every accepted hash scheme
 * verified against vectors made outside weft (python3's crypt over libxcrypt, hashlib's PBKDF2
 * in passlib's format), weak and malformed entries refused with the reason and line number,
 * lookups of names and tokens, the atomic edits `weft users` makes, and the Authorization and
 * Cookie header parsers on well-formed and hostile values.
 */
#include "col_auth.h"
#include "col_users.h"
#include "wf_alloc.h"
#include "wf_err.h"
#include "wt_util.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#define PW "correct horse"

/* Made with: python3 -c 'import crypt; print(crypt.crypt("correct horse", <setting>))' with
 * settings from libxcrypt's crypt_gensalt, and PBKDF2 with hashlib.pbkdf2_hmac("sha256", pw,
 * b"saltsaltsalt0123", 29000) in passlib's ab64. */
static const char *const vectors[] = {
    "$2b$04$fXutLuE9QllZhWPvrtqH6O6hIw6cBJt9.CDrhZOc5mehR7w2eN3aq",
    "$2y$05$6BwtTJrtnZA9h1T0SYQU6eVAjky/MYypBvCBruukPRtTFPrvUfSOi",
    "$y$j9T$7xaePMUlE9HlTAcNSKRZu.$atr8m8Iv1cFpVrVYfPiZmX8stM/Vysz2FSHhaadvar/",
    "$7$CU..../....O8NWUTzljD.ZxhZNymwof1$ll8o4WT67FqApHt37rSbCjc5ewmf2GXvQWonfp5HE84",
    "$6$NMtreUBb4osV0cdX$"
    "6dUnGUhdy3PmzMwGHU34Mo94enyfklAKiytcMiTZ7FGImtKEM1rvmTShIscKiRt0JarK8pV8j1l5"
    "rQeSvHoxe/",
    "$pbkdf2-sha256$29000$c2FsdHNhbHRzYWx0MDEyMw$9knkDEWIsrVu5KADGJUgewejcTKEBsUySOhSDmlNBlM",
};

static void test_schemes(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        col_users_line_t e;
        const char *why = NULL;
        char line[256];
        int n = snprintf(line, sizeof(line), "alice:%s", vectors[i]);
        assert_int_equal(col_users_parse_line(line, (size_t)n, &e, &why), 0);
        assert_int_equal(e.kind, COL_USERS_LINE_PASSWORD);
        assert_int_equal(e.hash_len, strlen(vectors[i]));
        assert_true(col_users_verify_hash(vectors[i], PW, strlen(PW)));
        assert_false(col_users_verify_hash(vectors[i], "correct horsE", 13));
        assert_false(col_users_verify_hash(vectors[i], "", 0));
        /* A NUL inside the password never matches (crypt would stop at it). */
        assert_false(col_users_verify_hash(vectors[i], PW "\0x", strlen(PW) + 2));
    }
}

/* Expect line to be refused with a reason containing want. */
static void refused(const char *line, const char *want)
{
    col_users_line_t e;
    const char *why = NULL;
    assert_int_equal(col_users_parse_line(line, strlen(line), &e, &why), WF_E_INVAL);
    assert_non_null(why);
    if (strstr(why, want) == NULL) {
        fail_msg("%s: reason \"%s\" lacks \"%s\"", line, why, want);
    }
}

static void test_line_parser(void **state)
{
    (void)state;
    col_users_line_t e;
    const char *why;
    assert_int_equal(col_users_parse_line("", 0, &e, &why), 0);
    assert_int_equal(e.kind, COL_USERS_LINE_NONE);
    assert_int_equal(col_users_parse_line("  # a comment: x", 16, &e, &why), 0);
    assert_int_equal(e.kind, COL_USERS_LINE_NONE);
    assert_int_equal(col_users_parse_line(" \t\r", 3, &e, &why), 0);
    assert_int_equal(e.kind, COL_USERS_LINE_NONE);

    const char *tok = "grafana:$weft-token-sha256$"
                      "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF\r";
    assert_int_equal(col_users_parse_line(tok, strlen(tok), &e, &why), 0);
    assert_int_equal(e.kind, COL_USERS_LINE_TOKEN);
    assert_int_equal(e.name_len, 7);
    assert_memory_equal(e.name, "grafana", 7);
    assert_int_equal(e.token_sha256[0], 0x00);
    assert_int_equal(e.token_sha256[1], 0x11);
    assert_int_equal(e.token_sha256[31], 0xff);

    refused("bob:$1$abcdefgh$y6iHhJNbuC0xpbk0w9pm80", "MD5");
    refused("bob:$apr1$abcdefgh$y6iHhJNbuC0xpbk0w9pm80", "MD5");
    refused("bob:abhfCpXqd4GrI", "DES");
    refused("bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "{SHA}");
    refused("bob:hunter2", "plain text");
    refused("bob:$5$rounds=5000$salt$hash", "unknown hash scheme");
    refused("bob:$2b$04$short", "malformed bcrypt");
    refused("bob:$2b$03$fXutLuE9QllZhWPvrtqH6O6hIw6cBJt9.CDrhZOc5mehR7w2eN3aq", "malformed bcrypt");
    refused("bob:$y$j9T$", "malformed yescrypt");
    refused("bob:$pbkdf2-sha256$999$c2FsdA$9knkDEWIsrVu5KADGJUgewejcTKEBsUySOhSDmlNBlM", "rounds");
    refused("bob:$pbkdf2-sha256$29000$c2FsdA$9knkDEWIsrVu5KADGJUg", "rounds");
    refused("bob:$weft-token-sha256$0011", "64 hex");
    refused("bob:$weft-token-sha256$"
            "zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
            "64 hex");
    refused("no colon here", "name:hash");
    refused(":$2b$04$fXutLuE9QllZhWPvrtqH6O6hIw6cBJt9.CDrhZOc5mehR7w2eN3aq", "1 to 128");
    refused("bo b:$2b$04$fXutLuE9QllZhWPvrtqH6O6hIw6cBJt9.CDrhZOc5mehR7w2eN3aq", "spaces");
    refused(" bob:$2b$04$fXutLuE9QllZhWPvrtqH6O6hIw6cBJt9.CDrhZOc5mehR7w2eN3aq", "beginning");
    refused("b\xffob:$2b$04$fXutLuE9QllZhWPvrtqH6O6hIw6cBJt9.CDrhZOc5mehR7w2eN3aq", "UTF-8");
    char longname[200];
    memset(longname, 'n', 129);
    strcpy(longname + 129, ":$2b$04$fXutLuE9QllZhWPvrtqH6O6hIw6cBJt9.CDrhZOc5mehR7w2eN3aq");
    refused(longname, "1 to 128");
    /* 128 bytes is still a name. */
    memmove(longname + 128, longname + 129, strlen(longname + 129) + 1);
    assert_int_equal(col_users_parse_line(longname, strlen(longname), &e, &why), 0);
    assert_int_equal(e.name_len, 128);
}

static void test_file(void **state)
{
    (void)state;
    char text[2048];
    snprintf(text, sizeof(text),
             "# weft users\r\n"
             "alice:%s\r\n"
             "\n"
             "erin:%s\n"
             "grafana:$weft-token-sha256$"
             "47660e29987d638ba7eed6230b3d4fbc3e82c93e900775ed4e8c21ea3c8b4199\n"
             "carol:%s",
             vectors[0], vectors[5], vectors[3]);
    col_users_t *u = NULL;
    char err[256];
    assert_int_equal(col_users_parse(text, strlen(text), "users", &u, err, sizeof(err)), 0);
    assert_int_equal(col_users_password_count(u), 3);
    assert_int_equal(col_users_token_count(u), 1);
    const char *who = col_users_check_password(u, "alice", 5, PW, strlen(PW));
    assert_non_null(who);
    assert_string_equal(who, "alice");
    assert_string_equal(col_users_check_password(u, "erin", 4, PW, strlen(PW)), "erin");
    assert_string_equal(col_users_check_password(u, "carol", 5, PW, strlen(PW)), "carol");
    assert_null(col_users_check_password(u, "carol", 5, "nope", 4));
    assert_null(col_users_check_password(u, "mallory", 7, PW, strlen(PW)));
    assert_null(col_users_check_password(u, "alic", 4, PW, strlen(PW)));
    assert_null(col_users_check_password(u, "alice\0", 6, PW, strlen(PW)));
    assert_null(col_users_check_password(u, "", 0, PW, strlen(PW)));
    /* A token-only name has no password. */
    assert_null(col_users_check_password(u, "grafana", 7, PW, strlen(PW)));
    /* the entry holds sha256("weft_test_token") */
    assert_string_equal(col_users_check_token(u, "weft_test_token", 15), "grafana");
    assert_null(col_users_check_token(u, "weft_test_tokeN", 15));
    assert_null(col_users_check_token(u, "", 0));
    col_users_free(u);

    /* Errors name the origin and the line. */
    snprintf(text, sizeof(text), "# x\nalice:%s\nbob:$1$abcdefgh$y6iHhJNbuC0xpbk0w9pm80\n",
             vectors[0]);
    assert_int_equal(col_users_parse(text, strlen(text), "/etc/weft/users", &u, err, sizeof(err)),
                     WF_E_INVAL);
    assert_null(u);
    assert_non_null(strstr(err, "/etc/weft/users:3: MD5"));
    snprintf(text, sizeof(text), "alice:%s\nbob:%s\nalice:%s\n", vectors[0], vectors[1],
             vectors[2]);
    assert_int_equal(col_users_parse(text, strlen(text), "f", &u, err, sizeof(err)), WF_E_INVAL);
    assert_string_equal(err, "f:3: user alice already has a password (line 1)");
    /* A line too long is refused without being parsed. */
    char *big = wf_malloc(4000);
    memset(big, 'a', 3000);
    memcpy(big, "x:", 2);
    big[3000] = '\n';
    big[3001] = '\0';
    assert_int_equal(col_users_parse(big, strlen(big), "f", &u, err, sizeof(err)), WF_E_LIMIT);
    assert_string_equal(err, "f:1: line longer than 1024 bytes");
    wf_free(big);
    assert_int_equal(col_users_parse("a:b\0c\n", 6, "f", &u, err, sizeof(err)), WF_E_INVAL);
    assert_string_equal(err, "f:1: NUL byte in line");
    /* An empty file parses (the collector refuses it: nobody could log in). */
    assert_int_equal(col_users_parse("", 0, "f", &u, err, sizeof(err)), 0);
    assert_int_equal(col_users_password_count(u), 0);
    assert_null(col_users_check_password(u, "a", 1, "b", 1));
    col_users_free(u);
    assert_int_equal(col_users_load("/nonexistent/users", &u, err, sizeof(err)), -ENOENT);
    assert_string_equal(err, "/nonexistent/users: No such file or directory");
}

static void test_edit(void **state)
{
    (void)state;
    char *dir = wt_tmpdir("col-users");
    char path[512];
    snprintf(path, sizeof(path), "%s/users", dir);
    char err[256];
    char hash[256];
    assert_int_equal(col_users_hash_password("bcrypt", 4, "s3cret", hash, sizeof(hash)), 0);
    assert_memory_equal(hash, "$2b$04$", 7);
    assert_int_equal(strlen(hash), 60);
    assert_true(col_users_verify_hash(hash, "s3cret", 6));
    char yes[256];
    assert_int_equal(col_users_hash_password("yescrypt", 1, "s3cret", yes, sizeof(yes)), 0);
    assert_memory_equal(yes, "$y$", 3);
    assert_true(col_users_verify_hash(yes, "s3cret", 6));
    assert_int_equal(col_users_hash_password("md5", 0, "s3cret", yes, sizeof(yes)), WF_E_INVAL);
    assert_int_equal(col_users_hash_password("bcrypt", 3, "s3cret", yes, sizeof(yes)), WF_E_INVAL);

    assert_int_equal(col_users_file_edit(path, COL_USERS_REMOVE, "alice", NULL, err, sizeof(err)),
                     WF_E_NOTFOUND);
    assert_int_equal(
        col_users_file_edit(path, COL_USERS_SET_PASSWORD, "alice", hash, err, sizeof(err)), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char token[80];
    char field[96];
    assert_int_equal(col_users_new_token(token, sizeof(token), field, sizeof(field)), 0);
    assert_int_equal(strlen(token), 69);
    assert_memory_equal(token, "weft_", 5);
    assert_int_equal(
        col_users_file_edit(path, COL_USERS_ADD_TOKEN, "alice", field, err, sizeof(err)), 0);
    /* A comment and another user written by hand survive the edits. */
    char *text = wt_read_file(path, NULL);
    char hand[1024];
    snprintf(hand, sizeof(hand), "# ops team\n%sbob:%s\n", text, vectors[1]);
    wf_free(text);
    wt_write_file(path, hand);
    assert_int_equal(
        col_users_file_edit(path, COL_USERS_SET_PASSWORD, "alice", yes, err, sizeof(err)), 0);
    text = wt_read_file(path, NULL);
    char want[1024];
    snprintf(want, sizeof(want), "# ops team\nalice:%s\nalice:%s\nbob:%s\n", yes, field,
             vectors[1]);
    assert_string_equal(text, want);
    wf_free(text);
    col_users_t *u = NULL;
    assert_int_equal(col_users_load(path, &u, err, sizeof(err)), 0);
    assert_string_equal(col_users_check_password(u, "alice", 5, "s3cret", 6), "alice");
    assert_string_equal(col_users_check_token(u, token, strlen(token)), "alice");
    col_users_free(u);
    /* remove takes the password and every token. */
    assert_int_equal(col_users_file_edit(path, COL_USERS_REMOVE, "alice", NULL, err, sizeof(err)),
                     0);
    text = wt_read_file(path, NULL);
    snprintf(want, sizeof(want), "# ops team\nbob:%s\n", vectors[1]);
    assert_string_equal(text, want);
    wf_free(text);
    /* Names and values the collector would refuse are not written. */
    assert_int_equal(
        col_users_file_edit(path, COL_USERS_SET_PASSWORD, "a:b", hash, err, sizeof(err)),
        WF_E_INVAL);
    assert_int_equal(
        col_users_file_edit(path, COL_USERS_SET_PASSWORD, "a b", hash, err, sizeof(err)),
        WF_E_INVAL);
    assert_int_equal(
        col_users_file_edit(path, COL_USERS_SET_PASSWORD, "carol", "plain", err, sizeof(err)),
        WF_E_INVAL);
    wt_rm_rf(dir);
    wf_free(dir);
}

/* base64 of s into out (test helper; RFC 4648 with padding). */
static void b64(const char *s, size_t n, char *out)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)s[i] << 16;
        if (i + 1 < n) {
            v |= (uint32_t)(unsigned char)s[i + 1] << 8;
        }
        if (i + 2 < n) {
            v |= (unsigned char)s[i + 2];
        }
        out[o++] = al[v >> 18];
        out[o++] = al[(v >> 12) & 63];
        out[o++] = i + 1 < n ? al[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? al[v & 63] : '=';
    }
    out[o] = '\0';
}

static int parse_basic(const char *userpass, size_t n, col_cred_t *c)
{
    char hdr[4096];
    memcpy(hdr, "Basic ", 6);
    b64(userpass, n, hdr + 6);
    return col_auth_parse_authorization(hdr, c);
}

static void test_authorization(void **state)
{
    (void)state;
    col_cred_t c;
    /* RFC 7617's example. */
    assert_int_equal(col_auth_parse_authorization("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", &c), 0);
    assert_int_equal(c.kind, COL_CRED_BASIC);
    assert_string_equal(c.user, "Aladdin");
    assert_string_equal(c.password, "open sesame");
    assert_int_equal(c.password_len, 11);
    /* Scheme case-insensitive, padding optional, a password may hold ':'. */
    assert_int_equal(col_auth_parse_authorization("basic  YTpiOmM", &c), 0);
    assert_string_equal(c.user, "a");
    assert_string_equal(c.password, "b:c");
    assert_int_equal(parse_basic("a:", 2, &c), 0);
    assert_int_equal(c.password_len, 0);
    assert_int_equal(col_auth_parse_authorization("Bearer weft_abc", &c), 0);
    assert_int_equal(c.kind, COL_CRED_BEARER);
    assert_int_equal(c.token_len, 8);
    assert_memory_equal(c.token, "weft_abc", 8);

    assert_int_equal(col_auth_parse_authorization("Digest x", &c), WF_E_INVAL);
    assert_int_equal(col_auth_parse_authorization("Basic", &c), WF_E_INVAL);
    assert_int_equal(col_auth_parse_authorization("Bearer ", &c), WF_E_INVAL);
    assert_int_equal(col_auth_parse_authorization("Bearer a\tb", &c), WF_E_INVAL);
    assert_int_equal(col_auth_parse_authorization("Basic !!!!", &c), WF_E_INVAL);
    assert_int_equal(col_auth_parse_authorization("Basic YTpi=", &c), WF_E_INVAL);
    assert_int_equal(col_auth_parse_authorization("Basic Y", &c), WF_E_INVAL);
    assert_int_equal(col_auth_parse_authorization("Basic YTpiYw=x", &c), WF_E_INVAL);
    assert_int_equal(parse_basic("nocolon", 7, &c), WF_E_INVAL);
    assert_int_equal(parse_basic(":pw", 3, &c), WF_E_INVAL);
    assert_int_equal(parse_basic("a\0b:pw", 6, &c), WF_E_INVAL);
    assert_int_equal(parse_basic("ab:p\0w", 6, &c), WF_E_INVAL);
    assert_int_equal(parse_basic("a\nb:pw", 6, &c), WF_E_INVAL);
    char big[2048];
    memset(big, 'u', sizeof(big));
    big[129] = ':';
    assert_int_equal(parse_basic(big, 135, &c), WF_E_LIMIT);
    big[128] = ':';
    assert_int_equal(parse_basic(big, 135, &c), 0);
    assert_int_equal(c.user_len, 128);
    big[1] = ':';
    assert_int_equal(parse_basic(big, 1026, &c), 0);
    assert_int_equal(c.password_len, 1024);
    assert_int_equal(parse_basic(big, 1027, &c), WF_E_LIMIT);
    char tok[400];
    memcpy(tok, "Bearer ", 7);
    memset(tok + 7, 't', 257);
    tok[264] = '\0';
    assert_int_equal(col_auth_parse_authorization(tok, &c), WF_E_LIMIT);
    tok[263] = '\0';
    assert_int_equal(col_auth_parse_authorization(tok, &c), 0);
}

static void test_cookie(void **state)
{
    (void)state;
    uint8_t id[32];
    const char *hex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1F";
    char h[256];
    snprintf(h, sizeof(h), "weft_session=%s", hex);
    assert_int_equal(col_auth_cookie_session(h, id), 0);
    assert_int_equal(id[0], 0);
    assert_int_equal(id[10], 10);
    assert_int_equal(id[31], 0x1f);
    snprintf(h, sizeof(h), "a=b; weft_session=short; weft_session=%s ; c=d", hex);
    assert_int_equal(col_auth_cookie_session(h, id), 0);
    assert_int_equal(id[31], 0x1f);
    assert_int_equal(col_auth_cookie_session("", id), WF_E_NOTFOUND);
    assert_int_equal(col_auth_cookie_session("weft_session=", id), WF_E_NOTFOUND);
    assert_int_equal(col_auth_cookie_session(";;;", id), WF_E_NOTFOUND);
    snprintf(h, sizeof(h), "xweft_session=%s", hex);
    assert_int_equal(col_auth_cookie_session(h, id), WF_E_NOTFOUND);
    snprintf(h, sizeof(h), "weft_session=%.63sg", hex);
    assert_int_equal(col_auth_cookie_session(h, id), WF_E_NOTFOUND);
    snprintf(h, sizeof(h), "weft_session=%s0", hex);
    assert_int_equal(col_auth_cookie_session(h, id), WF_E_NOTFOUND);
}

static void test_base64(void **state)
{
    (void)state;
    uint8_t out[16];
    size_t n;
    assert_int_equal(col__base64_decode("c2FsdA", 6, true, out, sizeof(out), &n), 0);
    assert_int_equal(n, 4);
    assert_memory_equal(out, "salt", 4);
    /* ab64 has '.' where the standard alphabet has '+', and no padding. */
    assert_int_equal(col__base64_decode("..8", 3, true, out, sizeof(out), &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(out[0], 0xfb);
    assert_int_equal(out[1], 0xef);
    assert_int_equal(col__base64_decode("++8", 3, true, out, sizeof(out), &n), WF_E_INVAL);
    assert_int_equal(col__base64_decode("++8=", 4, false, out, sizeof(out), &n), 0);
    assert_int_equal(col__base64_decode("c2FsdA==", 8, true, out, sizeof(out), &n), WF_E_INVAL);
    assert_int_equal(
        col__base64_decode("AAAAAAAAAAAAAAAAAAAAAAAA", 24, false, out, sizeof(out), &n),
        WF_E_LIMIT);
    assert_int_equal(col__base64_decode("", 0, false, out, sizeof(out), &n), 0);
    assert_int_equal(n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schemes),       cmocka_unit_test(test_line_parser),
        cmocka_unit_test(test_file),          cmocka_unit_test(test_edit),
        cmocka_unit_test(test_authorization), cmocka_unit_test(test_cookie),
        cmocka_unit_test(test_base64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
