/*
 * cp_analyze.h - cross-resource checks over one configuration (cp_config.h): what a single
 * resource's structural validation (cp_istio.h) cannot see, because it needs the other
 * resources and the registered workloads. A VirtualService routing to a host nobody serves, a
 * subset no DestinationRule defines, two VirtualServices claiming one host, a Gateway whose
 * selector matches no workload, a DestinationRule disabling mTLS where a PeerAuthentication
 * demands it.
 *
 * The codes, severities and texts are Kiali's (models/istio_validation.go, the KIA codes), and
 * each check follows the Kiali checker of the same code, so a user who knows Kiali's messages
 * reads weft's the same way. docs/controlplane.md ("Validation messages") lists what weft emits.
 *
 * Services: a host is a known service when a registered workload serves it
 * (`<service>.<namespace>.svc.cluster.local`; short names are relative to the namespace of the
 * resource naming them, `svc.ns` and `svc.ns.svc` are expanded) or a ServiceEntry declares it
 * (exactly, or through a `*.suffix` wildcard). Wildcard hosts of DestinationRules match by
 * suffix, as Kiali's. A workload's labels are the ones it registered with, plus `app` (its
 * service) and `version` (its version) when it did not give those itself.
 *
 * Pure: reads cfg only, allocates the findings, no locks, no I/O; any thread.
 */
#ifndef CP_ANALYZE_H
#define CP_ANALYZE_H

#include "cp_config.h"
#include "cp_istio.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum { CP_LEVEL_ERROR, CP_LEVEL_WARNING, CP_LEVEL_INFO } cp_level_t;

typedef struct {
    const char *code; /* "KIA1107" (static) */
    cp_level_t level; /* Kiali's severity; Kiali's "Unknown" is CP_LEVEL_INFO */
    cp_kind_t kind;   /* of the resource the finding is about */
    char *ns;         /* its namespace */
    char *name;       /* its name */
    char *path;       /* field path: "spec.http[0].route[1].destination.host" */
    char *message;    /* Kiali's text, then ": " and what weft found */
} cp_finding_t;

typedef struct {
    /* Istio's auto mTLS: a sidecar talks mTLS to another sidecar without a DestinationRule
     * asking for it. weft's snapshot compiler does so, hence the default true; with it, as in
     * Kiali, a STRICT PeerAuthentication needs no ISTIO_MUTUAL DestinationRule (KIA0401,
     * KIA0501) and an ISTIO_MUTUAL one needs no PeerAuthentication (KIA0205, KIA0206). */
    bool auto_mtls;
    /* Istio's root namespace: a PeerAuthentication or DestinationRule there is mesh-wide. NULL:
     * "istio-system". */
    const char *root_namespace;
} cp_analyze_opts_t;

/*
 * Run every check over cfg with the default options (auto_mtls, root namespace istio-system).
 * *out gets the findings (free with cp_findings_free; NULL when *n is 0), sorted by namespace,
 * kind, name, path (numbers inside a path compare as numbers), code: the same configuration
 * always gives the same list. Returns 0 (allocation failure aborts).
 */
int cp_analyze(const cp_config_t *cfg, cp_finding_t **out, size_t *n);
/* The same with options o. */
int cp_analyze_opts(const cp_config_t *cfg, const cp_analyze_opts_t *o, cp_finding_t **out,
                    size_t *n);

void cp_findings_free(cp_finding_t *f, size_t n);

/* "error", "warning", "info". */
const char *cp_level_name(cp_level_t l);

/*
 * {"messages":[{"code","level","kind","namespace","name","path","message"}]} of the findings
 * in namespace ns (NULL: all), in their order. A new reference (json_decref it).
 */
json_t *cp_findings_json(const cp_finding_t *f, size_t n, const char *ns);

/*
 * The findings as text, one line each, as `istioctl analyze` prints them:
 *   Warning [KIA1107] (VirtualService default/reviews spec.http[0].route[0].destination.subset)
 *   Subset not found: ...
 * on one line; "" when there are none. NUL-terminated, wf_free it.
 */
char *cp_findings_text(const cp_finding_t *f, size_t n);

#endif
