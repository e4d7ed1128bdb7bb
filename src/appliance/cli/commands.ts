/**
 * The appliance's CLI verbs (docs/cli.md):
 *
 *   airgap serve [--state-dir DIR] [--address IP] [--https-port N] [--http-port N]
 *                [--registry-port N] [--pack-registry-port N] [--log-level LEVEL]
 *                [--allow-unsigned]
 *   airgap setup <repo-ip> [--json]        (also installed as `airgap-setup`)
 *   airgap status [--json]
 *   airgap firstboot --ovf-env FILE [--root DIR] [--user NAME] [--json]
 *
 * Each verb's flags are one table that the parser and `--help` both read.
 * `setup` and `status` talk to the running daemon over its admin socket.
 */
import { readFile, stat } from 'node:fs/promises';
import { defineCommand, EXIT, print, type Command } from '../../kit/cli.js';
import { UsageError } from '../../kit/errors.js';
import { formatBytes, formatDuration, printable, table } from '../../kit/text.js';
import { parseRepoAddress } from '../config/address.js';
import { callAdmin } from './admin-client.js';
import type { ApplianceStatus, ConnectionDetails, SetupResult } from '../daemon/appliance.js';
import {
  DEFAULT_LOG_LEVEL,
  DEFAULT_MAX_UPLOAD_BYTES,
  DEFAULT_REGISTRY_STALL_SECONDS,
  DEFAULT_REGISTRY_BINARY,
  DEFAULT_SYSLOG_SOCKET,
  LOG_LEVELS,
  resolveServeConfig,
  resolveStateDir,
  ROOT_PORTS,
  USER_PORTS,
  type Host,
} from '../config/config.js';
import { jsonOption, stateDirEnvironment, stateDirOption, userPath } from './options.js';

/** The text block `airgap setup` prints: what an admin copies into the platform installer. */
export function renderConnectionDetails(d: ConnectionDetails): string {
  const account = (urlLabel: string, c: { url: string; username: string; password: string }) => [[urlLabel, c.url], ['Username:', c.username], ['Password:', c.password]];
  return [
    'Repository details',
    table(account('URL:', d.repository)),
    '',
    'Registry details',
    table([...account('Image registry URL:', d.imageRegistry), ...account('Pack registry URL:', d.packRegistry)]),
    '',
    'Console login',
    table(account('URL:', d.console)),
    '',
    'Helm chart repository (save the CA below as airgap-ca.crt; the password is the repository one, typed or piped in)',
    `  ${d.helmRepository.addCommand}`,
    '',
    'Registry CA certificate (base64, one line)',
    d.caCertificateBase64,
  ].join('\n');
}

function renderStatus(s: ApplianceStatus): string {
  const lines = [
    `airgap ${s.version}: ${s.healthy ? 'healthy' : 'DEGRADED'}`,
    ...s.problems.map((p) => `  problem: ${printable(p)}`),
    ...(s.warnings ?? []).map((w) => `  warning: ${printable(w)}`),
    table([
      ['daemon', `pid ${s.daemon.pid}, up ${formatDuration(s.daemon.uptimeSeconds)}, listening on ${s.daemon.address}`],
      ['state dir', s.daemon.stateDir],
      ['repo address', s.repoAddress ?? "not set: run 'airgap setup <repo-ip>'"],
      ['release', s.release.current ? `${s.release.name} ${s.release.current} (${s.release.installed} on the box)` : "none yet: run a .bin, or 'airgap import FILE.bin'"],
      ...s.imports.map((i) => ['import', `#${i.id} ${i.state}${i.stage ? ` (${i.stage})` : ''}: ${i.version ?? ''} ${i.file}`]),
      ['repository', s.repository.url],
      ['certificate', `${s.certificate.subjectAltNames.join(', ')}; valid until ${s.certificate.notAfter.slice(0, 10)}`],
      ['database', `schema ${s.database.schemaVersion}, ${formatBytes(s.database.sizeBytes)}`],
      ['retention', s.retention?.keep ? `keep ${s.retention.keep} releases after each import (config.yaml)` : 'every release stays (set retention.keep in config.yaml)'],
      ['registry volume', `${formatBytes(s.disk.usedBytes)} used of ${formatBytes(s.disk.totalBytes)}, ${formatBytes(s.disk.freeBytes)} free (${s.disk.path})`],
    ]),
    '',
    'Registries',
    table([
      ['name', 'url', 'state', 'health', 'pid', 'restarts', 'version'],
      ...s.registries.map((r) => [r.name, r.url, r.state, r.healthy ? 'ok' : 'FAILING', String(r.pid ?? '-'), String(r.restarts), r.version]),
    ]),
  ];
  return lines.join('\n');
}

/** Where `airgap firstboot` writes, and whose keys it installs, without --root and --user. */
const FIRSTBOOT_ROOT = '/';
const FIRSTBOOT_USER = 'ubuntu';

/** The default of a port flag: root's and everyone else's. */
const portDefault = (key: keyof typeof ROOT_PORTS) => (ROOT_PORTS[key] === USER_PORTS[key] ? String(ROOT_PORTS[key]) : `${ROOT_PORTS[key]} as root, else ${USER_PORTS[key]}`);

/** The appliance verbs; `host` gives the uid (root picks the OVA defaults) and cwd. */
export function applianceCommands(host: Omit<Host, 'env'>, version: string): Command[] {
  const serve = defineCommand({
    name: 'serve',
    summary: 'run the appliance daemon (registries, file repository, admin API)',
    usage: `airgap serve [--state-dir DIR] [--address IP] [--https-port N] [--http-port N]
             [--registry-port N] [--pack-registry-port N] [--log-level LEVEL]
             [--allow-unsigned]`,
    description: `Runs the appliance in the foreground until SIGTERM or Ctrl-C: two supervised
docker-registry processes (images and charts on --registry-port, packs on
--pack-registry-port) with TLS and htpasswd auth, the file repository over HTTPS,
/ca.crt and a redirect over HTTP, and the admin API on <state-dir>/admin.sock.`,
    args: { min: 0, max: 0 },
    options: {
      ...stateDirOption('where the database, PKI, registries and repository live'),
      address: { type: 'string', value: 'IP', description: 'address to listen on; 0.0.0.0 or :: for all', env: 'AIRGAP_ADDRESS', default: '0.0.0.0 as root, else 127.0.0.1' },
      'https-port': { type: 'string', value: 'N', description: 'file repository and console', default: portDefault('https') },
      'http-port': { type: 'string', value: 'N', description: '/ca.crt and a redirect to HTTPS', default: portDefault('http') },
      'registry-port': { type: 'string', value: 'N', description: 'image registry, for images and charts', default: portDefault('registry') },
      'pack-registry-port': { type: 'string', value: 'N', description: 'pack registry', default: portDefault('packRegistry') },
      'log-level': { type: 'string', value: 'LEVEL', description: LOG_LEVELS.join(', '), env: 'AIRGAP_LOG_LEVEL', default: DEFAULT_LOG_LEVEL },
      'allow-unsigned': { type: 'boolean', description: 'import .bin files that are unsigned or signed by a key not in <state-dir>/trusted-keys/' },
    },
    environment: [
      ...stateDirEnvironment,
      { name: 'AIRGAP_REGISTRY_BIN', description: 'the docker-registry program to run, looked up on PATH', default: DEFAULT_REGISTRY_BINARY },
      { name: 'AIRGAP_MAX_UPLOAD_BYTES', description: 'largest .bin the web console and API accept, in bytes', default: `${DEFAULT_MAX_UPLOAD_BYTES / 1024 ** 3} GiB` },
      { name: 'AIRGAP_STALL_SECONDS', description: 'seconds a registry may leave its health check unanswered before it is killed and restarted', default: String(DEFAULT_REGISTRY_STALL_SECONDS) },
      { name: 'AIRGAP_SYSLOG_SOCKET', description: 'the syslog socket events go to (journald reads it; no socket, no sending)', default: DEFAULT_SYSLOG_SOCKET },
      { name: 'AIRGAP_IMPORT_BLOBS', description: "how imports put blobs into the bundled registries: 'storage' (straight into their storage) or 'http' (through their API)", default: 'storage' },
    ],
    async run({ values }, ctx) {
      const config = resolveServeConfig({
        stateDir: values['state-dir'],
        address: values.address,
        httpsPort: values['https-port'],
        httpPort: values['http-port'],
        registryPort: values['registry-port'],
        packRegistryPort: values['pack-registry-port'],
        logLevel: values['log-level'],
        allowUnsigned: values['allow-unsigned'],
      }, { ...host, env: ctx.env });
      // The daemon's modules load only here: every other verb starts in a fraction of the time.
      const { createLogger } = await import('../daemon/logger.js');
      const { startServer } = await import('../daemon/server.js');
      const log = await createLogger(config.logLevel, ctx.stdout, (ctx.stdout as { isTTY?: boolean }).isTTY === true);
      if (ctx.signal?.aborted) return EXIT.interrupted;
      const server = await startServer(config, log, version);
      await new Promise<void>((resolve) => {
        if (!ctx.signal) return;
        if (ctx.signal.aborted) resolve();
        ctx.signal.addEventListener('abort', () => resolve(), { once: true });
      });
      log.info('stopping');
      await server.close();
      log.info('stopped');
      return EXIT.ok;
    },
  });

  const setup = defineCommand({
    name: 'setup',
    summary: 'set the repo address; print URLs, credentials and the base64 CA',
    usage: `airgap setup <repo-ip> [--json] [--state-dir DIR]     (also: airgap-setup <repo-ip>)
       airgap setup <repo-ip> --cert FILE --key FILE [--ca FILE]   # the site's certificate
       airgap setup <repo-ip> --renew                              # re-issue the appliance-made one`,
    description: `<repo-ip> is the address clients use to reach this appliance: an IPv4 or IPv6
address or a DNS name. The first run makes the server certificate for it (the CA
and the credentials were made when the daemon first started); a new address
re-issues the certificate from the same CA and restarts the registries. A repeated
run changes nothing and prints the same details.

Prints the repository, registry and console URLs with their usernames and
passwords, and the registry CA certificate in base64 (one line).

--cert FILE --key FILE [--ca FILE] installs the site's own certificate for both
registries and the HTTPS port: FILE is PEM, the certificate first, then any
intermediates; --ca is the CA clients trust (without it, the root the --cert file
carries). It is refused, with the reason, unless the key belongs to it, it chains to
the CA, its SAN covers <repo-ip> and it is valid now; the running certificate then
stays. The CA printed is then the site's. The appliance never renews a site
certificate: status warns 30 days before it expires.

--renew re-issues the appliance-made server certificate now (the CA stays; it is also
re-issued at start within 30 days of its expiry).`,
    args: { min: 1, max: 1 },
    options: {
      cert: { type: 'string', value: 'FILE', description: "the site's server certificate (PEM; intermediates after it)" },
      key: { type: 'string', value: 'FILE', description: 'its private key (PEM, not encrypted)' },
      ca: { type: 'string', value: 'FILE', description: 'the CA that issued it, which clients trust (PEM)' },
      renew: { type: 'boolean', description: 're-issue the appliance-made server certificate now' },
      ...jsonOption(),
      ...stateDirOption(),
    },
    environment: stateDirEnvironment,
    async run({ values, positionals }, ctx) {
      parseRepoAddress(positionals[0]!); // a bad address is a usage error (exit 2) before any daemon is asked
      const stateDir = resolveStateDir(values['state-dir'], { ...host, env: ctx.env });
      if ((values.cert === undefined) !== (values.key === undefined)) throw new UsageError('--cert and --key go together', { hint: 'airgap setup <repo-ip> --cert server.pem --key server.key --ca site-ca.pem' });
      if (values.ca !== undefined && values.cert === undefined) throw new UsageError('--ca goes with --cert and --key');
      if (values.renew && values.cert !== undefined) throw new UsageError('--renew re-issues the appliance-made certificate; it does not go with --cert');
      const pem = async (flag: string, path: string) => {
        const file = userPath(path, ctx, host.cwd);
        const s = await stat(file).catch(() => undefined);
        if (!s?.isFile()) throw new UsageError(`--${flag}: there is no file ${file}`);
        if (s.size > 64 * 1024) throw new UsageError(`--${flag}: ${file} is larger than 64 KiB; a PEM file is a few KB`);
        return readFile(file, 'utf8');
      };
      const site = values.cert !== undefined ? { certPem: await pem('cert', values.cert), keyPem: await pem('key', values.key!), ...(values.ca !== undefined ? { caPem: await pem('ca', values.ca) } : {}) } : undefined;
      const result = await callAdmin<SetupResult>(stateDir, 'POST', '/v1/setup', { repoAddress: positionals[0], ...(values.renew ? { renew: true } : {}), ...(site ? { site } : {}) }, { onWait: (m) => print(ctx.stderr, m) });
      for (const warning of result.warnings) print(ctx.stderr, `airgap: warning: ${printable(warning)}`);
      const c = result.changed;
      const done = [c.repoAddress ? 'repo address set' : '', c.certificate ? 'server certificate issued' : '', c.registriesRestarted.length ? `${c.registriesRestarted.join(' and ')} registries restarted` : ''].filter(Boolean);
      print(ctx.stderr, `Setup completed: ${done.length ? done.join('; ') : 'nothing changed'}.`);
      print(ctx.stdout, values.json ? JSON.stringify(result.details, null, 2) : renderConnectionDetails(result.details));
      return EXIT.ok;
    },
  });

  const status = defineCommand({
    name: 'status',
    summary: 'health of the daemon, registries, database and registry volume',
    usage: 'airgap status [--json] [--state-dir DIR]',
    description: `Asks the running daemon how its parts are: the daemon, each registry, the
certificate, the database and the registry volume.`,
    args: { min: 0, max: 0 },
    options: { ...jsonOption(), ...stateDirOption() },
    environment: stateDirEnvironment,
    exitCodes: [
      [EXIT.ok, 'every part is healthy'],
      [EXIT.failed, 'a part is not, or the daemon is down'],
      [EXIT.usage, 'bad usage'],
    ],
    async run({ values }, ctx) {
      const stateDir = resolveStateDir(values['state-dir'], { ...host, env: ctx.env });
      const s = await callAdmin<ApplianceStatus>(stateDir, 'GET', '/v1/status', undefined, { onWait: (m) => print(ctx.stderr, m) });
      print(ctx.stdout, values.json ? JSON.stringify(s, null, 2) : renderStatus(s));
      return s.healthy ? EXIT.ok : EXIT.failed;
    },
  });

  const firstboot = defineCommand({
    name: 'firstboot',
    summary: 'apply the OVA vApp properties (SSH keys, host name, static network)',
    usage: 'airgap firstboot --ovf-env FILE [--root DIR] [--user NAME] [--json]',
    description: `Reads an OVF environment document (what vCenter passes to the VM from the
"Deploy OVF Template" wizard; cloud-init's OVF datasource saves it, or
'vmware-rpctool "info-get guestinfo.ovfEnv"' prints it) and writes under DIR:
the user's ~/.ssh/authorized_keys, /etc/hostname and /etc/hosts,
/etc/netplan/60-airgap.yaml for a static network, and an sshd drop-in that turns
password login off. Properties: public-keys, hostname, network.address (CIDR),
network.gateway, network.dns. Idempotent.`,
    args: { min: 0, max: 0 },
    options: {
      'ovf-env': { type: 'string', value: 'FILE', description: 'the OVF environment document; required' },
      root: { type: 'string', value: 'DIR', description: 'the root of the file system to write into', default: FIRSTBOOT_ROOT },
      user: { type: 'string', value: 'NAME', description: 'the user whose authorized_keys get the public keys', default: FIRSTBOOT_USER },
      ...jsonOption('print the settings and the files written as one JSON document'),
    },
    async run({ values }, ctx) {
      if (!values['ovf-env']) throw new UsageError('--ovf-env FILE is required', { hint: 'airgap firstboot --ovf-env /var/lib/cloud/seed/ovf-env.xml' });
      const { applyFirstBoot, parseOvfEnvironment } = await import('../firstboot/firstboot.js');
      const settings = parseOvfEnvironment(await readFile(values['ovf-env'], 'utf8'));
      const written = await applyFirstBoot(values.root ?? FIRSTBOOT_ROOT, settings, values.user ?? FIRSTBOOT_USER);
      print(ctx.stdout, values.json ? JSON.stringify({ settings, written }, null, 2) : written.map((f) => `wrote ${printable(f)}`).join('\n'));
      return EXIT.ok;
    },
  });

  return [serve, setup, status, firstboot];
}
