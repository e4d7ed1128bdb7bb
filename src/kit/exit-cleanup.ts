/**
 * Paths to remove when the process must exit at once (a second Ctrl-C, when there is no
 * time for the verb's own `finally` to run): a build's work folder and partial output.
 */
import { rmSync } from 'node:fs';

const pending = new Set<string>();

/** Registers `path` (a file or folder) for removal on a forced exit. Returns the function that forgets it. */
export function removeOnForcedExit(path: string): () => void {
  pending.add(path);
  return () => {
    pending.delete(path);
  };
}

/** Removes every registered path now, synchronously (best effort: a path that cannot go stays). */
export function removePendingNow(): void {
  for (const path of pending) {
    try {
      rmSync(path, { recursive: true, force: true });
    } catch {
      // Nothing more can be done on the way out.
    }
  }
  pending.clear();
}
