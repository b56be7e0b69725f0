// Drop a research recording on the web app's import page (issue 20), in
// headless Chromium (playwright-core, the system's chromium): sign up, drop
// the .AWD and cancel it half-way, drop it again (upload throttled so the
// progress bar moves), read the summary,
// wait for the analysis and its insight, drop it again (all duplicates),
// run axe-core on the import page at 1280 and 390 px, see the recording's
// actogram on Rhythm, with screenshots.
// Prints one JSON line for test_web_recording.py. Environment:
// PLAYWRIGHT_CORE, AXE_CORE, CHROMIUM, BASE_URL, RECORDING (a file),
// ARTIFACTS (a directory), EMAIL, PASSWORD.
'use strict';
const fs = require('fs');
const path = require('path');
const { chromium } = require(process.env.PLAYWRIGHT_CORE);

const base = process.env.BASE_URL;
const art = process.env.ARTIFACTS;
const axeSource = fs.readFileSync(path.join(process.env.AXE_CORE, 'axe.min.js'), 'utf8');

async function axe(page) {
    const has = await page.evaluate(() => typeof window.axe !== 'undefined');
    if (!has) await page.evaluate(axeSource);
    const r = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
    return r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
        .map((v) => v.id + ' (' + v.impact + '): ' + v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', '));
}

async function main() {
    const browser = await chromium.launch({
        executablePath: process.env.CHROMIUM,
        headless: true,
        args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
            '--disable-sync', '--no-first-run', '--disable-dev-shm-usage', '--disable-quic'],
    });
    const out = { problems: [], outside: [], progress: [], requests: [] };
    try {
        const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, timezoneId: 'Europe/Berlin' });
        const page = await context.newPage();
        page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') out.problems.push('console ' + m.type() + ': ' + m.text()); });
        page.on('pageerror', (e) => out.problems.push('pageerror: ' + e.message));
        page.on('requestfailed', (r) => {
            const why = (r.failure() || {}).errorText;
            if (out.allowAbort && r.url().includes('/api/v1/recordings') && /ABORTED/.test(why)) return;
            if (!r.url().startsWith('blob:')) out.problems.push('requestfailed: ' + r.url() + ' ' + why);
        });
        page.on('response', (r) => { if (r.status() >= 400) out.problems.push('HTTP ' + r.status() + ': ' + r.url()); });
        page.on('request', (r) => {
            const u = r.url();
            if (!u.startsWith(base) && !u.startsWith('data:') && !u.startsWith('blob:') && !u.startsWith(base.replace('http', 'ws'))) out.outside.push(u);
            if (r.method() === 'POST' && u.includes('/api/v1/recordings')) out.requests.push(u.slice(base.length));
        });

        await page.goto(base + '/', { waitUntil: 'load' });
        await page.waitForSelector('form.auth button[type=submit]');
        await page.click('a[href="#/register"]');
        await page.waitForSelector('#first_name');
        await page.fill('#first_name', 'Rae');
        await page.fill('#last_name', 'Searcher');
        await page.fill('#email', process.env.EMAIL);
        await page.fill('#password', process.env.PASSWORD);
        await page.check('#terms');
        await page.click('form.auth button[type=submit]');
        await page.waitForFunction(() => document.body.dataset.view === 'import', null, { timeout: 30000 });
        out.drop_text = await page.textContent('#drop');

        const name = path.basename(process.env.RECORDING);
        const b64 = fs.readFileSync(process.env.RECORDING).toString('base64');
        // A dropped file has no MIME type for .AWD: as a browser gives it.
        const drop = () => page.evaluate(([b, n]) => {
            const bytes = Uint8Array.from(atob(b), (c) => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], n, { type: '' }));
            document.getElementById('drop').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
        }, [b64, name]);
        const cdp = await context.newCDPSession(page);
        await cdp.send('Network.enable');
        // First a drop cancelled half-way: the request is aborted, nothing stored.
        await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 5, downloadThroughput: -1, uploadThroughput: 2 * 1024 });
        out.allowAbort = true;
        await drop();
        await page.waitForFunction(() => { const b = document.getElementById('import-progress'); return b && b.value > 0.05; }, null, { timeout: 60000 });
        await page.click('#import-out button:has-text("Cancel")');
        await page.waitForFunction(() => /cancelled/.test((document.getElementById('import-status') || {}).textContent || ''), null, { timeout: 30000 });
        out.cancelled = await page.textContent('#import-status');
        out.allowAbort = false;
        await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 5, downloadThroughput: -1, uploadThroughput: 12 * 1024 });
        await drop();
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
        out.status = await page.textContent('#import-status');
        out.axe = await axe(page);
        await page.screenshot({ path: path.join(art, 'web-recording-import.png'), fullPage: true });
        await page.setViewportSize({ width: 390, height: 844 });
        out.axe_390 = await axe(page);
        out.overflow_390 = await page.evaluate(() => document.documentElement.scrollWidth);
        await page.screenshot({ path: path.join(art, 'web-recording-import-390.png'), fullPage: true });
        await page.setViewportSize({ width: 1280, height: 900 });

        // The same recording again: every epoch a duplicate.
        await page.evaluate(() => { location.hash = '#/data'; });
        await page.waitForFunction(() => document.body.dataset.view === 'data', null, { timeout: 30000 });
        await page.evaluate(() => { location.hash = '#/import'; });
        await page.waitForFunction(() => document.body.dataset.view === 'import' && document.getElementById('drop'), null, { timeout: 30000 });
        await drop();
        await page.waitForSelector('#import-summary', { timeout: 60000 });
        out.summary_again = await page.textContent('#import-summary');
        // Rhythm: without steps, the recording's counts draw the actogram.
        await page.evaluate(() => { location.hash = '#/rhythm'; });
        await page.waitForFunction(() => document.body.dataset.view === 'rhythm' && document.getElementById('actogram'), null, { timeout: 30000 });
        out.actogram_marks = await page.$eval('#actogram path.acto', (p) => (p.getAttribute('d') || '').split('M').length - 1);
        out.rhythm_text = (await page.textContent('main')).slice(0, 2000);
        out.axe_rhythm = await axe(page);
        await page.screenshot({ path: path.join(art, 'web-recording-rhythm.png'), fullPage: true });
        // Your data lists the uploads with their source.
        await page.evaluate(() => { location.hash = '#/data'; });
        await page.waitForFunction(() => document.body.dataset.view === 'data', null, { timeout: 30000 });
        await page.waitForTimeout(500);
        out.data_text = (await page.textContent('main')).slice(0, 3000);
        out.axe_data = await axe(page);
    } finally {
        await browser.close();
    }
    process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => { process.stderr.write(String(e && e.stack || e) + '\n'); process.exit(1); });
