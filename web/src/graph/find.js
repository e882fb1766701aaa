/*
 * graph/find.js - the toolbar's find and hide expressions. An expression is one or more terms
 * separated by spaces or commas, and a node matches when every term does: `name=reviews`,
 * `ns=bookinfo` (or `namespace=`), `version=v2`, `app=`, `workload=`, `service=`, `type=`
 * compare a field exactly; any other word is looked for, case-insensitively, in the node's
 * names (workload, app, service).
 */
import {nodeName} from './style.js';

const FIELDS = {
    name: (d) => [nodeName(d), d.workload, d.app, d.service],
    ns: (d) => [d.namespace],
    namespace: (d) => [d.namespace],
    version: (d) => [d.version],
    app: (d) => [d.app],
    workload: (d) => [d.workload],
    service: (d) => [d.service],
    type: (d) => [d.nodeType],
};

/* expression -> predicate(nodeData) or null when the expression is empty. Unknown keys are an
 * error the toolbar shows: {error}. */
export function compileFind(expr) {
    const terms = String(expr || '').split(/[\s,]+/).filter(Boolean);
    if (terms.length === 0) {
        return null;
    }
    const tests = [];
    for (const term of terms) {
        const eq = term.indexOf('=');
        if (eq > 0) {
            const key = term.slice(0, eq).toLowerCase();
            const value = term.slice(eq + 1);
            if (!FIELDS[key]) {
                return {error: `unknown field "${key}" ` +
                               '(name, ns, version, app, workload, service, type)'};
            }
            tests.push((d) => FIELDS[key](d).some((v) => v !== undefined && String(v) === value));
        } else {
            const needle = term.toLowerCase();
            tests.push((d) => FIELDS.name(d).some((v) => v !== undefined &&
                                                         String(v).toLowerCase().includes(needle)));
        }
    }
    return {match: (d) => tests.every((t) => t(d))};
}
