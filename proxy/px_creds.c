/*
 * px_creds.c - the proxy's workload credentials (see px_creds.h).
 *
 * A change builds a whole new snapshot from the current one plus the new part and swaps it in
 * under the mutex; readers hold their own reference, so a swap never waits for them.
 */
#include "px_creds.h"

#include "wf_alloc.h"
#include "wf_err.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define PX_CREDS_MAX_FILE (1 << 20) /* a PEM file larger than this is not a credential */
#define PX_CREDS_MAX_ID 512

struct px_creds {
    pthread_mutex_t mu;
    px_creds_snap_t *cur;
    _Atomic uint64_t generation;
};

static int set_err(char *err, size_t cap, const char *fmt, ...)
{
    if (err != NULL && cap > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, cap, fmt, ap);
        va_end(ap);
    }
    ERR_clear_error();
    return WF_E_INVAL;
}

static px_creds_snap_t *snap_new(void)
{
    px_creds_snap_t *s = wf_calloc(1, sizeof(*s));
    s->intermediates = sk_X509_new_null();
    s->roots = sk_X509_new_null();
    WF_ASSERT(s->intermediates != NULL && s->roots != NULL);
    atomic_store(&s->refs, 1);
    return s;
}

static void snap_free(px_creds_snap_t *s)
{
    X509_free(s->leaf);
    sk_X509_pop_free(s->intermediates, X509_free);
    EVP_PKEY_free(s->key);
    wf_free(s->identity);
    sk_X509_pop_free(s->roots, X509_free);
    wf_free(s);
}

void px_creds_release(px_creds_snap_t *s)
{
    if (s != NULL && atomic_fetch_sub(&s->refs, 1) == 1) {
        snap_free(s);
    }
}

px_creds_t *px_creds_create(void)
{
    px_creds_t *c = wf_calloc(1, sizeof(*c));
    pthread_mutex_init(&c->mu, NULL);
    c->cur = snap_new();
    return c;
}

void px_creds_destroy(px_creds_t *c)
{
    if (c == NULL) {
        return;
    }
    px_creds_release(c->cur);
    pthread_mutex_destroy(&c->mu);
    wf_free(c);
}

px_creds_snap_t *px_creds_acquire(px_creds_t *c)
{
    pthread_mutex_lock(&c->mu);
    px_creds_snap_t *s = c->cur;
    atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&c->mu);
    return s;
}

uint64_t px_creds_generation(px_creds_t *c)
{
    return atomic_load_explicit(&c->generation, memory_order_acquire);
}

/* Every certificate in pem, in order, into a new stack; NULL when none parses or one of its
 * PEM blocks is damaged (as OpenSSL's readers do, text between blocks is skipped). */
static STACK_OF(X509) * parse_certs(const char *pem, size_t len)
{
    if (len > PX_CREDS_MAX_FILE) {
        return NULL;
    }
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    STACK_OF(X509) *sk = sk_X509_new_null();
    WF_ASSERT(b != NULL && sk != NULL);
    X509 *x;
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        sk_X509_push(sk, x);
    }
    unsigned long e = ERR_peek_last_error();
    bool clean_end = ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
    ERR_clear_error();
    BIO_free(b);
    if (sk_X509_num(sk) == 0 || !clean_end) {
        sk_X509_pop_free(sk, X509_free);
        return NULL;
    }
    return sk;
}

static int64_t asn1_unix(const ASN1_TIME *t)
{
    struct tm tm;
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1) {
        return 0;
    }
    return (int64_t)timegm(&tm);
}

int px_creds_spiffe_id(X509 *cert, char *out, size_t cap)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    int rc = WF_E_NOTFOUND;
    for (int i = 0; names != NULL && i < sk_GENERAL_NAME_num(names) && rc == WF_E_NOTFOUND; i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        if (gn->type != GEN_URI) {
            continue;
        }
        const unsigned char *p = ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier);
        size_t n = (size_t)ASN1_STRING_length(gn->d.uniformResourceIdentifier);
        if (n < 9 || memcmp(p, "spiffe://", 9) != 0 || memchr(p, '\0', n) != NULL) {
            continue;
        }
        if (n + 1 > cap) {
            rc = WF_E_LIMIT;
        } else {
            memcpy(out, p, n);
            out[n] = '\0';
            rc = 0;
        }
    }
    GENERAL_NAMES_free(names);
    return rc;
}

/* A copy of the current snapshot's parts (new references), to change one of them. */
static px_creds_snap_t *snap_copy(const px_creds_snap_t *o)
{
    px_creds_snap_t *s = wf_calloc(1, sizeof(*s));
    if (o->leaf != NULL) {
        X509_up_ref(o->leaf);
        EVP_PKEY_up_ref(o->key);
        s->leaf = o->leaf;
        s->key = o->key;
        s->identity = wf_strdup(o->identity);
        s->not_before = o->not_before;
        s->not_after = o->not_after;
    }
    s->intermediates = X509_chain_up_ref(o->intermediates);
    s->roots = X509_chain_up_ref(o->roots);
    WF_ASSERT(s->intermediates != NULL && s->roots != NULL);
    atomic_store(&s->refs, 1);
    return s;
}

/* Swap n in under the lock: it gets the next generation. Takes ownership of n. */
static void install(px_creds_t *c, px_creds_snap_t *n)
{
    pthread_mutex_lock(&c->mu);
    px_creds_snap_t *old = c->cur;
    n->generation = old->generation + 1;
    c->cur = n;
    atomic_store_explicit(&c->generation, n->generation, memory_order_release);
    pthread_mutex_unlock(&c->mu);
    px_creds_release(old);
}

int px_creds_set_cert(px_creds_t *c, const char *chain_pem, size_t len, EVP_PKEY *key, char *err,
                      size_t errcap)
{
    if (key == NULL) {
        return set_err(err, errcap, "no private key");
    }
    STACK_OF(X509) *chain = parse_certs(chain_pem, len);
    if (chain == NULL) {
        return set_err(err, errcap, "certificate chain: not one or more PEM certificates");
    }
    X509 *leaf = sk_X509_shift(chain);
    char id[PX_CREDS_MAX_ID];
    int rc = px_creds_spiffe_id(leaf, id, sizeof(id));
    if (rc != 0) {
        X509_free(leaf);
        sk_X509_pop_free(chain, X509_free);
        return set_err(err, errcap, "certificate: %s",
                       rc == WF_E_LIMIT ? "SPIFFE URI SAN too long" : "no spiffe:// URI SAN");
    }
    if (X509_check_private_key(leaf, key) != 1) {
        X509_free(leaf);
        sk_X509_pop_free(chain, X509_free);
        return set_err(err, errcap, "the private key does not match the certificate");
    }
    px_creds_snap_t *cur = px_creds_acquire(c);
    px_creds_snap_t *n = snap_copy(cur);
    px_creds_release(cur);
    X509_free(n->leaf);
    EVP_PKEY_free(n->key);
    wf_free(n->identity);
    sk_X509_pop_free(n->intermediates, X509_free);
    EVP_PKEY_up_ref(key);
    n->leaf = leaf;
    n->key = key;
    n->intermediates = chain;
    n->identity = wf_strdup(id);
    n->not_before = asn1_unix(X509_get0_notBefore(leaf));
    n->not_after = asn1_unix(X509_get0_notAfter(leaf));
    install(c, n);
    return 0;
}

int px_creds_set_roots(px_creds_t *c, const char *pem, size_t len, char *err, size_t errcap)
{
    STACK_OF(X509) *roots = parse_certs(pem, len);
    if (roots == NULL) {
        return set_err(err, errcap, "trust bundle: not one or more PEM certificates");
    }
    px_creds_snap_t *cur = px_creds_acquire(c);
    px_creds_snap_t *n = snap_copy(cur);
    px_creds_release(cur);
    sk_X509_pop_free(n->roots, X509_free);
    n->roots = roots;
    install(c, n);
    return 0;
}

/* The whole file into *out (NUL-terminated; caller frees). 0, -errno or WF_E_LIMIT. */
static int read_file(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return -errno;
    }
    char *buf = wf_malloc(PX_CREDS_MAX_FILE + 1);
    size_t n = fread(buf, 1, PX_CREDS_MAX_FILE + 1, f);
    int rc = ferror(f) ? -EIO : n > PX_CREDS_MAX_FILE ? WF_E_LIMIT : 0;
    fclose(f);
    if (rc != 0) {
        wf_free(buf);
        return rc;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

int px_creds_load_files(px_creds_t *c, const char *chain_path, const char *key_path,
                        const char *roots_path, char *err, size_t errcap)
{
    char *chain = NULL, *key_pem = NULL, *roots = NULL;
    size_t chain_len = 0, key_len = 0, roots_len = 0;
    EVP_PKEY *key = NULL;
    int rc = 0;
    const char *bad = NULL;
    if (chain_path != NULL && key_path == NULL) {
        return set_err(err, errcap, "a certificate chain needs its private key file");
    }
    if (chain_path != NULL && (rc = read_file(bad = chain_path, &chain, &chain_len)) != 0) {
        goto io;
    }
    if (key_path != NULL && (rc = read_file(bad = key_path, &key_pem, &key_len)) != 0) {
        goto io;
    }
    if (roots_path != NULL && (rc = read_file(bad = roots_path, &roots, &roots_len)) != 0) {
        goto io;
    }
    if (key_pem != NULL) {
        BIO *b = BIO_new_mem_buf(key_pem, (int)key_len);
        key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
        BIO_free(b);
        if (key == NULL) {
            rc = set_err(err, errcap, "%s: not a PEM private key", key_path);
            goto out;
        }
        if (chain == NULL) {
            rc = set_err(err, errcap, "a private key needs its certificate chain file");
            goto out;
        }
    }
    /* The roots first: a certificate must never be in use with a bundle that lacks its CA. */
    if (roots != NULL && (rc = px_creds_set_roots(c, roots, roots_len, err, errcap)) != 0) {
        goto out;
    }
    if (chain != NULL) {
        rc = px_creds_set_cert(c, chain, chain_len, key, err, errcap);
    }
    goto out;
io:
    if (err != NULL && errcap > 0) {
        snprintf(err, errcap, "%s: %s", bad, wf_strerror(rc));
    }
out:
    EVP_PKEY_free(key);
    wf_free(chain);
    wf_free(key_pem);
    wf_free(roots);
    return rc;
}
