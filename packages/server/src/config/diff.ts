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
    const prev = old.get(name);
    if (!prev) changes.push({ op: 'add', kind, name });
    else {
      const fields = [...new Set([...Object.keys(prev), ...Object.keys(t)])]
        .filter(
          (f) =>
            canonicalJson((prev as Record<string, unknown>)[f]) !==
            canonicalJson((t as Record<string, unknown>)[f]),
        )
        .sort();
      if (fields.length > 0) changes.push({ op: 'change', kind, name, fields });
    }
  }
  for (const name of old.keys()) if (!fresh.has(name)) changes.push({ op: 'remove', kind, name });
  return changes;
}

/** Renders a diff the way `writ apply` prints it. */
export function formatDiff(changes: ConfigChange[]): string {
  if (changes.length === 0) return 'no changes';
  const sign = { add: '+', change: '~', remove: '-' } as const;
  return changes
    .map((c) => `${sign[c.op]} ${c.kind} ${c.name}${c.fields ? ` (${c.fields.join(', ')})` : ''}`)
    .join('\n');
}
