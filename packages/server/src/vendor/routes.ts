import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { auditRefusal } from '../audit/refusal.js';
import { authenticateBearer } from '../auth/bearer.js';
import type { WritContext } from '../context.js';
import { invalidRequest } from '../errors.js';
import { info } from '../request/info.js';
import {
  addVendorKey,
  LEASE_SECONDS,
  leaseVendorKey,
  listVendorKeys,
  retireVendorKey,
  rotateVendorKey,
  showVendorKey,
  VENDOR_KEY_NAME,
} from './vendor-keys.js';

export const VENDOR_KEYS_PATH = '/v1/vendor-keys';

/** The audience a proxy's token must carry to lease vendor keys: its class must allow it. */
export const vendorKeysAudience = (issuer: string): string => `${issuer}${VENDOR_KEYS_PATH}`;

const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' };
const name = z.string().regex(VENDOR_KEY_NAME, 'must be a-z, 0-9, . _ - (at most 63)');
const proxies = z.array(z.string().min(1).max(2048)).max(100);
export const addBody = z
  .object({ name, secret: z.string().max(4096), proxies: proxies.default([]) })
  .strict();
export const rotateBody = z
  .object({
    secret: z.string().max(4096),
    overlap: z
      .number()
      .int()
      .min(LEASE_SECONDS)
      .max(30 * 86_400)
      .default(3600),
    proxies: proxies.optional(),
  })
  .strict();
export const leaseBody = z.object({ name, jwk: z.record(z.string(), z.unknown()) }).strict();

/**
 * Admin routes of vendor keys: add, rotate, list, show, retire. Bodies carry the key; no answer ever
 * does (only its version and fingerprint). `op` names the authenticated operator.
 */
export function registerVendorKeyAdminRoutes(
  admin: FastifyInstance,
  ctx: WritContext,
  op: (req: FastifyRequest) => string,
  body: <T extends z.ZodType>(schema: T, req: FastifyRequest) => z.output<T>,
): void {
  admin.get('/vendor-keys', async () => ({ vendor_keys: await listVendorKeys(ctx) }));
  admin.get<{ Params: { name: string } }>('/vendor-keys/:name', async (req) =>
    showVendorKey(ctx, req.params.name.slice(0, 64)),
  );
  admin.post('/vendor-keys', async (req, reply) => {
    const b = body(addBody, req);
    reply.code(201);
    return addVendorKey(ctx, { ...b, actor: op(req) });
  });
  admin.post<{ Params: { name: string } }>('/vendor-keys/:name/rotate', async (req) => {
    const b = body(rotateBody, req);
    return rotateVendorKey(ctx, {
      name: req.params.name.slice(0, 64),
      secret: b.secret,
      overlapSeconds: b.overlap,
      ...(b.proxies ? { proxies: b.proxies } : {}),
      actor: op(req),
    });
  });
  admin.post<{ Params: { name: string } }>('/vendor-keys/:name/retire', async (req) => {
    await retireVendorKey(ctx, req.params.name.slice(0, 64), op(req));
    return { name: req.params.name, retired: true };
  });
}

/**
 * `POST /v1/vendor-keys/lease`: a vendor-key proxy (a workload with a token for `vendorKeysAudience`,
 * listed by the key as one of its proxies) leases a key, encrypted to the ephemeral key it sends.
 */
export function registerVendorKeyRoutes(app: FastifyInstance, ctx: WritContext): void {
  app.post(
    `${VENDOR_KEYS_PATH}/lease`,
    {
      bodyLimit: 8192,
      onRequest: async (req: FastifyRequest) => {
        try {
          await authenticateBearer(ctx, info(req), vendorKeysAudience(ctx.settings.issuer));
        } catch (err) {
          throw await auditRefusal(ctx, 'vendor_keys', err, info(req), {});
        }
      },
    },
    async (req, reply) => {
      const caller = info(req).caller!;
      try {
        const r = leaseBody.safeParse(req.body ?? {});
        if (!r.success)
          throw invalidRequest('the body must be { "name": NAME, "jwk": { EC P-256 public key } }', {
            reason: 'vendor_key_lease_key',
          });
        reply.headers(NO_STORE);
        return await leaseVendorKey(ctx, { name: r.data.name, caller, jwk: r.data.jwk });
      } catch (err) {
        throw await auditRefusal(ctx, 'vendor_keys', err, info(req), { client_id: caller });
      }
    },
  );
}
