/*
 * px_tls.h - mutual TLS between sidecars: the TLS contexts built from the workload credentials
 * (px_creds.h), and TLS inside a px_transport_t (OpenSSL over memory BIOs).
 *
 * A px_tls_ctx_t is shared by every worker. It holds a server and a client SSL_CTX built from
 * the current px_creds snapshot and builds them again when px_creds_generation moves; a
 * connection keeps the SSL (and with it the SSL_CTX) it started with, so a rotated certificate
 * or trust bundle applies to new handshakes and drops nothing.
 *
 * Between sidecars (Istio's ISTIO_MUTUAL): TLS 1.3 only (no renegotiation exists, a TLS 1.2
 * hello is refused), ALPN required (a client offers "istio-http/1.1" or "istio"; a server
 * refuses a hello without a protocol it knows), both sides present their certificate and
 * verify the peer's chain against the trust bundle, and the peer's identity is its SPIFFE URI
 * SAN (a certificate without one is refused). A client also checks that identity against the
 * ones it expects (the endpoint's, or the cluster's subject_alt_names).
 *
 * The transport side: px_transport_tls_accept (after px_transport_accept) makes an accepted
 * connection sniff its first bytes (STRICT: a TLS ClientHello or the connection is refused
 * and counted, and with no certificate in hand everything is refused; PERMISSIVE: TLS or
 * plaintext, and plaintext only while there is no certificate),
 * px_transport_tls_connect (before px_transport_connect) makes the connection's on_connect
 * wait for a completed, verified handshake. Either way the owner keeps calling px_transport_*
 * and sees plaintext; a failed handshake is on_connect(UV_EPROTO) for a client and
 * on_read(UV_EPROTO) for a server. t->peer_identity holds the verified peer URI once the
 * handshake completed.
 *
 * Threads: px_tls_ctx_* any thread; the transport functions on the transport's loop thread.
 */
#ifndef PX_TLS_H
#define PX_TLS_H

#include "px_creds.h"
#include "px_snapshot.h"
#include "px_transport.h"
#include "wf_buf.h"
#include "wf_str.h"

#include <openssl/ssl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define PX_TLS_ALPN_HTTP "istio-http/1.1"
#define PX_TLS_ALPN_TCP "istio"

typedef struct px_tls_ctx px_tls_ctx_t;

/* What the proxy counts (relaxed atomics; /stats/prometheus reads them). */
typedef struct {
    _Atomic uint64_t server_ok, server_error; /* handshakes as the accepting side */
    _Atomic uint64_t client_ok, client_error; /* handshakes as the connecting side */
    _Atomic uint64_t resumed;                 /* client handshakes that resumed a session */
    _Atomic uint64_t plaintext_refused;       /* STRICT: first bytes were not a TLS hello */
} px_tls_stats_t;

/* How an accepted connection treats its first bytes (PeerAuthentication's modes). */
typedef enum {
    PX_TLS_IN_DISABLE = 0, /* plaintext only: the transport stays plain */
    PX_TLS_IN_PERMISSIVE,  /* TLS when the first byte is a handshake record, else plaintext */
    PX_TLS_IN_STRICT,      /* TLS only */
} px_tls_inbound_t;

/* A context over creds (borrowed: it must outlive the context). Never fails. */
px_tls_ctx_t *px_tls_ctx_create(px_creds_t *creds);
/* Connections still open keep their SSL_CTX. destroy(NULL) is a no-op. */
void px_tls_ctx_destroy(px_tls_ctx_t *x);
/* Whether the credentials hold a certificate and a trust bundle (mTLS is possible). */
bool px_tls_ctx_ready(px_tls_ctx_t *x);
px_tls_stats_t *px_tls_ctx_stats(px_tls_ctx_t *x);
/* The counters in the Prometheus text format (weft_proxy_tls_*) appended to out; x may be
 * NULL (nothing appended). */
void px_tls_ctx_metrics(px_tls_ctx_t *x, wf_buf_t *out);

/*
 * Make accepted transport t (not reading yet) treat its first bytes per mode; DISABLE leaves
 * it plain. Returns 0 (a refusal shows later, as on_read(UV_EPROTO) after counting it).
 */
int px_transport_tls_accept(px_transport_t *t, px_tls_ctx_t *x, px_tls_inbound_t mode);

/*
 * Make initialised transport t (before px_transport_connect) a TLS client: alpn is the one
 * protocol offered; the server's identity must be one of expect[0..n_expect) (copied; none =
 * any identity the trust bundle vouches for); session (may be NULL) is offered for
 * resumption. Returns 0, or WF_E_NOTFOUND when the proxy has no certificate yet (t untouched).
 */
int px_transport_tls_connect(px_transport_t *t, px_tls_ctx_t *x, const char *alpn,
                             const wf_str_t *expect, uint32_t n_expect, SSL_SESSION *session);

/* Whether t carries TLS now (false before a handshake began and on a PERMISSIVE plain one). */
bool px_transport_is_tls(const px_transport_t *t);
/* The last session ticket t received as a client (a new reference, the caller frees it), or
 * NULL. */
SSL_SESSION *px_transport_tls_session(px_transport_t *t);

/*
 * How a proxy connects to endpoint ep of cluster c (Istio's auto mTLS): the cluster's `tls`
 * absent (AUTO) means mTLS to an in-mesh endpoint once the proxy has a certificate, plaintext
 * to others; ISTIO_MUTUAL always mTLS (no certificate, no connection); DISABLE plaintext. The
 * server must have the cluster's subject_alt_names when set, else the endpoint's identity when
 * known. Sets pool p's TLS (x NULL: plaintext).
 */
struct px_pool;
void px_tls_pool_setup(struct px_pool *p, px_tls_ctx_t *x, const px_cluster_t *c,
                       const px_endpoint_t *ep);

/* An accepted inbound connection's mode: the app port's `mtls` when set (the inbound port
 * whose target_port is app_port), else the inbound PeerAuthentication; PERMISSIVE without
 * a snapshot (in NULL). */
px_tls_inbound_t px_tls_inbound_mode(const px_inbound_t *in, uint32_t app_port);
/* The same for an inbound TCP port (the inbound port whose port is port). */
px_tls_inbound_t px_tls_port_mode(const px_inbound_t *in, uint32_t port);

/* Internal to px_transport.c and px_tls.c. */
struct px_tls_conn;
void px__tls_alloc(px_transport_t *t, size_t suggested, uv_buf_t *buf);
void px__tls_read(px_transport_t *t, ssize_t nread, const uv_buf_t *buf);
void px__tls_connected(px_transport_t *t, int status);
int px__tls_write(px_transport_t *t, const uv_buf_t *bufs, unsigned nbufs);
void px__tls_read_update(px_transport_t *t);
void px__tls_shutdown(px_transport_t *t);
/* Sends close_notify when it can and closes the TLS state's own handle (counted in t). */
void px__tls_close(px_transport_t *t);
void px__tls_free(px_transport_t *t);
size_t px__tls_queued(const px_transport_t *t);

#endif
