import type { ServerResponse } from 'node:http';
import type { StreamEventType } from '@writ/sdk/wire';
import { OAuthError } from '../errors.js';

/** Why the server ended a stream (logged and counted; the verifier reconnects and resumes). */
export type StreamEndReason =
  | 'closed_by_client'
  | 'token_expired'
  | 'token_revoked'
  | 'log_unreadable'
  | 'slow_reader'
  | 'socket_error'
  | 'shutdown';

export interface StreamLimits {
  /** Bytes written but not yet taken by the client; past it the stream is dropped. */
  maxUnsentBytes: number;
  maxPerClient: number;
  maxPerToken: number;
}

/** Who holds a stream: the workload and the token it opened the stream with. */
export interface StreamOwner {
  clientId: string;
  jti: string;
}

/**
 * One open Server-Sent Events response. Every write goes through `send`, which never writes to an ended
 * response (a write after end throws asynchronously and would take the process down) and drops a client
 * that does not read: the bytes it has not taken are bounded by `maxUnsentBytes`, not by its patience.
 */
export class EventStream {
  readonly owner: StreamOwner;
  readonly #res: ServerResponse;
  readonly #limits: StreamLimits;
  readonly #onEnd: Array<(reason: StreamEndReason) => void> = [];
  #ended: StreamEndReason | undefined;

  constructor(res: ServerResponse, owner: StreamOwner, limits: StreamLimits) {
    this.#res = res;
    this.owner = owner;
    this.#limits = limits;
    // An error on one connection ends that stream and nothing else.
    res.on('error', () => this.end('socket_error'));
    res.socket?.on('error', () => this.end('socket_error'));
    res.on('close', () => this.end('closed_by_client'));
  }

  /** Why the stream ended, or undefined while it is open. */
  get ended(): StreamEndReason | undefined {
    return this.#ended;
  }

  /** Bytes queued for this client and not yet taken. */
  get unsentBytes(): number {
    return this.#res.writableLength;
  }

  /** Runs `fn` once, when the stream ends for any reason (including before it is registered). */
  onEnd(fn: (reason: StreamEndReason) => void): void {
    if (this.#ended) fn(this.#ended);
    else this.#onEnd.push(fn);
  }

  /** Writes `chunk` unless the stream has ended; ends it when the client is too far behind. */
  send(chunk: string): boolean {
    if (this.#ended || this.#res.writableEnded || this.#res.destroyed) return false;
    this.#res.write(chunk);
    if (this.#res.writableLength > this.#limits.maxUnsentBytes) {
      this.end('slow_reader');
      return false;
    }
    return true;
  }

  /**
   * Writes `chunk` and resolves once the client has taken enough of what is queued that more may be
   * written (backpressure for large writes such as snapshot pages); false when the stream ended.
   */
  async sendAndDrain(chunk: string): Promise<boolean> {
    if (!this.send(chunk)) return false;
    if (this.#res.writableLength === 0 || !this.#res.writableNeedDrain) return true;
    await new Promise<void>((resolve) => {
      const done = () => {
        this.#res.off('drain', done);
        resolve();
      };
      this.#res.on('drain', done);
      this.onEnd(done);
    });
    return this.#ended === undefined;
  }

  /** Resolves once at most a quarter of the unsent-bytes cap is queued, or the stream has ended. */
  drained(): Promise<void> {
    const low = this.#limits.maxUnsentBytes / 4;
    if (this.#ended || this.#res.writableLength <= low) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const check = () => {
        if (this.#ended === undefined && this.#res.writableLength > low) return;
        this.#res.off('drain', check);
        resolve();
      };
      this.#res.on('drain', check);
      this.onEnd(check);
    });
  }

  end(reason: StreamEndReason): void {
    if (this.#ended) return;
    this.#ended = reason;
    // A client that stopped reading would hold a graceful end forever: drop its connection instead.
    if (reason === 'slow_reader' || reason === 'socket_error') this.#res.destroy();
    else if (!this.#res.writableEnded) this.#res.end();
    for (const fn of this.#onEnd.splice(0)) fn(reason);
  }
}

/** One SSE frame of a stored event. */
export function frame(e: { seq: number; ts: number; type: StreamEventType | string; data: object }): string {
  return `id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify({ ...e.data, seq: e.seq, ts: e.ts })}\n\n`;
}

/**
 * The open event streams of this node, counted per workload and per token so one caller cannot hold
 * more than its share of the node's memory and sockets.
 */
export class EventStreams {
  readonly #open = new Set<EventStream>();
  readonly #perClient = new Map<string, number>();
  readonly #perToken = new Map<string, number>();
  readonly #limits: StreamLimits;

  constructor(limits: StreamLimits) {
    this.#limits = limits;
  }

  get limits(): StreamLimits {
    return this.#limits;
  }

  get size(): number {
    return this.#open.size;
  }

  /**
   * Refuses (429) a stream that would exceed the caller's share; call before any work for the stream.
   * The description says which cap was reached and what would pass.
   */
  admit(owner: StreamOwner): void {
    const byToken = this.#perToken.get(owner.jti) ?? 0;
    if (byToken >= this.#limits.maxPerToken)
      throw tooMany(
        `this token already has ${byToken} open event streams (events.max_streams_per_token is ${this.#limits.maxPerToken}); close one or reconnect with it`,
        'stream_limit_token',
      );
    const byClient = this.#perClient.get(owner.clientId) ?? 0;
    if (byClient >= this.#limits.maxPerClient)
      throw tooMany(
        `this workload already has ${byClient} open event streams (events.max_streams_per_client is ${this.#limits.maxPerClient}); close one first`,
        'stream_limit_client',
      );
  }

  /** Streams a workload holds open on this node. */
  openFor(clientId: string): number {
    return this.#perClient.get(clientId) ?? 0;
  }

  add(stream: EventStream): void {
    if (stream.ended) return;
    this.#open.add(stream);
    bump(this.#perClient, stream.owner.clientId, 1);
    bump(this.#perToken, stream.owner.jti, 1);
    stream.onEnd(() => {
      if (!this.#open.delete(stream)) return;
      bump(this.#perClient, stream.owner.clientId, -1);
      bump(this.#perToken, stream.owner.jti, -1);
    });
  }

  /** Ends every stream (shutdown). */
  endAll(reason: StreamEndReason = 'shutdown'): void {
    for (const s of [...this.#open]) s.end(reason);
  }
}

function bump(m: Map<string, number>, key: string, by: number): void {
  const n = (m.get(key) ?? 0) + by;
  if (n <= 0) m.delete(key);
  else m.set(key, n);
}

function tooMany(description: string, reason: 'stream_limit_token' | 'stream_limit_client'): OAuthError {
  return new OAuthError('slow_down', description, {
    status: 429,
    headers: { 'retry-after': '5' },
    detail: { reason },
  });
}
