import { maskStoreUrl } from '../config/settings.js';
import { dataPaths } from '../data-dir.js';
import type { ModeTightened } from '../file-modes.js';
import { migratePostgresStore, openPostgresStore } from './postgres/postgres-store.js';
import { migrateSqliteStore, openSqliteStore } from './sqlite/sqlite-store.js';
import type { Store } from './store.js';

/** Where the store lives, from the `store` setting: the embedded file in the data directory, or PostgreSQL. */
export type StoreLocation = { kind: 'sqlite'; path: string } | { kind: 'postgres'; url: string };

/** True for `postgres://` and `postgresql://` URLs. */
export function isPostgresUrl(value: string): boolean {
  return /^postgres(ql)?:\/\//i.test(value);
}

/**
 * The store a `store` setting names: a PostgreSQL URL, or `sqlite` for `<data-dir>/writ.db`.
 *
 * @example storeLocation('postgres://writ@db/writ', 'writ-data') // { kind: 'postgres', url: ... }
 */
export function storeLocation(setting: string, dataDir: string): StoreLocation {
  return isPostgresUrl(setting)
    ? { kind: 'postgres', url: setting }
    : { kind: 'sqlite', path: dataPaths(dataDir).database };
}

/** For logs and messages: a PostgreSQL URL with its password (and any secret-looking parameter) masked. */
export function describeStore(location: StoreLocation): string {
  return location.kind === 'sqlite' ? location.path : maskStoreUrl(location.url);
}

export async function openStore(
  location: StoreLocation,
  options: {
    readonly?: boolean;
    onError?: (err: Error) => void;
    /** The embedded store: told of each of its files found readable by others and narrowed to 0600. */
    onModeTightened?: (t: ModeTightened) => void;
  } = {},
): Promise<Store> {
  if (location.kind === 'sqlite')
    return openSqliteStore({
      path: location.path,
      readonly: options.readonly ?? false,
      ...(options.onModeTightened ? { onModeTightened: options.onModeTightened } : {}),
      ...(options.onError ? { onError: options.onError } : {}),
    });
  return openPostgresStore(location.url, {
    readonly: options.readonly ?? false,
    ...(options.onError ? { onError: options.onError } : {}),
  });
}

/** Applies pending schema migrations; returns a line for each one applied. */
export async function migrateStore(
  location: StoreLocation,
  onModeTightened?: (t: ModeTightened) => void,
): Promise<string[]> {
  if (location.kind === 'sqlite')
    return migrateSqliteStore(location.path, onModeTightened).map((v) => `migration ${v}`);
  return (await migratePostgresStore(location.url)).map((m) => `migration ${m.version}: ${m.name}`);
}
