import { EventType } from '@writ/sdk/wire';
import type { JWTPayload } from 'jose';
import type { WritContext } from '../context.js';
import { invalidGrant } from '../errors.js';
import { announceBundle } from '../policy/bundle.js';
import type { ResolvedWorkload } from '../registry/registry.js';
import type { WorkloadRecord } from '../registry/workload.js';
import { type CompiledTemplate, deriveWorkload } from './template-rules.js';
import type { TemplateAdmission } from './workload-template.js';

/** What a verified federation token says, for a template to judge. */
export interface TemplateEvidence {
  /** The trusted issuer's config name. */
  issuer: string;
  /** The SPIFFE ID the issuer's subject rule maps the token to. */
  id: string;
  claims: JWTPayload;
  fingerprint: string;
  /** Audit detail of the federation refusal (issuer, fingerprint, jti). */
  detail: Record<string, unknown>;
}

/**
 * The registry's lookup on first use: an identity no workload file registers, under a prefix of a
 * template of the token's issuer, is admitted when the template's condition holds and every derivation
 * yields a value. The workload is written to the store (every node finds it there), audited as
 * `workload.admitted` with the template and the evidence, and announced so every node and verifier
 * reloads. Undefined when no template of this issuer covers the identity; a refusal (`condition_false`,
 * `template_derivation`) when the covering template does not admit it.
 */
export async function admitByTemplate(
  ctx: WritContext,
  e: TemplateEvidence,
): Promise<ResolvedWorkload | undefined> {
  const t = ctx.registry.templates().covering(e.id);
  if (!t || t.spec.federation !== e.issuer) return undefined;
  const claims = e.claims as Record<string, unknown>;
  const derived = deriveWorkload(t, e.id, claims);
  if ('refusal' in derived)
    throw invalidGrant(derived.refusal.message, {
      reason: derived.refusal.reason,
      template: t.spec.id,
      field: derived.refusal.field,
      workload: e.id,
      ...e.detail,
    });
  const tokenSubject = typeof claims['sub'] === 'string' ? claims['sub'].slice(0, 256) : '';
  return admitWorkload(
    ctx,
    derived.workload,
    { id: t.spec.id, issuer: e.issuer, subject: tokenSubject, claims, fingerprint: e.fingerprint },
    {
      federation_issuer: e.issuer,
      token_subject: tokenSubject,
      fingerprint: e.fingerprint,
      ...(typeof claims['jti'] === 'string' ? { jti: claims['jti'].slice(0, 128) } : {}),
    },
  );
}

/**
 * Writes a workload a template admitted to the store (every node finds it there), audits it as
 * `workload.admitted` with the template and `evidence`, and announces it so every node and verifier
 * has it. Another node may have admitted it first: its record (and its state) stands.
 */
export async function admitWorkload(
  ctx: WritContext,
  derived: Omit<WorkloadRecord, 'template' | 'state' | 'updatedAt'>,
  admission: Omit<TemplateAdmission, 'admittedAt'>,
  evidence: Record<string, unknown>,
): Promise<ResolvedWorkload> {
  const now = ctx.clock.now();
  const result = await ctx.store.transaction(async (tx) => {
    const existing = await tx.getWorkload(derived.id);
    if (existing) return { record: existing };
    const workload = { ...derived, template: { ...admission, admittedAt: now } };
    await tx.putWorkload(workload, now);
    const change = await ctx.events.append(tx, EventType.workloadState, {
      id: derived.id,
      state: 'active',
      admitted: true,
    });
    await announceBundle(ctx, tx, change.seq);
    const audited = await ctx.audit.append(
      {
        type: 'workload.admitted',
        outcome: 'success',
        actor: derived.id,
        subject: derived.id,
        data: {
          template: admission.id,
          ...evidence,
          claims: admission.claims,
          owner: workload.owner,
          environment: workload.environment,
          classes: workload.classes,
          attributes: workload.attributes,
        },
      },
      tx,
    );
    const record: WorkloadRecord = { ...workload, state: 'active', updatedAt: now };
    return { record, seq: change.seq, audited };
  });
  if (result.audited) {
    ctx.audit.noteCommitted(result.audited);
    ctx.events.notify();
    ctx.policy.bundle.noteChange(result.seq);
  }
  return ctx.registry.remember(result.record);
}

/**
 * A templated workload is admitted once, but its template's condition holds for every token it
 * presents: a token the condition refuses (another branch, a label gone) is `condition_false`, and so is
 * any token once its template is gone and the workload not yet removed.
 */
export function templateStillAdmits(
  ctx: WritContext,
  w: ResolvedWorkload,
  claims: JWTPayload | Record<string, unknown>,
): { template: string; refusal?: string } | undefined {
  if (!w.template) return undefined;
  const t: CompiledTemplate | undefined = ctx.registry.templates().byId(w.template.id);
  if (!t) return { template: w.template.id, refusal: `template ${w.template.id} no longer exists` };
  if (t.condition(claims as Record<string, unknown>) !== true)
    return {
      template: t.spec.id,
      refusal: `the ${t.spec.bundle !== undefined ? 'client certificate' : 'federation token'} does not satisfy the condition of template ${t.spec.id} (templates/${t.spec.id}: condition)`,
    };
  return { template: t.spec.id };
}
