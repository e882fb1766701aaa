/*
 * run.mjs - the browser tests of weft's web UI: starts a real `weft control` set up by
 * control.mjs, then a real `weft collector` on a free loopback port with a fresh data directory
 * and --control pointing at it, feeds it fixture.mjs's mesh, drives Debian's
 * chromium (headless) with playwright-core through every spec in specs/ (in file-name order,
 * one browser page shared, so a spec may rely on the ones before it: the login spec runs
 * first), saves a screenshot of each step into the artifacts directory, and stops everything.
 *
 *   WEFT_BIN=build/weft node tests/browser/run.mjs [--artifacts DIR] [spec-name-substring ...]
 *
 * A spec module exports `name` and `async run(t)`; t = {page, base, fixture, fed, artifacts,
 * tmp, weft, step(title, fn), screenshot(name), collectorArgs, control (control.mjs),
 * controlUrl, credentials, freePort}. The collector reads the mesh's configuration from a real `weft
 * control` and runs with --users: a users file made by `weft users add` for credentials =
 * {user: 'admin', password: <random>}, so every page goes through the login spec first. Any
 * console error or uncaught page error fails the spec it happened in. Exit 0 all passed, 1 a
 * failure, 77 a prerequisite (chromium, playwright-core, WEFT_BIN) is missing: ctest shows
 * "skipped".
 */
import {spawn} from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {fileURLToPath, pathToFileURL} from 'node:url';

import * as control from './control.mjs';
import * as fixture from './fixture.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.WEFT_CHROMIUM || '/usr/bin/chromium';
const OVERALL_TIMEOUT_MS = 560000;

function skip(why) {
    console.log(`skipped: ${why}`);
    process.exit(77);
}

const argv = process.argv.slice(2);
let artifacts = path.resolve('browser-artifacts');
const filters = [];
for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--artifacts') {
        artifacts = path.resolve(argv[++i]);
    } else {
        filters.push(argv[i]);
    }
}

const weft = process.env.WEFT_BIN;
if (!weft || !fs.existsSync(weft)) {
    skip('WEFT_BIN is not set to the weft binary');
}
if (!fs.existsSync(CHROMIUM)) {
    skip(`${CHROMIUM} not installed (Debian package chromium; scripts/install-deps.sh installs it)`);
}
let chromium;
try {
    ({chromium} = await import('playwright-core'));
} catch (e) {
    skip('playwright-core not installed (cd tests/browser && npm ci)');
}

/* A free port of 127.0.0.1 never handed out before in this run (two probes in a row may be
 * given the same one). */
const portsGiven = new Set();
function probePort() {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.on('error', reject);
        srv.listen(0, '127.0.0.1', () => {
            const {port} = srv.address();
            srv.close(() => resolve(port));
        });
    });
}
async function freePort() {
    for (;;) {
        const port = await probePort();
        if (!portsGiven.has(port)) {
            portsGiven.add(port);
            return port;
        }
    }
}

const children = [];

/* Start a weft subcommand; its output goes to <tmp>/<label>.log. */
function startWeft(label, args, tmp) {
    const log = fs.openSync(path.join(tmp, `${label}.log`), 'a');
    const child = spawn(weft, args, {stdio: ['ignore', log, log]});
    child.label = label;
    child.exited = new Promise((resolve) => child.on('exit', (code, sig) => resolve({code, sig})));
    children.push(child);
    return child;
}

/* Create the users file with `weft users add --password-stdin`, as an operator would. */
function addUser(file, {user, password}) {
    return new Promise((resolve, reject) => {
        const child = spawn(weft, ['users', 'add', '--password-stdin', file, user], {stdio: ['pipe', 'ignore', 'pipe']});
        let err = '';
        child.stderr.on('data', (d) => { err += d; });
        child.stdin.on('error', () => {}); /* a child that exits without reading: its exit code says why */
        child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`weft users add: exit ${code}: ${err}`))));
        child.stdin.end(`${password}\n`);
    });
}

async function waitReady(url, child, ms) {
    const until = Date.now() + ms;
    for (;;) {
        try {
            const res = await fetch(url);
            if (res.ok) {
                return;
            }
        } catch (e) {
            /* not listening yet */
        }
        if (child.exitCode !== null) {
            throw new Error(`${child.label} exited with ${child.exitCode} before it was ready`);
        }
        if (Date.now() > until) {
            throw new Error(`${child.label} not ready at ${url} within ${ms} ms`);
        }
        await new Promise((r) => setTimeout(r, 100));
    }
}

async function stopAll() {
    for (const c of children) {
        if (c.exitCode === null && c.signalCode === null) {
            c.kill('SIGTERM');
        }
    }
    for (const c of children) {
        const done = await Promise.race([c.exited, new Promise((r) => setTimeout(() => r(null), 10000))]);
        if (done === null) {
            c.kill('SIGKILL');
            await c.exited;
        }
    }
}

async function main() {
    fs.mkdirSync(artifacts, {recursive: true});
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-browser-'));
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const credentials = {user: 'admin', password: crypto.randomBytes(15).toString('base64url')};
    const usersFile = path.join(tmp, 'users');
    try {
        await addUser(usersFile, credentials);
    } catch (e) {
        console.log(`FAIL setup: ${e.message}`);
        fs.rmSync(tmp, {recursive: true, force: true});
        return 1;
    }
    /* The control plane first: the collector reads the mesh's configuration from it. */
    const controlPort = await freePort();
    const controlUrl = `http://127.0.0.1:${controlPort}`;
    const controlDir = path.join(tmp, 'control');
    const controlProc = startWeft('control', control.controlArgs(controlPort, controlDir), tmp);
    const collectorArgs = ['collector', '--listen', `127.0.0.1:${port}`, '--data-dir', path.join(tmp, 'data'),
                           '--otlp-listen', 'off', '--zipkin-listen', 'off', '--control', controlUrl,
                           '--control-token-file', path.join(controlDir, 'admin-token'), '--users', usersFile];
    let collector = null;
    let browser = null;
    let failed = 0;
    try {
        await waitReady(`${controlUrl}/healthz`, controlProc, 20000);
        await control.setup(weft, controlUrl, controlDir);
        collector = startWeft('collector', collectorArgs, tmp);
        await waitReady(`${base}/-/ready`, collector, 20000);
        const fed = await fixture.feed(base);
        browser = await chromium.launch({executablePath: CHROMIUM, headless: true, args: ['--no-sandbox']});
        const context = await browser.newContext({viewport: {width: 1280, height: 800}});
        const page = await context.newPage();
        page.setDefaultTimeout(15000);
        const problems = [];
        /* An API answering 4xx/5xx to fetch() is a state the page shows inline (and the specs
         * check); chromium also logs it as a console error, which is not a page fault. Any
         * other console error is (a script, style or image that failed to load included). */
        const failedFetches = new Set();
        page.on('response', (r) => {
            if (r.status() >= 400 && ['fetch', 'xhr'].includes(r.request().resourceType())) {
                failedFetches.add(r.url());
            }
        });
        page.on('console', (m) => {
            if (m.type() !== 'error') {
                return;
            }
            if (m.text().startsWith('Failed to load resource') && failedFetches.has(m.location().url)) {
                return;
            }
            problems.push(`console error: ${m.text()} (${m.location().url || 'no url'})`);
        });
        page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));

        const files = fs.readdirSync(path.join(here, 'specs')).filter((f) => f.endsWith('.spec.mjs')).sort()
            .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)));
        for (const f of files) {
            const spec = await import(pathToFileURL(path.join(here, 'specs', f)).href);
            const name = spec.name || f;
            let shot = 0;
            const t = {
                page, base, fixture, fed, artifacts, tmp, weft, collectorArgs, control, controlUrl, credentials,
                freePort,
                screenshot: async (what) => {
                    const file = path.join(artifacts, `${f.replace('.spec.mjs', '')}-${String(++shot).padStart(2, '0')}-${what}.png`);
                    await page.screenshot({path: file, fullPage: false});
                    return file;
                },
                step: async (title, fn) => {
                    const t0 = performance.now();
                    await fn();
                    console.log(`  ok   ${name}: ${title} (${(performance.now() - t0).toFixed(0)} ms)`);
                },
            };
            problems.length = 0;
            try {
                await spec.run(t);
                if (problems.length > 0) {
                    throw new Error(problems.join('\n'));
                }
                console.log(`PASS ${name}`);
            } catch (e) {
                failed++;
                console.log(`FAIL ${name}: ${e.stack || e}`);
                await page.screenshot({path: path.join(artifacts, `${f.replace('.spec.mjs', '')}-FAILED.png`)}).catch(() => {});
            }
        }
        if (files.length === 0) {
            throw new Error('no spec matched');
        }
        console.log(`${files.length - failed} of ${files.length} specs passed; screenshots in ${artifacts}`);
    } catch (e) {
        failed++;
        console.log(`FAIL setup: ${e.stack || e}`);
    } finally {
        if (browser) {
            await browser.close().catch(() => {});
        }
        await stopAll();
        if (failed) {
            for (const f of fs.readdirSync(tmp).filter((x) => x.endsWith('.log'))) {
                const text = fs.readFileSync(path.join(tmp, f), 'utf8');
                console.log(`--- ${f} (last 40 lines)\n${text.split('\n').slice(-40).join('\n')}`);
            }
        }
        fs.rmSync(tmp, {recursive: true, force: true});
    }
    return failed ? 1 : 0;
}

const timer = setTimeout(async () => {
    console.log(`FAIL: the browser tests took longer than ${OVERALL_TIMEOUT_MS} ms`);
    await stopAll();
    process.exit(1);
}, OVERALL_TIMEOUT_MS);
const rc = await main();
clearTimeout(timer);
process.exit(rc);
