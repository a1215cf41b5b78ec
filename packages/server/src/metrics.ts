import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Prometheus metrics, on a registry of their own (several servers can live in one test process). */
export interface Metrics {
  registry: Registry;
  issued: Counter<'class' | 'grant_type'>;
  refusals: Counter<'endpoint' | 'error' | 'reason'>;
  challenges: Counter<'endpoint' | 'challenge'>;
  requestDuration: Histogram<'route' | 'method' | 'status'>;
  issuanceDuration: Histogram<never>;
  revocations: Counter<'kind'>;
  policyDecisions: Counter<'endpoint' | 'action' | 'decision'>;
  clockSkew: Gauge<never>;
  taskSweepLag: Histogram<never>;
  streamsEnded: Counter<'reason'>;
  openStreams: Gauge<never>;
  detections: Counter<'rule' | 'outcome'>;
  detectionWebhook: Counter<'outcome'>;
  vendorProxyRequests: Counter<'route' | 'status' | 'reason'>;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  return {
    registry,
    detections: new Counter({
      name: 'writ_detections_total',
      help: 'Detection rules that fired, by rule and outcome: the response taken, or why none was (observe, learning, paused, budget, protected, failed, dropped; budget_alert counts the critical alerts).',
      labelNames: ['rule', 'outcome'],
      registers: [registry],
    }),
    detectionWebhook: new Counter({
      name: 'writ_detection_webhook_total',
      help: 'Findings sent to detection.webhook_url, by outcome: delivered, failed (network, timeout, an answer other than 2xx), refused (an address the push rules refuse), dropped (the queue was full).',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    vendorProxyRequests: new Counter({
      name: 'writ_proxy_requests_total',
      help: 'Requests to the vendor-key proxy inside writ serve (vendor_proxy.workload) by route, status and reason (refused or failed).',
      labelNames: ['route', 'status', 'reason'],
      registers: [registry],
    }),
    issued: new Counter({
      name: 'writ_tokens_issued_total',
      help: 'Access tokens issued, by class and grant type.',
      labelNames: ['class', 'grant_type'],
      registers: [registry],
    }),
    refusals: new Counter({
      name: 'writ_refusals_total',
      help: 'Refused requests, by endpoint, OAuth error code and reason (docs/errors.md).',
      labelNames: ['endpoint', 'error', 'reason'],
      registers: [registry],
    }),
    challenges: new Counter({
      name: 'writ_challenges_total',
      help: 'Requests answered with what to retry with (use_dpop_nonce: a DPoP nonce), by endpoint; not refusals.',
      labelNames: ['endpoint', 'challenge'],
      registers: [registry],
    }),
    requestDuration: new Histogram({
      name: 'writ_http_request_duration_seconds',
      help: 'HTTP request latency, by route, method and status.',
      labelNames: ['route', 'method', 'status'],
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    issuanceDuration: new Histogram({
      name: 'writ_issuance_duration_seconds',
      help: 'Time to decide, sign, record and audit one token.',
      buckets: [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1],
      registers: [registry],
    }),
    revocations: new Counter({
      name: 'writ_revocations_total',
      help: 'Revocations stored, by predicate kind.',
      labelNames: ['kind'],
      registers: [registry],
    }),
    policyDecisions: new Counter({
      name: 'writ_policy_decisions_total',
      help: 'Policy decisions, by endpoint, action and decision.',
      labelNames: ['endpoint', 'action', 'decision'],
      registers: [registry],
    }),
    clockSkew: new Gauge({
      name: 'writ_clock_skew_seconds',
      help: "This node's clock minus the database server's, as last measured (PostgreSQL store only).",
      registers: [registry],
    }),
    taskSweepLag: new Histogram({
      name: 'writ_task_sweep_lag_seconds',
      help: 'Time from a task falling due (its deadline or the end of its lease) to the server closing it.',
      buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
      registers: [registry],
    }),
    streamsEnded: new Counter({
      name: 'writ_event_streams_ended_total',
      help: 'Event streams the server ended, by reason (slow_reader: the client stopped taking bytes).',
      labelNames: ['reason'],
      registers: [registry],
    }),
    openStreams: new Gauge({
      name: 'writ_event_streams_open',
      help: 'Event streams open on this node.',
      registers: [registry],
    }),
  };
}
