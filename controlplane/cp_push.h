/*
 * cp_push.h - the config push engine: it owns the current configuration (a cp_config_t and its
 * compiler, under one version number), rebuilds it when something changed, and answers the
 * proxies' long-polls (`GET /v1/snapshot?proxy=ID&version=N[&nack=M&reason=R]`, the contract
 * of docs/snapshot.md "Delivery") with the compiled document of a newer version, or parks them
 * until there is one.
 *
 * Changes are debounced and coalesced: cp_push_notify marks the configuration dirty, and the
 * rebuild happens once CP_PUSH_QUIET_MS passed without another change, or CP_PUSH_MAX_DELAY_MS
 * after the first one, whichever comes first. So a `weft apply` of 1,000 documents, or 2,000
 * proxies registering after a restart, produce one version, not thousands, while a lone change
 * reaches the proxies 100 ms after it was made.
 *
 * Versions: version = max(previous + 1, wall clock in ms, highest version a proxy reported + 1).
 * Nothing is persisted, yet a restarted control plane still hands out versions greater than the
 * ones its proxies hold (which they require: a proxy refuses a version not newer than its own),
 * because the wall clock moved on meanwhile; the third term covers a clock stepped back.
 *
 * Per proxy (by id) the engine keeps what it acknowledged, what it refused and why, and what it
 * was last sent (version and content hash). A document whose content hash is the one the proxy
 * already runs (or the one it refused) is not sent: the poll keeps waiting, and the proxy counts
 * as SYNCED at the current version (or stays NACK).
 *
 * Time: every function takes the monotonic clock in ms (now_ms) for debounce, waits and
 * convergence, so tests can drive it with a fake clock; the wall clock (wall_ms) only enters the
 * version. cp_push_start runs a thread that calls cp_push_tick and cp_push_expire with the real
 * clocks. Threads: every function may be called from any thread (one mutex; compiling a document
 * and rebuilding happen outside it).
 */
#ifndef CP_PUSH_H
#define CP_PUSH_H

#include "cp_compile.h"
#include "cp_config.h"
#include "cp_registry.h"
#include "cp_store.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* A rebuild starts after this long without a new change... */
#define CP_PUSH_QUIET_MS 100
/* ...and at the latest this long after the first change it coalesces. */
#define CP_PUSH_MAX_DELAY_MS 1000
/* How long a poll waits for a newer document before it is answered 304. */
#define CP_PUSH_DEFAULT_WAIT_MS 30000
/* At most this many proxies are tracked; a poll for one more is refused (WF_E_LIMIT). */
#define CP_PUSH_MAX_PROXIES 100000
/* Bytes of documents given out and not yet sent, past which polls wait for room. */
#define CP_PUSH_DEFAULT_SEND_BUDGET ((size_t)16 << 20)
/* A proxy that has not polled for this long and is not registered is forgotten. */
#define CP_PUSH_FORGET_MS (10 * 60 * 1000)

/* The compiler, as functions, so tests can run the engine with a fake one. */
typedef struct {
    int (*compile_new)(const cp_config_t *cfg, const cp_compile_opts_t *o, cp_compiled_t **out);
    void (*compile_free)(cp_compiled_t *c);
    int (*compile_proxy)(cp_compiled_t *c, const char *proxy_id, int64_t version, char **json,
                         size_t *len, uint64_t *content_hash);
    /* The same document gzip-encoded (cp_compile_proxy_gz); *content_hash still the plain
     * content's. Required for polls that ask for gzip. */
    int (*compile_proxy_gz)(cp_compiled_t *c, const char *proxy_id, int64_t version, char **gz,
                            size_t *len, uint64_t *content_hash);
    /* Parts of the configuration the snapshot schema cannot express, left out so far
     * (cp_compile_skipped); NULL: not reported. */
    uint64_t (*compile_skipped)(cp_compiled_t *c);
} cp_push_compiler_t;

typedef struct {
    cp_store_t *store;                  /* required; outlives the engine */
    cp_registry_t *registry;            /* required; outlives the engine */
    const cp_push_compiler_t *compiler; /* required; outlives the engine */
    cp_compile_opts_t compile;          /* copied (collector_url too) */
    size_t send_budget;                 /* 0: CP_PUSH_DEFAULT_SEND_BUDGET */
} cp_push_opts_t;

typedef struct cp_push cp_push_t;

/*
 * A parked poll. The caller (the HTTP layer) fills suspend, resume, arg and deadline_ms; the
 * engine calls suspend(arg) when it parks the poll and resume(arg) when it must be looked at
 * again (a newer version, or its deadline: then timed_out is set), both under the engine's lock
 * and in that order, so a poll is never resumed before it was suspended. After resume the
 * engine holds no reference to the waiter; the caller polls again (cp_push_poll with the same
 * waiter) unless timed_out.
 */
typedef struct cp_push_waiter {
    void (*suspend)(void *arg);
    void (*resume)(void *arg);
    void *arg;
    int64_t deadline_ms; /* monotonic */
    bool timed_out;      /* set by the engine */
    /* engine-owned */
    struct cp_push_waiter *prev, *next;
    struct cp_push_proxy *proxy;
    bool for_budget; /* waiting for room in the send budget, not for a version */
} cp_push_waiter_t;

/* One poll's query. */
typedef struct {
    const char *proxy_id;
    int64_t version;    /* the version the proxy runs (acknowledges); 0 = none */
    int64_t nack;       /* the version it refused (0: none, or one it could not read) */
    const char *reason; /* why it refused; NULL or "" with nack 0: no refusal */
    bool gzip;          /* the proxy takes the document gzip-encoded (Accept-Encoding) */
} cp_push_query_t;

enum {
    CP_PUSH_DOC = 0,    /* *json holds the document to answer 200 with */
    CP_PUSH_WAIT = 1,   /* the waiter is parked */
    CP_PUSH_CLOSED = 2, /* cp_push_close was called: answer now, as if the wait ran out */
};

/* An engine over o (copied). No configuration is built yet: cp_push_build or cp_push_start. */
int cp_push_new(const cp_push_opts_t *o, cp_push_t **out);
/* Stop the thread, answer every parked poll (resume with timed_out), free. NULL is a no-op. */
void cp_push_free(cp_push_t *p);

/* Build the first configuration now, then run the thread that rebuilds and expires waits. */
int cp_push_start(cp_push_t *p);

/*
 * Resume every parked poll with timed_out and refuse to park new ones from now on (they are
 * answered as if their wait had run out): the HTTP layer calls it before it stops, as
 * libmicrohttpd cannot stop with suspended connections.
 */
void cp_push_close(cp_push_t *p);

/* Something changed that may change a proxy's document (a resource write, a workload
 * registered, deregistered or expired; not a heartbeat). */
void cp_push_notify(cp_push_t *p, int64_t now_ms);

/*
 * Replace the trust bundle every document carries ("security", docs/snapshot.md) with pem
 * (copied) at version, when version is newer than the one held; the proxies get it through
 * the usual debounced rebuild.
 */
void cp_push_set_trust_bundle(cp_push_t *p, const char *pem, int64_t version, int64_t now_ms);

/*
 * Whether every workload of the current configuration has acknowledged a document carrying
 * trust bundle version (false while that bundle is not built yet); the ids of some that have
 * not go into missing (len bytes, comma-separated, truncated). For the CA's root rotation.
 */
bool cp_push_bundle_propagated(cp_push_t *p, int64_t version, char *missing, size_t len);

/* Rebuild now: load the configuration, compile, take a new version, wake the parked polls. */
int cp_push_build(cp_push_t *p, int64_t now_ms, int64_t wall_ms);

/* Rebuild when the debounce says so; 1 when it rebuilt, 0 when not due, < 0 on failure. */
int cp_push_tick(cp_push_t *p, int64_t now_ms, int64_t wall_ms);

/* Resume the parked polls whose deadline is <= now_ms (timed_out set); how many. */
size_t cp_push_expire(cp_push_t *p, int64_t now_ms);

/*
 * A poll from proxy q->proxy_id. Records its acknowledgement (q->version) and refusal (q->nack,
 * q->reason), then either gives the compiled document of the current version in *json (wf_free
 * it; *len bytes, gzip-encoded when q->gzip, and not NUL-terminated then; call
 * cp_push_sent(p, *len) once it is sent or dropped: the send budget counts these bytes) and returns
 * CP_PUSH_DOC, when it is newer than max(version, nack) and its content differs from what the
 * proxy runs and from what it refused; or parks w and returns CP_PUSH_WAIT (also when the
 * documents on their way out fill the send budget: w is resumed when there is room). w may be NULL
 * to never park (CP_PUSH_WAIT is returned, nothing is held). Once CP_PUSH_WAIT is returned the
 * waiter belongs to the engine until resumed: its fields may change under the caller's feet.
 * After cp_push_close a poll returns CP_PUSH_CLOSED and parks nothing. WF_E_INVAL for an id that is
 * empty, longer than 253 bytes or not printable ASCII; WF_E_LIMIT past CP_PUSH_MAX_PROXIES.
 */
int cp_push_poll(cp_push_t *p, const cp_push_query_t *q, int64_t now_ms, cp_push_waiter_t *w,
                 char **json, size_t *len);

/* A document of len bytes given by cp_push_poll is sent (or dropped): its room in the send
 * budget is free again, and polls waiting for room are resumed. */
void cp_push_sent(cp_push_t *p, size_t len);

/* The current version (0 before the first build). */
int64_t cp_push_version(cp_push_t *p);

/*
 * {"version": current, "proxies": [{"id","namespace","service","version" (acknowledged),
 * "sent","state" ("SYNCED"|"STALE"|"NACK"|"NOT_REGISTERED"),"reason","lastPollMs" (ms since
 * its last poll began),"waiting"}]} sorted by id. A new reference.
 */
json_t *cp_push_status(cp_push_t *p, int64_t now_ms);

/* The engine's metrics in Prometheus text format. */
void cp_push_metrics(cp_push_t *p, int64_t now_ms, FILE *f);

#endif
