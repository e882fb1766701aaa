/*
 * graph/style.js - how the graph looks: the cytoscape stylesheet (Kiali's node shapes by node
 * type, node border by health, edge colour by error share), the health rules used for edges,
 * and the text of node and edge labels (edge label choice, badges). Colours are the shell's
 * palette (style.css :root) so the graph, the legend and the side panel agree.
 */
import {fmtBytes, fmtMs, fmtPercent, fmtRate} from '../ui.js';

/* Edges drawn straight above this many (see stylesheet: edge.dense). */
export const DENSE_EDGES = 300;

export const COLORS = {
    healthy: '#2e7d32',
    degraded: '#e39e00',
    failure: '#c62828',
    idle: '#9aa3ae',
    na: '#4a5568',
    edge: '#6c9a72',
    tcp: '#3b78c2',
    text: '#1d2330',
    box: '#eef1f5',
    accent: '#1f6feb',
};

/* Kiali's shapes: workloads are circles, apps rounded squares, services triangles, traffic
 * from outside the mesh a circle too (drawn dashed), an app's versions sit in its box. */
export const SHAPES = {
    workload: 'ellipse',
    app: 'round-rectangle',
    service: 'round-triangle',
    unknown: 'ellipse',
    box: 'round-rectangle',
};

/* Istio's traffic-management features present on a node, as small glyphs under its name. The
 * glyphs are the ones DejaVu Sans draws, the font Debian's chromium falls back to. */
export const BADGES = [
    ['hasVS', '⎇', 'VirtualService'],
    ['hasCB', '⚡', 'Circuit breaker'],
    ['hasFaultInjection', '⊘', 'Fault injection'],
    ['hasTrafficShifting', '⇄', 'Traffic shifting'],
    ['hasRequestTimeout', '◷', 'Request timeout'],
    ['hasMirroring', '⇉', 'Mirroring'],
    ['hasMissingSC', '⚠', 'Missing sidecar'],
];

function num(s) {
    const v = parseFloat(s);
    return Number.isFinite(v) ? v : 0;
}

/* An edge's requests split by class, in percent of the edge, from its `responses`. */
export function responseShares(edgeData) {
    const out = {ok: 0, e4xx: 0, e5xx: 0};
    const responses = (edgeData.traffic && edgeData.traffic.responses) || {};
    for (const [code, r] of Object.entries(responses)) {
        const pct = Object.values((r && r.flags) || {}).reduce((a, v) => a + num(v), 0);
        if (code.startsWith('4')) {
            out.e4xx += pct;
        } else if (code.startsWith('5') || code === '0') {
            out.e5xx += pct;
        } else {
            out.ok += pct;
        }
    }
    return out;
}

/* Kiali's default tolerances, as the API applies them to nodes (docs/graph.md "Health"):
 * 'failure', 'degraded', 'healthy' for an HTTP edge; 'tcp' for a TCP edge. */
export function edgeHealth(edgeData) {
    const t = edgeData.traffic || {};
    if (t.protocol === 'tcp') {
        return 'tcp';
    }
    const s = responseShares(edgeData);
    if (s.e5xx >= 10 || s.e4xx >= 20) {
        return 'failure';
    }
    if (s.e5xx > 0 || s.e4xx >= 10) {
        return 'degraded';
    }
    return 'healthy';
}

/* The API's node health -> the class the stylesheet colours by. */
export function nodeHealth(nodeData) {
    switch (nodeData.health) {
    case 'Healthy':
        return 'healthy';
    case 'Degraded':
        return 'degraded';
    case 'Failure':
        return 'failure';
    default:
        return nodeData.traffic && nodeData.traffic.length > 0 ? 'na' : 'idle';
    }
}

/* The node's display name by type (a version node inside its app box shows its version). */
export function nodeName(d) {
    switch (d.nodeType) {
    case 'workload':
        return d.workload || d.app || d.service || d.id;
    case 'app':
    case 'box':
        return d.app || d.workload || d.id;
    case 'service':
        return d.service || d.app || d.id;
    case 'unknown':
        return 'unknown';
    default:
        return d.workload || d.app || d.service || d.id;
    }
}

export function nodeLabel(d, {badges, namespaces}) {
    let name = nodeName(d);
    if (d.nodeType === 'app' && d.parent && d.version) {
        name = d.version;
    } else if (d.nodeType === 'app' && d.version && d.version !== 'unknown' && d.version !== 'latest') {
        name = `${name} ${d.version}`;
    }
    const lines = [name];
    if (d.namespace && d.nodeType !== 'unknown' && namespaces && !namespaces.includes(d.namespace)) {
        lines.push(`(${d.namespace})`);
    }
    if (badges) {
        const glyphs = BADGES.filter(([k]) => d[k] === true || d[k] === 'true').map(([, g]) => g);
        if (glyphs.length > 0) {
            lines.push(glyphs.join(' '));
        }
    }
    return lines.join('\n');
}

/* The edge's label for the toolbar's choice ('' when nothing to show). */
export function edgeLabel(d, choice) {
    const t = d.traffic || {};
    const r = t.rates || {};
    if (choice === 'none') {
        return '';
    }
    if (t.protocol === 'tcp') {
        return choice === 'rps' || choice === 'throughput' ? `${fmtBytes(num(r.tcp))}/s` : '';
    }
    switch (choice) {
    case 'rps':
        return fmtRate(num(r.http));
    case 'errors':
        return r.httpPercentErr ? fmtPercent(num(r.httpPercentErr)) : '';
    case 'throughput':
        return d.throughput ? `${fmtBytes(num(d.throughput))}/s` : '';
    default:
        return d.responseTime !== undefined ? fmtMs(num(d.responseTime)) : '';
    }
}

export function stylesheet() {
    return [
        {
            selector: 'node',
            style: {
                'shape': 'ellipse',
                'width': 34,
                'height': 34,
                'background-color': '#ffffff',
                'border-width': 3,
                'border-color': COLORS.healthy,
                'label': 'data(_label)',
                'text-wrap': 'wrap',
                'text-valign': 'bottom',
                'text-margin-y': 5,
                'font-size': 11,
                'color': COLORS.text,
                'text-background-color': '#ffffff',
                'text-background-opacity': 0.85,
                'text-background-padding': 2,
                'text-background-shape': 'round-rectangle',
                'min-zoomed-font-size': 7,
            },
        },
        /* Shapes by selector, not by a style function: cytoscape caches these. */
        ...Object.entries(SHAPES).map(([type, shape]) => ({selector: `node[nodeType = "${type}"]`,
                                                           style: {shape}})),
        {selector: 'node.h-degraded', style: {'border-color': COLORS.degraded}},
        {selector: 'node.h-failure',
         style: {'border-color': COLORS.failure, 'background-color': '#fdecea'}},
        {selector: 'node.h-na', style: {'border-color': COLORS.na}},
        {selector: 'node.h-idle', style: {'border-color': COLORS.idle, 'color': COLORS.idle}},
        {selector: 'node[nodeType = "unknown"]',
         style: {'border-style': 'dashed', 'border-color': COLORS.na}},
        {selector: 'node[nodeType = "service"]', style: {'width': 38, 'height': 34}},
        {
            selector: 'node[nodeType = "box"]',
            style: {
                'shape': 'round-rectangle',
                'background-color': COLORS.box,
                'background-opacity': 0.6,
                'border-width': 1,
                'border-style': 'dashed',
                'border-color': '#8a96a6',
                'padding': 12,
                'text-valign': 'top',
                'text-halign': 'center',
                'text-margin-y': -4,
                'font-weight': 600,
            },
        },
        {
            selector: 'edge',
            style: {
                'width': 2,
                'curve-style': 'bezier',
                'line-color': COLORS.edge,
                'target-arrow-color': COLORS.edge,
                'target-arrow-shape': 'triangle',
                'arrow-scale': 1.1,
                'label': 'data(_label)',
                'font-size': 10,
                'color': COLORS.text,
                'text-background-color': '#ffffff',
                'text-background-opacity': 0.9,
                'text-background-padding': 2,
                'text-rotation': 'none',
                'min-zoomed-font-size': 7,
            },
        },
        /* Hundreds of edges: straight lines cost a fraction of bezier control points to lay
         * out and draw (edges both ways between two nodes then share one line, the arrowheads
         * still tell them apart). */
        {selector: 'edge.dense', style: {'curve-style': 'straight'}},
        {selector: 'edge.h-degraded',
         style: {'line-color': COLORS.degraded, 'target-arrow-color': COLORS.degraded}},
        {selector: 'edge.h-failure',
         style: {'line-color': COLORS.failure, 'target-arrow-color': COLORS.failure}},
        {selector: 'edge.h-tcp',
         style: {'line-color': COLORS.tcp, 'target-arrow-color': COLORS.tcp, 'line-style': 'dashed'}},
        {
            selector: 'node:selected',
            style: {'underlay-color': COLORS.accent, 'underlay-opacity': 0.3, 'underlay-padding': 7,
                    'underlay-shape': 'ellipse'},
        },
        {selector: 'edge:selected', style: {'width': 4, 'underlay-color': COLORS.accent, 'underlay-opacity': 0.25,
                                            'underlay-padding': 4}},
        {selector: '.found',
         style: {'overlay-color': '#f5b700', 'overlay-opacity': 0.35, 'overlay-padding': 6}},
        {selector: '.gone', style: {'display': 'none'}},
    ];
}
