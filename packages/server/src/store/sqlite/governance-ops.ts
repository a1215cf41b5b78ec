import type { BreakGlass, BreakGlassQuery, BreakGlassState } from '../../governance/break-glass.js';
import type { CredentialException, ExceptionRecord, ExceptionRuntime } from '../../governance/exception.js';
import { breakGlassValues, exceptionSpecJson, toBreakGlass, toExceptionRecord } from '../governance-rows.js';
import type { Row } from '../rows.js';
import { PreparedStatements } from './prepared-statements.js';

/**
 * The embedded store's statements for governance: the exceptions registry and break-glass grants.
 * Synchronous: the store's queue (or its transaction) serializes them. Prepared on first use.
 */
export class SqliteGovernanceOps extends PreparedStatements {
  listExceptions(): ExceptionRecord[] {
    return this.prepared('SELECT * FROM credential_exceptions ORDER BY id')
      .all()
      .map((r) => toExceptionRecord(r as Row));
  }
  getException(id: string): ExceptionRecord | undefined {
    const r = this.prepared('SELECT * FROM credential_exceptions WHERE id = ?').get(id) as Row | undefined;
    return r ? toExceptionRecord(r) : undefined;
  }
  putException(e: CredentialException): void {
    this.prepared(
      `INSERT INTO credential_exceptions (id, spec, runtime) VALUES (?, ?, '{}')
       ON CONFLICT (id) DO UPDATE SET spec = excluded.spec`,
    ).run(e.id, exceptionSpecJson(e));
  }
  deleteException(id: string): void {
    this.prepared('DELETE FROM credential_exceptions WHERE id = ?').run(id);
  }
  setExceptionRuntime(id: string, runtime: ExceptionRuntime, expected: ExceptionRuntime): boolean {
    return (
      this.prepared('UPDATE credential_exceptions SET runtime = ? WHERE id = ? AND runtime = ?').run(
        JSON.stringify(runtime),
        id,
        JSON.stringify(expected),
      ).changes === 1
    );
  }

  createBreakGlass(g: BreakGlass): void {
    this.prepared(
      `INSERT INTO break_glass (id, workload, state, ends_at, open_review, requested_at, doc)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ).run(...breakGlassValues(g));
  }
  getBreakGlass(id: string): BreakGlass | undefined {
    const r = this.prepared('SELECT doc FROM break_glass WHERE id = ?').get(id) as Row | undefined;
    return r ? toBreakGlass(r) : undefined;
  }
  listBreakGlass(q: BreakGlassQuery): BreakGlass[] {
    const where: string[] = [];
    const values: unknown[] = [];
    if (q.workload !== undefined) {
      where.push('workload = ?');
      values.push(q.workload);
    }
    if (q.state !== undefined) {
      where.push('state = ?');
      values.push(q.state);
    }
    if (q.openReview !== undefined) {
      where.push('open_review = ?');
      values.push(q.openReview ? 1 : 0);
    }
    if (q.endsBy !== undefined) {
      where.push('ends_at <= ?');
      values.push(q.endsBy);
    }
    values.push(Math.max(0, Math.min(q.limit, 1000)));
    return this.prepared(
      `SELECT doc FROM break_glass ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY requested_at, id LIMIT ?`,
    )
      .all(...values)
      .map((r) => toBreakGlass(r as Row));
  }
  updateBreakGlass(g: BreakGlass, expected: BreakGlassState): boolean {
    const [id, , state, endsAt, openReview, , doc] = breakGlassValues(g);
    return (
      this.prepared(
        'UPDATE break_glass SET state = ?, ends_at = ?, open_review = ?, doc = ? WHERE id = ? AND state = ?',
      ).run(state, endsAt, openReview, doc, id, expected).changes === 1
    );
  }
}
