import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { settingsReferenceMarkdown } from '../src/config/settings.js';

const readme = readFileSync(new URL('../../../../README.md', import.meta.url), 'utf8');

describe('README', () => {
  it('carries the configuration reference generated from the settings table', () => {
    const m = /<!-- settings:begin -->\n([\s\S]*?)\n<!-- settings:end -->/.exec(readme);
    assert.ok(m, 'settings markers missing from README');
    assert.equal(
      m[1],
      settingsReferenceMarkdown(),
      'README settings table is stale: paste `writ config reference`',
    );
  });

  it('shows the two commands for a fresh machine', () => {
    assert.match(readme, /npm install && npm start/);
    assert.match(readme, /npm install && npm test/);
  });
});
