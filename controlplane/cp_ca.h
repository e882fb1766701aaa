/*
 * cp_ca.h - the mesh certificate authority of `weft control`: it signs the proxies' CSRs into
 * short-lived workload certificates carrying exactly one SPIFFE URI SAN, serves the trust
 * bundle, and rotates its root with an overlap in which both roots are trusted.
 *
 * Two modes:
 *   - managed: the CA creates its root (EC P-256, self-signed, 10 years by default) in
 *     <dir>/ (0700; one PEM per certificate and key, mode 0600, plus state.json), written
 *     atomically, and loads it again on the next start. Only such roots rotate.
 *   - given signer (cert_file + key_file [+ chain_file]): a self-signed CA certificate is the
 *     root; an intermediate needs chain_file up to an organisation's root, which becomes the
 *     trust bundle while workload chains are leaf + intermediates.
 * The bundle version never goes back, across modes too (<dir>/given.json): proxies keep the
 * bundle with the highest version they have seen.
 *
 * Rotation (managed only): cp_ca_rotate creates a new root and adds it to the bundle (its
 * version moves); the old root keeps signing until cp_ca_tick learns that every proxy runs a
 * snapshot carrying the new bundle, or the propagation timeout passes; then the new root signs
 * and the old one stays in the bundle for the overlap, after which cp_ca_tick removes it (the
 * version moves again). Every step is persisted before it takes effect, so a restart resumes
 * where it was.
 *
 * Time is an argument (now_ms, Unix wall clock in milliseconds), never read inside, so the
 * rotation phases are testable with a fake clock. Threads: every function may be called from
 * any thread (one mutex).
 */
#ifndef CP_CA_H
#define CP_CA_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The CA's refusals (wf_err.h gives the control plane -1400..-1499; cp_err.h stops at -1421). */
enum {
    CP_CA_E_MALFORMED = -1440, /* not a PEM CSR, bad signature: HTTP 400 */
    CP_CA_E_KEY = -1441,       /* a key type or size the mesh does not take: HTTP 400 */
    CP_CA_E_IDENTITY = -1442,  /* a SAN other than the workload's SPIFFE URI: HTTP 403 */
    CP_CA_E_EXTERNAL = -1443,  /* rotation asked of a given signer: HTTP 409 */
    CP_CA_E_BUSY = -1444,      /* rotation asked while one is propagating: HTTP 409 */
};

/* Why a CSR was refused, for weft_control_ca_csr_refusals_total{reason}. */
typedef enum {
    CP_CA_R_MALFORMED,
    CP_CA_R_KEY,
    CP_CA_R_IDENTITY,
    CP_CA_R_UNREGISTERED,
    CP_CA_R_TOO_LARGE,
    CP_CA_R_COUNT
} cp_ca_reason_t;

#define CP_CA_DEFAULT_ROOT_TTL_MS ((int64_t)10 * 365 * 24 * 3600 * 1000)
#define CP_CA_DEFAULT_CERT_TTL_MS ((int64_t)24 * 3600 * 1000)
#define CP_CA_DEFAULT_PROPAGATION_MS ((int64_t)60 * 1000)
/* Largest CSR document the API takes (the contract's body limit). */
#define CP_CA_MAX_CSR_BODY ((size_t)64 << 10)

typedef struct {
    const char *dir;        /* where the roots live (created 0700); with a given signer it
                               only records the bundle's version (NULL: version 1) */
    const char *cert_file;  /* given signer: its certificate (PEM); NULL = managed */
    const char *key_file;   /* given signer: its private key (PEM), required with cert_file */
    const char *chain_file; /* given intermediate: the chain up to a self-signed root */
    int64_t root_ttl_ms;    /* a created root's validity; 0: CP_CA_DEFAULT_ROOT_TTL_MS */
    int64_t cert_ttl_ms;    /* workload certificates; 0: 24 h; at least 1 s */
    int64_t propagation_ms; /* most a rotation waits for the proxies; 0: 60 s */
    int64_t overlap_ms;     /* how long a replaced root stays trusted; 0: 2 x cert_ttl_ms */
} cp_ca_opts_t;

typedef struct cp_ca cp_ca_t;

/* A signed certificate: every string malloc'ed, freed by cp_ca_issued_free. */
typedef struct {
    char *chain_pem;  /* the leaf, then the intermediates */
    char *bundle_pem; /* the trusted roots */
    int64_t bundle_version;
    int64_t not_after; /* Unix seconds */
} cp_ca_issued_t;

/*
 * Open the CA with options o (copied) at now_ms: load the managed root from o->dir, creating
 * it on first start, or load and check the given signer. On failure returns a negative code
 * and a sentence for the operator in err (a key that does not match, a certificate that is not
 * a CA, an expired signer, a chain that does not verify, an unreadable file).
 */
int cp_ca_open(const cp_ca_opts_t *o, int64_t now_ms, cp_ca_t **out, char *err, size_t errlen);
/* NULL is a no-op. */
void cp_ca_close(cp_ca_t *ca);

/*
 * Check a CSR (PEM, len bytes, need not be NUL-terminated) for the workload whose identity is
 * spiffe_id: its signature, its key (EC P-256/P-384 or RSA >= 2048) and its requested SANs
 * (none, or exactly that URI). 0, or CP_CA_E_MALFORMED / CP_CA_E_KEY / CP_CA_E_IDENTITY with a
 * sentence in err. Counts nothing; cp_ca_sign calls it.
 */
int cp_ca_check_csr(const char *pem, size_t len, const char *spiffe_id, char *err, size_t errlen);

/*
 * Sign the CSR for spiffe_id at now_ms into *out: a leaf with that URI as its only SAN
 * (critical; empty subject), serverAuth+clientAuth, valid from now - 60 s for the certificate
 * TTL but never past the signer's notAfter. Refusals as cp_ca_check_csr (counted in the
 * metrics); other errors are internal.
 */
int cp_ca_sign(cp_ca_t *ca, const char *pem, size_t len, const char *spiffe_id, int64_t now_ms,
               cp_ca_issued_t *out, char *err, size_t errlen);
void cp_ca_issued_free(cp_ca_issued_t *x);

/* Count a refusal the API decided itself (unregistered proxy, oversized body). */
void cp_ca_count_refusal(cp_ca_t *ca, cp_ca_reason_t why);

/* The trust bundle (PEM roots, malloc'ed: free()) and its version. */
void cp_ca_bundle(cp_ca_t *ca, char **pem, int64_t *version);
int64_t cp_ca_bundle_version(cp_ca_t *ca);

/* Start a root rotation at now_ms. CP_CA_E_EXTERNAL for a given signer, CP_CA_E_BUSY while a
 * rotation is still propagating; I/O errors as -errno. err gets a sentence. */
int cp_ca_rotate(cp_ca_t *ca, int64_t now_ms, char *err, size_t errlen);

/*
 * Whether every proxy with a live lease runs a snapshot that carries bundle_version; when not,
 * the ids of (some of) those that do not, in missing. Supplied by the push engine's owner.
 */
typedef bool (*cp_ca_propagated_fn)(void *arg, int64_t bundle_version, char *missing,
                                    size_t missing_len);

/*
 * Advance a rotation at now_ms: switch signing to the new root once propagated says so (or the
 * propagation timeout passed: the laggards are logged), and drop replaced roots whose overlap
 * ran out. propagated may be NULL (then only the timeout switches). Returns 1 when the bundle
 * or the signer changed, 0 when nothing did, < 0 when the state could not be saved.
 */
int cp_ca_tick(cp_ca_t *ca, int64_t now_ms, cp_ca_propagated_fn propagated, void *arg);

/* {"mode","bundle_version","cert_ttl_seconds","rotation":{...}|null,"roots":[{"subject",
 * "serial","not_after","state" ACTIVE|TRUSTED|RETIRING,"retire_at"}]}: a new reference. */
json_t *cp_ca_status(cp_ca_t *ca);

/* The weft_control_ca_* metrics in Prometheus text format. */
void cp_ca_metrics(cp_ca_t *ca, FILE *f);

/* Name of a CP_CA_E_* code, else cp_strerror's. Never NULL. */
const char *cp_ca_strerror(int code);

#endif
