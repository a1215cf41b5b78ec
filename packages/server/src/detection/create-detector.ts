import { BUILTIN_RULES } from './builtin-rules.js';
import { type DetectionConfig, EMPTY_DETECTION_CONFIG } from './detection-config.js';
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

/** Where a detection config is put in force: the node's detector, with its settings and logger. */
type DetectionContext = Pick<DetectorDeps, 'settings' | 'logger'> & { detection: Detector };

/**
 * Puts a detection config in force on this node: the built-in rules with the configured ones over them,
 * and the networks map. A stored rule that no longer compiles (stored by another version) is left out
 * and logged rather than stopping the node; what `writ apply` accepts compiles.
 */
export function applyDetectionConfig(ctx: DetectionContext, config: DetectionConfig): void {
  const rules: DetectionRule[] = [];
  for (const { source, ...rule } of config.rules) {
    try {
      rules.push(compileRule(rule, source));
    } catch (err) {
      ctx.logger.error(
        { rule: rule.id, source, err: (err as Error).message },
        'a stored detection rule does not compile; it is not in force',
      );
    }
  }
  ctx.detection.setRules(ruleSet(rules));
  try {
    ctx.detection.setNetworks(networkMap(ctx, config.networks));
  } catch (err) {
    ctx.logger.error(
      { err: (err as Error).message },
      'the stored networks do not load; the previous ones stay in force',
    );
  }
}

/** Loads the detection config from the store and puts it in force: at start, and on `config.applied`. */
export async function reloadDetectionConfig(
  ctx: DetectionContext & Pick<DetectorDeps, 'store'>,
): Promise<void> {
  applyDetectionConfig(ctx, (await ctx.store.getDetectionConfig()) ?? EMPTY_DETECTION_CONFIG);
}
