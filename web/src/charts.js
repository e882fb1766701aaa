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

/* [low, high] of the y axis for data between min and max (null when there is none). */
export function yRange(min, max) {
    const lo = Math.min(0, Number.isFinite(min) ? min : 0);
    const hi = Math.max(0, Number.isFinite(max) ? max : 0);
    if (hi === lo) {
        return [lo, lo + 1];
    }
    return [lo < 0 ? lo * 1.1 : 0, hi > 0 ? hi * 1.1 : 0];
}

export function timeChart(el, {series, height = 180, fmt = (v) => String(v), width}) {
    const opts = {
        width: width || Math.max(200, el.clientWidth || 400),
        height,
        legend: {show: series.length > 1},
        cursor: {drag: {x: true, y: false}},
        /* y from 0 (or below, for negative data) to a little above the top: a flat series is a
         * line inside the chart with labelled ticks, not on its edge with one label. */
        scales: {x: {time: true}, y: {range: (u, min, max) => yRange(min, max)}},
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
