// Verifiers of part (b) of bench/detect.mjs, one process pinned to a core: SDK verifiers
// (`createVerifier`), each with its own workload identity, its own event stream and a `UsageReporter`
// (flushIntervalMs as configured, 250 ms), as resource servers run them. Optional background traffic:
// each verifier verifies benign bearer tokens, each always from its own source, so every reporter
// posts as often as its interval lets it.
//
// Config (argv JSON): { issuer, api, flushIntervalMs, verifiers: [{ clientId, privateJwk }],
//                       background: { perSecond, tokens: [{ token, source }] } }
// Commands (stdin, one JSON a line):
//   { cmd: 'use', verifier, token, dpopKey?, present: 'dpop' | 'bearer', source, count }
//       presents the token `count` times at one verifier (with a fresh DPoP proof by `dpopKey` when
//       `present` is 'dpop'); reports { type: 'used', at, decision, reason } of the last, `at` the
//       time (ms, Date.now) just before it.
//   { cmd: 'flush', verifier }          sends that verifier's usage now; { type: 'flushed' }
//   { cmd: 'arm', trial, timeoutMs }    notes each verifier's revocation count and watches it (every
//       millisecond); { type: 'armed' }, then { type: 'trial', trial, times: [ms | null per verifier] }
//       once every verifier holds one more revocation (or at the timeout).
//   { cmd: 'confirm', token, dpopKey?, present }  presents the token at every verifier;
//       { type: 'confirmed', reasons: [refusal reason, or 'allowed', per verifier] }
//   { cmd: 'stop' }   { type: 'stopped', usage: summed UsageReporter stats, cpuMs, backgroundUses, failures }
import { createPrivateKey } from 'node:crypto';
import { createInterface } from 'node:readline';
import { WorkloadClient } from '@writ/sdk/client';
import { createDpopProof, dpopKeyFrom } from '@writ/sdk/dpop';
import { createVerifier, RequestRefusal, UsageReporter } from '@writ/sdk/verifier';
import { childConfig } from './common.mjs';

const cfg = childConfig();
if (new URL(cfg.issuer).hostname !== '127.0.0.1') throw new Error(`refusing non-loopback ${cfg.issuer}`);
const send = (m) => process.stdout.write(`${JSON.stringify(m)}\n`);
const URL_OF_CALL = `${cfg.api}/v1/items/1`;
const USER_AGENT = 'writ-sdk-node/0.9 node/20.20.0';

const errors = { usage: 0, first: undefined };
const verifiers = cfg.verifiers.map((v) => {
  const client = new WorkloadClient({ issuer: cfg.issuer, clientId: v.clientId, privateJwk: v.privateJwk });
  const usage = new UsageReporter({
    issuer: cfg.issuer,
    client,
    flushIntervalMs: cfg.flushIntervalMs,
    onError: (err) => {
      errors.usage++;
      errors.first ??= err.message;
    },
  });
  const verifier = createVerifier({ issuer: cfg.issuer, audience: cfg.api, client, usage });
  return { verifier, usage };
});

const keys = new Map();
/** The DPoP key of a token's holder, from its JWK pair (kept: one import per key). */
function holderKey(pair) {
  let k = keys.get(pair.publicJwk.x);
  if (!k) {
    k = dpopKeyFrom(createPrivateKey({ key: pair.privateJwk, format: 'jwk' }), pair.publicJwk, 'ES256');
    keys.set(pair.publicJwk.x, k);
  }
  return k;
}

/** One presentation of `token` at verifier `i`: 'allowed', or the refusal's reason. */
async function present(i, { token, dpopKey, present: how, source }) {
  const dpop = how === 'dpop';
  try {
    await verifiers[i].verifier.verify({
      authorization: `${dpop ? 'DPoP' : 'Bearer'} ${token}`,
      dpop: dpop
        ? [createDpopProof(holderKey(dpopKey), { method: 'GET', url: URL_OF_CALL, accessToken: token })]
        : [],
      method: 'GET',
      url: URL_OF_CALL,
      operation: 'GET /v1/items/:id',
      source,
      userAgent: USER_AGENT,
    });
    return 'allowed';
  } catch (err) {
    if (err instanceof RequestRefusal) return err.reason;
    throw err;
  }
}

// ---- background traffic: benign uses, each token always from its own source --------------------
let backgroundUses = 0;
let backgroundRefused = 0;
let backgroundTimer;
function startBackground() {
  const { perSecond, tokens } = cfg.background;
  if (!perSecond || tokens.length === 0) return;
  const started = Date.now();
  let done = 0;
  backgroundTimer = setInterval(() => {
    const due = Math.floor(((Date.now() - started) / 1000) * perSecond * verifiers.length);
    for (; done < due; done++) {
      const i = done % verifiers.length;
      const t = tokens[(i + Math.floor(done / verifiers.length)) % tokens.length];
      present(i, { token: t.token, present: 'bearer', source: t.source }).then((r) => {
        backgroundUses++;
        if (r !== 'allowed') backgroundRefused++;
      });
    }
  }, 20);
}

// ---- trials: when does each verifier hold the new revocation? ----------------------------------
let armed;
function finishTrial() {
  if (!armed) return;
  clearInterval(armed.poll);
  clearTimeout(armed.timer);
  send({ type: 'trial', trial: armed.trial, times: armed.times });
  armed = undefined;
}

function arm(trial, timeoutMs) {
  const base = verifiers.map((v) => v.verifier.status().revocations);
  const times = verifiers.map(() => null);
  let left = verifiers.length;
  const poll = setInterval(() => {
    const now = Date.now();
    for (let i = 0; i < verifiers.length; i++) {
      if (times[i] === null && verifiers[i].verifier.status().revocations > base[i]) {
        times[i] = now;
        left--;
      }
    }
    if (left === 0) finishTrial();
  }, 1);
  armed = { trial, times, poll, timer: setTimeout(finishTrial, timeoutMs) };
}

const summedUsage = () => {
  const sum = { buffered: 0, dropped: 0, sent: 0, refused: 0, failures: 0 };
  for (const { usage } of verifiers) for (const [k, v] of Object.entries(usage.stats())) sum[k] += v;
  return sum;
};

const startedAt = Date.now();
await Promise.all(verifiers.map((v) => v.verifier.ready()));
send({ type: 'ready', verifiers: verifiers.length, ms: Date.now() - startedAt });
startBackground();

const rl = createInterface({ input: process.stdin });
rl.on('line', async (line) => {
  const m = JSON.parse(line);
  if (m.cmd === 'use') {
    let reason;
    let at;
    for (let n = 0; n < (m.count ?? 1); n++) {
      at = Date.now();
      reason = await present(m.verifier, m);
    }
    send({ type: 'used', at, decision: reason === 'allowed' ? 'allow' : 'deny', reason });
  } else if (m.cmd === 'flush') {
    await verifiers[m.verifier].usage.flush();
    send({ type: 'flushed' });
  } else if (m.cmd === 'arm') {
    arm(m.trial, m.timeoutMs);
    send({ type: 'armed', trial: m.trial });
  } else if (m.cmd === 'confirm') {
    const reasons = await Promise.all(verifiers.map((_, i) => present(i, m)));
    send({ type: 'confirmed', reasons });
  } else if (m.cmd === 'stop') {
    clearInterval(backgroundTimer);
    const cpu = process.cpuUsage();
    send({
      type: 'stopped',
      usage: summedUsage(),
      usageErrors: errors.usage,
      firstUsageError: errors.first,
      backgroundUses,
      backgroundRefused,
      cpuMs: (cpu.user + cpu.system) / 1000,
    });
    for (const v of verifiers) v.verifier.close();
    process.exit(0);
  }
});
// The parent going away ends this process too.
rl.on('close', () => process.exit(0));
