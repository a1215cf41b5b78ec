import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { liveFeed } from '../src/admin/live-events.js';
import { type Harness, signJwt, startHarness } from './helpers/harness.js';

// `GET /admin/v1/events/live` (docs/console.md, "Live counters"): the console's overview follows issued,
// refused and revoked counts as server-sent events; only an admin caller opens it, one stream per console
// session, and the stream ends when the session does. One reader of the audit log per node serves every
// open stream: it runs from the first stream to the last.

interface Frame {
  event: string;
  data: Record<string, unknown>;
}

/** A server-sent event stream read frame by frame. */
/** Waits until `done` holds (the server sees a closed stream when its socket closes); a bound, not a speed check. */
async function settled(done: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 3000 && !done(); i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(done(), what);
}

class Frames {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #decoder = new TextDecoder();
  #buffer = '';
  constructor(res: Response) {
    this.#reader = res.body!.getReader();
  }
  /** The next frame with an event name (comments and `retry:` lines skipped); undefined at the end. */
  async next(): Promise<Frame | undefined> {
    for (;;) {
      const cut = this.#buffer.indexOf('\n\n');
      if (cut >= 0) {
        const block = this.#buffer.slice(0, cut);
        this.#buffer = this.#buffer.slice(cut + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event !== undefined && data !== undefined) return { event, data: JSON.parse(data) };
        continue;
      }
      const { done, value } = await this.#reader.read();
      if (done) return undefined;
      this.#buffer += this.#decoder.decode(value, { stream: true });
    }
  }
  /** Frames until one `event` named `name` for which `until` holds; fails at the stream's end. */
  async until(name: string, until: (f: Frame) => boolean = () => true): Promise<Frame[]> {
    const seen: Frame[] = [];
    for (;;) {
      const f = await this.next();
      assert.ok(f, `the stream ended before a "${name}" frame; saw ${JSON.stringify(seen)}`);
      seen.push(f);
      if (f.event === name && until(f)) return seen;
    }
  }
  cancel(): Promise<void> {
    return this.#reader.cancel().catch(() => {});
  }
}

describe('live counters for the console', () => {
  let h: Harness;
  const opened: AbortController[] = [];

  before(async () => {
    h = await startHarness({ listen: true });
  });
  after(async () => {
    for (const a of opened) a.abort();
    await h.close();
  });

  const signIn = async () => {
    const now = Math.floor(Date.now() / 1000);
    const link = signJwt(
      h.operatorKey,
      {
        sub: 'operator:ops',
        aud: `${h.issuer}/console`,
        iat: now,
        exp: now + 60,
        jti: randomBytes(24).toString('base64url'),
      },
      { typ: 'writ-console-link+jwt' },
    );
    const res = await fetch(`${h.issuer}/console/api/signin`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ link }),
    });
    const body = (await res.json()) as Record<string, unknown>;
    assert.equal(res.status, 200, JSON.stringify(body));
    return { cookie: (res.headers.get('set-cookie') ?? '').split(';')[0]!, csrf: String(body['csrf']) };
  };
  const live = async (headers: Record<string, string>) => {
    // A bound against a hang, not a speed check.
    const abort = new AbortController();
    opened.push(abort);
    const timer = setTimeout(() => abort.abort(), 120_000);
    timer.unref();
    return fetch(`${h.issuer}/admin/v1/events/live`, { headers, signal: abort.signal });
  };

  it('counts issued, refused and revoked tokens as they happen, and carries no token', async () => {
    const { cookie } = await signIn();
    const res = await live({ cookie });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    const frames = new Frames(res);
    const hello = await frames.until('hello');
    assert.equal(typeof hello.at(-1)!.data['seq'], 'number');

    const issued = await h.requestToken();
    assert.equal(issued.status, 200, JSON.stringify(issued.body));
    const token = String(issued.body['access_token']);
    const refused = await h.requestToken({ scope: 'not-a-scope:of-this-class' });
    assert.ok(refused.status >= 400);
    const jti = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).jti as string;
    const revoke = await h.admin('POST', '/revocations', {
      kind: 'jti',
      value: jti,
      reason: 'live test',
    });
    assert.ok(revoke.status < 300, JSON.stringify(revoke.body));

    const totals = { issued: 0, refused: 0, revoked: 0 };
    const seen = await frames.until('counts', (f) => {
      for (const k of Object.keys(totals) as Array<keyof typeof totals>) totals[k] += Number(f.data[k]);
      return totals.issued >= 1 && totals.refused >= 1 && totals.revoked >= 1;
    });
    assert.deepEqual(totals, { issued: 1, refused: 1, revoked: 1 });
    const text = JSON.stringify(seen);
    assert.ok(!text.includes(token), 'no token in the stream');
    assert.ok(!text.includes(jti), 'no jti in the stream');
    await frames.cancel();
  });

  it('refuses a caller without a session or admin token (401), and a cookie that names no session', async () => {
    for (const headers of [{}, { cookie: `writ_console=${randomBytes(32).toString('base64url')}` }]) {
      const res = await live(headers);
      const body = (await res.json()) as Record<string, unknown>;
      assert.equal(res.status, 401, JSON.stringify(body));
      assert.equal(body['error'], 'invalid_token');
      assert.equal(typeof body['error_description'], 'string');
    }
    const refusal = (await h.auditEvents('admin.refused')).at(-1);
    assert.equal(refusal?.data['path'], '/admin/v1/events/live');
  });

  it('one stream per session: a second replaces the first; signing out ends it', async () => {
    const { cookie, csrf } = await signIn();
    const first = new Frames(await live({ cookie }));
    await first.until('hello');
    const second = new Frames(await live({ cookie }));
    await second.until('hello');
    const ended = await first.until('end');
    assert.equal(ended.at(-1)!.data['reason'], 'replaced');
    assert.equal(await first.next(), undefined, 'the replaced stream is closed');

    const out = await fetch(`${h.issuer}/console/api/signout`, {
      method: 'POST',
      headers: { cookie, 'x-writ-csrf': csrf },
    });
    assert.equal(out.status, 204);
    const last = await second.until('end');
    assert.equal(last.at(-1)!.data['reason'], 'session_ended');
    assert.equal(await second.next(), undefined);
    // And the cookie opens no new one.
    assert.equal((await live({ cookie })).status, 401);
  });
  it('one reader per node: two streams get the same frames; the reader stops with the last stream', async () => {
    const feed = liveFeed(h.writ.ctx)!;
    await settled(() => feed.streams === 0, "the earlier tests' streams are closed");
    assert.equal(feed.running, false, 'no stream open: the reader is stopped');

    const a = new Frames(await live({ cookie: (await signIn()).cookie }));
    await a.until('hello');
    assert.equal(feed.running, true, 'the first stream starts the reader');
    const b = new Frames(await live({ cookie: (await signIn()).cookie }));
    await b.until('hello');
    assert.equal(feed.streams, 2);

    const reads = feed.reads;
    for (let i = 0; i < 2; i++) assert.equal((await h.requestToken()).status, 200);
    assert.ok((await h.requestToken({ scope: 'not-a-scope:of-this-class' })).status >= 400);
    const counted = async (frames: Frames) => {
      const totals = { issued: 0, refused: 0 };
      const seen = await frames.until('counts', (f) => {
        totals.issued += Number(f.data['issued']);
        totals.refused += Number(f.data['refused']);
        return totals.issued >= 2 && totals.refused >= 1;
      });
      assert.deepEqual(totals, { issued: 2, refused: 1 });
      return seen.filter((f) => f.event === 'counts');
    };
    const fromA = await counted(a);
    const fromB = await counted(b);
    // The same reads, sent to both: the same frames, to the millisecond of `at` and the `seq` of each read.
    assert.deepEqual(fromA, fromB);
    assert.ok(feed.reads > reads);

    await a.cancel();
    assert.equal(feed.running, true, 'one stream is still open');
    await settled(() => feed.streams === 1, 'the server saw the first stream close');
    assert.equal(feed.running, true, 'one stream is still open: the reader runs');
    await b.cancel();
    await settled(() => feed.streams === 0, 'the server saw the second stream close');
    assert.equal(feed.running, false, 'the last stream closed: the reader stopped');

    // A new stream starts it again, at the audit log's head.
    const c = new Frames(await live({ cookie: (await signIn()).cookie }));
    await c.until('hello');
    assert.equal(feed.running, true);
    assert.equal((await h.requestToken()).status, 200);
    const again = await c.until('counts', (f) => Number(f.data['issued']) >= 1);
    assert.equal(again.at(-1)!.data['issued'], 1);
    await c.cancel();
    await settled(() => !feed.running, 'the reader stopped again');
  });
});
