/*
 * col_trace_adjust.h - the corrections Jaeger's query service makes to a trace before any API
 * answers with it (Jaeger v2's standard adjusters, cmd/jaeger/internal/extension/jaegerquery/
 * internal/adjuster), so that weft's Jaeger v1 and api_v3 answers show the same trace:
 *
 *   1. client/server spans sharing one span id (Zipkin's shared spans): the server span gets
 *      a new id, unused in the trace, counting up from 0000000000000001, and the shared id as
 *      its parent; spans whose parent was the server span follow it to the new id;
 *   2. attributes (span, resource, event) sorted by key, events by name (stable); link
 *      attributes keep their order (Jaeger sorts them too, but only api_v3 shows them and
 *      clients compare them in the order the SDK recorded);
 *   3. spans identical in every field, resource and scope included, kept once;
 *   4. the attributes "ip" and "peer.ipv4" holding an integer or a double shown as a dotted
 *      IPv4 address;
 *   5. telemetry.sdk.* and telemetry.distro.* span attributes moved to the span's resource
 *      (kept on the span when the resource has the key with another value);
 *   6. links whose trace id is all zeros removed.
 *
 * Jaeger's clock-skew adjuster is not applied, and its warnings are not kept. Any thread; the
 * list is changed in place, new arrays live in its arena.
 */
#ifndef COL_TRACE_ADJUST_H
#define COL_TRACE_ADJUST_H

#include "st_span.h"

void col_trace_adjust(st_span_list_t *l);

#endif
