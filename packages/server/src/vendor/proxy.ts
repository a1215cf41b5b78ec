import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Verifier } from '@writ/sdk/verifier';
import { decide, nodeRequestParts, PublicBaseUrl, RequestRefusal, sendRefusal } from '@writ/sdk/verifier';
import { Agent, request, errors as undiciErrors } from 'undici';
import { containsSecret, redactingStream, secretForms } from './redact.js';
import { injectedValue, pathMatches, type VendorRoute } from './route.js';

/** Where the proxy gets a vendor key, and every key of a name that may still be in flight. */
export interface VendorKeySource {
  /** The key to inject now. Throws when there is none (the request is answered 503). */
  current(name: string): Promise<string>;
  /** Every key of `name` a response might echo: the current one and any still in its overlap. */
  inFlight(name: string): readonly string[];
}

export interface VendorProxyOptions {
  routes: readonly VendorRoute[];
  /** A verifier per route name, for the route's audience. */
  verifiers: ReadonlyMap<string, Verifier>;
  keys: VendorKeySource;
  /** The proxy's public URL as workloads address it: route NAME is at `<publicUrl>/vendors/NAME/`. */
  publicUrl: string;
  /** Told of every proxied or refused request (no secrets, no tokens). */
  onRequest?: (r: ProxyOutcome) => void;
}

export interface ProxyOutcome {
  route: string | undefined;
  method: string;
  status: number;
  /** Why, when refused or failed: a short reason code. */
  reason?: string;
  /** Occurrences of the key overwritten in what came back. */
  redacted: number;
  upstreamMs?: number;
}

const PREFIX = '/vendors/';
/** Headers that belong to one connection (RFC 9110 §7.6.1) or carry the caller's Writ credentials. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);
const NOT_FORWARDED = new Set([
  ...HOP_BY_HOP,
  'host',
  'authorization',
  'dpop',
  'cookie',
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-real-ip',
  'accept-encoding',
  'content-length',
  'expect',
]);
/** A raw path that could mean different things to us and to the vendor is refused, not normalised. */
export const AMBIGUOUS_PATH = /%2f|%5c|%2e|%00|\\|\/\/|(^|\/)\.\.?(\/|$)/i;

/**
 * The vendor-key proxy as a node:http handler: verifies the caller's Writ token (holder binding,
 * revocation, staleness and local policy, all by the SDK verifier of the route's audience), checks the
 * route's methods and paths, injects the vendor key and forwards to the upstream with undici, streaming
 * both ways. Nothing reaches the vendor before every check passed. The key never goes back: response
 * headers that hold it are dropped and the body is overwritten where it appears.
 */
export function createVendorProxy(
  o: VendorProxyOptions,
): (req: IncomingMessage, res: ServerResponse) => void {
  const routes = new Map(o.routes.map((r) => [r.name, r]));
  const agents = new Map(
    o.routes.map((r) => [
      r.name,
      new Agent({
        connect: { ...(r.upstream.ca ? { ca: r.upstream.ca } : {}), timeout: r.upstream.timeoutMs },
        headersTimeout: r.upstream.timeoutMs,
        bodyTimeout: r.upstream.timeoutMs,
        maxResponseSize: -1,
        maxHeaderSize: r.limits.responseHeaderBytes,
      }),
    ]),
  );
  const base = PublicBaseUrl.from(o.publicUrl);
  // The forms of the keys in flight change only with a lease or a rotation: made once per key set,
  // not on every request.
  const forms = new Map<string, { keys: string; forms: Buffer[] }>();
  const formsOf = (route: VendorRoute, keys: string[]): Buffer[] => {
    const id = [...new Set(keys)].join('\n');
    const held = forms.get(route.name);
    if (held?.keys === id) return held.forms;
    const made = [...new Set(keys)].flatMap((k) => secretForms(k, injectedForms(route, k)));
    forms.set(route.name, { keys: id, forms: made });
    return made;
  };
  const basePath = new URL(o.publicUrl).pathname.replace(/\/$/, '');

  const refuse = (
    res: ServerResponse,
    status: number,
    error: string,
    description: string,
    outcome: Omit<ProxyOutcome, 'status' | 'redacted'>,
  ) => {
    if (!res.headersSent)
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify({ error, error_description: description }));
    o.onRequest?.({ ...outcome, status, redacted: 0 });
  };

  return (req, res) => {
    handle(req, res).catch(() => {
      // Never let one request's failure reach the process; the response is closed if it was begun.
      if (!res.headersSent)
        refuse(res, 502, 'bad_gateway', 'the request could not be proxied', {
          route: undefined,
          method: req.method ?? '',
          reason: 'internal',
        });
      else res.destroy();
    });
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = (req.method ?? 'GET').toUpperCase();
    const raw = req.url ?? '/';
    const q = raw.indexOf('?');
    const rawPath = q < 0 ? raw : raw.slice(0, q);
    const query = q < 0 ? '' : raw.slice(q + 1);
    const local = basePath && rawPath.startsWith(basePath) ? rawPath.slice(basePath.length) : rawPath;
    if (!local.startsWith(PREFIX))
      return refuse(res, 404, 'not_found', `vendor routes are under ${basePath}${PREFIX}NAME/`, {
        route: undefined,
        method,
        reason: 'no_route',
      });
    const rest = local.slice(PREFIX.length);
    const slash = rest.indexOf('/');
    const name = slash < 0 ? rest : rest.slice(0, slash);
    const route = routes.get(name);
    if (!route)
      return refuse(res, 404, 'not_found', `no vendor route named "${name.slice(0, 64)}"`, {
        route: undefined,
        method,
        reason: 'no_route',
      });
    const upstreamPath = slash < 0 ? '/' : rest.slice(slash);
    const at = { route: route.name, method };
    if (AMBIGUOUS_PATH.test(upstreamPath))
      return refuse(
        res,
        400,
        'invalid_request',
        'the path has dot segments, empty segments, a backslash or an encoded /, \\, . or NUL: write it plainly',
        { ...at, reason: 'ambiguous_path' },
      );

    let segments: string[];
    try {
      segments = upstreamPath.split('/').slice(1).map(decodeURIComponent);
    } catch {
      return refuse(res, 400, 'invalid_request', 'the path is not valid percent-encoding', {
        ...at,
        reason: 'bad_path',
      });
    }
    const allowed = route.allow.some(
      (a) => a.methods.includes(method as never) && a.paths.some((p) => pathMatches(p, segments)),
    );
    // The token: binding, revocation, staleness, scopes and local policy, as any Writ-protected API;
    // then the route's own table, inside the verifier, so the usage report says it was refused.
    const verifier = o.verifiers.get(route.name)!;
    const decision = await decide(verifier, nodeRequestParts(req, base, { path: rawPath }), {
      scopes: route.scopes,
      bearer: route.bearer,
      check: () => {
        if (allowed) return;
        const offered = route.allow
          .map((a) => `${a.methods.join('|')} ${a.paths.map((p) => p.text).join(', ')}`)
          .join('; ');
        throw new RequestRefusal(
          'insufficient_scope',
          'vendor_route',
          `${method} ${printable(upstreamPath)} is not allowed on vendor route ${route.name} (allowed: ${offered})`,
        );
      },
    });
    if (!decision.ok) {
      sendRefusal(res, decision.refusal);
      o.onRequest?.({
        ...at,
        status: decision.refusal.status,
        reason: allowed ? 'token' : 'route',
        redacted: 0,
      });
      return;
    }
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > route.limits.requestBytes)
      return refuse(
        res,
        413,
        'invalid_request',
        `the body is larger than this route's limit of ${route.limits.requestBytes} bytes`,
        { ...at, reason: 'body_too_large' },
      );

    let key: string;
    try {
      key = await o.keys.current(route.key);
    } catch {
      return refuse(
        res,
        503,
        'temporarily_unavailable',
        `the vendor key ${route.key} is not available to this proxy`,
        { ...at, reason: 'no_key' },
      );
    }
    const forms = formsOf(route, [key, ...o.keys.inFlight(route.key)]);

    const url = new URL(route.upstream.origin);
    url.pathname = upstreamPath;
    url.search = query;
    const headers = forwardedHeaders(req.headers, route);
    if (route.inject.kind === 'header')
      headers[route.inject.name.toLowerCase()] = injectedValue(route.inject.template, key);
    else if (route.inject.kind === 'basic') headers['authorization'] = basicCredentials(route, key);
    else {
      url.searchParams.delete(route.inject.name);
      url.searchParams.append(route.inject.name, key);
    }
    headers['accept-encoding'] = 'identity';

    const hasBody =
      declared !== undefined ? Number(declared) > 0 : req.headers['transfer-encoding'] !== undefined;
    if (declared !== undefined) headers['content-length'] = declared;
    let tooLarge = false;
    let body: Transform | null = null;
    if (hasBody) {
      const limiter = byteLimit(route.limits.requestBytes, () => {
        tooLarge = true;
      });
      // A caller that hangs up mid-body fails the upstream request, not the process.
      req.on('error', (e) => limiter.destroy(e));
      body = req.pipe(limiter);
    }
    const started = performance.now();
    let up: Awaited<ReturnType<typeof request>>;
    try {
      up = await request(url, { method, headers, body, dispatcher: agents.get(route.name)! });
    } catch (err) {
      const timeout =
        err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.ConnectTimeoutError;
      if (tooLarge)
        return refuse(
          res,
          413,
          'invalid_request',
          `the body is larger than this route's limit of ${route.limits.requestBytes} bytes`,
          { ...at, reason: 'body_too_large' },
        );
      return timeout
        ? refuse(
            res,
            504,
            'gateway_timeout',
            `the vendor did not answer within ${route.upstream.timeoutMs} ms`,
            { ...at, reason: 'upstream_timeout' },
          )
        : refuse(res, 502, 'bad_gateway', 'the vendor could not be reached', {
            ...at,
            reason: 'upstream_unreachable',
          });
    }
    const upstreamMs = performance.now() - started;

    let redacted = 0;
    const out: Record<string, string | string[]> = {};
    for (const [h, v] of Object.entries(up.headers)) {
      if (v === undefined || HOP_BY_HOP.has(h) || route.stripResponseHeaders.includes(h)) continue;
      const values = Array.isArray(v) ? v : [v];
      if (values.some((x) => containsSecret(x, forms))) {
        redacted++;
        continue;
      }
      out[h] = v;
    }
    const encoding = String(up.headers['content-encoding'] ?? 'identity').toLowerCase();
    if (encoding !== 'identity') {
      up.body.dump({ limit: 0 }).catch(() => undefined);
      return refuse(
        res,
        502,
        'bad_gateway',
        `the vendor answered with content-encoding ${encoding.slice(0, 40)} although identity was asked: the body cannot be checked for the key`,
        { ...at, reason: 'upstream_encoding' },
      );
    }
    if (up.statusCode >= 300 && up.statusCode < 400 && typeof out['location'] === 'string') {
      const location = rewriteLocation(out['location'], route, o.publicUrl);
      if (location === undefined) {
        up.body.dump({ limit: 0 }).catch(() => undefined);
        return refuse(
          res,
          502,
          'bad_gateway',
          'the vendor redirected to another origin; the proxy does not follow or pass on such redirects',
          { ...at, reason: 'upstream_redirect' },
        );
      }
      out['location'] = location;
    }
    res.writeHead(up.statusCode, out);
    try {
      await pipeline(
        up.body,
        redactingStream(forms, (n) => {
          redacted += n;
        }),
        res,
      );
      o.onRequest?.({ ...at, status: up.statusCode, redacted, upstreamMs });
    } catch {
      res.destroy();
      o.onRequest?.({ ...at, status: up.statusCode, reason: 'stream_aborted', redacted, upstreamMs });
    }
  }
}

/** A path as it may be quoted back: at most 200 characters, nothing but URL characters. */
function printable(path: string): string {
  return path.slice(0, 200).replace(/[^A-Za-z0-9/._~%!$&'()*+,;=:@-]/g, '?');
}

/** The credential forms of `key` as this route injects it (a header value, Basic credentials). */
function injectedForms(route: VendorRoute, key: string): string[] {
  if (route.inject.kind === 'header') return [injectedValue(route.inject.template, key)];
  if (route.inject.kind === 'basic') {
    const b = basicCredentials(route, key);
    return [b, b.slice('Basic '.length)];
  }
  return [];
}

function basicCredentials(route: VendorRoute, key: string): string {
  const b = route.inject as { username: string; password: string };
  const pair = `${injectedValue(b.username, key)}:${injectedValue(b.password, key)}`;
  return `Basic ${Buffer.from(pair).toString('base64')}`;
}

/** The caller's headers less connection-scoped ones, its Writ credentials and the injected name. */
function forwardedHeaders(h: IncomingHttpHeaders, route: VendorRoute): Record<string, string> {
  const listed = new Set(
    String(h['connection'] ?? '')
      .split(',')
      .map((s) => s.trim().toLowerCase())
      .filter(Boolean),
  );
  const injected =
    route.inject.kind === 'header'
      ? route.inject.name.toLowerCase()
      : route.inject.kind === 'basic'
        ? 'authorization'
        : '';
  const out: Record<string, string> = {};
  for (const [name, v] of Object.entries(h)) {
    if (v === undefined || NOT_FORWARDED.has(name) || listed.has(name) || name === injected) continue;
    if (name.startsWith('proxy-')) continue;
    out[name] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}

/** A redirect within the upstream origin, as the proxy path; undefined for any other origin. */
function rewriteLocation(location: string, route: VendorRoute, publicUrl: string): string | undefined {
  let u: URL;
  try {
    u = new URL(location, route.upstream.origin);
  } catch {
    return undefined;
  }
  if (u.origin !== route.upstream.origin) return undefined;
  return `${publicUrl.replace(/\/$/, '')}${PREFIX}${route.name}${u.pathname}${u.search}`;
}

/** Passes at most `limit` bytes; past it, calls `over` and fails the stream (the upstream request aborts). */
function byteLimit(limit: number, over: () => void): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _e, done) {
      seen += chunk.length;
      if (seen > limit) {
        over();
        done(new Error('request body over the route limit'));
        return;
      }
      done(null, chunk);
    },
  });
}
