// Policy decision benchmark: Writ's Cedar engine in-process (no HTTP), decisions per second for policy
// sets of growing size, in three modes measured in the same run:
//   - unsliced: every decision hands Cedar the whole preparsed set (the naive way);
//   - sliced:   Cedar sees only the policies whose principal/action/resource scope can match;
//   - sliced+cached: as sliced, plus the decision cache (keyed by policy generation, entity versions
//     and the context fields the sliced policies read).
// The sets are realistic in shape: per-workload permits (pinned to one workload and one API), per-API
// forbids (pinned to one API, on sensitivity or time), and a handful of global forbids (environment
// separation, source network, risk ceiling). Requests are drawn from a fixed pool, so the cached mode
// meets repeats the way a resource server does (the same caller asking about the same API again).
//
//   npm run build && node bench/policy.mjs [--sizes 10,100,1000,10000] [--seconds 1] [--rounds 3]
//   node bench/policy.mjs --issuance [--seconds 3]   token endpoint in-process (app.inject, embedded
//       store, audit on): the built-in policy set against a 1,000-policy set that decides every token
//
// Figures are medians over rounds; the machine is shared, so read ratios, not absolutes.
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = fileURLToPath(new URL('..', import.meta.url));
const { compilePolicies } = await import(`${root}packages/server/dist/src/policy/compile.js`);
const { PolicyEngine } = await import(`${root}packages/server/dist/src/policy/engine.js`);
const { buildContext } = await import(`${root}packages/server/dist/src/policy/request.js`);

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '10,100,1000,10000' },
    seconds: { type: 'string', default: '1' },
    rounds: { type: 'string', default: '3' },
    pool: { type: 'string', default: '2000' },
    json: { type: 'boolean', default: false },
    issuance: { type: 'boolean', default: false },
  },
});
const sizes = values.sizes.split(',').map(Number);
const seconds = Number(values.seconds);
const rounds = Number(values.rounds);
const poolSize = Number(values.pool);

/** A deterministic pseudo-random sequence: every run measures the same sets and requests. */
function random(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function policySet(n) {
  const rnd = random(n);
  const workloads = Math.max(2, Math.floor(n * 0.6));
  const apis = Math.max(2, Math.floor(n * 0.2));
  const text = [
    '@id("env-separation")\nforbid (principal is Workload, action, resource) unless { principal.environment == resource.environment };',
    '@id("prod-network")\nforbid (principal is Workload, action in Action::"token", resource) when { resource.environment == "prod" && !context.source_ip.isInRange(ip("10.20.0.0/16")) };',
    '@id("risk-ceiling")\nforbid (principal, action, resource) when { context.risk >= 70 };',
    '@id("people-restricted-mfa")\nforbid (principal is Human, action, resource) when { resource.sensitivity == "restricted" && !principal.mfa };',
  ];
  const actions = ['read', 'write', 'export'];
  const permitted = [];
  let i = 0;
  while (text.length < n) {
    const w = Math.floor(rnd() * workloads);
    const a = Math.floor(rnd() * apis);
    if (rnd() < 0.75) {
      const act = actions[Math.floor(rnd() * actions.length)];
      permitted.push({ w, a, act });
      text.push(
        `@id("w${w}-a${a}-${i}")\npermit (principal == Workload::"spiffe://bench/w${w}", action in [Action::"${act}", Action::"issue"], resource == Api::"https://api${a}.bench") when { context.hour >= ${Math.floor(rnd() * 8)} };`,
      );
    } else {
      text.push(
        `@id("a${a}-window-${i}")\nforbid (principal, action == Action::"write", resource == Api::"https://api${a}.bench") when { resource.sensitivity == "restricted" && context.hour > ${16 + Math.floor(rnd() * 6)} };`,
      );
    }
    i++;
  }
  const resources = Array.from({ length: apis }, (_, k) => ({
    id: `https://api${k}.bench`,
    sensitivity: k % 5 === 0 ? 'restricted' : 'internal',
    environment: 'prod',
    owner: `team${k % 7}`,
  }));
  return {
    set: compilePolicies({
      files: [{ file: 'policies/bench.cedar', text: text.slice(0, n).join('\n') }],
      resources,
    }),
    workloads,
    apis,
    permitted,
  };
}

function requests({ workloads, apis, permitted }) {
  const rnd = random(7);
  const actions = ['read', 'write', 'export', 'issue'];
  return Array.from({ length: poolSize }, () => {
    // Half the requests are ones some per-workload policy permits (callers mostly ask for what they
    // use), the rest are arbitrary pairs.
    const p =
      permitted.length > 0 && rnd() < 0.5 ? permitted[Math.floor(rnd() * permitted.length)] : undefined;
    const w = p ? p.w : Math.floor(rnd() * workloads);
    return {
      principal: {
        type: 'Workload',
        id: `spiffe://bench/w${w}`,
        attrs: { owner: `team${w % 7}`, environment: 'prod', state: 'active', classes: [] },
        tags: {},
        version: 'r1',
      },
      action: p ? p.act : actions[Math.floor(rnd() * actions.length)],
      resource: `https://api${p ? p.a : Math.floor(rnd() * apis)}.bench`,
      context: buildContext(Date.UTC(2026, 4, 6, 8 + Math.floor(rnd() * 12)), {
        source_ip: `10.20.${Math.floor(rnd() * 4)}.7`,
        risk: Math.floor(rnd() * 60),
      }),
    };
  });
}

function measure(engine, pool, fill) {
  // Warm up (JIT, wasm) for a while; the sliced modes first meet every request of the pool once, so
  // they are measured in their steady state (slices built once per principal, action and resource are
  // reused; the cache answers repeats).
  const warm = performance.now() + Math.min(500, seconds * 500);
  for (let k = 0; performance.now() < warm; k++) engine.decide(pool[k % pool.length]);
  if (fill) for (const req of pool) engine.decide(req);
  const end = performance.now() + seconds * 1000;
  let n = 0;
  let allowed = 0;
  while (performance.now() < end) {
    for (let k = 0; k < 50; k++) {
      if (engine.decide(pool[(n + k) % pool.length]).decision === 'allow') allowed++;
    }
    n += 50;
  }
  return { rate: n / seconds, allowed: allowed / n };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
if (values.issuance) {
  await issuance();
  process.exit(0);
}
const results = [];
for (const n of sizes) {
  const built = policySet(n);
  const pool = requests(built);
  const modes = {
    unsliced: () => new PolicyEngine({ set: built.set, slicing: false }),
    sliced: () => new PolicyEngine({ set: built.set, cache: false }),
    'sliced+cached': () => new PolicyEngine({ set: built.set }),
  };
  const row = { policies: n };
  // The modes must agree before their speed means anything.
  const check = { unsliced: modes.unsliced(), sliced: modes['sliced+cached']() };
  let mismatches = 0;
  for (const req of pool.slice(0, 300)) {
    if (check.unsliced.decide(req).decision !== check.sliced.decide(req).decision) mismatches++;
  }
  row.mismatches = mismatches;
  const rates = Object.fromEntries(Object.keys(modes).map((m) => [m, []]));
  // Rounds interleave the modes so a noisy moment does not fall on one mode only.
  for (let r = 0; r < rounds; r++) {
    for (const [mode, make] of Object.entries(modes)) {
      const m = measure(make(), pool, mode !== 'unsliced');
      rates[mode].push(m.rate);
      row[`${mode} allowed`] = Number(m.allowed.toFixed(2));
    }
  }
  for (const mode of Object.keys(modes)) row[mode] = Math.round(median(rates[mode]));
  results.push(row);
  if (!values.json) process.stderr.write(`measured ${n} policies\n`);
}

if (values.json) {
  process.stdout.write(`${JSON.stringify({ seconds, rounds, pool: poolSize, results }, null, 2)}\n`);
} else {
  const base = results[0];
  const pad = (s, w) => String(s).padStart(w);
  const lines = [
    `Cedar decisions per second, in-process, one thread (median of ${rounds} x ${seconds}s; pool of ${poolSize} requests)`,
    `${pad('policies', 9)} ${pad('unsliced', 10)} ${pad('sliced', 10)} ${pad('sliced+cached', 14)}   ${pad('sliced vs 1st', 13)} ${pad('cached vs 1st', 13)}`,
    ...results.map(
      (r) =>
        `${pad(r.policies, 9)} ${pad(r.unsliced, 10)} ${pad(r.sliced, 10)} ${pad(r['sliced+cached'], 14)}   ${pad(`${(r.sliced / base.sliced).toFixed(2)}x`, 13)} ${pad(`${(r['sliced+cached'] / base['sliced+cached']).toFixed(2)}x`, 13)}`,
    ),
    `(allowed share: ${results.map((r) => `${r.policies}: ${r['sliced allowed']}`).join(', ')}; decisions differing between unsliced and sliced+cached on 300 requests: ${results.map((r) => r.mismatches).join(', ')})`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

/**
 * Tokens per second through the whole token endpoint (client_credentials, private_key_jwt, bearer
 * class, audit on, embedded store), sequential, once with the built-in set and once with a 1,000-policy
 * set in which the workload's own policies, environment separation, network and risk rules apply.
 */
async function issuance() {
  const { createHash, generateKeyPairSync, randomBytes, sign } = await import('node:crypto');
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const pino = (await import(`${root}node_modules/pino/pino.js`)).default;
  const { resolveSettings } = await import(`${root}packages/server/dist/src/config/settings.js`);
  const { validateConfig } = await import(`${root}packages/server/dist/src/config/config-dir.js`);
  const { kekFromBytes } = await import(`${root}packages/server/dist/src/keys/kek.js`);
  const { openSqliteStore } = await import(`${root}packages/server/dist/src/store/sqlite/sqlite-store.js`);
  const { createWrit } = await import(`${root}packages/server/dist/src/writ.js`);
  const WORKLOAD = 'spiffe://bench/w0';
  const AUD = 'https://api0.bench';
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' });
  const kid = createHash('sha256')
    .update(JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y }))
    .digest('base64url');
  const docs = [
    {
      kind: 'class',
      file: 'c.yaml',
      index: 0,
      doc: {
        name: 'bench',
        max_ttl: '5m',
        audiences: [AUD],
        scopes: ['read'],
        default_scopes: ['read'],
        binding: 'bearer',
      },
    },
    {
      kind: 'workload',
      file: 'w.yaml',
      index: 0,
      doc: {
        id: WORKLOAD,
        owner: 'team0',
        environment: 'prod',
        classes: ['bench'],
        jwks: { keys: [{ ...jwk, kid, alg: 'ES256' }] },
      },
    },
  ];
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const rates = {};
  for (const [name, sources] of [
    ['built-in set', undefined],
    [
      '1,000 policies',
      {
        files: [
          {
            file: 'policies/bench.cedar',
            text: policySet(1000)
              .set.policies.map((p) => p.text)
              .concat(
                `@id("w0-issue")\npermit (principal == Workload::"${WORKLOAD}", action in Action::"token", resource == Api::"${AUD}");`,
              )
              .join('\n'),
          },
        ],
        resources: [{ id: AUD, sensitivity: 'internal', environment: 'prod', owner: 'team0' }],
      },
    ],
  ]) {
    const dir = mkdtempSync(join(tmpdir(), 'writ-bench-policy-'));
    const settings = resolveSettings(
      undefined,
      {},
      { 'log.level': 'silent', 'limits.client_rate': 1e6, 'limits.client_burst': 1e6 },
    );
    const writ = await createWrit({
      settings,
      store: openSqliteStore({ path: join(dir, 'writ.db') }),
      kek: kekFromBytes(randomBytes(32), 'bench'),
      logger: pino({ level: 'silent' }),
      config: validateConfig(docs, settings.tokens.maxLifetime),
      policies: sources,
    });
    const request = async () => {
      const now = Math.floor(Date.now() / 1000);
      const input = `${b64({ alg: 'ES256', kid })}.${b64({ iss: WORKLOAD, sub: WORKLOAD, aud: settings.issuer, iat: now, exp: now + 60, jti: randomBytes(12).toString('base64url') })}`;
      const sig = sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString(
        'base64url',
      );
      const res = await writ.app.inject({
        method: 'POST',
        url: '/oauth2/token',
        remoteAddress: '10.20.0.9',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({
          grant_type: 'client_credentials',
          client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
          client_assertion: `${input}.${sig}`,
          resource: AUD,
        }).toString(),
      });
      if (res.statusCode !== 200) throw new Error(`${name}: ${res.statusCode} ${res.body}`);
    };
    try {
      for (let i = 0; i < 200; i++) await request();
      const samples = [];
      for (let r = 0; r < rounds; r++) {
        const end = performance.now() + seconds * 1000;
        let n = 0;
        while (performance.now() < end) {
          await request();
          n++;
        }
        samples.push(n / seconds);
      }
      rates[name] = Math.round(median(samples));
    } finally {
      await writ.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const [off, on] = Object.values(rates);
  process.stdout.write(
    `Issuance through the token endpoint, in-process, sequential (median of ${rounds} x ${seconds}s)\n` +
      Object.entries(rates)
        .map(([k, v]) => `  ${k.padEnd(16)} ${v} tokens/s`)
        .join('\n') +
      `\n  ratio ${(on / off).toFixed(2)}\n`,
  );
}
