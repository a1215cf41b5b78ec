import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Clock } from '../../src/clock.js';
import type { RawDocument } from '../../src/config/config-dir.js';
import { type Harness, startHarness, testKey } from './harness.js';

/** The client id the console's OpenID Connect tests register at their identity provider. */
export const OIDC_CLIENT_ID = 'writ-console';

/** A person of `people/`, active unless said otherwise. */
export const personDoc = (id: string, o: { email?: string; active?: boolean } = {}): RawDocument => ({
  kind: 'people',
  file: `people/${id}.yaml`,
  index: 0,
  doc: { id, name: id.toUpperCase(), active: o.active ?? true, ...(o.email ? { email: o.email } : {}) },
});

/** An operator that belongs to a person (its key is the test key). */
export const operatorDoc = (name: string, personId: string): RawDocument => ({
  kind: 'operator',
  file: `operators/${name}.yaml`,
  index: 0,
  doc: { name, person: personId, jwks: { keys: [testKey().publicJwk] } },
});

/**
 * A listening Writ whose console signs in with the OpenID Connect provider at `http://127.0.0.1:<idpPort>`
 * as the confidential client `OIDC_CLIENT_ID`: the client secret is made here and written to the file
 * `console.oidc.client_secret_file` names; the provider is started by the caller with `clientSecret`.
 */
export async function startOidcHarness(o: {
  idpPort: number;
  docs: RawDocument[];
  clock?: Clock;
  settings?: Record<string, unknown>;
}): Promise<{ h: Harness; clientSecret: string }> {
  const secretFile = join(mkdtempSync(join(tmpdir(), 'writ-oidc-')), 'client-secret');
  const clientSecret = randomBytes(24).toString('base64url');
  writeFileSync(secretFile, `${clientSecret}\n`);
  const h = await startHarness({
    listen: true,
    ...(o.clock ? { clock: o.clock } : {}),
    settings: {
      'console.oidc.issuer': `http://127.0.0.1:${o.idpPort}`,
      'console.oidc.client_id': OIDC_CLIENT_ID,
      'console.oidc.client_secret_file': secretFile,
      ...o.settings,
    },
    extraDocs: o.docs,
  });
  return { h, clientSecret };
}
