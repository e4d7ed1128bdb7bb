/**
 * The appliance's identity and `airgap setup`: the CA and server certificate, the
 * accounts' credentials, the registries' HTTP secret, the repo address, the URLs built
 * from it, and applying a new repo address (re-issue the certificate when its SAN must
 * change, rewrite the registry files, restart the registries whose files changed).
 */
import { randomBytes, X509Certificate } from 'node:crypto';
import { hostname as osHostname } from 'node:os';
import { addressWarnings, httpsUrl, isWildcardAddress, parseRepoAddress } from '../config/address.js';
import type { ServeConfig } from '../config/config.js';
import type { RegistryName, StateLayout } from '../config/state-layout.js';
import type { RegistryFleet } from '../registries/fleet.js';
import { ensureCredentials, type AccountName, type Credential } from '../security/credentials.js';
import { caBase64, certificateCovers, ensurePki, installSiteCertificate, PkiError, usesSiteCertificate, validateSiteCertificate, type ServerCertificateInfo, type SiteCertificate, type SiteCertificateInput, type TlsMaterial } from '../security/pki.js';
import type { Db } from '../store/db.js';
import { getSetting, setSetting } from '../store/settings.js';

/** Settings keys. */
const REPO_ADDRESS = 'repo.address';
const REGISTRY_HTTP_SECRET = 'registry.httpSecret';

/** What `airgap setup --json` prints (docs/cli.md). */
export interface ConnectionDetails {
  repository: { url: string } & Credential;
  imageRegistry: { url: string } & Credential;
  packRegistry: { url: string } & Credential;
  console: { url: string } & Credential;
  /** The classic Helm chart repository (the repository account), and the line that adds it. */
  helmRepository: { url: string; addCommand: string } & Credential;
  caCertificateBase64: string;
}

export interface SetupResult {
  details: ConnectionDetails;
  /** What this run changed; all false on a repeated run. */
  changed: { repoAddress: boolean; certificate: boolean; registriesRestarted: RegistryName[] };
  warnings: string[];
}

/** The appliance's keys and secrets. `tls` and `certificate` change when setup re-issues the server certificate. */
export interface Identity {
  tls: TlsMaterial;
  certificate: ServerCertificateInfo;
  /** Every account's credential; passwords never change once made. */
  credentials: Record<AccountName, Credential>;
  /** The `http.secret` of the bundled registries. */
  registryHttpSecret: string;
}

/** This machine's host name when it is a valid DNS name (it goes into the SAN). */
function dnsHostname(): string | undefined {
  const name = osHostname().toLowerCase();
  try {
    return parseRepoAddress(name).kind === 'dns' ? name : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Names for the server certificate's SAN: the repo address first (or the listen address
 * before setup), the host name, then loopback so that on-box clients verify it too.
 */
export function certificateNames(config: ServeConfig, repoAddress: string | undefined): string[] {
  const names = [repoAddress, isWildcardAddress(config.address) ? undefined : config.address, dnsHostname(), 'localhost', '127.0.0.1', '::1'];
  return [...new Set(names.filter((n): n is string => typeof n === 'string' && n !== ''))];
}

/**
 * Loads the identity from `db` and the PKI folder of `layout`, making what is missing
 * (first run): the registries' HTTP secret, the CA, the server certificate for the
 * stored repo address, the credentials. `caCreated` is true when this call made the CA.
 * Throws PkiError, or the database's and file system's errors.
 */
export async function loadIdentity(db: Db, layout: StateLayout, config: ServeConfig): Promise<{ identity: Identity; caCreated: boolean }> {
  if (!getSetting(db, REGISTRY_HTTP_SECRET)) setSetting(db, REGISTRY_HTTP_SECRET, randomBytes(32).toString('base64url'));
  const pki = await ensurePki(layout, certificateNames(config, getSetting(db, REPO_ADDRESS)));
  return {
    identity: { tls: pki.tls, certificate: pki.server, credentials: ensureCredentials(db), registryHttpSecret: getSetting(db, REGISTRY_HTTP_SECRET)! },
    caCreated: pki.caCreated,
  };
}

/** The repo address set by setup, or null before the first setup. */
export function repoAddress(db: Db): string | null {
  return getSetting(db, REPO_ADDRESS) ?? null;
}

/** The address URLs are built from: `repo` (the repo address), else the listen address or host name. */
export function publicAddress(config: ServeConfig, repo: string | null): string {
  if (repo) return repo;
  const listen = config.address;
  return isWildcardAddress(listen) ? (dnsHostname() ?? '127.0.0.1') : listen;
}

/** URLs on `address`, credentials and the CA, as `airgap setup` prints them. */
export function connectionDetails(config: ServeConfig, address: string, identity: Identity): ConnectionDetails {
  const { credentials } = identity;
  const url = httpsUrl(address, config.httpsPort);
  return {
    repository: { url, ...credentials.repository },
    imageRegistry: { url: httpsUrl(address, config.registryPort), ...credentials.imageRegistry },
    packRegistry: { url: httpsUrl(address, config.packRegistryPort), ...credentials.packRegistry },
    console: { url, ...credentials.console },
    helmRepository: {
      url: `${url}/charts`,
      ...credentials.repository,
      // The password on stdin: not in the shell history or the process list.
      addCommand: `helm repo add airgap ${url}/charts --username ${credentials.repository.username} --password-stdin --ca-file airgap-ca.crt`,
    },
    caCertificateBase64: caBase64(identity.tls.caPem),
  };
}

/** What `airgap setup` may ask besides the address. */
export interface SetupOptions {
  /** Install the site's certificate, key and CA (validated first). */
  site?: SiteCertificateInput | undefined;
  /** Re-issue the appliance-made server certificate now (refused when the site's is installed). */
  renew?: boolean | undefined;
}

/** What applySetup works on. */
export interface SetupContext {
  db: Db;
  layout: StateLayout;
  config: ServeConfig;
  /** Updated in place when the server certificate is re-issued. */
  identity: Identity;
  fleet: RegistryFleet;
  /** Called after the server certificate changed, so listeners reload it. */
  onTlsChange?: (tls: TlsMaterial) => void;
  event: (actor: string, kind: string, message: string, data?: Record<string, unknown>) => void;
}

/**
 * `airgap setup <repo-ip>`: validates the address `input`, stores it, re-issues the
 * server certificate when its SAN must change (the CA stays) or `options.renew` asks, or
 * installs the site's certificate (`options.site`, validated before anything changes;
 * PkiError AG_SITE_CERT with the reason), rewrites registry files
 * and restarts only the registries whose config or certificate changed. Idempotent;
 * the caller runs one at a time. Throws UsageError for a bad address,
 * RegistryStartError when a registry does not come back (the error says which and why).
 */
export async function applySetup(context: SetupContext, input: string, actor: string, options: SetupOptions = {}): Promise<SetupResult> {
  const { db, layout, config, identity, fleet } = context;
  const address = parseRepoAddress(input);
  const warnings = await addressWarnings(address);
  // Everything that can refuse runs before anything changes: the running certificate stays.
  let site: SiteCertificate | undefined;
  try {
    site = options.site ? validateSiteCertificate(options.site, address.value) : undefined;
  } catch (err) {
    context.event(actor, 'setup.refused', `setup for ${address.value} refused: ${(err as Error).message}`, { repoAddress: address.value });
    throw err;
  }
  const siteInstalled = await usesSiteCertificate(layout);
  if (!site && siteInstalled) {
    if (options.renew) {
      throw new PkiError('AG_SITE_CERT', "the server certificate is the site's: the appliance does not renew it", { hint: 'renew it at the site CA, then install it: airgap setup <repo-ip> --cert FILE --key FILE --ca FILE' });
    }
    if (!certificateCovers(new X509Certificate(identity.tls.certPem), address.value)) {
      throw new PkiError('AG_SITE_CERT', `the site certificate does not cover ${address.value} (its SAN: ${identity.certificate.subjectAltNames.join(', ')})`, {
        hint: 'install one that does: airgap setup <repo-ip> --cert FILE --key FILE --ca FILE',
      });
    }
  }
  const addressChanged = setSetting(db, REPO_ADDRESS, address.value);
  let pki: { tls: TlsMaterial; server: ServerCertificateInfo; serverCertIssued: boolean };
  if (site) {
    pki = { tls: await installSiteCertificate(layout, site), server: site.info, serverCertIssued: site.info.fingerprintSha256 !== identity.certificate.fingerprintSha256 };
  } else {
    pki = await ensurePki(layout, certificateNames(config, address.value), { renew: options.renew === true });
  }
  identity.tls = pki.tls;
  identity.certificate = pki.server;
  if (pki.serverCertIssued) context.onTlsChange?.(pki.tls);
  await fleet.writeFiles();
  // Restart every registry whose running process started from other files: changed
  // now, or left behind by an earlier setup whose restart failed.
  const { attempted: restart, restarted, failed } = await fleet.restartStale();
  const changed = { repoAddress: addressChanged, certificate: pki.serverCertIssued, registriesRestarted: restarted };
  if (addressChanged || pki.serverCertIssued || restart.length) {
    context.event(actor, failed ? 'setup.failed' : 'setup.applied', `setup for ${address.value}${pki.serverCertIssued ? `: new server certificate (${site ? "the site's" : 'from the appliance CA'})` : ''}${restart.length ? `, restarted ${restart.join(' and ')}` : ''}${failed ? ' (a restart failed)' : ''}`, {
      ...changed,
      repoAddress: address.value,
      subjectAltNames: pki.server.subjectAltNames,
      certificateSource: pki.server.source,
      fingerprintSha256: pki.server.fingerprintSha256,
    });
  }
  if (failed) throw failed.reason;
  return { details: connectionDetails(config, publicAddress(config, repoAddress(db)), identity), changed, warnings };
}
