/*
 * cp_config.h - one consistent view of the mesh configuration: every stored Istio resource,
 * parsed into its typed form (cp_istio.h), and the live workloads of the registry, taken
 * together at one moment. The snapshot compiler (cp_compile.h) and the cross-resource checks
 * (cp_analyze.h) read it; neither touches the store or the registry themselves, so both are
 * pure functions of a cp_config_t and can be tested from YAML files alone.
 *
 * Ownership: a cp_config_t owns its resources and workloads; cp_config_free releases them.
 * It is immutable once built, so several threads may read one at the same time.
 */
#ifndef CP_CONFIG_H
#define CP_CONFIG_H

#include "cp_istio.h"
#include "cp_registry.h"
#include "cp_store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    /* res[k][0..n[k]) of kind k, ordered by namespace then name */
    cp_resource_t **res[CP_KIND_COUNT];
    size_t n[CP_KIND_COUNT];
    /* live workloads, ordered by id */
    cp_workload_t *workloads;
    size_t nworkloads;
    /* the store's resourceVersion the resources were read at */
    int64_t store_rv;
} cp_config_t;

/*
 * Read every resource of store and the workloads of registry that are live at now_ms into a
 * new *out. A stored resource that no longer parses (written by another version of weft) is
 * left out and logged, so one bad row cannot stop the mesh from being configured. Free *out
 * with cp_config_free.
 */
int cp_config_load(cp_store_t *store, cp_registry_t *registry, int64_t now_ms, cp_config_t **out);

/*
 * Add a parsed resource (ownership passes to c) or a copy of workload w to c, keeping the
 * orders above. For tests and tools that build a configuration from files.
 */
void cp_config_add_resource(cp_config_t *c, cp_resource_t *r);
void cp_config_add_workload(cp_config_t *c, const cp_workload_t *w);

/*
 * Parse a YAML (or JSON) stream and add every Istio document of it to c: all or nothing. Empty
 * documents are skipped, and so are documents of kinds weft does not serve (Kubernetes'
 * Service, Deployment, ...: CP_E_KIND) when skip_foreign. lim may be NULL (the defaults).
 * Returns 0, or the first error (err, when not NULL, says which document and why) with nothing
 * added.
 */
int cp_config_add_yaml(cp_config_t *c, const char *text, size_t len, const cp_yaml_limits_t *lim,
                       bool skip_foreign, cp_err_t *err);

/* An empty configuration (for cp_config_add_*). */
cp_config_t *cp_config_new(void);
/* NULL is a no-op. */
void cp_config_free(cp_config_t *c);

#endif
