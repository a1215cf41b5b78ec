import { SET_MEDIA_TYPE } from './vocabulary.js';

/** What became of one push (RFC 8935 §2.2–2.3). */
export type PushOutcome =
  | { kind: 'delivered' }
  /** The receiver refused this SET (400 with an `err`): sending it again will not help. */
  | { kind: 'rejected'; err: string; description: string }
  /** Anything else (network, timeout, 401/403, 429, 5xx): try again later. */
  | { kind: 'failed'; reason: string };

/**
 * POSTs one signed SET to a receiver (`Content-Type: application/secevent+jwt`, `Accept:
 * application/json`), with the stream's `Authorization` header when it has one. Redirects are not
 * followed: a SET goes only to the endpoint the stream names.
 */
export async function pushSet(
  endpoint: string,
  set: string,
  o: { authorization: string | undefined; timeoutMs: number; fetch?: typeof fetch },
): Promise<PushOutcome> {
  let res: Response;
  try {
    res = await (o.fetch ?? fetch)(endpoint, {
      method: 'POST',
      headers: {
        'content-type': SET_MEDIA_TYPE,
        accept: 'application/json',
        ...(o.authorization !== undefined ? { authorization: o.authorization } : {}),
      },
      body: set,
      redirect: 'manual',
      signal: AbortSignal.timeout(o.timeoutMs),
    });
  } catch (err) {
    const e = err as Error;
    return {
      kind: 'failed',
      reason: e.name === 'TimeoutError' ? 'timeout' : `network: ${e.message}`.slice(0, 200),
    };
  }
  // Bounded read: a receiver's error body is at most a small JSON object.
  const text = await readBounded(res, 4096);
  if (res.status >= 200 && res.status < 300) return { kind: 'delivered' };
  if (res.status === 400) {
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(text) as Record<string, unknown>;
    } catch {
      // not JSON: still a refusal of this SET
    }
    return {
      kind: 'rejected',
      err: typeof body['err'] === 'string' ? body['err'].slice(0, 64) : 'invalid_request',
      description: typeof body['description'] === 'string' ? body['description'].slice(0, 200) : '',
    };
  }
  return { kind: 'failed', reason: `HTTP ${res.status}` };
}

async function readBounded(res: Response, max: number): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < max) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.byteLength;
    }
  } catch {
    // a body cut short says nothing more
  } finally {
    reader.cancel().catch(() => undefined);
  }
  return Buffer.concat(chunks).subarray(0, max).toString('utf8');
}
