/** Awaiting a condition instead of sleeping for a guessed time. */

/** Polls `check` every 100 ms until it returns true or `seconds` pass; resolves whether it did. */
export async function waitFor(check: () => Promise<boolean> | boolean, seconds = 20): Promise<boolean> {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}
