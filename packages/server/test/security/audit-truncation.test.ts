import assert from 'node:assert/strict';
import { copyFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { readAuditAnchor } from '../../src/audit/anchor.js';
import { verifyAuditChain } from '../../src/audit/verify.js';
import { execWrit } from '../helpers/cli.js';
import { type Harness, startHarness, TEST_STORE } from '../helpers/harness.js';

// Someone with write access to the database (not to the data directory) cuts the newest audit events,
// and their checkpoints with them, so that `writ audit verify` alone finds a clean, shorter chain.

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** The store's head as the attacker's own connection sees it (0: empty). */
async function storeHead(h: Harness): Promise<number> {
  const [r] = await h.attackerSql('SELECT max(seq) AS seq FROM audit_events');
  return Number(r?.['seq'] ?? 0);
}

/** Deletes events after `keep` and every checkpoint of them, keeping a copy to put back. */
async function cutTail(h: Harness, keep: number): Promise<void> {
  await h.attackerSql(
    `CREATE TABLE cut_events AS SELECT * FROM audit_events WHERE seq > ${keep};
     CREATE TABLE cut_checkpoints AS SELECT * FROM audit_checkpoints WHERE seq > ${keep};
     DELETE FROM audit_events WHERE seq > ${keep};
     DELETE FROM audit_checkpoints WHERE seq > ${keep}`,
  );
}

/** Puts back what `cutTail` took (the store restored from a backup). */
async function restoreTail(h: Harness): Promise<void> {
  await h.attackerSql(
    `INSERT INTO audit_events SELECT * FROM cut_events;
     INSERT INTO audit_checkpoints SELECT * FROM cut_checkpoints;
     DROP TABLE cut_events;
     DROP TABLE cut_checkpoints`,
  );
}

async function readyz(h: Harness): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await h.writ.app.inject({ method: 'GET', url: '/readyz' });
  return { status: r.statusCode, body: JSON.parse(r.body) as Record<string, unknown> };
}

describe('audit log truncation: a cut tail is never continued', () => {
  let h: Harness;
  beforeEach(async () => {
    h = await startHarness();
    for (let i = 0; i < 4; i++) assert.equal((await h.requestToken()).status, 200);
  });
  afterEach(() => h.close());

  it('deleting the newest events while the server runs: no token is issued, /readyz names the cut, no number is reused', async () => {
    await h.writ.ctx.audit.checkpoint();
    assert.equal((await h.requestToken()).status, 200);
    const head = await storeHead(h);
    const tokens = await h.countRows('tokens');
    assert.equal((await readyz(h)).status, 200);
    const anchorBefore = readAuditAnchor(join(h.dir, 'audit-anchor.json'));

    await cutTail(h, head - 3);

    const r = await h.requestToken();
    assert.equal(r.status, 503, JSON.stringify(r.body));
    assert.equal(r.body['error'], 'temporarily_unavailable');
    assert.equal(r.body['access_token'], undefined, 'no audit, no token');
    assert.doesNotMatch(JSON.stringify(r.body), /truncat|seq/i, 'the client learns nothing of the store');
    assert.equal(await h.countRows('tokens'), tokens, 'no token recorded');
    assert.equal(await storeHead(h), head - 3, 'nothing appended: numbers after the cut are not reused');

    const ready = await readyz(h);
    assert.equal(ready.status, 503);
    assert.equal(ready.body['status'], 'unavailable');
    assert.match(
      String(ready.body['reason']),
      new RegExp(
        `truncated: event ${head} .* store ends at event ${head - 3} \\(events ${head - 2}\\.\\.${head} deleted\\)`,
      ),
    );

    // It stays refused: a refusal that must be audited, a checkpoint, another request.
    const bad = await h.requestToken({ resource: 'https://nowhere.test' });
    assert.equal(bad.status, 503, 'a refusal that cannot be audited is a 503');
    await h.writ.ctx.audit.checkpoint();
    assert.equal((await h.requestToken()).status, 503);
    assert.equal(await storeHead(h), head - 3);
    assert.ok(
      (await h.store.listCheckpoints()).every((c) => c.seq <= head - 3),
      'no checkpoint blesses the cut',
    );
    assert.deepEqual(
      readAuditAnchor(join(h.dir, 'audit-anchor.json')),
      anchorBefore,
      'the anchor is not moved back to the cut head',
    );
  });

  it('rewriting the newest event while the server runs is refused the same way', async () => {
    const head = await storeHead(h);
    await h.attackerSql(`UPDATE audit_events SET hash = '${'f'.repeat(64)}' WHERE seq = ${head}`);
    const r = await h.requestToken();
    assert.equal(r.status, 503, JSON.stringify(r.body));
    assert.equal(await storeHead(h), head);
    assert.match(String((await readyz(h)).body['reason']), new RegExp(`rewritten: event ${head} `));
  });

  it('deleting the newest events and their checkpoints while stopped: the restart refuses and names them; restored, it starts and continues', async () => {
    await h.restart(); // a clean stop signs a last checkpoint over the head and writes the anchor file
    const head = await storeHead(h);
    assert.equal(readAuditAnchor(join(h.dir, 'audit-anchor.json'))!.seq, head);
    await h.writ.close();

    await cutTail(h, head - 2);
    await assert.rejects(
      h.restart(),
      new RegExp(
        `audit log check at start failed: .*the anchor file holds event ${head} but the store ends at event ${head - 2} \\(events ${head - 1}\\.\\.${head} deleted\\)`,
      ),
    );
    assert.equal(await storeHead(h), head - 2, 'the refused start appended nothing');

    await restoreTail(h);
    await h.restart();
    assert.equal((await readyz(h)).status, 200);
    assert.equal((await h.requestToken()).status, 200);
    const next = (await h.auditEvents('token.issued')).at(-1)!;
    assert.ok(next.seq > head, `continues after ${head}: ${next.seq}`);
    assert.equal((await verifyAuditChain(h.store)).ok, true);
  });

  it('an edited checkpointed event is refused at start', async () => {
    await h.restart();
    const head = await storeHead(h);
    await h.writ.close();
    // The checkpointed event itself, its stored hash left as it was.
    await h.attackerSql(`UPDATE audit_events SET actor = 'someone-else' WHERE seq = ${head}`);
    await assert.rejects(
      h.restart(),
      new RegExp(`audit log check at start failed: .*event ${head}: content does not match its hash`),
    );
  });

  it('the anchor file is the owner’s alone (0600)', { skip: process.platform === 'win32' }, async () => {
    await h.writ.ctx.audit.checkpoint();
    assert.equal(statSync(join(h.dir, 'audit-anchor.json')).mode & 0o777, 0o600);
  });

  it('the library verifier given the anchor names the cut range; without it the shorter chain looks intact', async () => {
    await h.writ.ctx.audit.checkpoint();
    const head = await storeHead(h);
    const anchor = readAuditAnchor(join(h.dir, 'audit-anchor.json'))!;
    assert.equal(anchor.seq, head);
    await cutTail(h, head - 2);
    const blind = await verifyAuditChain(h.store);
    assert.equal(blind.ok, true, 'the attack: the store alone verifies');
    const r = await verifyAuditChain(h.store, anchor);
    assert.equal(r.ok, false);
    assert.equal(r.firstBad?.seq, head - 1);
    assert.match(r.firstBad!.reason, new RegExp(`events ${head - 1}\\.\\.${head} deleted`));
  });
});

describe('`writ audit verify --anchor`', {
  skip: TEST_STORE === 'postgres' ? 'runs the CLI on the SQLite data directory' : false,
}, () => {
  let h: Harness;
  beforeEach(async () => {
    h = await startHarness();
    for (let i = 0; i < 3; i++) assert.equal((await h.requestToken()).status, 200);
  });
  afterEach(() => h.close());

  const cli = (...args: string[]) =>
    execWrit(MAIN, ['--data-dir', h.dir, 'audit', 'verify', ...args], 20_000);

  it('names the deleted sequence numbers against an anchor copied before the cut', async () => {
    await h.writ.close();
    const head = await storeHead(h);
    // The copy a verifier keeps elsewhere; the data directory's own file is as good until it is rolled back.
    const held = join(h.dir, 'anchor-copy.json');
    copyFileSync(join(h.dir, 'audit-anchor.json'), held);
    const intact = await cli('--anchor', held);
    assert.equal(intact.code, 0, intact.stdout + intact.stderr);
    assert.match(intact.stdout, new RegExp(`holds the anchor's event ${head}`));

    await cutTail(h, head - 3);
    assert.equal((await cli()).code, 0, 'without the anchor the cut chain verifies');
    const run = await cli('--anchor', held);
    assert.equal(run.code, 2, run.stdout + run.stderr);
    assert.match(
      run.stdout,
      new RegExp(
        `^audit chain BROKEN at event ${head - 2}: log truncated: the anchor holds event ${head} but the store ends at event ${head - 3} \\(events ${head - 2}\\.\\.${head} deleted\\)`,
      ),
    );
  });

  it('refuses an anchor that is not a checkpoint, and one the server did not sign', async () => {
    await h.writ.close();
    const garbage = await cli('--anchor', join(h.dir, 'writ.db'));
    assert.notEqual(garbage.code, 0);
    assert.match(garbage.stderr, /--anchor: .*(not JSON|larger than)/);
    const anchor = readAuditAnchor(join(h.dir, 'audit-anchor.json'))!;
    const forged = join(h.dir, 'forged.json');
    const [hd, payload] = anchor.jws.split('.');
    writeFileSync(
      forged,
      JSON.stringify({ ...anchor, jws: `${hd}.${payload}.${Buffer.alloc(64, 1).toString('base64url')}` }),
    );
    const run = await cli('--anchor', forged);
    assert.equal(run.code, 2, run.stdout + run.stderr);
    assert.match(run.stdout, /anchor at event \d+: signature does not verify/);
  });
});
