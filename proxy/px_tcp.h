/*
 * px_tcp.h - the proxy's plain TCP traffic: inbound TCP ports (snapshot inbound.ports[] with
 * protocol "TCP", bytes proxied to the app with no HTTP in between), the choice of where an
 * outbound CONNECT goes, and the istio_tcp_* metrics of both.
 *
 * Each worker listens on every TCP port itself (SO_REUSEPORT, like the HTTP listeners), on the
 * inbound listener's IP; an accepted connection connects to app_address:target_port and, once
 * connected, becomes a px_tunnel. A connection the app refuses (or that times out connecting)
 * is closed at once: a TCP client sees the close, there is nothing else to answer with.
 *
 * Metrics (reporter=destination inbound, source for CONNECT): istio_tcp_connections_opened
 * when the upstream connection is up, istio_tcp_connections_closed when the tunnel ends, and
 * the bytes of TCP port connections every cfg.tcp_report_ms while they are open (like Istio's
 * tcp_reporting_duration, 15 s by default) plus the rest at the close, each byte once; a
 * CONNECT tunnel's bytes are recorded at its close. A connection whose upstream never came up
 * is counted opened and closed at once, with response_flags UF.
 */
#ifndef PX_TCP_H
#define PX_TCP_H

#include "px_worker.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

/* Return codes, inside the proxy's range of wf_err.h (-1300..-1399); tcp holds -1370..-1379. */
enum {
    PX_TCP_EAUTHORITY = -1370, /* a CONNECT authority that is not host:port (port 1..65535) */
    PX_TCP_ENOTARGET = -1371,  /* no cluster for it and not an IP literal */
    PX_TCP_EPORTS = -1372,     /* a snapshot's TCP ports cannot be served (see px_tcp_check) */
};

/* Where a CONNECT goes. */
typedef struct {
    int cluster;                  /* index into snap->clusters, -1 for a passthrough */
    struct sockaddr_storage addr; /* passthrough: the IP literal and port of the authority */
} px_connect_target_t;

/*
 * Resolve a CONNECT authority ("host:port", "[v6]:port"): the snapshot cluster whose host and
 * port are exactly these (the one without a subset), else, when host is an IP literal, that
 * address directly. snap may be NULL (then only IP literals go through). Returns 0,
 * PX_TCP_EAUTHORITY or PX_TCP_ENOTARGET.
 */
int px_tcp_connect_target(const px_snapshot_t *snap, wf_str_t authority, px_connect_target_t *out);

/*
 * Check that the TCP ports of snap can be served beside the listeners: a port may not be the
 * inbound or outbound listener's port, or be its own target on the app's address when that is
 * the inbound listener's address (or either is a wildcard): the proxy would connect to itself.
 * (The snapshot parser already refuses a port listed twice.) outbound may be NULL. Returns 0,
 * or PX_TCP_EPORTS with a reason in err.
 */
int px_tcp_check(const px_snapshot_t *snap, const struct sockaddr *inbound,
                 const struct sockaddr *outbound, char *err, size_t cap);

/* True when a and b serve the same TCP ports (port, target port, app address): a snapshot
 * swap cannot change them, their listeners are opened at start. */
bool px_tcp_ports_equal(const px_inbound_t *a, const px_inbound_t *b);

/* One worker's TCP ports and their connections. */
typedef struct px_tcp px_tcp_t;

/*
 * Listen on each TCP port of ports[0..n) (the others are skipped) at the inbound listener's
 * IP, proxying to app_address. Returns 0 with *out set (NULL when there is no TCP port) or a
 * negative uv error (then nothing stays open). Worker thread.
 */
int px_tcp_start(px_worker_t *w, const px_inbound_port_t *ports, uint32_t n, wf_str_t app_address,
                 px_tcp_t **out);
/* Stop accepting (draining); open connections go on. NULL is a no-op. */
void px_tcp_stop_listening(px_tcp_t *t);
/* Close every open connection now (the end of the drain period). NULL is a no-op. */
void px_tcp_close_all(px_tcp_t *t);
/* Free t once its loop has run every close callback. NULL is a no-op. */
void px_tcp_free(px_tcp_t *t);

/*
 * Record istio_tcp_* for one connection: inbound (reporter=destination, this workload) or
 * outbound (reporter=source; cluster and endpoint may be NULL for a passthrough). peer: the
 * SPIFFE URI the connection's peer proved by mTLS (inbound: the caller, which makes
 * connection_security_policy mutual_tls; outbound: the destination), NULL on plaintext. sent:
 * bytes to the downstream, received: bytes from it.
 */
void px_tcp_record(px_worker_t *w, bool inbound, const px_cluster_t *cluster,
                   const px_endpoint_t *ep, const char *peer, uint32_t flags, uint64_t sent,
                   uint64_t received, unsigned opened, unsigned closed);

#endif
