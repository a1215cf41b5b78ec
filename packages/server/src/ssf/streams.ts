import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { Settings } from '../config/settings.js';
import type { WritContext } from '../context.js';
import { accessDenied, invalidRequest } from '../errors.js';
import { checkPushTarget, parsePushEndpoint } from './push-target.js';
import { type OwnerKind, ownerKind, type SsfStream } from './stream-record.js';
import { DeliveryMethod, EVENTS_SUPPORTED, SsfPaths } from './vocabulary.js';

/** Who is managing streams: an operator (any stream) or a receiver workload (its own streams only). */
export type SsfCaller = { kind: 'operator'; id: string } | { kind: 'receiver'; id: string };

const noLineBreaks = /^[^\r\n]*$/;
const delivery = z
  .object({
    method: z.string().min(1).max(256),
    endpoint_url: z.string().min(1).max(2048).optional(),
    authorization_header: z.string().min(1).max(4096).regex(noLineBreaks).optional(),
  })
  .strict();

/** Receiver-supplied properties (SSF 1.0 §8.1.1). */
const receiverFields = {
  delivery: delivery.optional(),
  events_requested: z.array(z.string().min(1).max(256)).max(32).optional(),
  description: z.string().max(500).nullish(),
};

/** Transmitter-supplied properties a receiver may echo back; they must match (SSF 1.0 §8.1.1.3). */
const transmitterFields = {
  iss: z.string().optional(),
  aud: z.union([z.string(), z.array(z.string())]).optional(),
  events_supported: z.array(z.string()).optional(),
  events_delivered: z.array(z.string()).optional(),
  min_verification_interval: z.number().optional(),
};

export const createBody = z
  .object({
    ...receiverFields,
    /** Writ extension for operators creating a stream for a receiver: its audience. */
    aud: z.union([z.string().min(1).max(512), z.array(z.string().min(1).max(512)).min(1).max(5)]).optional(),
  })
  .strict();

export const updateBody = z
  .object({ stream_id: z.string().min(1).max(64), ...receiverFields, ...transmitterFields })
  .strict();

export type UpdateBody = z.output<typeof updateBody>;

/** Seconds a receiver must wait between verification requests on a stream (429 before). */
export const MIN_VERIFICATION_INTERVAL = 5;

function parse<T extends z.ZodType>(schema: T, body: unknown): z.output<T> {
  const r = schema.safeParse(body ?? {});
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw invalidRequest(`${i.path.join('.') || 'body'}: ${i.message}`, { reason: 'malformed_stream' });
  }
  return r.data;
}

export const pollEndpoint = (issuer: string, id: string): string => `${issuer}${SsfPaths.poll}/${id}`;

interface Delivery {
  deliveryMethod: string;
  endpointUrl: string;
  sealedAuthorization: Buffer | null;
}

/**
 * SSF 1.0 §8.1.1.1: no delivery means poll, whose endpoint the transmitter supplies. A push endpoint
 * follows the rules of the stream's owner (`push-target.ts`), whoever edits the stream.
 */
async function resolveDelivery(
  ctx: WritContext,
  id: string,
  owner: OwnerKind,
  d: z.output<typeof delivery> | undefined,
): Promise<Delivery> {
  const method = d?.method ?? DeliveryMethod.poll;
  if (method === DeliveryMethod.poll) {
    const ours = pollEndpoint(ctx.settings.issuer, id);
    if (d?.endpoint_url !== undefined && d.endpoint_url !== ours)
      throw invalidRequest('delivery.endpoint_url of a poll stream is the transmitter’s', {
        reason: 'endpoint_url',
      });
    if (d?.authorization_header !== undefined)
      throw invalidRequest('delivery.authorization_header applies to push streams only', {
        reason: 'delivery_method',
      });
    return { deliveryMethod: method, endpointUrl: ours, sealedAuthorization: null };
  }
  if (method === DeliveryMethod.push) {
    if (d?.endpoint_url === undefined)
      throw invalidRequest('delivery.endpoint_url is required for push', { reason: 'endpoint_url' });
    const url = parsePushEndpoint(d.endpoint_url);
    await checkPushTarget(ctx, url, owner);
    return {
      deliveryMethod: method,
      endpointUrl: url.toString(),
      sealedAuthorization:
        d.authorization_header === undefined
          ? null
          : ctx.secrets.seal(Buffer.from(d.authorization_header), sealContext(id)),
    };
  }
  throw invalidRequest(`delivery.method ${JSON.stringify(method.slice(0, 64))} is not supported`, {
    reason: 'delivery_method',
  });
}

const sealContext = (id: string) => `ssf-push-authorization:${id}`;

/** The push `Authorization` header of a stream, unsealed for one delivery. */
export function pushAuthorization(ctx: WritContext, s: SsfStream): string | undefined {
  return s.sealedAuthorization
    ? ctx.secrets.open(s.sealedAuthorization, sealContext(s.id)).toString()
    : undefined;
}

/** Events delivered: what the receiver asked for that Writ supports; everything when it asked nothing. */
export function eventsDelivered(s: Pick<SsfStream, 'eventsRequested'>): string[] {
  if (s.eventsRequested.length === 0) return [...EVENTS_SUPPORTED];
  return EVENTS_SUPPORTED.filter((e) => s.eventsRequested.includes(e));
}

/**
 * A new stream from a create request (SSF 1.0 §8.1.1.1), all but its place in the event log (`fromSeq`,
 * read in the transaction that stores it). A push endpoint's host is resolved and judged here.
 */
export async function newStream(
  ctx: WritContext,
  caller: SsfCaller,
  body: unknown,
): Promise<Omit<SsfStream, 'fromSeq'>> {
  const b = parse(createBody, body);
  let aud: string[];
  if (caller.kind === 'receiver') {
    // The receiver is the workload itself: its SETs are addressed to it, and it cannot name another.
    aud = [caller.id];
    if (b.aud !== undefined && JSON.stringify([b.aud].flat()) !== JSON.stringify(aud))
      throw invalidRequest('aud is the receiver workload’s own id', { reason: 'stream_audience' });
  } else {
    if (b.aud === undefined)
      throw invalidRequest('aud is required: the receiver the stream is for', { reason: 'stream_audience' });
    aud = [b.aud].flat();
  }
  const id = randomBytes(16).toString('hex');
  const now = ctx.clock.now();
  return {
    id,
    owner: caller.id,
    aud,
    ...(await resolveDelivery(ctx, id, caller.kind, b.delivery)),
    eventsRequested: b.events_requested ?? [],
    description: b.description ?? null,
    status: 'enabled',
    statusReason: null,
    createdAt: now,
    updatedAt: now,
  };
}

/**
 * Room for one more stream for `caller` among `streams` (all there are): the transmitter's limit
 * (`ssf.max_streams`); for a receiver workload also its own limit (`ssf.max_streams_per_receiver`) and
 * the receivers' share, which leaves `ssf.operator_reserved_streams` to operators.
 */
export function checkStreamRoom(limits: Settings['ssf'], caller: SsfCaller, streams: SsfStream[]): void {
  if (streams.length >= limits.maxStreams)
    throw accessDenied(
      'the transmitter holds as many streams as it may (ssf.max_streams): delete one first',
      {
        reason: 'stream_limit',
      },
    );
  if (caller.kind === 'operator') return;
  const own = streams.filter((s) => s.owner === caller.id).length;
  if (own >= limits.maxStreamsPerReceiver)
    throw accessDenied(
      `this receiver holds ${own} streams, as many as ssf.max_streams_per_receiver allows: delete one first`,
      { reason: 'stream_limit_receiver', streams: own },
    );
  const receivers = streams.filter((s) => ownerKind(s.owner) === 'receiver').length;
  const share = Math.max(0, limits.maxStreams - limits.operatorReservedStreams);
  if (receivers >= share)
    throw accessDenied(
      `receiver workloads hold ${receivers} streams: the rest of ssf.max_streams is kept for operators (ssf.operator_reserved_streams)`,
      { reason: 'stream_limit_reserved', streams: receivers },
    );
}

/** The request's `stream_id`, for finding the stream before it is updated. */
export function updateTarget(body: unknown): UpdateBody {
  return parse(updateBody, body);
}

/**
 * PATCH (`replace` false: what is present changes, the rest stays) or PUT (`replace` true: what is
 * missing is deleted). Transmitter-supplied properties may be echoed but must match (SSF 1.0 §8.1.1.3–4).
 */
export async function updatedStream(
  ctx: WritContext,
  s: SsfStream,
  b: UpdateBody,
  replace: boolean,
): Promise<SsfStream> {
  const view = streamView(ctx, s);
  const same = (a: unknown, c: unknown) => JSON.stringify(a) === JSON.stringify(c);
  for (const key of [
    'iss',
    'aud',
    'events_supported',
    'events_delivered',
    'min_verification_interval',
  ] as const) {
    const given = b[key];
    if (given === undefined) continue;
    const expected = key === 'aud' ? s.aud : view[key];
    if (!same(key === 'aud' ? [given].flat() : given, expected))
      throw invalidRequest(`${key} is the transmitter’s and does not match`, { reason: 'transmitter_field' });
  }
  const next: SsfStream = { ...s, updatedAt: ctx.clock.now() };
  if (replace || b.delivery !== undefined)
    Object.assign(next, await resolveDelivery(ctx, s.id, ownerKind(s.owner), b.delivery));
  if (replace || b.events_requested !== undefined) next.eventsRequested = b.events_requested ?? [];
  if (replace || b.description !== undefined) next.description = b.description ?? null;
  return next;
}

/** The stream configuration as SSF 1.0 §8.1.1 shows it. The push authorization header is write-only. */
export function streamView(ctx: WritContext, s: SsfStream): Record<string, unknown> {
  return {
    stream_id: s.id,
    iss: ctx.settings.issuer,
    aud: s.aud.length === 1 ? s.aud[0] : s.aud,
    delivery: { method: s.deliveryMethod, endpoint_url: s.endpointUrl },
    events_supported: [...EVENTS_SUPPORTED],
    events_requested: s.eventsRequested,
    events_delivered: eventsDelivered(s),
    min_verification_interval: MIN_VERIFICATION_INTERVAL,
    ...(s.description !== null ? { description: s.description } : {}),
  };
}

export const statusBody = z
  .object({
    stream_id: z.string().min(1).max(64),
    status: z.enum(['enabled', 'paused', 'disabled']),
    reason: z.string().max(500).optional(),
  })
  .strict();

export const verifyBody = z
  .object({ stream_id: z.string().min(1).max(64), state: z.string().max(1024).optional() })
  .strict();

export const pollBody = z
  .object({
    maxEvents: z.number().int().min(0).max(1000).optional(),
    returnImmediately: z.boolean().optional(),
    ack: z.array(z.string().min(1).max(256)).max(1000).optional(),
    setErrs: z
      .record(
        z.string().min(1).max(256),
        z.object({ err: z.string().max(64), description: z.string().max(500).optional() }).strict(),
      )
      .optional(),
  })
  .strict();

export { parse as parseBody };
