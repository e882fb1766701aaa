/*
 * px_control.h - the proxy's side of config delivery from the control plane (`--control URL`,
 * docs/snapshot.md "Delivery"): one thread long-polls
 *
 *   GET <URL>/v1/snapshot?proxy=<id>&version=<applied>[&nack=<refused>&reason=<why>]
 *
 * and installs each snapshot it receives (px_proxy_install). The version parameter
 * acknowledges the last snapshot applied (the ACK); after a refused one, the next poll carries
 * its version and the reason (the NACK) while the proxy keeps serving its last good snapshot.
 * 200 carries a newer snapshot, 304 says the wait ran out with nothing new; anything else, or
 * an unreachable control plane, is retried with a backoff (1 s doubling to 30 s), the
 * current snapshot serving meanwhile. The same module registers the proxy's workload and
 * renews its lease (POST /v1/register, /v1/heartbeat) on a second thread.
 */
#ifndef PX_CONTROL_H
#define PX_CONTROL_H

#include "px_worker.h"

typedef struct px_control px_control_t;

/*
 * Start polling url (no trailing slash needed) for proxy id on its own thread, with
 * `Authorization: Bearer token` when token is not NULL. With register_body (the workload as
 * the control plane's POST /v1/register takes it, JSON), a second thread registers it and
 * keeps its lease with heartbeats (docs/controlplane.md). NULL when the thread cannot be
 * started (logged).
 */
px_control_t *px_control_start(px_proxy_t *px, const char *url, const char *id, const char *token,
                               const char *register_body);

/* Stop the thread (an in-flight poll is abandoned within about a second) and free. NULL is a
 * no-op. */
void px_control_stop(px_control_t *pc);

/*
 * Whether the workload is registered now: 0 with the id and SPIFFE identity the control plane
 * answered copied into id and identity (identity "" when the answer named none), or
 * WF_E_NOTFOUND before the first registration and while registering again. Any thread.
 */
int px_control_registered(px_control_t *pc, char *id, size_t idcap, char *identity,
                          size_t identcap);

/* The control plane no longer knows the registration (it answered 404 to another request):
 * register again now. Any thread. */
void px_control_reregister(px_control_t *pc);

#endif
