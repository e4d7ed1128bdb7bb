/**
 * What the maintenance parts do to the files of a state dir, with real files: empty
 * repositories removed from a registry's storage (nested ones kept), the restore's swap
 * and its rollback after a crash at each step, and the clean-up at start.
 */
import t from 'tap';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { removeEmptyRepositories } from '../../src/appliance/registries/fleet.js';
import { finishInterruptedWork } from '../../src/appliance/daemon/state-dir.js';
import { rollBackInterruptedSwap, swapIn } from '../../src/appliance/backup/swap.js';
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

t.test("a start after an interrupted restore: its staging folder goes; a killed backup's temp database goes", async (t) => {
  const layout = stateLayout(await tempDir(t, 'airgap-interrupted-'));
  await writeFile(join(layout.root, '.backup-0a1b2c.db'), 'x');
  await mkdir(join(layout.root, '.restore-123abc', 'pki'), { recursive: true });
  t.same(await finishInterruptedWork(layout), { restoreRolledBack: false });
  t.same(await readdir(layout.root), []);
});

t.test('a swap a crash interrupted is rolled back whole, wherever it stopped', async (t) => {
  const work = await tempDir(t, 'airgap-swap-');
  // Each step the swap takes, cut after `steps` renames: the rollback gives back the old state.
  const old = { 'airgap.db': 'old db', 'pki/ca.crt': 'old ca', 'repo/1.0.0/a': 'old file', '.firstboot-done': 'x', 'inbox/x.bin': 'bin' };
  const restored = { 'airgap.db': 'new db', 'pki/ca.crt': 'new ca', 'config.yaml': 'retention: {keep: 2}' };
  const write = async (root: string, files: Record<string, string>) => {
    for (const [p, text] of Object.entries(files)) {
      await mkdir(join(root, p, '..'), { recursive: true });
      await writeFile(join(root, p), text);
    }
  };
  const read = async (root: string): Promise<Record<string, string>> => {
    const out: Record<string, string> = {};
    const walk = async (d: string) => {
      for (const e of await readdir(d, { withFileTypes: true })) {
        if (e.isDirectory()) await walk(join(d, e.name));
        else out[relative(root, join(d, e.name))] = await readFile(join(d, e.name), 'utf8');
      }
    };
    await walk(root);
    return out;
  };
  // A finished swap: the restored parts, and what a restore does not know stays.
  const done = join(work, 'done');
  await write(done, old);
  await write(join(done, '.restore-s'), restored);
  await swapIn(done, join(done, '.restore-s'));
  await rm(join(done, '.restore-s'), { recursive: true });
  t.same(await read(done), { 'airgap.db': 'new db', 'pki/ca.crt': 'new ca', 'config.yaml': 'retention: {keep: 2}', '.firstboot-done': 'x', 'inbox/x.bin': 'bin' });
  // Crashes: the journal is written, then some of the renames happened (as in swapIn's order).
  const names = { aside: ['airgap.db', 'pki', 'repo'], restored: ['pki', 'config.yaml', 'airgap.db'] };
  for (let steps = 0; steps <= 5; steps++) {
    const root = join(work, `crash-${steps}`);
    await write(root, old);
    await write(join(root, '.restore-s'), restored);
    const aside = join(root, '.replaced-x');
    await mkdir(aside);
    await writeFile(join(aside, '.swap.json'), JSON.stringify(names));
    const moves: Array<[string, string]> = [
      ...names.aside.map((n): [string, string] => [join(root, n), join(aside, n)]),
      [join(root, '.restore-s', 'pki'), join(root, 'pki')],
      [join(root, '.restore-s', 'config.yaml'), join(root, 'config.yaml')],
    ];
    for (const [from, to] of moves.slice(0, steps)) await rename(from, to);
    t.equal(await rollBackInterruptedSwap(root), true, `cut after ${steps} renames: rolled back`);
    t.same(await read(root), old, `cut after ${steps} renames: the old state, whole`);
  }
});
