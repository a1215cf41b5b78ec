import { z } from 'zod';
import { spiffeIdProblem } from '../config/spiffe.js';
import { ConfigError } from '../errors.js';
import type { TrustedIssuer } from '../federation/trusted-issuer.js';
import type { TokenClass } from '../registry/token-class.js';
import type { Workload } from '../registry/workload.js';
import { compileTemplateRule } from './template-rules.js';
import { covers, overlappingPrefix, type WorkloadTemplate } from './workload-template.js';

const name = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9._-]{0,62}$/,
    'must be 1-63 lowercase letters, digits, ".", "-" or "_", starting with a letter or digit',
  );
const environment = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'must be a short lowercase name such as dev, staging or prod');
const cel = z.string().min(1).max(2048);
const segment = z.string().regex(/^[A-Za-z0-9._-]{1,253}$/, 'must be one SPIFFE path segment');

/** `templates/*.yaml`: a family of workloads admitted by pattern (docs/templates.md). */
export const templateFileSchema = z
  .object({
    id: name,
    description: z.string().max(1000).optional(),
    owner: z.string().min(1).max(200),
    environment,
    /** The trusted issuer whose tokens prove the identities (exactly one of federation, bundle). */
    federation: name.optional(),
    /** The SPIFFE trust domain whose X.509 bundle (`tls.spiffe_bundles`) the SVIDs chain to. */
    bundle: z
      .string()
      .regex(/^[a-z0-9._-]{1,255}$/, 'must be a SPIFFE trust domain such as example.org')
      .optional(),
    match: z
      .object({
        /** SPIFFE ID prefixes, each ending in `/`. */
        prefixes: z.array(z.string().min(1).max(2048)).min(1).max(100).optional(),
        /** Kubernetes: `spiffe://<trust_domain>/ns/<namespace>/sa/` for each namespace. */
        trust_domain: z
          .string()
          .regex(/^[a-z0-9._-]{1,255}$/, 'must be a SPIFFE trust domain such as example.org')
          .optional(),
        namespaces: z.array(segment).min(1).max(1000).optional(),
      })
      .strict(),
    condition: cel.optional(),
    classes: z.array(name).min(1).max(50),
    tables: z
      .record(
        z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, 'must be an identifier'),
        z.record(z.string().max(256), z.string().max(512)),
      )
      .optional(),
    derive: z
      .object({
        owner: cel,
        environment: cel,
        classes: cel.optional(),
        attributes: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/), cel).optional(),
      })
      .strict(),
  })
  .strict();

export type TemplateFile = z.infer<typeof templateFileSchema>;

/**
 * Builds the templates of a config: each names a trusted issuer and classes that exist, compiles
 * every CEL rule, and covers identities no other template and no registered workload has (an identity
 * admitted two ways would have two owners). Errors name the file, the field and what overlaps.
 */
export function buildTemplates(
  documents: ReadonlyArray<{ value: TemplateFile; where: string }>,
  known: {
    issuers: readonly TrustedIssuer[];
    classes: readonly TokenClass[];
    workloads: readonly Workload[];
    workloadFiles: ReadonlyMap<string, string>;
  },
): WorkloadTemplate[] {
  const out: Array<{ t: WorkloadTemplate; where: string }> = [];
  for (const { value: f, where } of documents) {
    const fail = (field: string, reason: string) => new ConfigError(where, field, reason);
    const twin = out.find((x) => x.t.id === f.id);
    if (twin) throw fail('id', `template "${f.id}" is also defined in ${twin.where}`);
    if ((f.federation === undefined) === (f.bundle === undefined))
      throw fail(
        'federation',
        'give exactly one of federation (a trusted issuer whose tokens prove the identities) and bundle (the trust domain whose X.509 bundle their SVIDs chain to)',
      );
    if (f.federation !== undefined && !known.issuers.some((i) => i.name === f.federation))
      throw fail('federation', `unknown issuer "${f.federation}"`);
    for (const [i, cls] of f.classes.entries())
      if (!known.classes.some((c) => c.name === cls)) throw fail(`classes.${i}`, `unknown class "${cls}"`);

    const prefixes = [...(f.match.prefixes ?? [])];
    for (const [i, p] of prefixes.entries()) {
      const problem = p.endsWith('/') ? spiffeIdProblem(`${p}x`) : 'must end with "/"';
      if (problem) throw fail(`match.prefixes.${i}`, `"${p}" is no SPIFFE ID prefix: ${problem}`);
    }
    if (f.match.namespaces && !f.match.trust_domain)
      throw fail(
        'match.trust_domain',
        'is required with namespaces (spiffe://<trust_domain>/ns/<namespace>/sa/)',
      );
    if (f.match.trust_domain && !f.match.namespaces)
      throw fail(
        'match.namespaces',
        'is required with trust_domain: list the namespaces the template covers',
      );
    for (const ns of f.match.namespaces ?? []) prefixes.push(`spiffe://${f.match.trust_domain}/ns/${ns}/sa/`);
    if (prefixes.length === 0)
      throw fail(
        'match',
        'give prefixes, or trust_domain and namespaces: a template covers named paths only',
      );
    // A bundle vouches for its own trust domain only: an SVID of another chains to nothing here.
    if (f.bundle !== undefined)
      for (const p of prefixes)
        if (!p.startsWith(`spiffe://${f.bundle}/`))
          throw fail(
            'match',
            `"${p}" is outside trust domain ${f.bundle}: the bundle of ${f.bundle} vouches for spiffe://${f.bundle}/ only`,
          );
    for (const [i, a] of prefixes.entries())
      for (const b of prefixes.slice(i + 1))
        if (a.startsWith(b) || b.startsWith(a))
          throw fail('match', `"${a}" and "${b}" overlap: list the wider one only`);

    const rules: Array<[string, string]> = [
      ['condition', f.condition ?? 'true'],
      ['derive.owner', f.derive.owner],
      ['derive.environment', f.derive.environment],
      ...(f.derive.classes !== undefined ? [['derive.classes', f.derive.classes] as [string, string]] : []),
      ...Object.entries(f.derive.attributes ?? {}).map(
        ([k, e]) => [`derive.attributes.${k}`, e] as [string, string],
      ),
    ];
    for (const [field, source] of rules) {
      try {
        compileTemplateRule(source);
      } catch (err) {
        throw fail(field, (err as Error).message);
      }
    }

    for (const other of out) {
      const o = overlappingPrefix(prefixes, other.t.prefixes);
      if (o)
        throw fail(
          'match',
          `overlaps template "${other.t.id}" (${other.where}): "${o[0]}" and "${o[1]}" would admit the same identities; give each identity one template`,
        );
    }
    for (const w of known.workloads) {
      const p = prefixes.find((x) => covers(x, w.id));
      if (p)
        throw fail(
          'match',
          `"${p}" covers the registered workload ${w.id} (${known.workloadFiles.get(w.id) ?? 'workloads/'}): narrow the template, or remove the workload file and let the template admit it`,
        );
    }

    const t: WorkloadTemplate = {
      id: f.id,
      owner: f.owner,
      environment: f.environment,
      ...(f.federation !== undefined ? { federation: f.federation } : {}),
      ...(f.bundle !== undefined ? { bundle: f.bundle } : {}),
      prefixes,
      condition: f.condition ?? 'true',
      classes: [...new Set(f.classes)],
      tables: f.tables ?? {},
      derive: {
        owner: f.derive.owner,
        environment: f.derive.environment,
        attributes: f.derive.attributes ?? {},
        ...(f.derive.classes !== undefined ? { classes: f.derive.classes } : {}),
      },
    };
    if (f.description !== undefined) t.description = f.description;
    out.push({ t, where });
  }
  return out.map((x) => x.t);
}
