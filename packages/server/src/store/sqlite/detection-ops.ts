import type { DetectionConfig } from '../../detection/detection-config.js';
import type {
  DetectionControl,
  Finding,
  FindingQuery,
  FindingState,
  StoredBaseline,
  WorkloadRisk,
} from '../../detection/finding.js';
import {
  detectionConfigJson,
  FINDING_COLUMNS,
  findingsPageSize,
  findingsWhere,
  findingValues,
  toDetectionConfig,
  toDetectionControl,
  toFinding,
  toStoredBaseline,
  toWorkloadRisk,
} from '../detection-rows.js';
import type { Row } from '../rows.js';
import { PreparedStatements } from './prepared-statements.js';

/**
 * The embedded store's statements for detection: baselines, risk, findings, the pause switch and the
 * applied detection config.
 * Synchronous: the store's queue (or its transaction) serializes them. Each statement is prepared on
 * first use and kept, so a read-only store opened on an older file never needs these tables.
 */
export class SqliteDetectionOps extends PreparedStatements {
  listBaselines(): StoredBaseline[] {
    return this.prepared('SELECT * FROM detection_baselines ORDER BY workload')
      .all()
      .map((r) => toStoredBaseline(r as Row));
  }
  putBaselines(rows: StoredBaseline[]): void {
    const put = this.prepared(
      `INSERT INTO detection_baselines (workload, data, updated_at) VALUES (?, ?, ?)
       ON CONFLICT (workload) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at`,
    );
    // One commit for the batch (a savepoint inside a transaction that is already open).
    this.db.transaction(() => {
      for (const b of rows) put.run(b.workload, b.data, b.updatedAt);
    })();
  }

  listRisks(): WorkloadRisk[] {
    return this.prepared('SELECT * FROM workload_risk ORDER BY workload')
      .all()
      .map((r) => toWorkloadRisk(r as Row));
  }
  putRisk(r: WorkloadRisk): void {
    this.prepared(
      `INSERT INTO workload_risk (workload, score, at) VALUES (?, ?, ?)
       ON CONFLICT (workload) DO UPDATE SET score = excluded.score, at = excluded.at`,
    ).run(r.workload, r.score, r.at);
  }

  addFinding(f: Finding): void {
    this.prepared(
      `INSERT INTO findings (${FINDING_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(...findingValues(f));
  }
  getFinding(id: string): Finding | undefined {
    const r = this.prepared('SELECT * FROM findings WHERE id = ?').get(id) as Row | undefined;
    return r ? toFinding(r) : undefined;
  }
  listFindings(q: FindingQuery): Finding[] {
    const { where, values } = findingsWhere(q, () => '?');
    // At most sixteen shapes, one statement each.
    return this.prepared(`SELECT * FROM findings ${where} ORDER BY created_at DESC, id DESC LIMIT ?`)
      .all(...values, findingsPageSize(q.limit))
      .map((r) => toFinding(r as Row));
  }
  setFindingState(id: string, state: FindingState, by: string, at: number, note: string): boolean {
    return (
      this.prepared('UPDATE findings SET state = ?, state_by = ?, state_at = ?, note = ? WHERE id = ?').run(
        state,
        by,
        at,
        note,
        id,
      ).changes === 1
    );
  }

  getDetectionControl(): DetectionControl | undefined {
    const r = this.prepared('SELECT * FROM detection_control WHERE id = 1').get() as Row | undefined;
    return r ? toDetectionControl(r) : undefined;
  }
  putDetectionControl(c: DetectionControl): void {
    this.prepared(
      `INSERT INTO detection_control (id, paused, set_by, set_at, reason) VALUES (1, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET paused = excluded.paused, set_by = excluded.set_by,
         set_at = excluded.set_at, reason = excluded.reason`,
    ).run(c.paused ? 1 : 0, c.by, c.at, c.reason);
  }

  getDetectionConfig(): DetectionConfig | undefined {
    const r = this.prepared('SELECT data FROM detection_config WHERE id = 1').get() as Row | undefined;
    return r ? toDetectionConfig(r) : undefined;
  }
  putDetectionConfig(c: DetectionConfig, at: number): void {
    this.prepared(
      `INSERT INTO detection_config (id, data, updated_at) VALUES (1, ?, ?)
       ON CONFLICT (id) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at`,
    ).run(detectionConfigJson(c), at);
  }
}
