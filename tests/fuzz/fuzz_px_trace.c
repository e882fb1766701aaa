/*
 * fuzz_px_trace.c - drives the trace header parsers (px_trace.h) over arbitrary bytes: the
 * whole input as a traceparent, a tracestate and a single b3 value, then the input split into
 * header lines (`name:value` per line) for px_trace_extract, followed by px_trace_start and
 * px_trace_inject as a request would go through the proxy.
 *
 * Checked beyond "no crash": a parsed traceparent has non-zero ids and formats back to a value
 * that parses to the same ids (and to the input itself for version 00 with flags 00 or 01); a
 * normalised tracestate fits PX_TRACESTATE_MAX and normalises to itself; a parsed b3 with ids
 * has non-zero ids; the injected headers parse again to the span's trace id and span id with
 * the same sampled flag, in both formats. The input is also parsed as a peer-metadata value
 * (px_metrics.h), which formats and parses back to the same fields.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "px_metrics.h"
#include "px_trace.h"
#include "wf_buf.h"

static void check(int ok)
{
    if (!ok) {
        abort();
    }
}

static int zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i]) {
            return 0;
        }
    }
    return 1;
}

static void whole(const char *p, size_t n)
{
    px_traceparent_t tp;
    if (px_traceparent_parse(p, n, &tp) == 0) {
        check(!zero(tp.trace_id, 16) && !zero(tp.parent_id, 8));
        char out[PX_TRACEPARENT_LEN + 1];
        px_traceparent_format(tp.trace_id, tp.parent_id, tp.flags & 1, out);
        px_traceparent_t back;
        check(px_traceparent_parse(out, PX_TRACEPARENT_LEN, &back) == 0);
        check(memcmp(back.trace_id, tp.trace_id, 16) == 0);
        check(memcmp(back.parent_id, tp.parent_id, 8) == 0);
        if (tp.version == 0 && tp.flags <= 1) {
            check(n == PX_TRACEPARENT_LEN && memcmp(out, p, n) == 0);
        }
    }

    char ts[PX_TRACESTATE_MAX + 1], ts2[PX_TRACESTATE_MAX + 1];
    size_t tl, tl2;
    if (px_tracestate_normalize(p, n, ts, &tl) == 0) {
        check(tl <= PX_TRACESTATE_MAX && strlen(ts) == tl);
        check(px_tracestate_normalize(ts, tl, ts2, &tl2) == 0);
        check(tl2 == tl && memcmp(ts, ts2, tl) == 0);
    } else {
        check(tl == 0 && ts[0] == '\0');
    }

    px_trace_in_t in;
    memset(&in, 0, sizeof(in));
    if (px_b3_single_parse(p, n, &in) == 0) {
        check(in.source == PX_TRACE_SRC_B3_SINGLE);
        if (in.has_ids) {
            check(!zero(in.trace_id, 16) && !zero(in.parent_id, 8));
        }
    }
}

static void peer(const char *p, size_t n)
{
    static char store[PX_PEER_MAX], store2[PX_PEER_MAX * 3 * 2];
    px_workload_t w, back;
    if (px_peer_parse(p, n, &w, store, sizeof(store)) != 0) {
        return;
    }
    wf_buf_t out = WF_BUF_INIT;
    px_peer_format(&w, &out);
    int rc = px_peer_parse((const char *)out.data, out.len, &back, store2, sizeof(store2));
    /* Escapes may triple the length: beyond the limit the round trip is refused, cleanly. */
    check(rc == 0 || (rc != 0 && out.len > PX_PEER_MAX));
    if (rc == 0) {
        check(wf_str_eq(w.workload, back.workload) && wf_str_eq(w.namespace, back.namespace) &&
              wf_str_eq(w.app, back.app) && wf_str_eq(w.version, back.version) &&
              wf_str_eq(w.canonical_service, back.canonical_service) &&
              wf_str_eq(w.canonical_revision, back.canonical_revision) &&
              wf_str_eq(w.cluster, back.cluster));
    }
    wf_buf_free(&out);
}

#define MAXH 32

static void as_headers(const char *p, size_t n)
{
    px_http1_header_t h[MAXH];
    size_t nh = 0, i = 0;
    while (i < n && nh < MAXH) {
        const char *line = p + i;
        const char *nl = memchr(line, '\n', n - i);
        size_t len = nl ? (size_t)(nl - line) : n - i;
        const char *colon = memchr(line, ':', len);
        if (colon != NULL) {
            h[nh].name = (wf_str_t){line, (size_t)(colon - line)};
            h[nh].value = (wf_str_t){colon + 1, len - (size_t)(colon - line) - 1};
            nh++;
        }
        i += len + 1;
    }
    px_trace_in_t in;
    px_trace_extract(h, nh, &in);
    if (in.has_ids) {
        check(!zero(in.trace_id, 16) && !zero(in.parent_id, 8));
    }
    check(in.tracestate_len <= PX_TRACESTATE_MAX);

    px_rng_t rng;
    px_rng_seed(&rng, n);
    px_trace_ctx_t ctx;
    px_trace_start(&in, 50, &rng, &ctx);
    if (in.has_ids) {
        check(memcmp(ctx.trace_id, in.trace_id, 16) == 0);
        check(memcmp(ctx.parent_id, in.parent_id, 8) == 0);
    }
    px_trace_out_t out;
    px_trace_inject(&ctx, &out);
    check(out.n >= 4 && out.n <= PX_TRACE_MAX_OUT);

    /* The injected headers as the next hop sees them: W3C first, then B3 alone. */
    px_trace_in_t back;
    px_trace_extract(out.h, out.n, &back);
    check(back.source == PX_TRACE_SRC_TRACEPARENT);
    check(memcmp(back.trace_id, ctx.trace_id, 16) == 0);
    check(memcmp(back.parent_id, ctx.span_id, 8) == 0);
    check((back.sampling == PX_SAMPLE_ACCEPT) == ctx.sampled);
    check(back.tracestate_len == ctx.tracestate_len);
    px_trace_extract(out.h + 1 + (ctx.tracestate_len > 0), out.n - 1 - (ctx.tracestate_len > 0),
                     &back);
    check(back.source == (ctx.b3_single ? PX_TRACE_SRC_B3_SINGLE : PX_TRACE_SRC_B3_MULTI));
    check(memcmp(back.trace_id, ctx.trace_id, 16) == 0);
    check(memcmp(back.parent_id, ctx.span_id, 8) == 0);
    check(back.sampling == (ctx.debug     ? PX_SAMPLE_DEBUG
                            : ctx.sampled ? PX_SAMPLE_ACCEPT
                                          : PX_SAMPLE_DROP));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    whole(p, size);
    as_headers(p, size);
    peer(p, size);
    return 0;
}
