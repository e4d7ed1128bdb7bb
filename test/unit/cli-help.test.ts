/**
 * `--help` is made from the same option table the parser reads: for every verb, the help
 * names every flag the parser accepts (alias, value name, default, env var), and the
 * parser accepts every flag the help names. In-process, through runCli.
 */
import t from 'tap';
import { Writable } from 'node:stream';
import { EXIT, commandEnvironment, parserOptions, runCli, type Command } from '../../src/kit/cli.js';
import { airgapCommands } from '../../src/commands.js';

const commands = airgapCommands({ uid: 1000, cwd: '/nonexistent' }, '0.0.0-test');

/** Runs `airgap …argv` in-process; returns the exit code and what it wrote. */
async function airgap(argv: string[]) {
  const out = { stdout: '', stderr: '' };
  const sink = (key: keyof typeof out) => new Writable({ write: (chunk, _enc, done) => ((out[key] += String(chunk)), done()) });
  const exitCode = await runCli(argv, commands, { stdout: sink('stdout'), stderr: sink('stderr'), env: {}, interactive: false }, '0.0.0-test');
  return { exitCode, ...out };
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The first synopsis line of each verb: tests, docs and scripts match on it. */
const FIRST_USAGE_LINES: Record<string, string> = {
  build: 'airgap build <bundle.yaml> [--out FILE|DIR] [--key PRIVATE.pem] [options]',
  keygen: 'airgap keygen --out DIR [--json]',
  inspect: 'airgap inspect FILE.bin [--key PUB] [--json]',
  verify: 'airgap verify FILE.bin --key PUB [--json]',
  push: 'airgap push FILE.bin --to REGISTRY[/PREFIX] [--packs-to REGISTRY[/PREFIX]]',
  serve: 'airgap serve [--state-dir DIR] [--address IP] [--https-port N] [--http-port N]',
  setup: 'airgap setup <repo-ip> [--json] [--state-dir DIR]     (also: airgap-setup <repo-ip>)',
  status: 'airgap status [--json] [--state-dir DIR]',
  firstboot: 'airgap firstboot --ovf-env FILE [--root DIR] [--user NAME] [--json]',
  import: 'airgap import FILE.bin [--json] [--allow-downgrade] [--state-dir DIR]',
  releases: 'airgap releases [--json] [--state-dir DIR]',
  images: 'airgap images [--json] [--state-dir DIR]',
  diff: 'airgap diff FROM TO [--json] [--state-dir DIR]',
  gc: 'airgap gc [--json] [--state-dir DIR]',
  prune: 'airgap prune --keep N [--dry-run] [--json] [--state-dir DIR]',
  packs: 'airgap packs [--json] [--state-dir DIR]',
  'node-config': 'airgap node-config --out DIR [--json] [--state-dir DIR]',
  events: 'airgap events [--since TIME] [--follow] [--json] [--state-dir DIR]',
  backup: 'airgap backup --out FILE|DIR [--with-data] [--json] [--state-dir DIR]',
  restore: 'airgap restore FILE [--force] [--json] [--state-dir DIR]',
};

t.test('the verb list is the one this test knows', async (t) => {
  t.same(commands.map((c) => c.name).sort(), Object.keys(FIRST_USAGE_LINES).sort());
});

for (const command of commands) {
  t.test(`airgap ${command.name} --help names every flag the parser accepts`, async (t) => {
    for (const flag of ['--help', '-h']) {
      const r = await airgap([command.name, flag]);
      t.equal(r.exitCode, 0, flag);
      t.equal(r.stderr, '', flag);
      t.equal(r.stdout.split('\n')[0], FIRST_USAGE_LINES[command.name], 'the first usage line is unchanged');
    }
    const help = (await airgap([command.name, '--help'])).stdout;
    const options = Object.entries(command.options);
    const shorts = new Set<string>();
    for (const [name, spec] of options) {
      t.ok(spec.description.trim().length > 0, `--${name} has a description`);
      if (spec.short) {
        t.notOk(shorts.has(spec.short), `-${spec.short} is used once`);
        shorts.add(spec.short);
      }
      const label = `${spec.short ? `-${spec.short}, ` : '    '}--${name}${spec.type === 'string' ? ` ${spec.value}` : ''}`;
      t.match(help, new RegExp(`^  ${escape(label)}(  |\\n {8,}\\S)`, 'm'), `--${name} is listed with its alias and value name (a long one on a line of its own)`);
      if (spec.default !== undefined) t.match(help.replace(/\s+/g, ' '), `default: ${spec.default}`, `--${name} shows its default`);
      if (spec.env) {
        t.match(help.replace(/\s+/g, ' '), `env: ${spec.env}`, `--${name} names ${spec.env}`);
        t.match(help, new RegExp(`^Environment:\\n(  .*\\n)*  ${escape(spec.env)} `, 'm'), `${spec.env} is in the Environment section`);
      }
      if (spec.multiple) t.match(help, new RegExp(`--${escape(name)} [\\s\\S]*?repeatable`), `--${name} says it is repeatable`);
    }
    for (const env of command.environment ?? []) t.match(help, new RegExp(`^  ${escape(env.name)} `, 'm'), `${env.name} is listed`);

    // Whatever the parser is given, the help lists: long names and aliases.
    const parser = parserOptions(command);
    t.same(Object.keys(parser).sort(), [...options.map(([name]) => name), 'help'].sort(), 'the parser reads the same table');
    for (const [name, config] of Object.entries(parser)) {
      t.match(help, new RegExp(`(^|[\\s,])--${escape(name)}\\b`, 'm'), `--${name} (accepted by the parser) is in the help`);
      if (config.short) t.match(help, new RegExp(`^  -${escape(config.short)}, --${escape(name)}\\b`, 'm'), `-${config.short} (accepted by the parser) is in the help`);
      // …and the parser does accept it: with --help nothing runs.
      const value = config.type === 'string' ? ['x'] : [];
      t.equal((await airgap([command.name, `--${name}`, ...value, '--help'])).exitCode, 0, `the parser accepts --${name}`);
      if (config.short) t.equal((await airgap([command.name, `-${config.short}`, ...value, '--help'])).exitCode, 0, `the parser accepts -${config.short}`);
    }
    const unknown = await airgap([command.name, '--not-in-the-table', '--help']);
    t.equal(unknown.exitCode, 2, 'a flag outside the table is refused, even with --help');
    t.match(unknown.stderr, /Unknown option '--not-in-the-table'/);
  });
}

t.test('airgap --help lists the commands, the environment and the exit codes', async (t) => {
  const r = await airgap(['--help']);
  t.equal(r.exitCode, 0);
  t.equal(r.stderr, '');
  for (const command of commands) t.match(r.stdout, new RegExp(`^  ${command.name} +${escape(command.summary)}$`, 'm'), command.name);
  const env = r.stdout.slice(r.stdout.indexOf('\nEnvironment:\n'), r.stdout.indexOf('\nExit codes:\n'));
  const expected = new Set(commands.flatMap((c: Command) => commandEnvironment(c).map((e) => e.name)));
  for (const name of ['AIRGAP_STATE_DIR', 'SOURCE_DATE_EPOCH', 'AIRGAP_ADDRESS', 'AIRGAP_LOG_LEVEL', 'AIRGAP_REGISTRY_BIN', 'AIRGAP_MAX_UPLOAD_BYTES', 'XDG_STATE_HOME']) {
    t.ok(expected.has(name), `${name} is declared by a verb`);
  }
  for (const name of expected) t.match(env, new RegExp(`^  ${escape(name)} `, 'm'), `${name} is listed`);
  t.match(env.replace(/\s+/g, ' '), / AIRGAP_STATE_DIR [^[]*\[push, serve, setup, status, import, releases, images, packs, diff, node-config, events, prune, gc, backup, restore\]/, 'with the verbs that read it');
  const exits = r.stdout.slice(r.stdout.indexOf('\nExit codes:\n'));
  t.same(Object.values(EXIT), [0, 1, 2, 130]);
  for (const code of Object.values(EXIT)) t.match(exits, new RegExp(`^  ${code} +\\S`, 'm'), `exit code ${code}`);

  const bare = await airgap([]);
  t.equal(bare.exitCode, 2, 'no command is a usage error');
  t.equal(bare.stdout, '');
  t.match(bare.stderr, /^Exit codes:$/m);
});

t.test('usage errors still exit 2 and point at the help', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['build'], /missing argument \[AG_USAGE\]\n {2}hint: usage: airgap build <bundle\.yaml>/],
    [['status', 'extra'], /unexpected argument 'extra'/],
    [['inspect', 'a.bin', '--bogus'], /Unknown option '--bogus' \[AG_USAGE\]\n {2}hint: see 'airgap inspect --help'/],
    [['build', 'x.yaml', '--out'], /argument missing/],
    [['keygen'], /--out DIR is required/],
  ];
  for (const [argv, message] of cases) {
    const r = await airgap(argv);
    t.equal(r.exitCode, 2, argv.join(' '));
    t.match(r.stderr, message, argv.join(' '));
    t.equal(r.stdout, '', argv.join(' '));
  }
});
