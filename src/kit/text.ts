/** Human-readable numbers and safe text for CLI output. */

/**
 * What a terminal would act on instead of showing: C0 controls (ESC, CR, BS, newline…),
 * DEL, C1 controls (U+0080–U+009F, CSI among them), the bidirectional marks, embeddings,
 * overrides and isolates (U+061C, U+200E–U+200F, U+202A–U+202E, U+2066–U+2069) and the
 * line and paragraph separators (U+2028, U+2029).
 */
const UNPRINTABLE = /[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/**
 * `text` with every character a terminal would act on (see UNPRINTABLE) shown as a visible
 * escape: `\x1b` for a control below U+0100, `\u202e` above. Every name that comes from a
 * .bin, the daemon or the file system goes through it before it reaches a terminal or a
 * log or reason file, so a crafted name cannot clear the screen, move the cursor, print
 * a line of its own or reorder what is shown. JSON output does not need it (JSON escapes
 * controls itself).
 */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, (c) => {
    const code = c.charCodeAt(0);
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

/** Bytes in SI units, as `1.5 MB` (1 kB = 1000 B), matching what registries and skopeo print. */
export function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = -1;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value >= 100 ? value.toFixed(0) : value.toFixed(1)} ${units[unit]}`;
}

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1e3, kb: 1e3, kib: 1024, m: 1e6, mb: 1e6, mib: 1024 ** 2, g: 1e9, gb: 1e9, gib: 1024 ** 3 };

/**
 * A size as people write it: `8MiB`, `10M`, `512k`, `1048576` (decimal units are powers of
 * 1000, binary ones of 1024; case does not matter). Returns whole bytes, or undefined for
 * anything else (a fraction of a byte, a unit it does not know, a negative number).
 */
export function parseSize(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) return undefined;
  const bytes = Number(m[1]) * unit;
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

/** Seconds as `1m05s` or `4.2s`. */
export function formatDuration(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds % 60);
  return `${m}m${String(s).padStart(2, '0')}s`;
}

/**
 * Left-aligned columns: each row's cells padded to the widest cell of its column. Cells
 * are shown {@link printable}: a control character in a name cannot break the columns or
 * act on the terminal.
 */
export function table(rawRows: string[][], indent = '  '): string {
  const rows = rawRows.map((row) => row.map(printable));
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) => indent + row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n');
}

/**
 * Words of `text` in lines of at most `width` characters (a longer word gets a line of its
 * own); every line but the first is then prefixed with `indent`. Returns the lines joined
 * by \n.
 */
export function wrap(text: string, width: number, indent = ''): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  lines.push(line);
  return lines.map((l, i) => (i ? indent + l : l)).join('\n');
}
