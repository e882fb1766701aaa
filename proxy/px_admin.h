/*
 * px_admin.h - the proxy's admin listener (Envoy's admin port): /ready, /quitquitquit,
 * /config_dump, /clusters, /stats/prometheus.
 *
 * It runs on the main thread's loop, apart from the workers, so a busy data path never delays
 * a health check or a scrape. It reads the workers' counters (relaxed atomics) and the
 * process context, which does not change while it runs. One request per connection
 * (answers carry Connection: close).
 */
#ifndef PX_ADMIN_H
#define PX_ADMIN_H

#include "px_worker.h"

#include <uv.h>

typedef struct px_admin {
    px_proxy_t *px;
    uv_loop_t *loop;
    uv_tcp_t listener;
    bool open;
    uint32_t n_conns;
    /* Called on the admin loop once the answer to POST /quitquitquit has been sent. */
    void (*quit_cb)(void *arg);
    void *quit_arg;
} px_admin_t;

/* Listen on addr. a is zeroed except quit_cb/quit_arg. Returns 0 or a negative uv error. */
int px_admin_start(px_admin_t *a, px_proxy_t *px, uv_loop_t *loop, const struct sockaddr *addr);
/* Stop listening; open admin connections close themselves once answered. */
void px_admin_close(px_admin_t *a);

/* Append the proxy's metrics in Prometheus text format 0.0.4 to out. */
void px_admin_stats(const px_proxy_t *px, wf_buf_t *out);

#endif
