import type { FastifyRequest } from 'fastify';
import type { RequestInfo } from '../context.js';
import { invalidRequest } from '../errors.js';
import { recordedSighting } from './client-certificate.js';
import type { FormParams } from './form.js';

const FORM = 'application/x-www-form-urlencoded';

export function formBody(req: FastifyRequest): FormParams {
  if (!(req.body instanceof Map)) throw invalidRequest(`the body must be ${FORM}`);
  return req.body as FormParams;
}

export function info(req: FastifyRequest): RequestInfo {
  const certificate = recordedSighting(req);
  return {
    ip: req.ip,
    userAgent: req.headers['user-agent']?.slice(0, 256),
    authorization: req.headers.authorization,
    dpop: headerValues(req, 'dpop'),
    ...(certificate.certificate ? { clientCertificate: certificate.certificate } : {}),
    ...(certificate.ignoredForwarded ? { ignoredForwardedCertificate: certificate.ignoredForwarded } : {}),
  };
}

/** Every value of a header, repeated ones kept apart (Node joins them with ", " in `req.headers`). */
function headerValues(req: FastifyRequest, name: string): string[] {
  const raw = req.raw.rawHeaders;
  const values: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) values.push(raw[i + 1]!);
  return values;
}
