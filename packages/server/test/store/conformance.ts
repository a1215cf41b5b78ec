import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { REVOCATION_KINDS } from '@writ/sdk/wire';
import type { AuditDraft } from '../../src/audit/audit-event.js';
import { AuditChainBrokenError, chainHash, GENESIS_HASH } from '../../src/audit/chain.js';
import { verifyAuditChain } from '../../src/audit/verify.js';
import { StoreUnavailableError } from '../../src/errors.js';
import type { TrustedIssuer } from '../../src/federation/trusted-issuer.js';
import type { KeyRecord } from '../../src/keys/key-record.js';
import {
  POLICY_VERSIONS_KEPT,
  type StoredPolicySet,
  type StoredPolicyVersion,
} from '../../src/policy/policy-set.js';
import type { Operator } from '../../src/registry/operator.js';
import type { TokenClass } from '../../src/registry/token-class.js';
import type { Workload } from '../../src/registry/workload.js';
import type { NewRevocation } from '../../src/revocation/new-revocation.js';
import { IssuanceRefusedError, type IssuanceWrite } from '../../src/store/issuance-write.js';
import type { Store } from '../../src/store/store.js';
import type { Task } from '../../src/tasks/task.js';
import type { WorkloadTemplate } from '../../src/templates/workload-template.js';
import type { IssuedToken, TokenMatch } from '../../src/tokens/issued-token.js';
import { configFileConformanceCases } from './conformance-config-files.js';
import { consoleConformanceCases } from './conformance-console.js';
import { detectionConformanceCases } from './conformance-detection.js';
import { governanceConformanceCases } from './conformance-governance.js';
import { peopleConformanceCases } from './conformance-people.js';
import { rateLimitConformanceCases } from './conformance-rate-limit.js';
import { signalConformanceCases } from './conformance-signals.js';
import { vendorKeyConformanceCases } from './conformance-vendor-keys.js';

/** A store under test, on a database of its own. */
export interface StoreUnderTest {
  store: Store;
  /** Another instance on the same database, as a second node (or process) would open it. */
  openPeer(): Promise<Store>;
  /** Closes the store and every peer, and removes the database. */
  close(): Promise<void>;
}

const NOW = 1_700_000_000_000;
const NOW_S = NOW / 1000;

function workload(id: string, extra: Partial<Workload> = {}): Workload {
  return {
    id,
    owner: 'team-payments',
    environment: 'prod',
    attributes: { region: 'eu-west-1', tier: 2, public: false },
    classes: ['reports-read'],
    jwks: [{ kty: 'EC', crv: 'P-256', x: 'x-coordinate', y: 'y-coordinate', kid: 'wk1' }],
    ...extra,
  };
}

function tokenClass(name: string, extra: Partial<TokenClass> = {}): TokenClass {
  return {
    name,
    maxTtl: 900,
    defaultTtl: 300,
    audiences: ['https://reports.test'],
    scopes: ['reports:read', 'reports:export'],
    defaultScopes: ['reports:read'],
    binding: 'dpop',
    renewalMaxLifetime: 3600,
    delegationActors: [],
    ...extra,
  };
}

function token(jti: string, extra: Partial<IssuedToken> = {}): IssuedToken {
  return {
    jti,
    sub: 'spiffe://test/w',
    clientId: 'spiffe://test/w',
    cls: 'reports-read',
    aud: 'https://reports.test',
    scope: 'reports:read',
    kid: 'kid-1',
    iat: NOW_S,
    exp: NOW_S + 300,
    fingerprint: `fp-${jti}`,
    ...extra,
  };
}

function task(id: string, extra: Partial<Task> = {}): Task {
  return {
    id,
    workload: 'spiffe://test/w',
    purpose: 'deploy build 42',
    labels: { ci_run: '1234', job: 'deploy' },
    openedBy: 'spiffe://test/w',
    openedAt: NOW,
    deadline: NOW + 60_000,
    leaseUntil: null,
    closedAt: null,
    closeReason: null,
    ...extra,
  };
}

function revocation(extra: Partial<NewRevocation> = {}): NewRevocation {
  return {
    kind: 'jti',
    value: 'some-jti',
    issued_before: null,
    created_at: NOW,
    reason: 'leaked in a log',
    actor: 'operator:admin',
    expires_at: NOW + 3_600_000,
    ...extra,
  };
}

function key(kid: string, extra: Partial<KeyRecord> = {}): KeyRecord {
  return {
    kid,
    alg: 'ES256',
    publicJwk: { kty: 'EC', crv: 'P-256', x: `x-${kid}`, y: `y-${kid}`, kid, alg: 'ES256', use: 'sig' },
    sealedPrivateKey: randomBytes(97),
    state: 'next',
    createdAt: NOW,
    activatedAt: null,
    retiredAt: null,
    notAfter: null,
    ...extra,
  };
}

function draft(i: number, extra: Partial<AuditDraft> = {}): AuditDraft {
  return {
    ts: NOW + i,
    type: 'token.issued',
    outcome: 'success',
    actor: 'spiffe://test/w',
    data: { n: i, nested: { b: [1, 'two', null], a: 'ünïcødé ✓' } },
    ...extra,
  };
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const yieldMacrotask = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Writers commit numbered entries in concurrent transactions on one instance, each doing a different
 * amount of work after taking its number; a reader on another instance follows by sequence number the
 * whole time. A number must never become visible before every lower one: a follower that moved past a
 * gap would never see the entry that fills it.
 */
async function followWhileWriting(
  writer: Store,
  reader: Store,
  writes: number,
  append: (tx: Store, i: number) => Promise<number>,
  readAfter: (s: Store, afterSeq: number) => Promise<number[]>,
): Promise<void> {
  let writing = true;
  const seen: number[] = [];
  const follow = (async () => {
    let after = 0;
    for (;;) {
      const last = !writing;
      const seqs = await readAfter(reader, after);
      for (const seq of seqs) {
        assert.equal(
          seq,
          after + 1,
          `the reader saw ${seq} right after ${after}: a lower number committed later`,
        );
        after = seq;
        seen.push(seq);
      }
      if (last && seqs.length === 0) return;
      if (seqs.length === 0) await yieldMacrotask();
    }
  })();
  follow.catch(() => undefined); // awaited below; keeps an early failure from counting as unhandled
  const numbers = await Promise.all(
    range(1, writes).map((i) =>
      writer.transaction(async (tx) => {
        const seq = await append(tx, i);
        for (let k = 0; k < (i * 7) % 5; k++) await tx.getWorkload('spiffe://test/none');
        return seq;
      }),
    ),
  );
  writing = false;
  await follow;
  assert.deepEqual(
    [...numbers].sort((a, b) => a - b),
    range(1, writes),
  );
  assert.deepEqual(seen, range(1, writes));
}

/**
 * The store contract, written once. Every adapter (and any fake another test uses) runs it:
 * `runStoreConformance('sqlite', async () => ({ store, openPeer, close }))`.
 */
export function runStoreConformance(name: string, open: () => Promise<StoreUnderTest>): void {
  const withStore = async (fn: (t: StoreUnderTest) => Promise<void>) => {
    const t = await open();
    try {
      await fn(t);
    } finally {
      await t.close();
    }
  };

  describe(`store conformance: ${name}`, () => {
    describe('workloads, classes, operators', () => {
      it('stores, lists, updates and deletes workloads; a re-put keeps the state', () =>
        withStore(async ({ store }) => {
          const a = workload('spiffe://test/a', {
            secretSha256: 'ab'.repeat(32),
            description: 'the a service',
          });
          const b = workload('spiffe://test/b');
          await store.putWorkload(b, NOW);
          await store.putWorkload(a, NOW);
          assert.deepEqual(await store.getWorkload(a.id), { ...a, state: 'active', updatedAt: NOW });
          assert.deepEqual(await store.getWorkload(b.id), { ...b, state: 'active', updatedAt: NOW });
          assert.equal(await store.getWorkload('spiffe://test/none'), undefined);
          assert.deepEqual(
            (await store.listWorkloads()).map((w) => w.id),
            [a.id, b.id],
          );

          assert.equal(await store.setWorkloadState(a.id, 'quarantined', NOW + 1), true);
          assert.equal(await store.setWorkloadState('spiffe://test/none', 'disabled', NOW + 1), false);
          await store.putWorkload({ ...a, owner: 'team-new' }, NOW + 2);
          assert.deepEqual(await store.getWorkload(a.id), {
            ...a,
            owner: 'team-new',
            state: 'quarantined',
            updatedAt: NOW + 2,
          });

          await store.deleteWorkload(b.id);
          await store.deleteWorkload('spiffe://test/none');
          assert.equal(await store.getWorkload(b.id), undefined);
          assert.deepEqual(
            (await store.listWorkloads()).map((w) => w.id),
            [a.id],
          );
        }));

      it('stores, lists, replaces and deletes token classes', () =>
        withStore(async ({ store }) => {
          const legacy = tokenClass('legacy', {
            description: 'old batch jobs',
            binding: 'bearer',
            delegationActors: ['spiffe://test/gateway'],
          });
          await store.putClass(tokenClass('reports'));
          await store.putClass(legacy);
          assert.deepEqual(await store.listClasses(), [legacy, tokenClass('reports')]);
          await store.putClass(tokenClass('reports', { maxTtl: 60, defaultTtl: 30 }));
          await store.deleteClass('legacy');
          await store.deleteClass('none');
          assert.deepEqual(await store.listClasses(), [
            tokenClass('reports', { maxTtl: 60, defaultTtl: 30 }),
          ]);
        }));

      it('stores, lists, replaces and deletes operators', () =>
        withStore(async ({ store }) => {
          const alice: Operator = { name: 'alice', jwks: [{ kty: 'OKP', crv: 'Ed25519', x: 'alice-x' }] };
          const bob: Operator = { name: 'bob', jwks: [] };
          await store.putOperator(bob);
          await store.putOperator(alice);
          assert.deepEqual(await store.listOperators(), [alice, bob]);
          await store.putOperator({ ...bob, jwks: alice.jwks });
          await store.deleteOperator('alice');
          assert.deepEqual(await store.listOperators(), [{ ...bob, jwks: alice.jwks }]);
        }));

      it('stores, lists, replaces and deletes trusted issuers', () =>
        withStore(async ({ store }) => {
          const gh: TrustedIssuer = {
            name: 'github',
            preset: 'github-actions',
            issuer: 'https://token.actions.githubusercontent.com',
            jwksUri: 'https://token.actions.githubusercontent.com/.well-known/jwks',
            audiences: ['https://writ.example'],
            algorithms: ['RS256'],
            maxTokenAge: 600,
            clockSkew: 30,
            jwksCooldown: 30,
            jwksMaxAge: 600,
            condition: 'true',
            subject: "'spiffe://example.org/ci/' + claims.repository",
            attributes: { repository: 'claims.repository' },
            task: { purpose: "'run'", labels: { run_id: 'claims.run_id' } },
          };
          const k8s: TrustedIssuer = {
            ...gh,
            name: 'cluster',
            issuer: 'https://k8s.example',
            jwks: [{ kty: 'OKP', crv: 'Ed25519', x: 'k-x' }],
            attributes: {},
          };
          delete (k8s as Partial<TrustedIssuer>).jwksUri;
          delete (k8s as Partial<TrustedIssuer>).task;
          await store.putIssuer(k8s);
          await store.putIssuer(gh);
          assert.deepEqual(await store.listIssuers(), [k8s, gh]);
          await store.putIssuer({ ...gh, maxTokenAge: 300 });
          await store.deleteIssuer('cluster');
          await store.deleteIssuer('none');
          assert.deepEqual(await store.listIssuers(), [{ ...gh, maxTokenAge: 300 }]);
        }));
    });

    describe('workload templates', () => {
      it('stores templates by id, replaces one, deletes one; a templated workload keeps its evidence', () =>
        withStore(async ({ store }) => {
          const pods: WorkloadTemplate = {
            id: 'pods',
            owner: 'team-platform',
            environment: 'prod',
            federation: 'cluster',
            prefixes: ['spiffe://example.org/ns/payments/sa/'],
            condition: 'true',
            classes: ['ci'],
            tables: { owners: { payments: 'team-payments' } },
            derive: { owner: 'tables.owners[claims.ns]', environment: '"prod"', attributes: {} },
          };
          const repos: WorkloadTemplate = {
            ...pods,
            id: 'repos',
            federation: 'github',
            prefixes: ['spiffe://example.org/github/acme/'],
            description: 'every acme repository',
            derive: { ...pods.derive, classes: '["ci"]', attributes: { repo: 'claims.repository' } },
          };
          await store.putTemplate(repos);
          await store.putTemplate(pods);
          assert.deepEqual(await store.listTemplates(), [pods, repos]);
          await store.putTemplate({ ...pods, owner: 'team-other' });
          await store.deleteTemplate('repos');
          await store.deleteTemplate('none');
          assert.deepEqual(await store.listTemplates(), [{ ...pods, owner: 'team-other' }]);

          const admitted = {
            id: 'spiffe://example.org/ns/payments/sa/ledger',
            owner: 'team-payments',
            environment: 'prod',
            attributes: {},
            classes: ['ci'],
            jwks: [],
            federation: ['cluster'],
            template: {
              id: 'pods',
              issuer: 'cluster',
              subject: 'system:serviceaccount:payments:ledger',
              claims: { ns: 'payments', nested: { n: 1 } },
              fingerprint: 'f'.repeat(43),
              admittedAt: 1000,
            },
          };
          await store.putWorkload(admitted, 1000);
          const back = await store.getWorkload(admitted.id);
          assert.deepEqual(back?.template, admitted.template);
          assert.equal(back?.state, 'active');
        }));
    });

    describe('policy set and resource attributes', () => {
      const set = (extra: Partial<StoredPolicySet> = {}): StoredPolicySet => ({
        sources: {
          files: [{ file: 'policies/a.cedar', text: 'permit (principal, action, resource);\n' }],
          resources: [{ id: 'https://api.test', sensitivity: 'internal', environment: 'prod', owner: 'o' }],
        },
        counter: 3,
        hash: 'ab'.repeat(32),
        configHash: null,
        bundleEpoch: NOW,
        updatedAt: NOW,
        ...extra,
      });

      it('is absent on a new store', () =>
        withStore(async ({ store }) => {
          assert.equal(await store.getPolicySet(), undefined);
          assert.deepEqual(await store.listResourceAttributes(), []);
        }));

      it('round-trips the set, replaces it, and a peer reads what was stored', () =>
        withStore(async ({ store, openPeer }) => {
          await store.putPolicySet(set());
          assert.deepEqual(await store.getPolicySet(), set());
          const next = set({ sources: null, counter: 4, hash: 'cd'.repeat(32), configHash: 'ef'.repeat(32) });
          await store.putPolicySet(next);
          assert.deepEqual(await store.getPolicySet(), next);
          const peer = await openPeer();
          assert.deepEqual(await peer.getPolicySet(), next);
        }));

      it('keeps applied policy versions with their sources, newest first, the newest 50 only', () =>
        withStore(async ({ store, openPeer }) => {
          assert.deepEqual(await store.listPolicyVersions(), []);
          const version = (
            counter: number,
            extra: Partial<StoredPolicyVersion> = {},
          ): StoredPolicyVersion => ({
            id: `${counter}-${'ab'.repeat(6)}`,
            counter,
            created: NOW + counter,
            actor: 'operator:carol',
            builtIn: false,
            policies: 2,
            files: [
              {
                file: 'policies/a.cedar',
                text: `// version ${counter}\npermit (principal, action, resource);\n`,
              },
              { file: 'policies/b.cedar', text: '' },
            ],
            ...extra,
          });
          await store.putPolicyVersion(version(1, { actor: null, builtIn: true, policies: 1 }));
          await store.putPolicyVersion(version(2));
          const summary: Partial<StoredPolicyVersion> = version(2);
          delete summary.files;
          assert.deepEqual((await store.listPolicyVersions())[0], summary);
          assert.deepEqual(
            (await store.listPolicyVersions()).map((v) => [v.id, v.actor, v.builtIn]),
            [
              [version(2).id, 'operator:carol', false],
              [version(1).id, null, true],
            ],
          );
          assert.deepEqual(await store.getPolicyVersion(version(2).id), version(2));
          assert.equal(await store.getPolicyVersion('9-000000000000'), undefined);
          // The same id again replaces it (two nodes recording one version).
          await store.putPolicyVersion(version(2, { actor: 'startup' }));
          assert.equal((await store.getPolicyVersion(version(2).id))?.actor, 'startup');
          // A rolled-back transaction records nothing.
          await assert.rejects(
            store.transaction(async (tx) => {
              await tx.putPolicyVersion(version(3));
              throw new Error('abort');
            }),
          );
          assert.equal(await store.getPolicyVersion(version(3).id), undefined);
          // Past 50, the oldest go.
          for (let c = 3; c <= 52; c++) await store.putPolicyVersion(version(c));
          const kept = await store.listPolicyVersions();
          assert.equal(kept.length, POLICY_VERSIONS_KEPT);
          assert.equal(kept[0]!.counter, 52);
          assert.equal(kept.at(-1)!.counter, 3);
          assert.equal(await store.getPolicyVersion(version(2).id), undefined);
          const peer = await openPeer();
          assert.deepEqual(await peer.getPolicyVersion(version(52).id), version(52));
        }));

      it('stores, lists (by id), replaces and deletes resource attributes', () =>
        withStore(async ({ store }) => {
          const b = { id: 'https://b.test', sensitivity: 'restricted', environment: 'prod', owner: 'team-b' };
          const a = { id: 'https://a.test', sensitivity: 'public', environment: '', owner: '' };
          await store.putResourceAttributes(b);
          await store.putResourceAttributes(a);
          assert.deepEqual(await store.listResourceAttributes(), [a, b]);
          await store.putResourceAttributes({ ...b, owner: 'team-c' });
          assert.equal(await store.deleteResourceAttributes('https://a.test'), true);
          assert.equal(await store.deleteResourceAttributes('https://a.test'), false);
          assert.deepEqual(await store.listResourceAttributes(), [{ ...b, owner: 'team-c' }]);
        }));

      it('writes inside a transaction only when it commits', () =>
        withStore(async ({ store }) => {
          await store.putPolicySet(set());
          await assert.rejects(
            store.transaction(async (tx) => {
              await tx.putPolicySet(set({ counter: 9 }));
              await tx.putResourceAttributes({
                id: 'https://x.test',
                sensitivity: 'public',
                environment: '',
                owner: '',
              });
              assert.equal((await tx.getPolicySet())?.counter, 9);
              throw new Error('abort');
            }),
            /abort/,
          );
          assert.equal((await store.getPolicySet())?.counter, 3);
          assert.deepEqual(await store.listResourceAttributes(), []);
        }));
    });

    describe('consume (replay cache)', () => {
      it('is true on first use and false on a repeat; scopes are independent', () =>
        withStore(async ({ store }) => {
          assert.equal(await store.consume('dpop', 'id-1', NOW + 60_000, NOW), true);
          assert.equal(await store.consume('dpop', 'id-1', NOW + 60_000, NOW + 1), false);
          assert.equal(await store.consume('assertion:a', 'id-1', NOW + 60_000, NOW + 1), true);
          assert.equal(await store.consume('dpop', 'id-2', NOW + 60_000, NOW + 1), true);
        }));

      it('remembers an id until its expiry, then accepts it once more', () =>
        withStore(async ({ store }) => {
          assert.equal(await store.consume('dpop', 'id', NOW + 1000, NOW), true);
          assert.equal(await store.consume('dpop', 'id', NOW + 9000, NOW + 999), false);
          assert.equal(await store.consume('dpop', 'id', NOW + 5000, NOW + 1000), true);
          // The second use set a new expiry.
          assert.equal(await store.consume('dpop', 'id', NOW + 9000, NOW + 4999), false);
          assert.equal(await store.consume('dpop', 'id', NOW + 9000, NOW + 5000), true);
        }));

      it('50 concurrent uses of one id from two instances: exactly one wins', () =>
        withStore(async ({ store, openPeer }) => {
          const peer = await openPeer();
          const results = await Promise.all(
            range(1, 50).map((i) => (i % 2 ? store : peer).consume('dpop', 'contested', NOW + 60_000, NOW)),
          );
          assert.equal(results.filter(Boolean).length, 1);
        }));

      it('50 concurrent reuses of an expired id from two instances: exactly one wins', () =>
        withStore(async ({ store, openPeer }) => {
          const peer = await openPeer();
          assert.equal(await store.consume('dpop', 'old', NOW + 10, NOW), true);
          const results = await Promise.all(
            range(1, 50).map((i) => (i % 2 ? store : peer).consume('dpop', 'old', NOW + 60_000, NOW + 20)),
          );
          assert.equal(results.filter(Boolean).length, 1);
        }));
    });

    rateLimitConformanceCases(withStore);
    vendorKeyConformanceCases(withStore);
    consoleConformanceCases(withStore);

    describe('tokens', () => {
      it('records and reads tokens; lists a task’s tokens oldest first', () =>
        withStore(async ({ store }) => {
          const plain = token('jti-plain');
          const late = token('jti-b', { tid: 'task-1', iat: NOW_S + 5 });
          const early = token('jti-z', { tid: 'task-1', iat: NOW_S + 1 });
          const sameTime = token('jti-a', { tid: 'task-1', iat: NOW_S + 5 });
          for (const t of [plain, late, early, sameTime, token('jti-other', { tid: 'task-2' })])
            await store.recordToken(t);
          const got = await store.getToken('jti-plain');
          assert.deepEqual(got, plain);
          assert.equal('tid' in got!, false);
          assert.deepEqual(await store.getToken('jti-b'), late);
          assert.equal(await store.getToken('jti-none'), undefined);
          assert.deepEqual(await store.tokensForTask('task-1', 10), [early, sameTime, late]);
          assert.deepEqual(await store.tokensForTask('task-1', 2), [early, sameTime]);
          assert.deepEqual(await store.tokensForTask('task-none', 10), []);
        }));

      it('reads many tokens at once by jti, leaving out those never recorded', () =>
        withStore(async ({ store }) => {
          const many = range(1, 700).map((i) => token(`jti-many-${i}`));
          for (const t of many) await store.recordToken(t);
          const asked = [...many.map((t) => t.jti), 'jti-unknown', 'jti-many-1'];
          const got = await store.getTokens(asked);
          assert.deepEqual(
            got.map((t) => t.jti).sort(),
            many.map((t) => t.jti).sort(),
            'each recorded token once, past one page of parameters',
          );
          assert.deepEqual(
            got.find((t) => t.jti === 'jti-many-7'),
            many[6],
          );
          assert.deepEqual(await store.getTokens([]), []);
          assert.deepEqual(await store.getTokens(['jti-unknown']), []);
        }));

      it('keeps the lineage of an exchanged token (ajti), in order; a token without one has none', () =>
        withStore(async ({ store }) => {
          const exchanged = token('jti-child', { tid: 'task-x', ajti: ['jti-root', 'jti-mid'] });
          await store.recordToken(exchanged);
          await store.recordToken(token('jti-root', { tid: 'task-x' }));
          assert.deepEqual(await store.getToken('jti-child'), exchanged);
          assert.equal('ajti' in (await store.getToken('jti-root'))!, false);
          assert.deepEqual(
            (await store.tokensForTask('task-x', 10)).map((t) => [t.jti, t.ajti]),
            [
              ['jti-child', ['jti-root', 'jti-mid']],
              ['jti-root', undefined],
            ],
          );
        }));

      it('latestTokenExpiry: the latest exp among the tokens a predicate matches, past a time', () =>
        withStore(async ({ store }) => {
          const w = 'spiffe://test/w';
          await store.recordToken(token('t1', { tid: 'task-1', iat: NOW_S, exp: NOW_S + 300 }));
          await store.recordToken(token('t2', { tid: 'task-1', iat: NOW_S + 60, exp: NOW_S + 600 }));
          await store.recordToken(token('t3', { tid: 'task-2', iat: NOW_S, exp: NOW_S + 900, kid: 'kid-2' }));
          await store.recordToken(
            token('t4', {
              sub: 'spiffe://test/x',
              clientId: 'spiffe://test/actor',
              cls: 'deploy',
              exp: NOW_S + 120,
            }),
          );
          const latest = (
            kind: TokenMatch['kind'],
            value: string,
            after = NOW_S,
            issuedBefore: number | null = null,
          ) => store.latestTokenExpiry({ kind, value, issuedBefore }, after);
          assert.equal(await latest('tid', 'task-1'), NOW_S + 600);
          assert.equal(await latest('tid', 'task-2'), NOW_S + 900);
          assert.equal(await latest('tid', 'task-none'), undefined);
          assert.equal(await latest('jti', 't1'), NOW_S + 300);
          assert.equal(await latest('jti', 'unknown'), undefined);
          assert.equal(await latest('sub', w), NOW_S + 900);
          assert.equal(await latest('sub', 'spiffe://test/x'), NOW_S + 120);
          assert.equal(await latest('client_id', 'spiffe://test/actor'), NOW_S + 120);
          assert.equal(await latest('client_id', w), NOW_S + 900);
          assert.equal(await latest('cls', 'reports-read'), NOW_S + 900);
          assert.equal(await latest('cls', 'deploy'), NOW_S + 120);
          assert.equal(await latest('kid', 'kid-1'), NOW_S + 600);
          assert.equal(await latest('kid', 'kid-2'), NOW_S + 900);
          // Only tokens issued at or before `issuedBefore`.
          assert.equal(await latest('tid', 'task-1', NOW_S, NOW_S + 59), NOW_S + 300);
          assert.equal(await latest('tid', 'task-1', NOW_S, NOW_S - 1), undefined);
          // Only tokens expiring after `after` (the boundary excluded).
          assert.equal(await latest('tid', 'task-1', NOW_S + 300), NOW_S + 600);
          assert.equal(await latest('tid', 'task-1', NOW_S + 600), undefined);
          assert.equal(await latest('sub', w, NOW_S + 900), undefined);
        }));

      it('refuses a second record with the same jti', () =>
        withStore(async ({ store }) => {
          await store.recordToken(token('jti-1'));
          await assert.rejects(store.recordToken(token('jti-1', { sub: 'someone else' })));
          assert.deepEqual(await store.getToken('jti-1'), token('jti-1'));
        }));

      it('prune drops expired replay entries and tokens a day past expiry', () =>
        withStore(async ({ store }) => {
          await store.consume('dpop', 'past', NOW - 1, NOW - 10);
          await store.consume('dpop', 'now', NOW, NOW - 10);
          await store.consume('dpop', 'future', NOW + 1, NOW - 10);
          await store.recordToken(token('t-old', { exp: NOW_S - 86_401 }));
          await store.recordToken(token('t-day', { exp: NOW_S - 86_400 }));
          await store.recordToken(token('t-recent', { exp: NOW_S - 86_399 }));
          await store.recordToken(token('t-live', { exp: NOW_S + 60 }));
          assert.equal(await store.prune(NOW), 4);
          assert.equal(await store.getToken('t-old'), undefined);
          assert.equal(await store.getToken('t-day'), undefined);
          assert.ok(await store.getToken('t-recent'));
          assert.ok(await store.getToken('t-live'));
          // The pruned entries are gone (usable again); the live one is still remembered.
          assert.equal(await store.consume('dpop', 'future', NOW + 9, NOW - 5), false);
          assert.equal(await store.consume('dpop', 'past', NOW + 9, NOW - 20), true);
          assert.equal(await store.prune(NOW), 0);
        }));

      it('prune drops every expired replay entry when they are many (more than one chunk of them)', () =>
        withStore(async ({ store }) => {
          for (let i = 0; i < 1_201; i++) await store.consume('assertion:w', `old-${i}`, NOW - 1, NOW - 10);
          await store.consume('assertion:w', 'live', NOW + 60, NOW - 10);
          assert.equal(await store.prune(NOW), 1_201);
          assert.equal(await store.consume('assertion:w', 'old-1200', NOW + 9, NOW), true);
          assert.equal(await store.consume('assertion:w', 'live', NOW + 90, NOW), false);
        }));
    });

    describe('tasks', () => {
      it('creates and reads a task; closing twice: the second close is refused and changes nothing', () =>
        withStore(async ({ store }) => {
          const t = task('task-1');
          await store.createTask(t);
          assert.deepEqual(await store.getTask('task-1'), t);
          assert.equal(await store.getTask('task-none'), undefined);
          assert.equal(await store.closeTask('task-1', NOW + 10, 'finished'), true);
          assert.equal(await store.closeTask('task-1', NOW + 20, 'again'), false);
          assert.equal(await store.closeTask('task-none', NOW + 20, 'unknown'), false);
          assert.deepEqual(await store.getTask('task-1'), {
            ...t,
            closedAt: NOW + 10,
            closeReason: 'finished',
          });
          await assert.rejects(store.createTask(task('task-1')));
        }));

      it('renews the lease of an open task only', () =>
        withStore(async ({ store }) => {
          await store.createTask(task('open', { leaseUntil: NOW + 30_000 }));
          await store.createTask(task('closed', { leaseUntil: NOW + 30_000 }));
          await store.closeTask('closed', NOW + 1, 'done');
          assert.equal(await store.renewTaskLease('open', NOW + 60_000), true);
          assert.equal(await store.renewTaskLease('closed', NOW + 60_000), false);
          assert.equal(await store.renewTaskLease('none', NOW + 60_000), false);
          assert.equal((await store.getTask('open'))!.leaseUntil, NOW + 60_000);
          assert.equal((await store.getTask('closed'))!.leaseUntil, NOW + 30_000);
        }));

      it('lists tasks newest first, by workload and by state', () =>
        withStore(async ({ store }) => {
          await store.createTask(task('t1', { openedAt: NOW + 1 }));
          await store.createTask(task('t2', { openedAt: NOW + 3, workload: 'spiffe://test/other' }));
          await store.createTask(task('t3', { openedAt: NOW + 2 }));
          await store.closeTask('t3', NOW + 5, 'done');
          const ids = (ts: Task[]) => ts.map((t) => t.id);
          assert.deepEqual(ids(await store.listTasks({ limit: 10 })), ['t2', 't3', 't1']);
          assert.deepEqual(ids(await store.listTasks({ limit: 2 })), ['t2', 't3']);
          assert.deepEqual(ids(await store.listTasks({ workload: 'spiffe://test/w', limit: 10 })), [
            't3',
            't1',
          ]);
          assert.deepEqual(ids(await store.listTasks({ open: true, limit: 10 })), ['t2', 't1']);
          assert.deepEqual(ids(await store.listTasks({ open: false, limit: 10 })), ['t3']);
          assert.deepEqual(
            ids(await store.listTasks({ workload: 'spiffe://test/w', open: true, limit: 10 })),
            ['t1'],
          );
        }));

      it('dueTasks: open tasks past their deadline or lease, earliest due (deadline or lease end) first', () =>
        withStore(async ({ store }) => {
          await store.createTask(task('deadline-passed', { deadline: NOW - 10 }));
          await store.createTask(task('lease-lapsed', { deadline: NOW + 1000, leaseUntil: NOW - 1 }));
          await store.createTask(task('deadline-now', { deadline: NOW }));
          await store.createTask(task('lease-now', { deadline: NOW + 2000, leaseUntil: NOW }));
          // Its lease lapsed first of all; its deadline is an hour away.
          await store.createTask(
            task('lease-long-gone', { deadline: NOW + 3_600_000, leaseUntil: NOW - 500 }),
          );
          await store.createTask(task('not-due', { deadline: NOW + 1000 }));
          await store.createTask(task('lease-held', { deadline: NOW + 1000, leaseUntil: NOW + 1 }));
          await store.createTask(task('closed', { deadline: NOW - 100 }));
          await store.closeTask('closed', NOW - 50, 'done');
          const ids = (ts: Task[]) => ts.map((t) => t.id);
          assert.deepEqual(ids(await store.dueTasks(NOW, 10)), [
            'lease-long-gone',
            'deadline-passed',
            'lease-lapsed',
            'deadline-now',
            'lease-now',
          ]);
          assert.deepEqual(ids(await store.dueTasks(NOW, 2)), ['lease-long-gone', 'deadline-passed']);
          assert.deepEqual(ids(await store.dueTasks(NOW - 1000, 10)), []);
          // A renewed lease moves the task back out of the due set.
          assert.equal(await store.renewTaskLease('lease-long-gone', NOW + 60_000), true);
          assert.deepEqual(ids(await store.dueTasks(NOW, 1)), ['deadline-passed']);
        }));
    });

    describe('tasks: closing the due ones in bulk', () => {
      const reasons = { deadline: 'deadline reached', lease: 'lease expired' };
      it('closeDueTasks closes what dueTasks returns, earliest due first, with the reason that ran out', () =>
        withStore(async ({ store }) => {
          await store.createTask(task('deadline-passed', { deadline: NOW - 10 }));
          await store.createTask(task('lease-lapsed', { deadline: NOW + 1000, leaseUntil: NOW - 1 }));
          await store.createTask(
            task('lease-long-gone', { deadline: NOW + 3_600_000, leaseUntil: NOW - 500 }),
          );
          await store.createTask(task('not-due', { deadline: NOW + 1000 }));
          await store.createTask(task('lease-held', { deadline: NOW + 1000, leaseUntil: NOW + 1 }));
          await store.createTask(task('closed', { deadline: NOW - 100 }));
          await store.closeTask('closed', NOW - 50, 'done');
          const first = await store.closeDueTasks(NOW, NOW + 7, 2, reasons);
          assert.deepEqual(
            first.map((t) => [t.id, t.closedAt, t.closeReason]),
            [
              ['lease-long-gone', NOW + 7, 'lease expired'],
              ['deadline-passed', NOW + 7, 'deadline reached'],
            ],
          );
          assert.deepEqual(await store.getTask('deadline-passed'), first[1]);
          const rest = await store.closeDueTasks(NOW, NOW + 8, 10, reasons);
          assert.deepEqual(
            rest.map((t) => [t.id, t.closeReason]),
            [['lease-lapsed', 'lease expired']],
          );
          assert.deepEqual(await store.closeDueTasks(NOW, NOW + 9, 10, reasons), []);
          assert.equal((await store.getTask('not-due'))!.closedAt, null);
          assert.equal((await store.getTask('lease-held'))!.closedAt, null);
          assert.equal((await store.getTask('closed'))!.closeReason, 'done');
        }));

      it('two instances closing the same due tasks at once close each exactly once', () =>
        withStore(async ({ store, openPeer }) => {
          const peer = await openPeer();
          for (let i = 0; i < 60; i++)
            await store.createTask(task(`t-${String(i).padStart(2, '0')}`, { deadline: NOW - i }));
          const closed = (
            await Promise.all(
              range(1, 12).map((i) =>
                // In transactions and on their own: either way no task is closed twice.
                i % 3
                  ? (i % 2 ? store : peer).transaction((tx) => tx.closeDueTasks(NOW, NOW + i, 7, reasons))
                  : (i % 2 ? store : peer).closeDueTasks(NOW, NOW + i, 7, reasons),
              ),
            )
          ).flat();
          // Racing calls may pick the same tasks and close fewer than their limit; what is left, one more closes.
          const ids = [...closed, ...(await store.closeDueTasks(NOW, NOW + 20, 100, reasons))].map(
            (t) => t.id,
          );
          assert.equal(new Set(ids).size, ids.length, 'no task closed twice');
          assert.equal(ids.length, 60);
          assert.deepEqual(await store.dueTasks(NOW, 10), []);
        }));

      it('countOpenTasks counts one workload’s open tasks; pruneTasks deletes only those closed before a time', () =>
        withStore(async ({ store }) => {
          const other = 'spiffe://test/other';
          for (const id of ['a', 'b', 'c']) await store.createTask(task(id));
          await store.createTask(task('d', { workload: other }));
          assert.equal(await store.countOpenTasks('spiffe://test/w'), 3);
          assert.equal(await store.countOpenTasks(other), 1);
          assert.equal(await store.countOpenTasks('spiffe://test/none'), 0);
          await store.closeTask('a', NOW + 10, 'done');
          await store.closeTask('b', NOW + 20, 'done');
          assert.equal(await store.countOpenTasks('spiffe://test/w'), 1);
          assert.equal(await store.pruneTasks(NOW + 10), 0, 'closed at the boundary: kept');
          assert.equal(await store.pruneTasks(NOW + 11), 1);
          assert.equal(await store.getTask('a'), undefined);
          assert.ok(await store.getTask('b'));
          assert.equal(await store.pruneTasks(NOW + 1_000_000), 1);
          assert.deepEqual((await store.listTasks({ limit: 10 })).map((t) => t.id).sort(), ['c', 'd']);
        }));

      it('latestTaskTokenExpiries: per task, the latest exp of its tokens after a time', () =>
        withStore(async ({ store }) => {
          await store.recordToken(token('a1', { tid: 'task-a', exp: NOW_S + 100 }));
          await store.recordToken(token('a2', { tid: 'task-a', exp: NOW_S + 300 }));
          await store.recordToken(token('b1', { tid: 'task-b', exp: NOW_S - 1 }));
          await store.recordToken(token('c1', { tid: 'task-c', exp: NOW_S + 50 }));
          await store.recordToken(token('none', { exp: NOW_S + 999 }));
          const got = await store.latestTaskTokenExpiries(['task-a', 'task-b', 'task-c', 'task-none'], NOW_S);
          assert.deepEqual([...got.entries()].sort(), [
            ['task-a', NOW_S + 300],
            ['task-c', NOW_S + 50],
          ]);
          assert.deepEqual([...(await store.latestTaskTokenExpiries(['task-a'], NOW_S + 300)).entries()], []);
          assert.equal((await store.latestTaskTokenExpiries([], NOW_S)).size, 0);
          const many = range(1, 1200).map((i) => `task-${i}`);
          assert.deepEqual(
            [...(await store.latestTaskTokenExpiries([...many, 'task-a'], NOW_S)).keys()],
            ['task-a'],
          );
        }));
    });

    describe('revocations', () => {
      it('numbers revocations of every kind in order and lists them after a sequence number', () =>
        withStore(async ({ store }) => {
          assert.equal(await store.lastRevocationSeq(), 0);
          const stored = [];
          for (const [i, kind] of REVOCATION_KINDS.entries()) {
            const r = revocation({
              kind,
              value: `${kind}-value`,
              issued_before: i % 2 ? NOW_S - i : null,
              created_at: NOW + i,
              reason: `reason ${i}`,
              expires_at: NOW + 1000 * (i + 1),
            });
            const got = await store.addRevocation(r);
            assert.deepEqual(got, {
              seq: i + 1,
              kind,
              value: r.value,
              issued_before: r.issued_before,
              created_at: r.created_at,
              reason: r.reason,
              expires_at: r.expires_at,
            });
            stored.push(got);
          }
          assert.deepEqual(await store.listRevocations(0, NOW), stored);
          assert.deepEqual(await store.listRevocations(3, NOW), stored.slice(3));
          assert.deepEqual(await store.listRevocations(REVOCATION_KINDS.length, NOW), []);
          // Only revocations that can still match a live token: expires_at after now (the boundary excluded).
          assert.deepEqual(await store.listRevocations(0, NOW + 2000), stored.slice(2));
          assert.deepEqual(await store.listRevocations(3, NOW + 2000), stored.slice(3));
          assert.deepEqual(await store.listRevocations(0, NOW + 1000 * REVOCATION_KINDS.length), []);
          // The newest seq counts expired revocations too: a reader that has it has seen everything up to it.
          assert.equal(await store.lastRevocationSeq(), stored.at(-1)!.seq);
          // At most `limit`, in seq order, counted among those still in force: a reader pages with it.
          assert.deepEqual(await store.listRevocations(0, NOW, 2), stored.slice(0, 2));
          assert.deepEqual(await store.listRevocations(2, NOW, 2), stored.slice(2, 4));
          assert.deepEqual(await store.listRevocations(0, NOW + 2000, 1), stored.slice(2, 3));
        }));

      it('"issued before now" becomes the revocation’s own time, as stored and as listed', () =>
        withStore(async ({ store }) => {
          const got = await store.addRevocation(
            revocation({
              kind: 'sub',
              issued_before: 'now',
              created_at: NOW + 1500,
              expires_at: NOW + 61_500,
            }),
          );
          assert.equal(got.created_at, NOW + 1500);
          assert.equal(got.issued_before, NOW_S + 1);
          assert.equal(got.expires_at, NOW + 61_500);
          assert.deepEqual(await store.listRevocations(0, NOW), [got]);
        }));

      it('concurrent revocations from two instances get distinct numbers with no gap', () =>
        withStore(async ({ store, openPeer }) => {
          const peer = await openPeer();
          const got = await Promise.all(
            range(1, 40).map((i) => (i % 2 ? store : peer).addRevocation(revocation({ value: `jti-${i}` }))),
          );
          assert.deepEqual(
            got.map((r) => r.seq).sort((a, b) => a - b),
            range(1, 40),
          );
          const listed = await peer.listRevocations(0, NOW);
          assert.deepEqual(
            listed.map((r) => r.seq),
            range(1, 40),
          );
          assert.deepEqual(new Set(listed.map((r) => r.value)), new Set(range(1, 40).map((i) => `jti-${i}`)));
        }));

      it('a follower never sees a revocation number before a lower one has committed', () =>
        withStore(async ({ store, openPeer }) =>
          followWhileWriting(
            store,
            await openPeer(),
            30,
            async (tx, i) => (await tx.addRevocation(revocation({ value: `jti-${i}` }))).seq,
            async (s, after) => (await s.listRevocations(after, NOW)).map((r) => r.seq),
          ),
        ));
    });

    describe('keys', () => {
      it('stores keys oldest first; an update changes the lifecycle, never the key material', () =>
        withStore(async ({ store }) => {
          const active = key('k-active', { state: 'active', createdAt: NOW + 1, activatedAt: NOW + 1 });
          const next = key('k-next', { createdAt: NOW + 2 });
          const old = key('k-old', { alg: 'EdDSA', createdAt: NOW });
          await store.putKey(active);
          await store.putKey(next);
          await store.putKey(old);
          assert.deepEqual(await store.listKeys(), [old, active, next]);
          assert.ok(Buffer.isBuffer((await store.listKeys())[0]!.sealedPrivateKey));

          const retired = {
            ...active,
            state: 'retired' as const,
            retiredAt: NOW + 10,
            notAfter: NOW + 3_600_000,
          };
          await store.putKey({
            ...retired,
            publicJwk: { kty: 'EC', x: 'swapped' },
            sealedPrivateKey: randomBytes(8),
          });
          await store.putKey({ ...next, state: 'active', activatedAt: NOW + 10 });
          assert.deepEqual(await store.listKeys(), [
            old,
            retired,
            { ...next, state: 'active', activatedAt: NOW + 10 },
          ]);
        }));
    });

    describe('audit', () => {
      it('appendAuditBatch links many events in order, continuing the chain; a peer sees them all', () =>
        withStore(async ({ store, openPeer }) => {
          const first = await store.appendAudit(draft(1));
          const drafts = range(2, 1201).map((i) =>
            draft(i, i % 2 ? { subject: 'spiffe://test/s', jti: `jti-${i}` } : { data: {} }),
          );
          const events = await store.transaction((tx) => tx.appendAuditBatch(drafts));
          assert.deepEqual(
            events.map((e) => e.seq),
            range(2, 1201),
          );
          assert.equal(events[0]!.prevHash, first.hash);
          for (const [i, e] of events.entries()) {
            if (i > 0) assert.equal(e.prevHash, events[i - 1]!.hash);
            assert.equal(e.hash, chainHash(e.prevHash, e.seq, drafts[i]!));
          }
          const peer = await openPeer();
          assert.deepEqual(await peer.scanAudit(1, 2000), events);
          assert.deepEqual(await store.appendAuditBatch([]), []);
          assert.equal((await store.appendAudit(draft(1202))).prevHash, events.at(-1)!.hash);
        }));

      it('appends a hash chain from the genesis hash that the verifier accepts', () =>
        withStore(async ({ store }) => {
          assert.equal(await store.auditHead(), undefined);
          const drafts = [
            draft(1, { subject: 'spiffe://test/s', jti: 'jti-1' }),
            draft(2, { type: 'token.refused', outcome: 'refused', data: {} }),
            draft(3, { outcome: 'failure', actor: 'operator:admin', subject: 'spiffe://test/w' }),
          ];
          const events = [];
          for (const d of drafts) events.push(await store.appendAudit(d));
          assert.deepEqual(
            events.map((e) => e.seq),
            [1, 2, 3],
          );
          assert.equal(events[0]!.prevHash, GENESIS_HASH);
          for (const [i, e] of events.entries()) {
            if (i > 0) assert.equal(e.prevHash, events[i - 1]!.hash);
            assert.equal(e.hash, chainHash(e.prevHash, e.seq, drafts[i]!));
          }
          assert.deepEqual(await store.auditHead(), { seq: 3, hash: events[2]!.hash });
          assert.deepEqual(await store.scanAudit(0, 10), events);
          assert.deepEqual(await store.scanAudit(0, 2), events.slice(0, 2));
          assert.deepEqual(await store.scanAudit(2, 10), events.slice(2));
          assert.equal('jti' in (await store.scanAudit(1, 1))[0]!, false);
          assert.deepEqual(await verifyAuditChain(store), { ok: true, events: 3, checkpoints: 0 });
        }));

      it('appends after the event the writer holds, and refuses (appending nothing) once it is gone or differs', () =>
        withStore(async ({ store, openPeer }) => {
          // A held event and an empty log: every event was deleted.
          await assert.rejects(
            () => store.appendAudit(draft(1), { seq: 1, hash: 'c'.repeat(64) }),
            (err: unknown) =>
              err instanceof AuditChainBrokenError &&
              /truncated: event 1 .*ends at event 0 \(events 1\.\.1 deleted\)/.test(err.message),
          );
          assert.equal(await store.auditHead(), undefined, 'nothing appended to the empty log');
          const mine = await store.appendAudit(draft(1));
          const held = { seq: mine.seq, hash: mine.hash };
          // Another node appended after it: one chain, still continuing the held event.
          const peer = await openPeer();
          const theirs = await peer.appendAudit(draft(2));
          const next = await store.appendAudit(draft(3), held);
          assert.equal(next.seq, theirs.seq + 1);
          assert.equal(next.prevHash, theirs.hash);
          const batch = await store.transaction((tx) => tx.appendAuditBatch([draft(4), draft(5)], held));
          assert.deepEqual(
            batch.map((e) => e.seq),
            [4, 5],
          );

          // Held events the store does not have: past its head (a cut tail), or rewritten.
          const cut = { seq: 9, hash: 'a'.repeat(64) };
          const refusals: Array<[() => Promise<unknown>, RegExp]> = [
            [
              () => store.appendAudit(draft(6), cut),
              /truncated: event 9 .*ends at event 5 \(events 6\.\.9 deleted\)/,
            ],
            [
              () => store.transaction((tx) => tx.appendAuditBatch([draft(6), draft(7)], cut)),
              /truncated: event 9 .*\(events 6\.\.9 deleted\)/,
            ],
            [
              () => store.appendAudit(draft(6), { seq: 2, hash: held.hash }),
              /rewritten: event 2 in the store differs/,
            ],
            [
              () => peer.appendAuditBatch([draft(6)], { seq: 4, hash: 'b'.repeat(64) }),
              /rewritten: event 4 /,
            ],
          ];
          for (const [attempt, reason] of refusals)
            await assert.rejects(attempt, (err: unknown) => {
              assert.ok(err instanceof AuditChainBrokenError, String(err));
              assert.match(err.message, reason);
              return true;
            });
          assert.deepEqual(await store.auditHead(), { seq: 5, hash: batch[1]!.hash }, 'nothing appended');
          assert.deepEqual(await verifyAuditChain(peer), { ok: true, events: 5, checkpoints: 0 });
        }));

      it('recordIssuance commits many issuances together; a refusal writes nothing of its own and spares the others', () =>
        withStore(async ({ store, openPeer }) => {
          await store.createTask(task('task-open'));
          await store.createTask(task('task-shut'));
          await store.closeTask('task-shut', NOW, 'closed');
          // An entry spent before, by another node.
          const peer = await openPeer();
          assert.equal(await peer.consume('assertion:c', 'spent', NOW + 60_000, NOW), true);
          const first = await store.appendAudit(draft(1));
          const issuance = (i: number, extra: Partial<IssuanceWrite> = {}, tid?: string): IssuanceWrite => ({
            consume: [
              { scope: 'assertion:c', id: `a-${i}`, expiresAt: NOW + 60_000 },
              { scope: 'dpop', id: `p-${i}`, expiresAt: NOW + 60_000 },
            ],
            now: NOW,
            token: token(`jti-${i}`, tid === undefined ? {} : { tid }),
            // Issuance 12's event hashes characters outside the BMP, a line separator, quotes, a backslash
            // and a control character (PostgreSQL links the chain itself: the same bytes must hash the same).
            audit: draft(100 + i, {
              jti: `jti-${i}`,
              ...(i === 12 ? { data: { odd: 'a😀b \u2028 "q" \\ \u0007 ü' }, subject: 'sübject' } : {}),
            }),
            ...extra,
          });
          const writes = range(1, 40).map((i) =>
            i === 7
              ? issuance(i, { consume: [{ scope: 'assertion:c', id: 'spent', expiresAt: NOW + 60_000 }] })
              : i === 8
                ? issuance(i, {}, 'task-shut')
                : i === 9
                  ? issuance(i, {}, 'task-open')
                  : i === 10 // the same DPoP proof as issuance 11, both in flight at once
                    ? issuance(i, { consume: [{ scope: 'dpop', id: 'p-11', expiresAt: NOW + 60_000 }] })
                    : issuance(i),
          );
          const settled = await Promise.allSettled(
            writes.map((w) => store.recordIssuance(w, { seq: first.seq, hash: first.hash })),
          );
          const refused = settled.flatMap((r, i) => (r.status === 'rejected' ? [i + 1] : []));
          // 10 and 11 raced for one proof: exactly one of them lost.
          assert.equal(refused.filter((i) => i === 10 || i === 11).length, 1, String(refused));
          assert.deepEqual(
            refused.filter((i) => i !== 10 && i !== 11),
            [7, 8],
          );
          const reasonOf = (i: number) => {
            const r = settled[i - 1]!;
            assert.ok(r.status === 'rejected' && r.reason instanceof IssuanceRefusedError, String(r));
            return [r.reason.reason, r.reason.index];
          };
          assert.deepEqual(reasonOf(7), ['replay', 0]);
          assert.deepEqual(reasonOf(8)[0], 'task_closed');
          const loser = refused.find((i) => i === 10 || i === 11)!;
          assert.deepEqual(reasonOf(loser)[0], 'replay');
          // Each committed issuance: its token and its event; a refused one: neither, and its entries unspent.
          const events = await peer.scanAudit(0, 100);
          assert.equal(events.length, 1 + 40 - 3);
          for (const i of range(1, 40)) {
            const ok = !refused.includes(i);
            assert.equal((await peer.getToken(`jti-${i}`)) !== undefined, ok, `token ${i}`);
            assert.equal(events.filter((e) => e.jti === `jti-${i}`).length, ok ? 1 : 0, `event ${i}`);
          }
          assert.equal(
            await peer.consume('assertion:c', 'a-8', NOW + 60_000, NOW),
            true,
            'a refused issuance spent its entry',
          );
          assert.equal(
            await peer.consume('assertion:c', 'a-1', NOW + 60_000, NOW),
            false,
            'a committed one did not',
          );
          assert.deepEqual(await verifyAuditChain(peer), { ok: true, events: events.length, checkpoints: 0 });
          // A held event the store no longer has: refused, nothing written.
          await assert.rejects(
            () => store.recordIssuance(issuance(50), { seq: 99, hash: 'a'.repeat(64) }),
            (err: unknown) =>
              err instanceof AuditChainBrokenError && /truncated: event 99 /.test(err.message),
          );
          assert.equal(await peer.getToken('jti-50'), undefined);
          // A held event the store has with another hash (rewritten): refused, nothing written.
          await assert.rejects(
            () => store.recordIssuance(issuance(51), { seq: first.seq, hash: 'b'.repeat(64) }),
            (err: unknown) =>
              err instanceof AuditChainBrokenError &&
              new RegExp(`rewritten: event ${first.seq} in the store differs`).test(err.message),
          );
          assert.equal(await peer.getToken('jti-51'), undefined);
          assert.equal(
            await peer.consume('assertion:c', 'a-51', NOW + 60_000, NOW),
            true,
            'entry left unspent',
          );
          assert.equal((await peer.scanAudit(0, 100)).length, events.length);
        }));

      it('queries by sequence, workload, jti, type and time, in either order', () =>
        withStore(async ({ store }) => {
          const a = 'spiffe://test/a';
          const b = 'spiffe://test/b';
          await store.appendAudit(draft(10, { actor: a, jti: 'j1' }));
          await store.appendAudit(
            draft(20, { actor: 'operator:admin', subject: a, type: 'workload.quarantined' }),
          );
          await store.appendAudit(
            draft(30, { actor: b, jti: 'j2', type: 'token.refused', outcome: 'refused' }),
          );
          await store.appendAudit(draft(40, { actor: b, subject: b, jti: 'j1' }));
          const seqs = async (q: Parameters<Store['queryAudit']>[0]) =>
            (await store.queryAudit(q)).map((e) => e.seq);
          assert.deepEqual(await seqs({ limit: 10 }), [1, 2, 3, 4]);
          assert.deepEqual(await seqs({ limit: 2, order: 'desc' }), [4, 3]);
          assert.deepEqual(await seqs({ afterSeq: 2, limit: 10 }), [3, 4]);
          assert.deepEqual(await seqs({ workload: a, limit: 10 }), [1, 2]);
          assert.deepEqual(await seqs({ workload: b, limit: 10 }), [3, 4]);
          assert.deepEqual(await seqs({ jti: 'j1', limit: 10 }), [1, 4]);
          assert.deepEqual(await seqs({ type: 'token.refused', limit: 10 }), [3]);
          assert.deepEqual(await seqs({ since: NOW + 20, until: NOW + 40, limit: 10 }), [2, 3]);
          assert.deepEqual(await seqs({ workload: b, jti: 'j1', order: 'desc', limit: 10 }), [4]);
          assert.deepEqual(await seqs({ workload: 'spiffe://test/none', limit: 10 }), []);
          const [second] = await store.queryAudit({ afterSeq: 1, limit: 1 });
          assert.deepEqual(second, (await store.scanAudit(1, 1))[0]);
        }));

      it('keeps the first checkpoint at a sequence number and lists them in order', () =>
        withStore(async ({ store }) => {
          const c2 = { seq: 2, hash: 'h2', ts: NOW + 2, kid: 'k', jws: 'jws-2' };
          const c1 = { seq: 1, hash: 'h1', ts: NOW + 1, kid: 'k', jws: 'jws-1' };
          await store.addCheckpoint(c2);
          await store.addCheckpoint({ ...c2, hash: 'forged', jws: 'forged' });
          await store.addCheckpoint(c1);
          assert.deepEqual(await store.listCheckpoints(), [c1, c2]);
        }));

      it('concurrent appends from two instances form one chain: no fork, no gap', () =>
        withStore(async ({ store, openPeer }) => {
          const peer = await openPeer();
          const appended = await Promise.all(
            range(1, 60).map((i) => (i % 2 ? store : peer).appendAudit(draft(i, { actor: `node-${i % 2}` }))),
          );
          assert.deepEqual(
            appended.map((e) => e.seq).sort((a, b) => a - b),
            range(1, 60),
          );
          assert.equal(
            new Set(appended.map((e) => e.prevHash)).size,
            60,
            'two events share a parent: a fork',
          );
          assert.deepEqual(await verifyAuditChain(peer), { ok: true, events: 60, checkpoints: 0 });
          assert.deepEqual(await verifyAuditChain(store), { ok: true, events: 60, checkpoints: 0 });
        }));

      it('concurrent transactions append one chain, and a follower never sees a gap', () =>
        withStore(async ({ store, openPeer }) => {
          const peer = await openPeer();
          await followWhileWriting(
            store,
            peer,
            30,
            async (tx, i) => (await tx.appendAudit(draft(i))).seq,
            async (s, after) => (await s.scanAudit(after, 1000)).map((e) => e.seq),
          );
          assert.deepEqual(await verifyAuditChain(peer), { ok: true, events: 30, checkpoints: 0 });
        }));
    });

    describe('event log', () => {
      it('appends in order and reads from any sequence number', () =>
        withStore(async ({ store }) => {
          assert.deepEqual(await store.eventBounds(), { first: 0, last: 0 });
          assert.deepEqual(await store.readEvents(0, 10), []);
          const events = [];
          for (const i of range(0, 4))
            events.push(await store.appendEvent({ ts: NOW + i, type: 'revocation', data: { i, tag: 'ü' } }));
          assert.deepEqual(
            events.map((e) => e.seq),
            [1, 2, 3, 4, 5],
          );
          assert.deepEqual(events[0], { seq: 1, ts: NOW, type: 'revocation', data: { i: 0, tag: 'ü' } });
          assert.deepEqual(await store.readEvents(0, 10), events);
          assert.deepEqual(await store.readEvents(2, 2), events.slice(2, 4));
          assert.deepEqual(await store.readEvents(5, 10), []);
          assert.deepEqual(await store.eventBounds(), { first: 1, last: 5 });
        }));

      it('trims old events but keeps the newest, and numbering never restarts', () =>
        withStore(async ({ store }) => {
          for (const i of range(0, 4))
            await store.appendEvent({ ts: NOW + i, type: 'key.rotated', data: {} });
          assert.equal(await store.trimEvents(NOW + 3), 3);
          assert.deepEqual(await store.eventBounds(), { first: 4, last: 5 });
          assert.deepEqual(
            (await store.readEvents(0, 10)).map((e) => e.seq),
            [4, 5],
          );
          assert.equal(await store.trimEvents(NOW + 1_000_000), 1);
          assert.deepEqual(await store.eventBounds(), { first: 5, last: 5 });
          assert.equal((await store.appendEvent({ ts: NOW + 9, type: 'key.rotated', data: {} })).seq, 6);
        }));

      it('concurrent appends from two instances: one order, no gaps, nothing lost', () =>
        withStore(async ({ store, openPeer }) => {
          const peer = await openPeer();
          const appended = await Promise.all(
            range(1, 50).map((i) =>
              (i % 2 ? store : peer).appendEvent({ ts: NOW, type: 'test', data: { i } }),
            ),
          );
          assert.deepEqual(
            appended.map((e) => e.seq).sort((a, b) => a - b),
            range(1, 50),
          );
          const read = await store.readEvents(0, 1000);
          assert.deepEqual(
            read.map((e) => e.seq),
            range(1, 50),
          );
          assert.deepEqual(
            read.map((e) => e.data['i']).sort((a, b) => Number(a) - Number(b)),
            range(1, 50),
          );
          assert.deepEqual(await peer.eventBounds(), { first: 1, last: 50 });
        }));

      it('a follower never sees event N+1 before event N has committed', () =>
        withStore(async ({ store, openPeer }) =>
          followWhileWriting(
            store,
            await openPeer(),
            40,
            async (tx, i) => (await tx.appendEvent({ ts: NOW, type: 'test', data: { i } })).seq,
            async (s, after) => (await s.readEvents(after, 1000)).map((e) => e.seq),
          ),
        ));
    });

    describe('transactions', () => {
      it('commits every write of the callback and returns its result', () =>
        withStore(async ({ store, openPeer }) => {
          const result = await store.transaction(async (tx) => {
            await tx.putWorkload(workload('spiffe://test/a'), NOW);
            const r = await tx.addRevocation(revocation());
            const e = await tx.appendAudit(draft(1));
            return { rev: r.seq, audit: e.seq };
          });
          assert.deepEqual(result, { rev: 1, audit: 1 });
          const peer = await openPeer();
          assert.ok(await peer.getWorkload('spiffe://test/a'));
          assert.equal((await peer.listRevocations(0, NOW)).length, 1);
          assert.deepEqual(await verifyAuditChain(peer), { ok: true, events: 1, checkpoints: 0 });
        }));

      it('a throwing callback rolls everything back; its error passes through; numbering resumes with no gap', () =>
        withStore(async ({ store }) => {
          await store.putWorkload(workload('spiffe://test/kept'), NOW);
          await store.createTask(task('kept-task'));
          await store.addRevocation(revocation({ value: 'before' }));
          await store.appendAudit(draft(1));
          await store.appendEvent({ ts: NOW, type: 'before', data: {} });
          const boom = new Error('boom');
          await assert.rejects(
            store.transaction(async (tx) => {
              await tx.putWorkload(workload('spiffe://test/new'), NOW);
              assert.equal(await tx.setWorkloadState('spiffe://test/kept', 'quarantined', NOW), true);
              await tx.deleteWorkload('spiffe://test/kept');
              await tx.putClass(tokenClass('c'));
              await tx.putOperator({ name: 'op', jwks: [] });
              assert.equal(await tx.consume('dpop', 'rolled-back', NOW + 60_000, NOW), true);
              await tx.recordToken(token('jti-rolled-back', { tid: 'kept-task' }));
              await tx.createTask(task('new-task'));
              assert.equal(await tx.closeTask('kept-task', NOW, 'rolled back'), true);
              assert.equal((await tx.addRevocation(revocation({ value: 'during' }))).seq, 2);
              await tx.putKey(key('k'));
              assert.equal((await tx.appendAudit(draft(2))).seq, 2);
              assert.equal((await tx.appendEvent({ ts: NOW, type: 'during', data: {} })).seq, 2);
              await tx.addCheckpoint({ seq: 2, hash: 'h', ts: NOW, kid: 'k', jws: 'j' });
              throw boom;
            }),
            (err) => err === boom,
          );
          assert.equal(await store.getWorkload('spiffe://test/new'), undefined);
          assert.equal((await store.getWorkload('spiffe://test/kept'))?.state, 'active');
          assert.deepEqual(await store.listClasses(), []);
          assert.deepEqual(await store.listOperators(), []);
          assert.equal(await store.consume('dpop', 'rolled-back', NOW + 60_000, NOW), true);
          assert.equal(await store.getToken('jti-rolled-back'), undefined);
          assert.equal(await store.getTask('new-task'), undefined);
          assert.equal((await store.getTask('kept-task'))?.closedAt, null);
          assert.deepEqual(
            (await store.listRevocations(0, NOW)).map((r) => r.value),
            ['before'],
          );
          assert.deepEqual(await store.listKeys(), []);
          assert.equal((await store.auditHead())?.seq, 1);
          assert.deepEqual(await store.eventBounds(), { first: 1, last: 1 });
          assert.deepEqual(await store.listCheckpoints(), []);

          assert.equal((await store.addRevocation(revocation({ value: 'after' }))).seq, 2);
          assert.equal((await store.appendAudit(draft(3))).seq, 2);
          assert.equal((await store.appendEvent({ ts: NOW, type: 'after', data: {} })).seq, 2);
          assert.deepEqual(await verifyAuditChain(store), { ok: true, events: 2, checkpoints: 0 });
        }));

      it('the callback reads its own writes; another instance sees none of them before the commit', () =>
        withStore(async ({ store, openPeer }) => {
          const peer = await openPeer();
          await store.transaction(async (tx) => {
            await tx.putWorkload(workload('spiffe://test/a'), NOW);
            await tx.appendEvent({ ts: NOW, type: 'workload.changed', data: {} });
            assert.ok(await tx.getWorkload('spiffe://test/a'));
            assert.equal((await tx.readEvents(0, 10)).length, 1);
            assert.equal(await peer.getWorkload('spiffe://test/a'), undefined);
            assert.deepEqual(await peer.readEvents(0, 10), []);
          });
          assert.ok(await peer.getWorkload('spiffe://test/a'));
          assert.equal((await peer.readEvents(0, 10)).length, 1);
        }));

      it('concurrent read-then-write transactions are serialized: ten first starts create one active key', () =>
        withStore(async ({ store }) => {
          // What the key manager does on first start; on a shared database several nodes do it at once.
          // First let a pooled store open a connection per transaction, so the ten below start together.
          await Promise.all(range(1, 10).map(() => store.transaction((tx) => tx.listKeys())));
          await Promise.all(
            range(1, 10).map((i) =>
              store.transaction(async (tx) => {
                if ((await tx.listKeys()).some((k) => k.state === 'active')) return;
                await tx.getWorkload('spiffe://test/none');
                await tx.putKey(key(`k-${i}`, { state: 'active', activatedAt: NOW }));
              }),
            ),
          );
          assert.equal((await store.listKeys()).filter((k) => k.state === 'active').length, 1);
        }));

      it('a nested transaction runs inside the outer one and rolls back with it', () =>
        withStore(async ({ store }) => {
          await assert.rejects(
            store.transaction(async (tx) => {
              await tx.transaction(async (inner) => {
                await inner.putWorkload(workload('spiffe://test/inner'), NOW);
                await inner.appendAudit(draft(1));
              });
              assert.ok(await tx.getWorkload('spiffe://test/inner'));
              throw new Error('outer fails');
            }),
            /outer fails/,
          );
          assert.equal(await store.getWorkload('spiffe://test/inner'), undefined);
          assert.equal(await store.auditHead(), undefined);
        }));
    });

    signalConformanceCases(withStore);
    detectionConformanceCases(withStore);
    governanceConformanceCases(withStore);
    peopleConformanceCases(withStore);
    configFileConformanceCases(withStore);

    describe('availability', () => {
      it('ping resolves while open; after close every call fails as StoreUnavailableError', () =>
        withStore(async ({ store }) => {
          await store.ping();
          // The readiness write probe commits (again and again: one row), and fails like any write once closed.
          await store.probeWrite(NOW);
          await store.probeWrite(NOW + 1000);
          await store.close();
          await assert.rejects(store.ping(), StoreUnavailableError);
          await assert.rejects(store.probeWrite(NOW + 2000), StoreUnavailableError);
          await assert.rejects(store.appendAudit(draft(1)), StoreUnavailableError);
          await assert.rejects(
            store.transaction(async (tx) => tx.getWorkload('x')),
            StoreUnavailableError,
          );
        }));
    });
  });
}
