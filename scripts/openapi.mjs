// Writes docs/openapi.json and the endpoint table of docs/endpoints.md from the OpenAPI document the
// server generates from its request schemas (`npm run docs:openapi`, after `npm run build`).
// test/openapi.test.ts fails when either is not what this writes.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { endpointTableMarkdown, openApiJson } from '../packages/server/dist/src/http/openapi.js';

const root = (path) => fileURLToPath(new URL(`../${path}`, import.meta.url));

writeFileSync(root('docs/openapi.json'), openApiJson());
const endpoints = root('docs/endpoints.md');
const text = readFileSync(endpoints, 'utf8');
const markers = /(<!-- endpoints:begin -->\n)[\s\S]*?(<!-- endpoints:end -->)/;
if (!markers.test(text)) throw new Error('docs/endpoints.md has no endpoints markers');
writeFileSync(
  endpoints,
  text.replace(markers, (_m, begin, end) => `${begin}${endpointTableMarkdown()}\n${end}`),
);
console.log('wrote docs/openapi.json and the endpoint table of docs/endpoints.md');
