/**
 * Names from a .bin or the file system never reach a terminal or a reason file as they
 * are: `airgap inspect`, `airgap import` and the inbox's reason files show control
 * characters, escape sequences and bidi overrides as visible escapes (kit/text.ts
 * printable). `--json` stays exact.
 */
import t from 'tap';
import { copyFile, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { craftBin } from '../helpers/craft.js';
import { AIRGAP, startDaemon, waitFor } from '../helpers/appliance.js';
import { tempDir } from '../helpers/temp.js';
import { execa } from 'execa';

const dir = await tempDir(t, 'airgap-names-');
const data = Buffer.from('hello\n');
/** Clears the screen, homes the cursor and prints a line of its own. */
const CLEAR = '\x1b[2J\x1b[H';
/** What a terminal acts on: ESC, BEL, CR, the C1 CSI, the bidi overrides and isolates. */
const RAW = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/;

// Refused: the entry path carries an escape sequence (the reader's message names it).
const escapedPath = join(dir, 'escaped-path.bin');
await craftBin(escapedPath, { entries: [{ path: `files/a${CLEAR}Setup Completed\rb`, data }] });
// Accepted (unsigned): a file target with the one-byte CSI (U+009B) and a right-to-left override.
const sneakyTarget = `evil\u009b2J\u202etxt.sh`;
const accepted = join(dir, 'accepted.bin');
await craftBin(accepted, { entries: [{ path: `files/${sneakyTarget}`, data }] });

const run = async (args: string[]) => {
  const r = await execa(AIRGAP, args, { reject: false });
  return { exitCode: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
};

t.test('airgap inspect: a refused entry path is named with visible escapes', async (t) => {
  const r = await run(['inspect', escapedPath]);
  t.equal(r.exitCode, 1, r.stderr);
  t.notMatch(r.stderr, RAW, 'no raw control character on the terminal');
  t.match(r.stderr, 'a\\x1b[2J\\x1b[HSetup Completed\\x0db');
  t.match(r.stderr, /\[AG_TOC_INVALID\]/, 'the signed TOC lists the name, and is read first');
});

t.test('airgap inspect: names in the listing are shown printable; --json keeps them exact', async (t) => {
  const r = await run(['inspect', accepted, '--quiet']);
  t.equal(r.exitCode, 0, r.stderr);
  t.notMatch(r.stdout, RAW, 'no raw control character or bidi override on the terminal');
  t.match(r.stdout, 'evil\\x9b2J\\u202etxt.sh');
  const json = await run(['inspect', accepted, '--json']);
  t.equal(json.exitCode, 0, json.stderr);
  t.same((JSON.parse(json.stdout) as { files: Array<{ target: string }> }).files.map((f) => f.target), [sneakyTarget], 'JSON has the name as it is');
});

t.test('the daemon: airgap import and the inbox reason file show the name escaped', async (t) => {
  const daemon = await startDaemon(t);
  const named = join(dir, `named${CLEAR}.bin`);
  await copyFile(escapedPath, named);
  const r = await daemon.cli(['import', named]);
  t.equal(r.exitCode, 1, r.stderr);
  t.notMatch(r.stderr, RAW, 'import: no raw control character on the terminal');
  t.match(r.stderr, 'a\\x1b[2J\\x1b[HSetup Completed\\x0db');
  t.match(r.stderr, /\[AG_TOC_INVALID\]/, 'the signed TOC lists the name, and is read first');

  const inbox = join(daemon.stateDir, 'inbox');
  const name = `drop${CLEAR}.bin`;
  await copyFile(escapedPath, join(inbox, name));
  const reasonFile = join(inbox, 'failed', `${name}.reason.txt`);
  t.ok(await waitFor(async () => (await readdir(join(inbox, 'failed'))).includes(`${name}.reason.txt`), 30), 'moved to failed/ with a reason');
  const reason = await readFile(reasonFile, 'utf8');
  t.notMatch(reason, RAW, 'the reason file has no raw control character');
  t.match(reason, /a\\x1b\[2J\\x1b\[HSetup Completed\\x0db.*\[AG_TOC_INVALID\]\nhint: /);
});
