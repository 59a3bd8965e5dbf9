// Drives patd's web page (/ui/, issue 14) in Debian's chromium through playwright-core, as a person
// would: sign in by link, create, copy, rename, rotate and delete a token, sign out; the refusals
// (no csrf field, a reused link, an idle session, a USER on the admin pages); an axe-core scan and
// phone and desktop screenshots of every page. `ui-checks/run` sets the environment and starts the
// main server. Prints one line per check and "ui-checks: N passed, N failed"; exits 1 on a failure.
import { check, broke, expect, expectEqual, summary } from './report.mjs';
import { chromium } from 'playwright-core';
import axe from 'axe-core';
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';

const run = promisify(execFile);

function need(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`ui-checks: ${name} is not set; run ui-checks/run`);
    process.exit(2);
  }
  return value;
}
const PATD = need('PATD_BIN'); // the patd binary
const WORK = need('PATD_WORK'); // a scratch directory: databases, server logs, the pid file
const SHOTS = need('PATD_SCREENSHOTS'); // where the screenshots go
const CHROMIUM = process.env.PATD_CHROMIUM || '/usr/bin/chromium';
const main = { name: 'main', url: need('PATD_URL'), db: need('PATD_DB') };

// The headers the contract puts on every /ui/ answer.
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; " +
  "frame-ancestors 'none'; base-uri 'none'";
const HEADERS = {
  'content-security-policy': CSP,
  'cache-control': 'no-store',
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
};
// Every page the scan and the screenshots must reach.
const PAGES = [
  'sign-in', 'link-landing', 'link-not-valid', 'tokens', 'tokens-empty', 'new-token',
  'new-token-error', 'secret', 'rename', 'rotate', 'delete', 'sign-out', 'admin-tokens',
  'admin-audit', 'admin-webhooks', 'webhook-secret', 'webhook-delete', 'not-allowed',
];
const PHONE = { width: 390, height: 844 };
const DESKTOP = { width: 1280, height: 800 };

// ---- reporting -------------------------------------------------------------------------------


// ---- servers and the command line ------------------------------------------------------------

const children = [];
// Starts `patd serve` on a fresh SQLite file and a free port on 127.0.0.1, with extra flags (the
// idle-timeout check uses `--session-idle-timeout`; an OpenID Connect check will pass its
// `--oidc-*` flags here). Resolves to { name, url, db } once the server logs where it listens.
async function startPatd(name, flags = []) {
  const db = `sqlite://${WORK}/${name}.db`;
  const args = ['serve', '--listen', '127.0.0.1:0', '--database', db, '--rate-limit', 'off', ...flags];
  const child = spawn(PATD, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  fs.appendFileSync(`${WORK}/pids`, `${child.pid}\n`); // ui-checks/run's trap kills it too
  child.stdout.pipe(fs.createWriteStream(`${WORK}/${name}.out`));
  const log = fs.createWriteStream(`${WORK}/${name}.err`);
  child.stderr.pipe(log);
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`patd ${name} did not start in 30 s:\n${seen}`)), 30_000);
    const onData = (chunk) => {
      seen += chunk;
      const found = seen.match(/patd listening on (https?:\/\/[^\s\x1b"]+)/);
      if (found) {
        clearTimeout(timer);
        child.stderr.off('data', onData);
        resolve({ name, url: found[1].replace(/\/$/, ''), db });
      }
    };
    child.stderr.on('data', onData);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`patd ${name} did not start: ${error.message}`));
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`patd ${name} exited (${code}) before listening:\n${seen}`));
    });
  });
}
function stopServers() {
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
}
process.on('exit', stopServers);

async function patd(...args) {
  const { stdout } = await run(PATD, args, { timeout: 30_000 });
  return stdout;
}
// A fresh single-use sign-in link for an identity of a server.
async function signInLink(server, identity) {
  const out = await patd('identity', 'sign-in-link', identity, '--database', server.db, '--public-url', server.url);
  const link = out.trim().split('\n').pop().trim();
  expect(link.startsWith(`${server.url}/ui/sign-in/link?`), `sign-in-link printed ${JSON.stringify(out)}`);
  return link;
}

// ---- HTTP from the test itself ---------------------------------------------------------------

async function exchange(server, clientId, clientSecret) {
  const response = await fetch(`${server.url}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret }),
  });
  const text = await response.text();
  let body = null;
  try { body = JSON.parse(text); } catch { /* not JSON: left null */ }
  return { status: response.status, body, text };
}
async function cookieHeader(context, server) {
  const cookies = await context.cookies(server.url);
  expect(cookies.length > 0, `the browser holds no cookie for ${server.url}`);
  return cookies.map((c) => `${c.name}=${c.value}`).join('; ');
}
async function getManual(url, cookie) {
  return fetch(url, { redirect: 'manual', headers: cookie ? { cookie } : {} });
}
function expectRedirectToSignIn(response, server, what) {
  expectEqual(response.status, 303, `${what}: status`);
  const location = new URL(response.headers.get('location') ?? '', server.url);
  expectEqual(location.href, `${server.url}/ui/sign-in`, `${what}: Location`);
}

// ---- the browser -----------------------------------------------------------------------------

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
const consoleErrors = [];
const headerProblems = [];
const scans = new Map(); // page key → serious or critical axe violations (an array), or an Error
const shots = new Set();
const sideways = []; // what scrolls sideways at the phone width
const unreachable = []; // controls the Tab key never reached

async function newContext(server) {
  const context = await browser.newContext({ viewport: DESKTOP, baseURL: server.url });
  context.setDefaultTimeout(10_000);
  const page = await context.newPage();
  // Console errors (a CSP violation is one), except Chromium's "Failed to load resource" line,
  // which every 4xx document the checks ask for prints: failed subresources are caught below.
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) consoleErrors.push(`${page.url()}: ${m.text()}`);
  });
  page.on('requestfinished', async (request) => {
    if (request.isNavigationRequest() || new URL(request.url()).pathname === '/favicon.ico') return;
    const response = await request.response();
    if (response && response.status() >= 400) consoleErrors.push(`${page.url()}: ${request.url()} answered ${response.status()}`);
  });
  page.on('requestfailed', (request) => {
    if (!request.isNavigationRequest() && new URL(request.url()).pathname !== '/favicon.ico') consoleErrors.push(`${page.url()}: ${request.url()} failed: ${request.failure()?.errorText}`);
  });
  page.on('pageerror', (e) => consoleErrors.push(`${page.url()}: ${e.message}`));
  // The last document the main frame received, for the header check.
  page.on('response', (r) => {
    if (r.request().isNavigationRequest() && r.frame() === page.mainFrame()) page.lastDocument = r;
  });
  return { context, page };
}

// Clicks something that submits a form or follows a link; resolves to the final document's
// response (after redirects).
async function navigateBy(page, locator) {
  const [response] = await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), locator.click()]);
  return response;
}
// The status of the first hop of a navigation (e.g. 303 before the page it led to).
async function firstStatus(response) {
  let request = response.request();
  while (request.redirectedFrom()) request = request.redirectedFrom();
  return (await request.response()).status();
}
async function h1(page) {
  return (await page.locator('h1').first().textContent({ timeout: 5_000 }))?.trim();
}
async function expectPage(page, heading, path) {
  if (path !== undefined) expectEqual(new URL(page.url()).pathname, path, 'path');
  expectEqual(await h1(page), heading, `h1 on ${new URL(page.url()).pathname}`);
}

// Scans the page with axe-core and screenshots it at both widths. axe.source is evaluated through
// the DevTools protocol, which the page's Content-Security-Policy does not govern, so the flow
// runs with the CSP in force (and copy.js must work under it).
async function snapshot(page, key) {
  const response = page.lastDocument;
  if (response) {
    const headers = response.headers();
    for (const [name, wanted] of Object.entries(HEADERS)) {
      if (headers[name] !== wanted) headerProblems.push(`${key} (${new URL(response.url()).pathname}): ${name}: ${JSON.stringify(headers[name] ?? null)}`);
    }
  }
  // At each width: the axe scan (the phone layout differs: tables become cards), then the
  // full-page screenshot.
  fs.mkdirSync(SHOTS, { recursive: true });
  const found = [];
  let failure = null;
  for (const [label, size] of [['phone', PHONE], ['desktop', DESKTOP]]) {
    await page.setViewportSize(size);
    try {
      if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(axe.source);
      const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
      if (result.passes.length === 0) throw new Error('axe-core ran no rule that passed: it did not see the page');
      for (const v of result.violations) if (v.impact === 'serious' || v.impact === 'critical') found.push({ ...v, width: label });
    } catch (error) {
      failure ??= error;
    }
    if (label === 'phone') {
      // Nothing may scroll sideways on a phone: not the page, not a box (a long unbroken value
      // in a card overflows its .table-wrap, which axe then flags as a scrollable region).
      const wide = await page.evaluate(() => {
        const found = [];
        const root = document.scrollingElement;
        if (root.scrollWidth > root.clientWidth) found.push(`the page is ${root.scrollWidth}px wide`);
        for (const element of document.querySelectorAll('body *')) {
          const style = getComputedStyle(element);
          if (['auto', 'scroll'].includes(style.overflowX) && element.scrollWidth > element.clientWidth + 1 && element.tagName !== 'PRE') {
            found.push(`${element.tagName.toLowerCase()}${element.className ? '.' + element.className : ''} scrolls (${element.scrollWidth}px in ${element.clientWidth}px)`);
          }
        }
        return found;
      });
      for (const what of wide) sideways.push(`${key}: ${what}`);
    }
    await page.screenshot({ path: `${SHOTS}/${key}-${label}.png`, fullPage: true });
  }
  await page.setViewportSize(DESKTOP);
  // Every control can be reached by keyboard: Tab from the top of the page visits each visible
  // link, button, field and focusable region once.
  try {
    const count = await page.evaluate(() => {
      const selector = 'a[href], button, input:not([type=hidden]), select, textarea, [tabindex]:not([tabindex="-1"])';
      const controls = [...document.querySelectorAll(selector)]
        .filter((element) => !element.disabled && !element.hidden && element.getClientRects().length > 0);
      controls.forEach((element, index) => { element.dataset.kb = String(index); });
      document.activeElement?.blur();
      window.scrollTo(0, 0);
      return controls.length;
    });
    const reached = new Set();
    for (let press = 0; press < count + 5; press += 1) {
      await page.keyboard.press('Tab');
      const index = await page.evaluate(() => document.activeElement?.dataset?.kb ?? null);
      if (index !== null) reached.add(index);
    }
    const missed = await page.evaluate((seen) =>
      [...document.querySelectorAll('[data-kb]')]
        .filter((element) => !seen.includes(element.dataset.kb))
        .map((element) => `${element.tagName.toLowerCase()} "${(element.textContent || element.name || element.id || '').trim().slice(0, 40)}"`),
    [...reached]);
    for (const what of missed) unreachable.push(`${key}: ${what}`);
  } catch (error) {
    unreachable.push(`${key}: the keyboard walk failed: ${error.message}`);
  }
  scans.set(key, failure ?? found);
  shots.add(key);
}

// Opens the link in the page, checks the landing page, presses "Sign in": ends on /ui/.
async function signIn(page, server, identity, { landingKey, tokensKey, scanned } = {}) {
  const link = await signInLink(server, identity);
  if (scanned) {
    // A mail scanner fetching the link first must not burn it.
    const scan = await fetch(link, { redirect: 'manual' });
    expectEqual(scan.status, 200, 'a GET of the link before the browser');
  }
  const landing = await page.goto(link);
  expectEqual(landing.status(), 200, 'the link page status');
  await expectPage(page, 'Sign in', '/ui/sign-in/link');
  if (landingKey) await snapshot(page, landingKey);
  const response = await navigateBy(page, page.getByRole('button', { name: 'Sign in', exact: true }));
  expectEqual(await firstStatus(response), 303, 'pressing Sign in: status');
  await expectPage(page, 'Your tokens', '/ui/');
  if (tokensKey) await snapshot(page, tokensKey);
  return link;
}

function row(page, id) {
  return page.locator(`#tokens tr[data-id="${id}"]`);
}
// A row's first cell, the name (a `th scope="row"` on the pages).
async function nameCell(page, id) {
  return (await row(page, id).locator('th, td').first().textContent())?.trim();
}
async function readSecretPage(page) {
  await expectPage(page, 'Copy your new token now');
  const id = (await page.locator('#client-id').textContent())?.trim();
  const secret = (await page.locator('#client-secret').textContent())?.trim();
  expect(id && secret, `client id ${JSON.stringify(id)}, secret ${JSON.stringify(secret)}`);
  return { id, secret };
}

// ---- the checks ------------------------------------------------------------------------------

const state = {};
function needs(key, step) {
  expect(state[key] !== undefined, `needs the result of "${step}", which failed`);
  return state[key];
}

try {
  // Not signed in.
  const anon = await newContext(main);
  await check('not signed in: /ui/ answers 303 to /ui/sign-in', async () => {
    expectRedirectToSignIn(await getManual(`${main.url}/ui/`), main, 'GET /ui/');
    expectRedirectToSignIn(await getManual(`${main.url}/ui/tokens/new`), main, 'GET /ui/tokens/new');
  });
  await check('the sign-in page', async () => {
    const response = await anon.page.goto('/ui/sign-in');
    expectEqual(response.status(), 200, 'status');
    await expectPage(anon.page, 'Sign in', '/ui/sign-in');
    // OpenID Connect is not configured on this server: no link to it (the oidc check will add one).
    expectEqual(await anon.page.locator('a#oidc-sign-in').count(), 0, 'a#oidc-sign-in links');
    await snapshot(anon.page, 'sign-in');
  });
  await anon.context.close();

  // The ORG_ADMIN `admin`, bootstrapped by the server: the whole life of one token.
  const admin = await newContext(main);
  const { page } = admin;
  await check('sign in by link as admin: the link page, "Sign in", /ui/ "Your tokens"', async () => {
    await signIn(page, main, 'admin', { landingKey: 'link-landing', tokensKey: 'tokens', scanned: true });
    const cookie = (await admin.context.cookies(main.url)).find((c) => c.name === 'patd_session');
    expect(cookie, 'no patd_session cookie');
    expect(cookie.httpOnly && cookie.sameSite === 'Lax' && cookie.path === '/', `cookie ${JSON.stringify(cookie)}`);
    state.signedIn = true;
  });
  await check("admin's navigation: Your tokens, All tokens, Audit log, Webhooks, Sign out", async () => {
    needs('signedIn', 'sign in by link as admin');
    const nav = page.getByRole('navigation', { name: 'Main' });
    for (const [name, href] of [['Your tokens', '/ui/'], ['All tokens', '/ui/admin/tokens'], ['Audit log', '/ui/admin/audit'], ['Webhooks', '/ui/admin/webhooks']]) {
      expectEqual(await nav.getByRole('link', { name, exact: true }).getAttribute('href'), href, `nav link ${name}`);
    }
    // The pages put form#sign-out beside the nav, in the header.
    expect(await page.locator('header form#sign-out').getByRole('button', { name: 'Sign out' }).count() === 1, 'no form#sign-out with a "Sign out" button');
  });
  await check('the new-token form: Name, Scopes, Expires (30 days), Expiry date, Access token lifetime (43200 s)', async () => {
    needs('signedIn', 'sign in by link as admin');
    await page.goto('/ui/tokens/new');
    await expectPage(page, 'New token', '/ui/tokens/new');
    expectEqual(await page.getByLabel('Name', { exact: true }).getAttribute('name'), 'name', 'Name field');
    expect((await page.getByRole('group', { name: 'Scopes' }).locator('input[type="checkbox"][name="scope"]').count()) > 0, 'no scope checkboxes');
    const expires = page.getByLabel('Expires', { exact: true });
    const values = await expires.locator('option').evaluateAll((options) => options.map((o) => o.value));
    // This server has no lifetime policy, so "never" is offered too.
    for (const wanted of ['7', '30', '60', '90', 'date', 'never']) expect(values.includes(wanted), `Expires has no option ${wanted} (has ${values.join(', ')})`);
    expectEqual(await expires.inputValue(), '30', 'Expires selected');
    expectEqual(await page.getByLabel('Expiry date', { exact: true }).getAttribute('type'), 'date', 'Expiry date type');
    const validity = page.getByLabel('Access token lifetime', { exact: true });
    const lifetimes = await validity.locator('option').evaluateAll((options) => options.map((o) => o.value));
    // The contract listed 86400 too; the pages stop at 43200, the longest the API accepts.
    expectEqual(lifetimes.join(','), '900,3600,43200', 'Access token lifetime options');
    expectEqual(await validity.inputValue(), '43200', 'Access token lifetime selected');
    expectEqual(await page.locator('form[action="/ui/tokens"] input[type="hidden"][name="csrf"]').count(), 1, 'hidden csrf fields');
  });
  await check('new token: a name taken ("bootstrap") is refused with 400 and the cause', async () => {
    needs('signedIn', 'sign in by link as admin');
    await page.goto('/ui/');
    await navigateBy(page, page.locator('a#new-token'));
    expectEqual(new URL(page.url()).pathname, '/ui/tokens/new', 'New token leads to');
    await snapshot(page, 'new-token');
    // The field is `required`, so the browser itself stops an empty name: a taken one reaches the
    // server's rule (the bootstrap PAT is admin's `bootstrap`).
    await page.getByLabel('Name', { exact: true }).fill('bootstrap');
    const response = await navigateBy(page, page.getByRole('button', { name: 'Create token' }));
    expectEqual(response.status(), 400, 'status');
    const error = page.locator('p.error[role="alert"]');
    expect((await error.count()) === 1 && (await error.textContent()).trim() !== '', 'no p.error[role=alert] with the cause');
    await snapshot(page, 'new-token-error');
  });
  await check('create a token: New token, Name, a scope, Create token → the secret page', async () => {
    needs('signedIn', 'sign in by link as admin');
    await page.goto('/ui/');
    await navigateBy(page, page.locator('a#new-token'));
    await expectPage(page, 'New token', '/ui/tokens/new');
    await page.getByLabel('Name', { exact: true }).fill('ui-check');
    const scopes = page.getByRole('group', { name: 'Scopes' }).locator('input[type="checkbox"][name="scope"]');
    expect((await scopes.count()) > 0, 'no scope checkboxes in a fieldset "Scopes"');
    const all = scopes.and(page.locator('[value="sp:scopes:all"]'));
    const scope = (await all.count()) === 1 ? all : scopes.first();
    await scope.check();
    state.scope = await scope.getAttribute('value');
    const response = await navigateBy(page, page.getByRole('button', { name: 'Create token' }));
    expectEqual(response.status(), 200, 'status');
    expectEqual(await firstStatus(response), 200, 'the POST answers itself, no redirect');
    const { id, secret } = await readSecretPage(page);
    expect(/\S/.test(await page.locator('p.warning').textContent()), 'no p.warning');
    await snapshot(page, 'secret');
    state.token = { id, name: 'ui-check' };
    state.shownSecret = secret;
  });
  await check('the copy button puts the secret on the clipboard', async () => {
    const shown = needs('shownSecret', 'create a token');
    await admin.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: main.url });
    const copy = page.locator('#copy');
    expectEqual(await copy.getAttribute('data-copy'), 'client-secret', '#copy data-copy');
    await copy.click();
    await page.waitForFunction(() => document.querySelector('#copy')?.textContent.trim() === 'Copied', null, { timeout: 5_000 })
      .catch(() => { throw new Error('#copy did not change to "Copied"'); });
    const clipboard = await page.evaluate(() => navigator.clipboard.readText());
    expectEqual(clipboard, shown, 'the clipboard');
    state.secret = clipboard;
  });
  await check('the copied secret exchanges at POST /oauth/token → 200 with an access_token', async () => {
    const { id } = needs('token', 'create a token');
    const answer = await exchange(main, id, needs('secret', 'the copy button'));
    expectEqual(answer.status, 200, `status (${answer.text.slice(0, 200)})`);
    expect(typeof answer.body?.access_token === 'string' && answer.body.access_token.length > 0, 'no access_token');
  });
  await check('a token made for 7 days shows the badge "Expires soon"', async () => {
    needs('signedIn', 'sign in by link as admin');
    await page.goto('/ui/tokens/new');
    await page.getByLabel('Name', { exact: true }).fill('ui-check-soon');
    await page.getByLabel('Expires', { exact: true }).selectOption('7');
    const response = await navigateBy(page, page.getByRole('button', { name: 'Create token' }));
    expectEqual(response.status(), 200, 'status');
    const { id } = await readSecretPage(page);
    await navigateBy(page, page.getByRole('link', { name: 'Back to your tokens' }));
    await expectPage(page, 'Your tokens', '/ui/');
    const badges = await row(page, id).locator('.badge').allTextContents();
    expect(badges.map((b) => b.trim()).includes('Expires soon'), `badges ${JSON.stringify(badges)}`);
  });
  await check('rename it: the row shows the new name', async () => {
    const token = needs('token', 'create a token');
    await page.goto('/ui/');
    await navigateBy(page, row(page, token.id).getByRole('link', { name: `Rename ${token.name}` }));
    expectEqual(new URL(page.url()).pathname, `/ui/tokens/${token.id}/rename`, 'path');
    await snapshot(page, 'rename');
    await page.getByLabel('New name', { exact: true }).fill('ui-check-renamed');
    const response = await navigateBy(page, page.getByRole('button', { name: 'Rename', exact: true }));
    expectEqual(await firstStatus(response), 303, 'status');
    await expectPage(page, 'Your tokens', '/ui/');
    expectEqual(await nameCell(page, token.id), 'ui-check-renamed', 'the name cell');
    token.name = 'ui-check-renamed';
  });
  await check('rotate it: the new secret exchanges, the old one (grace 0) does not', async () => {
    const token = needs('token', 'create a token');
    const old = needs('secret', 'the copy button');
    await page.goto('/ui/');
    await navigateBy(page, row(page, token.id).getByRole('link', { name: `Rotate ${token.name}` }));
    expectEqual(new URL(page.url()).pathname, `/ui/tokens/${token.id}/rotate`, 'path');
    await snapshot(page, 'rotate');
    expect((await page.getByLabel('End the access tokens made before now').count()) === 1, 'no checkbox "End the access tokens made before now"');
    await page.getByLabel('Old secret keeps working for').selectOption('0');
    const response = await navigateBy(page, page.getByRole('button', { name: 'Rotate', exact: true }));
    expectEqual(response.status(), 200, 'status');
    const rotated = await readSecretPage(page);
    expectEqual(rotated.id, token.id, 'the client id after rotation');
    expect(rotated.secret !== old, 'the secret did not change');
    const fresh = await exchange(main, token.id, rotated.secret);
    expectEqual(fresh.status, 200, `the new secret (${fresh.text.slice(0, 200)})`);
    const stale = await exchange(main, token.id, old);
    expectEqual(stale.status, 401, 'the old secret');
    state.secret = rotated.secret;
  });
  await check('delete it: the row is gone, the secret answers 401', async () => {
    const token = needs('token', 'create a token');
    await page.goto('/ui/');
    await navigateBy(page, row(page, token.id).getByRole('link', { name: `Delete ${token.name}` }));
    expectEqual(new URL(page.url()).pathname, `/ui/tokens/${token.id}/delete`, 'path');
    const text = await page.locator('main').textContent();
    expect(text.includes(`Delete ${token.name}?`), `no "Delete ${token.name}?" on the page`);
    await snapshot(page, 'delete');
    const response = await navigateBy(page, page.getByRole('button', { name: 'Delete', exact: true }));
    expectEqual(await firstStatus(response), 303, 'status');
    await expectPage(page, 'Your tokens', '/ui/');
    expectEqual(await row(page, token.id).count(), 0, 'rows for the deleted token');
    const answer = await exchange(main, token.id, needs('secret', 'the copy button'));
    expectEqual(answer.status, 401, 'the exchange after delete');
  });
  for (const [key, path, heading, table] of [
    ['admin-tokens', '/ui/admin/tokens', 'All tokens', '#all-tokens'],
    ['admin-audit', '/ui/admin/audit', 'Audit log', '#audit'],
    ['admin-webhooks', '/ui/admin/webhooks', 'Webhooks', '#webhooks'],
  ]) {
    await check(`admin opens ${path}`, async () => {
      needs('signedIn', 'sign in by link as admin');
      const response = await page.goto(path);
      expectEqual(response.status(), 200, 'status');
      await expectPage(page, heading, path);
      if (key === 'admin-tokens') {
        expect((await page.getByLabel('Filter', { exact: true }).count()) === 1, 'no "Filter" field');
        expect((await page.getByLabel('Sort', { exact: true }).count()) === 1, 'no "Sort" select');
        expect((await page.locator(`${table} tr`).count()) >= 2, `${table} has no token rows (the bootstrap PAT is there)`);
      } else if (key === 'admin-audit') {
        expect((await page.locator(`${table} tr`).count()) >= 2, `${table} has no rows after this run's changes`);
      } else {
        expect((await page.locator(`${table}, form:has(input[name="url"])`).count()) >= 1, `no ${table} and no form with a "url" field`);
      }
      await snapshot(page, key);
    });
  }
  await check('admin adds a webhook (its secret shown once) and deletes it through the confirmation', async () => {
    needs('signedIn', 'sign in by link as admin');
    const hook = 'https://hooks.example.com/patd-ui-check';
    await page.goto('/ui/admin/webhooks');
    await page.getByLabel('URL', { exact: true }).fill(hook);
    const events = page.locator('input[type="checkbox"][name="event"]');
    if ((await events.count()) > 0) await events.first().check();
    const added = await navigateBy(page, page.getByRole('button', { name: /^Add/ }));
    expectEqual(added.status(), 200, 'status');
    expect(/secret/i.test(await h1(page)), `h1 ${JSON.stringify(await h1(page))}`);
    expect(/\S/.test(await page.locator('#webhook-secret').textContent()), 'no #webhook-secret');
    await snapshot(page, 'webhook-secret');
    await page.goto('/ui/admin/webhooks');
    const hookRow = page.locator('#webhooks tbody tr', { hasText: hook });
    expectEqual(await hookRow.count(), 1, 'rows for the new webhook');
    await navigateBy(page, hookRow.getByRole('link', { name: /^Delete/ }));
    expect((await h1(page)).startsWith('Delete'), `h1 ${JSON.stringify(await h1(page))}`);
    await snapshot(page, 'webhook-delete');
    const response = await navigateBy(page, page.locator('main').getByRole('button', { name: 'Delete', exact: true }));
    expectEqual(await firstStatus(response), 303, 'status');
    expectEqual(new URL(page.url()).pathname, '/ui/admin/webhooks', 'after delete');
    expectEqual(await page.locator('#webhooks tbody tr', { hasText: hook }).count(), 0, 'rows for the deleted webhook');
  });
  await check('a form POST without its csrf field (or a wrong one, or from another site) → 403, no token created', async () => {
    needs('signedIn', 'sign in by link as admin');
    const cookie = await cookieHeader(admin.context, main);
    await page.goto('/ui/tokens/new');
    const csrf = await page.locator('form[action="/ui/tokens"] input[name="csrf"]').inputValue();
    const post = (name, fields, site = 'same-origin') => fetch(`${main.url}/ui/tokens`, {
      method: 'POST',
      redirect: 'manual',
      // Same-origin headers, as the browser would send: the csrf field is the only fault.
      headers: { cookie, origin: main.url, 'sec-fetch-site': site, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ name, scope: 'sp:scopes:all', expires: '30', validity: '43200', ...fields }),
    });
    for (const [what, fields] of [['no csrf', {}], ['a wrong csrf', { csrf: 'not-the-token' }]]) {
      const response = await post('no-csrf', fields);
      expectEqual(response.status, 403, `${what}: status`);
      expect((await response.text()).includes('Not allowed'), `${what}: no "Not allowed" in the body`);
    }
    // A form another site sends is refused even with the right csrf value.
    const cross = await post('cross-site', { csrf }, 'cross-site');
    expectEqual(cross.status, 403, 'Sec-Fetch-Site: cross-site: status');
    // The control: the same request with the page's csrf value is taken.
    const control = await post('csrf-control', { csrf });
    expectEqual(control.status, 200, 'with the right csrf: status');
    await page.goto('/ui/');
    const names = (await page.locator('#tokens tbody tr > :first-child').allTextContents()).map((n) => n.trim());
    expect(!names.includes('no-csrf') && !names.includes('cross-site'), `refused tokens were created: ${names.join(', ')}`);
    expect(names.includes('csrf-control'), 'the control token "csrf-control" is not listed');
  });
  await check('sign out: the sign-out page, "Sign out" → /ui/sign-in; the old cookie then gets 303', async () => {
    needs('signedIn', 'sign in by link as admin');
    const cookie = await cookieHeader(admin.context, main);
    const opened = await page.goto('/ui/sign-out');
    expectEqual(opened.status(), 200, 'GET /ui/sign-out status');
    await snapshot(page, 'sign-out');
    const response = await navigateBy(page, page.locator('main form[action="/ui/sign-out"]').getByRole('button', { name: 'Sign out' }));
    expectEqual(await firstStatus(response), 303, 'POST /ui/sign-out status');
    await expectPage(page, 'Sign in', '/ui/sign-in');
    const left = (await admin.context.cookies(main.url)).filter((c) => c.name === 'patd_session' && c.value);
    expectEqual(left.length, 0, 'session cookies left in the browser');
    expectRedirectToSignIn(await getManual(`${main.url}/ui/`, cookie), main, 'GET /ui/ with the old cookie');
  });
  await admin.context.close();

  await check('a reused sign-in link → 400 "Sign-in link not valid" on the second use', async () => {
    const first = await newContext(main);
    const link = await signIn(first.page, main, 'admin');
    await first.context.close();
    const second = await newContext(main);
    let response = await second.page.goto(link);
    if (response.status() === 200) {
      // GET never consumes a link, so it may show the form again: the press is the second use.
      response = await navigateBy(second.page, second.page.getByRole('button', { name: 'Sign in', exact: true }));
    }
    expectEqual(response.status(), 400, 'status');
    await expectPage(second.page, 'Sign-in link not valid');
    expectEqual((await second.context.cookies(main.url)).filter((c) => c.name === 'patd_session').length, 0, 'session cookies');
    await snapshot(second.page, 'link-not-valid');
    await second.context.close();
  });

  // The USER `alice` (ui-checks/run creates her, with no tokens).
  const alice = await newContext(main);
  await check('sign in by link as USER alice: "You have no tokens yet.", no admin links', async () => {
    await signIn(alice.page, main, 'alice');
    expect((await alice.page.getByText('You have no tokens yet.').count()) === 1, 'no "You have no tokens yet."');
    expectEqual(await alice.page.locator('table#tokens').count(), 0, 'tables#tokens');
    await snapshot(alice.page, 'tokens-empty');
    const nav = alice.page.getByRole('navigation', { name: 'Main' });
    for (const name of ['All tokens', 'Audit log', 'Webhooks']) {
      expectEqual(await nav.getByRole('link', { name, exact: true }).count(), 0, `nav links "${name}"`);
    }
    state.alice = true;
  });
  for (const path of ['/ui/admin/tokens', '/ui/admin/audit', '/ui/admin/webhooks']) {
    await check(`USER alice opening ${path} → 403 "Not allowed"`, async () => {
      needs('alice', 'sign in by link as USER alice');
      const response = await alice.page.goto(path);
      expectEqual(response.status(), 403, 'status');
      await expectPage(alice.page, 'Not allowed', path);
      if (!shots.has('not-allowed')) await snapshot(alice.page, 'not-allowed');
    });
  }
  await check('signing in again in the same browser ends the session it had (its cookie then gets 303)', async () => {
    needs('alice', 'sign in by link as USER alice');
    const before = await cookieHeader(alice.context, main);
    await signIn(alice.page, main, 'alice');
    const after = await cookieHeader(alice.context, main);
    expect(after !== before, 'the session cookie did not change');
    expectRedirectToSignIn(await getManual(`${main.url}/ui/`, before), main, 'GET /ui/ with the earlier cookie');
    expectEqual((await getManual(`${main.url}/ui/`, after)).status, 200, 'GET /ui/ with the new cookie');
  });
  await alice.context.close();

  // OpenID Connect sign-in against a real provider is ui-checks/oidc.mjs (ui-checks/run-oidc).
  await check('an idle session ends: --session-idle-timeout 2s, 3 s idle, /ui/ → /ui/sign-in', async () => {
    const idle = await startPatd('idle', ['--session-idle-timeout', '2s']);
    const { context, page: idlePage } = await newContext(idle);
    await signIn(idlePage, idle, 'admin');
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    const response = await idlePage.goto('/ui/');
    expectEqual(await firstStatus(response), 303, 'status after 3 s idle');
    await expectPage(idlePage, 'Sign in', '/ui/sign-in');
    await context.close();
  });

  // What every page showed.
  for (const key of PAGES) {
    await check(`axe-core on ${key}: no serious or critical violation`, async () => {
      const found = scans.get(key);
      expect(found !== undefined, 'the page was never reached');
      if (found instanceof Error) throw new Error(`the scan failed: ${found.message}`);
      expect(found.length === 0, `${found.length} violation(s)\n` + found.map((v) =>
        `${v.width}: ${v.impact} ${v.id}: ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).slice(0, 5).join(', ')}`).join('\n'));
    });
  }
  await check(`screenshots of every page at ${PHONE.width}x${PHONE.height} and ${DESKTOP.width}x${DESKTOP.height}`, async () => {
    const missing = PAGES.filter((key) => !shots.has(key));
    expect(missing.length === 0, `none of ${missing.join(', ')}`);
  });
  // These two hold only for the pages seen, so they fail unless every page was.
  const unseen = PAGES.filter((key) => !shots.has(key));
  const notAll = unseen.length ? `, and not every page was reached: no ${unseen.join(', ')}` : '';
  await check('every page sends the contract\'s CSP, Cache-Control, Referrer-Policy, nosniff', async () => {
    const problems = [...new Set(headerProblems)];
    expect(problems.length === 0 && !notAll, `${problems.length} problem(s)${notAll}\n${problems.join('\n')}`);
  });
  await check(`nothing scrolls sideways at ${PHONE.width} px`, async () => {
    expect(sideways.length === 0 && !notAll, `${sideways.length} page(s)${notAll}\n${sideways.join('\n')}`);
  });
  await check('every control on every page can be reached with the Tab key', async () => {
    expect(unreachable.length === 0 && !notAll, `${unreachable.length} control(s)${notAll}\n${unreachable.join('\n')}`);
  });
  await check('no console error, CSP violation or failed subresource on any page', async () => {
    const errors = [...new Set(consoleErrors)];
    expect(errors.length === 0 && !notAll, `${errors.length} error(s)${notAll}\n${errors.join('\n')}`);
  });
} catch (error) {
  // Something outside a check (the browser itself) broke: that is a failure, never a skip.
  broke('the harness itself', error);
} finally {
  await browser.close().catch(() => {});
  stopServers();
}

process.exit(summary('ui-checks'));
