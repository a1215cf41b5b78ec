import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RouteLatencyHistogram } from '../src/vendor/latency-histogram.js';

describe('RouteLatencyHistogram (writ proxy upstream times)', () => {
  it('counts cumulative buckets per route as Prometheus reads them: a value on a bound is in it', () => {
    const h = new RouteLatencyHistogram('t_seconds', 'Test.', [0.1, 0.01, 1], ['a', 'b']);
    for (const v of [0.005, 0.01, 0.05, 0.1, 3]) h.observe('a', v);
    h.observe('b', 0.5);
    const text = h.exposition();
    assert.match(text, /^# HELP t_seconds Test\.\n# TYPE t_seconds histogram\n/);
    const lines = text.split('\n');
    for (const expected of [
      't_seconds_bucket{le="0.01",route="a"} 2',
      't_seconds_bucket{le="0.1",route="a"} 4',
      't_seconds_bucket{le="1",route="a"} 4',
      't_seconds_bucket{le="+Inf",route="a"} 5',
      't_seconds_count{route="a"} 5',
      't_seconds_bucket{le="0.1",route="b"} 0',
      't_seconds_bucket{le="1",route="b"} 1',
      't_seconds_count{route="b"} 1',
      't_seconds_sum{route="b"} 0.5',
    ])
      assert.ok(lines.includes(expected), `${expected} in\n${text}`);
    const sum = Number(/t_seconds_sum\{route="a"\} (\S+)/.exec(text)?.[1]);
    assert.ok(Math.abs(sum - 3.165) < 1e-9, String(sum));
  });

  it('ignores routes it was not made for and values that are not finite; escapes label values', () => {
    const h = new RouteLatencyHistogram('t_seconds', 'Test.', [1], ['we"ird\\\n']);
    h.observe('other', 0.5);
    h.observe('we"ird\\\n', Number.NaN);
    h.observe('we"ird\\\n', Number.POSITIVE_INFINITY);
    const text = h.exposition();
    assert.ok(!text.includes('other'));
    assert.ok(text.includes('t_seconds_count{route="we\\"ird\\\\\\n"} 0'), text);
  });
});
