/*
 * pages/mesh.js - the mesh page: what the control plane knows, as the collector relays it
 * (/api/mesh/*): services, workloads with their proxies' sync state, and the Istio resources
 * with their validation messages, each openable as the YAML that was applied (read-only).
 *
 * Route: #/mesh?tab=services|workloads|config&ns=<namespace>&open=<Kind>/<ns>/<name>. Health
 * comes from /api/graph (service and workload graphs over 10 minutes, Kiali's rules), fetched
 * beside the mesh data; a graph that fails only leaves the health column empty. A collector
 * without --control answers 404, which is shown as an empty state saying how to connect one.
 * The data is re-read every REFRESH_MS while the page is open (the collector caches the
 * control plane's answers, so many open pages cost it one read).
 */
import {apiGet} from '../api.js';
import {replaceParams} from '../app.js';
import {empty, errorBox, h, loading, replace} from '../ui.js';

const REFRESH_MS = 15000;
const TABS = [
    {id: 'services', label: 'Services'},
    {id: 'workloads', label: 'Workloads'},
    {id: 'config', label: 'Istio config'},
];

/* Kiali's badge names -> the short label shown in a chip, and what it means. */
const BADGES = [
    ['hasVS', 'VS', 'a VirtualService routes this service'],
    ['hasTrafficShifting', 'Shift', 'traffic split over weighted destinations'],
    ['hasFaultInjection', 'Fault', 'fault injection'],
    ['hasRequestTimeout', 'Timeout', 'request timeout'],
    ['hasMirroring', 'Mirror', 'traffic mirroring'],
    ['hasCB', 'CB', 'circuit breaker (connectionPool or outlierDetection)'],
    ['hasMissingSC', 'No sidecar', 'a workload runs without a sidecar'],
];

/* Fields that change at every read without anything having changed. */
const VOLATILE = new Set(['leaseRemainingMs', 'lastPollMs']);

const LEVEL_ICON = {valid: '✔', info: 'ℹ', warning: '⚠', error: '✖'};

function healthCell(health) {
    if (!health || health === 'NA') {
        return h('td', {class: 'muted'}, health === 'NA' ? 'no traffic' : '–');
    }
    return h('td', {class: `health-${health.toLowerCase()}`},
             h('span', {class: 'mesh-dot', 'aria-hidden': 'true'}), health);
}

function badgeChips(badges) {
    const chips = BADGES.filter(([k]) => badges && badges[k])
        .map(([, label, title]) => h('span', {class: 'mesh-chip', title}, label));
    return chips.length ? chips : h('span', {class: 'muted'}, '–');
}

function syncChip(proxy) {
    if (!proxy) {
        return h('span', {class: 'muted', title: 'no proxy has polled for this workload'}, 'no proxy');
    }
    const st = proxy.state || 'UNKNOWN';
    return h('span', {class: `mesh-sync mesh-sync-${st.toLowerCase()}`, title: proxy.reason || st}, st);
}

function fmtLease(ms) {
    if (!Number.isFinite(ms)) {
        return '–';
    }
    const s = Math.round(ms / 1000);
    return s >= 120 ? `${Math.floor(s / 60)}m` : `${s}s`;
}

function namesList(list) {
    return list && list.length ? list.join(', ') : h('span', {class: 'muted'}, '–');
}

/* node health by "<ns>/<name>" from a graph answer; field: 'service' or 'workload'. */
function healthIndex(graphAnswer, field) {
    const out = new Map();
    const nodes = graphAnswer && graphAnswer.elements ? graphAnswer.elements.nodes : [];
    for (const n of nodes || []) {
        const d = n.data;
        if (d && d[field] && d.namespace && d.health) {
            out.set(`${d.namespace}/${d[field]}`, d.health);
        }
    }
    return out;
}

export function mount(el, route) {
    let state = {
        tab: route.params.get('tab') || 'services',
        ns: route.params.get('ns') || '',
        open: route.params.get('open') || '',
    };
    let data = null; /* {services, workloads, config, namespaces, svcHealth, wlHealth} */
    let dataKey = '';
    let shownOpen = null; /* the resource the side panel shows */
    let timer = null;
    let seq = 0;
    let detailSeq = 0;
    let gone = false;

    const tabBar = h('div', {class: 'mesh-tabs', role: 'tablist'});
    const nsSelect = h('select', {'aria-label': 'Namespace', 'data-testid': 'mesh-ns',
                                  onchange: () => setState({ns: nsSelect.value})});
    const updated = h('span', {class: 'muted mesh-updated'});
    const refreshBtn = h('button', {type: 'button', 'data-testid': 'mesh-refresh', onclick: () => load()},
                             'Refresh');
    const body = h('div', {class: 'mesh-body'});
    const tableBox = h('div', {class: 'mesh-table'});
    const detail = h('aside', {class: 'mesh-detail panel', 'data-testid': 'mesh-detail', hidden: true});
    body.append(tableBox, detail);
    el.append(h('div', {class: 'mesh-page'},
                h('div', {class: 'toolbar'}, tabBar, h('label', null, 'Namespace', nsSelect), refreshBtn, updated),
                body));
    replace(tableBox, loading('the mesh'));

    function setState(patch) {
        state = {...state, ...patch};
        const params = {tab: state.tab === 'services' ? '' : state.tab, ns: state.ns, open: state.open};
        replaceParams(params);
        render();
    }

    async function load() {
        const my = ++seq;
        refreshBtn.disabled = true;
        try {
            const [services, workloads, config] = await Promise.all([
                apiGet('/api/mesh/services'), apiGet('/api/mesh/workloads'), apiGet('/api/mesh/config')]);
            const namespaces = [...new Set([...services.services.map((s) => s.namespace),
                                            ...workloads.workloads.map((w) => w.namespace)])]
                .filter(Boolean).sort();
            let svcHealth = new Map();
            let wlHealth = new Map();
            if (namespaces.length > 0) {
                const ns = namespaces.join(',');
                const [sg, wg] = await Promise.all([
                    apiGet('/api/graph', {namespaces: ns, graphType: 'service', duration: '10m'}).catch(() => null),
                    apiGet('/api/graph', {namespaces: ns, graphType: 'workload', duration: '10m'}).catch(() => null)]);
                svcHealth = healthIndex(sg, 'service');
                wlHealth = healthIndex(wg, 'workload');
            }
            if (gone || my !== seq) {
                return;
            }
            updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
            /* Unchanged data is not redrawn, so a refresh keeps focus, selection and scroll;
             * leases only count down, in place. */
            const key = JSON.stringify([services, workloads, config, [...svcHealth], [...wlHealth]],
                                       (k, v) => (VOLATILE.has(k) ? undefined : v));
            if (data && key === dataKey) {
                data.workloads = workloads.workloads;
                for (const w of state.tab === 'workloads' ? data.workloads : []) {
                    const cell = tableBox.querySelector(`tr[data-name="${CSS.escape(w.name)}"] td.mesh-lease`);
                    if (cell && w.registered) {
                        cell.textContent = fmtLease(w.leaseRemainingMs);
                    }
                }
                return;
            }
            dataKey = key;
            data = {services: services.services, workloads: workloads.workloads, config: config.resources,
                    namespaces, svcHealth, wlHealth};
            shownOpen = null; /* the open resource may have changed too */
            render();
        } catch (e) {
            if (gone || my !== seq) {
                return;
            }
            data = null;
            detail.hidden = true;
            if (e.status === 404) {
                replace(tableBox, h('div', {'data-testid': 'mesh-not-connected'},
                                    empty('Not connected to a control plane', e.message)));
            } else {
                replace(tableBox, errorBox(e, 'Cannot read the mesh'));
            }
        } finally {
            refreshBtn.disabled = false;
        }
    }

    function inNs(x) {
        return !state.ns || x.namespace === state.ns;
    }

    function renderTabs() {
        const counts = data ? {
            services: data.services.filter(inNs).length,
            workloads: data.workloads.filter(inNs).length,
            config: data.config.filter(inNs).length,
        } : {};
        replace(tabBar, TABS.map((t) => h('button', {
            type: 'button', role: 'tab', class: t.id === state.tab ? 'active' : '',
            'aria-selected': t.id === state.tab ? 'true' : 'false', 'data-tab': t.id,
            onclick: () => setState({tab: t.id}),
        }, t.label, data ? h('span', {class: 'mesh-count'}, String(counts[t.id])) : null)));
        const opts = [h('option', {value: ''}, 'All namespaces')];
        for (const ns of data ? data.namespaces : []) {
            opts.push(h('option', {value: ns, selected: ns === state.ns}, ns));
        }
        replace(nsSelect, opts);
        nsSelect.value = state.ns;
    }

    function servicesTable() {
        const rows = data.services.filter(inNs).map((s) => h('tr', {'data-name': s.name},
            h('td', null, h('strong', null, s.name)),
            h('td', null, s.namespace),
            healthCell(data.svcHealth.get(`${s.namespace}/${s.name}`)),
            h('td', null, s.versions.join(', ') || '–'),
            h('td', {class: 'num'}, String(s.workloads)),
            h('td', null, namesList(s.virtualServices)),
            h('td', null, namesList(s.destinationRules)),
            h('td', {class: 'mesh-chips'}, badgeChips(s.badges)),
            h('td', null, s.inMesh ? 'yes' : h('span', {class: 'mesh-warn'}, 'missing sidecar'))));
        if (rows.length === 0) {
            return empty('No services registered', 'Workloads appear here once their proxies register with the control plane.');
        }
        return h('table', {class: 'data', 'data-testid': 'mesh-services'},
                 h('thead', null, h('tr', null, ['Service', 'Namespace', 'Health', 'Versions', 'Workloads',
                                                 'VirtualServices', 'DestinationRules', 'Badges', 'In mesh']
                     .map((c) => h('th', {scope: 'col'}, c)))),
                 h('tbody', null, rows));
    }

    function workloadsTable() {
        const rows = data.workloads.filter(inNs).map((w) => h('tr', {'data-name': w.name},
            h('td', null, h('strong', null, w.name)),
            h('td', null, w.namespace || '–'),
            healthCell(data.wlHealth.get(`${w.namespace}/${w.name}`)),
            h('td', null, w.app || '–'),
            h('td', null, w.version || '–'),
            h('td', null, syncChip(w.proxy)),
            h('td', {class: 'mesh-lease'},
              w.registered ? fmtLease(w.leaseRemainingMs) : h('span', {class: 'mesh-warn'}, 'not registered')),
            h('td', null, w.inMesh ? 'yes' : h('span', {class: 'mesh-warn'}, 'missing sidecar'))));
        if (rows.length === 0) {
            return empty('No workloads registered', 'Start proxies with --control pointing at the control plane.');
        }
        return h('table', {class: 'data', 'data-testid': 'mesh-workloads'},
                 h('thead', null, h('tr', null, ['Workload', 'Namespace', 'Health', 'App', 'Version', 'Proxy sync',
                                                 'Lease', 'In mesh'].map((c) => h('th', {scope: 'col'}, c)))),
                 h('tbody', null, rows));
    }

    function resKey(r) {
        return `${r.kind}/${r.namespace}/${r.name}`;
    }

    function configTable() {
        const rows = data.config.filter(inNs).map((r) => {
            const key = resKey(r);
            const first = r.messages[0];
            return h('tr', {
                class: `mesh-row${key === state.open ? ' selected' : ''}`, tabindex: '0', 'data-key': key,
                'aria-label': `${r.kind} ${r.namespace}/${r.name}: ${r.validation}`,
                onclick: () => setState({open: key}),
                onkeydown: (ev) => {
                    if (ev.key === 'Enter' || ev.key === ' ') {
                        ev.preventDefault();
                        setState({open: key});
                    }
                },
            },
            h('td', {class: `mesh-valid mesh-level-${r.validation}`, title: r.validation},
              LEVEL_ICON[r.validation] || '?'),
            h('td', null, r.kind),
            h('td', null, r.namespace),
            h('td', null, h('strong', null, r.name)),
            h('td', {class: 'mesh-msg'}, first
                ? [h('span', {class: 'mono'}, first.code), ' ', first.message,
                   r.messages.length > 1 ? h('span', {class: 'muted'}, ` (+${r.messages.length - 1} more)`) : null]
                : h('span', {class: 'muted'}, 'no issues')));
        });
        if (rows.length === 0) {
            return empty('No Istio resources', 'Apply some with `weft apply -f FILE`.');
        }
        return h('table', {class: 'data mesh-config', 'data-testid': 'mesh-config'},
                 h('thead', null, h('tr', null, ['', 'Kind', 'Namespace', 'Name', 'Validation']
                     .map((c) => h('th', {scope: 'col'}, c)))),
                 h('tbody', null, rows));
    }

    async function renderDetail() {
        if (state.tab !== 'config' || !state.open) {
            detail.hidden = true;
            return;
        }
        const [kind, ns, ...rest] = state.open.split('/');
        const name = rest.join('/');
        detail.hidden = false;
        const my = ++detailSeq;
        const close = h('button', {type: 'button', class: 'mesh-close', 'aria-label': 'Close',
                                   onclick: () => setState({open: ''})}, '×');
        replace(detail, h('header', null, h('h2', null, `${kind} ${ns}/${name}`), close), loading('YAML'));
        try {
            const path = ['/api/mesh/config', kind, ns, name].map((s, i) => (i ? encodeURIComponent(s) : s)).join('/');
            const r = await apiGet(path);
            if (gone || my !== detailSeq) {
                return;
            }
            const msgs = r.messages.length
                ? h('ul', {class: 'mesh-messages'}, r.messages.map((m) => h('li', {class: `mesh-level-${m.level}`},
                    h('span', {class: 'mesh-valid'}, LEVEL_ICON[m.level] || '?'), ' ',
                    h('span', {class: 'mono'}, m.code), ' ', h('span', {class: 'mono muted'}, m.path), h('br'), m.message)))
                : h('p', {class: 'mesh-level-valid'}, `${LEVEL_ICON.valid} No validation issues`);
            replace(detail, h('header', null, h('h2', null, `${r.kind} ${r.namespace}/${r.name}`), close),
                    h('div', {class: 'muted mesh-meta'}, `${r.apiVersion} · resourceVersion ${r.resourceVersion}`,
                      r.creationTimestamp ? ` · created ${r.creationTimestamp}` : ''),
                    msgs,
                    h('pre', {class: 'mesh-yaml mono', 'data-testid': 'mesh-yaml', tabindex: '0'}, r.yaml));
        } catch (e) {
            if (!gone && my === detailSeq) {
                replace(detail, h('header', null, h('h2', null, `${kind} ${ns}/${name}`), close), errorBox(e));
            }
        }
    }

    function render() {
        renderTabs();
        if (!data) {
            return;
        }
        const table = state.tab === 'workloads' ? workloadsTable()
            : state.tab === 'config' ? configTable() : servicesTable();
        replace(tableBox, table);
        body.classList.toggle('with-detail', state.tab === 'config' && !!state.open);
        const want = state.tab === 'config' ? state.open : '';
        if (want !== shownOpen) {
            shownOpen = want;
            renderDetail();
        }
    }

    renderTabs();
    load();
    timer = setInterval(() => {
        if (!document.hidden) {
            load();
        }
    }, REFRESH_MS);

    return {
        update(r) {
            const next = {tab: r.params.get('tab') || 'services', ns: r.params.get('ns') || '',
                          open: r.params.get('open') || ''};
            if (next.tab !== state.tab || next.ns !== state.ns || next.open !== state.open) {
                state = next;
                render();
            }
            return true;
        },
        unmount() {
            gone = true;
            clearInterval(timer);
        },
    };
}
