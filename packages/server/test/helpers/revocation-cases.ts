import type { RevocationKind } from '@writ/sdk/wire';
import { decodeJwt } from './refusals.js';

/**
 * The case table of the revocation-by-predicate tests, run once against introspection
 * (revocation.test.ts) and once against a connected verifier (verifier-revocation.test.ts).
 *
 * The tokens of one "world" are all issued at one instant under one signing key. They differ in one
 * dimension at a time, so each predicate has tokens it must revoke and tokens it must leave alone:
 * - sub:       the owner's tokens (and the exchanged ones, whose sub is the owner) vs the runner's own;
 * - client_id: the owner's tokens vs the exchanged ones (client_id the runner) and the runner's own;
 * - cls:       the owner's token of its other class vs its jobs tokens;
 * - tid:       task A vs task B vs no task (the exchanged tokens inherit task A);
 * - jti:       one token vs its siblings;
 * - kid:       worlds before a key rotation vs worlds after it.
 */
export const TOKEN_NAMES = [
  'ownerJobs',
  'ownerJobsA',
  'ownerJobsB',
  'ownerOtherClass',
  'runnerJobs',
  'exchangedA',
  'exchangedTwice',
] as const;
export type TokenName = (typeof TOKEN_NAMES)[number];

export interface World {
  label: string;
  kid: string;
  tokens: Partial<Record<TokenName, string>>;
}

export interface Tasks {
  a: string;
  b: string;
}

export interface PredicateCase {
  kind: RevocationKind;
  /** The value this predicate is revoked with, as it reads in a given world. */
  valueOf(w: World, tasks: Tasks): string;
  /** Tokens of a world that carry that value (when the world's value is one of the revoked ones). */
  names: readonly TokenName[];
  /**
   * Tokens exchanged from the named one: revoked when it is (a world's tokens share one `iat`, so the
   * cutoff reads the same for them).
   */
  descendants?: readonly TokenName[];
  /** The test's name, when the kind alone does not tell cases apart. */
  label?: string;
}

export const jti = (token: string | undefined): string =>
  token === undefined ? '(no such token in this world)' : (decodeJwt(token).claims['jti'] as string);

/** One case per predicate, for a world whose owner is `owner` and whose other class is `otherClass`. */
export function predicateCases(owner: string, otherClass: string): PredicateCase[] {
  return [
    { kind: 'jti', valueOf: (w) => jti(w.tokens.ownerJobs), names: ['ownerJobs'] },
    // A subject token's jti reaches what was exchanged from it, one and two exchanges down (RFC 8693).
    {
      kind: 'jti',
      label: 'jti of a subject token (and what was exchanged from it)',
      valueOf: (w) => jti(w.tokens.ownerJobsA),
      names: ['ownerJobsA'],
      descendants: ['exchangedA', 'exchangedTwice'],
    },
    // An exchanged token's jti reaches its own descendants, not the token it came from.
    {
      kind: 'jti',
      label: 'jti of an exchanged token (and what was exchanged from it)',
      valueOf: (w) => jti(w.tokens.exchangedA),
      names: ['exchangedA'],
      descendants: ['exchangedTwice'],
    },
    { kind: 'tid', valueOf: (_w, t) => t.a, names: ['ownerJobsA', 'exchangedA', 'exchangedTwice'] },
    {
      kind: 'sub',
      valueOf: () => owner,
      names: ['ownerJobs', 'ownerJobsA', 'ownerJobsB', 'ownerOtherClass', 'exchangedA', 'exchangedTwice'],
    },
    {
      kind: 'client_id',
      valueOf: () => owner,
      names: ['ownerJobs', 'ownerJobsA', 'ownerJobsB', 'ownerOtherClass'],
    },
    { kind: 'cls', valueOf: () => otherClass, names: ['ownerOtherClass'] },
    { kind: 'kid', valueOf: (w) => w.kid, names: TOKEN_NAMES },
  ];
}

/** Kinds whose revocations, without `issued_before`, are stamped "issued before now" by the server. */
export const STAMPED_NOW: ReadonlySet<RevocationKind> = new Set(['sub', 'client_id', 'cls', 'kid']);
