import { BUILTIN_RULES } from './builtin-rules.js';
import { Detector, type DetectorDeps } from './detector.js';
import { type NetworkEnvironment, NetworkMap } from './networks.js';
import { compileRule, type DetectionRule } from './rule.js';

/**
 * The rules in force: the built-in set, each replaced by a configured rule of the same id (which may
 * turn it off with `enabled: false`), then the configured rules with new ids.
 */
export function ruleSet(configured: readonly DetectionRule[]): DetectionRule[] {
  const byId = new Map<string, DetectionRule>();
  for (const r of BUILTIN_RULES) {
    const rule = compileRule(r, 'built-in');
    byId.set(rule.id, rule);
  }
  for (const r of configured) byId.set(r.id, r);
  return [...byId.values()];
}

export function networkMap(
  ctx: Pick<DetectorDeps, 'settings'>,
  environments: readonly NetworkEnvironment[],
): NetworkMap {
  const d = ctx.settings.detection;
  return new NetworkMap({ ipv4: d.ipv4Prefix, ipv6: d.ipv6Prefix }, environments);
}

/** The detector with the built-in rules; the configured ones and networks.yaml arrive with the config. */
export function createDetector(deps: DetectorDeps): Detector {
  return new Detector(deps, ruleSet([]), networkMap(deps, []));
}
