/*
 * cp_ca.c - the mesh CA (see cp_ca.h): root creation and loading, CSR checks, workload
 * certificate issuance, the trust bundle and root rotation, over the OpenSSL 3 API.
 *
 * Managed roots live in <dir>/root-<id>.pem and root-<id>-key.pem; <dir>/state.json says
 * which roots exist, their state, the bundle version and a rotation in progress. Files are
 * written to a temporary name, fsynced and renamed, and state.json is written last, so a crash
 * leaves either the old state or the new one, never a state that names a missing root.
 */
#include "cp_ca.h"

#include "cp_err.h"

#include "wf_alloc.h"
#include "wf_err.h"
#include "wf_log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* More roots than a rotation plus an emergency one never need to be trusted at once. */
#define MAX_ROOTS 4
/* Certificates are back-dated by this much, for clocks of proxies slightly behind ours. */
#define BACKDATE_S 60
/* The largest RSA key taken: verifying a bigger one costs the CA time for no security. */
#define MAX_RSA_BITS 8192

typedef enum { ROOT_ACTIVE, ROOT_TRUSTED, ROOT_RETIRING } root_state_t;
static const char *const state_names[] = {"ACTIVE", "TRUSTED", "RETIRING"};
static const char *const reason_names[CP_CA_R_COUNT] = {"malformed", "key", "identity",
                                                        "unregistered", "too_large"};

typedef struct {
    int id;        /* managed: the file's number; given: 0 */
    X509 *cert;    /* owned */
    EVP_PKEY *key; /* owned; NULL for a given root we cannot sign with */
    root_state_t state;
    int64_t retire_at_ms; /* RETIRING: when it leaves the bundle */
    int64_t not_after_s;
} root_t;

struct cp_ca {
    pthread_mutex_t mu;
    char *dir;
    int64_t cert_ttl_s, root_ttl_s, propagation_ms, overlap_ms;
    bool external;
    root_t roots[MAX_ROOTS]; /* managed: by id; given: the organisation's roots */
    size_t nroots;
    int next_id;
    int64_t bundle_version;
    bool rotating;
    int64_t rotation_started_ms;
    /* given signer */
    X509 *signer;
    EVP_PKEY *signer_key;
    int64_t signer_not_after_s;
    /* derived */
    char *bundle_pem;
    char *chain_rest_pem; /* what follows the leaf in a chain (given intermediates) */
    atomic_ulong issued;
    atomic_ulong refusals[CP_CA_R_COUNT];
};

static void errf(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void errf(char *err, size_t len, const char *fmt, ...)
{
    if (err == NULL || len == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

/* The text of OpenSSL's oldest queued error (and the queue cleared), for messages. */
static const char *ossl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_peek_error();
    if (e == 0) {
        snprintf(buf, len, "no detail");
    } else {
        ERR_error_string_n(e, buf, len);
    }
    ERR_clear_error();
    return buf;
}

const char *cp_ca_strerror(int code)
{
    switch (code) {
    case CP_CA_E_MALFORMED:
        return "malformed certificate request";
    case CP_CA_E_KEY:
        return "key type or size not accepted";
    case CP_CA_E_IDENTITY:
        return "the request asks for another identity";
    case CP_CA_E_EXTERNAL:
        return "the signer is given by flags and does not rotate";
    case CP_CA_E_BUSY:
        return "a rotation is in progress";
    default:
        return cp_strerror(code);
    }
}

/* ---- small OpenSSL helpers ---- */

static int64_t asn1_time_s(const ASN1_TIME *t)
{
    struct tm tm;
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1) {
        return 0;
    }
    return (int64_t)timegm(&tm);
}

/* The PEM text of x, malloc'ed. */
static char *x509_pem(X509 *x)
{
    BIO *b = BIO_new(BIO_s_mem());
    WF_ASSERT(b != NULL);
    WF_ASSERT(PEM_write_bio_X509(b, x) == 1);
    char *data = NULL;
    long n = BIO_get_mem_data(b, &data);
    char *out = wf_malloc((size_t)n + 1);
    memcpy(out, data, (size_t)n);
    out[n] = '\0';
    BIO_free(b);
    return out;
}

static char *key_pem(EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    WF_ASSERT(b != NULL);
    WF_ASSERT(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) == 1);
    char *data = NULL;
    long n = BIO_get_mem_data(b, &data);
    char *out = wf_malloc((size_t)n + 1);
    memcpy(out, data, (size_t)n);
    out[n] = '\0';
    BIO_free(b);
    return out;
}

/* A random positive 128-bit serial (RFC 5280 allows 20 octets; the top bit is kept clear so
 * the DER integer needs no sign octet). */
static int set_serial(X509 *x)
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof(b)) != 1) {
        return WF_E_INTERNAL;
    }
    b[0] = (unsigned char)((b[0] & 0x7f) | 0x40);
    BIGNUM *bn = BN_bin2bn(b, sizeof(b), NULL);
    int rc =
        bn != NULL && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL ? 0 : WF_E_INTERNAL;
    BN_free(bn);
    return rc;
}

/* Add the extension nid=value (OpenSSL's configuration syntax; value is ours, never input). */
static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (e == NULL) {
        return WF_E_INTERNAL;
    }
    int ok = X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    return ok == 1 ? 0 : WF_E_INTERNAL;
}

static char *serial_hex(X509 *x)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *h = bn != NULL ? BN_bn2hex(bn) : NULL;
    char *out = wf_strdup(h != NULL ? h : "");
    OPENSSL_free(h);
    BN_free(bn);
    return out;
}

static char *subject_text(X509 *x)
{
    char buf[256];
    X509_NAME_oneline(X509_get_subject_name(x), buf, sizeof(buf));
    return wf_strdup(buf);
}

/* ---- files ---- */

/* Write data to dir/name through a temporary file, fsync and rename, mode 0600. -errno. */
static int write_atomic(const char *dir, const char *name, const char *data, size_t len)
{
    char tmp[PATH_MAX], path[PATH_MAX];
    int fd = -1, rc = 0;
    if (snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name) >= (int)sizeof(tmp) ||
        snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path)) {
        return -ENAMETOOLONG;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        return -errno;
    }
    for (size_t off = 0; off < len;) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            rc = n < 0 ? -errno : -EIO;
            goto fail;
        }
        off += (size_t)n;
    }
    if (fsync(fd) != 0) {
        rc = -errno;
        goto fail;
    }
    close(fd);
    fd = -1;
    if (rename(tmp, path) != 0) {
        rc = -errno;
        goto fail;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
fail:
    if (fd >= 0) {
        close(fd);
    }
    unlink(tmp);
    return rc;
}

static void root_path(const char *dir, int id, bool key, char *out, size_t len)
{
    snprintf(out, len, "%s/root-%d%s.pem", dir, id, key ? "-key" : "");
}

static int save_root(const cp_ca_t *ca, const root_t *r)
{
    char name[64];
    char *cert = x509_pem(r->cert), *key = key_pem(r->key);
    snprintf(name, sizeof(name), "root-%d-key.pem", r->id);
    int rc = write_atomic(ca->dir, name, key, strlen(key));
    if (rc == 0) {
        snprintf(name, sizeof(name), "root-%d.pem", r->id);
        rc = write_atomic(ca->dir, name, cert, strlen(cert));
    }
    OPENSSL_cleanse(key, strlen(key));
    wf_free(key);
    wf_free(cert);
    return rc;
}

/* Persist the state, leaving out the root whose id is skip_id (0: none). -errno. */
static int save_state(const cp_ca_t *ca, int skip_id)
{
    json_t *roots = json_array();
    for (size_t i = 0; i < ca->nroots; i++) {
        const root_t *r = &ca->roots[i];
        if (r->id == skip_id) {
            continue;
        }
        json_array_append_new(roots, json_pack("{s:i, s:s, s:I}", "id", r->id, "state",
                                               state_names[r->state], "retire_at_ms",
                                               (json_int_t)r->retire_at_ms));
    }
    json_t *st =
        json_pack("{s:i, s:I, s:I, s:o}", "next_id", ca->next_id, "bundle_version",
                  (json_int_t)(ca->bundle_version + (skip_id != 0 ? 1 : 0)), "rotation_started_ms",
                  (json_int_t)(ca->rotating ? ca->rotation_started_ms : 0), "roots", roots);
    WF_ASSERT(st != NULL);
    char *txt = json_dumps(st, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(st);
    WF_ASSERT(txt != NULL);
    int rc = write_atomic(ca->dir, "state.json", txt, strlen(txt));
    free(txt);
    return rc;
}

/* ---- roots ---- */

static void root_clear(root_t *r)
{
    X509_free(r->cert);
    EVP_PKEY_free(r->key);
    memset(r, 0, sizeof(*r));
}

/* A new self-signed root valid from now for the root TTL, into r (id set by the caller). */
static int create_root(cp_ca_t *ca, int64_t now_s, root_t *r)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_NAME *nm = X509_NAME_new();
    int rc = WF_E_INTERNAL;
    if (key == NULL || x == NULL || nm == NULL) {
        goto fail;
    }
    if (X509_set_version(x, X509_VERSION_3) != 1 || set_serial(x) != 0 ||
        X509_NAME_add_entry_by_txt(nm, "O", MBSTRING_ASC, (const unsigned char *)"cluster.local",
                                   -1, -1, 0) != 1 ||
        X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)"weft root CA",
                                   -1, -1, 0) != 1 ||
        X509_set_subject_name(x, nm) != 1 || X509_set_issuer_name(x, nm) != 1 ||
        ASN1_TIME_set(X509_getm_notBefore(x), (time_t)(now_s - BACKDATE_S)) == NULL ||
        ASN1_TIME_set(X509_getm_notAfter(x), (time_t)(now_s + ca->root_ttl_s)) == NULL ||
        X509_set_pubkey(x, key) != 1) {
        goto fail;
    }
    /* The subject key identifier first: the authority one is derived from it. */
    if (add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE") != 0 ||
        add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") != 0 ||
        add_ext(x, x, NID_subject_key_identifier, "hash") != 0 ||
        add_ext(x, x, NID_authority_key_identifier, "keyid:always") != 0 ||
        X509_sign(x, key, EVP_sha256()) <= 0) {
        goto fail;
    }
    X509_NAME_free(nm);
    r->cert = x;
    r->key = key;
    r->not_after_s = asn1_time_s(X509_get0_notAfter(x));
    return 0;
fail:
    ERR_clear_error();
    X509_NAME_free(nm);
    X509_free(x);
    EVP_PKEY_free(key);
    return rc;
}

/*
 * The PEM password callback: there is never a password. Without it OpenSSL's default would
 * prompt on the terminal for a PEM block marked encrypted, which a CSR from the network can be.
 */
static int no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

static X509 *read_cert(const char *path)
{
    BIO *b = BIO_new_file(path, "r");
    X509 *x = b != NULL ? PEM_read_bio_X509(b, NULL, no_password, NULL) : NULL;
    BIO_free(b);
    return x;
}

static EVP_PKEY *read_key(const char *path)
{
    BIO *b = BIO_new_file(path, "r");
    EVP_PKEY *k = b != NULL ? PEM_read_bio_PrivateKey(b, NULL, no_password, NULL) : NULL;
    BIO_free(b);
    return k;
}

/* The bundle (every root's PEM) and the signing chain's tail, rebuilt after a change. */
static void derive(cp_ca_t *ca)
{
    size_t len = 0;
    char *pems[MAX_ROOTS];
    for (size_t i = 0; i < ca->nroots; i++) {
        pems[i] = x509_pem(ca->roots[i].cert);
        len += strlen(pems[i]);
    }
    wf_free(ca->bundle_pem);
    ca->bundle_pem = wf_malloc(len + 1);
    ca->bundle_pem[0] = '\0';
    for (size_t i = 0; i < ca->nroots; i++) {
        strcat(ca->bundle_pem, pems[i]);
        wf_free(pems[i]);
    }
    if (ca->chain_rest_pem == NULL) {
        ca->chain_rest_pem = wf_strdup("");
    }
}

/* The managed root that signs (ACTIVE), or NULL. */
static root_t *active_root(cp_ca_t *ca)
{
    for (size_t i = 0; i < ca->nroots; i++) {
        if (ca->roots[i].state == ROOT_ACTIVE) {
            return &ca->roots[i];
        }
    }
    return NULL;
}

static int state_of(const char *s)
{
    for (int i = 0; i < 3; i++) {
        if (strcmp(s, state_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

/* Load <dir>/state.json and its roots; WF_E_NOTFOUND when there is no state yet. */
static int load_managed(cp_ca_t *ca, char *err, size_t errlen)
{
    char path[PATH_MAX];
    json_error_t je;
    snprintf(path, sizeof(path), "%s/state.json", ca->dir);
    if (access(path, F_OK) != 0) {
        return WF_E_NOTFOUND;
    }
    json_t *st = json_load_file(path, 0, &je), *roots = NULL;
    json_int_t next_id = 0, version = 0, started = 0;
    if (st == NULL ||
        json_unpack(st, "{s:I, s:I, s:I, s:o}", "next_id", &next_id, "bundle_version", &version,
                    "rotation_started_ms", &started, "roots", &roots) != 0 ||
        !json_is_array(roots) || json_array_size(roots) == 0 ||
        json_array_size(roots) > MAX_ROOTS || next_id <= 0 || next_id > INT_MAX || version <= 0) {
        errf(err, errlen, "%s is not a CA state this version can read", path);
        json_decref(st);
        return WF_E_CORRUPT;
    }
    ca->next_id = (int)next_id;
    ca->bundle_version = version;
    ca->rotating = started > 0;
    ca->rotation_started_ms = started;
    size_t i;
    json_t *e;
    int nactive = 0, ntrusted = 0;
    json_array_foreach(roots, i, e)
    {
        json_int_t id = 0, retire = 0;
        const char *state = NULL;
        root_t *r = &ca->roots[ca->nroots];
        if (json_unpack(e, "{s:I, s:s, s:I}", "id", &id, "state", &state, "retire_at_ms",
                        &retire) != 0 ||
            id <= 0 || id >= next_id || state_of(state) < 0) {
            errf(err, errlen, "%s: root %zu is not readable", path, i);
            json_decref(st);
            return WF_E_CORRUPT;
        }
        r->id = (int)id;
        r->state = (root_state_t)state_of(state);
        r->retire_at_ms = retire;
        root_path(ca->dir, r->id, false, path, sizeof(path));
        r->cert = read_cert(path);
        root_path(ca->dir, r->id, true, path, sizeof(path));
        r->key = read_key(path);
        ca->nroots++;
        if (r->cert == NULL || r->key == NULL || X509_check_private_key(r->cert, r->key) != 1) {
            ERR_clear_error();
            errf(err, errlen,
                 "root %d in %s: its certificate or key is missing or they do not match", r->id,
                 ca->dir);
            json_decref(st);
            return WF_E_CORRUPT;
        }
        r->not_after_s = asn1_time_s(X509_get0_notAfter(r->cert));
        nactive += r->state == ROOT_ACTIVE;
        ntrusted += r->state == ROOT_TRUSTED;
    }
    json_decref(st);
    /* A rotation in progress has exactly one new root waiting to sign; otherwise none. */
    if (nactive != 1 || ntrusted != (ca->rotating ? 1 : 0)) {
        errf(err, errlen, "%s/state.json names %d signing and %d waiting roots", ca->dir, nactive,
             ntrusted);
        return WF_E_CORRUPT;
    }
    return 0;
}

static int open_managed(cp_ca_t *ca, int64_t now_ms, char *err, size_t errlen)
{
    if (mkdir(ca->dir, 0700) != 0 && errno != EEXIST) {
        errf(err, errlen, "cannot create %s: %s", ca->dir, strerror(errno));
        return -errno;
    }
    /* An existing folder may have been made by hand: the keys are in it. */
    chmod(ca->dir, 0700);
    int rc = load_managed(ca, err, errlen);
    if (rc != WF_E_NOTFOUND) {
        return rc;
    }
    root_t *r = &ca->roots[0];
    if ((rc = create_root(ca, now_ms / 1000, r)) != 0) {
        errf(err, errlen, "cannot create a root key and certificate");
        return rc;
    }
    r->id = 1;
    r->state = ROOT_ACTIVE;
    ca->nroots = 1;
    ca->next_id = 2;
    ca->bundle_version = 1;
    if ((rc = save_root(ca, r)) != 0 || (rc = save_state(ca, 0)) != 0) {
        errf(err, errlen, "cannot write the root in %s: %s", ca->dir, strerror(-rc));
        return rc;
    }
    WF_LOG(WF_INFO, "ca", "created a root", "dir=%s not_after=%lld", ca->dir,
           (long long)r->not_after_s);
    return 0;
}

/* Every certificate of a PEM file, in order. */
static STACK_OF(X509) * read_chain(const char *path)
{
    BIO *b = BIO_new_file(path, "r");
    if (b == NULL) {
        return NULL;
    }
    STACK_OF(X509) *sk = sk_X509_new_null();
    X509 *x;
    while ((x = PEM_read_bio_X509(b, NULL, no_password, NULL)) != NULL) {
        sk_X509_push(sk, x);
    }
    /* The loop ends on the end of the file, which OpenSSL queues as an error. */
    ERR_clear_error();
    BIO_free(b);
    return sk;
}

static int open_given(cp_ca_t *ca, const cp_ca_opts_t *o, int64_t now_ms, char *err, size_t errlen)
{
    STACK_OF(X509) *chain = NULL, *inter = sk_X509_new_null();
    X509_STORE *store = NULL;
    X509_STORE_CTX *vctx = NULL;
    int rc = WF_E_INVAL;
    time_t now = (time_t)(now_ms / 1000);
    char why[256];

    if (o->key_file == NULL) {
        errf(err, errlen, "--ca-cert needs --ca-key");
        goto fail;
    }
    if ((ca->signer = read_cert(o->cert_file)) == NULL) {
        errf(err, errlen, "%s: no PEM certificate (%s)", o->cert_file, ossl_reason(why, 256));
        goto fail;
    }
    if ((ca->signer_key = read_key(o->key_file)) == NULL) {
        errf(err, errlen, "%s: no PEM private key (%s)", o->key_file, ossl_reason(why, 256));
        goto fail;
    }
    if (X509_check_private_key(ca->signer, ca->signer_key) != 1) {
        ERR_clear_error();
        errf(err, errlen, "%s does not match the certificate in %s", o->key_file, o->cert_file);
        goto fail;
    }
    if ((X509_get_extension_flags(ca->signer) & EXFLAG_CA) == 0 ||
        (X509_get_key_usage(ca->signer) & KU_KEY_CERT_SIGN) == 0) {
        errf(err, errlen,
             "%s is not a CA certificate (basicConstraints CA:TRUE and keyCertSign "
             "are required)",
             o->cert_file);
        goto fail;
    }
    if (X509_cmp_time(X509_get0_notAfter(ca->signer), &now) <= 0 ||
        X509_cmp_time(X509_get0_notBefore(ca->signer), &now) >= 0) {
        errf(err, errlen, "%s is expired or not yet valid", o->cert_file);
        goto fail;
    }
    ca->signer_not_after_s = asn1_time_s(X509_get0_notAfter(ca->signer));
    if (X509_self_signed(ca->signer, 1) == 1) {
        ca->roots[0].cert = X509_dup(ca->signer);
        ca->nroots = 1;
    } else {
        if (o->chain_file == NULL) {
            errf(err, errlen,
                 "%s is an intermediate: --ca-chain must give its chain up to the "
                 "root",
                 o->cert_file);
            goto fail;
        }
        if ((chain = read_chain(o->chain_file)) == NULL || sk_X509_num(chain) == 0) {
            errf(err, errlen, "%s: no PEM certificates", o->chain_file);
            goto fail;
        }
        store = X509_STORE_new();
        for (int i = 0; i < sk_X509_num(chain); i++) {
            X509 *x = sk_X509_value(chain, i);
            if (X509_cmp(x, ca->signer) == 0) {
                continue;
            }
            if (X509_self_signed(x, 0) == 1) {
                if (ca->nroots == MAX_ROOTS) {
                    errf(err, errlen, "%s: more than %d roots", o->chain_file, MAX_ROOTS);
                    goto fail;
                }
                X509_STORE_add_cert(store, x);
                ca->roots[ca->nroots++].cert = X509_dup(x);
            } else {
                sk_X509_push(inter, X509_dup(x));
            }
        }
        if (ca->nroots == 0) {
            errf(err, errlen, "%s holds no self-signed root", o->chain_file);
            goto fail;
        }
        vctx = X509_STORE_CTX_new();
        if (vctx == NULL || X509_STORE_CTX_init(vctx, store, ca->signer, inter) != 1) {
            rc = WF_E_INTERNAL;
            goto fail;
        }
        X509_STORE_CTX_set_time(vctx, 0, now);
        if (X509_verify_cert(vctx) != 1) {
            errf(err, errlen, "%s does not verify to a root of %s: %s", o->cert_file, o->chain_file,
                 X509_verify_cert_error_string(X509_STORE_CTX_get_error(vctx)));
            goto fail;
        }
        /* Workload chains: leaf, the signer, then the intermediates above it. */
        size_t len = 0;
        char *parts[64];
        int np = 0;
        parts[np++] = x509_pem(ca->signer);
        for (int i = 0; i < sk_X509_num(inter) && np < 64; i++) {
            parts[np++] = x509_pem(sk_X509_value(inter, i));
        }
        for (int i = 0; i < np; i++) {
            len += strlen(parts[i]);
        }
        ca->chain_rest_pem = wf_malloc(len + 1);
        ca->chain_rest_pem[0] = '\0';
        for (int i = 0; i < np; i++) {
            strcat(ca->chain_rest_pem, parts[i]);
            wf_free(parts[i]);
        }
    }
    for (size_t i = 0; i < ca->nroots; i++) {
        ca->roots[i].state = ROOT_TRUSTED;
        ca->roots[i].not_after_s = asn1_time_s(X509_get0_notAfter(ca->roots[i].cert));
    }
    ca->bundle_version = 1;
    rc = 0;
fail:
    ERR_clear_error();
    X509_STORE_CTX_free(vctx);
    X509_STORE_free(store);
    sk_X509_pop_free(chain, X509_free);
    sk_X509_pop_free(inter, X509_free);
    return rc;
}

/* The bundle version field of dir/name (a JSON object), or 0 when absent or unreadable; the
 * given bundle's fingerprint into fp when asked. */
static int64_t stored_version(const char *dir, const char *name, char *fp, size_t fplen)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    json_t *o = json_load_file(path, 0, NULL);
    json_int_t v = json_integer_value(json_object_get(o, "bundle_version"));
    if (fp != NULL) {
        const char *s = json_string_value(json_object_get(o, "bundle_sha256"));
        snprintf(fp, fplen, "%s", s != NULL ? s : "");
    }
    json_decref(o);
    return v > 0 ? v : 0;
}

/*
 * Proxies keep the bundle with the highest version they have seen, so a bundle that changes
 * with the mode (managed -> given signer, another organisation root, and back) must come with
 * a higher version than any before, or they would keep trusting the old roots. A given
 * signer's bundle keeps its version in <dir>/given.json with its fingerprint; a managed root
 * continues above it. Without a directory (tests of a given signer) the version stays 1.
 */
static int version_across_modes(cp_ca_t *ca, char *err, size_t errlen)
{
    if (ca->dir == NULL) {
        return 0;
    }
    char fp[80] = "", now_fp[80];
    unsigned char md[32];
    SHA256((const unsigned char *)ca->bundle_pem, strlen(ca->bundle_pem), md);
    for (size_t i = 0; i < sizeof(md); i++) {
        snprintf(now_fp + 2 * i, 3, "%02x", md[i]);
    }
    int64_t given = stored_version(ca->dir, "given.json", fp, sizeof(fp));
    int rc = 0;
    if (ca->external) {
        int64_t managed = stored_version(ca->dir, "state.json", NULL, 0);
        if (strcmp(fp, now_fp) == 0 && given > managed) {
            ca->bundle_version = given;
            return 0;
        }
        ca->bundle_version = (given > managed ? given : managed) + 1;
        if (mkdir(ca->dir, 0700) != 0 && errno != EEXIST) {
            rc = -errno;
        } else {
            json_t *o = json_pack("{s:s, s:I}", "bundle_sha256", now_fp, "bundle_version",
                                  (json_int_t)ca->bundle_version);
            char *txt = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
            json_decref(o);
            rc = write_atomic(ca->dir, "given.json", txt, strlen(txt));
            free(txt);
        }
    } else if (given >= ca->bundle_version) {
        ca->bundle_version = given + 1;
        rc = save_state(ca, 0);
    }
    if (rc != 0) {
        errf(err, errlen, "cannot record the trust bundle's version in %s: %s", ca->dir,
             strerror(-rc));
    }
    return rc;
}

int cp_ca_open(const cp_ca_opts_t *o, int64_t now_ms, cp_ca_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (o->cert_file == NULL && o->dir == NULL) {
        errf(err, errlen, "the CA needs a directory or a signer");
        return WF_E_INVAL;
    }
    if (o->cert_ttl_ms < 0 || (o->cert_ttl_ms > 0 && o->cert_ttl_ms < 1000) || o->root_ttl_ms < 0 ||
        o->propagation_ms < 0 || o->overlap_ms < 0) {
        errf(err, errlen, "the certificate TTL must be at least 1s; durations are positive");
        return WF_E_INVAL;
    }
    cp_ca_t *ca = wf_calloc(1, sizeof(*ca));
    pthread_mutex_init(&ca->mu, NULL);
    ca->dir = o->dir != NULL ? wf_strdup(o->dir) : NULL;
    ca->cert_ttl_s = (o->cert_ttl_ms > 0 ? o->cert_ttl_ms : CP_CA_DEFAULT_CERT_TTL_MS) / 1000;
    ca->root_ttl_s = (o->root_ttl_ms > 0 ? o->root_ttl_ms : CP_CA_DEFAULT_ROOT_TTL_MS) / 1000;
    ca->propagation_ms = o->propagation_ms > 0 ? o->propagation_ms : CP_CA_DEFAULT_PROPAGATION_MS;
    ca->overlap_ms = o->overlap_ms > 0 ? o->overlap_ms : 2 * ca->cert_ttl_s * 1000;
    ca->external = o->cert_file != NULL;
    int rc = ca->external ? open_given(ca, o, now_ms, err, errlen)
                          : open_managed(ca, now_ms, err, errlen);
    if (rc == 0) {
        derive(ca);
        rc = version_across_modes(ca, err, errlen);
    }
    if (rc != 0) {
        cp_ca_close(ca);
        return rc;
    }
    *out = ca;
    return 0;
}

void cp_ca_close(cp_ca_t *ca)
{
    if (ca == NULL) {
        return;
    }
    for (size_t i = 0; i < MAX_ROOTS; i++) {
        root_clear(&ca->roots[i]);
    }
    X509_free(ca->signer);
    EVP_PKEY_free(ca->signer_key);
    wf_free(ca->bundle_pem);
    wf_free(ca->chain_rest_pem);
    wf_free(ca->dir);
    pthread_mutex_destroy(&ca->mu);
    wf_free(ca);
}

/* ---- CSRs ---- */

static int check_key(EVP_PKEY *pk, char *err, size_t errlen)
{
    int id = EVP_PKEY_get_base_id(pk);
    if (id == EVP_PKEY_EC) {
        char grp[64] = "";
        size_t glen = 0;
        if (EVP_PKEY_get_group_name(pk, grp, sizeof(grp), &glen) == 1 &&
            (strcmp(grp, "prime256v1") == 0 || strcmp(grp, "P-256") == 0 ||
             strcmp(grp, "secp384r1") == 0 || strcmp(grp, "P-384") == 0)) {
            return 0;
        }
        errf(err, errlen, "EC keys must be on P-256 or P-384 (got %s)", grp[0] ? grp : "?");
        return CP_CA_E_KEY;
    }
    if (id == EVP_PKEY_RSA) {
        int bits = EVP_PKEY_get_bits(pk);
        if (bits >= 2048 && bits <= MAX_RSA_BITS) {
            return 0;
        }
        errf(err, errlen, "RSA keys must be 2048 to %d bits (got %d)", MAX_RSA_BITS, bits);
        return CP_CA_E_KEY;
    }
    errf(err, errlen, "the key must be EC P-256/P-384 or RSA >= 2048 bits");
    return CP_CA_E_KEY;
}

/* The requested SANs: none, or exactly one, the URI spiffe_id. */
static int check_sans(X509_REQ *req, const char *spiffe_id, char *err, size_t errlen)
{
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
    int rc = 0, nsan = 0;
    for (int i = 0; rc == 0 && i < sk_X509_EXTENSION_num(exts); i++) {
        X509_EXTENSION *e = sk_X509_EXTENSION_value(exts, i);
        if (OBJ_obj2nid(X509_EXTENSION_get_object(e)) != NID_subject_alt_name) {
            continue;
        }
        GENERAL_NAMES *gens = X509V3_EXT_d2i(e);
        if (gens == NULL) {
            errf(err, errlen, "the subjectAltName extension does not parse");
            rc = CP_CA_E_MALFORMED;
            break;
        }
        for (int j = 0; rc == 0 && j < sk_GENERAL_NAME_num(gens); j++) {
            const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, j);
            int type = 0;
            const ASN1_STRING *v = GENERAL_NAME_get0_value(g, &type);
            nsan++;
            if (type != GEN_URI || v == NULL ||
                (size_t)ASN1_STRING_length(v) != strlen(spiffe_id) ||
                memcmp(ASN1_STRING_get0_data(v), spiffe_id, strlen(spiffe_id)) != 0) {
                errf(err, errlen, "the request asks for a name other than %s", spiffe_id);
                rc = CP_CA_E_IDENTITY;
            } else if (nsan > 1) {
                errf(err, errlen, "the request names %s more than once", spiffe_id);
                rc = CP_CA_E_IDENTITY;
            }
        }
        GENERAL_NAMES_free(gens);
    }
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    return rc;
}

/* Parse and check a CSR; the request in *out (X509_REQ_free it) on success. */
static int parse_csr(const char *pem, size_t len, const char *spiffe_id, X509_REQ **out, char *err,
                     size_t errlen)
{
    *out = NULL;
    if (pem == NULL || len == 0 || len > INT_MAX) {
        errf(err, errlen, "csr: empty");
        return CP_CA_E_MALFORMED;
    }
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    WF_ASSERT(b != NULL);
    X509_REQ *req = PEM_read_bio_X509_REQ(b, NULL, no_password, NULL);
    BIO_free(b);
    int rc;
    EVP_PKEY *pk;
    if (req == NULL) {
        errf(err, errlen, "csr: not a PEM CERTIFICATE REQUEST");
        rc = CP_CA_E_MALFORMED;
        goto fail;
    }
    if ((pk = X509_REQ_get0_pubkey(req)) == NULL) {
        errf(err, errlen, "csr: its public key does not parse");
        rc = CP_CA_E_MALFORMED;
        goto fail;
    }
    if ((rc = check_key(pk, err, errlen)) != 0) {
        goto fail;
    }
    if (X509_REQ_verify(req, pk) != 1) {
        errf(err, errlen, "csr: its signature does not verify");
        rc = CP_CA_E_MALFORMED;
        goto fail;
    }
    if ((rc = check_sans(req, spiffe_id, err, errlen)) != 0) {
        goto fail;
    }
    ERR_clear_error();
    *out = req;
    return 0;
fail:
    ERR_clear_error();
    X509_REQ_free(req);
    return rc;
}

int cp_ca_check_csr(const char *pem, size_t len, const char *spiffe_id, char *err, size_t errlen)
{
    X509_REQ *req = NULL;
    int rc = parse_csr(pem, len, spiffe_id, &req, err, errlen);
    X509_REQ_free(req);
    return rc;
}

static cp_ca_reason_t reason_of(int rc)
{
    return rc == CP_CA_E_KEY        ? CP_CA_R_KEY
           : rc == CP_CA_E_IDENTITY ? CP_CA_R_IDENTITY
                                    : CP_CA_R_MALFORMED;
}

/* The leaf for req's key and spiffe_id, signed by issuer/key; NULL on an internal failure. */
static X509 *issue(X509_REQ *req, const char *spiffe_id, X509 *issuer, EVP_PKEY *key, int64_t now_s,
                   int64_t not_after_s)
{
    X509 *x = X509_new();
    X509_NAME *empty = X509_NAME_new();
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_IA5STRING *uri = ASN1_IA5STRING_new();
    if (x == NULL || empty == NULL || gens == NULL || gn == NULL || uri == NULL ||
        ASN1_STRING_set(uri, spiffe_id, (int)strlen(spiffe_id)) != 1) {
        goto fail;
    }
    GENERAL_NAME_set0_value(gn, GEN_URI, uri);
    uri = NULL;
    sk_GENERAL_NAME_push(gens, gn);
    gn = NULL;
    if (X509_set_version(x, X509_VERSION_3) != 1 || set_serial(x) != 0 ||
        X509_set_subject_name(x, empty) != 1 ||
        X509_set_issuer_name(x, X509_get_subject_name(issuer)) != 1 ||
        ASN1_TIME_set(X509_getm_notBefore(x), (time_t)(now_s - BACKDATE_S)) == NULL ||
        ASN1_TIME_set(X509_getm_notAfter(x), (time_t)not_after_s) == NULL ||
        X509_set_pubkey(x, X509_REQ_get0_pubkey(req)) != 1) {
        goto fail;
    }
    /* RFC 5280 4.2.1.6: with an empty subject the SAN must be critical. */
    if (X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 1, X509V3_ADD_DEFAULT) != 1 ||
        add_ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE") != 0 ||
        add_ext(x, issuer, NID_key_usage, "critical,digitalSignature,keyEncipherment") != 0 ||
        add_ext(x, issuer, NID_ext_key_usage, "serverAuth,clientAuth") != 0 ||
        add_ext(x, issuer, NID_authority_key_identifier, "keyid") != 0 ||
        X509_sign(x, key, EVP_sha256()) <= 0) {
        goto fail;
    }
    X509_NAME_free(empty);
    GENERAL_NAMES_free(gens);
    return x;
fail:
    ERR_clear_error();
    ASN1_IA5STRING_free(uri);
    GENERAL_NAME_free(gn);
    GENERAL_NAMES_free(gens);
    X509_NAME_free(empty);
    X509_free(x);
    return NULL;
}

int cp_ca_sign(cp_ca_t *ca, const char *pem, size_t len, const char *spiffe_id, int64_t now_ms,
               cp_ca_issued_t *out, char *err, size_t errlen)
{
    X509_REQ *req = NULL;
    memset(out, 0, sizeof(*out));
    int rc = parse_csr(pem, len, spiffe_id, &req, err, errlen);
    if (rc != 0) {
        atomic_fetch_add(&ca->refusals[reason_of(rc)], 1);
        return rc;
    }
    int64_t now_s = now_ms / 1000;
    pthread_mutex_lock(&ca->mu);
    X509 *issuer;
    EVP_PKEY *key;
    int64_t limit;
    if (ca->external) {
        issuer = ca->signer;
        key = ca->signer_key;
        limit = ca->signer_not_after_s;
    } else {
        root_t *r = active_root(ca);
        WF_ASSERT(r != NULL);
        issuer = r->cert;
        key = r->key;
        limit = r->not_after_s;
    }
    int64_t not_after = now_s + ca->cert_ttl_s;
    if (not_after > limit) {
        not_after = limit;
    }
    X509 *leaf = not_after > now_s ? issue(req, spiffe_id, issuer, key, now_s, not_after) : NULL;
    if (leaf != NULL) {
        char *lp = x509_pem(leaf);
        size_t a = strlen(lp), b = strlen(ca->chain_rest_pem);
        out->chain_pem = wf_malloc(a + b + 1);
        memcpy(out->chain_pem, lp, a);
        memcpy(out->chain_pem + a, ca->chain_rest_pem, b + 1);
        wf_free(lp);
        out->bundle_pem = wf_strdup(ca->bundle_pem);
        out->bundle_version = ca->bundle_version;
        out->not_after = not_after;
    }
    pthread_mutex_unlock(&ca->mu);
    X509_free(leaf);
    X509_REQ_free(req);
    if (leaf == NULL) {
        errf(err, errlen, not_after > now_s ? "signing failed" : "the signer has expired");
        return WF_E_INTERNAL;
    }
    atomic_fetch_add(&ca->issued, 1);
    return 0;
}

void cp_ca_issued_free(cp_ca_issued_t *x)
{
    if (x != NULL) {
        wf_free(x->chain_pem);
        wf_free(x->bundle_pem);
        memset(x, 0, sizeof(*x));
    }
}

void cp_ca_count_refusal(cp_ca_t *ca, cp_ca_reason_t why)
{
    WF_ASSERT(why < CP_CA_R_COUNT);
    atomic_fetch_add(&ca->refusals[why], 1);
}

/* ---- bundle and rotation ---- */

void cp_ca_bundle(cp_ca_t *ca, char **pem, int64_t *version)
{
    pthread_mutex_lock(&ca->mu);
    *pem = wf_strdup(ca->bundle_pem);
    *version = ca->bundle_version;
    pthread_mutex_unlock(&ca->mu);
}

int64_t cp_ca_bundle_version(cp_ca_t *ca)
{
    pthread_mutex_lock(&ca->mu);
    int64_t v = ca->bundle_version;
    pthread_mutex_unlock(&ca->mu);
    return v;
}

int cp_ca_rotate(cp_ca_t *ca, int64_t now_ms, char *err, size_t errlen)
{
    int rc = 0;
    pthread_mutex_lock(&ca->mu);
    if (ca->external) {
        errf(err, errlen,
             "the signer was given by --ca-cert: rotate it by restarting with new "
             "files");
        rc = CP_CA_E_EXTERNAL;
        goto out;
    }
    if (ca->rotating || ca->nroots == MAX_ROOTS) {
        errf(err, errlen,
             ca->rotating ? "a rotation is propagating to the proxies: wait until "
                            "the new root signs"
                          : "too many roots are still trusted: wait until a "
                            "replaced one is retired");
        rc = CP_CA_E_BUSY;
        goto out;
    }
    root_t *r = &ca->roots[ca->nroots];
    if ((rc = create_root(ca, now_ms / 1000, r)) != 0) {
        errf(err, errlen, "cannot create a root");
        goto out;
    }
    r->id = ca->next_id;
    r->state = ROOT_TRUSTED;
    if ((rc = save_root(ca, r)) != 0) {
        errf(err, errlen, "cannot write the new root: %s", strerror(-rc));
        root_clear(r);
        goto out;
    }
    ca->nroots++;
    ca->next_id++;
    ca->bundle_version++;
    ca->rotating = true;
    ca->rotation_started_ms = now_ms;
    if ((rc = save_state(ca, 0)) != 0) {
        errf(err, errlen, "cannot write the CA state: %s", strerror(-rc));
        ca->nroots--;
        ca->next_id--;
        ca->bundle_version--;
        ca->rotating = false;
        root_clear(r);
        goto out;
    }
    derive(ca);
    WF_LOG(WF_INFO, "ca", "rotation started: a new root is trusted", "root=%d bundle_version=%lld",
           r->id, (long long)ca->bundle_version);
out:
    pthread_mutex_unlock(&ca->mu);
    return rc;
}

/* Switch signing to the TRUSTED root; the old signer retires after the overlap. */
static int switch_locked(cp_ca_t *ca, int64_t now_ms)
{
    root_t *old = active_root(ca), *nu = NULL;
    for (size_t i = 0; i < ca->nroots; i++) {
        if (ca->roots[i].state == ROOT_TRUSTED) {
            nu = &ca->roots[i];
        }
    }
    WF_ASSERT(old != NULL && nu != NULL);
    old->state = ROOT_RETIRING;
    old->retire_at_ms = now_ms + ca->overlap_ms;
    nu->state = ROOT_ACTIVE;
    ca->rotating = false;
    int rc = save_state(ca, 0);
    if (rc != 0) {
        old->state = ROOT_ACTIVE;
        old->retire_at_ms = 0;
        nu->state = ROOT_TRUSTED;
        ca->rotating = true;
        return rc;
    }
    WF_LOG(WF_INFO, "ca", "rotation: the new root signs", "root=%d retiring=%d retire_at_ms=%lld",
           nu->id, old->id, (long long)old->retire_at_ms);
    return 1;
}

int cp_ca_tick(cp_ca_t *ca, int64_t now_ms, cp_ca_propagated_fn propagated, void *arg)
{
    char missing[256] = "";
    pthread_mutex_lock(&ca->mu);
    bool rotating = ca->rotating;
    int64_t version = ca->bundle_version;
    pthread_mutex_unlock(&ca->mu);
    /* Asked without the lock: the callback takes the push engine's and the registry's. */
    bool done =
        rotating && propagated != NULL && propagated(arg, version, missing, sizeof(missing));

    int changed = 0, rc;
    pthread_mutex_lock(&ca->mu);
    if (ca->rotating && ca->bundle_version == version &&
        (done || now_ms >= ca->rotation_started_ms + ca->propagation_ms)) {
        if (!done) {
            WF_LOG(WF_WARN, "ca", "rotation: proxies did not take the new bundle in time",
                   "bundle_version=%lld waiting_for=\"%s\"", (long long)version, missing);
        }
        if ((rc = switch_locked(ca, now_ms)) < 0) {
            changed = rc;
            goto out;
        }
        changed = 1;
    }
    for (size_t i = 0; i < ca->nroots; i++) {
        root_t *r = &ca->roots[i];
        if (r->state != ROOT_RETIRING || now_ms < r->retire_at_ms) {
            continue;
        }
        if ((rc = save_state(ca, r->id)) != 0) {
            changed = rc;
            goto out;
        }
        char path[PATH_MAX];
        int id = r->id;
        root_path(ca->dir, id, false, path, sizeof(path));
        unlink(path);
        root_path(ca->dir, id, true, path, sizeof(path));
        unlink(path);
        root_clear(r);
        memmove(r, r + 1, (ca->nroots - i - 1) * sizeof(*r));
        ca->nroots--;
        memset(&ca->roots[ca->nroots], 0, sizeof(root_t));
        ca->bundle_version++;
        derive(ca);
        WF_LOG(WF_INFO, "ca", "rotation: the replaced root left the bundle",
               "root=%d bundle_version=%lld", id, (long long)ca->bundle_version);
        changed = 1;
        i--;
    }
out:
    pthread_mutex_unlock(&ca->mu);
    return changed;
}

/* ---- status and metrics ---- */

json_t *cp_ca_status(cp_ca_t *ca)
{
    pthread_mutex_lock(&ca->mu);
    json_t *roots = json_array();
    for (size_t i = 0; i < ca->nroots; i++) {
        root_t *r = &ca->roots[i];
        char *subj = subject_text(r->cert), *serial = serial_hex(r->cert);
        const char *state = ca->external ? "TRUSTED" : state_names[r->state];
        json_t *o = json_pack("{s:s, s:s, s:I, s:s}", "subject", subj, "serial", serial,
                              "not_after", (json_int_t)r->not_after_s, "state", state);
        if (r->state == ROOT_RETIRING) {
            json_object_set_new(o, "retire_at", json_integer(r->retire_at_ms / 1000));
        }
        json_array_append_new(roots, o);
        wf_free(subj);
        wf_free(serial);
    }
    json_t *rot = json_null();
    if (ca->rotating) {
        rot = json_pack("{s:s, s:I, s:I}", "phase", "propagating", "started",
                        (json_int_t)(ca->rotation_started_ms / 1000), "deadline",
                        (json_int_t)((ca->rotation_started_ms + ca->propagation_ms) / 1000));
    }
    json_t *st = json_pack("{s:s, s:I, s:I, s:o, s:o}", "mode", ca->external ? "given" : "managed",
                           "bundle_version", (json_int_t)ca->bundle_version, "cert_ttl_seconds",
                           (json_int_t)ca->cert_ttl_s, "rotation", rot, "roots", roots);
    if (ca->external) {
        char *subj = subject_text(ca->signer);
        json_object_set_new(st, "signer", json_string(subj));
        wf_free(subj);
    }
    pthread_mutex_unlock(&ca->mu);
    WF_ASSERT(st != NULL);
    return st;
}

void cp_ca_metrics(cp_ca_t *ca, FILE *f)
{
    pthread_mutex_lock(&ca->mu);
    root_t *r = ca->external ? NULL : active_root(ca);
    int64_t expiry = ca->external ? ca->signer_not_after_s : r != NULL ? r->not_after_s : 0;
    int64_t version = ca->bundle_version;
    size_t nroots = ca->nroots;
    pthread_mutex_unlock(&ca->mu);
    fprintf(f,
            "# HELP weft_control_ca_certificates_issued_total Workload certificates signed.\n"
            "# TYPE weft_control_ca_certificates_issued_total counter\n"
            "weft_control_ca_certificates_issued_total %lu\n"
            "# HELP weft_control_ca_csr_refusals_total Certificate requests refused, by reason.\n"
            "# TYPE weft_control_ca_csr_refusals_total counter\n",
            atomic_load(&ca->issued));
    for (size_t i = 0; i < CP_CA_R_COUNT; i++) {
        fprintf(f, "weft_control_ca_csr_refusals_total{reason=\"%s\"} %lu\n", reason_names[i],
                atomic_load(&ca->refusals[i]));
    }
    fprintf(f,
            "# HELP weft_control_ca_root_expiry_timestamp_seconds When the signing CA "
            "certificate expires (Unix seconds).\n"
            "# TYPE weft_control_ca_root_expiry_timestamp_seconds gauge\n"
            "weft_control_ca_root_expiry_timestamp_seconds %lld\n"
            "# HELP weft_control_ca_trust_bundle_version The trust bundle's version.\n"
            "# TYPE weft_control_ca_trust_bundle_version gauge\n"
            "weft_control_ca_trust_bundle_version %lld\n"
            "# HELP weft_control_ca_roots Roots in the trust bundle.\n"
            "# TYPE weft_control_ca_roots gauge\n"
            "weft_control_ca_roots %zu\n",
            (long long)expiry, (long long)version, nroots);
}
