/**
 * The appliance settings file, `<state-dir>/config.yaml` (docs/cli.md, "config.yaml"):
 * what an admin sets once and the daemon reads each time it needs it, so a change takes
 * effect without a restart. Backed up and restored with the state.
 *
 *   retention:
 *     keep: 3        # after each successful import: airgap prune --keep 3
 *
 * No file, or no `retention`, means every release stays.
 */
import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import { AirgapError } from '../../kit/errors.js';

export interface ApplianceSettings {
  retention: { keep: number | null };
}

export class ConfigFileError extends AirgapError {}

const DEFAULTS: ApplianceSettings = { retention: { keep: null } };

/**
 * Parses the text of config.yaml. Throws ConfigFileError AG_CONFIG naming the file
 * `path` for YAML errors, unknown keys (a typo must not be a silent no-op) and values
 * out of range.
 */
export function parseSettings(text: string, path: string): ApplianceSettings {
  const bad = (why: string) => new ConfigFileError('AG_CONFIG', `${path}: ${why}`, { hint: 'fix the file (docs/cli.md, "config.yaml"); until then its settings are not applied' });
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length) throw bad(doc.errors[0]!.message.split('\n')[0]!);
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 10 });
  } catch (err) {
    throw bad((err as Error).message);
  }
  if (value === null || value === undefined) return structuredClone(DEFAULTS);
  if (typeof value !== 'object' || Array.isArray(value)) throw bad('the file must be a map of settings');
  const out = structuredClone(DEFAULTS);
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    if (key !== 'retention') throw bad(`unknown setting '${key}' (known: retention)`);
    if (v === null) continue;
    if (typeof v !== 'object' || Array.isArray(v)) throw bad('retention must be a map, such as "retention: {keep: 3}"');
    for (const [k, n] of Object.entries(v as Record<string, unknown>)) {
      if (k !== 'keep') throw bad(`unknown setting 'retention.${k}' (known: retention.keep)`);
      if (n === null) continue;
      if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 10_000) throw bad(`retention.keep must be a whole number from 1 to 10000, not ${JSON.stringify(n)}`);
      out.retention.keep = n;
    }
  }
  return out;
}

/** Reads the settings file at `path` (StateLayout.configFile); no file gives the defaults. Throws as parseSettings, and the file system's errors but ENOENT. */
export async function readSettings(path: string): Promise<ApplianceSettings> {
  const text = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  return text === undefined ? structuredClone(DEFAULTS) : parseSettings(text, path);
}
