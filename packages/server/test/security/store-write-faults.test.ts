import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { fakeClock } from '../../src/clock.js';
import { WRITE_PROBE_INTERVAL_MS } from '../../src/http/write-readiness.js';
import { type Harness, type Reply, sqliteFileOnly, startHarness, TEST_STORE } from '../helpers/harness.js';

// The embedded store stops accepting writes while it still answers reads. /readyz must say so (503),
// every request that needs a write gets 503 and the process stays up, and both come back by themselves
// once the store takes writes again.

// A fake clock: /readyz trusts a successful write probe for WRITE_PROBE_INTERVAL_MS, and each check
// below moves past it, so every check probes the store afresh.
const clock = fakeClock();

async function readyz(h: Harness): Promise<{ status: number; body: Record<string, unknown> }> {
  clock.advance(WRITE_PROBE_INTERVAL_MS);
  const r = await h.writ.app.inject({ method: 'GET', url: '/readyz' });
  return { status: r.statusCode, body: JSON.parse(r.body) as Record<string, unknown> };
}

function assertStoreRefusal(r: Reply): void {
  assert.equal(r.status, 503, JSON.stringify(r.body));
  assert.equal(r.body['error'], 'temporarily_unavailable');
  assert.equal(r.body['access_token'], undefined);
}

describe('the embedded store refuses writes: readiness and 503s, no crash, recovery', sqliteFileOnly, () => {
  let h: Harness | undefined;
  after(() => h?.close());

  it('another process holds the write lock: /readyz 503, token requests 503, then both recover', async () => {
    h = await startHarness({ clock });
    assert.equal((await readyz(h)).status, 200);
    assert.equal((await h.requestToken()).status, 200);

    // What `sqlite3 writ.db` with an open write transaction, or a backup tool, does to the server.
    const holder = new Database(join(h.dir, 'writ.db'));
    holder.exec('BEGIN IMMEDIATE');
    try {
      const down = await readyz(h);
      assert.equal(down.status, 503);
      assert.equal(down.body['store'], 'refusing_writes');
      assertStoreRefusal(await h.requestToken());
      // Reads still answer; the node is alive, and says why it is not ready.
      assert.equal((await h.writ.app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
    } finally {
      holder.exec('ROLLBACK');
      holder.close();
    }
    const up = await readyz(h);
    assert.equal(up.status, 200, JSON.stringify(up.body));
    assert.equal((await h.requestToken()).status, 200);
  });
});

/** A tiny tmpfs of our own, or the reason there cannot be one here (not root, no CAP_SYS_ADMIN). */
function tinyTmpfs(): { dir: string; unmount: () => void } | string {
  const dir = mkdtempSync(join(tmpdir(), 'writ-full-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', dir], { stdio: 'pipe' });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    return `cannot mount a tmpfs here (${((err as { stderr?: Buffer }).stderr ?? '').toString().trim() || (err as Error).message}): the disk-full case needs root with CAP_SYS_ADMIN`;
  }
  return {
    dir,
    unmount: () => {
      execFileSync('umount', [dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe('the embedded store on a full disk', sqliteFileOnly, () => {
  const fs = TEST_STORE === 'sqlite' ? tinyTmpfs() : 'the embedded store only';
  let h: Harness | undefined;
  after(async () => {
    await h?.close();
    if (typeof fs !== 'string') fs.unmount();
  });

  it('a write that finds no space: /readyz 503 and token requests 503, no crash; freeing space recovers', {
    skip: typeof fs === 'string' ? fs : false,
  }, async () => {
    if (typeof fs === 'string') return;
    h = await startHarness({ clock, storeDir: fs.dir });
    assert.equal((await readyz(h)).status, 200);
    // Fill what is left of the file system, as a runaway log on the same disk would.
    const filler = join(fs.dir, 'filler');
    try {
      writeFileSync(filler, Buffer.alloc(8 * 1024 * 1024));
    } catch (err) {
      assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
    }
    // Requests go on until the store has no room left for the next commit: bounded by count.
    let refused: Reply | undefined;
    for (let i = 0; i < 2000 && !refused; i++) {
      const r = await h.requestToken();
      if (r.status !== 200) refused = r;
    }
    assert.ok(refused, 'the store never ran out of space');
    assertStoreRefusal(refused);
    const down = await readyz(h);
    assert.equal(down.status, 503, JSON.stringify(down.body));
    assert.equal(down.body['store'], 'refusing_writes');

    rmSync(filler);
    const up = await readyz(h);
    assert.equal(up.status, 200, JSON.stringify(up.body));
    assert.equal((await h.requestToken()).status, 200);
  });
});
