/**
 * Temp dirs that go away with the test that made them: every helper and test that needs a
 * scratch folder takes it from here, so a run leaves /tmp as it found it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** What these helpers need of a tap test: somewhere to register clean-up. */
export interface Teardown {
  teardown(fn: () => unknown): void;
}

/**
 * Makes `<tmpdir>/<prefix>XXXXXX` and removes it, recursively, when `t` ends. tap runs
 * teardowns last in, first out: a daemon or registry started after this call (on the
 * same `t`) is stopped before its folder is removed.
 */
export async function tempDir(t: Teardown, prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}
