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

/** What one `send` writes: a frame, or a frame in parts written one after the other. */
export type FrameChunk = string | Uint8Array | readonly (string | Uint8Array)[];

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

  /**
   * Writes `chunk` unless the stream has ended; ends it when the client is too far behind. A frame in
   * parts (a snapshot event around the revocations every stream opening meanwhile shares) is written
   * part by part, so the shared bytes are never copied.
   */
  send(chunk: FrameChunk): boolean {
    if (this.#ended || this.#res.writableEnded || this.#res.destroyed) return false;
    if (typeof chunk === 'string' || chunk instanceof Uint8Array) this.#res.write(chunk);
    else for (const part of chunk) this.#res.write(part);
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
  async sendAndDrain(chunk: FrameChunk): Promise<boolean> {
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

/** A stream's place in the caps of `EventStreams`, from admission until `release`. */
export interface StreamSlot {
  /** Gives the place back; only the first call counts. */
  release(): void;
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
   * Takes a place for `owner`'s stream in the caps, or refuses (429) one that would exceed its share;
   * call before any work for the stream. The place counts from now, so concurrent opens cannot all pass
   * the check while each awaits its snapshot. It is given back when the stream it is `add`ed with ends,
   * or by `release` when the stream is never opened. The description says which cap was reached.
   */
  admit(owner: StreamOwner): StreamSlot {
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
    bump(this.#perClient, owner.clientId, 1);
    bump(this.#perToken, owner.jti, 1);
    let held = true;
    return {
      release: () => {
        if (!held) return;
        held = false;
        bump(this.#perClient, owner.clientId, -1);
        bump(this.#perToken, owner.jti, -1);
      },
    };
  }

  /** Streams a workload holds open (or is opening) on this node. */
  openFor(clientId: string): number {
    return this.#perClient.get(clientId) ?? 0;
  }

  /** Registers an open stream in the place `slot` holds for it; the place is given back when it ends. */
  add(stream: EventStream, slot: StreamSlot): void {
    if (stream.ended) {
      slot.release();
      return;
    }
    this.#open.add(stream);
    stream.onEnd(() => {
      this.#open.delete(stream);
      slot.release();
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
