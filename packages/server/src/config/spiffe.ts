/** Validates a SPIFFE ID (SPIFFE-ID spec §2): `spiffe://<trust-domain>/<path>`; returns a reason or undefined. */
export function spiffeIdProblem(id: string): string | undefined {
  if (id.length > 2048) return 'is longer than 2048 bytes';
  if (!id.startsWith('spiffe://')) return 'must start with spiffe://';
  const rest = id.slice('spiffe://'.length);
  const slash = rest.indexOf('/');
  const td = slash < 0 ? rest : rest.slice(0, slash);
  if (!/^[a-z0-9._-]+$/.test(td))
    return 'trust domain may hold only lowercase letters, digits, ".", "-" and "_"';
  if (slash < 0) return 'must have a path naming the workload';
  const segments = rest.slice(slash + 1).split('/');
  for (const s of segments) {
    if (s === '') return 'path has an empty segment';
    if (s === '.' || s === '..') return 'path must not contain "." or ".." segments';
    if (!/^[A-Za-z0-9._-]+$/.test(s)) return 'path may hold only letters, digits, ".", "-" and "_"';
  }
  return undefined;
}
