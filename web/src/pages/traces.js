/*
 * pages/traces.js - the Traces page: #/traces is the search (search-view.js), #/traces/<id>
 * one trace (trace-view.js). Moving between the two mounts the other view afresh.
 */
import {mountSearch} from '../traces/search-view.js';
import {mountTrace} from '../traces/trace-view.js';

export function mount(el, route) {
    return route.path.length > 1 ? mountTrace(el, route) : mountSearch(el, route);
}
