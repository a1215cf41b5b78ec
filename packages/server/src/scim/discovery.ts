import {
  type AttributeSpec,
  ENTERPRISE_USER_SCHEMA,
  ENTERPRISE_USER_SCHEMA_ID,
  GROUP_SCHEMA,
  GROUP_SCHEMA_ID,
  type ResourceSchema,
  USER_SCHEMA,
  USER_SCHEMA_ID,
} from './resource-schema.js';

/** RFC 7643 §5-§7: what a client reads before provisioning: the features, the types, the schemas. */

export const LIST_RESPONSE = 'urn:ietf:params:scim:api:messages:2.0:ListResponse';
const SPC_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig';
const RESOURCE_TYPE_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:ResourceType';
const SCHEMA_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:Schema';

/** The largest SCIM request body (bytes); also advertised as the bulk payload limit (bulk is off). */
export const SCIM_BODY_BYTES = 262_144;
/** The most resources one list page returns (`count` above it is lowered to it). */
export const SCIM_MAX_RESULTS = 200;

export function serviceProviderConfig(base: string): Record<string, unknown> {
  return {
    schemas: [SPC_SCHEMA],
    documentationUri: 'https://github.com/writ/writ/blob/main/docs/governance.md#scim',
    patch: { supported: true },
    bulk: { supported: false, maxOperations: 0, maxPayloadSize: SCIM_BODY_BYTES },
    filter: { supported: true, maxResults: SCIM_MAX_RESULTS },
    changePassword: { supported: false },
    sort: { supported: false },
    etag: { supported: true },
    authenticationSchemes: [
      {
        type: 'oauthbearertoken',
        name: 'Bearer secret',
        description: 'A static bearer secret whose SHA-256 the operator configures (scim.token_sha256)',
        primary: true,
      },
    ],
    meta: { resourceType: 'ServiceProviderConfig', location: `${base}/ServiceProviderConfig` },
  };
}

export function resourceTypes(base: string): Record<string, unknown>[] {
  return [
    {
      schemas: [RESOURCE_TYPE_SCHEMA],
      id: 'User',
      name: 'User',
      endpoint: '/Users',
      description: 'People: owners, approvers, operators',
      schema: USER_SCHEMA_ID,
      schemaExtensions: [{ schema: ENTERPRISE_USER_SCHEMA_ID, required: false }],
      meta: { resourceType: 'ResourceType', location: `${base}/ResourceTypes/User` },
    },
    {
      schemas: [RESOURCE_TYPE_SCHEMA],
      id: 'Group',
      name: 'Group',
      endpoint: '/Groups',
      description: 'Teams',
      schema: GROUP_SCHEMA_ID,
      meta: { resourceType: 'ResourceType', location: `${base}/ResourceTypes/Group` },
    },
  ];
}

export function schemas(base: string): Record<string, unknown>[] {
  return [USER_SCHEMA, ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA].map((s) => schemaResource(s, base));
}

function schemaResource(s: ResourceSchema, base: string): Record<string, unknown> {
  return {
    schemas: [SCHEMA_SCHEMA],
    id: s.id,
    name: s.name,
    description: s.description,
    attributes: s.attributes.map(attribute),
    meta: { resourceType: 'Schema', location: `${base}/Schemas/${s.id}` },
  };
}

function attribute(a: AttributeSpec): Record<string, unknown> {
  return {
    name: a.name,
    type: a.type,
    multiValued: a.multiValued ?? false,
    description: a.description,
    required: a.required ?? false,
    caseExact: a.caseExact ?? false,
    mutability: a.readOnly ? 'readOnly' : 'readWrite',
    returned: 'default',
    uniqueness: a.uniqueness ?? 'none',
    ...(a.type === 'reference' ? { referenceTypes: ['User'] } : {}),
    ...(a.subAttributes ? { subAttributes: a.subAttributes.map(attribute) } : {}),
  };
}
