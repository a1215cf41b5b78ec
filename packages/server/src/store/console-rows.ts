import type { ConsoleSession } from '../console/console-session.js';
import type { Row } from './rows.js';

/** Rows of console sessions to records and back, for every SQL adapter. */

export function toConsoleSession(r: Row): ConsoleSession {
  return {
    idHash: r['id_hash'] as string,
    operator: r['operator'] as string,
    person: (r['person'] as string | null) ?? null,
    csrf: r['csrf'] as string,
    via: r['via'] as ConsoleSession['via'],
    createdAt: Number(r['created_at']),
    lastSeenAt: Number(r['last_seen_at']),
    expiresAt: Number(r['expires_at']),
  };
}

/** The values of an insert, in the column order both adapters use. */
export const consoleSessionValues = (s: ConsoleSession): unknown[] => [
  s.idHash,
  s.operator,
  s.person,
  s.csrf,
  s.via,
  s.createdAt,
  s.lastSeenAt,
  s.expiresAt,
];

export const CONSOLE_SESSION_COLUMNS =
  'id_hash, operator, person, csrf, via, created_at, last_seen_at, expires_at';
