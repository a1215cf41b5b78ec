import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createDpopProof } from '@writ/sdk/dpop';
import {
  API,
  expectResponse,
  jtiOf,
  type Mode,
  type RuleWorld,
  readOf,
  startRuleWorld,
  URL_OF_API,
} from './helpers/detection-rules.js';

// The acceptance test of the built-in rules that read usage: each fires on its scenario and not on a
// benign neighbour of it (the same workload behaving normally), in enforce mode (its response taken,
// with its effect at the verifier and on risk) and in observe mode (recorded, nothing done). Uses
// arrive as in production: a verifier built with the SDK verifies each request and reports it to
// POST /v1/usage. The benign neighbour runs first, so a cooldown cannot hide the rule firing.
// Issuance, refusal and federation rules, and learning: detection-rules-signals.test.ts.

const MODES: Mode[] = ['enforce', 'observe'];
const MINUTE = 60_000;
const HOUR = 3_600_000;

for (const mode of MODES) {
  describe(`built-in usage rules in ${mode} mode: the scenario fires, the benign neighbour does not`, () => {
    let w: RuleWorld;
    before(async () => {
      w = await startRuleWorld({
        mode,
        workloads: {
          'two-networks': 'bearer',
          'without-key': 'dpop',
          revoked: 'bearer',
          'closed-task': 'dpop',
          'proof-replay': 'dpop',
          'other-environment': 'bearer',
          drift: 'bearer',
          human: 'bearer',
          'many-hosts': 'bearer',
          'outside-hours': 'bearer',
        },
      });
    });
    after(async () => {
      await w?.close();
    });

    it('token-two-networks: a copy used from another network; the holder moving inside its /24 is not', async () => {
      const rule = 'token-two-networks';
      const { id, token: newToken } = w.workload('two-networks');
      const token = await newToken();
      const before = await w.findings(rule, id);
      assert.equal(await w.use(token, { source: '10.1.2.3' }), `ok:${jtiOf(token)}`);
      assert.equal(await w.use(token, { source: '10.1.2.77' }), `ok:${jtiOf(token)}`);
      await w.report();
      await w.noNewFinding(rule, id, before);

      assert.equal(await w.use(token, { source: '203.0.113.7' }), `ok:${jtiOf(token)}`);
      await w.report();
      const f = await w.newFinding(rule, id, before);
      assert.equal(f.jti, jtiOf(token));
      assert.equal(f.evidence.source, '203.0.113.7');
      assert.deepEqual(f.evidence.read, { token: { networks: 2, revoked: false } });
      await expectResponse(w, f, { token });
    });

    it('bound-token-without-key: a DPoP-bound token presented as a bearer token; with its key it is not', async () => {
      const rule = 'bound-token-without-key';
      const wl = w.workload('without-key');
      const holder = wl.client.dpopKey;
      const usual = await wl.token();
      const before = await w.findings(rule, wl.id);
      for (let i = 0; i < 3; i++)
        assert.equal(await w.use(usual, { source: '10.1.2.3', holder }), `ok:${jtiOf(usual)}`);
      await w.report();
      await w.noNewFinding(rule, wl.id, before);

      // A copy of another of its tokens, without the key it is bound to.
      const stolen = await wl.token();
      assert.equal(await w.use(stolen, { source: '198.51.100.9' }), 'dpop_bound_as_bearer');
      await w.report();
      const f = await w.newFinding(rule, wl.id, before);
      assert.equal(f.jti, jtiOf(stolen));
      assert.equal(f.evidence.source, '198.51.100.9', 'the finding names where the copy came from');
      await expectResponse(w, f, { token: stolen, holder, source: '198.51.100.9' });
    });

    it('revoked-token-used: a revoked token presented again; the workload using its new token is not', async () => {
      const rule = 'revoked-token-used';
      const wl = w.workload('revoked');
      const leaked = await wl.token();
      const before = await w.findings(rule, wl.id);
      // Used, and a second later revoked by an operator (it was seen in a log) before the verifier
      // reported the use: a use before the revocation is no use of a revoked token. The workload
      // carries on with a new token.
      assert.equal(await w.use(leaked, { source: '10.1.2.3' }), `ok:${jtiOf(leaked)}`);
      w.clock.advance(1000);
      const revoked = await w.h.admin('POST', '/revocations', {
        kind: 'jti',
        value: jtiOf(leaked),
        reason: 'seen in a build log',
      });
      assert.equal(revoked.status, 201, JSON.stringify(revoked.body));
      await w.caughtUp();
      const next = await wl.token();
      assert.equal(await w.use(next, { source: '10.1.2.3' }), `ok:${jtiOf(next)}`);
      await w.report();
      await w.noNewFinding(rule, wl.id, before);

      assert.equal(await w.use(leaked, { source: '10.1.2.3' }), 'revoked');
      await w.report();
      const f = await w.newFinding(rule, wl.id, before);
      assert.equal(f.jti, jtiOf(leaked));
      await expectResponse(w, f, { token: next });
    });

    it("revoked-token-used: a closed task's token presented again; used while the task was open it is not", async () => {
      const rule = 'revoked-token-used';
      const wl = w.workload('closed-task');
      const holder = wl.client.dpopKey;
      const task = await wl.client.openTask('nightly export');
      const token = await wl.client.token({ audience: API, taskId: task.id });
      const before = await w.findings(rule, wl.id);
      // Used, and the task closed a second later, before the verifier reported the use.
      assert.equal(await w.use(token, { source: '10.1.2.3', holder }), `ok:${jtiOf(token)}`);
      w.clock.advance(1000);
      await wl.client.closeTask(task.id, 'export done');
      await w.report();
      await w.noNewFinding(rule, wl.id, before);

      await w.caughtUp();
      assert.equal(await w.use(token, { source: '10.1.2.3', holder }), 'revoked');
      await w.report();
      const f = await w.newFinding(rule, wl.id, before);
      assert.equal(f.jti, jtiOf(token));
      assert.equal(f.tid, task.id);
      await expectResponse(w, f);
    });

    it('dpop-proof-replay: a captured DPoP proof presented again; a fresh proof for each request is not', async () => {
      const rule = 'dpop-proof-replay';
      const wl = w.workload('proof-replay');
      const holder = wl.client.dpopKey;
      const token = await wl.token();
      const before = await w.findings(rule, wl.id);
      for (let i = 0; i < 3; i++)
        assert.equal(await w.use(token, { source: '10.1.2.3', holder }), `ok:${jtiOf(token)}`);
      await w.report();
      await w.noNewFinding(rule, wl.id, before);

      const proof = createDpopProof(holder, {
        method: 'GET',
        url: URL_OF_API,
        accessToken: token,
        nowSeconds: Math.floor(w.clock.now() / 1000),
      });
      assert.equal(await w.use(token, { source: '10.1.2.3', proof }), `ok:${jtiOf(token)}`);
      assert.equal(await w.use(token, { source: '10.1.2.50', proof }), 'dpop_replay');
      await w.report();
      const f = await w.newFinding(rule, wl.id, before);
      assert.equal(f.jti, jtiOf(token));
      assert.equal(f.evidence.source, '10.1.2.50');
      await expectResponse(w, f, { token, holder });
    });

    it('network-of-other-environment: a prod workload used from a development network; from prod it is not', async () => {
      const rule = 'network-of-other-environment';
      const wl = w.workload('other-environment');
      const before = await w.findings(rule, wl.id);
      const inProd = await wl.token();
      assert.equal(await w.use(inProd, { source: '10.1.4.4' }), `ok:${jtiOf(inProd)}`);
      await w.report();
      await w.noNewFinding(rule, wl.id, before);

      const inDev = await wl.token();
      assert.equal(await w.use(inDev, { source: '10.9.4.4' }), `ok:${jtiOf(inDev)}`);
      await w.report();
      const f = await w.newFinding(rule, wl.id, before);
      assert.equal(f.jti, jtiOf(inDev));
      const [signal] = f.evidence.signals;
      assert.equal(signal?.kind === 'usage' && signal.data.network_environment, 'development');
      assert.deepEqual(f.evidence.read, { workload: { id: wl.id, environment: 'prod' } });
      await expectResponse(w, f, { token: inDev, source: '10.9.4.4' });
    });

    it('new-audience-or-operation: an operation never used before; the usual operation is not', async () => {
      const rule = 'new-audience-or-operation';
      const wl = w.workload('drift');
      // A week of history, taught as the detector would have heard it: GET /reports/:id every 3 hours.
      await w.teach(
        Array.from({ length: 56 }, (_, k) =>
          w.pastUse(wl.id, w.clock.now() - (56 - k) * 3 * HOUR, '10.1.2.3'),
        ),
      );
      const token = await wl.token();
      const before = await w.findings(rule, wl.id);
      assert.equal(await w.use(token, { source: '10.1.2.3' }), `ok:${jtiOf(token)}`);
      await w.report();
      await w.noNewFinding(rule, wl.id, before);

      const use = { source: '10.1.2.3', operation: 'DELETE /reports/:id' };
      assert.equal(await w.use(token, use), `ok:${jtiOf(token)}`);
      await w.report();
      const f = await w.newFinding(rule, wl.id, before);
      assert.equal(f.jti, jtiOf(token));
      const read = readOf(f, 'baseline');
      assert.equal(read['audience_known'], true);
      assert.equal(read['operation_known'], false);
      await expectResponse(w, f, { token });
    });

    it('human-user-agent: a workload token used from Postman; with its own client (or curl) it is not', async () => {
      const rule = 'human-user-agent';
      const wl = w.workload('human');
      const token = await wl.token();
      const before = await w.findings(rule, wl.id);
      assert.equal(await w.use(token, { source: '10.1.2.3' }), `ok:${jtiOf(token)}`);
      // curl: a command-line tool that scripts and CI jobs use too, classed `cli`, not a person's.
      assert.equal(await w.use(token, { source: '10.1.2.3', userAgent: 'curl/8.5.0' }), `ok:${jtiOf(token)}`);
      await w.report();
      await w.noNewFinding(rule, wl.id, before);

      assert.equal(
        await w.use(token, { source: '10.1.2.3', userAgent: 'PostmanRuntime/7.39.0' }),
        `ok:${jtiOf(token)}`,
      );
      await w.report();
      const f = await w.newFinding(rule, wl.id, before);
      assert.equal(f.jti, jtiOf(token));
      const [signal] = f.evidence.signals;
      assert.equal(signal?.kind === 'usage' && signal.data.user_agent_kind, 'interactive');
      await expectResponse(w, f, { token });
    });

    it('many-hosts: one identity presented by 60 new hosts at once; its 25 usual pods are not', async () => {
      const rule = 'many-hosts';
      const wl = w.workload('many-hosts');
      // Eighteen hours of history, taught as the detector would have heard it: a deployment growing
      // from one pod to 25 over twelve hours (a new pod every half hour), each pod calling every 5 minutes.
      const start = w.clock.now() - 18 * HOUR;
      const history = [];
      for (let t = start; t < w.clock.now(); t += 5 * MINUTE) {
        const pods = Math.min(25, 1 + Math.floor((t - start) / (30 * MINUTE)));
        for (let pod = 1; pod <= pods; pod++) history.push(w.pastUse(wl.id, t, `10.30.0.${pod}`));
      }
      await w.teach(history);
      assert.deepEqual(await w.findings(rule, wl.id), [], 'the deployment growing raised nothing');
      const token = await wl.token();
      for (let pod = 1; pod <= 25; pod++)
        assert.equal(await w.use(token, { source: `10.30.0.${pod}` }), `ok:${jtiOf(token)}`);
      await w.report();
      await w.noNewFinding(rule, wl.id, []);

      for (let host = 101; host <= 160; host++)
        assert.equal(await w.use(token, { source: `10.30.0.${host}` }), `ok:${jtiOf(token)}`);
      await w.report();
      const f = await w.newFinding(rule, wl.id, []);
      assert.equal(f.jti, jtiOf(token));
      const read = readOf<{ hosts: number; hosts_usual: number }>(f, 'baseline');
      assert.ok(read.hosts >= 20 && read.hosts > 3.5 * read.hosts_usual, JSON.stringify(read));
      assert.ok(
        read.hosts_usual > 15,
        `the usual number of hosts followed the deployment (${read.hosts_usual})`,
      );
      await expectResponse(w, f, { token, source: '10.30.0.1' });
    });

    // Last: it moves the clock.
    it('outside-usual-hours: a use nine hours from the hour the workload works at; at that hour it is not', async () => {
      const rule = 'outside-usual-hours';
      const wl = w.workload('outside-hours');
      // Two weeks of history, taught as the detector would have heard it: 30 uses a day, from a quarter
      // of an hour before the time of day the clock starts at to a quarter after, none at other hours.
      const now = w.clock.now();
      const history = [];
      for (let day = 14; day >= 1; day--)
        for (let i = 0; i < 30; i++)
          history.push(w.pastUse(wl.id, now - day * 24 * HOUR - 15 * MINUTE + i * MINUTE, '10.1.2.3'));
      await w.teach(history);
      const before = await w.findings(rule, wl.id);
      const token = await wl.token();
      assert.equal(await w.use(token, { source: '10.1.2.3' }), `ok:${jtiOf(token)}`);
      await w.report();
      await w.noNewFinding(rule, wl.id, before);

      w.clock.advance(9 * HOUR);
      await w.caughtUp();
      const late = await wl.token();
      assert.equal(await w.use(late, { source: '10.1.2.3' }), `ok:${jtiOf(late)}`);
      await w.report();
      const f = await w.newFinding(rule, wl.id, before);
      assert.equal(f.jti, jtiOf(late));
      assert.equal(readOf<{ hour_share: number }>(f, 'baseline').hour_share, 0);
      await expectResponse(w, f, { token: late });
    });
  });
}
