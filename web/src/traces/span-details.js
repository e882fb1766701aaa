/*
 * traces/span-details.js - everything one span says: service, operation, when it started
 * relative to the trace and how long it took, its tags, its process's tags, its events (logs)
 * at their offsets, its references, and a link to the service in the graph.
 */
import {routeHref} from '../app.js';
import {fmtMs, h} from '../ui.js';

import {spanNamespace} from './model.js';

function fmtValue(v) {
    if (v === null || v === undefined) {
        return '';
    }
    return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

function kvTable(rows, testid) {
    if (rows.length === 0) {
        return h('p', {class: 'muted'}, 'none');
    }
    return h('table', {class: 'data kv', 'data-testid': testid},
             h('tbody', null, rows.map((t) => h('tr', {dataset: {key: t.key}}, h('th', {scope: 'row'}, t.key),
                                                  h('td', {class: 'mono'}, fmtValue(t.value))))));
}

/* span: a model span; trace: the built trace; onSelect(spanId) follows a reference. */
export function spanDetails(span, trace, onSelect) {
    const ns = spanNamespace(span);
    const graphHref = routeHref('graph', {namespaces: ns, focus: span.service});
    const offset = (span.start - trace.start) / 1000;
    const refs = span.references.map((r) => {
        const inTrace = r.traceID === trace.traceID && trace.byId.has(r.spanID);
        return h('li', null, h('span', {class: 'muted'}, `${r.refType} `),
                 inTrace ? h('button', {type: 'button', class: 'link mono', onclick: () => onSelect(r.spanID)}, r.spanID)
                         : h('span', {class: 'mono'}, `${r.spanID} (not in this trace)`));
    });
    const logs = span.logs.map((l) => h('li', {class: 'span-log'},
                                       h('span', {class: 'span-log-time'}, fmtMs((l.timestamp - trace.start) / 1000)),
                                       kvTable(l.fields || [], 'span-log-fields')));
    return h('div', {class: 'span-details', 'data-testid': 'span-details', dataset: {spanId: span.id}},
             h('h3', null, h('span', {class: 'span-details-service'}, span.service), ': ', span.operation),
             span.error ? h('p', {class: 'span-details-error'}, 'This span failed (error=true).') : null,
             span.orphan ? h('p', {class: 'muted'}, `Its parent ${span.parentRef} is not in this trace.`) : null,
             h('dl', {class: 'span-facts'},
               h('dt', null, 'Service'), h('dd', null, span.service),
               h('dt', null, 'Operation'), h('dd', null, span.operation),
               h('dt', null, 'Start'), h('dd', {'data-testid': 'span-start'}, `+${fmtMs(offset)}`),
               h('dt', null, 'Duration'), h('dd', {'data-testid': 'span-duration'}, fmtMs(span.duration / 1000)),
               h('dt', null, 'Span ID'), h('dd', {class: 'mono'}, span.id)),
             h('a', {class: 'graph-link', href: graphHref, 'data-testid': 'span-graph-link'},
               `Show ${span.service} in the graph`),
             h('h4', null, 'Tags'), kvTable(span.tags, 'span-tags'),
             h('h4', null, 'Process'), kvTable(span.processTags, 'span-process'),
             h('h4', null, `Events (${span.logs.length})`),
             logs.length ? h('ol', {class: 'span-logs'}, logs) : h('p', {class: 'muted'}, 'none'),
             h('h4', null, 'References'),
             refs.length ? h('ul', {class: 'span-refs'}, refs) : h('p', {class: 'muted'}, 'none (a root span)'));
}
