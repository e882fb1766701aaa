/*
 * px_route.h - the router: Istio's routing decisions over a parsed snapshot, as pure
 * functions (no I/O, no libuv, no allocation on the request path except an optional PCRE2
 * scratch when the caller gives none).
 *
 *   vh = px_route_select_vhost(snap, authority, listener_port);   Envoy's domain matching
 *   r  = px_route_match(vh, &req, &matched);                        first HTTPRoute that matches
 *   d  = px_route_pick_destination(r, rnd);                         weighted choice
 *   px_route_rewrite_path / px_route_rewrite_authority / px_route_redirect_location
 *   px_route_fault_decide / px_route_mirror_decide / px_route_retry_on_status
 *
 * Everything returned points into the snapshot and lives as long as the caller's reference
 * to it. Any thread may call these concurrently on one snapshot; a px_route_req_t's scratch
 * (md) belongs to one thread.
 *
 * Random draws are inputs (uint64_t rnd) so that decisions are deterministic in tests and the
 * caller picks the generator (a per-worker xorshift on the request path).
 */
#ifndef PX_ROUTE_H
#define PX_ROUTE_H

#include "px_snapshot.h"

struct pcre2_real_match_data_8;

typedef struct {
    wf_str_t name; /* any case */
    wf_str_t value;
} px_route_hdr_t;

/* What the router looks at in a request. All slices are borrowed. */
typedef struct {
    wf_str_t method;
    wf_str_t scheme;    /* "http" or "https" */
    wf_str_t authority; /* Host header or :authority, with the port if the client sent one */
    wf_str_t path;      /* without the query string */
    wf_str_t query;     /* after '?', without it; "" when none */
    const px_route_hdr_t *headers;
    size_t n_headers;
    const px_label_t *source_labels; /* labels of the calling workload */
    size_t n_source_labels;
    uint32_t port; /* the listener port the request came in on */
    /* Optional PCRE2 match data (pcre2_match_data_create(1, NULL)) reused across calls by one
     * thread; NULL makes each regex evaluation allocate its own. */
    struct pcre2_real_match_data_8 *md;
} px_route_req_t;

/*
 * The virtual host for authority on listener port, by Envoy's order: an exact domain, then
 * the longest `*.suffix` wildcard, then the longest `prefix.*` wildcard, then `*`. Domains
 * compare ASCII case-insensitively and include the `:port` when the client sent one.
 * Virtual hosts bound to the port are searched first, then those bound to every port (0).
 * Returns NULL when none matches (the proxy answers 404 NR).
 */
const px_vhost_t *px_route_select_vhost(const px_snapshot_t *s, wf_str_t authority, uint32_t port);

/*
 * The first route of vh whose match list matches req (a route without matches matches every
 * request), or NULL (404 NR). *matched, when not NULL, receives the HTTPMatchRequest that
 * matched (NULL for a match-all route): a prefix rewrite needs it. A regex evaluation that
 * hits the match limit counts as "does not match".
 */
const px_route_t *px_route_match(const px_vhost_t *vh, const px_route_req_t *req,
                                 const px_match_t **matched);

/* True when m (one HTTPMatchRequest) matches req. */
bool px_route_match_one(const px_snapshot_t *s, const px_match_t *m, const px_route_req_t *req);

/*
 * Evaluate a StringMatch against v: 1 match, 0 no match, -1 regex error (match limit).
 * ignore_case applies to EXACT and PREFIX. PX_SM_NONE and PX_SM_PRESENT always match.
 */
int px_strmatch_eval(const px_snapshot_t *s, const px_strmatch_t *m, wf_str_t v, bool ignore_case,
                     struct pcre2_real_match_data_8 *md);

/*
 * The destination for draw rnd: destination i receives the requests whose
 * rnd % total_weight falls in its cumulative weight range, so over uniform draws the share of
 * each is weight/total. Deterministic in rnd. NULL when r is not PX_ACTION_ROUTE.
 */
const px_route_dest_t *px_route_pick_destination(const px_route_t *r, uint64_t rnd);

/*
 * The upstream path after r's rewrite: with rewrite.uri set, a route matched by a uri prefix
 * has that prefix replaced, any other match replaces the whole path; without it the path is
 * unchanged. The query string is not part of path and is kept by the caller. Writes up to cap
 * bytes (NUL-terminated) to out, *out_len without the NUL. Returns 0 or WF_E_LIMIT.
 */
int px_route_rewrite_path(const px_route_t *r, const px_match_t *matched, wf_str_t path, char *out,
                          size_t cap, size_t *out_len);

/* The upstream authority: rewrite.authority when set, else authority. */
wf_str_t px_route_rewrite_authority(const px_route_t *r, wf_str_t authority);

/*
 * The Location header of r's redirect for req: scheme://host[:port]/path[?query]. The
 * scheme and path are the redirect's when set, else the request's; the request's query is
 * kept unless the redirect uri has its own. A redirect authority replaces the request's host
 * and port together (Envoy's host_redirect); then redirect.port replaces the port,
 * FROM_PROTOCOL_DEFAULT drops it, FROM_REQUEST_PORT puts the request's back (from its
 * authority, else req->port). Writes NUL-terminated into out. Returns 0, WF_E_INVAL when r is not a
 * redirect, or WF_E_LIMIT.
 */
int px_route_redirect_location(const px_route_t *r, const px_route_req_t *req, char *out,
                               size_t cap, size_t *out_len);

/* Fault injection outcome for one request. */
typedef struct {
    uint64_t delay_ms;     /* 0 = no delay */
    uint32_t abort_status; /* 0 = no abort */
} px_fault_decision_t;

/*
 * Decide delay and abort independently, each applying with its percentage given its own
 * uniform draw (rnd_delay, rnd_abort). A percentage of 0 never applies, 100 always does.
 */
void px_route_fault_decide(const px_route_t *r, uint64_t rnd_delay, uint64_t rnd_abort,
                           px_fault_decision_t *out);

/* True when the request is mirrored for draw rnd (r has a mirror and rnd falls within its
 * percentage). */
bool px_route_mirror_decide(const px_route_t *r, uint64_t rnd);

/* True when a response with this status is retriable under policy rt (5xx, gateway-error,
 * retriable-4xx, retriable-status-codes). Connection-level conditions are the caller's. */
bool px_route_retry_on_status(const px_retries_t *rt, unsigned status);

/* True when draw rnd falls within pct percent (0..100) of the uint64 range. */
bool px_route_draw_pct(uint64_t rnd, double pct);

#endif
