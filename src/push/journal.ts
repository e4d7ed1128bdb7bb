/**
 * The journal of `airgap push`: one JSON line per finished blob, in a file beside the
 * user's state (`$XDG_STATE_HOME/airgap/push/`), so that a push killed with `kill -9` or
 * a dropped SSH session continues without sending (or even asking about) what it
 * finished. One file per .bin and destination; removed once a push has landed whole.
 */
import { createHash } from 'node:crypto';
import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { BlobAction, Destination, TransferJournal } from '../transfer/context.js';

/** `$XDG_STATE_HOME/airgap/push`, or `~/.local/state/airgap/push`. */
export function defaultJournalDir(env: NodeJS.ProcessEnv): string {
  const base = env.XDG_STATE_HOME && env.XDG_STATE_HOME.startsWith('/') ? env.XDG_STATE_HOME : join(env.HOME || homedir(), '.local', 'state');
  return join(base, 'airgap', 'push');
}

interface Line {
  d: Destination;
  r: string;
  g: string;
  s: number;
  a: BlobAction;
}

export interface FileJournal extends TransferJournal {
  /** The journal file. */
  path: string;
  /** Blobs it had from an earlier run. */
  resumed: number;
  /** Removes the file (the push landed whole). */
  remove(): Promise<void>;
}

/**
 * Opens (or starts) the journal of pushing the payload `payloadSha256` to `destination`
 * (a string naming the registries and prefixes). A torn last line (a crash mid-write) is
 * ignored. Appends are synchronous and unbuffered: what is recorded survives `kill -9`.
 */
export function openFileJournal(dir: string, payloadSha256: string, destination: string): FileJournal {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, `${payloadSha256.slice(0, 16)}-${createHash('sha256').update(destination).digest('hex').slice(0, 16)}.jsonl`);
  const done = new Set<string>();
  const holders = new Map<string, Set<string>>();
  const note = (l: Line) => {
    done.add(`${l.d} ${l.r} ${l.g}`);
    const key = `${l.d} ${l.g}`;
    const set = holders.get(key) ?? new Set<string>();
    set.add(l.r);
    holders.set(key, set);
  };
  let text = '';
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    // a new journal
  }
  for (const raw of text.split('\n')) {
    try {
      const l = JSON.parse(raw) as Line;
      if (typeof l.d === 'string' && typeof l.r === 'string' && typeof l.g === 'string') note(l);
    } catch {
      // an empty or torn line
    }
  }
  const resumed = done.size;
  return {
    path,
    resumed,
    has: (d, repository, digest) => done.has(`${d} ${repository} ${digest}`),
    holders: (d, digest) => [...(holders.get(`${d} ${digest}`) ?? [])],
    record: (d: Destination, repository: string, blob: { digest: string; size: number }, action: BlobAction) => {
      const line: Line = { d, r: repository, g: blob.digest, s: blob.size, a: action };
      appendFileSync(path, `${JSON.stringify(line)}\n`, { mode: 0o600 });
      note(line);
    },
    remove: () => rm(path, { force: true }),
  };
}
