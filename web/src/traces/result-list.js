/*
 * traces/result-list.js - the search results as a list, one card per trace as Jaeger UI shows
 * them: the root's service and operation, span count, errors, the services with their span
 * counts, a duration bar relative to the longest trace found, the start time; sorted as asked.
 */
import {routeHref} from '../app.js';
import {fmtMs, h} from '../ui.js';

import {serviceColors} from './model.js';

const SORTERS = {
    recent: (a, b) => b.start - a.start,
    longest: (a, b) => b.duration - a.duration,
    shortest: (a, b) => a.duration - b.duration,
    spans: (a, b) => b.spans.length - a.spans.length || b.start - a.start,
};

export function sortTraces(traces, sort) {
    return traces.slice().sort(SORTERS[sort] || SORTERS.recent);
}

/* "3 minutes ago", "2 hours ago" for the start of a trace. */
function ago(ms, nowMs) {
    const s = Math.max(0, Math.round((nowMs - ms) / 1000));
    if (s < 60) {
        return `${s} s ago`;
    }
    if (s < 3600) {
        return `${Math.round(s / 60)} min ago`;
    }
    if (s < 86400) {
        return `${Math.round(s / 3600)} h ago`;
    }
    return `${Math.round(s / 86400)} d ago`;
}

function fmtDate(ms) {
    const d = new Date(ms);
    const today = new Date();
    const time = d.toLocaleTimeString([], {hour12: false});
    return d.toDateString() === today.toDateString() ? time : `${d.toLocaleDateString()} ${time}`;
}

/* Built traces (already sorted) -> the list element. */
export function resultList(traces) {
    const longest = Math.max(1, ...traces.map((t) => t.duration));
    const nowMs = Date.now();
    const colors = serviceColors(traces.flatMap((t) => t.services.map((s) => s.name)));
    return h('ol', {class: 'trace-results', 'data-testid': 'trace-results'}, traces.map((t) => {
        const pct = (100 * t.duration) / longest;
        return h('li', {class: 'trace-result' + (t.errorCount ? ' has-errors' : ''),
                        dataset: {traceId: t.traceID, duration: t.duration}},
                 h('a', {class: 'trace-result-head', href: routeHref(['traces', t.traceID])},
                   h('span', {class: 'trace-result-bar', style: `width:${pct.toFixed(2)}%`}),
                   h('span', {class: 'trace-result-name'}, t.name,
                     h('span', {class: 'muted mono trace-result-id'}, t.traceID.slice(0, 7))),
                   h('span', {class: 'trace-result-duration'}, fmtMs(t.duration / 1000))),
                 h('div', {class: 'trace-result-body'},
                   h('div', {class: 'trace-result-counts'},
                     h('span', {class: 'badge'}, `${t.spans.length} span${t.spans.length === 1 ? '' : 's'}`),
                     t.errorCount ? h('span', {class: 'badge error', 'data-testid': 'trace-errors'},
                                      `${t.errorCount} error${t.errorCount === 1 ? '' : 's'}`) : null),
                   h('ul', {class: 'trace-result-services'}, t.services.map((s) =>
                       h('li', {class: 'service-chip', style: `border-left-color:${colors.get(s.name)}`},
                         `${s.name} (${s.count})`))),
                   h('div', {class: 'trace-result-time'},
                     h('span', null, fmtDate(t.start / 1000)),
                     h('span', {class: 'muted'}, ago(t.start / 1000, nowMs)))));
    }));
}
