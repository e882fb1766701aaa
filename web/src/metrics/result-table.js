/*
 * metrics/result-table.js - an instant query's result as a table, as Prometheus's expression
 * browser shows it: a vector as one row per series (name{labels} and value), a scalar or a
 * string as one row, a matrix (a range selector) as each series' values@times.
 */
import {empty, h} from '../ui.js';

import {fmtTime, seriesName} from './format.js';

function row(series, value, extra) {
    return h('tr', {class: 'metric-row', dataset: extra || {}}, h('td', {class: 'mono series'}, series),
             h('td', {class: 'num mono value'}, value));
}

/* data: the API's {resultType, result} -> element */
export function resultTable(data) {
    const t = data.resultType;
    const r = data.result;
    let rows;
    if (t === 'scalar' || t === 'string') {
        rows = [row(h('span', {class: 'muted'}, t), r[1], {value: r[1]})];
    } else if (t === 'vector') {
        rows = r.map((s) => row(seriesName(s.metric), s.value[1], {value: s.value[1]}));
    } else if (t === 'matrix') {
        const point = ([ts, v]) => h('div', null, `${v} @${ts}`, h('span', {class: 'muted'}, ` ${fmtTime(ts)}`));
        rows = r.map((s) => row(seriesName(s.metric), h('div', {class: 'matrix-values'}, s.values.map(point))));
    } else {
        return empty(`Unknown result type "${t}".`);
    }
    if (rows.length === 0) {
        return empty('Empty query result.', 'No series matched at this time. Check the labels, or widen a range ' +
                     'selector.');
    }
    return h('table', {class: 'data metrics-table', 'data-testid': 'metrics-table', dataset: {resultType: t}},
             h('thead', null, h('tr', null, h('th', null, 'Series'), h('th', {class: 'num'}, 'Value'))),
             h('tbody', null, rows));
}
