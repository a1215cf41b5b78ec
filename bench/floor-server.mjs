// The HTTP floor: what one Node.js process on one core can do for a token request when it does nothing
// but the unavoidable — node:http with keep-alive, read and parse the form, verify the client assertion
// (ES256, key looked up by client id), with --dpop verify the proof too (key from its header), sign an
// ES256 access token and answer JSON. No framework, no store, no replay cache, no audit, no policy,
// no metrics, no logs: a ceiling for any real server on the same stack, not a server anyone should run.
// Its ratio to the raw crypto bound shows how much of that bound HTTP alone leaves; Writ's ratio to it
// shows what Writ's own work (durable audit, replay checks, policy, limits) costs on top.
// Listens on loopback only. Started pinned to the server's core by the benchmark.
import { createHash, createPrivateKey, createPublicKey, randomBytes, sign, verify } from 'node:crypto';
import { createServer } from 'node:http';
import { AUDIENCE, childConfig, TOKEN_TTL } from './lib/common.mjs';

const { port, clients, signingJwk, dpop } = childConfig();
const issuer = `http://127.0.0.1:${port}`;
const keys = new Map(clients.map((c) => [c.clientId, createPublicKey({ key: c.publicJwk, format: 'jwk' })]));
const signingKey = createPrivateKey({ key: signingJwk, format: 'jwk' });
const header = Buffer.from(JSON.stringify({ alg: 'ES256', kid: signingJwk.kid, typ: 'at+jwt' })).toString(
  'base64url',
);
const NONCE = randomBytes(32).toString('base64url');
const MAX_BODY = 16 * 1024;
const holders = new Map();

const parseJws = (jws) => {
  const [h, p, s] = jws.split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url').toString()),
    claims: JSON.parse(Buffer.from(p, 'base64url').toString()),
    input: Buffer.from(`${h}.${p}`),
    sig: Buffer.from(s, 'base64url'),
  };
};
const verifies = (key, jws) => verify('sha256', jws.input, { key, dsaEncoding: 'ieee-p1363' }, jws.sig);

function answer(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function handle(body, req, res) {
  const form = new URLSearchParams(body);
  const assertion = parseJws(form.get('client_assertion') ?? '');
  const key = keys.get(form.get('client_id'));
  if (!key || !verifies(key, assertion)) return answer(res, 401, { error: 'invalid_client' });
  let cnf;
  if (dpop) {
    const proof = parseJws(req.headers.dpop ?? '');
    if (proof.claims.nonce !== NONCE)
      return answer(res, 400, { error: 'use_dpop_nonce' }, { 'dpop-nonce': NONCE });
    const { kty, crv, x, y } = proof.header.jwk;
    // Holders come back: keep each imported key and its thumbprint, as Writ does (bounded).
    const id = `${x}.${y}`;
    let holder = holders.get(id);
    if (!holder) {
      if (holders.size >= 10_000) holders.clear();
      holder = {
        key: createPublicKey({ key: { kty, crv, x, y }, format: 'jwk' }),
        jkt: createHash('sha256').update(JSON.stringify({ crv, kty, x, y })).digest('base64url'),
      };
      holders.set(id, holder);
    }
    if (!verifies(holder.key, proof)) return answer(res, 400, { error: 'invalid_dpop_proof' });
    cnf = { jkt: holder.jkt };
  }
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    iss: issuer,
    sub: assertion.claims.sub,
    aud: form.get('resource') ?? AUDIENCE,
    client_id: assertion.claims.sub,
    scope: form.get('scope'),
    iat: now,
    nbf: now,
    exp: now + TOKEN_TTL,
    jti: randomBytes(16).toString('base64url'),
    cls: 'bench',
    ...(cnf ? { cnf } : {}),
  };
  const input = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  const sig = sign('sha256', Buffer.from(input), { key: signingKey, dsaEncoding: 'ieee-p1363' });
  answer(res, 200, {
    access_token: `${input}.${sig.toString('base64url')}`,
    token_type: dpop ? 'DPoP' : 'Bearer',
    expires_in: TOKEN_TTL,
  });
}

const server = createServer({ keepAliveTimeout: 30_000 }, (req, res) => {
  if (req.method === 'GET') return answer(res, 200, { issuer });
  const chunks = [];
  let size = 0;
  req.on('data', (c) => {
    size += c.length;
    if (size > MAX_BODY) req.destroy();
    else chunks.push(c);
  });
  req.on('end', () => {
    try {
      handle(Buffer.concat(chunks).toString(), req, res);
    } catch {
      answer(res, 400, { error: 'invalid_request' });
    }
  });
});
server.listen(port, '127.0.0.1');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
