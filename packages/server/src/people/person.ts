/**
 * Humans Writ knows: owners, approvers and operators. People never hold Writ tokens (their ids are not
 * SPIFFE IDs, so they can never be a workload's `client_id`); they own workloads and exceptions, and an
 * operator is a person holding an operator key.
 */

/** Where a person or team came from: `writ apply` (`people/*.yaml`) or an identity provider over SCIM. */
export type PeopleSource = 'config' | 'scim';

export interface Person {
  /** Stable id: what workloads' and exceptions' `owner` names, and an operator's `person`. */
  id: string;
  /** Display name. */
  name: string;
  email?: string;
  /** False: deprovisioned or suspended; owns nothing actively and holds no operator access. */
  active: boolean;
  /** Ids of the teams the person is a member of. */
  teams: string[];
}

export interface Team {
  id: string;
  name: string;
  description?: string;
  /** Ids of its member people. */
  members: string[];
}

/** Person and team ids: lowercase, may be an e-mail address (an identity provider's `userName`). */
export const PERSON_ID = /^[a-z0-9][a-z0-9._@+-]{0,127}$/;
export const PERSON_ID_RULE =
  'must be 1-128 lowercase letters, digits, ".", "_", "@", "+" or "-", starting with a letter or digit';
