// The soak benchmark's server and abusive traffic, shared by bench/soak.mjs (every abuser at once,
// beside well-behaved traffic), bench/abuse-cost.mjs (one abuser at a time) and bench/stream-open.mjs
// (the reconnect abuser's opens, one by one): the classes, revocations put in force through the admin
// API, raw event streams, task floods and garbage token requests.
import { connect } from 'node:net';
import { ASSERTION_TYPE, AUDIENCE, REQUESTED_SCOPE, SCOPES, tokenRequestBodies } from './common.mjs';
import { bearerToken } from './writ-server.mjs';

/** The class of verifiers that read the event stream with a bearer token. */
export const eventsClass = (issuer) => ({
  name: 'events',
  audiences: [`${issuer}/v1/events`],
  scopes: ['events:read'],
  default_scopes: ['events:read'],
  max_ttl: '30m',
  default_ttl: '30m',
  binding: 'bearer',
});

/** The soak's classes: `bench` (token requests, good and garbage) and `events`. */
export const soakClasses = (issuer) => [
  {
    name: 'bench',
    audiences: [AUDIENCE],
    scopes: SCOPES,
    default_scopes: [REQUESTED_SCOPE],
    max_ttl: '5m',
    default_ttl: '5m',
    binding: 'bearer',
  },
  eventsClass(issuer),
];

/** A bearer token of the `events` class for `client` ({ clientId, privateJwk }). */
export const eventsToken = (issuer, client) =>
  bearerToken(issuer, client, { resource: `${issuer}/v1/events`, scope: 'events:read' });

/**
 * Puts `count` jti revocations in force through the admin session `admin`, eight calls at a time: like
 * the soak's trickle, revocations of tokens the server has no record of, in force for
 * tokens.max_lifetime.
 */
export async function seedRevocations(admin, count, reason) {
  let next = 0;
  const seed = async () => {
    while (next < count) {
      const i = next++;
      await admin.revoke({ kind: 'jti', value: `seed-${i}-${'x'.repeat(64)}`, reason });
    }
  };
  await Promise.all(Array.from({ length: 8 }, seed));
}

/**
 * The request that opens the event stream as the SDK does without `Last-Event-ID`: SHA-256 revocation
 * digests and a paged snapshot first.
 */
export const eventStreamRequest = (origin, token) =>
  `GET /v1/events?revocations=sha256&snapshot=paged HTTP/1.1\r\nhost: ${new URL(origin).host}\r\n` +
  `authorization: Bearer ${token}\r\n\r\n`;

/**
 * An event stream on a raw socket. Returns { socket, status, events, closed, opened }: `opened` resolves
 * with the HTTP status once the response head is in (or the socket closed first); `events` counts the
 * events read after it. With `read: false` the socket stops reading after the head: a stream that never
 * reads.
 */
export function openEventStream(origin, token, { read }) {
  const socket = connect(Number(new URL(origin).port), '127.0.0.1');
  const s = { socket, status: 0, events: 0, closed: false };
  let head = '';
  socket.setEncoding('utf8');
  socket.on('error', () => undefined);
  socket.on('close', () => {
    s.closed = true;
  });
  s.opened = new Promise((resolve) => {
    socket.on('data', (chunk) => {
      if (s.status === 0) {
        head += chunk;
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        s.status = Number(head.slice(9, 12));
        resolve(s.status);
        if (!read) socket.pause();
        return;
      }
      s.events += chunk.split('\nevent: ').length - 1;
    });
    socket.on('close', () => resolve(s.status));
  });
  socket.write(eventStreamRequest(origin, token));
  return s;
}

/** The task flood's `POST /v1/tasks` form: `abuser` opens task `i` with a lease it never renews. */
export function taskFloodForm(abuser, issuer, i) {
  const [body] = tokenRequestBodies({
    clients: [abuser],
    audienceOfAssertion: issuer,
    count: 1,
    prefix: `t${i}`,
  });
  const form = new URLSearchParams(body);
  form.delete('grant_type');
  form.delete('resource');
  form.delete('scope');
  form.set('purpose', 'flood');
  form.set('lease', '30');
  return form.toString();
}

/** A token request with the victim's client_id and an assertion that is no JWT. */
export const garbageTokenForm = (victimClientId) =>
  new URLSearchParams({
    grant_type: 'client_credentials',
    client_id: victimClientId,
    client_assertion_type: ASSERTION_TYPE,
    client_assertion: 'e30.e30.garbage',
    resource: AUDIENCE,
  }).toString();
