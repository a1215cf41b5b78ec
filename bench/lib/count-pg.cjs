// Preloaded into a Writ node by bench/cluster.mjs (`node --require`): counts what the node sends to
// PostgreSQL (round trips, and statements: a simple-protocol string of several counts each), written
// as JSON to the file named by WRIT_BENCH_PG_COUNT every 100 ms. pg_stat_statements needs a
// server-side preload library; this needs nothing of the database. Bench only: never in a deployment.
// `byText` counts round trips by what they sent (a prepared statement's name, or the first words of
// the text), so the bench can say which statements a token costs.
const { renameSync, writeFileSync } = require('node:fs');
const { createRequire } = require('node:module');
const { join } = require('node:path');
const { performance } = require('node:perf_hooks');

const file = process.env.WRIT_BENCH_PG_COUNT;
if (file) {
  // The server's own copy of pg, so the patched prototype is the one its pool uses.
  const pg = createRequire(join(process.env.WRIT_BENCH_SERVER_DIR, 'package.json'))('pg');
  // msByText: wall milliseconds from sending to the answer, by the same key; rows: issuances sent in
  // `writ_issue_batch` calls (the batch sizes, summed).
  const counts = { trips: 0, statements: 0, byText: {}, msByText: {}, batchRows: 0 };
  const label = (config, text) => {
    if (config && typeof config === 'object' && config.name) return config.name;
    if (typeof text !== 'string') return '?';
    return text.replace(/\s+/g, ' ').trim().slice(0, 70);
  };
  const query = pg.Client.prototype.query;
  pg.Client.prototype.query = function counted(config, ...rest) {
    const text = typeof config === 'string' ? config : config?.text;
    counts.trips++;
    // Writ's SQL carries no semicolon inside a literal: each non-blank piece is one statement.
    counts.statements += typeof text === 'string' ? text.split(';').filter((s) => s.trim()).length : 1;
    const key = label(config, text);
    counts.byText[key] = (counts.byText[key] ?? 0) + 1;
    if (key === 'writ_issue_batch') counts.batchRows += config.values?.[5]?.length ?? 0;
    const t0 = performance.now();
    const took = () => {
      counts.msByText[key] = (counts.msByText[key] ?? 0) + performance.now() - t0;
    };
    // The pool passes a callback; a client's own calls get a promise.
    const cb = rest.findIndex((a) => typeof a === 'function');
    if (cb >= 0) {
      const done = rest[cb];
      rest[cb] = function timed(...args) {
        took();
        return done.apply(this, args);
      };
      return query.call(this, config, ...rest);
    }
    const r = query.call(this, config, ...rest);
    if (r && typeof r.then === 'function') r.then(took, took);
    return r;
  };
  // Written aside and renamed, so the bench never reads half a file.
  const flush = () => {
    writeFileSync(`${file}.tmp`, JSON.stringify(counts));
    renameSync(`${file}.tmp`, file);
  };
  setInterval(flush, 100).unref();
  process.on('exit', flush);
}
