/*
 * pages/graph.js - the graph page, the UI's home: the mesh's service graph from /api/graph
 * (docs/graph.md) drawn with cytoscape, Kiali's way. This module wires the parts in
 * web/src/graph/: the settings live in the route (params.js), the toolbar reports changes
 * (toolbar.js), the elements go into cytoscape without moving what did not change
 * (layout.js), the look and labels come from style.js, the selected element's details from
 * panel.js, and the mTLS locks and traffic dots from anim.js.
 *
 * Test and debug hooks: window.__weftGraph is the cytoscape instance while the page is
 * mounted; the graph container's data-loads counts the graphs applied and data-mode tells how
 * the last one was applied ('data', 'relayout', 'fit', 'empty': no traffic, 'none': no
 * namespace chosen); data-fetch-start (performance.now()), data-fetch-ms and data-apply-ms time
 * the last /api/graph request and putting its answer on screen (labels, layout when needed,
 * filters).
 */
import cytoscape from 'cytoscape';

import {apiGet} from '../api.js';
import {replaceParams} from '../app.js';
import {createOverlay} from '../graph/anim.js';
import {compileFind} from '../graph/find.js';
import {applyGraph, fitView} from '../graph/layout.js';
import {createPanel} from '../graph/panel.js';
import {parseParams, responseTimeParam, toParams, windowLabel} from '../graph/params.js';
import {DENSE_EDGES, edgeHealth, edgeLabel, nodeHealth, nodeLabel, nodeName,
        stylesheet} from '../graph/style.js';
import {legend, renderToolbar} from '../graph/toolbar.js';
import {NO_DATA_HINT, empty, errorBox, h, loading, replace} from '../ui.js';

const PADDING = 30;

/* Every namespace with Istio request metrics, as a source or as a destination. */
async function fetchNamespaces(signal) {
    const params = {'match[]': 'istio_requests_total'};
    const [dst, src] = await Promise.all([
        apiGet('/api/v1/label/destination_workload_namespace/values', params, signal),
        apiGet('/api/v1/label/source_workload_namespace/values', params, signal),
    ]);
    const all = new Set([...(dst.data || []), ...(src.data || [])]);
    all.delete('unknown');
    all.delete('');
    return [...all].sort();
}

/* A node's line in the keyboard / screen-reader list. */
function nodeListText(d) {
    const version = d.version ? ` ${d.version}` : '';
    return `${nodeName(d)}${version} (${d.nodeType}, ${d.namespace || 'no namespace'})`;
}

function sameList(a, b) {
    return (a || []).join(',') === (b || []).join(',');
}

export function mount(el, route) {
    let s = parseParams(route.params);
    let allNamespaces = [];
    let timer = 0;
    let fetchAbort = null;
    let seq = 0;
    let loads = 0;
    let focusPending = s.focus;
    let toolbar = null;

    const toolbarEl = h('div', {class: 'graph-toolbars'});
    const cyEl = h('div', {class: 'graph-cy', 'data-testid': 'graph-canvas', tabindex: '0',
                           role: 'application',
                           'aria-label': 'Service graph. Arrow keys move between nodes, Escape ' +
                                         'clears the selection, + and - zoom, 0 fits.'});
    const stateEl = h('div', {class: 'graph-state', 'data-testid': 'graph-state'});
    const legendEl = h('div', {class: 'graph-legend-wrap', hidden: true});
    const nodeList = h('ul', {class: 'graph-nodelist', 'data-testid': 'graph-nodelist',
                              'aria-label': 'Nodes of the graph'});
    const panelEl = h('aside', {class: 'graph-panel panel', 'data-testid': 'graph-panel', hidden: true,
                                'aria-label': 'Selected node or edge', 'aria-live': 'polite'});
    el.append(h('div', {class: 'graph-page'}, toolbarEl,
                h('div', {class: 'graph-body'},
                  h('div', {class: 'graph-main'}, cyEl, stateEl, legendEl, nodeList), panelEl)));

    const cy = cytoscape({container: cyEl, style: stylesheet(), elements: [], minZoom: 0.05, maxZoom: 4,
                          boxSelectionEnabled: false, autoungrabify: false});
    window.__weftGraph = cy;
    const overlay = createOverlay(cy, cyEl);
    /* The panel opening or the window resizing changes the canvas' size; cytoscape only
     * watches the window. */
    let size = {w: cyEl.clientWidth, h: cyEl.clientHeight};
    const resizer = new ResizeObserver(() => {
        /* Keep what was in the middle of the view in the middle. */
        const w = cyEl.clientWidth;
        const ht = cyEl.clientHeight;
        cy.resize();
        if (size.w > 0 && size.h > 0 && cy.elements().length > 0) {
            cy.panBy({x: (w - size.w) / 2, y: (ht - size.h) / 2});
        }
        size = {w, h: ht};
    });
    resizer.observe(cyEl);
    const panel = createPanel(panelEl);

    function selected() {
        const sel = cy.$(':selected');
        return sel.length > 0 ? sel[0] : null;
    }

    function decorate(graph) {
        const els = graph.elements || {};
        for (const n of els.nodes || []) {
            n.classes = `h-${nodeHealth(n.data)}`;
            n.data._label = nodeLabel(n.data, {badges: s.badges, namespaces: s.namespaces});
        }
        const dense = (els.edges || []).length > DENSE_EDGES ? ' dense' : '';
        for (const e of els.edges || []) {
            e.classes = `h-${edgeHealth(e.data)}${dense}`;
            e.data._label = edgeLabel(e.data, s.edgeLabel);
        }
    }

    function relabel() {
        cy.batch(() => {
            const opts = {badges: s.badges, namespaces: s.namespaces};
            cy.nodes().forEach((n) => n.data('_label', nodeLabel(n.data(), opts)));
            cy.edges().forEach((e) => e.data('_label', edgeLabel(e.data(), s.edgeLabel)));
        });
    }

    /* Find highlights, hide removes from view; both are classes so positions are kept. */
    function applyFilters() {
        const find = compileFind(s.find);
        const hide = compileFind(s.hide);
        const bad = [find, hide].find((f) => f && f.error);
        if (toolbar) {
            toolbar.setFindError(bad ? bad.error : '');
        }
        cy.batch(() => {
            cy.nodes().forEach((n) => {
                const d = n.data();
                n.toggleClass('found', Boolean(find && find.match && find.match(d)));
                const gone = Boolean(hide && hide.match && hide.match(d));
                n.toggleClass('gone', gone);
            });
            /* A box whose versions are all hidden goes too. */
            cy.nodes(':parent').forEach((b) => {
                if (b.children().every((c) => c.hasClass('gone'))) {
                    b.addClass('gone');
                }
            });
        });
        renderNodeList();
    }

    function renderNodeList() {
        const nodes = cy.nodes().filter((n) => !n.isParent() && !n.hasClass('gone'));
        replace(nodeList, nodes.map((n) => h('li', null,
                                             h('button', {type: 'button', onclick: () => selectNode(n)},
                                               nodeListText(n.data())))));
    }

    function selectNode(n) {
        cy.elements().unselect();
        n.select();
        /* Bring it into view only when it is outside: the view does not jump around. */
        const bb = n.boundingBox();
        const ext = cy.extent();
        if (bb.x1 < ext.x1 || bb.x2 > ext.x2 || bb.y1 < ext.y1 || bb.y2 > ext.y2) {
            cy.center(n);
        }
    }

    function selectFocus() {
        if (!focusPending || cy.nodes().length === 0) {
            return;
        }
        const want = focusPending;
        focusPending = '';
        /* The traces page links with a span's service (an app): in a versioned-app graph that
         * is the app's box. */
        const nodes = cy.nodes();
        const match = nodes.filter((n) => nodeName(n.data()) === want)[0] ||
                      nodes.filter((n) => [n.data('app'), n.data('service'),
                                           n.data('workload')].includes(want))[0];
        if (match) {
            selectNode(match);
        }
    }

    function showState(node) {
        replace(stateEl, node);
        stateEl.hidden = !node;
    }

    async function load() {
        if (s.namespaces === null) {
            return; /* the namespace list is on its way and brings the default */
        }
        const namespaces = s.namespaces || [];
        if (namespaces.length === 0) {
            cy.elements().remove();
            panel.close();
            showState(allNamespaces.length === 0 ? empty('No traffic yet.', NO_DATA_HINT)
                                                 : empty('No namespace chosen.',
                                                         'Pick one or more namespaces in the toolbar.'));
            renderNodeList();
            applied('none');
            return;
        }
        if (fetchAbort) {
            fetchAbort.abort();
        }
        fetchAbort = new AbortController();
        const mine = ++seq;
        if (cy.elements().length > 0) {
            toolbar.setStatus(h('span', {class: 'spinner'}), 'Refreshing…');
        } else {
            showState(loading('the graph'));
        }
        let graph;
        const t0 = performance.now();
        try {
            const params = {namespaces: namespaces.join(','), graphType: s.graphType,
                            duration: s.duration, responseTime: responseTimeParam(s.edgeLabel),
                            queryTime: s.queryTime || undefined};
            graph = await apiGet('/api/graph', params, fetchAbort.signal);
        } catch (e) {
            if (e.name === 'AbortError' || mine !== seq || cy.destroyed()) {
                return;
            }
            toolbar.setStatus('');
            /* The graph on screen (if any) stays: the error says it is not current. */
            showState(errorBox(e, cy.elements().length > 0 ? 'Refresh failed, the graph shown is older'
                                                            : 'Graph failed'));
            return;
        }
        if (mine !== seq || cy.destroyed()) {
            return;
        }
        const t1 = performance.now();
        decorate(graph);
        const nodes = (graph.elements && graph.elements.nodes) || [];
        let mode = 'empty';
        if (nodes.length === 0) {
            cy.elements().remove();
            panel.close();
            showState(empty(`No traffic in ${namespaces.join(', ')} over the last ` +
                            `${windowLabel(s.duration)}.`, NO_DATA_HINT));
        } else {
            const keep = selected();
            mode = applyGraph(cy, graph, PADDING);
            showState(null);
            applyFilters();
            const again = keep && cy.getElementById(keep.id());
            if (again && again.length > 0 && again.selected()) {
                panel.show(again, s);
            } else if (keep) {
                panel.close();
            }
            selectFocus();
        }
        applied(mode);
        cyEl.dataset.fetchStart = t0.toFixed(1);
        cyEl.dataset.fetchMs = (t1 - t0).toFixed(1);
        cyEl.dataset.applyMs = (performance.now() - t1).toFixed(1);
        const t = new Date();
        toolbar.setStatus(`Updated ${t.toLocaleTimeString([], {hour12: false})}`);
    }

    function applied(mode) {
        loads++;
        cyEl.dataset.mode = mode;
        cyEl.dataset.loads = String(loads);
    }

    function startTimer() {
        clearInterval(timer);
        timer = 0;
        if (s.refresh > 0) {
            timer = setInterval(() => {
                if (!document.hidden) {
                    load();
                }
            }, s.refresh * 1000);
        }
    }

    function drawToolbar() {
        const offered = [...new Set([...allNamespaces, ...(s.namespaces || [])])].sort();
        toolbar = renderToolbar(toolbarEl, s, offered, {
            onChange: (patch) => {
                const next = {...s, ...patch};
                replaceParams(toParams(next));
                applySettings(next, false);
            },
            onFit: () => fitView(cy, PADDING),
            onRefresh: () => load(),
        });
        toolbar.legendButton.addEventListener('click', () => {
            legendEl.hidden = !legendEl.hidden;
            toolbar.legendButton.setAttribute('aria-expanded', String(!legendEl.hidden));
        });
        replace(legendEl, legend());
    }

    /* Move to settings next; fromRoute: the change came from the URL, so the toolbar is drawn
     * again to show it (a change made in the toolbar already shows). */
    function applySettings(next, fromRoute) {
        if (next.namespaces === null) {
            next.namespaces = s.namespaces;
        }
        const prev = s;
        s = next;
        if (fromRoute) {
            drawToolbar();
        }
        if (prev.refresh !== s.refresh) {
            startTimer();
        }
        overlay.setOptions({mtls: s.mtls, animation: s.animation});
        if (s.focus && s.focus !== prev.focus) {
            focusPending = s.focus;
        }
        if (!sameList(prev.namespaces, s.namespaces) || prev.graphType !== s.graphType ||
            prev.duration !== s.duration || prev.queryTime !== s.queryTime ||
            responseTimeParam(prev.edgeLabel) !== responseTimeParam(s.edgeLabel)) {
            load();
            return;
        }
        if (prev.edgeLabel !== s.edgeLabel || prev.badges !== s.badges) {
            relabel();
        }
        if (prev.find !== s.find || prev.hide !== s.hide) {
            applyFilters();
        }
        selectFocus();
    }

    cy.on('select', 'node, edge', (ev) => panel.show(ev.target, s));
    cy.on('unselect', 'node, edge', () => {
        /* A click on another element unselects first: wait to see whether anything is left. */
        setTimeout(() => {
            if (!cy.destroyed() && !selected()) {
                panel.close();
            }
        }, 0);
    });

    cyEl.addEventListener('keydown', (ev) => {
        const nodes = cy.nodes().filter((n) => !n.isParent() && !n.hasClass('gone')).toArray()
            .sort((a, b) => a.position('x') - b.position('x') || a.position('y') - b.position('y'));
        const middle = {x: cyEl.clientWidth / 2, y: cyEl.clientHeight / 2};
        if (['ArrowRight', 'ArrowDown', 'ArrowLeft', 'ArrowUp'].includes(ev.key)) {
            if (nodes.length === 0) {
                return;
            }
            const cur = selected();
            const i = cur ? nodes.findIndex((n) => n.id() === cur.id()) : -1;
            const fwd = ev.key === 'ArrowRight' || ev.key === 'ArrowDown';
            const j = i < 0 ? (fwd ? 0 : nodes.length - 1)
                            : (i + (fwd ? 1 : nodes.length - 1)) % nodes.length;
            selectNode(nodes[j]);
        } else if (ev.key === 'Escape') {
            cy.elements().unselect();
        } else if (ev.key === '+' || ev.key === '=') {
            cy.zoom({level: cy.zoom() * 1.2, renderedPosition: middle});
        } else if (ev.key === '-') {
            cy.zoom({level: cy.zoom() / 1.2, renderedPosition: middle});
        } else if (ev.key === '0') {
            fitView(cy, PADDING);
        } else {
            return;
        }
        ev.preventDefault();
    });

    drawToolbar();
    overlay.setOptions({mtls: s.mtls, animation: s.animation});
    showState(loading('namespaces'));
    const nsAbort = new AbortController();
    /* Namespaces named in the route need not wait for the list: both requests go at once. */
    const waitForList = s.namespaces === null;
    if (!waitForList) {
        startTimer();
        load();
    }
    fetchNamespaces(nsAbort.signal).then((list) => {
        allNamespaces = list;
        if (s.namespaces === null) {
            s = {...s, namespaces: list};
        }
        drawToolbar();
        if (waitForList || s.namespaces.length === 0) {
            startTimer();
            load();
        }
    }, (e) => {
        if (e.name === 'AbortError') {
            return;
        }
        /* Without the list the page still works for the namespaces in the route. */
        allNamespaces = [];
        if (s.namespaces === null) {
            showState(errorBox(e, 'Listing namespaces failed'));
            s = {...s, namespaces: []};
        }
        drawToolbar();
    });

    return {
        update(r) {
            if (r.path.length > 1) {
                return false;
            }
            applySettings(parseParams(r.params), true);
            return true;
        },
        unmount() {
            clearInterval(timer);
            nsAbort.abort();
            if (fetchAbort) {
                fetchAbort.abort();
            }
            panel.destroy();
            overlay.destroy();
            resizer.disconnect();
            cy.destroy();
            if (window.__weftGraph === cy) {
                delete window.__weftGraph;
            }
        },
    };
}
