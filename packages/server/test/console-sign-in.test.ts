import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { signSignInLink } from '../src/cli/commands/console.js';
import { fakeClock } from '../src/clock.js';
import type { RawDocument } from '../src/config/config-dir.js';
import {
  type Harness,
  harnessDocuments,
  privateJwk,
  signJwt,
  startHarness,
  type TestKey,
  testKey,
} from './helpers/harness.js';

// The console's sign-in and sessions over real HTTP (docs/console.md): a one-time link signed by an
// operator key opens a session cookie once; the cookie is a second way into the admin API, with CSRF
// checks on every state-changing request; sessions end at their idle and absolute timeouts, at sign-out
// and when the operator's person is deprovisioned.

const person = (id: string, active: boolean): RawDocument => ({
  kind: 'people',
  file: `people/${id}.yaml`,
  index: 0,
  doc: { id, name: id.toUpperCase(), active },
});
const operator = (name: string, key: TestKey, personId: string): RawDocument => ({
  kind: 'operator',
  file: `operators/${name}.yaml`,
  index: 0,
  doc: { name, person: personId, jwks: { keys: [key.publicJwk] } },
});

interface Answer {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

describe('console sign-in and sessions', () => {
  const clock = fakeClock(Date.now());
  const aliceKey = testKey();
  const docs = (aliceActive: boolean) => [person('alice', aliceActive), operator('alice', aliceKey, 'alice')];
  let h: Harness;
  let origin: string;

  before(async () => {
    h = await startHarness({ listen: true, clock, extraDocs: docs(true) });
    origin = new URL(h.issuer).origin;
  });
  after(() => h.close());

  const now = () => Math.floor(clock.now() / 1000);
  function link(
    o: { key?: TestKey; claims?: Record<string, unknown>; header?: Record<string, unknown> } = {},
  ) {
    return signJwt(
      o.key ?? aliceKey,
      {
        sub: 'operator:alice',
        aud: `${h.issuer}/console`,
        iat: now(),
        exp: now() + 60,
        jti: randomBytes(24).toString('base64url'),
        ...o.claims,
      },
      { typ: 'writ-console-link+jwt', ...o.header },
    );
  }
  async function http(
    method: string,
    path: string,
    o: { body?: unknown; headers?: Record<string, string> } = {},
  ) {
    const res = await fetch(`${h.issuer}${path}`, {
      method,
      headers: { ...(o.body !== undefined ? { 'content-type': 'application/json' } : {}), ...o.headers },
      ...(o.body !== undefined ? { body: JSON.stringify(o.body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : {}, headers: res.headers } as Answer;
  }
  async function signIn(jwt = link()): Promise<{ cookie: string; csrf: string; answer: Answer }> {
    const answer = await http('POST', '/console/api/signin', { body: { link: jwt } });
    const set = answer.headers.get('set-cookie') ?? '';
    return { cookie: set.split(';')[0] ?? '', csrf: String(answer.body['csrf']), answer };
  }
  async function lastRefusal() {
    return (await h.auditEvents('console.refused')).at(-1);
  }

  it('a link signs in once: the session cookie is HttpOnly, SameSite=Strict; a second use is refused and audited', async () => {
    const jwt = link();
    const first = await signIn(jwt);
    assert.equal(first.answer.status, 200, JSON.stringify(first.answer.body));
    const set = first.answer.headers.get('set-cookie') ?? '';
    assert.match(set, /^writ_console=[A-Za-z0-9_-]{43}; /);
    assert.match(set, /HttpOnly/);
    assert.match(set, /SameSite=Strict/);
    assert.match(set, /Path=\//);
    assert.doesNotMatch(set, /Secure/, 'plain HTTP issuer: no Secure flag');
    assert.equal(first.answer.body['operator'], 'operator:alice');
    assert.equal(first.answer.body['person'], 'alice');
    const session = await http('GET', '/console/api/session', { headers: { cookie: first.cookie } });
    assert.equal(session.status, 200);
    assert.equal(session.body['csrf'], first.csrf);
    assert.equal(session.body['expires_at'], clock.now() + 8 * 3_600_000);
    assert.equal((await h.auditEvents('console.signed_in')).at(-1)?.actor, 'person:alice');

    const again = await signIn(jwt);
    assert.equal(again.answer.status, 401);
    assert.equal(again.answer.body['error'], 'invalid_grant');
    assert.equal(again.answer.headers.get('set-cookie'), null);
    const refusal = await lastRefusal();
    assert.equal(refusal?.data['reason'], 'link_used');
    assert.equal(refusal?.actor, 'operator:alice');
  });

  it('the link `writ console` signs (with the operator key file) is accepted, once', async () => {
    clock.set(Math.max(clock.now(), Date.now()));
    const jwt = await signSignInLink({ operator: 'alice', key: privateJwk(aliceKey) }, h.issuer);
    // The CLI signs with the wall clock, which the fake one just caught up with (nothing advanced it yet).
    const first = await signIn(jwt);
    assert.equal(first.answer.status, 200, JSON.stringify(first.answer.body));
    assert.equal((await signIn(jwt)).answer.status, 401);
  });

  it('the session id is stored only as its SHA-256', async () => {
    const { cookie } = await signIn();
    const id = cookie.split('=')[1]!;
    const rows = await h.attackerSql('SELECT id_hash FROM console_sessions');
    assert.ok(rows.length > 0);
    assert.ok(rows.every((r) => r['id_hash'] !== id));
  });

  it('refuses an expired link, one that lives longer than 60 s, and one of another typ or audience', async () => {
    const cases: [string, Record<string, unknown>, Record<string, unknown>, string][] = [
      ['expired', { iat: now() - 120, exp: now() - 60 }, {}, 'expired'],
      ['too long', { exp: now() + 600 }, {}, 'exp_too_far'],
      ['typ', {}, { typ: 'JWT' }, 'typ'],
      ['audience', { aud: h.issuer }, {}, 'aud'],
    ];
    for (const [what, claims, header, reason] of cases) {
      const r = await signIn(link({ claims, header }));
      assert.equal(r.answer.status, 401, what);
      assert.equal(r.answer.body['error'], 'invalid_grant', what);
      assert.equal(r.answer.headers.get('set-cookie'), null, what);
      assert.equal((await lastRefusal())?.data['reason'], reason, what);
    }
  });

  it('refuses a link signed by a key that is no operator’s, whatever operator it names', async () => {
    for (const sub of ['operator:alice', 'operator:nobody']) {
      const r = await signIn(link({ key: testKey(), claims: { sub } }));
      assert.equal(r.answer.status, 401, sub);
      assert.equal(r.answer.headers.get('set-cookie'), null);
      assert.match(String(r.answer.body['error_description']), /not signed by a key registered/);
    }
  });

  it('the cookie opens the admin API; a state-changing call needs the CSRF header and this origin', async () => {
    const { cookie, csrf } = await signIn();
    const list = await http('GET', '/admin/v1/workloads', { headers: { cookie } });
    assert.equal(list.status, 200);

    const path = '/admin/v1/revocations';
    const body = { kind: 'jti', value: 'console-test-jti', reason: 'from the console' };
    const noCsrf = await http('POST', path, { body, headers: { cookie, origin } });
    assert.equal(noCsrf.status, 403);
    assert.equal(noCsrf.body['error'], 'access_denied');
    let refusal = (await h.auditEvents('admin.refused')).at(-1);
    assert.equal(refusal?.data['reason'], 'csrf');
    assert.equal(refusal?.actor, 'operator:alice');

    const wrongCsrf = await http('POST', path, { body, headers: { cookie, 'x-writ-csrf': `${csrf}x` } });
    assert.equal(wrongCsrf.status, 403);

    const crossSite = await http('POST', path, {
      body,
      headers: { cookie, 'x-writ-csrf': csrf, origin: 'https://evil.example' },
    });
    assert.equal(crossSite.status, 403);
    refusal = (await h.auditEvents('admin.refused')).at(-1);
    assert.equal(refusal?.data['reason'], 'csrf');
    assert.equal((await h.auditEvents('revocation.created')).length, 0, 'nothing was revoked');

    const ok = await http('POST', path, { body, headers: { cookie, 'x-writ-csrf': csrf, origin } });
    assert.equal(ok.status, 201, JSON.stringify(ok.body));
    const action = (await h.auditEvents('console.action')).at(-1);
    assert.equal(action?.actor, 'person:alice');
    assert.equal(action?.data['operator'], 'operator:alice');
    assert.equal(action?.data['path'], path);
    assert.equal((await h.auditEvents('revocation.created')).length, 1);
  });

  it('an admin token in Authorization is judged alone: a cookie does not stand in for a bad one', async () => {
    const { cookie } = await signIn();
    const r = await http('GET', '/admin/v1/workloads', { headers: { cookie, authorization: 'DPoP bogus' } });
    assert.equal(r.status, 401);
  });

  it('serves /console/ with a strict Content-Security-Policy (no inline script) even while not built', async () => {
    const r = await fetch(`${h.issuer}/console/`);
    const csp = r.headers.get('content-security-policy') ?? '';
    assert.match(csp, /script-src 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(r.headers.get('referrer-policy'), 'no-referrer');
    if (r.status === 404) assert.equal(((await r.json()) as { error: string }).error, 'not_found');
    else assert.equal(r.headers.get('cache-control'), 'no-store');
    for (const path of [
      '/console/api',
      '/console/..%2Fpackage.json',
      '/console/assets/..%2F..%2Fpackage.json',
    ])
      assert.equal((await fetch(`${h.issuer}${path}`)).status, 404, path);
  });

  it('a session idle past console.idle_timeout is refused, and so is one past console.absolute_timeout', async () => {
    const idle = await signIn();
    clock.advance(15 * 60_000 + 1000);
    const r = await http('GET', '/console/api/session', { headers: { cookie: idle.cookie } });
    assert.equal(r.status, 401);
    assert.match(r.headers.get('set-cookie') ?? '', /Max-Age=0/);
    assert.equal((await lastRefusal())?.data['reason'], 'console_idle');
    assert.equal(
      (await http('GET', '/admin/v1/workloads', { headers: { cookie: idle.cookie } })).status,
      401,
    );

    const busy = await signIn();
    for (let i = 0; i < 40; i++) {
      clock.advance(14 * 60_000);
      if (i < 34)
        assert.equal(
          (await http('GET', '/admin/v1/workloads', { headers: { cookie: busy.cookie } })).status,
          200,
          `call ${i}`,
        );
    }
    const late = await http('GET', '/admin/v1/workloads', { headers: { cookie: busy.cookie } });
    assert.equal(late.status, 401);
    assert.equal((await h.auditEvents('admin.refused')).at(-1)?.data['reason'], 'console_expired');
  });

  it('sign-out needs the CSRF token, ends the session, and the cookie is refused from then on', async () => {
    const { cookie, csrf } = await signIn();
    assert.equal((await http('POST', '/console/api/signout', { headers: { cookie } })).status, 403);
    const out = await http('POST', '/console/api/signout', {
      headers: { cookie, 'x-writ-csrf': csrf, origin },
    });
    assert.equal(out.status, 204);
    assert.match(out.headers.get('set-cookie') ?? '', /Max-Age=0/);
    assert.equal((await h.auditEvents('console.signed_out')).at(-1)?.actor, 'person:alice');
    assert.equal((await http('GET', '/console/api/session', { headers: { cookie } })).status, 401);
    assert.equal((await http('GET', '/admin/v1/workloads', { headers: { cookie } })).status, 401);
    assert.equal((await lastRefusal())?.data['reason'], 'console_session');
  });

  it('deprovisioning the person ends their live session at its next request, and refuses new links', async () => {
    const { cookie } = await signIn();
    const applied = await h.admin('POST', '/config', { documents: harnessDocuments(h, docs(false)) });
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
    const r = await http('GET', '/admin/v1/workloads', { headers: { cookie } });
    assert.equal(r.status, 403);
    assert.equal((await h.auditEvents('admin.refused')).at(-1)?.data['reason'], 'operator_person_inactive');
    const fresh = await signIn();
    assert.equal(fresh.answer.status, 403);
    assert.equal(fresh.answer.headers.get('set-cookie'), null);
    const restored = await h.admin('POST', '/config', { documents: harnessDocuments(h, docs(true)) });
    assert.equal(restored.status, 200);
  });
});
