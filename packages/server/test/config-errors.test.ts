import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfigDir } from '../src/config/config-dir.js';
import { ConfigError } from '../src/errors.js';

// A misspelled field is the commonest config mistake. A strict schema sees it twice (a field it does
// not know, and a required field that is not there); the error says both, in the file's own words.

describe('config errors name the misspelled field and the missing one', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'writ-config-errors-'));
    mkdirSync(join(dir, 'classes'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** Loads a config directory holding only this class document and returns the refusal. */
  function refusal(classYaml: string): ConfigError {
    writeFileSync(join(dir, 'classes', 'reports.yaml'), classYaml);
    try {
      loadConfigDir(dir);
    } catch (err) {
      assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
      assert.match(err.file, /classes[/\\]reports\.yaml$/);
      return err;
    }
    assert.fail('the class was accepted');
  }
  const rest = 'audiences: [https://reports.test]\nscopes: [reports:read]\n';

  it('max_tll for max_ttl: "unknown field max_tll; required field max_ttl missing"', () => {
    const err = refusal(`name: reports-read\nmax_tll: 15m\n${rest}`);
    assert.equal(err.field, '');
    assert.match(err.message, /reports\.yaml: unknown field max_tll; required field max_ttl missing$/);
  });

  it('inside a nested object the error names the object', () => {
    const err = refusal(`name: reports-read\nmax_ttl: 15m\nrenewal: { max_lifetim: 8h }\n${rest}`);
    assert.equal(err.field, 'renewal');
    assert.match(err.message, /: renewal: unknown field max_lifetim; required field max_lifetime missing$/);
  });

  it('an unknown optional field alone is only unknown; a missing field alone is only missing', () => {
    const unknown = refusal(`name: reports-read\nmax_ttl: 15m\ndescripton: reports\n${rest}`);
    assert.match(unknown.message, /reports\.yaml: unknown field descripton$/);
    const missing = refusal('name: reports-read\nmax_ttl: 15m\naudiences: [https://reports.test]\n');
    assert.match(missing.message, /reports\.yaml: required field scopes missing$/);
    const both = refusal(
      'name: reports-read\nmax_tll: 15m\nscope: [reports:read]\naudiences: [https://a.test]\n',
    );
    assert.match(
      both.message,
      /reports\.yaml: unknown fields max_tll, scope; required fields max_ttl, scopes missing$/,
    );
  });

  it('a field that is present with a wrong value keeps its own message, not "missing"', () => {
    const err = refusal(`name: reports-read\nmax_ttl: soon\n${rest}`);
    assert.equal(err.field, 'max_ttl');
    assert.match(err.message, /max_ttl: must be a positive duration/);
    const empty = refusal(`name: reports-read\nmax_ttl:\n${rest}`);
    assert.equal(empty.field, 'max_ttl');
    assert.match(empty.message, /max_ttl: must be a positive duration/);
  });
});
