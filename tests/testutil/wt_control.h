/*
 * wt_control.h - a real `weft control` for tests and benchmarks: started on a fresh data
 * directory with its tokens read back, restarted on the same data, stopped; requests with a
 * bearer token; one metric's value from /metrics. Nothing here asserts: the callers do.
 */
#ifndef WT_CONTROL_H
#define WT_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct {
    char *dir;             /* the temporary directory: control.log, and room for the caller */
    char *data;            /* dir/data, the control plane's --data-dir */
    int port;              /* where it listens on 127.0.0.1 (a new one at every start) */
    pid_t pid;             /* 0 when not running */
    char admin[128];       /* the admin token */
    char boot[128];        /* the bootstrap token */
    char reader[128];      /* the read token */
    char admin_file[600];  /* the path of the admin token file */
    char reader_file[600]; /* the path of the read token file */
} wt_control_t;

/*
 * Make a temporary directory named after prefix and start `weft control` ($WEFT_BIN) on its
 * data directory with the NULL-terminated extra arguments (extra may be NULL). 0 when it
 * listens and its tokens are read; -1 otherwise (its log is dir/control.log). Either way
 * wt_control_free releases c.
 */
int wt_control_new(wt_control_t *c, const char *prefix, const char *const *extra);
/*
 * Start again on c->data (after a stop or a kill) on the same port, so that proxies pointed at
 * it find it again (a caller that wants a new one sets c->port to 0); 0 or -1 as above.
 */
int wt_control_start(wt_control_t *c, const char *const *extra);
/* SIGTERM (SIGKILL after 10 s); the wait status, for the caller to check the exit code. */
int wt_control_stop(wt_control_t *c);
/* Kill it if it still runs, remove c->dir and free what c holds. */
void wt_control_free(wt_control_t *c);
/*
 * One request to 127.0.0.1:port with "Authorization: Bearer token" (none when token is NULL)
 * and, when body is not NULL, len bytes of it as application/json (chunked: as one chunk with
 * no Content-Length). The status or -1; *out (when not NULL, always set, wf_free it) the body.
 */
int wt_control_req_full(int port, const char *method, const char *path, const char *token,
                        const char *body, size_t len, bool chunked, int timeout_ms, char **out);
/* wt_control_req_full with a NUL-terminated body, no chunking and a 10 s timeout. */
int wt_control_req(int port, const char *method, const char *path, const char *token,
                   const char *body, char **out);
/*
 * The value of the /metrics line whose name (with its labels exactly as written, e.g.
 * `x_total{level="error"}`) is name; -1 when the request failed or there is no such line (the
 * control plane's metrics are never negative).
 */
double wt_control_metric(int port, const char *name);

#endif
