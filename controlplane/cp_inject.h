/*
 * cp_inject.h - `weft inject`: rewrite Kubernetes manifests so that their pods run in the mesh,
 * the offline manifest rewriter Istio calls `istioctl kube-inject`, and the Kubernetes twin of
 * `weft run` (demo/demo_run.c).
 *
 * weft's data plane has no iptables, so a pod is rewritten the way `weft run` starts a program:
 *
 *   - a sidecar container `weft-proxy` (by default a Kubernetes native sidecar: an init
 *     container with restartPolicy Always, which starts before the app, is ready when its
 *     /ready answers, and does not keep a Job from completing) runs `weft proxy` for the pod's
 *     service and version, with its inbound listener and admin listener on the pod's IP
 *     (ports 15006 and 15000; the address it registers is the one peers and the collector's
 *     scraper use) and its outbound listener on 127.0.0.1:15001;
 *   - every app container gets http_proxy / HTTP_PROXY naming that outbound listener and
 *     no_proxy / NO_PROXY keeping loopback direct;
 *   - a Service of the same input whose selector matches an injected pod has the port that led
 *     to the app's port (targetPort, or port when no targetPort) sent to 15006 instead, so
 *     callers outside the mesh (kube-proxy, an ingress) also pass through the sidecar.
 *
 * Istio's rules are kept: a pod whose template has `sidecar.istio.io/inject: "false"` (as an
 * annotation or a label) or hostNetwork is left alone, as is a pod that already has a
 * weft-proxy container (so inject(inject(x)) == inject(x)); Pod, Deployment, StatefulSet,
 * DaemonSet, ReplicaSet, ReplicationController, Job, CronJob and List are rewritten, every
 * other document passes through. A Namespace of the same input that does not carry the label
 * weft-injection=enabled keeps the workloads it names (by metadata.namespace) from injection.
 *
 * Output: documents keep their order and separators. A document that is not rewritten is
 * copied byte for byte (comments included); a rewritten one keeps the comment lines before it
 * and is emitted again by libyaml, so comments inside it are lost, anchors and aliases come
 * out expanded and flow style becomes block style.
 *
 * The input is hostile: it is read by cp_yaml with limits (its defaults, or cp_inject_limits'),
 * aliases counted as expanded, so a "billion laughs" fails with CP_E_LIMIT. Any thread; no
 * shared state.
 */
#ifndef CP_INJECT_H
#define CP_INJECT_H

#include <stdbool.h>
#include <stddef.h>

#include "cp_yaml.h"
#include "wf_buf.h"

/* The sidecar's ports in the pod. */
#define CP_INJECT_INBOUND_PORT 15006
#define CP_INJECT_OUTBOUND_PORT 15001
#define CP_INJECT_ADMIN_PORT 15000
/* The sidecar container's name, which also marks a pod as injected. */
#define CP_INJECT_CONTAINER "weft-proxy"
/* The Secret (in the pod's namespace) holding the control plane's bootstrap token, key token. */
#define CP_INJECT_TOKEN_SECRET "weft-bootstrap-token"
/* Annotation of a pod template naming the port the sidecar forwards peers' requests to. */
#define CP_INJECT_APP_PORT_ANNOTATION "weft.io/app-port"

typedef struct {
    const char *image;     /* the sidecar's image (required) */
    const char *control;   /* control plane URL the sidecar registers with (required) */
    const char *collector; /* spans go there; NULL: the control plane's setting */
    const char *log_level; /* the sidecar's; NULL: weft proxy's default */
    const char *cpu_request, *memory_request, *cpu_limit, *memory_limit; /* NULL: none */
    bool native_sidecar;            /* init container with restartPolicy Always, else a container */
    const cp_yaml_limits_t *limits; /* of the input; NULL: cp_yaml's defaults */
} cp_inject_opts_t;

/*
 * Limits for a person's own manifests (`weft inject`): 16 MiB and 1,000,000 nodes (aliases
 * counted as expanded), 32 MiB of scalars expanded, depth 64, 100,000 items in a sequence or
 * mapping, so that the output of a large input (each sidecar adds about 2.4 KB) can be injected
 * again. Memory stays proportional to the node limit: about 120 MB at most (measured).
 */
void cp_inject_limits(cp_yaml_limits_t *lim);

/*
 * Rewrite the manifests buf[0..len) (YAML or JSON, one or more documents). On success the
 * result is appended to out, one line per document left alone on purpose ("document 2
 * (Deployment ratings-v1): skipped: ...") is appended to notes (may be NULL), and 0 is
 * returned. Otherwise nothing is appended to out, err holds the message (line and column of
 * the input where known) and the result is CP_E_SYNTAX (not YAML), CP_E_LIMIT (too large or
 * too deep) or CP_E_INVALID (a workload whose pod template is malformed).
 */
int cp_inject(const char *buf, size_t len, const cp_inject_opts_t *opts, wf_buf_t *out,
              wf_buf_t *notes, cp_err_t *err);

#endif
