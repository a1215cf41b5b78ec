import { X509Certificate } from 'node:crypto';
import type { Socket } from 'node:net';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import type { RefusalReason } from '@writ/sdk/wire';
import type { FastifyRequest } from 'fastify';
import { certificatesFromPem, type PresentedCertificate } from '../mtls/certificate.js';
import { type ClientCertificateTrust, isTrustedProxy } from '../mtls/trust.js';

/** Why a forwarded-certificate header was not taken. */
export type ForwardedCertificateRefusal = Extract<RefusalReason, `forwarded_certificate_${string}`>;

/** The client certificate a request carries, or why a forwarded one was not taken. */
export interface CertificateSighting {
  certificate?: PresentedCertificate;
  /** A forwarded-certificate header was sent but not honoured: the reason, for the audit log. */
  ignoredForwarded?: ForwardedCertificateRefusal;
}

const sightings = new WeakMap<FastifyRequest, CertificateSighting>();
const fromHandshake = new WeakMap<Socket, PresentedCertificate | null>();

/**
 * Finds the client certificate of a request (RFC 8705): the header a trusted TLS-terminating proxy
 * sets, when the request comes from one of `tls.trusted_proxies`; else the certificate of this TLS
 * connection. The same header from any other address is ignored and noted, never believed.
 */
export function sightCertificate(req: FastifyRequest, trust: ClientCertificateTrust): CertificateSighting {
  const known = sightings.get(req);
  if (known) return known;
  let s: CertificateSighting = {};
  const header = trust.forwardedHeader;
  const values = header === undefined ? [] : headerValues(req, header);
  // A request from a trusted TLS-terminating proxy carries its client's certificate in the header or
  // not at all: the connection's own certificate is the proxy's and never stands in for the client's.
  const fromProxy = header !== undefined && isTrustedProxy(trust, req.socket?.remoteAddress);
  if (fromProxy) {
    if (values.length > 1) s.ignoredForwarded = 'forwarded_certificate_repeated';
    else if (values.length === 1) {
      const c = parseForwardedCertificate(values[0]!);
      s = c ? { certificate: c } : { ignoredForwarded: 'forwarded_certificate_malformed' };
    }
  } else {
    if (values.length > 0) s.ignoredForwarded = 'forwarded_certificate_untrusted_source';
    const tls = handshakeCertificate(req.raw.socket);
    if (tls) s.certificate = tls;
  }
  sightings.set(req, s);
  return s;
}

/**
 * A certificate as proxies forward it: URL-encoded PEM (nginx `$ssl_client_escaped_cert`), PEM with
 * its line breaks turned into spaces, base64 DER, or an Envoy `x-forwarded-client-cert` element with
 * `Cert="…"` (the last element: the one the nearest proxy added). Leaf first; chain after it.
 */
export function parseForwardedCertificate(value: string): PresentedCertificate | undefined {
  try {
    let v = value.trim();
    if (/(^|;|,)\s*Cert=/i.test(v)) {
      const last = v.split(',').pop() ?? '';
      const m = /(?:^|;)\s*Cert="?([^";]*)"?/i.exec(last);
      if (!m) return undefined;
      v = m[1]!;
    }
    if (v.includes('%')) v = decodeURIComponent(v);
    const certs = v.includes('-----BEGIN CERTIFICATE-----')
      ? certificatesFromPem(v)
      : /^[A-Za-z0-9+/=\s]+$/.test(v)
        ? [new X509Certificate(Buffer.from(v.replace(/\s+/g, ''), 'base64'))]
        : [];
    if (certs.length === 0) return undefined;
    return { leaf: certs[0]!, intermediates: certs.slice(1), source: 'forwarded' };
  } catch {
    return undefined;
  }
}

/** What `sightCertificate` found for this request; empty when it was not asked (no mTLS configured). */
export function recordedSighting(req: FastifyRequest): CertificateSighting {
  return sightings.get(req) ?? {};
}

function handshakeCertificate(socket: Socket | undefined): PresentedCertificate | undefined {
  // A TLS socket is told by its `encrypted` flag (what Node's own HTTPS server checks), not by
  // `instanceof`: a socket handed over by another HTTP stack is a TLS socket of another realm.
  const tls = socket as TLSSocket | undefined;
  if (tls?.encrypted !== true || typeof tls.getPeerCertificate !== 'function') return undefined;
  const cached = fromHandshake.get(tls);
  if (cached !== undefined) return cached ?? undefined;
  let found: PresentedCertificate | null = null;
  try {
    const peer = tls.getPeerCertificate(true) as DetailedPeerCertificate | undefined;
    if (peer?.raw) {
      const intermediates: X509Certificate[] = [];
      let at: DetailedPeerCertificate | undefined = peer.issuerCertificate;
      // Node links the chain it received; a self-issued certificate links to itself.
      while (at?.raw && at !== at.issuerCertificate && intermediates.length < 8) {
        intermediates.push(new X509Certificate(at.raw));
        at = at.issuerCertificate;
      }
      found = { leaf: new X509Certificate(peer.raw), intermediates, source: 'tls' };
    }
  } catch {
    found = null;
  }
  fromHandshake.set(tls, found);
  return found ?? undefined;
}

function headerValues(req: FastifyRequest, name: string): string[] {
  const raw = req.raw.rawHeaders;
  const values: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) values.push(raw[i + 1]!);
  return values;
}
