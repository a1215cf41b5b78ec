import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WorkloadClient, WritClientError } from '@writ/sdk/client';
import { generateDpopKey } from '@writ/sdk/dpop';
import { CLIENT_ASSERTION_TYPE_JWT_BEARER, GrantType } from '@writ/sdk/wire';
import type { Finding } from '../src/detection/finding.js';
import {
  API,
  expectResponse,
  jtiOf,
  type Mode,
  type RuleWorld,
  readOf,
  startRuleWorld,
} from './helpers/detection-rules.js';
import { httpForm, rawDoc } from './helpers/dpop.js';
import { localIssuerDoc } from './helpers/federation.js';
import { testKey } from './helpers/harness.js';
import { githubClaims, type LocalIssuer, startLocalIssuer } from './helpers/oidc-issuer.js';

// The acceptance test of the built-in rules over issuance, refusals and federation, each in enforce
// and observe mode, with the triggering events arriving as in production: issuances and invalid_client
// refusals at the token endpoint, a replayed CI token at the jwt-bearer grant, all over HTTP. Then
// learning: a rule that reads the baseline only counts while the workload's baseline learns.
// The usage rules: detection-rules.test.ts.

const MODES: Mode[] = ['enforce', 'observe'];
const MINUTE = 60_000;
const HOUR = 3_600_000;
/** The workload GitHub Actions runs of acme/deployer map to (preset github-actions). */
const DEPLOYER = 'spiffe://test.writ/github/acme/deployer';
const WRIT_AUDIENCE = 'https://writ.test';

describe('built-in issuance, refusal and federation rules: the scenario fires, the benign neighbour does not', () => {
  let github: LocalIssuer;
  before(async () => {
    github = await startLocalIssuer('RS256');
  });
  after(async () => {
    await github?.close();
  });

  for (const mode of MODES) {
    describe(`in ${mode} mode`, () => {
      let w: RuleWorld;
      before(async () => {
        w = await startRuleWorld({
          mode,
          workloads: { busy: 'bearer', stuffed: 'bearer' },
          docs: () => [
            localIssuerDoc('github', 'github-actions', github, WRIT_AUDIENCE),
            rawDoc('workload', {
              id: DEPLOYER,
              owner: 'team-ci',
              environment: 'prod',
              classes: ['detect-dpop'],
              federation: ['github'],
            }),
          ],
        });
      });
      after(async () => {
        await w?.close();
      });

      it('issuance-rate-spike: 40 tokens in a moment from a workload that takes two a minute; three are not', async () => {
        const rule = 'issuance-rate-spike';
        const wl = w.workload('busy');
        // Six hours of history, taught as the detector would have heard it: a token every 30 seconds.
        const now = w.clock.now();
        await w.teach(
          Array.from({ length: 720 }, (_, k) => w.pastIssuance(wl.id, now - 6 * HOUR + k * 30_000)),
        );
        const before = await w.findings(rule, wl.id);
        for (let i = 0; i < 3; i++) await wl.token();
        await w.noNewFinding(rule, wl.id, before);
        assert.equal(
          w.h.writ.ctx.detection.engine.baseline(wl.id)?.issuances,
          723,
          'the issuances were heard',
        );

        const burst = new Set<string>();
        for (let i = 0; i < 40; i++) burst.add(jtiOf(await wl.token()));
        const f = await w.newFinding(rule, wl.id, before);
        assert.ok(f.jti !== null && burst.has(f.jti), 'the finding names a token of the burst');
        const read = readOf<{ issue_rate: number; issue_rate_usual: number }>(f, 'baseline');
        assert.ok(
          read.issue_rate >= 30 && read.issue_rate > 10 * read.issue_rate_usual,
          JSON.stringify(read),
        );
        await expectResponse(w, f);
      });

      it('invalid-client-burst: 20 assertions by unknown keys for one client id; two stale ones are not', async () => {
        const rule = 'invalid-client-burst';
        const wl = w.workload('stuffed');
        // As the SDK sends it (client_id beside the assertion), or as a key stuffer may (the
        // assertion alone, whose sub names the client).
        const attempt = (key = wl.key, o: { clientId?: boolean } = {}) =>
          httpForm(`${w.issuer}/oauth2/token`, {
            grant_type: GrantType.clientCredentials,
            ...(o.clientId === false ? {} : { client_id: wl.id }),
            client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
            client_assertion: w.h.assertion({ clientId: wl.id, key }),
            resource: API,
          });
        const claimed = async (): Promise<Finding[]> =>
          (await w.h.store.listFindings({ rule, limit: 1000 })).filter((f) =>
            f.evidence.signals.some((s) => s.kind === 'token.refused' && s.data.client_id === wl.id),
          );
        // The workload itself, with a key it rotated out, twice, then with its key.
        const retired = testKey();
        for (let i = 0; i < 2; i++) assert.equal((await attempt(retired)).body['error'], 'invalid_client');
        assert.equal((await attempt()).status, 200);
        await w.h.writ.ctx.detection.settled();
        assert.deepEqual(await claimed(), []);

        for (let i = 0; i < 20; i++)
          assert.equal((await attempt(testKey(), { clientId: false })).body['error'], 'invalid_client');
        await w.h.writ.ctx.detection.settled();
        const found = await claimed();
        assert.equal(found.length, 1, 'one finding for the claimed client id');
        const f = found[0]!;
        assert.equal(f.workload, '', 'a claimed identity is no workload');
        assert.equal(f.jti, null);
        assert.equal(f.evidence.source, '127.0.0.1');
        assert.equal(readOf<{ refusals: number }>(f, 'workload').refusals, 20);
        await expectResponse(w, f);
        // Never acted on: the workload named in the requests has no risk and still gets tokens.
        assert.equal(await w.risk(wl.id), 0);
        assert.equal((await attempt()).status, 200);
      });

      it('federation-token-replay: a CI token presented by a second holder; the same job renewing is not', async () => {
        const rule = 'federation-token-replay';
        const ciToken = await github.mint(githubClaims(Math.floor(w.clock.now() / 1000)));
        const job = new WorkloadClient({
          issuer: w.issuer,
          federationToken: async () => ciToken,
          dpopKey: generateDpopKey(),
          now: () => Math.floor(w.clock.now() / 1000),
        });
        const before = await w.findings(rule, DEPLOYER);
        const first = await job.requestToken({ audience: API });
        const renewed = await job.requestToken({ audience: API });
        await w.h.writ.ctx.detection.settled();
        await w.noNewFinding(rule, DEPLOYER, before);

        // A copy of the CI token (from a job log), presented with another key.
        const thief = new WorkloadClient({
          issuer: w.issuer,
          federationToken: async () => ciToken,
          now: () => Math.floor(w.clock.now() / 1000),
        });
        await assert.rejects(
          thief.requestToken({ audience: API }),
          (err) => err instanceof WritClientError && err.error === 'invalid_grant',
        );
        const f = await w.newFinding(rule, DEPLOYER, before);
        const [signal] = f.evidence.signals;
        assert.equal(signal?.kind === 'federation.replay' && signal.data.issuer, 'github');
        assert.equal(f.jti, null);
        await expectResponse(w, f, { token: renewed.access_token, holder: job.dpopKey });
        assert.notEqual(first.access_token, renewed.access_token);
      });
    });
  }
});

describe('learning: a rule that reads the baseline only counts while the workload learns', () => {
  let w: RuleWorld;
  before(async () => {
    w = await startRuleWorld({
      mode: 'enforce',
      workloads: { learner: 'bearer' },
      settings: { 'detection.learning_period': 3600, 'detection.learning_events': 10 },
    });
  });
  after(async () => {
    await w?.close();
  });

  it('new-audience-or-operation counts learning (no finding) until an hour and ten uses have passed; human-user-agent acts at once', async () => {
    const drift = 'new-audience-or-operation';
    const wl = w.workload('learner');
    const learning = () => w.detections(drift, 'learning');
    const counted = await learning();

    // Its very first use: never seen, but the baseline has just begun.
    let token = await wl.token();
    assert.equal(await w.use(token, { source: '10.1.2.3' }), `ok:${jtiOf(token)}`);
    // A rule that does not read the baseline is not held back.
    assert.equal(
      await w.use(token, { source: '10.1.2.3', userAgent: 'PostmanRuntime/7.39.0' }),
      `ok:${jtiOf(token)}`,
    );
    await w.report();
    assert.equal(await learning(), counted + 1);
    assert.deepEqual(await w.findings(drift, wl.id), []);
    const human = await w.findings('human-user-agent', wl.id);
    assert.equal(human.length, 1);
    assert.equal(human[0]!.outcome, 'raise_risk');

    // An hour on, another new operation: two uses so far, still learning.
    w.clock.advance(HOUR + MINUTE);
    await w.caughtUp();
    token = await wl.token();
    assert.equal(
      await w.use(token, { source: '10.1.2.3', operation: 'POST /reports' }),
      `ok:${jtiOf(token)}`,
    );
    await w.report();
    assert.equal(await learning(), counted + 2);
    assert.deepEqual(await w.findings(drift, wl.id), []);

    // Ten uses more, and an hour (the rule's cooldown) on: learned; a new operation is a finding.
    for (let i = 0; i < 10; i++) await w.use(token, { source: '10.1.2.3' });
    await w.report();
    w.clock.advance(HOUR + MINUTE);
    await w.caughtUp();
    token = await wl.token();
    assert.equal(
      await w.use(token, { source: '10.1.2.3', operation: 'DELETE /reports/:id' }),
      `ok:${jtiOf(token)}`,
    );
    await w.report();
    assert.equal(await learning(), counted + 2, 'no longer learning');
    const [f] = await w.findings(drift, wl.id);
    assert.ok(f, 'a finding once the baseline has learned');
    assert.equal(f.outcome, 'alert');
    assert.equal(readOf<{ learning: boolean }>(f, 'baseline').learning, false);
    assert.equal(w.h.writ.ctx.detection.engine.baseline(wl.id)?.uses, 14);
  });
});
