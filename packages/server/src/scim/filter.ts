import { scimError } from './scim-error.js';

/** The one filter form Writ answers (RFC 7644 §3.4.2.2): `<attribute> eq "<string>"`. */
export interface EqualityFilter {
  /** The attribute as the resource type names it (canonical case). */
  attribute: string;
  value: string;
}

const FORM = /^\s*([A-Za-z][A-Za-z0-9_.]{0,63})\s+eq\s+"((?:[^"\\]|\\["\\/bfnrt]|\\u[0-9A-Fa-f]{4})*)"\s*$/i;

/**
 * Parses `filter` against the attributes a resource type can be found by (`attributes`: lowercase →
 * canonical name). Anything else, `and`/`or`/`not`, other operators, or a value that is not one JSON
 * string, is refused with `invalidFilter` saying what is answered: a filter is never spliced anywhere.
 *
 * @example parseFilter('userName eq "alice@example.com"', USER_FILTERS) // { attribute: 'userName', value: 'alice@example.com' }
 */
export function parseFilter(filter: string, attributes: ReadonlyMap<string, string>): EqualityFilter {
  const supported = [...attributes.values()].join(', ');
  const refuse = (why: string) =>
    scimError(
      400,
      'invalidFilter',
      `${why}: the filter must be <attribute> eq "<value>", attribute one of ${supported}`,
    );
  if (filter.length > 1024) throw refuse('the filter is longer than 1024 characters');
  const m = FORM.exec(filter);
  if (!m) throw refuse('the filter is not supported');
  const attribute = attributes.get(m[1]!.toLowerCase());
  if (!attribute) throw refuse(`"${m[1]!.slice(0, 64)}" cannot be filtered on`);
  return { attribute, value: JSON.parse(`"${m[2]!}"`) as string };
}
