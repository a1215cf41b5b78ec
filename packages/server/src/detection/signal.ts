import type { VerifierSignal } from '@writ/sdk/wire';

/**
 * What detection reads: one event with a typed payload per kind. Every field was authenticated or comes
 * from Writ's own records, except where a field says otherwise (`token.refused`'s `client_id`, which
 * the refused caller only claimed: it may be counted and alerted on, never acted on).
 */
export interface SignalData {
  /** One use a verifier reported (each record, not only the aggregates). */
  usage: {
    /** The token's workload and task, from Writ's record of the token, never from the report. */
    sub: string;
    jti: string;
    tid: string;
    /** The API the token is for (its `aud`). */
    aud: string;
    /** The verifier that reported the use (its authenticated workload id). */
    reporter: string;
    operation: string;
    /** The caller's address as the verifier saw it, and its network (IPv4 /24, IPv6 /64 by default). */
    source: string;
    network: string;
    /** The environment `networks.yaml` maps the network to; "" when none does. */
    network_environment: string;
    user_agent: string;
    /**
     * `browser`, `interactive` (Postman, Insomnia…), `cli` (curl, wget…), `tool` (an SDK or any other)
     * or "" when none was sent (detection/user-agent.ts).
     */
    user_agent_kind: 'browser' | 'interactive' | 'cli' | 'tool' | '';
    /** Whether Writ had revoked the token before this use (a verifier behind the stream allowed it). */
    decision: 'allow' | 'deny';
    reason: string;
    /** The security signal of the refusal, "" when it carries none. */
    signal: VerifierSignal | '';
    /** Whether Writ had revoked the token before this use (a verifier behind the stream allowed it). */
    token_revoked: boolean;
  };
  /** A verifier reported a signal about itself (its revocation state went stale). */
  'verifier.signal': { reporter: string; signal: VerifierSignal; source: string };
  'token.issued': { sub: string; jti: string; aud: string; cls: string; tid: string; source: string };
  /**
   * A refusal at the token endpoint. `client_id` is what the caller claimed, not who it is: rules may
   * count and alert on it; the engine never raises that workload's risk or acts on it.
   */
  'token.refused': { client_id: string; reason: string; source: string };
  'task.opened': { sub: string; tid: string };
  'task.closed': { sub: string; tid: string; reason: string };
  /** A federation token was presented again (its `jti` was already used). */
  'federation.replay': { issuer: string; sub: string; source: string };
}

export type SignalKind = keyof SignalData;

export const SIGNAL_KINDS: readonly SignalKind[] = [
  'usage',
  'verifier.signal',
  'token.issued',
  'token.refused',
  'task.opened',
  'task.closed',
  'federation.replay',
];

/** One signal: its kind, its time (ms, from the record or the server's clock) and its payload. */
export type Signal<K extends SignalKind = SignalKind> = {
  [T in K]: { kind: T; time: number; data: SignalData[T] };
}[K];

/** The workload a signal is about, when Writ authenticated it; undefined for claimed identities. */
export function signalWorkload(s: Signal): string | undefined {
  switch (s.kind) {
    case 'usage':
    case 'token.issued':
    case 'task.opened':
    case 'task.closed':
      return s.data.sub;
    case 'verifier.signal':
      return s.data.reporter;
    case 'federation.replay':
      return s.data.sub === '' ? undefined : s.data.sub;
    case 'token.refused':
      return undefined;
  }
}
