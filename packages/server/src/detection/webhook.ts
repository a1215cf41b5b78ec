import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import { seconds } from '../clock.js';
import { OAuthError } from '../errors.js';
import type { KeyManager } from '../keys/key-manager.js';
import type { Metrics } from '../metrics.js';
import { type PushOutcome, postToTarget } from '../ssf/push.js';
import { checkTargetAddresses, type PushContext, type TargetNames } from '../ssf/push-target.js';
import type { Finding } from './finding.js';

/** The `typ` of a finding's JWS: no access-token verifier takes it (they ask for `at+jwt`). */
export const FINDING_JWT_TYP = 'writ-finding+jwt';
/** RFC 7515 §9.2.1: a JWS in compact serialization. */
export const FINDING_MEDIA_TYPE = 'application/jose';

/** Findings waiting to be sent; past it the oldest is dropped (and counted). */
const QUEUE_LIMIT = 1000;

/** What of the server's context the webhook needs: the push rules, its signing keys, time, logs and counts. */
type WebhookContext = PushContext & { keys: KeyManager; clock: Clock; logger: Logger; metrics: Metrics };

const NAMES: TargetNames = { field: 'detection.webhook_url', what: 'webhook targets' };

/** What became of one delivery, for the log and the metric. */
export type WebhookOutcome = 'delivered' | 'failed' | 'refused' | 'dropped';

/**
 * The claims of one finding's JWS: who sent it (`iss`), to whom (`aud`: the webhook's origin, so a relay
 * can refuse a finding meant for another), when, and the finding as an operator pages on it: rule,
 * severity, workload, the token and task ids, the source address, the response and what was done, the
 * risk after it; for a leak, where the token was found, by whom, and the workload's owner. No
 * evidence beyond these (what a rule read stays in the admin API), no secrets, no tokens (a leak's
 * fingerprint only): a chat channel is not where those belong.
 */
export function findingClaims(
  f: Finding,
  o: { issuer: string; audience: string; now: number },
): Record<string, unknown> {
  const trigger = f.evidence.signals.at(-1);
  return {
    iss: o.issuer,
    aud: o.audience,
    iat: seconds(o.now),
    jti: f.id,
    finding: {
      id: f.id,
      rule: f.rule,
      severity: f.severity,
      mode: f.mode,
      ...(f.workload !== '' ? { workload: f.workload } : {}),
      // A refusal names its client only as claimed: said so, never as the workload.
      ...(trigger?.kind === 'token.refused' ? { claimed_client_id: trigger.data.client_id } : {}),
      ...(f.jti ? { jti: f.jti } : {}),
      ...(f.tid ? { tid: f.tid } : {}),
      ...(trigger ? { signal: trigger.kind } : {}),
      ...(f.evidence.source !== undefined ? { source: f.evidence.source } : {}),
      // A leak says where the token was found and whose it is, so the relay can tell the owner.
      ...(f.rule === 'leak' && f.evidence.read?.['leak'] !== undefined
        ? { leak: f.evidence.read['leak'] }
        : {}),
      response: f.response,
      outcome: f.outcome,
      risk: f.risk,
      created_at: seconds(f.createdAt),
    },
  };
}

/** One message waiting: its id (the JWS `jti`, and what logs name) and its claims at delivery time. */
interface Delivery {
  id: string;
  claims(o: { issuer: string; audience: string; now: number }): Record<string, unknown>;
}

/**
 * The optional findings webhook (`detection.webhook_url`): each finding POSTed as a compact JWS signed
 * by the server's key (`application/jose`), for chat or paging relays. Off the detection path: `send`
 * only queues; deliveries go one at a time, each bounded by `ssf.push_timeout` (resolving, then
 * sending), and are not retried: a finding stays in the store and the admin API whatever became of
 * its delivery. The URL's origin was checked against `detection.webhook_origins` when the settings
 * were read; every address its host resolves to is judged before each delivery as push endpoints'
 * are (`checkTargetAddresses`), and the connection goes to the address judged.
 */
export class FindingWebhook {
  readonly #ctx: WebhookContext;
  readonly #url: URL;
  readonly #queue: Delivery[] = [];
  #sending: Promise<void> | undefined;
  #closed = false;

  constructor(ctx: WebhookContext, url: string) {
    this.#ctx = ctx;
    this.#url = new URL(url);
  }

  /** Queues `f` for delivery; never waits and never throws. */
  send(f: Finding): void {
    this.#enqueue({ id: f.id, claims: (o) => findingClaims(f, o) });
  }

  /**
   * Queues a governance alert (an exception about to expire, say) for the same relay, signed the same
   * way: `jti` is `id`, and `body` sits beside `iss`, `aud` and `iat`. Never waits and never throws.
   */
  sendAlert(id: string, body: Record<string, unknown>): void {
    this.#enqueue({
      id,
      claims: (o) => ({ iss: o.issuer, aud: o.audience, iat: seconds(o.now), jti: id, ...body }),
    });
  }

  #enqueue(d: Delivery): void {
    if (this.#closed) return;
    if (this.#queue.length >= QUEUE_LIMIT) {
      const dropped = this.#queue.shift()!;
      this.#count('dropped');
      this.#ctx.logger.warn(
        { finding: dropped.id, queued: QUEUE_LIMIT },
        'detection webhook: queue full, oldest finding not sent',
      );
    }
    this.#queue.push(d);
    this.#sending ??= this.#drain().finally(() => {
      this.#sending = undefined;
    });
  }

  /** Waits until every finding queued so far was delivered or given up (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.#sending) await this.#sending;
  }

  /** Stops taking findings and waits for the delivery under way (each is bounded in time). */
  async close(): Promise<void> {
    this.#closed = true;
    this.#queue.length = 0;
    await this.settled();
  }

  async #drain(): Promise<void> {
    for (let f = this.#queue.shift(); f; f = this.#queue.shift()) {
      try {
        await this.#deliver(f);
      } catch (err) {
        this.#count('failed');
        this.#ctx.logger.error(
          { finding: f.id, err: (err as Error).message },
          'detection webhook: delivery failed',
        );
      }
    }
  }

  async #deliver(f: Delivery): Promise<void> {
    const ctx = this.#ctx;
    const origin = this.#url.origin;
    let outcome: PushOutcome;
    try {
      const target = await checkTargetAddresses(ctx, this.#url, NAMES);
      const { jws } = ctx.keys.signJwt(
        FINDING_JWT_TYP,
        f.claims({ issuer: ctx.settings.issuer, audience: origin, now: ctx.clock.now() }),
      );
      outcome = await postToTarget(target, jws, {
        contentType: FINDING_MEDIA_TYPE,
        authorization: undefined,
        timeoutMs: ctx.settings.ssf.pushTimeout * 1000,
      });
    } catch (err) {
      if (!(err instanceof OAuthError)) throw err;
      // The logged reason names the origin and the address, never the URL (its path may be a secret).
      this.#count('refused');
      ctx.logger.error(
        { finding: f.id, origin, reason: err.detail['reason'], address: err.detail['address'] },
        `detection webhook: not sent: ${err.message}`,
      );
      return;
    }
    if (outcome.kind === 'delivered') {
      this.#count('delivered');
      return;
    }
    this.#count('failed');
    ctx.logger.error(
      {
        finding: f.id,
        origin,
        reason: outcome.kind === 'rejected' ? `HTTP 400 ${outcome.err}` : outcome.reason,
      },
      'detection webhook: delivery failed',
    );
  }

  #count(outcome: WebhookOutcome): void {
    this.#ctx.metrics.detectionWebhook.inc({ outcome });
  }
}
