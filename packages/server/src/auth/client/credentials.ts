import { ClientAuthMethod, type ClientAuthMethodValue } from '@writ/sdk/wire';
import {
  invalidClient,
  invalidRequest,
  OAuthError,
  type RefusalDetail,
  unauthorizedClient,
} from '../../errors.js';
import type { Registry, ResolvedWorkload } from '../../registry/registry.js';
import type { FormParams } from '../../request/form.js';
import { single } from '../../request/form.js';
import { parseBasicAuthorization, secretMatches } from './client-secret.js';
import { type AssertionRules, peekAssertionIssuer, verifyClientAssertion } from './private-key-jwt.js';
import { authenticateCertificate, type CertificateAuthInput } from './tls-client-auth.js';

export interface ClientCredentials {
  workload: ResolvedWorkload;
  method: ClientAuthMethodValue;
  /** For `private_key_jwt`: the assertion `jti` to consume, and until when. */
  replay?: { jti: string; until: number };
  /** A legacy secret was used under this class's exception. */
  legacyClasses?: string[];
  /** mTLS (RFC 8705): the `x5t#S256` of the certificate the client authenticated with. */
  certificate?: { thumbprint: string; source: 'tls' | 'forwarded' };
}

/**
 * Authenticates the client of a token, introspection or revocation request (RFC 6749 §2.3), using
 * exactly one method. Client secrets are accepted only for workloads in a class that registers the
 * exception, and only while the exception has not expired. A client certificate (RFC 8705) is the
 * method only when no other credential is sent: then `client_id` names the workload it must match.
 */
export function verifyClientCredentials(
  params: FormParams,
  authorization: string | undefined,
  registry: Registry,
  rules: AssertionRules,
  certificate?: CertificateAuthInput,
): ClientCredentials {
  const assertion = single(params, 'client_assertion', rules.maxBytes);
  const postSecret = single(params, 'client_secret', 512);
  const basic = authorization?.toLowerCase().startsWith('basic ') ? authorization : undefined;
  const methods = [assertion, postSecret, basic].filter((m) => m !== undefined).length;
  if (methods > 1)
    throw invalidRequest('use exactly one client authentication method', { reason: 'multiple_client_auth' });
  const paramClientId = single(params, 'client_id', 2048);

  if (assertion !== undefined) {
    const clientId = paramClientId ?? peekAssertionIssuer(assertion);
    const workload = clientId === undefined ? undefined : registry.workload(clientId);
    if (!workload)
      throw invalidClient('client authentication failed', { reason: 'unknown_client', client_id: clientId });
    const a = verifyClientAssertion(
      assertion,
      single(params, 'client_assertion_type', 256),
      workload.id,
      workload.verificationKeys,
      rules,
    );
    ensureActive(workload);
    return { workload, method: ClientAuthMethod.privateKeyJwt, replay: { jti: a.jti, until: a.replayUntil } };
  }

  if (postSecret !== undefined || basic !== undefined) {
    let clientId: string | undefined;
    let secret: string;
    let method: ClientAuthMethodValue;
    if (basic !== undefined) {
      const parsed = parseBasicAuthorization(basic);
      if (!parsed) throw invalidClient('malformed Basic authorization', { reason: 'malformed_basic' });
      if (paramClientId !== undefined && paramClientId !== parsed.clientId)
        throw invalidRequest('client_id does not match', { reason: 'client_id_mismatch' });
      ({ clientId, secret } = parsed);
      method = ClientAuthMethod.clientSecretBasic;
    } else {
      clientId = paramClientId;
      secret = postSecret!;
      method = ClientAuthMethod.clientSecretPost;
    }
    const workload = clientId === undefined ? undefined : registry.workload(clientId);
    // Compare even for unknown clients so the timing does not reveal which client ids exist.
    const matches = secretMatches(secret, workload?.secretSha256 ?? '0'.repeat(64));
    if (!workload?.secretSha256 || !matches) {
      throw invalidClientWithChallenge(
        'client authentication failed',
        { reason: workload ? 'bad_secret' : 'unknown_client', client_id: clientId },
        basic !== undefined,
      );
    }
    const legacyClasses = workload.classes.filter((c) => {
      const exception = registry.tokenClass(c)?.legacyClientSecret;
      return exception !== undefined && Date.parse(`${exception.expires}T23:59:59Z`) >= rules.nowMs;
    });
    if (legacyClasses.length === 0) {
      throw unauthorizedClient(
        'client secrets are not allowed for this client (no unexpired legacy exception)',
        {
          reason: 'legacy_exception_missing_or_expired',
        },
      );
    }
    ensureActive(workload);
    return { workload, method, legacyClasses };
  }

  if (certificate?.presented) {
    const workload = paramClientId === undefined ? undefined : registry.workload(paramClientId);
    if (!workload)
      throw invalidClient('client authentication failed', {
        reason: paramClientId === undefined ? 'mtls_client_id_required' : 'unknown_client',
        client_id: paramClientId,
      });
    const c = authenticateCertificate(workload, certificate.presented, certificate.trust, rules.nowMs);
    ensureActive(workload);
    return { workload, method: c.method, certificate: { thumbprint: c.thumbprint, source: c.source } };
  }

  // A forwarded certificate from an address that is not a trusted proxy is no credential at all.
  if (certificate?.ignoredForwarded) {
    throw invalidClient('client authentication is required', {
      reason: certificate.ignoredForwarded,
      client_id: paramClientId,
    });
  }

  throw invalidClient('client authentication is required', {
    reason: 'no_client_auth',
    client_id: paramClientId,
  });
}

function ensureActive(w: ResolvedWorkload): void {
  if (w.state !== 'active')
    throw unauthorizedClient(`workload is ${w.state}`, { reason: `workload_${w.state}` });
}

/** invalid_client after Basic authentication carries the challenge (RFC 6749 §5.2). */
function invalidClientWithChallenge(description: string, detail: RefusalDetail, basic: boolean): OAuthError {
  return basic
    ? new OAuthError('invalid_client', description, {
        detail,
        headers: { 'www-authenticate': 'Basic realm="writ"' },
      })
    : invalidClient(description, detail);
}
