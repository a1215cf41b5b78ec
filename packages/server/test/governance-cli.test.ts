import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type OperatorCli, operatorCli } from './helpers/cli.js';
import {
  AUDIENCE,
  type Harness,
  LEGACY_SECRET,
  LEGACY_WORKLOAD,
  startHarness,
  WORKLOAD,
} from './helpers/harness.js';

const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
const ID = 'legacy-cron-client-secret';

describe('writ exceptions and writ breakglass, run as an operator runs them', () => {
  let h: Harness;
  let writ: OperatorCli;
  before(async () => {
    h = await startHarness({ listen: true });
    writ = operatorCli(h);
  });
  after(() => h.close());

  it('exceptions list, renew, show and retire; a retired exception refuses its secret', async () => {
    const list = await writ(['exceptions', 'list']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(
      list.stdout,
      new RegExp(
        `^active +${ID}  legacy_client_secret  owner team-reports  ends 2099-12-31T23:59:59\\.999Z$`,
        'm',
      ),
    );
    const until = new Date(Date.now() + 30 * 86_400_000).toISOString().slice(0, 10);
    const renew = await writ(['exceptions', 'renew', ID, '--until', until, '--note', 'review moved it in']);
    assert.equal(renew.code, 0, renew.stderr);
    assert.equal(JSON.parse(renew.stdout)['expires'], `${until}T23:59:59.999Z`);
    const show = await writ(['exceptions', 'show', ID]);
    assert.equal(JSON.parse(show.stdout)['renewed']['by'], 'operator:ops');
    const retire = await writ(['exceptions', 'retire', ID, '--note', 'vendor moved to keys']);
    assert.equal(retire.code, 0, retire.stderr);
    assert.equal(JSON.parse(retire.stdout)['status'], 'retired');
    const r = await h.post(
      '/oauth2/token',
      { grant_type: 'client_credentials', resource: AUDIENCE },
      { authorization: basic(LEGACY_WORKLOAD, LEGACY_SECRET) },
    );
    assert.equal(r.status, 400);
    assert.match(String(r.body['error_description']), /exception "legacy-cron-client-secret" .* was retired/);
  });

  it('breakglass request, self-approval refused, list --open, close with a review', async () => {
    const bad = await writ([
      'breakglass',
      'request',
      '--workload',
      WORKLOAD,
      '--class',
      'billing-write',
      '--reason',
      'x',
      '--duration',
      'soon',
    ]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /--duration must be a duration/);
    const req = await writ([
      'breakglass',
      'request',
      '--workload',
      WORKLOAD,
      '--class',
      'billing-write',
      '--reason',
      'incident 9',
      '--duration',
      '30m',
    ]);
    assert.equal(req.code, 0, req.stderr);
    const g = JSON.parse(req.stdout) as Record<string, unknown>;
    assert.equal(g['state'], 'pending');
    assert.equal(g['duration'], 1800);
    const id = g['id'] as string;
    const own = await writ(['breakglass', 'approve', id]);
    assert.notEqual(own.code, 0);
    assert.match(own.stderr, /another operator must approve it \(two-person rule\)/);
    const open = await writ(['breakglass', 'list', '--open']);
    assert.match(
      open.stdout,
      new RegExp(`^pending ${id}  ${WORKLOAD}  billing-write  \\(review open\\)$`, 'm'),
    );
    const close = await writ(['breakglass', 'close', id, '--review', 'not needed after all']);
    assert.equal(close.code, 0, close.stderr);
    assert.equal(JSON.parse(close.stdout)['endCause'], 'cancelled');
    assert.equal((await writ(['breakglass', 'list', '--open'])).stdout.trim(), '(none)');
  });
});
