/*
 * pages/traces.js - the traces page (being built: issue #8).
 */
import {empty} from '../ui.js';

export function mount(el) {
    el.append(empty('The traces page is not built yet.'));
    return {};
}
