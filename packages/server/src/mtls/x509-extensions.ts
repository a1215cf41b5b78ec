import { SocketAddress } from 'node:net';

/**
 * What node:crypto's X509Certificate does not expose, read from the DER (RFC 5280 §4.1): the key
 * usage bits, the subject alternative names by type and the subject as attribute-value pairs. A
 * certificate this reader cannot walk is refused by the caller, never half-read.
 */
export interface CertificateFacts {
  /** Key usage bits (RFC 5280 §4.2.1.3), undefined when the extension is absent. */
  keyUsage: { digitalSignature: boolean; keyCertSign: boolean } | undefined;
  san: { dns: string[]; uri: string[]; email: string[]; ip: string[] };
  /** The subject's RDNs in certificate order, each a sorted list of `TYPE=value`. */
  subject: string[][];
}

export class DerError extends Error {}

interface Tlv {
  tag: number;
  /** Offsets of the value in the buffer. */
  start: number;
  end: number;
}

function readTlv(buf: Uint8Array, at: number, limit: number): Tlv {
  if (at + 2 > limit) throw new DerError('truncated');
  const tag = buf[at]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError('high tag numbers are not used in certificates');
  let len = buf[at + 1]!;
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || start + n > limit) throw new DerError('bad length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[start + i]!;
    start += n;
  }
  const end = start + len;
  if (end > limit) throw new DerError('truncated');
  return { tag, start, end };
}

function children(buf: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let at = parent.start; at < parent.end; ) {
    const t = readTlv(buf, at, parent.end);
    out.push(t);
    at = t.end;
    if (out.length > 10_000) throw new DerError('too many elements');
  }
  return out;
}

function oid(buf: Uint8Array, t: Tlv): string {
  if (t.tag !== 0x06 || t.end === t.start) throw new DerError('expected an OID');
  const first = buf[t.start]!;
  const parts = [Math.min(2, Math.floor(first / 40)), first - Math.min(2, Math.floor(first / 40)) * 40];
  let v = 0;
  for (let i = t.start + 1; i < t.end; i++) {
    v = v * 128 + (buf[i]! & 0x7f);
    if (!(buf[i]! & 0x80)) {
      parts.push(v);
      v = 0;
    }
  }
  return parts.join('.');
}

function text(buf: Uint8Array, t: Tlv): string {
  const bytes = Buffer.from(buf.subarray(t.start, t.end));
  switch (t.tag) {
    case 0x0c: // UTF8String
    case 0x13: // PrintableString
    case 0x16: // IA5String
    case 0x12: // NumericString
      return bytes.toString('utf8');
    case 0x14: // TeletexString, read as Latin-1 as most implementations do
      return bytes.toString('latin1');
    case 0x1e: // BMPString: UTF-16BE
      return Buffer.from(bytes).swap16().toString('utf16le');
    default:
      throw new DerError(`unsupported string type 0x${t.tag.toString(16)}`);
  }
}

/** Short names of the attribute types RFC 4514 §3 lists, plus the common ones beyond it. */
const ATTRIBUTE_NAMES: Record<string, string> = {
  '2.5.4.3': 'CN',
  '2.5.4.5': 'SERIALNUMBER',
  '2.5.4.6': 'C',
  '2.5.4.7': 'L',
  '2.5.4.8': 'ST',
  '2.5.4.9': 'STREET',
  '2.5.4.10': 'O',
  '2.5.4.11': 'OU',
  '2.5.4.12': 'TITLE',
  '0.9.2342.19200300.100.1.1': 'UID',
  '0.9.2342.19200300.100.1.25': 'DC',
  '1.2.840.113549.1.9.1': 'EMAILADDRESS',
};

export const attributeName = (type: string): string => ATTRIBUTE_NAMES[type] ?? type;

function ipText(bytes: Uint8Array): string {
  if (bytes.length === 4) return [...bytes].join('.');
  if (bytes.length === 16) {
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
    return canonicalIp(groups.join(':')) ?? groups.join(':');
  }
  return Buffer.from(bytes).toString('hex');
}

/** One spelling per address, so `::1` and `0:0:0:0:0:0:0:1` compare equal. */
export function canonicalIp(value: string): string | undefined {
  try {
    return new SocketAddress({ address: value, family: value.includes(':') ? 'ipv6' : 'ipv4' }).address;
  } catch {
    return undefined;
  }
}

/** Reads the facts of a DER certificate; throws DerError when its structure is not a certificate. */
export function certificateFacts(der: Uint8Array): CertificateFacts {
  const cert = readTlv(der, 0, der.length);
  if (cert.tag !== 0x30) throw new DerError('not a certificate');
  const tbs = children(der, cert)[0];
  if (tbs?.tag !== 0x30) throw new DerError('no tbsCertificate');
  const fields = children(der, tbs);
  const base = fields[0]?.tag === 0xa0 ? 1 : 0;
  const subjectTlv = fields[base + 4];
  if (subjectTlv?.tag !== 0x30) throw new DerError('no subject');
  const subject = children(der, subjectTlv).map((rdn) =>
    children(der, rdn)
      .map((atv) => {
        const [type, value] = children(der, atv);
        if (!type || !value) throw new DerError('bad attribute');
        return `${attributeName(oid(der, type))}=${text(der, value)}`;
      })
      .sort(),
  );
  const facts: CertificateFacts = {
    keyUsage: undefined,
    san: { dns: [], uri: [], email: [], ip: [] },
    subject,
  };
  const extWrapper = fields.find((f) => f.tag === 0xa3);
  if (!extWrapper) return facts;
  const extSeq = children(der, extWrapper)[0];
  if (extSeq?.tag !== 0x30) throw new DerError('bad extensions');
  for (const ext of children(der, extSeq)) {
    const parts = children(der, ext);
    const id = oid(der, parts[0]!);
    const value = parts[parts.length - 1]!;
    if (value.tag !== 0x04) throw new DerError('bad extension value');
    const inner = readTlv(der, value.start, value.end);
    if (id === '2.5.29.15') {
      if (inner.tag !== 0x03 || inner.end - inner.start < 1) throw new DerError('bad keyUsage');
      const first = inner.end - inner.start > 1 ? der[inner.start + 1]! : 0;
      facts.keyUsage = { digitalSignature: (first & 0x80) !== 0, keyCertSign: (first & 0x04) !== 0 };
    } else if (id === '2.5.29.17') {
      if (inner.tag !== 0x30) throw new DerError('bad subjectAltName');
      for (const name of children(der, inner)) {
        const bytes = der.subarray(name.start, name.end);
        const ascii = () => Buffer.from(bytes).toString('latin1');
        if (name.tag === 0x81) facts.san.email.push(ascii());
        else if (name.tag === 0x82) facts.san.dns.push(ascii());
        else if (name.tag === 0x86) facts.san.uri.push(ascii());
        else if (name.tag === 0x87) facts.san.ip.push(ipText(bytes));
      }
    }
  }
  return facts;
}

/**
 * Parses an RFC 4514 distinguished name (`CN=exporter,O=Example\, Inc`) into RDNs in certificate
 * order (RFC 4514 writes the last RDN first). Undefined when it is not one.
 */
export function parseDistinguishedName(dn: string): string[][] | undefined {
  const rdns: string[][] = [];
  let current: string[] = [];
  let buf = '';
  const endAttribute = (): boolean => {
    const eq = buf.indexOf('=');
    if (eq <= 0) return false;
    const type = buf.slice(0, eq).trim();
    const value = buf.slice(eq + 1).trim();
    current.push(`${/^\d+(\.\d+)+$/.test(type) ? attributeName(type) : type.toUpperCase()}=${value}`);
    buf = '';
    return true;
  };
  // Values are unescaped as they are read, but `=` inside a value must not split the attribute: the
  // first `=` of an attribute is the one that counts, and escaped ones are kept as a marker first.
  for (let i = 0; i < dn.length; i++) {
    const c = dn[i]!;
    if (c === '\\') {
      const hex = /^[0-9a-fA-F]{2}/.exec(dn.slice(i + 1, i + 3));
      if (hex) {
        const bytes: number[] = [];
        while (dn[i] === '\\' && /^[0-9a-fA-F]{2}$/.test(dn.slice(i + 1, i + 3))) {
          bytes.push(Number.parseInt(dn.slice(i + 1, i + 3), 16));
          i += 3;
        }
        i--;
        buf += Buffer.from(bytes).toString('utf8').replace(/=/g, '\u0000');
      } else {
        if (i + 1 >= dn.length) return undefined;
        buf += dn[i + 1] === '=' ? '\u0000' : dn[i + 1];
        i++;
      }
    } else if (c === ',' || c === '+') {
      if (!endAttribute()) return undefined;
      if (c === ',') {
        rdns.push(current.sort());
        current = [];
      }
    } else buf += c;
  }
  if (!endAttribute()) return undefined;
  rdns.push(current.sort());
  return rdns.reverse().map((rdn) => rdn.map((a) => a.split('\u0000').join('=')));
}

/**
 * Two names in RDN form are the same name: types compared case-insensitively, values exactly,
 * attribute by attribute (never joined: a value holding `+` must not pass for a multi-valued RDN).
 */
export function sameName(a: string[][], b: string[][]): boolean {
  return (
    a.length === b.length &&
    a.every((rdn, i) => {
      const other = b[i]!;
      return rdn.length === other.length && rdn.every((atv, j) => atv === other[j]);
    })
  );
}
