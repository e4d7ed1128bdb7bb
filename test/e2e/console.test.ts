/**
 * The web console in Debian's headless Chromium (playwright-core, /usr/bin/chromium)
 * against the real daemon over TLS: log in, see the registry URL, upload a .bin and watch
 * it become the current release; a wrong password is refused; a cross-site POST from
 * another origin is refused; the console's Content-Security-Policy blocks nothing it does. Saves a screenshot of the dashboard in test/output/.
 */
import t from 'tap';
import { X509Certificate, createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { stringify } from 'yaml';
import { buildBundle } from '../../src/build/builder.js';
import { generateSigningKeys } from '../../src/format/keys.js';
import { makeFiles, writeSyntheticLayout } from '../helpers/fixtures.js';
import { startDaemon } from '../helpers/appliance.js';
import { freePort } from '../helpers/registry.js';
import { tempDir } from '../helpers/temp.js';

const work = await tempDir(t, 'airgap-console-test-');
const output = join(import.meta.dirname, '..', 'output');
await mkdir(output, { recursive: true });
const keys = await generateSigningKeys(join(work, 'keys'));
await writeSyntheticLayout(join(work, 'images'), [{ ref: 'web', layers: [Buffer.alloc(200_000, 1), Buffer.alloc(100_000, 2)] }]);
await makeFiles(join(work, 'manifests'));
const spec = join(work, 'bundle.yaml');
await writeFile(spec, stringify({
  apiVersion: 'airgap/v1', kind: 'Bundle', name: 'demo', version: '1.0.0',
  images: [{ source: 'oci:./images:web', target: 'apps/web:1.0.0' }],
  files: [{ source: './manifests/', target: 'manifests/' }],
}));
const bin = (await buildBundle({ specPath: spec, out: work, privateKeyPath: keys.privateKeyPath })).path;
await writeSyntheticLayout(join(work, 'images'), [{ ref: 'web-2', layers: [Buffer.alloc(200_000, 1), Buffer.alloc(100_000, 3)] }]);
const spec2 = join(work, 'bundle-2.yaml');
await writeFile(spec2, stringify({
  apiVersion: 'airgap/v1', kind: 'Bundle', name: 'demo', version: '1.1.0',
  images: [{ source: 'oci:./images:web-2', target: 'apps/web:1.1.0' }],
  files: [{ source: './manifests/', target: 'manifests/' }],
}));
await mkdir(join(work, 'v2'));
const bin2 = (await buildBundle({ specPath: spec2, out: join(work, 'v2'), privateKeyPath: keys.privateKeyPath })).path;

const daemon = await startDaemon(t);
await copyFile(keys.publicKeyPath, join(daemon.stateDir, 'trusted-keys', 'build.pub'));
const details = JSON.parse((await daemon.cli(['setup', '127.0.0.1', '--json'])).stdout) as {
  console: { url: string; username: string; password: string };
  imageRegistry: { url: string };
};
// Chromium trusts exactly this server key (its SPKI pin), nothing else.
const cert = new X509Certificate(await readFile(join(daemon.stateDir, 'pki', 'server.crt')));
const spki = createHash('sha256').update(cert.publicKey.export({ type: 'spki', format: 'der' })).digest('base64');

const browser: Browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', `--ignore-certificate-errors-spki-list=${spki}`],
});
t.teardown(() => browser.close());
const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
const page = await context.newPage();
const consoleUrl = `${details.console.url}/`;
// What the console's Content-Security-Policy blocked (Chromium reports each in the console).
const blocked: string[] = [];
page.on('console', (message) => {
  if (/Content Security Policy/i.test(message.text())) blocked.push(message.text());
});

t.test('a wrong password is refused', async (t) => {
  await page.goto(consoleUrl);
  await page.getByLabel('Username').fill(details.console.username);
  await page.getByLabel('Password', { exact: true }).fill('not-the-password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByText('Wrong username or password.').waitFor();
  t.ok(await page.locator('#app-view').isHidden(), 'the dashboard stays hidden');
});

t.test('log in, see the registry URL, upload a .bin and watch it become current', async (t) => {
  await page.getByLabel('Password', { exact: true }).fill(details.console.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.locator('#app-view').waitFor({ state: 'visible' });
  await page.getByText('No release yet').waitFor();
  t.match(await page.locator('#connection').innerText(), details.imageRegistry.url);
  t.notMatch(await page.locator('#connection').innerText(), details.console.password, 'passwords hidden until asked');
  await page.getByRole('button', { name: 'Reveal passwords' }).click();
  await page.locator('#connection').getByText(details.console.password).waitFor();

  await page.locator('#upload-file').setInputFiles(bin);
  await page.getByRole('button', { name: 'Upload and import' }).click();
  await page.getByText(/Setup Completed: demo 1\.0\.0 \(install\)/).waitFor({ timeout: 60_000 });
  await page.locator('#summary').getByText('Current release: demo 1.0.0').waitFor();
  t.match(await page.locator('#images').innerText(), /apps\/web:1\.0\.0/);
  t.match(await page.locator('#releases').innerText(), /1\.0\.0\s+demo.*current/s);
  await page.getByLabel('Search').fill('nothing-matches-this');
  t.ok(await page.locator('#images tr').first().isHidden(), 'search filters the tables');
  await page.getByLabel('Search').fill('');
  await page.screenshot({ path: join(output, 'console-dashboard.png'), fullPage: true });
  const releases = JSON.parse((await daemon.cli(['releases', '--json'])).stdout) as { current: string };
  t.equal(releases.current, '1.0.0', 'the daemon agrees');
  const response = await page.reload();
  await page.locator('#app-view').waitFor({ state: 'visible' });
  t.match(response?.headers()['content-security-policy'], /script-src 'self'/, 'the console runs under its CSP');
  t.same(blocked, [], 'and the CSP blocked nothing the console does');
});

t.test('a cross-site POST from another origin is refused', async (t) => {
  const port = await freePort();
  const evil = createServer((_req, res) => {
    res.setHeader('content-type', 'text/html');
    res.end(`<form id="f" method="POST" action="${details.console.url}/api/v1/uploads" enctype="text/plain"><input name='{"name":"x.bin","size":1,"a":"' value='"}'></form><script>document.getElementById('f').submit()</script>`);
  });
  await new Promise<void>((resolve) => evil.listen(port, '127.0.0.1', resolve));
  t.teardown(() => evil.close());
  const other = await context.newPage();
  await other.goto(`http://127.0.0.1:${port}/`);
  await other.waitForURL(/\/api\/v1\/uploads$/);
  t.match(await other.locator('body').innerText(), /AG_CROSS_SITE/, 'refused for its origin, before any authentication');
});

t.test('compare two releases, download a backup, delete the older release (it says what it frees), run garbage collection', async (t) => {
  const imported = await daemon.cli(['import', bin2]);
  t.equal(imported.exitCode, 0, imported.stderr);
  await page.reload();
  await page.locator('#app-view').waitFor({ state: 'visible' });
  await page.getByLabel('From', { exact: true }).selectOption('1.0.0');
  await page.getByLabel('To', { exact: true }).selectOption('1.1.0');
  await page.getByRole('button', { name: 'Compare' }).click();
  await page.locator('#diff').getByText(/images: 1 added, 1 removed, 0 changed, 0 unchanged/).waitFor();
  t.match(await page.locator('#diff').innerText(), /files: 0 added, 0 removed, 0 changed, \d+ unchanged/);

  await page.getByLabel('Console password').fill('not-the-password');
  await page.getByRole('button', { name: 'Download a backup' }).click();
  await page.locator('#backup-result').getByText(/Backup failed: the console password is wrong/).waitFor();
  await page.getByLabel('Console password').fill(details.console.password);
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download a backup' }).click()]);
  t.match(download.suggestedFilename(), /^airgap-backup-\d{8}T\d{6}Z\.tar$/);
  const saved = join(work, 'console-backup.tar');
  await download.saveAs(saved);
  const head = await readFile(saved);
  t.equal(head.subarray(0, 11).toString(), 'backup.json', 'a backup: backup.json first');
  t.ok(head.includes(Buffer.from('manifest.json')), 'and its manifest');

  let asked = '';
  page.once('dialog', (dialog) => {
    asked = dialog.message();
    void dialog.accept();
  });
  await page.getByRole('button', { name: 'Delete release 1.0.0' }).click();
  await page.locator('#release-action').getByText(/Deleted 1\.0\.0: \d+ manifests; garbage collection gave back/).waitFor({ timeout: 60_000 });
  t.match(asked, /Delete release 1\.0\.0\? It frees about \d/, 'the confirmation says what it frees');
  const releases = JSON.parse((await daemon.cli(['releases', '--json'])).stdout) as { releases: Array<{ version: string }> };
  t.same(releases.releases.map((r) => r.version), ['1.1.0']);
  t.notOk(await page.getByRole('button', { name: 'Delete release 1.1.0' }).count(), 'the current release has no Delete button');

  await page.getByRole('button', { name: 'Run garbage collection' }).click();
  await page.locator('#gc-result').getByText(/Gave back .* in [\d.]+ s\./).waitFor({ timeout: 60_000 });
  const events = JSON.parse((await daemon.cli(['status', '--json'])).stdout) as { healthy: boolean };
  t.ok(events.healthy);
  t.same(blocked, [], 'the CSP blocked nothing');
});

