import type { BreakGlass } from '../governance/break-glass.js';
import type { CredentialException, ExceptionRecord, ExceptionRuntime } from '../governance/exception.js';
import type { Row } from './rows.js';

/**
 * Rows of the governance tables, shared by both adapters. An exception's declaration and its runtime
 * state are two JSON columns: `writ apply` replaces the first, the admin API the second.
 */
export function toExceptionRecord(r: Row): ExceptionRecord {
  return {
    ...(JSON.parse(r['spec'] as string) as CredentialException),
    runtime: JSON.parse(r['runtime'] as string) as ExceptionRuntime,
  };
}

/** A declaration as stored: without any runtime state a caller may have left on it. */
export function exceptionSpecJson(e: CredentialException): string {
  const { runtime: _r, ...spec } = e as CredentialException & { runtime?: unknown };
  return JSON.stringify(spec);
}

export function toBreakGlass(r: Row): BreakGlass {
  return JSON.parse(r['doc'] as string) as BreakGlass;
}

/** The indexed columns of a break-glass row, then its document. */
export function breakGlassValues(
  g: BreakGlass,
): [string, string, string, number | null, number, number, string] {
  return [
    g.id,
    g.workload,
    g.state,
    g.endsAt ?? null,
    g.review === undefined ? 1 : 0,
    g.requestedAt,
    JSON.stringify(g),
  ];
}
