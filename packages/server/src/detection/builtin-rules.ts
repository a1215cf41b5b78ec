import type { DetectionRuleInput } from './rule.js';

/**
 * The rules Writ ships, each tested on its scenario and on a benign neighbour of it, in both modes
 * (test/detection-rules.test.ts, test/detection-rules-signals.test.ts). A file in `config/detections/`
 * overrides one by giving its `id` (a whole rule), or turns it off with `enabled: false`.
 * docs/detection.md lists them for people.
 */
export const BUILTIN_RULES: readonly DetectionRuleInput[] = [
  {
    id: 'token-two-networks',
    description:
      'One token used from two source networks within the replay window: a copy is being replayed elsewhere.',
    signal: 'usage',
    condition: 'token.networks > 1',
    severity: 'high',
    response: 'revoke_token',
    mode: 'enforce',
    cooldown: '1m',
  },
  {
    id: 'bound-token-without-key',
    description:
      'A DPoP- or certificate-bound token presented without its key, or with another key: the token was taken without its key.',
    signal: 'usage',
    condition: 'event.signal == "key_missing" || event.signal == "key_mismatch"',
    severity: 'critical',
    response: 'revoke_token',
    mode: 'enforce',
    cooldown: '1m',
  },
  {
    id: 'revoked-token-used',
    description:
      'A revoked token, or a token of a closed task, presented again: someone kept it after it should have gone.',
    signal: 'usage',
    condition: 'event.signal == "revoked" || token.revoked',
    severity: 'high',
    response: 'raise_risk',
    mode: 'enforce',
    cooldown: '10m',
  },
  {
    id: 'dpop-proof-replay',
    description: 'A DPoP proof presented a second time: a captured request is being replayed.',
    signal: 'usage',
    condition: 'event.signal == "dpop_replay"',
    severity: 'high',
    response: 'revoke_token',
    mode: 'enforce',
    cooldown: '1m',
  },
  {
    id: 'issuance-rate-spike',
    description: "Tokens issued at ten times the workload's usual rate, and at least 30 a minute.",
    signal: 'token.issued',
    condition: 'baseline.issue_rate >= 30 && baseline.issue_rate > 10 * baseline.issue_rate_usual',
    severity: 'medium',
    response: 'raise_risk',
    mode: 'enforce',
    cooldown: '10m',
  },
  {
    id: 'invalid-client-burst',
    description:
      'Twenty or more invalid_client refusals in a minute for one client id: someone is trying keys. The client id is only claimed, so this rule alerts and never acts.',
    signal: 'token.refused',
    condition: 'workload.refusals >= 20',
    severity: 'medium',
    response: 'alert',
    mode: 'enforce',
    cooldown: '10m',
  },
  {
    id: 'network-of-other-environment',
    description:
      "A token used from a network that networks.yaml maps to another environment than the workload's.",
    signal: 'usage',
    condition:
      'event.decision == "allow" && event.network_environment != "" && workload.environment != "" && event.network_environment != workload.environment',
    severity: 'high',
    response: 'raise_risk',
    mode: 'enforce',
    cooldown: '10m',
  },
  {
    id: 'new-audience-or-operation',
    description: 'First use of an API or an operation the workload never used before: drift, worth a look.',
    signal: 'usage',
    condition: 'event.decision == "allow" && (!baseline.audience_known || !baseline.operation_known)',
    severity: 'low',
    response: 'alert',
    mode: 'enforce',
    cooldown: '1h',
  },
  {
    id: 'outside-usual-hours',
    description:
      'A use at an hour of the day (with the hours beside it) that saw less than 0.2% of the workload’s uses so far.',
    signal: 'usage',
    condition: 'event.decision == "allow" && baseline.hour_share < 0.002',
    severity: 'low',
    response: 'alert',
    mode: 'enforce',
    cooldown: '1h',
  },
  {
    id: 'many-hosts',
    description:
      'One workload identity presented by at least 20 distinct hosts within the hour, over three and a half times its usual number: the identity is shared or copied (OWASP NHI9).',
    signal: 'usage',
    // Not three: a rolling update replaces every pod, so for the hour after it the window counts the old
    // pods and the new ones, three times the usual when the deployment doubles them, a little more with
    // the pods replaced meanwhile (a benign week raised this at three: test/detection-benign-week.test.ts).
    condition: 'baseline.hosts >= 20 && baseline.hosts > 3.5 * baseline.hosts_usual',
    severity: 'high',
    response: 'raise_risk',
    mode: 'enforce',
    cooldown: '1h',
  },
  {
    id: 'human-user-agent',
    description:
      'A workload token used from a browser or an API client people drive by hand (Postman, Insomnia…): a person is using a machine identity (OWASP NHI10). Command-line tools (curl, wget) are `cli`, which scripts and CI jobs use too, so this rule leaves them alone.',
    signal: 'usage',
    condition: 'event.user_agent_kind == "browser" || event.user_agent_kind == "interactive"',
    severity: 'medium',
    response: 'raise_risk',
    mode: 'enforce',
    cooldown: '1h',
  },
  {
    id: 'federation-token-replay',
    description: 'A CI or platform token presented to Writ a second time: a copy of it is being replayed.',
    signal: 'federation.replay',
    condition: 'true',
    severity: 'high',
    response: 'raise_risk',
    mode: 'enforce',
    cooldown: '10m',
  },
];
