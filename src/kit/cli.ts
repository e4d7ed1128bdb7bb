/**
 * The CLI kit every verb uses: a verb declares its options once, in a table that both the
 * parser and `--help` read (so the two cannot disagree); progress output; and the
 * dispatcher that parses, answers `--help`, and turns a verb's typed errors into a message
 * and an exit code ({@link EXIT}).
 * Output: results on stdout (one JSON document with --json), progress and errors on stderr.
 */
import { removePendingNow } from './exit-cleanup.js';
import { parseArgs } from 'node:util';
import { AirgapError, UsageError } from './errors.js';
import { formatBytes, formatDuration, printable, table, wrap } from './text.js';

export interface CliContext {
  /** Standard input, for a secret piped in (`--password-stdin`). */
  stdin?: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
  /** Whether stderr is a terminal (live progress) or a pipe/log (plain lines). */
  interactive: boolean;
  /** Aborted on SIGINT/SIGTERM: long commands stop and clean up. */
  signal?: AbortSignal;
}

/** The exit codes of every verb; `airgap --help` lists them with {@link EXIT_MEANINGS}. */
export const EXIT = { ok: 0, failed: 1, usage: 2, interrupted: 130 } as const;

export const EXIT_MEANINGS: Record<keyof typeof EXIT, string> = {
  ok: 'ok',
  failed: 'failed; the message says why and what to do',
  usage: 'bad usage: an unknown flag, a missing argument or a bad value',
  interrupted: 'interrupted (Ctrl-C or SIGTERM); nothing was left half-written',
};

interface OptionBase {
  /** One-letter alias (`-o`). */
  short?: string;
  /** May be given several times; the values come as an array. */
  multiple?: boolean;
  /** One line for `--help`: what the flag does. */
  description: string;
  /** The environment variable that stands in when the flag is not given. */
  env?: string;
  /** What applies when neither the flag nor `env` is given, as help text (the verb applies it). */
  default?: string;
}

/**
 * One flag: what `node:util` parseArgs needs (type, short, multiple) and what `--help`
 * shows. A string flag names its value (`FILE`, `DIR`, `N`).
 */
export type OptionSpec = (OptionBase & { type: 'boolean' }) | (OptionBase & { type: 'string'; value: string });

/** A verb's flags by long name, without `--`; `--help` is added by the kit. */
export type OptionTable = Record<string, OptionSpec>;

/** The parsed value of each flag; absent when not given. */
export type OptionValues<O extends OptionTable> = {
  -readonly [K in keyof O]?: (O[K]['type'] extends 'string' ? string : boolean) extends infer V ? (O[K]['multiple'] extends true ? V[] : V) : never;
};

export interface ParsedArgs<O extends OptionTable = OptionTable> {
  values: OptionValues<O>;
  positionals: string[];
}

/** An environment variable a verb reads that is not the stand-in of one of its flags. */
export interface EnvSpec {
  name: string;
  description: string;
  default?: string;
}

export interface Command<O extends OptionTable = OptionTable> {
  name: string;
  /** One line for the command list of `airgap --help`. */
  summary: string;
  /** The synopsis: the first line(s) of `--help`, and of the hint after a wrong argument count. */
  usage: string;
  /** Paragraphs between the synopsis and the options, as they are to be printed. */
  description: string;
  /** How many positional arguments the verb takes. */
  args: { min: number; max: number };
  options: O;
  environment?: EnvSpec[];
  /** The verb's own exit codes, when it says more than {@link EXIT_MEANINGS}. */
  exitCodes?: Array<[number, string]>;
  /** Runs the verb on parsed arguments (never called for `--help`); returns the exit code. */
  run(parsed: ParsedArgs<O>, ctx: CliContext): Promise<number>;
}

/** Identity that lets TypeScript type `run`'s values from the option table. */
export function defineCommand<const O extends OptionTable>(command: Command<O>): Command<O> {
  return command;
}

const HELP_OPTION: OptionSpec = { type: 'boolean', short: 'h', description: 'this help' };

/** Every flag `command` accepts, `--help` included: its table plus the kit's own. */
export function commandOptions(command: Command): OptionTable {
  if ('help' in command.options) throw new Error(`${command.name}: --help is the kit's`);
  return { ...command.options, help: HELP_OPTION };
}

/** The parseArgs option config derived from `command`'s table (display fields dropped). */
export function parserOptions(command: Command) {
  return Object.fromEntries(
    Object.entries(commandOptions(command)).map(([name, o]) => [name, { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}) }]),
  );
}

/**
 * Parses `args` against `command`'s option table with the project's rules: strict,
 * `-h`/`--help` everywhere, positional count checked unless help was asked.
 * Throws UsageError (exit 2) for an unknown flag, a missing value or a wrong count.
 */
export function parseCommandArgs<O extends OptionTable>(command: Command<O>, args: string[]): ParsedArgs<O> & { help: boolean } {
  let parsed;
  try {
    parsed = parseArgs({ args, options: parserOptions(command), allowPositionals: true, strict: true });
  } catch (cause) {
    throw new UsageError(`${(cause as Error).message.replace(/\. To specify a positional.*$/s, '')}`, { hint: `see 'airgap ${command.name} --help'` });
  }
  const { help, ...values } = parsed.values as Record<string, unknown>;
  const { min, max } = command.args;
  if (help !== true && (parsed.positionals.length < min || parsed.positionals.length > max)) {
    throw new UsageError(
      parsed.positionals.length < min ? 'missing argument' : `unexpected argument '${parsed.positionals[max]}'`,
      { hint: `usage: ${command.usage.split('\n')[0]}` },
    );
  }
  return { values: values as OptionValues<O>, positionals: parsed.positionals, help: help === true };
}

const HELP_WIDTH = 80;
const MAX_LABEL = 28;

/** Two columns: labels padded to the widest (at most MAX_LABEL), texts wrapped to fit 80. */
function helpTable(rows: Array<[string, string]>): string {
  const labelWidth = Math.min(MAX_LABEL, Math.max(...rows.map(([label]) => label.length)));
  const indent = ' '.repeat(2 + labelWidth + 3);
  return rows
    .map(([label, text]) => {
      const body = wrap(text, HELP_WIDTH - indent.length, indent);
      return label.length > labelWidth ? `  ${label}\n${indent}${body}` : `  ${label.padEnd(labelWidth)}   ${body}`;
    })
    .join('\n');
}

function optionLabel(name: string, o: OptionSpec): string {
  return `${o.short ? `-${o.short}, ` : '    '}--${name}${o.type === 'string' ? ` ${o.value}` : ''}`;
}

function optionText(o: OptionSpec): string {
  const notes = [o.multiple ? 'repeatable' : '', o.default !== undefined ? `default: ${o.default}` : '', o.env ? `env: ${o.env}` : ''].filter(Boolean);
  return notes.length ? `${o.description} (${notes.join('; ')})` : o.description;
}

/** The environment variables `command` reads: its flags' stand-ins, then its own. */
export function commandEnvironment(command: Command): EnvSpec[] {
  const fromFlags = Object.entries(command.options).flatMap(([name, o]) => (o.env ? [{ name: o.env, description: `as --${name} (the flag wins): ${o.description}` }] : []));
  return [...fromFlags, ...(command.environment ?? [])];
}

function envText(e: EnvSpec): string {
  return e.default !== undefined ? `${e.description} (default: ${e.default})` : e.description;
}

/**
 * The `--help` text of `command`, made from the same table the parser reads: the synopsis,
 * the description, every flag (alias, value name, repeatable, default, env var), the
 * environment variables it reads, and its own exit codes if it declares them.
 */
export function renderHelp(command: Command): string {
  const sections = [command.usage, command.description, `Options:\n${helpTable(Object.entries(commandOptions(command)).map(([name, o]) => [optionLabel(name, o), optionText(o)]))}`];
  const env = commandEnvironment(command);
  if (env.length) sections.push(`Environment:\n${helpTable(env.map((e) => [e.name, envText(e)]))}`);
  if (command.exitCodes?.length) sections.push(`Exit codes:\n${helpTable(command.exitCodes.map(([code, text]) => [String(code), text]))}`);
  return sections.filter(Boolean).join('\n\n');
}

/** Writes `text` to `stream`, ending in exactly one newline it did not already have. */
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

/**
 * `airgap --help`: the commands, the environment variables any of them reads (gathered from
 * their tables, with the verbs that read each) and the exit codes.
 */
export function renderMainHelp(commands: Command[]): string {
  const env = new Map<string, { spec: EnvSpec; verbs: string[] }>();
  for (const command of commands) {
    for (const spec of commandEnvironment(command)) {
      const seen = env.get(spec.name) ?? { spec, verbs: [] };
      seen.verbs.push(command.name);
      env.set(spec.name, seen);
    }
  }
  return `airgap: move container images, Helm charts, packs and files into an air-gapped site

Usage: airgap <command> [options]

Commands:
${table(commands.map((c) => [c.name, c.summary]))}

Run 'airgap <command> --help' for a command's options.

Environment:
${helpTable([...env.values()].map(({ spec, verbs }) => [spec.name, `${envText(spec)} [${verbs.join(', ')}]`]))}

Exit codes:
${helpTable(Object.entries(EXIT).map(([key, code]) => [String(code), EXIT_MEANINGS[key as keyof typeof EXIT]]))}`;
}

/**
 * The two lines an error gets on stderr: `airgap: error: <message> [AG_CODE]`, then the
 * hint. Messages name files, entries and targets from a .bin or a registry: shown printable.
 */
export function errorText(err: { code: string; message: string; hint?: string | undefined }): string {
  return `airgap: error: ${printable(err.message)} [${err.code}]${err.hint ? `\n  hint: ${printable(err.hint)}` : ''}`;
}

/**
 * Runs one CLI invocation: parses the verb's arguments against its table, prints its help
 * for `-h`/`--help`, else runs it. Returns an {@link EXIT} code: 0 ok, 1 failure (typed
 * errors print `airgap: error: <message>` with their code and a hint), 2 usage error,
 * 130 interrupted.
 */
export async function runCli(argv: string[], commands: Command[], ctx: CliContext, version: string): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    print(name === undefined ? ctx.stderr : ctx.stdout, renderMainHelp(commands));
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  if (name === '--version' || name === 'version') {
    print(ctx.stdout, version);
    return EXIT.ok;
  }
  const command = commands.find((c) => c.name === name);
  try {
    if (!command) throw new UsageError(`unknown command '${name}'`, { hint: `commands: ${commands.map((c) => c.name).join(', ')}` });
    const { help, ...parsed } = parseCommandArgs(command, rest);
    if (help) return (print(ctx.stdout, renderHelp(command)), EXIT.ok);
    return await command.run(parsed, ctx);
  } catch (err) {
    if (ctx.signal?.aborted) {
      print(ctx.stderr, '\nairgap: interrupted; nothing was left half-written');
      return EXIT.interrupted;
    }
    // Messages name files, entries and targets from a .bin or the daemon: shown printable,
    // a crafted name cannot act on the terminal or print a line of its own.
    if (err instanceof AirgapError) {
      print(ctx.stderr, errorText(err));
      return err instanceof UsageError ? EXIT.usage : EXIT.failed;
    }
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOSPC' || e.code === 'SQLITE_FULL') print(ctx.stderr, `airgap: error: the disk is full (${printable(e.path ?? e.message)})\n  hint: free some space and run the command again`);
    else if (e.code === 'EACCES' || e.code === 'EPERM') print(ctx.stderr, `airgap: error: permission denied: ${printable(e.path ?? e.message)}`);
    else print(ctx.stderr, `airgap: internal error: ${(e.stack ?? e.message).split('\n').map(printable).join('\n')}`);
    return EXIT.failed;
  }
}

/**
 * Runs `commands` as this process's command line: its argv, environment, stdio and TTY
 * state (the one place that reads them), setting process.exitCode. The first SIGINT or
 * SIGTERM aborts the verb's signal; a second one removes the paths registered with
 * removeOnForcedExit (kit/exit-cleanup.ts) and exits 130 at once, or, with
 * `stillStopping`, prints `<name>: <SIGNAL> again: <stillStopping>` and lets the verb
 * finish stopping (a daemon stopping its children).
 */
export async function runProcess(commands: Command[], version: string, options: { stillStopping?: string } = {}): Promise<void> {
  const interrupt = new AbortController();
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (!interrupt.signal.aborted) return interrupt.abort(new Error(`${signal} received`));
      if (options.stillStopping) process.stderr.write(`airgap: ${signal} again: ${options.stillStopping}\n`);
      else {
        removePendingNow(); // what the verb's own cleanup has no time left to remove
        process.exit(EXIT.interrupted);
      }
    });
  }
  process.exitCode = await runCli(process.argv.slice(2), commands, {
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    interactive: process.stderr.isTTY === true,
    signal: interrupt.signal,
  }, version);
}
