/*
 * api.js - the one way the pages talk to the collector: JSON over fetch, same origin.
 *
 * Errors come back as ApiError with the message the server gave (Prometheus's
 * {"status":"error","error":...}, Jaeger's {"errors":[{"msg":...}]}, weft's {"error":...}),
 * so pages can show it inline as it came. A 401 means the session is gone: the shell is told
 * (onUnauthorized) and sends the user to the login page. Requests that change state carry the
 * session's CSRF token in X-Weft-CSRF.
 */

export class ApiError extends Error {
    constructor(status, message) {
        super(message);
        this.status = status;
    }
}

let csrfToken = null;
let onUnauthorized = () => {};

export function setCsrfToken(token) {
    csrfToken = token || null;
}

export function setUnauthorizedHandler(fn) {
    onUnauthorized = fn;
}

/* path + params -> URL string; params with undefined/null/'' values are left out, arrays repeat. */
export function apiUrl(path, params) {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {})) {
        if (v === undefined || v === null || v === '') {
            continue;
        }
        for (const one of Array.isArray(v) ? v : [v]) {
            qs.append(k, String(one));
        }
    }
    const s = qs.toString();
    return s ? `${path}?${s}` : path;
}

function errorMessage(status, body, text) {
    if (body && typeof body === 'object') {
        if (typeof body.error === 'string') {
            return body.error;
        }
        if (Array.isArray(body.errors) && body.errors.length > 0) {
            return body.errors.map((e) => e.msg || String(e)).join('; ');
        }
        if (typeof body.message === 'string') {
            return body.message;
        }
    }
    const t = (text || '').trim();
    return t ? `${status}: ${t.slice(0, 300)}` : `HTTP ${status}`;
}

async function request(method, path, params, body, signal) {
    const headers = {Accept: 'application/json'};
    const init = {method, headers, credentials: 'same-origin', signal};
    if (body !== undefined) {
        headers['Content-Type'] = 'application/json';
        init.body = JSON.stringify(body);
    }
    if (method !== 'GET' && csrfToken) {
        headers['X-Weft-CSRF'] = csrfToken;
    }
    const res = await fetch(apiUrl(path, params), init);
    const text = await res.text();
    let json = null;
    try {
        json = text ? JSON.parse(text) : null;
    } catch (e) {
        json = null;
    }
    if (res.status === 401) {
        onUnauthorized();
    }
    if (!res.ok || (json && json.status === 'error')) {
        throw new ApiError(res.status, errorMessage(res.status, json, text));
    }
    return json;
}

/* GET path?params -> parsed JSON; throws ApiError. signal: an AbortSignal or undefined. */
export function apiGet(path, params, signal) {
    return request('GET', path, params, undefined, signal);
}

/* POST path with a JSON body -> parsed JSON; throws ApiError. */
export function apiPost(path, body, params) {
    return request('POST', path, params, body);
}
