/*
 * px_creds.h - the proxy's workload credentials: its certificate chain and private key, and
 * the mesh trust bundle (the roots peers' certificates must chain to), shared by every worker.
 *
 * Producers replace parts of it: certificate files given by flags (loaded at start), the
 * control plane's CA (a CSR for a key generated in the proxy; renewed before expiry), and the
 * trust bundle the control plane sends. Consumers (the TLS transport) take a reference to the
 * current px_creds_snap_t, build their TLS contexts from it, and build again when
 * px_creds_generation moves: a replaced certificate applies to new handshakes while
 * established connections keep theirs, so rotation drops nothing.
 *
 * A snapshot is immutable and reference-counted; it lives while someone holds it. Every
 * function is thread-safe. Errors: WF_E_INVAL with a message in err (a PEM that does not
 * parse, a key that does not match the certificate, a certificate without a SPIFFE URI SAN).
 */
#ifndef PX_CREDS_H
#define PX_CREDS_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct px_creds px_creds_t;

typedef struct px_creds_snap {
    uint64_t generation;            /* grows with every change; 0 = nothing set yet */
    X509 *leaf;                     /* NULL until a certificate is set */
    STACK_OF(X509) * intermediates; /* sent after the leaf; never NULL (may be empty) */
    EVP_PKEY *key;                  /* the leaf's private key; NULL with leaf */
    char *identity;                 /* the leaf's SPIFFE URI SAN; NULL with leaf */
    int64_t not_before, not_after;  /* the leaf's validity, Unix seconds; 0 with no leaf */
    STACK_OF(X509) * roots;         /* the trust bundle; never NULL (may be empty) */
    _Atomic uint32_t refs;
} px_creds_snap_t;

px_creds_t *px_creds_create(void);
/* Snapshots still held stay valid. destroy(NULL) is a no-op. */
void px_creds_destroy(px_creds_t *c);

/*
 * Install a certificate: chain_pem holds the leaf first, then any intermediates; key is the
 * leaf's private key (a reference is taken). The leaf must carry a spiffe:// URI SAN and match
 * key. The roots stay as they are. Returns 0 or WF_E_INVAL (err says why; nothing changes).
 */
int px_creds_set_cert(px_creds_t *c, const char *chain_pem, size_t len, EVP_PKEY *key, char *err,
                      size_t errcap);
/* Replace the trust bundle (one or more PEM certificates). 0 or WF_E_INVAL. */
int px_creds_set_roots(px_creds_t *c, const char *pem, size_t len, char *err, size_t errcap);
/*
 * Load the three files Istio mounts in /etc/certs: cert-chain.pem (leaf + intermediates),
 * key.pem, root-cert.pem. Any path may be NULL to leave that part as it is (the key comes
 * with the chain). 0, WF_E_INVAL, or a -errno from reading.
 */
int px_creds_load_files(px_creds_t *c, const char *chain_path, const char *key_path,
                        const char *roots_path, char *err, size_t errcap);

/* The current snapshot with a reference the caller releases; never NULL. */
px_creds_snap_t *px_creds_acquire(px_creds_t *c);
/* Drop a reference from px_creds_acquire. release(NULL) is a no-op. */
void px_creds_release(px_creds_snap_t *s);
/* Cheap: the current snapshot's generation (a consumer rebuilds when it moves). */
uint64_t px_creds_generation(px_creds_t *c);

/*
 * The certificate's SPIFFE identity: its first URI SAN starting with "spiffe://", copied into
 * out. Returns 0, WF_E_NOTFOUND (none), or WF_E_LIMIT (longer than cap - 1).
 */
int px_creds_spiffe_id(X509 *cert, char *out, size_t cap);

#endif
