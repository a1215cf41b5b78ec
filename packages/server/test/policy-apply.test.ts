import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { fakeClock } from '../src/clock.js';
import { validateConfig } from '../src/config/config-dir.js';
import { resolveSettings } from '../src/config/settings.js';
import { kekFromBytes } from '../src/keys/kek.js';
import type { PolicySources } from '../src/policy/compile.js';
import { applyPolicies, compileSources, updateResource } from '../src/policy/operations.js';
import { readPolicyDir } from '../src/policy/policy-dir.js';
import { openSqliteStore } from '../src/store/sqlite/sqlite-store.js';
import { createWrit, type Writ } from '../src/writ.js';
import { type OperatorCli, operatorCli } from './helpers/cli.js';
import { writeHarnessConfig } from './helpers/config-dir.js';
import { configDocuments, type Harness, startHarness, testKey } from './helpers/harness.js';
import { adminJson, policyVersion, putResource } from './helpers/policy.js';

const CASES = fileURLToPath(new URL('../../test/policy-cases', import.meta.url));

describe('writ apply with policies/, over real HTTP', () => {
  let h: Harness;
  let writ: OperatorCli;
  let config: string;
  before(async () => {
    h = await startHarness({ listen: true });
    writ = operatorCli(h);
    // The harness's own configuration as a config directory, plus the repo's policy set.
    config = writeHarnessConfig(h);
    cpSync(join(CASES, 'policies'), join(config, 'policies'), { recursive: true });
  });
  after(async () => {
    await h.close();
  });

  it('applies the policy set and reports its version; the server then decides with it', async () => {
    const before = await policyVersion(h);
    const r = await writ(['apply', config]);
    assert.equal(r.code, 0, r.stderr);
    const after = await policyVersion(h);
    assert.notEqual(after, before);
    assert.match(r.stdout, new RegExp(`policy set now ${after} \\(12 policies\\)`));
    // The harness workload is prod and asks from 127.0.0.1: outside the prod network of the set.
    const denied = await h.requestToken();
    assert.equal(denied.status, 400);
    assert.equal(denied.body['error'], 'access_denied');
    const again = await writ(['apply', config]);
    assert.match(again.stdout, new RegExp(`policy set unchanged: ${after}`));
  });

  it('refuses a broken set before sending it, naming file and line, and the server keeps its version', async () => {
    const running = await policyVersion(h);
    writeFileSync(
      join(config, 'policies', 'zz-broken.cedar'),
      'permit (principal, action, resource)\nwhen { context.purpose == 3 };\n',
    );
    const r = await writ(['apply', config]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /policies\/zz-broken\.cedar:2: /);
    assert.equal(await policyVersion(h), running);
    assert.equal((await h.requestToken()).status, 400, 'still deciding with the running set');
    rmSync(join(config, 'policies', 'zz-broken.cedar'));
  });
});

describe('policy state across a restart', () => {
  const kekBytes = randomBytes(32);
  const clock = fakeClock(Date.UTC(2026, 4, 6, 10));
  const keys = { workload: testKey(), other: testKey('EdDSA'), operator: testKey() };
  const settings = resolveSettings(undefined, {}, { 'log.level': 'silent' });
  const policies = readPolicyDir(CASES)!;
  /** A process on `dir`'s store; `config`: a config directory with these `policies/` (null: none). */
  const start = (dir: string, config: { policies: PolicySources | undefined } | undefined) =>
    createWrit({
      settings,
      store: openSqliteStore({ path: join(dir, 'writ.db') }),
      kek: kekFromBytes(kekBytes, 'test'),
      clock,
      logger: pino({ level: 'silent' }),
      ...(config
        ? {
            config: validateConfig(configDocuments(keys), settings.tokens.maxLifetime),
            policies: config.policies,
          }
        : {}),
    });
  const loadedEvents = (w: Writ) => w.ctx.store.queryAudit({ type: 'policy.loaded', limit: 100 });

  it('continues the version counter and keeps resource attributes set through the admin API', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'writ-policy-restart-'));
    try {
      const first = await start(dir, { policies });
      const v1 = first.ctx.policy.version;
      await updateResource(
        first.ctx,
        'https://reports.acme.test',
        { id: 'https://reports.acme.test', sensitivity: 'restricted', environment: 'prod', owner: 'team-x' },
        'operator:ops',
      );
      await first.close();

      const second = await start(dir, { policies });
      try {
        assert.equal(second.ctx.policy.version.id, v1.id, 'the same set keeps its version across a restart');
        assert.equal(second.ctx.policy.resource('https://reports.acme.test').owner, 'team-x');
        assert.equal((await loadedEvents(second)).length, 1, 'an unchanged set is not recorded again');
      } finally {
        await second.close();
      }
      // The config directory lost its policies/: the built-in set, audited as a load at start.
      const third = await start(dir, { policies: undefined });
      const v3 = third.ctx.policy.version;
      try {
        assert.equal(v3.builtIn, true);
        assert.equal(v3.counter, v1.counter + 1, 'the counter continues from the stored set');
        const loaded = await loadedEvents(third);
        assert.deepEqual(
          [loaded.length, loaded[1]!.actor, loaded[1]!.data['previous']],
          [2, 'startup', v1.id],
        );
      } finally {
        await third.close();
      }
      // No config directory at all: the stored set, as it is.
      const fourth = await start(dir, undefined);
      try {
        assert.equal(fourth.ctx.policy.version.id, v3.id);
        assert.equal(fourth.ctx.policy.resource('https://reports.acme.test').owner, 'team-x');
        assert.equal((await loadedEvents(fourth)).length, 2);
      } finally {
        await fourth.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a set applied through the admin API outlives a restart with the unchanged config directory; a changed directory is applied', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'writ-policy-restart-'));
    const other: PolicySources = {
      files: [
        {
          file: 'policies/only.cedar',
          text: 'permit (principal is Workload, action == Action::"issue", resource);\n',
        },
      ],
      resources: [],
    };
    try {
      const first = await start(dir, { policies });
      const applied = await applyPolicies(first.ctx, other, 'operator:ops', false);
      assert.equal(applied.changed, true);
      await first.close();

      const second = await start(dir, { policies });
      try {
        assert.equal(
          second.ctx.policy.version.id,
          applied.version.id,
          'the newest applied set, not the directory',
        );
        assert.equal((await loadedEvents(second)).length, 2);
      } finally {
        await second.close();
      }
      const edited: PolicySources = { ...policies, files: [...policies.files, other.files[0]!] };
      const third = await start(dir, { policies: edited });
      try {
        const v = third.ctx.policy.version;
        assert.equal(v.counter, applied.version.counter + 1, 'the edited directory is applied');
        assert.equal(v.policies, compileSources(edited).policies.length);
        const loaded = await loadedEvents(third);
        assert.deepEqual([loaded.length, loaded[2]!.actor], [3, 'startup']);
        const stored = await third.ctx.store.getPolicySet();
        assert.equal(stored?.hash, v.hash);
      } finally {
        await third.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a store an earlier build wrote (no stored set): the counter and the resource attributes come from the audit log', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'writ-policy-legacy-'));
    try {
      const store = openSqliteStore({ path: join(dir, 'writ.db') });
      const earlier = compileSources(policies);
      for (const draft of [
        {
          type: 'policy.loaded',
          data: { version: `7-${earlier.hash.slice(0, 12)}`, counter: 7, hash: earlier.hash },
        },
        {
          type: 'resource.updated',
          data: { id: 'https://a.test', sensitivity: 'restricted', environment: 'prod', owner: 'team-a' },
        },
        {
          type: 'resource.updated',
          data: { id: 'https://b.test', sensitivity: 'public', environment: '', owner: '' },
        },
        { type: 'resource.updated', data: { id: 'https://b.test', cleared: true } },
      ])
        await store.appendAudit({ ...draft, ts: clock.now(), outcome: 'success', actor: 'startup' });
      await store.close();

      const w = await start(dir, { policies });
      try {
        assert.equal(w.ctx.policy.version.id, `7-${earlier.hash.slice(0, 12)}`);
        assert.deepEqual(
          w.ctx.policy
            .resources()
            .filter((r) => r.source === 'admin')
            .map((r) => [r.id, r.owner]),
          [['https://a.test', 'team-a']],
        );
        assert.deepEqual(
          (await w.ctx.store.listResourceAttributes()).map((r) => r.id),
          ['https://a.test'],
        );
      } finally {
        await w.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a PUT through the admin API is what the next process replays', async () => {
    const h = await startHarness();
    try {
      const r = await putResource(h, {
        id: 'https://x.test',
        sensitivity: 'restricted',
        environment: 'prod',
        owner: 'o',
      });
      assert.equal(r.status, 200);
      const events = await h.auditEvents('resource.updated');
      assert.deepEqual(events[0]!.data, {
        id: 'https://x.test',
        sensitivity: 'restricted',
        environment: 'prod',
        owner: 'o',
      });
      const list = await adminJson(h, 'GET', '/resources');
      assert.deepEqual(list.body['resources'], [
        { id: 'https://x.test', sensitivity: 'restricted', environment: 'prod', owner: 'o', source: 'admin' },
      ]);
      const bad = await adminJson(h, 'PUT', `/resources/${encodeURIComponent('https://y.test')}`, {
        sensitivity: 'Top Secret',
      });
      assert.equal(bad.status, 400);
      const missing = await adminJson(h, 'DELETE', `/resources/${encodeURIComponent('https://y.test')}`);
      assert.equal(missing.status, 404);
    } finally {
      await h.close();
    }
  });
});
