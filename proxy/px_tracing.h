/*
 * px_tracing.h - tracing on the proxy's data path: the two hooks between a request and the
 * pure trace code (px_trace.h). At the start of a request the incoming context is extracted,
 * this hop's span is started (sampling decided) and the headers the forwarded request carries
 * are made; when the request is reported (px_request_done) a sampled request becomes a span
 * record in the worker's queue for the exporter (px_export.h).
 *
 * Threads: both run on the worker's thread and touch only that worker's state.
 */
#ifndef PX_TRACING_H
#define PX_TRACING_H

#include "px_http1.h"
#include "px_trace.h"
#include "px_worker.h"

#include <stddef.h>
#include <stdint.h>

/* Start this hop's span for the request head h, sampled by the snapshot of gen (NULL: none;
 * then --sampling): ctx gets the context, out the fields to add to the forwarded request (the
 * caller drops the incoming ones with px_trace_is_header). */
void px_tracing_begin(px_worker_t *w, const px_gen_t *gen, const px_http1_head_t *h,
                      px_trace_ctx_t *ctx, px_trace_out_t *out);

/* Record the span of a finished request when its context is sampled and an exporter runs:
 * CLIENT on the outbound side, SERVER on the inbound side, pushed into the worker's queue
 * (dropped and counted there when it is full). */
void px_tracing_record(px_worker_t *w, const px_request_info_t *info);

/* The span counters (sent, dropped by reason, failed batches) in Prometheus text format, for
 * /stats/prometheus; zero when no exporter runs. Any thread. */
void px_tracing_stats(const px_proxy_t *px, wf_buf_t *out);

/*
 * Istio's operation name for a request: `<host>:<port>` followed by a slash and a star
 * (px_span_name), where host is the service's FQDN
 * (`service` when it has a dot, else `service.<ns>.svc.cluster.local`, ns "" = default) and
 * port the one the request was addressed to. NUL-terminated into out, truncated to cap - 1.
 */
void px_tracing_op_name(char *out, size_t cap, wf_str_t service, wf_str_t ns, uint32_t port);

#endif
