// Drive /docs in headless Chromium (playwright-core, the system's chromium):
// wait for Swagger UI to list the operations, run "Try it out" on /liveness,
// save a screenshot. Prints one JSON line for test_docs_browser.py to judge.
// Environment: PLAYWRIGHT_CORE (the module's directory), CHROMIUM, BASE_URL,
// SCREENSHOT.
'use strict';
const { chromium } = require(process.env.PLAYWRIGHT_CORE);

const base = process.env.BASE_URL;

async function main() {
    const browser = await chromium.launch({
        executablePath: process.env.CHROMIUM,
        headless: true,
        args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
               '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
    });
    const out = { problems: [], outside: [] };
    try {
        const page = await browser.newPage({ viewport: { width: 1280, height: 1600 } });
        page.on('console', (m) => { if (m.type() === 'error') out.problems.push('console: ' + m.text()); });
        page.on('pageerror', (e) => out.problems.push('pageerror: ' + e.message));
        page.on('requestfailed', (r) => out.problems.push('requestfailed: ' + r.url()));
        page.on('request', (r) => {
            const u = r.url();
            if (!u.startsWith(base) && !u.startsWith('data:')) out.outside.push(u);
        });
        const res = await page.goto(base + '/docs', { waitUntil: 'load' });
        out.page_status = res.status();
        await page.waitForSelector('.opblock', { timeout: 30000 });
        out.operations = await page.$$eval('.opblock', (els) => els.map((e) => e.id));
        out.title = await page.locator('.info .title').first().textContent();
        const block = page.locator('#operations-probes-liveness');
        await block.locator('.opblock-summary').first().click();
        await block.locator('button.try-out__btn').click();
        await block.locator('button.execute').click();
        const status = block.locator('.live-responses-table tr.response .response-col_status').first();
        await status.waitFor({ timeout: 30000 });
        out.try_status = (await status.textContent()).trim();
        out.try_body = (await block.locator('.live-responses-table tr.response .response-col_description pre').first()
            .textContent()).trim();
        await page.screenshot({ path: process.env.SCREENSHOT, fullPage: false });
    } finally {
        await browser.close();
    }
    process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => { process.stderr.write(String(e && e.stack || e) + '\n'); process.exit(1); });
