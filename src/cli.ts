#!/usr/bin/env node
/**
 * The `airgap` command: the connected-side verbs (build/) plus the appliance's own.
 * process.argv, env and the TTY state are read by runProcess (kit/cli.ts) only.
 */
import { runProcess } from './kit/cli.js';
import { productVersion } from './kit/version.js';
import { airgapCommands } from './commands.js';

const version = productVersion();
const host = { uid: process.getuid?.() ?? -1, cwd: process.cwd() };
// The daemon finishes stopping its registries on a second signal; any other verb gives up at once.
await runProcess(airgapCommands(host, version), version, process.argv[2] === 'serve' ? { stillStopping: 'already stopping the daemon and its registries' } : {});
