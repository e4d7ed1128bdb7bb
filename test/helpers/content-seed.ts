/**
 * A database with the content of a box at scale, written straight through the store
 * functions (no registry, no .bin): `releases` releases of `images` images each, as an
 * import would record them, with their blob journals, so lists and disk use cost what
 * they cost on a real box. The pagination test and bench/api.ts share it.
 *
 * Release r (0-based) is version `1.<r>.0`, imported r minutes after the first; the last
 * one is current. Of its images, 9 in 10 keep their target from release to release
 * (`team-<i % 10>/img-<iiii>:stable`, a new digest when r changes) and 1 in 10 carries the
 * release in its tag (`…:1.<r>.0`): the every-release lists hold each stable target once
 * per release. Each release also has 20 charts, 5 packs and 200 files.
 */
import type { Db } from '../../src/appliance/store/db.js';
import { createImport, finishImport, journalBlob, markStarted, setIdentity } from '../../src/appliance/store/imports.js';
import { insertRelease, type ArtifactRow } from '../../src/appliance/store/releases.js';

export interface SeedShape {
  releases: number;
  images: number;
}

/** The version of release `r` (0-based). */
export const seedVersion = (r: number) => `1.${r}.0`;

/** The target of image `i` in release `r`. */
export function seedImageTarget(i: number, r: number): string {
  return `team-${i % 10}/img-${String(i).padStart(4, '0')}:${i % 10 === 9 ? seedVersion(r) : 'stable'}`;
}

const hex = (text: string) => Buffer.from(text).toString('hex').padEnd(64, '0').slice(0, 64);

/** Writes the releases of `shape` into `db` (one transaction each); returns their versions, oldest first. */
export function seedContent(db: Db, shape: SeedShape): string[] {
  const versions: string[] = [];
  const start = Date.parse('2026-01-01T00:00:00Z');
  for (let r = 0; r < shape.releases; r++) {
    const version = seedVersion(r);
    versions.push(version);
    db.transaction(() => {
      const job = createImport(db, { file: `/media/airgap-v${version}.bin`, source: 'cli', actor: 'cli', options: {} });
      markStarted(db, job.id, false);
      setIdentity(db, job.id, { name: 'scale', version, payloadSha256: hex(`payload ${version}`) });
      const artifacts: Array<Omit<ArtifactRow, 'releaseVersion'>> = [];
      for (let i = 0; i < shape.images; i++) {
        const target = seedImageTarget(i, r);
        const repository = target.slice(0, target.indexOf(':'));
        artifacts.push({ kind: 'image', target, digest: `sha256:${hex(`manifest ${i} ${r}`)}`, size: 1500, mediaType: 'application/vnd.oci.image.manifest.v1+json', platforms: ['linux/amd64'] });
        // A base layer many images share, one of the image's own that lasts, one that changes each release.
        for (const [layer, size] of [[`base ${i % 50}`, 30_000_000], [`lib ${i}`, 5_000_000], [`app ${i} ${r}`, 1_000_000]] as const) {
          journalBlob(db, job.id, { registry: 'images', repository, digest: `sha256:${hex(layer)}`, size, action: 'pushed' });
        }
      }
      for (let i = 0; i < 20; i++) artifacts.push({ kind: 'chart', target: `charts/chart-${String(i).padStart(2, '0')}:0.${r}.0`, digest: `sha256:${hex(`chart ${i} ${r}`)}`, size: 4000, mediaType: null, platforms: null });
      for (let i = 0; i < 5; i++) artifacts.push({ kind: 'pack', target: `packs/pack-${i}:${version}`, digest: `sha256:${hex(`pack ${i} ${r}`)}`, size: 100_000, mediaType: null, platforms: null });
      for (let i = 0; i < 200; i++) artifacts.push({ kind: 'file', target: `manifests/f-${String(i).padStart(3, '0')}.yaml`, digest: `sha256:${hex(`file ${i} ${r}`)}`, size: 2000, mediaType: null, platforms: null });
      insertRelease(db, { version, name: 'scale', created: new Date(start + r * 60_000).toISOString(), payloadSha256: hex(`payload ${version}`), tocSha256: hex(`toc ${version}`), keyId: null, importId: job.id, importedAt: new Date(start + r * 60_000).toISOString() }, artifacts, r === shape.releases - 1);
      finishImport(db, job.id, 'imported', {});
    })();
  }
  return versions;
}
