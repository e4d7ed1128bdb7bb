/**
 * The daemon's hold on its state dir: the start-up self-check (write, fsync, read back
 * and delete a probe file) and the pid lock that keeps a second daemon out.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readdir, readFile, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { AirgapError } from '../../kit/errors.js';
import { unsafeOwnership } from '../../kit/fs.js';
import { pidAlive } from '../../kit/pids.js';
import type { StateLayout } from '../config/state-layout.js';
import { rollBackInterruptedSwap } from '../backup/swap.js';

/** The state dir cannot be used (AG_STATE_DIR) or another daemon holds it (AG_DAEMON_RUNNING). */
export class StateDirError extends AirgapError {}

/**
 * Makes the state dir `dir` (0700) and proves it usable: write, fsync, read back and
 * delete a probe file. Throws StateDirError AG_STATE_DIR with what to do.
 */
export async function checkStateDir(dir: string): Promise<void> {
  const probe = join(dir, `.write-probe-${process.pid}`);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const token = randomBytes(16).toString('hex');
    const fh = await open(probe, 'w', 0o600);
    await fh.writeFile(token);
    await fh.sync();
    await fh.close();
    if ((await readFile(probe, 'utf8')) !== token) throw new Error('read back different bytes');
    await unlink(probe);
  } catch (cause) {
    await rm(probe, { force: true }).catch(() => {});
    const e = cause as NodeJS.ErrnoException;
    throw new StateDirError('AG_STATE_DIR', `the state dir ${dir} is not usable: ${e.code === 'EACCES' || e.code === 'EPERM' || e.code === 'EROFS' ? 'not writable' : e.message}`, {
      cause,
      hint: e.code === 'ENOSPC' ? 'free some space on its disk' : 'run as root, or pass --state-dir (or AIRGAP_STATE_DIR) with a folder you can write',
    });
  }
}

/**
 * Whether `pid` runs `airgap serve`, `backup` or `restore`, the verbs that take the state
 * dir (after a hard reset, the pid in a stale file may be another program's).
 */
async function isAirgapDaemon(pid: number): Promise<boolean> {
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => undefined);
  if (cmdline === undefined) return true; // no /proc: trust the pid
  const args = cmdline.split('\0');
  return args.some((a) => a === 'serve' || a === 'restore' || a === 'backup') && args.some((a) => /airgap|cli\.js$/.test(a));
}

/**
 * Takes the state dir for this daemon: a pid file made with O_EXCL. A pid file whose
 * process is gone is stale and replaced. Throws AG_DAEMON_RUNNING when a live daemon
 * holds it.
 */
export async function lockStateDir(layout: StateLayout): Promise<void> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(layout.daemonPid, 'wx', 0o644);
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number((await readFile(layout.daemonPid, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(pid) && pid > 1 && pid !== process.pid && pidAlive(pid) && (await isAirgapDaemon(pid))) {
        throw new StateDirError('AG_DAEMON_RUNNING', `another airgap daemon (pid ${pid}) is running with the state dir ${layout.root}`, {
          hint: "use that one ('airgap status'), or stop it first (on the appliance: sudo systemctl stop airgap)",
        });
      }
      await unlink(layout.daemonPid).catch(() => {});
    }
  }
  throw new StateDirError('AG_DAEMON_RUNNING', `cannot take ${layout.daemonPid}`);
}

/**
 * Checks the state dir of `layout` (checkStateDir), closes it to 0700 when this call
 * made it, refuses it when another user could write it (group- or world-writable, or owned
 * by a user other than this process's and root), and locks it (lockStateDir). Throws
 * StateDirError AG_STATE_DIR, AG_UNSAFE_PERMISSIONS or AG_DAEMON_RUNNING. Release with releaseStateDir.
 */
export async function takeStateDir(layout: StateLayout): Promise<void> {
  const existed = await stat(layout.root).then(() => true, () => false);
  // Whoever can write the state dir can plant trusted keys, certificates and the database:
  // an existing one is checked before anything is written in it.
  const unsafe = existed ? await unsafeOwnership(layout.root) : undefined;
  if (unsafe) {
    throw new StateDirError('AG_UNSAFE_PERMISSIONS', `the state dir ${layout.root} ${unsafe.problem}, so another user could change what the appliance trusts`, {
      hint: `run '${unsafe.fix}' and start again`,
    });
  }
  await checkStateDir(layout.root);
  // A folder we made is ours to close; an existing one (given with --state-dir) keeps its mode.
  if (!existed) await chmod(layout.root, 0o700).catch(() => {});
  await lockStateDir(layout);
}

/** Gives the state dir of `layout` up: removes the pid file. Never throws. */
export async function releaseStateDir(layout: StateLayout): Promise<void> {
  await unlink(layout.daemonPid).catch(() => {});
}

/**
 * Cleans up after work a crash interrupted before this start: a restore stopped in its
 * swap is rolled back (the old state is back whole; backup/swap.ts), a restore stopped
 * while it extracted leaves only its staging folder (removed), and a backup killed
 * half-way its temp database (removed). Returns whether a restore was rolled back.
 * Throws the file system's errors.
 */
export async function finishInterruptedWork(layout: StateLayout): Promise<{ restoreRolledBack: boolean }> {
  const restoreRolledBack = await rollBackInterruptedSwap(layout.root);
  for (const name of await readdir(layout.root)) {
    if (/^\.backup-[0-9a-f]+\.db$/.test(name)) await rm(join(layout.root, name), { force: true });
  }
  return { restoreRolledBack };
}

/** Makes the folders the daemon writes to under the state dir (0700). Throws the file system's errors. */
export async function makeStateFolders(layout: StateLayout): Promise<void> {
  for (const dir of [layout.pkiDir, layout.repoDir, layout.chartsDir, layout.trustedKeysDir, layout.inboxDir, layout.registriesDir]) await mkdir(dir, { recursive: true, mode: 0o700 });
}
