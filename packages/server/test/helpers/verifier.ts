import { connect, createServer, type Server, type Socket } from 'node:net';
import { WorkloadClient } from '@writ/sdk/client';
import { createDpopProof, type DpopKey } from '@writ/sdk/dpop';
import {
  createVerifier,
  type PresentedRequest,
  RequestRefusal,
  type UseContext,
  type Verifier,
  type VerifierOptions,
} from '@writ/sdk/verifier';
import { fakeClock } from '../../src/clock.js';
import type { RawDocument } from '../../src/config/config-dir.js';
import { classDoc, workloadDoc } from './dpop.js';
import { freePort, type Harness, privateJwk, startHarness, type TestKey, testKey } from './harness.js';

/** Test helpers for resource-server verifiers following a real Writ over real HTTP. */

/** Polls `check` until it returns a value other than undefined; fails after `attempts` tries. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  o: { attempts?: number; everyMs?: number } = {},
): Promise<T> {
  const attempts = o.attempts ?? 600;
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, o.everyMs ?? 25));
  }
  throw new Error(`gave up waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

/** What `verify` said: the claims' jti, or the refusal's reason. */
export async function outcome(v: Verifier, req: PresentedRequest & UseContext): Promise<string> {
  try {
    const { claims } = await v.verify(req);
    return `ok:${claims.jti}`;
  } catch (err) {
    if (err instanceof RequestRefusal) return err.reason;
    throw err;
  }
}

/** A request presenting `token`: Bearer, or DPoP with a fresh proof by `holder` over this request. */
export function presenting(
  token: string,
  o: { holder?: DpopKey; url: string; method?: string; nowSeconds?: number },
): PresentedRequest {
  const method = o.method ?? 'GET';
  if (!o.holder) return { authorization: `Bearer ${token}`, dpop: [], method, url: o.url };
  return {
    authorization: `DPoP ${token}`,
    dpop: [
      createDpopProof(o.holder, {
        method,
        url: o.url,
        accessToken: token,
        ...(o.nowSeconds !== undefined ? { nowSeconds: o.nowSeconds } : {}),
      }),
    ],
    method,
    url: o.url,
  };
}

/** A workload client for `clientId` on the clock `nowMs`, talking to `issuer` with `fetch`. */
export function workloadClient(
  issuer: string,
  clientId: string,
  key: TestKey,
  o: { nowMs?: () => number; fetch?: typeof fetch } = {},
): WorkloadClient {
  const nowMs = o.nowMs;
  return new WorkloadClient({
    issuer,
    clientId,
    privateJwk: privateJwk(key),
    ...(nowMs ? { now: () => Math.floor(nowMs() / 1000) } : {}),
    ...(o.fetch ? { fetch: o.fetch } : {}),
  });
}

/** A verifier whose event stream (and only it) goes through `proxy`; everything else goes direct. */
export function proxiedVerifier(
  o: Omit<VerifierOptions, 'fetch'> & { proxy: TcpProxy; serverOrigin: string },
): Verifier {
  const { proxy, serverOrigin, ...options } = o;
  return createVerifier({
    ...options,
    fetch: (input, init) => {
      const url = String(input);
      const routed =
        new URL(url).pathname === '/v1/events'
          ? url.replace(serverOrigin, `http://127.0.0.1:${proxy.port}`)
          : url;
      return fetch(routed, init);
    },
  });
}

/** Resolves when the verifier has its snapshot, or fails after `ms`. */
export async function ready(v: Verifier, ms = 15_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    v.ready(),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`verifier not ready after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * A TCP proxy in front of a server, to break the network the way it breaks: `cut()` resets every
 * connection and refuses new ones; `hold()` lets new connections through but holds back each response
 * after its headers until `release()`; `silence()` keeps the open connections open but forwards nothing
 * more on them (a link that died without a reset), while new ones go through.
 */
export interface TcpProxy {
  port: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Connections currently open (forwarding or held). */
  readonly open: number;
  cut(): void;
  hold(): void;
  silence(): void;
  /** Back to forwarding; held bytes are delivered. */
  release(): void;
  close(): Promise<void>;
}

type Mode = 'forward' | 'refuse' | 'hold';

interface Pair {
  client: Socket;
  upstream: Socket;
  /** Response bytes held back (mode hold). */
  held: Buffer[];
  /** The response head as far as it came (mode hold). */
  head: Buffer;
  headersDone: boolean;
  holding: boolean;
  silenced: boolean;
}

export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  let mode: Mode = 'forward';
  let accepted = 0;
  const pairs = new Set<Pair>();
  const server: Server = createServer((client) => {
    accepted++;
    if (mode === 'refuse') {
      client.destroy();
      return;
    }
    const upstream = connect(targetPort, '127.0.0.1');
    const pair: Pair = {
      client,
      upstream,
      held: [],
      head: Buffer.alloc(0),
      headersDone: false,
      holding: mode === 'hold',
      silenced: false,
    };
    pairs.add(pair);
    const drop = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.on('data', (d: Buffer) => {
      if (!pair.silenced) upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      if (pair.silenced) return;
      if (!pair.holding) {
        client.write(d);
        return;
      }
      if (pair.headersDone) {
        pair.held.push(d);
        return;
      }
      // Pass the response head through; hold what follows it.
      const seen = Buffer.concat([pair.head, d]);
      const end = seen.indexOf('\r\n\r\n');
      if (end < 0) {
        pair.head = seen;
        return;
      }
      pair.headersDone = true;
      pair.head = Buffer.alloc(0);
      client.write(seen.subarray(0, end + 4));
      if (seen.length > end + 4) pair.held.push(seen.subarray(end + 4));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    get accepted() {
      return accepted;
    },
    get open() {
      return pairs.size;
    },
    cut() {
      mode = 'refuse';
      for (const p of [...pairs]) {
        p.client.resetAndDestroy();
        p.upstream.destroy();
      }
    },
    hold() {
      mode = 'hold';
    },
    silence() {
      for (const p of pairs) p.silenced = true;
    },
    release() {
      mode = 'forward';
      for (const p of pairs) {
        if (!p.holding) continue;
        p.holding = false;
        for (const b of [p.head, ...p.held]) p.client.write(b);
        p.head = Buffer.alloc(0);
        p.held = [];
      }
    },
    async close() {
      mode = 'refuse';
      for (const p of [...pairs]) {
        p.client.destroy();
        p.upstream.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export const API = 'https://api.verifier.test';
export const VERIFIER_ID = 'spiffe://test.writ/verifier/api';

/** A listening Writ on a fake clock, a TCP proxy in front of its event stream, and a ready verifier. */
export interface VerifierWorld {
  h: Harness;
  clock: ReturnType<typeof fakeClock>;
  issuer: string;
  proxy: TcpProxy;
  verifier: Verifier;
  /** Another verifier on the same server (same identity, stream through the proxy), ready; closed with the world. */
  spawnVerifier(o?: Partial<Omit<VerifierOptions, 'issuer' | 'client' | 'fetch'>>): Promise<Verifier>;
  close(): Promise<void>;
}

export async function startVerifierWorld(
  o: {
    docs?: (issuer: string) => RawDocument[];
    verifier?: Partial<Omit<VerifierOptions, 'issuer' | 'client' | 'fetch'>>;
    /** Server settings beyond the defaults (by reference path). */
    settings?: Record<string, unknown>;
    /** The server's logger (default: silent). */
    logger?: import('pino').Logger;
  } = {},
): Promise<VerifierWorld> {
  const clock = fakeClock(Date.now());
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const key = testKey();
  const h = await startHarness({
    clock,
    listen: true,
    ...(o.logger ? { logger: o.logger } : {}),
    settings: { 'listen.port': port, 'events.heartbeat': 1, ...o.settings },
    extraDocs: [
      // The verifier's own class: tokens for the event stream, DPoP-bound (the default binding).
      classDoc({
        name: 'verifier-events',
        audiences: [`${issuer}/v1/events`],
        scopes: ['events:read'],
        default_scopes: ['events:read'],
      }),
      // The API is registered (a class issues tokens for it) whatever the test adds, and the verifier
      // declares that it serves it.
      classDoc({ name: 'verifier-world-api', audiences: [API], scopes: ['api:call'] }),
      workloadDoc(VERIFIER_ID, key, ['verifier-events'], { serves: [API] }),
      ...(o.docs?.(issuer) ?? []),
    ],
  });
  const proxy = await startTcpProxy(port);
  const verifiers: Verifier[] = [];
  const make = (extra: Partial<Omit<VerifierOptions, 'issuer' | 'client' | 'fetch'>> = {}) => {
    const v = proxiedVerifier({
      issuer,
      audience: API,
      client: workloadClient(issuer, VERIFIER_ID, key, { nowMs: clock.now }),
      now: clock.now,
      stalenessMs: 120_000,
      ...o.verifier,
      ...extra,
      proxy,
      serverOrigin: issuer,
    });
    verifiers.push(v);
    return v;
  };
  const verifier = make();
  try {
    await ready(verifier);
  } catch (err) {
    verifier.close();
    await proxy.close();
    await h.close();
    throw err;
  }
  return {
    h,
    clock,
    issuer,
    proxy,
    verifier,
    async spawnVerifier(extra) {
      const v = make(extra);
      await ready(v);
      return v;
    },
    async close() {
      for (const v of verifiers) v.close();
      await proxy.close();
      await h.close();
    },
  };
}
