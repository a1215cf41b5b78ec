import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { requestPath } from '../src/verifier/request-path.js';

describe('requestPath: the path a usage record names', () => {
  it('says what the URL parser says, for plain URLs and for ones it must parse', () => {
    const urls = [
      'https://api.example.com',
      'https://api.example.com/',
      'https://api.example.com/reports/7',
      'https://api.example.com/reports/7?x=1&y=/a/../b',
      'http://127.0.0.1:9400/vendors/payments/v1/charges/ch_1',
      'http://[::1]:8080/a/b',
      'https://API.example.com/A%20b/c',
      'https://api.example.com/a/../b',
      'https://api.example.com/a/./b',
      'https://api.example.com/a/%2E%2E/b',
      'https://api.example.com/a/%2e/b',
      'https://api.example.com/a b/<c>',
      'https://api.example.com/a\\b',
      'https://api.example.com/r?q#frag',
      'https://api.example.com/caf\u00e9',
      'https://user:pw@api.example.com/x',
    ];
    for (const url of urls) assert.equal(requestPath(url), new URL(url).pathname, url);
  });

  it('keeps a URL that is not absolute as given', () => {
    assert.equal(requestPath('/reports/7'), '/reports/7');
  });
});
