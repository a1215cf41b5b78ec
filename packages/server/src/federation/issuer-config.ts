import { createPublicKey } from 'node:crypto';
import { parseDuration } from '../config/duration.js';
import type { IssuerFile } from '../config/schema.js';
import { ConfigError } from '../errors.js';
import { compileClaimRule } from './cel.js';
import { FEDERATION_ATTRIBUTES, PRESETS } from './presets.js';
import type { TrustedIssuer } from './trusted-issuer.js';

const LABEL_KEY = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

/**
 * Builds a trusted issuer from its validated file: the preset's defaults filled in, every CEL rule
 * compiled (errors name the file and field), keys checked. `where` names the file for errors.
 */
export function buildIssuer(f: IssuerFile, where: string): TrustedIssuer {
  const fail = (field: string, reason: string) => new ConfigError(where, field, reason);
  const preset = f.preset ? PRESETS[f.preset] : undefined;
  const issuer = f.issuer ?? preset?.issuer;
  if (issuer === undefined) throw fail('issuer', 'is required (the exact `iss` of the tokens)');
  if (f.audience === undefined)
    throw fail(
      'audience',
      'is required: an issuer without an audience rule would accept tokens minted for anyone',
    );
  const audiences = [...new Set(typeof f.audience === 'string' ? [f.audience] : f.audience)];
  if (f.jwks && f.jwks_uri) throw fail('jwks_uri', 'give either jwks_uri or jwks_file, not both');
  const jwksUri = f.jwks ? undefined : (f.jwks_uri ?? preset?.jwksUri);
  if (!f.jwks && jwksUri === undefined)
    throw fail('jwks_uri', 'is required (or jwks_file for keys kept on disk)');
  if (jwksUri !== undefined) {
    const u = new URL(jwksUri);
    if (u.protocol !== 'https:' && !(u.protocol === 'http:' && LOOPBACK.has(u.hostname)))
      throw fail('jwks_uri', 'must be an https URL (plain http only on the loopback interface)');
  }
  const jwks = f.jwks?.keys.map((k, i) => checkedKey(k, `jwks.keys.${i}`, fail));

  const skew = f.clock_skew === undefined ? 30 : parseDuration(f.clock_skew);
  if (skew === undefined || skew > 300) throw fail('clock_skew', 'must be a duration of at most 5m');
  const maxTokenAge = f.max_token_age ?? 3600;
  const jwksCooldown = f.jwks_cooldown ?? 30;
  const jwksMaxAge = f.jwks_max_age ?? 600;
  if (jwksMaxAge < jwksCooldown) throw fail('jwks_max_age', 'must be at least jwks_cooldown');

  const presetCondition = preset?.condition;
  // The file's condition must be a whole expression by itself: `a) || (b` would otherwise close the
  // preset's parenthesis and OR past its check.
  if (presetCondition && f.condition) compile(f.condition, 'condition', fail);
  const condition =
    presetCondition && f.condition
      ? `(${presetCondition}) && (${f.condition})`
      : (f.condition ?? presetCondition ?? 'true');
  compile(condition, 'condition', fail);

  const subject = f.subject ?? preset?.subject(f.trust_domain);
  if (subject === undefined) {
    throw fail(
      'subject',
      preset
        ? `is required, or give trust_domain for the ${f.preset} preset's default`
        : 'is required: a CEL expression mapping claims to the workload SPIFFE ID',
    );
  }
  compile(subject, 'subject', fail);

  const attributes = { ...(preset?.attributes ?? {}), ...(f.attributes ?? {}) };
  for (const [k, expr] of Object.entries(attributes)) {
    if (!(FEDERATION_ATTRIBUTES as readonly string[]).includes(k))
      throw fail(`attributes.${k}`, `is not a federation attribute (${FEDERATION_ATTRIBUTES.join(', ')})`);
    compile(expr, `attributes.${k}`, fail);
  }

  let task: TrustedIssuer['task'];
  if (f.task !== false) {
    const t = f.task ?? preset?.task;
    if (t) {
      const labels = t.labels;
      if (Object.keys(labels).length === 0 || Object.keys(labels).length > 8)
        throw fail('task.labels', 'must map 1 to 8 label names to CEL expressions');
      for (const [k, expr] of Object.entries(labels)) {
        if (!LABEL_KEY.test(k) || k === 'federation') throw fail(`task.labels.${k}`, 'is not a label name');
        compile(expr, `task.labels.${k}`, fail);
      }
      const purpose = t.purpose ?? `"${f.name} run"`;
      compile(purpose, 'task.purpose', fail);
      task = { purpose, labels };
    }
  }

  const out: TrustedIssuer = {
    name: f.name,
    issuer,
    audiences,
    algorithms: f.algorithms ?? preset?.algorithms ?? ['RS256', 'ES256', 'EdDSA'],
    maxTokenAge,
    clockSkew: skew,
    jwksCooldown,
    jwksMaxAge,
    condition,
    subject,
    attributes,
  };
  if (f.description !== undefined) out.description = f.description;
  if (f.preset !== undefined) out.preset = f.preset;
  if (jwksUri !== undefined) out.jwksUri = jwksUri;
  if (jwks) out.jwks = jwks;
  if (task) out.task = task;
  return out;
}

function compile(expr: string, field: string, fail: (f: string, r: string) => ConfigError): void {
  try {
    compileClaimRule(expr);
  } catch (err) {
    throw fail(field, (err as Error).message);
  }
}

function checkedKey(
  k: Record<string, unknown>,
  field: string,
  fail: (f: string, r: string) => ConfigError,
): Record<string, unknown> {
  if (k['kty'] === 'oct') throw fail(field, 'symmetric keys are never trusted for outside tokens');
  if ('d' in k) throw fail(field, 'holds a private key: give the public key only');
  try {
    const key = createPublicKey({ key: k as import('node:crypto').JsonWebKey, format: 'jwk' });
    if (key.asymmetricKeyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048)
      throw new Error('RSA keys must have at least 2048 bits');
  } catch (err) {
    throw fail(field, `not a usable public key: ${(err as Error).message}`);
  }
  return k;
}
