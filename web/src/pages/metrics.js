/*
 * pages/metrics.js - the Metrics page, a PromQL expression browser: the expression box (with
 * completion and history, metrics/expr-box.js), a Table tab (an instant query at a chosen
 * time, now by default) and a Graph tab (a range query over 5m..2d with Prometheus's automatic
 * step), query stats, the API's errors and warnings shown as they come. The state lives in the
 * route: #/metrics?expr=...&tab=table|graph&range=1h&time=<unix s>.
 */
import {apiGet} from '../api.js';
import {replaceParams} from '../app.js';
import {completionSources} from '../metrics/completion.js';
import {exprBox} from '../metrics/expr-box.js';
import {addHistory, loadHistory} from '../metrics/history.js';
import {resultGraph} from '../metrics/result-graph.js';
import {resultTable} from '../metrics/result-table.js';
import {empty, errorBox, h, loading, replace} from '../ui.js';

const RANGES = ['5m', '15m', '30m', '1h', '2h', '6h', '12h', '1d', '2d'];
const DEFAULT_RANGE = '1h';
const UNIT_S = {m: 60, h: 3600, d: 86400};

function rangeSeconds(r) {
    const m = /^(\d+)([mhd])$/.exec(r);
    return m ? Number(m[1]) * UNIT_S[m[2]] : 3600;
}

/* Prometheus's expression browser: about 250 points over the range, whole seconds. */
export function autoStep(rangeS) {
    return Math.max(1, Math.floor(rangeS / 250));
}

function fromParams(p) {
    const range = p.get('range');
    const time = Number(p.get('time'));
    return {
        expr: p.get('expr') || '',
        tab: p.get('tab') === 'graph' ? 'graph' : 'table',
        range: RANGES.includes(range) ? range : DEFAULT_RANGE,
        time: Number.isFinite(time) && time > 0 ? time : null,
    };
}

function sameState(a, b) {
    return a.expr === b.expr && a.tab === b.tab && a.range === b.range && a.time === b.time;
}

/* Unix seconds <-> the datetime-local input's value (local time, to the second). */
function toLocalInput(sec) {
    const d = new Date(sec * 1000 - new Date(sec * 1000).getTimezoneOffset() * 60000);
    return d.toISOString().slice(0, 19);
}

export function mount(el, route) {
    let state = fromParams(route.params);
    let history = loadHistory();
    let ctl = null;
    let graph = null;
    let alive = true;

    const box = exprBox({value: state.expr, onRun: (v) => execute(v), sources: completionSources(),
                         history: () => history});
    const runBtn = h('button', {type: 'button', class: 'primary', 'data-testid': 'execute',
                                onclick: () => execute(box.value())}, 'Execute');
    const histBtn = h('button', {type: 'button', 'data-testid': 'history', title: 'Expressions run before (Alt+Down)',
                                 onclick: () => box.showHistory()}, 'History');
    const queryError = h('div', {class: 'query-error', 'data-testid': 'query-error'});
    const warnings = h('div', {class: 'query-warnings', 'data-testid': 'query-warnings'});
    const tabBtn = (tab, label) => h('button', {type: 'button', role: 'tab', class: 'tab', 'data-testid': `tab-${tab}`,
                                                dataset: {tab}, onclick: () => setTab(tab)}, label);
    const tabs = h('div', {class: 'metrics-tabs', role: 'tablist'}, tabBtn('table', 'Table'), tabBtn('graph', 'Graph'));
    const timeIn = h('input', {type: 'datetime-local', step: 1, 'data-testid': 'eval-time', onchange: onTime});
    const nowBtn = h('button', {type: 'button', onclick: () => setTime(null)}, 'Now');
    const tableCtl = h('label', {class: 'metrics-ctl'}, 'Evaluation time', timeIn, nowBtn);
    const rangeSel = h('select', {'data-testid': 'range', onchange: () => setRange(rangeSel.value)},
                       RANGES.map((r) => h('option', {value: r}, r)));
    const stepOut = h('span', {class: 'muted', 'data-testid': 'step'});
    const graphCtl = h('label', {class: 'metrics-ctl'}, 'Range', rangeSel, stepOut);
    const stats = h('span', {class: 'query-stats muted', 'data-testid': 'query-stats'});
    const result = h('div', {class: 'panel metrics-result', role: 'tabpanel'});

    el.append(h('div', {class: 'metrics-page'},
                h('div', {class: 'panel metrics-query'}, h('div', {class: 'expr-row'}, box.el, runBtn, histBtn),
                  queryError),
                h('div', {class: 'toolbar metrics-toolbar'}, tabs, tableCtl, graphCtl, stats),
                warnings, result));

    function syncControls() {
        for (const b of tabs.children) {
            const on = b.dataset.tab === state.tab;
            b.classList.toggle('active', on);
            b.setAttribute('aria-selected', on ? 'true' : 'false');
        }
        tableCtl.hidden = state.tab !== 'table';
        graphCtl.hidden = state.tab !== 'graph';
        rangeSel.value = state.range;
        timeIn.value = state.time ? toLocalInput(state.time) : '';
        stepOut.textContent = `step ${autoStep(rangeSeconds(state.range))}s`;
        if (box.value() !== state.expr) {
            box.setValue(state.expr);
        }
    }

    function saveRoute() {
        replaceParams({expr: state.expr, tab: state.tab === 'table' ? '' : state.tab,
                       range: state.range === DEFAULT_RANGE ? '' : state.range,
                       time: state.tab === 'table' && state.time ? String(state.time) : ''});
    }

    function clearResult() {
        if (graph) {
            graph.destroy();
            graph = null;
        }
        replace(warnings);
        replace(queryError);
        stats.textContent = '';
    }

    async function run() {
        clearResult();
        syncControls();
        if (ctl) {
            ctl.abort();
        }
        if (!state.expr.trim()) {
            replace(result, empty('Enter an expression.', 'Try sum by (destination_workload) ' +
                                  '(rate(istio_requests_total[5m])), or press Alt+Down for the history.'));
            return;
        }
        ctl = new AbortController();
        const mine = ctl;
        replace(result, loading('the result'));
        const t0 = performance.now();
        try {
            let res;
            if (state.tab === 'table') {
                res = await apiGet('/api/v1/query', {query: state.expr, time: state.time || undefined}, mine.signal);
            } else {
                const rs = rangeSeconds(state.range);
                const end = Math.floor(Date.now() / 1000);
                res = await apiGet('/api/v1/query_range', {query: state.expr, start: end - rs, end,
                                                           step: autoStep(rs)}, mine.signal);
            }
            if (!alive || mine !== ctl) {
                return;
            }
            const ms = performance.now() - t0;
            const data = res.data || {resultType: 'vector', result: []};
            const n = data.resultType === 'vector' || data.resultType === 'matrix' ? data.result.length : 1;
            stats.textContent = `Load time: ${ms.toFixed(0)} ms · Result series: ${n}`;
            if (Array.isArray(res.warnings) && res.warnings.length) {
                replace(warnings, h('div', {class: 'state warning', role: 'status'},
                                    res.warnings.map((w) => h('div', null, `Warning: ${w}`))));
            }
            replace(result);
            if (state.tab === 'table') {
                result.append(resultTable(data));
            } else if (data.resultType !== 'matrix') {
                result.append(empty(`The graph needs a range vector; this expression gives a ${data.resultType}.`));
            } else {
                graph = resultGraph(result, data);
            }
        } catch (e) {
            if (e.name === 'AbortError' || !alive || mine !== ctl) {
                return;
            }
            replace(result);
            replace(queryError, errorBox(e, 'Error'));
        }
    }

    function execute(expr) {
        state.expr = expr;
        if (expr.trim()) {
            history = addHistory(history, expr);
        }
        saveRoute();
        run();
    }

    function setTab(tab) {
        if (state.tab !== tab) {
            state.tab = tab;
            saveRoute();
            run();
        }
    }

    function setRange(r) {
        state.range = r;
        saveRoute();
        run();
    }

    function setTime(sec) {
        state.time = sec;
        saveRoute();
        run();
    }

    function onTime() {
        const ms = new Date(timeIn.value).getTime();
        setTime(Number.isFinite(ms) ? Math.floor(ms / 1000) : null);
    }

    run();

    return {
        update(r) {
            const next = fromParams(r.params);
            if (!sameState(next, state)) {
                state = next;
                run();
            }
            return true;
        },
        unmount() {
            alive = false;
            if (ctl) {
                ctl.abort();
            }
            if (graph) {
                graph.destroy();
            }
        },
    };
}
