import type { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { BlockList, isIP } from 'node:net';
import { normaliseAddress } from '@writ/sdk/wire';
import type { Settings } from '../config/settings.js';
import { ConfigError } from '../errors.js';
import { certificatesFromPem } from './certificate.js';

/** What `tls_client_auth` trusts, and where certificates may come from; built once at start. */
export interface ClientCertificateTrust {
  /** CAs for workloads matched by subject DN or SAN (`tls.client_ca_files`). */
  cas: X509Certificate[];
  /** X.509 bundles per SPIFFE trust domain (`tls.spiffe_bundles`): an SVID chains to its own only. */
  spiffeBundles: Map<string, X509Certificate[]>;
  /** Lower-case name of the header a TLS-terminating proxy sets, if one is configured. */
  forwardedHeader: string | undefined;
  /** Addresses whose forwarded-certificate header is honoured. */
  proxies: BlockList;
  /** Whether any client can present a certificate at all: TLS here, or a proxy in front. */
  enabled: boolean;
}

/** The server's own TLS material (`tls.cert_file`, `tls.key_file`); undefined serves plain HTTP. */
export interface ServerTls {
  cert: Buffer;
  key: Buffer;
  /** Sent as acceptable CA names in the certificate request; acceptance is decided per workload. */
  ca: X509Certificate[];
}

type ReadFile = (path: string) => string | Buffer;

/** Reads the TLS settings' files; errors name the setting. */
export function loadTlsSettings(
  tls: Settings['tls'],
  read: ReadFile = (p) => readFileSync(p),
): { trust: ClientCertificateTrust; server: ServerTls | undefined } {
  const load = (setting: string, path: string): X509Certificate[] => {
    let certs: X509Certificate[];
    try {
      certs = certificatesFromPem(read(path).toString());
    } catch (err) {
      throw new ConfigError('settings', setting, `cannot read ${path}: ${(err as Error).message}`);
    }
    if (certs.length === 0) throw new ConfigError('settings', setting, `${path} holds no certificate`);
    return certs;
  };
  const cas = tls.clientCaFiles.flatMap((f) => load('tls.client_ca_files', f));
  const spiffeBundles = new Map<string, X509Certificate[]>();
  for (const entry of tls.spiffeBundles) {
    const eq = entry.indexOf('=');
    const td = entry.slice(0, eq).replace(/^spiffe:\/\//, '');
    if (eq <= 0 || !/^[a-z0-9._-]+$/.test(td))
      throw new ConfigError('settings', 'tls.spiffe_bundles', `"${entry}" is not <trust-domain>=<file>`);
    spiffeBundles.set(td, [
      ...(spiffeBundles.get(td) ?? []),
      ...load('tls.spiffe_bundles', entry.slice(eq + 1)),
    ]);
  }
  const proxies = new BlockList();
  for (const p of tls.trustedProxies) {
    const [address, bits] = p.split('/');
    const family = isIP(address ?? '');
    const prefix = bits === undefined ? (family === 6 ? 128 : 32) : Number(bits);
    if (family === 0 || !Number.isInteger(prefix) || prefix < 0 || prefix > (family === 6 ? 128 : 32))
      throw new ConfigError('settings', 'tls.trusted_proxies', `"${p}" is not an address or CIDR`);
    proxies.addSubnet(address!, prefix, family === 6 ? 'ipv6' : 'ipv4');
  }
  const forwardedHeader = tls.forwardedCertHeader ? tls.forwardedCertHeader.toLowerCase() : undefined;
  if (forwardedHeader && tls.trustedProxies.length === 0)
    throw new ConfigError('settings', 'tls.trusted_proxies', 'a forwarded certificate header needs proxies');
  let server: ServerTls | undefined;
  if (tls.certFile || tls.keyFile) {
    if (!tls.certFile || !tls.keyFile)
      throw new ConfigError('settings', 'tls.cert_file', 'TLS needs both tls.cert_file and tls.key_file');
    const readRaw = (setting: string, path: string) => {
      try {
        return Buffer.from(read(path));
      } catch (err) {
        throw new ConfigError('settings', setting, `cannot read ${path}: ${(err as Error).message}`);
      }
    };
    server = {
      cert: readRaw('tls.cert_file', tls.certFile),
      key: readRaw('tls.key_file', tls.keyFile),
      ca: [...cas, ...[...spiffeBundles.values()].flat()],
    };
  }
  return {
    trust: {
      cas,
      spiffeBundles,
      forwardedHeader,
      proxies,
      enabled: server !== undefined || !!forwardedHeader,
    },
    server,
  };
}

/** True when `ip` (as node reports a peer, IPv4-mapped IPv6 included) is a listed proxy. */
export function isTrustedProxy(trust: ClientCertificateTrust, ip: string | undefined): boolean {
  if (!ip) return false;
  const address = normaliseAddress(ip);
  if (address === undefined) return false;
  return trust.proxies.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4');
}
