/*
 * px_otlp.c - protobuf encoding of the proxy's span batches as an OTLP
 * ExportTraceServiceRequest (px_otlp.h). Leaf messages (KeyValue, AnyValue, Status) have sizes
 * known up front and are written in place; a span, the scope and the resource are written to a
 * scratch buffer first and copied behind their length, which costs a copy of the batch per
 * level but keeps the code obviously right.
 */
#include "px_otlp.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Wire types. */
#define WT_VARINT 0
#define WT_I64 1
#define WT_LEN 2
#define WT_I32 5

/* opentelemetry-proto field numbers. */
enum {
    F_REQ_RESOURCE_SPANS = 1, /* ExportTraceServiceRequest */
    F_RS_RESOURCE = 1,        /* ResourceSpans */
    F_RS_SCOPE_SPANS = 2,
    F_RES_ATTRIBUTES = 1, /* Resource */
    F_SS_SCOPE = 1,       /* ScopeSpans */
    F_SS_SPANS = 2,
    F_SCOPE_NAME = 1, /* InstrumentationScope */
    F_SCOPE_VERSION = 2,
    F_KV_KEY = 1, /* KeyValue */
    F_KV_VALUE = 2,
    F_ANY_STRING = 1, /* AnyValue */
    F_SPAN_TRACE_ID = 1,
    F_SPAN_SPAN_ID = 2,
    F_SPAN_TRACE_STATE = 3,
    F_SPAN_PARENT_SPAN_ID = 4,
    F_SPAN_NAME = 5,
    F_SPAN_KIND = 6,
    F_SPAN_START = 7, /* fixed64 */
    F_SPAN_END = 8,   /* fixed64 */
    F_SPAN_ATTRIBUTES = 9,
    F_SPAN_STATUS = 15,
    F_SPAN_FLAGS = 16,    /* fixed32 */
    F_STATUS_CODE = 3,    /* Status */
    STATUS_CODE_ERROR = 2 /* Status.StatusCode */
};

static size_t uvarint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static void put_tag(wf_buf_t *b, uint32_t field, uint32_t wt)
{
    wf_buf_put_uvarint(b, (uint64_t)field << 3 | wt);
}

static void put_bytes(wf_buf_t *b, uint32_t field, const void *p, size_t n)
{
    put_tag(b, field, WT_LEN);
    wf_buf_put_uvarint(b, n);
    if (n > 0) {
        wf_buf_append(b, p, n);
    }
}

static void put_msg(wf_buf_t *b, uint32_t field, const wf_buf_t *msg)
{
    put_bytes(b, field, msg->data, msg->len);
}

/* A KeyValue{key, AnyValue{string_value}} as field `field` of the enclosing message. */
static void put_kv(wf_buf_t *b, uint32_t field, const char *key, size_t klen, const char *val,
                   size_t vlen)
{
    size_t any = 1 + uvarint_len(vlen) + vlen;
    size_t kv = 1 + uvarint_len(klen) + klen + 1 + uvarint_len(any) + any;
    put_tag(b, field, WT_LEN);
    wf_buf_put_uvarint(b, kv);
    put_bytes(b, F_KV_KEY, key, klen);
    put_tag(b, F_KV_VALUE, WT_LEN);
    wf_buf_put_uvarint(b, any);
    put_bytes(b, F_ANY_STRING, val, vlen);
}

static void put_kv_s(wf_buf_t *b, uint32_t field, const char *key, wf_str_t v)
{
    put_kv(b, field, key, strlen(key), v.p, v.len);
}

static void put_kv_u(wf_buf_t *b, uint32_t field, const char *key, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%" PRIu64, v);
    put_kv(b, field, key, strlen(key), tmp, (size_t)n);
}

static void encode_span(const px_trace_node_t *node, const px_span_t *s, wf_buf_t *b)
{
    const uint32_t A = F_SPAN_ATTRIBUTES;

    put_bytes(b, F_SPAN_TRACE_ID, s->trace_id, 16);
    put_bytes(b, F_SPAN_SPAN_ID, s->span_id, 8);
    if (s->tracestate.len > 0) {
        put_bytes(b, F_SPAN_TRACE_STATE, s->tracestate.p, s->tracestate.len);
    }
    static const uint8_t zero[8];
    if (memcmp(s->parent_id, zero, 8) != 0) {
        put_bytes(b, F_SPAN_PARENT_SPAN_ID, s->parent_id, 8);
    }
    put_bytes(b, F_SPAN_NAME, s->name.p, s->name.len);
    put_tag(b, F_SPAN_KIND, WT_VARINT);
    wf_buf_put_uvarint(b, (uint64_t)s->kind);
    put_tag(b, F_SPAN_START, WT_I64);
    wf_buf_put_u64le(b, (uint64_t)s->start_ns);
    put_tag(b, F_SPAN_END, WT_I64);
    wf_buf_put_u64le(b, (uint64_t)s->end_ns);

    put_kv_s(b, A, "http.method", s->method);
    put_kv_s(b, A, "http.url", s->url);
    put_kv_s(b, A, "http.protocol", s->protocol);
    put_kv_u(b, A, "http.status_code", s->status);
    put_kv_s(b, A, "upstream_cluster", s->upstream_cluster);
    put_kv_s(b, A, "upstream_cluster.name", s->upstream_cluster);
    put_kv_s(b, A, "response_flags", s->response_flags);
    put_kv_s(b, A, "node_id", node->node_id);
    put_kv_s(b, A, "guid:x-request-id", s->request_id);
    put_kv_s(b, A, "istio.canonical_service", node->canonical_service);
    put_kv_s(b, A, "istio.canonical_revision", node->canonical_revision);
    put_kv_s(b, A, "istio.namespace", node->namespace);
    if (node->mesh_id.len > 0) {
        put_kv_s(b, A, "istio.mesh_id", node->mesh_id);
    }
    put_kv_s(b, A, "peer.address", s->peer_address);
    put_kv_s(b, A, "component", WF_STR_LIT("proxy"));
    if (s->user_agent.len > 0) {
        put_kv_s(b, A, "user_agent", s->user_agent);
    }
    if (s->downstream_cluster.len > 0) {
        put_kv_s(b, A, "downstream_cluster", s->downstream_cluster);
    }
    put_kv_u(b, A, "request_size", s->request_size);
    put_kv_u(b, A, "response_size", s->response_size);
    if (s->error) {
        put_kv_s(b, A, "error", WF_STR_LIT("true"));
        /* Status{code = STATUS_CODE_ERROR}: tag 0x18, value 2. */
        put_tag(b, F_SPAN_STATUS, WT_LEN);
        wf_buf_put_uvarint(b, 2);
        put_tag(b, F_STATUS_CODE, WT_VARINT);
        wf_buf_put_uvarint(b, STATUS_CODE_ERROR);
    }
    put_tag(b, F_SPAN_FLAGS, WT_I32);
    wf_buf_put_u32le(b, s->flags);
}

void px_otlp_encode(const px_trace_node_t *node, px_span_t *const *spans, size_t n, wf_buf_t *out)
{
    wf_buf_t span = WF_BUF_INIT, ss = WF_BUF_INIT, rs = WF_BUF_INIT, tmp = WF_BUF_INIT;
    wf_str_t svc =
        node->canonical_service.len > 0 ? node->canonical_service : WF_STR_LIT("unknown");

    /* ScopeSpans: the scope, then the spans. */
    put_bytes(&tmp, F_SCOPE_NAME, "weft-proxy", 10);
    put_bytes(&tmp, F_SCOPE_VERSION, WEFT_VERSION, strlen(WEFT_VERSION));
    put_msg(&ss, F_SS_SCOPE, &tmp);
    for (size_t i = 0; i < n; i++) {
        wf_buf_reset(&span);
        encode_span(node, spans[i], &span);
        put_msg(&ss, F_SS_SPANS, &span);
    }

    /* ResourceSpans: the resource, then the one ScopeSpans. */
    wf_buf_reset(&tmp);
    put_kv_s(&tmp, F_RES_ATTRIBUTES, "service.name", svc);
    if (node->canonical_revision.len > 0) {
        put_kv_s(&tmp, F_RES_ATTRIBUTES, "service.version", node->canonical_revision);
    }
    if (node->namespace.len > 0) {
        put_kv_s(&tmp, F_RES_ATTRIBUTES, "service.namespace", node->namespace);
    }
    if (node->node_id.len > 0) {
        put_kv_s(&tmp, F_RES_ATTRIBUTES, "service.instance.id", node->node_id);
    }
    put_kv_s(&tmp, F_RES_ATTRIBUTES, "telemetry.sdk.name", WF_STR_LIT("weft"));
    put_msg(&rs, F_RS_RESOURCE, &tmp);
    put_msg(&rs, F_RS_SCOPE_SPANS, &ss);

    put_msg(out, F_REQ_RESOURCE_SPANS, &rs);

    wf_buf_free(&span);
    wf_buf_free(&ss);
    wf_buf_free(&rs);
    wf_buf_free(&tmp);
}
