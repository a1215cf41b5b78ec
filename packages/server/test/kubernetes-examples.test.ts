import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_FEDERATION_TOKEN_FILE, tokenFromFile, WorkloadClient } from '@writ/sdk/client';
import type { Command } from 'commander';
import { parseAllDocuments } from 'yaml';
import { createProgram } from '../src/cli/program.js';
import { type LoadedConfigDir, loadConfigDir, readConfigDir } from '../src/config/config-dir.js';
import { decodeClaims } from './helpers/dpop.js';
import { configDocuments, type Harness, startHarness } from './helpers/harness.js';
import { kubernetesClaims, type LocalIssuer, startLocalIssuer } from './helpers/oidc-issuer.js';
import { imageRuntime, REPO, WRIT_ENV_NAMES } from './helpers/packed.js';

// examples/kubernetes: the server's Deployment and Service with its config directory in a ConfigMap, and
// a workload (CronJob) whose entrypoint is `writ exec` proving itself with a projected service-account
// token. Parsed and checked against the code: the ConfigMap is a config directory the server loads, the
// projected token's audience is one the federation issuer accepts, the path is where writ exec looks,
// and the workload the token maps to may get a token for the API the CronJob calls. Then, for real, a
// token shaped like the one the kubelet would project is traded at a Writ server running that config.

// biome-ignore lint/suspicious/noExplicitAny: Kubernetes manifests as parsed, walked by path; each check asserts what it reads
type Doc = Record<string, any>;
const docs = (file: string): Doc[] =>
  parseAllDocuments(readFileSync(join(REPO, 'examples/kubernetes', file), 'utf8')).map(
    (d) => d.toJS() as Doc,
  );
const server = docs('writ-server.yaml');
const job = docs('ledger-job.yaml');
const find = (all: Doc[], kind: string, name: string): Doc => {
  const d = all.find((x) => x['kind'] === kind && x['metadata']?.['name'] === name);
  assert.ok(d, `no ${kind} ${name}`);
  return d;
};

const configMap = find(server, 'ConfigMap', 'writ-config');
const deployment = find(server, 'Deployment', 'writ');
const service = find(server, 'Service', 'writ');
const writPod = deployment['spec']['template']['spec'];
const writContainer = writPod['containers'][0];
const envValue = (name: string): Doc | undefined =>
  (writContainer['env'] as Doc[]).find((e) => e['name'] === name);
const ISSUER = envValue('WRIT_ISSUER')!['value'] as string;

const cronJob = find(job, 'CronJob', 'ledger');
const jobPod = cronJob['spec']['jobTemplate']['spec']['template']['spec'];
const jobContainer = jobPod['containers'][0];
const projected = (jobPod['volumes'] as Doc[]).find((v) => v['projected'])!;
const saToken = (projected['projected']['sources'] as Doc[]).find((s) => s['serviceAccountToken'])![
  'serviceAccountToken'
];

const program = createProgram();
const command = (name: string): Command => program.commands.find((c) => c.name() === name)!;
const longOptions = (c: Command) => c.options.map((o) => o.long);

/** The ConfigMap's items written out as the config directory the pod sees at the mount path. */
function configDirectory(dir: string): string {
  const volume = (writPod['volumes'] as Doc[]).find((v) => v['configMap']?.['name'] === 'writ-config')!;
  const items = volume['configMap']['items'] as { key: string; path: string }[];
  assert.deepEqual(
    items.map((i) => i.key).sort(),
    Object.keys(configMap['data']).sort(),
    'every ConfigMap key is placed in the directory, and only those',
  );
  const root = join(dir, 'config');
  for (const { key, path } of items) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), configMap['data'][key]);
  }
  return root;
}

describe('Kubernetes examples', () => {
  let dir: string;
  let config: LoadedConfigDir;
  let configRoot: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'writ-k8s-'));
    configRoot = configDirectory(dir);
    config = loadConfigDir(configRoot, undefined, ISSUER);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const clusterIssuer = () => {
    const issuer = config.issuers.find((i) => i.preset === 'kubernetes');
    assert.ok(issuer, 'the ConfigMap trusts a kubernetes issuer');
    return issuer;
  };

  it("the projected token's audience is one the federation issuer accepts, and this Writ's issuer", () => {
    assert.ok(
      clusterIssuer().audiences.includes(saToken['audience']),
      `${saToken['audience']} is not among ${clusterIssuer().audiences.join(', ')}`,
    );
    assert.equal(saToken['audience'], ISSUER, 'a token minted for this Writ and nothing else');
  });

  it('the token is where writ exec looks, and is rotated before the issuer finds it too old', () => {
    const mount = (jobContainer['volumeMounts'] as Doc[]).find((m) => m['name'] === projected['name'])!;
    assert.equal(join(mount['mountPath'], saToken['path']), DEFAULT_FEDERATION_TOKEN_FILE);
    assert.equal(mount['readOnly'], true);
    const ttl = saToken['expirationSeconds'] as number;
    assert.ok(ttl >= 600, 'Kubernetes refuses less than 10 minutes');
    // The kubelet replaces the token once 80% of its lifetime has passed: its age never exceeds that.
    assert.ok(ttl * 0.8 < clusterIssuer().maxTokenAge, `${ttl}s tokens grow older than max_token_age`);
  });

  it('writ exec is the entrypoint: the Writ issuer, options exec has, the API of a class of the workload the token maps to', () => {
    const [bin, ...args] = jobContainer['command'] as string[];
    assert.equal(bin, 'writ');
    const sep = args.indexOf('--');
    assert.ok(sep > 0 && args.length > sep + 1, 'a program after --');
    const before = args.slice(0, sep);
    assert.deepEqual(before.slice(0, 3), ['--server', ISSUER, 'exec']);
    const execArgs = before.slice(3);
    for (const a of execArgs.filter((x) => x.startsWith('--')))
      assert.ok(longOptions(command('exec')).includes(a), `writ exec has no ${a}`);
    assert.ok(
      !execArgs.includes('--key') && !execArgs.includes('--client-id'),
      'no key: the ambient identity',
    );
    const audience = execArgs[execArgs.indexOf('--audience') + 1]!;
    const ns = cronJob['metadata']['namespace'];
    const sa = jobPod['serviceAccountName'];
    assert.ok(find(job, 'ServiceAccount', sa));
    const id = `spiffe://example.internal/ns/${ns}/sa/${sa}`;
    const workload = config.workloads.find((w) => w.id === id);
    assert.ok(workload, `no workload ${id} in the ConfigMap`);
    assert.ok(workload.federation?.includes(clusterIssuer().name));
    const classes = config.classes.filter((c) => workload.classes.includes(c.name));
    assert.ok(
      classes.some((c) => c.audiences.includes(audience)),
      `no class of ${id} has audience ${audience}`,
    );
    // writ exec writes the token files under TMPDIR: writable although the root filesystem is not.
    const tmp = (jobContainer['env'] as Doc[]).find((e) => e['name'] === 'TMPDIR')!['value'];
    assert.ok((jobContainer['volumeMounts'] as Doc[]).some((m) => m['mountPath'] === tmp));
  });

  it('the server runs as the image user, with its secrets from Secrets and the probes on /readyz and /healthz', () => {
    const image = imageRuntime();
    assert.equal(writPod['securityContext']['runAsNonRoot'], true);
    assert.equal(writPod['securityContext']['runAsUser'], image.uid);
    for (const e of writContainer['env'] as Doc[]) assert.ok(WRIT_ENV_NAMES.has(e['name']), e['name']);
    for (const secret of ['WRIT_KEK', 'WRIT_STORE']) {
      const e = envValue(secret)!;
      assert.equal(e['value'], undefined, `${secret} written in the manifest`);
      assert.ok(e['valueFrom']['secretKeyRef']['name']);
    }
    const [cmd, ...args] = writContainer['args'] as string[];
    assert.equal(cmd, 'serve');
    for (const a of args.filter((x) => x.startsWith('--')))
      assert.ok(longOptions(command('serve')).includes(a), `writ serve has no ${a}`);
    const mounts = writContainer['volumeMounts'] as Doc[];
    assert.ok(mounts.some((m) => m['mountPath'] === args[args.indexOf('--config') + 1] && m['readOnly']));
    assert.ok(mounts.some((m) => m['mountPath'] === image.env['WRIT_DATA_DIR']));
    const port = (writContainer['ports'] as Doc[])[0]!;
    assert.equal(String(port['containerPort']), image.env['WRIT_PORT']);
    assert.deepEqual(writContainer['readinessProbe']['httpGet'], { path: '/readyz', port: port['name'] });
    assert.deepEqual(writContainer['livenessProbe']['httpGet'], { path: '/healthz', port: port['name'] });
    assert.deepEqual(service['spec']['selector'], deployment['spec']['template']['metadata']['labels']);
    assert.equal(service['spec']['ports'][0]['targetPort'], port['name']);
  });

  describe('a token shaped as the kubelet projects it, at a Writ server running the ConfigMap', () => {
    let h: Harness;
    let cluster: LocalIssuer;
    before(async () => {
      cluster = await startLocalIssuer('ES256');
      h = await startHarness({ listen: true });
      // The ConfigMap's documents as they are, but for where the cluster's keys are: the local issuer's.
      const mine = readConfigDir(configRoot).documents.filter((d) => d.kind !== 'operator');
      for (const d of mine)
        if (d.kind === 'issuer') {
          const doc = d.doc as Record<string, unknown>;
          delete doc['jwks'];
          delete doc['jwks_file'];
          Object.assign(doc, { issuer: cluster.url, jwks_uri: cluster.jwksUri });
        }
      const applied = await h.admin('POST', '/config', {
        documents: [
          ...configDocuments({ workload: h.workloadKey, other: h.otherKey, operator: h.operatorKey }),
          ...mine,
        ],
        policies: null,
        dry_run: false,
      });
      assert.equal(applied.status, 200, JSON.stringify(applied.body));
    });
    after(async () => {
      await h.close();
      await cluster.close();
    });

    const trade = async (o: { aud: string; ns?: string; sa?: string }) => {
      const now = Math.floor(Date.now() / 1000);
      const file = join(dir, `writ-token-${Math.random().toString(36).slice(2)}`);
      writeFileSync(
        file,
        await cluster.mint({
          ...kubernetesClaims(
            now,
            cluster.url,
            o.ns ?? cronJob['metadata']['namespace'],
            o.sa ?? jobPod['serviceAccountName'],
          ),
          aud: [o.aud],
          exp: now + saToken['expirationSeconds'],
        }),
      );
      const client = new WorkloadClient({ issuer: h.issuer, federationToken: tokenFromFile(file) });
      const args = jobContainer['command'] as string[];
      return client.requestToken({ audience: args[args.indexOf('--audience') + 1]! });
    };

    it('is traded for a token for the API, as the workload the manifest names', async () => {
      const r = await trade({ aud: saToken['audience'] });
      const claims = decodeClaims(r.access_token);
      assert.equal(
        claims['sub'],
        `spiffe://example.internal/ns/${cronJob['metadata']['namespace']}/sa/${jobPod['serviceAccountName']}`,
      );
    });

    it('is refused for another audience, and for a service account of another namespace', async () => {
      await assert.rejects(
        trade({ aud: 'https://kubernetes.default.svc' }),
        /its aud is none of https:\/\/writ\.example\.internal/,
      );
      await assert.rejects(
        trade({ aud: saToken['audience'], ns: 'default' }),
        /does not satisfy the condition of issuer prod-cluster/,
      );
    });
  });
});
