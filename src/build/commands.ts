/**
 * The connected-side verbs of the `airgap` CLI (docs/architecture.md, "CLI"):
 *
 *   airgap build <bundle.yaml> --out FILE [--key PRIVATE.pem]
 *   airgap keygen --out DIR
 *   airgap inspect FILE.bin [--key PUB] [--json]
 *
 * Each verb's flags are one table that the parser and `--help` both read.
 */
import { readFile } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import { PayloadError, UsageError } from '../kit/errors.js';
import { defineCommand, EXIT, print, progressReporter, type CliContext, type Command } from '../kit/cli.js';
import { formatBytes, formatDuration, printable, table } from '../kit/text.js';
import { loadRegistryAuth } from '../oci/auth-file.js';
import { generateSigningKeys, loadPublicKeys } from '../format/keys.js';
import { openPayload, verifyPayloadData, type OpenedPayload, type OpenOptions } from '../format/reader.js';
import { buildBundle, planBuild, type BuildPlan, type BuildProgress } from './builder.js';
import { discoverChartImages, imageItemFor, imagesInManifests } from './discover.js';
import { defaultRuntimeCache, localRuntime } from './runtime.js';

const buildCommand = defineCommand({
  name: 'build',
  summary: 'build a signed, self-extracting airgap-v<version>.bin from bundle.yaml',
  usage: 'airgap build <bundle.yaml> [--out FILE|DIR] [--key PRIVATE.pem] [options]',
  description: `Reads bundle.yaml (images, charts, packs, files) and writes one self-extracting
.bin: a sh header and an uncompressed tar whose TOC is signed with --key.`,
  args: { min: 1, max: 1 },
  options: {
    out: { type: 'string', short: 'o', value: 'FILE|DIR', description: 'output file, or folder for airgap-v<version>.bin', default: '.' },
    key: { type: 'string', short: 'k', value: 'PRIVATE.pem', description: "ed25519 signing key from 'airgap keygen'; without it the .bin is unsigned" },
    'insecure-registry': { type: 'string', multiple: true, value: 'HOST', description: 'reach HOST[:PORT] over plain HTTP, e.g. a lab mirror' },
    'registry-auth': { type: 'string', value: 'FILE', description: 'registry credentials, a docker config.json' },
    'ca-file': { type: 'string', value: 'FILE', description: "PEM of the private CA source registries' certificates chain to" },
    'no-runtime': { type: 'boolean', description: 'carry no Node.js (format 1, about 37 MB smaller, readable by appliances older than format 2): then sh FILE push, verify and inspect are not there' },
    'runtime-node': { type: 'string', value: 'FILE', description: 'the Node.js to carry: self-contained, for Linux x64 or arm64 (default: the one running this build)' },
    'dry-run': { type: 'boolean', description: 'resolve every source (versions, discovered images, registries) and show the plan; write nothing' },
    json: { type: 'boolean', description: 'print the result as one JSON document' },
    quiet: { type: 'boolean', short: 'q', description: 'no progress' },
  },
  environment: [
    { name: 'SOURCE_DATE_EPOCH', description: 'the creation time written into the .bin, in seconds since 1970, for a reproducible build', default: 'now' },
    { name: 'XDG_CACHE_HOME', description: 'the gzipped runtime is kept in $XDG_CACHE_HOME/airgap/runtime/ between builds', default: '~/.cache' },
  ],
  async run({ values, positionals }, ctx) {
    const progress = progressReporter(ctx, values.quiet === true);
    const credentials = values['registry-auth'] ? await loadRegistryAuth(values['registry-auth']) : undefined;
    const caPem = values['ca-file']
      ? await readFile(values['ca-file'], 'utf8').catch((cause: unknown) => {
          throw new UsageError(`cannot read --ca-file ${values['ca-file']}`, { cause });
        })
      : undefined;
    if (values['no-runtime'] && values['runtime-node']) throw new UsageError('--no-runtime and --runtime-node exclude each other');
    if (values['dry-run']) {
      const plan = await planBuild({
        specPath: positionals[0]!,
        insecureRegistries: values['insecure-registry'] ?? [],
        ...(credentials ? { credentials } : {}),
        ...(caPem ? { caPem } : {}),
        ...(ctx.signal ? { signal: ctx.signal } : {}),
        onProgress: (p: BuildProgress) => {
          if (p.item) progress.line(`Reading ${p.item}`);
        },
      });
      progress.end();
      for (const warning of plan.warnings) print(ctx.stderr, `airgap: warning: ${printable(warning)}`);
      if (values.json) print(ctx.stdout, JSON.stringify({ dryRun: true, ...plan }, null, 2));
      else print(ctx.stdout, planText(plan));
      return EXIT.ok;
    }
    const runtime = values['no-runtime'] ? undefined : { ...(await localRuntime(values['runtime-node'])), cacheDir: defaultRuntimeCache(ctx.env) };
    const epoch = ctx.env.SOURCE_DATE_EPOCH;
    const started = Date.now();
    const result = await buildBundle({
      specPath: positionals[0]!,
      ...(values.out ? { out: values.out } : {}),
      ...(values.key ? { privateKeyPath: values.key } : {}),
      insecureRegistries: values['insecure-registry'] ?? [],
      ...(credentials ? { credentials } : {}),
      ...(caPem ? { caPem } : {}),
      ...(epoch && /^\d+$/.test(epoch) ? { created: new Date(Number(epoch) * 1000) } : {}),
      ...(ctx.signal ? { signal: ctx.signal } : {}),
      ...(runtime ? { runtime } : {}),
      onProgress: (p: BuildProgress) => {
        if (p.stage === 'plan' && p.item) progress.line(`Reading ${p.item}`);
        if (p.stage === 'write') progress.bytes('Writing', p.bytesDone, p.bytesTotal);
      },
    });
    progress.end();
    const seconds = (Date.now() - started) / 1000;
    for (const warning of result.warnings) print(ctx.stderr, `airgap: warning: ${printable(warning)}`);
    if (values.json) {
      print(ctx.stdout, JSON.stringify({ ...result, seconds }, null, 2));
    } else {
      print(
        ctx.stdout,
        [
          `Built ${result.path}`,
          `  ${result.name} ${result.version}, ${formatBytes(result.fileSize)} in ${formatDuration(seconds)}`,
          `  ${result.images.length} images, ${result.charts.length} charts, ${result.packs.length} packs, ${result.files.length} files; ${result.blobs} blobs`,
          `  payload sha256 ${result.payloadSha256}`,
          result.keyId ? `  signed with key ${result.keyId}` : '  UNSIGNED: appliances refuse it unless allowed explicitly; sign with --key',
          result.runtime
            ? `  carries Node.js ${result.runtime.node} ${result.runtime.platform} (${formatBytes(result.runtime.bytes)}): sh ${result.path} push|verify|inspect need nothing installed`
            : '  no runtime (--no-runtime): push, verify and inspect need the airgap CLI',
        ].join('\n'),
      );
    }
    return EXIT.ok;
  },
});

/** The dry run's plan, for people: each image with where it comes from, charts with their source. */
function planText(plan: BuildPlan): string {
  const found = new Map(plan.discovered.map((d) => [d.target, d.from]));
  return [
    printable(`Dry run: ${plan.name} ${plan.version} would carry`),
    `Images (${plan.images.length})`,
    ...(plan.images.length ? [table(plan.images.map((i) => [printable(i.target), i.digest, formatBytes(i.size), printable(found.has(i.target) ? `found in ${found.get(i.target)!.join('; ')}` : i.source)]))] : []),
    `Charts (${plan.charts.length})`,
    ...(plan.charts.length ? [table(plan.charts.map((c) => [printable(c.target), c.digest, printable(c.source ?? '')]))] : []),
    `Packs (${plan.packs.length})`,
    ...(plan.packs.length ? [table(plan.packs.map((p) => [printable(p.target), p.digest]))] : []),
    `Files (${plan.files.length}, ${formatBytes(plan.files.reduce((n, f) => n + f.size, 0))})`,
  ].join('\n');
}

/** What `airgap images discover` does, for the `images` verb's help (appliance/cli/import-commands.ts). */
export const DISCOVER_USAGE = 'airgap images discover CHART|FILE [--values FILE] [--json]';
export const DISCOVER_DESCRIPTION = `images discover lists the images a chart or Kubernetes manifests refer to, with where
each was found and the target bundle.yaml gives it (the reference without its registry
host). A chart (.tgz or folder) is rendered with helm template when helm is on PATH;
otherwise images are found without Helm: image maps (repository, tag, digest, registry)
and image strings in values, literal image: lines in templates, the
artifacthub.io/images annotation, and subcharts under charts/. A reference a template
builds from other values is missed then: review the list. A YAML file (or a pattern such
as './rendered/*.yaml'): the images of every pod template.`;

/**
 * Runs `airgap images discover WHAT [--values FILE] [--json]`: prints the images found.
 * Throws BundleError AG_SPEC, AG_CHART; UsageError for --values with manifest files.
 */
export async function runDiscover(what: string, valuesFile: string | undefined, json: boolean, ctx: CliContext): Promise<number> {
  const isYaml = /\.ya?ml$/i.test(what) || /[*?]/.test(what);
  if (isYaml && valuesFile) throw new UsageError('--values goes with a chart, not with manifest files');
  const result = isYaml
    ? { method: 'pod templates' as const, images: await imagesInManifests(what, process.cwd()) }
    : await discoverChartImages(resolvePath(what), valuesFile ? resolvePath(valuesFile) : undefined, ctx.env);
  const images = result.images.map((f) => ({ reference: f.reference, ...imageItemFor(f), from: f.from }));
  if (json) {
    print(ctx.stdout, JSON.stringify({ method: result.method, images }, null, 2));
    return EXIT.ok;
  }
  const note = result.method === 'values and templates' ? '\n(found without Helm: install helm to render the chart; a reference a template builds from other values is missed)' : '';
  print(ctx.stdout, [`${images.length} images (${result.method})`, ...(images.length ? [table(images.map((i) => [printable(i.reference), printable(i.target), printable(i.from.join('; '))]))] : [])].join('\n') + note);
  return EXIT.ok;
}

const keygenCommand = defineCommand({
  name: 'keygen',
  summary: 'make an ed25519 signing key pair',
  usage: 'airgap keygen --out DIR [--json]',
  description: `Writes DIR/airgap-signing.key (private, mode 0600: keep it on the build side) and
DIR/airgap-signing.pub (copy it into <state-dir>/trusted-keys/ on each appliance).
Refuses to overwrite an existing key.`,
  args: { min: 0, max: 0 },
  options: {
    out: { type: 'string', short: 'o', value: 'DIR', description: 'folder for the key pair, made if needed; required' },
    json: { type: 'boolean', description: 'print the paths and the key id as one JSON document' },
  },
  async run({ values }, ctx) {
    if (!values.out) throw new UsageError('--out DIR is required', { hint: 'airgap keygen --out DIR' });
    const keys = await generateSigningKeys(values.out);
    if (values.json) print(ctx.stdout, JSON.stringify(keys, null, 2));
    else print(ctx.stdout, `Wrote ${keys.privateKeyPath} (keep it secret)\nWrote ${keys.publicKeyPath}\nKey id ${keys.keyId}`);
    return EXIT.ok;
  },
});

function inspectJson(opened: OpenedPayload, dataVerified: boolean) {
  const { header, toc } = opened;
  return {
    file: opened.file,
    name: toc.name,
    version: toc.version,
    created: toc.created,
    format: header.format,
    fileSize: opened.fileSize,
    payload: { offset: header.payloadOffset, size: header.payloadSize, sha256: header.payloadSha256, verified: dataVerified },
    toc: { size: header.tocSize, sha256: header.tocSha256 },
    signature: opened.signature,
    entries: opened.entries.length,
    images: toc.images,
    charts: toc.charts,
    packs: toc.packs,
    files: toc.files.map((f) => ({ ...f, mode: `0${f.mode.toString(8)}` })),
  };
}

/**
 * Opens `file` (openPayload) and reads it once to check every entry's sha256
 * (verifyPayloadData), with progress unless `quiet`; closes it. Resolves the opened
 * payload (its handle closed: header, TOC, index and signature stay readable). Throws
 * PayloadError as those two do.
 */
async function openAndVerify(file: string, options: OpenOptions, ctx: CliContext, quiet: boolean): Promise<OpenedPayload> {
  const opened = await openPayload(file, options);
  try {
    const progress = progressReporter(ctx, quiet);
    await verifyPayloadData(opened, (p) => progress.bytes('Verifying', p.bytesDone, p.bytesTotal));
    progress.end();
  } finally {
    await opened.close();
  }
  return opened;
}

const inspectCommand = defineCommand({
  name: 'inspect',
  summary: 'verify a .bin and list what it holds',
  usage: 'airgap inspect FILE.bin [--key PUB] [--json]',
  description: `Parses the header as data (never runs it), indexes the tar, checks every entry
rule, the TOC and its signature, reads the payload once to verify every sha256,
and lists images (with digests), charts, packs and files.`,
  args: { min: 1, max: 1 },
  options: {
    key: { type: 'string', short: 'k', multiple: true, value: 'PUB', description: 'trusted public key file, or a folder of *.pub; with it, a missing, unknown or bad signature is refused' },
    json: { type: 'boolean', description: 'print one JSON document, and no progress' },
    quiet: { type: 'boolean', short: 'q', description: 'no progress' },
  },
  async run({ values, positionals }, ctx) {
    const trustedKeys = values.key ? await loadPublicKeys(values.key) : [];
    const opened = await openAndVerify(positionals[0]!, { trustedKeys }, ctx, values.quiet === true || values.json === true);
    if (values.json) {
      print(ctx.stdout, JSON.stringify(inspectJson(opened, true), null, 2));
      return EXIT.ok;
    }
    const { toc, header, signature } = opened;
    const sig =
      signature.status === 'verified'
        ? `verified, key ${signature.keyId} (${signature.keySource})`
        : signature.status === 'unsigned'
          ? 'none (unsigned)'
          : `signed by key ${signature.keyId}, not checked (pass --key PUB to verify)`;
    const lines = [
      printable(`${opened.file}: ${toc.name} ${toc.version}, created ${toc.created}`),
      table([
        ['payload', `${formatBytes(header.payloadSize)}, ${opened.entries.length} entries, sha256 ${header.payloadSha256} verified`],
        ['signature', sig],
      ]),
      '',
      `Images (${toc.images.length})`,
      ...(toc.images.length ? [table(toc.images.map((i) => [i.target, i.digest, formatBytes(i.size), i.platforms.join(',')]))] : []),
      `Charts (${toc.charts.length})`,
      ...(toc.charts.length ? [table(toc.charts.map((c) => [printable(c.target), c.digest, formatBytes(c.size), printable(c.source ?? '')]))] : []),
      `Packs (${toc.packs.length})`,
      ...(toc.packs.length ? [table(toc.packs.map((p) => [p.target, p.digest, formatBytes(p.size)]))] : []),
      `Files (${toc.files.length})`,
      ...(toc.files.length ? [table(toc.files.map((f) => [f.target, formatBytes(f.size), `0${f.mode.toString(8)}`]))] : []),
    ];
    print(ctx.stdout, lines.join('\n'));
    return EXIT.ok;
  },
});

const verifyCommand = defineCommand({
  name: 'verify',
  summary: 'verify a .bin: signature, TOC and the sha256 of every entry',
  usage: 'airgap verify FILE.bin --key PUB [--json]',
  description: `Checks the header, the TOC against its sha256 and the signature with the key you
trust (--key: the signer's .pub, or a folder of them), every entry rule, then
reads the payload once to check the sha256 of every entry. Exit 0 only when all
hold. Off the box, on a machine without the CLI: sh FILE.bin verify --key PUB.`,
  args: { min: 1, max: 1 },
  options: {
    key: { type: 'string', short: 'k', multiple: true, value: 'PUB', description: 'trusted public key file, or a folder of *.pub (required unless --allow-unsigned)' },
    'allow-unsigned': { type: 'boolean', description: 'without a key: check damage only (sha256 of the TOC, the payload and every entry), not who made the file' },
    json: { type: 'boolean', description: 'print one JSON document, and no progress' },
    quiet: { type: 'boolean', short: 'q', description: 'no progress' },
  },
  async run({ values, positionals }, ctx) {
    if (!values.key?.length && !values['allow-unsigned']) {
      throw new UsageError('verify needs --key PUB: the public key of the signer you trust (or --allow-unsigned to check damage only)');
    }
    const trustedKeys = values.key?.length ? await loadPublicKeys(values.key) : [];
    if (values.key?.length && !trustedKeys.length) {
      throw new PayloadError('AG_NO_TRUSTED_KEYS', `no public key in ${values.key.join(', ')}`, { hint: "give the signer's .pub file, or a folder that holds it" });
    }
    const opened = await openAndVerify(positionals[0]!, { trustedKeys, requireSignature: values['allow-unsigned'] !== true }, ctx, values.quiet === true || values.json === true);
    const { toc, header, signature } = opened;
    if (values.json) {
      print(ctx.stdout, JSON.stringify({ file: opened.file, name: toc.name, version: toc.version, status: 'verified', signature, entries: opened.entries.length, payloadSha256: header.payloadSha256 }, null, 2));
      return EXIT.ok;
    }
    const who = signature.status === 'verified' ? `signed by key ${signature.keyId} (${signature.keySource})` : 'signature not checked (--allow-unsigned)';
    print(ctx.stdout, printable(`${opened.file}: ${toc.name} ${toc.version} verified: ${who}; ${opened.entries.length} entries and the payload match their sha256`));
    return EXIT.ok;
  },
});

/** The connected-side verbs. */
export const buildCommands: Command[] = [buildCommand, keygenCommand, inspectCommand, verifyCommand];

/** The verbs the portable CLI carries besides push (src/portable.ts): they need no appliance and no native module. */
export const portableCommands: Command[] = [inspectCommand, verifyCommand];

