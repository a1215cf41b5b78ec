import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { EventType, type LogEventType } from '@writ/sdk/wire';
import type { AuditLog } from '../src/audit/audit-log.js';
import type { EventLog } from '../src/events/event-log.js';
import { securityEvents } from '../src/ssf/events.js';
import type { Store } from '../src/store/store.js';
import { type Harness, OTHER_WORKLOAD, startHarness } from './helpers/harness.js';

/**
 * Compiles only if the event log refuses what is not in the vocabulary: a misspelt type, a payload of
 * another type, a missing field. Never called (it would append to a real log).
 */
export async function appendsTheVocabularyOnly(log: EventLog, tx: Store): Promise<void> {
  await log.append(tx, EventType.keysRotated, { activated: 'a', retired: 'b', next: 'c' });
  // @ts-expect-error a type no consumer knows
  await log.append(tx, 'revocations', { revocation: undefined });
  // @ts-expect-error the payload of another type
  await log.append(tx, EventType.revocation, { activated: 'a', retired: 'b', next: 'c' });
  // @ts-expect-error a field missing
  await log.append(tx, EventType.policyBundle, { version: 3 });
  // @ts-expect-error a state the registry does not have
  await log.append(tx, EventType.workloadState, { id: 'w', state: 'deleted' });
  // @ts-expect-error stream-only events are never in the log
  await log.append(tx, EventType.snapshot, { revocations: [], keys: [] });
}

/** Compiles only if the audit log refuses a type outside its vocabulary. Never called. */
export async function auditsTheVocabularyOnly(audit: AuditLog): Promise<void> {
  await audit.append({ type: 'token.issued', outcome: 'success', actor: 'a', data: {} });
  await audit.append({ type: 'workload.quarantined', outcome: 'success', actor: 'a', data: {} });
  await audit.append({ type: 'token.refused', outcome: 'refused', actor: 'a', data: {} });
  // @ts-expect-error a misspelt type
  await audit.append({ type: 'token.isued', outcome: 'success', actor: 'a', data: {} });
  // @ts-expect-error a refusal of an endpoint that does not exist
  await audit.append({ type: 'nowhere.refused', outcome: 'refused', actor: 'a', data: {} });
  // @ts-expect-error a workload state the registry does not have
  await audit.append({ type: 'workload.deleted', outcome: 'success', actor: 'a', data: {} });
}

/** What each logged payload must hold, checked at run time against what the server really appended. */
const SHAPES: Partial<Record<LogEventType, (d: Record<string, unknown>) => boolean>> = {
  revocation: (d) => typeof (d['revocation'] as { seq?: unknown } | undefined)?.seq === 'number',
  'keys.rotated': (d) => ['activated', 'retired', 'next'].every((k) => typeof d[k] === 'string'),
  'workload.state': (d) => typeof d['id'] === 'string' && typeof d['state'] === 'string',
  'policy.bundle': (d) => typeof d['version'] === 'number' && typeof d['policy_version'] === 'string',
  'policy.changed': (d) => typeof d['version'] === 'string' || typeof d['resource'] === 'string',
};

describe('the event vocabulary', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(() => h.close());

  test('names are distinct and spelled as on the wire', () => {
    const names = Object.values(EventType);
    assert.equal(new Set(names).size, names.length);
    assert.equal(EventType.revocation, 'revocation');
    assert.equal(EventType.keysRotated, 'keys.rotated');
    assert.equal(EventType.policyBundle, 'policy.bundle');
  });

  test('what the server logs is in the vocabulary, with its payload, and maps to Shared Signals', async () => {
    const from = (await h.writ.ctx.events.bounds()).last;
    assert.equal(
      (await h.admin('POST', '/revocations', { kind: 'jti', value: 'j-1', reason: 'test' })).status,
      201,
    );
    assert.equal((await h.admin('POST', '/keys/rotate')).status, 200);
    const disable = `/workloads/${encodeURIComponent(OTHER_WORKLOAD)}/disable`;
    assert.equal((await h.admin('POST', disable, { reason: 'test' })).status, 200);

    const logged = await h.writ.ctx.events.read(from, 100);
    const types = logged.map((e) => e.type);
    for (const t of [
      EventType.revocation,
      EventType.keysRotated,
      EventType.workloadState,
      EventType.policyBundle,
    ])
      assert.ok(types.includes(t), `${t} logged (got ${types.join(', ')})`);
    const known = new Set<string>(Object.values(EventType));
    for (const e of logged) {
      assert.ok(known.has(e.type), `${e.type} is in the vocabulary`);
      const shape = SHAPES[e.type];
      if (shape) assert.ok(shape(e.data as Record<string, unknown>), e.type);
    }
    const caep = logged.flatMap((e) =>
      securityEvents(e, h.issuer).map((s) => [e.type, s.type.split('/').pop()]),
    );
    assert.deepEqual(caep, [
      [EventType.revocation, 'session-revoked'],
      [EventType.keysRotated, 'credential-change'],
      // Disabling revokes the workload's tokens, then says its state changed.
      [EventType.revocation, 'session-revoked'],
      [EventType.workloadState, 'token-claims-change'],
    ]);
  });
});
