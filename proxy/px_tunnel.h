/*
 * px_tunnel.h - a bidirectional byte pump between two connected transports: what an upgraded
 * HTTP connection (101), a CONNECT tunnel and a TCP port become once the bytes stop being HTTP.
 *
 * The tunnel borrows both transports from their owners (a downstream px_conn_t and a pooled
 * upstream connection, or a px_tcp connection): it takes over their callbacks for as long as it
 * runs and gives them back, reading stopped, before it reports the end. The owners keep the
 * memory and close the transports themselves afterwards, so a tunnel never frees a transport.
 *
 * Flow control: bytes read on one side are written to the other at once (px_transport_write
 * copies what the kernel does not take); reading a side stops while the other side's write
 * queue holds PX_TUNNEL_HWM bytes or more and resumes when it drains below, so a tunnel holds
 * at most about PX_TUNNEL_HWM plus one read per direction, however fast one peer sends and
 * however slowly the other reads.
 *
 * Half-close: EOF read on one side shuts down the other side's sending half once its queued
 * bytes are out (the peer sees EOF too); the opposite direction keeps flowing. The tunnel
 * ends cleanly when both directions have seen EOF and every queued byte is written. A read or
 * write error on either side, or no byte in either direction for idle_ms, ends it at once.
 *
 * One tunnel belongs to the loop thread of its transports.
 */
#ifndef PX_TUNNEL_H
#define PX_TUNNEL_H

#include "px_transport.h"
#include "wf_str.h"

#include <stdint.h>
#include <uv.h>

/* Stop reading a side while the other side's write queue holds this many bytes or more. */
#define PX_TUNNEL_HWM (256 * 1024)

typedef struct px_tunnel px_tunnel_t;

typedef enum {
    PX_TUNNEL_CLOSED = 1, /* both directions ended by EOF, everything delivered */
    PX_TUNNEL_RESET,      /* a read or write error on one side (err says which) */
    PX_TUNNEL_IDLE,       /* no byte either way for idle_ms */
} px_tunnel_end_t;

typedef struct {
    uint64_t down_to_up; /* bytes received from the downstream and handed to the upstream */
    uint64_t up_to_down; /* bytes received from the upstream and handed to the downstream */
    px_tunnel_end_t end; /* 0 while the tunnel runs */
    int err;             /* PX_TUNNEL_RESET: the uv error */
    bool down_err;       /* PX_TUNNEL_RESET: the error was on the downstream side */
} px_tunnel_stats_t;

typedef struct {
    /* Bytes already read past the last HTTP head on either side: sent first, counted. */
    wf_str_t to_up;
    wf_str_t to_down;
    uint64_t idle_ms; /* 0: no idle timeout */
    /* The tunnel ended: both transports are the owners' again (reading stopped, callbacks
     * restored) and the owner must close them. Called from the loop, never from inside
     * px_tunnel_start; the tunnel frees itself after the call. */
    void (*done)(void *arg, const px_tunnel_stats_t *st);
    void *arg;
    /* May be NULL. Asked once, before the first downstream bytes go upstream (over TLS the
     * handshake is done by then, so the peer's identity is known): false ends the tunnel as
     * reset with UV_EACCES and nothing is forwarded, as Envoy's RBAC network filter checks the
     * first data. */
    bool (*admit)(void *arg);
} px_tunnel_opts_t;

/*
 * Start pumping between down and up, both connected and owned by the caller. o is copied (its
 * byte slices are written, so copied, during the call). Never NULL; failures (a write that
 * fails at once) are reported through o->done from the loop.
 */
px_tunnel_t *px_tunnel_start(uv_loop_t *loop, px_transport_t *down, px_transport_t *up,
                             const px_tunnel_opts_t *o);
/* The counters so far. */
void px_tunnel_stats(const px_tunnel_t *tn, px_tunnel_stats_t *out);
/* The owner gives up the tunnel before it ended (it is closing its connections): transports
 * are given back as for done, which is not called; tn is freed. */
void px_tunnel_free(px_tunnel_t *tn);

#endif
