import { describeStore, migrateStore, type StoreLocation } from '../../store/open-store.js';

/** `writ migrate`: brings the store's schema up to this build; safe to run from several nodes at once. */
export async function migrate(location: StoreLocation): Promise<string> {
  const applied = await migrateStore(location);
  const where = describeStore(location);
  return applied.length
    ? [`applied to ${where}:`, ...applied.map((line) => `  ${line}`)].join('\n')
    : `${where}: schema is up to date, nothing to apply`;
}
