/*
 * graph/layout.js - puts the API's elements into cytoscape and keeps the picture stable.
 *
 * A refresh whose nodes and edges are the same set as on screen (same ids, same parents, same
 * ends: the API's ids are hashes of identities, so they survive refreshes) only updates the
 * elements' data: nothing moves. When nodes or edges come or go, the new set is laid out again
 * with dagre (left to right) while the viewport (zoom, pan) stays where the user left it; only
 * a graph that shares no node with the one on screen (first load, another graph type or
 * namespace) is fitted to the view.
 */
import cytoscape from 'cytoscape';
import dagre from 'cytoscape-dagre';

cytoscape.use(dagre);

export const LAYOUT = {
    name: 'dagre',
    rankDir: 'LR',
    nodeSep: 36,
    rankSep: 150,
    edgeSep: 12,
    animate: false,
};

/* Up to this many nodes dagre lays out with network simplex; above, layered() does (or dagre
 * ranking by longest path when the graph has app boxes). */
export const RANKER_SIMPLEX_MAX_NODES = 60;

/* Fitting never zooms past this: a small graph stays at a readable size instead of filling
 * the screen with giant nodes. */
export const FIT_MAX_ZOOM = 1.25;

/* Fit eles (default: every node not hidden) into the view, capped at FIT_MAX_ZOOM. */
export function fitView(cy, padding, eles) {
    /* Nodes bound the drawing; the class test is far cheaper than ':visible' on every element. */
    const what = eles || cy.nodes().not('.gone');
    if (what.length === 0) {
        return;
    }
    cy.fit(what, padding);
    if (cy.zoom() > FIT_MAX_ZOOM) {
        cy.zoom(FIT_MAX_ZOOM);
        cy.center(what);
    }
}

/* Large graphs without boxes get layered(); the rest dagre. dagre's default ranker (network
 * simplex) draws the shortest edges but takes seconds on hundreds of nodes, and its
 * coordinate assignment spreads a 200-node mesh over thousands of pixels; longest-path ranks
 * in linear time and ranks a mesh's layered call graph the same way. */
function runLayout(cy, padding) {
    const n = cy.nodes().length;
    const preset = () => {
        const pos = layered(cy);
        cy.layout({name: 'preset', positions: (node) => pos.get(node.id()), fit: false,
                   animate: false}).run();
    };
    if (n > RANKER_SIMPLEX_MAX_NODES && cy.nodes('[nodeType = "box"]').length === 0) {
        preset();
        return;
    }
    const ranker = n > RANKER_SIMPLEX_MAX_NODES ? 'longest-path' : 'network-simplex';
    try {
        cy.layout({...LAYOUT, ranker, fit: false, padding}).run();
    } catch (e) {
        /* dagre gives up on some compound graphs ("Not possible to find intersection inside of
         * the rectangle": an edge whose ends it placed on one point); the graph is still drawn,
         * by the layered layout. */
        preset();
    }
}

/* A Sugiyama-style layout in linear passes: ranks by longest path from the roots (edges that
 * close a cycle are ignored), order within a rank by four barycenter sweeps, ranks left to
 * right. Returns id -> {x, y}. */
export function layered(cy) {
    const ids = cy.nodes().map((n) => n.id());
    const index = new Map(ids.map((id, i) => [id, i]));
    const out = ids.map(() => []);
    const inn = ids.map(() => []);
    cy.edges().forEach((e) => {
        const a = index.get(e.source().id());
        const b = index.get(e.target().id());
        if (a !== b) {
            out[a].push(b);
            inn[b].push(a);
        }
    });
    /* Back edges by an iterative depth-first search: 0 new, 1 on the stack, 2 done. */
    const state = new Uint8Array(ids.length);
    const back = new Set();
    for (let root = 0; root < ids.length; root++) {
        if (state[root]) {
            continue;
        }
        const stack = [[root, 0]];
        state[root] = 1;
        while (stack.length > 0) {
            const top = stack[stack.length - 1];
            if (top[1] < out[top[0]].length) {
                const v = out[top[0]][top[1]++];
                if (state[v] === 1) {
                    back.add(`${top[0]}>${v}`);
                } else if (state[v] === 0) {
                    state[v] = 1;
                    stack.push([v, 0]);
                }
            } else {
                state[top[0]] = 2;
                stack.pop();
            }
        }
    }
    /* Longest path from the roots over the remaining (acyclic) edges, in topological order. */
    const rank = new Int32Array(ids.length);
    const pending = inn.map((srcs, v) => srcs.filter((u) => !back.has(`${u}>${v}`)).length);
    const queue = [];
    pending.forEach((c, v) => c === 0 && queue.push(v));
    for (let qi = 0; qi < queue.length; qi++) {
        const u = queue[qi];
        for (const v of out[u]) {
            if (back.has(`${u}>${v}`)) {
                continue;
            }
            rank[v] = Math.max(rank[v], rank[u] + 1);
            if (--pending[v] === 0) {
                queue.push(v);
            }
        }
    }
    const ranks = [];
    ids.forEach((_, v) => (ranks[rank[v]] = ranks[rank[v]] || []).push(v));
    const order = new Float64Array(ids.length);
    const renumber = () => ranks.forEach((r) => r && r.forEach((v, i) => (order[v] = i)));
    renumber();
    const sweep = (list, neighbours) => {
        for (const r of list) {
            if (!r) {
                continue;
            }
            const bary = new Map(r.map((v) => {
                const ns = neighbours[v];
                const sum = ns.reduce((a, u) => a + order[u], 0);
                return [v, ns.length > 0 ? sum / ns.length : order[v]];
            }));
            r.sort((a, b) => bary.get(a) - bary.get(b));
            r.forEach((v, i) => (order[v] = i));
        }
    };
    for (let i = 0; i < 2; i++) {
        sweep(ranks, inn);
        sweep([...ranks].reverse(), out);
    }
    const pos = new Map();
    const dx = LAYOUT.rankSep + 40;
    const dy = LAYOUT.nodeSep + 40;
    ranks.forEach((r, x) => r && r.forEach((v, i) => pos.set(ids[v], {x: x * dx,
                                                                      y: (i - (r.length - 1) / 2) * dy})));
    return pos;
}

/* The identity of an element as far as the layout is concerned. */
function shapeKey(el) {
    const d = el.data;
    return d.source !== undefined ? `e|${d.id}|${d.source}|${d.target}` : `n|${d.id}|${d.parent || ''}`;
}

function elementsOf(graph) {
    const els = (graph && graph.elements) || {};
    return [...(els.nodes || []), ...(els.edges || [])];
}

/* Replace an element's data with d (ids and ends are equal by construction) and its classes. */
function setData(ele, el) {
    const cur = ele.data();
    const fixed = ['id', 'source', 'target', 'parent'];
    const gone = Object.keys(cur).filter((k) => !(k in el.data) && !fixed.includes(k));
    if (gone.length > 0) {
        ele.removeData(gone.join(' '));
    }
    ele.data(el.data);
    ele.classes(el.classes || '');
}

/* Put graph (the API's answer, each element already decorated with classes and labels) into cy.
 * Returns what happened: 'data' (same shape, nothing laid out), 'relayout' (viewport kept) or
 * 'fit' (laid out and fitted). */
export function applyGraph(cy, graph, padding) {
    const els = elementsOf(graph);
    const want = new Map(els.map((el) => [shapeKey(el), el]));
    const have = new Map(cy.elements().map((ele) => [shapeKey({data: ele.data()}), ele]));
    const same = want.size === have.size && [...want.keys()].every((k) => have.has(k));
    if (same) {
        cy.batch(() => {
            for (const [k, el] of want) {
                setData(have.get(k), el);
            }
        });
        return 'data';
    }
    const shared = [...want.keys()].some((k) => k.startsWith('n|') && have.has(k));
    const viewport = {zoom: cy.zoom(), pan: {...cy.pan()}};
    cy.batch(() => {
        const removed = [...have.entries()].filter(([k]) => !want.has(k)).map(([, ele]) => ele);
        cy.collection(removed).remove();
        const added = [];
        for (const [k, el] of want) {
            if (have.has(k) && !have.get(k).removed()) {
                setData(have.get(k), el);
            } else {
                added.push({group: el.data.source !== undefined ? 'edges' : 'nodes', data: el.data,
                            classes: el.classes || ''});
            }
        }
        /* Parents before children, nodes before edges: cytoscape needs both ends to exist. */
        added.sort((a, b) => (a.group === b.group ? (a.data.isBox ? -1 : b.data.isBox ? 1 : 0)
                                                  : a.group === 'nodes' ? -1 : 1));
        cy.add(added);
    });
    runLayout(cy, padding);
    if (shared) {
        cy.viewport(viewport);
        return 'relayout';
    }
    fitView(cy, padding);
    return 'fit';
}
