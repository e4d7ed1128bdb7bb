/**
 * What the maintenance parts do to the files of a state dir, with real files: empty
 * repositories removed from a registry's storage (nested ones kept), and a start refused
 * after an interrupted restore.
 */
import t from 'tap';
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { removeEmptyRepositories } from '../../src/appliance/registries/fleet.js';
import { checkNoInterruptedWork } from '../../src/appliance/daemon/state-dir.js';
import { stateLayout } from '../../src/appliance/config/state-layout.js';
import { tempDir } from '../helpers/temp.js';

const exists = (p: string) => stat(p).then(() => true, () => false);

t.test('repositories with no manifest revision go; one with a revision stays, and so does a nested one', async (t) => {
  const root = join(await tempDir(t, 'airgap-storage-'), 'repositories');
  const repo = (name: string) => join(root, ...name.split('/'));
  // apps/app: a live revision. apps/app/old: only layer links (a failed import). gone/x: a revision folder without its link (deleted).
  await mkdir(join(repo('apps/app'), '_manifests', 'revisions', 'sha256', 'aa'), { recursive: true });
  await writeFile(join(repo('apps/app'), '_manifests', 'revisions', 'sha256', 'aa', 'link'), 'sha256:aa');
  await mkdir(join(repo('apps/app'), '_layers', 'sha256', 'bb'), { recursive: true });
  await mkdir(join(repo('apps/app/old'), '_layers', 'sha256', 'cc'), { recursive: true });
  await writeFile(join(repo('apps/app/old'), '_layers', 'sha256', 'cc', 'link'), 'sha256:cc');
  await mkdir(join(repo('gone/x'), '_manifests', 'revisions', 'sha256', 'dd'), { recursive: true });
  await mkdir(join(repo('gone/x'), '_uploads', 'u1'), { recursive: true });
  t.equal(await removeEmptyRepositories(root), 2);
  t.ok(await exists(join(repo('apps/app'), '_manifests', 'revisions', 'sha256', 'aa', 'link')), 'the live repository is whole');
  t.ok(await exists(join(repo('apps/app'), '_layers')));
  t.notOk(await exists(repo('apps/app/old')), 'the one with layer links only is gone');
  t.notOk(await exists(join(root, 'gone')), 'and folders left empty go with it');
  t.same(await readdir(root), ['apps']);
  t.equal(await removeEmptyRepositories(root), 0, 'a second run finds nothing');
  t.equal(await removeEmptyRepositories(join(root, 'missing')), 0, 'no storage yet: nothing to do');
});

t.test('a start after an interrupted restore is refused; a killed backup\'s temp database is removed', async (t) => {
  const layout = stateLayout(await tempDir(t, 'airgap-interrupted-'));
  await writeFile(join(layout.root, '.backup-0a1b2c.db'), 'x');
  await checkNoInterruptedWork(layout);
  t.notOk(await exists(join(layout.root, '.backup-0a1b2c.db')));
  await mkdir(join(layout.root, '.restore-123abc'));
  await t.rejects(checkNoInterruptedWork(layout), { code: 'AG_STATE_DIR', message: /restore .* was interrupted/ });
});
