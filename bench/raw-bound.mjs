// The physical bound of issuance: one ES256 verify (the client assertion) + one ES256 sign (the access
// token) per request, with node:crypto KeyObjects on one thread; with `dpop: true`, a second ES256
// verify (the DPoP proof) per request. Started pinned to the server's core.
// Prints one JSON line: { pairsPerSec, signPerSec, verifyPerSec } (pairsPerSec: requests per second
// at the bound, whichever the mode).
import { createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import { AUDIENCE, benchClients, childConfig, es256KeyPair, TOKEN_TTL } from './lib/common.mjs';

const { seconds = 3, warmupSeconds = 0.5, dpop = false } = childConfig();

// Inputs the same size as the real ones: an assertion as the load generator makes it, a token's claims.
const [client] = benchClients(1);
const assertionKey = createPublicKey({ key: client.publicJwk, format: 'jwk' });
const clientKey = createPrivateKey({ key: client.privateJwk, format: 'jwk' });
const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
const now = Math.floor(Date.now() / 1000);
const assertionInput = Buffer.from(
  `${enc({ alg: 'ES256', kid: client.publicJwk.kid, typ: 'JWT' })}.${enc({
    iss: client.clientId,
    sub: client.clientId,
    aud: 'http://127.0.0.1:65535',
    iat: now,
    exp: now + 240,
    jti: 'raw-bound-0123456789-1234',
  })}`,
);
const assertionSig = sign('sha256', assertionInput, { key: clientKey, dsaEncoding: 'ieee-p1363' });
const server = es256KeyPair();
const signingKey = createPrivateKey({ key: server.privateJwk, format: 'jwk' });
const tokenInput = Buffer.from(
  `${enc({ alg: 'ES256', kid: server.publicJwk.kid, typ: 'at+jwt' })}.${enc({
    iss: 'http://127.0.0.1:65535',
    sub: client.clientId,
    aud: AUDIENCE,
    client_id: client.clientId,
    scope: 'bench:read',
    iat: now,
    nbf: now,
    exp: now + TOKEN_TTL,
    jti: 'AbCdEfGhIjKlMnOpQrStUv',
    cls: 'bench',
  })}`,
);

// A DPoP proof as the load generator makes it, verified with the key its header carries.
const proofKeys = es256KeyPair();
const proofKey = createPublicKey({ key: proofKeys.publicJwk, format: 'jwk' });
const proofInput = Buffer.from(
  `${enc({ typ: 'dpop+jwt', alg: 'ES256', jwk: { kty: 'EC', crv: 'P-256', x: proofKeys.publicJwk.x, y: proofKeys.publicJwk.y } })}.${enc(
    {
      jti: 'raw-bound-proof-0123456789',
      htm: 'POST',
      htu: 'http://127.0.0.1:65535/oauth2/token',
      iat: now,
      nonce: 'AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefg',
    },
  )}`,
);
const proofSig = sign('sha256', proofInput, {
  key: createPrivateKey({ key: proofKeys.privateJwk, format: 'jwk' }),
  dsaEncoding: 'ieee-p1363',
});

const ops = {
  pair: () => {
    if (!verify('sha256', assertionInput, { key: assertionKey, dsaEncoding: 'ieee-p1363' }, assertionSig))
      throw new Error('raw bound: verify failed');
    if (dpop && !verify('sha256', proofInput, { key: proofKey, dsaEncoding: 'ieee-p1363' }, proofSig))
      throw new Error('raw bound: proof verify failed');
    sign('sha256', tokenInput, { key: signingKey, dsaEncoding: 'ieee-p1363' });
  },
  sign: () => sign('sha256', tokenInput, { key: signingKey, dsaEncoding: 'ieee-p1363' }),
  verify: () =>
    verify('sha256', assertionInput, { key: assertionKey, dsaEncoding: 'ieee-p1363' }, assertionSig),
};

/** Runs `op` for `secs` seconds (bounded: also at most 10 million iterations); returns ops per second. */
function rate(op, secs) {
  const start = process.hrtime.bigint();
  const limit = start + BigInt(Math.round(secs * 1e9));
  let n = 0;
  let now = start;
  while (now < limit && n < 10_000_000) {
    for (let i = 0; i < 64; i++) op();
    n += 64;
    now = process.hrtime.bigint();
  }
  return n / (Number(now - start) / 1e9);
}

rate(ops.pair, warmupSeconds);
const pairsPerSec = rate(ops.pair, seconds);
const signPerSec = rate(ops.sign, Math.min(1, seconds));
const verifyPerSec = rate(ops.verify, Math.min(1, seconds));
process.stdout.write(`${JSON.stringify({ pairsPerSec, signPerSec, verifyPerSec })}\n`);
