/**
 * Flags that several appliance verbs share, with their help text: the state dir
 * (`--state-dir`, AIRGAP_STATE_DIR, then the root or per-user default of
 * `resolveStateDir`).
 */
import { resolve } from 'node:path';
import type { CliContext, EnvSpec, OptionTable } from '../../kit/cli.js';
import { ROOT_STATE_DIR } from '../config/config.js';

/** `--state-dir DIR`; `description` says what the verb uses it for. */
export function stateDirOption(description = 'state dir of the daemon') {
  return {
    'state-dir': {
      type: 'string',
      value: 'DIR',
      description,
      env: 'AIRGAP_STATE_DIR',
      default: `${ROOT_STATE_DIR} as root, else $XDG_STATE_HOME/airgap`,
    },
  } as const satisfies OptionTable;
}

/** What the state dir default reads besides AIRGAP_STATE_DIR. */
export const stateDirEnvironment: EnvSpec[] = [
  { name: 'XDG_STATE_HOME', description: 'anyone but root keeps the state dir in <XDG_STATE_HOME>/airgap', default: '~/.local/state' },
];

/** `--json`; `description` says what the document holds. */
export function jsonOption(description = 'print one JSON document') {
  return { json: { type: 'boolean', description } } as const satisfies OptionTable;
}

/**
 * A path the user typed, made absolute: against $PWD (the shell's, which keeps the
 * symbolic links the user went through) when set, else against `cwd`.
 */
export function userPath(path: string, ctx: CliContext, cwd: string): string {
  return resolve(ctx.env.PWD && !path.startsWith('/') ? ctx.env.PWD : cwd, path);
}
