/*
 * cp_compile.h - the snapshot compiler: a cp_config_t (Istio resources + registered workloads)
 * into the per-proxy snapshot document of docs/snapshot.md, the contract with `weft proxy`.
 *
 * What a proxy gets: its identity (proxy.*, SPIFFE from the registry), telemetry settings, its
 * inbound listener (ports, PeerAuthentication mode), and for a sidecar its outbound view:
 * a virtual host per service host and port (Istio's domains), holding the routes of the
 * VirtualService bound to that host or a default route, and a cluster per service port and
 * DestinationRule subset (`outbound|<port>|<subset>|<host>`) with the DestinationRule's
 * traffic policy and the endpoints of the registered workloads (and ServiceEntry endpoints)
 * matching the subset's labels. A gateway (a workload registered with mode "gateway") gets the
 * servers of the Gateways selecting it and the routes of the VirtualServices bound to them.
 *
 * Cost: the outbound part is the same for every sidecar of one namespace (and one Sidecar
 * resource scope), so it is compiled once per such group and spliced into each proxy's
 * document; a configuration of 1,000 services compiles it once, not once per proxy.
 *
 * Threads: a cp_compiled_t may be used by several threads at once (it caches the shared parts
 * under its own lock); it reads cfg, which must outlive it and not change.
 */
#ifndef CP_COMPILE_H
#define CP_COMPILE_H

#include "cp_config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *collector_url; /* telemetry.collector_url for every proxy; NULL or "" = none */
    double sampling;           /* telemetry.sampling, percent; < 0 = Istio's default 1 % */
    bool access_log;           /* telemetry.access_log */
    /* The CA's trust bundle (PEM roots) for every snapshot's "security"; NULL = no CA, no key */
    const char *trust_bundle;
    int64_t trust_bundle_version;
} cp_compile_opts_t;

typedef struct cp_compiled cp_compiled_t;

/* A compiler over cfg (borrowed: it must outlive *out) with options o (copied). */
int cp_compile_new(const cp_config_t *cfg, const cp_compile_opts_t *o, cp_compiled_t **out);
/* NULL is a no-op. */
void cp_compile_free(cp_compiled_t *c);

/*
 * The snapshot of the registered workload proxy_id (its registry id, which is the snapshot's
 * proxy.id) with "version": version, as NUL-terminated JSON in *json (wf_free it), *len bytes.
 * *content_hash (when not NULL) is a hash of everything but the version, so a caller can tell
 * that a newer configuration changed nothing for this proxy. WF_E_NOTFOUND when proxy_id is
 * not a registered workload; WF_E_INVAL for a negative version; -EAGAIN for a gateway no Gateway
 * resource gives an HTTP server (schema 1 requires at least one): there is nothing to send it until
 * the configuration changes, as Istio sends such a gateway no listeners.
 */
int cp_compile_proxy(cp_compiled_t *c, const char *proxy_id, int64_t version, char **json,
                     size_t *len, uint64_t *content_hash);

/*
 * The same document as cp_compile_proxy gives (same errors, same *content_hash, which is the
 * plain content's), as one gzip member (RFC 1952) in *gz (wf_free it), *len bytes. For a
 * sidecar the shared outbound part is deflated once per group and reused: only the proxy's own
 * head is compressed per call.
 */
int cp_compile_proxy_gz(cp_compiled_t *c, const char *proxy_id, int64_t version, char **gz,
                        size_t *len, uint64_t *content_hash);

/* How many groups' shared parts cp_compile_proxy_gz has deflated so far (for tests: each
 * group's once). */
uint64_t cp_compile_gz_groups(cp_compiled_t *c);

/*
 * How many things the compiler has left out so far because schema 1 cannot express them (a
 * VirtualService's tcp routes, a delegate, uriRegexRewrite, ...), summed over every proxy and
 * shared part compiled by c; each kind is also logged once. For tests and /metrics.
 */
uint64_t cp_compile_skipped(cp_compiled_t *c);

#endif
