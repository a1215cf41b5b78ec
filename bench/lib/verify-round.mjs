// One round of the verification benchmark, started pinned to one core by bench/verify.mjs. Everything
// timed here runs on this process's single thread:
//   rawVerify  node:crypto `verify` (KeyObject, ES256) over a real token's signing input: the bound of (a), (b)
//   rawPair    two such verifies, the DPoP-bound token's and a real proof's: the bound of (c)
//   bearer     (a) the SDK verifier's verify() of an unbound token, every time a signature check: the
//              tokens are presented in turn and the verified-token cache holds one, so each is a miss
//   cached     (b) verify() of the same unbound token again and again: the verified-token cache
//   dpop       (c) verify() of a DPoP-bound token with a fresh, pre-generated proof per request
// Each verifier is a real one: JWKS from the server, revocation set from its event stream (non-empty).
// Prints one JSON line with the rates (per second) and what was checked.
import { createPrivateKey, createPublicKey, verify } from 'node:crypto';
import { WorkloadClient } from '@writ/sdk/client';
import { createDpopProof, dpopKeyFrom } from '@writ/sdk/dpop';
import { createVerifier } from '@writ/sdk/verifier';
import { childConfig, decodeJwt } from './common.mjs';

const cfg = childConfig();
const { issuer, audience, url, seconds, warmupSeconds, order } = cfg;
if (!/^http:\/\/127\.0\.0\.1:\d+$/.test(issuer)) throw new Error(`refusing non-loopback issuer ${issuer}`);
const MAX_OPS = 20_000_000;
// The verifier's DPoP replay cache holds 100,000 proof ids and refuses new proofs when full (fail
// closed), so one verifier sees at most this many proofs: warm-up and timed phase together.
const MAX_PROOFS = 95_000;

const yieldToLoop = () => new Promise((r) => setImmediate(r));
const withTimeout = (p, ms, what) =>
  Promise.race([
    p,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms)),
  ]);

// ---- inputs --------------------------------------------------------------------------------------
const jwks = await (await fetch(`${issuer}/.well-known/jwks.json`)).json();
const keyFor = (token) => {
  const { kid } = decodeJwt(token).header;
  const jwk = jwks.keys.find((k) => k.kid === kid);
  if (!jwk) throw new Error(`no JWKS key ${kid}`);
  return createPublicKey({ key: jwk, format: 'jwk' });
};
const split = (jws) => {
  const dot = jws.lastIndexOf('.');
  return { input: Buffer.from(jws.slice(0, dot)), sig: Buffer.from(jws.slice(dot + 1), 'base64url') };
};

const bearerRequests = cfg.bearerTokens.map((t) => ({
  authorization: `Bearer ${t}`,
  dpop: [],
  method: 'GET',
  url,
}));
const dpopKey = dpopKeyFrom(
  createPrivateKey({ key: cfg.dpopKey.privateJwk, format: 'jwk' }),
  cfg.dpopKey.publicJwk,
  'ES256',
);
const proofFor = (token) => createDpopProof(dpopKey, { method: 'GET', url, accessToken: token });

// The raw bounds verify exactly what the SDK verifies: a token of the same class (same size), its
// issuer's key; for (c) a proof as the load makes it, with its key imported once.
const raw = { key: keyFor(cfg.bearerTokens[0]), ...split(cfg.bearerTokens[0]) };
const sampleProof = proofFor(cfg.dpopTokens[0]);
const rawDpop = {
  key: keyFor(cfg.dpopTokens[0]),
  ...split(cfg.dpopTokens[0]),
  proofKey: createPublicKey({ key: dpopKey.publicJwk, format: 'jwk' }),
  proof: split(sampleProof),
};
const es256 = (key) => ({ key, dsaEncoding: 'ieee-p1363' });
const rawVerify = () => verify('sha256', raw.input, es256(raw.key), raw.sig);
const rawPair = () =>
  verify('sha256', rawDpop.input, es256(rawDpop.key), rawDpop.sig) &&
  verify('sha256', rawDpop.proof.input, es256(rawDpop.proofKey), rawDpop.proof.sig);

// ---- loops: bounded in time and count ------------------------------------------------------------
function rateSync(op, secs) {
  const start = process.hrtime.bigint();
  const limit = start + BigInt(Math.round(secs * 1e9));
  let n = 0;
  let now = start;
  while (now < limit && n < MAX_OPS) {
    for (let i = 0; i < 64; i++) if (!op()) throw new Error('raw verify failed');
    n += 64;
    now = process.hrtime.bigint();
  }
  return { perSec: n / (Number(now - start) / 1e9), ops: n };
}

/**
 * `op(i)` resolves with the verifier's answer to request `i`; `expectCached(i)` says what `cached` must
 * be. Requests `from`, `from + 1`, … up to `max` (exclusive) are made in order, so a timed phase can go
 * on where its warm-up stopped. The loop yields to the event loop every 512 operations so the verifier's
 * event stream (heartbeats) is read, as it would be in a server.
 */
async function rateAsync(op, secs, { from = 0, max = from + MAX_OPS, expectCached }) {
  const start = process.hrtime.bigint();
  const windowStart = Number(start / 1000n);
  const limit = start + BigInt(Math.round(secs * 1e9));
  let i = from;
  let now = start;
  let wrong = 0;
  let sinceYield = 0;
  while (now < limit && i < max) {
    const end = Math.min(i + 64, max);
    for (; i < end; i++) {
      const r = await op(i);
      if (r.cached !== expectCached(i)) wrong++;
    }
    sinceYield += 64;
    if (sinceYield >= 512) {
      sinceYield = 0;
      await yieldToLoop();
    }
    now = process.hrtime.bigint();
  }
  const n = i - from;
  if (wrong > 0)
    throw new Error(`${wrong} of ${n} answers came ${expectCached(from) ? 'not ' : ''}from the cache`);
  return {
    perSec: n / (Number(now - start) / 1e9),
    ops: n,
    next: i,
    exhausted: i >= max && now < limit,
    // The timed phase on the monotonic clock, µs: what a CPU profile's samples are stamped with.
    windowMicros: [windowStart, Number(now / 1000n)],
  };
}

// ---- verifiers -----------------------------------------------------------------------------------
const client = new WorkloadClient({
  issuer,
  clientId: cfg.verifierClient.clientId,
  privateJwk: cfg.verifierClient.privateJwk,
});
const verifierFor = (cacheSize) => createVerifier({ issuer, audience, client, cacheSize });
const verifiers = [];
async function readyVerifier(cacheSize) {
  const v = verifierFor(cacheSize);
  verifiers.push(v);
  await withTimeout(v.ready(), 15_000, 'verifier ready');
  const s = v.status();
  if (!s.connected || s.keys === 0 || s.revocations === 0)
    throw new Error(`verifier is not set up as expected: ${JSON.stringify(s)}`);
  return v;
}

// ---- scenarios -----------------------------------------------------------------------------------
const scenarios = {
  rawVerify: async () => {
    rateSync(rawVerify, warmupSeconds);
    return rateSync(rawVerify, seconds);
  },
  rawPair: async () => {
    rateSync(rawPair, warmupSeconds);
    return rateSync(rawPair, seconds);
  },
  bearer: async () => {
    // Presented in turn, more tokens than the cache holds (one): every verify() checks the signature.
    const v = await readyVerifier(1);
    const n = bearerRequests.length;
    const op = (i) => v.verify(bearerRequests[i % n]);
    const no = () => false;
    const warm = await rateAsync(op, warmupSeconds, { expectCached: no });
    return rateAsync(op, seconds, { from: warm.next, expectCached: no });
  },
  cached: async () => {
    const v = await readyVerifier(10_000);
    const req = bearerRequests[0];
    const op = () => v.verify(req);
    const warm = await rateAsync(op, warmupSeconds, { expectCached: (i) => i > 0 });
    return rateAsync(op, seconds, { from: warm.next, expectCached: () => true });
  },
  dpop: async () => {
    // Every request its own proof (single-use jti), all made before the verifier sees any; the tokens
    // are presented in turn against a one-entry cache, so the token's signature is checked each time.
    const v = await readyVerifier(1);
    const tokens = cfg.dpopTokens;
    // Sized by a short look at the raw bound: verify() of a bound request cannot beat two verifies.
    const ceiling = rateSync(rawPair, 0.3).perSec;
    const total = Math.min(MAX_PROOFS, Math.ceil(ceiling * 1.3 * (seconds + warmupSeconds)));
    const warmMax = Math.min(Math.ceil(ceiling * 1.3 * warmupSeconds), Math.floor(total / 4));
    const requests = new Array(total);
    for (let i = 0; i < total; i++) {
      const token = tokens[i % tokens.length];
      requests[i] = { authorization: `DPoP ${token}`, dpop: [proofFor(token)], method: 'GET', url };
    }
    const op = (i) => v.verify(requests[i]);
    const no = () => false;
    const warm = await rateAsync(op, warmupSeconds, { max: warmMax, expectCached: no });
    const r = await rateAsync(op, seconds, { from: warm.next, max: total, expectCached: no });
    requests.length = 0;
    return { ...r, proofs: total };
  },
};

// Each scenario once, in the order the parent chose (it alternates between rounds).
const results = {};
for (const name of order) results[name] = await scenarios[name]();
const status = verifiers[0]?.status();
for (const v of verifiers) v.close();

const claimsOf = (t) => decodeJwt(t).payload;
process.stdout.write(
  `${JSON.stringify({
    results,
    revocations: status?.revocations,
    bytes: { bearer: cfg.bearerTokens[0].length, dpop: cfg.dpopTokens[0].length, proof: sampleProof.length },
    bound: {
      bearer: claimsOf(cfg.bearerTokens[0]).cnf ?? null,
      dpop: claimsOf(cfg.dpopTokens[0]).cnf ?? null,
    },
  })}\n`,
);
process.exit(0);
