/*
 * 15-graph-perf.spec.mjs - how fast the graph page is on a big mesh: a namespace "perf" with
 * 200 workloads and 600 edges (10 layers of 20; each workload calls 3 of the next layer, and
 * 60 calls skip a layer) imported as Istio metrics, one sample per 15 s over 12 minutes. It
 * measures in the page, with performance.now(), from the navigation to the graph until the
 * graph is laid out and a selected node's panel shows, and then the refresh of the same data
 * (no re-layout). The figures are printed, never compared with a threshold (machines are
 * noisy); what is asserted is that all 200 nodes and 600 edges are drawn and that the refresh
 * moved nothing.
 */
import assert from 'node:assert/strict';

export const name = 'graph-perf';

const NS = 'perf';
const LAYERS = 10;
const PER_LAYER = 20;
const STEP_S = 15;
const SPAN_MIN = 12;

export function perfEdges() {
    const wl = (layer, i) => `svc-${layer}-${i}-v1`;
    const edges = [];
    for (let l = 0; l < LAYERS - 1; l++) {
        for (let i = 0; i < PER_LAYER; i++) {
            for (let k = 0; k < 3; k++) {
                edges.push({src: wl(l, i), dst: wl(l + 1, (i * 7 + k * 3) % PER_LAYER), rps: 1 + ((i + k) % 5)});
            }
        }
    }
    for (let l = 0; l < LAYERS - 2 && edges.length < 600; l++) {
        for (let i = 0; i < PER_LAYER && edges.length < 600; i += 2) {
            edges.push({src: wl(l, i), dst: wl(l + 2, (i + 5) % PER_LAYER), rps: 0.5});
        }
    }
    return edges;
}

function side(p, workload) {
    const app = workload.replace(/-v1$/, '');
    return `${p}_workload="${workload}",${p}_workload_namespace="${NS}",${p}_canonical_service="${app}",` +
           `${p}_canonical_revision="v1",${p}_app="${app}",${p}_version="v1"`;
}

/* Prometheus text for the edges, reporter="source" only (what the graph counts between
 * sidecars), request counts and two duration buckets. */
export function metricsText(edges, nowMs) {
    const startMs = nowMs - SPAN_MIN * 60 * 1000;
    const lines = ['# TYPE istio_requests_total counter', '# TYPE istio_request_duration_milliseconds histogram'];
    for (const e of edges) {
        const dstApp = e.dst.replace(/-v1$/, '');
        const base = `reporter="source",${side('source', e.src)},${side('destination', e.dst)},` +
                     `destination_service_name="${dstApp}",destination_service_namespace="${NS}",` +
                     `destination_service="${dstApp}.${NS}.svc.cluster.local",request_protocol="http",` +
                     `response_code="200",response_flags="-",connection_security_policy="unknown"`;
        for (let t = startMs; t <= nowMs; t += STEP_S * 1000) {
            const n = Math.round((e.rps * (t - startMs)) / 1000);
            lines.push(`istio_requests_total{${base}} ${n} ${t}`);
            lines.push(`istio_request_duration_milliseconds_bucket{${base},le="25"} ${n} ${t}`);
            lines.push(`istio_request_duration_milliseconds_bucket{${base},le="+Inf"} ${n} ${t}`);
        }
    }
    return lines.join('\n') + '\n';
}

export async function run(t) {
    const {page, base} = t;
    const edges = perfEdges();
    const nodes = new Set(edges.flatMap((e) => [e.src, e.dst]));
    assert.equal(edges.length, 600);
    assert.equal(nodes.size, 200);
    const nowMs = Date.now();

    await t.step(`import ${nodes.size} workloads and ${edges.length} edges into namespace ${NS}`, async () => {
        for (let i = 0; i < edges.length; i += 100) {
            const res = await fetch(`${base}/api/v1/import/prometheus`, {method: 'POST', headers: {'Content-Type': 'text/plain'},
                                                                      body: metricsText(edges.slice(i, i + 100), nowMs)});
            assert.ok(res.ok, `import: HTTP ${res.status}: ${await res.text()}`);
        }
    });

    const hash = `#/graph?namespaces=${NS}&graphType=workload&refresh=0&queryTime=${Math.floor(nowMs / 1000)}`;
    let first;
    await t.step('navigation -> laid out -> a selected node\'s panel shows', async () => {
        await page.goto(`${base}/#/mesh`);
        await page.waitForFunction(() => document.body.dataset.page === 'mesh');
        first = await page.evaluate(async (h) => {
            const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
            const until = async (f) => {
                while (!f()) {
                    await frame();
                }
            };
            const t0 = performance.now();
            location.hash = h;
            await until(() => window.__weftGraph && window.__weftGraph.nodes().length >= 200 &&
                              document.querySelector('.graph-cy').dataset.mode === 'fit');
            const applied = performance.now() - t0;
            await frame();
            const laidOut = performance.now() - t0;
            const cy = window.__weftGraph;
            const n = cy.nodes().filter((x) => x.data('workload') === 'svc-5-10-v1')[0];
            n.select();
            const panel = document.querySelector('[data-testid="graph-panel"]');
            await until(() => !panel.hidden && panel.querySelector('[data-testid="panel-title"]').textContent === 'svc-5-10-v1');
            await frame();
            const el = document.querySelector('.graph-cy');
            return {laidOut, applied, interactive: performance.now() - t0, fetchStart: Number(el.dataset.fetchStart) - t0,
                    fetchMs: Number(el.dataset.fetchMs),
                    applyMs: Number(el.dataset.applyMs), nodes: cy.nodes().length, edges: cy.edges().length};
        }, hash);
        assert.equal(first.nodes, 200);
        assert.equal(first.edges, 600);
        console.log(`  figure: ${first.nodes} nodes / ${first.edges} edges: navigation to laid out and painted ` +
                    `${first.laidOut.toFixed(0)} ms, to a selected node's panel ${first.interactive.toFixed(0)} ms ` +
                    `(request sent at ${first.fetchStart.toFixed(0)} ms, GET /api/graph ${first.fetchMs.toFixed(0)} ms, ` +
                    `labels + layout + filters ${first.applyMs.toFixed(0)} ms, applied at ${first.applied.toFixed(0)} ms, ` +
                    `first paint ${(first.laidOut - first.applied).toFixed(0)} ms)`);
        await t.screenshot('perf-200-nodes');
    });

    await t.step('a refresh with the same data re-renders without a layout', async () => {
        const r = await page.evaluate(async () => {
            const frame = () => new Promise((res) => requestAnimationFrame(() => res()));
            const el = document.querySelector('.graph-cy');
            const cy = window.__weftGraph;
            const before = cy.nodes().map((n) => [n.id(), n.position('x'), n.position('y')]);
            const loads = el.dataset.loads;
            const t0 = performance.now();
            document.querySelector('[data-testid="graph-refresh-now"]').click();
            while (el.dataset.loads === loads) {
                await frame();
            }
            await frame();
            const total = performance.now() - t0;
            const moved = before.filter(([id, x, y]) => cy.getElementById(id).position('x') !== x ||
                                                        cy.getElementById(id).position('y') !== y).length;
            return {total, mode: el.dataset.mode, fetchMs: Number(el.dataset.fetchMs), applyMs: Number(el.dataset.applyMs), moved};
        });
        assert.equal(r.mode, 'data');
        assert.equal(r.moved, 0);
        console.log(`  figure: refresh of the same data ${r.total.toFixed(0)} ms (GET /api/graph ${r.fetchMs.toFixed(0)} ms, ` +
                    `data update ${r.applyMs.toFixed(0)} ms)`);
    });

    await t.step('nodes added: laid out again, the viewport kept', async () => {
        const r = await page.evaluate(async (h) => {
            const frame = () => new Promise((res) => requestAnimationFrame(() => res()));
            const el = document.querySelector('.graph-cy');
            const cy = window.__weftGraph;
            cy.zoom(0.7);
            cy.pan({x: 40, y: -25});
            const view = {zoom: cy.zoom(), pan: {...cy.pan()}};
            const before = cy.nodes().length;
            const loads = el.dataset.loads;
            const t0 = performance.now();
            location.hash = h;
            while (el.dataset.loads === loads) {
                await frame();
            }
            await frame();
            return {total: performance.now() - t0, mode: el.dataset.mode, before, after: cy.nodes().length,
                    view, now: {zoom: cy.zoom(), pan: {...cy.pan()}}, applyMs: Number(el.dataset.applyMs)};
        }, hash.replace(`namespaces=${NS}`, `namespaces=${NS},${t.fixture.NAMESPACE}`));
        assert.equal(r.mode, 'relayout');
        assert.equal(r.after, r.before + Object.keys(t.fixture.WORKLOADS).length);
        assert.deepEqual(r.now, r.view);
        console.log(`  figure: ${r.after - r.before} nodes added to ${r.before}: re-layout ${r.applyMs.toFixed(0)} ms, ` +
                    `navigation to painted ${r.total.toFixed(0)} ms`);
    });
}
