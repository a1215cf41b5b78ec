import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { UsageReporter, type Verifier } from '@writ/sdk/verifier';
import { decodeJwt } from 'jose';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { loadOrCreateDpopKey } from '../src/cli/commands/token.js';
import type { RawDocument } from '../src/config/config-dir.js';
import type { Finding } from '../src/detection/finding.js';
import { applyPolicies } from '../src/policy/operations.js';
import { openAdminSession } from './helpers/admin-session.js';
import { execWrit, WRIT_MAIN } from './helpers/cli.js';
import { classDoc, workloadDoc } from './helpers/dpop.js';
import { privateJwk, type TestKey, testKey, WORKLOAD } from './helpers/harness.js';
import {
  API,
  eventually,
  outcome,
  presenting,
  startVerifierWorld,
  type VerifierWorld,
  workloadClient,
} from './helpers/verifier.js';

// The console in a real Chromium (Debian's, driven by playwright-core) against a listening Writ: sign in
// with the one-time link `writ console` prints, watch a token the CLI got appear on the overview and in
// its trace, revoke it from the console while an SDK verifier follows the server, approve a break-glass
// request as a second person, acknowledge a finding, and check that user-controlled text stays text.
// A screenshot of each view at 1280×800 is written to a temporary directory (printed).

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
// The source, not the compiled file: a compiled file outlives its source in dist/ when a branch changes.
const CONSOLE_SERVED = existsSync(new URL('../../src/console/routes.ts', import.meta.url));
const skip = !existsSync(CHROMIUM)
  ? `${CHROMIUM} is missing (apt-get install chromium; .ci/run does)`
  : !CONSOLE_BUILT
    ? 'the console is not built (npm run build builds packages/console)'
    : !CONSOLE_SERVED
      ? 'this server has no console routes yet (src/console/routes.ts)'
      : false;

/** Markup in every user-controlled field: rendered as text, it creates no element and runs nothing. */
const XSS = '<img src=x onerror="window.__xss=1">';
const APP = 'spiffe://test.writ/console/app';
const REPORTER = 'spiffe://test.writ/console/reporter';

const person = (id: string): RawDocument => ({
  kind: 'people',
  file: `people/${id}.yaml`,
  index: 0,
  doc: { id, name: id.toUpperCase(), active: true },
});
const operator = (name: string, key: TestKey): RawDocument => ({
  kind: 'operator',
  file: `operators/${name}.yaml`,
  index: 0,
  doc: { name, person: name, jwks: { keys: [key.publicJwk] } },
});

describe('console end to end in Chromium', { skip }, () => {
  let world: VerifierWorld;
  let browser: Browser;
  let tick: NodeJS.Timeout;
  const carol = testKey();
  const dave = testKey();
  const appKey = testKey();
  const reporterKey = testKey();
  let usage: UsageReporter;
  let reporting: Verifier;
  const shots = mkdtempSync(join(tmpdir(), 'writ-console-screens-'));
  const contexts: BrowserContext[] = [];

  before(async () => {
    world = await startVerifierWorld({
      docs: (issuer) => [
        // A resource server that reports the uses it sees (the world's own verifier does not report).
        classDoc({
          name: 'console-reporter',
          audiences: [`${issuer}/v1/events`, `${issuer}/v1/usage`],
          scopes: ['events:read'],
          default_scopes: ['events:read'],
        }),
        workloadDoc(REPORTER, reporterKey, ['console-reporter'], { serves: [API] }),
        person('carol'),
        person('dave'),
        operator('carol', carol),
        operator('dave', dave),
        {
          ...workloadDoc(APP, appKey, ['verifier-world-api']),
          doc: {
            ...(workloadDoc(APP, appKey, ['verifier-world-api']).doc as Record<string, unknown>),
            description: XSS,
            attributes: { team: XSS },
          },
        },
      ],
    });
    // The world's clock is a test clock: keep it on the wall clock, which the CLI and the browser read.
    tick = setInterval(() => world.clock.set(Math.max(world.clock.now(), Date.now())), 100);
    usage = new UsageReporter({
      issuer: world.issuer,
      client: workloadClient(world.issuer, REPORTER, reporterKey, { nowMs: world.clock.now }),
      flushIntervalMs: 3_600_000,
      now: world.clock.now,
    });
    reporting = await world.spawnVerifier({ usage });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
  });
  after(async () => {
    for (const c of contexts) await c.close().catch(() => {});
    await browser?.close();
    clearInterval(tick);
    await world?.close();
  });

  const keyFile = (name: string, key: TestKey) => {
    const file = join(world.h.dir, `${name}.operator.jwk`);
    writeFileSync(file, JSON.stringify({ operator: name, key: privateJwk(key) }), { mode: 0o600 });
    return file;
  };
  /** `writ console --no-open` as `name`: the link it prints. */
  const signInLink = async (name: string, key: TestKey) => {
    const r = await execWrit(WRIT_MAIN, [
      '--server',
      world.issuer,
      '--operator-key',
      keyFile(name, key),
      'console',
      '--no-open',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const link = r.stdout.trim();
    assert.match(link, /\/console\/signin#[\w-]+\.[\w-]+\.[\w-]+$/);
    return link;
  };
  const newPage = async () => {
    const c = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    contexts.push(c);
    c.setDefaultTimeout(10_000);
    const page = await c.newPage();
    page.on('dialog', (d) => d.dismiss());
    return page;
  };
  /** Signs `name` in through the one-time link; the page ends on the overview. */
  const signedIn = async (name: string, key: TestKey): Promise<Page> => {
    const page = await newPage();
    await page.goto(await signInLink(name, key));
    await page.waitForURL(`${world.issuer}/console/`);
    await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
    return page;
  };
  const view = async (page: Page, label: string, shot: string) => {
    await page
      .getByRole('navigation', { name: 'Views' })
      .getByRole('link', { name: label, exact: true })
      .click();
    await page.getByRole('heading', { name: label, level: 1 }).waitFor();
    await page.waitForTimeout(0);
    return async () => page.screenshot({ path: join(shots, `${shot}.png`) });
  };
  /** Nothing the page shows may have been parsed as markup, and no injected handler ran. */
  const noInjection = async (page: Page) => {
    assert.equal(await page.locator('img').count(), 0, 'no <img> element was created');
    assert.equal(await page.evaluate(() => (globalThis as { __xss?: number }).__xss), undefined);
  };

  let carolPage: Page;
  let step = 0;
  // What the page showed when each step ended: the picture to look at when one fails.
  afterEach(async () => {
    await carolPage?.screenshot({ path: join(shots, `after-step-${++step}.png`) }).catch(() => {});
  });
  let token: string;
  let jti: string;
  let holder: ReturnType<typeof loadOrCreateDpopKey>;

  it('signs in with the one-time link, and refuses the link a second time', async (t) => {
    const link = await signInLink('carol', carol);
    carolPage = await newPage();
    await carolPage.goto(link);
    await carolPage.waitForURL(`${world.issuer}/console/`);
    await carolPage.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
    assert.equal(new URL(carolPage.url()).hash, '', 'the link left the address bar');
    await carolPage.getByText('operator:carol', { exact: true }).first().waitFor();

    const again = await newPage();
    await again.goto(link);
    const alert = again.getByRole('alert');
    await alert.waitFor();
    assert.match((await alert.textContent()) ?? '', /Sign-in refused.*(used|single use)/s);
    await again.screenshot({ path: join(shots, 'signin-refused.png') });
    // Without a session the console says how to get one.
    await again.goto(`${world.issuer}/console/`);
    await again.getByText('writ console', { exact: false }).first().waitFor();
    assert.equal(
      await again.getByRole('link', { name: /identity provider/ }).getAttribute('href'),
      '/console/oidc/start',
    );
    t.diagnostic(`screenshots of each view (1280×800): ${shots}`);
  });

  it('shows a token the CLI got on the overview and in its trace', async () => {
    const dpopFile = join(world.h.dir, 'app.dpop.jwk');
    const appFile = join(world.h.dir, 'app.jwk');
    writeFileSync(appFile, JSON.stringify(privateJwk(appKey)), { mode: 0o600 });
    const r = await execWrit(WRIT_MAIN, [
      '--server',
      world.issuer,
      'token',
      'get',
      '--raw',
      '--client-id',
      APP,
      '--key',
      appFile,
      '--audience',
      API,
      '--scope',
      'api:call',
      '--dpop-key',
      dpopFile,
    ]);
    assert.equal(r.code, 0, r.stderr);
    token = r.stdout.trim();
    jti = decodeJwt(token).jti!;
    holder = loadOrCreateDpopKey(dpopFile);
    // The SDK verifier accepts it, and reports the use with a user agent that holds markup.
    const use = () =>
      outcome(reporting, {
        ...presenting(token, {
          holder,
          url: `${API}/reports`,
          nowSeconds: Math.floor(world.clock.now() / 1000),
        }),
        userAgent: XSS,
      });
    assert.equal(await use(), `ok:${jti}`);
    await usage.flush();

    const row = carolPage
      .getByRole('table', { name: 'recently issued tokens' })
      .getByRole('link', { name: jti });
    await row.waitFor({ timeout: 15_000 });
    await carolPage.screenshot({ path: join(shots, 'overview.png') });
    await row.click();
    await carolPage.getByRole('heading', { name: 'Token trace', level: 1 }).waitFor();
    await carolPage.getByRole('heading', { name: `Token ${jti}` }).waitFor();
    // The use arrives with the verifier's next report; its user agent is shown as text.
    await carolPage
      .getByRole('table', { name: 'uses' })
      .getByText(XSS, { exact: true })
      .waitFor({ timeout: 15_000 });
    await noInjection(carolPage);
    await carolPage.screenshot({ path: join(shots, 'trace.png') });
  });

  it('revokes the token from the console, and the connected verifier refuses it', async () => {
    await carolPage.getByRole('button', { name: 'Revoke this token' }).click();
    await carolPage.getByRole('button', { name: 'Confirm revoke this token' }).click();
    await carolPage.getByText('revoked', { exact: true }).first().waitFor({ timeout: 10_000 });
    const refused = await eventually('the verifier refuses the revoked token', async () => {
      const o = await outcome(
        world.verifier,
        presenting(token, {
          holder,
          url: `${API}/reports`,
          nowSeconds: Math.floor(world.clock.now() / 1000),
        }),
      );
      return o.startsWith('ok:') ? undefined : o;
    });
    assert.match(refused, /revoked/);
    const [event] = (await world.h.auditEvents('revocation.created')).filter(
      (e) => e.data['value'] === jti || e.subject === jti || e.jti === jti,
    );
    assert.ok(event, 'the revocation is audited');
    assert.match(event.actor, /carol/, 'with the signed-in operator as actor');
  });

  it('approves a break-glass request as a second person; the requester’s own approval is refused', async () => {
    const s = await openAdminSession({
      issuer: world.issuer,
      key: carol,
      operator: 'carol',
      nowSeconds: () => Math.floor(world.clock.now() / 1000),
      post: async (form, headers) => {
        const res = await fetch(`${world.issuer}/admin/v1/token`, {
          method: 'POST',
          headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams(form),
        });
        return {
          status: res.status,
          body: (await res.json()) as Record<string, unknown>,
          nonce: res.headers.get('dpop-nonce') ?? undefined,
        };
      },
    });
    const url = `${world.issuer}/admin/v1/breakglass`;
    const asked = await fetch(url, {
      method: 'POST',
      headers: { ...s.headers('POST', '/admin/v1/breakglass'), 'content-type': 'application/json' },
      body: JSON.stringify({
        workload: WORKLOAD,
        class: 'billing-write',
        reason: `incident ${XSS}`,
        duration: 600,
      }),
    });
    assert.equal(asked.status, 201, await asked.clone().text());
    const id = ((await asked.json()) as { id: string }).id;

    const shot = await view(carolPage, 'Governance', 'governance');
    const table = carolPage.getByRole('table', { name: 'break-glass requests' });
    await table.getByText(`incident ${XSS}`, { exact: true }).waitFor();
    await noInjection(carolPage);
    await table.getByRole('button', { name: 'Approve' }).click();
    await table.getByRole('button', { name: 'Confirm approve' }).click();
    await table
      .getByRole('alert')
      .getByText(/access_denied/)
      .waitFor();
    await shot();
    const pending = await world.h.store.getBreakGlass(id);
    assert.equal(pending?.state, 'pending', 'the requester’s approval changed nothing');

    const davePage = await signedIn('dave', dave);
    await view(davePage, 'Governance', 'governance-dave');
    const daveTable = davePage.getByRole('table', { name: 'break-glass requests' });
    await daveTable.getByRole('button', { name: 'Approve' }).click();
    await daveTable.getByRole('button', { name: 'Confirm approve' }).click();
    await daveTable.getByText('approved by operator:dave').waitFor({ timeout: 10_000 });
    const granted = await world.h.store.getBreakGlass(id);
    assert.equal(granted?.state, 'active');
    assert.equal(granted?.approvedBy, 'operator:dave');
  });

  it('acknowledges a finding, whose evidence and note are shown as text', async () => {
    const id = randomUUID();
    const f: Finding = {
      id,
      rule: 'console-test',
      severity: 'high',
      mode: 'observe',
      workload: APP,
      jti: null,
      tid: null,
      createdAt: world.clock.now(),
      evidence: { signals: [], note: XSS } as unknown as Finding['evidence'],
      response: 'alert' as Finding['response'],
      outcome: 'observe' as Finding['outcome'],
      risk: 10,
      state: 'open',
      stateBy: null,
      stateAt: null,
      note: '',
    };
    await world.h.store.addFinding(f);
    const shot = await view(carolPage, 'Findings', 'findings');
    await carolPage
      .getByRole('table', { name: 'findings' })
      .getByRole('button', { name: 'console-test' })
      .click();
    await carolPage.getByRole('heading', { name: `Finding ${id}` }).waitFor();
    await carolPage.getByText('<img src=x onerror=', { exact: false }).first().waitFor();
    await noInjection(carolPage);
    await carolPage.getByLabel('Note').fill(`looked at it ${XSS}`);
    await carolPage.getByRole('button', { name: 'Acknowledge' }).click();
    await carolPage.getByText(`looked at it ${XSS}`).waitFor({ timeout: 10_000 });
    await shot();
    const stored = await world.h.store.getFinding(id);
    assert.equal(stored?.state, 'acknowledged');
    assert.match(stored?.stateBy ?? '', /carol/);
  });

  it('renders workload descriptions and attributes as text, and every view at 1280×800', async () => {
    const shot = await view(carolPage, 'Workloads', 'workloads');
    const table = carolPage.getByRole('table', { name: 'workloads' });
    await table.getByText(XSS, { exact: true }).waitFor();
    await table.getByText(`team=${XSS}`, { exact: true }).waitFor();
    await noInjection(carolPage);
    await shot();
    // Explain this decision: a request typed in the Policy view is decided by the running policies.
    const policy = await view(carolPage, 'Policy', 'policy');
    const form = carolPage.getByRole('form', { name: 'explain a decision' });
    await form.getByLabel('Workload').fill(APP);
    await form.getByLabel('Action').selectOption('read');
    await form.getByLabel('Resource (audience)').fill(API);
    await form.getByRole('button', { name: 'Explain' }).click();
    await carolPage.getByText(/· policy set/).waitFor();
    await carolPage.getByRole('heading', { name: /^Running policy set \S+$/ }).waitFor();
    assert.equal(await carolPage.getByText('[object Object]').count(), 0);
    await policy();
    for (const [label, name] of [
      ['Tasks', 'tasks'],
      ['Revocations', 'revocations'],
      ['Audit', 'audit'],
      ['Overview', 'overview-after'],
    ] as const) {
      const s = await view(carolPage, label, name);
      await carolPage.waitForLoadState('networkidle').catch(() => {});
      await s();
    }
    // Policy versions: two applies, and the Policy view shows the newer against the older as a line diff
    // (text only: a comment holding markup stays text).
    const base = 'permit(principal, action in Action::"token", resource);\n';
    const added = `// ${XSS}\n@id("e2e-reads")\npermit(principal is Workload, action == Action::"read", resource);\n`;
    for (const text of [base, base + added])
      await applyPolicies(
        world.h.writ.ctx,
        { files: [{ file: 'policies/e2e.cedar', text }], resources: [] },
        'operator:carol',
        false,
      );
    const diffShot = await view(carolPage, 'Policy', 'policy-diff');
    const diff = carolPage.getByRole('region', { name: 'policy diff' });
    await diff.getByText('1 of 1 files differ').waitFor();
    assert.deepEqual(await diff.locator('.diff-added').allTextContents(), [
      `+ // ${XSS}`,
      '+ @id("e2e-reads")',
      '+ permit(principal is Workload, action == Action::"read", resource);',
    ]);
    assert.equal(await diff.locator('.diff-removed').count(), 0);
    assert.equal(await diff.locator('.diff-same').count(), 1);
    await diffShot();
    await noInjection(carolPage);
  });
});
