/** What the store keeps of a resource an identity provider provisioned over SCIM (RFC 7643). */

export type ScimResourceType = 'User' | 'Group';

export interface ScimRecord {
  type: ScimResourceType;
  /** Server-assigned id (RFC 7643 §3.1), a UUID: what the provider uses in URLs. */
  id: string;
  /**
   * The person or team id the resource maps to: a User's `userName` and a Group's `displayName`,
   * lowercased. Unique among the type's live (not deleted) resources.
   */
  name: string;
  /** Deleted by the provider (`DELETE`): kept, so what the person owned is seen orphaned. */
  deleted: boolean;
  /** 1 on create, one more on each change: the resource's `meta.version` (`W/"n"`). */
  version: number;
  createdAt: number;
  updatedAt: number;
  /** When the person became inactive or was deleted (ms); null while active (always null for a Group). */
  inactiveSince: number | null;
  /** The resource's attributes as stored (userName, displayName, name, emails, active, externalId, members). */
  attributes: Record<string, unknown>;
}

/** `putScimResource`'s outcome: stored; another live resource of the type has the name; the version moved. */
export type ScimPutResult = 'ok' | 'name_taken' | 'stale';
