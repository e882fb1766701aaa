/*
 * metrics/format.js - how the Metrics page writes what the Prometheus API returns: a series
 * as name{label="value", ...}, sample values as the API's strings turned into numbers
 * (NaN, +Inf, -Inf included), numbers short for axes, times for the table.
 */

/* {__name__: 'x', a: '1'} -> 'x{a="1"}'; a series without a name is just its labels. */
export function seriesName(metric) {
    const m = metric || {};
    const labels = Object.keys(m).filter((k) => k !== '__name__').sort()
        .map((k) => `${k}="${String(m[k]).replace(/[\\"]/g, '\\$&').replace(/\n/g, '\\n')}"`);
    const name = m.__name__ || '';
    return labels.length ? `${name}{${labels.join(', ')}}` : name || '{}';
}

/* The API's sample value string -> number. */
export function sampleValue(s) {
    if (s === '+Inf' || s === 'Inf') {
        return Infinity;
    }
    if (s === '-Inf') {
        return -Infinity;
    }
    return Number(s);
}

/* Axis numbers: 0.0123, 12.3, 1.2k, 3.4M. */
export function fmtNum(v) {
    if (!Number.isFinite(v)) {
        return String(v);
    }
    const a = Math.abs(v);
    if (a >= 1e9) {
        return `${+(v / 1e9).toFixed(2)}G`;
    }
    if (a >= 1e6) {
        return `${+(v / 1e6).toFixed(2)}M`;
    }
    if (a >= 1e4) {
        return `${+(v / 1e3).toFixed(1)}k`;
    }
    return String(+v.toPrecision(4));
}

/* Unix seconds -> 'YYYY-MM-DD HH:MM:SS' in local time. */
export function fmtTime(sec) {
    const d = new Date(sec * 1000);
    const p = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:` +
        `${p(d.getSeconds())}`;
}
