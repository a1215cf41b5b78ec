import type Database from 'better-sqlite3';

/**
 * The embedded store's statements of one area (detection, governance, people): synchronous, serialized
 * by the store's queue (or its transaction). Each statement is prepared on first use and kept, so a
 * read-only store opened on an older file never needs the area's tables.
 */
export class PreparedStatements {
  protected readonly db: Database.Database;
  readonly #statements = new Map<string, Database.Statement>();

  constructor(db: Database.Database) {
    this.db = db;
  }

  protected prepared(sql: string): Database.Statement {
    let s = this.#statements.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.#statements.set(sql, s);
    }
    return s;
  }
}
