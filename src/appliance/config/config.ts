/**
 * The appliance's configuration: the only module that turns flags and environment into
 * settings (docs/cli.md; docs/architecture.md, "What runs on the box"). Everything else receives a
 * resolved {@link ServeConfig} or state dir as an argument.
 */
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { UsageError } from '../../kit/errors.js';
import { isWildcardAddress, parseListenAddress } from './address.js';

/** Where the daemon keeps its state when run as root (the OVA). */
export const ROOT_STATE_DIR = '/var/lib/airgap';

/** Ports of the embedded default: the standard ones as root, unprivileged ones otherwise. */
export const ROOT_PORTS = { https: 443, http: 80, registry: 5000, packRegistry: 8000 } as const;
export const USER_PORTS = { https: 8443, http: 8080, registry: 5000, packRegistry: 8000 } as const;

export interface ServeConfig {
  /** Absolute path of the state dir (database, PKI, registry storage, repository, socket). */
  stateDir: string;
  /** Address every listener binds: an IP, or 0.0.0.0 / :: for all. */
  address: string;
  httpsPort: number;
  httpPort: number;
  registryPort: number;
  packRegistryPort: number;
  /** The distribution binary (Debian's `docker-registry`), looked up on PATH. */
  registryBinary: string;
  /** pino level: fatal, error, warn, info, debug, trace. */
  logLevel: string;
  /** Import unsigned and unknown-key .bin files (explicit operator choice; off by default). */
  allowUnsigned: boolean;
  /** Largest .bin the console accepts, bytes (AIRGAP_MAX_UPLOAD_BYTES; default 100 GiB). */
  maxUploadBytes: number;
  /** A running registry whose health check goes unanswered this long is killed and restarted, seconds. */
  registryStallSeconds: number;
  /** The syslog socket events are sent to (journald's /dev/log), AIRGAP_SYSLOG_SOCKET. */
  syslogSocket: string;
  /**
   * How an import puts blobs into the bundled registries (AIRGAP_IMPORT_BLOBS): `storage`
   * writes them into distribution's filesystem storage (ADR 0008, the default), `http`
   * uploads them through the registry's API as to any other registry.
   */
  importBlobs: 'storage' | 'http';
}

export interface ServeFlags {
  stateDir?: string | undefined;
  address?: string | undefined;
  httpsPort?: string | undefined;
  httpPort?: string | undefined;
  registryPort?: string | undefined;
  packRegistryPort?: string | undefined;
  logLevel?: string | undefined;
  allowUnsigned?: boolean | undefined;
}

export interface Host {
  env: NodeJS.ProcessEnv;
  /** Effective uid; 0 is root. */
  uid: number;
  cwd: string;
}

/**
 * The state dir every verb uses: `--state-dir`, else `AIRGAP_STATE_DIR`, else
 * /var/lib/airgap as root, else `$XDG_STATE_HOME/airgap` (default ~/.local/state/airgap).
 * Returns an absolute path.
 */
export function resolveStateDir(flag: string | undefined, host: Host): string {
  const chosen = flag ?? host.env.AIRGAP_STATE_DIR;
  if (chosen !== undefined && chosen !== '') return isAbsolute(chosen) ? chosen : resolve(host.cwd, chosen);
  if (host.uid === 0) return ROOT_STATE_DIR;
  const xdg = host.env.XDG_STATE_HOME;
  return join(xdg && isAbsolute(xdg) ? xdg : join(host.env.HOME ?? homedir(), '.local', 'state'), 'airgap');
}

function port(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d{1,5}$/.test(value) || Number(value) < 1 || Number(value) > 65535) {
    throw new UsageError(`--${name} must be a port number from 1 to 65535, not '${value}'`);
  }
  return Number(value);
}

/** pino levels `--log-level` takes, and the one without the flag or AIRGAP_LOG_LEVEL. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'];
export const DEFAULT_LOG_LEVEL = 'info';

/** The distribution binary without AIRGAP_REGISTRY_BIN (Debian's package), looked up on PATH. */
export const DEFAULT_REGISTRY_BINARY = 'docker-registry';

/** Seconds a running registry may leave its health check unanswered before it is restarted (AIRGAP_STALL_SECONDS). */
export const DEFAULT_REGISTRY_STALL_SECONDS = 30;

/** Where events go to the system journal without AIRGAP_SYSLOG_SOCKET (journald's syslog socket). */
export const DEFAULT_SYSLOG_SOCKET = '/dev/log';

/** Largest .bin the console accepts without AIRGAP_MAX_UPLOAD_BYTES: 100 GiB. */
export const DEFAULT_MAX_UPLOAD_BYTES = 100 * 1024 ** 3;

/**
 * Resolves `airgap serve` flags into a config. With no flags: loopback and ports
 * 8443/8080/5000/8000 when not root; all addresses and 443/80/5000/8000 as root.
 * Throws UsageError for a bad port, a bad address, a bad log level or two listeners on
 * one port.
 */
export function resolveServeConfig(flags: ServeFlags, host: Host): ServeConfig {
  const root = host.uid === 0;
  const ports = root ? ROOT_PORTS : USER_PORTS;
  const address = flags.address ?? host.env.AIRGAP_ADDRESS ?? (root ? '0.0.0.0' : '127.0.0.1');
  const listen = parseListenAddress(address);
  const logLevel = flags.logLevel ?? host.env.AIRGAP_LOG_LEVEL ?? DEFAULT_LOG_LEVEL;
  if (!LOG_LEVELS.includes(logLevel)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  const config: ServeConfig = {
    stateDir: resolveStateDir(flags.stateDir, host),
    address: listen,
    httpsPort: port('https-port', flags.httpsPort, ports.https),
    httpPort: port('http-port', flags.httpPort, ports.http),
    registryPort: port('registry-port', flags.registryPort, ports.registry),
    packRegistryPort: port('pack-registry-port', flags.packRegistryPort, ports.packRegistry),
    registryBinary: host.env.AIRGAP_REGISTRY_BIN || DEFAULT_REGISTRY_BINARY,
    logLevel,
    allowUnsigned: flags.allowUnsigned === true,
    maxUploadBytes: /^\d+$/.test(host.env.AIRGAP_MAX_UPLOAD_BYTES ?? '') ? Number(host.env.AIRGAP_MAX_UPLOAD_BYTES) : DEFAULT_MAX_UPLOAD_BYTES,
    registryStallSeconds: /^[1-9]\d*$/.test(host.env.AIRGAP_STALL_SECONDS ?? '') ? Number(host.env.AIRGAP_STALL_SECONDS) : DEFAULT_REGISTRY_STALL_SECONDS,
    syslogSocket: host.env.AIRGAP_SYSLOG_SOCKET || DEFAULT_SYSLOG_SOCKET,
    importBlobs: importBlobs(host.env.AIRGAP_IMPORT_BLOBS),
  };
  const used = [config.httpsPort, config.httpPort, config.registryPort, config.packRegistryPort];
  if (new Set(used).size !== used.length) {
    throw new UsageError(`the https, http, registry and pack registry ports must differ (got ${used.join(', ')})`);
  }
  return config;
}

function importBlobs(value: string | undefined): ServeConfig['importBlobs'] {
  if (value === undefined || value === '' || value === 'storage') return 'storage';
  if (value === 'http') return 'http';
  throw new UsageError(`AIRGAP_IMPORT_BLOBS must be 'storage' or 'http', not '${value}'`);
}

/** The address local clients (health checks, the importer) use to reach a listener. */
export function loopbackFor(address: string): string {
  if (!isWildcardAddress(address)) return address;
  return address.includes(':') ? '::1' : '127.0.0.1';
}
