/*
 * px_conn.h - downstream HTTP/1.1 connections: parse requests, forward them through an
 * upstream pool, stream bodies both ways, answer errors the way Envoy does.
 *
 * One connection carries one request at a time: the next pipelined request is parsed only
 * once the previous response has been queued in full, so responses leave in request order.
 * All of it runs on the owning worker's loop thread.
 */
#ifndef PX_CONN_H
#define PX_CONN_H

#include "px_worker.h"

/* Accept one pending connection on server, a listener of w (outbound: the app's own requests,
 * or a gateway's clients, routed with the snapshot; else inbound: forwarded to the app).
 * route_port: the port virtual hosts are selected by (a gateway server's port), 0 = the port
 * of each request's authority. A connection that cannot be set up is dropped and logged. */
void px_conn_accept(px_worker_t *w, uv_stream_t *server, bool outbound, uint32_t route_port);

/* The worker drains: idle connections close now, busy ones after their current response
 * (answered with Connection: close). */
void px_conn_drain_all(px_worker_t *w);

/* The grace period is over: close every remaining connection at once. */
void px_conn_close_all(px_worker_t *w);

#endif
