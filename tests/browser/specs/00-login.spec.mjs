/*
 * 00-login.spec.mjs - the collector runs with --users, so the UI starts at the login page: a
 * wrong password is answered inline, the right one lands on the graph with the user shown in
 * the top bar, and the session cookie is out of scripts' reach (HttpOnly, SameSite=Strict).
 * Runs first: every later spec uses the session it leaves.
 */
import assert from 'node:assert/strict';

export const name = 'login';

export async function run(t) {
    const {page, base, credentials} = t;
    await t.step('a visit without a session is sent to the login page', async () => {
        await page.goto(`${base}/`);
        await page.waitForFunction(() => document.body.dataset.page === 'login');
        assert.match(page.url(), /#\/login$/);
        assert.equal(await page.getAttribute('[data-testid=login-user]', 'autocomplete'), 'username');
        assert.equal(await page.getAttribute('[data-testid=login-password]', 'autocomplete'), 'current-password');
        assert.equal(await page.getAttribute('[data-testid=login-password]', 'type'), 'password');
        assert.equal(await page.evaluate(() => document.activeElement.dataset.testid), 'login-user');
        assert.equal(await page.locator('[data-testid=session-user]').count(), 0);
        await t.screenshot('login');
    });
    await t.step('a wrong password is answered inline, on the login page', async () => {
        await page.keyboard.type(credentials.user);
        await page.keyboard.press('Tab');
        await page.keyboard.type(`not-${credentials.password}`);
        await page.keyboard.press('Enter');
        const error = page.locator('[data-testid=login-error]');
        await error.filter({hasText: /./}).waitFor();
        assert.equal(await error.textContent(), 'Invalid username or password');
        assert.equal(await page.evaluate(() => document.body.dataset.page), 'login');
        assert.equal(await page.inputValue('[data-testid=login-password]'), '');
        assert.equal(await page.isEnabled('[data-testid=login-submit]'), true);
        await t.screenshot('wrong-password');
    });
    await t.step('the right password lands on the graph with the user shown', async () => {
        await page.fill('[data-testid=login-password]', credentials.password);
        await page.press('[data-testid=login-password]', 'Enter');
        await page.waitForFunction(() => document.body.dataset.page === 'graph');
        assert.match(page.url(), /#\/graph$/);
        assert.equal(await page.textContent('[data-testid=session-user]'), credentials.user);
        await t.screenshot('logged-in');
    });
    await t.step('the session cookie is HttpOnly and SameSite=Strict', async () => {
        const cookies = await page.context().cookies(base);
        const c = cookies.find((x) => x.name === 'weft_session');
        assert.ok(c, `no weft_session cookie in ${JSON.stringify(cookies.map((x) => x.name))}`);
        assert.match(c.value, /^[0-9a-f]{64}$/);
        assert.equal(c.httpOnly, true);
        assert.equal(c.sameSite, 'Strict');
        assert.equal(c.path, '/');
        assert.equal(await page.evaluate(() => document.cookie.includes('weft_session')), false);
    });
    await t.step('a reload keeps the session', async () => {
        await page.reload();
        await page.waitForFunction(() => document.body.dataset.page === 'graph');
        assert.equal(await page.textContent('[data-testid=session-user]'), credentials.user);
    });
}
