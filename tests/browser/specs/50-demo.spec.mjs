/*
 * 50-demo.spec.mjs - the web UI's purpose against the real thing: `weft demo` on free ports
 * (its own control plane, collector, gateway, bookinfo with sidecars and traffic), reviews
 * routed to v3 and bookinfo's ratings abort fault applied with `weft apply` (500 for jason's
 * requests). A user opening the demo's UI sees the live graph, finds the erroring edge (red,
 * its panel: the share of errors, 500 with Envoy's FI flag), follows "Traces with errors" to
 * the failed traces, opens one, and its waterfall shows where the 500 was made and why
 * (response_flags FI in the span's tags).
 */
import assert from 'node:assert/strict';
import {execFileSync, spawn} from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {fileURLToPath} from 'node:url';

export const name = 'demo';

const here = path.dirname(fileURLToPath(import.meta.url));
const configDir = path.resolve(here, '../../../deploy/demo');
const WORKLOADS = ['istio-ingressgateway', 'productpage-v1', 'details-v1', 'reviews-v3', 'ratings-v1'];

async function until(what, ms, fn) {
    const end = Date.now() + ms;
    for (;;) {
        const v = await fn();
        if (v) {
            return v;
        }
        if (Date.now() > end) {
            throw new Error(`${what}: not within ${ms} ms`);
        }
        await new Promise((r) => setTimeout(r, 500));
    }
}

async function getJson(url) {
    try {
        const res = await fetch(url);
        return res.ok ? await res.json() : null;
    } catch (e) {
        return null;
    }
}

/* The graph's edge from workload src to the service node of svc, with its node data. */
function faultEdge(graph, src, svc) {
    const nodes = new Map(graph.elements.nodes.map((n) => [n.data.id, n.data]));
    return graph.elements.edges.map((e) => e.data).find((e) => {
        const s = nodes.get(e.source);
        const t = nodes.get(e.target);
        return s && t && s.workload === src && t.nodeType === 'service' && t.service === svc;
    });
}

export async function run(t) {
    const {page, weft, tmp} = t;
    const [port, gatewayPort, controlPort] = [await t.freePort(), await t.freePort(), await t.freePort()];
    const subnet = `127.0.${100 + Math.floor(Math.random() * 150)}`;
    const dir = path.join(tmp, 'demo');
    const log = path.join(tmp, 'demo.log');
    const base = `http://127.0.0.1:${port}`;
    const out = fs.openSync(log, 'a');
    const demo = spawn(weft, ['demo', '--port', String(port), '--gateway-port', String(gatewayPort),
                              '--control-port', String(controlPort), '--data-dir', dir, '--config-dir', configDir,
                              '--subnet', subnet, '--rate', '10', '--error-percent', '0'],
                       {stdio: ['ignore', out, out]});
    const exited = new Promise((resolve) => demo.on('exit', (code, sig) => resolve({code, sig})));
    try {
        await t.step('weft demo comes up and prints its UI URL', async () => {
            await until('the demo banner', 150000, () => {
                if (demo.exitCode !== null) {
                    throw new Error(`weft demo exited with ${demo.exitCode}:\n${fs.readFileSync(log, 'utf8')}`);
                }
                return fs.readFileSync(log, 'utf8').includes(`Web UI (graph, traces, metrics)   ${base}/`);
            });
        });

        await t.step('weft apply: reviews to v3, and 500s for jason\'s ratings calls', async () => {
            const env = {...process.env, WEFT_CONTROL: `http://127.0.0.1:${controlPort}`,
                         WEFT_TOKEN_FILE: path.join(dir, 'control', 'admin-token')};
            for (const f of ['virtual-service-reviews-v3.yaml', 'virtual-service-ratings-test-abort.yaml']) {
                const text = execFileSync(weft, ['apply', '-f', path.join(configDir, f)], {env, encoding: 'utf8'});
                assert.match(text, /virtualservice\.networking\.istio\.io\/(reviews|ratings) (created|configured)/);
            }
            /* the collector has seen the injected errors once two scrapes carried them (and the
             * rest of the mesh: every workload's proxy scraped in the window) */
            await until('the fault in /api/graph', 150000, async () => {
                const g = await getJson(`${base}/api/graph?namespaces=default&graphType=workload&duration=5m`);
                const e = g && faultEdge(g, 'reviews-v3', 'ratings');
                const workloads = g ? g.elements.nodes.map((n) => n.data.workload) : [];
                return e && e.traffic.responses && e.traffic.responses['500'] &&
                    e.traffic.responses['500'].flags.FI && WORKLOADS.every((w) => workloads.includes(w));
            });
        });

        await t.step('the live graph: bookinfo\'s workloads and a red edge from reviews-v3', async () => {
            await page.goto(`${base}/#/graph?namespaces=default&graphType=workload&duration=300&edgeLabel=errors&refresh=0`);
            await page.waitForFunction(() => {
                const el = document.querySelector('.graph-cy');
                return window.__weftGraph && el && Number(el.dataset.loads || 0) > 0;
            });
            const seen = await page.evaluate(() => window.__weftGraph.nodes().map((n) => n.data('workload')).filter(Boolean));
            for (const w of WORKLOADS) {
                assert.ok(seen.includes(w), `${w} in the graph (${seen})`);
            }
            const red = await page.evaluate(() => {
                const cy = window.__weftGraph;
                const e = cy.edges().filter((x) => x.source().data('workload') === 'reviews-v3' &&
                    x.target().data('nodeType') === 'service' && x.target().data('service') === 'ratings')[0];
                return e ? {color: e.style('line-color'), label: e.style('label')} : null;
            });
            assert.ok(red, 'the edge reviews-v3 -> ratings (service) is drawn');
            assert.equal(red.color, 'rgb(198,40,40)'); /* --fail */
            assert.equal(red.label, '100%'); /* every request on it was aborted */
            await t.screenshot('graph');
        });

        await t.step('its panel says what fails: 500, flag FI', async () => {
            await page.evaluate(() => {
                const cy = window.__weftGraph;
                cy.edges().filter((x) => x.source().data('workload') === 'reviews-v3' &&
                    x.target().data('nodeType') === 'service')[0].select();
            });
            await page.waitForSelector('[data-testid="graph-panel"]');
            assert.equal(await page.textContent('[data-testid="panel-health"]'), 'Failure');
            assert.equal(await page.textContent('[data-testid="panel-errors"]'), '100%');
            const responses = await page.textContent('[data-testid="graph-panel"]');
            assert.match(responses, /500\s*FI\s*100%/);
            await t.screenshot('panel');
        });

        await t.step('"Traces with errors" lists the failed requests; one trace shows the fault', async () => {
            const href = await page.getAttribute('[data-testid="panel-traces"]', 'href');
            assert.match(href, /^#\/traces\?service=reviews&/);
            assert.match(href, /tags=error%3Dtrue/);
            await page.click('[data-testid="panel-traces"]');
            await page.waitForFunction(() => document.body.dataset.page === 'traces');
            await page.waitForSelector('.trace-result.has-errors');
            await t.screenshot('traces');
            /* the graph's window travels along */
            assert.equal(await page.inputValue('[data-testid=lookback]'), '5m');
            await page.click('.trace-result.has-errors >> nth=0 >> .trace-result-head');
            await page.waitForSelector('.wf-row');
            /* the sidecar of reviews-v3 answered its own call to ratings with the fault: an error
             * span of service reviews whose tags say FI */
            const errorRows = await page.locator('.wf-row.error').count();
            assert.ok(errorRows >= 1, 'error spans are marked');
            const rows = page.locator('.wf-row.error');
            let found = false;
            for (let i = 0; i < errorRows && !found; i++) {
                await rows.nth(i).click();
                await page.waitForSelector('[data-testid=span-details]');
                const details = await page.textContent('[data-testid=span-details]');
                found = /response_flags\s*FI/.test(details) && /ratings\.default\.svc\.cluster\.local/.test(details);
            }
            assert.ok(found, 'a span with response_flags FI towards ratings');
            await t.screenshot('trace');
        });
    } finally {
        demo.kill('SIGTERM');
        const done = await Promise.race([exited, new Promise((r) => setTimeout(() => r(null), 60000))]);
        if (done === null) {
            demo.kill('SIGKILL');
            await exited;
        }
        fs.closeSync(out);
    }
}
