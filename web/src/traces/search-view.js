/*
 * traces/search-view.js - the trace search: the form (service, operation, tags, lookback or a
 * custom window, min/max duration, limit) on the left, the scatter and the sorted result list
 * on the right. The form's state lives in the route (#/traces?service=...), so a search can be
 * linked to (the graph page does) and it runs as soon as a service is given.
 */
import {apiGet} from '../api.js';
import {navigate, replaceParams} from '../app.js';
import {NO_DATA_HINT, empty, errorBox, h, loading, replace} from '../ui.js';

import {buildTrace} from './model.js';
import {DEFAULT_LIMIT, LOOKBACKS, SORTS, apiParams, searchFromParams, searchToParams} from './query.js';
import {resultList, sortTraces} from './result-list.js';
import {scatter} from './scatter.js';

function option(value, label, selected) {
    return h('option', {value, selected: value === selected}, label);
}

export function mountSearch(el, route) {
    let q = searchFromParams(route.params);
    let services = null;
    let chart = null;
    let found = null; /* built traces of the last search */
    let searchCtl = null;
    let opsCtl = null;
    let alive = true;

    const serviceSel = h('select', {name: 'service', 'data-testid': 'service', required: true});
    const operationSel = h('select', {name: 'operation', 'data-testid': 'operation'});
    const tagsIn = h('input', {name: 'tags', 'data-testid': 'tags', placeholder: 'http.status_code=500 error=true',
                               spellcheck: 'false', autocomplete: 'off'});
    const lookbackSel = h('select', {name: 'lookback', 'data-testid': 'lookback'},
                          LOOKBACKS.map(([v, l]) => option(v, l, q.lookback)));
    const startIn = h('input', {type: 'datetime-local', name: 'start', 'data-testid': 'start', step: 1});
    const endIn = h('input', {type: 'datetime-local', name: 'end', 'data-testid': 'end', step: 1});
    const customBox = h('div', {class: 'custom-range'}, h('label', null, 'Start', startIn),
                        h('label', null, 'End', endIn));
    const minIn = h('input', {name: 'minDuration', 'data-testid': 'min-duration', placeholder: 'e.g. 10ms',
                              size: 8});
    const maxIn = h('input', {name: 'maxDuration', 'data-testid': 'max-duration', placeholder: 'e.g. 1.2s',
                              size: 8});
    const limitIn = h('input', {type: 'number', name: 'limit', 'data-testid': 'limit', min: 1, max: 1500});
    const formError = h('div', {class: 'form-error', role: 'alert'});
    const form = h('form', {class: 'panel trace-search-form', 'data-testid': 'trace-search', onsubmit: onSubmit},
                   h('h2', null, 'Search'),
                   h('label', null, 'Service', serviceSel),
                   h('label', null, 'Operation', operationSel),
                   h('label', null, h('span', null, 'Tags ', h('span', {class: 'muted'}, '(logfmt)')), tagsIn),
                   h('label', null, 'Lookback', lookbackSel),
                   customBox,
                   h('div', {class: 'row'}, h('label', null, 'Min duration', minIn),
                     h('label', null, 'Max duration', maxIn)),
                   h('label', null, 'Limit results', limitIn),
                   formError,
                   h('button', {type: 'submit', class: 'primary', 'data-testid': 'find-traces'}, 'Find traces'));
    const sortSel = h('select', {'data-testid': 'sort', onchange: onSort}, SORTS.map(([v, l]) => option(v, l, q.sort)));
    const summary = h('span', {class: 'muted', 'data-testid': 'result-count'});
    const chartBox = h('div', {class: 'panel trace-scatter', 'data-testid': 'trace-scatter'});
    const listBox = h('div', {class: 'trace-list'});
    const results = h('section', {class: 'trace-search-results'},
                      h('div', {class: 'toolbar'}, summary, h('label', {class: 'sort'}, 'Sort', sortSel)),
                      chartBox, listBox);
    el.append(h('div', {class: 'traces-search'}, form, results));

    lookbackSel.addEventListener('change', () => {
        customBox.hidden = lookbackSel.value !== 'custom';
    });
    serviceSel.addEventListener('change', () => loadOperations(serviceSel.value, ''));

    function fillForm() {
        tagsIn.value = q.tags;
        /* a window the list does not offer (the graph links with its own, e.g. 1m) is added */
        if (/^\d+[mhd]$/.test(q.lookback) && !LOOKBACKS.some(([v]) => v === q.lookback)) {
            lookbackSel.prepend(option(q.lookback, `Last ${q.lookback}`, q.lookback));
        }
        lookbackSel.value = q.lookback;
        customBox.hidden = q.lookback !== 'custom';
        startIn.value = q.start;
        endIn.value = q.end;
        minIn.value = q.minDuration;
        maxIn.value = q.maxDuration;
        limitIn.value = q.limit || String(DEFAULT_LIMIT);
        sortSel.value = q.sort;
        if (services) {
            fillServices();
        }
    }

    function readForm() {
        return {
            service: serviceSel.value,
            operation: operationSel.value,
            tags: tagsIn.value.trim(),
            lookback: lookbackSel.value,
            start: startIn.value,
            end: endIn.value,
            minDuration: minIn.value.trim(),
            maxDuration: maxIn.value.trim(),
            limit: limitIn.value.trim() || String(DEFAULT_LIMIT),
            sort: sortSel.value,
        };
    }

    function fillServices() {
        const names = services.slice();
        if (q.service && !names.includes(q.service)) {
            names.push(q.service);
        }
        replace(serviceSel, option('', names.length ? 'Choose a service' : 'No services', q.service),
                names.map((s) => option(s, s, q.service)));
        serviceSel.value = q.service;
        loadOperations(q.service, q.operation);
    }

    async function loadOperations(service, selected) {
        if (opsCtl) {
            opsCtl.abort();
        }
        replace(operationSel, option('', 'all', selected));
        if (!service) {
            return;
        }
        opsCtl = new AbortController();
        try {
            const res = await apiGet(`/api/services/${encodeURIComponent(service)}/operations`, null,
                                     opsCtl.signal);
            const ops = (res.data || []).slice().sort();
            if (selected && !ops.includes(selected)) {
                ops.push(selected);
            }
            replace(operationSel, option('', 'all', selected), ops.map((o) => option(o, o, selected)));
            operationSel.value = selected || '';
        } catch (e) {
            if (e.name !== 'AbortError' && alive) {
                formError.textContent = `Operations of ${service}: ${e.message}`;
            }
        }
    }

    async function loadServices() {
        replace(listBox, loading('services'));
        try {
            const res = await apiGet('/api/services');
            if (!alive) {
                return;
            }
            services = (res.data || []).slice().sort();
            fillServices();
            if (services.length === 0 && !q.service) {
                chartBox.hidden = true;
                replace(listBox, empty('No services have sent traces yet.', NO_DATA_HINT));
            } else if (q.service) {
                search();
            } else {
                chartBox.hidden = true;
                replace(listBox, empty('Choose a service to find its traces.',
                                       `${services.length} services have sent traces.`));
            }
        } catch (e) {
            if (alive) {
                replace(listBox, errorBox(e, 'Services'));
            }
        }
    }

    function showResults() {
        if (chart) {
            chart.destroy();
            chart = null;
        }
        replace(chartBox);
        if (found.length === 0) {
            chartBox.hidden = true;
            summary.textContent = '0 traces';
            replace(listBox, empty('No traces in this window.',
                                   'Widen the lookback, loosen the tags or durations, or check that ' +
                                   'the proxies sample this service\'s requests.'));
            return;
        }
        chartBox.hidden = false;
        summary.textContent = `${found.length} trace${found.length === 1 ? '' : 's'}`;
        chart = scatter(chartBox, found, (id) => navigate(['traces', id]));
        replace(listBox, resultList(sortTraces(found, q.sort)));
    }

    async function search() {
        formError.textContent = '';
        if (!q.service) {
            return;
        }
        let params;
        try {
            params = apiParams(q, Date.now());
        } catch (e) {
            formError.textContent = e.message;
            return;
        }
        if (searchCtl) {
            searchCtl.abort();
        }
        searchCtl = new AbortController();
        const ctl = searchCtl;
        summary.textContent = '';
        chartBox.hidden = true;
        replace(listBox, loading('traces'));
        try {
            const res = await apiGet('/api/traces', params, ctl.signal);
            if (!alive || ctl !== searchCtl) {
                return;
            }
            found = (res.data || []).map(buildTrace);
            showResults();
        } catch (e) {
            if (e.name !== 'AbortError' && alive && ctl === searchCtl) {
                replace(listBox, errorBox(e, 'Search'));
            }
        }
    }

    function onSubmit(ev) {
        ev.preventDefault();
        q = readForm();
        if (!q.service) {
            formError.textContent = 'Choose a service.';
            return;
        }
        replaceParams(searchToParams(q));
        search();
    }

    function onSort() {
        q.sort = sortSel.value;
        replaceParams(searchToParams(q));
        if (found && found.length) {
            replace(listBox, resultList(sortTraces(found, q.sort)));
        }
    }

    fillForm();
    loadServices();

    return {
        update(r) {
            if (r.path.length > 1) {
                return false;
            }
            q = searchFromParams(r.params);
            fillForm();
            search();
            return true;
        },
        unmount() {
            alive = false;
            if (searchCtl) {
                searchCtl.abort();
            }
            if (opsCtl) {
                opsCtl.abort();
            }
            if (chart) {
                chart.destroy();
            }
        },
    };
}
