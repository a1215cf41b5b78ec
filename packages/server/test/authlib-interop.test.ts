import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { AUDIENCE, type Harness, startHarness, WORKLOAD } from './helpers/harness.js';

// Python's Authlib (the OAuth client many Python jobs use) against a running Writ, with its defaults:
// private_key_jwt assertions with `aud` the token endpoint and a lifetime of one hour. Writ allows at
// most 300 s, so the default is refused, and the description must say what to change; with the
// lifetime it names, Authlib gets a token. Authlib comes from Debian's python3-authlib (`.ci/run`
// installs it); without it the suite skips and says so.

const PYTHON = process.env['WRIT_TEST_PYTHON'] ?? '/usr/bin/python3';
const probe = spawnSync(PYTHON, ['-c', 'import authlib, requests; print(authlib.__version__)'], {
  encoding: 'utf8',
});
const AUTHLIB = probe.status === 0 ? probe.stdout.trim() : undefined;

const SCRIPT = `
import json, sys, time
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT

token_endpoint, client_id, key_file, resource, lifetime = sys.argv[1:6]
claims = None if lifetime == 'default' else {'exp': int(time.time()) + int(lifetime)}
with open(key_file) as f:
    key = f.read()
session = OAuth2Session(
    client_id, key,
    token_endpoint_auth_method=PrivateKeyJWT(token_endpoint, claims=claims, alg='ES256'),
)
try:
    token = session.fetch_token(token_endpoint, grant_type='client_credentials', resource=resource)
    print(json.dumps({'ok': True, 'token_type': token['token_type'], 'expires_in': token['expires_in']}))
except Exception as e:
    print(json.dumps({'ok': False, 'error': getattr(e, 'error', type(e).__name__),
                      'description': getattr(e, 'description', str(e))}))
`;

describe(`Authlib ${AUTHLIB ?? ''} (Python) with its default settings`, {
  skip: AUTHLIB ? false : `${PYTHON} cannot import authlib and requests (Debian: python3-authlib)`,
}, () => {
  let h: Harness;
  let dir: string;
  before(async () => {
    h = await startHarness({ listen: true });
    dir = mkdtempSync(join(tmpdir(), 'writ-authlib-'));
    writeFileSync(join(dir, 'client.py'), SCRIPT);
    writeFileSync(
      join(dir, 'key.pem'),
      h.workloadKey.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string,
      { mode: 0o600 },
    );
  });
  after(async () => {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  // Asynchronously: the server runs in this process and must answer while Python waits.
  const authlib = async (lifetime: string) => {
    const r = await promisify(execFile)(
      PYTHON,
      [
        join(dir, 'client.py'),
        `${h.issuer}/oauth2/token`,
        WORKLOAD,
        join(dir, 'key.pem'),
        AUDIENCE,
        lifetime,
      ],
      { encoding: 'utf8', timeout: 60_000 },
    );
    return JSON.parse(r.stdout) as { ok: boolean; error?: string; description?: string; token_type?: string };
  };

  it('its one-hour assertion is refused with a description naming the limit and the setting', async () => {
    const r = await authlib('default');
    assert.equal(r.ok, false);
    assert.equal(r.error, 'invalid_client');
    assert.match(
      String(r.description),
      // Authlib sets exp an hour after its iat; the server reads it up to seconds later on a busy machine.
      /exp is 3(600|5[0-9]{2})s ahead; assertions may live at most 300s \(client_assertion\.max_lifetime/,
    );
  });

  it('with the lifetime the description names (claims exp), it gets a token', async () => {
    const r = await authlib('300');
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.equal(r.token_type, 'Bearer');
  });
});
