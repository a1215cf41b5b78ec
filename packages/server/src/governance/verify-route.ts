import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { AuditChainBrokenError } from '../audit/chain.js';
import type { WritContext } from '../context.js';
import { invalidRequest } from '../errors.js';
import { type EvidencePack, signEvidence } from './evidence.js';
import { type GovernanceProof, ProofTooLargeError, proveGovernance } from './runtime-proof.js';

/** The verifier SDK's defaults: a verifier not heard from in 15 s fails closed; 5 s leeway on `exp`. */
export const DEFAULT_PROPAGATION_BOUND_SECONDS = 15;
export const DEFAULT_EXPIRY_LEEWAY_SECONDS = 5;

const DAY = 86_400;

export const governVerifyBody = z
  .object({
    /** Seconds: the period ends now and starts this long ago. */
    since_seconds: z
      .number()
      .int()
      .positive()
      .max(400 * DAY),
    /** Seconds after a revocation within which a verifier may still accept the token. */
    propagation_bound_seconds: z
      .number()
      .int()
      .nonnegative()
      .max(DAY)
      .default(DEFAULT_PROPAGATION_BOUND_SECONDS),
    /** Seconds of clock leeway verifiers allow on `exp`. */
    expiry_leeway_seconds: z.number().int().nonnegative().max(3600).default(DEFAULT_EXPIRY_LEEWAY_SECONDS),
  })
  .strict();

export interface GovernVerifyAnswer {
  report: GovernanceProof;
  evidence: EvidencePack;
}

/**
 * Proves the period server-side (the server holds the key the evidence is signed with): signs a
 * checkpoint at the head first so the proof covers a signed point, runs the checks, signs the report
 * and audits that it was made. `progress` hears how far it got.
 */
export async function governVerify(
  ctx: WritContext,
  actor: string,
  b: z.output<typeof governVerifyBody>,
  progress?: (p: { phase: string; done: number }) => void,
): Promise<GovernVerifyAnswer> {
  // A broken log signs nothing; the proof then covers the store's head, unsigned, and names the break.
  await ctx.audit.checkpoint().catch((err: unknown) => {
    if (!(err instanceof AuditChainBrokenError)) throw err;
  });
  const last = (await ctx.store.listCheckpoints()).at(-1);
  const top = await ctx.store.auditHead();
  const signed = ctx.audit.broken() === undefined && last !== undefined && last.seq === top?.seq;
  const head = signed ? { seq: last.seq, hash: last.hash } : top;
  const until = signed ? last.ts : ctx.clock.now();
  const report = await proveGovernance(ctx.store, {
    since: until - b.since_seconds * 1000,
    until,
    head,
    signed,
    knownBreak: ctx.audit.broken(),
    propagationMs: b.propagation_bound_seconds * 1000,
    expiryLeewayMs: b.expiry_leeway_seconds * 1000,
    maxLifetime: ctx.settings.tokens.maxLifetime,
    ...(progress ? { onProgress: progress } : {}),
  });
  const evidence = signEvidence(ctx.keys, ctx.settings.issuer, ctx.clock.now(), report);
  // Audited when the log takes it; a broken log refuses appends, and the proof already says why.
  if (ctx.audit.broken() === undefined)
    await ctx.audit.append({
      type: 'governance.verified',
      outcome: 'success',
      actor,
      data: {
        since: report.period.since,
        until: report.period.until,
        result: report.result,
        checkpoint_seq: report.checkpoint.seq,
        violations: report.findings_total.violations,
        gaps: report.findings_total.gaps,
        kid: evidence.kid,
      },
    });
  return { report, evidence };
}

/**
 * `POST /admin/v1/govern/verify`: the proof and its signed evidence pack. With `Accept:
 * application/x-ndjson` the answer is streamed, one JSON object a line: `{"progress":…}` lines while it
 * runs, then `{"result":…}` (or `{"error":…}`), so a long run shows where it is.
 */
export function registerGovernVerifyRoute(
  admin: FastifyInstance,
  ctx: WritContext,
  op: (req: FastifyRequest) => string,
  body: <T extends z.ZodType>(schema: T, req: FastifyRequest) => z.output<T>,
): void {
  admin.post('/govern/verify', async (req, reply) => {
    const b = body(governVerifyBody, req);
    const actor = op(req);
    if (!String(req.headers.accept ?? '').includes('application/x-ndjson'))
      return governVerify(ctx, actor, b).catch((err: unknown) => {
        if (err instanceof ProofTooLargeError)
          throw invalidRequest(err.message, { reason: 'period_too_large' });
        throw err;
      });
    async function* lines(): AsyncGenerator<string> {
      const queue: string[] = [];
      let wake: (() => void) | undefined;
      let finished = false;
      const push = (v: unknown) => {
        queue.push(`${JSON.stringify(v)}\n`);
        wake?.();
      };
      governVerify(ctx, actor, b, (p) => push({ progress: p }))
        .then((result) => push({ result }))
        .catch((err: unknown) => {
          ctx.logger.error({ err: (err as Error).message }, 'govern verify failed');
          push({
            error: err instanceof ProofTooLargeError ? 'invalid_request' : 'server_error',
            error_description:
              err instanceof ProofTooLargeError ? err.message : 'the proof could not be completed',
          });
        })
        .finally(() => {
          finished = true;
          wake?.();
        });
      for (;;) {
        while (queue.length > 0) yield queue.shift()!;
        if (finished) return;
        await new Promise<void>((r) => {
          wake = r;
        });
        wake = undefined;
      }
    }
    reply.header('cache-control', 'no-store').type('application/x-ndjson');
    return reply.send(Readable.from(lines()));
  });
}
