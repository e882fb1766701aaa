/*
 * cp_store.h - the control plane's durable state: Istio resources and the workload registry,
 * in one SQLite database (DIR/control.db, WAL, synchronous=NORMAL: a write is durable once its
 * COMMIT returns, and survives kill -9).
 *
 * Resources are kept as the caller gives them: (kind, namespace, name) as the key, the
 * apiVersion, the canonical JSON of the spec (generation compares it byte for byte, so the
 * caller must canonicalise: sorted keys, compact) and the canonical JSON of the whole document
 * without server-set metadata. The store assigns the metadata Kubernetes clients expect:
 *   resourceVersion - one counter for the whole store, increased by every write (create,
 *                     update, delete), so a list at version N holds every write up to N; an
 *                     update that changes nothing (same apiVersion and document) writes
 *                     nothing and keeps the object's version, as in Kubernetes;
 *   generation      - per object: 1 on create, +1 on an update whose spec differs;
 *   creation time   - set on create, kept by updates.
 *
 * A batch of writes is one transaction: either every write is applied or none is.
 *
 * Threads: every function may be called from any thread; one mutex serialises them.
 */
#ifndef CP_STORE_H
#define CP_STORE_H

#include "cp_err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cp_store cp_store_t;

/* What a write did to an object. */
typedef enum {
    CP_UNCHANGED, /* same apiVersion and document: nothing written, no new resourceVersion */
    CP_CREATED,
    CP_CONFIGURED, /* updated */
    CP_DELETED,
} cp_change_t;

typedef struct {
    char *kind;
    char *ns;
    char *name;
    char *api_version;
    char *spec; /* canonical JSON of the spec */
    char *doc;  /* canonical JSON of the document as given (without server metadata) */
    int64_t resource_version;
    int64_t generation;
    int64_t created_ms; /* wall clock, ms since the epoch */
    cp_change_t change; /* set by cp_store_write only */
} cp_stored_t;

typedef enum {
    CP_OP_CREATE, /* fails with CP_E_EXISTS when the key exists */
    CP_OP_UPDATE, /* fails with WF_E_NOTFOUND when absent, CP_E_CONFLICT when stale */
    CP_OP_APPLY,  /* create or update, without a version check (kubectl apply) */
    CP_OP_DELETE, /* fails with WF_E_NOTFOUND when absent, CP_E_CONFLICT when stale */
} cp_op_kind_t;

typedef struct {
    cp_op_kind_t op;
    const char *kind, *ns, *name;
    const char *api_version, *spec, *doc; /* unused by DELETE */
    /* UPDATE/DELETE: the resourceVersion the caller read; 0 = no precondition */
    int64_t expect_rv;
} cp_write_t;

/* Open (creating when absent) DIR/control.db. */
int cp_store_open(const char *dir, cp_store_t **out);
/* NULL is a no-op. */
void cp_store_close(cp_store_t *s);

/*
 * Apply writes[0..n) in one transaction at wall time now_ms. On success returns 0 and, when
 * out is not NULL, fills out[i] with the stored state of each written object (for a delete:
 * the object as it was, with the resourceVersion of the delete). On failure nothing is applied;
 * *failed (when not NULL) is the index of the write that failed, and the return value says why.
 * Free out[i] with cp_stored_free.
 */
int cp_store_write(cp_store_t *s, const cp_write_t *writes, size_t n, int64_t now_ms,
                   cp_stored_t *out, size_t *failed);

/* The object (kind, ns, name) into *out, or WF_E_NOTFOUND. */
int cp_store_get(cp_store_t *s, const char *kind, const char *ns, const char *name,
                 cp_stored_t *out);

/*
 * Every object of kind in namespace ns (NULL: all namespaces), ordered by namespace then name,
 * into a wf_malloc'ed array *out of *n (free with cp_stored_list_free). *rv (when not NULL)
 * is the store's resourceVersion at the time of the list.
 */
int cp_store_list(cp_store_t *s, const char *kind, const char *ns, cp_stored_t **out, size_t *n,
                  int64_t *rv);

/* The store's current resourceVersion (0 before the first write). */
int64_t cp_store_rv(cp_store_t *s);

void cp_stored_free(cp_stored_t *r);
void cp_stored_list_free(cp_stored_t *list, size_t n);

/*
 * Workload registry rows, owned by cp_registry: the store keeps them as (id, JSON document,
 * lease expiry). put inserts or replaces; load calls cb for each stored row, in id order, with
 * the store locked (cb must not call the store; a negative return stops the load and is
 * returned).
 */
int cp_store_wl_put(cp_store_t *s, const char *id, const char *doc, int64_t expires_ms);
int cp_store_wl_delete(cp_store_t *s, const char *id);
int cp_store_wl_load(cp_store_t *s,
                     int (*cb)(void *arg, const char *id, const char *doc, int64_t expires_ms),
                     void *arg);

#endif
