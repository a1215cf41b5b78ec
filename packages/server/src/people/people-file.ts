import { z } from 'zod';
import { PERSON_ID, PERSON_ID_RULE } from './person.js';

/** Schemas of `people/*.yaml` documents: a person (the default `kind`) or a team. */

const id = z.string().regex(PERSON_ID, PERSON_ID_RULE);
const displayName = z.string().min(1).max(200);

export const personFileSchema = z
  .object({
    kind: z.literal('person').optional(),
    id,
    name: displayName,
    email: z
      .string()
      .max(320)
      .regex(/^[^\s@<>]+@[^\s@<>]+$/, 'must be an e-mail address such as alice@example.com')
      .optional(),
    active: z.boolean().default(true),
    teams: z.array(id).max(100).optional(),
  })
  .strict();

export const teamFileSchema = z
  .object({
    kind: z.literal('team'),
    id,
    name: displayName.optional(),
    description: z.string().max(1000).optional(),
    members: z.array(id).max(10_000).optional(),
  })
  .strict();

export type PersonFile = z.infer<typeof personFileSchema>;
export type TeamFile = z.infer<typeof teamFileSchema>;

/** The schema a `people/` document is read with: `kind: team` picks the team schema. */
export function peopleDocumentSchema(doc: unknown): typeof personFileSchema | typeof teamFileSchema {
  const kind = typeof doc === 'object' && doc !== null ? (doc as { kind?: unknown }).kind : undefined;
  return kind === 'team' ? teamFileSchema : personFileSchema;
}
