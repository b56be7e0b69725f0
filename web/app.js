// Clarity web app (issue 20). Plain modern JavaScript, no framework, no
// build step: this file is embedded into the binary (cmake/embed.cmake) and
// served at /app/app.js under a CSP without inline script or style.
//
// Tokens: the access token lives in this module's memory only; the refresh
// token is an HttpOnly cookie the server sets (src/api/session.c) and that
// script never sees. The only thing kept in localStorage is the flag
// "clarity.session" = "1" (not a secret), so that a reload knows whether a
// silent refresh is worth trying.
'use strict';

const API = '/api/v1';
const state = { token: null, expires: 0, user: null, anchor: null, ws: null, wsRetry: 0, live: [], chat: [] };
const nf = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
const nf0 = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const nf2 = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
const dfDay = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });
const dfDate = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: 'numeric' });
const dfTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const DAY = 86400000;
const SVGNS = 'http://www.w3.org/2000/svg';

// ---- DOM helpers ---------------------------------------------------------

function h(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    setAttrs(e, attrs);
    append(e, kids);
    return e;
}
function s(tag, attrs, ...kids) {
    const e = document.createElementNS(SVGNS, tag);
    setAttrs(e, attrs);
    append(e, kids);
    return e;
}
function setAttrs(e, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
        if (v === undefined || v === null || v === false) continue;
        if (k === 'text') e.textContent = v;
        else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
        else e.setAttribute(k, v === true ? '' : String(v));
    }
}
function append(e, kids) {
    for (const k of kids.flat(Infinity)) {
        if (k === null || k === undefined || k === false) continue;
        e.append(k instanceof Node ? k : String(k));
    }
}
const fmt = (v, f = nf) => (v === null || v === undefined || Number.isNaN(v) ? '—' : f.format(v));
const when = (t) => (t ? dfTime.format(new Date(typeof t === 'number' && t < 1e11 ? t * 1000 : t)) : '—');
const clock = (min) => {
    if (min === null || min === undefined || Number.isNaN(min)) return '—';
    const d = new Date(2000, 0, 1, 0, Math.round(min));
    return d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
};
const val = (m) => (m && typeof m === 'object' && 'value' in m ? m.value : m);

// ---- API -----------------------------------------------------------------

class ApiError extends Error {
    constructor(status, detail) {
        super(detail);
        this.status = status;
    }
}

async function refresh() {
    const r = await fetch(API + '/auth/refresh', {
        method: 'POST', credentials: 'same-origin', body: '{}',
        headers: { 'Content-Type': 'application/json', 'X-Clarity-Client': 'web', 'X-Clarity-CSRF': '1' },
    });
    if (!r.ok) {
        signedOutLocally();
        return false;
    }
    const t = await r.json();
    state.token = t.access_token;
    state.expires = Date.now() + (t.expires_in || 3600) * 1000;
    return true;
}

async function api(path, opts = {}) {
    if (state.token && Date.now() > state.expires - 30000) await refresh();
    const headers = Object.assign({ Accept: 'application/json' }, opts.headers || {});
    if (state.token) headers.Authorization = 'Bearer ' + state.token;
    if (opts.json !== undefined) {
        headers['Content-Type'] = 'application/json';
        opts.body = JSON.stringify(opts.json);
    }
    let r = await fetch(path.startsWith('/api/') ? path : API + path, { method: opts.method || 'GET', headers, body: opts.body, credentials: 'same-origin' });
    if (r.status === 401 && state.token && !opts.retried && (await refresh())) return api(path, Object.assign({}, opts, { retried: true }));
    if (opts.raw) return r;
    const type = r.headers.get('Content-Type') || '';
    const body = type.includes('json') ? await r.json() : await r.text();
    if (!r.ok) {
        const detail = (body && (body.detail || body.title)) || r.statusText;
        const errs = body && body.errors ? ' ' + body.errors.map((e) => e.detail || e.message || '').join(' ') : '';
        throw new ApiError(r.status, detail + errs);
    }
    return body;
}

// The insight history answers {success, data:[…]} today and, after the iOS
// app's shape lands, {success, data:{insights:[…], total_count, has_more}}.
function insightList(body) {
    const d = body && body.data !== undefined ? body.data : body;
    if (Array.isArray(d)) return d;
    if (d && Array.isArray(d.insights)) return d.insights;
    return [];
}
function insightTime(i) {
    const t = i.generated_at ?? i.created_at ?? i.timestamp;
    return typeof t === 'number' ? (t < 1e11 ? t * 1000 : t) : Date.parse(t);
}

// ---- session -------------------------------------------------------------

function signedOutLocally() {
    state.token = null;
    state.user = null;
    try { localStorage.removeItem('clarity.session'); } catch (e) { /* storage off */ }
    if (state.ws) state.ws.close();
    state.ws = null;
}

async function signIn(email, password) {
    const r = await fetch(API + '/auth/login', {
        method: 'POST', credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'X-Clarity-Client': 'web' },
        body: JSON.stringify({ email, password }),
    });
    const body = await r.json();
    if (!r.ok) throw new ApiError(r.status, body.detail || 'Sign-in failed.');
    state.token = body.tokens.access_token;
    state.expires = Date.now() + (body.tokens.expires_in || 3600) * 1000;
    try { localStorage.setItem('clarity.session', '1'); } catch (e) { /* storage off */ }
    await loadUser();
}

async function loadUser() {
    state.user = await api('/auth/me');
    state.anchor = null;
    connectLive();
}

async function signOut() {
    await fetch(API + '/auth/logout', {
        method: 'POST', credentials: 'same-origin', body: '{}',
        headers: { 'Content-Type': 'application/json', 'X-Clarity-Client': 'web', 'X-Clarity-CSRF': '1' },
    }).catch(() => null);
    signedOutLocally();
    location.hash = '#/signin';
    route();
}

// OIDC sign-in (src/api/oidc_flow.c): the server runs the provider's
// authorization-code flow with PKCE and ends it with the same refresh cookie
// as password sign-in, then sends the browser to #/signed-in; the page then
// gets its access token through the cookie refresh. No provider token ever
// reaches this script. A refusal comes back as #/signin?error=<code>.
const OIDC_ERRORS = {
    access_denied: 'Sign-in was cancelled at the provider.',
    login_required: 'The provider needs you to sign in there first.',
    consent_required: 'The provider needs your consent to sign you in.',
    interaction_required: 'The provider needs you to finish signing in there.',
    temporarily_unavailable: 'The provider is busy. Please try again in a moment.',
    provider_error: 'The provider could not sign you in.',
    invalid_state: 'That sign-in expired or was already used, or was started in another browser. Please try again.',
    invalid_request: 'The provider sent an incomplete answer. Please try again.',
    token_rejected: 'The provider did not accept the sign-in. Please try again.',
    invalid_token: 'The provider’s answer could not be verified, so you were not signed in.',
    provider_unavailable: 'The provider cannot be reached right now. Please try again later.',
    account_disabled: 'This account is disabled.',
    busy: 'Too many sign-ins are in progress. Please try again in a moment.',
    cross_site: 'Sign-in must be started from this page. Please use the button below.',
    server_error: 'Clarity could not finish the sign-in. Please try again later.',
};
const oidc = {
    providers: async () => {
        try {
            const r = await fetch(API + '/auth/providers', { headers: { Accept: 'application/json' }, credentials: 'same-origin' });
            return r.ok ? (await r.json()).providers || [] : [];
        } catch (e) { return []; }
    },
    // The error code of a refused sign-in in the hash, as a sentence.
    error: () => {
        const m = /[?&]error=([a-z_]{1,40})/.exec(location.hash);
        return m ? (OIDC_ERRORS[m[1]] || 'Sign-in failed (' + m[1] + ').') : null;
    },
};

// ---- live insights and chat over the WebSocket ---------------------------

function connectLive() {
    if (!state.user || !state.token || state.ws) return;
    const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + API + '/chat/' +
        encodeURIComponent(state.user.user_id) + '?token=' + encodeURIComponent(state.token);
    const ws = new WebSocket(url);
    state.ws = ws;
    ws.addEventListener('message', (ev) => {
        let m;
        try { m = JSON.parse(ev.data); } catch (e) { return; }
        if (m.type === 'connection_ack') state.wsRetry = 0;
        if (m.type === 'insight' && m.source === 'pipeline') {
            state.live.unshift(m);
            announce('A new insight arrived.');
            if (currentView === 'insights' || currentView === 'overview') route();
        } else if (m.type === 'message' && m.role === 'assistant') {
            state.chat.push({ role: 'assistant', text: m.content, at: m.timestamp });
            renderChat();
        } else if (m.type === 'error') {
            state.chat.push({ role: 'system', text: m.message || m.code });
            renderChat();
        }
    });
    ws.addEventListener('close', () => {
        if (state.ws === ws) state.ws = null;
        if (state.user && state.wsRetry < 5) setTimeout(connectLive, 1000 * ++state.wsRetry);
    });
}

function announce(text) {
    const live = document.getElementById('live');
    if (live) live.textContent = text;
}

// ---- shell ----------------------------------------------------------------

const VIEWS = [
    ['overview', 'Overview'], ['sleep', 'Sleep'], ['rhythm', 'Rhythm'], ['heart', 'Heart & activity'],
    ['insights', 'Insights'], ['import', 'Import'], ['data', 'Your data'],
];
let currentView = null;

function shell(view, content) {
    const nav = h('nav', { 'aria-label': 'Views' }, h('ul', {}, VIEWS.map(([id, label]) =>
        h('li', {}, h('a', { href: '#/' + id, 'aria-current': id === view ? 'page' : null }, label)))));
    const header = h('header', { class: 'top' },
        h('a', { class: 'brand', href: '#/overview' }, h('img', { src: 'app/icon.svg', alt: '', width: 24, height: 24 }), 'Clarity'),
        nav,
        h('div', { class: 'who' }, h('span', { class: 'email' }, state.user ? state.user.email : ''),
            h('button', { type: 'button', class: 'link', onclick: signOut }, 'Sign out')));
    const main = h('main', { id: 'main', tabindex: '-1' }, content);
    const root = document.getElementById('app');
    root.replaceChildren(header, main, h('div', { id: 'live', class: 'sr-only', role: 'status', 'aria-live': 'polite' }));
    return main;
}

function fill(el, ...kids) {
    el.replaceChildren();
    append(el, kids);
}
function section(title, ...kids) {
    return h('section', { class: 'card' }, h('h2', { text: title }), kids);
}
function loading(text) {
    return h('p', { class: 'status', role: 'status' }, text || 'Loading…');
}
function errorBox(e) {
    return h('div', { class: 'error', role: 'alert' }, h('strong', {}, 'Something went wrong. '), e.message || String(e));
}
function empty(text, link) {
    return h('div', { class: 'empty' }, h('p', {}, text), link ? h('p', {}, h('a', { href: link[0] }, link[1])) : null);
}

async function route() {
    const view = (location.hash.replace(/^#\//, '') || 'overview').split('?')[0];
    if (!state.user) {
        currentView = view === 'register' ? 'register' : 'signin';
        return view === 'register' ? renderRegister() : renderSignIn();
    }
    if (view === 'signin' || view === 'register') {
        location.hash = '#/overview';
        return;
    }
    const def = VIEWS.find(([id]) => id === view) ? view : 'overview';
    currentView = def;
    const title = VIEWS.find(([id]) => id === def)[1];
    document.title = title + ' — Clarity';
    const main = shell(def, h('h1', { text: title }));
    const body = h('div', { class: 'view' }, loading());
    main.append(body);
    main.focus({ preventScroll: true });
    try {
        await RENDER[def](body);
    } catch (e) {
        body.replaceChildren(errorBox(e));
    }
    document.body.dataset.view = def;
    document.body.dataset.ready = String(Date.now());
}

// ---- sign-in and registration ---------------------------------------------

function field(id, label, attrs) {
    return h('div', { class: 'field' }, h('label', { for: id }, label), h('input', Object.assign({ id, name: id }, attrs)));
}

async function renderSignIn() {
    document.title = 'Sign in — Clarity';
    const message = state.flash;
    state.flash = null;
    const err = h('div', { role: 'alert', class: 'form-error', id: 'signin-error' }, oidc.error() || '');
    const form = h('form', { class: 'auth', novalidate: true },
        field('email', 'Email', { type: 'email', autocomplete: 'username', required: true }),
        field('password', 'Password', { type: 'password', autocomplete: 'current-password', required: true }),
        err, h('button', { type: 'submit' }, 'Sign in'));
    const providers = await oidc.providers();
    form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        err.textContent = '';
        try {
            await signIn(form.email.value.trim(), form.password.value);
            location.hash = '#/overview';
            route();
        } catch (e) {
            err.textContent = e.message;
        }
    });
    const root = document.getElementById('app');
    root.replaceChildren(h('main', { id: 'main', class: 'narrow', tabindex: '-1' },
        h('h1', {}, h('img', { src: 'app/icon.svg', alt: '', width: 32, height: 32 }), ' Clarity'),
        h('p', { class: 'lead' }, 'Your sleep, your rhythm and your insights, from your own server.'),
        message ? h('p', { class: 'notice', role: 'status' }, message) : null,
        h('h2', {}, 'Sign in'), form,
        providers.length ? h('ul', { class: 'providers', 'aria-label': 'Other ways to sign in' },
            providers.map((p) => h('li', {}, h('a', { class: 'button secondary', href: p.start_url, 'data-provider': p.id }, 'Sign in with ' + p.name)))) : null,
        h('p', {}, 'New here? ', h('a', { href: '#/register' }, 'Create an account'), '.')));
    document.body.dataset.view = 'signin';
    document.body.dataset.ready = String(Date.now());
}

function renderRegister() {
    document.title = 'Create an account — Clarity';
    const err = h('div', { role: 'alert', class: 'form-error' });
    const form = h('form', { class: 'auth', novalidate: true },
        field('first_name', 'First name', { type: 'text', autocomplete: 'given-name', required: true }),
        field('last_name', 'Last name', { type: 'text', autocomplete: 'family-name', required: true }),
        field('email', 'Email', { type: 'email', autocomplete: 'username', required: true }),
        field('password', 'Password', { type: 'password', autocomplete: 'new-password', required: true, 'aria-describedby': 'pw-help' }),
        h('p', { id: 'pw-help', class: 'help' }, 'At least 12 characters, with upper and lower case letters, a digit and a symbol.'),
        h('div', { class: 'field check' }, h('input', { type: 'checkbox', id: 'terms', name: 'terms', required: true }),
            h('label', { for: 'terms' }, 'I accept the terms and the privacy policy of this server.')),
        err, h('button', { type: 'submit' }, 'Create account'));
    form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        err.textContent = '';
        const email = form.email.value.trim(), password = form.password.value;
        try {
            await api('/auth/register', {
                method: 'POST', json: {
                    email, password, first_name: form.first_name.value.trim(), last_name: form.last_name.value.trim(),
                    terms_accepted: form.terms.checked, privacy_policy_accepted: form.terms.checked,
                },
            });
            await signIn(email, password);
            location.hash = '#/import';
            route();
        } catch (e) {
            err.textContent = e.message;
        }
    });
    document.getElementById('app').replaceChildren(h('main', { id: 'main', class: 'narrow', tabindex: '-1' },
        h('h1', {}, 'Create a Clarity account'), form,
        h('p', {}, 'Already have one? ', h('a', { href: '#/signin' }, 'Sign in'), '.')));
    document.body.dataset.view = 'register';
    document.body.dataset.ready = String(Date.now());
}

// ---- charts (SVG drawn here; no library) ----------------------------------

// A time chart: bars and/or lines over time with an optional band, sized to
// its container, with the figures as a table beneath (the text alternative).
function timeChart(opts) {
    const t0 = performance.now();
    const fig = h('figure', { class: 'chart' });
    const W = Math.max(300, Math.min(1100, opts.width || 700)), H = opts.height || 200;
    const m = { l: 44, r: 10, t: 10, b: 24 };
    const xs = opts.xs;
    const x0 = opts.x0 ?? xs[0], x1 = opts.x1 ?? xs[xs.length - 1] + (opts.step || 0);
    let lo = Infinity, hi = -Infinity;
    for (const ser of opts.series) for (const v of ser.ys) if (v !== null && !Number.isNaN(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    if (opts.band) for (let i = 0; i < opts.band.lo.length; i++) {
        if (opts.band.lo[i] !== null) lo = Math.min(lo, opts.band.lo[i]);
        if (opts.band.hi[i] !== null) hi = Math.max(hi, opts.band.hi[i]);
    }
    if (opts.zero || opts.series.some((z) => z.kind === 'bar')) lo = Math.min(lo, 0);
    if (!Number.isFinite(lo)) { lo = 0; hi = 1; }
    if (hi === lo) hi = lo + 1;
    const pad = (hi - lo) * 0.05;
    if (lo !== 0) lo -= pad;
    hi += pad;
    const X = (t) => m.l + ((t - x0) / (x1 - x0 || 1)) * (W - m.l - m.r);
    const Y = (v) => H - m.b - ((v - lo) / (hi - lo)) * (H - m.t - m.b);
    const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-labelledby': opts.id + '-cap', class: 'plot' });
    const grid = s('g', { class: 'axis' });
    for (let k = 0; k <= 3; k++) {
        const v = lo + ((hi - lo) * k) / 3, y = Y(v);
        grid.append(s('line', { x1: m.l, x2: W - m.r, y1: y, y2: y }), s('text', { x: m.l - 4, y: y + 4, 'text-anchor': 'end' }, fmt(v, nf0)));
    }
    const ticks = Math.max(2, Math.floor((W - m.l) / 90));
    for (let k = 0; k < ticks; k++) {
        const t = x0 + ((x1 - x0) * (k + 0.5)) / ticks;
        grid.append(s('text', { x: X(t), y: H - 6, 'text-anchor': 'middle' }, dfDay.format(new Date(t))));
    }
    svg.append(grid);
    if (opts.band) {
        let d = '', back = '';
        opts.band.xs.forEach((t, i) => {
            if (opts.band.lo[i] === null) return;
            d += (d ? 'L' : 'M') + X(t).toFixed(1) + ' ' + Y(opts.band.hi[i]).toFixed(1);
            back = 'L' + X(t).toFixed(1) + ' ' + Y(opts.band.lo[i]).toFixed(1) + back;
        });
        if (d) svg.append(s('path', { d: d + back + 'Z', class: 'band' }));
    }
    for (const ser of opts.series) {
        let d = '';
        if (ser.kind === 'bar') {
            const bw = Math.max(1, ((W - m.l - m.r) * (opts.step || DAY)) / (x1 - x0) - 1);
            ser.ys.forEach((v, i) => {
                if (v === null || v <= 0) return;
                const y = Y(v);
                d += `M${X(xs[i]).toFixed(1)} ${Y(0).toFixed(1)}V${y.toFixed(1)}h${bw.toFixed(1)}V${Y(0).toFixed(1)}Z`;
            });
            svg.append(s('path', { d, class: 'bar ' + (ser.cls || '') }));
        } else {
            let pen = false;
            ser.ys.forEach((v, i) => {
                if (v === null || Number.isNaN(v)) { pen = false; return; }
                d += (pen ? 'L' : 'M') + X(xs[i]).toFixed(1) + ' ' + Y(v).toFixed(1);
                pen = true;
            });
            svg.append(s('path', { d, class: 'line ' + (ser.cls || '') }));
        }
    }
    fig.append(svg, h('figcaption', { id: opts.id + '-cap' }, opts.caption));
    fig.append(tableOf(opts.tableHead, opts.tableRows));
    fig.dataset.renderMs = (performance.now() - t0).toFixed(1);
    fig.dataset.points = String(xs.length);
    return fig;
}

function tableOf(head, rows) {
    return h('details', { class: 'table' }, h('summary', {}, 'Show the figures as a table'),
        h('div', { class: 'scroll', tabindex: '0', role: 'region', 'aria-label': 'Figures' }, h('table', {},
            h('thead', {}, h('tr', {}, head.map((c) => h('th', { scope: 'col' }, c)))),
            h('tbody', {}, rows.map((r) => h('tr', {}, r.map((c, i) => (i === 0 ? h('th', { scope: 'row' }, c) : h('td', {}, c)))))))));
}

function widthOf(el) {
    return Math.max(300, (el.clientWidth || document.getElementById('main').clientWidth || 700) - 24);
}

// ---- data windows ----------------------------------------------------------

function localMidnight(t) {
    const d = new Date(t);
    d.setHours(0, 0, 0, 0);
    return d.getTime();
}
const iso = (t) => new Date(t).toISOString();

async function series(type, from, to, points) {
    const q = new URLSearchParams({ type, from: iso(from), to: iso(to), points: String(points) });
    const r = await api('/series?' + q);
    const p = r.points;
    return { bucket: r.bucket_seconds * 1000, t: p.t, n: p.n, sum: p.sum, mean: p.mean, min: p.min, max: p.max, samples: r.samples };
}

// The end of the user's data: the last day with steps or heart rate in the
// past two years, so that an export of past years shows those years.
async function anchor() {
    if (state.anchor) return state.anchor;
    const to = localMidnight(Date.now()) + DAY, from = to - 730 * DAY;
    let last = 0;
    for (const type of ['steps', 'heart_rate', 'sleep_stage', 'activity_count']) {
        const r = await series(type, from, to, 730);
        if (r.t.length) last = Math.max(last, r.t[r.t.length - 1]);
    }
    state.anchor = last ? localMidnight(last) + DAY : to;
    return state.anchor;
}

// ---- Overview ----------------------------------------------------------------

// The figures an insight cites: the objects under insight_details (the
// history and a generation reply, whose key_insights are the iOS app's
// strings) or key_insights itself (the WebSocket push). A bare string is a
// statement without a figure.
function figuresOf(i) {
    const d = i.insight_details && Array.isArray(i.insight_details.key_insights) ? i.insight_details.key_insights : i.key_insights;
    return (d || []).map((k) => (typeof k === 'string' ? { text: k } : k)).filter((k) => k && typeof k === 'object');
}
function recsOf(i) {
    const d = i.insight_details && Array.isArray(i.insight_details.recommendations) ? i.insight_details.recommendations : i.recommendations;
    return (d || []).map((r) => (typeof r === 'string' ? r : r && r.text)).filter(Boolean);
}
// A figure's short name: the server's label; for an unknown metric, its
// last path part in words ("hrv_mean_ms" -> "Hrv mean"); never the sentence.
function figureLabel(k) {
    if (k.label) return k.label;
    if (k.metric) {
        const w = String(k.metric).split('.').pop().replace(/_(min|pct|ms|bpm)$/, '').replace(/_/g, ' ');
        return w.charAt(0).toUpperCase() + w.slice(1);
    }
    return 'Statement';
}
const nfSigned = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0, signDisplay: 'exceptZero' });
const nfRatio = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const nfPct = new Intl.NumberFormat(undefined, { style: 'percent', maximumFractionDigits: 0 });
const nfMin = new Intl.NumberFormat(undefined, { style: 'unit', unit: 'minute', unitDisplay: 'short', maximumFractionDigits: 0 });
const nfMinSigned = new Intl.NumberFormat(undefined, { style: 'unit', unit: 'minute', unitDisplay: 'short', maximumFractionDigits: 0, signDisplay: 'exceptZero' });
const hmText = (min) => {
    const m = Math.round(Math.abs(min));
    return nf0.format(Math.floor(m / 60)) + ' h ' + String(m % 60).padStart(2, '0') + ' min';
};
// A figure's value in its unit, with the precision the unit deserves, in
// the browser's locale: minutes as minutes (the unit of the reference
// range) with hours and minutes beside them, percentages, a 0-1 ratio to
// two places, counts grouped. A change against the baseline carries a sign.
function figureValue(k) {
    const v = val(k.value);
    if (typeof v !== 'number' || !Number.isFinite(v)) return k.value === undefined || k.value === null ? '—' : String(k.value);
    const change = k.category === 'trend' || /change/.test(k.metric || '');
    switch (k.unit) {
    case 'min': {
        const m = (change ? nfMinSigned : nfMin).format(Math.round(v));
        if (Math.abs(v) < 60) return m;
        // Two unbreakable parts, so that a phone wraps between them.
        return [h('span', { class: 'nw' }, m), ' ', h('span', { class: 'nw' }, '(' + (change && v < 0 ? '−' : change ? '+' : '') + hmText(v) + ')')];
    }
    case '%': return nfPct.format(v / 100);
    case 'ratio': return nfRatio.format(v);
    case 'index': return nf0.format(v) + ' of 100';
    case 'steps/day': return (change ? nfSigned : nf0).format(v) + ' steps/day';
    case 'bpm': return nf0.format(v) + ' bpm';
    case 'ms': return nf0.format(v) + ' ms';
    default: return fmt(v, nf2) + (k.unit ? ' ' + k.unit : '');
    }
}

function insightCard(i, heading) {
    const kis = figuresOf(i).filter((k) => k.value !== undefined || k.metric);
    const recs = recsOf(i);
    return h('article', { class: 'insight' },
        h(heading || 'h3', {}, (i.insight_type ? i.insight_type[0].toUpperCase() + i.insight_type.slice(1) : 'Insight') + ' · ' + when(insightTime(i))),
        h('p', { class: 'narrative' }, i.narrative || ''),
        kis.length ? h('div', { class: 'scroll whole', tabindex: '0', role: 'region', 'aria-label': 'Figures cited' }, h('table', { class: 'figures' },
            h('caption', {}, 'The figures it cites'),
            h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Figure'), h('th', { scope: 'col', class: 'num' }, 'Value'), h('th', { scope: 'col' }, 'Reference range'))),
            h('tbody', {}, kis.map((k) => h('tr', {}, h('th', { scope: 'row', title: k.text || undefined }, figureLabel(k)),
                h('td', { class: 'num' }, figureValue(k)),
                h('td', {}, refText(k.reference))))))) : null,
        recs.length ? h('ul', { class: 'recs' }, recs.map((r) => h('li', {}, r))) : null,
        h('p', { class: 'meta' }, 'Generator: ' + (i.generator || 'builtin') + (i.confidence_score !== undefined ? ' · confidence ' + fmt(i.confidence_score * 100, nf0) + ' %' : '')));
}
// A reference range as the generator wrote it ("420-540 min", ">= 8000
// steps/day", ">= 85 %"): comparison signs as symbols, a range with a dash,
// and its numbers in the browser's locale like the values beside them.
function refText(r) {
    if (r === null || r === undefined) return '—';
    if (typeof r === 'string') {
        const num = (d) => {
            const places = d.includes('.') ? d.length - d.indexOf('.') - 1 : 0;
            return new Intl.NumberFormat(undefined, { minimumFractionDigits: places, maximumFractionDigits: places }).format(Number(d));
        };
        return r.replace(/>=/g, '≥').replace(/<=/g, '≤').replace(/\+\/-/g, '±')
            .replace(/(\d)-(\d)/g, '$1–$2')
            .replace(/(\d+(?:\.\d+)?) ?%/g, (m, d) => nfPct.format(Number(d) / 100))
            .replace(/\d+(?:\.\d+)?(?![\d%])/g, num);
    }
    if (typeof r === 'object') {
        const lo = r.low ?? r.min, hi = r.high ?? r.max;
        const range = lo !== undefined && hi !== undefined ? fmt(lo, nf2) + '–' + fmt(hi, nf2) : '';
        return [range, r.unit, r.text || r.source || r.label].filter(Boolean).join(' ');
    }
    return String(r);
}

async function latestInsights(limit) {
    const body = await api('/insights/history/' + encodeURIComponent(state.user.user_id) + '?limit=' + limit);
    const list = insightList(body).slice();
    for (const l of state.live) if (!list.find((i) => i.insight_id === l.insight_id)) list.push(l);
    list.sort((a, b) => insightTime(b) - insightTime(a));
    return list;
}

const RENDER = {};

RENDER.overview = async (el) => {
    const [ins, ups] = await Promise.all([latestInsights(1), api('/uploads?limit=5')]);
    const kids = [];
    if (ins.length) kids.push(section('Your latest insight', insightCard(ins[0], 'h3')));
    else if ((ups.data || []).length) kids.push(section('Your latest insight', empty('Not enough data for an insight yet. The analysis runs after each import; it needs about a day of data.')));
    else kids.push(section('Welcome', empty('Nothing imported yet. Import your Apple Health export to see your sleep, rhythm and insights.', ['#/import', 'Import your data'])));
    const ul = (ups.data || []).slice(0, 3);
    if (ul.length) kids.push(section('Recent imports', h('ul', { class: 'plain' }, ul.map((u) => h('li', {}, when(u.created_at) + ' — ' + u.status + (u.upload_source ? ' (' + u.upload_source + ')' : ''))))));
    fill(el, ...kids);
};

// ---- Sleep ---------------------------------------------------------------------

const STAGES = { in_bed: 'In bed', awake: 'Awake', asleep_core: 'Core', asleep_deep: 'Deep', asleep_rem: 'REM', asleep_unspecified: 'Asleep' };

RENDER.sleep = async (el) => {
    const to = await anchor(), from = to - 84 * DAY;
    const q = new URLSearchParams({ from: iso(from), to: iso(to) });
    const [r, an] = await Promise.all([api('/sleep/nights?' + q), api('/analyses?limit=20')]);
    let nights = (r.nights || []).map((n) => nightFromStages(n)).filter((n) => n.end > n.start);
    let kind = 'stages';
    if (!nights.length) {
        nights = estimatedNights(an.data || []);
        kind = 'estimate';
    }
    if (!nights.length) {
        fill(el, empty('No nights yet. Sleep stages come from an Apple Watch; with a phone only, rest periods are estimated from steps once a few days are imported.', ['#/import', 'Import data']));
        return;
    }
    const w = widthOf(el);
    fill(el, 
        kind === 'estimate' ? h('p', { class: 'notice' }, 'These are estimated rest periods from your step counts, not measured sleep.') : null,
        section('Nights', nightsChart(nights.slice(-30), w, kind)),
        section('Weekly trends', weeklySleep(nights, w)));
};

function nightFromStages(n) {
    let start = Infinity, end = -Infinity, asleep = 0, bed = 0;
    const segs = [];
    for (const [a, b, cat] of n.stages) {
        start = Math.min(start, a);
        end = Math.max(end, b);
        const min = (b - a) / 60000;
        if (cat.startsWith('asleep')) asleep += min;
        if (cat !== 'awake') bed += min;
        segs.push([a, b, cat]);
    }
    const inBed = (end - start) / 60000;
    return { night: n.night, start, end, segs, asleep, inBed, eff: inBed > 0 ? (100 * asleep) / inBed : null };
}

function estimatedNights(analyses) {
    const seen = new Map();
    for (const a of analyses) {
        const ns = a.result && a.result.sleep && (a.result.sleep.nights || a.result.sleep.rest_periods);
        for (const n of ns || []) {
            const st = Date.parse(n.period_start || n.start), en = Date.parse(n.period_end || n.end);
            // An estimate longer than 16 h is not a night (a phone left on a
            // table); it is left out rather than shown as sleep.
            if (!Number.isFinite(st) || !Number.isFinite(en) || en <= st || en - st > 16 * 3600000 || seen.has(st)) continue;
            const asleep = val(n.total_sleep_min) ?? (en - st) / 60000;
            seen.set(st, { night: new Date(en).toISOString().slice(0, 10), start: st, end: en, segs: [[st, en, 'asleep_unspecified']], asleep, inBed: (en - st) / 60000, eff: val(n.efficiency_pct) });
        }
    }
    return [...seen.values()].sort((a, b) => a.start - b.start);
}

function nightsChart(nights, W, kind) {
    const t0 = performance.now();
    const row = 16, m = { l: 64, r: 8, t: 18 }, H = m.t + nights.length * row + 8;
    // x axis: 18:00 of the evening before to 14:00 (20 hours), local time.
    const span = 20 * 3600000;
    const X = (t, base) => m.l + ((t - base) / span) * (W - m.l - m.r);
    const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-labelledby': 'nights-cap', class: 'plot' });
    const ax = s('g', { class: 'axis' });
    const every = W < 600 ? 6 : 4;
    for (let hr = 0; hr <= 20; hr += every) {
        const x = m.l + (hr / 20) * (W - m.l - m.r);
        ax.append(s('line', { x1: x, x2: x, y1: m.t - 4, y2: H - 6 }), s('text', { x, y: 12, 'text-anchor': hr === 0 ? 'start' : 'middle' }, clock(((18 + hr) % 24) * 60)));
    }
    svg.append(ax);
    const paths = {};
    nights.forEach((n, i) => {
        const base = localMidnight(n.end - 12 * 3600000) + 18 * 3600000; // 18:00 the evening before
        const y = m.t + i * row;
        svg.append(s('text', { x: m.l - 6, y: y + 11, 'text-anchor': 'end', class: 'axis-label' }, dfDay.format(new Date(n.end))));
        for (const [a, b, cat] of n.segs) {
            const x = X(Math.max(a, base), base), x2 = X(Math.min(b, base + span), base);
            if (x2 <= x) continue;
            paths[cat] = (paths[cat] || '') + `M${x.toFixed(1)} ${y + 2}h${(x2 - x).toFixed(1)}v12h${(x - x2).toFixed(1)}Z`;
        }
    });
    for (const [cat, d] of Object.entries(paths)) svg.append(s('path', { d, class: 'stage ' + cat }));
    const legend = h('ul', { class: 'legend' }, Object.keys(paths).map((c) => h('li', {}, h('span', { class: 'swatch stage ' + c }), STAGES[c] || c)));
    const fig = h('figure', { class: 'chart' }, h('div', { class: 'scroll-x' }, svg), legend,
        h('figcaption', { id: 'nights-cap' }, (kind === 'estimate' ? 'Estimated rest periods' : 'Nights with sleep stages') + ', last ' + nights.length + ' nights, 18:00 to 14:00 local time.'),
        tableOf(['Night', 'Bedtime', 'Wake', kind === 'estimate' ? 'Rest (h)' : 'Asleep (h)', 'Efficiency (%)'],
            nights.map((n) => [dfDate.format(new Date(n.end)), new Date(n.start).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' }),
                new Date(n.end).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' }), fmt(n.asleep / 60), fmt(n.eff, nf0)])));
    fig.dataset.renderMs = (performance.now() - t0).toFixed(1);
    return fig;
}

function weeklySleep(nights, W) {
    const weeks = new Map();
    for (const n of nights) {
        const d = new Date(n.end);
        d.setHours(0, 0, 0, 0);
        d.setDate(d.getDate() - ((d.getDay() + 6) % 7));
        const k = d.getTime();
        if (!weeks.has(k)) weeks.set(k, []);
        weeks.get(k).push(n);
    }
    const ks = [...weeks.keys()].sort((a, b) => a - b);
    const mean = (a) => (a.length ? a.reduce((x, y) => x + y, 0) / a.length : null);
    const sd = (a) => { const mu = mean(a); return a.length > 1 ? Math.sqrt(a.reduce((x, y) => x + (y - mu) ** 2, 0) / (a.length - 1)) : null; };
    const dur = ks.map((k) => mean(weeks.get(k).map((n) => n.asleep / 60)));
    const eff = ks.map((k) => mean(weeks.get(k).map((n) => n.eff).filter((v) => v !== null && v !== undefined)));
    // Regularity: the standard deviation of the sleep midpoint (minutes);
    // lower is more regular.
    const reg = ks.map((k) => sd(weeks.get(k).map((n) => { const mid = new Date((n.start + n.end) / 2); return ((mid.getHours() + 12) % 24) * 60 + mid.getMinutes(); })));
    return h('div', {},
        timeChart({ id: 'sleep-dur', xs: ks, step: 7 * DAY, width: W, height: 160, series: [{ kind: 'bar', ys: dur, cls: 'sleep' }],
            caption: 'Mean sleep per night, hours, by week.', tableHead: ['Week of', 'Sleep (h)', 'Efficiency (%)', 'Midpoint SD (min)', 'Nights'],
            tableRows: ks.map((k, i) => [dfDate.format(new Date(k)), fmt(dur[i]), fmt(eff[i], nf0), fmt(reg[i], nf0), fmt(weeks.get(k).length, nf0)]) }),
        h('p', { class: 'help' }, 'Efficiency is the share of the night spent asleep; regularity is how much the middle of your sleep moves from night to night (its standard deviation in minutes — lower is steadier).'));
}

// ---- Rhythm ---------------------------------------------------------------------

RENDER.rhythm = async (el) => {
    const to = await anchor();
    const days = 28, from = to - days * DAY;
    const tz = -new Date(to).getTimezoneOffset();
    const yfrom = to - 364 * DAY;
    const [steps, rh] = await Promise.all([
        series('steps', from, to, days * 48),
        api('/rhythm?' + new URLSearchParams({ from: iso(yfrom), to: iso(to), tz_offset_min: String(tz) })),
    ]);
    // Without steps, a research recording's activity counts draw the actogram.
    const act = steps.t.length ? steps : await series('activity_count', from, to, days * 48);
    if (!act.t.length) {
        fill(el, empty('No step counts or recorded activity yet: the actogram draws activity from steps or a research recording.', ['#/import', 'Import data']));
        return;
    }
    const w = widthOf(el);
    if (!steps.t.length) {
        fill(el, section('Actogram', actogram(act, from, days, w, 'activity counts')),
            section('Your rhythm', h('p', {}, 'The week-by-week figures and the 24-hour profile are drawn from steps, so they are not shown for a recording. Its IS, IV, RA, L5 and M10 are in its analysis: see the insight on the Overview.')));
        return;
    }
    fill(el, 
        section('Actogram', actogram(act, from, days, w)),
        section('Your rhythm, week by week', rhythmWeeks(rh)),
        section('The 24-hour profile', cosinorChart(rh, w)));
};

function actogram(act, from, days, W, what = 'steps') {
    const t0 = performance.now();
    const bins = 48, bin = DAY / bins, row = 14, m = { l: 56, r: 6, t: 18 };
    const H = m.t + days * row + 6, cw = (W - m.l - m.r) / (2 * bins);
    const grid = new Float64Array((days + 1) * bins).fill(-1);
    let max = 0;
    act.t.forEach((t, i) => {
        const k = Math.floor((t - from) / bin);
        if (k >= 0 && k < grid.length) { grid[k] = act.sum[i]; max = Math.max(max, act.sum[i]); }
    });
    const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-labelledby': 'acto-cap', class: 'plot actogram' });
    const ax = s('g', { class: 'axis' });
    for (let hr = 0; hr <= 48; hr += 6) {
        const x = m.l + hr * 2 * cw;
        ax.append(s('line', { x1: x, x2: x, y1: m.t - 3, y2: H - 4 }), s('text', { x, y: 12, 'text-anchor': hr === 0 ? 'start' : hr === 48 ? 'end' : 'middle' }, String(hr % 24).padStart(2, '0')));
    }
    svg.append(ax);
    let d = '';
    for (let day = 0; day < days; day++) {
        const y = m.t + day * row;
        if (day % 7 === 0 || days <= 14) svg.append(s('text', { x: m.l - 4, y: y + 10, 'text-anchor': 'end', class: 'axis-label' }, dfDay.format(new Date(from + day * DAY))));
        for (let c = 0; c < 2 * bins; c++) {
            const v = grid[day * bins + c];
            if (v <= 0 || max <= 0) continue;
            const hgt = Math.max(1, (v / max) * (row - 2));
            d += `M${(m.l + c * cw).toFixed(1)} ${(y + row - 1).toFixed(1)}v${(-hgt).toFixed(1)}h${Math.max(cw, 0.8).toFixed(2)}v${hgt.toFixed(1)}Z`;
        }
    }
    svg.append(s('path', { d, class: 'acto' }));
    const rows = [];
    for (let day = 0; day < days; day++) {
        let tot = 0, best = -1, bestv = -1;
        for (let c = 0; c < bins; c++) { const v = grid[day * bins + c]; if (v > 0) { tot += v; if (v > bestv) { bestv = v; best = c; } } }
        rows.push([dfDate.format(new Date(from + day * DAY)), fmt(tot, nf0), best >= 0 ? clock(best * 30) : '—']);
    }
    const fig = h('figure', { class: 'chart' }, h('div', { class: 'scroll-x' }, svg),
        h('figcaption', { id: 'acto-cap' }, 'Double-plotted actogram of ' + what + ': one day per row, 48 hours across (each day is drawn again to the right of the day before), last ' + days + ' days, in 30-minute bins.'),
        tableOf(['Day', what === 'steps' ? 'Steps' : 'Activity counts', 'Most active half hour'], rows));
    fig.dataset.renderMs = (performance.now() - t0).toFixed(1);
    fig.dataset.points = String(act.t.length);
    fig.id = 'actogram';
    return fig;
}

const NPAR_HELP = [
    ['IS', 'is', 'Interdaily stability (0–1): how alike your days are. Higher means the same pattern each day.', nf2],
    ['IV', 'iv', 'Intradaily variability (0–2): how fragmented a day is. Lower means longer stretches of rest and activity.', nf2],
    ['RA', 'ra', 'Relative amplitude (0–1): the contrast between your most active 10 hours and your least active 5.', nf2],
    ['L5', 'l5', 'Steps per minute in your least active 5 hours (usually the night), with its start.', nf],
    ['M10', 'm10', 'Steps per minute in your most active 10 hours, with its start.', nf],
];

function rhythmWeeks(rh) {
    const weeks = (rh.weeks || []).filter((w) => val(w.is) !== null || val(w.ra) !== null);
    if (!weeks.length) return empty('Not enough days for the rhythm measures yet: they need at least two full days of steps in a week.');
    const cell = (w, key, f) => {
        const m = w[key];
        if (!m || m.value === null || m.value === undefined) return '—';
        let t = fmt(m.value, f);
        if (key === 'l5' || key === 'm10') t += ' (' + clock(val(w[key + '_onset_min'])) + ')';
        return t;
    };
    const shown = weeks.slice(-12);
    return h('div', {},
        h('dl', { class: 'defs' }, NPAR_HELP.map(([n, , help]) => [h('dt', {}, n), h('dd', {}, help)])),
        h('div', { class: 'scroll', tabindex: '0', role: 'region', 'aria-label': 'Rhythm by week' }, h('table', {},
            h('caption', {}, 'Per week (van Someren et al. 1999), the last ' + shown.length + ' weeks with data'),
            h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Week of'), NPAR_HELP.map(([n]) => h('th', { scope: 'col' }, n)))),
            h('tbody', {}, shown.map((w) => h('tr', {}, h('th', { scope: 'row' }, dfDate.format(new Date(w.week_start))),
                NPAR_HELP.map(([, key, , f]) => h('td', {}, cell(w, key, f)))))))));
}

function cosinorChart(rh, W) {
    const t0 = performance.now();
    const prof = rh.profile || [];
    if (!prof.some((v) => v !== null)) return empty('No 24-hour profile yet.');
    const c = rh.cosinor || {};
    const M = val(c.mesor), A = val(c.amplitude), phi = val(c.acrophase_min);
    const H = 200, m = { l: 44, r: 10, t: 10, b: 24 };
    let hi = Math.max(...prof.filter((v) => v !== null));
    if (M !== null && A !== null) hi = Math.max(hi, M + A);
    hi = hi > 0 ? hi * 1.1 : 1;
    const X = (min) => m.l + (min / 1440) * (W - m.l - m.r), Y = (v) => H - m.b - (Math.max(0, v) / hi) * (H - m.t - m.b);
    const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-labelledby': 'cos-cap', class: 'plot' });
    const ax = s('g', { class: 'axis' });
    for (let hr = 0; hr <= 24; hr += 6) ax.append(s('text', { x: X(hr * 60), y: H - 6, 'text-anchor': hr === 0 ? 'start' : hr === 24 ? 'end' : 'middle' }, clock(hr * 60 % 1440)));
    for (let k = 0; k <= 2; k++) ax.append(s('line', { x1: m.l, x2: W - m.r, y1: Y((hi * k) / 2), y2: Y((hi * k) / 2) }), s('text', { x: m.l - 4, y: Y((hi * k) / 2) + 4, 'text-anchor': 'end' }, fmt((hi * k) / 2)));
    svg.append(ax);
    let d = '';
    prof.forEach((v, hr) => { if (v !== null && v > 0) d += `M${X(hr * 60 + 4).toFixed(1)} ${Y(0)}V${Y(v).toFixed(1)}h${(X(52) - X(0)).toFixed(1)}V${Y(0)}Z`; });
    svg.append(s('path', { d, class: 'bar' }));
    if (M !== null && A !== null && phi !== null) {
        let cd = '';
        for (let t = 0; t <= 1440; t += 10) cd += (t ? 'L' : 'M') + X(t).toFixed(1) + ' ' + Y(M + A * Math.cos((2 * Math.PI * (t - phi)) / 1440)).toFixed(1);
        svg.append(s('path', { d: cd, class: 'line cosinor' }));
    }
    const fig = h('figure', { class: 'chart' }, svg,
        h('figcaption', { id: 'cos-cap' }, 'Mean steps per minute by hour of the day (bars) and the fitted 24-hour cosine (line): mesor ' + fmt(M) +
            ', amplitude ' + fmt(A) + ', peak at ' + clock(phi) + (val(c.r_squared) !== null ? ', R² ' + fmt(val(c.r_squared), nf2) : '') + '.'),
        tableOf(['Hour', 'Steps per minute', 'Cosine fit'], prof.map((v, hr) => [clock(hr * 60), fmt(v),
            M !== null && A !== null && phi !== null ? fmt(M + A * Math.cos((2 * Math.PI * (hr * 60 + 30 - phi)) / 1440)) : '—'])));
    fig.dataset.renderMs = (performance.now() - t0).toFixed(1);
    return fig;
}

// ---- Heart and activity -----------------------------------------------------------

// The user's own baseline: mean ± 1 SD of the 28 days before each day.
function baseline(xs, ys) {
    const lo = [], hi = [];
    for (let i = 0; i < xs.length; i++) {
        const win = [];
        for (let j = i - 1; j >= 0 && xs[i] - xs[j] <= 28 * DAY; j--) if (ys[j] !== null) win.push(ys[j]);
        if (win.length < 7) { lo.push(null); hi.push(null); continue; }
        const mu = win.reduce((a, b) => a + b, 0) / win.length;
        const sd = Math.sqrt(win.reduce((a, b) => a + (b - mu) ** 2, 0) / (win.length - 1));
        lo.push(mu - sd);
        hi.push(mu + sd);
    }
    return { xs, lo, hi };
}

RENDER.heart = async (el) => {
    const to = await anchor(), from = to - 364 * DAY;
    const [st, rhr, hrv] = await Promise.all([series('steps', from, to, 364), series('resting_heart_rate', from, to, 364), series('heart_rate_variability', from, to, 364)]);
    const w = widthOf(el);
    const kids = [];
    // Start where the data start (at least four weeks shown), not a year back.
    const firsts = [st, rhr, hrv].filter((r) => r.t.length).map((r) => r.t[0]);
    const x0 = firsts.length ? Math.max(from, Math.min(Math.min(...firsts), to - 28 * DAY)) : from;
    const chart = (id, title, r, ys, kind, cls, unit, band, f) => {
        if (!r.t.length) return section(title, empty('No ' + title.toLowerCase() + ' in this year of data.'));
        const b = band ? baseline(r.t, ys) : null;
        return section(title, timeChart({ id, xs: r.t, x0, x1: to, step: DAY, width: w, series: [{ kind, ys, cls }], band: b,
            caption: title + ' per day (' + unit + '), ' + dfDate.format(new Date(x0)) + ' to ' + dfDate.format(new Date(to - DAY)) + (band ? '; the shaded band is your own baseline, the mean ± 1 SD of the 28 days before.' : '.'),
            tableHead: ['Day', title + ' (' + unit + ')'].concat(band ? ['Baseline low', 'Baseline high'] : []),
            tableRows: r.t.map((t, i) => [dfDate.format(new Date(t)), fmt(ys[i], f)].concat(band ? [fmt(b.lo[i], f), fmt(b.hi[i], f)] : [])).reverse() }));
    };
    kids.push(chart('steps', 'Daily steps', st, st.sum, 'bar', 'steps', 'steps', false, nf0));
    kids.push(chart('rhr', 'Resting heart rate', rhr, rhr.mean, 'line', 'heart', 'beats per minute', true, nf));
    kids.push(chart('hrv', 'Heart rate variability', hrv, hrv.mean, 'line', 'hrv', 'ms SDNN', true, nf));
    if (!st.t.length && !rhr.t.length && !hrv.t.length) {
        fill(el, empty('No steps or heart data yet.', ['#/import', 'Import data']));
        return;
    }
    fill(el, ...kids);
};

// ---- Insights and chat ---------------------------------------------------------------

RENDER.insights = async (el) => {
    const list = await latestInsights(20);
    const log = h('ol', { id: 'chat-log', class: 'chat-log', 'aria-live': 'polite' });
    const input = h('input', { id: 'chat-q', type: 'text', autocomplete: 'off', maxlength: 1000, placeholder: 'How did I sleep this week?' });
    const form = h('form', { class: 'chat-form' }, h('label', { for: 'chat-q' }, 'Ask about your data'), h('div', { class: 'row' }, input, h('button', { type: 'submit' }, 'Send')));
    form.addEventListener('submit', (ev) => {
        ev.preventDefault();
        const q = input.value.trim();
        if (!q) return;
        if (!state.ws || state.ws.readyState !== 1) {
            state.chat.push({ role: 'system', text: 'The chat is connecting; try again in a moment.' });
            connectLive();
        } else {
            state.ws.send(JSON.stringify({ type: 'message', content: q }));
            state.chat.push({ role: 'user', text: q });
            input.value = '';
        }
        renderChat();
    });
    fill(el, 
        section('Chat', h('p', { class: 'help' }, 'Answers come from your own stored analyses: measurements and reference values, never a diagnosis.'), log, form),
        section('History', list.length ? h('div', { class: 'insights' }, list.map((i) => insightCard(i, 'h3'))) : empty('No insights yet. They appear here, live, when an analysis finishes.')));
    renderChat();
};

function renderChat() {
    const log = document.getElementById('chat-log');
    if (!log) return;
    log.replaceChildren(...state.chat.map((m) => h('li', { class: 'msg ' + m.role }, h('span', { class: 'who' }, m.role === 'user' ? 'You' : m.role === 'assistant' ? 'Clarity' : 'Note'), h('p', {}, m.text))));
}

// ---- Import --------------------------------------------------------------------------

RENDER.import = async (el) => {
    const input = h('input', { type: 'file', id: 'file', accept: '.zip,.xml,.awd,.csv,.txt,.mtn,application/zip,application/xml,text/xml,text/csv,text/plain', class: 'sr-only' });
    const drop = h('div', { class: 'drop', id: 'drop' },
        h('p', {}, 'Drop your Apple Health ', h('code', {}, 'export.zip'), ' or ', h('code', {}, 'export.xml'), ', or a research recording, here, or'),
        h('label', { for: 'file', class: 'button' }, 'Choose a file'), input,
        h('p', { class: 'help' }, 'On your iPhone: Health → your picture → Export All Health Data. Recordings: Actiwatch .AWD, Actiware, ActTrust or ActiLife CSV exports, MotionWatch .mtn, or a ', h('code', {}, 'timestamp,value'), ' CSV of activity counts (times in this browser\'s time zone).'));
    const out = h('div', { id: 'import-out' });
    input.addEventListener('change', () => input.files[0] && startImport(input.files[0], out));
    drop.addEventListener('dragover', (ev) => { ev.preventDefault(); drop.classList.add('over'); });
    drop.addEventListener('dragleave', () => drop.classList.remove('over'));
    drop.addEventListener('drop', (ev) => {
        ev.preventDefault();
        drop.classList.remove('over');
        const f = ev.dataTransfer.files[0];
        if (f) startImport(f, out);
    });
    fill(el, section('Import your data', drop, out));
};

// What a dropped file is, by its first bytes and name: an Apple Health
// export (zip, or XML whose root is HealthData) goes to /healthkit/import,
// other text (a research recording) to /recordings, where the server picks
// the reader; a binary file that is neither is refused here.
async function sniffType(file) {
    const head = new Uint8Array(await file.slice(0, 512).arrayBuffer());
    if (head[0] === 0x50 && head[1] === 0x4b) return 'application/zip';
    const text = await file.slice(0, 4096).text();
    if (/^\s*(<\?xml[^>]*>\s*)?(<!DOCTYPE HealthData|<HealthData)/.test(text)) return 'application/xml';
    if (/\.agd$/i.test(file.name) || head.indexOf(0) >= 0) return null;
    return 'recording';
}

async function startImport(file, out) {
    const type = await sniffType(file);
    if (!type) {
        out.replaceChildren(h('div', { class: 'error', role: 'alert' }, file.name + ' is neither an Apple Health export (export.zip or export.xml) nor a text recording. ActiGraph .agd files are read by clarity analyze on the server; export a CSV from ActiLife to import one here.'));
        return;
    }
    const recording = type === 'recording';
    const bar = h('progress', { id: 'import-progress', max: 1, value: 0, 'aria-label': 'Import progress' });
    const text = h('p', { id: 'import-status', role: 'status' }, 'Sending ' + file.name + '…');
    const cancel = h('button', { type: 'button', class: 'secondary' }, 'Cancel');
    out.replaceChildren(h('div', { class: 'progress' }, bar, text, cancel));
    const started = Date.now();
    let before = null;
    try { before = (await latestInsights(1))[0] || null; } catch (e) { before = null; }
    const xhr = new XMLHttpRequest();
    let poll = null, done = false;
    const stop = () => { done = true; clearInterval(poll); };
    cancel.addEventListener('click', () => { xhr.abort(); });
    xhr.upload.addEventListener('progress', (ev) => {
        if (!ev.lengthComputable) return;
        bar.value = Math.max(bar.value, (ev.loaded / ev.total) * 0.5);
        const size = (n) => (ev.total < 1048576 ? fmt(n / 1024, nf0) + ' KB' : fmt(n / 1048576) + ' MB');
        text.textContent = 'Sent ' + size(ev.loaded) + ' of ' + size(ev.total);
    });
    // The server reads the export as it arrives (a zip once complete); the
    // upload row's progress and records read come from the status API.
    const watch = async () => {
        try {
            const r = await api('/uploads?limit=3');
            const u = (r.data || []).find((x) => x.upload_source === (recording ? 'research_recording' : 'apple_health_export') && Date.parse(x.created_at) >= started - 60000);
            if (u && !done && u.status === 'processing') {
                bar.value = Math.max(bar.value, 0.5 + 0.5 * (u.progress || 0));
                text.textContent = (recording ? 'Storing the recording: ' : 'Reading the export: ') + fmt(u.processed_metrics || 0, nf0) + (recording ? ' epochs' : ' records') + ' so far';
            }
        } catch (e) { /* the next poll tries again */ }
    };
    xhr.upload.addEventListener('load', () => { text.textContent = recording ? 'Sent. Reading and storing the recording…' : 'Sent. Reading the export…'; });
    poll = setInterval(watch, 500);
    xhr.addEventListener('abort', () => { stop(); bar.remove(); cancel.remove(); text.textContent = recording ? 'Import cancelled. Nothing of the recording was stored.' : 'Import cancelled. Nothing more is sent; records already read stay stored and a new import adds only what is missing.'; });
    xhr.addEventListener('error', () => { stop(); cancel.remove(); out.append(errorBox(new Error('The connection failed during the upload.'))); });
    xhr.addEventListener('load', async () => {
        stop();
        cancel.remove();
        let body = null;
        try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
        if (xhr.status !== 202 && xhr.status !== 200) {
            text.textContent = 'The import failed.';
            out.append(errorBox(new Error((body && body.detail) || 'HTTP ' + xhr.status)));
            return;
        }
        bar.value = 1;
        text.textContent = 'Imported. Analysing…';
        out.append(recording ? recordingSummary(body) : importSummary(body));
        state.anchor = null;
        await waitForAnalysis(body.upload_id, text, before);
    });
    // A recording's clock is local: this browser's UTC offset places it.
    xhr.open('POST', recording ? API + '/recordings?name=' + encodeURIComponent(file.name) + '&tz_offset_min=' + String(-new Date().getTimezoneOffset()) : API + '/healthkit/import');
    xhr.setRequestHeader('Authorization', 'Bearer ' + state.token);
    xhr.setRequestHeader('Content-Type', recording ? 'application/octet-stream' : type);
    xhr.send(file);
}

function recordingSummary(body) {
    const r = body.recording || {};
    const rows = [['Format', r.format_label], ['Epoch', fmt(r.epoch_s, nf0) + ' s'], ['From', r.start_local ? r.start_local.replace('T', ' ') : '—'],
        ['To', r.end_local ? r.end_local.replace('T', ' ') : '—'], ['Epochs with counts', fmt(r.epochs, nf0)], ['Stored', fmt(r.stored, nf0)], ['Duplicates skipped', fmt(r.duplicates, nf0)]];
    return h('div', { class: 'summary', id: 'import-summary' },
        h('h3', {}, 'Recording summary'),
        h('p', {}, fmt(r.epochs, nf0) + ' epochs of activity counts read from ' + (r.name || 'the recording') + ', ' + fmt(r.stored, nf0) + ' stored, ' + fmt(r.duplicates, nf0) + ' duplicates skipped.'),
        h('table', {}, h('caption', {}, 'Recording'), h('tbody', {}, rows.map(([k, v]) => h('tr', {}, h('th', { scope: 'row' }, k), h('td', {}, v == null ? '—' : String(v)))))));
}

function importSummary(body) {
    const im = body.import || body;
    const types = Object.entries(im.types || {}).sort((a, b) => b[1].samples - a[1].samples);
    const unk = Object.entries(im.unknown_types || {});
    const rej = Object.entries(im.rejected_types || {});
    const short = (t) => t.replace(/^HK(Quantity|Category|Correlation)TypeIdentifier/, '').replace(/^HKWorkout.*/, 'Workout');
    return h('div', { class: 'summary', id: 'import-summary' },
        h('h3', {}, 'Import summary'),
        h('p', {}, fmt(im.records, nf0) + ' records read, ' + fmt(im.stored, nf0) + ' samples stored, ' + fmt(im.duplicates, nf0) + ' duplicates skipped, ' +
            fmt(im.unknown, nf0) + ' of unsupported types, ' + fmt(im.rejected, nf0) + ' rejected.'),
        h('div', { class: 'scroll', tabindex: '0', role: 'region', 'aria-label': 'Types imported' }, h('table', {}, h('caption', {}, 'By type'),
            h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Type'), h('th', { scope: 'col' }, 'Records'), h('th', { scope: 'col' }, 'Samples'))),
            h('tbody', {}, types.map(([t, c]) => h('tr', {}, h('th', { scope: 'row' }, short(t)), h('td', {}, fmt(c.records, nf0)), h('td', {}, fmt(c.samples, nf0))))))),
        unk.length || rej.length ? h('details', {}, h('summary', {}, 'Unsupported and rejected types (' + (unk.length + rej.length) + ')'),
            h('ul', {}, unk.concat(rej).map(([t, c]) => h('li', {}, short(t) + ': ' + fmt(c.count, nf0) + ' — ' + (c.reason || ''))))) : null);
}

async function waitForAnalysis(uploadId, text, before) {
    const deadline = Date.now() + 120000;
    while (Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 1000));
        try {
            const st = await api('/healthkit/status/' + encodeURIComponent(uploadId));
            const ins = (await latestInsights(1))[0];
            if (ins && (!before || ins.insight_id !== before.insight_id)) {
                text.textContent = 'Done: your analysis and a new insight are ready.';
                text.append(' ', h('a', { href: '#/overview', id: 'see-insight' }, 'See the insight'));
                return;
            }
            if (st.status === 'failed') {
                text.textContent = 'The analysis failed: ' + (st.error || 'unknown reason');
                return;
            }
        } catch (e) { /* retry */ }
    }
    text.textContent = 'Imported. The analysis is still running; its insight will appear under Insights.';
}

// ---- Your data -------------------------------------------------------------------------

RENDER.data = async (el) => {
    const [ups, audit] = await Promise.all([api('/uploads?limit=50'), api('/auth/me/audit?limit=25')]);
    const list = ups.data || [];
    const rows = list.map((u) => {
        const del = h('button', { type: 'button', class: 'secondary small', 'aria-label': 'Delete the upload of ' + when(u.created_at) }, 'Delete');
        del.addEventListener('click', () => {
            const confirm = h('button', { type: 'button', class: 'danger small' }, 'Confirm delete');
            const no = h('button', { type: 'button', class: 'secondary small' }, 'Keep');
            confirm.addEventListener('click', async () => {
                confirm.disabled = true;
                try {
                    await api('/health-data/' + encodeURIComponent(u.upload_id || u.processing_id), { method: 'DELETE' });
                    state.anchor = null;
                    announce('Upload deleted.');
                    route();
                } catch (e) { confirm.replaceWith(errorBox(e)); }
            });
            no.addEventListener('click', () => route());
            del.replaceWith(h('span', { class: 'confirm' }, confirm, ' ', no));
            confirm.focus();
        });
        return h('tr', {}, h('th', { scope: 'row' }, when(u.created_at)), h('td', {}, u.upload_source || ''), h('td', {}, u.status + (u.error ? ': ' + u.error : '')),
            h('td', {}, (u.processed_metrics || u.total_metrics) ? fmt(u.processed_metrics || u.total_metrics, nf0) : '—'), h('td', {}, del));
    });
    const exp = (kind) => async () => {
        const r = await api('/health-data/export', { raw: true, headers: { Accept: kind === 'csv' ? 'text/csv' : 'application/x-ndjson' } });
        if (!r.ok) { announce('The export failed.'); return; }
        const blob = await r.blob();
        const a = h('a', { href: URL.createObjectURL(blob), download: 'clarity-export.' + (kind === 'csv' ? 'csv' : 'ndjson') });
        document.body.append(a);
        a.click();
        a.remove();
        announce('Export ready: ' + fmt(blob.size / 1024) + ' KB.');
    };
    const email = h('input', { id: 'erase-email', type: 'email', autocomplete: 'off' });
    const erase = h('button', { type: 'submit', class: 'danger' }, 'Erase my account');
    const eraseErr = h('div', { role: 'alert', class: 'form-error' });
    const eraseForm = h('form', { class: 'erase' }, h('p', {}, 'This erases your account, every upload, sample, analysis and insight. It cannot be undone.'),
        h('div', { class: 'field' }, h('label', { for: 'erase-email' }, 'Type your email (' + state.user.email + ') to confirm'), email), eraseErr, erase);
    eraseForm.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        if (email.value.trim().toLowerCase() !== state.user.email.toLowerCase()) { eraseErr.textContent = 'The email does not match.'; return; }
        try {
            await api('/auth/me', { method: 'DELETE' });
            signedOutLocally();
            state.flash = 'Your account and all its data were erased.';
            if (location.hash === '#/signin') route();
            else location.hash = '#/signin';
        } catch (e) { eraseErr.textContent = e.message; }
    });
    const auditRows = (audit.data || []).map((a) => [when(a.created_at || a.timestamp), a.action || '', a.outcome || a.result || '', a.ip || a.client_ip || '']);
    fill(el, 
        section('Uploads', list.length ? h('div', { class: 'scroll', tabindex: '0', role: 'region', 'aria-label': 'Uploads' }, h('table', { id: 'uploads' },
            h('thead', {}, h('tr', {}, ['Received', 'Source', 'Status', 'Records', ''].map((c) => h('th', { scope: 'col' }, c || h('span', { class: 'sr-only' }, 'Actions'))))),
            h('tbody', {}, rows))) : empty('No uploads yet.', ['#/import', 'Import data'])),
        section('Export', h('p', {}, 'Every sample you stored, oldest first.'), h('div', { class: 'row' },
            h('button', { type: 'button', id: 'export-ndjson', onclick: exp('ndjson') }, 'Download NDJSON'), h('button', { type: 'button', id: 'export-csv', class: 'secondary', onclick: exp('csv') }, 'Download CSV'))),
        section('Your account’s audit log', auditRows.length ? h('div', { class: 'scroll', tabindex: '0', role: 'region', 'aria-label': 'Audit log' }, h('table', {},
            h('thead', {}, h('tr', {}, ['When', 'Action', 'Outcome', 'Address'].map((c) => h('th', { scope: 'col' }, c)))),
            h('tbody', {}, auditRows.map((r) => h('tr', {}, h('th', { scope: 'row' }, r[0]), r.slice(1).map((c) => h('td', {}, c))))))) : empty('No entries.')),
        section('Erase your account', eraseForm));
};

// ---- start --------------------------------------------------------------------------------

window.addEventListener('hashchange', route);

async function start() {
    let had = false;
    try { had = localStorage.getItem('clarity.session') === '1'; } catch (e) { had = false; }
    // Back from an OIDC provider: the server has set the refresh cookie.
    const oidcDone = location.hash === '#/signed-in';
    if (oidcDone) history.replaceState(null, '', '#/overview');
    if ((had || oidcDone) && (await refresh())) {
        try { localStorage.setItem('clarity.session', '1'); } catch (e) { /* storage off */ }
        try { await loadUser(); } catch (e) { signedOutLocally(); }
    } else if (oidcDone) {
        state.flash = 'The sign-in did not finish. Please try again.';
    }
    route();
}
start();
