/** kit/exit-cleanup: what a forced exit removes, and what it forgets. */
import t from 'tap';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { removeOnForcedExit, removePendingNow } from '../../src/kit/exit-cleanup.js';
import { tempDir } from '../helpers/temp.js';

t.test('registered paths go on a forced exit; forgotten ones stay', async (t) => {
  const dir = await tempDir(t, 'airgap-exit-cleanup-');
  await mkdir(join(dir, 'work', 'deep'), { recursive: true });
  await writeFile(join(dir, 'work', 'deep', 'f'), 'x');
  await writeFile(join(dir, 'out.partial'), 'half');
  await writeFile(join(dir, 'kept'), 'done');
  removeOnForcedExit(join(dir, 'work'));
  removeOnForcedExit(join(dir, 'out.partial'));
  const forget = removeOnForcedExit(join(dir, 'kept'));
  forget();
  removeOnForcedExit(join(dir, 'missing')); // gone already: no error
  removePendingNow();
  t.same(await readdir(dir), ['kept']);
});
