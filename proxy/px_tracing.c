/*
 * px_tracing.c - the data path's tracing hooks (px_tracing.h): propagation when a request
 * starts, and the span record when it is reported. The parsing, formatting and sampling rules
 * are px_trace.c's; this file only feeds them the request and the proxy's identity.
 */
#include "px_tracing.h"

#include "px_export.h"
#include "px_metrics.h"

#include <stdio.h>
#include <string.h>

void px_tracing_begin(px_worker_t *w, const px_gen_t *gen, const px_http1_head_t *h,
                      px_trace_ctx_t *ctx, px_trace_out_t *out)
{
    px_trace_in_t in;
    px_trace_extract(h->headers, h->num_headers, &in);
    /* The snapshot in use says, so a new snapshot's sampling applies at once. */
    double pct = gen != NULL ? gen->snap->telemetry.sampling : w->px->sampling_pct;
    px_trace_start(&in, pct, &w->rng, ctx);
    px_trace_inject(ctx, out);
}

/* The host part of an authority (no port). */
static wf_str_t authority_host(wf_str_t a)
{
    if (a.len > 0 && a.p[0] == '[') {
        const char *rb = memchr(a.p, ']', a.len);
        return rb != NULL ? (wf_str_t){a.p, (size_t)(rb - a.p) + 1} : a;
    }
    const char *colon = a.len > 0 ? memchr(a.p, ':', a.len) : NULL;
    return colon != NULL ? (wf_str_t){a.p, (size_t)(colon - a.p)} : a;
}

void px_tracing_op_name(char *out, size_t cap, wf_str_t service, wf_str_t ns, uint32_t port)
{
    char host[512];
    if (service.len > 0 && memchr(service.p, '.', service.len) != NULL) {
        snprintf(host, sizeof(host), "%.*s", (int)service.len, service.p);
    } else {
        if (ns.len == 0) {
            ns = WF_STR_LIT("default");
        }
        snprintf(host, sizeof(host), "%.*s.%.*s.svc.cluster.local", (int)service.len, service.p,
                 (int)ns.len, ns.p);
    }
    px_span_name(out, cap, wf_str(host), port, WF_STR_LIT(""));
}

void px_tracing_record(px_worker_t *w, const px_request_info_t *info)
{
    const px_trace_ctx_t *ctx = info->trace;
    px_span_queue_t *q = atomic_load_explicit(&w->spans, memory_order_acquire);
    if (ctx == NULL || !ctx->sampled || q == NULL) {
        return;
    }
    const px_proxy_t *px = w->px;
    char name[600];
    if (info->inbound) {
        /* The inbound cluster's port, as Istio's inbound route decorator names it. */
        px_tracing_op_name(name, sizeof(name), px->self_service, px->self.namespace,
                           (uint32_t)px->cfg.app_port);
    } else {
        wf_str_t svc = info->upstream_service.len > 0 ? info->upstream_service
                                                      : authority_host(info->authority);
        px_tracing_op_name(name, sizeof(name), svc, WF_STR_LIT(""),
                           px_http1_authority_port(info->authority, 80));
    }
    /* Envoy's http.url: scheme, authority and path; an absolute-form target (forward proxy
     * clients) already is one. px_span_new cuts it. */
    char url[PX_SPAN_URL_MAX + 1];
    int ul;
    if (info->path.len > 0 && info->path.p[0] != '/' && info->path.p[0] != '*') {
        ul = snprintf(url, sizeof(url), "%.*s", (int)info->path.len, info->path.p);
    } else {
        ul = snprintf(url, sizeof(url), "http://%.*s%.*s", (int)info->authority.len,
                      info->authority.p, (int)info->path.len, info->path.p);
    }
    char fl[PX_RFLAGS_MAX];
    px_rflags_format(info->flags, fl);
    px_span_in_t in = {
        .ctx = ctx,
        .kind = info->inbound ? PX_SPAN_SERVER : PX_SPAN_CLIENT,
        .name = wf_str(name),
        .start_ns = info->start_wall_ns,
        .end_ns = info->start_wall_ns + info->duration_ns,
        .method = info->method,
        .url = {url, ul < 0                     ? 0
                     : (size_t)ul < sizeof(url) ? (size_t)ul
                                                : sizeof(url) - 1},
        .protocol = info->minor_version == 0 ? WF_STR_LIT("HTTP/1.0") : WF_STR_LIT("HTTP/1.1"),
        .status = info->status > 0 ? (uint32_t)info->status : 0,
        .upstream_cluster = info->upstream_cluster,
        .response_flags = wf_str(fl),
        .request_id = info->request_id,
        .peer_address = info->downstream_ip,
        .user_agent = info->user_agent,
        .downstream_cluster = WF_STR_LIT(""),
        .request_size = info->bytes_in,
        .response_size = info->bytes_out,
    };
    px_span_queue_push(q, px_span_new(&in));
}

void px_tracing_stats(const px_proxy_t *px, wf_buf_t *out)
{
    px_export_counters_t ec;
    px_export_counters(px->exporter, &ec);
    uint64_t full = 0;
    for (int i = 0; i < px->n_workers; i++) {
        px_span_queue_t *q = atomic_load_explicit(&px->workers[i].spans, memory_order_acquire);
        if (q != NULL) {
            full += px_span_queue_dropped(q);
        }
    }
    wf_buf_printf(out,
                  "# HELP weft_proxy_spans_sent_total Spans in batches the collector accepted.\n"
                  "# TYPE weft_proxy_spans_sent_total counter\n"
                  "weft_proxy_spans_sent_total %llu\n"
                  "# HELP weft_proxy_spans_dropped_total Sampled spans not exported, by reason "
                  "(queue_full: the worker's queue was full; export_failed: their batch failed or "
                  "the shutdown drain ran out).\n"
                  "# TYPE weft_proxy_spans_dropped_total counter\n"
                  "weft_proxy_spans_dropped_total{reason=\"queue_full\"} %llu\n"
                  "weft_proxy_spans_dropped_total{reason=\"export_failed\"} %llu\n"
                  "# HELP weft_proxy_span_export_failures_total Span batches the collector did "
                  "not accept (connect error, timeout, non-2xx answer).\n"
                  "# TYPE weft_proxy_span_export_failures_total counter\n"
                  "weft_proxy_span_export_failures_total %llu\n",
                  (unsigned long long)ec.spans_sent, (unsigned long long)full,
                  (unsigned long long)ec.spans_failed, (unsigned long long)ec.batches_failed);
}
