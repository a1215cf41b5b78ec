import { escapeControlCharacters } from '../control-characters.js';

/**
 * Text as the CLI prints it: the line breaks between lines kept, every other control character
 * escaped (`escapeControlCharacters`), so nothing the server returns (an event a caller wrote, an
 * error description) can move the cursor, recolour or clear the terminal, or hide text behind a
 * bidirectional override. Renderers escape each field themselves too, so a field cannot add a line.
 */
export function terminalText(text: string): string {
  return text.split('\n').map(escapeControlCharacters).join('\n');
}
