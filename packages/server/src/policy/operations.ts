import { Counter, type Registry } from 'prom-client';
import type { WritContext } from '../context.js';
import type { Store } from '../store/store.js';
import { announceBundle } from './bundle.js';
import {
  type CompiledPolicySet,
  compilePolicies,
  DEFAULT_POLICY_SOURCES,
  type PolicySources,
  type ResourceSpec,
} from './compile.js';
import { PolicyEngine, type PolicyEngineOptions, type PolicyVersion } from './engine.js';

/** Compiles what a config directory holds; `undefined` (no `policies/`) is the built-in set. */
export function compileSources(sources: PolicySources | undefined): CompiledPolicySet {
  return sources ? compilePolicies(sources) : compilePolicies(DEFAULT_POLICY_SOURCES, true);
}

/**
 * Builds the engine at start: `sources` (or the built-in set), the version counter continued from the
 * last `policy.loaded` event, and the resource attributes set through the admin API replayed from the
 * audit log (`resource.updated` events, oldest first).
 */
export async function openPolicyEngine(
  store: Pick<Store, 'queryAudit'>,
  sources: PolicySources | undefined,
  options: Omit<PolicyEngineOptions, 'set' | 'last'> = {},
): Promise<{ engine: PolicyEngine; last: { counter: number; hash: string } | undefined }> {
  const set = compileSources(sources);
  const [lastEvent] = await store.queryAudit({ type: 'policy.loaded', order: 'desc', limit: 1 });
  const last =
    lastEvent && typeof lastEvent.data['counter'] === 'number' && typeof lastEvent.data['hash'] === 'string'
      ? { counter: lastEvent.data['counter'], hash: lastEvent.data['hash'] }
      : undefined;
  const engine = new PolicyEngine({ ...options, set, last });
  let after = 0;
  for (;;) {
    const page = await store.queryAudit({ type: 'resource.updated', afterSeq: after, limit: 1000 });
    for (const e of page) {
      const d = e.data as Partial<ResourceSpec> & { id?: string; cleared?: boolean };
      if (typeof d.id !== 'string') continue;
      engine.setResource(
        d.id,
        d.cleared
          ? undefined
          : {
              id: d.id,
              sensitivity: String(d.sensitivity ?? 'unrated'),
              environment: String(d.environment ?? ''),
              owner: String(d.owner ?? ''),
            },
      );
    }
    if (page.length < 1000) break;
    after = page[page.length - 1]!.seq;
  }
  return { engine, last };
}

function loadedEvent(v: PolicyVersion, set: CompiledPolicySet, previous: string | null, actor: string) {
  return {
    type: 'policy.loaded',
    outcome: 'success' as const,
    actor,
    data: {
      version: v.id,
      counter: v.counter,
      hash: v.hash,
      built_in: v.builtIn,
      policies: v.policies,
      files: [...new Set(set.policies.map((p) => p.file))],
      resources: set.resources.length,
      warnings: set.warnings.slice(0, 20),
      previous,
    },
  };
}

/** Records the version chosen at start when it differs from the last one recorded. */
export async function recordStartupPolicy(
  ctx: WritContext,
  last: { counter: number; hash: string } | undefined,
): Promise<void> {
  const v = ctx.policy.version;
  if (last && last.counter === v.counter && last.hash === v.hash) return;
  const previous = last ? `${last.counter}-${last.hash.slice(0, 12)}` : null;
  await ctx.audit.append(loadedEvent(v, ctx.policy.set, previous, 'startup'));
}

/**
 * Replaces the running policy set (`null`: the built-in set) after compiling and validating it; an
 * invalid set throws `PolicyLoadError` and the running set stays. No audit, no change: the
 * `policy.loaded` event is written before the set takes effect. A set equal to the running one changes
 * nothing.
 */
export async function applyPolicies(
  ctx: WritContext,
  sources: PolicySources | null,
  actor: string,
  dryRun: boolean,
): Promise<{ version: PolicyVersion; changed: boolean; warnings: string[] }> {
  const set = compileSources(sources ?? undefined);
  const previous = ctx.policy.version;
  const next = ctx.policy.preview(set);
  const changed = next.hash !== previous.hash;
  if (dryRun || !changed) return { version: changed ? next : previous, changed, warnings: set.warnings };
  await ctx.audit.append(loadedEvent(next, set, previous.id, actor));
  ctx.policy.load(set);
  ctx.logger.info({ version: next.id, policies: next.policies }, 'policy set loaded');
  await announceBundle(ctx);
  return { version: next, changed, warnings: set.warnings };
}

/** Sets or clears (`spec` undefined) the attributes of one API through the admin API; audited first. */
export async function updateResource(
  ctx: WritContext,
  id: string,
  spec: ResourceSpec | undefined,
  actor: string,
): Promise<ResourceSpec> {
  await ctx.audit.append({
    type: 'resource.updated',
    outcome: 'success',
    actor,
    data: spec ? { ...spec } : { id, cleared: true },
  });
  ctx.policy.setResource(id, spec);
  await announceBundle(ctx);
  return ctx.policy.resource(id);
}

const counters = new WeakMap<Registry, Counter<'endpoint' | 'action' | 'decision'>>();

/** `writ_policy_decisions_total{endpoint, action, decision}` on the server's metrics registry. */
export function countDecision(
  registry: Registry,
  endpoint: 'token' | 'authzen',
  action: string,
  decision: 'allow' | 'deny',
): void {
  let c = counters.get(registry);
  if (!c) {
    c = new Counter({
      name: 'writ_policy_decisions_total',
      help: 'Policy decisions, by endpoint, action and decision.',
      labelNames: ['endpoint', 'action', 'decision'],
      registers: [registry],
    });
    counters.set(registry, c);
  }
  c.inc({ endpoint, action, decision });
}
