/*
 * graph/params.js - the graph page's settings and how they live in the route: every choice of
 * the toolbar is a parameter of `#/graph?...`, so a link or a reload restores the same view.
 * parseParams() reads a route's URLSearchParams into a settings object with defaults filled in
 * and unknown values replaced by the default; toParams() writes only what differs from the
 * defaults, which keeps shared links short. `queryTime` draws the graph as it was at a past time
 * (Unix seconds), as the API's parameter of the same name does.
 */

export const GRAPH_TYPES = [
    ['versionedApp', 'Versioned app'],
    ['app', 'App'],
    ['workload', 'Workload'],
    ['service', 'Service'],
];

/* Seconds -> label; the API's `duration` takes seconds. */
export const WINDOWS = [[60, '1m'], [300, '5m'], [600, '10m'], [1800, '30m'], [3600, '1h'],
                        [21600, '6h']];

/* Seconds, 0 = off. */
export const REFRESHES = [[0, 'Off'], [10, '10s'], [15, '15s'], [30, '30s'], [60, '1m']];

/* Edge label choices; the response-time ones name the API's `responseTime` parameter. */
export const EDGE_LABELS = [
    ['none', 'No edge labels', null],
    ['rps', 'Request rate', null],
    ['errors', 'Error %', null],
    ['rtavg', 'Response time (avg)', 'avg'],
    ['rt50', 'Response time (p50)', '50'],
    ['rt95', 'Response time (p95)', '95'],
    ['rt99', 'Response time (p99)', '99'],
    ['throughput', 'Throughput', null],
];

export const DEFAULTS = {
    namespaces: null, /* null: every namespace with Istio request metrics */
    graphType: 'versionedApp',
    duration: 600,
    refresh: 15,
    edgeLabel: 'rt95',
    mtls: true,
    animation: false,
    badges: true,
    find: '',
    hide: '',
    focus: '',
    queryTime: 0, /* Unix seconds the graph is drawn at; 0: now */
};

function oneOf(v, choices, dflt) {
    const c = choices.find((x) => String(x[0]) === v);
    return c ? c[0] : dflt;
}

function flag(v, dflt) {
    if (v === '1' || v === 'true') {
        return true;
    }
    if (v === '0' || v === 'false') {
        return false;
    }
    return dflt;
}

/* URLSearchParams -> settings (every field set). */
export function parseParams(p) {
    const ns = p.get('namespaces');
    return {
        namespaces: ns === null ? null : ns.split(',').map((s) => s.trim()).filter(Boolean),
        graphType: oneOf(p.get('graphType'), GRAPH_TYPES, DEFAULTS.graphType),
        duration: oneOf(p.get('duration'), WINDOWS, DEFAULTS.duration),
        refresh: oneOf(p.get('refresh'), REFRESHES, DEFAULTS.refresh),
        edgeLabel: oneOf(p.get('edgeLabel'), EDGE_LABELS, DEFAULTS.edgeLabel),
        mtls: flag(p.get('mtls'), DEFAULTS.mtls),
        animation: flag(p.get('animation'), DEFAULTS.animation),
        badges: flag(p.get('badges'), DEFAULTS.badges),
        find: p.get('find') || '',
        hide: p.get('hide') || '',
        focus: p.get('focus') || '',
        queryTime: /^[0-9]{1,12}$/.test(p.get('queryTime') || '') ? Number(p.get('queryTime')) : 0,
    };
}

/* settings -> plain object for routeHref/replaceParams, defaults left out. */
export function toParams(s) {
    const out = {};
    for (const k of Object.keys(DEFAULTS)) {
        const v = s[k];
        if (k === 'namespaces') {
            if (v !== null) {
                out.namespaces = v.join(',');
            }
        } else if (v !== DEFAULTS[k]) {
            out[k] = typeof v === 'boolean' ? (v ? '1' : '0') : v;
        }
    }
    return out;
}

/* The API's responseTime parameter for an edge-label choice (p95 when the label is not a
 * response time, so that the panel still shows the usual figure). */
export function responseTimeParam(edgeLabel) {
    const c = EDGE_LABELS.find((e) => e[0] === edgeLabel);
    return (c && c[2]) || '95';
}

export function windowLabel(seconds) {
    const w = WINDOWS.find((x) => x[0] === seconds);
    return w ? w[1] : `${seconds}s`;
}
