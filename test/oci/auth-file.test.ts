/**
 * Registry credentials from a docker config.json (src/oci/auth-file.ts): `auths` keyed by
 * host or by URL, `credHelpers` and `credsStore` run as docker-credential-<name> get.
 */
import t from 'tap';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadRegistryAuth, registryKey } from '../../src/oci/auth-file.js';
import { tempDir } from '../helpers/temp.js';

const dir = await tempDir(t, 'airgap-auth-file-');
const b64 = (s: string) => Buffer.from(s).toString('base64');

// A credential helper as docker runs it: the registry on stdin, JSON on stdout.
const helper = join(dir, 'docker-credential-test');
await writeFile(helper, `#!/bin/sh\nread host\ncase "$host" in\n  vault.example.com) echo '{"ServerURL":"vault.example.com","Username":"vault-user","Secret":"s3cret"}' ;;\n  store.example.com) echo '{"ServerURL":"store.example.com","Username":"store-user","Secret":"st0re"}' ;;\n  oauth.example.com) echo '{"ServerURL":"oauth.example.com","Username":"<token>","Secret":"refresh-me"}' ;;\n  *) echo "credentials not found in native keychain"; exit 1 ;;\nesac\n`);
await chmod(helper, 0o755);
const path = process.env.PATH;
process.env.PATH = `${dir}:${path}`;
t.teardown(() => void (process.env.PATH = path));

t.test('registry keys: URL forms, case and Docker Hub names meet the host', async (t) => {
  t.equal(registryKey('https://Harbor.Example.com/v2/'), 'harbor.example.com');
  t.equal(registryKey('http://10.0.0.5:5000'), '10.0.0.5:5000');
  t.equal(registryKey('https://index.docker.io/v1/'), 'docker.io');
  t.equal(registryKey('quay.io'), 'quay.io');
});

t.test('auths by host or URL, helpers per registry, the store for the rest', async (t) => {
  const file = join(dir, 'config.json');
  await writeFile(file, JSON.stringify({
    auths: {
      'https://harbor.example.com/v2/': { auth: b64('robot$ci:pw1') },
      'http://10.0.0.5:5000': { username: 'lab', password: 'pw2' },
      'https://index.docker.io/v1/': { auth: b64('hub:pw3') },
      'vault.example.com': { auth: b64('ignored:because-the-helper-wins') },
      'acr.example.com': { auth: b64('<token>:'), identitytoken: 'eyJ-refresh' },
    },
    credHelpers: { 'vault.example.com': 'test', 'oauth.example.com': 'test' },
    credsStore: 'test',
  }));
  const lookup = await loadRegistryAuth(file);
  t.same(lookup('harbor.example.com'), { username: 'robot$ci', password: 'pw1' });
  t.same(lookup('10.0.0.5:5000'), { username: 'lab', password: 'pw2' });
  t.same(lookup('docker.io'), { username: 'hub', password: 'pw3' });
  t.same(lookup('vault.example.com'), { username: 'vault-user', password: 's3cret' }, 'credHelpers wins over auths');
  t.same(lookup('store.example.com'), { username: 'store-user', password: 'st0re' }, 'credsStore for a registry auths does not name');
  t.equal(lookup('nowhere.example.com'), undefined, '"credentials not found" is no credentials, not an error');
  t.same(lookup('acr.example.com'), { username: '<token>', password: '', identityToken: 'eyJ-refresh' }, 'an identitytoken goes before auth');
  t.same(lookup('oauth.example.com'), { username: '<token>', password: '', identityToken: 'refresh-me' }, "a helper's <token> user gives an identity token");
});

t.test('a helper that is not installed is a clear error; a file that is not JSON a usage error', async (t) => {
  const file = join(dir, 'missing-helper.json');
  await writeFile(file, JSON.stringify({ credHelpers: { 'ecr.example.com': 'ecr-login' } }));
  const lookup = await loadRegistryAuth(file);
  t.throws(() => lookup('ecr.example.com'), { code: 'AG_UNAUTHORIZED', message: /docker-credential-ecr-login is not installed/ });
  const bad = join(dir, 'bad.json');
  await writeFile(bad, '{not json');
  await t.rejects(loadRegistryAuth(bad), { code: 'AG_USAGE' });
});
