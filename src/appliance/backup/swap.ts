/**
 * The one step of a restore that changes the state dir: the restored parts replace the
 * old ones, by renames on one file system, with a journal so that a failure or a crash in
 * the middle is rolled back (docs/adr/0007).
 *
 *   .replaced-<id>/             what the state dir held, moved aside
 *     .swap.json                the journal: written (and flushed) before the first rename
 *   .discard-<id>/              the same folder once the swap is done: only removed
 *
 * A swap that throws is rolled back at once. A swap a crash interrupted is rolled back by
 * rollBackInterruptedSwap, which the daemon's start and the next restore both run first.
 */
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { syncDir, writeFileAtomic } from '../../kit/fs.js';

/** The names of the state dir a restore replaces (state-layout.ts); anything else there stays. */
export const REPLACED_NAMES = ['airgap.db', 'airgap.db-wal', 'airgap.db-shm', 'pki', 'trusted-keys', 'config.yaml', 'registries', 'repo', 'charts', 'uploads', 'admin.sock', 'space-reserve'];

const JOURNAL = '.swap.json';

interface SwapJournal {
  /** Names moved from the state dir into the aside folder. */
  aside: string[];
  /** Names moved from the staging folder into the state dir. */
  restored: string[];
}

const exists = (path: string) => lstat(path).then(() => true, () => false);

/**
 * Puts the old state back: each name the journal lists goes back to what it was. A name
 * whose old item is still in place (a crash before it was moved aside) is left alone; a
 * restored item in its place is moved out. Throws the file system's errors.
 */
async function rollBack(root: string, aside: string, journal: SwapJournal): Promise<void> {
  const trash = join(root, `.discard-${randomBytes(6).toString('hex')}`);
  await mkdir(trash, { mode: 0o700 });
  const asideNames = new Set(await readdir(aside));
  for (const name of new Set([...journal.restored, ...journal.aside])) {
    const moved = asideNames.has(name);
    if (journal.aside.includes(name) && !moved) continue;
    if (await exists(join(root, name))) await rename(join(root, name), join(trash, name));
    if (moved) await rename(join(aside, name), join(root, name));
  }
  await syncDir(root).catch(() => {});
  await rm(aside, { recursive: true, force: true });
  await rm(trash, { recursive: true, force: true });
}

/**
 * Replaces the REPLACED_NAMES of `root` with what `staging` holds (the database last).
 * On a failure it puts the old state back and throws the failure.
 */
export async function swapIn(root: string, staging: string): Promise<void> {
  const id = randomBytes(6).toString('hex');
  const aside = join(root, `.replaced-${id}`);
  const present = new Set(await readdir(root));
  const staged = (await readdir(staging)).filter((n) => n !== 'airgap.db');
  const journal: SwapJournal = { aside: REPLACED_NAMES.filter((n) => present.has(n)), restored: [...staged, 'airgap.db'] };
  await mkdir(aside, { mode: 0o700 });
  await writeFileAtomic(join(aside, JOURNAL), JSON.stringify(journal), 0o600);
  await syncDir(root).catch(() => {});
  try {
    // The database first: from here on the state dir has none until the restored one is in.
    for (const name of ['airgap.db', 'airgap.db-wal', 'airgap.db-shm', ...journal.aside]) {
      if (present.has(name) && (await exists(join(root, name)))) await rename(join(root, name), join(aside, name));
    }
    for (const name of staged) await rename(join(staging, name), join(root, name));
    await syncDir(root).catch(() => {});
    await rename(join(staging, 'airgap.db'), join(root, 'airgap.db'));
    await syncDir(root).catch(() => {});
  } catch (err) {
    await rollBack(root, aside, journal);
    throw err;
  }
  // Done: the aside folder is only garbage now, whatever happens to its removal.
  const discard = join(root, `.discard-${id}`);
  await rename(aside, discard);
  await syncDir(root).catch(() => {});
  await rm(discard, { recursive: true, force: true });
}

/**
 * Rolls back a swap a crash interrupted (a `.replaced-*` folder with its journal), and
 * removes what a finished swap or an interrupted extraction left (`.discard-*`,
 * `.restore-*`). Returns true when it rolled a swap back. Throws the file system's errors.
 */
export async function rollBackInterruptedSwap(root: string): Promise<boolean> {
  let rolledBack = false;
  for (const name of await readdir(root).catch(() => [] as string[])) {
    const path = join(root, name);
    if (name.startsWith('.replaced-')) {
      const journal = await readFile(join(path, JOURNAL), 'utf8').then((t) => JSON.parse(t) as SwapJournal, () => undefined);
      // Without its journal the folder was made but nothing was moved yet.
      if (journal) {
        await rollBack(root, path, journal);
        rolledBack = true;
      } else await rm(path, { recursive: true, force: true });
    } else if (name.startsWith('.discard-') || name.startsWith('.restore-')) {
      await rm(path, { recursive: true, force: true });
    }
  }
  return rolledBack;
}
