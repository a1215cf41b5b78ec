import { UsageReporter, type Verifier } from '@writ/sdk/verifier';
import { fakeClock } from '../../src/clock.js';
import type { RawDocument } from '../../src/config/config-dir.js';
import type { Finding, FindingQuery } from '../../src/detection/finding.js';
import type { Signal, SignalData } from '../../src/detection/signal.js';
import { classDoc, workloadDoc } from './dpop.js';
import { AUDIENCE, freePort, type Harness, startHarness, type TestKey, testKey } from './harness.js';
import { proxiedVerifier, ready, startTcpProxy, type TcpProxy, workloadClient } from './verifier.js';

/** Test helpers for detection and response: a Writ with resource-server verifiers that report usage. */

/** The resource server's workload: it serves AUDIENCE and reports what its verifiers see. */
export const REPORTS_API = 'spiffe://test.writ/reports/api';

/** One replica of the resource server: a verifier following the stream, and its usage reporter. */
export interface Replica {
  verifier: Verifier;
  usage: UsageReporter;
}

export interface DetectionWorld {
  h: Harness;
  clock: ReturnType<typeof fakeClock>;
  issuer: string;
  /** Ready verifiers of AUDIENCE, each with its own client, stream and usage reporter. */
  replicas: Replica[];
  /** The documents the world added to the harness's, to send again with `applyPolicies`. */
  docs: RawDocument[];
  /** The TCP proxy every replica's event stream goes through. */
  proxy: TcpProxy;
  close(): Promise<void>;
}

/**
 * A listening Writ on a fake clock (started at the real time, so the CLI's proofs are in its window) and
 * `replicas` verifiers of AUDIENCE that follow its event stream and report every use, with the reporter
 * interval a fleet would use (`flushIntervalMs`, default 250 ms). `docs(issuer)` adds workloads and
 * classes. The verifiers' streams go through one TCP proxy (so a test can cut them).
 */
export async function startDetectionWorld(
  o: {
    replicas?: number;
    settings?: Record<string, unknown>;
    docs?: (issuer: string) => RawDocument[];
    flushIntervalMs?: number;
  } = {},
): Promise<DetectionWorld> {
  const clock = fakeClock(Date.now());
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const apiKey: TestKey = testKey();
  const docs = [
    // The resource server's own class: DPoP-bound tokens for the event stream and for usage reports.
    classDoc({
      name: 'reports-api-verifier',
      audiences: [`${issuer}/v1/events`, `${issuer}/v1/usage`],
      scopes: ['events:read'],
      default_scopes: ['events:read'],
    }),
    workloadDoc(REPORTS_API, apiKey, ['reports-api-verifier'], { serves: [AUDIENCE] }),
    ...(o.docs?.(issuer) ?? []),
  ];
  const h = await startHarness({
    clock,
    listen: true,
    settings: { 'listen.port': port, 'events.heartbeat': 1, ...o.settings },
    extraDocs: docs,
  });
  const proxy = await startTcpProxy(port);
  const replicas: Replica[] = [];
  const close = async () => {
    for (const r of replicas) r.verifier.close();
    await Promise.all(replicas.map((r) => r.usage.close()));
    await proxy.close();
    await h.close();
  };
  try {
    for (let i = 0; i < (o.replicas ?? 1); i++) {
      const client = workloadClient(issuer, REPORTS_API, apiKey, { nowMs: clock.now });
      const usage = new UsageReporter({
        issuer,
        client,
        flushIntervalMs: o.flushIntervalMs ?? 250,
        now: clock.now,
      });
      const verifier = proxiedVerifier({
        issuer,
        audience: AUDIENCE,
        client,
        now: clock.now,
        stalenessMs: 120_000,
        usage,
        proxy,
        serverOrigin: issuer,
      });
      replicas.push({ verifier, usage });
    }
    await Promise.all(replicas.map((r) => ready(r.verifier)));
  } catch (err) {
    await close();
    throw err;
  }
  return { h, clock, issuer, replicas, docs, proxy, close };
}

/** Findings through the admin API (newest first), as `writ detections list` reads them. */
export async function findings(h: Harness, q: Partial<FindingQuery> = {}): Promise<Finding[]> {
  const params = new URLSearchParams({ limit: String(q.limit ?? 1000) });
  if (q.state) params.set('state', q.state);
  if (q.workload) params.set('workload', q.workload);
  if (q.rule) params.set('rule', q.rule);
  const r = await h.admin('GET', `/detections/findings?${params}`);
  if (r.status !== 200) throw new Error(`findings: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body['findings'] as Finding[];
}

/** A workload's risk as `GET /admin/v1/workloads/:id` (and `writ workloads show`) gives it. */
export async function riskOf(h: Harness, workload: string): Promise<number> {
  const r = await h.admin('GET', `/workloads/${encodeURIComponent(workload)}`);
  if (r.status !== 200) throw new Error(`workload ${workload}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body['risk'] as number;
}

/** Revocations an automatic response made (`revocation.created` with actor `detector:<rule>`). */
export async function automaticRevocations(h: Harness) {
  return (await h.auditEvents('revocation.created')).filter((e) => e.actor.startsWith('detector:'));
}

/** The value of one series of a Prometheus counter on GET /metrics (0 when the series is absent). */
export async function counterValue(
  h: Harness,
  name: string,
  labels: Record<string, string>,
): Promise<number> {
  const text = (await h.writ.app.inject({ method: 'GET', url: '/metrics' })).body;
  const want = Object.entries(labels);
  for (const line of text.split('\n')) {
    const m = /^(\w+)\{([^}]*)\} (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = new Map([...m[2]!.matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (want.every(([k, v]) => got.get(k) === v) && got.size === want.length) return Number(m[3]);
  }
  return 0;
}

/**
 * A usage signal as `POST /v1/usage` hands one to detection, for tests that feed the detector directly
 * (floods, identities no verifier can report). `network` is derived from `source` by the detector's map.
 */
export function usageSignal(
  h: Harness,
  data: Partial<SignalData['usage']> & Pick<SignalData['usage'], 'sub' | 'jti'>,
  time = h.writ.ctx.clock.now(),
): Signal<'usage'> {
  const source = data.source ?? '198.51.100.7';
  const networks = h.writ.ctx.detection.networks;
  const network = networks.network(source);
  return {
    kind: 'usage',
    time,
    data: {
      tid: '',
      aud: AUDIENCE,
      reporter: REPORTS_API,
      operation: 'GET /reports/:id',
      source,
      network,
      network_environment: networks.environment(network),
      user_agent: 'report-exporter/2.1',
      user_agent_kind: 'tool',
      decision: 'deny',
      reason: 'dpop_bound_as_bearer',
      signal: 'key_missing',
      token_revoked: false,
      ...data,
    },
  };
}
