/*
 * px_mirror.h - mirrored ("shadow") requests: Istio's `mirror`. A copy of a request goes to the
 * mirror cluster, fire and forget: its response is read and dropped, its failure is only
 * counted, and nothing of it reaches the client or delays the real request. As Envoy does,
 * the copy's authority gets `-shadow` appended to its host (`reviews:9080` becomes
 * `reviews-shadow:9080`), so the receiving side can tell copies from real traffic.
 *
 * A mirror lives on its worker's loop, on a connection of that worker's pool for the chosen
 * endpoint (kept alive for reuse when its response was read whole), and ends at the latest
 * after its timeout. Bodies: the caller passes the whole body; requests whose body has not
 * fully arrived with the head are not mirrored (px_conn.c counts them as skipped).
 */
#ifndef PX_MIRROR_H
#define PX_MIRROR_H

#include "px_upstream.h"
#include "wf_buf.h"
#include "wf_str.h"

#include <stdint.h>

struct px_worker;
struct px_gen;

/*
 * The authority of a mirrored request: authority's host with "-shadow" appended, before the
 * port when there is one ("[::1]:80" keeps its brackets: "[::1]-shadow:80" is what Envoy
 * sends too). Writes into out (the caller resets it).
 */
void px_mirror_authority(wf_str_t authority, wf_buf_t *out);

/*
 * Send head (a serialised request head, framing included) and body[0..blen) on a connection
 * from pool, a pool of generation gen (the mirror is one of its users until it ends); give up
 * after timeout_ms. Counted in w->ctr (mirror_rq_done / _failed).
 */
void px_mirror_send(struct px_worker *w, struct px_gen *gen, px_pool_t *pool, const void *head,
                    size_t head_len, const void *body, size_t blen, uint64_t timeout_ms);

/* Abort every mirror of w still in flight (the worker is finishing). */
void px_mirror_abort_all(struct px_worker *w);

#endif
