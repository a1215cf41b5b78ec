import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, afterEach, before, describe, it } from 'node:test';
import { EventStreamFollower, type EventStreamHandlers } from '../src/verifier/event-stream-follower.js';
import { manualClock } from './helpers/access-tokens.js';

// The follower against a real HTTP server speaking SSE: resuming by id, fresh credentials after a
// refusal or an ended stream, bounded events, and the idle watchdog on an injected clock. Every wait
// below is for something the follower does, never for an amount of time.

type Script = (req: IncomingMessage, res: ServerResponse) => void;

/** An SSE endpoint: the n-th connection is answered by the n-th script (the last one repeats). */
let scripts: Script[] = [];
let seen: Array<{ headers: IncomingMessage['headers'] }> = [];
let arrived: Array<() => void> = [];
const server = createServer((req, res) => {
  seen.push({ headers: req.headers });
  for (const wake of arrived.splice(0)) wake();
  (scripts[Math.min(seen.length, scripts.length) - 1] as Script)(req, res);
});
let url = '';
before(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/events`;
});
after(() => {
  server.closeAllConnections();
  server.close();
});

/** Resolves once the server has taken `n` connections in all. */
function connections(n: number): Promise<void> {
  if (seen.length >= n) return Promise.resolve();
  return new Promise((r) => {
    const check = () => (seen.length >= n || finished ? r() : arrived.push(check));
    arrived.push(check);
  });
}

/** Followers of the running test, closed after it whatever its outcome (a failed test must not hang). */
let followers: EventStreamFollower[] = [];
let finished = false;
afterEach(() => {
  finished = true;
  for (const f of followers) f.close();
  followers = [];
  for (const wake of arrived.splice(0)) wake();
});

/** Waits until the follower has done what `done` looks for (the test's timeout bounds it). */
async function until(done: () => boolean): Promise<void> {
  while (!done() && !finished) await new Promise((r) => setTimeout(r, 5));
}

const sse = (res: ServerResponse, text: string, end = false) => {
  if (!res.headersSent) res.writeHead(200, { 'content-type': 'text/event-stream' });
  if (end) res.end(text);
  else res.write(text);
};

interface Log {
  events: Array<{ type: string; data: unknown; id: string | undefined }>;
  heartbeats: number;
  opened: number;
  closed: number;
  fresh: boolean[];
}

function follow(
  o: {
    now?: () => number;
    idleMs?: number;
    maxEventBytes?: number;
    onEvent?: (data: Record<string, unknown>) => void;
  } = {},
) {
  const log: Log = { events: [], heartbeats: 0, opened: 0, closed: 0, fresh: [] };
  const handlers: EventStreamHandlers = {
    opened: () => {
      log.opened++;
    },
    event: (type, data, id) => {
      log.events.push({ type, data, id });
      o.onEvent?.(data);
    },
    heartbeat: () => {
      log.heartbeats++;
    },
    closed: () => {
      log.closed++;
    },
    current: () => true,
  };
  const follower = new EventStreamFollower({
    url,
    authorize: async (_url, fresh) => {
      log.fresh.push(fresh);
      return { authorization: `Bearer t${log.fresh.length}` };
    },
    fetch,
    now: o.now ?? (() => 0),
    idleMs: o.idleMs ?? 60_000,
    maxEventBytes: o.maxEventBytes ?? 1024,
    handlers,
  });
  followers.push(follower);
  const running = follower.run();
  return { follower, log, running };
}

function reset(...s: Script[]) {
  finished = false;
  scripts = s;
  seen = [];
  arrived = [];
}

describe('EventStreamFollower', () => {
  it('delivers events with parsed data and the id it resumes from, and heartbeats', {
    timeout: 10_000,
  }, async () => {
    reset((_req, res) =>
      sse(res, 'event: head\ndata: {"head":2}\n\n: hb\n\nid: 2\nevent: revocation\ndata: {"n":1}\n\n'),
    );
    const { follower, log, running } = follow();
    await until(() => log.events.length === 2);
    assert.deepEqual(log.events, [
      { type: 'head', data: { head: 2 }, id: undefined },
      { type: 'revocation', data: { n: 1 }, id: '2' },
    ]);
    assert.equal(log.heartbeats, 1);
    assert.equal(log.opened, 1);
    assert.equal(follower.connected, true);
    assert.equal(follower.lastEventId, '2');
    assert.equal(seen[0]!.headers['authorization'], 'Bearer t1');
    assert.equal(seen[0]!.headers['accept'], 'text/event-stream');
    assert.equal(seen[0]!.headers['last-event-id'], undefined);
    follower.close();
    await running;
    assert.equal(follower.connected, false);
    assert.equal(log.closed, 1);
  });

  it('when the server ends the stream, comes back with a fresh token and the last id it holds', {
    timeout: 10_000,
  }, async () => {
    reset(
      (_req, res) => sse(res, 'id: 5\nevent: revocation\ndata: {}\n\n', true),
      (_req, res) => sse(res, ': hb\n\n'),
    );
    const { follower, log, running } = follow();
    await until(() => log.opened === 2);
    assert.equal(seen[1]!.headers['last-event-id'], '5');
    assert.deepEqual(log.fresh, [false, true]);
    assert.equal(seen[1]!.headers['authorization'], 'Bearer t2');
    follower.close();
    await running;
    assert.equal(follower.connections, 2);
  });

  it('after a 401 or 403 asks for a fresh token; after a 503 keeps the one it has', {
    timeout: 10_000,
  }, async () => {
    const status = (code: number) => (_req: IncomingMessage, res: ServerResponse) => {
      res.writeHead(code);
      res.end();
    };
    reset(status(401), status(503), status(403), (_req, res) => sse(res, ': hb\n\n'));
    const { follower, log, running } = follow();
    await connections(4);
    assert.deepEqual(log.fresh, [false, true, false, true]);
    assert.equal(log.opened, 0, 'no refused response counts as an open stream');
    follower.close();
    await running;
  });

  it('an event over the bound, or data that is not JSON, drops the connection without taking it', {
    timeout: 10_000,
  }, async () => {
    reset(
      (_req, res) => sse(res, `id: 1\nevent: snapshot\ndata: {"x":"${'a'.repeat(2000)}"}\n\n`),
      (_req, res) => sse(res, 'id: 2\nevent: revocation\ndata: {not json\n\n'),
      (_req, res) => sse(res, ': hb\n\n'),
    );
    const { follower, log, running } = follow({ maxEventBytes: 1024 });
    await connections(3);
    assert.deepEqual(log.events, []);
    assert.equal(follower.lastEventId, undefined, 'an event not taken is asked for again');
    assert.equal(seen[2]!.headers['last-event-id'], undefined);
    follower.close();
    await running;
  });

  it('an event its handler throws on is not counted: the next connection resumes before it', {
    timeout: 10_000,
  }, async () => {
    // A revocation the verifier cannot enforce must be heard again, not resumed past.
    reset(
      (_req, res) =>
        sse(res, 'id: 1\nevent: revocation\ndata: {}\n\nid: 2\nevent: revocation\ndata: {"bad":1}\n\n'),
      (_req, res) => sse(res, ': hb\n\n'),
    );
    const { follower, running } = follow({
      onEvent: (data) => {
        if (data['bad']) throw new Error('cannot enforce this');
      },
    });
    await connections(2);
    assert.equal(seen[1]!.headers['last-event-id'], '1');
    assert.equal(follower.lastEventId, '1');
    follower.close();
    await running;
  });

  it('the watchdog drops a connection silent past idleMs (on the injected clock) and reconnects', {
    timeout: 10_000,
  }, async () => {
    const clock = manualClock(0);
    reset((_req, res) => sse(res, ': hb\n\n'));
    const { follower, log, running } = follow({ now: clock.now, idleMs: 10_000 });
    await until(() => log.heartbeats === 1);
    clock.advance(10_000);
    follower.checkIdle();
    assert.equal(log.closed, 0, 'not past the bound yet');
    clock.advance(1);
    follower.checkIdle();
    await connections(2);
    assert.equal(log.closed, 1);
    follower.close();
    await running;
  });

  it('close() ends the current attempt and opens no other', { timeout: 10_000 }, async () => {
    reset((_req, res) => sse(res, ': hb\n\n'));
    const { follower, running } = follow();
    await connections(1);
    follower.close();
    await running;
    assert.equal(seen.length, 1);
  });
});
