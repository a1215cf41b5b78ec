import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { EventType } from '@writ/sdk/wire';
import type { LoggedEvent } from '../src/events/event-log.js';
import { type Harness, startHarness } from './helpers/harness.js';
import { eventually } from './helpers/verifier.js';

/**
 * The event log's hand-off from its window of recent events: a subscriber that starts anywhere inside
 * the window gets exactly the events after its place, in order, once each, and then the live ones.
 */
describe('event log window', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(async () => {
    await h?.close();
  });

  /** Appends `n` events in one transaction and wakes the pump; returns their seqs. */
  const append = async (n: number): Promise<number[]> => {
    const { ctx } = h.writ;
    const seqs: number[] = [];
    await ctx.store.transaction(async (tx) => {
      for (let i = 0; i < n; i++) {
        const e = await ctx.events.append(tx, EventType.workloadState, { id: `w-${i}`, state: 'active' });
        seqs.push(e.seq);
      }
    });
    ctx.events.notify();
    return seqs;
  };

  /** Subscribes after `from`; the seqs it hears, as it hears them. */
  const follow = (from: number) => {
    const heard: number[] = [];
    const stop = h.writ.ctx.events.subscribe(from, (e: LoggedEvent) => heard.push(e.seq));
    return { heard, stop };
  };

  it('a subscriber from any place in the window hears exactly what follows it, then live events', async () => {
    const seqs = await append(40);
    const last = seqs.at(-1)!;
    // Once a subscriber from the start has heard everything, the pump has put all of it in the window.
    const all = follow(seqs[0]! - 1);
    await eventually('the pump read the batch', () => (all.heard.at(-1) === last ? true : undefined));
    all.stop();

    const places = [seqs[0]! - 1, seqs[0]!, seqs[1]!, seqs[17]!, seqs[38]!, last];
    const followers = places.map((from) => ({ from, ...follow(from) }));
    const more = await append(3);
    const newest = more.at(-1)!;
    for (const f of followers) {
      await eventually(`the subscriber after ${f.from} heard the live events`, () =>
        f.heard.at(-1) === newest ? true : undefined,
      );
      const expected = [...seqs, ...more].filter((s) => s > f.from);
      assert.deepEqual(f.heard, expected, `subscribed after ${f.from}`);
      f.stop();
    }
  });
});
