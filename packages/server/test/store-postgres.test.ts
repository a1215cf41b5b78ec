import { randomBytes } from 'node:crypto';
import { describe } from 'node:test';
import pg from 'pg';
import { openPostgresStore } from '../src/store/postgres/postgres-store.js';
import type { Store } from '../src/store/store.js';
import { runStoreConformance } from './store/conformance.js';

const url = process.env['WRIT_TEST_POSTGRES_URL'];

/** Drops a test schema and everything in it. */
export async function dropSchema(databaseUrl: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await client.end();
  }
}

if (url === undefined || url === '') {
  console.log(
    'store-postgres: skipped: WRIT_TEST_POSTGRES_URL is not set (CI sets it to a throwaway database)',
  );
  describe('store conformance: postgres', { skip: 'WRIT_TEST_POSTGRES_URL is not set' }, () => {});
} else {
  // Each case gets a fresh schema, dropped at the end; a peer is a second pool, as a second node has.
  runStoreConformance('postgres', async () => {
    const schema = `writ_test_${randomBytes(6).toString('hex')}`;
    const stores: Store[] = [await openPostgresStore(url, { schema })];
    return {
      store: stores[0]!,
      openPeer: async () => {
        const peer = await openPostgresStore(url, { schema });
        stores.push(peer);
        return peer;
      },
      close: async () => {
        for (const s of stores) await s.close().catch(() => undefined);
        await dropSchema(url, schema);
      },
    };
  });
}
