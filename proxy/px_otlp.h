/*
 * px_otlp.h - encodes a batch of the proxy's span records (px_trace.h) as an OTLP
 * ExportTraceServiceRequest in protobuf, the body the exporter POSTs to the collector's
 * /v1/traces (field numbers from opentelemetry-proto, trace/v1/trace.proto and
 * common/v1/common.proto).
 *
 * One ResourceSpans per call: the resource is this proxy (service.name = its canonical service,
 * service.version = canonical revision, service.namespace, service.instance.id = node id,
 * telemetry.sdk.name = weft), one ScopeSpans (scope `weft-proxy`, the weft version), and every
 * span with Envoy/Istio's tags as string attributes (http.method, http.url, http.protocol,
 * http.status_code, upstream_cluster, upstream_cluster.name, response_flags, node_id,
 * guid:x-request-id, istio.canonical_service, istio.canonical_revision, istio.namespace,
 * istio.mesh_id when set, peer.address, component=proxy, user_agent and downstream_cluster
 * when known, request_size, response_size, and error=true with status ERROR on 5xx or no
 * response). Pure function; any thread.
 */
#ifndef PX_OTLP_H
#define PX_OTLP_H

#include "px_trace.h"
#include "wf_buf.h"

/* What every span of this proxy shares. Borrowed for the call. */
typedef struct {
    wf_str_t node_id; /* Istio's form: sidecar~<ip>~<workload>.<ns>~<ns>.svc.cluster.local */
    wf_str_t canonical_service;
    wf_str_t canonical_revision;
    wf_str_t namespace;
    wf_str_t mesh_id; /* "" = not sent */
} px_trace_node_t;

/* Append the encoded request for spans[0..n) to out. */
void px_otlp_encode(const px_trace_node_t *node, px_span_t *const *spans, size_t n, wf_buf_t *out);

#endif
