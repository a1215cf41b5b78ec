import type { ClientAuthMethodValue } from '@writ/sdk/wire';
import type { RequestInfo, WritContext } from '../context.js';
import { invalidClient } from '../errors.js';
import type { FederatedIdentity } from '../federation/attest.js';
import { type FormParams, single } from '../request/form.js';
import type { Store } from '../store/store.js';
import {
  admitCertificateByTemplate,
  ensureCertificateStillAdmitted,
} from '../templates/admit-certificate.js';
import { authenticateAdmin } from './admin.js';
import { admitCaller, admitSource } from './budget.js';
import { assertionRules } from './client/assertion-rules.js';
import { type ClientCredentials, verifyClientCredentials } from './client/credentials.js';
import { authenticateFederatedClient } from './client/federation.js';
import { certificateInput } from './client/tls-client-auth.js';

/** A workload that authenticated as an OAuth client (RFC 6749 §2.3). */
export interface AuthenticatedClient extends Omit<ClientCredentials, 'method'> {
  method: ClientAuthMethodValue | `federation:${string}`;
  /** Set when the workload authenticated with a platform token from a trusted issuer. */
  federation?: FederatedIdentity;
}

export interface ClientAuthOptions {
  /** The endpoint's path: a client assertion's `aud` is the issuer, the token endpoint or this endpoint's URL. */
  endpoint: string;
  /** Accept a platform token from a trusted issuer as the `client_assertion` (the task endpoints). */
  federation?: boolean;
  /**
   * When the assertion's `jti` is spent: `now`, before the endpoint does anything; or `with_issuance`,
   * by the token endpoint, in the transaction that records the token (`consumeAssertion`), so the
   * replay check costs no round trip of its own.
   */
  consume: 'now' | 'with_issuance';
  /** `false` only for closing a task: the call takes nothing from the client's budget. */
  budget?: false;
}

/**
 * Authenticates the client of any Writ endpoint that takes client authentication (token,
 * introspection, revocation, tasks) with exactly one method: `private_key_jwt` (RFC 7523), mTLS
 * (RFC 8705), a platform token where `federation` allows it, or a legacy secret under an unexpired
 * class exception. Throws `invalid_client` / `unauthorized_client`; the caller audits the refusal.
 * A source address over its budget of refusals is refused first when it sends a legacy secret (`admitSource`); an authenticated
 * client takes one request from its budget (`admitCaller`).
 */
export async function authenticateClient(
  ctx: WritContext,
  params: FormParams,
  req: RequestInfo,
  o: ClientAuthOptions,
): Promise<AuthenticatedClient> {
  // Only a guessable credential waits for the address's budget: a signature, a certificate or a
  // platform token cannot be guessed, and refusing them would let garbage from a shared address (a NAT,
  // a proxy, the same host) lock out every well-behaved client behind it.
  if (params.has('client_secret') || /^basic /i.test(req.authorization ?? '')) admitSource(ctx, req);
  if (o.federation) {
    const federation = await authenticateFederatedClient(ctx, params, req.authorization);
    if (federation) {
      await admitCaller(ctx, req, federation.workload.id, o);
      return { workload: federation.workload, method: `federation:${federation.issuer}`, federation };
    }
  }
  const certificate = certificateInput(ctx, req);
  // An X.509-SVID no workload file registers may be admitted by an mTLS template on first use.
  if (
    certificate?.presented &&
    !params.has('client_assertion') &&
    !params.has('client_secret') &&
    !/^basic /i.test(req.authorization ?? '')
  ) {
    const id = single(params, 'client_id', 2048);
    if (id !== undefined && !ctx.registry.workload(id))
      await admitCertificateByTemplate(ctx, id, certificate.presented, certificate.trust);
  }
  const client = verifyClientCredentials(
    params,
    req.authorization,
    ctx.registry,
    assertionRules(ctx, o.endpoint),
    certificate,
  );
  if (client.certificate && certificate?.presented)
    ensureCertificateStillAdmitted(ctx, client.workload, certificate.presented);
  if (client.replay && o.consume === 'now')
    await consumeAssertion(ctx.store, client.workload.id, client.replay, ctx.clock.now());
  await admitCaller(ctx, req, client.workload.id, o);
  return client;
}

/** Spends a client assertion's `jti` (RFC 7523 §3 item 7): a second use is `invalid_client`. */
export async function consumeAssertion(
  store: Pick<Store, 'consume'>,
  clientId: string,
  replay: { jti: string; until: number },
  nowMs: number,
): Promise<void> {
  if (!(await store.consume(`assertion:${clientId}`, replay.jti, replay.until, nowMs)))
    throw assertionReplayed();
}

/** The refusal of a client assertion whose `jti` was spent already. */
export function assertionReplayed(): Error {
  return invalidClient(
    'client assertion has already been used (its jti): sign a new one, with a fresh jti, for every request',
    { reason: 'replay' },
  );
}

/**
 * The caller of introspection or revocation: an operator with an admin token (`Authorization: DPoP`
 * and a proof; an admin token sent as `Bearer` is refused there), or else a workload authenticating as a
 * client. Returns the caller's id (`operator:<name>` or the
 * workload's SPIFFE ID).
 */
export async function authenticateClientOrOperator(
  ctx: WritContext,
  params: FormParams,
  req: RequestInfo,
  endpoint: string,
): Promise<string> {
  if (/^(?:Bearer|DPoP) /i.test(req.authorization ?? '')) return (await authenticateAdmin(ctx, req)).operator;
  return (await authenticateClient(ctx, params, req, { endpoint, consume: 'now' })).workload.id;
}
