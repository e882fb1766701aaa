/*
 * traces/critical-path.js - the critical path of a trace as Jaeger defines it: starting at the
 * root, the time a span spends after its last-finishing child ended belongs to that span; then
 * the path goes into that child; when a span has no (earlier-finishing) child left, the path
 * goes back to its parent at the moment the span started, and the parent's last child that
 * finished before that moment is next. Children are first clipped to their parent's window
 * (a child sticking out of its parent cannot make the parent wait) and children lying wholly
 * outside it are dropped with their subtrees.
 *
 * Pure functions over Jaeger's span JSON (spanID, startTime, duration in µs, references), no
 * imports, so the browser test can check them on their own.
 */

/* Spans -> Map id -> {id, start, end, parent, children} with children clipped to their
 * parent's window; returns {nodes, root} where root is the earliest-starting span without a
 * parent in the trace (the longest on a tie), or null for no spans. */
function clippedTree(spans) {
    const nodes = new Map();
    for (const s of spans) {
        nodes.set(s.spanID, {id: s.spanID, start: s.startTime, end: s.startTime + s.duration,
                             parent: null, children: [], refs: s.references || []});
    }
    let root = null;
    for (const n of nodes.values()) {
        const ref = n.refs.find((r) => r.refType === 'CHILD_OF' && nodes.has(r.spanID) && r.spanID !== n.id);
        if (ref) {
            n.parent = nodes.get(ref.spanID);
            n.parent.children.push(n);
        } else if (!root || n.start < root.start ||
                   (n.start === root.start && n.end - n.start > root.end - root.start)) {
            root = n;
        }
    }
    if (!root) {
        return {nodes, root: null};
    }
    /* Top-down, so that a clipped parent's window clips its children in turn. */
    const todo = [root];
    const seen = new Set([root]);
    while (todo.length > 0) {
        const p = todo.pop();
        p.children = p.children.filter((c) => !seen.has(c) && c.start <= p.end && c.end >= p.start);
        for (const c of p.children) {
            c.start = Math.max(c.start, p.start);
            c.end = Math.min(c.end, p.end);
            seen.add(c);
            todo.push(c);
        }
    }
    return {nodes, root};
}

/* The last-finishing child of n that ended strictly before `before` (any child when before is
 * undefined); ties go to the later-starting child. */
function lastFinishingChild(n, before) {
    let best = null;
    for (const c of n.children) {
        if (before !== undefined && !(c.end < before)) {
            continue;
        }
        if (!best || c.end > best.end || (c.end === best.end && c.start > best.start)) {
            best = c;
        }
    }
    return best;
}

/* Jaeger spans -> [{spanId, start, end}]: the critical path's sections (µs, absolute), in the
 * order the walk finds them (from the end of the trace backwards). */
export function criticalPath(spans) {
    const {root} = clippedTree(spans);
    const sections = [];
    let cur = root;
    let returning; /* the start of the child the walk came back from */
    while (cur) {
        const end = returning === undefined ? cur.end : returning;
        const lfc = lastFinishingChild(cur, returning);
        if (lfc) {
            if (lfc.end !== end) {
                sections.push({spanId: cur.id, start: lfc.end, end});
            }
            cur = lfc;
            returning = undefined;
        } else {
            if (cur.start !== end) {
                sections.push({spanId: cur.id, start: cur.start, end});
            }
            if (cur === root) {
                break;
            }
            returning = cur.start;
            cur = cur.parent;
        }
    }
    return sections;
}

/* The ids of the spans with at least one section on the critical path. */
export function criticalSpanIds(spans) {
    return new Set(criticalPath(spans).map((s) => s.spanId));
}
