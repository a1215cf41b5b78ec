/** One Server-Sent Event (WHATWG HTML §9.2). Comments (heartbeats) are reported as `comment`. */
export interface SseMessage {
  id?: string;
  event: string;
  data: string;
}

/**
 * Incremental SSE parser: feed it text chunks, it calls back per complete event and per comment line.
 * Bounded: an event (its data plus the unfinished line) larger than `maxEventBytes` throws. Each chunk
 * is scanned once, so a large event (a snapshot) arriving in many chunks costs linear time.
 */
export class SseParser {
  /** The unfinished line, as the chunks it came in (joined once the line ends). */
  #pending: string[] = [];
  #pendingSize = 0;
  /** The previous chunk ended with CR: a LF opening this one belongs to it. */
  #afterCr = false;
  #event: { id?: string; event?: string; data: string[] } = { data: [] };
  #eventSize = 0;
  readonly #onMessage: (m: SseMessage) => void;
  readonly #onComment: () => void;
  readonly #max: number;

  constructor(onMessage: (m: SseMessage) => void, onComment: () => void, maxEventBytes = 1_048_576) {
    this.#onMessage = onMessage;
    this.#onComment = onComment;
    this.#max = maxEventBytes;
  }

  push(chunk: string): void {
    if (chunk.length === 0) return;
    let start = 0;
    if (this.#afterCr && chunk.charCodeAt(0) === 10) start = 1;
    this.#afterCr = false;
    for (let i = start; i < chunk.length; i++) {
      const c = chunk.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      const tail = chunk.slice(start, i);
      const line = this.#pending.length === 0 ? tail : this.#pending.join('') + tail;
      this.#pending = [];
      this.#pendingSize = 0;
      this.#line(line);
      if (c === 13) {
        if (i + 1 === chunk.length) this.#afterCr = true;
        else if (chunk.charCodeAt(i + 1) === 10) i++;
      }
      start = i + 1;
    }
    if (start < chunk.length) {
      this.#pending.push(chunk.slice(start));
      this.#pendingSize += chunk.length - start;
    }
    if (this.#eventSize + this.#pendingSize > this.#max) throw new Error('event stream message too large');
  }

  #line(line: string): void {
    if (line === '') {
      if (this.#event.data.length > 0) {
        const m: SseMessage = { event: this.#event.event ?? 'message', data: this.#event.data.join('\n') };
        if (this.#event.id !== undefined) m.id = this.#event.id;
        this.#onMessage(m);
      }
      this.#event = { data: [] };
      this.#eventSize = 0;
      return;
    }
    if (line.startsWith(':')) {
      this.#onComment();
      return;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'data') {
      this.#event.data.push(value);
      this.#eventSize += value.length + 1;
      if (this.#eventSize > this.#max) throw new Error('event stream message too large');
    } else if (field === 'event') this.#event.event = value;
    else if (field === 'id' && !value.includes('\0')) this.#event.id = value;
  }
}
