import type { Registry } from '../registry/registry.js';
import type { WorkloadState } from '../registry/workload.js';

/** A workload whose owner can no longer answer for it: listed for reassignment. */
export interface OrphanedWorkload {
  id: string;
  owner: string;
  environment: string;
  state: WorkloadState;
  /** Why the owner cannot own: `person_inactive`, `person_deleted` or `team_without_active_member`. */
  reason: 'person_inactive' | 'person_deleted' | 'team_without_active_member';
  /** Since when (ms), when known: the grace period of the quarantine rule counts from here. */
  since?: number;
}

/**
 * Workloads whose owner is a known person who is no longer active, or a known team with no active
 * member left. An owner no source knows is not orphaned but unresolved: whether that is allowed is
 * the governance rule's call (`PeopleDirectory.owner`).
 */
export function orphanedWorkloads(registry: Pick<Registry, 'workloads' | 'people'>): OrphanedWorkload[] {
  const people = registry.people();
  const out: OrphanedWorkload[] = [];
  for (const w of registry.workloads()) {
    const owner = people.owner(w.owner);
    if (owner.status !== 'inactive') continue;
    out.push({
      id: w.id,
      owner: w.owner,
      environment: w.environment,
      state: w.state,
      reason: owner.reason,
      ...(owner.since !== undefined ? { since: owner.since } : {}),
    });
  }
  return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}
