/*
 * px_mirror.h - mirrored ("shadow") requests: Istio's `mirror`. A copy of a request goes to the
 * mirror cluster, fire and forget: its response is read and dropped, its failure is only
 * counted, and nothing of it reaches the client or delays the real request. As Envoy does,
 * the copy's authority gets `-shadow` appended to its host (`reviews:9080` becomes
 * `reviews-shadow:9080`), so the receiving side can tell copies from real traffic.
 *
 * A mirror lives on its worker's loop, on a connection of that worker's pool for the chosen
 * endpoint (kept alive for reuse when its response was read whole), and ends at the latest
 * after its timeout. The request body streams to the copy as it streams to the real upstream
 * (px_mirror_body, framed the same way): bytes wait in the mirror while its connection is not
 * up, and a copy more than PX_MIRROR_MAX_QUEUED bytes behind is abandoned (counted failed), so
 * a slow mirror never holds memory or the real request back.
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

#define PX_MIRROR_MAX_QUEUED (1024 * 1024)

typedef struct px_mirror px_mirror_t;

/*
 * Start a copy: send head (a serialised request head, framing included) on a connection from
 * pool, a pool of generation gen (the mirror is one of its users until it ends); give up
 * after timeout_ms. Counted in w->ctr (mirror_rq_done / _failed). The caller holds the mirror
 * until px_mirror_release, and passes the body's bytes meanwhile; the mirror stays valid (if
 * ended) until released.
 */
px_mirror_t *px_mirror_send(struct px_worker *w, struct px_gen *gen, px_pool_t *pool,
                            const void *head, size_t head_len, uint64_t timeout_ms);

/* More request bytes for the copy, as framed on the wire. Ignored once the copy has ended. */
void px_mirror_body(px_mirror_t *m, const uv_buf_t *bufs, unsigned n);

/* The caller is done with m: complete, the whole request was passed (the copy goes on to its
 * response); else the request was abandoned and so is the copy. */
void px_mirror_release(px_mirror_t *m, bool complete);

/* Abort every mirror of w still in flight (the worker is finishing). */
void px_mirror_abort_all(struct px_worker *w);

#endif
