import { readConfigDir, validateConfig } from '../../config/config-dir.js';
import type { ConfigChange } from '../../config/diff.js';
import type { AdminClient } from '../client.js';

/** `writ apply DIR`: validates locally (file and field named on error), then applies on the server and prints the diff. */
export async function apply(client: AdminClient, dir: string, dryRun: boolean): Promise<string> {
  const raw = readConfigDir(dir);
  validateConfig(raw.documents);
  const res = await client.post<{ applied: boolean; changes: ConfigChange[]; diff: string }>('/config', {
    documents: raw.documents,
    dry_run: dryRun,
  });
  const note = raw.settings
    ? '\n(settings.yaml is read by `writ serve` at start; restart to change settings)'
    : '';
  if (res.changes.length === 0) return `no changes${note}`;
  return `${res.diff}\n${dryRun ? `${res.changes.length} change(s) not applied (dry run)` : `applied ${res.changes.length} change(s)`}${note}`;
}
