/*
 * fixture.mjs - the data the browser tests feed a real collector, and what follows from it.
 *
 * A bookinfo-shaped mesh in namespace "bookinfo" behind istio-ingressgateway (istio-system):
 * Istio's standard metrics (both reporters, as weft's proxies emit them) go in as Prometheus
 * text with timestamps through /api/v1/import/prometheus, one sample per 15 s over the last
 * 20 minutes at constant rates, so every rate() over the windows the UI offers is exact; spans
 * go in as OTLP/HTTP JSON through /v1/traces: CLIENT + SERVER span per hop, as the proxies
 * record them. EDGES and TRACES are what the specs check the pages against.
 */

export const NAMESPACE = 'bookinfo';
export const STEP_S = 15;
export const SPAN_MIN = 20;

/* name: workload; app/version/service as Istio labels them. */
export const WORKLOADS = {
    'istio-ingressgateway': {ns: 'istio-system', app: 'istio-ingressgateway', version: 'unknown',
                             service: 'istio-ingressgateway'},
    'productpage-v1': {ns: 'bookinfo', app: 'productpage', version: 'v1', service: 'productpage'},
    'details-v1': {ns: 'bookinfo', app: 'details', version: 'v1', service: 'details'},
    'reviews-v1': {ns: 'bookinfo', app: 'reviews', version: 'v1', service: 'reviews'},
    'reviews-v2': {ns: 'bookinfo', app: 'reviews', version: 'v2', service: 'reviews'},
    'reviews-v3': {ns: 'bookinfo', app: 'reviews', version: 'v3', service: 'reviews'},
    'ratings-v1': {ns: 'bookinfo', app: 'ratings', version: 'v1', service: 'ratings'},
};

/* Workload edges: requests per second by response code, and the duration bucket (le, ms)
 * every request of the edge falls in. reviews-v3 -> ratings-v1 is the erroring edge (50 % 500). */
export const EDGES = [
    {src: 'istio-ingressgateway', dst: 'productpage-v1', codes: {200: 6}, le: 50},
    {src: 'productpage-v1', dst: 'details-v1', codes: {200: 6}, le: 10},
    {src: 'productpage-v1', dst: 'reviews-v1', codes: {200: 2}, le: 25},
    {src: 'productpage-v1', dst: 'reviews-v2', codes: {200: 2}, le: 25},
    {src: 'productpage-v1', dst: 'reviews-v3', codes: {200: 1, 500: 1}, le: 25},
    {src: 'reviews-v2', dst: 'ratings-v1', codes: {200: 2}, le: 5},
    {src: 'reviews-v3', dst: 'ratings-v1', codes: {200: 1, 500: 1}, le: 5},
];

export const ERROR_EDGE = {src: 'reviews-v3', dst: 'ratings-v1'};
export const BUCKETS = [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];
export const REQUEST_BYTES = 300;
export const RESPONSE_BYTES = 2000;

export function edgeRate(e) {
    return Object.values(e.codes).reduce((a, b) => a + b, 0);
}

export function edgeErrorPercent(e) {
    const total = edgeRate(e);
    const bad = Object.entries(e.codes).filter(([c]) => Number(c) >= 500).reduce((a, [, v]) => a + v, 0);
    return (100 * bad) / total;
}

function workloadLabels(side, name) {
    const w = WORKLOADS[name];
    const p = side === 'source' ? 'source' : 'destination';
    return {
        [`${p}_workload`]: name,
        [`${p}_workload_namespace`]: w.ns,
        [`${p}_app`]: w.app,
        [`${p}_version`]: w.version,
        [`${p}_canonical_service`]: w.app,
        [`${p}_canonical_revision`]: w.version === 'unknown' ? 'latest' : w.version,
        [`${p}_principal`]: `spiffe://cluster.local/ns/${w.ns}/sa/bookinfo-${w.app}`,
        [`${p}_cluster`]: 'Kubernetes',
    };
}

function labelText(labels) {
    return '{' + Object.entries(labels).map(([k, v]) => `${k}="${String(v).replace(/[\\"]/g, '\\$&')}"`).join(',') + '}';
}

/* The Prometheus text of every series of the mesh at every step ending at nowMs. */
export function metricsText(nowMs) {
    const startMs = nowMs - SPAN_MIN * 60 * 1000;
    const lines = ['# TYPE istio_requests_total counter',
                   '# TYPE istio_request_duration_milliseconds histogram',
                   '# TYPE istio_request_bytes histogram', '# TYPE istio_response_bytes histogram'];
    for (const e of EDGES) {
        const dw = WORKLOADS[e.dst];
        for (const reporter of ['source', 'destination']) {
            for (const [code, rps] of Object.entries(e.codes)) {
                const base = {
                    reporter,
                    ...workloadLabels('source', e.src),
                    ...workloadLabels('destination', e.dst),
                    destination_service: `${dw.service}.${dw.ns}.svc.cluster.local`,
                    destination_service_name: dw.service,
                    destination_service_namespace: dw.ns,
                    request_protocol: 'http',
                    response_code: code,
                    grpc_response_status: '',
                    response_flags: '-',
                    connection_security_policy: reporter === 'destination' ? 'mutual_tls' : 'unknown',
                };
                for (let t = startMs; t <= nowMs; t += STEP_S * 1000) {
                    const n = Math.round((rps * (t - startMs)) / 1000);
                    lines.push(`istio_requests_total${labelText(base)} ${n} ${t}`);
                    for (const le of BUCKETS) {
                        lines.push(`istio_request_duration_milliseconds_bucket${labelText({...base, le})} ${le >= e.le ? n : 0} ${t}`);
                    }
                    lines.push(`istio_request_duration_milliseconds_bucket${labelText({...base, le: '+Inf'})} ${n} ${t}`);
                    lines.push(`istio_request_duration_milliseconds_sum${labelText(base)} ${n * e.le * 0.8} ${t}`);
                    lines.push(`istio_request_duration_milliseconds_count${labelText(base)} ${n} ${t}`);
                    lines.push(`istio_request_bytes_sum${labelText(base)} ${n * REQUEST_BYTES} ${t}`);
                    lines.push(`istio_request_bytes_count${labelText(base)} ${n} ${t}`);
                    lines.push(`istio_response_bytes_sum${labelText(base)} ${n * RESPONSE_BYTES} ${t}`);
                    lines.push(`istio_response_bytes_count${labelText(base)} ${n} ${t}`);
                }
            }
        }
    }
    return lines.join('\n') + '\n';
}

/* Traces: TRACES.ok requests gateway -> productpage -> reviews-v2 -> ratings (all 200) and
 * TRACES.failed gateway -> productpage -> reviews-v3 -> ratings where ratings answers 500.
 * Each hop is a CLIENT span (caller's proxy) and a SERVER span (callee's proxy): 6 spans per
 * trace. */
export const TRACES = {ok: 3, failed: 2, spansPerTrace: 6};

function hex(n, len) {
    let s = '';
    for (let i = 0; i < len; i++) {
        s += '0123456789abcdef'[Math.floor(Math.random() * 16)];
    }
    return n === undefined ? s : (s + n.toString(16)).slice(-len);
}

function attr(key, value) {
    return {key, value: {stringValue: String(value)}};
}

/* One trace's spans grouped by the service whose proxy recorded them. */
function traceSpans(traceId, startNs, failed) {
    const hops = [['istio-ingressgateway', 'productpage-v1', 9080, 40],
                  ['productpage-v1', failed ? 'reviews-v3' : 'reviews-v2', 9080, 20],
                  [failed ? 'reviews-v3' : 'reviews-v2', 'ratings-v1', 9080, 4]];
    const out = new Map(); /* workload -> spans */
    let parent = '';
    let t = startNs;
    for (const [src, dst, port, ms] of hops) {
        /* ratings fails, reviews passes the 500 on, productpage answers 200 (bookinfo's page degrades) */
        const code = failed && dst !== 'productpage-v1' ? 500 : 200;
        const dw = WORKLOADS[dst];
        const host = `${dw.service}.${dw.ns}.svc.cluster.local`;
        const clientId = hex(undefined, 16);
        const serverId = hex(undefined, 16);
        const end = t + BigInt(ms * 1e6);
        const tags = (wl) => [attr('http.method', 'GET'), attr('http.url', `http://${dw.service}:${port}/`),
                               attr('http.status_code', code), attr('upstream_cluster', `outbound|${port}||${host}`),
                               attr('istio.canonical_service', WORKLOADS[wl].app),
                               attr('istio.namespace', WORKLOADS[wl].ns), attr('component', 'proxy'),
                               attr('response_flags', '-')];
        const status = code >= 500 ? {code: 2} : {code: 0};
        const client = {traceId, spanId: clientId, parentSpanId: parent, name: `${host}:${port}/*`, kind: 3,
                        startTimeUnixNano: String(t), endTimeUnixNano: String(end), attributes: tags(src), status};
        const server = {traceId, spanId: serverId, parentSpanId: clientId, name: `${host}:${port}/*`, kind: 2,
                        startTimeUnixNano: String(t + 100000n), endTimeUnixNano: String(end - 100000n),
                        attributes: tags(dst), status};
        if (!out.has(src)) {
            out.set(src, []);
        }
        if (!out.has(dst)) {
            out.set(dst, []);
        }
        out.get(src).push(client);
        out.get(dst).push(server);
        parent = serverId;
        t += 200000n;
    }
    return out;
}

/* OTLP/HTTP JSON ExportTraceServiceRequest with every trace; returns {body, traceIds}. */
export function tracesRequest(nowMs) {
    const byWorkload = new Map();
    const traceIds = {ok: [], failed: []};
    for (let i = 0; i < TRACES.ok + TRACES.failed; i++) {
        const failed = i >= TRACES.ok;
        const traceId = hex(undefined, 32);
        (failed ? traceIds.failed : traceIds.ok).push(traceId);
        const startNs = BigInt(nowMs - 60000 + i * 5000) * 1000000n;
        for (const [wl, spans] of traceSpans(traceId, startNs, failed)) {
            if (!byWorkload.has(wl)) {
                byWorkload.set(wl, []);
            }
            byWorkload.get(wl).push(...spans);
        }
    }
    const resourceSpans = [...byWorkload.entries()].map(([wl, spans]) => ({
        resource: {attributes: [attr('service.name', WORKLOADS[wl].app), attr('service.namespace', WORKLOADS[wl].ns),
                                attr('service.version', WORKLOADS[wl].version)]},
        scopeSpans: [{scope: {name: 'weft-proxy'}, spans}],
    }));
    return {body: {resourceSpans}, traceIds};
}

/* Feed the collector at base (http://127.0.0.1:PORT); returns {nowMs, traceIds}. */
export async function feed(base) {
    const nowMs = Date.now();
    let res = await fetch(`${base}/api/v1/import/prometheus`, {method: 'POST', body: metricsText(nowMs),
                                                               headers: {'Content-Type': 'text/plain'}});
    if (!res.ok) {
        throw new Error(`import: HTTP ${res.status}: ${await res.text()}`);
    }
    const tr = tracesRequest(nowMs);
    res = await fetch(`${base}/v1/traces`, {method: 'POST', body: JSON.stringify(tr.body),
                                            headers: {'Content-Type': 'application/json'}});
    if (!res.ok) {
        throw new Error(`traces: HTTP ${res.status}: ${await res.text()}`);
    }
    return {nowMs, traceIds: tr.traceIds};
}
