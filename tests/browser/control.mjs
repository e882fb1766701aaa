/*
 * control.mjs - the control plane of the browser tests: run.mjs starts a real `weft control`
 * before the collector (which it points at it with --control), and this module sets it up as
 * a small bookinfo mesh would: mesh-config.yaml applied with `weft apply`, fixture.mjs's
 * bookinfo workloads registered (lease 10 minutes), and proxies polling their snapshots as
 * `weft proxy` does, so that the mesh page has sync states to show. PROXIES says which state
 * each workload's proxy ends in; the mesh spec checks the page against it.
 */
import {execFileSync} from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {fileURLToPath} from 'node:url';

import {WORKLOADS} from './fixture.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const CONFIG_FILE = path.join(here, 'mesh-config.yaml');

/* The resources of mesh-config.yaml and the validation each gets from /v1/analyze. */
export const RESOURCES = [
    {kind: 'DestinationRule', name: 'ratings', validation: 'valid'},
    {kind: 'DestinationRule', name: 'reviews', validation: 'valid'},
    {kind: 'VirtualService', name: 'details', validation: 'warning', code: 'KIA1107'},
    {kind: 'VirtualService', name: 'ratings', validation: 'valid'},
    {kind: 'VirtualService', name: 'reviews', validation: 'valid'},
];

/* workload -> the sync state its proxy ends in; workloads not listed have no proxy polling. */
export const PROXIES = {
    'productpage-v1': 'SYNCED',
    'reviews-v1': 'SYNCED',
    'reviews-v2': 'SYNCED',
    'reviews-v3': 'SYNCED',
    'ratings-v1': 'NACK',
};

/* Arguments of `weft control` on dataDir listening on port. */
export function controlArgs(port, dataDir) {
    return ['control', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir, '--lease-ttl', '10m'];
}

async function call(base, token, method, p, body) {
    const res = await fetch(`${base}${p}`, {
        method, headers: {Authorization: `Bearer ${token}`, 'Content-Type': 'application/json'},
        body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return {status: res.status, text};
}

/* Apply the configuration, register the bookinfo workloads and run their proxies' first polls. */
export async function setup(weft, base, dataDir) {
    const adminFile = path.join(dataDir, 'admin-token');
    const boot = fs.readFileSync(path.join(dataDir, 'bootstrap-token'), 'utf8').trim();
    execFileSync(weft, ['apply', '-f', CONFIG_FILE, '--control', base, '--token-file', adminFile],
                 {stdio: ['ignore', 'pipe', 'pipe']});
    for (const [name, w] of Object.entries(WORKLOADS)) {
        if (w.ns !== 'bookinfo') {
            continue;
        }
        const r = await call(base, boot, 'POST', '/v1/register', {
            service: w.service, namespace: w.ns, version: w.version, address: '127.0.0.1', ports: [9080],
            labels: {app: w.app, version: w.version},
        });
        if (r.status !== 200) {
            throw new Error(`register ${name}: ${r.status} ${r.text}`);
        }
    }
    for (const [name, state] of Object.entries(PROXIES)) {
        const id = `${name}.bookinfo`;
        const first = await call(base, boot, 'GET', `/v1/snapshot?proxy=${id}&version=0&wait_ms=10000`);
        if (first.status !== 200) {
            throw new Error(`snapshot of ${id}: ${first.status} ${first.text.slice(0, 200)}`);
        }
        const version = JSON.parse(first.text).version;
        const ack = state === 'NACK'
            ? `version=0&nack=${version}&reason=${encodeURIComponent('unknown cluster in route')}`
            : `version=${version}`;
        const second = await call(base, boot, 'GET', `/v1/snapshot?proxy=${id}&${ack}&wait_ms=1`);
        if (second.status !== 304) {
            throw new Error(`ack of ${id}: ${second.status}`);
        }
    }
    return {adminFile};
}
