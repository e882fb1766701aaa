/*
 * test_px_creds.c - the proxy's workload credentials with certificates made here: installing a
 * certificate and a trust bundle, the generation, snapshots held across a replacement, every
 * refusal leaving the credentials as they were, loading Istio's three files, and the SPIFFE
 * identity of certificates with several, foreign or overlong URIs.
 */
#include "px_creds.h"
#include "px_test_pki.h"
#include "wf_err.h"
#include "wt_util.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define ID_A "spiffe://cluster.local/ns/shop/sa/reviews"
#define ID_B "spiffe://cluster.local/ns/shop/sa/ratings"

typedef struct {
    pki_t ca, inter;
    char *ca_pem;
} fx_t;

static int setup(void **state)
{
    fx_t *f = wf_calloc(1, sizeof(*f));
    f->ca = pki_ca("test root");
    f->inter.key = pki_key();
    f->inter.cert =
        pki_cert(f->inter.key, "test intermediate", &f->ca, NULL, 0, -60, 3600, 2, true);
    f->ca_pem = pki_pem(f->ca.cert);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    pki_free(&f->ca);
    pki_free(&f->inter);
    wf_free(f->ca_pem);
    wf_free(f);
    return 0;
}

/* A leaf for key with the given URIs, valid [now - 10 s, now + to_s], signed by the
 * intermediate; its chain PEM (leaf, intermediate) into *pem. */
static X509 *leaf(fx_t *f, EVP_PKEY *key, const char *const *uris, int n, long to_s, long serial,
                  char **pem)
{
    X509 *x = pki_cert(key, "", &f->inter, uris, n, -10, to_s, serial, false);
    *pem = pki_pem_append(pki_pem(x), f->inter.cert);
    return x;
}

static void test_set_cert_and_roots(void **state)
{
    fx_t *f = *state;
    px_creds_t *c = px_creds_create();
    char err[256];
    px_creds_snap_t *s = px_creds_acquire(c);
    assert_int_equal(s->generation, 0);
    assert_null(s->leaf);
    assert_null(s->identity);
    assert_int_equal(sk_X509_num(s->roots), 0);
    assert_int_equal(sk_X509_num(s->intermediates), 0);
    px_creds_release(s);
    assert_int_equal(px_creds_generation(c), 0);

    assert_int_equal(px_creds_set_roots(c, f->ca_pem, strlen(f->ca_pem), err, sizeof(err)), 0);
    assert_int_equal(px_creds_generation(c), 1);

    EVP_PKEY *k = pki_key();
    const char *uris[] = {ID_A};
    char *pem;
    X509 *x = leaf(f, k, uris, 1, 600, 77, &pem);
    assert_int_equal(px_creds_set_cert(c, pem, strlen(pem), k, err, sizeof(err)), 0);
    assert_int_equal(px_creds_generation(c), 2);
    s = px_creds_acquire(c);
    assert_int_equal(s->generation, 2);
    assert_string_equal(s->identity, ID_A);
    assert_int_equal(X509_cmp(s->leaf, x), 0);
    assert_int_equal(sk_X509_num(s->intermediates), 1);
    assert_int_equal(X509_cmp(sk_X509_value(s->intermediates, 0), f->inter.cert), 0);
    assert_ptr_equal(s->key, k);
    assert_int_equal(sk_X509_num(s->roots), 1); /* the roots stay */
    time_t now = time(NULL);
    assert_true(s->not_before >= now - 12 && s->not_before <= now - 8);
    assert_true(s->not_after >= now + 598 && s->not_after <= now + 602);
    px_creds_release(s);

    /* Two roots (an overlap during root rotation) replace one; the certificate stays. */
    pki_t ca2 = pki_ca("second root");
    char *two = pki_pem_append(pki_pem(f->ca.cert), ca2.cert);
    assert_int_equal(px_creds_set_roots(c, two, strlen(two), err, sizeof(err)), 0);
    s = px_creds_acquire(c);
    assert_int_equal(s->generation, 3);
    assert_int_equal(sk_X509_num(s->roots), 2);
    assert_string_equal(s->identity, ID_A);
    px_creds_release(s);

    wf_free(two);
    pki_free(&ca2);
    wf_free(pem);
    X509_free(x);
    EVP_PKEY_free(k);
    px_creds_destroy(c);
}

static void test_held_snapshot_survives_replacement(void **state)
{
    fx_t *f = *state;
    px_creds_t *c = px_creds_create();
    char err[256];
    EVP_PKEY *k1 = pki_key(), *k2 = pki_key();
    const char *a[] = {ID_A}, *b[] = {ID_B};
    char *pem1, *pem2;
    X509 *x1 = leaf(f, k1, a, 1, 600, 1, &pem1);
    X509 *x2 = leaf(f, k2, b, 1, 600, 2, &pem2);
    assert_int_equal(px_creds_set_cert(c, pem1, strlen(pem1), k1, err, sizeof(err)), 0);
    px_creds_snap_t *held = px_creds_acquire(c);
    /* The producer lets go of everything it passed in: the snapshot holds its own refs. */
    EVP_PKEY_free(k1);
    X509_free(x1);
    wf_free(pem1);
    assert_int_equal(px_creds_set_cert(c, pem2, strlen(pem2), k2, err, sizeof(err)), 0);
    px_creds_snap_t *now = px_creds_acquire(c);
    assert_string_equal(now->identity, ID_B);
    assert_true(now->generation > held->generation);
    /* The old one is whole: usable as a TLS context's certificate and key. */
    assert_string_equal(held->identity, ID_A);
    assert_int_equal(X509_check_private_key(held->leaf, held->key), 1);
    assert_int_equal(ASN1_INTEGER_get(X509_get0_serialNumber(held->leaf)), 1);
    px_creds_release(now);
    px_creds_destroy(c); /* the creds go first: a holder keeps its snapshot */
    assert_string_equal(held->identity, ID_A);
    px_creds_release(held);
    px_creds_release(NULL);
    px_creds_destroy(NULL);
    X509_free(x2);
    EVP_PKEY_free(k2);
    wf_free(pem2);
}

/* Every refusal: WF_E_INVAL, a reason, and the credentials as they were. */
static void assert_unchanged(px_creds_t *c, uint64_t gen, const char *identity)
{
    assert_int_equal(px_creds_generation(c), gen);
    px_creds_snap_t *s = px_creds_acquire(c);
    assert_int_equal(s->generation, gen);
    assert_string_equal(s->identity, identity);
    assert_int_equal(sk_X509_num(s->roots), 1);
    px_creds_release(s);
}

static void test_refusals_change_nothing(void **state)
{
    fx_t *f = *state;
    px_creds_t *c = px_creds_create();
    char err[256];
    EVP_PKEY *k = pki_key(), *other = pki_key();
    const char *a[] = {ID_A}, *http[] = {"https://example.com/a"};
    char *good, *nosan, *foreign;
    X509 *x = leaf(f, k, a, 1, 600, 1, &good);
    X509 *y = leaf(f, k, NULL, 0, 600, 2, &nosan);
    X509 *z = leaf(f, k, http, 1, 600, 3, &foreign);
    assert_int_equal(px_creds_set_roots(c, f->ca_pem, strlen(f->ca_pem), err, sizeof(err)), 0);
    assert_int_equal(px_creds_set_cert(c, good, strlen(good), k, err, sizeof(err)), 0);
    uint64_t gen = px_creds_generation(c);

    err[0] = '\0';
    assert_int_equal(px_creds_set_cert(c, good, strlen(good), other, err, sizeof(err)), WF_E_INVAL);
    assert_non_null(strstr(err, "does not match"));
    assert_unchanged(c, gen, ID_A);
    assert_int_equal(px_creds_set_cert(c, good, strlen(good), NULL, err, sizeof(err)), WF_E_INVAL);
    assert_unchanged(c, gen, ID_A);

    assert_int_equal(px_creds_set_cert(c, nosan, strlen(nosan), k, err, sizeof(err)), WF_E_INVAL);
    assert_non_null(strstr(err, "spiffe"));
    assert_unchanged(c, gen, ID_A);
    assert_int_equal(px_creds_set_cert(c, foreign, strlen(foreign), k, err, sizeof(err)),
                     WF_E_INVAL);
    assert_unchanged(c, gen, ID_A);

    const char *garbage = "-----BEGIN CERTIFICATE-----\nnot base64 at all\n"
                          "-----END CERTIFICATE-----\n";
    assert_int_equal(px_creds_set_cert(c, garbage, strlen(garbage), k, err, sizeof(err)),
                     WF_E_INVAL);
    assert_unchanged(c, gen, ID_A);
    assert_int_equal(px_creds_set_cert(c, "", 0, k, err, sizeof(err)), WF_E_INVAL);
    assert_int_equal(px_creds_set_roots(c, garbage, strlen(garbage), err, sizeof(err)), WF_E_INVAL);
    assert_int_equal(px_creds_set_roots(c, "hello", 5, err, sizeof(err)), WF_E_INVAL);
    assert_unchanged(c, gen, ID_A);

    /* A certificate followed by a truncated one is not a chain. (Text outside PEM blocks is
     * ignored, as RFC 7468 lets parsers do.) */
    size_t gl = strlen(good);
    static const char trunc[] = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIBATAK\n";
    char *tail = wf_malloc(gl + sizeof(trunc));
    memcpy(tail, good, gl);
    memcpy(tail + gl, trunc, sizeof(trunc));
    assert_int_equal(px_creds_set_cert(c, tail, strlen(tail), k, err, sizeof(err)), WF_E_INVAL);
    assert_int_equal(px_creds_set_roots(c, tail, strlen(tail), err, sizeof(err)), WF_E_INVAL);
    assert_unchanged(c, gen, ID_A);

    /* Over 1 MiB: refused before it is parsed (the text itself is valid PEM). */
    size_t big_n = (1u << 20) / gl + 2;
    char *big = wf_malloc(big_n * gl + 1);
    for (size_t i = 0; i < big_n; i++) {
        memcpy(big + i * gl, good, gl);
    }
    big[big_n * gl] = '\0';
    assert_int_equal(px_creds_set_cert(c, big, big_n * gl, k, err, sizeof(err)), WF_E_INVAL);
    assert_int_equal(px_creds_set_roots(c, big, big_n * gl, err, sizeof(err)), WF_E_INVAL);
    assert_unchanged(c, gen, ID_A);

    wf_free(big);
    wf_free(tail);
    wf_free(good);
    wf_free(nosan);
    wf_free(foreign);
    X509_free(x);
    X509_free(y);
    X509_free(z);
    EVP_PKEY_free(k);
    EVP_PKEY_free(other);
    px_creds_destroy(c);
}

static char *key_pem(EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
    char *p;
    long n = BIO_get_mem_data(b, &p);
    char *s = wf_strndup(p, (size_t)n);
    BIO_free(b);
    return s;
}

static void test_load_files(void **state)
{
    fx_t *f = *state;
    char *dir = wt_tmpdir("creds");
    char chain_p[512], key_p[512], root_p[512], missing[512];
    snprintf(chain_p, sizeof(chain_p), "%s/cert-chain.pem", dir);
    snprintf(key_p, sizeof(key_p), "%s/key.pem", dir);
    snprintf(root_p, sizeof(root_p), "%s/root-cert.pem", dir);
    snprintf(missing, sizeof(missing), "%s/nope.pem", dir);
    EVP_PKEY *k = pki_key();
    const char *a[] = {ID_A};
    char *chain;
    X509 *x = leaf(f, k, a, 1, 600, 9, &chain);
    char *kp = key_pem(k);
    wt_write_file(chain_p, chain);
    wt_write_file(key_p, kp);
    wt_write_file(root_p, f->ca_pem);
    px_creds_t *c = px_creds_create();
    char err[512];

    /* Missing and unreadable (a directory) files: the errno, the path, nothing changed. */
    assert_int_equal(px_creds_load_files(c, missing, key_p, root_p, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "nope.pem"));
    assert_int_equal(px_creds_load_files(c, chain_p, key_p, missing, err, sizeof(err)), -ENOENT);
    assert_int_equal(px_creds_load_files(c, chain_p, dir, root_p, err, sizeof(err)), -EIO);
    assert_non_null(strstr(err, dir));
    assert_int_equal(px_creds_generation(c), 0);
    /* A chain needs its key and a key its chain; a key file that is not a key. */
    assert_int_equal(px_creds_load_files(c, chain_p, NULL, NULL, err, sizeof(err)), WF_E_INVAL);
    assert_int_equal(px_creds_load_files(c, NULL, key_p, NULL, err, sizeof(err)), WF_E_INVAL);
    assert_int_equal(px_creds_load_files(c, chain_p, root_p, NULL, err, sizeof(err)), WF_E_INVAL);
    assert_non_null(strstr(err, "private key"));
    assert_int_equal(px_creds_generation(c), 0);

    assert_int_equal(px_creds_load_files(c, chain_p, key_p, root_p, err, sizeof(err)), 0);
    px_creds_snap_t *s = px_creds_acquire(c);
    assert_string_equal(s->identity, ID_A);
    assert_int_equal(sk_X509_num(s->roots), 1);
    assert_int_equal(sk_X509_num(s->intermediates), 1);
    assert_int_equal(X509_check_private_key(s->leaf, s->key), 1);
    assert_int_equal(s->generation, 2); /* the roots, then the certificate */
    px_creds_release(s);
    /* Roots alone. */
    assert_int_equal(px_creds_load_files(c, NULL, NULL, root_p, err, sizeof(err)), 0);
    assert_int_equal(px_creds_generation(c), 3);

    px_creds_destroy(c);
    wf_free(kp);
    wf_free(chain);
    X509_free(x);
    EVP_PKEY_free(k);
    wt_rm_rf(dir);
    wf_free(dir);
}

static void test_spiffe_id(void **state)
{
    (void)state;
    EVP_PKEY *k = pki_key();
    char out[64];
    /* The first spiffe:// URI, after a foreign one. */
    const char *several[] = {"https://example.com/x", "spiffe://td/ns/a/sa/b",
                             "spiffe://td/ns/c/sa/d"};
    X509 *x = pki_cert(k, "x", NULL, several, 3, 0, 60, 1, false);
    assert_int_equal(px_creds_spiffe_id(x, out, sizeof(out)), 0);
    assert_string_equal(out, "spiffe://td/ns/a/sa/b");
    X509_free(x);
    /* Only foreign URIs, or none, or no SAN: not found. */
    const char *foreign[] = {"https://example.com/x", "SPIFFE-like://no"};
    x = pki_cert(k, "x", NULL, foreign, 2, 0, 60, 1, false);
    assert_int_equal(px_creds_spiffe_id(x, out, sizeof(out)), WF_E_NOTFOUND);
    X509_free(x);
    const char *bare[] = {"spiffe:/"};
    x = pki_cert(k, "x", NULL, bare, 1, 0, 60, 1, false);
    assert_int_equal(px_creds_spiffe_id(x, out, sizeof(out)), WF_E_NOTFOUND);
    X509_free(x);
    x = pki_cert(k, "x", NULL, NULL, 0, 0, 60, 1, false);
    assert_int_equal(px_creds_spiffe_id(x, out, sizeof(out)), WF_E_NOTFOUND);
    X509_free(x);
    /* Fits exactly (63 bytes + NUL), one byte too long. */
    char id[80];
    snprintf(id, sizeof(id), "spiffe://%.*s", 54,
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    assert_int_equal(strlen(id), 63);
    const char *fit[] = {id};
    x = pki_cert(k, "x", NULL, fit, 1, 0, 60, 1, false);
    assert_int_equal(px_creds_spiffe_id(x, out, sizeof(out)), 0);
    assert_string_equal(out, id);
    assert_int_equal(px_creds_spiffe_id(x, out, 63), WF_E_LIMIT);
    X509_free(x);
    EVP_PKEY_free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_set_cert_and_roots, setup, teardown),
        cmocka_unit_test_setup_teardown(test_held_snapshot_survives_replacement, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals_change_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_files, setup, teardown),
        cmocka_unit_test(test_spiffe_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
