/** The database file (src/appliance/store/db.ts): a damaged page is found when it opens, with its own code. */
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { openDatabase } from '../../src/appliance/store/db.js';
import { recordEvent } from '../../src/appliance/store/events.js';
import { tempDir } from '../helpers/temp.js';

t.test('a damaged page is AG_DB_CORRUPT with what to do, not an internal error later', async (t) => {
  const dir = await tempDir(t, 'airgap-db-test-');
  const path = join(dir, 'airgap.db');
  const db = openDatabase(path);
  for (let i = 0; i < 300; i++) recordEvent(db, { actor: 'test', kind: 'test.filler', message: `event ${i} ${'x'.repeat(200)}` });
  db.pragma('wal_checkpoint(TRUNCATE)');
  const pageSize = db.pragma('page_size', { simple: true }) as number;
  const pages = db.pragma('page_count', { simple: true }) as number;
  db.close();
  t.ok(pages > 4, `${pages} pages`);
  t.doesNotThrow(() => openDatabase(path).close(), 'the sound file opens');

  const fh = await open(path, 'r+');
  await fh.write(Buffer.alloc(pageSize, 0xa5), 0, pageSize, pageSize * (pages - 2));
  await fh.close();
  t.throws(() => openDatabase(path), { code: 'AG_DB_CORRUPT', message: /the database .* is damaged/, hint: /restore it from a backup/ });
});
