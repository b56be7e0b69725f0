// Drive the web app (issue 20) in headless Chromium (playwright-core, the
// system's chromium), as a person would: sign up, drop an Apple Health
// export on the import page (upload throttled so the progress bar moves),
// wait for the analysis, look at every view at desktop and phone width (with
// axe-core's rules run in the page each time), ask the chat, export, delete
// the upload, erase the account. Prints one JSON line for test_web_app.py.
// Environment: PLAYWRIGHT_CORE, AXE_CORE (paths of the npm modules),
// CHROMIUM, BASE_URL, EXPORT_ZIP, ARTIFACTS (a directory), MODE ("flow" or
// "bench": only sign in and time the views of existing data), EMAIL,
// PASSWORD.
'use strict';
const fs = require('fs');
const path = require('path');
const { chromium } = require(process.env.PLAYWRIGHT_CORE);

const base = process.env.BASE_URL;
const art = process.env.ARTIFACTS;
const VIEWS = ['overview', 'sleep', 'rhythm', 'heart', 'insights', 'import', 'data'];
const axeSource = fs.readFileSync(path.join(process.env.AXE_CORE, 'axe.min.js'), 'utf8');

async function axe(page) {
    const has = await page.evaluate(() => typeof window.axe !== 'undefined');
    if (!has) await page.evaluate(axeSource);
    const r = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
    return r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
        .map((v) => v.id + ' (' + v.impact + '): ' + v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', '));
}

async function show(page, view) {
    const before = await page.evaluate(() => document.body.dataset.ready || '');
    await page.evaluate((v) => { location.hash = '#/' + v; }, view);
    await page.waitForFunction(([v, b]) => document.body.dataset.view === v && document.body.dataset.ready !== b, [view, before], { timeout: 30000 });
}

async function visitAll(page, out, suffix) {
    for (const v of VIEWS) {
        await show(page, v);
        const charts = await page.$$eval('figure.chart', (fs) => fs.map((f) => ({ ms: Number(f.dataset.renderMs), points: Number(f.dataset.points || 0) })));
        out.views[v + suffix] = {
            charts,
            errors: await page.$$eval('.error', (es) => es.map((e) => e.textContent)),
            text: (await page.textContent('main')).slice(0, 2000),
            axe: await axe(page),
            // The figures table of the insight: [name, value, reference range].
            figures: await page.$$eval('table.figures tbody tr', (rs) => rs.map((r) => [...r.children].map((c) => c.textContent))),
        };
        await page.screenshot({ path: path.join(art, `web-${v}${suffix}.png`), fullPage: true });
    }
}

async function main() {
    const browser = await chromium.launch({
        executablePath: process.env.CHROMIUM,
        headless: true,
        args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
            '--disable-sync', '--no-first-run', '--disable-dev-shm-usage', '--disable-quic'],
    });
    const out = { problems: [], outside: [], views: {}, progress: [] };
    let page = null;
    try {
        const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
        page = await context.newPage();
        page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') out.problems.push('console ' + m.type() + ': ' + m.text()); });
        page.on('pageerror', (e) => out.problems.push('pageerror: ' + e.message));
        page.on('requestfailed', (r) => {
            // A download the page hands over is not a failure.
            const why = (r.failure() || {}).errorText;
            if (out.allowAbort && r.url().endsWith('/api/v1/healthkit/import') && /ABORTED/.test(why)) return;
            if (!r.url().startsWith('blob:')) out.problems.push('requestfailed: ' + r.url() + ' ' + why);
        });
        page.on('response', (r) => { if (r.status() >= 400) out.problems.push('HTTP ' + r.status() + ': ' + r.url()); });
        page.on('request', (r) => {
            const u = r.url();
            if (!u.startsWith(base) && !u.startsWith('data:') && !u.startsWith('blob:') && !u.startsWith(base.replace('http', 'ws'))) out.outside.push(u);
        });

        // First view: the sign-in form, interactive.
        const res = await page.goto(base + '/', { waitUntil: 'load' });
        out.page_status = res.status();
        out.csp = res.headers()['content-security-policy'];
        await page.waitForSelector('form.auth button[type=submit]');
        out.first_view_ms = await page.evaluate(() => Number(document.body.dataset.ready) - performance.timeOrigin);
        out.first_view_timing = await page.evaluate(() => {
            const n = performance.getEntriesByType('navigation')[0];
            return { requestStart: n.requestStart, responseEnd: n.responseEnd, domInteractive: n.domInteractive, domContentLoaded: n.domContentLoadedEventEnd, load: n.loadEventEnd, ready: Number(document.body.dataset.ready) - performance.timeOrigin };
        });
        out.views.signin = { axe: await axe(page) };
        await page.screenshot({ path: path.join(art, 'web-signin.png') });

        const email = process.env.EMAIL, password = process.env.PASSWORD;
        if (process.env.MODE === 'bench') {
            await page.fill('#email', email);
            await page.fill('#password', password);
            await page.click('form.auth button[type=submit]');
            await page.waitForFunction(() => document.body.dataset.view === 'overview', null, { timeout: 30000 });
            for (const v of ['sleep', 'rhythm', 'heart']) {
                await show(page, v);
                out.views[v] = { charts: await page.$$eval('figure.chart', (fs) => fs.map((f) => ({ ms: Number(f.dataset.renderMs), points: Number(f.dataset.points || 0) }))) };
                await page.screenshot({ path: path.join(art, `web-bench-${v}.png`), fullPage: true });
            }
            process.stdout.write(JSON.stringify(out) + '\n');
            return;
        }

        // Sign up.
        await page.click('a[href="#/register"]');
        await page.waitForSelector('#first_name');
        out.views.register = { axe: await axe(page) };
        await page.fill('#first_name', 'Sam');
        await page.fill('#last_name', 'Hoster');
        await page.fill('#email', email);
        await page.fill('#password', password);
        await page.check('#terms');
        await page.click('form.auth button[type=submit]');
        await page.waitForFunction(() => document.body.dataset.view === 'import', null, { timeout: 30000 });
        await page.screenshot({ path: path.join(art, 'web-import-empty.png') });

        out.cookies = (await context.cookies()).map((c) => ({ name: c.name, httpOnly: c.httpOnly, secure: c.secure, sameSite: c.sameSite, path: c.path, value_len: c.value.length }));
        out.storage = await page.evaluate(() => {
            const all = {};
            for (const st of [localStorage, sessionStorage]) for (let i = 0; i < st.length; i++) all[st.key(i)] = st.getItem(st.key(i));
            return all;
        });
        out.document_cookie = await page.evaluate(() => document.cookie);
        // A POST from another site: the browser's request context carries the
        // cookie, with a foreign Origin; then one without the CSRF header.
        const evil = await context.request.post(base + '/api/v1/auth/refresh', { data: '{}', headers: { 'Content-Type': 'application/json', Origin: 'http://evil.example', 'X-Clarity-CSRF': '1' } });
        const bare = await context.request.post(base + '/api/v1/auth/refresh', { data: '{}', headers: { 'Content-Type': 'application/json' } });
        out.cross_site_status = [evil.status(), bare.status()];

        // Import: drop the export on the page, upload throttled. First one
        // that is cancelled half-way (its aborted request is expected).
        const cdp = await context.newCDPSession(page);
        await cdp.send('Network.enable');
        const zip = fs.readFileSync(process.env.EXPORT_ZIP).toString('base64');
        const drop = (b64) => page.evaluate((b) => {
            const bytes = Uint8Array.from(atob(b), (c) => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], 'export.zip', { type: 'application/zip' }));
            document.getElementById('drop').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
        }, b64);
        await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 5, downloadThroughput: -1, uploadThroughput: 16 * 1024 });
        out.allowAbort = true;
        await drop(zip);
        await page.waitForFunction(() => { const b = document.getElementById('import-progress'); return b && b.value > 0.05; }, null, { timeout: 60000 });
        await page.click('#import-out button:has-text("Cancel")');
        await page.waitForFunction(() => /cancelled/.test((document.getElementById('import-status') || {}).textContent || ''), null, { timeout: 30000 });
        out.cancelled = await page.textContent('#import-status');
        out.allowAbort = false;
        await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 5, downloadThroughput: -1, uploadThroughput: 96 * 1024 });
        await drop(zip);
        const t0 = Date.now();
        while (Date.now() - t0 < 120000) {
            const p = await page.evaluate(() => {
                const b = document.getElementById('import-progress');
                const s = document.getElementById('import-status');
                return { v: b ? b.value : null, text: s ? s.textContent : '' };
            });
            if (!out.progress.length || out.progress[out.progress.length - 1].v !== p.v) out.progress.push(p);
            if (p.v === 1) break;
            await page.waitForTimeout(100);
        }
        await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
        await page.waitForSelector('#import-summary', { timeout: 60000 });
        out.summary = await page.textContent('#import-summary');
        await page.waitForSelector('#see-insight', { timeout: 150000 });
        await page.screenshot({ path: path.join(art, 'web-import-done.png'), fullPage: true });

        // Every view at desktop width, then at phone width.
        await visitAll(page, out, '');
        out.actogram_marks = await (async () => { await show(page, 'rhythm'); return page.$eval('#actogram path.acto', (p) => p.getAttribute('d').split('M').length - 1); })();
        await page.setViewportSize({ width: 390, height: 844 });
        await visitAll(page, out, '-390');
        out.overflow_390 = await page.evaluate(() => document.documentElement.scrollWidth);
        out.overflow_what = await page.evaluate(() => [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > 391 && !(e.parentElement && e.parentElement.closest('nav, .scroll, .scroll-x')))
            .slice(0, 5).map((e) => e.tagName + '.' + e.className + '#' + e.id + ' ' + Math.round(e.getBoundingClientRect().right))
            .concat((() => {
                const w = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
                const r = document.createRange(), hits = [];
                while (w.nextNode()) {
                    r.selectNodeContents(w.currentNode);
                    const b = r.getBoundingClientRect();
                    if (b.right > 391 && !w.currentNode.parentElement.closest('nav, .scroll, .scroll-x')) hits.push(w.currentNode.textContent.slice(0, 40) + ' ' + Math.round(b.right));
                }
                return hits.slice(0, 5);
            })()));
        await page.setViewportSize({ width: 1280, height: 900 });

        // The chat.
        await show(page, 'insights');
        await page.waitForFunction(() => document.querySelector('#chat-q') !== null);
        for (let i = 0; i < 50 && !out.chat_answer; i++) {
            await page.fill('#chat-q', 'How did I sleep?');
            await page.click('.chat-form button[type=submit]');
            try {
                await page.waitForSelector('.msg.assistant', { timeout: 3000 });
                out.chat_answer = await page.textContent('.msg.assistant');
            } catch (e) { /* the socket may still be connecting */ }
        }
        await page.screenshot({ path: path.join(art, 'web-chat.png'), fullPage: true });

        // Export, delete the upload, erase the account.
        await show(page, 'data');
        for (const kind of ['ndjson', 'csv']) {
            const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#export-' + kind)]);
            const file = path.join(art, 'web-export.' + kind);
            await dl.saveAs(file);
            out['export_' + kind] = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim()).length;
        }
        out.uploads_listed = await page.$$eval('#uploads tbody tr', (rs) => rs.map((r) => r.textContent));
        for (let i = 0; i < 5 && (await page.$('#uploads')); i++) {
            const before = await page.evaluate(() => document.body.dataset.ready);
            await page.click('#uploads button:has-text("Delete")');
            await page.click('#uploads button:has-text("Confirm delete")');
            await page.waitForFunction((b) => document.body.dataset.view === 'data' && document.body.dataset.ready !== b, before, { timeout: 30000 });
        }
        out.after_delete = await page.textContent('main');
        await page.screenshot({ path: path.join(art, 'web-data-after-delete.png'), fullPage: true });
        await page.fill('#erase-email', email);
        await page.click('form.erase button[type=submit]');
        await page.waitForSelector('form.auth', { timeout: 30000 });
        out.after_erase = await page.textContent('main');
        out.storage_after = await page.evaluate(() => localStorage.length + sessionStorage.length);
    } catch (e) {
        // Say what the page showed and what went wrong before failing.
        if (page) await page.screenshot({ path: path.join(art, 'web-failure.png'), fullPage: true }).catch(() => null);
        const shown = page ? await page.textContent('body').catch(() => '') : '';
        throw new Error(String(e && e.stack || e) + '\nproblems: ' + JSON.stringify(out.problems) + '\npage: ' + shown.slice(0, 1500));
    } finally {
        await browser.close();
    }
    process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => { process.stderr.write(String(e && e.stack || e) + '\n'); process.exit(1); });
