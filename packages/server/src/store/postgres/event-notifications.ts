import pg from 'pg';

export interface EventNotificationOptions {
  url: string;
  /** The channel `appendEvent` notifies, in the same transaction as the insert. */
  channel: string;
  connectTimeoutMs: number;
  /** Called on each notification, and after each (re)connection: what was sent meanwhile is lost. */
  wake: () => void;
  onError?: (err: Error) => void;
  /** Milliseconds between checks that the connection still answers. Default 15000. */
  heartbeatMs?: number;
}

/**
 * LISTEN on a connection of its own (a pooled one would be handed to other work), reconnecting with
 * backoff for as long as it runs. Only a wake-up: a node reads the event log after each one, and reads it
 * periodically anyway, so a notification lost while the link was down costs latency, never an event.
 * Returns a function that stops listening.
 */
export function watchEventNotifications(o: EventNotificationOptions): () => Promise<void> {
  let stopped = false;
  let client: pg.Client | undefined;
  let retry: NodeJS.Timeout | undefined;
  let heartbeat: NodeJS.Timeout | undefined;
  let backoff = 250;

  const drop = (c: pg.Client, err?: Error) => {
    if (client !== c) return;
    client = undefined;
    clearInterval(heartbeat);
    c.removeAllListeners('notification');
    c.end().catch(() => undefined);
    if (err) o.onError?.(err);
    if (!stopped) {
      retry = setTimeout(connect, backoff);
      retry.unref();
      backoff = Math.min(backoff * 2, 5000);
    }
  };

  const connect = () => {
    retry = undefined;
    if (stopped) return;
    const c = new pg.Client({
      connectionString: o.url,
      connectionTimeoutMillis: o.connectTimeoutMs,
      query_timeout: o.connectTimeoutMs,
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      application_name: 'writ-listen',
    });
    client = c;
    c.on('error', (err) => drop(c, err));
    c.on('end', () => drop(c, new Error('event notification connection closed')));
    c.on('notification', () => o.wake());
    c.connect()
      .then(() => c.query(`LISTEN ${o.channel}`))
      .then(() => {
        if (client !== c) return;
        backoff = 250;
        // A silent link (no RST, no FIN) would otherwise go unnoticed until TCP keepalive gives up.
        heartbeat = setInterval(() => {
          c.query('SELECT 1').catch((err: Error) => drop(c, err));
        }, o.heartbeatMs ?? 15_000);
        heartbeat.unref();
        o.wake();
      })
      .catch((err: Error) => drop(c, err));
  };

  connect();
  return async () => {
    stopped = true;
    clearTimeout(retry);
    clearInterval(heartbeat);
    const c = client;
    client = undefined;
    if (c) {
      c.removeAllListeners();
      c.on('error', () => undefined);
      await c.end().catch(() => undefined);
    }
  };
}
