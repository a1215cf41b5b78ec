import { randomBytes } from 'node:crypto';
import { createDpopProof, type DpopKey, dpopKeyFrom } from '@writ/sdk/dpop';
import { GrantType } from '@writ/sdk/wire';
import { signJwt, type TestKey } from './harness.js';

/** Admin sessions as the CLI opens and uses them, for tests that call the admin API in-process or over HTTP. */

/** The operator key as the DPoP key of its admin sessions (what `writ` does with its key file). */
export const operatorDpopKey = (key: TestKey): DpopKey => dpopKeyFrom(key.privateKey, key.publicJwk, key.alg);

/** A bound admin token and the headers of one call with it. */
export interface AdminSession {
  token: string;
  /** `Authorization: DPoP` and a fresh proof for one call; `path` from the issuer root (a query is ignored). */
  headers(method: string, path: string): { authorization: string; dpop: string };
}

/** What sending a form answered: status, body and the `DPoP-Nonce` header. */
export interface FormAnswer {
  status: number;
  body: Record<string, unknown>;
  nonce: string | undefined;
}

/** The form and proof of one `POST /admin/v1/token` by `key` (the operator's key unless a test says otherwise). */
export function adminTokenRequest(o: {
  issuer: string;
  key: TestKey;
  nowSeconds: number;
  operator?: string;
  /** The key of the proof, when a test wants it to differ from the assertion's. */
  dpopKey?: DpopKey;
  nonce?: string | undefined;
}): { form: Record<string, string>; dpop: string } {
  const operator = o.operator ?? 'ops';
  const assertion = signJwt(o.key, {
    iss: operator,
    sub: operator,
    aud: o.issuer,
    iat: o.nowSeconds,
    exp: o.nowSeconds + 60,
    jti: randomBytes(12).toString('base64url'),
  });
  const dpop = createDpopProof(o.dpopKey ?? operatorDpopKey(o.key), {
    method: 'POST',
    url: `${o.issuer}/admin/v1/token`,
    nowSeconds: o.nowSeconds,
    ...(o.nonce !== undefined ? { nonce: o.nonce } : {}),
  });
  return { form: { grant_type: GrantType.jwtBearer, assertion }, dpop };
}

/**
 * Opens an admin session as `writ` does: an assertion and a DPoP proof, both by the operator key, at
 * `POST /admin/v1/token`, retried once with the server's nonce. `post` sends the form (in-process or over
 * HTTP); `nonce` keeps the last nonce between sessions, as the CLI does between calls. A refusal throws
 * an error whose `answer` is what the server said.
 */
export async function openAdminSession(o: {
  issuer: string;
  key: TestKey;
  /** The operator's name (`ops`, the harness's operator, by default). */
  operator?: string;
  nowSeconds: () => number;
  post: (form: Record<string, string>, headers: Record<string, string>) => Promise<FormAnswer>;
  nonce?: { value?: string | undefined };
}): Promise<AdminSession> {
  const kept = o.nonce ?? {};
  for (let attempt = 0; ; attempt++) {
    const { form, dpop } = adminTokenRequest({
      issuer: o.issuer,
      key: o.key,
      nowSeconds: o.nowSeconds(),
      nonce: kept.value,
      ...(o.operator !== undefined ? { operator: o.operator } : {}),
    });
    const r = await o.post(form, { dpop });
    if (r.nonce !== undefined) kept.value = r.nonce;
    if (r.body['error'] === 'use_dpop_nonce' && attempt === 0 && r.nonce !== undefined) continue;
    if (r.status !== 200)
      throw Object.assign(new Error(`admin token: ${r.status} ${JSON.stringify(r.body)}`), { answer: r });
    return adminSession(r.body['access_token'] as string, o.key, o.issuer, o.nowSeconds);
  }
}

/** The headers of calls with `token`, proofs signed by `key` (the operator's, or an attacker's). */
export function adminSession(
  token: string,
  key: TestKey | DpopKey,
  issuer: string,
  nowSeconds: () => number,
): AdminSession {
  const dpopKey = 'jkt' in key ? key : operatorDpopKey(key);
  return {
    token,
    headers: (method, path) => ({
      authorization: `DPoP ${token}`,
      dpop: createDpopProof(dpopKey, {
        method,
        url: `${issuer}${path}`,
        accessToken: token,
        nowSeconds: nowSeconds(),
      }),
    }),
  };
}

/** An admin session opened over HTTP at `origin` (the issuer, unless one node is addressed directly). */
export function httpAdminSession(
  issuer: string,
  key: TestKey,
  o: { origin?: string; operator?: string; nonce?: { value?: string | undefined } } = {},
): Promise<AdminSession> {
  return openAdminSession({
    issuer,
    key,
    ...(o.operator !== undefined ? { operator: o.operator } : {}),
    nowSeconds: () => Math.floor(Date.now() / 1000),
    ...(o.nonce ? { nonce: o.nonce } : {}),
    post: async (form, headers) => {
      const res = await fetch(`${o.origin ?? issuer}/admin/v1/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
        body: new URLSearchParams(form).toString(),
      });
      const text = await res.text();
      return {
        status: res.status,
        body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
        nonce: res.headers.get('dpop-nonce') ?? undefined,
      };
    },
  });
}
