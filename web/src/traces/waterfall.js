/*
 * traces/waterfall.js - a trace's spans as a waterfall: a time ruler, then one row per span in
 * tree order (indented by depth, orphans at the root and marked), its bar placed on the ruler
 * in its service's colour, error spans marked, the critical path drawn over the bars.
 *
 * Rows are built once; collapsing a span hides the contiguous run of its descendants (the
 * depth-first order makes them adjacent) and expanding shows them again, skipping subtrees
 * that are still collapsed, so a trace of hundreds of spans never re-renders. Keyboard (one
 * row in the tab order, roving): Up/Down move, Right expands or goes to the first child, Left
 * collapses or goes to the parent, Space toggles, Enter (or a click) selects the row.
 */
import {fmtMs, h} from '../ui.js';

const TICKS = 5;

/* trace: built (model.js); colors: Map service -> colour; critical: [{spanId, start, end}];
 * onSelect(span). Returns {el, select(spanId), expandAll(), collapseAll()}. */
export function waterfall(trace, colors, critical, onSelect) {
    const t0 = trace.start;
    const total = Math.max(trace.duration, 1);
    const pct = (us) => `${((100 * (us - t0)) / total).toFixed(3)}%`;
    const width = (us) => `${Math.max((100 * us) / total, 0.15).toFixed(3)}%`;
    const sectionsBy = new Map();
    for (const s of critical) {
        if (!sectionsBy.has(s.spanId)) {
            sectionsBy.set(s.spanId, []);
        }
        sectionsBy.get(s.spanId).push(s);
    }

    const ruler = h('div', {class: 'wf-ruler', 'aria-hidden': 'true'});
    for (let i = 0; i <= TICKS; i++) {
        ruler.append(h('span', {class: 'wf-tick' + (i === TICKS ? ' last' : ''), style: `left:${(100 * i) / TICKS}%`},
                       i === 0 ? '0' : fmtMs((trace.duration * i) / TICKS / 1000)));
    }
    const rows = trace.spans.map((sp) => {
        const hasKids = sp.descendants > 0;
        const toggle = hasKids
            ? h('button', {type: 'button', class: 'wf-toggle', tabindex: -1, 'aria-label': 'Collapse',
                           'data-testid': 'wf-toggle'}, '▾')
            : h('span', {class: 'wf-toggle-space'});
        const onPath = sectionsBy.has(sp.id);
        const bar = h('div', {class: 'wf-bar', style: `left:${pct(sp.start)};width:${width(sp.duration)};` +
                                                      `background:${colors.get(sp.service)}`});
        const label = h('span', {class: 'wf-bar-label',
                                 style: `left:calc(${pct(sp.start)} + ${width(sp.duration)} + 4px)`},
                        fmtMs(sp.duration / 1000));
        if ((sp.start - t0) / total > 0.75) {
            label.style.left = '';
            label.style.right = `calc(${(100 - (100 * (sp.start - t0)) / total).toFixed(3)}% + 4px)`;
        }
        const crit = (sectionsBy.get(sp.id) || []).map((s) =>
            h('div', {class: 'wf-crit', style: `left:${pct(s.start)};width:${width(s.end - s.start)}`}));
        const el = h('div', {
            class: 'wf-row' + (sp.error ? ' error' : '') + (onPath ? ' critical' : '') + (sp.orphan ? ' orphan' : ''),
            role: 'treeitem', tabindex: -1, 'aria-level': sp.depth + 1, 'aria-expanded': hasKids ? 'true' : undefined,
            'aria-selected': 'false', dataset: {spanId: sp.id, critical: onPath ? 'true' : 'false'},
        },
                     h('div', {class: 'wf-name', style: `padding-left:${6 + sp.depth * 14}px`,
                              title: `${sp.service}: ${sp.operation}`}, toggle,
                       h('span', {class: 'wf-swatch', style: `background:${colors.get(sp.service)}`}),
                       h('span', {class: 'wf-service'}, sp.service),
                       h('span', {class: 'wf-op'}, sp.operation),
                       sp.error ? h('span', {class: 'wf-error-mark', title: 'error', 'aria-label': 'error'}, '!') : null,
                       sp.orphan ? h('span', {class: 'badge orphan',
                                              title: `parent ${sp.parentRef} is not in this trace`}, 'orphan')
                                 : null),
                     h('div', {class: 'wf-timeline'}, bar, crit, label));
        return {sp, el, toggle: hasKids ? toggle : null, collapsed: false};
    });

    const body = h('div', {class: 'wf-rows', role: 'tree', 'aria-label': 'Spans', 'data-testid': 'waterfall-rows'},
                   rows.map((r) => r.el));
    const root = h('div', {class: 'waterfall', 'data-testid': 'waterfall'},
                   h('div', {class: 'wf-head'}, h('div', {class: 'wf-name'}, 'Service & operation'), ruler),
                   body);
    let focused = rows[0] || null;
    if (focused) {
        focused.el.tabIndex = 0;
    }

    function setCollapsed(r, collapsed) {
        if (!r.toggle || r.collapsed === collapsed) {
            return;
        }
        r.collapsed = collapsed;
        r.el.setAttribute('aria-expanded', collapsed ? 'false' : 'true');
        r.el.classList.toggle('collapsed', collapsed);
        r.toggle.textContent = collapsed ? '▸' : '▾';
        r.toggle.setAttribute('aria-label', collapsed ? 'Expand' : 'Collapse');
        const i = r.sp.index;
        const last = i + r.sp.descendants;
        if (collapsed) {
            for (let j = i + 1; j <= last; j++) {
                rows[j].el.hidden = true;
            }
            return;
        }
        for (let j = i + 1; j <= last;) {
            rows[j].el.hidden = false;
            j += rows[j].collapsed ? rows[j].sp.descendants + 1 : 1;
        }
    }

    function focusRow(r) {
        if (!r) {
            return;
        }
        if (focused) {
            focused.el.tabIndex = -1;
        }
        focused = r;
        r.el.tabIndex = 0;
        r.el.focus({preventScroll: false});
    }

    let selected = null;
    function select(r) {
        if (selected) {
            selected.el.classList.remove('selected');
            selected.el.setAttribute('aria-selected', 'false');
        }
        selected = r;
        r.el.classList.add('selected');
        r.el.setAttribute('aria-selected', 'true');
        onSelect(r.sp);
    }

    function visibleStep(r, dir) {
        for (let j = r.sp.index + dir; j >= 0 && j < rows.length; j += dir) {
            if (!rows[j].el.hidden) {
                return rows[j];
            }
        }
        return null;
    }

    function rowOf(target) {
        const el = target.closest('.wf-row');
        return el ? rows[trace.byId.get(el.dataset.spanId).index] : null;
    }

    body.addEventListener('click', (ev) => {
        const r = rowOf(ev.target);
        if (!r) {
            return;
        }
        if (ev.target.closest('.wf-toggle')) {
            setCollapsed(r, !r.collapsed);
            focusRow(r);
            return;
        }
        focusRow(r);
        select(r);
    });
    body.addEventListener('keydown', (ev) => {
        const r = rowOf(ev.target);
        if (!r) {
            return;
        }
        let handled = true;
        switch (ev.key) {
        case 'ArrowDown':
            focusRow(visibleStep(r, 1));
            break;
        case 'ArrowUp':
            focusRow(visibleStep(r, -1));
            break;
        case 'ArrowRight':
            if (r.toggle && r.collapsed) {
                setCollapsed(r, false);
            } else if (r.toggle) {
                focusRow(rows[r.sp.index + 1]);
            }
            break;
        case 'ArrowLeft':
            if (r.toggle && !r.collapsed) {
                setCollapsed(r, true);
            } else if (r.sp.parent) {
                focusRow(rows[r.sp.parent.index]);
            }
            break;
        case ' ':
            setCollapsed(r, !r.collapsed);
            break;
        case 'Enter':
            select(r);
            break;
        case 'Home':
            focusRow(rows[0]);
            break;
        case 'End':
            focusRow(visibleStep({sp: {index: rows.length}}, -1));
            break;
        default:
            handled = false;
        }
        if (handled) {
            ev.preventDefault();
        }
    });

    return {
        el: root,
        select(spanId) {
            const sp = trace.byId.get(spanId);
            if (!sp) {
                return;
            }
            /* A span inside a collapsed subtree is shown by expanding its ancestors, outermost
             * first, so that no inner expansion shows rows an outer collapse still hides. */
            const up = [];
            for (let p = sp.parent; p; p = p.parent) {
                up.push(rows[p.index]);
            }
            for (const r of up.reverse()) {
                setCollapsed(r, false);
            }
            focusRow(rows[sp.index]);
            select(rows[sp.index]);
        },
        expandAll() {
            for (const r of rows) {
                setCollapsed(r, false);
            }
        },
        collapseAll() {
            for (let i = rows.length - 1; i >= 0; i--) {
                setCollapsed(rows[i], true);
            }
        },
    };
}
