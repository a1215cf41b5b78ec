import { authenticateCertificate } from '../auth/client/tls-client-auth.js';
import type { WritContext } from '../context.js';
import { invalidClient } from '../errors.js';
import type { PresentedCertificate } from '../mtls/certificate.js';
import type { ClientCertificateTrust } from '../mtls/trust.js';
import { certificateFacts } from '../mtls/x509-extensions.js';
import type { ResolvedWorkload } from '../registry/registry.js';
import { admitWorkload, templateStillAdmits } from './admit.js';
import { deriveWorkload } from './template-rules.js';

const trustDomain = (spiffeId: string): string => spiffeId.slice('spiffe://'.length).split('/')[0] ?? '';

/**
 * What an X.509-SVID says, as the `claims` an mTLS template's rules read: the SPIFFE ID and its parts,
 * the subject and the validity (seconds). Only what Writ verified: the certificate chained to the bundle
 * and its one URI SAN is the id.
 */
export function certificateClaims(id: string, leaf: PresentedCertificate['leaf']): Record<string, unknown> {
  const path = id.slice(`spiffe://${trustDomain(id)}`.length);
  let subject = '';
  try {
    subject = certificateFacts(leaf.raw)
      .subject.map((r) => r.join('+'))
      .reverse()
      .join(',');
  } catch {
    // authenticateCertificate refused an unreadable certificate before this runs.
  }
  return {
    spiffe_id: id,
    trust_domain: trustDomain(id),
    path,
    segments: path.split('/').filter((x) => x !== ''),
    subject: subject.slice(0, 1024),
    serial: leaf.serialNumber.slice(0, 128),
    not_before: Math.floor(Date.parse(leaf.validFrom) / 1000),
    not_after: Math.floor(Date.parse(leaf.validTo) / 1000),
  };
}

/**
 * First use of an X.509-SVID no workload file registers (`tls_client_auth` with `client_id` and no
 * other credential): when an mTLS template (`bundle`) covers the `client_id`, the certificate is
 * authenticated as an SVID of that id chaining to the template's bundle (every check a registered
 * `x509_svid` workload passes), then the template's condition and derivations decide, and the workload
 * is admitted like a federated one. Does nothing when no mTLS template has the id's trust domain (the
 * usual `unknown_client` follows). Refusals are `invalid_client`: a certificate that is not such an SVID
 * as for a registered workload; then, said precisely because the caller proved the id,
 * `unknown_workload` (no template covers it), `condition_false`, `template_derivation`.
 */
export async function admitCertificateByTemplate(
  ctx: WritContext,
  clientId: string,
  presented: PresentedCertificate,
  trust: ClientCertificateTrust,
): Promise<ResolvedWorkload | undefined> {
  if (!clientId.startsWith('spiffe://')) return undefined;
  const td = trustDomain(clientId);
  const templates = ctx.registry.templates();
  const covering = templates.covering(clientId);
  const t = covering?.spec.bundle !== undefined ? covering : undefined;
  if (!t && !templates.list().some((x) => x.spec.bundle === td)) return undefined;
  // The same checks as for a registered `tls_client_auth: {x509_svid: true}` workload of this id.
  const auth = authenticateCertificate(
    {
      id: clientId,
      owner: '',
      environment: '',
      attributes: {},
      classes: [],
      jwks: [],
      tlsClientAuth: { rule: 'x509_svid', value: clientId },
      state: 'active',
      updatedAt: 0,
    },
    presented,
    trust,
    ctx.clock.now(),
  );
  const evidence = {
    bundle: td,
    spiffe_id: clientId,
    certificate: auth.thumbprint,
    certificate_source: auth.source,
  };
  if (!t)
    throw invalidClient(
      `the client certificate is an X.509-SVID for ${clientId}, which is no registered workload, and no workload template of bundle ${td} covers it`,
      { reason: 'unknown_workload', workload: clientId, ...evidence },
    );
  const claims = certificateClaims(clientId, presented.leaf);
  const derived = deriveWorkload(t, clientId, claims);
  if ('refusal' in derived)
    throw invalidClient(derived.refusal.message, {
      reason: derived.refusal.reason,
      template: t.spec.id,
      field: derived.refusal.field,
      workload: clientId,
      ...evidence,
    });
  return admitWorkload(
    ctx,
    derived.workload,
    { id: t.spec.id, bundle: td, subject: clientId, claims, fingerprint: auth.thumbprint },
    evidence,
  );
}

/**
 * A workload an mTLS template admitted, authenticating again: the template's condition must hold for
 * the certificate it presents now (a renewed SVID is judged afresh). Throws `condition_false`.
 */
export function ensureCertificateStillAdmitted(
  ctx: WritContext,
  w: ResolvedWorkload,
  presented: PresentedCertificate,
): void {
  if (w.template?.bundle === undefined) return;
  const verdict = templateStillAdmits(ctx, w, certificateClaims(w.id, presented.leaf));
  if (verdict?.refusal !== undefined)
    throw invalidClient(verdict.refusal, {
      reason: 'condition_false',
      template: verdict.template,
      workload: w.id,
      bundle: w.template.bundle,
    });
}
