/*
 * px_test_pki.h - certificates made by the unit tests with the OpenSSL API: a CA, leaves with
 * any URI SANs and validity, signed by it or self-signed, and their PEM text. Shared by
 * test_px_creds.c and test_px_cert.c (static functions: each test includes what it uses).
 */
#ifndef PX_TEST_PKI_H
#define PX_TEST_PKI_H

#include "wf_alloc.h"

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <string.h>

#define PKI_UNUSED __attribute__((unused))

typedef struct {
    X509 *cert;
    EVP_PKEY *key;
} pki_t;

static PKI_UNUSED EVP_PKEY *pki_key(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    if (k == NULL) {
        abort();
    }
    return k;
}

/*
 * A certificate for key's public half named cn, with the URI SANs uris[0..n) (none: no SAN
 * extension), valid from now + from_s to now + to_s, serial serial, signed by issuer (NULL:
 * self-signed with key). ca adds basicConstraints CA:TRUE and keyCertSign.
 */
static PKI_UNUSED X509 *pki_cert(EVP_PKEY *key, const char *cn, const pki_t *issuer,
                                 const char *const *uris, int n, long from_s, long to_s,
                                 long serial, bool ca)
{
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_gmtime_adj(X509_getm_notBefore(x), from_s);
    X509_gmtime_adj(X509_getm_notAfter(x), to_s);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer->cert) : name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer != NULL ? issuer->cert : x, x, NULL, NULL, 0);
    if (ca) {
        X509_EXTENSION *e =
            X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE");
        X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
        e = X509V3_EXT_conf_nid(NULL, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
        X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
    }
    if (n > 0) {
        GENERAL_NAMES *names = GENERAL_NAMES_new();
        for (int i = 0; i < n; i++) {
            GENERAL_NAME *gn = GENERAL_NAME_new();
            ASN1_IA5STRING *s = ASN1_IA5STRING_new();
            ASN1_STRING_set(s, uris[i], (int)strlen(uris[i]));
            GENERAL_NAME_set0_value(gn, GEN_URI, s);
            sk_GENERAL_NAME_push(names, gn);
        }
        X509_add1_ext_i2d(x, NID_subject_alt_name, names, 0, X509V3_ADD_DEFAULT);
        GENERAL_NAMES_free(names);
    }
    if (X509_sign(x, issuer != NULL ? issuer->key : key, EVP_sha256()) <= 0) {
        abort();
    }
    return x;
}

/* A self-signed CA valid for a day around now. */
static PKI_UNUSED pki_t pki_ca(const char *cn)
{
    pki_t ca;
    ca.key = pki_key();
    ca.cert = pki_cert(ca.key, cn, NULL, NULL, 0, -3600, 86400, 1, true);
    return ca;
}

static PKI_UNUSED void pki_free(pki_t *p)
{
    X509_free(p->cert);
    EVP_PKEY_free(p->key);
    p->cert = NULL;
    p->key = NULL;
}

/* The PEM of x appended to the NUL-terminated heap string *acc (NULL: a new one). */
static PKI_UNUSED char *pki_pem_append(char *acc, X509 *x)
{
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, x);
    char *p;
    long n = BIO_get_mem_data(b, &p);
    size_t old = acc != NULL ? strlen(acc) : 0;
    acc = wf_realloc(acc, old + (size_t)n + 1);
    memcpy(acc + old, p, (size_t)n);
    acc[old + (size_t)n] = '\0';
    BIO_free(b);
    return acc;
}

static PKI_UNUSED char *pki_pem(X509 *x)
{
    return pki_pem_append(NULL, x);
}

#endif
