import { createHash, verify } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { auditRefusal } from '../audit/refusal.js';
import { admitCaller } from '../auth/budget.js';
import type { WritContext } from '../context.js';
import { invalidRequest, notFound, OAuthError } from '../errors.js';
import { parseBoundedJson } from '../jose/json.js';
import { info } from '../request/info.js';
import { leakBodyLimit, location } from './leak-report.js';
import { PARTNER_KEY_ID, PartnerKeys } from './partner-keys.js';
import { type LeakResult, respondToLeaks } from './respond.js';

export const GITHUB_LEAKS_PATH = '/v1/leaks/github';

/** The reporter GitHub's reports are recorded under, once their signature verified. */
export const GITHUB_REPORTER = 'github:secret-scanning';

/** A DER ECDSA P-256 signature is at most 72 bytes: 96 base64 characters. */
const SIGNATURE = /^[A-Za-z0-9+/]{8,128}={0,2}$/;

const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' };

/** One match in GitHub's report; members GitHub may add later are ignored. */
const match = z.object({
  token: z.string().min(1).max(65_536),
  type: z.string().max(256).optional(),
  url: z.string().max(4096).optional(),
  source: z.string().max(256).optional(),
});

/** GitHub's answer for one match (the partner program's documented response). */
export interface PartnerLabel {
  token_raw: string;
  token_type: string;
  label: 'true_positive' | 'false_positive';
}

/**
 * `POST /v1/leaks/github`: GitHub's secret scanning partner program reports Writ tokens found in
 * public repositories, gists and packages. Checked in order, each refusal audited as `leaks.refused`
 * and nothing revoked: the endpoint is on (`leaks.github_keys_url`); `Github-Public-Key-Identifier`
 * and `Github-Public-Key-Signature` are there, once each, well-formed; the key id is published at
 * the configured URL (`PartnerKeys`); the signature (ECDSA P-256 SHA-256, DER, base64) verifies over
 * the raw body; the body is a JSON array of 1 to `leaks.max_tokens` `{token, type, url, source}`; the
 * same body (SHA-256) was not taken within `leaks.replay_window`. Then every token goes to the leak
 * response (reporter `github:secret-scanning`) and the answer labels each match: `true_positive` for
 * a token this issuer signed (live, expired or revoked), `false_positive` for any other.
 */
export function registerGithubLeakRoute(app: FastifyInstance, ctx: WritContext): void {
  const url = ctx.settings.leaks.githubKeysUrl;
  const keys = url === '' ? undefined : new PartnerKeys(url, { clock: ctx.clock });
  app.register(async (scope) => {
    // The signature is over the bytes as sent: the body is read raw, and parsed only once it verified.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) =>
      done(null, body),
    );
    scope.post(GITHUB_LEAKS_PATH, leakBodyLimit(ctx), async (req, reply) => {
      try {
        if (!keys)
          throw notFound('the GitHub partner endpoint is off: set leaks.github_keys_url to turn it on', {
            reason: 'partner_off',
          });
        const body = req.body as Buffer;
        await checkSignature(req, body, keys);
        // From here on the sender is GitHub: refusals are its own, not an anonymous source's, and its
        // reports take from one budget (`limits.client_rate`), as every authenticated caller's do.
        await admitCaller(ctx, info(req), GITHUB_REPORTER);
        const matches = parseMatches(body, ctx);
        await refuseReplay(ctx, body);
        const results = await respondToLeaks(
          ctx,
          matches.map((m) => ({ token: m.token, where: location('github', m) })),
          { reporter: GITHUB_REPORTER, via: 'github' },
        );
        reply.headers(NO_STORE);
        return matches.map((m, i): PartnerLabel => labelled(m, results[i]!));
      } catch (err) {
        throw await auditRefusal(ctx, 'leaks', err, info(req), { path: GITHUB_LEAKS_PATH });
      }
    });
  });
}

async function checkSignature(req: FastifyRequest, body: Buffer, keys: PartnerKeys): Promise<void> {
  const id = req.headers['github-public-key-identifier'];
  const signature = req.headers['github-public-key-signature'];
  const missing = (what: string) =>
    invalidRequest(
      `${what}: a partner report carries Github-Public-Key-Identifier (the key id) and Github-Public-Key-Signature (base64 DER ECDSA over the body), once each`,
      { reason: 'partner_signature_missing' },
    );
  if (typeof id !== 'string' || !PARTNER_KEY_ID.test(id))
    throw missing('Github-Public-Key-Identifier is missing, repeated or malformed');
  if (typeof signature !== 'string' || !SIGNATURE.test(signature))
    throw missing('Github-Public-Key-Signature is missing, repeated or not base64');
  const key = await keys.key(id);
  let valid = false;
  try {
    valid = verify('sha256', body, { key, dsaEncoding: 'der' }, Buffer.from(signature, 'base64'));
  } catch {
    valid = false;
  }
  if (!valid)
    throw new OAuthError(
      'invalid_client',
      'Github-Public-Key-Signature does not verify over the body with the key named: the body must be sent exactly as signed',
      { detail: { reason: 'partner_signature', key_id: id } },
    );
}

/** A GitHub partner report: the matches (the OpenAPI document describes the body with this schema). */
export const githubMatches = z.array(match).min(1);

function parseMatches(body: Buffer, ctx: WritContext): Array<z.output<typeof match>> {
  const refuse = (what: string) =>
    invalidRequest(`${what}; a partner report is a JSON array of {"token", "type", "url", "source"}`, {
      reason: 'leak_report',
    });
  let parsed: unknown;
  try {
    parsed = parseBoundedJson(body.toString('utf8'), ctx.settings.limits.jsonDepth);
  } catch {
    throw refuse('the body is not JSON');
  }
  const max = ctx.settings.leaks.maxTokens;
  if (Array.isArray(parsed) && parsed.length > max)
    throw refuse(`at most ${max} matches in one report (leaks.max_tokens)`);
  const r = githubMatches.safeParse(parsed);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw refuse(`${i.path.join('.') || 'body'}: ${i.message}`);
  }
  return r.data;
}

/** A body taken once within `leaks.replay_window` is refused again: its digest is consumed first. */
async function refuseReplay(ctx: WritContext, body: Buffer): Promise<void> {
  const digest = createHash('sha256').update(body).digest('base64url');
  const now = ctx.clock.now();
  if (!(await ctx.store.consume('leaks-github', digest, now + ctx.settings.leaks.replayWindow * 1000, now)))
    throw invalidRequest(
      'this report (the same body) was already taken within leaks.replay_window: nothing was done again',
      { reason: 'partner_replay', body_sha256: digest },
    );
}

function labelled(m: z.output<typeof match>, r: LeakResult): PartnerLabel {
  const ours = r.state === 'live' || r.state === 'expired' || r.state === 'revoked';
  return { token_raw: m.token, token_type: m.type ?? '', label: ours ? 'true_positive' : 'false_positive' };
}
