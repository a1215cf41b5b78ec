import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { importPublicJwk, jwkThumbprint } from '@writ/sdk/jose';
import AjvDraft04 from 'ajv-draft-04';
import ajvFormats from 'ajv-formats';
import { HeldSecrets } from '../src/scan/held-secrets.js';
import { type ScanFinding, scan } from '../src/scan/scan.js';
import { gitHistoryInputs, type SkipCounter, streamInputs } from '../src/scan/sources.js';
import { type OperatorCli, operatorCli, WRIT_MAIN } from './helpers/cli.js';
import { serverKeys } from './helpers/dpop.js';
import { type Harness, LEGACY_SECRET, LEGACY_WORKLOAD, startHarness } from './helpers/harness.js';

// Issue 17, acceptance of `writ scan`: a git repository built here, with 40 Writ tokens planted across
// its history (live, expired, revoked, signed by another key in the same shape, truncated, inside JSON,
// URL-encoded), 40 vendor secrets of kinds the rule preset knows, 20 near-misses and Writ's own legacy
// client secret. The scan runs as an operator would run it (the CLI, against a listening server).

const SARIF_SCHEMA = new URL('../../test/fixtures/sarif/sarif-schema-2.1.0.json', import.meta.url);
const fp = (s: string) => createHash('sha256').update(s).digest('base64url');
const ALNUM = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const rand = (n: number, set = ALNUM) => Array.from(randomBytes(n), (b) => set[b % set.length]).join('');
const DIGITS = '0123456789';
const HEX = '0123456789abcdef';

/** A new P-256 key that signs tokens in Writ's exact shape (typ, kid writ-<thumbprint>, alg). */
function writShapedSigner(kid?: string) {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' }) as Record<string, unknown>;
  const k = kid ?? `writ-${jwkThumbprint(jwk)}`;
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  return {
    /** The public key, as a verifier imports it from a JWKS. */
    key: importPublicJwk({ ...jwk, kid: k, alg: 'ES256' }),
    sign(claims: Record<string, unknown>): string {
      const input = `${b64({ typ: 'at+jwt', kid: k, alg: 'ES256' })}.${b64(claims)}`;
      return `${input}.${sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
    },
  };
}

/** A token in Writ's exact shape, signed by a key that is not the server's. */
const foreignToken = (claims: Record<string, unknown>, kid?: string): string =>
  writShapedSigner(kid).sign(claims);

const percentEncoded = (s: string) =>
  Array.from(s, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`).join('');

/** 40 vendor secrets of 18 kinds the recommended preset knows, with the rule each must be found by. */
function vendorSecrets(): Array<{ secret: string; rule: string; exact: boolean }> {
  const pem = generateKeyPairSync('rsa', { modulusLength: 1024 })
    .privateKey.export({ type: 'pkcs1', format: 'pem' })
    .toString();
  const makers: Array<[string, () => string]> = [
    ['github', () => `ghp_${rand(36)}`],
    ['github', () => `gho_${rand(36)}`],
    ['github', () => `ghs_${rand(36)}`],
    ['github', () => `ghu_${rand(36)}`],
    ['github', () => `ghr_${rand(36)}`],
    ['github', () => `github_pat_${rand(22)}_${rand(59)}`],
    ['slack', () => `xoxb-${rand(12, DIGITS)}-${rand(13, DIGITS)}-${rand(24)}`],
    ['slack', () => `xoxp-${rand(12, DIGITS)}-${rand(12, DIGITS)}-${rand(13, DIGITS)}-${rand(32, HEX)}`],
    [
      'slack',
      () =>
        `https://hooks.slack.com/services/T${rand(8, 'ABCDEFGHIJ0123456789')}/B${rand(8, 'ABCDEFGHIJ0123456789')}/${rand(24)}`,
    ],
    ['npm', () => `npm_${rand(36)}`],
    ['openai', () => `sk-${rand(20)}T3BlbkFJ${rand(20)}`],
    ['anthropic', () => `sk-ant-api03-${rand(93, `${ALNUM}_-`)}AA`],
    ['linear', () => `lin_api_${rand(40)}`],
    ['sendgrid', () => `SG.${rand(22)}.${rand(43)}`],
    ['shopify', () => `shpat_${rand(32, HEX)}`],
  ];
  const out: Array<{ secret: string; rule: string; exact: boolean }> = [];
  for (let i = 0; out.length < 36; i++) {
    const [rule, make] = makers[i % makers.length]!;
    out.push({ secret: make(), rule: `@secretlint/secretlint-rule-${rule}`, exact: true });
  }
  out.push({ secret: pem, rule: '@secretlint/secretlint-rule-privatekey', exact: false });
  out.push({
    secret: generateKeyPairSync('rsa', { modulusLength: 1024 })
      .privateKey.export({ type: 'pkcs1', format: 'pem' })
      .toString(),
    rule: '@secretlint/secretlint-rule-privatekey',
    exact: false,
  });
  for (let i = 0; i < 2; i++)
    out.push({
      secret: `postgres://app:${rand(16)}@db${i}.internal:5432/app`,
      rule: '@secretlint/secretlint-rule-database-connection-string',
      exact: false,
    });
  return out;
}

/** 20 strings that look a little like secrets or Writ tokens and are neither. */
function nearMisses(writLike: { jwt: string; oldHeader: string; bareKid: string }): string[] {
  return [
    `ghp_${rand(20)}`,
    `token: xoxb-${rand(6, DIGITS)}`,
    `npm_${rand(10)}`,
    `sk-${rand(10)}`,
    writLike.jwt,
    writLike.oldHeader,
    writLike.bareKid,
    'eyJ0eXAiOiJhdCtqd3QiLCJraWQiOiJ3cm', // the prefix, one character short
    `AAAA${writLike.oldHeader.replace(/^[^.]*/, 'eyJ0eXAiOiJhdCtqd3QiLCJraWQiOiJ3cml0L')}`, // glued to a longer run
    `client_secret: ${'$'}{{ secrets.CLIENT_SECRET }}`,
    'client_secret = "<your-secret>"',
    'client_secret=short',
    `AKIA${rand(10, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ')}`,
    '-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----',
    'https://hooks.slack.com/services/',
    '123e4567-e89b-12d3-a456-426614174000',
    createHash('sha256').update('x').digest('hex'),
    'Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.ZRrHA1JJJW8opsbCGfG_HACGpVUMN_a9IV7pAx_Zmeo',
    'postgres://localhost:5432/app',
    'ghp_token_name_variable',
  ];
}

interface Planted {
  token: string;
  /** What the scan must say. */
  status: 'confirmed' | 'candidate' | 'truncated';
  state?: 'live' | 'expired' | 'revoked';
  jti?: string;
}

describe('writ scan: a git history with 40 planted Writ tokens, 40 vendor secrets and 20 near-misses', () => {
  let h: Harness;
  let repo: string;
  let work: string;
  let cli: OperatorCli;
  /** Server clock: real time plus `offset`, so tokens can be issued in the past and be expired now. */
  let offset = -2 * 3600_000;
  const planted: Planted[] = [];
  /** Live tokens that are planted only truncated: the scan must not revoke them. */
  const truncatedSources: string[] = [];
  const vendors = vendorSecrets();
  /** file → line → secret, for secrets whose match is not the exact string (a PEM block, a URL). */
  const vendorSites: Array<{ path: string; line: number; rule: string; secret: string; exact: boolean }> = [];

  const issue = async (): Promise<string> => {
    const r = await h.requestToken();
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body['access_token'] as string;
  };
  const jtiOf = (t: string) =>
    (JSON.parse(Buffer.from(t.split('.')[1]!, 'base64url').toString()) as { jti: string }).jti;

  before(async () => {
    h = await startHarness({ listen: true, clock: { now: () => Date.now() + offset } });
    cli = operatorCli(h, { timeoutMs: 120_000 });
    // Issued two hours ago, expired now (the class's max TTL is 15 minutes).
    const expired = [];
    for (let i = 0; i < 6; i++) expired.push(await issue());
    offset = 0;
    const live = [];
    for (let i = 0; i < 16; i++) live.push(await issue());
    const revoked = [];
    for (let i = 0; i < 6; i++) {
      const t = await issue();
      const r = await h.admin('POST', '/revocations', { kind: 'jti', value: jtiOf(t), reason: 'test' });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      revoked.push(t);
    }
    for (let i = 0; i < 6; i++) truncatedSources.push(await issue());
    const now = Math.floor(Date.now() / 1000);
    const claims = (i: number) => ({
      iss: i % 2 === 0 ? h.issuer : 'https://other-writ.example',
      sub: 'spiffe://test.writ/reports/exporter',
      aud: 'https://reports.test.writ',
      client_id: 'spiffe://test.writ/reports/exporter',
      scope: 'reports:read',
      iat: now,
      nbf: now,
      exp: now + 300,
      jti: `forged-${i}`,
      cls: 'reports-read',
    });
    const ourKid = (await serverKeys(h))[0]!.kid!;
    const foreign = [0, 1, 2, 3, 4, 5].map((i) => foreignToken(claims(i), i < 2 ? ourKid : undefined));

    for (const t of [...live]) planted.push({ token: t, status: 'confirmed', state: 'live', jti: jtiOf(t) });
    for (const t of expired) planted.push({ token: t, status: 'confirmed', state: 'expired', jti: jtiOf(t) });
    for (const t of revoked) planted.push({ token: t, status: 'confirmed', state: 'revoked', jti: jtiOf(t) });
    for (const t of foreign) planted.push({ token: t, status: 'candidate' });
    const [a, b, c, d, e, f] = truncatedSources as [string, string, string, string, string, string];
    for (const t of [
      a.slice(0, 40),
      b.slice(0, 116),
      c.slice(0, 117),
      d.slice(0, 200),
      e.slice(0, -86),
      f.slice(0, -10),
    ])
      planted.push({ token: t, status: 'truncated' });
    assert.equal(planted.length, 40);

    // The repository: six commits on two branches and a merge; some files deleted, so their tokens
    // live only in history.
    work = mkdtempSync(join(tmpdir(), 'writ-scan-test-'));
    repo = join(work, 'repo');
    mkdirSync(repo);
    const git = (...args: string[]) =>
      execFileSync('git', ['-C', repo, ...args], {
        env: {
          ...process.env,
          GIT_AUTHOR_NAME: 't',
          GIT_AUTHOR_EMAIL: 't@example.com',
          GIT_COMMITTER_NAME: 't',
          GIT_COMMITTER_EMAIL: 't@example.com',
          GIT_CONFIG_NOSYSTEM: '1',
          HOME: work,
        },
      }).toString();
    git('init', '-q', '-b', 'main');
    const put = (path: string, text: string) => {
      mkdirSync(dirname(join(repo, path)), { recursive: true });
      writeFileSync(join(repo, path), text);
    };
    const commit = (msg: string) => {
      git('add', '-A');
      git('commit', '-q', '-m', msg);
    };
    const lines = (...l: string[]) => `${l.join('\n')}\n`;
    // Commit 1: live tokens in a CI log (plain) and expired ones in a ticket export.
    put(
      'ci/deploy.log',
      lines('step 1', ...live.slice(0, 8).map((t) => `curl -H "Authorization: DPoP ${t}" https://api`)),
    );
    put('tickets/4711.txt', lines(...expired.map((t) => `the token was ${t} yesterday`)));
    commit('one');
    // Commit 2: live tokens inside JSON, revoked ones in a chat export; the ticket is deleted.
    put(
      'config/tokens.json',
      JSON.stringify(
        { tokens: live.slice(8, 12).map((t) => ({ access_token: t, token_type: 'DPoP' })) },
        null,
        2,
      ),
    );
    put('chat/export.txt', lines(...revoked.map((t) => `<bob> try ${t}`)));
    rmSync(join(repo, 'tickets/4711.txt'));
    commit('two');
    // Commit 3, on a branch: URL-encoded live tokens (in a query string and fully percent-encoded).
    git('checkout', '-q', '-b', 'feature');
    put(
      'docs/links.md',
      lines(
        `https://app.example/cb?access_token=${live[12]}&x=1`,
        `payload=%7B%22t%22%3A%22${live[13]}%22%7D`,
        `https://app.example/cb?t=${percentEncoded(live[14]!)}`,
        `encoded: ${percentEncoded(live[15]!)}`,
      ),
    );
    commit('three');
    git('checkout', '-q', 'main');
    // Commit 4: look-alikes of another key and truncated tokens.
    put('notes/other.txt', lines(...foreign.map((t) => `token ${t}`)));
    put(
      'logs/cut.log',
      lines(...planted.filter((p) => p.status === 'truncated').map((p) => `cut: ${p.token}`)),
    );
    commit('four');
    // Commit 5: vendor secrets and the legacy client secret; near-misses.
    const vendorFiles = new Map<string, string[]>();
    vendors.forEach((v, i) => {
      const path = `secrets/vendor-${i % 4}.env`;
      const list = vendorFiles.get(path) ?? [];
      const line = list.reduce((n, x) => n + x.split('\n').length, 0) + 1;
      list.push(`KEY_${i}=${v.secret}`);
      vendorFiles.set(path, list);
      vendorSites.push({ path, line, rule: v.rule, secret: v.secret, exact: v.exact });
    });
    for (const [path, list] of vendorFiles) put(path, lines(...list));
    put(
      'app/legacy.env',
      lines(
        'CLIENT_ID=spiffe://test.writ/legacy/cron',
        `CLIENT_SECRET=${LEGACY_SECRET}`,
        `client_secret: ${rand(24)}`,
      ),
    );
    const ourKidHeader = `writ-${'A'.repeat(43)}`;
    const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const body = b64(claims(0));
    const sig = rand(86, `${ALNUM}_-`);
    const misses = nearMisses({
      jwt: `${b64({ typ: 'JWT', kid: ourKidHeader, alg: 'ES256' })}.${body}.${sig}`,
      oldHeader: `${b64({ alg: 'ES256', typ: 'at+jwt', kid: ourKidHeader })}.${body}.${sig}`,
      bareKid: `${b64({ typ: 'at+jwt', kid: 'A'.repeat(48), alg: 'ES256' })}.${body}.${sig}`,
    });
    assert.equal(misses.length, 20);
    put('near-misses/a.txt', lines(...misses.slice(0, 10)));
    commit('five');
    // Merge the branch; then delete the near-miss file and add the rest of them in another.
    git('merge', '-q', '--no-ff', '-m', 'merge', 'feature');
    rmSync(join(repo, 'near-misses/a.txt'));
    put('near-misses/b.txt', lines(...misses.slice(10)));
    commit('six');
  });
  after(async () => {
    await h.close();
    rmSync(work, { recursive: true, force: true });
  });

  const runScan = async (args: string[]) => {
    const r = await cli(['scan', '--no-progress', ...args]);
    return r;
  };
  const findingsOf = (stdout: string) => (JSON.parse(stdout) as { findings: ScanFinding[] }).findings;

  it('finds every Writ token in history and classifies each; finds every vendor secret; names the one Writ holds; no near-miss', async () => {
    const r = await runScan(['--git', repo, '--format', 'json']);
    assert.equal(r.code, 1, `findings exit 1: ${r.stderr}`);
    const findings = findingsOf(r.stdout);
    const tokens = findings.filter((f) => f.type === 'writ_token');
    for (const p of planted) {
      const f = tokens.filter((x) => x.fingerprint === fp(p.token));
      assert.equal(f.length, 1, `${p.status} ${p.state ?? ''} found once: ${p.token.slice(0, 50)}…`);
      assert.equal(f[0]!.status, p.status, p.token.slice(0, 50));
      if (p.state) assert.equal(f[0]!.state, p.state, `${p.jti}`);
      if (p.jti) assert.equal(f[0]!.jti, p.jti);
      assert.equal(
        f[0]!.action,
        p.status === 'confirmed' ? 'none' : undefined,
        'a scan without --revoke changes nothing',
      );
      assert.ok(f[0]!.commit && /^[0-9a-f]{40}$/.test(f[0]!.commit), 'history findings name their commit');
    }
    assert.equal(tokens.length, 40, 'nothing else is taken for a Writ token');
    // Locations: the CI log's tokens at their lines; the deleted ticket's tokens in the commit that added it.
    const ci = tokens.filter((f) => f.path === 'ci/deploy.log').map((f) => f.line);
    assert.deepEqual(ci, [2, 3, 4, 5, 6, 7, 8, 9]);
    assert.equal(tokens.filter((f) => f.path === 'tickets/4711.txt').length, 6);
    assert.deepEqual(
      tokens.filter((f) => f.encoding === 'url').length,
      2,
      'two tokens were found only percent-decoded',
    );

    const secrets = findings.filter((f) => f.type === 'secret');
    for (const v of vendorSites) {
      const hit = secrets.find((s) => s.path === v.path && s.line === v.line && s.rule === v.rule);
      assert.ok(hit, `${v.rule} at ${v.path}:${v.line}`);
      if (v.exact) assert.equal(hit.fingerprint, fp(v.secret));
      assert.equal(hit.ours, undefined);
    }
    const legacy = secrets.filter((s) => s.path === 'app/legacy.env');
    assert.equal(legacy.length, 2, JSON.stringify(legacy));
    assert.equal(legacy[0]!.ours, `legacy client secret of ${LEGACY_WORKLOAD}`);
    assert.equal(legacy[1]!.ours, undefined, 'a client secret Writ does not hold is found, not named');
    assert.equal(secrets.length, vendorSites.length + 2, 'nothing else is taken for a secret');
    assert.deepEqual(
      findings.filter((f) => f.path.startsWith('near-misses/')),
      [],
    );
    // No token or secret in the report, only fingerprints and previews.
    for (const p of planted) assert.ok(!r.stdout.includes(p.token.slice(-30)));
    for (const v of vendors) assert.ok(!r.stdout.includes(v.secret.slice(-12)));
    assert.ok(!r.stdout.includes(LEGACY_SECRET));
  });

  it('SARIF output validates against the SARIF 2.1.0 schema and carries every finding', async () => {
    const r = await runScan(['--git', repo, '--format', 'sarif']);
    assert.equal(r.code, 1, r.stderr);
    const ajv = new AjvDraft04.default({ allErrors: true, strict: false });
    ajvFormats.default(ajv);
    const validate = ajv.compile(JSON.parse(readFileSync(SARIF_SCHEMA, 'utf8')));
    const sarif = JSON.parse(r.stdout) as { runs: Array<{ results: Array<Record<string, unknown>> }> };
    assert.ok(validate(sarif), JSON.stringify(validate.errors?.slice(0, 5), null, 2));
    assert.equal(sarif.runs[0]!.results.length, 40 + vendorSites.length + 2);
    // The validator can fail: a result without a message is refused.
    delete sarif.runs[0]!.results[0]!['message'];
    assert.equal(validate(sarif), false);
    // No token or secret in SARIF either (code hosts store and show it).
    for (const p of planted) assert.ok(!r.stdout.includes(p.token.slice(-30)));
    for (const v of vendors) assert.ok(!r.stdout.includes(v.secret.slice(-12)));
    assert.ok(!r.stdout.includes(LEGACY_SECRET));
  });

  it('the table names every finding and prints no token or secret', async () => {
    const r = await runScan(['--git', repo]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stdout, new RegExp(`^${40 + vendorSites.length + 2} finding\\(s\\) in `, 'm'));
    for (const p of planted) assert.ok(!r.stdout.includes(p.token.slice(-30)));
    for (const v of vendors) assert.ok(!r.stdout.includes(v.secret.slice(-12)));
    assert.ok(!r.stdout.includes(LEGACY_SECRET));
    assert.ok(!r.stderr.includes(planted[0]!.token.slice(-30)));
  });

  it('--revoke revokes exactly the live tokens, each once, and records them as leak findings', async () => {
    const jtiRevocations = async () => {
      const r = await h.admin('GET', '/revocations');
      return new Set(
        (r.body['revocations'] as Array<{ kind: string; value: string }>)
          .filter((x) => x.kind === 'jti')
          .map((x) => x.value),
      );
    };
    const before = await jtiRevocations();
    const r = await runScan(['--git', repo, '--format', 'json', '--revoke', '--no-secrets']);
    assert.equal(r.code, 1, r.stderr);
    const after = await jtiRevocations();
    const added = [...after].filter((j) => !before.has(j)).sort();
    const live = planted.filter((p) => p.state === 'live').map((p) => p.jti!);
    assert.deepEqual(added, [...live].sort(), 'the 16 live tokens, no other');
    for (const t of truncatedSources) assert.ok(!after.has(jtiOf(t)), 'a truncated token is never revoked');
    const findings = findingsOf(r.stdout).filter((f) => f.status === 'confirmed');
    assert.equal(findings.filter((f) => f.action === 'revoked').length, 16);
    assert.equal(findings.filter((f) => f.action === 'recorded').length, 12, 'expired and revoked: recorded');
    const leaks = await h.admin('GET', '/detections/findings?rule=leak&limit=100');
    assert.equal((leaks.body['findings'] as unknown[]).length, 28);
    // A second run finds the same tokens, now all revoked or expired, and revokes nothing more.
    const again = await runScan(['--git', repo, '--format', 'json', '--revoke', '--no-secrets']);
    assert.equal(findingsOf(again.stdout).filter((f) => f.action === 'revoked').length, 0);
    assert.deepEqual(await jtiRevocations(), after);
  });
});

describe('writ scan: files, standard input, offline keys and exit codes', () => {
  let h: Harness;
  let dir: string;
  let cli: OperatorCli;
  before(async () => {
    h = await startHarness({ listen: true });
    cli = operatorCli(h);
    dir = mkdtempSync(join(tmpdir(), 'writ-scan-files-'));
  });
  after(async () => {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('scans stdin with a JWKS file and no server: ours confirmed (state unknown), others candidates', async () => {
    const r = await h.requestToken();
    const token = r.body['access_token'] as string;
    const jwks = join(dir, 'jwks.json');
    writeFileSync(jwks, (await h.writ.app.inject({ url: '/.well-known/jwks.json' })).body);
    const other = foreignToken({ iss: h.issuer, jti: 'x', exp: 1 });
    const child = spawn(
      process.execPath,
      [
        WRIT_MAIN,
        '--server',
        'http://127.0.0.1:9',
        'scan',
        '-',
        '--offline',
        '--jwks',
        jwks,
        '--format',
        'json',
        '--no-progress',
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
    });
    child.stdin.end(`line one\nAuthorization: Bearer ${token}\n${'x'.repeat(100)}\nother ${other}\n`);
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.equal(code, 1);
    const f = (JSON.parse(out) as { findings: ScanFinding[] }).findings;
    assert.deepEqual(
      f.map((x) => [x.path, x.line, x.status, x.state]),
      [
        ['-', 2, 'confirmed', 'unknown'],
        ['-', 4, 'candidate', undefined],
      ],
    );
    assert.equal(f[1]!.reason, 'no_key');
  });

  it('exit 0 on a clean tree (binary and oversized files skipped), 1 on a finding, 2 when the scan cannot run', async () => {
    const clean = join(dir, 'clean');
    mkdirSync(clean);
    writeFileSync(join(clean, 'readme.txt'), 'nothing here\n');
    writeFileSync(
      join(clean, 'blob.bin'),
      Buffer.concat([Buffer.from([0, 1, 2]), Buffer.from(`ghp_${rand(36)}`)]),
    );
    writeFileSync(join(clean, 'big.txt'), `ghp_${rand(36)}\n${'y'.repeat(5000)}`);
    const ok = await cli(['scan', clean, '--no-progress', '--max-file-size', '4096']);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /skipped 1 too large, 1 binary/);
    const dirty = join(dir, 'dirty.txt');
    writeFileSync(dirty, `token = ghp_${rand(36)}\n`);
    const found = await cli(['scan', dirty, '--no-progress']);
    assert.equal(found.code, 1);
    assert.match(found.stdout, /GITHUB_TOKEN/);
    assert.equal(
      (await cli(['scan', dirty, '--no-progress', '--fail-on', 'ours'])).code,
      0,
      'not ours: passes',
    );
    const broken = await cli(['scan', '--offline', dirty]);
    assert.equal(broken.code, 2);
    assert.match(broken.stderr, /--offline needs --jwks/);
    const noGit = await cli(['scan', '--git', join(dir, 'no-such-repo'), '--no-progress']);
    assert.equal(noGit.code, 2);
    assert.match(noGit.stderr, /git log failed/);
  });

  it('names a vendor secret Writ holds, through the held-secrets seam', async () => {
    const secret = `ghp_${rand(36)}`;
    const held = await HeldSecrets.load([
      {
        description: 'vendor keys (test)',
        load: async () => [
          { sha256: createHash('sha256').update(secret).digest('hex'), name: 'vendor key github/ci' },
        ],
      },
    ]);
    const skipped: SkipCounter = { tooLarge: 0, binary: 0, unreadable: 0 };
    async function* one() {
      yield { where: { path: 'x.env' }, data: Buffer.from(`A=${secret}\nB=ghp_${rand(36)}\n`), firstLine: 1 };
    }
    const { findings } = await scan(
      one(),
      { keys: [], held, revoke: false, secrets: true, nowMs: Date.now() },
      skipped,
    );
    assert.deepEqual(
      findings.map((f) => [f.line, f.ours]),
      [
        [1, 'vendor key github/ci'],
        [2, undefined],
      ],
    );
    // gitHistoryInputs of a directory that is no repository fails, it does not yield nothing.
    await assert.rejects(async () => {
      for await (const _ of gitHistoryInputs(dir, 1024, skipped)) void _;
    }, /git log failed/);
  });
});

describe('writ scan: text as read', () => {
  it('reads UTF-8 text and plain ASCII alike: the same findings, columns in UTF-16 code units', async () => {
    const secret = `ghp_${rand(36)}`;
    const clientSecret = rand(24);
    const skipped: SkipCounter = { tooLarge: 0, binary: 0, unreadable: 0 };
    async function* two() {
      const line = (key: string) => `${key} ${secret} client_secret=${clientSecret}\n`;
      yield { where: { path: 'ascii.txt' }, data: Buffer.from(`x = "v"\n${line('key')}`), firstLine: 1 };
      yield { where: { path: 'utf8.txt' }, data: Buffer.from(`ü = "✓"\n${line('kéy')}`), firstLine: 1 };
    }
    const { findings } = await scan(
      two(),
      { keys: [], held: await HeldSecrets.load([]), revoke: false, secrets: true, nowMs: Date.now() },
      skipped,
    );
    const at = 'key '.length + secret.length + ' client_secret='.length + 1;
    const expected = (path: string) => [
      [path, 2, 5, '@secretlint/secretlint-rule-github', fp(secret)],
      [path, 2, at, 'writ/client-secret', fp(clientSecret)],
    ];
    assert.deepEqual(
      findings.map((f) => [f.path, f.line, f.column, f.rule, f.fingerprint]),
      [...expected('ascii.txt'), ...expected('utf8.txt')],
    );
  });
});

describe('writ scan: Writ tokens classified in batches', () => {
  it('each finding keeps its own file, line and class across batches, a token seen in two files included', async () => {
    const ours = writShapedSigner();
    const other = writShapedSigner();
    const exp = Math.floor(Date.now() / 1000) + 300;
    // 5 files of 40 tokens each (200: past three batches of 64): ours, another key's, ours cut short.
    const planted: Array<{ path: string; line: number; token: string; status: string; jti?: string }> = [];
    const files: Array<{ path: string; lines: string[] }> = [];
    for (let f = 0; f < 5; f++) {
      const path = `logs/run-${f}.log`;
      const lines = [`run ${f}`];
      for (let i = 0; i < 40; i++) {
        const jti = `f${f}-t${i}`;
        const kind = i % 3;
        const signed = (kind === 1 ? other : ours).sign({
          iss: 'https://writ.test',
          sub: `w-${f}`,
          jti,
          exp,
        });
        const token = kind === 2 ? signed.slice(0, -20) : signed;
        lines.push(`${i} Authorization: Bearer ${token}`);
        planted.push({
          path,
          line: lines.length,
          token,
          status: ['confirmed', 'candidate', 'truncated'][kind]!,
          // A truncated token's jti is read unverified from what is left; a candidate's is not read.
          ...(kind !== 1 ? { jti } : {}),
        });
      }
      files.push({ path, lines });
    }
    // The first file's first token pasted again in the last file: classified once, found at both places.
    const again = planted[0]!;
    files[4]!.lines.push(`again ${again.token}`);
    planted.push({ ...again, path: files[4]!.path, line: files[4]!.lines.length });
    const skipped: SkipCounter = { tooLarge: 0, binary: 0, unreadable: 0 };
    async function* inputs() {
      for (const f of files)
        yield { where: { path: f.path }, data: Buffer.from(`${f.lines.join('\n')}\n`), firstLine: 1 };
    }
    const { findings, stats } = await scan(
      inputs(),
      {
        keys: [ours.key],
        held: await HeldSecrets.load([]),
        revoke: false,
        secrets: false,
        nowMs: Date.now(),
      },
      skipped,
    );
    assert.equal(stats.findings, planted.length);
    assert.deepEqual(
      findings.map((f) => [f.path, f.line, f.status, f.jti, f.fingerprint]),
      planted.map((p) => [p.path, p.line, p.status, p.jti, fp(p.token)]),
    );
    assert.ok(
      findings.every((f) => f.preview.length < 20),
      'a preview, never the token',
    );
  });
});

describe('writ scan: standard input in bounded pieces', () => {
  it('cuts at line ends, never above the bound, and keeps every line number', async () => {
    const text = Array.from({ length: 200 }, (_, i) => `line ${i + 1} ${'x'.repeat(i % 37)}`).join('\n');
    const skipped: SkipCounter = { tooLarge: 0, binary: 0, unreadable: 0 };
    // Fed in odd-sized chunks, as a pipe delivers them.
    const bytes = Buffer.from(text);
    const chunks = [];
    for (let i = 0; i < bytes.length; i += 77) chunks.push(bytes.subarray(i, i + 77));
    const pieces = [];
    for await (const p of streamInputs(Readable.from(chunks), 128, skipped)) pieces.push(p);
    assert.ok(pieces.length > 20);
    assert.equal(Buffer.concat(pieces.map((p) => p.data)).toString(), text, 'nothing lost, nothing repeated');
    let line = 1;
    for (const p of pieces) {
      assert.ok(p.data.length <= 128);
      assert.equal(p.firstLine, line);
      const s = p.data.toString();
      if (p !== pieces.at(-1)) assert.ok(s.endsWith('\n'), 'cut after a line end');
      assert.ok(s.startsWith('line '), JSON.stringify(s.slice(0, 10)));
      assert.equal(Number(s.split(' ')[1]), line, 'the piece starts at the line it says');
      line += s.split('\n').length - 1;
    }
  });
});
