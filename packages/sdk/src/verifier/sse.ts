/** One Server-Sent Event (WHATWG HTML §9.2). Comments (heartbeats) are reported as `comment`. */
export interface SseMessage {
  id?: string;
  event: string;
  data: string;
}

/**
 * Incremental SSE parser: feed it text chunks, it calls back per complete event and per comment line.
 * Bounded: a single event larger than `maxEventBytes` is dropped and reported as an error.
 */
export class SseParser {
  #buffer = '';
  #event: { id?: string; event?: string; data: string[] } = { data: [] };
  readonly #onMessage: (m: SseMessage) => void;
  readonly #onComment: () => void;
  readonly #max: number;

  constructor(onMessage: (m: SseMessage) => void, onComment: () => void, maxEventBytes = 1_048_576) {
    this.#onMessage = onMessage;
    this.#onComment = onComment;
    this.#max = maxEventBytes;
  }

  push(chunk: string): void {
    this.#buffer += chunk;
    if (this.#buffer.length > this.#max) throw new Error('event stream message too large');
    let nl = this.#buffer.search(/\r\n|\r|\n/);
    while (nl >= 0) {
      const line = this.#buffer.slice(0, nl);
      const sepLen = this.#buffer.startsWith('\r\n', nl) ? 2 : 1;
      this.#buffer = this.#buffer.slice(nl + sepLen);
      this.#line(line);
      nl = this.#buffer.search(/\r\n|\r|\n/);
    }
  }

  #line(line: string): void {
    if (line === '') {
      if (this.#event.data.length > 0) {
        const m: SseMessage = { event: this.#event.event ?? 'message', data: this.#event.data.join('\n') };
        if (this.#event.id !== undefined) m.id = this.#event.id;
        this.#onMessage(m);
      }
      this.#event = { data: [] };
      return;
    }
    if (line.startsWith(':')) {
      this.#onComment();
      return;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'data') this.#event.data.push(value);
    else if (field === 'event') this.#event.event = value;
    else if (field === 'id' && !value.includes('\0')) this.#event.id = value;
  }
}
