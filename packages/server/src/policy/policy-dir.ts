import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { readConfigFile } from '../config/config-file.js';
import { PolicyLoadError, type PolicySources, type ResourceSpec } from './compile.js';

const MAX_FILES = 1000;

export const resourceSchema = z
  .object({
    id: z.string().min(1).max(512),
    sensitivity: z
      .string()
      .regex(/^[a-z][a-z0-9_-]{0,31}$/, 'must be a short lowercase word such as internal or restricted'),
    environment: z.string().max(32).default(''),
    owner: z.string().max(200).default(''),
  })
  .strict();

const resourcesFileSchema = z.object({ resources: z.array(resourceSchema).max(100_000) }).strict();

/**
 * Reads `<config>/policies/`: every `*.cedar` file (sorted by name) and the optional `resources.yaml`
 * describing APIs. Undefined when there is no `policies/` directory (the built-in set applies).
 */
export function readPolicyDir(configDir: string): PolicySources | undefined {
  const root = resolve(configDir);
  const dir = join(root, 'policies');
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return undefined;
  const show = (f: string) => relative(process.cwd(), f) || f;
  const names = readdirSync(dir)
    .filter((f) => f.endsWith('.cedar'))
    .sort();
  if (names.length > MAX_FILES)
    throw new PolicyLoadError(show(dir), undefined, `more than ${MAX_FILES} files`);
  // Like every file of a config directory: inside it (links resolved), regular, at most 1 MiB, and
  // never quoted in an error when it is not what it should be.
  const read = (path: string) =>
    readConfigFile(root, path, { where: show(path), field: '' }, 'this file').toString('utf8');
  const files = names.map((name) => ({ file: `policies/${name}`, text: read(join(dir, name)) }));
  let resources: ResourceSpec[] = [];
  for (const name of ['resources.yaml', 'resources.yml']) {
    const path = join(dir, name);
    if (!existsSync(path)) continue;
    resources = parseResources(read(path), `policies/${name}`);
  }
  return { files, resources };
}

/** Parses `resources.yaml`: `resources: [{ id, sensitivity, environment, owner }]`. */
export function parseResources(text: string, file: string): ResourceSpec[] {
  let doc: unknown;
  try {
    doc = parseYaml(text, { maxAliasCount: 50 });
  } catch (err) {
    const e = err as Error & { linePos?: Array<{ line: number }> };
    throw new PolicyLoadError(file, e.linePos?.[0]?.line, e.message.split('\n')[0] ?? 'invalid YAML');
  }
  const r = resourcesFileSchema.safeParse(doc ?? { resources: [] });
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new PolicyLoadError(file, undefined, `${issue.path.join('.') || '(file)'}: ${issue.message}`);
  }
  return r.data.resources;
}
