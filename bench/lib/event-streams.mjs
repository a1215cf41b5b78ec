// Load process of the propagation benchmark, started pinned to a core by bench/propagation.mjs: holds
// many verifier event streams (`GET /v1/events`, Server-Sent Events) open on raw loopback sockets, each
// authenticated like the SDK verifier does it (a DPoP-bound token of a verifier workload and a fresh
// proof), and notes, per stream, when a given revocation arrives.
//
// Raw sockets rather than an HTTP client keep the receiving side cheap: per chunk, one byte search, so
// what is measured is the server's fan-out, not this process's parsing.
//
// Config (argv JSON): { origin, eventsUrl, tokens: [verifier's token], keys: [verifier's DPoP key as
//                       { privateJwk, publicJwk }], streams: [verifier index per stream], concurrency,
//                       openTimeoutMs }
// Commands (stdin, one JSON a line): { cmd: 'arm', trial, marker, timeoutMs } | { cmd: 'stop' }
// Reports (stdout, one JSON a line):
//   { type: 'open', streams, failed, firstError, openMs }
//   { type: 'armed', trial }
//   { type: 'trial', trial, times: [ms | null per stream], closed }   times: process.hrtime, ms
//   { type: 'stopped', closed, cpuMs }
import { createPrivateKey } from 'node:crypto';
import { connect } from 'node:net';
import { createInterface } from 'node:readline';
import { createDpopProof, dpopKeyFrom } from '@writ/sdk/dpop';
import { childConfig } from './common.mjs';

const cfg = childConfig();
const origin = new URL(cfg.origin);
if (origin.hostname !== '127.0.0.1') throw new Error(`refusing non-loopback target ${cfg.origin}`);
const port = Number(origin.port);
const eventsPath = new URL(cfg.eventsUrl).pathname;
const keys = cfg.keys.map((k) =>
  dpopKeyFrom(createPrivateKey({ key: k.privateJwk, format: 'jwk' }), k.publicJwk, 'ES256'),
);

const send = (m) => process.stdout.write(`${JSON.stringify(m)}\n`);
const nowMs = () => Number(process.hrtime.bigint() / 1000n) / 1000;

/** One stream's state. `arrived` is the time the armed marker was seen (ms), or null. */
const streams = cfg.streams.map(() => ({
  socket: undefined,
  ready: false,
  closed: false,
  tail: '',
  arrived: null,
}));
let armed; // { trial, marker, got, timer }
let live = 0; // streams subscribed and not closed

function openStream(i) {
  const s = streams[i];
  const verifier = cfg.streams[i];
  const token = cfg.tokens[verifier];
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    s.socket = socket;
    socket.setNoDelay(true);
    let head = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`stream ${i}: no snapshot within ${cfg.openTimeoutMs} ms`));
    }, cfg.openTimeoutMs);
    socket.on('connect', () => {
      const proof = createDpopProof(keys[verifier], {
        method: 'GET',
        url: cfg.eventsUrl,
        accessToken: token,
      });
      socket.write(
        `GET ${eventsPath}?revocations=sha256 HTTP/1.1\r\nHost: ${origin.host}\r\nAuthorization: DPoP ${token}\r\n` +
          `DPoP: ${proof}\r\nAccept: text/event-stream\r\n\r\n`,
      );
    });
    socket.on('data', (chunk) => {
      if (!s.ready) {
        head += chunk.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end >= 0 && !head.startsWith('HTTP/1.1 200')) {
          clearTimeout(timer);
          socket.destroy();
          reject(new Error(`stream ${i}: ${head.slice(0, 600)}`));
          return;
        }
        // Subscribed once the snapshot is written: the server subscribes right after writing it.
        if (end >= 0 && head.includes('event: snapshot')) {
          clearTimeout(timer);
          s.ready = true;
          live++;
          head = '';
          resolve();
        }
        return;
      }
      if (armed && s.arrived === null) {
        const { marker } = armed;
        if (
          chunk.includes(marker) ||
          (s.tail !== '' &&
            `${s.tail}${chunk.subarray(0, marker.length - 1).toString('latin1')}`.includes(marker))
        ) {
          s.arrived = nowMs();
          if (++armed.got >= live) finishTrial();
          return;
        }
        s.tail = chunk.subarray(Math.max(0, chunk.length - marker.length + 1)).toString('latin1');
      }
    });
    const gone = (err) => {
      clearTimeout(timer);
      if (!s.ready) reject(err ?? new Error(`stream ${i}: closed before the snapshot`));
      if (!s.closed) {
        s.closed = true;
        if (s.ready) live--;
        if (armed && armed.got >= live) finishTrial();
      }
    };
    socket.on('error', gone);
    socket.on('close', () => gone());
  });
}

function finishTrial() {
  if (!armed) return;
  clearTimeout(armed.timer);
  send({
    type: 'trial',
    trial: armed.trial,
    times: streams.map((s) => s.arrived),
    closed: streams.length - live,
  });
  armed = undefined;
}

async function openAll() {
  const started = nowMs();
  let next = 0;
  let failed = 0;
  let firstError;
  const worker = async () => {
    while (next < streams.length) {
      const i = next++;
      try {
        await openStream(i);
      } catch (err) {
        failed++;
        firstError ??= err.message;
        streams[i].closed = true;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(cfg.concurrency, streams.length) }, worker));
  send({ type: 'open', streams: live, failed, firstError, openMs: nowMs() - started });
}

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const m = JSON.parse(line);
  if (m.cmd === 'arm') {
    for (const s of streams) {
      s.arrived = null;
      s.tail = '';
    }
    armed = { trial: m.trial, marker: m.marker, got: 0, timer: setTimeout(finishTrial, m.timeoutMs) };
    send({ type: 'armed', trial: m.trial });
  } else if (m.cmd === 'stop') {
    const closed = streams.length - live;
    for (const s of streams) s.socket?.destroy();
    const cpu = process.cpuUsage();
    send({ type: 'stopped', closed, cpuMs: (cpu.user + cpu.system) / 1000 });
    process.exit(0);
  }
});
// The parent going away ends this process too.
rl.on('close', () => process.exit(0));

openAll();
