import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RawDocument } from '../../src/config/config-dir.js';
import { type Harness, harnessDocuments } from './harness.js';

/** Where each kind of document lives in a config directory. */
const DIRS: Record<Exclude<RawDocument['kind'], 'networks' | 'governance'>, string> = {
  class: 'classes',
  workload: 'workloads',
  operator: 'operators',
  issuer: 'issuers',
  detection: 'detections',
  people: 'people',
  exception: 'exceptions',
  template: 'templates',
};

/**
 * Writes documents into a config directory as `writ apply` reads it: one JSON file each (JSON is YAML)
 * in its kind's folder, named by its position, and a `networks` document as `networks.yaml`.
 */
export function writeConfigDocuments(dir: string, docs: readonly RawDocument[]): void {
  mkdirSync(dir, { recursive: true });
  for (const [i, d] of docs.entries()) {
    if (d.kind === 'networks' || d.kind === 'governance') {
      writeFileSync(join(dir, `${d.kind}.yaml`), `${JSON.stringify(d.doc)}\n`);
      continue;
    }
    mkdirSync(join(dir, DIRS[d.kind]), { recursive: true });
    writeFileSync(join(dir, DIRS[d.kind], `${i}.json`), JSON.stringify(d.doc));
  }
}

/**
 * The harness's own configuration (`harnessDocuments`, and `extra`) as a config directory `config` in
 * the harness's directory, for `writ apply`; returns its path.
 */
export function writeHarnessConfig(
  h: Pick<Harness, 'dir' | 'workloadKey' | 'otherKey' | 'operatorKey'>,
  extra: RawDocument[] = [],
): string {
  const dir = join(h.dir, 'config');
  writeConfigDocuments(dir, harnessDocuments(h, extra));
  return dir;
}

/**
 * The file of config directory `dir` that holds workload `id` (`workloads/N.json`, as
 * writeConfigDocuments names them), from the files there now.
 */
export function workloadFileOf(dir: string): (id: string) => string {
  const files = new Map<string, string>();
  for (const f of readdirSync(join(dir, 'workloads')))
    files.set(
      (JSON.parse(readFileSync(join(dir, 'workloads', f), 'utf8')) as { id: string }).id,
      `workloads/${f}`,
    );
  return (id) => {
    const f = files.get(id);
    if (!f) throw new Error(`no file holds ${id}`);
    return f;
  };
}
