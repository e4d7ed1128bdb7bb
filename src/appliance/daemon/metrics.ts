/**
 * `GET /metrics` (issue 17): the appliance in the Prometheus text exposition format 0.0.4
 * (prometheus.io/docs/instrumenting/exposition_formats), read at scrape time. Counters
 * come from the database, so they survive restarts (registry restarts excepted: the
 * supervisor counts those since the daemon started). Names follow Prometheus'
 * conventions: the `airgap_` prefix, base units (seconds, bytes), `_total` on counters.
 *
 * Written here rather than with a client library's in-memory registry because nearly every
 * value is read from SQLite (the source of truth across restarts), not observed in-process.
 */
import type { Db } from '../store/db.js';
import type { RegistryHealth } from '../registries/fleet.js';
import type { ServerCertificateInfo } from '../security/pki.js';

/** What the metrics are read from, besides the database. */
export interface MetricsSources {
  db: Db;
  version: string;
  registries: RegistryHealth[];
  disk: { totalBytes: number; freeBytes: number; usedBytes: number };
  certificate: ServerCertificateInfo;
}

/** Buckets of the import duration histogram, seconds. */
export const DURATION_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200];
/** Buckets of the bytes-pushed histogram, bytes (1 MB to 100 GB). */
export const BYTES_BUCKETS = [1e6, 1e7, 1e8, 1e9, 1e10, 1e11];

/** A label value as the text format escapes it: backslash, double quote, line feed. */
function labelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** A sample value: integers as they are, floats without exponent noise, and the special values. */
function sampleValue(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  return String(n);
}

class Exposition {
  private readonly lines: string[] = [];

  family(name: string, type: 'counter' | 'gauge' | 'histogram', help: string): this {
    this.lines.push(`# HELP ${name} ${help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${name} ${type}`);
    return this;
  }

  sample(name: string, value: number, labels: Record<string, string> = {}): this {
    const pairs = Object.entries(labels).map(([k, v]) => `${k}="${labelValue(v)}"`);
    this.lines.push(`${name}${pairs.length ? `{${pairs.join(',')}}` : ''} ${sampleValue(value)}`);
    return this;
  }

  histogram(name: string, help: string, buckets: number[], values: number[]): this {
    this.family(name, 'histogram', help);
    for (const le of buckets) this.sample(`${name}_bucket`, values.filter((v) => v <= le).length, { le: sampleValue(le) });
    this.sample(`${name}_bucket`, values.length, { le: '+Inf' });
    this.sample(`${name}_sum`, values.reduce((a, b) => a + b, 0));
    return this.sample(`${name}_count`, values.length);
  }

  text(): string {
    return `${this.lines.join('\n')}\n`;
  }
}

/** The outcome label of a finished import. */
function outcomeOf(state: string, errorCode: string | null): string {
  if (state === 'failed') return errorCode === 'AG_IMPORT_CANCELLED' ? 'cancelled' : 'failed';
  return state;
}

/** The metrics document. Throws the database's errors. */
export function renderMetrics(s: MetricsSources): string {
  const out = new Exposition();
  out.family('airgap_info', 'gauge', 'The airgap release the daemon runs (always 1).').sample('airgap_info', 1, { version: s.version });

  const rows = s.db.prepare("SELECT state, error_code AS errorCode, started_at AS startedAt, finished_at AS finishedAt, result FROM imports WHERE state NOT IN ('queued', 'running')").all() as Array<{
    state: string;
    errorCode: string | null;
    startedAt: string | null;
    finishedAt: string | null;
    result: string | null;
  }>;
  const outcomes = new Map<string, number>([['imported', 0], ['unchanged', 0], ['failed', 0], ['cancelled', 0]]);
  const durations: number[] = [];
  const pushed: number[] = [];
  const blobs = { pushed: 0, skipped: 0, mounted: 0 };
  for (const r of rows) {
    const outcome = outcomeOf(r.state, r.errorCode);
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    if (r.startedAt && r.finishedAt) durations.push(Math.max(0, (Date.parse(r.finishedAt) - Date.parse(r.startedAt)) / 1000));
    if (r.result && (r.state === 'imported' || r.state === 'unchanged')) {
      const result = JSON.parse(r.result) as { bytesPushed?: number; blobsPushed?: number; blobsSkipped?: number; blobsMounted?: number };
      pushed.push(result.bytesPushed ?? 0);
      blobs.pushed += result.blobsPushed ?? 0;
      blobs.skipped += result.blobsSkipped ?? 0;
      blobs.mounted += result.blobsMounted ?? 0;
    }
  }
  out.family('airgap_imports_total', 'counter', 'Imports that ended, by outcome (imported, unchanged, failed, cancelled).');
  for (const [outcome, n] of outcomes) out.sample('airgap_imports_total', n, { outcome });
  out.histogram('airgap_import_duration_seconds', 'How long each import that ended took, from its start to its end.', DURATION_BUCKETS, durations);
  out.histogram('airgap_import_pushed_bytes', 'Bytes each successful import pushed to the registries.', BYTES_BUCKETS, pushed);
  out.family('airgap_import_blobs_total', 'counter', 'Blobs of successful imports, by what was done: pushed, skipped (already there), mounted (from another repository).');
  for (const [action, n] of Object.entries(blobs)) out.sample('airgap_import_blobs_total', n, { action });
  const queued = (s.db.prepare("SELECT COUNT(*) AS n FROM imports WHERE state = 'queued'").get() as { n: number }).n;
  const running = (s.db.prepare("SELECT COUNT(*) AS n FROM imports WHERE state = 'running'").get() as { n: number }).n;
  out.family('airgap_import_queue_length', 'gauge', 'Imports waiting for their turn.').sample('airgap_import_queue_length', queued);
  out.family('airgap_imports_running', 'gauge', 'Imports running now (0 or 1).').sample('airgap_imports_running', running);
  const releases = (s.db.prepare('SELECT COUNT(*) AS n FROM releases').get() as { n: number }).n;
  out.family('airgap_releases', 'gauge', 'Releases on the box.').sample('airgap_releases', releases);

  out.family('airgap_registry_up', 'gauge', 'Whether each bundled registry answers its health check (1) or not (0).');
  for (const r of s.registries) out.sample('airgap_registry_up', r.healthy ? 1 : 0, { registry: r.name });
  out.family('airgap_registry_restarts_total', 'counter', 'Restarts of each bundled registry by the supervisor since the daemon started.');
  for (const r of s.registries) out.sample('airgap_registry_restarts_total', r.restarts, { registry: r.name });

  out.family('airgap_registry_volume_size_bytes', 'gauge', 'Size of the volume of the registries\' storage.').sample('airgap_registry_volume_size_bytes', s.disk.totalBytes);
  out.family('airgap_registry_volume_free_bytes', 'gauge', 'Bytes free for the daemon on the volume of the registries\' storage.').sample('airgap_registry_volume_free_bytes', s.disk.freeBytes);
  out.family('airgap_registry_volume_used_bytes', 'gauge', 'Bytes used on the volume of the registries\' storage.').sample('airgap_registry_volume_used_bytes', s.disk.usedBytes);

  const notAfter = Date.parse(s.certificate.notAfter) / 1000;
  out.family('airgap_certificate_expiry_timestamp_seconds', 'gauge', 'When the server certificate expires, seconds since 1970 (source: appliance or site).').sample('airgap_certificate_expiry_timestamp_seconds', notAfter, { source: s.certificate.source });
  out.family('airgap_certificate_expiry_seconds', 'gauge', 'Seconds left until the server certificate expires (negative once expired).').sample('airgap_certificate_expiry_seconds', Math.round(notAfter - Date.now() / 1000), { source: s.certificate.source });

  const failedLogins = (s.db.prepare("SELECT COUNT(*) AS n FROM events WHERE kind = 'console.login_failed'").get() as { n: number }).n;
  out.family('airgap_console_login_failures_total', 'counter', 'Console logins refused (wrong username or password).').sample('airgap_console_login_failures_total', failedLogins);
  const reclaimed = s.db.prepare("SELECT COALESCE(SUM(json_extract(data, '$.bytesReclaimed')), 0) AS bytes, COUNT(*) AS n FROM events WHERE kind = 'gc.finished'").get() as { bytes: number; n: number };
  out.family('airgap_gc_runs_total', 'counter', 'Garbage collections that finished.').sample('airgap_gc_runs_total', reclaimed.n);
  out.family('airgap_gc_reclaimed_bytes_total', 'counter', 'Bytes garbage collection gave back.').sample('airgap_gc_reclaimed_bytes_total', reclaimed.bytes);
  return out.text();
}
