import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resolveSettings, settingsFileDigest } from '../src/config/settings.js';
import { ConfigError } from '../src/errors.js';

// `console.oidc.*` (docs/console.md, "Signing in with OpenID Connect"): off by default; when on, a
// complete client, a provider Writ may fetch from, and the secret never in the settings digest.

const oidc = (values: Record<string, unknown>) =>
  resolveSettings({ name: 'settings.yaml', values: { console: { oidc: values } } }, {});
const base = {
  issuer: 'https://login.example.com',
  client_id: 'writ-console',
  client_secret: 's3cret-value',
};

describe('console.oidc settings', () => {
  it('are off without an issuer', () => {
    assert.equal(resolveSettings(undefined, {}).console.oidc, undefined);
  });

  it('take the defaults: the callback under the issuer, scopes openid and email', () => {
    const s = oidc(base).console.oidc;
    assert.equal(s?.redirectUri, 'http://127.0.0.1:8080/console/oidc/callback');
    assert.deepEqual(s?.scopes, ['openid', 'email']);
    assert.equal(s?.clientSecret, 's3cret-value');
  });

  it('refuse an incomplete or unsafe client, naming the setting', () => {
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ['no client id', { issuer: base.issuer, client_secret: 'x' }, /client_id: is needed/],
      ['no secret', { issuer: base.issuer, client_id: 'c' }, /exactly one of/],
      ['two secrets', { ...base, client_secret_file: '/run/secret' }, /exactly one of/],
      ['http to a name', { ...base, issuer: 'http://login.example.com' }, /issuer: must be an https URL/],
      ['credentials in the issuer', { ...base, issuer: 'https://u:p@login.example.com' }, /https URL/],
      ['no openid scope', { ...base, scopes: ['email'] }, /scopes: must include openid/],
      [
        'another redirect path',
        { ...base, redirect_uri: 'https://writ.example.com/elsewhere' },
        /redirect_uri/,
      ],
    ];
    for (const [what, values, error] of cases)
      assert.throws(
        () => oidc(values),
        (e) => e instanceof ConfigError && error.test(e.message),
        what,
      );
  });

  it('allow plain http to a loopback address (a test provider)', () => {
    assert.equal(
      oidc({ ...base, issuer: 'http://127.0.0.1:9000' }).console.oidc?.issuer,
      'http://127.0.0.1:9000',
    );
  });

  it('keep the client secret out of the settings digest', () => {
    const digest = (secret: string) =>
      settingsFileDigest({ console: { oidc: { ...base, client_secret: secret } } });
    assert.equal(digest('one-secret'), digest('another-secret'));
    assert.notEqual(digest('x'), settingsFileDigest({ console: { oidc: { ...base, client_id: 'other' } } }));
  });
});
