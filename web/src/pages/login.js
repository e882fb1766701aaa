/*
 * pages/login.js - the login page (being built: issue #8).
 */
import {empty} from '../ui.js';

export function mount(el) {
    el.append(empty('The login page is not built yet.'));
    return {};
}
