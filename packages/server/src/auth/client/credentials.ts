import { ClientAuthMethod, type ClientAuthMethodValue } from '@writ/sdk/wire';
import {
  invalidClient,
  invalidRequest,
  OAuthError,
  type RefusalDetail,
  unauthorizedClient,
} from '../../errors.js';
import {
  coversLegacySecret,
  type ExceptionRecord,
  exceptionEnding,
  exceptionHolds,
} from '../../governance/exception.js';
import type { Registry, ResolvedWorkload } from '../../registry/registry.js';
import type { ForwardedCertificateRefusal } from '../../request/client-certificate.js';
import type { FormParams } from '../../request/form.js';
import { single } from '../../request/form.js';
import { parseBasicAuthorization, secretMatches } from './client-secret.js';
import {
  type AssertionRules,
  peekAssertionIssuer,
  unverifiedAssertion,
  verifyClientAssertion,
} from './private-key-jwt.js';
import { authenticateCertificate, type CertificateAuthInput } from './tls-client-auth.js';

export interface ClientCredentials {
  workload: ResolvedWorkload;
  method: ClientAuthMethodValue;
  /** For `private_key_jwt`: the assertion `jti` to consume, and until when. */
  replay?: { jti: string; until: number };
  /** For `private_key_jwt`: the RFC 7638 thumbprint of the registered key that signed the assertion. */
  key?: string;
  /** A legacy secret was used: the classes it may get tokens of, each with the exception that lets it. */
  legacyClasses?: string[];
  legacyExceptions?: Map<string, string>;
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
  const sent = [
    assertion !== undefined ? 'client_assertion' : undefined,
    postSecret !== undefined ? 'client_secret' : undefined,
    basic !== undefined ? 'Authorization: Basic' : undefined,
  ].filter((m) => m !== undefined);
  if (sent.length > 1)
    throw invalidRequest(
      `use exactly one client authentication method; the request has ${sent.join(' and ')}`,
      {
        reason: 'multiple_client_auth',
      },
    );
  const paramClientId = single(params, 'client_id', 2048);

  if (assertion !== undefined) {
    const clientId = paramClientId ?? peekAssertionIssuer(assertion);
    const workload = clientId === undefined ? undefined : registry.workload(clientId);
    const a = verifyClientAssertion(
      assertion,
      single(params, 'client_assertion_type', 256),
      clientId,
      workload?.verificationKeys,
      rules,
    );
    // verifyClientAssertion refuses an assertion of a client that does not exist; this only narrows.
    if (!workload) throw unverifiedAssertion('unknown_client');
    ensureActive(workload);
    return {
      workload,
      method: ClientAuthMethod.privateKeyJwt,
      replay: { jti: a.jti, until: a.replayUntil },
      key: a.keyThumbprint,
    };
  }

  if (postSecret !== undefined || basic !== undefined) {
    let clientId: string | undefined;
    let secret: string;
    let method: ClientAuthMethodValue;
    if (basic !== undefined) {
      const parsed = parseBasicAuthorization(basic);
      if (!parsed)
        throw invalidClient(
          'Authorization: Basic must be base64 of the form-urlencoded client_id, a colon and the secret (RFC 6749 §2.3.1)',
          { reason: 'malformed_basic' },
        );
      if (paramClientId !== undefined && paramClientId !== parsed.clientId)
        throw invalidRequest('the client_id parameter is not the client_id of Authorization: Basic', {
          reason: 'client_id_mismatch',
        });
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
      // One answer whether the client is unknown, has no secret or sent the wrong one.
      throw invalidClientWithChallenge(
        clientId === undefined
          ? 'client authentication failed: a client secret needs the client_id'
          : 'client authentication failed: the client_id and secret do not match a client registered with a secret',
        { reason: workload ? 'bad_secret' : 'unknown_client', client_id: clientId },
        basic !== undefined,
      );
    }
    const covering = registry
      .exceptions()
      .filter((e) => workload.classes.some((c) => coversLegacySecret(e, c, workload.id)));
    const legacyExceptions = new Map<string, string>();
    for (const c of workload.classes) {
      const e = covering.find((x) => coversLegacySecret(x, c, workload.id) && exceptionHolds(x, rules.nowMs));
      if (e) legacyExceptions.set(c, e.id);
    }
    if (legacyExceptions.size === 0) throw legacySecretRefused(covering);
    ensureActive(workload);
    return { workload, method, legacyClasses: [...legacyExceptions.keys()], legacyExceptions };
  }

  if (certificate?.presented) {
    if (paramClientId === undefined)
      throw invalidClient(
        'client certificate authentication needs the client_id parameter (RFC 8705 §2): the workload the certificate is for',
        { reason: 'mtls_client_id_required' },
      );
    const workload = registry.workload(paramClientId);
    const c = authenticateCertificate(workload, certificate.presented, certificate.trust, rules.nowMs);
    // authenticateCertificate refuses a client that does not exist; this only narrows.
    if (!workload) throw invalidClient('client authentication failed', { reason: 'unknown_client' });
    ensureActive(workload);
    return { workload, method: c.method, certificate: { thumbprint: c.thumbprint, source: c.source } };
  }

  // A forwarded certificate from an address that is not a trusted proxy is no credential at all.
  if (certificate?.ignoredForwarded) {
    throw invalidClient(`client authentication is required: ${FORWARDED[certificate.ignoredForwarded]}`, {
      reason: certificate.ignoredForwarded,
      client_id: paramClientId,
    });
  }

  throw invalidClient(
    'client authentication is required: send a client_assertion (private_key_jwt, RFC 7523) with client_assertion_type, or a client certificate (RFC 8705) with client_id',
    { reason: 'no_client_auth', client_id: paramClientId },
  );
}

/**
 * The right secret, but no exception lets it through: none covers it, or every one that does has ended.
 * The client proved it holds the secret, so the answer names the exception, its owner and its end.
 */
function legacySecretRefused(covering: readonly ExceptionRecord[]): OAuthError {
  const e = covering[0];
  if (!e)
    return unauthorizedClient(
      'client secrets are not allowed for this client: no exception in exceptions/ covers a legacy client secret for its classes (docs/governance.md)',
      { reason: 'legacy_exception_missing' },
    );
  const which = `exception "${e.id}" (legacy client secret for class ${e.covers.kind === 'legacy_client_secret' ? e.covers.class : '?'}, owner ${e.owner})`;
  const ended = exceptionEnding(e);
  return unauthorizedClient(
    ended.retired
      ? `client secret refused: ${which} was retired at ${ended.at}; move the workload to private_key_jwt or declare a new exception`
      : `client secret refused: ${which} expired at ${ended.at}; an operator renews it (writ exceptions renew ${e.id} --until DATE) or the workload moves to private_key_jwt`,
    ended.detail,
  );
}

/** Why a forwarded certificate was not taken as one, for the description. */
const FORWARDED: Record<ForwardedCertificateRefusal, string> = {
  forwarded_certificate_repeated: 'the forwarded client certificate header was sent more than once',
  forwarded_certificate_malformed: 'the forwarded client certificate header cannot be parsed',
  forwarded_certificate_untrusted_source:
    'a forwarded client certificate header came from an address tls.trusted_proxies does not list, so it was ignored',
};

function ensureActive(w: ResolvedWorkload): void {
  if (w.state !== 'active')
    throw unauthorizedClient(
      `the workload is ${w.state}: it gets nothing until an operator runs writ workloads enable`,
      { reason: `workload_${w.state}` },
    );
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
