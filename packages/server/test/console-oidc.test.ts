import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { operatorDoc as operator, personDoc as person, startOidcHarness } from './helpers/console-oidc.js';
import { freePort, type Harness, startHarness } from './helpers/harness.js';
import { type IdentityProvider, type IdpUser, startIdentityProvider } from './helpers/identity-provider.js';

// OpenID Connect sign-in to the console over real HTTP (docs/console.md, "OpenID Connect"): a real
// identity provider (oidc-provider) on loopback, the code flow with PKCE driven by fetch with cookies as a
// browser would, a session that calls the admin API; tampered, replayed and unmapped sign-ins refused.

/** Cookies per origin, as a browser keeps them (names are distinct enough here to ignore paths). */
class CookieJar {
  readonly #jars = new Map<string, Map<string, string>>();
  take(url: string, res: Response): void {
    const jar = this.#jar(url);
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      if (value === '' || /max-age=0/i.test(line)) jar.delete(name);
      else jar.set(name, value);
    }
  }
  header(url: string): string {
    return [...this.#jar(url)].map(([k, v]) => `${k}=${v}`).join('; ');
  }
  get(url: string, name: string): string | undefined {
    return this.#jar(url).get(name);
  }
  #jar(url: string) {
    const origin = new URL(url).origin;
    const jar = this.#jars.get(origin) ?? new Map<string, string>();
    this.#jars.set(origin, jar);
    return jar;
  }
}

async function get(jar: CookieJar, url: string, cookie?: string): Promise<Response> {
  const res = await fetch(url, { redirect: 'manual', headers: { cookie: cookie ?? jar.header(url) } });
  jar.take(url, res);
  return res;
}

describe('console sign-in with OpenID Connect', () => {
  let h: Harness;
  let idp: IdentityProvider;

  before(async () => {
    const idpPort = await freePort();
    let clientSecret: string;
    ({ h, clientSecret } = await startOidcHarness({
      idpPort,
      docs: [
        person('alice', { email: 'alice@example.com' }),
        operator('alice', 'alice'),
        person('bob', { email: 'Bob@Example.com' }),
        operator('bob', 'bob'),
        person('carol'),
        person('dave', { active: false }),
        operator('dave', 'dave'),
      ],
    }));
    idp = await startIdentityProvider({
      redirectUri: `${h.issuer}/console/oidc/callback`,
      clientSecret,
      port: idpPort,
    });
  });
  after(async () => {
    await idp.close();
    await h.close();
  });

  /**
   * A browser's way from `/console/oidc/start` through the provider's login to the callback URL Writ
   * is sent back to, which is returned unvisited.
   */
  async function toCallback(user: IdpUser, jar = new CookieJar()) {
    idp.loginAs(user);
    const start = await get(jar, `${h.issuer}/console/oidc/start`);
    assert.equal(start.status, 302, await start.text());
    let url = start.headers.get('location')!;
    const authorize = new URL(url);
    for (let hops = 0; hops < 6 && !url.startsWith(h.issuer); hops++) {
      const res = await get(jar, url);
      assert.ok([302, 303].includes(res.status), `${url}: ${res.status} ${await res.text()}`);
      url = new URL(res.headers.get('location')!, url).href;
    }
    assert.ok(url.startsWith(`${h.issuer}/console/oidc/callback?`), url);
    return { start, authorize, callback: url, jar };
  }
  async function lastRefusal() {
    return (await h.auditEvents('console.refused')).at(-1);
  }
  async function refused(res: Response, status: number, reason: string) {
    const body = (await res.json()) as Record<string, unknown>;
    assert.equal(res.status, status, JSON.stringify(body));
    assert.equal(typeof body['error_description'], 'string');
    assert.equal(res.headers.get('set-cookie')?.includes('writ_console='), false, 'no session cookie');
    // Anonymous refusals of one kind are audited once per window (audit.refusal_window): the newest
    // refusal event is of this kind, written now or by the first of its window.
    const last = await lastRefusal();
    assert.equal(last?.data['reason'], reason);
    return { body, actor: last?.actor };
  }

  it('the code flow with PKCE opens a session that can call the admin API', async () => {
    const before = (await h.auditEvents('console.signed_in')).length;
    const { start, authorize, callback, jar } = await toCallback({ sub: 'alice' });
    const flowCookie = start.headers.get('set-cookie') ?? '';
    assert.match(flowCookie, /^writ_oidc=[A-Za-z0-9_-]{100,256}; /);
    assert.match(flowCookie, /HttpOnly/);
    assert.match(flowCookie, /SameSite=Lax/);
    assert.match(flowCookie, /Path=\/console\/oidc/);
    const q = authorize.searchParams;
    assert.equal(q.get('response_type'), 'code');
    assert.equal(q.get('code_challenge_method'), 'S256');
    assert.match(q.get('code_challenge') ?? '', /^[A-Za-z0-9_-]{43}$/);
    assert.match(q.get('state') ?? '', /^[A-Za-z0-9_-]{43}$/);
    assert.match(q.get('nonce') ?? '', /^[A-Za-z0-9_-]{43}$/);
    assert.equal(q.get('redirect_uri'), `${h.issuer}/console/oidc/callback`);
    assert.ok(!flowCookie.includes(q.get('state')!), 'the cookie is sealed: the state is not readable in it');

    const done = await get(jar, callback);
    assert.equal(done.status, 302, await done.text());
    assert.equal(done.headers.get('location'), '/console/');
    const session = jar.get(h.issuer, 'writ_console');
    assert.ok(session, 'a session cookie was set');
    assert.equal(jar.get(h.issuer, 'writ_oidc'), undefined, 'the flow cookie is cleared');

    const me = await fetch(`${h.issuer}/console/api/session`, {
      headers: { cookie: `writ_console=${session}` },
    });
    const view = (await me.json()) as Record<string, unknown>;
    assert.equal(me.status, 200);
    assert.equal(view['operator'], 'operator:alice');
    assert.equal(view['person'], 'alice');
    assert.equal(view['via'], 'oidc');
    const workloads = await fetch(`${h.issuer}/admin/v1/workloads`, {
      headers: { cookie: `writ_console=${session}` },
    });
    assert.equal(workloads.status, 200, await workloads.text());
    const signedIn = await h.auditEvents('console.signed_in');
    assert.equal(signedIn.length, before + 1);
    assert.equal(signedIn.at(-1)?.actor, 'person:alice');
    assert.equal(signedIn.at(-1)?.data['via'], 'oidc');
    assert.equal(signedIn.at(-1)?.data['sub'], 'alice');
  });

  it('a person is found by the e-mail address the provider verified, never by one it did not', async () => {
    const ok = await toCallback({ sub: 'idp-7731', email: 'bob@example.com', email_verified: true });
    const done = await get(ok.jar, ok.callback);
    assert.equal(done.status, 302, await done.text());
    assert.ok(ok.jar.get(h.issuer, 'writ_console'));

    const unverified = await toCallback({ sub: 'idp-7732', email: 'bob@example.com', email_verified: false });
    const { body } = await refused(await get(unverified.jar, unverified.callback), 403, 'oidc_no_person');
    assert.equal(body['error'], 'access_denied');
    assert.match(String(body['error_description']), /email_verified/);
  });

  it("a tampered state, a missing or forged flow cookie, and another browser's flow are refused", async () => {
    const a = await toCallback({ sub: 'alice' });
    const tampered = new URL(a.callback);
    tampered.searchParams.set('state', `${tampered.searchParams.get('state')!.slice(0, -2)}AA`);
    const { body } = await refused(await get(a.jar, tampered.href), 400, 'oidc_state');
    assert.equal(body['error'], 'invalid_request');

    const b = await toCallback({ sub: 'alice' });
    const forged = b.jar.get(h.issuer, 'writ_oidc')!;
    await refused(await get(b.jar, b.callback, ''), 400, 'oidc_state');
    const flipped = `${forged.slice(0, 40)}${forged[40] === 'A' ? 'B' : 'A'}${forged.slice(41)}`;
    await refused(await get(b.jar, b.callback, `writ_oidc=${flipped}`), 400, 'oidc_state');

    // The callback of one browser's flow with another browser's cookie (login CSRF): refused.
    const c = await toCallback({ sub: 'alice' });
    const d = await toCallback({ sub: 'alice' });
    await refused(await get(c.jar, d.callback), 400, 'oidc_state');
    assert.equal(c.jar.get(h.issuer, 'writ_console'), undefined);
  });

  it('a callback is taken once: replayed with its cookie, it is refused', async () => {
    const { callback, jar } = await toCallback({ sub: 'alice' });
    const flow = jar.get(h.issuer, 'writ_oidc')!;
    const first = await get(jar, callback);
    assert.equal(first.status, 302);
    const again = await get(jar, callback, `writ_oidc=${flow}`);
    const { body } = await refused(again, 400, 'oidc_state');
    assert.match(String(body['error_description']), /finished already/);
  });

  it('a person no operator names, an unknown subject and an inactive person are refused', async () => {
    const carol = await toCallback({ sub: 'carol' });
    const { body, actor } = await refused(await get(carol.jar, carol.callback), 403, 'oidc_no_operator');
    assert.equal(body['error'], 'access_denied');
    assert.equal(actor, 'person:carol', 'the provider proved who it is: the refusal names the person');
    assert.match(String(body['error_description']), /no operator names the person "carol"/);

    const stranger = await toCallback({ sub: 'mallory', email: 'mallory@example.com', email_verified: true });
    const unknown = await get(stranger.jar, stranger.callback);
    const unknownBody = (await unknown.json()) as Record<string, unknown>;
    assert.equal(unknown.status, 403);
    assert.match(String(unknownBody['error_description']), /no person has the identity provider's subject/);
    assert.equal(stranger.jar.get(h.issuer, 'writ_console'), undefined);

    const dave = await toCallback({ sub: 'dave' });
    const inactive = await refused(await get(dave.jar, dave.callback), 403, 'oidc_no_person');
    assert.match(String(inactive.body['error_description']), /not active/);
    assert.equal(inactive.actor, 'person:dave');
  });

  it("an error the provider sends back is refused as oidc_callback; a code without its flow's verifier as oidc_token", async () => {
    const a = await toCallback({ sub: 'alice' });
    const state = new URL(a.callback).searchParams.get('state')!;
    const denied = `${h.issuer}/console/oidc/callback?error=access_denied&state=${state}&iss=${encodeURIComponent(idp.issuer)}`;
    const { body } = await refused(await get(a.jar, denied), 400, 'oidc_callback');
    assert.match(String(body['error_description']), /access_denied/);

    // The code of flow B carried back with flow C's state and cookie: the verifier does not match it.
    const b = await toCallback({ sub: 'alice' });
    const c = await toCallback({ sub: 'alice' });
    const swapped = new URL(c.callback);
    swapped.searchParams.set('code', new URL(b.callback).searchParams.get('code')!);
    const { body: swappedBody } = await refused(await get(c.jar, swapped.href), 401, 'oidc_token');
    assert.equal(swappedBody['error'], 'invalid_grant');
  });
});

describe('console sign-in with OpenID Connect, not configured', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ listen: true });
  });
  after(() => h.close());

  it('answers 404 oidc_off at start and callback', async () => {
    for (const path of ['/console/oidc/start', '/console/oidc/callback?code=x&state=y']) {
      const res = await fetch(`${h.issuer}${path}`, { redirect: 'manual' });
      const body = (await res.json()) as Record<string, unknown>;
      assert.equal(res.status, 404, JSON.stringify(body));
      assert.equal(body['error'], 'not_found');
      assert.match(String(body['error_description']), /console\.oidc\.issuer/);
      assert.equal((await h.auditEvents('console.refused')).at(-1)?.data['reason'], 'oidc_off');
    }
  });
});
