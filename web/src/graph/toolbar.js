/*
 * graph/toolbar.js - the graph page's controls (namespaces, graph type, window, refresh, edge
 * labels, display toggles, find and hide, fit) and the legend. The toolbar owns no state: it
 * is drawn from the settings and reports every change as a patch through onChange(patch); the
 * page writes the patch into the route and applies it.
 */
import {h, replace} from '../ui.js';
import {EDGE_LABELS, GRAPH_TYPES, REFRESHES, WINDOWS} from './params.js';
import {BADGES, COLORS} from './style.js';

function select(testid, label, choices, value, onchange) {
    return h('label', null, label,
             h('select', {'data-testid': testid, onchange: (ev) => onchange(ev.target.value)},
               choices.map(([v, text]) => h('option', {value: String(v),
                                                       selected: String(v) === String(value)},
                                            text))));
}

function toggle(testid, label, checked, onchange) {
    return h('label', {class: 'graph-toggle'},
             h('input', {type: 'checkbox', 'data-testid': testid, checked,
                         onchange: (ev) => onchange(ev.target.checked)}),
             label);
}

function textFilter(testid, label, placeholder, value, onchange) {
    const input = h('input', {type: 'search', 'data-testid': testid, placeholder, value, size: 18,
                              'aria-label': label});
    let timer = 0;
    input.addEventListener('input', () => {
        clearTimeout(timer);
        timer = setTimeout(() => onchange(input.value.trim()), 250);
    });
    input.addEventListener('keydown', (ev) => {
        if (ev.key === 'Enter') {
            clearTimeout(timer);
            onchange(input.value.trim());
        }
    });
    return h('label', null, label, input);
}

/* The namespace multi-select: a disclosure with one checkbox per namespace. */
function namespacePicker(all, chosen, onchange) {
    const set = new Set(chosen);
    const text = (list) => (list.length === 0 ? 'none'
                            : list.length <= 2 ? list.join(', ') : `${list.length} namespaces`);
    const summary = h('strong', null, text(chosen));
    const boxes = all.map((ns) => h('label', {class: 'graph-ns-option'},
                                    h('input', {type: 'checkbox', value: ns, checked: set.has(ns),
                                                'data-testid': `graph-ns-${ns}`,
                                                onchange: (ev) => {
                                                    if (ev.target.checked) {
                                                        set.add(ns);
                                                    } else {
                                                        set.delete(ns);
                                                    }
                                                    const list = all.filter((x) => set.has(x));
                                                    replace(summary, text(list));
                                                    onchange(list);
                                                }}),
                                    ns));
    return h('details', {class: 'graph-ns', 'data-testid': 'graph-namespaces'},
             h('summary', {'data-testid': 'graph-namespaces-summary'}, 'Namespaces: ', summary),
             h('div', {class: 'graph-ns-menu'},
               all.length === 0 ? h('p', {class: 'muted'}, 'No namespace has Istio request metrics yet.')
                                : boxes));
}

function legendItem(swatch, text) {
    return h('li', null, swatch, h('span', null, text));
}

export function legend() {
    const shape = (cls, color) => h('span', {class: `lg-shape lg-${cls}`, style: `border-color: ${color}`});
    const line = (color, dashed) => h('span', {class: `lg-line${dashed ? ' dashed' : ''}`,
                                               style: `border-color: ${color}`});
    return h('div', {class: 'graph-legend panel', 'data-testid': 'graph-legend-box'},
             h('h4', null, 'Nodes'),
             h('ul', null,
               legendItem(shape('circle', COLORS.na), 'Workload'),
               legendItem(shape('square', COLORS.na), 'App (a version inside its app box)'),
               legendItem(shape('triangle', COLORS.na), 'Service'),
               legendItem(shape('circle dashed', COLORS.na), 'Unknown (outside the mesh)')),
             h('h4', null, 'Health (border, edge colour)'),
             h('ul', null,
               legendItem(line(COLORS.healthy), 'Healthy'),
               legendItem(line(COLORS.degraded), 'Degraded: any 5xx, or 4xx ≥ 10 %'),
               legendItem(line(COLORS.failure), 'Failure: 5xx ≥ 10 % or 4xx ≥ 20 %'),
               legendItem(line(COLORS.na), 'No inbound requests'),
               legendItem(line(COLORS.tcp, true), 'TCP traffic')),
             h('h4', null, 'Badges'),
             h('ul', null,
               legendItem(h('span', {class: 'lg-lock'}), 'mTLS: ≥ 95 % of the edge\'s traffic'),
               BADGES.map(([, glyph, what]) => legendItem(h('span', {class: 'lg-glyph'}, glyph), what))));
}

/* Draw the toolbar into el. s: settings; namespaces: every namespace offered; handlers:
 * {onChange(patch), onFit(), onRefresh()}. Returns {setStatus(node), setFindError(msg)}. */
export function renderToolbar(el, s, namespaces, {onChange, onFit, onRefresh}) {
    const status = h('span', {class: 'graph-status', 'data-testid': 'graph-status', role: 'status'});
    const findError = h('span', {class: 'graph-find-error', 'data-testid': 'graph-find-error', role: 'alert'});
    const legendBtn = h('button', {type: 'button', 'data-testid': 'graph-legend', 'aria-expanded': 'false'},
                        'Legend');
    replace(el,
            h('div', {class: 'toolbar graph-toolbar'},
              namespacePicker(namespaces, s.namespaces || [], (ns) => onChange({namespaces: ns})),
              select('graph-type', 'Graph', GRAPH_TYPES, s.graphType, (v) => onChange({graphType: v})),
              select('graph-duration', 'Last', WINDOWS, s.duration, (v) => onChange({duration: Number(v)})),
              select('graph-refresh', 'Refresh', REFRESHES, s.refresh, (v) => onChange({refresh: Number(v)})),
              h('button', {type: 'button', 'data-testid': 'graph-refresh-now', onclick: onRefresh,
                           title: 'Refresh now'}, '↻'),
              status),
            h('div', {class: 'toolbar graph-toolbar'},
              select('graph-edge-labels', 'Edge labels', EDGE_LABELS, s.edgeLabel,
                     (v) => onChange({edgeLabel: v})),
              toggle('graph-mtls', 'mTLS', s.mtls, (v) => onChange({mtls: v})),
              toggle('graph-animation', 'Traffic animation', s.animation, (v) => onChange({animation: v})),
              toggle('graph-badges', 'Badges', s.badges, (v) => onChange({badges: v})),
              textFilter('graph-find', 'Find', 'name, ns=, version=', s.find, (v) => onChange({find: v})),
              textFilter('graph-hide', 'Hide', 'name, ns=, version=', s.hide, (v) => onChange({hide: v})),
              findError,
              h('span', {class: 'graph-spacer'}),
              h('button', {type: 'button', 'data-testid': 'graph-fit', onclick: onFit,
                           title: 'Fit the graph to the view'}, 'Fit'),
              legendBtn));
    return {
        setStatus: (...nodes) => replace(status, ...nodes),
        setFindError: (msg) => replace(findError, msg || ''),
        legendButton: legendBtn,
    };
}
