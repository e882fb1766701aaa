/*
 * 40-mesh.spec.mjs - the mesh page against the control plane run.mjs started (control.mjs:
 * mesh-config.yaml applied, bookinfo's workloads registered, their proxies' polls): services
 * with health (Kiali's rules over fixture.mjs's traffic), versions and badges; workloads with
 * their proxies' sync state; every Istio resource with its validation state, one opened as its
 * YAML; and the badges /api/graph puts on the reviews, ratings and details nodes.
 */
import assert from 'node:assert/strict';

export const name = 'mesh';

/* Kiali's health of each destination (service or workload) from fixture.mjs's edges. */
function expectedHealth(fixture, keyOf) {
    const by = new Map();
    for (const e of fixture.EDGES) {
        const k = keyOf(e.dst);
        const cur = by.get(k) || {total: 0, e5: 0, e4: 0};
        for (const [code, rate] of Object.entries(e.codes)) {
            cur.total += rate;
            cur.e5 += Number(code) >= 500 ? rate : 0;
            cur.e4 += Number(code) >= 400 && Number(code) < 500 ? rate : 0;
        }
        by.set(k, cur);
    }
    const out = new Map();
    for (const [k, c] of by) {
        const p5 = (100 * c.e5) / c.total;
        const p4 = (100 * c.e4) / c.total;
        out.set(k, p5 >= 10 || p4 >= 20 ? 'Failure' : p5 > 0 || p4 >= 10 ? 'Degraded' : 'Healthy');
    }
    return out;
}

async function rowsOf(page, testid, cells) {
    return page.$$eval(`[data-testid="${testid}"] tbody tr`, (trs, n) => trs.map((tr) =>
        [...tr.querySelectorAll('td')].slice(0, n).map((td) => td.textContent.trim())), cells);
}

export async function run(t) {
    const {page, base, fixture, control} = t;
    const bookinfo = Object.entries(fixture.WORKLOADS).filter(([, w]) => w.ns === 'bookinfo');

    await t.step('services: every registered service with health, versions and badges', async () => {
        await page.goto(`${base}/#/mesh`);
        await page.waitForSelector('[data-testid="mesh-services"] tbody tr');
        const health = expectedHealth(fixture, (w) => fixture.WORKLOADS[w].service);
        const services = [...new Set(bookinfo.map(([, w]) => w.service))].sort();
        const rows = await rowsOf(page, 'mesh-services', 9);
        assert.deepEqual(rows.map((r) => r[0]), services);
        const badges = {
            details: 'VS Timeout',
            productpage: '–',
            ratings: 'VS Fault CB',
            reviews: 'VS Shift CB',
        };
        for (const r of rows) {
            const [svc, ns, h, versions, count, vs, dr, chips, inMesh] = r;
            assert.equal(ns, 'bookinfo');
            assert.equal(h, health.get(svc) || 'no traffic', `health of ${svc}`);
            const want = bookinfo.filter(([, w]) => w.service === svc).map(([, w]) => w.version);
            assert.equal(versions, want.join(', '));
            assert.equal(count, String(want.length));
            assert.equal(vs, ['details', 'ratings', 'reviews'].includes(svc) ? `bookinfo/${svc}` : '–');
            assert.equal(dr, ['ratings', 'reviews'].includes(svc) ? `bookinfo/${svc}` : '–');
            const chipText = await page.$$eval(`[data-testid="mesh-services"] tr[data-name="${svc}"] .mesh-chip`,
                                               (els) => els.map((e) => e.textContent).join(' '));
            assert.equal(chipText || '–', badges[svc], `badges of ${svc}`);
            assert.equal(inMesh, 'yes');
        }
        assert.equal(health.get('reviews'), 'Failure');
        await t.screenshot('services');
    });

    await t.step('workloads: registry entries with their proxies\' sync state', async () => {
        await page.click('.mesh-tabs button[data-tab="workloads"]');
        await page.waitForSelector('[data-testid="mesh-workloads"] tbody tr');
        assert.match(await page.evaluate(() => location.hash), /tab=workloads/);
        const health = expectedHealth(fixture, (w) => w);
        const rows = await rowsOf(page, 'mesh-workloads', 8);
        assert.deepEqual(rows.map((r) => r[0]), bookinfo.map(([n]) => n).sort());
        for (const [wl, ns, h, app, version, sync, lease, inMesh] of rows) {
            const w = fixture.WORKLOADS[wl];
            assert.equal(ns, 'bookinfo');
            assert.equal(h, health.get(wl) || 'no traffic', `health of ${wl}`);
            assert.equal(app, w.app);
            assert.equal(version, w.version);
            assert.equal(sync, control.PROXIES[wl] || 'no proxy', `sync state of ${wl}`);
            assert.match(lease, /^\d+(m|s)$/);
            assert.equal(inMesh, 'yes');
        }
        assert.equal(await page.getAttribute('tr[data-name="ratings-v1"] .mesh-sync', 'title'),
                     'unknown cluster in route');
        await t.screenshot('workloads');
    });

    await t.step('Istio config: every resource with its validation state', async () => {
        await page.click('.mesh-tabs button[data-tab="config"]');
        await page.waitForSelector('[data-testid="mesh-config"] tbody tr');
        const rows = await page.$$eval('[data-testid="mesh-config"] tbody tr', (trs) => trs.map((tr) => ({
            key: tr.dataset.key,
            level: [...tr.querySelector('td.mesh-valid').classList].find((c) => c.startsWith('mesh-level-')),
            msg: tr.querySelector('td.mesh-msg').textContent,
        })));
        assert.deepEqual(rows.map((r) => r.key), control.RESOURCES.map((r) => `${r.kind}/bookinfo/${r.name}`));
        for (const [i, want] of control.RESOURCES.entries()) {
            assert.equal(rows[i].level, `mesh-level-${want.validation}`, rows[i].key);
            if (want.code) {
                assert.match(rows[i].msg, new RegExp(`^${want.code} Subset not found`));
            } else {
                assert.equal(rows[i].msg, 'no issues');
            }
        }
        await t.screenshot('config');
    });

    await t.step('opening a resource shows its YAML and messages, read-only', async () => {
        await page.click('tr[data-key="VirtualService/bookinfo/details"]');
        await page.waitForSelector('[data-testid="mesh-yaml"]');
        assert.match(await page.evaluate(() => location.hash), /open=VirtualService%2Fbookinfo%2Fdetails/);
        const yaml = await page.textContent('[data-testid="mesh-yaml"]');
        assert.match(yaml, /^apiVersion: networking.istio.io\/v1\nkind: VirtualService\nmetadata:\n {2}name: details\n/);
        assert.match(yaml, /\nspec:\n {2}hosts:\n {2}- details\n {2}http:\n {2}- route:\n {4}- destination:\n {8}host: details\n {8}subset: v2\n {4}timeout: 3s\n$/);
        /* text, never markup */
        assert.equal(await page.$$eval('[data-testid="mesh-yaml"] *', (els) => els.length), 0);
        const msgs = await page.$$eval('[data-testid="mesh-detail"] .mesh-messages li', (lis) => lis.map((li) => li.textContent));
        assert.equal(msgs.length, 1);
        assert.match(msgs[0], /KIA1107 spec\.http\[0\]\.route\[0\]\.destination\.subset/);
        await t.screenshot('yaml');
        /* a refresh that brings nothing new redraws nothing: the row and its panel stay */
        await page.evaluate(() => {
            document.querySelector('tr[data-key="VirtualService/bookinfo/details"]').mark = 1;
        });
        await Promise.all([page.waitForResponse((r) => r.url().endsWith('/api/mesh/config')),
                           page.click('[data-testid="mesh-refresh"]')]);
        await page.waitForFunction(() => !document.querySelector('[data-testid="mesh-refresh"]').disabled);
        assert.equal(await page.evaluate(() => document.querySelector('tr[data-key="VirtualService/bookinfo/details"]').mark), 1);
        assert.match(await page.textContent('[data-testid="mesh-yaml"]'), /name: details/);
        /* a valid one, opened from the keyboard */
        await page.focus('tr[data-key="DestinationRule/bookinfo/reviews"]');
        await page.keyboard.press('Enter');
        await page.waitForFunction(() => /host: reviews/.test(document.querySelector('[data-testid="mesh-yaml"]')?.textContent || ''));
        assert.match(await page.textContent('[data-testid="mesh-detail"]'), /No validation issues/);
        await page.click('.mesh-close');
        await page.waitForSelector('[data-testid="mesh-detail"]', {state: 'hidden'});
    });

    await t.step('a collector without --control: the page says how to connect one', async () => {
        /* the collector's own 404 (test_collector_mesh checks it), served for this step only */
        const message = 'the collector is not connected to a control plane: start it with --control URL';
        await page.route('**/api/mesh/**', (r) => r.fulfill({status: 404, contentType: 'application/json',
                                                             body: JSON.stringify({error: message})}));
        try {
            await page.goto(`${base}/#/mesh?tab=config`);
            await page.reload();
            await page.waitForSelector('[data-testid="mesh-not-connected"]');
            const text = await page.textContent('[data-testid="mesh-not-connected"]');
            assert.equal(text, `Not connected to a control plane${message}`);
            assert.equal(await page.$('[data-testid="mesh-config"]'), null);
            await t.screenshot('not-connected');
        } finally {
            await page.unroute('**/api/mesh/**');
        }
    });

    await t.step('/api/graph carries the badges on the reviews, ratings and details nodes', async () => {
        const res = await page.request.get(`${base}/api/graph?namespaces=bookinfo&graphType=app&duration=10m`);
        assert.equal(res.status(), 200);
        const g = await res.json();
        assert.equal(g.badgesError, undefined);
        const node = (app) => g.elements.nodes.map((n) => n.data).find((d) => d.app === app && d.nodeType === 'app');
        assert.deepEqual(node('reviews').hasVS, {hostnames: ['reviews']});
        assert.equal(node('reviews').hasTrafficShifting, true);
        assert.equal(node('reviews').hasCB, true);
        assert.equal(node('reviews').hasFaultInjection, undefined);
        assert.deepEqual(node('ratings').hasVS, {hostnames: ['ratings']});
        assert.equal(node('ratings').hasFaultInjection, true);
        assert.equal(node('ratings').hasCB, true);
        assert.equal(node('details').hasRequestTimeout, true);
        assert.equal(node('productpage').hasVS, undefined);

        const vres = await page.request.get(`${base}/api/graph?namespaces=bookinfo&graphType=versionedApp&duration=10m`);
        const vg = await vres.json();
        const ver = (app, v) => vg.elements.nodes.map((n) => n.data).find((d) => d.app === app && d.version === v);
        assert.equal(ver('reviews', 'v3').hasCB, true);
        assert.equal(ver('reviews', 'v2').hasCB, undefined);
        assert.equal(ver('reviews', 'v2').hasVS, undefined);
        assert.equal(ver('ratings', 'v1').hasCB, true);
    });
}
