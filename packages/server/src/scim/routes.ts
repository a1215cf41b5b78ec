import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AUDITED, auditRefusal } from '../audit/refusal.js';
import { admitCaller } from '../auth/budget.js';
import { secretMatches } from '../auth/client/client-secret.js';
import type { WritContext } from '../context.js';
import { OAuthError } from '../errors.js';
import { parseBoundedJson } from '../jose/json.js';
import type { ScimRecord, ScimResourceType } from '../people/scim-record.js';
import { info } from '../request/info.js';
import {
  LIST_RESPONSE,
  resourceTypes,
  SCIM_BODY_BYTES,
  SCIM_MAX_RESULTS,
  schemas,
  serviceProviderConfig,
} from './discovery.js';
import { parseFilter } from './filter.js';
import { KINDS, patchedAttributes, readResource, SCIM_ACTOR, writeResource } from './provisioning.js';
import { ENTERPRISE_USER_SCHEMA_ID } from './resource-schema.js';
import { scimError, scimErrorBody, scimNotFound, scimPreconditionFailed } from './scim-error.js';

/** Where SCIM lives, under the issuer: `<issuer>/scim/v2/Users`, `/Groups`, and the discovery endpoints. */
export const SCIM_PATH = '/scim/v2';
const SCIM_JSON = 'application/scim+json; charset=utf-8';
const CHALLENGE = { 'www-authenticate': 'Bearer realm="writ-scim"' };

const ENDPOINTS: Record<string, ScimResourceType> = { Users: 'User', Groups: 'Group' };

/** The attributes each type can be found by with `filter` (lowercase → canonical). */
const FILTERS: Record<ScimResourceType, ReadonlyMap<string, string>> = {
  User: new Map([
    ['username', 'userName'],
    ['externalid', 'externalId'],
    ['id', 'id'],
  ]),
  Group: new Map([
    ['displayname', 'displayName'],
    ['externalid', 'externalId'],
    ['id', 'id'],
  ]),
};

/**
 * SCIM 2.0 (RFC 7644) for identity providers: `/scim/v2/Users` and `/Groups` (create, get, list with
 * `filter=<attr> eq "<v>"`, replace, patch, delete) and `ServiceProviderConfig`, `ResourceTypes`,
 * `Schemas`. One credential authenticates the provider: a static bearer secret (what Entra ID and Okta
 * send) whose SHA-256 is `scim.token_sha256`. Every refusal is a SCIM error (RFC 7644 §3.12) and is
 * audited as `scim.refused` with its reason.
 */
export function registerScimRoutes(app: FastifyInstance, ctx: WritContext): void {
  app.register(
    async (scim) => {
      const parse = (
        _req: FastifyRequest,
        body: string | Buffer,
        done: (err: Error | null, v?: unknown) => void,
      ) => {
        try {
          done(null, parseBoundedJson(body as string, ctx.settings.limits.jsonDepth));
        } catch (err) {
          done(
            scimError(
              400,
              'invalidSyntax',
              `the body is not acceptable JSON: ${(err as Error).message.slice(0, 80)}`,
            ),
          );
        }
      };
      scim.addContentTypeParser(
        'application/scim+json',
        { parseAs: 'string', bodyLimit: SCIM_BODY_BYTES },
        parse,
      );
      // Registered again in this scope so its errors are SCIM's and its limit this endpoint's.
      scim.removeContentTypeParser('application/json');
      scim.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: SCIM_BODY_BYTES }, parse);

      scim.addHook('onRequest', async (req) => {
        const expected = ctx.settings.scim.tokenSha256;
        if (expected === '')
          throw new OAuthError(
            'invalid_token',
            'SCIM provisioning is off: the operator sets scim.token_sha256',
            {
              detail: { reason: 'scim_disabled' },
              headers: CHALLENGE,
            },
          );
        const m = /^Bearer ([\x21-\x7e]{1,1024})$/.exec(req.headers.authorization ?? '');
        if (!m || !secretMatches(m[1]!, expected))
          throw new OAuthError(
            'invalid_token',
            'send the SCIM bearer secret the operator configured: Authorization: Bearer <secret>',
            {
              detail: { reason: 'scim_credential' },
              headers: { 'www-authenticate': 'Bearer realm="writ-scim", error="invalid_token"' },
            },
          );
        await admitCaller(ctx, info(req), SCIM_ACTOR);
      });

      scim.setErrorHandler(async (error, req, reply) => {
        const audited = (error as unknown as Record<symbol, unknown>)[AUDITED]
          ? (error as OAuthError)
          : ((await auditRefusal(ctx, 'scim', scimFrameworkError(error), info(req), {
              path: req.url.slice(0, 128),
              method: req.method,
            })) as OAuthError);
        return reply
          .code(audited.status)
          .headers({ 'cache-control': 'no-store', ...audited.headers })
          .type(SCIM_JSON)
          .send(scimErrorBody(audited));
      });
      scim.setNotFoundHandler(async () => {
        throw scimNotFound('endpoint');
      });

      const base = `${ctx.settings.issuer}${SCIM_PATH}`;
      const send = (reply: FastifyReply, body: unknown, status = 200) =>
        reply.code(status).headers({ 'cache-control': 'no-store' }).type(SCIM_JSON).send(body);

      scim.get('/ServiceProviderConfig', async (_req, reply) => send(reply, serviceProviderConfig(base)));
      scim.get('/ResourceTypes', async (_req, reply) => send(reply, listOf(resourceTypes(base), 1)));
      scim.get<{ Params: { id: string } }>('/ResourceTypes/:id', async (req, reply) => {
        const t = resourceTypes(base).find((r) => r['id'] === req.params.id);
        if (!t) throw scimNotFound('resource type');
        return send(reply, t);
      });
      scim.get('/Schemas', async (_req, reply) => send(reply, listOf(schemas(base), 1)));
      scim.get<{ Params: { id: string } }>('/Schemas/:id', async (req, reply) => {
        const s = schemas(base).find((r) => r['id'] === req.params.id);
        if (!s) throw scimNotFound('schema');
        return send(reply, s);
      });

      for (const [endpoint, type] of Object.entries(ENDPOINTS)) {
        const view = (r: ScimRecord) => representation(r, `${base}/${endpoint}`);
        const load = async (id: string, req: FastifyRequest) => {
          const r = id.length <= 64 ? await ctx.store.getScimResource(type, id) : undefined;
          if (!r || r.deleted) throw scimNotFound(type);
          const ifMatch = req.headers['if-match'];
          if (
            typeof ifMatch === 'string' &&
            ifMatch !== '*' &&
            !ifMatch.split(',').some((t) => t.trim() === etag(r))
          )
            throw scimPreconditionFailed();
          return r;
        };
        const answer = (reply: FastifyReply, r: ScimRecord, status = 200) => {
          reply.header('etag', etag(r));
          if (status === 201) reply.header('location', `${base}/${endpoint}/${r.id}`);
          return send(reply, view(r), status);
        };

        scim.post(`/${endpoint}`, async (req, reply) => {
          const attributes = readResource(type, req.body);
          return answer(reply, await writeResource(ctx, type, undefined, { attributes }, 'created'), 201);
        });
        scim.get<{ Querystring: Record<string, string | undefined> }>(`/${endpoint}`, async (req, reply) => {
          const q = req.query;
          const start = Math.max(1, integer(q['startIndex'], 'startIndex') ?? 1);
          const count = Math.min(Math.max(0, integer(q['count'], 'count') ?? 100), SCIM_MAX_RESULTS);
          const f = q['filter'] === undefined ? undefined : parseFilter(q['filter'], FILTERS[type]);
          let found: ScimRecord[];
          if (f && f.attribute !== 'externalId' && f.attribute !== 'id') {
            // userName and displayName map to the indexed name: what providers look up before each create.
            let name: string | undefined;
            try {
              name = KINDS[type].name({ userName: f.value, displayName: f.value });
            } catch {
              name = undefined; // no valid id has that value: nothing matches
            }
            const hit = name === undefined ? undefined : await ctx.store.findScimResource(type, name);
            found = hit ? [hit] : [];
          } else found = (await ctx.store.listScimResources(type)).filter((r) => !r.deleted);
          if (f) {
            found = found.filter((r) => {
              if (f.attribute === 'id') return r.id === f.value;
              const v = r.attributes[f.attribute];
              // userName and displayName are caseExact false (RFC 7643 §4.1.1, §4.2); externalId true.
              return (
                typeof v === 'string' &&
                (f.attribute === 'externalId' ? v === f.value : v.toLowerCase() === f.value.toLowerCase())
              );
            });
          }
          return send(reply, {
            ...listOf(found.slice(start - 1, start - 1 + count).map(view), start),
            totalResults: found.length,
          });
        });
        scim.get<{ Params: { id: string } }>(`/${endpoint}/:id`, async (req, reply) =>
          answer(reply, await load(req.params.id, req)),
        );
        scim.put<{ Params: { id: string } }>(`/${endpoint}/:id`, async (req, reply) => {
          const existing = await load(req.params.id, req);
          const attributes = readResource(type, req.body);
          return answer(reply, await writeResource(ctx, type, existing, { attributes }, 'replaced'));
        });
        scim.patch<{ Params: { id: string } }>(`/${endpoint}/:id`, async (req, reply) => {
          const existing = await load(req.params.id, req);
          const attributes = patchedAttributes(type, existing, req.body);
          return answer(reply, await writeResource(ctx, type, existing, { attributes }, 'patched'));
        });
        scim.delete<{ Params: { id: string } }>(`/${endpoint}/:id`, async (req, reply) => {
          const existing = await load(req.params.id, req);
          await writeResource(
            ctx,
            type,
            existing,
            { attributes: existing.attributes, deleted: true },
            'deleted',
          );
          return reply.code(204).headers({ 'cache-control': 'no-store' }).send();
        });
      }
    },
    { prefix: SCIM_PATH },
  );
}

const etag = (r: ScimRecord) => `W/"${r.version}"`;

function listOf(resources: unknown[], start: number): Record<string, unknown> {
  return {
    schemas: [LIST_RESPONSE],
    totalResults: resources.length,
    startIndex: start,
    itemsPerPage: resources.length,
    Resources: resources,
  };
}

function integer(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^-?\d{1,9}$/.test(v)) throw scimError(400, 'invalidValue', `${name} must be an integer`);
  return Number(v);
}

/** A resource as SCIM returns it: its schemas, id, attributes and `meta` (RFC 7643 §3.1). */
function representation(r: ScimRecord, location: string): Record<string, unknown> {
  const kind = KINDS[r.type];
  const extensions = r.attributes[ENTERPRISE_USER_SCHEMA_ID] !== undefined ? [ENTERPRISE_USER_SCHEMA_ID] : [];
  return {
    schemas: [kind.schema.id, ...extensions],
    id: r.id,
    ...r.attributes,
    ...(r.type === 'User' ? { active: r.attributes['active'] !== false } : {}),
    meta: {
      resourceType: r.type,
      created: new Date(r.createdAt).toISOString(),
      lastModified: new Date(r.updatedAt).toISOString(),
      location: `${location}/${r.id}`,
      version: etag(r),
    },
  };
}

/** Fastify's own refusals (a body too large, an unknown media type) as SCIM errors. */
function scimFrameworkError(error: unknown): unknown {
  if (error instanceof OAuthError) return error;
  const e = error as { code?: string; statusCode?: number };
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
    return new OAuthError('invalid_request', `the request body is larger than ${SCIM_BODY_BYTES} bytes`, {
      status: 413,
      detail: { reason: 'scim_too_large' },
    });
  if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
    return new OAuthError('invalid_request', 'send application/scim+json', {
      status: 415,
      detail: { reason: 'scim_invalid_syntax' },
    });
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500)
    return scimError(400, 'invalidSyntax', 'malformed request');
  return error;
}
