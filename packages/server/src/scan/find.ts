import { createHash } from 'node:crypto';
import { lintSource } from '@secretlint/core';
import { secretLintProfiler } from '@secretlint/profiler';
import { creator as recommendedPreset } from '@secretlint/secretlint-rule-preset-recommend';
import { findWritTokenFragments, WRIT_TOKEN_PREFIX } from '@writ/sdk/leaks';

/**
 * Finding things in text: Writ access tokens (the pattern of `@writ/sdk/leaks`, whole or truncated,
 * as they are or percent-encoded) and other secrets (secretlint's recommended preset, plus one rule of
 * ours for `client_secret` assignments, which is how Writ's legacy client secrets are written down).
 */

export interface Position {
  /** 1-based. */
  line: number;
  /** 1-based, in UTF-16 code units of the line. */
  column: number;
}

/** Turns string offsets (ascending) into lines and columns, in one pass over the text. */
export function positionsOf(text: string, offsets: readonly number[], firstLine = 1): Position[] {
  const out: Position[] = [];
  let line = firstLine;
  let lineStart = 0;
  let at = 0;
  for (const off of offsets) {
    for (let nl = text.indexOf('\n', at); nl !== -1 && nl < off; nl = text.indexOf('\n', nl + 1)) {
      line++;
      lineStart = nl + 1;
    }
    at = lineStart;
    out.push({ line, column: off - lineStart + 1 });
  }
  return out;
}

export interface TokenHit extends Position {
  token: string;
  /** `url` when the token was found only after percent-decoding its line. */
  encoding: 'plain' | 'url';
}

/**
 * `eyJ` percent-encoded (`%65%79%4A`, `%4a` in lower case), less its last character: a plain substring
 * search, far cheaper than a case-insensitive expression, for the sign that a text may hold a fully
 * percent-encoded token. Lines that do are decoded and searched.
 */
const ENCODED_START = '%65%79%4';

/** Every Writ token or token fragment in `text`, with its position. */
export function findWritTokens(text: string, firstLine = 1): TokenHit[] {
  const firstPlain = text.indexOf(WRIT_TOKEN_PREFIX);
  const hasEncoded = text.includes(ENCODED_START);
  if (firstPlain === -1 && !hasEncoded) return [];
  const found: Array<{ offset: number; token: string; encoding: 'plain' | 'url' }> = [];
  if (firstPlain !== -1) {
    for (const m of findWritTokenFragments(text, firstPlain))
      found.push({ offset: m.index, token: m.token, encoding: 'plain' });
  }
  if (hasEncoded) {
    // Lines holding an encoded token are decoded and scanned again; the hit is placed at the line.
    const re = /[^\n]*%65%79%4a%30[^\n]*/gi;
    for (const m of text.matchAll(re)) {
      const decoded = m[0].replace(/%([0-9a-f]{2})/gi, (_, h: string) =>
        String.fromCharCode(Number.parseInt(h, 16)),
      );
      for (const t of findWritTokenFragments(decoded))
        found.push({ offset: m.index, token: t.token, encoding: 'url' });
    }
    found.sort((a, b) => a.offset - b.offset);
  }
  const positions = positionsOf(
    text,
    found.map((f) => f.offset),
    firstLine,
  );
  return found.map((f, i) => ({ token: f.token, encoding: f.encoding, ...positions[i]! }));
}

export interface SecretHit extends Position {
  /** The rule that matched: a secretlint rule id, or `writ/client-secret`. */
  rule: string;
  /** The rule's name for what it found (secretlint's message id), e.g. `GITHUB_TOKEN`. */
  kind: string;
  /** The matched text. Kept in memory only to hash it; never printed. */
  secret: string;
}

/** `client_secret = …`, `"client_secret": "…"`, `client-secret: …`, `CLIENT_SECRET=…` (a form body too). */
const CLIENT_SECRET = /client[_-]?secret["']?\s*[:=]\s*["']?([A-Za-z0-9._~+/=-]{12,256})/gi;

/**
 * secretlint's profiler marks the start and end of every rule on every file on the process's
 * performance timeline, keeps every mark and measure for the life of the process, and looks through all
 * of them at each mark: over a long scan that is memory without bound and time that grows with the
 * square of the files scanned. Nothing here reads it, so its marks go nowhere (its only state is the
 * `perf` it was built with).
 */
(secretLintProfiler as unknown as { perf: { mark(): void; measure(): void } }).perf = {
  mark: () => undefined,
  measure: () => undefined,
};

const secretlintConfig = {
  rules: [{ id: '@secretlint/secretlint-rule-preset-recommend', rule: recommendedPreset }],
};

/** Every secret the rule set finds in `text` (`path` is what secretlint's path-aware rules look at). */
export async function findSecrets(text: string, path: string, firstLine = 1): Promise<SecretHit[]> {
  const hits: SecretHit[] = [];
  const result = await lintSource({
    source: { filePath: path, content: text, contentType: 'text' },
    options: { config: secretlintConfig as never, maskSecrets: false },
  });
  for (const m of result.messages) {
    hits.push({
      rule: m.ruleId,
      kind: m.messageId,
      secret: text.slice(m.range[0], m.range[1]),
      line: m.loc.start.line + firstLine - 1,
      column: m.loc.start.column + 1,
    });
  }
  if (/client[_-]?secret/i.test(text)) {
    const found = [...text.matchAll(CLIENT_SECRET)];
    const offsets = found.map((m) => m.index + m[0].length - m[1]!.length);
    const positions = positionsOf(text, offsets, firstLine);
    found.forEach((m, i) => {
      hits.push({ rule: 'writ/client-secret', kind: 'CLIENT_SECRET', secret: m[1]!, ...positions[i]! });
    });
  }
  return hits;
}

/** What a finding shows of a secret instead of the secret: its first characters and its length. */
export const preview = (secret: string): string =>
  `${secret.slice(0, Math.min(6, Math.floor(secret.length / 4)))}…(${secret.length})`;

export const sha256Hex = (s: string): string => createHash('sha256').update(s).digest('hex');
