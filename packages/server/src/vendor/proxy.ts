import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { Transform } from 'node:stream';
import type { Verifier } from '@writ/sdk/verifier';
import { decide, nodeRequestParts, PublicBaseUrl, RequestRefusal, sendRefusal } from '@writ/sdk/verifier';
import { Agent, type Dispatcher, errors as undiciErrors } from 'undici';
import { KeyScrubber, SecretForms, secretForms } from './redact.js';
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
  /** Told of every proxied or refused request (no secrets, no tokens), with the request it answered. */
  onRequest?: (r: ProxyOutcome, req: IncomingMessage) => void;
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
  /** The verifier's refusal of the token or the route (its code and reason), when that was the answer. */
  refusal?: RequestRefusal;
}

/** The proxy as a node:http handler; `close()` ends its connections to the vendors. */
export type VendorProxyHandler = ((req: IncomingMessage, res: ServerResponse) => void) & {
  close(): Promise<void>;
};

const PREFIX = '/vendors/';
/** Method and path pairs whose route decision is remembered, per route; past it the memo starts over. */
const ALLOWED_MEMO_SIZE = 1000;

/** What is made once per key set of a route: the forms to redact and the credential to inject. */
interface KeyedForms {
  current: string;
  inFlight: readonly string[];
  forms: SecretForms;
  /** The header value (or Basic credentials) carrying `current`; empty for a query parameter. */
  credential: string;
}
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
export function createVendorProxy(o: VendorProxyOptions): VendorProxyHandler {
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
  const allowedMemo = new Map(o.routes.map((r) => [r.name, new Map<string, boolean>()]));
  // What `decide` is given for a request the route allows: the same object every time.
  const decideOptions = new Map(o.routes.map((r) => [r.name, { scopes: r.scopes, bearer: r.bearer }]));
  // The forms of the keys in flight change only with a lease or a rotation: made once per key set,
  // not on every request.
  const keyed = new Map<string, KeyedForms>();
  const keyedOf = (route: VendorRoute, current: string, inFlight: readonly string[]): KeyedForms => {
    const held = keyed.get(route.name);
    // The key source hands back the same array until its keys change: compared by identity first.
    if (held && held.current === current && (held.inFlight === inFlight || sameKeys(held.inFlight, inFlight)))
      return held;
    const keys = [...new Set([current, ...inFlight])];
    const made: KeyedForms = {
      current,
      inFlight,
      forms: new SecretForms(keys.flatMap((k) => secretForms(k, injectedForms(route, k)))),
      credential:
        route.inject.kind === 'header'
          ? injectedValue(route.inject.template, current)
          : route.inject.kind === 'basic'
            ? basicCredentials(route, current)
            : '',
    };
    keyed.set(route.name, made);
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
    o.onRequest?.({ ...outcome, status, redacted: 0 }, res.req);
  };

  const handler = (req: IncomingMessage, res: ServerResponse) => {
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
  return Object.assign(handler, {
    close: async () => {
      await Promise.all([...agents.values()].map((a) => a.close()));
    },
  });

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

    // Whether the route allows this method and path: decided once per distinct pair (a bounded memo
    // per route), as the same few paths come again and again.
    const memo = allowedMemo.get(route.name)!;
    const pair = `${method} ${upstreamPath}`;
    let allowed = memo.get(pair);
    if (allowed === undefined) {
      let segments: string[];
      try {
        segments = upstreamPath.split('/').slice(1).map(decodeURIComponent);
      } catch {
        return refuse(res, 400, 'invalid_request', 'the path is not valid percent-encoding', {
          ...at,
          reason: 'bad_path',
        });
      }
      allowed = route.allow.some(
        (a) => a.methods.includes(method as never) && a.paths.some((p) => pathMatches(p, segments)),
      );
      // Short paths only: the memo holds at most ALLOWED_MEMO_SIZE of them, whoever sends them.
      if (pair.length <= 256) {
        if (memo.size >= ALLOWED_MEMO_SIZE) memo.clear();
        memo.set(pair, allowed);
      }
    }
    // The token: binding, revocation, staleness, scopes and local policy, as any Writ-protected API;
    // then the route's own table, inside the verifier, so the usage report says it was refused.
    const verifier = o.verifiers.get(route.name)!;
    const decision = await decide(
      verifier,
      nodeRequestParts(req, base, { path: rawPath }),
      allowed
        ? decideOptions.get(route.name)!
        : {
            scopes: route.scopes,
            bearer: route.bearer,
            check: () => {
              const offered = route.allow
                .map((a) => `${a.methods.join('|')} ${a.paths.map((p) => p.text).join(', ')}`)
                .join('; ');
              throw new RequestRefusal(
                'insufficient_scope',
                'vendor_route',
                `${method} ${printable(upstreamPath)} is not allowed on vendor route ${route.name} (allowed: ${offered})`,
              );
            },
          },
    );
    if (!decision.ok) {
      sendRefusal(res, decision.refusal);
      if (o.onRequest) {
        const refused: ProxyOutcome = {
          route: route.name,
          method,
          status: decision.refusal.status,
          reason: allowed ? 'token' : 'route',
          redacted: 0,
        };
        if (decision.error) refused.refusal = decision.error;
        o.onRequest(refused, req);
      }
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
    const { forms, credential } = keyedOf(route, key, o.keys.inFlight(route.key));

    const headers = forwardedHeaders(req.headers, route);
    if (route.inject.kind === 'header') headers[route.inject.name.toLowerCase()] = credential;
    else if (route.inject.kind === 'basic') headers['authorization'] = credential;
    headers['accept-encoding'] = 'identity';
    const path = upstreamPathAndQuery(route, upstreamPath, query, key);

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
    let up: Dispatcher.ResponseData;
    try {
      up = await agents.get(route.name)!.request({
        origin: route.upstream.origin,
        path,
        method: method as Dispatcher.HttpMethod,
        headers,
        body,
      });
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
    for (const h in up.headers) {
      const v = up.headers[h];
      if (v === undefined || HOP_BY_HOP.has(h) || route.stripResponseHeaders.includes(h)) continue;
      if (typeof v === 'string' ? forms.inText(v) : v.some((x) => forms.inText(x))) {
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
    const declaredLength = up.headers['content-length'];
    const scrubber = new KeyScrubber(forms);
    const sent = await relay(
      up.body,
      res,
      scrubber,
      typeof declaredLength === 'string' ? Number(declaredLength) : Number.NaN,
    );
    redacted += scrubber.hits;
    if (o.onRequest) {
      // Built without spreads: this runs on every request.
      const outcome: ProxyOutcome = {
        route: route.name,
        method,
        status: up.statusCode,
        redacted,
        upstreamMs,
      };
      if (!sent) outcome.reason = 'stream_aborted';
      o.onRequest(outcome, req);
    }
  }
}

/**
 * Streams the vendor's body to the caller through `scrubber`, with backpressure both ways, and without
 * a stream pipeline per request (its abort signal and premature-close errors cost more than the
 * relaying). A body of a declared `length` is sent whole with its last chunk. Resolves true once all
 * was handed to the caller's socket; false when either side failed or hung up (the other is destroyed).
 */
function relay(
  body: Dispatcher.ResponseData['body'],
  res: ServerResponse,
  scrubber: KeyScrubber,
  length: number,
): Promise<boolean> {
  return new Promise((resolve) => {
    let received = 0;
    let ended = false;
    let settled = false;
    const settle = (ok: boolean) => {
      if (settled) return;
      settled = true;
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('error', onError);
      res.off('close', onClose);
      res.off('drain', onDrain);
      resolve(ok);
    };
    const done = () => settle(true);
    const onDrain = () => body.resume();
    const onData = (chunk: Buffer) => {
      if (ended) return; // nothing past the declared length (undici would have failed the body)
      received += chunk.length;
      if (received >= length) {
        ended = true;
        res.end(scrubber.push(chunk, true), done);
        return;
      }
      const out = scrubber.push(chunk);
      if (out.length > 0 && !res.write(out)) {
        body.pause();
        res.once('drain', onDrain);
      }
    };
    const onEnd = () => {
      if (ended) return;
      ended = true;
      const held = scrubber.end();
      if (held) res.end(held, done);
      else res.end(done);
    };
    const onError = () => {
      res.destroy();
      settle(false);
    };
    const onClose = () => {
      if (res.writableFinished) return;
      body.destroy();
      settle(false);
    };
    body.on('data', onData);
    body.once('end', onEnd);
    body.once('error', onError);
    res.once('close', onClose);
  });
}

/** Whether two key lists hold the same keys in the same order. */
function sameKeys(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((k, i) => k === b[i]);
}

/** Characters a path or query may hold that the URL parser would write back unchanged. */
const PLAIN_PATH = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*$/;
const PLAIN_QUERY = /^[A-Za-z0-9\-._~!$&()*+,;=:@/?%]*$/;

/**
 * The path and query to send upstream, with the key as a query parameter when the route injects it so.
 * Plain text is used as it is; anything else is written as the WHATWG URL parser writes it (percent-
 * encoding what it must), as the vendor's own parser would read it.
 */
function upstreamPathAndQuery(route: VendorRoute, path: string, query: string, key: string): string {
  if (route.inject.kind !== 'query' && PLAIN_PATH.test(path) && PLAIN_QUERY.test(query))
    return query === '' ? path : `${path}?${query}`;
  const url = new URL(route.upstream.origin);
  url.pathname = path;
  url.search = query;
  if (route.inject.kind === 'query') {
    url.searchParams.delete(route.inject.name);
    url.searchParams.append(route.inject.name, key);
  }
  return `${url.pathname}${url.search}`;
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
  const connection = h['connection'];
  const listed =
    connection === undefined
      ? undefined
      : new Set(
          String(connection)
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
  for (const name in h) {
    const v = h[name];
    if (v === undefined || NOT_FORWARDED.has(name) || listed?.has(name) || name === injected) continue;
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
