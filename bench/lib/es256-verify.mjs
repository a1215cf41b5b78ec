// The raw cost of checking one fresh DPoP proof's signature, for bench/proxy.mjs: `crypto.verify` of an
// ES256 JWS (ieee-p1363, a KeyObject imported once) over a proof made for this check alone, nothing else.
// Run pinned to the proxies' core: `node es256-verify.mjs '{"count": 4000, "batches": 5}'`. The proofs
// are signed first (not timed); then each is verified once, and the CPU time (user + system) of the
// verify loop is divided by the count. Prints {"us": median µs per verify, "batches": [...]}.
import { createHash, generateKeyPairSync, randomBytes, sign, verify } from 'node:crypto';

const { count, batches } = JSON.parse(process.argv[2] ?? '{}');
const n = count ?? 4000;
const rounds = batches ?? 5;
const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = publicKey.export({ format: 'jwk' });
const b64 = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');
const header = b64({
  typ: 'dpop+jwt',
  alg: 'ES256',
  jwk: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y },
});
const ath = createHash('sha256').update(randomBytes(600)).digest('base64url');

const per = [];
let ok = 0;
for (let b = 0; b < rounds + 1; b++) {
  const proofs = [];
  for (let i = 0; i < n; i++) {
    const payload = b64({
      jti: randomBytes(16).toString('base64url'),
      htm: 'GET',
      htu: 'http://127.0.0.1:9400/vendors/payments/v1/charges/ch_1',
      iat: Math.floor(Date.now() / 1000),
      ath,
    });
    const input = Buffer.from(`${header}.${payload}`);
    proofs.push([input, sign('sha256', input, { key: privateKey, dsaEncoding: 'ieee-p1363' })]);
  }
  const t0 = process.cpuUsage();
  for (const [input, sig] of proofs)
    if (verify('sha256', input, { key: publicKey, dsaEncoding: 'ieee-p1363' }, sig)) ok++;
  const t = process.cpuUsage(t0);
  // The first batch warms up (JIT, OpenSSL's tables) and is not counted.
  if (b > 0) per.push((t.user + t.system) / n);
}
if (ok !== n * (rounds + 1)) throw new Error('a proof did not verify');
per.sort((a, b) => a - b);
process.stdout.write(`${JSON.stringify({ us: per[Math.floor(per.length / 2)], batches: per })}\n`);
