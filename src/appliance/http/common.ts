/** Pieces every HTTP app of the appliance shares: the error shape and basic auth parsing. */
import type { Credential } from '../security/credentials.js';

/** JSON schema of every error answer: `{code, message, hint?}`. */
export const errorSchema = {
  type: 'object',
  properties: { code: { type: 'string' }, message: { type: 'string' }, hint: { type: 'string' } },
  required: ['code', 'message'],
} as const;

/** A JSON object whose properties the route does not list (documents built elsewhere). */
export const openObject = { type: 'object', additionalProperties: true } as const;

/** Query string of list routes: `?limit=N` (1 to 1000, `fallback` when absent). */
export function limitQuery(fallback: number) {
  return { type: 'object', properties: { limit: { type: 'integer', minimum: 1, maximum: 1000, default: fallback } }, additionalProperties: false } as const;
}

/** Parses `Authorization: Basic …` (RFC 7617); undefined when absent or malformed. */
export function parseBasicAuth(header: string | undefined): Credential | undefined {
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? '');
  if (!match) return undefined;
  const text = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  return colon < 0 ? undefined : { username: text.slice(0, colon), password: text.slice(colon + 1) };
}
