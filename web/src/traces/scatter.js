/*
 * traces/scatter.js - the search results as a duration-over-time scatter, as Jaeger UI draws
 * it: x the trace's start, y its duration, the point's size by span count, error traces red.
 * Hovering names the trace, clicking a point opens it.
 *
 * uPlot gives the axes, scales and cursor; the points are drawn in its draw hook, because a
 * line chart's points cannot vary in size and colour per point (charts.js is for series over
 * time; this is one point per trace).
 */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

import {fmtMs, h} from '../ui.js';

const OK = 'rgba(31, 111, 235, 0.55)';
const OK_EDGE = '#1f6feb';
const ERR = 'rgba(198, 40, 40, 0.6)';
const ERR_EDGE = '#c62828';

function radius(spanCount) {
    return Math.min(14, 4 + Math.sqrt(spanCount) * 1.5);
}

/* el: the container; traces: built traces (model.js); onOpen(traceID). Returns {destroy()}. */
export function scatter(el, traces, onOpen) {
    const pts = traces.map((t) => ({x: t.start / 1e6, y: t.duration / 1000, r: radius(t.spans.length),
                                    err: t.errorCount > 0, trace: t}))
        .sort((a, b) => a.x - b.x);
    const tip = h('div', {class: 'scatter-tip', hidden: true});
    const plot = h('div', {class: 'scatter-plot'});
    el.append(plot, tip);
    el.dataset.points = String(pts.length);

    const xs = pts.map((p) => p.x);
    const ys = pts.map((p) => p.y);
    const xmin = Math.min(...xs);
    const xmax = Math.max(...xs);
    const pad = Math.max((xmax - xmin) * 0.06, 30);
    const opts = {
        width: Math.max(300, el.clientWidth || 600),
        height: 160,
        legend: {show: false},
        cursor: {drag: {x: false, y: false}, points: {show: false}, x: false, y: false},
        scales: {
            x: {time: true, range: () => [xmin - pad, xmax + pad]},
            y: {range: (u, min, max) => [0, (max || 1) * 1.2]},
        },
        axes: [{}, {values: (u, vals) => vals.map((v) => (v === 0 ? '0' : fmtMs(v))), size: 70, label: 'Duration'}],
        series: [{}, {label: 'duration', paths: () => null, points: {show: false}}],
        hooks: {draw: [drawPoints]},
    };

    function drawPoints(u) {
        const ctx = u.ctx;
        const {left, top, width, height} = u.bbox;
        ctx.save();
        ctx.beginPath();
        ctx.rect(left, top, width, height);
        ctx.clip();
        /* Errors last, so that a red point is never hidden under a blue one. */
        for (const p of [...pts.filter((q) => !q.err), ...pts.filter((q) => q.err)]) {
            ctx.beginPath();
            ctx.arc(u.valToPos(p.x, 'x', true), u.valToPos(p.y, 'y', true), p.r * uPlot.pxRatio, 0,
                    2 * Math.PI);
            ctx.fillStyle = p.err ? ERR : OK;
            ctx.strokeStyle = p.err ? ERR_EDGE : OK_EDGE;
            ctx.lineWidth = uPlot.pxRatio;
            ctx.fill();
            ctx.stroke();
        }
        ctx.restore();
    }

    const u = new uPlot(opts, [xs, ys], plot);

    /* The point under the mouse (CSS pixels relative to the plotting area), or null. */
    function hit(ev) {
        let best = null;
        let bestD = Infinity;
        for (const p of pts) {
            const dx = u.valToPos(p.x, 'x') - ev.offsetX;
            const dy = u.valToPos(p.y, 'y') - ev.offsetY;
            const d = Math.hypot(dx, dy);
            if (d <= p.r + 3 && d < bestD) {
                best = p;
                bestD = d;
            }
        }
        return best;
    }

    u.over.addEventListener('mousemove', (ev) => {
        const p = hit(ev);
        u.over.style.cursor = p ? 'pointer' : 'default';
        tip.hidden = !p;
        if (p) {
            tip.textContent = `${p.trace.name} · ${fmtMs(p.y)} · ${p.trace.spans.length} spans` +
                (p.err ? ` · ${p.trace.errorCount} errors` : '');
            tip.style.left = `${u.over.offsetLeft + u.valToPos(p.x, 'x') + 12}px`;
            tip.style.top = `${u.over.offsetTop + u.valToPos(p.y, 'y') - 10}px`;
        }
    });
    u.over.addEventListener('mouseleave', () => {
        tip.hidden = true;
    });
    u.over.addEventListener('click', (ev) => {
        const p = hit(ev);
        if (p) {
            onOpen(p.trace.traceID);
        }
    });

    const ro = new ResizeObserver(() => {
        const w = Math.max(300, el.clientWidth);
        if (w !== u.width) {
            u.setSize({width: w, height: opts.height});
        }
    });
    ro.observe(el);
    /* Where a trace's point is, in viewport coordinates: on the element, so that the browser
     * test can click a point it cannot find in the canvas's pixels. */
    el.pointAt = (traceID) => {
        const p = pts.find((q) => q.trace.traceID === traceID);
        const r = u.over.getBoundingClientRect();
        return p ? {x: r.left + u.valToPos(p.x, 'x'), y: r.top + u.valToPos(p.y, 'y')} : null;
    };
    return {
        destroy() {
            delete el.pointAt;
            ro.disconnect();
            u.destroy();
        },
    };
}
