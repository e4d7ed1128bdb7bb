/**
 * `airgap push FILE.bin --to REGISTRY[/PREFIX]`: a verified .bin into a registry the site
 * already runs (docs/cli.md). Works anywhere the CLI runs; needs no appliance.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { UsageError } from '../kit/errors.js';
import { defineCommand, errorText, EXIT, print, progressReporter, type CliContext, type Command } from '../kit/cli.js';
import { formatBytes, formatDuration, parseSize, printable, table } from '../kit/text.js';
import { loadPublicKeys } from '../format/keys.js';
import { loadRegistryAuth } from '../oci/auth-file.js';
import type { Credentials } from '../oci/client.js';
import { defaultJournalDir } from './journal.js';
import { parseDestination, pushBin, pushRelease, type PushOptions, type PushReport, type ReleaseSourceSpec } from './push.js';

/** Reads the whole of stdin (a password piped in), without its last line break. */
async function readStdin(stdin: NodeJS.ReadableStream | undefined): Promise<string> {
  if (!stdin) throw new UsageError('--password-stdin needs the password on standard input');
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

/**
 * Reads a release the appliance holds, for `--release VERSION`: given by the full CLI
 * (appliance/cli), absent from the portable one. `stateDir` is the --state-dir flag.
 */
export type ReleaseResolver = (version: string, stateDir: string | undefined, ctx: CliContext) => Promise<ReleaseSourceSpec>;

const pushCommand = (releases?: ReleaseResolver) => defineCommand({
  name: 'push',
  summary: "push a .bin's images, charts and packs to a registry the site runs (Harbor, Quay, Zot, ...)",
  usage: `airgap push FILE.bin --to REGISTRY[/PREFIX] [--packs-to REGISTRY[/PREFIX]]
            [--key PUB.pem]... [--allow-unsigned]
            [--username USER --password-stdin | --registry-auth FILE]
            [--ca-file FILE] [--insecure-registry HOST[:PORT]]...
            [--registry-map OLD=NEW]... [--jobs N] [--chunk-size SIZE] [--dry-run] [--json] [--quiet]
       airgap push --release VERSION --to REGISTRY[/PREFIX] [same options] [--state-dir DIR]   # on the appliance`,
  description: `Verifies the .bin (signature and TOC, then every blob it sends) before sending, then pushes
images to REGISTRY/PREFIX/<target>, charts to REGISTRY/PREFIX/charts/<name>:<version> and
packs to the --packs-to registry (default --to) under PREFIX/packs/<name>:<version>. Blobs
the registry has are skipped, blobs of another repository mounted, the rest streamed from
the .bin. A push that stops (Ctrl-C, kill -9, a dropped SSH session) continues where it
was when run again. Files are not pushed. On the appliance, --release VERSION pushes an
installed release from the appliance's own registries instead of a .bin.`,
  args: { min: 0, max: 1 },
  options: {
    to: { type: 'string', value: 'REGISTRY[/PREFIX]', description: 'where images and charts go, e.g. harbor.example.com/platform' },
    'packs-to': { type: 'string', value: 'REGISTRY[/PREFIX]', description: 'where packs go (default: --to)' },
    key: { type: 'string', short: 'k', multiple: true, value: 'PUB.pem', description: "the signer's public key; the file must be signed by one of them" },
    'allow-unsigned': { type: 'boolean', description: 'push a file that is unsigned or signed by a key not given (the signature is not checked)' },
    username: { type: 'string', short: 'u', value: 'USER', description: 'registry user; the password comes from --password-stdin' },
    'password-stdin': { type: 'boolean', description: 'read the password from standard input (never from the command line)' },
    'registry-auth': { type: 'string', value: 'FILE', env: 'REGISTRY_AUTH_FILE', description: 'registry credentials, a docker config.json (default: ~/.docker/config.json when there)' },
    'ca-file': { type: 'string', value: 'FILE', description: "PEM of the private CA the registries' certificates chain to" },
    'insecure-registry': { type: 'string', multiple: true, value: 'HOST[:PORT]', description: 'reach this registry over plain HTTP (never a fallback)' },
    'registry-map': { type: 'string', multiple: true, value: 'OLD=NEW', description: 'rewrite repositories equal to OLD or under OLD/ to NEW' },
    jobs: { type: 'string', short: 'j', value: 'N', description: 'parallel blob uploads', default: '4' },
    'chunk-size': { type: 'string', value: 'SIZE', description: 'upload blobs larger than SIZE (e.g. 16MiB) in chunks of SIZE; without it, chunks of 8 MiB only after the registry or a proxy answers 413' },
    'dry-run': { type: 'boolean', description: 'verify and show where each reference would go; send nothing' },
    release: { type: 'string', value: 'VERSION', description: 'on the appliance: push this installed release, read from its registries (no FILE.bin)' },
    'state-dir': { type: 'string', value: 'DIR', env: 'AIRGAP_STATE_DIR', description: 'where the database, PKI, registries and repository live (with --release)' },
    json: { type: 'boolean', description: 'print the report as one JSON document' },
    quiet: { type: 'boolean', short: 'q', description: 'no progress' },
  },
  environment: [{ name: 'XDG_STATE_HOME', description: 'the push journal lives in $XDG_STATE_HOME/airgap/push/', default: '~/.local/state' }],
  async run({ values, positionals }, ctx) {
    if (values.release !== undefined && positionals.length) throw new UsageError('give FILE.bin or --release VERSION, not both');
    if (values.release === undefined && !positionals.length) throw new UsageError('missing argument: FILE.bin (or, on the appliance, --release VERSION)');
    if (values.release !== undefined && !releases) throw new UsageError('--release works on the appliance, where the release is; here, push the .bin');
    if (!values.to) throw new UsageError('say where to push with --to REGISTRY[/PREFIX]', { hint: 'for example --to harbor.example.com/platform' });
    const to = parseDestination(values.to, '--to');
    const packsTo = values['packs-to'] ? parseDestination(values['packs-to'], '--packs-to') : undefined;
    const jobs = Number(values.jobs ?? '4');
    if (!Number.isInteger(jobs) || jobs < 1 || jobs > 32) throw new UsageError(`--jobs must be a whole number from 1 to 32, not '${values.jobs}'`);
    const chunkSize = values['chunk-size'] === undefined ? undefined : parseSize(values['chunk-size']);
    if (chunkSize !== undefined && (chunkSize < 64 * 1024 || chunkSize > 4 * 1024 ** 3)) throw new UsageError(`--chunk-size must be from 64KiB to 4GiB, not '${values['chunk-size']}'`);
    if (values['chunk-size'] !== undefined && chunkSize === undefined) throw new UsageError(`--chunk-size '${values['chunk-size']}' is not a size (e.g. 16MiB, 10M, 1048576)`);
    const registryMap = (values['registry-map'] ?? []).map((m): [string, string] => {
      const eq = m.indexOf('=');
      if (eq <= 0 || eq === m.length - 1) throw new UsageError(`--registry-map '${m}' is not OLD=NEW`);
      return [m.slice(0, eq).replace(/^\/+|\/+$/g, ''), m.slice(eq + 1).replace(/^\/+|\/+$/g, '')];
    });
    if (values['password-stdin'] && !values.username) throw new UsageError('--password-stdin needs --username');
    if (values.username && values['registry-auth']) throw new UsageError('give --username or --registry-auth, not both');

    let credentialsFor: (registry: string) => Credentials | undefined = () => undefined;
    if (values.username) {
      if (!values['password-stdin']) throw new UsageError('--username needs --password-stdin (a password is never taken from the command line)');
      const password = await readStdin(ctx.stdin);
      const login = { username: values.username, password };
      const hosts = new Set([to.registry, packsTo?.registry ?? to.registry]);
      credentialsFor = (registry) => (hosts.has(registry) ? login : undefined);
    } else {
      const file = values['registry-auth'] ?? ctx.env.REGISTRY_AUTH_FILE ?? (existsSync(join(ctx.env.HOME || homedir(), '.docker', 'config.json')) ? join(ctx.env.HOME || homedir(), '.docker', 'config.json') : undefined);
      if (file) credentialsFor = await loadRegistryAuth(file);
    }
    const trustedKeys = values.key?.length ? await loadPublicKeys(values.key) : [];
    const caPem = values['ca-file'] ? await readFile(values['ca-file'], 'utf8').catch((cause: unknown) => {
      throw new UsageError(`cannot read --ca-file ${values['ca-file']}`, { cause });
    }) : undefined;

    const progress = progressReporter(ctx, values.quiet === true || values.json === true);
    let stage = '';
    const common = {
      to,
      ...(packsTo ? { packsTo } : {}),
      credentialsFor,
      ...(caPem ? { caPem } : {}),
      insecureRegistries: values['insecure-registry'] ?? [],
      registryMap,
      jobs,
      ...(chunkSize !== undefined ? { chunkSize } : {}),
      dryRun: values['dry-run'] === true,
      journalDir: defaultJournalDir(ctx.env),
      ...(ctx.signal ? { signal: ctx.signal } : {}),
      onProgress: (p) => {
        if (p.stage !== stage) {
          stage = p.stage;
          progress.line(p.stage === 'verify' ? 'Verifying every entry against the signed TOC' : `Pushing ${p.stage}`);
        }
        if (p.bytesTotal) progress.bytes(p.stage === 'verify' ? '  Reading' : `  ${p.stage}`, p.bytesDone, p.bytesTotal);
      },
    } satisfies Omit<PushOptions, 'file' | 'trustedKeys' | 'allowUnsigned'>;
    let report: PushReport;
    if (values.release !== undefined) {
      const release = await releases!(values.release, values['state-dir'], ctx);
      try {
        report = await pushRelease(common, release);
      } finally {
        release.sources.images.close();
        release.sources.packs.close();
      }
    } else {
      report = await pushBin({ ...common, file: positionals[0]!, trustedKeys, allowUnsigned: values['allow-unsigned'] === true });
    }
    progress.end();
    if (values.json) print(ctx.stdout, JSON.stringify(report, null, 2));
    else print(ctx.stdout, summary(report));
    // A push that stopped part-way: the report above says what landed; this says why.
    if (report.error) print(ctx.stderr, errorText({ ...report.error, hint: report.error.hint ?? 'run the same command again: what landed is not sent twice' }));
    return report.status === 'partial' ? EXIT.failed : EXIT.ok;
  },
});

function summary(r: PushReport): string {
  const head =
    r.status === 'planned'
      ? `Dry run: ${printable(r.name)} ${printable(r.version)} would go to ${r.target}${r.packsTarget !== r.target ? ` (packs: ${r.packsTarget})` : ''}`
      : `${r.status === 'partial' ? 'Partly pushed' : r.status === 'unchanged' ? 'Already there' : 'Pushed'}: ${printable(r.name)} ${printable(r.version)} to ${r.target}${r.packsTarget !== r.target ? ` (packs: ${r.packsTarget})` : ''} in ${formatDuration(r.seconds)}`;
  const counts = r.status === 'planned' ? [] : [`  ${r.blobsPushed} blobs pushed (${formatBytes(r.bytesPushed)}), ${r.blobsMounted} mounted, ${r.blobsSkipped} already there${r.resumedBlobs ? `; resumed a run that had ${r.resumedBlobs} done` : ''}`];
  // A push that stopped part-way names its error once (on stderr), not on every reference.
  const rows = r.references.map((ref) => [ref.outcome, ref.kind, printable(ref.reference), ref.error && !r.error ? printable(`${ref.error.message} [${ref.error.code}]`) : ref.digest]);
  return [head, ...counts, table(rows), `  ${r.files.count} files: ${r.files.note}`, r.file.startsWith('release ') ? '  from the appliance\'s registries (the .bin was verified when it was imported)' : r.signedBy ? `  signed by key ${r.signedBy}` : '  NOT VERIFIED: pushed with --allow-unsigned'].join('\n');
}

/** The push verb; `releases` enables --release (the appliance's full CLI). */
export function pushCommands(releases?: ReleaseResolver): Command[] {
  return [pushCommand(releases)];
}
