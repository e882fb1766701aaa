/*
 * test_cp_ca.c - unit tests of the mesh CA (controlplane/cp_ca.c): the managed root's files
 * and modes and its reload, CSRs made with the OpenSSL API signed into chains that
 * X509_verify_cert accepts with exactly the SPIFFE URI SAN, each kind of refusal, a given
 * intermediate signer under an organisation root built here, refused signers, and root
 * rotation driven through its phases with a fake clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cp_ca.h"
#include "wf_alloc.h"
#include "wf_err.h"
#include "wt_util.h"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ID "spiffe://cluster.local/ns/shop/sa/cart"
#define HOUR_MS ((int64_t)3600 * 1000)

/* ---- helpers: keys, CSRs, certificates, verification ---- */

static EVP_PKEY *key_ec(const char *curve)
{
    EVP_PKEY *k = EVP_EC_gen(curve);
    assert_non_null(k);
    return k;
}

static EVP_PKEY *key_rsa(unsigned bits)
{
    EVP_PKEY *k = EVP_RSA_gen(bits);
    assert_non_null(k);
    return k;
}

static char *bio_text(BIO *b)
{
    char *data = NULL;
    long n = BIO_get_mem_data(b, &data);
    char *out = wf_malloc((size_t)n + 1);
    memcpy(out, data, (size_t)n);
    out[n] = '\0';
    BIO_free(b);
    return out;
}

/* A CSR for key with the SANs in the OpenSSL syntax (NULL: none), as PEM. With tamper, one
 * byte of the signature is flipped after signing. */
static char *make_csr(EVP_PKEY *key, const char *sans, bool tamper)
{
    X509_REQ *req = X509_REQ_new();
    assert_int_equal(X509_REQ_set_version(req, 0), 1);
    assert_int_equal(X509_REQ_set_pubkey(req, key), 1);
    if (sans != NULL) {
        STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
        X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, sans);
        assert_non_null(e);
        sk_X509_EXTENSION_push(exts, e);
        assert_int_equal(X509_REQ_add_extensions(req, exts), 1);
        sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    }
    assert_true(X509_REQ_sign(req, key, EVP_sha256()) > 0);
    if (tamper) {
        const ASN1_BIT_STRING *sig = NULL;
        X509_REQ_get0_signature(req, &sig, NULL);
        unsigned char *p = (unsigned char *)ASN1_STRING_get0_data(sig);
        p[ASN1_STRING_length(sig) - 2] ^= 0x5a;
    }
    BIO *b = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_X509_REQ(b, req), 1);
    X509_REQ_free(req);
    return bio_text(b);
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *v)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, v);
    assert_non_null(e);
    assert_int_equal(X509_add_ext(x, e, -1), 1);
    X509_EXTENSION_free(e);
}

/* A certificate for key named cn, signed by issuer/ikey (NULL: self-signed), valid
 * [nb, na] in Unix seconds; a CA when ca. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *ikey, bool ca,
                       time_t nb, time_t na)
{
    static long serial = 1000;
    X509 *x = X509_new();
    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_NAME *nm = X509_NAME_new();
    X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_subject_name(x, nm);
    X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : nm);
    X509_NAME_free(nm);
    ASN1_TIME_set(X509_getm_notBefore(x), nb);
    ASN1_TIME_set(X509_getm_notAfter(x), na);
    X509_set_pubkey(x, key);
    add_ext(x, issuer != NULL ? issuer : x, NID_basic_constraints,
            ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    add_ext(x, issuer != NULL ? issuer : x, NID_key_usage,
            ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
    add_ext(x, issuer != NULL ? issuer : x, NID_subject_key_identifier, "hash");
    add_ext(x, issuer != NULL ? issuer : x, NID_authority_key_identifier, "keyid:always");
    assert_true(X509_sign(x, ikey != NULL ? ikey : key, EVP_sha256()) > 0);
    return x;
}

static void write_cert(const char *path, X509 *x, bool append)
{
    FILE *f = fopen(path, append ? "a" : "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_X509(f, x), 1);
    fclose(f);
}

static void write_key(const char *path, EVP_PKEY *k)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
}

static STACK_OF(X509) * pem_certs(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    STACK_OF(X509) *sk = sk_X509_new_null();
    X509 *x;
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        sk_X509_push(sk, x);
    }
    ERR_clear_error();
    BIO_free(b);
    return sk;
}

/* Whether chain (leaf first) verifies against the roots of bundle at Unix time at. */
static bool verifies(const char *chain, const char *bundle, time_t at)
{
    STACK_OF(X509) *c = pem_certs(chain), *roots = pem_certs(bundle);
    assert_true(sk_X509_num(c) >= 1);
    X509 *leaf = sk_X509_shift(c);
    X509_STORE *st = X509_STORE_new();
    for (int i = 0; i < sk_X509_num(roots); i++) {
        X509_STORE_add_cert(st, sk_X509_value(roots, i));
    }
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    assert_int_equal(X509_STORE_CTX_init(ctx, st, leaf, c), 1);
    X509_STORE_CTX_set_time(ctx, 0, at);
    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
    bool ok = X509_verify_cert(ctx) == 1;
    ERR_clear_error();
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(st);
    X509_free(leaf);
    sk_X509_pop_free(c, X509_free);
    sk_X509_pop_free(roots, X509_free);
    return ok;
}

static X509 *leaf_of(const char *chain)
{
    STACK_OF(X509) *c = pem_certs(chain);
    X509 *leaf = sk_X509_shift(c);
    sk_X509_pop_free(c, X509_free);
    assert_non_null(leaf);
    return leaf;
}

static int64_t t_s(const ASN1_TIME *t)
{
    struct tm tm;
    assert_int_equal(ASN1_TIME_to_tm(t, &tm), 1);
    return (int64_t)timegm(&tm);
}

static int count_certs(const char *pem)
{
    STACK_OF(X509) *c = pem_certs(pem);
    int n = sk_X509_num(c);
    sk_X509_pop_free(c, X509_free);
    return n;
}

/* The value of one metric line of cp_ca_metrics, or -1. */
static long metric(cp_ca_t *ca, const char *line_prefix)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cp_ca_metrics(ca, f);
    fclose(f);
    long v = -1;
    for (char *p = buf; p != NULL && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        size_t n = strlen(line_prefix);
        if (strncmp(p, line_prefix, n) == 0 && p[n] == ' ') {
            v = strtol(p + n + 1, NULL, 10);
        }
    }
    free(buf);
    return v;
}

static cp_ca_t *open_managed(const char *dir, int64_t now_ms, int64_t ttl_ms)
{
    cp_ca_opts_t o = {.dir = dir, .cert_ttl_ms = ttl_ms};
    cp_ca_t *ca = NULL;
    char err[256] = "";
    int rc = cp_ca_open(&o, now_ms, &ca, err, sizeof(err));
    if (rc != 0) {
        fail_msg("cp_ca_open: %s", err);
    }
    return ca;
}

static char *sign_ok(cp_ca_t *ca, const char *csr, int64_t now_ms, cp_ca_issued_t *out)
{
    char err[256] = "";
    int rc = cp_ca_sign(ca, csr, strlen(csr), ID, now_ms, out, err, sizeof(err));
    if (rc != 0) {
        fail_msg("cp_ca_sign: %d %s", rc, err);
    }
    return out->chain_pem;
}

/* ---- tests ---- */

static void test_root_files_and_reload(void **state)
{
    (void)state;
    char *tmp = wt_tmpdir("cpca"), dir[512], path[600];
    snprintf(dir, sizeof(dir), "%s/ca", tmp);
    int64_t now = (int64_t)time(NULL) * 1000;
    cp_ca_t *ca = open_managed(dir, now, 0);
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    const char *files[] = {"root-1.pem", "root-1-key.pem", "state.json"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
    }
    char *b1 = NULL, *b2 = NULL;
    int64_t v1 = 0, v2 = 0;
    cp_ca_bundle(ca, &b1, &v1);
    assert_int_equal(v1, 1);
    assert_int_equal(count_certs(b1), 1);
    /* The root: self-signed CA for 10 years, P-256, subject O=cluster.local, CN=weft root CA. */
    X509 *root = leaf_of(b1);
    assert_int_equal(X509_self_signed(root, 1), 1);
    assert_true(X509_get_extension_flags(root) & EXFLAG_CA);
    X509_EXTENSION *bc = X509_get_ext(root, X509_get_ext_by_NID(root, NID_basic_constraints, -1));
    assert_int_equal(X509_EXTENSION_get_critical(bc), 1);
    assert_int_equal(X509_get_key_usage(root), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
    assert_non_null(X509_get0_subject_key_id(root));
    assert_non_null(X509_get0_authority_key_id(root));
    char subj[256];
    X509_NAME_oneline(X509_get_subject_name(root), subj, sizeof(subj));
    assert_string_equal(subj, "/O=cluster.local/CN=weft root CA");
    int64_t life = t_s(X509_get0_notAfter(root)) - now / 1000;
    assert_true(life > 3649LL * 86400 && life <= 3651LL * 86400);
    assert_int_equal(metric(ca, "weft_control_ca_root_expiry_timestamp_seconds"),
                     t_s(X509_get0_notAfter(root)));
    X509_free(root);
    cp_ca_close(ca);

    /* Opened again: the same root, not a new one. */
    ca = open_managed(dir, now + 1000, 0);
    cp_ca_bundle(ca, &b2, &v2);
    assert_string_equal(b1, b2);
    assert_int_equal(v2, 1);
    json_t *s = cp_ca_status(ca);
    assert_string_equal(json_string_value(json_object_get(s, "mode")), "managed");
    json_t *r0 = json_array_get(json_object_get(s, "roots"), 0);
    assert_string_equal(json_string_value(json_object_get(r0, "state")), "ACTIVE");
    json_decref(s);
    cp_ca_close(ca);

    /* A state that names a root whose key is gone is refused, not replaced by a new root. */
    snprintf(path, sizeof(path), "%s/root-1-key.pem", dir);
    unlink(path);
    cp_ca_opts_t o = {.dir = dir};
    char err[256] = "";
    assert_int_equal(cp_ca_open(&o, now, &ca, err, sizeof(err)), WF_E_CORRUPT);
    assert_null(ca);
    assert_non_null(strstr(err, "root 1"));
    wf_free(b1);
    wf_free(b2);
    wt_rm_rf(tmp);
    free(tmp);
}

static void check_leaf(const char *chain, const char *bundle, int64_t now_ms, int64_t ttl_s)
{
    assert_true(verifies(chain, bundle, (time_t)(now_ms / 1000)));
    X509 *leaf = leaf_of(chain);
    /* Exactly one SAN, the URI, in a critical extension; the subject is empty. */
    int crit = -1, idx = -1;
    GENERAL_NAMES *gens = X509_get_ext_d2i(leaf, NID_subject_alt_name, &crit, &idx);
    assert_non_null(gens);
    assert_int_equal(crit, 1);
    assert_int_equal(sk_GENERAL_NAME_num(gens), 1);
    const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, 0);
    int type = 0;
    const ASN1_STRING *v = GENERAL_NAME_get0_value(g, &type);
    assert_int_equal(type, GEN_URI);
    assert_int_equal(ASN1_STRING_length(v), strlen(ID));
    assert_memory_equal(ASN1_STRING_get0_data(v), ID, strlen(ID));
    GENERAL_NAMES_free(gens);
    assert_int_equal(X509_NAME_entry_count(X509_get_subject_name(leaf)), 0);
    /* Not a CA; serverAuth and clientAuth; digitalSignature + keyEncipherment; an AKI. */
    assert_false(X509_get_extension_flags(leaf) & EXFLAG_CA);
    assert_true(X509_get_extension_flags(leaf) & EXFLAG_BCONS);
    assert_int_equal(X509_get_extended_key_usage(leaf), XKU_SSL_SERVER | XKU_SSL_CLIENT);
    assert_int_equal(X509_get_key_usage(leaf), KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT);
    assert_non_null(X509_get0_authority_key_id(leaf));
    /* Valid from a minute ago for the TTL; a 128-bit serial. */
    assert_int_equal(t_s(X509_get0_notBefore(leaf)), now_ms / 1000 - 60);
    assert_int_equal(t_s(X509_get0_notAfter(leaf)), now_ms / 1000 + ttl_s);
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf), NULL);
    assert_int_equal(BN_num_bits(bn), 127);
    BN_free(bn);
    X509_free(leaf);
    /* Expired once the TTL has run out. */
    assert_false(verifies(chain, bundle, (time_t)(now_ms / 1000 + ttl_s + 1)));
}

static void test_sign(void **state)
{
    (void)state;
    char *tmp = wt_tmpdir("cpca");
    int64_t now = (int64_t)time(NULL) * 1000;
    cp_ca_t *ca = open_managed(tmp, now, 2 * HOUR_MS);
    cp_ca_issued_t out;
    EVP_PKEY *k256 = key_ec("P-256"), *k384 = key_ec("P-384"), *rsa = key_rsa(2048);
    struct {
        EVP_PKEY *key;
        const char *sans;
    } ok[] = {
        {k256, "URI:" ID},
        {k256, NULL}, /* no SAN asked: the registered one is given */
        {k384, "URI:" ID},
        {rsa, "URI:" ID},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char *csr = make_csr(ok[i].key, ok[i].sans, false);
        sign_ok(ca, csr, now, &out);
        assert_int_equal(count_certs(out.chain_pem), 1);
        assert_int_equal(out.bundle_version, 1);
        assert_int_equal(out.not_after, now / 1000 + 7200);
        check_leaf(out.chain_pem, out.bundle_pem, now, 7200);
        cp_ca_issued_free(&out);
        wf_free(csr);
    }
    assert_int_equal(metric(ca, "weft_control_ca_certificates_issued_total"), 4);
    assert_int_equal(metric(ca, "weft_control_ca_trust_bundle_version"), 1);
    assert_int_equal(metric(ca, "weft_control_ca_roots"), 1);
    EVP_PKEY_free(k256);
    EVP_PKEY_free(k384);
    EVP_PKEY_free(rsa);
    cp_ca_close(ca);
    wt_rm_rf(tmp);
    free(tmp);
}

static void test_refusals(void **state)
{
    (void)state;
    char *tmp = wt_tmpdir("cpca");
    int64_t now = (int64_t)time(NULL) * 1000;
    cp_ca_t *ca = open_managed(tmp, now, 0);
    EVP_PKEY *k = key_ec("P-256"), *weak = key_rsa(1024), *p521 = key_ec("P-521");
    struct {
        char *csr;
        int rc;
    } cases[] = {
        {make_csr(k, "URI:spiffe://cluster.local/ns/shop/sa/admin", false), CP_CA_E_IDENTITY},
        {make_csr(k, "URI:" ID ",DNS:cart.shop.svc", false), CP_CA_E_IDENTITY},
        {make_csr(k, "URI:" ID ",IP:10.0.0.1", false), CP_CA_E_IDENTITY},
        {make_csr(k, "email:a@b.c", false), CP_CA_E_IDENTITY},
        {make_csr(k, "URI:" ID ",URI:" ID, false), CP_CA_E_IDENTITY},
        {make_csr(k, "URI:" ID, true), CP_CA_E_MALFORMED},
        {make_csr(weak, "URI:" ID, false), CP_CA_E_KEY},
        {make_csr(p521, "URI:" ID, false), CP_CA_E_KEY},
        {wf_strdup("-----BEGIN CERTIFICATE REQUEST-----\nnot base64\n"
                   "-----END CERTIFICATE REQUEST-----\n"),
         CP_CA_E_MALFORMED},
        /* marked encrypted: refused, never a password prompt on the control plane's tty */
        {wf_strdup("-----BEGIN CERTIFICATE REQUEST-----\nProc-Type: 4,ENCRYPTED\n"
                   "DEK-Info: AES-128-CBC,0123456789ABCDEF0123456789ABCDEF\n\n"
                   "MIIBxTCCAWugAwIBAgIQXOSXFxoQMMEGAiIn6oyljjAKBggqhkjOPQQDAjAvMRYw\n"
                   "-----END CERTIFICATE REQUEST-----\n"),
         CP_CA_E_MALFORMED},
        {wf_strdup("garbage"), CP_CA_E_MALFORMED},
        {wf_strdup(""), CP_CA_E_MALFORMED},
    };
    size_t n = sizeof(cases) / sizeof(cases[0]);
    for (size_t i = 0; i < n; i++) {
        cp_ca_issued_t out;
        char err[256] = "";
        int rc =
            cp_ca_sign(ca, cases[i].csr, strlen(cases[i].csr), ID, now, &out, err, sizeof(err));
        if (rc != cases[i].rc) {
            fail_msg("case %zu: %d (%s), want %d", i, rc, err, cases[i].rc);
        }
        assert_true(err[0] != '\0');
        assert_null(out.chain_pem);
        wf_free(cases[i].csr);
    }
    cp_ca_count_refusal(ca, CP_CA_R_UNREGISTERED);
    assert_int_equal(metric(ca, "weft_control_ca_csr_refusals_total{reason=\"identity\"}"), 5);
    assert_int_equal(metric(ca, "weft_control_ca_csr_refusals_total{reason=\"malformed\"}"), 5);
    assert_int_equal(metric(ca, "weft_control_ca_csr_refusals_total{reason=\"key\"}"), 2);
    assert_int_equal(metric(ca, "weft_control_ca_csr_refusals_total{reason=\"unregistered\"}"), 1);
    assert_int_equal(metric(ca, "weft_control_ca_certificates_issued_total"), 0);
    /* cp_ca_check_csr is the same check without counting. */
    char *good = make_csr(k, "URI:" ID, false);
    assert_int_equal(cp_ca_check_csr(good, strlen(good), ID, NULL, 0), 0);
    assert_int_equal(
        cp_ca_check_csr(good, strlen(good), "spiffe://cluster.local/ns/a/sa/b", NULL, 0),
        CP_CA_E_IDENTITY);
    wf_free(good);
    EVP_PKEY_free(k);
    EVP_PKEY_free(weak);
    EVP_PKEY_free(p521);
    cp_ca_close(ca);
    wt_rm_rf(tmp);
    free(tmp);
}

static int open_given(const char *cert, const char *key, const char *chain, int64_t now_ms,
                      cp_ca_t **ca, char *err, size_t len)
{
    cp_ca_opts_t o = {.cert_file = cert, .key_file = key, .chain_file = chain};
    return cp_ca_open(&o, now_ms, ca, err, len);
}

static void test_intermediate(void **state)
{
    (void)state;
    char *tmp = wt_tmpdir("cpca");
    char rootp[600], interp[600], interk[600], chainp[600], otherp[600], leafp[600], leafk[600],
        oldp[600], oldk[600];
    snprintf(rootp, sizeof(rootp), "%s/org-root.pem", tmp);
    snprintf(interp, sizeof(interp), "%s/inter.pem", tmp);
    snprintf(interk, sizeof(interk), "%s/inter-key.pem", tmp);
    snprintf(chainp, sizeof(chainp), "%s/chain.pem", tmp);
    snprintf(otherp, sizeof(otherp), "%s/other-root.pem", tmp);
    snprintf(leafp, sizeof(leafp), "%s/leaf.pem", tmp);
    snprintf(leafk, sizeof(leafk), "%s/leaf-key.pem", tmp);
    snprintf(oldp, sizeof(oldp), "%s/old.pem", tmp);
    snprintf(oldk, sizeof(oldk), "%s/old-key.pem", tmp);
    time_t now_s = time(NULL);
    int64_t now = (int64_t)now_s * 1000;
    EVP_PKEY *rk = key_ec("P-256"), *ik = key_ec("P-256"), *ok = key_ec("P-256"),
             *lk = key_ec("P-256"), *xk = key_ec("P-256");
    X509 *root = make_cert(rk, "org root", NULL, NULL, true, now_s - 3600, now_s + 86400 * 30);
    X509 *inter =
        make_cert(ik, "weft intermediate", root, rk, true, now_s - 3600, now_s + 86400 * 7);
    X509 *other = make_cert(ok, "other root", NULL, NULL, true, now_s - 3600, now_s + 86400);
    X509 *leaf = make_cert(lk, "not a ca", root, rk, false, now_s - 3600, now_s + 86400);
    X509 *old = make_cert(xk, "expired", root, rk, true, now_s - 7200, now_s - 3600);
    write_cert(rootp, root, false);
    write_cert(interp, inter, false);
    write_key(interk, ik);
    write_cert(chainp, inter, false);
    write_cert(chainp, root, true);
    write_cert(otherp, other, false);
    write_cert(leafp, leaf, false);
    write_key(leafk, lk);
    write_cert(oldp, old, false);
    write_key(oldk, xk);

    cp_ca_t *ca = NULL;
    char err[512] = "";
    assert_int_equal(open_given(interp, interk, chainp, now, &ca, err, sizeof(err)), 0);
    EVP_PKEY *k = key_ec("P-256");
    char *csr = make_csr(k, "URI:" ID, false);
    cp_ca_issued_t out;
    sign_ok(ca, csr, now, &out);
    /* The chain is leaf + intermediate; the bundle is the organisation's root alone. */
    assert_int_equal(count_certs(out.chain_pem), 2);
    assert_int_equal(count_certs(out.bundle_pem), 1);
    char *root_pem = wt_read_file(rootp, NULL);
    assert_string_equal(out.bundle_pem, root_pem);
    check_leaf(out.chain_pem, out.bundle_pem, now, 24 * 3600);
    /* A certificate never outlives its signer: 24 h asked, 7 days left, 24 h given; with the
     * clock 6.5 days on, only the half day left. */
    cp_ca_issued_free(&out);
    int64_t later = now + (int64_t)(6.5 * 86400) * 1000;
    sign_ok(ca, csr, later, &out);
    assert_int_equal(out.not_after, now_s + 86400 * 7);
    cp_ca_issued_free(&out);
    /* A given signer does not rotate. */
    assert_int_equal(cp_ca_rotate(ca, now, err, sizeof(err)), CP_CA_E_EXTERNAL);
    json_t *s = cp_ca_status(ca);
    assert_string_equal(json_string_value(json_object_get(s, "mode")), "given");
    json_decref(s);
    cp_ca_close(ca);

    /* A self-signed CA given alone is the root. */
    write_key(interk, rk);
    assert_int_equal(open_given(rootp, interk, NULL, now, &ca, err, sizeof(err)), 0);
    sign_ok(ca, csr, now, &out);
    assert_int_equal(count_certs(out.chain_pem), 1);
    assert_string_equal(out.bundle_pem, root_pem);
    assert_true(verifies(out.chain_pem, out.bundle_pem, now_s));
    cp_ca_issued_free(&out);
    cp_ca_close(ca);
    write_key(interk, ik);

    /* Refused at start, each with a sentence naming the problem. */
    struct {
        const char *cert, *key, *chain, *needle;
    } bad[] = {
        {interp, leafk, chainp, "does not match"},
        {leafp, leafk, chainp, "not a CA"},
        {oldp, oldk, chainp, "expired"},
        {interp, interk, interp, "holds no self-signed root"},
        {interp, interk, NULL, "--ca-chain"},
        {interp, NULL, chainp, "--ca-key"},
        {"/nonexistent.pem", interk, chainp, "no PEM certificate"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        ca = NULL;
        assert_true(open_given(bad[i].cert, bad[i].key, bad[i].chain, now, &ca, err, sizeof(err)) <
                    0);
        assert_null(ca);
        if (strstr(err, bad[i].needle) == NULL) {
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, bad[i].needle);
        }
    }
    /* A chain whose root did not sign the intermediate does not verify. */
    write_cert(otherp, inter, false);
    write_cert(otherp, other, true);
    assert_true(open_given(interp, interk, otherp, now, &ca, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "does not verify"));

    wf_free(root_pem);
    wf_free(csr);
    EVP_PKEY_free(k);
    X509_free(root);
    X509_free(inter);
    X509_free(other);
    X509_free(leaf);
    X509_free(old);
    EVP_PKEY_free(rk);
    EVP_PKEY_free(ik);
    EVP_PKEY_free(ok);
    EVP_PKEY_free(lk);
    EVP_PKEY_free(xk);
    wt_rm_rf(tmp);
    free(tmp);
}

typedef struct {
    bool done;
    int calls;
    int64_t asked;
} prop_t;

static bool propagated(void *arg, int64_t version, char *missing, size_t len)
{
    prop_t *p = arg;
    p->calls++;
    p->asked = version;
    snprintf(missing, len, "%s", p->done ? "" : "cart-v1.shop");
    return p->done;
}

static const char *root_state(cp_ca_t *ca, size_t i)
{
    static char buf[32];
    json_t *s = cp_ca_status(ca);
    json_t *r = json_array_get(json_object_get(s, "roots"), i);
    snprintf(buf, sizeof(buf), "%s", r ? json_string_value(json_object_get(r, "state")) : "-");
    json_decref(s);
    return buf;
}

static void test_rotation(void **state)
{
    (void)state;
    char *tmp = wt_tmpdir("cpca");
    int64_t t0 = (int64_t)time(NULL) * 1000, ttl = HOUR_MS;
    cp_ca_opts_t o = {.dir = tmp, .cert_ttl_ms = ttl, .propagation_ms = 60000};
    cp_ca_t *ca = NULL;
    char err[256] = "";
    assert_int_equal(cp_ca_open(&o, t0, &ca, err, sizeof(err)), 0);
    EVP_PKEY *k = key_ec("P-256");
    char *csr = make_csr(k, "URI:" ID, false);
    cp_ca_issued_t a, b;
    char *bundle1 = NULL, *bundle2 = NULL, *bundle3 = NULL;
    int64_t v;
    sign_ok(ca, csr, t0, &a);
    cp_ca_bundle(ca, &bundle1, &v);

    /* Phase 1: a second root is trusted, the first still signs. */
    assert_int_equal(cp_ca_rotate(ca, t0 + 1000, err, sizeof(err)), 0);
    assert_int_equal(cp_ca_rotate(ca, t0 + 2000, err, sizeof(err)), CP_CA_E_BUSY);
    cp_ca_bundle(ca, &bundle2, &v);
    assert_int_equal(v, 2);
    assert_int_equal(count_certs(bundle2), 2);
    assert_string_equal(root_state(ca, 0), "ACTIVE");
    assert_string_equal(root_state(ca, 1), "TRUSTED");
    sign_ok(ca, csr, t0 + 2000, &b);
    assert_true(verifies(b.chain_pem, bundle1, (time_t)(t0 / 1000 + 2)));
    cp_ca_issued_free(&b);
    /* Not propagated, timeout not reached: nothing moves. */
    prop_t p = {.done = false};
    assert_int_equal(cp_ca_tick(ca, t0 + 30000, propagated, &p), 0);
    assert_int_equal(p.calls, 1);
    assert_int_equal(p.asked, 2);
    assert_string_equal(root_state(ca, 1), "TRUSTED");
    /* A restart mid-rotation resumes it. */
    cp_ca_close(ca);
    assert_int_equal(cp_ca_open(&o, t0 + 31000, &ca, err, sizeof(err)), 0);
    assert_int_equal(cp_ca_bundle_version(ca), 2);
    assert_string_equal(root_state(ca, 0), "ACTIVE");
    assert_string_equal(root_state(ca, 1), "TRUSTED");

    /* Phase 2: every proxy has the bundle: the new root signs, the old one is still trusted. */
    p.done = true;
    int64_t t_switch = t0 + 32000;
    assert_int_equal(cp_ca_tick(ca, t_switch, propagated, &p), 1);
    assert_string_equal(root_state(ca, 0), "RETIRING");
    assert_string_equal(root_state(ca, 1), "ACTIVE");
    assert_int_equal(cp_ca_bundle_version(ca), 2);
    sign_ok(ca, csr, t_switch, &b);
    time_t ts = (time_t)(t_switch / 1000);
    assert_false(verifies(b.chain_pem, bundle1, ts)); /* not the old root's */
    assert_true(verifies(b.chain_pem, bundle2, ts));
    assert_true(verifies(a.chain_pem, bundle2, ts)); /* old certificates still verify */
    cp_ca_issued_free(&b);
    /* The overlap is 2 x TTL by default; a restart keeps the retiring root. */
    cp_ca_close(ca);
    assert_int_equal(cp_ca_open(&o, t_switch + 1000, &ca, err, sizeof(err)), 0);
    assert_string_equal(root_state(ca, 0), "RETIRING");
    assert_int_equal(cp_ca_tick(ca, t_switch + 2 * ttl - 1, NULL, NULL), 0);
    assert_int_equal(metric(ca, "weft_control_ca_roots"), 2);

    /* Phase 3: the overlap ran out: the old root leaves the bundle, and its files go. */
    assert_int_equal(cp_ca_tick(ca, t_switch + 2 * ttl, NULL, NULL), 1);
    cp_ca_bundle(ca, &bundle3, &v);
    assert_int_equal(v, 3);
    assert_int_equal(count_certs(bundle3), 1);
    assert_string_equal(root_state(ca, 0), "ACTIVE");
    assert_false(verifies(a.chain_pem, bundle3, (time_t)(t0 / 1000 + 10)));
    char path[600];
    snprintf(path, sizeof(path), "%s/root-1.pem", tmp);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(metric(ca, "weft_control_ca_trust_bundle_version"), 3);

    /* A rotation the proxies never confirm switches at the propagation timeout. */
    int64_t t1 = t_switch + 2 * ttl + 1000;
    assert_int_equal(cp_ca_rotate(ca, t1, err, sizeof(err)), 0);
    assert_int_equal(cp_ca_tick(ca, t1 + 59999, NULL, NULL), 0);
    assert_int_equal(cp_ca_tick(ca, t1 + 60000, NULL, NULL), 1);
    assert_string_equal(root_state(ca, 0), "RETIRING");
    assert_string_equal(root_state(ca, 1), "ACTIVE");
    assert_int_equal(cp_ca_bundle_version(ca), 4);

    cp_ca_issued_free(&a);
    wf_free(bundle1);
    wf_free(bundle2);
    wf_free(bundle3);
    wf_free(csr);
    EVP_PKEY_free(k);
    cp_ca_close(ca);
    wt_rm_rf(tmp);
    free(tmp);
}

/* Switching between a managed root and given signers always raises the bundle version, as
 * proxies keep the highest one they have seen; reopening the same mode keeps it. */
static void test_version_across_modes(void **state)
{
    (void)state;
    char *tmp = wt_tmpdir("cpca"), dir[600], c1[600], k1[600], c2[600], k2[600];
    snprintf(dir, sizeof(dir), "%s/ca", tmp);
    snprintf(c1, sizeof(c1), "%s/org1.pem", tmp);
    snprintf(k1, sizeof(k1), "%s/org1.key", tmp);
    snprintf(c2, sizeof(c2), "%s/org2.pem", tmp);
    snprintf(k2, sizeof(k2), "%s/org2.key", tmp);
    time_t now_s = time(NULL);
    int64_t now = (int64_t)now_s * 1000;
    EVP_PKEY *a = key_ec("P-256"), *b = key_ec("P-256");
    X509 *ra = make_cert(a, "org one", NULL, NULL, true, now_s - 60, now_s + 86400);
    X509 *rb = make_cert(b, "org two", NULL, NULL, true, now_s - 60, now_s + 86400);
    write_cert(c1, ra, false);
    write_key(k1, a);
    write_cert(c2, rb, false);
    write_key(k2, b);
    struct {
        const char *cert, *key;
        int64_t version;
    } steps[] = {
        {NULL, NULL, 1},              /* managed, first start */
        {c1, k1, 2},                  /* given: a new bundle */
        {c1, k1, 2},                  /* the same given signer again */
        {NULL, NULL, 3},              /* back to the managed root */
        {NULL, NULL, 3}, {c2, k2, 4}, /* another organisation */
        {c1, k1, 5},                  /* the first one again: newer than 4 */
    };
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        cp_ca_opts_t o = {.dir = dir, .cert_file = steps[i].cert, .key_file = steps[i].key};
        cp_ca_t *ca = NULL;
        char err[256] = "";
        if (cp_ca_open(&o, now, &ca, err, sizeof(err)) != 0) {
            fail_msg("step %zu: %s", i, err);
        }
        if (cp_ca_bundle_version(ca) != steps[i].version) {
            fail_msg("step %zu: version %lld, want %lld", i, (long long)cp_ca_bundle_version(ca),
                     (long long)steps[i].version);
        }
        cp_ca_close(ca);
    }
    X509_free(ra);
    X509_free(rb);
    EVP_PKEY_free(a);
    EVP_PKEY_free(b);
    wt_rm_rf(tmp);
    free(tmp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_root_files_and_reload),
        cmocka_unit_test(test_sign),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_intermediate),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_version_across_modes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
