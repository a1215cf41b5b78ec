import type pg from 'pg';
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

type Query = (text: string, values?: unknown[]) => Promise<pg.QueryResult<Row>>;

/**
 * The cluster store's statements for detection: baselines, risk, findings, the pause switch and the
 * applied detection config.
 * `query` runs on the pool, or on the transaction's connection inside one.
 */
export class PostgresDetectionOps {
  readonly #s: string;
  readonly #query: Query;

  constructor(schema: string, query: Query) {
    this.#s = schema;
    this.#query = query;
  }

  async listBaselines(): Promise<StoredBaseline[]> {
    const { rows } = await this.#query(`SELECT * FROM ${this.#s}.detection_baselines ORDER BY workload`);
    return rows.map(toStoredBaseline);
  }
  async putBaselines(rows: StoredBaseline[]): Promise<void> {
    if (rows.length === 0) return;
    // One statement for the batch; the last row of a workload wins (ON CONFLICT may touch a row once).
    const last = [...new Map(rows.map((b) => [b.workload, b])).values()];
    await this.#query(
      `INSERT INTO ${this.#s}.detection_baselines (workload, data, updated_at)
       SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
       ON CONFLICT (workload) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at`,
      [last.map((b) => b.workload), last.map((b) => b.data), last.map((b) => b.updatedAt)],
    );
  }

  async listRisks(): Promise<WorkloadRisk[]> {
    const { rows } = await this.#query(`SELECT * FROM ${this.#s}.workload_risk ORDER BY workload`);
    return rows.map(toWorkloadRisk);
  }
  async putRisk(r: WorkloadRisk): Promise<void> {
    await this.#query(
      `INSERT INTO ${this.#s}.workload_risk (workload, score, at) VALUES ($1, $2, $3)
       ON CONFLICT (workload) DO UPDATE SET score = excluded.score, at = excluded.at`,
      [r.workload, r.score, r.at],
    );
  }

  async addFinding(f: Finding): Promise<void> {
    const values = findingValues(f);
    await this.#query(
      `INSERT INTO ${this.#s}.findings (${FINDING_COLUMNS})
       VALUES (${values.map((_, i) => `$${i + 1}`).join(', ')})`,
      values,
    );
  }
  async getFinding(id: string): Promise<Finding | undefined> {
    const r = (await this.#query(`SELECT * FROM ${this.#s}.findings WHERE id = $1`, [id])).rows[0];
    return r ? toFinding(r) : undefined;
  }
  async listFindings(q: FindingQuery): Promise<Finding[]> {
    const { where, values } = findingsWhere(q, (n) => `$${n}`);
    const { rows } = await this.#query(
      `SELECT * FROM ${this.#s}.findings ${where} ORDER BY created_at DESC, id DESC LIMIT $${values.length + 1}`,
      [...values, findingsPageSize(q.limit)],
    );
    return rows.map(toFinding);
  }
  async setFindingState(
    id: string,
    state: FindingState,
    by: string,
    at: number,
    note: string,
  ): Promise<boolean> {
    const r = await this.#query(
      `UPDATE ${this.#s}.findings SET state = $1, state_by = $2, state_at = $3, note = $4 WHERE id = $5`,
      [state, by, at, note, id],
    );
    return r.rowCount === 1;
  }

  async getDetectionControl(): Promise<DetectionControl | undefined> {
    const r = (await this.#query(`SELECT * FROM ${this.#s}.detection_control WHERE id = 1`)).rows[0];
    return r ? toDetectionControl(r) : undefined;
  }
  async putDetectionControl(c: DetectionControl): Promise<void> {
    await this.#query(
      `INSERT INTO ${this.#s}.detection_control (id, paused, set_by, set_at, reason) VALUES (1, $1, $2, $3, $4)
       ON CONFLICT (id) DO UPDATE SET paused = excluded.paused, set_by = excluded.set_by,
         set_at = excluded.set_at, reason = excluded.reason`,
      [c.paused, c.by, c.at, c.reason],
    );
  }

  async getDetectionConfig(): Promise<DetectionConfig | undefined> {
    const r = (await this.#query(`SELECT data FROM ${this.#s}.detection_config WHERE id = 1`)).rows[0];
    return r ? toDetectionConfig(r) : undefined;
  }
  async putDetectionConfig(c: DetectionConfig, at: number): Promise<void> {
    await this.#query(
      `INSERT INTO ${this.#s}.detection_config (id, data, updated_at) VALUES (1, $1, $2)
       ON CONFLICT (id) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at`,
      [detectionConfigJson(c), at],
    );
  }
}
