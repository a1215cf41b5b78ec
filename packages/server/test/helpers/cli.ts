// Runs the `writ` CLI as a child process, the way an operator would: `exec`, `token get`, and the admin
// commands of the harness's operator.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { type Harness, privateJwk } from './harness.js';

/** The built `writ` CLI. */
export const WRIT_MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** What a `writ` child left behind. */
export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Spawns `node <main> ...args`, collects stderr (and stdout when `stdout` is set), and resolves once the
 * child exits (killed after 60 s), letting its pipes drain first.
 */
export function runWrit(
  main: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; stdout?: boolean } = {},
): Promise<CliRun> {
  const child = spawn(process.execPath, [main, ...args], {
    ...(options.env ? { env: options.env } : {}),
    stdio: ['ignore', options.stdout ? 'pipe' : 'ignore', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (c: Buffer) => {
    stdout += c.toString();
  });
  child.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  return new Promise<CliRun>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      setImmediate(() => resolve({ code, signal, stdout, stderr }));
    });
  });
}

/** Resolves with the first output line matching `re`; rejects if the process exits first. */
export function lineMatching(child: ChildProcess, output: { text: string }, re: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let pending = '';
    const onData = (chunk: Buffer) => {
      output.text += chunk.toString();
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      const hit = lines.find((l) => re.test(l));
      if (hit !== undefined) {
        child.off('exit', onExit);
        resolve(hit);
      }
    };
    const onExit = (code: number | null) =>
      reject(new Error(`exited (${code}) before ${re}:\n${output.text}`));
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (chunk: Buffer) => {
      output.text += chunk.toString();
    });
    child.once('exit', onExit);
  });
}

/** How a `writ` command run to its end went: exit code (-1 when it was killed), and what it printed. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `node <main> ...args` to its end (killed after `timeoutMs`), as an operator's shell would. */
export async function execWrit(main: string, args: string[], timeoutMs = 30_000): Promise<CliResult> {
  try {
    const r = await promisify(execFile)(process.execPath, [main, ...args], { timeout: timeoutMs });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** `writ …` as one operator runs it against one server: the arguments after the global options. */
export type OperatorCli = (args: string[]) => Promise<CliResult>;

/**
 * The harness's operator `ops` at a shell: writes its key where `writ --operator-key` reads it (in the
 * harness's directory, removed with it) and runs `writ --server <issuer> --operator-key <file> …` to its
 * end. `issuer`: another address of the server (a proxy in front of it); `timeoutMs`: per command.
 */
export function operatorCli(
  h: Pick<Harness, 'dir' | 'issuer' | 'operatorKey'>,
  { issuer = h.issuer, timeoutMs }: { issuer?: string; timeoutMs?: number } = {},
): OperatorCli {
  const keyFile = join(h.dir, 'operator.jwk');
  writeFileSync(keyFile, JSON.stringify({ operator: 'ops', key: privateJwk(h.operatorKey) }), {
    mode: 0o600,
  });
  return (args) => execWrit(WRIT_MAIN, ['--server', issuer, '--operator-key', keyFile, ...args], timeoutMs);
}
