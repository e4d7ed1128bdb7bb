/** JSON schemas the console API's routes share. */
import { errorSchema, openObject } from '../common.js';

export { errorSchema, limitQuery, openObject } from '../common.js';

/** `{<name>: [object, …]}`: a list route's answer. */
export const listOf = (name: string) => ({ type: 'object', properties: { [name]: { type: 'array', items: openObject } } });

/** The responses of a console route: `ok` with `okStatus`, and the error shape for every refusal the API gives. */
export const responses = (ok: Record<string, unknown>, okStatus = 200) => ({
  [okStatus]: ok,
  400: errorSchema,
  401: errorSchema,
  403: errorSchema,
  404: errorSchema,
  409: errorSchema,
  413: errorSchema,
  416: errorSchema,
  429: errorSchema,
  507: errorSchema,
});

/** `:id` of an import. */
export const importIdParams = { type: 'object', properties: { id: { type: 'integer', minimum: 1 } }, required: ['id'] } as const;
