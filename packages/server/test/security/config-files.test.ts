import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfigDir } from '../../src/config/config-dir.js';
import { MAX_CONFIG_FILE_BYTES } from '../../src/config/config-file.js';
import { ConfigError } from '../../src/errors.js';
import { readPolicyDir } from '../../src/policy/policy-dir.js';
import { hasOpenssl, makeCa } from '../helpers/certificates.js';

// A config document names key and certificate files by path. An attacker who can place a config
// directory (or one document in it) in front of `writ apply` or `writ serve` tries to make Writ read
// what it must not: the KEK next door, any file by absolute path, a link out of the directory, a device
// that never ends, a FIFO that blocks, a file too large to hold. Each is refused, naming the document
// and the field, and the error never quotes the file.

const SECRET = 'kek-material-that-must-never-be-echoed-0123456789';
const publicJwk = () =>
  generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });

const CLASS = 'name: reports-read\nmax_ttl: 10m\naudiences: [https://reports.test]\nscopes: [reports:read]\n';
const workload = (field: string, ref: string) =>
  `id: spiffe://test.writ/reports/exporter\nowner: team-reports\nenvironment: prod\nclasses: [reports-read]\n${field}: ${JSON.stringify(ref)}\n`;

describe('files named by a config document stay inside the config directory', () => {
  let base: string;
  let config: string;
  let outside: string;

  before(() => {
    base = mkdtempSync(join(tmpdir(), 'writ-config-files-'));
    config = join(base, 'config');
    mkdirSync(join(config, 'classes'), { recursive: true });
    mkdirSync(join(config, 'workloads'));
    writeFileSync(join(config, 'classes', 'reports.yaml'), CLASS);
    // Next to the config directory, as `writ-data/kek` sits next to `writ-data/config`.
    outside = join(base, 'kek');
    writeFileSync(outside, `${SECRET}\n`);
  });

  after(() => rmSync(base, { recursive: true, force: true }));

  /** Writes the workload document naming `ref` in `field`, loads the directory, returns the refusal. */
  function refusal(field: string, ref: string): ConfigError {
    writeFileSync(join(config, 'workloads', 'exporter.yaml'), workload(field, ref));
    try {
      loadConfigDir(config);
    } catch (err) {
      assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
      assert.match(err.file, /workloads[/\\]exporter\.yaml$/, 'the error names the document');
      assert.equal(err.field, field, 'the error names the field');
      assert.ok(!err.message.includes(SECRET.slice(0, 8)), `the error quotes the file: ${err.message}`);
      return err;
    }
    assert.fail(`${field}: ${ref} was read`);
  }

  for (const field of ['jwks_file', 'self_signed_certificates_file']) {
    it(`${field}: a relative path climbing out with ../ is refused`, () => {
      const err = refusal(field, '../../kek');
      assert.match(err.message, /outside the config directory/);
      assert.match(err.message, /inside the config directory/, 'the error says what would pass');
    });

    it(`${field}: an absolute path to a file outside is refused`, () => {
      assert.match(refusal(field, outside).message, /outside the config directory/);
    });

    it(`${field}: a symlink inside the directory pointing outside is refused`, () => {
      const link = join(config, 'workloads', `link-${field}.pub`);
      if (!existsSync(link)) symlinkSync(outside, link);
      assert.match(refusal(field, `link-${field}.pub`).message, /outside the config directory/);
    });
  }

  it('issuers: a jwks_file climbing out of the config directory is refused too', () => {
    rmSync(join(config, 'workloads', 'exporter.yaml'), { force: true });
    mkdirSync(join(config, 'issuers'), { recursive: true });
    const issuer = join(config, 'issuers', 'spire.yaml');
    writeFileSync(
      issuer,
      'name: spire\npreset: spire\nissuer: https://spire.example\njwks_file: ../../kek\naudience: https://writ.test\n',
    );
    try {
      assert.throws(
        () => loadConfigDir(config),
        (err: ConfigError) =>
          /issuers[/\\]spire\.yaml$/.test(err.file) &&
          err.field === 'jwks_file' &&
          /outside the config directory/.test(err.message) &&
          !err.message.includes(SECRET.slice(0, 8)),
      );
    } finally {
      rmSync(issuer);
    }
  });

  it('jwks_file: /dev/zero is refused, not read without end', () => {
    // Through a link inside the directory, so containment alone does not decide it.
    const link = join(config, 'workloads', 'zero.jwk');
    if (!existsSync(link)) symlinkSync('/dev/zero', link);
    assert.match(refusal('jwks_file', 'zero.jwk').message, /outside the config directory|not a regular file/);
    // And a device node named directly: refused as outside, before it is opened.
    assert.match(refusal('jwks_file', '/dev/zero').message, /outside the config directory/);
  });

  it('jwks_file: a FIFO inside the directory is refused without blocking on it', () => {
    const fifo = join(config, 'workloads', 'exporter.fifo');
    if (!existsSync(fifo)) execFileSync('mkfifo', [fifo]);
    const err = refusal('jwks_file', 'exporter.fifo');
    assert.match(err.message, /exporter\.fifo is not a regular file/);
    assert.match(err.message, new RegExp(`at most ${MAX_CONFIG_FILE_BYTES} bytes`));
  });

  it('jwks_file: a file larger than the documented limit is refused', () => {
    writeFileSync(join(config, 'workloads', 'huge.jwk'), Buffer.alloc(MAX_CONFIG_FILE_BYTES + 1, 0x20));
    const err = refusal('jwks_file', 'huge.jwk');
    assert.match(err.message, new RegExp(`larger than ${MAX_CONFIG_FILE_BYTES} bytes`));
  });

  it('jwks_file: a file inside that is not a key is refused without quoting it', () => {
    writeFileSync(join(config, 'workloads', 'notes.jwk'), `${SECRET} is not JSON`);
    const err = refusal('jwks_file', 'notes.jwk');
    assert.match(err.message, /notes\.jwk is not a JSON JWK or JWKS/);
  });

  it('a config document that is a link to a file outside is refused, and a JSON error quotes nothing', () => {
    rmSync(join(config, 'workloads', 'exporter.yaml'), { force: true });
    const link = join(config, 'workloads', 'stolen.json');
    symlinkSync(outside, link);
    try {
      assert.throws(
        () => loadConfigDir(config),
        (err: ConfigError) =>
          /stolen\.json/.test(err.file) &&
          /outside the config directory/.test(err.message) &&
          !err.message.includes(SECRET.slice(0, 8)),
      );
      rmSync(link);
      writeFileSync(link, `${SECRET}`);
      assert.throws(
        () => loadConfigDir(config),
        (err: ConfigError) =>
          /stolen\.json/.test(err.file) && /invalid JSON/.test(err.message) && !err.message.includes('kek-'),
      );
    } finally {
      rmSync(link, { force: true });
    }
  });

  it('policies/: a .cedar link to a file outside, or to /dev/zero, is refused without quoting it', () => {
    const policies = join(config, 'policies');
    mkdirSync(policies, { recursive: true });
    for (const [name, target] of [
      ['stolen.cedar', outside],
      ['zero.cedar', '/dev/zero'],
    ] as const) {
      const link = join(policies, name);
      symlinkSync(target, link);
      try {
        assert.throws(
          () => readPolicyDir(config),
          (err: ConfigError) =>
            err instanceof ConfigError &&
            err.file.endsWith(name) &&
            /outside the config directory/.test(err.message) &&
            !err.message.includes(SECRET.slice(0, 8)),
        );
      } finally {
        rmSync(link);
      }
    }
    rmSync(policies, { recursive: true });
  });

  it('files inside the directory are read: a key beside the document, in keys/, and through an inside link', () => {
    mkdirSync(join(config, 'keys'), { recursive: true });
    writeFileSync(join(config, 'keys', 'exporter.pub.jwk'), JSON.stringify(publicJwk()));
    writeFileSync(join(config, 'workloads', 'beside.pub.jwk'), JSON.stringify({ keys: [publicJwk()] }));
    const inner = join(config, 'workloads', 'inner-link.jwk');
    if (!existsSync(inner)) symlinkSync(join(config, 'keys', 'exporter.pub.jwk'), inner);
    for (const ref of ['../keys/exporter.pub.jwk', 'beside.pub.jwk', 'inner-link.jwk']) {
      writeFileSync(join(config, 'workloads', 'exporter.yaml'), workload('jwks_file', ref));
      const loaded = loadConfigDir(config);
      assert.equal(loaded.workloads[0]?.jwks.length, 1, ref);
    }
  });

  it('self_signed_certificates_file inside the directory registers the certificate', {
    skip: !hasOpenssl() && 'openssl CLI not found',
  }, () => {
    mkdirSync(join(config, 'certs'), { recursive: true });
    const cert = makeCa(join(config, 'certs'), 'exporter');
    const ref = '../certs/exporter.pem';
    writeFileSync(join(config, 'workloads', 'exporter.yaml'), workload('self_signed_certificates_file', ref));
    const loaded = loadConfigDir(config);
    assert.equal(loaded.workloads[0]?.tlsCertificates?.length, 1);
    assert.ok(cert.pem.includes('BEGIN CERTIFICATE'));
  });
});
