import { lookup } from 'node:dns/promises';

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/**
 * Resolves a host name to every address it has. Writ resolves a name it will connect to on someone
 * else's behalf once per connection, judges every address, and connects to the one it judged (never
 * resolving again), so a name that changes its answer meanwhile cannot lead the connection elsewhere.
 */
export type HostResolver = (hostname: string) => Promise<ResolvedAddress[]>;

/** The system resolver (`getaddrinfo`: hosts file, then DNS), every address in the order it gives. */
export const systemResolver: HostResolver = async (hostname) =>
  (await lookup(hostname, { all: true, verbatim: true })).map((a) => ({
    address: a.address,
    family: a.family === 6 ? 6 : 4,
  }));
