#!/usr/bin/env node
// Opens the server's Swagger UI (/docs/) in headless Chromium as a user
// would, and uses it: expands POST /predict, clicks "Try it out", executes
// the pre-filled example (which must be the README's, examples/predict.json)
// and reads the prediction the page shows; then executes an incomplete body
// and reads the 4xx error naming a field.
//
// The page is opened under a made-up host name mapped to the server's
// address (Chromium's --host-resolver-rules), not as 127.0.0.1: Swagger UI
// behaves differently on loopback (it skips its online validator badge), and
// what must hold is what a deployed server's users get. Any request to a URL
// outside the server (a CDN, a validator, fonts) is blocked and fails the
// check.
//
// Usage: node try-it-out.mjs BASE_URL SCREENSHOT.png
// Writes SCREENSHOT.png (the whole page), and next to it
// SCREENSHOT-try-it-out.png and SCREENSHOT-try-it-out-error.png (the
// operation after each Execute). CHROMIUM overrides the browser
// (default /usr/bin/chromium); BROWSER_TIMEOUT_MS each wait (default 60000).
import { readFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import puppeteer from 'puppeteer-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const exampleFile = path.resolve(here, '../../examples/predict.json');
const chromium = process.env.CHROMIUM || '/usr/bin/chromium';
const timeout = Number(process.env.BROWSER_TIMEOUT_MS || 60000);
// The name the page is opened under; `.test` is reserved (RFC 2606).
const docsHost = 'docs.revspend.test';

class CheckFailed extends Error {}
const fail = (msg) => {
  throw new CheckFailed(msg);
};
// What the check is doing, for the message when a wait times out.
let stage = 'starting Chromium';

const [serverArg, shotArg] = process.argv.slice(2);
if (!serverArg || !shotArg) {
  console.error('usage: try-it-out.mjs BASE_URL SCREENSHOT.png');
  process.exit(2);
}
const server = new URL(serverArg);
if (server.protocol !== 'http:') {
  console.error(`try-it-out: ${serverArg}: expected an http:// URL`);
  process.exit(2);
}
const port = server.port || '80';
const base = `http://${docsHost}:${port}`;
const shot = path.resolve(shotArg);
const shotStem = shot.replace(/\.png$/i, '');
const predictUrl = `${base}/predict`;
const op = '#operations-predict-predict';

async function main() {
  const example = JSON.parse(await readFile(exampleFile, 'utf8'));
  await mkdir(path.dirname(shot), { recursive: true });
  const browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    timeout,
    protocolTimeout: timeout * 3,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--hide-scrollbars',
      '--no-proxy-server',
      `--host-resolver-rules=MAP ${docsHost} ${server.hostname}`,
    ],
  });
  try {
    await check(browser, example);
  } finally {
    await browser.close();
  }
}

async function check(browser, example) {
  const page = await browser.newPage();
  page.setDefaultTimeout(timeout);
  await page.setViewport({ width: 1280, height: 900 });

  const outside = [];
  const problems = [];
  await page.setRequestInterception(true);
  page.on('request', (req) => {
    const url = req.url();
    if (url.startsWith(`${base}/`) || url.startsWith('data:') || url.startsWith('blob:')) {
      req.continue();
    } else {
      outside.push(url);
      req.abort('blockedbyclient');
    }
  });
  page.on('response', (res) => {
    const url = res.url();
    const ours = url.startsWith(`${base}/docs/`) || url === `${base}/openapi.json`;
    if (ours && res.status() >= 400) problems.push(`${url} answered ${res.status()}`);
  });
  page.on('pageerror', (err) => problems.push(`script error on the page: ${err.message}`));
  // The incomplete body's 400 is expected; Chromium logs it as a failed load.
  let expect4xx = false;
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    if (expect4xx && msg.text().startsWith('Failed to load resource: the server responded with a status of 4')) return;
    console.error(`try-it-out: browser console: ${msg.text()}`);
  });
  const checkClean = (when) => {
    if (outside.length) fail(`${when}: the page requested outside the server: ${outside.join(', ')}`);
    if (problems.length) fail(`${when}: ${problems.join('; ')}`);
  };

  stage = `opening ${base}/docs/ (${docsHost} is ${server.host})`;
  const docs = await page.goto(`${base}/docs/`, { waitUntil: 'load' });
  if (!docs || docs.status() !== 200) fail(`${base}/docs/ answered ${docs && docs.status()}`);
  stage = 'waiting for Swagger UI to render';
  await page.waitForSelector('.swagger-ui .information-container .info .title');
  await page.waitForSelector(`${op} .opblock-summary`);
  const rendered = await page.evaluate(() => ({
    title: document.querySelector('.swagger-ui .info .title')?.textContent.trim(),
    operations: document.querySelectorAll('.swagger-ui .opblock').length,
    errors: [...document.querySelectorAll('.swagger-ui .errors-wrapper')].map((e) => e.textContent.trim()),
  }));
  if (!rendered.title?.startsWith('revspend')) fail(`unexpected title ${JSON.stringify(rendered.title)}`);
  if (rendered.errors.length) fail(`Swagger UI reports errors: ${rendered.errors.join(' | ')}`);
  // Images (the logo) and fonts settle before the picture is taken.
  await page.waitForNetworkIdle({ idleTime: 300 });
  checkClean('rendering /docs/');
  await page.screenshot({ path: shot, fullPage: true });
  console.log(`try-it-out: /docs/ rendered "${rendered.title}" with ${rendered.operations} operations; screenshot ${shot}`);

  // POST /predict, Try it out, with the pre-filled example.
  stage = 'expanding POST /predict and clicking Try it out';
  await page.click(`${op} .opblock-summary-control`);
  await page.waitForSelector(`${op}.is-open .try-out__btn`);
  await page.click(`${op} .try-out__btn`);
  const textarea = `${op} textarea.body-param__text`;
  await page.waitForSelector(textarea);
  const prefilled = await page.$eval(textarea, (t) => t.value);
  let prefilledJson;
  try {
    prefilledJson = JSON.parse(prefilled);
  } catch (e) {
    fail(`the pre-filled request body is not JSON (${e.message}): ${prefilled}`);
  }
  if (!sameJson(prefilledJson, example)) {
    fail(
      `the pre-filled example is not examples/predict.json (the README's):\n` +
        `  shown:    ${JSON.stringify(prefilledJson)}\n  expected: ${JSON.stringify(example)}`,
    );
  }
  console.log('try-it-out: the pre-filled request body is examples/predict.json');

  stage = 'executing the example';
  const ok = await execute(page, example);
  if (ok.status !== 200) fail(`POST /predict with the example: the page shows ${ok.status}, expected 200: ${ok.text}`);
  const p = ok.json;
  if (typeof p.probability !== 'number' || !(p.probability >= 0 && p.probability <= 1)) {
    fail(`probability ${JSON.stringify(p.probability)} is not a number in [0, 1]`);
  }
  if (typeof p.is_revenge_spending !== 'boolean') fail(`is_revenge_spending ${JSON.stringify(p.is_revenge_spending)} is not a boolean`);
  if (typeof p.prediction_id !== 'string' || !/^[0-9a-f-]{36}$/.test(p.prediction_id)) {
    fail(`prediction_id ${JSON.stringify(p.prediction_id)} is not a UUID`);
  }
  console.log(
    `try-it-out: Execute -> ${ok.status}: probability ${p.probability}, is_revenge_spending ${p.is_revenge_spending}, ` +
      `prediction_id ${p.prediction_id}, model_version ${p.model_version}`,
  );
  await (await page.$(op)).screenshot({ path: `${shotStem}-try-it-out.png` });

  // An incomplete body: the page shows the 4xx and the field at fault.
  const bad = { id: '1' };
  expect4xx = true;
  stage = `executing ${JSON.stringify(bad)}`;
  await page.click(`${op} .btn-clear`);
  await page.waitForSelector(`${op} .live-responses-table`, { hidden: true });
  await page.$eval(textarea, (t) => t.select());
  await page.type(textarea, JSON.stringify(bad));
  const err = await execute(page, bad);
  if (!(err.status >= 400 && err.status < 500)) fail(`POST /predict with ${JSON.stringify(bad)}: the page shows ${err.status}, expected a 4xx: ${err.text}`);
  const { error, field } = err.json;
  if (typeof error !== 'string' || !error) fail(`the 4xx body has no error message: ${err.text}`);
  if (typeof field !== 'string' || !field || !error.includes(field)) {
    fail(`the 4xx body does not name the field at fault: ${err.text}`);
  }
  console.log(`try-it-out: Execute ${JSON.stringify(bad)} -> ${err.status}: field "${field}": ${error}`);
  await (await page.$(op)).screenshot({ path: `${shotStem}-try-it-out-error.png` });

  checkClean('using Try it out');
}

// Clicks Execute and returns the response as the page shows it, after
// checking the browser sent `body` and the page shows what the server
// answered.
async function execute(page, body) {
  const sent = page.waitForRequest((r) => r.url() === predictUrl && r.method() === 'POST');
  const answered = page.waitForResponse((r) => r.url() === predictUrl && r.request().method() === 'POST');
  await page.click(`${op} button.execute`);
  const [request, response] = await Promise.all([sent, answered]);
  let sentJson;
  try {
    sentJson = JSON.parse(request.postData() ?? '');
  } catch {
    fail(`the page sent a body that is not JSON: ${request.postData()}`);
  }
  if (!sameJson(sentJson, body)) fail(`the page sent ${request.postData()}, expected ${JSON.stringify(body)}`);
  const server = await response.text();

  await page.waitForSelector(`${op} .live-responses-table .response .response-col_status`);
  const shown = await page.$eval(op, (el) => {
    const live = el.querySelector('.live-responses-table');
    const status = live.querySelector('.response .response-col_status').textContent.trim();
    const h5 = [...live.querySelectorAll('h5')].find((h) => h.textContent.trim() === 'Response body');
    const pre = h5 && h5.parentElement.querySelector('pre');
    return { status, text: pre ? pre.textContent : null };
  });
  const status = Number.parseInt(shown.status, 10);
  if (status !== response.status()) fail(`the page shows code ${shown.status}, the server answered ${response.status()}`);
  if (shown.text === null) fail(`the page shows no response body (code ${status}); the server answered ${server}`);
  let json;
  try {
    json = JSON.parse(shown.text);
  } catch (e) {
    fail(`the response body the page shows is not JSON (${e.message}): ${shown.text}`);
  }
  if (!sameJson(json, JSON.parse(server))) fail(`the page shows ${shown.text}, the server answered ${server}`);
  return { status, json, text: JSON.stringify(json) };
}

function sameJson(a, b) {
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

function canonical(v) {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical(v[k])]));
  }
  return v;
}

const started = Date.now();
// A last resort against a hang no single wait covers; puppeteer kills the
// browser when the process exits.
setTimeout(() => {
  console.error(`try-it-out FAILED: not done after ${(timeout * 5) / 1000} s`);
  process.exit(1);
}, timeout * 5).unref();
main().then(
  () => console.log(`try-it-out: passed in ${((Date.now() - started) / 1000).toFixed(1)} s`),
  (e) => {
    const detail = e instanceof CheckFailed ? e.message : `${stage}: ${process.env.DEBUG ? e.stack : e.message}${e.cause ? ` (${e.cause.message})` : ''}`;
    console.error(`try-it-out FAILED: ${detail}`);
    process.exit(1);
  },
);
