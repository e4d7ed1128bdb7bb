/**
 * The appliance's Fastify apps. They are built here and never listen (server.ts does),
 * so tests drive the real apps with `app.inject`.
 *
 *   public app (HTTPS)   /repo/…     the file repository, basic auth, listings as HTML or JSON
 *                        /ca.crt     the appliance CA
 *                        /           a landing page (the console comes with /api/v1)
 *   redirect app (HTTP)  /ca.crt     the CA, so a fresh client can fetch it before trusting
 *                        *           301 to the same path on HTTPS
 *   admin app (socket)   /v1/status, /v1/setup, /v1/events   the local admin API
 */
import fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import fastifyStatic from '@fastify/static';
import fastifySwagger from '@fastify/swagger';
import { registerApi } from './api.js';
import { errorSchema, limitQuery, openObject, parseBasicAuth } from './common.js';
import { nodeConfigTar, type NodeConfigFile } from '../daemon/node-config.js';
import type { AdminOperations, ConsoleOperations } from './operations.js';
import { registerCaRoute } from './routes/ca.js';
import { registerSecurityHeaders } from './security-headers.js';

export { parseBasicAuth };
export type { AdminOperations };
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Logger } from 'pino';
import { AirgapError, httpStatusOf } from '../../kit/errors.js';
import { isDiskFull } from '../../kit/space-reserve.js';
import { parseRepoAddress, urlHost } from '../config/address.js';
import { secretsEqual, type Credential } from '../security/credentials.js';
import { PassThrough } from 'node:stream';

/** Options every app shares: our pino logger, no per-request info lines (errors are still logged). */
function baseOptions(log: Logger): FastifyServerOptions {
  return {
    loggerInstance: log,
    logController: new LogController({ disableRequestLogging: true }),
    // Closing does not wait for slow downloads or followers: the daemon must stop on SIGTERM.
    forceCloseConnections: true,
    // Unknown body properties are refused (400), not silently dropped.
    ajv: { customOptions: { removeAdditional: false } },
  };
}

/**
 * One error shape for every app: `{code, message, hint?}`; 5xx details of unknown errors
 * stay in the log. `notFound: false` leaves 404 handling to the app.
 */
function registerErrorHandler(app: FastifyInstance, notFound = true): void {
  app.setErrorHandler((error: Error & { statusCode?: number; validation?: unknown; code?: string }, request, reply) => {
    if (error instanceof AirgapError) {
      const explicit = (error as { statusCode?: unknown }).statusCode;
      // The status follows the code (kit/errors.ts, ERROR_STATUS) unless the route set one.
      const status = typeof explicit === 'number' ? explicit : httpStatusOf(error.code);
      if (status >= 500) request.log.error({ err: error }, error.message);
      return reply.status(status).send({ code: error.code, message: error.message, ...(error.hint ? { hint: error.hint } : {}) });
    }
    if (isDiskFull(error)) {
      // The daemon's own disk (the database, a temp file): a clear 507, not an internal error.
      request.log.error({ err: error }, 'the disk is full');
      return reply.status(httpStatusOf('AG_NO_SPACE')).send({ code: 'AG_NO_SPACE', message: 'the disk of the state dir is full', hint: "free space on that volume ('airgap status' shows it), then try again" });
    }
    if (error.validation || (error.statusCode && error.statusCode < 500)) {
      return reply.status(error.statusCode ?? 400).send({ code: 'AG_BAD_REQUEST', message: error.message });
    }
    request.log.error({ err: error }, 'request failed');
    return reply.status(500).send({ code: 'AG_INTERNAL', message: 'internal error; see the daemon log' });
  });
  if (notFound) app.setNotFoundHandler((request, reply) => reply.status(404).send({ code: 'AG_NOT_FOUND', message: `no such path: ${request.url.split('?')[0]}` }));
}


function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}


/** Checks basic auth against `expected` in constant time; answers 401 with a challenge otherwise. */
function basicAuthHook(realm: string, expected: () => Credential, refusal = 'the repository needs its username and password (airgap-setup prints them)', onRefused?: (client: string, username: string) => void) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const given = parseBasicAuth(request.headers.authorization);
    const want = expected();
    const userOk = given !== undefined && secretsEqual(given.username, want.username);
    const passOk = given !== undefined && secretsEqual(given.password, want.password);
    if (userOk && passOk) return;
    if (given) {
      request.log.warn({ username: given.username, realm }, 'login refused');
      onRefused?.(request.ip, given.username);
    }
    return reply
      .status(401)
      .header('www-authenticate', `Basic realm="${realm}", charset="UTF-8"`)
      .send({ code: 'AG_UNAUTHORIZED', message: refusal });
  };
}

/** Whether a segment of the URL path (percent-decoded, `\` read as `/`) starts with a dot. */
function hasDotSegment(path: string): boolean {
  let decoded = path;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    // A malformed escape: judge the raw path; the static handler refuses it anyway.
  }
  return decoded.split(/[/\\]/).some((segment) => segment.startsWith('.'));
}

/** The path of the listing being rendered (@fastify/static's render callback does not get it). */
const listingPath = new AsyncLocalStorage<string>();

function listingHtml(path: string, dirs: Array<{ href: string; name: string }>, files: Array<{ href: string; name: string }>): string {
  const route = path.endsWith('/') ? path : `${path}/`;
  const parent = route.replace(/[^/]+\/$/, '');
  const items = [
    ...(route !== '/repo/' ? [`<li><a href="${escapeHtml(parent)}">../</a></li>`] : []),
    ...dirs.map((d) => `<li><a href="${escapeHtml(d.href)}/">${escapeHtml(d.name)}/</a></li>`),
    ...files.map((f) => `<li><a href="${escapeHtml(f.href)}">${escapeHtml(f.name)}</a></li>`),
  ];
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Index of ${escapeHtml(route)}</title></head><body><h1>Index of ${escapeHtml(route)}</h1><ul>${items.join('')}</ul><p><a href="?format=json">JSON</a></p></body></html>`;
}

export interface PublicAppOptions {
  log: Logger;
  /** The folder served under /repo/. */
  repoDir: string;
  /** The classic Helm chart repository served under /charts/ (index.yaml and archives). */
  chartsDir?: string;
  /** The repository account, read per request (it never changes, but setup may load it later). */
  repositoryCredential: () => Credential;
  caPem: () => string;
  /** Key and certificate chain for HTTPS; without them the app is plain (tests with inject). */
  tls?: { key: string; cert: string };
  /** The console API under /api/v1; absent, the app serves the repository only. */
  api?: ConsoleOperations;
  /** The console's static files (web/), served at /. */
  webDir?: string;
  /** GET /metrics (Prometheus text format), behind the console account (Basic). */
  metrics?: { render: () => Promise<string>; credential: () => Credential; onRefused?: (client: string, username: string) => void };
  /** The files of `airgap node-config`, served under /node-config/ behind the repository account. */
  nodeConfig?: () => NodeConfigFile[];
}

/** The HTTPS app: file repository, CA, landing page. */
export async function buildPublicApp(options: PublicAppOptions): Promise<FastifyInstance> {
  const serverOptions: FastifyServerOptions & { https?: { key: string; cert: string; minVersion: 'TLSv1.2' } } = {
    ...baseOptions(options.log),
    ...(options.tls ? { https: { key: options.tls.key, cert: options.tls.cert, minVersion: 'TLSv1.2' } } : {}),
  };
  const app = fastify(serverOptions) as unknown as FastifyInstance;
  registerErrorHandler(app);
  registerSecurityHeaders(app, { https: options.tls !== undefined });

  registerCaRoute(app, options.caPem);

  if (options.api) {
    await app.register(fastifySwagger, {
      openapi: {
        openapi: '3.0.3',
        info: { title: 'airgap appliance API', version: 'v1', description: 'The console API: status, connection details, content, imports, uploads, events.' },
        components: { securitySchemes: { session: { type: 'apiKey', in: 'cookie', name: 'airgap_session' }, basic: { type: 'http', scheme: 'basic' } } },
        security: [{ session: [] }, { basic: [] }],
      },
      hideUntagged: true,
    });
    await registerApi(app, options.api, { secureCookie: options.tls !== undefined });
  }

  if (options.metrics) {
    const { render, credential } = options.metrics;
    await app.register(async (scope) => {
      scope.addHook('onRequest', basicAuthHook('airgap metrics', credential, 'the metrics need the console username and password (airgap-setup prints them)', options.metrics?.onRefused));
      scope.get('/metrics', { schema: { hide: true } }, async (_request, reply) => reply.type('text/plain; version=0.0.4; charset=utf-8').send(await render()));
    });
  }

  if (options.nodeConfig) {
    const files = options.nodeConfig;
    await app.register(async (scope) => {
      // The repository account nodes already have: each file for curl, or all of them as a tar.
      scope.addHook('onRequest', basicAuthHook('airgap repository', options.repositoryCredential));
      scope.get('/node-config/', { schema: { hide: true } }, async () => ({ files: files().map((f) => ({ path: f.path, mode: `0${f.mode.toString(8)}`, bytes: Buffer.byteLength(f.content) })) }));
      scope.get('/node-config.tar', { schema: { hide: true } }, async (_request, reply) =>
        reply.type('application/x-tar').header('content-disposition', 'attachment; filename="airgap-node-config.tar"').send(await nodeConfigTar(files())),
      );
      scope.get('/node-config/*', { schema: { hide: true } }, async (request, reply) => {
        const path = (request.params as { '*': string })['*'];
        const file = files().find((f) => f.path === path);
        if (!file) return reply.callNotFound();
        return reply.type(path.endsWith('.json') ? 'application/json' : 'text/plain; charset=utf-8').send(file.content);
      });
    });
  }

  if (options.webDir) {
    // The console: static files, no CDN; every other path falls through to the 404 handler.
    await app.register(fastifyStatic, { root: options.webDir, prefix: '/', index: 'index.html', wildcard: false, decorateReply: false, cacheControl: false, dotfiles: 'deny' });
  } else {
    app.get('/', { schema: { response: { 200: { type: 'string' } } } }, async (_request, reply) =>
      reply
        .type('text/html; charset=utf-8')
        .send('<!doctype html><html lang="en"><head><meta charset="utf-8"><title>airgap appliance</title></head><body><h1>airgap appliance</h1><ul><li><a href="/repo/">File repository</a> (repository credentials)</li><li><a href="/ca.crt">CA certificate</a></li></ul><p>Connection details: run <code>sudo airgap-setup &lt;repo-ip&gt;</code> on the appliance.</p></body></html>'),
    );
  }

  await app.register(async (repo) => {
    repo.addHook('onRequest', basicAuthHook('airgap repository', options.repositoryCredential));
    // Dot names (an import's staging folder `.<version>.partial-<id>/`, partial files) are
    // never listed or served, at any depth: 404 as if absent.
    repo.addHook('onRequest', async (request, reply) => {
      if (hasDotSegment(request.url.split('?')[0]!)) return reply.callNotFound();
    });
    // Listings are HTML for browsers and JSON for `Accept: application/json` or ?format=json.
    repo.addHook('onRequest', async (request) => {
      const path = request.url.split('?')[0]!;
      try {
        listingPath.enterWith(decodeURIComponent(path));
      } catch {
        listingPath.enterWith(path);
      }
      const query = request.query as Record<string, string | undefined>;
      if (query.format === undefined && /application\/json/.test(request.headers.accept ?? '') && !/text\/html/.test(request.headers.accept ?? '')) query.format = 'json';
    });
    await repo.register(fastifyStatic, {
      root: options.repoDir,
      prefix: '/repo/',
      index: false,
      dotfiles: 'deny',
      // A folder without its slash is listed as it is (the listing's links are absolute).
      redirect: false,
      wildcard: true,
      list: { format: 'html', render: (dirs, files) => listingHtml(listingPath.getStore() ?? '/repo/', dirs, files) },
      cacheControl: false,
      decorateReply: false,
    });
  });
  if (options.chartsDir) {
    const chartsDir = options.chartsDir;
    // `helm repo add NAME https://<repo-ip>/charts --username --password --ca-file`: the
    // same account as the file repository; files only, no listing, no dot names.
    await app.register(async (charts) => {
      charts.addHook('onRequest', basicAuthHook('airgap charts', options.repositoryCredential));
      charts.addHook('onRequest', async (request, reply) => {
        if (hasDotSegment(request.url.split('?')[0]!)) return reply.callNotFound();
      });
      await charts.register(fastifyStatic, { root: chartsDir, prefix: '/charts/', index: false, dotfiles: 'deny', redirect: false, wildcard: true, list: false, cacheControl: false, decorateReply: false });
    });
  }
  return app;
}

export interface RedirectAppOptions {
  log: Logger;
  httpsPort: number;
  caPem: () => string;
  /** The repo address set by setup (redirects go there), or null before setup. */
  repoAddress: () => string | null;
  /** The host to redirect to before setup when the request's Host is not a valid address or name. */
  fallbackHost: () => string;
}

/** The HTTP app: /ca.crt, and a 301 to HTTPS for everything else. */
export async function buildRedirectApp(options: RedirectAppOptions): Promise<FastifyInstance> {
  const app = fastify(baseOptions(options.log)) as unknown as FastifyInstance;
  registerErrorHandler(app, false);
  registerCaRoute(app, options.caPem);
  app.setNotFoundHandler(async (request, reply) => {
    // The repo address once setup ran; before that the request's own host when it is a
    // valid address or name. Only the path and query of the request are kept.
    let host = options.repoAddress();
    if (!host) {
      try {
        host = parseRepoAddress(request.hostname).value;
      } catch {
        host = options.fallbackHost();
      }
    }
    const target = new URL(request.url, 'http://placeholder');
    const port = options.httpsPort === 443 ? '' : `:${options.httpsPort}`;
    return reply.redirect(`https://${urlHost(host)}${port}${target.pathname}${target.search}`, 301);
  });
  return app;
}

const credentialSchema = (extra: Record<string, unknown> = {}) => ({
  type: 'object',
  properties: { url: { type: 'string' }, username: { type: 'string' }, password: { type: 'string' }, ...extra },
  required: ['url', 'username', 'password'],
});

/** JSON schema of `airgap setup --json` (docs/cli.md). */
export const connectionDetailsSchema = {
  type: 'object',
  properties: {
    repository: credentialSchema(),
    imageRegistry: credentialSchema(),
    packRegistry: credentialSchema(),
    console: credentialSchema(),
    helmRepository: credentialSchema({ addCommand: { type: 'string' } }),
    caCertificateBase64: { type: 'string' },
  },
  required: ['repository', 'imageRegistry', 'packRegistry', 'console', 'helmRepository', 'caCertificateBase64'],
} as const;

const open = openObject;

/** The admin API on the unix socket. Access control is the socket's mode (0600). */
export async function buildAdminApp(options: { log: Logger; operations: AdminOperations }): Promise<FastifyInstance> {
  const app = fastify(baseOptions(options.log)) as unknown as FastifyInstance;
  registerErrorHandler(app);
  const { operations } = options;

  app.get('/v1/status', {
    schema: {
      response: {
        200: {
          type: 'object',
          properties: {
            version: { type: 'string' },
            healthy: { type: 'boolean' },
            problems: { type: 'array', items: { type: 'string' } },
            warnings: { type: 'array', items: { type: 'string' } },
            retention: open,
            daemon: open,
            repoAddress: { type: ['string', 'null'] },
            repository: open,
            console: open,
            certificate: open,
            registries: { type: 'array', items: open },
            database: open,
            disk: open,
            release: open,
            imports: { type: 'array', items: open },
          },
          required: ['version', 'healthy', 'problems', 'daemon', 'registries', 'certificate', 'database', 'disk'],
        },
      },
    },
  }, async () => operations.status());

  app.post('/v1/setup', {
    schema: {
      body: {
        type: 'object',
        properties: {
          repoAddress: { type: 'string', minLength: 1, maxLength: 255 },
          renew: { type: 'boolean', default: false },
          site: {
            type: 'object',
            properties: { certPem: { type: 'string', maxLength: 65_536 }, keyPem: { type: 'string', maxLength: 65_536 }, caPem: { type: 'string', maxLength: 65_536 } },
            required: ['certPem', 'keyPem'],
            additionalProperties: false,
          },
        },
        required: ['repoAddress'],
        additionalProperties: false,
      },
      response: {
        200: {
          type: 'object',
          properties: {
            details: connectionDetailsSchema,
            changed: {
              type: 'object',
              properties: { repoAddress: { type: 'boolean' }, certificate: { type: 'boolean' }, registriesRestarted: { type: 'array', items: { type: 'string' } } },
            },
            warnings: { type: 'array', items: { type: 'string' } },
          },
        },
        400: errorSchema,
        500: errorSchema,
      },
    },
  }, async (request) => {
    const body = request.body as { repoAddress: string; renew: boolean; site?: { certPem: string; keyPem: string; caPem?: string } };
    return operations.setup(body.repoAddress, 'cli', { renew: body.renew, site: body.site });
  });

  const eventsQuery = {
    type: 'object',
    properties: {
      limit: { type: 'integer', minimum: 1, maximum: 10_000, default: 50 },
      since: { type: 'string', minLength: 1, maxLength: 64 },
      afterId: { type: 'integer', minimum: 0 },
    },
    additionalProperties: false,
  } as const;
  // Without since/afterId: the newest, newest first. With them: oldest first (docs/cli.md, airgap events).
  app.get('/v1/events', {
    schema: { querystring: eventsQuery, response: { 200: { type: 'object', properties: { events: { type: 'array', items: open } } } } },
  }, async (request) => {
    const q = request.query as { limit: number; since?: string; afterId?: number };
    if (q.since !== undefined && Number.isNaN(Date.parse(q.since))) throw new AirgapError('AG_USAGE', `since must be an ISO 8601 time, not '${q.since.slice(0, 64)}'`);
    return { events: operations.events(q.limit, { ...(q.since ? { since: new Date(q.since).toISOString() } : {}), ...(q.afterId !== undefined ? { afterId: q.afterId } : {}) }) };
  });

  // NDJSON: each event recorded after `afterId`, as it is recorded, until the client goes.
  app.get('/v1/events/follow', {
    schema: { querystring: { type: 'object', properties: { afterId: { type: 'integer', minimum: 0, default: 0 } }, additionalProperties: false } },
  }, async (request, reply) => {
    const stream = new PassThrough();
    let last = (request.query as { afterId: number }).afterId;
    // A follower that reads slowly loses nothing: once the stream is full, live events wait
    // in the database, and each 'drain' reads on from the last event written.
    let behind = false;
    const write = (event: { id: number }): boolean => {
      if (event.id <= last) return true;
      if (behind || stream.writableNeedDrain) return (behind = true), false;
      stream.write(`${JSON.stringify(event)}\n`);
      last = event.id;
      return true;
    };
    const catchUp = () => {
      behind = false;
      for (;;) {
        const page = operations.events(200, { afterId: last });
        for (const e of page) if (!write(e)) return;
        if (page.length < 200) return;
      }
    };
    // Subscribed first, then the backlog: nothing recorded in between is lost or sent twice.
    const unsubscribe = operations.followEvents(write);
    stream.on('drain', () => behind && setImmediate(catchUp));
    catchUp();
    request.raw.on('close', unsubscribe);
    stream.on('close', unsubscribe);
    return reply.type('application/x-ndjson').send(stream);
  });

  app.post('/v1/imports', {
    schema: {
      body: {
        type: 'object',
        properties: { file: { type: 'string', minLength: 1, maxLength: 4096 }, allowDowngrade: { type: 'boolean', default: false } },
        required: ['file'],
        additionalProperties: false,
      },
      response: { 202: { type: 'object', properties: { import: open, queuePosition: { type: 'integer' } } }, 400: errorSchema, 404: errorSchema },
    },
  }, async (request, reply) => {
    const body = request.body as { file: string; allowDowngrade: boolean };
    return reply.status(202).send(await operations.queueImport(body, 'cli'));
  });

  app.get('/v1/imports', {
    schema: {
      querystring: limitQuery(50),
      response: { 200: { type: 'object', properties: { imports: { type: 'array', items: open } } } },
    },
  }, async (request) => ({ imports: operations.listImports((request.query as { limit: number }).limit) }));

  const idParams = { type: 'object', properties: { id: { type: 'integer', minimum: 1 } }, required: ['id'] } as const;
  const notFound = (id: number) => new AirgapError('AG_NOT_FOUND', `there is no import ${id}`, { hint: "list them with 'airgap status'" });

  app.get('/v1/imports/:id', { schema: { params: idParams, response: { 200: open, 404: errorSchema } } }, async (request) => {
    const { id } = request.params as { id: number };
    const row = operations.getImport(id);
    if (!row) throw notFound(id);
    return row;
  });

  app.post('/v1/imports/:id/cancel', {
    schema: { params: idParams, response: { 200: { type: 'object', properties: { import: open, cancelled: { type: 'boolean' } } }, 404: errorSchema } },
  }, async (request) => {
    const { id } = request.params as { id: number };
    const outcome = await operations.cancelImport(id, 'cli');
    if (!outcome) throw notFound(id);
    return outcome;
  });

  // NDJSON: {"type":"update",…} lines while the import is queued or running, then one {"type":"done","import":…}.
  app.get('/v1/imports/:id/follow', { schema: { params: idParams } }, async (request, reply) => {
    const { id } = request.params as { id: number };
    if (!operations.getImport(id)) throw notFound(id);
    const stream = new PassThrough();
    const unsubscribe = operations.followImport(
      id,
      // A follower that does not read (a stopped terminal) loses updates, never the end.
      (update) => void (stream.writableNeedDrain || stream.write(`${JSON.stringify({ type: 'update', ...update })}\n`)),
      (row) => {
        stream.end(`${JSON.stringify({ type: 'done', import: row })}\n`);
      },
    );
    request.raw.on('close', unsubscribe);
    stream.on('close', unsubscribe);
    return reply.type('application/x-ndjson').send(stream);
  });

  app.get('/v1/releases', {
    schema: {
      querystring: { type: 'object', properties: { files: { type: 'boolean', default: true } }, additionalProperties: false },
      response: { 200: open },
    },
  }, async (request) => operations.releases({ files: (request.query as { files: boolean }).files }));

  app.post('/v1/releases/:version/delete', {
    schema: {
      params: { type: 'object', properties: { version: { type: 'string', minLength: 1, maxLength: 128 } }, required: ['version'] },
      body: { type: 'object', properties: { actor: { type: 'string', maxLength: 64 } }, additionalProperties: false },
      response: { 200: open },
    },
  }, async (request) => operations.deleteRelease((request.params as { version: string }).version, (request.body as { actor?: string } | undefined)?.actor ?? 'cli'));

  app.post('/v1/prune', {
    schema: {
      body: { type: 'object', properties: { keep: { type: 'integer', minimum: 1, maximum: 10000 }, dryRun: { type: 'boolean', default: false }, actor: { type: 'string', maxLength: 64 } }, required: ['keep'], additionalProperties: false },
      response: { 200: open },
    },
  }, async (request) => {
    const body = request.body as { keep: number; dryRun: boolean; actor?: string };
    return operations.prune(body.keep, body.actor ?? 'cli', body.dryRun);
  });

  app.post('/v1/gc', {
    schema: { body: { type: 'object', properties: { actor: { type: 'string', maxLength: 64 } }, additionalProperties: false }, response: { 200: open } },
  }, async (request) => operations.collectGarbage((request.body as { actor?: string } | undefined)?.actor ?? 'cli'));

  app.post('/v1/backup', {
    schema: {
      body: {
        type: 'object',
        properties: { out: { type: 'string', minLength: 2, maxLength: 4096, pattern: '^/' }, withData: { type: 'boolean', default: false }, actor: { type: 'string', maxLength: 64 } },
        required: ['out'],
        additionalProperties: false,
      },
      response: { 200: open },
    },
  }, async (request) => {
    const body = request.body as { out: string; withData: boolean; actor?: string };
    return operations.backup(body.out, body.withData, body.actor ?? 'cli');
  });

  // The pull account's password is in some of the files: root's socket only (and the console, the repository account).
  app.get('/v1/node-config', { schema: { response: { 200: open } } }, async () => operations.nodeConfig());

  // The socket is root's (0600): the same secrets `airgap setup` prints, for `airgap push --release`.
  app.get('/v1/connection', { schema: { response: { 200: connectionDetailsSchema } } }, async () => operations.connectionDetails());

  app.get('/v1/artifacts', {
    schema: {
      querystring: { type: 'object', properties: { kind: { type: 'string', enum: ['image', 'chart', 'pack', 'file'] }, version: { type: 'string', maxLength: 128 } }, additionalProperties: false },
      response: { 200: { type: 'object', properties: { artifacts: { type: 'array', items: open } } } },
    },
  }, async (request) => {
    const query = request.query as { kind?: string; version?: string };
    return { artifacts: operations.artifacts(query.kind, query.version) };
  });

  return app;
}
