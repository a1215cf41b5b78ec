/** Largest payload segment read without verification (base64url characters). */
const MAX_PAYLOAD = 16_384;

/**
 * One claim of a compact JWT, read without verifying anything: only ever to choose which verification
 * applies (whose keys to try, which issuer, which audience's check); never trusted by itself.
 * Undefined when the JWT or its payload does not parse.
 */
export function unverifiedClaim(jwt: string, name: string): unknown {
  const dot = jwt.indexOf('.');
  const end = jwt.indexOf('.', dot + 1);
  if (dot < 0 || end < 0 || end - dot > MAX_PAYLOAD) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(jwt.slice(dot + 1, end), 'base64url').toString('utf8')) as unknown;
    return typeof claims === 'object' && claims !== null
      ? (claims as Record<string, unknown>)[name]
      : undefined;
  } catch {
    return undefined;
  }
}

/** A string claim read as `unverifiedClaim` does, or undefined. */
export function unverifiedString(jwt: string, name: string): string | undefined {
  const v = unverifiedClaim(jwt, name);
  return typeof v === 'string' ? v : undefined;
}
