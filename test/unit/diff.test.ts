/** appliance/cli/diff: releases compared by target and digest. */
import t from 'tap';
import { diffItems, diffReleases } from '../../src/appliance/cli/diff.js';

const d = (n: string) => `sha256:${n.repeat(64).slice(0, 64)}`;

t.test('added, removed, changed (old and new digest), unchanged; sorted by target', async (t) => {
  const from = [
    { target: 'b/app:1', digest: d('1'), size: 10 },
    { target: 'a/keep:1', digest: d('2'), size: 20 },
    { target: 'c/moved:1', digest: d('3'), size: 30 },
  ];
  const to = [
    { target: 'c/moved:1', digest: d('4'), size: 31 },
    { target: 'a/keep:1', digest: d('2'), size: 20 },
    { target: 'b/app:2', digest: d('5'), size: 11 },
    { target: 'a/new:1', digest: d('6'), size: 12 },
  ];
  const k = diffItems(from, to);
  t.same(k.added.map((i) => i.target), ['a/new:1', 'b/app:2']);
  t.same(k.removed.map((i) => i.target), ['b/app:1']);
  t.same(k.changed, [{ target: 'c/moved:1', from: d('3'), to: d('4'), size: 31 }]);
  t.equal(k.unchanged, 1);
  const empty = { images: [], charts: [], packs: [], files: [] };
  const r = diffReleases('1.0.0', '2.0.0', { ...empty, images: from }, { ...empty, images: to, files: [{ target: 'x.yaml', digest: d('7'), size: 5 }] });
  t.equal(r.bytesAddedOrChanged, 31 + 11 + 12 + 5, 'what the upgrade brings: added and changed');
  t.same(diffItems(to, to), { added: [], removed: [], changed: [], unchanged: 4 }, 'a release against itself changes nothing');
});

t.test('prune keeps the current release and the N-1 newest others, by version', async (t) => {
  const { pruneList } = await import('../../src/appliance/daemon/maintenance.js');
  const r = (version: string, current = false, importedAt = '2026-01-01') => ({ version, current, importedAt });
  const releases = [r('1.0.0'), r('1.10.0'), r('1.2.0', true), r('1.9.0'), r('2.0.0-rc.1')];
  t.same(pruneList(releases, 3), { kept: ['1.2.0', '2.0.0-rc.1', '1.10.0'], deleted: ['1.9.0', '1.0.0'] }, '1.10.0 is newer than 1.9.0; the current one counts as one kept');
  t.same(pruneList(releases, 1), { kept: ['1.2.0'], deleted: ['2.0.0-rc.1', '1.10.0', '1.9.0', '1.0.0'] });
  t.same(pruneList(releases, 10).deleted, []);
});
