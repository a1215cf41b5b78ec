import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from '../src/store/sqlite/sqlite-store.js';
import type { Store } from '../src/store/store.js';
import { runStoreConformance } from './store/conformance.js';

// Each case gets a fresh file; a peer is a second connection to it, as a second process would open.
runStoreConformance('sqlite', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'writ-store-'));
  const path = join(dir, 'writ.db');
  const stores: Store[] = [openSqliteStore({ path })];
  return {
    store: stores[0]!,
    openPeer: async () => {
      const peer = openSqliteStore({ path });
      stores.push(peer);
      return peer;
    },
    close: async () => {
      for (const s of stores) await s.close().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
});
