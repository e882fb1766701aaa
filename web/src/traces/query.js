/*
 * traces/query.js - the search a route describes, turned into the Jaeger query API's
 * parameters: tags in logfmt (as Jaeger UI takes them) become the API's JSON tags, a lookback
 * becomes a start/end window in microseconds, durations are checked before they are sent.
 */

export const LOOKBACKS = [
    ['5m', 'Last 5 minutes'], ['15m', 'Last 15 minutes'], ['1h', 'Last hour'], ['2h', 'Last 2 hours'],
    ['6h', 'Last 6 hours'], ['12h', 'Last 12 hours'], ['24h', 'Last 24 hours'], ['2d', 'Last 2 days'],
    ['7d', 'Last 7 days'], ['custom', 'Custom time range'],
];
export const DEFAULT_LOOKBACK = '1h';
export const DEFAULT_LIMIT = 20;
export const SORTS = [['recent', 'Most recent'], ['longest', 'Longest first'], ['shortest', 'Shortest first'],
                      ['spans', 'Most spans']];

const UNIT_MS = {us: 0.001, 'µs': 0.001, ms: 1, s: 1000, m: 60000, h: 3600000, d: 86400000};

/* '1.2s' -> 1200 (ms); '' -> null; anything else throws with a message for the form. */
export function parseDurationMs(text, what) {
    const s = (text || '').trim();
    if (s === '') {
        return null;
    }
    const m = /^(\d+(?:\.\d+)?)(us|µs|ms|s|m|h)$/.exec(s);
    if (!m) {
        throw new Error(`${what}: "${s}" is not a duration (e.g. 10ms, 1.2s, 2m)`);
    }
    return Number(m[1]) * UNIT_MS[m[2]];
}

/* Lookback ('1h', '2d') -> milliseconds. */
export function lookbackMs(lb) {
    const m = /^(\d+)(m|h|d)$/.exec(lb || '');
    return m ? Number(m[1]) * UNIT_MS[m[2]] : UNIT_MS.h;
}

/* Jaeger UI's tag syntax, logfmt: `http.status_code=500 error=true msg="a b"`; a bare key means
 * key=true. -> {key: value} (strings); throws on an unterminated quote or a missing key. */
export function parseLogfmt(text) {
    const out = {};
    const s = text || '';
    let i = 0;
    while (i < s.length) {
        while (i < s.length && /\s/.test(s[i])) {
            i++;
        }
        if (i >= s.length) {
            break;
        }
        let key = '';
        while (i < s.length && !/[\s=]/.test(s[i])) {
            key += s[i++];
        }
        if (key === '') {
            throw new Error(`tags: a value without a key at column ${i + 1}`);
        }
        if (s[i] !== '=') {
            out[key] = 'true';
            continue;
        }
        i++;
        let value = '';
        if (s[i] === '"') {
            i++;
            let closed = false;
            while (i < s.length) {
                if (s[i] === '\\' && i + 1 < s.length) {
                    value += s[i + 1];
                    i += 2;
                } else if (s[i] === '"') {
                    i++;
                    closed = true;
                    break;
                } else {
                    value += s[i++];
                }
            }
            if (!closed) {
                throw new Error(`tags: the quote after ${key}= is not closed`);
            }
        } else {
            while (i < s.length && !/\s/.test(s[i])) {
                value += s[i++];
            }
        }
        out[key] = value;
    }
    return out;
}

/* The form's state from a route's parameters (defaults filled in). */
export function searchFromParams(params) {
    const get = (k) => params.get(k) || '';
    return {
        service: get('service'),
        operation: get('operation'),
        tags: get('tags'),
        lookback: get('lookback') || DEFAULT_LOOKBACK,
        start: get('start'),
        end: get('end'),
        minDuration: get('minDuration'),
        maxDuration: get('maxDuration'),
        limit: get('limit') || String(DEFAULT_LIMIT),
        sort: get('sort') || 'recent',
    };
}

/* The form's state -> the route's parameters (defaults left out, so links stay short). */
export function searchToParams(q) {
    return {
        service: q.service,
        operation: q.operation,
        tags: q.tags,
        lookback: q.lookback === DEFAULT_LOOKBACK ? '' : q.lookback,
        start: q.lookback === 'custom' ? q.start : '',
        end: q.lookback === 'custom' ? q.end : '',
        minDuration: q.minDuration,
        maxDuration: q.maxDuration,
        limit: q.limit === String(DEFAULT_LIMIT) ? '' : q.limit,
        sort: q.sort === 'recent' ? '' : q.sort,
    };
}

/* A datetime-local value ('2026-11-26T12:30') -> µs since the epoch, or NaN. */
export function localToMicros(v) {
    const ms = new Date(v).getTime();
    return Number.isFinite(ms) ? ms * 1000 : NaN;
}

/* The form's state -> /api/traces parameters; throws with a message for the form. nowMs is
 * the moment a lookback counts back from. */
export function apiParams(q, nowMs) {
    const minMs = parseDurationMs(q.minDuration, 'Min duration');
    const maxMs = parseDurationMs(q.maxDuration, 'Max duration');
    if (minMs !== null && maxMs !== null && maxMs < minMs) {
        throw new Error('Max duration is below min duration');
    }
    const tags = parseLogfmt(q.tags);
    let start;
    let end;
    if (q.lookback === 'custom') {
        start = localToMicros(q.start);
        end = q.end ? localToMicros(q.end) : nowMs * 1000;
        if (!Number.isFinite(start) || !Number.isFinite(end)) {
            throw new Error('Custom time range: give a start (and optionally an end)');
        }
        if (start > end) {
            throw new Error('Custom time range: the start is after the end');
        }
    } else {
        end = nowMs * 1000;
        start = end - lookbackMs(q.lookback) * 1000;
    }
    const limit = Number.parseInt(q.limit, 10);
    return {
        service: q.service,
        operation: q.operation,
        tags: Object.keys(tags).length ? JSON.stringify(tags) : '',
        start: String(Math.floor(start)),
        end: String(Math.floor(end)),
        minDuration: q.minDuration.trim(),
        maxDuration: q.maxDuration.trim(),
        limit: Number.isFinite(limit) && limit > 0 ? String(limit) : String(DEFAULT_LIMIT),
    };
}
