/**
 * Deleting a release and giving the disk back (issue 16): `airgap releases delete VERSION`
 * and `airgap gc`. Both run with no import running (Importer.exclusive).
 *
 * A delete first points every tag a kept release also carries at that release's digest
 * (the current release's first), then removes from the registries the manifests only the
 * deleted release names (its top manifests and the children of its indexes), not those a
 * kept release names in the same repository; CNCF distribution removes the tags that
 * pointed at them. Then its files go, then its rows, then releases.json and the chart
 * index are written again, then garbage collection runs. Every step can run twice: the
 * version is recorded as pending first, and a daemon that stops half-way finishes it at
 * its next start (without GC), unless it has become the current release meanwhile.
 */
import { randomBytes } from 'node:crypto';
import { readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import semver from 'semver';
import { AirgapError, UsageError } from '../../kit/errors.js';
import type { RegistryClient } from '../../oci/client.js';
import { isIndexMediaType, parseManifest } from '../../oci/manifest.js';
import { REGISTRY_NAMES, type RegistryName, type StateLayout } from '../config/state-layout.js';
import type { Db } from '../store/db.js';
import { currentRelease, deleteReleaseRows, listArtifacts, listReleases, type ArtifactRow } from '../store/releases.js';
import { getSetting, setSetting } from '../store/settings.js';
import { writeReleasesJson } from '../import/commit.js';
import { writeChartIndex } from '../import/chart-repo.js';

/** The setting that records a delete in progress: its version. */
const PENDING_DELETE = 'maintenance.deleting';
/** Longest one registry's garbage collection may take. */
const GC_TIMEOUT_MS = 60 * 60 * 1000;

/** What maintenance works with (the appliance's parts). */
export interface MaintenanceContext {
  db: Db;
  layout: StateLayout;
  log: Logger;
  /** Clients of the bundled registries (push account), closed by the caller's end of use. */
  clients(): Record<RegistryName, RegistryClient>;
  garbageCollect(name: RegistryName, timeoutMs: number): Promise<{ bytesBefore: number; bytesAfter: number; seconds: number; repositoriesRemoved: number }>;
  /** Removes every upload session in the registries' storage (no import runs); returns how many. */
  removeUploads(): Promise<number>;
  event(actor: string, kind: string, message: string, data?: Record<string, unknown>): void;
}

/** `airgap gc --json`. */
export interface GcResult {
  registries: Array<{ name: RegistryName; bytesBefore: number; bytesAfter: number; bytesReclaimed: number; seconds: number; repositoriesRemoved: number }>;
  /** What failed imports left, removed before the registries' GC (collectLeftovers). */
  leftovers: Leftovers;
  bytesReclaimed: number;
  seconds: number;
}

/** Counts of what collectLeftovers removed. */
export interface Leftovers {
  /** Upload sessions (`_uploads/<id>/`) and empty link files in the registries' storage. */
  uploads: number;
  /** Staging folders of the file repository (`.<version>.partial-<id>`, `.deleting-…`). */
  stagingFolders: number;
  /** Manifests no release names (a failed import's): deleted, so GC takes their blobs. */
  manifests: number;
  /** Tags a failed import had moved off a kept release, pointed back at it first. */
  tagsRestored: number;
}

/** `airgap releases delete --json`. */
export interface DeleteResult {
  version: string;
  manifestsDeleted: number;
  /** Tags a kept release carries that were pointed back at its digest. */
  tagsRestored: string[];
  filesRemoved: boolean;
  gc: GcResult;
}

const registryOf = (a: Pick<ArtifactRow, 'kind'>): RegistryName => (a.kind === 'pack' ? 'packs' : 'images');
const repositoryOf = (target: string) => target.slice(0, target.lastIndexOf(':'));
const tagOf = (target: string) => target.slice(target.lastIndexOf(':') + 1);

/** Every manifest digest `digest` names in `repository`: itself and, for an index, its children. */
async function closure(client: RegistryClient, repository: string, digest: string): Promise<string[]> {
  const fetched = await client.getManifest(repository, digest).catch((err: unknown) => {
    // Only a 404 means "not there"; any other failure stops the delete (it stays pending).
    if (err instanceof AirgapError && err.code === 'AG_NOT_FOUND') return undefined;
    throw err;
  });
  if (!fetched) return [];
  const parsed = parseManifest(fetched.bytes, fetched.mediaType);
  if (parsed.kind !== 'index' || !isIndexMediaType(parsed.mediaType)) return [digest];
  const out = [digest];
  for (const child of parsed.children) out.push(...(await closure(client, repository, child.digest)));
  return out;
}

/**
 * Deletes release `version` (never the current one), then runs garbage collection.
 * Throws UsageError for the current release or one not on the box, RegistryError when a
 * registry fails (the delete stays pending and finishes at the next start or call).
 */
export async function deleteRelease(ctx: MaintenanceContext, version: string, actor: string): Promise<DeleteResult> {
  const releases = listReleases(ctx.db);
  if (!releases.some((r) => r.version === version) && getSetting(ctx.db, PENDING_DELETE) !== version) {
    throw new UsageError(`there is no release ${version} on the box`, { hint: `releases here: ${releases.map((r) => r.version).join(', ') || 'none'}` });
  }
  if (currentRelease(ctx.db)?.version === version) {
    throw new UsageError(`${version} is the current release; it is not deleted`, { hint: 'import a newer release first, or delete another one' });
  }
  // A delete a failure left pending is finished first: recording this one must not forget it.
  const pending = getSetting(ctx.db, PENDING_DELETE);
  if (pending && pending !== version) await finishDelete(ctx, pending, actor);
  setSetting(ctx.db, PENDING_DELETE, version);
  const removed = await finishDelete(ctx, version, actor);
  const gc = await garbageCollect(ctx, actor);
  return { ...removed, gc };
}

/** `airgap prune --json`. */
export interface PruneResult {
  keep: number;
  kept: string[];
  deleted: string[];
  dryRun: boolean;
  gc: GcResult | null;
}

/**
 * The releases `prune --keep N` deletes: all but the current one and the N-1 newest
 * others (by version, as semantic versions order; equal ones by import time).
 */
export function pruneList(releases: Array<{ version: string; current: boolean; importedAt: string }>, keep: number): { kept: string[]; deleted: string[] } {
  const others = releases.filter((r) => !r.current).sort((a, b) => {
    const [va, vb] = [semver.valid(a.version, { loose: true }), semver.valid(b.version, { loose: true })];
    return (va && vb ? semver.rcompare(va, vb) : 0) || b.importedAt.localeCompare(a.importedAt);
  });
  const current = releases.filter((r) => r.current).map((r) => r.version);
  const keptOthers = others.slice(0, Math.max(0, keep - current.length)).map((r) => r.version);
  return { kept: [...current, ...keptOthers], deleted: others.slice(keptOthers.length).map((r) => r.version) };
}

/**
 * Keeps the current release and the `keep`-1 newest others; deletes the rest (each as
 * releases delete does, pending first), then collects garbage once. With `dryRun` says
 * what it would delete and touches nothing. Throws UsageError for keep < 1.
 */
export async function prune(ctx: MaintenanceContext, keep: number, actor: string, dryRun: boolean): Promise<PruneResult> {
  if (!Number.isInteger(keep) || keep < 1) throw new UsageError(`--keep must be a whole number of at least 1, not ${keep}`);
  const { kept, deleted } = pruneList(listReleases(ctx.db).map((r) => ({ version: r.version, current: Boolean(r.current), importedAt: r.importedAt })), keep);
  if (dryRun || !deleted.length) return { keep, kept, deleted, dryRun, gc: null };
  for (const version of deleted) {
    setSetting(ctx.db, PENDING_DELETE, version);
    await finishDelete(ctx, version, actor);
  }
  return { keep, kept, deleted, dryRun, gc: await garbageCollect(ctx, actor) };
}

/**
 * Finishes a delete a stopped daemon left pending. Returns the version, or undefined when
 * there was none. No garbage collection here: an import the stop interrupted resumes
 * after this, and its blobs, pushed but not yet named by a manifest, must stay. The
 * next delete, prune or gc collects.
 */
export async function finishPendingDelete(ctx: MaintenanceContext): Promise<string | undefined> {
  const version = getSetting(ctx.db, PENDING_DELETE);
  if (!version) return undefined;
  ctx.log.warn({ version }, 'finishing the delete of a release that a stop interrupted');
  await finishDelete(ctx, version, 'daemon');
  return version;
}

/** The steps of a delete, each safe to run again. */
async function finishDelete(ctx: MaintenanceContext, version: string, actor: string): Promise<Omit<DeleteResult, 'gc'>> {
  if (currentRelease(ctx.db)?.version === version) {
    // Imported again (and made current) since the delete was recorded: nothing of it goes.
    ctx.db.prepare('DELETE FROM settings WHERE key = ?').run(PENDING_DELETE);
    ctx.event(actor, 'release.delete_abandoned', `the pending delete of ${version} was abandoned: it is the current release now`, { version });
    return { version, manifestsDeleted: 0, tagsRestored: [], filesRemoved: false };
  }
  const all = listArtifacts(ctx.db, { files: false });
  const mine = all.filter((a) => a.releaseVersion === version);
  const kept = all.filter((a) => a.releaseVersion !== version);
  const clients = ctx.clients();
  let manifestsDeleted = 0;
  const tagsRestored: string[] = [];
  try {
    // What kept releases name, in the repositories this one touches: never deleted.
    const keep = new Set<string>();
    const touched = new Set(mine.map((a) => `${registryOf(a)} ${repositoryOf(a.target)}`));
    for (const a of kept) {
      const key = `${registryOf(a)} ${repositoryOf(a.target)}`;
      if (!touched.has(key)) continue;
      for (const d of await closure(clients[registryOf(a)], repositoryOf(a.target), a.digest)) keep.add(`${key} ${d}`);
    }
    // First, a tag a kept release carries points at that release's digest again (the current
    // one's first): when the deletes drop the tags of this release's manifests, no kept tag is
    // missing even for a moment.
    for (const registry of REGISTRY_NAMES) {
      const targets = new Set(mine.filter((a) => registryOf(a) === registry).map((a) => a.target));
      tagsRestored.push(...(await restoreKeptTags(ctx, clients[registry], kept.filter((k) => registryOf(k) === registry && targets.has(k.target)))));
    }
    // Top manifests first (their tags go with them), then the children of indexes.
    const doomed: Array<{ registry: RegistryName; repository: string; digests: string[] }> = [];
    for (const a of mine) {
      const registry = registryOf(a);
      const repository = repositoryOf(a.target);
      const digests = (await closure(clients[registry], repository, a.digest)).filter((d) => !keep.has(`${registry} ${repository} ${d}`));
      doomed.push({ registry, repository, digests });
    }
    for (const d of doomed) {
      for (const digest of d.digests) if (await clients[d.registry].deleteManifest(d.repository, digest)) manifestsDeleted++;
    }
  } finally {
    for (const name of REGISTRY_NAMES) clients[name].close();
  }

  // The files: out of the served tree in one rename, then removed (with what a crash left aside).
  for (const name of await readdir(ctx.layout.repoDir).catch(() => [] as string[])) {
    if (name.startsWith(`.deleting-${version}-`)) await rm(join(ctx.layout.repoDir, name), { recursive: true, force: true });
  }
  const folder = join(ctx.layout.repoDir, version);
  let filesRemoved = false;
  if (await stat(folder).then(() => true, () => false)) {
    const aside = join(ctx.layout.repoDir, `.deleting-${version}-${randomBytes(4).toString('hex')}`);
    await rename(folder, aside);
    await rm(aside, { recursive: true, force: true });
    filesRemoved = true;
  }
  ctx.db.transaction(() => {
    deleteReleaseRows(ctx.db, version);
    ctx.db.prepare('DELETE FROM settings WHERE key = ?').run(PENDING_DELETE);
  })();
  await writeReleasesJson(ctx.db, ctx.layout.repoDir).catch((err: unknown) => ctx.log.error({ err }, 'could not rewrite releases.json'));
  await writeChartIndex(ctx.db, ctx.layout.chartsDir).catch((err: unknown) => ctx.log.error({ err }, 'could not rewrite the chart index'));
  ctx.event(actor, 'release.deleted', `deleted release ${version}: ${manifestsDeleted} manifests${tagsRestored.length ? `, ${tagsRestored.length} tags pointed back at a kept release` : ''}`, { version, manifestsDeleted, tagsRestored, filesRemoved });
  return { version, manifestsDeleted, tagsRestored, filesRemoved };
}

/**
 * Runs CNCF distribution's garbage-collect on both registries, one after the other, each
 * stopped for its run (pulls from it fail meanwhile; the other serves). Records an event
 * with the bytes reclaimed. Throws when a registry's GC fails (it is running again).
 */
export async function garbageCollect(ctx: MaintenanceContext, actor: string): Promise<GcResult> {
  const started = Date.now();
  const leftovers = await collectLeftovers(ctx);
  const registries: GcResult['registries'] = [];
  for (const name of REGISTRY_NAMES) {
    const r = await ctx.garbageCollect(name, GC_TIMEOUT_MS);
    registries.push({ name, ...r, bytesReclaimed: Math.max(0, r.bytesBefore - r.bytesAfter) });
  }
  const result = { registries, leftovers, bytesReclaimed: registries.reduce((n, r) => n + r.bytesReclaimed, 0), seconds: (Date.now() - started) / 1000 };
  ctx.event(actor, 'gc.finished', `garbage collection gave back ${result.bytesReclaimed} bytes in ${result.seconds.toFixed(1)} s`, result);
  return result;
}

/** Every manifest revision in a registry's storage: `repository digest` pairs (CNCF distribution's filesystem layout). */
async function storedManifests(data: string): Promise<Array<{ repository: string; digest: string }>> {
  const root = join(data, 'docker', 'registry', 'v2', 'repositories');
  const out: Array<{ repository: string; digest: string }> = [];
  const walk = async (dir: string, repository: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      if (!e.isDirectory()) continue;
      if (e.name === '_manifests') {
        const revisions = join(dir, '_manifests', 'revisions');
        for (const alg of await readdir(revisions).catch(() => [] as string[])) {
          for (const hex of await readdir(join(revisions, alg)).catch(() => [] as string[])) {
            if (await stat(join(revisions, alg, hex, 'link')).then((x) => x.isFile(), () => false)) out.push({ repository, digest: `${alg}:${hex}` });
          }
        }
      } else if (!e.name.startsWith('_')) await walk(join(dir, e.name), repository ? `${repository}/${e.name}` : e.name);
    }
  };
  await walk(root, '');
  return out;
}

/**
 * What failed or cancelled imports leave, removed with no import running (the caller
 * holds Importer.exclusive): upload sessions in the registries, staging folders of the
 * file repository, and manifests no release names (with what they named, GC then takes
 * their blobs). A manifest a release names, or the child of an index a release names,
 * always stays. The blob journal of an import waiting to resume is dropped: it checks
 * every blob again. Throws RegistryError when a registry fails.
 */
export async function collectLeftovers(ctx: MaintenanceContext): Promise<Leftovers> {
  // An import a stop interrupted, waiting to resume, would trust its journal for blobs this
  // collection may take (its manifests are not pushed yet): it checks each blob again instead.
  // A failed import's journal would name repositories as holders of blobs (mount sources,
  // the free-space check) that this collection takes away. Only committed releases' stay.
  ctx.db.prepare("DELETE FROM import_blobs WHERE import_id IN (SELECT id FROM imports WHERE state != 'imported')").run();
  const uploads = await ctx.removeUploads();
  let stagingFolders = 0;
  for (const name of await readdir(ctx.layout.repoDir).catch(() => [] as string[])) {
    if (/^\..+\.partial-\d+$/.test(name) || name.startsWith('.deleting-')) {
      await rm(join(ctx.layout.repoDir, name), { recursive: true, force: true });
      stagingFolders++;
    }
  }
  let manifests = 0;
  let tagsRestored = 0;
  const artifacts = listArtifacts(ctx.db, { files: false });
  const clients = ctx.clients();
  try {
    for (const registry of REGISTRY_NAMES) {
      const named = new Set(artifacts.filter((a) => registryOf(a) === registry).map((a) => `${repositoryOf(a.target)} ${a.digest}`));
      // Most revisions are named outright; only the rest need the closure (index children).
      const candidates = (await storedManifests(ctx.layout.registry(registry).data)).filter((m) => !named.has(`${m.repository} ${m.digest}`));
      if (!candidates.length) continue;
      const repositories = new Set(candidates.map((c) => c.repository));
      // A failed import may have left a tag a kept release carries on its own manifest: each
      // such tag points at the kept release's digest again (the current release's first)
      // before that manifest goes, or distribution would drop the tag with it.
      tagsRestored += (await restoreKeptTags(ctx, clients[registry], artifacts.filter((a) => registryOf(a) === registry && repositories.has(repositoryOf(a.target))))).length;
      const keep = new Set<string>();
      for (const a of artifacts) {
        if (registryOf(a) !== registry || !repositories.has(repositoryOf(a.target))) continue;
        for (const d of await closure(clients[registry], repositoryOf(a.target), a.digest)) keep.add(`${repositoryOf(a.target)} ${d}`);
      }
      for (const c of candidates) {
        if (keep.has(`${c.repository} ${c.digest}`)) continue;
        if (await clients[registry].deleteManifest(c.repository, c.digest)) manifests++;
      }
    }
  } finally {
    for (const name of REGISTRY_NAMES) clients[name].close();
  }
  if (uploads || stagingFolders || manifests || tagsRestored) ctx.log.info({ uploads, stagingFolders, manifests, tagsRestored }, 'removed what failed imports left');
  return { uploads, stagingFolders, manifests, tagsRestored };
}

/**
 * Points each tag of `artifacts` (kept releases' images, charts or packs in one registry)
 * at the digest of the release that wins it: the current release, else the newest
 * import. Returns the targets whose tag it moved. Throws RegistryError.
 */
async function restoreKeptTags(ctx: MaintenanceContext, client: RegistryClient, artifacts: ArtifactRow[]): Promise<string[]> {
  const order = new Map(listReleases(ctx.db).sort((x, y) => Number(y.current) - Number(x.current) || y.importedAt.localeCompare(x.importedAt)).map((r, i) => [r.version, i]));
  const winners = new Map<string, ArtifactRow>();
  for (const a of artifacts) {
    const held = winners.get(a.target);
    if (!held || (order.get(a.releaseVersion) ?? 0) < (order.get(held.releaseVersion) ?? 0)) winners.set(a.target, a);
  }
  const moved: string[] = [];
  for (const [target, a] of winners) {
    if ((await client.tagDigest(repositoryOf(target), tagOf(target))) === a.digest) continue;
    await client.retag(repositoryOf(target), tagOf(target), a.digest);
    moved.push(target);
  }
  return moved;
}
