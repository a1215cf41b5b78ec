import { execFileSync } from 'node:child_process';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A certificate made for a test by the `openssl` CLI: its files, PEM and parsed form. */
export interface TestCertificate {
  certFile: string;
  keyFile: string;
  pem: string;
  key: string;
  x509: X509Certificate;
}

/** True when the `openssl` CLI is there; mTLS tests skip (and say why) without it. */
export function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** RFC 8705 §3.1 thumbprint, recomputed independently of Writ's code. */
export const x5tS256 = (pem: string): string =>
  createHash('sha256').update(new X509Certificate(pem).raw).digest('base64url');

const openssl = (args: string[]): void => {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
};

/** `openssl req` arguments for a fresh, unencrypted P-256 key. */
const NEW_P256_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

function finish(dir: string, name: string): TestCertificate {
  const certFile = join(dir, `${name}.pem`);
  const keyFile = join(dir, `${name}.key`);
  const pem = readFileSync(certFile, 'utf8');
  return { certFile, keyFile, pem, key: readFileSync(keyFile, 'utf8'), x509: new X509Certificate(pem) };
}

/** A self-signed root CA (P-256), valid from now for `days`. */
export function makeCa(dir: string, name: string, subject = `/CN=${name}`, days = 2): TestCertificate {
  openssl([
    'req',
    '-x509',
    ...NEW_P256_KEY,
    '-keyout',
    join(dir, `${name}.key`),
    '-out',
    join(dir, `${name}.pem`),
    '-days',
    String(days),
    '-subj',
    subject,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return finish(dir, name);
}

/** A TLS server certificate for 127.0.0.1 issued by `ca`. */
export function makeLocalhostServer(dir: string, name: string, ca: TestCertificate): TestCertificate {
  return makeLeaf(dir, name, ca, { san: 'IP:127.0.0.1', eku: 'serverAuth' });
}

/** An intermediate CA issued by `ca`. */
export function makeIntermediate(dir: string, name: string, ca: TestCertificate): TestCertificate {
  return makeLeaf(dir, name, ca, {
    basicConstraints: 'critical,CA:TRUE',
    keyUsage: 'critical,keyCertSign,cRLSign',
    eku: null,
  });
}

export interface LeafOptions {
  /** `basicConstraints` value. Default `critical,CA:FALSE`. */
  basicConstraints?: string;
  subject?: string;
  /** `subjectAltName` value, e.g. `URI:spiffe://td/w` or `IP:127.0.0.1`. */
  san?: string;
  /** `extendedKeyUsage` value; `null` leaves the extension out. Default clientAuth. */
  eku?: string | null;
  /** `keyUsage` value; `null` leaves the extension out. Default `critical,digitalSignature`. */
  keyUsage?: string | null;
  days?: number;
}

/** An end-entity certificate issued by `ca` (or self-signed when `ca` is undefined). */
export function makeLeaf(
  dir: string,
  name: string,
  ca: TestCertificate | undefined,
  o: LeafOptions = {},
): TestCertificate {
  const ext = [
    `basicConstraints=${o.basicConstraints ?? 'critical,CA:FALSE'}`,
    ...(o.keyUsage === null ? [] : [`keyUsage=${o.keyUsage ?? 'critical,digitalSignature'}`]),
    ...(o.eku === null ? [] : [`extendedKeyUsage=${o.eku ?? 'clientAuth'}`]),
    ...(o.san ? [`subjectAltName=${o.san}`] : []),
  ];
  const extFile = join(dir, `${name}.ext`);
  writeFileSync(extFile, `${ext.join('\n')}\n`);
  const keyFile = join(dir, `${name}.key`);
  const certFile = join(dir, `${name}.pem`);
  const subject = o.subject ?? `/CN=${name}`;
  const days = String(o.days ?? 1);
  if (!ca) {
    openssl([
      'req',
      '-x509',
      ...NEW_P256_KEY,
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      days,
      '-subj',
      subject,
      '-extensions',
      'v3_leaf',
      '-config',
      configWith(dir, name, ext),
    ]);
    return finish(dir, name);
  }
  const csr = join(dir, `${name}.csr`);
  openssl(['req', '-new', ...NEW_P256_KEY, '-keyout', keyFile, '-out', csr, '-subj', subject]);
  openssl([
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca.certFile,
    '-CAkey',
    ca.keyFile,
    '-set_serial',
    `0x${randomBytes(8).toString('hex')}`,
    '-out',
    certFile,
    '-days',
    days,
    '-extfile',
    extFile,
  ]);
  return finish(dir, name);
}

/** A minimal openssl config whose `v3_leaf` section holds `ext` (for self-signed leaves). */
function configWith(dir: string, name: string, ext: string[]): string {
  const file = join(dir, `${name}.cnf`);
  writeFileSync(
    file,
    ['[req]', 'distinguished_name=dn', '[dn]', '[v3_leaf]', ...ext, 'subjectKeyIdentifier=hash', ''].join(
      '\n',
    ),
  );
  return file;
}
