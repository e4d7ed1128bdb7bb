/**
 * The status document (`airgap status`, GET /api/v1/status): the health of every part
 * of the appliance, read fresh on each call.
 */
import { stat, statfs } from 'node:fs/promises';
import { httpsUrl } from '../config/address.js';
import type { ServeConfig } from '../config/config.js';
import type { StateLayout } from '../config/state-layout.js';
import type { RegistryFleet, RegistryHealth } from '../registries/fleet.js';
import type { ServerCertificateInfo } from '../security/pki.js';
import { schemaVersion, type Db } from '../store/db.js';
import { unfinishedImports } from '../store/imports.js';
import { currentRelease, listReleases, releaseDiskUse } from '../store/releases.js';
import { readSettings } from '../config/config-file.js';
import { formatBytes } from '../../kit/text.js';
import { pruneList } from './maintenance.js';
import { publicAddress, repoAddress, type Identity } from './setup.js';

export interface ApplianceStatus {
  version: string;
  healthy: boolean;
  problems: string[];
  /** What needs the admin soon but does not make the box unhealthy (a registry volume above 80 %, releases to import again). */
  warnings: string[];
  /** config.yaml's retention: keep N releases after each import, or null (every release stays). */
  retention: { keep: number | null };
  daemon: { pid: number; startedAt: string; uptimeSeconds: number; stateDir: string; address: string };
  repoAddress: string | null;
  repository: { url: string };
  console: { url: string };
  certificate: ServerCertificateInfo;
  registries: RegistryHealth[];
  database: { path: string; schemaVersion: number; sizeBytes: number };
  disk: { path: string; totalBytes: number; freeBytes: number; usedBytes: number };
  /** The current release, and how many are on the box. */
  release: { current: string | null; name: string | null; installed: number };
  /** Imports not finished yet (running first). */
  imports: Array<{ id: number; state: string; stage: string | null; file: string; version: string | null }>;
}

/** What the status document is read from. */
export interface StatusSources {
  config: ServeConfig;
  layout: StateLayout;
  db: Db;
  fleet: RegistryFleet;
  /** The airgap release. */
  version: string;
  startedAt: Date;
  /** Its `certificate` is the server certificate now. */
  identity: Identity;
}

/** Days before the server certificate's expiry from which status warns. */
export const CERTIFICATE_WARNING_DAYS = 30;

/** Used share of the registry volume above which status warns. */
export const FULL_WARNING = 0.8;

/**
 * The warning for a registry volume above FULL_WARNING, with the command that helps:
 * `airgap prune --keep N` for the N that frees what is needed to come back under the
 * mark (or the most there is), with the bytes it frees; a box with one release needs a
 * bigger disk.
 */
export function fullVolumeWarning(disk: { totalBytes: number; usedBytes: number }, releases: Array<{ version: string; current: boolean; importedAt: string }>, use: Map<string, { exclusiveBytes: number }>): string {
  const head = `the registry volume is ${Math.round((disk.usedBytes / disk.totalBytes) * 100)}% full (${formatBytes(disk.usedBytes)} of ${formatBytes(disk.totalBytes)})`;
  if (releases.length < 2) return `${head}: grow the disk, or run 'airgap gc' to give back what deleted releases left`;
  const needed = disk.usedBytes - disk.totalBytes * FULL_WARNING;
  let best: { keep: number; frees: number } | undefined;
  for (let keep = releases.length - 1; keep >= 1; keep--) {
    const frees = pruneList(releases, keep).deleted.reduce((n, v) => n + (use.get(v)?.exclusiveBytes ?? 0), 0);
    best = { keep, frees };
    if (frees >= needed) break;
  }
  return `${head}: 'airgap prune --keep ${best!.keep}' gives back about ${formatBytes(best!.frees)} (see first: 'airgap prune --keep ${best!.keep} --dry-run'); or grow the disk`;
}

/**
 * Health of every part: registries (answering `/v2/`), the registry volume (below 5 %
 * free is a problem), database, release, unfinished imports. Never throws for an
 * unhealthy part: it is reported in `problems`. Throws only when the state dir cannot be
 * read (statfs, stat of the database).
 */
export async function readStatus(sources: StatusSources): Promise<ApplianceStatus> {
  const { config, layout, db } = sources;
  const repo = repoAddress(db);
  const address = publicAddress(config, repo);
  const { registries, problems } = await sources.fleet.health(address);
  const fs = await statfs(layout.registriesDir);
  const disk = {
    path: layout.registriesDir,
    totalBytes: fs.blocks * fs.bsize,
    freeBytes: fs.bavail * fs.bsize,
    usedBytes: (fs.blocks - fs.bfree) * fs.bsize,
  };
  if (disk.totalBytes > 0 && disk.freeBytes / disk.totalBytes < 0.05) problems.push(`the registry volume has only ${Math.round((disk.freeBytes / disk.totalBytes) * 100)}% free`);
  const warnings: string[] = [];
  const releases = listReleases(db);
  if (disk.totalBytes > 0 && disk.usedBytes / disk.totalBytes > FULL_WARNING) warnings.push(fullVolumeWarning(disk, releases, releaseDiskUse(db)));
  const certificate = sources.identity.certificate;
  const daysLeft = (Date.parse(certificate.notAfter) - Date.now()) / 86_400_000;
  const renewWith = certificate.source === 'site'
    ? `renew it at the site's CA and install it: airgap setup ${repo ?? '<repo-ip>'} --cert FILE --key FILE --ca FILE`
    : `airgap setup ${repo ?? '<repo-ip>'} --renew (a start within 30 days of it also renews it)`;
  if (daysLeft <= 0) problems.push(`the ${certificate.source === 'site' ? 'site' : 'server'} certificate expired on ${certificate.notAfter.slice(0, 10)}: ${renewWith}`);
  else if (daysLeft <= CERTIFICATE_WARNING_DAYS) warnings.push(`the ${certificate.source === 'site' ? 'site' : 'server'} certificate expires on ${certificate.notAfter.slice(0, 10)}, in ${Math.floor(daysLeft)} days: ${renewWith}`);
  const restored = releases.filter((r) => r.needsReimport);
  if (restored.length) warnings.push(`${restored.length} release(s) restored from a backup without their data (${restored.map((r) => r.version).join(', ')}): import their .bin files again ('airgap import FILE.bin')`);
  let retention: ApplianceStatus['retention'] = { keep: null };
  try {
    retention = (await readSettings(layout.configFile)).retention;
  } catch (err) {
    problems.push((err as Error).message);
  }
  const now = Date.now();
  const current = currentRelease(db);
  return {
    version: sources.version,
    healthy: problems.length === 0,
    problems,
    warnings,
    retention,
    daemon: {
      pid: process.pid,
      startedAt: sources.startedAt.toISOString(),
      uptimeSeconds: Math.round((now - sources.startedAt.getTime()) / 1000),
      stateDir: layout.root,
      address: config.address,
    },
    repoAddress: repo,
    repository: { url: httpsUrl(address, config.httpsPort) },
    console: { url: httpsUrl(address, config.httpsPort) },
    certificate: sources.identity.certificate,
    registries,
    database: { path: layout.database, schemaVersion: schemaVersion(db), sizeBytes: (await stat(layout.database)).size },
    disk,
    release: { current: current?.version ?? null, name: current?.name ?? null, installed: releases.length },
    imports: unfinishedImports(db)
      .sort((a, b) => (a.state === b.state ? a.id - b.id : a.state === 'running' ? -1 : 1))
      .map((i) => ({ id: i.id, state: i.state, stage: i.stage, file: i.file, version: i.version })),
  };
}
