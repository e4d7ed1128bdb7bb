/**
 * GET /metrics against the real daemon: Debian's `promtool check metrics` passes on it,
 * the values follow what happened (an import, a re-import, a refused file, a wrong console
 * password), it needs the console account, and a real Prometheus (Debian's, started by
 * the test on 127.0.0.1 with a scrape config using the CA and the console account)
 * scrapes it and answers a query for the import counter.
 */
import t from 'tap';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { stringify } from 'yaml';
import { buildBundle } from '../../src/build/builder.js';
import { generateSigningKeys } from '../../src/format/keys.js';
import { writeSyntheticLayout } from '../helpers/fixtures.js';
import { startDaemon, waitFor } from '../helpers/appliance.js';
import { freePort } from '../helpers/registry.js';
import { tempDir } from '../helpers/temp.js';

const work = await tempDir(t, 'airgap-metrics-');
const keys = await generateSigningKeys(join(work, 'keys'));
await writeSyntheticLayout(join(work, 'images'), [{ ref: 'app', layers: [Buffer.alloc(100_000, 7)] }]);
await writeFile(join(work, 'bundle.yaml'), stringify({ apiVersion: 'airgap/v1', kind: 'Bundle', name: 'm', version: '1.0.0', images: [{ source: 'oci:./images:app', target: 'apps/app:1' }] }));
const bin = (await buildBundle({ specPath: join(work, 'bundle.yaml'), out: work, privateKeyPath: keys.privateKeyPath })).path;
await mkdir(join(work, 'unsigned'));
const unsigned = (await buildBundle({ specPath: join(work, 'bundle.yaml'), out: join(work, 'unsigned') })).path;

const daemon = await startDaemon(t);
await copyFile(keys.publicKeyPath, join(daemon.stateDir, 'trusted-keys', 'build.pub'));
const details = JSON.parse((await daemon.cli(['setup', '127.0.0.1', '--json'])).stdout) as { console: { url: string; username: string; password: string }; caCertificateBase64: string };
const caFile = join(work, 'ca.crt');
await writeFile(caFile, Buffer.from(details.caCertificateBase64, 'base64'));
const url = `${details.console.url}/metrics`;
const account = `${details.console.username}:${details.console.password}`;

/** Runs `airgap <args>` against the daemon and checks its exit code (before any subtest: no assertion at the top level). */
async function run(args: string[], exitCode: number): Promise<void> {
  const r = await daemon.cli(args);
  if (r.exitCode !== exitCode) throw new Error(`airgap ${args.join(' ')} ended with ${r.exitCode}, not ${exitCode}: ${r.stderr}`);
}
await run(['import', bin], 0);
await run(['import', bin], 0); // a re-import: unchanged
await run(['import', unsigned], 1); // refused: unsigned
const login = await execa('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', caFile, '-H', 'content-type: application/json', '-d', JSON.stringify({ username: details.console.username, password: 'wrong' }), `${details.console.url}/api/v1/session`], { reject: false });
if (login.stdout !== '401') throw new Error(`a wrong console password: ${login.stdout} ${login.stderr}`);

/** The value of the sample `name{labels}` in `text`. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

t.test('promtool check metrics passes, and the values follow what happened', async (t) => {
  const denied = await execa('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', caFile, url]);
  t.equal(denied.stdout, '401', 'the console account is needed');
  const wrong = await execa('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', caFile, '-u', `${details.console.username}:nope`, url]);
  t.equal(wrong.stdout, '401');
  const r = await execa('curl', ['-sf', '-D', join(work, 'headers'), '--cacert', caFile, '-u', account, url]);
  const text = r.stdout + '\n';
  const check = await execa('promtool', ['check', 'metrics'], { input: text, reject: false });
  t.equal(check.exitCode, 0, `promtool: ${check.stdout}${check.stderr}`);
  t.equal(sample(text, 'airgap_imports_total{outcome="imported"}'), 1);
  t.equal(sample(text, 'airgap_imports_total{outcome="unchanged"}'), 1);
  t.equal(sample(text, 'airgap_imports_total{outcome="failed"}'), 1);
  t.equal(sample(text, 'airgap_import_duration_seconds_count'), 3);
  t.equal(sample(text, 'airgap_import_pushed_bytes_count'), 2, 'bytes pushed: the successful imports');
  t.ok(sample(text, 'airgap_import_pushed_bytes_sum')! >= 100_000, 'the layer was pushed once');
  t.ok(sample(text, 'airgap_import_blobs_total{action="pushed"}')! >= 2, 'layer and config');
  t.equal(sample(text, 'airgap_import_blobs_total{action="skipped"}'), 0, 'an unchanged re-import does not even look at the blobs');
  t.equal(sample(text, 'airgap_registry_up{registry="images"}'), 1);
  t.equal(sample(text, 'airgap_registry_up{registry="packs"}'), 1);
  t.ok(sample(text, 'airgap_registry_volume_free_bytes')! > 0);
  t.ok(sample(text, 'airgap_certificate_expiry_seconds{source="appliance"}')! > 800 * 86_400, 'the appliance certificate: 825 days');
  t.ok(sample(text, 'airgap_console_login_failures_total')! >= 1, 'the wrong console password');
  t.equal(sample(text, 'airgap_import_queue_length'), 0);
  t.match(text, /^airgap_info\{version="[^"]+"\} 1$/m);
});

t.test('a real Prometheus scrapes it with the CA and the console account, and answers a query for the import counter', async (t) => {
  const port = await freePort();
  const httpsPort = new URL(details.console.url).port;
  const config = join(work, 'prometheus.yml');
  await writeFile(config, stringify({
    global: { scrape_interval: '1s', scrape_timeout: '1s' },
    scrape_configs: [{
      job_name: 'airgap',
      scheme: 'https',
      metrics_path: '/metrics',
      tls_config: { ca_file: caFile },
      basic_auth: { username: details.console.username, password: details.console.password },
      static_configs: [{ targets: [`127.0.0.1:${httpsPort}`] }],
    }],
  }));
  const check = await execa('promtool', ['check', 'config', config], { reject: false });
  t.equal(check.exitCode, 0, check.stdout + check.stderr);
  const prometheus: ResultPromise = execa('prometheus', [`--config.file=${config}`, `--storage.tsdb.path=${join(work, 'tsdb')}`, `--web.listen-address=127.0.0.1:${port}`], { reject: false, all: true });
  let log = '';
  prometheus.all?.on('data', (c: Buffer) => (log += c.toString()));
  t.teardown(async () => {
    prometheus.kill('SIGTERM');
    await prometheus;
  });
  const query = async (q: string) => {
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(q)}`).catch(() => undefined);
    if (!res?.ok) return undefined;
    return (await res.json()) as { data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
  };
  let answer: Awaited<ReturnType<typeof query>>;
  await waitFor(async () => prometheus.exitCode !== null || ((answer = await query('airgap_imports_total{outcome="imported"}')) !== undefined && answer.data.result.length > 0), 60);
  t.equal(prometheus.exitCode, null, `prometheus runs: ${log.slice(-1000)}`);
  t.equal(answer!.data.result[0]!.value[1], '1', 'the import counter, scraped');
  t.equal(answer!.data.result[0]!.metric.job, 'airgap');
  const up = await query('up{job="airgap"}');
  t.equal(up!.data.result[0]!.value[1], '1', 'the scrape succeeds (TLS with the CA, basic auth)');
});
