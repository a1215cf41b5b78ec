import { type AttributeSpec, isObject, type ResourceSchema } from './resource-schema.js';
import { scimError } from './scim-error.js';

export const PATCH_OP_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';

interface Path {
  /** The extension schema the attribute is in, when the path names one. */
  extension?: ResourceSchema;
  attribute: AttributeSpec;
  /** `attr[sub eq value]`: which values of a multi-valued attribute. */
  where?: { sub: string; value: string | boolean };
  /** `.sub` after the attribute (or its filter). */
  sub?: AttributeSpec;
}

const PATH =
  /^([A-Za-z][A-Za-z0-9_$]*)(?:\[\s*([A-Za-z][A-Za-z0-9_$]*)\s+eq\s+("(?:[^"\\]|\\.)*"|true|false)\s*\])?(?:\.([A-Za-z][A-Za-z0-9_$]*))?$/i;

/**
 * Applies a PatchOp request (RFC 7644 §3.5.2) to a resource's stored attributes and returns the new
 * attributes, to be read again against the schema by the caller. The paths answered are
 * `attr`, `attr.sub`, `attr[sub eq "v"]` and `attr[sub eq "v"].sub` (optionally prefixed by the
 * schema URN), which cover what identity providers send (`active`, `emails[type eq "work"].value`,
 * `members[value eq "id"]`). `op` is case-insensitive (Entra sends `Replace`); Entra's `"False"` for a
 * boolean is read as the boolean.
 */
export function applyPatch(
  current: Record<string, unknown>,
  body: unknown,
  schema: ResourceSchema,
  extensions: readonly ResourceSchema[] = [],
): Record<string, unknown> {
  if (!isObject(body)) throw scimError(400, 'invalidSyntax', 'the body must be a PatchOp object');
  const schemas = body['schemas'];
  if (!Array.isArray(schemas) || schemas.length !== 1 || schemas[0] !== PATCH_OP_SCHEMA)
    throw scimError(400, 'invalidSyntax', `schemas must be ["${PATCH_OP_SCHEMA}"]`);
  const known = new Set(['schemas', 'operations']);
  const stray = Object.keys(body).find((k) => !known.has(k.toLowerCase()));
  if (stray !== undefined)
    throw scimError(400, 'invalidSyntax', `unknown attribute "${stray.slice(0, 64)}" in a PatchOp`);
  const ops = Object.entries(body).find(([k]) => k.toLowerCase() === 'operations')?.[1];
  if (!Array.isArray(ops) || ops.length === 0)
    throw scimError(400, 'invalidSyntax', 'Operations must be a non-empty array');
  if (ops.length > 100) throw scimError(400, 'invalidValue', 'more than 100 Operations in one request');
  const next = structuredClone(current);
  for (const [i, raw] of ops.entries()) {
    if (!isObject(raw)) throw scimError(400, 'invalidSyntax', `Operations[${i}] must be an object`);
    const get = (name: string) => Object.entries(raw).find(([k]) => k.toLowerCase() === name)?.[1];
    const stray = Object.keys(raw).find((k) => !['op', 'path', 'value'].includes(k.toLowerCase()));
    if (stray !== undefined)
      throw scimError(400, 'invalidSyntax', `Operations[${i}]: unknown member "${stray.slice(0, 64)}"`);
    const op = get('op');
    if (typeof op !== 'string' || !['add', 'remove', 'replace'].includes(op.toLowerCase()))
      throw scimError(400, 'invalidSyntax', `Operations[${i}].op must be add, remove or replace`);
    const path = get('path');
    if (path !== undefined && typeof path !== 'string')
      throw scimError(400, 'invalidPath', `Operations[${i}].path must be a string`);
    applyOne(
      next,
      op.toLowerCase() as 'add' | 'remove' | 'replace',
      path,
      get('value'),
      schema,
      extensions,
      i,
    );
  }
  return next;
}

function applyOne(
  target: Record<string, unknown>,
  op: 'add' | 'remove' | 'replace',
  rawPath: string | undefined,
  value: unknown,
  schema: ResourceSchema,
  extensions: readonly ResourceSchema[],
  i: number,
): void {
  if (rawPath === undefined) {
    if (op === 'remove') throw scimError(400, 'noTarget', `Operations[${i}]: remove needs a path`);
    if (!isObject(value))
      throw scimError(400, 'invalidValue', `Operations[${i}].value must be an object without a path`);
    for (const [key, v] of Object.entries(value)) {
      const ext = extensions.find((e) => e.id.toLowerCase() === key.toLowerCase());
      if (ext && isObject(v)) {
        for (const [k, x] of Object.entries(v))
          applyOne(target, op, `${ext.id}:${k}`, x, schema, extensions, i);
      } else applyOne(target, op, key, v, schema, extensions, i);
    }
    return;
  }
  const path = parsePath(rawPath, schema, extensions, i);
  if (path.extension && !isObject(target[path.extension.id])) target[path.extension.id] = {};
  const holder = path.extension ? (target[path.extension.id] as Record<string, unknown>) : target;
  const name = path.attribute.name;
  const coerced = (spec: AttributeSpec, v: unknown) =>
    spec.type === 'boolean' && typeof v === 'string' && /^(true|false)$/i.test(v)
      ? v.toLowerCase() === 'true'
      : v;

  if (!path.where) {
    if (path.sub) {
      if (path.attribute.multiValued)
        throw scimError(
          400,
          'invalidPath',
          `Operations[${i}]: ${name} has several values: say which, e.g. ${name}[type eq "work"].${path.sub.name}`,
        );
      const obj = (isObject(holder[name]) ? holder[name] : {}) as Record<string, unknown>;
      if (op === 'remove') delete obj[path.sub.name];
      else obj[path.sub.name] = coerced(path.sub, value);
      holder[name] = obj;
      return;
    }
    if (op === 'remove') {
      if (path.attribute.required)
        throw scimError(400, 'mutability', `Operations[${i}]: ${name} is required and cannot be removed`);
      delete holder[name];
    } else if (op === 'add' && path.attribute.multiValued) {
      const list = Array.isArray(holder[name]) ? (holder[name] as unknown[]) : [];
      const add = Array.isArray(value) ? value : [value];
      // Adding a value already there changes nothing (RFC 7644 §3.5.2.1).
      holder[name] = [
        ...list,
        ...add.filter((a) => !list.some((l) => JSON.stringify(l) === JSON.stringify(a))),
      ];
    } else holder[name] = coerced(path.attribute, value);
    return;
  }

  if (!path.attribute.multiValued)
    throw scimError(
      400,
      'invalidPath',
      `Operations[${i}]: ${name} has one value: a [filter] selects among several`,
    );
  const list = (Array.isArray(holder[name]) ? holder[name] : []) as Record<string, unknown>[];
  const { sub: whereSub, value: whereValue } = path.where;
  const matches = (v: unknown) => {
    if (!isObject(v)) return false;
    const x = v[whereSub];
    return typeof x === 'string' && typeof whereValue === 'string'
      ? x.toLowerCase() === whereValue.toLowerCase()
      : x === whereValue;
  };
  if (op === 'remove') {
    if (path.sub) for (const v of list.filter(matches)) delete v[path.sub.name];
    else holder[name] = list.filter((v) => !matches(v));
    return;
  }
  const hit = list.filter(matches);
  if (hit.length === 0) {
    // Entra sets `emails[type eq "work"].value` on a user without a work address: it is created.
    const made: Record<string, unknown> = { [whereSub]: whereValue };
    if (path.sub) made[path.sub.name] = coerced(path.sub, value);
    else if (isObject(value)) Object.assign(made, value);
    else throw scimError(400, 'invalidValue', `Operations[${i}].value must be an object`);
    holder[name] = [...list, made];
    return;
  }
  for (const v of hit) {
    if (path.sub) v[path.sub.name] = coerced(path.sub, value);
    else if (isObject(value)) Object.assign(v, value);
    else throw scimError(400, 'invalidValue', `Operations[${i}].value must be an object`);
  }
  holder[name] = list;
}

function parsePath(
  raw: string,
  schema: ResourceSchema,
  extensions: readonly ResourceSchema[],
  i: number,
): Path {
  if (raw.length > 512)
    throw scimError(400, 'invalidPath', `Operations[${i}].path is longer than 512 characters`);
  let rest = raw;
  let extension: ResourceSchema | undefined;
  let within = schema;
  for (const s of [schema, ...extensions]) {
    if (rest.toLowerCase().startsWith(`${s.id.toLowerCase()}:`)) {
      rest = rest.slice(s.id.length + 1);
      if (s !== schema) {
        extension = s;
        within = s;
      }
      break;
    }
  }
  const m = PATH.exec(rest);
  const refuse = (why: string) =>
    scimError(400, 'invalidPath', `Operations[${i}].path "${raw.slice(0, 128)}": ${why}`);
  if (!m) throw refuse('not a path Writ answers (attr, attr.sub, attr[sub eq "v"], attr[sub eq "v"].sub)');
  const attribute = within.attributes.find((a) => a.name.toLowerCase() === m[1]!.toLowerCase());
  if (!attribute)
    throw refuse(`unknown attribute; known are ${within.attributes.map((a) => a.name).join(', ')}`);
  const subOf = (name: string) => {
    const sub = attribute.subAttributes?.find((a) => a.name.toLowerCase() === name.toLowerCase());
    if (!sub) throw refuse(`${attribute.name} has no sub-attribute "${name.slice(0, 64)}"`);
    return sub;
  };
  const path: Path = { attribute };
  if (extension) path.extension = extension;
  if (m[2] !== undefined) {
    const literal = m[3]!;
    let value: string | boolean;
    try {
      value = literal === 'true' ? true : literal === 'false' ? false : (JSON.parse(literal) as string);
    } catch {
      throw refuse('the value in [ ] is not a valid JSON string');
    }
    path.where = { sub: subOf(m[2]).name, value };
  }
  if (m[4] !== undefined) path.sub = subOf(m[4]);
  return path;
}
