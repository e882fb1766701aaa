/*
 * col_users.c - the users file: its line parser, password and token verification (libxcrypt's
 * crypt_rn for the crypt(3) schemes, OpenSSL for PBKDF2-SHA256 and SHA-256), and the atomic
 * edits `weft users` makes.
 *
 * Password entries are kept sorted by name (binary search, duplicates found at load). Every
 * comparison of a secret-derived value is constant-time (CRYPTO_memcmp), and the crypt work
 * area is wiped after use.
 */
#include "col_users.h"

#include "wf_alloc.h"
#include "wf_buf.h"
#include "wf_err.h"
#include "wf_str.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_ENTRIES 100000
#define PBKDF2_MIN_ROUNDS 1000
#define PBKDF2_MAX_ROUNDS 100000000
#define PBKDF2_SALT_MAX 64

typedef struct {
    char *name;
    char *hash;
    unsigned line;
} pw_entry_t;

typedef struct {
    char *name;
    uint8_t sha256[32];
} tok_entry_t;

struct col_users {
    pw_entry_t *pw;
    size_t npw;
    tok_entry_t *tok;
    size_t ntok;
};

/* ---- base64 -------------------------------------------------------------------------------- */

static int b64_value(int c, bool ab64)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == (ab64 ? '.' : '+')) {
        return 62;
    }
    if (c == '/') {
        return 63;
    }
    return -1;
}

int col__base64_decode(const char *s, size_t n, bool ab64, uint8_t *out, size_t cap, size_t *outlen)
{
    if (!ab64 && n % 4 == 0 && n >= 2) {
        /* Padding only at the end, at most two. */
        if (s[n - 1] == '=') {
            n--;
            if (s[n - 1] == '=') {
                n--;
            }
        }
    }
    if (n % 4 == 1) {
        return WF_E_INVAL;
    }
    size_t need = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
    if (need > cap) {
        return WF_E_LIMIT;
    }
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value((unsigned char)s[i], ab64);
        if (v < 0) {
            return WF_E_INVAL;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    /* Leftover bits must be zero: one encoding per byte string. */
    if ((acc & ((1u << bits) - 1)) != 0) {
        return WF_E_INVAL;
    }
    WF_ASSERT(o == need);
    *outlen = o;
    return 0;
}

/* ---- the line parser ----------------------------------------------------------------------- */

static bool crypt_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '/';
}

static bool has_prefix(const char *s, size_t n, const char *p)
{
    size_t pl = strlen(p);
    return n >= pl && memcmp(s, p, pl) == 0;
}

/* A bcrypt hash: $2a$/$2b$/$2y$, two-digit cost 04..31, '$', 22 salt + 31 hash characters. */
static bool bcrypt_shape(const char *h, size_t n)
{
    if (n != 60 || h[3] != '$' || h[6] != '$') {
        return false;
    }
    if (h[4] < '0' || h[4] > '3' || h[5] < '0' || h[5] > '9') {
        return false;
    }
    int cost = (h[4] - '0') * 10 + (h[5] - '0');
    if (cost < 4 || cost > 31) {
        return false;
    }
    for (size_t i = 7; i < n; i++) {
        if (!crypt_char((unsigned char)h[i])) {
            return false;
        }
    }
    return true;
}

/* yescrypt, scrypt, sha512crypt: the prefix, then parameter, salt and hash fields of crypt
 * characters (sha512crypt's "rounds=N" has '='), the last one non-empty. */
static bool crypt_shape(const char *h, size_t n, size_t prefix_len, unsigned min_fields)
{
    if (n > 512) {
        return false;
    }
    unsigned fields = 1;
    size_t field_len = 0;
    for (size_t i = prefix_len; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        if (c == '$') {
            fields++;
            field_len = 0;
        } else if (crypt_char(c) || c == '=') {
            field_len++;
        } else {
            return false;
        }
    }
    return fields >= min_fields && field_len > 0;
}

/* $pbkdf2-sha256$<rounds>$<ab64 salt>$<ab64 32-byte hash> */
typedef struct {
    unsigned long rounds;
    uint8_t salt[PBKDF2_SALT_MAX];
    size_t salt_len;
    uint8_t dk[32];
} pbkdf2_t;

static bool pbkdf2_parse(const char *h, size_t n, pbkdf2_t *p)
{
    static const char pfx[] = "$pbkdf2-sha256$";
    if (!has_prefix(h, n, pfx)) {
        return false;
    }
    const char *s = h + sizeof(pfx) - 1;
    const char *end = h + n;
    unsigned long rounds = 0;
    const char *q = s;
    while (q < end && *q >= '0' && *q <= '9' && q - s < 10) {
        rounds = rounds * 10 + (unsigned long)(*q - '0');
        q++;
    }
    if (q == s || q == end || *q != '$' || rounds < PBKDF2_MIN_ROUNDS ||
        rounds > PBKDF2_MAX_ROUNDS) {
        return false;
    }
    const char *salt = q + 1;
    const char *d = memchr(salt, '$', (size_t)(end - salt));
    if (d == NULL || d == salt) {
        return false;
    }
    size_t dk_len;
    if (col__base64_decode(salt, (size_t)(d - salt), true, p->salt, sizeof(p->salt),
                           &p->salt_len) != 0 ||
        col__base64_decode(d + 1, (size_t)(end - d - 1), true, p->dk, sizeof(p->dk), &dk_len) !=
            0 ||
        dk_len != sizeof(p->dk)) {
        return false;
    }
    p->rounds = rounds;
    return true;
}

/* Why a hash field is refused, or NULL when it is an accepted password hash. */
static const char *hash_refusal(const char *h, size_t n)
{
    if (has_prefix(h, n, "$2a$") || has_prefix(h, n, "$2b$") || has_prefix(h, n, "$2y$")) {
        return bcrypt_shape(h, n) ? NULL : "malformed bcrypt hash";
    }
    if (has_prefix(h, n, "$y$")) {
        return crypt_shape(h, n, 3, 3) ? NULL : "malformed yescrypt hash";
    }
    if (has_prefix(h, n, "$7$")) {
        return crypt_shape(h, n, 3, 2) ? NULL : "malformed scrypt hash";
    }
    if (has_prefix(h, n, "$6$")) {
        return crypt_shape(h, n, 3, 2) ? NULL : "malformed sha512crypt hash";
    }
    if (has_prefix(h, n, "$pbkdf2-sha256$")) {
        pbkdf2_t p;
        return pbkdf2_parse(h, n, &p)
                   ? NULL
                   : "malformed $pbkdf2-sha256$ hash (want rounds 1000..100000000, passlib's "
                     "base64 salt and a 32-byte hash)";
    }
    if (has_prefix(h, n, "$1$") || has_prefix(h, n, "$apr1$") || has_prefix(h, n, "$md5")) {
        return "MD5-based hashes ($1$, $apr1$: htpasswd's default) are too weak; use bcrypt "
               "(htpasswd -B, or weft users add)";
    }
    if (has_prefix(h, n, "{SHA}") || has_prefix(h, n, "{SSHA}")) {
        return "{SHA} hashes are too weak; use bcrypt (htpasswd -B, or weft users add)";
    }
    if (n == 13) {
        bool des = true;
        for (size_t i = 0; i < n; i++) {
            des = des && crypt_char((unsigned char)h[i]);
        }
        if (des) {
            return "DES crypt hashes are too weak; use bcrypt (htpasswd -B, or weft users add)";
        }
    }
    if (n > 0 && h[0] == '$') {
        return "unknown hash scheme (accepted: bcrypt $2b$/$2y$, yescrypt $y$, scrypt $7$, "
               "sha512crypt $6$, $pbkdf2-sha256$)";
    }
    return "not a password hash (plain text?); hash it with weft users add or htpasswd -B";
}

int col_users_parse_line(const char *line, size_t len, col_users_line_t *out, const char **why)
{
    memset(out, 0, sizeof(*out));
    *why = NULL;
    if (len > 0 && line[len - 1] == '\r') {
        len--;
    }
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t')) {
        i++;
    }
    if (i == len || line[i] == '#') {
        out->kind = COL_USERS_LINE_NONE;
        return 0;
    }
    if (i != 0) {
        *why = "an entry must start at the beginning of its line";
        return WF_E_INVAL;
    }
    while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t')) {
        len--;
    }
    const char *colon = memchr(line, ':', len);
    if (colon == NULL) {
        *why = "want name:hash";
        return WF_E_INVAL;
    }
    size_t nl = (size_t)(colon - line);
    if (nl == 0 || nl > COL_USERS_NAME_MAX) {
        *why = "a user name has 1 to 128 bytes";
        return WF_E_INVAL;
    }
    for (size_t k = 0; k < nl; k++) {
        unsigned char c = (unsigned char)line[k];
        if (c <= 0x20 || c == 0x7f) {
            *why = "a user name has no spaces or control characters";
            return WF_E_INVAL;
        }
    }
    if (!wf_utf8_valid(line, nl)) {
        *why = "a user name must be valid UTF-8";
        return WF_E_INVAL;
    }
    const char *h = colon + 1;
    size_t hl = len - nl - 1;
    out->name = line;
    out->name_len = nl;
    if (has_prefix(h, hl, COL_USERS_TOKEN_PREFIX)) {
        const char *hex = h + strlen(COL_USERS_TOKEN_PREFIX);
        size_t xl = hl - strlen(COL_USERS_TOKEN_PREFIX);
        if (xl != 64) {
            *why = "a token entry holds 64 hex digits (a SHA-256)";
            return WF_E_INVAL;
        }
        for (size_t k = 0; k < 32; k++) {
            int a = wf_hex_digit((unsigned char)hex[2 * k]);
            int b = wf_hex_digit((unsigned char)hex[2 * k + 1]);
            if (a < 0 || b < 0) {
                *why = "a token entry holds 64 hex digits (a SHA-256)";
                return WF_E_INVAL;
            }
            out->token_sha256[k] = (uint8_t)(a * 16 + b);
        }
        out->kind = COL_USERS_LINE_TOKEN;
        return 0;
    }
    const char *r = hash_refusal(h, hl);
    if (r != NULL) {
        *why = r;
        return WF_E_INVAL;
    }
    out->kind = COL_USERS_LINE_PASSWORD;
    out->hash = h;
    out->hash_len = hl;
    return 0;
}

/* ---- the file ------------------------------------------------------------------------------ */

static int pw_cmp(const void *a, const void *b)
{
    return strcmp(((const pw_entry_t *)a)->name, ((const pw_entry_t *)b)->name);
}

int col_users_parse(const char *text, size_t len, const char *origin, col_users_t **out, char *err,
                    size_t errlen)
{
    *out = NULL;
    col_users_t *u = wf_calloc(1, sizeof(*u));
    size_t pw_cap = 0;
    size_t tok_cap = 0;
    unsigned lineno = 0;
    int rc = 0;
    if (len > COL_USERS_FILE_MAX) {
        snprintf(err, errlen, "%s: larger than %u bytes", origin, COL_USERS_FILE_MAX);
        rc = WF_E_LIMIT;
        goto fail;
    }
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - (text + pos)) : len - pos;
        const char *line = text + pos;
        pos += ll + 1;
        lineno++;
        if (ll > COL_USERS_LINE_MAX) {
            snprintf(err, errlen, "%s:%u: line longer than %d bytes", origin, lineno,
                     COL_USERS_LINE_MAX);
            rc = WF_E_LIMIT;
            goto fail;
        }
        if (memchr(line, '\0', ll) != NULL) {
            snprintf(err, errlen, "%s:%u: NUL byte in line", origin, lineno);
            rc = WF_E_INVAL;
            goto fail;
        }
        col_users_line_t e;
        const char *why;
        if (col_users_parse_line(line, ll, &e, &why) != 0) {
            snprintf(err, errlen, "%s:%u: %s", origin, lineno, why);
            rc = WF_E_INVAL;
            goto fail;
        }
        if (e.kind != COL_USERS_LINE_NONE && u->npw + u->ntok == MAX_ENTRIES) {
            snprintf(err, errlen, "%s:%u: more than %d entries", origin, lineno, MAX_ENTRIES);
            rc = WF_E_LIMIT;
            goto fail;
        }
        if (e.kind == COL_USERS_LINE_PASSWORD) {
            if (u->npw == pw_cap) {
                pw_cap = pw_cap ? pw_cap * 2 : 16;
                u->pw = wf_realloc(u->pw, pw_cap * sizeof(*u->pw));
            }
            pw_entry_t *p = &u->pw[u->npw++];
            p->name = wf_strndup(e.name, e.name_len);
            p->hash = wf_strndup(e.hash, e.hash_len);
            p->line = lineno;
        } else if (e.kind == COL_USERS_LINE_TOKEN) {
            if (u->ntok == tok_cap) {
                tok_cap = tok_cap ? tok_cap * 2 : 8;
                u->tok = wf_realloc(u->tok, tok_cap * sizeof(*u->tok));
            }
            tok_entry_t *t = &u->tok[u->ntok++];
            t->name = wf_strndup(e.name, e.name_len);
            memcpy(t->sha256, e.token_sha256, 32);
        }
    }
    if (u->npw > 1) {
        qsort(u->pw, u->npw, sizeof(*u->pw), pw_cmp);
        for (size_t i = 1; i < u->npw; i++) {
            if (strcmp(u->pw[i - 1].name, u->pw[i].name) == 0) {
                unsigned a = u->pw[i - 1].line;
                unsigned b = u->pw[i].line;
                snprintf(err, errlen, "%s:%u: user %s already has a password (line %u)", origin,
                         a > b ? a : b, u->pw[i].name, a < b ? a : b);
                rc = WF_E_INVAL;
                goto fail;
            }
        }
    }
    *out = u;
    return 0;
fail:
    col_users_free(u);
    return rc;
}

int col_users_load(const char *path, col_users_t **out, char *err, size_t errlen)
{
    *out = NULL;
    wf_buf_t b = WF_BUF_INIT;
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto out;
    }
    for (;;) {
        uint8_t *p = wf_buf_reserve(&b, 64 * 1024);
        ssize_t n = read(fd, p, 64 * 1024);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            rc = -errno;
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0) {
            break;
        }
        b.len += (size_t)n;
        if (b.len > COL_USERS_FILE_MAX) {
            snprintf(err, errlen, "%s: larger than %u bytes", path, COL_USERS_FILE_MAX);
            rc = WF_E_LIMIT;
            goto out;
        }
    }
    rc = col_users_parse((const char *)b.data, b.len, path, out, err, errlen);
out:
    if (fd >= 0) {
        close(fd);
    }
    wf_buf_free(&b);
    return rc;
}

void col_users_free(col_users_t *u)
{
    if (u == NULL) {
        return;
    }
    for (size_t i = 0; i < u->npw; i++) {
        wf_free(u->pw[i].name);
        wf_free(u->pw[i].hash);
    }
    for (size_t i = 0; i < u->ntok; i++) {
        wf_free(u->tok[i].name);
    }
    wf_free(u->pw);
    wf_free(u->tok);
    wf_free(u);
}

size_t col_users_password_count(const col_users_t *u)
{
    return u->npw;
}

size_t col_users_token_count(const col_users_t *u)
{
    return u->ntok;
}

/* ---- verification -------------------------------------------------------------------------- */

bool col_users_verify_hash(const char *hash, const char *password, size_t password_len)
{
    size_t hl = strlen(hash);
    if (password_len > COL_USERS_PASSWORD_MAX || memchr(password, '\0', password_len) != NULL) {
        return false;
    }
    if (has_prefix(hash, hl, "$pbkdf2-sha256$")) {
        pbkdf2_t p;
        uint8_t dk[32];
        if (!pbkdf2_parse(hash, hl, &p) ||
            PKCS5_PBKDF2_HMAC(password, (int)password_len, p.salt, (int)p.salt_len, (int)p.rounds,
                              EVP_sha256(), (int)sizeof(dk), dk) != 1) {
            return false;
        }
        bool ok = CRYPTO_memcmp(dk, p.dk, sizeof(dk)) == 0;
        OPENSSL_cleanse(dk, sizeof(dk));
        return ok;
    }
    /* crypt_rn wants a C string; the work area is ~32 KiB, too much for a worker's stack. */
    char pw[COL_USERS_PASSWORD_MAX + 1];
    memcpy(pw, password, password_len);
    pw[password_len] = '\0';
    struct crypt_data *cd = wf_calloc(1, sizeof(*cd));
    const char *r = crypt_rn(pw, hash, cd, (int)sizeof(*cd));
    bool ok = r != NULL && r[0] != '*' && strlen(r) == hl && CRYPTO_memcmp(r, hash, hl) == 0;
    OPENSSL_cleanse(cd, sizeof(*cd));
    OPENSSL_cleanse(pw, sizeof(pw));
    wf_free(cd);
    return ok;
}

const char *col_users_check_password(const col_users_t *u, const char *name, size_t name_len,
                                     const char *password, size_t password_len)
{
    if (u->npw == 0) {
        return NULL;
    }
    const pw_entry_t *found = NULL;
    if (name_len > 0 && name_len <= COL_USERS_NAME_MAX && memchr(name, '\0', name_len) == NULL) {
        char key[COL_USERS_NAME_MAX + 1];
        memcpy(key, name, name_len);
        key[name_len] = '\0';
        pw_entry_t probe = {.name = key};
        found = bsearch(&probe, u->pw, u->npw, sizeof(*u->pw), pw_cmp);
    }
    if (found == NULL) {
        /* The same work as for a real name (the first entry's scheme and cost), result unused:
         * a wrong name and a wrong password take the same time. */
        (void)col_users_verify_hash(u->pw[0].hash, password, password_len);
        return NULL;
    }
    return col_users_verify_hash(found->hash, password, password_len) ? found->name : NULL;
}

static void sha256(const void *p, size_t n, uint8_t out[32])
{
    unsigned int len = 32;
    int rc = EVP_Digest(p, n, out, &len, EVP_sha256(), NULL);
    WF_ASSERT(rc == 1 && len == 32);
}

const char *col_users_check_token(const col_users_t *u, const char *token, size_t token_len)
{
    uint8_t d[32];
    sha256(token, token_len, d);
    const char *who = NULL;
    for (size_t i = 0; i < u->ntok; i++) {
        if (CRYPTO_memcmp(d, u->tok[i].sha256, 32) == 0) {
            who = u->tok[i].name;
        }
    }
    return who;
}

/* ---- making entries ------------------------------------------------------------------------ */

int col_users_hash_password(const char *scheme, unsigned cost, const char *password, char *out,
                            size_t outlen)
{
    const char *prefix;
    if (strcmp(scheme, "bcrypt") == 0) {
        prefix = "$2b$";
        if (cost == 0) {
            cost = 12;
        }
        if (cost < 4 || cost > 31) {
            return WF_E_INVAL;
        }
    } else if (strcmp(scheme, "yescrypt") == 0) {
        prefix = "$y$";
        if (cost > 11) {
            return WF_E_INVAL;
        }
    } else {
        return WF_E_INVAL;
    }
    if (strlen(password) > COL_USERS_PASSWORD_MAX) {
        return WF_E_LIMIT;
    }
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    if (crypt_gensalt_rn(prefix, cost, NULL, 0, setting, (int)sizeof(setting)) == NULL) {
        return WF_E_INTERNAL;
    }
    struct crypt_data *cd = wf_calloc(1, sizeof(*cd));
    const char *r = crypt_rn(password, setting, cd, (int)sizeof(*cd));
    int rc = 0;
    if (r == NULL || r[0] == '*' || strlen(r) >= outlen) {
        rc = WF_E_INTERNAL;
    } else {
        memcpy(out, r, strlen(r) + 1);
    }
    OPENSSL_cleanse(cd, sizeof(*cd));
    wf_free(cd);
    return rc;
}

int col_users_new_token(char *token, size_t token_len, char *field, size_t field_len)
{
    static const char hex[] = "0123456789abcdef";
    uint8_t raw[32];
    if (token_len < 70 || field_len < 84) {
        return WF_E_INVAL;
    }
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
        return errno ? -errno : WF_E_INTERNAL;
    }
    memcpy(token, "weft_", 5);
    for (size_t i = 0; i < 32; i++) {
        token[5 + 2 * i] = hex[raw[i] >> 4];
        token[5 + 2 * i + 1] = hex[raw[i] & 15];
    }
    token[69] = '\0';
    uint8_t d[32];
    sha256(token, 69, d);
    size_t pl = strlen(COL_USERS_TOKEN_PREFIX);
    memcpy(field, COL_USERS_TOKEN_PREFIX, pl);
    for (size_t i = 0; i < 32; i++) {
        field[pl + 2 * i] = hex[d[i] >> 4];
        field[pl + 2 * i + 1] = hex[d[i] & 15];
    }
    field[pl + 64] = '\0';
    OPENSSL_cleanse(raw, sizeof(raw));
    return 0;
}

/* ---- editing the file ---------------------------------------------------------------------- */

static bool valid_name(const char *name)
{
    char line[COL_USERS_NAME_MAX + 64];
    size_t nl = strlen(name);
    if (nl == 0 || nl > COL_USERS_NAME_MAX || strchr(name, ':') != NULL) {
        return false;
    }
    /* The name must read back as it is written: parse it with a known-good token field. */
    int n = snprintf(line, sizeof(line), "%s:" COL_USERS_TOKEN_PREFIX "%064d", name, 0);
    col_users_line_t e;
    const char *why;
    return n > 0 && (size_t)n < sizeof(line) &&
           col_users_parse_line(line, (size_t)n, &e, &why) == 0 && e.name_len == nl;
}

/* Does line (one line of the file) hold an entry of name, and is it a token entry? */
static bool line_of(const char *line, size_t ll, const char *name, bool *token)
{
    size_t nl = strlen(name);
    if (ll <= nl || memcmp(line, name, nl) != 0 || line[nl] != ':') {
        return false;
    }
    *token = has_prefix(line + nl + 1, ll - nl - 1, COL_USERS_TOKEN_PREFIX);
    return true;
}

static int write_atomic(const char *path, const wf_buf_t *b, char *err, size_t errlen)
{
    wf_buf_t tmp = WF_BUF_INIT;
    wf_buf_printf(&tmp, "%s.tmp.%ld", path, (long)getpid());
    const char *tp = wf_buf_cstr(&tmp);
    int rc = 0;
    int fd = open(tp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", tp, strerror(errno));
        goto out;
    }
    size_t off = 0;
    while (off < b->len) {
        ssize_t n = write(fd, b->data + off, b->len - off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            rc = -errno;
            goto io_fail;
        }
        off += (size_t)n;
    }
    if (fsync(fd) != 0) {
        rc = -errno;
        goto io_fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = -errno;
        goto io_fail;
    }
    fd = -1;
    if (rename(tp, path) != 0) {
        rc = -errno;
        goto io_fail;
    }
    goto out;
io_fail:
    snprintf(err, errlen, "%s: %s", tp, strerror(-rc));
    if (fd >= 0) {
        close(fd);
    }
    unlink(tp);
out:
    wf_buf_free(&tmp);
    return rc;
}

int col_users_file_edit(const char *path, col_users_edit_t op, const char *name, const char *value,
                        char *err, size_t errlen)
{
    if (!valid_name(name)) {
        snprintf(err, errlen,
                 "invalid user name (1 to 128 bytes of UTF-8, no ':', spaces or "
                 "control characters)");
        return WF_E_INVAL;
    }
    if (op != COL_USERS_REMOVE) {
        col_users_line_t e;
        const char *why;
        wf_buf_t line = WF_BUF_INIT;
        wf_buf_printf(&line, "%s:%s", name, value);
        int prc = col_users_parse_line((const char *)line.data, line.len, &e, &why);
        wf_buf_free(&line);
        if (prc != 0) {
            snprintf(err, errlen, "refusing to write an entry the collector would refuse: %s", why);
            return WF_E_INVAL;
        }
    }
    wf_buf_t old = WF_BUF_INIT;
    wf_buf_t out = WF_BUF_INIT;
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && (errno != ENOENT || op == COL_USERS_REMOVE)) {
        rc = errno == ENOENT ? WF_E_NOTFOUND : -errno;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto out;
    }
    while (fd >= 0) {
        uint8_t *p = wf_buf_reserve(&old, 64 * 1024);
        ssize_t n = read(fd, p, 64 * 1024);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            rc = -errno;
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0) {
            break;
        }
        old.len += (size_t)n;
        if (old.len > COL_USERS_FILE_MAX) {
            rc = WF_E_LIMIT;
            snprintf(err, errlen, "%s: larger than %u bytes", path, COL_USERS_FILE_MAX);
            goto out;
        }
    }
    bool placed = false;
    bool removed = false;
    for (size_t pos = 0; pos < old.len;) {
        const char *line = (const char *)old.data + pos;
        const char *nl = memchr(line, '\n', old.len - pos);
        size_t ll = nl ? (size_t)(nl - line) : old.len - pos;
        pos += ll + 1;
        bool token = false;
        if (line_of(line, ll, name, &token) && (op == COL_USERS_REMOVE || !token) &&
            op != COL_USERS_ADD_TOKEN) {
            removed = true;
            if (op == COL_USERS_SET_PASSWORD && !placed) {
                /* The new entry takes the old one's place. */
                wf_buf_printf(&out, "%s:%s\n", name, value);
                placed = true;
            }
            continue;
        }
        wf_buf_append(&out, line, ll);
        wf_buf_putc(&out, '\n');
    }
    if (op == COL_USERS_REMOVE && !removed) {
        rc = WF_E_NOTFOUND;
        snprintf(err, errlen, "%s: no user %s", path, name);
        goto out;
    }
    if (op != COL_USERS_REMOVE && !placed) {
        wf_buf_printf(&out, "%s:%s\n", name, value);
    }
    rc = write_atomic(path, &out, err, errlen);
out:
    if (fd >= 0) {
        close(fd);
    }
    if (old.data != NULL) {
        OPENSSL_cleanse(old.data, old.cap);
    }
    wf_buf_free(&old);
    wf_buf_free(&out);
    return rc;
}
