/*
 * app.js - the shell of the web UI: the hash router, the session (who is logged in, the CSRF
 * token, logout) and the page lifecycle. Entry point of the bundle.
 *
 * Routes are hashes so that the collector serves one index.html for every page:
 *   #/graph?namespaces=bookinfo&graphType=versionedApp   #/traces?service=reviews
 *   #/traces/<traceID>   #/metrics?expr=...   #/mesh   #/login?next=...
 * A page module exports mount(el, route) -> {update(route) -> bool, unmount()}. When only the
 * parameters of the current page change, update() is called; if it returns false (or the page
 * changes) the page is unmounted and mounted again.
 */
import './style.css';

import {apiGet, apiPost, setCsrfToken, setUnauthorizedHandler} from './api.js';
import * as graph from './pages/graph.js';
import * as login from './pages/login.js';
import * as mesh from './pages/mesh.js';
import * as metrics from './pages/metrics.js';
import * as traces from './pages/traces.js';
import {errorBox, h, replace} from './ui.js';

const pages = {graph, traces, metrics, mesh, login};

/* The session as /api/auth/info tells it: {strategy: 'anonymous'|'login', user, csrfToken}. */
export const session = {strategy: 'anonymous', user: null};

/* '#/traces/abc?x=1' -> {page: 'traces', path: ['traces', 'abc'], params: URLSearchParams} */
export function parseRoute(hash) {
    const s = (hash || '').replace(/^#\/?/, '');
    const q = s.indexOf('?');
    const path = (q < 0 ? s : s.slice(0, q)).split('/').filter(Boolean).map(decodeURIComponent);
    const params = new URLSearchParams(q < 0 ? '' : s.slice(q + 1));
    const page = pages[path[0]] ? path[0] : 'graph';
    if (path.length === 0 || !pages[path[0]]) {
        path.splice(0, path.length, 'graph');
    }
    return {page, path, params};
}

/* A link to a page: routeHref(['traces', id], {service: 'x'}) -> '#/traces/<id>?service=x' */
export function routeHref(path, params) {
    const segs = (Array.isArray(path) ? path : [path]).map(encodeURIComponent).join('/');
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {})) {
        if (v !== undefined && v !== null && v !== '') {
            qs.set(k, String(v));
        }
    }
    const q = qs.toString();
    return `#/${segs}${q ? '?' + q : ''}`;
}

export function navigate(path, params) {
    location.hash = routeHref(path, params);
}

/* Replace the current route's parameters without a new history entry (page state in URL). */
export function replaceParams(params) {
    const r = parseRoute(location.hash);
    history.replaceState(null, '', routeHref(r.path, params));
}

let current = null; /* {name, page, instance} */

function render() {
    const route = parseRoute(location.hash);
    if (session.strategy === 'login' && !session.user && route.page !== 'login') {
        navigate('login', {next: location.hash});
        return;
    }
    for (const a of document.querySelectorAll('.tabs a')) {
        a.classList.toggle('active', a.dataset.page === route.page);
        if (a.dataset.page === route.page) {
            a.setAttribute('aria-current', 'page');
        } else {
            a.removeAttribute('aria-current');
        }
    }
    document.body.dataset.page = route.page;
    if (current && current.name === route.page && current.instance.update &&
        current.instance.update(route)) {
        return;
    }
    if (current && current.instance.unmount) {
        current.instance.unmount();
    }
    const view = document.getElementById('view');
    view.replaceChildren();
    try {
        current = {name: route.page, instance: pages[route.page].mount(view, route) || {}};
    } catch (e) {
        current = {name: route.page, instance: {}};
        replace(view, errorBox(e, 'This page failed'));
    }
}

function renderSession() {
    const el = document.getElementById('session');
    if (session.strategy !== 'login' || !session.user) {
        replace(el, session.strategy === 'anonymous' ? h('span', {class: 'muted'}, 'anonymous') : null);
        return;
    }
    replace(el, h('span', {class: 'user', 'data-testid': 'session-user'}, session.user),
            h('button', {type: 'button', class: 'link', 'data-testid': 'logout', onclick: logout},
              'Log out'));
}

/* Called by the login page once /api/login answered. */
export function loggedIn(info) {
    session.user = info.user;
    session.strategy = 'login';
    setCsrfToken(info.csrfToken);
    renderSession();
}

async function logout() {
    try {
        await apiPost('/api/logout', {});
    } catch (e) {
        /* The session is gone either way. */
    }
    session.user = null;
    setCsrfToken(null);
    renderSession();
    navigate('login');
}

async function loadSession() {
    try {
        const info = await apiGet('/api/auth/info');
        session.strategy = info.strategy || 'anonymous';
        session.user = info.user || null;
        setCsrfToken(info.csrfToken);
    } catch (e) {
        /* A collector without authentication answers 404: anonymous. */
        session.strategy = 'anonymous';
        session.user = null;
    }
}

async function start() {
    setUnauthorizedHandler(() => {
        if (session.user || session.strategy === 'login') {
            session.user = null;
            session.strategy = 'login';
            renderSession();
            if (parseRoute(location.hash).page !== 'login') {
                navigate('login', {next: location.hash});
            }
        }
    });
    await loadSession();
    renderSession();
    window.addEventListener('hashchange', render);
    render();
}

start();
