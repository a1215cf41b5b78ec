import { OAuthError } from '../../errors.js';
import type { DirectoryPerson, PeopleDirectory } from '../../people/directory.js';
import type { ResolvedOperator } from '../../registry/registry.js';
import type { OidcIdentity } from './relying-party.js';

/**
 * Who signed in (docs/console.md, "OpenID Connect"): the person whose id is the ID token's `sub`, or else
 * the one person whose e-mail address (or id) is the token's e-mail when the provider says it is verified.
 * The person must be active, and an operator must name them: the session is that operator's (the first by
 * name when several name the same person; every operator has the same rights).
 */
export function matchOperator(
  people: PeopleDirectory,
  operators: readonly ResolvedOperator[],
  who: OidcIdentity,
): { person: DirectoryPerson; operator: ResolvedOperator } {
  const person = matchPerson(people, who);
  if (!person.active)
    throw noPerson(
      `the person "${person.id}" is ${person.deleted ? 'deprovisioned' : 'not active'}: an identity provider or people/ must make them active again`,
      { person: person.id },
    );
  const named = operators.filter((o) => o.person === person.id).sort((a, b) => (a.name < b.name ? -1 : 1));
  const operator = named[0];
  if (!operator)
    throw new OAuthError(
      'access_denied',
      `no operator names the person "${person.id}": an operator document with \`person: ${person.id}\` lets them use the console`,
      { detail: { reason: 'oidc_no_operator', person: person.id } },
    );
  return { person, operator };
}

function matchPerson(people: PeopleDirectory, who: OidcIdentity): DirectoryPerson {
  const bySub = people.person(who.sub);
  if (bySub) return bySub;
  const email = who.verifiedEmail?.toLowerCase();
  if (email === undefined)
    throw noPerson(
      who.unverifiedEmail !== undefined
        ? "no person has the id of the identity provider's subject, and the provider does not say the e-mail address is verified (email_verified), so it is not used"
        : "no person has the id of the identity provider's subject, and the ID token holds no e-mail address (ask for the email scope)",
    );
  const found = people.people().filter((p) => p.id === email || p.email?.toLowerCase() === email);
  if (found.length > 1)
    throw noPerson(
      'several people have the e-mail address the identity provider verified: give each person their own',
    );
  if (!found[0])
    throw noPerson(
      "no person has the identity provider's subject as id, or its verified e-mail address as id or email (people/ or SCIM)",
    );
  return found[0];
}

const noPerson = (description: string, detail: Record<string, unknown> = {}) =>
  new OAuthError('access_denied', `OpenID Connect sign-in refused: ${description}`, {
    detail: { reason: 'oidc_no_person', ...detail },
  });
