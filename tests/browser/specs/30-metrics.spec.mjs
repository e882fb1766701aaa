/*
 * 30-metrics.spec.mjs - the Metrics page against fixture.mjs's Istio metrics: an instant query
 * in the table (ratings-v1's requests by response code: 3/s of 200 and 1/s of 500, from the two
 * edges into it), the same as a graph, completion of a metric name, a label name and a label
 * value from the keyboard, the API's parse error inline, and the history of what was run.
 */
import assert from 'node:assert/strict';

export const name = 'metrics';

const QUERY = 'sum by (response_code) (rate(istio_requests_total{reporter="destination",' +
    'destination_workload="ratings-v1"}[5m]))';

const QUERY_MATRIX = 'istio_requests_total{reporter="source",source_workload="reviews-v3",response_code="500"}[1m]';

/* rate() extrapolates to the window's edges: allow 1 %. */
function near(got, want) {
    assert.ok(Math.abs(got - want) <= want * 0.01, `${got} is not within 1 % of ${want}`);
}

async function options(page) {
    return page.locator('[data-testid=expr-list] .expr-option-text').allTextContents();
}

export async function run(t) {
    const {page, base, fixture, fed} = t;
    /* what the fixture says ratings-v1 receives per second, by code */
    const want = {};
    for (const e of fixture.EDGES.filter((x) => x.dst === 'ratings-v1')) {
        for (const [code, rps] of Object.entries(e.codes)) {
            want[code] = (want[code] || 0) + rps;
        }
    }
    assert.deepEqual(want, {200: 3, 500: 1});

    await t.step('an instant query in the table: 200 -> 3/s, 500 -> 1/s', async () => {
        /* at the fixture's last sample: later, rate() would extrapolate less than a full window */
        const at = fed.nowMs / 1000;
        await page.goto(`${base}/#/metrics?time=${at}`);
        await page.evaluate(() => localStorage.removeItem('weft.metrics.history'));
        await page.reload();
        await page.waitForSelector('[data-testid=expr]');
        await page.fill('[data-testid=expr]', QUERY);
        await page.press('[data-testid=expr]', 'Enter');
        await page.waitForSelector('[data-testid=metrics-table] tbody tr');
        const rows = await page.locator('[data-testid=metrics-table] tbody tr').evaluateAll((trs) =>
            trs.map((tr) => ({series: tr.querySelector('.series').textContent, value: Number(tr.dataset.value)})));
        assert.equal(rows.length, 2);
        const byCode = Object.fromEntries(rows.map((r) => [/response_code="(\d+)"/.exec(r.series)[1], r.value]));
        near(byCode['200'], want[200]);
        near(byCode['500'], want[500]);
        assert.equal(rows.find((r) => r.value === byCode['200']).series, '{response_code="200"}');
        assert.match(await page.textContent('[data-testid=query-stats]'), /Result series: 2/);
        const params = new URLSearchParams(page.url().split('?')[1]);
        assert.equal(params.get('expr'), QUERY);
        assert.equal(Number(params.get('time')), at);
        assert.notEqual(await page.inputValue('[data-testid=eval-time]'), '');
        await t.screenshot('table');
    });

    await t.step('the graph tab draws the two series with a legend', async () => {
        await page.click('[data-testid=tab-graph]');
        await page.waitForSelector('[data-testid=metrics-chart] canvas');
        const legend = await page.locator('[data-testid=metrics-legend] li').allTextContents();
        assert.deepEqual(legend.sort(), ['{response_code="200"}', '{response_code="500"}']);
        assert.match(page.url(), /tab=graph/);
        assert.equal(await page.textContent('[data-testid=step]'), 'step 14s'); /* 1h / 250, as Prometheus */
        await page.selectOption('[data-testid=range]', '5m');
        await page.waitForSelector('[data-testid=metrics-chart] canvas');
        assert.equal(await page.textContent('[data-testid=step]'), 'step 1s');
        assert.match(page.url(), /range=5m/);
        await page.selectOption('[data-testid=range]', '1h');
        await page.waitForSelector('[data-testid=metrics-chart] canvas');
        await t.screenshot('graph');
    });

    await t.step('completion: istio_req offers istio_requests_total, the keyboard takes it', async () => {
        await page.click('[data-testid=tab-table]');
        await page.fill('[data-testid=expr]', '');
        await page.focus('[data-testid=expr]');
        await page.keyboard.type('istio_req');
        await page.waitForSelector('[data-testid=expr-list] .expr-option');
        const opts = await options(page);
        const i = opts.indexOf('istio_requests_total');
        assert.ok(i >= 0, `offered: ${opts.join(', ')}`);
        assert.ok(opts.every((o) => o.startsWith('istio_req')));
        for (let k = 0; k < i; k++) {
            await page.keyboard.press('ArrowDown');
        }
        assert.equal(await page.textContent('[data-testid=expr-list] .expr-option.active .expr-option-text'),
                     'istio_requests_total');
        await t.screenshot('completion');
        await page.keyboard.press('Enter');
        assert.equal(await page.inputValue('[data-testid=expr]'), 'istio_requests_total');
        assert.ok(await page.locator('[data-testid=expr-list]').isHidden());
        /* Enter took the item: nothing ran */
        assert.equal(new URLSearchParams(page.url().split('?')[1]).get('expr'), QUERY);
        /* a label name inside {, then its values inside name=" */
        await page.keyboard.type('{repo');
        await page.waitForFunction(() => [...document.querySelectorAll('[data-testid=expr-list] .expr-option-text')]
            .some((e) => e.textContent === 'reporter'));
        await page.keyboard.press('Tab');
        assert.equal(await page.inputValue('[data-testid=expr]'), 'istio_requests_total{reporter');
        await page.keyboard.type('="');
        await page.waitForFunction(() => document.querySelectorAll('[data-testid=expr-list] .expr-option').length === 2);
        assert.deepEqual(await options(page), ['destination', 'source']);
        await page.keyboard.press('Enter');
        assert.equal(await page.inputValue('[data-testid=expr]'), 'istio_requests_total{reporter="destination"');
        await page.keyboard.type('}');
        await page.keyboard.press('Escape');
    });

    await t.step('a scalar is one row; a range selector shows each series\' values @ times', async () => {
        await page.fill('[data-testid=expr]', '1 + 2');
        await page.press('[data-testid=expr]', 'Enter');
        await page.waitForSelector('[data-testid=metrics-table][data-result-type=scalar]');
        assert.deepEqual(await page.locator('[data-testid=metrics-table] tbody tr').evaluateAll((trs) =>
            trs.map((tr) => tr.dataset.value)), ['3']);
        /* one series, sampled every 15 s: a 1m window ending on a sample holds 4 or 5 of them */
        await page.fill('[data-testid=expr]', QUERY_MATRIX);
        await page.press('[data-testid=expr]', 'Enter');
        await page.waitForSelector('[data-testid=metrics-table][data-result-type=matrix]');
        assert.equal(await page.locator('[data-testid=metrics-table] tbody tr').count(), 1);
        const points = await page.locator('.matrix-values > div').allTextContents();
        assert.ok(points.length >= 4 && points.length <= 5, `${points.length} points`);
        for (const p of points) {
            assert.match(p, /^\d+ @[\d.]+ \d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
        }
    });

    await t.step('a bad query shows the API\'s parse error inline', async () => {
        const res = await page.request.get(`${base}/api/v1/query?query=${encodeURIComponent('sum(')}`);
        const body = await res.json();
        assert.equal(body.status, 'error');
        await page.fill('[data-testid=expr]', 'sum(');
        await page.press('[data-testid=expr]', 'Enter');
        await page.waitForSelector('[data-testid=query-error] .state.error');
        assert.ok((await page.textContent('[data-testid=query-error]')).includes(body.error),
                  `the error shown is the API's: ${body.error}`);
        assert.equal(await page.locator('[data-testid=metrics-table]').count(), 0);
    });

    await t.step('history: the queries run, newest first, each once, chosen by keyboard', async () => {
        await page.click('[data-testid=history]');
        await page.waitForSelector('[data-testid=expr-list] .expr-option');
        assert.deepEqual(await options(page), ['sum(', QUERY_MATRIX, '1 + 2', QUERY]);
        await page.keyboard.press('ArrowUp');
        await page.keyboard.press('Enter');
        assert.equal(await page.inputValue('[data-testid=expr]'), QUERY);
        await page.keyboard.press('Enter');
        await page.waitForSelector('[data-testid=metrics-table] tbody tr');
        const stored = await page.evaluate(() => JSON.parse(localStorage.getItem('weft.metrics.history')));
        assert.deepEqual(stored, [QUERY, 'sum(', QUERY_MATRIX, '1 + 2']);
        /* reachable from the keyboard alone: Alt+Down in the box */
        await page.focus('[data-testid=expr]');
        await page.keyboard.press('Alt+ArrowDown');
        assert.deepEqual(await options(page), [QUERY, 'sum(', QUERY_MATRIX, '1 + 2']);
        await page.keyboard.press('Escape');
        assert.ok(await page.locator('[data-testid=expr-list]').isHidden());
    });
}
