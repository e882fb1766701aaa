/*
 * px_transport.h - the byte stream under the proxy's HTTP code: read, write, shut down and
 * close one connection, whatever carries it.
 *
 * TCP over a libuv uv_tcp_t, plain or with TLS inside (px_tls.h: OpenSSL over memory BIOs,
 * encrypting in px_transport_write and decrypting before on_read). The HTTP code (px_conn.c,
 * px_upstream.c) sees nothing but this interface: the owner supplies the read memory
 * (on_alloc) and gets plaintext in on_read; px_transport_queued counts the bytes not yet
 * handed to the kernel (ciphertext with TLS), so the owners' backpressure works either way.
 *
 * Ownership: the transport is embedded in its owner's struct (owner pointer in t->owner) and
 * lives until on_closed, which is where the owner may free itself. Writes copy whatever the
 * kernel does not take at once, so the caller's bytes are borrowed only for the call. One
 * transport belongs to one loop thread.
 */
#ifndef PX_TRANSPORT_H
#define PX_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

typedef struct px_transport px_transport_t;

typedef struct {
    /* Give memory for the next read (at least 1 byte in *buf). */
    void (*on_alloc)(px_transport_t *t, size_t suggested, uv_buf_t *buf);
    /* nread > 0 bytes arrived in the memory on_alloc gave; < 0: UV_EOF or an error. 0 is
     * never delivered. */
    void (*on_read)(px_transport_t *t, ssize_t nread, const uv_buf_t *buf);
    /* A queued write finished (status 0) or failed; the queue may now be shorter. May be NULL.
     */
    void (*on_written)(px_transport_t *t, int status);
    /* Outgoing connection established (status 0) or failed (a negative uv error). */
    void (*on_connect)(px_transport_t *t, int status);
    /* The handle is closed; no callback follows. */
    void (*on_closed)(px_transport_t *t);
} px_transport_cbs_t;

struct px_transport {
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_shutdown_t shutdown_req;
    const px_transport_cbs_t *cbs;
    void *owner;
    size_t queued;     /* bytes handed to uv_write and not yet written */
    bool reading;      /* the owner wants bytes */
    bool sock_reading; /* uv_read_start is on (TLS also reads for its handshake) */
    bool closing;
    int open_handles;        /* libuv handles still to close: on_closed after the last */
    struct px_tls_conn *tls; /* TLS state (px_tls.c); NULL on a plain connection */
    /* The peer's verified SPIFFE URI (from its certificate's URI SAN) once an mTLS handshake
     * completed; NULL on a plaintext connection. Owned by the transport. */
    char *peer_identity;
};

/* Set up t on loop (no socket yet). Returns 0 or a negative uv error. */
int px_transport_init(uv_loop_t *loop, px_transport_t *t, const px_transport_cbs_t *cbs,
                      void *owner);
/* Accept a pending connection of server into t (initialised). 0 or a negative uv error. */
int px_transport_accept(uv_stream_t *server, px_transport_t *t);
/* Start connecting t (initialised) to addr; on_connect reports the outcome. */
int px_transport_connect(px_transport_t *t, const struct sockaddr *addr);
int px_transport_read_start(px_transport_t *t);
void px_transport_read_stop(px_transport_t *t);
/*
 * Send bufs in order after everything queued before. Bytes the socket does not take at once
 * are copied and queued. Returns 0 or a negative uv error (then the connection is unusable).
 */
int px_transport_write(px_transport_t *t, const uv_buf_t *bufs, unsigned nbufs);
/* Bytes accepted by px_transport_write and not yet handed to the kernel. */
size_t px_transport_queued(const px_transport_t *t);
/* Half-close the sending side once queued writes are out (reading continues). */
void px_transport_shutdown(px_transport_t *t);
/* Close now (queued writes are dropped); on_closed follows. Idempotent. */
void px_transport_close(px_transport_t *t);
/* The peer's address as "ip" into out (cap >= 46); "" when unknown. */
void px_transport_peer_ip(px_transport_t *t, char *out, size_t cap);

/* Internal to px_transport.c and px_tls.c: write bytes to the socket as they are (try, then
 * copy and queue), and start or stop the socket's reading. */
int px__transport_raw_write(px_transport_t *t, const uv_buf_t *bufs, unsigned nbufs);
void px__transport_sock_read(px_transport_t *t, bool on);
/* One of t's libuv handles closed: after the last one, on_closed. */
void px__transport_handle_closed(px_transport_t *t);

#endif
