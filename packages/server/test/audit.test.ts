import assert from 'node:assert/strict';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import type { AuditDraft } from '../src/audit/audit-event.js';
import { chainHash } from '../src/audit/chain.js';
import { verifyAuditChain } from '../src/audit/verify.js';
import { type CliResult, execWrit } from './helpers/cli.js';
import { type Harness, sqliteFileOnly, startHarness } from './helpers/harness.js';
import { issuanceState } from './helpers/refusals.js';

const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

interface AuditRow {
  seq: number;
  ts: number;
  type: string;
  outcome: string;
  actor: string;
  subject: string | null;
  jti: string | null;
  data: string;
  prev_hash: string;
  hash: string;
}

/** A second connection to the harness database: what someone with write access to the file can do. */
function tamper<T>(h: Harness, fn: (db: Database.Database) => T): T {
  const db = new Database(join(h.dir, 'writ.db'), { fileMustExist: true });
  try {
    return db.transaction(() => fn(db))();
  } finally {
    db.close();
  }
}

const rows = (db: Database.Database): AuditRow[] =>
  db.prepare('SELECT * FROM audit_events ORDER BY seq').all() as AuditRow[];

const insert = (db: Database.Database, r: AuditRow): void => {
  db.prepare(
    `INSERT INTO audit_events (seq, ts, type, outcome, actor, subject, jti, data, prev_hash, hash)
     VALUES (@seq, @ts, @type, @outcome, @actor, @subject, @jti, @data, @prev_hash, @hash)`,
  ).run(r);
};

/** Writes `r` over the row at `seq` (every column but seq). */
const overwrite = (db: Database.Database, seq: number, r: AuditRow): void => {
  db.prepare(
    `UPDATE audit_events SET ts = @ts, type = @type, outcome = @outcome, actor = @actor, subject = @subject,
       jti = @jti, data = @data, prev_hash = @prev_hash, hash = @hash WHERE seq = @target`,
  ).run({ ...r, target: seq });
};

/** `writ audit verify` as an operator runs it: a separate process reading the data directory. */
async function cliVerify(h: Harness): Promise<CliResult> {
  return execWrit(MAIN, ['--data-dir', h.dir, 'audit', 'verify'], 20_000);
}

/**
 * The chain must verify: by the library, and (unless `cli` is false, to keep restores cheap: each run
 * of the CLI is a Node process start) by `writ audit verify` with exit code 0.
 */
async function expectIntact(h: Harness, { cli = true } = {}): Promise<void> {
  const r = await verifyAuditChain(h.store);
  assert.equal(r.ok, true, JSON.stringify(r.firstBad));
  assert.equal(r.firstBad, undefined);
  if (!cli) return;
  const run = await cliVerify(h);
  assert.equal(run.code, 0, run.stdout + run.stderr);
  assert.match(
    run.stdout,
    new RegExp(`^audit chain OK: ${r.events} events, ${r.checkpoints} signed checkpoints`),
  );
  // It says which store it read: the data directory's embedded file, by its absolute path.
  assert.equal(run.stdout.split('\n')[1], `store: embedded SQLite, ${join(h.dir, 'writ.db')}`);
}

/**
 * The chain must be refused with `seq` named as the first bad event: by the library, and (unless `cli`
 * is false) by `writ audit verify` with exit code 2. The CLI is run for one case of each kind of
 * tampering; variants of a kind check the library only, which is what the CLI calls.
 */
async function expectBroken(
  h: Harness,
  seq: number,
  reason: RegExp,
  { cli: runCli = true } = {},
): Promise<void> {
  const r = await verifyAuditChain(h.store);
  assert.equal(r.ok, false, 'the library must refuse the chain');
  assert.equal(r.firstBad?.seq, seq, `first bad event; got ${JSON.stringify(r.firstBad)}`);
  assert.match(r.firstBad!.reason, reason);
  if (!runCli) return;
  const cli = await cliVerify(h);
  assert.equal(cli.code, 2, `writ audit verify exit code; output ${cli.stdout}${cli.stderr}`);
  assert.match(cli.stdout, new RegExp(`^audit chain BROKEN at event ${seq}: `));
}

describe(
  'the audit chain: any edit, deletion or reordering is named by `writ audit verify`',
  sqliteFileOnly,
  () => {
    let h: Harness;
    /** Sequence numbers of the signed checkpoints, oldest first. */
    let checkpoints: number[];
    let head: number;

    beforeEach(async () => {
      h = await startHarness();
      // Events: config applied at start, then issuances and one refusal, with a signed
      // checkpoint in the middle of the chain and one at its head.
      for (let i = 0; i < 4; i++) assert.equal((await h.requestToken()).status, 200);
      await h.writ.ctx.audit.checkpoint();
      assert.equal((await h.requestToken({ resource: 'https://nowhere.test' })).status, 400);
      for (let i = 0; i < 4; i++) assert.equal((await h.requestToken()).status, 200);
      await h.writ.ctx.audit.checkpoint();
      checkpoints = (await h.store.listCheckpoints()).map((c) => c.seq);
      head = (await h.store.auditHead())!.seq;
      assert.equal(checkpoints.length, 2);
      assert.equal(checkpoints[1], head);
      assert.ok(head >= 10, `enough events: ${head}`);
    });
    afterEach(() => h.close());

    it('an untouched chain verifies (library and CLI, exit 0)', async () => {
      await expectIntact(h);
    });

    for (const column of ['ts', 'type', 'outcome', 'actor', 'subject', 'jti', 'data'] as const) {
      it(`editing ${column} of a middle row names that row; restoring it verifies again`, async () => {
        const mid = Math.floor(head / 2) + 1;
        const original = tamper(h, (db) => rows(db).find((r) => r.seq === mid)!);
        const value =
          column === 'ts'
            ? original.ts + 1
            : column === 'data'
              ? JSON.stringify({ ...JSON.parse(original.data), scope: 'reports:export' })
              : `${original[column] ?? ''}-edited`;
        tamper(h, (db) => db.prepare(`UPDATE audit_events SET ${column} = ? WHERE seq = ?`).run(value, mid));
        await expectBroken(h, mid, /content does not match its hash/, { cli: column === 'data' });
        tamper(h, (db) => overwrite(db, mid, original));
        await expectIntact(h, { cli: false });
      });
    }

    it('editing a row and recomputing every hash after it is caught by the signed checkpoint', async () => {
      const mid = 3;
      assert.ok(mid < checkpoints[0]!);
      tamper(h, (db) => {
        const all = rows(db);
        let prev = all.find((r) => r.seq === mid - 1)!.hash;
        for (const r of all.filter((x) => x.seq >= mid)) {
          const draft = {
            ts: r.ts,
            type: r.type,
            outcome: r.outcome,
            actor: r.seq === mid ? 'someone-else' : r.actor,
            data: JSON.parse(r.data),
            ...(r.subject !== null ? { subject: r.subject } : {}),
            ...(r.jti !== null ? { jti: r.jti } : {}),
          } as AuditDraft;
          const hash = chainHash(prev, r.seq, draft);
          db.prepare('UPDATE audit_events SET actor = ?, prev_hash = ?, hash = ? WHERE seq = ?').run(
            draft.actor,
            prev,
            hash,
            r.seq,
          );
          prev = hash;
        }
      });
      await expectBroken(
        h,
        checkpoints[0]!,
        /checkpoint at event \d+: the event it signs has a different hash/,
      );
    });

    it('deleting a middle row names the row after the gap', async () => {
      const mid = Math.floor(head / 2);
      const original = tamper(h, (db) => {
        const r = rows(db).find((x) => x.seq === mid)!;
        db.prepare('DELETE FROM audit_events WHERE seq = ?').run(mid);
        return r;
      });
      await expectBroken(h, mid + 1, new RegExp(`^event ${mid} missing before event ${mid + 1}$`));
      tamper(h, (db) => insert(db, original));
      await expectIntact(h, { cli: false });
    });

    it('deleting a middle row and renumbering the rest names the renumbered row', async () => {
      const mid = Math.floor(head / 2);
      tamper(h, (db) => {
        db.prepare('DELETE FROM audit_events WHERE seq = ?').run(mid);
        // Two steps so the primary key never collides.
        db.prepare('UPDATE audit_events SET seq = -(seq - 1) WHERE seq > ?').run(mid);
        db.prepare('UPDATE audit_events SET seq = -seq WHERE seq < 0').run();
      });
      await expectBroken(h, mid, /prev_hash does not match the previous event/, { cli: false });
    });

    it('swapping the content of two rows names the first of them; swapping back verifies again', async () => {
      const a = 3;
      const b = head - 2;
      const [ra, rb] = tamper(h, (db) => {
        const all = rows(db);
        const x = all.find((r) => r.seq === a)!;
        const y = all.find((r) => r.seq === b)!;
        overwrite(db, a, y);
        overwrite(db, b, x);
        return [x, y];
      });
      await expectBroken(h, a, /prev_hash does not match the previous event/);
      tamper(h, (db) => {
        overwrite(db, a, ra);
        overwrite(db, b, rb);
      });
      await expectIntact(h, { cli: false });
    });

    it('swapping the seq of two adjacent rows names the first of them', async () => {
      const a = Math.floor(head / 2);
      tamper(h, (db) => {
        db.prepare('UPDATE audit_events SET seq = -1 WHERE seq = ?').run(a);
        db.prepare('UPDATE audit_events SET seq = ? WHERE seq = ?').run(a, a + 1);
        db.prepare('UPDATE audit_events SET seq = ? WHERE seq = -1').run(a + 1);
      });
      await expectBroken(h, a, /prev_hash does not match the previous event/, { cli: false });
    });

    it('deleting the last rows is caught by the checkpoint over the head', async () => {
      tamper(h, (db) => db.prepare('DELETE FROM audit_events WHERE seq > ?').run(head - 2));
      await expectBroken(h, head, /checkpoint at event \d+: the event it signs is missing/);
    });

    it('deleting the last rows after a clean shutdown is caught (close signs a last checkpoint)', async () => {
      // Events past the last checkpoint, then a clean stop.
      for (let i = 0; i < 3; i++) assert.equal((await h.requestToken()).status, 200);
      const last = (await h.store.auditHead())!.seq;
      assert.ok(last > head);
      await h.writ.close();
      tamper(h, (db) => db.prepare('DELETE FROM audit_events WHERE seq = ?').run(last));
      const cli = await cliVerify(h);
      assert.equal(cli.code, 2, cli.stdout + cli.stderr);
      assert.match(
        cli.stdout,
        new RegExp(
          `^audit chain BROKEN at event ${last}: checkpoint at event ${last}: the event it signs is missing`,
        ),
      );
    });

    it('a forged checkpoint (not signed by a Writ key) names the checkpoint', async () => {
      tamper(h, (db) => {
        const c = db.prepare('SELECT * FROM audit_checkpoints WHERE seq = ?').get(checkpoints[0]) as {
          jws: string;
        };
        const [hd, payload] = c.jws.split('.');
        db.prepare('UPDATE audit_checkpoints SET jws = ? WHERE seq = ?').run(
          `${hd}.${payload}.${Buffer.alloc(64, 1).toString('base64url')}`,
          checkpoints[0],
        );
      });
      await expectBroken(h, checkpoints[0]!, /checkpoint at event \d+: signature does not verify/, {
        cli: false,
      });
    });
  },
);

describe('fail closed: an unwritable audit store means no token', sqliteFileOnly, () => {
  let h: Harness;
  beforeEach(async () => {
    h = await startHarness();
  });
  afterEach(() => h.close());

  const TRIGGER = 'audit_unwritable';

  it('the token endpoint answers 503 with no token and records nothing; issuance resumes when the store does', async () => {
    assert.equal((await h.requestToken()).status, 200);
    const before = await issuanceState(h);
    tamper(h, (db) =>
      db.exec(
        `CREATE TRIGGER ${TRIGGER} BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'audit store unwritable'); END`,
      ),
    );

    const r = await h.requestToken();
    assert.equal(r.status, 503, JSON.stringify(r.body));
    assert.equal(r.body['error'], 'temporarily_unavailable');
    assert.equal(typeof r.body['error_description'], 'string');
    assert.equal(r.body['access_token'], undefined, 'no token');
    assert.doesNotMatch(JSON.stringify(r.body), /unwritable|sqlite/i, 'no internals in the response');

    const during = await issuanceState(h);
    assert.equal(during.tokenRows, before.tokenRows, 'no token recorded');
    assert.equal(during.issuedEvents, before.issuedEvents);
    assert.equal(during.lastSeq, before.lastSeq, 'nothing appended');

    tamper(h, (db) => db.exec(`DROP TRIGGER ${TRIGGER}`));
    const again = await h.requestToken();
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(typeof again.body['access_token'], 'string');
    const afterwards = await issuanceState(h);
    assert.equal(afterwards.tokenRows, before.tokenRows + 1);
    assert.equal(afterwards.issuedEvents, before.issuedEvents + 1);
    await expectIntact(h, { cli: false });
  });
});
