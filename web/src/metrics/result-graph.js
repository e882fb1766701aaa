/*
 * metrics/result-graph.js - a range query's result as a chart (charts.js's timeChart on
 * uPlot) with a legend of its own below it: every series with its colour; clicking an entry
 * shows or hides that series.
 */
import {seriesColor, timeChart} from '../charts.js';
import {empty, h} from '../ui.js';

import {fmtNum, sampleValue, seriesName} from './format.js';

/* el: the container; data: the API's matrix. Returns {destroy()}. */
export function resultGraph(el, data) {
    const result = data.result || [];
    if (result.length === 0) {
        el.append(empty('Empty query result.', 'No series matched in this range.'));
        return {destroy() {}};
    }
    const series = result.map((s, i) => ({
        label: seriesName(s.metric),
        color: seriesColor(i),
        points: s.values.map(([t, v]) => [t, sampleValue(v)]),
    }));
    const plot = h('div', {class: 'metrics-plot', 'data-testid': 'metrics-chart'});
    const legend = h('ul', {class: 'metrics-legend', 'data-testid': 'metrics-legend'});
    el.append(plot, legend);
    const u = timeChart(plot, {series, height: 320, fmt: fmtNum, width: Math.max(300, el.clientWidth - 2)});
    series.forEach((s, i) => {
        const item = h('li', {class: 'metrics-legend-item', tabindex: 0, role: 'switch', 'aria-checked': 'true',
                              title: 'Show or hide this series'},
                       h('span', {class: 'swatch', style: `background:${s.color}`}), h('span', {class: 'mono'}, s.label));
        const toggle = () => {
            const show = item.getAttribute('aria-checked') !== 'true';
            item.setAttribute('aria-checked', show ? 'true' : 'false');
            item.classList.toggle('off', !show);
            u.setSeries(i + 1, {show});
        };
        item.addEventListener('click', toggle);
        item.addEventListener('keydown', (ev) => {
            if (ev.key === 'Enter' || ev.key === ' ') {
                ev.preventDefault();
                toggle();
            }
        });
        legend.append(item);
    });
    const ro = new ResizeObserver(() => {
        const w = Math.max(300, el.clientWidth - 2);
        if (w !== u.width) {
            u.setSize({width: w, height: 320});
        }
    });
    ro.observe(el);
    return {
        destroy() {
            ro.disconnect();
            u.destroy();
        },
    };
}
