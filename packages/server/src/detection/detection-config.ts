import type { z } from 'zod';
import type { NetworkEnvironment } from './networks.js';
import type { detectionRuleSchema } from './rule.js';

/**
 * The detection part of the configuration: the rules of `config/detections/*.yaml` and the ranges of
 * `config/networks.yaml`, as `writ apply` validated them. The store keeps it as one document, so every
 * node loads the same rules and networks at start and again when the event log says a config was applied.
 */
export interface DetectionConfig {
  rules: ConfiguredRule[];
  networks: NetworkEnvironment[];
}

/** A rule as configured: its document, validated (defaults filled in), and the file that holds it. */
export type ConfiguredRule = z.output<typeof detectionRuleSchema> & {
  /** The file relative to the config directory, e.g. `detections/replay.yaml`. */
  source: string;
};

export const EMPTY_DETECTION_CONFIG: DetectionConfig = { rules: [], networks: [] };
