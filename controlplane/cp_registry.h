/*
 * cp_registry.h - the workload registry: workloads (a sidecar's or a gateway's view of the
 * program it fronts) register with a lease and renew it by heartbeats; a lease that runs out
 * removes the workload.
 *
 * Ids follow docs/snapshot.md: `<service>-<version>.<namespace>`, or `<service>.<namespace>`
 * without a version. Registering an id again replaces the entry (a restarted proxy).
 *
 * Every entry is persisted in the cp_store, so a control plane that restarts keeps its
 * workloads until their leases would have run out; heartbeats re-establish them meanwhile.
 *
 * Time is an argument (now_ms, wall clock in ms), never read inside, so expiry is testable with
 * a fake clock. Threads: every function may be called from any thread (one mutex).
 */
#ifndef CP_REGISTRY_H
#define CP_REGISTRY_H

#include "cp_store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CP_REGISTRY_DEFAULT_TTL_MS 30000
#define CP_REGISTRY_MAX_LABELS 64
#define CP_REGISTRY_MAX_PORTS 64

typedef struct {
    char *name;
    char *value;
} cp_label_t;

typedef struct {
    char *id;
    char *service;
    char *ns;
    char *version; /* "" when the workload has none */
    char *address; /* IP or host name the mesh reaches it at */
    char *service_account;
    cp_label_t *labels;
    size_t nlabels;
    uint16_t *ports;
    size_t nports;
    uint16_t admin_port; /* the proxy's admin listener (/stats/prometheus); 0 = none */
    bool gateway;        /* registered with mode "gateway": an ingress/egress gateway proxy */
    int64_t registered_ms;
    int64_t expires_ms;
} cp_workload_t;

typedef struct cp_registry cp_registry_t;

typedef struct {
    uint64_t registered;     /* workloads now */
    uint64_t registrations;  /* register calls accepted */
    uint64_t heartbeats;     /* heartbeats accepted */
    uint64_t leases_expired; /* workloads removed because their lease ran out */
} cp_registry_stats_t;

/*
 * Open the registry over store (which must outlive it) with lease ttl_ms (0: the default),
 * loading the persisted workloads whose lease has not run out at now_ms (the others are
 * deleted).
 */
int cp_registry_open(cp_store_t *store, int64_t ttl_ms, int64_t now_ms, cp_registry_t **out);
/* NULL is a no-op. */
void cp_registry_close(cp_registry_t *r);

/*
 * Register w (its id, registered_ms and expires_ms are ignored and set here; a NULL or empty
 * service_account means "default") with a lease from now_ms. Fields are validated: service and
 * namespace are DNS-1123 labels, version (optional) as a label value, address non-empty, at
 * most CP_REGISTRY_MAX_LABELS labels and CP_REGISTRY_MAX_PORTS ports. Returns 0 and the new
 * entry (a copy: free with cp_workload_free) in *out when out is not NULL; WF_E_INVAL with a
 * sentence in err otherwise.
 */
int cp_registry_register(cp_registry_t *r, const cp_workload_t *w, int64_t now_ms,
                         cp_workload_t *out, char *err, size_t errlen);

/* Renew id's lease from now_ms; WF_E_NOTFOUND when id is not registered (or has expired): the
 * workload must register again. *expires_ms (when not NULL) is the new expiry. */
int cp_registry_heartbeat(cp_registry_t *r, const char *id, int64_t now_ms, int64_t *expires_ms);

/* Remove id (a workload shutting down); WF_E_NOTFOUND when absent. */
int cp_registry_deregister(cp_registry_t *r, const char *id);

/* Remove every workload whose lease has run out at now_ms; returns how many. */
size_t cp_registry_expire(cp_registry_t *r, int64_t now_ms);

/* Copies of the live workloads at now_ms (expired ones are removed first), ordered by id.
 * Free with cp_workload_list_free. */
int cp_registry_list(cp_registry_t *r, int64_t now_ms, cp_workload_t **out, size_t *n);

void cp_registry_stats(cp_registry_t *r, cp_registry_stats_t *out);

/* Deep copy of src into dst (an empty service account becomes "default"). */
void cp_workload_copy(cp_workload_t *dst, const cp_workload_t *src);
void cp_workload_free(cp_workload_t *w);
void cp_workload_list_free(cp_workload_t *list, size_t n);

/* The value of label name, or NULL. */
const char *cp_workload_label(const cp_workload_t *w, const char *name);
/* Istio's canonical service: label service.istio.io/canonical-name, else
 * app.kubernetes.io/name, else app, else the service name. */
const char *cp_canonical_service(const cp_workload_t *w);
/* Istio's canonical revision: label service.istio.io/canonical-revision, else
 * app.kubernetes.io/version, else version, else the version field, else "latest". */
const char *cp_canonical_revision(const cp_workload_t *w);
/* spiffe://cluster.local/ns/<ns>/sa/<sa> into out; the length it needs (as snprintf). */
int cp_spiffe_id(const cp_workload_t *w, char *out, size_t outlen);

#endif
