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

/* Up to this many nodes dagre ranks with network simplex; above, with longest path. */
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
    const gone = Object.keys(cur).filter((k) => !(k in el.data) && !['id', 'source', 'target', 'parent'].includes(k));
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
    /* dagre's default ranker (network simplex) draws the shortest edges but takes seconds on
     * hundreds of nodes; longest-path ranks in linear time and, on a mesh's mostly layered
     * call graph, ranks the same way. */
    const ranker = cy.nodes().length > RANKER_SIMPLEX_MAX_NODES ? 'longest-path' : 'network-simplex';
    cy.layout({...LAYOUT, ranker, fit: false, padding}).run();
    if (shared) {
        cy.viewport(viewport);
        return 'relayout';
    }
    fitView(cy, padding);
    return 'fit';
}
