import { randomBytes, sign } from 'node:crypto';
import { accessTokenHash, type DpopKey, generateDpopKey } from '@writ/sdk/dpop';
import { importPublicJwk, type VerificationKey } from '@writ/sdk/jose';
import { CLIENT_ASSERTION_TYPE_JWT_BEARER, POLICY_BUNDLE_KEYS_PATH } from '@writ/sdk/wire';
import type { AuditEvent } from '../../src/audit/audit-event.js';
import { writeRefusalSummaries } from '../../src/audit/refusal.js';
import type { RawDocument } from '../../src/config/config-dir.js';
import { type Harness, type Reply, signJwt, type TestKey } from './harness.js';

/** Test helpers for DPoP-bound flows: config documents, hand-made proofs, and a client's nonce dance. */

let fileSeq = 0;

/** A config document for `startHarness({ extraDocs })`. */
export function rawDoc(kind: RawDocument['kind'], doc: Record<string, unknown>): RawDocument {
  return { kind, file: `extra-${kind}-${++fileSeq}.yaml`, index: 0, doc };
}

/** A token class; without `binding` it gets the schema default (dpop). */
export function classDoc(doc: Record<string, unknown>): RawDocument {
  return rawDoc('class', { max_ttl: '10m', default_ttl: '5m', ...doc });
}

/** A workload with one key; `serves` names the APIs it verifies tokens for (a resource server's verifier). */
export function workloadDoc(
  id: string,
  key: TestKey,
  classes: string[],
  o: { serves?: string[] } = {},
): RawDocument {
  return rawDoc('workload', {
    id,
    owner: 'team-test',
    environment: 'prod',
    classes,
    jwks: { keys: [key.publicJwk] },
    ...(o.serves ? { serves: o.serves } : {}),
  });
}

/** Client-authentication form fields (private_key_jwt) for any workload of the harness. */
export function clientAuth(h: Harness, clientId: string, key: TestKey): Record<string, string> {
  return {
    client_id: clientId,
    client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
    client_assertion: h.assertion({ clientId, key }),
  };
}

export const b64json = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');

export const nowSeconds = (h: Harness): number => Math.floor(h.writ.ctx.clock.now() / 1000);

/** The header and claims of a well-formed proof, for tests to break one part at a time. */
export interface ProofParts {
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
}

export function proofParts(
  key: DpopKey,
  p: { method?: string; htu: string; iat: number; nonce?: string; accessToken?: string },
): ProofParts {
  return {
    header: { typ: 'dpop+jwt', alg: key.alg, jwk: key.publicJwk },
    claims: {
      jti: randomBytes(12).toString('base64url'),
      htm: p.method ?? 'POST',
      htu: p.htu,
      iat: p.iat,
      ...(p.nonce !== undefined ? { nonce: p.nonce } : {}),
      ...(p.accessToken !== undefined ? { ath: accessTokenHash(p.accessToken) } : {}),
    },
  };
}

/** Signs header and claims with `key` as they are (the header may lie about anything). */
export function signProof(key: DpopKey, parts: ProofParts): string {
  const input = `${b64json(parts.header)}.${b64json(parts.claims)}`;
  const sig =
    key.alg === 'ES256'
      ? sign('sha256', Buffer.from(input), { key: key.privateKey, dsaEncoding: 'ieee-p1363' })
      : sign(null, Buffer.from(input), key.privateKey);
  return `${input}.${sig.toString('base64url')}`;
}

/** POSTs a form in-process; a header given as an array is sent as that many header lines. */
export async function injectForm(
  h: Harness,
  path: string,
  form: Record<string, string>,
  headers: Record<string, string | string[]> = {},
): Promise<Reply> {
  const res = await h.writ.app.inject({
    method: 'POST',
    url: path,
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    payload: new URLSearchParams(form).toString(),
  });
  return {
    status: res.statusCode,
    body: res.body ? (JSON.parse(res.body) as Record<string, unknown>) : {},
    headers: res.headers,
  };
}

/**
 * What a DPoP client does at the token endpoint: send a proof, and when the server answers
 * `use_dpop_nonce`, retry once with the nonce it sent. `form` is called per attempt (fresh assertion).
 */
export async function dpopTokenRequest(
  h: Harness,
  form: () => Record<string, string>,
  key: DpopKey,
): Promise<Reply & { nonceRounds: number }> {
  let nonce: string | undefined;
  for (let attempt = 0; attempt < 2; attempt++) {
    const proof = signProof(
      key,
      proofParts(key, {
        htu: `${h.issuer}/oauth2/token`,
        iat: nowSeconds(h),
        ...(nonce ? { nonce } : {}),
      }),
    );
    const r = await injectForm(h, '/oauth2/token', form(), { dpop: proof });
    const fresh = r.headers['dpop-nonce'];
    if (r.body['error'] === 'use_dpop_nonce' && attempt === 0 && typeof fresh === 'string') {
      nonce = fresh;
      continue;
    }
    return { ...r, nonceRounds: attempt };
  }
  throw new Error('unreachable');
}

/** A nonce the server currently accepts, obtained the way a client does (a refused first proof). */
export async function serverNonce(
  h: Harness,
  clientId: string,
  key: TestKey,
  resource: string,
): Promise<string> {
  const dpopKey = generateDpopKey();
  const proof = signProof(
    dpopKey,
    proofParts(dpopKey, { htu: `${h.issuer}/oauth2/token`, iat: nowSeconds(h) }),
  );
  const r = await injectForm(
    h,
    '/oauth2/token',
    { grant_type: 'client_credentials', ...clientAuth(h, clientId, key), resource },
    { dpop: proof },
  );
  const nonce = r.headers['dpop-nonce'];
  if (r.body['error'] !== 'use_dpop_nonce' || typeof nonce !== 'string')
    throw new Error(`expected use_dpop_nonce, got ${JSON.stringify(r.body)}`);
  return nonce;
}

/** The claims of a compact JWT, unverified (the tests verify elsewhere). */
export function decodeClaims(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as Record<
    string,
    unknown
  >;
}

/** RFC 7662 introspection as an operator. */
export async function introspect(h: Harness, token: string): Promise<Record<string, unknown>> {
  const r = await h.post('/oauth2/introspect', { token }, await h.adminHeaders('POST', '/oauth2/introspect'));
  if (r.status !== 200) throw new Error(`introspection: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/** The server's signing keys, as a resource server imports them from the published JWKS. */
export async function serverKeys(h: Harness): Promise<VerificationKey[]> {
  const res = await h.writ.app.inject({ method: 'GET', url: '/.well-known/jwks.json' });
  const jwks = JSON.parse(res.body) as { keys: unknown[] };
  return jwks.keys.map((k) => importPublicJwk(k));
}

/** The server's policy-bundle keys, as a verifier imports them from their own JWKS. */
export async function policyBundleKeys(h: Harness): Promise<VerificationKey[]> {
  const res = await h.writ.app.inject({ method: 'GET', url: POLICY_BUNDLE_KEYS_PATH });
  const jwks = JSON.parse(res.body) as { keys: unknown[] };
  return jwks.keys.map((k) => importPublicJwk(k));
}

/** A token signed like Writ's (same kid, typ and claims) but with a key Writ never had. */
export function forgedToken(claims: Record<string, unknown>, kid: string, key: TestKey): string {
  return signJwt(key, claims, { typ: 'at+jwt', kid });
}

/** Counts audit events of one type (the log is the proof that nothing was issued). */
export async function count(h: Harness, type: string): Promise<number> {
  return (await h.auditEvents(type)).length;
}

/**
 * The newest audit event of a type. Refusal summaries are written first: a refusal that repeats a kind
 * already audited in this window is in its summary row (`count`), written when the window ends.
 */
export async function lastEvent(h: Harness, type: string): Promise<AuditEvent> {
  await writeRefusalSummaries(h.writ.ctx, true);
  const events = await h.auditEvents(type);
  const last = events.reduce<AuditEvent | undefined>(
    (a, e) => (a === undefined || e.seq > a.seq ? e : a),
    undefined,
  );
  if (!last) throw new Error(`no ${type} event`);
  return last;
}

/** POST a form over real HTTP (for listening servers). */
export async function httpForm(
  url: string,
  form: Record<string, string>,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form).toString(),
  });
  const text = await res.text();
  return {
    status: res.status,
    body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
    headers: res.headers,
  };
}

/** client_credentials over real HTTP for a workload of a bearer class; the access token. */
export async function tokenOverHttp(
  h: Harness,
  clientId: string,
  key: TestKey,
  resource: string,
  scope?: string,
): Promise<string> {
  const r = await httpForm(`${h.issuer}/oauth2/token`, {
    grant_type: 'client_credentials',
    ...clientAuth(h, clientId, key),
    resource,
    ...(scope ? { scope } : {}),
  });
  if (r.status !== 200) throw new Error(`token: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body['access_token'] as string;
}
