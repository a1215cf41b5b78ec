import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { CLIENT_ASSERTION_TYPE_JWT_BEARER } from '@writ/sdk/wire';
import {
  endpointTableMarkdown,
  openApiDocument,
  openApiJson,
  ROUTES,
  routesOf,
} from '../src/http/openapi.js';
import { AUDIENCE, type Harness, startHarness, WORKLOAD } from './helpers/harness.js';
import { conformanceProblems } from './helpers/openapi-conformance.js';

// The OpenAPI 3.1 document of Writ's own API: valid by an OpenAPI validator, the same as the checked-in
// docs/openapi.json and endpoint table, the server's routes exactly, and served at GET /openapi.json.
// That the requests the tests send conform to it is checked on every test server (the harness's
// close() fails otherwise; see helpers/openapi-conformance.ts).

// Loaded when the test runs (a devDependency of the workspace): builds do not need it installed.
const { Validator } = (await import('@seriousme/openapi-schema-validator' as string)) as {
  Validator: new () => { validate(doc: object): Promise<{ valid: boolean; errors?: unknown }> };
};

const root = (path: string) => new URL(`../../../../${path}`, import.meta.url);
type Doc = { openapi: string; paths: Record<string, Record<string, unknown>>; servers?: { url: string }[] };

describe('OpenAPI document', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(async () => h.close());

  it('is a valid OpenAPI 3.1 document (@seriousme/openapi-schema-validator)', async () => {
    const doc = openApiDocument('https://writ.example.internal') as Doc;
    assert.equal(doc.openapi, '3.1.0');
    const result = await new Validator().validate(doc);
    assert.equal(result.valid, true, JSON.stringify(result.errors, null, 2)?.slice(0, 2000));
  });

  it('the validator refuses a broken document (the check above can fail)', async () => {
    const doc = openApiDocument() as Doc;
    const broken = structuredClone(doc) as Doc;
    (broken.paths['/oauth2/token']!['post'] as { responses?: unknown }).responses = 'none';
    assert.equal((await new Validator().validate(broken)).valid, false);
  });

  it('docs/openapi.json is what the server generates (`npm run docs:openapi` writes it)', () => {
    assert.equal(
      readFileSync(root('docs/openapi.json'), 'utf8'),
      openApiJson(),
      'docs/openapi.json is stale: run `npm run docs:openapi`',
    );
  });

  it('the endpoint table of docs/endpoints.md is generated from it', () => {
    const text = readFileSync(root('docs/endpoints.md'), 'utf8');
    const m = /<!-- endpoints:begin -->\n([\s\S]*?)\n<!-- endpoints:end -->/.exec(text);
    assert.ok(m, 'endpoints markers missing from docs/endpoints.md');
    assert.equal(
      m[1],
      endpointTableMarkdown(),
      'docs/endpoints.md table is stale: run `npm run docs:openapi`',
    );
    for (const op of ROUTES)
      assert.ok(m[1]!.includes(`\`${op.method} ${op.path}\``), `${op.method} ${op.path}`);
  });

  it('describes every route the server registers, and no route it does not', async () => {
    await h.writ.app.ready();
    const registered = routesOf(h.writ.app).map((r) => `${r.method} ${r.path}`);
    assert.ok(registered.length >= 40, `only ${registered.length} routes recorded`);
    const doc = openApiDocument() as Doc;
    const documented = Object.entries(doc.paths).flatMap(([path, methods]) =>
      Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`),
    );
    const missing = registered.filter((r) => !documented.includes(r));
    assert.deepEqual(
      missing,
      [],
      'routes the server registers that the OpenAPI document lacks: add them to ROUTES in src/http/openapi.ts',
    );
    const extra = documented.filter((d) => !registered.includes(d));
    assert.deepEqual(extra, [], 'operations in the OpenAPI document the server does not register');
    assert.equal(new Set(documented).size, documented.length, 'an operation is listed twice');
  });

  it('is served at GET /openapi.json, naming the server', async () => {
    const res = await h.writ.app.inject({ method: 'GET', url: '/openapi.json' });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    const served = res.json() as Doc;
    assert.deepEqual(served.servers, [{ url: h.issuer }]);
    assert.deepEqual(served.paths, (openApiDocument() as Doc).paths);
  });

  it('request bodies come from the schemas the routes validate with', () => {
    const doc = openApiDocument() as Doc;
    const body = (path: string, method: string) =>
      (
        doc.paths[path]![method] as {
          requestBody: { content: Record<string, { schema: { properties: Record<string, unknown> } }> };
        }
      ).requestBody.content;
    // POST /admin/v1/revocations: the admin route's zod schema (kinds from REVOCATION_KINDS, strict).
    const revocation = body('/admin/v1/revocations', 'post')['application/json']!.schema as {
      properties: { kind: { enum: string[] } };
      additionalProperties: boolean;
    };
    assert.ok(revocation.properties.kind.enum.includes('jti'));
    assert.equal(revocation.additionalProperties, false);
    // POST /v1/usage: each record as `usageRecord` checks it.
    const usage = body('/v1/usage', 'post')['application/json']!.schema as {
      properties: { records: { items: { properties: Record<string, unknown>; required: string[] } } };
    };
    assert.ok('token_sha256' in usage.properties.records.items.properties);
    assert.ok(usage.properties.records.items.required.includes('decision'));
    assert.ok(
      'grant_type' in body('/oauth2/token', 'post')['application/x-www-form-urlencoded']!.schema.properties,
    );
  });

  it('checks moved onto the shared schemas refuse as before: which parameter, what would pass', async () => {
    for (const q of ['limit=abc', 'after=-1', 'since=1e12', `until=${'9'.repeat(17)}`]) {
      const r = await h.admin('GET', `/audit?${q}`);
      assert.equal(r.status, 400, q);
      assert.equal(r.body['error'], 'invalid_request');
      assert.equal(r.body['error_description'], `${q.split('=')[0]} must be a non-negative integer`);
    }
    assert.equal((await h.admin('GET', '/audit?limit=5&order=desc')).status, 200);
    const open = (duration: string) =>
      h.post('/v1/tasks', {
        client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
        client_assertion: h.assertion(),
        purpose: 'openapi test',
        duration,
      });
    for (const bad of ['0', '1.5', '12345678', 'ten']) {
      const r = await open(bad);
      assert.equal(r.status, 400, bad);
      assert.equal(r.body['error_description'], 'duration must be a positive number of seconds');
    }
    assert.equal((await open('600')).status, 201);
    for (const bad of ['0', '-5', '1234567890', '1e3']) {
      const r = await h.requestToken({ ttl: bad });
      assert.equal(r.status, 400, bad);
      assert.equal(r.body['error_description'], 'ttl must be a positive number of seconds');
    }
    assert.equal((await h.requestToken({ ttl: '60' })).status, 200);
    const breakglass = async (q: string) =>
      (await h.admin('GET', `/breakglass?${q}`)).body['error_description'];
    assert.equal(await breakglass('state=bogus'), 'state must be one of pending, active, ended');
    assert.equal(await breakglass('open_review=maybe'), 'open_review must be true or false');
    assert.equal((await h.admin('GET', '/breakglass?state=active&open_review=true')).status, 200);
    for (const id of ['', 'x'.repeat(65)]) {
      const url = `/ssf/status?stream_id=${id}`;
      const r = await h.writ.app.inject({ method: 'GET', url, headers: await h.adminHeaders('GET', url) });
      assert.equal(r.statusCode, 400, id);
      assert.equal(r.json()['error_description'], 'stream_id is required');
    }
    const url = '/ssf/status?stream_id=no-such-stream';
    const missing = await h.writ.app.inject({
      method: 'GET',
      url,
      headers: await h.adminHeaders('GET', url),
    });
    assert.equal(missing.statusCode, 404);
  });

  it('the conformance check refuses requests that do not match the document', () => {
    const ok = {
      method: 'POST',
      route: '/admin/v1/revocations',
      params: {},
      query: {},
      contentType: 'application/json',
      body: { kind: 'jti', value: 'abc' },
    };
    assert.deepEqual(conformanceProblems(ok), []);
    assert.notDeepEqual(conformanceProblems({ ...ok, body: { kind: 'jti', value: 'abc', extra: 1 } }), []);
    assert.notDeepEqual(conformanceProblems({ ...ok, body: { kind: 'nonsense', value: 'abc' } }), []);
    assert.notDeepEqual(conformanceProblems({ ...ok, route: '/admin/v1/nowhere' }), []);
    assert.notDeepEqual(conformanceProblems({ ...ok, contentType: 'text/plain' }), []);
    assert.notDeepEqual(
      conformanceProblems({
        method: 'GET',
        route: '/v1/events',
        params: {},
        query: { snapshot: 'paged' },
        contentType: undefined,
        body: undefined,
      }),
      [],
      'revocations=sha256 is required',
    );
    const form = new Map([
      ['grant_type', ['client_credentials']],
      ['resource', [AUDIENCE]],
      ['client_id', [WORKLOAD]],
    ]);
    const token = {
      method: 'POST',
      route: '/oauth2/token',
      params: {},
      query: {},
      contentType: 'application/x-www-form-urlencoded',
      body: form,
    };
    assert.deepEqual(conformanceProblems(token), []);
    assert.notDeepEqual(
      conformanceProblems({ ...token, body: new Map([...form, ['grant_type', ['password']]]) }),
      [],
    );
  });
});
