/** Bounded concurrency for the builder and the importer. */
/**
 * Runs `worker` over `items` with at most `limit` at once, in order of `items`. The first
 * failure (or `signal` aborting) stops the lanes from taking more work; once those in
 * flight end, it is thrown as it came.
 */
export async function runPool<T>(items: readonly T[], limit: number, signal: AbortSignal | undefined, worker: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  // Boxed so that whatever was thrown (even a non-Error) is rethrown as it came.
  let failure: { error: unknown } | undefined;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (failure === undefined && next < items.length) {
      const item = items[next++]!;
      try {
        // Inside the try: on abort every lane stops taking work and Promise.all waits for those in flight.
        signal?.throwIfAborted();
        await worker(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  });
  await Promise.all(lanes);
  if (failure !== undefined) throw failure.error;
}
