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
import { currentRelease, listReleases } from '../store/releases.js';
import { publicAddress, repoAddress, type Identity } from './setup.js';

export interface ApplianceStatus {
  version: string;
  healthy: boolean;
  problems: string[];
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
  const now = Date.now();
  const current = currentRelease(db);
  return {
    version: sources.version,
    healthy: problems.length === 0,
    problems,
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
    release: { current: current?.version ?? null, name: current?.name ?? null, installed: listReleases(db).length },
    imports: unfinishedImports(db)
      .sort((a, b) => (a.state === b.state ? a.id - b.id : a.state === 'running' ? -1 : 1))
      .map((i) => ({ id: i.id, state: i.state, stage: i.stage, file: i.file, version: i.version })),
  };
}
