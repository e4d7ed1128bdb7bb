/**
 * Import stage "preflight": version rules against the releases on the box, and free
 * space on the registry and repository volumes.
 */
import { statfs } from 'node:fs/promises';
import semver from 'semver';
import { AirgapError } from '../../kit/errors.js';
import { formatBytes } from '../../kit/text.js';
import type { OpenedPayload } from '../../format/reader.js';
import type { Db } from '../store/db.js';
import { currentRelease, getRelease, type ReleaseRow } from '../store/releases.js';

export class ImportRefused extends AirgapError {}

/** What importing this file means for the box. */
export type VersionAction = 'install' | 'upgrade' | 'downgrade' | 'same';

export interface VersionDecision {
  action: VersionAction;
  current: ReleaseRow | undefined;
  /** The release of the same version already on the box (action 'same'). */
  existing: ReleaseRow | undefined;
}

/**
 * Applies the version rules. A release already on the box is known by its signed TOC
 * digest: the current one again is 'same' (a no-op, or a repair of missing pieces); the
 * same version with other content is refused (AG_VERSION_CONFLICT). Otherwise (a new
 * version, or an installed one that is not current) the version order decides: newer than
 * the current release upgrades, older is refused (AG_DOWNGRADE) unless `allowDowngrade`.
 * Whatever is imported but 'same' becomes the current release.
 */
export function decideVersion(db: Db, opened: OpenedPayload, allowDowngrade: boolean): VersionDecision {
  const { version } = opened.toc;
  const current = currentRelease(db);
  const existing = getRelease(db, version);
  if (existing && existing.tocSha256 !== opened.header.tocSha256) {
    throw new ImportRefused('AG_VERSION_CONFLICT', `release ${version} is already on the box with different content (TOC ${existing.tocSha256.slice(0, 12)}…, this file ${opened.header.tocSha256.slice(0, 12)}…)`, {
      hint: 'a release version names one content; build the changed bundle with a new version',
    });
  }
  // The current release again, or one restored without its data: a repair, the current release stays.
  if (existing && (existing.version === current?.version || existing.needsReimport)) return { action: 'same', current, existing };
  if (!current) return { action: 'install', current, existing };
  if (semver.gt(version, current.version)) return { action: 'upgrade', current, existing };
  if (!allowDowngrade) {
    throw new ImportRefused('AG_DOWNGRADE', `${version} is older than the current release ${current.version}`, {
      hint: 'import a newer release, or pass --allow-downgrade to go back on purpose',
    });
  }
  return { action: 'downgrade', current, existing };
}

/** Space kept free on a volume after an import, bytes. */
export const SPACE_RESERVE = 64 * 1024 * 1024;

/**
 * Checks that each volume can take what will be written to it (`needs`: folder →
 * bytes; folders on one file system are added up). Throws ImportRefused AG_NO_SPACE.
 */
export async function checkFreeSpace(needs: Array<{ dir: string; bytes: number; what: string }>): Promise<void> {
  const byDevice = new Map<string, { free: number; bytes: number; what: string[]; dir: string }>();
  for (const need of needs) {
    const fs = await statfs(need.dir);
    const key = `${fs.type}:${fs.blocks}:${fs.bfree}`; // same file system, same counters
    const entry = byDevice.get(key) ?? { free: fs.bavail * fs.bsize, bytes: 0, what: [], dir: need.dir };
    entry.bytes += need.bytes;
    entry.what.push(need.what);
    byDevice.set(key, entry);
  }
  for (const v of byDevice.values()) {
    if (v.bytes + SPACE_RESERVE > v.free) {
      throw new ImportRefused('AG_NO_SPACE', `not enough free space for the ${v.what.join(' and ')}: ${formatBytes(v.bytes)} needed, ${formatBytes(v.free)} free on the volume of ${v.dir}`, {
        hint: 'free space on that volume (or grow the disk) and import again; nothing was changed',
      });
    }
  }
}
