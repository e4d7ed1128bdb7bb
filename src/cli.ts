#!/usr/bin/env node
/**
 * The `airgap` command: the connected-side verbs (build/) plus the appliance's own.
 * This is the only place that reads process.argv, process.env and the TTY state.
 */
import { EXIT, runCli } from './kit/cli.js';
import { productVersion } from './kit/version.js';
import { airgapCommands } from './commands.js';

const interrupt = new AbortController();
const serving = process.argv[2] === 'serve';
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (!interrupt.signal.aborted) return interrupt.abort(new Error(`${signal} received`));
    // The daemon finishes stopping its registries; any other command gives up at once.
    if (serving) process.stderr.write(`airgap: ${signal} again: already stopping the daemon and its registries\n`);
    else process.exit(EXIT.interrupted);
  });
}

const version = productVersion();
const host = { uid: process.getuid?.() ?? -1, cwd: process.cwd() };
const code = await runCli(process.argv.slice(2), airgapCommands(host, version), {
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  interactive: process.stderr.isTTY === true,
  signal: interrupt.signal,
}, version);
process.exitCode = code;
