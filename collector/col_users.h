/*
 * col_users.h - the collector's users file: who may log in to the UI and the APIs, and with
 * which password hash or API token.
 *
 * The file is htpasswd-shaped, one entry a line, `#` comments and blank lines ignored:
 *
 *   alice:$2y$12$...          bcrypt, as `htpasswd -B` and `weft users add` write
 *   bob:$y$j9T$...            yescrypt, as `mkpasswd` writes
 *   carol:$7$..., dave:$6$... scrypt, sha512crypt (libxcrypt's crypt_r verifies all four)
 *   erin:$pbkdf2-sha256$29000$<salt>$<hash>     passlib's PBKDF2-SHA256 (OpenSSL verifies)
 *   grafana:$weft-token-sha256$<64 hex>         an API token: only its SHA-256 is stored
 *
 * A name has one password entry at most and any number of token entries (a name may have only
 * tokens: a service account). Weak or unknown schemes (DES, MD5 `$1$`/`$apr1$`, `{SHA}`, plain
 * text) are refused when the file is read, with the file name and line number.
 *
 * Threads: a loaded col_users_t is immutable; any thread may verify against it at once.
 * Verification is deliberately slow (a bcrypt of cost 12 takes ~0.25 s); callers cache.
 */
#ifndef COL_USERS_H
#define COL_USERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COL_USERS_NAME_MAX 128      /* bytes of a user name */
#define COL_USERS_PASSWORD_MAX 1024 /* bytes of a password */
#define COL_USERS_LINE_MAX 1024     /* bytes of one line of the file */
#define COL_USERS_FILE_MAX (16u << 20)
#define COL_USERS_TOKEN_PREFIX "$weft-token-sha256$"

typedef enum {
    COL_USERS_LINE_NONE,     /* blank or comment */
    COL_USERS_LINE_PASSWORD, /* name:hash */
    COL_USERS_LINE_TOKEN,    /* name:$weft-token-sha256$hex */
} col_users_line_kind_t;

typedef struct {
    col_users_line_kind_t kind;
    const char *name; /* borrowed from the line, not NUL-terminated */
    size_t name_len;
    const char *hash; /* the whole hash field (PASSWORD), borrowed */
    size_t hash_len;
    uint8_t token_sha256[32]; /* TOKEN */
} col_users_line_t;

/*
 * Parse one line (without its newline; a trailing '\r' is ignored). 0 and *out filled, or
 * WF_E_INVAL with *why a static sentence saying what is wrong (a weak scheme, a bad name, ...).
 */
int col_users_parse_line(const char *line, size_t len, col_users_line_t *out, const char **why);

typedef struct col_users col_users_t;

/*
 * Parse a whole users file's text; origin names it in error messages ("FILE:LINE: why").
 * 0 and *out, or WF_E_INVAL / WF_E_LIMIT with err filled.
 */
int col_users_parse(const char *text, size_t len, const char *origin, col_users_t **out, char *err,
                    size_t errlen);
/* Read and parse the file at path; a missing or unreadable file is an error too. */
int col_users_load(const char *path, col_users_t **out, char *err, size_t errlen);
/* NULL is a no-op. */
void col_users_free(col_users_t *u);
/* Number of names with a password, and of tokens. */
size_t col_users_password_count(const col_users_t *u);
size_t col_users_token_count(const col_users_t *u);

/*
 * Check name's password. Returns the stored name (valid while u lives) or NULL. An unknown name
 * costs one hash like a known one, so that the answer's timing does not tell which names exist.
 */
const char *col_users_check_password(const col_users_t *u, const char *name, size_t name_len,
                                     const char *password, size_t password_len);
/* The name an API token belongs to, or NULL. Every token is compared, in constant time. */
const char *col_users_check_token(const col_users_t *u, const char *token, size_t token_len);

/* Does password match hash (any accepted scheme)? */
bool col_users_verify_hash(const char *hash, const char *password, size_t password_len);

/*
 * Hash password with scheme "bcrypt" (cost: 4..31, 0 = 12) or "yescrypt" (cost 1..11, 0 =
 * libxcrypt's default) and a fresh random salt into out (>= 128 bytes). 0 or WF_E_INVAL.
 */
int col_users_hash_password(const char *scheme, unsigned cost, const char *password, char *out,
                            size_t outlen);

/* A new API token: "weft_" + 64 hex digits (32 random bytes) into token (>= 70 bytes), and the
 * users-file hash field that stores it ("$weft-token-sha256$<hex>") into field (>= 84 bytes). */
int col_users_new_token(char *token, size_t token_len, char *field, size_t field_len);

typedef enum {
    COL_USERS_SET_PASSWORD, /* replace name's password entry (or add it), keep its tokens */
    COL_USERS_ADD_TOKEN,    /* append a token entry for name */
    COL_USERS_REMOVE,       /* remove every entry of name */
} col_users_edit_t;

/*
 * Edit the users file at path (created when missing, except for REMOVE): comments, other names
 * and unreadable lines are kept as they are. value is the hash field to write (SET_PASSWORD,
 * ADD_TOKEN). The new file replaces the old atomically (a temporary file in the same directory,
 * mode 0600, synced, renamed over it). 0, WF_E_NOTFOUND (REMOVE of an absent name), WF_E_INVAL
 * (a bad name) or -errno, with err filled.
 */
int col_users_file_edit(const char *path, col_users_edit_t op, const char *name, const char *value,
                        char *err, size_t errlen);

/*
 * Internal to the collector: decode base64 (RFC 4648 alphabet; passlib's "ab64" when ab64:
 * '.' instead of '+', never padded; otherwise '=' padding optional) into out[0..cap).
 * 0 and *outlen, or WF_E_INVAL (a byte outside the alphabet, a bad length or padding) or
 * WF_E_LIMIT (does not fit in cap).
 */
int col__base64_decode(const char *s, size_t n, bool ab64, uint8_t *out, size_t cap,
                       size_t *outlen);

#endif
