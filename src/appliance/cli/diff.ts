/**
 * `airgap diff FROM TO [--json]`: what an upgrade brings, by digest. FROM is a release on
 * the box; TO is another release on the box or a .bin file (its signed TOC is read, no
 * entry). For images, charts, packs and files: added, removed, changed (old and new
 * digest), and how many are unchanged.
 */
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { UsageError } from '../../kit/errors.js';
import { defineCommand, EXIT, print, type CliContext } from '../../kit/cli.js';
import { formatBytes, printable, table } from '../../kit/text.js';
import { openPayload } from '../../format/reader.js';
import { callAdmin } from './admin-client.js';
import { jsonOption, stateDirEnvironment, stateDirOption } from './options.js';
import type { ArtifactRow } from '../store/releases.js';
import { DIFF_KINDS, diffReleases, sideOf, type DiffItem, type DiffKind, type ReleaseDiff } from '../daemon/release-diff.js';

export { DIFF_KINDS, diffItems, diffReleases, type DiffItem, type DiffKind, type KindDiff, type ReleaseDiff } from '../daemon/release-diff.js';

/** A release on the box, by kind (admin API GET /v1/artifacts?version=). Throws UsageError when there is none. */
async function releaseSide(stateDir: string, version: string): Promise<Record<DiffKind, DiffItem[]>> {
  const { releases } = await callAdmin<{ releases: Array<{ version: string }> }>(stateDir, 'GET', '/v1/releases?files=false');
  if (!releases.some((r) => r.version === version)) {
    throw new UsageError(`there is no release ${version} on the box`, { hint: `releases here: ${releases.map((r) => r.version).join(', ') || 'none'}; TO may also be a .bin file` });
  }
  const { artifacts } = await callAdmin<{ artifacts: ArtifactRow[] }>(stateDir, 'GET', `/v1/artifacts?version=${encodeURIComponent(version)}`);
  return sideOf(artifacts);
}

/** A .bin's side: its TOC (checked against its digest; entries are not read). Throws PayloadError. */
async function binSide(file: string): Promise<{ version: string; side: Record<DiffKind, DiffItem[]> }> {
  const opened = await openPayload(file);
  try {
    const { toc } = opened;
    return {
      version: toc.version,
      side: {
        images: toc.images.map((i) => ({ target: i.target, digest: i.digest, size: i.size })),
        charts: toc.charts.map((c) => ({ target: c.target, digest: c.digest, size: c.size })),
        packs: toc.packs.map((p) => ({ target: p.target, digest: p.digest, size: p.size })),
        files: toc.files.map((f) => ({ target: f.target, digest: `sha256:${f.sha256}`, size: f.size })),
      },
    };
  } finally {
    await opened.close();
  }
}

/** The diff for people: a line per kind, then each change (files: the first 50). */
function diffText(d: ReleaseDiff): string {
  const lines = [printable(`${d.from} -> ${d.to}: ${formatBytes(d.bytesAddedOrChanged)} added or changed`)];
  for (const kind of DIFF_KINDS) {
    const k = d[kind];
    lines.push(`${kind}: ${k.added.length} added, ${k.removed.length} removed, ${k.changed.length} changed, ${k.unchanged} unchanged`);
    const rows: string[][] = [
      ...k.added.map((i) => ['+', printable(i.target), i.digest]),
      ...k.removed.map((i) => ['-', printable(i.target), i.digest]),
      ...k.changed.map((i) => ['~', printable(i.target), `${i.from} -> ${i.to}`]),
    ];
    const shown = kind === 'files' ? rows.slice(0, 50) : rows;
    if (shown.length) lines.push(table(shown));
    if (shown.length < rows.length) lines.push(`  … and ${rows.length - shown.length} more (--json lists all)`);
  }
  return lines.join('\n');
}

/** The diff verb; `stateDirOf` resolves --state-dir as the other daemon verbs do. */
export function diffCommand(stateDirOf: (flag: string | undefined, ctx: CliContext) => string) {
  return defineCommand({
    name: 'diff',
    summary: 'what changes between two releases (or a release and a .bin), by digest',
    usage: 'airgap diff FROM TO [--json] [--state-dir DIR]',
    description: `FROM is a release on the box; TO is another release on the box or a .bin file (its
TOC is read, checked against its digest; nothing is imported). For images, charts,
packs and files: what TO adds, removes and changes (old and new digest), and how many
stay the same: what an upgrade will bring, before you run it.`,
    args: { min: 2, max: 2 },
    options: { ...jsonOption(), ...stateDirOption() },
    environment: stateDirEnvironment,
    async run({ values, positionals }, ctx) {
      const [from, to] = positionals as [string, string];
      const stateDir = stateDirOf(values['state-dir'], ctx);
      const isFile = to.endsWith('.bin') || (await stat(resolve(ctx.env.PWD ?? process.cwd(), to)).then((s) => s.isFile(), () => false));
      const before = await releaseSide(stateDir, from);
      const after = isFile ? await binSide(resolve(ctx.env.PWD ?? process.cwd(), to)) : { version: to, side: await releaseSide(stateDir, to) };
      const diff = diffReleases(from, isFile ? `${after.version} (${to})` : to, before, after.side);
      print(ctx.stdout, values.json ? JSON.stringify(diff, null, 2) : diffText(diff));
      return EXIT.ok;
    },
  });
}
