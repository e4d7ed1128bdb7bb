/**
 * The `airgap` command in-process: the same command table as `src/cli.ts` (`airgapCommands`) run through `runCli` with captured stdout and
 * stderr. For usage errors and exit codes, which need no child process.
 */
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { runCli } from '../../src/kit/cli.js';
import { airgapCommands } from '../../src/commands.js';
import type { CliResult } from './appliance.js';

const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** A stream that appends what is written to it to a string. */
function collector(append: (text: string) => void): Writable {
  return new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      append(chunk.toString());
      done();
    },
  });
}

/**
 * Runs `airgap <argv>` in this process, as `src/cli.ts` composes it, with `env` as its whole
 * environment (none by default) and stderr not a terminal. Never rejects.
 */
export async function runAirgap(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const host = { uid: process.getuid?.() ?? -1, cwd: process.cwd() };
  const commands = airgapCommands(host, version);
  const exitCode = await runCli(argv, commands, { stdout: collector((s) => (stdout += s)), stderr: collector((s) => (stderr += s)), env, interactive: false }, version);
  return { exitCode, stdout, stderr };
}
