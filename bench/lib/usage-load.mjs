// Usage load of part (c) of bench/detect.mjs, one process pinned to a core: the SDK's `UsageReporter`s
// of a few verifiers (replicas of each API's verifier workload) reporting the simulated fleet's uses
// (usage-traffic.mjs) of tokens the server really issued, at a fixed total rate (open loop: the uses
// happen whatever the server does; a reporter whose buffer fills drops the oldest and counts it).
//
// Config (argv JSON): { issuer, perSecond, flushIntervalMs, fleet: { workloads, apis, seed },
//                       reporters: [{ clientId, privateJwk, api }], tokens: { '<workload>/<pod>/<api>': jti } }
// Commands (stdin, one JSON a line): { cmd: 'mark' } → { type: 'mark', at, recorded, ...summed stats }
//                                    { cmd: 'stop' } → { type: 'stopped', ...summed stats, cpuMs, errors }
import { createInterface } from 'node:readline';
import { WorkloadClient } from '@writ/sdk/client';
import { UsageReporter } from '@writ/sdk/verifier';
import { childConfig } from './common.mjs';
import { slotKey, usageFleet, usageRecord } from './usage-traffic.mjs';

const cfg = childConfig();
if (new URL(cfg.issuer).hostname !== '127.0.0.1') throw new Error(`refusing non-loopback ${cfg.issuer}`);
const send = (m) => process.stdout.write(`${JSON.stringify(m)}\n`);

const errors = { count: 0, first: undefined };
const byApi = new Map();
for (const r of cfg.reporters) {
  const client = new WorkloadClient({ issuer: cfg.issuer, clientId: r.clientId, privateJwk: r.privateJwk });
  const usage = new UsageReporter({
    issuer: cfg.issuer,
    client,
    flushIntervalMs: cfg.flushIntervalMs,
    onError: (err) => {
      errors.count++;
      errors.first ??= err.message;
    },
  });
  const list = byApi.get(r.api) ?? [];
  list.push(usage);
  byApi.set(r.api, list);
}
const reporters = [...byApi.values()].flat();

const fleet = usageFleet(cfg.fleet);
const uses = fleet.uses({
  start: Date.now(),
  perSecond: cfg.perSecond,
  token: (w, pod, api) => {
    const jti = cfg.tokens[slotKey(w, pod, api)];
    if (!jti) throw new Error(`no token for workload ${w.index}, pod ${pod}, ${api}`);
    return { jti };
  },
});

let recorded = 0;
let turn = 0;
const started = Date.now();
const timer = setInterval(() => {
  const due = Math.floor(((Date.now() - started) / 1000) * cfg.perSecond);
  for (; recorded < due; recorded++) {
    const u = uses.next().value;
    const replicas = byApi.get(u.api);
    replicas[turn++ % replicas.length].record(usageRecord(u));
  }
}, 10);

const summed = () => {
  const sum = { buffered: 0, dropped: 0, sent: 0, refused: 0, failures: 0 };
  for (const u of reporters) for (const [k, v] of Object.entries(u.stats())) sum[k] += v;
  return sum;
};

const rl = createInterface({ input: process.stdin });
rl.on('line', async (line) => {
  const m = JSON.parse(line);
  if (m.cmd === 'mark') send({ type: 'mark', at: Date.now(), recorded, ...summed() });
  else if (m.cmd === 'stop') {
    clearInterval(timer);
    const cpu = process.cpuUsage();
    send({
      type: 'stopped',
      recorded,
      ...summed(),
      errors: errors.count,
      firstError: errors.first,
      cpuMs: (cpu.user + cpu.system) / 1000,
    });
    process.exit(0);
  }
});
rl.on('close', () => process.exit(0));
send({ type: 'ready' });
