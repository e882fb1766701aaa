/*
 * traces/trace-view.js - one trace (#/traces/<id>): the header (name, id, start, duration,
 * services, depth, span count, errors), the waterfall with the critical path, and the details
 * of the selected span beside it.
 */
import {apiGet} from '../api.js';
import {routeHref} from '../app.js';
import {errorBox, fmtMs, h, loading, replace} from '../ui.js';

import {criticalPath} from './critical-path.js';
import {buildTrace, serviceColors} from './model.js';
import {spanDetails} from './span-details.js';
import {waterfall} from './waterfall.js';

function fact(label, value, testid) {
    return h('div', {class: 'trace-fact'}, h('span', {class: 'muted'}, label),
             h('strong', {'data-testid': testid}, value));
}

function header(trace) {
    const start = new Date(trace.start / 1000);
    return h('header', {class: 'trace-header'},
             h('div', {class: 'trace-title'},
               h('a', {href: routeHref('traces', {service: trace.root ? trace.root.service : ''}),
                       class: 'back'}, '← Search'),
               h('h1', {'data-testid': 'trace-name'}, trace.name),
               h('span', {class: 'mono muted', 'data-testid': 'trace-id'}, trace.traceID)),
             h('div', {class: 'trace-facts'},
               fact('Start', `${start.toLocaleDateString()} ${start.toLocaleTimeString([], {hour12: false})}`,
                    'trace-start'),
               fact('Duration', fmtMs(trace.duration / 1000), 'trace-duration'),
               fact('Services', String(trace.services.length), 'trace-services'),
               fact('Depth', String(trace.depth), 'trace-depth'),
               fact('Total spans', String(trace.spans.length), 'trace-span-count'),
               trace.errorCount ? fact('Errors', String(trace.errorCount), 'trace-error-count') : null));
}

export function mountTrace(el, route) {
    const id = route.path[1];
    let alive = true;
    const ctl = new AbortController();
    el.append(loading('the trace'));

    function show(trace) {
        const colors = serviceColors(trace.services.map((s) => s.name));
        const side = h('aside', {class: 'panel trace-side', 'data-testid': 'trace-side'},
                       h('p', {class: 'muted'}, 'Select a span to see its tags, events and references.'));
        const wf = waterfall(trace, colors, criticalPath(trace.raw.spans || []), (sp) => {
            replace(side, spanDetails(sp, trace, (sid) => wf.select(sid)));
        });
        const legend = h('ul', {class: 'trace-legend'},
                         trace.services.map((s) => h('li', null, h('span', {class: 'wf-swatch',
                                                                          style: `background:${colors.get(s.name)}`}),
                                                     `${s.name} (${s.count})`)),
                         h('li', {class: 'crit-key'}, h('span', {class: 'crit-swatch'}), 'critical path'));
        replace(el, h('div', {class: 'trace-view'}, header(trace),
                      h('div', {class: 'toolbar'}, legend,
                        h('button', {type: 'button', onclick: () => wf.expandAll()}, 'Expand all'),
                        h('button', {type: 'button', onclick: () => wf.collapseAll()}, 'Collapse all')),
                      h('div', {class: 'trace-body'}, h('div', {class: 'panel trace-main'}, wf.el), side)));
    }

    (async () => {
        try {
            const res = await apiGet(`/api/traces/${encodeURIComponent(id)}`, null, ctl.signal);
            const raw = res && res.data && res.data[0];
            if (!alive) {
                return;
            }
            if (!raw) {
                throw new Error(`trace ${id} not found`);
            }
            show(buildTrace(raw));
        } catch (e) {
            if (alive && e.name !== 'AbortError') {
                replace(el, h('div', {class: 'trace-view'},
                              h('a', {href: routeHref('traces', {}), class: 'back'}, '← Search'),
                              errorBox(e, `Trace ${id}`)));
            }
        }
    })();

    return {
        update(r) {
            return r.path.length > 1 && r.path[1] === id;
        },
        unmount() {
            alive = false;
            ctl.abort();
        },
    };
}
