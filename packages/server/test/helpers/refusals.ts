import assert from 'node:assert/strict';
import type { AuditEvent } from '../../src/audit/audit-event.js';
import { writeRefusalSummaries } from '../../src/audit/refusal.js';
import type { Harness, Reply } from './harness.js';

/** Where a refusal is looked for: a harness, or any Writ with its store and a count of its rows. */
export type RefusalScene = Pick<Harness, 'store' | 'auditEvents' | 'countRows' | 'writ'>;

/** What a refusal must leave untouched: issued-token audit events and rows of the tokens table. */
export interface IssuanceState {
  issuedEvents: number;
  tokenRows: number;
  /** The last audit sequence number; refusal events are looked for after it. */
  lastSeq: number;
}

/** Rows in the tokens table, read through a second connection to the harness database. */
export function tokenRows(h: RefusalScene): Promise<number> {
  return h.countRows('tokens');
}

export async function issuanceState(h: RefusalScene): Promise<IssuanceState> {
  const [last] = await h.store.queryAudit({ limit: 1, order: 'desc' });
  return {
    issuedEvents: (await h.auditEvents('token.issued')).length,
    tokenRows: await tokenRows(h),
    lastSeq: last?.seq ?? 0,
  };
}

/** Audit events of `type` appended after `afterSeq`. */
export async function eventsSince(h: RefusalScene, afterSeq: number, type: string): Promise<AuditEvent[]> {
  return h.store.queryAudit({ afterSeq, type, limit: 1000 });
}

export interface ExpectedRefusal {
  status: number;
  error: string;
  /** Audit event type of the refusal; default `token.refused`. */
  event?: string;
  /** `data.reason` the audit event must carry, where the code alone does not say which check refused. */
  reason?: string;
  /** What the `error_description` must say: the check that failed, and what would pass. */
  description?: RegExp;
  /**
   * The refused workload, where others (a verifier renewing its own token as a fake clock moves) may be
   * issued tokens meanwhile: none may go to it, and every token row added must be one of theirs.
   */
  requester?: string;
}

/**
 * Sends a request that must be refused and checks the whole contract: RFC 6749 error code and status,
 * the description where one is expected, nothing issued or recorded, and exactly one refusal audited
 * with that code. Returns the reply and event.
 */
export async function expectRefusal(
  h: RefusalScene,
  send: () => Promise<Reply>,
  expected: ExpectedRefusal,
): Promise<{ reply: Reply; event: AuditEvent }> {
  const before = await issuanceState(h);
  const reply = await send();
  // A repeat of a refusal already audited in this window (same kind, same source) is counted for the
  // window's summary row: end the window so it is written, as it would be when the window ends.
  await writeRefusalSummaries(h.writ.ctx, true);
  assert.equal(reply.status, expected.status, `status; body ${JSON.stringify(reply.body)}`);
  assert.equal(reply.body['error'], expected.error, `error code; body ${JSON.stringify(reply.body)}`);
  assert.equal(typeof reply.body['error_description'], 'string');
  if (expected.description)
    assert.match(String(reply.body['error_description']), expected.description, 'error_description');
  assert.equal(reply.body['access_token'], undefined, 'no token in a refusal');
  // A token row and its event commit together, so rows counted between two reads of the events lie
  // between the two counts of others' issuances (both zero when no requester is named).
  const issuedTo = async () => {
    const issued = await eventsSince(h, before.lastSeq, 'token.issued');
    const others = issued.filter((e) => expected.requester !== undefined && e.subject !== expected.requester);
    assert.equal(issued.length - others.length, 0, 'no token.issued event');
    return others.length;
  };
  const othersBefore = await issuedTo();
  const rows = await tokenRows(h);
  const othersAfter = await issuedTo();
  assert.ok(
    rows >= before.tokenRows + othersBefore && rows <= before.tokenRows + othersAfter,
    `no token recorded (${rows - before.tokenRows} rows added, ${othersBefore} issued to others)`,
  );
  const events = await eventsSince(h, before.lastSeq, expected.event ?? 'token.refused');
  assert.equal(events.length, 1, `exactly one ${expected.event ?? 'token.refused'} event`);
  const event = events[0]!;
  // A DPoP nonce challenge is answered as an error but audited as what it is (`<endpoint>.challenged`).
  assert.equal(event.outcome, event.type.endsWith('.challenged') ? 'challenged' : 'refused');
  assert.equal(event.data['error'], expected.error);
  assert.equal(event.data['status'], expected.status);
  if (expected.reason !== undefined) assert.equal(event.data['reason'], expected.reason, 'refusal reason');
  return { reply, event };
}

/** Decodes a JWT's header and payload without verifying (tests inspect what they were given). */
export function decodeJwt(token: string): {
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
} {
  const [h, p] = token.split('.');
  const part = (s: string | undefined) =>
    JSON.parse(Buffer.from(s ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
  return { header: part(h), claims: part(p) };
}
