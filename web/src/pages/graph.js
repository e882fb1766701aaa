/*
 * pages/graph.js - the graph page (being built: issue #8).
 */
import {empty} from '../ui.js';

export function mount(el) {
    el.append(empty('The graph page is not built yet.'));
    return {};
}
