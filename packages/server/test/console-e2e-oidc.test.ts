import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import type { RawDocument } from '../src/config/config-dir.js';
import { freePort, type Harness, startHarness, testKey } from './helpers/harness.js';
import { type IdentityProvider, startIdentityProvider } from './helpers/identity-provider.js';

// OpenID Connect sign-in to the console in a real Chromium (docs/console.md, "End-to-end tests"): the
// console's button sends the browser to a real identity provider (oidc-provider on loopback, with its own
// login and consent pages), Chromium types the login, consents, and comes back to /console/ signed in as
// the operator that names the person. A person no operator names is refused, and the console says so.

const CHROMIUM = '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const CONSOLE_BUILT = existsSync(new URL('../../../console/dist/index.html', import.meta.url));
const skip = !existsSync(CHROMIUM)
  ? `${CHROMIUM} is missing (apt-get install chromium; .ci/run does)`
  : !CONSOLE_BUILT
    ? 'the console is not built (npm run build builds packages/console)'
    : false;

const person = (id: string, email: string): RawDocument => ({
  kind: 'people',
  file: `people/${id}.yaml`,
  index: 0,
  doc: { id, name: id.toUpperCase(), active: true, email },
});
const operator = (name: string, personId: string): RawDocument => ({
  kind: 'operator',
  file: `operators/${name}.yaml`,
  index: 0,
  doc: { name, person: personId, jwks: { keys: [testKey().publicJwk] } },
});

describe('console sign-in with OpenID Connect in Chromium', { skip }, () => {
  let h: Harness;
  let idp: IdentityProvider;
  let browser: Browser;
  const contexts: BrowserContext[] = [];
  const shots = mkdtempSync(join(tmpdir(), 'writ-console-oidc-screens-'));

  before(async () => {
    const idpPort = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'writ-oidc-e2e-'));
    const secretFile = join(dir, 'client-secret');
    const clientSecret = randomBytes(24).toString('base64url');
    writeFileSync(secretFile, `${clientSecret}\n`);
    h = await startHarness({
      listen: true,
      settings: {
        'console.oidc.issuer': `http://127.0.0.1:${idpPort}`,
        'console.oidc.client_id': 'writ-console',
        'console.oidc.client_secret_file': secretFile,
      },
      // erin's operator is named "ops-erin": the session is the operator's, found through the person.
      extraDocs: [
        person('erin', 'erin@example.com'),
        operator('ops-erin', 'erin'),
        person('frank', 'frank@example.com'),
      ],
    });
    idp = await startIdentityProvider({
      redirectUri: `${h.issuer}/console/oidc/callback`,
      clientSecret,
      port: idpPort,
      pages: {
        users: [
          // The provider's subject is not a person id: the verified e-mail address finds the person.
          { sub: 'idp-erin', email: 'erin@example.com', email_verified: true },
          { sub: 'frank', email: 'frank@example.com', email_verified: true },
        ],
      },
    });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
  });
  after(async () => {
    for (const c of contexts) await c.close().catch(() => {});
    await browser?.close();
    await idp?.close();
    await h?.close();
  });

  const newPage = async (): Promise<Page> => {
    const c = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    contexts.push(c);
    // Bounds, not speed checks: a loaded machine (CI, a shared host) takes its time over a first page.
    c.setDefaultTimeout(30_000);
    c.setDefaultNavigationTimeout(60_000);
    return c.newPage();
  };
  /** From the console's sign-in screen through the provider's login and consent pages, as `login`. */
  const throughProvider = async (page: Page, login: string, shot: string) => {
    await page.goto(`${h.issuer}/console/`);
    await page.getByRole('link', { name: 'Sign in with your identity provider' }).click();
    await page.waitForURL((u) => u.href.startsWith(`${idp.issuer}/interaction/`));
    await page.locator('input[name="login"]').fill(login);
    await page.locator('input[name="password"]').fill('any password: the test provider checks none');
    await page.screenshot({ path: join(shots, `${shot}-login.png`) });
    await page.getByRole('button', { name: 'Sign-in' }).click();
    // The provider asks for consent to the scopes the console asked for (openid, email).
    const allow = page.getByRole('button', { name: 'Continue' });
    await allow.waitFor();
    await page.screenshot({ path: join(shots, `${shot}-consent.png`) });
    await allow.click();
  };

  it('the button, the provider’s login and consent pages, and back on /console/ as the operator', async (t) => {
    const before = (await h.auditEvents('console.signed_in')).length;
    const page = await newPage();
    await throughProvider(page, 'idp-erin', 'erin');
    await page.waitForURL(`${h.issuer}/console/`);
    await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
    await page.getByText('operator:ops-erin', { exact: true }).first().waitFor();
    // The overview follows the live counters (GET /admin/v1/events/live) under the page's CSP.
    await page.getByText('Live: counts arrive as they happen.').waitFor();
    await page.screenshot({ path: join(shots, 'erin-overview.png') });

    const cookies = await page.context().cookies(h.issuer);
    const session = cookies.find((c) => c.name === 'writ_console');
    assert.ok(session, 'the session cookie was set');
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Strict');
    assert.equal(
      cookies.find((c) => c.name === 'writ_oidc'),
      undefined,
      'the flow cookie was cleared',
    );
    // The page acts through the session: its own call of the session endpoint names the operator.
    const me = (await page.evaluate(async () => (await fetch('/console/api/session')).json())) as Record<
      string,
      unknown
    >;
    assert.equal(me.operator, 'operator:ops-erin');
    assert.equal(me.person, 'erin');
    assert.equal(me.via, 'oidc');
    const signedIn = await h.auditEvents('console.signed_in');
    assert.equal(signedIn.length, before + 1);
    assert.equal(signedIn.at(-1)?.actor, 'person:erin');
    assert.equal(signedIn.at(-1)?.data['sub'], 'idp-erin');
    assert.equal(signedIn.at(-1)?.data['issuer'], idp.issuer);
    t.diagnostic(`screenshots (1280×800): ${shots}`);
  });

  it('a person no operator names is refused after the provider, and stays signed out', async () => {
    const page = await newPage();
    await throughProvider(page, 'frank', 'frank');
    await page.waitForURL((u) => u.href.startsWith(`${h.issuer}/console/oidc/callback?`));
    const body = (await page.locator('body').textContent()) ?? '';
    assert.match(body, /access_denied/);
    assert.match(body, /operator/);
    await page.screenshot({ path: join(shots, 'frank-refused.png') });
    const cookies = await page.context().cookies(h.issuer);
    assert.equal(
      cookies.find((c) => c.name === 'writ_console'),
      undefined,
      'no session cookie',
    );
    const refusal = (await h.auditEvents('console.refused')).at(-1);
    assert.equal(refusal?.data['reason'], 'oidc_no_operator');
    assert.equal(refusal?.actor, 'person:frank');
    // The console itself still offers the two ways in.
    await page.goto(`${h.issuer}/console/`);
    await page.getByRole('link', { name: 'Sign in with your identity provider' }).waitFor();
  });
});
