import { connect, type Socket } from 'node:net';
import { StringDecoder } from 'node:string_decoder';

/** The event stream as a client on a plain socket sees it: every byte of the body, and the events parsed. */
export interface RawStream {
  socket: Socket;
  /** Status line and headers, once they came. */
  head: Promise<string>;
  /** Resolves when the server closes or resets the connection. */
  closed: Promise<void>;
  /** Names, ids and `data` of the events read so far (reading streams only). */
  events: Array<{ event: string; id: string | undefined; data: Record<string, unknown> }>;
  /** The body read so far, chunked transfer framing removed. */
  text(): string;
}

/**
 * A GET of the event stream over a plain socket, as any holder of an events token can make it:
 * `read: false` stops reading after the headers; `lastEventId` resumes; `path` replaces the path and query (by default the SDK's form without pages).
 */
export function openRawStream(
  port: number,
  token: string,
  o: { read: boolean; path?: string; lastEventId?: number },
): RawStream {
  const socket = connect(port, '127.0.0.1');
  const events: RawStream['events'] = [];
  const body: string[] = [];
  const chunks = new ChunkedBody();
  let head: Buffer | undefined = Buffer.alloc(0);
  let pending = '';
  let resolveHead!: (h: string) => void;
  const headers = new Promise<string>((r) => {
    resolveHead = r;
  });
  const closed = new Promise<void>((r) => {
    socket.on('close', () => r());
  });
  socket.on('error', () => undefined);
  socket.on('data', (data: Buffer) => {
    let rest = data;
    if (head !== undefined) {
      head = Buffer.concat([head, data]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      resolveHead(head.subarray(0, end).toString('latin1'));
      rest = head.subarray(end + 4);
      head = undefined;
      if (!o.read) {
        socket.pause();
        return;
      }
    }
    const text = chunks.push(rest);
    body.push(text);
    // SSE frames end with a blank line; one split per chunk keeps the reader linear in what it reads.
    const blocks = (pending + text).split('\n\n');
    pending = blocks.pop() ?? '';
    for (const block of blocks) {
      const lines = block.split('\n');
      const field = (name: string) => lines.find((l) => l.startsWith(`${name}: `))?.slice(name.length + 2);
      const event = field('event');
      const json = field('data');
      if (event && json)
        events.push({ event, id: field('id'), data: JSON.parse(json) as Record<string, unknown> });
    }
  });
  const resume = o.lastEventId !== undefined ? `last-event-id: ${o.lastEventId}\r\n` : '';
  socket.write(
    `GET ${o.path ?? '/v1/events?revocations=sha256'} HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\nauthorization: Bearer ${token}\r\naccept: text/event-stream\r\n${resume}connection: close\r\n\r\n`,
  );
  return { socket, head: headers, closed, events, text: () => body.join('') };
}

/** Removes chunked transfer framing (RFC 9112 §7.1) from a body read in pieces; returns the text so far. */
class ChunkedBody {
  #buf = Buffer.alloc(0);
  /** Bytes left in the current chunk, or undefined while a size line is expected. */
  #left: number | undefined;
  #done = false;
  readonly #decoder = new StringDecoder('utf8');

  push(data: Buffer): string {
    if (this.#done) return '';
    this.#buf = Buffer.concat([this.#buf, data]);
    let out = '';
    while (!this.#done) {
      if (this.#left === undefined) {
        const eol = this.#buf.indexOf('\r\n');
        if (eol < 0) break;
        const line = this.#buf.subarray(0, eol).toString('latin1');
        this.#buf = this.#buf.subarray(eol + 2);
        if (line === '') continue; // the CRLF that ends a chunk's data
        this.#left = Number.parseInt(line.split(';')[0]!, 16);
        this.#done = this.#left === 0;
        continue;
      }
      if (this.#buf.length === 0) break;
      const take = Math.min(this.#left, this.#buf.length);
      out += this.#decoder.write(this.#buf.subarray(0, take));
      this.#buf = this.#buf.subarray(take);
      this.#left -= take;
      if (this.#left === 0) this.#left = undefined;
    }
    return out;
  }
}
