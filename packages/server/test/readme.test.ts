import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { settingsReferenceMarkdown } from '../src/config/settings.js';

const root = (path: string) => new URL(`../../../../${path}`, import.meta.url);
const readme = readFileSync(root('README.md'), 'utf8');
const configuration = readFileSync(root('docs/configuration.md'), 'utf8');

describe('README', () => {
  it('shows the two commands for a fresh machine', () => {
    assert.match(readme, /npm install && npm start/);
    assert.match(readme, /npm install && npm test/);
  });

  it('stays a README: what Writ is, the two commands, the walkthroughs and a map of docs/', () => {
    const lines = readme.split('\n').length;
    assert.ok(lines <= 220, `README.md has ${lines} lines: move reference material into docs/`);
    for (const heading of [
      '## Two commands',
      '## Five-minute walkthrough',
      '## Protect your API in five minutes',
      '## Documentation',
    ])
      assert.ok(readme.includes(`\n${heading}\n`), `README has no "${heading}"`);
  });
});

describe('docs/configuration.md', () => {
  it('carries the configuration reference generated from the settings table', () => {
    const m = /<!-- settings:begin -->\n([\s\S]*?)\n<!-- settings:end -->/.exec(configuration);
    assert.ok(m, 'settings markers missing from docs/configuration.md');
    assert.equal(
      m[1],
      settingsReferenceMarkdown(),
      'docs/configuration.md settings table is stale: paste `writ config reference`',
    );
  });
});
