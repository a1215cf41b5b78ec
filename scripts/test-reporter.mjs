// The test runner's own reporter (spec on a terminal, TAP otherwise), plus what it leaves out: a suite
// skipped as a whole (for lack of PostgreSQL, the openssl CLI, the Wycheproof vectors...) is not in
// Node's "skipped" count, which then reads "skipped 0" while whole suites did not run. This reporter
// counts skipped suites in that line and appends every skip, with its file and reason, to the file
// named by WRIT_TEST_SKIPS (JSON lines) for scripts/run-tests.mjs to list at the end.
import { appendFileSync } from 'node:fs';
import { relative } from 'node:path';
import { Readable } from 'node:stream';
import { spec, tap } from 'node:test/reporters';

const skipsFile = process.env.WRIT_TEST_SKIPS;

/** A skip as run-tests.mjs lists it: where, what, and the reason the test gave (or none). */
function skipRecord(data) {
  return {
    file: data.file ? relative(process.cwd(), data.file) : '(unknown file)',
    name: data.name,
    kind: data.details?.type === 'suite' ? 'suite' : 'test',
    reason: typeof data.skip === 'string' ? data.skip : '',
  };
}

export default async function* writReporter(source) {
  let suites = 0;
  let tests = 0;
  async function* events() {
    for await (const event of source) {
      if ((event.type === 'test:pass' || event.type === 'test:fail') && event.data.skip !== undefined) {
        const r = skipRecord(event.data);
        if (r.kind === 'suite') suites++;
        else tests++;
        if (skipsFile) appendFileSync(skipsFile, `${JSON.stringify(r)}\n`);
      }
      if (event.type === 'test:diagnostic' && /^skipped \d+$/.test(event.data.message)) {
        event.data.message = `skipped ${tests} tests, ${suites} suites${tests + suites > 0 ? ' (listed at the end)' : ''}`;
      }
      yield event;
    }
  }
  // Node's default: spec on a terminal, TAP otherwise.
  if (process.stdout.isTTY) yield* Readable.from(events()).pipe(new spec());
  else yield* tap(events());
}
