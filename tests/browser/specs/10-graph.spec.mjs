/*
 * 10-graph.spec.mjs - the graph page against fixture.mjs's bookinfo mesh: for every graph type
 * the nodes and edges on screen are the ones the API answers and the ones the fixture implies;
 * the erroring edge is drawn as failing with its error share; request-rate and p95 labels are
 * the fixture's numbers; a clicked node opens the side panel with its numbers and charts; the
 * Traces link leads to the traces page; a refresh with the same data moves nothing; focus=,
 * find, hide and the empty, error and no-namespace states.
 *
 * The page is opened at queryTime = the moment the fixture was fed, so every rate over the
 * window is exactly the fixture's (the samples are at constant rates up to that moment).
 */
import assert from 'node:assert/strict';

export const name = 'graph';

/* What the fixture implies for each graph type: node and edge keys. */
function expected(fixture) {
    const W = fixture.WORKLOADS;
    const sets = {workload: [new Set(), new Set()], app: [new Set(), new Set()],
                  versionedApp: [new Set(), new Set()], service: [new Set(), new Set()]};
    for (const e of fixture.EDGES) {
        const s = W[e.src];
        const d = W[e.dst];
        sets.workload[0].add(e.src).add(e.dst);
        sets.workload[1].add(`${e.src}>${e.dst}`);
        sets.app[0].add(s.app).add(d.app);
        sets.app[1].add(`${s.app}>${d.app}`);
        /* a box per app plus a node per app version */
        sets.versionedApp[0].add(`box:${s.app}`).add(`box:${d.app}`).add(`${s.app}:${e.src}`).add(`${d.app}:${e.dst}`);
        sets.versionedApp[1].add(`${e.src}>${e.dst}`);
        sets.service[0].add(s.service).add(d.service);
        sets.service[1].add(`${s.app}>${d.service}`);
    }
    return Object.fromEntries(Object.entries(sets).map(([k, [n, e]]) => [k, {nodes: n.size, edges: e.size}]));
}

/* Navigate to the graph with params and wait until a graph was applied after navigating. */
async function openGraph(page, params) {
    await page.evaluate(() => {
        window.__specPrev = window.__weftGraph || null;
        const el = document.querySelector('.graph-cy');
        window.__specLoads = el ? Number(el.dataset.loads || 0) : 0;
    });
    const qs = new URLSearchParams(params).toString();
    await page.evaluate((h) => {
        location.hash = h;
    }, `#/graph?${qs}`);
    await page.waitForFunction(() => {
        const el = document.querySelector('.graph-cy');
        if (!window.__weftGraph || !el || !el.dataset.mode) {
            return false;
        }
        return window.__weftGraph !== window.__specPrev ? Number(el.dataset.loads || 0) > 0
                                                       : Number(el.dataset.loads || 0) > window.__specLoads;
    });
}

/* The graph on screen: nodes and edges with the fields the checks need. */
function snapshot(page) {
    return page.evaluate(() => {
        const cy = window.__weftGraph;
        return {
            nodes: cy.nodes().map((n) => ({id: n.id(), ...n.data(), classes: n.classes(), pos: {...n.position()},
                                           visible: n.visible()})),
            edges: cy.edges().map((e) => ({id: e.id(), ...e.data(), classes: e.classes(),
                                           lineColor: e.style('line-color'), label: e.style('label')})),
        };
    });
}

/* The API with the page's session (the collector runs with --users). */
async function apiGraph(page, base, q) {
    const res = await page.request.get(`${base}/api/graph?${new URLSearchParams(q)}`);
    assert.equal(res.status(), 200);
    return res.json();
}

/* "6.0 rps" -> 6, "24.3 ms" -> 24.3 (ms), "850 µs" -> 0.85, "2.41 s" -> 2410 */
function parseMs(label) {
    const v = parseFloat(label);
    return label.endsWith(' s') ? v * 1000 : label.endsWith('µs') ? v / 1000 : v;
}

export async function run(t) {
    const {page, base, fixture, fed} = t;
    const queryTime = String(Math.floor(fed.nowMs / 1000));
    const common = {namespaces: fixture.NAMESPACE, queryTime, refresh: '0'};
    const want = expected(fixture);
    const W = fixture.WORKLOADS;
    const byWorkloads = (snap, src, dst) => {
        const ids = Object.fromEntries(snap.nodes.map((n) => [n.id, n.workload]));
        return snap.edges.find((e) => ids[e.source] === src && ids[e.target] === dst);
    };

    await t.step('the page loads; by default every namespace with Istio metrics is chosen', async () => {
        await page.goto(`${base}/#/graph`);
        await page.waitForFunction(() => document.querySelector('.graph-cy') &&
                                          document.querySelector('.graph-cy').dataset.mode);
        const summary = await page.textContent('[data-testid="graph-namespaces-summary"]');
        assert.match(summary, new RegExp(fixture.NAMESPACE));
        const boxes = await page.$$eval('[data-testid="graph-namespaces"] input[type="checkbox"]',
                                        (els) => els.filter((e) => e.checked).map((e) => e.value));
        assert.deepEqual(boxes, [...new Set(Object.values(W).map((w) => w.ns))].sort());
    });

    for (const graphType of ['workload', 'app', 'versionedApp', 'service']) {
        await t.step(`${graphType} graph: node and edge counts are the API's and the fixture's`, async () => {
            await openGraph(page, {...common, graphType});
            const snap = await snapshot(page);
            const api = await apiGraph(page, base, {namespaces: fixture.NAMESPACE, graphType, duration: '600', queryTime});
            assert.equal(snap.nodes.length, api.elements.nodes.length);
            assert.equal(snap.edges.length, api.elements.edges.length);
            assert.deepEqual(snap.nodes.map((n) => n.id).sort(), api.elements.nodes.map((n) => n.data.id).sort());
            assert.equal(snap.nodes.length, want[graphType].nodes, `${graphType} nodes`);
            assert.equal(snap.edges.length, want[graphType].edges, `${graphType} edges`);
            if (graphType === 'workload') {
                assert.equal(snap.nodes.length, 7);
                assert.equal(snap.edges.length, 7);
            }
            await t.screenshot(`type-${graphType}`);
        });
    }

    await t.step('the erroring edge is drawn as failure; its error-% label is the fixture\'s', async () => {
        await openGraph(page, {...common, graphType: 'workload', edgeLabel: 'errors'});
        const snap = await snapshot(page);
        const bad = byWorkloads(snap, fixture.ERROR_EDGE.src, fixture.ERROR_EDGE.dst);
        assert.ok(bad, 'the error edge is drawn');
        assert.match(bad.classes.join(' '), /h-failure/);
        assert.equal(bad.lineColor, 'rgb(198,40,40)');
        const fx = fixture.EDGES.find((e) => e.src === fixture.ERROR_EDGE.src && e.dst === fixture.ERROR_EDGE.dst);
        assert.equal(bad.label, `${Math.round(fixture.edgeErrorPercent(fx))}%`);
        assert.equal(bad.label, '50%');
        for (const fe of fixture.EDGES.filter((e) => fixture.edgeErrorPercent(e) === 0)) {
            const e = byWorkloads(snap, fe.src, fe.dst);
            assert.match(e.classes.join(' '), /h-healthy/, `${fe.src} -> ${fe.dst}`);
            assert.equal(e.label, '', 'no error label on an edge without errors');
        }
    });

    await t.step('request-rate labels are the fixture\'s rates (chosen in the toolbar)', async () => {
        await page.selectOption('[data-testid="graph-edge-labels"]', 'rps');
        await page.waitForFunction(() => window.__weftGraph.edges().every((e) => /rps$/.test(e.style('label'))));
        assert.match(page.url(), /edgeLabel=rps/);
        const snap = await snapshot(page);
        for (const fe of fixture.EDGES) {
            const e = byWorkloads(snap, fe.src, fe.dst);
            assert.equal(parseFloat(e.label), fixture.edgeRate(fe), `${fe.src} -> ${fe.dst}: ${e.label}`);
        }
        await t.screenshot('labels-rps');
    });

    await t.step('p95 labels fall in each edge\'s bucket', async () => {
        await page.selectOption('[data-testid="graph-edge-labels"]', 'rt95');
        await page.waitForFunction(() => window.__weftGraph.edges().every((e) => /s$/.test(e.style('label'))));
        const snap = await snapshot(page);
        for (const fe of fixture.EDGES) {
            const e = byWorkloads(snap, fe.src, fe.dst);
            const lower = [0, ...fixture.BUCKETS].filter((b) => b < fe.le).pop();
            const v = parseMs(e.label);
            assert.ok(v > lower && v <= fe.le, `${fe.src} -> ${fe.dst}: ${e.label} not in (${lower}, ${fe.le}]`);
        }
    });

    await t.step('clicking a node opens the panel with its numbers and charts', async () => {
        const target = fixture.ERROR_EDGE.src; /* reviews-v3: inbound traffic, half of it failing */
        const pos = await page.evaluate((wl) => {
            const cy = window.__weftGraph;
            const n = cy.nodes().filter((x) => x.data('workload') === wl)[0];
            const r = n.renderedPosition();
            const box = cy.container().getBoundingClientRect();
            return {x: box.left + r.x, y: box.top + r.y};
        }, target);
        await page.mouse.click(pos.x, pos.y);
        await page.waitForSelector('[data-testid="graph-panel"]:not([hidden])');
        assert.equal(await page.textContent('[data-testid="panel-title"]'), target);
        assert.equal(await page.textContent('[data-testid="panel-namespace"]'), W[target].ns);
        assert.equal(await page.textContent('[data-testid="panel-version"]'), W[target].version);
        assert.equal(await page.textContent('[data-testid="panel-health"]'), 'Failure');
        const inbound = fixture.EDGES.filter((e) => e.dst === target);
        const inRate = inbound.reduce((a, e) => a + fixture.edgeRate(e), 0);
        assert.equal(parseFloat(await page.textContent('[data-testid="panel-in"]')), inRate);
        const outRate = fixture.EDGES.filter((e) => e.src === target).reduce((a, e) => a + fixture.edgeRate(e), 0);
        assert.equal(parseFloat(await page.textContent('[data-testid="panel-out"]')), outRate);
        const bad = inbound.reduce((a, e) => a + (fixture.edgeRate(e) * fixture.edgeErrorPercent(e)) / 100, 0);
        assert.equal(await page.textContent('[data-testid="panel-errors"]'), `${Math.round((100 * bad) / inRate)}%`);
        assert.equal(await page.textContent('[data-testid="panel-mtls"]'), '100%');
        const rows = await page.$$eval('[data-testid="panel-responses"] tbody tr',
                                       (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
        const codes = {};
        for (const e of inbound) {
            for (const [code, rps] of Object.entries(e.codes)) {
                codes[code] = (codes[code] || 0) + rps;
            }
        }
        assert.deepEqual(rows.map((r) => [r[0], r[1], r[2]]).sort(),
                         Object.entries(codes).map(([c, v]) => [c, '-', `${Math.round((100 * v) / inRate)}%`]).sort());
        /* three charts, each drawn by uPlot with points over the window */
        await page.waitForFunction(() => document.querySelectorAll('[data-testid="panel-chart"] canvas').length === 3);
        const points = await page.$$eval('[data-testid="panel-chart"]', (els) => els.map((e) => Number(e.dataset.points)));
        assert.ok(points.every((n) => n >= 10), `points per chart: ${points}`);
        await t.screenshot('panel-node');
    });

    await t.step('the Traces link goes to the traces page with the right service', async () => {
        const href = await page.getAttribute('[data-testid="panel-traces"]', 'href');
        const q = new URLSearchParams(href.split('?')[1]);
        assert.equal(href.split('?')[0], '#/traces');
        assert.equal(q.get('service'), W[fixture.ERROR_EDGE.src].app);
        assert.equal(q.get('lookback'), '10m');
        assert.equal(q.get('tags'), 'error=true');
        await page.click('[data-testid="panel-traces"]');
        await page.waitForFunction(() => document.body.dataset.page === 'traces');
        assert.match(page.url(), /#\/traces\?service=reviews&/);
    });

    await t.step('an edge\'s panel: the erroring edge\'s numbers and its traces with errors', async () => {
        await openGraph(page, {...common, graphType: 'workload'});
        await page.evaluate(({src, dst}) => {
            const cy = window.__weftGraph;
            const e = cy.edges().filter((x) => x.source().data('workload') === src && x.target().data('workload') === dst)[0];
            e.select();
        }, fixture.ERROR_EDGE);
        await page.waitForFunction(() => document.querySelector('[data-testid="graph-panel"]').dataset.kind === 'edge');
        const fx = fixture.EDGES.find((e) => e.src === fixture.ERROR_EDGE.src && e.dst === fixture.ERROR_EDGE.dst);
        assert.equal(await page.textContent('[data-testid="panel-title"]'), `${fx.src} → ${fx.dst}`);
        assert.equal(parseFloat(await page.textContent('[data-testid="panel-rate"]')), fixture.edgeRate(fx));
        assert.equal(await page.textContent('[data-testid="panel-errors"]'), `${Math.round(fixture.edgeErrorPercent(fx))}%`);
        assert.equal(await page.textContent('[data-testid="panel-health"]'), 'Failure');
        const q = new URLSearchParams((await page.getAttribute('[data-testid="panel-traces"]', 'href')).split('?')[1]);
        assert.equal(q.get('service'), W[fx.src].app); /* the caller's spans: every request of the edge */
        assert.equal(q.get('tags'), 'error=true');
        await page.waitForFunction(() => document.querySelectorAll('[data-testid="panel-chart"] canvas').length === 3);
        await t.screenshot('panel-edge');
    });

    await t.step('keyboard: arrows select nodes in the focused graph, Escape closes the panel', async () => {
        await page.evaluate(() => window.__weftGraph.elements().unselect());
        await page.waitForSelector('[data-testid="graph-panel"]', {state: 'hidden'});
        await page.focus('[data-testid="graph-canvas"]');
        await page.keyboard.press('ArrowRight');
        await page.waitForSelector('[data-testid="graph-panel"]:not([hidden])');
        /* the leftmost node first: the gateway, the only root */
        assert.equal(await page.textContent('[data-testid="panel-title"]'),
                     Object.keys(W).find((w) => !fixture.EDGES.some((e) => e.dst === w)));
        const first = await page.textContent('[data-testid="panel-title"]');
        await page.keyboard.press('ArrowRight');
        await page.waitForFunction((f) => document.querySelector('[data-testid="panel-title"]').textContent !== f, first);
        await page.keyboard.press('Escape');
        await page.waitForSelector('[data-testid="graph-panel"]', {state: 'hidden'});
        const names = await page.$$eval('[data-testid="graph-nodelist"] button', (bs) => bs.length);
        assert.equal(names, Object.keys(W).length);
    });

    await t.step('traffic animation draws moving dots, red ones on the erroring edge', async () => {
        await page.check('[data-testid="graph-animation"]');
        assert.match(page.url(), /animation=1/);
        const colours = await page.evaluate(async () => {
            await new Promise((r) => setTimeout(r, 300));
            const c = document.querySelector('.graph-overlay');
            const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let red = 0;
            let green = 0;
            for (let i = 0; i < px.length; i += 4) {
                if (px[i + 3] > 200 && px[i] > 150 && px[i + 1] < 80) {
                    red++;
                } else if (px[i + 3] > 200 && px[i + 1] > 90 && px[i] < 80) {
                    green++;
                }
            }
            return {red, green};
        });
        assert.ok(colours.red > 0, 'red dots drawn');
        assert.ok(colours.green > 0, 'green dots drawn');
        await t.screenshot('animation');
        await page.uncheck('[data-testid="graph-animation"]');
    });

    await t.step('badges from the API\'s flags are drawn under the name; the toggle hides them', async () => {
        /* The control plane's flags are not in the fixture: put two on a node as the API would. */
        await page.evaluate(() => {
            const n = window.__weftGraph.nodes().filter((x) => x.data('workload') === 'reviews-v3')[0];
            n.data({hasCB: true, hasMissingSC: true});
        });
        await page.uncheck('[data-testid="graph-badges"]');
        const off = await page.evaluate(() => window.__weftGraph.nodes().filter((x) => x.data('workload') === 'reviews-v3')[0].data('_label'));
        assert.equal(off, 'reviews-v3');
        await page.check('[data-testid="graph-badges"]');
        const on = await page.evaluate(() => window.__weftGraph.nodes().filter((x) => x.data('workload') === 'reviews-v3')[0].data('_label'));
        assert.equal(on, 'reviews-v3\n⚡ ⚠');
    });

    await t.step('Fit brings a zoomed-in graph back, capped at a readable zoom', async () => {
        await page.evaluate(() => {
            window.__weftGraph.zoom(3.5);
            window.__weftGraph.pan({x: -2000, y: -2000});
        });
        await page.click('[data-testid="graph-fit"]');
        const r = await page.evaluate(() => {
            const cy = window.__weftGraph;
            const bb = cy.nodes().renderedBoundingBox();
            return {zoom: cy.zoom(), bb, w: cy.width(), h: cy.height()};
        });
        assert.ok(r.zoom <= 1.25, `zoom ${r.zoom}`);
        assert.ok(r.bb.x1 >= 0 && r.bb.y1 >= 0 && r.bb.x2 <= r.w && r.bb.y2 <= r.h, JSON.stringify(r));
    });

    await t.step('a refresh with the same data moves no node', async () => {
        await openGraph(page, {...common, graphType: 'versionedApp'});
        const before = await snapshot(page);
        const loads = await page.getAttribute('[data-testid="graph-canvas"]', 'data-loads');
        await page.click('[data-testid="graph-refresh-now"]');
        await page.waitForFunction((n) => document.querySelector('.graph-cy').dataset.loads !== n, loads);
        assert.equal(await page.getAttribute('[data-testid="graph-canvas"]', 'data-mode'), 'data');
        const after = await snapshot(page);
        assert.equal(after.nodes.length, before.nodes.length);
        for (const n of before.nodes) {
            const m = after.nodes.find((x) => x.id === n.id);
            assert.deepEqual(m.pos, n.pos, `${n.id} moved`);
        }
    });

    await t.step('focus= selects a node on load; find highlights, hide removes', async () => {
        await openGraph(page, {...common, graphType: 'workload', focus: 'ratings-v1'});
        await page.waitForSelector('[data-testid="graph-panel"]:not([hidden])');
        assert.equal(await page.textContent('[data-testid="panel-title"]'), 'ratings-v1');
        /* the traces page links with a span's service, an app: its box in a versioned-app graph */
        await openGraph(page, {...common, focus: W[fixture.ERROR_EDGE.src].app});
        await page.waitForFunction(() => document.querySelector('[data-testid="graph-panel"]').dataset.id);
        assert.equal(await page.textContent('[data-testid="panel-title"]'), W[fixture.ERROR_EDGE.src].app);
        assert.equal(await page.textContent('[data-testid="panel-type"]'), 'app (all versions)');
        const reviewsIn = fixture.EDGES.filter((e) => W[e.dst].app === W[fixture.ERROR_EDGE.src].app)
            .reduce((a, e) => a + fixture.edgeRate(e), 0);
        assert.equal(parseFloat(await page.textContent('[data-testid="panel-in"]')), reviewsIn);
        await openGraph(page, {...common, graphType: 'workload'});
        await page.fill('[data-testid="graph-find"]', 'version=v2');
        await page.press('[data-testid="graph-find"]', 'Enter');
        await page.waitForFunction(() => window.__weftGraph.nodes('.found').length > 0);
        const found = await page.evaluate(() => window.__weftGraph.nodes('.found').map((n) => n.data('workload')));
        assert.deepEqual(found, Object.keys(W).filter((w) => W[w].version === 'v2'));
        await page.fill('[data-testid="graph-hide"]', 'ns=istio-system');
        await page.press('[data-testid="graph-hide"]', 'Enter');
        await page.waitForFunction(() => window.__weftGraph.nodes('.gone').length > 0);
        const gone = await page.evaluate(() => window.__weftGraph.nodes().filter((n) => !n.visible()).map((n) => n.data('workload')));
        assert.deepEqual(gone, Object.keys(W).filter((w) => W[w].ns === 'istio-system'));
        assert.match(page.url(), /find=version%3Dv2/);
        await page.fill('[data-testid="graph-find"]', 'colour=red');
        await page.press('[data-testid="graph-find"]', 'Enter');
        await page.waitForFunction(() => document.querySelector('[data-testid="graph-find-error"]').textContent !== '');
        await page.click('[data-testid="graph-legend"]');
        await t.screenshot('find-hide-legend');
    });

    await t.step('empty, error and no-namespace states', async () => {
        await openGraph(page, {namespaces: 'quiet', refresh: '0'});
        assert.match(await page.textContent('[data-testid="graph-state"]'), /No traffic in quiet/);
        assert.match(await page.textContent('[data-testid="graph-state"]'), /weft demo/);
        await openGraph(page, {namespaces: '', refresh: '0'});
        assert.match(await page.textContent('[data-testid="graph-state"]'), /No namespace chosen/);
        await page.evaluate(() => {
            location.hash = '#/graph?namespaces=Not_A_Namespace&refresh=0';
        });
        await page.waitForSelector('[data-testid="graph-state"] .state.error');
        assert.match(await page.textContent('[data-testid="graph-state"]'), /namespaces/);
    });
}
