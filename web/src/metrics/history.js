/*
 * metrics/history.js - the expressions run on the Metrics page, kept in localStorage: newest
 * first, each once, at most 50. A browser that refuses storage (private mode, quota) keeps the
 * history for the page's lifetime only.
 */

export const HISTORY_KEY = 'weft.metrics.history';
export const HISTORY_MAX = 50;

export function loadHistory() {
    try {
        const v = JSON.parse(localStorage.getItem(HISTORY_KEY) || '[]');
        return Array.isArray(v) ? v.filter((x) => typeof x === 'string').slice(0, HISTORY_MAX) : [];
    } catch (e) {
        return [];
    }
}

/* Put expr first (removing an earlier copy) and save; returns the new list. */
export function addHistory(list, expr) {
    const e = expr.trim();
    if (!e) {
        return list;
    }
    const next = [e, ...list.filter((x) => x !== e)].slice(0, HISTORY_MAX);
    try {
        localStorage.setItem(HISTORY_KEY, JSON.stringify(next));
    } catch (err) {
        /* Storage refused: the list still lives in memory. */
    }
    return next;
}
