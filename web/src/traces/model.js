/*
 * traces/model.js - a Jaeger trace (the query API's JSON) as the pages use it: spans with
 * their service, tags and parent in the trace, the tree of parent links in display order
 * (depth first, children by start time; spans whose parent is not in the trace are roots,
 * marked as orphans), and the figures a trace is summed up by (services with their span
 * counts, errors, depth, start, duration).
 */

/* A Jaeger tag list -> its value for key, or undefined. */
export function tagValue(tags, key) {
    const t = (tags || []).find((x) => x.key === key);
    return t ? t.value : undefined;
}

/* Jaeger marks a failed span with the tag error=true (a bool, or the string from some
 * clients). */
export function isErrorSpan(span) {
    const v = tagValue(span.tags, 'error');
    return v === true || v === 'true';
}

/* raw Jaeger trace -> {traceID, spans (display order), byId, start, end, duration (µs),
 * services: [{name, count}], errorCount, depth, root, name} */
export function buildTrace(raw) {
    const processes = raw.processes || {};
    const byId = new Map();
    for (const s of raw.spans || []) {
        const proc = processes[s.processID] || {serviceName: 'unknown', tags: []};
        byId.set(s.spanID, {
            id: s.spanID,
            raw: s,
            service: proc.serviceName,
            processTags: proc.tags || [],
            operation: s.operationName,
            start: s.startTime,
            duration: s.duration,
            end: s.startTime + s.duration,
            tags: s.tags || [],
            logs: s.logs || [],
            references: s.references || [],
            error: isErrorSpan(s),
            parent: null,
            parentRef: null,
            children: [],
            depth: 0,
            orphan: false,
            index: 0,
            descendants: 0,
        });
    }
    const roots = [];
    for (const sp of byId.values()) {
        const ref = sp.references.find((r) => r.refType === 'CHILD_OF') || sp.references[0];
        sp.parentRef = ref ? ref.spanID : null;
        const parent = ref && ref.spanID !== sp.id ? byId.get(ref.spanID) : undefined;
        if (parent) {
            sp.parent = parent;
            parent.children.push(sp);
        } else {
            sp.orphan = Boolean(ref);
            roots.push(sp);
        }
    }
    const byStart = (a, b) => a.start - b.start || a.id.localeCompare(b.id);
    roots.sort((a, b) => (a.orphan - b.orphan) || byStart(a, b));
    const spans = [];
    let depth = 0;
    /* Depth first without recursion: a deep trace must not exhaust the stack. */
    const stack = roots.slice().reverse().map((s) => ({span: s, level: 0}));
    const visited = new Set();
    while (stack.length > 0) {
        const {span, level} = stack.pop();
        if (visited.has(span)) {
            continue;
        }
        visited.add(span);
        span.depth = level;
        span.index = spans.length;
        spans.push(span);
        depth = Math.max(depth, level + 1);
        span.children.sort(byStart);
        for (let i = span.children.length - 1; i >= 0; i--) {
            stack.push({span: span.children[i], level: level + 1});
        }
    }
    /* Spans in a parent cycle were never reached from a root: show them as orphans. */
    for (const sp of byId.values()) {
        if (!visited.has(sp)) {
            sp.orphan = true;
            sp.parent = null;
            sp.children = [];
            sp.depth = 0;
            sp.index = spans.length;
            spans.push(sp);
            visited.add(sp);
        }
    }
    /* Descendants are the contiguous run after a span in depth-first order. */
    for (let i = spans.length - 1; i >= 0; i--) {
        let n = 0;
        for (const c of spans[i].children) {
            if (c.index > i) {
                n += 1 + c.descendants;
            }
        }
        spans[i].descendants = n;
    }
    let start = Infinity;
    let end = -Infinity;
    const counts = new Map();
    let errorCount = 0;
    for (const sp of spans) {
        start = Math.min(start, sp.start);
        end = Math.max(end, sp.end);
        counts.set(sp.service, (counts.get(sp.service) || 0) + 1);
        errorCount += sp.error ? 1 : 0;
    }
    const root = spans[0] || null;
    return {
        traceID: raw.traceID,
        raw,
        spans,
        byId,
        start: spans.length ? start : 0,
        end: spans.length ? end : 0,
        duration: spans.length ? end - start : 0,
        services: [...counts.entries()].map(([name, count]) => ({name, count}))
            .sort((a, b) => a.name.localeCompare(b.name)),
        errorCount,
        depth,
        root,
        name: root ? `${root.service}: ${root.operation}` : '(no spans)',
    };
}

/* Calm, distinct colours (Tableau 10 without its red, which marks errors here). */
const SERVICE_PALETTE = ['#4e79a7', '#59a14f', '#f28e2b', '#b07aa1', '#76b7b2', '#edc948', '#9c755f',
                         '#86bcb6', '#d4a6c8', '#a0cbe8'];

/* A stable colour per service name in a trace: the services sorted, the palette in order, then
 * hues spread around the circle for more services than it has. */
export function serviceColors(names) {
    const sorted = [...new Set(names)].sort();
    const map = new Map();
    sorted.forEach((n, i) => {
        map.set(n, i < SERVICE_PALETTE.length ? SERVICE_PALETTE[i]
                                              : `hsl(${Math.round((i * 137.5) % 360)} 40% 55%)`);
    });
    return map;
}

/* The namespace a span ran in: Istio's tag on the span, else the process's
 * service.namespace / k8s.namespace.name. */
export function spanNamespace(span) {
    return tagValue(span.tags, 'istio.namespace') || tagValue(span.processTags, 'service.namespace') ||
        tagValue(span.processTags, 'k8s.namespace.name') || '';
}
