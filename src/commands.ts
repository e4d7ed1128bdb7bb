/**
 * Every verb of the `airgap` command, in the order `airgap --help` lists them: the
 * connected-side verbs (build/), push (push/) and the appliance's own.
 */
import type { Command } from './kit/cli.js';
import { buildCommands } from './build/commands.js';
import { pushCommands } from './push/commands.js';
import { applianceCommands } from './appliance/cli/commands.js';
import { importCommands } from './appliance/cli/import-commands.js';
import { backupCommands } from './appliance/cli/backup-commands.js';
import { releaseResolver } from './appliance/cli/release-source.js';
import type { Host } from './appliance/config/config.js';

/** The verbs; `host` gives the uid (root picks the OVA defaults) and cwd, `version` the daemon's. */
export function airgapCommands(host: Omit<Host, 'env'>, version: string): Command[] {
  return [...buildCommands, ...pushCommands(releaseResolver(host)), ...applianceCommands(host, version), ...importCommands(host), ...backupCommands(host, version)];
}
