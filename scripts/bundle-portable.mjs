// Bundles src/portable.ts (push, verify, inspect) into one ES module, dist/portable/airgap.mjs,
// that a format 2 .bin carries as runtime/airgap.mjs.gz (docs/format.md, section 2.8).
// esbuild (a devDependency) resolves the TypeScript sources and every npm dependency;
// a native module among them fails the bundle, which is the point.
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
await build({
  entryPoints: [join(root, 'src', 'portable.ts')],
  outfile: join(root, 'dist', 'portable', 'airgap.mjs'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  minify: true,
  legalComments: 'eof',
  define: { AIRGAP_VERSION: JSON.stringify(version) },
  // CommonJS dependencies call require() for Node's own modules.
  banner: { js: "import { createRequire as __airgapRequire } from 'node:module'; const require = __airgapRequire(import.meta.url);" },
  logLevel: 'warning',
});
