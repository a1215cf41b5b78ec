import { hasControlCharacters } from '../control-characters.js';
import { scimError } from './scim-error.js';

/**
 * The attributes Writ keeps of SCIM resources (RFC 7643 §4), written once: requests are read against
 * them and `GET /scim/v2/Schemas` describes them. Attribute names are case-insensitive (RFC 7643 §2.1);
 * what is stored uses the canonical case.
 */
export interface AttributeSpec {
  name: string;
  type: 'string' | 'boolean' | 'complex' | 'reference';
  multiValued?: boolean;
  required?: boolean;
  /** Sent back but never set by a client (`id`, `meta`, `groups`): ignored in requests (RFC 7643 §7). */
  readOnly?: boolean;
  caseExact?: boolean;
  uniqueness?: 'none' | 'server';
  /** Longest string accepted; 256 unless said. */
  max?: number;
  /** Most values of a multi-valued attribute; 10 unless said. */
  maxValues?: number;
  subAttributes?: AttributeSpec[];
  description: string;
}

export interface ResourceSchema {
  id: string;
  name: string;
  description: string;
  attributes: AttributeSpec[];
}

const str = (name: string, description: string, extra: Partial<AttributeSpec> = {}): AttributeSpec => ({
  name,
  type: 'string',
  description,
  ...extra,
});
const multiValue = (name: string, description: string): AttributeSpec => ({
  name,
  type: 'complex',
  multiValued: true,
  description,
  subAttributes: [
    str('value', 'The value'),
    str('display', 'A human-readable name'),
    str('type', 'A label such as work or home', { max: 64 }),
    { name: 'primary', type: 'boolean', description: 'The primary value' },
  ],
});

export const USER_SCHEMA_ID = 'urn:ietf:params:scim:schemas:core:2.0:User';
export const GROUP_SCHEMA_ID = 'urn:ietf:params:scim:schemas:core:2.0:Group';
export const ENTERPRISE_USER_SCHEMA_ID = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';

export const USER_SCHEMA: ResourceSchema = {
  id: USER_SCHEMA_ID,
  name: 'User',
  description: 'A person: an owner, an approver or an operator. Never a token holder.',
  attributes: [
    str('userName', 'The person’s id in Writ, lowercased (people/ ids; an e-mail address works)', {
      required: true,
      uniqueness: 'server',
      max: 128,
    }),
    str('externalId', 'The identity provider’s own id', { caseExact: true }),
    {
      name: 'name',
      type: 'complex',
      description: 'The components of the name',
      subAttributes: [
        str('formatted', 'The full name'),
        str('familyName', 'Family name'),
        str('givenName', 'Given name'),
        str('middleName', 'Middle name'),
        str('honorificPrefix', 'Honorific prefix'),
        str('honorificSuffix', 'Honorific suffix'),
      ],
    },
    str('displayName', 'The name shown'),
    str('nickName', 'A casual name'),
    str('title', 'Title'),
    str('userType', 'Relationship to the organisation', { max: 64 }),
    str('preferredLanguage', 'Preferred language', { max: 64 }),
    str('locale', 'Locale', { max: 64 }),
    str('timezone', 'Time zone', { max: 64 }),
    {
      name: 'active',
      type: 'boolean',
      description: 'False: deprovisioned. Their operator access ends and what they own is orphaned.',
    },
    multiValue('emails', 'E-mail addresses'),
    multiValue('phoneNumbers', 'Phone numbers'),
  ],
};

export const ENTERPRISE_USER_SCHEMA: ResourceSchema = {
  id: ENTERPRISE_USER_SCHEMA_ID,
  name: 'EnterpriseUser',
  description: 'Enterprise User (RFC 7643 §4.3), kept as sent',
  attributes: [
    str('employeeNumber', 'Employee number'),
    str('costCenter', 'Cost center'),
    str('organization', 'Organization'),
    str('division', 'Division'),
    str('department', 'Department'),
    {
      name: 'manager',
      type: 'complex',
      description: 'The manager',
      subAttributes: [str('value', 'The manager’s id'), str('displayName', 'The manager’s name')],
    },
  ],
};

export const GROUP_SCHEMA: ResourceSchema = {
  id: GROUP_SCHEMA_ID,
  name: 'Group',
  description: 'A team: it owns what an active member may answer for.',
  attributes: [
    str(
      'displayName',
      'The team’s name; its id in Writ is this, lowercased, runs of other characters as "-"',
      {
        required: true,
        uniqueness: 'server',
        max: 128,
      },
    ),
    str('externalId', 'The identity provider’s own id', { caseExact: true }),
    {
      name: 'members',
      type: 'complex',
      multiValued: true,
      maxValues: 10_000,
      description: 'Member Users, by their SCIM id',
      subAttributes: [
        str('value', 'The member’s id', { caseExact: true }),
        str('display', 'The member’s name'),
        { name: '$ref', type: 'reference', description: 'The member’s URI', max: 512 },
        str('type', 'User (groups cannot be members)', { max: 16 }),
      ],
    },
  ],
};

/** Attributes every resource has that a client never sets: ignored when sent. */
const COMMON_READ_ONLY = new Set(['id', 'meta', 'groups', 'schemas']);

/**
 * Reads a resource's attributes against `schema` (and the `extensions` it may carry as URN-keyed
 * objects): canonical names, values of the declared type and bounds, no control characters, nothing
 * unknown. Refusals are `invalidSyntax` (unknown attribute, a structure that is not the schema's) or
 * `invalidValue` (a value out of bounds), naming the attribute.
 */
export function readAttributes(
  body: Record<string, unknown>,
  schema: ResourceSchema,
  extensions: readonly ResourceSchema[] = [],
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(body)) {
    const lower = key.toLowerCase();
    if (COMMON_READ_ONLY.has(lower)) continue;
    const ext = extensions.find((e) => e.id.toLowerCase() === lower);
    if (ext) {
      if (!isObject(value)) throw scimError(400, 'invalidSyntax', `${ext.id} must be an object`);
      out[ext.id] = readAttributes(value, ext);
      continue;
    }
    const spec = schema.attributes.find((a) => a.name.toLowerCase() === lower);
    if (!spec)
      throw scimError(
        400,
        'invalidSyntax',
        `unknown attribute "${key.slice(0, 64)}" for ${schema.name}: known are ${schema.attributes.map((a) => a.name).join(', ')}`,
      );
    if (value === null) continue;
    out[spec.name] = readValue(value, spec, spec.name);
  }
  for (const a of schema.attributes)
    if (a.required && out[a.name] === undefined)
      throw scimError(400, 'invalidValue', `${a.name} is required for ${schema.name}`);
  return out;
}

function readValue(value: unknown, spec: AttributeSpec, path: string): unknown {
  if (spec.multiValued) {
    if (!Array.isArray(value)) throw scimError(400, 'invalidSyntax', `${path} must be an array`);
    const most = spec.maxValues ?? 10;
    if (value.length > most) throw scimError(400, 'invalidValue', `${path} has more than ${most} values`);
    return value.map((v, i) => readSingle(v, spec, `${path}[${i}]`));
  }
  return readSingle(value, spec, path);
}

function readSingle(value: unknown, spec: AttributeSpec, path: string): unknown {
  switch (spec.type) {
    case 'boolean':
      if (typeof value !== 'boolean') throw scimError(400, 'invalidValue', `${path} must be true or false`);
      return value;
    case 'string':
    case 'reference': {
      if (typeof value !== 'string') throw scimError(400, 'invalidValue', `${path} must be a string`);
      const max = spec.max ?? 256;
      if (value.length > max)
        throw scimError(400, 'invalidValue', `${path} is longer than ${max} characters`);
      if (hasControlCharacters(value))
        throw scimError(400, 'invalidValue', `${path} must not hold control characters`);
      return value;
    }
    case 'complex': {
      if (!isObject(value)) throw scimError(400, 'invalidSyntax', `${path} must be an object`);
      const out: Record<string, unknown> = {};
      for (const [key, v] of Object.entries(value)) {
        const sub = spec.subAttributes?.find((a) => a.name.toLowerCase() === key.toLowerCase());
        if (!sub) throw scimError(400, 'invalidSyntax', `unknown attribute "${path}.${key.slice(0, 64)}"`);
        if (v === null) continue;
        out[sub.name] = readSingle(v, sub, `${path}.${sub.name}`);
      }
      return out;
    }
  }
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The `schemas` of a request must name the resource's core schema (and only known extensions). */
export function checkSchemas(
  body: Record<string, unknown>,
  schema: ResourceSchema,
  extensions: readonly ResourceSchema[] = [],
): void {
  const listed = body['schemas'];
  if (!Array.isArray(listed) || !listed.every((s) => typeof s === 'string'))
    throw scimError(400, 'invalidSyntax', `schemas must be an array naming ${schema.id}`);
  if (!listed.includes(schema.id)) throw scimError(400, 'invalidSyntax', `schemas must include ${schema.id}`);
  const unknown = listed.find((s) => s !== schema.id && !extensions.some((e) => e.id === s));
  if (unknown !== undefined)
    throw scimError(
      400,
      'invalidSyntax',
      `schema "${unknown.slice(0, 128)}" is not supported for ${schema.name}`,
    );
}
