import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createDpopProof, generateDpopKey } from '../src/dpop/index.js';
import { certificateThumbprint } from '../src/verifier/certificate-binding.js';
import { createHolderCheck } from '../src/verifier/holder-check.js';
import { DpopNonces, type PresentedRequest, ReplayCache, RequestRefusal } from '../src/verifier/index.js';
import { signalOfRefusal } from '../src/wire/signals.js';

// The verifier's holder-binding check: a real DPoP proof is taken once, a replayed one is refused, and
// under a nonce policy a refusal tells the client the nonce to retry with.

const URL_ = 'https://api.example/v1/reports';
const NOW = 1_800_000_000;
const TOKEN = 'eyJ.token.value';
const key = generateDpopKey();
const bound = { cnf: { jkt: key.jkt } };

function request(proof: string | undefined, scheme = 'DPoP'): PresentedRequest {
  return { authorization: `${scheme} ${TOKEN}`, dpop: proof ? [proof] : [], method: 'GET', url: URL_ };
}

const proof = (nonce?: string) =>
  createDpopProof(key, {
    method: 'GET',
    url: URL_,
    accessToken: TOKEN,
    nowSeconds: NOW,
    ...(nonce ? { nonce } : {}),
  });

const refusal = (code: string, reason: string) => (err: unknown) =>
  err instanceof RequestRefusal && err.code === code && err.reason === reason;

describe('createHolderCheck', () => {
  it('takes a proof once and refuses it replayed, through the replay store it was given', async () => {
    const replay = new ReplayCache();
    const check = createHolderCheck({ algorithms: ['ES256'], iatWindow: 60, replay });
    const p = proof();
    await check(request(p), { scheme: 'DPoP', token: TOKEN }, bound, NOW);
    assert.equal(replay.size, 1);
    await assert.rejects(
      check(request(p), { scheme: 'DPoP', token: TOKEN }, bound, NOW + 1),
      refusal('invalid_dpop_proof', 'dpop_replay'),
    );
    // A second verifier sharing the store refuses it too.
    const peer = createHolderCheck({ algorithms: ['ES256'], iatWindow: 60, replay });
    await assert.rejects(
      peer(request(p), { scheme: 'DPoP', token: TOKEN }, bound, NOW + 1),
      refusal('invalid_dpop_proof', 'dpop_replay'),
    );
  });

  it('an unbound token sent as Bearer is not checked for a proof; a bound one sent as Bearer is refused', async () => {
    const replay = new ReplayCache();
    const check = createHolderCheck({ algorithms: ['ES256'], iatWindow: 60, replay });
    await check(request('not-a-proof', 'Bearer'), { scheme: 'Bearer', token: TOKEN }, {}, NOW);
    assert.equal(replay.size, 0);
    await assert.rejects(
      check(request(undefined, 'Bearer'), { scheme: 'Bearer', token: TOKEN }, bound, NOW),
      refusal('invalid_token', 'dpop_bound_as_bearer'),
    );
  });

  it('under a nonce policy, a proof without the nonce is refused with the nonce to use; with it, taken', async () => {
    const nonces = new DpopNonces({ now: () => NOW * 1000 });
    const check = createHolderCheck({
      algorithms: ['ES256'],
      iatWindow: 60,
      replay: new ReplayCache(),
      nonces,
    });
    let told: string | undefined;
    await assert.rejects(check(request(proof()), { scheme: 'DPoP', token: TOKEN }, bound, NOW), (err) => {
      assert.ok(err instanceof RequestRefusal);
      assert.equal(err.code, 'use_dpop_nonce');
      told = err.dpopNonce;
      return true;
    });
    assert.equal(told, nonces.current());
    await assert.rejects(
      check(request(proof('0.forged')), { scheme: 'DPoP', token: TOKEN }, bound, NOW),
      refusal('use_dpop_nonce', 'dpop_nonce'),
    );
    await check(request(proof(told)), { scheme: 'DPoP', token: TOKEN }, bound, NOW);
  });

  it('without a nonce policy, other refusals carry no nonce', async () => {
    const check = createHolderCheck({ algorithms: ['ES256'], iatWindow: 60, replay: new ReplayCache() });
    await assert.rejects(check(request(undefined), { scheme: 'DPoP', token: TOKEN }, bound, NOW), (err) => {
      assert.ok(err instanceof RequestRefusal);
      assert.equal(err.dpopNonce, undefined);
      return true;
    });
  });

  it('each way a bound token comes without its key, with another, or replayed carries its signal', async () => {
    const check = createHolderCheck({ algorithms: ['ES256'], iatWindow: 60, replay: new ReplayCache() });
    const signalOf = async (req: PresentedRequest, claims: typeof bound | object) => {
      const scheme = req.authorization?.startsWith('DPoP') ? 'DPoP' : 'Bearer';
      try {
        await check(req, { scheme, token: TOKEN }, claims, NOW);
      } catch (err) {
        assert.ok(err instanceof RequestRefusal, String(err));
        return [err.reason, signalOfRefusal(err.reason)];
      }
      return ['accepted', undefined];
    };
    const thief = generateDpopKey();
    const thiefs = createDpopProof(thief, { method: 'GET', url: URL_, accessToken: TOKEN, nowSeconds: NOW });
    const p = proof();
    assert.deepEqual(await signalOf(request(undefined, 'Bearer'), bound), [
      'dpop_bound_as_bearer',
      'key_missing',
    ]);
    assert.deepEqual(await signalOf(request(undefined), bound), ['dpop_single_header', 'key_missing']);
    assert.deepEqual(await signalOf(request(thiefs), bound), ['dpop_jkt', 'key_mismatch']);
    assert.deepEqual(await signalOf(request(p), bound), ['accepted', undefined]);
    assert.deepEqual(await signalOf(request(p), bound), ['dpop_replay', 'dpop_replay']);
    // Certificate-bound (RFC 8705): no certificate, or another one.
    const cert = new Uint8Array([1, 2, 3]);
    const certBound = { cnf: { 'x5t#S256': certificateThumbprint(cert) } };
    const bearer = (clientCertificate?: Uint8Array) => ({
      ...request(undefined, 'Bearer'),
      ...(clientCertificate ? { clientCertificate } : {}),
    });
    assert.deepEqual(await signalOf(bearer(), certBound), ['mtls_certificate_missing', 'key_missing']);
    assert.deepEqual(await signalOf(bearer(new Uint8Array([4])), certBound), [
      'mtls_certificate_mismatch',
      'key_mismatch',
    ]);
    assert.deepEqual(await signalOf(bearer(cert), certBound), ['accepted', undefined]);
    // An unbound token with the DPoP scheme says nothing about who holds it.
    assert.deepEqual(await signalOf(request(proof()), {}), ['not_dpop_bound', undefined]);
  });
});
