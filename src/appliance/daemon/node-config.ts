/**
 * `airgap node-config` (issue 17): every file a node needs to pull from the appliance,
 * for each container runtime, made from the live setup (registry addresses, the pull
 * account, the CA) and the upstream registries the releases' images came from, which
 * become mirrors so images keep their original names on the nodes.
 *
 * The layout (docs/cli.md, "airgap node-config"; tests rely on it):
 *
 *   README.md                                         where each file goes
 *   containerd/certs.d/<host:port>/{hosts.toml,ca.crt}  and one folder per upstream (a mirror)
 *   containers/registries.conf.d/50-airgap.conf       CRI-O and podman: mirrors
 *   containers/certs.d/<host:port>/ca.crt
 *   containers/auth.json
 *   rke2/registries.yaml  rke2/airgap-ca.crt          RKE2 and K3s
 *   docker/certs.d/<host:port>/ca.crt
 *   kubernetes/pull-secret.yaml  kubernetes/ca-configmap.yaml
 *
 * Pure: it makes text; the caller writes it (mode 0600 where a password is in it).
 */

/** What the files are made from. */
export interface NodeConfigInput {
  /** `host:port` of the image registry (images and charts) and of the pack registry, as clients reach them. */
  imageRegistry: string;
  packRegistry: string;
  /** The pull account of each registry. */
  imageCredential: { username: string; password: string };
  packCredential: { username: string; password: string };
  /** The CA clients trust (PEM). */
  caPem: string;
  /** Upstream registry hosts the releases' images came from (`docker.io`, `quay.io`, …). */
  upstreams: string[];
}

/** One file of the output. */
export interface NodeConfigFile {
  /** Relative to the output folder, `/`-separated. */
  path: string;
  content: string;
  /** 0o600 when it holds a password, else 0o644. */
  mode: number;
}

/** The real host behind a registry name clients write (Docker Hub's API is not at docker.io). */
const UPSTREAM_SERVER: Record<string, string> = { 'docker.io': 'https://registry-1.docker.io' };

/**
 * The upstream registry host of an image `source` as bundle.yaml wrote it: `docker://HOST/…`
 * or `HOST/…` gives HOST, a reference without a host (`nginx:1.25`, `library/nginx`) gives
 * docker.io, an OCI layout or archive (`oci:…`, `oci-archive:…`, `dir:…`) gives none.
 */
export function upstreamOf(source: string): string | undefined {
  let ref = source.trim();
  if (/^(oci|oci-archive|docker-archive|dir|containers-storage):/.test(ref) || ref.startsWith('./') || ref.startsWith('/')) return undefined;
  ref = ref.replace(/^docker:\/\//, '');
  const slash = ref.indexOf('/');
  const first = slash < 0 ? '' : ref.slice(0, slash);
  const host = first && (first.includes('.') || first.includes(':') || first === 'localhost') ? first.toLowerCase() : 'docker.io';
  // A registry host name or address with an optional port, nothing else: it becomes a folder
  // name and a TOML/YAML key in the node files (a bundle's source is informative, not trusted).
  if (!/^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*|\[[0-9a-f:.]+\])(?::\d{1,5})?$/.test(host)) return undefined;
  return host === 'index.docker.io' || host === 'registry-1.docker.io' ? 'docker.io' : host;
}

/** A TOML basic string (TOML 1.0, section "String"). */
function tomlString(value: string): string {
  return JSON.stringify(value).replace(/[\u007f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** YAML double-quoted scalars: JSON strings are valid ones (YAML 1.2, section 7.3.1). */
const yamlString = (value: string) => JSON.stringify(value);

const basic = (c: { username: string; password: string }) => Buffer.from(`${c.username}:${c.password}`).toString('base64');

/** containerd's hosts.toml for `server` served by the appliance registry `mirror`. */
function hostsToml(server: string, mirror: string, credential: { username: string; password: string }, upstream: boolean): string {
  return [
    `# Made by airgap node-config. containerd: config_path = "/etc/containerd/certs.d" (docs: containerd/docs/hosts.md).`,
    `server = ${tomlString(server)}`,
    '',
    `[host.${tomlString(`https://${mirror}`)}]`,
    '  capabilities = ["pull", "resolve"]',
    // Relative to this file's folder: where certs.d is installed does not matter.
    `  ca = ${tomlString(upstream ? `../${mirror}/ca.crt` : 'ca.crt')}`,
    `  [host.${tomlString(`https://${mirror}`)}.header]`,
    `    Authorization = [${tomlString(`Basic ${basic(credential)}`)}]`,
    '',
  ].join('\n');
}

/** The files of `input`, in a stable order. */
export function nodeConfigFiles(input: NodeConfigInput): NodeConfigFile[] {
  const { imageRegistry: images, packRegistry: packs } = input;
  const upstreams = [...new Set(input.upstreams.filter((u) => u !== images && u !== packs))].sort();
  const ca = input.caPem.endsWith('\n') ? input.caPem : `${input.caPem}\n`;
  const files: NodeConfigFile[] = [];
  const add = (path: string, content: string, secret = false) => files.push({ path, content, mode: secret ? 0o600 : 0o644 });
  const auths = {
    auths: {
      [images]: { auth: basic(input.imageCredential) },
      [packs]: { auth: basic(input.packCredential) },
    },
  };
  const authJson = `${JSON.stringify(auths, null, 2)}\n`;

  // containerd (and everything built on it: kubelet's CRI, RKE2 and K3s write their own from registries.yaml).
  for (const [host, credential] of [[images, input.imageCredential], [packs, input.packCredential]] as const) {
    add(`containerd/certs.d/${host}/hosts.toml`, hostsToml(`https://${host}`, host, credential, false), true);
    add(`containerd/certs.d/${host}/ca.crt`, ca);
  }
  for (const upstream of upstreams) add(`containerd/certs.d/${upstream}/hosts.toml`, hostsToml(UPSTREAM_SERVER[upstream] ?? `https://${upstream}`, images, input.imageCredential, true), true);

  // CRI-O and podman (containers-registries.conf(5), containers-auth.json(5), containers-certs.d(5)).
  add('containers/registries.conf.d/50-airgap.conf', [
    '# Made by airgap node-config: /etc/containers/registries.conf.d/50-airgap.conf',
    ...[images, packs].flatMap((host) => ['', '[[registry]]', `location = ${tomlString(host)}`]),
    ...upstreams.flatMap((upstream) => ['', '[[registry]]', `prefix = ${tomlString(upstream)}`, `location = ${tomlString(upstream)}`, '', '[[registry.mirror]]', `location = ${tomlString(images)}`]),
    '',
  ].join('\n'));
  for (const host of [images, packs]) add(`containers/certs.d/${host}/ca.crt`, ca);
  add('containers/auth.json', authJson, true);

  // RKE2 and K3s (registries.yaml: mirrors and configs).
  add('rke2/registries.yaml', [
    '# Made by airgap node-config: /etc/rancher/rke2/registries.yaml (K3s: /etc/rancher/k3s/registries.yaml)',
    'mirrors:',
    ...[images, packs, ...upstreams].flatMap((name) => [`  ${yamlString(name)}:`, '    endpoint:', `      - ${yamlString(`https://${upstreams.includes(name) ? images : name}`)}`]),
    'configs:',
    ...[[images, input.imageCredential], [packs, input.packCredential]].flatMap(([host, c]) => {
      const credential = c as { username: string; password: string };
      return [
        `  ${yamlString(host as string)}:`,
        '    auth:',
        `      username: ${yamlString(credential.username)}`,
        `      password: ${yamlString(credential.password)}`,
        '    tls:',
        '      ca_file: "/etc/rancher/rke2/airgap-ca.crt"',
      ];
    }),
    '',
  ].join('\n'), true);
  add('rke2/airgap-ca.crt', ca);

  // Docker (certs.d; credentials with docker login).
  for (const host of [images, packs]) add(`docker/certs.d/${host}/ca.crt`, ca);

  // Kubernetes: a pull secret and the CA for workloads that talk to the registries.
  add('kubernetes/pull-secret.yaml', [
    '# Made by airgap node-config: kubectl apply -n NAMESPACE -f pull-secret.yaml, then imagePullSecrets: [{name: airgap-pull}]',
    'apiVersion: v1',
    'kind: Secret',
    'metadata:',
    '  name: airgap-pull',
    'type: kubernetes.io/dockerconfigjson',
    'data:',
    `  .dockerconfigjson: ${Buffer.from(JSON.stringify(auths)).toString('base64')}`,
    '',
  ].join('\n'), true);
  add('kubernetes/ca-configmap.yaml', [
    '# Made by airgap node-config: kubectl apply -n NAMESPACE -f ca-configmap.yaml',
    'apiVersion: v1',
    'kind: ConfigMap',
    'metadata:',
    '  name: airgap-ca',
    'data:',
    '  ca.crt: |',
    ...ca.trimEnd().split('\n').map((l) => `    ${l}`),
    '',
  ].join('\n'));

  add('README.md', readme(images, packs, upstreams));
  return files;
}

function readme(images: string, packs: string, upstreams: string[]): string {
  return `# Node configuration for the airgap appliance

Made by \`airgap node-config\` from the appliance's live setup. Image registry: \`${images}\`;
pack registry: \`${packs}\`.${upstreams.length ? ` Mirrored upstream registries (images keep their original names): ${upstreams.map((u) => `\`${u}\``).join(', ')}.` : ''}
Files marked (secret) hold the pull account's password: keep them 0600, root's.

## containerd (and kubelet's CRI)

    cp -r containerd/certs.d/. /etc/containerd/certs.d/          # (secret: hosts.toml)

In /etc/containerd/config.toml (version 2):

    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = "/etc/containerd/certs.d"

No restart is needed for changes under certs.d. Test: \`ctr images pull --hosts-dir /etc/containerd/certs.d ${images}/REPO:TAG\`.

## CRI-O and podman

    cp containers/registries.conf.d/50-airgap.conf /etc/containers/registries.conf.d/
    cp -r containers/certs.d/. /etc/containers/certs.d/
    cp containers/auth.json /etc/containers/auth.json            # (secret) CRI-O: global_auth_file; podman: --authfile or REGISTRY_AUTH_FILE

Then \`systemctl restart crio\`.

## RKE2 and K3s

    cp rke2/registries.yaml /etc/rancher/rke2/registries.yaml     # (secret) K3s: /etc/rancher/k3s/registries.yaml
    cp rke2/airgap-ca.crt /etc/rancher/rke2/airgap-ca.crt

Then restart rke2-server or rke2-agent (k3s, k3s-agent).

## Docker

    cp -r docker/certs.d/. /etc/docker/certs.d/
    docker login ${images}

## Kubernetes

    kubectl apply -n NAMESPACE -f kubernetes/pull-secret.yaml    # (secret) then imagePullSecrets: [{name: airgap-pull}]
    kubectl apply -n NAMESPACE -f kubernetes/ca-configmap.yaml   # the CA for workloads, as ConfigMap airgap-ca
`;
}

/** The files as one uncompressed tar (a folder `node-config/`), modes kept: the console's and the repository's download. */
export async function nodeConfigTar(files: NodeConfigFile[]): Promise<Buffer> {
  const { default: tarStream } = await import('tar-stream');
  const pack = tarStream.pack();
  const mtime = new Date();
  const dirs = new Set<string>();
  for (const f of files) {
    const parts = f.path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = `node-config/${parts.slice(0, i).join('/')}`;
      if (!dirs.has(dir)) pack.entry({ name: `${dir}/`, type: 'directory', mode: 0o700, mtime });
      dirs.add(dir);
    }
    pack.entry({ name: `node-config/${f.path}`, mode: f.mode, mtime }, f.content);
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of pack) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
