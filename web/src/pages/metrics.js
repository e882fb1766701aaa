/*
 * pages/metrics.js - the metrics page (being built: issue #8).
 */
import {empty} from '../ui.js';

export function mount(el) {
    el.append(empty('The metrics page is not built yet.'));
    return {};
}
