/**
 * The appliance's CLI verbs (DESIGN.md, "CLI contract"):
 *
 *   airgap serve [--state-dir DIR] [--address IP] [--https-port N] [--http-port N]
 *                [--registry-port N] [--pack-registry-port N]
 *   airgap setup <repo-ip> [--json]        (also installed as `airgap-setup`)
 *   airgap status [--json]
 *
 * `setup` and `status` talk to the running daemon over its admin socket.
 */
import { readFile } from 'node:fs/promises';
import { parseCommandArgs, type Command } from '../../kit/cli.js';
import { UsageError } from '../../kit/errors.js';
import { formatBytes, formatDuration, table } from '../../kit/text.js';
import { parseRepoAddress } from '../config/address.js';
import { callAdmin } from './admin-client.js';
import type { ApplianceStatus, ConnectionDetails, SetupResult } from '../daemon/appliance.js';
import { resolveServeConfig, resolveStateDir, type Host } from '../config/config.js';

function print(stream: NodeJS.WritableStream, text: string): void {
  stream.write(text.endsWith('\n') ? text : `${text}\n`);
}

const stateDirOption = { 'state-dir': { type: 'string' } } as const;

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
    'Registry CA certificate (base64, one line)',
    d.caCertificateBase64,
  ].join('\n');
}

function renderStatus(s: ApplianceStatus): string {
  const lines = [
    `airgap ${s.version}: ${s.healthy ? 'healthy' : 'DEGRADED'}`,
    ...s.problems.map((p) => `  problem: ${p}`),
    table([
      ['daemon', `pid ${s.daemon.pid}, up ${formatDuration(s.daemon.uptimeSeconds)}, listening on ${s.daemon.address}`],
      ['state dir', s.daemon.stateDir],
      ['repo address', s.repoAddress ?? "not set: run 'airgap setup <repo-ip>'"],
      ['release', s.release.current ? `${s.release.name} ${s.release.current} (${s.release.installed} on the box)` : "none yet: run a .bin, or 'airgap import FILE.bin'"],
      ...s.imports.map((i) => ['import', `#${i.id} ${i.state}${i.stage ? ` (${i.stage})` : ''}: ${i.version ?? ''} ${i.file}`]),
      ['repository', s.repository.url],
      ['certificate', `${s.certificate.subjectAltNames.join(', ')}; valid until ${s.certificate.notAfter.slice(0, 10)}`],
      ['database', `schema ${s.database.schemaVersion}, ${formatBytes(s.database.sizeBytes)}`],
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

/** The appliance verbs; `host` gives the uid (root picks the OVA defaults) and cwd. */
export function applianceCommands(host: Omit<Host, 'env'>, version: string): Command[] {
  const serve: Command = {
    name: 'serve',
    summary: 'run the appliance daemon (registries, file repository, admin API)',
    usage: `airgap serve [--state-dir DIR] [--address IP] [--https-port N] [--http-port N]
             [--registry-port N] [--pack-registry-port N] [--log-level LEVEL]
             [--allow-unsigned]

Runs the appliance in the foreground until SIGTERM or Ctrl-C: two supervised
docker-registry processes (images and charts on --registry-port, packs on
--pack-registry-port) with TLS and htpasswd auth, the file repository over HTTPS,
/ca.crt and a redirect over HTTP, and the admin API on <state-dir>/admin.sock.

With no flags: as root, all addresses, ports 443/80/5000/8000, state in
/var/lib/airgap; otherwise 127.0.0.1, ports 8443/8080/5000/8000, state in
~/.local/state/airgap. AIRGAP_STATE_DIR sets the state dir too.

Options:
  --state-dir DIR            where the database, PKI, registries and repository live
  --address IP               address to listen on (0.0.0.0 for all)
  --https-port N             file repository and console
  --http-port N              /ca.crt and a redirect to HTTPS
  --registry-port N          image registry
  --pack-registry-port N     pack registry
  --log-level LEVEL          fatal, error, warn, info (default), debug, trace
  --allow-unsigned           import .bin files that are unsigned or signed by a key
                             not in <state-dir>/trusted-keys/ (off by default)
  -h, --help                 this help`,
    async run(args, ctx) {
      const { values, help } = parseCommandArgs(this, args, {
        ...stateDirOption,
        address: { type: 'string' },
        'https-port': { type: 'string' },
        'http-port': { type: 'string' },
        'registry-port': { type: 'string' },
        'pack-registry-port': { type: 'string' },
        'log-level': { type: 'string' },
        'allow-unsigned': { type: 'boolean' },
      }, { min: 0, max: 0 });
      if (help) return (print(ctx.stdout, this.usage), 0);
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
      if (ctx.signal?.aborted) return 130;
      const server = await startServer(config, log, version);
      await new Promise<void>((resolve) => {
        if (!ctx.signal) return;
        if (ctx.signal.aborted) resolve();
        ctx.signal.addEventListener('abort', () => resolve(), { once: true });
      });
      log.info('stopping');
      await server.close();
      log.info('stopped');
      return 0;
    },
  };

  const setup: Command = {
    name: 'setup',
    summary: 'set the repo address; print URLs, credentials and the base64 CA',
    usage: `airgap setup <repo-ip> [--json] [--state-dir DIR]     (also: airgap-setup <repo-ip>)

<repo-ip> is the address clients use to reach this appliance: an IPv4 or IPv6
address or a DNS name. The first run makes the server certificate for it (the CA
and the credentials were made when the daemon first started); a new address
re-issues the certificate from the same CA and restarts the registries. A repeated
run changes nothing and prints the same details.

Prints the repository, registry and console URLs with their usernames and
passwords, and the registry CA certificate in base64 (one line).

Options:
  --json             print one JSON document
  --state-dir DIR    state dir of the daemon (default as for 'airgap serve')
  -h, --help         this help`,
    async run(args, ctx) {
      const { values, positionals, help } = parseCommandArgs(this, args, { ...stateDirOption, json: { type: 'boolean' } }, { min: 1, max: 1 });
      if (help) return (print(ctx.stdout, this.usage), 0);
      parseRepoAddress(positionals[0]!); // a bad address is a usage error (exit 2) before any daemon is asked
      const stateDir = resolveStateDir(values['state-dir'], { ...host, env: ctx.env });
      const result = await callAdmin<SetupResult>(stateDir, 'POST', '/v1/setup', { repoAddress: positionals[0] }, { onWait: (m) => print(ctx.stderr, m) });
      for (const warning of result.warnings) print(ctx.stderr, `airgap: warning: ${warning}`);
      const c = result.changed;
      const done = [c.repoAddress ? 'repo address set' : '', c.certificate ? 'server certificate issued' : '', c.registriesRestarted.length ? `${c.registriesRestarted.join(' and ')} registries restarted` : ''].filter(Boolean);
      print(ctx.stderr, `Setup completed: ${done.length ? done.join('; ') : 'nothing changed'}.`);
      print(ctx.stdout, values.json ? JSON.stringify(result.details, null, 2) : renderConnectionDetails(result.details));
      return 0;
    },
  };

  const status: Command = {
    name: 'status',
    summary: 'health of the daemon, registries, database and registry volume',
    usage: `airgap status [--json] [--state-dir DIR]

Exit code 0 when every part is healthy, 1 when one is not (or the daemon is down).`,
    async run(args, ctx) {
      const { values, help } = parseCommandArgs(this, args, { ...stateDirOption, json: { type: 'boolean' } }, { min: 0, max: 0 });
      if (help) return (print(ctx.stdout, this.usage), 0);
      const stateDir = resolveStateDir(values['state-dir'], { ...host, env: ctx.env });
      const s = await callAdmin<ApplianceStatus>(stateDir, 'GET', '/v1/status', undefined, { onWait: (m) => print(ctx.stderr, m) });
      print(ctx.stdout, values.json ? JSON.stringify(s, null, 2) : renderStatus(s));
      return s.healthy ? 0 : 1;
    },
  };

  const firstboot: Command = {
    name: 'firstboot',
    summary: 'apply the OVA vApp properties (SSH keys, host name, static network)',
    usage: `airgap firstboot --ovf-env FILE [--root DIR] [--user NAME] [--json]

Reads an OVF environment document (what vCenter passes to the VM from the
"Deploy OVF Template" wizard; cloud-init's OVF datasource saves it, or
'vmware-rpctool "info-get guestinfo.ovfEnv"' prints it) and writes under DIR
(default /): the user's ~/.ssh/authorized_keys, /etc/hostname and /etc/hosts,
/etc/netplan/60-airgap.yaml for a static network, and an sshd drop-in that turns
password login off. Properties: public-keys, hostname, network.address (CIDR),
network.gateway, network.dns. Idempotent.`,
    async run(args, ctx) {
      const { values, help } = parseCommandArgs(this, args, {
        'ovf-env': { type: 'string' },
        root: { type: 'string' },
        user: { type: 'string' },
        json: { type: 'boolean' },
      }, { min: 0, max: 0 });
      if (help) return (print(ctx.stdout, this.usage), 0);
      if (!values['ovf-env']) throw new UsageError('--ovf-env FILE is required', { hint: 'airgap firstboot --ovf-env /var/lib/cloud/seed/ovf-env.xml' });
      const { applyFirstBoot, parseOvfEnvironment } = await import('../firstboot/firstboot.js');
      const settings = parseOvfEnvironment(await readFile(values['ovf-env'], 'utf8'));
      const written = await applyFirstBoot(values.root ?? '/', settings, values.user ?? 'ubuntu');
      print(ctx.stdout, values.json ? JSON.stringify({ settings, written }, null, 2) : written.map((f) => `wrote ${f}`).join('\n'));
      return 0;
    },
  };

  return [serve, setup, status, firstboot];
}

