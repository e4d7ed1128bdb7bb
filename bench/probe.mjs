// temporary probe (not committed): phase timings of pushBin
import { pushBin, parseDestination } from '../dist/src/push/push.js';
import { startAppliance } from '../dist/bench/common.js';
import { loadPublicKeys, PUBLIC_KEY_FILE } from '../dist/src/format/keys.js';
import { readFile } from 'node:fs/promises';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
const work = new URL('./work/images/', import.meta.url).pathname;
const keyPath = join(work, 'keys', PUBLIC_KEY_FILE);
const t = await startAppliance('probe', keyPath);
const [user, pass] = t.creds.split(':');
const ca = await readFile(join(t.certDir, 'ca.crt'), 'utf8');
const [key] = await loadPublicKeys([keyPath]);
for (const rel of ['v1', 'v2']) {
  const dir = join(work, rel);
  const file = join(dir, readdirSync(dir).find((f) => f.endsWith('.bin')));
  const t0 = Date.now(); let stage = '';
  const r = await pushBin({ file, to: parseDestination(t.registry, '--to'), trustedKeys: [key], allowUnsigned: false, credentialsFor: () => ({ username: user, password: pass }), caPem: ca, insecureRegistries: [], registryMap: [], jobs: Number(process.env.JOBS ?? 4), dryRun: false, journalDir: join(work, 'probe-journal'),
    onProgress: (p) => { if (p.stage !== stage) { console.log(rel, ((Date.now() - t0) / 1000).toFixed(2), p.stage); stage = p.stage; } } });
  console.log(rel, ((Date.now() - t0) / 1000).toFixed(2), 'done', r.status, r.blobsPushed);
}
await t.stop();
