#!/usr/bin/env node
import { REVOCATION_KINDS, type RevocationKind } from '@writ/sdk/wire';
import { Command, Option } from 'commander';
import { settingsReferenceMarkdown } from '../config/settings.js';
import { DEFAULT_DATA_DIR, dataPaths } from '../data-dir.js';
import { ConfigError } from '../errors.js';
import { writSchema } from '../policy/cedar.js';
import { AdminClient, CliError } from './client.js';
import { apply } from './commands/apply.js';
import { formatEvent, query, tail, verifyOffline } from './commands/audit.js';
import { dpopProof } from './commands/dpop-proof.js';
import { exec } from './commands/exec.js';
import { initDataDir } from './commands/init.js';
import { keygen } from './commands/keygen.js';
import { migrate } from './commands/migrate.js';
import { formatExplanation, policyExplain, policyTest, policyValidate } from './commands/policy.js';
import { serve } from './commands/serve.js';
import { getToken, introspect, verifyToken } from './commands/token.js';
import { formatTrace, trace } from './commands/trace.js';
import { storeFromOptions } from './store-option.js';

function out(v: unknown): void {
  process.stdout.write(`${typeof v === 'string' ? v : JSON.stringify(v, null, 2)}\n`);
}

const program = new Command('writ')
  .description('Writ: short-lived, narrowly scoped credentials for non-human identities.')
  .option('--data-dir <dir>', 'data directory', process.env['WRIT_DATA_DIR'] ?? DEFAULT_DATA_DIR)
  .option('--server <url>', 'Writ server URL', process.env['WRIT_URL'] ?? 'http://127.0.0.1:8080')
  .option(
    '--operator-key <file>',
    'operator key file (default: <data-dir>/operator.jwk)',
    process.env['WRIT_OPERATOR_KEY'],
  )
  .showHelpAfterError();

const globals = () => program.opts<{ dataDir: string; server: string; operatorKey?: string }>();
const admin = () => {
  const g = globals();
  return new AdminClient({
    server: g.server,
    operatorKey: g.operatorKey ?? dataPaths(g.dataDir).operatorKey,
  });
};

program
  .command('init')
  .description('create a data directory: key-encryption key, operator key pair, starter config')
  .option('--operator <name>', 'operator name', 'admin')
  .action((o: { operator: string }) => {
    const r = initDataDir(globals().dataDir, o.operator);
    out(r.created.length ? r.created.map((c) => `created ${c}`).join('\n') : 'already initialised');
    out(`config directory: ${r.config}\noperator key:     ${r.operatorKey}`);
  });

const STORE_HELP =
  '`sqlite` (<data-dir>/writ.db) or a postgres:// URL (default: WRIT_STORE, settings.yaml, sqlite)';

program
  .command('serve')
  .description('run the server (initialises the data directory on first start)')
  .option('--config <dir>', 'config directory applied at start (default: <data-dir>/config)')
  .option('--host <host>', 'listen address')
  .option('--port <port>', 'listen port')
  .option('--issuer <url>', 'issuer URL')
  .option('--store <store>', STORE_HELP)
  .action((o: { config?: string; host?: string; port?: string; issuer?: string; store?: string }) =>
    serve({ dataDir: globals().dataDir, ...o }),
  );

program
  .command('migrate')
  .description('apply pending schema migrations to the store and print them (serve also does this at start)')
  .option('--store <store>', STORE_HELP)
  .option(
    '--config <dir>',
    'config directory whose settings.yaml may name the store (default: <data-dir>/config)',
  )
  .action(async (o: { store?: string; config?: string }) =>
    out(await migrate(storeFromOptions({ dataDir: globals().dataDir, ...o }))),
  );

program
  .command('apply <dir>')
  .description('validate a config directory and apply it (prints the diff; audited)')
  .option('--dry-run', 'show the diff without applying')
  .action(async (dir: string, o: { dryRun?: boolean }) => out(await apply(admin(), dir, o.dryRun ?? false)));

const workloads = program.command('workloads').description('registered workloads');
workloads.command('list').action(async () => {
  const r = await admin().get<{
    workloads: Array<{ id: string; state: string; environment: string; owner: string; classes: string[] }>;
  }>('/workloads');
  out(
    r.workloads
      .map(
        (w) =>
          `${w.state.padEnd(11)} ${w.environment.padEnd(8)} ${w.id}  owner=${w.owner} classes=${w.classes.join(',')}`,
      )
      .join('\n') || '(none)',
  );
});
workloads
  .command('show <id>')
  .action(async (id: string) => out(await admin().get(`/workloads/${encodeURIComponent(id)}`)));
for (const verb of ['disable', 'enable', 'quarantine']) {
  workloads
    .command(`${verb} <id>`)
    .option('--reason <text>', 'why (audited)')
    .description(
      verb === 'enable'
        ? 'allow the workload to get tokens again'
        : `${verb} the workload and revoke every token it holds`,
    )
    .action(async (id: string, o: { reason?: string }) =>
      out(
        await admin().post(
          `/workloads/${encodeURIComponent(id)}/${verb}`,
          o.reason ? { reason: o.reason } : {},
        ),
      ),
    );
}

const classes = program.command('classes').description('token classes');
classes.command('list').action(async () => {
  const r = await admin().get<{
    classes: Array<{ name: string; maxTtl: number; audiences: string[]; scopes: string[] }>;
  }>('/classes');
  out(
    r.classes
      .map(
        (c) =>
          `${c.name}  max_ttl=${c.maxTtl}s audiences=${c.audiences.join(',')} scopes=${c.scopes.join(',')}`,
      )
      .join('\n') || '(none)',
  );
});
classes
  .command('show <name>')
  .action(async (name: string) => out(await admin().get(`/classes/${encodeURIComponent(name)}`)));

const keys = program.command('keys').description('signing keys');
keys.command('list').action(async () => out(await admin().get('/keys')));
keys
  .command('rotate')
  .description(
    'activate the published next key, retire the current one (kept published until its tokens expire)',
  )
  .action(async () => out(await admin().post('/keys/rotate')));

const revokeCmd = program.command('revoke').description('revoke tokens by predicate (one option)');
for (const kind of REVOCATION_KINDS)
  revokeCmd.addOption(new Option(`--${kind.replace('_', '-')} <value>`, `tokens whose ${kind} is <value>`));
revokeCmd
  .option('--issued-before <time>', 'only tokens issued at or before this ISO time or epoch seconds')
  .option('--reason <text>', 'why (audited)')
  .action(async (o: Record<string, string | undefined>) => {
    const chosen = REVOCATION_KINDS.filter((k) => o[k === 'client_id' ? 'clientId' : k] !== undefined);
    if (chosen.length !== 1)
      throw new CliError(
        `give exactly one of ${REVOCATION_KINDS.map((k) => `--${k.replace('_', '-')}`).join(', ')}`,
      );
    const kind = chosen[0] as RevocationKind;
    const value = o[kind === 'client_id' ? 'clientId' : kind]!;
    let issued_before: number | undefined;
    if (o['issuedBefore'] !== undefined) {
      const t = /^\d+$/.test(o['issuedBefore'])
        ? Number(o['issuedBefore'])
        : Math.floor(Date.parse(o['issuedBefore']) / 1000);
      if (!Number.isFinite(t)) throw new CliError('--issued-before must be an ISO time or epoch seconds');
      issued_before = t;
    }
    out(
      await admin().post('/revocations', {
        kind,
        value,
        ...(issued_before !== undefined ? { issued_before } : {}),
        ...(o['reason'] ? { reason: o['reason'] } : {}),
      }),
    );
  });

const audit = program.command('audit').description('the tamper-evident audit log');
audit
  .command('verify')
  .description('verify the hash chain and signed checkpoints, reading the store directly (read-only)')
  .option('--store <store>', STORE_HELP)
  .option(
    '--config <dir>',
    'config directory whose settings.yaml may name the store (default: <data-dir>/config)',
  )
  .action(async (o: { store?: string; config?: string }) => {
    const r = await verifyOffline(storeFromOptions({ dataDir: globals().dataDir, ...o }));
    out(r.text);
    if (!r.ok) process.exitCode = 2;
  });
audit
  .command('tail')
  .option('-n <count>', 'events to show', '20')
  .option('-f, --follow', 'keep printing new events')
  .action(async (o: { n: string; follow?: boolean }) =>
    tail(admin(), Math.min(Number(o.n) || 20, 1000), o.follow ?? false, out),
  );
audit
  .command('query')
  .option('--workload <id>', 'events where the workload is actor or subject')
  .option('--jti <jti>', 'events about one token')
  .option('--type <type>', 'event type, e.g. token.issued')
  .option('--since <time>', 'ISO time or epoch milliseconds')
  .option('--until <time>', 'ISO time or epoch milliseconds')
  .option('--limit <n>', 'at most this many', '100')
  .option('--json', 'print JSON')
  .action(async (o: Record<string, string | boolean | undefined>) => {
    const events = await query(admin(), o as Record<string, string>);
    out(o['json'] ? events : events.map(formatEvent).join('\n') || '(no events)');
  });
audit
  .command('trace <jti>')
  .description('one token: issued, then used (where, how often, allowed or denied), then revoked')
  .option('--json', 'print JSON')
  .action(async (jti: string, o: { json?: boolean }) => {
    const t = await trace(admin(), jti);
    out(o.json ? t : formatTrace(t));
  });

program
  .command('keygen')
  .description('create a key pair for a workload (private JWK written 0600; public JWK printed)')
  .requiredOption('--out <file>', 'where to write the private key')
  .addOption(new Option('--alg <alg>', 'algorithm').choices(['ES256', 'EdDSA']).default('ES256'))
  .action((o: { out: string; alg: 'ES256' | 'EdDSA' }) => out(keygen(o.out, o.alg)));

const token = program.command('token').description('get, verify and introspect access tokens');
token
  .command('get')
  .description('client_credentials with private_key_jwt (or mTLS), as a workload')
  .requiredOption('--client-id <spiffe-id>', 'the workload')
  .option('--key <file>', "the workload's private JWK (private_key_jwt)")
  .option(
    '--tls-cert <file>',
    'instead of --key: client certificate (PEM) for mTLS (tls_client_auth, RFC 8705)',
  )
  .option('--tls-key <file>', 'the private key of --tls-cert (PEM; refused if group or others can read it)')
  .option('--tls-ca <file>', "the server's CA (PEM) when it is not publicly trusted")
  .requiredOption('--audience <uri>', 'the one audience (RFC 8707 resource)')
  .option('--scope <scopes>', 'space-separated scopes')
  .option('--ttl <seconds>', 'requested lifetime (clamped to the class max)')
  .option(
    '--dpop-key <file>',
    'DPoP private key to bind the token to (created 0600 if missing; default: ephemeral; with --tls-cert: no DPoP proof unless given)',
  )
  .option('--bearer', 'send no DPoP proof (only classes with binding: bearer accept this)')
  .option('--raw', 'print only the access token')
  .action(
    async (o: {
      clientId: string;
      key?: string;
      tlsCert?: string;
      tlsKey?: string;
      tlsCa?: string;
      audience: string;
      scope?: string;
      ttl?: string;
      dpopKey?: string;
      bearer?: boolean;
      raw?: boolean;
    }) => {
      const r = await getToken(globals().server, o);
      out(o.raw ? String(r['access_token']) : r);
    },
  );
token
  .command('verify <token>')
  .description('verify a token against the published JWKS (as a resource server would)')
  .option('--audience <uri>', 'expected audience')
  .action(async (t: string, o: { audience?: string }) =>
    out(await verifyToken(globals().server, t, o.audience)),
  );
token
  .command('introspect <token>')
  .description('RFC 7662 introspection, as an operator')
  .action(async (t: string) => out(await introspect(admin(), t)));

program
  .command('exec')
  .description('run a command with a task-bound, DPoP-bound token that is revoked when the command exits')
  .option('--client-id <spiffe-id>', 'the workload (required with --key and --tls-cert)')
  .option('--key <file>', "the workload's private JWK; without it, the ambient identity (federation)")
  .option(
    '--federation-token-file <file>',
    'a federation token file, re-read on each renewal (default: GitHub Actions OIDC, then /var/run/secrets/tokens/writ-token)',
  )
  .option('--federation-audience <aud>', 'the aud to ask the outside issuer for (default: the Writ issuer)')
  .option(
    '--tls-cert <file>',
    'instead of --key: client certificate (PEM) for mTLS; the command gets WRIT_CLIENT_CERT_FILE, WRIT_CLIENT_KEY_FILE (and WRIT_CLIENT_CA_FILE)',
  )
  .option('--tls-key <file>', 'the private key of --tls-cert (PEM; refused if group or others can read it)')
  .option('--tls-ca <file>', "the server's CA (PEM) when it is not publicly trusted")
  .option('--dpop', 'with --tls-cert: also send DPoP proofs (for binding: dpop classes)')
  .requiredOption('--audience <uri>', 'the API the command calls')
  .option('--scope <scopes>', 'space-separated scopes')
  .option('--task-purpose <text>', 'why the task runs (audited)')
  .option('--duration <seconds>', 'expected duration (capped by the class)')
  .option('--label <name=value...>', 'task labels, e.g. ci_run=1234 job=deploy')
  .option('--lease <seconds>', 'the task closes if writ exec stops renewing it this long', '30')
  .argument('<command...>', 'the command and its arguments (after --)')
  .action(async (command: string[], o: Record<string, string | string[] | undefined>) => {
    const status = await exec(
      {
        server: globals().server,
        clientId: o['clientId'] as string | undefined,
        key: o['key'] as string | undefined,
        federationTokenFile: o['federationTokenFile'] as string | undefined,
        federationAudience: o['federationAudience'] as string | undefined,
        tlsCert: o['tlsCert'] as string | undefined,
        tlsKey: o['tlsKey'] as string | undefined,
        tlsCa: o['tlsCa'] as string | undefined,
        dpop: (o['dpop'] as unknown) === true,
        audience: o['audience'] as string,
        ...(o['scope'] ? { scope: o['scope'] as string } : {}),
        ...(o['taskPurpose'] ? { taskPurpose: o['taskPurpose'] as string } : {}),
        ...(o['duration'] ? { duration: o['duration'] as string } : {}),
        ...(o['label'] ? { label: o['label'] as string[] } : {}),
        lease: Math.max(3, Number(o['lease']) || 30),
        log: (line) => process.stderr.write(`${line}\n`),
      },
      command,
    );
    process.exitCode = status;
  });

program
  .command('dpop')
  .description('DPoP helpers')
  .command('proof')
  .description(
    'print a DPoP proof for one request (uses WRIT_DPOP_KEY_FILE and WRIT_TOKEN_FILE under writ exec)',
  )
  .requiredOption('--method <method>', 'HTTP method')
  .requiredOption('--url <url>', 'request URL')
  .option('--key <file>', 'DPoP private JWK (default: WRIT_DPOP_KEY_FILE)')
  .option('--token-file <file>', 'access token to bind with ath (default: WRIT_TOKEN_FILE)')
  .option('--nonce <nonce>', 'server-provided DPoP nonce')
  .action((o: { method: string; url: string; key?: string; tokenFile?: string; nonce?: string }) =>
    out(
      dpopProof({
        method: o.method,
        url: o.url,
        ...(o.key ? { keyFile: o.key } : {}),
        ...(o.tokenFile ? { tokenFile: o.tokenFile } : {}),
        ...(o.nonce ? { nonce: o.nonce } : {}),
      }),
    ),
  );

const tasks = program.command('tasks').description('tasks: units of work whose tokens die with them');
tasks
  .command('list')
  .option('--workload <id>', 'only this workload')
  .option('--state <state>', 'open or closed')
  .action(async (o: { workload?: string; state?: string }) => {
    const q = new URLSearchParams({
      ...(o.workload ? { workload: o.workload } : {}),
      ...(o.state ? { state: o.state } : {}),
    });
    const r = await admin().get<{ tasks: Array<Record<string, unknown>> }>(`/tasks?${q}`);
    out(
      r.tasks
        .map(
          (t) =>
            `${String(t['state']).padEnd(6)} ${String(t['id'])}  ${String(t['workload'])}  "${String(t['purpose'])}"${t['close_reason'] ? `  (${String(t['close_reason'])})` : ''}`,
        )
        .join('\n') || '(none)',
    );
  });
tasks
  .command('show <id>')
  .action(async (id: string) => out(await admin().get(`/tasks/${encodeURIComponent(id)}`)));
tasks
  .command('close <id>')
  .option('--reason <text>', 'why (audited)')
  .description('close the task and revoke every token issued for it')
  .action(async (id: string, o: { reason?: string }) =>
    out(await admin().post(`/tasks/${encodeURIComponent(id)}/close`, o.reason ? { reason: o.reason } : {})),
  );

const policy = program
  .command('policy')
  .description('Cedar policies of a config directory, checked offline (docs/policy.md)');
policy
  .command('test <dir>')
  .description('run policy test cases (default <dir>/policies/tests/); exits 1 on any mismatch')
  .option('--cases <path>', 'a case file or a directory of case files')
  .action((dir: string, o: { cases?: string }) => {
    const r = policyTest(dir, o.cases);
    out(r.text);
    if (!r.ok) process.exitCode = 1;
  });
policy
  .command('explain <dir> <request>')
  .description('why each request in a case file is allowed or denied: determining policies, errors')
  .option('--name <name>', 'only the case with this name')
  .action((dir: string, request: string, o: { name?: string }) => {
    const explained = policyExplain(dir, request, o.name);
    out(explained.map((e) => formatExplanation(e.explanation, e.name)).join('\n\n'));
  });
policy
  .command('validate <dir>')
  .description('compile and validate the policies against the schema; print the version and warnings')
  .action((dir: string) => out(policyValidate(dir)));
policy
  .command('schema')
  .description('print the Cedar schema policies are validated against')
  .action(() => out(writSchema()));

program
  .command('config')
  .description('configuration helpers')
  .command('reference')
  .description('print every server setting with its default and environment variable')
  .action(() => out(settingsReferenceMarkdown()));

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof CliError || err instanceof ConfigError) {
    process.stderr.write(`writ: ${err.message}\n`);
  } else {
    process.stderr.write(`writ: ${(err as Error).message ?? String(err)}\n`);
  }
  process.exit(1);
});
