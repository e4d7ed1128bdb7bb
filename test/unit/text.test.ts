/** Text for terminals (src/kit/text.ts): what a terminal would act on is shown, not done. */
import t from 'tap';
import { parseSize, printable, table } from '../../src/kit/text.js';

t.test('printable shows controls, escape sequences and bidi overrides as visible escapes', async (t) => {
  t.equal(printable('\x1b[2J\x1b[HSetup Completed'), '\\x1b[2J\\x1b[HSetup Completed');
  t.equal(printable('a\nb\rc\td\x00e\x7f'), 'a\\x0ab\\x0dc\\x09d\\x00e\\x7f');
  t.equal(printable('\u009b2J \u0085'), '\\x9b2J \\x85', 'C1 controls (CSI, NEL)');
  t.equal(printable('\u202egnp.exe \u2066x\u2069 \u200f \u2028'), '\\u202egnp.exe \\u2066x\\u2069 \\u200f \\u2028');
  const plain = 'files/café/ü-日本語 a_b.c:1 sha256:ab';
  t.equal(printable(plain), plain, 'printable text is left as it is');
});

t.test('table cells are printable, so a name cannot break the columns', async (t) => {
  t.equal(table([['a\x1b[2J', 'x'], ['bb', 'y\nz']], ''), 'a\\x1b[2J  x\nbb        y\\x0az');
});

t.test('parseSize reads sizes as people write them, and nothing else', async (t) => {
  for (const [text, bytes] of [['1048576', 1048576], ['8MiB', 8 * 1024 * 1024], ['10M', 10_000_000], ['512k', 512_000], ['64KiB', 65536], ['1.5GiB', 1.5 * 1024 ** 3], [' 2 mb ', 2_000_000], ['3b', 3]] as const) {
    t.equal(parseSize(text), bytes, text);
  }
  for (const text of ['', 'lots', '-1', '1.5', '0.1b', '8 MiBs', '1e6', '99999999999999999999']) t.equal(parseSize(text), undefined, JSON.stringify(text));
});
