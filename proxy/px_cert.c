/*
 * px_cert.c - the workload certificate from the mesh CA (see px_cert.h).
 *
 * The thread owns its curl handle and the keys it generates until px_creds takes a reference;
 * it touches nothing else of the proxy but px->creds (thread-safe), the counters and the trust
 * bundle version (under px->bundle_mu). A request in flight is abandoned within about a second
 * of px_cert_stop through curl's progress callback; a wait is a condition wait that the stop
 * wakes at once.
 */
#include "px_cert.h"

#include "px_creds.h"
#include "wf_alloc.h"
#include "wf_clock.h"
#include "wf_err.h"
#include "wf_log.h"

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define CONNECT_TIMEOUT_MS 5000
#define REQUEST_TIMEOUT_MS 10000
#define MAX_ANSWER (1 << 20) /* a chain and a bundle; anything larger is not an answer */
#define REGISTER_POLL_MS 100 /* how often to look whether the registration is done */
#define RENEW_SLICE_MS 1000  /* a wait for the renewal re-reads the wall clock this often */
#define MIN_RENEW_DELAY_MS 100

struct px_cert {
    px_proxy_t *px;
    px_control_t *pc;
    char *url;      /* base, without a trailing slash */
    char *auth;     /* "Authorization: Bearer <token>" */
    char *fallback; /* the identity asked for when the registration answer names none */
    uv_thread_t thread;
    uv_mutex_t mu;
    uv_cond_t cond;
    bool stop; /* under mu */
    _Atomic bool stopping;
};

static int set_err(char *err, size_t cap, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int set_err(char *err, size_t cap, int rc, const char *fmt, ...)
{
    if (err != NULL && cap > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, cap, fmt, ap);
        va_end(ap);
    }
    ERR_clear_error();
    return rc;
}

/* ---- pure parts: identity, CSR, timing ---- */

static bool part_ok(const char *s)
{
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == '/' || (unsigned char)*p < 0x21 || *p == 0x7f) {
            return false;
        }
    }
    return true;
}

int px_cert_identity(const char *ns, const char *sa, char *out, size_t cap)
{
    if (sa == NULL || sa[0] == '\0') {
        sa = "default";
    }
    if (ns == NULL || ns[0] == '\0' || !part_ok(ns) || !part_ok(sa)) {
        return WF_E_INVAL;
    }
    int n = snprintf(out, cap, "spiffe://cluster.local/ns/%s/sa/%s", ns, sa);
    return n < 0 || (size_t)n >= cap ? WF_E_LIMIT : 0;
}

int px_cert_make_csr(const char *identity, EVP_PKEY **key, char **pem, char *err, size_t errcap)
{
    EVP_PKEY *pk = NULL;
    X509_REQ *req = NULL;
    GENERAL_NAMES *names = NULL;
    STACK_OF(X509_EXTENSION) *exts = NULL;
    BIO *b = NULL;
    int rc = WF_E_INVAL;
    *key = NULL;
    *pem = NULL;
    size_t idlen = strlen(identity);
    if (idlen < 10 || idlen >= PX_CERT_MAX_ID || strncmp(identity, "spiffe://", 9) != 0) {
        return set_err(err, errcap, WF_E_INVAL, "not a SPIFFE identity");
    }
    pk = EVP_EC_gen("P-256");
    req = X509_REQ_new();
    names = GENERAL_NAMES_new();
    exts = sk_X509_EXTENSION_new_null();
    if (pk == NULL || req == NULL || names == NULL || exts == NULL) {
        set_err(err, errcap, 0, "cannot generate the key");
        goto fail;
    }
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_IA5STRING *uri = ASN1_IA5STRING_new();
    WF_ASSERT(gn != NULL && uri != NULL);
    WF_ASSERT(ASN1_STRING_set(uri, identity, (int)idlen) == 1);
    GENERAL_NAME_set0_value(gn, GEN_URI, uri);
    WF_ASSERT(sk_GENERAL_NAME_push(names, gn) > 0);
    /* Critical: the subject is empty, so the SAN is the whole name (RFC 5280 4.2.1.6). */
    X509_EXTENSION *ext = X509V3_EXT_i2d(NID_subject_alt_name, 1, names);
    WF_ASSERT(ext != NULL && sk_X509_EXTENSION_push(exts, ext) > 0);
    if (X509_REQ_set_version(req, 0) != 1 || X509_REQ_set_pubkey(req, pk) != 1 ||
        X509_REQ_add_extensions(req, exts) != 1 || X509_REQ_sign(req, pk, EVP_sha256()) <= 0) {
        set_err(err, errcap, 0, "cannot build the CSR");
        goto fail;
    }
    b = BIO_new(BIO_s_mem());
    WF_ASSERT(b != NULL);
    if (PEM_write_bio_X509_REQ(b, req) != 1) {
        set_err(err, errcap, 0, "cannot encode the CSR");
        goto fail;
    }
    char *data;
    long n = BIO_get_mem_data(b, &data);
    *pem = wf_strndup(data, (size_t)n);
    *key = pk;
    pk = NULL;
    rc = 0;
fail:
    BIO_free(b);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    GENERAL_NAMES_free(names);
    X509_REQ_free(req);
    EVP_PKEY_free(pk);
    return rc;
}

int64_t px_cert_renew_at(int64_t not_before, int64_t not_after)
{
    if (not_after <= not_before) {
        return not_after;
    }
    return not_before + (not_after - not_before) / 2;
}

uint64_t px_cert_retry_ms(uint64_t backoff, int64_t now, int64_t not_after, uint64_t *next)
{
    backoff = backoff < PX_CERT_RETRY_MIN_MS   ? PX_CERT_RETRY_MIN_MS
              : backoff > PX_CERT_RETRY_MAX_MS ? PX_CERT_RETRY_MAX_MS
                                               : backoff;
    uint64_t wait = backoff;
    if (not_after > now) {
        /* Half the time left: the attempts come closer together as the expiry nears, and the
         * last ones still land before it. */
        uint64_t half = (uint64_t)(not_after - now) / 2;
        half = half < MIN_RENEW_DELAY_MS ? MIN_RENEW_DELAY_MS : half;
        wait = half < wait ? half : wait;
    }
    /* Doubled from the wait taken, not the nominal backoff: the short attempts before the
     * expiry must not leave a 30 s wait for the first attempt after it. */
    uint64_t n = wait * 2;
    *next = n < PX_CERT_RETRY_MIN_MS   ? PX_CERT_RETRY_MIN_MS
            : n > PX_CERT_RETRY_MAX_MS ? PX_CERT_RETRY_MAX_MS
                                       : n;
    return wait;
}

/* Every certificate of pem into a new stack; NULL (err filled) unless pem is one or more PEM
 * certificates with nothing but whitespace around them. */
static STACK_OF(X509) *
    parse_certs(const char *pem, size_t len, size_t max, const char *what, char *err, size_t errcap)
{
    if (len > max) {
        set_err(err, errcap, 0, "%s larger than %zu bytes", what, max);
        return NULL;
    }
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    STACK_OF(X509) *sk = sk_X509_new_null();
    WF_ASSERT(b != NULL && sk != NULL);
    X509 *x;
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        WF_ASSERT(sk_X509_push(sk, x) > 0);
    }
    bool clean_end = ERR_GET_REASON(ERR_peek_last_error()) == PEM_R_NO_START_LINE;
    ERR_clear_error();
    BIO_free(b);
    if (sk_X509_num(sk) == 0 || !clean_end) {
        sk_X509_pop_free(sk, X509_free);
        set_err(err, errcap, 0, "%s: not one or more PEM certificates", what);
        return NULL;
    }
    return sk;
}

int px_cert_bundle_check(const char *pem, size_t len, char *err, size_t errcap)
{
    if (len > PX_CERT_MAX_BUNDLE) {
        return set_err(err, errcap, WF_E_LIMIT, "trust bundle larger than %d bytes",
                       PX_CERT_MAX_BUNDLE);
    }
    STACK_OF(X509) *sk = parse_certs(pem, len, PX_CERT_MAX_BUNDLE, "trust bundle", err, errcap);
    if (sk == NULL) {
        return WF_E_INVAL;
    }
    sk_X509_pop_free(sk, X509_free);
    return 0;
}

int px_cert_apply_bundle(px_proxy_t *px, const char *pem, size_t len, uint64_t version, char *err,
                         size_t errcap)
{
    int rc = 1;
    uv_mutex_lock(&px->bundle_mu);
    if (version > atomic_load(&px->trust_bundle_version)) {
        rc = px_cert_bundle_check(pem, len, err, errcap);
        if (rc == 0) {
            rc = px_creds_set_roots(px->creds, pem, len, err, errcap);
        }
        if (rc == 0) {
            atomic_store(&px->trust_bundle_version, version);
        } else {
            rc = WF_E_INVAL;
        }
    }
    uv_mutex_unlock(&px->bundle_mu);
    return rc;
}

/* ---- the CSR exchange ---- */

typedef struct {
    wf_buf_t *b;
    bool over;
} sink_t;

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    sink_t *s = arg;
    size_t len = size * n;
    if (s->b->len + len > MAX_ANSWER) {
        s->over = true;
        return 0;
    }
    wf_buf_append(s->b, p, len);
    return len;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    px_cert_t *c = arg;
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return atomic_load(&c->stopping) ? 1 : 0;
}

/* Sleep ms unless stopped first; true when stopping. */
static bool wait_or_stop(px_cert_t *c, uint64_t ms)
{
    uv_mutex_lock(&c->mu);
    if (!c->stop) {
        (void)uv_cond_timedwait(&c->cond, &c->mu, ms * 1000000);
    }
    bool stop = c->stop;
    uv_mutex_unlock(&c->mu);
    return stop;
}

/* Whether leaf chains through untrusted to one of roots. Time is not checked: expiry has its own
 * handling, and a clock a little behind the CA's must not refuse a fresh certificate. */
static bool chains_to(X509 *leaf, STACK_OF(X509) * untrusted, STACK_OF(X509) * roots, int *why)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    WF_ASSERT(store != NULL && ctx != NULL);
    for (int i = 0; i < sk_X509_num(roots); i++) {
        X509_STORE_add_cert(store, sk_X509_value(roots, i));
    }
    X509_STORE_set_flags(store, X509_V_FLAG_NO_CHECK_TIME);
    bool ok = X509_STORE_CTX_init(ctx, store, leaf, untrusted) == 1 && X509_verify_cert(ctx) == 1;
    *why = X509_STORE_CTX_get_error(ctx);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    ERR_clear_error();
    return ok;
}

/* Whether the installed certificate (if any) chains to the installed roots. */
static bool leaf_trusted(px_proxy_t *px)
{
    px_creds_snap_t *s = px_creds_acquire(px->creds);
    int why;
    bool ok = s->leaf == NULL || chains_to(s->leaf, s->intermediates, s->roots, &why);
    px_creds_release(s);
    return ok;
}

/* The leaf of chain must chain to a root of bundle and name exactly identity. */
static int check_issued(const char *chain_pem, size_t chain_len, const char *bundle,
                        size_t bundle_len, const char *identity, char *err, size_t errcap)
{
    STACK_OF(X509) *chain =
        parse_certs(chain_pem, chain_len, MAX_ANSWER, "certificate_chain", err, errcap);
    STACK_OF(X509) *roots =
        parse_certs(bundle, bundle_len, PX_CERT_MAX_BUNDLE, "trust_bundle", err, errcap);
    int rc = WF_E_INVAL, why;
    if (chain == NULL || roots == NULL) {
        goto out;
    }
    X509 *leaf = sk_X509_value(chain, 0);
    char id[PX_CERT_MAX_ID];
    if (px_creds_spiffe_id(leaf, id, sizeof(id)) != 0 || strcmp(id, identity) != 0) {
        set_err(err, errcap, 0, "the certificate does not name %s", identity);
        goto out;
    }
    if (!chains_to(leaf, chain, roots, &why)) {
        set_err(err, errcap, 0, "the certificate does not verify with the trust bundle: %s",
                X509_verify_cert_error_string(why));
        goto out;
    }
    rc = 0;
out:
    sk_X509_pop_free(chain, X509_free);
    sk_X509_pop_free(roots, X509_free);
    ERR_clear_error();
    return rc;
}

/* A 200 answer: check it and install the bundle, then the chain with key. */
static int take_answer(px_cert_t *c, const wf_buf_t *body, EVP_PKEY *key, const char *identity,
                       char *err, size_t errcap)
{
    json_t *j = json_loadb((const char *)body->data, body->len, 0, NULL);
    json_t *chain = json_is_object(j) ? json_object_get(j, "certificate_chain") : NULL;
    json_t *bundle = json_is_object(j) ? json_object_get(j, "trust_bundle") : NULL;
    json_t *ver = json_is_object(j) ? json_object_get(j, "trust_bundle_version") : NULL;
    int rc = WF_E_INVAL;
    if (!json_is_string(chain) || !json_is_string(bundle) || !json_is_integer(ver) ||
        json_integer_value(ver) < 1) {
        set_err(err, errcap, 0,
                "the answer lacks certificate_chain, trust_bundle or trust_bundle_version");
        goto out;
    }
    const char *cp = json_string_value(chain), *bp = json_string_value(bundle);
    size_t cl = json_string_length(chain), bl = json_string_length(bundle);
    if (check_issued(cp, cl, bp, bl, identity, err, errcap) != 0) {
        goto out;
    }
    /* The bundle first: the certificate must never be in use with roots that lack its CA. */
    if (px_cert_apply_bundle(c->px, bp, bl, (uint64_t)json_integer_value(ver), err, errcap) < 0) {
        goto out;
    }
    rc = px_creds_set_cert(c->px->creds, cp, cl, key, err, errcap);
out:
    json_decref(j);
    return rc;
}

/*
 * One CSR exchange for identity under registration id, with a new key. 0 when a certificate
 * was installed, WF_E_NOTFOUND when the control plane does not know the registration, another
 * negative code otherwise (err says why).
 */
static int request_cert(px_cert_t *c, CURL *h, const char *id, const char *identity, char *err,
                        size_t errcap)
{
    EVP_PKEY *key = NULL;
    char *csr = NULL, *body = NULL;
    struct curl_slist *hdrs = NULL;
    wf_buf_t url = WF_BUF_INIT, answer = WF_BUF_INIT;
    int rc = px_cert_make_csr(identity, &key, &csr, err, errcap);
    if (rc != 0) {
        goto out;
    }
    json_t *o = json_pack("{s:s}", "csr", csr);
    body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    WF_ASSERT(body != NULL);
    char *eid = curl_easy_escape(h, id, 0);
    wf_buf_printf(&url, "%s/v1/certificate?proxy=%s", c->url, eid != NULL ? eid : "");
    wf_buf_cstr(&url);
    curl_free(eid);
    sink_t sink = {&answer, false};
    hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, c->auth);
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, (const char *)url.data);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)REQUEST_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "weft-proxy/" WEFT_VERSION);
    CURLcode cc = curl_easy_perform(h);
    long status = 0;
    if (cc != CURLE_OK) {
        rc = set_err(err, errcap, WF_E_INTERNAL, "%s",
                     sink.over ? "answer too large" : curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status == 200) {
        rc = take_answer(c, &answer, key, identity, err, errcap);
        goto out;
    }
    json_t *j = json_loadb((const char *)answer.data, answer.len, 0, NULL);
    json_t *e = json_is_object(j) ? json_object_get(j, "error") : NULL;
    rc = set_err(err, errcap, status == 404 ? WF_E_NOTFOUND : WF_E_INVAL, "status %ld: %s", status,
                 json_is_string(e) ? json_string_value(e) : "unexpected answer");
    json_decref(j);
out:
    curl_slist_free_all(hdrs);
    wf_buf_free(&url);
    wf_buf_free(&answer);
    free(body);
    wf_free(csr);
    EVP_PKEY_free(key);
    return rc;
}

static void cert_thread(void *arg)
{
    px_cert_t *c = arg;
    px_proxy_t *px = c->px;
    CURL *h = curl_easy_init();
    uint64_t backoff = PX_CERT_RETRY_MIN_MS;
    int64_t renew_at = 0; /* Unix ms; 0: obtain one now */
    uint64_t checked_gen = 0;
    int64_t untrusted_next = 0; /* the earliest renewal for roots that left the certificate */
    uint64_t untrusted_backoff = PX_CERT_RETRY_MIN_MS;
    while (h != NULL && !atomic_load(&c->stopping)) {
        int64_t now = wf_wall_ms();
        uint64_t gen = px_creds_generation(px->creds);
        if (renew_at > now && gen != checked_gen) {
            checked_gen = gen;
            /* New roots (the end of a root rotation, or an operator's bundle) that no longer
             * cover the certificate: renew now rather than at half-life. Backed off, so a CA
             * that keeps signing with a root outside the bundle is not asked in a loop. */
            if (!leaf_trusted(px)) {
                int64_t at = now >= untrusted_next ? now : untrusted_next;
                renew_at = at < renew_at ? at : renew_at;
                untrusted_next = at + (int64_t)untrusted_backoff;
                untrusted_backoff = untrusted_backoff * 2 > PX_CERT_RETRY_MAX_MS
                                        ? PX_CERT_RETRY_MAX_MS
                                        : untrusted_backoff * 2;
                WF_LOG(WF_INFO, "proxy",
                       "the trust bundle no longer covers the workload certificate, renewing",
                       "in_ms=%lld", (long long)(renew_at - now));
                continue;
            }
            untrusted_backoff = PX_CERT_RETRY_MIN_MS;
        }
        if (renew_at > now) {
            uint64_t left = (uint64_t)(renew_at - now);
            if (wait_or_stop(c, left < RENEW_SLICE_MS ? left : RENEW_SLICE_MS)) {
                break;
            }
            continue;
        }
        char id[512], identity[PX_CERT_MAX_ID];
        if (px_control_registered(c->pc, id, sizeof(id), identity, sizeof(identity)) != 0) {
            if (wait_or_stop(c, REGISTER_POLL_MS)) {
                break;
            }
            continue;
        }
        if (identity[0] == '\0') {
            snprintf(identity, sizeof(identity), "%s", c->fallback);
        }
        char err[512] = "";
        int rc = request_cert(c, h, id, identity, err, sizeof(err));
        if (atomic_load(&c->stopping)) {
            break;
        }
        px_creds_snap_t *s = px_creds_acquire(px->creds);
        int64_t not_before = s->not_before * 1000, not_after = s->not_after * 1000;
        px_creds_release(s);
        now = wf_wall_ms();
        if (rc == 0) {
            atomic_fetch_add(&px->cert_renew_ok, 1);
            backoff = PX_CERT_RETRY_MIN_MS;
            /* Counted from when it arrived: a CA that backdates not_before for clock skew must
             * not make the proxy renew at once. */
            renew_at = px_cert_renew_at(not_before > now ? not_before : now, not_after);
            renew_at = renew_at < now + MIN_RENEW_DELAY_MS ? now + MIN_RENEW_DELAY_MS : renew_at;
            WF_LOG(WF_INFO, "proxy", "workload certificate installed",
                   "identity=%s not_after=%lld renew_in_ms=%lld", identity,
                   (long long)(not_after / 1000), (long long)(renew_at - now));
            continue;
        }
        atomic_fetch_add(&px->cert_renew_error, 1);
        if (rc == WF_E_NOTFOUND) {
            px_control_reregister(c->pc); /* the CA checks the registry: register first */
        }
        uint64_t wait = px_cert_retry_ms(backoff, now, not_after, &backoff);
        WF_LOG_RL(WF_WARN, 10, "proxy", "workload certificate request failed",
                  "url=%s err=\"%s\" retry_ms=%llu", c->url, err, (unsigned long long)wait);
        if (wait_or_stop(c, wait)) {
            break;
        }
    }
    if (h != NULL) {
        curl_easy_cleanup(h);
    }
}

px_cert_t *px_cert_start(px_proxy_t *px, px_control_t *pc, const char *url, const char *token,
                         const char *fallback_identity)
{
    px_cert_t *c = wf_calloc(1, sizeof(*c));
    c->px = px;
    c->pc = pc;
    size_t ul = strlen(url);
    while (ul > 0 && url[ul - 1] == '/') {
        ul--;
    }
    c->url = wf_strndup(url, ul);
    wf_buf_t a = WF_BUF_INIT;
    wf_buf_printf(&a, "Authorization: Bearer %s", token);
    wf_buf_cstr(&a);
    c->auth = (char *)wf_buf_detach(&a, NULL);
    c->fallback = wf_strdup(fallback_identity);
    uv_mutex_init(&c->mu);
    uv_cond_init(&c->cond);
    if (uv_thread_create(&c->thread, cert_thread, c) != 0) {
        WF_LOG(WF_ERROR, "proxy", "cannot start the certificate thread");
        uv_cond_destroy(&c->cond);
        uv_mutex_destroy(&c->mu);
        wf_free(c->url);
        wf_free(c->auth);
        wf_free(c->fallback);
        wf_free(c);
        return NULL;
    }
    return c;
}

void px_cert_stop(px_cert_t *c)
{
    if (c == NULL) {
        return;
    }
    atomic_store(&c->stopping, true);
    uv_mutex_lock(&c->mu);
    c->stop = true;
    uv_cond_broadcast(&c->cond);
    uv_mutex_unlock(&c->mu);
    uv_thread_join(&c->thread);
    uv_cond_destroy(&c->cond);
    uv_mutex_destroy(&c->mu);
    wf_free(c->url);
    wf_free(c->auth);
    wf_free(c->fallback);
    wf_free(c);
}

/* ---- what the admin listener shows ---- */

bool px_cert_expired(const px_proxy_t *px, int64_t now)
{
    px_creds_snap_t *s = px_creds_acquire(px->creds);
    bool expired = s->leaf != NULL && now >= s->not_after * 1000;
    px_creds_release(s);
    return expired;
}

void px_cert_stats(const px_proxy_t *px, int64_t now, wf_buf_t *out)
{
    px_creds_snap_t *s = px_creds_acquire(px->creds);
    bool valid = s->leaf != NULL && now >= s->not_before * 1000 && now < s->not_after * 1000;
    wf_buf_printf(out,
                  "# HELP weft_proxy_cert_expiry_timestamp_seconds When the workload certificate "
                  "in use expires, Unix seconds (0: none).\n"
                  "# TYPE weft_proxy_cert_expiry_timestamp_seconds gauge\n"
                  "weft_proxy_cert_expiry_timestamp_seconds %lld\n"
                  "# HELP weft_proxy_cert_valid 1 while the workload certificate in use is within "
                  "its validity, 0 when there is none or it expired.\n"
                  "# TYPE weft_proxy_cert_valid gauge\n"
                  "weft_proxy_cert_valid %d\n"
                  "# HELP weft_proxy_cert_renewals_total Workload certificate requests to the "
                  "mesh CA (the first one included), by result.\n"
                  "# TYPE weft_proxy_cert_renewals_total counter\n"
                  "weft_proxy_cert_renewals_total{result=\"ok\"} %llu\n"
                  "weft_proxy_cert_renewals_total{result=\"error\"} %llu\n"
                  "# HELP weft_proxy_trust_bundle_version Version of the mesh trust bundle in use "
                  "(0: none from the control plane).\n"
                  "# TYPE weft_proxy_trust_bundle_version gauge\n"
                  "weft_proxy_trust_bundle_version %llu\n",
                  (long long)(s->leaf != NULL ? s->not_after : 0), valid ? 1 : 0,
                  (unsigned long long)atomic_load(&px->cert_renew_ok),
                  (unsigned long long)atomic_load(&px->cert_renew_error),
                  (unsigned long long)atomic_load(&px->trust_bundle_version));
    px_creds_release(s);
}

static json_t *name_json(const X509_NAME *n)
{
    BIO *b = BIO_new(BIO_s_mem());
    WF_ASSERT(b != NULL);
    X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253);
    char *p;
    long len = BIO_get_mem_data(b, &p);
    json_t *j = json_stringn(p, (size_t)len);
    BIO_free(b);
    return j != NULL ? j : json_string("");
}

static int64_t asn1_unix(const ASN1_TIME *t)
{
    struct tm tm;
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1) {
        return 0;
    }
    return (int64_t)timegm(&tm);
}

void px_cert_dump(const px_proxy_t *px, int64_t now, wf_buf_t *out)
{
    px_creds_snap_t *s = px_creds_acquire(px->creds);
    json_t *j = json_object();
    if (s->leaf != NULL) {
        char *serial = NULL;
        BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(s->leaf), NULL);
        if (bn != NULL) {
            serial = BN_bn2hex(bn);
            BN_free(bn);
        }
        json_object_set_new(j, "identity", json_string(s->identity));
        json_object_set_new(j, "serial", json_string(serial != NULL ? serial : ""));
        OPENSSL_free(serial);
        json_object_set_new(j, "not_before", json_integer(s->not_before));
        json_object_set_new(j, "not_after", json_integer(s->not_after));
        json_object_set_new(j, "valid",
                            json_boolean(now >= s->not_before * 1000 && now < s->not_after * 1000));
        json_object_set_new(j, "issuer", name_json(X509_get_issuer_name(s->leaf)));
        /* Certificates are public: the chain lets an operator check it with openssl. */
        BIO *b = BIO_new(BIO_s_mem());
        WF_ASSERT(b != NULL);
        PEM_write_bio_X509(b, s->leaf);
        for (int i = 0; i < sk_X509_num(s->intermediates); i++) {
            PEM_write_bio_X509(b, sk_X509_value(s->intermediates, i));
        }
        char *p;
        long n = BIO_get_mem_data(b, &p);
        json_object_set_new(j, "certificate_chain", json_stringn(p, (size_t)n));
        BIO_free(b);
    } else {
        json_object_set_new(j, "identity", json_null());
        json_object_set_new(j, "valid", json_false());
    }
    json_object_set_new(j, "trust_bundle_version",
                        json_integer((json_int_t)atomic_load(&px->trust_bundle_version)));
    json_t *roots = json_array();
    for (int i = 0; i < sk_X509_num(s->roots); i++) {
        X509 *r = sk_X509_value(s->roots, i);
        json_t *o = json_object();
        json_object_set_new(o, "subject", name_json(X509_get_subject_name(r)));
        json_object_set_new(o, "not_after", json_integer(asn1_unix(X509_get0_notAfter(r))));
        json_array_append_new(roots, o);
    }
    json_object_set_new(j, "roots", roots);
    px_creds_release(s);
    char *text = json_dumps(j, JSON_INDENT(2));
    json_decref(j);
    WF_ASSERT(text != NULL);
    wf_buf_puts(out, text);
    wf_buf_puts(out, "\n");
    free(text);
}
