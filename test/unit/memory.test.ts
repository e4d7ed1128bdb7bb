/**
 * kit/memory: a full collection on demand, without exposing `gc` to the program.
 */
import t from 'tap';
import { collectGarbage } from '../../src/kit/memory.js';

t.test('collectGarbage collects what nothing holds, at once, and leaves no global gc', async (t) => {
  let held: object | undefined = { payload: Buffer.alloc(1024) };
  const ref = new WeakRef(held);
  // A turn of the event loop: WeakRef targets are kept alive within the job that made them.
  await new Promise((resolve) => setImmediate(resolve));
  collectGarbage();
  t.ok(ref.deref(), 'still held: kept');
  held = undefined;
  await new Promise((resolve) => setImmediate(resolve));
  collectGarbage();
  t.equal(ref.deref(), undefined, 'no longer held: collected');
  t.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined');
});
