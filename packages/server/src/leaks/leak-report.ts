import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { WritContext } from '../context.js';
import { restrictText } from '../control-characters.js';
import { invalidRequest } from '../errors.js';
import type { LeakLocation, LeakReport, LeakVia } from './respond.js';

/** Longest token read from a report: anything longer is no Writ token (`limits.token_bytes` is ≤ 64 KiB). */
const MAX_TOKEN = 65_536;

const where = z
  .object({
    url: z.string().max(2048).optional(),
    source: z.string().max(128).optional(),
    path: z.string().max(1024).optional(),
    line: z.number().int().min(0).max(1_000_000_000).optional(),
    commit: z.string().max(64).optional(),
    type: z.string().max(128).optional(),
  })
  .strict();

const entry = z.object({ token: z.string().min(1).max(MAX_TOKEN), where: where.default({}) }).strict();

/** The body of a leak report (the OpenAPI document describes it with this schema, without `maxTokens`). */
export function leakReportSchema(o: { maxTokens?: number; dryRun: boolean }) {
  const tokens = z.array(entry).min(1);
  return z
    .object({
      tokens: o.maxTokens === undefined ? tokens : tokens.max(o.maxTokens),
      ...(o.dryRun ? { dry_run: z.boolean().default(false) } : {}),
    })
    .strict();
}

/**
 * A leak report as `POST /v1/leaks` and `POST /admin/v1/leaks` take it:
 * `{"tokens": [{"token": "eyJ…", "where": {"url", "source", "path", "line", "commit", "type"}}]}`, at
 * most `maxTokens` entries; the admin API also takes `"dry_run": true`. Every text of `where` is kept
 * with its control characters escaped. Refused whole (`leak_report`), naming the first field that fails.
 */
export function parseLeakReport(
  body: unknown,
  o: { via: LeakVia; maxTokens: number; dryRun: boolean },
): { reports: LeakReport[]; dryRun: boolean } {
  const r = leakReportSchema(o).safeParse(body);
  if (!r.success) {
    const i = r.error.issues[0]!;
    const tooMany = i.code === 'too_big' && i.path.length === 1 && i.path[0] === 'tokens';
    throw invalidRequest(
      tooMany
        ? `tokens: at most ${o.maxTokens} tokens in one report (leaks.max_tokens); send the rest in another`
        : `${i.path.join('.') || 'body'}: ${i.message}; a report is {"tokens": [{"token": "…", "where": {…}}]}`,
      { reason: 'leak_report' },
    );
  }
  const data = r.data as { tokens: Array<z.output<typeof entry>>; dry_run?: boolean };
  return {
    reports: data.tokens.map((t) => ({ token: t.token, where: location(o.via, t.where) })),
    dryRun: data.dry_run === true,
  };
}

/** A reporter's words about where a token was found, bounded and with control characters escaped. */
export function location(
  via: LeakVia,
  w: {
    url?: string | undefined;
    source?: string | undefined;
    path?: string | undefined;
    line?: number | undefined;
    commit?: string | undefined;
    type?: string | undefined;
  },
): LeakLocation {
  return {
    via,
    ...(w.url !== undefined ? { url: restrictText(w.url, 2048) } : {}),
    ...(w.source !== undefined ? { source: restrictText(w.source, 128) } : {}),
    ...(w.path !== undefined ? { path: restrictText(w.path, 1024) } : {}),
    ...(w.line !== undefined ? { line: w.line } : {}),
    ...(w.commit !== undefined ? { commit: restrictText(w.commit, 64) } : {}),
    ...(w.type !== undefined ? { type: restrictText(w.type, 128) } : {}),
  };
}

/** The route options every leak endpoint shares: its own body limit, named in the 413 refusal. */
export const leakBodyLimit = (ctx: WritContext) => ({
  bodyLimit: ctx.settings.leaks.bodyBytes,
  config: { bodyLimitSetting: 'leaks.body_bytes' },
});

/** Leak reports are JSON, whatever else the server parses. */
export function requireJson(req: FastifyRequest): void {
  if (!req.headers['content-type']?.toLowerCase().startsWith('application/json'))
    throw invalidRequest('a leak report must be application/json', { reason: 'media_type' });
}
