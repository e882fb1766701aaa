/*
 * 00-shell.spec.mjs - the collector serves the UI at / and the shell works: title, the four
 * pages in the navigation, hash routing between them, keyboard focus on the tabs.
 */
import assert from 'node:assert/strict';

export const name = 'shell';

export async function run(t) {
    const {page, base} = t;
    await t.step('the collector serves the page at /', async () => {
        const res = await page.goto(`${base}/`);
        assert.equal(res.status(), 200);
        assert.match(res.headers()['content-type'], /^text\/html/);
        assert.equal(await page.title(), 'weft');
    });
    await t.step('navigation has the four pages and routes between them', async () => {
        const tabs = await page.locator('nav.tabs a').allTextContents();
        assert.deepEqual(tabs, ['Graph', 'Traces', 'Metrics', 'Mesh']);
        for (const p of ['traces', 'metrics', 'mesh', 'graph']) {
            await page.click(`nav.tabs a[data-page="${p}"]`);
            await page.waitForFunction((want) => document.body.dataset.page === want, p);
            assert.equal(await page.getAttribute(`nav.tabs a[data-page="${p}"]`, 'aria-current'), 'page');
        }
        await t.screenshot('graph');
    });
}
