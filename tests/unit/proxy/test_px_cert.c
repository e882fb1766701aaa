/*
 * test_px_cert.c - the proxy's client of the mesh CA. The pure parts: the SPIFFE identity, the
 * CSR (parsed back: signature, exactly one URI SAN, empty subject, a P-256 key, a new key each
 * time), the renewal time and the retry backoff that never passes the expiry, the trust bundle
 * check and its version rule, the snapshot's "security" key, the metrics and /certs. Then the
 * thread against a CA made here (libmicrohttpd, the API of docs/controlplane.md): it waits for
 * the registration, obtains a certificate, renews it with a new key, registers again on a 404,
 * through an outage keeps its certificate until it expires, then renews once the CA is back,
 * and renews early (backed off) when new roots no longer cover its certificate.
 */
#include "px_cert.h"
#include "px_creds.h"
#include "px_test_pki.h"
#include "wf_clock.h"
#include "wf_err.h"

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define ID "spiffe://cluster.local/ns/shop/sa/reviews"
#define PROXY_ID "reviews-v1.shop"
#define TOKEN "tok-123"

/* ---- pure parts ---- */

static void test_identity(void **state)
{
    (void)state;
    char out[128];
    assert_int_equal(px_cert_identity("shop", "reviews", out, sizeof(out)), 0);
    assert_string_equal(out, ID);
    assert_int_equal(px_cert_identity("shop", NULL, out, sizeof(out)), 0);
    assert_string_equal(out, "spiffe://cluster.local/ns/shop/sa/default");
    assert_int_equal(px_cert_identity("shop", "", out, sizeof(out)), 0);
    assert_string_equal(out, "spiffe://cluster.local/ns/shop/sa/default");
    assert_int_equal(px_cert_identity("", "x", out, sizeof(out)), WF_E_INVAL);
    assert_int_equal(px_cert_identity(NULL, "x", out, sizeof(out)), WF_E_INVAL);
    assert_int_equal(px_cert_identity("a/b", "x", out, sizeof(out)), WF_E_INVAL);
    assert_int_equal(px_cert_identity("shop", "x/y", out, sizeof(out)), WF_E_INVAL);
    assert_int_equal(px_cert_identity("shop", "a b", out, sizeof(out)), WF_E_INVAL);
    /* 41 bytes fit a 42-byte buffer, not a 41-byte one. */
    assert_int_equal(px_cert_identity("shop", "reviews", out, strlen(ID) + 1), 0);
    assert_int_equal(px_cert_identity("shop", "reviews", out, strlen(ID)), WF_E_LIMIT);
}

static X509_REQ *parse_csr(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509_REQ *req = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
    BIO_free(b);
    assert_non_null(req);
    return req;
}

static void test_csr(void **state)
{
    (void)state;
    EVP_PKEY *key = NULL, *key2 = NULL;
    char *pem = NULL, *pem2 = NULL;
    char err[256];
    assert_int_equal(px_cert_make_csr(ID, &key, &pem, err, sizeof(err)), 0);
    assert_non_null(strstr(pem, "-----BEGIN CERTIFICATE REQUEST-----"));
    X509_REQ *req = parse_csr(pem);
    /* Signed by the key returned, with SHA-256. */
    EVP_PKEY *pub = X509_REQ_get_pubkey(req);
    assert_int_equal(EVP_PKEY_eq(pub, key), 1);
    assert_int_equal(X509_REQ_verify(req, pub), 1);
    assert_int_equal(X509_REQ_get_signature_nid(req), NID_ecdsa_with_SHA256);
    /* EC P-256. */
    char group[64];
    size_t glen = 0;
    assert_int_equal(EVP_PKEY_get_base_id(key), EVP_PKEY_EC);
    assert_int_equal(EVP_PKEY_get_group_name(key, group, sizeof(group), &glen), 1);
    assert_string_equal(group, "prime256v1");
    assert_int_equal(EVP_PKEY_get_bits(key), 256);
    /* An empty subject; one extension, the critical SAN, with exactly the one URI. */
    assert_int_equal(X509_NAME_entry_count(X509_REQ_get_subject_name(req)), 0);
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
    assert_int_equal(sk_X509_EXTENSION_num(exts), 1);
    X509_EXTENSION *ext = sk_X509_EXTENSION_value(exts, 0);
    assert_int_equal(OBJ_obj2nid(X509_EXTENSION_get_object(ext)), NID_subject_alt_name);
    assert_int_equal(X509_EXTENSION_get_critical(ext), 1);
    GENERAL_NAMES *names = X509V3_EXT_d2i(ext);
    assert_int_equal(sk_GENERAL_NAME_num(names), 1);
    GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, 0);
    assert_int_equal(gn->type, GEN_URI);
    assert_int_equal(ASN1_STRING_length(gn->d.uniformResourceIdentifier), strlen(ID));
    assert_memory_equal(ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier), ID, strlen(ID));
    GENERAL_NAMES_free(names);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    /* A new key every time. */
    assert_int_equal(px_cert_make_csr(ID, &key2, &pem2, err, sizeof(err)), 0);
    assert_int_equal(EVP_PKEY_eq(key, key2), 0);
    /* Not a SPIFFE identity: refused, nothing allocated. */
    EVP_PKEY *k3 = (EVP_PKEY *)1;
    char *p3 = (char *)1;
    assert_int_equal(px_cert_make_csr("https://x/y", &k3, &p3, err, sizeof(err)), WF_E_INVAL);
    assert_null(k3);
    assert_null(p3);
    char longid[PX_CERT_MAX_ID + 8];
    memset(longid, 'a', sizeof(longid) - 1);
    memcpy(longid, "spiffe://", 9);
    longid[sizeof(longid) - 1] = '\0';
    assert_int_equal(px_cert_make_csr(longid, &k3, &p3, err, sizeof(err)), WF_E_INVAL);
    EVP_PKEY_free(pub);
    X509_REQ_free(req);
    EVP_PKEY_free(key);
    EVP_PKEY_free(key2);
    wf_free(pem);
    wf_free(pem2);
}

static void test_renew_at(void **state)
{
    (void)state;
    assert_int_equal(px_cert_renew_at(1000, 3000), 2000);
    assert_int_equal(px_cert_renew_at(0, 6000), 3000);
    int64_t day = 86400000;
    assert_int_equal(px_cert_renew_at(1700000000000, 1700000000000 + day), 1700000000000 + day / 2);
    /* Nonsense validity: renew at the end, never before the start. */
    assert_int_equal(px_cert_renew_at(5000, 5000), 5000);
    assert_int_equal(px_cert_renew_at(5000, 4000), 4000);
}

static void test_retry_backoff(void **state)
{
    (void)state;
    uint64_t b = PX_CERT_RETRY_MIN_MS, next;
    /* No certificate: 1 s doubling to 30 s, then 30 s. */
    static const uint64_t want[] = {1000, 2000, 4000, 8000, 16000, 30000, 30000};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        assert_int_equal(px_cert_retry_ms(b, 1000000, 0, &next), want[i]);
        b = next;
    }
    /* Far from the expiry: the backoff. */
    assert_int_equal(px_cert_retry_ms(8000, 0, 3600000, &next), 8000);
    assert_int_equal(next, 16000);
    /* 3 s left: half of it. 150 ms left: 100 ms at least. Expired: the backoff again. The
     * next backoff doubles the wait taken (1 s at least). */
    assert_int_equal(px_cert_retry_ms(8000, 1000, 4000, &next), 1500);
    assert_int_equal(next, 3000);
    assert_int_equal(px_cert_retry_ms(8000, 1000, 1150, &next), 100);
    assert_int_equal(next, PX_CERT_RETRY_MIN_MS);
    assert_int_equal(px_cert_retry_ms(8000, 5000, 4000, &next), 8000);
    /* A run of failures from 3 s before the expiry: the attempts close in on it, and the first
     * one after it comes after 1 s, not after a backoff grown by the short ones. */
    int64_t now = 0;
    b = PX_CERT_RETRY_MIN_MS;
    int before = 0;
    while (now < 3000) {
        uint64_t w = px_cert_retry_ms(b, now, 3000, &b);
        now += (int64_t)w;
        before++;
    }
    assert_true(before >= 4);
    assert_int_equal(px_cert_retry_ms(b, now, 3000, &next), PX_CERT_RETRY_MIN_MS);
    /* Out-of-range backoffs are clamped. */
    assert_int_equal(px_cert_retry_ms(0, 0, 0, &next), PX_CERT_RETRY_MIN_MS);
    assert_int_equal(px_cert_retry_ms(UINT64_MAX / 2, 0, 0, &next), PX_CERT_RETRY_MAX_MS);
    /* Whatever the backoff, an attempt scheduled while more than 200 ms are left lands before
     * the expiry: a run of failures cannot sleep past it. */
    for (int64_t left = 201; left < 100000; left = left * 3 / 2) {
        for (uint64_t back = 1; back <= 64000; back *= 2) {
            uint64_t w = px_cert_retry_ms(back, 10000, 10000 + left, &next);
            assert_true((int64_t)w < left);
            assert_true(w >= 100);
        }
    }
}

static void test_bundle_check(void **state)
{
    (void)state;
    pki_t a = pki_ca("root a"), b = pki_ca("root b");
    char *one = pki_pem(a.cert), *two = pki_pem_append(pki_pem(a.cert), b.cert);
    char err[256];
    assert_int_equal(px_cert_bundle_check(one, strlen(one), err, sizeof(err)), 0);
    assert_int_equal(px_cert_bundle_check(two, strlen(two), err, sizeof(err)), 0);
    assert_int_equal(px_cert_bundle_check("", 0, err, sizeof(err)), WF_E_INVAL);
    assert_int_equal(px_cert_bundle_check("roots", 5, err, sizeof(err)), WF_E_INVAL);
    const char *bad = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    assert_int_equal(px_cert_bundle_check(bad, strlen(bad), err, sizeof(err)), WF_E_INVAL);
    assert_non_null(strstr(err, "trust bundle"));
    size_t n = strlen(one), copies = PX_CERT_MAX_BUNDLE / n + 1;
    char *big = wf_malloc(copies * n + 1);
    for (size_t i = 0; i < copies; i++) {
        memcpy(big + i * n, one, n);
    }
    big[copies * n] = '\0';
    assert_int_equal(px_cert_bundle_check(big, copies * n, err, sizeof(err)), WF_E_LIMIT);
    assert_int_equal(px_cert_bundle_check(big, PX_CERT_MAX_BUNDLE / n * n, err, sizeof(err)), 0);
    wf_free(big);
    wf_free(one);
    wf_free(two);
    pki_free(&a);
    pki_free(&b);
}

/* A process context with what px_cert and px_control touch. */
static px_proxy_t *px_new(void)
{
    px_proxy_t *px = wf_calloc(1, sizeof(*px));
    uv_mutex_init(&px->snap_mu);
    uv_mutex_init(&px->bundle_mu);
    px->creds = px_creds_create();
    return px;
}

static void px_free(px_proxy_t *px)
{
    px_creds_destroy(px->creds);
    uv_mutex_destroy(&px->bundle_mu);
    uv_mutex_destroy(&px->snap_mu);
    wf_free(px);
}

static int roots_count(px_proxy_t *px)
{
    px_creds_snap_t *s = px_creds_acquire(px->creds);
    int n = sk_X509_num(s->roots);
    px_creds_release(s);
    return n;
}

static void test_apply_bundle_versions(void **state)
{
    (void)state;
    px_proxy_t *px = px_new();
    pki_t a = pki_ca("root a"), b = pki_ca("root b");
    char *one = pki_pem(a.cert), *two = pki_pem_append(pki_pem(a.cert), b.cert);
    char err[256];
    assert_int_equal(px_cert_apply_bundle(px, one, strlen(one), 3, err, sizeof(err)), 0);
    assert_int_equal(atomic_load(&px->trust_bundle_version), 3);
    assert_int_equal(px_creds_generation(px->creds), 1);
    assert_int_equal(roots_count(px), 1);
    /* The same version again, or a lower one: kept, no new generation. */
    assert_int_equal(px_cert_apply_bundle(px, two, strlen(two), 3, err, sizeof(err)), 1);
    assert_int_equal(px_cert_apply_bundle(px, two, strlen(two), 2, err, sizeof(err)), 1);
    assert_int_equal(px_creds_generation(px->creds), 1);
    assert_int_equal(roots_count(px), 1);
    /* A higher version that is not a bundle: refused, the version stays. */
    assert_int_equal(px_cert_apply_bundle(px, "x", 1, 4, err, sizeof(err)), WF_E_INVAL);
    assert_int_equal(atomic_load(&px->trust_bundle_version), 3);
    assert_int_equal(px_creds_generation(px->creds), 1);
    /* A higher one: installed (the overlap of a root rotation). */
    assert_int_equal(px_cert_apply_bundle(px, two, strlen(two), 4, err, sizeof(err)), 0);
    assert_int_equal(atomic_load(&px->trust_bundle_version), 4);
    assert_int_equal(roots_count(px), 2);
    wf_free(one);
    wf_free(two);
    pki_free(&a);
    pki_free(&b);
    px_free(px);
}

#define SNAP_HEAD "{\"schema\":1,\"version\":1,\"proxy\":{\"service\":\"reviews\"}"

static int parse_snap(const char *doc, bool strict, px_snapshot_t **s, char *err, size_t cap)
{
    px_snapshot_opts_t o;
    px_snapshot_opts_default(&o);
    o.strict = strict;
    return px_snapshot_parse(doc, strlen(doc), &o, s, err, cap);
}

static void expect_snap_error(const char *doc, bool strict, int rc, const char *want)
{
    px_snapshot_t *s = NULL;
    char err[512];
    assert_int_equal(parse_snap(doc, strict, &s, err, sizeof(err)), rc);
    assert_null(s);
    if (strstr(err, want) == NULL) {
        fail_msg("error \"%s\" lacks \"%s\"", err, want);
    }
}

static void test_snapshot_security(void **state)
{
    (void)state;
    pki_t a = pki_ca("root a");
    char *pem = pki_pem(a.cert);
    json_t *sec = json_pack("{s:s,s:i}", "trust_bundle", pem, "trust_bundle_version", 7);
    char *sec_s = json_dumps(sec, JSON_COMPACT);
    char doc[8192];
    snprintf(doc, sizeof(doc), SNAP_HEAD ",\"security\":%s}", sec_s);
    px_snapshot_t *s = NULL;
    char err[512];
    assert_int_equal(parse_snap(doc, true, &s, err, sizeof(err)), 0);
    assert_int_equal(s->security.trust_bundle_version, 7);
    assert_int_equal(s->security.trust_bundle.len, strlen(pem));
    assert_memory_equal(s->security.trust_bundle.p, pem, strlen(pem));
    /* Applied through the version rule. */
    px_proxy_t *px = px_new();
    assert_int_equal(px_cert_apply_bundle(px, s->security.trust_bundle.p,
                                          s->security.trust_bundle.len,
                                          s->security.trust_bundle_version, err, sizeof(err)),
                     0);
    assert_int_equal(atomic_load(&px->trust_bundle_version), 7);
    px_free(px);
    px_snapshot_unref(s);
    /* Absent: version 0. */
    assert_int_equal(parse_snap(SNAP_HEAD "}", true, &s, err, sizeof(err)), 0);
    assert_int_equal(s->security.trust_bundle_version, 0);
    assert_int_equal(s->security.trust_bundle.len, 0);
    px_snapshot_unref(s);

    expect_snap_error(SNAP_HEAD ",\"security\":[]}", false, WF_E_INVAL,
                      "security: must be an object");
    snprintf(doc, sizeof(doc), SNAP_HEAD ",\"security\":{\"trust_bundle\":%s}}",
             strchr(sec_s, ':') + 1);
    *strstr(doc, ",\"trust_bundle_version\"") = '\0';
    strcat(doc, "}}");
    expect_snap_error(doc, false, WF_E_INVAL, "security.trust_bundle_version: required");
    expect_snap_error(SNAP_HEAD
                      ",\"security\":{\"trust_bundle\":\"x\",\"trust_bundle_version\":0}}",
                      false, WF_E_INVAL, "security.trust_bundle_version");
    expect_snap_error(SNAP_HEAD ",\"security\":{\"trust_bundle_version\":1}}", false, WF_E_INVAL,
                      "security.trust_bundle: required");
    expect_snap_error(SNAP_HEAD ",\"security\":{\"trust_bundle\":5,\"trust_bundle_version\":1}}",
                      false, WF_E_INVAL, "security.trust_bundle: must be a string");
    expect_snap_error(SNAP_HEAD
                      ",\"security\":{\"trust_bundle\":\"hello\",\"trust_bundle_version\":1}}",
                      false, WF_E_INVAL, "security.trust_bundle: trust bundle: not one or more");
    /* Strict: unknown keys inside it are refused. */
    snprintf(doc, sizeof(doc), SNAP_HEAD ",\"security\":%s}", sec_s);
    doc[strlen(doc) - 2] = '\0';
    strcat(doc, ",\"extra\":1}}");
    expect_snap_error(doc, true, WF_E_INVAL, "security.extra: unknown field");
    /* Larger than the bound: a limit error (the text is valid PEM otherwise). */
    size_t n = strlen(pem), copies = PX_CERT_MAX_BUNDLE / n + 1;
    json_t *bigj = json_object();
    char *big = wf_malloc(copies * n + 1);
    for (size_t i = 0; i < copies; i++) {
        memcpy(big + i * n, pem, n);
    }
    big[copies * n] = '\0';
    json_object_set_new(bigj, "trust_bundle", json_string(big));
    json_object_set_new(bigj, "trust_bundle_version", json_integer(1));
    char *bigs = json_dumps(bigj, JSON_COMPACT);
    size_t dl = strlen(bigs) + 128;
    char *bigdoc = wf_malloc(dl);
    snprintf(bigdoc, dl, SNAP_HEAD ",\"security\":%s}", bigs);
    expect_snap_error(bigdoc, false, WF_E_LIMIT, "security.trust_bundle: trust bundle larger");
    wf_free(bigdoc);
    free(bigs);
    json_decref(bigj);
    wf_free(big);
    free(sec_s);
    json_decref(sec);
    wf_free(pem);
    pki_free(&a);
}

static void test_stats_and_dump(void **state)
{
    (void)state;
    px_proxy_t *px = px_new();
    pki_t ca = pki_ca("mesh root");
    EVP_PKEY *k = pki_key();
    const char *uris[] = {ID};
    X509 *x = pki_cert(k, "", &ca, uris, 1, -10, 600, 0x1234ab, false);
    char *chain = pki_pem(x), *roots = pki_pem(ca.cert);
    char err[256];
    wf_buf_t b = WF_BUF_INIT;
    /* Nothing yet: no certificate, not valid, not expired. */
    px_cert_stats(px, wf_wall_ms(), &b);
    wf_buf_cstr(&b);
    assert_non_null(strstr((char *)b.data, "\nweft_proxy_cert_expiry_timestamp_seconds 0\n"));
    assert_non_null(strstr((char *)b.data, "\nweft_proxy_cert_valid 0\n"));
    assert_non_null(strstr((char *)b.data, "\nweft_proxy_trust_bundle_version 0\n"));
    assert_false(px_cert_expired(px, wf_wall_ms()));
    wf_buf_reset(&b);
    px_cert_dump(px, wf_wall_ms(), &b);
    json_t *j = json_loadb((const char *)b.data, b.len, 0, NULL);
    assert_non_null(j);
    assert_true(json_is_null(json_object_get(j, "identity")));
    assert_int_equal(json_array_size(json_object_get(j, "roots")), 0);
    json_decref(j);

    assert_int_equal(px_cert_apply_bundle(px, roots, strlen(roots), 2, err, sizeof(err)), 0);
    assert_int_equal(px_creds_set_cert(px->creds, chain, strlen(chain), k, err, sizeof(err)), 0);
    atomic_store(&px->cert_renew_ok, 5);
    atomic_store(&px->cert_renew_error, 2);
    px_creds_snap_t *s = px_creds_acquire(px->creds);
    int64_t not_after = s->not_after;
    px_creds_release(s);
    int64_t now = wf_wall_ms();
    wf_buf_reset(&b);
    px_cert_stats(px, now, &b);
    wf_buf_cstr(&b);
    char want[128];
    snprintf(want, sizeof(want), "\nweft_proxy_cert_expiry_timestamp_seconds %lld\n",
             (long long)not_after);
    assert_non_null(strstr((char *)b.data, want));
    assert_non_null(strstr((char *)b.data, "\nweft_proxy_cert_valid 1\n"));
    assert_non_null(strstr((char *)b.data, "\nweft_proxy_cert_renewals_total{result=\"ok\"} 5\n"));
    assert_non_null(
        strstr((char *)b.data, "\nweft_proxy_cert_renewals_total{result=\"error\"} 2\n"));
    assert_non_null(strstr((char *)b.data, "\nweft_proxy_trust_bundle_version 2\n"));
    assert_false(px_cert_expired(px, now));
    wf_buf_reset(&b);
    px_cert_dump(px, now, &b);
    j = json_loadb((const char *)b.data, b.len, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "identity")), ID);
    assert_string_equal(json_string_value(json_object_get(j, "serial")), "1234AB");
    assert_int_equal(json_integer_value(json_object_get(j, "not_after")), not_after);
    assert_true(json_is_true(json_object_get(j, "valid")));
    assert_string_equal(json_string_value(json_object_get(j, "issuer")), "CN=mesh root");
    assert_string_equal(json_string_value(json_object_get(j, "certificate_chain")), chain);
    assert_int_equal(json_integer_value(json_object_get(j, "trust_bundle_version")), 2);
    json_t *r0 = json_array_get(json_object_get(j, "roots"), 0);
    assert_string_equal(json_string_value(json_object_get(r0, "subject")), "CN=mesh root");
    assert_true(json_integer_value(json_object_get(r0, "not_after")) > not_after);
    json_decref(j);
    /* At and after not_after: expired, not valid. */
    int64_t end = not_after * 1000;
    assert_false(px_cert_expired(px, end - 1));
    assert_true(px_cert_expired(px, end));
    wf_buf_reset(&b);
    px_cert_stats(px, end, &b);
    wf_buf_cstr(&b);
    assert_non_null(strstr((char *)b.data, "\nweft_proxy_cert_valid 0\n"));
    wf_buf_free(&b);
    wf_free(chain);
    wf_free(roots);
    X509_free(x);
    EVP_PKEY_free(k);
    pki_free(&ca);
    px_free(px);
}

/* ---- the thread against a CA made here ---- */

typedef struct {
    pthread_mutex_t mu;
    pki_t ca;
    char *bundle;
    long ttl_s;            /* lifetime of the certificates issued */
    bool registered;       /* a registration is live */
    bool forget;           /* the next certificate request finds no registration */
    unsigned fail_code;    /* answer certificate requests with this status (0: serve them) */
    int registrations;     /* POST /v1/register */
    int issued;            /* certificates signed */
    int refused;           /* certificate requests answered with an error */
    char bad_request[256]; /* why the last CSR was refused, for the test's message */
    long serial;
    struct MHD_Daemon *d;
    int port;
} fake_ca_t;

typedef struct {
    wf_buf_t body;
} upload_t;

static enum MHD_Result answer(struct MHD_Connection *c, unsigned status, const char *ctype,
                              char *text)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", ctype);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result answer_json(struct MHD_Connection *c, unsigned status, json_t *j)
{
    char *t = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    char *copy = wf_strdup(t);
    free(t);
    return answer(c, status, "application/json", copy);
}

/* Sign the CSR in body as the CA does: its signature must verify and it must ask for exactly
 * the registered identity. Under f->mu. */
static enum MHD_Result sign_csr(fake_ca_t *f, struct MHD_Connection *c, const wf_buf_t *body)
{
    json_t *j = json_loadb((const char *)body->data, body->len, 0, NULL);
    json_t *csr = json_is_object(j) ? json_object_get(j, "csr") : NULL;
    X509_REQ *req = NULL;
    EVP_PKEY *pub = NULL;
    GENERAL_NAMES *names = NULL;
    STACK_OF(X509_EXTENSION) *exts = NULL;
    enum MHD_Result ret;
    const char *why = NULL;
    unsigned status = 400;
    if (json_is_string(csr)) {
        BIO *b = BIO_new_mem_buf(json_string_value(csr), -1);
        req = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
        BIO_free(b);
    }
    if (req == NULL || (pub = X509_REQ_get_pubkey(req)) == NULL || X509_REQ_verify(req, pub) != 1) {
        why = "bad CSR";
        goto refuse;
    }
    exts = X509_REQ_get_extensions(req);
    names = exts != NULL ? X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL) : NULL;
    GENERAL_NAME *gn = sk_GENERAL_NAME_num(names) == 1 ? sk_GENERAL_NAME_value(names, 0) : NULL;
    if (gn == NULL || gn->type != GEN_URI ||
        (size_t)ASN1_STRING_length(gn->d.uniformResourceIdentifier) != strlen(ID) ||
        memcmp(ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier), ID, strlen(ID)) != 0) {
        why = "the CSR asks for another identity";
        status = 403;
        goto refuse;
    }
    const char *uris[] = {ID};
    X509 *x = pki_cert(pub, "", &f->ca, uris, 1, 0, f->ttl_s, ++f->serial, false);
    char *chain = pki_pem(x);
    json_t *a =
        json_pack("{s:s,s:s,s:i,s:I}", "certificate_chain", chain, "trust_bundle", f->bundle,
                  "trust_bundle_version", 1, "not_after", (json_int_t)(time(NULL) + f->ttl_s));
    wf_free(chain);
    X509_free(x);
    f->issued++;
    ret = answer_json(c, 200, a);
    goto out;
refuse:
    f->refused++;
    snprintf(f->bad_request, sizeof(f->bad_request), "%s", why);
    ret = answer_json(c, status, json_pack("{s:s}", "error", why));
out:
    GENERAL_NAMES_free(names);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    EVP_PKEY_free(pub);
    X509_REQ_free(req);
    json_decref(j);
    return ret;
}

static enum MHD_Result ca_cb(void *cls, struct MHD_Connection *c, const char *url,
                             const char *method, const char *version, const char *data,
                             size_t *data_len, void **con_cls)
{
    fake_ca_t *f = cls;
    (void)version;
    upload_t *u = *con_cls;
    if (u == NULL) {
        u = wf_calloc(1, sizeof(*u));
        *con_cls = u;
        return MHD_YES;
    }
    if (*data_len > 0) {
        wf_buf_append(&u->body, data, *data_len);
        *data_len = 0;
        return MHD_YES;
    }
    enum MHD_Result ret;
    pthread_mutex_lock(&f->mu);
    if (strcmp(url, "/v1/register") == 0 && strcmp(method, "POST") == 0) {
        f->registered = true;
        f->registrations++;
        ret = answer_json(
            c, 201,
            json_pack("{s:s,s:s,s:i}", "id", PROXY_ID, "identity", ID, "leaseRemainingMs", 30000));
    } else if (strcmp(url, "/v1/heartbeat") == 0) {
        ret = f->registered ? answer_json(c, 200, json_pack("{s:i}", "leaseRemainingMs", 30000))
                            : answer_json(c, 404, json_pack("{s:s}", "error", "not registered"));
    } else if (strcmp(url, "/v1/certificate") == 0 && strcmp(method, "POST") == 0) {
        const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
        const char *proxy = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "proxy");
        if (f->forget) {
            f->forget = false;
            f->registered = false;
        }
        if (auth == NULL || strcmp(auth, "Bearer " TOKEN) != 0) {
            f->refused++;
            ret = answer_json(c, 401, json_pack("{s:s}", "error", "bad token"));
        } else if (f->fail_code != 0) {
            f->refused++;
            ret = answer_json(c, f->fail_code, json_pack("{s:s}", "error", "CA unavailable"));
        } else if (!f->registered || proxy == NULL || strcmp(proxy, PROXY_ID) != 0) {
            f->refused++;
            ret = answer_json(c, 404, json_pack("{s:s}", "error", "proxy not registered"));
        } else {
            ret = sign_csr(f, c, &u->body);
        }
    } else {
        /* The snapshot poll: no config here (the control thread backs off). */
        ret = answer(c, 503, "text/plain", wf_strdup("no snapshots\n"));
    }
    pthread_mutex_unlock(&f->mu);
    return ret;
}

static void ca_done(void *cls, struct MHD_Connection *c, void **con_cls,
                    enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    upload_t *u = *con_cls;
    if (u != NULL) {
        wf_buf_free(&u->body);
        wf_free(u);
        *con_cls = NULL;
    }
}

static fake_ca_t *ca_start(long ttl_s)
{
    fake_ca_t *f = wf_calloc(1, sizeof(*f));
    pthread_mutex_init(&f->mu, NULL);
    f->ca = pki_ca("fake mesh root");
    f->bundle = pki_pem(f->ca.cert);
    f->ttl_s = ttl_s;
    f->d =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL,
                         NULL, ca_cb, f, MHD_OPTION_NOTIFY_COMPLETED, ca_done, f, MHD_OPTION_END);
    assert_non_null(f->d);
    f->port = MHD_get_daemon_info(f->d, MHD_DAEMON_INFO_BIND_PORT)->port;
    return f;
}

static void ca_stop(fake_ca_t *f)
{
    MHD_stop_daemon(f->d);
    pthread_mutex_destroy(&f->mu);
    pki_free(&f->ca);
    wf_free(f->bundle);
    wf_free(f);
}

static int ca_get(fake_ca_t *f, const int *field)
{
    pthread_mutex_lock(&f->mu);
    int v = *field;
    pthread_mutex_unlock(&f->mu);
    return v;
}

typedef struct {
    fake_ca_t *ca;
    px_proxy_t *px;
    px_control_t *pc;
    px_cert_t *cert;
} rig_t;

static void rig_start(rig_t *r, long ttl_s)
{
    r->ca = ca_start(ttl_s);
    r->px = px_new();
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", r->ca->port);
    r->pc = px_control_start(r->px, url, PROXY_ID, TOKEN, "{\"service\":\"reviews\"}");
    assert_non_null(r->pc);
    r->cert = px_cert_start(r->px, r->pc, url, TOKEN, "spiffe://cluster.local/ns/x/sa/unused");
    assert_non_null(r->cert);
}

static void rig_stop(rig_t *r)
{
    px_cert_stop(r->cert);
    px_control_stop(r->pc);
    ca_stop(r->ca);
    px_free(r->px);
}

/* Wait (bounded: the test fails rather than hangs) until *v >= want. */
static void wait_atomic(_Atomic uint64_t *v, uint64_t want, int timeout_ms)
{
    for (int t = 0; t < timeout_ms && atomic_load(v) < want; t += 20) {
        usleep(20000);
    }
    if (atomic_load(v) < want) {
        fail_msg("waited %d ms for %llu, have %llu", timeout_ms, (unsigned long long)want,
                 (unsigned long long)atomic_load(v));
    }
}

static long leaf_serial(px_proxy_t *px, EVP_PKEY **key)
{
    px_creds_snap_t *s = px_creds_acquire(px->creds);
    assert_non_null(s->leaf);
    long serial = ASN1_INTEGER_get(X509_get0_serialNumber(s->leaf));
    if (key != NULL) {
        EVP_PKEY_up_ref(s->key);
        *key = s->key;
    }
    px_creds_release(s);
    return serial;
}

static void test_thread_obtains_and_renews(void **state)
{
    (void)state;
    rig_t r;
    rig_start(&r, 3);
    wait_atomic(&r.px->cert_renew_ok, 1, 20000);
    px_creds_snap_t *s = px_creds_acquire(r.px->creds);
    assert_string_equal(s->identity, ID); /* the registry's identity, not the fallback */
    assert_int_equal(sk_X509_num(s->roots), 1);
    assert_int_equal(X509_cmp(sk_X509_value(s->roots, 0), r.ca->ca.cert), 0);
    assert_int_equal(X509_check_private_key(s->leaf, s->key), 1);
    assert_int_equal(EVP_PKEY_get_bits(s->key), 256);
    px_creds_release(s);
    assert_int_equal(atomic_load(&r.px->trust_bundle_version), 1);
    EVP_PKEY *k1;
    long serial1 = leaf_serial(r.px, &k1);
    /* Renewed at half-life, twice: a new serial and a new key each time, never an error. */
    wait_atomic(&r.px->cert_renew_ok, 3, 20000);
    EVP_PKEY *k3;
    long serial3 = leaf_serial(r.px, &k3);
    assert_true(serial3 > serial1);
    assert_int_equal(EVP_PKEY_eq(k1, k3), 0);
    assert_int_equal(atomic_load(&r.px->cert_renew_error), 0);
    assert_int_equal(ca_get(r.ca, &r.ca->refused), 0);
    assert_int_equal(ca_get(r.ca, &r.ca->registrations), 1);
    /* The bundle came with the first answer; the same version later changes nothing. */
    assert_int_equal(atomic_load(&r.px->trust_bundle_version), 1);
    EVP_PKEY_free(k1);
    EVP_PKEY_free(k3);
    rig_stop(&r);
}

static void test_thread_registers_again_on_404(void **state)
{
    (void)state;
    rig_t r;
    rig_start(&r, 3);
    wait_atomic(&r.px->cert_renew_ok, 1, 20000);
    pthread_mutex_lock(&r.ca->mu);
    r.ca->forget = true; /* the next CSR finds the registration gone */
    pthread_mutex_unlock(&r.ca->mu);
    wait_atomic(&r.px->cert_renew_ok, 2, 20000);
    assert_true(atomic_load(&r.px->cert_renew_error) >= 1);
    assert_true(ca_get(r.ca, &r.ca->registrations) >= 2);
    rig_stop(&r);
}

static void test_thread_outage_until_expiry(void **state)
{
    (void)state;
    rig_t r;
    rig_start(&r, 3);
    wait_atomic(&r.px->cert_renew_ok, 1, 20000);
    pthread_mutex_lock(&r.ca->mu);
    r.ca->fail_code = 503;
    pthread_mutex_unlock(&r.ca->mu);
    uint64_t ok = atomic_load(&r.px->cert_renew_ok);
    long serial = leaf_serial(r.px, NULL);
    /* The certificate stays through the outage until it expires; retries are counted. */
    px_creds_snap_t *s = px_creds_acquire(r.px->creds);
    int64_t end = s->not_after * 1000;
    px_creds_release(s);
    for (int t = 0; t < 20000 && wf_wall_ms() < end + 200; t += 20) {
        usleep(20000);
    }
    assert_true(px_cert_expired(r.px, wf_wall_ms()));
    assert_int_equal(leaf_serial(r.px, NULL), serial);
    assert_int_equal(atomic_load(&r.px->cert_renew_ok), ok);
    assert_true(atomic_load(&r.px->cert_renew_error) >= 1);
    wf_buf_t b = WF_BUF_INIT;
    px_cert_stats(r.px, wf_wall_ms(), &b);
    wf_buf_cstr(&b);
    assert_non_null(strstr((char *)b.data, "\nweft_proxy_cert_valid 0\n"));
    wf_buf_free(&b);
    /* The CA is back: a new certificate (the backoff after a few failures is short). */
    pthread_mutex_lock(&r.ca->mu);
    r.ca->fail_code = 0;
    pthread_mutex_unlock(&r.ca->mu);
    wait_atomic(&r.px->cert_renew_ok, ok + 1, 40000);
    assert_false(px_cert_expired(r.px, wf_wall_ms()));
    assert_true(leaf_serial(r.px, NULL) > serial);
    rig_stop(&r);
}

static void test_thread_renews_when_roots_leave_it(void **state)
{
    (void)state;
    rig_t r;
    rig_start(&r, 3600); /* half-life is half an hour: only the new roots explain a renewal */
    wait_atomic(&r.px->cert_renew_ok, 1, 20000);
    long serial = leaf_serial(r.px, NULL);
    /* A bundle of a higher version without the CA's root (as at the end of a root rotation). */
    pki_t other = pki_ca("another root");
    char *pem = pki_pem(other.cert), err[256];
    assert_int_equal(px_cert_apply_bundle(r.px, pem, strlen(pem), 5, err, sizeof(err)), 0);
    wait_atomic(&r.px->cert_renew_ok, 2, 20000);
    assert_true(leaf_serial(r.px, NULL) > serial);
    /* The CA answers with its bundle at version 1: kept out, so the new certificate is not
     * covered either. The proxy asks again, backed off (1 s, 2 s, ...), not in a loop. */
    assert_int_equal(atomic_load(&r.px->trust_bundle_version), 5);
    usleep(2500 * 1000);
    uint64_t n = atomic_load(&r.px->cert_renew_ok);
    assert_true(n >= 2 && n <= 6);
    assert_int_equal(atomic_load(&r.px->cert_renew_error), 0);
    /* A bundle with both roots covers it again. */
    char *both = pki_pem_append(pki_pem(other.cert), r.ca->ca.cert);
    assert_int_equal(px_cert_apply_bundle(r.px, both, strlen(both), 6, err, sizeof(err)), 0);
    wf_free(both);
    wf_free(pem);
    pki_free(&other);
    rig_stop(&r);
}

static void test_thread_stops_before_registration(void **state)
{
    (void)state;
    /* A control plane that never answers the registration: the thread waits, and stops. */
    px_proxy_t *px = px_new();
    px_control_t *pc = px_control_start(px, "http://127.0.0.1:1", "p.ns", TOKEN, "{}");
    px_cert_t *c = px_cert_start(px, pc, "http://127.0.0.1:1", TOKEN, ID);
    usleep(300000);
    px_cert_stop(c);
    px_control_stop(pc);
    assert_int_equal(atomic_load(&px->cert_renew_ok), 0);
    assert_int_equal(atomic_load(&px->cert_renew_error), 0); /* it never asked */
    px_cert_stop(NULL);
    px_free(px);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity),
        cmocka_unit_test(test_csr),
        cmocka_unit_test(test_renew_at),
        cmocka_unit_test(test_retry_backoff),
        cmocka_unit_test(test_bundle_check),
        cmocka_unit_test(test_apply_bundle_versions),
        cmocka_unit_test(test_snapshot_security),
        cmocka_unit_test(test_stats_and_dump),
        cmocka_unit_test(test_thread_obtains_and_renews),
        cmocka_unit_test(test_thread_registers_again_on_404),
        cmocka_unit_test(test_thread_outage_until_expiry),
        cmocka_unit_test(test_thread_renews_when_roots_leave_it),
        cmocka_unit_test(test_thread_stops_before_registration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
