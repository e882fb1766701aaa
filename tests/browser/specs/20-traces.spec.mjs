/*
 * 20-traces.spec.mjs - the Traces page against fixture.mjs's traces (TRACES.ok + TRACES.failed
 * of 6 spans each, gateway -> productpage -> reviews -> ratings): the search by service and by
 * tags, the scatter, the result list; one failed trace's waterfall (rows, error marks, collapse
 * and expand by mouse and keyboard, the critical path as critical-path.js computes it, which is
 * checked first on traces whose path is known by hand), span details and the link to the graph.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';

export const name = 'traces';

/* critical-path.js and query.js have no imports: load the page's own modules into node. */
async function pageModule(file) {
    const src = fs.readFileSync(new URL(`../../../web/src/traces/${file}`, import.meta.url), 'utf8');
    return import(`data:text/javascript;base64,${Buffer.from(src).toString('base64')}`);
}

function span(id, start, end, parent) {
    return {spanID: id, startTime: start, duration: end - start,
            references: parent ? [{refType: 'CHILD_OF', traceID: 't', spanID: parent}] : []};
}

function sections(cp, spans) {
    return cp.criticalPath(spans).map((s) => `${s.spanId}:${s.start}-${s.end}`);
}

async function visibleRows(page) {
    return page.locator('.wf-row:visible').count();
}

export async function run(t) {
    const {page, base, fixture, fed} = t;
    const cp = await pageModule('critical-path.js');
    const query = await pageModule('query.js');

    await t.step('search parameters: logfmt tags, durations, lookback windows', async () => {
        assert.deepEqual(query.parseLogfmt('http.status_code=500  error=true msg="a \\"b\\" c" flag'),
                         {'http.status_code': '500', error: 'true', msg: 'a "b" c', flag: 'true'});
        assert.throws(() => query.parseLogfmt('msg="open'), /not closed/);
        assert.throws(() => query.parseLogfmt('=x'), /without a key/);
        assert.equal(query.parseDurationMs('1.2s', 'x'), 1200);
        assert.equal(query.parseDurationMs('250us', 'x'), 0.25);
        assert.throws(() => query.parseDurationMs('10', 'Min duration'), /Min duration: "10" is not a duration/);
        const q = query.searchFromParams(new URLSearchParams('service=reviews&lookback=2d&tags=error%3Dtrue'));
        const p = query.apiParams(q, 1700000000000);
        assert.equal(p.end, '1700000000000000');
        assert.equal(Number(p.end) - Number(p.start), 2 * 86400 * 1e6);
        assert.equal(p.tags, '{"error":"true"}');
        assert.equal(p.limit, '20');
        assert.throws(() => query.apiParams({...q, minDuration: '2s', maxDuration: '1s'}, 0), /below/);
    });

    await t.step('critical path: the algorithm on traces known by hand', async () => {
        /* overlapping children: only the last-finishing one and what it waited on */
        assert.deepEqual(sections(cp, [span('r', 0, 100), span('a', 10, 40, 'r'), span('b', 20, 90, 'r'),
                                       span('c', 30, 50, 'b')]),
                         ['r:90-100', 'b:50-90', 'c:30-50', 'b:20-30', 'r:0-20']);
        /* the child that finished last, not the one that started last, is what the parent waited on */
        assert.deepEqual(sections(cp, [span('r', 0, 100), span('a', 5, 95, 'r'), span('b', 50, 60, 'r')]),
                         ['r:95-100', 'a:5-95', 'r:0-5']);
        /* sequential children: both, and the gap between them is the parent's */
        assert.deepEqual(sections(cp, [span('r', 0, 100), span('a', 0, 30, 'r'), span('b', 40, 80, 'r')]),
                         ['r:80-100', 'b:40-80', 'r:30-40', 'a:0-30']);
        /* a child running past its parent is clipped to it; one wholly after it is dropped */
        assert.deepEqual(sections(cp, [span('r', 0, 50), span('a', 40, 70, 'r'), span('z', 60, 90, 'r')]),
                         ['a:40-50', 'r:0-40']);
        /* an orphan (parent not in the trace) is not on the root's path */
        assert.deepEqual(sections(cp, [span('r', 0, 10), span('o', 2, 30, 'missing')]), ['r:0-10']);
    });

    await t.step('search by service: 5 traces, 2 with errors, 5 points in the scatter', async () => {
        await page.goto(`${base}/#/traces?service=productpage`);
        await page.waitForSelector('.trace-result');
        assert.equal(await page.locator('.trace-result').count(), fixture.TRACES.ok + fixture.TRACES.failed);
        assert.equal(await page.locator('.trace-result.has-errors').count(), fixture.TRACES.failed);
        const failedIds = await page.locator('.trace-result.has-errors').evaluateAll(
            (els) => els.map((e) => e.dataset.traceId).sort());
        assert.deepEqual(failedIds, [...fed.traceIds.failed].sort());
        assert.equal(await page.getAttribute('[data-testid=trace-scatter]', 'data-points'), '5');
        assert.equal(await page.locator('[data-testid=trace-scatter] canvas').count(), 1);
        assert.equal(await page.inputValue('[data-testid=service]'), 'productpage');
        /* every trace has 6 spans over the 4 services */
        const counts = await page.locator('.trace-result .badge:not(.error)').allTextContents();
        assert.deepEqual(counts, new Array(5).fill('6 spans'));
        assert.equal(await page.locator('.trace-result').first().locator('.service-chip').count(), 4);
        await t.screenshot('search');
    });

    await t.step('most recent first; another sort is kept in the route', async () => {
        /* the fixture starts trace i at now - 60 s + i * 5 s, the failed ones last */
        const order = await page.locator('.trace-result').evaluateAll((els) => els.map((e) => e.dataset.traceId));
        assert.deepEqual(order, [...fed.traceIds.ok, ...fed.traceIds.failed].reverse());
        await page.selectOption('[data-testid=sort]', 'longest');
        const durations = await page.locator('.trace-result').evaluateAll((els) =>
            els.map((e) => Number(e.dataset.duration)));
        assert.equal(durations.length, 5);
        assert.deepEqual(durations, [...durations].sort((a, b) => b - a));
        assert.match(page.url(), /sort=longest/);
        await page.selectOption('[data-testid=sort]', 'recent');
        assert.doesNotMatch(page.url(), /sort=/);
    });

    await t.step('search with tags error=true: only the failed traces', async () => {
        await page.fill('[data-testid=tags]', 'error=true');
        await page.click('[data-testid=find-traces]');
        await page.waitForFunction(() => document.querySelectorAll('.trace-result').length === 2);
        const ids = await page.locator('.trace-result').evaluateAll((els) => els.map((e) => e.dataset.traceId).sort());
        assert.deepEqual(ids, [...fed.traceIds.failed].sort());
        assert.equal(await page.locator('.trace-result.has-errors').count(), 2);
        assert.match(page.url(), /tags=error%3Dtrue/);
        assert.equal(await page.getAttribute('[data-testid=trace-scatter]', 'data-points'), '2');
    });

    await t.step('a bad tag expression is shown in the form, not sent', async () => {
        await page.fill('[data-testid=tags]', 'msg="unclosed');
        await page.click('[data-testid=find-traces]');
        await page.waitForSelector('.form-error:has-text("not closed")');
    });

    await t.step('durations: none of the 40 ms traces lasts 1s or more; a duration needs a unit', async () => {
        await page.fill('[data-testid=tags]', '');
        await page.fill('[data-testid=min-duration]', '1s');
        await page.click('[data-testid=find-traces]');
        await page.waitForSelector('.state.empty:has-text("No traces in this window")');
        assert.equal(await page.locator('.trace-result').count(), 0);
        assert.match(page.url(), /minDuration=1s/);
        await page.fill('[data-testid=min-duration]', '30ms');
        await page.fill('[data-testid=max-duration]', '50ms');
        await page.click('[data-testid=find-traces]');
        await page.waitForFunction(() => document.querySelectorAll('.trace-result').length === 5);
        await page.fill('[data-testid=min-duration]', '10');
        await page.click('[data-testid=find-traces]');
        await page.waitForSelector('.form-error:has-text("is not a duration")');
    });

    await t.step('clicking a point of the scatter opens its trace', async () => {
        await page.goto(`${base}/#/traces?service=ratings&tags=error%3Dtrue`);
        await page.waitForFunction(() => document.querySelectorAll('.trace-result').length === 2);
        const id = fed.traceIds.failed[1];
        const at = await page.evaluate((tid) => document.querySelector('[data-testid=trace-scatter]').pointAt(tid), id);
        assert.ok(at, 'the scatter knows where the trace is');
        await page.mouse.click(at.x, at.y);
        await page.waitForFunction((tid) => location.hash === `#/traces/${tid}`, id);
    });

    const id = fed.traceIds.failed[0];
    /* the API with the page's session (the collector runs with --users) */
    const res = await page.request.get(`${base}/api/traces/${id}`);
    const raw = (await res.json()).data[0];
    const errorIds = raw.spans.filter((s) => s.tags.some((x) => x.key === 'error' && x.value === true))
        .map((s) => s.spanID).sort();

    await t.step('a failed trace: 6 rows, the error spans marked', async () => {
        await page.goto(`${base}/#/traces/${id}`);
        await page.waitForSelector('.wf-row');
        assert.equal(await page.locator('.wf-row').count(), fixture.TRACES.spansPerTrace);
        assert.equal(await page.textContent('[data-testid=trace-span-count]'), '6');
        assert.equal(await page.textContent('[data-testid=trace-services]'), '4');
        assert.equal(await page.textContent('[data-testid=trace-depth]'), '6');
        /* reviews-v3 -> ratings and productpage -> reviews-v3 answered 500: their client and
         * server spans, 4 of the 6 */
        assert.equal(errorIds.length, 4);
        const marked = await page.locator('.wf-row.error').evaluateAll((els) => els.map((e) => e.dataset.spanId).sort());
        assert.deepEqual(marked, errorIds);
        assert.equal(await page.locator('.wf-row.error .wf-error-mark').count(), 4);
    });

    await t.step('the critical path is highlighted as the algorithm computes it', async () => {
        const want = [...cp.criticalSpanIds(raw.spans)].sort();
        /* a chain of calls, each waiting on the next: every span has time on the path */
        assert.equal(want.length, 6);
        const got = await page.locator('.wf-row[data-critical=true]').evaluateAll((els) =>
            els.map((e) => e.dataset.spanId).sort());
        assert.deepEqual(got, want);
        assert.ok(await page.locator('.wf-crit').count() >= 6);
        await t.screenshot('trace');
    });

    await t.step('collapsing the root hides its descendants, expanding shows them', async () => {
        await page.click('.wf-row >> nth=0 >> .wf-toggle');
        assert.equal(await visibleRows(page), 1);
        assert.equal(await page.getAttribute('.wf-row >> nth=0', 'aria-expanded'), 'false');
        await page.click('.wf-row >> nth=0 >> .wf-toggle');
        assert.equal(await visibleRows(page), 6);
        /* by keyboard: Left collapses, Right expands, Space toggles, Down moves */
        await page.focus('.wf-row >> nth=0');
        await page.keyboard.press('ArrowLeft');
        assert.equal(await visibleRows(page), 1);
        await page.keyboard.press('ArrowRight');
        assert.equal(await visibleRows(page), 6);
        await page.keyboard.press('ArrowDown');
        await page.keyboard.press(' ');
        assert.equal(await visibleRows(page), 2);
        await page.keyboard.press(' ');
        assert.equal(await visibleRows(page), 6);
        /* Enter on the focused row (the second) opens its details */
        const second = await page.getAttribute('.wf-row >> nth=1', 'data-span-id');
        await page.keyboard.press('Enter');
        await page.waitForSelector(`[data-testid=span-details][data-span-id="${second}"]`);
    });

    await t.step('span details: the ratings server span has http.status_code 500; link to the graph', async () => {
        const ratings = raw.spans.find((s) => raw.processes[s.processID].serviceName === 'ratings');
        await page.click(`.wf-row[data-span-id="${ratings.spanID}"]`);
        await page.waitForSelector(`[data-testid=span-details][data-span-id="${ratings.spanID}"]`);
        assert.equal(await page.textContent('[data-testid=span-tags] tr[data-key="http.status_code"] td'), '500');
        const href = await page.getAttribute('[data-testid=span-graph-link]', 'href');
        const params = new URLSearchParams(href.split('?')[1]);
        assert.ok(href.startsWith('#/graph?'));
        assert.equal(params.get('namespaces'), fixture.NAMESPACE);
        assert.equal(params.get('focus'), 'ratings');
        await t.screenshot('span-details');
    });

    await t.step('an orphan span (its parent never arrived) is shown at the root, marked', async () => {
        /* three hours back: outside the default lookback, so no other search sees it */
        const traceId = 'ab'.repeat(16);
        const t0 = BigInt(fed.nowMs - 3 * 3600 * 1000) * 1000000n;
        const ms = (n) => String(t0 + BigInt(n) * 1000000n);
        const sp = (spanId, parentSpanId, name, from, to) => ({traceId, spanId, parentSpanId, name, kind: 2,
                                                                startTimeUnixNano: ms(from), endTimeUnixNano: ms(to)});
        const spans = [sp('a1a1a1a1a1a1a1a1', '', 'root', 0, 30), sp('b2b2b2b2b2b2b2b2', 'a1a1a1a1a1a1a1a1', 'child', 5, 20),
                       sp('c3c3c3c3c3c3c3c3', 'dddddddddddddddd', 'late', 10, 40)];
        const body = {resourceSpans: [{resource: {attributes: [{key: 'service.name', value: {stringValue: 'productpage'}}]},
                                       scopeSpans: [{spans}]}]};
        const res = await fetch(`${base}/v1/traces`, {method: 'POST', body: JSON.stringify(body),
                                                      headers: {'Content-Type': 'application/json'}});
        assert.equal(res.status, 200);
        await page.goto(`${base}/#/traces/${traceId}`);
        await page.waitForSelector('.wf-row');
        const rows = await page.locator('.wf-row').evaluateAll((els) => els.map((e) => ({
            id: e.dataset.spanId, level: e.getAttribute('aria-level'), orphan: e.classList.contains('orphan'),
            critical: e.dataset.critical === 'true'})));
        assert.deepEqual(rows, [
            {id: 'a1a1a1a1a1a1a1a1', level: '1', orphan: false, critical: true},
            {id: 'b2b2b2b2b2b2b2b2', level: '2', orphan: false, critical: true},
            {id: 'c3c3c3c3c3c3c3c3', level: '1', orphan: true, critical: false},
        ]);
        assert.equal(await page.locator('.wf-row.orphan .badge.orphan').count(), 1);
        await t.screenshot('orphan');
    });
}
