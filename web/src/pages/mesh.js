/*
 * pages/mesh.js - the mesh page (being built: issue #8).
 */
import {empty} from '../ui.js';

export function mount(el) {
    el.append(empty('The mesh page is not built yet.'));
    return {};
}
