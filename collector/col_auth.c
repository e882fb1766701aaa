/*
 * col_auth.c - authentication of the collector's HTTP requests: the hook col_http runs before
 * a handler, the login/logout/info endpoints, sessions, the Basic cache and the failed-login
 * limiter (col_auth.h says what is accepted and why).
 *
 * Sessions: the cookie holds 32 random bytes (hex); the table keeps only their SHA-256, so a
 * look at the collector's memory does not yield usable cookies. The table is a chained hash
 * (the key is already uniform, its first bytes pick the bucket) plus a list in login order, so
 * the oldest session is evicted first when the table is full and expired ones are swept from
 * its head.
 *
 * Limiter and Basic cache: small fixed tables scanned linearly. Both are consulted only on the
 * slow path (a password about to be hashed), next to which a scan of a few thousand entries is
 * noise.
 */
#include "col_auth.h"

#include "wf_alloc.h"
#include "wf_buf.h"
#include "wf_clock.h"
#include "wf_err.h"
#include "wf_log.h"
#include "wf_str.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#define BASIC_CACHE_SIZE 64
#define BASIC_CACHE_TTL_MS (60 * 1000)
#define LIMITER_SIZE 4096
#define LIMIT_WINDOW_MS (60 * 1000)
#define LIMIT_PER_USER 5
#define LIMIT_PER_ADDR 20
#define LOCKOUT_BASE_MS (60 * 1000)
#define LOCKOUT_MAX_SHIFT 6
#define LOCKOUT_FORGET_MS (3600 * 1000)
#define TOKEN_MAX 256
#define LOGIN_BODY_MAX (16 * 1024)

typedef struct sess {
    uint8_t key[32]; /* SHA-256 of the cookie's 32 bytes */
    char *user;
    char csrf[65];
    int64_t created_ms;
    int64_t used_ms;
    struct sess *hnext; /* bucket chain */
    struct sess *older; /* login order */
    struct sess *newer;
} sess_t;

typedef struct {
    uint8_t key[32]; /* SHA-256 of the Authorization header */
    char user[COL_USERS_NAME_MAX + 1];
    int64_t until_ms; /* 0: empty */
} basic_ent_t;

typedef struct {
    uint64_t key[2]; /* hash of "a:<address>" or "u:<name>"; {0,0} empty */
    unsigned failures;
    unsigned lockouts;
    int64_t window_ms;
    int64_t last_ms;
    int64_t blocked_until_ms;
} limit_ent_t;

enum { LOGIN_OK, LOGIN_FAILED, LOGIN_LIMITED, LOGIN_RESULTS };
enum { REJ_UNAUTHORIZED, REJ_FORBIDDEN, REJ_LIMITED, REJ_REASONS };

struct col_auth {
    col_auth_options_t opt;
    col_users_t *users;
    pthread_mutex_t mu;
    sess_t **buckets;
    size_t nbuckets; /* power of two */
    sess_t *oldest;
    sess_t *newest;
    size_t nsess;
    basic_ent_t basic[BASIC_CACHE_SIZE];
    size_t basic_next;
    limit_ent_t *limits; /* LIMITER_SIZE */
    atomic_ulong logins[LOGIN_RESULTS];
    atomic_ulong rejected[REJ_REASONS];
    atomic_ulong basic_cache[2]; /* misses, hits */
};

static int64_t now_ms(void)
{
    return wf_mono_ns() / 1000000;
}

static void sha256(const void *p, size_t n, uint8_t out[32])
{
    unsigned int len = 32;
    int rc = EVP_Digest(p, n, out, &len, EVP_sha256(), NULL);
    WF_ASSERT(rc == 1 && len == 32);
}

static void hex32(const uint8_t in[32], char out[65])
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < 32; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[64] = '\0';
}

static void random32(uint8_t out[32])
{
    /* getrandom of 32 bytes from the initialised pool neither fails nor returns short. */
    ssize_t n = getrandom(out, 32, 0);
    WF_ASSERT(n == 32);
}

int col_auth_new(const col_auth_options_t *o, col_users_t *users, col_auth_t **out)
{
    col_auth_t *a = wf_calloc(1, sizeof(*a));
    if (o != NULL) {
        a->opt = *o;
    }
    if (a->opt.session_idle_ms <= 0) {
        a->opt.session_idle_ms = 3600LL * 1000;
    }
    if (a->opt.session_lifetime_ms <= 0) {
        a->opt.session_lifetime_ms = 24LL * 3600 * 1000;
    }
    if (a->opt.max_sessions == 0) {
        a->opt.max_sessions = 10000;
    }
    a->users = users;
    pthread_mutex_init(&a->mu, NULL);
    a->nbuckets = 16;
    while (a->nbuckets < a->opt.max_sessions && a->nbuckets < ((size_t)1 << 20)) {
        a->nbuckets <<= 1;
    }
    a->buckets = wf_calloc(a->nbuckets, sizeof(*a->buckets));
    a->limits = wf_calloc(LIMITER_SIZE, sizeof(*a->limits));
    *out = a;
    return 0;
}

static void sess_free(sess_t *s)
{
    wf_free(s->user);
    OPENSSL_cleanse(s, sizeof(*s));
    wf_free(s);
}

void col_auth_free(col_auth_t *a)
{
    if (a == NULL) {
        return;
    }
    for (sess_t *s = a->oldest; s != NULL;) {
        sess_t *n = s->newer;
        sess_free(s);
        s = n;
    }
    OPENSSL_cleanse(a->basic, sizeof(a->basic));
    wf_free(a->buckets);
    wf_free(a->limits);
    pthread_mutex_destroy(&a->mu);
    col_users_free(a->users);
    wf_free(a);
}

/* ---- sessions (a->mu held) ----------------------------------------------------------------- */

static size_t bucket_of(const col_auth_t *a, const uint8_t key[32])
{
    uint64_t h;
    memcpy(&h, key, sizeof(h));
    return (size_t)(h & (a->nbuckets - 1));
}

static void sess_unlink(col_auth_t *a, sess_t *s)
{
    sess_t **pp = &a->buckets[bucket_of(a, s->key)];
    while (*pp != s) {
        WF_ASSERT(*pp != NULL);
        pp = &(*pp)->hnext;
    }
    *pp = s->hnext;
    if (s->older != NULL) {
        s->older->newer = s->newer;
    } else {
        a->oldest = s->newer;
    }
    if (s->newer != NULL) {
        s->newer->older = s->older;
    } else {
        a->newest = s->older;
    }
    a->nsess--;
    sess_free(s);
}

static bool sess_expired(const col_auth_t *a, const sess_t *s, int64_t now)
{
    return now - s->used_ms >= a->opt.session_idle_ms ||
           now - s->created_ms >= a->opt.session_lifetime_ms;
}

/* The live session of cookie id, its last use set to now; NULL when none (an expired one is
 * removed on the way). */
static sess_t *sess_find(col_auth_t *a, const uint8_t id[32], int64_t now)
{
    uint8_t key[32];
    sha256(id, 32, key);
    for (sess_t *s = a->buckets[bucket_of(a, key)]; s != NULL; s = s->hnext) {
        if (CRYPTO_memcmp(s->key, key, 32) == 0) {
            if (sess_expired(a, s, now)) {
                sess_unlink(a, s);
                return NULL;
            }
            s->used_ms = now;
            return s;
        }
    }
    return NULL;
}

/* A new session for user; its cookie id into id, its CSRF token into csrf. */
static void sess_create(col_auth_t *a, const char *user, int64_t now, uint8_t id[32], char csrf[65])
{
    while (a->oldest != NULL &&
           (a->nsess >= a->opt.max_sessions || sess_expired(a, a->oldest, now))) {
        sess_unlink(a, a->oldest);
    }
    sess_t *s = wf_calloc(1, sizeof(*s));
    random32(id);
    sha256(id, 32, s->key);
    uint8_t c[32];
    random32(c);
    hex32(c, s->csrf);
    memcpy(csrf, s->csrf, 65);
    s->user = wf_strdup(user);
    s->created_ms = now;
    s->used_ms = now;
    size_t b = bucket_of(a, s->key);
    s->hnext = a->buckets[b];
    a->buckets[b] = s;
    s->older = a->newest;
    if (a->newest != NULL) {
        a->newest->newer = s;
    } else {
        a->oldest = s;
    }
    a->newest = s;
    a->nsess++;
}

/* ---- failed-login limiter (a->mu held) ----------------------------------------------------- */

static void limit_key(const char *kind, const char *s, size_t n, uint64_t key[2])
{
    uint8_t d[32];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    WF_ASSERT(ctx != NULL);
    unsigned int len = 32;
    int ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(ctx, kind, strlen(kind)) == 1 && EVP_DigestUpdate(ctx, s, n) == 1 &&
             EVP_DigestFinal_ex(ctx, d, &len) == 1;
    EVP_MD_CTX_free(ctx);
    WF_ASSERT(ok);
    memcpy(key, d, 16);
    if (key[0] == 0 && key[1] == 0) {
        key[0] = 1; /* {0,0} marks an empty slot */
    }
}

static bool limit_empty(const limit_ent_t *e)
{
    return e->key[0] == 0 && e->key[1] == 0;
}

/* Which of two used slots to give up first: one not locked out before one that is, then the one
 * least recently failed, or the one whose lockout ends first. */
static bool limit_sooner(const limit_ent_t *e, const limit_ent_t *v, int64_t now)
{
    bool free_e = e->blocked_until_ms <= now;
    bool free_v = v->blocked_until_ms <= now;
    if (free_e != free_v) {
        return free_e;
    }
    return free_e ? e->last_ms < v->last_ms : e->blocked_until_ms < v->blocked_until_ms;
}

static limit_ent_t *limit_find(col_auth_t *a, const uint64_t key[2], bool create, int64_t now)
{
    limit_ent_t *victim = NULL;
    for (size_t i = 0; i < LIMITER_SIZE; i++) {
        limit_ent_t *e = &a->limits[i];
        if (e->key[0] == key[0] && e->key[1] == key[1]) {
            return e;
        }
        if (victim != NULL && limit_empty(victim)) {
            continue;
        }
        if (victim == NULL || limit_empty(e) || limit_sooner(e, victim, now)) {
            victim = e;
        }
    }
    if (!create) {
        return NULL;
    }
    memset(victim, 0, sizeof(*victim));
    victim->key[0] = key[0];
    victim->key[1] = key[1];
    victim->window_ms = now;
    victim->last_ms = now;
    return victim;
}

/* Milliseconds until key may try again; 0 when it may now. */
static int64_t limit_wait(col_auth_t *a, const uint64_t key[2], int64_t now)
{
    limit_ent_t *e = limit_find(a, key, false, now);
    return e != NULL && e->blocked_until_ms > now ? e->blocked_until_ms - now : 0;
}

static void limit_fail(col_auth_t *a, const uint64_t key[2], unsigned limit, int64_t now)
{
    limit_ent_t *e = limit_find(a, key, true, now);
    /* The history of lockouts is forgotten an hour after the last failure or the end of the
     * last lockout, whichever is later: a lockout longer than the hour still counts. */
    int64_t quiet_since = e->blocked_until_ms > e->last_ms ? e->blocked_until_ms : e->last_ms;
    if (now - quiet_since >= LOCKOUT_FORGET_MS) {
        e->lockouts = 0;
    }
    if (now - e->window_ms >= LIMIT_WINDOW_MS) {
        e->window_ms = now;
        e->failures = 0;
    }
    e->last_ms = now;
    if (++e->failures >= limit) {
        unsigned shift = e->lockouts < LOCKOUT_MAX_SHIFT ? e->lockouts : LOCKOUT_MAX_SHIFT;
        e->blocked_until_ms = now + ((int64_t)LOCKOUT_BASE_MS << shift);
        e->lockouts++;
        e->failures = 0;
        e->window_ms = now;
    }
}

static void limit_forget(col_auth_t *a, const uint64_t key[2], int64_t now)
{
    limit_ent_t *e = limit_find(a, key, false, now);
    if (e != NULL) {
        memset(e, 0, sizeof(*e));
    }
}

const char *col__auth_check(col_auth_t *a, const char *addr, const char *user, size_t user_len,
                            const char *pw, size_t pw_len, int64_t now, int64_t *wait_ms)
{
    uint64_t ka[2];
    uint64_t ku[2];
    limit_key("a:", addr, strlen(addr), ka);
    limit_key("u:", user, user_len, ku);
    pthread_mutex_lock(&a->mu);
    int64_t wa = limit_wait(a, ka, now);
    int64_t wu = limit_wait(a, ku, now);
    pthread_mutex_unlock(&a->mu);
    *wait_ms = wa > wu ? wa : wu;
    if (*wait_ms > 0) {
        return NULL;
    }
    const char *who = col_users_check_password(a->users, user, user_len, pw, pw_len);
    pthread_mutex_lock(&a->mu);
    if (who != NULL) {
        limit_forget(a, ku, now);
    } else {
        limit_fail(a, ka, LIMIT_PER_ADDR, now);
        limit_fail(a, ku, LIMIT_PER_USER, now);
    }
    pthread_mutex_unlock(&a->mu);
    return who;
}

/* ---- header parsers ------------------------------------------------------------------------ */

int col_auth_parse_authorization(const char *value, col_cred_t *out)
{
    memset(out, 0, sizeof(*out));
    size_t sl = strcspn(value, " ");
    const char *arg = value + sl;
    while (*arg == ' ') {
        arg++;
    }
    size_t al = strlen(arg);
    while (al > 0 && arg[al - 1] == ' ') {
        al--;
    }
    if (sl == 6 && strncasecmp(value, "Bearer", 6) == 0) {
        if (al == 0) {
            return WF_E_INVAL;
        }
        if (al > TOKEN_MAX) {
            return WF_E_LIMIT;
        }
        for (size_t i = 0; i < al; i++) {
            if ((unsigned char)arg[i] <= 0x20 || (unsigned char)arg[i] >= 0x7f) {
                return WF_E_INVAL;
            }
        }
        out->kind = COL_CRED_BEARER;
        out->token = arg;
        out->token_len = al;
        return 0;
    }
    if (sl != 5 || strncasecmp(value, "Basic", 5) != 0) {
        return WF_E_INVAL;
    }
    uint8_t dec[COL_USERS_NAME_MAX + COL_USERS_PASSWORD_MAX + 2];
    size_t dl;
    int rc = col__base64_decode(arg, al, false, dec, sizeof(dec), &dl);
    if (rc != 0) {
        return rc;
    }
    const uint8_t *colon = memchr(dec, ':', dl);
    if (colon == NULL || colon == dec) {
        rc = WF_E_INVAL;
        goto out;
    }
    size_t ul = (size_t)(colon - dec);
    size_t pl = dl - ul - 1;
    if (ul > COL_USERS_NAME_MAX || pl > COL_USERS_PASSWORD_MAX) {
        rc = WF_E_LIMIT;
        goto out;
    }
    for (size_t i = 0; i < ul; i++) {
        if (dec[i] < 0x20 || dec[i] == 0x7f) {
            rc = WF_E_INVAL;
            goto out;
        }
    }
    if (memchr(colon + 1, '\0', pl) != NULL) {
        rc = WF_E_INVAL;
        goto out;
    }
    out->kind = COL_CRED_BASIC;
    memcpy(out->user, dec, ul);
    out->user[ul] = '\0';
    out->user_len = ul;
    memcpy(out->password, colon + 1, pl);
    out->password[pl] = '\0';
    out->password_len = pl;
out:
    OPENSSL_cleanse(dec, sizeof(dec));
    return rc;
}

int col_auth_cookie_session(const char *h, uint8_t id[32])
{
    static const char name[] = "weft_session=";
    const size_t nl = sizeof(name) - 1;
    for (const char *p = h; p != NULL && *p != '\0';) {
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        const char *end = strchr(p, ';');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t')) {
            len--;
        }
        if (len == nl + 64 && memcmp(p, name, nl) == 0) {
            const char *v = p + nl;
            bool ok = true;
            for (size_t i = 0; i < 32 && ok; i++) {
                int x = wf_hex_digit((unsigned char)v[2 * i]);
                int y = wf_hex_digit((unsigned char)v[2 * i + 1]);
                ok = x >= 0 && y >= 0;
                id[i] = (uint8_t)(ok ? x * 16 + y : 0);
            }
            if (ok) {
                return 0;
            }
        }
        p = end != NULL ? end + 1 : NULL;
    }
    return WF_E_NOTFOUND;
}

/* ---- the hook ------------------------------------------------------------------------------ */

/* Requests that need no credentials, by the route they matched. */
static bool is_public(const col_auth_t *a, const char *method, const char *route)
{
    /* "/" is the UI's route (col_ui): index.html and every bundled file, by prefix. */
    static const char *const open_routes[] = {"/-/healthy", "/-/ready", "/api/auth/info",
                                              "/api/login", "/",        NULL};
    static const char *const ingest_routes[] = {"/api/v1/write",
                                                "/v1/metrics",
                                                "/api/v1/otlp/v1/metrics",
                                                "/v1/traces",
                                                "/api/v1/import/prometheus",
                                                NULL};
    for (size_t i = 0; open_routes[i] != NULL; i++) {
        if (strcmp(route, open_routes[i]) == 0) {
            return true;
        }
    }
    if (a->opt.auth_ingest) {
        return false;
    }
    for (size_t i = 0; ingest_routes[i] != NULL; i++) {
        if (strcmp(route, ingest_routes[i]) == 0) {
            return true;
        }
    }
    /* Zipkin's ingest shares its path with its span query (GET). */
    return strcmp(route, "/api/v2/spans") == 0 && strcmp(method, "POST") == 0;
}

/* The UI's own fetch() calls: a 401 to them must not make the browser ask for Basic
 * credentials in a dialog of its own. */
static bool from_script(col_req_t *req)
{
    const char *accept = col_req_header(req, "Accept");
    const char *mode = col_req_header(req, "Sec-Fetch-Mode");
    return col_req_header(req, "X-Requested-With") != NULL ||
           (accept != NULL && strstr(accept, "application/json") != NULL) ||
           (mode != NULL && strcmp(mode, "navigate") != 0);
}

static bool deny(col_auth_t *a, col_req_t *req, col_resp_t *resp, unsigned status, const char *msg)
{
    if (status == 401) {
        atomic_fetch_add(&a->rejected[REJ_UNAUTHORIZED], 1);
        col_resp_api_error(resp, 401, "unauthorized", "%s", msg);
        if (!from_script(req)) {
            col_resp_header(resp, "WWW-Authenticate", "Basic realm=\"weft\", charset=\"UTF-8\"");
        }
    } else {
        atomic_fetch_add(&a->rejected[REJ_FORBIDDEN], 1);
        col_resp_api_error(resp, status, "forbidden", "%s", msg);
    }
    return false;
}

static void retry_after(col_resp_t *resp, int64_t wait_ms)
{
    char v[24];
    snprintf(v, sizeof(v), "%lld", (long long)((wait_ms + 999) / 1000));
    col_resp_header(resp, "Retry-After", v);
}

/* A Basic credential (header is the whole Authorization value, c its parse): 0 when it is
 * good (a cached success, else the limiter and the hash), WF_E_INVAL when it is not, or
 * WF_E_LIMIT with *wait_ms when the client address or the name is locked out. */
static int basic_verdict(col_auth_t *a, const char *header, const col_cred_t *c, const char *addr,
                         int64_t *wait_ms)
{
    uint8_t key[32];
    sha256(header, strlen(header), key);
    int64_t now = now_ms();
    bool hit = false;
    pthread_mutex_lock(&a->mu);
    for (size_t i = 0; i < BASIC_CACHE_SIZE; i++) {
        basic_ent_t *e = &a->basic[i];
        if (e->until_ms > now && CRYPTO_memcmp(e->key, key, 32) == 0) {
            hit = true;
        }
    }
    pthread_mutex_unlock(&a->mu);
    atomic_fetch_add(&a->basic_cache[hit], 1);
    if (hit) {
        return 0;
    }
    *wait_ms = 0;
    const char *who = col__auth_check(a, addr, c->user, c->user_len, c->password, c->password_len,
                                      now_ms(), wait_ms);
    if (*wait_ms > 0) {
        atomic_fetch_add(&a->rejected[REJ_LIMITED], 1);
        return WF_E_LIMIT;
    }
    if (who == NULL) {
        return WF_E_INVAL;
    }
    pthread_mutex_lock(&a->mu);
    basic_ent_t *e = &a->basic[a->basic_next];
    a->basic_next = (a->basic_next + 1) % BASIC_CACHE_SIZE;
    memcpy(e->key, key, 32);
    snprintf(e->user, sizeof(e->user), "%s", who);
    e->until_ms = now_ms() + BASIC_CACHE_TTL_MS;
    pthread_mutex_unlock(&a->mu);
    return 0;
}

static bool check_basic(col_auth_t *a, const char *header, col_cred_t *c, col_req_t *req,
                        col_resp_t *resp)
{
    char addr[64];
    col_req_client_addr(req, addr, sizeof(addr));
    int64_t wait_ms = 0;
    int rc = basic_verdict(a, header, c, addr, &wait_ms);
    if (rc == WF_E_LIMIT) {
        col_resp_api_error(resp, 429, "rate_limited", "too many failed logins: retry in %lld s",
                           (long long)((wait_ms + 999) / 1000));
        retry_after(resp, wait_ms);
        return false;
    }
    return rc == 0 || deny(a, req, resp, 401, "invalid username or password");
}

bool col_auth_ingest_credentials(void *arg, const char *addr, const char *authorization, char *why,
                                 size_t whycap, bool *retry_later)
{
    col_auth_t *a = arg;
    *retry_later = false;
    if (a == NULL || a->users == NULL || !a->opt.auth_ingest) {
        return true;
    }
    col_cred_t c;
    int rc =
        authorization != NULL ? col_auth_parse_authorization(authorization, &c) : WF_E_NOTFOUND;
    bool ok = false;
    if (rc == WF_E_NOTFOUND) {
        snprintf(why, whycap, "authentication required: send Basic or Bearer credentials");
    } else if (rc != 0) {
        snprintf(why, whycap, "malformed or unsupported authorization (want Basic or Bearer)");
    } else if (c.kind == COL_CRED_BEARER) {
        ok = col_users_check_token(a->users, c.token, c.token_len) != NULL;
        if (!ok) {
            snprintf(why, whycap, "invalid token");
        }
    } else {
        int64_t wait_ms = 0;
        rc = basic_verdict(a, authorization, &c, addr, &wait_ms);
        ok = rc == 0;
        if (rc == WF_E_LIMIT) {
            *retry_later = true;
            snprintf(why, whycap, "too many failed logins: retry in %lld s",
                     (long long)((wait_ms + 999) / 1000));
        } else if (!ok) {
            snprintf(why, whycap, "invalid username or password");
        }
    }
    OPENSSL_cleanse(&c, sizeof(c));
    if (!ok && rc != WF_E_LIMIT) {
        atomic_fetch_add(&a->rejected[REJ_UNAUTHORIZED], 1);
    }
    return ok;
}

static bool auth_hook(void *arg, const char *route, col_req_t *req, col_resp_t *resp)
{
    col_auth_t *a = arg;
    if (is_public(a, req->method, route)) {
        return true;
    }
    const char *authz = col_req_header(req, "Authorization");
    if (authz != NULL) {
        col_cred_t c;
        int rc = col_auth_parse_authorization(authz, &c);
        bool ok;
        if (rc != 0) {
            ok = deny(a, req, resp, 401,
                      "malformed or unsupported Authorization header (want "
                      "Basic or Bearer)");
        } else if (c.kind == COL_CRED_BEARER) {
            ok = col_users_check_token(a->users, c.token, c.token_len) != NULL ||
                 deny(a, req, resp, 401, "invalid token");
        } else {
            ok = check_basic(a, authz, &c, req, resp);
        }
        OPENSSL_cleanse(&c, sizeof(c));
        return ok;
    }
    const char *cookie = col_req_header(req, "Cookie");
    uint8_t id[32];
    if (cookie == NULL || col_auth_cookie_session(cookie, id) != 0) {
        return deny(a, req, resp, 401,
                    "authentication required: log in, or send Basic or Bearer credentials");
    }
    bool safe = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    const char *sent = col_req_header(req, "X-Weft-CSRF");
    bool found = false;
    bool csrf_ok = false;
    pthread_mutex_lock(&a->mu);
    sess_t *s = sess_find(a, id, now_ms());
    if (s != NULL) {
        found = true;
        csrf_ok =
            safe || (sent != NULL && strlen(sent) == 64 && CRYPTO_memcmp(sent, s->csrf, 64) == 0);
    }
    pthread_mutex_unlock(&a->mu);
    if (!found) {
        return deny(a, req, resp, 401, "session expired or unknown: log in again");
    }
    if (!csrf_ok) {
        return deny(a, req, resp, 403, "missing or wrong X-Weft-CSRF header");
    }
    return true;
}

/* ---- endpoints ----------------------------------------------------------------------------- */

static bool secure_request(col_req_t *req)
{
    const char *p = col_req_header(req, "X-Forwarded-Proto");
    return p != NULL && strcasecmp(p, "https") == 0;
}

static void h_info(void *arg, col_req_t *req, col_resp_t *resp)
{
    col_auth_t *a = arg;
    wf_buf_t *b = &resp->body;
    if (a->users == NULL) {
        wf_buf_puts(b, "{\"strategy\":\"anonymous\",\"user\":null,\"csrfToken\":null}");
        return;
    }
    const char *cookie = col_req_header(req, "Cookie");
    uint8_t id[32];
    wf_buf_puts(b, "{\"strategy\":\"login\",\"user\":");
    bool found = false;
    if (cookie != NULL && col_auth_cookie_session(cookie, id) == 0) {
        pthread_mutex_lock(&a->mu);
        sess_t *s = sess_find(a, id, now_ms());
        if (s != NULL) {
            found = true;
            col_json_str(b, s->user, strlen(s->user));
            wf_buf_puts(b, ",\"csrfToken\":");
            col_json_str(b, s->csrf, 64);
        }
        pthread_mutex_unlock(&a->mu);
    }
    if (!found) {
        wf_buf_puts(b, "null,\"csrfToken\":null");
    }
    wf_buf_putc(b, '}');
    col_resp_header(resp, "Cache-Control", "no-store");
}

static void login_error(col_resp_t *resp, unsigned status, const char *msg)
{
    resp->status = status;
    wf_buf_reset(&resp->body);
    wf_buf_puts(&resp->body, "{\"error\":");
    col_json_str(&resp->body, msg, strlen(msg));
    wf_buf_putc(&resp->body, '}');
}

static void h_login(void *arg, col_req_t *req, col_resp_t *resp)
{
    col_auth_t *a = arg;
    col_resp_header(resp, "Cache-Control", "no-store");
    if (a->users == NULL) {
        login_error(resp, 404, "this collector has no users file (--users): it is anonymous");
        return;
    }
    /* A cross-site form cannot send JSON without a CORS preflight, which is never granted. */
    const char *ct = col_req_header(req, "Content-Type");
    if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0 ||
        (ct[16] != '\0' && ct[16] != ';' && ct[16] != ' ')) {
        login_error(resp, 415, "want Content-Type: application/json");
        return;
    }
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)req->body, req->body_len, 0, &jerr);
    json_t *ju = doc != NULL ? json_object_get(doc, "username") : NULL;
    json_t *jp = doc != NULL ? json_object_get(doc, "password") : NULL;
    if (!json_is_string(ju) || !json_is_string(jp)) {
        json_decref(doc);
        login_error(resp, 400, "want a JSON object {\"username\": string, \"password\": string}");
        return;
    }
    char addr[64];
    col_req_client_addr(req, addr, sizeof(addr));
    const char *user = json_string_value(ju);
    size_t ul = json_string_length(ju);
    int64_t wait_ms = 0;
    const char *who = col__auth_check(a, addr, user, ul, json_string_value(jp),
                                      json_string_length(jp), now_ms(), &wait_ms);
    json_decref(doc);
    if (wait_ms > 0) {
        atomic_fetch_add(&a->logins[LOGIN_LIMITED], 1);
        char msg[96];
        snprintf(msg, sizeof(msg), "too many failed logins: retry in %lld s",
                 (long long)((wait_ms + 999) / 1000));
        login_error(resp, 429, msg);
        retry_after(resp, wait_ms);
        return;
    }
    if (who == NULL) {
        atomic_fetch_add(&a->logins[LOGIN_FAILED], 1);
        WF_LOG_RL(WF_INFO, 1, "auth", "login failed", "client=%s", addr);
        login_error(resp, 401, "invalid username or password");
        return;
    }
    uint8_t id[32];
    char csrf[65];
    pthread_mutex_lock(&a->mu);
    sess_create(a, who, now_ms(), id, csrf);
    pthread_mutex_unlock(&a->mu);
    atomic_fetch_add(&a->logins[LOGIN_OK], 1);
    char idhex[65];
    hex32(id, idhex);
    char cookie[160];
    snprintf(cookie, sizeof(cookie), "weft_session=%s; Path=/; HttpOnly; SameSite=Strict%s", idhex,
             secure_request(req) ? "; Secure" : "");
    col_resp_header(resp, "Set-Cookie", cookie);
    wf_buf_puts(&resp->body, "{\"user\":");
    col_json_str(&resp->body, who, strlen(who));
    wf_buf_puts(&resp->body, ",\"csrfToken\":");
    col_json_str(&resp->body, csrf, 64);
    wf_buf_putc(&resp->body, '}');
    OPENSSL_cleanse(id, sizeof(id));
    OPENSSL_cleanse(idhex, sizeof(idhex));
    OPENSSL_cleanse(cookie, sizeof(cookie));
}

static void h_logout(void *arg, col_req_t *req, col_resp_t *resp)
{
    col_auth_t *a = arg;
    const char *cookie = col_req_header(req, "Cookie");
    uint8_t id[32];
    if (a->users != NULL && cookie != NULL && col_auth_cookie_session(cookie, id) == 0) {
        pthread_mutex_lock(&a->mu);
        sess_t *s = sess_find(a, id, now_ms());
        if (s != NULL) {
            sess_unlink(a, s);
        }
        pthread_mutex_unlock(&a->mu);
    }
    char clear[128];
    snprintf(clear, sizeof(clear), "weft_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict%s",
             secure_request(req) ? "; Secure" : "");
    col_resp_header(resp, "Set-Cookie", clear);
    col_resp_header(resp, "Cache-Control", "no-store");
    wf_buf_puts(&resp->body, "{\"user\":null}");
}

void col_auth_register(col_auth_t *a, col_http_t *h)
{
    col_http_route(h, "GET", "/api/auth/info", false, 0, h_info, a);
    col_http_route(h, "POST", "/api/login", false, LOGIN_BODY_MAX, h_login, a);
    col_http_route(h, "POST", "/api/logout", false, LOGIN_BODY_MAX, h_logout, a);
    if (a->users != NULL) {
        col_http_set_auth(h, auth_hook, a);
    }
}

void col_auth_write_metrics(col_auth_t *a, wf_buf_t *out)
{
    static const char *const results[LOGIN_RESULTS] = {"success", "failure", "rate_limited"};
    static const char *const reasons[REJ_REASONS] = {"unauthorized", "forbidden", "rate_limited"};
    wf_buf_puts(out, "# HELP weft_collector_logins_total Logins through /api/login, by result.\n"
                     "# TYPE weft_collector_logins_total counter\n");
    for (size_t i = 0; i < LOGIN_RESULTS; i++) {
        wf_buf_printf(out, "weft_collector_logins_total{result=\"%s\"} %lu\n", results[i],
                      atomic_load(&a->logins[i]));
    }
    wf_buf_puts(out, "# HELP weft_collector_auth_rejected_total Requests refused for want of "
                     "valid credentials, by reason.\n"
                     "# TYPE weft_collector_auth_rejected_total counter\n");
    for (size_t i = 0; i < REJ_REASONS; i++) {
        wf_buf_printf(out, "weft_collector_auth_rejected_total{reason=\"%s\"} %lu\n", reasons[i],
                      atomic_load(&a->rejected[i]));
    }
    wf_buf_printf(out,
                  "# HELP weft_collector_auth_basic_cache_total Basic credentials checked, by "
                  "whether a recent successful check answered (hit) or a hash was computed "
                  "(miss).\n# TYPE weft_collector_auth_basic_cache_total counter\n"
                  "weft_collector_auth_basic_cache_total{result=\"hit\"} %lu\n"
                  "weft_collector_auth_basic_cache_total{result=\"miss\"} %lu\n",
                  atomic_load(&a->basic_cache[1]), atomic_load(&a->basic_cache[0]));
    pthread_mutex_lock(&a->mu);
    size_t n = a->nsess;
    pthread_mutex_unlock(&a->mu);
    wf_buf_printf(out,
                  "# HELP weft_collector_sessions Login sessions open now.\n"
                  "# TYPE weft_collector_sessions gauge\nweft_collector_sessions %zu\n",
                  n);
}
