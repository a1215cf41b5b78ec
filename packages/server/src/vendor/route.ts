import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { duration } from '../config/schema.js';
import { describeSchemaIssue } from '../config/schema-issue.js';
import { ConfigError } from '../errors.js';

/**
 * A vendor route (`config/vendors/NAME.yaml`): an upstream that only takes a static key, which Writ
 * holds and injects, so the workloads that call the vendor hold a short-lived Writ token instead.
 */
export interface VendorRoute {
  name: string;
  /** The file it came from, relative to the config directory. */
  source: string;
  upstream: { origin: string; ca?: string; timeoutMs: number };
  /** Name of the vendor key (`writ vendor-keys add NAME`). */
  key: string;
  inject: Injection;
  /** The token audience this route is (the `Api` policy decides on); tokens for anything else are refused. */
  audience: string;
  /** Scopes every token must carry, all of them. */
  scopes: string[];
  /** Whether a bearer (unbound) token may pass. Default false: DPoP- or certificate-bound only. */
  bearer: boolean;
  allow: { methods: string[]; paths: PathPattern[] }[];
  limits: { requestBytes: number; responseHeaderBytes: number };
  /** Response headers never passed back (lower case), beside the hop-by-hop ones. */
  stripResponseHeaders: string[];
}

export type Injection =
  | { kind: 'header'; name: string; template: string }
  | { kind: 'query'; name: string }
  | { kind: 'basic'; username: string; password: string };

/** A path pattern: literal segments, `*` for one segment, a final `**` for any rest. */
export interface PathPattern {
  text: string;
  segments: string[];
}

const MAX_ROUTES = 1000;
const MAX_FILE_BYTES = 64 * 1024;
const KEY_PLACEHOLDER = '{key}';
const TOKEN_CHARS = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
/** Headers a route may not inject or strip: they carry the caller's credentials or frame the message. */
const RESERVED_HEADERS = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'dpop',
  'te',
  'upgrade',
  'trailer',
  'keep-alive',
]);

const bytes = z.union([z.number().int().positive(), z.string()]).transform((v, ctx) => {
  const n = typeof v === 'number' ? v : parseBytes(v);
  if (n === undefined || n <= 0 || n > 1024 ** 3) {
    ctx.addIssue({
      code: 'custom',
      message: 'must be a size such as 512KiB, 10MiB or a byte count (at most 1GiB)',
    });
    return z.NEVER;
  }
  return n;
});

const pathPattern = z
  .string()
  .max(512)
  .transform((text, ctx) => {
    const problem = patternProblem(text);
    if (problem) {
      ctx.addIssue({ code: 'custom', message: problem });
      return z.NEVER;
    }
    return { text, segments: text.split('/').slice(1) };
  });

const headerInjection = z
  .object({
    name: z.string().regex(TOKEN_CHARS, 'must be an HTTP header name').max(100),
    value: z
      .string()
      .max(1024)
      .refine((v) => v.includes(KEY_PLACEHOLDER), {
        message: `must contain ${KEY_PLACEHOLDER} where the key goes, e.g. "Bearer ${KEY_PLACEHOLDER}"`,
      }),
  })
  .strict()
  .refine((h) => !RESERVED_HEADERS.has(h.name.toLowerCase()), {
    message: 'may not be a framing or credential header (host, content-length, dpop, ...)',
    path: ['name'],
  });

export const vendorFileSchema = z
  .object({
    upstream: z
      .object({
        origin: z.string().max(2048),
        ca_file: z.string().max(512).optional(),
        timeout: duration.default(30),
      })
      .strict(),
    key: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'must be a vendor key name: a-z, 0-9, . _ -'),
    inject: z
      .object({
        header: headerInjection.optional(),
        query: z
          .object({ name: z.string().regex(/^[A-Za-z0-9._~-]{1,100}$/) })
          .strict()
          .optional(),
        basic: z
          .object({ username: z.string().max(256), password: z.string().max(256).default('') })
          .strict()
          .refine((b) => `${b.username}${b.password}`.includes(KEY_PLACEHOLDER), {
            message: `username or password must contain ${KEY_PLACEHOLDER}`,
          })
          .optional(),
      })
      .strict()
      .refine((i) => [i.header, i.query, i.basic].filter(Boolean).length === 1, {
        message: 'give exactly one of header, query, basic',
      }),
    audience: z.string().url().max(2048),
    scopes: z.array(z.string().min(1).max(200)).max(50).default([]),
    bearer: z.boolean().default(false),
    allow: z
      .array(
        z
          .object({
            methods: z.array(z.enum(HTTP_METHODS)).min(1),
            paths: z.array(pathPattern).min(1).max(100),
          })
          .strict(),
      )
      .min(1)
      .max(100),
    limits: z
      .object({ request_body: bytes.default(1024 * 1024), response_headers: bytes.default(64 * 1024) })
      .strict()
      .default({ request_body: 1024 * 1024, response_headers: 64 * 1024 }),
    strip_response_headers: z.array(z.string().regex(TOKEN_CHARS).max(100)).max(100).default([]),
  })
  .strict();

/**
 * Reads every `vendors/*.yaml` of a config directory. Each route is validated; an error names the file
 * and the field. An upstream must be https (plain http only on a loopback address, for local tests).
 */
export function loadVendorRoutes(configDir: string): VendorRoute[] {
  const dir = join(configDir, 'vendors');
  let names: string[];
  try {
    names = readdirSync(dir)
      .filter((f) => /\.ya?ml$/.test(f))
      .sort();
  } catch {
    return [];
  }
  if (names.length > MAX_ROUTES)
    throw new ConfigError('vendors/', '', `more than ${MAX_ROUTES} vendor routes`);
  const routes: VendorRoute[] = [];
  const audiences = new Map<string, string>();
  for (const f of names) {
    const source = `vendors/${f}`;
    const name = f.replace(/\.ya?ml$/, '');
    if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(name))
      throw new ConfigError(source, '', 'the file name is the route name: a-z, 0-9 and -, at most 63');
    const path = join(dir, f);
    if (statSync(path).size > MAX_FILE_BYTES)
      throw new ConfigError(source, '', `larger than ${MAX_FILE_BYTES} bytes`);
    let doc: unknown;
    try {
      doc = parseYaml(readFileSync(path, 'utf8'));
    } catch (err) {
      throw new ConfigError(source, '', `invalid YAML: ${(err as Error).message.split('\n')[0]}`);
    }
    const parsed = vendorFileSchema.safeParse(doc);
    if (!parsed.success) {
      const p = describeSchemaIssue(parsed.error, doc);
      throw new ConfigError(source, p.field, p.reason);
    }
    const v = parsed.data;
    const origin = upstreamOrigin(v.upstream.origin, source);
    const other = audiences.get(v.audience);
    if (other) throw new ConfigError(source, 'audience', `is also the audience of ${other}`);
    audiences.set(v.audience, source);
    routes.push({
      name,
      source,
      upstream: {
        origin,
        ...(v.upstream.ca_file ? { ca: readCa(configDir, v.upstream.ca_file, source) } : {}),
        timeoutMs: v.upstream.timeout * 1000,
      },
      key: v.key,
      inject: v.inject.header
        ? { kind: 'header', name: v.inject.header.name, template: v.inject.header.value }
        : v.inject.query
          ? { kind: 'query', name: v.inject.query.name }
          : { kind: 'basic', username: v.inject.basic!.username, password: v.inject.basic!.password },
      audience: v.audience,
      scopes: v.scopes,
      bearer: v.bearer,
      allow: v.allow,
      limits: { requestBytes: v.limits.request_body, responseHeaderBytes: v.limits.response_headers },
      stripResponseHeaders: v.strip_response_headers.map((h) => h.toLowerCase()),
    });
  }
  return routes;
}

/** The injected credential as text: the template with the key in place. */
export function injectedValue(template: string, key: string): string {
  return template.split(KEY_PLACEHOLDER).join(key);
}

/** Whether `segments` (a request path split on `/`, without the leading empty one) matches `p`. */
export function pathMatches(p: PathPattern, segments: readonly string[]): boolean {
  const last = p.segments.length - 1;
  for (let i = 0; i <= last; i++) {
    const s = p.segments[i]!;
    if (s === '**' && i === last) return segments.length >= i;
    if (i >= segments.length) return false;
    if (s !== '*' && s !== segments[i]) return false;
  }
  return segments.length === p.segments.length;
}

function patternProblem(text: string): string | undefined {
  if (!text.startsWith('/')) return 'must start with /';
  const segments = text.split('/').slice(1);
  for (const [i, s] of segments.entries()) {
    if (s === '**' && i !== segments.length - 1) return '** may only be the last segment';
    if (s === '.' || s === '..') return 'may not contain . or .. segments';
    if (s.includes('%') || s.includes('\\'))
      return 'may not contain % or \\ (write segments as they are decoded)';
    if (s.includes('*') && s !== '*' && s !== '**')
      return '* stands for a whole segment (write /a/*/b, not /a/b*)';
  }
  return undefined;
}

function upstreamOrigin(text: string, source: string): string {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new ConfigError(source, 'upstream.origin', 'must be an absolute https URL');
  }
  const loopback = ['127.0.0.1', '[::1]', 'localhost'].includes(u.hostname);
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && loopback))
    throw new ConfigError(source, 'upstream.origin', 'must be https (http only on a loopback address)');
  if (u.username || u.password) throw new ConfigError(source, 'upstream.origin', 'may not carry credentials');
  if ((u.pathname !== '/' && u.pathname !== '') || u.search || u.hash)
    throw new ConfigError(
      source,
      'upstream.origin',
      'must be an origin only (scheme, host, port): no path, query or fragment',
    );
  return u.origin;
}

function readCa(configDir: string, file: string, source: string): string {
  const root = resolve(configDir);
  const path = resolve(root, file);
  if (!path.startsWith(root + sep))
    throw new ConfigError(source, 'upstream.ca_file', 'must be a file inside the config directory');
  try {
    const pem = readFileSync(path, 'utf8');
    if (!pem.includes('-----BEGIN CERTIFICATE-----'))
      throw new ConfigError(source, 'upstream.ca_file', 'is not a PEM certificate');
    return pem;
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(
      source,
      'upstream.ca_file',
      `cannot be read (${(err as NodeJS.ErrnoException).code})`,
    );
  }
}

function parseBytes(text: string): number | undefined {
  const m = /^(\d+)\s*(B|KiB|MiB|GiB)?$/.exec(text.trim());
  if (!m) return undefined;
  const unit = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 }[m[2] ?? 'B']!;
  return Number(m[1]) * unit;
}
