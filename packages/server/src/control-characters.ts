import { invalidRequest } from './errors.js';

// The escaping itself is shared with the SDK (its usage reporter escapes text as the server stores it).
export {
  escapeControlCharacters,
  hasControlCharacters,
  PLAIN_TEXT_RULE,
  restrictText,
} from '@writ/sdk/wire';

import { hasControlCharacters, PLAIN_TEXT_RULE } from '@writ/sdk/wire';

/**
 * Refuses a text field the caller typed (a purpose, a label, a reason) that holds a control character:
 * 400 `invalid_request`, reason `control_characters`, naming the field and what passes.
 */
export function refuseControlCharacters(value: string, field: string): string {
  if (hasControlCharacters(value))
    throw invalidRequest(`${field} must hold ${PLAIN_TEXT_RULE}`, { reason: 'control_characters' });
  return value;
}
