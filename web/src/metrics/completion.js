/*
 * metrics/completion.js - what to offer at the cursor of a PromQL expression: metric names
 * (and PromQL's functions and aggregations) where an identifier is being typed, label names
 * inside `{...}` and in `by (...)` / `without (...)`, label values inside `name="...`. The
 * lists come from the Prometheus API (/api/v1/label/__name__/values, /api/v1/labels,
 * /api/v1/label/<n>/values), each fetched once per page.
 */
import {apiGet} from '../api.js';

const FUNCTIONS = [
    'abs', 'absent', 'absent_over_time', 'avg', 'avg_over_time', 'bottomk', 'ceil', 'changes', 'clamp',
    'clamp_max', 'clamp_min', 'count', 'count_over_time', 'count_values', 'delta', 'deriv', 'exp', 'floor',
    'group', 'histogram_quantile', 'idelta', 'increase', 'irate', 'label_join', 'label_replace', 'last_over_time',
    'ln', 'log2', 'log10', 'max', 'max_over_time', 'min', 'min_over_time', 'predict_linear', 'quantile',
    'quantile_over_time', 'rate', 'resets', 'round', 'scalar', 'sort', 'sort_desc', 'sqrt', 'stddev',
    'stddev_over_time', 'stdvar', 'sum', 'sum_over_time', 'time', 'timestamp', 'topk', 'vector',
];

const IDENT = /[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_IDENT = /[a-zA-Z_][a-zA-Z0-9_]*$/;

/* text, cursor -> {kind: 'metric'|'label'|'value', prefix, from, label?} or null. from is
 * where the word being completed starts. */
export function completionContext(text, pos) {
    const before = text.slice(0, pos);
    let quote = null;
    let braceAt = -1;
    for (let i = 0; i < before.length; i++) {
        const c = before[i];
        if (quote) {
            if (c === '\\') {
                i++;
            } else if (c === quote) {
                quote = null;
            }
        } else if (c === '"' || c === "'" || c === '`') {
            quote = c;
        } else if (c === '{') {
            braceAt = i;
        } else if (c === '}') {
            braceAt = -1;
        }
    }
    if (braceAt >= 0) {
        const inside = before.slice(braceAt + 1);
        if (quote) {
            const m = /([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*["'`]((?:[^"'`\\]|\\.)*)$/.exec(inside);
            return m ? {kind: 'value', label: m[1], prefix: m[3], from: pos - m[3].length} : null;
        }
        const m = /(?:^|,)\s*([a-zA-Z_][a-zA-Z0-9_]*)?$/.exec(inside);
        if (m) {
            const prefix = m[1] || '';
            return {kind: 'label', prefix, from: pos - prefix.length};
        }
        return null;
    }
    if (quote) {
        return null;
    }
    const by = /\b(?:by|without)\s*\(([a-zA-Z0-9_,\s]*)$/.exec(before);
    if (by) {
        const w = LABEL_IDENT.exec(by[1]);
        const prefix = w && /(^|[\s,])[a-zA-Z_][a-zA-Z0-9_]*$/.test(by[1]) ? w[0] : '';
        return {kind: 'label', prefix, from: pos - prefix.length};
    }
    const w = IDENT.exec(before);
    if (!w || /[0-9.]/.test(before[before.length - w[0].length - 1] || '')) {
        return null;
    }
    return {kind: 'metric', prefix: w[0], from: pos - w[0].length};
}

/* Items starting with prefix first, then those containing it; the prefix itself alone is no
 * suggestion. */
export function rank(items, prefix, max = 50) {
    const p = prefix.toLowerCase();
    const starts = [];
    const contains = [];
    for (const it of items) {
        const l = it.toLowerCase();
        if (l === p) {
            continue;
        }
        if (l.startsWith(p)) {
            starts.push(it);
        } else if (p && l.includes(p)) {
            contains.push(it);
        }
    }
    return [...starts.sort(), ...contains.sort()].slice(0, max);
}

/* The lists behind completion, fetched on first use and kept; a failed fetch is retried next
 * time. */
export function completionSources() {
    const cache = new Map();
    function get(key, path) {
        if (!cache.has(key)) {
            const p = apiGet(path).then((r) => (Array.isArray(r.data) ? r.data : []));
            p.catch(() => cache.delete(key));
            cache.set(key, p);
        }
        return cache.get(key);
    }
    return {
        /* ctx -> Promise<[{text, kind}]> */
        async items(ctx) {
            if (ctx.kind === 'metric') {
                const names = await get('__name__', '/api/v1/label/__name__/values');
                const metrics = rank(names, ctx.prefix).map((text) => ({text, kind: 'metric'}));
                const fns = ctx.prefix ? rank(FUNCTIONS, ctx.prefix, 10).map((text) => ({text, kind: 'function'})) : [];
                return [...metrics, ...fns];
            }
            if (ctx.kind === 'label') {
                const names = await get('labels', '/api/v1/labels');
                return rank(names.filter((n) => n !== '__name__'), ctx.prefix).map((text) => ({text, kind: 'label'}));
            }
            const vals = await get(`v:${ctx.label}`, `/api/v1/label/${encodeURIComponent(ctx.label)}/values`);
            return rank(vals, ctx.prefix).map((text) => ({text, kind: 'value'}));
        },
    };
}
