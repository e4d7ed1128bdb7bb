/**
 * The connected-side verbs of the `airgap` CLI (docs/architecture.md, "CLI"):
 *
 *   airgap build <bundle.yaml> --out FILE [--key PRIVATE.pem]
 *   airgap keygen --out DIR
 *   airgap inspect FILE.bin [--key PUB] [--json]
 */
import { UsageError } from '../kit/errors.js';
import { parseCommandArgs, print, progressReporter, type Command } from '../kit/cli.js';
import { formatBytes, formatDuration, table } from '../kit/text.js';
import { loadRegistryAuth } from '../oci/auth-file.js';
import { generateSigningKeys, loadPublicKeys } from '../format/keys.js';
import { openPayload, verifyPayloadData, type OpenedPayload } from '../format/reader.js';
import { buildBundle, type BuildProgress } from './builder.js';

const buildCommand: Command = {
  name: 'build',
  summary: 'build a signed, self-extracting airgap-v<version>.bin from bundle.yaml',
  usage: `airgap build <bundle.yaml> [--out FILE|DIR] [--key PRIVATE.pem] [options]

Reads bundle.yaml (images, charts, packs, files) and writes one self-extracting
.bin: a sh header and an uncompressed tar whose TOC is signed with --key.

Options:
  --out FILE|DIR            output file, or folder for airgap-v<version>.bin (default: .)
  --key PRIVATE.pem         ed25519 signing key from 'airgap keygen' (unsigned without it)
  --insecure-registry HOST  reach HOST[:PORT] over plain HTTP (repeatable; a lab mirror)
  --registry-auth FILE      registry credentials, a docker config.json
  --json                    print the result as one JSON document
  --quiet                   no progress
  -h, --help                this help`,
  async run(args, ctx) {
    const { values, positionals, help } = parseCommandArgs(this, args, {
      out: { type: 'string', short: 'o' },
      key: { type: 'string', short: 'k' },
      'insecure-registry': { type: 'string', multiple: true },
      'registry-auth': { type: 'string' },
      json: { type: 'boolean' },
      quiet: { type: 'boolean', short: 'q' },
    }, { min: 1, max: 1 });
    if (help) return (print(ctx.stdout, this.usage), 0);
    const progress = progressReporter(ctx, values.quiet === true);
    const credentials = values['registry-auth'] ? await loadRegistryAuth(values['registry-auth']) : undefined;
    const epoch = ctx.env.SOURCE_DATE_EPOCH;
    const started = Date.now();
    const result = await buildBundle({
      specPath: positionals[0]!,
      ...(values.out ? { out: values.out } : {}),
      ...(values.key ? { privateKeyPath: values.key } : {}),
      insecureRegistries: values['insecure-registry'] ?? [],
      ...(credentials ? { credentials } : {}),
      ...(epoch && /^\d+$/.test(epoch) ? { created: new Date(Number(epoch) * 1000) } : {}),
      ...(ctx.signal ? { signal: ctx.signal } : {}),
      onProgress: (p: BuildProgress) => {
        if (p.stage === 'plan' && p.item) progress.line(`Reading ${p.item}`);
        if (p.stage === 'write') progress.bytes('Writing', p.bytesDone, p.bytesTotal);
      },
    });
    progress.end();
    const seconds = (Date.now() - started) / 1000;
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
        ].join('\n'),
      );
    }
    return 0;
  },
};

const keygenCommand: Command = {
  name: 'keygen',
  summary: 'make an ed25519 signing key pair',
  usage: `airgap keygen --out DIR [--json]

Writes DIR/airgap-signing.key (private, mode 0600: keep it on the build side) and
DIR/airgap-signing.pub (copy it into <state-dir>/trusted-keys/ on each appliance).
Refuses to overwrite an existing key.`,
  async run(args, ctx) {
    const { values, help } = parseCommandArgs(this, args, { out: { type: 'string', short: 'o' }, json: { type: 'boolean' } }, { min: 0, max: 0 });
    if (help) return (print(ctx.stdout, this.usage), 0);
    if (!values.out) throw new UsageError('--out DIR is required', { hint: 'airgap keygen --out DIR' });
    const keys = await generateSigningKeys(values.out);
    if (values.json) print(ctx.stdout, JSON.stringify(keys, null, 2));
    else print(ctx.stdout, `Wrote ${keys.privateKeyPath} (keep it secret)\nWrote ${keys.publicKeyPath}\nKey id ${keys.keyId}`);
    return 0;
  },
};

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

const inspectCommand: Command = {
  name: 'inspect',
  summary: 'verify a .bin and list what it holds',
  usage: `airgap inspect FILE.bin [--key PUB] [--json]

Parses the header as data (never runs it), indexes the tar, checks every entry
rule, the TOC and its signature, reads the payload once to verify every sha256,
and lists images (with digests), charts, packs and files.

Options:
  --key PUB      trusted public key file, or a folder of *.pub (repeatable); with
                 it, a missing, unknown or bad signature is refused
  --json         print one JSON document
  -h, --help     this help`,
  async run(args, ctx) {
    const { values, positionals, help } = parseCommandArgs(this, args, {
      key: { type: 'string', short: 'k', multiple: true },
      json: { type: 'boolean' },
      quiet: { type: 'boolean', short: 'q' },
    }, { min: 1, max: 1 });
    if (help) return (print(ctx.stdout, this.usage), 0);
    const trustedKeys = values.key ? await loadPublicKeys(values.key) : [];
    const opened = await openPayload(positionals[0]!, { trustedKeys });
    try {
      const progress = progressReporter(ctx, values.quiet === true || values.json === true);
      await verifyPayloadData(opened, (p) => progress.bytes('Verifying', p.bytesDone, p.bytesTotal));
      progress.end();
    } finally {
      await opened.close();
    }
    if (values.json) {
      print(ctx.stdout, JSON.stringify(inspectJson(opened, true), null, 2));
      return 0;
    }
    const { toc, header, signature } = opened;
    const sig =
      signature.status === 'verified'
        ? `verified, key ${signature.keyId} (${signature.keySource})`
        : signature.status === 'unsigned'
          ? 'none (unsigned)'
          : `signed by key ${signature.keyId}, not checked (pass --key PUB to verify)`;
    const lines = [
      `${opened.file}: ${toc.name} ${toc.version}, created ${toc.created}`,
      table([
        ['payload', `${formatBytes(header.payloadSize)}, ${opened.entries.length} entries, sha256 ${header.payloadSha256} verified`],
        ['signature', sig],
      ]),
      '',
      `Images (${toc.images.length})`,
      ...(toc.images.length ? [table(toc.images.map((i) => [i.target, i.digest, formatBytes(i.size), i.platforms.join(',')]))] : []),
      `Charts (${toc.charts.length})`,
      ...(toc.charts.length ? [table(toc.charts.map((c) => [c.target, c.digest, formatBytes(c.size)]))] : []),
      `Packs (${toc.packs.length})`,
      ...(toc.packs.length ? [table(toc.packs.map((p) => [p.target, p.digest, formatBytes(p.size)]))] : []),
      `Files (${toc.files.length})`,
      ...(toc.files.length ? [table(toc.files.map((f) => [f.target, formatBytes(f.size), `0${f.mode.toString(8)}`]))] : []),
    ];
    print(ctx.stdout, lines.join('\n'));
    return 0;
  },
};

/** The connected-side verbs. */
export const buildCommands: Command[] = [buildCommand, keygenCommand, inspectCommand];

