/** The node files on their own: upstream hosts from image sources, and the text of each file. */
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { nodeConfigFiles, upstreamOf } from '../../src/appliance/daemon/node-config.js';

t.test('upstreamOf: the registry host of an image source, or none', async (t) => {
  t.equal(upstreamOf('docker://quay.io/cilium/cilium:v1.14.2'), 'quay.io');
  t.equal(upstreamOf('docker://nginx:1.25'), 'docker.io', 'no host: Docker Hub');
  t.equal(upstreamOf('library/nginx:1.25'), 'docker.io');
  t.equal(upstreamOf('docker://index.docker.io/library/nginx:1.25'), 'docker.io');
  t.equal(upstreamOf('docker://Registry.Example:5000/a/b:c'), 'registry.example:5000');
  t.equal(upstreamOf('docker://localhost/x:1'), 'localhost');
  t.equal(upstreamOf('oci:./images:app'), undefined, 'an OCI layout has no upstream');
  t.equal(upstreamOf('./images/app'), undefined);
  for (const bad of ['docker://../x/y:1', 'docker://a"b.io/x:1', 'docker://a\nb.io/x:1', 'docker://-a.io/x:1', 'docker://a..b/x:1']) {
    t.equal(upstreamOf(bad), undefined, `refused: ${JSON.stringify(bad)}`);
  }
});

t.test('the files parse as their formats, with the names quoted', async (t) => {
  const files = nodeConfigFiles({
    imageRegistry: '10.0.0.5:5000',
    packRegistry: '10.0.0.5:8000',
    imageCredential: { username: 'airgap-images', password: 'p"w\\x' },
    packCredential: { username: 'airgap-packs', password: 'q' },
    caPem: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n',
    upstreams: ['quay.io', 'docker.io'],
  });
  const byPath = new Map(files.map((f) => [f.path, f]));
  const rke2 = parseYaml(byPath.get('rke2/registries.yaml')!.content) as { mirrors: Record<string, { endpoint: string[] }>; configs: Record<string, { auth: { password: string } }> };
  t.same(rke2.mirrors['docker.io']!.endpoint, ['https://10.0.0.5:5000'], 'an upstream is mirrored to the image registry');
  t.equal(rke2.configs['10.0.0.5:5000']!.auth.password, 'p"w\\x', 'a password with quotes and backslashes survives');
  const auth = JSON.parse(byPath.get('containers/auth.json')!.content) as { auths: Record<string, { auth: string }> };
  t.equal(Buffer.from(auth.auths['10.0.0.5:5000']!.auth, 'base64').toString(), 'airgap-images:p"w\\x');
  t.match(byPath.get('containerd/certs.d/quay.io/hosts.toml')!.content, /server = "https:\/\/quay\.io"\n\n\[host\."https:\/\/10\.0\.0\.5:5000"\]\n {2}capabilities = \["pull", "resolve"\]\n {2}ca = "\.\.\/10\.0\.0\.5:5000\/ca\.crt"/);
  t.match(byPath.get('containerd/certs.d/docker.io/hosts.toml')!.content, /server = "https:\/\/registry-1\.docker\.io"/);
  t.equal(byPath.get('containers/auth.json')!.mode, 0o600);
  t.equal(byPath.get('README.md')!.mode, 0o644);
  t.ok(files.every((f) => !f.path.split('/').includes('..')), 'no path leaves the folder');
});
