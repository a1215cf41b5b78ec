/**
 * The audit log's vocabulary: every type of event Writ writes to it, in one place, so a producer cannot
 * write a type that `writ audit --type`, the docs and the readers of the chain do not know. (The event
 * log that nodes and verifiers follow has its own vocabulary: `EventType` in `@writ/sdk/wire`.)
 */

/** Where a refusal happened; each is audited as `<endpoint>.refused` and counted by endpoint. */
export type RefusalEndpoint =
  | 'token'
  | 'introspection'
  | 'revocation'
  | 'task'
  | 'usage'
  | 'events'
  | 'policy_bundle'
  | 'access'
  | 'ssf'
  | 'leaks'
  | 'vendor_keys'
  | 'vendor_proxy'
  | 'admin'
  | 'admin_token'
  | 'scim'
  | 'console'
  | 'http';

export type AuditEventType =
  | `${RefusalEndpoint}.refused`
  // A request answered with a DPoP nonce to retry with (`use_dpop_nonce`, RFC 9449 §8): the first
  // step of every DPoP token request, not a refusal (outcome `challenged`).
  | `${RefusalEndpoint}.challenged`
  // Tokens
  | 'token.issued'
  | 'token.introspected'
  | 'federation.token_replayed'
  | 'revocation.created'
  | 'task.opened'
  | 'task.closed'
  | 'usage.reported'
  // Detection and response
  | 'detection.raised'
  | 'detection.paused'
  | 'detection.resumed'
  | 'detection.budget_exhausted'
  | 'detection.finding_updated'
  // A leak report taken: how many tokens, how many were Writ's, how many it revoked (docs/leaks.md)
  | 'leak.reported'
  // Vendor keys: added, rotated, retired by an operator; leased by a proxy (never the key itself)
  | 'vendor_key.added'
  | 'vendor_key.rotated'
  | 'vendor_key.retired'
  | 'vendor_key.leased'
  // Operators and configuration
  | 'admin.session'
  // The console (docs/console.md): a person signed in or out; a state-changing request through a session.
  | `console.${'signed_in' | 'signed_out' | 'action'}`
  // People: what an identity provider changed over SCIM, and what it did to a person's access
  | `scim.${'user' | 'group'}.${'created' | 'replaced' | 'patched' | 'deleted'}`
  | `person.${'deprovisioned' | 'reactivated'}`
  | 'config.applied'
  // The exceptions registry (docs/governance.md): an operator renewed or retired one; its owner was alerted.
  | `exception.${'renewed' | 'retired' | 'expiring'}`
  // Break-glass (docs/governance.md): asked, granted (approved or emergency), ended, closed with its review.
  | `breakglass.${'requested' | 'granted' | 'ended' | 'closed'}`
  // `writ govern verify`: a proof of the period was made and signed (its result and checkpoint).
  | 'governance.verified'
  | 'keys.rotated'
  | `workload.${'enabled' | 'disabled' | 'quarantined'}`
  // A workload template admitted a workload on first use, or stopped admitting one at apply.
  | `workload.${'admitted' | 'removed'}`
  | 'policy.loaded'
  | 'resource.updated'
  | 'tls.reloaded'
  | 'tls.reload_failed'
  // Verifiers and receivers
  | 'events.subscribed'
  | 'policy.bundle.served'
  | 'ssf.stream.created'
  | 'ssf.stream.updated'
  | 'ssf.stream.deleted'
  | 'ssf.stream.status'
  | 'ssf.verification.requested'
  | 'ssf.set.rejected'
  | 'ssf.push.refused'
  | 'ssf.set.errors'
  | 'ssf.sets.dropped'
  | 'ssf.events.missed';
