/**
 * `airgap backup` and `airgap restore` (docs/cli.md, "airgap backup and airgap restore").
 *
 *   airgap backup --out FILE|DIR [--with-data] [--json] [--state-dir DIR]
 *   airgap restore FILE [--force] [--json] [--state-dir DIR]
 *
 * A backup is written by the running daemon (imports and garbage collection wait while it
 * runs) or, when none runs, here, with the state dir locked so that none starts meanwhile.
 * A restore never runs under a daemon: it takes the state dir's lock itself.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { defineCommand, EXIT, print, type CliContext, type Command } from '../../kit/cli.js';
import { AirgapError, UsageError } from '../../kit/errors.js';
import { formatBytes, printable } from '../../kit/text.js';
import { resolveStateDir, type Host } from '../config/config.js';
import { stateLayout } from '../config/state-layout.js';
import type { BackupResult } from '../backup/backup.js';
import type { RestoreResult } from '../backup/restore.js';
import { callAdmin } from './admin-client.js';
import { backupFileName } from './backup-file-name.js';
import { jsonOption, stateDirEnvironment, stateDirOption, userPath } from './options.js';


function renderRestore(r: RestoreResult): string {
  const lines = [
    `Restored the backup of ${r.createdAt} (airgap ${printable(r.airgapVersion)}) into ${printable(r.stateDir)}${r.replaced ? ', replacing what was there' : ''}:`,
    `  ${r.releases.length} release(s)${r.current ? `, current ${printable(r.current)}` : ''}; repo address ${r.repoAddress ? printable(r.repoAddress) : 'not set'}`,
    `  CA SHA-256 ${r.caFingerprintSha256 ?? 'none (the daemon makes a new one)'}`,
    '',
    `Start the daemon: sudo systemctl start airgap (or: airgap serve --state-dir ${printable(r.stateDir)})`,
  ];
  if (r.repoAddress) lines.push(`If this box has another address than ${printable(r.repoAddress)}: airgap setup <repo-ip> (the CA stays; clients keep trusting it)`);
  if (r.reimport.length) {
    lines.push('', 'The releases were restored without their data: import these .bin files again (oldest first;', 'each one is a repair of its recorded release, the current release stays):');
    for (const file of r.reimport) lines.push(`  airgap import ${printable(file)}`);
  } else if (r.withData) lines.push('Every release is served as it was once the daemon runs.');
  return lines.join('\n');
}

/** The appliance's backup and restore verbs. */
export function backupCommands(host: Omit<Host, 'env'>, version: string): Command[] {
  const stateDirOf = (flag: string | undefined, ctx: CliContext) => resolveStateDir(flag, { ...host, env: ctx.env });
  const absolute = (path: string, ctx: CliContext) => userPath(path, ctx, host.cwd);

  const backup = defineCommand({
    name: 'backup',
    summary: 'save the state (database, PKI, credentials, trusted keys, config) in one file',
    usage: 'airgap backup --out FILE|DIR [--with-data] [--json] [--state-dir DIR]',
    description: `Writes one tar file (mode 0600): backup.json, an SQLite online backup of the
database (releases, credentials, settings, events), the CA and server certificate
with their keys, the trusted signing keys and config.yaml, then manifest.json with
the size and sha256 of every entry. --with-data adds each registry's storage and
the file and chart repositories as they are (large: the size of the releases).
--out DIR names the file airgap-backup-<time>.tar in DIR. The file is written
next to its final name and renamed when whole; an existing file is replaced.

The running daemon writes it (imports and garbage collection wait meanwhile); with
no daemon running, this command reads the state dir itself. The file holds every
password and the CA key: keep it where the appliance's root account is kept.
Restore it with 'airgap restore FILE'.`,
    args: { min: 0, max: 0 },
    options: {
      out: { type: 'string', value: 'FILE|DIR', description: 'where to write the backup; required' },
      'with-data': { type: 'boolean', description: "add the registries' storage and the repositories" },
      ...jsonOption('print what was written as one JSON document: file, createdAt, withData, files, bytes, sha256'),
      ...stateDirOption('state dir of the appliance to back up'),
    },
    environment: stateDirEnvironment,
    async run({ values }, ctx) {
      if (!values.out) throw new UsageError('--out FILE|DIR is required', { hint: 'airgap backup --out /root/airgap-backup.tar' });
      let out = absolute(values.out, ctx);
      if ((await stat(out).catch(() => undefined))?.isDirectory()) out = join(out, backupFileName(new Date()));
      const withData = values['with-data'] === true;
      const stateDir = stateDirOf(values['state-dir'], ctx);
      if (!values.json) print(ctx.stderr, `Writing a backup${withData ? ' with data' : ''} of ${printable(stateDir)} to ${printable(out)}…`);
      let result: BackupResult;
      try {
        result = await callAdmin<BackupResult>(stateDir, 'POST', '/v1/backup', { out, withData, actor: 'cli' }, { onWait: (m) => print(ctx.stderr, m) });
      } catch (err) {
        if (!(err instanceof AirgapError && err.code === 'AG_DAEMON_DOWN' && /is not running/.test(err.message))) throw err;
        // No daemon: read the state dir here, holding its lock so that none starts meanwhile.
        const { takeStateDir, releaseStateDir } = await import('../daemon/state-dir.js');
        const { writeBackupFile } = await import('../backup/backup.js');
        const layout = stateLayout(stateDir);
        if (!(await stat(layout.database).catch(() => undefined))) {
          throw new AirgapError('AG_NOT_FOUND', `there is no appliance state in ${stateDir}`, { hint: 'pass --state-dir (or AIRGAP_STATE_DIR) of the appliance to back up' });
        }
        await takeStateDir(layout);
        try {
          result = await writeBackupFile(layout, out, { withData, airgapVersion: version, ...(ctx.signal ? { signal: ctx.signal } : {}) });
        } finally {
          await releaseStateDir(layout);
        }
      }
      print(ctx.stdout, values.json ? JSON.stringify(result, null, 2) : `Wrote ${printable(result.file)}: ${formatBytes(result.bytes)}, ${result.files} files${result.withData ? ' with data' : ''}; sha256 ${result.sha256}`);
      return EXIT.ok;
    },
  });

  const restore = defineCommand({
    name: 'restore',
    summary: 'put a backup back into a state dir (the daemon stopped)',
    usage: 'airgap restore FILE [--force] [--json] [--state-dir DIR]',
    description: `Restores a file 'airgap backup' wrote into the state dir: the same CA, server
certificate, credentials, trusted keys, settings and release records. Every entry is
checked against the backup's manifest (sha256 and size) and the database against
SQLite's own check before anything in the state dir changes; a damaged or truncated
file changes nothing.

The daemon must be stopped (sudo systemctl stop airgap). A state dir in use (one that
records a release or a repo address) is replaced only with --force; a fresh box's
(its daemon started once) is replaced without it.

A backup without data restores the releases as "needs re-import": start the daemon
and import their .bin files again (the command lists them); each import repairs its
release and the current release stays. A backup with data serves every release as
soon as the daemon runs.`,
    args: { min: 1, max: 1 },
    options: {
      force: { type: 'boolean', description: 'replace a state dir that is in use' },
      ...jsonOption('print what was restored as one JSON document'),
      ...stateDirOption('state dir to restore into'),
    },
    environment: stateDirEnvironment,
    async run({ values, positionals }, ctx) {
      const file = absolute(positionals[0]!, ctx);
      const s = await stat(file).catch(() => undefined);
      if (!s?.isFile()) throw new UsageError(`there is no backup file ${file}`, { hint: "make one with 'airgap backup --out FILE'" });
      const stateDir = stateDirOf(values['state-dir'], ctx);
      const { restoreBackup } = await import('../backup/restore.js');
      if (!values.json) print(ctx.stderr, `Restoring ${printable(file)} (${formatBytes(s.size)}) into ${printable(stateDir)}…`);
      const result = await restoreBackup(createReadStream(file), stateLayout(stateDir), { force: values.force === true, ...(ctx.signal ? { signal: ctx.signal } : {}) });
      print(ctx.stdout, values.json ? JSON.stringify(result, null, 2) : renderRestore(result));
      return EXIT.ok;
    },
  });

  return [backup, restore];
}
