/**
 * `airgap push --release VERSION` on the appliance: the release's images, charts and packs
 * as the daemon records them (GET /v1/releases on the admin socket), read from the
 * appliance's own registries with the credentials and CA `airgap setup` prints (GET
 * /v1/connection). The push itself is src/push/'s.
 */
import { UsageError } from '../../kit/errors.js';
import type { CliContext } from '../../kit/cli.js';
import { RegistryClient } from '../../oci/client.js';
import type { ReleaseResolver } from '../../push/commands.js';
import type { ReleaseSourceSpec } from '../../push/push.js';
import type { ReleaseArtifact } from '../../transfer/plan-registry.js';
import { resolveStateDir, type Host } from '../config/config.js';
import type { ConnectionDetails } from '../daemon/setup.js';
import { callAdmin } from './admin-client.js';

interface ReleasesReply {
  releases: Array<{ version: string; name: string; fileCount: number; images: Array<{ target: string; digest: string }>; charts: Array<{ target: string; digest: string }>; packs: Array<{ target: string; digest: string }> }>;
}

/**
 * The resolver the full CLI gives `airgap push`. Throws UsageError when the release is not
 * on the box (naming the ones that are), DaemonError when the daemon does not answer.
 */
export function releaseResolver(host: Omit<Host, 'env'>): ReleaseResolver {
  return async (version: string, stateDirFlag: string | undefined, ctx: CliContext): Promise<ReleaseSourceSpec> => {
    const stateDir = resolveStateDir(stateDirFlag, { ...host, env: ctx.env });
    // Without the files: a release of 100,000 files is counted, not listed.
    const doc = await callAdmin<ReleasesReply>(stateDir, 'GET', '/v1/releases?files=false');
    const release = doc.releases.find((r) => r.version === version);
    if (!release) {
      throw new UsageError(`there is no release ${version} on this appliance`, {
        hint: doc.releases.length ? `its releases: ${doc.releases.map((r) => r.version).join(', ')} (airgap releases)` : 'import a .bin first (airgap import FILE.bin)',
      });
    }
    const details = await callAdmin<ConnectionDetails>(stateDir, 'GET', '/v1/connection');
    const caPem = Buffer.from(details.caCertificateBase64, 'base64').toString('utf8');
    const client = (account: ConnectionDetails['imageRegistry'], label: string) =>
      new RegistryClient({ registry: account.url, caPem, credentials: { username: account.username, password: account.password }, access: 'pull', label, ...(ctx.signal ? { signal: ctx.signal } : {}) });
    const artifacts: ReleaseArtifact[] = [
      ...release.images.map((a) => ({ kind: 'image' as const, target: a.target, digest: a.digest })),
      ...release.charts.map((a) => ({ kind: 'chart' as const, target: a.target, digest: a.digest })),
      ...release.packs.map((a) => ({ kind: 'pack' as const, target: a.target, digest: a.digest })),
    ];
    return {
      name: release.name,
      version: release.version,
      artifacts,
      fileCount: release.fileCount,
      sources: { images: client(details.imageRegistry, "the appliance's image registry"), packs: client(details.packRegistry, "the appliance's pack registry") },
    };
  };
}
