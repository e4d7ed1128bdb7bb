/**
 * A .bin that carries its runtime (format 2): `sh FILE.bin push|verify|inspect` on a
 * machine where Node.js cannot run and no airgap is on PATH (a mount namespace with
 * /dev/null bound over this machine's node). The pushed image reads back with skopeo at
 * the digest it was built with; a damaged runtime runs nothing and pushes nothing.
 */
import t from 'tap';
import { copyFile, mkdir, open, readFile, readdir, realpath, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { buildBundle } from '../../src/build/builder.js';
import { localRuntime } from '../../src/build/runtime.js';
import { generateSigningKeys } from '../../src/format/keys.js';
import { openPayload } from '../../src/format/reader.js';
import { RUNTIME_NODE_PATH } from '../../src/format/layout.js';
import { writeBundle, writeSyntheticLayout } from '../helpers/fixtures.js';
import { startRegistry } from '../helpers/registry.js';
import { tempDir } from '../helpers/temp.js';
import { runAirgap } from '../helpers/cli.js';

const work = await tempDir(t, 'airgap-push-runtime-test-');
/** TMPDIR of the .bin's sh: where it unpacks its runtime, checked empty after each run. */
const tmp = await tempDir(t, 'airgap-push-runtime-tmp-');
/** HOME of the .bin's sh (its push journal goes under it). */
const home = await tempDir(t, 'airgap-push-runtime-home-');
const keys = await generateSigningKeys(join(work, 'keys'));
const otherKeys = await generateSigningKeys(join(work, 'other-keys'));
const built = await writeSyntheticLayout(join(work, 'images'), [{ ref: 'app', layers: [randomBytes(150_000), randomBytes(50_000)] }]);
const spec = await writeBundle(work, { name: 'portable', version: '1.2.3', images: [{ source: 'oci:./images:app', target: 'apps/app:1.0' }] });
const { path: bin, runtime } = await buildBundle({ specPath: spec, out: work, privateKeyPath: keys.privateKeyPath, runtime: await localRuntime() });
const node = await realpath(process.execPath);

/**
 * Runs `argv` in a new mount namespace where this machine's node is /dev/null, with a
 * PATH of system folders only (no checkout, no airgap), TMPDIR `tmp` and HOME `home`.
 */
function runBare(argv: string[]) {
  const script = 'node=$1 tmp=$2 home=$3; shift 3; mount --bind /dev/null "$node" && exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin TMPDIR="$tmp" HOME="$home" "$@"';
  return execa('unshare', ['-m', 'sh', '-c', script, 'sh', node, tmp, home, ...argv], { reject: false });
}

t.test('the build says what it carries; the reader accepts format 2', async (t) => {
  t.match(runtime, { node: process.version, platform: `linux-${process.arch}` });
  const opened = await openPayload(bin, {});
  t.teardown(() => opened.close());
  t.equal(opened.header.format, '2');
  t.same(opened.toc.runtime, { node: process.version, platform: `linux-${process.arch}` });
  t.equal(opened.header.runtime?.node.offset, opened.byPath.get(RUNTIME_NODE_PATH)?.offset);
});

t.test('the format 2 header passes shellcheck', async (t) => {
  const header = join(work, 'header.sh');
  const text = (await readFile(bin)).subarray(0, 16384).toString('latin1');
  await writeFile(header, text.slice(0, text.indexOf('__AIRGAP_PAYLOAD_BELOW__')));
  const sc = await execa('shellcheck', ['-s', 'sh', header], { reject: false });
  t.equal(sc.exitCode, 0, sc.stdout);
});

t.test('where Node.js cannot run, the .bin verifies and pushes with its own runtime', async (t) => {
  const probe = await runBare(['node', '-v']);
  t.not(probe.exitCode, 0, `node does not run in the namespace: ${probe.stderr}`);

  const verified = await runBare(['sh', bin, 'verify', '--key', keys.publicKeyPath, '--json']);
  t.equal(verified.exitCode, 0, verified.stderr);
  t.match(JSON.parse(verified.stdout), { status: 'verified', version: '1.2.3', signature: { status: 'verified' } });
  const wrongKey = await runBare(['sh', bin, 'verify', '--key', otherKeys.publicKeyPath]);
  t.equal(wrongKey.exitCode, 1);
  t.match(wrongKey.stderr, /AG_UNKNOWN_KEY/);

  const registry = await startRegistry(t);
  const pushed = await runBare(['sh', bin, 'push', '--to', `${registry.host}/site`, '--insecure-registry', registry.host, '--key', keys.publicKeyPath, '--json']);
  t.equal(pushed.exitCode, 0, pushed.stderr);
  t.match(JSON.parse(pushed.stdout), { status: 'pushed', version: '1.2.3', images: 1 });
  const inspected = await execa('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/site/apps/app:1.0`]);
  t.equal(`sha256:${createHash('sha256').update(inspected.stdout).digest('hex')}`, built.app!.digest, 'skopeo reads the image at the digest it was built with');
  t.same(await readdir(tmp), [], 'the unpacked runtime is removed');
});

t.test('the portable CLI removes only the runtime folder it runs from', async (t) => {
  const cli = join(import.meta.dirname, '..', '..', 'dist', 'portable', 'airgap.mjs');
  const other = await tempDir(t, 'airgap-runtime.keepme');
  const kept = await execa('node', [cli, '--version'], { env: { AIRGAP_RUNTIME_DIR: other }, reject: false });
  t.equal(kept.exitCode, 0);
  t.ok(await stat(other).then(() => true, () => false), 'a folder the module is not in is left alone');
  const own = join(tmp, 'airgap-runtime.abc123');
  await mkdir(own);
  await copyFile(cli, join(own, 'airgap.mjs'));
  const removed = await execa('node', [join(own, 'airgap.mjs'), '--version'], { env: { AIRGAP_RUNTIME_DIR: own }, reject: false });
  t.equal(removed.exitCode, 0);
  t.notOk(await stat(own).then(() => true, () => false), 'its own folder is removed as it starts');
});

t.test('airgap verify: a --key that names no key is refused, never "verified" without a signature check', async (t) => {
  const empty = await tempDir(t, 'airgap-no-keys-');
  const r = await runAirgap(['verify', bin, '--key', empty]);
  t.equal(r.exitCode, 1);
  t.match(r.stderr, /AG_NO_TRUSTED_KEYS/);
  const damageOnly = await runAirgap(['verify', bin, '--allow-unsigned', '--json']);
  t.equal(damageOnly.exitCode, 0, damageOnly.stderr);
  t.match(JSON.parse(damageOnly.stdout), { status: 'verified', signature: { status: 'unchecked' } });
});

t.test('a damaged runtime entry runs nothing and pushes nothing', async (t) => {
  const damaged = join(work, 'damaged.bin');
  await copyFile(bin, damaged);
  const opened = await openPayload(damaged, {});
  const at = opened.byPath.get(RUNTIME_NODE_PATH)!.offset + 1000;
  await opened.close();
  const fh = await open(damaged, 'r+');
  const byte = Buffer.alloc(1);
  await fh.read(byte, 0, 1, at);
  await fh.write(Buffer.from([byte[0]! ^ 0xff]), 0, 1, at);
  await fh.close();
  const registry = await startRegistry(t);
  const r = await runBare(['sh', damaged, 'push', '--to', registry.host, '--insecure-registry', registry.host, '--key', keys.publicKeyPath]);
  t.equal(r.exitCode, 1);
  t.match(r.stderr, /payload sha256 mismatch/);
  const catalog = await execa('curl', ['-sf', `http://${registry.host}/v2/_catalog`]);
  t.same(JSON.parse(catalog.stdout), { repositories: [] }, 'nothing pushed');
  t.same(await readdir(tmp), [], 'nothing unpacked');
});
