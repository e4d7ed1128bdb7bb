/**
 * The configuration of a bundled CNCF distribution registry (Debian's `docker-registry`,
 * distribution 2.8 config format "version: 0.1"): filesystem storage with delete enabled
 * and upload purging, TLS with the appliance certificate, htpasswd (bcrypt) auth.
 */
import { stringify } from 'yaml';
import { hostPort } from '../config/address.js';
import type { RegistryPaths } from '../config/state-layout.js';

export interface RegistryConfigInput {
  name: string;
  paths: RegistryPaths;
  address: string;
  port: number;
  serverCert: string;
  serverKey: string;
  /** Shared secret distribution signs upload state with; stable across restarts. */
  httpSecret: string;
}

/**
 * Renders config.yml. Deterministic: the same input gives the same text, so the daemon
 * can tell whether a registry needs a restart by comparing files.
 */
export function renderRegistryConfig(input: RegistryConfigInput): string {
  const config = {
    version: 0.1,
    log: { level: 'warn', formatter: 'json', fields: { service: `registry-${input.name}` }, accesslog: { disabled: true } },
    storage: {
      filesystem: { rootdirectory: input.paths.data },
      delete: { enabled: true },
      cache: { blobdescriptor: 'inmemory' },
      maintenance: { uploadpurging: { enabled: true, age: '168h', interval: '24h', dryrun: false }, readonly: { enabled: false } },
    },
    http: {
      addr: hostPort(input.address, input.port),
      secret: input.httpSecret,
      tls: { certificate: input.serverCert, key: input.serverKey, minimumtls: 'tls1.2' },
      headers: { 'X-Content-Type-Options': ['nosniff'] },
      draintimeout: '10s',
    },
    auth: { htpasswd: { realm: `airgap-${input.name}`, path: input.paths.htpasswd } },
    health: { storagedriver: { enabled: true, interval: '10s', threshold: 3 } },
  };
  return `# Written by the airgap daemon; edits are replaced at its next start or setup.\n${stringify(config)}`;
}
