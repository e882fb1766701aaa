/*
 * ui.js - small DOM and formatting helpers every page shares: element creation, the loading,
 * empty and error states, and number formats (rates, durations, percentages, bytes).
 */

/* h('div', {class: 'x', onclick: fn}, child, ...) -> Element. Strings become text nodes (never
 * HTML), null/false children are skipped, arrays are flattened. */
export function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
        if (v === undefined || v === null || v === false) {
            continue;
        }
        if (k.startsWith('on') && typeof v === 'function') {
            el.addEventListener(k.slice(2), v);
        } else if (k === 'class') {
            el.className = v;
        } else if (k === 'dataset') {
            Object.assign(el.dataset, v);
        } else if (v === true) {
            el.setAttribute(k, '');
        } else {
            el.setAttribute(k, String(v));
        }
    }
    append(el, children);
    return el;
}

function append(el, children) {
    for (const c of children) {
        if (c === null || c === undefined || c === false) {
            continue;
        }
        if (Array.isArray(c)) {
            append(el, c);
        } else {
            el.append(c instanceof Node ? c : document.createTextNode(String(c)));
        }
    }
}

/* Replace el's children. */
export function replace(el, ...children) {
    el.replaceChildren();
    append(el, children);
    return el;
}

export function loading(what) {
    return h('div', {class: 'state loading', role: 'status'}, h('span', {class: 'spinner'}),
             `Loading ${what || ''}…`);
}

/* An empty state that says what to do next. */
export function empty(title, hint) {
    return h('div', {class: 'state empty'}, h('strong', null, title), hint ? h('p', null, hint) : null);
}

/* An error shown inline, with the server's message as it came. */
export function errorBox(err, context) {
    const msg = err && err.message ? err.message : String(err);
    return h('div', {class: 'state error', role: 'alert'}, context ? h('strong', null, context + ': ') : null,
             msg);
}

export const NO_DATA_HINT = 'Start `weft demo`, or point proxies at this collector.';

export function fmtRate(v) {
    if (!Number.isFinite(v)) {
        return '–';
    }
    return v >= 100 ? `${v.toFixed(0)} rps` : v >= 1 ? `${v.toFixed(1)} rps` : `${v.toFixed(2)} rps`;
}

export function fmtPercent(v) {
    return Number.isFinite(v) ? `${v >= 10 ? v.toFixed(0) : v.toFixed(1)}%` : '–';
}

/* Milliseconds -> "850 µs", "12.3 ms", "2.41 s". */
export function fmtMs(ms) {
    if (!Number.isFinite(ms)) {
        return '–';
    }
    if (ms < 1) {
        return `${(ms * 1000).toFixed(0)} µs`;
    }
    if (ms < 1000) {
        return `${ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : ms.toFixed(0)} ms`;
    }
    return `${(ms / 1000).toFixed(2)} s`;
}

export function fmtBytes(v) {
    if (!Number.isFinite(v)) {
        return '–';
    }
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (v >= 1024 && i < units.length - 1) {
        v /= 1024;
        i++;
    }
    return `${i === 0 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}
