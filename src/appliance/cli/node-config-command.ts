/**
 * `airgap node-config --out DIR [--json]`: writes every file a node needs to pull from the
 * appliance, for containerd, CRI-O/podman, RKE2/K3s, Docker and Kubernetes, with a README
 * that says where each goes (docs/cli.md, "airgap node-config"; daemon/node-config.ts).
 */
import { randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, rename, writeFile } from 'node:fs/promises';
import { unsafeOwnership } from '../../kit/fs.js';
import { dirname, join, resolve, sep } from 'node:path';
import { defineCommand, EXIT, print, type CliContext } from '../../kit/cli.js';
import { AirgapError, UsageError } from '../../kit/errors.js';
import { printable } from '../../kit/text.js';
import type { NodeConfigFile } from '../daemon/node-config.js';
import { callAdmin } from './admin-client.js';
import { jsonOption, stateDirEnvironment, stateDirOption, userPath } from './options.js';

/** The node-config verb; `stateDirOf` resolves --state-dir, `cwd` a relative --out. */
export function nodeConfigCommand(stateDirOf: (flag: string | undefined, ctx: CliContext) => string, cwd: string) {
  return defineCommand({
    name: 'node-config',
    summary: 'write the files nodes need to pull from the appliance (containerd, CRI-O, RKE2, Docker, Kubernetes)',
    usage: 'airgap node-config --out DIR [--json] [--state-dir DIR]',
    description: `Writes into DIR, from the live setup (addresses, the registries' pull accounts, the
CA) and the upstream registries the releases' images came from (mirrored to the
appliance, so images keep their original names on the nodes):
  containerd/certs.d/<host:port>/{hosts.toml,ca.crt}   (and <upstream>/hosts.toml)
  containers/registries.conf.d/50-airgap.conf, containers/certs.d/<host:port>/ca.crt,
  containers/auth.json                                   CRI-O and podman
  rke2/registries.yaml, rke2/airgap-ca.crt               RKE2 and K3s
  docker/certs.d/<host:port>/ca.crt
  kubernetes/pull-secret.yaml, kubernetes/ca-configmap.yaml
  README.md                                              where each file goes
Files with a password in them are 0600, DIR 0700. Running it again writes the same
files over the old ones.`,
    args: { min: 0, max: 0 },
    options: {
      out: { type: 'string', value: 'DIR', description: 'the folder to write into (made when missing); required' },
      ...jsonOption('print {dir, imageRegistry, packRegistry, upstreams, files: [{path, mode, bytes}]}'),
      ...stateDirOption(),
    },
    environment: stateDirEnvironment,
    async run({ values }, ctx) {
      if (!values.out) throw new UsageError('--out DIR is required', { hint: 'airgap node-config --out ./node-config' });
      const dir = userPath(values.out, ctx, cwd);
      const config = await callAdmin<{ files: NodeConfigFile[]; imageRegistry: string; packRegistry: string; upstreams: string[] }>(stateDirOf(values['state-dir'], ctx), 'GET', '/v1/node-config');
      await mkdir(dir, { recursive: true, mode: 0o700 });
      // Passwords go in there: a folder another user owns or can write could hand them over (or a link).
      const unsafe = await unsafeOwnership(dir);
      if (unsafe) throw new UsageError(`--out ${dir} ${unsafe.problem}; the files hold the registries' passwords`, { hint: `choose a folder of your own, or run '${unsafe.fix}'` });
      await chmod(dir, 0o700);
      for (const f of config.files) {
        const path = resolve(dir, f.path);
        // The daemon's paths are its own; still, nothing lands outside DIR.
        if (!path.startsWith(dir + sep)) throw new AirgapError('AG_DAEMON_PROTOCOL', `the daemon sent a path outside the folder: ${f.path}`);
        await mkdir(dirname(path), { recursive: true, mode: 0o700 });
        for (let parent = dirname(path); parent !== dir; parent = dirname(parent)) {
          if (!(await lstat(parent)).isDirectory()) throw new UsageError(`${parent} is not a folder (a link?); node-config writes only real folders under --out`);
        }
        // A new file (never opened through a link someone left), then renamed over the old one.
        const temp = join(dirname(path), `.${randomBytes(6).toString('hex')}.tmp`);
        await writeFile(temp, f.content, { mode: f.mode, flag: 'wx' });
        await chmod(temp, f.mode);
        await rename(temp, path);
      }
      const report = { dir, imageRegistry: config.imageRegistry, packRegistry: config.packRegistry, upstreams: config.upstreams, files: config.files.map((f) => ({ path: f.path, mode: `0${f.mode.toString(8)}`, bytes: Buffer.byteLength(f.content) })) };
      print(ctx.stdout, values.json
        ? JSON.stringify(report, null, 2)
        : [`Wrote ${config.files.length} files into ${printable(dir)} for ${config.imageRegistry} and ${config.packRegistry}${config.upstreams.length ? `, mirroring ${config.upstreams.join(', ')}` : ''}.`, `Where each goes: ${printable(join(dir, 'README.md'))}`].join('\n'));
      return EXIT.ok;
    },
  });
}
