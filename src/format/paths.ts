/**
 * Entry path rules of the payload (docs/format.md): every entry is a
 * relative, normalised, '/'-separated path. Used by both the writer and the reader so
 * that what one writes the other accepts.
 */

/** Longest entry path accepted, in bytes (PATH_MAX on Linux). */
export const MAX_PATH_BYTES = 4096;

/**
 * Longest path segment accepted, in bytes: a Linux file name has 255, and the appliance
 * writes each file first as `.<segment>.<pid>.tmp` (up to 15 bytes more).
 */
export const MAX_SEGMENT_BYTES = 240;

/**
 * Returns why `path` is not an acceptable entry path, or undefined when it is.
 * Refused: empty, absolute, `.`/`..`/empty segments, a segment starting with `.` (a
 * dotfile such as `.env`: the repository answers 403 for it), trailing slash, backslashes,
 * NUL or control characters, invalid UTF-8 (U+FFFD), over MAX_PATH_BYTES, a segment over
 * MAX_SEGMENT_BYTES.
 */
export function entryPathProblem(path: string): string | undefined {
  if (path === '') return 'is empty';
  if (Buffer.byteLength(path) > MAX_PATH_BYTES) return `is longer than ${MAX_PATH_BYTES} bytes`;
  if (path.startsWith('/')) return 'is absolute';
  if (/[\x00-\x1f\x7f]/.test(path)) return 'contains control characters';
  if (path.includes('\\')) return 'contains a backslash';
  if (path.includes('\ufffd')) return 'is not valid UTF-8';
  if (path.endsWith('/')) return 'ends with a slash';
  for (const segment of path.split('/')) {
    if (segment === '') return 'has an empty segment (//)';
    if (segment === '..') return "has a '..' segment";
    if (segment === '.') return "has a '.' segment";
    if (Buffer.byteLength(segment) > MAX_SEGMENT_BYTES) return `has a segment longer than ${MAX_SEGMENT_BYTES} bytes`;
    if (segment.startsWith('.')) return `has a segment that starts with '.' ('${segment}'), a hidden file the repository does not serve`;
  }
  return undefined;
}

const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

/**
 * The key under which two paths count as the same name on a case-insensitive or
 * normalising file system: Unicode NFKC, then a case fold (upper, then lower case, so
 * that σ and ς meet), and default-ignorable characters (zero-width joiners…) removed.
 */
export function collisionKey(path: string): string {
  // Printable ASCII (most names) has no compatibility forms or ignorable characters: the key is its lower case.
  if (PRINTABLE_ASCII.test(path)) return path.toLowerCase();
  return path
    .normalize('NFKC')
    .replace(/\p{Default_Ignorable_Code_Point}/gu, '')
    .toUpperCase()
    .toLowerCase()
    .normalize('NFKC');
}
