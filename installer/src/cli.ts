/**
 * The connected-side verbs of the `airgap` CLI (DESIGN.md, "CLI contract"):
 *
 *   airgap build <bundle.yaml> --out FILE [--key PRIVATE.pem]
 *   airgap keygen --out DIR
 *   airgap inspect FILE.bin [--key PUB] [--json]
 *
 * and the dispatcher that the appliance's CLI reuses for its own verbs. Output: results on
 * stdout (one JSON document with --json), progress and errors on stderr. Exit codes:
 * 0 ok, 1 failed (the message says why and what to do), 2 bad usage.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { readFile } from 'node:fs/promises';
import { AirgapError, UsageError } from './errors.js';
import { buildBundle, type BuildProgress } from './builder.js';
import { generateSigningKeys, loadPublicKeys } from './keys.js';
import { openPayload, verifyPayloadData, type OpenedPayload } from './reader.js';
import type { Credentials } from './registry-client.js';
import { formatBytes, formatDuration, table } from './format.js';

export interface CliContext {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
  /** Whether stderr is a terminal (live progress) or a pipe/log (plain lines). */
  interactive: boolean;
  /** Aborted on SIGINT/SIGTERM: long commands stop and clean up. */
  signal?: AbortSignal;
}

export interface Command {
  name: string;
  summary: string;
  usage: string;
  run(args: string[], ctx: CliContext): Promise<number>;
}

/** parseArgs with the project's rules: strict, `--help` everywhere, errors as UsageError. */
export function parseCommandArgs<T extends NonNullable<ParseArgsConfig['options']>>(
  command: Command,
  args: string[],
  options: T,
  positionals: { min: number; max: number },
) {
  let parsed;
  try {
    parsed = parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  } catch (cause) {
    throw new UsageError(`${(cause as Error).message.replace(/\. To specify a positional.*$/s, '')}`, { hint: `see 'airgap ${command.name} --help'` });
  }
  const help = (parsed.values as Record<string, unknown>).help === true;
  if (!help && (parsed.positionals.length < positionals.min || parsed.positionals.length > positionals.max)) {
    throw new UsageError(
      parsed.positionals.length < positionals.min ? 'missing argument' : `unexpected argument '${parsed.positionals[positionals.max]}'`,
      { hint: `usage: ${command.usage.split('\n')[0]}` },
    );
  }
  return { values: parsed.values, positionals: parsed.positionals, help };
}

function print(stream: NodeJS.WritableStream, text: string): void {
  stream.write(text.endsWith('\n') ? text : `${text}\n`);
}

const BAR_WIDTH = 24;

/** A progress reporter: one live bar on a terminal, plain lines every 10% elsewhere. */
export function progressReporter(ctx: CliContext, quiet: boolean) {
  const started = Date.now();
  let lastPlain = -1;
  let live = false;
  return {
    line(text: string) {
      if (quiet) return;
      if (live) ctx.stderr.write('\r\x1b[K');
      live = false;
      print(ctx.stderr, text);
    },
    bytes(label: string, done: number, total: number) {
      if (quiet || total === 0) return;
      const pct = Math.floor((done / total) * 100);
      const seconds = (Date.now() - started) / 1000;
      const rate = seconds > 0 ? done / seconds : 0;
      const eta = rate > 0 ? (total - done) / rate : 0;
      const text = `${label} ${String(pct).padStart(3)}%  ${formatBytes(done)} / ${formatBytes(total)}  ${formatBytes(rate)}/s${done < total ? `  ETA ${formatDuration(eta)}` : ''}`;
      if (ctx.interactive) {
        const filled = Math.round((done / total) * BAR_WIDTH);
        ctx.stderr.write(`\r\x1b[K[${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}] ${text}`);
        live = true;
      } else if (pct >= lastPlain + 10 || (done === total && lastPlain < 100)) {
        lastPlain = done === total ? 100 : pct - (pct % 10);
        print(ctx.stderr, text);
      }
    },
    end() {
      if (live) ctx.stderr.write('\n');
      live = false;
    },
  };
}

/** Reads a docker config.json (`{"auths": {"host": {"auth": base64(user:pass)}}}`). */
async function loadRegistryAuth(file: string): Promise<(registry: string) => Credentials | undefined> {
  let doc: { auths?: Record<string, { auth?: string; username?: string; password?: string }> };
  try {
    doc = JSON.parse(await readFile(file, 'utf8')) as typeof doc;
  } catch (cause) {
    throw new UsageError(`cannot read the registry auth file ${file} (a docker config.json)`, { cause });
  }
  return (registry) => {
    const names = registry === 'docker.io' ? ['docker.io', 'https://index.docker.io/v1/', 'index.docker.io'] : [registry, `https://${registry}`];
    for (const name of names) {
      const entry = doc.auths?.[name];
      if (!entry) continue;
      if (entry.username && entry.password) return { username: entry.username, password: entry.password };
      if (entry.auth) {
        const text = Buffer.from(entry.auth, 'base64').toString('utf8');
        const colon = text.indexOf(':');
        if (colon > 0) return { username: text.slice(0, colon), password: text.slice(colon + 1) };
      }
    }
    return undefined;
  };
}

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
export const installerCommands: Command[] = [buildCommand, keygenCommand, inspectCommand];

function mainUsage(commands: Command[]): string {
  return `airgap: move container images, Helm charts, packs and files into an air-gapped site

Usage: airgap <command> [options]

Commands:
${table(commands.map((c) => [c.name, c.summary]))}

Run 'airgap <command> --help' for a command's options.`;
}

/**
 * Runs one CLI invocation. Returns the exit code: 0 ok, 1 failure (typed errors print
 * `airgap: error: <message>` with their code and a hint), 2 usage error.
 */
export async function runCli(argv: string[], commands: Command[], ctx: CliContext, version: string): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    print(name === undefined ? ctx.stderr : ctx.stdout, mainUsage(commands));
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === 'version') {
    print(ctx.stdout, version);
    return 0;
  }
  const command = commands.find((c) => c.name === name);
  try {
    if (!command) throw new UsageError(`unknown command '${name}'`, { hint: `commands: ${commands.map((c) => c.name).join(', ')}` });
    return await command.run(rest, ctx);
  } catch (err) {
    if (ctx.signal?.aborted) {
      print(ctx.stderr, '\nairgap: interrupted; nothing was left half-written');
      return 130;
    }
    if (err instanceof AirgapError) {
      print(ctx.stderr, `airgap: error: ${err.message} [${err.code}]${err.hint ? `\n  hint: ${err.hint}` : ''}`);
      return err instanceof UsageError ? 2 : 1;
    }
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOSPC') print(ctx.stderr, `airgap: error: the disk is full (${e.path ?? e.message})\n  hint: free some space and run the command again`);
    else if (e.code === 'EACCES' || e.code === 'EPERM') print(ctx.stderr, `airgap: error: permission denied: ${e.path ?? e.message}`);
    else print(ctx.stderr, `airgap: internal error: ${e.stack ?? e.message}`);
    return 1;
  }
}
