import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { Command } from 'commander';
import { parse } from 'yaml';
import { createProgram } from '../src/cli/program.js';
import { hasOpenssl, makeCa, makeLeaf } from './helpers/certificates.js';
import { lineMatching, WRIT_MAIN } from './helpers/cli.js';
import { freePort } from './helpers/harness.js';
import { REPO, WRIT_ENV_NAMES } from './helpers/packed.js';

// The Dockerfile and the three-node compose file, checked without Docker (this machine cannot pull base
// images; docs/install.md says what was not run): the image runs as a non-root user with the data
// directory as its volume, builds nothing secret in, and every command, option, environment variable,
// file and endpoint the two files name exists in this repository and its packages. The HEALTHCHECK
// script is run for real against a running `writ serve`.

const read = (path: string) => readFileSync(join(REPO, path), 'utf8');

interface Instruction {
  op: string;
  args: string;
}

/** A Dockerfile's instructions, global ones first, then by stage: continuation lines joined, comments and blank lines dropped. */
function dockerfileStages(text: string): Instruction[][] {
  const logical: string[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    if (/^\s*#/.test(raw)) continue;
    const line = raw.trimEnd();
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const whole = (pending + line).trim();
    pending = '';
    if (whole) logical.push(whole);
  }
  // The first group holds what comes before the first FROM (global ARGs); then one group per stage.
  const stages: Instruction[][] = [[]];
  for (const l of logical) {
    const [, op = '', args = ''] = /^(\S+)\s*(.*)$/.exec(l) ?? [];
    const ins = { op: op.toUpperCase(), args };
    if (ins.op === 'FROM') stages.push([]);
    stages.at(-1)!.push(ins);
  }
  return stages;
}

const all = (stage: Instruction[], op: string) => stage.filter((i) => i.op === op).map((i) => i.args);
const one = (stage: Instruction[], op: string): string => {
  const found = all(stage, op);
  assert.equal(found.length, 1, `one ${op} expected, found ${found.length}`);
  return found[0]!;
};
/** `KEY=value KEY2=value2` of an ENV instruction (values without spaces or quotes, as ours are). */
const envOf = (stage: Instruction[]): Record<string, string> =>
  Object.fromEntries(
    all(stage, 'ENV').flatMap((args) => args.split(/\s+/).map((kv) => kv.split('=', 2) as [string, string])),
  );

const program = createProgram();
const command = (name: string): Command | undefined => program.commands.find((c) => c.name() === name);
const longOptions = (c: Command) => c.options.map((o) => o.long);
const WRIT_ENV = WRIT_ENV_NAMES;
const SECRET_NAME = /KEK|PASSWORD|SECRET|TOKEN|PRIVATE|CREDENTIAL|_KEY\b/i;

describe('Dockerfile', () => {
  const stages = dockerfileStages(read('Dockerfile'));
  const final = stages.at(-1)!;
  const finalEnv = envOf(final);

  it('is multi-stage: the last stage only copies what earlier stages built', () => {
    assert.ok(stages.length - 1 >= 2, `${stages.length - 1} stage(s)`);
    assert.ok(
      all(final, 'COPY').some((c) => c.startsWith('--from=')),
      'the runtime stage copies the installed packages from an earlier stage',
    );
    assert.deepEqual(
      all(final, 'RUN')
        .join(' ')
        .match(/\b(npm|apt-get|g\+\+|make)\b/g) ?? [],
      [],
    );
  });

  it('runs as a non-root user that the image creates, owning only the data directory', () => {
    const user = one(final, 'USER');
    const [uid, gid] = user.split(':');
    assert.match(
      uid!,
      /^[1-9]\d*$/,
      `USER ${user}: numeric and not 0 (Kubernetes runAsNonRoot can check it)`,
    );
    const run = all(final, 'RUN').join(' ');
    assert.match(run, new RegExp(`useradd [^&]*--uid ${uid}\\b`));
    if (gid) assert.match(run, new RegExp(`groupadd [^&]*--gid ${gid}\\b`));
    const dataDir = finalEnv['WRIT_DATA_DIR']!;
    assert.ok(dataDir, 'WRIT_DATA_DIR is set');
    assert.match(run, new RegExp(`install -d -o writ -g writ -m 0700 ${dataDir}\\b`));
    // The code is not the server's to change: nothing but the data directory is chowned.
    assert.equal((run.match(/chown|-o writ/g) ?? []).length, 1);
  });

  it('declares the data directory as its volume and works in it', () => {
    const dataDir = finalEnv['WRIT_DATA_DIR']!;
    assert.deepEqual(JSON.parse(one(final, 'VOLUME')), [dataDir]);
    assert.equal(one(final, 'WORKDIR'), dataDir);
  });

  it('builds no secret in: no secret-named ARG or ENV, no key or data directory copied', () => {
    for (const stage of stages) {
      for (const name of [...all(stage, 'ARG').map((a) => a.split('=')[0]!), ...Object.keys(envOf(stage))])
        assert.doesNotMatch(name, SECRET_NAME, `${name} would be baked into the image`);
      for (const c of all(stage, 'COPY'))
        assert.doesNotMatch(c, /writ-data|\.writ\b|\.jwk|\bkek\b|\.pem/, `COPY ${c}`);
    }
    const ignored = read('.dockerignore');
    for (const pattern of ['writ-data', '.writ', '**/node_modules', 'examples/compose/admin'])
      assert.ok(
        ignored.split('\n').includes(pattern),
        `.dockerignore leaves ${pattern} in the build context`,
      );
  });

  it('copies only files that exist in the repository', () => {
    for (const stage of stages)
      for (const c of all(stage, 'COPY')) {
        if (c.startsWith('--from=')) continue;
        const parts = c.split(/\s+/);
        for (const source of parts.slice(0, -1))
          assert.ok(existsSync(join(REPO, source)), `COPY ${source}: missing`);
      }
  });

  it('runs the writ bin of @writ/server, with a command and variables writ knows', () => {
    const server = JSON.parse(read('packages/server/package.json')) as { bin: Record<string, string> };
    const [bin] = JSON.parse(one(final, 'ENTRYPOINT')) as string[];
    assert.ok(bin && bin in server.bin, `ENTRYPOINT ${bin} is not a bin of @writ/server`);
    const [cmd] = JSON.parse(one(final, 'CMD')) as string[];
    assert.ok(command(cmd!), `CMD ${cmd} is not a writ command`);
    // npm put the bin where PATH looks: node_modules/.bin of the install stage's WORKDIR.
    const install = stages.find((s) => s.some((i) => i.op === 'RUN' && i.args.includes('writ-server-')))!;
    assert.ok(finalEnv['PATH']!.startsWith(`${one(install, 'WORKDIR')}/node_modules/.bin:`));
    for (const name of Object.keys(finalEnv).filter((n) => n.startsWith('WRIT_')))
      assert.ok(WRIT_ENV.has(name), `ENV ${name} is not read by writ`);
    assert.equal(finalEnv['WRIT_HOST'], '0.0.0.0', 'reachable from outside the container');
    assert.ok(one(final, 'EXPOSE').split(/\s+/).includes(finalEnv['WRIT_PORT']!));
  });

  it('installs the tarballs npm pack makes, approving the one install script and nothing else', () => {
    const build = stages.find((s) => s.some((i) => i.op === 'RUN' && i.args.includes('npm pack')))!;
    assert.match(
      all(build, 'RUN').join(' '),
      /npm pack --pack-destination \/packed \.\/packages\/sdk \.\/packages\/server/,
    );
    const project = JSON.parse(read('docker/package.json')) as {
      allowScripts: Record<string, boolean>;
      overrides: unknown;
    };
    assert.deepEqual(project.allowScripts, { 'better-sqlite3': true });
    assert.deepEqual(
      project.overrides,
      (JSON.parse(read('package.json')) as { overrides: unknown }).overrides,
    );
  });

  describe('HEALTHCHECK', () => {
    const healthcheck = one(final, 'HEALTHCHECK');
    const [, exec = '[]'] = /CMD (\[.*\])$/.exec(healthcheck) ?? [];
    const argv = JSON.parse(exec) as string[];
    const script = join(REPO, 'docker', 'healthcheck.mjs');

    it('runs the script the image copies in, in exec form', () => {
      assert.equal(argv[0], 'node');
      const copy = all(final, 'COPY').find((c) => c.endsWith(` ${argv[1]}`));
      assert.equal(copy, `docker/healthcheck.mjs ${argv[1]}`);
      assert.match(healthcheck, /--timeout=3s/);
    });

    const probe = async (port: number, tlsCertFile = ''): Promise<{ code: number | null; err: string }> => {
      const child = spawn(process.execPath, [script], {
        env: { ...process.env, WRIT_PORT: String(port), WRIT_TLS_CERT_FILE: tlsCertFile },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let err = '';
      child.stderr.on('data', (d: Buffer) => {
        err += d.toString();
      });
      const [code] = (await once(child, 'exit')) as [number | null];
      return { code, err };
    };

    it('is healthy while writ serve answers /readyz 200, and not once it has stopped', async (t) => {
      const port = await freePort();
      const dir = mkdtempSync(join(tmpdir(), 'writ-healthcheck-'));
      t.after(() => rmSync(dir, { recursive: true, force: true }));
      const server = spawn(
        process.execPath,
        [WRIT_MAIN, '--data-dir', dir, 'serve', '--port', String(port)],
        {
          env: { ...process.env, WRIT_STORE: '', WRIT_LOG_LEVEL: 'info' },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      await lineMatching(server, { text: '' }, /writ is serving/);
      const up = await probe(port);
      assert.equal(up.code, 0, up.err);
      server.kill('SIGTERM');
      await once(server, 'exit');
      const down = await probe(port);
      assert.equal(down.code, 1);
      assert.match(down.err, /\/readyz: connect ECONNREFUSED/);
    });

    it('asks over HTTPS when the server has a certificate (one that names its host, not 127.0.0.1)', {
      skip: hasOpenssl() ? false : 'openssl is not installed',
    }, async (t) => {
      const dir = mkdtempSync(join(tmpdir(), 'writ-healthcheck-tls-'));
      t.after(() => rmSync(dir, { recursive: true, force: true }));
      const ca = makeCa(dir, 'ca');
      const cert = makeLeaf(dir, 'writ', ca, {
        subject: '/CN=writ.example.internal',
        san: 'DNS:writ.example.internal',
        eku: 'serverAuth',
      });
      const port = await freePort();
      const server = spawn(
        process.execPath,
        [WRIT_MAIN, '--data-dir', join(dir, 'data'), 'serve', '--port', String(port)],
        {
          env: {
            ...process.env,
            WRIT_STORE: '',
            WRIT_LOG_LEVEL: 'info',
            WRIT_TLS_CERT_FILE: cert.certFile,
            WRIT_TLS_KEY_FILE: cert.keyFile,
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      t.after(async () => {
        if (server.exitCode === null && server.signalCode === null) {
          server.kill('SIGTERM');
          await once(server, 'exit');
        }
      });
      await lineMatching(server, { text: '' }, /writ is serving/);
      const https = await probe(port, cert.certFile);
      assert.equal(https.code, 0, https.err);
      // Plain HTTP to a TLS port gets no answer the check takes for health.
      const plain = await probe(port);
      assert.equal(plain.code, 1);
    });

    it('is unhealthy when /readyz answers 503 (store unreachable), and says so', async (t) => {
      const unready = createServer((req, res) => {
        res.writeHead(req.url === '/readyz' ? 503 : 404, { 'content-type': 'application/json' });
        res.end('{"status":"unavailable","store":"unreachable"}');
      });
      unready.listen(0, '127.0.0.1');
      await once(unready, 'listening');
      t.after(() => unready.close());
      const r = await probe((unready.address() as { port: number }).port);
      assert.equal(r.code, 1);
      assert.match(r.err, /\/readyz answered 503: .*"store":"unreachable"/);
    });
  });
});

describe('compose file: three writ nodes on PostgreSQL behind a load balancer', () => {
  const text = read('examples/compose/compose.yaml');
  const compose = parse(text, { merge: true }) as {
    services: Record<string, Record<string, unknown>>;
  };
  const services = compose.services;
  const nodes = Object.entries(services).filter(([name]) => /^writ-/.test(name));
  const imageEnv = envOf(dockerfileStages(read('Dockerfile')).at(-1)!);

  it('has three writ nodes, PostgreSQL and a load balancer', () => {
    assert.deepEqual(
      nodes.map(([n]) => n),
      ['writ-a', 'writ-b', 'writ-c'],
    );
    assert.ok(services['postgres']);
    assert.ok(services['lb']);
  });

  it('gives every node the same image, issuer and KEK, from the environment and never a default', () => {
    const envs = nodes.map(([, s]) => s['environment'] as Record<string, string>);
    for (const env of envs) {
      assert.deepEqual(env, envs[0]);
      for (const name of Object.keys(env)) assert.ok(WRIT_ENV.has(name), `${name} is not read by writ`);
      // `${VAR:?message}`: compose refuses to start without it; nothing secret is written in the file.
      assert.match(env['WRIT_KEK']!, /^\$\{WRIT_KEK:\?[^}]+\}$/);
      assert.match(
        env['WRIT_STORE']!,
        /^postgres:\/\/writ:\$\{POSTGRES_PASSWORD:\?[^}]+\}@postgres:5432\/writ$/,
      );
    }
    assert.equal(new Set(nodes.map(([, s]) => s['image'])).size, 1);
    const pg = services['postgres']!['environment'] as Record<string, string>;
    assert.match(pg['POSTGRES_PASSWORD']!, /^\$\{POSTGRES_PASSWORD:\?[^}]+\}$/);
  });

  it('runs writ serve with options writ has, its config read-only and its data directory a volume', () => {
    const serve = command('serve')!;
    for (const [name, s] of nodes) {
      const [cmd, ...args] = s['command'] as string[];
      assert.equal(cmd, 'serve', name);
      for (const a of args.filter((x) => x.startsWith('--')))
        assert.ok(longOptions(serve).includes(a), `${name}: writ serve has no ${a}`);
      const configDir = args[args.indexOf('--config') + 1];
      const volumes = s['volumes'] as string[];
      assert.ok(volumes.includes(`./admin/config:${configDir}:ro`), `${name}: ${volumes.join(', ')}`);
      assert.ok(
        volumes.includes(`${name}-data:${imageEnv['WRIT_DATA_DIR']}`),
        `${name}: ${volumes.join(', ')}`,
      );
      assert.deepEqual(s['depends_on'], { postgres: { condition: 'service_healthy' } });
    }
    assert.ok(
      (services['postgres']!['healthcheck'] as { test: string[] }).test.join(' ').includes('pg_isready'),
    );
  });

  it('balances over every node, checking /readyz, on the port the issuer names', () => {
    const cfg = read('examples/compose/haproxy.cfg');
    assert.match(cfg, /option httpchk GET \/readyz\n\s*http-check expect status 200/);
    for (const [name] of nodes)
      assert.match(cfg, new RegExp(`server ${name} ${name}:${imageEnv['WRIT_PORT']} check`), name);
    const issuer = /WRIT_ISSUER:-([^}]+)\}/.exec(text)?.[1];
    assert.equal(issuer, 'http://localhost:8080');
    assert.deepEqual(services['lb']!['ports'], [`127.0.0.1:${new URL(issuer!).port}:8080`]);
    assert.match(cfg, /bind :8080\b/);
  });
});
