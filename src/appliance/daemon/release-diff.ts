/**
 * What changes between two releases, by digest (`airgap diff`, the console's release
 * comparison): for images, charts, packs and files, by target: added, removed, changed
 * (old and new digest), and how many are unchanged. Pure: the callers read the sides.
 */
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

/** A release's artifact rows as a diff side, by kind. */
export function sideOf(artifacts: Iterable<Pick<ArtifactRow, 'kind' | 'target' | 'digest' | 'size'>>): Record<DiffKind, DiffItem[]> {
  const side: Record<DiffKind, DiffItem[]> = { images: [], charts: [], packs: [], files: [] };
  for (const a of artifacts) side[KIND_OF_ROW[a.kind]].push({ target: a.target, digest: a.digest, size: a.size });
  return side;
}

