/*
 * col_auth.h - who may use the collector: login sessions for the web UI, HTTP Basic and Bearer
 * tokens for API clients (Grafana, curl), against the users file (col_users.h).
 *
 * With a users file, every request needs credentials except the health checks, the UI's static
 * files, /api/auth/info, /api/login and (unless auth_ingest) the ingest endpoints. Accepted:
 *   - the weft_session cookie /api/login sets (HttpOnly, SameSite=Strict); a request other than
 *     GET/HEAD must also carry X-Weft-CSRF equal to the session's CSRF token, or it is 403;
 *   - Authorization: Basic of a users-file password (successful checks are cached for a
 *     minute, keyed by the SHA-256 of the header, so that a dashboard's many queries do not each
 *     pay a bcrypt);
 *   - Authorization: Bearer <token> of a users-file token entry.
 * Refusals are Prometheus's JSON error envelope: 401 "unauthorized", 403 "forbidden", 429
 * "rate_limited" with Retry-After. A 401 carries WWW-Authenticate: Basic realm="weft" unless the
 * request is the UI's own fetch (X-Requested-With, Accept: application/json, or Sec-Fetch-Mode
 * other than navigate), so the browser never pops its own dialog over the login page.
 *
 * Failed password checks (login or Basic) are limited per client address (20 a minute) and per
 * user name (5 a minute); past the limit the key is locked out for 1 minute, doubling with each
 * further lockout (at most 64 minutes) until an hour passes without failures after the last
 * lockout ends.
 *
 * Without a users file the collector is anonymous: the hook is not installed and
 * /api/auth/info says {"strategy":"anonymous"}.
 *
 * Threads: the hook and the handlers run on the HTTP server's worker threads; sessions, the
 * Basic cache and the limiter sit behind one mutex, never held during a password hash.
 */
#ifndef COL_AUTH_H
#define COL_AUTH_H

#include "col_http.h"
#include "col_users.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    bool auth_ingest;            /* ingest endpoints need credentials too */
    int64_t session_idle_ms;     /* a session unused this long ends; default 1 h */
    int64_t session_lifetime_ms; /* a session ends this long after login; default 24 h */
    size_t max_sessions;         /* beyond it the oldest session ends; default 10000 */
} col_auth_options_t;

typedef struct col_auth col_auth_t;

/* users: the loaded users file (ownership taken), or NULL for an anonymous collector. */
int col_auth_new(const col_auth_options_t *o, col_users_t *users, col_auth_t **out);
/* NULL is a no-op. Call after the HTTP server has stopped. */
void col_auth_free(col_auth_t *a);
/* Route /api/auth/info, /api/login and /api/logout on h, and install the hook (with users). */
void col_auth_register(col_auth_t *a, col_http_t *h);
/* Append weft_collector_logins_total, weft_collector_auth_rejected_total,
 * weft_collector_auth_basic_cache_total and weft_collector_sessions in the Prometheus text
 * format. */
void col_auth_write_metrics(col_auth_t *a, wf_buf_t *out);

/* ---- header parsers (exposed for tests and fuzzing) ---- */

typedef enum { COL_CRED_BASIC, COL_CRED_BEARER } col_cred_kind_t;

typedef struct {
    col_cred_kind_t kind;
    char user[COL_USERS_NAME_MAX + 1]; /* BASIC, NUL-terminated */
    size_t user_len;
    char password[COL_USERS_PASSWORD_MAX + 1]; /* BASIC, NUL-terminated */
    size_t password_len;
    const char *token; /* BEARER, borrowed from the header value */
    size_t token_len;
} col_cred_t;

/*
 * Parse an Authorization header value: "Basic <base64 user:password>" or "Bearer <token>"
 * (scheme case-insensitive). 0 and *out, or WF_E_INVAL (another scheme, bad base64, no ':', an
 * empty name, a NUL or control byte in the name, a NUL in the password) or WF_E_LIMIT (name or
 * password above its maximum, a token above 256 bytes).
 */
int col_auth_parse_authorization(const char *value, col_cred_t *out);

/*
 * Whether an ingest call that is not HTTP/1 (OTLP/gRPC) may proceed, given the value of its
 * authorization metadata (NULL: none) and the client's address: always without a users file or
 * without auth_ingest; else Basic or Bearer credentials as the HTTP hook takes them (the same
 * cache and failed-login limiter). false with why filled, and *retry_later set when the client
 * is locked out for a while (HTTP's 429). arg is the col_auth_t (the signature
 * is col_grpc_auth_cb's). Any thread.
 */
bool col_auth_ingest_credentials(void *arg, const char *addr, const char *authorization, char *why,
                                 size_t whycap, bool *retry_later);

/* The weft_session cookie of a Cookie header: 0 and its 32 bytes in id, or WF_E_NOTFOUND (no
 * such cookie, or not 64 hex digits). */
int col_auth_cookie_session(const char *cookie_header, uint8_t id[32]);

/*
 * Internal to the collector (and its tests): check a name and password as /api/login and Basic
 * do, through the failed-login limiter, at time now (milliseconds of a monotonic clock). The
 * user name on success; NULL and, when the client address or the name is locked out,
 * *wait_ms > 0 (no hash is computed then).
 */
const char *col__auth_check(col_auth_t *a, const char *addr, const char *user, size_t user_len,
                            const char *pw, size_t pw_len, int64_t now, int64_t *wait_ms);

#endif
