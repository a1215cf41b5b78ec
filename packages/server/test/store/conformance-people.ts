import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Person, Team } from '../../src/people/person.js';
import type { ScimRecord } from '../../src/people/scim-record.js';
import type { Store } from '../../src/store/store.js';

/** Store contract cases for people: config people and teams, and SCIM resources; part of `runStoreConformance`. */

const NOW = 1_700_000_000_000;

interface Harness {
  store: Store;
  openPeer(): Promise<Store>;
}

function user(id: string, name: string, extra: Partial<ScimRecord> = {}): ScimRecord {
  return {
    type: 'User',
    id,
    name,
    deleted: false,
    version: 1,
    createdAt: NOW,
    updatedAt: NOW,
    inactiveSince: null,
    attributes: {
      userName: name,
      displayName: 'Zoë ✓',
      active: true,
      emails: [{ value: name, primary: true }],
    },
    ...extra,
  };
}

export function peopleConformanceCases(
  withStore: (fn: (t: Harness) => Promise<void>) => Promise<void>,
): void {
  describe('people', () => {
    it('stores, lists, replaces and deletes config people, with when each was last changed', () =>
      withStore(async ({ store, openPeer }) => {
        const alice: Person = {
          id: 'alice',
          name: 'Alice ✓',
          email: 'a@x.test',
          active: true,
          teams: ['ops'],
        };
        const bob: Person = { id: 'bob@x.test', name: 'Bob', active: false, teams: [] };
        await store.putPerson(bob, NOW);
        await store.putPerson(alice, NOW + 1);
        assert.deepEqual(await store.listPeople(), [
          { ...alice, updatedAt: NOW + 1 },
          { ...bob, updatedAt: NOW },
        ]);
        await store.putPerson({ ...alice, active: false }, NOW + 5);
        await store.deletePerson('bob@x.test');
        const peer = await openPeer();
        assert.deepEqual(await peer.listPeople(), [{ ...alice, active: false, updatedAt: NOW + 5 }]);
      }));

    it('stores, lists, replaces and deletes teams', () =>
      withStore(async ({ store }) => {
        const ops: Team = { id: 'ops', name: 'Ops', description: 'on call', members: ['alice'] };
        const dev: Team = { id: 'dev', name: 'Dev', members: [] };
        await store.putTeam(ops);
        await store.putTeam(dev);
        assert.deepEqual(await store.listTeams(), [dev, ops]);
        await store.putTeam({ ...dev, members: ['bob'] });
        await store.deleteTeam('ops');
        assert.deepEqual(await store.listTeams(), [{ ...dev, members: ['bob'] }]);
      }));

    it('creates SCIM resources with unique live names per type, and reads them back whole', () =>
      withStore(async ({ store, openPeer }) => {
        const a = user('00000000-0000-4000-8000-00000000000a', 'alice@x.test');
        assert.equal(await store.putScimResource(a, undefined), 'ok');
        assert.equal(
          await store.putScimResource(
            user('00000000-0000-4000-8000-00000000000b', 'alice@x.test'),
            undefined,
          ),
          'name_taken',
        );
        // Another type may use the name.
        const group: ScimRecord = {
          ...user('00000000-0000-4000-8000-00000000000c', 'alice@x.test'),
          type: 'Group',
        };
        assert.equal(await store.putScimResource(group, undefined), 'ok');
        const peer = await openPeer();
        assert.deepEqual(await peer.getScimResource('User', a.id), a);
        assert.equal(await peer.getScimResource('Group', a.id), undefined);
        assert.deepEqual(await peer.listScimResources('User'), [a]);
        assert.deepEqual(await peer.listScimResources('Group'), [group]);
      }));

    it('replaces only at the expected version, never onto a live twin name; a deleted one frees its name', () =>
      withStore(async ({ store }) => {
        const a = user('00000000-0000-4000-8000-00000000000a', 'alice@x.test');
        const b = user('00000000-0000-4000-8000-00000000000b', 'bob@x.test');
        await store.putScimResource(a, undefined);
        await store.putScimResource(b, undefined);
        const a2 = {
          ...a,
          version: 2,
          updatedAt: NOW + 1,
          inactiveSince: NOW + 1,
          attributes: { active: false },
        };
        assert.equal(await store.putScimResource(a2, 2), 'stale');
        assert.equal(await store.putScimResource(a2, 1), 'ok');
        assert.equal(await store.putScimResource({ ...a2, version: 3 }, 1), 'stale');
        assert.deepEqual(await store.getScimResource('User', a.id), a2);
        assert.equal(
          await store.putScimResource({ ...b, name: 'alice@x.test', version: 2 }, 1),
          'name_taken',
        );
        assert.equal(
          await store.putScimResource(user('00000000-0000-4000-8000-00000000000d', 'x@x.test'), 1),
          'stale',
          'a replace of what does not exist',
        );
        // Deleted (kept as a tombstone): the name may be provisioned again.
        assert.equal(await store.putScimResource({ ...a2, deleted: true, version: 3 }, 2), 'ok');
        const again = user('00000000-0000-4000-8000-00000000000e', 'alice@x.test');
        assert.equal(await store.putScimResource(again, undefined), 'ok');
        // Found by name only while live: the tombstone is not, the new resource is.
        assert.equal((await store.findScimResource('User', 'alice@x.test'))?.id, again.id);
        assert.equal(await store.findScimResource('Group', 'alice@x.test'), undefined);
        assert.equal(await store.findScimResource('User', 'nobody@x.test'), undefined);
        const users = await store.listScimResources('User');
        assert.deepEqual(
          users.map((u) => [u.id.slice(-1), u.name, u.deleted]),
          [
            ['a', 'alice@x.test', true],
            ['b', 'bob@x.test', false],
            ['e', 'alice@x.test', false],
          ],
        );
      }));

    it('a SCIM write in a transaction that rolls back leaves nothing, and a refused put keeps it usable', () =>
      withStore(async ({ store }) => {
        const a = user('00000000-0000-4000-8000-00000000000a', 'alice@x.test');
        await store.putScimResource(a, undefined);
        await assert.rejects(
          store.transaction(async (tx) => {
            await tx.putScimResource(user('00000000-0000-4000-8000-00000000000f', 'fay@x.test'), undefined);
            throw new Error('roll back');
          }),
          /roll back/,
        );
        assert.equal(await store.getScimResource('User', '00000000-0000-4000-8000-00000000000f'), undefined);
        await store.transaction(async (tx) => {
          assert.equal(
            await tx.putScimResource(user('00000000-0000-4000-8000-00000000000b', 'alice@x.test'), undefined),
            'name_taken',
          );
          assert.equal(
            await tx.putScimResource(user('00000000-0000-4000-8000-00000000000c', 'carol@x.test'), undefined),
            'ok',
          );
        });
        assert.equal((await store.listScimResources('User')).length, 2);
      }));
  });
}
