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

  it('fans a batch out over turns of the event loop, and every subscriber still hears each event once, in order', async () => {
    const start = await append(1);
    const from = start[0]!;
    // Turns of the loop, counted by a callback that schedules itself for the next one.
    let turns = 0;
    let counting = true;
    const count = () => {
      turns++;
      if (counting) setImmediate(count);
    };
    setImmediate(count);
    const turnHeard: number[] = [];
    const followers = Array.from({ length: 120 }, () => {
      const heard: number[] = [];
      const stop = h.writ.ctx.events.subscribe(from, (e: LoggedEvent) => {
        heard.push(e.seq);
        turnHeard.push(turns);
      });
      return { heard, stop };
    });
    // Subscribers that leave and join in the middle of a fan-out.
    const leaving = followers.slice(60, 70);
    const joined: { heard: number[]; stop: () => void }[] = [];
    const first = await append(2);
    await eventually('every follower heard the batch', () =>
      followers.every((f) => f.heard.at(-1) === first.at(-1)) ? true : undefined,
    );
    for (const f of leaving) f.stop();
    const late = await append(1);
    joined.push(follow(from));
    const last = await append(2);
    const everything = [...first, ...late, ...last];
    await eventually('the followers that stayed heard the rest', () =>
      followers.every((f, i) => leaving.includes(followers[i]!) || f.heard.at(-1) === last.at(-1))
        ? true
        : undefined,
    );
    await eventually('the one that joined heard the rest', () =>
      joined[0]!.heard.at(-1) === last.at(-1) ? true : undefined,
    );
    counting = false;
    for (const f of followers) {
      if (leaving.includes(f)) continue;
      assert.deepEqual(f.heard, everything, 'each event once, in order');
      f.stop();
    }
    assert.deepEqual(joined[0]!.heard, everything);
    joined[0]!.stop();
    // The first batch reached 120 subscribers over more than one turn of the loop: others ran between.
    const batch = turnHeard.slice(0, 240);
    assert.ok(Math.max(...batch) > Math.min(...batch), 'the loop turned during the fan-out');
  });
});
