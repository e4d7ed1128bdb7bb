/**
 * The CLI kit every verb uses: strict argument parsing with `--help`, progress output, and
 * the dispatcher that turns a verb's typed errors into a message and an exit code.
 * Output: results on stdout (one JSON document with --json), progress and errors on
 * stderr. Exit codes: 0 ok, 1 failed (the message says why and what to do), 2 bad usage.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { AirgapError, UsageError } from './errors.js';
import { formatBytes, formatDuration, table } from './text.js';

export interface CliContext {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
  /** Whether stderr is a terminal (live progress) or a pipe/log (plain lines). */
  interactive: boolean;
  /** Aborted on SIGINT/SIGTERM: long commands stop and clean up. */
  signal?: AbortSignal;
}

export interface Command {
  name: string;
  summary: string;
  usage: string;
  run(args: string[], ctx: CliContext): Promise<number>;
}

/** parseArgs with the project's rules: strict, `--help` everywhere, errors as UsageError. */
export function parseCommandArgs<T extends NonNullable<ParseArgsConfig['options']>>(
  command: Command,
  args: string[],
  options: T,
  positionals: { min: number; max: number },
) {
  let parsed;
  try {
    parsed = parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  } catch (cause) {
    throw new UsageError(`${(cause as Error).message.replace(/\. To specify a positional.*$/s, '')}`, { hint: `see 'airgap ${command.name} --help'` });
  }
  const help = (parsed.values as Record<string, unknown>).help === true;
  if (!help && (parsed.positionals.length < positionals.min || parsed.positionals.length > positionals.max)) {
    throw new UsageError(
      parsed.positionals.length < positionals.min ? 'missing argument' : `unexpected argument '${parsed.positionals[positionals.max]}'`,
      { hint: `usage: ${command.usage.split('\n')[0]}` },
    );
  }
  return { values: parsed.values, positionals: parsed.positionals, help };
}

export function print(stream: NodeJS.WritableStream, text: string): void {
  stream.write(text.endsWith('\n') ? text : `${text}\n`);
}

const BAR_WIDTH = 24;

/** A progress reporter: one live bar on a terminal, plain lines every 10% elsewhere. */
export function progressReporter(ctx: CliContext, quiet: boolean) {
  const started = Date.now();
  let lastPlain = -1;
  let live = false;
  return {
    line(text: string) {
      if (quiet) return;
      if (live) ctx.stderr.write('\r\x1b[K');
      live = false;
      print(ctx.stderr, text);
    },
    bytes(label: string, done: number, total: number) {
      if (quiet || total === 0) return;
      const pct = Math.floor((done / total) * 100);
      const seconds = (Date.now() - started) / 1000;
      const rate = seconds > 0 ? done / seconds : 0;
      const eta = rate > 0 ? (total - done) / rate : 0;
      const text = `${label} ${String(pct).padStart(3)}%  ${formatBytes(done)} / ${formatBytes(total)}  ${formatBytes(rate)}/s${done < total ? `  ETA ${formatDuration(eta)}` : ''}`;
      if (ctx.interactive) {
        const filled = Math.round((done / total) * BAR_WIDTH);
        ctx.stderr.write(`\r\x1b[K[${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}] ${text}`);
        live = true;
      } else if (pct >= lastPlain + 10 || (done === total && lastPlain < 100)) {
        lastPlain = done === total ? 100 : pct - (pct % 10);
        print(ctx.stderr, text);
      }
    },
    end() {
      if (live) ctx.stderr.write('\n');
      live = false;
    },
  };
}

function mainUsage(commands: Command[]): string {
  return `airgap: move container images, Helm charts, packs and files into an air-gapped site

Usage: airgap <command> [options]

Commands:
${table(commands.map((c) => [c.name, c.summary]))}

Run 'airgap <command> --help' for a command's options.`;
}

/**
 * Runs one CLI invocation. Returns the exit code: 0 ok, 1 failure (typed errors print
 * `airgap: error: <message>` with their code and a hint), 2 usage error.
 */
export async function runCli(argv: string[], commands: Command[], ctx: CliContext, version: string): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    print(name === undefined ? ctx.stderr : ctx.stdout, mainUsage(commands));
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === 'version') {
    print(ctx.stdout, version);
    return 0;
  }
  const command = commands.find((c) => c.name === name);
  try {
    if (!command) throw new UsageError(`unknown command '${name}'`, { hint: `commands: ${commands.map((c) => c.name).join(', ')}` });
    return await command.run(rest, ctx);
  } catch (err) {
    if (ctx.signal?.aborted) {
      print(ctx.stderr, '\nairgap: interrupted; nothing was left half-written');
      return 130;
    }
    if (err instanceof AirgapError) {
      print(ctx.stderr, `airgap: error: ${err.message} [${err.code}]${err.hint ? `\n  hint: ${err.hint}` : ''}`);
      return err instanceof UsageError ? 2 : 1;
    }
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOSPC') print(ctx.stderr, `airgap: error: the disk is full (${e.path ?? e.message})\n  hint: free some space and run the command again`);
    else if (e.code === 'EACCES' || e.code === 'EPERM') print(ctx.stderr, `airgap: error: permission denied: ${e.path ?? e.message}`);
    else print(ctx.stderr, `airgap: internal error: ${e.stack ?? e.message}`);
    return 1;
  }
}
