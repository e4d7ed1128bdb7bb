#!/usr/bin/env node
/**
 * The portable airgap CLI that a format 2 .bin carries (runtime/airgap.mjs.gz) and its sh
 * header runs as `sh FILE.bin push|verify|inspect ...`: the verbs that need neither the
 * appliance nor any native module, bundled into one ES module by `npm run build`
 * (scripts/bundle-portable.mjs). It runs them as cli.ts does (kit/cli.ts runProcess).
 */
import { rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { runProcess } from './kit/cli.js';
import { setProductVersion } from './kit/version.js';
import { portableCommands } from './build/commands.js';
import { pushCommands } from './push/commands.js';

declare const AIRGAP_VERSION: string;

// The sh header unpacked this runtime into a private folder and exec'd it: the folder
// goes now (node and this module are loaded), whatever way this process ends.
const runtimeDir = process.env.AIRGAP_RUNTIME_DIR;
if (runtimeDir && /\/airgap-runtime\.[A-Za-z0-9]{6,}$/.test(runtimeDir) && resolve(process.argv[1] ?? '') === join(resolve(runtimeDir), 'airgap.mjs')) {
  rmSync(runtimeDir, { recursive: true, force: true });
}
delete process.env.AIRGAP_RUNTIME_DIR;

const version = typeof AIRGAP_VERSION === 'string' ? AIRGAP_VERSION : 'unknown';
// Never a package.json found above the temporary folder this runs from.
setProductVersion(version);
await runProcess([...pushCommands(), ...portableCommands], version);
