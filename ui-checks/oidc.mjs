// OpenID Connect sign-in to patd's web page against a real provider: node oidc-provider (pinned in
// package-lock.json) on 127.0.0.1, two `patd serve`s (one with --oidc-auto-create), and Debian's
// chromium through playwright-core clicking through the provider's own login and consent pages.
// Standalone: `ui-checks/run-oidc` builds patd, installs the packages and runs it with PATD_BIN.
// Prints one line per check and "oidc-checks: N passed, N failed"; exits 1 on any failure.
import { check, broke, expect, expectEqual, summary } from './report.mjs';
import { chromium } from 'playwright-core';
import Provider from 'oidc-provider';
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const run = promisify(execFile);
const PATD = process.env.PATD_BIN;
if (!PATD) {
  console.error('oidc-checks: PATD_BIN is not set; run ui-checks/run-oidc');
  process.exit(2);
}
const CHROMIUM = process.env.PATD_CHROMIUM || '/usr/bin/chromium';
const WORK = fs.mkdtempSync(path.join(os.tmpdir(), 'patd-oidc-'));
const CLIENT_ID = 'patd-web';
const CLIENT_SECRET = 'a-client-secret-only-this-test-knows';

// ---- reporting -------------------------------------------------------------------------------


// ---- servers ---------------------------------------------------------------------------------

const children = [];
function stopAll() {
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
}
process.on('exit', () => {
  stopAll();
  fs.rmSync(WORK, { recursive: true, force: true });
});

// A port free right now on 127.0.0.1: the provider's issuer must be known before patd starts.
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// `patd serve` on a fresh SQLite file and a free port; resolves to { name, url, db } once it
// logs where it listens.
function startPatd(name, flags) {
  const db = `sqlite://${WORK}/${name}.db`;
  const args = ['serve', '--listen', '127.0.0.1:0', '--database', db, '--rate-limit', 'off', ...flags];
  const child = spawn(PATD, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  child.stdout.resume();
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
        resolve({ name, url: found[1].replace(/\/$/, ''), db, child, log: `${WORK}/${name}.err` });
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

async function patd(...args) {
  const { stdout } = await run(PATD, args, { timeout: 30_000 });
  return stdout;
}
async function identities(server) {
  return JSON.parse(await patd('identity', 'list', '--json', '--database', server.db));
}

// The provider: one confidential client with both patds' callbacks, PKCE required, its
// development login and consent pages, and an account for whatever login is typed. A login
// starting "unverified" has an address the provider has not verified.
function startProvider(port, redirectUris) {
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      redirect_uris: redirectUris,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    // The claims go into the ID token, which is all patd reads, rather than only the userinfo
    // endpoint's answer.
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true } },
    cookies: { keys: ['oidc-checks-cookie-key'] },
    // Set, so the provider prints no notice about its defaults among the check lines.
    ttl: { AccessToken: 600, Grant: 600, IdToken: 600, Interaction: 600, Session: 600 },
    async findAccount(ctx, id) {
      return {
        accountId: id,
        async claims() {
          return { sub: id, email: id, email_verified: !id.startsWith('unverified'), name: id };
        },
      };
    },
  });
  // Its development-mode notices go to stderr; they say nothing about the checks.
  return new Promise((resolve, reject) => {
    const server = provider.listen(port, '127.0.0.1', () => resolve({ issuer, server }));
    server.once('error', reject);
  });
}

// ---- the browser -----------------------------------------------------------------------------

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});

// A fresh browser (cookies of its own: no provider session from an earlier check) that notes
// every callback URL it is sent to.
async function newBrowser() {
  const context = await browser.newContext();
  context.setDefaultTimeout(15_000);
  const page = await context.newPage();
  page.callbacks = [];
  page.on('request', (request) => {
    if (request.url().includes('/ui/sign-in/oidc/callback')) page.callbacks.push(request.url());
  });
  return { context, page };
}

// From patd's sign-in page through the provider's login and consent as `login`; resolves to
// patd's answer to the callback (after its redirect, the page it lands on).
async function signIn(server, provider, login) {
  const { context, page } = await newBrowser();
  await page.goto(`${server.url}/ui/sign-in`);
  await page.locator('a#oidc-sign-in').click();
  await page.waitForURL((url) => url.origin === provider.issuer, { waitUntil: 'load' });
  await page.locator('input[name="login"]').fill(login);
  await page.locator('input[name="password"]').fill('any password');
  await page.locator('button[type="submit"]').click();
  await page.waitForSelector('input[name="prompt"][value="consent"]', { state: 'attached' });
  const landed = page.waitForURL((url) => url.origin === server.url, { waitUntil: 'load' });
  await page.locator('button[type="submit"]').click();
  await landed;
  return { context, page };
}

async function heading(page) {
  return (await page.locator('h1').first().textContent())?.trim();
}

// ---- the checks ------------------------------------------------------------------------------

let status = 0;
try {
  const providerPort = await freePort();
  const issuer = `http://127.0.0.1:${providerPort}`;
  const oidcFlags = ['--oidc-issuer', issuer, '--oidc-client-id', CLIENT_ID, '--oidc-client-secret', CLIENT_SECRET];
  const plain = await startPatd('oidc', oidcFlags);
  const creating = await startPatd('oidc-auto', [...oidcFlags, '--oidc-auto-create']);
  await patd('identity', 'create', '--name', 'alice', '--level', 'USER', '--email', 'alice@example.com', '--database', plain.db);
  const provider = await startProvider(providerPort, [plain, creating].map((s) => `${s.url}/ui/sign-in/oidc/callback`));

  await check('the provider publishes its discovery document', async () => {
    const response = await fetch(`${issuer}/.well-known/openid-configuration`);
    expectEqual(response.status, 200, 'status');
    expectEqual((await response.json()).issuer, issuer, 'issuer');
  });

  let alice;
  await check('alice@example.com signs in through the provider and lands on "Your tokens" as alice', async () => {
    alice = await signIn(plain, provider, 'alice@example.com');
    const url = new URL(alice.page.url());
    expectEqual(`${url.origin}${url.pathname}`, `${plain.url}/ui/`, 'landed on');
    expectEqual(await heading(alice.page), 'Your tokens', 'h1');
    expectEqual((await alice.page.locator('header .who').textContent())?.trim(), 'alice', 'the name in the header');
    const cookies = await alice.context.cookies(plain.url);
    expect(cookies.some((c) => c.name === 'patd_session' && c.httpOnly), 'an HttpOnly patd_session cookie');
    expect(!cookies.some((c) => c.name === 'patd_sign_in' && c.value), 'the sign-in cookie is cleared');
  });

  await check('the authorization request carried PKCE S256, the state, a nonce and the scopes', async () => {
    expect(alice, 'alice did not sign in');
    const callback = new URL(alice.page.callbacks[0]);
    expect(callback.searchParams.get('code'), 'the callback has a code');
    expect(/^[0-9a-f]{64}$/.test(callback.searchParams.get('state') ?? ''), 'the state is 64 hex digits');
    const { context, page } = await newBrowser();
    const started = await page.request.get(`${plain.url}/ui/sign-in/oidc`, { maxRedirects: 0 });
    expectEqual(started.status(), 303, 'status of /ui/sign-in/oidc');
    const to = new URL(started.headers().location);
    expectEqual(`${to.origin}${to.pathname}`, `${issuer}/auth`, 'redirected to');
    expectEqual(to.searchParams.get('code_challenge_method'), 'S256', 'code_challenge_method');
    expect(to.searchParams.get('code_challenge'), 'a code_challenge');
    expect(to.searchParams.get('nonce'), 'a nonce');
    expectEqual(to.searchParams.get('scope'), 'openid email profile', 'scope');
    expectEqual(to.searchParams.get('redirect_uri'), `${plain.url}/ui/sign-in/oidc/callback`, 'redirect_uri');
    const cookie = (await context.cookies(plain.url)).find((c) => c.name === 'patd_sign_in');
    expectEqual(cookie?.value, to.searchParams.get('state'), 'the sign-in cookie holds the state');
    await context.close();
  });

  await check('a replayed callback URL is refused (400), with its sign-in cookie put back too', async () => {
    expect(alice, 'alice did not sign in');
    const replay = alice.page.callbacks[0];
    const again = await alice.page.goto(replay);
    expectEqual(again.status(), 400, 'status of the replay');
    expectEqual(await heading(alice.page), 'Sign-in not valid', 'h1');
    // The cookie back as it was: the login itself was taken by the first callback.
    const state = new URL(replay).searchParams.get('state');
    await alice.context.addCookies([{ name: 'patd_sign_in', value: state, url: plain.url }]);
    const withCookie = await alice.page.goto(replay);
    expectEqual(withCookie.status(), 400, 'status of the replay with the cookie');
    await alice.context.close();
  });

  await check('an account no identity matches is refused (403 "No patd identity for this account")', async () => {
    const { context, page } = await signIn(plain, provider, 'nobody@example.com');
    expectEqual(await heading(page), 'No patd identity for this account', 'h1');
    const names = (await identities(plain)).map((i) => i.name);
    expect(!names.includes('nobody@example.com'), 'no identity was made');
    await context.close();
  });

  await check('an address the provider has not verified is refused (403)', async () => {
    const { context, page } = await signIn(plain, provider, 'unverified-alice@example.com');
    expectEqual(await heading(page), 'Not allowed', 'h1');
    await context.close();
  });

  await check('with --oidc-auto-create an unknown person becomes a USER and is signed in', async () => {
    const { context, page } = await signIn(creating, provider, 'carol@example.com');
    expectEqual(await heading(page), 'Your tokens', 'h1');
    expectEqual((await page.locator('header .who').textContent())?.trim(), 'carol@example.com', 'the name in the header');
    const carol = (await identities(creating)).filter((i) => i.name === 'carol@example.com');
    expectEqual(carol.length, 1, 'identities named carol@example.com');
    expectEqual(JSON.stringify(carol[0].levels), '["USER"]', 'levels');
    await context.close();
  });

  await check('carol signing in again is the same identity (matched by the address set at creation)', async () => {
    const before = (await identities(creating)).length;
    const { context, page } = await signIn(creating, provider, 'Carol@Example.com');
    expectEqual(await heading(page), 'Your tokens', 'h1');
    expectEqual((await page.locator('header .who').textContent())?.trim(), 'carol@example.com', 'the name in the header');
    expectEqual((await identities(creating)).length, before, 'identities after the second sign-in');
    await context.close();
  });

  await check('the callback with no state, or a state that is not the cookie, is refused (400)', async () => {
    const { context, page } = await newBrowser();
    const none = await page.goto(`${plain.url}/ui/sign-in/oidc/callback?code=x`);
    expectEqual(none.status(), 400, 'no state');
    const other = await page.goto(`${plain.url}/ui/sign-in/oidc/callback?code=x&state=${'a'.repeat(64)}`);
    expectEqual(other.status(), 400, 'a state without its cookie');
    await context.close();
  });

  await check("nothing the provider or the browser sent is in patd's logs", async () => {
    const logs = fs.readFileSync(plain.log, 'utf8') + fs.readFileSync(creating.log, 'utf8');
    // The refusals are logged, in patd's words.
    expect(logs.includes('oidc: no login under way has this state'), 'the replay is logged as refused');
    expect(logs.includes('oidc: no identity matches'), 'the unknown account is logged as refused');
    for (const secret of [CLIENT_SECRET, 'alice@example.com', 'nobody@example.com', 'carol@example.com', 'code=']) {
      expect(!logs.includes(secret), `the logs hold ${JSON.stringify(secret)}`);
    }
  });
  provider.server.close();
} catch (error) {
  broke('the checks could not run', error);
} finally {
  await browser.close();
  stopAll();
}
status = summary('oidc-checks');
process.exit(status);
