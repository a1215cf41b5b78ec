import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createDpopProof } from '@writ/sdk/dpop';
import {
  createVerifier,
  decide,
  PolicyBundleError,
  RequestRefusal,
  type Verifier,
  type VerifierOptions,
  verifyPolicyBundle,
} from '@writ/sdk/verifier';
import { POLICY_BUNDLE_PATH, POLICY_BUNDLE_TYP, type PolicyBundleClaims } from '@writ/sdk/wire';
import { fakeClock } from '../src/clock.js';
import type { RawDocument } from '../src/config/config-dir.js';
import { buildContext } from '../src/policy/request.js';
import { classDoc, policyBundleKeys, rawDoc, serverKeys, workloadDoc } from './helpers/dpop.js';
import {
  AUDIENCE,
  freePort,
  type Harness,
  LEGACY_WORKLOAD,
  startHarness,
  testKey,
  WORKLOAD,
} from './helpers/harness.js';
import { adminJson, applyPolicies, putResource } from './helpers/policy.js';
import { eventually, presenting, ready, workloadClient } from './helpers/verifier.js';

// Request-time policy decided inside the resource server: the verifier downloads the signed bundle
// for its API from a real Writ over real HTTP, decides with Cedar, and follows changes made through
// the admin API (the `writ apply` path and resource updates) as the event stream announces them.

const VERIFIER_ID = 'spiffe://test.writ/verifier/reports-api';
const WRITER = 'spiffe://test.writ/reports/writer';
const B64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

const POLICIES = `
@id("token-baseline")
permit(principal is Workload, action in Action::"token", resource);

@id("owner-reads")
permit(principal is Workload, action == Action::"read", resource)
when { principal.owner == resource.owner };

@id("writer-exports")
permit(principal == Workload::"spiffe://test.writ/reports/writer", action == Action::"export", resource);

@id("viewers-read")
permit(principal is Human, action == Action::"read", resource)
when { principal.roles.contains("viewer") && principal.mfa };

@id("restricted-closed")
forbid(principal, action in Action::"request", resource)
when { resource.sensitivity == "restricted" };

// Reads a context field the verifier itself does not know: it must still be in its context record
// (from the bundle's defaults), or this forbid would fail to evaluate and deny everything.
@id("no-untrusted-ci")
forbid(principal, action in Action::"request", resource)
when { context.federation.issuer == "untrusted-ci" };

@id("billing-writes")
permit(principal is Workload, action == Action::"write", resource == Api::"https://billing.test.writ");
`;

const WRITES = `
@id("owner-writes")
permit(principal is Workload, action == Action::"write", resource)
when { principal.owner == resource.owner && context.scopes.contains("reports:read") };
`;

const RESOURCES = [{ id: AUDIENCE, sensitivity: 'internal', environment: 'prod', owner: 'team-reports' }];

/** Resolves once the verifier holds a bundle newer than `version`; fails (rather than hangs) after 15 s. */
async function newerThan(v: Verifier, version: number): Promise<number> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    v.policy!.loaded(version + 1),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no bundle newer than ${version}`)), 15_000);
    }),
  ]).finally(() => clearTimeout(timer));
}

describe('policy bundle: request-time policy in the verifier', () => {
  const clock = fakeClock(Date.UTC(2026, 0, 5, 12));
  const verifierKey = testKey();
  const writerKey = testKey();
  let h: Harness;
  let issuer: string;
  let docs: RawDocument[];
  let verifier: Verifier;
  const verifiers: Verifier[] = [];
  /** The last bundle the main verifier downloaded, as served. */
  let served: string | undefined;
  let token: string;

  const makeVerifier = (o: Partial<VerifierOptions> = {}): Verifier => {
    const v = createVerifier({
      issuer,
      audience: AUDIENCE,
      client: workloadClient(issuer, VERIFIER_ID, verifierKey, { nowMs: clock.now }),
      now: clock.now,
      stalenessMs: 120_000,
      policy: {},
      ...o,
    });
    verifiers.push(v);
    return v;
  };

  const request = (method = 'GET', t = token) => presenting(t, { url: `${AUDIENCE}/reports/1`, method });

  const outcome = async (v: Verifier, method = 'GET'): Promise<string> => {
    try {
      await v.verify(request(method));
      return 'allow';
    } catch (err) {
      if (err instanceof RequestRefusal) return `${err.code}:${err.reason}`;
      throw err;
    }
  };

  before(async () => {
    const port = await freePort();
    issuer = `http://127.0.0.1:${port}`;
    docs = [
      classDoc({
        name: 'verifier-events',
        audiences: [`${issuer}/v1/events`],
        scopes: ['events:read'],
        default_scopes: ['events:read'],
      }),
      workloadDoc(VERIFIER_ID, verifierKey, ['verifier-events'], { serves: [AUDIENCE] }),
      // A second workload for the API, owned by another team.
      rawDoc('workload', {
        id: WRITER,
        owner: 'team-other',
        environment: 'prod',
        classes: ['reports-read'],
        jwks: { keys: [writerKey.publicJwk] },
      }),
    ];
    h = await startHarness({
      clock,
      listen: true,
      settings: { 'listen.port': port, 'events.heartbeat': 1 },
      extraDocs: docs,
    });
    const applied = await applyPolicies(
      h,
      { files: [{ file: 'policies/requests.cedar', text: POLICIES }], resources: RESOURCES },
      docs,
    );
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
    const t = await h.requestToken();
    assert.equal(t.status, 200, JSON.stringify(t.body));
    token = t.body['access_token'] as string;
    verifier = makeVerifier({
      fetch: async (input, init) => {
        const res = await fetch(input, init);
        if (new URL(String(input)).pathname !== POLICY_BUNDLE_PATH || !res.ok) return res;
        served = await res.text();
        return new Response(served, { status: res.status, headers: { 'content-type': 'application/jwt' } });
      },
    });
    await ready(verifier);
    await verifier.policy!.loaded();
  });
  after(async () => {
    for (const v of verifiers) v.close();
    await h.close();
  });

  it('allows and denies operations by the policies, as the server would', async () => {
    assert.equal(await outcome(verifier), 'allow');
    // No policy permits writes on this API.
    assert.equal(await outcome(verifier, 'POST'), 'insufficient_scope:policy_denied');
    const d = await verifier.policy!.decide({
      principal: { type: 'Workload', id: WORKLOAD },
      action: 'read',
    });
    assert.equal(d.decision, 'allow');
    assert.deepEqual(d.reasons, ['owner-reads']);
    const running = (await adminJson(h, 'GET', '/policy')).body['version'] as { id: string };
    assert.equal(d.policyVersion, running.id);
    // Another team's workload does not own the API.
    const other = await verifier.policy!.decide({
      principal: { type: 'Workload', id: WRITER },
      action: 'read',
    });
    assert.equal(other.decision, 'deny');
    // Principals the bundle does not know are denied without asking Cedar.
    const stranger = await verifier.policy!.decide({
      principal: { type: 'Workload', id: 'spiffe://test.writ/nobody' },
      action: 'read',
    });
    assert.deepEqual([stranger.decision, stranger.refusal], ['deny', 'unknown_workload']);
    // A policy pinned to one workload applies to it alone (the verifier hands Cedar only its slice).
    const exporting = (id: string) =>
      verifier.policy!.decide({ principal: { type: 'Workload', id }, action: 'export' });
    assert.deepEqual((await exporting(WRITER)).reasons, ['writer-exports']);
    assert.equal((await exporting(WORKLOAD)).decision, 'deny');
    // People, with what the resource server vouches for about them.
    const person = (roles: string[], mfa: boolean) =>
      verifier.policy!.decide({
        principal: { type: 'Human', id: 'alice@test.writ', roles, mfa },
        action: 'read',
      });
    assert.deepEqual((await person(['viewer'], true)).reasons, ['viewers-read']);
    assert.equal((await person(['viewer'], false)).decision, 'deny');
    assert.equal((await person(['analyst'], true)).decision, 'deny');
  });

  it('refuses a context out of range as the server does, rather than guess a risk', async () => {
    // An attacker-influenced or buggy PEP value: the server's AuthZEN endpoint answers 400 for it
    // (policy-authzen.test.ts); the verifier denies, naming why, and never decides on a made-up risk.
    for (const context of [{ risk: 101 }, { risk: -1 }, { risk: 12.5 }, { source_ip: 'not-an-address' }]) {
      const d = await verifier.policy!.decide({
        principal: { type: 'Workload', id: WORKLOAD },
        action: 'read',
        context,
      });
      assert.deepEqual([d.decision, d.refusal], ['deny', 'invalid_context'], JSON.stringify(context));
      assert.match(
        d.errors[0] ?? '',
        /^(risk must be an integer from 0 to 100|source_ip must be an IPv4 or IPv6 address)$/,
      );
    }
    const edge = await verifier.policy!.decide({
      principal: { type: 'Workload', id: WORKLOAD },
      action: 'read',
      context: { risk: 100, source_ip: '::ffff:10.0.0.1' },
    });
    assert.equal(edge.decision, 'allow', 'the range includes 100; a mapped address is an address');
    // Through `verify`, a resource server whose context callback returns such a risk gets a 403.
    const risky = makeVerifier({ policy: { context: () => ({ risk: 150 }) } });
    await ready(risky);
    await risky.policy!.loaded();
    assert.equal(await outcome(risky), 'insufficient_scope:policy_invalid_context');
  });

  it('holds only what applies to its API, for a few minutes, signed with a bundle key and its own typ', async () => {
    const [header, payload] = served!.split('.');
    const { typ, kid, alg } = JSON.parse(Buffer.from(header!, 'base64url').toString());
    assert.equal(typ, POLICY_BUNDLE_TYP);
    assert.equal(alg, 'EdDSA');
    assert.ok(
      (await policyBundleKeys(h)).some((k) => k.kid === kid),
      'a key of the bundle JWKS',
    );
    assert.ok(!(await serverKeys(h)).some((k) => k.kid === kid), 'no key of the token JWKS');
    const b = JSON.parse(Buffer.from(payload!, 'base64url').toString()) as PolicyBundleClaims;
    assert.equal(b.iss, issuer);
    assert.equal(b.aud, AUDIENCE);
    assert.equal(b.exp - b.iat, 300);
    // The billing-only policy and the token policy cannot apply to a request on this API.
    assert.deepEqual(b.policies.map((p) => p.id).sort(), [
      'no-untrusted-ci',
      'owner-reads',
      'restricted-closed',
      'viewers-read',
      'writer-exports',
    ]);
    // With the time and the address the verifier fills, the defaults are the server's whole record.
    assert.deepEqual(
      [...Object.keys(b.context_defaults), 'now', 'hour', 'weekday', 'source_ip'].sort(),
      Object.keys(buildContext(clock.now())).sort(),
    );
    assert.deepEqual(
      { ...b.resource, version: 0 },
      { ...RESOURCES[0], version: 0 },
      'the API entity with its attributes',
    );
    assert.ok(b.resource.version > 0);
    assert.ok(b.schema.includes('entity Api'));
    // Every workload whose classes may get tokens for the API, and no other.
    assert.deepEqual(b.workloads.map((w) => w.id).sort(), [LEGACY_WORKLOAD, WORKLOAD, WRITER].sort());
    assert.equal(b.version, verifier.policy!.status().version);
  });

  it('answers through the middleware with 403 insufficient_scope when policy denies', async () => {
    const parts = (method: string) => ({
      method,
      url: `${AUDIENCE}/reports/1`,
      authorization: `Bearer ${token}`,
      dpop: [],
    });
    const denied = await decide(verifier, parts('DELETE'), {});
    assert.equal(denied.ok, false);
    if (denied.ok) return;
    assert.equal(denied.refusal.status, 403);
    assert.equal(denied.refusal.body.error, 'insufficient_scope');
    assert.match(String(denied.refusal.headers['www-authenticate']), /error="insufficient_scope"/);
    const allowed = await decide(verifier, parts('GET'), {});
    assert.equal(allowed.ok, true);
  });

  it('follows a policy change applied through the admin API (writ apply) without a restart', async () => {
    const before = verifier.policy!.status().version!;
    assert.equal(await outcome(verifier, 'POST'), 'insufficient_scope:policy_denied');
    const applied = await applyPolicies(
      h,
      {
        files: [
          { file: 'policies/requests.cedar', text: POLICIES },
          { file: 'policies/writes.cedar', text: WRITES },
        ],
        resources: RESOURCES,
      },
      docs,
    );
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
    await newerThan(verifier, before);
    assert.equal(await outcome(verifier, 'POST'), 'allow');
    // Asked directly, the context is the caller's: the new policy reads the token's scopes.
    const d = await verifier.policy!.decide({
      principal: { type: 'Workload', id: WORKLOAD },
      action: 'write',
      context: { scopes: ['reports:read'] },
    });
    assert.deepEqual([d.decision, d.reasons], ['allow', ['owner-writes']]);
    const unscoped = await verifier.policy!.decide({
      principal: { type: 'Workload', id: WORKLOAD },
      action: 'write',
    });
    assert.equal(unscoped.decision, 'deny');
  });

  it('follows a resource attribute change (sensitivity) at its next decision, never from an old cache entry', async () => {
    const read = { principal: { type: 'Workload' as const, id: WORKLOAD }, action: 'read' as const };
    await verifier.policy!.decide(read);
    const warm = await verifier.policy!.decide(read);
    assert.deepEqual([warm.decision, warm.cached], ['allow', true]);
    const before = verifier.policy!.status().version!;
    const put = await putResource(h, { ...RESOURCES[0]!, sensitivity: 'restricted' });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    await newerThan(verifier, before);
    const after = await verifier.policy!.decide(read);
    assert.deepEqual([after.decision, after.cached, after.reasons], ['deny', false, ['restricted-closed']]);
    assert.ok(after.version! > before);
    assert.equal(await outcome(verifier), 'insufficient_scope:policy_denied');

    const restricted = verifier.policy!.status().version!;
    const cleared = await adminJson(h, 'DELETE', `/resources/${encodeURIComponent(AUDIENCE)}`);
    assert.equal(cleared.status, 200, JSON.stringify(cleared.body));
    await newerThan(verifier, restricted);
    assert.equal(await outcome(verifier), 'allow');
  });

  it('a verifier that joins later gets the bundle in force', async () => {
    const late = makeVerifier();
    await ready(late);
    await late.policy!.loaded(verifier.policy!.status().version!);
    assert.equal(await outcome(late), 'allow');
  });

  it('a decision made after an announcement waits for that bundle; one it cannot get denies', async () => {
    let gate: Promise<void> | undefined;
    let open!: () => void;
    const v = makeVerifier({
      policy: { waitMs: 20_000 },
      fetch: async (input, init) => {
        if (gate && new URL(String(input)).pathname === POLICY_BUNDLE_PATH) await gate;
        return fetch(input, init);
      },
    });
    let failing = false;
    const impatient = makeVerifier({
      policy: { waitMs: 1 },
      fetch: async (input, init) => {
        if (failing && new URL(String(input)).pathname === POLICY_BUNDLE_PATH)
          return new Response('', { status: 503 });
        return fetch(input, init);
      },
    });
    await Promise.all([ready(v), ready(impatient)]);
    const held = await v.policy!.loaded();
    await impatient.policy!.loaded(held);
    assert.equal(await outcome(v), 'allow');
    assert.equal(await outcome(impatient), 'allow');

    gate = new Promise<void>((r) => {
      open = r;
    });
    failing = true;
    const put = await putResource(h, { ...RESOURCES[0]!, sensitivity: 'restricted' });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    const announced = (x: Verifier) => (x.policy!.status().announced > held ? true : undefined);
    await eventually('the announcement', () => announced(v));
    await eventually('the announcement', () => announced(impatient));
    // The bundle is held back: this decision cannot be made under the old one, so it waits for it.
    const pending = outcome(v);
    open();
    assert.equal(await pending, 'insufficient_scope:policy_denied');
    // This one cannot get the announced bundle at all: it denies rather than use the old one.
    assert.equal(await outcome(impatient), 'insufficient_scope:policy_bundle_outdated');

    const back = await putResource(h, RESOURCES[0]!);
    assert.equal(back.status, 200, JSON.stringify(back.body));
    await newerThan(v, v.policy!.status().version!);
    assert.equal(await outcome(v), 'allow');
  });

  describe('refuses bundles that do not verify', () => {
    const genuine = () => {
      const [header, payload, signature] = served!.split('.') as [string, string, string];
      const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as PolicyBundleClaims;
      const kid = JSON.parse(Buffer.from(header, 'base64url').toString()).kid as string;
      return { header, payload, signature, claims, kid };
    };
    const attackerKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    /** Claims signed as the server signs bundles (its bundle key), under `typ`: every other check must hold. */
    const bundleSigned = (claims: Record<string, unknown>, typ = POLICY_BUNDLE_TYP) =>
      h.writ.ctx.keys.signJwt(typ, claims, 'policy-bundle').jws;
    const es256 = (input: string) =>
      sign('sha256', Buffer.from(input), { key: attackerKey, dsaEncoding: 'ieee-p1363' }).toString(
        'base64url',
      );
    const tampered: Record<string, () => string> = {
      'a flipped byte in the payload': () => {
        const g = genuine();
        const p = Buffer.from(g.payload, 'base64url');
        p[Math.floor(p.length / 2)]! ^= 1;
        return `${g.header}.${p.toString('base64url')}.${g.signature}`;
      },
      're-signed by an unknown key under the server kid': () => {
        const g = genuine();
        return `${g.header}.${g.payload}.${es256(`${g.header}.${g.payload}`)}`;
      },
      're-signed by an unknown key under its own kid': () => {
        const g = genuine();
        const header = B64({ alg: 'ES256', typ: POLICY_BUNDLE_TYP, kid: 'attacker' });
        return `${header}.${g.payload}.${es256(`${header}.${g.payload}`)}`;
      },
      'alg none': () => `${B64({ alg: 'none', typ: POLICY_BUNDLE_TYP })}.${genuine().payload}.`,
      'alg none with a signature': () =>
        `${B64({ alg: 'none', typ: POLICY_BUNDLE_TYP })}.${genuine().payload}.${genuine().signature}`,
      'the genuine bundle signed by the token key': () =>
        h.writ.ctx.keys.signJwt(POLICY_BUNDLE_TYP, genuine().claims as unknown as Record<string, unknown>)
          .jws,
      'an access-token typ, signed by the bundle key': () =>
        bundleSigned(genuine().claims as unknown as Record<string, unknown>, 'at+jwt'),
      'another issuer, signed by the bundle key': () =>
        bundleSigned({ ...genuine().claims, iss: 'https://evil.test' }),
      'another API, signed by the bundle key': () =>
        bundleSigned({
          ...genuine().claims,
          aud: 'https://billing.test.writ',
          resource: { ...genuine().claims.resource, id: 'https://billing.test.writ' },
        }),
      'expired, signed by the bundle key': () => {
        const now = Math.floor(clock.now() / 1000);
        return bundleSigned({ ...genuine().claims, iat: now - 400, exp: now - 100 });
      },
      'without exp, signed by the bundle key': () => {
        const { exp: _e, ...rest } = genuine().claims;
        return bundleSigned(rest);
      },
    };
    const REASONS: Record<string, string> = {
      'a flipped byte in the payload': 'bad_signature',
      're-signed by an unknown key under the server kid': 'bad_signature',
      're-signed by an unknown key under its own kid': 'no_key',
      'alg none': 'malformed',
      'alg none with a signature': 'alg_not_allowed',
      'the genuine bundle signed by the token key': 'no_key',
      'an access-token typ, signed by the bundle key': 'typ',
      'another issuer, signed by the bundle key': 'iss',
      'another API, signed by the bundle key': 'aud',
      'expired, signed by the bundle key': 'expired',
      'without exp, signed by the bundle key': 'exp',
    };

    for (const [name, make] of Object.entries(tampered)) {
      it(`${name}: refused, and a verifier that only ever sees it denies`, async () => {
        const keys = await policyBundleKeys(h);
        assert.throws(
          () =>
            verifyPolicyBundle(make(), {
              keys,
              issuer,
              audience: AUDIENCE,
              maxBytes: 1 << 20,
              nowSeconds: Math.floor(clock.now() / 1000),
            }),
          (err: unknown) => err instanceof PolicyBundleError && err.reason === REASONS[name],
        );
        const v = makeVerifier({
          fetch: async (input, init) => {
            if (new URL(String(input)).pathname !== POLICY_BUNDLE_PATH) return fetch(input, init);
            return new Response(make(), { status: 200, headers: { 'content-type': 'application/jwt' } });
          },
        });
        await ready(v);
        await eventually('the bundle refused', () => (v.policy!.status().refused > 0 ? true : undefined));
        assert.equal(v.policy!.status().version, undefined);
        assert.equal(await outcome(v), 'insufficient_scope:policy_no_bundle');
      });
    }

    it('a bundle larger than the verifier takes', async () => {
      const v = makeVerifier({ policy: { maxBundleBytes: 256 } });
      await ready(v);
      await eventually('the bundle refused', () => (v.policy!.status().refused > 0 ? true : undefined));
      assert.match(v.policy!.status().lastError ?? '', /larger than 256 bytes/);
      assert.equal(await outcome(v), 'insufficient_scope:policy_no_bundle');
    });

    it('an older bundle than the one held', async () => {
      const keys = await policyBundleKeys(h);
      const g = genuine();
      assert.throws(
        () =>
          verifyPolicyBundle(served!, {
            keys,
            issuer,
            audience: AUDIENCE,
            maxBytes: 1 << 20,
            nowSeconds: Math.floor(clock.now() / 1000),
            held: g.claims.version + 1,
          }),
        (err: unknown) => err instanceof PolicyBundleError && err.reason === 'older',
      );
      // Replayed to a verifier holding a newer one: refused, and the newer one stays in force.
      const old = served!;
      let replay = false;
      const v = makeVerifier({
        fetch: async (input, init) => {
          if (replay && new URL(String(input)).pathname === POLICY_BUNDLE_PATH)
            return new Response(old, { status: 200, headers: { 'content-type': 'application/jwt' } });
          return fetch(input, init);
        },
      });
      await ready(v);
      const held = await v.policy!.loaded(g.claims.version);
      const put = await putResource(h, { ...RESOURCES[0]!, owner: 'team-reports' });
      assert.equal(put.status, 200);
      await newerThan(v, held);
      const now = v.policy!.status().version!;
      replay = true;
      // Twice: the first may join a fetch already under way.
      await v.policy!.refresh();
      await v.policy!.refresh();
      assert.equal(v.policy!.status().version, now);
      assert.match(v.policy!.status().lastError ?? '', /older/);
    });
  });

  it('denies when it has no bundle (the endpoint is unreachable)', async () => {
    const v = makeVerifier({
      fetch: async (input, init) => {
        if (new URL(String(input)).pathname === POLICY_BUNDLE_PATH) return new Response('', { status: 503 });
        return fetch(input, init);
      },
    });
    await ready(v);
    await eventually('a failed fetch', () => (v.policy!.status().lastError ? true : undefined));
    assert.equal(await outcome(v), 'insufficient_scope:policy_no_bundle');
    const d = await v.policy!.decide({ principal: { type: 'Workload', id: WORKLOAD }, action: 'read' });
    assert.deepEqual([d.decision, d.refusal, d.version], ['deny', 'no_bundle', undefined]);
  });

  it('says clearly when Cedar cannot be loaded, and allows nothing', async () => {
    const v = makeVerifier({
      policy: {
        cedar: () =>
          Promise.reject(new PolicyBundleError('cedar_missing', 'install @cedar-policy/cedar-wasm')),
      },
    });
    await ready(v);
    await assert.rejects(v.verify(request()), (err: unknown) => {
      return err instanceof PolicyBundleError && err.reason === 'cedar_missing';
    });
  });

  it('the endpoint authenticates like the event stream', async () => {
    const anonymous = await h.writ.app.inject({
      method: 'GET',
      url: `${POLICY_BUNDLE_PATH}?audience=${AUDIENCE}`,
    });
    assert.equal(anonymous.statusCode, 401);
    assert.ok(anonymous.headers['www-authenticate']);
    // An API token is not a verifier's token.
    const wrongAudience = await h.writ.app.inject({
      method: 'GET',
      url: `${POLICY_BUNDLE_PATH}?audience=${AUDIENCE}`,
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(wrongAudience.statusCode, 401);
    // A verifier's own token (DPoP-bound, for the events audience), the proof over the bundle's URL.
    const client = workloadClient(issuer, VERIFIER_ID, verifierKey, { nowMs: clock.now });
    const t = await client.requestToken({ audience: `${issuer}/v1/events` });
    const get = (query: string) =>
      h.writ.app.inject({
        method: 'GET',
        url: `${POLICY_BUNDLE_PATH}${query}`,
        headers: {
          authorization: `DPoP ${t.access_token}`,
          dpop: createDpopProof(client.dpopKey, {
            method: 'GET',
            url: `${issuer}${POLICY_BUNDLE_PATH}`,
            accessToken: t.access_token,
            nowSeconds: Math.floor(clock.now() / 1000),
          }),
        },
      });
    const noAudience = await get('');
    assert.equal(noAudience.statusCode, 400);
    assert.equal(JSON.parse(noAudience.body).error, 'invalid_request');
    const served = await h.auditEvents('policy.bundle.served');
    const ok = await get(`?audience=${encodeURIComponent(AUDIENCE)}`);
    assert.equal(ok.statusCode, 200);
    assert.match(String(ok.headers['content-type']), /^application\/jwt/);
    assert.equal(ok.headers['cache-control'], 'no-store');
    const b = verifyPolicyBundle(ok.body, {
      keys: await policyBundleKeys(h),
      issuer,
      audience: AUDIENCE,
      maxBytes: 1 << 20,
      nowSeconds: Math.floor(clock.now() / 1000),
    });
    assert.equal(b.version, verifier.policy!.status().version);
    // The verifiers of the earlier cases are still running and may fetch too (a stream that reopens).
    const after = (await h.auditEvents('policy.bundle.served')).slice(served.length);
    assert.ok(after.length >= 1, 'the bundle served is audited');
    assert.ok(after.every((e) => e.actor === VERIFIER_ID && e.data['audience'] === AUDIENCE));
  });
});
