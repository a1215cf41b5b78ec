import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import { importJWK, SignJWT } from 'jose';
import { dataPaths } from '../../data-dir.js';
import { CliError, type OperatorKeyFile, readPrivateKeyFile, serverIssuer } from '../client.js';
import type { CommandContext } from '../command-context.js';

/**
 * `writ console`: prints a one-time sign-in link for the web console and opens it in a browser when one
 * is at hand. The link is a 60-second JWT signed by the operator key (docs/console.md); it travels in the
 * URL's fragment, which browsers send to no server and no Referer, and the console page posts it once.
 */
export function registerConsole(program: Command, cli: CommandContext): void {
  program
    .command('console')
    .description('print (and open) a one-time sign-in link to the web console, signed by the operator key')
    .option('--no-open', 'print the link only; do not start a browser')
    .action(async (o: { open: boolean }) => {
      const g = cli.globals();
      const file = readPrivateKeyFile<OperatorKeyFile>(g.operatorKey ?? dataPaths(g.dataDir).operatorKey);
      const issuer = await serverIssuer(g.server);
      const link = await signSignInLink(file, issuer);
      process.stderr.write('One-time sign-in link (valid 60 s, single use):\n');
      cli.out(`${issuer}/console/signin#${link}`);
      if (o.open) openInBrowser(`${issuer}/console/signin#${link}`);
    });
}

/** The sign-in link's JWT: `typ` writ-console-link+jwt, `sub` operator:<name>, `aud` <issuer>/console, 60 s. */
export async function signSignInLink(file: OperatorKeyFile, issuer: string): Promise<string> {
  const alg = file.key.alg ?? (file.key.kty === 'OKP' ? 'EdDSA' : 'ES256');
  let key: Awaited<ReturnType<typeof importJWK>>;
  try {
    key = await importJWK(file.key, alg);
  } catch {
    throw new CliError('the operator key file does not hold a private key writ can sign with');
  }
  const subject = `operator:${file.operator}`;
  return new SignJWT({})
    .setProtectedHeader({ alg, typ: 'writ-console-link+jwt', ...(file.key.kid ? { kid: file.key.kid } : {}) })
    .setIssuer(subject)
    .setSubject(subject)
    .setAudience(`${issuer}/console`)
    .setIssuedAt()
    .setExpirationTime('60s')
    .setJti(randomBytes(24).toString('base64url'))
    .sign(key);
}

/** Starts the desktop's opener (`open` on macOS, `xdg-open` elsewhere); says so when there is none. */
function openInBrowser(url: string): void {
  const opener = process.platform === 'darwin' ? 'open' : 'xdg-open';
  const child = spawn(opener, [url], { stdio: 'ignore', detached: true });
  child.on('error', () =>
    process.stderr.write(`(no ${opener} here: open the link above in a browser, or pass --no-open)\n`),
  );
  child.unref();
}
