/**
 * The CLI verbs of imports and content (docs/cli.md):
 *
 *   airgap import FILE.bin [--json] [--allow-downgrade] [--quiet]
 *   airgap releases [--json]     airgap images [--json]     airgap packs [--json]
 *   airgap diff FROM TO [--json]
 *
 * All take --state-dir DIR; each verb's flags are one table that the parser and `--help` read.
 *
 * `import` hands the file to the daemon and follows its progress until it is done; when
 * the daemon restarts meanwhile, it reconnects and follows the resumed import.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { AirgapError, UsageError, asErrorCode } from '../../kit/errors.js';
import { defineCommand, EXIT, print, progressReporter, type CliContext, type Command } from '../../kit/cli.js';
import { formatBytes, formatDuration, printable, table } from '../../kit/text.js';
import { callAdmin, streamAdmin } from './admin-client.js';
import { resolveStateDir, type Host } from '../config/config.js';
import { jsonOption, stateDirEnvironment, stateDirOption, userPath } from './options.js';
import type { ImportResult, ImportUpdate } from '../import/runner.js';
import type { ImportRow } from '../store/imports.js';
import type { ArtifactRow } from '../store/releases.js';
import { DISCOVER_DESCRIPTION, DISCOVER_USAGE, runDiscover } from '../../build/commands.js';
import { diffCommand } from './diff.js';
import { nodeConfigCommand } from './node-config-command.js';
import { eventsCommand } from './events-command.js';

/** What the CLI prints when an import enters a stage (the original installer's wording). */
const STAGE_LINES: Record<string, string> = {
  images: 'Setting up Images',
  charts: 'Setting up Charts',
  packs: 'Setting up Packs',
  files: 'Setting up Files',
  tags: 'Publishing tags',
};


/**
 * Follows import `id` until it is done, printing stage lines and progress on stderr.
 * Reconnects for up to `reconnectSeconds` when the daemon goes away (it resumes the
 * import when it starts again). Returns the final row.
 */
async function followImport(stateDir: string, id: number, ctx: CliContext, output: { progress: boolean; notices: boolean }, reconnectSeconds = 180): Promise<ImportRow> {
  const quiet = !output.progress;
  let stage: string | null = null;
  let reporter = progressReporter(ctx, quiet);
  let queuedSaid = -1;
  let final: ImportRow | undefined;
  let lostAt: number | undefined;
  const say = (text: string) => reporter.line(text);
  // Waiting and reconnecting are said even with --json (on stderr): a silent wait looks like a hang.
  const notice = (text: string) => {
    if (!output.notices) return;
    reporter.end();
    print(ctx.stderr, text);
  };
  const onLine = (value: unknown) => {
    lostAt = undefined;
    const message = value as ({ type: 'update' } & ImportUpdate) | { type: 'done'; import: ImportRow };
    if (message.type === 'done') {
      final = message.import;
      return;
    }
    if (message.state === 'queued') {
      if (message.queuePosition !== queuedSaid) notice(`Waiting in the queue: ${message.queuePosition} import(s) ahead of this one`);
      queuedSaid = message.queuePosition;
      return;
    }
    if (message.stage !== stage) {
      reporter.end();
      if (stage === 'open' || (stage === null && message.stage !== 'open')) say(printable(`Integrity verified: ${message.name ?? ''} ${message.version ?? ''}`.trimEnd()));
      stage = message.stage;
      reporter = progressReporter(ctx, quiet);
      if (stage === 'open') say('Verifying the file');
      const line = stage ? STAGE_LINES[stage] : undefined;
      if (line) say(line);
    }
    if (message.bytesTotal > 0) reporter.bytes('  ', message.bytesDone, message.bytesTotal);
  };
  for (;;) {
    try {
      await streamAdmin(stateDir, `/v1/imports/${id}/follow`, onLine, ctx.signal);
      if (final) break;
      throw Object.assign(new Error('the daemon ended the stream early'), { code: 'ECONNRESET' });
    } catch (err) {
      if (ctx.signal?.aborted) {
        // The first Ctrl-C or SIGTERM stops following at once; the daemon keeps the import.
        reporter.end();
        print(ctx.stderr, `Stopped following import ${id}; it goes on in the daemon ('airgap status' shows it).`);
        throw err;
      }
      if (err instanceof AirgapError) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      if (!['ECONNRESET', 'ECONNREFUSED', 'ENOENT', 'EPIPE'].includes(code ?? '')) throw err;
      if (lostAt === undefined) {
        lostAt = Date.now();
        reporter.end();
        notice('The daemon went away; waiting for it to come back and resume the import…');
      }
      if (Date.now() - lostAt > reconnectSeconds * 1000) {
        throw new AirgapError('AG_DAEMON_DOWN', `lost the daemon while following import ${id}`, { hint: "start the daemon again; it resumes the import. 'airgap status' shows it" });
      }
      if (ctx.signal?.aborted) throw err;
      await sleep(500);
    }
  }
  reporter.end();
  return final;
}

/** The closing lines of `airgap import`; the release's names are shown printable. */
function importSummary(r: ImportResult): string {
  const release = printable(`${r.name} ${r.version}`);
  if (r.status === 'unchanged') return `Setup Completed: ${release} is already on the box; nothing was pushed (${formatDuration(r.seconds)})`;
  const previous = printable(r.previousVersion ?? '');
  const what = r.action === 'upgrade' ? `upgraded from ${previous}` : r.action === 'downgrade' ? `downgraded from ${previous}` : r.action === 'repair' ? 'repaired' : 'installed';
  return [
    `Setup Completed: ${release} ${what} in ${formatDuration(r.seconds)}${r.resumed ? ' (resumed after a daemon restart)' : ''}`,
    `  ${r.images} images, ${r.charts} charts, ${r.packs} packs, ${r.files} files`,
    `  ${r.blobsPushed} blobs pushed (${formatBytes(r.bytesPushed)}), ${r.blobsMounted} mounted, ${r.blobsSkipped} already there`,
  ].join('\n');
}

export function importCommands(host: Omit<Host, 'env'>): Command[] {
  const stateDirOf = (flag: string | undefined, ctx: CliContext) => resolveStateDir(flag, { ...host, env: ctx.env });

  const importCommand = defineCommand({
    name: 'import',
    summary: 'import a .bin into the appliance (images, charts, packs, files)',
    usage: 'airgap import FILE.bin [--json] [--allow-downgrade] [--state-dir DIR]\n       airgap import --cancel ID [--json] [--state-dir DIR]',
    description: `Hands FILE.bin to the daemon, which checks it (header, signature against
<state-dir>/trusted-keys/*.pub, TOC, entry rules, version, free space) and pushes
what is new: blobs straight from the file into the registries, then manifests,
files into /repo/<version>/, and tags last. Follows the progress until done.

Re-importing an installed release changes nothing; a newer release is an upgrade
that pushes only what changed; an older one is refused unless --allow-downgrade.

--cancel ID stops a queued or running import (its number is printed when it starts,
and 'airgap status' lists it); the release that was current stays current.`,
    args: { min: 0, max: 1 },
    options: {
      ...jsonOption('print one JSON document at the end, and no progress'),
      'allow-downgrade': { type: 'boolean', description: 'accept a release older than the current one' },
      cancel: { type: 'string', value: 'ID', description: 'cancel the queued or running import ID instead of starting one' },
      quiet: { type: 'boolean', short: 'q', description: 'no progress, no waiting notices' },
      ...stateDirOption(),
    },
    environment: [
      ...stateDirEnvironment,
      { name: 'PWD', description: 'the folder a relative FILE.bin is taken from; the shell sets it', default: 'the working directory' },
    ],
    exitCodes: [
      [EXIT.ok, 'imported, or already on the box (unchanged)'],
      [EXIT.failed, 'refused or failed (the message says why)'],
      [EXIT.usage, 'bad usage'],
      [EXIT.interrupted, "interrupted; the import goes on in the daemon ('airgap status' shows it)"],
    ],
    async run({ values, positionals }, ctx) {
      const stateDir = stateDirOf(values['state-dir'], ctx);
      if (values.cancel !== undefined) {
        if (positionals.length) throw new UsageError('give either FILE.bin or --cancel ID, not both', { hint: 'airgap import --cancel ID' });
        if (!/^[1-9]\d*$/.test(values.cancel)) throw new UsageError(`--cancel takes an import number, not '${printable(values.cancel)}'`, { hint: "'airgap status' lists the imports in progress" });
        const outcome = await callAdmin<{ import: ImportRow; cancelled: boolean }>(stateDir, 'POST', `/v1/imports/${values.cancel}/cancel`, {});
        const row = outcome.import;
        if (values.json) print(ctx.stdout, JSON.stringify(outcome, null, 2));
        else if (outcome.cancelled) print(ctx.stderr, `Cancelled import ${row.id} (${printable(row.file)}); the current release is unchanged.`);
        else print(ctx.stderr, `Import ${row.id} had already ended: ${row.state}.`);
        return EXIT.ok;
      }
      if (positionals.length === 0) throw new UsageError('missing argument', { hint: `usage: airgap import FILE.bin [--json] [--allow-downgrade] [--state-dir DIR]` });
      const file = userPath(positionals[0]!, ctx, host.cwd);
      const quiet = values.quiet === true || values.json === true;
      const output = { progress: !quiet, notices: values.quiet !== true };
      const queued = await callAdmin<{ import: ImportRow; queuePosition: number }>(stateDir, 'POST', '/v1/imports', { file, allowDowngrade: values['allow-downgrade'] === true }, {
        onWait: (m) => print(ctx.stderr, m),
      });
      if (!quiet) print(ctx.stderr, `Import ${queued.import.id}: ${printable(file)}`);
      const row = await followImport(stateDir, queued.import.id, ctx, output);
      if (row.state === 'failed') {
        const e = row.error ?? { code: 'AG_IMPORT_FAILED', message: 'the import failed' };
        throw new AirgapError(asErrorCode(e.code, 'AG_IMPORT_FAILED'), e.message, e.hint ? { hint: e.hint } : {});
      }
      if ((row.state !== 'imported' && row.state !== 'unchanged') || !row.result) {
        throw new AirgapError('AG_IMPORT_FAILED', `import ${row.id} ended in state ${row.state} without a result`, { hint: "see 'airgap status' and the daemon log" });
      }
      const result = row.result as ImportResult;
      print(ctx.stdout, values.json ? JSON.stringify(result, null, 2) : importSummary(result));
      return EXIT.ok;
    },
  });

  const releasesCommand = defineCommand({
    name: 'releases',
    summary: 'list the releases on the box',
    usage: `airgap releases [--json] [--state-dir DIR]
       airgap releases delete VERSION [--json]     # never the current release; then garbage collection`,
    description: `Lists the releases imported into the appliance, newest first; * marks the
current one. disk is what a release holds on the box (its blobs and files), frees what
deleting it gives back (what no other release holds). A release restored from a
backup without its data says "needs re-import": import its .bin again.

releases delete VERSION removes that release: its manifests (those no kept release
names; shared blobs and manifests stay), the tags that pointed at them (a tag a kept
release also carries points at that release again), its files under /repo/VERSION/
and its records; releases.json and the chart index are written again. Then garbage
collection gives the disk back (airgap gc). Imports wait meanwhile. A daemon stopped
half-way finishes the delete when it starts again.`,
    args: { min: 0, max: 2 },
    options: { ...jsonOption(), ...stateDirOption() },
    environment: stateDirEnvironment,
    async run({ values, positionals }, ctx) {
      if (positionals.length) {
        if (positionals[0] !== 'delete' || positionals.length !== 2) throw new UsageError('airgap releases takes no argument here', { hint: 'airgap releases delete VERSION' });
        const version = positionals[1]!;
        const stateDir = stateDirOf(values['state-dir'], ctx);
        // Checked here first, so that a wrong version is a usage error (exit 2); the daemon checks again.
        const known = await callAdmin<{ current: string | null; releases: Array<{ version: string }> }>(stateDir, 'GET', '/v1/releases?files=false');
        if (known.current === version) throw new UsageError(`${version} is the current release; it is not deleted`, { hint: 'import a newer release first, or delete another one' });
        if (!known.releases.some((x) => x.version === version)) throw new UsageError(`there is no release ${version} on the box`, { hint: `releases here: ${known.releases.map((x) => x.version).join(', ') || 'none'}` });
        if (!values.json) print(ctx.stderr, `Deleting release ${printable(version)}, then collecting garbage (imports wait; each registry stops for its turn)`);
        const r = await callAdmin<{ version: string; manifestsDeleted: number; tagsRestored: string[]; filesRemoved: boolean; gc: { bytesReclaimed: number; seconds: number } }>(
          stateDir, 'POST', `/v1/releases/${encodeURIComponent(version)}/delete`, { actor: 'cli' },
        );
        print(ctx.stdout, values.json ? JSON.stringify(r, null, 2) : `Deleted release ${printable(r.version)}: ${r.manifestsDeleted} manifests${r.tagsRestored.length ? `, ${r.tagsRestored.length} tags pointed back at a kept release` : ''}${r.filesRemoved ? ', its files' : ''}; garbage collection gave back ${formatBytes(r.gc.bytesReclaimed)} in ${formatDuration(r.gc.seconds)}`);
        return EXIT.ok;
      }
      // The table counts files: it asks for the counts, not for every file of every release.
      const doc = await callAdmin<{ current: string | null; releases: Array<{ version: string; name: string; created: string; importedAt: string; current: boolean; needsReimport?: boolean; diskBytes?: number; exclusiveBytes?: number; files?: unknown[]; fileCount?: number; images: unknown[]; charts: unknown[]; packs: unknown[] }> }>(
        stateDirOf(values['state-dir'], ctx), 'GET', values.json ? '/v1/releases' : '/v1/releases?files=false',
      );
      if (values.json) return (print(ctx.stdout, JSON.stringify(doc, null, 2)), EXIT.ok);
      if (!doc.releases.length) return (print(ctx.stdout, "No releases yet: import a .bin with 'airgap import FILE.bin'."), EXIT.ok);
      print(ctx.stdout, table([
        ['', 'version', 'name', 'created', 'imported', 'images', 'charts', 'packs', 'files', 'disk', 'frees', ''],
        ...doc.releases.map((r) => [
          r.current ? '*' : '', r.version, r.name, r.created.slice(0, 10), r.importedAt.slice(0, 19).replace('T', ' '),
          String(r.images.length), String(r.charts.length), String(r.packs.length), String(r.fileCount ?? r.files?.length ?? 0),
          formatBytes(r.diskBytes ?? 0), r.current ? '-' : formatBytes(r.exclusiveBytes ?? 0), r.needsReimport ? 'needs re-import' : '',
        ]),
      ], ''));
      const missing = doc.releases.filter((r) => r.needsReimport);
      if (missing.length) print(ctx.stderr, `airgap: ${missing.length} release(s) restored without their data: import ${missing.map((r) => printable(r.version)).join(', ')} again (airgap import FILE.bin)`);
      return EXIT.ok;
    },
  });

  const artifactCommand = (name: 'images' | 'packs', kinds: Array<ArtifactRow['kind']>, summary: string, description: string) => defineCommand({
    name,
    summary,
    usage: `airgap ${name} [--json] [--state-dir DIR]${name === 'images' ? `\n       ${DISCOVER_USAGE}     # on the connected side too` : ''}`,
    description: name === 'images' ? `${description}\n\n${DISCOVER_DESCRIPTION}` : description,
    args: { min: 0, max: name === 'images' ? 2 : 0 },
    options: { ...jsonOption(), ...stateDirOption(), ...(name === 'images' ? { values: { type: 'string' as const, value: 'FILE', description: "images discover: a values file for the chart (over the chart's values.yaml)" } } : {}) },
    environment: stateDirEnvironment,
    async run({ values, positionals }, ctx) {
      if (positionals.length) {
        if (positionals[0] !== 'discover' || positionals.length !== 2) throw new UsageError(`airgap ${name} takes no argument here`, { hint: `${DISCOVER_USAGE}` });
        return runDiscover(positionals[1]!, (values as { values?: string }).values, values.json === true, ctx);
      }
      const stateDir = stateDirOf(values['state-dir'], ctx);
      const rows: ArtifactRow[] = [];
      for (const kind of kinds) rows.push(...(await callAdmin<{ artifacts: ArtifactRow[] }>(stateDir, 'GET', `/v1/artifacts?kind=${kind}`)).artifacts);
      // One line per target and digest, with the releases that carry it.
      const merged = new Map<string, ArtifactRow & { releases: string[] }>();
      for (const r of rows) {
        const key = `${r.kind} ${r.target} ${r.digest}`;
        const m = merged.get(key) ?? { ...r, releases: [] };
        m.releases.push(r.releaseVersion);
        merged.set(key, m);
      }
      const list = [...merged.values()].map(({ releaseVersion: _r, ...rest }) => rest);
      if (values.json) return (print(ctx.stdout, JSON.stringify({ [name]: list }, null, 2)), EXIT.ok);
      if (!list.length) return (print(ctx.stdout, `No ${name} yet.`), EXIT.ok);
      print(ctx.stdout, table([
        ['kind', 'target', 'digest', 'size', 'releases'],
        ...list.map((a) => [a.kind, a.target, a.digest, formatBytes(a.size), a.releases.join(',')]),
      ], ''));
      return EXIT.ok;
    },
  });

  const gcCommand = defineCommand({
    name: 'gc',
    summary: 'give registry disk back: run garbage collection in both registries',
    usage: 'airgap gc [--json] [--state-dir DIR]',
    description: `Runs CNCF distribution's garbage-collect on each registry's storage, one registry
after the other, each stopped for its run (pulls from it fail for that time; the other
serves). Imports wait meanwhile. Blobs no manifest names go; untagged manifests stay.
Prints the bytes given back. airgap releases delete runs it too.`,
    args: { min: 0, max: 0 },
    options: { ...jsonOption(), ...stateDirOption() },
    environment: stateDirEnvironment,
    async run({ values }, ctx) {
      const r = await callAdmin<{ registries: Array<{ name: string; bytesReclaimed: number; seconds: number }>; bytesReclaimed: number; seconds: number }>(stateDirOf(values['state-dir'], ctx), 'POST', '/v1/gc', { actor: 'cli' });
      print(ctx.stdout, values.json ? JSON.stringify(r, null, 2) : [`Garbage collection gave back ${formatBytes(r.bytesReclaimed)} in ${formatDuration(r.seconds)}`, table(r.registries.map((g) => [g.name, formatBytes(g.bytesReclaimed), formatDuration(g.seconds)]))].join('\n'));
      return EXIT.ok;
    },
  });

  const pruneCommand = defineCommand({
    name: 'prune',
    summary: 'keep the current release and the N-1 newest others; delete the rest, then collect garbage',
    usage: 'airgap prune --keep N [--dry-run] [--json] [--state-dir DIR]',
    description: `Deletes every release but the current one and the N-1 newest others (newest by
version), each as 'airgap releases delete' does, then runs garbage collection once.
--dry-run says which it would delete and changes nothing.`,
    args: { min: 0, max: 0 },
    options: {
      keep: { type: 'string', value: 'N', description: 'how many releases to keep, the current one included (at least 1)' },
      'dry-run': { type: 'boolean', description: 'say what would be deleted; delete nothing' },
      ...jsonOption(),
      ...stateDirOption(),
    },
    environment: stateDirEnvironment,
    async run({ values }, ctx) {
      const keep = Number(values.keep);
      if (values.keep === undefined || !Number.isInteger(keep) || keep < 1) throw new UsageError(`--keep must be a whole number of at least 1${values.keep === undefined ? '' : `, not '${values.keep}'`}`, { hint: 'for example: airgap prune --keep 3' });
      const dryRun = values['dry-run'] === true;
      const r = await callAdmin<{ kept: string[]; deleted: string[]; gc: { bytesReclaimed: number; seconds: number } | null }>(stateDirOf(values['state-dir'], ctx), 'POST', '/v1/prune', { keep, dryRun, actor: 'cli' });
      if (values.json) return (print(ctx.stdout, JSON.stringify(r, null, 2)), EXIT.ok);
      const what = r.deleted.length ? r.deleted.join(', ') : 'nothing';
      print(ctx.stdout, dryRun
        ? `Would delete: ${what}; would keep: ${r.kept.join(', ')}`
        : `Deleted: ${what}; kept: ${r.kept.join(', ')}${r.gc ? `; garbage collection gave back ${formatBytes(r.gc.bytesReclaimed)} in ${formatDuration(r.gc.seconds)}` : ''}`);
      return EXIT.ok;
    },
  });

  return [
    importCommand,
    releasesCommand,
    artifactCommand('images', ['image', 'chart'], 'list images and charts on the box (image registry)', `Lists the images and Helm charts in the image registry: one line per target
and digest, with the releases that carry it.`),
    artifactCommand('packs', ['pack'], 'list packs on the box (pack registry)', `Lists the packs in the pack registry: one line per target and digest, with the
releases that carry it.`),
    diffCommand(stateDirOf),
    nodeConfigCommand(stateDirOf, host.cwd),
    eventsCommand(stateDirOf),
    pruneCommand,
    gcCommand,
  ];
}
