import type { ConsoleSession } from '../../console/console-session.js';
import { CONSOLE_SESSION_COLUMNS, consoleSessionValues, toConsoleSession } from '../console-rows.js';
import type { Row } from '../rows.js';
import { PreparedStatements } from './prepared-statements.js';

/** The embedded store's statements for console sessions. */
export class SqliteConsoleOps extends PreparedStatements {
  putConsoleSession(s: ConsoleSession): void {
    this.prepared(
      `INSERT INTO console_sessions (${CONSOLE_SESSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(...consoleSessionValues(s));
  }
  getConsoleSession(idHash: string): ConsoleSession | undefined {
    const r = this.prepared('SELECT * FROM console_sessions WHERE id_hash = ?').get(idHash);
    return r ? toConsoleSession(r as Row) : undefined;
  }
  touchConsoleSession(idHash: string, at: number): boolean {
    return (
      this.prepared('UPDATE console_sessions SET last_seen_at = MAX(last_seen_at, ?) WHERE id_hash = ?').run(
        at,
        idHash,
      ).changes === 1
    );
  }
  deleteConsoleSession(idHash: string): boolean {
    return this.prepared('DELETE FROM console_sessions WHERE id_hash = ?').run(idHash).changes === 1;
  }
  pruneConsoleSessions(now: number): number {
    return this.prepared('DELETE FROM console_sessions WHERE expires_at <= ?').run(now).changes;
  }
}
