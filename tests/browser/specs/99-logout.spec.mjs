/*
 * 99-logout.spec.mjs - logging out ends the session on the server, not only in the page: the
 * UI goes back to the login page and the API answers 401 to the browser's cookie jar, and to
 * the old cookie sent by hand; a link followed while logged out leads through the login page
 * to where it pointed. Runs last.
 */
import assert from 'node:assert/strict';

export const name = 'logout';

export async function run(t) {
    const {page, base, credentials} = t;
    let old = null;
    await t.step('the session works before logging out', async () => {
        await page.goto(`${base}/#/graph`);
        await page.waitForFunction(() => document.body.dataset.page === 'graph');
        assert.equal(await page.textContent('[data-testid=session-user]'), credentials.user);
        old = (await page.context().cookies(base)).find((x) => x.name === 'weft_session');
        assert.ok(old);
        const res = await page.request.get(`${base}/api/v1/labels`);
        assert.equal(res.status(), 200);
    });
    await t.step('log out goes to the login page', async () => {
        await page.click('[data-testid=logout]');
        await page.waitForFunction(() => document.body.dataset.page === 'login');
        assert.equal(await page.locator('[data-testid=session-user]').count(), 0);
        await t.screenshot('logged-out');
    });
    await t.step('the API answers 401 to the page\'s cookie jar and to the old cookie', async () => {
        const res = await page.request.get(`${base}/api/v1/labels`);
        assert.equal(res.status(), 401);
        assert.equal((await res.json()).errorType, 'unauthorized');
        const again = await page.request.get(`${base}/api/v1/labels`, {
            headers: {Cookie: `weft_session=${old.value}`, Accept: 'application/json'},
        });
        assert.equal(again.status(), 401);
        assert.equal(again.headers()['www-authenticate'], undefined);
        const info = await (await page.request.get(`${base}/api/auth/info`)).json();
        assert.deepEqual(info, {strategy: 'login', user: null, csrfToken: null});
    });
    await t.step('a link followed while logged out survives the login', async () => {
        await page.goto(`${base}/#/graph?namespaces=bookinfo`);
        await page.waitForFunction(() => document.body.dataset.page === 'login');
        const next = new URL(page.url()).hash;
        assert.equal(next, `#/login?next=${encodeURIComponent('#/graph?namespaces=bookinfo')}`);
        await page.fill('[data-testid=login-user]', credentials.user);
        await page.fill('[data-testid=login-password]', credentials.password);
        await page.click('[data-testid=login-submit]');
        await page.waitForFunction(() => document.body.dataset.page === 'graph');
        assert.match(new URL(page.url()).hash, /^#\/graph\?(.*&)?namespaces=bookinfo(&|$)/);
        assert.equal(await page.textContent('[data-testid=session-user]'), credentials.user);
        await page.click('[data-testid=logout]');
        await page.waitForFunction(() => document.body.dataset.page === 'login');
        assert.equal((await page.request.get(`${base}/api/v1/labels`)).status(), 401);
    });
}
