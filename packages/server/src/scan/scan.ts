import { isAscii } from 'node:buffer';
import { createHash } from 'node:crypto';
import type { VerificationKey } from '@writ/sdk/jose';
import { type ClassifiedToken, classifyWritToken, type WritTokenClass } from './classify.js';
import { findSecrets, findWritTokens, preview, sha256Hex } from './find.js';
import type { HeldSecrets } from './held-secrets.js';
import type { ScanInput, SkipCounter } from './sources.js';

/** A Writ token's state, as the server knows it (`unknown` when it was not asked: an offline scan). */
export type TokenState = 'live' | 'expired' | 'revoked' | 'unknown';

/** One thing found at one place. Holds no secret and no token: a fingerprint and a short preview. */
export interface ScanFinding {
  type: 'writ_token' | 'secret';
  path: string;
  line: number;
  column: number;
  /** Git history: the commit that first added the blob at `path`. */
  commit?: string;
  /** Writ tokens: what the signature says. */
  status?: WritTokenClass;
  /** Confirmed Writ tokens: live, expired or revoked. */
  state?: TokenState;
  /** Confirmed Writ tokens: what this scan's report did (`revoked` only with `--revoke`). */
  action?: 'revoked' | 'recorded' | 'none';
  jti?: string;
  sub?: string;
  kid?: string;
  /** Truncated tokens: whether the `kid` left names one of our keys. */
  kidOurs?: boolean;
  /** Candidates: why the signature did not verify with our keys. */
  reason?: string;
  /** `url`: found after percent-decoding. */
  encoding?: 'plain' | 'url';
  /** Secrets: the rule that found it and its name for what it found. */
  rule?: string;
  kind?: string;
  /** Secrets Writ holds: which one (`legacy client secret of …`). */
  ours?: string;
  /** SHA-256 (base64url) of the token or secret: the same value the audit log and findings record. */
  fingerprint: string;
  preview: string;
}

export interface ScanStats {
  inputs: number;
  bytes: number;
  findings: number;
  skipped: SkipCounter;
}

/** The admin API's `POST /admin/v1/leaks`: classify (dry run) or report (revoke live, record the rest). */
export interface LeakReporter {
  /** Most tokens in one call (`leaks.max_tokens`). */
  readonly batch: number;
  report(
    tokens: Array<{ token: string; where: { path: string; line: number; commit?: string; source: string } }>,
    dryRun: boolean,
  ): Promise<Array<{ state: string; action: 'revoked' | 'recorded' | 'none' }>>;
}

export interface ScanDeps {
  /** Our public keys (the server's JWKS, or a JWKS file): what confirms a token as ours. */
  keys: readonly VerificationKey[];
  held: HeldSecrets;
  /** Absent offline: states come from `exp` alone (expired or unknown). */
  leaks?: LeakReporter | undefined;
  /** Report confirmed tokens for real: live ones are revoked, every one is recorded as a finding. */
  revoke: boolean;
  /** Run the secret rule set too (default); off: Writ tokens only. */
  secrets: boolean;
  nowMs: number;
  /** Called after each input (the caller decides how often to print). */
  onProgress?: ((s: ScanStats) => void) | undefined;
}

/**
 * Distinct tokens whose classification is remembered (a token pasted in many places is verified once);
 * past this, each further occurrence is verified again rather than memory growing with the corpus.
 */
const MAX_REMEMBERED = 10_000;

const fingerprint = (s: string) => createHash('sha256').update(s).digest('base64url');

/**
 * Writ tokens found are classified in batches of this many, once their inputs have been scanned, rather
 * than each as it is found. An ES256 verification reads large precomputed tables (OpenSSL's P-256 code),
 * which the rule set's passes over each input push out of the CPU caches; verified one after another,
 * tokens find them in cache (about half the CPU per token, measured beside the rule set). The findings
 * keep their order: each token's place in the list is held and filled when its batch is classified.
 */
const CLASSIFY_BATCH = 64;

/** Where a finding is: its path, line and column, and for git history the commit. */
type Place = Pick<ScanFinding, 'path' | 'line' | 'column' | 'commit'>;

/**
 * A copy of `s` that shares no memory with the text it was cut from. A token found in a file is a slice
 * of the file's text, and V8 keeps a slice as a view of its parent: a token kept past its file (waiting
 * for its batch, in the memo of classified tokens, among the confirmed tokens the server is asked about)
 * would keep the whole file's text alive: 58 MB held at the end of the benchmark's 200 MB scan, copied
 * by the garbage collector, where a scan's memory is meant to be one input at a time. Tokens are
 * base64url (ASCII), so the copy is exact.
 */
const detach = (s: string): string => Buffer.from(s, 'latin1').toString('latin1');

/**
 * An input's text, decoded once and given to every pass (Writ tokens, the rule set, `client_secret`).
 * UTF-8; text that is all ASCII (most of it: source, logs) is copied byte for byte instead, which
 * makes the same string without UTF-8's decoding work.
 */
const decode = (data: Buffer): string => (isAscii(data) ? data.toString('latin1') : data.toString('utf8'));

/** Scans every input, then asks the server about the confirmed tokens (once per distinct token). */
export async function scan(
  inputs: AsyncIterable<ScanInput>,
  deps: ScanDeps,
  skipped: SkipCounter,
): Promise<{ findings: ScanFinding[]; stats: ScanStats }> {
  // Writ tokens' places are held in order and filled when their batch is classified (`settle`).
  const findings: Array<ScanFinding | undefined> = [];
  const stats: ScanStats = { inputs: 0, bytes: 0, findings: 0, skipped };
  // Confirmed tokens, each once, with the findings that saw it: what the server is asked about.
  const confirmed = new Map<string, { first: ScanFinding; all: ScanFinding[] }>();
  const classified = new Map<string, ClassifiedToken>();
  const pending: Array<{ index: number; token: string; encoding: 'plain' | 'url'; where: Place }> = [];
  const settle = () => {
    for (const p of pending) {
      let c = classified.get(p.token);
      if (c === undefined) {
        c = classifyWritToken(p.token, deps.keys);
        if (classified.size < MAX_REMEMBERED) classified.set(p.token, c);
      }
      const f: ScanFinding = {
        type: 'writ_token',
        ...p.where,
        status: c.class,
        ...(c.jti !== undefined ? { jti: c.jti } : {}),
        ...(c.sub !== undefined ? { sub: c.sub } : {}),
        ...(c.kid !== undefined ? { kid: c.kid } : {}),
        ...(c.kidOurs !== undefined ? { kidOurs: c.kidOurs } : {}),
        ...(c.reason !== undefined ? { reason: c.reason } : {}),
        encoding: p.encoding,
        fingerprint: fingerprint(p.token),
        preview: `${p.token.slice(0, 12)}…(${p.token.length})`,
      };
      if (c.class === 'confirmed') {
        f.state = c.exp !== undefined && c.exp * 1000 <= deps.nowMs ? 'expired' : 'unknown';
        const seen = confirmed.get(p.token);
        if (seen) seen.all.push(f);
        else confirmed.set(p.token, { first: f, all: [f] });
      }
      findings[p.index] = f;
    }
    pending.length = 0;
  };
  for await (const input of inputs) {
    stats.inputs++;
    stats.bytes += input.data.length;
    const text = decode(input.data);
    const at = (p: { line: number; column: number }): Place => ({
      path: input.where.path,
      line: p.line,
      column: p.column,
      ...(input.where.commit !== undefined ? { commit: input.where.commit } : {}),
    });
    for (const hit of findWritTokens(text, input.firstLine)) {
      pending.push({
        index: findings.length,
        token: detach(hit.token),
        encoding: hit.encoding,
        where: at(hit),
      });
      findings.push(undefined);
    }
    if (deps.secrets) {
      for (const hit of await findSecrets(text, input.where.path, input.firstLine)) {
        const ours = deps.held.size > 0 ? deps.held.name(sha256Hex(hit.secret)) : undefined;
        findings.push({
          type: 'secret',
          ...at(hit),
          rule: hit.rule,
          kind: hit.kind,
          ...(ours !== undefined ? { ours } : {}),
          fingerprint: fingerprint(hit.secret),
          preview: preview(hit.secret),
        });
      }
    }
    stats.findings = findings.length;
    if (pending.length >= CLASSIFY_BATCH) settle();
    deps.onProgress?.(stats);
  }
  settle();
  if (deps.leaks && confirmed.size > 0) await askServer(deps.leaks, confirmed, deps.revoke);
  // Every place is filled: settle() has run for every token found.
  return { findings: findings as ScanFinding[], stats };
}

async function askServer(
  leaks: LeakReporter,
  confirmed: Map<string, { first: ScanFinding; all: ScanFinding[] }>,
  revoke: boolean,
): Promise<void> {
  const entries = [...confirmed];
  for (let i = 0; i < entries.length; i += leaks.batch) {
    const batch = entries.slice(i, i + leaks.batch);
    const results = await leaks.report(
      batch.map(([token, { first }]) => ({
        token,
        where: {
          path: first.path,
          line: first.line,
          ...(first.commit !== undefined ? { commit: first.commit } : {}),
          source: first.commit !== undefined ? 'git-history' : first.path === '-' ? 'stdin' : 'file',
        },
      })),
      !revoke,
    );
    batch.forEach(([, { all }], j) => {
      const r = results[j];
      const state: TokenState =
        r?.state === 'live' || r?.state === 'expired' || r?.state === 'revoked' ? r.state : 'unknown';
      for (const f of all) {
        f.state = state;
        f.action = r?.action ?? 'none';
      }
    });
  }
}
