/**
 * `airgap push` into registries a site runs, on loopback: a CNCF distribution registry on
 * plain HTTP, and one behind a token service (the way Harbor fronts distribution). skopeo
 * reads every reference back with the digest the bundle was built with. Trust comes
 * first: an untrusted or damaged file pushes nothing.
 */
import t, { type Test as TapTest } from 'tap';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createHash } from 'node:crypto';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { buildBundle } from '../../src/build/builder.js';
import { generateSigningKeys } from '../../src/format/keys.js';
import { openPayload } from '../../src/format/reader.js';
import { makeBusyboxLayout, makeChart, makeFiles, makePack, writeBundle, writeSyntheticLayout } from '../helpers/fixtures.js';
import { startRegistry } from '../helpers/registry.js';
import { startTokenRegistry } from '../helpers/token-registry.js';
import { AIRGAP } from '../helpers/appliance.js';
import { tempDir } from '../helpers/temp.js';

interface Report {
  status: string;
  version: string;
  target: string;
  images: number;
  charts: number;
  packs: number;
  blobsPushed: number;
  blobsSkipped: number;
  blobsMounted: number;
  bytesPushed: number;
  resumedBlobs: number;
  files: { count: number; pushed: boolean };
  references: Array<{ kind: string; source: string; reference: string; digest: string; outcome: string; error?: { code: string; message: string } }>;
  error?: { code: string; message: string; hint?: string };
}

const work = await tempDir(t, 'airgap-push-test-');
const state = await tempDir(t, 'airgap-push-state-');
const keys = await generateSigningKeys(join(work, 'keys'));
const otherKeys = await generateSigningKeys(join(work, 'other-keys'));

await makeBusyboxLayout(join(work, 'images'), work);
/** Layer 0 of two images (the tar names its file by index): one upload, one mount. */
const sharedLayer = randomBytes(200_000);
await writeSyntheticLayout(join(work, 'images'), [
  { ref: 'app', layers: [sharedLayer, randomBytes(300_000)] },
  { ref: 'multiarch', layers: [sharedLayer], platforms: [{ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64', variant: 'v8' }] },
]);
await makeChart(join(work, 'charts'), 'hello', '0.1.0');
await makePack(join(work, 'packs'), 'cilium', '1.14.2');
await makeFiles(join(work, 'manifests'));
await writeBundle(work, {
  name: 'demo',
  version: '1.0.0',
  images: [
    { source: 'oci:./images:busybox', target: 'library/busybox:1.36' },
    { source: 'oci:./images:app', target: 'apps/app:1.0' },
    { source: 'oci:./images:multiarch', target: 'apps/multiarch:1.0' },
  ],
  charts: [{ source: './charts/hello-0.1.0.tgz' }],
  packs: [{ source: './packs/cilium' }],
  files: [{ source: './manifests/', target: 'manifests/' }],
});
const bin = (await buildBundle({ specPath: join(work, 'bundle.yaml'), out: join(work, 'out'), privateKeyPath: keys.privateKeyPath })).path;
const opened = await openPayload(bin);
const built = Object.fromEntries([...opened.toc.images, ...opened.toc.charts, ...opened.toc.packs].map((a) => [a.target, a.digest]));
await opened.close();

/** Runs the real CLI, with the push journal in this test's state dir. */
function push(args: string[], input?: string) {
  return execa(AIRGAP, ['push', bin, ...args], { reject: false, env: { XDG_STATE_HOME: state }, ...(input !== undefined ? { input } : { stdin: 'ignore' }) });
}

/** sha256 of the manifest skopeo reads at `reference` (over plain HTTP). */
async function digestAt(reference: string, creds?: string): Promise<string> {
  const r = await execa('skopeo', ['inspect', '--raw', '--tls-verify=false', ...(creds ? ['--creds', creds] : []), `docker://${reference}`], { encoding: 'buffer', stripFinalNewline: false });
  return `sha256:${createHash('sha256').update(r.stdout).digest('hex')}`;
}

async function catalog(host: string): Promise<string[]> {
  return ((await (await fetch(`http://${host}/v2/_catalog`)).json()) as { repositories: string[] }).repositories;
}

t.test('a plain-HTTP registry: every reference lands with its digest; a second run is unchanged', async (t) => {
  const registry = await startRegistry(t);
  const r = await push(['--to', `${registry.host}/mirror`, '--insecure-registry', registry.host, '--key', keys.publicKeyPath, '--json']);
  t.equal(r.exitCode, 0, r.stderr);
  const report = JSON.parse(r.stdout) as Report;
  t.equal(report.status, 'pushed');
  t.equal(report.target, `${registry.host}/mirror`);
  t.match(report, { images: 3, charts: 1, packs: 1, files: { count: 4, pushed: false } });
  t.ok(report.blobsPushed > 0 && report.bytesPushed > 0);
  t.ok(report.blobsMounted > 0, 'a layer two repositories share is sent once and mounted into the other');
  t.same(report.references.map((x) => x.reference).sort(), [
    `${registry.host}/mirror/apps/app:1.0`,
    `${registry.host}/mirror/apps/multiarch:1.0`,
    `${registry.host}/mirror/charts/hello:0.1.0`,
    `${registry.host}/mirror/library/busybox:1.36`,
    `${registry.host}/mirror/packs/cilium:1.14.2`,
  ]);
  for (const ref of report.references) {
    t.equal(ref.outcome, 'pushed', ref.reference);
    t.equal(ref.digest, built[ref.source], `${ref.source}: the digest it was built with`);
    t.equal(await digestAt(ref.reference), ref.digest, `skopeo reads ${ref.reference} back`);
  }

  const again = await push(['--to', `${registry.host}/mirror`, '--insecure-registry', registry.host, '--key', keys.publicKeyPath, '--json']);
  t.equal(again.exitCode, 0, again.stderr);
  const second = JSON.parse(again.stdout) as Report;
  t.match(second, { status: 'unchanged', blobsPushed: 0, bytesPushed: 0 });
  t.ok(second.references.every((x) => x.outcome === 'unchanged'));

  // --registry-map and --packs-to: packs to another registry, a repository renamed.
  const packs = await startRegistry(t);
  const mapped = await push(['--to', registry.host, '--packs-to', `${packs.host}/addons`, '--insecure-registry', registry.host, '--insecure-registry', packs.host, '--registry-map', 'library=base', '--key', keys.publicKeyPath, '--json']);
  t.equal(mapped.exitCode, 0, mapped.stderr);
  const refs = (JSON.parse(mapped.stdout) as Report).references.map((x) => x.reference);
  t.ok(refs.includes(`${registry.host}/base/busybox:1.36`), 'library/ became base/');
  t.ok(refs.includes(`${packs.host}/addons/packs/cilium:1.14.2`), 'the pack went to --packs-to');
  t.same(await catalog(packs.host), ['addons/packs/cilium']);
});

t.test('plain HTTP only when asked for; a dry run sends nothing', async (t) => {
  const registry = await startRegistry(t);
  const r = await push(['--to', registry.host, '--key', keys.publicKeyPath]);
  t.equal(r.exitCode, 1);
  t.match(r.stderr, /AG_REGISTRY|TLS|HTTPS|https/i, 'HTTPS is tried and fails; no silent fallback');
  t.same(await catalog(registry.host), []);
  const dry = await push(['--to', `${registry.host}/x`, '--insecure-registry', registry.host, '--key', keys.publicKeyPath, '--dry-run', '--json']);
  t.equal(dry.exitCode, 0, dry.stderr);
  t.equal((JSON.parse(dry.stdout) as Report).status, 'planned');
  t.same(await catalog(registry.host), [], 'nothing sent');
});

t.test('trust first: no key, another key, a damaged file: nothing is pushed', async (t) => {
  const registry = await startRegistry(t);
  const base = ['--to', registry.host, '--insecure-registry', registry.host];
  const none = await push(base);
  t.equal(none.exitCode, 1);
  t.match(none.stderr, /AG_NO_TRUSTED_KEYS/);
  const other = await push([...base, '--key', otherKeys.publicKeyPath]);
  t.equal(other.exitCode, 1);
  t.match(other.stderr, /AG_UNKNOWN_KEY/);
  // One byte of the largest layer flipped: the signature still verifies, the data does not.
  const damaged = join(work, 'damaged.bin');
  await copyFile(bin, damaged);
  const bytes = await readFile(damaged);
  const o = await openPayload(bin);
  const largest = [...o.byPath.values()].filter((e) => e.path.startsWith('oci/blobs/')).sort((a, b) => b.size - a.size)[0]!;
  await o.close();
  bytes[largest.offset + 1000]! ^= 0x01;
  await writeFile(damaged, bytes);
  const r = await execa(AIRGAP, ['push', damaged, ...base, '--key', keys.publicKeyPath], { reject: false, env: { XDG_STATE_HOME: state }, stdin: 'ignore' });
  t.equal(r.exitCode, 1);
  t.match(r.stderr, /AG_ENTRY_DIGEST/);
  t.same(await catalog(registry.host), [], 'not even one blob');
});

t.test('a registry behind a token service: the password from stdin; a wrong one names the registry and the user', async (t) => {
  const registry = await startTokenRegistry(t);
  const args = ['--to', `${registry.host}/platform`, '--insecure-registry', registry.host, '--key', keys.publicKeyPath, '--username', registry.username, '--password-stdin', '--json'];
  const r = await push(args, `${registry.password}\n`);
  t.equal(r.exitCode, 0, r.stderr);
  const report = JSON.parse(r.stdout) as Report;
  t.equal(report.status, 'pushed');
  for (const ref of report.references) t.equal(await digestAt(ref.reference, `${registry.username}:${registry.password}`), ref.digest, ref.reference);
  t.ok(registry.tokenRequests.some((q) => q.status === 200 && q.scopes.some((s) => s.endsWith(':pull,push'))), 'push tokens came from the token service');

  const wrong = await push(args, 'not-the-password\n');
  t.equal(wrong.exitCode, 1);
  t.match(wrong.stderr, new RegExp(`${registry.host}`), 'names the registry');
  t.match(wrong.stderr, new RegExp(registry.username), 'and the user');
  const argv = await push(['--to', registry.host, '--key', keys.publicKeyPath, '--username', 'robot']);
  t.equal(argv.exitCode, 2, 'a password is never taken from the command line');

  // docker login with an OAuth2 registry leaves an identitytoken: tokens come from the
  // OAuth2 form (POST, grant_type=refresh_token), not from a password.
  const tokenFile = join(work, 'identitytoken.json');
  await writeFile(tokenFile, JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from('<token>:').toString('base64'), identitytoken: registry.refreshToken } } }));
  const before = registry.tokenRequests.length;
  const viaToken = await push(['--to', `${registry.host}/oauth`, '--insecure-registry', registry.host, '--key', keys.publicKeyPath, '--registry-auth', tokenFile, '--json']);
  t.equal(viaToken.exitCode, 0, viaToken.stderr);
  const asked = registry.tokenRequests.slice(before).filter((q) => q.status === 200);
  t.ok(asked.length > 0 && asked.every((q) => q.method === 'POST'), 'every token of the push was asked for with the refresh token');
  for (const ref of (JSON.parse(viaToken.stdout) as Report).references) t.equal(await digestAt(ref.reference, `${registry.username}:${registry.password}`), ref.digest, ref.reference);
  await writeFile(tokenFile, JSON.stringify({ auths: { [registry.host]: { identitytoken: 'expired-or-revoked' } } }));
  const revoked = await push(['--to', `${registry.host}/oauth`, '--insecure-registry', registry.host, '--key', keys.publicKeyPath, '--registry-auth', tokenFile]);
  t.equal(revoked.exitCode, 1);
  t.match(revoked.stderr, /refused the identity token/);
});

t.test('HTTPS from a private CA with htpasswd: --ca-file and a docker config.json; without the CA, a TLS error', async (t) => {
  const login = { username: 'pusher', password: 'pw-for-push' };
  const registry = await startRegistry(t, login, { tls: true });
  const authFile = join(work, 'config.json');
  await writeFile(authFile, JSON.stringify({ auths: { [`https://${registry.host}/v2/`]: { auth: Buffer.from(`${login.username}:${login.password}`).toString('base64') } } }));
  const args = ['--to', `${registry.host}/site`, '--key', keys.publicKeyPath, '--registry-auth', authFile, '--json'];
  const untrusted = await push(args);
  t.equal(untrusted.exitCode, 1);
  t.match(untrusted.stderr, /certificate|self.signed|unable to verify/i, 'the registry is not trusted without --ca-file');
  const r = await push([...args, '--ca-file', registry.caFile!]);
  t.equal(r.exitCode, 0, r.stderr);
  const report = JSON.parse(r.stdout) as Report;
  t.equal(report.status, 'pushed');
  const certDir = await tempDir(t, 'airgap-push-certs-'); // skopeo takes a folder of CA .crt files
  await copyFile(registry.caFile!, join(certDir, 'ca.crt'));
  for (const ref of report.references) {
    const raw = await execa('skopeo', ['inspect', '--raw', '--cert-dir', certDir, '--creds', `${login.username}:${login.password}`, `docker://${ref.reference}`], { encoding: 'buffer', stripFinalNewline: false });
    t.equal(`sha256:${createHash('sha256').update(raw.stdout).digest('hex')}`, ref.digest, `skopeo reads ${ref.reference} back over TLS`);
  }
});

/**
 * An HTTP proxy in front of a registry that can misbehave on blob uploads (`PUT` of an
 * upload session): `cut` drops the connection of the next one after 64 KiB; `stall` holds
 * every one after the first `n` completed, never answering.
 */
async function startProxy(t: TapTest, upstream: string, hook?: (req: IncomingMessage, body: Buffer | undefined) => Promise<{ status: number; body: unknown; headers?: Record<string, string> } | undefined>) {
  const { createServer, request } = await import('node:http');
  const state = { mode: 'pass' as 'pass' | 'cut' | 'stall', stallAfter: 0, putsDone: 0, cuts: 0, stalled: 0 };
  /** With a hook: the whole request is read, shown to the hook, then answered by it or passed on. */
  const viaHook = async (req: IncomingMessage, res: ServerResponse, rules: NonNullable<typeof hook>) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const answer = await rules(req, body);
    if (answer) {
      res.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers }).end(JSON.stringify(answer.body));
      return;
    }
    const [host, port] = upstream.split(':');
    const out = request({ host, port: Number(port), method: req.method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    out.on('error', () => res.destroy());
    out.end(body);
  };
  const server = createServer((req, res) => {
    if (hook) {
      // A stand-in for a registry's own rules in front of distribution.
      viaHook(req, res, hook).catch(() => res.destroy());
      return;
    }
    const isBlobPut = req.method === 'PUT' && /\/blobs\/uploads\//.test(req.url ?? '');
    if (isBlobPut && state.mode === 'stall' && state.putsDone >= state.stallAfter) {
      state.stalled++;
      req.resume(); // read the body, answer nothing
      return;
    }
    const [host, port] = upstream.split(':');
    const out = request({ host, port: Number(port), method: req.method, path: req.url, headers: req.headers }, (up) => {
      if (isBlobPut && up.statusCode === 201) state.putsDone++;
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    out.on('error', () => res.destroy());
    if (isBlobPut && state.mode === 'cut') {
      let seen = 0;
      req.on('data', (chunk: Buffer) => {
        seen += chunk.length;
        if (seen > 64 * 1024 && state.mode === 'cut') {
          state.mode = 'pass';
          state.cuts++;
          out.destroy();
          req.socket.destroy();
        }
      });
    }
    req.pipe(out);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  return { host: `127.0.0.1:${(server.address() as { port: number }).port}`, state };
}

t.test('a connection cut mid-blob is retried; a push killed with kill -9 continues where it was', async (t) => {
  const registry = await startRegistry(t);
  const proxy = await startProxy(t, registry.host);
  const args = ['--to', `${proxy.host}/resume`, '--insecure-registry', proxy.host, '--key', keys.publicKeyPath, '--jobs', '1', '--json'];

  proxy.state.mode = 'cut';
  const cut = await push(args);
  t.equal(cut.exitCode, 0, cut.stderr);
  t.equal(proxy.state.cuts, 1, 'one upload was cut');
  for (const ref of (JSON.parse(cut.stdout) as Report).references) t.equal(await digestAt(ref.reference.replace(proxy.host, registry.host)), ref.digest, ref.reference);

  // Again, to a fresh prefix: stall after two uploads, kill -9, then run the same command.
  const fresh = ['--to', `${proxy.host}/killed`, ...args.slice(2)];
  proxy.state.mode = 'stall';
  proxy.state.stallAfter = proxy.state.putsDone + 2;
  const child = execa(AIRGAP, ['push', bin, ...fresh], { reject: false, env: { XDG_STATE_HOME: state }, stdin: 'ignore' });
  const stalled = await (async () => {
    for (let i = 0; i < 600 && child.exitCode === null; i++) {
      if (proxy.state.stalled > 0) return true;
      await new Promise((r) => setTimeout(r, 50));
    }
    return false;
  })();
  t.ok(stalled, 'the push is held on its third upload');
  child.kill('SIGKILL');
  await child;
  proxy.state.mode = 'pass';
  const again = await push(fresh);
  t.equal(again.exitCode, 0, again.stderr);
  const report = JSON.parse(again.stdout) as Report;
  t.equal(report.status, 'pushed');
  t.ok(report.resumedBlobs >= 2, 'the journal had the finished uploads');
  t.ok(report.blobsSkipped >= 2, 'and they were not sent again');
  for (const ref of report.references) t.equal(await digestAt(ref.reference.replace(proxy.host, registry.host)), ref.digest, ref.reference);
});

t.test('registry rules users hit: a missing project, no cross-repository mount, an immutable tag', async (t) => {
  const registry = await startRegistry(t);
  const harborLike = await startProxy(t, registry.host, async (req, body) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const repo = /^\/v2\/(.+?)\/(?:blobs|manifests)\//.exec(url.pathname)?.[1] ?? '';
    if (repo && !repo.startsWith('proj/')) return { status: 404, body: { errors: [{ code: 'NOT_FOUND', message: `project ${repo.split('/')[0]} not found` }] } };
    if (req.method === 'POST' && url.searchParams.has('mount')) return { status: 405, body: { errors: [{ code: 'UNSUPPORTED', message: 'cross-repository mount is not supported' }] } };
    const tag = /\/manifests\/([^/]+)$/.exec(url.pathname)?.[1];
    if (req.method === 'PUT' && tag && !tag.startsWith('sha256:')) {
      const now = await fetch(`http://${registry.host}${url.pathname}`, { method: 'HEAD', headers: { accept: 'application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json' } });
      const digest = `sha256:${createHash('sha256').update(body ?? Buffer.alloc(0)).digest('hex')}`;
      if (now.ok && now.headers.get('docker-content-digest') !== digest) return { status: 412, body: { errors: [{ code: 'PRECONDITION', message: `${repo}:${tag} is configured as immutable, cannot be updated` }] } };
    }
    return undefined;
  });
  const base = ['--insecure-registry', harborLike.host, '--key', keys.publicKeyPath, '--json'];

  const missing = await push(['--to', `${harborLike.host}/noproj`, ...base]);
  t.equal(missing.exitCode, 1);
  t.match(missing.stderr, /project noproj not found/, "the registry's words");
  t.match(missing.stderr, /no project \(or group\) 'noproj': create it/, 'and what to do');

  const r = await push(['--to', `${harborLike.host}/proj`, ...base]);
  t.equal(r.exitCode, 0, r.stderr);
  const report = JSON.parse(r.stdout) as Report;
  t.equal(report.status, 'pushed');
  t.equal(report.blobsMounted, 0, 'no mounts here: the shared layer was uploaded to both repositories');

  // The multi-arch image mapped onto the app's tag: another digest for an immutable tag.
  const clash = await push(['--to', `${harborLike.host}/proj`, '--registry-map', 'apps/multiarch=apps/app', ...base]);
  t.equal(clash.exitCode, 1, 'not every reference landed');
  const partial = JSON.parse(clash.stdout) as Report;
  t.equal(partial.status, 'partial');
  const failed = partial.references.filter((x) => x.outcome === 'failed');
  t.equal(failed.length, 1, 'only the clashing reference failed');
  t.match(failed[0]!.error!.message, /configured as immutable/);
  t.ok(partial.references.filter((x) => x.outcome !== 'failed').every((x) => x.outcome === 'unchanged'), 'the others are there, unchanged');
  t.equal(await digestAt(`${registry.host}/proj/apps/app:1.0`), built['apps/app:1.0'], 'the immutable tag kept its digest');
});

t.test('a registry that fails part-way: --json still prints the report (what landed, why it stopped), exit 1; the same command finishes', async (t) => {
  const registry = await startRegistry(t);
  let refuse = true;
  const proxy = await startProxy(t, registry.host, async (req) => {
    // The charts stage comes after the images: refuse the chart's upload for good.
    if (refuse && req.method === 'POST' && /\/charts\/hello\/blobs\/uploads\/$/.test(new URL(req.url ?? '/', 'http://x').pathname)) {
      return { status: 400, body: { errors: [{ code: 'BLOB_UPLOAD_INVALID', message: 'quota exceeded for charts' }] } };
    }
    return undefined;
  });
  const args = ['--to', `${proxy.host}/parted`, '--insecure-registry', proxy.host, '--key', keys.publicKeyPath, '--json'];
  const stopped = await push(args);
  t.equal(stopped.exitCode, 1, 'not every reference landed');
  const report = JSON.parse(stopped.stdout) as Report;
  t.equal(report.status, 'partial');
  t.ok(report.blobsPushed > 0, `the images' ${report.blobsPushed} blobs landed before the charts stage stopped`);
  t.match(report.error, { message: /quota exceeded for charts/ }, 'the report says why it stopped');
  t.ok(report.references.every((r) => r.outcome === 'failed' && r.error?.code === report.error!.code), 'no tag moved: every reference failed, with the error');
  t.match(stopped.stderr, /airgap: error: .*quota exceeded for charts/, 'stderr says it too');
  t.match(stopped.stderr, /hint: run the same command again/);
  t.equal(await fetch(`http://${registry.host}/v2/parted/apps/app/manifests/1.0`, { method: 'HEAD' }).then((r) => r.status), 404, 'no tag was set');

  refuse = false;
  const again = await push(args);
  t.equal(again.exitCode, 0, again.stderr);
  const finished = JSON.parse(again.stdout) as Report;
  t.equal(finished.status, 'pushed');
  t.notOk(finished.error);
  t.equal(finished.resumedBlobs, report.blobsPushed + report.blobsMounted + report.blobsSkipped, 'the blobs that landed were not sent again');
  for (const ref of finished.references) t.equal(await digestAt(ref.reference.replace(proxy.host, registry.host)), ref.digest, ref.reference);
});

t.test('a proxy that refuses large bodies (413): the push goes on in chunks; --chunk-size chunks from the start', async (t) => {
  const registry = await startRegistry(t);
  const limit = 256 * 1024;
  const seen = { patches: 0, refused: 0, largest: 0 };
  const proxy = await startProxy(t, registry.host, async (req, body) => {
    const length = body?.length ?? 0;
    if (length > limit) {
      seen.refused++;
      return { status: 413, body: { errors: [{ code: 'SIZE_INVALID', message: 'request entity too large' }] } };
    }
    if (req.method === 'PATCH') {
      seen.patches++;
      seen.largest = Math.max(seen.largest, length);
    }
    return undefined;
  });
  const r = await push(['--to', `${proxy.host}/chunked`, '--insecure-registry', proxy.host, '--key', keys.publicKeyPath, '--json']);
  t.equal(r.exitCode, 0, r.stderr);
  t.ok(seen.refused > 0, `the proxy refused ${seen.refused} large bodies`);
  t.ok(seen.patches > 0 && seen.largest <= limit, `${seen.patches} chunks of at most ${seen.largest} bytes`);
  for (const ref of (JSON.parse(r.stdout) as Report).references) t.equal(await digestAt(ref.reference.replace(proxy.host, registry.host)), ref.digest, ref.reference);

  const plain = await startRegistry(t);
  const counting = await startProxy(t, plain.host, async (req) => {
    if (req.method === 'PATCH') seen.patches++;
    return undefined;
  });
  seen.patches = 0;
  const chunked = await push(['--to', `${counting.host}/chunked`, '--insecure-registry', counting.host, '--key', keys.publicKeyPath, '--chunk-size', '64KiB', '--json']);
  t.equal(chunked.exitCode, 0, chunked.stderr);
  t.ok(seen.patches >= 3, `--chunk-size 64KiB: ${seen.patches} chunks`);
  for (const ref of (JSON.parse(chunked.stdout) as Report).references) t.equal(await digestAt(ref.reference.replace(counting.host, plain.host)), ref.digest, ref.reference);
  const bad = await push(['--to', `${counting.host}/x`, '--insecure-registry', counting.host, '--key', keys.publicKeyPath, '--chunk-size', 'lots']);
  t.equal(bad.exitCode, 2);
  t.match(bad.stderr, /--chunk-size 'lots' is not a size/);
});

t.test('a registry that answers 429 with Retry-After is waited for, then the push lands', async (t) => {
  const registry = await startRegistry(t);
  let throttled = 0;
  const proxy = await startProxy(t, registry.host, async (req) => {
    if (req.method === 'POST' && /\/blobs\/uploads\/$/.test(new URL(req.url ?? '/', 'http://x').pathname) && throttled < 2) {
      throttled++;
      return { status: 429, body: { errors: [{ code: 'TOOMANYREQUESTS', message: 'slow down' }] }, headers: { 'retry-after': '1' } };
    }
    return undefined;
  });
  const started = Date.now();
  const r = await push(['--to', `${proxy.host}/throttled`, '--insecure-registry', proxy.host, '--key', keys.publicKeyPath, '--jobs', '1', '--json']);
  t.equal(r.exitCode, 0, r.stderr);
  t.equal(throttled, 2, 'two uploads were refused with 429');
  t.ok(Date.now() - started >= 2000, 'each Retry-After of 1 s was waited for');
  for (const ref of (JSON.parse(r.stdout) as Report).references) t.equal(await digestAt(ref.reference.replace(proxy.host, registry.host)), ref.digest, ref.reference);
});
