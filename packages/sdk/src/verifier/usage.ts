import type { WorkloadClient } from '../client/workload-client.js';
import type { AccessTokenClaims } from '../wire/claims.js';
import { restrictText } from '../wire/plain-text.js';
import { isVerifierSignal, type VerifierSignal } from '../wire/signals.js';
import { isSha256Digest } from './value-digest.js';

/**
 * One use of a token at a resource server, as a verifier reports it. The server takes a record only for
 * a token it issued, for an API the reporting verifier serves (its workload's `serves`), or, for a
 * `wrong_audience` signal, a token whose SHA-256 the record proves it saw; it reads the token's subject
 * and task from its own record of the token.
 */
export interface UsageRecord {
  /**
   * The token's `jti`. A use whose token could not be verified names none and is not reported, except
   * a `stale` signal, which is about the verifier itself.
   */
  jti: string;
  /** Not sent: the server reads the subject from its record of the token. */
  sub?: string | undefined;
  /** Not sent: the server reads the task from its record of the token. */
  tid?: string | undefined;
  /** Method and route, e.g. `GET /reports/:id` (a route pattern, not the raw path: ids multiply). */
  operation: string;
  /** The caller's address. */
  source: string;
  /** Control characters are sent escaped (`\u001b`), and the text cut to 512 characters. */
  userAgent?: string | undefined;
  decision: 'allow' | 'deny';
  /** Why it was denied (`revoked`, `expired`, `dpop_replay`, …). */
  reason?: string | undefined;
  /**
   * The security signal of a denial (`signalOfRefusal(reason)`): such a record is sent at once, not
   * with the next batch. Ignored on an allowed use.
   */
  signal?: VerifierSignal | undefined;
  /**
   * Base64url SHA-256 of the serialized token (the server's fingerprint of it): proof that the verifier
   * saw the token, not only its `jti`. Required for `wrong_audience`, checked whenever sent.
   */
  tokenSha256?: string | undefined;
  /** Milliseconds since the epoch; default now. */
  time?: number;
}

/** What a request tells a verifier beyond the token: where the use came from and what it called. */
export interface UseContext {
  /** Method and route; default `METHOD /path` of the request URL. */
  operation?: string;
  source?: string;
  userAgent?: string;
  /**
   * The caller's own checks on the verified claims (scopes, say), run before the use is recorded so the
   * report carries the final decision; throw a `RequestRefusal` to deny.
   */
  check?: (claims: AccessTokenClaims) => void;
}

export interface UsageReporterOptions {
  /** The Writ server's issuer URL; reports go to `<issuer>/v1/usage`. */
  issuer: string;
  /** The verifier's own workload client: reports are authenticated with its DPoP-bound token. */
  client: Pick<WorkloadClient, 'fetch'>;
  /** Records held while waiting to be sent; when full the oldest is dropped (and counted). Default 10,000. */
  maxBuffer?: number;
  /** Records per report. Default 500 (the server accepts up to `usage.batch_records`). */
  batchSize?: number;
  /**
   * A report is sent this often while records wait (ms), at least 100; and as soon as a batch is full,
   * or 20 ms after a record that carries a signal (`SIGNAL_WAIT_MS`). Default 1000.
   */
  flushIntervalMs?: number;
  /** Retry waits double from this (ms) after a failed report. Default 500. */
  minBackoffMs?: number;
  /** ...up to this (ms). Default 30,000. */
  maxBackoffMs?: number;
  /** `close()` tries to send what is left for at most this long (ms). Default 5000. */
  closeTimeoutMs?: number;
  /** Milliseconds; injected by tests. */
  now?: () => number;
  /** Called when a report fails (it is retried) or is refused (it is dropped). */
  onError?: (err: Error) => void;
}

export interface UsageReporterStats {
  /** Records waiting to be sent. */
  buffered: number;
  /** Records lost on this side: dropped oldest-first from a full buffer, or left at close. */
  dropped: number;
  /** Records the server accepted. */
  sent: number;
  /**
   * Records the server refused: in a report it refused whole (400, 403, 413, 415), or listed as refused
   * in one it took (a token it did not issue, for an API this verifier does not serve, out of time…).
   */
  refused: number;
  /** Reports that failed and were retried. */
  failures: number;
}

/** Thrown by `flush()` when a report could not be delivered; its records stay buffered for a retry. */
export class UsageReportError extends Error {
  readonly status: number | undefined;
  constructor(message: string, status?: number) {
    super(message);
    this.name = 'UsageReportError';
    this.status = status;
  }
}

/** A FIFO with O(1) shift, for the record buffer. */
class Queue<T> {
  #items: T[] = [];
  #head = 0;
  get length(): number {
    return this.#items.length - this.#head;
  }
  push(x: T): void {
    this.#items.push(x);
  }
  shift(): T | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const x = this.#items[this.#head++];
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return x;
  }
  take(n: number): T[] {
    const out = this.#items.slice(this.#head, this.#head + n);
    this.#head += out.length;
    if (this.#head === this.#items.length) {
      this.#items = [];
      this.#head = 0;
    }
    return out;
  }
  /** Puts items back at the front, in order. */
  unshiftAll(xs: T[]): void {
    this.#items = [...xs, ...this.#items.slice(this.#head)];
    this.#head = 0;
  }
}

interface WireRecord {
  jti: string;
  operation: string;
  source: string;
  user_agent?: string;
  decision: 'allow' | 'deny';
  reason?: string;
  signal?: VerifierSignal;
  token_sha256?: string;
  time: number;
}

/** The shortest flush interval: records are batched so a busy API does not post once per request. */
const MIN_FLUSH_INTERVAL_MS = 100;

/**
 * How long a record with a signal waits for others: short, since detection revokes on it (the time adds
 * to misuse-to-revocation), and long enough that a flood of refusals is at most fifty reports a second.
 */
export const SIGNAL_WAIT_MS = 20;

/**
 * Ships usage records to the Writ server in batches, off the request path: `record()` only buffers.
 * A full buffer drops its oldest record and counts it (`dropped`); a failed report is retried with
 * exponential backoff (the records keep their place at the front); a report the server refuses (400,
 * 403, 413, 415) is not retried, and its records, like those an accepted report lists as refused, are
 * counted as `refused`; the count of dropped records travels with the next report. `close()` flushes.
 * A record carrying a security signal is sent 20 ms after it, with whatever was recorded meanwhile,
 * rather than at the next interval, unless a failed report is being backed off. One report is on its
 * way at a time; what is recorded while it is waits for the next turn (the interval, a signal, a full
 * batch), so a busy verifier posts about once per interval, not once per round trip.
 *
 * @example
 * const usage = new UsageReporter({ issuer, client });
 * usage.record({ jti, operation: 'GET /reports/:id', source: req.socket.remoteAddress, decision: 'allow' });
 */
export class UsageReporter {
  readonly #o: Required<Omit<UsageReporterOptions, 'onError'>> & Pick<UsageReporterOptions, 'onError'>;
  readonly #url: string;
  readonly #buffer = new Queue<WireRecord>();
  readonly #timer: ReturnType<typeof setInterval>;
  #dropped = 0;
  /** Dropped records the server has not been told about yet. */
  #droppedUnreported = 0;
  #sent = 0;
  #refused = 0;
  #failures = 0;
  #backoff = 0;
  #retryAt = 0;
  #closed = false;
  #lock: Promise<unknown> = Promise.resolve();
  #kick: ReturnType<typeof setTimeout> | undefined;
  /** A background report is on its way; `#again` when it was asked for another meanwhile. */
  #sending = false;
  #again = false;
  #userAgent = { raw: '', text: '' };

  constructor(o: UsageReporterOptions) {
    this.#o = {
      maxBuffer: 10_000,
      batchSize: 500,
      flushIntervalMs: 1000,
      minBackoffMs: 500,
      maxBackoffMs: 30_000,
      closeTimeoutMs: 5000,
      now: Date.now,
      ...o,
    };
    if (this.#o.maxBuffer < 1 || this.#o.batchSize < 1)
      throw new RangeError('maxBuffer and batchSize must be ≥ 1');
    const interval = this.#o.flushIntervalMs;
    if (!Number.isFinite(interval) || interval < MIN_FLUSH_INTERVAL_MS)
      throw new RangeError(
        `flushIntervalMs must be a finite number of milliseconds ≥ ${MIN_FLUSH_INTERVAL_MS} (got ${String(interval)}); records with a signal are sent at once anyway`,
      );
    this.#url = `${o.issuer.replace(/\/+$/, '')}/v1/usage`;
    this.#timer = setInterval(() => this.#background(), this.#o.flushIntervalMs);
    this.#timer.unref?.();
  }

  /**
   * Buffers one use; never blocks and never throws. A use that names no token (`jti` empty) is ignored,
   * unless it carries the `stale` signal (about this verifier, not a token).
   */
  record(r: UsageRecord): void {
    const signal = r.decision === 'deny' && isVerifierSignal(r.signal) ? r.signal : undefined;
    // The server takes only uses of tokens it issued: one whose token could not even be verified names none.
    if (!r.jti && signal !== 'stale') return;
    if (this.#closed) {
      this.#drop(1);
      return;
    }
    const w: WireRecord = {
      jti: r.jti,
      operation: restrictText(r.operation, 512) || 'unknown',
      source: restrictText(r.source, 128) || 'unknown',
      decision: r.decision,
      time: Math.floor(r.time ?? this.#o.now()),
    };
    if (r.userAgent) {
      // The same User-Agent as the record before is held once, not once per record until the report.
      if (r.userAgent !== this.#userAgent.raw)
        this.#userAgent = { raw: r.userAgent, text: restrictText(r.userAgent, 512) };
      w.user_agent = this.#userAgent.text;
    }
    if (r.decision === 'deny')
      w.reason = (r.reason || 'denied').replace(/[^A-Za-z0-9_.:-]/g, '_').slice(0, 128);
    if (signal) w.signal = signal;
    if (r.jti && isSha256Digest(r.tokenSha256)) w.token_sha256 = r.tokenSha256;
    this.#buffer.push(w);
    if (this.#buffer.length > this.#o.maxBuffer) {
      this.#buffer.shift();
      this.#drop(1);
    }
    // A full batch goes on the next turn. A signal is news for detection, but a flood of refusals is
    // no reason to post once per request: it waits a moment for the uses recorded meanwhile.
    const full = this.#buffer.length >= this.#o.batchSize;
    if ((signal || full) && this.#kick === undefined) {
      this.#kick = setTimeout(
        () => {
          this.#kick = undefined;
          this.#background();
        },
        full ? 0 : SIGNAL_WAIT_MS,
      );
    }
  }

  /**
   * Sends everything buffered now, ignoring any backoff. Resolves when the server has accepted it all;
   * rejects with `UsageReportError` when a report fails (its records stay buffered for a retry).
   */
  flush(): Promise<void> {
    return this.#exclusive(() => this.#drain(true));
  }

  /** Stops the timer and sends what is left (for at most `closeTimeoutMs`); what cannot be sent is dropped. */
  async close(): Promise<UsageReporterStats> {
    if (!this.#closed) {
      this.#closed = true;
      clearInterval(this.#timer);
      if (this.#kick !== undefined) clearTimeout(this.#kick);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        this.flush().catch((err: unknown) => this.#o.onError?.(err as Error)),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, this.#o.closeTimeoutMs);
        }),
      ]);
      clearTimeout(timer);
      const left = this.#buffer.take(this.#buffer.length).length;
      if (left > 0) this.#drop(left);
    }
    return this.stats();
  }

  stats(): UsageReporterStats {
    return {
      buffered: this.#buffer.length,
      dropped: this.#dropped,
      sent: this.#sent,
      refused: this.#refused,
      failures: this.#failures,
    };
  }

  #drop(n: number): void {
    this.#dropped += n;
    this.#droppedUnreported += n;
  }

  /** Sends in the background, one run at a time: asked again meanwhile, it runs once more after. */
  #background(): void {
    if (this.#sending) {
      this.#again = true;
      return;
    }
    if (this.#buffer.length === 0 || this.#o.now() < this.#retryAt) return;
    this.#sending = true;
    this.#exclusive(() => this.#drain(false))
      .catch((err: unknown) => this.#o.onError?.(err as Error))
      .finally(() => {
        this.#sending = false;
        if (!this.#again) return;
        this.#again = false;
        this.#background();
      });
  }

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn, fn);
    this.#lock = run.catch(() => undefined);
    return run;
  }

  /**
   * Sends batches: everything when forced (`flush`, `close`); in the background, what is buffered when
   * it starts and then only full batches. Uses recorded while a report is on its way would otherwise be
   * sent the moment it returns, and a busy verifier would post back to back, each report an
   * authenticated, audited request at the server.
   */
  async #drain(force: boolean): Promise<void> {
    let due = force ? Number.POSITIVE_INFINITY : this.#buffer.length;
    while (this.#buffer.length > 0 && (due > 0 || this.#buffer.length >= this.#o.batchSize)) {
      if (!force && this.#o.now() < this.#retryAt) return;
      due -= this.#o.batchSize;
      const error = await this.#sendBatch();
      if (error) {
        if (force) throw error;
        this.#o.onError?.(error);
        return;
      }
    }
  }

  /** Sends one batch; returns the error of a failed (retryable) report, undefined otherwise. */
  async #sendBatch(): Promise<UsageReportError | undefined> {
    const batch = this.#buffer.take(this.#o.batchSize);
    const dropped = this.#droppedUnreported;
    let error: UsageReportError;
    try {
      const res = await this.#o.client.fetch(this.#url, {
        method: 'POST',
        audience: this.#url,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ records: batch, dropped }),
      });
      const text = await res.text().catch(() => '');
      if (res.ok) {
        const refused = refusedRecords(text);
        this.#sent += batch.length - refused.length;
        this.#refused += refused.length;
        this.#droppedUnreported -= dropped;
        this.#backoff = 0;
        this.#retryAt = 0;
        if (refused.length > 0)
          this.#o.onError?.(
            new UsageReportError(
              `usage report: ${refused.length} of ${batch.length} records refused, the first: ${refused[0]}`,
              res.status,
            ),
          );
        return undefined;
      }
      error = new UsageReportError(
        `usage report refused: HTTP ${res.status} ${text.slice(0, 200)}`,
        res.status,
      );
      // The server will never take this report as it is: count it, go on with the rest.
      if (res.status === 400 || res.status === 403 || res.status === 413 || res.status === 415) {
        this.#refused += batch.length;
        this.#o.onError?.(error);
        return undefined;
      }
    } catch (err) {
      error = new UsageReportError(`usage report failed: ${(err as Error).message}`);
    }
    // Retryable (network, 401 while a token is renewed, 429, 5xx): the batch goes back to the front.
    this.#failures++;
    this.#buffer.unshiftAll(batch);
    const excess = this.#buffer.length - this.#o.maxBuffer;
    if (excess > 0) {
      this.#buffer.take(excess);
      this.#drop(excess);
    }
    this.#backoff = Math.min(
      this.#o.maxBackoffMs,
      this.#backoff === 0 ? this.#o.minBackoffMs : this.#backoff * 2,
    );
    // Full jitter on the upper half, so verifiers that failed together do not retry together.
    this.#retryAt = this.#o.now() + this.#backoff * (0.5 + Math.random() / 2);
    return error;
  }
}

/** The descriptions of the records an accepted report lists as refused. */
function refusedRecords(body: string): string[] {
  try {
    const refused = (JSON.parse(body) as { refused?: unknown }).refused;
    if (!Array.isArray(refused)) return [];
    return refused.map((r) => String((r as { error_description?: unknown })?.error_description ?? 'refused'));
  } catch {
    return [];
  }
}
