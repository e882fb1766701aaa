/*
 * pages/login.js - the login page: a user name and password form posted to /api/login. On
 * success the shell is told (loggedIn) and the user goes on to the page they came for (the
 * `next` route parameter, a hash route) or the graph. Errors (a wrong password, too many
 * attempts) are shown inline under the form; the form is disabled while the request is out.
 */
import {apiPost} from '../api.js';
import {loggedIn, navigate, session} from '../app.js';
import {h} from '../ui.js';

/* Only a route of this UI may be the next page: never an outside URL, never the login page. */
function nextRoute(route) {
    const next = route.params.get('next') || '';
    return /^#\/(?!login)/.test(next) ? next : null;
}

export function mount(el, route) {
    if (session.strategy === 'anonymous') {
        el.append(h('div', {class: 'login-page'},
            h('div', {class: 'panel login-card'},
                h('h1', null, 'No login needed'),
                h('p', {class: 'muted'}, 'This collector runs without a users file.'),
                h('a', {href: '#/graph'}, 'Go to the graph'))));
        return {};
    }
    let target = nextRoute(route);
    let pending = false;
    const user = h('input', {
        id: 'login-user', name: 'username', type: 'text', autocomplete: 'username', required: true,
        autocapitalize: 'none', spellcheck: 'false', 'data-testid': 'login-user',
    });
    const password = h('input', {
        id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password',
        required: true, 'data-testid': 'login-password',
    });
    const error = h('p', {class: 'login-error', role: 'alert', 'data-testid': 'login-error'});
    const submit = h('button', {type: 'submit', class: 'primary', 'data-testid': 'login-submit'}, 'Log in');

    function setPending(on) {
        pending = on;
        for (const c of [user, password, submit]) {
            c.disabled = on;
        }
        submit.textContent = on ? 'Logging in…' : 'Log in';
        form.setAttribute('aria-busy', on ? 'true' : 'false');
    }

    async function onSubmit(ev) {
        ev.preventDefault();
        if (pending) {
            return;
        }
        error.textContent = '';
        setPending(true);
        let info;
        try {
            info = await apiPost('/api/login', {username: user.value, password: password.value});
        } catch (e) {
            setPending(false);
            const msg = e.message || String(e);
            error.textContent = msg.charAt(0).toUpperCase() + msg.slice(1);
            password.value = '';
            password.focus();
            return;
        }
        setPending(false);
        loggedIn(info);
        if (target) {
            location.hash = target;
        } else {
            navigate('graph');
        }
    }

    const form = h('form', {class: 'login-form', novalidate: false, onsubmit: onSubmit},
        h('label', {for: 'login-user'}, 'User name'), user,
        h('label', {for: 'login-password'}, 'Password'), password,
        submit, error);
    el.append(h('div', {class: 'login-page'},
        h('div', {class: 'panel login-card'},
            h('h1', null, 'Log in to weft'),
            session.user ? h('p', {class: 'muted'}, `You are logged in as ${session.user}.`) : null,
            form)));
    user.focus();
    return {
        update(r) {
            target = nextRoute(r);
            return true;
        },
        unmount() {},
    };
}
