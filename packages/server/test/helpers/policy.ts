import type { RawDocument } from '../../src/config/config-dir.js';
import type { ResourceSpec } from '../../src/policy/compile.js';
import { configDocuments, type Harness, type Reply } from './harness.js';

/** A JSON request with an admin token, any method (the harness helper only knows GET and POST). */
export async function adminJson(
  h: Harness,
  method: 'GET' | 'POST' | 'PUT' | 'DELETE',
  path: string,
  body?: unknown,
): Promise<Reply> {
  const res = await h.writ.app.inject({
    method,
    url: `/admin/v1${path}`,
    headers: {
      ...(await h.adminHeaders(method, `/admin/v1${path}`)),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { payload: JSON.stringify(body) } : {}),
  });
  return {
    status: res.statusCode,
    body: res.body ? (JSON.parse(res.body) as Record<string, unknown>) : {},
    headers: res.headers,
  };
}

/**
 * `POST /admin/v1/config` as `writ apply` sends it: the harness's documents (plus `extraDocs`) and a
 * policy set (`null`: no policies/ directory).
 */
export function applyPolicies(
  h: Harness,
  policies: { files: Array<{ file: string; text: string }>; resources?: ResourceSpec[] } | null,
  extraDocs: RawDocument[] = [],
  dryRun = false,
): Promise<Reply> {
  const documents = configDocuments(
    { workload: h.workloadKey, other: h.otherKey, operator: h.operatorKey },
    extraDocs,
  );
  return adminJson(h, 'POST', '/config', {
    documents,
    policies: policies && { files: policies.files, resources: policies.resources ?? [] },
    dry_run: dryRun,
  });
}

export function putResource(h: Harness, spec: ResourceSpec): Promise<Reply> {
  const { id, ...attrs } = spec;
  return adminJson(h, 'PUT', `/resources/${encodeURIComponent(id)}`, attrs);
}

export async function policyVersion(h: Harness): Promise<string> {
  const r = await adminJson(h, 'GET', '/policy');
  return (r.body['version'] as { id: string }).id;
}
