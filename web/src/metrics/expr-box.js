/*
 * metrics/expr-box.js - the expression box: a textarea where Enter runs the query and
 * Shift+Enter starts a new line, with one drop-down list (a listbox) that offers either
 * completions at the cursor (completion.js) or the history of expressions run. The list is
 * driven from the keyboard without leaving the box: Up/Down move, Tab or Enter take the item,
 * Escape closes; Ctrl+Space asks for completions, Alt+Down (or Down in an empty box) for the
 * history.
 */
import {h, replace} from '../ui.js';

import {completionContext} from './completion.js';

let boxCount = 0;

/* opts: {value, onRun(expr), sources (completion.js), history() -> [string]}.
 * Returns {el, input, value(), setValue(v), showHistory(), close()}. */
export function exprBox(opts) {
    const id = `expr-list-${++boxCount}`;
    const input = h('textarea', {
        class: 'expr-input mono', rows: 1, spellcheck: 'false', autocomplete: 'off', 'data-testid': 'expr',
        placeholder: 'Expression (Enter runs, Shift+Enter for a new line)', 'aria-label': 'PromQL expression',
        role: 'combobox', 'aria-autocomplete': 'list', 'aria-expanded': 'false', 'aria-controls': id,
    });
    input.value = opts.value || '';
    const list = h('ul', {class: 'expr-list', id, role: 'listbox', hidden: true, 'data-testid': 'expr-list'});
    const el = h('div', {class: 'expr-box'}, input, list);

    let items = [];     /* [{text, kind}] */
    let active = -1;
    let mode = null;    /* 'complete' | 'history' | null */
    let ctx = null;     /* the completion context the list was made for */
    let seq = 0;        /* completion requests: only the latest is shown */

    function autosize() {
        input.style.height = 'auto';
        input.style.height = `${Math.min(input.scrollHeight + 2, 240)}px`;
    }

    function close() {
        mode = null;
        items = [];
        active = -1;
        list.hidden = true;
        input.setAttribute('aria-expanded', 'false');
        input.removeAttribute('aria-activedescendant');
    }

    function render() {
        if (items.length === 0) {
            close();
            return;
        }
        replace(list, items.map((it, i) => h('li', {
            id: `${id}-${i}`, role: 'option', class: 'expr-option' + (i === active ? ' active' : ''),
            'aria-selected': i === active ? 'true' : 'false', dataset: {kind: it.kind},
            onmousedown: (ev) => {
                ev.preventDefault();
                take(i);
            },
        }, h('span', {class: 'expr-option-text mono'}, it.text), h('span', {class: 'expr-option-kind'}, it.kind))));
        list.hidden = false;
        input.setAttribute('aria-expanded', 'true');
        if (active >= 0) {
            input.setAttribute('aria-activedescendant', `${id}-${active}`);
            list.children[active].scrollIntoView({block: 'nearest'});
        } else {
            input.removeAttribute('aria-activedescendant');
        }
    }

    function move(d) {
        active = (active + d + items.length) % items.length;
        render();
    }

    function take(i) {
        const it = items[i];
        if (!it) {
            return;
        }
        if (mode === 'history') {
            input.value = it.text;
            input.setSelectionRange(it.text.length, it.text.length);
        } else {
            const pos = input.selectionStart;
            let text = it.text;
            if (ctx.kind === 'value') {
                text = text.replace(/[\\"]/g, '\\$&');
                if (input.value[pos] !== '"') {
                    text += '"';
                }
            }
            input.setRangeText(text, ctx.from, pos, 'end');
        }
        close();
        autosize();
        input.focus();
    }

    async function complete(force) {
        const c = completionContext(input.value, input.selectionStart);
        if (!c || (!force && c.kind === 'metric' && c.prefix.length < 2) || !opts.sources) {
            close();
            return;
        }
        const mine = ++seq;
        let found;
        try {
            found = await opts.sources.items(c);
        } catch (e) {
            /* No completion is better than an error in the way of typing. */
            found = [];
        }
        if (mine !== seq || document.activeElement !== input) {
            return;
        }
        ctx = c;
        mode = 'complete';
        items = found;
        active = items.length ? 0 : -1;
        render();
    }

    function showHistory() {
        seq++;
        mode = 'history';
        items = opts.history().map((text) => ({text, kind: 'history'}));
        active = items.length ? 0 : -1;
        input.focus();
        render();
    }

    input.addEventListener('input', () => {
        autosize();
        complete(false);
    });
    input.addEventListener('blur', () => close());
    input.addEventListener('keydown', (ev) => {
        if (mode && items.length) {
            if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
                move(ev.key === 'ArrowDown' ? 1 : -1);
                ev.preventDefault();
                return;
            }
            if ((ev.key === 'Tab' || ev.key === 'Enter') && !ev.shiftKey && active >= 0) {
                take(active);
                ev.preventDefault();
                return;
            }
            if (ev.key === 'Escape') {
                close();
                ev.preventDefault();
                return;
            }
        }
        if (ev.key === ' ' && ev.ctrlKey) {
            complete(true);
            ev.preventDefault();
        } else if (ev.key === 'ArrowDown' && (ev.altKey || input.value === '')) {
            showHistory();
            ev.preventDefault();
        } else if (ev.key === 'Enter' && !ev.shiftKey) {
            ev.preventDefault();
            close();
            opts.onRun(input.value);
        }
    });
    requestAnimationFrame(autosize);

    return {
        el,
        input,
        value: () => input.value,
        setValue(v) {
            input.value = v;
            autosize();
        },
        showHistory,
        close,
    };
}
