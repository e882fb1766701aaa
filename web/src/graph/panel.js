/*
 * graph/panel.js - the side panel of the selected node or edge: who it is, its health, its
 * rates, error share, response codes and mTLS share from the graph's own data, charts over the
 * window (request rate, error rate, p95 latency) from /api/v1/query_range with the queries
 * Kiali uses, and a link to its traces.
 *
 * Which telemetry counts follows docs/graph.md: a request is taken from the source proxy's
 * report, or from the destination proxy's when the caller is outside the mesh
 * (source_workload="unknown"), so a request seen by both proxies counts once.
 */
import {apiGet} from '../api.js';
import {routeHref} from '../app.js';
import {timeChart} from '../charts.js';
import {errorBox, fmtBytes, fmtMs, fmtPercent, fmtRate, h, replace} from '../ui.js';
import {windowLabel} from './params.js';
import {edgeHealth, nodeHealth, nodeName} from './style.js';

function num(s) {
    const v = parseFloat(s);
    return Number.isFinite(v) ? v : 0;
}

function quote(v) {
    return `"${String(v).replace(/[\\"]/g, '\\$&').replace(/\n/g, '\\n')}"`;
}

/* The label matchers that pick a node's series on one side ('source' or 'destination'); a
 * value {re} is a regex matcher. */
export function nodeMatchers(d, side) {
    const m = {};
    const p = side === 'source' ? 'source' : 'destination';
    if (d.nodeType === 'unknown') {
        if (side === 'source') {
            m.source_workload = 'unknown';
        }
        return m;
    }
    if (d.nodeType === 'service') {
        if (side === 'source') {
            m.source_workload_namespace = d.namespace;
            m.source_canonical_service = d.service;
        } else {
            m.destination_service_namespace = d.namespace;
            m.destination_service_name = d.service;
        }
        return m;
    }
    m[`${p}_workload_namespace`] = d.namespace;
    if (d.nodeType === 'workload') {
        m[`${p}_workload`] = d.workload;
    } else {
        m[`${p}_canonical_service`] = d.app;
        if (d.nodeType === 'app' && d.parent && d.version) {
            m[`${p}_canonical_revision`] = d.version;
        }
    }
    return m;
}

function selector(metric, matchers) {
    const one = ([k, v]) => (typeof v === 'object' ? `${k}=~${quote(v.re)}` : `${k}=${quote(v)}`);
    return `${metric}{${Object.entries(matchers).map(one).join(',')}}`;
}

/* rate() of a metric over the series picked by matchers, counting each request once. */
export function selRate(metric, matchers, range) {
    const bySource = selector(metric, {reporter: 'source', ...matchers});
    const fromOutside = selector(metric, {reporter: 'destination', ...matchers, source_workload: 'unknown'});
    return `(rate(${bySource}[${range}]) or rate(${fromOutside}[${range}]))`;
}

/* Short enough for the charts' value axis. */
function perSecond(v) {
    return `${Number(v.toPrecision(3))}/s`;
}

/* The three charts' queries for a set of matchers. */
export function chartQueries(matchers, range) {
    return [
        {title: 'Request rate', fmt: perSecond,
         query: `sum(${selRate('istio_requests_total', matchers, range)})`},
        {title: 'Error rate (4xx, 5xx, no response)', fmt: perSecond,
         query: `sum(${selRate('istio_requests_total', {...matchers, response_code: {re: '[45]..|0'}},
                               range)}) or vector(0)`},
        {title: 'Response time p95', fmt: (v) => `${Number(v.toPrecision(3))} ms`,
         query: 'histogram_quantile(0.95, sum by (le) ' +
                `(${selRate('istio_request_duration_milliseconds_bucket', matchers, range)}))`},
    ];
}

function field(label, value, testid, cls) {
    return [h('dt', null, label), h('dd', {'data-testid': testid, class: cls}, value)];
}

/* Sum `responses` of several edges weighted by their rates -> [[code, flags, percent]]. */
function mergeResponses(edges) {
    const total = edges.reduce((a, e) => a + num(e.traffic && e.traffic.rates && e.traffic.rates.http), 0);
    const acc = new Map();
    for (const e of edges) {
        const rate = num(e.traffic && e.traffic.rates && e.traffic.rates.http);
        for (const [code, r] of Object.entries((e.traffic && e.traffic.responses) || {})) {
            for (const [flags, pct] of Object.entries((r && r.flags) || {})) {
                const k = `${code} ${flags}`;
                acc.set(k, (acc.get(k) || 0) + (rate * num(pct)) / 100);
            }
        }
    }
    return [...acc.entries()].map(([k, v]) => [...k.split(' '), total > 0 ? (100 * v) / total : 0])
        .sort((a, b) => b[2] - a[2]);
}

function responsesTable(rows) {
    if (rows.length === 0) {
        return h('p', {class: 'muted'}, 'No HTTP responses.');
    }
    return h('table', {class: 'data compact', 'data-testid': 'panel-responses'},
             h('thead', null, h('tr', null, h('th', null, 'Code'), h('th', null, 'Flags'),
                                h('th', {class: 'num'}, 'Share'))),
             h('tbody', null, rows.map(([code, flags, pct]) => h(
                 'tr', {class: /^[45]|^0$/.test(code) ? 'bad' : null}, h('td', null, code),
                 h('td', {class: 'mono'}, flags), h('td', {class: 'num'}, fmtPercent(pct))))));
}

/* Share of the edges' requests over mutual TLS, weighted by rate (null when no traffic). */
function mtlsShare(edges) {
    let total = 0;
    let secured = 0;
    for (const e of edges) {
        const t = e.traffic || {};
        const rate = num(t.protocol === 'tcp' ? t.rates && t.rates.tcp : t.rates && t.rates.http);
        total += rate;
        secured += (rate * num(e.isMTLS)) / 100;
    }
    return total > 0 ? (100 * secured) / total : null;
}

function healthWord(cls) {
    return {healthy: 'Healthy', degraded: 'Degraded', failure: 'Failure', na: 'No inbound traffic',
            idle: 'Idle', tcp: 'TCP'}[cls] || cls;
}

/* The panel in its container el -> {show(ele, settings), close(), destroy(), shownId()}. */
export function createPanel(el) {
    let charts = [];
    let abort = null;
    let shown = null; /* {id, chartsKey} */

    function destroyCharts() {
        for (const c of charts) {
            c.destroy();
        }
        charts = [];
        if (abort) {
            abort.abort();
            abort = null;
        }
    }

    async function drawCharts(box, matchers, settings) {
        const end = settings.queryTime || Math.floor(Date.now() / 1000);
        const start = end - settings.duration;
        const step = Math.max(15, Math.round(settings.duration / 60));
        const range = `${Math.max(60, 2 * step)}s`;
        abort = new AbortController();
        const signal = abort.signal;
        const slots = chartQueries(matchers, range).map((q) => {
            const slot = h('div', {class: 'graph-chart', 'data-testid': 'panel-chart'});
            box.append(h('div', {class: 'graph-chart-box'}, h('h4', null, q.title), slot));
            return {q, slot};
        });
        await Promise.all(slots.map(async ({q, slot}) => {
            try {
                const res = await apiGet('/api/v1/query_range', {query: q.query, start, end, step}, signal);
                if (signal.aborted) {
                    return; /* the panel moved on while the answer came */
                }
                const r = (res && res.data && res.data.result) || [];
                const points = r.length > 0 ? r[0].values.map(([t, v]) => [t, parseFloat(v)]) : [];
                if (points.length === 0) {
                    replace(slot, h('p', {class: 'muted'}, 'No data in this window.'));
                    return;
                }
                slot.dataset.points = String(points.length);
                charts.push(timeChart(slot, {series: [{label: q.title, points}], fmt: q.fmt, height: 110,
                                             width: Math.max(220, box.clientWidth - 4)}));
            } catch (e) {
                if (e.name !== 'AbortError') {
                    replace(slot, errorBox(e, 'Query failed'));
                }
            }
        }));
    }

    function tracesLink(service, settings, erroring) {
        const params = {service, lookback: windowLabel(settings.duration)};
        if (erroring) {
            params.tags = 'error=true';
        }
        return h('a', {href: routeHref('traces', params), 'data-testid': 'panel-traces',
                       class: 'graph-traces'},
                 erroring ? 'Traces with errors →' : 'Traces →');
    }

    /* A box's numbers are its versions' together. */
    function boxTraffic(node) {
        const sum = {};
        for (const c of node.children()) {
            for (const t of c.data('traffic') || []) {
                for (const [k, v] of Object.entries(t.rates || {})) {
                    sum[k] = num(sum[k]) + num(v);
                }
            }
        }
        return {http: sum};
    }

    function nodeBody(node, settings) {
        const d = node.data();
        const isBox = node.isParent();
        const traffic = isBox ? boxTraffic(node)
                              : Object.fromEntries((d.traffic || []).map((t) => [t.protocol, t.rates || {}]));
        const http = traffic.http || {};
        const inHttp = num(http.httpIn);
        const inErr = inHttp > 0 ? (100 * (num(http.httpIn4xx) + num(http.httpIn5xx))) / inHttp : null;
        const members = isBox ? node.children() : node;
        const inEdges = members.incomers('edge').map((e) => e.data());
        const outEdges = members.outgoers('edge').map((e) => e.data());
        const worst = ['failure', 'degraded', 'healthy', 'na', 'idle'];
        const childHas = (w) => node.children().some((c) => nodeHealth(c.data()) === w);
        const health = isBox ? worst.find(childHas) || 'idle' : nodeHealth(d);
        const mtls = mtlsShare(inEdges);
        const rows = [
            ...field('Type', d.nodeType === 'app' && d.parent ? 'app version'
                             : isBox ? 'app (all versions)' : d.nodeType, 'panel-type'),
            ...field('Namespace', d.namespace || '–', 'panel-namespace'),
            d.version ? field('Version', d.version, 'panel-version') : null,
            d.workload && d.nodeType !== 'workload' ? field('Workload', d.workload, 'panel-workload') : null,
            ...field('Health', healthWord(health), 'panel-health', `health-${health}`),
            ...field('Inbound', inHttp > 0 ? fmtRate(inHttp) : '–', 'panel-in'),
            ...field('Outbound', num(http.httpOut) > 0 ? fmtRate(num(http.httpOut)) : '–', 'panel-out'),
            ...field('Inbound errors', inErr === null ? '–' : fmtPercent(inErr), 'panel-errors'),
            traffic.tcp ? field('TCP in / out', `${fmtBytes(num(traffic.tcp.tcpIn))}/s / ` +
                                `${fmtBytes(num(traffic.tcp.tcpOut))}/s`, 'panel-tcp') : null,
            ...field('mTLS (inbound)', mtls === null ? '–' : fmtPercent(mtls), 'panel-mtls'),
        ];
        const service = d.nodeType === 'service' ? d.service : d.app || d.service;
        return {
            title: nodeName(d) + (d.nodeType === 'app' && d.parent && d.version ? ` ${d.version}` : ''),
            kind: 'node',
            rows,
            responses: mergeResponses(inEdges.length > 0 ? inEdges : []),
            responsesTitle: 'Inbound responses',
            matchers: nodeMatchers(d, inHttp > 0 || outEdges.length === 0 ? 'destination' : 'source'),
            chartsOf: inHttp > 0 || outEdges.length === 0 ? 'inbound' : 'outbound',
            traces: service && d.nodeType !== 'unknown'
                ? tracesLink(service, settings, inErr !== null && inErr > 0) : null,
        };
    }

    function edgeBody(edge, settings) {
        const d = edge.data();
        const s = edge.source().data();
        const t = edge.target().data();
        const traffic = d.traffic || {};
        const r = traffic.rates || {};
        const health = edgeHealth(d);
        const tcp = traffic.protocol === 'tcp';
        const rt = settings.edgeLabel.startsWith('rt') ? settings.edgeLabel.slice(2) : '95';
        const rows = [
            ...field('From', `${nodeName(s)}${s.namespace ? ` (${s.namespace})` : ''}`, 'panel-source'),
            ...field('To', `${nodeName(t)}${t.namespace ? ` (${t.namespace})` : ''}`, 'panel-target'),
            ...field('Protocol', traffic.protocol || '–', 'panel-protocol'),
            ...field('Health', healthWord(health), 'panel-health', `health-${health}`),
            ...field(tcp ? 'Bytes' : 'Requests', tcp ? `${fmtBytes(num(r.tcp))}/s` : fmtRate(num(r.http)),
                     'panel-rate'),
            tcp ? null : field('Share of source', fmtPercent(num(r.httpPercentReq)), 'panel-share'),
            tcp ? null : field('Errors', fmtPercent(num(r.httpPercentErr)), 'panel-errors'),
            tcp ? null : field(`Response time (${rt === 'avg' ? 'avg' : `p${rt}`})`,
                               d.responseTime === undefined ? '–' : fmtMs(num(d.responseTime)), 'panel-rt'),
            tcp ? null : field('Throughput', d.throughput ? `${fmtBytes(num(d.throughput))}/s` : '–',
                               'panel-throughput'),
            ...field('mTLS', d.isMTLS === undefined ? '–' : fmtPercent(num(d.isMTLS)), 'panel-mtls'),
        ];
        /* The caller's proxy records a span for every request on the edge, also those it
         * answered itself (a fault abort, no healthy upstream, a timeout), which the destination
         * never saw: an edge's traces are the caller's, unless the caller has no proxy. */
        const serviceOf = (x) => (x.nodeType === 'service' ? x.service : x.app || x.service);
        const traceService = s.nodeType !== 'unknown' && serviceOf(s) ? serviceOf(s) : serviceOf(t);
        return {
            title: `${nodeName(s)} → ${nodeName(t)}`,
            kind: 'edge',
            rows,
            responses: tcp ? [] : mergeResponses([d]),
            responsesTitle: 'Responses',
            matchers: {...nodeMatchers(s, 'source'), ...nodeMatchers(t, 'destination')},
            chartsOf: 'edge',
            traces: traceService ? tracesLink(traceService, settings, num(r.httpPercentErr) > 0) : null,
        };
    }

    /* Show ele (a cytoscape node or edge, or null to close). Charts are fetched again only when
     * the element or the window changes, so a data refresh does not flicker them. */
    function show(ele, settings) {
        if (!ele || ele.removed()) {
            close();
            return;
        }
        const body = ele.isNode() ? nodeBody(ele, settings) : edgeBody(ele, settings);
        const chartsKey = [ele.id(), settings.duration, settings.queryTime,
                           JSON.stringify(body.matchers)].join('|');
        const keepCharts = shown && shown.chartsKey === chartsKey && el.querySelector('.graph-charts');
        const chartBox = keepCharts ? el.querySelector('.graph-charts') : h('div', {class: 'graph-charts'});
        if (!keepCharts) {
            destroyCharts();
        }
        el.hidden = false;
        replace(el,
                h('div', {class: 'graph-panel-head'},
                  h('h3', {'data-testid': 'panel-title'}, body.title),
                  h('button', {type: 'button', class: 'link', 'aria-label': 'Close panel',
                               'data-testid': 'panel-close',
                               onclick: () => ele.cy() && ele.cy().elements().unselect()}, '✕')),
                h('dl', {class: 'graph-fields'}, body.rows),
                body.traces,
                h('h4', null, body.responsesTitle),
                responsesTable(body.responses),
                h('h4', null, `Over the last ${windowLabel(settings.duration)} (${body.chartsOf})`),
                chartBox);
        el.dataset.kind = body.kind;
        el.dataset.id = ele.id();
        if (!keepCharts) {
            drawCharts(chartBox, body.matchers, settings);
        }
        shown = {id: ele.id(), chartsKey};
    }

    function close() {
        destroyCharts();
        shown = null;
        el.hidden = true;
        el.replaceChildren();
        delete el.dataset.id;
    }

    return {show, close, destroy: close, shownId: () => (shown ? shown.id : null)};
}
