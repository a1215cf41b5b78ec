import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type DpopKey, generateDpopKey } from '@writ/sdk/dpop';
import { GrantType, TokenType } from '@writ/sdk/wire';
import { writeRefusalSummaries } from '../src/audit/refusal.js';
import { fakeClock } from '../src/clock.js';
import {
  classDoc,
  clientAuth,
  count,
  decodeClaims,
  dpopTokenRequest,
  forgedToken,
  injectForm,
  introspect,
  lastEvent,
  nowSeconds,
  proofParts,
  serverNonce,
  signProof,
  workloadDoc,
} from './helpers/dpop.js';
import { type Harness, type Reply, startHarness, type TestKey, testKey } from './helpers/harness.js';

const A = 'spiffe://test.writ/orders/frontend';
const B = 'spiffe://test.writ/orders/worker';
const C = 'spiffe://test.writ/orders/refunds';
const D = 'spiffe://test.writ/marketing/bot';
// A mesh whose class lets each of its services act for the others: loops are possible to ask for.
const P = 'spiffe://test.writ/mesh/p';
const Q = 'spiffe://test.writ/mesh/q';
const R = 'spiffe://test.writ/mesh/r';
const MESH = 'https://mesh.test';
const MAX_DEPTH = 3;
const ORDERS = 'https://orders.test';
const REPORTS = 'https://orders-reports.test';
const OUTSIDE = 'https://billing.test';

describe('RFC 8693 token exchange', () => {
  const clock = fakeClock(Date.UTC(2026, 4, 1, 8));
  const keys: Record<string, TestKey> = {
    [A]: testKey(),
    [B]: testKey(),
    [C]: testKey(),
    [D]: testKey(),
    [P]: testKey(),
    [Q]: testKey(),
    [R]: testKey(),
  };
  let h: Harness;

  before(async () => {
    h = await startHarness({
      clock,
      settings: { 'tasks.sweep_interval': 60, 'tokens.exchange_max_depth': MAX_DEPTH },
      extraDocs: [
        classDoc({
          name: 'orders',
          audiences: [ORDERS, REPORTS],
          scopes: ['orders:read', 'orders:write', 'orders:refund'],
          default_scopes: ['orders:read'],
          delegation: { actors: [B, C] },
        }),
        classDoc({ name: 'own', audiences: [OUTSIDE], scopes: ['own'], default_scopes: ['own'] }),
        workloadDoc(A, keys[A]!, ['orders']),
        workloadDoc(B, keys[B]!, ['own']),
        workloadDoc(C, keys[C]!, ['own']),
        workloadDoc(D, keys[D]!, ['own']),
        classDoc({
          name: 'mesh',
          audiences: [MESH],
          scopes: ['mesh:call'],
          default_scopes: ['mesh:call'],
          delegation: { actors: [P, Q, R] },
        }),
        workloadDoc(P, keys[P]!, ['mesh']),
        workloadDoc(Q, keys[Q]!, ['mesh']),
        workloadDoc(R, keys[R]!, ['mesh']),
      ],
    });
  });
  after(() => h.close());

  /** client_credentials for A, bound to `holder`. */
  const subjectToken = async (holder: DpopKey, extra: Record<string, string> = {}): Promise<string> => {
    const r = await dpopTokenRequest(
      h,
      () => ({
        grant_type: GrantType.clientCredentials,
        ...clientAuth(h, A, keys[A]!),
        resource: ORDERS,
        scope: 'orders:read orders:write',
        ...extra,
      }),
      holder,
    );
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body['access_token'] as string;
  };

  const exchangeForm = (actor: string, subject: string, fields: Record<string, string> = {}) => ({
    grant_type: GrantType.tokenExchange,
    ...clientAuth(h, actor, keys[actor]!),
    subject_token: subject,
    subject_token_type: TokenType.accessToken,
    ...fields,
  });

  /** One exchange request with a valid proof (nonce fetched first), as a well-behaved client sends it. */
  const exchange = async (
    actor: string,
    subject: string,
    fields: Record<string, string> = {},
    holder: DpopKey = generateDpopKey(),
  ): Promise<Reply> => {
    const nonce = await serverNonce(h, A, keys[A]!, ORDERS);
    const proof = signProof(
      holder,
      proofParts(holder, { htu: `${h.issuer}/oauth2/token`, iat: nowSeconds(h), nonce }),
    );
    return injectForm(h, '/oauth2/token', exchangeForm(actor, subject, fields), { dpop: proof });
  };

  /** Expects a refusal: the error, one audited refusal, and no token issued. */
  const refused = async (send: () => Promise<Reply>, error: string, status = 400) => {
    const issued = await count(h, 'token.issued');
    const refusals = await count(h, 'token.refused');
    const r = await send();
    assert.equal(r.status, status, JSON.stringify(r.body));
    assert.equal(r.body['error'], error);
    assert.equal(r.body['access_token'], undefined);
    assert.equal(await count(h, 'token.issued'), issued, 'nothing issued');
    // A repeat of a kind of refusal already audited this window is written as its summary row.
    await writeRefusalSummaries(h.writ.ctx, true);
    const after = await h.auditEvents('token.refused');
    // The exchange refusal itself (the nonce fetch inside `exchange` is a challenge, not a refusal).
    const own = after.slice(refusals);
    assert.equal(own.length, 1, 'exactly one audited refusal');
    assert.equal(own[0]!.data['error'], error);
    if (own[0]!.data['count'] === undefined)
      assert.equal(own[0]!.data['grant_type'], GrantType.tokenExchange);
    else assert.equal(own[0]!.data['count'], 1);
    return r;
  };

  it('the same workload narrows its token: subset scope, same tid, exp no later, bound to the new key', async () => {
    const task = await injectForm(h, '/v1/tasks', {
      ...clientAuth(h, A, keys[A]!),
      purpose: 'checkout',
      duration: '1800',
    });
    assert.equal(task.status, 201, JSON.stringify(task.body));
    const tid = task.body['id'] as string;
    const k1 = generateDpopKey();
    const original = await subjectToken(k1, { task_id: tid, ttl: '120' });
    const o = decodeClaims(original);

    const k2 = generateDpopKey();
    const r = await dpopTokenRequest(
      h,
      () => exchangeForm(A, original, { scope: 'orders:read', resource: REPORTS }),
      k2,
    );
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body['token_type'], 'DPoP');
    assert.equal(r.body['issued_token_type'], TokenType.accessToken);
    const n = decodeClaims(r.body['access_token'] as string);
    assert.equal(n['sub'], A);
    assert.equal(n['client_id'], A);
    assert.equal(n['scope'], 'orders:read');
    assert.equal(n['aud'], REPORTS);
    assert.equal(n['tid'], tid);
    assert.equal(n['cls'], 'orders');
    assert.equal(n['act'], undefined);
    assert.deepEqual(n['cnf'], { jkt: k2.jkt });
    assert.notEqual(k2.jkt, k1.jkt);
    // The class default TTL is 5 minutes; the subject's 2 minutes bound it.
    assert.equal(n['exp'], o['exp']);
    assert.notEqual(n['jti'], o['jti']);
    const issued = await lastEvent(h, 'token.issued');
    assert.equal(issued.data['grant_type'], GrantType.tokenExchange);
    assert.equal(issued.data['subject_jti'], o['jti']);

    // Same tid: ending the task ends the exchanged token too.
    const closed = await injectForm(h, `/v1/tasks/${tid}/close`, { ...clientAuth(h, A, keys[A]!) });
    assert.equal(closed.status, 200, JSON.stringify(closed.body));
    assert.deepEqual(await introspect(h, r.body['access_token'] as string), { active: false });
  });

  describe('refusals: nothing issued, each one audited', () => {
    let subject: string;
    before(async () => {
      subject = await subjectToken(generateDpopKey());
    });

    it('a wider scope: invalid_scope', async () => {
      await refused(() => exchange(A, subject, { scope: 'orders:read orders:refund' }), 'invalid_scope');
    });

    it('an audience outside the subject’s class: invalid_target', async () => {
      await refused(() => exchange(A, subject, { resource: OUTSIDE }), 'invalid_target');
    });

    it('a foreign token (right kid and claims, another signing key): invalid_grant', async () => {
      const real = decodeClaims(subject);
      const kid = JSON.parse(Buffer.from(subject.split('.')[0]!, 'base64url').toString()).kid as string;
      const forged = forgedToken({ ...real, jti: 'forged-jti' }, kid, testKey());
      await refused(() => exchange(A, forged), 'invalid_grant');
    });

    it('a revoked subject token: invalid_grant', async () => {
      const t = await subjectToken(generateDpopKey());
      const r = await h.admin('POST', '/revocations', { kind: 'jti', value: decodeClaims(t)['jti'] });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      await refused(() => exchange(A, t), 'invalid_grant');
      assert.equal((await lastEvent(h, 'token.refused')).data['reason'], 'revoked');
    });

    it('a mismatched or missing subject_token_type: invalid_request', async () => {
      await refused(() => exchange(A, subject, { subject_token_type: TokenType.jwt }), 'invalid_request');
      await refused(() => exchange(A, subject, { subject_token_type: TokenType.idToken }), 'invalid_request');
      await refused(() => exchange(A, subject, { subject_token_type: '' }), 'invalid_request');
    });

    it('an oversized subject_token: invalid_request, no fallback to another grant', async () => {
      const big = `${subject}${'A'.repeat(h.settings.limits.tokenBytes)}`;
      assert.ok(big.length > h.settings.limits.tokenBytes);
      await refused(() => exchange(A, big), 'invalid_request');
    });

    it('an unparseable or missing subject_token', async () => {
      await refused(() => exchange(A, 'not-a-token'), 'invalid_grant');
      await refused(() => exchange(A, subject.split('.').slice(0, 2).join('.')), 'invalid_grant');
      await refused(() => exchange(A, ''), 'invalid_request');
    });

    it('an actor the subject’s class does not list: unauthorized_client', async () => {
      await refused(() => exchange(D, subject), 'unauthorized_client');
    });

    it('an expired subject token: invalid_grant', async () => {
      const t = await subjectToken(generateDpopKey(), { ttl: '60' });
      clock.advance(61_000);
      await refused(() => exchange(A, t), 'invalid_grant');
    });
  });

  it('delegation: B acts for A, then C for B — the act chain records both hops', async () => {
    const original = await subjectToken(generateDpopKey());
    const kb = generateDpopKey();
    const hop1 = await dpopTokenRequest(h, () => exchangeForm(B, original, { scope: 'orders:read' }), kb);
    assert.equal(hop1.status, 200, JSON.stringify(hop1.body));
    const t1 = hop1.body['access_token'] as string;
    const c1 = decodeClaims(t1);
    assert.equal(c1['sub'], A);
    assert.equal(c1['client_id'], B);
    assert.deepEqual(c1['act'], { sub: B });
    assert.deepEqual(c1['cnf'], { jkt: kb.jkt });
    assert.deepEqual(c1['ajti'], [decodeClaims(original)['jti']], 'descends from the original');
    assert.deepEqual((await lastEvent(h, 'token.issued')).data['act'], { sub: B });

    const kc = generateDpopKey();
    const hop2 = await dpopTokenRequest(h, () => exchangeForm(C, t1), kc);
    assert.equal(hop2.status, 200, JSON.stringify(hop2.body));
    const c2 = decodeClaims(hop2.body['access_token'] as string);
    assert.equal(c2['sub'], A);
    assert.equal(c2['client_id'], C);
    assert.equal(c2['scope'], 'orders:read');
    assert.deepEqual(c2['act'], { sub: C, act: { sub: B } });
    assert.deepEqual(c2['ajti'], [decodeClaims(original)['jti'], c1['jti']], 'the first token first');
    assert.deepEqual(c2['cnf'], { jkt: kc.jkt });
    assert.ok((c2['exp'] as number) <= (c1['exp'] as number));

    // The delegated token cannot be widened back by its holder either.
    await refused(() => exchange(B, t1, { scope: 'orders:write' }), 'invalid_scope');
    // Nor handed on to an actor the class does not list.
    await refused(() => exchange(D, t1), 'unauthorized_client');
  });

  describe('chains stay short and loop-free', () => {
    /** A token of `sub` for the mesh, bound to a fresh key. */
    const meshToken = async (sub: string, extra: Record<string, string> = {}): Promise<string> => {
      const r = await dpopTokenRequest(
        h,
        () => ({
          grant_type: GrantType.clientCredentials,
          ...clientAuth(h, sub, keys[sub]!),
          resource: MESH,
          ...extra,
        }),
        generateDpopKey(),
      );
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return r.body['access_token'] as string;
    };
    /** A successful exchange by `actor`. */
    const hop = async (actor: string, subject: string): Promise<string> => {
      const r = await dpopTokenRequest(h, () => exchangeForm(actor, subject), generateDpopKey());
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return r.body['access_token'] as string;
    };

    it('P → Q → P: the subject cannot act again through its own delegation (invalid_grant naming the loop)', async () => {
      const viaQ = await hop(Q, await meshToken(P));
      const r = await refused(() => exchange(P, viaQ), 'invalid_grant');
      assert.equal(
        r.body['error_description'],
        `delegation loop: ${P} → ${Q} → ${P}; ${P} is already in the subject token's chain (its subject or an earlier actor) and cannot act again`,
      );
      const event = await lastEvent(h, 'token.refused');
      assert.equal(event.data['reason'], 'delegation_loop');
    });

    it('P → Q → R → Q: nor can an earlier actor', async () => {
      const viaR = await hop(R, await hop(Q, await meshToken(P)));
      const r = await refused(() => exchange(Q, viaR), 'invalid_grant');
      assert.match(String(r.body['error_description']), /^delegation loop: .*\/p → .*\/q → .*\/r → .*\/q;/);
    });

    it(`an exchange past tokens.exchange_max_depth (${MAX_DEPTH}) is invalid_grant, whoever asks`, async () => {
      // P narrows its own token, Q acts, R acts: three exchanges from the first token.
      const first = await meshToken(P);
      const narrowed = await hop(P, first);
      const deepest = await hop(R, await hop(Q, narrowed));
      assert.equal((decodeClaims(deepest)['ajti'] as string[]).length, MAX_DEPTH);
      assert.equal((decodeClaims(deepest)['ajti'] as string[])[0], decodeClaims(first)['jti']);
      for (const actor of [R, P]) {
        const r = await refused(() => exchange(actor, deepest), 'invalid_grant');
        assert.equal(
          r.body['error_description'],
          `the subject token is already ${MAX_DEPTH} exchange(s) from the token first issued, and tokens.exchange_max_depth is ${MAX_DEPTH}: exchange a token nearer the first one`,
        );
        assert.equal((await lastEvent(h, 'token.refused')).data['reason'], 'exchange_too_deep');
      }
      // One step nearer the first token is still fine.
      await hop(R, narrowed);
    });

    it('revoking the first token: every token exchanged from it is inactive and cannot be exchanged again', async () => {
      const task = await h.admin('POST', '/tasks', { workload: P, purpose: 'fan-out' });
      assert.equal(task.status, 201, JSON.stringify(task.body));
      const tid = task.body['id'] as string;
      const first = await meshToken(P, { task_id: tid });
      const viaQ = await hop(Q, first);
      const viaR = await hop(R, viaQ);
      const sibling = await meshToken(P, { task_id: tid });
      const rootJti = decodeClaims(first)['jti'] as string;
      const r = await h.admin('POST', '/revocations', { kind: 'jti', value: rootJti });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      for (const t of [first, viaQ, viaR]) assert.deepEqual(await introspect(h, t), { active: false });
      assert.equal((await introspect(h, sibling))['active'], true, 'an unrelated token of P stays active');
      await refused(() => exchange(R, viaR), 'invalid_grant');
      assert.equal((await lastEvent(h, 'token.refused')).data['reason'], 'revoked');
      // The stored records say so too: the task's token list and the token trace.
      const view = await h.admin('GET', `/tasks/${tid}`);
      assert.equal(view.status, 200, JSON.stringify(view.body));
      const revoked = new Map(
        (view.body['tokens'] as { jti: string; revoked: boolean }[]).map((t) => [t.jti, t.revoked]),
      );
      for (const t of [first, viaQ, viaR]) assert.equal(revoked.get(decodeClaims(t)['jti'] as string), true);
      assert.equal(revoked.get(decodeClaims(sibling)['jti'] as string), false);
      const trace = await h.admin('GET', `/audit/trace/${decodeClaims(viaR)['jti']}`);
      assert.equal(trace.status, 200, JSON.stringify(trace.body));
      assert.deepEqual(
        (trace.body['revocations'] as { kind: string; value: string }[]).map((x) => [x.kind, x.value]),
        [['jti', rootJti]],
      );
    });
  });
});
