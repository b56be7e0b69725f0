// OIDC sign-in in the web app (issue 20), in headless Chromium (playwright-core,
// the system's chromium): the sign-in page lists the configured provider, a
// click goes through the fake provider (another site: localhost vs 127.0.0.1)
// and back, and the page ends signed in with its access token from the cookie
// refresh; a declined sign-in comes back with its error shown. Prints one
// JSON line for test_web_oidc.py. Environment: PLAYWRIGHT_CORE, AXE_CORE,
// CHROMIUM, BASE_URL, IDP_URL, ARTIFACTS.
'use strict';
const fs = require('fs');
const path = require('path');
const http = require('http');
const { chromium } = require(process.env.PLAYWRIGHT_CORE);

const base = process.env.BASE_URL;
const idp = process.env.IDP_URL;
const art = process.env.ARTIFACTS;
const axeSource = fs.readFileSync(path.join(process.env.AXE_CORE, 'axe.min.js'), 'utf8');

async function axe(page) {
    await page.evaluate(axeSource);
    const r = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
    return r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => v.id);
}

function control(q) {
    return new Promise((resolve, reject) => {
        http.get(idp + '/_control?' + q, (res) => { res.resume(); res.on('end', resolve); }).on('error', reject);
    });
}

function watch(page, out) {
    page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') out.problems.push('console ' + m.type() + ': ' + m.text()); });
    page.on('pageerror', (e) => out.problems.push('pageerror: ' + e.message));
    page.on('requestfailed', (r) => out.problems.push('requestfailed: ' + r.url() + ' ' + (r.failure() || {}).errorText));
    page.on('response', (r) => {
        if (r.status() >= 400) out.problems.push('HTTP ' + r.status() + ': ' + r.url());
        if (r.url().startsWith(base + '/api/v1/auth/')) out.auth_calls.push(r.request().method() + ' ' + r.url().slice(base.length).split('?')[0] + ' ' + r.status());
    });
    page.on('request', (r) => {
        const u = r.url();
        if (u.startsWith(idp)) out.idp_requests.push(u.slice(idp.length).split('?')[0]);
        else if (!u.startsWith(base) && !u.startsWith('data:')) out.outside.push(u);
    });
}

async function storage(page) {
    return page.evaluate(() => {
        const all = {};
        for (const st of [localStorage, sessionStorage]) for (let i = 0; i < st.length; i++) all[st.key(i)] = st.getItem(st.key(i));
        return all;
    });
}

async function main() {
    const browser = await chromium.launch({
        executablePath: process.env.CHROMIUM,
        headless: true,
        args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
            '--disable-sync', '--no-first-run', '--disable-dev-shm-usage', '--disable-quic'],
    });
    const out = { problems: [], outside: [], idp_requests: [], auth_calls: [] };
    try {
        // 1. Sign in with the provider.
        const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
        const page = await context.newPage();
        watch(page, out);
        await page.goto(base + '/', { waitUntil: 'load' });
        await page.waitForSelector('a[data-provider="test"]');
        out.button = (await page.textContent('a[data-provider="test"]')).trim();
        out.axe_signin = await axe(page);
        await page.screenshot({ path: path.join(art, 'web-oidc-signin.png') });
        await page.click('a[data-provider="test"]');
        await page.waitForFunction(() => document.body.dataset.view === 'overview', null, { timeout: 30000 });
        out.final_url = page.url();
        out.signed_in_text = await page.evaluate(() => document.body.innerText);
        out.cookies = (await context.cookies()).map((c) => ({ name: c.name, domain: c.domain, httpOnly: c.httpOnly, secure: c.secure, sameSite: c.sameSite, path: c.path }));
        out.document_cookie = await page.evaluate(() => document.cookie);
        out.storage = await storage(page);
        // A reload keeps the session through the cookie refresh alone.
        await page.reload({ waitUntil: 'load' });
        await page.waitForFunction(() => document.body.dataset.view === 'overview', null, { timeout: 30000 });
        out.after_reload = page.url();
        await page.screenshot({ path: path.join(art, 'web-oidc-signed-in.png') });
        await context.close();

        // 2. The person declines at the provider: back on the sign-in page
        // with the reason shown.
        await control('deny=1');
        const c2 = await browser.newContext({ viewport: { width: 390, height: 844 } });
        const p2 = await c2.newPage();
        watch(p2, out);
        await p2.goto(base + '/', { waitUntil: 'load' });
        await p2.waitForSelector('a[data-provider="test"]');
        await p2.click('a[data-provider="test"]');
        await p2.waitForFunction(() => location.hash.startsWith('#/signin?error=') && document.body.dataset.view === 'signin' &&
            document.getElementById('signin-error') && document.getElementById('signin-error').textContent.length > 0, null, { timeout: 30000 });
        out.denied_url = p2.url();
        out.denied_text = await p2.textContent('#signin-error');
        out.axe_denied = await axe(p2);
        out.storage_denied = await storage(p2);
        out.cookies_denied = (await c2.cookies()).map((c) => c.name);
        await p2.screenshot({ path: path.join(art, 'web-oidc-denied-390.png') });
        await control('deny=0');
        await c2.close();
    } catch (e) {
        out.problems.push('driver: ' + (e.stack || e.message));
    } finally {
        await browser.close();
    }
    process.stdout.write(JSON.stringify(out) + '\n');
}

main();
