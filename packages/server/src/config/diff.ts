import { canonicalJson } from '../jose/json.js';
import type { ConfigBundle } from './config-dir.js';

export interface ConfigChange {
  op: 'add' | 'change' | 'remove';
  /** `detection` a rule of `detections/` (by id); `network` a range of `networks.yaml` (by cidr). */
  kind:
    | 'class'
    | 'workload'
    | 'operator'
    | 'issuer'
    | 'detection'
    | 'network'
    | 'exception'
    | 'person'
    | 'team'
    | 'template';
  name: string;
  /** Top-level fields that differ, for `change`. */
  fields?: string[];
}

/** What applying `next` over `current` would change; empty when they are the same. */
export function diffConfig(current: ConfigBundle, next: ConfigBundle): ConfigChange[] {
  return [
    ...diffList('class', current.classes, next.classes, (c) => c.name),
    ...diffList('workload', current.workloads, next.workloads, (w) => w.id),
    ...diffList('operator', current.operators, next.operators, (o) => o.name),
    ...diffList('issuer', current.issuers ?? [], next.issuers ?? [], (i) => i.name),
    ...diffList('detection', current.detections, next.detections, (r) => r.id),
    ...diffList('network', current.networks, next.networks, (n) => n.cidr),
    ...diffList('exception', current.exceptions ?? [], next.exceptions ?? [], (e) => e.id),
    ...diffList('person', current.people ?? [], next.people ?? [], (p) => p.id),
    ...diffList('team', current.teams ?? [], next.teams ?? [], (t) => t.id),
    ...diffList('template', current.templates ?? [], next.templates ?? [], (t) => t.id),
  ];
}

function diffList<T extends object>(
  kind: ConfigChange['kind'],
  before: T[],
  after: T[],
  key: (t: T) => string,
): ConfigChange[] {
  const changes: ConfigChange[] = [];
  const old = new Map(before.map((t) => [key(t), t]));
  const fresh = new Map(after.map((t) => [key(t), t]));
  for (const [name, t] of fresh) {
    const change = diffEntry(kind, name, old.get(name), t);
    if (change) changes.push(change);
  }
  for (const name of old.keys()) if (!fresh.has(name)) changes.push({ op: 'remove', kind, name });
  return changes;
}

/** How one entry changed (`before` or `after` undefined: it is new, or gone); undefined if it did not. */
export function diffEntry<T extends object>(
  kind: ConfigChange['kind'],
  name: string,
  before: T | undefined,
  after: T | undefined,
): ConfigChange | undefined {
  if (!before && !after) return undefined;
  if (!before) return { op: 'add', kind, name };
  if (!after) return { op: 'remove', kind, name };
  const fields = [...new Set([...Object.keys(before), ...Object.keys(after)])]
    .filter(
      (f) =>
        canonicalJson((before as Record<string, unknown>)[f]) !==
        canonicalJson((after as Record<string, unknown>)[f]),
    )
    .sort();
  return fields.length > 0 ? { op: 'change', kind, name, fields } : undefined;
}

/** Renders a diff the way `writ apply` prints it. */
export function formatDiff(changes: ConfigChange[]): string {
  if (changes.length === 0) return 'no changes';
  const sign = { add: '+', change: '~', remove: '-' } as const;
  return changes
    .map((c) => `${sign[c.op]} ${c.kind} ${c.name}${c.fields ? ` (${c.fields.join(', ')})` : ''}`)
    .join('\n');
}
