/**
 * Presets: claim rules matching the tokens real platforms issue, so an issuer file can be four lines.
 * Every field a preset fills can be overridden in the file; a `condition` in the file is added to the
 * preset's (both must hold). `TD` stands for the file's `trust_domain`.
 */
export interface IssuerPreset {
  issuer?: string;
  jwksUri?: string;
  algorithms: string[];
  /** Checks the token has the platform's shape; always ANDed with the file's condition. */
  condition: string;
  /** A function of the trust domain (undefined: the subject needs none). */
  subject: (trustDomain: string | undefined) => string | undefined;
  attributes: Record<string, string>;
  task?: { purpose: string; labels: Record<string, string> };
}

/** A claim as text when present, else "" (CEL `has()` keeps a missing claim from being an error). */
const claim = (name: string) => `has(claims.${name}) ? string(claims.${name}) : ""`;
const td = (t: string | undefined, path: string) =>
  t === undefined ? undefined : `"spiffe://${t}/" + ${path}`;

export const PRESETS: Readonly<Record<string, IssuerPreset>> = {
  // GitHub Actions OIDC (docs.github.com, "About security hardening with OpenID Connect").
  'github-actions': {
    issuer: 'https://token.actions.githubusercontent.com',
    jwksUri: 'https://token.actions.githubusercontent.com/.well-known/jwks',
    algorithms: ['RS256'],
    condition:
      'has(claims.repository) && has(claims.run_id) && has(claims.run_attempt) && claims.sub.startsWith("repo:")',
    subject: (t) => td(t, '"github/" + claims.repository'),
    attributes: {
      repository: claim('repository'),
      repository_owner: claim('repository_owner'),
      ref: claim('ref'),
      ref_type: claim('ref_type'),
      sha: claim('sha'),
      workflow: claim('workflow'),
      job_workflow_ref: claim('job_workflow_ref'),
      run_id: claim('run_id'),
      run_attempt: claim('run_attempt'),
      run_number: claim('run_number'),
      actor: claim('actor'),
      environment: claim('environment'),
      runner_environment: claim('runner_environment'),
      event_name: claim('event_name'),
    },
    task: {
      purpose: '"GitHub Actions " + claims.repository + " run " + string(claims.run_id)',
      labels: { ci_run_id: 'string(claims.run_id)', ci_run_attempt: 'string(claims.run_attempt)' },
    },
  },
  // GitLab CI/CD ID tokens (`id_tokens:` in .gitlab-ci.yml); `issuer` is the instance URL.
  'gitlab-ci': {
    issuer: 'https://gitlab.com',
    jwksUri: 'https://gitlab.com/oauth/discovery/keys',
    algorithms: ['RS256'],
    condition: 'has(claims.project_path) && has(claims.pipeline_id) && has(claims.job_id)',
    subject: (t) => td(t, '"gitlab/" + claims.project_path'),
    attributes: {
      project_path: claim('project_path'),
      namespace_path: claim('namespace_path'),
      ref: claim('ref'),
      ref_type: claim('ref_type'),
      pipeline_id: claim('pipeline_id'),
      job_id: claim('job_id'),
      environment: claim('environment'),
      user_login: claim('user_login'),
      sha: claim('sha'),
    },
    task: {
      purpose: '"GitLab CI " + claims.project_path + " pipeline " + string(claims.pipeline_id)',
      labels: { ci_pipeline_id: 'string(claims.pipeline_id)', ci_job_id: 'string(claims.job_id)' },
    },
  },
  // Kubernetes projected service-account tokens; `issuer` is the cluster's --service-account-issuer.
  kubernetes: {
    algorithms: ['RS256', 'ES256'],
    condition: '"kubernetes.io" in claims && claims.sub.startsWith("system:serviceaccount:")',
    subject: (t) =>
      td(
        t,
        '"ns/" + claims["kubernetes.io"].namespace + "/sa/" + claims["kubernetes.io"].serviceaccount.name',
      ),
    attributes: {
      namespace: 'claims["kubernetes.io"].namespace',
      service_account: 'claims["kubernetes.io"].serviceaccount.name',
      pod: 'has(claims["kubernetes.io"].pod) ? claims["kubernetes.io"].pod.name : ""',
    },
  },
  // SPIRE JWT-SVIDs: `sub` already is the SPIFFE ID; `issuer` is the server's `jwt_issuer`.
  spire: {
    algorithms: ['RS256', 'ES256', 'ES384', 'PS256'],
    condition: 'claims.sub.startsWith("spiffe://")',
    subject: () => 'claims.sub',
    attributes: { spiffe_id: 'claims.sub' },
  },
};

/**
 * Attribute names policies can read as `context.federation.<name>` (Cedar records are closed, so the
 * set is fixed); an issuer file may map only these.
 */
export const FEDERATION_ATTRIBUTES = [
  'repository',
  'repository_owner',
  'ref',
  'ref_type',
  'sha',
  'workflow',
  'job_workflow_ref',
  'run_id',
  'run_attempt',
  'run_number',
  'actor',
  'environment',
  'runner_environment',
  'event_name',
  'project_path',
  'namespace_path',
  'pipeline_id',
  'job_id',
  'user_login',
  'namespace',
  'service_account',
  'pod',
  'spiffe_id',
] as const;

/**
 * The record every federation context starts from: each field "". Built once, with every key, so the
 * copies `federationContext` makes are ordinary objects of one shape. Adding 25 keys one by one to `{}`
 * makes V8 turn the object into a slow dictionary, which then also made every copy and every read of
 * it slow (about 5 µs per token at issuance). Never handed out: only copied.
 */
const EMPTY_FEDERATION: Readonly<Record<string, string>> = Object.fromEntries(
  ['issuer', 'subject', ...FEDERATION_ATTRIBUTES].map((k) => [k, '']),
);

/**
 * The policy context record `federation`: every field present ("" when unknown or when the token was
 * not a federation token), as Cedar's closed records need.
 */
export function federationContext(
  f?: { issuer: string; tokenSubject: string; attributes: Record<string, string> } | undefined,
): Record<string, string> {
  const out: Record<string, string> = { ...EMPTY_FEDERATION };
  if (f) {
    out['issuer'] = f.issuer;
    out['subject'] = f.tokenSubject;
    for (const k of FEDERATION_ATTRIBUTES) out[k] = f.attributes[k] ?? '';
  }
  return out;
}
