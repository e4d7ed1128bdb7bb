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

/** One artifact of a side: its target, digest and size in bytes. */
export interface DiffItem {
  target: string;
  digest: string;
  size: number;
}

export const DIFF_KINDS = ['images', 'charts', 'packs', 'files'] as const;
export type DiffKind = (typeof DIFF_KINDS)[number];

/** What changed for one kind. */
export interface KindDiff {
  added: DiffItem[];
  removed: DiffItem[];
  changed: Array<{ target: string; from: string; to: string; size: number }>;
  unchanged: number;
}

/** `airgap diff --json`. */
export interface ReleaseDiff {
  from: string;
  to: string;
  images: KindDiff;
  charts: KindDiff;
  packs: KindDiff;
  files: KindDiff;
  /** Bytes of what is added or changed: about what the upgrade writes (shared blobs counted whole). */
  bytesAddedOrChanged: number;
}

/** Compares two lists by target: added, removed, changed (another digest), unchanged. Sorted by target. */
export function diffItems(from: readonly DiffItem[], to: readonly DiffItem[]): KindDiff {
  const before = new Map(from.map((i) => [i.target, i]));
  const after = new Map(to.map((i) => [i.target, i]));
  const out: KindDiff = { added: [], removed: [], changed: [], unchanged: 0 };
  for (const [target, item] of after) {
    const old = before.get(target);
    if (!old) out.added.push(item);
    else if (old.digest !== item.digest) out.changed.push({ target, from: old.digest, to: item.digest, size: item.size });
    else out.unchanged++;
  }
  for (const [target, item] of before) if (!after.has(target)) out.removed.push(item);
  const byTarget = (a: { target: string }, b: { target: string }) => (a.target < b.target ? -1 : a.target > b.target ? 1 : 0);
  out.added.sort(byTarget);
  out.removed.sort(byTarget);
  out.changed.sort(byTarget);
  return out;
}

/** Both sides split by kind, compared. */
export function diffReleases(from: string, to: string, a: Record<DiffKind, DiffItem[]>, b: Record<DiffKind, DiffItem[]>): ReleaseDiff {
  const kinds = Object.fromEntries(DIFF_KINDS.map((k) => [k, diffItems(a[k], b[k])])) as Record<DiffKind, KindDiff>;
  const bytesAddedOrChanged = DIFF_KINDS.reduce((n, k) => n + kinds[k].added.reduce((m, i) => m + i.size, 0) + kinds[k].changed.reduce((m, i) => m + i.size, 0), 0);
  return { from, to, ...kinds, bytesAddedOrChanged };
}

const KIND_OF_ROW: Record<ArtifactRow['kind'], DiffKind> = { image: 'images', chart: 'charts', pack: 'packs', file: 'files' };

/** A release on the box, by kind (admin API GET /v1/artifacts?version=). Throws UsageError when there is none. */
async function releaseSide(stateDir: string, version: string): Promise<Record<DiffKind, DiffItem[]>> {
  const { releases } = await callAdmin<{ releases: Array<{ version: string }> }>(stateDir, 'GET', '/v1/releases?files=false');
  if (!releases.some((r) => r.version === version)) {
    throw new UsageError(`there is no release ${version} on the box`, { hint: `releases here: ${releases.map((r) => r.version).join(', ') || 'none'}; TO may also be a .bin file` });
  }
  const { artifacts } = await callAdmin<{ artifacts: ArtifactRow[] }>(stateDir, 'GET', `/v1/artifacts?version=${encodeURIComponent(version)}`);
  const side: Record<DiffKind, DiffItem[]> = { images: [], charts: [], packs: [], files: [] };
  for (const a of artifacts) side[KIND_OF_ROW[a.kind]].push({ target: a.target, digest: a.digest, size: a.size });
  return side;
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
