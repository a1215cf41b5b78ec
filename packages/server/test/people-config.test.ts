import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { loadConfigDir } from '../src/config/config-dir.js';
import { ConfigError } from '../src/errors.js';
import { PeopleDirectory } from '../src/people/directory.js';

// `people/*.yaml`: people and teams, their file and field errors, and the lookup every owner rule uses.

describe('people/ in a config directory', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'writ-people-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  afterEach(() => rmSync(join(dir, 'people'), { recursive: true, force: true }));

  function write(files: Record<string, string>) {
    mkdirSync(join(dir, 'people'), { recursive: true });
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, 'people', name), text);
  }
  function refusal(files: Record<string, string>): ConfigError {
    write(files);
    try {
      loadConfigDir(dir);
    } catch (err) {
      assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
      return err;
    }
    assert.fail('the people were accepted');
  }

  const alice = 'id: alice\nname: Alice Liddell\nemail: alice@example.com\nteams: [payments]\n';
  const bob = 'id: bob@example.com\nname: Bob\nactive: false\n';
  const payments = 'kind: team\nid: payments\nname: Payments\nmembers: [bob@example.com]\n';

  it('reads people and teams, membership from either side, active by default', () => {
    write({ 'alice.yaml': alice, 'bob.yaml': bob, 'teams.yaml': payments });
    const { people, teams } = loadConfigDir(dir);
    assert.deepEqual(people, [
      { id: 'alice', name: 'Alice Liddell', email: 'alice@example.com', active: true, teams: ['payments'] },
      { id: 'bob@example.com', name: 'Bob', active: false, teams: ['payments'] },
    ]);
    assert.deepEqual(teams, [{ id: 'payments', name: 'Payments', members: ['alice', 'bob@example.com'] }]);
  });

  it('several documents in one file, each error naming its document', () => {
    const e = refusal({ 'all.yaml': `${alice}---\n${payments}---\nid: carol\nname: Carol\nactiv: true\n` });
    assert.match(e.file, /people[/\\]all\.yaml \(document 3\)$/);
    assert.match(e.message, /unknown field activ$/);
  });

  it('a missing name, a bad id and a bad e-mail are refused with their field', () => {
    assert.match(refusal({ 'a.yaml': 'id: alice\n' }).message, /required field name missing$/);
    const id = refusal({ 'a.yaml': 'id: Alice Liddell\nname: Alice\n' });
    assert.equal(id.field, 'id');
    assert.match(id.message, /lowercase letters/);
    const email = refusal({ 'a.yaml': 'id: alice\nname: Alice\nemail: alice\n' });
    assert.equal(email.field, 'email');
  });

  it('an id is one thing: a person and a team with the same id are refused', () => {
    const e = refusal({ 'a.yaml': 'id: payments\nname: P\n', 'b.yaml': 'kind: team\nid: payments\n' });
    assert.match(e.file, /people[/\\]b\.yaml$/);
    assert.equal(e.field, 'id');
    assert.match(e.message, /also defined in .*a\.yaml/);
  });

  it('teams and members must name what is defined', () => {
    const team = refusal({ 'a.yaml': alice });
    assert.equal(team.field, 'teams.0');
    assert.match(team.message, /unknown team "payments"/);
    const member = refusal({
      't.yaml': 'kind: team\nid: ops\nmembers: [alice, nobody]\n',
      'a.yaml': 'id: alice\nname: A\n',
    });
    assert.equal(member.field, 'members.1');
    assert.match(member.message, /unknown person "nobody"/);
    const nested = refusal({ 't.yaml': 'kind: team\nid: ops\nmembers: [sre]\n---\nkind: team\nid: sre\n' });
    assert.match(nested.message, /"sre" is a team/);
  });

  it('an operator may name the person who holds it', () => {
    mkdirSync(join(dir, 'operators'), { recursive: true });
    const key = { kty: 'OKP', crv: 'Ed25519', x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo' };
    writeFileSync(
      join(dir, 'operators', 'a.json'),
      JSON.stringify({ name: 'alice', person: 'alice', jwks: { keys: [key] } }),
    );
    try {
      write({ 'alice.yaml': 'id: alice\nname: A\n' });
      assert.equal(loadConfigDir(dir).operators[0]?.person, 'alice');
      writeFileSync(
        join(dir, 'operators', 'a.json'),
        JSON.stringify({ name: 'alice', person: 'Alice', jwks: { keys: [key] } }),
      );
      assert.throws(
        () => loadConfigDir(dir),
        (e: ConfigError) => e.field === 'person',
      );
    } finally {
      rmSync(join(dir, 'operators'), { recursive: true, force: true });
    }
  });
});

describe('PeopleDirectory: is this owner a known, active person or team?', () => {
  const config = PeopleDirectory.fromConfig({
    people: [
      { id: 'alice', name: 'Alice', active: true, teams: ['payments'] },
      { id: 'bob', name: 'Bob', active: false, teams: ['payments', 'legacy'] },
    ],
    teams: [
      { id: 'payments', name: 'Payments', members: ['alice', 'bob'] },
      { id: 'legacy', name: 'Legacy', members: ['bob'] },
      { id: 'empty', name: 'Empty', members: [] },
    ],
  });

  it('resolves active people and teams, inactive ones with the reason, and unknown names', () => {
    assert.deepEqual(config.owner('alice'), { status: 'active', kind: 'person', id: 'alice' });
    assert.deepEqual(config.owner('payments'), { status: 'active', kind: 'team', id: 'payments' });
    assert.deepEqual(config.owner('bob'), {
      status: 'inactive',
      kind: 'person',
      id: 'bob',
      reason: 'person_inactive',
    });
    assert.equal(config.owner('legacy').status, 'inactive');
    assert.equal(config.owner('empty').status, 'inactive');
    assert.deepEqual(config.owner('Alice'), { status: 'unknown', id: 'Alice' });
    assert.equal(config.isActiveOwner('alice'), true);
    assert.equal(config.isActiveOwner('bob'), false);
    assert.equal(config.isActiveOwner('someone in payments'), false);
  });

  it('merges config and SCIM: either source ends access, the identity provider names, teams union', () => {
    const merged = new PeopleDirectory(
      [
        { id: 'alice', name: 'Alice', active: true, teams: [], source: 'config' },
        {
          id: 'alice',
          name: 'Alice L.',
          email: 'a@x.test',
          active: false,
          teams: [],
          source: 'scim',
          changedAt: 5000,
        },
        { id: 'carol', name: 'Carol', active: true, teams: ['sre'], source: 'scim', changedAt: 1 },
        { id: 'dan', name: 'Dan', active: false, teams: [], source: 'config', changedAt: 100 },
        { id: 'dan', name: 'Dan', active: true, teams: [], source: 'scim', changedAt: 200 },
        { id: 'erin', name: 'Erin', active: true, teams: [], source: 'scim', deleted: true, changedAt: 300 },
      ],
      [
        { id: 'sre', name: 'SRE', members: ['alice'], source: 'config' },
        { id: 'sre', name: 'SRE team', members: ['erin'], source: 'scim' },
      ],
    );
    const alice = merged.person('alice')!;
    assert.equal(alice.active, false);
    assert.equal(alice.name, 'Alice L.');
    assert.equal(alice.email, 'a@x.test');
    assert.equal(alice.inactiveSince, 5000);
    assert.deepEqual(alice.sources, ['config', 'scim']);
    // SCIM saying active does not restore someone config made inactive.
    assert.deepEqual(merged.owner('dan'), {
      status: 'inactive',
      kind: 'person',
      id: 'dan',
      reason: 'person_inactive',
      since: 100,
    });
    assert.deepEqual(merged.owner('erin'), {
      status: 'inactive',
      kind: 'person',
      id: 'erin',
      reason: 'person_deleted',
      since: 300,
    });
    assert.deepEqual(merged.team('sre')?.members, ['alice', 'carol', 'erin']);
    assert.deepEqual(merged.owner('sre'), { status: 'active', kind: 'team', id: 'sre' });
  });

  it('a team whose last active member left is inactive since that member left', () => {
    const d = new PeopleDirectory(
      [
        { id: 'a', name: 'A', active: false, teams: ['t'], source: 'scim', changedAt: 10 },
        { id: 'b', name: 'B', active: false, teams: ['t'], source: 'scim', changedAt: 20 },
      ],
      [{ id: 't', name: 'T', members: [], source: 'config' }],
    );
    assert.deepEqual(d.owner('t'), {
      status: 'inactive',
      kind: 'team',
      id: 't',
      reason: 'team_without_active_member',
      since: 20,
    });
  });
});
