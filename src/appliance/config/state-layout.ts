/**
 * The layout of the state dir: every path the appliance keeps is built here and nowhere
 * else.
 *
 *   <state-dir>/                      mode 0700
 *     airgap.db                       SQLite (WAL), mode 0600
 *     config.yaml                     the admin's settings (retention), optional (config/config-file.ts)
 *     admin.sock                      the local admin API, mode 0600
 *     daemon.pid                      the running daemon's pid
 *     pki/ca.crt ca.key               the appliance CA (made once; key 0600)
 *     pki/server.crt server.key       the server certificate (SAN: repo address, host name), or the site's
 *     pki/site-ca.crt                 the site's CA, when the server certificate is the site's (setup --cert)
 *     registries/<name>/config.yml    CNCF distribution config of each bundled registry
 *     registries/<name>/htpasswd      its credentials, bcrypt (0600)
 *     registries/<name>/registry.pid  its pid, so a restarted daemon finds an orphan
 *     registries/<name>/gc.pid        the pid of its garbage-collect run, while one runs
 *     registries/<name>/data/         its storage root
 *     registries/<name>/incoming/     temp files of blobs an import writes into that storage (ADR 0008)
 *     repo/                           the file repository, served under /repo/
 *     charts/                         the classic Helm chart repository, served under /charts/
 *     trusted-keys/*.pub              signing keys whose .bin files are imported
 *     inbox/                          .bin files dropped here are imported
 *     uploads/                        .bin files uploaded in the console, until imported
 */
import { join } from 'node:path';

/** The two bundled registries: images and charts, and packs. */
export const REGISTRY_NAMES = ['images', 'packs'] as const;
export type RegistryName = (typeof REGISTRY_NAMES)[number];

export interface RegistryPaths {
  dir: string;
  config: string;
  htpasswd: string;
  pidFile: string;
  /** The pid of a running `garbage-collect`: a daemon killed during GC stops it at its next start. */
  gcPidFile: string;
  data: string;
  /** Temp files of the blobs and links an import writes into `data` (same file system, so they are renamed into place). */
  incoming: string;
}

export interface StateLayout {
  root: string;
  database: string;
  /** The admin's settings file (config/config-file.ts). */
  configFile: string;
  adminSocket: string;
  daemonPid: string;
  pkiDir: string;
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  /** The site's CA: there when the server certificate is the site's (setup --cert). */
  siteCaCert: string;
  registriesDir: string;
  registry(name: RegistryName): RegistryPaths;
  repoDir: string;
  /** The classic Helm chart repository: index.yaml, the archives, .meta/ (import/chart-repo.ts). */
  chartsDir: string;
  trustedKeysDir: string;
  inboxDir: string;
  uploadsDir: string;
  /** A few MB kept free for recording failures when the disk fills (kit/space-reserve.ts). */
  spaceReserve: string;
}

/** Paths inside `root` (an absolute state dir). Pure: touches nothing on disk. */
export function stateLayout(root: string): StateLayout {
  const pkiDir = join(root, 'pki');
  const registriesDir = join(root, 'registries');
  return {
    root,
    database: join(root, 'airgap.db'),
    configFile: join(root, 'config.yaml'),
    adminSocket: join(root, 'admin.sock'),
    daemonPid: join(root, 'daemon.pid'),
    pkiDir,
    caCert: join(pkiDir, 'ca.crt'),
    caKey: join(pkiDir, 'ca.key'),
    serverCert: join(pkiDir, 'server.crt'),
    serverKey: join(pkiDir, 'server.key'),
    siteCaCert: join(pkiDir, 'site-ca.crt'),
    registriesDir,
    registry(name) {
      const dir = join(registriesDir, name);
      return { dir, config: join(dir, 'config.yml'), htpasswd: join(dir, 'htpasswd'), pidFile: join(dir, 'registry.pid'), gcPidFile: join(dir, 'gc.pid'), data: join(dir, 'data'), incoming: join(dir, 'incoming') };
    },
    repoDir: join(root, 'repo'),
    chartsDir: join(root, 'charts'),
    trustedKeysDir: join(root, 'trusted-keys'),
    inboxDir: join(root, 'inbox'),
    uploadsDir: join(root, 'uploads'),
    spaceReserve: join(root, 'space-reserve'),
  };
}
