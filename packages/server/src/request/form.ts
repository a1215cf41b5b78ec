import type { FastifyRequest } from 'fastify';
import { invalidRequest } from '../errors.js';

/** Parameters of an `application/x-www-form-urlencoded` body; each name maps to every value it was sent with. */
export type FormParams = Map<string, string[]>;

const FORM = 'application/x-www-form-urlencoded';
const MAX_PARAMS = 64;

export function parseForm(body: string): FormParams {
  const params: FormParams = new Map();
  let count = 0;
  for (const [k, v] of new URLSearchParams(body)) {
    if (++count > MAX_PARAMS)
      throw invalidRequest(`too many parameters (at most ${MAX_PARAMS})`, { reason: 'too_many_parameters' });
    const list = params.get(k);
    if (list) list.push(v);
    else params.set(k, [v]);
  }
  return params;
}

/**
 * One parameter that may be sent at most once (RFC 6749 §3.2: parameters MUST NOT be repeated).
 * Empty values count as absent (RFC 6749 §3.1).
 */
export function single(params: FormParams, name: string, maxLength = 2048): string | undefined {
  const values = params.get(name);
  if (!values) return undefined;
  if (values.length > 1)
    throw invalidRequest(`parameter "${name}" is repeated`, { reason: 'parameter_repeated' });
  const v = values[0]!;
  if (v.length > maxLength)
    throw invalidRequest(`parameter "${name}" is longer than ${maxLength} characters`, {
      reason: 'parameter_too_long',
    });
  return v === '' ? undefined : v;
}

/** The parsed form body of a request (the content-type parser built it); any other body is refused. */
export function formBody(req: FastifyRequest): FormParams {
  if (!(req.body instanceof Map)) throw invalidRequest(`the body must be ${FORM}`, { reason: 'media_type' });
  return req.body as FormParams;
}
