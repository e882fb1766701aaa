/*
 * charts.js - time-series charts on uPlot, the one way pages draw a chart over time.
 *
 * timeChart(el, {series: [{label, points: [[unixSeconds, value], ...]}], unit, height})
 * aligns the series on the union of their timestamps (gaps stay gaps) and returns the uPlot
 * instance; call .destroy() when the element goes away. fmt formats a value for the axis.
 */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

const PALETTE = ['#1f6feb', '#c62828', '#2e7d32', '#e39e00', '#6f42c1', '#00838f', '#ad1457',
                 '#5d4037', '#546e7a', '#827717'];

export function seriesColor(i) {
    return PALETTE[i % PALETTE.length];
}

/* [{points}] -> uPlot's columnar data: [xs, ys0, ys1, ...] with null where a series has no
 * point at that time. */
export function alignSeries(series) {
    const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
    const index = new Map(xs.map((x, i) => [x, i]));
    const cols = series.map((s) => {
        const ys = new Array(xs.length).fill(null);
        for (const [t, v] of s.points) {
            ys[index.get(t)] = Number.isFinite(v) ? v : null;
        }
        return ys;
    });
    return [xs, ...cols];
}

export function timeChart(el, {series, height = 180, fmt = (v) => String(v), width}) {
    const opts = {
        width: width || Math.max(200, el.clientWidth || 400),
        height,
        legend: {show: series.length > 1},
        cursor: {drag: {x: true, y: false}},
        scales: {x: {time: true}},
        axes: [{}, {values: (u, vals) => vals.map((v) => (v === null ? '' : fmt(v))), size: 60}],
        series: [{}, ...series.map((s, i) => ({
            label: s.label,
            stroke: s.color || seriesColor(i),
            width: 1.5,
            spanGaps: false,
            value: (u, v) => (v === null ? '–' : fmt(v)),
        }))],
    };
    return new uPlot(opts, alignSeries(series), el);
}
