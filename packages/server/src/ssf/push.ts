import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { LookupFunction } from 'node:net';
import type { PushTarget } from './push-target.js';
import { SET_MEDIA_TYPE } from './vocabulary.js';

/** What became of one push (RFC 8935 §2.2–2.3). */
export type PushOutcome =
  | { kind: 'delivered' }
  /** The receiver refused this SET (400 with an `err`): sending it again will not help. */
  | { kind: 'rejected'; err: string; description: string }
  /** Anything else (network, timeout, redirect, 401/403, 429, 5xx): try again later. */
  | { kind: 'failed'; reason: string };

/** A receiver's answer is at most a small JSON error object; more is not read. */
const MAX_ANSWER_BYTES = 4096;

/**
 * POSTs one signed SET to a receiver (`Content-Type: application/secevent+jwt`, `Accept:
 * application/json`), with the stream's `Authorization` header when it has one: `postToTarget`.
 */
export function pushSet(
  target: PushTarget,
  set: string,
  o: { authorization: string | undefined; timeoutMs: number },
): Promise<PushOutcome> {
  return postToTarget(target, set, { ...o, contentType: SET_MEDIA_TYPE });
}

/**
 * POSTs `text` as `contentType` to a target judged by `checkPushTarget` or `checkTargetAddresses`. The
 * connection goes to the address `target` was judged by (its host is never resolved again), on a
 * connection of its own; a redirect is not followed (nothing goes anywhere but the URL judged); the
 * whole exchange, from connecting to the last byte read, ends after `timeoutMs`.
 */
export function postToTarget(
  target: PushTarget,
  text: string,
  o: { contentType: string; authorization: string | undefined; timeoutMs: number },
): Promise<PushOutcome> {
  const { url } = target;
  const body = Buffer.from(text);
  return new Promise((resolve) => {
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)({
      method: 'POST',
      host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: url.port || (url.protocol === 'https:' ? 443 : 80),
      path: `${url.pathname}${url.search}`,
      headers: {
        'content-type': o.contentType,
        'content-length': String(body.byteLength),
        accept: 'application/json',
        ...(o.authorization !== undefined ? { authorization: o.authorization } : {}),
      },
      agent: false,
      lookup: pinned(target),
    });
    const finish = (outcome: PushOutcome) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.destroy();
      resolve(outcome);
    };
    timer = setTimeout(() => finish({ kind: 'failed', reason: 'timeout' }), o.timeoutMs);
    req.on('error', (err) => finish({ kind: 'failed', reason: `network: ${err.message}`.slice(0, 200) }));
    req.on('response', (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const answer = () =>
        finish(outcomeOf(res.statusCode ?? 0, Buffer.concat(chunks).subarray(0, MAX_ANSWER_BYTES)));
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        size += chunk.byteLength;
        if (size >= MAX_ANSWER_BYTES) answer();
      });
      res.on('end', answer);
      // A body cut short says nothing more than what came.
      res.on('error', answer);
    });
    req.end(body);
  });
}

/** The checked address for the request's host: `net` asks for one address, or for all (happy eyeballs). */
function pinned(target: PushTarget): LookupFunction {
  return (_host, options, callback) => {
    if (options.all) callback(null, [{ address: target.address, family: target.family }]);
    else callback(null, target.address, target.family);
  };
}

function outcomeOf(status: number, answer: Buffer): PushOutcome {
  if (status >= 200 && status < 300) return { kind: 'delivered' };
  if (status === 400) {
    let body: Record<string, unknown> = {};
    try {
      const parsed: unknown = JSON.parse(answer.toString('utf8'));
      if (typeof parsed === 'object' && parsed !== null) body = parsed as Record<string, unknown>;
    } catch {
      // not JSON (or cut at the bound): still a refusal of this SET
    }
    return {
      kind: 'rejected',
      err: typeof body['err'] === 'string' ? body['err'].slice(0, 64) : 'invalid_request',
      description: typeof body['description'] === 'string' ? body['description'].slice(0, 200) : '',
    };
  }
  if (status >= 300 && status < 400)
    return { kind: 'failed', reason: `HTTP ${status} (redirects are not followed)` };
  return { kind: 'failed', reason: `HTTP ${status}` };
}
