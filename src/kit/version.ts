/** The product's version: `version` of the package.json this module ships in. */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

let cached: string | undefined;

/**
 * The version in the nearest package.json above this module (from src/kit/ when run as
 * TypeScript, from dist/src/kit/ when compiled), or `unknown`. Read once.
 */
export function productVersion(): string {
  if (cached !== undefined) return cached;
  cached = 'unknown';
  let dir = import.meta.dirname;
  for (let i = 0; i < 5; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.version) {
        cached = pkg.version;
        break;
      }
    } catch {
      // not here; one level up
    }
    dir = dirname(dir);
  }
  return cached;
}

/**
 * Sets the product version, instead of the package.json lookup: for a bundle that knows
 * its version (the portable CLI runs from a temporary folder, whose parents are anybody's).
 */
export function setProductVersion(version: string): void {
  cached = version;
}
