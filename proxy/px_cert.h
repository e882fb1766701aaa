/*
 * px_cert.h - the proxy's side of the mesh CA: its workload certificate obtained from the
 * control plane, renewed before it expires, and the trust bundle kept current.
 *
 * With --control and a bootstrap token (and no certificate files), a thread of its own:
 * waits until the registration thread (px_control) has registered the workload, generates an
 * EC P-256 key in memory (never written anywhere), sends a CSR for the SPIFFE identity the
 * registry holds (POST <control>/v1/certificate?proxy=<id>, docs/controlplane.md), and installs
 * the answer in px->creds: the trust bundle first (when its version is higher than the one
 * installed), then the chain with the key. It renews at half of the issued leaf's lifetime
 * with a new key each time; a failure is retried after 1 s doubling to 30 s, never past the
 * expiry. Until the first one is installed the admin listener's /ready says INITIALIZING
 * (px->cert_expected). The proxy keeps its certificate through a control plane outage; the admin
 * listener reports an expired one (/ready 503 CERTIFICATE_EXPIRED, /certs, the weft_proxy_cert_*
 * metrics).
 *
 * Trust bundles also arrive in snapshots (the top-level "security" key): whichever source has
 * the higher version wins, under px->bundle_mu. Every function is thread-safe unless it says
 * otherwise; none runs on a worker loop's hot path.
 */
#ifndef PX_CERT_H
#define PX_CERT_H

#include "px_control.h"
#include "px_worker.h"
#include "wf_buf.h"

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#define PX_CERT_MAX_BUNDLE (64 * 1024) /* a trust bundle is a few roots, not a CA store */
#define PX_CERT_MAX_ID 512             /* a SPIFFE URI, bytes */
#define PX_CERT_RETRY_MIN_MS 1000
#define PX_CERT_RETRY_MAX_MS 30000

typedef struct px_cert px_cert_t;

/*
 * Write the SPIFFE identity of a workload, spiffe://cluster.local/ns/<ns>/sa/<sa> ("default"
 * for an empty or NULL sa), into out. 0 or WF_E_LIMIT (does not fit cap) or WF_E_INVAL (an
 * empty namespace, or a '/' or a control character in either part).
 */
int px_cert_identity(const char *ns, const char *sa, char *out, size_t cap);

/*
 * Generate a new EC P-256 key and a CSR for it: empty subject, an extensionRequest with the
 * one URI SAN identity, signed with SHA-256. On success *key (owned by the caller) and *pem
 * (the PEM CERTIFICATE REQUEST, NUL-terminated, free with wf_free) are set and 0 returned; else
 * WF_E_INVAL with err filled and nothing allocated.
 */
int px_cert_make_csr(const char *identity, EVP_PKEY **key, char **pem, char *err, size_t errcap);

/* When a certificate valid from not_before to not_after (Unix ms) is renewed: half-way. */
int64_t px_cert_renew_at(int64_t not_before, int64_t not_after);

/*
 * How long to wait before the next attempt after a failure, given the current backoff
 * (PX_CERT_RETRY_MIN_MS..MAX) and the current certificate's not_after (Unix ms, 0 = none): the
 * backoff, shortened so that the attempt comes before the expiry (half the time left, at least
 * 100 ms) while the certificate is still valid. *next receives the backoff for the following
 * failure: the wait returned doubled, within PX_CERT_RETRY_MIN_MS..MAX.
 */
uint64_t px_cert_retry_ms(uint64_t backoff, int64_t now, int64_t not_after, uint64_t *next);

/*
 * Check that pem (len bytes) is a trust bundle: one or more PEM certificates and nothing else,
 * at most PX_CERT_MAX_BUNDLE bytes. 0, WF_E_LIMIT or WF_E_INVAL (err says why).
 */
int px_cert_bundle_check(const char *pem, size_t len, char *err, size_t errcap);

/*
 * Install the trust bundle pem at version in px->creds when version is higher than the one
 * installed (px->trust_bundle_version). Returns 0 when installed, 1 when kept (not newer), or
 * WF_E_INVAL (err says why; nothing changes).
 */
int px_cert_apply_bundle(px_proxy_t *px, const char *pem, size_t len, uint64_t version, char *err,
                         size_t errcap);

/*
 * Start the certificate thread: pc is the control plane client whose registration it waits
 * for (borrowed: stop this first), url the control plane, token the bootstrap token,
 * fallback_identity the SPIFFE identity to ask for when the registration answer names none.
 * NULL when the thread cannot start (logged).
 */
px_cert_t *px_cert_start(px_proxy_t *px, px_control_t *pc, const char *url, const char *token,
                         const char *fallback_identity);

/* Stop the thread (a request in flight is abandoned within about a second) and free. NULL is a
 * no-op. The installed certificate stays in px->creds. */
void px_cert_stop(px_cert_t *c);

/* True when a certificate is installed and its not_after is at or before now (Unix ms). */
bool px_cert_expired(const px_proxy_t *px, int64_t now);

/* The weft_proxy_cert_* and weft_proxy_trust_bundle_version families, Prometheus text. */
void px_cert_stats(const px_proxy_t *px, int64_t now, wf_buf_t *out);

/* The /certs document (JSON): identity, serial, validity, the chain (PEM), trust bundle version
 * and roots. */
void px_cert_dump(const px_proxy_t *px, int64_t now, wf_buf_t *out);

#endif
