/**
 * The audit trail to the system journal (issue 17): each event as one JSON line with the
 * syslog identifier `airgap`, through util-linux's `logger` reading its standard input
 * (one long-lived process; RFC 3164 over the syslog socket, which journald listens on as
 * /dev/log and records with SYSLOG_IDENTIFIER=airgap). Facility authpriv for logins and
 * reveals of passwords, daemon otherwise; failures at warning, the rest at notice.
 *
 * Best effort, never in the way: no socket (a container without journald or syslog) or
 * no `logger` means no sink, said once in the daemon log; a sink that dies is started
 * again at the next event at most once a minute.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { stat } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { ApplianceEvent } from '../store/events.js';

const SECURITY = /^(console\.|backup\.|setup\.)/;

export class JournalSink {
  private warned = false;
  private readonly children = new Map<string, ChildProcess>();
  private readonly startedAt = new Map<string, number>();

  constructor(private readonly socket: string, private readonly log: Logger) {}

  /** Sends `event` to the journal; never throws. */
  write(event: ApplianceEvent): void {
    // One record per event: the message is cut to 4 KiB, and logger takes records up to 64 KiB.
    const line = `${JSON.stringify({ id: event.id, at: event.at, actor: event.actor, kind: event.kind, origin: event.origin, outcome: event.outcome, message: event.message.slice(0, 4096) })}\n`;
    const priority = `${SECURITY.test(event.kind) ? 'authpriv' : 'daemon'}.${event.outcome === 'failure' ? 'warning' : 'notice'}`;
    // logger takes the priority per process: one per priority, started when first needed.
    const child = this.process(priority);
    // A journal that does not read is not waited for: past 1 MiB queued, events go to the database only.
    if (child?.stdin?.writable && child.stdin.writableLength < 1024 * 1024) child.stdin.write(line);
  }

  private process(priority: string): ChildProcess | undefined {
    const running = this.children.get(priority);
    if (running && running.exitCode === null && !running.killed) return running;
    // A logger that died is started again at most once a minute.
    if (running && Date.now() - (this.startedAt.get(priority) ?? 0) < 60_000) return undefined;
    this.startedAt.set(priority, Date.now());
    const child = spawn('logger', ['--tag', 'airgap', '--priority', priority, '--socket', this.socket, '--socket-errors=on', '--size', '65536'], { stdio: ['pipe', 'ignore', 'pipe'] });
    child.on('error', (err) => this.once(`the journal sink could not start logger: ${err.message}`));
    child.stdin?.on('error', () => {});
    child.stderr?.on('data', (chunk: Buffer) => this.once(`logger: ${chunk.toString().trim()}`));
    this.children.set(priority, child);
    return child;
  }

  private once(message: string): void {
    if (this.warned) return;
    this.warned = true;
    this.log.warn(message);
  }

  /** Stops the logger processes (what they read is sent first). */
  async close(): Promise<void> {
    await Promise.all([...this.children.values()].map((c) => new Promise<void>((resolve) => {
      if (c.exitCode !== null) return resolve();
      c.once('exit', () => resolve());
      c.stdin?.end();
      setTimeout(() => (c.kill(), resolve()), 2000).unref();
    })));
    this.children.clear();
  }
}

/** A journal sink for `socket`, or undefined (said in the log) when there is no such socket. */
export async function openJournal(socket: string, log: Logger): Promise<JournalSink | undefined> {
  const s = await stat(socket).catch(() => undefined);
  if (!s?.isSocket()) {
    log.info({ socket }, 'no syslog socket: events are not sent to the system journal');
    return undefined;
  }
  return new JournalSink(socket, log);
}
