/**
 * `airgap events [--since TIME] [--follow] [--json]`: the audit trail (docs/cli.md,
 * "airgap events"): who did what, from where, how it ended, and when.
 */
import { defineCommand, EXIT, print, type CliContext } from '../../kit/cli.js';
import { UsageError } from '../../kit/errors.js';
import { printable } from '../../kit/text.js';
import type { ApplianceEvent } from '../store/events.js';
import { callAdmin, streamAdmin } from './admin-client.js';
import { jsonOption, stateDirEnvironment, stateDirOption } from './options.js';

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `--since`: an ISO 8601 time (a date alone is midnight UTC), or a duration back from `now` (`90s`, `15m`, `2h`, `7d`). Throws UsageError. */
export function parseSince(text: string, now = new Date()): Date {
  const relative = /^(\d+)([smhd])$/.exec(text.trim());
  if (relative) return new Date(now.getTime() - Number(relative[1]) * UNITS[relative[2]!]!);
  const at = /^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(text.trim()) ? Date.parse(text.trim()) : NaN;
  if (Number.isNaN(at)) throw new UsageError(`--since takes a time (2026-12-01, 2026-12-01T08:00:00Z) or a duration back from now (15m, 2h, 7d), not '${text}'`);
  return new Date(at);
}

/** One event as a line for people: time, outcome, who, from where, what, message. */
function line(e: ApplianceEvent): string {
  return printable(`${e.at.replace('T', ' ').slice(0, 19)}  ${e.outcome === 'failure' ? 'FAILED ' : 'ok     '} ${e.actor}  ${e.origin}  ${e.kind}  ${e.message}`);
}

/** The events verb; `stateDirOf` resolves --state-dir. */
export function eventsCommand(stateDirOf: (flag: string | undefined, ctx: CliContext) => string) {
  return defineCommand({
    name: 'events',
    summary: 'the audit trail: who did what, from where, how it ended (--follow to watch)',
    usage: 'airgap events [--since TIME] [--follow] [--json] [--state-dir DIR]',
    description: `Prints the appliance's events, oldest first: logins and refused logins, reveals of
passwords, imports, deletes and garbage collections, backups, setup changes, registry
restarts. Each has its time, who (a console user, cli, daemon, inbox, retention), from
where (the client's address, admin-socket, local), its kind, its outcome (success or
failure) and a message. Without --since: the last 50. --since TIME: every event from
TIME on (2026-12-01, 2026-12-01T08:00:00Z, or 15m, 2h, 7d back from now). --follow
then keeps printing each new event as it is recorded, until Ctrl-C. --json prints JSON
lines, one event per line. The same events go to the system journal with the syslog
identifier airgap (journalctl -t airgap).`,
    args: { min: 0, max: 0 },
    options: {
      since: { type: 'string', value: 'TIME', description: 'events from this time on (ISO 8601, or 15m, 2h, 7d ago)' },
      follow: { type: 'boolean', description: 'keep printing new events as they are recorded' },
      ...jsonOption('print JSON lines, one event per line'),
      ...stateDirOption(),
    },
    environment: stateDirEnvironment,
    async run({ values }, ctx) {
      const stateDir = stateDirOf(values['state-dir'], ctx);
      const show = (e: ApplianceEvent) => print(ctx.stdout, values.json ? JSON.stringify(e) : line(e));
      let lastId = 0;
      if (values.since !== undefined) {
        const since = parseSince(values.since).toISOString();
        for (;;) {
          const { events } = await callAdmin<{ events: ApplianceEvent[] }>(stateDir, 'GET', `/v1/events?limit=1000&since=${encodeURIComponent(since)}&afterId=${lastId}`);
          for (const e of events) show(e);
          if (events.length) lastId = events.at(-1)!.id;
          if (events.length < 1000) break;
        }
        // Nothing since then: follow from the newest one, not from the beginning.
        if (!lastId && values.follow) lastId = (await callAdmin<{ events: ApplianceEvent[] }>(stateDir, 'GET', '/v1/events?limit=1')).events[0]?.id ?? 0;
      } else {
        const { events } = await callAdmin<{ events: ApplianceEvent[] }>(stateDir, 'GET', '/v1/events?limit=50');
        for (const e of events.reverse()) show(e);
        lastId = events.at(-1)?.id ?? 0;
      }
      if (!values.follow) return EXIT.ok;
      try {
        await streamAdmin(stateDir, `/v1/events/follow?afterId=${lastId}`, (value) => show(value as ApplianceEvent), ctx.signal);
      } catch (err) {
        if (ctx.signal?.aborted) return EXIT.ok;
        throw err;
      }
      return EXIT.ok;
    },
  });
}
