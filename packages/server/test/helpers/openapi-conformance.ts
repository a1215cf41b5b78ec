import { createRequire } from 'node:module';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { openApiDocument } from '../../src/http/openapi.js';

// Every request a test server accepts (answers below 400) is checked against the OpenAPI document: its
// operation exists, and its path parameters, query string and body conform to that operation's
// schemas. The harness installs this on every server it starts and fails its `close()` when a request
// did not conform, so the whole HTTP suite is a conformance test of the document.

type Json = Record<string, unknown>;
interface Compiled {
  (data: unknown): boolean;
  errors?: { instancePath: string; message?: string }[] | null;
}
interface Ajv {
  compile(schema: Json): Compiled;
}
const require = createRequire(import.meta.url);
const Ajv2020 = require('ajv/dist/2020') as { default: new (o: Json) => Ajv };

interface OperationCheck {
  bodyRequired: boolean;
  params: Compiled;
  query: Compiled;
  body: Map<string, Compiled>;
}

let compiled: Map<string, OperationCheck> | undefined;

/** `METHOD /path/{id}` → the validators of that operation. */
function checks(): Map<string, OperationCheck> {
  if (compiled) return compiled;
  const ajv = new Ajv2020.default({ strict: false, allErrors: false });
  const doc = openApiDocument() as { paths: Record<string, Record<string, Json>> };
  compiled = new Map();
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const parameters = (op['parameters'] ?? []) as {
        name: string;
        in: string;
        required: boolean;
        schema: Json;
      }[];
      const objectOf = (where: string): Json => {
        const ps = parameters.filter((p) => p.in === where);
        return {
          type: 'object',
          properties: Object.fromEntries(ps.map((p) => [p.name, p.schema])),
          required: ps.filter((p) => p.required).map((p) => p.name),
          // Unknown query parameters are ignored by the server; the document lists the ones it reads.
          additionalProperties: where !== 'path',
        };
      };
      const requestBody = op['requestBody'] as Json | undefined;
      const content = (requestBody?.['content'] ?? {}) as Record<string, { schema: Json }>;
      compiled.set(`${method.toUpperCase()} ${path}`, {
        bodyRequired: requestBody?.['required'] === true,
        params: ajv.compile(objectOf('path')),
        query: ajv.compile(objectOf('query')),
        body: new Map(Object.entries(content).map(([type, c]) => [type, ajv.compile(c.schema)])),
      });
    }
  }
  return compiled;
}

/** A form body (parameter → values) as the document describes it: one value a string, several a list. */
function formObject(body: unknown): unknown {
  if (!(body instanceof Map)) return body;
  return Object.fromEntries([...body].map(([k, v]: [string, string[]]) => [k, v.length === 1 ? v[0] : v]));
}

/** What is wrong with an accepted request, measured against the document; empty when it conforms. */
export function conformanceProblems(req: {
  method: string;
  route: string;
  params: unknown;
  query: unknown;
  contentType: string | undefined;
  body: unknown;
}): string[] {
  const path = req.route.replace(/:(\w+)/g, '{$1}');
  const key = `${req.method} ${path}`;
  const check = checks().get(key);
  if (!check) return [`${key} is not in the OpenAPI document`];
  const problems: string[] = [];
  const run = (what: string, v: Compiled, data: unknown) => {
    if (!v(data))
      problems.push(
        `${key}: ${what}${v.errors?.[0]?.instancePath ?? ''} ${v.errors?.[0]?.message ?? 'is not valid'}`,
      );
  };
  run('path parameters', check.params, req.params ?? {});
  run('query', check.query, req.query ?? {});
  const type =
    req.contentType === undefined ? undefined : req.contentType.split(';')[0]!.trim().toLowerCase();
  const empty =
    req.body === undefined ||
    req.body === null ||
    req.body === '' ||
    (typeof req.body === 'object' && Object.keys(req.body).length === 0 && !(req.body instanceof Map));
  if (check.body.size === 0) {
    // A route that reads no body ignores one; an empty one (`{}`, as some clients always send) is fine.
    if (!empty) problems.push(`${key}: the document describes no body, the request sent ${type} content`);
  } else if (type === undefined && (req.body === undefined || req.body === null)) {
    if (check.bodyRequired) problems.push(`${key}: the document requires a body, the request sent none`);
  } else {
    const v = type === undefined ? undefined : check.body.get(type);
    if (!v) problems.push(`${key}: the document describes no ${type ?? 'missing'} body`);
    else
      run(
        'body',
        v,
        Buffer.isBuffer(req.body) ? JSON.parse(req.body.toString('utf8')) : formObject(req.body ?? {}),
      );
  }
  return problems;
}

export interface ConformanceRecord {
  /** Accepted requests checked so far. */
  checked: number;
  problems: string[];
}

/** Checks every accepted request of `app` against the document (install before the app is ready). */
export function recordConformance(app: FastifyInstance): ConformanceRecord {
  const record: ConformanceRecord = { checked: 0, problems: [] };
  app.addHook('onResponse', async (req: FastifyRequest, reply) => {
    const route = req.routeOptions.url;
    if (reply.statusCode >= 400 || route === undefined || req.method === 'HEAD') return;
    record.checked++;
    for (const p of conformanceProblems({
      method: req.method,
      route,
      params: req.params,
      query: req.query,
      contentType: req.headers['content-type'],
      body: req.body,
    }))
      if (record.problems.length < 20) record.problems.push(p);
  });
  return record;
}
