import { EVENT_STREAM_QUERY } from '../wire/events.js';
import { SseParser } from './sse.js';

/** What the follower tells its owner as the stream goes. */
export interface EventStreamHandlers {
  /** A connection was accepted (it may still be catching up). */
  opened(): void;
  /**
   * One event, its data parsed; `lastEventId` already counts it. Throwing drops the connection, and the
   * event is not counted: the next connection resumes before it and hears it again.
   */
  event(type: string, data: Record<string, unknown>, lastEventId: string | undefined): void;
  heartbeat(): void;
  closed(): void;
  /** True once the stream has proved current again: the reconnect backoff starts over from then. */
  current(): boolean;
}

export interface EventStreamFollowerOptions {
  url: string;
  /** Headers that authorize a GET of `url`; `fresh` after a refusal or an ended stream. */
  authorize: (url: string, fresh: boolean) => Promise<Record<string, string>>;
  fetch: typeof fetch;
  /** Milliseconds. */
  now: () => number;
  /** Drop and reopen a connection on which nothing (not even a heartbeat) arrived this long (ms). */
  idleMs: number;
  /** Largest event taken; a larger one drops the connection. */
  maxEventBytes: number;
  handlers: EventStreamHandlers;
}

const FIRST_RETRY_MS = 250;
const MAX_RETRY_MS = 5000;

/**
 * Follows the issuer's event stream (Server-Sent Events, JSON data): keeps one connection open,
 * resumes from the last event id it holds, comes back with a fresh token when the server refused or
 * ended the stream, backs off (250 ms doubling to 5 s) between attempts, and reopens a connection that
 * went silent past `idleMs`, so one that died without a FIN is noticed.
 */
export class EventStreamFollower {
  readonly #o: EventStreamFollowerOptions;
  #lastEventId: string | undefined;
  #connected = false;
  #connections = 0;
  #closed = false;
  #lastActivity: number;
  #attempt: AbortController | undefined;
  #wake: (() => void) | undefined;
  readonly #watchdog: ReturnType<typeof setInterval>;

  constructor(o: EventStreamFollowerOptions) {
    this.#o = o;
    this.#lastActivity = o.now();
    this.#watchdog = setInterval(
      () => this.checkIdle(),
      Math.min(1000, Math.max(50, Math.floor(o.idleMs / 4))),
    );
    this.#watchdog.unref();
  }

  get lastEventId(): string | undefined {
    return this.#lastEventId;
  }

  /** A stream response is open. */
  get connected(): boolean {
    return this.#connected;
  }

  /** Connections opened so far. */
  get connections(): number {
    return this.#connections;
  }

  /** Starts following; resolves once `close` has been called and the last attempt ended. */
  async run(): Promise<void> {
    let backoff = FIRST_RETRY_MS;
    let fresh = false;
    while (!this.#closed) {
      const attempt = new AbortController();
      this.#attempt = attempt;
      this.#lastActivity = this.#o.now();
      const aborted = new Promise<never>((_, reject) => {
        attempt.signal.addEventListener('abort', () => reject(attempt.signal.reason), { once: true });
      });
      aborted.catch(() => undefined);
      try {
        // Getting a token can hang too: the watchdog's abort ends the wait.
        const headers = await Promise.race([this.#o.authorize(this.#o.url, fresh), aborted]);
        fresh = false;
        // Revocations as digests, and paged snapshots: no number of revocations in force makes one
        // event too large to take.
        const res = await this.#o.fetch(`${this.#o.url}?${EVENT_STREAM_QUERY}`, {
          headers: {
            ...headers,
            accept: 'text/event-stream',
            ...(this.#lastEventId !== undefined ? { 'last-event-id': this.#lastEventId } : {}),
          },
          signal: attempt.signal,
        });
        if (res.status === 401 || res.status === 403) fresh = true;
        if (!res.ok || !res.body) {
          await res.body?.cancel().catch(() => undefined);
          throw new Error(`event stream: HTTP ${res.status}`);
        }
        this.#connected = true;
        this.#connections++;
        this.#o.handlers.opened();
        this.#lastActivity = this.#o.now();
        await this.#read(res.body, () => {
          if (this.#o.handlers.current()) backoff = FIRST_RETRY_MS;
        });
        // The server ended the stream: the token expired or was revoked. Come back with a fresh one.
        fresh = true;
      } catch {
        // reconnect below
      } finally {
        this.#connected = false;
        this.#o.handlers.closed();
        attempt.abort();
      }
      if (this.#closed) break;
      await new Promise<void>((r) => {
        const t = setTimeout(r, backoff);
        this.#wake = () => {
          clearTimeout(t);
          r();
        };
      });
      this.#wake = undefined;
      backoff = Math.min(backoff * 2, MAX_RETRY_MS);
    }
  }

  async #read(body: ReadableStream<Uint8Array>, progressed: () => void): Promise<void> {
    const { handlers } = this.#o;
    const parser = new SseParser(
      (m) => {
        const data = JSON.parse(m.data) as Record<string, unknown>;
        const id = m.id ?? this.#lastEventId;
        handlers.event(m.event, data, id);
        this.#lastEventId = id;
        progressed();
      },
      () => {
        handlers.heartbeat();
        progressed();
      },
      this.#o.maxEventBytes,
    );
    const decoder = new TextDecoder();
    for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
      this.#lastActivity = this.#o.now();
      parser.push(decoder.decode(chunk, { stream: true }));
    }
  }

  /** Drops the open attempt when nothing arrived for `idleMs` (the watchdog calls this). */
  checkIdle(): void {
    if (this.#o.now() - this.#lastActivity > this.#o.idleMs)
      this.#attempt?.abort(new Error('event stream idle'));
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#watchdog);
    this.#attempt?.abort();
    this.#wake?.();
  }
}
